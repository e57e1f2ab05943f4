# Methods: shapes and values an lme4 user expects, checked against lme4 and closed forms.

test_that("summary()'s title names the t tests' degrees of freedom as lmerTest's does", {
  skip_if_not_installed("lmerTest")
  d <- lme4::sleepstudy
  for (reml in c(TRUE, FALSE)) {
    fit <- hnm_fit(Reaction ~ Days + (1 | Subject), d, REML = reml)
    ref <- lmerTest::lmer(Reaction ~ Days + (1 | Subject), d, REML = reml)
    for (ddf in c("Satterthwaite", if (reml) "Kenward-Roger", "lme4")) {
      # lme4's title for ML ends with a space, which lmerTest keeps before its period.
      expect_identical(summary(fit, ddf = ddf)$methTitle,
                       trimws(sub(" +\\.", ".", summary(ref, ddf = ddf)$methTitle)),
                       label = sprintf("REML = %s, ddf = %s", reml, ddf))
    }
  }
})

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
  # lmerTest's fixed-effect table (Satterthwaite df and p), as summary(lmerTest::lmer(...))
  # prints it for this model: 1527.5, 17.7, 6.0, 86.33, 1.63e-10.
  expect_true(any(grepl("\\(Intercept\\) +1527.5 +17.7 +6.0 +86.33 +1.63e-10 \\*\\*\\*", out)))
  expect_false(any(grepl("singular", out)))
  expect_output(print(fit), "Fixed Effects:")
  skip_if_not_installed("lmerTest")
  twin <- lmertest_twin(fit, Yield ~ 1 + (1 | Batch), lme4::Dyestuff)
  reference <- capture.output(print(summary(twin)))
  expect_identical(grep("^\\(Intercept\\)", out, value = TRUE),
                   grep("^\\(Intercept\\)", reference, value = TRUE))
  expect_identical(colnames(coef(summary(fit))), colnames(coef(summary(twin))))
  # Satterthwaite's df and p at hnm's theta: lmerTest's numerical derivatives agree to ~1e-8.
  expect_equal(unname(coef(summary(fit))[, c("Estimate", "Std. Error", "t value")]),
               unname(coef(summary(twin))[, c("Estimate", "Std. Error", "t value")]),
               tolerance = 1e-8)
  expect_equal(unname(coef(summary(fit))[, "df"]), unname(coef(summary(twin))[, "df"]),
               tolerance = 1e-6)
  expect_equal(unname(coef(summary(fit))[, "Pr(>|t|)"]), unname(coef(summary(twin))[, "Pr(>|t|)"]),
               tolerance = 1e-6)
})

test_that("vcov(full = TRUE) is the inverse of the lecture's information matrix", {
  skip_if_not_installed("numDeriv")
  fit <- hnm_fit(y ~ 1 | g, wheat)
  p <- c(mu_of(fit), sigma2_of(fit), tau2_of(fit))
  information <- numDeriv::hessian(function(q) lecture_mll_oneway(q, wheat$y, wheat$g), p)
  expect_equal(unname(vcov(fit, full = TRUE)), solve(information), tolerance = 1e-6)
})

test_that("Wald intervals: the lecture's est +- z se on the variance scale", {
  skip_if_not_installed("numDeriv")
  fit <- hnm_fit(y ~ 1 | g, wheat)
  p <- c(mu_of(fit), sigma2_of(fit), tau2_of(fit))
  se <- sqrt(diag(solve(numDeriv::hessian(function(q) lecture_mll_oneway(q, wheat$y, wheat$g), p))))
  for (level in c(0.95, 0.8)) {
    z <- qnorm(1 - (1 - level) / 2)
    ci <- confint(fit, method = "Wald", scale = "var", level = level)
    expect_equal(unname(ci["sigma2", ]), p[2] + c(-1, 1) * z * se[2], tolerance = 1e-6)
    expect_equal(unname(ci["tau2", ]), pmax(p[3] + c(-1, 1) * z * se[3], 0), tolerance = 1e-6)
    expect_equal(unname(ci["(Intercept)", ]), p[1] + c(-1, 1) * z * se[1], tolerance = 1e-6)
  }
  ci <- confint(fit, method = "Wald")
  expect_identical(rownames(ci), c(".sig01", ".sigma", "(Intercept)"))
  expect_identical(colnames(ci), c("2.5 %", "97.5 %"))
  # Delta method on the SD scale: se(sigma) = se(sigma2) / (2 sigma).
  expect_equal(unname(ci[".sigma", ]), sqrt(p[2]) + c(-1, 1) * qnorm(0.975) * se[2] / (2 * sqrt(p[2])),
               tolerance = 1e-6)
})

test_that("the intercept's Wald interval equals lme4's", {
  skip_if_not_installed("lme4")
  fit <- hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff)
  ref <- lmer_twin(fit, Yield ~ 1 + (1 | Batch), lme4::Dyestuff)  # at hnm's θ: helper-lmm.R
  expect_equal(confint(fit, method = "Wald")["(Intercept)", ], stats::confint(ref, method = "Wald")["(Intercept)", ],
               tolerance = 1e-8)
})

test_that("boundary fits give finite intervals starting at 0", {
  fit <- hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff2)
  ci <- confint(fit, method = "Wald")
  expect_identical(unname(ci[".sig01", 1]), 0)
  expect_true(all(is.finite(ci)))
})

test_that("fitted values are mu plus the conditional modes lme4 reports", {
  skip_if_not_installed("lme4")
  d <- simulate_unbalanced(20, 9)
  fit <- hnm_fit(y ~ 1 | g, d)
  ref <- lmer_twin(fit, y ~ 1 + (1 | g), d)  # at hnm's θ: helper-lmm.R
  expect_equal(unname(fitted(fit)), unname(fitted(ref)), tolerance = 1e-8)
  expect_identical(formula(fit), y ~ 1 | g)
  expect_identical(df.residual(fit), nrow(d) - 3L)
})

test_that("confint() defaults to profile intervals, as lme4's does", {
  skip_if_not_installed("lme4")
  fit <- hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff)
  ref <- lme4::lmer(Yield ~ 1 + (1 | Batch), lme4::Dyestuff, REML = FALSE)
  # lme4's default confint() is its spline-interpolated profile: 1e-3 relative.
  expect_equal(unname(confint(fit)), unname(suppressMessages(confint(ref))), tolerance = 1e-3)
  anova_fit <- hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff, method = "ANOVA")
  expect_identical(confint(anova_fit), confint(anova_fit, method = "Wald"))
})

test_that("lme4's ngrps() generic reaches the hnm method when lme4 is loaded", {
  skip_if_not_installed("lme4")
  fit <- hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff)
  expect_identical(lme4::ngrps(fit), c(Batch = 6))
})

test_that("argument errors name what the caller wrote", {
  fit <- hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff)
  # One positional argument more than hnm_fit()'s thirteen (lmer's subset ... verbose among them).
  expect_error(hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff, FALSE, "ML", NULL, NULL, NULL, na.omit,
                       NULL, NULL, NULL, hnm_control(), FALSE, 42),
               "unused argument\\(s\\): 42", class = "hnm_error")
  expect_error(simulate(fit, nsim = 0), "`nsim` must be a whole number of at least 1",
               class = "hnm_error")
  expect_error(confint(fit, level = NA_real_), "`level` must be a single number",
               class = "hnm_error")
  expect_error(profile(fit, steps = 2.5), "`steps` must be a whole number", class = "hnm_error")
  expect_error(confint(fit, method = "boot", nsim = 1), "`nsim`", class = "hnm_error")
})

test_that("methods::show() prints a fit, its summary and VarCorr as print() does", {
  fit <- hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  for (object in list(fit, summary(fit), VarCorr(fit), ranef(fit))) {
    expect_identical(capture.output(methods::show(object)), capture.output(print(object)))
  }
})
