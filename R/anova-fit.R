# The ANOVA (method-of-moments) estimates of hnm_fit(method = "ANOVA").

# Estimates in the shape rs_fit() returns, plus the ANOVA table's mean squares; warns
# (class hnm_warning) when MSG < MSE makes the moment estimate of tau^2 negative.
anova_estimates <- function(s, call) {
  a <- rust_result(rs_anova_fit(s$center, s$n, s$mean, s$ss), call = call)
  if (a$tau2_untruncated < 0) {
    hnm_warn(sprintf(paste("the ANOVA estimate of tau^2, (MSG - MSE)/n0 = %s, is negative",
                           "(MSG < MSE); it is truncated at 0."),
                     format(a$tau2_untruncated, digits = 6)),
             call = call, class = "hnm_warning_negative_tau2")
  }
  c(a[c("mu", "sigma2", "tau2", "theta", "deviance", "se_mu", "hessian", "covariance")],
    list(std_errors = sqrt(pmax(a$covariance[c(1L, 5L, 9L)], 0)), unit = NA_real_,
         brent_iterations = NA_real_, newton_iterations = NA_real_, profiled_score = NA_real_,
         gradient_norm = NA_real_, on_boundary = a$tau2 == 0,
         anova = a[c("msg", "mse", "n0", "df_between", "df_within", "tau2_untruncated")]))
}
