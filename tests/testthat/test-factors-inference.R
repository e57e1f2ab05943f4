# Inference for models with several grouping factors (issue 23): profile likelihood intervals
# against lme4's confint(profile()) (ML), and against a dense likelihood written here (the
# marginal V = sum_f s_f^2 Z_f Z_f' + sigma^2 I, R's determinants and solves, minimised by
# R's optim) for REML, which lme4 profiles by ML instead.

# lme4 1.1.31: confint(profile(lmer(formula, data, REML = FALSE, control =
# lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12))))).
lme4_profile_limits <- list(
  penicillin = matrix(c(0.633565787544602, 1.09578926434985, 0.485845400174871, 21.2666273835443,
                        1.18210398400037, 3.55629191482354, 0.629453478517008, 24.6778176174487),
                      4L),
  pastes = matrix(c(2.15793370841329, 0, 0.652023356117154, 58.6636503785369,
                    4.05358894072103, 2.94659111084822, 1.08544810377139, 61.4430163687228), 4L)
)

several_models <- list(
  penicillin = list(formula = diameter ~ 1 + (1 | plate) + (1 | sample), data = lme4::Penicillin,
                    factors = c("plate", "sample"),
                    groups = function(d) list(d$plate, d$sample)),
  pastes = list(formula = strength ~ 1 + (1 | batch/cask), data = lme4::Pastes,
                factors = c("cask:batch", "batch"),
                groups = function(d) list(interaction(d$batch, d$cask, drop = TRUE), d$batch))
)

test_that("profile intervals of several factors equal lme4's (Penicillin, Pastes; ML)", {
  for (name in names(several_models)) {
    m <- several_models[[name]]
    fit <- hnm_fit(m$formula, m$data, method = "ML")
    expected <- lme4_profile_limits[[name]]
    dimnames(expected) <- list(c(".sig01", ".sig02", ".sigma", "(Intercept)"),
                               c("2.5 %", "97.5 %"))
    limits <- confint(fit)
    expect_identical(dimnames(limits), dimnames(expected), label = name)
    # lme4 interpolates its profile with splines: agreement to its accuracy.
    expect_equal(limits, expected, tolerance = 1e-3, label = name)
    pr <- profile(fit)
    expect_s3_class(pr, c("hnm_profile", "thpr", "data.frame"), exact = TRUE)
    expect_identical(names(pr), c(".zeta", rownames(expected), ".par"))
    expect_equal(confint(pr), expected, tolerance = 1e-3, label = name)
    expect_identical(confint(fit, ".sigma"), limits[".sigma", , drop = FALSE])
    # oldNames = FALSE names each SD by its own factor, as lme4's.
    expect_identical(rownames(confint(fit, oldNames = FALSE, parm = 1:2)),
                     sprintf("sd_(Intercept)|%s", m$factors))
  }
})

# The REML criterion of y ~ 1 + (1 | f_1) + ... at SDs `sd` (one per factor) and sigma, with
# beta at its GLS value given them or, when `beta` is given, held there (lme4's REML criterion
# with beta fixed, Bates et al. 2015, eq. 42).
dense_reml <- function(y, factors, sd, sigma, beta = NULL) {
  n <- length(y)
  v <- diag(sigma^2, n)
  for (f in seq_along(factors)) {
    z <- stats::model.matrix(~ 0 + factors[[f]])
    v <- v + sd[f]^2 * tcrossprod(z)
  }
  x <- matrix(1, n, 1)
  chol_v <- chol(v)
  vx <- backsolve(chol_v, x, transpose = TRUE)
  vy <- backsolve(chol_v, y, transpose = TRUE)
  xvx <- crossprod(vx)
  if (is.null(beta)) beta <- solve(xvx, crossprod(vx, vy))
  r <- vy - vx %*% beta
  2 * sum(log(diag(chol_v))) + as.numeric(determinant(xvx)$modulus) + sum(r^2) +
    (n - 1) * log(2 * pi)
}

test_that("REML profile limits of several factors are where the dense REML criterion is z^2 up", {
  z <- stats::qnorm(0.975)
  for (name in names(several_models)) {
    m <- several_models[[name]]
    fit <- hnm_fit(m$formula, m$data, method = "REML")
    factors <- m$groups(m$data)
    y <- m$data[[all.vars(m$formula)[1L]]]
    estimates <- c(sqrt(diag(fit$re_covariance)), fit$sigma)
    minimum <- dense_reml(y, factors, estimates[1:2], estimates[3])
    expect_equal(minimum, fit$deviance, tolerance = 1e-8, label = name)
    limits <- confint(fit)
    # Each limit: the dense criterion minimised over the other variance parameters (and beta
    # for the intercept's profile) with the profiled one held at the limit.
    for (i in seq_len(nrow(limits))) for (side in 1:2) {
      value <- limits[i, side]
      if (i <= 2L && value == 0) next
      criterion <- function(free) {
        if (i == 4L) return(dense_reml(y, factors, abs(free[1:2]), abs(free[3]), beta = value))
        all <- append(abs(free), value, after = i - 1L)
        dense_reml(y, factors, all[1:2], all[3])
      }
      start <- if (i == 4L) estimates else estimates[-i]
      found <- stats::optim(start, criterion, method = "BFGS",
                            control = list(reltol = 1e-14, maxit = 1000))
      label <- sprintf("%s %s %d", name, rownames(limits)[i], side)
      expect_equal(found$value - minimum, z^2, tolerance = 1e-5, label = label)
    }
  }
})

# The ML deviance of y ~ 1 + (1 | f_1) + ... at SDs `sd` and sigma, beta at its GLS value.
dense_ml <- function(y, factors, sd, sigma) {
  n <- length(y)
  v <- diag(sigma^2, n)
  for (f in seq_along(factors)) v <- v + sd[f]^2 * tcrossprod(stats::model.matrix(~ 0 + factors[[f]]))
  chol_v <- chol(v)
  vx <- backsolve(chol_v, matrix(1, n, 1), transpose = TRUE)
  vy <- backsolve(chol_v, y, transpose = TRUE)
  r <- vy - vx %*% solve(crossprod(vx), crossprod(vx, vy))
  2 * sum(log(diag(chol_v))) + sum(r^2) + n * log(2 * pi)
}

test_that("Wald intervals of several factors: the dense deviance's Hessian, lme4's fixed rows", {
  z <- stats::qnorm(0.975)
  for (name in names(several_models)) {
    m <- several_models[[name]]
    fit <- hnm_fit(m$formula, m$data, method = "ML")
    y <- m$data[[all.vars(m$formula)[1L]]]
    factors <- m$groups(m$data)
    psi <- c(sqrt(diag(fit$re_covariance)), fit$sigma)
    deviance <- function(x) dense_ml(y, factors, x[1:2], x[3])
    # Central differences of the deviance in (sd_1, sd_2, sigma): the delta method's
    # covariance J (2 H^-1) J' is 2 H_psi^-1 in lme4's parameters themselves.
    h <- 1e-4 * psi
    hessian <- matrix(0, 3, 3)
    for (a in 1:3) for (b in 1:3) {
      step <- function(sa, sb) {
        x <- psi
        x[a] <- x[a] + sa * h[a]
        x[b] <- x[b] + sb * h[b]
        deviance(x)
      }
      hessian[a, b] <- (step(1, 1) - step(1, -1) - step(-1, 1) + step(-1, -1)) / (4 * h[a] * h[b])
    }
    se <- sqrt(diag(2 * solve(hessian)))
    limits <- confint(fit, method = "Wald")
    # Lower limits of SDs are truncated at 0 (Pastes' batch).
    expect_equal(unname(limits[1:3, ]), unname(cbind(pmax(psi - z * se, 0), psi + z * se)),
                 tolerance = 1e-5, label = name)
    reference <- lme4::lmer(m$formula, m$data, REML = FALSE, control = lme4::lmerControl(
      optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12)))
    expected <- suppressMessages(confint(reference, method = "Wald"))
    expect_identical(dimnames(limits), dimnames(expected), label = name)
    expect_equal(unclass(limits)[4, ], expected[4, ], tolerance = 1e-6, label = name)
  }
})

test_that("simulate() of several factors has the model's moments (lme4's estimates)", {
  fit <- hnm_fit(diameter ~ 1 + (1 | plate) + (1 | sample), lme4::Penicillin, method = "ML")
  reference <- lme4::lmer(diameter ~ 1 + (1 | plate) + (1 | sample), lme4::Penicillin,
                          REML = FALSE, control = lme4::lmerControl(
                            optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12)))
  variances <- as.data.frame(lme4::VarCorr(reference))$vcov  # plate, sample, residual
  nsim <- 4000
  sims <- as.matrix(simulate(fit, nsim = nsim, seed = 1))
  expect_identical(dim(sims), c(144L, as.integer(nsim)))
  # The grand mean: beta, with variance (s_plate^2/24 + s_sample^2/6 + sigma^2/144)/nsim.
  se <- sqrt((variances[1] / 24 + variances[2] / 6 + variances[3] / 144) / nsim)
  expect_lt(abs(mean(sims) - lme4::fixef(reference)[[1]]), 4 * se)
  # Covariances of pairs of rows by what they share: V = s_p^2 [same plate] +
  # s_s^2 [same sample] + sigma^2 [same row].
  covariance <- stats::cov(t(sims))
  plate <- lme4::Penicillin$plate
  sample <- lme4::Penicillin$sample
  same_plate <- outer(plate, plate, "==")
  same_sample <- outer(sample, sample, "==")
  off <- !diag(144)
  expect_equal(mean(diag(covariance)), sum(variances), tolerance = 0.05)
  expect_equal(mean(covariance[same_plate & !same_sample]), variances[1], tolerance = 0.05)
  expect_equal(mean(covariance[same_sample & !same_plate & off]), variances[2], tolerance = 0.1)
  expect_lt(abs(mean(covariance[!same_sample & !same_plate])), 0.05 * sum(variances))
  # Conditional on the modes (use.u = TRUE): fitted values plus errors of variance sigma^2.
  conditional <- as.matrix(simulate(fit, nsim = nsim, seed = 2, use.u = TRUE))
  expect_lt(max(abs(rowMeans(conditional) - fitted(reference))), 5 * sqrt(variances[3] / nsim))
  expect_equal(mean(apply(conditional, 1, stats::var)), variances[3], tolerance = 0.03)
  # The draws are in lme4's order (every factor's effects, level by level, then the errors),
  # so the same seed gives lme4's simulations, up to the estimates' agreement.
  expect_equal(as.matrix(simulate(fit, nsim = 3, seed = 3)),
               as.matrix(simulate(reference, nsim = 3, seed = 3)), tolerance = 1e-6,
               ignore_attr = TRUE)
  pastes <- several_models$pastes
  expect_equal(as.matrix(simulate(hnm_fit(pastes$formula, pastes$data, method = "ML"), nsim = 3,
                                  seed = 4)),
               as.matrix(simulate(lme4::lmer(pastes$formula, pastes$data, REML = FALSE, control =
                                               lme4::lmerControl(optimizer = "bobyqa",
                                                                 optCtrl = list(rhoend = 1e-12))),
                                  nsim = 3, seed = 4)), tolerance = 1e-6, ignore_attr = TRUE)
  expect_error(simulate(fit, re.form = ~ (1 | plate)), class = "hnm_error_unsupported")
})

test_that("refit() of several factors equals lme4's refit()", {
  for (name in names(several_models)) {
    m <- several_models[[name]]
    for (reml in c(FALSE, TRUE)) {
      fit <- hnm_fit(m$formula, m$data, REML = reml)
      y <- simulate(fit, seed = 7)[[1]]
      refitted <- refit(fit, y)
      reference <- lme4::refit(lme4::lmer(m$formula, m$data, REML = reml, control =
                                            lme4::lmerControl(optimizer = "bobyqa",
                                                              optCtrl = list(rhoend = 1e-12))),
                               y)
      label <- sprintf("%s REML = %s", name, reml)
      expect_equal(refitted$deviance, unname(lme4::getME(reference, "devcomp")$cmp[
        if (reml) "REML" else "dev"]), tolerance = 1e-7, label = label)
      expect_equal(unname(getME(refitted, "theta")), unname(lme4::getME(reference, "theta")),
                   tolerance = 1e-4, label = label)
      expect_equal(fixef(refitted), lme4::fixef(reference), tolerance = 1e-6, label = label)
      expect_equal(sigma(refitted), sigma(reference), tolerance = 1e-5, label = label)
    }
    # refitML() of a REML fit: lme4's ML fit.
    ml <- refitML(hnm_fit(m$formula, m$data, REML = TRUE))
    expected <- lme4::lmer(m$formula, m$data, REML = FALSE, control = lme4::lmerControl(
      optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12)))
    expect_identical(ml$method, "ML")
    expect_equal(ml$deviance, stats::deviance(expected), tolerance = 1e-8, label = name)
    expect_equal(unname(getME(ml, "theta")), unname(lme4::getME(expected, "theta")),
                 tolerance = 1e-4, label = name)
  }
})

test_that("bootstrap() of several factors refits simulate()'s draws as lme4 does", {
  m <- several_models$pastes
  fit <- hnm_fit(m$formula, m$data, method = "ML")
  b <- bootstrap(fit, nsim = 20, seed = 11)
  expect_s3_class(b, "hnm_bootstrap")
  expect_identical(colnames(b$t), c(".sig01", ".sig02", ".sigma", "(Intercept)"))
  expect_identical(b$failed, 0L)
  reference <- lme4::lmer(m$formula, m$data, REML = FALSE, control = lme4::lmerControl(
    optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12)))
  expect_equal(unname(b$t0), unname(c(as.data.frame(lme4::VarCorr(reference))$sdcor,
                                      lme4::fixef(reference))), tolerance = 1e-4)
  # Replicate k is the refit of simulate()'s k-th draw (simulated one at a time from the seed).
  set.seed(11)
  for (k in 1:3) {
    y <- simulate(fit)[[1]]
    refitted <- suppressMessages(lme4::refit(reference, y))
    expected <- c(as.data.frame(lme4::VarCorr(refitted))$sdcor, lme4::fixef(refitted))
    expect_equal(unname(b$t[k, ]), unname(expected), tolerance = 1e-4, label = paste("replicate", k))
  }
  ci <- confint(fit, method = "boot", nsim = 20, seed = 11, quiet = TRUE)
  expect_identical(rownames(ci), c(".sig01", ".sig02", ".sigma", "(Intercept)"))
  expect_equal(unname(ci[".sigma", ]), unname(stats::quantile(b$t[, ".sigma"], c(0.025, 0.975))),
               tolerance = 1e-12)
})

test_that("bootstrap_lrt() with several factors refits simulate()'s draws as lme4 does", {
  m0 <- hnm_fit(strength ~ 1 + (1 | batch:cask), lme4::Pastes, REML = TRUE)
  m1 <- hnm_fit(strength ~ 1 + (1 | batch/cask), lme4::Pastes, REML = TRUE)
  test <- bootstrap_lrt(m0, m1, nsim = 20, seed = 5)
  control <- lme4::lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12))
  r0 <- lme4::lmer(strength ~ 1 + (1 | batch:cask), lme4::Pastes, REML = FALSE, control = control)
  r1 <- lme4::lmer(strength ~ 1 + (1 | batch/cask), lme4::Pastes, REML = FALSE, control = control)
  expect_equal(test$statistic, stats::deviance(r0) - stats::deviance(r1), tolerance = 1e-6)
  expect_identical(test$df, 1L)
  expect_identical(test$failed, 0L)
  # Replicate k: both models refitted by ML to simulate()'s k-th draw from m0 (REML), as lme4.
  s0 <- lme4::lmer(strength ~ 1 + (1 | batch:cask), lme4::Pastes, control = control)
  set.seed(5)
  for (k in 1:3) {
    y <- simulate(s0)[[1]]
    refits <- suppressMessages(list(lme4::refit(r0, y), lme4::refit(r1, y)))
    expected <- max(stats::deviance(refits[[1]]) - stats::deviance(refits[[2]]), 0)
    expect_equal(test$replicates[k], expected, tolerance = 1e-6, label = paste("replicate", k))
  }
  expect_equal(test$p.value, (1 + sum(test$replicates >= test$statistic)) / 21)
})
