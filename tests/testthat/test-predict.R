# fitted, residuals, predict, simulate, update and df.residual against lme4's, one loop over
# datasets x ML/REML. Values depend on θ, so lme4's are those of its fit at hnm's θ (lmer_twin,
# helper-lmm.R), to rounding (1e-8), not of where lme4's optimiser stops (its ftol_abs = 1e-8
# on the deviance allows τ² 9e-5 from the optimum on these data; it stops within ~1e-7).

test_that("predictions, residuals and simulations agree with lme4", {
  skip_if_not_installed("lme4")
  for (case in lme4_cases()) {
    # lme4's predict(newdata) fails on an ordered grouping factor with many levels (Hsb82's
    # school: "orthogonal polynomials cannot be represented"); the levels are unchanged.
    if (is.ordered(case$data[[case$g]])) {
      case$data[[case$g]] <- factor(case$data[[case$g]], ordered = FALSE)
    }
    for (reml in c(FALSE, TRUE)) {
      label <- sprintf("%s (REML = %s)", case$name, reml)
      fit <- hnm_fit(one_way_formula(case), case$data, REML = reml)
      ref <- lmer_twin(fit, one_way_formula(case, TRUE), case$data, reml)
      expect_equal(unname(fitted(fit)), unname(fitted(ref)), tolerance = 1e-8, label = label)
      expect_equal(unname(predict(fit)), unname(predict(ref)), tolerance = 1e-8, label = label)
      expect_equal(unname(predict(fit, re.form = NA)), unname(predict(ref, re.form = NA)),
                   tolerance = 1e-8, label = label)
      expect_equal(unname(residuals(fit, type = "pearson")),
                   unname(residuals(ref, type = "pearson")), tolerance = 1e-8, label = label)
      expect_identical(df.residual(fit), as.integer(df.residual(ref)), label = label)
      # newdata: three known levels (one twice), a new level and NA.
      levels_seen <- levels(factor(case$data[[case$g]]))
      newdata <- data.frame(x = c(levels_seen[c(1, 2, 2, 3)], "no such level", NA))
      names(newdata) <- case$g
      expect_equal(unname(predict(fit, newdata = newdata, allow.new.levels = TRUE)),
                   unname(predict(ref, newdata = newdata, allow.new.levels = TRUE)),
                   tolerance = 1e-8, label = label)
      expect_equal(unname(predict(fit, newdata = newdata, re.form = ~0)),
                   unname(predict(ref, newdata = newdata, re.form = ~0)),
                   tolerance = 1e-8, label = label)
      expect_equal(unname(predict(fit, random.only = TRUE)),
                   unname(predict(ref, random.only = TRUE)), tolerance = 1e-8, label = label)
      expect_equal(unname(predict(fit, newdata, allow.new.levels = TRUE, random.only = TRUE)),
                   unname(predict(ref, newdata, allow.new.levels = TRUE, random.only = TRUE)),
                   tolerance = 1e-8, label = label)
      expect_error(predict(ref, newdata = newdata))
      expect_error(predict(fit, newdata = newdata), "not in the fit: no such level and missing values (NA)",
                   fixed = TRUE,
                   class = "hnm_error_new_levels")
      # Same seed, same draws in lme4's order: the same simulated responses.
      sims <- simulate(fit, nsim = 3, seed = 2024)
      ref_sims <- simulate(ref, nsim = 3, seed = 2024)
      expect_identical(names(sims), names(ref_sims), label = label)
      expect_equal(unname(as.matrix(sims)), unname(as.matrix(ref_sims)), tolerance = 1e-8,
                   label = label)
    }
  }
})

test_that("simulate() sets attr seed as stats::simulate does and leaves the stream alone", {
  fit <- hnm_fit(y ~ 1 | g, wheat)
  set.seed(99)
  before <- .Random.seed
  sims <- simulate(fit, nsim = 2, seed = 7)
  expect_identical(.Random.seed, before)
  # stats::simulate(lm) attaches the same attribute for the same seed.
  ref <- stats::simulate(stats::lm(y ~ 1, wheat), nsim = 2, seed = 7)
  expect_identical(attr(sims, "seed"), attr(ref, "seed"))
  expect_identical(dim(sims), c(50L, 2L))
  expect_identical(simulate(fit, nsim = 2, seed = 7), sims)
})

test_that("update() refits with changed arguments, matching lme4's REML fit", {
  skip_if_not_installed("lme4")
  d <- lme4::Dyestuff
  fit <- hnm_fit(Yield ~ 1 | Batch, d)
  ref <- lme4::lmer(Yield ~ 1 + (1 | Batch), d, REML = TRUE)
  expect_equal(deviance(update(fit, method = "REML")), lme4::REMLcrit(ref), tolerance = 1e-6)
  expect_equal(deviance(update(fit, REML = TRUE)), lme4::REMLcrit(ref), tolerance = 1e-6)
  refit <- update(fit, log(.) ~ .)
  ref_log <- lme4::lmer(log(Yield) ~ 1 + (1 | Batch), d, REML = FALSE)
  expect_equal(c(logLik(refit)), c(logLik(ref_log)), tolerance = 1e-6)
})

test_that("row-level methods refuse a fit without rows", {
  fit <- hnm_fit(y ~ 1 | g, wheat)
  fit$rows <- NULL   # as a fit made from group statistics
  for (f in list(fitted, residuals, predict, simulate, plot)) {
    expect_error(f(fit), "needs the data rows", class = "hnm_error_no_rows")
  }
  # With newdata, predictions need only the group statistics.
  expect_length(predict(fit, newdata = data.frame(g = 1:3)), 3L)
})

test_that("bad predict() arguments are classed errors", {
  fit <- hnm_fit(y ~ 1 | g, wheat)
  expect_error(predict(fit, newdata = 1:3), "`newdata` must be a data frame", class = "hnm_error")
  expect_error(predict(fit, re.form = "g"), "`re.form`", class = "hnm_error")
  expect_error(predict(fit, newdata = data.frame(h = 1)), "grouping variable `g`",
               class = "hnm_error")
  # A numeric variable given as character is named as of the wrong class, not as missing.
  skip_if_not_installed("lme4")
  slopes <- hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  new <- data.frame(Days = c("1", "2"), Subject = "308")
  expect_error(predict(slopes, new), "column `Days` is of class character, but the fit's `Days`",
               class = "hnm_error_argument")
})
