# Confidence intervals for hnm_fit.

#' Confidence intervals for the parameters of an `hnm_fit`
#'
#' Profile-likelihood intervals (`method = "profile"`, as lme4's default) or Wald intervals
#' (the default here, for lme4 compatibility of `confint(fit)` with no arguments giving
#' real intervals for every row) from the analytic observed information of \eqn{(\mu, \sigma^2, \tau^2)},
#' with lme4's row names: `.sig01` (\eqn{\tau}), `.sigma` (\eqn{\sigma}) and `(Intercept)`
#' (\eqn{\mu}). lme4's `confint(method = "Wald")` gives `NA` for the variance rows; these
#' are real intervals.
#'
#' On the variance scale (`scale = "var"`) the rows are \eqn{\tau^2}, \eqn{\sigma^2} and
#' \eqn{\mu}, each estimate \eqn{\pm z\,\mathrm{se}} with standard errors
#' `sqrt(diag(vcov(fit, full = TRUE)))`: the lecture's `solve(I)` intervals. (They are
#' computed in the internal unit of the data, a power of two near their spread, and scaled
#' back, so they stay finite for data at scales such as 1e-150 or 1e100, where some entries of
#' the full covariance in the data's units underflow or overflow.) On the SD scale
#' (the default, as lme4) the variance intervals are mapped by the delta method,
#' \eqn{\mathrm{se}(\hat\tau) = \mathrm{se}(\hat\tau^2)/(2\hat\tau)}; at the boundary
#' \eqn{\hat\tau = 0} the delta method is undefined and the `.sig01` row is the square root
#' of the variance-scale interval truncated at 0. Lower limits of variances and SDs are
#' truncated at 0. The intercept's standard error is lme4's, \eqn{\sqrt{\hat\sigma^2/\sum_j
#' n_j/(1 + n_j\hat\theta^2)}}, equal to the information-based one for ML fits.
#'
#' @param object An `hnm_fit`.
#' @param parm Rows to return (names or indices); all by default.
#' @param level Confidence level.
#' @param method `"Wald"` (default) or `"profile"`. Profile intervals are
#'   \eqn{\{x : |\zeta(x)| \le z_{1-\alpha/2}\}} with lme4's signed root deviance
#'   \eqn{\zeta}, computed exactly (to machine precision, by Newton steps on the analytic
#'   profile) from the group statistics in Rust; the \eqn{\tau} interval starts at exactly 0
#'   when the likelihood at \eqn{\tau = 0} is within the cut-off. ML fits only; on the
#'   variance scale the SD limits are squared, as the lecture does with lme4's.
#' @param scale `"sd"` (default) or `"var"`.
#' @param ... Unused.
#' @return A matrix with one row per parameter and columns named by the percentage points,
#'   as `confint` methods return.
#' @examples
#' d <- data.frame(y = c(5.1, 4.8, 6.0, 7.2, 6.9, 7.5, 4.0, 4.4, 4.9),
#'                 g = rep(c("a", "b", "c"), each = 3))
#' fit <- hnm_fit(y ~ 1 | g, d)
#' confint(fit)
#' confint(fit, scale = "var", level = 0.9)
#' @export
confint.hnm_fit <- function(object, parm, level = 0.95, method = c("Wald", "profile"),
                            scale = c("sd", "var"), ...) {
  call <- sys.call()
  method <- match.arg(method)
  scale <- match.arg(scale)
  if (!is.numeric(level) || length(level) != 1L || !(level > 0 && level < 1)) {
    hnm_abort("`level` must be a single number between 0 and 1.", call = call)
  }
  z <- qnorm(1 - (1 - level) / 2)
  intervals <- switch(method,
    Wald = wald_intervals(object, z, scale),
    profile = profile_intervals(object, z, scale, call)
  )
  dimnames(intervals) <- list(
    if (scale == "sd") c(".sig01", ".sigma", "(Intercept)") else c("tau2", "sigma2", "(Intercept)"),
    sprintf("%s %%", format_percent(c((1 - level) / 2, 1 - (1 - level) / 2)))
  )
  if (missing(parm)) intervals else intervals[parm, , drop = FALSE]
}

# Rows tau, sigma, mu (or their variances): estimate +- z se.
wald_intervals <- function(object, z, scale) {
  se <- object$std_errors
  rbind(
    wald_variance(object$tau2, se[["tau2"]], z, scale),
    wald_variance(object$sigma2, se[["sigma2"]], z, scale),
    object$mu + c(-1, 1) * z * object$se_mu
  )
}

# Rows tau, sigma, mu: where the signed root profile deviance crosses -z and z.
profile_intervals <- function(object, z, scale, call) {
  if (object$method != "ML") {
    hnm_abort("profile intervals need an ML fit; refit with REML = FALSE.", call = call)
  }
  s <- object$stats
  limits <- matrix(rust_result(rs_profile_ci(s$center, s$n, s$mean, s$ss, z), call = call),
                   3L, 2L, byrow = TRUE)
  if (scale == "var") limits[1:2, ] <- limits[1:2, ]^2
  limits
}

# A Wald interval for a variance v with standard error se, on the variance or SD scale.
wald_variance <- function(v, se, z, scale) {
  var_interval <- pmax(v + c(-1, 1) * z * se, 0)
  if (scale == "var") return(var_interval)
  if (v > 0) pmax(sqrt(v) + c(-1, 1) * z * se / (2 * sqrt(v)), 0) else sqrt(var_interval)
}

# Percent labels as stats:::format.perc prints them ("2.5 %").
format_percent <- function(p) {
  format(100 * p, trim = TRUE, scientific = FALSE, digits = 3)
}
