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

#' @rdname predict.hnm_fit
#' @export
predict.hnm_fit <- function(object, newdata = NULL, re.form = NULL, allow.new.levels = FALSE,
                            type = c("link", "response"), se.fit = FALSE, ...) {
  call <- sys.call()
  check_no_dots(list(...), call)
  match.arg(type)
  population <- !random_selection(re.form, one_way_layout(), group_label(object), call)
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
  groups <- new_groups(object, newdata, call)
  values <- group_level_values(groups, as.character(object$stats$group),
                               object$mu + group_effects(object), object$group_name, call)
  unseen <- is.na(values)
  if (any(unseen)) {
    if (!isTRUE(allow.new.levels)) {
      hnm_abort(sprintf(paste("`newdata` has level(s) of `%s` not in the fit: %s. Use",
                              "`allow.new.levels = TRUE` to predict them by the population",
                              "mean."), object$group_name,
                        paste(unique(as.character(groups[unseen])), collapse = ", ")),
                call = call, class = "hnm_error_new_levels")
    }
    values[unseen] <- object$mu
  }
  values
}

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

# The one-way model's random part: an intercept.
one_way_layout <- function() {
  list(list(labels = character(), names = "(Intercept)", assign = 0L))
}

# The one-way model's grouping factor as its formula writes it.
group_label <- function(object) deparse1(parse_hnm_formula(object$formula)$group)

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
  if (!missing(use.u) && !missing(re.form)) use_u_and_re_form(call)
  conditional <- isTRUE(use.u) ||
    random_selection(re.form, one_way_layout(), group_label(object), call)
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
