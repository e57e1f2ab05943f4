# Profile-likelihood intervals against lme4's confint(method = "profile") (1e-3 relative,
# the precision of lme4's spline interpolation of its profile).

test_that("profile intervals agree with lme4 on Dyestuff, Dyestuff2, Rail and Hsb82", {
  skip_if_not_installed("lme4")
  for (case in Filter(function(x) !grepl("simulated", x$name), lme4_cases())) {
    fit <- hnm_fit(one_way_formula(case), case$data)
    ref <- suppressMessages(lme4::lmer(one_way_formula(case, TRUE), case$data, REML = FALSE))
    ref_ci <- suppressWarnings(suppressMessages(stats::confint(ref, method = "profile")))
    ci <- confint(fit, method = "profile")
    expect_identical(rownames(ci), rownames(ref_ci), label = case$name)
    expect_equal(unname(ci), unname(ref_ci), tolerance = 1e-3, label = case$name)
  }
})

test_that("at each limit, the independently profiled deviance rises by z^2", {
  # Minimise the lecture's dense likelihood over the other parameters with optim and
  # check 2 (min) - deviance = z^2 at the limits hnm found.
  d <- lme4::Dyestuff
  fit <- hnm_fit(Yield ~ 1 | Batch, d)
  ci <- confint(fit, method = "profile", level = 0.9)
  z2 <- qnorm(0.95)^2
  nll <- function(p) lecture_mll_oneway(p, d$Yield, d$Batch)
  sigma_upper <- optim(c(mu_of(fit), tau2_of(fit)), function(q) nll(c(q[1], ci[".sigma", 2]^2, q[2])),
                       method = "L-BFGS-B", lower = c(-Inf, 0), control = list(factr = 1))
  expect_equal(2 * sigma_upper$value - deviance(fit), z2, tolerance = 1e-6)
  mu_lower <- optim(c(sigma2_of(fit), tau2_of(fit)), function(q) nll(c(ci["(Intercept)", 1], q)),
                    method = "L-BFGS-B", lower = c(1e-8, 0), control = list(factr = 1))
  expect_equal(2 * mu_lower$value - deviance(fit), z2, tolerance = 1e-6)
  boundary <- confint(hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff2), method = "profile", level = 0.9)
  expect_identical(boundary[".sig01", 1], 0)
})

# lme4's REML criterion computed densely here (the lecture's block-diagonal V): with mu held
# fixed, (N - 1) log 2 pi + log|V| + log(1'V^-1 1) + (y - mu)'V^-1 (y - mu), whose minimum
# over mu (the GLS mean) is lme4's REMLcrit.
dense_reml_criterion <- function(mu, s2, t2, y, g) {
  terms <- vapply(split(y, g), function(yj) {
    V <- diag(s2, length(yj)) + t2
    Vinv <- solve(V)
    c(determinant(V)$modulus, sum(Vinv), t(yj - mu) %*% Vinv %*% (yj - mu))
  }, numeric(3))
  (length(y) - 1) * log(2 * pi) + sum(terms[1, ]) + log(sum(terms[2, ])) + sum(terms[3, ])
}

test_that("REML profile limits: the dense REML criterion rises by z^2 there", {
  skip_if_not_installed("lme4")
  for (case in Filter(function(x) x$name %in% c("Dyestuff", "simulated, 40 groups"), lme4_cases())) {
    y <- case$data[[case$y]]
    g <- as.character(case$data[[case$g]])
    fit <- hnm_fit(one_way_formula(case), case$data, REML = TRUE)
    ref <- lme4::lmer(one_way_formula(case, TRUE), case$data, REML = TRUE)
    expect_equal(deviance(fit), lme4::REMLcrit(ref), tolerance = 1e-8, label = case$name)
    ci <- confint(fit, method = "profile")
    expect_true(all(ci[, 1] < c(sqrt(tau2_of(fit)), sigma(fit), mu_of(fit)) &
                      ci[, 2] > c(sqrt(tau2_of(fit)), sigma(fit), mu_of(fit))), label = case$name)
    z2 <- qnorm(0.975)^2
    crit <- function(mu, s2, t2) dense_reml_criterion(mu, s2, t2, y, g)
    gls <- function(s2, t2) {
      w <- vapply(split(y, g), function(yj) length(yj) / (s2 + length(yj) * t2), 0)
      sum(w * vapply(split(y, g), mean, 0)) / sum(w)
    }
    # tau fixed at each limit: minimise over sigma2 with mu at its GLS value.
    for (tau in ci[".sig01", ci[".sig01", ] > 0]) {
      inner <- optimize(function(s2) crit(gls(s2, tau^2), s2, tau^2), c(0.2, 5) * sigma2_of(fit),
                        tol = 1e-10)
      expect_equal(inner$objective - deviance(fit), z2, tolerance = 1e-5, label = case$name)
    }
    # sigma fixed at its upper limit: minimise over tau2.
    sigma2 <- ci[".sigma", 2]^2
    inner <- optimize(function(t2) crit(gls(sigma2, t2), sigma2, t2), c(0, 10) * tau2_of(fit), tol = 1e-10)
    expect_equal(inner$objective - deviance(fit), z2, tolerance = 1e-5, label = case$name)
    # mu fixed at its lower limit: minimise over both variances.
    inner <- optim(c(sigma2_of(fit), tau2_of(fit)), function(q) crit(ci["(Intercept)", 1], q[1], q[2]),
                   method = "L-BFGS-B", lower = c(1e-8, 0), control = list(factr = 1))
    expect_equal(inner$value - deviance(fit), z2, tolerance = 1e-5, label = case$name)
  }
})

test_that("profile() traces lme4's zeta and gives lme4's profile intervals", {
  skip_if_not_installed("lme4")
  for (case in Filter(function(x) !grepl("simulated", x$name), lme4_cases())) {
    fit <- hnm_fit(one_way_formula(case), case$data)
    ref <- suppressMessages(lme4::lmer(one_way_formula(case, TRUE), case$data, REML = FALSE))
    ref_pr <- suppressWarnings(suppressMessages(profile(ref)))
    pr <- profile(fit)
    expect_s3_class(pr, c("hnm_profile", "thpr", "data.frame"), exact = TRUE)
    expect_identical(names(pr), names(ref_pr))
    # lme4's level order follows the collation locale; the levels themselves agree.
    expect_setequal(levels(pr$.par), levels(ref_pr$.par))
    # zeta at our points against lme4's interpolating spline of its own profile, inside its range.
    for (name in levels(pr$.par)) {
      rows <- pr[pr$.par == name, ]
      ref_rows <- ref_pr[ref_pr$.par == name, ]
      inside <- rows[[name]] > min(ref_rows[[name]]) & rows[[name]] < max(ref_rows[[name]])
      ref_zeta <- predict(attr(ref_pr, "forward")[[name]], rows[[name]][inside])$y
      expect_equal(rows$.zeta[inside], ref_zeta, tolerance = 2e-3, label = paste(case$name, name))
    }
    ref_ci <- suppressWarnings(confint(ref_pr))
    for (level in c(0.95, 0.8)) {
      expect_equal(unname(confint(pr, level = level)),
                   unname(suppressWarnings(confint(ref_pr, level = level))),
                   tolerance = 1e-3, label = paste(case$name, level))
    }
    expect_equal(confint(pr, scale = "var")[1:2, ], confint(pr)[1:2, ]^2, ignore_attr = TRUE)
  }
})

test_that("profiles of boundary fits and their plots work without errors", {
  skip_if_not_installed("lme4")
  pr <- profile(hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff2))
  tau <- pr[pr$.par == ".sig01", ]
  expect_identical(min(tau$.sig01), 0)
  expect_gte(min(tau$.zeta), -1e-6)
  expect_identical(confint(pr)[".sig01", 1], 0)
  # Beyond lme4's cut-off for its 3 parameters (|zeta| 3.37): 99.99% needs 3.89.
  expect_warning(ci <- confint(pr, level = 0.9999), "beyond the range")
  expect_true(is.na(ci[".sig01", 2]))
  grDevices::pdf(NULL)
  on.exit(grDevices::dev.off())
  expect_identical(plot(pr), pr)
  expect_identical(plot(profile(hnm_fit(y ~ 1 | g, wheat, REML = TRUE))),
                   profile(hnm_fit(y ~ 1 | g, wheat, REML = TRUE)))
  expect_error(profile(hnm_fit(y ~ 1 | g, wheat), alphamax = 2), "`alphamax`", class = "hnm_error")
})
