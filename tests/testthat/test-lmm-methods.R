# Methods of fits with covariates and random slopes, in lme4's shapes and with lme4's numbers,
# and R's formula semantics as lme4 applies them. lme4's numbers are those of its fit at hnm's
# θ (lmer_twin, helper-lmm.R): the methods are compared at one optimum, to rounding (1e-8),
# whether or not lme4's optimiser (3e-5 from the optimum in θ on sleepstudy with default
# settings, moving the BLUPs by 2e-5) or lmer_exact's unasserted polish reaches it. That the
# optimum is lme4's is test-lmm-lme4.R's; lmer_exact's deviance checks it where it matters here.

sleep_fits <- function(formula = Reaction ~ Days + (Days | Subject), REML = FALSE) {
  fit <- hnm_fit(formula, lme4::sleepstudy, REML = REML)
  list(hnm = fit, lme4 = lmer_twin(fit, formula, lme4::sleepstudy, REML))
}

test_that("accessors have lme4's names, shapes and numbers", {
  skip_if_not_installed("lme4")
  for (formula in list(Reaction ~ Days + (Days | Subject), Reaction ~ Days + (Days || Subject))) {
    f <- sleep_fits(formula)
    label <- deparse1(formula)
    expect_identical(names(fixef(f$hnm)), names(lme4::fixef(f$lme4)), label = label)
    expect_identical(dimnames(vcov(f$hnm)), dimnames(as.matrix(vcov(f$lme4))), label = label)
    expect_identical(names(VarCorr(f$hnm)), names(lme4::VarCorr(f$lme4)), label = label)
    expect_equal(lapply(VarCorr(f$hnm), unclass), lapply(lme4::VarCorr(f$lme4), unclass),
                 tolerance = 1e-8, label = label)
    expect_equal(as.data.frame(VarCorr(f$hnm)), as.data.frame(lme4::VarCorr(f$lme4)),
                 tolerance = 1e-8, label = label)
    re <- ranef(f$hnm)
    ref <- lme4::ranef(f$lme4, condVar = TRUE)
    expect_identical(names(re), names(ref), label = label)
    expect_equal(as.data.frame(re), as.data.frame(ref), tolerance = 1e-8, label = label)
    expect_equal(attr(re[[1]], "postVar"), attr(ref[[1]], "postVar"), tolerance = 1e-8,
                 ignore_attr = TRUE, label = label)
    expect_equal(unclass(coef(f$hnm))[[1]], unclass(coef(f$lme4))[[1]], tolerance = 1e-8,
                 label = label)
    expect_equal(unname(fitted(f$hnm)), unname(fitted(f$lme4)), tolerance = 1e-8, label = label)
    expect_equal(unname(residuals(f$hnm)), unname(residuals(f$lme4)), tolerance = 1e-8,
                 label = label)
    expect_equal(unname(model.matrix(f$hnm)), unname(model.matrix(f$lme4)), ignore_attr = TRUE)
    for (name in c("theta", "lower", "beta", "sigma")) {
      expect_equal(lme4::getME(f$hnm, name), lme4::getME(f$lme4, name), tolerance = 1e-8,
                   label = paste(label, name))
    }
    expect_equal(as.matrix(getME(f$hnm, "Lambda")), as.matrix(lme4::getME(f$lme4, "Lambda")),
                 tolerance = 1e-8, ignore_attr = TRUE)
    expect_identical(lme4::isSingular(f$hnm), lme4::isSingular(f$lme4))
    expect_identical(df.residual(f$hnm), df.residual(f$lme4))
    expect_identical(nobs(f$hnm), nobs(f$lme4))
    expect_identical(ngrps(f$hnm), lme4::ngrps(f$lme4))
    expect_identical(attr(logLik(f$hnm), "df"), attr(logLik(f$lme4), "df"))
    expect_equal(REMLcrit(f$hnm), lme4::REMLcrit(f$lme4), tolerance = 1e-8)
    expect_equal(coef(summary(f$hnm))[, c("Estimate", "Std. Error", "t value")],
                 coef(summary(f$lme4)), tolerance = 1e-8)
    # lme4's Wald rows of the variance parameters are NA; hnm's are intervals
    # (test-wald-variance.R); the fixed effects' rows are lme4's.
    fixed_rows <- names(lme4::fixef(f$lme4))
    expect_equal(unclass(confint(f$hnm, method = "Wald"))[fixed_rows, , drop = FALSE],
                 confint(f$lme4, method = "Wald")[fixed_rows, , drop = FALSE],
                 tolerance = 1e-8, ignore_attr = c("information", "boundary"))
    lme4_wald <- confint(f$lme4, method = "Wald")
    expect_true(all(is.na(lme4_wald[!rownames(lme4_wald) %in% fixed_rows, ])))
    expect_identical(rownames(confint(f$hnm, method = "Wald", oldNames = FALSE)),
                     rownames(confint(f$lme4, method = "Wald", oldNames = FALSE)))
    # lme4's `parm`: "theta_", "beta_", and rows in the matrix's order whatever parm's.
    for (parm in list("theta_", "beta_", c("beta_", "theta_"), rev(c(".sig01", fixed_rows)))) {
      expect_identical(rownames(confint(f$hnm, parm = parm, method = "Wald")),
                       rownames(confint(f$lme4, parm = parm, method = "Wald")))
    }
    expect_identical(formula(f$hnm), formula)
  }
})

test_that("predict() and simulate() give lme4's values", {
  skip_if_not_installed("lme4")
  f <- sleep_fits()
  new <- data.frame(Days = c(0, 3.5, 9, 2), Subject = c("308", "309", "999", NA))
  expect_equal(predict(f$hnm, newdata = new, allow.new.levels = TRUE),
               unname(predict(f$lme4, newdata = new, allow.new.levels = TRUE)), tolerance = 1e-8)
  expect_equal(predict(f$hnm, newdata = new, re.form = NA),
               unname(predict(f$lme4, newdata = new, re.form = NA)), tolerance = 1e-8)
  expect_equal(predict(f$hnm, re.form = ~0), unname(predict(f$lme4, re.form = NA)),
               tolerance = 1e-8)
  expect_error(predict(f$hnm, newdata = new), "not in the fit", class = "hnm_error_new_levels")
  # Standard errors of population predictions: sqrt(diag(X V X')).
  se <- predict(f$hnm, newdata = new, re.form = NA, se.fit = TRUE)$se.fit
  x <- cbind(1, new$Days)
  expect_equal(se, sqrt(diag(x %*% as.matrix(vcov(f$lme4)) %*% t(x))), tolerance = 1e-8)
  expect_error(predict(f$hnm, re.form = ~ (1 | Subject), se.fit = TRUE), "naming some",
               class = "hnm_error")
  expect_error(predict(f$hnm, newdata = new, typo = 1), "unused argument", class = "hnm_error")
  # New random effects in lme4's order, then the errors: lme4's draws for the same seed.
  expect_equal(as.matrix(simulate(f$hnm, nsim = 3, seed = 42)),
               as.matrix(simulate(f$lme4, nsim = 3, seed = 42)), tolerance = 1e-8,
               ignore_attr = TRUE)
  expect_equal(as.matrix(simulate(f$hnm, nsim = 2, seed = 7, use.u = TRUE)),
               as.matrix(simulate(f$lme4, nsim = 2, seed = 7, use.u = TRUE)), tolerance = 1e-8,
               ignore_attr = TRUE)
  uncorrelated <- sleep_fits(Reaction ~ Days + (Days || Subject))
  expect_equal(as.matrix(simulate(uncorrelated$hnm, seed = 3)),
               as.matrix(simulate(uncorrelated$lme4, seed = 3)), tolerance = 1e-8,
               ignore_attr = TRUE)
  expect_error(simulate(f$hnm, newdata = new), "newdata", class = "hnm_error")
})

test_that("anova() of nested fits is lme4's likelihood-ratio table", {
  skip_if_not_installed("lme4")
  d <- lme4::sleepstudy
  ours <- anova(hnm_fit(Reaction ~ Days + (Days || Subject), d),
                hnm_fit(Reaction ~ Days + (Days | Subject), d, REML = TRUE))
  theirs <- suppressMessages(anova(lme4::lmer(Reaction ~ Days + (Days || Subject), d, REML = FALSE),
                                   lme4::lmer(Reaction ~ Days + (Days | Subject), d)))
  expect_equal(as.data.frame(ours)[, c("npar", "logLik", "deviance", "Df")],
               as.data.frame(theirs)[, c("npar", "logLik", "deviance", "Df")], tolerance = 1e-6,
               ignore_attr = TRUE)
  expect_equal(ours[["Pr(>Chisq)"]][2], theirs[["Pr(>Chisq)"]][2], tolerance = 1e-3)
  one_way <- hnm_fit(Reaction ~ 1 | Subject, d)
  expect_error(anova(one_way, hnm_fit(Reaction ~ Days + (1 | Subject), d[-1, ])),
               "different data", class = "hnm_error")
})

test_that("a model without fixed effects prints, summarises and tests as lme4 and lmerTest do", {
  skip_if_not_installed("lme4")
  skip_if_not_installed("lmerTest")
  f <- sleep_fits(Reaction ~ 0 + (Days | Subject))
  exact <- lmer_exact(Reaction ~ 0 + (Days | Subject), lme4::sleepstudy, FALSE)
  expect_lte(deviance(f$hnm), deviance(exact) + 1e-8)
  expect_equal(deviance(f$hnm), deviance(f$lme4), tolerance = 1e-12)
  expect_equal(lapply(VarCorr(f$hnm), unclass), lapply(lme4::VarCorr(f$lme4), unclass),
               tolerance = 1e-8)
  expect_length(fixef(f$hnm), 0L)
  # lme4 prints its words for no coefficients and leaves the section out of summary().
  expect_match(paste(capture.output(print(f$hnm)), collapse = "\n"), "No fixed effect coefficients")
  summary_text <- capture.output(print(summary(f$hnm)))
  expect_false(any(grepl("Fixed effects", summary_text)))
  expect_identical(dim(coef(summary(f$hnm))), c(0L, 5L))
  # lmerTest's anova() has no rows for a model without fixed-effect terms.
  reference <- anova(lmerTest::lmer(Reaction ~ 0 + (Days | Subject), lme4::sleepstudy, REML = FALSE))
  expect_identical(nrow(anova(f$hnm)), nrow(reference))
})

test_that("the fixed part has R's formula semantics, as lme4 applies them", {
  skip_if_not_installed("lme4")
  d <- simulate_lmm(11, balanced = FALSE)
  d$x[c(3, 50)] <- NA
  d$f[7] <- NA
  d$u <- exp(d$z)
  d$offset_column <- 0.1 * d$w
  formulas <- list(
    y ~ f + x:f + (1 | g),
    y ~ poly(x, 2) + I(z^2) + log(u) + (x | g),
    y ~ x + offset(offset_column) + (1 | g),
    y ~ 0 + f + x + (0 + x | g),
    y ~ x + (1 | f:g)
  )
  complete <- d[stats::complete.cases(d), ]  # poly() refuses NA, in lm() and lmer() alike
  for (formula in formulas) {
    label <- deparse1(formula)
    data <- if (grepl("poly", label)) complete else d
    ours <- hnm_fit(formula, data)
    expect_lte(deviance(ours), deviance(lmer_exact(formula, data, FALSE)) + 1e-8, label = label)
    theirs <- lmer_twin(ours, formula, data)
    expect_identical(names(fixef(ours)), names(lme4::fixef(theirs)), label = label)
    expect_equal(lmm_numbers(ours)[c("beta", "se", "sdcor", "criterion")],
                 lmm_numbers(theirs)[c("beta", "se", "sdcor", "criterion")], tolerance = 1e-8,
                 label = label)
    expect_identical(nobs(ours), nobs(theirs), label = label)
    expect_equal(unname(fitted(ours)), unname(fitted(theirs)), tolerance = 1e-8, label = label)
  }
  # A rank-deficient X: aliased columns dropped with a message naming them, as lme4 does.
  d$x2 <- 2 * d$x
  expect_message(fit <- hnm_fit(y ~ x + x2 + (1 | g), d), "dropping 1 column.*: x2")
  theirs <- lmer_twin(fit, y ~ x + x2 + (1 | g), d)
  expect_equal(fixef(fit), lme4::fixef(theirs), tolerance = 1e-8)
  expect_error(hnm_fit(y ~ x + (1 | g), d, method = "ANOVA"), "one-way model", class = "hnm_error")
})

test_that("estimates are equivariant under shifts of 1e9 (exact data) and huge or tiny units", {
  d <- simulate_lmm(5)
  d$x <- round(d$x * 1024) / 1024
  d$y <- round(d$y * 1024) / 1024
  base <- hnm_fit(y ~ x + (x | g), d)
  a <- 1e9
  shifted <- hnm_fit(y ~ x + (x | g), transform(d, x = x + a, y = y - a))
  b <- fixef(base)
  expect_equal(unname(fixef(shifted)), unname(c(b[1] - a - a * b[2], b[2])), tolerance = 1e-12)
  t <- matrix(c(1, 0, -a, 1), 2)
  expect_equal(unclass(VarCorr(shifted))[[1]], t %*% unclass(VarCorr(base))[[1]] %*% t(t),
               tolerance = 1e-6, ignore_attr = TRUE)
  expect_equal(sigma(shifted), sigma(base), tolerance = 1e-8)
  expect_equal(deviance(shifted), deviance(base), tolerance = 1e-10)
  for (scale in c(1e-100, 1e100)) {
    scaled <- hnm_fit(y ~ x + (x | g), transform(d, y = y * scale))
    expect_equal(fixef(scaled), fixef(base) * scale, tolerance = 1e-9)
    expect_equal(sigma(scaled), sigma(base) * scale, tolerance = 1e-9)
    expect_equal(getME(scaled, "theta"), getME(base, "theta"), tolerance = 1e-7)
    expect_equal(deviance(scaled), deviance(base) + 2 * nobs(base) * log(scale), tolerance = 1e-10)
  }
})

test_that("a saved fit keeps working without a refit, and data changed in place are detected", {
  f <- hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  path <- tempfile(fileext = ".rds")
  saveRDS(f, path)
  restored <- readRDS(path)
  expect_false(hnm:::rs_lmm_valid(restored$core$model))
  expect_equal(ranef(restored), ranef(f), tolerance = 1e-12)
  expect_equal(fitted(restored), fitted(f), tolerance = 1e-12)
  expect_true(hnm:::rs_lmm_valid(restored$core$model))
  skip_if_not_installed("data.table")
  dt <- data.table::as.data.table(lme4::sleepstudy)
  fit <- hnm_fit(Reaction ~ Days + (Days | Subject), dt)
  before <- fitted(fit)
  data.table::set(dt, i = 1L, j = "Reaction", value = 0)
  expect_error(fitted(fit), "modified in place", class = "hnm_error_data_changed")
  expect_error(residuals(fit), "modified in place", class = "hnm_error_data_changed")
  expect_error(simulate(fit), "modified in place", class = "hnm_error_data_changed")
  copied <- lme4::sleepstudy
  fit <- hnm_fit(Reaction ~ Days + (Days | Subject), copied)
  copied$Reaction[1] <- 0  # copy-on-modify: the fit's columns are untouched
  expect_equal(fitted(fit), before, tolerance = 1e-12)
})

test_that("model.frame() and terms() are lme4's", {
  skip_if_not_installed("lme4")
  d <- lme4::sleepstudy
  d$Reaction[5] <- NA
  fit <- hnm_fit(Reaction ~ Days + (Days | Subject), d)
  ref <- lme4::lmer(Reaction ~ Days + (Days | Subject), d, REML = FALSE)
  expect_equal(model.frame(fit), model.frame(ref), ignore_attr = TRUE)
  expect_identical(attr(terms(fit), "term.labels"), attr(terms(ref, fixed.only = TRUE), "term.labels"))
  # The response and the fit's poly() and scale() coefficients, as lme4's terms give them.
  d$w <- exp(d$Days / 4) + 1
  fit <- hnm_fit(Reaction ~ poly(Days, 2) + scale(w) + offset(log(w)) + (1 | Subject), d)
  ref <- lme4::lmer(Reaction ~ poly(Days, 2) + scale(w) + offset(log(w)) + (1 | Subject), d,
                    REML = FALSE)
  for (name in c("variables", "factors", "term.labels", "response", "offset", "predvars")) {
    expect_equal(attr(terms(fit), name), attr(terms(ref), name), label = name)
  }
})
