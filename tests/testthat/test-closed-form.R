# The ML estimate against closed forms: exact to 1e-10 (the optimiser converges to the root
# of the profiled score, not just near it).

balanced_ml_closed_form <- function(y, g) {
  # Balanced one-way ML (e.g. Searle, Casella & McCulloch 1992, sec. 3.7):
  # sigma2 = MSE, tau2 = ((1 - 1/m) MSG - MSE) / n, when positive. Mean squares by two passes.
  ybar <- tapply(y, g, mean)
  m <- length(ybar); n <- length(y) / m
  mse <- sum((y - ybar[as.character(g)])^2) / (length(y) - m)
  msg <- n * sum((ybar - mean(y))^2) / (m - 1)
  list(mu = mean(y), sigma2 = mse, tau2 = ((1 - 1 / m) * msg - mse) / n)
}

test_that("balanced ML equals the closed form to 1e-10", {
  datasets <- list(
    wheat = hnm::wheat,
    dyestuff = data.frame(y = lme4::Dyestuff$Yield, g = lme4::Dyestuff$Batch)
  )
  set.seed(11)
  datasets$offset <- data.frame(g = rep(1:12, each = 4))
  datasets$offset$y <- 1e6 + rnorm(12)[datasets$offset$g] + rnorm(48)
  for (name in names(datasets)) {
    d <- datasets[[name]]
    fit <- hnm_fit(y ~ 1 | g, d)
    exact <- balanced_ml_closed_form(d$y, d$g)
    expect_equal(unname(fixef(fit)), exact$mu, tolerance = 1e-12, label = name)
    expect_equal(sigma2_of(fit), exact$sigma2, tolerance = 1e-10, label = name)
    expect_equal(tau2_of(fit), exact$tau2, tolerance = 1e-10, label = name)
  }
})

test_that("unbalanced ML solves the profiled score equation to machine precision", {
  d <- simulate_unbalanced(30, 5)
  fit <- hnm_fit(y ~ 1 | g, d)
  # Profiled log-likelihood in lambda = tau2/sigma2, written from scratch here.
  n <- tapply(d$y, d$g, length); ybar <- tapply(d$y, d$g, mean)
  ssw <- sum((d$y - ybar[d$g])^2); N <- sum(n)
  profiled <- function(lambda) {
    w <- n / (1 + n * lambda)
    mu <- sum(w * ybar) / sum(w)
    q <- ssw + sum(w * (ybar - mu)^2)
    -0.5 * (N * log(q / N) + sum(log(1 + n * lambda)))
  }
  score <- function(lambda) numDeriv::grad(profiled, lambda)
  root <- uniroot(score, c(1e-3, 10), tol = 1e-14)$root
  expect_equal(tau2_of(fit) / sigma2_of(fit), root, tolerance = 1e-9)
  expect_lt(fit$convergence$projected_gradient_norm, 1e-8)
})
