# broom's tidy/glance/augment for hnm_fit: the columns and numbers broom.mixed gives for the
# equivalent lmer fit (the reference).

# broom.mixed's result for the lmer twin, as a plain data frame.
mixed <- function(f, ...) as.data.frame(suppressMessages(f(...)))

test_that("tidy gives broom.mixed's rows, columns and numbers for lmer", {
  skip_if_not_installed("broom")
  skip_if_not_installed("broom.mixed")
  skip_if_not_installed("lme4")
  for (case in lme4_cases()) {
    label <- case$name
    fit <- hnm_fit(one_way_formula(case), case$data)
    ref <- suppressMessages(lme4::lmer(one_way_formula(case, TRUE), case$data, REML = FALSE))
    # Estimates and SEs: lme4's fit at hnm's θ (lmer_twin, helper-lmm.R), to rounding; not
    # where lme4's optimiser stops (its ftol_abs = 1e-8 allows τ² 9e-5 from the optimum here).
    twin <- lmer_twin(fit, one_way_formula(case, TRUE), case$data)
    calls <- list(list(), list(effects = "fixed"), list(effects = "ran_pars"),
                  list(effects = c("ran_pars", "fixed"), scales = c("vcov", NA)),
                  list(effects = "ran_pars", scales = "vcov"),
                  list(effects = c("fixed", "ran_pars")),
                  list(effects = "ran_coefs"))
    for (args in calls) {
      what <- paste(label, deparse(args))
      tidied <- do.call(broom::tidy, c(list(fit), args))
      expected <- do.call(function(...) mixed(broom.mixed::tidy, twin, ...), args)
      expect_identical(names(tidied), names(expected), label = what)
      text <- intersect(names(expected), c("effect", "group", "level", "term"))
      expect_identical(tidied[text], expected[text], label = what)
      numbers <- setdiff(names(expected), text)
      expect_equal(tidied[numbers], expected[numbers], tolerance = 1e-8, label = what)
    }
    # Intervals: fixed effects are lme4's Wald intervals; profile intervals are lme4's (its
    # spline through the profile is accurate to about 1e-5, to 2e-4 for the intercept at
    # Dyestuff2's boundary tau = 0, where hnm's profile is exact).
    tidied <- broom::tidy(fit, conf.int = TRUE, conf.level = 0.9)
    expected <- mixed(broom.mixed::tidy, twin, conf.int = TRUE, conf.level = 0.9)
    expect_equal(tidied[1, c("conf.low", "conf.high")], expected[1, c("conf.low", "conf.high")],
                 tolerance = 1e-8, label = label)
    tidied <- broom::tidy(fit, conf.int = TRUE, conf.method = "profile")
    expected <- mixed(broom.mixed::tidy, ref, conf.int = TRUE, conf.method = "profile")
    expect_equal(tidied[c("conf.low", "conf.high")], expected[c("conf.low", "conf.high")],
                 tolerance = if (isSingular(fit)) 1e-3 else 1e-4, label = label)
    # Conditional modes with conditional SDs and their z intervals.
    tidied <- broom::tidy(fit, effects = "ran_vals", conf.int = TRUE)
    expected <- mixed(broom.mixed::tidy, twin, effects = "ran_vals", conf.int = TRUE)
    expect_identical(names(tidied), names(expected), label = label)
    expect_identical(tidied$level, expected$level, label = label)
    expect_equal(tidied[c("estimate", "std.error", "conf.low", "conf.high")],
                 expected[c("estimate", "std.error", "conf.low", "conf.high")], tolerance = 1e-8,
                 label = label)
  }
})

test_that("tidy's Wald intervals for the SDs are real where lme4's are NA", {
  skip_if_not_installed("broom")
  fit <- hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff)
  tidied <- broom::tidy(fit, conf.int = TRUE)
  # Delta method on tau: tau +- z se(tau^2) / (2 tau), from the inverse information.
  se_tau2 <- sqrt(vcov(fit, full = TRUE)[3, 3])
  tau <- sqrt(tau2_of(fit))
  expect_equal(unlist(tidied[2, c("conf.low", "conf.high")], use.names = FALSE),
               tau + c(-1, 1) * qnorm(0.975) * se_tau2 / (2 * tau), tolerance = 1e-8)
  boot <- broom::tidy(fit, conf.int = TRUE, conf.method = "boot", nsim = 50, seed = 3)
  expect_equal(boot$conf.low, unname(confint(fit, method = "boot", nsim = 50, seed = 3)[c(3, 1, 2), 1]))
})

test_that("tidy rejects what it cannot honour, naming the argument", {
  skip_if_not_installed("broom")
  fit <- hnm_fit(y ~ 1 | g, wheat)
  expect_error(broom::tidy(fit, ddf.method = "Kenward-Roger"), "`ddf.method`", class = "hnm_error")
  expect_error(broom::tidy(fit, nsim = 10), "`nsim`", class = "hnm_error")
  expect_error(broom::tidy(fit, exponentiate = TRUE), "exponentiate", class = "hnm_error")
  expect_error(broom::tidy(fit, scales = "vcov"), "one element per element", class = "hnm_error")
  expect_error(broom::tidy(fit, effects = "fixed", scales = "vcov"), "must be NA",
               class = "hnm_error")
  expect_error(broom::tidy(fit, conf.int = NA), "conf.int", class = "hnm_error")
  expect_error(broom::tidy(fit, conf.level = 1.5), "conf.level", class = "hnm_error")
  expect_error(broom::glance(fit, extra = 1), "`extra`", class = "hnm_error")
})

test_that("glance and augment give broom.mixed's numbers for lmer", {
  skip_if_not_installed("broom")
  skip_if_not_installed("broom.mixed")
  skip_if_not_installed("lme4")
  for (case in lme4_cases()) for (reml in c(FALSE, TRUE)) {
    label <- paste(case$name, if (reml) "REML" else "ML")
    fit <- hnm_fit(one_way_formula(case), case$data, REML = reml)
    ref <- lmer_twin(fit, one_way_formula(case, TRUE), case$data, reml)  # as in the tidy test
    glanced <- broom::glance(fit)
    expected <- mixed(broom.mixed::glance, ref)
    expect_identical(names(glanced), names(expected), label = label)
    expect_equal(glanced, expected, tolerance = 1e-8, ignore_attr = TRUE, label = label)
    augmented <- broom::augment(fit)
    expected <- mixed(broom.mixed::augment, ref)
    expect_identical(names(augmented)[1:2], c(case$y, case$g), label = label)
    expect_equal(augmented$.fitted, expected$.fitted, tolerance = 1e-8, label = label)
    expect_equal(augmented$.resid, expected$.resid, tolerance = 1e-8, label = label)
    expect_equal(augmented$.fixed, expected$.fixed, tolerance = 1e-8, label = label)
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

test_that("augment reads the fit's own rows, not the data frame its call names", {
  skip_if_not_installed("broom")
  skip_if_not_installed("broom.mixed")
  skip_if_not_installed("lme4")
  control <- lme4::lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12))
  form <- Reaction ~ Days + (Days | Subject)
  columns <- c("Reaction", "Days", "Subject", ".fitted", ".resid", ".fixed")
  compare <- function(fit, ref, label) {
    expected <- mixed(broom.mixed::augment, ref)
    expect_equal(broom::augment(fit)[columns], expected[columns], tolerance = 1e-6,
                 ignore_attr = TRUE, label = label)
  }
  # The data frame changed after the fit: lme4's model frame keeps the values fitted.
  dat <- lme4::sleepstudy
  fit <- hnm_fit(form, dat)
  ref <- lme4::lmer(form, dat, REML = FALSE, control = control)
  dat$Reaction <- dat$Reaction + 100
  compare(fit, ref, "modified data")
  # Fitted inside lapply, where the call's `dd` names nothing once the fit is returned.
  halves <- split(lme4::sleepstudy, lme4::sleepstudy$Days < 5)
  fits <- lapply(halves, function(dd) hnm_fit(form, dd))
  refs <- lapply(halves, function(dd) lme4::lmer(form, dd, REML = FALSE, control = control))
  for (i in seq_along(fits)) compare(fits[[i]], refs[[i]], names(halves)[i])
})
