# Conditions raised by hnm: every error has class `hnm_error` and every warning class
# `hnm_warning`, so callers can catch them; and the argument checks shared by the methods.

#' Conditions signalled by hnm
#'
#' Every error hnm raises has class `hnm_error` (then `error`, `condition`), and every
#' warning class `hnm_warning`, with a message naming the argument or column at fault, so
#' `tryCatch(..., hnm_error = function(e) ...)` catches exactly hnm's errors. A more
#' specific class comes first, so a caller can react to one kind of problem only.
#'
#' @section Errors of the Rust core:
#' Each kind of error of the computations in Rust has its own class, before `hnm_error`:
#' \describe{
#'   \item{`hnm_error_length_mismatch`}{Two vectors that must have the same length do not.}
#'   \item{`hnm_error_not_finite`}{An infinite or NaN value where a finite number is
#'     needed, such as a `NaN` or `Inf` response (`NA` is dropped instead).}
#'   \item{`hnm_error_group_code_out_of_range`}{A corrupt factor: a code outside its levels.}
#'   \item{`hnm_error_invalid_statistic`}{Impossible group statistics (a negative count or
#'     sum of squares), as in a hand-edited fit.}
#'   \item{`hnm_error_too_few_groups`}{Fewer than two groups with data.}
#'   \item{`hnm_error_no_replication`}{Every group has a single observation.}
#'   \item{`hnm_error_no_within_group_variation`}{The response is constant within every group.}
#'   \item{`hnm_error_parameter_length`, `hnm_error_parameter_missing`}{A parameter vector
#'     (`mus2t2` of [mll_oneway()]) of the wrong length, or holding `NA`.}
#'   \item{`hnm_error_outside_parameter_space`}{[mll_oneway_grad()] or [mll_oneway_hess()]
#'     at \eqn{\sigma^2 \le 0} or \eqn{\tau^2 < 0}, where the likelihood is `+Inf`.}
#'   \item{`hnm_error_optimizer`}{An optimiser failed to converge (or a bootstrap thread
#'     could not run).}
#'   \item{`hnm_error_invalid_argument`}{An argument or variable of an invalid kind.}
#'   \item{`hnm_error_unsupported`}{A computation not available for this kind of fit.}
#'   \item{`hnm_error_too_large`}{A result sized by an argument (profile `steps`, bootstrap
#'     `nsim`) or by the data does not fit in memory.}
#'   \item{`hnm_error_too_many_random_effects`}{A random-effects term with no fewer random
#'     effects than observations, so its parameters and \eqn{\sigma^2} cannot be told apart
#'     (lme4's check, term by term).}
#'   \item{`hnm_error_perfect_fit`}{The fixed and random effects reproduce the response
#'     exactly, so \eqn{\sigma^2} would be 0.}
#' }
#'
#' @section Errors and warnings of the R side:
#' \describe{
#'   \item{`hnm_error_argument`}{An argument of the wrong kind or value, or an lme4 argument
#'     hnm cannot honour in this case.}
#'   \item{`hnm_error_formula`}{A formula hnm cannot read (a term it does not know, a column
#'     repeated across random-effects terms).}
#'   \item{`hnm_error_unsupported_formula`}{A model hnm does not fit (several grouping
#'     factors, say), or one a method is not available for.}
#'   \item{`hnm_error_data_changed`}{A row-level method on a fit whose data were modified in
#'     place since (data.table's `:=`).}
#'   \item{`hnm_error_invalid_statistics`}{An invalid table of group statistics (`stats =`).}
#'   \item{`hnm_error_out_of_range`}{Data outside the range the fit is exact in (see "Range of
#'     the data" below), or an integer64 value beyond \eqn{\pm 2^{53}}.}
#'   \item{`hnm_error_no_rows`}{A row-level method on a fit made from group statistics.}
#'   \item{`hnm_error_new_levels`}{`predict()` on new group levels without `allow.new.levels`.}
#'   \item{`hnm_warning_negative_tau2`}{Warning: an ANOVA estimate of \eqn{\tau^2} truncated at 0.}
#'   \item{`hnm_warning_convergence`}{Warning, at fit time: the optimiser of a fit with
#'     covariates or random slopes stopped before its convergence test was met (the
#'     iteration limit, or a criterion still falling, as where \eqn{\sigma \to 0}); the
#'     estimates are where it stopped, and `print()` and `summary()` repeat the note. lme4
#'     warns in the same cases. (The one-way model's search either solves its score equation
#'     to rounding or stops with an `hnm_error_optimizer` error.)}
#'   \item{`hnm_error_unused_argument`}{An argument a method does not use (a misspelling, or
#'     an argument of lme4's method that hnm does not have), which R's default methods would
#'     ignore silently. lme4's arguments that hnm has but cannot honour in a case (such as
#'     `summary(fit, ddf = "Kenward-Roger")`) are errors of class `hnm_error_argument`.}
#' }
#'
#' @section Range of the data:
#' Every model, the one-way model `y ~ 1 | g` included, starts from each group's co-moments
#' of the response and the model's columns in the data's units and then works in a
#' power-of-two unit per column, exactly. The one-way model's estimates, standard errors,
#' intervals and group effects are as accurate at any scale as at scale 1 (equal to 1e-12
#' relative, tested from 1.6e-154 to 1e152) within the range below, and as long as its group
#' means are at most 1e4 within-group standard deviations apart (\eqn{\tau/\sigma \le 10^4}):
#' beyond, the factorisation's downdate of X'X by the groups' share cancels (its relative
#' error grows as \eqn{N\epsilon\tau^2/(m\sigma^2)}), and `hnm_fit()` stops with
#' `hnm_error_out_of_range`; such groups are fixed effects in all but name. Outside the range,
#' `hnm_fit()` stops with an error of class `hnm_error_out_of_range` that says which way to
#' rescale, instead of returning rounded or infinite estimates. The values themselves may
#' have any magnitude a double holds (an offset such as 1e12 + noise keeps its digits). An
#' integer64 response (DBI's BIGINT) is exact within \eqn{\pm 2^{53}} and refused beyond.
#'
#' The estimates of every model (from rows, a statistics table or a database) equal those of
#' the data at scale 1 mapped by the scale laws (tested to 1e-10 from 1e-140 to 1e140 for the
#' response and a covariate) as long as, for the response and each variable of the model,
#' * its RMS deviation about its mean, \eqn{\sqrt{T/N}}, is at least 1.5e-154 (or it is
#'   constant), so that products of deviations are normal doubles;
#' * its sum of squares \eqn{T} stays below 1.8e308: the RMS deviation times \eqn{\sqrt N}
#'   below 1.3e154 (for a column without an intercept in its part, \eqn{\sqrt N} times its root
#'   mean square about 0); and
#' * the spread of the response over that of each column of X and Z lies within
#'   1e-150..1e150, since the estimates scale with that ratio and their variances with its
#'   square.
#'
#' @section Interrupts:
#' Long computations in Rust (the data pass, the optimiser, profiles, bootstrap refits and
#' their threads) check for Ctrl-C about every 0.05 s. An interrupted computation frees its
#' memory, joins its threads and then signals R's own `interrupt` condition (class
#' `c("hnm_interrupt", "interrupt", "condition")`) and returns to the top level, exactly as
#' an interrupt of R code does: `tryCatch(..., interrupt = )` sees it, while
#' `tryCatch(..., error = )` and `try()` do not swallow it, so a loop of fits stops at
#' Ctrl-C.
#'
#' @examples
#' d <- data.frame(y = c(1, 2, 3, 4), g = c("a", "a", "b", "b"))
#' e <- tryCatch(hnm_fit(y ~ 1 | g, transform(d, y = c(1, 1, 2, 2))), hnm_error = identity)
#' class(e)
#' conditionMessage(e)
#' @name hnm-conditions
NULL

hnm_abort <- function(message, call = NULL, class = character()) {
  stop(structure(
    class = c(class, "hnm_error", "error", "condition"),
    list(message = message, call = call)
  ))
}

# A warning of class `hnm_warning`, the counterpart of hnm_abort().
hnm_warn <- function(message, call = NULL, class = character()) {
  warning(structure(
    class = c(class, "hnm_warning", "warning", "condition"),
    list(message = message, call = call)
  ))
}

# The arguments a function received in `...` and does not use: an error naming them (as
# the caller wrote them), so a misspelt or unsupported argument never passes silently where
# R's default methods would swallow it (R's chkDots warns; hnm stops, as an unused argument
# of a function without `...` does). `allowed` names arguments the caller forwards to
# another function (print()'s `digits`, say), which are let through.
check_no_dots <- function(dots, call, allowed = character()) {
  if (length(dots) == 0L) return(invisible())
  labels <- names(dots) %||% character(length(dots))
  unnamed <- !nzchar(labels)
  labels[unnamed] <- vapply(dots[unnamed], deparse1, "")
  unused <- unnamed | !labels %in% allowed
  if (!any(unused)) return(invisible())
  hnm_abort(sprintf("unused argument(s): %s.", paste(labels[unused], collapse = ", ")),
            call = call, class = "hnm_error_unused_argument")
}

# The arguments of print.default() and print.data.frame(), which print methods that print a
# table with print() pass on; methods::show() prints an S3 object with useS4 = FALSE.
print_arguments <- c("digits", "quote", "na.print", "print.gap", "right", "max", "width",
                     "useSource", "row.names", "useS4")

# A whole number between `min` and `max` (simulations, profile steps, threads): larger
# values would ask for more memory or time than any machine has, so they are refused here
# with the limit, before anything is allocated.
check_count <- function(x, name, min, call, max = .Machine$integer.max) {
  if (!is.numeric(x) || length(x) != 1L || !isTRUE(x >= min && x <= max && x == round(x))) {
    hnm_abort(sprintf("`%s` must be a whole number of at least %d and at most %s.", name, min,
                      format(max, big.mark = ",", scientific = FALSE)), call = call)
  }
}

# The number of threads for parallel work: getOption("hnm.threads", 2), checked.
thread_count <- function(call) {
  threads <- getOption("hnm.threads", 2L)
  if (!is.numeric(threads) || length(threads) != 1L ||
      !isTRUE(threads >= 1 && threads <= 1024 && threads == round(threads))) {
    hnm_abort(sprintf(paste("`options(hnm.threads = )` must be a whole number between 1 and",
                            "1024, not %s."), deparse1(threads)), call = call)
  }
  as.integer(threads)
}

# The glue crate returns list(hnm_core_error = message, kind = kind) instead of raising
# inside Rust; an interrupt (kind "interrupted") becomes R's own interrupt.
rust_result <- function(x, call = NULL) {
  if (is_core_error(x)) {
    if (identical(x$kind, "interrupted")) signal_interrupt()
    hnm_abort(x$hnm_core_error, call = call,
              class = if (is.character(x$kind)) paste0("hnm_error_", x$kind))
  }
  x
}

# TRUE for the error value a Rust function returns instead of its result.
is_core_error <- function(x) is.list(x) && identical(names(x)[1L], "hnm_core_error")

# What R does on Ctrl-C in R code: signal an `interrupt` condition (calling handlers and
# tryCatch(interrupt = ) see it) and, when nothing handles it, return to the top level.
# The Rust code that saw the interrupt has already finished, so nothing is left running.
signal_interrupt <- function() {
  signalCondition(structure(class = c("hnm_interrupt", "interrupt", "condition"),
                            list(message = "interrupted", call = NULL)))
  invokeRestart("abort")
}
