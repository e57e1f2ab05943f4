# Every number the lecture (lecture-mle-oneway.md, Hoff, Duke STA 610) prints, with hnm.
# Numbers the lecture got from optim's stopping point or finite differences are compared at
# the ~1e-5 by which optim misses the exact optimum; the exact optimum (shared data README:
# profiled score solved to machine precision) is asserted to the digits given there.

test_that("wheat: method of moments, as the lecture computes it", {
  y <- wheat$y; g <- wheat$g
  aovfit <- anova(lm(y ~ as.factor(g)))
  MSG <- aovfit[1, 3]; MSE <- aovfit[2, 3]
  expect_equal((MSG - MSE) / 5, 0.3840768, tolerance = 5e-7)
  expect_equal(MSE, 1.787206, tolerance = 5e-7)
  expect_equal(mean(y), 16.3064)
})

test_that("wheat: the ML fit, information, standard errors and intervals", {
  fit <- hnm_fit(y ~ 1 | g, wheat)
  est <- c(mu_of(fit), sigma2_of(fit), tau2_of(fit))
  # Exact optimum (README of the shared data) and the lecture's optim values.
  expect_equal(est, c(16.3064, 1.787206, 0.30992504), tolerance = 5e-8)
  expect_equal(est, c(16.3063995, 1.7872063, 0.3099255), tolerance = 2e-6)
  expect_equal(c(logLik(fit)), -88.58510486, tolerance = 1e-10)
  expect_equal(-c(logLik(fit)), 88.5851, tolerance = 1e-6)
  se <- sqrt(diag(vcov(fit, full = TRUE)))
  expect_equal(unname(se), c(0.2583343, 0.3996314, 0.3089721), tolerance = 5e-7)
  expect_equal(unname(se), c(0.2583344, 0.3996312, 0.3089705), tolerance = 1e-5)
  # The lecture's fit.ml$hessian (finite differences; off-diagonal mu terms ~1e-5 there, 0 here).
  information <- solve(vcov(fit, full = TRUE))
  expect_equal(unname(diag(information)), c(14.98426, 6.710598, 11.22654), tolerance = 1e-5)
  expect_equal(information[2, 3], 2.245294, tolerance = 1e-5)
  # "Comparison to what is known": sqrt(s2/(mn) + t2/m) is se(mu) for balanced data.
  expect_equal(unname(se[1]), sqrt(sigma2_of(fit) / 50 + tau2_of(fit) / 10), tolerance = 1e-12)
  expect_equal(sqrt(c(vcov(fit))), 0.2583344, tolerance = 1e-6)
  # The lecture's +-2 SE intervals.
  expect_equal(unname(est - 2 * se), c(15.7897307, 0.9879440, -0.3080154), tolerance = 1e-5)
  expect_equal(unname(est + 2 * se), c(16.8230684, 2.5864686, 0.9278664), tolerance = 1e-5)
})

test_that("wheat: profile intervals equal lme4's printed confint()", {
  ci <- confint(hnm_fit(y ~ 1 | g, wheat), method = "profile")
  expect_identical(ci[".sig01", 1], 0)
  # lme4 interpolates its profile with splines: agreement to ~1e-5 relative.
  expect_equal(unname(ci[, 2]), c(1.228364, 1.693331, 16.865478), tolerance = 1e-5)
  expect_equal(unname(ci[2:3, 1]), c(1.089911, 15.747322), tolerance = 1e-5)
  # The lecture's CIs[1:2, ]^2.
  var_ci <- confint(hnm_fit(y ~ 1 | g, wheat), method = "profile", scale = "var")
  expect_equal(unname(var_ci[1:2, ]), matrix(c(0, 1.187907, 1.508877, 2.867369), 2), tolerance = 1e-5)
})

test_that("NELS: the ML fit, standard errors and lme4's profile intervals", {
  fit <- hnm_fit(mscore ~ 1 | school, nels)
  est <- c(mu_of(fit), sigma2_of(fit), tau2_of(fit))
  expect_equal(est, c(50.93910222, 73.70844468, 23.63410446), tolerance = 1e-9)
  expect_equal(est, c(50.93914, 73.70881, 23.63382), tolerance = 2e-5)
  expect_equal(c(logLik(fit)), -46956.63325363, tolerance = 1e-11)
  se <- sqrt(diag(vcov(fit, full = TRUE)))
  expect_equal(unname(se), c(0.2026422, 0.9411003, 1.5430536), tolerance = 1e-4)
  expect_equal(unname(est - 2 * se), c(50.53386, 71.82661, 20.54772), tolerance = 5e-5)
  expect_equal(unname(est + 2 * se), c(51.34443, 75.59101, 26.71993), tolerance = 5e-5)
  ci <- confint(fit, method = "profile")
  lme4_ci <- rbind(c(4.562275, 5.185387), c(8.479051, 8.693913), c(50.541015, 51.336528))
  expect_equal(unname(ci), lme4_ci, tolerance = 1e-5)
  expect_identical(nobs(fit), 12974L)
  expect_equal(unname(ngrps(fit)), 684)
})
