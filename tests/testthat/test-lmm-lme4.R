# The general model against lme4 at its exact optimum: one loop over datasets x models x
# criteria (fixest's style), plus sleepstudy and the lecture's NELS model.

test_that("sleepstudy fits match lme4 (correlated and uncorrelated slopes, ML and REML)", {
  skip_if_not_installed("lme4")
  for (formula in list(Reaction ~ Days + (Days | Subject), Reaction ~ Days + (Days || Subject))) {
    for (reml in c(FALSE, TRUE)) {
      expect_matches_lme4(formula, lme4::sleepstudy, reml,
                          sprintf("sleepstudy %s REML=%s", deparse1(formula), reml))
    }
  }
})

test_that("the lecture's NELS model matches lme4 and the numbers the lecture prints", {
  skip_if_not_installed("lme4")
  formula <- mscore ~ flp + enroll + ses + (ses | school)
  for (reml in c(FALSE, TRUE)) expect_matches_lme4(formula, nels, reml, sprintf("NELS REML=%s", reml))
  # summary(lmer(..., REML = FALSE)) as printed in lecture-mle-oneway.md. The lecture's lme4
  # stopped about 1e-7 short of the optimum, so its printed digits agree to ~1e-5 relative.
  fit <- hnm_fit(formula, nels)
  expect_equal(c(AIC(fit), BIC(fit), c(logLik(fit)), deviance(fit)),
               c(92397.7, 92457.5, -46190.9, 92381.7), tolerance = 1e-6)
  expect_identical(df.residual(fit), 12966L)
  expect_equal(unname(fixef(fit)), c(55.429341, -2.411521, 0.007095, 4.116881), tolerance = 2e-5)
  expect_equal(unname(sqrt(diag(vcov(fit)))), c(0.402910, 0.185312, 0.082024, 0.125381),
               tolerance = 2e-5)
  vc <- as.data.frame(VarCorr(fit))
  expect_equal(vc$vcov[c(1, 2, 4)], c(9.004, 1.600, 67.260), tolerance = 1e-3)
  expect_equal(vc$sdcor[c(1, 2, 3, 4)], c(3.001, 1.265, 0.05, 8.201), tolerance = 5e-3)
  expect_equal(quantile(residuals(fit, scaled = TRUE)),
               c(-3.9797, -0.6399, 0.0180, 0.6681, 4.5053), tolerance = 1e-3, ignore_attr = TRUE)
  expect_identical(c(nobs(fit), unname(ngrps(fit))), c(12974, 684))
  expect_output(print(summary(fit)), "school   \\(Intercept\\)  9.004   3.001")
  expect_output(print(summary(fit)), "enroll -0.300 -0.193")
})

test_that("a grid of simulated designs matches lme4 (q = 1..3, p = 1..6, singular truths)", {
  skip_if_not_installed("lme4")
  corr_minus_one <- diag(3)
  corr_minus_one[1, 2] <- corr_minus_one[2, 1] <- -1
  truths <- list(
    regular = list(sd = c(2, 0.7, 0.5), corr = diag(3) + 0.3 * (1 - diag(3))),
    `zero slope variance` = list(sd = c(2, 0, 0.5), corr = diag(3)),
    `correlation +1` = list(sd = c(2, 0.7, 0.5), corr = matrix(1, 3, 3)),
    `correlation -1` = list(sd = c(2, 0.7, 0), corr = corr_minus_one)
  )
  formulas <- list(
    y ~ x + (x | g),                  # q = 2, p = 2
    y ~ x + z + w + f + (1 | g),      # q = 1, p = 6: a factor and a group-level covariate
    y ~ x * f + (x | g),              # q = 2, p = 6: an interaction
    y ~ x + z + (x + z | g),          # q = 3
    y ~ x + w + (x || g),             # uncorrelated
    y ~ 1 + (1 | g) + (0 + x | g)     # p = 1, two terms of one factor
  )
  seed <- 0
  outcomes <- character()
  for (truth in names(truths)) for (balanced in c(TRUE, FALSE)) {
    seed <- seed + 1
    data <- simulate_lmm(seed, balanced = balanced, sd = truths[[truth]]$sd,
                         corr = truths[[truth]]$corr)
    for (formula in formulas) for (reml in c(FALSE, TRUE)) {
      outcomes <- c(outcomes, expect_matches_lme4(formula, data, reml, sprintf(
        "%s, %s, %s, REML=%s", truth, if (balanced) "balanced" else "unbalanced",
        deparse1(formula), reml)))
    }
  }
  # Most fits reach lme4's optimum; where they differ, hnm's is the lower one (checked above).
  expect_gt(mean(outcomes == "equal to lme4"), 0.8)
})

test_that("of two singular minima with opposite correlations, hnm finds lme4's lower one", {
  skip_if_not_installed("lme4")
  # Found by the dense-reference property test: 5 groups, no fixed intercept; the ML deviance
  # has singular local minima at 114.0958 (correlation -1) and 112.6732 (+1), and a search
  # started at the moment estimate or at Λ = I ends in the higher one.
  d <- data.frame(
    y = c(4.280411, 4.265603, 1.567328, 4.516556, 3.086334, -0.2193883, -2.736166, -0.8712463,
          1.295052, -0.8505838, -1.446995, 3.1685, 2.550501, 0.5934297, 0.9584828, 1.918486,
          -2.428714, 4.652549, -1.499808, 0.3729671, 1.326628, 1.733129, -3.546342, -1.225812,
          4.886126, 5.598114, 8.651192, 0.7007622),
    x = c(-6.351173, -6.690848, -7.96069, -8.069393, -6.058228, -7.835431, -8.271475, -7.610265,
          -6.88165, -8.828069, -8.790688, -6.310896, -7.243218, -6.656822, -7.424979, -7.173442,
          -8.318284, -5.062985, -8.636844, -8.553364, -8.387537, -7.261533, -8.44957, -8.512277,
          -5.162366, -6.448752, -5.263173, -8.022696),
    w = c(0.549255, 0.1071997, 0.8014787, 0.1071997, 0.8014787, 0.549255, 0.8014787, 0.4437734,
          0.3888786, 0.4437734, 0.1071997, 0.3888786, 0.1071997, 0.8014787, 0.549255, 0.1071997,
          0.8014787, 0.549255, 0.4437734, 0.1071997, 0.549255, 0.3888786, 0.8014787, 0.4437734,
          0.549255, 0.3888786, 0.1071997, 0.8014787),
    g = factor(c(2, 1, 5, 1, 5, 2, 5, 4, 3, 4, 1, 3, 1, 5, 2, 1, 5, 2, 4, 1, 2, 3, 5, 4, 2, 3, 1, 5))
  )
  formula <- y ~ 0 + x + w + (x | g)
  reference <- lmer_exact(formula, d, REML = FALSE)
  fit <- hnm_fit(formula, d)
  expect_equal(deviance(fit), deviance(reference), tolerance = 1e-9)
  expect_lt(deviance(fit), 113)
  # hnm's θ is lme4's optimum: the Newton step of lme4's deviance from it is nil. (Not θ against
  # lme4's: the deviance's curvature is 0.1 in one direction, where a stop 1e-8 above the
  # minimum is 4e-4 away; the step's own error is numDeriv's gradient's, 1e-10 / 0.1.)
  step <- lme4_newton_step(formula, d, FALSE, getME(fit, "theta"))
  expect_lt(max(abs(step)), 1e-7 * max(abs(getME(fit, "theta"))))
})
