# refit(): the fit's model fitted to a new response. References: lme4 (its refit() converged
# tightly for the criterion, its deviance function and methods at hnm's theta for the numbers)
# and the one-way closed forms of a fit of the new data.

test_that("refit() gives lme4's fit of the new response, ML and REML", {
  skip_if_not_installed("lme4")
  d <- lme4::sleepstudy
  formula <- Reaction ~ Days + (Days | Subject)
  for (reml in c(FALSE, TRUE)) {
    fit <- hnm_fit(formula, d, REML = reml)
    y <- simulate(fit, seed = 3)[[1]]
    new <- refit(fit, y)
    d_new <- transform(d, Reaction = y)
    label <- if (reml) "REML" else "ML"
    expect_lte(deviance(new), lme4_criterion(lmer_exact(formula, d_new, reml)) + 1e-7)
    expect_lte(deviance(new), lme4_criterion(lme4::refit(lmer_default(formula, d, reml), y)) + 1e-7)
    twin <- lmer_twin(new, formula, d_new, REML = reml)
    expect_equal(lme4_criterion(twin), deviance(new), tolerance = 1e-9, label = label)
    ours <- lmm_numbers(new)
    theirs <- lmm_numbers(twin)
    for (name in names(ours)) expect_equal(ours[[name]], theirs[[name]], tolerance = 1e-8, label = name)
    expect_equal(unname(fitted(new)), unname(fitted(twin)), tolerance = 1e-8, label = label)
    # simulate()'s data frame of one column is the response, as lme4's refit() takes it.
    frame <- refit(fit, simulate(fit, seed = 3))
    expect_equal(deviance(frame), lme4_criterion(lmer_exact(formula, d_new, reml)),
                 tolerance = 1e-9, label = label)
    expect_identical(new$call, fit$call)
    expect_identical(nobs(new), nobs(fit))
    # The original fit is untouched.
    expect_equal(fixef(fit), fixef(hnm_fit(formula, d, REML = reml)), tolerance = 0)
  }
})

test_that("refit() of the one-way model reads the fit's rows, with its offset and dropped rows", {
  d <- simulate_unbalanced(12, 4)
  d$y[c(3, 9)] <- NA
  d$z <- seq_len(nrow(d)) / 10
  fit <- hnm_fit(y ~ 1 + offset(z) + (1 | g), d, REML = TRUE)
  set.seed(8)
  used <- !is.na(d$y)
  y_new <- 5 + rnorm(nrow(d), 0, 2) + rnorm(12, 0, 3)[as.integer(factor(d$g))]
  d_new <- d
  d_new$y <- ifelse(used, y_new, NA)
  # One value per row of the data (the dropped rows' values unread), or per row used.
  for (newresp in list(y_new, y_new[used], replace(y_new, !used, NaN))) {
    new <- refit(fit, newresp)
    reference <- hnm_fit(y ~ 1 + offset(z) + (1 | g), d_new, REML = TRUE)
    expect_equal(one_way_estimates(new), one_way_estimates(reference), tolerance = 1e-12)
    expect_identical(nobs(new), sum(used))
  }
  # The closed form of the new data (lme4's REML criterion of the one-way model at hnm's theta).
  skip_if_not_installed("lme4")
  twin <- lmer_twin(new, y ~ 1 + offset(z) + (1 | g), d_new[used, ], REML = TRUE)
  expect_equal(lme4_criterion(twin), deviance(new), tolerance = 1e-10)
  expect_equal(unname(fixef(new)), unname(lme4::fixef(twin)), tolerance = 1e-10)
})

test_that("refit() refuses what it cannot refit, naming the problem", {
  fit <- hnm_fit(y ~ 1 | g, simulate_unbalanced(10, 1))
  n <- nobs(fit)
  expect_error(refit(fit, rnorm(n - 1)), "one value per row", class = "hnm_error_argument")
  expect_error(refit(fit, as.character(rnorm(n))), "numeric vector", class = "hnm_error_argument")
  expect_error(refit(fit, replace(rnorm(n), 4, NA)), "row 4 is NA", class = "hnm_error_not_finite")
  expect_error(refit(fit, rnorm(n), foo = 1), class = "hnm_error")
  expect_error(refit(fit, simulate(fit, nsim = 2)), "one column", class = "hnm_error_argument")
  from_stats <- hnm_fit(y ~ 1 | g, data = hnm_stats(y ~ 1 | g, simulate_unbalanced(10, 1)))
  expect_error(refit(from_stats, rnorm(n)), class = "hnm_error_no_rows")
  # The ANOVA estimator refits by its moments: those of the new data.
  anova_fit <- hnm_fit(y ~ 1 | g, simulate_unbalanced(10, 1), method = "ANOVA")
  d <- simulate_unbalanced(10, 1)
  d$y <- d$y * 3 + 1
  expect_equal(one_way_estimates(suppressWarnings(refit(anova_fit, d$y))),
               one_way_estimates(suppressWarnings(hnm_fit(y ~ 1 | g, d, method = "ANOVA"))),
               tolerance = 1e-12)
})

test_that("refitML() gives lme4's ML fit of a REML or ANOVA fit", {
  skip_if_not_installed("lme4")
  d <- lme4::sleepstudy
  formula <- Reaction ~ Days + (Days | Subject)
  fit <- hnm_fit(formula, d, REML = TRUE)
  ml <- refitML(fit)
  expect_identical(ml$method, "ML")
  expect_lte(deviance(ml), lme4_criterion(lmer_exact(formula, d, FALSE)) + 1e-7)
  expect_lte(deviance(ml), deviance(lme4::refitML(lmer_default(formula, d, TRUE))) + 1e-7)
  twin <- lmer_twin(ml, formula, d, REML = FALSE)
  ours <- lmm_numbers(ml)
  theirs <- lmm_numbers(twin)
  for (name in names(ours)) expect_equal(ours[[name]], theirs[[name]], tolerance = 1e-8, label = name)
  expect_identical(refitML(ml), ml)
  expect_identical(fit$method, "REML")   # the REML fit is untouched
  expect_equal(deviance(fit), deviance(hnm_fit(formula, d, REML = TRUE)), tolerance = 0)
  # One-way: the ML closed form (lme4's ML criterion at hnm's theta), from an ANOVA fit too.
  for (method in c("REML", "ANOVA")) {
    one_way <- refitML(hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff, method = method))
    twin <- lmer_twin(one_way, Yield ~ 1 + (1 | Batch), lme4::Dyestuff, REML = FALSE)
    expect_equal(deviance(one_way), deviance(twin), tolerance = 1e-10, label = method)
    expect_lte(deviance(one_way), lme4_criterion(lmer_exact(Yield ~ 1 + (1 | Batch), lme4::Dyestuff, FALSE)) + 1e-8)
  }
  expect_error(refitML(fit, foo = 1), class = "hnm_error")
})

# The fit's core (the environment that holds the Rust model) encloses nothing: with the calling
# frame as its parent, a fit serialised that frame, and `fit <- refit(fit, y)` in a loop kept
# every earlier fit (Penicillin: 337, 642, 947 KB after 10, 20, 30 refits).
test_that("a fit refitted many times does not keep the earlier fits", {
  d <- lme4::Penicillin
  fit <- hnm_fit(diameter ~ 1 + (1 | plate) + (1 | sample), d)
  first <- length(serialize(fit, NULL))
  set.seed(1)
  for (i in 1:10) fit <- refit(fit, d$diameter + rnorm(nrow(d), sd = 0.1))
  expect_lt(length(serialize(fit, NULL)), 1.05 * first)
  expect_identical(parent.env(fit$core), emptyenv())
})
