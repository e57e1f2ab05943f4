# lmer()'s prior weights, Var(e_i) = sigma^2 / w_i: the fit equals lme4's fit with the same
# weights (its criterion at its optimum with tight tolerances; its numbers at hnm's theta, where
# both sides are closed forms), and the methods that lme4 gets wrong or lacks for weighted fits
# (a weight of 0; the profile of beta; Kenward-Roger) equal lme4 and pbkrtest on the weighted
# model written out as an unweighted one, the rows scaled by sqrt(w_i).

weights_data <- function() {
  set.seed(24)
  d <- lme4::sleepstudy
  d$w <- runif(nrow(d), 0.2, 3)
  d
}

one_way_weights_data <- function() {
  set.seed(124)
  sizes <- sample(2:9, 14, replace = TRUE)
  g <- rep(seq_along(sizes), sizes)
  data.frame(g = factor(sprintf("g%02d", g)), y = 5 + rnorm(length(sizes))[g] + rnorm(length(g)),
             w = rexp(length(g)) + 0.1)
}

weights_cases <- function() {
  list(slopes = list(formula = Reaction ~ Days + (Days | Subject), data = weights_data()),
       one_way = list(formula = y ~ 1 + (1 | g), data = one_way_weights_data()),
       covariates = list(formula = y ~ x + z + (x | g), data = local({
         d <- simulate_lmm(7, m = 15, balanced = FALSE)
         set.seed(7)
         d$w <- rgamma(nrow(d), 2, 2)
         d
       })))
}

# lme4's weighted fit rebuilt at hnm's theta (lmer_at_theta), and lme4's own optimum.
weighted_twin <- function(fit, formula, data, REML) {
  call <- bquote(lme4::lmer(.(formula), data, REML = .(REML), weights = w))
  suppressMessages(lmer_at_theta(call, getME(fit, "theta"), list2env(list(data = data))))
}
# lme4's fit with bobyqa's tightest tolerance, weighted by the column `w` of `data` or not.
tight_lmer <- function(formula, data, REML, weighted = TRUE) {
  control <- lme4::lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5))
  suppressMessages(suppressWarnings(if (weighted) {
    lme4::lmer(formula, data, REML = REML, weights = w, control = control)
  } else {
    lme4::lmer(formula, data, REML = REML, control = control)
  }))
}

test_that("weighted fits are lme4's: criterion, logLik, beta, SE, theta, sigma, residuals, weights", {
  skip_if_not_installed("lme4")
  for (case in weights_cases()) for (REML in c(FALSE, TRUE)) {
    d <- case$data
    label <- paste(deparse1(case$formula), if (REML) "REML" else "ML")
    fit <- hnm_fit(case$formula, d, weights = w, REML = REML)
    exact <- tight_lmer(case$formula, d, REML)
    # hnm's optimum is lme4's (never worse), theta as far as the curvature fixes it.
    expect_lte(deviance(fit), lme4_criterion(exact) + 1e-7 * abs(lme4_criterion(exact)))
    expect_equal(deviance(fit), lme4_criterion(exact), tolerance = 1e-9, label = label)
    expect_equal(unname(getME(fit, "theta")), unname(lme4::getME(exact, "theta")),
                 tolerance = 1e-4, label = label)
    twin <- weighted_twin(fit, case$formula, d, REML)
    ours <- lmm_numbers(fit)
    theirs <- lmm_numbers(twin)
    for (name in names(ours)) {
      expect_equal(ours[[name]], theirs[[name]], tolerance = 1e-8, label = paste(label, name))
    }
    expect_equal(c(logLik(fit)), c(logLik(twin)), tolerance = 1e-10)
    expect_equal(REMLcrit(fit), lme4::REMLcrit(twin), tolerance = 1e-10)
    expect_equal(AIC(fit), AIC(twin), tolerance = 1e-10)
    for (type in c("response", "working", "pearson", "deviance")) {
      expect_equal(unname(residuals(fit, type = type)), unname(residuals(twin, type = type)),
                   tolerance = 1e-7, label = paste(label, type))
    }
    expect_equal(unname(residuals(fit, type = "pearson", scaled = TRUE)),
                 unname(residuals(twin, type = "pearson", scaled = TRUE)), tolerance = 1e-7)
    expect_equal(unname(fitted(fit)), unname(fitted(twin)), tolerance = 1e-9)
    expect_identical(weights(fit), stats::weights(twin))
    expect_identical(nobs(fit), nobs(twin))
    # The weights matter: the unweighted fit is another one.
    expect_gt(abs(deviance(fit) - deviance(hnm_fit(case$formula, d, REML = REML))), 1)
  }
})

test_that("the criterion is that of the rows scaled by sqrt(w) less sum(log(w))", {
  skip_if_not_installed("lme4")
  d <- weights_data()
  d$s <- sqrt(d$w)
  d$ys <- d$Reaction * d$s
  d$ds <- d$Days * d$s
  for (REML in c(FALSE, TRUE)) {
    fit <- hnm_fit(Reaction ~ Days + (Days | Subject), d, weights = w, REML = REML)
    scaled <- lmer_twin(fit, ys ~ 0 + s + ds + (0 + s + ds | Subject), d, REML)
    expect_equal(deviance(fit), lme4_criterion(scaled) - sum(log(d$w)), tolerance = 1e-10)
  }
  # The summary's scaled residuals are lme4's pearson residuals over sigma, as lme4 prints them.
  fit <- hnm_fit(Reaction ~ Days + (Days | Subject), d, weights = w)
  twin <- weighted_twin(fit, Reaction ~ Days + (Days | Subject), d, FALSE)
  expect_equal(unname(summary(fit)$residuals), unname(residuals(twin, "pearson", scaled = TRUE)),
               tolerance = 1e-7)
  expect_output(print(fit), "Weights: w")
})

test_that("Satterthwaite's df, anova and Kenward-Roger of a weighted fit are lmerTest's and pbkrtest's", {
  skip_if_not_installed("lmerTest")
  # lmerTest re-evaluates the twin's call, `lme4::lmer(..., data, weights = w)`, here.
  data <- weights_data()
  d <- data
  fit <- hnm_fit(Reaction ~ Days + (Days | Subject), d, weights = w, REML = TRUE)
  twin <- lmerTest::as_lmerModLmerTest(weighted_twin(fit, Reaction ~ Days + (Days | Subject), d, TRUE))
  expect_equal(unname(coef(summary(fit))[, "df"]), unname(coef(summary(twin))[, "df"]),
               tolerance = 1e-6)
  expect_equal(anova(fit)[["DenDF"]], anova(twin)[["DenDF"]], tolerance = 1e-6)
  expect_equal(anova(fit)[["F value"]], anova(twin)[["F value"]], tolerance = 1e-8)
  skip_if_not_installed("pbkrtest")
  # pbkrtest reads no weights: its reference is the scaled model, unweighted.
  d$s <- sqrt(d$w)
  d$ys <- d$Reaction * d$s
  d$ds <- d$Days * d$s
  scaled <- lmer_twin(fit, ys ~ 0 + s + ds + (0 + s + ds | Subject), d, TRUE)
  expect_equal(unname(vcov_kenward_roger(fit)), unname(as.matrix(pbkrtest::vcovAdj(scaled))),
               tolerance = 1e-7)
  kr <- coef(summary(fit, ddf = "Kenward-Roger"))[, "df"]
  expect_equal(unname(kr), c(pbkrtest::get_Lb_ddf(scaled, c(1, 0)),
                             pbkrtest::get_Lb_ddf(scaled, c(0, 1))), tolerance = 1e-6)
})

test_that("the profile of a weighted fit is lme4's profile of the scaled rows", {
  skip_if_not_installed("lme4")
  skip_on_cran()
  d <- weights_data()
  d$s <- sqrt(d$w)
  d$ys <- d$Reaction * d$s
  d$ds <- d$Days * d$s
  fit <- hnm_fit(Reaction ~ Days + (Days | Subject), d, weights = w)
  # lme4's own profile of the weighted fit is not monotone in beta (lme4 1.1-31): the
  # reference is the same model without weights, on the scaled rows.
  scaled <- tight_lmer(ys ~ 0 + s + ds + (0 + s + ds | Subject), d, FALSE, weighted = FALSE)
  theirs <- suppressWarnings(confint(scaled, method = "profile", oldNames = TRUE))
  ours <- confint(fit, method = "profile")
  expect_equal(unname(ours), unname(theirs), tolerance = 1e-4)
})

test_that("predict, refit, anova and drop1 of weighted fits are lme4's", {
  skip_if_not_installed("lme4")
  d <- weights_data()
  formula <- Reaction ~ Days + (Days | Subject)
  fit <- hnm_fit(formula, d, weights = w)
  twin <- weighted_twin(fit, formula, d, FALSE)
  # The model matrices are the data's, unscaled, as lme4's.
  skip_if_not_installed("Matrix")
  expect_equal(unname(as.matrix(getME(fit, "X"))), unname(as.matrix(lme4::getME(twin, "X"))),
               ignore_attr = TRUE)
  expect_equal(unname(as.matrix(getME(fit, "Z"))), unname(as.matrix(lme4::getME(twin, "Z"))),
               ignore_attr = TRUE)
  new <- data.frame(Days = c(0.5, 4, 9), Subject = c("308", "335", "372"))
  expect_equal(unname(predict(fit, new)), unname(predict(twin, new)), tolerance = 1e-9)
  expect_equal(unname(predict(fit, new, re.form = NA)), unname(predict(twin, new, re.form = NA)),
               tolerance = 1e-9)
  # refit() keeps the weights: lme4's fit of the new response with them, at its optimum.
  set.seed(5)
  y <- d$Reaction + rnorm(nrow(d), sd = 10)
  again <- refit(fit, y)
  d$y <- y
  exact <- tight_lmer(y ~ Days + (Days | Subject), d, FALSE)
  expect_equal(deviance(again), deviance(exact), tolerance = 1e-9)
  expect_equal(unname(fixef(again)), unname(lme4::fixef(exact)), tolerance = 1e-6)
  expect_equal(unname(weights(again)), d$w)
  # Comparisons of weighted fits: lme4's deviances and chi-square statistic.
  small <- hnm_fit(Reaction ~ Days + (1 | Subject), d, weights = w)
  small_exact <- tight_lmer(Reaction ~ Days + (1 | Subject), d, FALSE)
  full_exact <- tight_lmer(formula, d, FALSE)
  ours <- anova(small, fit)
  theirs <- suppressMessages(anova(small_exact, full_exact))
  expect_equal(ours$deviance, theirs$deviance, tolerance = 1e-9)
  expect_equal(ours$Chisq, theirs$Chisq, tolerance = 1e-6)
  # REML fits are compared by their ML refits, as lme4's anova() does.
  reml <- anova(update(small, REML = TRUE), update(fit, REML = TRUE))
  expect_equal(reml$deviance, theirs$deviance, tolerance = 1e-9)
  no_days <- tight_lmer(Reaction ~ 1 + (Days | Subject), d, FALSE)
  expect_equal(drop1(fit, test = "Chisq")$LRT[2L], deviance(no_days) - deviance(full_exact),
               tolerance = 1e-6)
})

test_that("a weight of 0 drops its row, as lmer() on the other rows (lme4's criterion is infinite)", {
  skip_if_not_installed("lme4")
  d <- one_way_weights_data()
  d$w[c(2, 11, 30)] <- 0
  d$y[5] <- NA
  for (REML in c(FALSE, TRUE)) {
    fit <- hnm_fit(y ~ 1 + (1 | g), d, weights = w, REML = REML)
    kept <- d[d$w > 0, ]
    exact <- tight_lmer(y ~ 1 + (1 | g), kept, REML)
    expect_equal(deviance(fit), lme4_criterion(exact), tolerance = 1e-9)
    twin <- weighted_twin(fit, y ~ 1 + (1 | g), kept, REML)
    expect_equal(lmm_numbers(fit), lmm_numbers(twin), tolerance = 1e-8)
    expect_identical(nobs(fit), nrow(d) - 4L)
    expect_equal(unname(residuals(fit, "pearson")), unname(residuals(twin, "pearson")),
                 tolerance = 1e-8)
  }
  # lme4 1.1-31 keeps the rows: its criterion is infinite (so its search stays at its start).
  expect_identical(deviance(tight_lmer(y ~ 1 + (1 | g), d, FALSE)), Inf)
  # A weight of 0 is not a missing value: na.fail takes it, na.exclude pads its row with NA.
  expect_no_error(hnm_fit(y ~ 1 + (1 | g), d[-5, ], weights = w, na.action = na.fail))
  padded <- hnm_fit(y ~ 1 + (1 | g), d, weights = w, na.action = na.exclude)
  r <- residuals(padded)
  expect_length(r, nrow(d))
  expect_identical(which(is.na(r)), c(2L, 5L, 11L, 30L))
  expect_equal(r[-c(2, 5, 11, 30)], unname(residuals(hnm_fit(y ~ 1 + (1 | g), d, weights = w))))
  # lme4's model frame of the rows used, with its "(weights)" column.
  frame <- model.frame(padded)
  reference <- model.frame(tight_lmer(y ~ 1 + (1 | g), kept, FALSE))
  expect_equal(frame$y, reference$y)
  expect_equal(frame[["(weights)"]], reference[["(weights)"]])
  expect_identical(levels(frame$g), levels(reference$g))
  skip_if_not_installed("broom")
  augmented <- broom::augment(padded)
  expect_identical(nrow(augmented), nobs(padded))
  expect_equal(augmented$.resid, r[-c(2, 5, 11, 30)])
})

test_that("bad weights are errors naming the row; unsupported uses are refused", {
  d <- one_way_weights_data()
  fit_with <- function(weight, ...) hnm_fit(y ~ 1 + (1 | g), d, weights = weight, ...)
  bad <- function(value, row = 7) replace(d$w, row, value)
  expect_error(fit_with(bad(-1)), "row 7 of `data` is -1", class = "hnm_error_argument")
  expect_error(fit_with(bad(Inf)), "row 7 of `data` is Inf", class = "hnm_error_argument")
  expect_error(fit_with(bad(NaN)), "row 7 of `data` is NaN", class = "hnm_error_argument")
  expect_error(fit_with(bad(NA)), "NA at the rows the fit uses, but row 7 of `data`",
               class = "hnm_error_argument")
  # Rows are those of `data`, whatever the subset; NA where the row is dropped anyway is fine.
  expect_error(fit_with(bad(NA), subset = -(1:3)), "row 7 of `data`", class = "hnm_error_argument")
  d$y[7] <- NA
  expect_identical(nobs(fit_with(bad(NA))), nrow(d) - 1L)
  expect_error(fit_with(d$w[-1]), "one value per row of `data`", class = "hnm_error_argument")
  expect_error(fit_with(0 * d$w), "0 at every row", class = "hnm_error_argument")
  expect_error(fit_with(as.character(d$w)), "numeric", class = "hnm_error_argument")
  expect_error(fit_with(d$w, method = "ANOVA"), "ANOVA", class = "hnm_error_unsupported")
  expect_error(hnm_fit(y ~ 1 + (1 | g), hnm_stats(y ~ 1 | g, d), weights = w),
               "`weights` is for data frames of rows", class = "hnm_error_argument")
  fit <- fit_with(d$w)
  expect_error(bootstrap(fit, nsim = 10), "weights", class = "hnm_error_unsupported")
  expect_error(bootstrap_lrt(hnm_fit(y ~ 1 + (1 | g), d), fit, nsim = 10), "weights",
               class = "hnm_error_unsupported")
  expect_error(predict(fit, interval = "prediction"), "weights", class = "hnm_error_unsupported")
  expect_error(weights(fit, type = "working"), "GLMM", class = "hnm_error_argument")
  # The one-way model's closed forms are of unweighted rows.
  expect_error(tau2_test(fit), "with weights", class = "hnm_error_argument")
  expect_error(confint(fit, method = "exact"), "with weights", class = "hnm_error_argument")
  expect_identical(weights(hnm_fit(y ~ 1 + (1 | g), d)), rep(1, nrow(d) - 1L))
})

test_that("simulate() draws errors of variance sigma^2 / w", {
  d <- one_way_weights_data()
  d$w <- rep(c(0.25, 4), length.out = nrow(d))
  fit <- hnm_fit(y ~ 1 + (1 | g), d, weights = w)
  sims <- as.matrix(simulate(fit, nsim = 4000, seed = 1, use.u = TRUE)) - fitted(fit)
  # Each row's variance over 4000 draws is sigma^2 / w_i within 5 standard errors (sqrt(2/4000)).
  ratio <- apply(sims, 1L, var) * d$w / sigma(fit)^2
  expect_true(all(abs(ratio - 1) < 5 * sqrt(2 / 4000)))
})

test_that("ranova() of a weighted fit is lmerTest's (the reduced model a weighted lm())", {
  skip_if_not_installed("lmerTest")
  data <- one_way_weights_data()
  set.seed(3)
  data$x <- rnorm(nrow(data))
  for (REML in c(TRUE, FALSE)) {
    fit <- hnm_fit(y ~ x + (1 | g), data, weights = w, REML = REML)
    reference <- suppressMessages(lmerTest::lmer(y ~ x + (1 | g), data, weights = w, REML = REML))
    ours <- ranova(fit)
    theirs <- lmerTest::ranova(reference)
    expect_equal(ours$logLik, theirs$logLik, tolerance = 1e-6)
    expect_equal(ours$LRT, theirs$LRT, tolerance = 1e-5)
  }
})

test_that("anova()'s F tests of types I-III of a weighted fit are lmerTest's", {
  skip_if_not_installed("lmerTest")
  # lmerTest re-evaluates the twin's call, `lme4::lmer(..., data, weights = w)`, here.
  data <- weights_data()
  set.seed(8)
  data$f <- factor(sample(c("a", "b", "c"), nrow(data), replace = TRUE))
  data$x <- rnorm(nrow(data))
  formula <- Reaction ~ Days * f + x + (Days | Subject)
  fit <- hnm_fit(formula, data, weights = w, REML = TRUE)
  twin <- lmerTest::as_lmerModLmerTest(weighted_twin(fit, formula, data, TRUE))
  # lmerTest's hypotheses are built from the unweighted X: types I and II differ from those
  # built from X'WX.
  for (type in c("I", "II", "III")) {
    ours <- anova(fit, type = type)
    theirs <- anova(twin, type = type)
    expect_equal(ours[["F value"]], theirs[["F value"]], tolerance = 1e-7, label = type)
    expect_equal(ours[["DenDF"]], theirs[["DenDF"]], tolerance = 1e-6, label = type)
    expect_equal(ours[["NumDF"]], theirs[["NumDF"]], label = type)
  }
  # emmeans' marginal means with Satterthwaite's df, as for the lmer fit.
  skip_if_not_installed("emmeans")
  ours <- as.data.frame(suppressMessages(emmeans::emmeans(fit, ~ f, lmer.df = "satterthwaite")))
  theirs <- as.data.frame(suppressMessages(emmeans::emmeans(twin, ~ f, lmer.df = "satterthwaite")))
  expect_equal(ours$emmean, theirs$emmean, tolerance = 1e-8)
  expect_equal(ours$SE, theirs$SE, tolerance = 1e-7)
  expect_equal(ours$df, theirs$df, tolerance = 1e-5)
})

test_that("weighted fits with several grouping factors, crossed and nested, are lme4's", {
  skip_if_not_installed("lmerTest")
  data <- crossed_weighted_data(seed = 9, n = 400, levels = c(15, 6), sd_b = 0.7)
  data$w[c(5, 77)] <- 0
  kept <- data[data$w > 0, ]
  for (formula in list(y ~ x + (1 | a) + (1 | b), y ~ x + (x | a) + (1 | b), y ~ x + (1 | b/a))) {
    for (REML in c(FALSE, TRUE)) {
      label <- paste(deparse1(formula), if (REML) "REML" else "ML")
      fit <- hnm_fit(formula, data, weights = w, REML = REML)
      exact <- tight_lmer(formula, kept, REML)
      expect_lte(deviance(fit), lme4_criterion(exact) + 1e-7 * abs(lme4_criterion(exact)))
      expect_equal(deviance(fit), lme4_criterion(exact), tolerance = 1e-9, label = label)
      twin <- weighted_twin(fit, formula, kept, REML)
      ours <- lmm_numbers(fit)
      theirs <- lmm_numbers(twin)
      for (name in names(ours)) {
        expect_equal(ours[[name]], theirs[[name]], tolerance = 1e-8, label = paste(label, name))
      }
      for (type in c("response", "pearson")) {
        expect_equal(unname(residuals(fit, type = type)), unname(residuals(twin, type = type)),
                     tolerance = 1e-8, label = paste(label, type))
      }
      expect_equal(unname(predict(fit, data[1:6, ])), unname(predict(twin, data[1:6, ])),
                   tolerance = 1e-8, label = label)
      expect_identical(weights(fit), stats::weights(twin))
    }
  }
  # Satterthwaite's df: lmerTest's (which re-evaluates the twin's call with `data` here).
  data <- kept
  fit <- hnm_fit(y ~ x + (x | a) + (1 | b), data, weights = w, REML = TRUE)
  twin <- lmerTest::as_lmerModLmerTest(weighted_twin(fit, y ~ x + (x | a) + (1 | b), data, TRUE))
  expect_equal(unname(coef(summary(fit))[, "df"]), unname(coef(summary(twin))[, "df"]),
               tolerance = 1e-6)
  # Kenward-Roger: pbkrtest's on the scaled rows (pbkrtest reads no weights).
  skip_if_not_installed("pbkrtest")
  fit <- hnm_fit(y ~ x + (1 | a) + (1 | b), data, weights = w, REML = TRUE)
  data$s <- sqrt(data$w)
  data$ys <- data$y * data$s
  data$xs <- data$x * data$s
  scaled <- lmer_twin(fit, ys ~ 0 + s + xs + (0 + s | a) + (0 + s | b), data, TRUE)
  expect_equal(unname(vcov_kenward_roger(fit)), unname(as.matrix(pbkrtest::vcovAdj(scaled))),
               tolerance = 1e-7)
  expect_equal(unname(coef(summary(fit, ddf = "Kenward-Roger"))[, "df"]),
               c(pbkrtest::get_Lb_ddf(scaled, c(1, 0)), pbkrtest::get_Lb_ddf(scaled, c(0, 1))),
               tolerance = 1e-6)
})

test_that("hnm_devfun(weights =) and as.function() of a weighted fit are lme4's devFunOnly function", {
  skip_if_not_installed("lme4")
  d <- weights_data()
  d$w[7] <- 0
  kept <- d[d$w > 0, ]
  for (REML in c(FALSE, TRUE)) {
    reference <- lme4::lmer(Reaction ~ Days + (Days | Subject), kept, REML = REML, weights = w,
                            devFunOnly = TRUE)
    ours <- hnm_devfun(Reaction ~ Days + (Days | Subject), d, REML = REML, weights = w)
    fit <- hnm_fit(Reaction ~ Days + (Days | Subject), d, REML = REML, weights = w)
    for (theta in list(c(1, 0, 1), c(0.8, 0.1, 0.2), unname(getME(fit, "theta")))) {
      expect_equal(c(ours(theta)), reference(theta), tolerance = 1e-10)
      expect_equal(c(as.function(fit)(theta)), reference(theta), tolerance = 1e-10)
    }
    expect_equal(c(ours(unname(getME(fit, "theta")))), deviance(fit), tolerance = 1e-12)
  }
})

test_that("se.fit of conditional predictions of weighted fits: Henderson's equations with W", {
  skip_if_not_installed("lme4")
  skip_if_not_installed("Matrix")
  d <- crossed_weighted_data(seed = 11, n = 240, levels = c(12, 5), sd_b = 0.6)
  new <- d[c(3, 50, 200), ]
  # Unweighted too: with few levels Matrix made the system dense, which Cholesky() refused.
  for (formula in list(y ~ x + (x | a), y ~ x + (1 | a) + (1 | b))) for (weighted in c(TRUE, FALSE)) {
    fit <- if (weighted) hnm_fit(formula, d, weights = w, REML = TRUE) else hnm_fit(formula, d, REML = TRUE)
    twin <- if (weighted) weighted_twin(fit, formula, d, TRUE) else lmer_twin(fit, formula, d, TRUE)
    # The dense reference: C = [L'Z'WZL + I, L'Z'WX; X'WZL, X'WX] from lme4's matrices, and
    # var = sigma^2 h'C^-1 h with h = (L'z, x) for each new row (its own z and x).
    X <- as.matrix(lme4::getME(twin, "X"))
    ZL <- as.matrix(lme4::getME(twin, "Z") %*% lme4::getME(twin, "Lambda"))
    W <- if (weighted) d$w else rep(1, nrow(d))
    C <- rbind(cbind(crossprod(ZL, W * ZL) + diag(ncol(ZL)), crossprod(ZL, W * X)),
               cbind(crossprod(X, W * ZL), crossprod(X, W * X)))
    rows <- match(rownames(new), rownames(d))
    H <- cbind(ZL[rows, , drop = FALSE], X[rows, , drop = FALSE])
    reference <- sigma(twin)^2 * rowSums((H %*% solve(C)) * H)
    ours <- predict(fit, new, se.fit = TRUE)$se.fit
    expect_equal(ours^2, unname(reference), tolerance = 1e-7, label = deparse1(formula))
  }
})
