# From a formula and data to per-group sufficient statistics: the first steps of hnm_fit().

# The model's data: response and group (kept for row-level methods), their names, and the
# per-group statistics every estimator works from.
model_statistics <- function(formula, data, call, stats = NULL) {
  if (takes_statistics(data, stats)) return(statistics_input(formula, data, stats, call))
  parsed <- parse_hnm_formula(formula, call = call)
  frame <- fit_data(data, call)
  env <- environment(formula) %||% parent.frame(2L)
  response_name <- deparse1(parsed$response)
  group_name <- deparse1(parsed$group)
  y <- check_response(model_variable(parsed$response, frame, env, "response", call),
                      response_name, call)
  g <- check_group(model_variable(parsed$group, frame, env, "grouping variable", call),
                   group_name, call)
  stats <- group_statistics(y, g, response_name, group_name, call = call)
  if (sum(stats$n) == 0) {
    hnm_abort("no complete rows: every row has NA in the response or the group.", call = call)
  }
  check_representable(stats, response_name, call)
  list(stats = stats, y = y, g = g, response_name = response_name, group_name = group_name)
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

# The response, checked to be numeric and returned as is: a double or integer column is
# read in place by the data pass, never copied.
check_response <- function(y, name, call) {
  if (!is.numeric(y) || is.factor(y)) {
    hnm_abort(sprintf("the response `%s` must be numeric, not %s.", name, class(y)[1L]),
              call = call)
  }
  if (is.double(y) || is.integer(y)) y else as.double(y)
}

# The grouping variable, checked to be a vector and returned as is (never copied).
check_group <- function(g, name, call) {
  if (!is.atomic(g) || is.null(g)) {
    hnm_abort(sprintf("the grouping variable `%s` must be a vector or factor.", name), call = call)
  }
  g
}

# One pass in Rust over (y, g): per-group n, mean (about `center`) and SS, with the groups
# ordered as the levels of factor(g) (a factor's own levels; sort(unique(g)) otherwise).
# Rows with NA in y or g are dropped and counted, and groups without rows are left out,
# as lme4 does. Only O(groups) work happens in R.
# Sums of squared deviations must fit in a double: deviations below about 1e-154 square to
# less than the smallest double, above about 1e154 to more than the largest. The fit itself
# works at any scale (it rescales internally), but the statistics it starts from are
# squares in the data's units.
check_representable <- function(stats, response_name, call) {
  fix <- "multiply the response by a power of ten and scale the estimates back"
  # Reductions only (no per-group temporaries): this runs on every fit.
  if (!is.finite(sum(stats$ss))) {
    hnm_abort(sprintf(paste("the within-group sums of squares of `%s` overflow double",
                            "precision (its values are beyond about 1e154): %s."),
                      response_name, sub("multiply", "divide", fix)), call = call)
  }
  spread <- max(-min(stats$mean), max(stats$mean))
  if (max(stats$ss) == 0 && spread > 0 && spread < 1e-150) {
    hnm_abort(sprintf(paste("the within-group sums of squares of `%s` underflow double",
                            "precision (its deviations are of order %.0e): %s."),
                      response_name, spread, fix), call = call)
  }
}

group_statistics <- function(y, g, response_name = "y", group_name = "g", call = NULL) {
  if (length(y) != length(g)) {
    hnm_abort(sprintf("`y` has length %d but `g` has length %d; they must have the same length.",
                      length(y), length(g)), call = call)
  }
  if (!is.factor(g) && !typeof(g) %in% c("integer", "logical", "double", "character")) {
    g <- factor(g)
  }
  pass <- rust_result(rs_data_pass(y, g, response_name, group_name), call = call)
  if (is.factor(g)) {
    keep <- pass$n > 0
    # Usually every level has rows: then nothing is subset (no O(groups) copies).
    if (all(keep)) return(pass_statistics(pass, NULL, levels(g)))
    return(c(pass_statistics(pass, keep, levels(g)[keep]),
             list(level_index = cumsum(keep) * keep)))
  }
  if (!is.null(pass$offset)) {
    # Integers of a small range, indexed directly: group j is the value offset + j.
    present <- which(pass$n > 0)
    keys <- as.integer(pass$offset + present)
    return(c(pass_statistics(pass, present, as.character(keys)), list(keys = keys)))
  }
  # Hashed groups come back in no particular order, each with its first row.
  keys <- g[pass$first_row]
  ordering <- order(keys, method = sort_method(keys))
  labels <- as.character(keys[ordering])
  if (anyDuplicated(labels)) {
    # factor() merges values whose labels coincide (doubles equal to 15 digits, one string
    # in two encodings): take its codes for these rare data.
    return(group_statistics(y, factor(g), response_name, group_name, call))
  }
  c(pass_statistics(pass, ordering, labels), list(keys = keys[ordering]))
}

# factor()'s level order with the fastest order() method giving it: collation order is
# byte order for native strings in the C locales, so the radix sort gives it there.
sort_method <- function(keys) {
  if (!is.character(keys)) return("auto")
  byte_order <- Sys.getlocale("LC_COLLATE") %in% c("C", "POSIX", "C.UTF-8", "C.utf8") &&
    all(Encoding(keys) == "unknown")
  if (byte_order) "radix" else "auto"
}

# The statistics of the groups `index` selects from a data pass (all when NULL), named `group`.
pass_statistics <- function(pass, index, group) {
  pick <- if (is.null(index)) identity else function(v) v[index]
  list(group = group, center = pass$center, n = pick(pass$n), mean = pick(pass$mean),
       ss = pick(pass$ss), n_dropped = row_count(pass$dropped))
}
