# Fits keep their columns by reference: a column modified in place after the fit (data.table's
# `:=` or set()) must be detected by every row-level method, never silently reported on.

test_that("one-way fits detect responses and groups modified in place", {
  skip_if_not_installed("data.table")
  dt <- data.table::as.data.table(lme4::Dyestuff)
  fit <- hnm_fit(Yield ~ 1 | Batch, dt)
  expect_length(fitted(fit), 30L)
  data.table::set(dt, i = 3L, j = "Yield", value = 0)
  for (method in list(fitted, residuals, function(f) simulate(f, seed = 1), plot)) {
    expect_error(method(fit), "modified in place", class = "hnm_error_data_changed")
  }
  expect_error(predict(fit), "modified in place", class = "hnm_error_data_changed")
  dt <- data.table::as.data.table(lme4::Dyestuff)
  fit <- hnm_fit(Yield ~ 1 | Batch, dt)
  data.table::set(dt, i = 1L, j = "Batch", value = "F")
  expect_error(residuals(fit), "modified in place", class = "hnm_error_data_changed")
  # Integer and whole-double groups, which the pass reads in place less an offset: a value
  # changed to another group's, or to one that is not whole (whose integer part is a group).
  for (change in list(list(g = 2:7, value = 3L), list(g = c(2, 3, 4, 5, 6, 7), value = 2.5))) {
    dt <- data.table::data.table(Yield = lme4::Dyestuff$Yield, g = rep(change$g, each = 5))
    fit <- hnm_fit(Yield ~ 1 | g, dt)
    expect_length(fitted(fit), 30L)
    data.table::set(dt, i = 1L, j = "g", value = change$value)
    expect_error(fitted(fit), "modified in place", class = "hnm_error_data_changed")
  }
  # An ordinary data frame is copied on modification: the fit's columns stay as they were.
  d <- lme4::Dyestuff
  fit <- hnm_fit(Yield ~ 1 | Batch, d)
  before <- residuals(fit)
  d$Yield[3] <- 0
  expect_identical(residuals(fit), before)
})

# A fit with several factors keeps its rows, not its cells' statistics (per cell, as large as
# its data): the methods that need only its model (the random effects, refitML) work after
# its columns were modified in place; those that read the rows (fitted values, the F tests'
# cross-products, the model rebuilt after readRDS) refuse, as a one-factor fit's row-level
# methods do. Before the change, the F tests and a fit read back give what they gave.
test_that("a fit with several factors refuses rows changed in place, not its model", {
  skip_if_not_installed("data.table")
  dt <- data.table::as.data.table(lme4::Penicillin)
  dt$x <- sin(seq_len(nrow(dt)))
  fit <- hnm_fit(diameter ~ x + (1 | plate) + (1 | sample), dt, REML = TRUE)
  reference <- lme4::lmer(diameter ~ x + (1 | plate) + (1 | sample), as.data.frame(dt),
                          control = lme4::lmerControl(optimizer = "bobyqa",
                                                      optCtrl = list(rhoend = 1e-12)))
  # What the methods give, from a twin fit on a copy of the rows (a method called on `fit`
  # itself before the change could leave what it read cached in the fit).
  twin <- hnm_fit(diameter ~ x + (1 | plate) + (1 | sample), as.data.frame(dt), REML = TRUE)
  before <- list(anova = anova(twin), ranef = ranef(twin))
  saved <- tempfile(fileext = ".rds")
  on.exit(unlink(saved))
  saveRDS(fit, saved)
  restored <- readRDS(saved)
  expect_equal(ranef(restored), before$ranef, tolerance = 1e-10)
  expect_equal(anova(restored), before$anova, tolerance = 1e-10)
  expect_equal(deviance(refitML(restored)), deviance(lme4::refitML(reference)), tolerance = 1e-7)
  data.table::set(dt, i = seq_len(nrow(dt)), j = "diameter", value = rev(dt$diameter))
  expect_equal(ranef(fit), before$ranef, tolerance = 1e-10)
  expect_equal(deviance(refitML(fit)), deviance(lme4::refitML(reference)), tolerance = 1e-7)
  expect_error(fitted(fit), class = "hnm_error_data_changed")
  expect_error(anova(fit), class = "hnm_error_data_changed")
  saveRDS(fit, saved)
  expect_error(ranef(readRDS(saved)), class = "hnm_error_data_changed")
})

# The prior weights are kept by reference too, and the pass scales the rows by them: weights
# changed in place are refused as the columns are (a weighted fit with several factors read
# back would otherwise rebuild its model from the new weights, and refit() read them), while
# the live fit's model and a fit read back before the change give the fit's own numbers.
test_that("a weighted fit refuses its weights changed in place", {
  skip_if_not_installed("data.table")
  dt <- data.table::as.data.table(lme4::Penicillin)
  dt$x <- sin(seq_len(nrow(dt)))
  dt$w <- 0.5 + (seq_len(nrow(dt)) %% 5) / 4
  formula <- diameter ~ x + (1 | plate) + (1 | sample)
  fit <- hnm_fit(formula, dt, weights = w, REML = TRUE)
  reference <- lme4::lmer(formula, as.data.frame(dt), weights = w,
                          control = lme4::lmerControl(optimizer = "bobyqa",
                                                      optCtrl = list(rhoend = 1e-12)))
  saved <- tempfile(fileext = ".rds")
  on.exit(unlink(saved))
  saveRDS(fit, saved)
  before <- readRDS(saved)
  data.table::set(dt, i = seq_len(nrow(dt)), j = "w", value = rev(dt$w))
  expect_equal(deviance(refitML(fit)), deviance(lme4::refitML(reference)), tolerance = 1e-7)
  saveRDS(fit, saved)
  expect_error(ranef(readRDS(saved)), class = "hnm_error_data_changed")
  expect_error(refit(fit, dt$diameter), class = "hnm_error_data_changed")
  # The one-factor fit keeps its statistics: only its row-level methods refuse.
  one <- hnm_fit(diameter ~ x + (1 | plate), dt, weights = w)
  data.table::set(dt, i = seq_len(nrow(dt)), j = "w", value = rev(dt$w))
  expect_error(fitted(one), class = "hnm_error_data_changed")
  expect_equal(deviance(refitML(before)), deviance(lme4::refitML(reference)), tolerance = 1e-7)
})
