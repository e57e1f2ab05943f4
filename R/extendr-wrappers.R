#' Negative log-likelihood, gradient or Hessian (`what` = 0, 1, 2) at `par`.
#' @noRd
rs_neg_log_lik <- function(par, center, n, mean, ss, what) .Call(wrap__rs_neg_log_lik, par, center, n, mean, ss, what)

#' ML (`reml = FALSE`) or REML fit from group statistics.
#' @noRd
rs_fit <- function(center, n, mean, ss, reml) .Call(wrap__rs_fit, center, n, mean, ss, reml)

#' The one-way ANOVA from group statistics.
#' @noRd
rs_anova <- function(center, n, mean, ss) .Call(wrap__rs_anova, center, n, mean, ss)

#' Profile-likelihood limits (τ, σ, μ; lower then upper) of the ML fit for critical value `z`.
#' @noRd
rs_profile_ci <- function(center, n, mean, ss, z) .Call(wrap__rs_profile_ci, center, n, mean, ss, z)

#' One pass over the response `y` (double or integer) and the group `g` (factor, integer,
#' logical, double or character): per-group n, mean about `center`, within-group SS, the
#' number of rows dropped for NA; for a plain integer `g` of small range, `offset`, with
#' group j (1-based, n = 0 when unused) holding the value offset + j; for other non-factor
#' `g` the 1-based first row of each group (in no particular order), from which R recovers
#' the group values.
#' @noRd
rs_data_pass <- function(y, g, response) .Call(wrap__rs_data_pass, y, g, response)

