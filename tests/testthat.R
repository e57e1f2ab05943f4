library(testthat)
library(hnm)

test_check("hnm")
