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
  names <- query_names(table, parsed)
  dynamic <- inherits(dbplyr::remote_con(table), "SQLiteConnection")
  selected <- select_model_columns(table, parsed, names, dynamic, env, call)
  rows <- tryCatch(dplyr::collect(group_summary_query(selected, names, dynamic)),
                   error = function(e) {
    hnm_abort(sprintf("the database could not compute the group statistics: %s",
                      conditionMessage(e)), call = call)
  })
  statistics_from_sql(as.data.frame(rows), names, parsed, call)
}

# Names of the query's own columns: distinct from the table's columns, from every name in
# the formula's expressions and from the summary's columns, so that no column of the user's
# is shadowed (`(y - hnm_g) ~ 1 | g` must subtract the user's hnm_g, not the group).
query_names <- function(table, parsed) {
  taken <- c(colnames(table), all.names(parsed$response), all.names(parsed$group),
             "rows", "n", "pilot", "shift", "ss", "untyped")
  names <- character()
  for (role in c("group", "response", "pilot", "deviation", "untyped")) {
    name <- paste0("hnm_", role)
    while (name %in% c(taken, names)) name <- paste0(name, "_")
    names[[role]] <- name
  }
  names
}

# A call of `verb` on `data` with named arguments `args` (names chosen at run time).
verb_call <- function(verb, data, args) as.call(c(list(verb, data), args))

# The table reduced to the group and the response, named by `names`, with the formula's
# expressions translated to SQL by dbplyr; names are checked first, as for data frames.
# With SQLite's dynamic typing (`dynamic`) a column declared REAL can hold text, which SQL
# arithmetic reads as 0 (and functions as NULL): a third column counts, per row, the
# columns of the response stored as text or blobs.
select_model_columns <- function(table, parsed, names, dynamic, env, call) {
  roles <- list(response = parsed$response, "grouping variable" = parsed$group)
  for (role in names(roles)) {
    expr <- roles[[role]]
    if (is.name(expr) && !(as.character(expr) %in% colnames(table))) {
      hnm_abort(sprintf("the %s `%s` is not a column of the database table `data`.", role,
                        as.character(expr)), call = call)
    }
  }
  columns <- stats::setNames(list(parsed$group, parsed$response), names[c("group", "response")])
  if (dynamic) {
    used <- intersect(all.vars(parsed$response), colnames(table))
    columns[[names[["untyped"]]]] <- Reduce(function(a, b) call("+", a, b), lapply(used, function(v) {
      bquote(ifelse(typeof(.(as.name(v))) %in% c("text", "blob"), 1L, 0L))
    }), 0L)
  }
  selected <- tryCatch(eval(verb_call(quote(dplyr::transmute), table, columns), env),
    error = function(e) hnm_abort(sprintf("could not translate the formula to SQL: %s",
                                          conditionMessage(e)), call = call))
  # A zero-row query reveals the response's type without reading any data.
  probe <- dplyr::collect(utils::head(selected, 0L))[[names[["response"]]]]
  if (is.character(probe) || is.factor(probe)) {
    hnm_abort(sprintf("the response `%s` must be numeric, not %s.", deparse1(parsed$response),
                      class(probe)[1L]), call = call)
  }
  selected
}

# One aggregate per group. Subtracting the group's average (a window AVG, the pilot) before
# squaring keeps full precision for a response like 1e9 + noise: `shift`, the mean of the
# deviations from the pilot, is tiny, so ss - n shift^2 does not cancel. `rows` counts all
# rows and `n` those with a response; the NULL group collects rows without a group;
# `untyped` (SQLite) sums the counts of text or blob values in the response's columns.
group_summary_query <- function(selected, names, dynamic) {
  y <- as.name(names[["response"]])
  pilot <- as.name(names[["pilot"]])
  deviation <- as.name(names[["deviation"]])
  grouped <- eval(verb_call(quote(dplyr::group_by), selected, list(as.name(names[["group"]]))))
  piloted <- eval(verb_call(quote(dplyr::mutate), grouped, stats::setNames(list(
    bquote(mean(.(y), na.rm = TRUE)), bquote(.(y) - .(pilot))), names[c("pilot", "deviation")])))
  summaries <- list(
    rows = quote(n()), n = bquote(sum(ifelse(is.na(.(y)), 0L, 1L), na.rm = TRUE)),
    pilot = bquote(max(.(pilot), na.rm = TRUE)), shift = bquote(mean(.(deviation), na.rm = TRUE)),
    ss = bquote(sum(.(deviation) * .(deviation), na.rm = TRUE)),
    untyped = if (dynamic) bquote(sum(.(as.name(names[["untyped"]])), na.rm = TRUE)),
    .groups = "drop")
  eval(verb_call(quote(dplyr::summarise), piloted, Filter(Negate(is.null), summaries)))
}

# From the collected rows (one per group) to the statistics list, groups ordered as
# factor() orders the labels of the in-memory fit.
statistics_from_sql <- function(rows, names, parsed, call) {
  if (sum(as.numeric(rows$untyped)) > 0) {
    hnm_abort(sprintf(paste("the response `%s` is computed from %.0f text or blob value(s) in the",
                            "SQLite table, which SQL arithmetic would count as 0 (SQLite stores any",
                            "type in any column): convert or remove them first."),
                      deparse1(parsed$response), sum(as.numeric(rows$untyped))), call = call)
  }
  group <- rows[[names[["group"]]]]
  rows_total <- sum(as.numeric(rows$rows))
  n <- as.numeric(rows$n)
  keep <- !is.na(group) & n > 0
  rows <- rows[keep, , drop = FALSE]
  group <- group[keep]
  if (nrow(rows) == 0L) {
    hnm_abort("no complete rows: every row has NA in the response or the group.", call = call)
  }
  labels <- as.character(group)
  if (anyDuplicated(labels)) {
    hnm_abort(sprintf(paste("the grouping variable `%s` holds values of different types that read",
                            "alike (\"%s\" twice, such as 1 and '1' in SQLite), which the database",
                            "counts as different groups: cast it to one type first."),
                      deparse1(parsed$group), labels[anyDuplicated(labels)]), call = call)
  }
  ordering <- order(factor(group))
  n <- as.numeric(rows$n)[ordering]
  pilot <- as.numeric(rows$pilot)[ordering]
  shift <- as.numeric(rows$shift)[ordering]
  ss <- as.numeric(rows$ss)[ordering] - n * shift^2
  if (!all(is.finite(c(pilot, shift, ss)))) {
    hnm_abort("the response has infinite or NaN values in the database table.", call = call)
  }
  center <- sum(n * pilot) / sum(n)
  list(group = labels[ordering], center = center, n = n,
       mean = (pilot - center) + shift, ss = pmax(ss, 0),
       n_dropped = row_count(rows_total - sum(n)), level_index = seq_along(n))
}
