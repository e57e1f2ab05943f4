# Fitting from per-group statistics instead of rows: an hnm_stats table, a data frame of
# statistics declared with `stats =`, or a database table (R/sql.R). model_statistics()
# routes these here; the fits they give have no rows (y = NULL, g = NULL).

#' Per-group sufficient statistics of the one-way model
#'
#' The one-way model needs only, per group \eqn{j}, the size \eqn{n_j}, the mean
#' \eqn{\bar y_j} and the within-group sum of squares \eqn{\sum_i (y_{ij} - \bar y_j)^2}.
#' `hnm_stats()` computes them in one pass (in Rust for a data frame; by one SQL aggregate
#' inside the database for a `dbplyr` table, see [hnm_fit()]), and `hnm_fit()` fits the
#' model from such a table exactly as from the rows. Rows with `NA` in the response or the
#' group are dropped, as `hnm_fit()` drops them.
#'
#' The table keeps, as attributes, the means relative to a common centre at full precision,
#' so a fit from an unmodified `hnm_stats` table equals the fit from the rows even when the
#' response has a large offset (such as \eqn{10^9} plus noise).
#'
#' @param formula `y ~ 1 | g`, as for [hnm_fit()].
#' @param data A data frame of rows, or a database table (`dplyr::tbl(con, "name")`).
#' @return A data frame of class `hnm_stats` with one row per group and columns `group`
#'   (the group label), `n`, `mean` and `ss` (the within-group sum of squares about the
#'   group mean).
#' @seealso [hnm_fit()] with `data` an `hnm_stats` table, or a data frame of statistics
#'   declared with its `stats` argument.
#' @examples
#' s <- hnm_stats(y ~ 1 | g, wheat)
#' s
#' fit <- hnm_fit(y ~ 1 | g, data = s)
#' all.equal(fixef(fit), fixef(hnm_fit(y ~ 1 | g, wheat)))
#' @export
hnm_stats <- function(formula, data) {
  model <- model_statistics(formula, data, match.call())
  s <- model$stats
  structure(stats_table(s), class = c("hnm_stats", "data.frame"),
            response = model$response_name, group_name = model$group_name,
            n_dropped = s$n_dropped, center = s$center, centered_mean = s$mean)
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
  dropped <- attr(x, "n_dropped") %||% 0L
  cat(sprintf("Group statistics of `%s` by `%s`: %d groups, %.0f observations%s\n",
              attr(x, "response") %||% "y", attr(x, "group_name") %||% "group", nrow(x),
              sum(x$n), if (dropped > 0) sprintf(" (%d rows with NA dropped)", dropped) else ""))
  print.data.frame(x[seq_len(min(n, nrow(x))), , drop = FALSE], ...)
  if (nrow(x) > n) cat(sprintf("# ... %d more groups\n", nrow(x) - n))
  invisible(x)
}

# TRUE when `data` holds group statistics or is a database table rather than rows.
takes_statistics <- function(data, stats) {
  !is.null(stats) || (!missing(data) && (inherits(data, "hnm_stats") || inherits(data, "tbl_lazy")))
}

# model_statistics() for statistics tables and database tables.
statistics_input <- function(formula, data, stats, call) {
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
    sql_statistics(data, parsed, environment(formula) %||% globalenv(), call)
  } else {
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
                      format(v[bad])), call = call, class = "hnm_invalid_statistics")
  }
}

check_group_labels <- function(group, column, call) {
  if (anyNA(group) || anyDuplicated(group)) {
    problem <- if (anyNA(group)) "an NA label" else sprintf("`%s` twice", group[anyDuplicated(group)])
    hnm_abort(sprintf("column `%s` of `data` must name each group once, but it has %s.",
                      column, problem), call = call, class = "hnm_invalid_statistics")
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
