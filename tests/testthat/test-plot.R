# Base-graphics plots: drawn on a null device, returning their argument invisibly.

test_that("plot(fit) and plot(ranef(fit)) draw and return invisibly", {
  fit <- hnm_fit(y ~ 1 | g, wheat)
  grDevices::pdf(NULL)
  on.exit(grDevices::dev.off())
  expect_invisible(out <- plot(fit))
  expect_identical(out, fit)
  re <- ranef(fit)
  expect_invisible(out <- plot(re))
  expect_identical(out, re)
  expect_error(plot(ranef(fit, condVar = FALSE)), "condVar = TRUE", class = "hnm_error")
})
