# A battery of malformed inputs thrown at every exported function in a child R process:
# none may crash R, and none may surface a Rust panic or backtrace instead of an R error.
# A panic in the glue reaches R as a plain error raised from `.Call()` (extendr catches it),
# and with EXTENDR_BACKTRACE set the panic hook prints "panicked at": the child records
# every error that is not an hnm_error, and the test fails on any raised from `.Call()` or
# from a glue function's wrapper (`rs_*`), whose own errors are always hnm_errors.

fuzz_script <- function(lib) {
  paste0('library(hnm, lib.loc = "', lib, '")', '
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
  from_rust <- character()
  quietly <- function(expr) {
    tryCatch(utils::capture.output(suppressWarnings(expr)), error = function(e) {
      call <- paste(deparse(conditionCall(e)), collapse = " ")
      # A glue function that panics: the error comes from its R wrapper (rs_*) or .Call().
      if (!inherits(e, "hnm_error") && (startsWith(call, ".Call(") || startsWith(call, "rs_"))) {
        from_rust <<- c(from_rust, paste(call, "->", conditionMessage(e)))
      }
      conditionMessage(e)
    })
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
  # Issue 15: the input classes of the reliability review, each through hnm_fit and mll_oneway.
  long <- paste0(strrep("x", 1e5), 1:20)
  groups <- list(
    addNA(factor(rep(c("a", NA), 20))), structure(rep(1:2, 20), levels = c("a", "a"), class = "factor"),
    as.raw(rep(1:4, 10)), `Encoding<-`(rep(c("a", "b"), 20), "bytes"), rep(long, 2),
    1:40, as.character(1:40), rep(c(1, 1e15, 1e15 + 1, NA), 10), rep(c(TRUE, FALSE, NA, TRUE), 10),
    complex(real = rep(1:4, 10)), T, pi, list(1:40), rep(as.Date("2020-01-01") + 0:3, 10))
  if (requireNamespace("bit64", quietly = TRUE)) {
    groups <- c(groups, list(bit64::as.integer64(rep(c(0, 1, 2, NA), 10))))
    values <- c(values, list(bit64::as.integer64(1:40), bit64::as.integer64(2)^60L + 1:40,
                             bit64::as.integer64(c(NA, 1:39))))
  }
  responses <- c(values[sapply(values, length) %in% c(1, 40)], list(rnorm(40), as.double(1:40), 1:40))
  for (gv in groups) for (yv in responses) {
    quietly(hnm_fit(y ~ 1 | g, data.frame(y = I(yv), g = I(gv))))
    quietly(hnm_fit(yv ~ 1 | gv))
    quietly(mll_oneway(c(0, 1, 1), yv, gv))
    calls <- calls + 3L
  }
  for (th in list(NA, -1, 0, 1e9, "2", 2.5, NULL, c(1, 2))) {
    options(hnm.threads = th)
    quietly(confint(fit, method = "boot", nsim = 20, seed = 1)); calls <- calls + 1L
  }
  options(hnm.threads = NULL)
  for (arg in list(list(steps = 1e8), list(steps = -1), list(steps = NA), list(alphamax = 1e-320),
                   list(which = 4), list(which = "nope"), list(maxpts = 10))) {
    quietly(do.call(profile, c(list(fit), arg))); calls <- calls + 1L
  }
  for (arg in list(list(nsim = 1e12), list(level = 1 - 1e-16), list(boot.type = "norm", method = "boot", nsim = 20),
                   list(oldNames = NA), list(parallel = "snow", ncpus = 1e6, method = "boot", nsim = 20),
                   list(FUN = mean), list(zeta = 2))) {
    quietly(do.call(confint, c(list(fit), arg))); calls <- calls + 1L
  }
  for (p in values) for (f in list(mll_oneway_grad, mll_oneway_hess)) {
    quietly(f(c(0, 0, p), good$y, good$g)); calls <- calls + 1L
  }
  cat("fuzz calls completed:", calls, "\n")
  cat("errors raised from .Call():", length(from_rust), "\n")
  cat(utils::head(unique(from_rust), 20), sep = "\n")
  ')
}

test_that("no malformed input crashes R or shows a Rust panic", {
  script <- tempfile(fileext = ".R")
  on.exit(unlink(script))
  # The child loads hnm from the library this process loaded it from (under R CMD check
  # that library is not on the child's default paths); the other packages from ours.
  writeLines(fuzz_script(dirname(system.file(package = "hnm"))), script)
  rscript <- file.path(R.home("bin"), "Rscript")
  env <- c(sprintf("R_LIBS=%s", paste(.libPaths(), collapse = .Platform$path.sep)),
           "RUST_BACKTRACE=0", "EXTENDR_BACKTRACE=true")
  output <- suppressWarnings(system2(rscript, c("--vanilla", shQuote(script)), stdout = TRUE,
                                     stderr = TRUE, env = env))
  status <- attr(output, "status")
  if (is.null(status)) status <- 0L
  text <- paste(output, collapse = "\n")
  expect_identical(status, 0L, label = paste("exit status; output:\n", substr(text, 1, 2000)))
  expect_match(text, "fuzz calls completed: [0-9]+")
  expect_match(text, "errors raised from .Call(): 0 ", fixed = TRUE)
  for (sign in c("panic", "RUST_BACKTRACE", "thread '", "segfault", "*** caught", "stack backtrace")) {
    expect_false(grepl(sign, text, fixed = TRUE), label = sprintf("output contains %s", sign))
  }
})

# Issue 25: a model whose per-group statistics do not fit in memory. `y ~ x + f + (1 | g)` with
# a 300-level factor f has k = 301 model columns (y, x and f's 299 contrasts), and the
# statistics of m groups take m (1 + k + k(k + 1)/2) doubles, 366,024 bytes a group.
memory_script <- function(lib) {
  paste0('library(hnm, lib.loc = "', lib, '")', '
  design <- function(groups, rows) {
    set.seed(1)
    d <- data.frame(g = factor(rep_len(seq_len(groups), rows)), f = factor(sample(rep_len(1:300, rows))),
                    x = rnorm(rows))
    d$y <- d$x + rnorm(groups)[d$g] + rnorm(rows)
    d
  }
  # 820 groups: 300,139,680 bytes, under 1 GiB, so hnm allocates them (and the memory limit
  # stops it); 4,000 groups: 1,464,096,000 bytes from 20,000 rows, refused before allocating.
  below <- design(820, 6000)
  above <- design(4000, 20000)
  # A small general fit first, so that whatever a fit loads or grows is in the measurement.
  warm <- data.frame(y = rnorm(40), x = rnorm(40), f = factor(rep(1:4, 10)), g = factor(rep(1:8, each = 5)))
  invisible(hnm_fit(y ~ x + f + (1 | g), warm))
  if (identical(commandArgs(TRUE), "measure")) {
    status <- readLines("/proc/self/status")
    cat("address space kB:", gsub("[^0-9]", "", grep("^VmSize:", status, value = TRUE)), "\n")
    quit()
  }
  for (case in c("below", "above")) {
    e <- tryCatch(hnm_fit(y ~ x + f + (1 | g), get(case)), error = identity)
    cat(case, ":", class(e)[1], ":", conditionMessage(e), "\n")
  }
  ')
}

test_that("statistics that do not fit in memory are an hnm_error_too_large, not an abort", {
  skip_on_os(c("windows", "mac", "solaris"))  # ulimit -v and /proc/self/status
  skip_if(!nzchar(Sys.which("bash")))
  script <- tempfile(fileext = ".R")
  on.exit(unlink(script))
  writeLines(memory_script(dirname(system.file(package = "hnm"))), script)
  rscript <- file.path(R.home("bin"), "Rscript")
  env <- sprintf("R_LIBS=%s", paste(.libPaths(), collapse = .Platform$path.sep))
  run <- function(limit_kb = NULL, ...) {
    command <- paste(if (!is.null(limit_kb)) sprintf("ulimit -v %.0f &&", limit_kb),
                     shQuote(rscript), "--vanilla", shQuote(script), ...)
    output <- suppressWarnings(system2("bash", c("-c", shQuote(command)), stdout = TRUE, stderr = TRUE, env = env))
    list(status = if (is.null(attr(output, "status"))) 0L else attr(output, "status"),
         text = paste(output, collapse = "\n"))
  }
  # The limit: the child's address space with R, hnm and the data, plus 1.5 times the 820
  # groups' statistics, so they fit once (the pass's group states) but not twice (their copy
  # into the fit's statistics), whatever R and the libraries take on this machine.
  measured <- run(NULL, "measure")
  base_kb <- as.numeric(sub(".*address space kB: ([0-9]+).*", "\\1", measured$text))
  expect_false(is.na(base_kb), label = measured$text)
  stats_bytes <- function(m, k) m * (1 + k + k * (k + 1) / 2) * 8
  limited <- run(base_kb + 1.5 * stats_bytes(820, 301) / 1024)
  expect_identical(limited$status, 0L, label = paste("exit status; output:\n", substr(limited$text, 1, 2000)))
  expect_match(limited$text, "below : hnm_error_too_large : the per-group statistics do not fit in memory: they need [0-9]+ bytes")
  expect_match(limited$text, "above : hnm_error_too_large : the per-group statistics of 301 model columns in 4000 groups")
  expect_false(grepl("memory allocation of", limited$text, fixed = TRUE))
})

test_that("statistics far larger than the data are refused before they are allocated, sized by their closed form", {
  set.seed(2)
  m <- 3000
  d <- data.frame(g = factor(rep_len(seq_len(m), 6000)), f = factor(sample(rep_len(1:400, 6000))), x = rnorm(6000))
  d$y <- rnorm(6000)
  k <- 1 + 1 + 399  # y, x and f's 399 contrasts
  bytes <- m * (1 + k + k * (k + 1) / 2) * 8  # 1,944,072,000: over 1 GiB and 10 times 8 * 6000 * k
  expect_gt(bytes, 2^30)
  expect_gt(bytes, 10 * 8 * 6000 * k)
  e <- expect_error(hnm_fit(y ~ x + f + (1 | g), d), class = "hnm_error_too_large")
  expect_match(conditionMessage(e), sprintf("of %d model columns in %d groups would take %.0f bytes", k, m, bytes),
               fixed = TRUE)
  # The same rows in 100 groups: 64,802,400 bytes, under 1 GiB, and fitted.
  small <- transform(d, g = factor(as.integer(g) %% 100))
  expect_s3_class(hnm_fit(y ~ x + f + (1 | g), small), "hnm_fit")
})
