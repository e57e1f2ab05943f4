# Satterthwaite's df of the fixed-effect tests, against lmerTest (its numerical derivatives of
# lme4's deviance and vcov) at hnm's θ (lmertest_twin, helper-lmm.R), so that the df are
# compared at one point and not at wherever lme4's optimiser stops in a flat direction (the
# df move with θ: by 1e-5 for θ off by 1e-5). Tolerances: estimates, SEs, t, F and sums of
# squares are closed forms at that point (1e-8, rounding; they agree to 1e-12); the df and
# p-values carry the error of lmerTest's Richardson derivatives, 1e-8 (measured on these
# cases), hence 1e-6. That θ is lme4's optimum is test-lmm-lme4.R's.

sleep_blocks <- transform(lme4::sleepstudy, block = factor(Days %/% 4))

satterthwaite_cases <- list(
  list(Reaction ~ Days + (Days | Subject), lme4::sleepstudy),
  list(Reaction ~ Days + (Days || Subject), lme4::sleepstudy),
  list(Reaction ~ Days + block + (Days | Subject), sleep_blocks),
  list(mscore ~ flp + enroll + ses + (ses | school), nels)
)

test_that("summary()'s df and p-values equal lmerTest's", {
  skip_if_not_installed("lmerTest")
  for (case in satterthwaite_cases) {
    for (reml in c(FALSE, TRUE)) {
      label <- sprintf("%s REML=%s", deparse1(case[[1]]), reml)
      fit <- hnm_fit(case[[1]], case[[2]], REML = reml)
      reference <- coef(summary(lmertest_twin(fit, case[[1]], case[[2]], reml)))
      table <- coef(summary(fit))
      expect_identical(colnames(table), colnames(reference), label = label)
      expect_equal(table[, "df"], reference[, "df"], tolerance = 1e-6, label = label)
      # On the log scale: expect_equal's tolerance is absolute below 1e-6.
      expect_equal(log(table[, "Pr(>|t|)"]), log(reference[, "Pr(>|t|)"]), tolerance = 1e-6,
                   label = label)
      expect_equal(table[, c("Estimate", "Std. Error", "t value")],
                   reference[, c("Estimate", "Std. Error", "t value")], tolerance = 1e-8,
                   label = label)
    }
  }
})

test_that("anova() of one fit gives lmerTest's F tests", {
  skip_if_not_installed("lmerTest")
  for (case in satterthwaite_cases[3:4]) {
    for (reml in c(FALSE, TRUE)) {
      label <- sprintf("%s REML=%s", deparse1(case[[1]]), reml)
      fit <- hnm_fit(case[[1]], case[[2]], REML = reml)
      table <- anova(fit)
      reference <- anova(lmertest_twin(fit, case[[1]], case[[2]], reml))
      expect_identical(rownames(table), rownames(reference), label = label)
      expect_identical(table$NumDF, as.numeric(reference$NumDF), label = label)
      for (column in c("F value", "Sum Sq")) {
        expect_equal(table[[column]], reference[[column]], tolerance = 1e-8,
                     label = paste(label, column))
      }
      expect_equal(table$DenDF, reference$DenDF, tolerance = 1e-6, label = paste(label, "DenDF"))
      expect_equal(log(table[["Pr(>F)"]]), log(reference[["Pr(>F)"]]), tolerance = 1e-6,
                   label = label)
    }
  }
})

test_that("the df survive saveRDS/readRDS and the t-test's df is the simulated one", {
  skip_if_not_installed("lmerTest")
  fit <- hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  path <- tempfile(fileext = ".rds")
  saveRDS(fit, path)
  expect_equal(coef(summary(readRDS(path))), coef(summary(fit)), tolerance = 1e-12)
  # A balanced random-intercept design: the t statistic of a group-level covariate has
  # exactly m - 2 df (the analysis of the group means), which Satterthwaite's df approach.
  set.seed(5)
  m <- 40
  d <- data.frame(g = factor(rep(seq_len(m), each = 6)), w = rep(rnorm(m), each = 6))
  d$y <- 1 + 0.5 * d$w + rep(rnorm(m), each = 6) + rnorm(nrow(d))
  table <- coef(summary(hnm_fit(y ~ w + (1 | g), d, REML = TRUE)))
  expect_equal(table["w", "df"], m - 2, tolerance = 1e-6)
})

test_that("contest() gives lmerTest's contest at the same theta", {
  skip_if_not_installed("lmerTest")
  d <- lme4::sleepstudy
  formula <- Reaction ~ Days + I(Days^2) + (Days | Subject)
  for (reml in c(FALSE, TRUE)) {
    fit <- hnm_fit(formula, d, REML = reml)
    twin <- lmertest_twin(fit, formula, d, REML = reml)
    L <- rbind(c(0, 1, 0), c(0, 0, 1))
    for (args in list(list(L = L), list(L = L, rhs = c(5, 0.5)), list(L = c(0, 1, 0)),
                      list(L = L, joint = FALSE), list(L = L, joint = FALSE, rhs = 1, level = 0.9))) {
      ours <- do.call(contest, c(list(fit), args))
      theirs <- do.call(lmerTest::contest, c(list(twin), args))
      expect_identical(names(ours), names(theirs))
      df <- intersect(c("DenDF", "df"), names(ours))
      # lmerTest's df come from numerical derivatives at the same theta: equal to 1e-4.
      expect_equal(ours[[df]], theirs[[df]], tolerance = 1e-4, label = deparse(args))
      rest <- setdiff(names(ours), c(df, "Pr(>F)", "Pr(>|t|)", "lower", "upper"))
      expect_equal(ours[rest], theirs[rest], tolerance = 1e-8, ignore_attr = TRUE, label = deparse(args))
      p <- intersect(c("Pr(>F)", "Pr(>|t|)", "lower", "upper"), names(ours))
      expect_equal(ours[p], theirs[p], tolerance = 1e-4, ignore_attr = TRUE, label = deparse(args))
    }
  }
  expect_error(contest(fit, c(1, 2)), "3 coefficients", class = "hnm_error_argument")
  expect_error(contest(hnm_fit(formula, d, REML = FALSE), L, ddf = "Kenward-Roger"),
               "only available for REML", class = "hnm_error_argument")
})
