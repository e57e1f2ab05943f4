# Predictions, simulation and refitting for hnm_fit, with lme4's arguments.

#' Predict from or simulate an `hnm_fit`
#'
#' `predict` gives \eqn{\hat\mu + \hat a_j} for each row (`re.form = NULL`, the default) or
#' the population mean \eqn{\hat\mu} (`re.form = NA` or `~0`), as lme4's `predict`. Without
#' `newdata` it returns the fitted values of the rows used in the fit. In `newdata`, a group
#' level not seen in the fit (or `NA`) is an error unless `allow.new.levels = TRUE`, when it
#' is predicted by \eqn{\hat\mu}, as lme4 does.
#'
#' `simulate` draws new responses for the rows of the fit from the fitted model,
#' \eqn{\hat\mu + \hat\sigma(\hat\theta u_j + e_{ij})} with new group effects \eqn{u_j} and
#' errors \eqn{e_{ij}} standard normal, drawn in lme4's order (all \eqn{u}, then all \eqn{e}),
#' so `simulate(fit, seed = s)` reproduces lme4's `simulate(lmer_fit, seed = s)`. As
#' `stats::simulate`, a given `seed` leaves the caller's random-number stream untouched.
#'
#' `update` is `stats::update`: `update(fit, method = "REML")` or `update(fit, data = d2)`
#' refits with changed arguments.
#'
#' @param object An `hnm_fit`.
#' @param newdata A data frame holding the grouping variable (not needed for `re.form = NA`),
#'   or `NULL` for the fit's rows.
#' @param re.form `NULL` to include the group effects, `NA` or `~0` for the population
#'   mean only; the model's random term `~ (1 | g)` is `NULL`. A term or grouping factor not
#'   in the model is an error. `simulate` takes one of `use.u` and `re.form`, as lme4's.
#' @param allow.new.levels Logical: predict new (or `NA`) group levels in `newdata` by
#'   \eqn{\hat\mu} instead of raising an error.
#' @param type `"link"` or `"response"` (the same for a linear model), as lme4's.
#' @param se.fit For population predictions (`re.form = NA`): also return the standard
#'   error se(mu), as `list(fit, se.fit)`.
#' @param nsim Number of simulated responses.
#' @param seed `NULL`, or an integer passed to [set.seed()] for this call only.
#' @param use.u For `simulate`: `TRUE` (or `re.form = NULL`) keeps the conditional modes of
#'   the group effects and draws new errors only, as lme4's.
#' @param ... Unused (an error if given).
#' @return `predict`: a numeric vector. `simulate`: a data frame with one column per
#'   simulation, named `sim_1`, `sim_2`, ..., and attribute `"seed"` as
#'   `stats::simulate` sets it (the seed with the RNG kind, or the prior `.Random.seed`).
#' @examples
#' fit <- hnm_fit(y ~ 1 | g, wheat)
#' head(predict(fit))
#' predict(fit, newdata = data.frame(g = c(1, 2, 99)), allow.new.levels = TRUE)
#' predict(fit, newdata = data.frame(g = 1:2), re.form = NA)
#' sims <- simulate(fit, nsim = 3, seed = 1)
#' head(sims)
#' update(fit, method = "REML")
#' @name predict.hnm_fit
NULL

# The random-effects columns `re.form` keeps, as lme4's predict() and simulate() read it:
# NULL every column, NA or ~0 none, a formula of random-effects terms of the model's grouping
# factor (`~ (1 | g)`, `~ (0 + x | g)`, `~ (x || g)`) the columns of the terms it names (its
# intercept, and the columns coding each of its terms). `layout` is the model's random parts
# (random_terms_of()). A term or grouping factor that is not the model's is an error, as lme4's.
# Returns a logical vector over the model's random-effects columns.
random_selection <- function(re.form, layout, group, call) {
  assign <- lapply(layout, `[[`, "assign")
  q <- length(unlist(assign))
  if (is.null(re.form)) return(rep(TRUE, q))
  usage <- paste("`re.form` must be NULL, NA, ~0 or a one-sided formula of the model's",
                 "random-effects terms such as `~ (1 | g)`.")
  if (is.atomic(re.form) && length(re.form) == 1L && is.na(re.form)) return(rep(FALSE, q))
  if (!inherits(re.form, "formula") || length(re.form) != 2L) {
    hnm_abort(usage, call = call, class = "hnm_error_argument")
  }
  rhs <- re.form[[2L]]
  if (identical(rhs, 0) || identical(rhs, 0L)) return(rep(FALSE, q))
  bars <- find_bars(rhs)
  if (length(bars) == 0L || !is.null(drop_bars(rhs))) {
    hnm_abort(usage, call = call, class = "hnm_error_argument")
  }
  # Each column of the model's random part by the term it codes.
  column_terms <- unlist(lapply(layout, function(part) {
    c("(Intercept)", part$labels)[part$assign + 1L]
  }))
  named <- unlist(lapply(bars, function(bar) {
    if (!identical(deparse1(bar[[3L]]), group)) {
      hnm_abort(sprintf("`re.form` names the grouping factor `%s`, but the model's is `%s`.",
                        deparse1(bar[[3L]]), group), call = call, class = "hnm_error_argument")
    }
    lapply(random_terms(bar), function(lhs) {
      t <- part_terms(lhs, environment(re.form), call)
      c(if (t$intercept) "(Intercept)", t$labels)
    })
  }))
  absent <- setdiff(named, column_terms)
  if (length(absent) > 0L) {
    hnm_abort(sprintf(paste("`re.form` names the random-effects term(s) %s of `%s`, which the",
                            "model does not have (its random-effects columns: %s)."),
                      paste0("`", absent, "`", collapse = ", "), group,
                      paste(unlist(lapply(layout, `[[`, "names")), collapse = ", ")),
              call = call, class = "hnm_error_argument")
  }
  column_terms %in% named
}

# lme4's simulate() takes one of `use.u` and `re.form`, which say the same thing.
use_u_and_re_form <- function(call) {
  hnm_abort(paste("give one of `use.u` and `re.form` (`use.u = TRUE` is `re.form = NULL`,",
                  "`use.u = FALSE` is `re.form = NA`), as lme4's simulate()."),
            call = call, class = "hnm_error_argument")
}

# The random-number stream as stats::simulate handles it: `seed = NULL` continues the
# current stream, a number seeds it for this call only. Returns the state to report as
# attr "seed" and a function restoring the caller's stream.
use_seed <- function(seed) {
  if (!exists(".Random.seed", envir = globalenv(), inherits = FALSE)) stats::runif(1)
  saved <- get(".Random.seed", envir = globalenv())
  if (is.null(seed)) return(list(state = saved, restore = function() invisible()))
  set.seed(seed)
  list(state = structure(seed, kind = as.list(RNGkind())),
       restore = function() assign(".Random.seed", saved, envir = globalenv()))
}
