# A battery of malformed inputs thrown at every exported function in a child R process:
# none may crash R, and none may surface a Rust panic or backtrace instead of an R error.

fuzz_script <- function() {
  '
  library(hnm)
  set.seed(1)
  good <- data.frame(y = rnorm(40), g = rep(letters[1:8], each = 5))
  fit <- hnm_fit(y ~ 1 | g, good)
  reml <- hnm_fit(y ~ 1 | g, good, REML = TRUE)
  singular <- hnm_fit(y ~ 1 | g, data.frame(y = rnorm(40), g = rep(1:8, each = 5)))
  values <- list(NULL, NA, NA_real_, NaN, Inf, -Inf, 0, -1, 1e308, -1e308, 5e-324, .Machine$integer.max,
                 numeric(0), character(0), "a", c("a", "b"), TRUE, list(), list(1, "a"), 1:3,
                 c(1, NA, 3), c(NaN, 1, 1), c(Inf, 1, 1), c(1, 1e308, 1e308), c(0, 0, 0), c(1, -1, -1),
                 matrix(1:6, 2), factor(c("a", "b")), as.Date("2020-01-01"), 1i, quote(x), sum,
                 data.frame(), new.env(), rnorm(1e4), rep(1e300, 40), rep(1e-300, 40))
  frames <- list(
    good, good[0, ], good[1, ], transform(good, y = NA), transform(good, y = NaN),
    transform(good, y = Inf), transform(good, y = "a"), transform(good, g = NA),
    transform(good, y = 1e308 * sign(y)), transform(good, y = 5e-324 * (y > 0)),
    transform(good, y = y * 1e-300), transform(good, y = y * 1e300), transform(good, y = y + 1e15),
    transform(good, y = replace(y, 1:39, 0)), transform(good, g = seq_along(y)),
    transform(good, g = 1), data.frame(y = 1:2, g = 1:2), data.frame(y = c(1, 2, 1, 2), g = c(1, 1, 2, 2)),
    list(y = 1:3, g = 1:2), list(), "data", 1:10, NULL
  )
  formulas <- list(y ~ 1 | g, y ~ 1 + (1 | g), y ~ g, ~ 1 | g, y ~ 1, y ~ (1 | g) + (1 | y),
                   y ~ x + (1 | g), y ~ 1 + (y | g), y ~ 1 | g + g, log(y) ~ 1 | g, y ~ 1 | nope,
                   nope ~ 1 | g, y ~ 1 | g[1], y ~ 1 || g, "y ~ 1 | g", NULL, 1, quote(y ~ 1 | g))
  quietly <- function(expr) {
    tryCatch(utils::capture.output(suppressWarnings(expr)), error = function(e) conditionMessage(e))
  }
  calls <- 0L
  for (f in formulas) for (d in frames) for (r in list(FALSE, TRUE, NA, "x")) {
    quietly(hnm_fit(f, d, REML = r)); calls <- calls + 1L
  }
  for (mll in list(mll_oneway, mll.oneway, mll_oneway_grad, mll_oneway_hess)) {
    for (p in values) for (y in values[c(3, 5, 15, 20, 21, 22, 23, 35, 36, 37)]) {
      quietly(mll(p, y, rep(1:2, length.out = length(y)))); calls <- calls + 1L
    }
    for (v in values) {
      quietly(mll(c(0, 1, 1), v, rep(1:2, length.out = length(v))))
      quietly(mll(c(0, 1, 1), rnorm(6), v))
      quietly(mll(v, good$y, good$g))
      calls <- calls + 3L
    }
  }
  methods <- list(print, summary, function(x) print(summary(x)), confint,
                  function(x) confint(x, method = "profile"), function(x) confint(x, scale = "var"),
                  function(x) confint(x, level = 2), function(x) confint(x, parm = 7),
                  function(x) confint(x, method = "nope"), vcov, function(x) vcov(x, full = TRUE),
                  VarCorr, function(x) as.data.frame(VarCorr(x)), fixef, ngrps, isSingular, logLik,
                  AIC, BIC, nobs, deviance, sigma, formula, fitted, residuals,
                  function(x) residuals(x, type = "bogus"), df.residual)
  broken <- list(fit, reml, singular, structure(list(), class = "hnm_fit"),
                 structure(list(mu = "a", sigma2 = -1, tau2 = NA), class = "hnm_fit"),
                 local({ b <- fit; b$stats <- NULL; b }), local({ b <- fit; b$y <- NULL; b }),
                 local({ b <- fit; b$stats$n <- -b$stats$n; b }),
                 local({ b <- fit; b$stats$ss <- NaN * b$stats$ss; b }))
  for (m in methods) for (b in broken) { quietly(m(b)); calls <- calls + 1L }
  for (v in values) {
    for (m in list(fixef, VarCorr, ngrps, isSingular)) { quietly(m(v)); calls <- calls + 1L }
  }
  cat("fuzz calls completed:", calls, "\n")
  '
}

test_that("no malformed input crashes R or shows a Rust panic", {
  script <- tempfile(fileext = ".R")
  on.exit(unlink(script))
  writeLines(fuzz_script(), script)
  rscript <- file.path(R.home("bin"), "Rscript")
  # The child loads the same installed hnm: pass this process's library paths.
  env <- c(sprintf("R_LIBS=%s", paste(.libPaths(), collapse = .Platform$path.sep)), "RUST_BACKTRACE=0")
  output <- suppressWarnings(system2(rscript, c("--vanilla", shQuote(script)), stdout = TRUE,
                                     stderr = TRUE, env = env))
  status <- attr(output, "status")
  if (is.null(status)) status <- 0L
  text <- paste(output, collapse = "\n")
  expect_identical(status, 0L, label = paste("exit status; output:\n", substr(text, 1, 2000)))
  expect_match(text, "fuzz calls completed: [0-9]+")
  for (sign in c("panic", "RUST_BACKTRACE", "thread '", "segfault", "*** caught", "stack backtrace")) {
    expect_false(grepl(sign, text, fixed = TRUE), label = sprintf("output contains %s", sign))
  }
})
