# Confidence intervals for hnm_fit.

#' Confidence intervals for the parameters of an `hnm_fit`
#'
#' Profile-likelihood intervals (the default, as lme4's), Wald intervals (`method = "Wald"`;
#' the default for `method = "ANOVA"` fits, which have no likelihood to profile),
#' parametric-bootstrap intervals (`method = "boot"`) or exact F-pivot intervals for the
#' intra-class correlation and variance ratio (`method = "exact"`).
#' The first three have lme4's row names: `.sig01` (\eqn{\tau}), `.sigma` (\eqn{\sigma}) and
#' `(Intercept)` (\eqn{\mu}); on the variance scale (`scale = "var"`) the rows are `tau2`,
#' `sigma2` and `(Intercept)`.
#'
#' **Wald.** Each estimate \eqn{\pm z\,\mathrm{se}} with standard errors from the inverse
#' information of the fit's criterion on the variance scale: for ML fits the observed
#' information, the lecture's `solve(I)` intervals; for REML fits the restricted
#' likelihood's observed information of \eqn{(\sigma^2, \tau^2)}, with \eqn{\hat\mu}'s GLS
#' variance (on Dyestuff, se(\eqn{\hat\tau^2}) = 1432.75, where the ML information at the REML
#' estimates would give 1600.3). Where the observed information is not positive definite
#' (it can be indefinite at or near \eqn{\hat\tau^2 = 0}, where its inverse would give
#' negative variances) the expected (Fisher) information is used instead, which is positive
#' definite, so no interval has zero length; the intervals then carry the attribute
#' `information = "expected"` and print a line saying so (otherwise `"observed"`, or
#' `"sampling"` for ANOVA fits, whose standard errors are those of the moment
#' estimators). (They are computed in the internal unit of the data, a power of two near their
#' spread, and scaled back, so they stay finite for data at scales such as 1e-150 or 1e100,
#' where some entries of the full covariance in the data's units underflow or overflow.)
#' On the SD scale the variance intervals are mapped by the delta method,
#' \eqn{\mathrm{se}(\hat\tau) = \mathrm{se}(\hat\tau^2)/(2\hat\tau)}; at the boundary
#' \eqn{\hat\tau = 0} the delta method is undefined and the `.sig01` row is the square root
#' of the variance-scale interval truncated at 0. Lower limits of variances and SDs are
#' truncated at 0. On the SD scale the intercept's standard error is lme4's,
#' \eqn{\sqrt{\hat\sigma^2/\sum_j n_j/(1 + n_j\hat\theta^2)}}; on the variance scale it is
#' the lecture's, from the full inverse information (the two differ for unbalanced data,
#' where \eqn{\hat\mu} and the variances are correlated).
#' That is the one-way model's computation; for every other fit the variance rows are
#' \eqn{\hat\psi \pm z\,\mathrm{se}} for lme4's parameters \eqn{\psi} (the SDs and
#' correlations of the random effects, then \eqn{\sigma}), with covariance
#' \eqn{J\,(2H^{-1})\,J^\top}: \eqn{H} the Hessian of the fit's criterion (the ML deviance with
#' \eqn{\beta} profiled out, or the REML criterion, as lmerTest's for its variance
#' parameters) in the model's internal variance parameters \eqn{\phi = (\theta, \sigma)} and
#' \eqn{J = \partial\psi/\partial\phi} in closed form (with \eqn{\Sigma = \sigma^2 L L^\top},
#' \eqn{\partial\,\mathrm{sd}_i = \partial\Sigma_{ii}/(2\,\mathrm{sd}_i)} and
#' \eqn{\partial\,\mathrm{cor}_{ij} = \partial\Sigma_{ij}/(\mathrm{sd}_i\mathrm{sd}_j) -
#' \mathrm{cor}_{ij}(\partial\Sigma_{ii}/\Sigma_{ii} + \partial\Sigma_{jj}/\Sigma_{jj})/2}).
#' On the variance scale the SD rows become the variances' (`var_x|g`, `sigma2`;
#' \eqn{\mathrm{se}(\mathrm{sd}^2) = 2\,\mathrm{sd}\,\mathrm{se}(\mathrm{sd})}) and the
#' correlation rows stay as they are. Lower limits of SDs and variances are truncated at 0 and
#' correlation limits kept in \eqn{[-1, 1]}. At a singular fit (an SD of 0, a correlation of
#' \eqn{\pm 1}) those parameters are on the boundary of their space, where the delta method is
#' undefined: their rows are `NA`, named in the attribute `"boundary"` and in a printed line,
#' and the other variance rows are from the information on the boundary face the fit is on
#' (the zero directions of the random-effects covariance held at 0, where the estimate is a
#' stationary point); use `method = "profile"` or `"boot"` for the boundary parameters. Where
#' that information is not positive definite every variance row is `NA`, with the attribute
#' `information = "not positive definite"` and a printed line.
#' lme4's `confint(method = "Wald")` gives `NA` for the variance rows; these are real intervals.
#'
#' **Profile.** \eqn{\{x : |\zeta(x)| \le z_{1-\alpha/2}\}} with lme4's signed root deviance
#' \eqn{\zeta}, computed exactly (to machine precision, by Newton steps on the analytic
#' profile) from the group statistics in Rust; the \eqn{\tau} interval starts at exactly 0
#' when the likelihood at \eqn{\tau = 0} is within the cut-off. On the variance scale the
#' SD limits are squared. For a REML fit hnm profiles the REML criterion itself (with
#' \eqn{\mu} held fixed it is lme4's REML criterion with the fixed effect given; see
#' [profile.hnm_fit()]), so the intervals surround the REML estimates; lme4 instead refits
#' by ML silently, so for REML fits compare with `hnm_fit(..., REML = FALSE)`.
#'
#' **Bootstrap.** [bootstrap()]'s `nsim` replicates of the fitted model, simulated and
#' refitted (by the fit's criterion) in sufficient-statistic space, so each replicate costs
#' O(groups) and not O(N): for the one-way model its group means and within-group sums of
#' squares. `type = "perc"` gives percentile intervals, `type = "basic"` the basic
#' (reflected) ones, `type = "norm"` the normal ones, each on the requested scale. The
#' bootstrap (an `hnm_bootstrap` object: `t0`, the replicates `t` with lme4's column names,
#' `R`, `failed`, `seed`) is kept in the attribute `"boot"`, and the intervals print with a
#' one-line summary of it; refits that fail are left out, counted in the attribute
#' `"failed"` and reported in a warning. The refits run on `getOption("hnm.threads", 2)`
#' threads (the random draws do not depend on it). A progress bar appears when the first
#' chunk of replicates predicts more than about 3 seconds.
#'
#' **Exact.** For balanced data \eqn{F = MSG/MSE} satisfies
#' \eqn{F/(1 + n\tau^2/\sigma^2) \sim F_{m-1, N-m}}, which gives exact intervals for the
#' variance ratio \eqn{\tau^2/\sigma^2} (`"ratio"`) and the intra-class correlation
#' \eqn{\tau^2/(\tau^2 + \sigma^2)} (`"icc"`), lower limits truncated at 0. For unbalanced
#' data the pivot is the Thomas & Hultquist (1978) approximation: \eqn{n} is replaced by the
#' harmonic mean group size \eqn{\tilde n} and \eqn{MSG} by \eqn{\tilde n} times the
#' variance of the group means (identical to the exact pivot when the data are balanced);
#' the result then carries an attribute `"approximation"` and a message says so.
#'
#' @param object An `hnm_fit`.
#' @param parm Rows to return (names or indices, or lme4's `"theta_"` and `"beta_"` for the
#'   variance parameters and the fixed effects); all by default.
#' @param level Confidence level.
#' @param method `"profile"` (default; `"Wald"` for ANOVA fits), `"Wald"`, `"boot"` or
#'   `"exact"`.
#' @param scale `"sd"` (default) or `"var"` (not used by `"exact"`).
#' @param nsim Number of bootstrap replicates: a whole number from 2 to 10,000,000.
#' @param seed `NULL` or an integer for [set.seed()], handled as by [stats::simulate()]: the
#'   random-number state is restored afterwards and stored in the attribute `"seed"`.
#' @param type,boot.type Bootstrap interval type (`boot.type` is lme4's name for it):
#'   `"perc"` (default), `"basic"`, or `"norm"`, the normal interval with bootstrap bias
#'   correction, \eqn{2\hat x - \bar x^* \pm z\,\mathrm{sd}(x^*)}, as `boot::boot.ci` gives it.
#' @param oldNames Logical, as lme4's: `TRUE` (default) names the SD-scale rows `.sig01` and
#'   `.sigma`; `FALSE` names them `sd_(Intercept)|g` (`g` the grouping variable) and `sigma`.
#' @param parallel,ncpus As lme4's, for the bootstrap: `"no"` refits on one thread,
#'   `"multicore"` or `"snow"` on `ncpus` threads; by default the refits use
#'   `getOption("hnm.threads", 2)` threads (a whole number from 1 to 1024). The draws, and so
#'   the intervals, do not depend on the number of threads.
#' @param quiet Logical: `TRUE` shows no progress bar and no message.
#' @param ... Not used; an error if given, so that an argument is never silently ignored.
#' @return A matrix with one row per parameter and columns named by the percentage points,
#'   as `confint` methods return.
#' @references Thomas, J. D. and Hultquist, R. A. (1978). Interval estimation for the
#'   unbalanced case of the one-way random effects model. *Annals of Statistics* 6, 582-587.
#' @seealso [profile.hnm_fit()] for the profile itself and its plot.
#' @examples
#' d <- data.frame(y = c(5.1, 4.8, 6.0, 7.2, 6.9, 7.5, 4.0, 4.4, 4.9),
#'                 g = rep(c("a", "b", "c"), each = 3))
#' fit <- hnm_fit(y ~ 1 | g, d)
#' confint(fit)
#' confint(fit, scale = "var", level = 0.9)
#' confint(fit, method = "profile")
#' ci <- confint(fit, method = "boot", nsim = 200, seed = 1)
#' ci
#' head(attr(ci, "boot")$t)
#' confint(fit, method = "exact")
#' @export
confint.hnm_fit <- function(object, parm, level = 0.95,
                            method = c("profile", "Wald", "boot", "exact"),
                            scale = c("sd", "var"), oldNames = TRUE, nsim = 1000, seed = NULL,
                            type = c("perc", "basic", "norm"), boot.type = NULL,
                            parallel = NULL, ncpus = NULL, quiet = FALSE, ...) {
  call <- sys.call()
  check_no_dots(list(...), call)
  method <- if (missing(method) && object$method == "ANOVA") "Wald" else
    one_of(method, c("profile", "Wald", "boot", "exact"), "method", call)
  scale <- one_of(scale, c("sd", "var"), "scale", call)
  type <- boot_type(type, boot.type, call)
  check_flag(oldNames, "oldNames", call)
  check_flag(quiet, "quiet", call)
  check_probability(level, "level", call)
  if (method == "profile") {
    # Only the parameters asked for are profiled, as lme4's confint(fit, parm); the limits
    # come back with their row and column names.
    limits <- lmm_profile_intervals(object, if (!missing(parm)) parm, level, oldNames, call)
    return(on_scale(limits, object, scale, oldNames))
  }
  if (method == "exact") {
    require_one_way(object, "confint(method = \"exact\")", call)
    intervals <- exact_intervals(object, level, quiet)
    colnames(intervals) <- percent_labels(level)
    return(if (missing(parm)) intervals else select_rows(intervals, parm, call))
  }
  intervals <- switch(method,
    Wald = wald_intervals(object, critical_value(level), scale, oldNames, call),
    boot = lmm_boot_intervals(object, level, type, nsim, seed, parallel, ncpus, quiet, oldNames,
                              call)
  )
  if (method != "Wald") intervals <- on_scale(intervals, object, scale, oldNames)
  colnames(intervals) <- percent_labels(level)
  if (missing(parm)) intervals else select_rows(intervals, parm, call, object)
}

# Intervals of lme4's parameters on the variance scale: the SDs' limits squared, their rows
# named as variances (tau2 and sigma2 for the one-way model, the lecture's names; var_x|g and
# sigma2 otherwise); correlations and fixed effects as they are. Attributes are kept.
on_scale <- function(intervals, object, scale, oldNames) {
  if (scale == "sd") return(intervals)
  sd_names <- variance_parameter_names(object, oldNames)
  is_sd <- lmm_parameter_bounds(object)$is_sd[seq_along(sd_names)]
  rows <- match(sd_names[is_sd], rownames(intervals))
  present <- !is.na(rows)
  intervals[rows[present], ] <- intervals[rows[present], ]^2
  rownames(intervals)[rows[present]] <- variance_names(object)[is_sd][present]
  intervals
}

# The variance-scale names of lme4's variance parameters (correlations keep theirs).
variance_names <- function(object) {
  if (is_one_way(object)) return(c("tau2", "sigma2"))
  names <- variance_parameter_names(object, FALSE)
  names <- sub("^sd_", "var_", names)
  names[length(names)] <- "sigma2"
  names
}

# The element of `choices` that `value` selects (match.arg's rules: the whole vector of
# choices means the first), or an hnm_error naming the argument.
one_of <- function(value, choices, name, call) {
  if (identical(value, choices)) return(choices[1L])
  if (!is.character(value) || length(value) != 1L || !(value %in% choices)) {
    hnm_abort(sprintf("`%s` must be one of %s.", name, paste0('"', choices, '"', collapse = ", ")),
              call = call)
  }
  value
}

check_flag <- function(x, name, call) {
  if (!is.logical(x) || length(x) != 1L || is.na(x)) {
    hnm_abort(sprintf("`%s` must be TRUE or FALSE.", name), call = call)
  }
}

# The bootstrap interval type from hnm's `type` or lme4's `boot.type` (both: they must agree).
boot_type <- function(type, boot.type, call) {
  choices <- c("perc", "basic", "norm")
  type <- one_of(type, choices, "type", call)
  if (is.null(boot.type)) return(type)
  boot.type <- one_of(boot.type, choices, "boot.type", call)
  if (!identical(type, "perc") && !identical(type, boot.type)) {
    hnm_abort("`type` and `boot.type` name the same choice; give one of them.", call = call)
  }
  boot.type
}

# Threads for the bootstrap refits: lme4's `parallel` and `ncpus` when given, else
# getOption("hnm.threads", 2).
boot_threads <- function(parallel, ncpus, call) {
  if (is.null(parallel)) {
    if (!is.null(ncpus)) {
      hnm_abort('`ncpus` goes with `parallel = "multicore"` or `"snow"`.', call = call)
    }
    return(thread_count(call))
  }
  parallel <- one_of(parallel, c("no", "multicore", "snow"), "parallel", call)
  if (parallel == "no") return(1L)
  if (is.null(ncpus)) return(thread_count(call))
  check_count(ncpus, "ncpus", 1L, call, max = 1024L)
  as.integer(ncpus)
}

# z_{1 - alpha/2} for a confidence level, finite for every level below 1 (the upper tail is
# computed directly, so a level such as 1 - 1e-16 does not round to z = Inf).
critical_value <- function(level) stats::qnorm((1 - level) / 2, lower.tail = FALSE)

# The rows `parm` of an interval matrix, keeping its attributes; unknown rows are an error.
# With the fit `object` of lme4's layout (the variance parameters' rows, then the fixed
# effects': Wald and bootstrap intervals), as lme4: "theta_" and "beta_" select those, and
# the rows come in the matrix's order.
select_rows <- function(intervals, parm, call, object = NULL) {
  names <- rownames(intervals)
  n_variance <- length(names) - length(object$beta)
  if (!is.null(object) && identical(names[-seq_len(n_variance)], names(object$beta))) {
    groups <- list(theta_ = seq_len(n_variance), beta_ = n_variance + seq_along(object$beta))
    parm <- select_profiled(parm, names, groups, call, "parm")
  }
  known <- if (is.character(parm)) parm %in% names else
    is.numeric(parm) & parm >= 1 & parm <= nrow(intervals)
  if (length(parm) == 0L || !all(known)) {
    hnm_abort(sprintf("`parm` must name rows of the intervals (%s).",
                      paste(names, collapse = ", ")), call = call)
  }
  kept <- attributes(intervals)[setdiff(names(attributes(intervals)), c("dim", "dimnames"))]
  do.call(structure, c(list(intervals[parm, , drop = FALSE]), kept))
}

# Rows of lme4's parameters (variance parameters, then fixed effects): estimate +- z se. The
# one-way model's variance rows are from the inverse information of its criterion on the
# variance scale (R/one-way.R; mapped to the SD scale by the delta method), with the kind of
# information as attribute "information" (printed when it is not the observed one); other
# fits' from lmm_wald_variance(), with the boundary rows of a singular fit as attribute
# "boundary".
wald_intervals <- function(object, z, scale, oldNames, call) {
  beta <- object$beta
  fixed <- cbind(beta - z * sqrt(diag(vcov(object))), beta + z * sqrt(diag(vcov(object))))
  names <- c(variance_parameter_names(object, oldNames), names(beta))
  if (!is_one_way(object)) {
    wald <- lmm_wald_variance(object, call)
    is_sd <- lmm_parameter_bounds(object)$is_sd[seq_along(wald$estimates)]
    intervals <- `rownames<-`(rbind(lmm_wald_rows(wald, z, scale, is_sd), fixed), names)
    # The variance scale's names as on_scale() gives them (the values are already its).
    if (scale == "var") rownames(intervals)[which(is_sd)] <- variance_names(object)[is_sd]
    return(structure(intervals, information = wald$information,
                     boundary = rownames(intervals)[which(wald$boundary)],
                     class = c("hnm_wald_confint", "matrix", "array")))
  }
  # The closed form's standard errors: the covariance's variances scale like y^4 and leave the
  # double range for data near 1e-75 or 1e75, where the standard errors do not.
  se <- one_way_standard_errors(object, call)
  if (scale == "var") fixed <- beta + c(-1, 1) * z * se[["mu"]]
  intervals <- rbind(wald_variance(object$re_covariance[1L, 1L], se[["tau2"]], z, scale),
                     wald_variance(object$sigma^2, se[["sigma2"]], z, scale), fixed)
  rownames(intervals) <- if (scale == "var") c(variance_names(object), names(beta)) else names
  structure(intervals, information = attr(se, "information"),
            class = c("hnm_wald_confint", "matrix", "array"))
}

#' @rdname confint.hnm_fit
#' @export
print.hnm_wald_confint <- function(x, ...) {
  check_no_dots(list(...), sys.call(), allowed = print_arguments)
  print(unclass(x)[, , drop = FALSE], ...)
  if (identical(attr(x, "information"), "expected")) {
    cat(paste("Wald standard errors from the expected information: the observed information is",
              "not positive definite at these estimates (as often at tau^2 = 0).\n"))
  }
  if (identical(attr(x, "information"), "not positive definite")) {
    cat(paste("No Wald intervals for the variance parameters: the observed information is not",
              "positive definite at these estimates; use method = \"profile\" or \"boot\".\n"))
  }
  if (length(attr(x, "boundary"))) {
    cat(sprintf(paste("NA for %s: a singular fit, with an SD of 0 or a correlation of +-1 on the",
                      "boundary, where the delta method is undefined; the other variance rows",
                      "hold those at the boundary. Use method = \"profile\" or \"boot\".\n"),
                paste(attr(x, "boundary"), collapse = ", ")))
  }
  invisible(x)
}

# lme4's variance parameters of a general fit (SDs and correlations in lme4's order, then
# sigma), their covariance J (2 H^-1) J' on the SD scale and what it rests on. H is the
# Hessian of the fit's criterion (ML deviance or REML criterion, beta profiled out) in the
# model's internal (theta, sigma) and J the Jacobian of lme4's parameters in them
# (hnm-core's lmm/wald.rs). At a singular fit, the internal coordinates of Lambda's zero
# columns are held at 0 (the estimate is a stationary point of the criterion only on that
# face, so H is inverted over the other coordinates), and the parameters on the boundary of
# their space (an SD of 0, a correlation of +-1: `boundary`) have no delta-method variance
# (NA). `information`: "observed", or "not positive definite" (every variance NA) when H is
# not positive definite over the free coordinates.
lmm_wald_variance <- function(object, call) {
  model <- lmm_model(object)
  parts <- rust_result(rs_lmm_wald_jacobian(model), call = call)
  k <- parts$parameters
  hessian <- matrix(rust_result(rs_lmm_variance_derivatives(model), call = call)$hessian, k, k,
                    byrow = TRUE)
  free <- !parts$held
  jacobian <- matrix(parts$jacobian, k, k, byrow = TRUE)[, free, drop = FALSE]
  jacobian[parts$boundary, ] <- 0
  root <- tryCatch(chol(hessian[free, free, drop = FALSE]), error = function(e) NULL)
  covariance <- if (is.null(root)) matrix(NA_real_, k, k) else
    2 * jacobian %*% chol2inv(root) %*% t(jacobian)
  covariance[parts$boundary, ] <- NA_real_
  covariance[, parts$boundary] <- NA_real_
  list(estimates = parts$estimates, covariance = covariance, boundary = parts$boundary,
       information = if (is.null(root)) "not positive definite" else "observed")
}

# Wald rows of lme4's variance parameters from lmm_wald_variance(): on the SD scale
# estimate +- z se, SDs (`is_sd`, sigma included) truncated at 0 and correlations kept in
# [-1, 1]; on the variance scale the SDs' rows are the variances' (se(sd^2) = 2 sd se(sd)),
# truncated at 0, and the correlations' rows are as on the SD scale.
lmm_wald_rows <- function(wald, z, scale, is_sd) {
  estimate <- wald$estimates
  se <- sqrt(diag(wald$covariance))
  if (scale == "var") {
    se[is_sd] <- 2 * estimate[is_sd] * se[is_sd]
    estimate[is_sd] <- estimate[is_sd]^2
  }
  rows <- cbind(estimate - z * se, estimate + z * se)
  rows[is_sd, ] <- pmax(rows[is_sd, ], 0)
  rows[!is_sd, ] <- pmin(pmax(rows[!is_sd, ], -1), 1)
  rows
}

# A Wald interval for a variance v with standard error se, on the variance or SD scale.
wald_variance <- function(v, se, z, scale) {
  var_interval <- pmax(v + c(-1, 1) * z * se, 0)
  if (scale == "var") return(var_interval)
  if (v > 0) pmax(sqrt(v) + c(-1, 1) * z * se / (2 * sqrt(v)), 0) else sqrt(var_interval)
}

# Column labels as stats:::format.perc prints them ("2.5 %", "97.5 %"). format() costs more
# than a small model's profile intervals, so the last level's labels are kept.
percent_labels <- function(level) {
  if (identical(level, percent_label_memo$level)) return(percent_label_memo$labels)
  p <- c((1 - level) / 2, 1 - (1 - level) / 2)
  labels <- sprintf("%s %%", format(100 * p, trim = TRUE, scientific = FALSE, digits = 3))
  percent_label_memo$level <- level
  percent_label_memo$labels <- labels
  labels
}
percent_label_memo <- new.env(parent = emptyenv())

is_reml <- function(object) identical(object$method, "REML")

# A confidence level or tail probability: one number strictly between 0 and 1.
check_probability <- function(p, name, call) {
  if (!is.numeric(p) || length(p) != 1L || !isTRUE(p > 0 && p < 1)) {
    hnm_abort(sprintf("`%s` must be a single number between 0 and 1.", name), call = call)
  }
}

# Profiles and bootstrap refits are of the likelihood criterion the fit maximised.
require_likelihood_fit <- function(object, what, call) {
  if (!object$method %in% c("ML", "REML")) {
    hnm_abort(sprintf(paste("%s need an ML or REML fit, but this fit is by %s; refit with",
                            "`method = \"ML\"`."), what, object$method), call = call)
  }
}

exact_intervals <- function(object, level, quiet = FALSE) {
  s <- fit_one_way_statistics(object)
  groups <- length(s$n)
  n_obs <- sum(s$n)
  mse <- sum(s$ss) / (n_obs - groups)
  n_h <- groups / sum(1 / s$n)
  f <- n_h * stats::var(s$mean) / mse
  f_quantiles <- stats::qf(c(1 - (1 - level) / 2, (1 - level) / 2), groups - 1, n_obs - groups)
  ratio <- pmax((f / f_quantiles - 1) / n_h, 0)
  intervals <- rbind(icc = ratio / (1 + ratio), ratio = ratio)
  if (any(s$n != s$n[1L])) {
    note <- sprintf(paste("unbalanced data: Thomas-Hultquist approximation (n replaced by",
                          "the harmonic mean group size %s), not exact"), format(n_h, digits = 4))
    if (!quiet) message("confint(method = \"exact\"): ", note, ".")
    attr(intervals, "approximation") <- note
  }
  intervals
}
