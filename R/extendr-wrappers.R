#' Negative log-likelihood, gradient or Hessian (`what` = 0, 1, 2) at `par` of the one-way
#' model behind `ptr`.
#' @noRd
rs_neg_log_lik <- function(ptr, par, what) .Call(wrap__rs_neg_log_lik, ptr, par, what)

#' ML (`reml = FALSE`) or REML fit of the one-way model behind `ptr` by its closed form.
#' @noRd
rs_fit <- function(ptr, reml) .Call(wrap__rs_fit, ptr, reml)

#' ANOVA (method-of-moments) fit of the one-way model behind `ptr`.
#' @noRd
rs_anova_fit <- function(ptr) .Call(wrap__rs_anova_fit, ptr)

#' The replicate generator of the model `spec` (response, fixed, random, blocks as in
#' `fit$spec`) at β = `coefficients` (one per fixed column, 0 for a dropped one), Σ =
#' `re_covariance` (q × q) and σ = `sigma`, for the design whose statistics are `fit$stats`:
#' the pointer, the standard normals one replicate takes and the degrees of freedom of its
#' residual chi-square.
#' @noRd
rs_lmm_boot_generator <- function(pilot, n, means, comoments, response, fixed, random, blocks, coefficients, re_covariance, sigma) .Call(wrap__rs_lmm_boot_generator, pilot, n, means, comoments, response, fixed, random, blocks, coefficients, re_covariance, sigma)

#' Refits of the model `spec` (ML, or REML when `reml`; from the internal θ `start`) to the
#' replicates of `generator` given by `seeds` (per replicate the high and low 32 bits of the
#' seed of its normals, whole numbers in [0, 2^32)) and `chi_squares` (one each), on
#' `threads` threads. Per replicate (by rows): the kept β, Σ (q × q), σ and the
#' deviance; NA where a refit failed.
#' @noRd
rs_lmm_boot_refit <- function(generator, response, fixed, random, blocks, reml, start, seeds, chi_squares, threads) .Call(wrap__rs_lmm_boot_refit, generator, response, fixed, random, blocks, reml, start, seeds, chi_squares, threads)

#' The model matrix whose row i is row `index[i]` (1-based) of the double matrix `distinct`
#' (R's `model.matrix()` of one row per combination of the variables), with `distinct`'s
#' column names and its attributes `assign` and `contrasts` (set here: set in R, on a vector
#' also bound in the caller, they would expand it); an error (R's `hnm_core_error` list) when
#' an index is not one of `distinct`'s rows.
#' @noRd
rs_rows_of_distinct <- function(distinct, index) .Call(wrap__rs_rows_of_distinct, distinct, index)

#' The group codes of a non-factor `g` (integer, logical, double or character) for the
#' general model, without `factor()`'s conversion of every value to a string: `codes`
#' (1-based, NA for missing) with either `offset` and `present` (small-range integers: code j
#' is the value offset + present[j], the values without rows left out, as `factor()` does) or
#' `first_row` (hashed values: code j first appears at that 1-based row). `group` names `g` in
#' error messages.
#' @noRd
rs_group_codes <- function(g, group) .Call(wrap__rs_group_codes, g, group)

#' TRUE when the factor `g`'s levels are non-NA strings, none marked "bytes", no two equal
#' (R's `check_levels()` then has nothing to report); FALSE when one of them may fail.
#' @noRd
rs_levels_distinct <- function(g) .Call(wrap__rs_levels_distinct, g)

#' For a plain integer or double vector `g` whose values (but NA) are whole numbers of a
#' range small enough to index directly, `offset` (the value before the smallest, so value
#' v is group v − offset) and `levels` (the range's length); NULL otherwise.
#' @noRd
rs_dense_range <- function(g) .Call(wrap__rs_dense_range, g)

#' For integer codes `first` in 1..`levels` and the integer codes `others` (a list) of the same
#' rows, each of `others`' value at every level of `first` (0 for a level with no rows) when
#' each is a function of `first`, a nested design (hnm_core::nested_values); NULL otherwise,
#' or when a code is NA or a vector is not a plain integer vector.
#' @noRd
rs_nested_values <- function(first, levels, others) .Call(wrap__rs_nested_values, first, levels, others)

#' R's `dense_codes()` (R/design.R) for one or two integer keys `keys` (a list; key j in
#' 1..`sizes[j]`): the distinct combinations numbered 1..n in lexical order of the keys,
#' `codes` (one per row) and `n`, by hnm_core::dense_pair_codes; NULL when a key is not a plain
#' integer vector, is NA or outside its range, or there are more than two (R's code then
#' applies).
#' @noRd
rs_dense_codes <- function(keys, sizes) .Call(wrap__rs_dense_codes, keys, sizes)

#' The labels of an interaction's cells, `paste(labels[[1]][levels[[1]]], labels[[2]][levels[[2]]],
#' ..., sep = sep)`: `labels` the parts' level labels (character vectors), `levels` each cell's
#' level of each part (1-based integer vectors of one length). Written by hnm_core::cell_labels
#' into one buffer and each made an R string, where `paste()` took twice as long (1e5 cells of
#' classes in schools: ~40 ms). NULL, for `paste()` to make them, when a label is NA or not
#' ASCII (whose encoding `paste()` handles), a level is outside its labels, or the lengths
#' differ. ASCII labels joined by an ASCII `sep` are ASCII strings, as `paste()` makes them.
#' @noRd
rs_cell_labels <- function(labels, levels, sep) .Call(wrap__rs_cell_labels, labels, levels, sep)

#' `map[codes]` as R's `[` gives it for integer `codes` in 1..length(`map`) or NA (NA there,
#' and where `map` is NA), written straight into an R vector by hnm_core::map_codes on up to
#' `threads` threads: the rows' codes of an interaction through its cells' order, where R's
#' subsetting took 3x as long at 1e7 rows. NULL when a code is beyond that range or `codes`
#' is not an integer vector (R's `[` then applies its own rules).
#' @noRd
rs_map_codes <- function(map, codes, threads) .Call(wrap__rs_map_codes, map, codes, threads)

#' The groups of a plain integer, logical, double or character vector `g`, hashed in one pass
#' over it without storing a code per row: `table`, the key table (an external pointer; its
#' codes in order of first appearance until `rs_group_keys_order`), and `first_row`, the
#' 1-based row where each group is first seen. `group` names `g` in error messages.
#' @noRd
rs_group_keys <- function(g, group) .Call(wrap__rs_group_keys, g, group)

#' Renumbers the groups of the key table `table`: the group first seen c-th gets code
#' `rank[c]` (see `KeyCodes::reorder` in hnm-core).
#' @noRd
rs_group_keys_order <- function(table, rank) .Call(wrap__rs_group_keys_order, table, rank)

#' TRUE when `table` is a live key table (FALSE after `saveRDS()`/`readRDS()`, which keep no
#' pointer).
#' @noRd
rs_group_keys_valid <- function(table) .Call(wrap__rs_group_keys_valid, table)

#' Kenward–Roger's pieces at a REML fit: `parameters` (k), `covariance` and `adjusted`
#' (p × p by rows), `covariance_jacobian` (k matrices p × p by rows) and `weights` (k × k).
#' @noRd
rs_lmm_kenward_roger <- function(ptr) .Call(wrap__rs_lmm_kenward_roger, ptr)

#' TRUE when `ptr` holds a model (FALSE after `readRDS`, which restores pointers as NULL).
#' @noRd
rs_lmm_valid <- function(ptr) .Call(wrap__rs_lmm_valid, ptr)

#' The one-way statistics of the model behind `ptr` (`y ~ 1 | g`) for the closed forms R
#' computes: `center`, and per modelled group `n`, `mean` (about the centre) and `ss`.
#' @noRd
rs_one_way_statistics <- function(ptr) .Call(wrap__rs_one_way_statistics, ptr)

#' One pass over `columns` (the model's variables) and 1-based group `codes` less
#' `code_offset` (a factor's codes with offset 0, or integers or whole doubles of a small
#' range), or hashed values coded by their key table (`code_offset` from `rs_group_keys`);
#' `n_groups` levels; on up to `threads` threads, then the model of the given structure.
#' Returns the pointer and the plain fields.
#' @noRd
rs_lmm_build <- function(columns_list, codes, code_offset, n_groups, response, fixed, random, blocks, names, threads) .Call(wrap__rs_lmm_build, columns_list, codes, code_offset, n_groups, response, fixed, random, blocks, names, threads)

#' The model of per-group statistics given in `rs_lmm_build`'s plain fields (a saved fit's,
#' or a statistics table's such as a database computed): the pointer, with the fit at
#' `internal_theta` when that is numeric (a saved fit; no search), unfitted otherwise.
#' @noRd
rs_lmm_restore <- function(pilot, n, means, comoments, response, fixed, random, blocks, names, reml, internal_theta) .Call(wrap__rs_lmm_restore, pilot, n, means, comoments, response, fixed, random, blocks, names, reml, internal_theta)

#' One pass over `columns_list` keyed by the rows' 1-based `cell_codes` (the combinations of
#' levels of several grouping factors that occur, `n_cells` of them; NA for a dropped row),
#' then the model with the grouping factors given per cell (see `grouping_factors`), in lme4's
#' order. The statistics are in the pooled layout (`CrossProducts::pooled`), the co-moments of
#' the pairs without a random-effects column summed over the cells, or, when `full` (a
#' statistics table, `hnm_stats()`), with every pair kept per cell. Returns what
#' `rs_lmm_build` returns, `groups` being a list by factor, and, when `statistics`, the
#' statistics with their `pooled` sums and 1-based `group_variables` (`NULL` otherwise: a
#' fit from rows does not keep them, which are per cell as large as its data; its model is
#' rebuilt by the pass, `rs_lmm_fit_at`).
#' @noRd
rs_lmm_build_factors <- function(columns_list, cell_codes, n_cells, response, fixed, cell_levels, n_levels, random, blocks, names, threads, full, statistics) .Call(wrap__rs_lmm_build_factors, columns_list, cell_codes, n_cells, response, fixed, cell_levels, n_levels, random, blocks, names, threads, full, statistics)

#' `rs_lmm_restore` for a model with several grouping factors (see `rs_lmm_build_factors`):
#' the statistics in the pooled layout when `pooled` (the pooled sums) and `group_variables`
#' (1-based) are given, with every pair per cell when both are NULL (a statistics table, or a
#' fit saved before the pooled layout); its dense kernels on at most `threads` threads.
#' @noRd
rs_lmm_restore_factors <- function(pilot, n, means, comoments, pooled, group_variables, response, fixed, cell_levels, n_levels, random, blocks, names, reml, internal_theta, threads) .Call(wrap__rs_lmm_restore_factors, pilot, n, means, comoments, pooled, group_variables, response, fixed, cell_levels, n_levels, random, blocks, names, reml, internal_theta, threads)

#' The model behind `ptr` fitted at the internal θ `internal_theta` (REML when `reml`) with
#' no search, as `rs_lmm_restore` fits a saved fit's model: for the model of a saved fit from
#' rows rebuilt by the pass over them. Returns `list(model = ptr)`.
#' @noRd
rs_lmm_fit_at <- function(ptr, reml, internal_theta) .Call(wrap__rs_lmm_fit_at, ptr, reml, internal_theta)

#' A copy of the model behind `ptr`, unfitted, behind a pointer of its own: a refit by another
#' criterion (refitML()) that leaves the fit's model as it is. Returns `list(model = ptr)`.
#' @noRd
rs_lmm_copy <- function(ptr) .Call(wrap__rs_lmm_copy, ptr)

#' Fits the model (ML, or REML when `reml`), from the internal θ `start` when given (a numeric
#' vector), with the search's `tolerance` (relative to N), `max_iterations` and, when
#' `verbose`, a line printed per iteration; keeps the fit in the model when `keep` (a refit by
#' the other criterion, for anova(), does not replace the fit the R object describes).
#' @noRd
rs_lmm_fit <- function(ptr, reml, start, keep, tolerance, max_iterations, verbose) .Call(wrap__rs_lmm_fit, ptr, reml, start, keep, tolerance, max_iterations, verbose)

#' The internal θ of lme4's θ `theta` for the model behind `ptr` (a start given in lme4's
#' units; see `LinearMixedModel::internal_theta_of`).
#' @noRd
rs_lmm_internal_theta <- function(ptr, theta) .Call(wrap__rs_lmm_internal_theta, ptr, theta)

#' The fitted model's random effects: `modes` (groups × q, by rows) and conditional
#' covariances (q × q per group).
#' @noRd
rs_lmm_ranef <- function(ptr) .Call(wrap__rs_lmm_ranef, ptr)

#' The fitted model's random effects by grouping factor (lme4's order): a list of
#' `rs_lmm_ranef`'s fields, one per factor.
#' @noRd
rs_lmm_ranef_factors <- function(ptr) .Call(wrap__rs_lmm_ranef_factors, ptr)

#' Fitted values of the rows of `columns_list` (the model's variables) with 1-based group
#' `codes` less `code_offset` (0 for a new level; see `rs_lmm_build`): with the random effects when `random`, else the population
#' values; with `modes` (groups × q by rows, in the data's units) instead of the conditional
#' modes when it is numeric (simulated effects). NA where a value or the group is missing.
#' @noRd
rs_lmm_fitted <- function(ptr, columns_list, codes, code_offset, random, modes) .Call(wrap__rs_lmm_fitted, ptr, columns_list, codes, code_offset, random, modes)

#' The fingerprint of `columns_list` and `codes` less `code_offset` (as `rs_lmm_build` computed it), to tell
#' whether the data a fit refers to were changed in place.
#' @noRd
rs_lmm_fingerprint <- function(columns_list, codes, code_offset) .Call(wrap__rs_lmm_fingerprint, columns_list, codes, code_offset)

#' Each row's 1-based group code among the statistics' groups, from the grouping column
#' `codes` read by `code_offset` as `rs_lmm_build` reads it (NA for a missing group, 0 for a
#' value not among the groups): for row-level methods, which alone need a code per row.
#' @noRd
rs_row_codes <- function(codes, code_offset) .Call(wrap__rs_row_codes, codes, code_offset)

#' The ML deviance (`reml = FALSE`) or REML criterion at the fit's θ, in the data's units.
#' @noRd
rs_lmm_criterion <- function(ptr, reml) .Call(wrap__rs_lmm_criterion, ptr, reml)

#' lme4's criterion (ML deviance, or REML criterion when `reml`) at lme4's θ `theta`, with
#' its gradient in θ when `gradient` (`LinearMixedModel::criterion_and_gradient_at_theta`):
#' `value` and `gradient` (NULL when not asked for). The model need not have been fitted.
#' @noRd
rs_lmm_devfun <- function(ptr, reml, theta, gradient) .Call(wrap__rs_lmm_devfun, ptr, reml, theta, gradient)

#' The derivatives Satterthwaite's df need (hnm_core::VarianceDerivatives), computed on first
#' use and kept: `hessian` (k × k by rows) and `covariance_jacobian` (k matrices p × p by rows).
#' @noRd
rs_lmm_variance_derivatives <- function(ptr) .Call(wrap__rs_lmm_variance_derivatives, ptr)

#' The profiles of the parameters `which` (1-based, lme4's order) out to |ζ| = `zeta_max`,
#' `steps` points a side, on `threads` threads: `par` (the profiled parameter of each point),
#' `zeta`, and `parameters`, a matrix of every parameter at each point (lme4's order).
#' @noRd
rs_lmm_profile <- function(ptr, which, zeta_max, steps, threads) .Call(wrap__rs_lmm_profile, ptr, which, zeta_max, steps, threads)

#' Profile-likelihood limits where ζ = ∓`z` of the parameters `which` (1-based, lme4's
#' order) on `threads` threads: a matrix with a row per parameter.
#' @noRd
rs_lmm_profile_ci <- function(ptr, which, z, threads) .Call(wrap__rs_lmm_profile_ci, ptr, which, z, threads)

#' Var(x₀ᵀβ̂ + z₀ᵀb̂_j − x₀ᵀβ − z₀ᵀb_j) at the fit for the rows of `columns_list` (the model's
#' variables) in groups `codes` less `code_offset` (0 a new level), NA where a value or the
#' group is missing.
#' @noRd
rs_lmm_prediction_variances <- function(ptr, columns_list, codes, code_offset) .Call(wrap__rs_lmm_prediction_variances, ptr, columns_list, codes, code_offset)

#' lme4's variance parameters at the fit and their Jacobian in the internal (θ, σ): `parameters`
#' (k), `estimates` (k), `jacobian` (k × k by rows), `boundary` (k: an SD of 0 or a
#' correlation of ±1) and `held` (k: internal coordinates held at the fit's boundary face).
#' @noRd
rs_lmm_wald_jacobian <- function(ptr) .Call(wrap__rs_lmm_wald_jacobian, ptr)

