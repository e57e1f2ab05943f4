# Random effects (BLUPs) and per-group coefficients, shaped as lme4's for merMod.

#' Random effects and per-group coefficients of an `hnm_fit`
#'
#' `ranef` gives the conditional modes (BLUPs) of the group effects,
#' \eqn{\hat a_j = \hat\tau^2 n_j/(\hat\sigma^2 + n_j\hat\tau^2)\,(\bar y_j - \hat\mu)}, and,
#' with `condVar = TRUE`, their conditional variances given the data at the estimates,
#' \eqn{\hat\sigma^2\hat\tau^2/(\hat\sigma^2 + n_j\hat\tau^2)}, as lme4's `ranef(condVar = TRUE)`
#' computes them (treating \eqn{\hat\mu} as known). `coef` gives each group's intercept
#' \eqn{\hat\mu + \hat a_j}, as lme4's `coef`.
#'
#' @param object An `hnm_fit`.
#' @param condVar Logical: attach the conditional variances as attribute `"postVar"`
#'   (lme4's older name `postVar =` is taken too, with lme4's deprecation warning).
#' @param drop,whichel As lme4's: `drop = TRUE` makes the data frame of a factor with one
#'   random-effects column a vector named by its levels (with attribute `"postVar"` a vector of
#'   the conditional variances), and `whichel` names the grouping factors to keep.
#' @param x A `ranef.hnm` object.
#' @param row.names,optional Ignored.
#' @param ... Not used (an error if given); for `print`, passed to `print()`.
#' @return `ranef`: an object of class `ranef.hnm`, a list named by the grouping factor
#'   holding one data frame with column `"(Intercept)"` and the group levels as row names
#'   (lme4's `ranef.mer` shape); with `condVar`, the data frame has attribute `"postVar"`, a
#'   1 x 1 x groups array. Its `as.data.frame` gives lme4's columns `grpvar`, `term`,
#'   `grp` (levels ordered by the effect, as lme4), `condval` and `condsd`; `plot` draws a
#'   caterpillar plot (see [plot.ranef.hnm()]). `coef`: a list named by the grouping factor
#'   holding a data frame with column `"(Intercept)"`, one row per group; for a general
#'   model, per factor the fixed effects with that factor's random effects added, and first
#'   (as lme4) every random-effects column without a fixed effect, 0 where the factor has no
#'   effect on it.
#' @examples
#' fit <- hnm_fit(y ~ 1 | g, wheat)
#' ranef(fit)
#' as.data.frame(ranef(fit))
#' coef(fit)
#' @name ranef.hnm_fit
NULL

#' @rdname ranef.hnm_fit
#' @export
ranef.hnm_fit <- function(object, condVar = TRUE, drop = FALSE, whichel = NULL, ...) {
  dots <- list(...)
  if (!is.null(dots$postVar)) {
    # lme4's old name of condVar, taken with lme4's warning.
    warning("'postVar' is deprecated: please use 'condVar' instead", call. = FALSE)
    condVar <- dots$postVar
    dots$postVar <- NULL
  }
  check_ranef_arguments(object, condVar, drop, whichel, dots)
  by_factor <- if (is_one_way(object)) list(one_way_modes(object)) else if (has_several_factors(object)) {
    rust_result(rs_lmm_ranef_factors(lmm_model(object)))
  } else {
    list(rust_result(rs_lmm_ranef(lmm_model(object))))
  }
  groups <- grouping_terms(object)
  effects <- Map(function(group, re) {
    names <- unlist(object$random_names[group$terms])
    q <- length(names)
    m <- length(group$levels)
    effects <- as.data.frame(matrix(re$modes, m, q, byrow = TRUE, dimnames = list(group$levels, names)),
                             optional = TRUE)
    names(effects) <- names
    if (condVar) {
      covariances <- array(re$conditional_covariances, c(q, q, m))
      ends <- cumsum(lengths(object$random_names[group$terms]))
      blocks <- Map(`:`, ends - lengths(object$random_names[group$terms]) + 1L, ends)
      attr(effects, "postVar") <- if (length(blocks) == 1L) covariances else
        setNames(lapply(blocks, function(i) covariances[i, i, , drop = FALSE]),
                 vapply(object$random_names[group$terms], `[`, "", 1L))
    }
    effects
  }, groups, by_factor)
  out <- setNames(effects, names(groups))[whichel %||% names(groups)]
  # lme4's drop: a factor's one column becomes a named vector, its postVar a vector too.
  if (drop) out <- lapply(out, function(effects) {
    if (ncol(effects) > 1L) return(effects)
    post_var <- attr(effects, "postVar")
    structure(drop(as.matrix(effects)), postVar = if (!is.null(post_var)) drop(post_var))
  })
  structure(out, class = "ranef.hnm")
}

# Each grouping factor's name, level labels and random-effects terms (indices into
# `random_names`), in lme4's order.
grouping_terms <- function(object) {
  groups <- term_groups(object)
  factors <- object$factors %||% list(list(name = object$group_name, levels = object$levels))
  setNames(lapply(factors, function(f) list(levels = f$levels, terms = which(groups == f$name))),
           vapply(factors, `[[`, "", "name"))
}

#' @rdname ranef.hnm_fit
#' @export
coef.hnm_fit <- function(object, ...) {
  check_no_dots(list(...), sys.call())
  beta <- fixef(object)
  effects <- ranef(object, condVar = FALSE)
  # lme4's columns: a random-effects column without a fixed effect (`(0 + z | g)` with no z in
  # the fixed part) is a coefficient of every factor, at 0 where it has no effect, before
  # the fixed effects.
  missing <- setdiff(unlist(lapply(effects, names)), names(beta))
  beta <- c(setNames(numeric(length(missing)), missing), beta)
  structure(lapply(effects, function(effects) {
    out <- as.data.frame(matrix(beta, nrow(effects), length(beta), byrow = TRUE,
                                dimnames = list(rownames(effects), names(beta))), optional = TRUE)
    for (name in names(effects)) out[[name]] <- out[[name]] + effects[[name]]
    out
  }), class = "coef.mer")
}

# lme4's `condVar`, `drop` and `whichel` (the grouping factors to keep).
check_ranef_arguments <- function(object, condVar, drop, whichel, dots) {
  check_no_dots(dots, sys.call(-1L))
  check_flag(condVar, "condVar", sys.call(-1L))
  check_flag(drop, "drop", sys.call(-1L))
  names <- names(ngrps(object))
  if (!is.null(whichel) && !(is.character(whichel) && length(whichel) > 0L && all(whichel %in% names))) {
    hnm_abort(sprintf("`whichel` must name grouping factors among %s.",
                      paste0("\"", names, "\"", collapse = ", ")), class = "hnm_error_argument")
  }
}

#' @rdname ranef.hnm_fit
#' @export
as.data.frame.ranef.hnm <- function(x, row.names = NULL, optional = FALSE, ...) {
  check_no_dots(list(...), sys.call())
  # lme4's as.data.frame() fails on ranef(drop = TRUE)'s vectors (they have no term names).
  if (!all(vapply(x, is.data.frame, logical(1L)))) {
    hnm_abort("as.data.frame() needs ranef()'s data frames: call ranef() with `drop = FALSE`.",
              call = sys.call(), class = "hnm_error_argument")
  }
  # lme4's layout: one row per group and term, groups ordered by the first term's effect.
  frames <- Map(function(effects, name) {
    terms <- names(effects)
    groups <- stats::reorder(factor(rownames(effects)), effects[[1L]], FUN = mean)
    out <- data.frame(grpvar = name, term = factor(rep(terms, each = nrow(effects)), terms),
                      grp = rep(groups, length(terms)), condval = unlist(effects, use.names = FALSE),
                      stringsAsFactors = FALSE)
    post_var <- attr(effects, "postVar")
    if (!is.null(post_var)) {
      if (!is.list(post_var)) post_var <- list(post_var)
      out$condsd <- unlist(lapply(post_var, function(v) {
        unlist(lapply(seq_len(dim(v)[1L]), function(i) sqrt(v[i, i, ])))
      }))
    }
    out
  }, x, names(x))
  out <- do.call(rbind, unname(frames))
  rownames(out) <- NULL
  out
}

#' @rdname ranef.hnm_fit
#' @export
print.ranef.hnm <- function(x, ...) {
  check_no_dots(list(...), sys.call(), allowed = print_arguments)
  for (name in names(x)) {
    effects <- x[[name]]
    attr(effects, "postVar") <- NULL
    cat("$", name, "\n", sep = "")
    print(effects, ...)
    cat("\n")
  }
  if (!is.null(attr(x[[1L]], "postVar"))) {
    cat(sprintf("with conditional variances for %s\n", paste0("\"", names(x), "\"", collapse = " ")))
  }
  invisible(x)
}
