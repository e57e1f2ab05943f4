# Accessor methods of hnm_fit, named and shaped as lme4's for merMod.

#' Methods for `hnm_fit` objects
#'
#' The accessors an lme4 user reaches for, with lme4's names and shapes. `fixef`,
#' `ranef` and `VarCorr` are nlme's generics (which lme4 re-exports); `sigma`, `nobs`,
#' `logLik`, `deviance`, `vcov`, `formula`, `fitted` and `residuals` are stats' generics.
#'
#' @param object,x An `hnm_fit`.
#' @param full For `vcov`: `FALSE` (default) gives lme4's covariance of the fixed effect;
#'   `TRUE` the inverse observed information of \eqn{(\mu, \sigma^2, \tau^2)}, the lecture's
#'   `solve(fit$hessian)` (for `method = "ANOVA"` fits, the sampling covariance of the
#'   moment estimators; see [hnm_fit()]). hnm fits the data divided by a power of two near
#'   their spread (`fit$unit`) and maps the results back; for data so large or small that
#'   the information in the data's units leaves the double range (roughly beyond 1e75 or
#'   below 1e-75), entries of this matrix are `Inf` or 0, while `fit$std_errors` and
#'   `confint()` stay finite.
#' @param tol For `isSingular`: the fit is singular when \eqn{\theta = \tau/\sigma < } `tol`;
#'   hnm's boundary is exact, so a singular fit has \eqn{\theta = 0}.
#' @param sigma,rdig Ignored; for compatibility with the `VarCorr` generic.
#' @param ... Unused.
#' @return `fixef`: named estimate of the intercept \eqn{\mu}. `VarCorr`: an object of class
#'   `VarCorr.hnm` shaped and printing like lme4's (a list holding the grouping factor's
#'   1 x 1 covariance matrix with attributes `stddev` and `correlation`, and attribute `sc`,
#'   the residual standard deviation), with an `as.data.frame` method giving lme4's
#'   columns `grp`, `var1`, `var2`, `vcov`, `sdcor`. `logLik`: a `logLik` object with
#'   `df = 3` and `nobs`, so `AIC` and `BIC` work. `ngrps`: named number of groups.
#' @examples
#' d <- data.frame(y = c(5.1, 4.8, 6.0, 7.2, 6.9, 7.5, 4.0, 4.4, 4.9),
#'                 g = rep(c("a", "b", "c"), each = 3))
#' fit <- hnm_fit(y ~ 1 | g, d)
#' fixef(fit); sigma(fit); VarCorr(fit); as.data.frame(VarCorr(fit))
#' logLik(fit); AIC(fit); nobs(fit); ngrps(fit); isSingular(fit)
#' vcov(fit); vcov(fit, full = TRUE)
#' head(residuals(fit)); head(fitted(fit))
#' @name hnm_fit-methods
NULL

#' @rdname hnm_fit-methods
#' @method fixef hnm_fit
#' @export
fixef.hnm_fit <- function(object, ...) c("(Intercept)" = object$mu)

#' @rdname hnm_fit-methods
#' @export
sigma.hnm_fit <- function(object, ...) sqrt(object$sigma2)

#' @rdname hnm_fit-methods
#' @export
nobs.hnm_fit <- function(object, ...) row_count(sum(object$stats$n))

#' @rdname hnm_fit-methods
#' @export
ngrps <- function(object, ...) UseMethod("ngrps")

#' @rdname hnm_fit-methods
#' @export
ngrps.hnm_fit <- function(object, ...) setNames(length(object$stats$n), object$group_name)

#' @rdname hnm_fit-methods
#' @export
isSingular <- function(x, tol = 1e-4) UseMethod("isSingular")

#' @rdname hnm_fit-methods
#' @export
isSingular.hnm_fit <- function(x, tol = 1e-4) x$theta < tol

#' @rdname hnm_fit-methods
#' @export
isSingular.default <- function(x, tol = 1e-4) {
  if (!requireNamespace("lme4", quietly = TRUE)) {
    hnm_abort("isSingular() for this class needs the lme4 package.")
  }
  lme4::isSingular(x, tol = tol)
}

#' @rdname hnm_fit-methods
#' @export
logLik.hnm_fit <- function(object, ...) {
  structure(-object$deviance / 2, nobs = nobs(object), nall = nobs(object), df = 3L,
            class = "logLik")
}

#' @rdname hnm_fit-methods
#' @export
deviance.hnm_fit <- function(object, ...) object$deviance

#' @rdname hnm_fit-methods
#' @export
df.residual.hnm_fit <- function(object, ...) nobs(object) - 3L

#' @rdname hnm_fit-methods
#' @export
formula.hnm_fit <- function(x, ...) x$formula

#' @rdname hnm_fit-methods
#' @export
vcov.hnm_fit <- function(object, full = FALSE, ...) {
  if (isTRUE(full)) return(object$covariance)
  matrix(object$se_mu^2, 1L, 1L, dimnames = list("(Intercept)", "(Intercept)"))
}

#' @rdname hnm_fit-methods
#' @method VarCorr hnm_fit
#' @export
VarCorr.hnm_fit <- function(x, sigma = 1, rdig = 3, ...) {
  # lme4's shape: one covariance matrix per grouping factor with attributes "stddev" and
  # "correlation", and the residual standard deviation as attribute "sc".
  names <- list("(Intercept)", "(Intercept)")
  tau2 <- structure(matrix(x$tau2, 1L, 1L, dimnames = names),
                    stddev = c("(Intercept)" = sqrt(x$tau2)),
                    correlation = matrix(1, 1L, 1L, dimnames = names))
  structure(setNames(list(tau2), x$group_name), sc = sqrt(x$sigma2), useSc = TRUE,
            class = "VarCorr.hnm")
}

# Group name and the two variances of a VarCorr.hnm.
varcorr_parts <- function(vc) {
  list(group = names(vc)[1L], tau2 = vc[[1L]][1L, 1L], sigma2 = attr(vc, "sc")^2)
}

#' @rdname hnm_fit-methods
#' @param row.names,optional Ignored.
#' @export
as.data.frame.VarCorr.hnm <- function(x, row.names = NULL, optional = FALSE, ...) {
  x <- varcorr_parts(x)
  data.frame(grp = c(x$group, "Residual"), var1 = c("(Intercept)", NA), var2 = NA_character_,
             vcov = c(x$tau2, x$sigma2), sdcor = sqrt(c(x$tau2, x$sigma2)),
             stringsAsFactors = FALSE)
}

#' @rdname hnm_fit-methods
#' @param digits Significant digits printed.
#' @param comp Columns to show: any of `"Variance"`, `"Std.Dev."`.
#' @export
print.VarCorr.hnm <- function(x, digits = max(3, getOption("digits") - 2),
                              comp = "Std.Dev.", ...) {
  print(format_varcorr(x, digits, comp), quote = FALSE)
  invisible(x)
}

# The random-effects table of lme4's print: Groups, Name, then Variance and/or Std.Dev.
format_varcorr <- function(vc, digits, comp) {
  vc <- varcorr_parts(vc)
  table <- cbind(Groups = c(vc$group, "Residual"), Name = c("(Intercept)", ""))
  variances <- c(vc$tau2, vc$sigma2)
  if ("Variance" %in% comp) table <- cbind(table, Variance = format(variances, digits = digits))
  if ("Std.Dev." %in% comp) table <- cbind(table, Std.Dev. = format(sqrt(variances), digits = digits))
  rownames(table) <- rep("", nrow(table))
  table
}

# The conditional mode of a_j: tau2 n_j / (sigma2 + n_j tau2) * (ybar_j - mu).
group_effects <- function(object) {
  s <- object$stats
  shrink <- object$tau2 * s$n / (object$sigma2 + s$n * object$tau2)
  shrink * (s$mean - (object$mu - s$center))
}

# A count of rows as R reports counts: an integer, or a double beyond 2^31 - 1 rows (a
# database table can hold more), never NA.
row_count <- function(n) if (n <= .Machine$integer.max) as.integer(n) else as.double(n)

# Row-level methods need the rows; a fit made from group statistics has none.
require_rows <- function(object, what) {
  if (is.null(object$y)) {
    hnm_abort(sprintf(paste("%s needs the data rows, but this fit was made from group",
                            "statistics; refit from the data to get it."), what),
              class = "hnm_no_rows")
  }
}

# Per-row index into the retained groups (NA or 0 for rows not used in the fit): hashed
# group values are matched to the fit's keys; factor codes map through `level_index` when
# some levels were dropped, and are the index themselves otherwise.
row_group <- function(object) {
  s <- object$stats
  if (!is.null(s$keys)) return(match(object$g, s$keys))
  codes <- as.integer(if (is.factor(object$g)) object$g else factor(object$g))
  if (is.null(s$level_index)) codes else s$level_index[codes]
}

# Rows used in the fit: response and group both present.
complete_rows <- function(object) !is.na(object$y) & !is.na(object$g)

#' @rdname hnm_fit-methods
#' @export
fitted.hnm_fit <- function(object, ...) {
  require_rows(object, "fitted()")
  keep <- complete_rows(object)
  object$mu + group_effects(object)[row_group(object)[keep]]
}

#' @rdname hnm_fit-methods
#' @param type For `residuals`: `"response"` (default) or `"pearson"`; as in lme4 for an
#'   unweighted linear mixed model, the two coincide.
#' @param scaled For `residuals`: logical, divide by \eqn{\hat\sigma} (as lme4's).
#' @export
residuals.hnm_fit <- function(object, type = c("response", "pearson"), scaled = FALSE, ...) {
  match.arg(type)
  require_rows(object, "residuals()")
  r <- object$y[complete_rows(object)] - fitted(object)
  if (isTRUE(scaled)) r / sigma(object) else r
}
