#' Fit the one-way random-effects model
#'
#' Fits \eqn{y_{ij} = \mu + a_j + \epsilon_{ij}}, \eqn{a_j \sim N(0, \tau^2)},
#' \eqn{\epsilon_{ij} \sim N(0, \sigma^2)} by maximum likelihood (the default, as
#' `lme4::lmer(REML = FALSE)`) or REML. One pass over the data in Rust reduces it to
#' per-group statistics; \eqn{\mu} and \eqn{\sigma^2} are profiled out analytically, and
#' \eqn{\theta = \tau/\sigma \ge 0} is found by Brent's method and polished by Newton steps
#' on the exact profiled score, so the estimate is the optimum to machine precision and
#' \eqn{\tau^2 = 0} is reached exactly when it is the maximum.
#'
#' @param formula `y ~ 1 | g`, or lme4's spelling `y ~ 1 + (1 | g)`: a numeric response
#'   and one grouping variable. Covariates and random slopes are not supported.
#' @param data A data frame holding the variables; when missing, they are taken from the
#'   environment of `formula`.
#' @param REML Logical: `TRUE` for REML (as `lmer`'s default), `FALSE` (the default here)
#'   for maximum likelihood.
#' @param ... Not used; an error if given, so misspelt arguments do not pass silently.
#' @return An object of class `hnm_fit`, with the methods an lme4 user expects:
#'   `print`, `summary`, `logLik`, `AIC`/`BIC`, `nobs`, `ngrps`, `fixef`, `VarCorr`,
#'   `sigma`, `deviance`, `vcov`, `confint`, `isSingular`, `formula`, `fitted`,
#'   `residuals`. Rows with `NA` in the response or the group are dropped (see `nobs`).
#' @examples
#' set.seed(1)
#' d <- data.frame(g = rep(letters[1:8], each = 5))
#' d$y <- 10 + rnorm(8)[as.integer(factor(d$g))] + rnorm(40)
#' fit <- hnm_fit(y ~ 1 | g, d)
#' fit
#' summary(fit)
#' confint(fit)
#' @export
hnm_fit <- function(formula, data, REML = FALSE, ...) {
  call <- match.call()
  if (...length() > 0L) {
    hnm_abort(sprintf("unused argument(s): %s.", paste(names(list(...)), collapse = ", ")),
              call = call)
  }
  if (!is.logical(REML) || length(REML) != 1L || is.na(REML)) {
    hnm_abort("`REML` must be TRUE or FALSE.", call = call)
  }
  model <- model_statistics(formula, data, call)
  estimates <- rust_result(rs_fit(model$stats$center, model$stats$n, model$stats$mean,
                                  model$stats$ss, REML), call = call)
  new_hnm_fit(estimates, model, formula, call, REML)
}

new_hnm_fit <- function(estimates, model, formula, call, reml) {
  square <- function(v) matrix(v, 3L, 3L, dimnames = list(parameter_names, parameter_names))
  structure(list(
    call = call,
    formula = formula,
    response_name = model$response_name,
    group_name = model$group_name,
    method = if (reml) "REML" else "ML",
    mu = estimates$mu,
    sigma2 = estimates$sigma2,
    tau2 = estimates$tau2,
    theta = estimates$theta,
    deviance = estimates$deviance,
    se_mu = estimates$se_mu,
    hessian = square(estimates$hessian),
    covariance = square(estimates$covariance),
    std_errors = setNames(estimates$std_errors, parameter_names),
    unit = estimates$unit,
    convergence = estimates[c("brent_iterations", "newton_iterations", "profiled_score",
                              "gradient_norm", "on_boundary")],
    stats = model$stats,
    y = model$y,
    g = model$g
  ), class = "hnm_fit")
}
