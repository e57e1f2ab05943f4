# print and summary for hnm fits, laid out as lme4's for merMod, from small helpers.

method_title <- function(x) {
  switch(x$method,
    REML = "Linear mixed model fit by REML",
    ANOVA = "Linear mixed model fit by ANOVA (method of moments)",
    "Linear mixed model fit by maximum likelihood")
}

print_title <- function(title, formula, call) {
  cat(sprintf("%s  ['hnm_fit']\n", title))
  cat("Formula: ", deparse1(formula), "\n", sep = "")
  if (!is.null(call$data)) cat("   Data: ", deparse1(call$data), "\n", sep = "")
  # As lme4's header.
  if (!is.null(call$weights)) cat("Weights: ", deparse1(call$weights), "\n", sep = "")
}

# AIC, BIC, logLik, deviance, df.resid; or the REML criterion alone, as lme4 prints them.
# For an ANOVA fit the likelihood criteria are evaluated at the moment estimates.
fit_criteria <- function(x) {
  if (x$method == "REML") return(c(REML = x$deviance))
  ll <- logLik(x)
  c(AIC = AIC(ll), BIC = BIC(ll), logLik = c(ll), deviance = x$deviance,
    df.resid = df.residual(x))
}

print_criteria <- function(criteria, digits) {
  if (identical(names(criteria), "REML")) {
    cat("REML criterion at convergence:", round(criteria, digits), "\n")
  } else {
    formatted <- format(round(criteria, digits))
    formatted["df.resid"] <- format(criteria["df.resid"])
    print(formatted, quote = FALSE)
  }
}

# Counts as R prints them, whole numbers beyond 2^31 - 1 included (statistics-table and
# database fits can hold more rows than an integer counts).
print_groups <- function(n_obs, groups) {
  cat(sprintf("Number of obs: %s, groups:  %s\n", format(n_obs, scientific = FALSE),
              paste(names(groups), format(unname(groups), scientific = FALSE, trim = TRUE), sep = ", ",
                    collapse = "; ")))
}

# What a singular or truncated fit should say under its tables.
fit_notes <- function(x) {
  c(if (isSingular(x)) "boundary (singular) fit: see help('isSingular')",
    convergence_problem(x),
    if (x$method == "ANOVA" && x$anova$tau2_untruncated < 0) {
      sprintf("ANOVA estimate of tau^2 truncated at 0 from (MSG - MSE)/n0 = %s",
              format(x$anova$tau2_untruncated, digits = 4))
    })
}

#' @rdname hnm_fit-methods
#' @export
print.hnm_fit <- function(x, digits = max(3, getOption("digits") - 3), ...) {
  check_no_dots(list(...), sys.call(), allowed = "useS4")
  print_title(method_title(x), x$formula, x$call)
  print_criteria(fit_criteria(x), 4)
  cat("Random effects:\n")
  print(VarCorr(x), digits = digits)
  print_groups(nobs(x), ngrps(x))
  if (length(fixef(x)) > 0L) {
    cat("Fixed Effects:\n")
    print.default(format(fixef(x), digits = digits), print.gap = 2L, quote = FALSE)
  } else {
    cat("No fixed effect coefficients\n")  # lme4's words
  }
  if (length(notes <- fit_notes(x))) writeLines(notes)
  invisible(x)
}

#' Summarise an `hnm_fit`
#'
#' The summary lme4 prints: information criteria, scaled residual quantiles, the variance
#' components (with the correlations of correlated random effects), the number of
#' observations and groups, the fixed-effect table (estimate, standard error, t value, and
#' lmerTest's Satterthwaite degrees of freedom and p-values for every ML or REML fit, or with
#' `ddf = "Kenward-Roger"` its Kenward-Roger ones) and, with more than one fixed effect, the
#' correlation of the fixed-effect estimates.
#'
#' The degrees of freedom are Satterthwaite's, computed as
#' `lmerTest` does (Kuznetsova et al. 2017): the delta-method variance of each estimated
#' variance of a fixed effect, from the Hessian of the deviance in the variance parameters
#' (\eqn{\theta}, \eqn{\sigma}) and the derivatives of `vcov(fit)` in them (analytic in hnm,
#' numerical in lmerTest). They assume the estimates are near-normal with variances from the
#' curvature of the likelihood (ML fits) or REML criterion (REML fits); near a singular fit
#' they are rough.
#'
#' @param object An `hnm_fit`.
#' @param ddf The denominator degrees of freedom of the t tests, as lmerTest's `summary()`:
#'   `"Satterthwaite"` (default), `"Kenward-Roger"` (REML fits only, as lmerTest: the
#'   standard errors from [vcov_kenward_roger()] and pbkrtest's df), or `"lme4"` for lme4's
#'   table without degrees of freedom and p-values. An ANOVA (moment) fit, which has no
#'   likelihood curvature to take them from, has lme4's table with `"Satterthwaite"` and
#'   `"lme4"` (and `"Kenward-Roger"` is an error).
#' @param x A `summary.hnm_fit`.
#' @param digits Significant digits printed.
#' @param correlation Show the correlation of the fixed effects when printed (by default when
#'   there are 2 to 12, as lme4); given to `summary` (as lme4's), it is the default of `print`.
#' @param ... Unused.
#' @return An object of class `summary.hnm_fit` with lme4's components: `coefficients` (a
#'   matrix with lmerTest's columns `Estimate`, `Std. Error`, `df`, `t value`, `Pr(>|t|)`, or
#'   lme4's `Estimate`, `Std. Error`, `t value`, so `coef(summary(fit))` is the fixed-effect
#'   table), `vcov`, `varcor`, `sigma`, `AICtab` (the criteria), `ngrps`,
#'   `logLik`, `call`, `methTitle` and `residuals` (scaled conditional residuals; `NULL`, and
#'   not printed, for a fit from group statistics, which has no rows).
#' @examples
#' d <- data.frame(y = c(5.1, 4.8, 6.0, 7.2, 6.9, 7.5, 4.0, 4.4, 4.9),
#'                 g = rep(c("a", "b", "c"), each = 3))
#' summary(hnm_fit(y ~ 1 | g, d))
#' coef(summary(hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)))
#' @export
summary.hnm_fit <- function(object, correlation = NULL,
                            ddf = c("Satterthwaite", "Kenward-Roger", "lme4"), ...) {
  check_no_dots(list(...), sys.call())
  if (!is.null(correlation)) check_flag(correlation, "correlation", sys.call())
  ddf <- ddf_method(ddf, sys.call())
  v <- vcov(object)
  coefficients <- wald_t_table(object)
  # The title names the t tests' degrees of freedom as lmerTest's does.
  title <- method_title(object)
  if (ddf == "Kenward-Roger") {
    coefficients <- kr_coefficients(object, coefficients, sys.call())
    title <- paste0(title, ". t-tests use Kenward-Roger's method")
  } else if (object$method != "ANOVA" && ddf == "Satterthwaite") {
    coefficients <- satterthwaite_coefficients(object, coefficients, sys.call())
    title <- paste0(title, ". t-tests use Satterthwaite's method")
  }
  has_rows <- !is.null(object$rows)
  structure(list(
    methTitle = title, formula = object$formula, call = object$call,
    AICtab = fit_criteria(object), logLik = logLik(object),
    residuals = if (has_rows) residuals(object, type = "pearson", scaled = TRUE),
    varcor = VarCorr(object), sigma = sigma(object), ngrps = ngrps(object),
    nobs = nobs(object), coefficients = coefficients, vcov = v, notes = fit_notes(object),
    correlation = correlation
  ), class = "summary.hnm_fit")
}

# lme4's table of the fixed effects' Wald t statistics: Estimate, Std. Error and t value.
wald_t_table <- function(object) {
  beta <- fixef(object)
  se <- sqrt(diag(as.matrix(vcov(object))))
  coefficients <- cbind(Estimate = beta, "Std. Error" = se, "t value" = beta / se)
  rownames(coefficients) <- names(beta)
  coefficients
}

#' @rdname summary.hnm_fit
#' @export
print.summary.hnm_fit <- function(x, digits = max(3, getOption("digits") - 3), correlation = NULL,
                                  ...) {
  check_no_dots(list(...), sys.call(), allowed = "useS4")
  print_title(x$methTitle, x$formula, x$call)
  cat("\n")
  print_criteria(x$AICtab, 1)
  cat("\n")
  if (!is.null(x$residuals)) print_residual_quantiles(x$residuals, digits)
  cat("Random effects:\n")
  print(x$varcor, digits = digits, comp = c("Variance", "Std.Dev."))
  print_groups(x$nobs, x$ngrps)
  p <- nrow(x$coefficients)
  if (p > 0L) {  # lme4's summary leaves the section out for a model without fixed effects
    cat("\nFixed effects:\n")
    printCoefmat(x$coefficients, digits = digits)
  }
  if (is.null(correlation)) correlation <- x$correlation %||% (p > 1L && p <= 12L)
  if (isTRUE(correlation) && p > 1L) print_fixed_correlation(x$vcov, digits)
  if (length(x$notes)) writeLines(x$notes)
  invisible(x)
}

# lme4's "Correlation of Fixed Effects" block: the lower triangle, abbreviated names.
print_fixed_correlation <- function(v, digits) {
  names <- rownames(v)
  correlation <- stats::cov2cor(v)
  table <- matrix(format(round(correlation, 3), nsmall = 3), ncol(v),
                  dimnames = list(abbreviate(names, minlength = 11),
                                  abbreviate(names, minlength = 6)))
  table[!lower.tri(table)] <- ""
  cat("\nCorrelation of Fixed Effects:\n")
  print(table[-1L, -ncol(v), drop = FALSE], quote = FALSE)
}

print_residual_quantiles <- function(residuals, digits) {
  cat("Scaled residuals:", "\n")
  quantiles <- setNames(zapsmall(quantile(residuals, na.rm = TRUE), digits + 1L),
                        c("Min", "1Q", "Median", "3Q", "Max"))
  print(quantiles, digits = digits)
  cat("\n")
}
