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

# refit(), refitML() (lme4's generics) and contest() (lmerTest's) on an hnm fit with lmerTest
# attached before or after hnm, against lmerTest's fits in the same process: "TRUE TRUE TRUE".
run_lmertest_attached <- function(first, second) {
  script <- sprintf('
    .libPaths(c(%s, .libPaths()))
    suppressMessages({library(%s); library(%s)})
    d <- lme4::Penicillin
    f <- diameter ~ 1 + (1 | plate) + (1 | sample)
    control <- lme4::lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12))
    h <- hnm_fit(f, d, REML = TRUE)
    set.seed(1)
    d2 <- d
    d2$diameter <- d$diameter + rnorm(nrow(d))
    refitted <- all.equal(deviance(refit(h, d2$diameter)),
                          lme4::REMLcrit(lmerTest::lmer(f, d2, control = control)),
                          tolerance = 1e-6)
    ml <- all.equal(c(logLik(refitML(h))),
                    c(logLik(lmerTest::lmer(f, d, REML = FALSE, control = control))),
                    tolerance = 1e-6)
    columns <- c("F value", "DenDF", "Pr(>F)")
    tested <- all.equal(unlist(contest(h, matrix(1, 1, 1))[columns]),
                        unlist(contest(lmerTest::lmer(f, d, control = control),
                                       matrix(1, 1, 1))[columns]), tolerance = 1e-4)
    cat(isTRUE(refitted), isTRUE(ml), isTRUE(tested), "\\n")',
    deparse1(dirname(system.file(package = "hnm"))), first, second)
  file <- tempfile(fileext = ".R")
  writeLines(script, file)
  out <- system2(file.path(R.home("bin"), "Rscript"), file, stdout = TRUE, stderr = TRUE)
  trimws(out[length(out)])
}

test_that("refit, refitML and contest reach hnm's methods in either attach order of lmerTest", {
  skip_if_not_installed("lmerTest")
  expect_identical(run_lmertest_attached("lmerTest", "hnm"), "TRUE TRUE TRUE")
  expect_identical(run_lmertest_attached("hnm", "lmerTest"), "TRUE TRUE TRUE")
})
