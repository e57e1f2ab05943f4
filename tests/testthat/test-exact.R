# Exact F-pivot intervals for tau2/sigma2 and the ICC, against the closed form computed here
# from the raw data with stats::anova(lm()) and qf(): F/(1 + n r) ~ F(m - 1, N - m).

# The closed-form interval of r = tau2/sigma2 from an F statistic, group size n and dfs.
pivot_ratio <- function(f, n, df1, df2, level) {
  pmax(c(f / qf(1 - (1 - level) / 2, df1, df2) - 1, f / qf((1 - level) / 2, df1, df2) - 1) / n, 0)
}

test_that("balanced data: exact intervals equal the F pivot", {
  skip_if_not_installed("lme4")
  cases <- list(list(d = lme4::Dyestuff, y = "Yield", g = "Batch"),
                list(d = lme4::Dyestuff2, y = "Yield", g = "Batch"),
                list(d = wheat, y = "y", g = "g"))
  for (case in cases) {
    case$n <- unique(as.vector(table(case$d[[case$g]])))
    expect_length(case$n, 1L)
    aov <- stats::anova(lm(stats::as.formula(paste(case$y, "~ factor(", case$g, ")")), case$d))
    fit <- hnm_fit(stats::as.formula(paste(case$y, "~ 1 |", case$g)), case$d)
    for (level in c(0.95, 0.9)) {
      ratio <- pivot_ratio(aov[["F value"]][1], case$n, aov$Df[1], aov$Df[2], level)
      expect_silent(ci <- confint(fit, method = "exact", level = level))
      expect_identical(rownames(ci), c("icc", "ratio"))
      expect_equal(unname(ci["ratio", ]), ratio, tolerance = 1e-12)
      expect_equal(unname(ci["icc", ]), ratio / (1 + ratio), tolerance = 1e-12)
      expect_null(attr(ci, "approximation"))
    }
  }
  # Dyestuff2 (F = 0.62 < 1): the interval reaches 0, a lower limit truncated at 0.
  ci <- confint(hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff2), method = "exact")
  expect_identical(ci[, 1], c(icc = 0, ratio = 0))
})

test_that("unbalanced data: the Thomas-Hultquist approximation, announced", {
  d <- simulate_unbalanced(30, 3)
  fit <- hnm_fit(y ~ 1 | g, d)
  # Thomas & Hultquist (1978): harmonic mean size, unweighted variance of the group means.
  sizes <- table(d$g)
  means <- tapply(d$y, d$g, mean)
  n_h <- length(sizes) / sum(1 / sizes)
  mse <- stats::anova(lm(y ~ g, d))[["Mean Sq"]][2]
  ratio <- pivot_ratio(n_h * var(means) / mse, n_h, length(sizes) - 1, nrow(d) - length(sizes), 0.95)
  expect_message(ci <- confint(fit, method = "exact"), "Thomas-Hultquist")
  expect_equal(unname(ci["ratio", ]), ratio, tolerance = 1e-10)
  expect_match(attr(ci, "approximation"), "harmonic mean")
  expect_output(print(ci), "Thomas-Hultquist")
  expect_identical(suppressMessages(rownames(confint(fit, "icc", method = "exact"))), "icc")
  expect_error(suppressMessages(confint(fit, "tau2", method = "exact")), "`parm`",
               class = "hnm_error")
})
