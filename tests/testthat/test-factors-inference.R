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
    expect_s3_class(pr, c("hnm_profile", "data.frame"), exact = TRUE)
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
