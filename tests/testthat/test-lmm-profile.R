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
  expect_s3_class(pr, c("hnm_profile", "thpr", "data.frame"), exact = TRUE)
  expect_identical(names(pr), names(reference))
  expect_identical(levels(pr$.par), levels(reference$.par))
  # lme4's cut-off: the 99% joint region of the model's 6 parameters.
  zeta_max <- sqrt(stats::qchisq(0.99, 6))
  for (name in levels(pr$.par)) {
    rows <- pr[pr$.par == name, ]
    # Each end at the cut-off, or inside it on the parameter's bound (the correlation at 1).
    zeta <- range(rows$.zeta)
    ends <- rows[[name]][c(which.min(rows$.zeta), which.max(rows$.zeta))]
    bounded <- ends %in% c(attr(pr, "lower")[[name]], attr(pr, "upper")[[name]])
    expect_equal(zeta[!bounded], c(-zeta_max, zeta_max)[!bounded], tolerance = 1e-7, label = name)
    expect_true(all(abs(zeta[bounded]) < zeta_max), label = name)
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

# Checks that each end of the profiles of every parameter of y ~ x + (x | g) in `d` is an exact
# inner optimum at lme4's cut-off for alphamax = 0.05 and its 6 parameters, or on its bound (SD
# 0, correlation +-1) with zeta inside: the dense criterion there exceeds its minimum by
# qchisq(0.95, 6) to 1e-6, and no other values of the other parameters (R's optim from the
# point) do better.
expect_exact_profile_ends <- function(d, reml, label) {
  lower <- c(0, -1, 0, 1e-8, -Inf, -Inf)
  upper <- c(Inf, 1, Inf, Inf, Inf, Inf)
  dense <- dense_criterion(d)
  fit <- hnm_fit(y ~ x + (x | g), d, REML = reml)
  pr <- profile(fit, alphamax = 0.05, steps = 2)
  estimate <- attr(pr, "estimates")
  at_estimate <- dense(estimate, reml)
  expect_equal(at_estimate, if (reml) REMLcrit(fit) else deviance(fit), tolerance = 1e-9,
               label = label)
  for (k in 1:6) {
    rows <- pr[pr$.par == names(estimate)[k], ]
    for (end in unique(c(1L, nrow(rows)))) {
      point <- unlist(rows[end, names(estimate)])
      # A correlation is undefined (NaN) where an SD is 0, and the criterion does not depend
      # on it there.
      point[is.nan(point)] <- 0
      where <- sprintf("%s: %s end %d REML=%s", label, names(estimate)[k], end, reml)
      excess <- dense(point, reml) - at_estimate
      # Either zeta is the cut-off there, or the profile stops on the bound (SD 0, correlation 1).
      on_bound <- point[k] %in% c(lower[k], upper[k])
      if (on_bound) expect_lt(excess, stats::qchisq(0.95, 6), label = where) else
        expect_equal(excess, stats::qchisq(0.95, 6), tolerance = 1e-6, label = where)
      others <- stats::optim(point[-k], function(p) dense(append(p, point[k], k - 1), reml),
                             method = "L-BFGS-B", lower = lower[-k], upper = upper[-k],
                             control = list(factr = 1, maxit = 500))
      expect_gt(others$value, dense(point, reml) - 1e-6, label = where)
    }
  }
  fit
}

test_that("each profile limit is an exact inner optimum of a dense likelihood (ML and REML)", {
  skip_if_not_installed("MASS")
  sleep <- with(lme4::sleepstudy, data.frame(y = Reaction, x = Days, g = Subject))
  cases <- list(list(sleep, FALSE), list(sleep, TRUE), list(singular_design(), FALSE))
  for (case in cases) expect_exact_profile_ends(case[[1]], case[[2]], "sleepstudy/singular")
})

# Issue 25's generator: 8 groups of 1 + Poisson(10) rows, a covariate with SD 10, an intercept
# SD 0.5 and a slope SD 0.05, so that many fits are near-singular (a correlation near +-1, a
# slope SD near 0).
spread_design <- function(seed, m = 8) {
  set.seed(seed)
  d <- data.frame(g = rep(1:m, stats::rpois(m, 10) + 1))
  d$x <- 10 * stats::rnorm(nrow(d))
  d$y <- 2 + d$x + 0.5 * stats::rnorm(m)[d$g] + 0.05 * stats::rnorm(m)[d$g] * d$x +
    1.7 * stats::rnorm(nrow(d))
  d
}

test_that("profiles of near-singular fits with a covariate of large spread reach every limit", {
  # Seeds whose profile intervals failed before issue 25 ("Newton's method could not find
  # the profile-likelihood limit"): an SD profile that levels off below z^2 towards 0 (144,
  # 44), inner searches whose Newton line search failed near a correlation of +-1 (3, 54,
  # 56), the issue's example (1, REML), and sigma profiles whose inner search stopped with
  # the deviance known to its rounding but a gradient above the tolerance (135, 253, 322;
  # lme4's correlation limits of 135 and 253 and .sig01's lower one of 253 stop short of
  # the bounds +-1 and 0, where a direct minimisation of lme4's own deviance function puts
  # the profile below z^2); seed 56's .sig03 profile, whose upper end was an inner optimum on
  # the bound .sig01 = 0, 0.035 above the lowest (R's optim found it).
  # Columns: seed, REML, compare with lme4's ML profile (slow: 10 s or more a fit, so on
  # three seeds).
  cases <- list(c(1, 1, 0), c(144, 0, 0), c(44, 0, 1), c(3, 1, 0), c(54, 0, 1), c(56, 1, 0),
                c(135, 0, 0), c(253, 0, 0), c(322, 0, 1))
  for (case in cases) {
    d <- spread_design(case[1])
    reml <- case[2] == 1
    label <- sprintf("seed %d", case[1])
    fit <- hnm_fit(y ~ x + (x | g), d, REML = reml)
    limits <- tryCatch(confint(fit), error = function(e) conditionMessage(e))
    expect_true(is.matrix(limits), label = paste(label, limits))
    if (!is.matrix(limits)) next
    expect_exact_profile_ends(d, reml, label)
    expect_true(all(is.finite(limits)), label = label)
    if (case[3] == 1) {
      # lme4's ML profile, where it gives a limit (an NA where its profile stops short).
      reference <- suppressWarnings(confint(profile(lmer_tight(y ~ x + (x | g), d))))
      known <- is.finite(reference)
      expect_gt(sum(known), 8)
      expect_equal(limits[known], reference[known], tolerance = 1e-3, label = label)
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

test_that("confint(parm =) profiles only the parameters in parm, with lme4's selection", {
  fit <- hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy, method = "ML")
  full <- confint(fit)
  # The indices the Rust profile is asked for, recorded by a tracer on its entry point.
  seen <- new.env()
  trace("rs_lmm_profile_ci", where = asNamespace("hnm"), print = FALSE,
        tracer = bquote(assign("asked", c(.(seen)$asked, list(which)), envir = .(seen))))
  on.exit(untrace("rs_lmm_profile_ci", where = asNamespace("hnm")), add = TRUE)
  # lme4's confint.merMod(parm) is profile(which = parm): "theta_", "beta_", names and
  # indices, rows sorted in lme4's order (lme4:::get.which).
  cases <- list(list(3L, 3L), list(c(6, 1), c(1L, 6L)), list(".sigma", 4L),
                list("Days", 6L), list("theta_", 1:4), list("beta_", 5:6),
                list(c("beta_", ".sig02"), c(2L, 5L, 6L)))
  for (case in cases) {
    seen$asked <- list()
    limits <- confint(fit, parm = case[[1]])
    label <- deparse1(case[[1]])
    expect_identical(seen$asked, list(case[[2]]), label = label)
    expect_equal(limits, full[case[[2]], , drop = FALSE], tolerance = 1e-8, label = label)
  }
  expect_identical(rownames(confint(fit, parm = "theta_", oldNames = FALSE)),
                   c("sd_(Intercept)|Subject", "cor_Days.(Intercept)|Subject", "sd_Days|Subject",
                     "sigma"))
  expect_error(confint(fit, parm = "nope"), class = "hnm_error", regexp = "parm")
  expect_error(confint(fit, parm = 7), class = "hnm_error", regexp = "parm")
})

test_that("nested factors with a correlated slope outside: every profile point is lme4's deviance", {
  # Classes in schools, (x | school) + (1 | class): the profile's copy of the model in the data's
  # columns mapped the first factor's and the crossed couplings but not the nested chain's own
  # copy of them, so that its criterion was another model's (zeta 0 where lme4's is 0.046; limits
  # off by 0.014 on the correlation; egsingle's profile failed outright).
  set.seed(23)
  d <- data.frame(school = factor(rep(1:12, each = 24)), class = factor(rep(1:48, each = 6)))
  d$x <- stats::rnorm(nrow(d))
  d$y <- 2 + 0.5 * d$x + stats::rnorm(12)[d$school] + stats::rnorm(12, sd = 0.5)[d$school] * d$x +
    stats::rnorm(48, sd = 0.7)[d$class] + stats::rnorm(nrow(d))
  formula <- y ~ x + (x | school) + (1 | class)
  # lme4's ML deviance at lme4's (SD of class, SDs and correlation of school, sigma), sigma not
  # profiled: log|L|^2 + N log(2 pi sigma^2) + pwrss / sigma^2 at theta = Lambda / sigma.
  devfun <- lme4::lmer(formula, d, REML = FALSE, devFunOnly = TRUE)
  deviance <- function(p) {
    s <- p[[5]]
    root <- t(chol(matrix(c(p[[2]]^2, rep(p[[3]] * p[[2]] * p[[4]], 2), p[[4]]^2), 2)))
    devfun(c(p[[1]], root[c(1, 2, 4)]) / s)
    e <- environment(devfun)
    e$pp$ldL2() + nrow(d) * log(2 * pi * s^2) + (e$resp$wrss() + e$pp$sqrL(1)) / s^2
  }
  fit <- hnm_fit(formula, d)
  points <- as.data.frame(profile(fit, which = "theta_", steps = 4L))
  columns <- c(".sig01", ".sig02", ".sig03", ".sig04", ".sigma")
  minimum <- deviance(unlist(points[which(points$.zeta == 0)[1L], columns]))
  expect_equal(minimum, stats::deviance(fit), tolerance = 1e-9)
  expect_equal(unname(apply(points[columns], 1L, deviance)) - minimum, points$.zeta^2,
               tolerance = 1e-6)
  expect_equal(confint(fit, parm = "theta_"),
               lme4_profile_ci(lmer_tight(formula, d))[columns, ], tolerance = 1e-3)
})

test_that("confint() of a profile selects lme4's \"theta_\" and \"beta_\", as lme4's", {
  formula <- strength ~ 1 + (1 | batch / cask)
  profiled <- profile(hnm_fit(formula, lme4::Pastes))
  reference <- suppressWarnings(profile(lmer_tight(formula, lme4::Pastes)))
  for (parm in c("theta_", "beta_")) {
    expected <- confint(reference, parm = parm)
    # lme4 interpolates its profile with splines: agreement to its accuracy.
    expect_equal(confint(profiled, parm = parm), expected, tolerance = 1e-3, label = parm)
  }
})
