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

#' @rdname hnm_fit-methods
#' @method fixef hnm_fit
#' @export
fixef.hnm_fit <- function(object, add.dropped = FALSE, ...) {
  check_no_dots(list(...), sys.call())
  check_flag(add.dropped, "add.dropped", sys.call())
  c("(Intercept)" = object$mu)
}

#' @rdname hnm_fit-methods
#' @export
sigma.hnm_fit <- function(object, ...) {
  check_no_dots(list(...), sys.call())
  sqrt(object$sigma2)
}

#' @rdname hnm_fit-methods
#' @export
nobs.hnm_fit <- function(object, use.fallback = FALSE, ...) {
  check_no_dots(list(...), sys.call())
  row_count(sum(object$stats$n))
}

# ngrps, isSingular, getME and REMLcrit are lme4's functions. hnm's generics of the same names
# forward every other class to lme4's, and hnm's methods are also registered on lme4's generics
# when lme4 is loaded (see .onLoad), so attaching hnm before or after lme4 breaks neither.

#' @rdname hnm_fit-methods
#' @export
ngrps <- function(object, ...) UseMethod("ngrps")

#' @rdname hnm_fit-methods
#' @export
ngrps.hnm_fit <- function(object, ...) {
  check_no_dots(list(...), sys.call())
  setNames(length(object$stats$n), object$group_name)
}

#' @rdname hnm_fit-methods
#' @export
ngrps.default <- function(object, ...) lme4_function("ngrps")(object, ...)

#' @rdname hnm_fit-methods
#' @export
isSingular <- function(x, tol = 1e-4) UseMethod("isSingular")

#' @rdname hnm_fit-methods
#' @export
isSingular.hnm_fit <- function(x, tol = 1e-4) {
  check_tolerance(tol)
  x$theta < tol
}

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
REMLcrit.hnm_fit <- function(object) {
  if (object$method == "REML") return(object$deviance)
  # lme4's REMLcrit of an ML fit: the REML criterion at the ML lambda = tau^2/sigma^2, with
  # mu and sigma^2 profiled as REML profiles them (the profiled deviance's docs in hnm-core).
  s <- object$stats
  lambda <- object$tau2 / object$sigma2
  w <- s$n / (1 + s$n * lambda)
  mu <- sum(w * s$mean) / sum(w)
  k <- sum(s$n) - 1
  q <- sum(s$ss) + sum(w * (s$mean - mu)^2)
  k * (1 + log(2 * pi * q / k)) + sum(log(1 + s$n * lambda)) + log(sum(w))
}

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

#' @rdname hnm_fit-methods
#' @export
logLik.hnm_fit <- function(object, REML = NULL, ...) {
  check_no_dots(list(...), sys.call())
  check_criterion(object, REML, "logLik", sys.call())
  structure(-object$deviance / 2, nobs = nobs(object), nall = nobs(object), df = 3L,
            class = "logLik")
}

#' @rdname hnm_fit-methods
#' @export
deviance.hnm_fit <- function(object, REML = NULL, ...) {
  check_no_dots(list(...), sys.call())
  check_criterion(object, REML, "deviance", sys.call())
  object$deviance
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
df.residual.hnm_fit <- function(object, ...) {
  check_no_dots(list(...), sys.call())
  nobs(object) - 3L
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

#' @rdname hnm_fit-methods
#' @export
vcov.hnm_fit <- function(object, full = FALSE, ...) {
  check_no_dots(list(...), sys.call())
  if (isTRUE(full)) return(object$covariance)
  matrix(object$se_mu^2, 1L, 1L, dimnames = list("(Intercept)", "(Intercept)"))
}

#' @rdname hnm_fit-methods
#' @method VarCorr hnm_fit
#' @export
VarCorr.hnm_fit <- function(x, sigma = 1, ...) {
  check_no_dots(list(...), sys.call())
  # lme4's shape: one covariance matrix per grouping factor with attributes "stddev" and
  # "correlation", and the residual standard deviation as attribute "sc". An explicit
  # `sigma` replaces sigma-hat, as lme4's (the relative covariance times sigma^2).
  scale <- if (missing(sigma)) 1 else varcorr_scale(sigma, sqrt(x$sigma2), sys.call())
  names <- list("(Intercept)", "(Intercept)")
  tau2 <- structure(matrix(x$tau2 * scale^2, 1L, 1L, dimnames = names),
                    stddev = c("(Intercept)" = sqrt(x$tau2) * scale),
                    correlation = matrix(1, 1L, 1L, dimnames = names))
  structure(setNames(list(tau2), x$group_name), sc = sqrt(x$sigma2) * scale, useSc = TRUE,
            class = "VarCorr.hnm")
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

# The conditional mode of a_j: tau2 n_j / (sigma2 + n_j tau2) * (ybar_j - mu).
group_effects <- function(object) {
  s <- object$stats
  shrink <- object$tau2 * s$n / (object$sigma2 + s$n * object$tau2)
  shrink * (s$mean - (object$mu - s$center))
}

# A count of rows as R reports counts: an integer, or a double beyond 2^31 - 1 rows (a
# database table can hold more), never NA.
row_count <- function(n) if (n <= .Machine$integer.max) as.integer(n) else as.double(n)

# Row-level methods need the rows; a fit made from group statistics has none. A one-way fit
# keeps its response and groups by reference, so they are checked to be the data it was
# made from: the group statistics recomputed from them (one pass in Rust, no larger than
# the method's own O(N) work) must equal the fit's, or the columns were modified in place
# since (data.table's `:=` or set()). A change that leaves every group's n, mean and SS
# unchanged leaves the fit the fit of the new data, which the methods then report on.
require_rows <- function(object, what) {
  if (inherits(object, "hnm_lmm")) return(invisible())
  if (is.null(object$y)) {
    hnm_abort(sprintf(paste("%s needs the data rows, but this fit was made from group",
                            "statistics; refit from the data to get it."), what),
              class = "hnm_error_no_rows")
  }
  now <- group_statistics(object$y, object$g, object$response_name, object$group_name)
  fields <- c("n", "mean", "ss", "center")
  if (!identical(now[fields], object$stats[fields]) || !identical(now$group, object$stats$group)) {
    hnm_abort(sprintf(paste("%s needs the data the fit was made from, but they have been",
                            "modified in place since (for example by data.table's `:=` or",
                            "set()); refit the model to the current data."), what),
              class = "hnm_error_data_changed")
  }
}

# Per-row index into the retained groups (NA or 0 for rows not used in the fit): hashed
# group values are matched to the fit's keys; factor codes map through `level_index` when
# some levels were dropped, and are the index themselves otherwise.
row_group <- function(object) {
  s <- object$stats
  if (!is.null(s$keys)) return(match(object$g, s$keys))
  codes <- as.integer(as_group_factor(object$g))
  if (is.null(s$level_index)) codes else s$level_index[codes]
}

# Rows used in the fit: response and group both present.
complete_rows <- function(object) !is.na(object$y) & !is.na(object$g)

#' @rdname hnm_fit-methods
#' @export
fitted.hnm_fit <- function(object, ...) {
  check_no_dots(list(...), sys.call())
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
  check_no_dots(list(...), sys.call())
  match.arg(type)
  require_rows(object, "residuals()")
  r <- object$y[complete_rows(object)] - fitted(object)
  if (isTRUE(scaled)) r / sigma(object) else r
}
