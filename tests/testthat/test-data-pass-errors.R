# Errors of reading the data read as sentences naming the variable at fault. The expected
# text follows from the data: a corrupt factor whose 4th code (5) exceeds its 2 levels, a
# character response, and a raw grouping vector, which no pass reads.

test_that("data errors name the response and the grouping variable", {
  bad_factor <- structure(c(1L, 1L, 2L, 5L), levels = c("a", "b"), class = "factor")
  d <- data.frame(y = c(1, 2, 3, 5))
  d$batch <- bad_factor
  expect_error(hnm_fit(y ~ 1 | batch, d),
               "the grouping variable `batch` has group code 5 at row 4, outside 1..2.",
               fixed = TRUE, class = "hnm_error")
  expect_error(hnm_fit(yield ~ 1 | batch, data.frame(yield = letters[1:4], batch = 1:4)),
               "the response `yield` must be numeric, not character.", fixed = TRUE,
               class = "hnm_error")
  expect_error(hnm:::rust_result(hnm:::rs_group_codes(as.raw(1:4), "batch")),
               paste("the grouping variable `batch` must be a factor or an integer, logical,",
                     "double or character vector."), fixed = TRUE,
               class = "hnm_error_invalid_argument")
})
