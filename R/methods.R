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
#' @param sigma For `VarCorr`, as lme4's: when given, the variances are those for residual
#'   SD `sigma` (\eqn{\hat\tau^2 (\sigma/\hat\sigma)^2}), the residual SD `sigma` itself.
#' @param add.dropped For `fixef`, as lme4's (the one-way model drops no column).
#' @param use.fallback For `nobs`: accepted for `stats::nobs()`'s callers (such as `step()`);
#'   hnm always knows the number of observations used.
#' @param REML For `logLik` and `deviance`, as lme4's: `NULL` or the fit's own criterion
#'   (`TRUE` for a REML fit, `FALSE` otherwise). The other criterion at the fit's estimates is
#'   not available (an error); [REMLcrit()] gives the REML criterion of an ML fit.
#' @param fixed.only,random.only For `formula`, as lme4's: the formula of the fixed part
#'   (`y ~ 1` here), or the response and the random-effects terms.
#' @param ... Not used: an argument given here is an error (class
#'   `hnm_error_unused_argument`), not silently ignored.
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

# ngrps, isSingular, getME and REMLcrit are lme4's functions. hnm's generics of the same names
# forward every other class to lme4's, and hnm's methods are also registered on lme4's generics
# when lme4 is loaded (see .onLoad), so attaching hnm before or after lme4 breaks neither.

#' @rdname hnm_fit-methods
#' @export
ngrps <- function(object, ...) UseMethod("ngrps")

#' @rdname hnm_fit-methods
#' @export
ngrps.default <- function(object, ...) lme4_function("ngrps")(object, ...)

#' @rdname hnm_fit-methods
#' @export
isSingular <- function(x, tol = 1e-4) UseMethod("isSingular")

#' @rdname hnm_fit-methods
#' @export
isSingular.default <- function(x, tol = 1e-4) lme4_function("isSingular")(x, tol = tol)

#' @rdname hnm_fit-methods
#' @param name For `getME`: the component, as lme4's (`"theta"`, `"lower"`, `"beta"`,
#'   `"sigma"`, `"Lambda"`, ...).
#' @export
getME <- function(object, name, ...) UseMethod("getME")

#' @rdname hnm_fit-methods
#' @export
getME.default <- function(object, name, ...) lme4_function("getME")(object, name, ...)

#' @rdname hnm_fit-methods
#' @export
REMLcrit.default <- function(object) lme4_function("REMLcrit")(object)

# lme4's function `name`, or an error saying that lme4 is needed for this object.
lme4_function <- function(name) {
  if (!requireNamespace("lme4", quietly = TRUE)) {
    hnm_abort(sprintf("%s() for this class needs the lme4 package.", name),
              class = "hnm_error_argument")
  }
  getExportedValue("lme4", name)
}

# lme4's `REML` of logLik() and deviance(): the criterion of the fit's own method. The other
# criterion at the fit's estimates (lme4's deviance(REML = FALSE) of a REML fit) is refused
# with where to get it.
check_criterion <- function(object, REML, what, call) {
  if (is.null(REML) || identical(REML, object$method == "REML")) return(invisible())
  if (!isTRUE(REML) && !isFALSE(REML)) {
    hnm_abort("`REML` must be NULL, TRUE or FALSE.", call = call, class = "hnm_error_argument")
  }
  hnm_abort(sprintf(paste("%s(REML = %s) of a%s fit, the other criterion at these estimates, is",
                          "not available in hnm; %s."), what, REML,
                    if (object$method == "REML") " REML" else sprintf("n %s", object$method),
                    if (REML) "REMLcrit() gives the REML criterion of an ML fit" else
                      "refit with REML = FALSE for the ML deviance"),
            call = call, class = "hnm_error_argument")
}

#' @rdname hnm_fit-methods
#' @export
formula.hnm_fit <- function(x, fixed.only = FALSE, random.only = FALSE, ...) {
  check_no_dots(list(...), sys.call())
  check_flag(fixed.only, "fixed.only", sys.call())
  check_flag(random.only, "random.only", sys.call())
  if (fixed.only && random.only) {
    hnm_abort("`fixed.only` and `random.only` cannot both be TRUE.", call = sys.call(),
              class = "hnm_error_argument")
  }
  parsed <- x$parsed %||% parse_mixed_formula(x$formula)
  rhs <- if (fixed.only) parsed$fixed else if (random.only) bar_terms(x$formula) else
    return(x$formula)
  stats::as.formula(call("~", parsed$response, rhs), env = environment(x$formula))
}

# The random-effects terms of a formula's right-hand side, `(a | g) + (b | g)` (lme4's
# formula(random.only = TRUE)).
bar_terms <- function(formula) {
  bars <- lapply(find_bars(formula[[3L]]), function(b) call("(", b))
  Reduce(function(a, b) call("+", a, b), bars)
}

# lme4's VarCorr(x, sigma = s) reports the covariances for residual SD s instead of
# sigma-hat: the factor s / sigma-hat that scales every SD.
varcorr_scale <- function(sigma, sigma_hat, call) {
  if (!is.numeric(sigma) || length(sigma) != 1L || !isTRUE(sigma > 0 && is.finite(sigma))) {
    hnm_abort("`sigma` must be one positive number.", call = call, class = "hnm_error_argument")
  }
  sigma / sigma_hat
}


#' @rdname hnm_fit-methods
#' @param row.names,optional Ignored.
#' @param order For `as.data.frame` of `VarCorr`: lme4's `"cov.last"` (its default) only.
#' @export
as.data.frame.VarCorr.hnm <- function(x, row.names = NULL, optional = FALSE,
                                      order = "cov.last", ...) {
  check_no_dots(list(...), sys.call())
  if (!identical(order, "cov.last")) {
    hnm_abort("`order` must be \"cov.last\" (lme4's \"lower.tri\" is not supported).",
              call = sys.call(), class = "hnm_error_argument")
  }
  # lme4's layout: per term its variances, then its covariances (lower triangle), then Residual.
  term_rows <- function(v, group) {
    lower <- lower.tri(v)
    names <- rownames(v)
    data.frame(grp = group, var1 = names[c(seq_len(nrow(v)), col(v)[lower])],
               var2 = c(rep(NA_character_, nrow(v)), names[row(v)[lower]]),
               vcov = c(diag(v), v[lower]),
               sdcor = c(attr(v, "stddev"), attr(v, "correlation")[lower]),
               stringsAsFactors = FALSE)
  }
  rows <- do.call(rbind, c(Map(term_rows, x, names(x)), deparse.level = 0))
  sc <- attr(x, "sc")
  rows <- rbind(rows, data.frame(grp = "Residual", var1 = NA_character_, var2 = NA_character_,
                                 vcov = sc^2, sdcor = sc, stringsAsFactors = FALSE))
  rownames(rows) <- NULL
  rows
}

#' @rdname hnm_fit-methods
#' @param digits Significant digits printed.
#' @param comp Columns to show: any of `"Variance"`, `"Std.Dev."`.
#' @export
print.VarCorr.hnm <- function(x, digits = max(3, getOption("digits") - 2),
                              comp = "Std.Dev.", ...) {
  check_no_dots(list(...), sys.call())
  print(format_varcorr(x, digits, comp), quote = FALSE)
  invisible(x)
}

# The random-effects table of lme4's print (lme4's formatVC): Groups, Name, Variance and/or
# Std.Dev., and the lower triangle of each term's correlations as Corr columns.
format_varcorr <- function(vc, digits, comp) {
  sds <- c(lapply(vc, attr, "stddev"), list(Residual = attr(vc, "sc")))
  sizes <- lengths(sds)
  table <- matrix("", sum(sizes), 2L, dimnames = list(rep("", sum(sizes)), c("Groups", "Name")))
  table[1L + cumsum(sizes) - sizes, "Groups"] <- names(sizes)
  table[, "Name"] <- c(unlist(lapply(vc, colnames)), "")
  values <- unlist(sds)
  if ("Variance" %in% comp) table <- cbind(table, Variance = format(values^2, digits = digits))
  if ("Std.Dev." %in% comp) table <- cbind(table, Std.Dev. = format(values, digits = digits))
  if (all(sizes <= 1L)) return(table)
  widest <- max(sizes)
  corr <- do.call(rbind, lapply(vc, function(v) {
    places <- max(2L, digits - 2L)
    cc <- format(round(attr(v, "correlation"), places), nsmall = places)
    cc[!lower.tri(cc)] <- ""
    cbind(cc, matrix("", nrow(cc), widest - nrow(cc)))
  }))[, -widest, drop = FALSE]
  corr <- rbind(corr, matrix("", nrow(table) - nrow(corr), ncol(corr)))
  colnames(corr) <- c("Corr", rep("", ncol(corr) - 1L))
  cbind(table, corr)
}

# A count of rows as R reports counts: an integer, or a double beyond 2^31 - 1 rows (a
# database table can hold more), never NA.
row_count <- function(n) if (n <= .Machine$integer.max) as.integer(n) else as.double(n)
