# Errors of the Rust data pass read as sentences naming the variable at fault. The expected
# text follows from the data: a corrupt factor whose 4th code (5) exceeds its 2 levels, and
# a character response, which the pass cannot read.

test_that("data-pass errors name the response and the grouping variable", {
  bad_factor <- structure(c(1L, 1L, 2L, 5L), levels = c("a", "b"), class = "factor")
  expect_error(hnm:::rust_result(hnm:::rs_data_pass(c(1, 2, 3, 5), bad_factor, "yield", "batch")),
               "the grouping variable `batch` has group code 5 at row 4, outside 1..2.", fixed = TRUE,
               class = "hnm_error")
  expect_error(hnm:::rust_result(hnm:::rs_data_pass(letters[1:4], 1:4, "yield", "batch")),
               "the response `yield` must be a double or integer vector.", fixed = TRUE,
               class = "hnm_error")
  d <- data.frame(y = c(1, 2, 3, 5))
  d$batch <- bad_factor
  expect_error(hnm_fit(y ~ 1 | batch, d),
               "the grouping variable `batch` has group code 5 at row 4, outside 1..2.",
               fixed = TRUE, class = "hnm_error")
})
