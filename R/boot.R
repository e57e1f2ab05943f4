# Parametric-bootstrap intervals, simulated and refitted in sufficient-statistic space
# (see ?confint.hnm_fit).

# Percentile, basic or normal (bias-corrected, as boot::boot.ci's) limits of each column of
# `draws` (replicates by rows; NA and NaN left out) about the estimates `estimate`.
boot_limits <- function(estimate, draws, level, type) {
  alpha <- (1 - level) / 2
  quantiles <- t(apply(draws, 2L, stats::quantile, probs = c(alpha, 1 - alpha), names = FALSE,
                       na.rm = TRUE))
  switch(type,
    perc = quantiles,
    basic = 2 * estimate - quantiles[, 2:1, drop = FALSE],
    norm = (2 * estimate - colMeans(draws, na.rm = TRUE)) +
      outer(apply(draws, 2L, stats::sd, na.rm = TRUE), c(-1, 1) * critical_value(level)))
}

#' @rdname confint.hnm_fit
#' @param x Bootstrap intervals (class `hnm_boot_confint`, a matrix): printed as the matrix
#'   and a line on the replicates, which `attr(x, "boot")` holds; or Wald intervals (class
#'   `hnm_wald_confint`), printed with a line when they use the expected information.
#' @export
print.hnm_boot_confint <- function(x, ...) {
  check_no_dots(list(...), sys.call(), allowed = print_arguments)
  print(unclass(x)[, , drop = FALSE], ...)
  boot <- attr(x, "boot")
  replicates <- if (inherits(boot, "hnm_bootstrap")) boot$R else nrow(boot)
  cat(sprintf("Parametric bootstrap: %d refits (%d failed) in attr(, \"boot\").\n",
              replicates, attr(x, "failed")))
  invisible(x)
}

# The results of refit_chunk(size) for chunks of the nsim replicates, each drawing `per`
# normals a replicate: chunks of at most 5e6 draws (bounded memory) and 20 chunks or more, so
# that a progress bar is shown when the first chunk predicts more than 3 seconds.
in_chunks <- function(nsim, per, refit_chunk, quiet) {
  chunk <- max(1L, min(ceiling(nsim / 20), floor(5e6 / max(per, 1))))
  starts <- seq.int(1L, nsim, by = chunk)
  results <- vector("list", length(starts))
  bar <- NULL
  started <- proc.time()[["elapsed"]]
  for (i in seq_along(starts)) {
    size <- min(chunk, nsim - starts[i] + 1L)
    results[[i]] <- refit_chunk(size)
    if (i == 1L && length(starts) > 1L && !quiet &&
        (proc.time()[["elapsed"]] - started) * nsim / size > 3) {
      bar <- utils::txtProgressBar(max = nsim, style = 3)
      on.exit(close(bar))
    }
    if (!is.null(bar)) utils::setTxtProgressBar(bar, starts[i] + size - 1L)
  }
  results
}
