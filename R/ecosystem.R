# Methods for the easystats packages (insight, performance, parameters) and for emmeans,
# registered in .onLoad (zzz.R) when those packages are loaded, so none is a dependency.
# Every method is written against hnm's public accessors (fixef, vcov, VarCorr, ranef,
# sigma, nobs, isSingular, df.residual, formula, ...), so it serves any fit whose accessors
# have lme4's shapes.

#' hnm fits in insight, performance, parameters and emmeans
#'
#' Methods that make the easystats packages and emmeans work with `hnm_fit` objects, giving
#' the numbers those packages give for the equivalent `lme4::lmer()` fit. They are
#' registered when hnm is loaded (or when the other package is loaded later); call the
#' packages' functions as usual.
#'
#' * `insight::find_formula()`: `conditional` (the fixed part, `y ~ 1` for the one-way
#'   model) and `random` (`~1 | g`, a list of one formula per term with several), as for a
#'   merMod, so the functions built on it (`find_random()`, `find_random_slopes()`,
#'   `get_data()`, ...) see every random-effects term.
#' * `insight::get_parameters()`: `effects = "fixed"` gives a data frame with `Parameter`
#'   and `Estimate`; `effects = "random"` the conditional modes, [ranef.hnm_fit()].
#' * `insight::get_variance()`: the variance components of Nakagawa et al. (2017) for a
#'   linear mixed model: `var.fixed` (variance of the fixed-effect predictions
#'   \eqn{X\hat\beta}), `var.random` (mean over rows of \eqn{z_i'\hat\Sigma z_i}, which is
#'   \eqn{\hat\tau^2} for random intercepts), `var.residual` and `var.distribution`
#'   (\eqn{\hat\sigma^2}), `var.dispersion` (0), `var.intercept` (named by the group) and, with
#'   random slopes, `var.slope` and `cor.slope_intercept`.
#' * `performance::icc()` and `performance::r2()` (Nakagawa's \eqn{R^2}) use these;
#'   `performance::check_singularity()` is [isSingular()] at performance's tolerance.
#' * `stats::family()` is `gaussian()`, as for an lmer fit, so `insight::model_info()` is
#'   that of an lmer fit; `performance::model_performance()`, `performance_aic()`,
#'   `performance_aicc()`, `insight::get_predicted()` and `insight::get_data()` are
#'   performance's and insight's methods for lmer, run on the fit (the information criteria
#'   by default on the REML criterion, as for lmer). `insight::get_loglikelihood()` is
#'   [logLik()], of the fit's own criterion or of the one `REML` or `estimator` asks for (the
#'   other one at the fit's estimates, as lme4's). `insight::find_parameters()`,
#'   `n_parameters()`, `get_df()` (`type` `"residual"`, `"model"`, `"analytical"`, `"normal"`
#'   or `"wald"`; hnm's
#'   Satterthwaite and Kenward-Roger degrees of freedom are [anova()]'s and [contest()]'s)
#'   and `get_statistic()` (the fixed effects' \eqn{t}) are insight's for lmer.
#'   `performance::check_convergence()` is `TRUE` unless hnm_fit() warned that the fit did
#'   not converge (it has no `tolerance`: hnm's test is its optimiser's, not performance's
#'   test of lme4's derivatives).
#' * `parameters::model_parameters()`: the fixed effects with Wald \eqn{t} intervals and
#'   p-values on `df.residual(fit)` degrees of freedom (as parameters does for lmer), and the
#'   standard deviations of the random effects and the residual (without intervals, as
#'   parameters gives them for lmer without the merDeriv package; `confint(fit)` has them).
#' * `emmeans::emmeans()` and `emmeans::emtrends()` on the fixed effects. Their degrees of
#'   freedom are by default emmeans' for lmer (`emm_options(lmer.df)`): Kenward-Roger's for a
#'   REML fit of at most `emm_options(pbkrtest.limit)` rows (3,000; emmeans' covariance is
#'   then [vcov_kenward_roger()] and the df pbkrtest's `Lb_ddf`, as emmeans does for lmer),
#'   and Satterthwaite's (lmerTest's) for an ML fit, whose Kenward-Roger's hnm does not give
#'   (emmeans computes pbkrtest's for an ML lmer), and for more rows (emmeans gives lmer
#'   asymptotic ones there). `lmer.df = "satterthwaite"`, `"kenward-roger"` (REML fits only,
#'   as lmerTest) or `"asymptotic"` chooses (an ANOVA fit has only asymptotic ones). With aliased (dropped) fixed-effect columns the non-estimable functions are
#'   marked as emmeans marks them for lmer (`nbasis`, the null space of the model matrix).
#'
#' @param x,model,object An `hnm_fit`.
#' @param effects For `get_parameters`: `"fixed"` or `"random"`. For `model_parameters`:
#'   `"all"`, `"fixed"` or `"random"`.
#' @param component For `get_variance`: which components, as in insight.
#' @param verbose Logical: for `get_variance`, warn when a random-effect variance is below
#'   `tolerance`.
#' @param tolerance For `get_variance` and `check_singularity`: variances (or \eqn{\theta})
#'   below this count as zero.
#' @param ci For `model_parameters`: confidence level of the fixed effects' intervals. For
#'   `get_predicted`: `NULL` only (hnm's intervals are [predict.hnm_fit()]'s).
#' @param ci_method For `model_parameters`: `NULL`, `"wald"` or `"residual"` (\eqn{t} on
#'   `df.residual(fit)` degrees of freedom, lmer's default), or `"normal"` (\eqn{z}).
#' @param trms,xlev,grid For `emm_basis`: supplied by emmeans.
#' @param estimator,REML,check_response For `get_loglikelihood`, as insight's for lmer.
#' @param type For `get_df`: which degrees of freedom, as insight's for lmer.
#' @param ... For `family`, `check_convergence`, `get_loglikelihood` and `get_statistic`:
#'   none. For `get_df`: `verbose`. For `get_variance`: performance's bookkeeping arguments
#'   (`name_fun`, `name_full`) and parameters' `model_component` (`"conditional"`, the model's
#'   only one). For `r2`: passed to `performance::r2_nakagawa()`. For `model_performance`,
#'   `performance_aic`, `performance_aicc`, `get_predicted` and `get_data`: performance's and
#'   insight's arguments for a merMod. For `emm_basis`: `mode` or `lmer.df`,
#'   `"satterthwaite"`, `"kenward-roger"` or `"asymptotic"`. Anything else is an error.
#' @return What the package's function returns for a merMod.
#' @references Nakagawa, S., Johnson, P. C. D. and Schielzeth, H. (2017). The coefficient of
#'   determination R2 and intra-class correlation coefficient from generalized linear
#'   mixed-effects models revisited and expanded. *J. R. Soc. Interface* 14, 20170213.
#' @examples
#' fit <- hnm_fit(y ~ 1 | g, wheat)
#' if (requireNamespace("performance", quietly = TRUE)) {
#'   print(performance::icc(fit))
#'   print(performance::r2(fit))
#' }
#' if (requireNamespace("parameters", quietly = TRUE)) {
#'   print(parameters::model_parameters(fit))
#' }
#' if (requireNamespace("emmeans", quietly = TRUE)) {
#'   print(emmeans::emmeans(fit, ~ 1))
#' }
#' @name hnm-ecosystem
NULL

# The model's formula in lme4's form, split into the fixed part and its random-effects terms
# `(lhs | group)`, each bar expanded as lme4's findbars() (and insight's for a merMod) expands
# it: `(x || g)` into `(1 | g)` and `(0 + x | g)`, `(1 | a/b)` into `(1 | b:a)` and `(1 | a)`,
# in the formula's order; hnm's shorthand `y ~ 1 | g` is `y ~ 1 + (1 | g)`.
formula_parts <- function(x) {
  f <- formula(x)
  factors <- parse_mixed_formula(f, several = TRUE)$factors
  terms <- unlist(lapply(factors, function(factor) {
    lapply(factor$random, function(lhs) call("|", lhs, factor$expr))
  }), recursive = FALSE)
  positions <- unlist(lapply(factors, `[[`, "position"))
  list(fixed = drop_bars(f[[3L]]) %||% 1, bars = terms[order(positions)])
}

fixed_formula <- function(x) {
  f <- formula(x)
  stats::as.formula(call("~", f[[2L]], formula_parts(x)$fixed), env = environment(f))
}

# insight's `random` of a merMod: one one-sided formula per term, a single formula for one.
random_formula <- function(x) {
  env <- environment(formula(x))
  random <- lapply(formula_parts(x)$bars,
                   function(bar) stats::as.formula(call("~", bar), env = env))
  if (length(random) == 1L) random[[1L]] else random
}

# An error for arguments in `...` that a method does not take (all but `allowed`), named
# as the user gave them, so no argument is silently ignored.
reject_arguments <- function(dots, what, call, allowed = character()) {
  given <- if (is.null(names(dots))) rep("", length(dots)) else names(dots)
  bad <- given[given == "" | !given %in% allowed]
  if (length(bad)) {
    labels <- ifelse(bad == "", "an unnamed argument", paste0("`", bad, "`"))
    hnm_abort(sprintf("%s does not support %s.", what, paste(labels, collapse = ", ")),
              call = call)
  }
}

#' @rdname hnm-ecosystem
#' @method find_formula hnm_fit
find_formula.hnm_fit <- function(x, verbose = TRUE, ...) {
  reject_arguments(list(...), "find_formula() for an hnm_fit", sys.call())
  structure(list(conditional = fixed_formula(x), random = random_formula(x)),
            class = c("insight_formula", "list"))
}

#' @rdname hnm-ecosystem
#' @method get_parameters hnm_fit
get_parameters.hnm_fit <- function(x, effects = c("fixed", "random"), ...) {
  effects <- match.arg(effects)
  reject_arguments(list(...), "get_parameters() for an hnm_fit", sys.call())
  if (effects == "random") return(ranef(x, condVar = TRUE))
  beta <- fixef(x)
  data.frame(Parameter = names(beta), Estimate = unname(beta), stringsAsFactors = FALSE)
}

#' @rdname hnm-ecosystem
#' @method get_variance hnm_fit
get_variance.hnm_fit <- function(x, component = c("all", "fixed", "random", "residual",
                                                  "distribution", "dispersion", "intercept",
                                                  "slope", "rho01", "rho00"),
                                 verbose = TRUE, tolerance = 1e-05, ...) {
  component <- match.arg(component)
  dots <- list(...)
  reject_arguments(dots, "get_variance() for an hnm_fit", sys.call(),
                   allowed = c("name_fun", "name_full", "model_component"))
  # parameters' random_parameters() asks for a model component; a linear mixed model has one.
  if (!is.null(dots$model_component) && !identical(dots$model_component, "conditional")) {
    hnm_abort(sprintf(paste("get_variance() for an hnm_fit has only the \"conditional\" model",
                            "component, not %s."), deparse1(dots$model_component)),
              call = sys.call(), class = "hnm_error_argument")
  }
  X <- stats::model.matrix(x)
  vc <- VarCorr(x)
  groups <- term_groups(x)
  out <- list(var.fixed = stats::var(as.vector(X %*% fixef(x))), var.random = 0,
              var.residual = sigma(x)^2, var.distribution = sigma(x)^2, var.dispersion = 0)
  # insight's rows z_i for a merMod are the columns of X the random-effects terms name, an
  # intercept of ones added when X has none; a term whose covariate is not in X is left out
  # (with insight's warning that the random variance is then inflated).
  if (!"(Intercept)" %in% colnames(X)) X <- cbind(`(Intercept)` = 1, X)
  absent <- setdiff(unlist(lapply(vc, rownames)), colnames(X))
  if (length(absent) && isTRUE(verbose)) {
    hnm_warn(sprintf(paste("Random slopes not present as fixed effects (%s): this inflates the",
                           "conditional random-effect variances; add them to the fixed part."),
                     paste0("`", absent, "`", collapse = ", ")))
  }
  # Each random-effects term (one per grouping factor and block), as insight for a merMod:
  # its mean variance over the rows, its intercept's variance named by its factor, and its
  # slopes' variances and correlations with the intercept.
  for (k in seq_along(vc)) {
    Sigma <- vc[[k]]
    group <- groups[k]
    found <- rownames(Sigma) %in% colnames(X)
    Z <- X[, rownames(Sigma)[found], drop = FALSE]
    out$var.random <- out$var.random + sum((Z %*% Sigma[found, found, drop = FALSE]) * Z) / nrow(Z)
    intercept <- rownames(Sigma)[1L] == "(Intercept)"
    if (intercept) out$var.intercept <- c(out$var.intercept, setNames(Sigma[1L, 1L], group))
    slopes <- setdiff(rownames(Sigma), "(Intercept)")
    if (length(slopes)) {
      out$var.slope <- c(out$var.slope, setNames(diag(Sigma)[slopes], paste(group, slopes, sep = ".")))
    }
    if (intercept && length(slopes)) {
      out$cor.slope_intercept <- c(out$cor.slope_intercept,
                                   setNames(attr(Sigma, "correlation")[slopes, 1L], rep(group, length(slopes))))
    }
  }
  group <- paste(unique(groups), collapse = "`, `")
  # As insight does for a singular merMod: no var.random (so performance's ICC and
  # conditional R2 are NA), with a warning naming what cannot be computed.
  if (isSingular(x, tol = tolerance) && !component %in% c("slope", "intercept")) {
    if (isTRUE(verbose)) {
      what <- if (is.null(dots$name_full)) "random effect variances" else dots$name_full
      hnm_warn(sprintf(paste("Can't compute %s: the variance of the random effects of `%s` is",
                             "zero (a singular fit, see isSingular()); decrease `tolerance`",
                             "to compute it anyway."), what, group))
    }
    out$var.random <- NULL
  }
  switch(component,
    all = out,
    rho00 = list(),
    out[intersect(switch(component, fixed = "var.fixed", random = "var.random",
                         residual = "var.residual", distribution = "var.distribution",
                         dispersion = "var.dispersion", intercept = "var.intercept",
                         slope = "var.slope", rho01 = "cor.slope_intercept"), names(out))]
  )
}

#' @rdname hnm-ecosystem
#' @method r2 hnm_fit
r2.hnm_fit <- function(model, ...) performance::r2_nakagawa(model, ...)

#' @rdname hnm-ecosystem
#' @method check_singularity hnm_fit
check_singularity.hnm_fit <- function(x, tolerance = 1e-05, ...) {
  reject_arguments(list(...), "check_singularity() for an hnm_fit", sys.call())
  isSingular(x, tol = tolerance)
}

#' @rdname hnm-ecosystem
#' @method check_convergence hnm_fit
check_convergence.hnm_fit <- function(x, ...) {
  reject_arguments(list(...), "check_convergence() for an hnm_fit", sys.call())
  # hnm's own test of its optimum, the one hnm_fit() warns about when it fails (performance's
  # test for a merMod reads lme4's numerical derivatives, which an hnm fit has not).
  is.null(convergence_problem(x))
}

# performance's and insight's methods for lme4's fits (package_method(), R/methods.R) read a
# fit through the accessors hnm gives as lme4 does (logLik, r2, icc, residuals, sigma,
# predict): their default methods refuse a class insight does not know, or do not find
# predict()'s arguments in a list.

#' @rdname hnm-ecosystem
#' @method model_performance hnm_fit
model_performance.hnm_fit <- function(model, ...) {
  package_method("model_performance", "merMod", "performance")(model, ...)
}

#' @rdname hnm-ecosystem
#' @method get_predicted hnm_fit
get_predicted.hnm_fit <- function(x, ..., ci = NULL) {
  # insight's intervals for a merMod read model.matrix(fit, data = ) and its covariances;
  # hnm's are predict()'s.
  if (!is.null(ci)) {
    hnm_abort(paste("get_predicted(ci = ) of an hnm_fit is not available; predict(fit, newdata,",
                    "interval = \"confidence\" or \"prediction\") gives hnm's intervals."),
              call = sys.call(), class = "hnm_error_argument")
  }
  package_method("get_predicted", "lmerMod", "insight")(x, ...)
}

#' @rdname hnm-ecosystem
#' @method get_data hnm_fit
get_data.hnm_fit <- function(x, ...) {
  package_method("get_data", "merMod", "insight")(x, ...)
}

#' @rdname hnm-ecosystem
#' @method find_parameters hnm_fit
find_parameters.hnm_fit <- function(x, ...) {
  package_method("find_parameters", "merMod", "insight")(x, ...)
}

#' @rdname hnm-ecosystem
#' @method n_parameters hnm_fit
n_parameters.hnm_fit <- function(x, ...) {
  package_method("n_parameters", "merMod", "insight")(x, ...)
}

#' @rdname hnm-ecosystem
#' @method get_df hnm_fit
get_df.hnm_fit <- function(x, type = "residual", ...) {
  call <- sys.call()
  reject_arguments(list(...), "get_df() for an hnm_fit", call, allowed = "verbose")
  # insight computes Satterthwaite's and Kenward-Roger's for a merMod with lmerTest and
  # pbkrtest, which read lme4's fit; hnm's are anova()'s and contest()'s.
  types <- c("residual", "model", "analytical", "normal", "wald")
  if (!is.character(type) || length(type) != 1L || !tolower(type) %in% types) {
    hnm_abort(sprintf("get_df() for an hnm_fit takes `type` %s, not %s.",
                      paste0("\"", types, "\"", collapse = ", "), deparse1(type)),
              call = call, class = "hnm_error_argument")
  }
  # insight's default method asks find_statistic(), which knows only its own classes, for
  # the statistic: lmer's is a t.
  package_method("get_df", "lmerMod", "insight")(x, type = type, statistic = "t-statistic", ...)
}

#' @rdname hnm-ecosystem
#' @method get_statistic hnm_fit
get_statistic.hnm_fit <- function(x, ...) {
  reject_arguments(list(...), "get_statistic() for an hnm_fit", sys.call())
  statistic <- wald_t_table(x)[, "t value"]
  structure(data.frame(Parameter = names(statistic), Statistic = unname(statistic),
                       stringsAsFactors = FALSE),
            statistic = "t-statistic")
}

# performance's information criteria of an lmer fit are by default on the REML criterion,
# whichever criterion the fit minimised (the REML criterion at an ML fit's estimates).
#' @rdname hnm-ecosystem
#' @method performance_aic hnm_fit
performance_aic.hnm_fit <- function(x, ...) {
  package_method("performance_aic", "lmerMod", "performance")(x, ...)
}

#' @rdname hnm-ecosystem
#' @method performance_aicc hnm_fit
performance_aicc.hnm_fit <- function(x, ...) {
  package_method("performance_aicc", "lmerMod", "performance")(x, ...)
}

#' @rdname hnm-ecosystem
#' @method get_loglikelihood hnm_fit
get_loglikelihood.hnm_fit <- function(x, estimator = NULL, REML = FALSE, check_response = FALSE,
                                      verbose = TRUE, ...) {
  call <- sys.call()
  # `verbose`, which insight's and performance's callers pass, has nothing to report here.
  reject_arguments(list(...), "get_loglikelihood() for an hnm_fit", call)
  # insight's choice for an lmer fit: the fit's own criterion unless one is asked for.
  reml <- if (is.null(estimator) && missing(REML)) is_reml(x) else
    identical(estimator, "REML") || isTRUE(REML)
  # insight corrects the likelihood of a transformed response (log(y), ...) for a merMod,
  # which is not done here.
  response <- formula(x)[[2L]]
  if (isTRUE(check_response) && !is.name(response)) {
    hnm_abort(sprintf(paste("get_loglikelihood(check_response = TRUE) of an hnm_fit does not",
                            "correct for a transformed response (`%s`)."), deparse1(response)),
              call = call, class = "hnm_error_argument")
  }
  # The other criterion at the fit's estimates is lme4's logLik(REML =)'s.
  logLik(x, REML = reml)
}

# lme4's family() of an lmer fit, which insight's model_info() reads.
#' @rdname hnm-ecosystem
#' @importFrom stats family
#' @export
family.hnm_fit <- function(object, ...) {
  check_no_dots(list(...), sys.call())
  stats::gaussian()
}

#' @rdname hnm-ecosystem
#' @method model_parameters hnm_fit
model_parameters.hnm_fit <- function(model, ci = 0.95, ci_method = NULL, effects = "all",
                                     verbose = TRUE, ...) {
  call <- sys.call()
  reject_arguments(list(...), "model_parameters() for an hnm_fit", call)
  effects <- match.arg(effects, c("all", "fixed", "random"))
  ci_method <- match.arg(tolower(if (is.null(ci_method)) "wald" else ci_method),
                         c("wald", "residual", "normal"))
  check_probability(ci, "ci", call)
  beta <- fixef(model)
  se <- sqrt(diag(as.matrix(vcov(model))))
  statistic <- beta / se
  df <- if (ci_method == "normal") Inf else df.residual(model)
  quantile <- stats::qt((1 + ci) / 2, df)
  fixed <- data.frame(Parameter = names(beta), Coefficient = unname(beta), SE = unname(se),
                      CI = ci, CI_low = unname(beta - quantile * se),
                      CI_high = unname(beta + quantile * se), t = unname(statistic),
                      df_error = if (is.finite(df)) as.integer(df) else Inf,
                      p = unname(2 * stats::pt(-abs(statistic), df)), Effects = "fixed",
                      Group = "", stringsAsFactors = FALSE)
  pars <- random_parameters(model)
  # parameters lists each group's SDs before its correlations (broom.mixed interleaves them).
  pars <- pars[order(match(pars$group, unique(pars$group)), pars$type == "cor"), , drop = FALSE]
  random <- data.frame(Parameter = parameters_labels(pars), Coefficient = pars$estimate,
                       SE = NA_real_, CI = ci, CI_low = NA_real_, CI_high = NA_real_,
                       t = NA_real_, df_error = NA_integer_, p = NA_real_, Effects = "random",
                       Group = pars$group, stringsAsFactors = FALSE)
  out <- switch(effects, all = rbind(fixed, random), fixed = fixed, random = random)
  rownames(out) <- NULL
  labels <- setNames(out$Parameter, out$Parameter)
  structure(out, class = c("parameters_model", "see_parameters_model", "data.frame"),
            pretty_names = setNames(names(beta), names(beta)), pretty_labels = labels,
            ci = ci, ci_method = ci_method, df_method = if (ci_method == "normal") "normal" else "residual",
            verbose = verbose, exponentiate = FALSE, ordinal_model = FALSE, linear_model = TRUE,
            mixed_model = TRUE, n_obs = nobs(model), model_class = "hnm_fit", bootstrap = FALSE,
            iterations = 1000, robust_vcov = FALSE, ignore_group = TRUE, ran_pars = TRUE,
            show_summary = FALSE, log_link = FALSE, weighted_nobs = nobs(model),
            test_statistic = if (ci_method == "normal") "z-statistic" else "t-statistic",
            log_response = FALSE, log_predictors = FALSE,
            model_formula = paste(deparse(fixed_formula(model)), collapse = " "),
            coefficient_name = "Coefficient", zi_coefficient_name = "Log-Odds", digits = 2,
            ci_digits = 2, p_digits = 3, footer_digits = 3,
            object_name = deparse(substitute(model)))
}

# The random-effect parameters in lme4's (and broom.mixed's) order: per group, the lower
# triangle of the covariance matrix column by column (SD, correlations, next SD, ...), then
# the residual. Columns group, type ("sd" or "cor"), var1, var2, estimate (SD or
# correlation), variance (variance or covariance).
random_parameters <- function(x) {
  vc <- VarCorr(x)
  rows <- list()
  for (group in names(vc)) {
    Sigma <- vc[[group]]
    sds <- attr(Sigma, "stddev")
    correlation <- attr(Sigma, "correlation")
    terms <- rownames(Sigma)
    for (j in seq_along(terms)) for (i in seq(j, length(terms))) {
      rows[[length(rows) + 1L]] <- data.frame(
        group = group, type = if (i == j) "sd" else "cor", var1 = terms[j],
        var2 = if (i == j) NA_character_ else terms[i],
        estimate = if (i == j) unname(sds[j]) else correlation[i, j],
        variance = Sigma[i, j], stringsAsFactors = FALSE)
    }
  }
  rows[[length(rows) + 1L]] <- data.frame(group = "Residual", type = "sd", var1 = "Observation",
                                          var2 = NA_character_, estimate = sigma(x),
                                          variance = sigma(x)^2, stringsAsFactors = FALSE)
  do.call(rbind, rows)
}

# parameters' labels: "SD (Intercept)", "Cor (Intercept~Days)", "SD (Observations)".
parameters_labels <- function(pars) {
  term <- function(name) sub("^\\(Intercept\\)$", "Intercept", name)
  ifelse(pars$group == "Residual", "SD (Observations)",
         ifelse(pars$type == "sd", sprintf("SD (%s)", term(pars$var1)),
                sprintf("Cor (%s~%s)", term(pars$var1), term(pars$var2))))
}

#' @rdname hnm-ecosystem
#' @method recover_data hnm_fit
recover_data.hnm_fit <- function(object, ...) {
  emmeans::recover_data(object$call, stats::delete.response(stats::terms(object)),
                        na.action = NULL, ...)
}

#' @rdname hnm-ecosystem
#' @method emm_basis hnm_fit
emm_basis.hnm_fit <- function(object, trms, xlev, grid, ...) {
  mode <- emmeans_df_mode(object, list(...))
  X <- stats::model.matrix(trms, stats::model.frame(trms, grid, na.action = stats::na.pass,
                                                    xlev = xlev),
                           contrasts.arg = object$contrasts)
  beta <- fixef(object)
  V <- as.matrix(vcov(object))
  dfargs <- list()
  dffun <- if (mode == "asymptotic") {
    structure(function(k, dfargs) Inf, mesg = "asymptotic")
  } else if (mode == "satterthwaite") {
    # emmeans evaluates dffun in an environment of its own: what it calls comes in dfargs.
    dfargs <- list(parts = satterthwaite_parts(object, NULL), df = contrast_df)
    structure(function(k, dfargs) dfargs$df(dfargs$parts, k), mesg = "Satterthwaite method")
  } else {
    dfargs <- list(parts = kr_parts(object, NULL), df = kr_ddf)
    V <- dfargs$parts$adjusted
    structure(function(k, dfargs) dfargs$df(dfargs$parts, matrix(k, 1L))$ddf,
              mesg = "Kenward-Roger method")
  }
  # As emmeans' lmer support: with aliased columns, all of X, NA for their coefficients and
  # the null space of the model matrix, here of its pseudo-rows (the same null space).
  if (length(object$dropped_fixed)) {
    bhat <- stats::setNames(rep(NA_real_, ncol(X)), colnames(X))
    bhat[names(beta)] <- beta
    pseudo <- fixed_pseudo_rows(object)
    nbasis <- estimability::nonest.basis(pseudo[, colnames(X), drop = FALSE])
  } else {
    X <- X[, names(beta), drop = FALSE]
    bhat <- beta
    nbasis <- estimability::all.estble
  }
  list(X = X, bhat = unname(bhat), nbasis = nbasis, V = V, dffun = dffun, dfargs = dfargs,
       misc = list())
}

# emmeans' degrees of freedom for a fit (`lmer.df` or `mode`, as for lmer): Satterthwaite's
# (lmerTest's) for ML and REML fits, Kenward-Roger's (REML fits), or asymptotic (an ANOVA
# fit's only ones). By default emmeans' for lmer (emm_options(lmer.df), Kenward-Roger's unless
# set), with Satterthwaite's where Kenward-Roger's are not hnm's (an ML fit) or emmeans
# would not compute them (more rows than emm_options(pbkrtest.limit), 3,000: emmeans then
# gives lmer asymptotic ones, unless lmerTest's limit is raised).
emmeans_df_mode <- function(object, dots) {
  given <- unlist(dots[intersect(c("lmer.df", "mode"), names(dots))])
  mode <- tolower(given[1L] %||% if (object$method == "ANOVA") "asymptotic" else
    emmeans::get_emm_option("lmer.df"))
  if (is.null(given) && mode == "kenward-roger" &&
      (object$method == "ML" || nobs(object) > emmeans::get_emm_option("pbkrtest.limit"))) {
    mode <- "satterthwaite"
  }
  allowed <- switch(object$method, ANOVA = "asymptotic", ML = c("satterthwaite", "asymptotic"),
                    c("satterthwaite", "kenward-roger", "asymptotic"))
  if (!mode %in% allowed) {
    hnm_abort(sprintf(paste("emmeans for this hnm_fit has %s degrees of freedom, not \"%s\"",
                            "(Kenward-Roger needs a REML fit)."),
                      paste0("\"", allowed, "\"", collapse = " or "), given[1L]),
              class = "hnm_error_argument")
  }
  mode
}
