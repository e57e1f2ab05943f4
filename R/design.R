# From a parsed formula and data to the model's columns: the second step of hnm_fit() for
# models with covariates or random slopes.
#
# A term that is a plain numeric column is read in place (no copy); model.matrix() builds only
# the columns of the terms that need it (factors, interactions, functions of columns), with
# R's coding of the whole formula. The random-effects design is never an N x (q m) matrix:
# Z's columns are variables like X's, and the group codes say which block a row belongs to.

# The model's variables (vectors and matrices, flattened in order into `names`), the response,
# the columns of X and Z as indices into them (0 for the intercept), Λ's blocks, the group
# codes and everything needed to rebuild the design for new data. For new data, `terms` are
# the fit's terms of each part (`fixed`, `random`): their `predvars` evaluate data-dependent
# terms (poly(), scale(), ns(), ...) with the fit's bases, as predict.lm() does; `groups =
# FALSE` leaves the grouping variable unread (population predictions need no group).
# `whole_matrices`: see variable_table().
model_design <- function(parsed, data, call, xlev = NULL, new_data = FALSE, terms = NULL,
                         groups = TRUE, offset = NULL, contrasts = NULL,
                         whole_matrices = FALSE) {
  frame <- fit_data(data, call)
  env <- parsed$env %||% globalenv()
  used <- if (!new_data) used_levels(parsed, frame, env)
  fixed <- design_part(parsed$fixed, frame, env, call, xlev$fixed, terms$fixed, contrasts, used)
  if (!is.null(offset)) fixed$offset <- if (is.null(fixed$offset)) offset else fixed$offset + offset
  random <- lapply(seq_along(parsed$random), function(i) {
    design_part(parsed$random[[i]], frame, env, call, xlev$random[[i]], terms$random[[i]],
                used = used)
  })
  group <- if (groups) grouping_factor(parsed, frame, env, call, xlev$group)
  table <- variable_table(whole_matrices, call)
  response <- if (new_data) NULL else response_column(parsed, frame, env, fixed$offset, call)
  response_index <- if (is.null(response)) 0L else table$add(response$name, response$value)
  fixed_index <- part_indices(fixed, table)
  random_index <- lapply(random, part_indices, table = table)
  list(variables = table$objects(), names = table$names(), response = response_index,
       response_name = response$name, offset = fixed$offset,
       fixed = fixed_index, fixed_names = fixed$names, fixed_assign = fixed$assign,
       random = unlist(random_index), blocks = lengths(random_index),
       random_names = lapply(random, `[[`, "names"), random_assign = lapply(random, `[[`, "assign"),
       codes = group$codes, levels = group$levels, code_offset = group$code_offset,
       n_groups = group$n_groups, level_offset = group$level_offset,
       group_name = parsed$group_name,
       xlev = list(fixed = fixed$xlevels, random = lapply(random, `[[`, "xlevels")),
       contrasts = fixed$contrasts, terms = fixed$terms,
       random_terms = lapply(random, `[[`, "terms"))
}

# The levels of the model's factor and text columns on the rows the fit uses, those without NA
# in any column the model reads, by column name; NULL when every level is used there. lme4's
# model frame drops the rows with NA and then the unused levels: a level only on dropped rows
# (or on no row) would otherwise be an all-zero column of X or Z, and as the first level of a
# factor another baseline than lme4's.
used_levels <- function(parsed, data, env) {
  read <- function(variables) {
    lapply(stats::setNames(nm = variables), function(v) {
      value <- tryCatch(eval(as.name(v), data, env), error = function(e) NULL)
      if (is.atomic(value) && is.null(dim(value))) value
    })
  }
  is_coded <- function(x) is.factor(x) || is.character(x)
  # Only the columns of X and Z count: a grouping factor's levels without rows are left out of
  # the model anyway, and a model without such columns (nested.R's, 1e7 rows) reads no more.
  parts <- all.vars(as.call(c(quote(c), parsed$fixed, parsed$random)))
  if (!any(vapply(read(parts), is_coded, NA))) return(NULL)
  values <- read(unique(c(parts, all.vars(as.call(c(quote(c), parsed$response, parsed$group,
                                                     lapply(parsed$factors, `[[`, "expr")))))))
  rows <- max(0L, lengths(values))
  values <- Filter(function(x) length(x) == rows, values)
  coded <- Filter(is_coded, values[intersect(parts, names(values))])
  if (length(coded) == 0L) return(NULL)
  unused <- function(x) is.factor(x) && any(tabulate(x, nlevels(x)) == 0L)
  if (!any(vapply(values, anyNA, NA)) && !any(vapply(coded, unused, NA))) return(NULL)
  complete <- Reduce(`&`, lapply(values, Negate(is.na)))
  lapply(coded, function(x) levels(if (is.factor(x)) droplevels(x[complete]) else factor(x[complete])))
}

# The variables of the model, each once: a name and an object (a vector, or a matrix whose
# columns are variables named by `names`). A part's model.matrix() is added by reference when
# all of its columns are new: the whole of it when `whole` (its intercept column, which no
# term reads, then a variable of the pass too: for several factors one mean more per cell,
# where taking the terms' columns out of it copied the data, 16 MB for InstEval's 27
# columns, and fed R's collector as much); else its terms' columns, copied.
variable_table <- function(whole = FALSE, call = NULL) {
  objects <- list()
  names <- character()
  # Each name's object and column in it (0 for a vector).
  object_of <- integer()
  column_of <- integer()
  push <- function(value, labels) {
    objects[[length(objects) + 1L]] <<- value
    names <<- c(names, labels)
    object_of <<- c(object_of, rep(length(objects), length(labels)))
    column_of <<- c(column_of, if (is.matrix(value)) seq_along(labels) else 0L)
  }
  value_of <- function(i) {
    object <- objects[[object_of[i]]]
    if (column_of[i] == 0L) object else object[, column_of[i]]
  }
  # Variables are shared by name (a slope's column read once for X and Z): two different
  # columns of one name (a contrast `f1` and an indicator `f1`, a factor's `g2` and a numeric
  # column g2) would be taken for one, a wrong model.
  # `value` is column `column` of `object` when one matrix is read by several terms: the same
  # column of the same object (identical() compares pointers first) is not compared again
  # (extracting and comparing a model matrix's named column took 20 ms: 0.5 s for InstEval).
  check_same <- function(i, value, object = NULL, column = 0L) {
    if (!is.null(object) && column_of[i] == column &&
        identical(objects[[object_of[i]]], object)) {
      return(invisible())
    }
    known <- value_of(i)
    same <- identical(known, value) ||
      identical(unname(as.double(known)), unname(as.double(value)))
    if (!same) {
      hnm_abort(sprintf(paste("the model has two different columns named `%s` (a factor's coding",
                              "and another column, or two codings of one factor); hnm reads",
                              "its columns by name: rename the data column or the factor's",
                              "levels so that the names differ."), names[i]),
                call = call, class = "hnm_error_formula")
    }
  }
  add <- function(name, value) {
    hit <- match(name, names)
    if (!is.na(hit)) {
      check_same(hit, value)
      return(hit)
    }
    push(value, name)
    length(names)
  }
  # The indices of the columns `which` of the matrix `m`, added as they are not yet.
  add_matrix <- function(m, which) {
    wanted <- colnames(m)[which]
    hits <- match(wanted, names)
    for (k in which(!is.na(hits))) check_same(hits[k], m[, which[k]], m, which[k])
    new <- is.na(hits) & !duplicated(wanted)
    if (whole && !any(colnames(m) %in% names)) {
      push(m, colnames(m))
    } else if (any(new)) {
      # The matrix itself when every column is new and wanted.
      columns <- which[new]
      push(if (length(columns) == ncol(m)) m else m[, columns, drop = FALSE], wanted[new])
    }
    index <- match(wanted, names)
    # A name twice among the matrix's own columns.
    for (k in which(is.na(hits) & duplicated(wanted))) check_same(index[k], m[, which[k]])
    index
  }
  list(add = add, add_matrix = add_matrix, objects = function() objects,
       names = function() names)
}

# Indices into `table` of a part's columns (0 for its intercept), in model.matrix order.
part_indices <- function(part, table) {
  index <- integer(length(part$names))
  for (column in part$columns) {
    if (!is.null(column$matrix)) {
      index[column$position] <- table$add_matrix(column$matrix, column$which)
    } else if (!is.null(column$value)) {
      index[column$position] <- table$add(column$name, column$value)
    }
  }
  index
}

# The columns of one part (the fixed effects, or one random-effects term) given by the
# right-hand side `rhs`: `names` as model.matrix() would name them (and `assign`, their terms
# as model.matrix()'s attribute), `columns` a list of (position, name, value) for plain
# numeric columns, by reference, and of (position, matrix, which) for the other terms: their
# columns `which` of one model.matrix() call on the terms object of the whole part. `terms` (new data) are
# the fit's; the part's terms returned carry the frame's `predvars` when a frame was built.
# `used`: the levels of factor and text columns on the rows the fit uses (used_levels()).
design_part <- function(rhs, data, env, call, xlev = NULL, terms = NULL, contrasts = NULL,
                        used = NULL) {
  t <- terms %||% if (identical(rhs, 1)) intercept_terms(env) else
    tryCatch(stats::terms(stats::as.formula(call("~", rhs), env = env), data = data),
             error = function(e) {
      hnm_abort(sprintf("invalid model term `%s`: %s", deparse1(rhs), conditionMessage(e)),
                call = call, class = "hnm_error_formula")
    })
  labels <- attr(t, "term.labels")
  intercept <- attr(t, "intercept") == 1L
  values <- lapply(labels, function(label) plain_column(label, data, env))
  plain <- !vapply(values, is.null, logical(1))
  names <- if (intercept) "(Intercept)" else character()
  assign <- if (intercept) 0L else integer()
  columns <- if (intercept) list(list(position = 1L, name = "(Intercept)", value = NULL)) else list()
  frame <- NULL
  matrix_columns <- NULL
  offset <- NULL
  if (any(!plain) || !is.null(attr(t, "offset"))) {
    frame <- model_frame(t, data, env, call, xlev)
    # Levels not on the rows used are NA: those rows are dropped, as rows with NA.
    for (v in intersect(names(used), names(frame))) {
      frame[[v]] <- factor(frame[[v]], levels = used[[v]])
    }
    offset <- frame_offset(t, frame)
  }
  if (any(!plain)) {
    matrix_columns <- model_columns(t, frame, which(!plain), call, contrasts)
  }
  for (k in seq_along(labels)) {
    if (plain[k]) {
      names <- c(names, labels[k])
      assign <- c(assign, k)
      columns[[length(columns) + 1L]] <- list(position = length(names), name = labels[k],
                                              value = values[[k]])
    } else {
      which <- which(matrix_columns$assign == k)
      columns[[length(columns) + 1L]] <- list(position = length(names) + seq_along(which),
                                              matrix = matrix_columns$value, which = which)
      names <- c(names, colnames(matrix_columns$value)[which])
      assign <- c(assign, rep(k, length(which)))
    }
  }
  list(names = names, assign = assign, columns = columns, offset = offset,
       terms = if (is.null(frame)) t else attr(frame, "terms"),
       xlevels = if (!is.null(frame)) stats::.getXlevels(t, frame),
       contrasts = matrix_columns$contrasts)
}

# The terms of `~ 1`, an intercept alone (the one-way model's fixed and random parts), as
# stats::terms() makes them: built directly, as terms() costs a fifth of a small fit's time.
intercept_terms <- function(env) {
  structure(call("~", 1), variables = call("list"), factors = integer(0),
            term.labels = character(0), order = integer(0), intercept = 1L, response = 0L,
            class = c("terms", "formula"), .Environment = env)
}

# A term that is a numeric column (double or integer, no class), read in place; NULL otherwise.
plain_column <- function(label, data, env) {
  expr <- tryCatch(str2lang(label), error = function(e) NULL)
  if (!is.name(expr)) return(NULL)
  value <- tryCatch(eval(expr, data, env), error = function(e) NULL)
  plain <- (is.double(value) || is.integer(value)) && is.null(attr(value, "class")) &&
    is.null(dim(value))
  if (plain) value
}

model_frame <- function(t, data, env, call, xlev) {
  tryCatch(stats::model.frame(t, data = data %||% env, na.action = stats::na.pass, xlev = xlev),
           error = function(e) {
             hnm_abort(sprintf("could not build the model terms: %s", conditionMessage(e)),
                       call = call, class = "hnm_error_formula")
           })
}

# The sum of the part's offset() terms, or NULL.
frame_offset <- function(t, frame) {
  which <- attr(t, "offset")
  if (is.null(which)) return(NULL)
  Reduce(`+`, lapply(which, function(i) as.double(frame[[i]])))
}

# model.matrix() of the terms `keep` only, coded as in the whole part, without its intercept
# column.
complex_columns <- function(t, frame, keep, call) {
  m <- model_columns(t, frame, keep, call)
  columns <- m$assign > 0L
  list(value = m$value[, columns, drop = FALSE], assign = m$assign[columns],
       contrasts = m$contrasts)
}

# model.matrix() of the terms `keep` only, coded as in the whole part: R chooses each
# factor's coding (contrasts or indicators) from the terms object's `factors` attribute,
# which is kept as computed for all terms. `value` keeps the intercept column model.matrix()
# adds (`assign` 0 there, the other columns' terms among all of the part's): each term's
# columns are taken from it, where removing it first copied the whole matrix (InstEval's 28
# columns: 16 MB, a tenth of the fit's allocations).
model_columns <- function(t, frame, keep, call, contrasts = NULL) {
  reduced <- t
  attr(reduced, "factors") <- attr(t, "factors")[, keep, drop = FALSE]
  attr(reduced, "term.labels") <- attr(t, "term.labels")[keep]
  attr(reduced, "order") <- attr(t, "order")[keep]
  attr(reduced, "offset") <- NULL
  m <- tryCatch(model_matrix(reduced, frame, contrasts), error = function(e) {
    hnm_abort(sprintf("could not build the model matrix: %s", conditionMessage(e)), call = call,
              class = "hnm_error_formula")
  })
  assign <- c(0L, keep)[attr(m, "assign") + 1L]
  assign[colnames(m) == "(Intercept)"] <- 0L
  contrasts <- attr(m, "contrasts")
  # model.matrix() gives doubles; the replacement would copy the (shared) matrix regardless.
  if (!is.double(m)) storage.mode(m) <- "double"
  list(value = m, assign = assign, contrasts = contrasts)
}

# stats::model.matrix() of the terms `reduced` on `frame`. When the terms' variables are
# factors without NA whose combinations are few beside the rows (InstEval's service * dept:
# 28 in 73,421 rows), model.matrix() of one row per combination held with each row's
# combination (rs_rows_of_distinct(): a matrix R expands only when it reads it whole, which
# the pass reads as it is held): the same values and column names (no row names, which
# nothing reads), without the 16 MB matrix on R's heap, whose collector that allocation set
# off at every fit, nor model.matrix()'s pass over every row.
model_matrix <- function(reduced, frame, contrasts) {
  combinations <- few_combinations(reduced, frame)
  if (is.null(combinations)) return(stats::model.matrix(reduced, frame, contrasts.arg = contrasts))
  first <- match(seq_len(combinations$n), combinations$codes)
  distinct <- stats::model.matrix(reduced, frame[first, , drop = FALSE], contrasts.arg = contrasts)
  rust_result(rs_rows_of_distinct(distinct, combinations$codes))
}

# Each row's combination of the factors the terms `reduced` read in `frame` (dense_codes():
# `codes` and their number `n`), when every variable of the terms is a factor without NA and
# there are at most an eighth as many combinations as rows (of which there are 1,024 or
# more: below, model.matrix() costs little); NULL otherwise.
few_combinations <- function(reduced, frame) {
  factors <- attr(reduced, "factors")
  n_rows <- nrow(frame)
  if (n_rows < 1024L || !length(factors)) return(NULL)
  columns <- lapply(rownames(factors)[rowSums(factors != 0L) > 0L], function(v) frame[[v]])
  if (!all(vapply(columns, function(x) is.factor(x) && is.null(dim(x)), NA))) return(NULL)
  codes <- lapply(columns, plain_integers)
  if (any(vapply(codes, anyNA, NA))) return(NULL)
  combinations <- dense_combinations(codes, vapply(columns, nlevels, 0L))
  if (combinations$n <= n_rows / 8) combinations
}

# The response (minus the fixed part's offset), by reference when it is a plain column.
response_column <- function(parsed, data, env, offset, call) {
  name <- deparse1(parsed$response)
  y <- check_response(model_variable(parsed$response, data, env, "response", call), name, call)
  if (!is.null(offset)) {
    if (length(offset) != length(y)) {
      hnm_abort("the offset and the response have different lengths.", call = call)
    }
    y <- y - offset
  }
  list(name = name, value = y)
}

# The grouping factor's integer codes and levels; `a:b` is the interaction of a and b, with
# levels "a:b" as lme4 makes them. With `levels` (new data), codes index those levels (NA for
# a level not among them, as for a missing value).
grouping_factor <- function(parsed, data, env, call, levels = NULL) {
  found <- group_variable_parts(parsed$group, data, env, call)
  g <- found$value
  if (is.atomic(g) && !is.null(g) && is.data.frame(data) && length(g) == 1L && nrow(data) != 1L) {
    hnm_abort(sprintf(paste("the grouping variable `%s` has length 1 but the response `%s` has",
                            "length %.0f: they must have the same length, one value per row; `%s`",
                            "is not a column of `data`, so a variable of that name outside it",
                            "was used."), parsed$group_name, deparse1(parsed$response),
                      as.double(nrow(data)), parsed$group_name),
              call = call, class = "hnm_error_length_mismatch")
  }
  # The one-way checks (R/model-data.R): a vector or factor; raw refused; integer64 and other
  # types as factor() makes them.
  g <- check_group(g, parsed$group_name, call)
  if (!is.null(levels)) {
    codes <- group_level_values(g, levels, seq_along(levels), parsed$group_name, call)
    return(list(codes = codes, levels = levels))
  }
  # A factor's levels are checked as the one-way model checks them: an addNA() level or a
  # duplicated level (a corrupt factor) is an error, not a group.
  if (is.factor(g)) {
    return(list(codes = check_levels(g, parsed$group_name, call), levels = levels(g),
                code_offset = 0L, n_groups = nlevels(g), parts = found$parts))
  }
  # Integers or whole doubles of a small range are their own codes less an offset, read by the
  # pass in place (no coding pass); their labels are made for the groups with rows only.
  range <- if (is.null(attributes(g)) && (is.integer(g) || is.double(g))) rs_dense_range(g)
  if (!is.null(range)) {
    return(list(codes = g, code_offset = range$offset, n_groups = range$levels,
                level_offset = range$offset))
  }
  keyed <- group_keys(g, parsed$group_name, call)
  if (!is.null(keyed)) return(keyed)
  coded <- group_codes(g, parsed$group_name, call)
  c(coded, list(code_offset = 0L, n_groups = length(coded$levels)))
}

# A plain integer, logical, double or character `g` as the pass reads it without a code per
# row: `codes` is `g` itself, by reference, and `code_offset` its key table (rs_group_keys(),
# an external pointer whose attribute "levels" holds the groups' labels), which codes each
# value as factor() would, the groups in the order level_order() gives their labels. NULL when
# factor() would merge some of the labels (doubles equal to 15 digits): then coded as factor().
# Only O(groups) work happens in R.
group_keys <- function(g, name, call) {
  if (!is.null(attributes(g)) || !(is.numeric(g) || is.logical(g) || is.character(g))) return(NULL)
  keyed <- rust_result(rs_group_keys(g, name), call = call)
  levels <- level_order(g[keyed$first_row], name, call)
  if (is.null(levels)) return(NULL)
  rank <- integer(length(levels$ordering))
  rank[levels$ordering] <- seq_along(levels$ordering)
  list(codes = g, levels = levels$labels, n_groups = length(levels$labels),
       code_offset = ordered_key_table(keyed$table, rank, levels$labels))
}

# The key table `table` with its groups renumbered by `rank` (rank[c]: the code of the group
# first seen c-th) and the labels of its codes as its attribute "levels".
ordered_key_table <- function(table, rank, levels) {
  rust_result(rs_group_keys_order(table, rank))
  attr(table, "levels") <- levels
  table
}

# The rows with a live key table: the one a saved fit's rows keep comes back from readRDS()
# without its pointer, and is rebuilt from the grouping variable kept in the fit (its labels'
# places among the table's labels, so the codes are those of the fit whatever the locale),
# once per fit, kept in the fit's `core` environment.
live_key_table <- function(rows, core) {
  table <- rows$code_offset
  if (!is.null(attr(table, "levels")) && !rs_group_keys_valid(table)) {
    rebuilt <- if (is.environment(core)) core$key_table
    if (is.null(rebuilt)) {
      levels <- attr(table, "levels")
      keyed <- rust_result(rs_group_keys(rows$codes, "group"))
      rank <- match(as.character(rows$codes[keyed$first_row]), levels)
      rebuilt <- ordered_key_table(keyed$table, rank, levels)
      if (is.environment(core)) assign("key_table", rebuilt, envir = core)
    }
    rows$code_offset <- rebuilt
  }
  rows
}

# The labels of the groups `index` (1-based among the design's groups), as factor() makes
# them: a factor's levels, or the values of a small range (group j is level_offset + j, as a
# double or an integer as the grouping variable is).
group_labels <- function(design, index) {
  if (is.null(design$level_offset)) return(design$levels[index])
  values <- design$level_offset + index
  as.character(if (is.double(design$codes)) as.double(values) else as.integer(values))
}

# The rows' group codes among the statistics' groups, as the pass reads them: `codes` less
# `code_offset`, or hashed values coded by their key table (computed here: only row-level
# methods need a code per row).
row_codes <- function(rows) {
  # A factor's offset 0L is not subtracted: at 1e7 rows that is a pass and a copy for nothing.
  if (identical(rows$code_offset, 0L)) return(plain_integers(rows$codes))
  if (is.null(attr(rows$code_offset, "levels"))) return(plain_integers(rows$codes) - rows$code_offset)
  rust_result(rs_row_codes(rows$codes, rows$code_offset))
}

# For each value of `g`, the entry of `values` of its level among the fit's `levels` (labels
# as the fit makes them), NA for a missing value or one not among them:
# values[match(as.character(g), levels)] with only the distinct values labelled (a factor's
# levels; a vector's by group_codes(), the fit's own labelling in one Rust pass), as
# converting every row to a string costs 25x the prediction itself.
group_level_values <- function(g, levels, values, name, call) {
  if (is.character(g) && is.null(attributes(g))) return(values[match(g, levels)])
  coded <- if (is.factor(g)) list(codes = g, levels = levels(g)) else group_codes(g, name, call)
  values[match(coded$levels, levels)][coded$codes]
}

# The codes and levels factor(g) would give a plain vector, from Rust (factor() converts every
# value to a string first: 40x the pass for 1e6 integers), with unused values of a small
# integer range left out.
group_codes <- function(g, name, call) {
  if (!is.null(attributes(g)) || !(is.numeric(g) || is.logical(g) || is.character(g))) {
    g <- as_group_factor(g)
    return(list(codes = g, levels = levels(g)))
  }
  coded <- rust_result(rs_group_codes(g, name), call = call)
  if (!is.null(coded$offset)) {
    return(list(codes = coded$codes, levels = as.character(as.integer(coded$offset + coded$present))))
  }
  levels <- level_order(g[coded$first_row], name, call)
  if (is.null(levels)) return(group_codes(as_group_factor(g), name, call))
  rank <- integer(length(levels$ordering))
  rank[levels$ordering] <- seq_along(levels$ordering)
  list(codes = rank[coded$codes], levels = levels$labels)
}

# The grouping factors of a model with several (parse_mixed_formula(several = TRUE)): for each
# of `parsed$factors`, its `name` and what grouping_factor() gives for it (the rows' codes, the
# levels or the range's code_offset, n_groups and level_offset). `levels` (new data): for each
# factor, the fit's levels, which the codes then index.
grouping_factors <- function(parsed, data, env, call, levels = NULL) {
  lapply(seq_along(parsed$factors), function(k) {
    factor <- parsed$factors[[k]]
    one <- list(group = factor$expr, group_name = factor$name, response = parsed$response)
    c(list(name = factor$name), grouping_factor(one, data, env, call, levels[[k]]))
  })
}

# The cells of the rows: the combinations of levels of `factors` (grouping_factors() of the
# data) that occur. Rows with a missing level of any factor, or FALSE in `keep`, belong to no
# cell. `cell`: each row's cell (1..n_cells; NA for no cell); `levels`: for each factor, the
# level (1-based, as row_codes() counts) of each cell; `n_levels`: for each factor, the number
# of its levels with rows in a cell (lme4's number of levels, which orders its factors).
# The factors are combined from the most levels to the fewest, so that in a nested design
# every outer factor is a function of the cells so far (combine_codes()' cheap case).
cell_codes <- function(factors, keep = NULL) {
  sizes <- vapply(factors, function(f) as.integer(f$n_groups), 0L)
  order <- order(sizes, decreasing = TRUE)
  # A factor's codes are read as they are (combine_codes() takes factors): as.integer() would
  # copy them, 4 bytes a row.
  codes <- lapply(factors[order], function(f) if (identical(f$code_offset, 0L)) f$codes else row_codes(f))
  cells <- (if (is.null(keep)) interaction_cells(factors[order], codes, sizes[order])) %||%
    combine_codes(codes, sizes[order], keep)
  levels <- cells$levels[order(order)]
  list(cell = cells$codes, n_cells = cells$n, levels = levels,
       n_levels = vapply(seq_along(levels), function(k) {
         sum(tabulate(levels[[k]], sizes[k]) > 0L)
       }, 0L))
}

# combine_codes()' result for `factors` (grouping_factors()' of the data, most levels first,
# with their `codes` and `sizes` as cell_codes() reads them) when the first is an interaction
# of every row: the cells are then the interaction's levels (each has rows), and each factor
# that is one of its parts (the same codes, a factor's read from the data as the part was)
# has its level of each cell from the interaction's combinations, with no pass over the rows
# (at 1e7 rows, classes in schools, rs_nested_values() read 80 MB to find them again); the
# other factors' levels from one pass over the interaction's codes and theirs alone. NULL
# when the first is no such interaction, or another factor is not a function of it.
interaction_cells <- function(factors, codes, sizes) {
  parts <- factors[[1L]]$parts
  if (is.null(parts)) return(NULL)
  part <- vapply(factors[-1L], function(f) {
    same <- identical(f$code_offset, 0L) & vapply(parts$codes, identical, NA, f$codes)
    if (any(same)) which(same)[1L] else NA_integer_
  }, 0L)
  known <- c(TRUE, !is.na(part))
  n <- as.integer(factors[[1L]]$n_groups)
  first <- plain_integers(codes[[1L]])
  levels <- vector("list", length(factors))
  levels[[1L]] <- seq_len(n)
  levels[known][-1L] <- parts$levels[part[!is.na(part)]]
  if (!all(known)) {
    cells <- nested_cells(c(list(first), codes[!known]), c(n, sizes[!known]))
    # Every level of the interaction has rows: the cells are its levels (no map).
    if (is.null(cells) || !is.null(cells$map)) return(NULL)
    levels[!known] <- cells$levels[-1L]
  }
  list(codes = first, n = n, levels = levels, every_row = TRUE)
}

# The combinations of integer codes (codes[[k]] in 1..sizes[k], NA for missing; a factor's
# codes read as they are) that occur, numbered 1..n in lexical order of the codes, or in the
# order `order_cells(levels)` gives (the cells' new order from their `levels` below): `codes`,
# each row's combination (NA where a code is NA or `keep` is FALSE; a plain integer vector, or
# with the attributes `cell_attributes(levels)` gives from the cells' `levels`); `n`;
# `levels`, for each of `codes`, its value in each combination. Integer arithmetic only, never
# a string per row: in a nested design (every later code a function of the first) the cells
# are the first code's levels with rows (nested_cells(), one Rust pass), the rows' codes one
# gather of the first code (or the first code itself); otherwise a code that is the same in all
# rows of each combination so far leaves the combinations as they are (one gather and
# compare), and any other is combined with them by dense_codes().
combine_codes <- function(codes, sizes, keep = NULL, order_cells = NULL, cell_attributes = NULL) {
  n_rows <- length(codes[[1L]])
  # A nested design is found by one Rust pass, which also refuses a missing code: then no row
  # needs a scan for NA.
  cells <- if (is.null(keep)) nested_cells(codes, sizes)
  every_row <- TRUE
  if (is.null(cells)) {
    # Plain integers: anyNA(), is.na() and arithmetic on a factor would dispatch (anyNA() of a
    # factor is is.na() of every row); as.integer() copies only a factor's codes.
    codes <- lapply(codes, plain_integers)
    # Only codes with a missing value are scanned row by row (anyNA() allocates nothing): at
    # 1e7 rows the scans and their `|` cost more than the combination itself.
    missing <- vapply(codes, anyNA, NA)
    rows <- if (any(missing)) !Reduce(`|`, lapply(codes[missing], is.na))
    if (!is.null(keep)) rows <- if (is.null(rows)) keep else rows & keep
    every_row <- is.null(rows) || all(rows)
    if (!every_row) {
      rows <- which(rows)
      codes <- lapply(codes, `[`, rows)
    }
    cells <- nested_cells(codes, sizes)
  }
  if (is.null(cells)) {
    cells <- dense_combinations(codes, sizes)
    cells$levels <- lapply(codes, cell_values, cells = cells)
    cells <- list(first = cells$codes, map = NULL, n = cells$n, levels = cells$levels)
  }
  if (!is.null(order_cells)) {
    new <- order_cells(cells$levels)
    rank <- integer(cells$n)
    rank[new] <- seq_len(cells$n)
    cells$levels <- lapply(cells$levels, `[`, new)
    cells$map <- if (is.null(cells$map)) rank else rank[cells$map]
  }
  # The rows' cells: the first code through `map` (one gather), or the first code itself.
  out <- if (!is.null(cells$map)) map_codes(cells$map, cells$first) else plain_integers(cells$first)
  if (!every_row) out <- replace(rep(NA_integer_, n_rows), rows, out)
  # A fresh vector (but the first code itself, without attributes) takes them in place.
  if (!is.null(cell_attributes)) attributes(out) <- cell_attributes(cells$levels)
  list(codes = out, n = cells$n, levels = cells$levels, every_row = every_row)
}

# map[codes] for integer codes (a factor's read as they are), by Rust (rs_map_codes(): a
# third of R's time at 1e7 rows, on options(hnm.threads) threads), or by R's `[` for what
# Rust leaves to it.
map_codes <- function(map, codes) {
  rust_result(rs_map_codes(map, codes, thread_count(NULL))) %||% map[codes]
}

# as.integer(x) without its copy of a factor's codes: R strips the attributes of a long vector
# by a wrapper around the same codes (ALTREP), where as.integer() copies them (35 ms at 1e7
# rows, a tenth of a nested fit); other types are converted by as.integer(). A factor's codes
# are integers by typeof(), where is.integer() is FALSE for a factor (it has a class).
plain_integers <- function(x) {
  if (typeof(x) != "integer") return(as.integer(x))
  attributes(x) <- NULL
  x
}

# combine_codes()' cells when every later code is a function of the first (a nested design:
# the class gives the school), from one Rust pass over the rows (rs_nested_values()) instead
# of a scatter, a gather and a comparison per code; NULL otherwise. The cells are the first
# code's levels with rows, in its order: the rows' cells are `map[first]`, or `first` itself
# (`map` NULL) when every level has rows.
nested_cells <- function(codes, sizes) {
  if (length(codes) < 2L) return(NULL)
  values <- rust_result(rs_nested_values(codes[[1L]], as.integer(sizes[1L]), codes[-1L]))
  if (is.null(values)) return(NULL)
  present <- values[[1L]] > 0L
  n <- sum(present)
  # A level without rows maps to NA (never read), not to cumsum()'s 0, which a later index
  # through the map would drop.
  map <- if (n < length(present)) replace(cumsum(present), !present, NA_integer_)
  list(first = codes[[1L]], map = map, n = n,
       levels = c(list(which(present)), lapply(values, `[`, present)))
}

# For each cell, the value of `values` in its rows (any one of them).
cell_values <- function(cells, values) {
  out <- integer(cells$n)
  out[cells$codes] <- values
  out
}

# dense_codes() of any number of codes (code k in 1..sizes[k], no NA), combined two at a
# time; a code that is a function of the combination so far (a factor nested in it) changes
# nothing and is not combined.
dense_combinations <- function(codes, sizes) {
  cells <- dense_codes(codes[1L], sizes[1L])
  for (k in seq_along(codes)[-1L]) {
    if (!identical(cell_values(cells, codes[[k]])[cells$codes], codes[[k]])) {
      cells <- dense_codes(list(cells$codes, codes[[k]]), c(cells$n, sizes[k]))
    }
  }
  cells
}

# The distinct combinations of one or two integer keys (key j in 1..sizes[j]) numbered 1..n in
# lexical order of the keys: `codes` (one per row) and `n`. By two counting sorts in Rust
# (rs_dense_codes(): InstEval's students x instructors took 9 ms and 7 MB of vectors in R), or
# for what it leaves to R (keys that are not plain integers) by a table of the combined key
# when its range is not much longer than the keys, else by R's radix sort (no combined key,
# which could overflow).
dense_codes <- function(keys, sizes) {
  coded <- rust_result(rs_dense_codes(keys, as.integer(sizes)))
  if (!is.null(coded)) return(coded)
  n_rows <- length(keys[[1L]])
  if (prod(as.double(sizes)) <= 4 * n_rows + 1024) {
    key <- keys[[1L]]
    if (length(keys) == 2L) key <- (key - 1L) * sizes[2L] + keys[[2L]]
    present <- tabulate(key, prod(sizes)) > 0L
    return(list(codes = cumsum(present)[key], n = sum(present)))
  }
  sorted <- do.call(order, c(unname(keys), method = "radix"))
  change <- Reduce(`|`, lapply(keys, function(key) {
    key <- key[sorted]
    key[-1L] != key[-n_rows]
  }))
  codes <- integer(n_rows)
  codes[sorted] <- cumsum(c(n_rows > 0L, change))
  list(codes = codes, n = if (n_rows) max(codes) else 0L)
}

# lme4's order of the random-effects terms and grouping factors (mkReTrms()): the terms in
# the formula's order unless some term has more levels than the one before it, then by
# decreasing number of levels, where rev(order()) puts tied terms in reverse formula order;
# the factors in the order of their first term. `n_levels`: each factor's number of levels
# with rows (cell_codes()). `terms`: a data frame of `factor` (index into parsed$factors) and
# `term` (index into that factor's `random`), one row per term, in lme4's order.
factor_order <- function(parsed, n_levels) {
  counts <- lengths(lapply(parsed$factors, `[[`, "random"))
  factor <- rep(seq_along(counts), counts)
  term <- sequence(counts)
  written <- order(unlist(lapply(parsed$factors, `[[`, "position")))
  factor <- factor[written]
  term <- term[written]
  size <- n_levels[factor]
  lme4 <- if (any(diff(size) > 0)) rev(order(size)) else seq_along(size)
  list(factors = unique(factor[lme4]),
       terms = data.frame(factor = factor[lme4], term = term[lme4]))
}

# lme4's names of θ: for each random-effects term (in lme4's order), `group`.(Intercept),
# `group`.x.(Intercept), ... for its block's lower triangle by columns; `groups` the term's
# grouping factor's name, one per term or one for all.
theta_names_terms <- function(random_names, groups) {
  groups <- rep_len(groups, length(random_names))
  unlist(lapply(seq_along(random_names), function(k) {
    names <- random_names[[k]]
    q <- length(names)
    column <- rep(seq_len(q), q:1)
    row <- sequence(q:1, from = seq_len(q))
    ifelse(row == column, paste(groups[k], names[row], sep = "."),
           paste(groups[k], names[row], names[column], sep = "."))
  }))
}
