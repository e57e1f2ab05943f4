#' Negative log-likelihood of the one-way model, its gradient and Hessian
#'
#' `mll_oneway()` is the lecture's `mll.oneway`: the negative log-likelihood of
#' \eqn{(\mu, \sigma^2, \tau^2)} for data `y` in groups `g`. It is computed from per-group
#' sizes, means and sums of squares in closed form, so no \eqn{n_j \times n_j} covariance
#' matrix is ever built, and it takes the same arguments in the same order, so
#' `optim(c(15, 1, 1), mll.oneway, y = y, g = g, lower = c(-Inf, 0, 0),
#' method = "L-BFGS-B", hessian = TRUE)` runs unchanged. `mll.oneway` is an alias.
#' Pass `gr` explicitly, as the lecture does (`gr = NULL` or `gr = mll_oneway_grad`):
#' otherwise R partially matches `g = g` to `optim`'s argument `gr`.
#'
#' Outside the parameter space (\eqn{\sigma^2 \le 0} or \eqn{\tau^2 < 0}) the value is
#' `Inf`, as the lecture's function gives it, and the derivatives, which do not exist there,
#' are an error of class `hnm_error_outside_parameter_space` (not a silent `NaN`). A \eqn{\tau^2} below 0 only by rounding
#' (\eqn{\ge -10^{-10}\sigma^2}), where L-BFGS-B's projection onto the bound lands, is
#' evaluated as it stands, as the lecture's dense function does. The lecture's version returns a 1 x 1 matrix (an
#' artefact of `t(y) %*% ...`); this one returns the same number as a plain scalar.
#'
#' @param mus2t2 Numeric vector `c(mu, sigma2, tau2)`.
#' @param y Numeric response without missing values.
#' @param g Group labels (numeric, character or factor), the same length as `y`.
#' @return `mll_oneway()`: a number; `mll_oneway_grad()`: the gradient, a named vector
#'   (`mu`, `sigma2`, `tau2`) usable as `optim(gr = )`; `mll_oneway_hess()`: the 3 x 3
#'   Hessian, the observed information matrix at the MLE.
#' @examples
#' y <- c(5.1, 4.8, 6.0, 7.2, 6.9, 7.5, 4.0, 4.4)
#' g <- rep(c("a", "b", "c"), c(3, 3, 2))
#' mll_oneway(c(5.5, 0.2, 1.5), y, g)
#' mll_oneway_grad(c(5.5, 0.2, 1.5), y, g)
#' fit <- optim(c(5, 1, 1), mll.oneway, gr = mll_oneway_grad, y = y, g = g,
#'              lower = c(-Inf, 1e-8, 0), method = "L-BFGS-B")
#' fit$par
#' solve(mll_oneway_hess(fit$par, y, g))
#' @export
mll_oneway <- function(mus2t2, y, g) {
  oneway_derivative(mus2t2, y, g, order = 0L, call = sys.call())
}

#' @rdname mll_oneway
#' @export
mll.oneway <- mll_oneway

#' @rdname mll_oneway
#' @export
mll_oneway_grad <- function(mus2t2, y, g) {
  setNames(oneway_derivative(mus2t2, y, g, order = 1L, call = sys.call()), one_way_parameters)
}

#' @rdname mll_oneway
#' @export
mll_oneway_hess <- function(mus2t2, y, g) {
  matrix(oneway_derivative(mus2t2, y, g, order = 2L, call = sys.call()), 3L, 3L,
         dimnames = list(one_way_parameters, one_way_parameters))
}


oneway_derivative <- function(mus2t2, y, g, order, call) {
  if (!is.numeric(mus2t2)) {
    hnm_abort("`mus2t2` must be a numeric vector c(mu, sigma2, tau2).", call = call)
  }
  y <- check_response(y, "y", call)
  if (anyNA(y) || anyNA(g)) {
    hnm_abort("`y` and `g` must not contain NA; remove incomplete rows first.", call = call)
  }
  if (length(g) != length(y)) {
    hnm_abort(sprintf("`y` and `g` must have the same length (%d and %d).", length(y), length(g)),
              call = call)
  }
  model <- lmm_build(parse_mixed_formula(y ~ 1 | g), list(y = y, g = g), call)$built$model
  rust_result(rs_neg_log_lik(model, as.double(mus2t2), order), call = call)
}
