# ranef(condVar = TRUE) and coef against lme4's, one loop over datasets x ML/REML.
# BLUPs depend on the variance estimates, so lme4's are those of its fit at hnm's θ (lmer_twin,
# helper-lmm.R), compared to rounding (1e-8): lme4's own stopping rule (ftol_abs = 1e-8 on the
# deviance) allows θ 1e-5 to 2e-4 from the optimum on these data (τ² by up to 9e-5), though it
# stops nearer. Effects are compared in units of sigma so that exact zeros (singular fits)
# compare absolutely. That hnm's θ is lme4's optimum is test-lme4-agreement.R's.

test_that("BLUPs, conditional SDs and per-group coefficients agree with lme4 to 1e-8", {
  skip_if_not_installed("lme4")
  for (case in lme4_cases()) {
    for (reml in c(FALSE, TRUE)) {
      label <- sprintf("%s (REML = %s)", case$name, reml)
      fit <- hnm_fit(one_way_formula(case), case$data, REML = reml)
      ref <- lmer_twin(fit, one_way_formula(case, TRUE), case$data, reml)
      scale <- sigma(ref)
      re <- ranef(fit)
      ref_re <- lme4::ranef(ref, condVar = TRUE)
      expect_identical(names(re), names(ref_re), label = label)
      expect_identical(rownames(re[[1]]), rownames(ref_re[[1]]), label = label)
      expect_identical(colnames(re[[1]]), colnames(ref_re[[1]]), label = label)
      expect_equal(c(attr(re[[1]], "postVar")) / scale^2, c(attr(ref_re[[1]], "postVar")) / scale^2,
                   tolerance = 1e-8, label = label)
      df <- as.data.frame(re)
      ref_df <- as.data.frame(ref_re)
      expect_identical(names(df), names(ref_df), label = label)
      expect_identical(df$grpvar, ref_df$grpvar, label = label)
      expect_identical(df$term, ref_df$term, label = label)
      expect_identical(as.character(df$grp), as.character(ref_df$grp), label = label)
      expect_equal(df$condval / scale, ref_df$condval / scale, tolerance = 1e-8, label = label)
      expect_equal(df$condsd / scale, ref_df$condsd / scale, tolerance = 1e-8, label = label)
      if (!isSingular(fit)) {
        # lme4 orders the levels of grp by the effect (for its dotplot); ties make this moot
        # at the boundary, where every effect is 0.
        expect_identical(levels(df$grp), levels(ref_df$grp), label = label)
      }
      ref_coef <- stats::coef(ref)
      expect_identical(names(coef(fit)), names(ref_coef), label = label)
      expect_equal(coef(fit)[[1]][["(Intercept)"]], ref_coef[[1]][["(Intercept)"]],
                   tolerance = 1e-8, label = label)
      expect_identical(rownames(coef(fit)[[1]]), rownames(ref_coef[[1]]), label = label)
    }
  }
})

test_that("ranef(condVar = FALSE) has no conditional variances; print names the factor", {
  fit <- hnm_fit(y ~ 1 | g, wheat)
  re <- ranef(fit, condVar = FALSE)
  expect_null(attr(re$g, "postVar"))
  expect_false("condsd" %in% names(as.data.frame(re)))
  expect_output(print(ranef(fit)), "with conditional variances for \"g\"")
  expect_output(print(re), "\\$g")
})

test_that("ranef(postVar =), lme4's older name of condVar, is taken with lme4's warning", {
  skip_if_not_installed("lme4")
  fit <- hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  ref <- lme4::lmer(Reaction ~ Days + (Days | Subject), lme4::sleepstudy, REML = FALSE)
  for (post_var in c(TRUE, FALSE)) {
    expect_warning(ours <- ranef(fit, postVar = post_var), "'postVar' is deprecated")
    expect_warning(theirs <- lme4::ranef(ref, postVar = post_var), "'postVar' is deprecated")
    expect_identical(ours, ranef(fit, condVar = post_var))
    expect_identical(is.null(attr(ours$Subject, "postVar")), is.null(attr(theirs$Subject, "postVar")))
  }
  expect_error(ranef(fit, postvar = TRUE), "unused argument", class = "hnm_error")
  for (cond_var in list(NA, "yes", c(TRUE, FALSE))) {
    expect_error(ranef(fit, condVar = cond_var), "`condVar` must be TRUE or FALSE",
                 class = "hnm_error")
  }
})
