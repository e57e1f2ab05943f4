# The parametric bootstrap of fits with covariates and random slopes in statistic space:
# its replicates against refits of full simulated data sets (simulate() draws every row) and
# against lme4's bootMer(), the interval definitions, seeds and errors.

# lme4's SDs, correlation and sigma, then the fixed effects, from a fit's Σ (by hand).
sd_cor_sigma_beta <- function(fit) {
  s <- fit$re_covariance
  sd <- sqrt(diag(s))
  c(sd[1], s[2, 1] / (sd[1] * sd[2]), sd[2], fit$sigma, fit$beta)
}

# 30 groups of 2 to 12 rows; x varies within groups, w is constant within each group (no
# within-group variation: the generator's W_j is singular), u is x plus an exact linear
# combination in a third of the groups.
boot_design <- function() {
  set.seed(11)
  sizes <- rep(c(2, 5, 12, 7, 3, 9), 5)
  g <- factor(rep(seq_along(sizes), sizes))
  x <- round(stats::rnorm(length(g)), 2)
  w <- stats::rnorm(length(sizes))[g]
  b0 <- stats::rnorm(length(sizes), sd = 1.5)[g]
  b1 <- stats::rnorm(length(sizes), sd = 0.8)[g]
  y <- 2 + 0.5 * x - w + b0 + b1 * x + stats::rnorm(length(g))
  data.frame(y, x, w, g)
}

test_that("bootstrap replicates match refits of full simulated data sets (Kolmogorov-Smirnov)", {
  d <- boot_design()
  nsim <- 400
  for (reml in c(FALSE, TRUE)) {
    fit <- hnm_fit(y ~ x + w + (x | g), d, REML = reml)
    boot <- bootstrap(fit, nsim = nsim, seed = 1)
    expect_s3_class(boot, "hnm_bootstrap")
    expect_equal(dim(boot$t), c(nsim, 7L))
    expect_equal(colnames(boot$t), c(".sig01", ".sig02", ".sig03", ".sigma",
                                     "(Intercept)", "x", "w"))
    expect_equal(unname(boot$t0), unname(sd_cor_sigma_beta(fit)))
    rows <- simulate(fit, nsim = nsim, seed = 2)
    full <- t(vapply(rows, function(sim) {
      sd_cor_sigma_beta(hnm_fit(y ~ x + w + (x | g), transform(d, y = sim), REML = reml))
    }, numeric(7)))
    p <- vapply(seq_len(7), function(k) {
      suppressWarnings(stats::ks.test(boot$t[, k], full[, k])$p.value)
    }, numeric(1))
    expect_true(all(p > 1e-3), label = paste(format(p, digits = 3), collapse = " "))
    # And the bootstrap is not the full-data simulation in disguise: other draws.
    expect_false(isTRUE(all.equal(unname(boot$t[, 4]), unname(full[, 4]))))
  }
})

test_that("a model with two random-effect terms and no intercept variation is bootstrapped", {
  d <- boot_design()
  fit <- hnm_fit(y ~ x + (1 | g) + (0 + x | g), d)
  ci <- confint(fit, method = "boot", nsim = 200, seed = 3)
  expect_equal(rownames(ci), c(".sig01", ".sig02", ".sigma", "(Intercept)", "x"))
  boot <- attr(ci, "boot")
  rows <- simulate(fit, nsim = 200, seed = 4)
  full <- t(vapply(rows, function(sim) {
    f <- hnm_fit(y ~ x + (1 | g) + (0 + x | g), transform(d, y = sim))
    c(sqrt(diag(f$re_covariance)), f$sigma, f$beta)
  }, numeric(5)))
  p <- vapply(1:5, function(k) suppressWarnings(stats::ks.test(boot$t[, k], full[, k])$p.value), 1)
  expect_true(all(p > 1e-3), label = paste(format(p, digits = 3), collapse = " "))
})

test_that("the bootstrap of sleepstudy agrees with lme4's bootMer and confint(method = 'boot')", {
  skip_if_not_installed("lme4")
  sleep <- lme4::sleepstudy
  for (reml in c(FALSE, TRUE)) {
    m <- lme4::lmer(Reaction ~ Days + (Days | Subject), sleep, REML = reml)
    reference <- lme4::bootMer(m, function(x) {
      v <- as.data.frame(lme4::VarCorr(x))$sdcor  # sd(Int), sd(Days), cor, sigma
      c(v[1], v[3], v[2], v[4], lme4::fixef(x))
    }, nsim = 150, seed = 5)$t
    fit <- hnm_fit(Reaction ~ Days + (Days | Subject), sleep, REML = reml)
    boot <- bootstrap(fit, nsim = 600, seed = 6)
    p <- vapply(1:6, function(k) suppressWarnings(stats::ks.test(boot$t[, k], reference[, k])$p.value), 1)
    expect_true(all(p > 1e-3), label = paste(format(p, digits = 3), collapse = " "))
  }
  # lme4's rows, and limits within Monte Carlo error of lme4's (its 2.5% and 97.5% quantiles
  # of 100 replicates have sampling SDs of a few tenths of the bootstrap SD).
  lme4_ci <- suppressWarnings(suppressMessages(
    confint(m, method = "boot", nsim = 100, seed = 7)))
  ci <- confint(fit, method = "boot", nsim = 600, seed = 8)
  expect_equal(dimnames(ci), dimnames(lme4_ci))
  se <- apply(attr(ci, "boot")$t, 2L, stats::sd, na.rm = TRUE)
  expect_true(all(abs(ci - lme4_ci) < 1.5 * se),
              label = paste(format(abs(ci - lme4_ci) / se, digits = 2), collapse = " "))
  new_names <- suppressWarnings(suppressMessages(
    confint(m, method = "boot", nsim = 2, seed = 7, oldNames = FALSE)))
  expect_equal(rownames(confint(fit, method = "boot", nsim = 2, seed = 8, oldNames = FALSE)),
               rownames(new_names))
  two_terms <- Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)
  expect_equal(rownames(confint(hnm_fit(two_terms, sleep), method = "boot", nsim = 2, seed = 1,
                                oldNames = FALSE)),
               rownames(suppressWarnings(suppressMessages(confint(
                 lme4::lmer(two_terms, sleep), method = "boot", nsim = 2, seed = 1,
                 oldNames = FALSE)))))
})

test_that("percentile, basic and normal intervals follow their definitions", {
  skip_if_not_installed("lme4")
  fit <- hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  level <- 0.9
  perc <- confint(fit, method = "boot", nsim = 300, seed = 9, level = level)
  basic <- confint(fit, method = "boot", nsim = 300, seed = 9, level = level, boot.type = "basic")
  norm <- confint(fit, method = "boot", nsim = 300, seed = 9, level = level, boot.type = "norm")
  boot <- attr(perc, "boot")
  expect_identical(boot$t, attr(basic, "boot")$t)
  q <- t(apply(boot$t, 2L, stats::quantile, probs = c(0.05, 0.95), names = FALSE))
  expect_equal(unclass(perc)[, ], q, ignore_attr = TRUE)
  bounds <- function(x, rows) {
    x[rows == ".sig02"] <- pmin(pmax(x[rows == ".sig02"], -1), 1)
    x
  }
  sd_rows <- c(1, 3, 4)
  expected_basic <- 2 * boot$t0 - q[, 2:1]
  expected_basic[sd_rows, ] <- pmax(expected_basic[sd_rows, ], 0)
  expected_basic[2, ] <- pmin(pmax(expected_basic[2, ], -1), 1)
  expect_equal(unclass(basic)[, ], expected_basic, ignore_attr = TRUE)
  z <- stats::qnorm(0.95)
  expected_norm <- 2 * boot$t0 - colMeans(boot$t) + outer(apply(boot$t, 2L, stats::sd), c(-z, z))
  expected_norm[sd_rows, ] <- pmax(expected_norm[sd_rows, ], 0)
  expected_norm[2, ] <- pmin(pmax(expected_norm[2, ], -1), 1)
  expect_equal(unclass(norm)[, ], expected_norm, ignore_attr = TRUE)
  expect_equal(colnames(perc), c("5 %", "95 %"))
  expect_equal(rownames(confint(fit, parm = "Days", method = "boot", nsim = 20, seed = 1)), "Days")
  expect_output(print(perc), "Parametric bootstrap: 300 refits \\(0 failed\\)")
  expect_output(print(boot), "300 replicates \\(0 failed\\)")
})

test_that("a seed reproduces the bootstrap, restores the caller's random numbers, and threads do not matter", {
  skip_if_not_installed("lme4")
  fit <- hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  a <- bootstrap(fit, nsim = 30, seed = 42)
  set.seed(1)
  before <- stats::runif(1)
  set.seed(1)
  b <- bootstrap(fit, nsim = 30, seed = 42)
  expect_identical(stats::runif(1), before)
  expect_identical(a$t, b$t)
  expect_identical(a$seed, structure(42, kind = as.list(RNGkind())))
  expect_false(isTRUE(all.equal(a$t, bootstrap(fit, nsim = 30, seed = 43)$t)))
  set.seed(42)
  expect_identical(bootstrap(fit, nsim = 30)$t, a$t)
  old <- options(hnm.threads = 1)
  one_thread <- bootstrap(fit, nsim = 30, seed = 42)
  options(old)
  expect_identical(one_thread$t, a$t)
  expect_identical(bootstrap(fit, nsim = 30, seed = 42, parallel = "no")$t, a$t)
})

test_that("bad arguments are refused with hnm errors", {
  skip_if_not_installed("lme4")
  fit <- hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  expect_error(bootstrap(fit, nsim = 1), "`nsim` must be a whole number", class = "hnm_error")
  expect_error(bootstrap(fit, nsim = 1e8), "at most 10,000,000", class = "hnm_error")
  expect_error(bootstrap(fit, nsim = 10, type = "x"), "unused argument", class = "hnm_error")
  expect_error(bootstrap(fit, nsim = 10, quiet = NA), "`quiet`", class = "hnm_error")
  expect_error(bootstrap(lm(Reaction ~ Days, lme4::sleepstudy)), "not an object of class lm",
               class = "hnm_error")
  expect_error(confint(fit, method = "boot", nsim = 10, boot.type = "bca"), "`boot.type`",
               class = "hnm_error")
  expect_error(confint(fit, method = "boot", nsim = 10, level = 2), "`level`", class = "hnm_error")
  expect_error(confint(fit, method = "boot", nsim = 10, parm = "nope"), "`parm`",
               class = "hnm_error")
})

test_that("the bootstrap LRT's null distribution matches refits of full data simulated from m0", {
  skip_if_not_installed("lme4")
  sleep <- lme4::sleepstudy
  m0 <- hnm_fit(Reaction ~ Days + (1 | Subject), sleep)
  m1 <- hnm_fit(Reaction ~ Days + (Days | Subject), sleep)
  test <- bootstrap_lrt(m0, m1, nsim = 300, seed = 10)
  expect_s3_class(test, "hnm_bootstrap_lrt")
  # The observed statistic is lme4's.
  l0 <- lme4::lmer(Reaction ~ Days + (1 | Subject), sleep, REML = FALSE)
  l1 <- lme4::lmer(Reaction ~ Days + (Days | Subject), sleep, REML = FALSE)
  expect_equal(test$statistic, 2 * (as.numeric(logLik(l1)) - as.numeric(logLik(l0))),
               tolerance = 1e-6)
  expect_equal(test$df, 2L)
  expect_equal(test$p.value, (1 + sum(test$replicates >= test$statistic)) / 301)
  rows <- simulate(m0, nsim = 200, seed = 11)
  full <- vapply(rows, function(sim) {
    d <- transform(sleep, Reaction = sim)
    deviance(hnm_fit(Reaction ~ Days + (1 | Subject), d)) -
      deviance(hnm_fit(Reaction ~ Days + (Days | Subject), d))
  }, numeric(1))
  p <- suppressWarnings(stats::ks.test(test$replicates, full)$p.value)
  expect_gt(p, 1e-3)
  # A REML pair is compared by ML, as anova() does.
  r0 <- hnm_fit(Reaction ~ Days + (1 | Subject), sleep, REML = TRUE)
  r1 <- hnm_fit(Reaction ~ Days + (Days | Subject), sleep, REML = TRUE)
  expect_equal(bootstrap_lrt(r0, r1, nsim = 2, seed = 1)$statistic, test$statistic,
               tolerance = 1e-6)
  expect_output(print(test), "300 replicates \\(0 failed\\)")
})

test_that("bootstrap_lrt takes the one-way model as m0 (issue 22: it was refused)", {
  skip_if_not_installed("lme4")
  sleep <- lme4::sleepstudy
  m0 <- hnm_fit(Reaction ~ 1 | Subject, sleep)
  m1 <- hnm_fit(Reaction ~ Days + (Days | Subject), sleep)
  test <- bootstrap_lrt(m0, m1, nsim = 50, seed = 3, quiet = TRUE)
  l0 <- lme4::lmer(Reaction ~ 1 + (1 | Subject), sleep, REML = FALSE)
  l1 <- lme4::lmer(Reaction ~ Days + (Days | Subject), sleep, REML = FALSE)
  expect_equal(test$statistic, 2 * (as.numeric(logLik(l1)) - as.numeric(logLik(l0))),
               tolerance = 1e-6)
  expect_equal(test$df, 3L)
  expect_equal(test$failed, 0)
  # The replicates are LRTs under m0, far below the observed 178 (Days matters).
  expect_lt(max(test$replicates), test$statistic)
})

test_that("bootstrap_lrt refuses models that are not nested fits of the same rows", {
  skip_if_not_installed("lme4")
  sleep <- lme4::sleepstudy
  m0 <- hnm_fit(Reaction ~ Days + (1 | Subject), sleep)
  m1 <- hnm_fit(Reaction ~ Days + (Days | Subject), sleep)
  expect_error(bootstrap_lrt(m1, m0, nsim = 10), "give the smaller model first", class = "hnm_error")
  other <- hnm_fit(Reaction ~ Days + (Days | Subject), sleep[-1, ])
  expect_error(bootstrap_lrt(m0, other, nsim = 10), "nested", class = "hnm_error")
  expect_error(bootstrap_lrt(m0, hnm_fit(Reaction ~ Days + (Days | Subject), transform(sleep, Reaction = Reaction + 1)), nsim = 10),
               "same rows", class = "hnm_error")
  expect_error(bootstrap_lrt(lm(Reaction ~ Days, sleep), m1, nsim = 10), "class lm",
               class = "hnm_error")
})

test_that("bootstrap() of a one-way fit matches refits of full simulated data sets", {
  set.seed(12)
  d <- data.frame(g = factor(rep(1:15, c(2, 8, 4, 6, 3, 9, 5, 7, 2, 8, 4, 6, 3, 9, 5))))
  d$y <- 10 + rnorm(15, sd = 2)[d$g] + rnorm(nrow(d))
  fit <- hnm_fit(y ~ 1 | g, d)
  boot <- bootstrap(fit, nsim = 400, seed = 13)
  expect_equal(colnames(boot$t), c(".sig01", ".sigma", "(Intercept)"))
  expect_equal(unname(boot$t0), c(sqrt(tau2_of(fit)), sqrt(sigma2_of(fit)), mu_of(fit)))
  full <- t(vapply(simulate(fit, nsim = 300, seed = 14), function(sim) {
    f <- hnm_fit(y ~ 1 | g, transform(d, y = sim))
    c(sqrt(tau2_of(f)), sqrt(sigma2_of(f)), mu_of(f))
  }, numeric(3)))
  p <- vapply(1:3, function(k) suppressWarnings(stats::ks.test(boot$t[, k], full[, k])$p.value), 1)
  expect_true(all(p > 1e-3), label = paste(format(p, digits = 3), collapse = " "))
  expect_identical(bootstrap(fit, nsim = 20, seed = 1)$t, bootstrap(fit, nsim = 20, seed = 1)$t)
  expect_error(bootstrap(hnm_fit(y ~ 1 | g, d, method = "ANOVA"), nsim = 10), "ML or REML",
               class = "hnm_error")
})

test_that("broom's tidy(conf.method = 'boot') of a general fit gives confint()'s bootstrap limits", {
  skip_if_not_installed("broom")
  skip_if_not_installed("lme4")
  fit <- hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  ci <- confint(fit, method = "boot", nsim = 50, seed = 3, type = "basic")
  expect_identical(unclass(ci)[, ],
                   unclass(confint(fit, method = "boot", nsim = 50, seed = 3, boot.type = "basic"))[, ])
  tidied <- broom::tidy(fit, effects = "fixed", conf.int = TRUE, conf.method = "boot", nsim = 50,
                        seed = 3, type = "basic")
  expect_equal(tidied$conf.low, unname(ci[c("(Intercept)", "Days"), 1]))
  expect_error(confint(fit, method = "boot", nsim = 10, type = "norm", boot.type = "basic"),
               "give one of them", class = "hnm_error")
})
