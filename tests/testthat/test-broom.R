# broom's tidy/glance/augment for hnm_fit, with broom.mixed's columns for merMod and values
# from lme4's accessors.

test_that("tidy, glance and augment give lme4's numbers in broom.mixed's columns", {
  skip_if_not_installed("broom")
  skip_if_not_installed("lme4")
  for (case in lme4_cases()) {
    label <- case$name
    fit <- hnm_fit(one_way_formula(case), case$data)
    ref <- suppressMessages(lme4::lmer(one_way_formula(case, TRUE), case$data, REML = FALSE))
    tidied <- broom::tidy(fit, conf.int = TRUE)
    expect_identical(names(tidied), c("effect", "group", "term", "estimate", "std.error",
                                      "statistic", "conf.low", "conf.high"), label = label)
    expect_identical(tidied$effect, c("fixed", "ran_pars", "ran_pars"), label = label)
    expect_identical(tidied$group, c(NA, case$g, "Residual"), label = label)
    expect_identical(tidied$term, c("(Intercept)", "sd__(Intercept)", "sd__Observation"),
                     label = label)
    coefs <- summary(ref)$coefficients
    ref_vc <- as.data.frame(lme4::VarCorr(ref))
    expect_equal(tidied$estimate, c(coefs[1, "Estimate"], ref_vc$sdcor), tolerance = 1e-6,
                 label = label)
    expect_equal(tidied$std.error[1], coefs[1, "Std. Error"], tolerance = 1e-6, label = label)
    expect_equal(tidied$statistic[1], coefs[1, "t value"], tolerance = 1e-6, label = label)
    expect_equal(unlist(tidied[1, c("conf.low", "conf.high")], use.names = FALSE),
                 unname(stats::confint(ref, method = "Wald")["(Intercept)", ]), tolerance = 1e-6,
                 label = label)
    expect_identical(broom::tidy(fit, effects = "fixed")$term, "(Intercept)", label = label)
    glanced <- broom::glance(fit)
    expect_identical(names(glanced), c("nobs", "sigma", "logLik", "AIC", "BIC", "deviance",
                                       "df.residual"), label = label)
    expect_equal(unlist(glanced, use.names = FALSE),
                 c(nobs(ref), sigma(ref), c(logLik(ref)), AIC(ref), BIC(ref), deviance(ref),
                   df.residual(ref)), tolerance = 1e-6, label = label)
    augmented <- broom::augment(fit)
    expect_identical(names(augmented), c(case$y, case$g, ".fitted", ".resid"), label = label)
    expect_equal(augmented$.fitted, unname(fitted(ref)), tolerance = 1e-6, label = label)
    expect_equal(augmented$.resid, unname(residuals(ref)), tolerance = 1e-5, label = label)
  }
})

test_that("augment(data =) keeps every row, with NA for rows dropped from the fit", {
  skip_if_not_installed("broom")
  d <- wheat
  d$y[3] <- NA
  fit <- hnm_fit(y ~ 1 | g, d)
  augmented <- broom::augment(fit, data = d)
  expect_identical(nrow(augmented), 50L)
  expect_true(is.na(augmented$.fitted[3]))
  # Residual = response - fitted on every kept row (the definition, from the data).
  expect_equal(augmented$.resid[-3], d$y[-3] - augmented$.fitted[-3], tolerance = 1e-12)
  expect_error(broom::augment(fit, data = d[1:10, ]), "50 rows", class = "hnm_error")
})
