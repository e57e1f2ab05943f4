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
    p <- c(fit$mu, fit$sigma2, fit$tau2)
    information <- numDeriv::hessian(function(q) lecture_mll_oneway(q, y, g), p)
    se <- sqrt(diag(solve(information)))
    for (level in c(0.95, 0.9, 0.5)) {
      z <- qnorm(1 - (1 - level) / 2)
      ci <- confint(fit, method = "Wald", scale = "var", level = level)
      expected <- rbind(pmax(p[3] + c(-1, 1) * z * se[3], 0), pmax(p[2] + c(-1, 1) * z * se[2], 0),
                        p[1] + c(-1, 1) * z * se[1])
      expect_equal(unname(ci), expected, tolerance = 1e-6, label = paste(case$name, level))
      expect_identical(rownames(ci), c("tau2", "sigma2", "(Intercept)"))
    }
  }
})
