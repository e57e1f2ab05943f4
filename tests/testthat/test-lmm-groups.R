# Grouping variables of every plain type give the general model lme4's fit: the groups and
# their order are factor()'s (lme4 converts the variable with factor()), unused values of an
# integer range are left out, and rows with a missing group are dropped.

test_that("integer, double, logical and character groups give lme4's groups and fit", {
  skip_if_not_installed("lme4")
  set.seed(8)
  d <- lme4::sleepstudy[sample(nrow(lme4::sleepstudy)), ] # groups first seen out of order
  subject <- as.integer(as.character(d$Subject))
  groups <- list(
    factor = d$Subject,
    small_integers = subject,
    integers_with_gaps = subject * 3L - 900L,
    wide_integers = subject * 1000000L,
    doubles = subject / 7,
    characters = paste0("s", subject),
    logicals = subject > 340L
  )
  for (name in names(groups)) {
    d$g <- groups[[name]]
    d$g[c(3, 50)] <- NA
    fit <- hnm_fit(Reaction ~ Days + (Days | g), d)
    reference <- lmer_default(Reaction ~ Days + (Days | g), d, REML = FALSE)
    expect_lte(deviance(fit), deviance(reference) + 1e-7)
    # The BLUPs of lme4's fit at hnm's θ, to rounding: on sleepstudy lme4's default optimiser
    # stops about 3e-5 from the optimum in θ, which moves the BLUPs by 2e-5, and the row order
    # moves its stop (the tolerance was 1e-4).
    twin <- lmer_twin(fit, Reaction ~ Days + (Days | g), d)
    expect_identical(rownames(ranef(fit)$g), rownames(lme4::ranef(twin)$g), label = name)
    expect_equal(as.data.frame(ranef(fit)), as.data.frame(lme4::ranef(twin)),
                 tolerance = 1e-8, label = name)
    expect_identical(nobs(fit), nobs(twin), label = name)
  }
})

test_that("a grouping variable with classes or of another type goes through factor()", {
  d <- lme4::sleepstudy
  d$g <- as.Date("2020-01-01") + as.integer(d$Subject)
  fit <- hnm_fit(Reaction ~ Days + (Days | g), d)
  expect_identical(rownames(ranef(fit)$g), levels(factor(d$g)))
})
