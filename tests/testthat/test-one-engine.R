# The one-way model is the q = p = 1 case of the general model, and since issue 22 every fit
# of it goes through the one general engine (class hnm_fit): the one-way formula `y ~ 1 | g`,
# lme4's spelling `y ~ 1 + (1 | g)` and a spelling with a zero offset all equal the closed
# form of the exact optimum, the root of the profiled score written below from scratch (the
# reference here is this R code, not hnm's Rust closed form), to 1e-12 on 300 random
# datasets, balanced and not, ML and REML, with estimates of tau^2 = 0 among them. hnm's own
# Rust closed form (hnm:::one_way_closed_form, the rs_fit that vcov(full = TRUE) and the
# variance-scale Wald intervals read) is held to the same reference.

# The profiled criterion of the one-way model in lambda = tau^2 / sigma^2 and its derivative
# (mu and sigma^2 profiled out; Searle, Casella & McCulloch 1992, ch. 6), from the group
# sizes n, the group means ybar and the within-group sum of squares ssw. With weights
# w_j = n_j / (1 + n_j lambda), mu(lambda) = sum(w ybar) / sum(w) and
# S(lambda) = ssw + sum(w (ybar - mu)^2):
#   ML:   D = N log(2 pi S / N) + sum(log(1 + n lambda)) + N
#   REML: D = (N - 1) log(2 pi S / (N - 1)) + sum(log(1 + n lambda)) + log(sum(w)) + N - 1
# and, as mu minimises S, S' = sum(w' (ybar - mu)^2) with w'_j = -n_j^2 / (1 + n_j lambda)^2.
one_way_criterion <- function(n, ybar, ssw, reml) {
  N <- sum(n)
  dof <- if (reml) N - 1 else N
  parts <- function(lambda) {
    w <- n / (1 + n * lambda)
    mu <- sum(w * ybar) / sum(w)
    r2 <- (ybar - mu)^2
    list(w = w, mu = mu, s = ssw + sum(w * r2), ds = sum(-w^2 * r2), dw = sum(-w^2))
  }
  list(
    value = function(lambda) {
      p <- parts(lambda)
      dof * log(2 * pi * p$s / dof) + sum(log1p(n * lambda)) + dof +
        if (reml) log(sum(p$w)) else 0
    },
    slope = function(lambda) {
      p <- parts(lambda)
      dof * p$ds / p$s + sum(n / (1 + n * lambda)) + if (reml) p$dw / sum(p$w) else 0
    },
    estimates = function(lambda) {
      p <- parts(lambda)
      sigma2 <- p$s / dof
      list(lambda = lambda, mu = p$mu, sigma2 = sigma2, tau2 = lambda * sigma2)
    }
  )
}

# The global minimum over lambda >= 0: every sign change of the slope on a wide grid,
# bisected to adjacent doubles, and lambda = 0; the lowest criterion wins.
one_way_optimum <- function(n, ybar, ssw, reml) {
  crit <- one_way_criterion(n, ybar, ssw, reml)
  grid <- c(0, 10^seq(-8, 8, length.out = 400))
  slopes <- vapply(grid, crit$slope, numeric(1))
  candidates <- 0
  for (i in which(slopes[-length(slopes)] < 0 & slopes[-1L] >= 0)) {
    lo <- grid[i]
    hi <- grid[i + 1L]
    repeat {
      mid <- (lo + hi) / 2
      if (mid <= lo || mid >= hi) break
      if (crit$slope(mid) < 0) lo <- mid else hi <- mid
    }
    candidates <- c(candidates, lo, hi)
  }
  values <- vapply(candidates, crit$value, numeric(1))
  c(crit$estimates(candidates[which.min(values)]), criterion = min(values))
}

# Datasets: 2-40 groups, balanced or of sizes 1-15, tau from 0 (so that the estimate is often
# exactly 0) to 3 times sigma, about a level of 0 or 1e3.
one_engine_dataset <- function(seed) {
  set.seed(seed)
  m <- sample(2:40, 1L)
  sizes <- if (seed %% 2L == 0L) rep(sample(2:8, 1L), m) else sample(1:15, m, replace = TRUE)
  if (sum(sizes) <= m) sizes[1L] <- sizes[1L] + 2L
  tau <- c(0, 0, 0.3, 1, 3)[seed %% 5L + 1L]
  g <- factor(rep(seq_len(m), sizes))
  level <- if (seed %% 3L == 0L) 1e3 else 0
  data.frame(g, y = level + tau * rnorm(m)[g] + rnorm(sum(sizes)), zero = 0)
}

# |actual - expected| <= 1e-12 scale.
expect_close <- function(actual, expected, scale, label) {
  expect_lte(abs(actual - expected), 1e-12 * scale, label = label)
}

test_that("the one engine on the one-way model equals the closed-form optimum to 1e-12", {
  paths <- list(one_way = y ~ 1 | g, lme4 = y ~ 1 + (1 | g), offset = y ~ 1 + offset(zero) + (1 | g))
  on_boundary <- 0L
  for (seed in seq_len(300L)) {
    d <- one_engine_dataset(seed)
    n <- as.vector(table(d$g))
    ybar <- as.vector(tapply(d$y, d$g, mean))
    ssw <- sum((d$y - ybar[d$g])^2)
    for (reml in c(FALSE, TRUE)) {
      exact <- one_way_optimum(n, ybar, ssw, reml)
      on_boundary <- on_boundary + (exact$lambda == 0)
      for (path in names(paths)) {
        label <- sprintf("seed %d, %s, %s", seed, if (reml) "REML" else "ML", path)
        fit <- hnm_fit(paths[[path]], d, REML = reml)
        expect_identical(class(fit), "hnm_fit", label = label)
        expect_equal(-2 * c(logLik(fit)), exact$criterion, tolerance = 1e-12, label = label)
        expect_equal(sigma(fit)^2, exact$sigma2, tolerance = 1e-12, label = label)
        # mu to 1e-12 of its scale (it can be 0), lambda = theta^2 and tau^2 to 1e-12 of
        # their scales (sigma^2 for tau^2); an estimate of 0 is exactly 0.
        theta2 <- unname(getME(fit, "theta"))^2
        tau2 <- as.data.frame(VarCorr(fit))$vcov[1L]
        if (exact$lambda == 0) expect_identical(c(theta2, tau2), c(0, 0), label = label)
        expect_close(unname(fixef(fit)), exact$mu, max(abs(exact$mu), sqrt(exact$sigma2)), label)
        expect_close(theta2, exact$lambda, max(exact$lambda, 1), label)
        expect_close(tau2, exact$tau2, max(exact$tau2, exact$sigma2), label)
        if (path == "one_way") {
          # hnm's Rust closed form, the oracle of the one-way extras, at the same optimum.
          closed <- hnm:::one_way_closed_form(fit, NULL)
          label <- paste(label, "(Rust closed form)")
          if (exact$lambda == 0) expect_identical(closed$tau2, 0, label = label)
          expect_close(closed$mu, exact$mu, max(abs(exact$mu), sqrt(exact$sigma2)), label)
          expect_equal(closed$sigma2, exact$sigma2, tolerance = 1e-12, label = label)
          expect_close(closed$tau2, exact$tau2, max(exact$tau2, exact$sigma2), label)
        }
      }
    }
  }
  # The grid has estimates on the boundary and inside it.
  expect_gt(on_boundary, 60L)
  expect_lt(on_boundary, 540L)
})
