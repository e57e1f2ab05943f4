# The one-way model y_ij = mu + a_j + e_ij is the fit's q = p = 1 case (`y ~ 1 | g`): fitted,
# printed and summarised like any fit. What only this structure has are the methods below,
# offered when the fit has it and refused with an hnm_error otherwise: the ANOVA (moment)
# estimator, the exact F test of tau^2 = 0, the exact F-pivot intervals of tau^2/sigma^2 and
# the ICC, and the inverse information of (mu, sigma^2, tau^2) (vcov(full = TRUE), the
# variance-scale Wald intervals). They read the group statistics (n_j, ybar_j, SSW_j), which
# are the Rust model's statistics of its response.

# TRUE for the one-way model: the intercept as the only fixed effect and the only random
# effect. `x` is a fit, or (with `offset = TRUE`) the design of a model being built. Without an
# offset (the default) it is the model whose own methods (above) read the response's group
# statistics; with `offset = TRUE` an offset is allowed: the core fits y - offset ~ 1 | g by the
# one-way closed forms alike, so their range check applies (check_one_way_range()).
is_one_way <- function(x, offset = FALSE) {
  if (!offset) return(isTRUE(x$parsed$one_way))
  spec <- if (inherits(x, "hnm_fit")) x$spec else x
  identical(as.integer(spec$fixed), 0L) && identical(as.integer(spec$random), 0L)
}

require_one_way <- function(object, what, call) {
  if (!is_one_way(object)) {
    # Weights or an offset keep the formula but not the one-way model's closed forms.
    extra <- if (!is.null(object$rows$weights)) " with weights" else
      if (!is.null(object$rows$offset)) " with an offset" else ""
    hnm_abort(sprintf(paste("%s is for the one-way model `y ~ 1 | g`, but this fit is of `%s`%s;",
                            "it has no such structure."), what, deparse1(object$formula), extra),
              call = call, class = "hnm_error_argument")
  }
}

# The statistics of a one-way fit's response, as its Rust model holds them: the centre, and per
# group with rows n_j, the mean about the centre and the within-group sum of squares.
fit_one_way_statistics <- function(object) {
  rust_result(rs_one_way_statistics(lmm_model(object)))
}

# The closed-form one-way fit by `criterion` (the fit's own by default): estimates of
# (mu, sigma^2, tau^2), their inverse information and its kind.
one_way_closed_form <- function(object, call, reml = is_reml(object)) {
  rust_result(rs_fit(lmm_model(object), reml), call = call)
}

# The one-way model's theta = tau/sigma within the documented range. (Its fit, rs_lmm_fit, is
# the closed form: theta at the root of the profiled score, mu, sigma^2, tau^2 and the
# criterion from the within- and between-group sums of squares; see LinearMixedModel::fit.)
# The factorisation that the profiles and Satterthwaite's df evaluate subtracts the groups'
# share of X'X from X'X, which cancels as theta grows (relative error about N eps theta^2 / m
# in the mean's precision): beyond theta = 1e4 (group means apart by more than ten thousand
# within-group SDs) they would lose their digits, and such data are refused.
check_one_way_range <- function(theta, call) {
  # (Offsets included: the model is y - offset ~ 1 | g, fitted and profiled alike.)
  if (theta > 1e4) {
    hnm_abort(sprintf(paste("the group means are %.3g within-group standard deviations apart",
                            "(tau/sigma): beyond 1e4 the mixed model's factorisation loses the",
                            "digits of its profiles and degrees of freedom; the groups are then",
                            "fixed effects in all but name (fit lm(y ~ factor(g)))."), theta),
              call = call, class = "hnm_error_out_of_range")
  }
}

# The ANOVA (method-of-moments) estimates of a one-way model in the shape of the optimiser's
# (rs_lmm_fit), with the mean squares (`anova`) and the estimators' sampling covariance
# (`covariance`, of (ybar, MSE, (MSG - MSE)/n0)); warns (hnm_warning_negative_tau2) when
# MSG < MSE makes the moment estimate of tau^2 negative, truncated at 0.
anova_estimates <- function(built, call) {
  a <- rust_result(rs_anova_fit(built$model), call = call)
  if (a$tau2_untruncated < 0) {
    hnm_warn(sprintf(paste("the ANOVA estimate of tau^2, (MSG - MSE)/n0 = %s, is negative",
                           "(MSG < MSE); it is truncated at 0."),
                     format(a$tau2_untruncated, digits = 6)),
             call = call, class = "hnm_warning_negative_tau2")
  }
  list(theta = a$theta, internal_theta = a$theta, beta = a$mu, beta_covariance = a$se_mu^2,
       sigma = sqrt(a$sigma2), re_covariance = a$tau2, deviance = a$deviance,
       iterations = 0, evaluations = 0, projected_gradient_norm = 0, converged = TRUE,
       covariance = matrix(a$covariance, 3L, 3L,
                           dimnames = list(one_way_parameters, one_way_parameters)),
       anova = a[c("msg", "mse", "n0", "df_between", "df_within", "tau2_untruncated")])
}

one_way_parameters <- c("mu", "sigma2", "tau2")

# The inverse information of (mu, sigma^2, tau^2) (the sampling covariance of the moment
# estimators for an ANOVA fit), with the kind of information as attribute "information".
one_way_covariance <- function(object, call) {
  require_one_way(object, "vcov(full = TRUE), the covariance of (mu, sigma^2, tau^2),", call)
  if (object$method == "ANOVA") return(structure(object$covariance, information = "sampling"))
  fit <- one_way_closed_form(object, call)
  structure(matrix(fit$covariance, 3L, 3L, dimnames = list(one_way_parameters, one_way_parameters)),
            information = fit$information)
}

# The standard errors of (mu, sigma^2, tau^2) from the same inverse information, as the Rust
# closed form computes them (not the square roots of one_way_covariance()'s diagonal: those
# variances scale like y^4 and under- or overflow for |y| near 1e-80 or 1e80, where the
# standard errors, like y^2, are still doubles), with the kind of information as attribute
# "information".
one_way_standard_errors <- function(object, call) {
  require_one_way(object, "the standard errors of (mu, sigma^2, tau^2)", call)
  if (object$method == "ANOVA") {
    return(structure(sqrt(pmax(diag(object$covariance), 0)), information = "sampling"))
  }
  fit <- one_way_closed_form(object, call)
  structure(stats::setNames(fit$std_errors, one_way_parameters), information = fit$information)
}

# The conditional modes of a one-way fit's group effects at its (mu, sigma^2, tau^2),
# tau^2 n_j / (sigma^2 + n_j tau^2) (ybar_j - mu), and their conditional variances: exact
# where the factorisation's GLS mean cancels (its digits go as theta^2), and an ANOVA fit's
# BLUPs at its moment estimates (mu = ybar, not the GLS mean of those variances).
one_way_modes <- function(object) {
  s <- fit_one_way_statistics(object)
  tau2 <- object$re_covariance[1L, 1L]
  sigma2 <- object$sigma^2
  shrink <- tau2 * s$n / (sigma2 + s$n * tau2)
  list(modes = shrink * (s$mean - (object$beta[[1L]] - s$center)),
       conditional_covariances = sigma2 * tau2 / (sigma2 + s$n * tau2))
}

# A one-way fit's fitted values of rows in groups `codes` (1-based levels of the statistics, 0
# for a new level): ybar plus the group's mode (or `modes`, one per group with rows: chosen or
# simulated effects), or ybar alone.
one_way_fitted <- function(object, codes, population, modes = NULL) {
  mu <- object$beta[[1L]]
  if (population) return(rep(mu, length(codes)))
  by_level <- numeric(length(object$stats$n))
  by_level[object$stats$n > 0] <- modes %||% one_way_modes(object)$modes
  mu + c(0, by_level)[as.integer(codes) + 1L]
}
