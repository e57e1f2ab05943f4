#' One pass over y and 1-based group codes: per-group n, mean, within-group SS.
#' @noRd
rs_group_stats <- function(y, codes, n_groups) .Call(wrap__rs_group_stats, y, codes, n_groups)

#' Negative log-likelihood, gradient or Hessian (`what` = 0, 1, 2) at `par`.
#' @noRd
rs_neg_log_lik <- function(par, center, n, mean, ss, what) .Call(wrap__rs_neg_log_lik, par, center, n, mean, ss, what)

#' ML (`reml = FALSE`) or REML fit from group statistics.
#' @noRd
rs_fit <- function(center, n, mean, ss, reml) .Call(wrap__rs_fit, center, n, mean, ss, reml)

#' The one-way ANOVA from group statistics.
#' @noRd
rs_anova <- function(center, n, mean, ss) .Call(wrap__rs_anova, center, n, mean, ss)

#' Profile-likelihood limits (τ, σ, μ; lower then upper) of the ML fit for critical value `z`,
#' computed on the data in their unit (see `hnm_core::Unit`) so they do not depend on the scale.
#' @noRd
rs_profile_ci <- function(center, n, mean, ss, z) .Call(wrap__rs_profile_ci, center, n, mean, ss, z)

#' ANOVA (method-of-moments) fit from group statistics.
#' @noRd
rs_anova_fit <- function(center, n, mean, ss) .Call(wrap__rs_anova_fit, center, n, mean, ss)

