# tau2_test(): the tau^2 = 0 tests of a one-way fit (LRT with the mixture p, exact F test);
# anova(fit): lmerTest's fixed-effect table; anova(fit, lm): lme4-style comparison with the
# intercept-only lm.
# References: lme4's anova(lmer(REML = FALSE), lm) (statistic and its naive chi2(1) p, of
# which the Self & Liang mixture p is half), stats::anova(lm(y ~ g)) for the F test.

test_that("tau2_test(fit): mixture LRT p is half lme4's naive p, F test is the one-way ANOVA's", {
  skip_if_not_installed("lme4")
  for (case in Filter(function(x) x$name %in% c("Dyestuff", "Rail", "simulated, small tau"),
                      lme4_cases())) {
    fit <- hnm_fit(one_way_formula(case), case$data)
    null <- lm(stats::as.formula(paste(case$y, "~ 1")), case$data)
    ref <- suppressMessages(lme4::lmer(one_way_formula(case, TRUE), case$data, REML = FALSE))
    ref_table <- suppressMessages(anova(ref, null))
    table <- tau2_test(fit)
    expect_s3_class(table, "anova")
    expect_equal(table["LRT", "Statistic"], ref_table$Chisq[2], tolerance = 1e-6, label = case$name)
    expect_equal(table["LRT", "Pr(>Stat)"], 0.5 * ref_table[["Pr(>Chisq)"]][2], tolerance = 1e-5,
                 label = case$name)
    aov <- stats::anova(lm(stats::as.formula(paste(case$y, "~ factor(", case$g, ")")), case$data))
    expect_equal(table["F", "Statistic"], aov[["F value"]][1], tolerance = 1e-10, label = case$name)
    expect_equal(table["F", "Pr(>Stat)"], aov[["Pr(>F)"]][1], tolerance = 1e-8, label = case$name)
    expect_equal(unname(unlist(table["F", c("Df", "Df.res")])), aov$Df, label = case$name)
  }
})

test_that("anova(fit) of a one-way fit is lmerTest's fixed-effect table: no rows", {
  skip_if_not_installed("lmerTest")
  for (case in Filter(function(x) x$name %in% c("Dyestuff", "Rail"), lme4_cases())) {
    for (reml in c(FALSE, TRUE)) {
      fit <- hnm_fit(one_way_formula(case), case$data, REML = reml)
      ref <- anova(lmertest_twin(fit, one_way_formula(case, TRUE), case$data, REML = reml))
      table <- anova(fit)
      label <- sprintf("%s, REML %s", case$name, reml)
      expect_s3_class(table, "anova")
      expect_identical(class(table), class(ref), label = label)
      expect_identical(names(table), names(ref), label = label)
      expect_identical(nrow(table), nrow(ref), label = label)
      expect_identical(nrow(table), 0L, label = label)
      expect_identical(attr(table, "heading"), attr(ref, "heading"), label = label)
    }
  }
})

test_that("Dyestuff: lme4's naive p 0.0201 becomes the mixture's 0.0101", {
  skip_if_not_installed("lme4")
  table <- tau2_test(hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff))
  # lme4: anova(lmer(Yield ~ 1 + (1 | Batch), Dyestuff, REML = FALSE), lm(Yield ~ 1, Dyestuff))
  # prints Chisq 5.40283 and Pr(>Chisq) 0.020104 (lme4 1.1-31).
  expect_equal(table["LRT", "Statistic"], 5.40283, tolerance = 1e-6)
  expect_equal(round(table["LRT", "Pr(>Stat)"], 4), 0.0101)
  expect_match(attr(table, "heading"), "mixture", all = FALSE)
})

test_that("anova(fit, lm) matches lme4's table, with the mixture p-value", {
  skip_if_not_installed("lme4")
  for (case in Filter(function(x) x$name %in% c("Dyestuff", "Dyestuff2", "Hsb82"), lme4_cases())) {
    fit <- hnm_fit(one_way_formula(case), case$data)
    null <- lm(stats::as.formula(paste(case$y, "~ 1")), case$data)
    ref <- suppressMessages(lme4::lmer(one_way_formula(case, TRUE), case$data, REML = FALSE))
    ref_table <- suppressMessages(anova(ref, null))
    table <- anova(fit, null)
    expect_identical(rownames(table), c("null", "fit"))
    columns <- c("npar", "AIC", "BIC", "logLik", "deviance", "Df")
    expect_equal(unname(as.matrix(table[, columns])), unname(as.matrix(ref_table[, columns])),
                 tolerance = 1e-6, label = case$name)
    # lme4's Chisq at the boundary is rounding noise (< 1e-6); ours is exactly 0 there.
    expect_equal(table$Chisq[2], ref_table$Chisq[2], tolerance = 1e-6, label = case$name)
    naive <- ref_table[["Pr(>Chisq)"]][2]
    expected <- if (isSingular(fit)) 1 else 0.5 * naive
    expect_equal(table[["Pr(>Chisq)"]][2], expected, tolerance = 1e-5, label = case$name)
    expect_identical(names(table), names(ref_table))
  }
})

test_that("REML fits are compared on their ML refit, as lme4 does", {
  d <- lme4::Dyestuff
  null <- lm(Yield ~ 1, d)
  reml <- hnm_fit(Yield ~ 1 | Batch, d, REML = TRUE)
  ml <- hnm_fit(Yield ~ 1 | Batch, d)
  expect_message(table <- anova(reml, null), "refitting model\\(s\\) with ML")
  expect_equal(unname(unlist(table["reml", ])), unname(unlist(anova(ml, null)["ml", ])))
  expect_equal(unlist(tau2_test(reml)["LRT", ]), unlist(tau2_test(ml)["LRT", ]))
})

test_that("Dyestuff2: tau^2 = 0 gives statistic 0 and p-value 1", {
  table <- tau2_test(hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff2))
  expect_identical(table["LRT", "Statistic"], 0)
  expect_identical(table["LRT", "Pr(>Stat)"], 1)
  # stats::anova(lm(Yield ~ Batch, Dyestuff2)) prints F = 0.5578 on 5 and 24 df, p 0.7311.
  expect_equal(table["F", "Statistic"], 0.5578, tolerance = 1e-4)
  expect_equal(table["F", "Pr(>Stat)"], 0.7311, tolerance = 1e-4)
})

test_that("anova refuses other data and other models with classed errors", {
  d <- lme4::Dyestuff
  fit <- hnm_fit(Yield ~ 1 | Batch, d)
  expect_error(anova(fit, lm(Yield ~ 1, lme4::Dyestuff2)), "different data", class = "hnm_error")
  expect_error(anova(fit, lm(Yield ~ 1, d[-1, ])), "different data", class = "hnm_error")
  expect_error(anova(fit, lm(Yield ~ Batch, d)), "not the fixed effects", class = "hnm_error")
  # The same response with another covariate or grouping: lme4 refuses it as other data.
  set.seed(1)
  s <- expand.grid(r = 1:3, a = factor(1:12), b = factor(1:8))
  s$x <- rnorm(288)
  s$y <- s$x + rnorm(12)[s$a] + rnorm(8)[s$b] + rnorm(288)
  s2 <- s
  s2$x <- rev(s$x)
  expect_error(anova(hnm_fit(y ~ x + (1 | a) + (1 | b), s), hnm_fit(y ~ x + (x | a) + (1 | b), s2)),
               "different data", class = "hnm_error_argument")
  skip_if_not_installed("lme4")
  expect_error(anova(lme4::lmer(y ~ x + (1 | a) + (1 | b), s, REML = FALSE),
                     lme4::lmer(y ~ x + (x | a) + (1 | b), s2, REML = FALSE)), "same data")
  # A column added to the data between the fits is the same data, to lme4 as here.
  small <- hnm_fit(y ~ x + (1 | a) + (1 | b), s)
  small_ref <- lme4::lmer(y ~ x + (1 | a) + (1 | b), s, REML = FALSE)
  s$x2 <- s$x^2
  ours <- anova(small, hnm_fit(y ~ x + x2 + (1 | a) + (1 | b), s))
  theirs <- anova(small_ref, lme4::lmer(y ~ x + x2 + (1 | a) + (1 | b), s, REML = FALSE))
  expect_equal(ours$Chisq[2], theirs$Chisq[2], tolerance = 1e-4)
  expect_error(anova(fit, "a"), "class character", class = "hnm_error")
  expect_output(print(anova(fit, lm(Yield ~ 1, d))), "Models:")
  # tau2_test()'s tests of tau^2 = 0 are the one-way model's: refused for other models.
  expect_error(tau2_test(hnm_fit(Reaction ~ Days + (1 | Subject), lme4::sleepstudy)),
               "one-way model", class = "hnm_error_argument")
})

test_that("drop1() gives lme4's single term deletions of an ML fit, and refits REML by ML", {
  skip_if_not_installed("lme4")
  d <- lme4::sleepstudy
  formula <- Reaction ~ Days + I(Days^2) + (Days | Subject)
  fit <- hnm_fit(formula, d)
  ours <- drop1(fit, test = "Chisq")
  # lme4 converged tightly (bobyqa, rhoend = 1e-12), for every reduced model drop1() refits.
  tight <- lme4::lmer(formula, d, REML = FALSE, control = lme4::lmerControl(optimizer = "bobyqa",
                      optCtrl = list(rhoend = 1e-12, maxfun = 1e5)))
  reference <- suppressWarnings(drop1(tight, test = "Chisq"))
  expect_identical(rownames(ours), rownames(reference))
  expect_identical(ours$npar, reference$npar)
  # AIC and LRT are criteria (second order in theta): equal to rounding at both optima, and
  # hnm's never above lme4's.
  expect_true(all(ours$AIC <= reference$AIC + 1e-7))
  expect_true(all(abs(ours$AIC - reference$AIC) < 1e-6))
  expect_true(all(abs(ours$LRT - reference$LRT) < 1e-6, na.rm = TRUE))
  expect_equal(ours[["Pr(Chi)"]], reference[["Pr(Chi)"]], tolerance = 1e-6)
  expect_identical(rownames(drop1(fit, scope = "I(Days^2)")), c("<none>", "I(Days^2)"))
  expect_error(drop1(fit, scope = "nope"), class = "hnm_error_argument")
  reml <- hnm_fit(formula, d, REML = TRUE)
  expect_message(refitted <- drop1(reml, test = "Chisq"), "refitting model")
  expect_equal(refitted$LRT, ours$LRT, tolerance = 1e-9)
  # extractAIC(), which step() reads: lme4's, of the fit by ML (a REML fit refitted).
  reference_reml <- lme4::lmer(formula, d, control = lme4::lmerControl(optimizer = "bobyqa",
                               optCtrl = list(rhoend = 1e-12, maxfun = 1e5)))
  for (k in c(2, log(nrow(d)))) {
    expect_equal(extractAIC(fit, k = k), extractAIC(tight, k = k), tolerance = 1e-9)
    expect_equal(extractAIC(reml, k = k), extractAIC(reference_reml, k = k), tolerance = 1e-9)
  }
  expect_error(extractAIC(fit, scale = 1), class = "hnm_error_argument")
})
