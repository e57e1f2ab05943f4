# Bad calls to hnm_fit give classed R errors that say what is wrong.

test_that("unsupported formulas are refused with a pointer to lme4", {
  d <- simulate_unbalanced(10, 1)
  d$x <- rnorm(nrow(d))
  expect_error(hnm_fit(y ~ x + (1 | g), d), "covariates", class = "hnm_unsupported_formula")
  expect_error(hnm_fit(y ~ 1 + (x | g), d), "random slope", class = "hnm_error")
  expect_error(hnm_fit(y ~ 1, d), "no grouping term", class = "hnm_error")
  expect_error(hnm_fit(y ~ (1 | g) + (1 | x), d), "more than one grouping term", class = "hnm_error")
  expect_error(hnm_fit(~ 1 | g, d), "two-sided formula", class = "hnm_error")
  expect_error(hnm_fit(y ~ x + (1 | g), d), "lme4::lmer")
  # The lecture's "more complicated example".
  expect_error(hnm_fit(mscore ~ flp + enroll + ses + (ses | school), nels),
               "y ~ 1 \\| g", class = "hnm_unsupported_formula")
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
