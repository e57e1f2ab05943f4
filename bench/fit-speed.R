# hnm_fit() speed: against one data pass in R, and against lme4 and nlme.
#
#   Rscript bench/fit-speed.R              # about 2-3 minutes
#   Rscript bench/fit-speed.R --lmer1e6=1  # also lmer at 1e6 rows (about 1 more minute)
#   Rscript bench/fit-speed.R --reps=9     # more measurements per median (default 5)
#
# Every time is a median of --reps timings; a ratio to the R pass is the median of --reps
# rounds that time the fit and the pass back to back, so it survives a busy machine (and this
# VM's drifting speed) better than the absolute times.

local({
  file <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  source(file.path(if (length(file)) dirname(file[1L]) else "bench", "utils.R"))
})
reps <- bench_option("reps", 5)
bench_header("fit-speed")

# 1. The fit against the physical limit: reading y and g once in R.
pass_rows <- list()
for (size in list(c(1e6, 1e4), c(1e7, 1e5))) {
  d <- simulate_oneway(size[1], size[2])
  columns <- list(factor = d$g, integer = as.integer(d$g), double = as.double(d$g),
                  character = as.character(d$g))
  t_pass <- time_median(function() r_pass(d), reps)
  for (type in names(columns)) {
    dt <- data.frame(y = d$y, g = columns[[type]])
    t_fit <- time_median(function() hnm_fit(y ~ 1 | g, dt), reps)
    t_rust <- time_median(function() hnm_stats(y ~ 1 | g, dt), reps)
    # R's own one pass needs integer codes (tabulate() truncates doubles to them); strings must
    # be matched to codes first.
    typed_pass <- if (type == "character") {
      function() sum(dt$y) + length(tabulate(match(dt$g, unique(dt$g))))
    } else {
      function() sum(dt$y) + length(tabulate(dt$g))
    }
    t_typed <- if (type %in% c("character", "double")) time_median(typed_pass, reps) else t_pass
    # The ratios from rounds timing the fit and the pass back to back (bench/utils.R).
    fit <- function() hnm_fit(y ~ 1 | g, dt)
    ratio <- ratio_median(fit, function() r_pass(d), reps)
    ratio_typed <- if (type %in% c("character", "double")) ratio_median(fit, typed_pass, reps) else ratio
    pass_rows[[length(pass_rows) + 1L]] <- data.frame(
      rows = format(size[1], scientific = TRUE), groups = format(size[2], scientific = TRUE),
      g = type, `R pass` = format_seconds(t_pass), `hnm_stats` = format_seconds(t_rust),
      hnm_fit = format_seconds(t_fit), `hnm_fit / R pass` = sprintf("%.2f", ratio),
      `R pass of this g` = format_seconds(t_typed),
      `hnm_fit / R pass of this g` = sprintf("%.2f", ratio_typed),
      check.names = FALSE)
  }
  rm(d, dt, columns)
}
print_table(paste("hnm_fit(y ~ 1 | g) vs one data pass in R, sum(y) + tabulate(g) (target:",
                  "<= 1.5x);\nhnm_stats = the statistics alone; for character g, R's one pass is",
                  "sum(y) + tabulate(match(g, unique(g)))"),
            do.call(rbind, pass_rows))

# 2. Against lme4::lmer(REML = FALSE) and nlme::lme(method = "ML"), 100 rows per group.
has_lme4 <- requireNamespace("lme4", quietly = TRUE)
has_nlme <- requireNamespace("nlme", quietly = TRUE)
lmer_sizes <- if (bench_option("lmer1e6", 0) > 0) c(1e4, 1e5, 1e6) else c(1e4, 1e5)
other_rows <- list()
for (n in lmer_sizes) {
  d <- simulate_oneway(n, n / 100)
  fit <- hnm_fit(y ~ 1 | g, d)
  t_hnm <- time_median(function() hnm_fit(y ~ 1 | g, d), reps)
  slow_reps <- if (n >= 1e6) 3 else reps
  t_lmer <- t_lme <- NA_real_
  dll_lmer <- dll_lme <- NA_real_
  if (has_lme4) {
    t_lmer <- time_median(function() lme4::lmer(y ~ 1 + (1 | g), d, REML = FALSE), slow_reps,
                          min_time = 0)
    dll_lmer <- c(logLik(fit)) - c(logLik(lme4::lmer(y ~ 1 + (1 | g), d, REML = FALSE)))
  }
  if (has_nlme && n <= 1e5) {
    lme_fit <- function() nlme::lme(y ~ 1, random = ~ 1 | g, data = d, method = "ML")
    t_lme <- time_median(lme_fit, slow_reps, min_time = 0)
    dll_lme <- c(logLik(fit)) - c(logLik(lme_fit()))
  }
  other_rows[[length(other_rows) + 1L]] <- data.frame(
    rows = format(n, scientific = TRUE), groups = format(n / 100, scientific = TRUE),
    hnm_fit = format_seconds(t_hnm), lmer = format_seconds(t_lmer),
    `lmer / hnm` = sprintf("%.0f", t_lmer / t_hnm), lme = format_seconds(t_lme),
    `lme / hnm` = sprintf("%.0f", t_lme / t_hnm),
    `logLik hnm - lmer` = sprintf("%.1e", dll_lmer), `logLik hnm - lme` = sprintf("%.1e", dll_lme),
    check.names = FALSE)
}
print_table(paste("hnm_fit vs lme4::lmer(REML = FALSE) and nlme::lme(method = \"ML\")",
                  "(target: lmer / hnm >= 300 at 1e5 rows)"),
            do.call(rbind, other_rows))
