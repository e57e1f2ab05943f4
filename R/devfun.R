#' The profiled deviance as a function of theta, with its gradient
#'
#' `hnm_devfun()` builds the model as [hnm_fit()] does and returns its profiled criterion as a
#' function of \eqn{\theta}, as `lme4::lmer(formula, data, REML = REML, devFunOnly = TRUE)`
#' does (and as the lecture's `mll.oneway`, see [mll_oneway()], is for \eqn{(\mu, \sigma^2,
#' \tau^2)}): a student can hand it to `optim()` and reach the estimates `hnm_fit()` finds.
#' Unlike lme4's, it comes with its analytic gradient.
#'
#' \eqn{\theta} is lme4's: the elements of the lower triangle of each random-effects term's
#' relative Cholesky factor \eqn{\Lambda} (\eqn{\Sigma = \sigma^2\Lambda\Lambda^\top} in the
#' data's units), by columns, term by term and grouping factor by grouping factor in lme4's
#' order, as `lme4::getME(fit, "theta")` and `getME(hnm_fit(...), "theta")` give them (one
#' exception: where lme4 interleaves the terms of grouping factors with equally many levels,
#' as in `(1 | a) + (1 | b) + (0 + x | a)` with as many `a` as `b`, hnm keeps each factor's
#' terms together, so its \eqn{\theta} has lme4's elements and names in another order). The
#' criterion is on lme4's scale: with `REML = FALSE` the deviance
#' \eqn{-2\log L} profiled over \eqn{\beta} and \eqn{\sigma}, with `REML = TRUE` the REML
#' criterion profiled over \eqn{\sigma}, so `devfun(theta)` equals lme4's `devFunOnly`
#' function at the same `theta` and its minimum is `deviance(fit)` (ML) or
#' `lme4::REMLcrit()` of the fit (REML). Each call costs one factorisation of the per-group
#' blocks, \eqn{O(m)} for \eqn{m} groups, whatever the number of rows.
#'
#' The value of `devfun(theta)` carries the gradient in \eqn{\theta} as its attribute
#' `"gradient"` (as [deriv()]'s functions do); `attr(devfun, "gradient")` is the gradient as a
#' function of \eqn{\theta}, to pass to `optim(gr = )`, and `attr(devfun, "lower")` the lower
#' bounds of \eqn{\theta} (0 for the diagonal of \eqn{\Lambda}, `-Inf` below it; lme4's
#' `getME(fit, "lower")`), to pass to `optim(lower = , method = "L-BFGS-B")`:
#' \preformatted{f <- hnm_devfun(Reaction ~ Days + (Days | Subject), sleepstudy)
#' optim(c(1, 0, 1), f, attr(f, "gradient"), method = "L-BFGS-B",
#'       lower = attr(f, "lower"))}
#'
#' The gradient is analytic: the model's, in its internal units, taken to lme4's
#' \eqn{\theta} by the chain rule through the map between them, inside the parameter space
#' and on its boundary (a zero on the diagonal of \eqn{\Lambda}) alike. One case is left out:
#' hnm centres the columns of a correlated term with an intercept (`(1 + x | g)`) at their
#' means, and where a singular covariance gives a centred column zero variance and a later
#' one a positive variance (for sleepstudy's `(Days | Subject)`, \eqn{\theta = (1, -1/4.5,
#' 0)}: the intercept's variance at the mean day 4.5 is 0) the model's gradient does not
#' determine lme4's. There the value's `"gradient"` attribute is `NA` and
#' `attr(devfun, "gradient")` raises an error of class `hnm_error_unsupported`; the value
#' itself is available.
#'
#' @param formula,data,REML As for [hnm_fit()]: a model of rows in a data frame (or the
#'   environment of `formula`); `REML = TRUE` for the REML criterion, `FALSE` (the default
#'   here, as in `hnm_fit()`) for the ML deviance.
#' @param subset,weights,na.action,offset,contrasts As for [hnm_fit()] (and `lmer()`): the
#'   rows and the model the criterion is of (with `weights`, lme4's weighted criterion, which
#'   includes \eqn{-\sum_i \log w_i}{-sum(log(w_i))}).
#' @return A function of one argument, `theta` (a numeric vector of lme4's \eqn{\theta}),
#'   returning the criterion at `theta`, a number with attribute `"gradient"`. It has
#'   attributes `"gradient"` (a function of `theta` returning the gradient) and `"lower"`.
#'   A `theta` of the wrong length, with `NA` or infinite values, or below `"lower"` (a
#'   negative diagonal element) is an error of class `hnm_error_argument` naming the problem.
#' @seealso [hnm_fit()], which minimises the same criterion; [mll_oneway()], the lecture's
#'   negative log-likelihood of the one-way model in \eqn{(\mu, \sigma^2, \tau^2)}.
#' @examples
#' set.seed(1)
#' d <- data.frame(g = rep(letters[1:8], each = 5), x = rep(0:4, 8))
#' d$y <- 10 + rnorm(8)[as.integer(factor(d$g))] + d$x + rnorm(40)
#' f <- hnm_devfun(y ~ x + (1 | g), d)
#' f(1)
#' opt <- optim(1, f, attr(f, "gradient"), method = "L-BFGS-B", lower = attr(f, "lower"))
#' opt$par
#' fit <- hnm_fit(y ~ x + (1 | g), d)
#' c(opt$value, deviance(fit))
#' @export
hnm_devfun <- function(formula, data, REML = FALSE, subset, weights, na.action, offset,
                       contrasts = NULL) {
  call <- match.call()
  method <- fit_method(REML, "ML", TRUE, call)
  if (takes_statistics(if (!missing(data)) data, NULL)) {
    hnm_abort(paste("`hnm_devfun()` takes the rows of a data frame; for group statistics,",
                    "`as.function(hnm_fit(formula, statistics))` is the same function."),
              call = call, class = "hnm_error_argument")
  }
  model <- row_model(formula, if (!missing(data)) data, if (!missing(subset)) substitute(subset),
                     if (!missing(offset)) substitute(offset),
                     if (!missing(na.action)) na.action, contrasts, method,
                     hnm_control()$threads, parent.frame(), call,
                     if (!missing(weights)) substitute(weights))
  devfun_closure(model$built$model, method == "REML", model$built$lower,
                 weights_constant(model$design))
}

#' @rdname hnm_devfun
#' @param x A fit of [hnm_fit()]: `as.function(fit)` is `hnm_devfun()` of its model and its
#'   criterion (the REML criterion for a REML fit, the ML deviance otherwise), as lme4's
#'   `as.function()` of a fit is its `devFunOnly` function; it also works for fits from
#'   group statistics and fits read back by `readRDS()`.
#' @param ... Not used; an error if given.
#' @export
as.function.hnm_fit <- function(x, ...) {
  check_no_dots(match.call(expand.dots = FALSE)$..., sys.call())
  devfun_closure(lmm_model(x), x$method == "REML", x$lower, weights_constant(x))
}

# The function hnm_devfun() returns, in an environment holding only the model, the criterion
# and the bounds (not the data the model was built from); `constant` is added to the model's
# criterion (-sum(log(w)) of a weighted model, R/weights.R).
devfun_closure <- function(model, reml, lower, constant = 0) {
  gradient <- function(theta) {
    call <- sys.call()
    theta <- devfun_theta(theta, lower, call)
    rust_result(rs_lmm_devfun(model, reml, theta, TRUE), call = call)$gradient
  }
  devfun <- function(theta) {
    call <- sys.call()
    theta <- devfun_theta(theta, lower, call)
    out <- rs_lmm_devfun(model, reml, theta, TRUE)
    if (is_core_error(out) && identical(out$kind, "unsupported")) {
      # No gradient at this theta (see ?hnm_devfun): the value alone.
      out <- rust_result(rs_lmm_devfun(model, reml, theta, FALSE), call = call)
      out$gradient <- rep(NA_real_, length(theta))
    }
    out <- rust_result(out, call = call)
    structure(out$value + constant, gradient = out$gradient)
  }
  structure(devfun, gradient = gradient, lower = lower)
}

# `theta` checked against the model's: numeric, of the length of `lower`, finite, and not
# below `lower` (lme4's devfun accepts a negative diagonal, whose Lambda gives the same
# covariance; here it is a mistake named as one).
devfun_theta <- function(theta, lower, call) {
  k <- length(lower)
  if (!is.numeric(theta) || is.object(theta) || length(theta) != k) {
    hnm_abort(sprintf("`theta` must be a numeric vector of length %d (lme4's theta), not %s.", k,
                      if (is.numeric(theta)) sprintf("of length %d", length(theta))
                      else paste("of class", class(theta)[1L])),
              call = call, class = "hnm_error_argument")
  }
  bad <- which(!is.finite(theta))
  if (length(bad)) {
    hnm_abort(sprintf("`theta` must be finite; element %d is %s.", bad[1L], theta[bad[1L]]),
              call = call, class = "hnm_error_argument")
  }
  below <- which(theta < lower)
  if (length(below)) {
    hnm_abort(sprintf(paste("`theta[%d]` is %s, below its lower bound %s: a diagonal element of",
                            "the relative Cholesky factor must not be negative."),
                      below[1L], format(theta[below[1L]]), format(lower[below[1L]])),
              call = call, class = "hnm_error_argument")
  }
  as.double(theta)
}
