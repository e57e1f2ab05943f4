# Bad calls to hnm_fit give classed R errors that say what is wrong.

test_that("grouping expressions that are not factors are refused, and statistics of another grouping", {
  d <- simulate_unbalanced(10, 1)
  d$x <- rnorm(nrow(d))
  d$h <- rep(1:2, length.out = nrow(d))
  two <- "hnm_error_unsupported_formula"
  # Several grouping factors are fitted (test-lmm-factors.R); `g + h` and `g * h` are not a
  # factor, which lme4 refuses too.
  expect_error(hnm_fit(y ~ (1 | g + h), d), "`g \\+ h` in .* is not a factor", class = two)
  expect_error(hnm_fit(y ~ (1 | g * h), d), "`g \\* h` in .* is not a factor", class = two)
  # A table of statistics fits the grouping it was computed for (the cells of several).
  expect_error(hnm_fit(y ~ (1 | g/h), hnm_stats(y ~ 1 | g, d)),
               "holds statistics by `g`, but the formula groups by `h:g, g`",
               class = "hnm_error_invalid_statistics")
  expect_error(hnm_fit(y ~ 1, d), "no random-effects term", class = "hnm_error")
  expect_error(hnm_fit(~ 1 | g, d), "two-sided formula", class = "hnm_error")
  # Group statistics and database tables hold the one-way statistics only.
  expect_error(hnm_fit(y ~ x + (1 | g), hnm_stats(y ~ 1 | g, d)), "y ~ 1 \\| g",
               class = "hnm_error_unsupported_formula")
})

test_that("bad data give clear errors", {
  d <- simulate_unbalanced(10, 1)
  expect_error(hnm_fit(y ~ 1 | nope, d), "`nope` is not a column", class = "hnm_error")
  expect_error(hnm_fit(nope ~ 1 | g, d), "`nope` is not a column", class = "hnm_error")
  expect_error(hnm_fit(g ~ 1 | y, d), "must be numeric", class = "hnm_error")
  expect_error(hnm_fit(y ~ 1 | g, d[d$g == d$g[1], ]), "at least 2 groups", class = "hnm_error")
  singletons <- data.frame(y = rnorm(6), g = letters[1:6])
  expect_error(hnm_fit(y ~ 1 | g, singletons), "single observation", class = "hnm_error")
  flat <- data.frame(y = rep(1:3, each = 2), g = rep(letters[1:3], each = 2))
  expect_error(hnm_fit(y ~ 1 | g, flat), "does not vary within any group", class = "hnm_error")
  expect_error(hnm_fit(y ~ 1 | g, transform(d, y = NA_real_)), "no complete rows", class = "hnm_error")
  expect_error(hnm_fit(y ~ 1 | g, d, REML = NA), "TRUE or FALSE", class = "hnm_error")
  expect_error(hnm_fit(y ~ 1 | g, d, REMl = TRUE), "unused argument", class = "hnm_error")
  expect_error(hnm_fit(y ~ 1 | g, transform(d, y = ifelse(seq_along(y) == 3, Inf, y))),
               "must be finite", class = "hnm_error")
})

test_that("every invalid input named in issue 7 is a classed error naming the problem", {
  d <- simulate_unbalanced(10, 1)
  bad_y <- function(value, at = 3) transform(d, y = replace(y, at, value))
  cases <- list(
    list(quote(hnm_fit(y ~ 1 | g, transform(d, y = as.character(y)))), "must be numeric"),
    list(quote(hnm_fit(y ~ 1 | g, transform(d, y = y > 10))), "must be numeric"),
    list(quote(hnm_fit(y ~ 1 | g, transform(d, y = factor(round(y))))), "must be numeric"),
    list(quote(hnm_fit(y ~ 1 | g, bad_y(-Inf))), "must be finite"),
    list(quote(hnm_fit(y ~ 1 | g, d[0, ])), "no complete rows"),
    list(quote(hnm_fit(y ~ 1 | g, transform(d, g = NA))), "no complete rows"),
    list(quote(hnm_fit(y ~ 1 | g, transform(d, y = 5))), "does not vary within any group"),
    list(quote(hnm_fit(y ~ 1 | g, transform(d, g = "only"))), "at least 2 groups"),
    list(quote(hnm_fit(y ~ 1 | g, data.frame(y = 1:2, g = c("a", "a")))), "at least 2 groups"),
    list(quote(hnm_fit(y ~ 1 | g, data.frame(y = 1:3, g = 1:3))), "single observation"),
    list(quote(hnm_fit(y ~ g, d)), "no random-effects term"),
    list(quote(hnm_fit(y ~ (1 | g) + (1 | g), d)), "repeat the column"),
    list(quote(hnm_fit(y ~ 1 | nope, d)), "`nope` is not a column"),
    list(quote(hnm_fit(y ~ 1 | g, as.matrix(d))), "must be a data frame"),
    list(quote(hnm_fit("y ~ 1 | g", d)), "two-sided formula"),
    list(quote(hnm_fit(y ~ 1 | g, d, REML = "no")), "TRUE or FALSE"),
    list(quote(hnm_fit(y ~ 1 | list(g), d)), "grouping variable")
  )
  for (case in cases) {
    expect_error(eval(case[[1]]), case[[2]], class = "hnm_error", label = deparse1(case[[1]]))
  }
})

test_that("NaN in the response is an error, not a silently dropped row", {
  # NA is lme4's missing value and is dropped; NaN is a computation gone wrong upstream.
  d <- simulate_unbalanced(10, 1)
  expect_error(hnm_fit(y ~ 1 | g, transform(d, y = replace(y, 3, NaN))), class = "hnm_error")
})

test_that("sums of squares beyond the double range are errors that say how to rescale", {
  # Deviations of order 1e-200 square to 1e-400 (below the smallest double, about 4.9e-324);
  # of order 1e180, to 1e360 (above the largest, about 1.8e308).
  d <- simulate_unbalanced(10, 1)
  expect_error(hnm_fit(y ~ 1 | g, transform(d, y = y * 1e-200)), "underflow double precision",
               class = "hnm_error")
  expect_error(hnm_fit(y ~ 1 | g, transform(d, y = y * 1e180)), "overflow double precision",
               class = "hnm_error")
})

test_that("lme4's `(1 || g)` is the same model as `(1 | g)`", {
  d <- simulate_unbalanced(10, 1)
  expect_equal(tau2_of(hnm_fit(y ~ 1 + (1 || g), d)), tau2_of(hnm_fit(y ~ 1 | g, d)))
})

test_that("rows with NA in y or g are dropped as lme4 drops them, and nobs counts the rest", {
  skip_if_not_installed("lme4")
  d <- simulate_unbalanced(15, 2)
  d$y[c(2, 9, 30)] <- NA
  d$g[c(5, 31)] <- NA
  fit <- hnm_fit(y ~ 1 | g, d)
  reference <- lme4::lmer(y ~ 1 + (1 | g), d, REML = FALSE)
  expect_identical(nobs(fit), nobs(reference))
  expect_identical(nobs(fit), sum(stats::complete.cases(d)))
  expect_lte(deviance(fit), deviance(reference) + 1e-7)
  # The variances of lme4's fit at hnm's θ (lmer_twin, helper-lmm.R), to rounding: not where lme4's optimiser stops.
  twin <- lmer_twin(fit, y ~ 1 + (1 | g), d)
  expect_equal(sigma2_of(fit), sigma(twin)^2, tolerance = 1e-8)
  expect_equal(tau2_of(fit), as.data.frame(lme4::VarCorr(twin))$vcov[1], tolerance = 1e-8)
  expect_equal(length(residuals(fit)), nobs(fit))
})

test_that("mll_oneway and its derivatives refuse malformed arguments with classed errors", {
  y <- wheat$y; g <- wheat$g
  for (f in list(mll_oneway, mll_oneway_grad, mll_oneway_hess)) {
    expect_error(f(c(16, 1), y, g), "`mus2t2` must have length 3", class = "hnm_error")
    expect_error(f(c(16, 1, 1, 1), y, g), "`mus2t2` must have length 3", class = "hnm_error")
    expect_error(f(c(16, NA, 1), y, g), "must not contain NA", class = "hnm_error")
    expect_error(f(c(16, NaN, 1), y, g), "must not contain NA", class = "hnm_error")
    expect_error(f("16", y, g), "numeric vector", class = "hnm_error")
    expect_error(f(c(16, 1, 1), y, g[-1]), "same length", class = "hnm_error")
    expect_error(f(c(16, 1, 1), y[-1], g), "same length", class = "hnm_error")
    expect_error(f(c(16, 1, 1), replace(y, 2, NA), g), "must not contain NA", class = "hnm_error")
    expect_error(f(c(16, 1, 1), y, replace(g, 2, NA)), "must not contain NA", class = "hnm_error")
    expect_error(f(c(16, 1, 1), replace(y, 2, NaN), g), class = "hnm_error")
    expect_error(f(c(16, 1, 1), replace(y, 2, -Inf), g), "must be finite", class = "hnm_error")
    expect_error(f(c(16, 1, 1), list(1, 2), 1:2), "must be numeric", class = "hnm_error")
  }
})

test_that("every condition class hnm raises is under one prefix and documented", {
  # The classes given to hnm_abort() and hnm_warn() anywhere in the package, read from the
  # installed functions' code: each must be hnm_error_* / hnm_warning_* and appear in
  # ?hnm-conditions. (The Rust core's kinds become hnm_error_<kind> in rust_result().)
  ns <- asNamespace("hnm")
  raised <- character()
  walk <- function(e) {
    if (is.call(e)) {
      if (is.name(e[[1L]]) && as.character(e[[1L]]) %in% c("hnm_abort", "hnm_warn") &&
          !is.null(e$class)) {
        raised <<- c(raised, Filter(is.character, as.list(e$class)))
      }
      for (part in as.list(e)[-1L]) if (!missing(part)) walk(part)
    }
  }
  for (name in ls(ns, all.names = TRUE)) {
    f <- get(name, ns)
    if (is.function(f)) walk(body(f))
  }
  raised <- unique(unlist(raised))
  expect_gt(length(raised), 10L)
  expect_true(all(grepl("^hnm_(error|warning)_[a-z0-9_]+$", raised)),
              label = paste(raised[!grepl("^hnm_(error|warning)_", raised)], collapse = ", "))
  rd <- paste(as.character(tools::Rd_db("hnm")[["hnm-conditions.Rd"]]), collapse = "")
  documented <- vapply(raised, function(class) grepl(class, rd, fixed = TRUE), logical(1))
  expect_true(all(documented), label = paste(raised[!documented], collapse = ", "))
})
