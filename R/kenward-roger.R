# Kenward and Roger's (1997) small-sample inference for the fixed effects: the adjusted
# covariance of beta (pbkrtest's vcovAdj) computed by the core from the per-group blocks, and
# the denominator df and F scaling of a contrast (pbkrtest's Lb_ddf and .KR_adjust, which
# lmerTest's summary(), anova() and contest() call with ddf = "Kenward-Roger").

# The core's pieces with the fixed effects' names: vcov, its adjusted version, the Jacobian
# of vcov in the variance parameters (a list of p x p matrices) and W = 2 I^-1. REML fits
# only, as lmerTest (pbkrtest refits an ML fit by REML, which changes the estimates the
# tests are of; the user can refit instead).
kr_parts <- function(fit, call) {
  if (fit$method != "REML") {
    hnm_abort(paste("Kenward-Roger's method is only available for REML fits (as lmerTest's);",
                    "refit with REML = TRUE."), call = call, class = "hnm_error_argument")
  }
  if (has_several_factors(fit)) return(kr_parts_several(fit, call))
  d <- rust_result(rs_lmm_kenward_roger(lmm_model(fit)), call = call)
  p <- length(fixef(fit))
  k <- d$parameters
  names <- list(names(fixef(fit)), names(fixef(fit)))
  square <- function(x) matrix(x, p, p, byrow = TRUE, dimnames = names)
  list(vcov = square(d$covariance), adjusted = square(d$adjusted),
       jacobian = lapply(seq_len(k), function(i) square(d$covariance_jacobian[(i - 1L) * p * p +
                                                                              seq_len(p * p)])),
       weights = matrix(d$weights, k, k, byrow = TRUE))
}

# Kenward-Roger's denominator df and F scaling of the test of L beta = r with q numerator df
# (pbkrtest's Lb_ddf, q = nrow(L), for lmerTest's t tests; .KR_adjust, q = rank(L), for its
# F tests), with pbkrtest's guards: a V0 below 1e-10 is 0, 0/0 is 1, and the scaling is 1
# where the df are within 1e-2 of 2.
kr_ddf <- function(parts, L, q = nrow(L)) {
  phi <- parts$vcov
  theta <- crossprod(L, solve(L %*% phi %*% t(L), L))
  u <- lapply(parts$jacobian, function(j) theta %*% j)
  traces <- vapply(u, function(x) sum(diag(x)), 0)
  w <- parts$weights
  a1 <- sum(w * outer(traces, traces))
  a2 <- sum(w * outer(seq_along(u), seq_along(u), Vectorize(function(i, j) sum(u[[i]] * t(u[[j]])))))
  b <- (a1 + 6 * a2) / (2 * q)
  g <- ((q + 1) * a1 - (q + 4) * a2) / ((q + 2) * a2)
  denominator <- 3 * q + 2 * (1 - g)
  c1 <- g / denominator
  c2 <- (q - g) / denominator
  c3 <- (q + 2 - g) / denominator
  v0 <- 1 + c1 * b
  if (abs(v0) < 1e-10) v0 <- 0
  v1 <- 1 - c2 * b
  v2 <- 1 - c3 * b
  ratio <- if (abs(1 - a2 / q) < 1e-14 && abs(v1) < 1e-14) 1 else (1 - a2 / q) / v1
  rho <- ratio^2 * v0 / (v2 * q)
  ddf <- 4 + (q + 2) / (q * rho - 1)
  list(ddf = ddf, scaling = if (abs(ddf - 2) < 1e-2) 1 else ddf * (1 - a2 / q) / (ddf - 2))
}

# The t test of one contrast l (lmerTest's contest1D with ddf = "Kenward-Roger"): the adjusted
# standard error and Lb_ddf's df.
kr_contrast <- function(parts, l) {
  list(se = sqrt(quadratic_form(l, parts$adjusted)), df = kr_ddf(parts, matrix(l, 1L))$ddf)
}

# The F test of L beta = 0 (beta already shifted by the right-hand side), as lmerTest's
# contestMD calls pbkrtest's KRmodcomp: L reduced to full row rank (pbkrtest's
# force_full_rank), the Wald statistic on the adjusted covariance over q, scaled by .KR_adjust's
# F scaling. NumDF, DenDF, the unscaled F (lmerTest's mean square over sigma^2), F value, Pr(>F);
# NULL where L has no rows.
kr_f_test <- function(parts, L, beta) {
  if (nrow(L) == 0L) return(NULL)
  rank <- qr(L)$rank
  if (rank == 0L) return(NULL)
  if (rank < nrow(L)) L <- t(qr.Q(qr(t(L)))[, seq_len(rank), drop = FALSE])
  lb <- L %*% beta
  unscaled <- drop(crossprod(lb, solve(L %*% parts$adjusted %*% t(L), lb))) / rank
  adjust <- kr_ddf(parts, L, rank)
  f_value <- unscaled * adjust$scaling
  c(NumDF = rank, DenDF = adjust$ddf, unscaled = unscaled, `F value` = f_value,
    `Pr(>F)` = stats::pf(f_value, rank, adjust$ddf, lower.tail = FALSE))
}

# The fixed-effect table with lmerTest's Kenward-Roger columns: the adjusted standard errors,
# their t values and Lb_ddf's df.
kr_coefficients <- function(fit, coefficients, call) {
  parts <- kr_parts(fit, call)
  p <- nrow(coefficients)
  tests <- lapply(seq_len(p), function(i) kr_contrast(parts, as.numeric(seq_len(p) == i)))
  se <- vapply(tests, `[[`, 0, "se")
  df <- vapply(tests, `[[`, 0, "df")
  estimate <- coefficients[, "Estimate", drop = FALSE]
  t_value <- drop(estimate) / se
  cbind(Estimate = estimate, `Std. Error` = se, df = df, `t value` = t_value,
        `Pr(>|t|)` = 2 * stats::pt(abs(t_value), df, lower.tail = FALSE))
}

#' Kenward-Roger's adjusted covariance of the fixed effects
#'
#' pbkrtest's `vcovAdj()`: Kenward and Roger's (1997) small-sample adjustment of the
#' covariance of \eqn{\hat\beta}, \eqn{\Phi_A = \Phi + 2\Phi [\sum_{rs} W_{rs}(Q_{rs} - P_r
#' \Phi P_s)] \Phi}, with pbkrtest's linear parametrisation of the variance parameters (each
#' variance and covariance of a random-effects block, and \eqn{\sigma^2}) and \eqn{W} twice
#' the inverse of their expected REML information. It is computed from the per-group
#' cross-products, at a cost in groups, not rows (pbkrtest builds \eqn{N \times N}
#' matrices); with several grouping factors, from the random effects' cross-products
#' \eqn{Z^TZ}, \eqn{Z^TX} in their q dimensions (dense \eqn{q \times q} algebra, O(q^3), with the
#' `Matrix` package for \eqn{Z}). `summary(fit, ddf = "Kenward-Roger")`, `anova(fit, ddf = "Kenward-Roger")`,
#' [contest()] and emmeans (`lmer.df = "kenward-roger"`) use it.
#'
#' @param fit An `hnm_fit` fitted by REML. An ML fit is an error (lmerTest's rule; pbkrtest
#'   would refit it by REML): refit with `REML = TRUE`.
#' @return The adjusted covariance matrix, named as `vcov(fit)`.
#' @references Kenward, M. G. and Roger, J. H. (1997). Small sample inference for fixed
#'   effects from restricted maximum likelihood. Biometrics 53, 983-997.
#'
#'   Halekoh, U. and Højsgaard, S. (2014). A Kenward-Roger approximation and parametric
#'   bootstrap methods for tests in linear mixed models - the R package pbkrtest. Journal of
#'   Statistical Software 59(9).
#' @examples
#' fit <- hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy[-(1:5), ], REML = TRUE)
#' vcov_kenward_roger(fit)
#' vcov(fit)
#' @export
vcov_kenward_roger <- function(fit) {
  call <- sys.call()
  if (!inherits(fit, "hnm_fit") || fit$method == "ANOVA") {
    hnm_abort("`fit` must be an hnm_fit fitted by REML.", call = call,
              class = "hnm_error_argument")
  }
  kr_parts(fit, call)$adjusted
}
