#' hnm: the hierarchical normal model with a Rust core
#'
#' Likelihood inference for the one-way random-effects model
#' \deqn{y_{ij} = \mu + a_j + \epsilon_{ij},\quad a_j \sim N(0, \tau^2),\quad
#' \epsilon_{ij} \sim N(0, \sigma^2).}{y_ij = mu + a_j + e_ij, a_j ~ N(0, tau^2), e_ij ~ N(0, sigma^2).}
#' The data enter only through per-group sizes, means and within-group sums of squares,
#' computed in one pass in Rust; every likelihood evaluation after that costs O(groups).
#'
#' * [hnm_fit()] fits the model by maximum likelihood (the default, matching
#'   `lme4::lmer(REML = FALSE)`), REML, or the ANOVA method of moments, reaching
#'   \eqn{\tau^2 = 0} exactly when the data say so; the fit has lme4's methods (`summary`,
#'   `fixef`, `ranef`, `VarCorr`, `predict`, `simulate`, ...) and broom's `tidy`, `glance`,
#'   `augment`.
#' * Inference beyond lme4: [confint.hnm_fit()] gives Wald, profile-likelihood,
#'   parametric-bootstrap and exact F-pivot intervals for the variance components, and
#'   [anova.hnm_fit()] tests of \eqn{\tau^2 = 0}: the likelihood-ratio test with its
#'   asymptotic \eqn{\frac12\chi^2_0 + \frac12\chi^2_1} mixture reference (conservative in
#'   small samples) and the exact ANOVA F test.
#' * Data bigger than memory: [hnm_stats()] and [hnm_fit()] accept a table of group
#'   statistics or a database table, whose statistics are computed by one SQL query.
#' * [mll_oneway()] (alias `mll.oneway`), [mll_oneway_grad()] and [mll_oneway_hess()] are
#'   the negative log-likelihood of the course's lecture and its analytic derivatives;
#'   [hnm_devfun()] is the profiled criterion of any model as a function of lme4's
#'   \eqn{\theta} with its analytic gradient (lme4's `devFunOnly = TRUE`), for `optim()`.
#'
#' `vignette("hnm")` walks the lecture with hnm, checking every number against lme4;
#' `vignette("lecture")` reproduces the lecture on its own data.
#'
#' @examples
#' fit <- hnm_fit(y ~ 1 | g, wheat)   # the lecture's wheat data
#' summary(fit)
#' confint(fit)
#' anova(fit)
#' @keywords internal
#' @useDynLib hnm, .registration = TRUE
#' @importFrom stats sigma nobs logLik deviance vcov confint formula coef qnorm quantile
#'   printCoefmat setNames df.residual fitted residuals AIC BIC
"_PACKAGE"
