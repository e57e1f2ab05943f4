# Wald intervals against the lecture's formula est +- z sqrt(diag(solve(I))), with I the
# numerical Hessian (numDeriv) of the lecture's dense likelihood lecture_mll_oneway
# (helper-reference.R): one loop over datasets x levels.

test_that("Wald intervals on the variance scale are the lecture's est +- z se", {
  skip_if_not_installed("numDeriv")
  skip_if_not_installed("lme4")
  cases <- Filter(function(x) x$name %in% c("Dyestuff", "Rail", "simulated, 40 groups"), lme4_cases())
  for (case in cases) {
    fit <- hnm_fit(one_way_formula(case), case$data)
    y <- case$data[[case$y]]
    g <- as.character(case$data[[case$g]])
    p <- c(mu_of(fit), sigma2_of(fit), tau2_of(fit))
    information <- numDeriv::hessian(function(q) lecture_mll_oneway(q, y, g), p)
    se <- sqrt(diag(solve(information)))
    for (level in c(0.95, 0.9, 0.5)) {
      z <- qnorm(1 - (1 - level) / 2)
      ci <- confint(fit, method = "Wald", scale = "var", level = level)
      expected <- rbind(pmax(p[3] + c(-1, 1) * z * se[3], 0), pmax(p[2] + c(-1, 1) * z * se[2], 0),
                        p[1] + c(-1, 1) * z * se[1])
      expect_equal(matrix(ci, 3L), expected, tolerance = 1e-6, label = paste(case$name, level))
      expect_identical(rownames(ci), c("tau2", "sigma2", "(Intercept)"))
    }
  }
})

# Dense references: the covariance V = blockdiag(s2 I + t2 11') of the rows, and the
# restricted negative log-likelihood -l_R(s2, t2) = (log|V| + log 1'V^-1 1 + r'P r)/2 + c.
dense_v <- function(g, s2, t2) {
  same <- outer(g, g, "==")
  s2 * diag(length(g)) + t2 * same
}
dense_reml <- function(p, y, g) {
  v <- dense_v(g, p[1], p[2])
  vi <- solve(v)
  one <- rep(1, length(y))
  s <- sum(vi)
  mu <- sum(vi %*% y) / s
  r <- y - mu
  0.5 * (c(determinant(v)$modulus) + log(s) + c(t(r) %*% vi %*% r))
}
# Expected information of (s2, t2): tr(P V_a P V_b)/2 (REML) or tr(V^-1 V_a V^-1 V_b)/2 (ML).
dense_expected <- function(g, s2, t2, reml) {
  v <- dense_v(g, s2, t2)
  vi <- solve(v)
  p <- if (reml) vi - vi %*% matrix(1, length(g), length(g)) %*% vi / sum(vi) else vi
  derivatives <- list(diag(length(g)), 1 * outer(g, g, "=="))
  outer(1:2, 1:2, Vectorize(function(a, b) {
    sum(diag(p %*% derivatives[[a]] %*% p %*% derivatives[[b]])) / 2
  }))
}
wald_se <- function(fit) {
  ci <- confint(fit, method = "Wald", scale = "var")
  z <- qnorm(0.975)
  list(se = (ci[, 2] - c(tau2_of(fit), sigma2_of(fit), mu_of(fit))) / z, information = attr(ci, "information"))
}

test_that("REML fits use the restricted information (Dyestuff: se(tau2) = 1432.75, as nlme)", {
  skip_if_not_installed("numDeriv")
  skip_if_not_installed("lme4")
  for (case in Filter(function(x) x$name %in% c("Dyestuff", "Rail", "simulated, 40 groups"),
                      lme4_cases())) {
    y <- case$data[[case$y]]
    g <- as.character(case$data[[case$g]])
    fit <- hnm_fit(one_way_formula(case), case$data, REML = TRUE)
    information <- numDeriv::hessian(function(p) dense_reml(p, y, g), c(sigma2_of(fit), tau2_of(fit)))
    se <- sqrt(diag(solve(information)))
    wald <- wald_se(fit)
    expect_identical(wald$information, "observed")
    expect_equal(unname(wald$se[c(2, 1)]), se, tolerance = 1e-6, label = case$name)
    # The intercept: lme4's REML standard error of the fixed effect, at hnm's θ (lmer_twin).
    lmer <- lmer_twin(fit, one_way_formula(case, lme4_style = TRUE), case$data, REML = TRUE)
    expect_equal(unname(wald$se[3]), sqrt(c(as.matrix(vcov(lmer)))), tolerance = 1e-8)
  }
  fit <- hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff, REML = TRUE)
  expect_equal(unname(wald_se(fit)$se[1]), 1432.75, tolerance = 1e-6)
  # nlme's apVar: the numerical inverse information of (log tau, log sigma); delta method.
  m <- nlme::lme(Yield ~ 1, random = ~ 1 | Batch, data = lme4::Dyestuff, method = "REML")
  se_log <- sqrt(diag(m$apVar))
  expect_equal(unname(wald_se(fit)$se[1:2]),
               unname(2 * exp(2 * attr(m$apVar, "Pars")) * se_log), tolerance = 1e-4)
})

test_that("an indefinite observed information gives the expected one, said so, never zero width", {
  # Small unbalanced designs with true tau^2 = 0: about 40% of ML fits land on tau^2 = 0 with an
  # indefinite observed information (the issue's 38.7% of zero-length intervals).
  expected_fits <- 0
  for (seed in 1:60) {
    set.seed(seed)
    g <- rep(1:5, c(2, 3, 2, 4, 3))
    d <- data.frame(y = rnorm(length(g)), g = g)
    for (reml in c(FALSE, TRUE)) {
      fit <- hnm_fit(y ~ 1 | g, d, REML = reml)
      for (scale in c("var", "sd")) {
        ci <- confint(fit, method = "Wald", scale = scale)
        expect_true(all(ci[, 2] > ci[, 1]), label = sprintf("seed %d, REML %s, %s", seed, reml, scale))
      }
      wald <- wald_se(fit)
      if (identical(wald$information, "expected")) {
        expected_fits <- expected_fits + 1
        reference <- sqrt(diag(solve(dense_expected(g, sigma2_of(fit), tau2_of(fit), reml))))
        expect_equal(unname(wald$se[c(2, 1)]), reference, tolerance = 1e-9)
        expect_output(print(confint(fit, method = "Wald")), "expected information")
      } else {
        expect_identical(wald$information, "observed")
        expect_false(any(grepl("expected information",
                               capture.output(print(confint(fit, method = "Wald"))))))
      }
    }
  }
  expect_gt(expected_fits, 10)
})

test_that("the one-way expected information has its closed form", {
  # Balanced data, ML: I(s2, t2) = (m/2) [[(n-1)/s2^2 + 1/v^2, n/v^2], [n/v^2, n^2/v^2]], v = s2 + n t2.
  s <- hnm_fit(y ~ 1 | g, data.frame(y = c(1, 2, 4, 3, 7, 6), g = rep(1:3, each = 2)))$stats
  for (p in list(c(1.3, 0.4), c(2, 0))) {
    v <- p[1] + 2 * p[2]
    closed <- 1.5 * matrix(c(1 / p[1]^2 + 1 / v^2, 2 / v^2, 2 / v^2, 4 / v^2), 2)
    expect_equal(dense_expected(rep(1:3, each = 2), p[1], p[2], FALSE), closed)
  }
})
