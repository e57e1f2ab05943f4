# Arguments lme4 users pass to predict(), simulate() and ranef() are honoured or refused with
# a clear error, never swallowed (one-way and general fits alike).

test_that("predict(type, se.fit), simulate(use.u, re.form, newdata) and ranef(drop, whichel)", {
  skip_if_not_installed("lme4")
  d <- lme4::Dyestuff
  fits <- list(one_way = hnm_fit(Yield ~ 1 | Batch, d),
               general = hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy))
  # lme4's fits at hnm's θ (lmer_twin, helper-lmm.R), compared to rounding: lme4's own stop
  # is 3e-5 from the optimum in θ on sleepstudy, which moves the BLUPs (use.u) by 2e-5.
  refs <- list(one_way = lmer_twin(fits$one_way, Yield ~ 1 + (1 | Batch), d),
               general = lmer_twin(fits$general, Reaction ~ Days + (Days | Subject),
                                   lme4::sleepstudy))
  for (name in names(fits)) {
    fit <- fits[[name]]
    ref <- refs[[name]]
    expect_equal(predict(fit, type = "response"), unname(predict(ref, type = "response")),
                 tolerance = 1e-8, label = name)
    expect_error(predict(fit, type = "terms"), "should be one of", label = name)
    expect_error(predict(fit, se.fit = "yes"), "`se.fit` must be TRUE or FALSE", class = "hnm_error")
    expect_error(predict(fit, interval = "confidence", intervals = TRUE), "unused argument",
                 class = "hnm_error")
    # use.u = TRUE and re.form = NULL condition on the conditional modes, as lme4's.
    expect_equal(as.matrix(simulate(fit, nsim = 2, seed = 5, use.u = TRUE)),
                 as.matrix(simulate(ref, nsim = 2, seed = 5, use.u = TRUE)), tolerance = 1e-8,
                 ignore_attr = TRUE, label = name)
    expect_equal(as.matrix(simulate(fit, seed = 5, re.form = NULL)),
                 as.matrix(simulate(ref, seed = 5, re.form = NULL)), tolerance = 1e-8,
                 ignore_attr = TRUE, label = name)
    expect_error(simulate(fit, newdata = d), "newdata", class = "hnm_error")
    expect_error(simulate(fit, family = "binomial"), "unused argument", class = "hnm_error")
    # drop = TRUE: a factor's one column a named vector (postVar a vector), as lme4's.
    for (cond_var in c(TRUE, FALSE)) {
      ours <- ranef(fit, condVar = cond_var, drop = TRUE)
      theirs <- lme4::ranef(ref, condVar = cond_var, drop = TRUE)
      expect_identical(names(ours), names(theirs), label = name)
      for (g in names(ours)) {
        expect_equal(ours[[g]], theirs[[g]], tolerance = 1e-8, label = paste(name, cond_var))
      }
    }
    expect_error(ranef(fit, drop = NA), "`drop` must be TRUE or FALSE", class = "hnm_error")
    expect_error(ranef(fit, whichel = "nope"), "whichel", class = "hnm_error")
    expect_identical(names(ranef(fit, whichel = fit$group_name)), fit$group_name)
    # lme4's older name of condVar, with lme4's warning (test-ranef.R).
    expect_warning(ranef(fit, postVar = TRUE), "'postVar' is deprecated")
    expect_error(isSingular(fit, tol = "a"), "one non-negative number", class = "hnm_error")
  }
  # lme4's as.data.frame() fails on a dropped vector; hnm's names the cause.
  expect_error(as.data.frame(lme4::ranef(refs$one_way, drop = TRUE)))
  expect_error(as.data.frame(ranef(fits$one_way, drop = TRUE)), "drop = FALSE",
               class = "hnm_error_argument")
  one_way <- predict(fits$one_way, newdata = d[1:3, ], re.form = NA, se.fit = TRUE)
  expect_equal(one_way$se.fit, rep(sqrt(c(vcov(fits$one_way))), 3))
})

# Every S3 method hnm registers, called with an argument it does not have: an error naming
# it, never silently ignored as R's default methods would. The methods are read from the
# package's own registration, so a new method is tested (and a new class must be given an
# object here). plot() methods pass `...` to graphics as graphical parameters, and lattice's
# (dotplot, qqmath, xyplot, densityplot, splom) to lme4's plots and lattice; the default
# methods forward to lme4's.
test_that("every registered method refuses an argument it does not use", {
  skip_if_not_installed("lme4")
  one_way <- hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff)
  general <- hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  smaller <- hnm_fit(Reaction ~ Days + (1 | Subject), lme4::sleepstudy)
  objects <- list(
    hnm_fit = one_way, VarCorr.hnm = VarCorr(general),
    ranef.hnm = ranef(general), summary.hnm_fit = summary(general),
    hnm_profile = profile(one_way), hnm_stats = hnm_stats(Yield ~ 1 | Batch, lme4::Dyestuff),
    hnm_bootstrap = bootstrap(general, nsim = 3, seed = 1, quiet = TRUE),
    hnm_bootstrap_lrt = bootstrap_lrt(smaller, general, nsim = 3, seed = 1, quiet = TRUE),
    hnm_boot_confint = confint(one_way, method = "boot", nsim = 3, seed = 1, quiet = TRUE),
    hnm_wald_confint = confint(one_way, method = "Wald"), hnm_ranova = ranova(general))
  needs <- list(getME = list(name = "theta"), confint = list(method = "Wald"))
  methods <- getNamespaceInfo(asNamespace("hnm"), "S3methods")
  tested <- 0L
  for (i in seq_len(nrow(methods))) {
    generic <- methods[i, 1L]
    class <- methods[i, 2L]
    lattice <- c("dotplot", "qqmath", "xyplot", "densityplot", "splom")
    if (class == "default" || generic %in% c("plot", lattice)) next
    label <- paste0(generic, ".", class)
    expect_true(class %in% names(objects), label = paste(label, "has a test object"))
    f <- get(generic, envir = asNamespace("hnm"))
    # One class for every fit (issue 22): its methods are called on a one-way and a general fit.
    for (object in if (class == "hnm_fit") list(one_way, general) else objects[class]) {
      args <- c(list(object), needs[[generic]])
      expect_error(suppressMessages(do.call(f, c(args, list(foo_arg = 1)))),
                   "unused argument.*foo_arg", label = label)
      tested <- tested + 1L
    }
  }
  expect_gt(tested, 55L)
})

test_that("lme4's arguments of the accessors are honoured or refused (issue 25)", {
  skip_if_not_installed("lme4")
  d <- lme4::sleepstudy
  control <- lme4::lmerControl(optimizer = "bobyqa",
                               optCtrl = list(rhoend = 1e-12, maxfun = 1e5))
  fit <- hnm_fit(Reaction ~ Days + (Days | Subject), d)
  ref <- lme4::lmer(Reaction ~ Days + (Days | Subject), d, REML = FALSE, control = control)
  # summary(ddf =): lmerTest's choices; "lme4" is lme4's table, Kenward-Roger refused for
  # this ML fit (lmerTest's rule).
  expect_error(summary(fit, ddf = "nonsense"), "`ddf` must be one of", class = "hnm_error")
  expect_error(summary(fit, ddf = "Kenward-Roger"), "only available for REML",
               class = "hnm_error_argument")
  expect_error(summary(fit, foo = 1), "unused argument.*foo", class = "hnm_error_unused_argument")
  expect_equal(coef(summary(fit, ddf = "lme4")), coef(summary(ref)), tolerance = 1e-6)
  expect_identical(colnames(coef(summary(fit))),
                   c("Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"))
  expect_error(fixef(fit, bar = 2), "unused argument.*bar", class = "hnm_error_unused_argument")
  # VarCorr(sigma =) scales as lme4's: the covariances for residual SD `sigma`.
  expect_equal(as.data.frame(VarCorr(fit, sigma = 1))$vcov,
               as.data.frame(VarCorr(ref, sigma = 1))$vcov, tolerance = 1e-5)
  expect_equal(as.data.frame(VarCorr(fit, sigma = 1))$sdcor,
               as.data.frame(VarCorr(ref, sigma = 1))$sdcor, tolerance = 1e-5)
  expect_error(VarCorr(fit, sigma = -1), "positive", class = "hnm_error")
  # formula(fixed.only, random.only) and model.frame(fixed.only) as lme4's.
  for (which in list(list(fixed.only = TRUE), list(random.only = TRUE), list())) {
    expect_equal(do.call(formula, c(list(fit), which)), do.call(formula, c(list(ref), which)),
                 ignore_attr = TRUE, label = deparse1(which))
  }
  expect_equal(names(model.frame(fit, fixed.only = TRUE)),
               names(model.frame(ref, fixed.only = TRUE)))
  # logLik/deviance(REML =): the fit's own criterion, or lme4's other one at the estimates.
  expect_equal(c(logLik(fit, REML = FALSE)), c(logLik(ref)), tolerance = 1e-7)
  expect_equal(deviance(fit, REML = TRUE), lme4::REMLcrit(ref), tolerance = 1e-7)
  expect_error(deviance(fit, REML = NA), "NULL, TRUE or FALSE", class = "hnm_error_argument")
  expect_identical(nobs(fit, use.fallback = TRUE), 180L)
  expect_error(anova(fit, refit = FALSE), "unused argument.*refit", class = "hnm_error")
  expect_error(anova(fit, fit, model.names = c("a", "b")), "unused argument.*model.names",
               class = "hnm_error")
  # fixef(add.dropped = TRUE): lme4's full vector with NA for the aliased columns.
  d$Days2 <- 2 * d$Days
  aliased <- suppressMessages(hnm_fit(Reaction ~ Days + Days2 + (1 | Subject), d))
  aliased_ref <- suppressMessages(lme4::lmer(Reaction ~ Days + Days2 + (1 | Subject), d,
                                             REML = FALSE, control = control))
  expect_equal(fixef(aliased, add.dropped = TRUE), fixef(aliased_ref, add.dropped = TRUE),
               tolerance = 1e-6)
  expect_identical(names(fixef(aliased)), names(fixef(aliased_ref)))
})

test_that("deviance() and logLik() with the other REML give lme4's criterion at the estimates", {
  skip_if_not_installed("lme4")
  set.seed(3)
  sleep <- lme4::sleepstudy
  sleep$w <- runif(nrow(sleep), 0.5, 2)
  cases <- list(
    list(Reaction ~ Days + (Days | Subject), sleep, NULL),
    list(Reaction ~ Days + (Days | Subject), sleep, sleep$w),
    list(diameter ~ 1 + (1 | plate) + (1 | sample), lme4::Penicillin, NULL),
    list(strength ~ 1 + (1 | batch/cask), lme4::Pastes, NULL))
  for (case in cases) {
    for (reml in c(TRUE, FALSE)) {
      fit <- hnm_fit(case[[1]], case[[2]], REML = reml, weights = case[[3]])
      # lme4 at hnm's theta: its devCrit() of the other criterion there.
      ref <- suppressWarnings(lme4::lmer(case[[1]], case[[2]], REML = reml, weights = case[[3]],
                                         start = list(theta = getME(fit, "theta")),
                                         control = lme4::lmerControl(optimizer = NULL)))
      label <- sprintf("%s, REML = %s, weights: %s", deparse1(case[[1]]), reml,
                       !is.null(case[[3]]))
      expect_equal(deviance(fit, REML = !reml), lme4:::devCrit(ref, REML = !reml),
                   tolerance = 1e-8, label = label)
      expect_equal(c(logLik(fit, REML = !reml)), c(logLik(ref, REML = !reml)),
                   tolerance = 1e-8, label = label)
      expect_identical(attr(logLik(fit, REML = !reml), "df"),
                       attr(logLik(ref, REML = !reml), "df"))
    }
  }
  anova_fit <- hnm_fit(y ~ 1 | g, data.frame(y = c(1, 2, 4, 3, 6, 5), g = rep(1:3, each = 2)),
                       method = "ANOVA")
  expect_error(deviance(anova_fit, REML = TRUE), "ANOVA", class = "hnm_error_argument")
})
