# Ctrl-C while Rust runs: an interactive child R starts a long computation, gets SIGINT
# after about a second, and must be back at its prompt within half a second and still work.

# Runs `setup` and then `long` in an interactive child R, sends SIGINT `after` seconds into
# `long`, and returns the seconds from the signal to the next prompt's first command, what
# the child printed, and the result of a fit run afterwards.
interrupt_child <- function(setup, long, after = 1) {
  lib <- dirname(system.file(package = "hnm"))
  status <- tempfile()
  log <- tempfile()
  on.exit(unlink(c(status, log)))
  child <- pipe(sprintf("%s --interactive --quiet --no-save --no-restore --no-init-file > %s 2>&1",
                        shQuote(file.path(R.home("bin"), "R")), shQuote(log)), open = "w")
  pid <- NULL
  on.exit({
    if (!is.null(pid)) tools::pskill(pid, tools::SIGKILL)
    try(close(child), silent = TRUE)
  }, add = TRUE)
  send <- function(...) {
    writeLines(paste0(...), child)
    flush(child)
  }
  note <- function(what) {
    sprintf("cat(%s, '\\n', file = '%s', append = TRUE)", what, status)
  }
  send(sprintf("library(hnm, lib.loc = '%s')", lib))
  send(setup)
  send(note("'pid', Sys.getpid(), sprintf('%.3f', as.numeric(Sys.time()))"))
  send(long)
  send(note("'back', sprintf('%.3f', as.numeric(Sys.time()))"))
  send(note("'usable', sprintf('%.6f', sigma(hnm_fit(y ~ 1 | g, wheat))^2)"))
  lines <- function() if (file.exists(status)) readLines(status) else character()
  wait_for <- function(tag, seconds) {
    deadline <- Sys.time() + seconds
    while (Sys.time() < deadline) {
      found <- grep(paste0("^", tag, " "), lines(), value = TRUE)
      if (length(found)) return(strsplit(found[1L], " ")[[1L]])
      Sys.sleep(0.02)
    }
    NULL
  }
  started <- wait_for("pid", 60)
  if (is.null(started)) stop("the child R did not start: ", paste(readLines(log), collapse = "\n"))
  pid <- as.integer(started[2L])
  Sys.sleep(after)
  sent <- as.numeric(Sys.time())
  tools::pskill(pid, tools::SIGINT)
  back <- wait_for("back", 20)
  usable <- wait_for("usable", 20)
  send("q('no')")
  if (is.null(usable)) tools::pskill(pid, tools::SIGKILL)
  pid <- NULL
  close(child)
  latency <- if (is.null(back)) Inf else as.numeric(back[2L]) - sent
  message(sprintf("seconds from SIGINT to the prompt: %.3f", latency))
  list(latency = latency, usable = if (is.null(usable)) NA_real_ else as.numeric(usable[2L]),
       log = paste(readLines(log, warn = FALSE), collapse = "\n"))
}

# Back at the prompt within half a second of SIGINT, and a fit afterwards gives wheat's answer.
expect_back_and_usable <- function(result) {
  expect_lt(result$latency, 0.5, label = paste("seconds from SIGINT to the prompt; log:\n", result$log))
  expect_equal(result$usable, sigma(hnm_fit(y ~ 1 | g, wheat))^2, tolerance = 1e-6)
}

skip_if_no_signals <- function() {
  skip_on_os("windows")
  skip_if(is.na(tools::SIGINT), "no SIGINT on this platform")
}

test_that("Ctrl-C stops a long profile within half a second and leaves R usable", {
  skip_if_no_signals()
  setup <- paste("set.seed(1); d <- data.frame(g = rep(1:1e4, 10)); d$y <- rnorm(1e4)[d$g] + rnorm(1e5);",
                 "fit <- hnm_fit(y ~ 1 | g, d)")
  # 10^5 points a side of each profile, each an optimisation over 10^4 groups: minutes.
  expect_back_and_usable(interrupt_child(setup, "invisible(profile(fit, steps = 1e5))"))
})

test_that("Ctrl-C stops bootstrap refits on two threads, joined, and leaves R usable", {
  skip_if_no_signals()
  # 10^5 replicates of 4000 groups with equal means: every refit is a boundary fit, on the
  # general engine's statistic-space bootstrap (about 5 ms a replicate on two threads, so
  # minutes of work, in chunks of calls to Rust).
  setup <- "fit <- hnm_fit(y ~ 1 | g, data.frame(y = rep(c(0, 1, 0.5), 4000), g = rep(1:4000, 3)))"
  long <- 'invisible(bootstrap(fit, nsim = 1e5, quiet = TRUE, parallel = "multicore", ncpus = 2))'
  expect_back_and_usable(interrupt_child(setup, long))
})

test_that("an interrupted computation signals R's interrupt condition, not an error", {
  skip_if_no_signals()
  setup <- paste("set.seed(1); d <- data.frame(g = rep(1:1e4, 10)); d$y <- rnorm(1e4)[d$g] + rnorm(1e5);",
                 "fit <- hnm_fit(y ~ 1 | g, d)")
  long <- paste("caught <- tryCatch(try(profile(fit, steps = 1e5), silent = TRUE), error = function(e) 'error',",
                "interrupt = function(e) paste(class(e), collapse = '/')); cat('caught', caught, '\\n')")
  result <- interrupt_child(setup, long)
  expect_match(result$log, "caught hnm_interrupt/interrupt/condition", fixed = TRUE)
  expect_back_and_usable(result)
})

test_that("Ctrl-C stops a general-model bootstrap and leaves R usable", {
  skip_if_no_signals()
  setup <- paste("set.seed(1); m <- 1e4; g <- factor(rep(1:m, each = 10)); x <- rnorm(1e5);",
                 "y <- rnorm(m)[g] + rnorm(m)[g] * x + rnorm(1e5);",
                 "fit <- hnm_fit(y ~ x + (x | g), data.frame(y, x, g))")
  expect_back_and_usable(interrupt_child(setup, "invisible(bootstrap(fit, nsim = 1e5, quiet = TRUE))",
                                         after = 2))
})

test_that("Ctrl-C stops Satterthwaite's df inside an evaluation of several factors", {
  skip_if_no_signals()
  skip_on_cran()
  # A crossed model whose every evaluation factorises a dense core of 2500 items (about half
  # a second each), fitted with one iteration of the search. Its Satterthwaite df take 17
  # such evaluations (11 s), which asked no interrupt before (10 s from SIGINT to the prompt;
  # 0.07 to 0.1 s when they ask within the core's blocks).
  setup <- paste(
    "set.seed(1); u <- 8000; it <- 2500;",
    "d <- data.frame(user = factor(rep(1:u, each = 12)), item = factor(sample.int(it, 12 * u, replace = TRUE)));",
    "d$x <- rnorm(nrow(d)); d$y <- d$x + rnorm(u)[d$user] + rnorm(it)[d$item] + rnorm(nrow(d));",
    "fit <- suppressWarnings(hnm_fit(y ~ x + (1 | user) + (1 | item), d, control = hnm_control(max_iterations = 1L)))"
  )
  expect_back_and_usable(interrupt_child(setup, "invisible(anova(fit))"))
})
