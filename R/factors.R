# Several grouping factors, nested or crossed: hnm_fit()'s model step when the formula has
# more than one grouping factor, and what the fit object holds for them.
#
# The rows are keyed by their cell, the combination of the factors' levels they have; one pass
# reduces them to the cells' statistics, from which the Rust model forms each level's blocks
# and the blocks that couple the factors (src/rust/hnm-core/src/model/lmm/factors/). The
# factors are ordered as lme4 orders them (by decreasing number of levels), which is also the
# model's order of elimination: the first factor's levels stay block-diagonal.

# TRUE for a parsed formula or a fit with several grouping factors.
has_several_factors <- function(x) length(x$factors) > 1L

# The model of a formula with several grouping factors: the factors' codes and lme4's order,
# the design's columns with the random-effects terms in that order, the rows' cells, and the
# Rust model from one pass keyed by cell. Returns the design (with `factors`, the fit's
# description of each factor, and the plain fields the model is rebuilt from), the built
# model, and the parsed formula in lme4's order.
lmm_build_factors <- function(parsed, data, call, offset = NULL, contrasts = NULL,
                              threads = thread_count(call)) {
  frame <- fit_data(data, call)
  grouping <- grouping_factors(parsed, frame, parsed$env %||% globalenv(), call)
  cells <- cell_codes(grouping)
  # lme4's order: the factors as its flist, each factor's terms in its order of terms. (When
  # lme4 interleaves the terms of factors with equally many levels, theta stays grouped by
  # factor here, with lme4's names.)
  order <- factor_order(parsed, cells$n_levels)
  parsed$factors <- lapply(order$factors, function(f) {
    factor <- parsed$factors[[f]]
    factor$random <- factor$random[order$terms$term[order$terms$factor == f]]
    factor
  })
  grouping <- grouping[order$factors]
  cells$levels <- cells$levels[order$factors]
  parsed$random <- unlist(lapply(parsed$factors, `[[`, "random"), recursive = FALSE)
  design <- model_design(parsed, data, call, groups = FALSE, offset = offset,
                         contrasts = contrasts)
  names <- vapply(parsed$factors, `[[`, "", "name")
  term_factor <- rep(seq_along(parsed$factors), lengths(lapply(parsed$factors, `[[`, "random")))
  column_factor <- rep(term_factor, design$blocks)
  design <- c(design[setdiff(names(design), c("codes", "code_offset", "group_name"))], list(
    codes = cells$cell, code_offset = 0L, group_name = names[1L],
    term_groups = names[term_factor],
    factor_spec = list(cell_levels = cells$levels,
                       n_levels = vapply(grouping, function(g) as.integer(g$n_groups), 0L),
                       random = unname(split(design$random, factor(column_factor, seq_along(names)))),
                       blocks = unname(split(design$blocks, factor(term_factor, seq_along(names)))))))
  check_lengths(design, call)
  for (f in seq_along(names)) {
    check_distinct_random_columns(list(random = design$factor_spec$random[[f]],
                                       random_names = design$random_names[term_factor == f],
                                       group_name = names[f]), call)
  }
  spec <- design$factor_spec
  built <- rs_lmm_build_factors(design$variables, cells$cell, cells$n_cells, design$response,
                                design$fixed, spec$cell_levels, spec$n_levels, spec$random,
                                spec$blocks, design$names, threads)
  built <- rust_result(explain_build_error(built, design, call), call = call)
  design$factors <- lapply(seq_along(names), function(f) {
    labels <- group_labels(grouping[[f]], built$groups[[f]])
    list(name = names[f], levels = labels, index = built$groups[[f]])
  })
  list(design = design, built = built, parsed = parsed)
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
# restore_model()).
restore_factors_model <- function(object, reml, theta) {
  s <- object$stats
  spec <- object$spec
  rs_lmm_restore_factors(s$pilot, s$n, s$means, s$comoments, spec$response, spec$fixed,
                         spec$factors$cell_levels, spec$factors$n_levels,
                         spec$factors$random, spec$factors$blocks, object$variable_names,
                         reml, theta)
}

# Group statistics and database tables hold one grouping factor's groups: several are refused.
check_statistics_one_factor <- function(parsed, formula, call) {
  if (has_several_factors(parsed)) {
    hnm_abort(sprintf(paste("`%s` has several grouping factors; fits from group statistics and",
                            "database tables are not available yet for them (fit the rows)."),
                      deparse1(formula)), call = call, class = "hnm_error_unsupported")
  }
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
    b <- as.matrix(effects[[f]])[levels[[f]], , drop = FALSE]
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
  read <- parsed
  read_random <- read_random || !population
  if (!read_random) read$random <- list()
  design <- model_design(read, newdata, call, xlev = object$xlev, new_data = TRUE, terms = terms,
                         groups = FALSE, contrasts = object$contrasts)
  used <- c(object$spec$fixed, if (read_random) object$spec$random)
  variables <- align_variables(object, design, nrow(newdata), used, call)
  value <- drop(design_columns(object$spec$fixed[object$kept], variables, nrow(newdata)) %*%
                  object$beta)
  if (!population) {
    grouping <- grouping_factors(parsed, newdata, parsed$env %||% globalenv(), call,
                                 lapply(object$factors, `[[`, "levels"))
    codes <- lapply(grouping, function(g) as.integer(g$codes))
    column_groups <- rep(term_groups(object), lengths(object$random_names))
    for (f in seq_along(codes)) {
      used <- any(selected[column_groups == object$factors[[f]]$name])
      if (used && anyNA(codes[[f]]) && !isTRUE(allow_new_levels)) {
        hnm_abort(sprintf(paste("`newdata` has level(s) of `%s` not in the fit. Use",
                                "`allow.new.levels = TRUE` to predict them at the population",
                                "level."), object$factors[[f]]$name),
                  call = call, class = "hnm_error_new_levels")
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
# lme4's order (all the effects' normals, then the errors'). Returns the simulated responses
# of the complete rows, one column per simulation.
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
    u <- matrix(stats::rnorm(sum(sizes * levels) * nsim), ncol = nsim)
    lapply(seq_len(nsim), function(s) {
      at <- 0L
      effects <- lapply(seq_along(sizes), function(f) {
        columns <- sum(sizes[seq_len(f - 1L)]) + seq_len(sizes[f])
        draws <- matrix(u[at + seq_len(sizes[f] * levels[f]), s], sizes[f])
        at <<- at + sizes[f] * levels[f]
        t(object$sigma * lambda[columns, columns, drop = FALSE] %*% draws)
      })
      several_fitted(object, rows, ok, FALSE, effects = effects)
    })
  }
  do.call(cbind, sims) + object$sigma * matrix(stats::rnorm(n * nsim), ncol = nsim)
}
