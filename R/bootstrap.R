# Parametric bootstrap of fits with covariates or random slopes, simulated and refitted in
# sufficient-statistic space (the generator:
# src/rust/hnm-core/src/inference/bootstrap_lmm/generator.rs).

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
#' \eqn{j}; so a replicate costs O(groups), however many rows the data have. R's
#' random-number generator draws each replicate's residual chi-square and the 64-bit seed of
#' its standard normals, which Rust draws from it (xoshiro256++ and Marsaglia's polar method)
#' on the refit threads, so `seed` (or [set.seed()]) reproduces the result whatever the
#' number of threads; the refits run in Rust on `getOption("hnm.threads", 2)` threads and
#' Ctrl-C stops them.
#'
#' With several grouping factors each replicate is simulated on the fit's rows instead, as
#' [simulate()] draws it (every factor's effects and the errors), and refitted from a model
#' rebuilt from them (one pass over the rows each, on one thread, with no progress bar).
#'
#' The parametric bootstrap assumes the model: normal random effects and errors, with the
#' fitted \eqn{\hat\beta}, \eqn{\hat\Sigma} and \eqn{\hat\sigma} taken as the truth, as
#' lme4's `bootMer()` does (`use.u = FALSE`, `type = "parametric"`). A singular fit simulates
#' no variation along its zero directions.
#'
#' @param object A fit of [hnm_fit()] by ML or REML (the one-way model `y ~ 1 | g`
#'   included: its replicates' statistics are its group means and within-group sums of squares).
#' @param nsim Number of replicates: a whole number from 2 to 10,000,000.
#' @param seed `NULL` (use the current random-number state) or a seed for [set.seed()]; the
#'   caller's random-number state is restored afterwards when a seed is given.
#' @param parallel,ncpus As lme4's `bootMer()`: `"no"` refits on one thread, `"multicore"` or
#'   `"snow"` on `ncpus` threads (default `getOption("hnm.threads", 2)`).
#' @param quiet `TRUE` hides the progress bar shown for runs predicted to take over 3 seconds.
#' @param ... Not used by `bootstrap()` (an error when given); passed to [print()] by the print
#'   method.
#' @return An object of class `hnm_bootstrap`, a list with `t0` (the estimates: lme4's
#'   `.sig01, .sig02, ...` (standard deviations and correlations of the random effects, in
#'   the order of lme4's `confint(method = "boot")`), `.sigma` and the fixed effects), `t`
#'   (an `nsim` by `length(t0)` matrix of the replicates' estimates, a row of `NA` where a
#'   refit failed), `R` (`nsim`), `failed` (the number of failed refits), `seed` (the seed
#'   given, or the random-number state the draws started from) and `method` (the fit's
#'   criterion). Column names follow `oldNames = TRUE`; [confint()] renames them.
#' @seealso [confint.hnm_fit()] for the percentile, basic and normal intervals from it.
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
  hnm_abort(sprintf("bootstrap() needs a fit of hnm_fit(), not an object of class %s.",
                    class(object)[1L]), call = sys.call())
}

#' @rdname bootstrap
#' @export
bootstrap.hnm_fit <- function(object, nsim = 1000, seed = NULL, parallel = NULL, ncpus = NULL,
                              quiet = FALSE, ...) {
  call <- sys.call()
  refuse_weights(object, "The parametric bootstrap", call)
  check_no_dots(list(...), call)
  require_likelihood_fit(object, "bootstrap replicates", call)
  threads <- boot_settings(nsim, quiet, parallel, ncpus, call)
  rng <- use_seed(seed)
  on.exit(rng$restore())
  if (has_several_factors(object)) {
    draws <- bootstrap_several(object, nsim, call)
    t0 <- c(sd_cor_rows(matrix(as.double(object$re_covariance), 1L), matrix(object$sigma),
                        lengths(object$random_names)), object$beta)
    names(t0) <- colnames(draws) <- c(variance_parameter_names(object, TRUE), names(object$beta))
    return(new_bootstrap(t0, draws, nsim, rng$state, object$method, call))
  }
  generator <- boot_generator(object, object$stats, object$spec, call)
  p <- length(object$beta)
  q <- nrow(object$re_covariance)
  refit <- function(draws) {
    size <- length(draws$chi_squares)
    out <- boot_refits(generator, draws, object$spec, object$method == "REML",
                       object$convergence$internal_theta, threads, call)
    cbind(sd_cor_rows(boot_rows(out$re_covariance, size, q * q), boot_rows(out$sigma, size, 1L),
                      lengths(object$random_names)),
          boot_rows(out$beta, size, p))
  }
  draw <- function(size) boot_draws(generator, size)
  draws <- do.call(rbind, in_chunks(nsim, generator$normals, draw, refit, quiet))
  t0 <- c(sd_cor_rows(matrix(as.double(object$re_covariance), 1L), matrix(object$sigma),
                      lengths(object$random_names)), object$beta)
  names(t0) <- colnames(draws) <- c(variance_parameter_names(object, TRUE), names(object$beta))
  new_bootstrap(t0, draws, nsim, rng$state, object$method, call)
}

# The replicates of a fit with several grouping factors (bootstrap.hnm_fit()'s `t`): each
# simulated on the fit's rows (simulate()'s draws, one replicate after the other) and refitted
# from a model rebuilt from them, warm-started at the fit's estimate; a row of NA where a
# refit fails.
bootstrap_several <- function(object, nsim, call) {
  rows <- lmm_rows(object, "The parametric bootstrap")
  ok <- complete_lmm_rows(object, rows)
  offset <- if (is.null(rows$offset)) 0 else rows$offset[ok]
  blocks <- lengths(object$random_names)
  width <- length(variance_parameter_names(object, TRUE)) + length(object$beta)
  t(vapply(seq_len(nsim), function(s) {
    rows$variables[[1L]][ok] <- simulate_several(object, 1L, FALSE)[, 1L] - offset
    estimates <- tryCatch({
      built <- rust_result(build_rows(object, rows), call = call)
      lmm_search(built$model, object$method == "REML", object$convergence$internal_theta, TRUE,
                 object$control, call = call)
    }, hnm_error = function(e) NULL)
    if (is.null(estimates)) return(rep(NA_real_, width))
    covariance <- random_covariance(object, estimates$re_covariance)
    c(sd_cor_rows(matrix(as.double(covariance), 1L), matrix(estimates$sigma), blocks),
      estimates$beta)
  }, numeric(width)))
}

# The hnm_bootstrap object of estimates `t0` and replicates `draws` (a row of NA for a failed
# refit; a correlation alone may be NaN, where an SD is 0), with a warning on failures.
new_bootstrap <- function(t0, draws, nsim, seed, method, call) {
  failed <- sum(is.na(draws[, ".sigma"]))
  if (failed > 0L) {
    hnm_warn(sprintf("%d of %d bootstrap refits failed (rows of NA in `t`).", failed, nsim),
             call = call)
  }
  structure(list(t0 = t0, t = draws, R = as.integer(nsim), failed = failed, seed = seed,
                 method = method), class = "hnm_bootstrap")
}

#' @rdname bootstrap
#' @param x An `hnm_bootstrap` object.
#' @export
print.hnm_bootstrap <- function(x, ...) {
  check_no_dots(list(...), sys.call(), allowed = print_arguments)
  cat(sprintf("Parametric bootstrap of an %s fit in statistic space: %d replicates (%d failed)\n",
              x$method, x$R, x$failed))
  table <- cbind(original = x$t0,
                 bias = colMeans(x$t, na.rm = TRUE) - x$t0,
                 `std. error` = apply(x$t, 2L, stats::sd, na.rm = TRUE))
  print(table, ...)
  invisible(x)
}

# The bootstrap's arguments checked, and its threads.
boot_settings <- function(nsim, quiet, parallel, ncpus, call) {
  check_count(nsim, "nsim", 2L, call, max = 1e7)
  check_flag(quiet, "quiet", call)
  boot_threads(parallel, ncpus, call)
}

# The replicate generator of the model `fit` at its estimates, for the design of `stats` (a
# fit's statistics) with the model's structure `spec` over their variables.
boot_generator <- function(fit, stats, spec, call) {
  coefficients <- numeric(length(spec$fixed))
  coefficients[fit$kept] <- fit$beta
  rust_result(rs_lmm_boot_generator(stats$pilot, stats$n, stats$means, stats$comoments,
                                    spec$response, spec$fixed, spec$random, spec$blocks,
                                    coefficients, as.double(fit$re_covariance), fit$sigma),
              call = call)
}

# R's draws for `size` replicates of `generator`: the seeds of their standard normals (drawn
# in Rust on the refit threads: R's rnorm() is serial), two 32-bit halves each, and
# their residual chi-squares.
boot_draws <- function(generator, size) {
  list(seeds = floor(stats::runif(2L * size) * 2^32),
       chi_squares = stats::rchisq(size, generator$residual_df))
}

# Refits of the model `spec` (REML when `reml`, from the internal θ `start`) to the replicates
# `draws` of `generator`: per replicate its β, Σ, σ and deviance (see rs_lmm_boot_refit).
boot_refits <- function(generator, draws, spec, reml, start, threads, call) {
  rust_result(rs_lmm_boot_refit(generator$generator, spec$response, spec$fixed, spec$random,
                                spec$blocks, reml, start, draws$seeds, draws$chi_squares,
                                threads), call = call)
}

# `size` rows of `width` values from a replicate-major vector; all NA when no refit succeeded.
boot_rows <- function(x, size, width) {
  if (length(x) != size * width) return(matrix(NA_real_, size, width))
  matrix(x, size, width, byrow = TRUE)
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
        pmin(pmax(entry(r, c) / sqrt(entry(r, r) * entry(c, c)), -1), 1)
    }
    first <- first + size
  }
  cbind(do.call(cbind, columns), sigma)
}

# lme4's names of the SDs, correlations and σ: `.sig01, ..., .sigma`, or with
# `oldNames = FALSE` its `sd_x|g`, `cor_x.y|g` and `sigma`.
variance_parameter_names <- function(object, oldNames) {
  # lme4's old names only count the parameters, q(q + 1)/2 per block of q columns: every
  # profile, interval and summary asks for them, so they are not built from the new ones.
  if (isTRUE(oldNames)) {
    q <- lengths(object$random_names)
    return(c(sprintf(".sig%02d", seq_len(sum(q * (q + 1L) / 2))), ".sigma"))
  }
  names <- unlist(Map(function(block, group) {
    out <- character()
    for (c in seq_along(block)) for (r in c:length(block)) {
      out <- c(out, if (r == c) sprintf("sd_%s|%s", block[r], group) else
        sprintf("cor_%s.%s|%s", block[r], block[c], group))
    }
    out
  }, object$random_names, term_groups(object)))
  c(names, "sigma")
}

# The intervals of a bootstrap of a general fit: rows lme4's names, with the bootstrap as
# attribute "boot". SDs are kept >= 0 and correlations in [-1, 1] (basic and normal
# intervals can reach past them).
lmm_boot_intervals <- function(object, level, type, nsim, seed, parallel, ncpus, quiet,
                               oldNames, call) {
  boot <- bootstrap.hnm_fit(object, nsim = nsim, seed = seed, parallel = parallel,
                            ncpus = ncpus, quiet = quiet)
  limits <- boot_limits(boot$t0, boot$t, level, type)
  variance <- variance_parameter_names(object, TRUE)
  is_sd <- grepl("^sd_", variance_parameter_names(object, FALSE)) | variance == ".sigma"
  limits[which(is_sd), ] <- pmax(limits[which(is_sd), ], 0)
  is_cor <- seq_along(variance)[!is_sd]
  limits[is_cor, ] <- pmin(pmax(limits[is_cor, ], -1), 1)
  dimnames(limits) <- list(c(variance_parameter_names(object, oldNames), names(object$beta)),
                           percent_labels(level))
  structure(limits, boot = boot, failed = boot$failed,
            class = c("hnm_boot_confint", "matrix", "array"))
}

#' Parametric-bootstrap likelihood-ratio test of nested fits, in statistic space
#'
#' Tests the smaller model `m0` against the larger `m1` (both fits of [hnm_fit()] with
#' covariates or random slopes, to the same rows and grouping factor, every variable of `m0`
#' a variable of `m1`) by the likelihood-ratio statistic
#' \eqn{LRT = d_0 - d_1} (ML deviances; REML fits are refitted by ML, as [anova()] does), with
#' its null distribution simulated rather than taken from an asymptotic reference: `nsim`
#' data sets are simulated from `m0` at its estimates, in statistic space as [bootstrap()]
#' does (the statistics of `m1`'s variables, so both models can be refitted to each), and
#' both models are refitted by ML. The p-value is
#' \eqn{(1 + \#\{LRT^* \ge LRT\}) / (1 + R)} over the \eqn{R} replicates whose refits
#' succeeded (Davison and Hinkley 1997, as `pbkrtest::PBmodcomp` computes it).
#'
#' Where a variance is tested at 0 (adding a random intercept or a random slope), the LRT's
#' asymptotic reference is a chi-bar-square mixture (Stram and Lee 1994) whose finite-sample
#' size can be far from nominal with few groups; the bootstrap p-value needs no such
#' reference. It is a separate function rather than an argument of [anova()] because it
#' costs `nsim` pairs of refits and returns the replicates as well.
#'
#' When either fit has several grouping factors the replicates are simulated on the rows by
#' [simulate()] from `m0` and both fits refitted by ML with [refit()] (one pass over the rows
#' each, on one thread); the fits must then be of the same response on the same rows.
#'
#' @param m0,m1 The smaller and the larger fit.
#' @inheritParams bootstrap
#' @return An object of class `hnm_bootstrap_lrt`: a list with `statistic` (the observed
#'   LRT), `df` (the difference in the numbers of parameters), `p.value` (the bootstrap
#'   p-value), `p.chisq` (the naive \eqn{\chi^2_{df}} p-value, for comparison), `replicates`
#'   (the `nsim` simulated LRT values, `NA` where a refit failed), `R`, `failed` and `seed`.
#' @examples
#' m0 <- hnm_fit(Reaction ~ Days + (1 | Subject), lme4::sleepstudy)
#' m1 <- hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' bootstrap_lrt(m0, m1, nsim = 200, seed = 1)
#' @export
bootstrap_lrt <- function(m0, m1, nsim = 1000, seed = NULL, parallel = NULL, ncpus = NULL,
                          quiet = FALSE) {
  call <- sys.call()
  for (fit in list(m0, m1)) {
    if (!inherits(fit, "hnm_fit")) {
      hnm_abort(sprintf("`m0` and `m1` must be fits of hnm_fit(), not an object of class %s.",
                        class(fit)[1L]), call = call)
    }
    require_likelihood_fit(fit, "bootstrap_lrt()", call)
    refuse_weights(fit, "The bootstrap likelihood-ratio test", call)
  }
  threads <- boot_settings(nsim, quiet, parallel, ncpus, call)
  df <- n_parameters(m1) - n_parameters(m0)
  if (df <= 0L) {
    hnm_abort(sprintf(paste("`m1` must have more parameters than `m0` (%d and %d); give the",
                            "smaller model first."), n_parameters(m1), n_parameters(m0)),
              call = call)
  }
  several <- has_several_factors(m0) || has_several_factors(m1)
  spec0 <- if (!several) nested_spec(m0, m1, call)
  ml0 <- ml_estimate(m0, call)
  ml1 <- ml_estimate(m1, call)
  # As in anova(): an added variance estimated as exactly 0 puts m1's optimum at m0's, where
  # the likelihood ratio is exactly 1 (not the deviances' rounding noise). A likelihood ratio
  # statistic is never negative: a refit short of its optimum by rounding gives 0.
  added <- added_random_effect(random_layout(m0, ml0), random_layout(m1, ml1))
  statistic <- if (isTRUE(added$variance == 0)) 0 else max(ml0$deviance - ml1$deviance, 0)
  rng <- use_seed(seed)
  on.exit(rng$restore())
  replicates <- if (several) bootstrap_lrt_rows(m0, m1, nsim, call) else {
    generator <- boot_generator(m0, m1$stats, spec0, call)
    refit <- function(draws) {
      size <- length(draws$chi_squares)
      d0 <- boot_refits(generator, draws, spec0, FALSE, ml0$internal_theta, threads, call)
      d1 <- boot_refits(generator, draws, m1$spec, FALSE, ml1$internal_theta, threads, call)
      pmax(boot_rows(d0$deviance, size, 1L) - boot_rows(d1$deviance, size, 1L), 0)
    }
    draw <- function(size) boot_draws(generator, size)
    as.vector(do.call(rbind, in_chunks(nsim, generator$normals, draw, refit, quiet)))
  }
  ok <- !is.na(replicates)
  failed <- sum(!ok)
  if (failed > 0L) {
    hnm_warn(sprintf("%d of %d bootstrap refits failed and were left out.", failed, nsim),
             call = call)
  }
  structure(list(statistic = statistic, df = df,
                 p.value = (1 + sum(replicates[ok] >= statistic)) / (1 + sum(ok)),
                 p.chisq = stats::pchisq(statistic, df, lower.tail = FALSE),
                 replicates = replicates, R = as.integer(nsim), failed = failed,
                 seed = rng$state), class = "hnm_bootstrap_lrt")
}

#' @rdname bootstrap_lrt
#' @param x An `hnm_bootstrap_lrt` object.
#' @param ... Passed to [print()] for the table.
#' @export
print.hnm_bootstrap_lrt <- function(x, ...) {
  check_no_dots(list(...), sys.call(), allowed = print_arguments)
  cat(sprintf("Parametric-bootstrap likelihood-ratio test, %d replicates (%d failed)\n",
              x$R, x$failed))
  print(data.frame(stat = x$statistic, df = x$df, `p.value (bootstrap)` = x$p.value,
                   `p.value (chi-square)` = x$p.chisq, check.names = FALSE,
                   row.names = "LRT"), ...)
  invisible(x)
}

# bootstrap_lrt()'s replicates when a fit has several grouping factors: each simulated on the
# rows from `m0` (simulate()'s draws, one replicate after the other) and both fits refitted
# by ML to it from models rebuilt from the rows (refit() of their ML fits); NA where a refit
# fails. The fits must be of the same response on the same rows.
bootstrap_lrt_rows <- function(m0, m1, nsim, call) {
  for (fit in list(m0, m1)) lmm_rows(fit, "bootstrap_lrt()")
  if (!isTRUE(all.equal(lmm_response(m0), lmm_response(m1), tolerance = 0))) {
    hnm_abort("`m0` and `m1` must be fits of the same response to the same rows.", call = call)
  }
  ml0 <- refitML(m0)
  ml1 <- refitML(m1)
  vapply(seq_len(nsim), function(s) {
    y <- stats::simulate(m0, nsim = 1L)[[1L]]
    deviances <- tryCatch(c(refit(ml0, y)$deviance, refit(ml1, y)$deviance),
                          hnm_error = function(e) c(NA_real_, NA_real_))
    max(deviances[1L] - deviances[2L], 0)
  }, numeric(1))
}

# The structure of `m0` over the variables of `m1` (matched by name), after checking that
# both fits are of the same rows and groups.
nested_spec <- function(m0, m1, call) {
  if (is.null(m0$rows) || is.null(m1$rows)) {
    hnm_abort("bootstrap_lrt() needs fits made from data rows, not from group statistics.",
              call = call, class = "hnm_error_no_rows")
  }
  names0 <- m0$rows$names
  names1 <- m1$rows$names
  map <- match(names0, names1)
  same_groups <- identical(m0$group_name, m1$group_name) && identical(m0$levels, m1$levels) &&
    identical(m0$stats$n, m1$stats$n)
  if (anyNA(map) || map[m0$spec$response] != m1$spec$response || !same_groups) {
    hnm_abort(paste("`m0` must be nested in `m1`: fits of the same response, rows and grouping",
                    "factor, every column of `m0` a column of `m1`."), call = call)
  }
  k0 <- length(names0)
  k1 <- length(names1)
  means0 <- matrix(m0$stats$means, ncol = k0, byrow = TRUE)
  means1 <- matrix(m1$stats$means, ncol = k1, byrow = TRUE)[, map, drop = FALSE]
  shift <- m1$stats$pilot[map] - m0$stats$pilot
  if (!isTRUE(all.equal(means0, sweep(means1, 2L, shift, `+`), tolerance = 1e-10))) {
    hnm_abort("`m0` and `m1` must be fits to the same rows (their group means differ).",
              call = call)
  }
  on_m1 <- function(terms) as.integer(ifelse(terms == 0L, 0L, map[pmax(terms, 1L)]))
  spec <- m0$spec
  list(response = m1$spec$response, fixed = on_m1(spec$fixed), random = on_m1(spec$random),
       blocks = spec$blocks)
}

# The ML deviance, internal θ and covariance of the random effects of a fit (a REML fit
# refitted by ML, warm-started).
ml_estimate <- function(fit, call) {
  if (fit$method == "ML") {
    return(list(deviance = fit$deviance, internal_theta = fit$convergence$internal_theta,
                re_covariance = fit$re_covariance))
  }
  ml_fit <- lmm_search(lmm_model(fit), FALSE, fit$convergence$internal_theta, FALSE, fit$control,
                       call = call)
  list(deviance = ml_fit$deviance + weights_constant(fit), internal_theta = ml_fit$internal_theta,
       re_covariance = random_covariance(fit, ml_fit$re_covariance))
}

boot_limits <- function(estimate, draws, level, type) {
  alpha <- (1 - level) / 2
  quantiles <- t(apply(draws, 2L, stats::quantile, probs = c(alpha, 1 - alpha), names = FALSE,
                       na.rm = TRUE))
  switch(type,
    perc = quantiles,
    basic = 2 * estimate - quantiles[, 2:1, drop = FALSE],
    norm = (2 * estimate - colMeans(draws, na.rm = TRUE)) +
      outer(apply(draws, 2L, stats::sd, na.rm = TRUE), c(-1, 1) * critical_value(level)))
}

#' @rdname confint.hnm_fit
#' @param x Bootstrap intervals (class `hnm_boot_confint`, a matrix): printed as the matrix
#'   and a line on the replicates, which `attr(x, "boot")` holds; or Wald intervals (class
#'   `hnm_wald_confint`), printed with a line when they use the expected information.
#' @export
print.hnm_boot_confint <- function(x, ...) {
  check_no_dots(list(...), sys.call(), allowed = print_arguments)
  print(unclass(x)[, , drop = FALSE], ...)
  boot <- attr(x, "boot")
  replicates <- if (inherits(boot, "hnm_bootstrap")) boot$R else nrow(boot)
  cat(sprintf("Parametric bootstrap: %d refits (%d failed) in attr(, \"boot\").\n",
              replicates, attr(x, "failed")))
  invisible(x)
}

# The results of refit(draw(size)) for chunks of the nsim replicates, each drawing `per`
# normals a replicate: chunks of at most 5e6 normals and 20 chunks or more, so that a
# progress bar is shown when the first chunk predicts more than 3 seconds. Without a bar the
# chunks after the first are drawn in the same order (the same random numbers as chunk by
# chunk) and refitted together, up to `merged` replicates a call: each call starts the refit
# threads anew, which costs more than a small model's refits.
in_chunks <- function(nsim, per, draw, refit, quiet, merged = 1e5) {
  chunk <- max(1L, min(ceiling(nsim / 20), floor(5e6 / max(per, 1))))
  starts <- seq.int(1L, nsim, by = chunk)
  sizes <- pmin(chunk, nsim - starts + 1L)
  started <- proc.time()[["elapsed"]]
  results <- list(refit(draw(sizes[1L])))
  rest <- sizes[-1L]
  if (length(rest) == 0L) return(results)
  if (!quiet && (proc.time()[["elapsed"]] - started) * nsim / sizes[1L] > 3) {
    bar <- utils::txtProgressBar(max = nsim, style = 3)
    on.exit(close(bar))
    utils::setTxtProgressBar(bar, sizes[1L])
    for (i in seq_along(rest)) {
      results[[i + 1L]] <- refit(draw(rest[i]))
      utils::setTxtProgressBar(bar, starts[i + 1L] + rest[i] - 1L)
    }
    return(results)
  }
  call_of <- ceiling(cumsum(rest) / max(merged, chunk))
  for (k in unique(call_of)) {
    draws <- lapply(rest[call_of == k], draw)
    results[[length(results) + 1L]] <- refit(list(
      seeds = unlist(lapply(draws, `[[`, "seeds")),
      chi_squares = unlist(lapply(draws, `[[`, "chi_squares"))))
  }
  results
}
