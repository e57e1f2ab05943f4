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
#'   co-moments described above.
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
#' @export
hnm_stats <- function(formula, data) {
  call <- match.call()
  parsed <- parse_mixed_formula(formula, call)
  if (!parsed$one_way) return(lmm_stats_table(lmm_statistics(parsed, data, NULL, call), parsed))
  model <- model_statistics(formula, data, call)
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
statistics_fit <- function(formula, data, stats, method, call, run = collect_rows) {
  parsed <- parse_mixed_formula(formula, call)
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
  fit <- lmm_fit_statistics(statistics, parsed, formula, method, call)
  fit$n_dropped <- statistics$dropped
  fit
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
  cat(sprintf("Group statistics of `%s` by `%s`: %d groups, %.0f observations%s\n",
              attr(x, "response") %||% "y", attr(x, "group_name") %||% "group", nrow(x),
              sum(x$n), if (dropped > 0) sprintf(" (%d rows with NA dropped)", dropped) else ""))
  print.data.frame(x[seq_len(min(n, nrow(x))), , drop = FALSE], ...)
  if (nrow(x) > n) cat(sprintf("# ... %d more groups\n", nrow(x) - n))
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

# model_statistics() for statistics tables and database tables of the one-way model.
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
