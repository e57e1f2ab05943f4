# The profile likelihood of a fit with covariates or random slopes, as lme4's profile() and
# confint(method = "profile") give it.

#' Profile the likelihood of a fit with covariates or random slopes
#'
#' Traces the signed root deviance \eqn{\zeta} of every parameter as lme4's
#' `profile(lmer(...))` does: the SDs and correlations of the random effects (`.sig01`, ...,
#' lme4's order), \eqn{\sigma} (`.sigma`) and each fixed effect. Each point is an exact inner
#' optimum over the other parameters, computed in Rust from the per-group cross-product
#' blocks with the analytic gradient; the limits where \eqn{|\zeta| = \zeta_{max}} are found
#' by Newton steps, and `steps` points are evaluated evenly on each side out to them (lme4
#' steps and interpolates instead). An SD profile stops at 0 and a correlation profile at
#' \eqn{\pm 1} when \eqn{|\zeta|} is still below \eqn{\zeta_{max}} there.
#'
#' For an ML fit the criterion is the deviance \eqn{-2\ell}. For a REML fit hnm profiles the
#' REML criterion itself, where lme4 silently refits by ML: for the variance parameters the
#' restricted likelihood with \eqn{\beta} at its GLS value given them, and for a fixed effect
#' lme4's REML criterion with \eqn{\beta} held fixed (Bates et al. 2015, eq. 42), whose
#' minimum over \eqn{\beta} is the REML criterion. The SDs and correlations are those of the
#' random effects as the data define them (an intercept's SD at covariates 0, as lme4's), so
#' the profile of an intercept SD for a covariate far from 0 is poorly determined, for hnm as
#' for lme4.
#'
#' @param fitted A fit with covariates or random slopes (`hnm_lmm`).
#' @param which Parameters to profile: `NULL` (all), names (lme4's, as in `oldNames`) or
#'   indices in lme4's order, or `"theta_"` (the variance parameters and `.sigma`) and
#'   `"beta_"` (the fixed effects).
#' @param alphamax,steps As [profile.hnm_fit()].
#' @param oldNames lme4's names `.sig01, .sigma` (`TRUE`, the default) or
#'   `sd_(Intercept)|g, cor_x.(Intercept)|g, sigma` (`FALSE`).
#' @param ... Not used; an error if given.
#' @return A data frame of class `c("hnm_profile", "data.frame")` shaped like lme4's `thpr`:
#'   `.zeta`, a column per parameter (its value at each point's inner optimum) and `.par`,
#'   the profiled parameter of the row (a factor with sorted levels, as lme4's). Attributes `estimates`, `criterion`, and `lower` and
#'   `upper`, each parameter's bounds.
#' @seealso [confint.hnm_profile()], [plot.hnm_profile()], [confint.hnm_lmm()].
#' @examples
#' fit <- hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy, method = "ML")
#' pr <- profile(fit, which = "theta_")
#' confint(pr)
#' @export
profile.hnm_fit <- function(fitted, which = NULL, alphamax = 0.01, steps = 12L, oldNames = TRUE,
                            ...) {
  call <- sys.call()
  check_no_dots(list(...), call)
  zeta_max <- profile_zeta_max(alphamax, call)
  check_count(steps, "steps", 2L, call, max = 1e5)
  check_flag(oldNames, "oldNames", call)
  require_likelihood_fit(fitted, "profiles", call)
  names <- lmm_parameter_names(fitted, oldNames)
  profiled <- lmm_profiled(which, fitted, names, call)
  points <- rust_result(rs_lmm_profile(lmm_model(fitted), profiled, zeta_max, as.integer(steps),
                                       thread_count(call)),
                        call = call)
  frame <- data.frame(points$zeta, points$parameters)
  names(frame) <- c(".zeta", names)
  # lme4's factor: levels sorted, rows in the parameters' order.
  frame$.par <- factor(names[points$par])
  bounds <- lmm_parameter_bounds(fitted)
  structure(frame, class = c("hnm_profile", "data.frame"),
            estimates = stats::setNames(lmm_estimates(fitted), names), criterion = fitted$method,
            lower = stats::setNames(bounds$lower, names), upper = stats::setNames(bounds$upper, names),
            sd = stats::setNames(bounds$is_sd, names))
}

# Profile-likelihood limits of the parameters `parm` (lme4's `which`: NULL for all), rows in
# lme4's order and names. Only those are profiled, as lme4's confint(fit, parm) profiles
# `which = parm`: the cost follows `parm`, and another parameter's profile cannot fail it.
lmm_profile_intervals <- function(object, parm, level, oldNames, call) {
  require_likelihood_fit(object, "profile intervals", call)
  check_probability(level, "level", call)
  names <- lmm_parameter_names(object, oldNames)
  profiled <- lmm_profiled(parm, object, names, call, "parm")
  limits <- rust_result(rs_lmm_profile_ci(lmm_model(object), profiled, critical_value(level),
                                          thread_count(call)), call = call)
  dimnames(limits) <- list(names[profiled], percent_labels(level))
  limits
}

# lme4's names of the parameters in its order: SDs and correlations, sigma, fixed effects.
lmm_parameter_names <- function(object, oldNames) {
  c(variance_parameter_names(object, oldNames), names(object$beta))
}

# The estimates in lme4's order.
lmm_estimates <- function(object) {
  c(sd_cor_rows(matrix(as.double(object$re_covariance), 1L), matrix(object$sigma),
                lengths(object$random_names)), object$beta)
}

# Each parameter's range: [0, Inf) for SDs, [-1, 1] for correlations, (0, Inf) for sigma and
# the real line for fixed effects; `is_sd` marks the SDs and sigma.
lmm_parameter_bounds <- function(object) {
  is_sd <- grepl("^sd_", variance_parameter_names(object, FALSE))
  is_sd[length(is_sd)] <- TRUE
  p <- length(object$beta)
  is_cor <- c(!is_sd, logical(p))
  list(lower = c(ifelse(is_cor[seq_along(is_sd)], -1, 0), rep(-Inf, p)),
       upper = c(ifelse(is_cor[seq_along(is_sd)], 1, Inf), rep(Inf, p)),
       is_sd = c(is_sd, logical(p)))
}

# The 1-based indices of lme4's `which` (given as argument `argument`): NULL, names, indices,
# "theta_", "beta_".
lmm_profiled <- function(which, object, names, call, argument = "which") {
  n_variance <- length(variance_parameter_names(object, TRUE))
  groups <- list(theta_ = seq_len(n_variance), beta_ = n_variance + seq_along(object$beta))
  select_profiled(which, names, groups, call, argument)
}
