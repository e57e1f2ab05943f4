# Extra R heap used during hnm_fit(), relative to the size of the data it reads.
#
#   Rscript bench/memory.R          # about a minute
#
# "Peak extra" is the growth of R's gc() "max used" (Ncells at 56 bytes, Vcells at 8
# bytes) over the memory in use before the fit, the returned fit included. "Allocated" is
# the total of every R allocation during the fit, from Rprofmem(). The data's size is that
# of the y and g columns (8 bytes per double or string pointer, 4 per integer code).
# Memory the Rust pass allocates outside R's heap (its per-group table) is not R heap.

local({
  file <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  source(file.path(if (length(file)) dirname(file[1L]) else "bench", "utils.R"))
})
bench_header("memory")

rows <- list()
for (size in list(c(1e6, 1e4), c(1e7, 1e5))) {
  d <- simulate_oneway(size[1], size[2])
  columns <- list(factor = d$g, integer = as.integer(d$g), character = as.character(d$g))
  for (type in names(columns)) {
    dt <- data.frame(y = d$y, g = columns[[type]])
    data_bytes <- column_bytes(dt$y) + column_bytes(dt$g)
    fit_it <- function() hnm_fit(y ~ 1 | g, dt)
    fit_it()
    peak <- peak_extra_bytes(fit_it)
    allocated <- allocated_bytes(fit_it)
    rows[[length(rows) + 1L]] <- data.frame(
      rows = format(size[1], scientific = TRUE), groups = format(size[2], scientific = TRUE),
      g = type, data = sprintf("%.0f MB", data_bytes / 1e6),
      `peak extra` = sprintf("%.2f MB", peak / 1e6),
      `peak / data` = sprintf("%.2f%%", 100 * peak / data_bytes),
      allocated = sprintf("%.2f MB", allocated / 1e6),
      `allocated / data` = sprintf("%.2f%%", 100 * allocated / data_bytes),
      check.names = FALSE)
  }
  rm(d, dt, columns)
}
print_table("Extra R memory during hnm_fit(y ~ 1 | g, d) (target: <= 10% of the data)",
            do.call(rbind, rows))
