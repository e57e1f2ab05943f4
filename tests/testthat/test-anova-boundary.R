# anova() of nested fits that add a random effect: the chi-bar-square references of Self &
# Liang (1987) and Stram & Lee (1994), on lme4's statistics; and the small-sample behaviour of
# the mixture, by simulation.

chibar_p <- function(statistic, s) {
  0.5 * stats::pchisq(statistic, s - 1, lower.tail = FALSE) +
    0.5 * stats::pchisq(statistic, s, lower.tail = FALSE)
}

test_that("adding a random effect uses the 0.5 chi2(s - 1) + 0.5 chi2(s) reference", {
  skip_if_not_installed("lme4")
  d <- lme4::sleepstudy
  ml <- function(formula) suppressMessages(lme4::lmer(formula, d, REML = FALSE))
  intercept <- Reaction ~ Days + (1 | Subject)
  steps <- list(
    list(small = intercept, large = Reaction ~ Days + (Days | Subject), s = 2),
    list(small = intercept, large = Reaction ~ Days + (Days || Subject), s = 1),
    list(small = Reaction ~ Days + (Days || Subject), large = Reaction ~ Days + (Days | Subject),
         s = NA)
  )
  for (step in steps) {
    label <- paste(deparse1(step$small), "->", deparse1(step$large))
    table <- anova(hnm_fit(step$small, d), hnm_fit(step$large, d))
    reference <- anova(ml(step$small), ml(step$large))
    expect_equal(table$Chisq[2], reference$Chisq[2], tolerance = 1e-5, label = label)
    expect_identical(table$Df[2], reference$Df[2], label = label)
    expected <- if (is.na(step$s)) reference[["Pr(>Chisq)"]][2] else chibar_p(reference$Chisq[2], step$s)
    # On the log scale: expect_equal's tolerance is absolute below 1e-5, and these p are tiny.
    expect_equal(log(table[["Pr(>Chisq)"]][2]), log(expected), tolerance = 1e-5, label = label)
    if (!is.na(step$s)) {
      expect_match(attr(table, "heading"), sprintf("0.5 chi2\\(%d\\) \\+ 0.5 chi2\\(%d\\)",
                                                   step$s - 1, step$s), all = FALSE)
    }
  }
  # The model without random effects as lm(), and a step in the fixed effects (chi2).
  table <- anova(hnm_fit(intercept, d), lm(Reaction ~ Days, d))
  lrt <- 2 * (c(logLik(ml(intercept))) - c(logLik(lm(Reaction ~ Days, d))))
  expect_equal(table$Chisq[2], lrt, tolerance = 1e-6)
  expect_equal(log(table[["Pr(>Chisq)"]][2]), log(chibar_p(lrt, 1)), tolerance = 1e-6)
  table <- anova(hnm_fit(Reaction ~ 1 + (1 | Subject), d), hnm_fit(intercept, d))
  reference <- anova(ml(Reaction ~ 1 + (1 | Subject)), ml(intercept))
  expect_equal(log(table[["Pr(>Chisq)"]][2]), log(reference[["Pr(>Chisq)"]][2]), tolerance = 1e-5)
  expect_error(anova(hnm_fit(intercept, d), lm(Reaction ~ 1, d)), "not the fixed effects",
               class = "hnm_error")
})

# The balanced one-way ML likelihood-ratio statistic in closed form, for R simulated data sets
# of m groups of n under tau^2 = 0 (rows of `means`, and `ssw`): lambda = sigma^2 + n tau^2 is
# estimated by SSB/m and sigma^2 by SSW/(m(n - 1)) when SSB/m exceeds it, else both are at
# the null model.
closed_form_lrt <- function(means, ssw, n) {
  m <- ncol(means)
  ssb <- n * rowSums((means - rowMeans(means))^2)
  sigma2 <- ssw / (m * (n - 1))
  lambda <- ssb / m
  ifelse(lambda > sigma2,
         m * n * log((ssw + ssb) / (m * n)) - m * (n - 1) * log(sigma2) - m * log(lambda), 0)
}

test_that("the mixture LRT of tau^2 = 0 is conservative at m = 10, n = 5 (simulation)", {
  set.seed(20261201)
  m <- 10
  n <- 5
  g <- rep(seq_len(m), each = n)
  # hnm's statistic is the closed form's, data set by data set.
  samples <- replicate(300, rnorm(m * n), simplify = FALSE)
  hnm_lrt <- vapply(samples, function(y) tau2_test(hnm_fit(y ~ 1 | g, data.frame(y = y, g = g)))["LRT", "Statistic"], 0)
  means <- t(vapply(samples, function(y) tapply(y, g, mean), numeric(m)))
  ssw <- vapply(samples, function(y) sum((y - ave(y, g))^2), 0)
  expect_equal(hnm_lrt, closed_form_lrt(means, ssw, n), tolerance = 1e-6)
  # 2e5 data sets: the 0.5 chi2(0) + 0.5 chi2(1) reference rejects 2.9% (standard error 0.04%)
  # at level 0.05, not 5%: conservative, as the docs say.
  replicates <- 2e5
  means <- matrix(stats::rnorm(replicates * m, sd = sqrt(1 / n)), replicates)
  lrt <- closed_form_lrt(means, stats::rchisq(replicates, m * (n - 1)), n)
  rate <- mean(chibar_p(lrt, 1) < 0.05)
  expect_gt(rate, 0.0275)
  expect_lt(rate, 0.0310)
})

# Issue 25: where the added variance is estimated as exactly 0 the larger model sits at the
# smaller one's optimum, so the likelihood ratio is exactly 1: the statistic is 0 and the
# 0.5 chi2(0) + 0.5 chi2(1) p-value is 1, not 0.5 from a statistic of rounding noise
# (a positive 4.5e-13 puts it on the chi2(1) half).
test_that("an added variance estimated as 0 gives LRT 0 and p = 1 exactly", {
  skip_if_not_installed("lme4")
  boundary <- 0L
  for (seed in 1:40) {
    set.seed(seed)
    m <- sample(6:20, 1)
    d <- data.frame(g = rep(seq_len(m), sample(3:9, m, replace = TRUE)))
    d$x <- rnorm(nrow(d), sd = sample(c(0.1, 1, 30), 1))
    d$y <- 5 + d$x + rnorm(m)[d$g] + rnorm(nrow(d))  # no slope variance
    small <- hnm_fit(y ~ x + (1 | g), d)
    large <- hnm_fit(y ~ x + (1 | g) + (0 + x | g), d)
    if (large$theta[[2L]] != 0) next
    boundary <- boundary + 1L
    label <- paste("seed", seed)
    # lme4's own deviance function agrees that nothing is gained (to its rounding).
    expect_equal(lme4_devfun_at(y ~ x + (1 | g) + (0 + x | g), d, FALSE, large$theta),
                 lme4_devfun_at(y ~ x + (1 | g), d, FALSE, small$theta), tolerance = 1e-12,
                 label = label)
    table <- anova(small, large)
    expect_identical(table$Chisq[2L], 0, label = label)
    expect_identical(table[["Pr(>Chisq)"]][2L], 1, label = label)
    if (boundary <= 2L) {
      boot <- bootstrap_lrt(small, large, nsim = 20, seed = seed, quiet = TRUE)
      expect_identical(boot$statistic, 0, label = label)
      expect_identical(boot$p.value, 1, label = label)
    }
  }
  expect_gte(boundary, 8L)
  # A random intercept estimated as 0, against the lm() without it.
  boundary <- 0L
  for (seed in 1:20) {
    set.seed(seed)
    d <- data.frame(g = rep(1:10, each = 4), x = rnorm(40, sd = 10))
    d$y <- 3 + d$x + rnorm(40)
    fit <- hnm_fit(y ~ x + (1 | g), d)
    if (fit$theta[[1L]] != 0) next
    boundary <- boundary + 1L
    table <- anova(fit, lm(y ~ x, d))
    expect_identical(table[["Pr(>Chisq)"]][2L], 1, label = paste("seed", seed))
  }
  expect_gte(boundary, 4L)
})

test_that("a positive variance: the mixture p-value of the balanced closed form", {
  set.seed(25)
  m <- 12
  n <- 6
  g <- rep(seq_len(m), each = n)
  for (tau in c(0.4, 1, 3)) {
    y <- 10 + tau * rnorm(m)[g] + rnorm(m * n)
    means <- matrix(tapply(y, g, mean), 1L)
    lrt <- closed_form_lrt(means, sum((y - ave(y, g))^2), n)
    expect_gt(lrt, 0)
    table <- tau2_test(hnm_fit(y ~ 1 | g, data.frame(y = y, g = g)))
    expect_equal(table["LRT", "Statistic"], lrt, tolerance = 1e-9)
    expect_equal(table["LRT", "Pr(>Stat)"], 0.5 * stats::pchisq(lrt, 1, lower.tail = FALSE),
                 tolerance = 1e-9)
  }
})
