# Parsing lme4's formula syntax for one grouping factor: the first step of hnm_fit().

# Splits `y ~ fixed + (terms | g) + ...` into the response, the fixed-effects right-hand side
# and the random-effects terms of its one grouping factor. `(x || g)` becomes lme4's
# `(1 | g) + (0 + x | g)`; `y ~ 1 | g` (a bar as the whole right-hand side) means
# `y ~ 1 + (1 | g)`. Two grouping factors, or a grouping expression that makes several
# (`g/h`, `g + h`, `g * h`), are errors naming them. `one_way` is TRUE for `y ~ 1 + (1 | g)`.
parse_mixed_formula <- function(formula, call = NULL) {
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
  group <- single_grouping_factor(bars, formula, call)
  fixed_rhs <- drop_bars(rhs) %||% 1
  random <- unlist(lapply(bars, random_terms), recursive = FALSE)
  list(response = formula[[2L]], fixed = fixed_rhs, random = random, group = group,
       group_name = deparse1(group), env = environment(formula),
       one_way = is_intercept_only(fixed_rhs, environment(formula)) && length(random) == 1L &&
         is_intercept_only(random[[1L]], environment(formula)))
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

# The right-hand side without its bars (lme4's nobars); NULL when nothing is left.
drop_bars <- function(expr) {
  if (is_bar(strip_parens(expr))) return(NULL)
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

# The one grouping expression of the bars; `a:b` is one factor (the interaction).
single_grouping_factor <- function(bars, formula, call) {
  groups <- lapply(bars, function(b) b[[3L]])
  labels <- unique(vapply(groups, deparse1, ""))
  nested <- vapply(groups, function(g) {
    g <- strip_parens(g)
    is.call(g) && deparse1(g[[1L]]) %in% c("/", "+", "*")
  }, logical(1))
  if (length(labels) > 1L || any(nested)) {
    factors <- unique(unlist(lapply(groups, grouping_factor_names)))
    hnm_abort(sprintf(paste("`%s` has more than one grouping factor (%s); hnm fits models with",
                            "one grouping factor (use lme4::lmer() for crossed or nested",
                            "random effects)."), deparse1(formula), paste(factors, collapse = ", ")),
              call = call, class = "hnm_error_unsupported_formula")
  }
  strip_parens(groups[[1L]])
}

# The factors a grouping expression makes, as lme4 expands it: g/h is g and g:h.
grouping_factor_names <- function(g) {
  g <- strip_parens(g)
  if (!is.call(g)) return(deparse1(g))
  op <- deparse1(g[[1L]])
  if (op == "/") {
    outer <- grouping_factor_names(g[[2L]])
    return(c(outer, paste(outer[length(outer)], deparse1(strip_parens(g[[3L]])), sep = ":")))
  }
  if (op %in% c("+", "*")) {
    parts <- c(grouping_factor_names(g[[2L]]), grouping_factor_names(g[[3L]]))
    return(if (op == "*") c(parts, paste(parts, collapse = ":")) else parts)
  }
  deparse1(g)
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
