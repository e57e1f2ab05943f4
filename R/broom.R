# broom's tidy, glance and augment for hnm_fit, registered in .onLoad (see zzz.R) when the
# generics package is available, so broom is not a dependency. Written against hnm's
# accessors (fixef, vcov, VarCorr, ranef, coef, confint), with broom.mixed's conventions
# for lme4's fits.

#' Tidy an `hnm_fit` with broom
#'
#' Methods for broom's generics `tidy`, `glance` and `augment` (from the generics
#' package), with the conventions broom.mixed uses for lme4's fits. They are registered when
#' hnm is loaded if generics is installed (or when generics is loaded later); call them as
#' `broom::tidy(fit)` and so on.
#'
#' `tidy` gives one row per parameter, in broom.mixed's columns `effect`, `group`, `level`,
#' `term`, `estimate`, `std.error`, `statistic` (columns that none of the requested effects
#' has are left out, as broom.mixed does):
#' * `"fixed"`: the fixed effects (estimate, standard error, \eqn{t} statistic);
#' * `"ran_pars"`: per grouping factor the random-effect standard deviations `sd__<term>`
#'   (and correlations `cor__<term1>.<term2>`), then `sd__Observation` with
#'   `group = "Residual"`; with `scales = "vcov"` the variances `var__<term>` (covariances
#'   `cov__<term1>.<term2>`) instead;
#' * `"ran_vals"`: the conditional modes of the random effects with their conditional
#'   standard deviations (`level` is the group);
#' * `"ran_coefs"`: each group's coefficients, [coef.hnm_fit()].
#'
#' With `conf.int = TRUE`, `conf.low` and `conf.high` come from [confint.hnm_fit()] with
#' `method = conf.method` (`"Wald"`, `"profile"` or `"boot"`): for fixed effects the Wald
#' interval is lme4's; for the standard deviations lme4's Wald interval is `NA`, while hnm's
#' is a real interval (see [confint.hnm_fit()]); the profile intervals are lme4's. For
#' `"ran_vals"` the interval is the estimate \eqn{\pm z} times the conditional SD, as
#' broom.mixed's.
#' `glance` gives one row with `nobs`, `sigma`, `logLik`, `AIC`, `BIC`, `deviance` (for REML
#' fits `REMLcrit`, as broom.mixed) and `df.residual`. `augment` adds `.fitted`, `.resid` and
#' `.fixed` (the fixed-effects prediction) to the data.
#'
#' @param x An `hnm_fit`.
#' @param effects Which rows `tidy` returns: any of `"ran_pars"`, `"fixed"`, `"ran_vals"`,
#'   `"ran_coefs"`.
#' @param scales `NULL`, or one scale per element of `effects`: `"sdcor"` (default) or
#'   `"vcov"` for `"ran_pars"`, `NA` for the others (as broom.mixed).
#' @param exponentiate Must be `FALSE` (a linear model's coefficients are not on a log
#'   scale).
#' @param conf.int Logical: add `conf.low` and `conf.high`.
#' @param conf.level Confidence level of the intervals.
#' @param conf.method `"Wald"` (default), `"profile"` or `"boot"`, as `method` of
#'   [confint.hnm_fit()].
#' @param data For `augment`: `NULL` for the fit's own model frame ([model.frame()]: the
#'   model's variables on the rows used in the fit, as broom.mixed for lmer), or the data the
#'   model was fitted to (one row per row given to `hnm_fit`; rows dropped for `NA` get
#'   `NA`).
#' @param ... For `tidy` with `conf.method = "boot"`: `nsim`, `seed` and `type` of
#'   [confint.hnm_fit()]. Any other argument is an error (`ddf.method` and `profile` of
#'   broom.mixed included: hnm has no denominator degrees of freedom and computes profiles
#'   itself).
#' @return Data frames (not tibbles: hnm does not depend on tibble).
#' @examples
#' fit <- hnm_fit(y ~ 1 | g, wheat)
#' if (requireNamespace("broom", quietly = TRUE)) {
#'   print(broom::tidy(fit, conf.int = TRUE))
#'   print(broom::tidy(fit, effects = "ran_pars", scales = "vcov"))
#'   print(head(broom::tidy(fit, effects = "ran_vals", conf.int = TRUE)))
#'   print(broom::glance(fit))
#'   print(head(broom::augment(fit)))
#' }
#' @name hnm-broom
NULL

#' @rdname hnm-broom
#' @method tidy hnm_fit
tidy.hnm_fit <- function(x, effects = c("ran_pars", "fixed"), scales = NULL,
                         exponentiate = FALSE, conf.int = FALSE, conf.level = 0.95,
                         conf.method = "Wald", ...) {
  call <- sys.call()
  effects <- match.arg(effects, c("ran_pars", "fixed", "ran_vals", "ran_coefs"), several.ok = TRUE)
  scales <- tidy_scales(effects, scales, call)
  if (!isFALSE(exponentiate)) {
    hnm_abort("`exponentiate` must be FALSE for an hnm_fit (a linear model).", call = call)
  }
  if (!is.logical(conf.int) || length(conf.int) != 1L || is.na(conf.int)) {
    hnm_abort("`conf.int` must be TRUE or FALSE.", call = call)
  }
  check_probability(conf.level, "conf.level", call)
  conf.method <- match.arg(conf.method, c("Wald", "profile", "boot"))
  dots <- list(...)
  boot_options <- if (conf.method == "boot") c("nsim", "seed", "type") else character()
  reject_arguments(dots, "tidy() for an hnm_fit", call, allowed = boot_options)
  # confint()'s rows in lme4's order: the random-effect parameters (.sig01, ...), .sigma,
  # then the fixed effects. The fixed effects' limits always come from the SD scale (whose
  # standard errors are lme4's).
  # Each scale's table is computed once (a bootstrap serves the fixed and random rows).
  computed <- list()
  limits <- function(scale) {
    if (!conf.int) return(NULL)
    if (is.null(computed[[scale]])) {
      # `scale` only where it is not confint()'s default: the general model's confint has none.
      scale_arg <- if (scale == "sd") list() else list(scale = scale)
      computed[[scale]] <<- do.call(confint, c(list(x, level = conf.level, method = conf.method),
                                               scale_arg, dots))
    }
    computed[[scale]]
  }
  # broom.mixed's row order, whatever the order of `effects`.
  order <- order(match(effects, c("fixed", "ran_pars", "ran_vals", "ran_coefs")))
  effects <- effects[order]
  scales <- scales[order]
  parts <- lapply(seq_along(effects), function(i) {
    switch(effects[i],
      fixed = tidy_fixed(x, limits("sd")),
      ran_pars = tidy_ran_pars(x, scales[i], limits(if (scales[i] == "vcov") "var" else "sd")),
      ran_vals = tidy_ran_vals(x, conf.int, conf.level),
      ran_coefs = tidy_ran_coefs(x))
  })
  columns <- c("effect", "group", "level", "term", "estimate", "std.error", "statistic",
               "conf.low", "conf.high")
  present <- columns[columns %in% unlist(lapply(parts, names))]
  rows <- do.call(rbind, lapply(parts, function(part) {
    for (column in setdiff(present, names(part))) part[[column]] <- NA
    part[present]
  }))
  rownames(rows) <- NULL
  rows
}

# broom.mixed's `scales`: one per effect, "sdcor" or "vcov" for ran_pars, NA otherwise.
tidy_scales <- function(effects, scales, call) {
  if (is.null(scales)) return(ifelse(effects == "ran_pars", "sdcor", NA_character_))
  if (length(scales) != length(effects)) {
    hnm_abort(sprintf("`scales` must have one element per element of `effects` (%d), not %d.",
                      length(effects), length(scales)), call = call)
  }
  for (i in seq_along(effects)) {
    ok <- if (effects[i] == "ran_pars") scales[i] %in% c("sdcor", "vcov") else is.na(scales[i])
    if (!ok) {
      hnm_abort(sprintf("`scales` for \"%s\" must be %s, not %s.", effects[i],
                        if (effects[i] == "ran_pars") "\"sdcor\" or \"vcov\"" else "NA",
                        deparse(scales[i])), call = call)
    }
  }
  as.character(scales)
}

# The conf.low and conf.high columns from a confint() table whose rows match `rows`.
add_intervals <- function(rows, limits) {
  rows$conf.low <- unname(limits[, 1L])
  rows$conf.high <- unname(limits[, 2L])
  rows
}

tidy_fixed <- function(x, intervals) {
  beta <- fixef(x)
  se <- sqrt(diag(as.matrix(vcov(x))))
  rows <- data.frame(effect = "fixed", term = names(beta),
                     estimate = unname(beta), std.error = unname(se),
                     statistic = unname(beta / se), stringsAsFactors = FALSE)
  if (is.null(intervals)) return(rows)
  add_intervals(rows, intervals[nrow(intervals) - rev(seq_along(beta)) + 1L, , drop = FALSE])
}

tidy_ran_pars <- function(x, scale, intervals) {
  pars <- random_parameters(x)
  prefix <- if (scale == "vcov") c(sd = "var", cor = "cov") else c(sd = "sd", cor = "cor")
  term <- ifelse(pars$type == "sd", paste0(prefix[["sd"]], "__", pars$var1),
                 paste0(prefix[["cor"]], "__", pars$var1, ".", pars$var2))
  rows <- data.frame(effect = "ran_pars", group = pars$group, term = term,
                     estimate = if (scale == "vcov") pars$variance else pars$estimate,
                     stringsAsFactors = FALSE)
  if (is.null(intervals)) return(rows)
  add_intervals(rows, intervals[seq_len(nrow(pars)), , drop = FALSE])
}

tidy_ran_vals <- function(x, conf.int, conf.level) {
  modes <- as.data.frame(ranef(x, condVar = TRUE))
  rows <- data.frame(effect = "ran_vals", group = as.character(modes$grpvar),
                     level = as.character(modes$grp), term = as.character(modes$term),
                     estimate = modes$condval, std.error = modes$condsd,
                     stringsAsFactors = FALSE)
  if (conf.int) {
    z <- qnorm((1 + conf.level) / 2)
    rows$conf.low <- rows$estimate - z * rows$std.error
    rows$conf.high <- rows$estimate + z * rows$std.error
  }
  rows
}

tidy_ran_coefs <- function(x) {
  coefs <- coef(x)
  do.call(rbind, lapply(names(coefs), function(group) {
    table <- coefs[[group]]
    do.call(rbind, lapply(names(table), function(term) {
      data.frame(effect = "ran_coefs", group = group, level = rownames(table), term = term,
                 estimate = table[[term]], stringsAsFactors = FALSE)
    }))
  }))
}

#' @rdname hnm-broom
#' @method glance hnm_fit
glance.hnm_fit <- function(x, ...) {
  reject_arguments(list(...), "glance() for an hnm_fit", sys.call())
  ll <- logLik(x)
  out <- data.frame(nobs = nobs(x), sigma = sigma(x), logLik = c(ll), AIC = AIC(ll),
                    BIC = BIC(ll), deviance = deviance(x), df.residual = df.residual(x))
  if (is_reml(x)) names(out)[names(out) == "deviance"] <- "REMLcrit"
  out
}

#' @rdname hnm-broom
#' @method augment hnm_fit
augment.hnm_fit <- function(x, data = NULL, ...) {
  reject_arguments(list(...), "augment() for an hnm_fit", sys.call())
  lmm_rows(x, "augment()")
  if (is.null(data)) {
    # The fit's own model frame (lme4's, which broom.mixed augments for a merMod): the rows
    # and values the fit was made from, whatever has since become of the data frame its call
    # names, or wherever that was.
    data <- stats::model.frame(x)
    attr(data, "terms") <- NULL
    rownames(data) <- NULL
    keep <- rep(TRUE, nrow(data))
  } else {
    given <- as.data.frame(data)
    variables <- all.vars(formula(x))
    # The rows used are the complete ones (as lme4's model frame).
    keep <- stats::complete.cases(given[intersect(variables, names(given))])
    # Rows of weight 0 are dropped from a weighted fit (R/weights.R).
    w <- x$rows$weights
    if (!is.null(w) && length(w) == length(keep)) keep <- keep & !(w %in% 0)
    rows <- nobs(x) + if (is.null(x$n_dropped)) 0L else x$n_dropped
    if (!all(variables %in% names(given)) || sum(keep) != nobs(x) || nrow(given) != rows) {
      hnm_abort(sprintf(paste("`data` must be the data frame of %d rows (%d complete) the",
                              "model was fitted to."), rows, nobs(x)), call = sys.call())
    }
  }
  data$.fitted <- data$.resid <- data$.fixed <- NA_real_
  # The used rows' values (fitted() and residuals() of an na.exclude fit are padded with NA).
  fitted_values <- lmm_fitted(x)
  data$.fitted[keep] <- fitted_values
  data$.resid[keep] <- lmm_response(x) - fitted_values
  data$.fixed[keep] <- as.vector(stats::model.matrix(x) %*% fixef(x))
  data[c(setdiff(names(data), c(".fitted", ".resid", ".fixed")), ".fitted", ".resid", ".fixed")]
}
