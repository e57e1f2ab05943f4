# broom's tidy, glance and augment for hnm_fit, registered in .onLoad (see zzz.R) when the
# generics package is available, so broom is not a dependency.

#' Tidy an `hnm_fit` with broom
#'
#' Methods for broom's generics `tidy`, `glance` and `augment` (from the generics
#' package), with the column conventions broom.mixed uses for lme4's fits. They are
#' registered when hnm is loaded if generics is installed (or when generics is loaded later);
#' call them as `broom::tidy(fit)` and so on.
#'
#' `tidy` gives one row per parameter: `effect = "fixed"` for the intercept (estimate
#' \eqn{\hat\mu}, standard error, t statistic), `effect = "ran_pars"` for the standard
#' deviations, term `"sd__(Intercept)"` with `group` the grouping factor and term
#' `"sd__Observation"` with `group = "Residual"` (standard error and statistic `NA`, as
#' broom.mixed gives them). With `conf.int = TRUE`, `conf.low` and `conf.high` are the Wald
#' intervals of [confint.hnm_fit()] (real intervals for the standard deviations too).
#' `glance` gives one row with `nobs`, `sigma`, `logLik`, `AIC`, `BIC`, `deviance` and
#' `df.residual`. `augment` adds `.fitted` and `.resid` to the data.
#'
#' @param x An `hnm_fit`.
#' @param effects Which rows `tidy` returns: any of `"fixed"`, `"ran_pars"`.
#' @param conf.int Logical: add `conf.low` and `conf.high`.
#' @param conf.level Confidence level of the intervals.
#' @param data For `augment`: `NULL` for a data frame of the response and group of the rows
#'   used in the fit, or the data the model was fitted to (one row per row given to
#'   `hnm_fit`; rows dropped for `NA` get `NA`).
#' @param ... Unused.
#' @return Data frames (not tibbles: hnm does not depend on tibble).
#' @examples
#' fit <- hnm_fit(y ~ 1 | g, wheat)
#' if (requireNamespace("broom", quietly = TRUE)) {
#'   print(broom::tidy(fit, conf.int = TRUE))
#'   print(broom::glance(fit))
#'   print(head(broom::augment(fit)))
#' }
#' @name hnm-broom
NULL

#' @rdname hnm-broom
#' @method tidy hnm_fit
tidy.hnm_fit <- function(x, effects = c("ran_pars", "fixed"), conf.int = FALSE,
                         conf.level = 0.95, ...) {
  effects <- match.arg(effects, several.ok = TRUE)
  rows <- data.frame(
    effect = c("fixed", "ran_pars", "ran_pars"),
    group = c(NA, x$group_name, "Residual"),
    term = c("(Intercept)", "sd__(Intercept)", "sd__Observation"),
    estimate = c(x$mu, sqrt(x$tau2), sigma(x)),
    std.error = c(x$se_mu, NA, NA),
    statistic = c(x$mu / x$se_mu, NA, NA),
    stringsAsFactors = FALSE
  )
  if (isTRUE(conf.int)) {
    ci <- confint(x, parm = c("(Intercept)", ".sig01", ".sigma"), level = conf.level,
                  method = "Wald")
    rows$conf.low <- unname(ci[, 1L])
    rows$conf.high <- unname(ci[, 2L])
  }
  rows[rows$effect %in% effects, , drop = FALSE]
}

#' @rdname hnm-broom
#' @method glance hnm_fit
glance.hnm_fit <- function(x, ...) {
  ll <- logLik(x)
  data.frame(nobs = nobs(x), sigma = sigma(x), logLik = c(ll), AIC = AIC(ll), BIC = BIC(ll),
             deviance = deviance(x), df.residual = df.residual(x))
}

#' @rdname hnm-broom
#' @method augment hnm_fit
augment.hnm_fit <- function(x, data = NULL, ...) {
  require_rows(x, "augment()")
  keep <- complete_rows(x)
  if (is.null(data)) {
    data <- setNames(data.frame(x$y[keep], x$g[keep]), c(x$response_name, x$group_name))
    keep <- rep(TRUE, nrow(data))
  } else if (!is.data.frame(data) || nrow(data) != length(keep)) {
    hnm_abort(sprintf("`data` must be the data frame of %d rows the model was fitted to.",
                      length(keep)), call = sys.call())
  }
  data$.fitted <- data$.resid <- NA_real_
  data$.fitted[keep] <- fitted(x)
  data$.resid[keep] <- residuals(x)
  data[c(setdiff(names(data), c(".fitted", ".resid")), ".fitted", ".resid")]
}
