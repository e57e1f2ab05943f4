# Exact (balanced) and Thomas-Hultquist (unbalanced) F-pivot intervals for the variance
# ratio tau2/sigma2 and the intra-class correlation (see ?confint.hnm_fit).

# Rows icc and ratio. F* = n_h var(group means)/MSE with n_h the harmonic mean group size
# (MSG/MSE when balanced) has F*/(1 + n_h ratio) ~ F(m - 1, N - m), exactly when balanced.
exact_intervals <- function(object, level, quiet = FALSE) {
  s <- fit_one_way_statistics(object)
  groups <- length(s$n)
  n_obs <- sum(s$n)
  mse <- sum(s$ss) / (n_obs - groups)
  n_h <- groups / sum(1 / s$n)
  f <- n_h * stats::var(s$mean) / mse
  f_quantiles <- stats::qf(c(1 - (1 - level) / 2, (1 - level) / 2), groups - 1, n_obs - groups)
  ratio <- pmax((f / f_quantiles - 1) / n_h, 0)
  intervals <- rbind(icc = ratio / (1 + ratio), ratio = ratio)
  if (any(s$n != s$n[1L])) {
    note <- sprintf(paste("unbalanced data: Thomas-Hultquist approximation (n replaced by",
                          "the harmonic mean group size %s), not exact"), format(n_h, digits = 4))
    if (!quiet) message("confint(method = \"exact\"): ", note, ".")
    attr(intervals, "approximation") <- note
  }
  intervals
}
