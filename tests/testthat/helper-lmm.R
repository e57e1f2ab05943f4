# References for the general model: lme4 at its exact optimum, and simulated designs.

# lme4's fit at the exact optimum of lme4's own profiled deviance: lme4's optimiser with tight
# tolerances, polished by R's L-BFGS-B (which reaches the bounds of a singular fit exactly)
# and then by Newton steps with numDeriv's Richardson gradient and Hessian on the free
# coordinates, and rebuilt as a merMod at that point (lme4::mkMerMod), so every lme4 method
# (vcov, ranef, VarCorr) is evaluated there. Independent of hnm: lme4's likelihood, R's and
# numDeriv's numerics. The polish does not assert that it converged (a Newton step is dropped
# where the Hessian is not positive definite or the deviance rises), so the tests use this fit
# for its criterion only, which is second order in θ: a stop δ short of the optimum in a
# direction of curvature λ costs λδ²/2 (1e-10 for δ = 1e-5 in the NELS model's flat
# direction). Estimates are compared with lme4's fit at hnm's θ (lmer_twin).
lmer_exact <- function(formula, data, REML) {
  frame <- lme4::lFormula(formula, data, REML = REML)
  devfun <- do.call(lme4::mkLmerDevfun, frame)
  opt <- lme4::optimizeLmer(devfun, optimizer = "nloptwrap",
                            control = list(ftol_abs = 1e-14, ftol_rel = 1e-14, xtol_abs = 1e-12,
                                           xtol_rel = 1e-12, maxeval = 1e5))
  polished <- stats::optim(opt$par, devfun, method = "L-BFGS-B", lower = frame$reTrms$lower,
                           control = list(factr = 1, pgtol = 0, maxit = 2000))
  if (polished$value < opt$fval) opt$par <- polished$par
  opt$par <- newton_polish(devfun, opt$par, frame$reTrms$lower)
  opt <- list(par = opt$par, fval = devfun(opt$par), conv = 0L, feval = opt$feval,
              message = "polished")
  devfun(opt$par)
  suppressWarnings(lme4::mkMerMod(environment(devfun), opt, frame$reTrms, fr = frame$fr))
}

# Newton steps on the coordinates not held at their bound (a zero diagonal of Λ with a
# non-negative derivative), kept while the deviance does not rise beyond rounding.
newton_polish <- function(devfun, theta, lower, steps = 10L) {
  for (i in seq_len(steps)) {
    g <- numDeriv::grad(devfun, theta)
    free <- !(lower == 0 & theta == 0 & g >= 0)
    if (!any(free)) break
    h <- numDeriv::hessian(devfun, theta)[free, free, drop = FALSE]
    step <- tryCatch(solve(h, g[free]), error = function(e) NULL)
    if (is.null(step) || any(eigen(h, symmetric = TRUE, only.values = TRUE)$values <= 0)) break
    trial <- theta
    trial[free] <- pmax(theta[free] - step, lower[free])
    if (!(devfun(trial) <= devfun(theta) + 1e-11 * abs(devfun(theta)))) break
    theta <- trial
  }
  theta
}

# lme4 as users run it (default control), for "hnm's optimum is never worse".
lmer_default <- function(formula, data, REML) {
  suppressWarnings(suppressMessages(lme4::lmer(formula, data, REML = REML)))
}

# The criterion lme4 minimises.
lme4_criterion <- function(fit) if (lme4::isREML(fit)) lme4::REMLcrit(fit) else deviance(fit)

# A PSD square root (for singular covariances, where chol() fails).
psd_root <- function(s) {
  e <- eigen(s, symmetric = TRUE)
  e$vectors %*% diag(sqrt(pmax(e$values, 0)), nrow(s))
}

# Data for the grid: covariates x, z (within groups), w (group level), f (a 3-level factor);
# random intercept, x and z slopes with SDs `sd` and correlation matrix `corr`.
simulate_lmm <- function(seed, m = 30, balanced = TRUE, sd = c(2, 0.7, 0.5),
                         corr = diag(3) + 0.3 * (1 - diag(3))) {
  set.seed(seed)
  sizes <- if (balanced) rep(8L, m) else sample(3:14, m, replace = TRUE)
  g <- factor(rep(sprintf("g%02d", seq_len(m)), sizes))
  n <- sum(sizes)
  x <- rnorm(n)
  z <- runif(n)
  w <- rep(rnorm(m), sizes)
  f <- factor(sample(c("a", "b", "c"), n, replace = TRUE))
  sigma <- diag(sd) %*% corr %*% diag(sd)
  b <- matrix(rnorm(3 * m), m) %*% t(psd_root(sigma))
  j <- as.integer(g)
  y <- 1 + 0.5 * x - 0.3 * z + 0.8 * w + c(0, 0.4, -0.2)[as.integer(f)] +
    b[j, 1] + b[j, 2] * x + b[j, 3] * z + rnorm(n)
  data.frame(y, x, z, w, f, g)
}

# Everything lme4 reports of a fit that hnm must reproduce, as one named list.
lmm_numbers <- function(fit) {
  vc <- as.data.frame(VarCorr(fit))
  re <- as.data.frame(ranef(fit, condVar = TRUE))
  list(beta = unname(fixef(fit)), se = unname(sqrt(diag(as.matrix(vcov(fit))))),
       sigma = sigma(fit), sdcor = vc$sdcor, vcov = vc$vcov, logLik = c(logLik(fit)),
       criterion = if (inherits(fit, "merMod")) lme4_criterion(fit) else deviance(fit),
       REMLcrit = REMLcrit(fit), condval = re$condval, condsd = re$condsd)
}

# lme4's own profiled deviance (devfun) at hnm's θ.
lme4_devfun_at <- function(formula, data, REML, theta) {
  devfun <- lme4::lmer(formula, data, REML = REML, devFunOnly = TRUE)
  devfun(unname(theta))
}

# lme4's fit rebuilt at hnm's θ: the merMod that `call` (an lme4::lmer call, evaluated in
# `env`) would return had its optimiser stopped exactly at `theta`. Every lme4 method and every
# package that reads a merMod (insight, performance, parameters, emmeans, broom.mixed) then
# evaluates its formulas at the same optimum as hnm, so a comparison tests those formulas,
# not how far lme4's optimiser stopped from the optimum in a flat direction (where θ can
# differ by 1e-5 relative while the deviances agree to 1e-10, and a test would pass on one
# machine and fail on another). lme4's numerics throughout: its lFormula, devfun and mkMerMod.
lmer_at_theta <- function(call, theta, env = parent.frame()) {
  frame_call <- call
  frame_call[[1L]] <- quote(lme4::lFormula)
  frame_call$control <- NULL
  frame <- eval(frame_call, env)
  devfun <- do.call(lme4::mkLmerDevfun, frame)
  theta <- unname(theta)
  opt <- list(par = theta, fval = devfun(theta), conv = 0L, feval = 1L, message = "at theta")
  suppressWarnings(lme4::mkMerMod(environment(devfun), opt, frame$reTrms, fr = frame$fr,
                                  mc = call))
}

# lme4's merMod at the θ of hnm's `fit` of `formula` on `data`: lmer_at_theta for a fit, with
# the data bound where the call's `data` names them.
lmer_twin <- function(fit, formula, data, REML = FALSE) {
  call <- bquote(lme4::lmer(.(formula), data, REML = .(REML)))
  suppressMessages(lmer_at_theta(call, getME(fit, "theta"), list2env(list(data = data))))
}

# lmerTest's Satterthwaite machinery (its numerical Hessian of lme4's deviance and Jacobian of
# vcov) evaluated at hnm's θ: lmer_twin converted by lmerTest, which re-evaluates the twin's
# call for lme4's deviance function (hence `data` bound in this frame).
lmertest_twin <- function(fit, formula, data, REML = FALSE) {
  twin <- lmer_twin(fit, formula, data, REML)
  lmerTest::as_lmerModLmerTest(twin)
}

# The Newton step from θ to the stationary point of lme4's own profiled deviance, on the
# coordinates not held at their bound (a zero diagonal of Λ whose derivative is non-negative),
# from numDeriv's Richardson gradient and Hessian: θ's distance from lme4's optimum in every
# direction, flat ones included, measured by lme4's likelihood and no optimiser of lme4's.
lme4_newton_step <- function(formula, data, REML, theta) {
  theta <- unname(theta)
  devfun <- lme4::lmer(formula, data, REML = REML, devFunOnly = TRUE)
  lower <- lme4::lFormula(formula, data, REML = REML)$reTrms$lower
  g <- numDeriv::grad(devfun, theta)
  free <- !(lower == 0 & theta == 0 & g >= 0)
  step <- numeric(length(theta))
  step[free] <- solve(numDeriv::hessian(devfun, theta)[free, free, drop = FALSE], g[free])
  step
}

# hnm's fit against lme4. Exactness: hnm's criterion is never above lme4's at its exact
# optimum (+1e-8) nor lme4's default fit's (+1e-7), and lme4's deviance function at hnm's θ is
# hnm's deviance. Estimates: every number lme4 reports (β, SEs, σ, SDs and correlations,
# BLUPs and their SDs) of lme4's fit at hnm's θ (lmer_twin), to 1e-8: at one θ both evaluate
# closed forms (measured agreement 1e-13 over test-lmm-lme4.R's designs). Comparing with
# lme4's optimum instead would test how far its optimiser stops in a flat direction, where θ
# moves by 1e-5 (relative) while the deviance moves by 1e-10. Where hnm's optimum is lower
# than lme4's (lme4 stopped in another local minimum), the outcome says so.
expect_matches_lme4 <- function(formula, data, REML, label) {
  fit <- hnm_fit(formula, data, REML = REML)
  exact <- lmer_exact(formula, data, REML)
  default <- lmer_default(formula, data, REML)
  expect_lte(deviance(fit), lme4_criterion(default) + 1e-7)
  expect_lte(deviance(fit), lme4_criterion(exact) + 1e-8)
  expect_true(fit$convergence$converged, label = paste(label, "converged"))
  twin <- lmer_twin(fit, formula, data, REML)
  expect_equal(lme4_criterion(twin), deviance(fit), tolerance = 1e-9,
               label = paste(label, "lme4's deviance function at hnm's theta"))
  ours <- lmm_numbers(fit)
  theirs <- lmm_numbers(twin)
  for (name in names(ours)) {
    expect_equal(ours[[name]], theirs[[name]], tolerance = 1e-8, label = paste(label, name))
  }
  invisible(if (deviance(fit) < lme4_criterion(exact) - 1e-6) "lower than lme4" else "equal to lme4")
}

# n rows of two crossed factors a and b (levels[1] and levels[2] levels, drawn uniformly) and
# a covariate x, y = a's effect + sd_b times b's + 0.5 x + N(0, 1) noise, and Gamma(2, 2)
# prior weights w.
crossed_weighted_data <- function(seed, n, levels, sd_b) {
  set.seed(seed)
  d <- data.frame(a = factor(sample(seq_len(levels[1]), n, TRUE)),
                  b = factor(sample(seq_len(levels[2]), n, TRUE)), x = rnorm(n))
  d$y <- rnorm(levels[1])[d$a] + sd_b * rnorm(levels[2])[d$b] + 0.5 * d$x + rnorm(n)
  d$w <- rgamma(n, 2, 2)
  d
}

# Rows for the levels a fit uses (lme4's model frame drops the rows with NA, then the unused
# levels): `rows`, 240 rows of two crossed groups `a`, `b`, a covariate `x` and a text factor
# `f` ("lo", "mid"); `text`, the same with "aa" (the first level by name) only on rows without
# x or without a group and "zz" on a row without a response, so that "lo" stays the baseline
# and no column is aliased.
unused_level_rows <- function(seed) {
  set.seed(seed)
  n <- 240
  d <- data.frame(a = sample(sprintf("a%02d", 1:10), n, TRUE), b = sample(sprintf("b%d", 1:5), n, TRUE),
                  x = rnorm(n), f = sample(c("lo", "mid"), n, TRUE), stringsAsFactors = FALSE)
  d$y <- 1 + d$x + rnorm(10)[factor(d$a)] + rnorm(5)[factor(d$b)] + (d$f == "mid") + rnorm(n)
  text <- d
  text$f[1:3] <- c("aa", "aa", "zz")
  text$x[1] <- NA
  text$a[2] <- NA
  text$y[3] <- NA
  list(rows = d, text = text)
}

# hnm's fits `fits(formula, reml)` (a list) of `data` (unused_level_rows()) against lme4's,
# converged tightly so that its estimates are the optimum's to 1e-5: the fixed effects, the
# random-effects columns and the likelihood, ML and REML, of one, crossed and slope models.
expect_level_fits <- function(data, label, fits) {
  for (formula in list(y ~ x + f + (1 | a), y ~ x + f + (1 | a) + (1 | b),
                       y ~ x + (0 + f | a) + (1 | b))) {
    for (reml in c(FALSE, TRUE)) {
      info <- sprintf("%s, %s, REML = %s", label, deparse1(formula), reml)
      reference <- lme4::lmer(formula, data, REML = reml, control = lme4::lmerControl(
        optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5),
        check.conv.singular = "ignore"))
      for (fit in fits(formula, reml)) {
        expect_equal(fixef(fit), lme4::fixef(reference), tolerance = 1e-5, info = info)
        expect_identical(colnames(ranef(fit)$a), colnames(lme4::ranef(reference)$a), info = info)
        expect_equal(as.numeric(logLik(fit)), as.numeric(logLik(reference)), tolerance = 1e-7,
                     info = info)
      }
    }
  }
}
