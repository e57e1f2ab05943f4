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

# Issue 25: the groups of the general model are those of the one-way model and lme4.
test_that("a NaN group is a missing group even when doubles collide at 15 digits", {
  skip_if_not_installed("lme4")
  control <- lme4::lmerControl(optimizer = "bobyqa",
                               optCtrl = list(rhoend = 1e-12, maxfun = 1e5))
  set.seed(25)
  # 0.3 and 0.30000000000000004 print alike (factor() merges them into one group, as lme4
  # does), which sends the grouping through factor(); NaN must still be dropped as NA.
  values <- c(NaN, 0.3, 0.30000000000000004, 1:6)
  d <- data.frame(g = c(values, sample(values[-1L], 40, replace = TRUE)))
  d$x <- rnorm(nrow(d))
  d$y <- 1 + d$x + rnorm(nrow(d))
  for (formula in list(y ~ 1 + (1 | g), y ~ x + (1 | g))) {
    label <- deparse1(formula)
    fit <- hnm_fit(formula, d)
    ref <- lme4::lmer(formula, d, REML = FALSE, control = control)
    expect_identical(nobs(fit), nobs(ref), label = label)
    expect_equal(unname(ngrps(fit)), unname(lme4::ngrps(ref)), label = label)
    expect_identical(rownames(ranef(fit)$g), rownames(lme4::ranef(ref)$g), label = label)
    expect_equal(deviance(fit), deviance(ref), tolerance = 1e-8, label = label)
  }
})

test_that("addNA() and corrupt factors are refused by the general model as by the one-way", {
  d <- lme4::sleepstudy
  with_na <- d
  with_na$Subject[1:10] <- NA
  with_na$Subject <- addNA(with_na$Subject)
  duplicated_level <- d
  duplicated_level$Subject <- structure(unclass(d$Subject),
                                        levels = replace(levels(d$Subject), 2L, levels(d$Subject)[1L]),
                                        class = "factor")
  out_of_range <- d
  out_of_range$Subject <- structure(c(99L, unclass(d$Subject)[-1L]), levels = levels(d$Subject),
                                    class = "factor")
  for (formula in list(Reaction ~ 1 | Subject, Reaction ~ Days + (Days | Subject))) {
    label <- deparse1(formula)
    expect_error(hnm_fit(formula, with_na), "NA as a level", class = "hnm_error", label = label)
    expect_error(hnm_fit(formula, duplicated_level), "corrupt factor", class = "hnm_error",
                 label = label)
    expect_error(hnm_fit(formula, out_of_range), "99", class = "hnm_error", label = label)
  }
})

test_that("(1 | a:b) is the interaction factor, for character and numeric columns", {
  skip_if_not_installed("lme4")
  control <- lme4::lmerControl(optimizer = "bobyqa",
                               optCtrl = list(rhoend = 1e-12, maxfun = 1e5))
  set.seed(5)
  d <- data.frame(a = sample(1:6, 60, replace = TRUE), b = sample(1:3, 60, replace = TRUE),
                  x = rnorm(60))
  d$y <- d$x + rnorm(18)[(d$a - 1) * 3 + d$b] + rnorm(60)
  d$a[7] <- NA
  columns <- list(numeric = d, character = transform(d, a = letters[a], b = LETTERS[b]))
  for (name in names(columns)) {
    for (formula in list(y ~ 1 + (1 | a:b), y ~ x + (1 | a:b))) {
      label <- paste(name, deparse1(formula))
      expect_no_warning(fit <- hnm_fit(formula, columns[[name]]))
      ref <- lme4::lmer(formula, columns[[name]], REML = FALSE, control = control)
      expect_equal(unname(ngrps(fit)), unname(lme4::ngrps(ref)), label = label)
      expect_identical(nobs(fit), nobs(ref), label = label)
      expect_identical(rownames(ranef(fit)[[1L]]), rownames(lme4::ranef(ref)[[1L]]),
                       label = label)
      expect_equal(deviance(fit), deviance(ref), tolerance = 1e-8, label = label)
    }
  }
})

test_that("`.` in the fixed part stands for the other columns; in a random term it is refused", {
  skip_if_not_installed("lme4")
  control <- lme4::lmerControl(optimizer = "bobyqa",
                               optCtrl = list(rhoend = 1e-12, maxfun = 1e5))
  set.seed(6)
  d <- data.frame(g = rep(letters[1:12], each = 6), x = rnorm(72), z = runif(72),
                  f = factor(sample(c("p", "q"), 72, replace = TRUE)))
  d$y <- 1 + d$x - d$z + rnorm(12)[as.integer(factor(d$g))] + rnorm(72)
  explicit <- y ~ x + z + f + (1 | g)
  ref <- lme4::lmer(explicit, d, REML = FALSE, control = control)
  for (formula in list(y ~ . + (1 | g), y ~ . + (x | g), y ~ . - f + (1 | g))) {
    fit <- hnm_fit(formula, d)
    expected <- if (identical(formula, y ~ . - f + (1 | g))) c("(Intercept)", "x", "z") else
      names(lme4::fixef(ref))
    expect_identical(names(fixef(fit)), expected, label = deparse1(formula))
  }
  fit <- hnm_fit(y ~ . + (1 | g), d)
  expect_equal(fixef(fit), lme4::fixef(ref), tolerance = 1e-6)
  expect_equal(deviance(fit), deviance(ref), tolerance = 1e-8)
  expect_error(hnm_fit(y ~ x + (. | g), d), "`.` in a random-effects term",
               class = "hnm_error_formula")
  expect_error(hnm_fit(y ~ . + (1 | g)), "not a data frame", class = "hnm_error_formula")
})
