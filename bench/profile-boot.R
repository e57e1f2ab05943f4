# Timings of hnm's profile-likelihood and bootstrap intervals next to lme4's
# confint(method = "profile"), in one run (medians of a few repetitions).
#   Rscript bench/profile-boot.R
# Needs hnm (a release build: R CMD INSTALL .), lme4 and mlmRev. lme4's profile of the
# simulated N = 1e6 set takes about half a minute (timed once); set HNM_BENCH_SKIP_LME4_BIG=1
# to skip it.

local({
  file <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  source(file.path(if (length(file)) dirname(file[1L]) else "bench", "utils.R"))
})
suppressPackageStartupMessages(library(lme4))

# hnm's calls are repeated within a timing until it lasts 50 ms (bench/utils.R); lme4's and
# the bootstraps' are timed once per repetition.
bench_case <- function(name, data, formula, lme4_formula, lme4_reps, nsim = 1000L) {
  fit <- hnm_fit(formula, data)
  t_profile <- time_median(function() confint(fit, method = "profile"))
  t_profile_obj <- time_median(function() profile(fit))
  t_boot <- time_median(function() confint(fit, method = "boot", nsim = nsim, seed = 1), reps = 3L,
                        min_time = 0)
  t_lme4 <- NA_real_
  if (lme4_reps > 0L) {
    ref <- lmer(lme4_formula, data, REML = FALSE)
    t_lme4 <- time_median(function() suppressWarnings(suppressMessages(confint(ref, method = "profile"))),
                          reps = lme4_reps, min_time = 0)
  }
  data.frame(data = name, N = nobs(fit), groups = unname(hnm::ngrps(fit)),
             hnm_profile_ci = t_profile, hnm_profile_obj = t_profile_obj,
             hnm_boot = t_boot, nsim = nsim, lme4_profile_ci = t_lme4,
             ratio_profile = t_lme4 / t_profile, ratio_boot = t_lme4 / t_boot)
}

simulate_big <- function(groups = 1e4, n_obs = 1e6, seed = 20261125) {
  set.seed(seed)
  sizes <- as.vector(rmultinom(1, n_obs - 2 * groups, rep(1, groups))) + 2L  # unbalanced
  g <- factor(rep(seq_len(groups), sizes))
  data.frame(y = 10 + rnorm(groups, 0, 1.5)[g] + rnorm(n_obs, 0, 4), g = g)
}

hsb <- new.env()
utils::data("Hsb82", package = "mlmRev", envir = hsb)
big <- simulate_big()
big_lme4 <- !identical(Sys.getenv("HNM_BENCH_SKIP_LME4_BIG"), "1")

results <- rbind(
  bench_case("Dyestuff", lme4::Dyestuff, Yield ~ 1 | Batch, Yield ~ 1 + (1 | Batch),
             lme4_reps = 5L),
  bench_case("Hsb82", hsb$Hsb82, mAch ~ 1 | school, mAch ~ 1 + (1 | school),
             lme4_reps = 3L),
  bench_case("simulated", big, y ~ 1 | g, y ~ 1 + (1 | g),
             lme4_reps = if (big_lme4) 1L else 0L)
)
cat(sprintf("hnm %s, lme4 %s, R %s; seconds (medians)\n", utils::packageVersion("hnm"),
            utils::packageVersion("lme4"), getRversion()))
print(format(results, digits = 3), row.names = FALSE)
if (!big_lme4) cat("lme4 on the simulated set skipped (HNM_BENCH_SKIP_LME4_BIG=1)\n")
cat(sprintf("bootstrap refits on %d thread(s) (option hnm.threads)\n", getOption("hnm.threads", 2L)))
