# print and summary for hnm_fit, laid out as lme4's for merMod, from small helpers.

method_title <- function(x) {
  switch(x$method,
    REML = "Linear mixed model fit by REML",
    ANOVA = "Linear mixed model fit by ANOVA (method of moments)",
    "Linear mixed model fit by maximum likelihood")
}

print_title <- function(x) {
  cat(sprintf("%s  ['hnm_fit']\n", method_title(x)))
  cat("Formula: ", deparse1(x$formula), "\n", sep = "")
  if (!is.null(x$call$data)) cat("   Data: ", deparse1(x$call$data), "\n", sep = "")
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

print_groups <- function(x) {
  cat(sprintf("Number of obs: %d, groups:  %s, %d\n", nobs(x), x$group_name, ngrps(x)))
}

print_singular <- function(x) {
  if (x$convergence$on_boundary) {
    cat("boundary (singular) fit: tau^2 = 0 exactly (see ?isSingular)\n")
  }
  if (x$method == "ANOVA" && x$anova$tau2_untruncated < 0) {
    cat(sprintf("ANOVA estimate of tau^2 truncated at 0 from (MSG - MSE)/n0 = %s\n",
                format(x$anova$tau2_untruncated, digits = 4)))
  }
}

#' @rdname hnm_fit-methods
#' @export
print.hnm_fit <- function(x, digits = max(3, getOption("digits") - 3), ...) {
  print_title(x)
  print_criteria(fit_criteria(x), 4)
  cat("Random effects:\n")
  print(VarCorr(x), digits = digits)
  print_groups(x)
  cat("Fixed Effects:\n")
  print.default(format(fixef(x), digits = digits), print.gap = 2L, quote = FALSE)
  print_singular(x)
  invisible(x)
}

#' Summarise an `hnm_fit`
#'
#' The summary lme4 prints for `lmer(REML = FALSE)`: information criteria, scaled
#' residual quantiles, the variance components, the number of observations and groups,
#' and the fixed-effect table (estimate, standard error, t value).
#'
#' @param object An `hnm_fit`.
#' @param x A `summary.hnm_fit`.
#' @param digits Significant digits printed.
#' @param ... Unused.
#' @return An object of class `summary.hnm_fit`: the fit plus `coefficients` (a matrix
#'   with columns `Estimate`, `Std. Error`, `t value`), `criteria` and `residuals`
#'   (scaled conditional residuals; `NULL`, and not printed, for a fit from group
#'   statistics, which has no rows).
#' @examples
#' d <- data.frame(y = c(5.1, 4.8, 6.0, 7.2, 6.9, 7.5, 4.0, 4.4, 4.9),
#'                 g = rep(c("a", "b", "c"), each = 3))
#' summary(hnm_fit(y ~ 1 | g, d))
#' @export
summary.hnm_fit <- function(object, ...) {
  coefficients <- cbind(Estimate = object$mu, "Std. Error" = object$se_mu,
                        "t value" = object$mu / object$se_mu)
  rownames(coefficients) <- "(Intercept)"
  structure(c(object, list(coefficients = coefficients, criteria = fit_criteria(object),
                           residuals = if (!is.null(object$y)) residuals(object, scaled = TRUE))),
            class = c("summary.hnm_fit", "hnm_fit"))
}

#' @rdname summary.hnm_fit
#' @export
print.summary.hnm_fit <- function(x, digits = max(3, getOption("digits") - 3), ...) {
  print_title(x)
  cat("\n")
  print_criteria(x$criteria, 1)
  cat("\n")
  if (!is.null(x$residuals)) print_residual_quantiles(x$residuals, digits)
  cat("Random effects:\n")
  print(VarCorr(x), digits = digits, comp = c("Variance", "Std.Dev."))
  print_groups(x)
  cat("\nFixed effects:\n")
  printCoefmat(x$coefficients, digits = digits)
  print_singular(x)
  invisible(x)
}

print_residual_quantiles <- function(residuals, digits) {
  cat("Scaled residuals:", "\n")
  quantiles <- setNames(zapsmall(quantile(residuals, na.rm = TRUE), digits + 1L),
                        c("Min", "1Q", "Median", "3Q", "Max"))
  print(quantiles, digits = digits)
  cat("\n")
}
