# Intervals and model comparison for fits with covariates or random slopes.

#' @rdname hnm_lmm-methods
#' @param parallel,ncpus,quiet For `confint(method = "boot")`: threads and progress bar, as
#'   in [bootstrap()], which simulates and refits the `nsim` replicates (from `seed`) in
#'   statistic space.
#' @param boot.type For `confint(method = "boot")`, lme4's name for `type` (give one of them):
#'   `"perc"` (default), the percentiles of the replicates; `"basic"`,
#'   \eqn{2\hat x - q^*_{1-\alpha/2}} to \eqn{2\hat x - q^*_{\alpha/2}}; `"norm"`,
#'   \eqn{2\hat x - \bar x^* \pm z\,\mathrm{sd}(x^*)} as `boot::boot.ci` gives it. Rows are
#'   lme4's (`.sig01, ...` the SDs and correlations of the random effects, `.sigma`, the fixed
#'   effects); SD limits are kept at or above 0 and correlation limits between -1 and 1. The
#'   bootstrap is in `attr(, "boot")`.
#' @export
confint.hnm_lmm <- function(object, parm, level = 0.95, method = c("profile", "Wald", "boot"),
                            oldNames = TRUE, nsim = 1000, seed = NULL,
                            type = c("perc", "basic", "norm"), boot.type = NULL,
                            parallel = NULL, ncpus = NULL, quiet = FALSE, ...) {
  call <- sys.call()
  check_no_dots(list(...), call)
  method <- match.arg(method)
  if (method == "profile") {
    check_flag(oldNames, "oldNames", call)
    return(lmm_profile_intervals(object, if (!missing(parm)) parm, level, oldNames, call))
  }
  if (method == "boot") {
    check_probability(level, "level", call)
    check_flag(oldNames, "oldNames", call)
    limits <- lmm_boot_intervals(object, level, boot_type(type, boot.type, call), nsim, seed,
                                 parallel, ncpus, quiet, oldNames, call)
    return(if (missing(parm)) limits else select_rows(limits, parm, call))
  }
  if (!is.numeric(level) || length(level) != 1L || !(level > 0 && level < 1)) {
    hnm_abort("`level` must be one number between 0 and 1.", call = call)
  }
  z <- stats::qnorm((1 + level) / 2)
  beta <- fixef(object)
  se <- sqrt(diag(vcov(object)))
  variance_names <- variance_parameter_names(object, oldNames)
  limits <- rbind(matrix(NA_real_, length(variance_names), 2L),
                  cbind(beta - z * se, beta + z * se))
  pct <- paste(format(100 * c(1 - level, 1 + level) / 2, trim = TRUE, scientific = FALSE,
                      digits = 3), "%")
  dimnames(limits) <- list(c(variance_names, names(beta)), pct)
  if (!missing(parm)) limits <- select_parameters(limits, parm, call)
  limits
}

# Rows `parm` (names or indices) of an interval table.
select_parameters <- function(limits, parm, call) {
  if (is.character(parm) && all(parm %in% rownames(limits))) return(limits[parm, , drop = FALSE])
  if (is.numeric(parm) && all(parm >= 1 & parm <= nrow(limits) & parm == round(parm))) {
    return(limits[parm, , drop = FALSE])
  }
  hnm_abort(sprintf("`parm` must name rows of the interval table: %s.",
                    paste(rownames(limits), collapse = ", ")), call = call)
}

#' @rdname hnm_lmm-methods
#' @param ddf For `anova` of one fit, lmerTest's: `"Satterthwaite"` (the default) or `"lme4"`
#'   (lme4's sequential table, without `type`); `"Kenward-Roger"` is not available (an error
#'   of class `hnm_error_unsupported`). Neither `type` nor `ddf` may be given with several
#'   fits.
#' @export
anova.hnm_lmm <- function(object, ..., type = c("III", "II", "I", "3", "2", "1"),
                          ddf = c("Satterthwaite", "Kenward-Roger", "lme4")) {
  call <- sys.call()
  check_model_dots(list(...), call)
  if (...length() == 0L) {
    return(fixed_effects_anova(object, if (!missing(type)) type, ddf, call))
  }
  check_one_fit_arguments(missing(type), missing(ddf), call)
  names <- vapply(as.list(substitute(list(object, ...)))[-1L], deparse1, "")
  compare_fits(list(object, ...), names, call)
}

# `type` and `ddf` are of the F tests of one fit; lmerTest ignores them in a comparison of
# fits, hnm says so.
check_one_fit_arguments <- function(no_type, no_ddf, call) {
  if (!no_type || !no_ddf) {
    hnm_abort(paste("`type` and `ddf` are for the F tests of the fixed effects of one fit",
                    "(anova(fit, type = ...)); a comparison of fits takes neither."),
              call = call, class = "hnm_error_argument")
  }
}

# What anova()'s comparison needs of a fit with covariates: its ML deviance and variances
# (refitting a REML fit by ML, warm-started, without replacing the fit), npar, its terms and
# a summary of the response.
describe_lmm <- function(fit, name, call) {
  ml <- ml_estimate(fit, call)
  c(list(name = name, is_hnm = TRUE, refitted = fit$method != "ML", npar = n_parameters(fit),
         deviance = ml$deviance),
    random_layout(fit, ml),
    list(summary = lmm_response_summary(fit), formula = deparse1(fit$formula),
         data = if (!is.null(fit$call$data)) deparse1(fit$call$data)))
}

# A general fit's fixed effects, grouping factor and random-effects blocks with the variances
# of its ML fit `ml`, by block: what added_random_effect() compares.
random_layout <- function(fit, ml) {
  variances <- diag(ml$re_covariance)
  list(fixed = fit$fixed_names, group = fit$group_name, random = fit$random_names,
       variances = lapply(block_ranges(fit), function(i) variances[i]))
}

# N, mean and total sum of squares of the response (variable 1 of the statistics).
lmm_response_summary <- function(fit) {
  s <- fit$stats
  k <- length(s$pilot)
  groups <- seq_along(s$n) - 1L
  means <- s$means[groups * k + 1L]
  within <- s$comoments[groups * k * (k + 1L) / 2L + 1L]
  n <- sum(s$n)
  centered_mean <- sum(s$n * means) / n
  c(n = n, mean = s$pilot[1L] + centered_mean,
    sst = sum(within) + sum(s$n * (means - centered_mean)^2))
}
