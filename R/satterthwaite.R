# Satterthwaite's degrees of freedom for tests of the fixed effects of fits with covariates
# (lmerTest's method, Kuznetsova, Brockhoff and Christensen 2017, JSS 82(13)). The core gives
# the Hessian of the deviance in the variance parameters and the Jacobian of vcov(beta) in
# them, analytically from the per-group blocks; the formulas below are lmerTest's.

# The asymptotic covariance of the variance parameters, 2 H^-1 (lmerTest's pseudo-inverse over
# the eigenvalues of H above 1e-8 of the largest: the core's internal parametrisation has
# its own scale, on which lmerTest's absolute 1e-8 would mean something else), the Jacobian of
# vcov(beta) as a list of p x p matrices, and vcov(beta).
satterthwaite_parts <- function(fit, call) {
  d <- rust_result(rs_lmm_variance_derivatives(lmm_model(fit)), call = call)
  k <- d$parameters
  eigen_h <- eigen(matrix(d$hessian, k, k, byrow = TRUE), symmetric = TRUE)
  positive <- eigen_h$values > 1e-8 * max(abs(eigen_h$values))
  vectors <- eigen_h$vectors[, positive, drop = FALSE]
  v <- vcov(fit)
  p <- nrow(v)
  jacobian <- lapply(seq_len(k), function(i) {
    matrix(d$covariance_jacobian[(i - 1L) * p * p + seq_len(p * p)], p, p, byrow = TRUE)
  })
  list(varpar_covariance = 2 * vectors %*% (t(vectors) / eigen_h$values[positive]),
       jacobian = jacobian, vcov = v)
}

quadratic_form <- function(x, m) drop(crossprod(x, m %*% x))

# Satterthwaite's df of the t statistic of the contrast l'beta: 2 Var(l'beta)^2 over the
# delta-method variance of its estimate.
contrast_df <- function(parts, l) {
  gradient <- vapply(parts$jacobian, function(j) quadratic_form(l, j), 0)
  2 * quadratic_form(l, parts$vcov)^2 / quadratic_form(gradient, parts$varpar_covariance)
}

# lmerTest's F test of L beta = 0 (contestMD): for one row its t test squared; otherwise the F
# statistic on the eigen-directions of L vcov L' above sqrt(eps) of the largest and its
# denominator df from theirs (get_Fstat_ddf). NULL where L has no rows or no direction.
contrast_f_test <- function(parts, L, beta) {
  if (nrow(L) == 0L) return(NULL)
  f_row <- function(f_value, rank, ddf) {
    c(NumDF = rank, DenDF = ddf, `F value` = f_value,
      `Pr(>F)` = stats::pf(f_value, rank, ddf, lower.tail = FALSE))
  }
  one_direction <- function(l) f_row(sum(l * beta)^2 / quadratic_form(l, parts$vcov), 1L,
                                     contrast_df(parts, l))
  if (nrow(L) == 1L) return(one_direction(drop(L)))
  eigen_v <- eigen(L %*% parts$vcov %*% t(L), symmetric = TRUE)
  rank <- sum(eigen_v$values > max(sqrt(.Machine$double.eps) * eigen_v$values[1L], 0))
  if (rank == 0L) return(NULL)
  directions <- crossprod(eigen_v$vectors, L)[seq_len(rank), , drop = FALSE]
  if (rank == 1L) return(one_direction(drop(directions)))
  f_value <- sum(drop(directions %*% beta)^2 / eigen_v$values[seq_len(rank)]) / rank
  nu <- vapply(seq_len(rank), function(m) contrast_df(parts, directions[m, ]), 0)
  ddf <- if (all(abs(diff(nu)) < 1e-8)) mean(nu) else if (any(nu <= 2)) 2 else {
    e <- sum(nu / (nu - 2))
    2 * e / (e - rank)
  }
  f_row(f_value, rank, ddf)
}

# The F test of a hypothesis matrix L with `ddf`'s method (lmerTest's contestMD): a
# function of L and beta (already shifted by the right-hand side) giving NumDF, DenDF, the
# unscaled F (the mean square over sigma^2; Kenward-Roger scales it into F value), F value and
# Pr(>F), or NULL where L has no direction.
f_tester <- function(fit, ddf, call) {
  if (ddf == "Kenward-Roger") {
    parts <- kr_parts(fit, call)
    return(function(L, beta) kr_f_test(parts, L, beta))
  }
  parts <- satterthwaite_parts(fit, call)
  function(L, beta) {
    test <- contrast_f_test(parts, L, beta)
    if (!is.null(test)) c(test[1:2], unscaled = test[["F value"]], test[3:4])
  }
}

# lmerTest's row of an F table (mk_Ftable): Sum Sq, Mean Sq (the unscaled F times sigma^2),
# NumDF, DenDF, F value, Pr(>F).
f_table_row <- function(test, sigma) {
  mean_sq <- test[["unscaled"]] * sigma^2
  c(`Sum Sq` = mean_sq * test[["NumDF"]], `Mean Sq` = mean_sq, NumDF = test[["NumDF"]],
    DenDF = test[["DenDF"]], `F value` = test[["F value"]], `Pr(>F)` = test[["Pr(>F)"]])
}

# The fixed-effect table with lmerTest's df and Pr(>|t|) columns.
satterthwaite_coefficients <- function(fit, coefficients, call) {
  parts <- satterthwaite_parts(fit, call)
  df <- vapply(seq_len(nrow(coefficients)), function(i) {
    contrast_df(parts, as.numeric(seq_len(nrow(coefficients)) == i))
  }, 0)
  t_value <- coefficients[, "t value"]
  cbind(coefficients[, c("Estimate", "Std. Error"), drop = FALSE], df = df, `t value` = t_value,
        `Pr(>|t|)` = 2 * stats::pt(abs(t_value), df, lower.tail = FALSE))
}

# anova() of one fit: lmerTest's anova.lmerModLmerTest (single_anova). For each term of the
# fixed part, the F test of lmerTest's type I, II or III hypothesis matrix for it (built
# below as lmerTest builds them, on pseudo-rows with the data's X'X: anova_design()), with
# Satterthwaite's df (contestMD); or, with ddf = "lme4", lme4's sequential table without df.
# A term whose hypothesis has no rows (its columns all dropped as aliased) gets a row of NA
# at the end, as lmerTest's.
fixed_effects_anova <- function(fit, type, ddf, call) {
  ddf <- ddf_method(ddf, call)
  if (ddf == "lme4") {
    if (!is.null(type)) {
      hnm_abort(paste("`type` does not apply with ddf = \"lme4\", which gives lme4's sequential",
                      "(type I) table; give one of them."), call = call,
                class = "hnm_error_argument")
    }
    return(lme4_anova(fit))
  }
  type <- anova_type(type, call)
  # A fit without fixed-effect terms (the one-way model's intercept only) has no rows.
  hypotheses <- if (length(fixed_term_labels(fit)) == 0L) list() else {
    design <- anova_design(fit, coding = type == "3")
    switch(type, "1" = contrasts_type1(design), "2" = contrasts_type2(design),
           "3" = contrasts_type3(design))
  }
  test <- if (any(vapply(hypotheses, nrow, 0L) > 0L)) f_tester(fit, ddf, call)
  beta <- fixef(fit)
  tests <- lapply(hypotheses, function(L) test(L, beta))
  tests <- c(tests[!vapply(tests, is.null, NA)],
             lapply(tests[vapply(tests, is.null, NA)], function(x) {
               c(NumDF = NA, DenDF = NA, unscaled = NA, `F value` = NA, `Pr(>F)` = NA)
             }))
  table <- data.frame(`Sum Sq` = numeric(), `Mean Sq` = numeric(), NumDF = numeric(),
                      DenDF = numeric(), `F value` = numeric(), `Pr(>F)` = numeric(),
                      check.names = FALSE)
  for (term in names(tests)) {
    table[term, ] <- f_table_row(tests[[term]], sigma(fit))
  }
  heading <- sprintf("Type %s Analysis of Variance Table with %s's method",
                     as.character(utils::as.roman(as.integer(type))), ddf)
  structure(table, heading = heading,
            hypotheses = hypotheses, class = c("anova", "data.frame"))
}

# The choices of anova()'s `type` and of anova()'s and summary()'s `ddf`, as lmerTest's.
anova_types <- c("III", "II", "I", "3", "2", "1")
ddf_methods <- c("Satterthwaite", "Kenward-Roger", "lme4")

# The labels of the fixed part's terms (none for the one-way model, whose only fixed effect
# is the intercept).
fixed_term_labels <- function(fit) {
  attr(stats::terms(fit), "term.labels")
}

# `ddf` of anova() and summary(): lmerTest's choices.
ddf_method <- function(ddf, call) {
  one_of(ddf %||% ddf_methods, ddf_methods, "ddf", call)
}

# lmerTest's `type`: "III" (its default, also when `type` is NULL or the choices), "II", "I"
# or 3, 2, 1 (numbers or strings), as "3", "2" or "1".
anova_type <- function(type, call) {
  choices <- c(I = "1", II = "2", III = "3", `1` = "1", `2` = "2", `3` = "3")
  if (is.null(type) || identical(type, anova_types)) return("3")
  if (length(type) != 1L || !(is.character(type) || is.numeric(type)) || is.na(type) ||
      !(as.character(type) %in% names(choices))) {
    hnm_abort("`type` must be one of \"III\", \"II\", \"I\" (or 3, 2, 1).", call = call,
              class = "hnm_error_argument")
  }
  choices[[as.character(type)]]
}

# lme4's anova() of one fit: the sequential sums of squares (R_X beta)^2 summed by term, R_X
# the Cholesky factor of X'V^-1 X = sigma^2 vcov^-1 (lme4's RX), F = mean square / sigma^2.
lme4_anova <- function(fit) {
  beta <- fixef(fit)
  labels <- fixed_term_labels(fit)
  assign <- fit$fixed_assign %||% rep(0L, length(beta))
  ss <- if (length(beta)) drop(chol(sigma(fit)^2 * solve(vcov(fit))) %*% beta)^2 else numeric()
  keep <- assign > 0L
  by_term <- split(ss[keep], factor(assign[keep], unique(assign[keep])))
  npar <- lengths(by_term, use.names = FALSE)
  sum_sq <- vapply(by_term, sum, 0, USE.NAMES = FALSE)
  structure(data.frame(npar = npar, `Sum Sq` = sum_sq, `Mean Sq` = sum_sq / npar,
                       `F value` = sum_sq / npar / sigma(fit)^2, check.names = FALSE,
                       row.names = labels[unique(assign[keep])]),
            heading = "Analysis of Variance Table", class = c("anova", "data.frame"))
}

# What lmerTest's hypothesis matrices are built from, without the rows: lmerTest uses the
# rows of X, of X remade with treatment contrasts and of the cell-means design only through
# their cross-products (crossprod, ginv(A) B = (A'A)^+ A'B, pivoted QR, zero columns), so
# pseudo-rows with the data's cross-products give its matrices. Every such design is X_full C
# for a matrix C that depends only on the coding (X_full: all the fit's fixed columns,
# aliased ones included), found on a grid of made-up values of the variables (anova_grid());
# the pseudo-rows of X_full are R = [R_k, R_k^-T M_kd], R_k the Cholesky factor of the kept
# columns' block of M = X_full'X_full, which the fit's group statistics give exactly
# (fixed_crossproducts()). R'R = M up to the aliased columns' residuals, which hnm's rank
# decision on the fit already set to zero. X is R_k (p x p), so the cost is in p, not in rows.
# lmerTest's rank decisions on rows (the pivoted QR at 1e-7 of the remade design, ginv's
# sqrt(eps) of the largest singular value) are made on the pseudo-rows, whose singular values
# are the data's to rounding; an empty cell by pseudo_rows()' rule. `coding`: build what type
# III needs besides X (the grid and the pseudo-rows of designs made on it).
anova_design <- function(fit, coding) {
  kept <- fit$kept
  pseudo <- fixed_pseudo_rows(fit)
  full_names <- colnames(pseudo)
  X <- pseudo[, kept, drop = FALSE]
  attr(X, "assign") <- fit$fixed_assign
  attr(X, "contrasts") <- fit$contrasts
  # A fit from a database has terms without a model frame's dataClasses: its factors are
  # those with levels.
  variables <- rownames(attr(fit$terms, "factors"))
  data_classes <- attr(fit$terms, "dataClasses") %||% stats::setNames(
    ifelse(variables %in% names(fit$xlev$fixed), "factor", "numeric"), variables)
  design <- list(X = X, terms = fit$terms, levels = fit$xlev$fixed, data_classes = data_classes)
  if (!coding) return(design)
  # Type III's designs: the grid, and the pseudo-rows of a design made on it.
  grid <- anova_grid(fit, length(full_names))
  X_grid <- stats::model.matrix(fit$terms, data = grid, contrasts.arg = fit$contrasts)
  if (!identical(colnames(X_grid), full_names)) {
    hnm_abort(paste("anova() could not rebuild the coding of the fixed-effect columns from the",
                    "fit's terms (lmerTest's type III hypotheses need it)."),
              class = "hnm_error_unsupported")
  }
  qr_grid <- qr(X_grid)
  c(design, list(grid = grid, rows = function(d) pseudo_rows(d, X_grid, qr_grid, pseudo)))
}

# The pseudo-rows of all the fit's fixed columns, aliased ones included (anova_design()):
# R = [R_k, R_k^-T M_kd] with R_k the Cholesky factor of the kept columns' block of X'X.
fixed_pseudo_rows <- function(fit) {
  kept <- fit$kept
  full_names <- character(length(fit$spec$fixed))
  full_names[kept] <- fit$fixed_names
  full_names[-kept] <- fit$dropped_fixed
  M <- fixed_crossproducts(fit)
  root <- chol(M[kept, kept, drop = FALSE])
  pseudo <- matrix(0, length(kept), length(full_names), dimnames = list(NULL, full_names))
  pseudo[, kept] <- root
  pseudo[, -kept] <- forwardsolve(t(root), M[kept, -kept, drop = FALSE])
  pseudo
}

# The pseudo-rows of a design made on the grid: R C with X_grid C = design, refused when the
# design is not a linear function of the fit's columns (then lmerTest's hypotheses depend on
# rows that the fit does not keep). A column whose pseudo-rows are below 1e-9 of the norms
# it is combined from is a combination that is zero on the data (an empty cell: lmerTest's
# column of zeros) and is set to exactly 0.
pseudo_rows <- function(design, X_grid, qr_grid, pseudo) {
  C <- qr.coef(qr_grid, design)
  C[is.na(C)] <- 0
  if (any(abs(X_grid %*% C - design) > 1e-8 * max(1, abs(design)))) {
    hnm_abort(paste("anova() cannot build lmerTest's type III hypotheses of this design from",
                    "the fit's columns: a term's cell-means columns are not combinations of",
                    "them; use type = \"I\" or \"II\"."), class = "hnm_error_unsupported")
  }
  rows <- pseudo %*% C
  scale <- crossprod(sqrt(colSums(pseudo^2)), abs(C))
  rows[, sqrt(colSums(rows^2)) <= 1e-9 * scale] <- 0
  attributes(rows) <- c(list(dim = dim(rows), dimnames = list(NULL, colnames(design))),
                        attributes(design)[c("assign", "contrasts")])
  rows
}

# X_full'X_full from the fit's group statistics: per group the within co-moments W_g plus
# n_g times the outer product of the means (pilot + centred means), the intercept's column
# being 1. Exact sums of the rows' products, whatever the number of rows. lmerTest builds the
# hypotheses of a weighted fit from the unweighted X (its model.matrix()), whose cross-products
# the statistics of the scaled rows (R/weights.R) do not give: they are taken from the rows.
fixed_crossproducts <- function(fit) {
  if (!is.null(fit$rows$weights)) {
    rows <- lmm_rows(fit, "The F tests of a weighted fit")
    ok <- complete_lmm_rows(fit, rows)
    return(crossprod(design_columns(fit$spec$fixed, lapply(flat_variables(rows$variables), `[`, ok),
                                    sum(ok))))
  }
  s <- fit_statistics(fit, "The F table (anova())")
  k <- length(s$pilot)
  groups <- length(s$n)
  means <- matrix(s$means, groups, k, byrow = TRUE) + rep(s$pilot, each = groups)
  # Pooled over the cells with several grouping factors (R/factors.R), per group otherwise.
  packed <- s$pooled %||% colSums(matrix(s$comoments, groups, k * (k + 1L) / 2L, byrow = TRUE))
  within <- matrix(0, k, k)
  within[upper.tri(within, diag = TRUE)] <- packed  # row-wise lower = column-wise upper
  within[lower.tri(within)] <- t(within)[lower.tri(within)]
  total <- within + crossprod(means * sqrt(s$n))
  # Variable 0 is the intercept, a column of ones.
  total <- rbind(c(sum(s$n), colSums(means * s$n)), cbind(colSums(means * s$n), total))
  index <- fit$spec$fixed + 1L
  total[index, index, drop = FALSE]
}

# A made-up model frame of the fixed part's variables, on which model.matrix() gives the
# coding maps: every combination of the factors' levels, each with more points of the
# numeric variables' columns (pseudo-random) than there are products of them, so that an
# identity between the columns (multilinear in the numeric columns) holds on the grid only
# if it holds for all values.
anova_grid <- function(fit, columns) {
  terms <- fit$terms
  variables <- as.list(attr(terms, "variables"))[-1L]
  names <- vapply(variables, function(x) {
    paste(deparse(x, width.cutoff = 500L, backtick = !is.symbol(x) && is.language(x)),
          collapse = " ")
  }, "")
  classes <- stats::setNames(attr(terms, "dataClasses")[names] %||% rep(NA, length(names)),
                             names)
  classes[is.na(classes)] <- "numeric"
  levels <- fit$xlev$fixed
  values <- lapply(stats::setNames(names, names), function(v) {
    if (v %in% names(levels)) levels[[v]] else if (classes[[v]] == "logical") c(FALSE, TRUE)
  })
  discrete <- !vapply(values, is.null, NA)
  widths <- ifelse(startsWith(classes, "nmatrix."),
                   suppressWarnings(as.integer(sub("nmatrix.", "", classes, fixed = TRUE))), 1L)
  points <- prod(widths[!discrete] + 1L) + 1L
  combinations <- prod(lengths(values[discrete]))
  rows <- combinations * points
  if (rows * columns > 1e7) {
    hnm_abort(sprintf(paste("anova()'s type III hypotheses need the coding of the fixed part on",
                            "%g combinations of its factors' levels (a %g x %d grid), too",
                            "many to build; use type = \"I\" or \"II\"."),
                      combinations, rows, columns), class = "hnm_error_too_large")
  }
  grid <- expand.grid(c(values[discrete], list(.point = seq_len(points))),
                      KEEP.OUT.ATTRS = FALSE, stringsAsFactors = FALSE)
  numeric_values <- matrix(hashed_uniform(rows * sum(widths[!discrete])), rows)
  used <- cumsum(c(0L, widths[!discrete]))
  frame <- lapply(seq_along(names), function(i) {
    if (discrete[i]) {
      value <- grid[[names[i]]]
      if (is.logical(value)) return(value)
      return(factor(value, levels = values[[i]], ordered = classes[[i]] == "ordered"))
    }
    j <- sum(!discrete[seq_len(i)])
    block <- numeric_values[, used[j] + seq_len(widths[i]), drop = FALSE]
    if (startsWith(classes[[i]], "nmatrix.")) block else as.vector(block)
  })
  names(frame) <- names
  structure(frame, class = "data.frame", row.names = seq_len(rows), terms = terms)
}

# n numbers spread over (-1/2, 1/2) like uniform random numbers, from a fixed hash of their
# index, frac(43758.5453 sin(i)) (no random number stream is read or changed): nonlinear
# in i, so that, unlike a Weyl sequence, its values on an arithmetic progression of i (one
# factor level's rows of the grid) do not lie on a line.
hashed_uniform <- function(n) (sin(seq_len(n)) * 43758.5453) %% 1 - 0.5

# lmerTest's type I hypotheses (get_contrasts_type1): the rows of the term's columns in the
# transposed unit lower-triangular factor of X'X (Doolittle).
contrasts_type1 <- function(design) {
  X <- design$X
  p <- ncol(X)
  if (p == 0L) return(list(matrix(numeric(), nrow = 0L)))
  if (p == 1L && attr(design$terms, "intercept")) return(list(matrix(numeric(), ncol = 1L)))
  L <- if (p == 1L) matrix(1) else t(doolittle(crossprod(X))$L)
  dimnames(L) <- list(colnames(X), colnames(X))
  columns <- term_columns(design$terms, X)[attr(design$terms, "term.labels")]
  lapply(columns, function(rows) L[rows, , drop = FALSE])
}

# lmerTest's type II hypotheses (get_contrasts_type2_unfolded): a term contained in no other
# is tested by its own coefficients; the others by the type I rows of the term with X's
# columns reordered to put it and the terms containing it last.
contrasts_type2 <- function(design) {
  X <- design$X
  labels <- attr(design$terms, "term.labels")
  if (ncol(X) <= 1L || length(labels) <= 1L) return(contrasts_type1(design))
  contained <- containment(design)
  columns <- term_columns(design$terms, X)
  column_terms <- c("(Intercept)", labels)[attr(X, "assign") + 1L]
  lapply(stats::setNames(labels, labels), function(term) {
    if (length(contained[[term]]) == 0L || length(columns[[term]]) == 0L) {
      unit <- diag(ncol(X))
      dimnames(unit) <- list(colnames(X), colnames(X))
      return(unit[columns[[term]], , drop = FALSE])
    }
    last <- unlist(columns[c(term, contained[[term]])])
    order <- c(seq_len(ncol(X))[-last], last)
    L <- t(doolittle(crossprod(X[, order, drop = FALSE]))$L)
    dimnames(L) <- list(colnames(X)[order], colnames(X)[order])
    L[column_terms[order] == term, colnames(X), drop = FALSE]
  })
}

# lmerTest's type III hypotheses (get_contrasts_type3): built on the treatment-coded design
# (X itself when every factor is treatment coded; otherwise remade with treatment contrasts,
# reduced to full rank, and mapped back to X's coding by ginv(X_treatment) X), so that they do
# not depend on the coding.
contrasts_type3 <- function(design) {
  X <- design$X
  labels <- attr(design$terms, "term.labels")
  if (ncol(X) <= 1L || length(labels) <= 1L) return(contrasts_type1(design))
  codings <- unlist(attr(X, "contrasts"))
  if (length(codings) > 0L && is.character(codings) && all(codings == "contr.treatment")) {
    return(type3_treatment(design, X))
  }
  treatment <- stats::model.matrix(design$terms, data = design$grid, contrasts.arg =
                                     if (length(design$levels)) {
                                       lapply(design$levels, function(l) "contr.treatment")
                                     })
  treatment <- full_rank_columns(design$rows(treatment))
  map <- zapsmall(pseudo_inverse(treatment) %*% X)
  lapply(type3_treatment(design, treatment)[labels], function(L) L %*% map)
}

# lmerTest's extract_contrasts_type3 on the treatment-coded, full-rank design X: each term's
# cell-means columns (lmerTest's get_rdX) in X's coordinates, made orthogonal to those of
# the terms containing it, higher-order terms first.
type3_treatment <- function(design, X) {
  terms <- design$terms
  labels <- attr(terms, "term.labels")
  cells <- cell_means_design(design)
  L <- zapsmall(t(pseudo_inverse(X) %*% cells))
  dimnames(L) <- list(colnames(cells), colnames(X))
  columns <- term_columns(terms, X)
  contained <- containment(design)
  for (term in labels[order(attr(terms, "order"), decreasing = TRUE)]) {
    if (length(contained[[term]]) > 0L && length(columns[[term]]) > 0L) {
      L[, columns[[term]]] <- zapsmall(stats::lm.fit(
        x = L[, unlist(columns[contained[[term]]]), drop = FALSE],
        y = L[, columns[[term]], drop = FALSE])$residuals)
    }
  }
  L <- L[colnames(X), , drop = FALSE]
  lapply(columns[labels], function(term) {
    Lt <- t(L[, term, drop = FALSE])
    Lt[rowSums(abs(Lt)) > 1e-8, , drop = FALSE]
  })
}

# lmerTest's get_rdX: the intercept and each term coded without contrasts (~ 0 + term), with
# its message when a cell is empty.
cell_means_design <- function(design) {
  labels <- attr(design$terms, "term.labels")
  parts <- lapply(labels, function(term) {
    stats::model.matrix(stats::as.formula(paste("~ 0 +", term)), data = design$grid)
  })
  cells <- do.call(cbind, parts)
  colnames(cells) <- unlist(lapply(parts, colnames))
  if (attr(design$terms, "intercept") != 0) {
    cells <- cbind(`(Intercept)` = rep(1, nrow(cells)), cells)
  }
  cells <- design$rows(cells)
  empty <- colnames(cells)[apply(cells, 2L, function(x) all(x == 0))]
  if (length(empty)) {
    message(paste(sprintf("Missing cells for: %s. ", paste(empty, collapse = ", ")),
                  "\nInterpret type III hypotheses with care."))
  }
  cells
}

# The columns of X of each term (and of "(Intercept)"), by X's "assign" (lmerTest's term2colX).
term_columns <- function(terms, X) {
  labels <- attr(terms, "term.labels")
  assign <- attr(X, "assign")
  column_terms <- c("(Intercept)", labels)[assign + 1L]
  names <- union(unique(column_terms), labels)
  columns <- lapply(stats::setNames(names, names), function(x) integer())
  by_term <- split(seq_along(column_terms), column_terms)
  columns[names(by_term)] <- by_term
  columns[names]
}

# For each term, the terms that contain it (lmerTest's containment): all its variables
# (those with factor entry 1) and more, with the same numeric variables.
containment <- function(design) {
  factors <- attr(design$terms, "factors")
  labels <- attr(design$terms, "term.labels")
  variables <- lapply(stats::setNames(labels, labels),
                      function(t) rownames(factors)[factors[, t] == 1])
  numerics <- lapply(variables, function(v) v[which(design$data_classes[v] == "numeric")])
  lapply(stats::setNames(labels, labels), function(term) {
    labels[vapply(labels, function(other) {
      all(variables[[term]] %in% variables[[other]]) &&
        length(setdiff(variables[[other]], variables[[term]])) > 0L &&
        setequal(numerics[[term]], numerics[[other]])
    }, NA)]
  })
}

# lmerTest's doolittle(): the LU factors of a square matrix without pivoting, a pivot below
# eps giving a zero column of L, entries below eps set to 0 (its thresholds decide which
# hypotheses are aliased, so they are kept).
doolittle <- function(x, eps = 1e-6) {
  n <- nrow(x)
  L <- U <- matrix(0, n, n)
  diag(L) <- 1
  for (i in seq_len(n)) {
    before <- seq_len(i - 1L)
    for (j in seq_len(n)) U[i, j] <- x[i, j] - sum(L[i, before] * U[before, j])
    if (i < n) {
      for (j in (i + 1L):n) {
        L[j, i] <- if (abs(U[i, i]) < eps) 0 else
          (x[j, i] - sum(L[j, before] * U[before, i])) / U[i, i]
      }
    }
  }
  L[abs(L) < eps] <- 0
  U[abs(U) < eps] <- 0
  list(L = L, U = U)
}

# The Moore-Penrose inverse over the singular values above sqrt(eps) of the largest (MASS's
# ginv, which lmerTest uses).
pseudo_inverse <- function(x) {
  s <- svd(x)
  positive <- s$d > max(sqrt(.Machine$double.eps) * s$d[1L], 0)
  if (!any(positive)) return(array(0, dim(x)[2:1]))
  s$v[, positive, drop = FALSE] %*% ((1 / s$d[positive]) * t(s$u[, positive, drop = FALSE]))
}

# The columns of X that make it full rank, by R's pivoted QR at tolerance 1e-7 (lmerTest's
# ensure_full_rank), with "assign" and "contrasts" kept.
full_rank_columns <- function(X) {
  qr_x <- qr(X, tol = 1e-7, LAPACK = FALSE)
  if (qr_x$rank == ncol(X)) return(X)
  keep <- qr_x$pivot[seq_len(qr_x$rank)]
  reduced <- X[, keep, drop = FALSE]
  attr(reduced, "contrasts") <- attr(X, "contrasts")
  attr(reduced, "assign") <- attr(X, "assign")[keep]
  reduced
}

#' Tests of linear functions of the fixed effects
#'
#' lmerTest's `contest()`: the F test of \eqn{L\beta = r} (`joint = TRUE`) or the \eqn{t} test
#' of each row of \eqn{L} (`joint = FALSE`, with confidence limits), on Satterthwaite's or
#' Kenward-Roger's degrees of freedom, with lmerTest's columns.
#'
#' @param model An `hnm_fit` fitted by ML or REML (Kenward-Roger: REML only, as lmerTest);
#'   other classes are passed to `lmerTest::contest()`.
#' @param L A numeric vector with one coefficient per fixed effect (`fixef(model)`), or a
#'   matrix of such rows; a row of zeros is an error (it tests nothing).
#' @param rhs The right-hand side \eqn{r}: one value, or one per row of `L`. With
#'   `joint = TRUE` it must lie in the range of \eqn{L} (some \eqn{\beta} has
#'   \eqn{L\beta = r}), otherwise the hypothesis is contradictory: an error (lmerTest warns
#'   "Contrast is rank deficient" and tests another hypothesis).
#' @param joint `TRUE` for one F test of all rows, `FALSE` for a \eqn{t} test of each.
#' @param confint,level For `joint = FALSE`: `TRUE` or `FALSE`, the columns `lower` and
#'   `upper`, the limits of the `level` (in (0, 1)) confidence interval of each
#'   \eqn{l'\beta}.
#' @param ddf `"Satterthwaite"` (lmerTest's default) or `"Kenward-Roger"` (pbkrtest's
#'   adjusted covariance, [vcov_kenward_roger()], its denominator df and, for F tests, its F
#'   scaling, as lmerTest).
#' @param ... Not used; an error if given (passed on by the default method).
#' @return A data frame: for `joint = TRUE` the columns `Sum Sq`, `Mean Sq`, `NumDF`,
#'   `DenDF`, `F value`, `Pr(>F)`; otherwise `Estimate`, `Std. Error`, `df`, `t value`,
#'   `lower`, `upper` and `Pr(>|t|)`.
#' @examples
#' fit <- hnm_fit(Reaction ~ Days + I(Days^2) + (Days | Subject), lme4::sleepstudy, REML = TRUE)
#' contest(fit, rbind(c(0, 1, 0), c(0, 0, 1)))
#' contest(fit, rbind(c(0, 1, 0), c(0, 0, 1)), joint = FALSE)
#' contest(fit, rbind(c(0, 1, 0), c(0, 0, 1)), ddf = "Kenward-Roger")
#' @export
contest <- function(model, L, ...) UseMethod("contest")

#' @rdname contest
#' @export
contest.default <- function(model, L, ...) {
  if (!requireNamespace("lmerTest", quietly = TRUE)) {
    hnm_abort("contest() for this class needs the lmerTest package.", class = "hnm_error_argument")
  }
  getExportedValue("lmerTest", "contest")(model, L, ...)
}

#' @rdname contest
#' @export
contest.hnm_fit <- function(model, L, rhs = 0, joint = TRUE, confint = TRUE, level = 0.95,
                            ddf = c("Satterthwaite", "Kenward-Roger"), ...) {
  call <- sys.call()
  check_no_dots(list(...), call)
  beta <- fixef(model)
  L <- contrast_matrix(L, length(beta), call)
  if (!is.numeric(rhs) || anyNA(rhs) || !length(rhs) %in% c(1L, nrow(L))) {
    hnm_abort("`rhs` must be one number or one per row of `L`.", call = call,
              class = "hnm_error_argument")
  }
  check_flag(joint, "joint", call)
  check_flag(confint, "confint", call)
  if (!is.numeric(level) || length(level) != 1L || is.na(level) || level <= 0 || level >= 1) {
    hnm_abort("`level` must be one number strictly between 0 and 1.", call = call,
              class = "hnm_error_argument")
  }
  ddf <- one_of(ddf, c("Satterthwaite", "Kenward-Roger"), "ddf", call)
  if (model$method == "ANOVA") {
    hnm_abort("contest() needs an ML or REML fit (an ANOVA fit has no degrees of freedom).",
              call = call, class = "hnm_error_argument")
  }
  rhs <- rep_len(rhs, nrow(L))
  if (joint) {
    # L beta = r as L (beta - b0) = 0 with b0 = L^+ r, which needs L b0 = r.
    b0 <- drop(pseudo_inverse(L) %*% rhs)
    if (any(abs(drop(L %*% b0) - rhs) > 1e-8 * max(1, abs(rhs)))) {
      hnm_abort(paste("`rhs` is not in the range of `L`: no coefficients satisfy L beta = rhs",
                      "(its rows are linearly dependent and `rhs` does not follow them)."),
                call = call, class = "hnm_error_argument")
    }
    test <- f_tester(model, ddf, call)(L, beta - b0)
    return(as.data.frame(as.list(f_table_row(test, model$sigma)), check.names = FALSE))
  }
  parts <- if (ddf == "Kenward-Roger") kr_parts(model, call) else satterthwaite_parts(model, call)
  rows <- lapply(seq_len(nrow(L)), function(i) {
    l <- L[i, ]
    estimate <- sum(l * beta)
    test <- if (ddf == "Kenward-Roger") kr_contrast(parts, l) else
      list(se = sqrt(quadratic_form(l, parts$vcov)), df = contrast_df(parts, l))
    t_value <- (estimate - rhs[i]) / test$se
    limits <- estimate + c(-1, 1) * stats::qt((1 + level) / 2, test$df) * test$se
    c(Estimate = estimate, `Std. Error` = test$se, df = test$df, `t value` = t_value,
      if (confint) c(lower = limits[1L], upper = limits[2L]),
      `Pr(>|t|)` = 2 * stats::pt(abs(t_value), test$df, lower.tail = FALSE))
  })
  as.data.frame(do.call(rbind, rows), check.names = FALSE)
}

# `L` as a matrix of rows of p coefficients (a vector is one row).
contrast_matrix <- function(L, p, call) {
  if (is.numeric(L) && is.null(dim(L))) L <- matrix(L, 1L)
  if (!is.numeric(L) || !is.matrix(L) || ncol(L) != p || anyNA(L)) {
    hnm_abort(sprintf(paste("`L` must be a numeric vector of %d coefficients, one per fixed",
                            "effect, or a matrix of such rows."), p),
              call = call, class = "hnm_error_argument")
  }
  zero <- which(rowSums(abs(L)) == 0)
  if (length(zero)) {
    hnm_abort(sprintf("`L` has a row of zeros (row %s), which tests nothing.",
                      paste(zero, collapse = ", ")), call = call, class = "hnm_error_argument")
  }
  L
}
