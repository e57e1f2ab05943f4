# hnm_fit() time as the data grow, 100 rows per group, rows in random group order.
#
#   Rscript bench/scaling.R            # 1e5 .. 1e7 rows, about a minute
#   Rscript bench/scaling.R --max=1e8  # up to 1e8 rows and 1e6 groups (needs ~4 GB RAM,
#                                      # a few minutes, most of it simulating the data)
#   Rscript bench/scaling.R --reps=9   # more measurements per median (default 5)
#
# Linear growth shows as a constant time per row. "hnm data pass" is the statistics step
# alone (R wrapper and Rust pass); "rest of fit" = hnm_fit minus it, mostly the optimiser,
# whose work is O(groups) per iteration.

local({
  file <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  source(file.path(if (length(file)) dirname(file[1L]) else "bench", "utils.R"))
})
max_rows <- bench_option("max", 1e7)
reps <- bench_option("reps", 5)
bench_header("scaling")

rows <- list()
for (n in 10^seq(5, log10(max_rows))) {
  d <- simulate_oneway(n, n / 100)
  r <- if (n >= 1e8) 3 else reps
  t_pass <- time_median(function() r_pass(d), r)
  t_fit <- time_median(function() hnm_fit(y ~ 1 | g, d), r)
  t_stats <- time_median(function() hnm_stats(y ~ 1 | g, d), r)
  rows[[length(rows) + 1L]] <- data.frame(
    rows = format(n, scientific = TRUE), groups = format(n / 100, scientific = TRUE),
    `R pass` = format_seconds(t_pass), `hnm data pass` = format_seconds(t_stats),
    `rest of fit` = format_seconds(max(t_fit - t_stats, 0)), hnm_fit = format_seconds(t_fit),
    `ns / row` = sprintf("%.1f", 1e9 * t_fit / n), `hnm_fit / R pass` = sprintf("%.2f", t_fit / t_pass),
    check.names = FALSE)
  rm(d)
  invisible(gc())
}
print_table("hnm_fit(y ~ 1 | g, d) scaling, factor g (target at 1e8 rows, 1e6 groups: < 2 s)",
            do.call(rbind, rows))
