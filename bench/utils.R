# Shared helpers of the bench scripts: data generation, timing, table printing.
# Sourced by fit-speed.R, memory.R, scaling.R, lmm-speed.R and lmm-memory.R; installs nothing.

suppressPackageStartupMessages(library(hnm))

# One-way data with `n` rows and `groups` groups in random row order: y double,
# g a factor built from its codes (factor() itself would dominate the set-up time).
simulate_oneway <- function(n, groups, seed = 1) {
  set.seed(seed)
  codes <- sample.int(groups, n, replace = TRUE)
  y <- rnorm(groups, 0, 1.5)[codes]
  y <- y + rnorm(n, 10, 2)
  # A factor as factor() makes one: structure() would wrap the shared codes in an ALTREP
  # wrapper, which R copies (4 bytes a row) when asked for a writable pointer to its codes.
  g <- codes
  levels(g) <- as.character(seq_len(groups))
  class(g) <- "factor"
  data.frame(y = y, g = g)
}

# Median elapsed seconds of `f()` over `reps` measurements; fast calls are repeated
# within a measurement until it lasts at least `min_time` seconds.
time_median <- function(f, reps = 5, min_time = 0.05) {
  inner <- inner_repeats(f, min_time)
  median(replicate(reps, seconds_per_call(f, inner)))
}

# How many calls of f take at least min_time seconds (so that one timing is not below the
# clock's resolution).
inner_repeats <- function(f, min_time) {
  inner <- 1L
  repeat {
    t <- system.time(for (i in seq_len(inner)) f())[["elapsed"]]
    if (t >= min_time || inner >= 2^16) return(inner)
    inner <- inner * max(2L, as.integer(ceiling(min_time / max(t, 1e-4))))
  }
}

# Seconds per call of f, over `inner` calls.
seconds_per_call <- function(f, inner) system.time(for (i in seq_len(inner)) f())[["elapsed"]] / inner

# The median over `reps` rounds of time(f) / time(g), each round timing f and then g back to
# back: a ratio that survives the machine's speed drifting during the run (this VM's varies
# by half within a minute), which a ratio of separate medians does not.
ratio_median <- function(f, g, reps = 5, min_time = 0.05) {
  inner_f <- inner_repeats(f, min_time)
  inner_g <- inner_repeats(g, min_time)
  median(replicate(reps, seconds_per_call(f, inner_f) / seconds_per_call(g, inner_g)))
}

# One data pass in R: read y once and tabulate g once.
r_pass <- function(d) sum(d$y) + length(tabulate(d$g))

format_seconds <- function(s) {
  ifelse(s < 1e-3, sprintf("%.0f us", 1e6 * s),
         ifelse(s < 1, sprintf("%.1f ms", 1e3 * s), sprintf("%.2f s", s)))
}

print_table <- function(title, table) {
  cat("\n", title, "\n", sep = "")
  print(table, row.names = FALSE, right = TRUE)
}

# Numeric command-line option `--name=value` of an Rscript, or `default`.
bench_option <- function(name, default) {
  args <- commandArgs(trailingOnly = TRUE)
  hit <- grep(sprintf("^--%s=", name), args, value = TRUE)
  if (length(hit) == 0L) default else as.numeric(sub(sprintf("^--%s=", name), "", hit[1L]))
}

bench_header <- function(what) {
  cat(sprintf("hnm %s bench: %s\n", what, format(Sys.time(), tz = "UTC", usetz = TRUE)))
  cat(sprintf("R %s, hnm %s, %d cores; load average %s\n", getRversion(),
              utils::packageVersion("hnm"), parallel::detectCores(),
              tryCatch(paste(scan("/proc/loadavg", what = "", n = 3, quiet = TRUE),
                             collapse = " "), error = function(e) "unknown")))
}

# Data of the general model y ~ x1 + x2 + w + (x1 | g) with `n` rows and `groups` groups in
# random row order: x1, x2 row-level, w constant within each group, a correlated random
# intercept and x1 slope; g a factor built from its codes, as in simulate_oneway().
simulate_lmm <- function(n, groups, seed = 1) {
  set.seed(seed)
  codes <- sample.int(groups, n, replace = TRUE)
  intercepts <- rnorm(groups, 0, 1.5)
  slopes <- 0.3 * intercepts + rnorm(groups, 0, 0.8)
  x1 <- rnorm(n)
  x2 <- rnorm(n)
  w <- rnorm(groups)[codes]
  y <- 1 + 0.5 * x1 - 0.3 * x2 + 0.8 * w + intercepts[codes] + slopes[codes] * x1 + rnorm(n, 0, 2)
  # A factor as factor() makes one: structure() would wrap the shared codes in an ALTREP
  # wrapper, which R copies (4 bytes a row) when asked for a writable pointer to its codes.
  g <- codes
  levels(g) <- as.character(seq_len(groups))
  class(g) <- "factor"
  data.frame(y = y, x1 = x1, x2 = x2, w = w, g = g)
}

# One data pass in R over the columns a model uses: sum() of each of `columns`, tabulate() of
# the factor `group`.
r_pass_columns <- function(d, columns, group) {
  total <- 0
  for (column in columns) total <- total + sum(d[[column]])
  total + length(tabulate(d[[group]]))
}

# TRUE when the flag `--name` was given to the Rscript.
bench_flag <- function(name) sprintf("--%s", name) %in% commandArgs(trailingOnly = TRUE)

# `f()`'s value, its elapsed seconds and the warnings it gave (muffled), from one call.
time_once <- function(f) {
  warnings <- character()
  elapsed <- system.time(value <- withCallingHandlers(f(), warning = function(w) {
    warnings <<- c(warnings, conditionMessage(w))
    invokeRestart("muffleWarning")
  }))[["elapsed"]]
  list(value = value, seconds = elapsed, warnings = unique(warnings))
}

# A count for a table: powers of ten from 1e3 on as 1e+05 (the simulated sizes), others in full.
count_label <- function(n) {
  format(as.double(n), scientific = n >= 1e3 && n == 10^round(log10(n)))
}

# Bytes of a data column: 8 per double or string pointer, 4 per integer or factor code.
column_bytes <- function(x) length(x) * c(double = 8, integer = 4, character = 8)[[typeof(x)]]

# Total bytes of the R allocations Rprofmem() records while `f()` runs.
allocated_bytes <- function(f) {
  if (!capabilities("profmem")) return(NA_real_)
  log <- tempfile()
  utils::Rprofmem(log, threshold = 0)
  f()
  utils::Rprofmem(NULL)
  lines <- readLines(log)
  unlink(log)
  sizes <- suppressWarnings(as.numeric(sub("^([0-9]+) ?:.*", "\\1", lines)))
  sum(sizes, na.rm = TRUE) + 2000 * sum(startsWith(lines, "new page"))
}

# Growth of gc()'s "max used" (Ncells at 56 bytes, Vcells at 8) while `f()` runs, over the
# memory in use before it; what f() returns is counted (it is alive at the second gc()).
peak_extra_bytes <- function(f) {
  invisible(gc(reset = TRUE))
  before <- gc()
  result <- f()
  after <- gc()
  sum((after[, "max used"] - before[, "used"]) * c(56, 8))
}
