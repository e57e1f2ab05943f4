# Accessor methods of hnm_fit, named and shaped as lme4's for merMod: the estimates are fields
# of the fit; what follows from them (random effects, fitted values) is computed once by the
# Rust model the fit keeps.

#' Methods for `hnm_fit` objects
#'
#' The methods an lme4 user reaches for, for `hnm_fit()` fits of
#' \eqn{y_j = X_j\beta + Z_j b_j + \epsilon_j}{y_j = X_j beta + Z_j b_j + e_j},
#' \eqn{b_j \sim N(0, \Sigma)}{b_j ~ N(0, Sigma)}, with lme4's names and shapes:
#' `fixef`, `vcov` (the p x p covariance of the fixed effects), `VarCorr` (one covariance
#' matrix per random-effects term, named `g`, `g.1`, ... as lme4, with attributes `stddev`
#' and `correlation`; `as.data.frame` gives `grp`, `var1`, `var2`, `vcov`, `sdcor`),
#' `sigma`, `logLik`, `AIC`, `BIC`, `deviance` (\eqn{-2\ell}{-2 logLik} for ML fits, the REML
#' criterion for REML fits), `REMLcrit`, `nobs`, `ngrps`, `df.residual`, `ranef` (a data
#' frame of the conditional modes per grouping factor, with lme4's `"postVar"` array of
#' conditional covariances), `coef`, `fitted`, `residuals`, `weights` (the prior weights of the
#' rows used, 1 without them), `predict`, `simulate`, `update`,
#' `formula`, `terms`, `model.matrix` (the fixed-effects design, or Z), `isSingular`, `getME`,
#' `confint` (Wald intervals for the fixed effects), `anova(fit0, fit1)` (likelihood-ratio
#' tests of nested fits, REML fits refitted by ML), `anova(fit)` (lmerTest's table of F tests
#' of the fixed-effect terms; see below) and `plot`.
#'
#' `anova(fit, type = "III", ddf = "Satterthwaite")` of one fit is lmerTest's
#' `anova.lmerModLmerTest`: for each term of the fixed part, the F test of lmerTest's type III
#' (or `type = "II"`, `"I"`) hypothesis for it, with Satterthwaite's denominator df (columns
#' `Sum Sq`, `Mean Sq`, `NumDF`, `DenDF`, `F value`, `Pr(>F)`; the hypothesis matrices in
#' attribute `"hypotheses"`). Type III hypotheses are lmerTest's: built on the
#' treatment-coded design and made orthogonal to the terms containing the term, so that a
#' main effect marginal to an interaction gets the same F under any contrast coding. Type I
#' is sequential (Doolittle's factor of \eqn{X'X}{X'X}); type II tests each term adjusted
#' for the terms that do not contain it. `ddf = "lme4"` gives lme4's sequential table
#' (`npar`, `Sum Sq`, `Mean Sq`, `F value`, without df); a fit without fixed-effect terms has
#' no rows to test and gives the empty table. lmerTest builds the hypotheses from the rows
#' of X (and of X remade with treatment contrasts and the cell-means design); hnm builds the
#' same matrices from \eqn{X'X}{X'X}, which the group statistics give exactly, and the
#' terms' coding, so `anova(fit)` reads no rows, costs the same at any number of rows and
#' works on a fit made from group statistics (`hnm_stats()`, a database). Type III needs the
#' coding of every combination of the fixed part's factors' levels: beyond 1e7 entries it
#' stops with an error of class `hnm_error_too_large` (types I and II need only
#' \eqn{X'X}{X'X}). Every column equals lmerTest's anova() of lme4's fit at hnm's
#' \eqn{\theta}{theta}, for every type, ML and REML, designs with interactions of factors and covariates and
#' polynomial terms under treatment, sum and Helmert contrasts (tests/testthat/test-anova-type.R;
#' the DenDF to lmerTest's numerical-derivative accuracy, 1e-6).
#'
#' Row-level methods (`fitted`, `residuals`, `predict` without `newdata`, `simulate`,
#' `model.matrix`) read the data the fit was made from, which hnm keeps by reference; if
#' those columns were modified in place since (data.table's `:=`), they stop with an error of
#' class `hnm_error_data_changed` instead of reporting on other data.
#'
#' @param object,x A fit from [hnm_fit()].
#' @param full For `vcov`: `FALSE` (default) gives lme4's covariance of the fixed effects;
#'   `TRUE`, for the one-way model `y ~ 1 | g` only, the inverse information of
#'   \eqn{(\mu, \sigma^2, \tau^2)}, the lecture's `solve(fit$hessian)` (for `method = "ANOVA"`
#'   fits the sampling covariance of the moment estimators; see [hnm_fit()]); for other
#'   models an error of class `hnm_error_argument`.
#' @param tol For `isSingular`: a diagonal element of lme4's \eqn{\Lambda}{Lambda} below
#'   `tol` makes the fit singular (hnm's boundary fits have exact zeros).
#' @param name For `getME`: one, or several for a named list of them (as lme4's), of
#'   `"theta"`, `"lower"`, `"beta"`, `"fixef"`, `"sigma"`, `"Lambda"` and `"Lambdat"`
#'   (lme4's relative covariance factor \eqn{\Lambda}{Lambda} and its
#'   transpose), `"Zt"` and `"Z"` (the random effects' model matrix, transposed or not, of the
#'   rows used), `"b"` (the conditional modes), `"Gp"` (where each term's random effects start),
#'   `"cnms"`, `"flist"` (the grouping factors at the rows used), `"n_rtrms"`, `"p"`, `"q"`,
#'   `"n"` and `"N"` (the rows used), `"mu"` (the fitted values), `"offset"` (the rows' offset,
#'   zeros without one), `"devcomp"` (lme4's dimensions and the components of the criterion:
#'   log-determinants, sums of squares and both estimates of \eqn{\sigma}{sigma}), `"REML"` (the
#'   number of fixed-effects columns of a REML fit, 0 otherwise, as lme4's), `"is_REML"`, `"X"`,
#'   `"y"`, `"u"` (the spherical random effects, \eqn{b = \Lambda u}{b = Lambda u}), `"A"`
#'   (\eqn{\Lambda^\top Z^\top}{Lambda'Z'}), `"Ztlist"` (Zᵀ's rows of each term's column),
#'   `"mmList"` (each term's model matrix), `"Tp"`, `"Tlist"` and `"ST"` (each term's block of
#'   \eqn{\Lambda}{Lambda}), `"Lind"` (the element of theta behind each value of `"Lambdat"`),
#'   `"RX"` (the fixed effects' Cholesky factor), `"devfun"` (`as.function(fit)`), the sizes
#'   `"n_rfacs"`, `"k"`, `"m"`, `"m_i"`, `"p_i"`, `"l_i"`, `"q_i"`, and `"ALL"` (all of them but
#'   `"devfun"`). lme4's `"L"` (its CHOLMOD factor) and `"RZX"` (which depends on that factor's
#'   fill-reducing permutation) are not available.
#'   The matrices are sparse (`Matrix` package), built only when asked for, with the random
#'   effects in lme4's order: term by term as in `"cnms"`, within a term level by level, within
#'   a level the term's columns. (Where lme4 interleaves the terms of grouping factors with
#'   equally many levels, hnm keeps each factor's terms together, as its `"theta"` does.)
#' @param type For `residuals`: `"response"` (the default, \eqn{y - \hat y}), `"working"` (the
#'   same, as lme4's for linear mixed models), `"pearson"` or `"deviance"`
#'   (\eqn{\sqrt{w_i}(y_i - \hat y_i)} with the prior weights of [hnm_fit()], equal to the
#'   response residuals without weights); for `weights`: `"prior"` (lme4's `"working"`
#'   weights are those of GLMMs); for `predict`:
#'   `"link"` or `"response"` (equal for a linear model); for `model.matrix`: `"fixed"` (X)
#'   or `"random"` (Z, sparse, as `getME(fit, "Z")`); for `anova` of one fit, lmerTest's: `"III"` (the default), `"II"`
#'   or `"I"`, also given as 3, 2, 1 or `"3"`, `"2"`, `"1"`.
#' @param scaled For `residuals`: divide by \eqn{\hat\sigma}{sigma}.
#' @param newdata For `predict`: a data frame with the model's variables (not the response),
#'   or `NULL` for the fit's rows. Data-dependent terms (`poly()`, `scale()`, `splines::ns()`,
#'   `splines::bs()`) are evaluated with the fit's bases (the terms' `predvars`), as
#'   `predict.lm()` and lme4 do; population predictions (`re.form = NA`) need neither the
#'   grouping variable nor the variables of the random part only. For `simulate`: must be
#'   `NULL`.
#' @param re.form `NULL` (include the random effects), `NA`/`~0` (population level), or a
#'   formula of some of the model's random-effects terms, such as `~ (1 | g)` in a model with
#'   `(1 | g) + (0 + x | g)`: only their random effects are included (in `simulate`, only the
#'   other terms' effects are drawn anew), as lme4's. Terms are matched by their labels; a term
#'   or grouping factor not in the model is an error. `simulate` takes one of `use.u` and
#'   `re.form`; with several grouping factors, a `re.form` of none of the terms (`NA` or `~0`:
#'   every factor's effects drawn anew) or of all (`NULL`: all at their conditional modes) for
#'   now.
#' @param allow.new.levels For `predict`: predict new (or `NA`) levels of the grouping factor
#'   at the population level instead of stopping.
#' @param se.fit For `predict`: `TRUE` adds standard errors, returning, as `predict.lm()`,
#'   a list of `fit`, `se.fit`, `df` (`Inf`: the intervals use normal quantiles) and
#'   `residual.scale` (\eqn{\hat\sigma}{sigma}). For population predictions (`re.form = NA`)
#'   the standard error of \eqn{x_0^T\hat\beta}{x0'beta-hat}, \eqn{\sqrt{x_0^T V x_0}}{sqrt(x0' V x0)}
#'   with `V = vcov(fit)`. For conditional predictions (`re.form = NULL`) the root of
#'   \eqn{Var(x_0^T\hat\beta + z_0^T\hat b_j - x_0^T\beta - z_0^T b_j)}{Var(x0'beta-hat + z0'b-hat_j - x0'beta - z0'b_j)},
#'   the error of the prediction as an estimate of the group's mean, from the joint
#'   conditional covariance of \eqn{(\hat\beta, \hat b - b)}{(beta-hat, b-hat - b)}
#'   (Henderson's mixed-model equations, whose inverse the fit's blocked Cholesky
#'   factorisation holds; computed per row, not by simulation): it counts both the estimation
#'   of \eqn{\beta}{beta} and the shrinkage error of the group's random effects. A new level
#'   (`allow.new.levels = TRUE`), predicted at the population value, has
#'   \eqn{x_0^T V x_0 + z_0^T \hat\Sigma z_0}{x0' V x0 + z0' Sigma z0}: its random effects
#'   are unknown. A `re.form` naming some of the terms only is refused, and so are conditional
#'   standard errors of an ANOVA fit (its mean is not the equations' solution). With several
#'   grouping factors the same, from a sparse Cholesky factor of Henderson's equations
#'   (`Matrix`); a level new to some of the factors adds each such factor's
#'   \eqn{z_0^T\hat\Sigma_f z_0}{z0' Sigma_f z0}.
#' @param interval For `predict`: `"none"` (default), `"confidence"` or `"prediction"`, as
#'   `predict.lm()`: the fit becomes a matrix of `fit`, `lwr` and `upr` (with `se.fit = TRUE`
#'   the list's `fit`). A confidence interval is for the prediction's target: the population
#'   mean \eqn{x_0^T\beta}{x0'beta} (`re.form = NA`) or the group's mean
#'   \eqn{x_0^T\beta + z_0^T b_j}{x0'beta + z0'b_j} (`re.form = NULL`), with the variances of
#'   `se.fit`. A prediction interval is for a new observation: in the same group
#'   (`re.form = NULL`; the variance adds \eqn{\hat\sigma^2}{sigma^2}), or in a new group
#'   drawn from the population (`re.form = NA`, and a new level; the variance adds
#'   \eqn{z_0^T\hat\Sigma z_0 + \hat\sigma^2}{z0' Sigma z0 + sigma^2}, so it reads the random
#'   part's variables). The intervals are the prediction plus or minus
#'   `qnorm((1 + level) / 2)` standard deviations and condition on the variance parameters
#'   \eqn{\theta}{theta} and \eqn{\sigma}{sigma} as known, at their estimates (as the
#'   analytic intervals of lme4 and merTools do): the uncertainty of the variance estimates is
#'   not propagated, so with few groups they cover a little less than `level`.
#' @param level For `predict`: the intervals' level, a number between 0 and 1.
#' @param nsim,seed,use.u For `simulate`, as lme4's: new random effects are drawn in lme4's
#'   order, so the same seed gives lme4's simulations; `use.u = TRUE` conditions on the
#'   conditional modes instead. `nsim` and `seed` are also the replicates and seed of
#'   `confint(method = "boot")`.
#' @param sigma For `VarCorr`, as lme4's: when given, the covariances for residual SD `sigma`
#'   (\eqn{\hat\Sigma (\sigma/\hat\sigma)^2}), the residual SD `sigma` itself.
#' @param add.dropped For `fixef`, as lme4's: `TRUE` gives every column of the fixed-effects
#'   design, with `NA` for those dropped as rank deficient.
#' @param use.fallback For `nobs`: accepted for `stats::nobs()`'s callers (such as `step()`).
#' @param REML For `logLik` and `deviance`, as lme4's: `NULL` or the fit's own criterion gives
#'   the criterion the fit minimised; the other gives lme4's other criterion at the fit's
#'   estimates (the profiled ML deviance or REML criterion at its \eqn{\theta}; [REMLcrit()]
#'   is the latter for an ML fit).
#' @param fixed.only,random.only For `formula` and `model.frame`, as lme4's: the fixed part
#'   only, or (`formula`) the response and the random-effects terms. `terms` gives the fixed
#'   part's terms (lme4's default); other values are an error. For `predict`, as lme4's,
#'   `random.only = TRUE` gives the random effects' part of the prediction alone (of the terms
#'   `re.form` keeps), without the fixed effects' part or the offset; a row whose fixed-part
#'   variables are missing is `NA` there (lme4 gives its random part). No standard errors or
#'   intervals.
#' @param ... Further fits for `anova`; otherwise not used: an argument given there is an
#'   error (class `hnm_error_unused_argument`), never silently ignored.
#' @return As the corresponding lme4 methods.
#' @examples
#' fit <- hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' fixef(fit); VarCorr(fit); as.data.frame(VarCorr(fit))
#' head(ranef(fit)[[1]]); head(coef(fit)[[1]])
#' getME(fit, "theta"); isSingular(fit)
#' predict(fit, newdata = data.frame(Days = 0:2, Subject = "308"))
#' confint(fit, method = "Wald")
#' anova(hnm_fit(Reaction ~ Days + (Days || Subject), lme4::sleepstudy), fit)
#' @name hnm_fit-methods
NULL

# ngrps, isSingular, getME and REMLcrit are lme4's functions. hnm's generics of the same names
# forward lme4's fits to lme4's, and hnm's methods are also registered on lme4's generics
# when lme4 is loaded (see .onLoad), so attaching hnm before or after lme4 breaks neither.

#' @rdname hnm_fit-methods
#' @export
ngrps <- function(object, ...) UseMethod("ngrps")

#' @rdname hnm_fit-methods
#' @export
ngrps.default <- function(object, ...) lme4_method("ngrps", object)(object, ...)

#' @rdname hnm_fit-methods
#' @export
isSingular <- function(x, tol = 1e-4) UseMethod("isSingular")

#' @rdname hnm_fit-methods
#' @export
isSingular.default <- function(x, tol = 1e-4) {
  lme4_method("isSingular", x, generic = "getME")(x, tol = tol)
}

#' @rdname hnm_fit-methods
#' @export
getME <- function(object, name, ...) UseMethod("getME")

#' @rdname hnm_fit-methods
#' @export
getME.default <- function(object, name, ...) lme4_method("getME", object)(object, name, ...)

#' @rdname hnm_fit-methods
#' @export
REMLcrit.default <- function(object) lme4_method("REMLcrit", object, generic = "getME")(object)

# lme4's function `name` for `object`, when lme4 has a method of `generic` (the S3 generic
# `name` calls, or `name` itself) for its class, as for lme4's fits; any other class is an
# error, as lme4's "no applicable method" would be. Handing such an object to lme4's generic
# is no answer: S3 dispatch looks first in the caller's namespace, hnm's, finds hnm's default
# method again and recurses without end.
lme4_method <- function(name, object, generic = name) {
  require_lme4(sprintf("%s() for this class", name))
  # .class2(): the classes S3 dispatch tries, an S4 fit's (lmerMod) superclasses among them.
  has_method <- vapply(.class2(object), function(class) {
    !is.null(package_method(generic, class, "lme4", optional = TRUE))
  }, logical(1L))
  if (!any(has_method)) {
    hnm_abort(sprintf("%s() has no method for an object of class \"%s\": it takes an hnm fit %s",
                      name, class(object)[[1L]], "or an lme4 fit."), class = "hnm_error_argument")
  }
  getExportedValue("lme4", name)
}

# `package`'s S3 method of `generic` for `class`; NULL where it has none and `optional`.
package_method <- function(generic, class, package, optional = FALSE) {
  utils::getS3method(generic, class, optional = optional, envir = asNamespace(package))
}

# lme4's function `name`, or an error saying that lme4 is needed for this object.
lme4_function <- function(name) {
  require_lme4(sprintf("%s() for this class", name))
  getExportedValue("lme4", name)
}

# Stops, unless lme4 is installed, with an `hnm_error_argument` saying that `what` (what the
# user asked for, which hnm hands to lme4) needs it.
require_lme4 <- function(what, call = NULL) {
  if (!requireNamespace("lme4", quietly = TRUE)) {
    hnm_abort(sprintf("%s needs the lme4 package.", what), call = call,
              class = "hnm_error_argument")
  }
}

# lme4's `REML` of logLik() and deviance(): NULL or the fit's own criterion gives the criterion
# it minimised; the other one is lme4's devCrit() at the fit's estimates, the profiled criterion
# at its theta (the REML criterion of an ML fit is REMLcrit()'s). The ANOVA estimates of the
# one-way model have no such criterion.
fit_criterion <- function(object, REML, call) {
  if (is.null(REML) || identical(REML, object$method == "REML")) return(object$deviance)
  if (!isTRUE(REML) && !isFALSE(REML)) {
    hnm_abort("`REML` must be NULL, TRUE or FALSE.", call = call, class = "hnm_error_argument")
  }
  if (!object$method %in% c("ML", "REML")) {
    hnm_abort(sprintf("`REML = %s` is for ML and REML fits, not the %s estimates.", REML,
                      object$method), call = call, class = "hnm_error_argument")
  }
  other_criterion(object, REML, call)
}

# lme4's devCrit() of a criterion the fit did not minimise (the REML one when `reml`): the
# profiled criterion at the fit's theta, with the weights' -sum(log(w)).
other_criterion <- function(object, reml, call = NULL) {
  rust_result(rs_lmm_criterion(lmm_model(object), reml), call = call) + weights_constant(object)
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
#' @param order For `as.data.frame` of `VarCorr`, as lme4's: `"cov.last"` (its default: each
#'   term's variances, then its covariances) or `"lower.tri"` (each term's lower triangle by
#'   columns, a variance before the covariances below it).
#' @export
as.data.frame.VarCorr.hnm <- function(x, row.names = NULL, optional = FALSE,
                                      order = c("cov.last", "lower.tri"), ...) {
  check_no_dots(list(...), sys.call())
  order <- match.arg(order)
  # lme4's layout: per term its variances, then its covariances (lower triangle), then Residual;
  # or per term its lower triangle by columns.
  term_rows <- function(v, group) {
    sdcor <- attr(v, "correlation")
    diag(sdcor) <- attr(v, "stddev")
    elements <- if (order == "cov.last") {
      c(which(diag(nrow(v)) == 1), which(lower.tri(v)))
    } else {
      which(lower.tri(v, diag = TRUE))
    }
    names <- rownames(v)
    data.frame(grp = group, var1 = names[col(v)[elements]],
               var2 = ifelse(row(v)[elements] == col(v)[elements], NA_character_,
                             names[row(v)[elements]]),
               vcov = v[elements], sdcor = sdcor[elements], stringsAsFactors = FALSE)
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
  check_no_dots(list(...), sys.call(), allowed = "useS4")
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

#' @rdname hnm_fit-methods
#' @export
fixef.hnm_fit <- function(object, add.dropped = FALSE, ...) {
  check_no_dots(list(...), sys.call())
  check_flag(add.dropped, "add.dropped", sys.call())
  if (!add.dropped || length(object$dropped_fixed) == 0L) return(object$beta)
  # lme4's add.dropped: every column of X in its order, NA for those dropped as aliased.
  full <- rep(NA_real_, length(object$beta) + length(object$dropped_fixed))
  names <- character(length(full))
  full[object$kept] <- object$beta
  names[object$kept] <- names(object$beta)
  names[-object$kept] <- object$dropped_fixed
  setNames(full, names)
}

#' @rdname hnm_fit-methods
#' @export
sigma.hnm_fit <- function(object, ...) {
  check_no_dots(list(...), sys.call())
  object$sigma
}

#' @rdname hnm_fit-methods
#' @export
nobs.hnm_fit <- function(object, use.fallback = FALSE, ...) {
  check_no_dots(list(...), sys.call())
  row_count(object$n_obs)
}

#' @rdname hnm_fit-methods
#' @export
ngrps.hnm_fit <- function(object, ...) {
  check_no_dots(list(...), sys.call())
  if (has_several_factors(object)) {
    return(vapply(setNames(object$factors, vapply(object$factors, `[[`, "", "name")),
                  function(f) as.double(length(f$levels)), 0))
  }
  # A double, as lme4's ngrps() (vapply(, nlevels, 1)) and the several factors' above.
  setNames(as.double(length(object$levels)), object$group_name)
}

#' @rdname hnm_fit-methods
#' @export
vcov.hnm_fit <- function(object, full = FALSE, ...) {
  check_no_dots(list(...), sys.call())
  check_flag(full, "full", sys.call())
  if (full) return(`attr<-`(one_way_covariance(object, sys.call()), "information", NULL))
  object$vcov_beta
}

#' @rdname hnm_fit-methods
#' @export
deviance.hnm_fit <- function(object, REML = NULL, ...) {
  check_no_dots(list(...), sys.call())
  fit_criterion(object, REML, sys.call())
}

#' @rdname hnm_fit-methods
#' @export
df.residual.hnm_fit <- function(object, ...) {
  check_no_dots(list(...), sys.call())
  nobs(object) - n_parameters(object)
}

#' @rdname hnm_fit-methods
#' @export
terms.hnm_fit <- function(x, fixed.only = TRUE, random.only = FALSE, ...) {
  check_no_dots(list(...), sys.call())
  if (!isTRUE(fixed.only) || !isFALSE(random.only)) {
    hnm_abort(paste("terms() of an hnm fit are those of the fixed part (lme4's default",
                    "fixed.only = TRUE, random.only = FALSE); use formula(fit) for the rest."),
              call = sys.call(), class = "hnm_error_argument")
  }
  # lme4's: the terms of the fixed part's formula with its response, whose `predvars` (what
  # model.frame() evaluates: poly()'s and scale()'s coefficients of the fit) start with it.
  fixed <- stats::terms(stats::formula(x, fixed.only = TRUE))
  predvars <- attr(x$terms, "predvars")
  if (!is.null(predvars)) {
    attr(fixed, "predvars") <- as.call(c(as.list(predvars)[1L], x$parsed$response,
                                         as.list(predvars)[-1L]))
  }
  fixed
}

#' @rdname hnm_fit-methods
#' @param formula For `model.frame`: the fit.
#' @importFrom stats model.frame model.matrix
#' @export
model.frame.hnm_fit <- function(formula, fixed.only = FALSE, ...) {
  check_no_dots(list(...), sys.call())
  check_flag(fixed.only, "fixed.only", sys.call())
  object <- formula
  lmm_rows(object, "model.frame()")
  # lme4's frame: every variable of the formula with its bars read as `+`, complete rows.
  rhs <- if (fixed.only) object$parsed$fixed else bars_as_sums(object$formula[[3L]])
  full <- stats::as.formula(call("~", object$parsed$response, rhs),
                            env = object$parsed$env %||% globalenv())
  data <- object$data
  w <- object$rows$weights
  if (is.null(w)) {
    return(stats::model.frame(full, data = data, na.action = stats::na.omit,
                              drop.unused.levels = TRUE))
  }
  # A weighted fit's rows of weight 0 are dropped, and lme4's "(weights)" column added.
  used <- !(w %in% 0)
  frame <- stats::model.frame(full, data = as.data.frame(data)[used, , drop = FALSE],
                              na.action = stats::na.omit, drop.unused.levels = TRUE)
  omitted <- attr(frame, "na.action")
  frame[["(weights)"]] <- if (is.null(omitted)) w[used] else w[used][-omitted]
  frame
}

# A right-hand side with `(a | g)` read as `(a + g)` (lme4's subbars), and `(a || g)` first
# expanded as lme4 expands it, into `(1 | g) + (0 + a | g)`, whose variables come in that order.
bars_as_sums <- function(expr) {
  if (!is.call(expr)) return(expr)
  if (is_bar(expr)) {
    sums <- lapply(random_terms(expr), function(lhs) {
      call("+", bars_as_sums(lhs), bars_as_sums(expr[[3L]]))
    })
    return(Reduce(function(a, b) call("+", a, b), sums))
  }
  as.call(lapply(as.list(expr), bars_as_sums))
}

# Fixed effects, θ and σ: lme4's count of parameters (logLik's df).
n_parameters <- function(object) length(object$beta) + length(object$theta) + 1L

#' @rdname hnm_fit-methods
#' @export
logLik.hnm_fit <- function(object, REML = NULL, ...) {
  check_no_dots(list(...), sys.call())
  structure(-fit_criterion(object, REML, sys.call()) / 2, nobs = nobs(object),
            nall = nobs(object), df = n_parameters(object), class = "logLik")
}

#' The REML criterion of a fit
#'
#' lme4's `REMLcrit`: the REML criterion at the estimates, for REML fits the criterion
#' minimised and for ML fits the REML criterion evaluated at the ML estimates of the variance
#' parameters. For lme4's fits it calls lme4's; other classes are an error of class
#' `hnm_error_argument`.
#'
#' @param object An `hnm_fit`.
#' @return A number.
#' @examples
#' fit <- hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' REMLcrit(fit)
#' @export
REMLcrit <- function(object) UseMethod("REMLcrit")

#' @rdname hnm_fit-methods
#' @export
REMLcrit.hnm_fit <- function(object) {
  if (object$method == "REML") return(object$deviance)
  other_criterion(object, TRUE)
}

#' @rdname hnm_fit-methods
#' @export
isSingular.hnm_fit <- function(x, tol = (x$control %||% hnm_control())$singular_tolerance) {
  check_tolerance(tol)
  any(x$theta[x$lower == 0] < tol)
}

# `tol` of isSingular(): one non-negative number.
check_tolerance <- function(tol) {
  if (!is.numeric(tol) || length(tol) != 1L || is.na(tol) || tol < 0) {
    hnm_abort("`tol` must be one non-negative number.", call = sys.call(-1L))
  }
}

#' @rdname hnm_fit-methods
#' @export
VarCorr.hnm_fit <- function(x, sigma = 1, ...) {
  check_no_dots(list(...), sys.call())
  scale <- if (missing(sigma)) 1 else varcorr_scale(sigma, x$sigma, sys.call())
  blocks <- block_ranges(x)
  # lme4's names (mkVarCorr()): the groups as they are, or make.names() of them all, unique,
  # where a factor has several terms ("school:class", "school", "school" -> "school.class",
  # "school", "school.1").
  names <- term_groups(x)
  if (anyDuplicated(names)) names <- make.names(names, unique = TRUE)
  terms <- lapply(blocks, function(i) {
    v <- x$re_covariance[i, i, drop = FALSE] * scale^2
    sd <- sqrt(diag(v))
    correlation <- v / outer(sd, sd)
    correlation[!is.finite(correlation)] <- 0
    diag(correlation) <- 1
    structure(v, stddev = sd, correlation = correlation)
  })
  structure(setNames(terms, names), sc = x$sigma * scale, useSc = TRUE, class = "VarCorr.hnm")
}

# The rows and columns of each random-effects term (Λ block) in Σ.
block_ranges <- function(x) {
  ends <- cumsum(lengths(x$random_names))
  Map(function(from, to) from:to, ends - lengths(x$random_names) + 1L, ends)
}

#' @rdname hnm_fit-methods
#' @export
getME.hnm_fit <- function(object, name, ...) {
  check_no_dots(list(...), sys.call())
  # Several names: a list of each, as lme4's.
  # A number would pick a case of switch() by position, an NA the fallback's message.
  if (!is.character(name) || length(name) == 0L || anyNA(name)) {
    hnm_abort("`name` of getME() must be a character vector of names, as \"theta\".",
              class = "hnm_error_argument")
  }
  if (length(name) > 1L) return(setNames(lapply(name, function(one) getME(object, one)), name))
  if (identical(name, "ALL")) return(getME(object, getme_names))
  switch(name,
    theta = object$theta,
    lower = setNames(object$lower, names(object$theta)),
    beta = unname(object$beta),
    fixef = object$beta,
    sigma = object$sigma,
    Lambda = random_lambda(object),
    Lambdat = Matrix::t(random_lambda(object)),
    Zt = random_design_transposed(object),
    Z = Matrix::t(random_design_transposed(object)),
    b = random_modes(object),
    u = spherical_modes(object),
    A = Matrix::t(random_lambda(object)) %*% random_design_transposed(object),
    Ztlist = random_design_list(object),
    mmList = random_model_matrices(object),
    Gp = random_term_starts(object),
    Tp = setNames(c(0, cumsum(term_sizes(object)$theta)), c("beg__", term_groups(object))),
    Tlist = theta_templates(object),
    ST = lapply(theta_templates(object), scaled_template),
    Lind = lambda_index(object),
    RX = fixed_factor(object),
    devfun = as.function(object),
    cnms = setNames(object$random_names, term_groups(object)),
    flist = factor_list(object),
    n_rtrms = ,
    k = length(object$random_names),
    n_rfacs = length(ngrps(object)),
    p_i = term_sizes(object)$columns,
    l_i = level_counts(object),
    q_i = term_sizes(object)$columns * level_counts(object)[term_groups(object)],
    m_i = term_sizes(object)$theta,
    m = length(object$theta),
    p = length(object$beta),
    q = random_effects_count(object),
    n = nobs(object),
    N = nobs(object),
    mu = lmm_fitted(object),
    offset = used_offset(object),
    devcomp = deviance_components(object),
    REML = reml_dimension(object),
    is_REML = object$method == "REML",
    X = model.matrix(object),
    y = lmm_response(object),
    hnm_abort(sprintf("getME(, \"%s\") is not available for hnm fits; available: %s, devfun, ALL.",
                      name, paste(getme_names, collapse = ", ")),
              class = "hnm_error_argument"))
}

# The names getME() knows for an hnm fit: lme4's, except its CHOLMOD factor "L", "RZX" (which
# depends on that factor's fill-reducing permutation) and glmer's "glmer.nb.theta". "ALL" leaves
# out "devfun", as it is not data.
getme_names <- c("X", "Z", "Zt", "Ztlist", "mmList", "y", "mu", "u", "b", "Gp", "Tp", "Lambda",
                 "Lambdat", "Lind", "Tlist", "A", "RX", "sigma", "flist", "fixef", "beta",
                 "theta", "ST", "REML", "is_REML", "n_rtrms", "n_rfacs", "N", "n", "p", "q",
                 "p_i", "l_i", "q_i", "k", "m_i", "m", "cnms", "devcomp", "offset", "lower")


# lme4's getME(, "l_i"): each grouping factor's number of levels (integers, where ngrps() gives
# doubles as lme4's).
level_counts <- function(object) {
  counts <- ngrps(object)
  setNames(as.integer(counts), names(counts))
}

# lme4's devcomp$dims["REML"] (and getME(, "REML")): the number of fixed-effects columns p of a
# REML fit (its criterion's n - p), 0 otherwise.
reml_dimension <- function(object) {
  if (identical(object$method, "REML")) length(object$beta) else 0L
}

# The relative covariance factor of the random effects in lme4's layout: Λ of one group,
# block diagonal over the terms (lme4's getME("Lambda") repeats it for every group).
relative_factor <- function(object) {
  q <- length(unlist(object$random_names))
  lambda <- matrix(0, q, q)
  index <- 0L
  for (block in block_ranges(object)) {
    for (c in seq_along(block)) for (r in c:length(block)) {
      index <- index + 1L
      lambda[block[r], block[c]] <- object$theta[[index]]
    }
  }
  dimnames(lambda) <- list(unlist(object$random_names), unlist(object$random_names))
  lambda
}

# The response of the rows used, as observed: the model's first variable is the response minus
# the offset, which is added back (lme4's getME(, "y"); residuals are y - fitted).
lmm_response <- function(object) {
  rows <- lmm_rows(object, "the response")
  ok <- complete_lmm_rows(object, rows)
  values <- rows$variables[[1L]][ok]
  if (is.null(rows$offset)) values else values + rows$offset[ok]
}

# The offset of the rows used (lme4's getME(, "offset")): zeros for a fit without one.
used_offset <- function(object) {
  rows <- lmm_rows(object, "getME(, \"offset\")")
  ok <- complete_lmm_rows(object, rows)
  if (is.null(rows$offset)) numeric(sum(ok)) else rows$offset[ok]
}

# Rows with every variable and the group present.
complete_lmm_rows <- function(object, rows) {
  ok <- !is.na(rows$codes)
  for (v in rows$variables) ok <- ok & if (is.matrix(v)) stats::complete.cases(v) else !is.na(v)
  ok
}

# Fitted values of the fit's rows: with the conditional modes, the population values, or with
# `modes` (groups × q by rows) in place of the conditional modes.
lmm_fitted <- function(object, population = FALSE, modes = NULL) {
  rows <- lmm_rows(object, "fitted values")
  ok <- complete_lmm_rows(object, rows)
  if (is_one_way(object)) return(one_way_fitted(object, row_codes(rows)[ok], population, modes))
  if (has_several_factors(object)) return(several_fitted(object, rows, ok, population))
  values <- rust_result(rs_lmm_fitted(lmm_model(object), rows$variables, rows$codes,
                                      rows$code_offset, !population, modes))
  offset <- rows$offset
  values[ok] + if (is.null(offset)) 0 else offset[ok]
}

#' @rdname hnm_fit-methods
#' @export
fitted.hnm_fit <- function(object, ...) {
  check_no_dots(list(...), sys.call())
  pad_excluded(object, lmm_fitted(object))
}

#' @rdname hnm_fit-methods
#' @export
residuals.hnm_fit <- function(object, type = c("response", "pearson", "working", "deviance"),
                              scaled = FALSE, ...) {
  check_no_dots(list(...), sys.call())
  type <- match.arg(type)
  r <- lmm_response(object) - lmm_fitted(object)
  # lme4's: pearson and deviance residuals are sqrt(w_i) (y_i - fitted_i) (R/weights.R).
  if (type %in% c("pearson", "deviance") && !is.null(object$rows$weights)) {
    r <- r * sqrt(used_weights(object))
  }
  pad_excluded(object, if (isTRUE(scaled)) r / object$sigma else r)
}

#' @rdname hnm_fit-methods
#' @export
model.matrix.hnm_fit <- function(object, type = c("fixed", "random"), ...) {
  check_no_dots(list(...), sys.call())
  type <- match.arg(type)
  # lme4's: its getME(, "Z"), sparse, built for this call only.
  if (type == "random") return(getME(object, "Z"))
  rows <- lmm_rows(object, "model.matrix()")
  ok <- complete_lmm_rows(object, rows)
  x <- new_fixed_matrix(object, lapply(flat_variables(rows$variables), `[`, ok))
  attr(x, "assign") <- object$fixed_assign
  attr(x, "contrasts") <- object$contrasts
  x
}

# The variables as single columns (a matrix contributes each column).
flat_variables <- function(variables) {
  as.list(unlist(lapply(variables, function(v) {
    if (is.matrix(v)) lapply(seq_len(ncol(v)), function(j) v[, j]) else list(v)
  }), recursive = FALSE))
}

# lme4's flist: a list of the grouping factors, named as ngrps(), each with the level of every
# row the fit used, and each random-effects term's factor as `assign`.
factor_list <- function(object) {
  rows <- lmm_rows(object, "getME(, \"flist\")")
  ok <- complete_lmm_rows(object, rows)
  factors <- Map(function(codes, group) structure(codes, levels = group$levels, class = "factor"),
                 row_levels(object, rows, ok), grouping_terms(object))
  structure(factors, names = names(ngrps(object)),
            assign = match(term_groups(object), names(ngrps(object))))
}

# The number of random effects, Σ_f m_f q_f (lme4's q).
random_effects_count <- function(object) {
  groups <- ngrps(object)
  sum(groups[term_groups(object)] * lengths(object$random_names))
}
