# Kenward-Roger's pieces (kr_parts()) for a fit with several grouping factors, from the
# random effects' cross-products ZᵀZ, ZᵀX and XᵀX (one pass over the fit's rows through the
# sparse Zᵀ), in q-space: never an N x N matrix.
#
# With D the covariance of b (σ²ΛΛᵀ) and V = ZDZᵀ + σ²I, pbkrtest's parameters are each
# variance and covariance of every random-effects block (G_i = ∂V/∂τ_i = Z E_i Zᵀ, E_i the
# block's unit pattern repeated over its factor's levels) and σ² (G = I). Every product it
# needs is one of Uᵀ Σᵏ W for U, W among Z, X and Σ = V⁻¹, k ≤ 3: with C = ΛᵀZᵀZΛ + I,
# σ²ᵏ Σᵏ = I − Σ_{j=1..k} ZΛC⁻ʲΛᵀZᵀ (from ΛᵀZᵀZΛ = C − I), and σ⁴ tr Σ² = N − q + tr C⁻².
# Then, as pbkrtest's vcovAdj: P_i = XᵀΣG_iΣX, Q_ij = XᵀΣG_iΣG_jΣX, Φ = (XᵀΣX)⁻¹, the REML
# information I_ij = tr(ΣG_iΣG_j) − 2tr(ΦQ_ij) + tr(ΦP_iΦP_j), W = 2I⁻¹ (a pseudo-inverse
# when I is near singular, as pbkrtest's), Φ_A = Φ + 2Φ[Σ_ij W_ij(Q_ij − P_iΦP_j)]Φ, and the
# Jacobian of Φ in τ_i, −ΦP_iΦ. The cost is O(q³) for q random effects.
kr_parts_several <- function(fit, call) {
  require_matrix_package("Kenward-Roger's method with several grouping factors")
  design <- if (is.null(fit$rows)) moment_design(fit) else fit_design(fit, "Kenward-Roger's method")
  zt <- design$zt
  x <- design$x
  n <- design$n %||% ncol(zt)
  sigma2 <- fit$sigma^2
  lambda <- as.matrix(random_lambda(fit))
  zz <- as.matrix(Matrix::tcrossprod(zt))
  zx <- as.matrix(zt %*% x)
  xx <- crossprod(x)
  q <- nrow(zz)
  c_inverse <- chol2inv(chol(crossprod(lambda, zz %*% lambda) + diag(q)))
  # Uᵀ Σᵏ W from UᵀW and UᵀZΛ, WᵀZΛ.
  powers <- list(c_inverse, c_inverse %*% c_inverse, c_inverse %*% c_inverse %*% c_inverse)
  power_sums <- Reduce(`+`, powers, accumulate = TRUE)  # Σ_{j ≤ k} C⁻ʲ for k = 1, 2, 3
  sigma_power <- function(uw, ul, wl, k) (uw - ul %*% power_sums[[k]] %*% t(wl)) / sigma2^k
  zl <- zz %*% lambda
  xl <- crossprod(zx, lambda)
  m <- sigma_power(zz, zl, zl, 1)
  k1 <- sigma_power(zx, zl, xl, 1)
  zz2 <- sigma_power(zz, zl, zl, 2)
  zx2 <- sigma_power(zx, zl, xl, 2)
  xx2 <- sigma_power(xx, xl, xl, 2)
  xx3 <- sigma_power(xx, xl, xl, 3)
  phi <- solve(sigma_power(xx, xl, xl, 1))
  trace_sigma2 <- (n - q + sum(powers[[2]] * diag(q))) / sigma2^2
  patterns <- variance_patterns(fit)
  count <- length(patterns) + 1L
  me <- lapply(patterns, function(e) m %*% e)
  p_list <- c(lapply(patterns, function(e) crossprod(k1, e %*% k1)), list(xx2))
  q_of <- function(i, j) {
    if (i < count && j < count) return(crossprod(k1, patterns[[i]] %*% me[[j]] %*% k1))
    if (i < count) return(crossprod(k1, patterns[[i]] %*% zx2))
    if (j < count) return(crossprod(zx2, patterns[[j]] %*% k1))
    xx3
  }
  trace_of <- function(i, j) {
    if (i < count && j < count) return(sum(me[[i]] * t(me[[j]])))
    if (i < count) return(sum(patterns[[i]] * zz2))
    if (j < count) return(sum(patterns[[j]] * zz2))
    trace_sigma2
  }
  information <- matrix(0, count, count)
  adjustment <- matrix(0, ncol(x), ncol(x))
  q_list <- list()
  for (i in seq_len(count)) for (j in i:count) {
    qij <- q_of(i, j)
    q_list[[paste(i, j)]] <- qij
    information[i, j] <- information[j, i] <- trace_of(i, j) - 2 * sum(phi * t(qij)) +
      sum((phi %*% p_list[[i]]) * t(phi %*% p_list[[j]]))
  }
  weights <- 2 * symmetric_inverse(information)
  for (i in seq_len(count)) for (j in i:count) {
    term <- weights[i, j] * (q_list[[paste(i, j)]] - p_list[[i]] %*% phi %*% p_list[[j]])
    adjustment <- adjustment + if (i == j) term else term + t(term)
  }
  names <- list(fit$fixed_names, fit$fixed_names)
  named <- function(a) matrix(a, nrow(a), ncol(a), dimnames = names)
  list(vcov = named(phi), adjusted = named(phi + 2 * phi %*% adjustment %*% phi),
       jacobian = lapply(p_list, function(p) named(-phi %*% p %*% phi)), weights = weights)
}

# For a fit from statistics (one row per cell: n_c, the means v̄_c of the k variables and their
# co-moments W_c), Zᵀ and X of pseudo-rows with the cells' cross-products, which are all that
# ZᵀZ, ZᵀX and XᵀX need, and `n` the number of rows: per cell k + 1 pseudo-rows over (1, v_1,
# ..., v_k), sqrt(n_c) (1, v̄_c) and (0, l_j) for the columns l_j of L = V sqrt(Λ) from the
# eigendecomposition of W_c, so that their sum of outer products is the cells' rows',
# Σ_i (1, v_i)(1, v_i)ᵀ = n_c (1, v̄_c)(1, v̄_c)ᵀ + [0, 0; 0, W_c]. W_c is factored alone, at
# its own scale: beside means of 1e9 its digits would be lost. The pseudo-rows' first
# coordinate is not 1: the intercept is read as a variable (k + 1) of them.
moment_design <- function(fit) {
  s <- fit$stats
  k <- length(s$pilot)
  cells <- length(s$n)
  means <- sweep(matrix(s$means, cells, k, byrow = TRUE), 2L, s$pilot, `+`)
  comoments <- matrix(s$comoments, cells, k * (k + 1L) / 2L, byrow = TRUE)
  lower <- which(lower.tri(diag(k), diag = TRUE), arr.ind = TRUE)
  lower <- lower[order(lower[, "row"], lower[, "col"]), , drop = FALSE]  # packed by rows
  pseudo_rows <- vapply(seq_len(cells), function(c) {
    w <- matrix(0, k, k)
    w[lower] <- comoments[c, ]
    w[lower[, 2:1, drop = FALSE]] <- comoments[c, ]
    e <- eigen(w, symmetric = TRUE)
    cbind(sqrt(s$n[c]) * c(1, means[c, ]),
          rbind(0, e$vectors %*% diag(sqrt(pmax(e$values, 0)), k)))
  }, matrix(0, k + 1L, k + 1L))
  values <- matrix(pseudo_rows, k + 1L)
  variables <- c(lapply(seq_len(k), function(a) values[a + 1L, ]), list(values[1L, ]))
  pseudo <- fit
  pseudo$spec$random[pseudo$spec$random == 0L] <- k + 1L
  pseudo$spec$fixed[pseudo$spec$fixed == 0L] <- k + 1L
  cell <- rep(seq_len(cells), each = k + 1L)
  levels <- lapply(seq_along(fit$factors), function(f) {
    match(fit$spec$factors$cell_levels[[f]][cell], fit$factors[[f]]$index)
  })
  list(zt = transposed_design(pseudo, variables, levels), x = new_fixed_matrix(pseudo, variables),
       n = sum(s$n))
}

# Each random-effects variance and covariance's pattern E_i (q x q, lme4's order of the random
# effects): the block's (r, c) and (c, r) entries, 1, at every level of its factor.
variance_patterns <- function(fit) {
  layout <- random_term_layout(fit)
  starts <- random_term_starts(fit)
  q <- starts[length(starts)]
  unlist(lapply(seq_along(layout$q), function(t) {
    size <- layout$q[t]
    first <- starts[t] + (seq_len(layout$levels[t]) - 1L) * size
    pairs <- which(lower.tri(diag(size), diag = TRUE), arr.ind = TRUE)
    lapply(seq_len(nrow(pairs)), function(k) {
      e <- matrix(0, q, q)
      r <- first + pairs[k, "row"]
      c <- first + pairs[k, "col"]
      e[cbind(r, c)] <- 1
      e[cbind(c, r)] <- 1
      e
    })
  }), recursive = FALSE)
}

# The inverse of a symmetric matrix, or its pseudo-inverse when its smallest eigenvalue is
# below 1e-10 in magnitude (pbkrtest's rule for W).
symmetric_inverse <- function(a) {
  decomposition <- eigen(a, symmetric = TRUE)
  values <- decomposition$values
  if (min(abs(values)) > 1e-10) return(solve(a))
  keep <- abs(values) > max(abs(values)) * 1e-12
  vectors <- decomposition$vectors[, keep, drop = FALSE]
  vectors %*% (t(vectors) / values[keep])
}
