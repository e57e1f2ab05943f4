# Parametric bootstrap in sufficient-statistic space. References: lme4::lmer fits of data
# simulated row by row (for the refits), the exact profile intervals (for the percentile
# intervals on Hsb82), and stats::simulate's seed conventions.

test_that("refits from (group means, pooled SS) equal lme4 fits of the full data", {
  skip_if_not_installed("lme4")
  # The general bootstrap draws its replicates' statistics in Rust from seeds, so the refit
  # of given simulated statistics is reached as a fit of their table (issue 22: the same
  # statistic-space engine): (group sizes, group means, the pooled SS as the first group's
  # with 0 elsewhere, which is all the one-way likelihood reads). Its distribution against
  # refits of full simulated data is test-lmm-boot.R's ("bootstrap() of a one-way fit").
  d <- simulate_unbalanced(15, 5)
  g <- factor(d$g)
  data_sets <- lapply(1:3, function(i) {
    set.seed(100 + i)
    data.frame(y = 10 + rnorm(nlevels(g), 0, 1.5)[g] + rnorm(nrow(d), 0, 2), g = g)
  })
  means <- t(vapply(data_sets, function(x) tapply(x$y, x$g, mean), numeric(nlevels(g))))
  ssw <- vapply(data_sets, function(x) sum((x$y - ave(x$y, x$g))^2), numeric(1))
  for (reml in c(FALSE, TRUE)) {
    for (i in seq_along(data_sets)) {
      table <- data.frame(group = levels(g), n = as.vector(table(g)), mean = means[i, ],
                          ss = c(ssw[i], rep(0, nlevels(g) - 1L)))
      refit <- hnm_fit(y ~ 1 | g, table, REML = reml, stats = TRUE)
      refits <- list(mu = mu_of(refit), sigma2 = sigma2_of(refit), tau2 = tau2_of(refit))
      label <- sprintf("data set %d, REML = %s", i, reml)
      call <- bquote(lme4::lmer(y ~ 1 + (1 | g), data, REML = .(reml)))
      env <- list2env(list(data = data_sets[[i]]))
      ref <- eval(call, env)
      # The refit's optimum is lme4's (the criterion, second order in θ); its estimates are
      # those of lme4's fit at the refit's θ (lmer_at_theta, helper-lmm.R), to rounding, not
      # where lme4's optimiser stops (up to 1e-4 from the optimum in τ² by its ftol_abs).
      twin <- lmer_at_theta(call, sqrt(refits$tau2 / refits$sigma2), env)
      expect_lte(lme4_criterion(twin), lme4_criterion(ref) + 1e-7, label = label)
      vc <- as.data.frame(lme4::VarCorr(twin))$vcov
      expect_equal(refits$mu, unname(lme4::fixef(twin)), tolerance = 1e-8, label = label)
      expect_equal(refits$sigma2, vc[2], tolerance = 1e-8, label = label)
      expect_equal(refits$tau2, vc[1], tolerance = 1e-8, label = label)
    }
  }
})

test_that("Hsb82: bootstrap intervals are within a few percent of the profile intervals", {
  skip_if_not_installed("mlmRev")
  hsb <- Filter(function(x) x$name == "Hsb82", lme4_cases())[[1]]$data
  fit <- hnm_fit(mAch ~ 1 | school, hsb)
  boot <- confint(fit, method = "boot", nsim = 1000, seed = 42)
  profile <- confint(fit, method = "profile")
  expect_equal(attr(boot, "failed"), 0L)
  expect_identical(dim(attr(boot, "boot")$t), c(1000L, 3L))
  expect_output(print(boot), "Parametric bootstrap: 1000 refits \\(0 failed\\)")
  expect_identical(class(attr(boot, "boot")), "hnm_bootstrap")
  expect_identical(dimnames(boot), dimnames(profile))
  # Monte Carlo error of a 2.5% quantile from 1000 draws is about 2% of the SD's width.
  expect_equal(unname(boot), unname(profile), tolerance = 0.03, ignore_attr = TRUE)
  boot_var <- confint(fit, method = "boot", nsim = 1000, seed = 42, scale = "var")
  # Same draws; quantile() interpolates between order statistics on each scale.
  expect_equal(unname(boot_var[1:2, ]), unname(boot[1:2, ]^2), tolerance = 1e-6, ignore_attr = TRUE)
})

test_that("the seed is handled as stats::simulate handles it", {
  fit <- hnm_fit(y ~ 1 | g, wheat)
  set.seed(1)
  before <- .Random.seed
  a <- confint(fit, method = "boot", nsim = 50, seed = 7)
  expect_identical(.Random.seed, before)
  expect_identical(unclass(attr(a, "boot")$seed)[1], 7)
  old <- options(hnm.threads = 1L)
  b <- confint(fit, method = "boot", nsim = 50, seed = 7)
  options(old)
  expect_identical(a, b)  # same seed, one thread instead of two
  set.seed(3)
  c1 <- confint(fit, method = "boot", nsim = 50)
  expect_false(identical(.Random.seed, before))
  set.seed(3)
  expect_identical(confint(fit, method = "boot", nsim = 50), c1)
})

test_that("Dyestuff2 (tau^2 = 0): sensible bootstrap intervals, no errors", {
  skip_if_not_installed("lme4")
  fit <- hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff2)
  for (type in c("perc", "basic")) {
    ci <- confint(fit, method = "boot", nsim = 500, seed = 1, type = type)
    expect_identical(ci[".sig01", 1], 0, label = type)
    expect_true(all(ci[, 1] <= c(0, sigma(fit), fixef(fit))) &&
                  all(ci[, 2] >= c(0, sigma(fit), fixef(fit))), label = type)
  }
  expect_error(confint(fit, method = "boot", nsim = 1), "`nsim`", class = "hnm_error")
})

test_that("Dyestuff2 (tau^2 = 0): every method and scale gives intervals around the estimates", {
  skip_if_not_installed("lme4")
  for (reml in c(FALSE, TRUE)) {
    fit <- hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff2, REML = reml)
    for (method in c("Wald", "profile", "boot")) {
      for (scale in c("sd", "var")) {
        label <- sprintf("REML = %s, %s, %s", reml, method, scale)
        ci <- confint(fit, method = method, scale = scale, nsim = 200, seed = 2)
        estimate <- if (scale == "sd") c(0, sigma(fit), mu_of(fit)) else c(0, sigma2_of(fit), mu_of(fit))
        expect_false(anyNA(ci), label = label)
        expect_identical(unname(ci[1, 1]), 0, label = label)
        expect_true(all(ci[, 1] <= estimate & estimate <= ci[, 2]), label = label)
      }
    }
    expect_identical(unname(suppressMessages(confint(fit, method = "exact"))[, 1]), c(0, 0))
  }
})
