# hnm_fit() speed on the general model y ~ x1 + x2 + w + (x1 | g) (w constant within groups)
# and on the lecture's NELS model: against one data pass in R and against lme4::lmer; and
# predict(newdata) against the fit.
#
#   Rscript bench/lmm-speed.R              # 1e5 and 1e6 rows, about 4 minutes, most of it
#                                          # lmer's one ML and one REML fit at 1e6 rows
#   Rscript bench/lmm-speed.R --no-lmer    # hnm and the R pass only, well under a minute
#   Rscript bench/lmm-speed.R --max=1e8    # also 1e7 and 1e8 rows (1e8 needs ~6 GB RAM)
#   Rscript bench/lmm-speed.R --lmer-max=1e7  # lmer up to 1e7 rows (default 1e6)
#   Rscript bench/lmm-speed.R --reps=9     # more measurements per median (default 7)
#
# 100 rows per group, rows in random group order. Every hnm and R figure is a median of
# --reps timings; lmer is timed 3 times below 1e6 rows and once from 1e6 rows on (30-90 s a
# fit). Ratios are taken within this one run on the same data.

local({
  file <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  source(file.path(if (length(file)) dirname(file[1L]) else "bench", "utils.R"))
})
reps <- bench_option("reps", 7)
max_rows <- bench_option("max", 1e6)
lmer_max <- bench_option("lmer-max", 1e6)
run_lmer <- !bench_flag("no-lmer") && requireNamespace("lme4", quietly = TRUE)
options(width = 200)
bench_header("lmm-speed")

# The fit's steps, from the fit's own parse: the columns (R, model_design), the one Rust pass
# that builds the per-group blocks (rs_lmm_build), the optimiser alone (rs_lmm_fit, fit not
# kept); the R rest of hnm_fit (parsing, checks, the fit object) is the remainder.
time_steps <- function(fit, data, reml) {
  design <- hnm:::model_design(fit$parsed, data, quote(hnm_fit()))
  build <- function() {
    hnm:::rs_lmm_build(design$variables, design$codes, design$code_offset, design$n_groups,
                       design$response,
                       design$fixed, design$random, design$blocks, design$names,
                       getOption("hnm.threads", 2L))
  }
  model <- build()$model
  c(pass = time_median(build, reps),
    optimiser = time_median(function() hnm:::lmm_search(model, reml, NULL, FALSE), reps))
}

criterion_value <- function(fit, reml) if (reml) REMLcrit(fit) else deviance(fit)

pass_rows <- list()
lmer_rows <- list()
lmer_warnings <- character()

# One model on one data set, ML and REML: hnm_fit against the R pass over `columns` and `group`,
# and against lmer when `lmer_reps` > 0.
bench_model <- function(label, formula, lmer_formula, data, columns, group, lmer_reps) {
  t_pass <- time_median(function() r_pass_columns(data, columns, group), reps)
  for (reml in c(FALSE, TRUE)) {
    method <- if (reml) "REML" else "ML"
    fit <- hnm_fit(formula, data, method = method)
    t_fit <- time_median(function() hnm_fit(formula, data, method = method), reps)
    steps <- time_steps(fit, data, reml)
    key <- data.frame(data = label, rows = count_label(nrow(data)),
                      groups = count_label(nlevels(data[[group]])), criterion = method)
    pass_rows[[length(pass_rows) + 1L]] <<- cbind(key, data.frame(
      `R pass` = format_seconds(t_pass), hnm_fit = format_seconds(t_fit),
      `hnm_fit / R pass` = sprintf("%.2f", t_fit / t_pass),
      `Rust pass` = format_seconds(steps[["pass"]]),
      optimiser = format_seconds(steps[["optimiser"]]),
      `R rest` = format_seconds(max(t_fit - sum(steps), 0)),
      evaluations = fit$convergence$evaluations,
      `proj. gradient` = sprintf("%.0e", fit$convergence$projected_gradient_norm),
      check.names = FALSE))
    if (lmer_reps == 0L) next
    fit_lmer <- function() lme4::lmer(lmer_formula, data, REML = reml)
    runs <- lapply(seq_len(lmer_reps), function(i) time_once(fit_lmer))
    t_lmer <- median(vapply(runs, `[[`, numeric(1), "seconds"))
    reference <- runs[[1L]]$value
    warned <- unique(unlist(lapply(runs, `[[`, "warnings")))
    if (length(warned) > 0L) {
      lmer_warnings <<- c(lmer_warnings, sprintf("%s, %s rows, %s: %s", label, key$rows, method,
                                                 warned))
    }
    difference <- criterion_value(fit, reml) -
      (if (reml) lme4::REMLcrit(reference) else deviance(reference))
    lmer_rows[[length(lmer_rows) + 1L]] <<- cbind(key, data.frame(
      hnm_fit = format_seconds(t_fit), lmer = format_seconds(t_lmer), `lmer timings` = lmer_reps,
      `lmer / hnm` = sprintf("%.0f", t_lmer / t_fit),
      `lmer warned` = if (length(warned) > 0L) "yes" else "no",
      `hnm - lmer` = sprintf("%.1e", difference), check.names = FALSE))
  }
}

# 1. Simulated data, 100 rows per group.
general <- y ~ x1 + x2 + w + (x1 | g)
g_type_rows <- list()
for (n in 10^seq(5, log10(max_rows))) {
  d <- simulate_lmm(n, n / 100)
  lmer_reps <- if (!run_lmer || n > lmer_max) 0L else if (n >= 1e6) 1L else 3L
  bench_model("simulated", general, general, d, c("y", "x1", "x2", "w"), "g", lmer_reps)
  # The same fit with g as integer codes or strings, against the same R pass (over the factor),
  # and predict() of the fit's rows as new data against the fit (every group seen).
  t_pass <- time_median(function() r_pass_columns(d, c("y", "x1", "x2", "w"), "g"), reps)
  t_factor <- time_median(function() hnm_fit(general, d), reps)
  for (type in c("factor", "integer", "character")) {
    dt <- d
    if (type != "factor") dt$g <- if (type == "integer") as.integer(d$g) else as.character(d$g)
    fit <- hnm_fit(general, dt)
    t_fit <- if (type == "factor") t_factor else time_median(function() hnm_fit(general, dt), reps)
    t_predict <- time_median(function() predict(fit, newdata = dt), reps)
    t_population <- time_median(function() predict(fit, newdata = dt, re.form = NA), reps)
    g_type_rows[[length(g_type_rows) + 1L]] <- data.frame(
      rows = count_label(n), groups = count_label(n / 100), g = type,
      `R pass (factor g)` = format_seconds(t_pass),
      `hnm_fit, factor g` = format_seconds(t_factor), `hnm_fit, this g` = format_seconds(t_fit),
      `hnm_fit / R pass` = sprintf("%.2f", t_fit / t_pass),
      predict = format_seconds(t_predict), `predict / hnm_fit` = sprintf("%.2f", t_predict / t_fit),
      `predict(re.form = NA)` = format_seconds(t_population),
      `re.form = NA / hnm_fit` = sprintf("%.2f", t_population / t_fit), check.names = FALSE)
    rm(dt, fit)
  }
  rm(d)
  invisible(gc())
}

# 2. The lecture's NELS model (12974 students, 684 schools); lmer is fast enough for medians.
bench_model("NELS", mscore ~ flp + enroll + ses + (ses | school),
            mscore ~ flp + enroll + ses + (ses | school), hnm::nels,
            c("mscore", "flp", "enroll", "ses"), "school", if (run_lmer) min(reps, 5L) else 0L)

print_table(paste("hnm_fit vs one data pass in R, sum() of each column used + tabulate(g)",
                  "(target: hnm_fit / R pass <= 3);\nsimulated: y ~ x1 + x2 + w + (x1 | g), NELS:",
                  "mscore ~ flp + enroll + ses + (ses | school);\nRust pass = rs_lmm_build",
                  "(the per-group blocks), optimiser = rs_lmm_fit, R rest = hnm_fit minus both"),
            do.call(rbind, pass_rows))
print_table(paste("The same fit with g as integer codes or strings (ML, hnm_fit only); R pass",
                  "over the factor codes;\npredict = predict(fit, newdata = the fit's rows), with",
                  "every group's effect or at the population level (target: about one fit)"),
            do.call(rbind, g_type_rows))
if (length(lmer_rows) > 0L) {
  print_table(paste("hnm_fit vs lme4::lmer(REML = FALSE / TRUE) (target: lmer / hnm >= 1000 at",
                    "1e6 rows);\nhnm - lmer = deviance (ML) or REML criterion (REML) difference",
                    "(target: <= 1e-7);\nlmer timings = the number of lmer fits timed (one from",
                    "1e6 rows on: 30-90 s each)"),
              do.call(rbind, lmer_rows))
  if (length(lmer_warnings) > 0L) {
    cat("\nlmer's warnings:\n", paste0("  ", lmer_warnings, "\n"), sep = "")
  }
} else {
  cat("\nlmer skipped (--no-lmer, or lme4 not installed)\n")
}
cat(sprintf("\nlme4 %s; load average at the end %s\n",
            if (run_lmer) as.character(utils::packageVersion("lme4")) else "not run",
            paste(scan("/proc/loadavg", what = "", n = 3, quiet = TRUE), collapse = " ")))
