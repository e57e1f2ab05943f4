# Kenward-Roger's small-sample inference at 1e6 rows: vcov_kenward_roger() (pbkrtest's
# vcovAdj, from the per-group blocks), summary(fit, ddf = "Kenward-Roger") and
# anova(fit, ddf = "Kenward-Roger") of y ~ x1 + x2 + w + (x1 | g) (REML) at 1e6 rows and
# 1e3, 1e4 and 1e5 groups, beside the fit's own time. pbkrtest builds N x N matrices and
# cannot run at this size (its vcovAdj inverts the N x N marginal covariance).
#
# And the lecture's NELS model mscore ~ flp + enroll + ses + (ses | school) (12974 rows), beside
# pbkrtest's vcovAdj of lme4's fit when pbkrtest is installed and --pbkrtest is given (it
# inverts the 12974 x 12974 marginal covariance densely: 1.3 GB a copy).
#
#   Rscript bench/kenward-roger.R              # about a minute on 2 cores
#   Rscript bench/kenward-roger.R --reps=7     # timings per median (default 3)
#   Rscript bench/kenward-roger.R --pbkrtest   # also pbkrtest on NELS

local({
  file <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  source(file.path(if (length(file)) dirname(file[1L]) else "bench", "utils.R"))
})
reps <- bench_option("reps", 3)
bench_header("kenward-roger")

rows <- list()
for (groups in c(1e3, 1e4, 1e5)) {
  d <- simulate_lmm(1e6, groups)
  t_fit <- time_median(function() hnm_fit(y ~ x1 + x2 + w + (x1 | g), d, REML = TRUE), reps)
  fit <- hnm_fit(y ~ x1 + x2 + w + (x1 | g), d, REML = TRUE)
  t_vcov <- time_median(function() vcov_kenward_roger(fit), reps)
  t_summary <- time_median(function() summary(fit, ddf = "Kenward-Roger"), reps)
  t_anova <- time_median(function() anova(fit, ddf = "Kenward-Roger"), reps)
  adjusted <- vcov_kenward_roger(fit)
  rows[[length(rows) + 1L]] <- data.frame(
    rows = count_label(1e6), groups = count_label(groups), fit = format_seconds(t_fit),
    vcov_kenward_roger = format_seconds(t_vcov), `summary(KR)` = format_seconds(t_summary),
    `anova(KR)` = format_seconds(t_anova),
    `max |adj/vcov - 1|` = sprintf("%.1e", max(abs(adjusted / vcov(fit) - 1))),
    check.names = FALSE)
}
print_table("Kenward-Roger at 1e6 rows, y ~ x1 + x2 + w + (x1 | g), REML (median seconds)",
            do.call(rbind, rows))

nels_formula <- mscore ~ flp + enroll + ses + (ses | school)
nels_fit <- hnm_fit(nels_formula, nels, REML = TRUE)
nels_row <- data.frame(model = "NELS", rows = nrow(nels),
                       hnm = format_seconds(time_median(function() vcov_kenward_roger(nels_fit),
                                                        reps)))
if (bench_flag("pbkrtest") && requireNamespace("pbkrtest", quietly = TRUE)) {
  lme4_fit <- lme4::lmer(nels_formula, nels, REML = TRUE)
  timed <- time_once(function() pbkrtest::vcovAdj(lme4_fit))
  nels_row$pbkrtest <- format_seconds(timed$seconds)
  nels_row$`max rel. difference` <- sprintf("%.1e", max(abs(as.matrix(timed$value) -
                                                              vcov_kenward_roger(nels_fit)) /
                                                          abs(as.matrix(timed$value))))
}
print_table("vcov_kenward_roger() on NELS (median seconds)", nels_row)
