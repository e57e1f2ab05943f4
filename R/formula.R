# Parsing lme4's formula syntax: the first step of hnm_fit().

# Splits `y ~ fixed + (terms | g) + ...` into the response, the fixed-effects right-hand side
# and the grouping factors with their random-effects terms, expanded as lme4's findbars():
# `(x || g)` becomes `(1 | g) + (0 + x | g)`, `(1 | a/b)` becomes `(1 | b:a) + (1 | a)`;
# `y ~ 1 | g` (a bar as the whole right-hand side) means `y ~ 1 + (1 | g)`. `factors` has one
# entry per grouping factor in lme4's order of terms before its sort by number of levels
# (factor_order()): `name` (lme4's, e.g. "cask:batch"), `expr` (the grouping expression),
# `random` (one one-sided right-hand side per term on the factor) and `position` (each term's
# place among all the formula's terms). With one factor, `group`, `group_name` and `random`
# are that factor's; unless `several`, a formula with more than one is an error naming them.
# A grouping expression that is not a factor (`g + h`, `g * h`) is an error. `one_way` is
# TRUE for `y ~ 1 + (1 | g)`.
parse_mixed_formula <- function(formula, call = NULL, several = FALSE) {
  if (!inherits(formula, "formula") || length(formula) != 3L) {
    hnm_abort("`formula` must be a two-sided formula such as `y ~ x + (1 | g)` or `y ~ 1 | g`.",
              call = call, class = "hnm_error_formula")
  }
  rhs <- formula[[3L]]
  bars <- find_bars(rhs)
  if (length(bars) == 0L) {
    hnm_abort(sprintf(paste("`%s` has no random-effects term such as `(1 | g)`; without one it",
                            "is a linear model (use lm())."), deparse1(formula)),
              call = call, class = "hnm_error_formula")
  }
  factors <- formula_factors(bars, formula, call)
  if (!several && length(factors) > 1L) {
    hnm_abort(sprintf(paste("`%s` has more than one grouping factor (%s); here hnm takes",
                            "one grouping factor (hnm_fit() fits crossed and nested",
                            "random effects)."), deparse1(formula),
                      paste(vapply(factors, `[[`, "", "name"), collapse = ", ")),
              call = call, class = "hnm_error_unsupported_formula")
  }
  fixed_rhs <- drop_bars(rhs) %||% 1
  env <- environment(formula)
  single <- if (length(factors) == 1L) factors[[1L]]
  list(response = formula[[2L]], fixed = fixed_rhs, random = single$random, group = single$expr,
       group_name = single$name, env = env,
       one_way = !is.null(single) && is_intercept_only(fixed_rhs, env) &&
         length(single$random) == 1L && is_intercept_only(single$random[[1L]], env),
       factors = factors)
}

# The grouping factors of the bars, as lme4's findbars() expands them: each bar's `||` into
# its terms, then each term's `a/b/c` into the factors c:(b:a), b:a and a; terms on the same
# factor (by lme4's name, the deparsed expression) are gathered under it.
formula_factors <- function(bars, formula, call) {
  lhs <- list()
  exprs <- list()
  for (bar in bars) {
    groups <- nested_factors(bar[[3L]], bar, formula, call)
    for (term in random_terms(bar)) {
      lhs <- c(lhs, rep(list(term), length(groups)))
      exprs <- c(exprs, groups)
    }
  }
  names <- vapply(exprs, deparse1, "")
  lapply(unique(names), function(name) {
    at <- which(names == name)
    list(name = name, expr = exprs[[at[1L]]], random = lhs[at], position = at)
  })
}

# The factors of one grouping expression: `a/b/c` gives c:(b:a), b:a and a (lme4's
# expandSlash(), whose names and order these are); any other expression is one factor. A
# part that is a sum or product (`g + h`, `g * h`, which lme4 cannot evaluate either) or a
# `/` below a `:` is an error.
nested_factors <- function(g, bar, formula, call) {
  g <- strip_parens(g)
  parts <- list()
  while (is.call(g) && identical(g[[1L]], as.name("/"))) {
    parts <- c(list(g[[3L]]), parts)
    g <- strip_parens(g[[2L]])
  }
  parts <- c(list(g), parts)
  for (part in parts) check_grouping_part(part, bar, formula, call)
  out <- list(parts[[1L]])
  for (part in parts[-1L]) out <- c(list(call(":", part, out[[1L]])), out)
  out
}

# Refuses a part of a grouping expression that is not a factor (below the `:`s).
check_grouping_part <- function(part, bar, formula, call) {
  part <- strip_parens(part)
  if (is_interaction(part)) {
    for (side in as.list(part)[-1L]) check_grouping_part(side, bar, formula, call)
    return(invisible())
  }
  op <- if (is.call(part)) deparse1(part[[1L]]) else ""
  if (op %in% c("+", "*", "-")) {
    within <- if (!identical(part, strip_parens(bar[[3L]]))) {
      sprintf(" (part of `%s`)", deparse1(bar[[3L]]))
    }
    hnm_abort(sprintf(paste("the grouping expression `%s`%s in `%s` is not a factor; write",
                            "one random-effects term per grouping factor, e.g. `(%s | %s) +",
                            "(%s | %s)`, or `a/b` for b nested in a."), deparse1(part), within %||% "",
                      deparse1(formula),
                      deparse1(bar[[2L]]), deparse1(part[[2L]]), deparse1(bar[[2L]]),
                      deparse1(part[[length(part)]])),
              call = call, class = "hnm_error_unsupported_formula")
  }
  if (op == "/") {
    hnm_abort(sprintf(paste("the grouping expression `%s` of `%s` nests factors (`/`) inside",
                            "an interaction; `/` may only join factors at the top, as in",
                            "`a/b/c`."), deparse1(bar[[3L]]), deparse1(formula)),
              call = call, class = "hnm_error_unsupported_formula")
  }
}

is_bar <- function(x) {
  is.call(x) && (identical(x[[1L]], as.name("|")) || identical(x[[1L]], as.name("||")))
}

strip_parens <- function(expr) {
  while (is.call(expr) && identical(expr[[1L]], as.name("("))) expr <- expr[[2L]]
  expr
}

# The bars `(x | g)` among the terms of a right-hand side joined by `+` and `-` (lme4's findbars).
find_bars <- function(expr) {
  expr <- strip_parens(expr)
  if (is_bar(expr)) return(list(expr))
  if (is_sum(expr)) return(c(find_bars(expr[[2L]]), find_bars(expr[[3L]])))
  list()
}

# The right-hand side without its bars (lme4's nobars); NULL when nothing is left. Bars inside
# parentheses are found by find_bars() and so dropped here too: `((1 | a) + (1 | b))` leaves
# nothing, `((1 | a) + z)` leaves `(z)`.
drop_bars <- function(expr) {
  if (is_bar(strip_parens(expr))) return(NULL)
  if (is.call(expr) && identical(expr[[1L]], as.name("("))) {
    inner <- drop_bars(expr[[2L]])
    if (is.null(inner) || identical(inner, expr[[2L]])) return(if (!is.null(inner)) expr)
    return(call("(", inner))
  }
  if (!is_sum(expr)) return(expr)
  left <- drop_bars(expr[[2L]])
  right <- drop_bars(expr[[3L]])
  minus <- identical(expr[[1L]], as.name("-"))
  if (is.null(left)) return(if (minus && !is.null(right)) call("-", right) else right)
  if (is.null(right)) return(left)
  call(if (minus) "-" else "+", left, right)
}

is_sum <- function(expr) {
  is.call(expr) && length(expr) == 3L &&
    (identical(expr[[1L]], as.name("+")) || identical(expr[[1L]], as.name("-")))
}

# The random-effects terms of one bar: the left-hand side as a one-sided right-hand side and
# whether its columns are correlated; `||` splits it into uncorrelated terms, as lme4 does.
random_terms <- function(bar) {
  lhs <- bar[[2L]]
  if (identical(bar[[1L]], as.name("|"))) return(list(lhs))
  t <- stats::terms(stats::as.formula(call("~", lhs)))
  labels <- attr(t, "term.labels")
  terms <- lapply(labels, function(label) call("+", 0, str2lang(label)))
  if (attr(t, "intercept") == 1L) terms <- c(list(1), terms)
  terms
}

# TRUE for a right-hand side with an intercept and nothing else (`1`, `1 + 1`, ...).
is_intercept_only <- function(rhs, env) {
  if (identical(rhs, 1)) return(TRUE)
  t <- stats::terms(stats::as.formula(call("~", rhs), env = env %||% globalenv()))
  length(attr(t, "term.labels")) == 0L && attr(t, "intercept") == 1L &&
    is.null(attr(t, "offset"))
}

# The response and grouping expressions of a one-way formula `y ~ 1 | g` or `y ~ 1 + (1 | g)`
# (the model of group statistics and database tables); any other model is an error.
parse_hnm_formula <- function(formula, call = NULL) {
  parsed <- parse_mixed_formula(formula, call)
  if (!parsed$one_way) {
    hnm_abort(sprintf(paste("`%s` has covariates or random slopes; fits from group statistics",
                            "and database tables support the one-way model `y ~ 1 | g` only."),
                      deparse1(formula)),
              call = call, class = "hnm_error_unsupported_formula")
  }
  list(response = parsed$response, group = parsed$group)
}

# `.` in the fixed part, `y ~ . + (1 | g)`, stands for the columns of `data` other than the
# response and the grouping variables, as `.` in lm() stands for the columns other than the
# response. (lme4 expands it over the grouping variables too, which puts the grouping factor
# in the fixed part, where it makes the random intercept unidentifiable.) A `.` among the
# random effects, `(. | g)`, is refused: a random slope for every column is never meant.
expand_dot <- function(formula, data, call) {
  if (!inherits(formula, "formula") || length(formula) != 3L ||
      !("." %in% all.names(formula[[3L]]))) {
    return(formula)
  }
  bars <- find_bars(formula[[3L]])
  if (any(vapply(bars, function(b) "." %in% all.names(b[[2L]]), logical(1)))) {
    hnm_abort(sprintf(paste("`%s` has `.` in a random-effects term; name the variables of the",
                            "random effects instead."), deparse1(formula)),
              call = call, class = "hnm_error_formula")
  }
  if (!is.data.frame(data)) {
    hnm_abort(sprintf(paste("`%s` has `.` in its fixed part, which stands for the columns of",
                            "`data`, but `data` is not a data frame."), deparse1(formula)),
              call = call, class = "hnm_error_formula")
  }
  used <- c(all.vars(formula[[2L]]), unlist(lapply(bars, function(b) all.vars(b[[3L]]))))
  columns <- lapply(setdiff(names(data), used), as.name)
  dot <- if (length(columns)) Reduce(function(a, b) call("+", a, b), columns) else 1
  replace_dot <- function(expr) {
    if (identical(expr, as.name("."))) return(call("(", dot))
    if (is.call(expr)) as.call(lapply(as.list(expr), replace_dot)) else expr
  }
  stats::as.formula(call("~", formula[[2L]], replace_dot(formula[[3L]])),
                    env = environment(formula))
}
