# insight, performance, parameters and emmeans on hnm fits: each result equals what the same
# package gives for the equivalent lme4::lmer fit (the reference), through the methods hnm
# registers (R/ecosystem.R).

# Each case's lmer twin is lme4's fit at hnm's theta (lmer_at_theta, helper-lmm.R): the
# packages' formulas are compared at one optimum, so the tolerances are those of rounding, not
# of how close lme4's optimiser stops (that hnm's optimum is exact is test-lme4-agreement.R's).
ecosystem_cases <- function() {
  cases <- lme4_cases()
  # ML (hnm's default) and REML fits of every case, each with its lmer twin.
  unlist(lapply(cases, function(case) {
    lapply(c(FALSE, TRUE), function(reml) {
      fit <- hnm_fit(one_way_formula(case), case$data, REML = reml)
      env <- list2env(list(data = case$data))
      call <- bquote(lme4::lmer(.(one_way_formula(case, TRUE)), data, REML = .(reml)))
      c(case, list(reml = reml,
                   label = sprintf("%s (%s)", case$name, if (reml) "REML" else "ML"),
                   fit = fit, ref = lmer_at_theta(call, getME(fit, "theta"), env)))
    })
  }), recursive = FALSE)
}

test_that("insight: find_formula, get_parameters and get_variance are lmer's", {
  skip_if_not_installed("insight")
  skip_if_not_installed("lme4")
  for (case in ecosystem_cases()) {
    label <- case$label
    found <- insight::find_formula(case$fit)
    expected <- insight::find_formula(case$ref)
    expect_s3_class(found, "insight_formula")
    expect_identical(names(found), names(expected), label = label)
    expect_identical(lapply(found, deparse), lapply(expected, deparse), label = label)
    expect_equal(insight::get_parameters(case$fit), insight::get_parameters(case$ref),
                 tolerance = 1e-8, label = label)
    random <- insight::get_parameters(case$fit, effects = "random")
    ref_random <- insight::get_parameters(case$ref, effects = "random")
    expect_identical(names(random), names(ref_random), label = label)
    expect_equal(unname(as.matrix(random[[1]])), unname(as.matrix(ref_random[[1]])),
                 tolerance = 1e-8, label = label)
    variance <- suppressWarnings(insight::get_variance(case$fit))
    ref_variance <- suppressWarnings(insight::get_variance(case$ref))
    expect_identical(names(variance), names(ref_variance), label = label)
    # var.random is tau^2: lme4's optimiser stops within ~1e-9 of hnm's exact 0 on Dyestuff2.
    expect_equal(variance, ref_variance, tolerance = 1e-8, label = label)
  }
})

test_that("insight::get_variance is the closed form of the one-way model", {
  skip_if_not_installed("insight")
  fit <- hnm_fit(y ~ 1 | g, wheat)
  v <- insight::get_variance(fit)
  expect_identical(v$var.fixed, 0)
  expect_equal(v$var.random, tau2_of(fit), tolerance = 1e-12)
  expect_equal(v$var.residual, sigma2_of(fit), tolerance = 1e-12)
  expect_equal(v$var.intercept, c(g = tau2_of(fit)), tolerance = 1e-12)
  expect_equal(insight::get_variance(fit, component = "random"), list(var.random = tau2_of(fit)),
               tolerance = 1e-12)
  expect_error(insight::get_variance(fit, extra = 1), "`extra`", class = "hnm_error")
})

test_that("performance: icc, r2 (Nakagawa) and check_singularity are lmer's", {
  skip_if_not_installed("performance")
  skip_if_not_installed("lme4")
  for (case in ecosystem_cases()) {
    label <- case$label
    icc <- suppressWarnings(performance::icc(case$fit))
    ref_icc <- suppressWarnings(performance::icc(case$ref))
    # On Dyestuff2 (tau^2 = 0) performance returns NA for lmer and for hnm alike.
    expect_equal(unclass(icc), unclass(ref_icc), tolerance = 1e-8, label = label)
    # performance prints a note (not a condition) where the random variance is unavailable.
    utils::capture.output(r2 <- suppressWarnings(performance::r2(case$fit)),
                          ref_r2 <- suppressWarnings(performance::r2(case$ref)))
    expect_s3_class(r2, "r2_nakagawa")
    expect_equal(unclass(r2), unclass(ref_r2), tolerance = 1e-8, label = label)
    expect_identical(performance::check_singularity(case$fit),
                     performance::check_singularity(case$ref), label = label)
  }
  # Dyestuff2 is the singular case, and hnm's boundary is exact.
  expect_true(performance::check_singularity(hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff2)))
  expect_false(performance::check_singularity(hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff)))
  # Closed form: ICC = tau^2 / (tau^2 + sigma^2) for the one-way model.
  fit <- hnm_fit(y ~ 1 | g, wheat)
  expect_equal(performance::icc(fit)$ICC_adjusted, tau2_of(fit) / (tau2_of(fit) + sigma2_of(fit)),
               tolerance = 1e-12)
})

test_that("parameters::model_parameters is lmer's", {
  skip_if_not_installed("parameters")
  skip_if_not_installed("lme4")
  columns <- c("Parameter", "Coefficient", "SE", "CI", "CI_low", "CI_high", "t", "df_error",
               "p", "Effects", "Group")
  for (case in ecosystem_cases()) {
    label <- case$label
    mp <- parameters::model_parameters(case$fit)
    ref <- suppressMessages(parameters::model_parameters(case$ref))
    expect_s3_class(mp, "parameters_model")
    expect_identical(names(mp), columns, label = label)
    expect_equal(as.data.frame(mp)[columns], as.data.frame(ref)[columns], tolerance = 1e-8,
                 ignore_attr = TRUE, label = label)
    fixed <- parameters::model_parameters(case$fit, effects = "fixed", ci = 0.9)
    ref_fixed <- suppressMessages(parameters::model_parameters(case$ref, effects = "fixed",
                                                               ci = 0.9))
    expect_equal(fixed$CI_low, ref_fixed$CI_low, tolerance = 1e-8, label = label)
  }
  fit <- hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff)
  expect_output(suppressMessages(print(parameters::model_parameters(fit))),
                "SD \\(Intercept: Batch\\)")
  expect_error(parameters::model_parameters(fit, bootstrap = TRUE), "`bootstrap`",
               class = "hnm_error")
  expect_error(parameters::model_parameters(fit, ci = 2), "ci", class = "hnm_error")
})

test_that("emmeans on the fixed effects is lmer's with asymptotic degrees of freedom", {
  skip_if_not_installed("emmeans")
  skip_if_not_installed("lme4")
  for (case in ecosystem_cases()) {
    label <- case$label
    emm <- as.data.frame(summary(emmeans::emmeans(case$fit, ~ 1, lmer.df = "asymptotic")))
    ref <- as.data.frame(summary(emmeans::emmeans(case$ref, ~ 1, lmer.df = "asymptotic")))
    expect_equal(emm, ref, tolerance = 1e-8, ignore_attr = TRUE, label = label)
  }
  fit <- hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff)
  expect_error(emmeans::emmeans(fit, ~ 1, lmer.df = "kenward-roger"), "Kenward-Roger",
               class = "hnm_error_argument")
  anova_fit <- hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff, method = "ANOVA")
  expect_identical(summary(emmeans::emmeans(anova_fit, ~ 1))$df, Inf)
  expect_error(emmeans::emmeans(anova_fit, ~ 1, lmer.df = "satterthwaite"), "asymptotic",
               class = "hnm_error_argument")
})

test_that("emmeans' degrees of freedom are lmerTest's and pbkrtest's, by default emmeans' for lmer", {
  skip_if_not_installed("emmeans")
  skip_if_not_installed("lmerTest")
  skip_if_not_installed("pbkrtest")
  d <- simulate_lmm(4, m = 15, balanced = FALSE)
  for (reml in c(FALSE, TRUE)) {
    fit <- hnm_fit(y ~ x + f + (x | g), d, REML = reml)
    twin <- lmertest_twin(fit, y ~ x + f + (x | g), d, REML = reml)
    ours <- as.data.frame(summary(emmeans::emmeans(fit, ~ f, lmer.df = "satterthwaite")))
    theirs <- as.data.frame(summary(emmeans::emmeans(twin, ~ f, lmer.df = "satterthwaite")))
    # By default: emmeans' for lmer, Kenward-Roger's (pbkrtest's) for a REML fit; for an ML
    # fit, whose Kenward-Roger's hnm does not give, Satterthwaite's.
    by_default <- as.data.frame(summary(emmeans::emmeans(fit, ~ f)))
    expected <- if (reml) as.data.frame(summary(emmeans::emmeans(twin, ~ f))) else theirs
    expect_equal(by_default$SE, expected$SE, tolerance = 1e-6)
    expect_equal(by_default$df, expected$df, tolerance = 1e-4)
    if (reml) expect_gt(abs(by_default$df[1] - ours$df[1]), 1e-3)
    expect_equal(ours$emmean, theirs$emmean, tolerance = 1e-8)
    expect_equal(ours$SE, theirs$SE, tolerance = 1e-8)
    # lmerTest's df come from numerical derivatives at the same theta: equal to 1e-4.
    expect_equal(ours$df, theirs$df, tolerance = 1e-4)
    pairs_ours <- as.data.frame(summary(pairs(emmeans::emmeans(fit, ~ f, lmer.df = "satterthwaite"))))
    pairs_theirs <- as.data.frame(summary(pairs(emmeans::emmeans(twin, ~ f,
                                                                  lmer.df = "satterthwaite"))))
    expect_equal(pairs_ours$df, pairs_theirs$df, tolerance = 1e-4)
    expect_equal(pairs_ours$p.value, pairs_theirs$p.value, tolerance = 1e-4)
  }
})

# The general model (fixed covariates, random slopes). Even converged tightly (bobyqa,
# rhoend = 1e-12), lme4 stops where the likelihood is flat up to 1e-5 (relative) from the
# optimum in theta (the NELS slope-intercept correlation: 0.0511394 against 0.0511399 with
# deviances equal to 1e-10), so the twin compared with is lme4's fit at hnm's theta, and the
# tight fit only checks that hnm's optimum is no worse.
# Fitted in the caller's environment, where the data are, as a user fits them: emmeans finds
# the data from the fit's call (`data = sleepstudy`), as it does for lmer.
general_cases <- function(env = parent.frame()) {
  control <- lme4::lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5))
  env$sleepstudy <- lme4::sleepstudy
  env$nels <- nels
  cases <- list(list(call = quote(hnm_fit(Reaction ~ Days + (Days | Subject), sleepstudy)),
                     slope = "Days"),
                list(call = quote(hnm_fit(mscore ~ flp + enroll + ses + (ses | school), nels)),
                     slope = "ses"))
  lapply(cases, function(case) {
    fit <- tryCatch(eval(case$call, env), error = function(e) NULL)
    skip_if(is.null(fit), "this hnm fits only the one-way model")
    ref <- case$call
    ref[[1L]] <- quote(lme4::lmer)
    ref$REML <- FALSE
    tight <- ref
    tight$control <- control
    c(case, list(formula = formula(fit), fit = fit, tight = eval(tight, env),
                 ref = lmer_at_theta(ref, getME(fit, "theta"), env)))
  })
}

test_that("the ecosystem on models with covariates and random slopes is lmer's", {
  for (package in c("lme4", "insight", "performance", "parameters", "emmeans", "broom",
                    "broom.mixed")) {
    skip_if_not_installed(package)
  }
  for (case in general_cases()) {
    label <- deparse(case$formula)
    fit <- case$fit
    ref <- case$ref
    # hnm's optimum is no worse than lme4's converged tightly; its deviance at its theta is
    # lme4's deviance function's there.
    expect_lte(deviance(fit), deviance(case$tight) + 1e-7, label = label)
    expect_equal(deviance(fit), deviance(ref), tolerance = 1e-12, label = label)
    expect_identical(lapply(insight::find_formula(fit), deparse),
                     lapply(insight::find_formula(ref), deparse), label = label)
    expect_equal(insight::get_parameters(fit), insight::get_parameters(ref), tolerance = 1e-8,
                 label = label)
    expect_equal(insight::get_variance(fit), insight::get_variance(ref), tolerance = 1e-8,
                 label = label)
    expect_equal(unclass(performance::icc(fit)), unclass(performance::icc(ref)),
                 tolerance = 1e-8, label = label)
    expect_equal(unclass(performance::r2(fit)), unclass(performance::r2(ref)),
                 tolerance = 1e-8, label = label)
    expect_identical(performance::check_singularity(fit), performance::check_singularity(ref),
                     label = label)
    columns <- c("Parameter", "Coefficient", "SE", "CI_low", "CI_high", "t", "df_error", "p",
                 "Effects", "Group")
    expect_equal(as.data.frame(parameters::model_parameters(fit))[columns],
                 as.data.frame(suppressMessages(parameters::model_parameters(ref)))[columns],
                 tolerance = 1e-8, ignore_attr = TRUE, label = label)
    trend <- as.data.frame(summary(emmeans::emtrends(fit, ~ 1, var = case$slope,
                                                   lmer.df = "asymptotic")))
    ref_trend <- as.data.frame(summary(emmeans::emtrends(ref, ~ 1, var = case$slope,
                                                         lmer.df = "asymptotic")))
    expect_equal(trend, ref_trend, tolerance = 1e-8, ignore_attr = TRUE, label = label)
    at <- setNames(list(c(0, 2, 5)), case$slope)
    means <- as.data.frame(summary(emmeans::emmeans(fit, case$slope, at = at,
                                                    lmer.df = "asymptotic")))
    ref_means <- as.data.frame(summary(emmeans::emmeans(ref, case$slope, at = at,
                                                        lmer.df = "asymptotic")))
    expect_equal(means, ref_means, tolerance = 1e-8, ignore_attr = TRUE, label = label)
    for (args in list(list(conf.int = TRUE), list(effects = "ran_pars", scales = "vcov"),
                      list(effects = "ran_vals"), list(effects = "ran_coefs"))) {
      what <- paste(label, deparse(args))
      tidied <- do.call(broom::tidy, c(list(fit), args))
      expected <- as.data.frame(do.call(broom.mixed::tidy, c(list(ref), args)))
      if (isTRUE(args$conf.int)) {
        # lme4's Wald intervals of the variance parameters are NA; hnm's are real ones (its
        # confint(method = "Wald"), tested in test-wald-variance.R) around the estimates.
        na <- is.na(expected$conf.low)
        expect_true(any(na) && all(tidied$conf.low[na] <= tidied$estimate[na] &
                                     tidied$estimate[na] <= tidied$conf.high[na]), label = what)
        tidied[na, c("conf.low", "conf.high")] <- NA_real_
      }
      expect_identical(names(tidied), names(expected), label = what)
      text <- intersect(names(expected), c("effect", "group", "level", "term"))
      expect_identical(tidied[text], expected[text], label = what)
      numbers <- setdiff(names(expected), text)
      expect_equal(tidied[numbers], expected[numbers], tolerance = 1e-8, label = what)
    }
    expect_equal(broom::glance(fit), as.data.frame(broom.mixed::glance(ref)), tolerance = 1e-8,
                 ignore_attr = TRUE, label = label)
    augmented <- broom::augment(fit)
    expected <- as.data.frame(broom.mixed::augment(ref))
    expect_identical(names(augmented)[seq_len(ncol(augmented) - 3L)],
                     names(expected)[seq_len(ncol(augmented) - 3L)], label = label)
    for (column in c(".fitted", ".resid", ".fixed")) {
      expect_equal(augmented[[column]], expected[[column]], tolerance = 1e-8, label = label)
    }
  }
})

# Crossed factors with a random slope: 12 levels of `a` (intercept and slope on x) crossed
# with 8 of `b` (intercept), three replicates of each cell; `f` is a 3-level factor.
crossed_data <- function() {
  set.seed(21)
  d <- expand.grid(rep = 1:3, a = factor(1:12), b = factor(1:8))
  d$x <- rnorm(nrow(d))
  d$f <- factor(sample(c("lo", "mid", "hi"), nrow(d), replace = TRUE))
  u <- matrix(rnorm(24), 12) %*% chol(matrix(c(1, 0.4, 0.4, 0.5), 2))
  d$y <- 2 + 0.5 * d$x + c(0, 0.3, -0.4)[as.integer(d$f)] + u[d$a, 1] + u[d$a, 2] * d$x +
    0.7 * rnorm(8)[d$b] + rnorm(nrow(d))
  d
}

# lme4's fit of the same model, converged tightly (the reference of the tests below).
tight_reference <- function(formula, data, REML) {
  control <- lme4::lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12))
  suppressMessages(lme4::lmer(formula, data, REML = REML, control = control))
}

test_that("insight sees every random-effects term, crossed, nested and uncorrelated, as lmer's", {
  skip_if_not_installed("insight")
  skip_if_not_installed("lme4")
  d <- crossed_data()
  cases <- list(list(formula = diameter ~ 1 + (1 | plate) + (1 | sample), data = lme4::Penicillin),
                list(formula = y ~ x + f + (x | a) + (1 | b), data = d),
                list(formula = y ~ f + (x || a) + (1 | b), data = d),
                list(formula = strength ~ 1 + (1 | batch/cask), data = lme4::Pastes))
  formulas <- function(found) {
    lapply(found, function(part) if (is.list(part)) lapply(part, deparse) else deparse(part))
  }
  for (case in cases) {
    label <- deparse(case$formula)
    fit <- hnm_fit(case$formula, case$data, REML = TRUE)
    ref <- tight_reference(case$formula, case$data, TRUE)
    expect_identical(formulas(insight::find_formula(fit)), formulas(insight::find_formula(ref)),
                     label = label)
    for (f in list(insight::find_random, insight::find_random_slopes, insight::find_predictors,
                   insight::find_variables, insight::find_terms)) {
      expect_identical(f(fit), f(ref), label = label)
    }
    random <- insight::get_random(fit)
    ref_random <- insight::get_random(ref)
    expect_identical(names(random), names(ref_random), label = label)
    expect_equal(random, ref_random, ignore_attr = TRUE, label = label)
    # From the model frames (whether insight finds the call's data in the environment depends
    # on where each fit was made, not on the model).
    data <- insight::get_data(fit, source = "frame")
    ref_data <- insight::get_data(ref, source = "frame")
    expect_identical(names(data), names(ref_data), label = label)
    expect_equal(data, ref_data, ignore_attr = TRUE, label = label)
  }
})

test_that("model_info, get_predicted, model_performance and check_convergence are lmer's", {
  for (package in c("lme4", "insight", "performance")) skip_if_not_installed(package)
  for (reml in c(FALSE, TRUE)) {
    label <- if (reml) "REML" else "ML"
    fit <- hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy, REML = reml)
    ref <- tight_reference(Reaction ~ Days + (Days | Subject), lme4::sleepstudy, reml)
    expect_identical(insight::model_info(fit), insight::model_info(ref), label = label)
    expect_equal(as.numeric(insight::get_predicted(fit)), as.numeric(insight::get_predicted(ref)),
                 tolerance = 1e-6, label = label)
    expect_equal(performance::performance_aic(fit), performance::performance_aic(ref),
                 tolerance = 1e-8, label = label)
    expect_equal(as.data.frame(performance::model_performance(fit)),
                 as.data.frame(performance::model_performance(ref)), tolerance = 1e-6,
                 label = label)
    expect_identical(isTRUE(performance::check_convergence(fit)),
                     isTRUE(performance::check_convergence(ref)), label = label)
  }
  expect_identical(stats::family(fit), stats::family(ref))
  expect_error(performance::check_convergence(fit, tolerance = 1e-4), "`tolerance`",
               class = "hnm_error")
})

test_that("parameters::random_parameters is lmer's", {
  skip_if_not_installed("parameters")
  skip_if_not_installed("lme4")
  d <- crossed_data()
  for (formula in list(Reaction ~ Days + (Days | Subject), y ~ x + f + (x | a) + (1 | b))) {
    data <- if (identical(formula[[2L]], quote(Reaction))) lme4::sleepstudy else d
    fit <- hnm_fit(formula, data, REML = TRUE)
    ref <- tight_reference(formula, data, TRUE)
    expect_equal(as.data.frame(parameters::random_parameters(fit)),
                 as.data.frame(parameters::random_parameters(ref)), tolerance = 1e-5,
                 label = deparse(formula))
  }
  expect_error(insight::get_variance(fit, model_component = "zi"), "conditional",
               class = "hnm_error_argument")
})

test_that("get_variance and r2 with a random slope whose covariate is not fixed are lmer's", {
  for (package in c("lme4", "insight", "performance")) skip_if_not_installed(package)
  d <- crossed_data()
  for (formula in list(y ~ f + (x | a) + (1 | b), y ~ 0 + f + (x | a) + (1 | b))) {
    label <- deparse(formula)
    fit <- hnm_fit(formula, d, REML = TRUE)
    ref <- tight_reference(formula, d, TRUE)
    # insight leaves out the slope's rows z_i (the covariate is not in X) and warns.
    expect_warning(variance <- insight::get_variance(fit), "not present as fixed effects")
    expect_equal(variance, suppressWarnings(insight::get_variance(ref)), tolerance = 1e-5,
                 label = label)
    expect_equal(unclass(suppressWarnings(performance::r2(fit))),
                 unclass(suppressWarnings(performance::r2(ref))), tolerance = 1e-5,
                 label = label)
  }
})

test_that("insight's degrees of freedom, statistics, log-likelihoods and parameters are lmer's", {
  skip_if_not_installed("insight")
  skip_if_not_installed("lme4")
  for (reml in c(FALSE, TRUE)) {
    label <- if (reml) "REML" else "ML"
    fit <- hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy, REML = reml)
    ref <- tight_reference(Reaction ~ Days + (Days | Subject), lme4::sleepstudy, reml)
    for (type in c("residual", "model", "analytical", "normal", "wald")) {
      expect_identical(insight::get_df(fit, type = type), insight::get_df(ref, type = type),
                       label = paste(label, type))
    }
    expect_equal(insight::get_statistic(fit), insight::get_statistic(ref), tolerance = 1e-6,
                 label = label)
    # The fit's own criterion, and with REML = TRUE the REML criterion (of an ML fit at its
    # estimates, as lme4's logLik(REML = TRUE)).
    for (args in list(list(), list(REML = TRUE), list(estimator = "REML"))) {
      ll <- do.call(insight::get_loglikelihood, c(list(fit), args))
      ref_ll <- do.call(insight::get_loglikelihood, c(list(ref), args))
      expect_equal(c(ll), c(ref_ll), tolerance = 1e-8, label = paste(label, deparse(args)))
      expect_identical(attr(ll, "df"), attr(ref_ll, "df"), label = label)
    }
    for (effects in c("fixed", "random")) {
      expect_identical(insight::n_parameters(fit, effects = effects),
                       insight::n_parameters(ref, effects = effects), label = label)
    }
    expect_identical(insight::find_parameters(fit), insight::find_parameters(ref), label = label)
  }
  # A REML fit's ML likelihood is lme4's at its estimates; Satterthwaite's df are anova()'s.
  expect_equal(c(insight::get_loglikelihood(fit, estimator = "ML")),
               c(insight::get_loglikelihood(ref, estimator = "ML")), tolerance = 1e-6)
  expect_error(insight::get_predicted(fit, ci = 0.95), "interval", class = "hnm_error_argument")
  expect_error(insight::get_df(fit, type = "satterthwaite"), "residual",
               class = "hnm_error_argument")
})
