# Several grouping factors (nested and crossed): hnm_fit() against lme4's lmer() on the same
# data, and against one R pass over the columns used.
#
#   Rscript bench/several-factors.R              # about 15 minutes (lmer on InstEval ~1 min,
#                                                # on the kb07-shaped model ~8 min)
#   Rscript bench/several-factors.R --lmer=0     # hnm only
#   Rscript bench/several-factors.R --reps=1     # measurements per median (default 3)
#
# Ratios are taken within this one run on the same data. lmer runs as the issue measures it,
# REML = FALSE with its default optimiser; its criterion is printed beside hnm's (hnm's optimum
# is never worse).
#
# Recorded (2026-12-06, the 2 cores shared, load average ~7-8, so seconds are inflated; ratios
# within one run), before -> after the dense core's own AVX2 kernels (src/rust/hnm-core/src/
# numerics/blocked.rs) and the allocation-free fronts:
#   InstEval service*dept + s + d      17.11 s -> 6.04 s  (lmer / hnm 2.5 -> 5.5), 16 evaluations
#   InstEval service + s + d + dept    15.39 s -> 3.62 s  (lmer / hnm 4.7 -> 14.3), 20 evaluations
#   crossed Zipf 1e6, 10000 x 1000     72.96 s -> 13.13 s
# CPU seconds of the two InstEval fits in one process: 4.8 -> 2.6 and 5.0 -> 1.8.
# Nested levels (2026-12-06, load ~3-4, median of 3), before -> after the nested chain factored
# level by level (factors/nested.rs) and the interaction codes combined inner part first:
#   1e5 rows, 2 factors    24 ms -> 21 ms      3 factors   57 ms -> 24 ms
#   1e6 rows, 2 factors   520 ms -> 179 ms     3 factors 21.7 s -> 252 ms
#   1e7 rows, 2 factors   failed (a 3.2 GB dense block, three of them) -> 2.03 s (19.9x the R pass)
#                         3 factors -> 3.02 s (25.3x); the issue's target is 3x. What remains
#   at 1e7 (Rprof): the optimisation ~1.1 s (36 evaluations of ~30 ms over 1e5 + 1e4 levels),
#   the grouping codes in R ~0.8 s, the data pass ~0.2 s.
# Then (load ~1, median of 3, the old R codes swapped in within the same run) the nested cells
# from one Rust pass (rs_nested_values()) and the update matrices summed over slices:
#   1e5 rows, 2 factors    17 ms -> 13 ms (13x)     3 factors  24 ms -> 18 ms (18x)
#   1e6 rows, 2 factors   190 ms -> 129 ms (13x)    3 factors 242 ms -> 181 ms (15x)
#   1e7 rows, 2 factors   1.81 s -> 1.36 s (13.9x)  3 factors 2.65 s -> 2.17 s (18.0x)
#   What remains at 1e7, 2 factors: the search ~1.0 s (35 evaluations of ~29 ms; 5 per Newton
#   iteration, 4 of them the Hessian's differences, and 24 even from a start near the optimum),
#   the grouping codes ~0.3 s (two as.integer() copies and one gather of the interaction's
#   codes in lexical order), the data pass ~0.2 s.
#
# Recorded (2026-12-06, branch insteval, load average 2.5-3.5; hnm only, seconds per fit, the
# two builds run one after the other), before -> after two threads in the dense kernels and
# the gradient of scalar factors' log|A| from diag(A^-1) (no (L_c L_c')^-1):
#   InstEval service*dept + s + d      2.13-2.72 s -> 1.66-2.08 s, 16 -> 15 evaluations
#   InstEval service + s + d + dept    1.80-2.68 s -> 0.94-1.01 s, 20 evaluations
# CPU ms per evaluation (perf, both models): dense Cholesky 17.6 -> 18.5, L_c^-1 21.5 -> 20.3,
# (L_c L_c')^-1 18.3 and the per-level selected inverse 10.0 -> the norms ||L_c^-1 W_j'|| 17.9
# (these three now on 2 threads), fronts and the rest ~7-10. At load 5-7 (lmer in the same
# run): 3.54 -> 3.18 s (lmer 17.2 s, 5.4x) and 3.45 -> 2.89 s (lmer 40.9 s, 14.1x). The first
# model's build (rs_lmm_build_factors, 28 fixed columns) takes ~0.6-1 s of its total.
#
# Recorded (2026-12-06, main after the nested chain, the dense core's threads and the kb07
# search and products; quiet machine, load < 1; --lmer=0 --reps=1): Penicillin 4 ms, Pastes
# 3 ms, InstEval 1.94 s (15 evaluations) and 1.18 s (20), Chem97 17 ms, kb07-shaped 5.57 s
# (446 evaluations; 51 s and 1,228 the day before), nested 1e5/1e6/1e7 rows 14/168/1800 ms
# (13.7x/16.2x/18.4x the R pass), with districts 20/187/1980 ms, crossed Zipf 1e6 2.43 s.
# InstEval against lmer in one run (median of 3 hnm fits): 1.67 s vs 11.2 s (6.7x) and
# 1.08 s vs 26.5 s (24.5x).
#
# Recorded (2026-12-06, branch cells, load average 3-6 on the 2 cores, median of 5, main and
# the branch one after the other), before -> after the cells keeping n, the means and the
# random columns' co-moments with the fixed part's pooled (src/rust/hnm-core/src/data/pooled.rs):
# InstEval service*dept + s + d: the statistics 255.5 MB -> 17.0 MB, peak RSS 1.08 GB -> 0.37
# GB, the build (lmm_build_factors) 1.03 s -> 0.14 s (rs_lmm_build_factors alone at load ~8:
# 2.0 s -> 0.19 s), hnm_fit 4.0-4.2 s -> 2.0-2.7 s; the same deviance to all 15 digits
# printed. What remains of the build is mostly R's: the design's columns (complex_columns)
# and the cell codes (combine_codes), each about as long as the Rust pass and model.
#
# Recorded (2026-12-06, branch build, load average 3-6 on the 2 cores; main and the branch
# alternated, fits identical() to main's), before -> after the build's sums compiled for AVX2
# (no FMA: the same bits), the wide row pass read by blocks of 64 rows column by column, the
# column summaries once per build, the nested chain's couplings level-major, no copy of the
# model matrix without its intercept nor of a factor's codes by as.integer(), and the
# interaction's codes gathered in Rust:
#   InstEval service*dept + s + d, rs_lmm_build_factors alone: 888 -> 743 million instructions
#   (cachegrind), 59-66 -> 48-50 ms CPU; the whole fit (CPU, median of 7) 0.45-0.48 -> 0.44-0.46 s
#   (the search's share unchanged; within the noise at this load); a whole first fit 8.20 ->
#   8.04 billion instructions (cachegrind, R's own work included).
#   Nested 1e7 rows (CPU seconds, median of 3, twice): (x1 | school) + (1 | school:class)
#   0.510 -> 0.470, with (1 | district) 0.645 -> 0.604; against the R pass (elapsed) 7.0-7.5x
#   -> 6.5-7.1x. perf samples over 4 fits: the pooled pass 1395 -> 968, the nested chain's
#   factorisation 942 -> 742 and its log-determinant gradient 697 -> 540. What remains at 1e7
#   (per fit, CPU): the evaluations ~0.3 s (31 of them), the pass ~0.12 s on two threads
#   (bound by the cells' random access), the interaction's labels (paste of 1e5) ~16 ms, its
#   rows' codes (a fresh 40 MB vector) ~15 ms, two nested checks ~25 ms.
#
# Recorded (2026-12-06, main after the build, dense-core and optimiser branches; quiet machine,
# load ~1; --lmer=0 --reps=3, the previous stop's build (851a1eb) and this one alternated
# twice, previous -> this): InstEval service*dept + s + d 353-413 -> 240-250 ms (13 -> 11
# evaluations), service + s + d + dept 316-373 -> 213-215 ms (15 -> 13), Chem97 6 -> 5 ms,
# kb07-shaped 550-645 -> 554-556 ms (166), nested 1e7 rows 6.3-6.5x -> 5.4-5.7x the R pass
# (with districts 6.9-7.3x -> 6.5-6.8x), crossed Zipf 1e6 613-619 -> 437-474 ms. Against
# lmer in one run (hnm median of 5, twice; one lmer fit): 0.24 s vs 7.1 s (29.3x) and 0.21 s
# vs 11.8 s (55.5x).
#
# Recorded (2026-12-06, quiet, load < 1, --lmer=0 --reps=3, the previous stop's build a4793a6
# run just before this one), after the joint moment start, the quasi-Newton's first update
# from the curvature at the step's end, and the build's codes, cells and labels in Rust:
#   InstEval service*dept + s + d   281 -> 228 ms (11 -> 9 evaluations)
#   InstEval service + s + d + dept 276 -> 236 ms (13 -> 12)
#   Penicillin 18 -> 16 evaluations, Pastes 14 -> 11, Chem97 20 -> 13 (6 -> 5 ms), kb07 166
#   nested 1e6 rows 5.6x -> 4.2x, with districts 5.8x -> 4.6x the R pass
#   nested 1e7 rows 5.7x -> 3.8x (433 -> 280 ms, 28 -> 12 evaluations), with districts
#     6.1x -> 4.3x (535 -> 353 ms, 30 -> 14)
#   crossed Zipf 1e6: 438 -> 336 ms (12 -> 8 evaluations)
# Against lmer in one run (lme4 attached, hnm median of 5 before and after one lmer fit):
# 0.207-0.216 s vs 6.17 s (28.6-29.8x), deviance -7.9e-8; 0.216-0.225 s vs 12.29 s
# (54.6-56.9x), -1.5e-6.
#
# Recorded (2026-12-06, quiet, load < 1, --lmer=0 --reps=3, two runs; the previous stop's build
# 3548d60 alternated with this one in one process where marked), after the nested chain's
# kernels by front shape, the dense core ordered by its fronts, the Schur update scattered by
# column and the build's model matrix by reference:
#   InstEval service*dept + s + d   202 -> 165-177 ms (alternated 214 -> 191), 9 evaluations
#   InstEval service + s + d + dept 184 -> 176-198 ms (alternated 214 -> 204), 12
#   kb07-shaped 509 -> 575-583 ms (alternated 536 -> 526), 166
#   nested 1e7 rows 3.1x -> 2.3-2.4x the R pass (226 -> 167-178 ms), with districts
#     3.7x -> 2.9-3.0x (308 -> 238-244 ms); 12 and 14 evaluations
#   crossed Zipf 1e6: 313 -> 371-376 ms (alternated 354 -> 367; the core's reordering)
# Against lmer in one run: 0.172-0.195 s vs 6.64 s (34.1-38.6x), deviance -7.9e-8;
# 0.187-0.195 s vs 12.51 s (64.2-66.9x), -1.5e-6.
#
# Recorded (2026-12-07, quiet, --lmer=0 --reps=3; main before (7199edf, which first undid a
# 0.5 s regression of the column-name check in R/design.R) and after, one run each), after the
# build's fronts laid out once, [X y]'[X y] by the micro-kernel, the quasi-Newton B fitted to
# the last n secants and the library as one codegen unit:
#   InstEval service*dept + s + d   170 -> 141-144 ms, 9 -> 8 evaluations
#   InstEval service + s + d + dept 178 -> 144-152 ms, 12 -> 11
#   kb07-shaped 513 -> 518-550 ms (alternated 519 -> 538: one codegen unit), 166
#   nested 1e7 rows 2.3x -> 2.1-2.7x the R pass, with districts 2.8x -> 2.4-2.5x
#   crossed Zipf 1e6: 363 -> 243-295 ms, 8 -> 7 evaluations
# Against lmer in one run (lme4 attached, hnm median of 21 before and after one lmer fit):
# 0.135-0.140 s vs 5.98 s (42.7-44.3x), deviance -2.9e-11; 0.149-0.152 s vs 11.92 s
# (78.4-80.0x), -1.5e-6. Without a garbage collection a first-model fit takes 118-132 ms.
# 2026-12-07 (quiet, load ~1), fixed parts of factors held as their distinct rows (no 16 MB
# model matrix on R's heap), variance transfers between nearly aliased factors, one bucketing
# routine for the couplings: InstEval 139-157 and 137-160 ms (main in the same session: 163
# and 153; 8 and 11 evaluations), kb07-shaped 509-532 ms (618), 166; nested 1e7 2.4x and 2.7x
# the R pass (alternated with main: 175 -> 168 and 217 -> 216 ms); Zipf 1e6 241-269 ms (257).
# Against lmer in one run (hnm median of 21 before and after one lmer fit): 0.120-0.124 s vs
# 5.74 s (46.3-47.8x) and 0.140-0.145 s vs 11.57 s (79.8-82.6x), deviances as before.
# 2026-12-07, another machine (Intel Xeon, AVX-512, 2 cores; lmer 11.3 s and 23.2 s), quiet,
# after a fit from rows with several factors stopped keeping its cells' statistics and the
# selected inverse's products were shared with the helper thread: InstEval 242 ms (46.6x
# lmer) and 312 ms (74.4x), kb07-shaped 1.07 s (408.8x, 166 evaluations; 1.04-1.13 s
# alternated with the build before the sharing, 1.11-1.17 s), Chem97 4 ms, nested 1e7 2.9x
# and 3.1x the R pass, Zipf 1e6 497 ms. In a loop of 20 InstEval fits (no gcFirst), main ->
# now: 0.306-0.313 -> 0.251-0.262 s a fit, collections 44 -> 9 ms a fit.

# Recorded (2026-12-07, the same Intel machine, noisier: the same build 0.22-0.25 s a fit
# within minutes), before -> after the AVX-512 tile of 16 x 12 (was 16 x 6), block columns of
# 96 (was 64), the panels' narrow products reading A in place and the norms' partial slab
# first: InstEval's first model in loops of 15 fits, main and this build alternated three
# times, minimum 0.227-0.234 -> 0.218-0.225 s (medians 0.240-0.253 -> 0.231-0.249); with lmer
# in one run (median of 10 hnm fits around one lmer fit): 0.242 s vs 13.20 s (54.5x) and
# 0.267 s vs 22.18 s (82.9x); main's build in another run 45.3x and 79.7x (lmer 10.71 s and
# 23.56 s: lmer's own time varies by 20% here). The dense kernels alone (order 1157, InstEval's
# core): Cholesky 13.6 -> 11.4 ms on one thread, 8.8 -> 7.6 ms on two; L^-1 13.4 -> 11.3 and
# 6.5 -> 5.9 ms. The kb07-shaped model: 1.00-1.07 s either way (its core, order 265, is small).
# Recorded (2026-12-07, the same Intel machine, quiet; main and this build alternated twice,
# 7 fits each, identical() deviances and theta), before -> after the small dense products
# (Lambda' M, C' Lambda, S Lambda, A B) as rows added into rows (the loop over a row
# vectorised; each entry the same sum in the same order), a level's fronts multiplied by
# Lambda_0' in one product, and the Schur update's scatter of a front's consecutive rows by
# slices: the kb07-shaped model (166 evaluations) median 1.003 and 1.103 -> 0.913 and 0.918 s
# (minimum 0.974 and 1.027 -> 0.877 and 0.848 s); --reps=3 after: 0.926 s. InstEval and the
# one-factor fits unchanged (0.22-0.24 s; 5 and 57 ms).
#
# Recorded (2026-12-07, the same Intel machine, quiet), after the probes of each term dropped
# on models of at most 1,000 random effects (model/lmm/fit.rs: none of the models here but
# Penicillin, 12 -> 14 evaluations, and Pastes, 9 -> 11, both 3 ms): InstEval, hnm median of
# 18 around one lmer fit, 0.246 s (min 0.228) against 12.17 s, 49.4x (53.4x by the minimum),
# 8 evaluations; 0.311 s (0.268) against 23.72 s, 76.3x, 11 evaluations. Nested 1e7 rows,
# median of 7: 3.24x and 3.37x the R pass (0.301 and 0.357 s; 12 and 14 evaluations).

local({
  file <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  source(file.path(if (length(file)) dirname(file[1L]) else "bench", "utils.R"))
})
reps <- bench_option("reps", 3)
run_lmer <- bench_option("lmer", 1) == 1 && requireNamespace("lme4", quietly = TRUE)
bench_header("several-factors")

# Median elapsed seconds of `reps` calls of `f()` (slow fits are not repeated within a call).
elapsed_median <- function(f, reps) median(replicate(reps, system.time(f())[["elapsed"]]))

compare <- function(label, formula, data, times = reps) {
  warned <- character()
  fit <- withCallingHandlers(hnm_fit(formula, data), warning = function(w) {
    warned <<- c(warned, conditionMessage(w))
    invokeRestart("muffleWarning")
  })
  t_hnm <- elapsed_median(function() hnm_fit(formula, data), times)
  t_lmer <- NA_real_
  lmer_criterion <- NA_real_
  if (run_lmer) {
    t_lmer <- system.time(ref <- lme4::lmer(formula, data, REML = FALSE))[["elapsed"]]
    lmer_criterion <- deviance(ref)
  }
  data.frame(model = label, rows = nrow(data),
             groups = paste(sprintf("%s %d", names(ngrps(fit)), ngrps(fit)), collapse = ", "),
             evaluations = fit$convergence$evaluations, hnm = format_seconds(t_hnm),
             lmer = if (is.na(t_lmer)) "-" else format_seconds(t_lmer),
             `lmer / hnm` = if (is.na(t_lmer)) "-" else sprintf("%.1f", t_lmer / t_hnm),
             `hnm - lmer deviance` = if (is.na(lmer_criterion)) "-" else
               sprintf("%.2g", fit$deviance - lmer_criterion),
             `hnm warning` = if (length(warned)) paste(warned, collapse = "; ") else "none",
             check.names = FALSE)
}

# A kb07-shaped experiment (Kronmueller and Barr 2007, MixedModels.jl's kb07): 56 subjects
# crossed with 32 items, 1,790 of the 1,792 cells, three +-1 coded factors (spkr, prec, load)
# varied within subjects and within items by a Latin square, and the maximal model: the 8
# fixed-effect columns of spkr * prec * load, each with a random effect on subj and on item
# (two unstructured 8 x 8 blocks, 72 theta). Variances and correlations near kb07's fit in ms,
# the interactions' variances small, so that the fit is near singular as kb07's is.
kb07_data <- function(seed = 7) {
  set.seed(seed)
  cells <- expand.grid(subj = seq_len(56), item = seq_len(32))
  cells <- cells[-sample.int(nrow(cells), 2L), ]
  condition <- (cells$subj + cells$item) %% 8L
  pm <- function(bit) ifelse(bitwAnd(condition, bit) > 0L, 1, -1)
  spkr <- pm(1L); prec <- pm(2L); load <- pm(4L)
  x <- cbind(1, spkr, prec, load, spkr * prec, spkr * load, prec * load, spkr * prec * load)
  covariance <- function(sd, correlations) {
    r <- diag(8)
    for (e in correlations) r[e[1], e[2]] <- r[e[2], e[1]] <- e[3]
    diag(sd) %*% r %*% diag(sd)
  }
  subj_cov <- covariance(c(300, 60, 50, 80, 20, 15, 10, 10),
                         list(c(1, 2, 0.5), c(1, 4, -0.3), c(2, 3, 0.2)))
  item_cov <- covariance(c(360, 40, 250, 30, 20, 15, 10, 10),
                         list(c(1, 3, -0.7), c(1, 2, 0.3), c(3, 4, 0.2)))
  b_subj <- matrix(rnorm(56 * 8), 56) %*% chol(subj_cov)
  b_item <- matrix(rnorm(32 * 8), 32) %*% chol(item_cov)
  beta <- c(2180, 68, -330, 78, -20, 20, 10, -5)
  rt <- drop(x %*% beta) + rowSums(x * b_subj[cells$subj, ]) + rowSums(x * b_item[cells$item, ]) +
    rnorm(nrow(cells), sd = 670)
  data.frame(rt = rt, spkr = spkr, prec = prec, load = load,
             subj = factor(sprintf("S%02d", cells$subj)), item = factor(sprintf("I%02d", cells$item)))
}

rows <- list()
if (requireNamespace("lme4", quietly = TRUE)) {
  rows[[1]] <- compare("Penicillin crossed", diameter ~ 1 + (1 | plate) + (1 | sample),
                       lme4::Penicillin)
  rows[[2]] <- compare("Pastes nested", strength ~ 1 + (1 | batch/cask), lme4::Pastes)
  rows[[3]] <- compare("InstEval service*dept + s + d",
                       y ~ 1 + service * dept + (1 | s) + (1 | d), lme4::InstEval)
  rows[[4]] <- compare("InstEval service + s + d + dept",
                       y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept), lme4::InstEval)
}
if (requireNamespace("mlmRev", quietly = TRUE)) {
  rows[[5]] <- compare("Chem97 nested", score ~ gcsecnt + (1 | school) + (1 | lea),
                       mlmRev::Chem97)
}
rows[[6]] <- compare("kb07-shaped maximal (72 theta)",
                     rt ~ 1 + spkr * prec * load + (1 + spkr * prec * load | subj) +
                       (1 + spkr * prec * load | item), kb07_data(), times = 1)
print_table("Fits against lmer (REML = FALSE)", do.call(rbind, rows))

# Nested levels: pupils in classes in schools in districts, two covariates, a random slope at
# the school level; the fit against one R pass over the columns it reads. Each factor is nested
# in the next, so the fit factors level by level with no dense block (factors/nested.rs): its
# cost grows with the levels, and the third level costs about as much as the second.
nested_data <- function(n, classes, schools, seed = 1) {
  set.seed(seed)
  districts <- schools %/% 10L
  class <- sample.int(classes, n, replace = TRUE)
  school <- (class - 1L) %% schools + 1L
  district <- (school - 1L) %% districts + 1L
  x1 <- rnorm(n)
  x2 <- rnorm(n)
  y <- 1 + 0.5 * x1 - 0.3 * x2 + rnorm(schools)[school] + rnorm(schools, sd = 0.3)[school] * x1 +
    rnorm(classes, sd = 0.5)[class] + rnorm(n) + rnorm(districts, sd = 0.5)[district]
  as_factor <- function(codes, k) structure(codes, levels = as.character(seq_len(k)), class = "factor")
  data.frame(y = y, x1 = x1, x2 = x2, district = as_factor(district, districts),
             school = as_factor(school, schools), class = as_factor(class, classes))
}
nested_formulas <- list(
  "(x1 | school) + (1 | school:class)" = y ~ x1 + x2 + (x1 | school) + (1 | school:class),
  "(1 | district) + (x1 | school) + (1 | school:class)" =
    y ~ x1 + x2 + (1 | district) + (x1 | school) + (1 | school:class))
nested <- list()
for (size in list(c(1e5, 1e3, 1e2), c(1e6, 1e4, 1e3), c(1e7, 1e5, 1e4))) {
  d <- nested_data(size[1], size[2], size[3])
  for (random in names(nested_formulas)) {
    factors <- all.vars(nested_formulas[[random]][[3]])
    factors <- intersect(c("district", "school", "class"), factors)
    t_pass <- time_median(function() sum(d$y) + sum(d$x1) + sum(d$x2) +
                            sum(vapply(factors, function(f) length(tabulate(d[[f]])), 0)),
                          max(reps, 3))
    t_fit <- elapsed_median(function() hnm_fit(nested_formulas[[random]], d), reps)
    nested[[length(nested) + 1L]] <- data.frame(
      rows = format(size[1], scientific = TRUE), classes = size[2], schools = size[3],
      random = random, `R pass` = format_seconds(t_pass), hnm_fit = format_seconds(t_fit),
      `hnm_fit / R pass` = sprintf("%.1f", t_fit / t_pass), check.names = FALSE)
  }
  rm(d)
}
print_table("Nested levels: y ~ x1 + x2 + <random>, districts = schools / 10",
            do.call(rbind, nested))

# Crossed, MovieLens-shaped: Zipf-like user and item popularity.
crossed <- list()
for (size in list(c(1e5, 2e3, 2e2), c(1e6, 1e4, 1e3))) {
  set.seed(2)
  users <- size[2]
  items <- size[3]
  user <- sample.int(users, size[1], replace = TRUE, prob = 1 / seq_len(users))
  item <- sample.int(items, size[1], replace = TRUE, prob = 1 / seq_len(items)^0.8)
  y <- 3.5 + rnorm(users, sd = 0.4)[user] + rnorm(items, sd = 0.5)[item] + rnorm(size[1])
  d <- data.frame(y = y, user = factor(user), item = factor(item))
  fit <- hnm_fit(y ~ 1 + (1 | user) + (1 | item), d)
  t_fit <- elapsed_median(function() hnm_fit(y ~ 1 + (1 | user) + (1 | item), d), 1)
  crossed[[length(crossed) + 1L]] <- data.frame(
    ratings = format(size[1], scientific = TRUE), users = nlevels(d$user),
    items = nlevels(d$item), evaluations = fit$convergence$evaluations,
    hnm_fit = format_seconds(t_fit), check.names = FALSE)
}
print_table("Crossed, Zipf-like popularity: y ~ 1 + (1 | user) + (1 | item)",
            do.call(rbind, crossed))
