# Attaching hnm must not break lme4, and lme4's own helpers must work on hnm fits, whichever
# package is attached last (each order in a fresh R process).

run_attached <- function(first, second) {
  script <- sprintf('
    .libPaths(c(%s, .libPaths()))
    suppressMessages({library(%s); library(%s)})
    l <- lme4::lmer(Reaction ~ Days + (1 | Subject), lme4::sleepstudy, REML = FALSE)
    h <- hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
    o <- hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff2)
    cat(ngrps(l), ngrps(h), isSingular(l), isSingular(h), isSingular(o),
        getME(h, "theta")[[1]] > 0, getME(l, "theta")[[1]] > 0, "\\n")',
    deparse1(dirname(system.file(package = "hnm"))), first, second)
  file <- tempfile(fileext = ".R")
  writeLines(script, file)
  out <- system2(file.path(R.home("bin"), "Rscript"), file, stdout = TRUE, stderr = TRUE)
  trimws(out[length(out)])
}

test_that("ngrps, isSingular and getME work on both packages' fits in either attach order", {
  skip_if_not_installed("lme4")
  expected <- "18 18 FALSE FALSE TRUE TRUE TRUE"
  expect_identical(run_attached("lme4", "hnm"), expected)
  expect_identical(run_attached("hnm", "lme4"), expected)
})
