# hnm_devfun(): the profiled criterion equals lme4's devFunOnly function at the same theta, its
# gradient attribute equals numDeriv's gradient of lme4's function, optim() with it reaches
# hnm_fit()'s optimum, the one-way criterion is the lecture's dense mll.oneway profiled over
# (mu, sigma2), and a bad theta is an error naming the problem.

devfun_models <- function() {
  list(
    sleepstudy = list(formula = Reaction ~ Days + (Days | Subject), data = lme4::sleepstudy,
                      thetas = list(c(1, 0, 1), c(0.9, 0.1, 0.2), c(2, -0.5, 0.3),
                                    c(0, 0.5, 0.2), c(1, 0.5, 0), c(0, 0, 0.3))),
    uncorrelated = list(formula = Reaction ~ Days + (Days || Subject), data = lme4::sleepstudy,
                        thetas = list(c(1, 1), c(0.5, 0), c(0, 0.3))),
    dyestuff = list(formula = Yield ~ 1 + (1 | Batch), data = lme4::Dyestuff,
                    thetas = list(0.5, 1, 0, 2)),
    penicillin = list(formula = diameter ~ 1 + (1 | plate) + (1 | sample),
                      data = lme4::Penicillin, thetas = list(c(1, 1), c(1.5, 3), c(0, 2)))
  )
}

test_that("the criterion and its gradient equal lme4's devFunOnly function's, ML and REML", {
  skip_if_not_installed("lme4")
  skip_if_not_installed("numDeriv")
  for (name in names(devfun_models())) {
    model <- devfun_models()[[name]]
    for (reml in c(FALSE, TRUE)) {
      ours <- hnm_devfun(model$formula, model$data, REML = reml)
      theirs <- lme4::lmer(model$formula, model$data, REML = reml, devFunOnly = TRUE)
      expect_equal(attr(ours, "lower"), lme4::getME(
        lme4::lmer(model$formula, model$data, REML = reml), "lower"), ignore_attr = TRUE)
      for (theta in model$thetas) {
        label <- sprintf("%s, REML = %s, theta = (%s)", name, reml, toString(theta))
        value <- ours(theta)
        expect_equal(as.vector(value), theirs(theta), tolerance = 1e-10, label = label)
        reference <- numDeriv::grad(theirs, theta, method.args = list(r = 6))
        gradient <- attr(value, "gradient")
        # relative to the gradient's size: at theta = 0 a variance's derivative is 0.
        expect_lte(max(abs(gradient - reference)), 1e-6 * max(1, abs(reference)), label = label)
        expect_identical(attr(ours, "gradient")(theta), gradient, label = label)
      }
    }
  }
})

test_that("optim() with the gradient reaches hnm_fit()'s optimum", {
  skip_if_not_installed("lme4")
  for (name in c("sleepstudy", "dyestuff", "penicillin")) {
    model <- devfun_models()[[name]]
    for (reml in c(FALSE, TRUE)) {
      f <- hnm_devfun(model$formula, model$data, REML = reml)
      start <- attr(f, "lower")
      start[start == 0] <- 1  # lme4's start: Lambda = I
      start[!is.finite(start)] <- 0
      opt <- optim(start, f, attr(f, "gradient"), method = "L-BFGS-B", lower = attr(f, "lower"),
                   control = list(factr = 1e3))
      fit <- hnm_fit(model$formula, model$data, REML = reml)
      criterion <- if (reml) REMLcrit(fit) else deviance(fit)
      label <- sprintf("%s, REML = %s", name, reml)
      expect_identical(opt$convergence, 0L, label = label)
      expect_equal(opt$value, criterion, tolerance = 1e-6, label = label)
      expect_equal(opt$par, unname(getME(fit, "theta")), tolerance = 1e-3, label = label)
      # and lme4's own optimum is where hnm's function has its minimum.
      exact <- lme4::lmer(model$formula, model$data, REML = reml)
      expect_equal(as.vector(f(lme4::getME(exact, "theta"))),
                   if (reml) lme4::REMLcrit(exact) else deviance(exact), tolerance = 1e-10,
                   label = label)
    }
  }
})

test_that("the one-way ML criterion is the lecture's mll.oneway profiled over mu and sigma2", {
  # The lecture's dense minus log-likelihood (Hoff, STA 610), its ldmvnorm written out.
  mll_lecture <- function(mus2t2, y, g) {
    mu <- mus2t2[1]; s2 <- mus2t2[2]; t2 <- mus2t2[3]
    ll <- 0
    for (gj in sort(unique(g))) {
      yj <- y[g == gj]
      nj <- length(yj)
      S <- diag(s2, nj) + matrix(t2, nj, nj)
      r <- yj - mu
      ll <- ll - 0.5 * (nj * log(2 * pi) + as.numeric(determinant(S)$modulus) +
                          sum(r * solve(S, r)))
    }
    -ll
  }
  set.seed(610)
  g <- rep(1:7, c(3, 5, 4, 6, 2, 5, 4))
  y <- 16 + rnorm(7, sd = 0.6)[g] + rnorm(length(g), sd = 1.3)
  d <- data.frame(y = y, g = g)
  f <- hnm_devfun(y ~ 1 + (1 | g), d)
  Z <- outer(g, sort(unique(g)), "==") * 1
  for (theta in c(0, 0.3, 0.8, 2.5)) {
    # mu and sigma2 at their maximum given tau2 = theta^2 sigma2: GLS and the mean square.
    V0 <- diag(length(y)) + theta^2 * Z %*% t(Z)
    mu <- sum(solve(V0, y)) / sum(solve(V0, rep(1, length(y))))
    s2 <- sum((y - mu) * solve(V0, y - mu)) / length(y)
    expect_equal(as.vector(f(theta)), 2 * mll_lecture(c(mu, s2, theta^2 * s2), y, g),
                 tolerance = 1e-10, label = sprintf("theta = %g", theta))
  }
  fit <- hnm_fit(y ~ 1 + (1 | g), d)
  theta_hat <- unname(getME(fit, "theta"))
  expect_equal(as.vector(f(theta_hat)),
               2 * mll_lecture(c(fixef(fit), sigma(fit)^2, (theta_hat * sigma(fit))^2), y, g),
               tolerance = 1e-10)
  expect_lt(abs(attr(f(theta_hat), "gradient")), 1e-6)  # the profiled score vanishes there
})

test_that("a bad theta is an error naming the problem", {
  skip_if_not_installed("lme4")
  f <- hnm_devfun(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  expect_error(f(c(1, 0)), "length 3", class = "hnm_error_argument")
  expect_error(f(c(1, NA, 1)), "element 2 is NA", class = "hnm_error_argument")
  expect_error(f(c(1, Inf, 1)), "element 2 is Inf", class = "hnm_error_argument")
  expect_error(f(c(1, 0, -0.5)), "theta\\[3\\]` is -0.5, below its lower bound 0",
               class = "hnm_error_argument")
  expect_error(f("1"), "numeric vector of length 3", class = "hnm_error_argument")
  expect_error(attr(f, "gradient")(c(-1, 0, 1)), "theta\\[1\\]", class = "hnm_error_argument")
  expect_error(hnm_devfun(Reaction ~ Days + (Days | Subject), lme4::sleepstudy, REML = NA),
               "`REML` must be TRUE or FALSE", class = "hnm_error")
  expect_error(hnm_devfun(y ~ 1 | g, hnm_stats(y ~ 1 | g, data.frame(y = 1:6, g = rep(1:2, 3)))),
               "rows of a data frame", class = "hnm_error_argument")
})
