# mll_oneway and its derivatives against the lecture's dense function and numDeriv.

test_that("mll_oneway equals the lecture's dense mll.oneway to 1e-10 on unbalanced data", {
  d <- simulate_unbalanced(12, 2)
  points <- list(c(10, 4, 2), c(8.5, 1, 0), c(12, 0.3, 7), c(10, 4, 1e-8))
  labels <- list(numeric = as.integer(factor(d$g)) * 3, character = d$g, factor = factor(d$g))
  for (p in points) {
    reference <- c(lecture_mll_oneway(p, d$y, d$g))
    for (kind in names(labels)) {
      expect_equal(mll_oneway(p, d$y, labels[[kind]]), reference, tolerance = 1e-10, label = kind)
    }
  }
  expect_identical(mll.oneway, mll_oneway)
})

test_that("the lecture's printed values on the wheat data", {
  # lecture-mle-oneway.md, "Example: Wheat data" (printed to 7 significant digits).
  y <- wheat$y; g <- wheat$g
  expect_equal(mll.oneway(c(16.3, 1.787, 0.31), y, g), 88.58541, tolerance = 5e-8)
  expect_equal(mll.oneway(c(15, 1.787, 0.31), y, g), 101.3711, tolerance = 5e-7)
  expect_equal(mll.oneway(c(16.3, 2, 0.31), y, g), 88.71672, tolerance = 5e-8)
  expect_equal(mll.oneway(c(16.3, 1.787, 0.4), y, g), 88.62378, tolerance = 5e-8)
})

test_that("the lecture's optim call runs unchanged and lands where the lecture's did", {
  y <- wheat$y; g <- wheat$g
  fit.ml <- optim(c(15, 1, 1), mll.oneway, gr = NULL, y = y, g = g, lower = c(-Inf, 0, 0),
                  method = "L-BFGS-B", hessian = TRUE)
  # Printed in the lecture: par 16.3063995 1.7872063 0.3099255, value 88.5851.
  expect_equal(fit.ml$par, c(16.3063995, 1.7872063, 0.3099255), tolerance = 1e-7)
  expect_equal(fit.ml$value, 88.5851, tolerance = 1e-6)
  with_gradient <- optim(c(15, 1, 1), mll.oneway, gr = mll_oneway_grad, y = y, g = g,
                         lower = c(-Inf, 0, 0), method = "L-BFGS-B")
  expect_equal(with_gradient$par, c(16.3064, 1.787206, 0.30992504), tolerance = 1e-5)
})

test_that("gradient and Hessian equal numDeriv's to 1e-6", {
  skip_if_not_installed("numDeriv")
  d <- simulate_unbalanced(9, 4)
  for (p in list(c(10, 4, 2), c(9, 2.5, 0.3), c(11, 6, 9))) {
    f <- function(q) lecture_mll_oneway(q, d$y, d$g)
    expect_equal(unname(mll_oneway_grad(p, d$y, d$g)), numDeriv::grad(f, p), tolerance = 1e-6)
    expect_equal(unname(mll_oneway_hess(p, d$y, d$g)), numDeriv::hessian(f, p), tolerance = 1e-6)
  }
  h <- mll_oneway_hess(c(10, 4, 2), d$y, d$g)
  expect_identical(dimnames(h), list(c("mu", "sigma2", "tau2"), c("mu", "sigma2", "tau2")))
})

test_that("outside the parameter space the value is Inf and the derivatives an error", {
  y <- wheat$y; g <- wheat$g
  expect_identical(mll_oneway(c(16, 0, 0.3), y, g), Inf)
  expect_identical(mll_oneway(c(16, -1, 0.3), y, g), Inf)
  expect_identical(mll_oneway(c(16, 1.8, -0.1), y, g), Inf)
  # Issue 15: derivatives do not exist there; a silent NaN matrix was unclear.
  for (f in list(mll_oneway_grad, mll_oneway_hess)) {
    for (p in list(c(16, -1, 0.3), c(16, 0, 0.3), c(16, 1.8, -0.1))) {
      expect_error(f(p, y, g), "outside the parameter space", class = "hnm_error_outside_parameter_space")
    }
  }
})

test_that("bad arguments are classed errors naming the problem", {
  y <- wheat$y; g <- wheat$g
  expect_error(mll_oneway(c(16, 1), y, g), "`mus2t2` must have length 3", class = "hnm_error")
  expect_error(mll_oneway(c(16, NA, 1), y, g), "must not contain NA", class = "hnm_error")
  expect_error(mll_oneway(c(16, 1, 1), y, g[-1]), "same length", class = "hnm_error")
  expect_error(mll_oneway(c(16, 1, 1), as.character(y), g), "must be numeric", class = "hnm_error")
  expect_error(mll_oneway(c(16, 1, 1), replace(y, 3, Inf), g), "must be finite", class = "hnm_error")
})
