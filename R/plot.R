# Base-graphics diagnostics: residuals against fitted values, and a caterpillar plot of BLUPs.

#' Plot an `hnm_fit` or its random effects
#'
#' `plot(fit)` draws the conditional residuals against the fitted values
#' \eqn{\hat\mu + \hat a_j}, with a horizontal line at 0. `plot(ranef(fit))` draws a
#' caterpillar plot: the BLUPs \eqn{\hat a_j} sorted, each with the interval
#' \eqn{\hat a_j \pm 1.96} conditional SD (needs `ranef(fit, condVar = TRUE)`, the default).
#' Both use base graphics. lattice's `dotplot(ranef(fit))` and `qqmath(ranef(fit))` draw lme4's
#' plots of the conditional modes (caterpillar and normal quantile plots, one per factor), by
#' lme4's methods for its `ranef.mer`, whose shape a `ranef.hnm` has (they need lme4).
#'
#' @param x An `hnm_fit`, or a `ranef.hnm` from [ranef.hnm_fit()].
#' @param data Not used (lattice's generics' argument).
#' @param ... Further graphical parameters passed to [graphics::plot.default()]; for `dotplot`
#'   and `qqmath`, lme4's arguments (`level`, `transf`, ...) and lattice's.
#' @return `x`, invisibly; `dotplot` and `qqmath` a list of lattice plots, as lme4's.
#' @examples
#' fit <- hnm_fit(y ~ 1 | g, wheat)
#' plot(fit)
#' plot(ranef(fit))
#' @name plot.hnm_fit
NULL

#' @rdname plot.hnm_fit
#' @importFrom graphics abline axis plot segments
#' @export
plot.hnm_fit <- function(x, ...) {
  lmm_rows(x, "plot()")
  plot(fitted(x), residuals(x), xlab = "Fitted values", ylab = "Residuals", ...)
  abline(h = 0, lty = 2)
  invisible(x)
}

#' @rdname plot.hnm_fit
#' @export
plot.ranef.hnm <- function(x, ...) {
  effects <- as.data.frame(x)
  if (is.null(effects$condsd)) {
    hnm_abort("the caterpillar plot needs conditional variances: use ranef(fit, condVar = TRUE).",
              call = sys.call())
  }
  terms <- levels(effects$term)
  if (length(terms) > 1L) {
    old <- graphics::par(mfrow = c(1L, length(terms)))
    on.exit(graphics::par(old))
  }
  for (term in terms) caterpillar(effects[effects$term == term, ], names(x)[1L], term, ...)
  invisible(x)
}

#' @rdname plot.hnm_fit
#' @usage \method{dotplot}{ranef.hnm}(x, data, ...)
#' @exportS3Method lattice::dotplot
dotplot.ranef.hnm <- function(x, data, ...) {
  lme4_ranef_plot(lattice::dotplot, "dotplot", x, data, ...)
}

#' @rdname plot.hnm_fit
#' @usage \method{qqmath}{ranef.hnm}(x, data, ...)
#' @exportS3Method lattice::qqmath
qqmath.ranef.hnm <- function(x, data, ...) lme4_ranef_plot(lattice::qqmath, "qqmath", x, data, ...)

# lattice's `plot` (named `name`) of the random effects `x` by lme4's method for its ranef.mer,
# whose shape ranef.hnm has: a list by factor of data frames with attribute "postVar".
lme4_ranef_plot <- function(plot, name, x, data, ...) {
  lme4_lattice_plot(plot, name, "random effects", structure(unclass(x), class = "ranef.mer"),
                    data, ...)
}

# lattice's `plot` (named `name`) of `x` (`what`), classed as lme4's object, by lme4's method.
lme4_lattice_plot <- function(plot, name, what, x, data, ...) {
  require_lme4(sprintf("%s() of %s, lme4's plot,", name, what), sys.call(-2L))
  plot(x, data, ...)
}

# One term's conditional modes, sorted, with 95% intervals from the conditional SDs.
caterpillar <- function(effects, group, term, ...) {
  effects <- effects[order(effects$condval), ]
  half_width <- stats::qnorm(0.975) * effects$condsd
  position <- seq_len(nrow(effects))
  plot(effects$condval, position, xlim = range(effects$condval - half_width,
                                               effects$condval + half_width),
       yaxt = "n", pch = 19, xlab = paste("Conditional mode (BLUP):", term), ylab = group, ...)
  segments(effects$condval - half_width, position, effects$condval + half_width, position)
  axis(2, at = position, labels = as.character(effects$grp), las = 1, cex.axis = 0.7)
  abline(v = 0, lty = 2)
}
