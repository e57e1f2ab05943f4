# From a formula and data to the model's variables: reading, checking and coding them.

# lmer()'s arguments that choose and adjust the rows: `subset` (an expression evaluated in
# `data`, as model.frame() takes it: see subset_rows()), `offset` (an
# expression evaluated in `data`: one number per row of `data`, added to the formula's offset()
# terms) and `na.action` (na.omit, na.exclude or na.fail, as functions or names; by default
# options("na.action"), na.omit in a fresh session).
# `weights` (lmer()'s prior weights, an expression evaluated in `data`: see prior_weights()).
# Returns the data the fit reads (a copy of the subset's rows, or `data` itself by reference),
# the offset and the weights of those rows, the name of the NA action and `index`, the rows
# of `data` they are (NULL when they are all its rows, in order).
fit_rows <- function(data, subset, offset, na_action, env, call, weights = NULL) {
  na_action <- na_action_name(na_action, call)
  if ((!is.null(subset) || !is.null(offset) || !is.null(weights)) && !is.data.frame(data)) {
    hnm_abort("`subset`, `weights` and `offset` are evaluated in `data`, which must be a data frame.",
              call = call, class = "hnm_error_argument")
  }
  # Either may evaluate to NULL, none, as in lm() and lmer().
  weights_value <- if (!is.null(weights)) eval(weights, data, env)
  if (!is.null(weights_value)) weights_value <- prior_weights(weights_value, nrow(data), call)
  offset_value <- if (!is.null(offset)) eval(offset, data, env)
  if (!is.null(offset_value)) {
    if (!is.numeric(offset_value) || is.object(offset_value) ||
        length(offset_value) != nrow(data)) {
      hnm_abort(sprintf("`offset` must be numeric with one value per row of `data` (%.0f).",
                        as.double(nrow(data))), call = call, class = "hnm_error_argument")
    }
    offset_value <- as.double(offset_value)
  }
  index <- NULL
  if (!is.null(subset)) {
    keep <- subset_rows(eval(subset, data, env), nrow(data), na_action, call)
    index <- seq_len(nrow(data))[keep]
    data <- data[keep, , drop = FALSE]
    if (!is.null(offset_value)) offset_value <- offset_value[keep]
    if (!is.null(weights_value)) weights_value <- weights_value[keep]
  }
  list(data = data, offset = offset_value, na_action = na_action, weights = weights_value,
       index = index)
}

# The rows of a data frame of `n` rows that `keep`, the value of `subset`, chooses, as lm() and
# lmer() read it (model.frame() takes `data[keep, ]`): a logical with one value per row, or one
# value for all of them (TRUE keeps every row); an NA there is a row with missing values (NA
# among the row numbers returned, a row of NAs in `data[keep, ]`), which na.omit drops (its
# row number is left out), na.exclude drops and pads and na.fail refuses; or row numbers,
# whole numbers in 1..n (repeated ones repeat the row), or in -n..-1 to leave those rows out.
# Whatever `[` would do otherwise silently (truncate 2.5 to row 2, ignore 0, make a row of NAs
# for a number beyond n or NA) is an error naming the problem.
subset_rows <- function(keep, n, na_action, call) {
  abort <- function(problem) {
    hnm_abort(sprintf("`subset` must be logical or row numbers of `data`, but %s.", problem),
              call = call, class = "hnm_error_argument")
  }
  if (is.logical(keep) && !is.object(keep)) {
    if (!length(keep) %in% c(1L, n)) {
      abort(sprintf("it is a logical of length %.0f (it needs one value per row, %.0f, or one)",
                    as.double(length(keep)), as.double(n)))
    }
    if (anyNA(keep) && na_action == "fail") {
      hnm_abort("`subset` is NA at some rows, missing values, with `na.action = na.fail`.",
                call = call, class = "hnm_error_argument")
    }
    keep <- rep_len(keep, n)
    # model.frame() makes a row of NAs for an NA, which na.exclude pads as lm() and lmer() do.
    return(if (na_action == "exclude") seq_len(n)[keep] else which(keep))
  }
  if (!is.numeric(keep) || is.object(keep)) abort(sprintf("it is of class %s", class(keep)[1L]))
  bad <- which(is.na(keep) | keep != trunc(keep) | keep == 0 | abs(keep) > n)
  if (length(bad) > 0L) {
    abort(sprintf("its element %d is %s, not a row number (whole, 1 to %.0f, or -%.0f to -1)",
                  bad[1L], format(keep[bad[1L]]), as.double(n), as.double(n)))
  }
  if (any(keep < 0) && any(keep > 0)) abort("it mixes positive and negative row numbers")
  keep
}

# The name of an NA action lme4 takes ("omit", "exclude" or "fail"); others are refused, as
# na.pass (a missing value cannot be fitted) and user functions (their rows are not R's).
na_action_name <- function(na_action, call) {
  # Without an argument, options("na.action"), as model.frame() and lmer() read it.
  na_action <- na_action %||% getOption("na.action", "na.omit")
  actions <- list(omit = stats::na.omit, exclude = stats::na.exclude, fail = stats::na.fail)
  if (is.character(na_action) && length(na_action) == 1L) {
    name <- sub("^na\\.", "", na_action)
    if (name %in% names(actions)) return(name)
  }
  for (name in names(actions)) if (identical(na_action, actions[[name]])) return(name)
  hnm_abort(paste("`na.action` must be na.omit (the default), na.exclude or na.fail (a function",
                  "or its name): hnm drops rows with a missing value, as lme4 does."),
            call = call, class = "hnm_error_argument")
}

# na.fail: an error when a row was dropped for a missing value.
check_na_fail <- function(na_action, dropped, call) {
  if (na_action == "fail" && dropped > 0) {
    hnm_abort(sprintf("missing values in the model's rows (%.0f rows), with `na.action = na.fail`.",
                      as.double(dropped)), call = call, class = "hnm_error_argument")
  }
}

# The arguments that choose rows are for data frames of rows: given with a statistics table or
# a database table, an error naming them.
refuse_row_arguments <- function(given, call) {
  if (length(given) > 0L) {
    hnm_abort(sprintf(paste("%s %s for data frames of rows, not statistics or database tables;",
                            "choose the rows before computing the statistics."),
                      paste0("`", given, "`", collapse = ", "),
                      if (length(given) > 1L) "are" else "is"),
              call = call, class = "hnm_error_argument")
  }
}

# Values (a vector, or a matrix by rows) of the rows the fit used, with NA at the rows it
# dropped when its NA action is na.exclude (lme4's fitted(), residuals(), predict() and
# simulate() then have one value per row).
pad_excluded <- function(object, values) {
  if (!identical(object$na_action, "exclude")) return(values)
  used <- complete_lmm_rows(object, object$rows)
  if (is.matrix(values)) {
    padded <- matrix(NA_real_, length(used), ncol(values))
    padded[used, ] <- values
  } else {
    padded <- rep(NA_real_, length(used))
    padded[used] <- values
  }
  padded
}

fit_data <- function(data, call) {
  if (missing(data) || is.null(data)) return(NULL)
  if (!is.data.frame(data) && !is.list(data)) {
    hnm_abort("`data` must be a data frame.", call = call)
  }
  data
}

`%||%` <- function(x, y) if (is.null(x)) y else x

# Evaluates a response or grouping expression in `data`; a bare column name is taken from
# the data frame by reference (no copy).
model_variable <- function(expr, data, env, role, call) {
  if (is.name(expr) && !is.null(data) && !(as.character(expr) %in% names(data)) &&
      !exists(as.character(expr), envir = env)) {
    hnm_abort(sprintf("the %s `%s` is not a column of `data`.", role, as.character(expr)),
              call = call)
  }
  tryCatch(eval(expr, data, env), error = function(e) {
    hnm_abort(sprintf("could not evaluate the %s `%s`: %s", role, deparse1(expr),
                      conditionMessage(e)), call = call)
  })
}

# The grouping variable of a grouping expression. `a:b` is never evaluated as R's `:` (a
# sequence, for numbers): as lme4, it is the interaction of factors of a and b, with the
# combinations that occur, levels "a:b" in lexical order. It is coded from the parts' codes
# (interaction() makes a label for every combination of levels, used or not: 1e9 strings for
# classes nested in schools) and labels only the combinations that occur.
group_variable <- function(expr, data, env, call) group_variable_parts(expr, data, env, call)$value

# group_variable()'s `value` and, for an interaction of every row, `parts`: the parts' `codes`
# and each level's `levels` of them (its combination), from which cell_codes() has the cells
# of the interaction and its parts without a pass over the rows.
group_variable_parts <- function(expr, data, env, call) {
  if (!is_interaction(expr)) {
    return(list(value = model_variable(expr, data, env, "grouping variable", call)))
  }
  parts <- lapply(interaction_parts(expr), function(e) {
    group_codes(model_variable(e, data, env, "grouping variable", call), deparse1(e), call)
  })
  # Combined from the most levels to the fewest, so that in a nested design (classes within
  # schools) each outer part is a function of the cells so far (combine_codes()' cheap case,
  # no sort of the rows); the cells numbered in lexical order of the parts as written, lme4's
  # order of the levels (a sort of the cells only), and the factor's codes made with their
  # attributes in one gather of the parts' codes (a factor's read as they are).
  sizes <- lengths(lapply(parts, `[[`, "levels"))
  first <- order(sizes, decreasing = TRUE)
  lexical <- function(levels) do.call(order, c(unname(levels[order(first)]), method = "radix"))
  # The labels in one Rust pass (rs_cell_labels(): half of paste()'s time, 1e5 classes in
  # schools ~40 ms), or by paste() for labels it leaves to R (not ASCII).
  labelled <- function(levels) {
    levels <- unname(levels[order(first)])
    labels <- rust_result(rs_cell_labels(lapply(parts, `[[`, "levels"), levels, ":"))
    if (is.null(labels)) {
      labels <- do.call(paste, c(unname(Map(function(part, level) part$levels[level], parts, levels)),
                                 sep = ":"))
    }
    list(levels = labels, class = "factor")
  }
  combined <- combine_codes(lapply(parts[first], `[[`, "codes"), sizes[first],
                            order_cells = lexical, cell_attributes = labelled)
  list(value = combined$codes, parts = if (combined$every_row) {
    list(codes = lapply(parts[first], `[[`, "codes"), levels = combined$levels)
  })
}

is_interaction <- function(expr) is.call(expr) && identical(expr[[1L]], as.name(":"))

# The factors of `a:b:c`, left to right.
interaction_parts <- function(expr) {
  if (!is_interaction(expr)) return(list(strip_parens(expr)))
  c(interaction_parts(strip_parens(expr[[2L]])), interaction_parts(strip_parens(expr[[3L]])))
}

# The response, checked to be numeric and returned as is: a double or integer column is
# read in place by the data pass, never copied. An integer64 column (what DBI drivers give
# for BIGINT) is converted exactly to doubles, which hold every integer up to 2^53.
check_response <- function(y, name, call) {
  if (inherits(y, "integer64")) return(integer64_as_double(y, name, call))
  if (!is.numeric(y) || is.factor(y)) {
    hnm_abort(sprintf("the response `%s` must be numeric, not %s.", name, class(y)[1L]),
              call = call)
  }
  if (is.double(y) || is.integer(y)) y else as.double(y)
}

# bit64's integer64 as doubles, exactly: NA stays NA, and a value beyond +-2^53 (where
# doubles no longer hold every integer) is an error naming its row.
integer64_as_double <- function(y, name, call) {
  require_bit64(name, call)
  limit <- bit64::as.integer64(2)^53L
  beyond <- which(!is.na(y) & abs(y) > limit)
  if (length(beyond)) {
    hnm_abort(sprintf(paste("the response `%s` (integer64) must lie within +-2^53 = +-%s to be",
                            "exact as a double, but row %d is %s."), name,
                      format(2^53, scientific = FALSE), beyond[1L], as.character(y[beyond[1L]])),
              call = call, class = "hnm_error_out_of_range")
  }
  as.double(y)
}

require_bit64 <- function(name, call) {
  if (!requireNamespace("bit64", quietly = TRUE)) {
    hnm_abort(sprintf("`%s` is an integer64 vector: reading it needs the bit64 package.", name),
              call = call)
  }
}

# The grouping variable, checked and returned as is (never copied), except for the types
# the data pass does not read: integer64 (whose doubles hold int64 bits, not values) and
# other types become factor()'s factor, whose NA codes are dropped like any NA group. A
# factor's levels are checked by check_levels().
check_group <- function(g, name, call) {
  if (!is.atomic(g) || is.null(g)) {
    hnm_abort(sprintf("the grouping variable `%s` must be a vector or factor.", name), call = call)
  }
  if (is.factor(g)) return(g)
  if (inherits(g, "integer64")) require_bit64(name, call)
  if (is.raw(g)) {
    hnm_abort(sprintf(paste("the grouping variable `%s` is a raw vector, which factor() cannot",
                            "order; convert it with as.integer() or as.character()."), name),
              call = call)
  }
  if (inherits(g, "integer64") || !typeof(g) %in% c("integer", "logical", "double", "character")) {
    g <- tryCatch(factor(g), error = function(e) {
      hnm_abort(sprintf("the grouping variable `%s` (%s) cannot be made a factor: %s", name,
                        class(g)[1L], conditionMessage(e)), call = call)
    })
  }
  g
}

# A factor's levels must be distinct, non-missing labels: a corrupt factor (duplicated
# levels) and an addNA() factor (NA as a level; hnm drops rows with a missing group, as
# lme4 does with NA) are refused with what to do. Rust checks them in O(levels) by the
# strings' addresses in R's cache (rs_levels_distinct: 2 ms at 1e5 levels, where R's checks
# take 12); R's checks below run when that cannot decide, or to give the error.
check_levels <- function(g, name, call) {
  if (rs_levels_distinct(g)) return(g)
  levels <- levels(g)
  if (anyNA(levels)) {
    hnm_abort(sprintf(paste("the grouping variable `%s` has NA as a level (as addNA() makes):",
                            "rows with a missing group are dropped, so give that level a name,",
                            "e.g. levels(g)[is.na(levels(g))] <- \"(missing)\", or drop it."), name),
              call = call)
  }
  if (anyDuplicated(levels)) {
    hnm_abort(sprintf(paste("the grouping variable `%s` is a corrupt factor: its level \"%s\"",
                            "appears twice; rebuild it with factor(as.character(g))."), name,
                      levels[anyDuplicated(levels)]), call = call)
  }
  check_label_encoding(levels, name, call)
  g
}

# Strings marked as "bytes" are not text: they cannot be compared in any locale's order.
check_label_encoding <- function(labels, name, call) {
  if (is.character(labels) && any(Encoding(labels) == "bytes")) {
    hnm_abort(sprintf(paste("the grouping variable `%s` has strings marked as \"bytes\", which",
                            "cannot be ordered as text; declare their encoding (Encoding(g) <-",
                            "\"UTF-8\") or convert them with iconv()."), name), call = call)
  }
}

# factor(g) for the grouping variable: NaN is a missing group, as NA (lme4's na.omit drops
# both; is.na(NaN) is TRUE), where factor() would make "NaN" a level of its own.
as_group_factor <- function(g) {
  if (is.factor(g)) return(g)
  factor(g, exclude = if (is.double(g) && !inherits(g, "integer64")) c(NA, NaN) else NA)
}

# factor()'s levels of the distinct values `keys` (one per group, in any order): the order
# that sorts them and their labels; NULL when two labels coincide (doubles equal to 15
# digits, one string in two encodings), values only factor() itself merges as it does.
level_order <- function(keys, name, call) {
  check_label_encoding(keys, name, call)
  method <- sort_method(keys)
  ordering <- order(keys, method = method)
  # A C.UTF-8 locale collates by byte order only where R does not use ICU: with ICU (R's
  # default on Linux for every locale but C and POSIX) it collates as the root locale,
  # c("_x", "10", "a", "B"), as factor() then orders them. The radix order is kept where the
  # collation agrees with it (one comparison per group).
  if (method == "radix" && is.character(keys) && is.unsorted(keys[ordering])) {
    ordering <- order(keys, method = "shell")
  }
  labels <- as.character(keys[ordering])
  if (anyDuplicated(labels)) return(NULL)
  list(ordering = ordering, labels = labels)
}

# factor()'s level order with the fastest order() method giving it: collation order is
# byte order for native strings in the C locales (in C.UTF-8 not always: level_order()
# checks), so the radix sort gives it there. The
# radix sort recurses once per character of a shared prefix, which overflows the C stack
# for labels of tens of thousands of characters, so long labels take the shell sort
# (iterative, the method factor() itself uses for strings).
sort_method <- function(keys) {
  if (!is.character(keys)) return("auto")
  byte_order <- Sys.getlocale("LC_COLLATE") %in% c("C", "POSIX", "C.UTF-8", "C.utf8") &&
    all(Encoding(keys) == "unknown") && max(0L, nchar(keys, type = "bytes")) <= 1000L
  if (byte_order) "radix" else "shell"
}

# The general path's reading of a failed data pass (rs_lmm_build) in the user's terms, as the
# one-way checks gave them: no rows left after dropping NA (a data frame without rows, a
# response or grouping variable that is all NA) is "no complete rows", and a corrupt
# factor's code names the grouping variable and the row. Other errors are returned as they are.
explain_build_error <- function(built, design, call) {
  if (!is_core_error(built) || identical(built$kind, "interrupted")) return(built)
  if (identical(built$kind, "group_code_out_of_range")) {
    built$hnm_core_error <- sub("^`[^`]*` has group code (.*) at position ",
                                sprintf("the grouping variable `%s` has group code \\1 at row ",
                                        design$group_name), built$hnm_core_error)
    return(built)
  }
  if (identical(built$kind, "not_finite")) {
    built$hnm_core_error <- explain_not_finite(built$hnm_core_error, design)
    return(built)
  }
  # Only a failed pass can be one without complete rows: the O(N) test runs only then.
  codes <- design$codes
  if (length(codes) == 0L) hnm_abort("no complete rows: `data` has no rows.", call = call)
  if (all(is.na(codes))) {
    hnm_abort(sprintf("no complete rows: the grouping variable `%s` is NA in every row.",
                      design$group_name), call = call)
  }
  complete <- !is.na(codes)
  for (v in design$variables) {
    complete <- complete & if (is.matrix(v)) !rowSums(is.na(v)) else !is.na(v)
    if (!any(complete)) break
  }
  if (!any(complete)) {
    # A variable that is NA in every row, if one is: the response first.
    widths <- vapply(design$variables, NCOL, numeric(1))
    first <- cumsum(c(1, widths))[seq_along(widths)]
    empty <- which(vapply(design$variables, function(v) all(is.na(v)), logical(1)))
    empty <- empty[order(first[empty] != design$response)]
    what <- if (length(empty) > 0L) {
      sprintf("%s `%s`", if (first[empty[1L]] == design$response) "the response" else
        "the model variable", design$names[first[empty[1L]]])
    } else {
      sprintf("the response `%s`, a model variable or the grouping variable `%s`",
              design$response_name, design$group_name)
    }
    hnm_abort(sprintf("no complete rows: every row has NA in %s.", what), call = call)
  }
  built
}

# The pass's "`x` must be finite (or NA), but row i is infinite or NaN." with the role of the
# column (the response, or a model variable) and the value found there (NaN, Inf or -Inf).
explain_not_finite <- function(message, design) {
  pattern <- "^`(.*)` must be finite \\(or NA\\), but row ([0-9]+) is infinite or NaN\\.$"
  if (!grepl(pattern, message)) return(message)
  name <- sub(pattern, "\\1", message)
  row <- as.numeric(sub(pattern, "\\2", message))
  column <- match(name, design$names)
  if (is.na(column)) return(message)
  widths <- vapply(design$variables, NCOL, numeric(1))
  object <- findInterval(column - 1, cumsum(c(0, widths))[-1L]) + 1L
  v <- design$variables[[object]]
  value <- if (is.matrix(v)) v[row, column - sum(widths[seq_len(object - 1L)])] else v[row]
  role <- if (identical(column, as.integer(design$response))) "the response" else "the model variable"
  sprintf("%s `%s` must be finite (or NA), but row %.0f is %s.", role, name, row, format(value))
}
