# predict() on new data and re.form naming some random-effects terms, for the one-way and the
# general model: against lme4's predict() and simulate() evaluated at hnm's θ (so the two fits
# are the same closed-form functions of θ and agree to rounding), and against the identity
# predict(fit, fit's rows) == fitted(fit).

# lme4's fit at hnm's θ: lme4's deviance function evaluated there and rebuilt as a merMod, so
# lme4's β̂(θ), σ̂(θ) and conditional modes are computed by lme4 at the same θ.
lmer_at <- function(fit, formula, data) {
  frame <- lme4::lFormula(formula, data, REML = fit$method == "REML")
  devfun <- do.call(lme4::mkLmerDevfun, frame)
  theta <- unname(fit$theta)
  value <- devfun(theta)
  opt <- list(par = theta, fval = value, conv = 0L, feval = 1L, message = "at hnm's theta")
  suppressWarnings(lme4::mkMerMod(environment(devfun), opt, frame$reTrms, fr = frame$fr))
}

# 15 groups of 6-14 rows; x of large spread and offset (data-dependent bases matter), z, w.
predict_data <- function(seed = 1) {
  set.seed(seed)
  sizes <- sample(6:14, 15, replace = TRUE)
  g <- factor(rep(sprintf("s%02d", seq_along(sizes)), sizes))
  n <- sum(sizes)
  x <- 50 + 10 * rnorm(n)
  z <- runif(n)
  j <- as.integer(g)
  y <- 3 + 0.2 * x - 0.004 * (x - 50)^2 + z + rnorm(15, sd = 2)[j] +
    rnorm(15, sd = 0.05)[j] * (x - 50) + rnorm(n)
  data.frame(y, x, z, g)
}

test_that("predict(newdata) evaluates poly(), scale(), ns() and bs() with the fit's bases", {
  skip_if_not_installed("lme4")
  d <- predict_data()
  new <- d[c(1, 20, 40), ]
  # Each data-dependent term in the fixed part, and alone in a random part (a column named as
  # one of X's is X's column), where its variance is well away from 0.
  formulas <- list(y ~ poly(x, 2) + (1 | g),
                   y ~ scale(x) + z + (1 | g),
                   y ~ x + (scale(x) | g),
                   y ~ splines::ns(x, 3) + (1 | g),
                   y ~ splines::bs(x, 3) + (1 | g) + (0 + poly(x, 1) | g))
  for (formula in formulas) {
    label <- deparse1(formula)
    fit <- hnm_fit(formula, d)
    # The fit's own rows as new data give the fitted values (an identity of the closed form).
    expect_equal(predict(fit, newdata = new), unname(fitted(fit)[c(1, 20, 40)]),
                 tolerance = 1e-10, label = label)
    expect_equal(predict(fit, newdata = new, re.form = NA),
                 unname(predict(fit, re.form = NA)[c(1, 20, 40)]), tolerance = 1e-10,
                 label = label)
    ref <- lmer_at(fit, formula, d)
    expect_equal(predict(fit, newdata = new), unname(predict(ref, newdata = new)),
                 tolerance = 1e-8, label = label)
    expect_equal(predict(fit, newdata = new, re.form = NA),
                 unname(predict(ref, newdata = new, re.form = NA)), tolerance = 1e-8, label = label)
    # A fit from the rows' statistics table keeps the rows' bases too.
    from_table <- hnm_fit(formula, hnm_stats(formula, d))
    expect_equal(predict(from_table, newdata = new),
                 unname(predict(lmer_at(from_table, formula, d), newdata = new)), tolerance = 1e-8,
                 label = paste(label, "from hnm_stats()"))
  }
})

test_that("re.form naming some random-effects terms keeps only their effects, as lme4's", {
  skip_if_not_installed("lme4")
  d <- predict_data(2)
  new <- d[c(3, 30, 60, 90), ]
  cases <- list(
    list(formula = y ~ x + (1 | g) + (0 + z | g), forms = list(~ (1 | g), ~ (0 + z | g))),
    list(formula = y ~ x + (z || g), forms = list(~ (1 | g), ~ (0 + z | g), ~ (z || g))),
    list(formula = y ~ x + (z | g), forms = list(~ (1 | g), ~ (0 + z | g), ~ (z | g)))
  )
  for (case in cases) {
    fit <- hnm_fit(case$formula, d)
    ref <- lmer_at(fit, case$formula, d)
    for (form in case$forms) {
      label <- paste(deparse1(case$formula), deparse1(form))
      expect_equal(predict(fit, re.form = form), unname(predict(ref, re.form = form)),
                   tolerance = 1e-8, label = label)
      expect_equal(predict(fit, newdata = new, re.form = form),
                   unname(predict(ref, newdata = new, re.form = form)), tolerance = 1e-8,
                   label = label)
    }
  }
  fit <- hnm_fit(y ~ x + (1 | g) + (0 + z | g), d)
  ref <- lmer_at(fit, y ~ x + (1 | g) + (0 + z | g), d)
  # Terms or grouping factors the model does not have: an error, as in lme4.
  for (form in list(~ (0 + x | g), ~ (1 | z), ~ (1 | g) + x, y ~ (1 | g))) {
    expect_error(predict(fit, re.form = form), "re.form", class = "hnm_error_argument",
                 label = deparse1(form))
  }
  expect_error(predict(ref, re.form = ~ (0 + x | g)))  # lme4 refuses it too
  expect_error(simulate(fit, re.form = ~ (0 + x | g)), "does not have",
               class = "hnm_error_argument")
  expect_error(simulate(fit, use.u = TRUE, re.form = NA), "one of", class = "hnm_error_argument")
  # A term named in part would be conditioned on and drawn anew: refused by simulate().
  correlated <- hnm_fit(y ~ x + (z | g), d)
  expect_error(simulate(correlated, re.form = ~ (1 | g)), "some columns",
               class = "hnm_error_argument")

  one_way <- hnm_fit(y ~ 1 | g, d)
  one_way_ref <- lmer_at(one_way, y ~ 1 + (1 | g), d)
  expect_equal(predict(one_way, newdata = new, re.form = ~ (1 | g)),
               unname(predict(one_way_ref, newdata = new, re.form = ~ (1 | g))), tolerance = 1e-8)
  for (form in list(~ (1 | z), ~ (0 + x | g), ~ x)) {
    expect_error(predict(one_way, re.form = form), "re.form", class = "hnm_error_argument",
                 label = deparse1(form))
    expect_error(simulate(one_way, re.form = form), "re.form", class = "hnm_error_argument",
                 label = deparse1(form))
  }
})

test_that("simulate(re.form = ~ (1 | g)) conditions on that term and draws the other anew", {
  skip_if_not_installed("lme4")
  d <- predict_data(3)
  formula <- y ~ x + (1 | g) + (0 + z | g)
  fit <- hnm_fit(formula, d)
  ref <- lmer_at(fit, formula, d)
  # The distribution lme4's simulate() defines: mean X β̂ + b̂₀[g], variance σ̂² (1 + λ_z² z²)
  # (σ̂ λ_z the SD of the z slope), checked on 4000 draws against the normal and chi-square
  # sampling errors (z-scores below 5 for every row).
  nsim <- 4000
  sims <- as.matrix(simulate(fit, nsim = nsim, seed = 11, re.form = ~ (1 | g)))
  mean_ref <- unname(predict(ref, re.form = ~ (1 | g)))
  slope_sd <- attr(lme4::VarCorr(ref)[["g.1"]], "stddev")[["z"]]
  var_ref <- sigma(ref)^2 + slope_sd^2 * d$z^2
  expect_lt(max(abs(rowMeans(sims) - mean_ref) / sqrt(var_ref / nsim)), 5)
  expect_lt(max(abs(apply(sims, 1, var) / var_ref - 1) / sqrt(2 / (nsim - 1))), 5)
  # For re.form = ~ (0 + z | g) lme4 draws the intercepts anew, then the errors, as hnm does:
  # the same simulations for a seed. (Not a reference for ~ (1 | g): lme4 1.1-31 scales the z
  # slopes drawn there by the intercept's θ, as its complement's Lind restarts at 1; the
  # distribution above is the reference there.)
  expect_equal(as.matrix(simulate(fit, nsim = 2, seed = 5, re.form = ~ (0 + z | g))),
               as.matrix(simulate(ref, nsim = 2, seed = 5, re.form = ~ (0 + z | g))),
               tolerance = 1e-8, ignore_attr = TRUE)
  # Draws within a group share the z slope: the covariance of two rows of one group.
  rows <- which(d$g == d$g[1])[1:2]
  covariance <- stats::cov(sims[rows[1], ], sims[rows[2], ])
  expected <- slope_sd^2 * d$z[rows[1]] * d$z[rows[2]]
  expect_lt(abs(covariance - expected) / sqrt((var_ref[rows[1]] * var_ref[rows[2]] +
                                                 expected^2) / nsim), 5)
})

test_that("population predictions read no random-part variable; levels match by label", {
  skip_if_not_installed("lme4")
  d <- predict_data(4)
  formula <- y ~ x + (x | g)
  fit <- hnm_fit(formula, d)
  ref <- lmer_at(fit, formula, d)
  expect_equal(predict(fit, newdata = d["x"], re.form = NA),
               unname(predict(ref, newdata = d["x"], re.form = NA)), tolerance = 1e-8)
  # Nor the variables of the random part only.
  slopes <- hnm_fit(y ~ x + (1 | g) + (0 + z | g), d)
  expect_equal(predict(slopes, newdata = d["x"], re.form = NA),
               unname(predict(lmer_at(slopes, y ~ x + (1 | g) + (0 + z | g), d), newdata = d["x"],
                              re.form = NA)), tolerance = 1e-8)
  one_way <- hnm_fit(y ~ 1 | g, d)
  expect_equal(predict(one_way, newdata = d["x"], re.form = NA), rep(fixef(one_way)[[1L]], nrow(d)))
  # The group as a factor with other levels and order, as character, with a new level and NA.
  labels <- c("s07", "s01", "new", NA, "s15")
  new <- data.frame(x = c(40, 50, 60, 55, 45))
  expected <- unname(predict(ref, newdata = cbind(new, g = labels), allow.new.levels = TRUE))
  for (g in list(labels, factor(labels, levels = c("zz", rev(levels(d$g)), "new")))) {
    expect_equal(predict(fit, newdata = cbind(new, g = g), allow.new.levels = TRUE), expected,
                 tolerance = 1e-8)
  }
  expect_error(predict(fit, newdata = cbind(new, g = labels)), "new", class = "hnm_error_new_levels")
  # Numeric groups: the fit's labels are factor()'s of the numbers.
  d$h <- as.integer(d$g) * 10L
  fit_h <- hnm_fit(y ~ x + (x | h), d)
  ref_h <- lmer_at(fit_h, y ~ x + (x | h), d)
  new_h <- data.frame(x = c(40, 50, 60), h = c(30L, 150L, 7L))
  for (h in list(new_h$h, as.double(new_h$h), as.character(new_h$h))) {
    expect_equal(predict(fit_h, newdata = transform(new_h, h = h), allow.new.levels = TRUE),
                 unname(predict(ref_h, newdata = new_h, allow.new.levels = TRUE)), tolerance = 1e-8)
  }
})
