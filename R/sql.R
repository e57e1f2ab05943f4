# Group statistics computed where the data live: for a dbplyr table (SQLite, PostgreSQL,
# DuckDB, Spark through sparklyr, ...) the O(N) pass is one GROUP BY that dbplyr translates
# for the database, and only one row per group is collected into R.

# The statistics list of model_statistics() from a database table.
sql_statistics <- function(table, parsed, env, call) {
  for (package in c("dplyr", "dbplyr")) {
    if (!requireNamespace(package, quietly = TRUE)) {
      hnm_abort(sprintf("fitting a database table needs the %s package.", package), call = call)
    }
  }
  selected <- select_model_columns(table, parsed, env, call)
  rows <- tryCatch(dplyr::collect(group_summary_query(selected)), error = function(e) {
    hnm_abort(sprintf("the database could not compute the group statistics: %s",
                      conditionMessage(e)), call = call)
  })
  statistics_from_sql(as.data.frame(rows), call)
}

# The table reduced to the group (hnm_g) and the response (hnm_y), with the formula's
# expressions translated to SQL by dbplyr; names are checked first, as for data frames.
select_model_columns <- function(table, parsed, env, call) {
  roles <- list(response = parsed$response, "grouping variable" = parsed$group)
  for (role in names(roles)) {
    expr <- roles[[role]]
    if (is.name(expr) && !(as.character(expr) %in% colnames(table))) {
      hnm_abort(sprintf("the %s `%s` is not a column of the database table `data`.", role,
                        as.character(expr)), call = call)
    }
  }
  selected <- tryCatch(
    eval(bquote(dplyr::transmute(.(table), hnm_g = .(parsed$group), hnm_y = .(parsed$response))), env),
    error = function(e) hnm_abort(sprintf("could not translate the formula to SQL: %s",
                                          conditionMessage(e)), call = call))
  # A zero-row query reveals the response's type without reading any data.
  probe <- dplyr::collect(utils::head(selected, 0L))
  if (is.character(probe$hnm_y) || is.factor(probe$hnm_y)) {
    hnm_abort(sprintf("the response `%s` must be numeric, not %s.", deparse1(parsed$response),
                      class(probe$hnm_y)[1L]), call = call)
  }
  selected
}

# One aggregate per group. Subtracting the group's average (a window AVG, the pilot) before
# squaring keeps full precision for a response like 1e9 + noise: `shift`, the mean of the
# deviations from the pilot, is tiny, so ss - n shift^2 does not cancel. `rows` counts all
# rows and `n` those with a response; the NULL group collects rows without a group.
group_summary_query <- function(selected) {
  eval(quote({
    piloted <- dplyr::mutate(dplyr::group_by(selected, hnm_g),
                             hnm_pilot = mean(hnm_y, na.rm = TRUE), hnm_dev = hnm_y - hnm_pilot)
    dplyr::summarise(piloted, rows = n(), n = sum(ifelse(is.na(hnm_y), 0L, 1L), na.rm = TRUE),
                     pilot = max(hnm_pilot, na.rm = TRUE), shift = mean(hnm_dev, na.rm = TRUE),
                     ss = sum(hnm_dev * hnm_dev, na.rm = TRUE), .groups = "drop")
  }), list(selected = selected))
}

# From the collected rows (one per group) to the statistics list, groups ordered as
# factor() orders the labels of the in-memory fit.
statistics_from_sql <- function(rows, call) {
  rows_total <- sum(as.numeric(rows$rows))
  n <- as.numeric(rows$n)
  rows <- rows[!is.na(rows$hnm_g) & n > 0, , drop = FALSE]
  if (nrow(rows) == 0L) {
    hnm_abort("no complete rows: every row has NA in the response or the group.", call = call)
  }
  rows <- rows[order(factor(rows$hnm_g)), , drop = FALSE]
  n <- as.numeric(rows$n)
  pilot <- as.numeric(rows$pilot)
  shift <- as.numeric(rows$shift)
  ss <- as.numeric(rows$ss) - n * shift^2
  if (!all(is.finite(c(pilot, shift, ss)))) {
    hnm_abort("the response has infinite or NaN values in the database table.", call = call)
  }
  center <- sum(n * pilot) / sum(n)
  list(group = as.character(rows$hnm_g), center = center, n = n,
       mean = (pilot - center) + shift, ss = pmax(ss, 0),
       n_dropped = row_count(rows_total - sum(n)), level_index = seq_along(n))
}
