# ranova(): lmerTest's table of likelihood-ratio tests of the random-effect terms, each reduced
# or removed in turn by lmerTest's rules, with the boundary mixture p-value beside the naive one.

#' Tests of the random-effect terms
#'
#' lmerTest's `ranova()` for an hnm fit: each random-effect term is reduced or removed in turn,
#' the model refitted without it by the fit's criterion (REML fits by REML, ML fits by ML), and
#' compared with the fit by the likelihood-ratio test, with lmerTest's rules, rows and columns:
#' a term `(f1 + f2 | g)` is reduced to `(f2 | g)` and to `(f1 | g)` (one row each, named
#' `"f1 in (f1 + f2 | g)"`: the terms [stats::drop.scope()] allows dropping), `(f1 | g)` to
#' `(1 | g)`, `(0 + f1 | g)` to `(1 | g)`, and `(1 | g)` is removed; with
#' `reduce.terms = FALSE` every term is removed whole. `(x || g)` is lme4's `(1 | g) +
#' (0 + x | g)`, two terms. A model left without random effects is the `lm()` of the fixed
#' effects on the same rows (its REML log-likelihood for a REML fit, as lmerTest's), so for
#' the one-way model `y ~ 1 | g` the one row tests \eqn{\tau^2 = 0} against `lm(y ~ 1)`.
#' The reduced models are fitted from the fit's call (its data, `subset`, `na.action`,
#' `offset`, `contrasts` and `control`); a fit made from group statistics, or whose response
#' [refit()] replaced, has no call that describes it and is refused, as are reductions that
#' would use other rows (missing values in a variable only the fit uses).
#'
#' `Pr(>Chisq)` is lmerTest's naive \eqn{\chi^2_{Df}}{chi2(Df)} p-value. A reduction that
#' drops one random effect from a block of s correlated ones (its variance and its s - 1
#' covariances: `Df` = s) tests a variance on the boundary of the parameter space, and its
#' asymptotic reference is the mixture \eqn{\frac12\chi^2_{s-1} + \frac12\chi^2_s}{0.5
#' chi2(s-1) + 0.5 chi2(s)} (Self & Liang 1987; Stram & Lee 1994), as [anova.hnm_fit()] uses for
#' such steps: with `mixture = TRUE` (the default) the column `Pr(mixture)` holds its p-value
#' (1 where the fit estimates the dropped variance as exactly 0), and `NA` for other
#' reductions (a whole block of several effects, or several columns of a factor, whose
#' reference is a mixture of more \eqn{\chi^2}{chi2} laws; or `(0 + x | g)` to `(1 | g)` in a
#' model without another random intercept, not nested; with one, as in `(x || g)`, lmerTest's
#' formula merges the two intercepts and the row tests the slope's variance alone). The naive
#' p-value is conservative for boundary tests (twice the mixture's for a random intercept).
#' `mixture = FALSE` gives lmerTest's columns only. For the one-way model [tau2_test()] has the
#' exact F test of \eqn{\tau^2 = 0} beside the likelihood-ratio test.
#'
#' @param model An `hnm_fit` made from rows, fitted by ML or REML (the ANOVA estimator has no
#'   likelihood to compare: an error); for other classes `ranova()` calls lmerTest's (with
#'   `reduce.terms` and `...`).
#' @param reduce.terms `TRUE` (default) to reduce terms as described, `FALSE` to remove each
#'   term whole.
#' @param mixture `TRUE` (default) to add the column `Pr(mixture)`, the boundary mixture
#'   p-value; `FALSE` for lmerTest's columns only.
#' @param ... For an `hnm_fit` not used (an error if given); for other classes passed to
#'   lmerTest's `ranova()`.
#' @return A data frame of class `c("hnm_ranova", "anova", "data.frame")` (without
#'   `"hnm_ranova"` when `mixture = FALSE`) with lmerTest's heading, rows
#'   (`<none>`, the fit, then one per reduced model) and columns `npar`, `logLik` (REML
#'   log-likelihoods for a REML fit), `AIC`, `LRT`, `Df`, `Pr(>Chisq)`, and `Pr(mixture)`;
#'   attribute `formulae`, the reduced models' formulas.
#' @references Self, S. G. and Liang, K.-Y. (1987). Asymptotic properties of maximum
#'   likelihood estimators and likelihood ratio tests under nonstandard conditions.
#'   *Journal of the American Statistical Association* 82, 605-610.
#'
#'   Stram, D. O. and Lee, J. W. (1994). Variance components testing in the longitudinal
#'   mixed effects model. *Biometrics* 50, 1171-1177.
#' @examples
#' fit <- hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy, REML = TRUE)
#' ranova(fit)
#' ranova(fit, reduce.terms = FALSE)
#' ranova(hnm_fit(y ~ 1 | g, wheat))
#' @export
ranova <- function(model, reduce.terms = TRUE, ...) UseMethod("ranova")

#' @rdname ranova
#' @export
ranova.default <- function(model, reduce.terms = TRUE, ...) {
  if (!requireNamespace("lmerTest", quietly = TRUE)) {
    hnm_abort("ranova() for this class needs the lmerTest package.", class = "hnm_error_argument")
  }
  getExportedValue("lmerTest", "ranova")(model, reduce.terms = reduce.terms, ...)
}

#' @rdname ranova
#' @export
ranova.hnm_fit <- function(model, reduce.terms = TRUE, mixture = TRUE, ...) {
  call <- sys.call()
  check_no_dots(list(...), call)
  check_flag(reduce.terms, "reduce.terms", call)
  check_flag(mixture, "mixture", call)
  if (model$method == "ANOVA") {
    hnm_abort(paste("ranova() compares likelihoods, but this fit is by the ANOVA method of",
                    "moments; fit by method = \"REML\" or \"ML\"."),
              call = call, class = "hnm_error_argument")
  }
  check_call_describes(model, "ranova()", call)
  lmm_rows(model, "ranova()")
  parsed <- model$parsed
  bars <- random_bars(parsed)
  reductions <- unlist(lapply(seq_along(bars), function(i) {
    random_term_reductions(bars, i, reduce.terms, parsed$env)
  }), recursive = FALSE)
  formulas <- lapply(reductions, function(r) reduced_formula(parsed, r, model$formula))
  names(formulas) <- names(reductions)
  reml <- is_reml(model)
  fits <- lapply(names(formulas), function(label) {
    reduced_fit(model, formulas[[label]], label, call, reml = reml)
  })
  ll <- lapply(c(list(model), fits), function(fit) {
    if (inherits(fit, "hnm_fit")) stats::logLik(fit) else stats::logLik(fit, REML = reml)
  })
  log_lik <- vapply(ll, as.numeric, numeric(1))
  npar <- vapply(ll, attr, numeric(1), "df")
  lrt <- c(NA, 2 * (log_lik[1L] - log_lik[-1L]))
  df <- c(NA, npar[1L] - npar[-1L])
  table <- data.frame(npar = npar, logLik = log_lik, AIC = -2 * log_lik + 2 * npar, LRT = lrt,
                      Df = df, p = c(NA, stats::pchisq(lrt[-1L], ifelse(df[-1L] > 0, df[-1L], NA),
                                                       lower.tail = FALSE)),
                      row.names = c("<none>", names(formulas)), check.names = FALSE)
  names(table)[6L] <- "Pr(>Chisq)"
  full <- reduced_formula(parsed, bars, model$formula)
  heading <- c("ANOVA-like table for random-effects: Single term deletions", "\nModel:",
               deparse1(full))
  if (mixture) {
    table[["Pr(mixture)"]] <- c(NA, vapply(seq_along(fits), function(i) {
      boundary_mixture_p(model, fits[[i]], lrt[i + 1L], df[i + 1L])
    }, numeric(1)))
    heading <- c(heading, paste(
      "\nPr(mixture): p-value of a reduction that drops one random effect from a block of s",
      "(Df = s), from the 0.5 chi2(s - 1) + 0.5 chi2(s) mixture, as its variance is tested on",
      "the boundary (Self & Liang 1987; Stram & Lee 1994); NA for other reductions.\n"))
  }
  structure(table, heading = heading, formulae = formulas,
            class = c(if (mixture) "hnm_ranova", "anova", "data.frame"))
}

#' @rdname ranova
#' @param x A `ranova()` table with the column `Pr(mixture)`.
#' @param digits,signif.stars As for `print()` of an `anova` table (stats' `print.anova`).
#'   Other arguments are an error.
#' @export
print.hnm_ranova <- function(x, digits = max(getOption("digits") - 2L, 3L),
                             signif.stars = getOption("show.signif.stars"), ...) {
  check_no_dots(list(...), sys.call())
  # stats' print.anova() formats only the last column as p-values and rounds the others to
  # `digits` significant digits of their largest value: lmerTest's Pr(>Chisq), no longer last,
  # would print a p-value such as 5e-10 as 0. Both columns are formatted as p-values here, and
  # the stars follow the mixture's.
  naive <- x[["Pr(>Chisq)"]]
  table <- x[setdiff(names(x), "Pr(>Chisq)")]
  lines <- utils::capture.output(
    stats::printCoefmat(table, digits = digits, signif.stars = signif.stars, has.Pvalue = TRUE,
                        P.values = TRUE, cs.ind = NULL,
                        zap.ind = which(names(table) %in% c("npar", "logLik", "AIC", "LRT")),
                        tst.ind = integer(), na.print = ""))
  shown <- ifelse(is.na(naive), "",
                  format.pval(naive, digits = max(1L, min(5L, digits - 1L)),
                              eps = .Machine$double.eps))
  # The column goes before Pr(mixture), at that column's start in the header and every row.
  at <- regexpr("Pr(mixture)", lines[1L], fixed = TRUE)
  width <- max(nchar(c("Pr(>Chisq)", shown)))
  rows <- seq_len(nrow(x) + 1L)
  cells <- c(formatC("Pr(>Chisq)", width = width), formatC(shown, width = width))
  lines[rows] <- paste0(substr(lines[rows], 1L, at - 1L), cells, " ",
                        substring(lines[rows], at))
  if (!is.null(heading <- attr(x, "heading"))) cat(heading, sep = "\n")
  writeLines(lines)
  invisible(x)
}

# The model's random-effect terms as lme4's bars `(lhs | g)`, each with its grouping factor's
# expression (`batch:cask` for the inner factor of `(1 | batch/cask)`), in the formula's order
# as lme4's findbars() expands it (lmerTest's rows), not the fit's order of its factors (by
# their levels).
random_bars <- function(parsed) {
  if (!has_several_factors(parsed)) {
    return(lapply(parsed$random, function(lhs) call("|", lhs, parsed$group)))
  }
  bars <- unlist(lapply(parsed$factors, function(factor) {
    lapply(factor$random, function(lhs) call("|", lhs, factor$expr))
  }), recursive = FALSE)
  bars[order(unlist(lapply(parsed$factors, `[[`, "position")))]
}

# lmerTest's reductions of random-effect term `i` of `bars` (its get_newforms()): a list of the
# model's bars after each, named as lmerTest names its rows. A term with no term beyond the
# intercept, or with reduce.terms = FALSE, is removed ("(lhs | g)"); otherwise each term
# drop.scope() allows is dropped from its left-hand side ("x in (lhs | g)"), leaving `1` when it
# was the only one.
random_term_reductions <- function(bars, i, reduce.terms, env) {
  bar <- bars[[i]]
  label <- deparse1(bar)
  lhs <- stats::as.formula(call("~", bar[[2L]]), env = env %||% globalenv())
  labels <- attr(stats::terms(lhs), "term.labels")
  scope <- if (length(labels)) stats::drop.scope(lhs) else character()
  if (!reduce.terms || length(scope) == 0L) {
    return(stats::setNames(list(bars[-i]), paste0("(", label, ")")))
  }
  reductions <- lapply(scope, function(term) {
    new_lhs <- if (setequal(labels, term)) 1 else
      stats::update.formula(lhs, stats::as.formula(paste("~ . -", term)))[[2L]]
    # Last, as lmerTest's update `~ . - (term) + (reduced term)` puts it.
    c(bars[-i], list(call("|", new_lhs, bar[[3L]])))
  })
  stats::setNames(reductions, paste(scope, paste0("in (", label, ")")))
}

# The model of `formula`'s response and fixed part with the random-effect terms `bars` (none:
# the linear model of the fixed part), in `formula`'s environment and simplified by
# update.formula(), as lmerTest writes its formulas.
reduced_formula <- function(parsed, bars, formula) {
  rhs <- Reduce(function(left, bar) call("+", left, call("(", bar)), bars, parsed$fixed)
  stats::update.formula(formula, call("~", parsed$response, rhs))
}

# The mixture p-value of the reduction of `model` to `reduced` with statistic `lrt` on `df`
# degrees of freedom (see ranova.hnm_fit's documentation), or NA when the reduction is not one
# random effect dropped from a block: added_random_effect()'s test of anova()'s steps, on the
# fits' own estimates.
boundary_mixture_p <- function(model, reduced, lrt, df) {
  layout <- function(fit) {
    if (!inherits(fit, "hnm_fit")) {
      return(list(fixed = names(stats::coef(fit)), group = NULL, random = list()))
    }
    random_layout(fit, fit)
  }
  added <- added_random_effect(layout(reduced), layout(model))
  if (is.null(added) || added$df != df) return(NA_real_)
  # The dropped variance estimated as exactly 0: the reduced model's optimum is the fit's, and
  # the statistic is 0, not the rounding difference of two refits.
  mixture_p(if (added$variance == 0) 0 else lrt, added$df)
}
