# The profile likelihood of an hnm_fit, as lme4's profile() returns it, with its plot and
# confint methods.

# lme4's cut-off of a profile for its `alphamax`: zeta_max = sqrt(qchisq(1 - alphamax, n)) with
# n the model's parameters (SDs, correlations, sigma and fixed effects), the range of the joint
# confidence regions that lme4's plots of a profile draw (splom's pairs, densityplot's tails).
profile_zeta_max <- function(alphamax, parameters, call) {
  if (!is.numeric(alphamax) || length(alphamax) != 1L || !isTRUE(alphamax >= 1e-8 && alphamax < 1)) {
    hnm_abort("`alphamax` must be a single number from 1e-8 to below 1.", call = call)
  }
  sqrt(stats::qchisq(alphamax, parameters, lower.tail = FALSE))
}

# The indices of lme4's `which` among `names`: NULL (all), names, indices, or the names of
# `groups` ("theta_", "beta_"), each a set of indices; `argument` names `which` in errors.
select_profiled <- function(which, names, groups, call, argument = "which") {
  if (is.null(which)) return(seq_along(names))
  index <- if (is.character(which)) {
    unlist(lapply(which, function(w) if (w %in% names(groups)) groups[[w]] else match(w, names)))
  } else if (is.numeric(which) && all(which == round(which))) {
    as.integer(which)
  }
  if (length(index) == 0L || anyNA(index) || any(index < 1L | index > length(names))) {
    hnm_abort(sprintf(paste("`%s` must be NULL, \"theta_\", \"beta_\", or names or indices",
                            "of the parameters (%s)."), argument, paste(names, collapse = ", ")),
              call = call)
  }
  sort(unique(index))
}

#' Confidence intervals from a profile
#'
#' Interpolates each parameter's profile (a monotone cubic spline of the value against
#' \eqn{\zeta}) at \eqn{\pm z_{1-\alpha/2}}, as lme4's `confint(profile(fit))`. The
#' \eqn{\tau} interval starts at 0 when the profile reaches \eqn{\tau = 0} within the
#' cut-off. Levels beyond the profile's range (`1 - alphamax`) give `NA` with a warning.
#' `confint(fit, method = "profile")` computes the limits exactly instead.
#'
#' @param object An `hnm_profile` from [profile.hnm_fit()].
#' @param parm Rows to return (names or indices, or lme4's `"theta_"` and `"beta_"` for the
#'   variance parameters and the fixed effects profiled); all by default.
#' @param level Confidence level.
#' @param scale `"sd"` (default) or `"var"`: the limits of the SDs (\eqn{\tau}, \eqn{\sigma}, or a
#'   general fit's SDs of the random effects) squared.
#' @param ... Not used; an error if given.
#' @return A matrix as [confint.hnm_fit()] returns.
#' @examples
#' d <- data.frame(y = c(5.1, 4.8, 6.0, 7.2, 6.9, 7.5, 4.0, 4.4, 4.9),
#'                 g = rep(c("a", "b", "c"), each = 3))
#' confint(profile(hnm_fit(y ~ 1 | g, d)), level = 0.9)
#' @export
confint.hnm_profile <- function(object, parm, level = 0.95, scale = c("sd", "var"), ...) {
  call <- sys.call()
  profiled <- unique(as.character(object$.par))
  lower <- attr(object, "lower")
  upper <- attr(object, "upper")
  if (!all(profiled %in% names(lower))) {
    # A profile that lme4's logProf() or varianceProf() transformed (and renamed): lme4's
    # intervals, from the splines those functions made anew.
    require_lme4("confint() of a profile transformed by lme4's logProf() or varianceProf()", call)
    class(object) <- c("thpr", "data.frame")
    return(stats::confint(object, parm, level = level, ...))
  }
  check_no_dots(list(...), call)
  scale <- one_of(scale, c("sd", "var"), "scale", call)
  check_probability(level, "level", call)
  z <- critical_value(level)
  intervals <- t(vapply(profiled, function(name) {
    rows <- object[object$.par == name, ]
    profile_limits(rows$.zeta, rows[[name]], z, lower[[name]], upper[[name]])
  }, numeric(2)))
  if (anyNA(intervals)) {
    hnm_warn("`level` is beyond the range of the profile; recompute it with a smaller `alphamax`.",
             call = call)
  }
  sds <- attr(object, "sd")[profiled]
  if (scale == "var") intervals[sds, ] <- intervals[sds, ]^2
  dimnames(intervals) <- list(profiled, percent_labels(level))
  if (missing(parm)) return(intervals)
  if (is.character(parm)) {
    # lme4's "theta_" (the variance parameters and sigma, each bounded below) and "beta_".
    variance <- profiled[is.finite(lower[profiled])]
    parm <- unlist(lapply(parm, function(p) {
      switch(p, theta_ = variance, beta_ = setdiff(profiled, variance), p)
    }))
  }
  select_rows(intervals, parm, call)
}

# A parameter's bound in `bounds` (named), or `otherwise` for a parameter it does not name
# (one that lme4's logProf() or varianceProf() renamed): the drop lines of plot.hnm_profile().
bound <- function(bounds, name, otherwise) if (name %in% names(bounds)) bounds[[name]] else otherwise

#' @rdname profile.hnm_fit
#' @param x An `hnm_profile`.
#' @param row.names,optional Not used.
#' @export
as.data.frame.hnm_profile <- function(x, row.names = NULL, optional = FALSE, ...) {
  check_no_dots(list(...), sys.call())
  class(x) <- "data.frame"
  # lme4's as.data.frame() of its thpr: each row's value of its profiled parameter (.focal),
  # and .par's levels in the rows' order (a profile's columns without .par stay as they are).
  if (is.null(x$.par)) return(x)
  focal <- as.character(x$.par)
  values <- as.matrix(x[setdiff(names(x), ".par")])
  x$.focal <- values[cbind(seq_len(nrow(x)), match(focal, colnames(values)))]
  x$.par <- factor(focal, levels = unique(focal))
  x
}

# The values where a profile crosses -z and z: a monotone spline of value against zeta; a
# profile that ends on the parameter's bound (`lower`, `upper`: 0 for an SD, -1 and 1 for a
# correlation) inside the cut-off gives that bound; NA beyond its range.
profile_limits <- function(zeta, value, z, lower = 0, upper = Inf) {
  order <- order(value)
  zeta <- zeta[order]
  value <- value[order]
  at <- stats::splinefun(zeta, value, method = "monoH.FC")
  n <- length(zeta)
  low <- if (-z >= zeta[1L]) at(-z) else if (value[1L] == lower) lower else NA_real_
  high <- if (z <= zeta[n]) at(z) else if (value[n] == upper) upper else NA_real_
  c(low, high)
}

#' Plot a profile
#'
#' `plot` draws \eqn{\zeta} against each parameter (base graphics, one panel per parameter),
#' as lme4's `xyplot` of a profile, with the \eqn{\pm z} cut-offs of the confidence `levels`
#' and the interval limits marked. lattice's `xyplot`, `densityplot` and `splom` of a profile
#' draw lme4's plots of it, by lme4's methods for its `thpr` (they need lme4).
#'
#' @param x An `hnm_profile` from [profile.hnm_fit()].
#' @param levels Confidence levels whose cut-offs are drawn.
#' @param ... Passed to [graphics::plot()]; for `xyplot`, `densityplot` and `splom`, lme4's
#'   arguments (`conf`, `which`, ...) and lattice's.
#' @return `x`, invisibly; `xyplot`, `densityplot` and `splom` a lattice plot, as lme4's.
#' @examples
#' d <- data.frame(y = c(5.1, 4.8, 6.0, 7.2, 6.9, 7.5, 4.0, 4.4, 4.9),
#'                 g = rep(c("a", "b", "c"), each = 3))
#' plot(profile(hnm_fit(y ~ 1 | g, d)))
#' @export
plot.hnm_profile <- function(x, levels = c(0.5, 0.8, 0.9, 0.95, 0.99), ...) {
  profiled <- unique(as.character(x$.par))
  # Panels side by side, in rows of up to three (n2mfrow is rows first).
  old <- graphics::par(mfrow = rev(grDevices::n2mfrow(length(profiled))))
  on.exit(graphics::par(old))
  cutoffs <- critical_value(levels)
  for (name in profiled) {
    rows <- x[x$.par == name, ]
    rows <- rows[order(rows[[name]]), ]
    graphics::plot(rows[[name]], rows$.zeta, type = "l", xlab = name, ylab = expression(zeta), ...)
    graphics::abline(h = 0, lty = 3)
    for (z in cutoffs[cutoffs <= max(abs(rows$.zeta))]) {
      limits <- profile_limits(rows$.zeta, rows[[name]], z, bound(attr(x, "lower"), name, -Inf),
                               bound(attr(x, "upper"), name, Inf))
      # A tau profile stopped at 0 crosses no -z: its drop line ends at zeta(0).
      graphics::segments(limits, 0, limits, c(max(-z, min(rows$.zeta)), z), lty = 2, col = "grey40")
      graphics::abline(h = c(-z, z), lty = 3, col = "grey70")
    }
  }
  invisible(x)
}

#' Profile the likelihood of an `hnm_fit`
#'
#' Traces the signed root deviance \eqn{\zeta} of every parameter as lme4's
#' `profile(lmer(...))` does: the SDs and correlations of the random effects (`.sig01`, ...,
#' lme4's order), \eqn{\sigma} (`.sigma`) and each fixed effect. Each point is an exact inner
#' optimum over the other parameters, computed in Rust from the per-group cross-product
#' blocks with the analytic gradient; the limits where \eqn{|\zeta| = \zeta_{max}} are found
#' by Newton steps, and `steps` points are evaluated evenly on each side out to them (lme4
#' steps and interpolates instead). An SD profile stops at 0 and a correlation profile at
#' \eqn{\pm 1} when \eqn{|\zeta|} is still below \eqn{\zeta_{max}} there.
#'
#' For an ML fit the criterion is the deviance \eqn{-2\ell}. For a REML fit hnm profiles the
#' REML criterion itself, where lme4 silently refits by ML: for the variance parameters the
#' restricted likelihood with \eqn{\beta} at its GLS value given them, and for a fixed effect
#' lme4's REML criterion with \eqn{\beta} held fixed (Bates et al. 2015, eq. 42), whose
#' minimum over \eqn{\beta} is the REML criterion. The SDs and correlations are those of the
#' random effects as the data define them (an intercept's SD at covariates 0, as lme4's), so
#' the profile of an intercept SD for a covariate far from 0 is poorly determined, for hnm as
#' for lme4.
#'
#' @param fitted An `hnm_fit` by ML or REML.
#' @param which Parameters to profile: `NULL` (all), names (lme4's, as in `oldNames`) or
#'   indices in lme4's order, or `"theta_"` (the variance parameters and `.sigma`) and
#'   `"beta_"` (the fixed effects).
#' @param alphamax As lme4's: each profile extends to lme4's cut-off \eqn{|\zeta| =
#'   \zeta_{max} = \sqrt{\chi^2_{n, 1 - \alpha_{max}}}}{|zeta| = zeta_max = sqrt(qchisq(1 -
#'   alphamax, n))}, \eqn{n} the model's parameters (the range of the joint regions that lme4's
#'   plots of a profile draw).
#' @param steps The points evaluated on each side of the estimate.
#' @param oldNames lme4's names `.sig01, .sigma` (`TRUE`, the default) or
#'   `sd_(Intercept)|g, cor_x.(Intercept)|g, sigma` (`FALSE`).
#' @param ... Not used; an error if given.
#' @return A data frame of class `c("hnm_profile", "thpr", "data.frame")`, lme4's `thpr`:
#'   `.zeta`, a column per parameter (its value at each point's inner optimum) and `.par`,
#'   the profiled parameter of the row (a factor with sorted levels, as lme4's). Attributes
#'   `forward` and `backward` (lme4's interpolation splines of \eqn{\zeta} against each
#'   parameter profiled and their inverses, so that lme4's `logProf()`, `varianceProf()` and
#'   `as.data.frame()` take it, and lattice's `xyplot()`, `densityplot()` and `splom()` draw
#'   lme4's plots of it), `estimates`, `criterion`, and `lower` and `upper`, each parameter's
#'   bounds.
#' @seealso [confint.hnm_profile()], [plot.hnm_profile()], [confint.hnm_fit()].
#' @examples
#' fit <- hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy, method = "ML")
#' pr <- profile(fit, which = "theta_")
#' confint(pr)
#' # The one-way model:
#' d <- data.frame(y = c(5.1, 4.8, 6.0, 7.2, 6.9, 7.5, 4.0, 4.4, 4.9),
#'                 g = rep(c("a", "b", "c"), each = 3))
#' pr1 <- profile(hnm_fit(y ~ 1 | g, d))
#' head(pr1)
#' plot(pr1)
#' @importFrom stats profile
#' @export
profile.hnm_fit <- function(fitted, which = NULL, alphamax = 0.01, steps = 12L, oldNames = TRUE,
                            ...) {
  call <- sys.call()
  check_no_dots(list(...), call)
  check_count(steps, "steps", 2L, call, max = 1e5)
  check_flag(oldNames, "oldNames", call)
  require_likelihood_fit(fitted, "profiles", call)
  names <- lmm_parameter_names(fitted, oldNames)
  zeta_max <- profile_zeta_max(alphamax, length(names), call)
  profiled <- lmm_profiled(which, fitted, names, call)
  points <- rust_result(rs_lmm_profile(lmm_model(fitted), profiled, zeta_max, as.integer(steps),
                                       thread_count(call)),
                        call = call)
  frame <- data.frame(points$zeta, points$parameters)
  names(frame) <- c(".zeta", names)
  # lme4's factor: levels sorted, rows in the parameters' order.
  frame$.par <- factor(names[points$par])
  bounds <- lmm_parameter_bounds(fitted)
  splines <- profile_splines(frame, names[profiled])
  structure(frame, class = c("hnm_profile", "thpr", "data.frame"),
            forward = splines$forward, backward = splines$backward,
            estimates = stats::setNames(lmm_estimates(fitted), names), criterion = fitted$method,
            lower = stats::setNames(bounds$lower, names), upper = stats::setNames(bounds$upper, names),
            sd = stats::setNames(bounds$is_sd, names))
}

# lme4's splines of a profile (its thpr's attributes "forward" and "backward", which its
# xyplot, densityplot, splom, logProf and varianceProf read): for each parameter profiled,
# the interpolation spline of zeta against its values (of at least 4 points, a cubic spline's
# least: fewer only with `steps` = 2 and an SD at 0) and that spline's inverse, or the error
# when the profile is not monotone (lme4 keeps the error too, and warns).
profile_splines <- function(frame, profiled) {
  forward <- list()
  backward <- list()
  for (name in profiled) {
    rows <- frame[frame$.par == name, c(".zeta", name)]
    rows <- rows[order(rows[[name]]), ]
    rows <- rows[!duplicated(rows[[name]]), ]
    values <- rows[[name]]
    zeta <- rows$.zeta
    if (length(values) < 4L) {
      # A cubic spline needs 4 points: the polygon's at 4 values over the same range.
      values <- seq(values[1L], values[length(values)], length.out = 4L)
      zeta <- stats::approx(rows[[name]], rows$.zeta, values)$y
    }
    forward[[name]] <- splines::interpSpline(values, zeta)
    backward[[name]] <- tryCatch(splines::backSpline(forward[[name]]), error = function(e) e)
    if (inherits(backward[[name]], "error")) hnm_warn(paste0("non-monotonic profile for ", name))
  }
  list(forward = forward, backward = backward)
}

#' @rdname plot.hnm_profile
#' @param data Not used (lattice's generics' argument).
#' @usage \method{xyplot}{hnm_profile}(x, data, ...)
#' @exportS3Method lattice::xyplot
xyplot.hnm_profile <- function(x, data, ...) {
  lme4_profile_plot(lattice::xyplot, "xyplot", x, data, ...)
}

#' @rdname plot.hnm_profile
#' @usage \method{densityplot}{hnm_profile}(x, data, ...)
#' @exportS3Method lattice::densityplot
densityplot.hnm_profile <- function(x, data, ...) {
  lme4_profile_plot(lattice::densityplot, "densityplot", x, data, ...)
}

#' @rdname plot.hnm_profile
#' @usage \method{splom}{hnm_profile}(x, data, ...)
#' @exportS3Method lattice::splom
splom.hnm_profile <- function(x, data, ...) lme4_profile_plot(lattice::splom, "splom", x, data, ...)

# lattice's `plot` (named `name`) of the profile `x` by lme4's method for its thpr, whose
# shape and splines an hnm_profile has.
lme4_profile_plot <- function(plot, name, x, data, ...) {
  lme4_lattice_plot(plot, name, "a profile", structure(x, class = c("thpr", "data.frame")), data,
                    ...)
}

# Profile-likelihood limits of the parameters `parm` (lme4's `which`: NULL for all), rows in
# lme4's order and names, at a `level` confint.hnm_fit() has checked. Only those are
# profiled, as lme4's confint(fit, parm) profiles `which = parm`: the cost follows `parm`,
# and another parameter's profile cannot fail it.
lmm_profile_intervals <- function(object, parm, level, oldNames, call) {
  require_likelihood_fit(object, "profile intervals", call)
  names <- lmm_parameter_names(object, oldNames)
  profiled <- if (is.null(parm)) seq_along(names) else
    lmm_profiled(parm, object, names, call, "parm")
  limits <- rust_result(rs_lmm_profile_ci(lmm_model(object), profiled, critical_value(level),
                                          thread_count(call)), call = call)
  dimnames(limits) <- list(names[profiled], percent_labels(level))
  limits
}

# lme4's names of the parameters in its order: SDs and correlations, sigma, fixed effects.
lmm_parameter_names <- function(object, oldNames) {
  c(variance_parameter_names(object, oldNames), names(object$beta))
}

# The estimates in lme4's order.
lmm_estimates <- function(object) {
  c(sd_cor_rows(matrix(as.double(object$re_covariance), 1L), matrix(object$sigma),
                lengths(object$random_names)), object$beta)
}

# Each parameter's range: [0, Inf) for SDs, [-1, 1] for correlations, (0, Inf) for sigma and
# the real line for fixed effects; `is_sd` marks the SDs and sigma.
lmm_parameter_bounds <- function(object) {
  is_sd <- grepl("^sd_", variance_parameter_names(object, FALSE))
  is_sd[length(is_sd)] <- TRUE
  p <- length(object$beta)
  is_cor <- c(!is_sd, logical(p))
  list(lower = c(ifelse(is_cor[seq_along(is_sd)], -1, 0), rep(-Inf, p)),
       upper = c(ifelse(is_cor[seq_along(is_sd)], 1, Inf), rep(Inf, p)),
       is_sd = c(is_sd, logical(p)))
}

# The 1-based indices of lme4's `which` (given as argument `argument`) among `names` (every
# parameter's, lmm_parameter_names()): NULL, names, indices, "theta_", "beta_".
lmm_profiled <- function(which, object, names, call, argument = "which") {
  n_variance <- length(names) - length(object$beta)
  groups <- list(theta_ = seq_len(n_variance), beta_ = n_variance + seq_along(object$beta))
  select_profiled(which, names, groups, call, argument)
}
