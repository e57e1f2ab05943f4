# The data pass reads every kind of response and group column in place. Whatever the
# column types, the fit must be lme4::lmer(REML = FALSE)'s (lme4 turns any grouping
# variable into a factor itself), the groups must come in factor()'s level order, and NA
# rows must be dropped as lme4's na.omit drops them.

# The same grouping in every type the pass reads natively (and one it hands to factor()).
group_columns <- function(codes) {
  labels <- c("b", "A", "a", "B", "c10", "c9", "Zeta", "alpha")[seq_len(max(codes))]
  list(
    factor = factor(labels[codes], levels = rev(labels)),
    factor_unused_level = factor(labels[codes], levels = c("unused", labels)),
    character = labels[codes],
    integer = c(-7L, 3L, 1000000L, 0L, 42L, -1L, 5L, 9L)[codes],   # hashed
    integer_small_range = c(-3L, 0L, 7L, 2L, 5L, 1L, 4L, 9L)[codes], # indexed directly
    double = c(2.5, -1e10, 0.1, 1e-300, 7, -0.5, 3, 1e15)[codes],             # hashed
    double_small_range = c(-3, 0, 7, 2, 5, 1, 4, 9)[codes],                   # indexed directly
    double_near_1e5 = 1e5 + c(-3, 0, 7, 2, 5, 1, 4, 9)[codes],                # labels as "1e+05"
    logical = codes %% 3 == 0,
    date = as.Date("2020-01-01") + c(30, 1, 400, 2, 9, 100, 3, 4)[codes],
    complex = complex(real = codes, imaginary = -codes)
  )
}

test_that("every response and group type gives lme4's fit, groups in factor() order", {
  skip_if_not_installed("lme4")
  set.seed(11)
  sizes <- c(3, 5, 2, 7, 4, 6, 1, 5)
  codes <- sample(rep(seq_along(sizes), sizes))          # rows interleaved across groups
  y_double <- 20 + rnorm(length(sizes), 0, 3)[codes] + rnorm(length(codes), 0, 2)
  responses <- list(double = y_double, integer = as.integer(round(10 * y_double)))
  for (y_name in names(responses)) {
    for (g_name in names(group_columns(codes))) {
      label <- sprintf("y %s, g %s", y_name, g_name)
      d <- data.frame(y = responses[[y_name]])
      d$g <- group_columns(codes)[[g_name]]
      d$y[c(4, 17)] <- NA
      d$g[c(9, 30)] <- NA
      fit <- hnm_fit(y ~ 1 | g, d)
      ref <- suppressMessages(lme4::lmer(y ~ 1 + (1 | g), d, REML = FALSE))
      expect_lte(deviance(fit), deviance(ref) + 1e-7, label = label)
      # The numbers of lme4's fit at hnm's θ, to rounding: lme4's own stop moves τ² by 1e-8 to
      # 1.5e-7 (relative) on these data, depending only on the order of the group levels.
      twin <- lmer_twin(fit, y ~ 1 + (1 | g), d)
      twin_vc <- as.data.frame(lme4::VarCorr(twin))
      expect_equal(unname(fixef(fit)), unname(lme4::fixef(twin)), tolerance = 1e-8, label = label)
      expect_equal(sigma2_of(fit), twin_vc$vcov[2], tolerance = 1e-8, label = label)
      expect_equal(tau2_of(fit), twin_vc$vcov[1], tolerance = 1e-8, label = label)
      expect_equal(c(logLik(fit)), c(logLik(twin)), tolerance = 1e-10, label = label)
      expect_identical(nobs(fit), nobs(ref), label = label)
      expect_identical(nobs(fit), nrow(d) - 4L, label = label)
      # lme4's random-effect rows follow the levels of its grouping factor.
      expect_identical(fit$levels, rownames(lme4::ranef(ref)$g), label = label)
      expect_identical(fit$levels, levels(droplevels(factor(d$g[!is.na(d$y)]))),
                       label = label)
      expect_equal(unname(fitted(fit)), unname(fitted(twin)), tolerance = 1e-8, label = label)
      expect_equal(unname(residuals(fit)), unname(residuals(twin)), tolerance = 1e-8,
                   label = label)
    }
  }
})

test_that("group statistics match a direct computation for every group type", {
  # Reference: tapply() over the complete rows, with groups as factor() orders them.
  set.seed(5)
  codes <- sample(rep(1:6, c(4, 1, 6, 3, 5, 2)))
  y <- round(rnorm(length(codes), 50, 10), 1)
  y[7] <- NA
  for (g_name in names(group_columns(codes))) {
    g <- group_columns(codes)[[g_name]]
    g[2] <- NA
    d <- data.frame(y = y)
    d$g <- g
    s <- hnm_stats(y ~ 1 | g, d)
    ok <- !is.na(y) & !is.na(g)
    f <- droplevels(factor(g[ok]))
    expect_identical(s$group, levels(f), label = g_name)
    expect_equal(s$n, as.vector(table(f)), label = g_name)
    expect_equal(s$mean, unname(c(tapply(y[ok], f, mean))), tolerance = 1e-14, label = g_name)
    expect_equal(s$ss, unname(c(tapply(y[ok], f, function(v) sum((v - mean(v))^2)))),
                 tolerance = 1e-12, label = g_name)
    expect_identical(attr(s, "n_dropped"), 2L, label = g_name)
  }
})

test_that("doubles that factor() labels alike are one group, as in factor()", {
  # as.character(0.1 + 0.2) == "0.3": factor() gives one level for both values.
  g <- c(0.1 + 0.2, 0.3, 0.3, 1, 1, 1)
  s <- hnm_stats(y ~ 1 | g, data.frame(y = c(1, 2, 4, 5, 6, 8), g = g))
  expect_identical(s$group, levels(factor(g)))
  expect_equal(s$n, c(3, 3))
})

test_that("a large offset keeps the within-group SS exact through every group type", {
  # y = 1e12 + k/4 is exactly representable (the spacing of doubles near 1e12 is 2^-13),
  # so the exact SSW and, for these balanced data with well separated groups (interior
  # optimum), the closed-form ML sigma^2 = SSW/(N - m) follow from the integers k.
  codes <- rep(1:4, each = 3)
  k <- c(1, 2, 4, 3, 3, 6, 0, 5, 9, 2, 2, 3) + 40 * c(3, 0, 1, 2)[codes]
  exact_ss <- vapply(split(k / 4, codes), function(v) sum((v - mean(v))^2), 0)
  for (g in list(codes, as.character(codes), factor(codes), as.double(codes))) {
    fit <- hnm_fit(y ~ 1 | g, data.frame(y = 1e12 + k / 4, g = g))
    expect_equal(hnm:::fit_one_way_statistics(fit)$ss, unname(exact_ss), tolerance = 1e-15)
    expect_equal(sigma2_of(fit), sum(exact_ss) / (12 - 4), tolerance = 1e-14)
  }
})

test_that("a NaN or infinite response is an error naming the response and the row", {
  d <- data.frame(yield = c(1, 2, 3, 4, 5, 6), batch = rep(c("a", "b"), 3))
  for (bad in list(NaN, Inf, -Inf)) {
    d$yield[5] <- bad
    expect_error(hnm_fit(yield ~ 1 | batch, d),
                 sprintf("response `yield` must be finite.*row 5 is %s", format(bad)),
                 class = "hnm_error")
  }
  d$yield[5] <- NA_real_                                 # NA itself is dropped
  expect_identical(nobs(hnm_fit(yield ~ 1 | batch, d)), 5L)
})

test_that("the fit keeps the data columns by reference, integer y included", {
  skip_if_not(capabilities("profmem"))
  d <- data.frame(y = as.integer(round(100 * rnorm(40))), g = rep(c("p", "q", "r", "s"), 10))
  fit <- hnm_fit(y ~ 1 | g, d)
  # tracemem() reports an object's address.
  # The response among the fit's rows; the grouping column in the data the fit keeps.
  expect_identical(tracemem(fit$rows$variables[[fit$spec$response]]), tracemem(d$y))
  expect_identical(tracemem(fit$data$g), tracemem(d$g))
  untracemem(d$y); untracemem(d$g)
})
