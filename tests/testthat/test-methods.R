# Methods: shapes and values an lme4 user expects, checked against lme4 and closed forms.

test_that("print and summary read like lme4's", {
  fit <- hnm_fit(Yield ~ 1 + (1 | Batch), lme4::Dyestuff)
  out <- capture.output(print(summary(fit)))
  expect_match(out[1], "^Linear mixed model fit by maximum likelihood")
  expect_true(any(grepl("^Formula: Yield ~ 1 \\+ \\(1 \\| Batch\\)$", out)))
  expect_true(any(grepl("AIC +BIC +logLik +deviance +df.resid", out)))
  expect_true(any(grepl("333.3 +337.5 +-163.7 +327.3 +27", out)))
  # lme4's scaled residual quantiles for this model, printed by summary(lmer(...)).
  expect_true(any(grepl("-1.4315 -0.7972  0.1480  0.7721  1.8037", out, fixed = TRUE)))
  expect_true(any(grepl("Batch +\\(Intercept\\) 1388 +37.26", out)))
  expect_true(any(grepl("Residual +2451 +49.51", out)))
  expect_true(any(grepl("Number of obs: 30, groups:  Batch, 6", out, fixed = TRUE)))
  expect_true(any(grepl("\\(Intercept\\) +1527.50 +17.69 +86.33", out)))
  expect_false(any(grepl("singular", out)))
  expect_output(print(fit), "Fixed Effects:")
})

test_that("vcov(full = TRUE) is the inverse of the lecture's information matrix", {
  skip_if_not_installed("numDeriv")
  fit <- hnm_fit(y ~ 1 | g, wheat)
  p <- c(fit$mu, fit$sigma2, fit$tau2)
  information <- numDeriv::hessian(function(q) lecture_mll_oneway(q, wheat$y, wheat$g), p)
  expect_equal(unname(vcov(fit, full = TRUE)), solve(information), tolerance = 1e-6)
})

test_that("Wald intervals: the lecture's est +- z se on the variance scale", {
  skip_if_not_installed("numDeriv")
  fit <- hnm_fit(y ~ 1 | g, wheat)
  p <- c(fit$mu, fit$sigma2, fit$tau2)
  se <- sqrt(diag(solve(numDeriv::hessian(function(q) lecture_mll_oneway(q, wheat$y, wheat$g), p))))
  for (level in c(0.95, 0.8)) {
    z <- qnorm(1 - (1 - level) / 2)
    ci <- confint(fit, scale = "var", level = level)
    expect_equal(unname(ci["sigma2", ]), p[2] + c(-1, 1) * z * se[2], tolerance = 1e-6)
    expect_equal(unname(ci["tau2", ]), pmax(p[3] + c(-1, 1) * z * se[3], 0), tolerance = 1e-6)
    expect_equal(unname(ci["(Intercept)", ]), p[1] + c(-1, 1) * z * se[1], tolerance = 1e-6)
  }
  ci <- confint(fit)
  expect_identical(rownames(ci), c(".sig01", ".sigma", "(Intercept)"))
  expect_identical(colnames(ci), c("2.5 %", "97.5 %"))
  # Delta method on the SD scale: se(sigma) = se(sigma2) / (2 sigma).
  expect_equal(unname(ci[".sigma", ]), sqrt(p[2]) + c(-1, 1) * qnorm(0.975) * se[2] / (2 * sqrt(p[2])),
               tolerance = 1e-6)
})

test_that("the intercept's Wald interval equals lme4's", {
  skip_if_not_installed("lme4")
  fit <- hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff)
  ref <- lme4::lmer(Yield ~ 1 + (1 | Batch), lme4::Dyestuff, REML = FALSE)
  expect_equal(confint(fit)["(Intercept)", ], stats::confint(ref, method = "Wald")["(Intercept)", ],
               tolerance = 1e-6)
})

test_that("boundary fits give finite intervals starting at 0", {
  fit <- hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff2)
  ci <- confint(fit)
  expect_identical(unname(ci[".sig01", 1]), 0)
  expect_true(all(is.finite(ci)))
})

test_that("fitted values are mu plus the conditional modes lme4 reports", {
  skip_if_not_installed("lme4")
  d <- simulate_unbalanced(20, 9)
  fit <- hnm_fit(y ~ 1 | g, d)
  ref <- lme4::lmer(y ~ 1 + (1 | g), d, REML = FALSE)
  expect_equal(unname(fitted(fit)), unname(fitted(ref)), tolerance = 1e-6)
  expect_identical(formula(fit), y ~ 1 | g)
  expect_identical(df.residual(fit), nrow(d) - 3L)
})
