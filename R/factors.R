# Several grouping factors, nested or crossed: hnm_fit()'s model step when the formula has
# more than one grouping factor, and what the fit object holds for them.
#
# The rows are keyed by their cell, the combination of the factors' levels they have; one pass
# reduces them to the cells' statistics, from which the Rust model forms each level's blocks
# and the blocks that couple the factors (src/rust/hnm-core/src/model/lmm/factors/). The
# factors are ordered as lme4 orders them (by decreasing number of levels), which is also the
# model's order of elimination: the first factor's levels stay block-diagonal. The cells'
# statistics may also come from elsewhere (hnm_stats() tables, a database's GROUP BY over the
# grouping columns, R/sql.R): they build the same Rust model (lmm_fit_statistics()).

# TRUE for a parsed formula or a fit with several grouping factors.
has_several_factors <- function(x) length(x$factors) > 1L

# The model of a formula with several grouping factors: the factors' codes and lme4's order,
# the design's columns with the random-effects terms in that order, the rows' cells, and the
# Rust model from one pass keyed by cell. Returns the design (with `factors`, the fit's
# description of each factor, and the plain fields the model is rebuilt from), the built
# model, the parsed formula in lme4's order and the rows' `cells` (cell_codes()). `weights`
# and `index`: as for lmm_build(). The statistics keep per cell only the co-moments the model
# reads per cell, those of the random-effects columns, the others pooled over the cells
# (`built$stats$pooled`); with `full` every co-moment per cell (the table hnm_stats() gives).
# The statistics are returned (`built$stats`) only with `full`: a fit keeps its rows, from
# which its model is rebuilt (restore_factors_model()), not per-cell statistics as large as
# its data (InstEval's 73,421 cells: 17 MB).
lmm_build_factors <- function(parsed, data, call, offset = NULL, contrasts = NULL,
                              threads = thread_count(call), weights = NULL, index = NULL,
                              full = FALSE) {
  frame <- fit_data(data, call)
  grouping <- grouping_factors(parsed, frame, parsed$env %||% globalenv(), call)
  cells <- cell_codes(grouping)
  ordered <- lme4_factor_order(parsed, grouping, cells$levels, cells$n_levels)
  parsed <- ordered$parsed
  # A fit's model.matrix() by reference, its unread intercept column one mean more per cell;
  # a statistics table (`full`) keeps the model's columns alone.
  design <- model_design(parsed, data, call, groups = FALSE, offset = offset,
                         contrasts = contrasts, whole_matrices = !full)
  design <- c(design[setdiff(names(design), c("codes", "code_offset", "group_name"))],
              list(codes = cells$cell, code_offset = 0L))
  design <- factors_design(design, parsed, ordered$grouping, ordered$cell_levels, call)
  check_lengths(design, call)
  designs <- pass_design(design, weights, index, call)
  design <- designs$rows
  pass <- designs$pass
  spec <- pass$factor_spec
  built <- rs_lmm_build_factors(pass$variables, cells$cell, cells$n_cells, pass$response,
                                pass$fixed, spec$cell_levels, spec$n_levels, spec$random,
                                spec$blocks, pass$names, threads, full, full)
  built <- explain_factor_levels(explain_build_error(built, pass, call), design, parsed,
                                 spec$cell_levels)
  built <- rust_result(built, call = call)
  built$fingerprint <- rows_fingerprint(design, built)
  built$zero_weights <- design$zero_weights
  design$factors <- factor_descriptions(design, ordered$grouping, built)
  list(design = design, built = built, parsed = parsed, cells = cells)
}

# The core's error for a factor with fewer than two levels with data, which does not say which
# factor, naming the first such factor (lme4: "grouping factors must have > 1 sampled
# level"): its levels among the complete rows of `design` (their cells, `design$codes`), each
# cell's level of factor f `cell_levels[[f]]`. Any other result is returned as it is.
explain_factor_levels <- function(built, design, parsed, cell_levels) {
  if (!is_core_error(built) || !identical(built$kind, "too_few_groups")) return(built)
  ok <- complete_lmm_rows(NULL, design)
  cells <- unique(design$codes[ok])
  found <- vapply(cell_levels, function(levels) length(unique(levels[cells])), 0L)
  few <- which(found < 2L)
  if (length(few)) {
    built$hnm_core_error <- sprintf(paste("the grouping factor `%s` has %d level(s) with data; at",
                                          "least 2 are needed to estimate its variance."),
                                    parsed$factors[[few[1L]]]$name, found[few[1L]])
  }
  built
}

# The formula's factors and random-effects terms in lme4's order: the factors as its flist,
# each factor's terms in its order of terms (when lme4 interleaves the terms of factors with
# equally many levels, theta stays grouped by factor here, with lme4's names), from each
# factor's number of levels with data, `n_levels`. Returns the reordered `parsed` (its
# `random` all the terms, factor by factor), `grouping` and `cell_levels` (each factor's level
# of each cell), and `terms`: the new order as indices into the terms of the formula's factors
# one after another (all_random_terms()).
lme4_factor_order <- function(parsed, grouping, cell_levels, n_levels) {
  order <- factor_order(parsed, n_levels)
  first <- cumsum(c(0L, lengths(lapply(parsed$factors, `[[`, "random"))))
  terms <- unlist(lapply(order$factors, function(f) {
    first[f] + order$terms$term[order$terms$factor == f]
  }))
  parsed$factors <- lapply(order$factors, function(f) {
    factor <- parsed$factors[[f]]
    kept <- order$terms$term[order$terms$factor == f]
    # Each term keeps its position in the formula (ranova()'s order of rows).
    factor$random <- factor$random[kept]
    factor$position <- factor$position[kept]
    factor
  })
  parsed$random <- all_random_terms(parsed)
  list(parsed = parsed, grouping = grouping[order$factors],
       cell_levels = cell_levels[order$factors], terms = terms)
}

# The random-effects terms of all the factors, factor by factor.
all_random_terms <- function(parsed) {
  unlist(lapply(parsed$factors, `[[`, "random"), recursive = FALSE)
}

# A design (model_design()'s fields, or those of statistics) completed for several factors in
# lme4's order (`parsed`): the factor of each term, the group name (the first factor's), and
# `factor_spec`, what the Rust model takes per factor: each cell's level (`cell_levels`), the
# number of levels (of `grouping`), the random-effects columns and the blocks. A column in two
# terms of one factor is refused.
factors_design <- function(design, parsed, grouping, cell_levels, call) {
  names <- vapply(parsed$factors, `[[`, "", "name")
  term_factor <- rep(seq_along(names), lengths(lapply(parsed$factors, `[[`, "random")))
  column_factor <- rep(term_factor, design$blocks)
  design$group_name <- names[1L]
  design$term_groups <- names[term_factor]
  design$factor_spec <- list(
    cell_levels = cell_levels,
    n_levels = vapply(grouping, function(g) as.integer(g$n_groups), 0L),
    random = unname(split(design$random, factor(column_factor, seq_along(names)))),
    blocks = unname(split(design$blocks, factor(term_factor, seq_along(names)))))
  for (f in seq_along(names)) {
    check_distinct_random_columns(list(random = design$factor_spec$random[[f]],
                                       random_names = design$random_names[term_factor == f],
                                       group_name = names[f]), call)
  }
  design
}

# The fit's description of each factor: its name, the labels of its levels with data and
# their indices among the factor's levels (the built model's `groups`).
factor_descriptions <- function(design, grouping, built) {
  lapply(seq_along(grouping), function(f) {
    list(name = grouping[[f]]$name, levels = group_labels(grouping[[f]], built$groups[[f]]),
         index = built$groups[[f]])
  })
}

# The grouping factor of each random-effects term (lme4's names(cnms)).
term_groups <- function(fit) fit$term_groups %||% rep(fit$group_name, length(fit$random_names))

# Σ̂ over all random-effects columns from the core's: one factor's q x q matrix, or with
# several factors their q_f x q_f matrices one after another, placed block-diagonally.
random_covariance <- function(fit, values) {
  names <- unlist(fit$random_names)
  q <- length(names)
  if (!has_several_factors(fit)) return(matrix(values, q, dimnames = list(names, names)))
  groups <- rep(term_groups(fit), lengths(fit$random_names))
  sigma <- matrix(0, q, q, dimnames = list(names, names))
  at <- 0L
  for (g in unique(groups)) {
    columns <- which(groups == g)
    k <- length(columns)
    sigma[columns, columns] <- matrix(values[at + seq_len(k * k)], k)
    at <- at + k * k
  }
  sigma
}

# The Rust model of a fit with several factors rebuilt from its plain fields (see
# restore_model()): from its statistics, or for a fit from rows (which keeps none) by the
# pass over them, checked to be the rows the fit was made from.
restore_factors_model <- function(object, reml, theta) {
  if (is.null(object$stats)) {
    built <- build_rows(object, lmm_rows(object, "Rebuilding the fit's model"))
    if (is_core_error(built)) return(built)
    return(rs_lmm_fit_at(built$model, reml, theta))
  }
  s <- object$stats
  spec <- object$spec
  rs_lmm_restore_factors(s$pilot, s$n, s$means, s$comoments, s$pooled, s$group_variables,
                         spec$response, spec$fixed,
                         spec$factors$cell_levels, spec$factors$n_levels,
                         spec$factors$random, spec$factors$blocks, object$variable_names,
                         reml, theta, object$control$threads %||% thread_count(NULL))
}

# The columns that key the cells of statistics tables and database tables: the grouping
# variables of all the factors (the parts of `a:b`, and so of `a/b`), which must be names of
# columns. A cell is one combination of their values.
cell_columns <- function(parsed, call) {
  parts <- unlist(lapply(parsed$factors, function(f) interaction_parts(f$expr)))
  computed <- Filter(Negate(is.name), parts)
  if (length(computed) > 0L) {
    hnm_abort(sprintf(paste("the grouping variable `%s` must be a column for a fit from",
                            "statistics or a database table; compute it as a column first."),
                      deparse1(computed[[1L]])), call = call, class = "hnm_error_formula")
  }
  unique(vapply(parts, as.character, ""))
}

# The cells' values of the cell columns `columns`, one row per cell with data (`index`, among
# the rows' `cells` of lmm_build_factors()), read from the first row of each cell.
cell_frame <- function(columns, data, env, cells, index, call) {
  first <- match(index, cells$cell)
  frame <- lapply(columns, function(v) {
    model_variable(as.name(v), data, env, "grouping variable", call)[first]
  })
  as.data.frame(stats::setNames(frame, columns), stringsAsFactors = FALSE, optional = TRUE)
}

# Statistics with one row per cell (`statistics$cells`, the cell columns' values) prepared as
# the rows' pass prepares them: each factor's levels from the cells' values (labelled and
# ordered as from the rows), the cells in the rows' order, and the factors and terms in lme4's
# order (`statistics$random` is given for the terms of all_random_terms(parsed)). Returns the
# reordered statistics and `parsed`, and each factor's `grouping` and `cell_levels`.
factors_statistics <- function(statistics, parsed, call) {
  grouping <- grouping_factors(parsed, statistics$cells, parsed$env %||% globalenv(), call)
  cells <- cell_codes(grouping)
  if (anyNA(cells$cell) || cells$n_cells != nrow(statistics$cells)) {
    problem <- if (anyNA(cells$cell)) "a missing value" else "the same combination twice"
    hnm_abort(sprintf(paste("the cells of the statistics (the combinations of %s) must each",
                            "appear once without a missing value, but they have %s."),
                      paste0("`", names(statistics$cells), "`", collapse = ", "), problem),
              call = call, class = "hnm_error_invalid_statistics")
  }
  rows <- order(cells$cell)
  statistics$n <- statistics$n[rows]
  statistics$means <- statistics$means[rows, , drop = FALSE]
  statistics$comoments <- statistics$comoments[rows, , drop = FALSE]
  statistics$cells <- statistics$cells[rows, , drop = FALSE]
  ordered <- lme4_factor_order(parsed, grouping, cells$levels, cells$n_levels)
  for (field in c("random", "random_assign", "random_terms")) {
    if (!is.null(statistics[[field]])) statistics[[field]] <- statistics[[field]][ordered$terms]
  }
  list(statistics = statistics, parsed = ordered$parsed, grouping = ordered$grouping,
       cell_levels = ordered$cell_levels)
}

# Fitted values X b + sum over factors of Z_f b_f of the complete rows `ok` of a fit with
# several factors (the population values X b when `population`), from the rows' cells: a
# cell's level of each factor picks that factor's effects, the conditional modes or, when
# given, `effects` (a list by factor of levels x columns matrices, as ranef()'s).
several_fitted <- function(object, rows, ok, population, selected = NULL, effects = NULL) {
  variables <- lapply(flat_variables(rows$variables), `[`, ok)
  n <- sum(ok)
  value <- drop(design_columns(object$spec$fixed[object$kept], variables, n) %*% object$beta)
  if (!population) {
    cells <- rows$codes[ok]
    levels <- lapply(seq_along(object$factors), function(f) {
      match(object$spec$factors$cell_levels[[f]][cells], object$factors[[f]]$index)
    })
    value <- value + random_part(object, variables, levels, selected, effects)
  }
  value + if (is.null(rows$offset)) 0 else rows$offset[ok]
}

# The random part, the sum over the factors of Z_f b_f, of rows with the model's `variables`
# and, for each factor, the index of each row's level among the fit's (NA: no effect), with
# the effects `effects` (by default the conditional modes); only the random-effects columns
# `selected` (random_selection()'s; NULL: all) count.
random_part <- function(object, variables, levels, selected = NULL, effects = NULL) {
  n <- length(levels[[1L]])
  effects <- effects %||% ranef(object, condVar = FALSE)
  value <- numeric(n)
  column_groups <- rep(term_groups(object), lengths(object$random_names))
  for (f in seq_along(object$factors)) {
    # Unnamed: the levels' names would become the predictions' (and cost a pointer a row).
    b <- unname(as.matrix(effects[[f]]))[levels[[f]], , drop = FALSE]
    b[is.na(levels[[f]]), ] <- 0
    if (!is.null(selected)) b[, !selected[column_groups == object$factors[[f]]$name]] <- 0
    value <- value + rowSums(design_columns(object$spec$factors$random[[f]], variables, n) * b)
  }
  value
}

# predict() of a fit with several factors, for the fit's rows or `newdata`: conditional on the
# random effects `re_form` selects (random_selection()), a level not in the fit (or a missing
# one) predicted at the population level when `allow_new_levels`. Returns the predictions
# `fit`, whether they are `population` ones and the `rows`' variables they were computed from
# (with the random part's when `read_random`), for predict()'s standard errors and intervals.
predict_several <- function(object, newdata, re_form, allow_new_levels, uncertainty,
                            read_random, call) {
  selected <- random_selection(re_form, random_terms_of(object, call), term_groups(object), call)
  population <- !any(selected)
  if (uncertainty) check_prediction_uncertainty(object, selected, call)
  if (is.null(newdata)) {
    rows <- lmm_rows(object, "fitted values")
    ok <- complete_lmm_rows(object, rows)
    return(list(fit = several_fitted(object, rows, ok, population, selected),
                population = population,
                rows = list(variables = lapply(flat_variables(rows$variables), `[`, ok),
                            levels = row_levels(object, rows, ok))))
  }
  if (!is.data.frame(newdata)) hnm_abort("`newdata` must be a data frame.", call = call)
  parsed <- object$parsed
  terms <- list(fixed = object$terms,
                random = object$random_terms %||% vector("list", length(parsed$random)))
  # The factors with a random-effects column re.form keeps (all, for standard errors and
  # intervals): only theirs are read, as lme4 reads only re.form's terms from `newdata`.
  column_groups <- rep(term_groups(object), lengths(object$random_names))
  names <- vapply(object$factors, `[[`, "", "name")
  needed <- if (read_random) rep(TRUE, length(names)) else names %in% column_groups[selected]
  read <- parsed
  read$factors <- parsed$factors[needed]
  read$random <- parsed$random[term_groups(object) %in% names[needed]]
  terms$random <- terms$random[term_groups(object) %in% names[needed]]
  design <- model_design(read, newdata, call, xlev = object$xlev, new_data = TRUE, terms = terms,
                         groups = FALSE, contrasts = object$contrasts)
  used <- c(object$spec$fixed, unlist(object$spec$factors$random[needed]))
  variables <- align_variables(object, design, newdata, used, call)
  value <- drop(design_columns(object$spec$fixed[object$kept], variables, nrow(newdata)) %*%
                  object$beta)
  if (!population) {
    env <- parsed$env %||% globalenv()
    grouping <- grouping_factors(read, newdata, env, call,
                                 lapply(object$factors[needed], `[[`, "levels"))
    # A factor not read has no level in any row: its effects are left out.
    codes <- rep(list(rep(NA_integer_, nrow(newdata))), length(names))
    codes[needed] <- lapply(grouping, function(g) as.integer(g$codes))
    for (f in which(needed)) {
      if (anyNA(codes[[f]]) && !isTRUE(allow_new_levels)) {
        # The unseen rows' labels as the data give them (NA for a missing group).
        given <- grouping_factors(read, newdata, env, call)[[match(f, which(needed))]]
        abort_new_levels(names[f], given_labels(given)[is.na(codes[[f]])], call)
      }
    }
    value <- value + random_part(object, variables, codes, selected)
  }
  list(fit = value + if (is.null(design$offset)) 0 else design$offset, population = population,
       rows = list(variables = variables, levels = if (!population) codes))
}

# simulate() of a fit with several factors: every factor's effects drawn anew from the fitted
# covariances, b_f = sigma Lambda_f u_f (`re.form = NA`, lme4's default), or all at their
# conditional modes (`conditional`: use.u = TRUE or re.form = NULL), then the errors, in
# lme4's order (all the effects' normals, then the errors'; the normals of a factor's terms
# term by term, as lme4's columns of Z, except where lme4 interleaves the terms of factors with
# equally many levels, as θ's order). Returns the simulated responses of the complete rows,
# one column per simulation.
simulate_several <- function(object, nsim, conditional) {
  rows <- lmm_rows(object, "simulate()")
  ok <- complete_lmm_rows(object, rows)
  n <- sum(ok)
  sims <- if (conditional) {
    rep(list(lmm_fitted(object)), nsim)
  } else {
    lambda <- relative_factor(object)
    sizes <- lengths(object$spec$factors$random)
    levels <- lengths(lapply(object$factors, `[[`, "index"))
    term_sizes <- split(lengths(object$random_names),
                        factor(term_groups(object), vapply(object$factors, `[[`, "", "name")))
    u <- matrix(stats::rnorm(sum(sizes * levels) * nsim), ncol = nsim)
    lapply(seq_len(nsim), function(s) {
      at <- 0L
      effects <- lapply(seq_along(sizes), function(f) {
        columns <- sum(sizes[seq_len(f - 1L)]) + seq_len(sizes[f])
        # The factor's columns (rows here) level by level, each term's normals in turn.
        draws <- do.call(rbind, lapply(term_sizes[[f]], function(size) {
          at <<- at + size * levels[f]
          matrix(u[at - size * levels[f] + seq_len(size * levels[f]), s], size)
        }))
        t(object$sigma * lambda[columns, columns, drop = FALSE] %*% draws)
      })
      several_fitted(object, rows, ok, FALSE, effects = effects)
    })
  }
  do.call(cbind, sims) + object$sigma * matrix(stats::rnorm(n * nsim), ncol = nsim)
}
