# The general model's range of data (?hnm-conditions, "Range of the data"; issue 25): inside it
# a fit of rescaled data equals the fit at scale 1 mapped by the exact scale laws, outside it
# stops with hnm_error_out_of_range (where it said "fits the response exactly", dropped x as
# rank deficient or was 1e-4 off).

# The fit of y * cy ~ x * cx + w + (x | g), from the fit at scale 1 by the scale laws: with
# D = diag(1, 1/cx, 1) on X's columns and E = diag(1, 1/cx) on Z's, beta -> cy D beta,
# vcov -> cy^2 D vcov D, sigma -> cy sigma, the random-effects covariance -> cy^2 E Sigma E,
# and theta, the Cholesky factor L of Sigma / sigma^2 by columns, -> E L (still lower
# triangular with a positive diagonal): (L11, L21 / cx, L22 / cx). The density of cy y is
# cy^-N that of y, so the ML deviance gains 2 N log(cy); REML's gains 2 (N - p) log(cy) (its
# profiled residual term) plus 2 log(cx) from log|X'V^-1 X| (a column of X times cx).
scaled_fit_numbers <- function(fit, cy, cx) {
  d <- c(1, 1 / cx, 1)
  e <- c(1, 1 / cx)
  n <- fit$n_obs
  p <- length(fit$beta)
  shift <- if (fit$method == "REML") 2 * (n - p) * log(cy) + 2 * log(cx) else 2 * n * log(cy)
  list(beta = cy * d * unname(fit$beta), vcov = cy^2 * outer(d, d) * unname(fit$vcov_beta),
       sigma = cy * fit$sigma, re_covariance = cy^2 * outer(e, e) * unname(fit$re_covariance),
       theta = unname(fit$theta) * c(1, 1 / cx, 1 / cx), deviance = fit$deviance + shift)
}

fit_numbers_of <- function(fit) {
  list(beta = unname(fit$beta), vcov = unname(fit$vcov_beta), sigma = fit$sigma,
       re_covariance = unname(fit$re_covariance), theta = unname(fit$theta),
       deviance = fit$deviance)
}

# Each quantity's largest error relative to its largest element.
relative_errors <- function(actual, expected) {
  mapply(function(a, b) max(abs(a - b)) / max(abs(b)), actual, expected)
}

range_data <- function() {
  d <- simulate_lmm(2525, m = 20, balanced = FALSE)
  d$x <- d$x + 2  # a covariate away from 0
  d
}

test_that("inside the range, rescaled data give the scale laws' fit to 1e-10; outside, out_of_range", {
  d <- range_data()
  formula <- y ~ x + w + (x | g)
  ks <- c(seq(-200, 200, by = 20), -300, 154, 300)
  scales <- c(lapply(ks, function(k) c(y = 10^k, x = 1)), lapply(ks, function(k) c(y = 1, x = 10^k)),
              # Opposite scales: the estimates scale with their ratio, the variances its square.
              list(c(y = 1e70, x = 1e-70), c(y = 1e-70, x = 1e70), c(y = 1e80, x = 1e-80),
                   c(y = 1e-80, x = 1e80)))
  for (reml in c(FALSE, TRUE)) {
    base <- hnm_fit(formula, d, REML = reml)
    for (scale in scales) {
      info <- sprintf("y x %g, x x %g, REML = %s", scale[["y"]], scale[["x"]], reml)
      scaled <- d
      scaled$y <- d$y * scale[["y"]]
      scaled$x <- d$x * scale[["x"]]
      # The documented range for these data (sd(y), sd(x) about 2, N about 170): every RMS
      # deviation from 1.5e-154 to 1.3e154 / sqrt(N), and their ratio within 1e-150..1e150.
      inside <- all(abs(log10(scale)) <= 140) && abs(log10(scale[["y"]] / scale[["x"]])) <= 140
      if (inside) {
        fit <- hnm_fit(formula, scaled, REML = reml)
        errors <- relative_errors(fit_numbers_of(fit), scaled_fit_numbers(base, scale[["y"]], scale[["x"]]))
        expect_true(all(errors < 1e-10), info = paste(info, paste(names(errors), signif(errors, 2),
                                                                   collapse = " ")))
      } else {
        e <- expect_error(hnm_fit(formula, scaled, REML = reml), class = "hnm_error_out_of_range",
                          info = info)
        expect_match(conditionMessage(e), "`[xy]`", info = info)
      }
    }
  }
})

test_that("the range is checked on every way into the general model, and the one-way model's class is the same", {
  skip_if_not_installed("dbplyr")
  skip_if_not_installed("RSQLite")
  d <- range_data()
  tiny <- transform(d, y = y * 1e-160)
  con <- DBI::dbConnect(RSQLite::SQLite(), ":memory:")
  on.exit(DBI::dbDisconnect(con))
  DBI::dbWriteTable(con, "tiny", tiny)
  expect_error(hnm_fit(y ~ x + (x | g), dplyr::tbl(con, "tiny")), "`y` varies too little",
               class = "hnm_error_out_of_range")
  expect_error(hnm_stats(y ~ x + (x | g), tiny), "`y` varies too little",
               class = "hnm_error_out_of_range")
  # A statistics table whose covariate x has been rescaled past the range.
  stats <- hnm_stats(y ~ x + (x | g), d)
  wide <- stats
  wide$mean_x <- wide$mean_x * 1e160
  wide$sp_y_x <- wide$sp_y_x * 1e160
  wide$ss_x <- wide$ss_x * 1e320  # Inf: refused as a statistic, before the range is checked
  expect_error(hnm_fit(y ~ x + (x | g), wide), class = "hnm_error")
  narrow <- stats
  narrow$mean_x <- narrow$mean_x * 1e-160
  narrow$sp_y_x <- narrow$sp_y_x * 1e-160
  narrow$ss_x <- narrow$ss_x * 1e-320
  expect_error(hnm_fit(y ~ x + (x | g), narrow), "`x` varies too little",
               class = "hnm_error_out_of_range")
  expect_error(hnm_fit(y ~ 1 | g, transform(d, y = y * 1e160)), class = "hnm_error_out_of_range")
})
