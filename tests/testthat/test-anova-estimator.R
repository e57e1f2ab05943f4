# hnm_fit(method = "ANOVA") against stats::anova(lm(y ~ factor(g))) (MSE, MSG), n0 from its
# formula, and the sampling covariance against dense quadratic-form algebra on the full data.

# The lme4 grid (balanced Dyestuff, Dyestuff2 with MSG < MSE, Rail; unbalanced simulated data
# and Hsb82) plus the lecture's balanced wheat data.
anova_cases <- function() {
  c(list(list(name = "wheat", data = wheat, y = "y", g = "g")), lme4_cases())
}

test_that("ANOVA estimates are mean(y), MSE and (MSG - MSE)/n0 of anova(lm())", {
  skip_if_not_installed("lme4")
  for (case in anova_cases()) {
    y <- case$data[[case$y]]
    g <- factor(case$data[[case$g]], ordered = FALSE) # lm() cannot use Hsb82's ordered school
    table <- stats::anova(stats::lm(y ~ g))
    msg <- table[["Mean Sq"]][1]
    mse <- table[["Mean Sq"]][2]
    n <- as.vector(table(g))
    n0 <- (sum(n) - sum(n^2) / sum(n)) / (length(n) - 1)
    untruncated <- (msg - mse) / n0
    fit <- withCallingHandlers(
      hnm_fit(one_way_formula(case), case$data, method = "ANOVA"),
      hnm_warning = function(w) invokeRestart("muffleWarning"))
    expect_equal(mu_of(fit), mean(y), tolerance = 1e-12, label = case$name)
    expect_equal(sigma2_of(fit), mse, tolerance = 1e-10, label = case$name)
    expect_equal(tau2_of(fit), max(untruncated, 0), tolerance = 1e-10, label = case$name)
    expect_equal(unlist(fit$anova[c("msg", "mse", "n0", "df_between", "df_within")]),
                 c(msg = msg, mse = mse, n0 = n0, df_between = table$Df[1],
                   df_within = table$Df[2]), tolerance = 1e-10, label = case$name)
    expect_equal(fit$anova$tau2_untruncated, untruncated, tolerance = 1e-10, label = case$name)
    # logLik: the lecture's dense log-likelihood at the moment estimates.
    expect_equal(c(logLik(fit)),
                 -c(lecture_mll_oneway(c(mu_of(fit), sigma2_of(fit), tau2_of(fit)), y, as.integer(g))),
                 tolerance = 1e-10, label = case$name)
  }
})

test_that("balanced data: n0 is the group size and tau2 = (MSG - MSE)/n", {
  fit <- hnm_fit(y ~ 1 | g, wheat, method = "ANOVA")
  expect_identical(fit$anova$n0, 5)
  # The wheat lecture prints MSE = 1.787206 (see ?wheat).
  expect_equal(sigma2_of(fit), 1.787206, tolerance = 1e-6)
  expect_equal(tau2_of(fit), (fit$anova$msg - fit$anova$mse) / 5, tolerance = 1e-12)
})

test_that("a negative moment estimate of tau2 warns with its value and is truncated", {
  skip_if_not_installed("lme4")
  d <- lme4::Dyestuff2
  table <- stats::anova(stats::lm(Yield ~ Batch, d))
  untruncated <- (table[["Mean Sq"]][1] - table[["Mean Sq"]][2]) / 5
  expect_lt(untruncated, 0)
  expect_warning(fit <- hnm_fit(Yield ~ 1 | Batch, d, method = "ANOVA"),
                 format(untruncated, digits = 6), fixed = TRUE, class = "hnm_warning")
  expect_identical(tau2_of(fit), 0)
  expect_true(isSingular(fit))
  out <- capture.output(print(fit))
  expect_match(out[1], "fit by ANOVA (method of moments)", fixed = TRUE)
  expect_true(any(grepl("truncated at 0", out)))
})

test_that("vcov(full = TRUE) is the sampling covariance of (ybar, MSE, (MSG - MSE)/n0)", {
  # Dense reference: Sigma = s2 I + t2 Z Z'; SSW = y'(I - P)y and SSB = y'(P - J/N)y with P the
  # projection on the group indicators; Cov(y'Ay, y'By) = 2 tr(A Sigma B Sigma) under normality.
  skip_if_not_installed("lme4")
  for (case in anova_cases()) {
    y <- case$data[[case$y]]
    if (length(y) > 400) next # dense N x N algebra
    g <- factor(case$data[[case$g]])
    fit <- suppressWarnings(hnm_fit(one_way_formula(case), case$data, method = "ANOVA"))
    big_n <- length(y)
    m <- nlevels(g)
    z <- stats::model.matrix(~ g - 1)
    sigma <- sigma2_of(fit) * diag(big_n) + tau2_of(fit) * tcrossprod(z)
    p <- z %*% solve(crossprod(z), t(z))
    a_mse <- (diag(big_n) - p) / (big_n - m)
    a_msg <- (p - matrix(1 / big_n, big_n, big_n)) / (m - 1)
    quad_cov <- function(a, b) 2 * sum(diag(a %*% sigma %*% b %*% sigma))
    n0 <- fit$anova$n0
    var_mse <- quad_cov(a_mse, a_mse)
    var_msg <- quad_cov(a_msg, a_msg)
    cov_ms <- quad_cov(a_mse, a_msg)
    expect_lt(abs(cov_ms), 1e-10 * var_mse, label = case$name)
    reference <- matrix(c(sum(sigma) / big_n^2, 0, 0,
                          0, var_mse, (cov_ms - var_mse) / n0,
                          0, (cov_ms - var_mse) / n0, (var_msg - 2 * cov_ms + var_mse) / n0^2),
                        3, 3)
    expect_equal(unname(vcov(fit, full = TRUE)), reference, tolerance = 1e-10, label = case$name)
    expect_equal(c(vcov(fit)), sum(sigma) / big_n^2, tolerance = 1e-10, label = case$name)
  }
})

test_that("balanced data: se(mu) is the se of the mean of the group means, sqrt(MSG/N)", {
  # lm on the group means: var(ybar_j)/m = (MSG/n)/m = MSG/N when tau2 is not truncated.
  means <- tapply(wheat$y, wheat$g, mean)
  fit <- hnm_fit(y ~ 1 | g, wheat, method = "ANOVA")
  expect_equal(unname(sqrt(vcov(fit))[1, 1]),
               summary(stats::lm(means ~ 1))$coefficients[1, "Std. Error"], tolerance = 1e-10)
  expect_equal(unname(confint(fit)["(Intercept)", ]),
               unname(mu_of(fit) + c(-1, 1) * qnorm(0.975) * sqrt(vcov(fit)[1, 1])), tolerance = 1e-12)
  expect_error(confint(fit, method = "profile"), "ML fit", class = "hnm_error")
})

test_that("`method` and `REML` are checked and agree", {
  expect_error(hnm_fit(y ~ 1 | g, wheat, method = "MoM"), "`method` must be one of",
               class = "hnm_error")
  expect_error(hnm_fit(y ~ 1 | g, wheat, method = c("ML", "REML")), "`method`",
               class = "hnm_error")
  expect_error(hnm_fit(y ~ 1 | g, wheat, REML = TRUE, method = "ANOVA"), "contradicts",
               class = "hnm_error")
  expect_identical(hnm_fit(y ~ 1 | g, wheat, REML = TRUE, method = "REML")$method, "REML")
})

test_that("ANOVA fits: likelihood-based inference refits by ML or refuses", {
  fit <- hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff, method = "ANOVA")
  expect_error(confint(fit, method = "boot", nsim = 10), "ML or REML fit", class = "hnm_error")
  expect_error(profile(fit), "ML or REML fit", class = "hnm_error")
  # The LRT is of the ML fits; reference: lme4's anova(lmer(REML = FALSE), lm) Chisq.
  ref <- lme4::lmer(Yield ~ 1 + (1 | Batch), lme4::Dyestuff, REML = FALSE)
  chisq <- suppressMessages(anova(ref, stats::lm(Yield ~ 1, lme4::Dyestuff)))$Chisq[2]
  expect_equal(tau2_test(fit)["LRT", "Statistic"], chisq, tolerance = 1e-6)
})
