# Wald intervals of the variance parameters of general fits (issue 22): standard errors from
# the inverse information of the fit's criterion in lme4's (sd, cor, sigma), against an
# independent dense criterion differentiated by numDeriv, and against the one-way model's
# closed form.

# The ML deviance (-2 log L at the GLS beta) or REML criterion of the rows, written densely
# in lme4's variance parameters `par` (SDs and correlations of each block in lme4's order,
# then sigma): V_j = Z_j D Z_j' + sigma^2 I for each group j, with D from the blocks' SDs and
# correlations. Z holds the random-effect columns; `blocks` their block sizes.
dense_criterion <- function(par, y, X, Z, g, blocks, reml) {
  q <- ncol(Z)
  D <- matrix(0, q, q)
  at <- 0L
  offset <- 0L
  for (size in blocks) {
    idx <- offset + seq_len(size)
    sds <- numeric(size)
    cors <- diag(size)
    for (c in seq_len(size)) for (r in c:size) {
      at <- at + 1L
      if (r == c) sds[r] <- par[at] else cors[r, c] <- cors[c, r] <- par[at]
    }
    D[idx, idx] <- outer(sds, sds) * cors
    offset <- offset + size
  }
  sigma2 <- par[length(par)]^2
  groups <- split(seq_along(y), g)
  vinv <- lapply(groups, function(i) {
    solve(Z[i, , drop = FALSE] %*% D %*% t(Z[i, , drop = FALSE]) + sigma2 * diag(length(i)))
  })
  xvx <- Reduce(`+`, Map(function(i, w) crossprod(X[i, , drop = FALSE], w %*% X[i, , drop = FALSE]),
                         groups, vinv))
  xvy <- Reduce(`+`, Map(function(i, w) crossprod(X[i, , drop = FALSE], w %*% y[i]), groups, vinv))
  beta <- solve(xvx, xvy)
  quadratic <- sum(unlist(Map(function(i, w) {
    r <- y[i] - X[i, , drop = FALSE] %*% beta
    crossprod(r, w %*% r)
  }, groups, vinv)))
  logdet <- -sum(vapply(vinv, function(w) c(determinant(w)$modulus), 0))
  n <- length(y)
  if (reml) {
    logdet + c(determinant(xvx)$modulus) + quadratic + (n - ncol(X)) * log(2 * pi)
  } else {
    logdet + quadratic + n * log(2 * pi)
  }
}

# The Wald standard errors of the variance rows as confint() gives them: (upper - estimate)/z
# (the upper limits are not truncated in these cases).
wald_variance_se <- function(fit, scale = "sd") {
  ci <- confint(fit, method = "Wald", scale = scale)
  n_variance <- length(hnm:::variance_parameter_names(fit, TRUE))
  estimate <- hnm:::lmm_wald_variance(fit, NULL)$estimates
  if (scale == "var") estimate[hnm:::lmm_parameter_bounds(fit)$is_sd[seq_len(n_variance)]] <-
    estimate[hnm:::lmm_parameter_bounds(fit)$is_sd[seq_len(n_variance)]]^2
  (ci[seq_len(n_variance), 2] - estimate) / qnorm(0.975)
}

wald_cases <- function() {
  sleep <- lme4::sleepstudy
  set.seed(22)
  m <- 12
  g <- factor(rep(seq_len(m), times = sample(3:7, m, replace = TRUE)))
  x <- rnorm(length(g))
  y <- 1 + 0.5 * x + rnorm(m, sd = 0.8)[g] + rnorm(length(g))
  covariate <- data.frame(y = y, x = x, g = g)
  list(
    list(name = "sleepstudy (Days | Subject)", formula = Reaction ~ Days + (Days | Subject),
         data = sleep, y = sleep$Reaction, X = cbind(1, sleep$Days), Z = cbind(1, sleep$Days),
         g = sleep$Subject, blocks = 2L),
    list(name = "sleepstudy (Days || Subject)", formula = Reaction ~ Days + (Days || Subject),
         data = sleep, y = sleep$Reaction, X = cbind(1, sleep$Days), Z = cbind(1, sleep$Days),
         g = sleep$Subject, blocks = c(1L, 1L)),
    list(name = "random intercept with a covariate", formula = y ~ x + (1 | g),
         data = covariate, y = y, X = cbind(1, x), Z = matrix(1, length(y), 1L), g = g,
         blocks = 1L)
  )
}

test_that("Wald SEs of the variance parameters are those of the dense criterion's Hessian", {
  skip_if_not_installed("numDeriv")
  skip_if_not_installed("lme4")
  for (case in wald_cases()) for (reml in c(FALSE, TRUE)) {
    label <- paste(case$name, if (reml) "REML" else "ML")
    fit <- hnm_fit(case$formula, case$data, REML = reml)
    wald <- hnm:::lmm_wald_variance(fit, NULL)
    expect_identical(wald$information, "observed", label = label)
    expect_false(any(wald$boundary), label = label)
    hessian <- numDeriv::hessian(dense_criterion, wald$estimates, y = case$y, X = case$X,
                                 Z = case$Z, g = case$g, blocks = case$blocks, reml = reml)
    covariance <- 2 * solve(hessian)
    # numDeriv's Richardson Hessian is accurate to about 1e-7 relative here.
    expect_equal(wald$covariance, covariance, tolerance = 1e-5, label = label)
    expect_equal(unname(wald_variance_se(fit)), sqrt(diag(covariance)), tolerance = 1e-5,
                 label = label)
    # The estimates are lme4's parameters of the fit.
    expect_equal(wald$estimates[length(wald$estimates)], fit$sigma, tolerance = 1e-12)
  }
})

test_that("for one-way fits the general computation gives the closed form's SD-scale SEs", {
  skip_if_not_installed("lme4")
  skip_if_not_installed("nlme")
  cases <- list(list(Yield ~ 1 | Batch, lme4::Dyestuff),
                list(travel ~ 1 | Rail, nlme::Rail),
                list(strength ~ 1 | sample, lme4::Pastes))
  for (case in cases) for (reml in c(FALSE, TRUE)) {
    fit <- hnm_fit(case[[1]], case[[2]], REML = reml)
    expect_true(hnm:::is_one_way(fit))
    closed <- hnm:::one_way_covariance(fit, NULL)
    if (!identical(attr(closed, "information"), "observed")) next
    tau <- sqrt(fit$re_covariance[1, 1])
    sigma <- fit$sigma
    # The delta method from (sigma^2, tau^2) to (tau, sigma): d tau = d tau^2 / (2 tau).
    jacobian <- matrix(c(0, 1 / (2 * sigma), 1 / (2 * tau), 0), 2L, 2L)
    expected <- jacobian %*% closed[c("sigma2", "tau2"), c("sigma2", "tau2")] %*% t(jacobian)
    general <- hnm:::lmm_wald_variance(fit, NULL)
    expect_identical(general$information, "observed")
    expect_equal(general$covariance, expected, tolerance = 1e-8,
                 label = paste(deparse(case[[1]]), reml))
  }
})

test_that("scale = \"var\" gives the variances' rows, names as variance_names()", {
  skip_if_not_installed("lme4")
  fit <- hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  sd_ci <- confint(fit, method = "Wald")
  var_ci <- confint(fit, method = "Wald", scale = "var")
  wald <- hnm:::lmm_wald_variance(fit, NULL)
  z <- qnorm(0.975)
  est <- wald$estimates
  se <- sqrt(diag(wald$covariance))
  expect_identical(rownames(var_ci)[1:4],
                   c("var_(Intercept)|Subject", ".sig02", "var_Days|Subject", "sigma2"))
  expect_identical(rownames(confint(fit, method = "Wald", scale = "var", oldNames = FALSE))[1:4],
                   hnm:::variance_names(fit))
  is_sd <- c(TRUE, FALSE, TRUE, TRUE)
  expected <- cbind(est^2 - z * 2 * est * se, est^2 + z * 2 * est * se)
  expected[!is_sd, ] <- sd_ci[2, ]
  expected[is_sd, ] <- pmax(expected[is_sd, ], 0)
  expect_equal(unname(var_ci[1:4, ]), expected, tolerance = 1e-12)
  expect_equal(unname(var_ci[2, ]), unname(sd_ci[2, ]))
  expect_equal(var_ci[5:6, ], sd_ci[5:6, ])
  expect_equal(var_ci[["sigma2", 1]], max(fit$sigma^2 - z * 2 * fit$sigma * se[4], 0))
  # SD rows truncated at 0, correlation rows kept in [-1, 1].
  expect_true(all(sd_ci[c(1, 3, 4), ] >= 0) && all(abs(sd_ci[2, ]) <= 1))
  wide <- confint(fit, method = "Wald", level = 1 - 1e-12)
  expect_identical(unname(wide[2, ]), c(-1, 1))
  expect_identical(wide[[1, 1]], 0)
})

test_that("a singular fit's boundary rows are NA, the others from the information on the face", {
  # Group means of x and of the residuals are equal, so the ML estimate of the SD is 0.
  m <- 8
  x <- rep(c(0, 1, 2, 3), m)
  e <- rep(c(-1, 0.5, 1, -0.5), m) * rep(seq_len(m), each = 4) / 4
  d <- data.frame(y = 3 + 0.5 * x + e, x = x, g = factor(rep(seq_len(m), each = 4)))
  for (reml in c(FALSE, TRUE)) {
    fit <- hnm_fit(y ~ x + (1 | g), d, REML = reml)
    expect_identical(fit$re_covariance[1, 1], 0)
    for (scale in c("sd", "var")) {
      ci <- confint(fit, method = "Wald", scale = scale)
      expect_true(all(is.na(ci[1, ])))
      expect_identical(attr(ci, "boundary"), rownames(ci)[1])
      expect_output(print(ci), "singular fit")
    }
    # With the SD held at 0 the model is the linear model: var(sigma) = sigma^2 / (2 N'),
    # N' = N (ML) or N - p (REML).
    divisor <- nrow(d) - if (reml) 2 else 0
    se <- (confint(fit, method = "Wald")[".sigma", 2] - fit$sigma) / qnorm(0.975)
    expect_equal(se, fit$sigma / sqrt(2 * divisor), tolerance = 1e-8)
  }
})

test_that("the variance rows are in the units of y, also for responses near 1e-150 or 1e100", {
  skip_if_not_installed("lme4")
  d <- lme4::sleepstudy
  base <- confint(hnm_fit(Reaction ~ Days + (Days | Subject), d), method = "Wald")
  for (scale in c(1e-150, 1e100)) {
    d$Reaction <- lme4::sleepstudy$Reaction * scale
    ci <- confint(hnm_fit(Reaction ~ Days + (Days | Subject), d), method = "Wald")
    in_units <- rownames(ci) != ".sig02"
    ci[in_units, ] <- ci[in_units, ] / scale
    expect_equal(ci, base, tolerance = 1e-9, label = format(scale))
  }
})
