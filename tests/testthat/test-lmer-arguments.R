# lmer()'s subset, na.action, offset and contrasts arguments: the fit equals lme4's fit with the
# same arguments (its criterion at its exact optimum, its numbers at hnm's theta).

arguments_data <- function() {
  set.seed(21)
  d <- simulate_lmm(21, m = 12, balanced = FALSE)
  d$f <- factor(sample(c("a", "b", "c"), nrow(d), replace = TRUE))
  d$w <- runif(nrow(d), 0.5, 2)
  d$y[c(4, 17)] <- NA
  d$x[9] <- NA
  d
}

# lme4's fit at hnm's theta, from lmer's own call with the same extra arguments.
lme4_twin_with <- function(fit, formula, data, ...) {
  extra <- as.list(substitute(list(...)))[-1L]
  call <- as.call(c(list(quote(lme4::lmer), formula, quote(data), REML = FALSE), extra))
  suppressMessages(lmer_at_theta(call, getME(fit, "theta"), list2env(list(data = data))))
}

test_that("subset, offset and contrasts give lme4's fit with the same arguments", {
  skip_if_not_installed("lme4")
  d <- arguments_data()
  formula <- y ~ x + f + (x | g)
  fit <- hnm_fit(formula, d, subset = w > 0.8, offset = log(w),
                 contrasts = list(f = "contr.sum"))
  twin <- lme4_twin_with(fit, formula, d, subset = w > 0.8, offset = log(w),
                         contrasts = list(f = "contr.sum"))
  expect_equal(deviance(twin), deviance(fit), tolerance = 1e-9)
  ours <- lmm_numbers(fit)
  theirs <- lmm_numbers(twin)
  for (name in names(ours)) expect_equal(ours[[name]], theirs[[name]], tolerance = 1e-8, label = name)
  expect_identical(names(fixef(fit)), names(lme4::fixef(twin)))   # f1, f2 under contr.sum
  expect_equal(unname(fitted(fit)), unname(fitted(twin)), tolerance = 1e-8)
  expect_identical(nobs(fit), nobs(twin))
  exact <- suppressWarnings(lme4::lmer(formula, d, REML = FALSE, subset = w > 0.8, offset = log(w),
                                       contrasts = list(f = "contr.sum"),
                                       control = lme4::lmerControl(optimizer = "bobyqa",
                                         optCtrl = list(rhoend = 1e-12, maxfun = 1e5))))
  expect_lte(deviance(fit), deviance(exact) + 1e-7)
  # Predictions for new data code the factor as the fit did (sum contrasts).
  new <- d[1:5, ]
  expect_equal(unname(predict(fit, new, re.form = NA)), unname(predict(twin, new, re.form = NA)),
               tolerance = 1e-8)
  # Row numbers as a subset, and an offset alone on the one-way model (no longer its closed form
  # extras: an offset, as in the formula).
  rows <- which(d$w > 0.8)
  expect_equal(deviance(hnm_fit(formula, d, subset = rows, offset = log(w),
                                contrasts = list(f = "contr.sum"))), deviance(fit), tolerance = 1e-12)
  one_way <- hnm_fit(y ~ 1 | g, d, offset = w)
  twin <- lme4_twin_with(one_way, y ~ 1 + (1 | g), d, offset = w)
  expect_equal(deviance(one_way), deviance(twin), tolerance = 1e-9)
  expect_equal(unname(fitted(one_way)), unname(fitted(twin)), tolerance = 1e-8)
  expect_error(hnm_fit(y ~ 1 | g, d, offset = w, method = "ANOVA"), class = "hnm_error_argument")
  # Residuals are y - fitted and getME(, "y") is the observed response, offset or not (an
  # offset was once subtracted twice from the residuals).
  for (model in list(one_way, fit)) {
    reference <- if (identical(model, fit)) {
      lme4_twin_with(fit, formula, d, subset = w > 0.8, offset = log(w),
                     contrasts = list(f = "contr.sum"))
    } else twin
    expect_equal(unname(residuals(model)), unname(residuals(reference)), tolerance = 1e-8)
    expect_equal(unname(getME(model, "y")), unname(lme4::getME(reference, "y")))
  }
  in_formula <- hnm_fit(y ~ 1 + offset(w) + (1 | g), d)
  expect_equal(unname(residuals(in_formula)), unname(residuals(twin)), tolerance = 1e-8)
})

test_that("na.action: na.exclude pads fitted, residuals and predict with NA; na.fail stops", {
  skip_if_not_installed("lme4")
  d <- arguments_data()
  formula <- y ~ x + (x | g)
  fit <- hnm_fit(formula, d, na.action = na.exclude)
  twin <- lme4_twin_with(fit, formula, d, na.action = na.exclude)
  for (f in list(fitted, residuals, function(m) predict(m))) {
    ours <- f(fit)
    theirs <- unname(f(twin))
    expect_length(ours, nrow(d))
    expect_identical(which(is.na(ours)), c(4L, 9L, 17L))
    expect_equal(unname(ours), theirs, tolerance = 1e-8)
  }
  # simulate() pads as lme4's does, with lme4's draws (the same stream) at the rows used.
  ours <- as.matrix(simulate(fit, nsim = 2, seed = 42))
  expect_identical(dim(ours), c(nrow(d), 2L))
  expect_identical(unname(which(is.na(ours[, 2]))), c(4L, 9L, 17L))
  expect_equal(unname(ours), unname(as.matrix(simulate(twin, nsim = 2, seed = 42))), tolerance = 1e-8)
  expect_equal(refit(fit, ours[, 1])$deviance, deviance(hnm_fit(formula, transform(d, y = ours[, 1]))),
               tolerance = 1e-12)
  expect_identical(fixef(fit), fixef(hnm_fit(formula, d)))
  expect_length(fitted(hnm_fit(formula, d, na.action = "na.omit")), nrow(d) - 3L)
  expect_error(hnm_fit(formula, d, na.action = na.fail), "missing values", class = "hnm_error_argument")
  expect_length(fitted(hnm_fit(formula, d[-c(4, 9, 17), ], na.action = na.fail)), nrow(d) - 3L)
  expect_error(hnm_fit(formula, d, na.action = na.pass), "na.omit", class = "hnm_error_argument")
})

test_that("the row arguments are checked, and refused for statistics", {
  d <- arguments_data()
  expect_error(hnm_fit(y ~ x + (1 | g), d, offset = 1:3), "one value per row",
               class = "hnm_error_argument")
  expect_error(hnm_fit(y ~ x + (1 | g), d, subset = "a"), "row numbers", class = "hnm_error_argument")
  expect_error(hnm_fit(y ~ x + (1 | g), d, subset = c(TRUE, FALSE)), "one value per row",
               class = "hnm_error_argument")
  s <- hnm_stats(y ~ x + (1 | g), d)
  expect_error(hnm_fit(y ~ x + (1 | g), s, subset = x > 0), "`subset` is for data frames of rows",
               class = "hnm_error_argument")
  expect_error(hnm_fit(y ~ x + (1 | g), s, offset = x, contrasts = list()), "are for data frames",
               class = "hnm_error_argument")
})

test_that("subset reads as lm()'s and lmer()'s data[subset, ], or is a clear error", {
  skip_if_not_installed("lme4")
  d <- arguments_data()
  formula <- y ~ x + (x | g)
  same_as_lmer <- function(fit, subset) {
    # The subset's value in lmer's call (model.frame() evaluates it in the data).
    ref <- suppressMessages(eval(bquote(lme4::lmer(formula, d, REML = FALSE, subset = .(subset)))))
    expect_identical(nobs(fit), nobs(ref))
    expect_equal(deviance(fit), deviance(ref), tolerance = 1e-6)
  }
  # One logical for all rows: TRUE keeps every row, as lm(subset = TRUE) does.
  all_rows <- hnm_fit(formula, d, subset = TRUE)
  same_as_lmer(all_rows, TRUE)
  expect_identical(nobs(all_rows), nobs(lm(y ~ x, d, subset = TRUE)))
  # NA in a logical subset: a row of missing values, dropped by na.omit (as lm and lmer).
  keep <- d$w > 0.8
  keep[c(1, 2)] <- NA
  with_na <- hnm_fit(formula, d, subset = keep)
  same_as_lmer(with_na, keep)
  expect_identical(nobs(with_na), nobs(lm(y ~ x, d, subset = keep)))
  expect_error(hnm_fit(formula, d, subset = keep, na.action = na.fail), "NA at some rows",
               class = "hnm_error_argument")
  # With na.exclude, such a row is padded as NA, as lm() and lmer() pad it (model.frame() makes
  # it a row of NAs): one value per row of data[keep, ], NA at rows 1 and 2 and the missing ones.
  excluded <- hnm_fit(formula, d, subset = keep, na.action = na.exclude)
  reference <- lm(y ~ x, d, subset = keep, na.action = na.exclude)
  twin <- suppressMessages(lmer_at_theta(
    bquote(lme4::lmer(.(formula), data, REML = FALSE, subset = .(keep), na.action = na.exclude)),
    getME(excluded, "theta"), list2env(list(data = d))))
  for (f in list(fitted, residuals, function(m) predict(m))) {
    ours <- f(excluded)
    expect_length(ours, length(fitted(reference)))
    expect_identical(which(is.na(ours)), unname(which(is.na(fitted(reference)))))
    expect_equal(ours, unname(f(twin)), tolerance = 1e-8)
  }
  expect_identical(nobs(excluded), nobs(with_na))
  expect_identical(dim(simulate(excluded, nsim = 2)), c(length(fitted(reference)), 2L))
  expect_error(lm(y ~ x, d[-c(4, 9, 17), ], subset = keep[-c(4, 9, 17)], na.action = na.fail),
               "missing values")
  # Negative row numbers leave rows out, as `[` does.
  drop <- -(1:10)
  same_as_lmer(hnm_fit(formula, d, subset = drop), drop)
  expect_identical(nobs(hnm_fit(formula, d, subset = drop)), nobs(lm(y ~ x, d, subset = drop)))
  # What `[` would truncate (2.5 -> 2), ignore (0) or turn into a row of NAs (NA, beyond the
  # rows) is an error naming the element; so are mixed signs, as for `[`.
  e <- function(subset, pattern) {
    expect_error(hnm_fit(formula, d, subset = subset), pattern, class = "hnm_error_argument")
  }
  e(c(1, 2.5, 3), "element 2 is 2.5")
  e(c(0, 1, 2), "element 1 is 0")
  e(c(1, NA), "element 2 is NA")
  e(c(1, nrow(d) + 1), sprintf("element 2 is %d", nrow(d) + 1))
  e(c(-1, 2), "mixes positive and negative")
  e(factor(1:3), "class factor")
})

test_that("start is lme4's theta: from the optimum the search stops at once", {
  d <- lme4::sleepstudy
  formula <- Reaction ~ Days + (Days | Subject)
  fit <- hnm_fit(formula, d)
  # A start mapped wrongly to the model's internal theta would need Newton steps to come back.
  again <- hnm_fit(formula, d, start = getME(fit, "theta"))
  expect_lte(again$convergence$iterations, 1)
  expect_equal(deviance(again), deviance(fit), tolerance = 1e-12)
  far <- hnm_fit(formula, d, start = list(theta = c(3, -1, 0.5)))
  expect_equal(deviance(far), deviance(fit), tolerance = 1e-10)
  from_stats <- hnm_fit(formula, hnm_stats(formula, d), start = getME(fit, "theta"))
  expect_lte(from_stats$convergence$iterations, 1)
  one_way <- hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff)
  expect_equal(deviance(hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff, start = 5)), deviance(one_way),
               tolerance = 1e-12)
  expect_error(hnm_fit(formula, d, start = 1:2), "3 numbers", class = "hnm_error_argument")
  expect_error(hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff, method = "ANOVA", start = 1),
               "ANOVA", class = "hnm_error_argument")
})

test_that("control = hnm_control() sets the search, and verbose traces it", {
  d <- lme4::sleepstudy
  formula <- Reaction ~ Days + (Days | Subject)
  fit <- hnm_fit(formula, d)
  expect_gt(fit$convergence$iterations, 1)
  expect_warning(short <- hnm_fit(formula, d, control = hnm_control(max_iterations = 1)),
                 class = "hnm_warning_convergence")
  expect_false(short$convergence$converged)
  loose <- hnm_fit(formula, d, control = hnm_control(tolerance = 1e-4))
  expect_lte(loose$convergence$iterations, fit$convergence$iterations)
  expect_equal(deviance(loose), deviance(fit), tolerance = 1e-8)
  expect_equal(deviance(hnm_fit(formula, d, control = hnm_control(threads = 1))), deviance(fit),
               tolerance = 1e-12)
  expect_output(hnm_fit(formula, d, verbose = TRUE), "iteration +0: criterion .*projected gradient")
  expect_output(hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff, verbose = TRUE), "criterion")
  # The singular tolerance is isSingular()'s default for the fit (lme4's is 1e-4).
  expect_false(isSingular(fit))
  expect_true(isSingular(hnm_fit(formula, d, control = hnm_control(singular_tolerance = 100))))
  # The refits of a fit keep its settings.
  refitted <- suppressWarnings(refit(short, rev(d$Reaction)))
  expect_identical(refitted$control, short$control)
  expect_lte(refitted$convergence$iterations, 1)
  expect_error(hnm_control(tolerance = -1), "positive", class = "hnm_error_argument")
  expect_error(hnm_control(max_iterations = 0.5), "whole number", class = "hnm_error_argument")
  expect_error(hnm_fit(formula, d, control = list(tolerance = 1)), "hnm_control",
               class = "hnm_error_argument")
  expect_error(hnm_fit(formula, d, verbose = NA), class = "hnm_error")
})

test_that("an lmerControl() is taken where its settings mean something here", {
  skip_if_not_installed("lme4")
  d <- lme4::sleepstudy
  formula <- Reaction ~ Days + (Days | Subject)
  expect_equal(deviance(hnm_fit(formula, d, control = lme4::lmerControl())),
               deviance(hnm_fit(formula, d)), tolerance = 0)
  singular <- lme4::lmerControl(check.conv.singular = lme4::.makeCC("message", tol = 100))
  expect_true(isSingular(hnm_fit(formula, d, control = singular)))
  expect_error(hnm_fit(formula, d, control = lme4::lmerControl(optimizer = "Nelder_Mead")),
               "`optimizer`", class = "hnm_error_argument")
})

test_that("the row arguments reach augment(), drop1(), options() and the one-way range", {
  skip_if_not_installed("broom")
  d <- arguments_data()
  fit <- hnm_fit(y ~ x + (x | g), d, na.action = na.exclude)
  used <- !is.na(fitted(fit))
  augmented <- broom::augment(fit)
  expect_equal(augmented$.fitted, unname(fitted(fit)[used]), tolerance = 0)
  expect_equal(augmented$.resid, unname(residuals(fit)[used]), tolerance = 0)
  # options("na.action") is the default, as for lmer().
  old <- options(na.action = "na.exclude")
  on.exit(options(old))
  expect_length(fitted(hnm_fit(y ~ x + (x | g), d)), nrow(d))
  options(old)
  # drop1(): an aliased term has no test (stats' drop1 gives NA); a refitted fit is refused.
  sleep <- lme4::sleepstudy
  sleep$x <- sleep$Days
  aliased <- suppressMessages(drop1(hnm_fit(Reaction ~ Days + x + (1 | Subject), sleep), test = "Chisq"))
  expect_identical(aliased$npar, c(NA, 0, 0))
  expect_true(all(is.na(aliased[["Pr(Chi)"]])))
  refitted <- refit(hnm_fit(Reaction ~ Days + (1 | Subject), sleep), rev(sleep$Reaction))
  expect_error(drop1(refitted), "refit", class = "hnm_error_argument")
  # The one-way model's range holds with an offset too (its fit is the same closed form).
  set.seed(3)
  wide <- data.frame(g = rep(1:6, each = 5), o = rnorm(30))
  wide$y <- 1e6 * wide$g + rnorm(30) + wide$o
  expect_error(hnm_fit(y ~ 1 | g, wide, offset = o), "within-group standard deviations",
               class = "hnm_error_out_of_range")
})
