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
  expect_identical(c(nobs(fit), unname(ngrps(fit))), c(12974L, 684L))
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
