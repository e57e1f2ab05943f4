# Fitting from per-group statistics instead of rows: an hnm_stats table, a data frame of
# statistics declared with `stats =`, or a database table (R/sql.R). model_statistics()
# routes these here; the fits they give have no rows (y = NULL, g = NULL).

#' Per-group sufficient statistics
#'
#' The model needs only per-group statistics of its variables, so the one pass over the rows
#' can run wherever they live. `hnm_stats()` computes them (in Rust for a data frame; by one
#' SQL `GROUP BY` inside the database for a `dbplyr` table, see [hnm_fit()]), and
#' `hnm_fit()` fits the model from such a table exactly as from the rows. Rows with `NA` in
#' a variable of the model or the group are dropped, as `hnm_fit()` drops them.
#'
#' For the one-way model `y ~ 1 | g` the statistics are, per group \eqn{j}, the size
#' \eqn{n_j}, the mean \eqn{\bar y_j} and the within-group sum of squares
#' \eqn{\sum_i (y_{ij} - \bar y_j)^2}.
#'
#' For the general model (covariates, random slopes: `y ~ x + f + (x | g)`) they are, per
#' group, \eqn{n_j}, the means \eqn{\bar v_{ja}} of the model's variables \eqn{v_a} (the
#' response and the columns of the fixed-effects and random-effects designs, a factor's
#' indicator or contrast columns and interactions included, named as [model.matrix()] names
#' them) and their within-group centred co-moments
#' \eqn{W_j[a, b] = \sum_i (v_{ia} - \bar v_{ja})(v_{ib} - \bar v_{jb})}: every
#' cross-product the likelihood needs is \eqn{W_j[a, b] + n_j \bar v_{ja} \bar v_{jb}}.
#' The table has one row per group and the columns `group`, `n`, `mean_<a>` for each
#' variable, `ss_<a>` (\eqn{W_j[a, a]}) and `sp_<a>_<b>` (\eqn{W_j[a, b]}, `a` before `b` in
#' the order of the means), such as `mean_y`, `mean_x`, `ss_y`, `sp_y_x`, `ss_x`.
#'
#' With several grouping factors, nested (`(1 | batch/cask)`, `(1 | batch) + (1 | batch:cask)`)
#' or crossed (`(1 | plate) + (1 | sample)`), the rows of the table are the *cells*, the
#' combinations of the grouping columns' values that occur (for a nested model its innermost
#' groups), with one column per grouping variable (named as in the formula, such as `batch`
#' and `cask`) in place of `group`, and `n`, the means and the co-moments per cell as above:
#' the model needs nothing else, since every factor's level of a row is a function of its
#' cell. The grouping variables must then be columns of `data`, not expressions. Such a table
#' fits any model with the same grouping columns, and a table computed elsewhere is declared
#' with `stats = TRUE` (`stats = c(n = "size")` renames `n`).
#'
#' `hnm_fit()` fits any model whose terms are variables of the table from it: the formula
#' the table was made for, or a smaller one (`y ~ x + (1 | g)` from the table of
#' `y ~ x + z + (x | g)`). A table computed elsewhere (by your own SQL, say) needs columns
#' so named; declare it with `stats = TRUE` (or `stats = c(group = "school", n = "size")`
#' for other names of those two columns) and write a factor's columns as variables of the
#' formula (`y ~ x + fb + fc + (1 | g)`), since the table alone does not say how a factor
#' was coded. An `hnm_stats` table records the coding, the group labels and `offset()`
#' terms of its formula, and keeps the means about a pilot at full precision as attributes,
#' so a fit from an unmodified table equals the fit from the rows even when a variable has
#' a large offset (such as \eqn{10^9} plus noise).
#'
#' @param formula The model, as for [hnm_fit()].
#' @param data A data frame of rows, or a database table (`dplyr::tbl(con, "name")`).
#' @return A data frame of class `hnm_stats` with one row per group: for the one-way model
#'   the columns `group` (the group label), `n`, `mean` and `ss` (the within-group sum of
#'   squares about the group mean); for the general model `group`, `n` and the means and
#'   co-moments described above; with several grouping factors one row per cell, sorted by
#'   the grouping columns, which replace `group`.
#' @seealso [hnm_fit()] with `data` an `hnm_stats` table, or a data frame of statistics
#'   declared with its `stats` argument.
#' @examples
#' s <- hnm_stats(y ~ 1 | g, wheat)
#' s
#' fit <- hnm_fit(y ~ 1 | g, data = s)
#' all.equal(fixef(fit), fixef(hnm_fit(y ~ 1 | g, wheat)))
#' # The general model:
#' s2 <- hnm_stats(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' names(s2)
#' fit2 <- hnm_fit(Reaction ~ Days + (Days | Subject), data = s2)
#' all.equal(fixef(fit2), fixef(hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)))
#' # Several grouping factors: one row per cell, here per (plate, sample) pair.
#' s3 <- hnm_stats(diameter ~ 1 + (1 | plate) + (1 | sample), lme4::Penicillin)
#' s3
#' hnm_fit(diameter ~ 1 + (1 | plate) + (1 | sample), data = s3)
#' @export
hnm_stats <- function(formula, data) {
  call <- match.call()
  parsed <- statistics_formula(formula, call)
  if (!parsed$one_way) return(lmm_stats_table(lmm_statistics(parsed, data, NULL, call), parsed))
  model <- if (takes_statistics(data, NULL)) {
    statistics_input(formula, data, NULL, call)
  } else {
    memory_one_way_statistics(parsed, data, call)
  }
  s <- model$stats
  structure(stats_table(s), class = c("hnm_stats", "data.frame"),
            response = model$response_name, group_name = model$group_name,
            n_dropped = s$n_dropped, center = s$center, centered_mean = s$mean)
}

# The statistics of the general model from rows, a statistics table or a database table.
lmm_statistics <- function(parsed, data, stats, call, run = collect_rows) {
  if (missing(data)) data <- NULL
  if (is.null(data) && !is.null(stats)) {
    hnm_abort("`stats` declares `data` a table of group statistics, but `data` is missing.",
              call = call)
  }
  if (inherits(data, "tbl_lazy")) {
    if (!is.null(stats)) {
      hnm_abort("`stats` is for data frames of group statistics, not database tables.", call = call)
    }
    return(sql_lmm_statistics(data, parsed, call, run))
  }
  if (takes_statistics(data, stats)) return(lmm_table_statistics(parsed, data, stats, call))
  memory_lmm_statistics(parsed, data, call)
}

# hnm_fit() for statistics tables and database tables, of the one-way or the general model;
# `run` executes the database's queries (see R/sql.R).
statistics_fit <- function(formula, data, stats, method, call, run = collect_rows, start = NULL,
                           control = NULL, verbose = FALSE) {
  parsed <- statistics_formula(formula, call)
  if (method == "ANOVA" && !parsed$one_way) {
    hnm_abort(paste("method = \"ANOVA\" (the method of moments) fits the one-way model",
                    "`y ~ 1 | g` only; fit statistics of models with covariates or random slopes",
                    "by method = \"ML\" or \"REML\"."), call = call, class = "hnm_error_argument")
  }
  statistics <- if (parsed$one_way) {
    one_way_model_statistics(statistics_input(formula, data, stats, call, run), parsed)
  } else {
    lmm_statistics(parsed, data, stats, call, run)
  }
  fit <- lmm_fit_statistics(statistics, parsed, formula, method, call, start, control, verbose)
  fit$n_dropped <- statistics$dropped
  fit
}

# The parsed formula of a fit from statistics; with several grouping factors, `random` holds
# the terms of all of them, factor by factor, the order of the statistics' `random`.
statistics_formula <- function(formula, call) {
  parsed <- parse_mixed_formula(formula, call, several = TRUE)
  if (has_several_factors(parsed)) parsed$random <- all_random_terms(parsed)
  parsed
}

# The one-way statistics (n_j, mean_j, SSW_j of a table or a database) as the model's
# statistics of its one variable, the response, with the one-way design.
one_way_model_statistics <- function(model, parsed) {
  s <- model$stats
  list(names = model$response_name, pilot = s$center, n = s$n, means = matrix(s$mean),
       comoments = matrix(s$ss), levels = s$group, fixed = "(Intercept)", fixed_assign = 0L,
       random = list("(Intercept)"), random_assign = list(0L),
       terms = stats::terms(stats::as.formula(call("~", parsed$response, 1),
                                              env = parsed$env %||% globalenv())),
       dropped = s$n_dropped)
}

# The one-way statistics of rows (n_j, mean_j about the centre, SSW_j, as statistics_input()
# gives them for tables): the pass's statistics of the model's one variable, the response.
memory_one_way_statistics <- function(parsed, data, call) {
  s <- memory_lmm_statistics(parsed, data, call)
  list(stats = list(group = s$levels, n = s$n, center = s$pilot, mean = s$means[, 1L],
                    ss = s$comoments[, 1L], n_dropped = row_count(s$dropped)),
       response_name = s$names[1L], group_name = parsed$group_name)
}

# The group statistics, as a data frame a user can read.
stats_table <- function(s) {
  data.frame(group = s$group, n = s$n, mean = s$center + s$mean, ss = s$ss,
             stringsAsFactors = FALSE)
}

#' @rdname hnm_stats
#' @param x An `hnm_stats` table.
#' @param n Number of groups printed.
#' @param ... Passed to `print.data.frame`.
#' @export
print.hnm_stats <- function(x, n = 10L, ...) {
  check_no_dots(list(...), sys.call(), allowed = print_arguments)
  dropped <- attr(x, "n_dropped") %||% 0L
  # With several grouping factors a row is a cell, a combination of their levels.
  unit <- if (is.null(attr(x, "cells"))) "groups" else "cells"
  cat(sprintf("Group statistics of `%s` by `%s`: %d %s, %.0f observations%s\n",
              attr(x, "response") %||% "y", attr(x, "group_name") %||% "group", nrow(x), unit,
              sum(x$n), if (dropped > 0) sprintf(" (%d rows with NA dropped)", dropped) else ""))
  print.data.frame(x[seq_len(min(n, nrow(x))), , drop = FALSE], ...)
  if (nrow(x) > n) cat(sprintf("# ... %d more %s\n", nrow(x) - n, unit))
  invisible(x)
}

#' @rdname hnm_stats
#' @param i,j,drop Rows and columns, as for a data frame. A subset of the rows (`x[i, ]`,
#'   `subset(x, n > 5)`) is the statistics table of those groups, fitted as their rows would
#'   be; a subset of the columns is a plain data frame.
#' @export
`[.hnm_stats` <- function(x, i, j, drop) {
  out <- NextMethod()
  if (!is.data.frame(out)) return(out)
  if (!identical(names(out), names(x))) return(structure(out, class = "data.frame"))
  # The rows kept, by their row names (a data frame's `[` keeps the original ones): what the
  # table records per group (the means at full precision) is subset with them. A repeated
  # row has a new name and no record; the fit then uses the table's columns, as for any
  # edited table.
  rows <- match(rownames(out), rownames(x))
  kept <- attributes(x)[setdiff(names(attributes(x)), c("names", "row.names", "class"))]
  if (!is.null(kept$centered_mean)) kept$centered_mean <- kept$centered_mean[rows]
  if (!is.null(kept$centered_means)) kept$centered_means <- kept$centered_means[rows, , drop = FALSE]
  attributes(out) <- c(attributes(out)[c("names", "row.names", "class")], kept)
  out
}

# TRUE when `data` holds group statistics or is a database table rather than rows.
takes_statistics <- function(data, stats) {
  !is.null(stats) || (!missing(data) && (inherits(data, "hnm_stats") || inherits(data, "tbl_lazy")))
}

# The one-way statistics of statistics tables and database tables.
statistics_input <- function(formula, data, stats, call, run = collect_rows) {
  parsed <- parse_hnm_formula(formula, call = call)
  if (missing(data) || is.null(data)) {
    hnm_abort("`stats` declares `data` a table of group statistics, but `data` is missing.",
              call = call)
  }
  names <- list(response_name = deparse1(parsed$response), group_name = deparse1(parsed$group))
  group_stats <- if (inherits(data, "tbl_lazy")) {
    if (!is.null(stats)) {
      hnm_abort("`stats` is for data frames of group statistics, not database tables.", call = call)
    }
    sql_statistics(data, parsed, environment(formula) %||% globalenv(), call, run)
  } else {
    data <- one_way_view(data, names$response_name, call)
    check_recorded_names(data, names, call)
    table_statistics(data, stats_columns(stats, call), call)
  }
  c(list(stats = group_stats, y = NULL, g = NULL), names)
}

# An hnm_stats table records the response and group it summarises; a formula naming
# others would fit the wrong statistics.
check_recorded_names <- function(data, names, call) {
  recorded <- c(attr(data, "response"), attr(data, "group_name"))
  asked <- c(names$response_name, names$group_name)
  if (inherits(data, "hnm_stats") && length(recorded) == 2L && !identical(recorded, asked)) {
    hnm_abort(sprintf(paste("`data` holds statistics of `%s` by `%s`, but the formula asks",
                            "for `%s` by `%s`."), recorded[1], recorded[2], asked[1], asked[2]),
              call = call)
  }
}

# Column names of the roles group, n, mean, ss: the defaults, overridden by `stats`.
stats_columns <- function(stats, call) {
  columns <- c(group = "group", n = "n", mean = "mean", ss = "ss")
  if (is.null(stats) || isTRUE(stats)) return(columns)
  if (!is.character(stats) || is.null(names(stats)) || anyNA(stats) ||
      !all(names(stats) %in% names(columns)) || anyDuplicated(names(stats))) {
    hnm_abort(paste("`stats` must be TRUE or a named character vector giving the columns of",
                    "`data` that hold the statistics, such as",
                    "c(group = \"school\", n = \"size\", mean = \"ybar\", ss = \"ssw\")."),
              call = call)
  }
  columns[names(stats)] <- stats
  columns
}

# The statistics list of model_statistics() from a table with one row per group.
table_statistics <- function(data, columns, call) {
  if (!is.data.frame(data)) {
    hnm_abort("`data` must be a data frame of group statistics when `stats` is given.", call = call)
  }
  missing_columns <- setdiff(columns, names(data))
  if (length(missing_columns) > 0L) {
    hnm_abort(sprintf("`data` has no column `%s`; name the columns of the statistics with `stats`.",
                      missing_columns[1L]), call = call)
  }
  if (nrow(data) == 0L) hnm_abort("`data` has no groups: the statistics table is empty.", call = call)
  group <- data[[columns[["group"]]]]
  n <- data[[columns[["n"]]]]
  mean <- data[[columns[["mean"]]]]
  ss <- data[[columns[["ss"]]]]
  check_statistic(n, columns[["n"]], function(v) v >= 1 & v == round(v), "positive whole numbers", call)
  check_statistic(mean, columns[["mean"]], function(v) rep(TRUE, length(v)), "finite numbers", call)
  check_statistic(ss, columns[["ss"]], function(v) v >= 0, "finite numbers >= 0", call)
  check_group_labels(group, columns[["group"]], call)
  centered <- centered_means(data, n, mean)
  list(group = as.character(group), center = centered$center, n = as.double(n),
       mean = centered$mean, ss = as.double(ss), n_dropped = row_count(attr(data, "n_dropped") %||% 0L),
       level_index = seq_along(n))
}

# A statistics column must be numeric, finite and pass `valid`; the error names it.
check_statistic <- function(v, column, valid, what, call) {
  bad <- if (!is.numeric(v)) 1L else which(!is.finite(v) | !valid(v))[1L]
  if (!is.na(bad)) {
    hnm_abort(sprintf("column `%s` of `data` must hold %s; row %d holds %s.", column, what, bad,
                      format(v[bad])), call = call, class = "hnm_error_invalid_statistics")
  }
}

check_group_labels <- function(group, column, call) {
  if (anyNA(group) || anyDuplicated(group)) {
    problem <- if (anyNA(group)) "an NA label" else sprintf("`%s` twice", group[anyDuplicated(group)])
    hnm_abort(sprintf("column `%s` of `data` must name each group once, but it has %s.",
                      column, problem), call = call, class = "hnm_error_invalid_statistics")
  }
}

# Means relative to a common centre. An unmodified hnm_stats table carries them at full
# precision; otherwise the centre is the size-weighted grand mean, subtracted once.
centered_means <- function(data, n, mean) {
  center <- attr(data, "center")
  recorded <- attr(data, "centered_mean")
  if (inherits(data, "hnm_stats") && length(recorded) == length(mean) &&
      identical(center + recorded, as.double(mean))) {
    return(list(center = center, mean = recorded))
  }
  center <- sum(n * mean) / sum(n)
  list(center = center, mean = mean - center)
}

# Statistics of the general model (covariates, random slopes): per group n_j, the means of the
# model's variables and their within-group centred co-moments, computed from rows in Rust,
# by a database (R/sql.R) or elsewhere, as a table hnm_fit() reads back.
#
# Inside the package they travel as the list lmm_fit_statistics() takes (R/model.R), plus
# `fixed_assign` (the term of each column of X, as model.matrix()'s "assign"), `dropped` (rows
# with a missing value), `offsets` (the offset() terms subtracted from the
# response) and `parts`, what each part of the formula (the fixed effects, each random term)
# made of its terms: a later fit of the same part from the table needs the coding of its
# factors, which the table's variables alone do not give.

# The statistics of the rows of a data frame: the in-memory fit's design (model_design()) and
# its Rust pass (rs_lmm_build, or rs_lmm_build_factors keyed by cell), groups (cells) without
# rows left out.
memory_lmm_statistics <- function(parsed, data, call) {
  several <- has_several_factors(parsed)
  keys <- if (several) cell_columns(parsed, call)
  model <- if (several) {
    lmm_build_factors(parsed, data, call, full = TRUE)
  } else {
    lmm_build(parsed, data, call)
  }
  parsed <- model$parsed %||% parsed
  design <- model$design
  built <- model$built
  k <- length(design$names)
  s <- built$stats
  keep <- s$n > 0
  list(names = design$names, pilot = s$pilot, n = s$n[keep],
       means = matrix(s$means, ncol = k, byrow = TRUE)[keep, , drop = FALSE],
       comoments = matrix(s$comoments, ncol = k * (k + 1) / 2, byrow = TRUE)[keep, , drop = FALSE],
       levels = if (!several) group_labels(design, which(keep)),
       cells = if (several) cell_frame(keys, data, parsed$env %||% globalenv(), model$cells,
                                       which(keep), call),
       fixed = design$fixed_names,
       fixed_assign = design$fixed_assign,
       random = design$random_names,
       xlev = design$xlev, contrasts = design$contrasts, terms = design$terms,
       dropped = built$dropped, offsets = formula_offsets(parsed, call),
       parts = part_layouts(parsed, design, call))
}

# The terms of one part of the formula (a right-hand side) without data: its labels, whether
# it has an intercept, and its offset() variables.
part_terms <- function(rhs, env, call) {
  t <- tryCatch(stats::terms(stats::as.formula(call("~", rhs), env = env %||% globalenv())),
                error = function(e) {
    hnm_abort(sprintf("invalid model term `%s`: %s", deparse1(rhs), conditionMessage(e)),
              call = call, class = "hnm_error_formula")
  })
  variables <- as.list(attr(t, "variables"))[-1L]
  list(terms = t, labels = attr(t, "term.labels"), intercept = attr(t, "intercept") == 1L,
       offsets = vapply(variables[attr(t, "offset")], deparse1, ""))
}

# The offset() terms of the fixed part (the in-memory fit subtracts them from the response).
formula_offsets <- function(parsed, call) part_terms(parsed$fixed, parsed$env, call)$offsets

# What each part made of its terms: labels, intercept, the design columns' names, the terms
# they code (`assign`) and, for a random part, the terms with their predvars (new data are
# evaluated with the bases of the rows, see model_design()).
part_layouts <- function(parsed, design, call) {
  layout <- function(rhs, names, assign, terms = NULL) {
    t <- part_terms(rhs, parsed$env, call)
    list(labels = t$labels, intercept = t$intercept, names = names, assign = assign,
         terms = terms)
  }
  list(fixed = layout(parsed$fixed, design$fixed_names, design$fixed_assign),
       random = Map(layout, parsed$random, design$random_names, design$random_assign,
                    design$random_terms))
}

# Names of the table's statistics columns for variables `v`: the means, then the co-moments
# in packed order (each group's lower triangle by rows), W[a, a] as ss_<a> and W[a, b] (b < a)
# as sp_<b>_<a> (sp_<a>_<b> when `swap`).
mean_columns <- function(v) paste0("mean_", v)
comoment_columns <- function(v, swap = FALSE) {
  unlist(lapply(seq_along(v), function(a) {
    earlier <- v[seq_len(a - 1L)]
    c(if (a > 1L) if (swap) paste0("sp_", v[a], "_", earlier) else paste0("sp_", earlier, "_", v[a]),
      paste0("ss_", v[a]))
  }))
}

# The statistics as an hnm_stats table: one row per group with `group`, `n`, the means in the
# data's units and the co-moments. The attributes keep the means about the pilot at full
# precision and the design, so an unmodified table refits exactly as the rows.
lmm_stats_table <- function(statistics, parsed) {
  v <- statistics$names
  several <- has_several_factors(parsed)
  if (several) {
    # The cells sorted by their values, the same table whether a database or the rows gave it.
    rows <- do.call(order, unname(lapply(statistics$cells, function(x) as.integer(factor(x)))))
    statistics$cells <- statistics$cells[rows, , drop = FALSE]
    rownames(statistics$cells) <- NULL
    for (field in c("n", "means", "comoments")) {
      value <- statistics[[field]]
      statistics[[field]] <- if (is.matrix(value)) value[rows, , drop = FALSE] else value[rows]
    }
  }
  means <- sweep(statistics$means, 2L, statistics$pilot, `+`)
  columns <- c(if (several) as.list(statistics$cells) else list(group = statistics$levels),
               list(n = statistics$n),
               stats::setNames(lapply(seq_along(v), function(a) means[, a]), mean_columns(v)),
               stats::setNames(lapply(seq_len(ncol(statistics$comoments)),
                                      function(c) statistics$comoments[, c]), comoment_columns(v)))
  if (anyDuplicated(names(columns))) {
    hnm_abort(sprintf(paste("the model's variables %s make the statistics column `%s` twice;",
                            "rename them."), paste0("`", v, "`", collapse = ", "),
                      names(columns)[anyDuplicated(names(columns))]), call = NULL)
  }
  structure(as.data.frame(columns, check.names = FALSE, stringsAsFactors = FALSE),
            class = c("hnm_stats", "data.frame"),
            response = v[1L], group_name = group_description(parsed),
            cells = if (several) names(statistics$cells), n_dropped = statistics$dropped,
            variables = v, pilot = statistics$pilot, centered_means = statistics$means,
            design = statistics[c("fixed", "fixed_assign", "random", "xlev", "contrasts", "terms",
                                  "offsets", "parts")])
}

# The statistics of the formula's model from a table (an hnm_stats table of the general
# model, or a data frame of statistics computed elsewhere, `stats` naming its group and n
# columns): the design from the formula's terms, each a variable of the table unless the
# table records the coding of that part.
lmm_table_statistics <- function(parsed, data, stats, call) {
  if (!is.data.frame(data)) {
    hnm_abort("`data` must be a data frame of group statistics when `stats` is given.", call = call)
  }
  columns <- lmm_stats_columns(stats, parsed, call)
  # The columns that say which group (or with several grouping factors which cell) a row is;
  # the cells are checked by factors_statistics().
  several <- has_several_factors(parsed)
  keys <- if (several) cell_columns(parsed, call) else columns[["group"]]
  # A table that lost what hnm_stats() recorded (made by other functions than `[`, which keeps
  # it) is read as a plain data frame of statistics.
  if (inherits(data, "hnm_stats") && is.null(attr(data, "group_name"))) {
    data <- structure(data, class = "data.frame")
  }
  recorded <- if (inherits(data, "hnm_stats")) attr(data, "design")
  # With several factors the same cells serve any formula with the same grouping columns.
  grouped_alike <- identical(attr(data, "group_name"), group_description(parsed)) ||
    setequal(attr(data, "cells") %||% "", keys)
  if (inherits(data, "hnm_stats") && !grouped_alike) {
    hnm_abort(sprintf("`data` holds statistics by `%s`, but the formula groups by `%s`.",
                      attr(data, "group_name"), group_description(parsed)), call = call,
              class = "hnm_error_invalid_statistics")
  }
  if (inherits(data, "hnm_stats") && is.null(attr(data, "variables"))) {
    hnm_abort(sprintf(paste("`data` holds the statistics of the one-way model `%s ~ 1 | %s`",
                            "(each group's n, mean and ss), which cannot fit a model with",
                            "covariates or random slopes: compute that model's table with",
                            "hnm_stats() of its formula and the rows."),
                      attr(data, "response"), parsed$group_name), call = call,
              class = "hnm_error_unsupported_formula")
  }
  design <- table_design(parsed, function(v) mean_columns(v) %in% names(data), recorded, call)
  v <- unique(c(deparse1(parsed$response), setdiff(c(design$fixed, unlist(design$random)),
                                                   "(Intercept)")))
  wanted <- c(keys, columns[["n"]], mean_columns(v))
  absent <- setdiff(wanted, names(data))
  if (length(absent) > 0L) {
    hnm_abort(sprintf("`data` has no column `%s`; %s", absent[1L], paste(
      "a table of statistics of the general model has columns group, n, mean_<variable>,",
      "ss_<variable> and sp_<variable>_<variable>, and with several grouping factors a column",
      "per grouping variable instead of `group`, one row per cell (see ?hnm_stats).")),
      call = call)
  }
  if (nrow(data) == 0L) hnm_abort("`data` has no groups: the statistics table is empty.", call = call)
  n <- data[[columns[["n"]]]]
  check_statistic(n, columns[["n"]], function(x) x >= 1 & x == round(x), "positive whole numbers", call)
  if (!several) check_group_labels(data[[keys]], keys, call)
  labels <- do.call(paste, c(unname(as.list(data[keys])), sep = ":"))
  means <- vapply(mean_columns(v), function(column) {
    check_statistic(data[[column]], column, function(x) rep(TRUE, length(x)), "finite numbers", call)
    as.double(data[[column]])
  }, numeric(nrow(data)))
  centred <- lmm_centred_means(data, v, matrix(means, nrow(data)), n)
  comoments <- table_comoments(data, v, call)
  check_positive_semidefinite(comoments, v, matrix(means, nrow(data)), n, labels, call)
  c(list(names = v, pilot = centred$pilot, n = as.double(n), means = centred$means,
         comoments = comoments, levels = if (!several) labels,
         cells = if (several) as.data.frame(as.list(data[keys]), optional = TRUE,
                                            stringsAsFactors = FALSE),
         dropped = as.double(attr(data, "n_dropped") %||% 0)), design)
}

# The group and n columns of a general table: `stats` may rename them (TRUE keeps both). With
# several grouping factors the cells are keyed by the grouping variables' own columns.
lmm_stats_columns <- function(stats, parsed, call) {
  if (is.character(stats) && !is.null(names(stats)) && any(names(stats) %in% c("mean", "ss"))) {
    hnm_abort(paste("`stats` names the `group` and `n` columns of a table of the general",
                    "model; its other columns are named by the variables: mean_<variable>,",
                    "ss_<variable> and sp_<variable>_<variable> (see ?hnm_stats)."), call = call)
  }
  if (has_several_factors(parsed) && is.character(stats) && "group" %in% names(stats)) {
    hnm_abort(paste("with several grouping factors a table of statistics has a column per",
                    "grouping variable, named as in the formula, not a `group` column to",
                    "name with `stats`."), call = call)
  }
  stats_columns(stats, call)[c("group", "n")]
}

# The grouping an hnm_stats table records: the grouping factor's name, or with several
# grouping factors their names.
group_description <- function(parsed) {
  if (!has_several_factors(parsed)) return(parsed$group_name)
  paste(vapply(parsed$factors, `[[`, "", "name"), collapse = ", ")
}

# The design of the formula in the table's variables: X's and each random term's columns,
# with the recorded coding where a part equals one the table was made for.
table_design <- function(parsed, has_variable, recorded, call) {
  offsets <- formula_offsets(parsed, call)
  if (!identical(offsets, recorded$offsets %||% character())) {
    hnm_abort(sprintf(paste("the formula's offset terms (%s) differ from those the statistics",
                            "were computed with (%s): the response of a statistics table already",
                            "has its offset subtracted."),
                      paste(offsets, collapse = ", ") %|% "none",
                      paste(recorded$offsets, collapse = ", ") %|% "none"), call = call)
  }
  fixed <- part_columns(parsed$fixed, list(recorded$parts$fixed), parsed, has_variable, call)
  random <- lapply(parsed$random, part_columns, candidates = recorded$parts$random,
                   parsed = parsed, has_variable = has_variable, call = call)
  as_recorded <- fixed$recorded && all(vapply(random, `[[`, TRUE, "recorded"))
  list(fixed = fixed$names, fixed_assign = fixed$assign, random = lapply(random, `[[`, "names"),
       random_assign = lapply(random, `[[`, "assign"), random_terms = lapply(random, `[[`, "terms"),
       xlev = if (as_recorded) recorded$xlev, contrasts = if (as_recorded) recorded$contrasts,
       terms = if (fixed$recorded) recorded$terms else part_terms(parsed$fixed, parsed$env, call)$terms,
       offsets = offsets, parts = recorded$parts)
}

`%|%` <- function(x, y) if (nzchar(x)) x else y

# The design columns of one part and the terms they code (`assign`, 0 for the intercept): a
# recorded part with the same terms gives its columns; otherwise each term must be a variable
# of the table.
part_columns <- function(rhs, candidates, parsed, has_variable, call) {
  t <- part_terms(rhs, parsed$env, call)
  for (candidate in candidates) {
    if (identical(candidate$labels, t$labels) && identical(candidate$intercept, t$intercept)) {
      return(list(names = candidate$names, assign = candidate$assign, terms = candidate$terms,
                  recorded = TRUE))
    }
  }
  absent <- t$labels[!vapply(t$labels, has_variable, logical(1))]
  if (length(absent) > 0L) {
    hnm_abort(sprintf(paste("the model term `%s` is not a variable of the statistics table (no",
                            "column `%s`): each term must be a variable of the table (code a factor",
                            "as indicator columns, with their names in the formula) unless the",
                            "table was made by hnm_stats() for the same terms."),
                      absent[1L], mean_columns(absent[1L])), call = call)
  }
  list(names = c(if (t$intercept) "(Intercept)", t$labels),
       assign = c(if (t$intercept) 0L, seq_along(t$labels)), recorded = FALSE)
}

# Means about a pilot: an unmodified hnm_stats table carries them at full precision; other
# means are taken about their size-weighted grand mean.
lmm_centred_means <- function(data, v, means, n) {
  recorded <- attr(data, "centered_means")
  index <- match(v, attr(data, "variables"))
  if (inherits(data, "hnm_stats") && !anyNA(index) && identical(nrow(recorded), nrow(means))) {
    pilot <- attr(data, "pilot")[index]
    centred <- recorded[, index, drop = FALSE]
    if (identical(unname(sweep(centred, 2L, pilot, `+`)), unname(means))) {
      return(list(pilot = pilot, means = centred))
    }
  }
  pilot <- colSums(n * means) / sum(n)
  list(pilot = pilot, means = sweep(means, 2L, pilot))
}

# The co-moments of variables `v` (groups x k(k+1)/2, packed by rows); sp_<a>_<b> may also
# be named sp_<b>_<a>.
table_comoments <- function(data, v, call) {
  packed <- comoment_columns(v)
  swapped <- comoment_columns(v, swap = TRUE)
  values <- vapply(seq_along(packed), function(c) {
    column <- if (packed[c] %in% names(data)) packed[c] else swapped[c]
    if (!(column %in% names(data))) {
      hnm_abort(sprintf(paste("`data` has no column `%s`, the within-group %s about the group",
                              "means (see ?hnm_stats)."), packed[c],
                        if (startsWith(packed[c], "ss_")) "sum of squares" else "sum of products"),
                call = call)
    }
    x <- data[[column]]
    if (startsWith(column, "ss_")) {
      check_statistic(x, column, function(x) x >= 0, "finite numbers >= 0", call)
    } else {
      check_statistic(x, column, function(x) rep(TRUE, length(x)), "finite numbers", call)
    }
    as.double(x)
  }, numeric(nrow(data)))
  matrix(values, nrow(data))
}

# Each group's co-moment matrix must be positive semi-definite (it is a sum of outer
# products): an LDLᵀ factorisation, vectorised over groups, finds the first group whose matrix
# is not. A pivot counts as zero below a tolerance: 1e-8 of the variable's sum of squares plus
# the squares of rounding errors of its values (`means`, in the data's units, give their
# magnitude), so that a variable constant within a group, whose computed sum of squares is
# rounding noise, is a zero pivot.
check_positive_semidefinite <- function(comoments, v, means, n, groups, call) {
  k <- length(v)
  m <- nrow(comoments)
  entry <- function(a, b) comoments[, a * (a - 1L) / 2L + b]
  tolerance <- vapply(seq_len(k), function(a) {
    1e-8 * entry(a, a) + n * (16 * .Machine$double.eps * abs(means[, a]))^2
  }, numeric(m))
  tolerance <- matrix(tolerance, m)
  l <- array(0, c(m, k, k))
  d <- matrix(0, m, k)
  bad <- rep(FALSE, m)
  for (a in seq_len(k)) {
    for (b in seq_len(a)) {
      earlier <- seq_len(b - 1L)
      s <- entry(a, b) - rowSums(matrix(l[, a, earlier] * l[, b, earlier] * d[, earlier], m))
      if (a == b) {
        d[, a] <- s
        bad <- bad | s < -tolerance[, a]
      } else {
        # A zero pivot b leaves no room for a covariance of a with b (Cauchy-Schwarz).
        pivot <- d[, b] > tolerance[, b]
        l[, a, b] <- ifelse(pivot, s / d[, b], 0)
        bad <- bad | (!pivot & abs(s) > 10 * sqrt((entry(a, a) + tolerance[, a]) * tolerance[, b]))
      }
    }
  }
  if (any(bad)) {
    j <- which(bad)[1L]
    hnm_abort(sprintf(paste("the co-moments of group `%s` (row %d) are not those of any data:",
                            "their matrix over %s is not positive semi-definite."), groups[j], j,
                      paste(v, collapse = ", ")), call = call, class = "hnm_error_invalid_statistics")
  }
}

# A general hnm_stats table as the one-way model's table of `response` (its mean and sum of
# squares), keeping the full-precision means; other data unchanged.
one_way_view <- function(data, response, call) {
  a <- match(response, attr(data, "variables"))
  if (!inherits(data, "hnm_stats") || is.null(attr(data, "variables")) || is.na(a)) return(data)
  if (length(attr(data, "design")$offsets) > 0L) {
    hnm_abort(sprintf(paste("`data` holds statistics of `%s` minus the offset terms %s, not of",
                            "`%s`."), response, paste(attr(data, "design")$offsets, collapse = ", "),
                      response), call = call)
  }
  structure(data.frame(group = data$group, n = data$n, mean = data[[mean_columns(response)]],
                       ss = data[[paste0("ss_", response)]], stringsAsFactors = FALSE),
            class = c("hnm_stats", "data.frame"), response = response,
            group_name = attr(data, "group_name"), n_dropped = attr(data, "n_dropped"),
            center = attr(data, "pilot")[a], centered_mean = attr(data, "centered_means")[, a])
}
