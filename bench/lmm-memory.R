# Extra R heap used during a fit of the general model, relative to the size of the data it reads.
#
#   Rscript bench/lmm-memory.R            # 1e6 and 1e7 rows, about a minute
#   Rscript bench/lmm-memory.R --max=1e8  # also 1e8 rows (needs ~10 GB RAM)
#
# Model y ~ x1 + x2 + w + (x1 | g) (w constant within groups), 100 rows per group, rows in
# random group order, and the lecture's NELS model. "Peak extra" is the growth of R's gc()
# "max used" over the memory in use before the fit, the returned fit included; "allocated" is
# the total of every R allocation during the fit, from Rprofmem(), as in bench/memory.R. The
# data's size is that of the columns the model uses (8 bytes per double or string pointer, 4 per
# integer or factor code). Memory the Rust pass allocates outside R's heap (the per-group
# blocks) is not R heap. The target (<= 10%) is for plain numeric columns and a factor g; the
# rows with integer or character g and NELS (small data, so the fixed cost of the formula and
# the fit object dominates) are for information.

local({
  file <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  source(file.path(if (length(file)) dirname(file[1L]) else "bench", "utils.R"))
})
max_rows <- bench_option("max", 1e7)
options(width = 200)
bench_header("lmm-memory")

rows <- list()
memory_row <- function(label, formula, data, columns, g_type) {
  data_bytes <- sum(vapply(columns, function(column) column_bytes(data[[column]]), numeric(1)))
  fit_it <- function() hnm_fit(formula, data)
  fit_it()
  peak <- peak_extra_bytes(fit_it)
  allocated <- allocated_bytes(fit_it)
  rows[[length(rows) + 1L]] <<- data.frame(
    model = label, rows = count_label(nrow(data)),
    groups = count_label(length(unique(data[[columns[length(columns)]]]))), g = g_type, data = sprintf("%.1f MB", data_bytes / 1e6),
    `peak extra` = sprintf("%.2f MB", peak / 1e6),
    `peak / data` = sprintf("%.2f%%", 100 * peak / data_bytes),
    allocated = sprintf("%.2f MB", allocated / 1e6),
    `allocated / data` = sprintf("%.2f%%", 100 * allocated / data_bytes),
    check.names = FALSE)
}

general <- y ~ x1 + x2 + w + (x1 | g)
for (n in 10^seq(6, log10(max_rows))) {
  d <- simulate_lmm(n, n / 100)
  for (type in c("factor", "integer", "character")) {
    dt <- d
    dt$g <- switch(type, factor = d$g, integer = as.integer(d$g), character = as.character(d$g))
    memory_row("simulated", general, dt, c("y", "x1", "x2", "w", "g"), type)
    rm(dt)
  }
  rm(d)
  invisible(gc())
}
memory_row("NELS", mscore ~ flp + enroll + ses + (ses | school), hnm::nels,
           c("mscore", "flp", "enroll", "ses", "school"), "factor")

print_table(paste("Extra R memory during hnm_fit(y ~ x1 + x2 + w + (x1 | g), d) and the NELS model",
                  "(target: <= 10% of the data\nfor plain numeric columns and a factor g)"),
            do.call(rbind, rows))
