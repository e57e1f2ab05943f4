# Fits from per-group statistics (hnm_stats tables and declared data frames). References:
# base R's per-group n, mean and SS (base_r_statistics()), lme4::lmer(REML = FALSE), and the
# fit from the rows, which test-lme4-agreement.R checks against lme4.

# lme4's datasets plus 2e5 rows in 2000 groups, with and without an offset of 1e9.
statistics_cases <- function() {
  large <- lapply(c(0, 1e9), function(offset) {
    list(name = sprintf("2e5 rows, 2000 groups, offset %g", offset),
         data = simulate_large(offset, seed = 610), y = "y", g = "g")
  })
  c(lme4_cases(), large)
}

test_that("hnm_stats() gives base R's per-group n, mean and within-group SS", {
  for (case in statistics_cases()) {
    info <- case$name
    y <- case$data[[case$y]]; g <- case$data[[case$g]]
    s <- hnm_stats(one_way_formula(case), case$data)
    reference <- base_r_statistics(y, g)
    expect_s3_class(s, c("hnm_stats", "data.frame"))
    expect_identical(names(s), c("group", "n", "mean", "ss"), info = info)
    expect_identical(s$group, reference$group, info = info)
    expect_equal(s$n, reference$n, info = info)
    expect_equal(s$mean, reference$mean, tolerance = 1e-14, info = info)
    expect_equal(s$ss, reference$ss, tolerance = 1e-12, info = info)
    expect_identical(attr(s, "n_dropped"), sum(is.na(y) | is.na(g)), info = info)
  }
})

test_that("fits from statistics tables equal the fit from the rows to 1e-9", {
  for (case in statistics_cases()) {
    f <- one_way_formula(case)
    reference <- base_r_statistics(case$data[[case$y]], case$data[[case$g]])
    names(reference) <- c("label", "size", "ybar", "ssw")
    for (reml in c(FALSE, TRUE)) {
      info <- sprintf("%s, REML = %s", case$name, reml)
      from_rows <- hnm_fit(f, case$data, REML = reml)
      from_stats <- hnm_fit(f, hnm_stats(f, case$data), REML = reml)
      from_table <- hnm_fit(f, reference, REML = reml,
                            stats = c(group = "label", n = "size", mean = "ybar", ss = "ssw"))
      for (fit in list(from_stats, from_table)) {
        expect_equal(fit_numbers(fit), fit_numbers(from_rows), tolerance = 1e-9, info = info)
        expect_equal(confint(fit), confint(from_rows), tolerance = 1e-9, info = info)
        expect_equal(fit$levels, from_rows$levels, info = info)
      }
    }
  }
})

test_that("a fit from a table of statistics matches lme4 on the rows", {
  skip_if_not_installed("lme4")
  for (case in lme4_cases()[1:3]) {
    f <- one_way_formula(case)
    reference <- suppressMessages(
      lme4::lmer(one_way_formula(case, lme4_style = TRUE), case$data, REML = FALSE))
    fit <- hnm_fit(f, base_r_statistics(case$data[[case$y]], case$data[[case$g]]), stats = TRUE)
    expect_equal(c(logLik(fit)), c(logLik(reference)), tolerance = 1e-6, info = case$name)
    # The estimates of lme4's fit at hnm's θ (lmer_twin, helper-lmm.R), to rounding: not where lme4's optimiser stops.
    twin <- lmer_twin(fit, one_way_formula(case, lme4_style = TRUE), case$data)
    expect_equal(fixef(fit), lme4::fixef(twin), tolerance = 1e-8, info = case$name)
    expect_equal(sigma(fit), sigma(twin), tolerance = 1e-8, info = case$name)
    expect_equal(as.data.frame(VarCorr(fit))$vcov, as.data.frame(lme4::VarCorr(twin))$vcov,
                 tolerance = 1e-8, info = case$name)
    expect_equal(unname(vcov(fit)), unname(as.matrix(vcov(twin))), tolerance = 1e-8,
                 info = case$name)
  }
})

test_that("a fit from statistics has the statistics-only methods and refuses row-level ones", {
  d <- simulate_unbalanced(40, 1)
  from_rows <- hnm_fit(y ~ 1 | g, d)
  fit <- hnm_fit(y ~ 1 | g, hnm_stats(y ~ 1 | g, d))
  same <- function(a, b) expect_equal(a, b, tolerance = 1e-10)
  same(confint(fit, method = "profile"), confint(from_rows, method = "profile"))
  same(confint(fit, method = "Wald", scale = "var", level = 0.9),
       confint(from_rows, method = "Wald", scale = "var", level = 0.9))
  same(as.data.frame(VarCorr(fit)), as.data.frame(VarCorr(from_rows)))
  same(logLik(fit), logLik(from_rows))
  same(c(AIC(fit), BIC(fit)), c(AIC(from_rows), BIC(from_rows)))
  same(fixef(fit), fixef(from_rows))
  same(vcov(fit, full = TRUE), vcov(from_rows, full = TRUE))
  expect_identical(c(nobs(fit), ngrps(fit), isSingular(fit)),
                   c(nobs(from_rows), ngrps(from_rows), isSingular(from_rows)))
  same(summary(fit)$coefficients, summary(from_rows)$coefficients)
  out <- capture.output(print(summary(fit)))
  expect_true(any(grepl(sprintf("Number of obs: %d, groups:  g, 40", nrow(d)), out, fixed = TRUE)))
  expect_false(any(grepl("Scaled residuals", out)))
  same(unclass(confint(fit, method = "boot", nsim = 200, seed = 1))[, ],
       unclass(confint(from_rows, method = "boot", nsim = 200, seed = 1))[, ])
  same(suppressMessages(confint(fit, method = "exact")),
       suppressMessages(confint(from_rows, method = "exact")))
  same(as.data.frame(anova(fit)), as.data.frame(anova(from_rows)))
  same(as.data.frame(ranef(fit, condVar = TRUE)), as.data.frame(ranef(from_rows, condVar = TRUE)))
  same(coef(fit), coef(from_rows))
  same(as.data.frame(profile(fit)), as.data.frame(profile(from_rows)))
  same(predict(fit, newdata = d[1:5, ]), predict(from_rows, newdata = d[1:5, ]))
  for (row_level in list(fitted, residuals, simulate, predict)) {
    expect_error(row_level(fit), class = "hnm_error_no_rows",
                 regexp = "needs the data rows, but this fit was made from group statistics")
  }
})

test_that("hnm_stats prints a header and the first groups", {
  out <- capture.output(print(hnm_stats(y ~ 1 | g, wheat), n = 3))
  expect_identical(out[1], "Group statistics of `y` by `g`: 10 groups, 50 observations")
  expect_match(out[length(out)], "# ... 7 more groups", fixed = TRUE)
})

test_that("bad statistics tables are classed errors naming the column", {
  good <- data.frame(group = c("a", "b", "c"), n = c(3, 4, 5), mean = c(1, 2, 4), ss = c(1, 2, 3))
  with_column <- function(column, values) {
    good[[column]] <- values
    good
  }
  cases <- list(
    list(data = good[c("group", "n", "mean")], stats = TRUE, message = "no column `ss`"),
    list(data = with_column("n", c(3, 2.5, 5)), stats = TRUE,
         message = "column `n` of `data` must hold positive whole numbers; row 2 holds 2.5"),
    list(data = with_column("n", c(0, 2, 5)), stats = TRUE, message = "column `n`.*row 1"),
    list(data = with_column("ss", c(1, -1, 5)), stats = TRUE,
         message = "column `ss` of `data` must hold finite numbers >= 0; row 2"),
    list(data = with_column("mean", c(1, NA, 5)), stats = TRUE, message = "column `mean`.*row 2"),
    list(data = with_column("mean", c("1", "2", "3")), stats = TRUE, message = "column `mean`"),
    list(data = with_column("group", c("a", "b", "a")), stats = TRUE,
         message = "column `group` of `data` must name each group once, but it has `a` twice"),
    list(data = with_column("group", c("a", NA, "c")), stats = TRUE, message = "an NA label"),
    list(data = good, stats = c(size = "n"), message = "`stats` must be TRUE or a named character"),
    list(data = good, stats = c(n = "size"), message = "no column `size`"),
    list(data = good[0, ], stats = TRUE, message = "no groups"),
    list(data = as.matrix(good), stats = TRUE, message = "must be a data frame of group statistics")
  )
  for (case in cases) {
    expect_error(hnm_fit(y ~ 1 | group, case$data, stats = case$stats), class = "hnm_error",
                 regexp = case$message, info = case$message)
  }
  expect_error(hnm_fit(y ~ 1 | g, stats = TRUE), class = "hnm_error", regexp = "`data` is missing")
  expect_error(hnm_fit(z ~ 1 | g, hnm_stats(y ~ 1 | g, wheat)), class = "hnm_error",
               regexp = "holds statistics of `y` by `g`, but the formula asks for `z` by `g`")
})
