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
    expect_error(predict(fit, se.fit = TRUE), "population predictions", class = "hnm_error")
    expect_error(predict(fit, interval = "confidence"), "unused argument", class = "hnm_error")
    # use.u = TRUE and re.form = NULL condition on the conditional modes, as lme4's.
    expect_equal(as.matrix(simulate(fit, nsim = 2, seed = 5, use.u = TRUE)),
                 as.matrix(simulate(ref, nsim = 2, seed = 5, use.u = TRUE)), tolerance = 1e-8,
                 ignore_attr = TRUE, label = name)
    expect_equal(as.matrix(simulate(fit, seed = 5, re.form = NULL)),
                 as.matrix(simulate(ref, seed = 5, re.form = NULL)), tolerance = 1e-8,
                 ignore_attr = TRUE, label = name)
    expect_error(simulate(fit, newdata = d), "newdata", class = "hnm_error")
    expect_error(simulate(fit, family = "binomial"), "unused argument", class = "hnm_error")
    expect_error(ranef(fit, drop = TRUE), "drop = TRUE", class = "hnm_error")
    expect_error(ranef(fit, whichel = "nope"), "whichel", class = "hnm_error")
    expect_identical(names(ranef(fit, whichel = fit$group_name)), fit$group_name)
    expect_error(ranef(fit, postVar = TRUE), "unused argument", class = "hnm_error")
    expect_error(isSingular(fit, tol = "a"), "one non-negative number", class = "hnm_error")
  }
  one_way <- predict(fits$one_way, newdata = d[1:3, ], re.form = NA, se.fit = TRUE)
  expect_equal(one_way$se.fit, rep(sqrt(c(vcov(fits$one_way))), 3))
})
