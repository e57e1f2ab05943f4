#' Negative log-likelihood, gradient or Hessian (`what` = 0, 1, 2) at `par`.
#' @noRd
rs_neg_log_lik <- function(par, center, n, mean, ss, what) .Call(wrap__rs_neg_log_lik, par, center, n, mean, ss, what)

#' ML (`reml = FALSE`) or REML fit from group statistics.
#' @noRd
rs_fit <- function(center, n, mean, ss, reml) .Call(wrap__rs_fit, center, n, mean, ss, reml)

#' ANOVA (method-of-moments) fit from group statistics.
#' @noRd
rs_anova_fit <- function(center, n, mean, ss) .Call(wrap__rs_anova_fit, center, n, mean, ss)

#' One pass over the response `y` (double or integer) and the group `g` (factor, integer,
#' logical, double or character): per-group n, mean about `center`, within-group SS, the
#' number of rows dropped for NA; for a plain integer `g` of small range, `offset`, with
#' group j (1-based, n = 0 when unused) holding the value offset + j; for other non-factor
#' `g` the 1-based first row of each group (in no particular order), from which R recovers
#' the group values. `response` and `group` name `y` and `g` in error messages.
#' @noRd
rs_data_pass <- function(y, g, response, group) .Call(wrap__rs_data_pass, y, g, response, group)

#' Profile-likelihood limits (τ, σ, μ; lower then upper) for critical value `z`, of the
#' ML (`reml = FALSE`) or REML criterion.
#' @noRd
rs_profile_ci <- function(center, n, mean, ss, reml, z) .Call(wrap__rs_profile_ci, center, n, mean, ss, reml, z)

#' The profiles of the parameters `which` (1 τ, 2 σ, 3 μ) at ζ = −zeta_max..zeta_max in
#' `steps` steps a side: for each point the parameter index, ζ, and τ, σ, μ at the inner optimum.
#' @noRd
rs_profile <- function(center, n, mean, ss, reml, zeta_max, steps, which) .Call(wrap__rs_profile, center, n, mean, ss, reml, zeta_max, steps, which)

#' Refits of bootstrap replicates given as a replicates × groups matrix of centered group
#' means and a vector of pooled within-group sums of squares, on `threads` threads; NA where
#' a refit failed.
#' @noRd
rs_bootstrap <- function(center, n, mean, ss, reml, means, ssw_totals, threads) .Call(wrap__rs_bootstrap, center, n, mean, ss, reml, means, ssw_totals, threads)

