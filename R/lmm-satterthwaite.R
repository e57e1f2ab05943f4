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

# lmerTest's F test of L beta = 0 (contestMD): the F statistic on the eigen-directions of
# L vcov L' and its denominator df from theirs.
contrast_f_test <- function(parts, L, beta) {
  eigen_v <- eigen(L %*% parts$vcov %*% t(L), symmetric = TRUE)
  rank <- sum(eigen_v$values > max(sqrt(.Machine$double.eps) * eigen_v$values[1L], 0))
  directions <- crossprod(eigen_v$vectors, L)[seq_len(rank), , drop = FALSE]
  f_value <- sum(drop(directions %*% beta)^2 / eigen_v$values[seq_len(rank)]) / rank
  nu <- vapply(seq_len(rank), function(m) contrast_df(parts, directions[m, ]), 0)
  ddf <- if (rank == 1L) nu else if (all(abs(diff(nu)) < 1e-8)) mean(nu) else
    if (any(nu <= 2)) 2 else {
      e <- sum(nu / (nu - 2))
      2 * e / (e - rank)
    }
  c(NumDF = rank, DenDF = ddf, `F value` = f_value,
    `Pr(>F)` = stats::pf(f_value, rank, ddf, lower.tail = FALSE))
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

# anova() of one fit: for each term of the fixed part, the F test that its coefficients are 0,
# with Satterthwaite's df (lmerTest's table; its type III where no term is marginal to an
# interaction in the model, in which case lmerTest's type III tests other hypotheses).
satterthwaite_anova <- function(fit, call) {
  parts <- satterthwaite_parts(fit, call)
  beta <- fixef(fit)
  assign <- fit$fixed_assign %||% attr(model.matrix(fit), "assign")
  labels <- attr(stats::terms(fit), "term.labels")
  rows <- lapply(seq_along(labels), function(term) {
    L <- diag(length(beta))[assign == term, , drop = FALSE]
    if (nrow(L) == 0L) return(NULL)
    test <- contrast_f_test(parts, L, beta)
    mean_sq <- test[["F value"]] * sigma(fit)^2
    data.frame(`Sum Sq` = mean_sq * test[["NumDF"]], `Mean Sq` = mean_sq,
               NumDF = test[["NumDF"]], DenDF = test[["DenDF"]], `F value` = test[["F value"]],
               `Pr(>F)` = test[["Pr(>F)"]], check.names = FALSE, row.names = labels[term])
  })
  table <- do.call(rbind, rows) %||% data.frame(`Sum Sq` = numeric(), `Mean Sq` = numeric(),
    NumDF = numeric(), DenDF = numeric(), `F value` = numeric(), `Pr(>F)` = numeric(),
    check.names = FALSE)
  structure(table, heading = "Tests of the fixed effects (each term's coefficients = 0) with Satterthwaite's method",
            class = c("anova", "data.frame"))
}
