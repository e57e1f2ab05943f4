# Issue 15: every input class of the reliability review gives the right answer or a clear,
# classed error; references are lme4, factor(), base R and the data themselves.

test_that("each kind of core error reaches R as its own class under hnm_error", {
  d <- simulate_unbalanced(10, 1)
  fit <- hnm_fit(y ~ 1 | g, d)
  model <- hnm:::lmm_model(fit)   # the Rust model behind the fit
  bad_codes <- structure(c(1L, 1L, 2L, 5L), levels = c("a", "b"), class = "factor")
  broken <- fit
  broken$stats$n[2] <- -1
  broken$core <- NULL   # the engine rebuilds its model from fit$stats (as after readRDS())
  cases <- list(
    length_mismatch = quote(hnm:::rust_result(hnm:::rs_lmm_restore(0, c(2, 3), 0, c(1, 1), 1L, 0L, 0L, 1L,
                                                                        "y", FALSE, NULL))),
    not_finite = quote(hnm_fit(y ~ 1 | g, transform(d, y = replace(y, 3, Inf)))),
    group_code_out_of_range = quote(hnm_fit(y ~ 1 | g, data.frame(y = c(1, 2, 3, 5), g = bad_codes))),
    invalid_statistic = quote(confint(broken, method = "profile")),
    too_few_groups = quote(hnm_fit(y ~ 1 | g, data.frame(y = 1:4, g = 1))),
    no_replication = quote(hnm_fit(y ~ 1 | g, data.frame(y = 1:3, g = 1:3))),
    no_within_group_variation = quote(hnm_fit(y ~ 1 | g, data.frame(y = c(1, 1, 2, 2), g = c(1, 1, 2, 2)))),
    parameter_length = quote(mll_oneway(c(1, 1), d$y, d$g)),
    parameter_missing = quote(mll_oneway(c(1, NA, 1), d$y, d$g)),
    outside_parameter_space = quote(mll_oneway_hess(c(1, 0, 1), d$y, d$g)),
    out_of_range = quote(hnm_fit(y ~ 1 | g, transform(d, y = y * 1e-160))),
    optimizer = quote(hnm:::rust_result(hnm:::rs_lmm_profile(model, 1:3, 38, 2L, 1L))),
    invalid_argument = quote(hnm:::rust_result(hnm:::rs_group_codes(as.raw(1:4), "g"))),
    too_large = quote(hnm:::rust_result(hnm:::rs_lmm_profile(model, 1:3, 2, .Machine$integer.max, 1L)))
  )
  for (kind in names(cases)) {
    e <- tryCatch(eval(cases[[kind]]), error = identity)
    expect_s3_class(e, paste0("hnm_error_", kind))
    expect_s3_class(e, "hnm_error")
    # Messages name the user's argument or column, never the core's `ss`, `center` or `z`.
    expect_false(grepl("`(ss|center|z|zeta_max|n|mean)`", conditionMessage(e)), label = kind)
  }
  expect_match(conditionMessage(tryCatch(eval(cases$invalid_statistic), error = identity)),
               "`fit$stats$n` is invalid for group 2", fixed = TRUE)
})

test_that("size-like arguments are bounded with clear errors, before anything is allocated", {
  fit <- hnm_fit(y ~ 1 | g, simulate_unbalanced(10, 1))
  # Issue 15: profile(fit, steps = 1e8) grew a vector until the process aborted.
  expect_error(profile(fit, steps = 1e8), "`steps` must be a whole number of at least 2 and at most 100,000",
               fixed = TRUE, class = "hnm_error")
  expect_error(confint(fit, method = "boot", nsim = 1e12), "at most 10,000,000", class = "hnm_error")
  expect_error(simulate(fit, nsim = 1e10), "`nsim`", class = "hnm_error")
  for (threads in list(NA, 0, 2.5, 1e9, "2", c(1, 2))) {
    withr_threads <- options(hnm.threads = threads)
    expect_error(confint(fit, method = "boot", nsim = 10), "hnm.threads", class = "hnm_error",
                 label = deparse1(threads))
    options(withr_threads)
  }
  expect_error(confint(fit, method = "boot", nsim = 10, parallel = "snow", ncpus = 1e6), "`ncpus`",
               class = "hnm_error")
  expect_error(profile(fit, alphamax = 1e-320), "`alphamax`", class = "hnm_error")
})

test_that("a level close to 1 gives finite limits, not an error about the core's `z`", {
  fit <- hnm_fit(y ~ 1 | g, simulate_unbalanced(10, 1))
  level <- 1 - 1e-15
  z <- qnorm((1 - level) / 2, lower.tail = FALSE)
  wald <- confint(fit, method = "Wald", level = level)
  expect_equal(unname(wald[3, ]), mu_of(fit) + c(-1, 1) * z * sqrt(vcov(fit)[1, 1]))
  expect_true(all(is.finite(confint(fit, level = level))))
})

test_that("arguments lme4 users pass to confint() and profile() are honoured or refused", {
  skip_if_not_installed("lme4")
  fit <- hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff)
  lmer <- lme4::lmer(Yield ~ 1 + (1 | Batch), lme4::Dyestuff, REML = FALSE)
  expect_identical(rownames(confint(fit, oldNames = FALSE)),
                   rownames(suppressMessages(confint(lmer, oldNames = FALSE))))
  # boot.type = "norm": 2 x - mean(x*) -+ z sd(x*) of the replicates (boot::boot.ci's "norm").
  ci <- confint(fit, method = "boot", nsim = 200, seed = 3, boot.type = "norm")
  reps <- attr(ci, "boot")
  draws <- unname(reps$t[, c(".sig01", ".sigma", "(Intercept)")])
  est <- c(sqrt(tau2_of(fit)), sqrt(sigma2_of(fit)), mu_of(fit))
  centre <- 2 * est - colMeans(draws)
  half <- qnorm(0.975) * apply(draws, 2, sd)
  expect_equal(unname(unclass(ci)[, 1]), pmax(centre - half, c(0, 0, -Inf)))
  expect_equal(unname(unclass(ci)[, 2]), centre + half)
  # parallel = "no" runs on one thread: the same draws, the same intervals.
  expect_equal(unclass(confint(fit, method = "boot", nsim = 100, seed = 4, parallel = "no")),
               unclass(confint(fit, method = "boot", nsim = 100, seed = 4)))
  expect_error(confint(fit, method = "boot", nsim = 50, boot.type = "bca"), "`boot.type`", class = "hnm_error")
  expect_error(confint(fit, FUN = mean), "unused argument", class = "hnm_error")
  expect_error(confint(fit, zeta = 2), "unused argument", class = "hnm_error")
  # profile(which =): the rows of the whole profile for those parameters, as lme4 selects them.
  whole <- profile(fit)
  for (which in list(".sigma", 3L, "theta_", "beta_", c("(Intercept)", ".sig01"))) {
    part <- profile(fit, which = which)
    names <- levels(part$.par)
    expect_equal(as.data.frame(part)[, 1:4], as.data.frame(whole[whole$.par %in% names, 1:4]),
                 ignore_attr = TRUE, label = deparse1(which))
    # Rows in lme4's order of the parameters, as lme4's confint() of its profile gives them
    # (the factor's levels are sorted in the collation locale, which is C under testthat).
    lme4_part <- suppressWarnings(suppressMessages(profile(lmer, which = which)))
    expect_identical(rownames(confint(part)), rownames(suppressWarnings(confint(lme4_part))),
                     label = deparse1(which))
    expect_setequal(rownames(confint(part)), names)
  }
  expect_identical(levels(profile(fit, which = "theta_")$.par), c(".sig01", ".sigma"))
  expect_error(profile(fit, which = "nope"), "`which`", class = "hnm_error")
  expect_error(profile(fit, maxpts = 10), "unused argument", class = "hnm_error")
})

test_that("integer64 responses and groups (DBI's BIGINT) are exact within 2^53, NA dropped", {
  skip_if_not_installed("bit64")
  d <- simulate_unbalanced(12, 3)
  base <- 4.5e15                                   # below 2^53 = 9.007e15: exact in doubles
  counts <- round(d$y * 1000)
  d64 <- data.frame(y = bit64::as.integer64(base) + bit64::as.integer64(counts), g = d$g)
  d64$y[5] <- NA
  reference <- hnm_fit(y ~ 1 | g, data.frame(y = replace(base + counts, 5, NA), g = d$g))
  fit <- hnm_fit(y ~ 1 | g, d64)
  expect_identical(nobs(fit), nrow(d) - 1L)
  expect_equal(mu_of(fit), mu_of(reference), tolerance = 1e-15)
  expect_equal(c(sigma2_of(fit), tau2_of(fit)), c(sigma2_of(reference), tau2_of(reference)), tolerance = 1e-12)
  big <- d64
  big$y[7] <- bit64::as.integer64("9007199254740993")   # 2^53 + 1: not a double
  expect_error(hnm_fit(y ~ 1 | g, big), "row 7 is 9007199254740993", class = "hnm_error_out_of_range")
  # Groups: NA dropped (not merged into group 0), labels and order as factor() gives them.
  g64 <- bit64::as.integer64(c("0", "10", "2", NA, "123456789012345678"))[rep(1:5, length.out = nrow(d))]
  fit <- hnm_fit(y ~ 1 | g, data.frame(y = d$y, g = g64))
  expect_identical(fit$levels, levels(factor(g64)))
  expect_identical(fit$levels, c("0", "2", "10", "123456789012345678"))
  expect_identical(nobs(fit), sum(!is.na(g64)))
  ref <- hnm_fit(y ~ 1 | g, data.frame(y = d$y, g = as.character(g64)))
  expect_equal(tau2_of(fit), tau2_of(ref))
})

test_that("long labels with a shared prefix are ordered as factor() orders them, without overflow", {
  old <- Sys.getlocale("LC_COLLATE")
  on.exit(Sys.setlocale("LC_COLLATE", old))
  Sys.setlocale("LC_COLLATE", "C")          # the locale where the radix sort was used
  set.seed(9)
  labels <- paste0(strrep("x", 1e5), sample(c(letters, LETTERS, 0:9), 30))
  g <- sample(rep(labels, 3))
  y <- rnorm(length(g))
  fit <- hnm_fit(y ~ 1 | g, data.frame(y, g))
  expect_identical(fit$levels, levels(factor(g)))
  # Ordinary labels keep the radix sort, long ones take the shell sort.
  expect_identical(hnm:::sort_method(c("b", "a")), "radix")
  expect_identical(hnm:::sort_method(labels), "shell")
})

test_that("unclear inputs of the review give errors that say what to do", {
  d <- simulate_unbalanced(10, 1)
  expect_error(hnm_fit(y ~ 1 | T, d), "`T` has length 1 but the response `y` has length", class = "hnm_error")
  expect_error(hnm_fit(y ~ 1 | pi, d), "`pi` is not a column of `data`", class = "hnm_error")
  na_level <- transform(d, g = addNA(factor(replace(g, 1:3, NA))))
  expect_error(hnm_fit(y ~ 1 | g, na_level), "has NA as a level", class = "hnm_error")
  corrupt <- d
  corrupt$g <- structure(rep(1:2, length.out = nrow(d)), levels = c("a", "a"), class = "factor")
  expect_error(hnm_fit(y ~ 1 | g, corrupt), "corrupt factor: its level \"a\" appears twice",
               class = "hnm_error")
  expect_error(hnm_fit(y ~ 1 | g, transform(d, g = as.raw(as.integer(factor(g))))), "raw vector",
               class = "hnm_error")
  # Only non-ASCII strings can carry an encoding mark.
  bytes <- transform(d, g = paste0(g, "\u00e9"))
  Encoding(bytes$g) <- "bytes"
  expect_error(hnm_fit(y ~ 1 | g, bytes), "marked as \"bytes\"", class = "hnm_error")
  bytes_factor <- transform(d, g = factor(paste0(g, "\u00e9")))
  levels(bytes_factor$g) <- `Encoding<-`(levels(bytes_factor$g), "bytes")
  expect_error(hnm_fit(y ~ 1 | g, bytes_factor), "marked as \"bytes\"", class = "hnm_error")
  # One text in two encodings is one level to R (the data pass defers such labels to R);
  # two texts in two encodings are two levels, fitted as any two labels are.
  latin1 <- iconv(c("caf\u00e9", "na\u00efve"), "UTF-8", "latin1")
  codes <- rep(1:2, length.out = nrow(d))
  two_marks <- d
  two_marks$g <- structure(codes, levels = c("caf\u00e9", latin1[1L]), class = "factor")
  expect_error(hnm_fit(y ~ 1 | g, two_marks), "corrupt factor", class = "hnm_error")
  two_marks$g <- structure(codes, levels = c("caf\u00e9", latin1[2L]), class = "factor")
  ascii <- transform(d, g = factor(c("a", "b")[codes]))
  expect_equal(tau2_of(hnm_fit(y ~ 1 | g, two_marks)), tau2_of(hnm_fit(y ~ 1 | g, ascii)))
})

test_that("ALTREP inputs (compact sequences, deferred strings) give the fit of ordinary vectors", {
  n <- 400L
  y <- as.double(seq_len(n))                       # a compact sequence
  g <- as.character(seq_len(n) %% 7L)              # deferred string conversion
  plain <- hnm_fit(y ~ 1 | g, data.frame(y = y + 0, g = paste0(g, "")))
  expect_equal(tau2_of(hnm_fit(y ~ 1 | g)), tau2_of(plain))
  expect_equal(sigma2_of(hnm_fit(y ~ 1 | g)), sigma2_of(plain))
  ints <- seq_len(n)                               # compact integers as the response
  groups <- rep_len(seq_len(9L), n)
  expect_equal(sigma2_of(hnm_fit(ints ~ 1 | groups)), sigma2_of(hnm_fit(I(ints + 0) ~ 1 | groups)))
})

test_that("inside the documented range the fit is exact; outside it is an hnm_error_out_of_range error", {
  # Reference: the fit at scale 1. Scaling y by 10^k changes every estimate by 10^k or 10^2k
  # (and the log-likelihood by N k log 10) up to the rounding of y * 10^k itself.
  set.seed(2)
  sizes <- c(3, 5, 2, 7, 4, 6, 3, 5)
  g <- rep(seq_along(sizes), sizes)
  y <- rnorm(8, sd = 1.5)[g] + rnorm(length(g))
  rel <- function(a, b) max(abs(a - b)) / max(abs(b))
  for (method in c("ML", "REML")) {
    ref <- hnm_fit(y ~ 1 | g, data.frame(y, g), method = method)
    k_loglik <- nobs(ref) - (method == "REML")
    rms <- sqrt(sum(hnm:::fit_one_way_statistics(ref)$ss) / nobs(ref))
    # From just above the smallest RMS within-group deviation (1.5e-154) to 1e152.
    for (scale in c(1.6e-154 / rms, 1e-153, 1e-100, 1e-20, 1e20, 1e100, 1e152)) {
      f <- hnm_fit(y ~ 1 | g, data.frame(y = y * scale, g), method = method)
      label <- sprintf("%s at %g", method, scale)
      expect_lt(rel(c(sigma2_of(f), tau2_of(f)) / scale^2, c(sigma2_of(ref), tau2_of(ref))), 1e-12, label = label)
      expect_lt(rel(mu_of(f) / scale, mu_of(ref)), 1e-12, label = label)
      expect_lt(rel(c(logLik(f)) + k_loglik * log(scale), c(logLik(ref))), 1e-12, label = label)
      expect_lt(rel(confint(f, method = "Wald") / scale, confint(ref, method = "Wald")), 1e-12,
                label = label)
      expect_lt(rel(confint(f) / scale, confint(ref)), 1e-9, label = label)
      expect_lt(rel(unlist(ranef(f)) / scale, unlist(ranef(ref))), 1e-12, label = label)
    }
  }
  # The issue's examples: 1e-160 (was 4e-4 off), 1e-162 (variances 0), means 1e200 apart (Inf);
  # and y * 1e155, beyond the one range of every model (sqrt(N) times the RMS deviation at most
  # 1.3e154; the one-way model's own pass stopped at 1e153).
  for (bad in list(y * 1e-160, y * 1e-162, y * 1e-154, y * 1e155, y * 1e190 + 1e200 * g)) {
    expect_error(hnm_fit(y ~ 1 | g, data.frame(y = bad, g)), class = "hnm_error_out_of_range")
  }
  # Means far apart inside the range: finite tau^2 and the BLUPs' closed form, up to 1e4
  # within-group SDs apart (here about 2e3); beyond, where the factorisation's X'X downdate
  # cancels, an hnm_error_out_of_range saying so (about 2e10 apart: 1e150 means, 1e140 noise).
  far_data <- data.frame(y = y * 1e140 + 1e143 * g, g)
  far <- hnm_fit(y ~ 1 | g, far_data)
  expect_true(is.finite(tau2_of(far)) && all(is.finite(unlist(ranef(far)))))
  # The BLUPs' closed form at the estimates, tau2 n_j / (sigma2 + n_j tau2) (ybar_j - mu).
  n_j <- tabulate(g)
  blup <- tau2_of(far) * n_j / (sigma2_of(far) + n_j * tau2_of(far)) *
    (tapply(far_data$y, g, mean) - mu_of(far))
  expect_equal(unname(unlist(ranef(far))), unname(as.vector(blup)), tolerance = 1e-8)
  expect_error(hnm_fit(y ~ 1 | g, data.frame(y = y * 1e140 + 1e150 * g, g)),
               "within-group standard deviations apart", class = "hnm_error_out_of_range")
})
