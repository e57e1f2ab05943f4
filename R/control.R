#' Settings of the fit
#'
#' The settings of `hnm_fit()`'s search and of what it reports, as `lme4::lmerControl()`'s are
#' for `lmer()`. hnm's search is a bounded quasi-Newton (BFGS) method on the profiled criterion with
#' its analytic gradient (the one-way model's \eqn{\theta} the root of its profiled score): up to
#' 10 \eqn{\theta} its curvature starts as the Hessian by differences of the gradient, beyond
#' (two 4 x 4 covariance blocks, say) it is learnt from the gradients; Newton steps finish it
#' and restart a singular fit of few \eqn{\theta}. lme4's choice of optimiser and its convergence
#' checks have no counterpart here.
#' `tolerance` and `max_iterations` set the search of the fit and of its refits (`refit()`,
#' `refitML()`, `anova()`'s ML refits); the one-way model `y ~ 1 | g` has no search (its
#' \eqn{\theta} is the root of its profiled score, to machine precision) and the bootstrap's
#' replicates and the profiles' inner problems keep their own settings.
#'
#' @param tolerance The search stops when the criterion's projected gradient (in
#'   \eqn{\theta}'s internal units) is at most `tolerance` times the number of observations: the
#'   default 1e-10 changes the criterion by far less than its rounding.
#' @param max_iterations (Quasi-)Newton iterations of one search before it stops, with a warning of
#'   class `hnm_warning_convergence`.
#' @param singular_tolerance `isSingular(fit)`'s default `tol`: a fit is singular when a
#'   \eqn{\theta} on its bound 0 (an SD's) is below it (lme4's 1e-4).
#' @param threads Threads of the pass over the rows and of the dense products of crossed grouping
#'   factors (`options(hnm.threads)`, 2 by default; with 1 no other thread is started).
#' @return A list of class `hnm_control`.
#' @seealso [hnm_fit()]'s `control`, which also takes an `lme4::lmerControl()` object whose
#'   settings are lme4's defaults but for `check.conv.singular`'s `tol` (the singular
#'   tolerance); any other setting it changes is an error naming it.
#' @examples
#' fit <- hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy,
#'                control = hnm_control(tolerance = 1e-8), verbose = TRUE)
#' fit$convergence$iterations
#' @export
hnm_control <- function(tolerance = 1e-10, max_iterations = 500L, singular_tolerance = 1e-4,
                        threads = getOption("hnm.threads", 2L)) {
  call <- sys.call()
  positive <- function(x, name) {
    if (!is.numeric(x) || length(x) != 1L || !is.finite(x) || x <= 0) {
      hnm_abort(sprintf("`%s` must be one positive number.", name), call = call,
                class = "hnm_error_argument")
    }
  }
  positive(tolerance, "tolerance")
  positive(singular_tolerance, "singular_tolerance")
  count <- function(x, name) {
    if (!is.numeric(x) || length(x) != 1L || !isTRUE(x >= 1 && x <= .Machine$integer.max && x == round(x))) {
      hnm_abort(sprintf("`%s` must be a whole number of at least 1.", name), call = call,
                class = "hnm_error_argument")
    }
  }
  count(max_iterations, "max_iterations")
  count(threads, "threads")
  structure(list(tolerance = as.double(tolerance), max_iterations = as.integer(max_iterations),
                 singular_tolerance = as.double(singular_tolerance), threads = as.integer(threads)),
            class = "hnm_control")
}

# `control` of hnm_fit() as an hnm_control: one, or an lmerControl() whose settings are lme4's
# defaults but for the singular tolerance of check.conv.singular.
fit_control <- function(control, call) {
  if (inherits(control, "hnm_control")) return(control)
  if (!inherits(control, "lmerControl")) {
    hnm_abort("`control` must be hnm_control() (or lme4::lmerControl()).", call = call,
              class = "hnm_error_argument")
  }
  defaults <- lme4_function("lmerControl")()
  singular <- control$checkConv$check.conv.singular$tol
  changed <- names(control)[!vapply(names(control), function(name) {
    identical(control[[name]], defaults[[name]])
  }, logical(1))]
  if (identical(changed, "checkConv")) {
    control$checkConv$check.conv.singular$tol <- defaults$checkConv$check.conv.singular$tol
    if (identical(control$checkConv, defaults$checkConv)) changed <- character()
  }
  if (length(changed) > 0L) {
    hnm_abort(sprintf(paste("`control` sets lmerControl()'s %s, which hnm's search (Newton steps",
                            "with the analytic gradient) does not have; use hnm_control() for",
                            "its tolerance, iterations and threads."),
                      paste0("`", changed, "`", collapse = ", ")),
              call = call, class = "hnm_error_argument")
  }
  hnm_control(singular_tolerance = singular %||% 1e-4)
}

# The model's ML or REML search (rs_lmm_fit) with the settings of `control` (a fit's own, or
# the defaults), from the internal theta `start`, kept in the model when `keep`.
lmm_search <- function(model, reml, start, keep, control = NULL, verbose = FALSE, call = NULL) {
  control <- control %||% hnm_control()
  rust_result(rs_lmm_fit(model, reml, start, keep, control$tolerance, control$max_iterations,
                         verbose), call = call)
}
