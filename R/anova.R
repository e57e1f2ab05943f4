# anova() for hnm_fit: lmerTest's F tests for one fit, lme4's model comparison for several, and
# tau2_test(), the tests of tau^2 = 0 of the one-way model.

#' F tests of the fixed effects and model comparison
#'
#' With one fit, `anova(fit)` is lmerTest's table of F tests of the fixed-effect terms (type III
#' by default, Satterthwaite's denominator df), for every fit; see [hnm_fit-methods] for the
#' types and how hnm builds them. The one-way model's only fixed effect is the intercept, so its
#' table is lmerTest's, with no rows. The tests of the variance itself are where a variance is
#' tested: `anova(fit0, fit1)` of fits with and without a random effect (below), and for the
#' one-way model [tau2_test()], the likelihood-ratio test of \eqn{\tau^2 = 0} with the mixture
#' p-value and the exact one-way ANOVA F test. lme4's `anova(lmer_fit, lm_fit)` reports the naive
#' \eqn{\chi^2_1} p-value, twice the mixture's.
#'
#' With several fits, `anova(fit1, fit2, ...)` compares them as lme4's `anova.merMod`
#' does (columns `npar`, `AIC`, `BIC`, `logLik`, `deviance`, `Chisq`, `Df`, `Pr(>Chisq)`,
#' models sorted by `npar`). Besides `hnm_fit` objects, an unweighted `lm()` of the
#' same response and fixed effects is accepted as the model without random effects
#' (for `y ~ 1 | g`, the intercept-only `lm()`: the \eqn{\tau^2 = 0} model; put the
#' `hnm_fit` first: `anova(lm_fit, fit)` would dispatch to stats' `anova.lm`). REML fits are
#' compared on their ML refits (as lme4 does, with a message). Fits to different data
#' (number of observations, or mean and total sum of squares of the response) are refused.
#'
#' A step that adds one random effect tests a variance at 0, on the boundary of the parameter
#' space, and its p-value is from the asymptotic chi-bar-square mixture, as the heading says:
#' \eqn{\frac12\chi^2_0 + \frac12\chi^2_1}{0.5 chi2(0) + 0.5 chi2(1)} for a random
#' intercept or an uncorrelated random effect, and \eqn{\frac12\chi^2_{s-1} +
#' \frac12\chi^2_s}{0.5 chi2(s-1) + 0.5 chi2(s)} for an effect added to a block of s - 1
#' correlated ones (its variance and s - 1 covariances; Stram & Lee 1994): the step has the
#' same fixed effects and grouping factor, and the larger fit's random effects are the
#' smaller's plus one. Where the larger fit estimates the added variance as exactly 0, its
#' optimum is the smaller fit's: the statistic is 0 and the p-value 1 (not the rounding
#' difference of the two deviances). Other steps get the usual \eqn{\chi^2}{chi2} reference, which for
#' variances on the boundary is conservative. The mixture is an asymptotic reference: in
#' small samples it is itself conservative (for the one-way model with m = 10 groups of 5,
#' the mixture LRT rejects a true \eqn{\tau^2 = 0} about 2.9% of the time at level 0.05),
#' and the exact F test of [tau2_test()] is the finite-sample test of \eqn{\tau^2 = 0} there.
#'
#' @param object An `hnm_fit`.
#' @param ... Further `hnm_fit` objects or `lm` fits (of the fixed effects of an `hnm_fit`
#'   compared) to compare with `object`.
#' @param type,ddf lmerTest's, for the F tests of one fit: `type` `"III"` (default), `"II"`,
#'   `"I"` or 3, 2, 1; `ddf` `"Satterthwaite"` (default), `"Kenward-Roger"` (REML fits only,
#'   as lmerTest: pbkrtest's F test on [vcov_kenward_roger()] with its denominator df and F
#'   scaling, `Mean Sq` being the unscaled statistic times \eqn{\sigma^2} as lmerTest's) or
#'   `"lme4"` (lme4's sequential table). Neither may be given with several fits.
#' @return A data frame of class `c("anova", "data.frame")` with a `heading`, which prints
#'   like lmerTest's (one fit) or lme4's (several).
#' @references Stram, D. O. and Lee, J. W. (1994). Variance components testing in the
#'   longitudinal mixed effects model. *Biometrics* 50, 1171-1177.
#'
#'   Self, S. G. and Liang, K.-Y. (1987). Asymptotic properties of maximum
#'   likelihood estimators and likelihood ratio tests under nonstandard conditions.
#'   *Journal of the American Statistical Association* 82, 605-610.
#' @examples
#' set.seed(1)
#' d <- data.frame(g = rep(letters[1:8], each = 5))
#' d$y <- 10 + rnorm(8)[as.integer(factor(d$g))] + rnorm(40)
#' fit <- hnm_fit(y ~ 1 | g, d)
#' anova(fit)
#' anova(fit, lm(y ~ 1, d))
#' @importFrom stats anova
#' @export
anova.hnm_fit <- function(object, ..., type = c("III", "II", "I", "3", "2", "1"),
                          ddf = c("Satterthwaite", "Kenward-Roger", "lme4")) {
  call <- sys.call()
  check_model_dots(list(...), call)
  if (...length() == 0L) {
    return(fixed_effects_anova(object, if (!missing(type)) type, ddf, call))
  }
  check_one_fit_arguments(missing(type), missing(ddf), call)
  names <- vapply(as.list(substitute(list(object, ...)))[-1L], deparse1, "")
  compare_fits(list(object, ...), names, call)
}
# anova()'s `...` holds the fits to compare; a named argument that is not a fit (lme4's
# `refit` or `model.names`, a misspelt option) is an unused argument, an error.
check_model_dots <- function(dots, call) {
  named <- nzchar(names(dots) %||% character(length(dots)))
  is_model <- vapply(dots, inherits, NA, what = c("hnm_fit", "lm"))
  check_no_dots(dots[named & !is_model], call)
}

#' Tests of tau^2 = 0 in the one-way model
#'
#' The two tests of \eqn{\tau^2 = 0} (no between-group variance) of the one-way model
#' `y ~ 1 | g`: the likelihood-ratio statistic of the ML fits with and without the random
#' effect, whose p-value is from the \eqn{\frac12\chi^2_0 + \frac12\chi^2_1}{0.5 chi2(0) + 0.5
#' chi2(1)} mixture (Self & Liang 1987) because \eqn{\tau^2 = 0} is on the boundary, and the
#' exact one-way ANOVA F test (\eqn{MSG/MSE \sim F_{m-1, N-m}} under \eqn{\tau^2 = 0}, balanced
#' or not), the finite-sample test there. Fits of other models are refused (class
#' `hnm_error_argument`): [ranova()] tests their random-effect terms, and `anova(m0, m1)`
#' compares fits with and without a random effect, with the mixture reference for boundary
#' steps (see [anova.hnm_fit()]).
#'
#' @param model An `hnm_fit` of the one-way model (ML, REML or ANOVA; the LRT is of the ML
#'   fits).
#' @param ... Not used; an error if given.
#' @return A data frame of class `c("anova", "data.frame")` with a `heading`: rows `LRT` and
#'   `F`, columns `Statistic`, `Df`, `Df.res` and `Pr(>Stat)`.
#' @references Self, S. G. and Liang, K.-Y. (1987). Asymptotic properties of maximum
#'   likelihood estimators and likelihood ratio tests under nonstandard conditions.
#'   *Journal of the American Statistical Association* 82, 605-610.
#' @examples
#' fit <- hnm_fit(y ~ 1 | g, wheat)
#' tau2_test(fit)
#' @export
tau2_test <- function(model, ...) {
  call <- sys.call()
  check_no_dots(list(...), call)
  require_one_way(model, "tau2_test(), the tests of tau^2 = 0,", call)
  ml <- ml_estimate(model, call)
  summary <- model$response_summary
  null_deviance <- summary[["n"]] * (1 + log(2 * pi * summary[["sst"]] / summary[["n"]]))
  lrt <- if (ml$re_covariance[1L, 1L] == 0) 0 else max(null_deviance - ml$deviance, 0)
  a <- rust_result(rs_anova_fit(lmm_model(model)), call = call)
  f <- a$msg / a$mse
  table <- data.frame(
    Statistic = c(lrt, f), Df = c(NA, a$df_between), Df.res = c(NA, a$df_within),
    p = c(mixture_p(lrt), stats::pf(f, a$df_between, a$df_within, lower.tail = FALSE)),
    row.names = c("LRT", "F")
  )
  names(table)[4L] <- "Pr(>Stat)"
  heading <- c(
    sprintf("Tests of tau^2 = 0 (no between-group variance) in %s%s\n",
            deparse1(model$formula), if (model$method != "ML") " (LRT on the ML refit)" else ""),
    paste("LRT: -2 log likelihood ratio of the ML fits without and with tau^2; p-value from",
          "the 0.5 chi2(0) + 0.5 chi2(1) mixture (Self & Liang 1987)"),
    "F:   exact one-way ANOVA F = MSG/MSE ~ F(m - 1, N - m) under tau^2 = 0\n"
  )
  structure(table, heading = heading, class = c("anova", "data.frame"))
}
# lme4's model-comparison table for hnm_fit and intercept-only lm fits of one response.
compare_fits <- function(fits, names, call) {
  models <- lapply(seq_along(fits), function(i) describe_fit(fits[[i]], names[[i]], call))
  if (any(vapply(models, `[[`, logical(1), "refitted"))) {
    message("refitting model(s) with ML (instead of REML or ANOVA)")
  }
  check_same_data(models, call)
  check_lm_fixed(models, call)
  models <- models[order(vapply(models, `[[`, numeric(1), "npar"))]
  column <- function(field) vapply(models, `[[`, numeric(1), field)
  npar <- column("npar")
  deviance <- column("deviance")
  n_obs <- models[[1L]]$summary[["n"]]
  chisq <- c(NA, pmax(-diff(deviance), 0))
  df <- c(NA, diff(npar))
  # A step that adds one random effect tests a variance on its boundary (module comment).
  added <- c(list(NULL), lapply(seq_along(models)[-1L], function(i) {
    added_random_effect(models[[i - 1L]], models[[i]])
  }))
  mixture_df <- vapply(added, function(a) if (is.null(a)) NA_real_ else a$df, numeric(1))
  boundary_step <- !is.na(mixture_df) & df == mixture_df
  # Where the added variance is estimated as exactly 0, the larger model's optimum is the
  # smaller's and the likelihood ratio is exactly 1: the statistic is 0, not the rounding
  # noise of two deviances computed along different paths (which, positive, would put it on
  # the chi2 half of the mixture: p = 0.5 instead of 1).
  chisq[boundary_step & vapply(added, function(a) isTRUE(a$variance == 0), logical(1))] <- 0
  p <- ifelse(is.na(df) | df <= 0, NA_real_, stats::pchisq(chisq, pmax(df, 1), lower.tail = FALSE))
  p[boundary_step] <- mixture_p(chisq[boundary_step], mixture_df[boundary_step])
  table <- data.frame(npar = npar, AIC = deviance + 2 * npar, BIC = deviance + log(n_obs) * npar,
                      logLik = -deviance / 2, deviance = deviance, Chisq = chisq, Df = df,
                      p = p, row.names = make.unique(vapply(models, `[[`, "", "name")))
  names(table)[8L] <- "Pr(>Chisq)"
  data_name <- Filter(Negate(is.null), lapply(models, `[[`, "data"))
  heading <- c(if (length(data_name)) paste("Data:", data_name[[1L]]), "Models:",
               paste0(rownames(table), ": ",
                      vapply(models, `[[`, "", "formula")))
  for (i in which(boundary_step)) {
    heading <- c(heading, sprintf(paste(
      "Pr(>Chisq) of %s: adds a random effect, testing its variance at 0 on the boundary:",
      "p-value from the %s mixture (Self & Liang 1987; Stram & Lee 1994), not chi2(%d)"),
      rownames(table)[i], mixture_label(mixture_df[i]), as.integer(mixture_df[i])))
  }
  structure(table, heading = heading, class = c("anova", "data.frame"))
}

# What the comparison needs of one fit: ML deviance, npar, response summary, labels.
describe_fit <- function(fit, name, call) {
  if (inherits(fit, "hnm_fit")) return(describe_lmm(fit, name, call))
  if (!inherits(fit, "lm") || inherits(fit, "glm") || !is.null(fit$weights)) {
    hnm_abort(sprintf(paste("anova() compares hnm_fit objects and unweighted lm() fits of",
                            "the same response, but `%s` is %s."), name,
                      if (inherits(fit, "lm")) "a weighted lm or a glm" else
                        sprintf("of class %s", class(fit)[1L])), call = call)
  }
  y <- stats::model.response(stats::model.frame(fit))
  ll <- stats::logLik(fit)
  list(name = name, is_hnm = FALSE, refitted = FALSE, npar = attr(ll, "df"),
       deviance = -2 * c(ll), fixed = names(stats::coef(fit)),
       random = list(), variances = list(), group = NULL,
       summary = c(n = length(y), mean = mean(y), sst = sum((y - mean(y))^2)),
       formula = deparse1(stats::formula(fit)),
       data = if (!is.null(fit$call$data)) deparse1(fit$call$data))
}

# An lm() is the model without random effects of an hnm fit: it must have that fit's fixed
# effects.
check_lm_fixed <- function(models, call) {
  hnm_fixed <- lapply(Filter(function(m) m$is_hnm, models), `[[`, "fixed")
  for (model in Filter(function(m) !m$is_hnm, models)) {
    if (!any(vapply(hnm_fixed, setequal, logical(1), model$fixed))) {
      hnm_abort(sprintf(paste("`%s` is an lm() whose coefficients (%s) are not the fixed effects",
                              "of an hnm fit compared; anova() compares an hnm fit with the lm()",
                              "of the same fixed effects (the model without random effects)."),
                        model$name, paste(model$fixed, collapse = ", ")), call = call)
    }
  }
}

# Fits must share their data, as lme4's anova() requires: the same `data` in their calls (lme4
# compares the expressions, so a column added to the data frame between the fits is no
# change), and the same response (N, mean and total sum of squares), which fits from
# statistics tables also have.
check_same_data <- function(models, call) {
  for (model in models[-1L]) {
    if (!identical(model$data, models[[1L]]$data)) {
      hnm_abort(sprintf(paste("`%s` and `%s` were fitted to different data (`data = %s` and",
                              "`%s`); anova() compares fits to the same data, as lme4's."),
                        models[[1L]]$name, model$name, models[[1L]]$data %||% "none",
                        model$data %||% "none"),
                call = call, class = "hnm_error_argument")
    }
  }
  reference <- models[[1L]]$summary
  for (model in models[-1L]) {
    if (!isTRUE(all.equal(model$summary, reference, tolerance = 1e-10))) {
      hnm_abort(sprintf(paste("`%s` and `%s` were fitted to different data (%d and %d",
                              "observations, or different responses); anova() compares fits",
                              "to the same data."), models[[1L]]$name, model$name,
                        as.integer(reference[["n"]]), as.integer(model$summary[["n"]])),
                call = call)
    }
  }
}

# p-value of a likelihood-ratio statistic under 0.5 chi2(df - 1) + 0.5 chi2(df) (chi2(0) is
# the point mass at 0).
mixture_p <- function(statistic, df = 1) {
  ifelse(statistic > 0, 0.5 * stats::pchisq(statistic, df - 1, lower.tail = FALSE) +
           0.5 * stats::pchisq(statistic, df, lower.tail = FALSE), 1)
}

mixture_label <- function(df) sprintf("0.5 chi2(%d) + 0.5 chi2(%d)", as.integer(df - 1), as.integer(df))

# The comparison of `smaller` with `larger` tests a variance on its boundary when they have the
# same fixed effects and `larger` adds one random effect (blocks are told apart by their columns
# and grouping factor): to a block of
# s - 1 correlated effects (s - 1 covariances and a variance, all 0 under the null), or as a
# block of its own (s = 1). Then the LRT is asymptotically 0.5 chi2(s - 1) + 0.5 chi2(s)
# (Stram & Lee 1994). The result is s (`df`) and the added effect's variance in `larger`'s ML
# fit (`variance`, from the model description's `variances`, by block); NULL for any other
# comparison.
added_random_effect <- function(smaller, larger) {
  if (!setequal(smaller$fixed, larger$fixed)) return(NULL)
  key <- function(blocks) vapply(blocks, function(b) paste(sort(b), collapse = "\r"), "")
  is_added <- !key(larger$random) %in% key(smaller$random)
  added <- larger$random[is_added]
  removed <- smaller$random[!key(smaller$random) %in% key(larger$random)]
  if (length(added) != 1L || length(removed) > 1L) return(NULL)
  grown <- added[[1L]]
  old <- if (length(removed)) removed[[1L]] else character()
  if (length(grown) != length(old) + 1L || !all(old %in% grown)) return(NULL)
  column <- match(setdiff(grown, old), grown)
  list(df = length(grown), variance = larger$variances[[which(is_added)]][[column]])
}

check_one_fit_arguments <- function(no_type, no_ddf, call) {
  if (!no_type || !no_ddf) {
    hnm_abort(paste("`type` and `ddf` are for the F tests of the fixed effects of one fit",
                    "(anova(fit, type = ...)); a comparison of fits takes neither."),
              call = call, class = "hnm_error_argument")
  }
}

# What anova()'s comparison needs of a fit with covariates: its ML deviance and variances
# (refitting a REML fit by ML, warm-started, without replacing the fit), npar, its terms and
# a summary of the response.
describe_lmm <- function(fit, name, call) {
  ml <- ml_estimate(fit, call)
  c(list(name = name, is_hnm = TRUE, refitted = fit$method != "ML", npar = n_parameters(fit),
         deviance = ml$deviance),
    random_layout(fit, ml),
    list(summary = fit$response_summary, formula = deparse1(fit$formula),
         data = if (!is.null(fit$call$data)) deparse1(fit$call$data)))
}

# A general fit's fixed effects, grouping factor and random-effects blocks with the variances
# of its ML fit `ml`, by block: what added_random_effect() compares.
random_layout <- function(fit, ml) {
  variances <- diag(ml$re_covariance)
  # Each block's columns named with its grouping factor, so that blocks of other factors differ;
  # an interaction's variables sorted, as a:b and b:a (lme4's name for a/b's) are one factor.
  groups <- vapply(strsplit(term_groups(fit), ":", fixed = TRUE),
                   function(v) paste(sort(v), collapse = ":"), "")
  list(fixed = fit$fixed_names,
       random = Map(function(names, group) paste(group, names, sep = "\r"), fit$random_names,
                    groups),
       variances = lapply(block_ranges(fit), function(i) variances[i]))
}

#' Drop each fixed-effect term in turn
#'
#' lme4's `drop1()`: the model without each fixed-effect term that can be dropped (respecting
#' marginality, as [stats::drop.scope()]), with its AIC and, for `test = "Chisq"`, the
#' likelihood-ratio test against the full model. Fixed effects are compared by ML: a REML or
#' ANOVA fit is refitted by ML first (with a message, as `anova()` does), where lme4 compares
#' REML criteria of models with different fixed effects.
#'
#' @param object An `hnm_fit` made from rows.
#' @param scope The terms to drop: a character vector of term labels or a formula; by default
#'   every term not contained in another.
#' @param test `"none"` or `"Chisq"` (the LRT, referred to \eqn{\chi^2} with the number of
#'   coefficients dropped).
#' @param k The penalty per parameter of the AIC.
#' @param ... Not used; an error if given.
#' @return A data frame of class `anova` with lme4's columns `npar`, `AIC` and, for
#'   `test = "Chisq"`, `LRT` and `Pr(Chi)`.
#' @examples
#' fit <- hnm_fit(Reaction ~ Days + I(Days^2) + (Days | Subject), lme4::sleepstudy)
#' drop1(fit, test = "Chisq")
#' @importFrom stats drop1
#' @export
drop1.hnm_fit <- function(object, scope, test = c("none", "Chisq"), k = 2, ...) {
  call <- sys.call()
  check_no_dots(list(...), call)
  test <- match.arg(test)
  labels <- attr(object$terms, "term.labels")
  scope <- if (missing(scope)) stats::drop.scope(object$terms) else drop_scope(scope, labels, call)
  check_call_describes(object, "drop1()", call)
  if (object$method != "ML") {
    message("refitting model(s) with ML (instead of REML or ANOVA)")
    object <- refitML(object)
  }
  fits <- lapply(scope, function(term) {
    reduced_fit(object, stats::update(object$formula, stats::as.formula(paste("~ . -", term))),
                term, call)
  })
  npar <- vapply(c(list(object), fits), n_parameters, numeric(1))
  deviance <- vapply(c(list(object), fits), `[[`, numeric(1), "deviance")
  table <- data.frame(npar = c(NA, npar[1L] - npar[-1L]), AIC = deviance + k * npar,
                      row.names = c("<none>", scope))
  if (test == "Chisq") {
    lrt <- c(NA, deviance[-1L] - deviance[1L])
    table$LRT <- lrt
    # A term without estimable coefficients (aliased: npar 0) has no test, as in stats' drop1.
    table[["Pr(Chi)"]] <- ifelse(table$npar > 0, stats::pchisq(pmax(lrt, 0), table$npar,
                                                                lower.tail = FALSE), NA_real_)
  }
  structure(table, heading = c("Single term deletions", "\nModel:", deparse1(object$formula)),
            class = c("anova", "data.frame"))
}

#' @rdname drop1.hnm_fit
#' @param fit An `hnm_fit`: `extractAIC()` gives lme4's equivalent degrees of freedom (the
#'   parameters' count) and AIC of the fit by ML (a REML fit refitted by ML, as lme4 does).
#' @param scale Not used (0, as lme4's); an error otherwise.
#' @importFrom stats extractAIC
#' @export
extractAIC.hnm_fit <- function(fit, scale = 0, k = 2, ...) {
  call <- sys.call()
  check_no_dots(list(...), call)
  if (!identical(scale, 0)) {
    hnm_abort("`scale` is for lm(); a mixed model's AIC has its own residual variance.",
              call = call, class = "hnm_error_argument")
  }
  log_lik <- stats::logLik(refitML(fit))
  df <- attr(log_lik, "df")
  c(df, -2 * as.numeric(log_lik) + k * df)
}

# The labels of a `scope` given to drop1() (characters, or a formula's terms), which must be
# terms of the fit's fixed part.
drop_scope <- function(scope, labels, call) {
  if (inherits(scope, "formula")) scope <- attr(stats::terms(scope), "term.labels")
  if (!is.character(scope) || !all(scope %in% labels)) {
    hnm_abort(sprintf("`scope` must name terms of the fixed part (%s).",
                      paste(labels, collapse = ", ")), call = call, class = "hnm_error_argument")
  }
  scope
}

# What refits a model from its call (drop1(), ranova()) refuses a fit whose response refit()
# replaced: its call no longer describes it.
check_call_describes <- function(object, what, call) {
  if (isTRUE(object$refitted)) {
    hnm_abort(sprintf(paste("%s refits the model from its call, whose response refit() replaced;",
                            "fit the new response with hnm_fit() first."), what), call = call,
              class = "hnm_error_argument")
  }
}

# The fit of `formula` (`label`: what it leaves out) by `object`'s call, with its data, subset,
# na.action, offset, contrasts and control, on the same rows: an hnm fit by ML, or by REML for
# `reml`; a formula without random effects is the lm() of the call's row arguments, as
# lmerTest's ranova() fits it.
reduced_fit <- function(object, formula, label, call, reml = FALSE) {
  refit_call <- object$call
  if (length(find_bars(formula[[3L]]))) {
    # `start` is the fit's theta, not the reduced model's.
    refit_call[c("REML", "method", "start")] <- NULL
    if (reml) refit_call$REML <- TRUE
  } else {
    refit_call <- refit_call[!names(refit_call) %in% c("REML", "method", "stats", "start",
                                                       "control", "verbose")]
    refit_call[[1L]] <- quote(stats::lm)
  }
  refit_call$formula <- formula
  fit <- eval(refit_call, environment(object$formula))
  if (nobs(fit) != nobs(object)) {
    hnm_abort(sprintf(paste("without `%s` the model uses %d rows instead of %d (missing values in",
                            "that term's variables): drop the rows with missing values first."),
                      label, nobs(fit), nobs(object)), call = call, class = "hnm_error_argument")
  }
  fit
}
