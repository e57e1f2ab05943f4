# Degenerate but legal data: a boundary fit, very many tiny groups, one dominant group,
# unused factor levels, and group codes of every type.

lmer_estimates <- function(formula, data, reml = FALSE) {
  fit <- lme4::lmer(formula, data, REML = reml,
                    control = lme4::lmerControl(check.conv.singular = "ignore"))
  vc <- as.data.frame(lme4::VarCorr(fit))
  c(mu = unname(lme4::fixef(fit)), sigma2 = vc$vcov[2], tau2 = vc$vcov[1],
    deviance = if (reml) lme4::REMLcrit(fit) else stats::deviance(fit))
}

hnm_estimates <- function(fit) c(mu = mu_of(fit), sigma2 = sigma2_of(fit), tau2 = tau2_of(fit), deviance = fit$deviance)

test_that("degenerate data sets agree with lme4", {
  skip_if_not_installed("lme4")
  set.seed(20)
  dominant <- data.frame(g = c(rep("big", 990), sprintf("s%02d", rep(1:5, 2))))
  dominant$y <- 3 + rnorm(nrow(dominant)) + ifelse(dominant$g == "big", 0.5, rnorm(1000, sd = 0.1))
  boundary <- simulate_unbalanced(20, 3, tau = 0)
  unused <- simulate_unbalanced(12, 4)
  unused$g <- factor(unused$g, levels = c("never", sort(unique(unused$g)), "unused"))
  with_singletons <- rbind(simulate_unbalanced(30, 5), data.frame(y = rnorm(300, 10, 2), g = sprintf("one%03d", 1:300)))
  cases <- list(
    # 99% of the rows in one group, the rest in five groups of two.
    list(name = "one group holds 99% of rows", data = dominant),
    # Simulated with tau = 0: the ML estimate sits on the boundary (lme4 gives ~0).
    list(name = "tau2 = 0 boundary", data = boundary),
    list(name = "unused factor levels", data = unused),
    list(name = "300 singletons and 30 groups", data = with_singletons)
  )
  for (case in cases) {
    for (reml in c(FALSE, TRUE)) {
      label <- sprintf("%s, REML %s", case$name, reml)
      fit <- hnm_fit(y ~ 1 | g, case$data, REML = reml)
      ours <- hnm_estimates(fit)
      reference <- lmer_estimates(y ~ 1 + (1 | g), case$data, reml)
      expect_equal(ours[["deviance"]], reference[["deviance"]], tolerance = 1e-6, label = label)
      expect_lte(ours[["deviance"]], reference[["deviance"]] + 1e-7, label = label)
      # The estimates of lme4's fit at hnm's θ (lmer_twin, helper-lmm.R), to rounding: where
      # lme4's optimiser stops moves τ² by 1e-7 σ² on the six groups of the first case. On the
      # scale of sigma2, so that a τ² of 0 compares absolutely.
      twin <- lmer_twin(fit, y ~ 1 + (1 | g), case$data, reml)
      twin_vc <- as.data.frame(lme4::VarCorr(twin))$vcov
      expect_equal(ours[c("mu", "sigma2")], c(mu = unname(lme4::fixef(twin)), sigma2 = twin_vc[2]),
                   tolerance = 1e-8, label = label)
      expect_lt(abs(ours[["tau2"]] - twin_vc[1]), 1e-8 * ours[["sigma2"]], label = label)
    }
  }
})

test_that("a tau2 = 0 fit is exactly on the boundary with finite inference", {
  fit <- hnm_fit(y ~ 1 | g, simulate_unbalanced(20, 3, tau = 0))
  expect_identical(tau2_of(fit), 0)
  expect_true(isSingular(fit))
  expect_true(all(is.finite(confint(fit, method = "Wald"))))
  # At tau2 = 0 the model is iid normal: mu is the mean and sigma2 the ML variance (closed form).
  d <- simulate_unbalanced(20, 3, tau = 0)
  expect_equal(mu_of(fit), mean(d$y), tolerance = 1e-12)
  expect_equal(sigma2_of(fit), mean((d$y - mean(d$y))^2), tolerance = 1e-12)
})

test_that("1e5 groups of size 2 match the balanced closed form (ML and REML)", {
  # lmer needs minutes here, so the reference is the balanced closed form computed in base R:
  # ML sigma2 = MSE, tau2 = ((1 - 1/m) MSG - MSE) / n; REML tau2 = (MSG - MSE) / n.
  set.seed(7)
  m <- 1e5; n <- 2
  g <- rep(seq_len(m), each = n)
  y <- 50 + rnorm(m, sd = 1.5)[g] + rnorm(m * n)
  means <- rowsum(y, g)[, 1] / n
  mse <- sum((y - means[g])^2) / (m * n - m)
  msg <- n * sum((means - mean(y))^2) / (m - 1)
  ml <- hnm_fit(y ~ 1 | g, data.frame(y = y, g = g))
  expect_equal(sigma2_of(ml), mse, tolerance = 1e-10)
  expect_equal(tau2_of(ml), ((1 - 1 / m) * msg - mse) / n, tolerance = 1e-9)
  expect_equal(mu_of(ml), mean(y), tolerance = 1e-12)
  reml <- hnm_fit(y ~ 1 | g, data.frame(y = y, g = g), REML = TRUE)
  expect_equal(sigma2_of(reml), mse, tolerance = 1e-10)
  expect_equal(tau2_of(reml), (msg - mse) / n, tolerance = 1e-9)
  expect_identical(ngrps(ml), c(g = as.double(m)))
})

test_that("character, integer, double, logical and factor group codes give the same fit", {
  d <- simulate_unbalanced(2, 6)
  base <- hnm_fit(y ~ 1 | g, d)
  codes <- list(
    character = d$g,
    integer = as.integer(factor(d$g)) * 7L,
    double = as.numeric(factor(d$g)) + 0.5,
    logical = d$g == d$g[1],
    factor = factor(d$g, levels = rev(unique(d$g)))
  )
  for (kind in names(codes)) {
    fit <- hnm_fit(y ~ 1 | code, data.frame(y = d$y, code = codes[[kind]]))
    expect_equal(hnm_estimates(fit), hnm_estimates(base), tolerance = 1e-12, label = kind)
  }
})

# Issue 25: a general fit that is not at an optimum warns at fit time (lme4 warns too), with
# class hnm_warning_convergence, and print() repeats the note.
test_that("non-convergence and sigma -> 0 are warnings of class hnm_warning_convergence", {
  skip_if_not_installed("lme4")
  # Two nearly collinear random slopes in three groups: the search stops short.
  set.seed(31)
  d <- data.frame(g = rep(1:3, c(4, 2, 5)))
  d$x <- 1000 * rnorm(11)
  d$z <- d$x + 1e-7 * rnorm(11)
  d$y <- d$x + 1e-3 * rnorm(11)
  expect_warning(fit <- hnm_fit(y ~ x + (x + z | g), d, REML = TRUE), "did not converge",
                 class = "hnm_warning_convergence")
  # Independently: lme4's criterion at hnm's theta lies above lme4's tightly converged optimum
  # (hnm's own criterion there is rounded: the random slopes are collinear to 1e-10).
  control <- lme4::lmerControl(optimizer = "bobyqa",
                               optCtrl = list(rhoend = 1e-12, maxfun = 1e5))
  ref <- suppressWarnings(suppressMessages(
    lme4::lmer(y ~ x + (x + z | g), d, REML = TRUE, control = control)))
  lme4_criterion <- suppressWarnings(
    lme4::lmer(y ~ x + (x + z | g), d, REML = TRUE, devFunOnly = TRUE))
  expect_lt(lme4::REMLcrit(ref), lme4_criterion(getME(fit, "theta")) - 1e-5)
  expect_output(print(fit), "did not converge")
  condition <- tryCatch(hnm_fit(y ~ x + (x + z | g), d, REML = TRUE), warning = identity)
  expect_identical(class(condition),
                   c("hnm_warning_convergence", "hnm_warning", "warning", "condition"))
  # Three points on a line in every group: the random intercepts and slopes reproduce y
  # exactly (every group's least-squares line has residual sum of squares 0), so the
  # likelihood grows without bound as sigma -> 0 and no estimate is an optimum.
  set.seed(1)
  d <- data.frame(g = rep(1:10, each = 3), x = rnorm(30))
  d$y <- rnorm(10)[d$g] + rnorm(10)[d$g] * d$x
  expect_lt(sum(stats::residuals(stats::lm(y ~ factor(g) * x, d))^2), 1e-25)
  expect_warning(fit <- hnm_fit(y ~ x + (x | g), d), "sigma -> 0",
                 class = "hnm_warning_convergence")
  expect_output(print(fit), "sigma -> 0")
  # An ordinary fit, near a boundary included, does not warn.
  expect_no_warning(hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy))
  expect_no_warning(hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy, REML = TRUE))
  d$y <- d$y + stats::rnorm(30)
  expect_no_warning(hnm_fit(y ~ x + (x | g), d))
})
