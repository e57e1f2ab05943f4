#' Refit a model to a new response
#'
#' lme4's `refit()`: the same model (its formula, rows, grouping and estimator) fitted to the
#' response `newresp`, as a simulation study refits one design to many simulated responses.
#' The new response replaces the old one in the fit's own rows, read by reference (no model
#' frame is rebuilt), and the search starts from the fit's \eqn{\theta}.
#'
#' @param object An `hnm_fit` made from rows (a fit from group statistics has no rows to
#'   refit: an error of class `hnm_error_no_rows`); an lme4 fit is passed to `lme4::refit()`,
#'   other classes are an error of class `hnm_error_argument`.
#' @param newresp The new response: a numeric vector with one finite value per row used by the
#'   fit (`nobs(object)` values, as `fitted(object)` has), or one per row of the data the fit
#'   was made from (whose values at the rows the fit dropped for a missing value are not read).
#'   A data frame of one such column (what `simulate(object)` returns) is taken as it, as by
#'   lme4. The fit's `offset()` terms are subtracted as in the fit.
#' @param ... Not used; an error if given (passed on by the default method).
#' @return An `hnm_fit` of the same model, with the call of `object`.
#' @examples
#' fit <- hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' y <- simulate(fit, seed = 1)[[1]]
#' fixef(refit(fit, y))
#' @export
refit <- function(object, newresp, ...) UseMethod("refit")

#' @rdname refit
#' @export
refit.default <- function(object, newresp, ...) {
  lme4_method("refit", object)(object, newresp, ...)
}

#' @rdname refit
#' @export
refit.hnm_fit <- function(object, newresp, ...) {
  call <- sys.call()
  check_no_dots(list(...), call)
  rows <- lmm_rows(object, "refit()")
  # The response is the model's first variable (model_design() adds it first).
  rows$variables[[1L]] <- refit_response(object, rows, newresp, call)
  built <- rust_result(build_rows(object, rows), call = call)
  estimates <- if (object$method == "ANOVA") {
    anova_estimates(built, call)
  } else {
    lmm_search(built$model, is_reml(object), object$convergence$internal_theta, TRUE,
               object$control, call = call)
  }
  if (is_one_way(object, offset = TRUE)) check_one_way_range(estimates$theta, call)
  fit <- with_estimates(object, estimates)
  fit$stats <- built$stats
  fit$response_summary <- built$response_summary
  # Its call no longer describes its response: what re-evaluates the call (drop1()) refuses it.
  fit$refitted <- TRUE
  fit$rows <- rows
  fit$rows$fingerprint <- rows_fingerprint(rows, built)
  fit$core <- list2env(list(model = if (object$method != "ANOVA") built$model), parent = emptyenv())
  check_fit(fit, call)
}

# The model of `object` rebuilt from the rows `rows` (the fit's, with another response): one
# pass keyed by group, or by cell with several grouping factors (whose codes the rows hold),
# with the statistics when `statistics` (one grouping factor: always).
build_rows <- function(object, rows, statistics = FALSE) {
  threads <- (object$control %||% hnm_control())$threads
  spec <- object$spec
  if (has_several_factors(object)) {
    f <- spec$factors
    return(rs_lmm_build_factors(pass_variables(rows), rows$codes, length(f$cell_levels[[1L]]),
                                spec$response, spec$fixed, f$cell_levels, f$n_levels, f$random,
                                f$blocks, rows$names, threads, FALSE, statistics))
  }
  rs_lmm_build(pass_variables(rows), rows$codes, rows$code_offset, length(object$stats$n),
               spec$response, spec$fixed, spec$random, spec$blocks, rows$names, threads)
}

# The new response as the model reads it: one value per row of the fit's data (those of rows
# the fit dropped are never read), finite where the fit uses them, less the fit's offset.
refit_response <- function(object, rows, newresp, call) {
  used <- complete_lmm_rows(object, rows)
  n_rows <- length(used)
  # simulate()'s data frame of one simulation, as lme4's refit() takes it.
  if (is.data.frame(newresp)) {
    if (ncol(newresp) != 1L) {
      hnm_abort(sprintf("`newresp` as a data frame must have one column, but it has %d.",
                        ncol(newresp)), call = call, class = "hnm_error_argument")
    }
    newresp <- newresp[[1L]]
  }
  if (!is.numeric(newresp) || is.object(newresp) || !length(newresp) %in% c(sum(used), n_rows)) {
    hnm_abort(sprintf(paste("`newresp` must be a numeric vector with one value per row the fit",
                            "uses (%.0f) or per row of its data (%.0f)."), sum(used), n_rows),
              call = call, class = "hnm_error_argument")
  }
  full <- rep(NA_real_, n_rows)
  full[used] <- if (length(newresp) == n_rows) newresp[used] else newresp
  bad <- which(used & !is.finite(full))
  if (length(bad) > 0L) {
    hnm_abort(sprintf("`newresp` must be finite at the rows the fit uses, but row %d is %s.",
                      bad[1L], format(full[bad[1L]])),
              call = call, class = "hnm_error_not_finite")
  }
  if (is.null(rows$offset)) full else full - rows$offset
}

#' Refit a model by maximum likelihood
#'
#' lme4's `refitML()`: a REML (or ANOVA) fit refitted by ML, from the same statistics and
#' warm-started at its \eqn{\theta}; an ML fit is returned as it is. `anova()` of fits that
#' differ in their fixed effects does this itself.
#'
#' @param x An `hnm_fit`; an lme4 fit is passed to `lme4::refitML()`, other classes are an
#'   error of class `hnm_error_argument`.
#' @param ... Not used; an error if given (passed on by the default method).
#' @return An `hnm_fit` of the same model by ML, with the call of `x`.
#' @examples
#' fit <- hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy, REML = TRUE)
#' logLik(refitML(fit))
#' @export
refitML <- function(x, ...) UseMethod("refitML")

#' @rdname refitML
#' @export
refitML.default <- function(x, ...) lme4_method("refitML", x)(x, ...)

#' @rdname refitML
#' @export
refitML.hnm_fit <- function(x, ...) {
  call <- sys.call()
  check_no_dots(list(...), call)
  if (x$method == "ML") return(x)
  # A copy of the fit's model, so that the REML fit's stays as it is.
  model <- rust_result(rs_lmm_copy(lmm_model(x)), call = call)$model
  estimates <- lmm_search(model, FALSE, x$convergence$internal_theta, TRUE, x$control, call = call)
  if (is_one_way(x, offset = TRUE)) check_one_way_range(estimates$theta, call)
  fit <- with_estimates(x, estimates)
  fit$method <- "ML"
  fit$core <- list2env(list(model = model), parent = emptyenv())
  check_fit(fit, call)
}
