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
  sigma_upper <- optim(c(fit$mu, fit$tau2), function(q) nll(c(q[1], ci[".sigma", 2]^2, q[2])),
                       method = "L-BFGS-B", lower = c(-Inf, 0), control = list(factr = 1))
  expect_equal(2 * sigma_upper$value - deviance(fit), z2, tolerance = 1e-6)
  mu_lower <- optim(c(fit$sigma2, fit$tau2), function(q) nll(c(ci["(Intercept)", 1], q)),
                    method = "L-BFGS-B", lower = c(1e-8, 0), control = list(factr = 1))
  expect_equal(2 * mu_lower$value - deviance(fit), z2, tolerance = 1e-6)
  boundary <- confint(hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff2), method = "profile", level = 0.9)
  expect_identical(boundary[".sig01", 1], 0)
})

test_that("profile intervals need an ML fit", {
  fit <- hnm_fit(y ~ 1 | g, wheat, REML = TRUE)
  expect_error(confint(fit, method = "profile"), "ML fit", class = "hnm_error")
})
