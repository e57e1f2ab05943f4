# lme4's sparse matrices of the random effects, built only when getME() asks for them: the
# relative covariance factor Λ ("Lambda", "Lambdat"), Zᵀ ("Zt", "Z"), the conditional modes b
# ("b") and the terms' first rows in b ("Gp"). The random effects are in lme4's order: term by
# term (the order of getME(fit, "cnms")), within a term level by level, within a level the
# term's columns. hnm never forms Λ or Z to fit a model (the blocks of the one pass suffice).

# The random-effects terms: each one's columns among the rows' variables (0: the intercept),
# its grouping factor's position among names(ngrps(object)), its width and its levels.
random_term_layout <- function(object) {
  sizes <- object$spec$blocks
  groups <- term_groups(object)
  counts <- ngrps(object)
  list(columns = unname(split(object$spec$random, rep(seq_along(sizes), sizes))),
       factor = match(groups, names(counts)), q = sizes, levels = unname(counts[groups]))
}

# lme4's getME(, "Gp"): where each term's random effects start in b, and their total.
random_term_starts <- function(object) {
  layout <- random_term_layout(object)
  as.integer(cumsum(c(0, layout$q * layout$levels)))
}

# Λ as lme4's getME(, "Lambda"): block-diagonal over the terms, each term's q x q lower
# triangular block (from theta) repeated for every level of its factor.
random_lambda <- function(object) {
  require_matrix_package("getME(, \"Lambda\")")
  layout <- random_term_layout(object)
  template <- relative_factor(object)
  ranges <- block_ranges(object)
  starts <- random_term_starts(object)
  entries <- lapply(seq_along(ranges), function(t) {
    q <- layout$q[t]
    lower <- which(lower.tri(diag(q), diag = TRUE), arr.ind = TRUE)
    first <- starts[t] + (seq_len(layout$levels[t]) - 1L) * q
    list(i = as.vector(outer(lower[, "row"], first, `+`)),
         j = as.vector(outer(lower[, "col"], first, `+`)),
         x = rep(template[ranges[[t]], ranges[[t]], drop = FALSE][lower], layout$levels[t]))
  })
  size <- starts[length(starts)]
  Matrix::sparseMatrix(i = unlist(lapply(entries, `[[`, "i")),
                       j = unlist(lapply(entries, `[[`, "j")),
                       x = unlist(lapply(entries, `[[`, "x")), dims = c(size, size))
}

# Zᵀ as lme4's getME(, "Zt"): one column per row used by the fit, one row per random effect;
# each row has the values of its term's columns at its level of the term's factor.
random_design_transposed <- function(object) {
  require_matrix_package("getME(, \"Zt\")")
  zt <- fit_design(object, "getME(, \"Zt\")", weighted = FALSE, fixed = FALSE)$zt
  # lme4's row names: each random effect's level (the rows' names, one per row of the data,
  # are left out, as fitted() leaves them out: a pointer a row at 1e9 rows).
  levels <- lapply(grouping_terms(object), `[[`, "levels")
  rownames(zt) <- unlist(Map(function(group, q) rep(levels[[group]], each = q),
                             term_groups(object), random_term_layout(object)$q), use.names = FALSE)
  zt
}

# The design of the rows the fit used, for the method `what`: Zᵀ (sparse, one column per row)
# and, when `fixed`, X; with `weighted`, both scaled by sqrt(w) for a weighted fit, whose model
# is that of its scaled rows (R/weights.R).
fit_design <- function(object, what, weighted = TRUE, fixed = TRUE) {
  rows <- lmm_rows(object, what)
  ok <- complete_lmm_rows(object, rows)
  variables <- lapply(flat_variables(rows$variables), `[`, ok)
  zt <- transposed_design(object, variables, row_levels(object, rows, ok))
  x <- if (fixed) new_fixed_matrix(object, variables)
  if (weighted && !is.null(object$rows$weights)) {
    root <- sqrt(used_weights(object, rows))
    zt <- zt %*% Matrix::Diagonal(x = root)
    if (fixed) x <- x * root
  }
  list(zt = zt, x = x)
}

# Zᵀ of rows with the model's `variables` and, per grouping factor, each row's level among the
# fit's (NA: a level not in the fit, whose columns are left out).
transposed_design <- function(object, variables, levels) {
  n <- length(levels[[1L]])
  layout <- random_term_layout(object)
  starts <- random_term_starts(object)
  entries <- lapply(seq_along(layout$q), function(t) {
    q <- layout$q[t]
    level <- levels[[layout$factor[t]]]
    values <- design_columns(layout$columns[[t]], variables, n)
    keep <- rep(!is.na(level), q)
    list(i = (starts[t] + rep((level - 1L) * q, q) + rep(seq_len(q), each = n))[keep],
         j = rep(seq_len(n), q)[keep], x = as.vector(values)[keep])
  })
  Matrix::sparseMatrix(i = unlist(lapply(entries, `[[`, "i")),
                       j = unlist(lapply(entries, `[[`, "j")),
                       x = unlist(lapply(entries, `[[`, "x")),
                       dims = c(starts[length(starts)], n))
}

# Each row's level (its index among the fit's levels) of each grouping factor, for the rows
# `ok`: a list in the order of names(ngrps(object)).
row_levels <- function(object, rows, ok) {
  if (!has_several_factors(object)) return(list(match(row_codes(rows)[ok], object$group_codes)))
  cells <- rows$codes[ok]
  lapply(seq_along(object$factors), function(f) {
    match(object$spec$factors$cell_levels[[f]][cells], object$factors[[f]]$index)
  })
}

# lme4's getME(, "b"): the conditional modes in lme4's order of the random effects.
random_modes <- function(object) {
  effects <- ranef(object, condVar = FALSE)
  layout <- random_term_layout(object)
  unlist(lapply(seq_along(layout$q), function(t) {
    modes <- as.matrix(effects[[layout$factor[t]]])[, object$random_names[[t]], drop = FALSE]
    as.vector(t(modes))
  }), use.names = FALSE)
}

require_matrix_package <- function(what) {
  if (!requireNamespace("Matrix", quietly = TRUE)) {
    hnm_abort(sprintf("%s returns a sparse matrix of the Matrix package, which is not installed.",
                      what), class = "hnm_error_unsupported")
  }
}

# The variances of conditional predictions of a fit with several grouping factors (as
# prediction_variances() gives them for one), from Henderson's equations in the spherical
# random effects u (b = Λu): with C = [ΛᵀZᵀZΛ + I, ΛᵀZᵀX; XᵀZΛ, XᵀX] (ZᵀWZ, ... with prior
# weights), the errors (û − u, β̂ − β)
# have covariance σ²C⁻¹, so the prediction x'β̂ + z'b̂ of x'β + z'b has error variance
# σ² wᵀC⁻¹w with w = (Λᵀz, x), by a sparse Cholesky factor of C (Matrix). A row's level not
# in the fit is predicted at the population value of that factor, whose unknown effect adds
# z_f'Σ_f z_f. `rows` holds the rows' `variables` and their `levels` (row_levels()).
several_prediction_variances <- function(object, rows) {
  require_matrix_package("`se.fit` and intervals of conditional predictions")
  design <- fit_design(object, "`se.fit` and `interval` of conditional predictions")
  lambda <- random_lambda(object)
  zl <- Matrix::t(design$zt) %*% lambda
  x <- design$x
  q <- ncol(zl)
  system <- rbind(cbind(Matrix::crossprod(zl) + Matrix::Diagonal(q), Matrix::crossprod(zl, x)),
                  cbind(Matrix::crossprod(x, zl), Matrix::crossprod(x)))
  # Matrix's cbind of the sparse block and the dense X'ZΛ column block is dense when few
  # levels make it dense enough; Cholesky() takes sparse matrices only.
  system <- Matrix::Matrix(system, sparse = TRUE)
  factor <- Matrix::Cholesky(Matrix::forceSymmetric(system), LDL = FALSE)
  new_x <- new_fixed_matrix(object, rows$variables)
  w <- rbind(Matrix::crossprod(lambda, transposed_design(object, rows$variables, rows$levels)),
             Matrix::t(Matrix::Matrix(new_x, sparse = TRUE)))
  half <- Matrix::solve(factor, Matrix::solve(factor, w, system = "P"), system = "L")
  fit <- object$sigma^2 * Matrix::colSums(half^2)
  # The factors a row's level is new to: their effects' variance z_f'Σ_f z_f.
  layout <- random_term_layout(object)
  columns <- rep(seq_along(layout$q), layout$q)
  for (f in seq_along(rows$levels)) {
    new <- is.na(rows$levels[[f]])
    if (!any(new)) next
    own <- which(layout$factor[columns] == f)
    z <- design_columns(object$spec$random[own], lapply(rows$variables, `[`, new), sum(new))
    sigma <- object$re_covariance[own, own, drop = FALSE]
    fit[new] <- fit[new] + rowSums((z %*% sigma) * z)
  }
  as.vector(fit)
}
