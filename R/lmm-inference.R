# Intervals and model comparison for fits with covariates or random slopes.

# `type` and `ddf` are of the F tests of one fit; lmerTest ignores them in a comparison of
# fits, hnm says so.
check_one_fit_arguments <- function(no_type, no_ddf, call) {
  if (!no_type || !no_ddf) {
    hnm_abort(paste("`type` and `ddf` are for the F tests of the fixed effects of one fit",
                    "(anova(fit, type = ...)); a comparison of fits takes neither."),
              call = call, class = "hnm_error_argument")
  }
}

# What anova()'s comparison needs of a fit with covariates: its ML deviance and variances
# (refitting a REML fit by ML, warm-started, without replacing the fit), npar, its terms and
# a summary of the response.
describe_lmm <- function(fit, name, call) {
  ml <- ml_estimate(fit, call)
  c(list(name = name, is_hnm = TRUE, refitted = fit$method != "ML", npar = n_parameters(fit),
         deviance = ml$deviance),
    random_layout(fit, ml),
    list(summary = lmm_response_summary(fit), formula = deparse1(fit$formula),
         data = if (!is.null(fit$call$data)) deparse1(fit$call$data)))
}

# A general fit's fixed effects, grouping factor and random-effects blocks with the variances
# of its ML fit `ml`, by block: what added_random_effect() compares.
random_layout <- function(fit, ml) {
  variances <- diag(ml$re_covariance)
  list(fixed = fit$fixed_names, group = fit$group_name, random = fit$random_names,
       variances = lapply(block_ranges(fit), function(i) variances[i]))
}

# N, mean and total sum of squares of the response (variable 1 of the statistics).
lmm_response_summary <- function(fit) {
  s <- fit$stats
  k <- length(s$pilot)
  groups <- seq_along(s$n) - 1L
  means <- s$means[groups * k + 1L]
  within <- s$comoments[groups * k * (k + 1L) / 2L + 1L]
  n <- sum(s$n)
  centered_mean <- sum(s$n * means) / n
  c(n = n, mean = s$pilot[1L] + centered_mean,
    sst = sum(within) + sum(s$n * (means - centered_mean)^2))
}
