# Profile likelihood of fits with covariates or random slopes: against lme4's
# confint(method = "profile") and profile(), and against a dense likelihood written here (R's
# determinants and solves per group, minimised by R's optim), for ML and REML.

# lme4 at a tightly converged optimum, so that its profile starts from the same estimates.
lmer_tight <- function(formula, data) {
  control <- lme4::lmerControl(optimizer = "bobyqa",
                               optCtrl = list(rhobeg = 2e-4, rhoend = 2e-10, maxfun = 1e5))
  lme4::lmer(formula, data, REML = FALSE, control = control)
}

lme4_profile_ci <- function(fit) suppressWarnings(suppressMessages(confint(fit)))

test_that("profile intervals equal lme4's on sleepstudy (ML)", {
  for (formula in list(Reaction ~ Days + (Days | Subject), Reaction ~ Days + (Days || Subject))) {
    fit <- hnm_fit(formula, lme4::sleepstudy, method = "ML")
    reference <- suppressWarnings(profile(lmer_tight(formula, lme4::sleepstudy)))
    for (level in c(0.95, 0.9)) {
      label <- sprintf("%s level %g", deparse1(formula), level)
      limits <- confint(fit, level = level)
      expected <- suppressWarnings(confint(reference, level = level))
      expect_identical(dimnames(limits), dimnames(expected), label = label)
      # lme4 interpolates its profile with splines: agreement to its accuracy.
      expect_equal(limits, expected, tolerance = 1e-3, label = label)
    }
    expect_identical(confint(fit, "Days"), confint(fit)["Days", , drop = FALSE])
  }
})

test_that("profile intervals equal lme4's on the lecture's NELS model (ML)", {
  # lme4 1.1.31, confint(lmer(mscore ~ flp + enroll + ses + (ses | school), nels,
  # REML = FALSE, control = lmerControl(optimizer = "bobyqa", optCtrl = list(rhobeg = 2e-4,
  # rhoend = 2e-10)))): 51 s and 92 warnings on the project's machine.
  reference <- matrix(c(2.7687828303009, -0.180210341821709, 0.823117272090562, 8.09727174122682,
                        54.638370309555, -2.77688329103921, -0.154147220481773, 3.86803646721093,
                        3.24816878652799, 0.288682158181384, 1.63921527553896, 8.30735800920994,
                        56.2223236685179, -2.04781307462341, 0.168578260184662, 4.36521314201756),
                      8L, 2L, dimnames = list(c(".sig01", ".sig02", ".sig03", ".sigma",
                                                "(Intercept)", "flp", "enroll", "ses"),
                                              c("2.5 %", "97.5 %")))
  fit <- hnm_fit(mscore ~ flp + enroll + ses + (ses | school), nels, method = "ML")
  expect_no_warning(limits <- confint(fit, method = "profile"))
  expect_equal(limits, reference, tolerance = 1e-3)
})

test_that("profile() has lme4's shape and reaches zeta_max exactly", {
  fit <- hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy, method = "ML")
  reference <- suppressWarnings(profile(lmer_tight(Reaction ~ Days + (Days | Subject),
                                                   lme4::sleepstudy)))
  pr <- profile(fit)
  expect_s3_class(pr, c("hnm_profile", "data.frame"), exact = TRUE)
  expect_identical(names(pr), names(reference))
  expect_identical(levels(pr$.par), levels(reference$.par))
  zeta_max <- sqrt(stats::qchisq(0.99, 1))
  for (name in levels(pr$.par)) {
    rows <- pr[pr$.par == name, ]
    expect_equal(range(rows$.zeta), c(-zeta_max, zeta_max), tolerance = 1e-7, label = name)
    expect_false(is.unsorted(rows[[name]]), label = name)
  }
  expect_equal(confint(pr), confint(fit), tolerance = 1e-5)
  profiled <- function(pr) unique(as.character(pr$.par))
  expect_identical(profiled(pr), unique(as.character(reference$.par)))
  expect_identical(profiled(profile(fit, which = "beta_")), c("(Intercept)", "Days"))
  expect_identical(profiled(profile(fit, which = c(3, 1))), c(".sig01", ".sig03"))
  expect_identical(profiled(profile(fit, which = "theta_", oldNames = FALSE)),
                   c("sd_(Intercept)|Subject", "cor_Days.(Intercept)|Subject",
                     "sd_Days|Subject", "sigma"))
  grDevices::pdf(NULL)
  on.exit(grDevices::dev.off())
  expect_identical(plot(pr), pr)
})

# -2 log-likelihood (ML) or the REML criterion with beta held at `beta` (Bates et al. 2015,
# eq. 42) of y ~ x + (x | g) in data `d`, from the parameters (sd1, cor, sd2, sigma, beta) by
# dense per-group matrices.
dense_criterion <- function(d) {
  groups <- split(seq_len(nrow(d)), d$g)
  function(par, reml) {
    sigma_b <- matrix(c(par[1]^2, par[2] * par[1] * par[3], par[2] * par[1] * par[3], par[3]^2), 2)
    beta <- par[5:6]
    total <- nrow(d) * log(2 * pi)
    information <- matrix(0, 2, 2)
    for (rows in groups) {
      z <- cbind(1, d$x[rows])
      v <- par[4]^2 * diag(length(rows)) + z %*% sigma_b %*% t(z)
      r <- d$y[rows] - z %*% beta
      total <- total + as.numeric(determinant(v)$modulus) + sum(r * solve(v, r))
      information <- information + t(z) %*% solve(v, z)
    }
    if (reml) total + as.numeric(determinant(information)$modulus) - 2 * log(2 * pi) else total
  }
}

# A singular fit (correlation 1) of 8 groups, where lme4's profile of the correlation steps
# outside its range (to 1.01) and confint() reports [-1, 1].
singular_design <- function() {
  set.seed(3)
  m <- 8
  n <- 6
  g <- rep(seq_len(m), each = n)
  x <- rep(0:(n - 1), m)
  b <- MASS::mvrnorm(m, c(0, 0), matrix(c(1, 0.45, 0.45, 0.25), 2))
  data.frame(g = factor(g), x = x, y = 1 + 0.5 * x + b[g, 1] + b[g, 2] * x +
               stats::rnorm(m * n, sd = 0.5))
}

test_that("each profile limit is an exact inner optimum of a dense likelihood (ML and REML)", {
  skip_if_not_installed("MASS")
  sleep <- with(lme4::sleepstudy, data.frame(y = Reaction, x = Days, g = Subject))
  lower <- c(0, -1, 0, 1e-8, -Inf, -Inf)
  upper <- c(Inf, 1, Inf, Inf, Inf, Inf)
  cases <- list(list(sleep, FALSE), list(sleep, TRUE), list(singular_design(), FALSE))
  for (case in cases) {
    reml <- case[[2]]
    dense <- dense_criterion(case[[1]])
    fit <- hnm_fit(y ~ x + (x | g), case[[1]], REML = reml)
    pr <- profile(fit, alphamax = 0.05, steps = 2)
    estimate <- attr(pr, "estimates")
    at_estimate <- dense(estimate, reml)
    expect_equal(at_estimate, if (reml) REMLcrit(fit) else deviance(fit), tolerance = 1e-9)
    for (k in seq_along(estimate)) {
      rows <- pr[pr$.par == names(estimate)[k], ]
      for (end in unique(c(1L, nrow(rows)))) {
        point <- unlist(rows[end, names(estimate)])
        label <- sprintf("%s end %d REML=%s", names(estimate)[k], end, reml)
        excess <- dense(point, reml) - at_estimate
        # Either zeta = +-1.96 there, or the profile stops on the bound (SD 0, correlation 1).
        on_bound <- point[k] %in% c(lower[k], upper[k])
        if (on_bound) expect_lt(excess, stats::qchisq(0.95, 1), label = label) else
          expect_equal(excess, stats::qchisq(0.95, 1), tolerance = 1e-6, label = label)
        others <- stats::optim(point[-k], function(p) dense(append(p, point[k], k - 1), reml),
                               method = "L-BFGS-B", lower = lower[-k], upper = upper[-k],
                               control = list(factr = 1, maxit = 500))
        expect_gt(others$value, dense(point, reml) - 1e-6, label = label)
      }
    }
  }
})

test_that("a correlation interval that reaches 1 ends at 1", {
  skip_if_not_installed("MASS")
  fit <- hnm_fit(y ~ x + (x | g), singular_design(), method = "ML")
  expect_true(isSingular(fit))
  limits <- confint(fit)
  expect_identical(limits[".sig02", "97.5 %"], 1)
  expect_lt(limits[".sig02", "2.5 %"], 0.9)
  pr <- profile(fit, which = ".sig02")
  expect_identical(max(pr$.sig02), 1)
})

test_that("profile arguments are checked", {
  fit <- hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  expect_error(profile(fit, which = "nope"), class = "hnm_error")
  expect_error(profile(fit, which = 7), class = "hnm_error")
  expect_error(profile(fit, steps = 1), class = "hnm_error")
  expect_error(profile(fit, alphamax = 0), class = "hnm_error")
  expect_error(profile(fit, maxpts = 3), class = "hnm_error")
  expect_error(confint(fit, level = 2), class = "hnm_error")
  expect_identical(rownames(confint(fit, oldNames = FALSE)),
                   c("sd_(Intercept)|Subject", "cor_Days.(Intercept)|Subject", "sd_Days|Subject",
                     "sigma", "(Intercept)", "Days"))
})
