# Interval timings of the general model: the parametric bootstrap (statistic space, on
# getOption("hnm.threads", 2) threads) and the profile-likelihood intervals of every parameter
# of y ~ x1 + x2 + w + (x1 | g) at 1e6 rows and 1e4 groups (q = 2) and of the lecture's NELS
# model mscore ~ flp + enroll + ses + (ses | school), the latter beside lme4's profile intervals;
# and anova(fit)'s F tests at 1e6 rows beside the fit's time.
#
#   Rscript bench/lmm-inference.R             # about two minutes on 2 cores, most of it lme4
#   Rscript bench/lmm-inference.R --no-lme4   # without lme4's profile of NELS
#   Rscript bench/lmm-inference.R --reps=7    # timings per median (default 5)
#   Rscript bench/lmm-inference.R --nsim=2000 # bootstrap replicates (default 1000)
#
# Wall seconds are medians of --reps (at least 2) timings taken in this one run, "/ target"
# their ratio to the target; CPU seconds (user + system over all threads) are those of one
# more run: on a busy machine wall time grows much more than CPU time. Each row kind is one
# function (bench_bootstrap); a new kind (profile-likelihood intervals, say) is another
# function returning timing_row(), called on the fits of `cases` below.

local({
  file <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  source(file.path(if (length(file)) dirname(file[1L]) else "bench", "utils.R"))
})
reps <- bench_option("reps", 5)
nsim <- bench_option("nsim", 1000)
options(width = 200)
bench_header("lmm-inference")

# The row of one timing: the case, what was timed, the median wall seconds, the CPU seconds
# of one run (all threads: on a busy machine wall time grows, CPU time much less) and the
# target (NA for none).
timing_row <- function(case, what, seconds, cpu, target, note = "") {
  data.frame(data = case$label, rows = count_label(nobs(case$fit)),
             groups = count_label(unname(ngrps(case$fit))), criterion = case$fit$method,
             interval = what, seconds = sprintf("%.3f", seconds), `CPU s` = sprintf("%.2f", cpu),
             target = if (is.na(target)) "-" else format(target),
             `/ target` = if (is.na(target)) "-" else sprintf("%.2f", seconds / target),
             note = note, check.names = FALSE)
}

# bootstrap(fit, nsim) of a case: wall seconds for the nsim replicates, and the failed refits.
bench_bootstrap <- function(case, target = NA_real_) {
  run <- function() bootstrap(case$fit, nsim = nsim, seed = 1, quiet = TRUE)
  first <- system.time(failed <- run()$failed)
  seconds <- time_median(run, reps)
  timing_row(case, sprintf("bootstrap, %d replicates", nsim), seconds,
             first[["user.self"]] + first[["sys.self"]], target * nsim / 1000,
             sprintf("%d failed", failed))
}

# confint(fit) of a case (profile-likelihood limits of every parameter); with `lme4 = TRUE`
# lme4's confint(method = "profile") of the same model, timed once, and its warnings counted.
bench_profile <- function(case, target = NA_real_, lme4 = FALSE) {
  run <- function() confint(case$fit, method = "profile")
  first <- system.time(run())
  seconds <- time_median(run, reps)
  note <- ""
  if (lme4 && requireNamespace("lme4", quietly = TRUE)) {
    reference <- lme4::lmer(formula(case$fit), case$data, REML = case$fit$method == "REML")
    warnings <- 0L
    t_lme4 <- system.time(withCallingHandlers(
      suppressMessages(confint(reference, method = "profile")),
      warning = function(w) {
        warnings <<- warnings + 1L
        invokeRestart("muffleWarning")
      }))[["elapsed"]]
    note <- sprintf("lme4 %.1f s (%d warnings): lme4 / hnm %.0f", t_lme4, warnings,
                    t_lme4 / seconds)
  }
  timing_row(case, "profile CIs, all parameters", seconds,
             first[["user.self"]] + first[["sys.self"]], target, note)
}

# anova(fit) (lmerTest's type III and type I tables) of y ~ x1 * f + x2 + (x1 | g) on the
# simulated rows with a three-level factor f: its hypotheses come from X'X of the group
# statistics and the terms' coding, so its time, beside the fit's, does not grow with rows.
bench_anova <- function(data) {
  data$f <- factor(c("a", "b", "c"))[as.integer(data$g) %% 3L + 1L]
  formula <- y ~ x1 * f + x2 + (x1 | g)
  fit_seconds <- time_median(function() hnm_fit(formula, data), reps)
  case <- list(label = "simulated, x1 * f", fit = hnm_fit(formula, data))
  lapply(c("III", "I"), function(type) {
    run <- function() anova(case$fit, type = type)
    first <- system.time(run())
    seconds <- time_median(run, reps)
    timing_row(case, sprintf("anova(fit, type = \"%s\")", type), seconds,
               first[["user.self"]] + first[["sys.self"]], NA_real_,
               sprintf("fit %.3f s: anova / fit %.2f", fit_seconds, seconds / fit_seconds))
  })
}

# The fits timed: simulated 100 rows per group (bench/utils.R), and NELS.
simulated <- simulate_lmm(1e6, 1e4)
cases <- list(
  list(label = "simulated", fit = hnm_fit(y ~ x1 + x2 + w + (x1 | g), simulated)),
  list(label = "NELS", fit = hnm_fit(mscore ~ flp + enroll + ses + (ses | school), hnm::nels),
       data = hnm::nels)
)
anova_rows <- bench_anova(simulated)
rm(simulated)
invisible(gc())

rows <- c(list(
  bench_bootstrap(cases[[1L]], target = 5),
  bench_bootstrap(cases[[2L]]),
  bench_profile(cases[[1L]], target = 1),
  bench_profile(cases[[2L]], lme4 = !bench_flag("no-lme4"))
), anova_rows)
print_table(paste("Intervals and anova(fit) of the general model, wall seconds (medians);",
                  "targets: 1000 bootstrap replicates of 1e6 rows, 1e4 groups, q = 2 in < 5 s,",
                  "their profile CIs in < 1 s; NELS profile CIs >= 100x faster than lme4's"),
            do.call(rbind, rows))
cat(sprintf("\nthreads %d; load average at the end %s\n", getOption("hnm.threads", 2L),
            paste(scan("/proc/loadavg", what = "", n = 3, quiet = TRUE), collapse = " ")))
