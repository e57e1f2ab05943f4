# Parametric-bootstrap intervals, simulated and refitted in sufficient-statistic space
# (see ?confint.hnm_fit).

# Percentile or basic intervals for tau, sigma, mu (or tau2, sigma2, mu), with the replicates,
# the failure count and the random-number state as attributes.
boot_intervals <- function(object, level, scale, nsim, seed, type, threads, quiet, call) {
  check_count(nsim, "nsim", 2L, call, max = 1e7)
  require_likelihood_fit(object, "bootstrap intervals", call)
  rng <- use_seed(seed)
  on.exit(rng$restore())
  replicates <- bootstrap_refits(object, as.integer(nsim), threads, quiet, call)
  ok <- stats::complete.cases(replicates)
  failed <- sum(!ok)
  if (failed > 0L) {
    hnm_warn(sprintf("%d of %d bootstrap refits failed and were dropped.", failed, nsim),
             call = call)
  }
  on_scale <- function(p) {
    if (scale == "sd") c(sqrt(p$tau2), sqrt(p$sigma2), p$mu) else c(p$tau2, p$sigma2, p$mu)
  }
  estimate <- on_scale(object)
  draws <- matrix(on_scale(replicates[ok, ]), ncol = 3L)
  alpha <- (1 - level) / 2
  quantiles <- t(apply(draws, 2L, stats::quantile, probs = c(alpha, 1 - alpha), names = FALSE))
  intervals <- switch(type,
    perc = quantiles,
    basic = 2 * estimate - quantiles[, 2:1],
    norm = (2 * estimate - colMeans(draws)) +
      outer(apply(draws, 2L, stats::sd), c(-1, 1) * critical_value(level)))
  intervals[1:2, ] <- pmax(intervals[1:2, ], 0)
  structure(intervals, boot = replicates, failed = failed, seed = rng$state,
            class = c("hnm_boot_confint", "matrix", "array"))
}

#' @rdname confint.hnm_fit
#' @param x Bootstrap intervals (class `hnm_boot_confint`, a matrix): printed as the matrix
#'   and a line on the replicates, which `attr(x, "boot")` holds; or Wald intervals (class
#'   `hnm_wald_confint`), printed with a line when they use the expected information.
#' @export
print.hnm_boot_confint <- function(x, ...) {
  print(unclass(x)[, , drop = FALSE], ...)
  cat(sprintf("Parametric bootstrap: %d refits (%d failed) in attr(, \"boot\").\n",
              nrow(attr(x, "boot")), attr(x, "failed")))
  invisible(x)
}

# nsim refits of data simulated from the fit: group means ~ N(mu, tau2 + sigma2/n_j) and the
# pooled within-group SS ~ sigma2 chi^2_{N - m}, drawn in chunks (bounded memory, and a
# progress bar when the first chunk predicts more than 3 seconds); NA rows for failed refits.
bootstrap_refits <- function(object, nsim, threads, quiet, call) {
  s <- fit_statistics(object, call)
  groups <- length(s$n)
  sd_means <- sqrt(object$tau2 + object$sigma2 / s$n)
  chunk <- max(1L, min(ceiling(nsim / 20), floor(5e6 / groups)))
  starts <- seq.int(1L, nsim, by = chunk)
  refits <- vector("list", length(starts))
  bar <- NULL
  started <- proc.time()[["elapsed"]]
  for (i in seq_along(starts)) {
    size <- min(chunk, nsim - starts[i] + 1L)
    means <- matrix(stats::rnorm(size * groups, object$mu - s$center, rep(sd_means, each = size)),
                    size, groups)
    ssw <- object$sigma2 * stats::rchisq(size, sum(s$n - 1))
    refits[[i]] <- rust_result(rs_bootstrap(s$center, s$n, s$mean, s$ss, is_reml(object),
                                            means, ssw, threads), call = call)
    if (i == 1L && length(starts) > 1L && !quiet &&
        (proc.time()[["elapsed"]] - started) * nsim / size > 3) {
      bar <- utils::txtProgressBar(max = nsim, style = 3)
      on.exit(close(bar))
    }
    if (!is.null(bar)) utils::setTxtProgressBar(bar, starts[i] + size - 1L)
  }
  column <- function(name) unlist(lapply(refits, `[[`, name), use.names = FALSE)
  data.frame(mu = column("mu"), sigma2 = column("sigma2"), tau2 = column("tau2"))
}
