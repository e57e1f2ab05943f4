# Crossed random effects at MovieLens scale: y ~ 1 + (1 | user) + (1 | item) on simulated
# ratings with Zipf-like user and item popularity (issue 23's MovieLens-shaped target).
# Reports the fit's time, its evaluations and the process's peak memory during the fit
# beside the data's size.
#
#   Rscript bench/crossed-large.R                       # 1e7 ratings, 1e5 users x 5e3 items
#   Rscript bench/crossed-large.R --ratings=1e6 --users=1e4 --items=1e3
#   Rscript bench/crossed-large.R --ratings=3.15e7 --users=200947 --items=16034   # MovieLens 32M's shape
#   --verbose=1 prints the search's iterations (hnm_fit(verbose = TRUE)) after the fit's start
#   time: with the lines timestamped (e.g. piped through `while read l; do echo "$(date +%T) $l";
#   done`) they time an iteration before a whole fit is waited for.
#
# Recorded (2026-12-06, branch dense, the 2 cores shared with other jobs, load 3-6):
#   1e7 ratings, 1e5 x 5e3: 423 s / 16 evaluations (before the AVX kernels) -> 97.2 s / 13
#     (packed operands by their contiguous side, the core's scatter by column blocks; load ~6)
#     -> 57.5 s / 13, peak 1.6 GB above the process (the first factor's gradient term as
#     <X'X, T> instead of the sparse norms, which took ~99% of an evaluation; load ~3-4).
#   MovieLens 32M's shape (3.15e7, 200,947 x 16,034), that last build: 1,648 s / 14
#     evaluations, peak 10.1 GB above the process (core, L_c^-1 and X'X: 2 GB each); the
#     process had 0.85 of a core on average (1,403 s of CPU): the search's iterations took
#     70-150 s each, the simulation and build ~8 min before the first, and the random
#     effects' conditional variances after the fit ~5.7 min (the selected inverse of 200,947
#     users against a dense 16k core). MixedModels.jl: 1,213 s on 8 threads.
# Recorded (2026-12-06, quiet machine, load < 1; hnm alone), after the joint moment start
# (model/lmm/fit.rs) and the quasi-Newton's first update from the curvature at the step's end:
#   1e7 ratings, 1e5 x 5e3: 57.5 s / 13 -> 20.0 s / 8 evaluations, peak 1.5 GB.
#   MovieLens 32M's shape: 1,648 s / 14 -> 302.7 s / 6 evaluations (~47 s each: start, 2 for
#     the difference Hessian, 3 iterations; ~19 s of build), peak 10.3 GB above the process.
#     MixedModels.jl: 1,213 s on 8 threads (~42 s an evaluation, about 29 of them).
#   (The ~5.7 min the previous run saw after the search was ranef(condVar = TRUE): now 13x
#   faster at 1e7, 57 -> 4.2 s, the variances from L_c^-1 alone.)
#
# Peak memory is the resident set's high-water mark (VmHWM), reset before the fit by writing
# 5 to /proc/self/clear_refs (Linux); elsewhere it is not reported.

local({
  file <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  source(file.path(if (length(file)) dirname(file[1L]) else "bench", "utils.R"))
})
bench_header("crossed-large")
ratings <- bench_option("ratings", 1e7)
users <- bench_option("users", 1e5)
items <- bench_option("items", 5e3)
verbose <- bench_option("verbose", 0) == 1

# Ratings whose users and items are drawn with probabilities 1/rank (users) and
# 1/rank^0.8 (items), as MovieLens' long tails; each (user, item) pair at most once, as a
# rating is.
simulate_ratings <- function(ratings, users, items, seed = 3) {
  set.seed(seed)
  draw <- ceiling(1.3 * ratings)
  user <- sample.int(users, draw, replace = TRUE, prob = 1 / seq_len(users))
  item <- sample.int(items, draw, replace = TRUE, prob = 1 / seq_len(items)^0.8)
  keep <- which(!duplicated(user + (item - 1) * users))[seq_len(ratings)]
  user <- user[keep]
  item <- item[keep]
  as_factor <- function(codes, k) structure(codes, levels = as.character(seq_len(k)), class = "factor")
  data.frame(y = 3.5 + rnorm(users, sd = 0.4)[user] + rnorm(items, sd = 0.5)[item] +
               rnorm(length(keep)),
             user = droplevels(as_factor(user, users)), item = droplevels(as_factor(item, items)))
}

# The process's peak resident memory in bytes since the last reset_peak() (NA off Linux).
peak_memory <- function() {
  status <- tryCatch(readLines("/proc/self/status"), error = function(e) character())
  line <- grep("^VmHWM:", status, value = TRUE)
  if (length(line) == 0L) return(NA_real_)
  1024 * as.numeric(gsub("[^0-9]", "", line))
}
resident_memory <- function() {
  status <- tryCatch(readLines("/proc/self/status"), error = function(e) character())
  line <- grep("^VmRSS:", status, value = TRUE)
  if (length(line) == 0L) return(NA_real_)
  1024 * as.numeric(gsub("[^0-9]", "", line))
}
reset_peak <- function() invisible(tryCatch(writeLines("5", "/proc/self/clear_refs"),
                                            error = function(e) NULL))

d <- simulate_ratings(ratings, users, items)
formula <- y ~ 1 + (1 | user) + (1 | item)
invisible(gc())
before <- resident_memory()
reset_peak()
cat(sprintf("fit started: %s\n", format(Sys.time(), "%H:%M:%OS1")))
elapsed <- system.time(fit <- hnm_fit(formula, d, verbose = verbose))[["elapsed"]]
peak <- peak_memory()
mb <- function(bytes) sprintf("%.0f MB", bytes / 2^20)
print_table(sprintf("Crossed: %s (Zipf-like popularity)", deparse1(formula)), data.frame(
  ratings = format(nrow(d), big.mark = ","), users = nlevels(d$user), items = nlevels(d$item),
  hnm_fit = format_seconds(elapsed), evaluations = fit$convergence$evaluations,
  `data (y, user, item)` = mb(as.numeric(object.size(d))),
  `peak memory during the fit, above the process before it` = mb(peak - before),
  check.names = FALSE))
print(VarCorr(fit))
