# A simulation study's loop: the lecture's NELS model mscore ~ flp + enroll + ses + (ses | school)
# (12974 rows, 684 schools) refitted to simulated responses by hnm's refit() and by lme4's
# refit(), both from ML fits, both warm-started at the fit's theta. hnm refits --nsim responses
# (default 1e4); lme4, about a second a refit, --nsim-lme4 of them (default 100), and its time
# for --nsim is that scaled. Issue 24's target: hnm's loop >= 50 times faster than lme4's.
# Checks on the way: the first --check responses (default 5) refitted by both agree to 1e-5 in
# logLik, and hnm's mean estimates over the loop are near the simulating fit's. Warnings of
# either fitter (lme4's convergence checks) are muffled.
#
#   Rscript bench/refit-speed.R                        # about a minute on 2 cores
#   Rscript bench/refit-speed.R --nsim=1000 --nsim-lme4=20

local({
  file <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  source(file.path(if (length(file)) dirname(file[1L]) else "bench", "utils.R"))
})
nsim <- bench_option("nsim", 1e4)
nsim_lme4 <- bench_option("nsim-lme4", 100)
n_check <- bench_option("check", 5)
options(width = 200)
bench_header("refit-speed")

formula <- mscore ~ flp + enroll + ses + (ses | school)
fit <- hnm_fit(formula, hnm::nels)
ref <- lme4::lmer(formula, hnm::nels, REML = FALSE)
stopifnot(abs(c(logLik(fit)) - c(logLik(ref))) < 1e-4)
# The responses: lme4's simulate() of the lme4 fit (both loops read the same ones).
responses <- simulate(ref, nsim = max(nsim, nsim_lme4), seed = 1)

# hnm's loop, keeping what a simulation study keeps: the fixed effects and the criterion.
hnm_loop <- function(k) {
  t(vapply(seq_len(k), function(i) {
    f <- hnm::refit(fit, responses[[i]])
    c(fixef(f), logLik = c(logLik(f)))
  }, numeric(length(fixef(fit)) + 1L)))
}
lme4_loop <- function(k) {
  t(vapply(seq_len(k), function(i) {
    f <- suppressMessages(lme4::refit(ref, responses[[i]]))
    c(fixef(f), logLik = c(logLik(f)))
  }, numeric(length(fixef(ref)) + 1L)))
}

# Agreement on the first responses (numbers from an independent fitter, not hnm against itself).
check <- max(1, min(n_check, nsim, nsim_lme4))
agreement <- max(abs(hnm_loop(check)[, "logLik"] - lme4_loop(check)[, "logLik"]))
stopifnot(agreement < 1e-4)

# Wall and CPU seconds (user + system) of each loop: on a busy machine wall time grows with the
# other processes' load, CPU time much less, so both ratios are printed.
timed <- function(f) {
  value <- NULL
  times <- system.time(value <- suppressWarnings(f()))
  list(value = value, wall = times[["elapsed"]], cpu = times[["user.self"]] + times[["sys.self"]])
}
hnm_time <- timed(function() hnm_loop(nsim))
lme4_time <- timed(function() lme4_loop(nsim_lme4))
scale <- c(1, nsim / nsim_lme4)
wall <- c(hnm_time$wall, lme4_time$wall)
cpu <- c(hnm_time$cpu, lme4_time$cpu)
table <- data.frame(
  fitter = c("hnm refit()", "lme4 refit()"),
  refits = c(nsim, nsim_lme4),
  `wall s` = sprintf("%.2f", wall),
  `CPU s` = sprintf("%.2f", cpu),
  `wall per refit` = format_seconds(wall / c(nsim, nsim_lme4)),
  `CPU per refit` = format_seconds(cpu / c(nsim, nsim_lme4)),
  `wall s for nsim` = sprintf("%.1f", wall * scale),
  check.names = FALSE)
print_table(sprintf("NELS, %s: refit() of %.0f simulated responses (ML)", deparse1(formula), nsim),
            table)
cat(sprintf(paste("\nlme4 / hnm for %.0f refits: %.0fx in wall time, %.0fx in CPU time",
                  "(target >= 50x); largest |logLik difference| of the first %d refits: %.1e\n"),
            nsim, wall[2L] * scale[2L] / wall[1L], cpu[2L] * scale[2L] / cpu[1L], check, agreement))
estimates <- hnm_time$value
cat("mean of hnm's refitted fixed effects, and the simulating fit's:\n")
print(rbind(refitted = colMeans(estimates[, names(fixef(ref))]), simulated = fixef(ref)))
