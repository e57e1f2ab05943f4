# Group statistics computed where the data live: for a dbplyr table (SQLite and PostgreSQL are
# tested; Spark SQL by the text dbplyr renders for it) the O(N) pass is one GROUP BY that
# dbplyr translates for the database, and only one row per group is collected into R.
#
# Every query goes through `run` (dplyr::collect by default), which takes a lazy query and
# returns its rows as a data frame: the Spark test runs the query's SQL text on Spark instead.

# Runs a lazy query; a failure is an error saying what the database could not do.
run_query <- function(run, query, what, call) {
  tryCatch(as.data.frame(run(query)), error = function(e) {
    hnm_abort(sprintf("the database could not %s: %s", what, conditionMessage(e)), call = call)
  })
}

collect_rows <- function(query) dplyr::collect(query)

require_database_packages <- function(call) {
  for (package in c("dplyr", "dbplyr")) {
    if (!requireNamespace(package, quietly = TRUE)) {
      hnm_abort(sprintf("fitting a database table needs the %s package.", package), call = call)
    }
  }
}

# SQLite stores any type in any column: a column declared REAL can hold text, which SQL
# arithmetic reads as 0 (and functions as NULL).
dynamically_typed <- function(table) inherits(dbplyr::remote_con(table), "SQLiteConnection")

# The statistics list of model_statistics() from a database table.
sql_statistics <- function(table, parsed, env, call, run = collect_rows) {
  require_database_packages(call)
  names <- query_names(table, parsed, c("group", "response", "pilot", "deviation", "untyped",
                                       "present"),
                       c("rows", "n", "pilot", "shift", "ss", "untyped", "undefined"))
  dynamic <- dynamically_typed(table)
  selected <- select_model_columns(table, parsed, names, dynamic, env, call, run)
  rows <- run_query(run, group_summary_query(selected, names, dynamic),
                    "compute the group statistics", call)
  statistics_from_sql(rows, names, parsed, call)
}

# Names of the query's own columns, one per role: distinct from the table's columns, from
# every name in the formula and from the summary's columns `outputs`, so that no column of
# the user's is shadowed (`(y - hnm_g) ~ 1 | g` must subtract the user's hnm_g, not the group).
query_names <- function(table, parsed, roles, outputs = character()) {
  taken <- c(colnames(table), unlist(lapply(parsed[c("response", "group", "fixed", "random")],
                                            function(e) all.names(as.call(c(quote(c), e))))),
             outputs)
  names <- character()
  for (role in roles) {
    name <- paste0("hnm_", role)
    while (name %in% c(taken, names)) name <- paste0(name, "_")
    names[[role]] <- name
  }
  names
}

# A call of `verb` on `data` with named arguments `args` (names chosen at run time).
verb_call <- function(verb, data, args) as.call(c(list(verb, data), args))

# A dbplyr verb applied with arguments built at run time, evaluated in `env` (the formula's
# environment, whose values dbplyr inlines).
apply_verb <- function(verb, data, args, env = parent.frame()) eval(verb_call(verb, data, args), env)

# The table's columns with their R types, as a zero-row data frame. SQLite types values, not
# columns: a column computed by the query (dplyr::mutate(), a view) comes back logical from a
# zero-row result whatever it holds, and would be coded as a logical; for those of the columns
# `used`, the type of their first non-NULL value is read instead (NULL everywhere: left
# logical, a column whose rows are all dropped).
column_types <- function(table, used, run, call) {
  types <- run_query(run, utils::head(table, 0L), "read the column types", call)
  if (!dynamically_typed(table)) return(types)
  for (name in intersect(used, names(types)[vapply(types, is.logical, NA)])) {
    column <- apply_verb(quote(dplyr::select), table, list(as.name(name)))
    present <- apply_verb(quote(dplyr::filter), column, list(call("!", call("is.na", as.name(name)))))
    value <- run_query(run, utils::head(present, 1L), sprintf("read the type of `%s`", name),
                       call)[[1L]]
    if (length(value) > 0L) types[[name]] <- value[0L]
  }
  types
}

# A response or grouping variable written as a name must be a column of the table.
check_named_columns <- function(table, roles, call) {
  for (i in seq_along(roles)) {
    expr <- roles[[i]]
    if (is.name(expr) && !(as.character(expr) %in% colnames(table))) {
      hnm_abort(sprintf("the %s `%s` is not a column of the database table `data`.",
                        names(roles)[i], as.character(expr)), call = call)
    }
  }
}

# The number of text or blob values, per row, in the columns `used` (SQLite only).
untyped_count <- function(used) {
  Reduce(function(a, b) call("+", a, b), lapply(used, function(v) {
    bquote(ifelse(typeof(.(as.name(v))) %in% c("text", "blob"), 1L, 0L))
  }), 0L)
}

# The table reduced to the group and the response, named by `names`, with the formula's
# expressions translated to SQL with R's semantics (sql_translator()); names are checked first,
# as for data frames. `present` says that the row has every column of the response (see
# sql_undefined()). With SQLite's dynamic typing (`dynamic`), a further column counts per row
# the columns of the response stored as text or blobs.
select_model_columns <- function(table, parsed, names, dynamic, env, call, run) {
  check_named_columns(table, list(response = parsed$response, "grouping variable" = parsed$group),
                      call)
  types <- column_types(table, all.vars(parsed$response), run, call)
  translate <- sql_translator(table, types, env, call)
  response <- translate(strip_identity(parsed$response), deparse1(parsed$response))
  columns <- stats::setNames(list(parsed$group, response, all_present(
    intersect(all.vars(parsed$response), colnames(table)))), names[c("group", "response", "present")])
  if (dynamic) {
    columns[[names[["untyped"]]]] <- untyped_count(intersect(all.vars(parsed$response),
                                                             colnames(table)))
  }
  selected <- translate_columns(table, columns, env, call)
  # A zero-row query reveals the response's type without reading any data.
  probe <- run_query(run, utils::head(selected, 0L), "read the column types", call)
  check_numeric_response(probe[[names[["response"]]]], parsed, call)
  selected
}

translate_columns <- function(table, columns, env, call) {
  tryCatch(apply_verb(quote(dplyr::transmute), table, columns, env),
           error = function(e) hnm_abort(sprintf("could not translate the formula to SQL: %s",
                                                 conditionMessage(e)), call = call))
}

check_numeric_response <- function(probe, parsed, call) {
  if (is.character(probe) || is.factor(probe)) {
    hnm_abort(sprintf("the response `%s` must be numeric, not %s.", deparse1(parsed$response),
                      class(probe)[1L]), call = call)
  }
}

# One aggregate per group. Subtracting the group's average (a window AVG, the pilot) before
# squaring keeps full precision for a response like 1e9 + noise: `shift`, the mean of the
# deviations from the pilot, is tiny, so ss - n shift^2 does not cancel. `rows` counts all
# rows and `n` those with a response; the NULL group collects rows without a group;
# `untyped` (SQLite) sums the counts of text or blob values in the response's columns.
# sql_groups() reports them naming `columns`.
group_summary_query <- function(selected, names, dynamic) {
  y <- as.name(names[["response"]])
  pilot <- as.name(names[["pilot"]])
  deviation <- as.name(names[["deviation"]])
  grouped <- apply_verb(quote(dplyr::group_by), selected, list(as.name(names[["group"]])))
  piloted <- apply_verb(quote(dplyr::mutate), grouped, stats::setNames(list(
    bquote(mean(.(y), na.rm = TRUE)), bquote(.(y) - .(pilot))), names[c("pilot", "deviation")]))
  undefined <- sql_undefined(list(as.name(names[["group"]])), as.name(names[["present"]]), list(y))
  summaries <- list(
    rows = quote(n()), n = bquote(sum(ifelse(is.na(.(y)), 0L, 1L), na.rm = TRUE)),
    undefined = bquote(sum(.(undefined), na.rm = TRUE)),
    pilot = bquote(max(.(pilot), na.rm = TRUE)), shift = bquote(mean(.(deviation), na.rm = TRUE)),
    ss = bquote(sum(.(deviation) * .(deviation), na.rm = TRUE)),
    untyped = if (dynamic) bquote(sum(.(as.name(names[["untyped"]])), na.rm = TRUE)))
  summarise_groups(piloted, summaries)
}

summarise_groups <- function(grouped, summaries) {
  apply_verb(quote(dplyr::summarise), grouped, c(Filter(Negate(is.null), summaries),
                                                 list(.groups = "drop")))
}

# The collected rows of the groups with data (one per group, or per cell: combination of the
# values of several grouping columns), the number of rows with NA, and for one grouping
# column the rows ordered as factor() orders the labels of the in-memory fit and their
# `labels`, for several the cells' values (`cells`, named by `keys`); refused when SQLite
# counted text values (`untyped`) or labels of two types read alike. `groups`: the query's
# names of the grouping columns, `keys` the grouping variables'.
sql_groups <- function(rows, groups, keys, columns, call) {
  if (sum(as.numeric(rows$untyped)) > 0) {
    hnm_abort(sprintf(paste("the model's numeric variables are computed from %.0f text or blob",
                            "value(s) in the SQLite table (in the column(s) %s), which SQL",
                            "arithmetic would count as 0 (SQLite stores any type in any column):",
                            "convert or remove them first."), sum(as.numeric(rows$untyped)),
                      paste0("`", columns, "`", collapse = ", ")), call = call)
  }
  values <- stats::setNames(as.list(rows[groups]), keys)
  rows_total <- sum(as.numeric(rows$rows))
  keep <- !Reduce(`|`, lapply(values, is.na)) & as.numeric(rows$n) > 0
  rows <- rows[keep, , drop = FALSE]
  values <- lapply(values, `[`, keep)
  if (nrow(rows) == 0L) {
    hnm_abort("no complete rows: every row has NA in a model variable or the group.", call = call)
  }
  labels <- lapply(values, as.character)
  repeated <- anyDuplicated(as.data.frame(labels, stringsAsFactors = FALSE))
  if (repeated) {
    hnm_abort(sprintf(paste("the grouping variable(s) %s hold values of different types that read",
                            "alike (\"%s\" twice, such as 1 and '1' in SQLite), which the database",
                            "counts as different groups: cast them to one type first."),
                      paste0("`", keys, "`", collapse = ", "),
                      paste(vapply(labels, `[`, "", repeated), collapse = ":")), call = call)
  }
  dropped <- row_count(rows_total - sum(as.numeric(rows$n)))
  if (length(keys) > 1L) {
    cells <- as.data.frame(values, optional = TRUE, stringsAsFactors = FALSE)
    return(list(rows = rows, cells = cells, n = as.numeric(rows$n), dropped = dropped))
  }
  ordering <- order(factor(values[[1L]]))
  rows <- rows[ordering, , drop = FALSE]
  list(rows = rows, labels = labels[[1L]][ordering], n = as.numeric(rows$n), dropped = dropped)
}

# From the collected rows (one per group) to the statistics list of the one-way model.
statistics_from_sql <- function(rows, names, parsed, call) {
  check_undefined(rows$undefined, deparse1(parsed$response), call)
  groups <- sql_groups(rows, names[["group"]], deparse1(parsed$group), all.vars(parsed$response),
                       call)
  rows <- groups$rows
  n <- groups$n
  pilot <- as.numeric(rows$pilot)
  shift <- as.numeric(rows$shift)
  ss <- as.numeric(rows$ss) - n * shift^2
  check_finite_statistics(c(pilot, shift, ss), call)
  center <- sum(n * pilot) / sum(n)
  list(group = groups$labels, center = center, n = n,
       mean = (pilot - center) + shift, ss = pmax(ss, 0),
       n_dropped = groups$dropped, level_index = seq_along(n))
}

check_finite_statistics <- function(values, call) {
  if (!all(is.finite(values))) {
    hnm_abort("the model's variables have infinite or NaN values in the database table.",
              call = call)
  }
}

# The general model --------------------------------------------------------------------------

# The statistics of the general model (see R/statistics.R) from a database table: the model's
# design columns as SQL expressions (numeric columns and expressions of them as dbplyr
# translates them; factors as indicator or contrast columns with R's coding of the formula,
# their levels from SELECT DISTINCT; interactions as products), then one GROUP BY query
# computing each group's n, means and centred co-moments.
sql_lmm_statistics <- function(table, parsed, call, run = collect_rows) {
  require_database_packages(call)
  env <- parsed$env %||% globalenv()
  # One grouping factor: its column is the group. Several: the cells are the combinations of
  # the grouping columns (`a` and `b` for `(1 | a/b)` and for `(1 | a) + (1 | b)`), each
  # factor's level a function of its cell's values (factors_statistics()).
  several <- has_several_factors(parsed)
  if (!several && is.call(parsed$group)) {
    hnm_abort(sprintf(paste("the grouping variable `%s` of a database table must be a column;",
                            "compute `%s` as a column first."), parsed$group_name,
                      parsed$group_name), call = call, class = "hnm_error_formula")
  }
  keys <- if (several) cell_columns(parsed, call) else as.character(parsed$group)
  check_named_columns(table, c(list(response = parsed$response), stats::setNames(
    lapply(keys, as.name), rep("grouping variable", length(keys)))), call)
  types <- column_types(table, all.vars(as.call(c(quote(c), parsed$response, parsed$fixed,
                                                    parsed$random))), run, call)
  translate <- sql_translator(table, types, env, call)
  parts <- c(list(part_terms(parsed$fixed, env, call)),
             lapply(parsed$random, part_terms, env = env, call = call))
  offsets <- lapply(parts[[1L]]$offsets, function(o) {
    translate(strip_identity(str2lang(o)[[2L]]), o)
  })
  # Every column the model reads: a row with all of them has every variable defined, as in R.
  inputs <- intersect(unique(all.vars(as.call(c(quote(c), parsed$response, parsed$fixed,
                                                parsed$random)))), colnames(table))
  # A factor's levels are those of the rows the fit uses, as lme4's (its model frame drops the
  # rows with NA, then the unused levels): a level only on rows with NA in another variable
  # or the group would be an all-zero column, a baseline the data do not have.
  complete <- apply_verb(quote(dplyr::filter), table, list(all_present(union(inputs, keys))), env)
  variables <- sql_variables(table, parts, parsed, offsets, types, translate, env, call, run,
                             complete)
  columns <- lapply(parts, sql_part_columns, variables = variables, call = call)
  response <- translate(strip_identity(parsed$response), deparse1(parsed$response))
  if (length(offsets) > 0L) response <- call("-", response, Reduce(function(a, b) call("+", a, b), offsets))
  exprs <- c(stats::setNames(list(response), deparse1(parsed$response)),
             unlist(lapply(columns, `[[`, "exprs"), recursive = FALSE))
  exprs <- exprs[!duplicated(names(exprs))]
  v <- names(exprs)
  k <- length(v)
  pairs <- which(lower.tri(diag(k), diag = TRUE), arr.ind = TRUE)
  pairs <- pairs[order(pairs[, 1L], pairs[, 2L]), , drop = FALSE]  # packed by rows
  outputs <- c("rows", "n", "untyped", "undefined", paste0("pilot", seq_len(k)), paste0("shift", seq_len(k)),
               paste0("cp", pairs[, 1L], "_", pairs[, 2L]))
  names <- c(query_names(table, parsed, c(paste0("group", seq_along(keys)), "text", "complete",
                                          "present", "invalid",
                                          paste0("v", seq_len(k)),
                                          paste0("m", seq_len(k)), paste0("p", seq_len(k)),
                                          paste0("d", seq_len(k))), outputs),
             stats::setNames(outputs, outputs))
  numeric_columns <- intersect(unique(c(all.vars(parsed$response), variables$numeric_columns)),
                               colnames(table))
  untyped <- if (dynamically_typed(table)) untyped_count(numeric_columns)
  groups <- names[paste0("group", seq_along(keys))]
  query <- lmm_summary_query(table, stats::setNames(lapply(keys, as.name), groups), exprs, names,
                             pairs, untyped, inputs, env, call)
  rows <- run_query(run, query, "compute the group statistics", call)
  statistics <- lmm_statistics_from_sql(rows, names, v, pairs, groups, keys, numeric_columns, call)
  c(statistics, list(
    fixed = columns[[1L]]$names, fixed_assign = columns[[1L]]$assign,
    random = lapply(columns[-1L], `[[`, "names"), random_assign = lapply(columns[-1L], `[[`, "assign"),
    xlev = list(fixed = columns[[1L]]$xlevels, random = lapply(columns[-1L], `[[`, "xlevels")),
    contrasts = columns[[1L]]$contrasts, terms = parts[[1L]]$terms,
    offsets = parts[[1L]]$offsets,
    parts = list(fixed = sql_layout(parts[[1L]], columns[[1L]]),
                 random = Map(sql_layout, parts[-1L], columns[-1L]))))
}

sql_layout <- function(part, columns) {
  list(labels = part$labels, intercept = part$intercept, names = columns$names,
       assign = columns$assign)
}

# I(x) is x in SQL.
strip_identity <- function(expr) {
  if (!is.call(expr)) return(expr)
  if (identical(expr[[1L]], as.name("I")) && length(expr) == 2L) return(strip_identity(expr[[2L]]))
  expr[-1L] <- lapply(as.list(expr)[-1L], function(e) if (missing(e)) e else strip_identity(e))
  expr
}

# Operators whose value is logical: R codes such a variable as a factor (`x > 0TRUE`).
logical_operators <- c("<", ">", "<=", ">=", "==", "!=", "!", "&", "|", "&&", "||", "is.na")

# What each variable of the parts is, by its deparsed name: "numeric" (an SQL expression),
# "factor" (a text column, or factor(column) of whole numbers; `key` and the DISTINCT values
# as `levels` labelled as factor() labels them, read from the rows of `complete`) or "logical"
# (a boolean column or a comparison). Numeric expressions are translated by a zero-row query,
# which also checks that none of them, nor the response, is text.
sql_variables <- function(table, parts, parsed, offsets, types, translate, env, call, run,
                          complete) {
  exprs <- unlist(lapply(parts, function(p) {
    v <- stats::setNames(as.list(attr(p$terms, "variables"))[-1L], variable_labels(p$terms))
    v[setdiff(seq_along(v), attr(p$terms, "offset"))]
  }))
  exprs <- exprs[!duplicated(names(exprs))]
  info <- lapply(exprs, variable_kind, types = types, translate = translate, env = env, call = call)
  numeric <- names(info)[vapply(info, `[[`, "", "kind") == "numeric"]
  probe_names <- query_names(table, parsed, c("response", sprintf("probe%d", seq_along(numeric)),
                                              sprintf("offset%d", seq_along(offsets))))
  probed <- stats::setNames(c(list(strip_identity(parsed$response)),
                              lapply(info[numeric], `[[`, "expr"), offsets), probe_names)
  probe <- run_query(run, utils::head(translate_columns(table, probed, env, call), 0L),
                     "read the types of the model's variables", call)
  check_numeric_response(probe[[probe_names[["response"]]]], parsed, call)
  for (i in seq_along(numeric)) {
    value <- probe[[probe_names[[sprintf("probe%d", i)]]]]
    # Zero rows of an expression come back logical from SQLite, which types values, not
    # expressions: only text is known not to be numeric.
    if (is.character(value) || is.factor(value)) {
      hnm_abort(sprintf("the model variable `%s` is %s in the database table, not numeric.",
                        numeric[i], class(value)[1L]), call = call)
    }
  }
  key <- query_names(table, parsed, "key")
  for (name in names(info)[vapply(info, `[[`, "", "kind") == "factor"]) {
    info[[name]] <- c(info[[name]], factor_levels(complete, info[[name]], key, name, env, call, run))
  }
  numeric <- names(info)[vapply(info, `[[`, "", "kind") == "numeric"]
  list(info = info, numeric_columns = unique(unlist(lapply(info[numeric], `[[`, "columns"))),
       literal = attr(translate, "literal"))
}

# The kind of one variable from its expression and the table's column types (a zero-row frame).
variable_kind <- function(expr, types, translate, env, call) {
  numeric <- function() {
    list(kind = "numeric", expr = translate(strip_identity(expr), term_label(expr)),
         columns = all.vars(expr))
  }
  column <- function(e) if (is.name(e) && as.character(e) %in% names(types)) types[[as.character(e)]]
  value <- column(expr)
  if (!is.null(value)) {
    if (is.character(value) || is.factor(value)) return(list(kind = "factor", key = expr, text = TRUE))
    if (is.logical(value)) return(list(kind = "logical", key = expr))
    if (is.numeric(value) && !inherits(value, c("Date", "POSIXt", "difftime"))) return(numeric())
    hnm_abort(sprintf(paste("the column `%s` of the database table is of class %s; hnm reads",
                            "numeric, text and logical columns."), deparse1(expr), class(value)[1L]),
              call = call)
  }
  if (is.name(expr) && !exists(as.character(expr), envir = env)) {
    hnm_abort(sprintf("the model variable `%s` is not a column of the database table `data`.",
                      deparse1(expr)), call = call)
  }
  if (is.call(expr) && deparse1(expr[[1L]]) %in% c("factor", "as.factor") && length(expr) == 2L &&
      !is.null(column(expr[[2L]]))) {
    return(list(kind = "factor", key = expr[[2L]], text = !is.numeric(column(expr[[2L]]))))
  }
  # A comparison, also inside I(): R codes its TRUE/FALSE values as a factor.
  stripped <- strip_identity(expr)
  if (is.call(stripped) && deparse1(stripped[[1L]]) %in% logical_operators) {
    return(list(kind = "logical", key = translate(stripped, term_label(expr))))
  }
  numeric()
}

# A variable's label as terms() writes it in its `factors` (non-syntactic names in backticks).
term_label <- function(expr) deparse1(expr, backtick = TRUE)

# The labels of the variables of terms `t`, as the rows of its `factors` name them: terms()
# deparses them its own way (`a b` in backticks, I(k / 2L) as "I(k/2)"), so the labels are
# read from there, and deparsed only for terms without factors.
variable_labels <- function(t) {
  labels <- rownames(attr(t, "factors"))
  variables <- as.list(attr(t, "variables"))[-1L]
  if (length(labels) == length(variables)) labels else vapply(variables, term_label, "")
}

# A factor's levels from SELECT DISTINCT on its key: labels as factor() orders and makes them,
# and the database values they stand for. A numeric key must hold whole numbers, whose labels
# are exact.
factor_levels <- function(table, variable, key, name, env, call, run) {
  query <- apply_verb(quote(dplyr::distinct), translate_columns(table, stats::setNames(
    list(variable$key), key), env, call), list())
  values <- run_query(run, query, sprintf("list the levels of `%s`", name), call)[[1L]]
  values <- values[!is.na(values)]
  if (!variable$text && any(values != round(values) | abs(values) >= 2^53)) {
    hnm_abort(sprintf(paste("`%s` makes a factor of a numeric column with values that are not",
                            "whole numbers, whose labels would not identify them; make it a text",
                            "column first."), name), call = call)
  }
  f <- factor(values)
  list(levels = levels(f), values = values[match(levels(f), as.character(values))])
}

# The design columns of one part as SQL expressions: model.matrix() of each term on a small
# frame holding every combination of the term's factor levels (numeric variables 1) gives R's
# names, coding and terms (`assign`); each column is the product of the term's numeric
# variables and a CASE over the level combinations.
sql_part_columns <- function(part, variables, call) {
  t <- part$terms
  labels <- part$labels
  factors <- attr(t, "factors")
  info <- variables$info
  variable_names <- variable_labels(t)
  names <- if (part$intercept) "(Intercept)" else character()
  assign <- if (part$intercept) 0L else integer()
  exprs <- list()
  contrasts <- NULL
  for (k in seq_along(labels)) {
    in_term <- rownames(factors)[factors[, k] > 0]
    coded <- in_term[vapply(in_term, function(v) info[[v]]$kind != "numeric", logical(1))]
    numeric <- lapply(setdiff(in_term, coded), function(v) info[[v]]$expr)
    grid <- expand.grid(lapply(stats::setNames(coded, coded), function(v) level_values(info[[v]])),
                        KEEP.OUT.ATTRS = FALSE, stringsAsFactors = FALSE)
    rows <- max(1L, nrow(grid))
    frame <- prototype_frame(variable_names, info, grid, rows, t)
    m <- complex_columns(t, frame, k, call)
    contrasts <- c(contrasts, m$contrasts[setdiff(names(m$contrasts), names(contrasts))])
    for (c in seq_len(ncol(m$value))) {
      product <- Reduce(function(a, b) call("*", a, b), numeric)
      coding <- if (length(coded) > 0L) {
        coding_case(m$value[, c], grid, coded, info, variables$literal)
      }
      exprs[[colnames(m$value)[c]]] <- if (is.null(product)) coding else if (is.null(coding))
        product else call("*", product, coding)
    }
    names <- c(names, colnames(m$value))
    assign <- c(assign, rep(k, ncol(m$value)))
  }
  factor_variables <- Filter(function(i) identical(i$kind, "factor"), info[variable_names])
  list(names = names, assign = assign, exprs = exprs, contrasts = contrasts,
       xlevels = if (length(factor_variables) > 0L) {
         stats::.getXlevels(t, prototype_frame(variable_names, info, NULL, 1L, t))
       })
}

# The values a coded variable takes in the prototype frame: its levels, or FALSE and TRUE.
level_values <- function(variable) if (variable$kind == "logical") c(FALSE, TRUE) else variable$levels

# A model frame of `rows` rows for the variables `variable_names` of terms `t`: numeric ones 1,
# factors with all their levels and logicals, taking the combinations in `grid`.
prototype_frame <- function(variable_names, info, grid, rows, t) {
  columns <- lapply(variable_names, function(v) {
    variable <- info[[v]]
    if (is.null(variable) || variable$kind == "numeric") return(rep(1, rows))
    value <- if (!is.null(grid) && v %in% names(grid)) grid[[v]] else rep(level_values(variable)[1L], rows)
    if (variable$kind == "factor") factor(value, levels = variable$levels) else value
  })
  # Named as model.frame() names its columns (a non-syntactic name without backticks).
  frame <- as.data.frame(stats::setNames(columns, vapply(as.list(attr(t, "variables"))[-1L],
                                                         deparse1, "")),
                         check.names = FALSE, stringsAsFactors = FALSE)
  attr(frame, "terms") <- t
  frame
}

# A CASE expression giving `values[r]` (written by `literal` as the database's doubles) on the
# rows whose coded variables take the levels of grid row r: the most frequent value is the
# ELSE of rows with all keys present (NULL keys stay NULL, and their rows are dropped as rows
# with NA).
coding_case <- function(values, grid, coded, info, literal) {
  values <- unname(values)
  distinct <- unique(values)
  default <- distinct[which.max(tabulate(match(values, distinct)))]
  condition <- function(r) {
    Reduce(function(a, b) call("&", a, b), lapply(coded, function(v) level_test(info[[v]], grid[[v]][r])))
  }
  clauses <- lapply(which(values != default), function(r) {
    call("~", condition(r), literal(values[r]))
  })
  present <- Reduce(function(a, b) call("&", a, b),
                    lapply(coded, function(v) call("!", call("is.na", info[[v]]$key))))
  as.call(c(list(as.name("case_when")), clauses, list(call("~", present, literal(default)))))
}

# The SQL test that a coded variable takes `level`.
level_test <- function(variable, level) {
  if (variable$kind == "logical") return(if (level) variable$key else call("!", variable$key))
  call("==", variable$key, variable$values[match(level, variable$levels)])
}

# One aggregate per group (per combination of the grouping columns `groups`, named by the
# query's names of them) of the k variables `exprs`: each is NULL on rows where any is NULL
# (the row is dropped, as in memory), deviations are taken from the group's window AVG of the
# complete rows before multiplying, and the sums of products of deviations are corrected by
# the (tiny) mean deviations afterwards, so offsets of 1e9 keep their digits.
lmm_summary_query <- function(table, groups, exprs, names, pairs, untyped, inputs, env, call) {
  k <- length(exprs)
  role <- function(prefix, i) as.name(names[[paste0(prefix, i)]])
  group_names <- lapply(names(groups), as.name)
  columns <- c(groups,
               stats::setNames(exprs, names[paste0("v", seq_len(k))]),
               stats::setNames(list(all_present(inputs)), names[["present"]]),
               if (!is.null(untyped)) stats::setNames(list(untyped), names[["text"]]))
  selected <- translate_columns(table, columns, env, call)
  complete <- Reduce(function(a, b) call("&", a, b),
                     lapply(seq_len(k), function(i) call("!", call("is.na", role("v", i)))))
  masked <- apply_verb(quote(dplyr::mutate), selected, c(
    stats::setNames(list(complete), names[["complete"]]),
    stats::setNames(list(sql_undefined(group_names, as.name(names[["present"]]),
                                       lapply(seq_len(k), role, prefix = "v"))), names[["invalid"]]),
    stats::setNames(lapply(seq_len(k), function(i) {
      bquote(ifelse(.(as.name(names[["complete"]])), .(role("v", i)), NA))
    }), names[paste0("m", seq_len(k))])))
  grouped <- apply_verb(quote(dplyr::group_by), masked, group_names)
  piloted <- apply_verb(quote(dplyr::mutate), grouped, c(
    stats::setNames(lapply(seq_len(k), function(i) bquote(mean(.(role("m", i)), na.rm = TRUE))),
                    names[paste0("p", seq_len(k))]),
    stats::setNames(lapply(seq_len(k), function(i) call("-", role("m", i), role("p", i))),
                    names[paste0("d", seq_len(k))])))
  summaries <- c(
    stats::setNames(list(quote(n()), bquote(sum(ifelse(is.na(.(role("m", 1L))), 0L, 1L), na.rm = TRUE))),
                    names[c("rows", "n")]),
    stats::setNames(lapply(seq_len(k), function(i) bquote(max(.(role("p", i)), na.rm = TRUE))),
                    names[paste0("pilot", seq_len(k))]),
    stats::setNames(lapply(seq_len(k), function(i) bquote(mean(.(role("d", i)), na.rm = TRUE))),
                    names[paste0("shift", seq_len(k))]),
    stats::setNames(lapply(seq_len(nrow(pairs)), function(r) {
      bquote(sum(.(role("d", pairs[r, 1L])) * .(role("d", pairs[r, 2L])), na.rm = TRUE))
    }), names[paste0("cp", pairs[, 1L], "_", pairs[, 2L])]),
    list(undefined = bquote(sum(.(as.name(names[["invalid"]])), na.rm = TRUE))),
    if (!is.null(untyped)) list(untyped = bquote(sum(.(as.name(names[["text"]])), na.rm = TRUE))))
  summarise_groups(piloted, summaries)
}

# From the collected rows (one per group or cell) to the statistics of the general model: means
# about a common pilot (the size-weighted mean of the groups' pilots) and co-moments about the
# means; the groups' labels, or the cells' values of the grouping columns `keys` (`groups` in
# the query).
lmm_statistics_from_sql <- function(rows, names, v, pairs, groups, keys, numeric_columns, call) {
  computed <- !vapply(v, function(name) tryCatch(is.name(str2lang(name)), error = function(e) FALSE),
                      logical(1))
  check_undefined(rows$undefined, v[computed], call)
  groups <- sql_groups(rows, groups, keys, numeric_columns, call)
  rows <- groups$rows
  n <- groups$n
  k <- length(v)
  column <- function(prefix, i) as.numeric(rows[[names[[paste0(prefix, i)]]]])
  pilots <- vapply(seq_len(k), function(i) column("pilot", i), n)
  shifts <- vapply(seq_len(k), function(i) column("shift", i), n)
  pilots <- matrix(pilots, length(n))
  shifts <- matrix(shifts, length(n))
  comoments <- vapply(seq_len(nrow(pairs)), function(r) {
    a <- pairs[r, 1L]
    b <- pairs[r, 2L]
    w <- column("cp", paste0(a, "_", b)) - n * shifts[, a] * shifts[, b]
    if (a == b) pmax(w, 0) else w
  }, n)
  comoments <- matrix(comoments, length(n))
  check_finite_statistics(c(pilots, shifts, comoments), call)
  pilot <- colSums(n * pilots) / sum(n)
  list(names = v, pilot = pilot, n = n, means = sweep(pilots, 2L, pilot) + shifts,
       comoments = comoments, levels = groups$labels, cells = groups$cells,
       dropped = as.double(groups$dropped))
}

# R's arithmetic in SQL ----------------------------------------------------------------------

# The functions sql_translator() translates with R's semantics, by their numbers of arguments;
# anything else is refused.
sql_functions <- c(
  "+" = "12", "-" = "12", "*" = "2", "/" = "2", "^" = "2", "%%" = "2", "%/%" = "2", "(" = "1",
  log = "12", log10 = "1", log2 = "1", exp = "1", sqrt = "1", abs = "1", sign = "1", floor = "1",
  ceiling = "1", sin = "1", cos = "1", tan = "1", "<" = "2", ">" = "2", "<=" = "2", ">=" = "2",
  "==" = "2", "!=" = "2", "!" = "1", "&" = "2", "|" = "2", is.na = "1")

# A translator of the model's numeric expressions into expressions dbplyr renders as SQL with
# R's semantics (a function of an expression and the model variable it belongs to, for the
# error message). SQL differs from R in three ways that would change the fit silently:
# * integer arithmetic: SQLite and PostgreSQL divide integers as integers (7 / 2 is 3) and
#   SQLite's `%` truncates to integers (7.5 % 2 is 1), so every numeric column and constant
#   is read as a double (PostgreSQL's as.double() would be NUMERIC, exact decimals: DOUBLE
#   PRECISION instead) and %% and %/% are written as R defines them, x - floor(x / y) * y
#   (the sign of y) and floor(x / y);
# * values R computes as infinite or NaN (1 / 0, log(0), sqrt(-1), 0^-1, (-8)^(1/3)): SQLite
#   returns NULL for some, which would drop the row, and raises errors for others, as
#   PostgreSQL does; here each such operation is NULL, and sql_undefined() counts the rows
#   where a model variable is NULL although all its columns are present, which the in-memory
#   fit would stop on (hnm_error_not_finite): the database fit stops on them too;
# * functions whose SQL versions round or behave differently (round(), signif(), log1p()
#   without a native function, ...) are refused, with the advice to compute the column first.
sql_translator <- function(table, types, env, call) {
  con <- dbplyr::remote_con(table)
  # The backend's cast to double, read from its translation of as.double() of a column.
  cast <- as.character(dbplyr::translate_sql_(list(quote(as.double(x))), con = con))
  type <- sub(".* AS ([A-Z ]+)\\)$", "\\1", cast)
  if (grepl("NUMERIC|DECIMAL", type)) type <- "DOUBLE PRECISION"
  as_double <- function(name) {
    dbplyr::sql(sprintf("CAST(%s AS %s)", dbplyr::escape(dbplyr::ident(name), con = con), type))
  }
  numeric_column <- function(name) {
    name %in% names(types) && is.numeric(types[[name]]) && !is.logical(types[[name]])
  }
  positive <- function(e) call("case_when", call("~", call(">", e, 0), e))
  translate <- function(e, variable) {
    if (is.numeric(e) && length(e) == 1L) return(as.double(e))
    if (is.atomic(e)) return(e)
    if (is.name(e)) {
      name <- as.character(e)
      if (numeric_column(name)) return(as_double(name))
      if (name %in% names(types) || !exists(name, envir = env)) return(e)
      value <- get(name, envir = env)
      return(if (is.numeric(value) && length(value) == 1L) as.double(value) else e)
    }
    f <- if (is.name(e[[1L]])) as.character(e[[1L]]) else ""
    if (f == "I" && length(e) == 2L) return(translate(e[[2L]], variable))
    if (is.na(sql_functions[f]) || !grepl(length(e) - 1L, sql_functions[[f]], fixed = TRUE)) {
      hnm_abort(sprintf(paste("`%s` in the model variable `%s` has no translation to SQL with R's",
                              "semantics: hnm translates %s to SQL; compute `%s` as a column",
                              "of the database table first."), deparse1(e), variable,
                        paste(names(sql_functions)[names(sql_functions) != "("], collapse = " "),
                        variable),
                call = call, class = "hnm_error_formula")
    }
    args <- lapply(as.list(e)[-1L], translate, variable = variable)
    a <- args[[1L]]
    b <- if (length(args) > 1L) args[[2L]]
    divisor <- function(d) call("na_if", d, 0)
    # dbplyr writes R's operators without parentheses: a replacement by other operators keeps
    # its own, so that SQL's precedence is R's around it (x - y %% 2).
    parens <- function(e) call("(", e)
    switch(f,
      "/" = parens(call("/", a, divisor(b))),
      "%/%" = call("floor", call("/", a, divisor(b))),
      "%%" = parens(call("-", a, call("*", b, call("floor", call("/", a, divisor(b)))))),
      # R: a negative base with a fractional exponent is NaN, 0 to a negative power Inf.
      "^" = call("case_when", call("~", call("!", call("|",
        call("&", call("<", a, 0), call("!=", b, call("floor", b))),
        call("&", call("==", a, 0), call("<", b, 0)))), call("^", a, b))),
      log = if (is.null(b)) call("log", positive(a)) else
        parens(call("/", call("log", positive(a)), divisor(call("log", positive(b))))),
      log10 = call("log10", positive(a)),
      log2 = parens(call("/", call("log", positive(a)), log(2))),
      sqrt = call("sqrt", call("case_when", call("~", call(">=", a, 0), a))),
      as.call(c(e[[1L]], args)))
  }
  # A number as a double of the database: Spark reads the literal 1.0 as DECIMAL(2, 1), and an
  # indicator column of such literals would be averaged in decimals rounded to 5 to 10 digits.
  attr(translate, "literal") <- function(value) {
    dbplyr::sql(sprintf("CAST(%s AS %s)", sprintf("%.17g", value), type))
  }
  translate
}

# A per-row indicator (1 or 0) that the row has its group (every column of `groups`) and
# every column of the model (the column `present`, TRUE then) but a model variable among
# `values` (names of columns) is NULL: SQL's value where R's is infinite or NaN (see
# sql_translator()).
sql_undefined <- function(groups, present, values) {
  missing <- call("(", Reduce(function(a, b) call("|", a, b), lapply(values, function(v) call("is.na", v))))
  grouped <- Reduce(function(a, b) call("&", a, b),
                    lapply(groups, function(g) call("!", call("is.na", g))))
  call("ifelse", call("&", call("&", grouped, present), missing), 1L, 0L)
}

# TRUE where none of the columns `inputs` is NULL (TRUE when there are none).
all_present <- function(inputs) {
  if (length(inputs) == 0L) return(TRUE)
  Reduce(function(a, b) call("&", a, b), lapply(inputs, function(v) call("!", call("is.na", as.name(v)))))
}

# The error for rows with undefined values, as the in-memory fit's (hnm_error_not_finite).
check_undefined <- function(count, variables, call) {
  count <- sum(as.numeric(count), na.rm = TRUE)
  if (count > 0) {
    hnm_abort(sprintf(paste("the model variable(s) %s have %.0f infinite or NaN value(s) in the",
                            "database table (such as a division by zero or the log of a number",
                            "<= 0), which SQL computes as NULL: the in-memory fit stops on them",
                            "too; remove those rows or change the formula."),
                      paste0("`", variables, "`", collapse = ", "), count),
              call = call, class = "hnm_error_not_finite")
  }
}
