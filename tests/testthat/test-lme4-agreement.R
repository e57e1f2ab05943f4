# hnm_fit() against lme4::lmer(REML = FALSE): one loop over datasets x formula spellings.
# The criteria (logLik, AIC, BIC) are lme4's fit's, to 1e-6: second order in θ. The estimates
# are those of lme4's fit at hnm's θ (lmer_twin, helper-lmm.R), to rounding (1e-8): lme4's
# stopping rule (ftol_abs = 1e-8 on the deviance) allows θ 1e-5 to 2e-4 from the optimum on
# these data (τ² by up to 9e-5), and where it stops (1e-9..1e-7 today) is not a property of hnm.

test_that("ML fits agree with lme4::lmer(REML = FALSE)", {
  skip_if_not_installed("lme4")
  for (case in lme4_cases()) {
    for (lme4_style in c(FALSE, TRUE)) {
      label <- sprintf("%s (%s)", case$name, if (lme4_style) "1 + (1 | g)" else "1 | g")
      fit <- hnm_fit(one_way_formula(case, lme4_style), case$data)
      ref <- suppressMessages(lme4::lmer(one_way_formula(case, TRUE), case$data, REML = FALSE))
      twin <- lmer_twin(fit, one_way_formula(case, TRUE), case$data)
      twin_vc <- as.data.frame(lme4::VarCorr(twin))
      expect_equal(unname(fixef(fit)), unname(lme4::fixef(twin)), tolerance = 1e-8, label = label)
      expect_equal(sigma2_of(fit), twin_vc$vcov[2], tolerance = 1e-8, label = label)
      expect_equal(tau2_of(fit), twin_vc$vcov[1], tolerance = 1e-8, label = label)
      expect_equal(c(logLik(fit)), c(logLik(ref)), tolerance = 1e-6, label = label)
      expect_lte(deviance(fit), deviance(ref) + 1e-7, label = label)
      expect_equal(sqrt(c(vcov(fit))), sqrt(c(as.matrix(vcov(twin)))), tolerance = 1e-8,
                   label = label)
      expect_equal(AIC(fit), AIC(ref), tolerance = 1e-6, label = label)
      expect_equal(BIC(fit), BIC(ref), tolerance = 1e-6, label = label)
      expect_identical(nobs(fit), nobs(ref), label = label)
      expect_equal(unname(ngrps(fit)), unname(lme4::ngrps(ref)), label = label)
      expect_identical(isSingular(fit), lme4::isSingular(ref), label = label)
      expect_equal(as.data.frame(VarCorr(fit))[, c("vcov", "sdcor")],
                   twin_vc[, c("vcov", "sdcor")], tolerance = 1e-8, label = label)
      expect_equal(unname(residuals(fit)), unname(residuals(twin)), tolerance = 1e-8, label = label)
      # VarCorr's own shape: lme4 users index it by the grouping factor and read "sc".
      twin_raw <- lme4::VarCorr(twin)
      expect_identical(names(VarCorr(fit)), names(twin_raw), label = label)
      expect_equal(unclass(VarCorr(fit))[[1]], unclass(twin_raw)[[1]], tolerance = 1e-8,
                   label = label)
      expect_equal(attr(VarCorr(fit), "sc"), attr(twin_raw, "sc"), tolerance = 1e-8, label = label)
    }
  }
})

test_that("published Dyestuff values are reproduced", {
  # lme4's ML deviance of Yield ~ 1 + (1 | Batch) on Dyestuff (Bates, lme4 book ch. 1).
  fit <- hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff)
  expect_equal(deviance(fit), 327.327059881135, tolerance = 1e-12)
  expect_equal(unname(fixef(fit)), 1527.5, tolerance = 1e-12)
  # Bates' book: sigma 49.51, tau 37.26 (printed to 4 digits).
  expect_equal(sigma(fit), 49.51, tolerance = 1e-4)
  expect_equal(sqrt(tau2_of(fit)), 37.26, tolerance = 1e-4)
})

test_that("Dyestuff2 reaches tau^2 = 0 exactly, with the closed form of an iid sample", {
  d <- lme4::Dyestuff2
  fit <- hnm_fit(Yield ~ 1 | Batch, d)
  expect_identical(tau2_of(fit), 0)
  expect_true(isSingular(fit))
  expect_identical(unname(fit$theta), 0)
  # tau^2 = 0: mu = mean(y), sigma^2 = mean((y - ybar)^2) in closed form.
  expect_equal(unname(fixef(fit)), mean(d$Yield), tolerance = 1e-14)
  expect_equal(sigma2_of(fit), mean((d$Yield - mean(d$Yield))^2), tolerance = 1e-14)
  expect_output(print(summary(fit)), "boundary \\(singular\\) fit")
})

test_that("NA rows are dropped as lme4 drops them, and nobs reports it", {
  skip_if_not_installed("lme4")
  d <- simulate_unbalanced(15, 3)
  d$y[c(2, 9)] <- NA
  d$g[c(4, 30)] <- NA
  fit <- hnm_fit(y ~ 1 | g, d)
  ref <- lme4::lmer(y ~ 1 + (1 | g), d, REML = FALSE)
  expect_identical(nobs(fit), nobs(ref))
  expect_identical(nobs(fit), nrow(d) - 4L)
  expect_equal(c(logLik(fit)), c(logLik(ref)), tolerance = 1e-6)
})

test_that("data taken from the formula's environment when `data` is missing", {
  y <- lme4::Dyestuff$Yield
  batch <- lme4::Dyestuff$Batch
  expect_equal(deviance(hnm_fit(y ~ 1 | batch)), 327.327059881135, tolerance = 1e-12)
})

test_that("REML fits (REML = TRUE or method = \"REML\") agree with lme4::lmer(REML = TRUE)", {
  skip_if_not_installed("lme4")
  for (case in lme4_cases()) {
    ref <- suppressMessages(lme4::lmer(one_way_formula(case, TRUE), case$data, REML = TRUE))
    for (spelling in c("REML = TRUE", "method = \"REML\"")) {
      label <- sprintf("%s (%s)", case$name, spelling)
      fit <- if (spelling == "REML = TRUE") {
        hnm_fit(one_way_formula(case), case$data, REML = TRUE)
      } else {
        hnm_fit(one_way_formula(case), case$data, method = "REML")
      }
      twin <- lmer_twin(fit, one_way_formula(case, TRUE), case$data, REML = TRUE)
      twin_vc <- as.data.frame(lme4::VarCorr(twin))
      expect_equal(c(mu_of(fit), sigma2_of(fit), tau2_of(fit)), c(unname(lme4::fixef(twin)), twin_vc$vcov[2:1]),
                   tolerance = 1e-8, label = label)
      # -2 logLik(fit) is the REML criterion, as lme4's -2 logLik(ref) = REMLcrit(ref).
      expect_equal(-2 * c(logLik(fit)), lme4::REMLcrit(ref), tolerance = 1e-6, label = label)
      expect_equal(c(logLik(fit)), c(logLik(ref)), tolerance = 1e-6, label = label)
      expect_lte(-2 * c(logLik(fit)), lme4::REMLcrit(ref) + 1e-7, label = label)
      expect_equal(sqrt(c(vcov(fit))), sqrt(c(as.matrix(vcov(twin)))), tolerance = 1e-8,
                   label = label)
    }
  }
  out <- capture.output(print(hnm_fit(y ~ 1 | g, wheat, method = "REML")))
  expect_match(out[1], "^Linear mixed model fit by REML")
  expect_true(any(grepl("REML criterion at convergence: 177.9876", out, fixed = TRUE)))
})
