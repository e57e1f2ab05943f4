# Shared helpers of the bench scripts: data generation, timing, table printing.
# Sourced by fit-speed.R, memory.R and scaling.R; installs nothing.

suppressPackageStartupMessages(library(hnm))

# One-way data with `n` rows and `groups` groups in random row order: y double,
# g a factor built from its codes (factor() itself would dominate the set-up time).
simulate_oneway <- function(n, groups, seed = 1) {
  set.seed(seed)
  codes <- sample.int(groups, n, replace = TRUE)
  y <- rnorm(groups, 0, 1.5)[codes]
  y <- y + rnorm(n, 10, 2)
  g <- structure(codes, levels = as.character(seq_len(groups)), class = "factor")
  data.frame(y = y, g = g)
}

# Median elapsed seconds of `f()` over `reps` measurements; fast calls are repeated
# within a measurement until it lasts at least `min_time` seconds.
time_median <- function(f, reps = 5, min_time = 0.05) {
  inner <- 1L
  repeat {
    t <- system.time(for (i in seq_len(inner)) f())[["elapsed"]]
    if (t >= min_time || inner >= 2^16) break
    inner <- inner * max(2L, as.integer(ceiling(min_time / max(t, 1e-4))))
  }
  times <- c(t / inner, replicate(reps - 1L, {
    system.time(for (i in seq_len(inner)) f())[["elapsed"]] / inner
  }))
  median(times)
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
