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

# Each random-effects term's number of columns (lme4's getME(, "p_i")) and of theta elements
# ("m_i"), named by the term as lme4 names them ("Days | Subject", "0 + Days | Subject" of
# `(Days || Subject)`, "1 | cask:batch" of `(1 | batch/cask)`).
term_sizes <- function(object) {
  labels <- paste(vapply(object$parsed$random, deparse1, ""), "|", term_groups(object))
  columns <- setNames(random_term_layout(object)$q, labels)
  list(columns = columns, theta = columns * (columns + 1L) / 2)
}

# lme4's getME(, "Tlist"): each term's block of Λ (q x q, lower triangular, from theta), named
# by its grouping factor.
theta_templates <- function(object) {
  template <- unname(relative_factor(object))
  setNames(lapply(block_ranges(object), function(r) template[r, r, drop = FALSE]),
           term_groups(object))
}

# lme4's ST form of a block T of Λ (its getME(, "ST")): T's columns scaled to a unit diagonal,
# with T's diagonal put back (a column of diagonal 0 gives NaN below it, as lme4's).
scaled_template <- function(template) {
  d <- diag(template)
  scaled <- template %*% diag(1 / d, nrow = length(d))
  diag(scaled) <- d
  scaled
}

# lme4's getME(, "Lind"): the element of theta behind each stored value of getME(, "Lambdat")
# (dgCMatrix, column by column: for each level of each term, Λᵀ's column r holds Λ[r, c] for
# c = 1..r), so that `Lambdat@x <- theta[Lind]` updates Λᵀ as in lme4.
lambda_index <- function(object) {
  sizes <- term_sizes(object)
  starts <- c(0, cumsum(sizes$theta))
  levels <- random_term_layout(object)$levels
  unlist(lapply(seq_along(sizes$columns), function(t) {
    q <- sizes$columns[[t]]
    # theta's position of Λ[r, c] (its lower triangle by columns) in Λᵀ's stored order.
    position <- matrix(0L, q, q)
    position[lower.tri(position, diag = TRUE)] <- seq_len(q * (q + 1L) / 2)
    level <- unlist(lapply(seq_len(q), function(r) position[r, seq_len(r)]))
    rep(as.integer(starts[t] + level), levels[t])
  }), use.names = FALSE)
}

# lme4's getME(, "RX"): the upper triangular Cholesky factor of X'WX - X'WZΛ(ΛᵀZᵀWZΛ + I)⁻¹ΛᵀZᵀWX,
# whose inverse crossproduct times sigma^2 is vcov(): from vcov() and sigma().
fixed_factor <- function(object) {
  covariance <- as.matrix(vcov(object))
  names <- names(object$beta)
  structure(chol(object$sigma^2 * solve(covariance)), dimnames = list(names, names))
}

# lme4's getME(, "u"): the spherical random effects, b = Λu. The conditional modes solve
# (ΛᵀZᵀWZΛ + I)u = ΛᵀZᵀW(y - Xβ), so u lies in the row space of Λ and is Λ⁺b level by level,
# with the pseudo-inverse of each term's block (a zero column of a singular block gives 0).
spherical_modes <- function(object) {
  b <- random_modes(object)
  layout <- random_term_layout(object)
  starts <- random_term_starts(object)
  templates <- theta_templates(object)
  unlist(lapply(seq_along(templates), function(t) {
    modes <- matrix(b[(starts[t] + 1):starts[t + 1L]], nrow = layout$q[t])
    as.vector(pseudo_inverse(templates[[t]]) %*% modes)
  }))
}

# The Moore-Penrose inverse of a small matrix, its singular values below n eps times the
# largest taken as 0 (MASS::ginv()'s rule).
pseudo_inverse <- function(x) {
  s <- svd(x)
  kept <- s$d > max(dim(x)) * .Machine$double.eps * max(s$d, 0)
  if (!any(kept)) return(t(x) * 0)
  s$v[, kept, drop = FALSE] %*% (t(s$u[, kept, drop = FALSE]) / s$d[kept])
}

# lme4's getME(, "Ztlist"): Zᵀ's rows split by term and column ("Subject.(Intercept)",
# "Subject.Days"), each the levels x rows block of one column of one term.
random_design_list <- function(object) {
  zt <- random_design_transposed(object)
  layout <- random_term_layout(object)
  starts <- random_term_starts(object)
  blocks <- unlist(lapply(seq_along(layout$q), function(t) {
    lapply(seq_len(layout$q[t]), function(c) {
      zt[starts[t] + seq(c, by = layout$q[t], length.out = layout$levels[t]), , drop = FALSE]
    })
  }))
  setNames(blocks, unlist(Map(function(group, names) paste(group, names, sep = "."),
                              term_groups(object), object$random_names)))
}

# lme4's getME(, "mmList"): each term's model matrix (its left-hand side over the fit's model
# frame), named as term_sizes() names the terms.
random_model_matrices <- function(object) {
  frame <- model.frame(object)
  environment <- object$parsed$env %||% globalenv()
  setNames(lapply(object$parsed$random, function(lhs) {
    stats::model.matrix(stats::as.formula(call("~", lhs), env = environment), frame)
  }), names(term_sizes(object)$columns))
}

# lme4's getME(, "devcomp"): the dimensions, and the components of the criterion at the fit's
# estimates, derived from the fit without its rows: the penalised weighted residual sum of
# squares pwrss = sigma^2 (n - p for REML, n for ML) split into ussq = |u|^2 and wrss, and
# ldL2 = log|ΛᵀZᵀWZΛ + I| from the criterion, lme4's
#   ML:   dev  = ldL2 - ldW + n (1 + log(2 pi pwrss / n)),
#   REML: REML = ldL2 + ldRX2 - ldW + (n - p) (1 + log(2 pi pwrss / (n - p))),
# with ldRX2 = log|RX|^2 and ldW = sum(log(w)).
deviance_components <- function(object) {
  n <- nobs(object)
  p <- length(object$beta)
  reml <- identical(object$method, "REML")
  dims <- c(N = n, n = n, p = p, nmp = n - p, q = random_effects_count(object),
            nth = length(object$theta), useSc = 1L, reTrms = length(object$random_names),
            spFe = 0L, REML = reml_dimension(object), GLMM = 0L, NLMM = 0L)
  storage.mode(dims) <- "integer"
  pwrss <- object$sigma^2 * if (reml) n - p else n
  ussq <- sum(spherical_modes(object)^2)
  ldRX2 <- 2 * sum(log(diag(fixed_factor(object))))
  criterion <- if (object$method %in% c("ML", "REML")) object$deviance else NA_real_
  dof <- if (reml) n - p else n
  ldL2 <- criterion - weights_constant(object) - dof * (1 + log(2 * pi * pwrss / dof)) -
    if (reml) ldRX2 else 0
  cmp <- c(ldL2 = ldL2, ldRX2 = ldRX2, wrss = pwrss - ussq, ussq = ussq, pwrss = pwrss,
           drsum = NA, REML = if (reml) criterion else NA, dev = if (reml) NA else criterion,
           sigmaML = sqrt(pwrss / n), sigmaREML = sqrt(pwrss / (n - p)))
  list(cmp = cmp, dims = dims)
}
