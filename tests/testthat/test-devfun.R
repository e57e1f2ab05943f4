# hnm_devfun(): the profiled criterion equals lme4's devFunOnly function at the same theta, its
# gradient attribute equals numDeriv's gradient of lme4's function, optim() with it reaches
# hnm_fit()'s optimum, the one-way criterion is the lecture's dense mll.oneway profiled over
# (mu, sigma2), and a bad theta is an error naming the problem.

# A correlated term of three columns (a 3 x 3 block of Lambda), two of them centred inside hnm.
three_slopes_data <- function() {
  set.seed(3)
  m <- 15
  d <- data.frame(g = rep(seq_len(m), each = 8), x = rnorm(8 * m, 3), z = runif(8 * m))
  b <- cbind(rnorm(m), rnorm(m, sd = 0.5), rnorm(m, sd = 0.7))
  d$y <- 1 + d$x + d$z + b[d$g, 1] + b[d$g, 2] * d$x + b[d$g, 3] * d$z + rnorm(8 * m)
  d
}

devfun_models <- function() {
  list(
    sleepstudy = list(formula = Reaction ~ Days + (Days | Subject), data = lme4::sleepstudy,
                      thetas = list(c(1, 0, 1), c(0.9, 0.1, 0.2), c(2, -0.5, 0.3),
                                    c(0, 0.5, 0.2), c(1, 0.5, 0), c(0, 0, 0.3))),
    uncorrelated = list(formula = Reaction ~ Days + (Days || Subject), data = lme4::sleepstudy,
                        thetas = list(c(1, 1), c(0.5, 0), c(0, 0.3))),
    dyestuff = list(formula = Yield ~ 1 + (1 | Batch), data = lme4::Dyestuff,
                    thetas = list(0.5, 1, 0, 2)),
    three = list(formula = y ~ x + z + (1 + x + z | g), data = three_slopes_data(),
                 thetas = list(c(1, 0, 0, 1, 0, 1), c(0.8, 0.1, -0.2, 0.5, 0.1, 0.6),
                               c(0, 0.3, 0.2, 0.5, 0.1, 0.4), c(1, 0.5, 0.2, 0, 0, 0.4),
                               c(1, 0.2, 0.3, 0.4, 0.1, 0))),
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
      lower <- lme4::getME(suppressMessages(lme4::lmer(model$formula, model$data, REML = reml)),
                           "lower")
      expect_equal(attr(ours, "lower"), lower, ignore_attr = TRUE)
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

test_that("subset, na.action, offset and contrasts give lmer's devFunOnly function with them", {
  skip_if_not_installed("lme4")
  set.seed(24)
  d <- lme4::sleepstudy
  d$w <- runif(nrow(d), 0.5, 2)
  d$f <- factor(sample(c("a", "b", "c"), nrow(d), replace = TRUE))
  d$Reaction[c(3, 50)] <- NA
  formula <- Reaction ~ Days + f + (Days | Subject)
  for (reml in c(FALSE, TRUE)) {
    ours <- hnm_devfun(formula, d, REML = reml, subset = w > 0.7, na.action = na.exclude,
                       offset = log(w), contrasts = list(f = "contr.sum"))
    theirs <- lme4::lmer(formula, d, REML = reml, subset = w > 0.7, na.action = na.exclude,
                         offset = log(w), contrasts = list(f = "contr.sum"), devFunOnly = TRUE)
    for (theta in list(c(1, 0, 1), c(0.7, 0.2, 0.3))) {
      value <- ours(theta)
      expect_equal(as.vector(value), theirs(theta), tolerance = 1e-10)
      expect_lte(max(abs(attr(value, "gradient") - numDeriv::grad(theirs, theta))),
                 1e-6 * max(abs(attr(value, "gradient"))))
    }
  }
  expect_error(hnm_devfun(formula, d, na.action = na.fail), class = "hnm_error")
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

# (lme4's own as.function() of a fit needs lme4 attached; its devFunOnly function is the same.)
test_that("as.function() of a fit is lme4's devFunOnly function of the fit's model", {
  skip_if_not_installed("lme4")
  for (name in c("sleepstudy", "penicillin")) {
    model <- devfun_models()[[name]]
    for (reml in c(FALSE, TRUE)) {
      fit <- hnm_fit(model$formula, model$data, REML = reml)
      theirs <- lme4::lmer(model$formula, model$data, REML = reml, devFunOnly = TRUE)
      ours <- as.function(fit)
      for (theta in model$thetas) {
        expect_equal(as.vector(ours(theta)), theirs(theta), tolerance = 1e-10,
                     label = sprintf("%s, REML = %s, theta = (%s)", name, reml, toString(theta)))
      }
      expect_equal(as.vector(ours(getME(fit, "theta"))), if (reml) REMLcrit(fit) else deviance(fit),
                   tolerance = 1e-12)
    }
  }
  # a fit from group statistics, and one read back from a file (its model rebuilt).
  d <- lme4::sleepstudy
  stats_fit <- hnm_fit(Reaction ~ Days + (Days | Subject),
                       hnm_stats(Reaction ~ Days + (Days | Subject), d))
  theirs <- lme4::lmer(Reaction ~ Days + (Days | Subject), d, REML = FALSE, devFunOnly = TRUE)
  expect_equal(as.vector(as.function(stats_fit)(c(0.9, 0.1, 0.2))), theirs(c(0.9, 0.1, 0.2)),
               tolerance = 1e-10)
  file <- tempfile(fileext = ".rds")
  on.exit(unlink(file))
  saveRDS(stats_fit, file)
  expect_equal(as.vector(as.function(readRDS(file))(c(0.9, 0.1, 0.2))), theirs(c(0.9, 0.1, 0.2)),
               tolerance = 1e-10)
  expect_error(as.function(stats_fit, REML = TRUE), "unused argument",
               class = "hnm_error_unused_argument")
})

test_that("where the model's gradient does not determine lme4's, the value stands alone", {
  skip_if_not_installed("lme4")
  # Lambda = [1 0; -1/4.5 0]: the intercept's variance at the mean day, 4.5, is 0, the slope's not.
  theta <- c(1, -1 / 4.5, 0)
  f <- hnm_devfun(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  theirs <- lme4::lmer(Reaction ~ Days + (Days | Subject), lme4::sleepstudy, REML = FALSE,
                       devFunOnly = TRUE)
  value <- f(theta)
  expect_equal(as.vector(value), theirs(theta), tolerance = 1e-10)
  expect_identical(attr(value, "gradient"), rep(NA_real_, 3))
  expect_error(attr(f, "gradient")(theta), "singular covariance", class = "hnm_error_unsupported")
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
               "as.function\\(hnm_fit", class = "hnm_error_argument")
})
