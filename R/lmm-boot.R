# Parametric bootstrap of fits with covariates or random slopes, simulated and refitted in
# sufficient-statistic space (the generator: src/rust/hnm-core/src/bootstrap_lmm.rs).

#' Parametric bootstrap of a fit, in statistic space
#'
#' Simulates `nsim` data sets from the fitted model at its estimates,
#' \eqn{y^* = X\hat\beta + Zb^* + \varepsilon^*} with \eqn{b^*_j \sim N(0, \hat\Sigma)} and
#' \eqn{\varepsilon^* \sim N(0, \hat\sigma^2 I)}, keeping every covariate and group as in the
#' data, and refits the model (by the fit's criterion, ML or REML, warm-started at its
#' estimate) to each. Nothing of size N is simulated: a replicate changes only the
#' response's per-group statistics (its group means and its co-moments with the model's
#' variables), whose exact joint distribution given the covariates is Gaussian plus one
#' \eqn{\sigma^2\chi^2} on the residual degrees of freedom
#' \eqn{\sum_j (n_j - 1 - r_j)}, \eqn{r_j} the rank of the covariates' variation within group
#' \eqn{j}; so a replicate costs O(groups), however many rows the data have. Draws use R's
#' random-number generator (normals and chi-squares drawn in R), so `seed` (or
#' [set.seed()]) reproduces the result; the refits run in Rust on
#' `getOption("hnm.threads", 2)` threads and Ctrl-C stops them.
#'
#' @param object A fit of [hnm_fit()] with covariates or random slopes (class `hnm_lmm`), by
#'   ML or REML.
#' @param nsim Number of replicates: a whole number from 2 to 10,000,000.
#' @param seed `NULL` (use the current random-number state) or a seed for [set.seed()]; the
#'   caller's random-number state is restored afterwards when a seed is given.
#' @param parallel,ncpus As lme4's `bootMer()`: `"no"` refits on one thread, `"multicore"` or
#'   `"snow"` on `ncpus` threads (default `getOption("hnm.threads", 2)`).
#' @param quiet `TRUE` hides the progress bar shown for runs predicted to take over 3 seconds.
#' @param ... Not used (an error when given).
#' @return An object of class `hnm_bootstrap`, a list with `t0` (the estimates: lme4's
#'   `.sig01, .sig02, ...` (standard deviations and correlations of the random effects, in
#'   the order of lme4's `confint(method = "boot")`), `.sigma` and the fixed effects), `t`
#'   (an `nsim` by `length(t0)` matrix of the replicates' estimates, a row of `NA` where a
#'   refit failed), `R` (`nsim`), `failed` (the number of failed refits), `seed` (the seed
#'   given, or the random-number state the draws started from) and `method` (the fit's
#'   criterion). Column names follow `oldNames = TRUE`; [confint()] renames them.
#' @seealso [confint.hnm_lmm()] for the percentile, basic and normal intervals from it.
#' @examples
#' fit <- hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' b <- bootstrap(fit, nsim = 100, seed = 1)
#' b
#' apply(b$t, 2, sd)
#' @export
bootstrap <- function(object, ...) UseMethod("bootstrap")

#' @rdname bootstrap
#' @export
bootstrap.default <- function(object, ...) {
  hnm_abort(sprintf(paste("bootstrap() needs a fit with covariates or random slopes from",
                          "hnm_fit(), not an object of class %s; for one-way fits use",
                          "confint(fit, method = \"boot\")."), class(object)[1L]),
            call = sys.call())
}

#' @rdname bootstrap
#' @export
bootstrap.hnm_lmm <- function(object, nsim = 1000, seed = NULL, parallel = NULL, ncpus = NULL,
                              quiet = FALSE, ...) {
  call <- sys.call()
  check_no_dots(list(...), call)
  check_count(nsim, "nsim", 2L, call, max = 1e7)
  check_flag(quiet, "quiet", call)
  threads <- boot_threads(parallel, ncpus, call)
  rng <- use_seed(seed)
  on.exit(rng$restore())
  spec <- object$spec
  coefficients <- numeric(length(spec$fixed))
  coefficients[object$kept] <- object$beta
  s <- object$stats
  generator <- rust_result(rs_lmm_boot_generator(
    s$pilot, s$n, s$means, s$comoments, spec$response, spec$fixed, spec$random, spec$blocks,
    coefficients, as.double(object$re_covariance), object$sigma), call = call)
  reml <- object$method == "REML"
  p <- length(object$beta)
  q <- nrow(object$re_covariance)
  refit_chunk <- function(size) {
    normals <- stats::rnorm(size * generator$normals)
    chi_squares <- stats::rchisq(size, generator$residual_df)
    out <- rust_result(rs_lmm_boot_refit(
      generator$generator, spec$response, spec$fixed, spec$random, spec$blocks, reml,
      object$convergence$internal_theta, normals, chi_squares, threads), call = call)
    as_rows <- function(x, width) {
      if (length(x) != size * width) return(matrix(NA_real_, size, width))
      matrix(x, size, width, byrow = TRUE)
    }
    cbind(sd_cor_rows(as_rows(out$re_covariance, q * q), as_rows(out$sigma, 1L),
                      lengths(object$random_names)),
          as_rows(out$beta, p))
  }
  draws <- do.call(rbind, in_chunks(nsim, generator$normals, refit_chunk, quiet))
  t0 <- c(sd_cor_rows(matrix(as.double(object$re_covariance), 1L), matrix(object$sigma),
                      lengths(object$random_names)), object$beta)
  names(t0) <- colnames(draws) <- c(boot_variance_names(object, TRUE), names(object$beta))
  failed <- sum(!stats::complete.cases(draws[, c(".sigma", names(object$beta)), drop = FALSE]))
  if (failed > 0L) {
    hnm_warn(sprintf("%d of %d bootstrap refits failed (rows of NA in `t`).", failed, nsim),
             call = call)
  }
  structure(list(t0 = t0, t = draws, R = as.integer(nsim), failed = failed, seed = rng$state,
                 method = object$method), class = "hnm_bootstrap")
}

#' @rdname bootstrap
#' @param x An `hnm_bootstrap` object.
#' @export
print.hnm_bootstrap <- function(x, ...) {
  cat(sprintf("Parametric bootstrap of an %s fit in statistic space: %d replicates (%d failed)\n",
              x$method, x$R, x$failed))
  table <- cbind(original = x$t0,
                 bias = colMeans(x$t, na.rm = TRUE) - x$t0,
                 `std. error` = apply(x$t, 2L, stats::sd, na.rm = TRUE))
  print(table, ...)
  invisible(x)
}

# Per replicate (rows): lme4's standard deviations and correlations of the random effects
# from Σ (q × q, one row per replicate, row-major), block by block in θ's order (each block's
# lower triangle by columns: the diagonal an SD, below it a correlation), then σ.
sd_cor_rows <- function(covariance, sigma, blocks) {
  q <- sum(blocks)
  entry <- function(r, c) covariance[, (r - 1L) * q + c]
  columns <- list()
  first <- 0L
  for (size in blocks) {
    index <- first + seq_len(size)
    for (c in index) for (r in c:max(index)) {
      columns[[length(columns) + 1L]] <- if (r == c) sqrt(pmax(entry(r, r), 0)) else
        entry(r, c) / sqrt(entry(r, r) * entry(c, c))
    }
    first <- first + size
  }
  cbind(do.call(cbind, columns), sigma)
}

# lme4's names of the SDs, correlations and σ: `.sig01, ..., .sigma`, or with
# `oldNames = FALSE` its `sd_x|g`, `cor_x.y|g` and `sigma`.
boot_variance_names <- function(object, oldNames) {
  names <- unlist(lapply(object$random_names, function(block) {
    out <- character()
    for (c in seq_along(block)) for (r in c:length(block)) {
      out <- c(out, if (r == c) sprintf("sd_%s|%s", block[r], object$group_name) else
        sprintf("cor_%s.%s|%s", block[r], block[c], object$group_name))
    }
    out
  }))
  if (isTRUE(oldNames)) c(sprintf(".sig%02d", seq_along(names)), ".sigma") else c(names, "sigma")
}

# The intervals of a bootstrap of a general fit: rows lme4's names, with the bootstrap as
# attribute "boot". SDs are kept >= 0 and correlations in [-1, 1] (basic and normal
# intervals can reach past them).
lmm_boot_intervals <- function(object, level, type, nsim, seed, parallel, ncpus, quiet,
                               oldNames, call) {
  boot <- bootstrap.hnm_lmm(object, nsim = nsim, seed = seed, parallel = parallel,
                            ncpus = ncpus, quiet = quiet)
  limits <- boot_limits(boot$t0, boot$t, level, type)
  variance <- boot_variance_names(object, TRUE)
  is_sd <- grepl("^sd_", boot_variance_names(object, FALSE)) | variance == ".sigma"
  limits[which(is_sd), ] <- pmax(limits[which(is_sd), ], 0)
  is_cor <- seq_along(variance)[!is_sd]
  limits[is_cor, ] <- pmin(pmax(limits[is_cor, ], -1), 1)
  dimnames(limits) <- list(c(boot_variance_names(object, oldNames), names(object$beta)),
                           percent_labels(level))
  structure(limits, boot = boot, failed = boot$failed,
            class = c("hnm_boot_confint", "matrix", "array"))
}
