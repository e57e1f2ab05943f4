#' hnm: the hierarchical normal model with a Rust core
#'
#' Likelihood inference for the one-way random-effects model
#' \deqn{y_{ij} = \mu + a_j + \epsilon_{ij},\quad a_j \sim N(0, \tau^2),\quad
#' \epsilon_{ij} \sim N(0, \sigma^2).}{y_ij = mu + a_j + e_ij, a_j ~ N(0, tau^2), e_ij ~ N(0, sigma^2).}
#' The data enter only through per-group sizes, means and within-group sums of squares,
#' computed in one pass in Rust; every likelihood evaluation after that costs O(groups).
#'
#' * [hnm_fit()] fits the model by maximum likelihood (or REML), matching
#'   `lme4::lmer(REML = FALSE)` and reaching \eqn{\tau^2 = 0} exactly when the data say so.
#' * [mll_oneway()] (alias `mll.oneway`), [mll_oneway_grad()] and [mll_oneway_hess()] are
#'   the negative log-likelihood of the course's lecture and its analytic derivatives.
#'
#' @keywords internal
#' @useDynLib hnm, .registration = TRUE
#' @importFrom stats sigma nobs logLik deviance vcov confint formula coef qnorm quantile
#'   printCoefmat setNames df.residual fitted residuals AIC BIC
"_PACKAGE"
