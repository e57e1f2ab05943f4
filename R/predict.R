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
#' @param newdata A data frame holding the grouping variable, or `NULL` for the fit's rows.
#' @param re.form `NULL` to include the group effects, `NA` or `~0` for the population
#'   mean only.
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

#' @rdname predict.hnm_fit
#' @export
predict.hnm_fit <- function(object, newdata = NULL, re.form = NULL, allow.new.levels = FALSE,
                            type = c("link", "response"), se.fit = FALSE, ...) {
  call <- sys.call()
  check_no_dots(list(...), call)
  match.arg(type)
  population <- is_population_form(re.form, call)
  if (!isFALSE(se.fit)) {
    if (!(isTRUE(se.fit) && population)) {
      hnm_abort(paste("`se.fit = TRUE` is available for population predictions (`re.form = NA`),",
                      "whose standard error is se(mu), as lme4's."), call = call,
                class = "hnm_error_argument")
    }
    fit <- stats::predict(object, newdata = newdata, re.form = NA)
    return(list(fit = fit, se.fit = rep(object$se_mu, length(fit))))
  }
  if (is.null(newdata)) {
    require_rows(object, "predict() without `newdata`")
    return(if (population) rep(object$mu, nobs(object)) else fitted(object))
  }
  if (!is.data.frame(newdata)) hnm_abort("`newdata` must be a data frame.", call = call)
  if (population) return(rep(object$mu, nrow(newdata)))
  groups <- as.character(new_groups(object, newdata, call))
  index <- match(groups, object$stats$group)
  unseen <- is.na(index)
  if (any(unseen) && !isTRUE(allow.new.levels)) {
    hnm_abort(sprintf(paste("`newdata` has level(s) of `%s` not in the fit: %s. Use",
                            "`allow.new.levels = TRUE` to predict them by the population",
                            "mean."), object$group_name,
                      paste(unique(groups[unseen]), collapse = ", ")),
              call = call, class = "hnm_new_levels")
  }
  object$mu + ifelse(unseen, 0, group_effects(object)[index])
}

# TRUE for re.form = NA or ~0 (population level), FALSE for NULL or the model's own term.
is_population_form <- function(re.form, call) {
  if (is.null(re.form)) return(FALSE)
  if (identical(re.form, NA) || (inherits(re.form, "formula") &&
                                 identical(re.form[[length(re.form)]], 0))) {
    return(TRUE)
  }
  if (inherits(re.form, "formula")) return(FALSE)
  hnm_abort("`re.form` must be NULL, NA, ~0 or the model's random term.", call = call)
}

# The grouping variable evaluated in `newdata`.
new_groups <- function(object, newdata, call) {
  expr <- parse_hnm_formula(object$formula, call)$group
  model_variable(expr, newdata, environment(object$formula) %||% globalenv(),
                 "grouping variable", call)
}

#' @rdname predict.hnm_fit
#' @importFrom stats simulate rnorm runif
#' @export
simulate.hnm_fit <- function(object, nsim = 1, seed = NULL, use.u = FALSE, re.form = NA,
                             newdata = NULL, ...) {
  call <- sys.call()
  check_no_dots(list(...), call)
  if (!is.null(newdata)) {
    hnm_abort("`newdata` is not supported by simulate() for hnm fits: it simulates the fit's rows.",
              call = call, class = "hnm_error_argument")
  }
  conditional <- isTRUE(use.u) || !is_population_form(re.form, call)
  require_rows(object, "simulate()")
  check_count(nsim, "nsim", 1L, call)
  rng <- use_seed(seed)
  on.exit(rng$restore())
  rows <- row_group(object)[complete_rows(object)]
  if (conditional) {
    # use.u = TRUE (or re.form = NULL): new errors about the fitted values, as lme4's.
    e <- matrix(rnorm(length(rows) * nsim), ncol = nsim)
    sims <- as.data.frame(fitted(object) + sigma(object) * e)
    names(sims) <- paste0("sim_", seq_len(nsim))
    return(structure(sims, seed = rng$state))
  }
  u <- matrix(rnorm(length(object$stats$n) * nsim), ncol = nsim)
  e <- matrix(rnorm(length(rows) * nsim), ncol = nsim)
  sims <- as.data.frame(object$mu + sigma(object) * (object$theta * u[rows, , drop = FALSE] + e))
  names(sims) <- paste0("sim_", seq_len(nsim))
  structure(sims, seed = rng$state)
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
