# ranova(): lmerTest's table of tests of the random-effect terms.
# References: lmerTest::ranova() of lmerTest::lmer() fits of the same models (its rows, columns,
# heading and formulas), stats' pchisq() of lmerTest's LRT for the boundary mixture p-values,
# lm()'s REML and ML log-likelihoods for the model without random effects.

# lmerTest refits the reduced models by update() of the fit's call, evaluated elsewhere: the
# call holds the data frame itself.
lmertest_ranova <- function(formula, data, REML, ...) {
  ref <- eval(bquote(lmerTest::lmer(.(formula), .(data), REML = .(REML))))
  lmerTest::ranova(ref, ...)
}

expect_lmertest_table <- function(table, ref, label) {
  columns <- c("npar", "logLik", "AIC", "LRT", "Df", "Pr(>Chisq)")
  expect_s3_class(table, "anova")
  expect_identical(rownames(table), rownames(ref), label = label)
  expect_identical(names(table)[1:6], names(ref), label = label)
  expect_equal(as.matrix(table[, columns]), as.matrix(ref[, columns]), tolerance = 1e-6,
               label = label)
  expect_identical(attr(table, "heading")[1:3], attr(ref, "heading"), label = label)
  expect_identical(lapply(attr(table, "formulae"), deparse1),
                   lapply(attr(ref, "formulae"), deparse1), label = label)
}

test_that("sleepstudy: lmerTest's ranova table, REML and ML, reduced and removed terms", {
  skip_if_not_installed("lmerTest")
  d <- lme4::sleepstudy
  for (formula in list(Reaction ~ Days + (Days | Subject), Reaction ~ Days + (1 | Subject),
                       Reaction ~ Days + (Days || Subject))) {
    for (reml in c(TRUE, FALSE)) {
      for (reduce in c(TRUE, FALSE)) {
        fit <- hnm_fit(formula, d, REML = reml)
        label <- sprintf("%s, REML %s, reduce.terms %s", deparse1(formula), reml, reduce)
        table <- ranova(fit, reduce.terms = reduce)
        expect_lmertest_table(table, lmertest_ranova(formula, d, reml, reduce.terms = reduce),
                              label)
      }
    }
  }
})

test_that("several grouping factors: lmerTest's table, nested, crossed and with a slope", {
  skip_if_not_installed("lmerTest")
  slopes <- lme4::sleepstudy
  slopes$grp <- factor(rep(1:4, length.out = nrow(slopes)))
  cases <- list(list(diameter ~ 1 + (1 | plate) + (1 | sample), lme4::Penicillin),
                list(strength ~ 1 + (1 | batch/cask), lme4::Pastes),
                list(Reaction ~ Days + (Days | Subject) + (1 | grp), slopes),
                # The formula's order, not the factors' by their levels (lmerTest's rows).
                list(diameter ~ 1 + (1 | sample) + (1 | plate), lme4::Penicillin),
                list(Reaction ~ Days + (1 | grp) + (Days || Subject), slopes))
  for (case in cases) for (reml in c(TRUE, FALSE)) {
    label <- sprintf("%s, REML %s", deparse1(case[[1]]), reml)
    table <- ranova(hnm_fit(case[[1]], case[[2]], REML = reml))
    expect_lmertest_table(table, lmertest_ranova(case[[1]], case[[2]], reml), label)
  }
})

test_that("the one-way model: its one row is the test against lm(y ~ 1), as lmerTest's", {
  skip_if_not_installed("lmerTest")
  d <- lme4::Dyestuff
  for (reml in c(TRUE, FALSE)) {
    fit <- hnm_fit(Yield ~ 1 | Batch, d, REML = reml)
    table <- ranova(fit)
    expect_lmertest_table(table, lmertest_ranova(Yield ~ 1 + (1 | Batch), d, reml),
                          sprintf("Dyestuff, REML %s", reml))
    # The reduced model's logLik is lm()'s (its REML criterion for a REML fit).
    expect_equal(table["(1 | Batch)", "logLik"], c(logLik(lm(Yield ~ 1, d), REML = reml)),
                 tolerance = 1e-12)
    # A random intercept of its own: the 0.5 chi2(0) + 0.5 chi2(1) mixture, half the naive p.
    expect_equal(table["(1 | Batch)", "Pr(mixture)"], 0.5 * table["(1 | Batch)", "Pr(>Chisq)"])
  }
  # Dyestuff2: tau^2 = 0 exactly, so the mixture p-value is 1.
  table <- ranova(hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff2))
  expect_identical(table["(1 | Batch)", "Pr(mixture)"], 1)
})

test_that("Pr(mixture): 0.5 chi2(s - 1) + 0.5 chi2(s) for one effect dropped from s, else NA", {
  skip_if_not_installed("lmerTest")
  d <- lme4::sleepstudy
  formula <- Reaction ~ Days + (Days | Subject)
  for (reml in c(TRUE, FALSE)) {
    ref <- lmertest_ranova(formula, d, reml)
    lrt <- ref$LRT[2]
    table <- ranova(hnm_fit(formula, d, REML = reml))
    # Days dropped from a block of 2: its variance and the covariance, Df 2.
    expect_equal(table$`Pr(mixture)`[2],
                 0.5 * stats::pchisq(lrt, 1, lower.tail = FALSE) +
                   0.5 * stats::pchisq(lrt, 2, lower.tail = FALSE), tolerance = 1e-6)
    expect_true(is.na(table$`Pr(mixture)`[1]))
    # The whole block of two removed (Df 3): not a one-variance boundary test.
    expect_true(is.na(ranova(hnm_fit(formula, d, REML = reml), reduce.terms = FALSE)$`Pr(mixture)`[2]))
    expect_identical(names(ranova(hnm_fit(formula, d, REML = reml), mixture = FALSE)), names(ref))
  }
  # Uncorrelated terms: each a block of one, the 0.5 chi2(0) + 0.5 chi2(1) mixture for each
  # (lmerTest's reduction of (0 + Days | g) to (1 | g) is the intercept already there: update()
  # merges the two, and the row tests the slope's variance alone).
  table <- ranova(hnm_fit(Reaction ~ Days + (Days || Subject), d, REML = TRUE))
  expect_equal(table$`Pr(mixture)`[2:3], 0.5 * table$`Pr(>Chisq)`[2:3])
  expect_match(attr(table, "heading"), "Pr\\(mixture\\)", all = FALSE)
  # A random slope without intercept reduced to a random intercept: not nested, NA.
  table <- ranova(hnm_fit(Reaction ~ Days + (0 + Days | Subject), d))
  expect_identical(rownames(table)[2], "Days in (0 + Days | Subject)")
  expect_true(is.na(table$`Pr(mixture)`[2]))
})

test_that("the printed Pr(>Chisq) beside Pr(mixture) is lmerTest's printed p-value", {
  # stats' print.anova() formats only the last column as p-values: lmerTest's Pr(>Chisq), before
  # Pr(mixture), was rounded with the other columns and printed 1.5e-13 as 0.
  skip_if_not_installed("lmerTest")
  row <- "(1 | cask:batch)"
  printed <- function(table) {
    # The table's row (the heading's formula names the term too).
    line <- utils::tail(grep(row, utils::capture.output(print(table)), fixed = TRUE,
                             value = TRUE), 1L)
    regmatches(line, gregexpr("[0-9.]+e-[0-9]+", line))[[1L]]
  }
  ref <- printed(lmertest_ranova(strength ~ 1 + (1 | batch / cask), lme4::Pastes, REML = FALSE))
  expect_length(ref, 1L)
  shown <- printed(ranova(hnm_fit(strength ~ 1 + (1 | batch / cask), lme4::Pastes)))
  expect_identical(shown[1L], ref)
  expect_length(shown, 2L)  # and the mixture's, half of it
})

test_that("ranova() refuses what it cannot refit, with classed errors", {
  d <- lme4::sleepstudy
  fit <- hnm_fit(Reaction ~ Days + (Days | Subject), d)
  expect_error(ranova(fit, foo = 1), "unused argument", class = "hnm_error_unused_argument")
  expect_error(ranova(fit, reduce.terms = NA), "reduce.terms", class = "hnm_error")
  expect_error(ranova(fit, mixture = "yes"), "mixture", class = "hnm_error")
  expect_error(ranova(hnm_fit(y ~ 1 | g, wheat, method = "ANOVA")), "ANOVA",
               class = "hnm_error_argument")
  refitted <- refit(fit, simulate(fit, seed = 1)[[1]])
  expect_error(ranova(refitted), "refit\\(\\) replaced", class = "hnm_error_argument")
  statistics_fit <- hnm_fit(y ~ 1 | g, wheat)
  statistics_fit$rows <- NULL   # as a fit made from group statistics
  expect_error(ranova(statistics_fit), "needs the data rows", class = "hnm_error_no_rows")
  # A slope variable missing where the response is not: without the slope the model would
  # use more rows (lmerTest stops too: "number of rows in use has changed").
  d$x <- d$Days
  d$x[c(3, 50)] <- NA
  expect_error(ranova(hnm_fit(Reaction ~ 1 + (x | Subject), d)), "uses 180 rows instead of 178",
               class = "hnm_error_argument")
})
