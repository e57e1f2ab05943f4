# Attaching hnm must not break lme4, and lme4's own helpers must work on hnm fits, whichever
# package is attached last (each order in a fresh R process).

# The last line that the R code `body` prints in a fresh R process with the packages `first`
# and then `second` attached.
run_attached <- function(first, second, body) {
  script <- sprintf('
    .libPaths(c(%s, .libPaths()))
    suppressMessages({library(%s); library(%s)})
    %s', deparse1(dirname(system.file(package = "hnm"))), first, second, body)
  file <- tempfile(fileext = ".R")
  writeLines(script, file)
  out <- system2(file.path(R.home("bin"), "Rscript"), file, stdout = TRUE, stderr = TRUE)
  trimws(out[length(out)])
}

lme4_helpers <- '
    l <- lme4::lmer(Reaction ~ Days + (1 | Subject), lme4::sleepstudy, REML = FALSE)
    h <- hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
    o <- hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff2)
    cat(ngrps(l), ngrps(h), isSingular(l), isSingular(h), isSingular(o),
        getME(h, "theta")[[1]] > 0, getME(l, "theta")[[1]] > 0, "\\n")'

test_that("ngrps, isSingular and getME work on both packages' fits in either attach order", {
  skip_if_not_installed("lme4")
  expected <- "18 18 FALSE FALSE TRUE TRUE TRUE"
  expect_identical(run_attached("lme4", "hnm", lme4_helpers), expected)
  expect_identical(run_attached("hnm", "lme4", lme4_helpers), expected)
})

# refit(), refitML() (lme4's generics) and contest() (lmerTest's) on an hnm fit, against
# lmerTest's fits in the same process: "TRUE TRUE TRUE".
lmertest_methods <- '
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
    cat(isTRUE(refitted), isTRUE(ml), isTRUE(tested), "\\n")'

test_that("refit, refitML and contest reach hnm's methods in either attach order of lmerTest", {
  skip_if_not_installed("lmerTest")
  expect_identical(run_attached("lmerTest", "hnm", lmertest_methods), "TRUE TRUE TRUE")
  expect_identical(run_attached("hnm", "lmerTest", lmertest_methods), "TRUE TRUE TRUE")
})

test_that("hnm's generics hand lme4's fits to lme4 and refuse other classes, with lme4 loaded", {
  skip_if_not_installed("lme4")
  formula <- Reaction ~ Days + (Days | Subject)
  l <- lme4::lmer(formula, lme4::sleepstudy, REML = FALSE)
  expect_identical(getME(l, "theta"), lme4::getME(l, "theta"))
  expect_identical(ngrps(l), lme4::ngrps(l))
  expect_identical(isSingular(l), lme4::isSingular(l))
  expect_identical(REMLcrit(l), lme4::REMLcrit(l))
  expect_identical(ngrps(lme4::sleepstudy$Subject), lme4::ngrps(lme4::sleepstudy$Subject))
  y <- lme4::sleepstudy$Reaction + 1
  expect_identical(lme4::fixef(refit(l, y)), lme4::fixef(lme4::refit(l, y)))
  expect_equal(deviance(refitML(l)), deviance(lme4::refitML(l)))
  # Anything else is lme4's "no applicable method", named, where handing it to lme4's generic
  # would dispatch back to hnm's default method without end.
  other <- stats::lm(dist ~ speed, datasets::cars)
  expect_error(getME("a", "theta"), "getME\\(\\) has no method .* class \"character\"",
               class = "hnm_error_argument")
  # lme4's own answer, called from outside hnm's namespace (R CMD check runs the tests in a
  # child of it, where lme4's generic would find hnm's default method first).
  outside <- list2env(list(other = other), parent = globalenv())
  expect_error(evalq(lme4::getME(other, "theta"), outside), "no applicable method")
  for (call in list(quote(ngrps(other)), quote(isSingular(other)), quote(REMLcrit(other)),
                    quote(refit(other, 1:50)), quote(refitML(other)))) {
    expect_error(eval(call), "class \"lm\"", class = "hnm_error_argument", label = deparse1(call))
  }
})
