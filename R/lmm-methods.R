# Methods of fits with covariates or random slopes (class c("hnm_lmm", "hnm_fit")), named and
# shaped as lme4's for merMod. The estimates are fields of the fit; what follows from them
# (random effects, fitted values) is computed once by the Rust model the fit keeps.

#' Methods for fits with covariates and random slopes
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
#' conditional covariances), `coef`, `fitted`, `residuals`, `predict`, `simulate`, `update`,
#' `formula`, `terms`, `model.matrix` (the fixed-effects design), `isSingular`, `getME`,
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
#' @param object,x A fit from [hnm_fit()] with covariates or random slopes.
#' @param condVar For `ranef`: attach the conditional covariances (attribute `"postVar"`).
#' @param drop,whichel For `ranef`, as lme4's: `drop = TRUE` is not supported, and `whichel`
#'   may only name the one grouping factor.
#' @param tol For `isSingular`: a diagonal element of lme4's \eqn{\Lambda}{Lambda} below
#'   `tol` makes the fit singular (hnm's boundary fits have exact zeros).
#' @param name For `getME`: one of `"theta"`, `"lower"`, `"beta"`, `"fixef"`, `"sigma"`,
#'   `"Lambda"` (the q x q relative covariance factor of one group), `"cnms"`, `"flist"`,
#'   `"n_rtrms"`, `"p"`, `"q"`, `"n"`, `"devcomp"`, `"REML"`, `"X"`, `"y"`.
#' @param type For `residuals`: `"response"` or `"pearson"` (equal here); for `predict`:
#'   `"link"` or `"response"` (equal for a linear model); for `model.matrix`: `"fixed"`
#'   (hnm never forms Z); for `anova` of one fit, lmerTest's: `"III"` (the default), `"II"`
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
#'   `re.form`.
#' @param allow.new.levels For `predict`: predict new (or `NA`) levels of the grouping factor
#'   at the population level instead of stopping.
#' @param se.fit For `predict`: standard errors of population predictions from `vcov`.
#' @param nsim,seed,use.u For `simulate`, as lme4's: new random effects are drawn in lme4's
#'   order, so the same seed gives lme4's simulations; `use.u = TRUE` conditions on the
#'   conditional modes instead. `nsim` and `seed` are also the replicates and seed of
#'   `confint(method = "boot")`.
#' @param parm,level,method,oldNames For `confint`: parameters (names or indices; for
#'   `"profile"` also lme4's `"theta_"` and `"beta_"`, and, as lme4's, only these are
#'   profiled, rows in lme4's order), the
#'   confidence level, the method (`"profile"`, the default as in lme4: profile-likelihood
#'   limits of the parameters, found exactly as the roots of \eqn{\zeta = \pm z} (see
#'   [profile.hnm_lmm()], which also says what a REML fit's profile is); `"Wald"`, for the
#'   fixed effects; or `"boot"`, the parametric bootstrap of [bootstrap()] for every
#'   parameter) and lme4's row names (`.sig01`, ..., `.sigma`, or with `oldNames = FALSE`
#'   `sd_x|g`, `cor_x.y|g`, `sigma`). An SD interval that reaches 0 starts at 0, a
#'   correlation interval that reaches -1 or 1 ends there.
#' @param sigma For `VarCorr`, as lme4's: when given, the covariances for residual SD `sigma`
#'   (\eqn{\hat\Sigma (\sigma/\hat\sigma)^2}), the residual SD `sigma` itself.
#' @param add.dropped For `fixef`, as lme4's: `TRUE` gives every column of the fixed-effects
#'   design, with `NA` for those dropped as rank deficient.
#' @param use.fallback For `nobs`: accepted for `stats::nobs()`'s callers (such as `step()`).
#' @param REML For `logLik` and `deviance`, as lme4's: `NULL` or the fit's own criterion; the
#'   other criterion at the fit's estimates is an error ([REMLcrit()] gives the REML criterion
#'   of an ML fit).
#' @param fixed.only,random.only For `formula` and `model.frame`, as lme4's: the fixed part
#'   only, or (`formula`) the response and the random-effects terms. `terms` gives the fixed
#'   part's terms (lme4's default); other values are an error.
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
#' @name hnm_lmm-methods
NULL

#' @rdname hnm_lmm-methods
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

#' @rdname hnm_lmm-methods
#' @export
sigma.hnm_fit <- function(object, ...) {
  check_no_dots(list(...), sys.call())
  object$sigma
}

#' @rdname hnm_lmm-methods
#' @export
nobs.hnm_fit <- function(object, use.fallback = FALSE, ...) {
  check_no_dots(list(...), sys.call())
  row_count(object$n_obs)
}

#' @rdname hnm_lmm-methods
#' @export
ngrps.hnm_fit <- function(object, ...) {
  check_no_dots(list(...), sys.call())
  setNames(length(object$levels), object$group_name)
}

#' @rdname hnm_lmm-methods
#' @export
vcov.hnm_fit <- function(object, full = FALSE, ...) {
  check_no_dots(list(...), sys.call())
  check_flag(full, "full", sys.call())
  if (full) return(unclass_information(one_way_covariance(object, sys.call())))
  object$vcov_beta
}

unclass_information <- function(m) `attr<-`(m, "information", NULL)

#' @rdname hnm_lmm-methods
#' @export
deviance.hnm_fit <- function(object, REML = NULL, ...) {
  check_no_dots(list(...), sys.call())
  check_criterion(object, REML, "deviance", sys.call())
  object$deviance
}

#' @rdname hnm_lmm-methods
#' @export
df.residual.hnm_fit <- function(object, ...) {
  check_no_dots(list(...), sys.call())
  nobs(object) - n_parameters(object)
}

#' @rdname hnm_lmm-methods
#' @export
terms.hnm_fit <- function(x, fixed.only = TRUE, random.only = FALSE, ...) {
  check_no_dots(list(...), sys.call())
  if (!isTRUE(fixed.only) || !isFALSE(random.only)) {
    hnm_abort(paste("terms() of an hnm fit are those of the fixed part (lme4's default",
                    "fixed.only = TRUE, random.only = FALSE); use formula(fit) for the rest."),
              call = sys.call(), class = "hnm_error_argument")
  }
  x$terms
}

#' @rdname hnm_lmm-methods
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
  stats::model.frame(full, data = object$data, na.action = stats::na.omit,
                     drop.unused.levels = TRUE)
}

# A right-hand side with `(a | g)` and `(a || g)` read as `(a + g)` (lme4's subbars).
bars_as_sums <- function(expr) {
  if (!is.call(expr)) return(expr)
  if (is_bar(expr)) return(call("+", bars_as_sums(expr[[2L]]), bars_as_sums(expr[[3L]])))
  as.call(lapply(as.list(expr), bars_as_sums))
}

# Fixed effects, θ and σ: lme4's count of parameters (logLik's df).
n_parameters <- function(object) length(object$beta) + length(object$theta) + 1L

#' @rdname hnm_lmm-methods
#' @export
logLik.hnm_fit <- function(object, REML = NULL, ...) {
  check_no_dots(list(...), sys.call())
  check_criterion(object, REML, "logLik", sys.call())
  structure(-object$deviance / 2, nobs = nobs(object), nall = nobs(object),
            df = n_parameters(object), class = "logLik")
}

#' The REML criterion of a fit
#'
#' lme4's `REMLcrit`: the REML criterion at the estimates, for REML fits the criterion
#' minimised and for ML fits the REML criterion evaluated at the ML estimates of the variance
#' parameters. For other classes it calls lme4's.
#'
#' @param object An `hnm_fit`.
#' @return A number.
#' @examples
#' fit <- hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' REMLcrit(fit)
#' @export
REMLcrit <- function(object) UseMethod("REMLcrit")

#' @rdname hnm_lmm-methods
#' @export
REMLcrit.hnm_fit <- function(object) {
  if (object$method == "REML") return(object$deviance)
  rust_result(rs_lmm_criterion(lmm_model(object), TRUE))
}

#' @rdname hnm_lmm-methods
#' @export
isSingular.hnm_fit <- function(x, tol = 1e-4) {
  check_tolerance(tol)
  any(x$theta[x$lower == 0] < tol)
}

# `tol` of isSingular(): one non-negative number.
check_tolerance <- function(tol) {
  if (!is.numeric(tol) || length(tol) != 1L || is.na(tol) || tol < 0) {
    hnm_abort("`tol` must be one non-negative number.", call = sys.call(-1L))
  }
}

#' @rdname hnm_lmm-methods
#' @export
VarCorr.hnm_fit <- function(x, sigma = 1, ...) {
  check_no_dots(list(...), sys.call())
  scale <- if (missing(sigma)) 1 else varcorr_scale(sigma, x$sigma, sys.call())
  blocks <- block_ranges(x)
  group <- x$group_name
  names <- c(group, if (length(blocks) > 1L) paste(group, seq_len(length(blocks) - 1L), sep = "."))
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

#' @rdname hnm_lmm-methods
#' @export
getME.hnm_fit <- function(object, name, ...) {
  check_no_dots(list(...), sys.call())
  switch(name,
    theta = object$theta,
    lower = setNames(object$lower, names(object$theta)),
    beta = unname(object$beta),
    fixef = object$beta,
    sigma = object$sigma,
    Lambda = relative_factor(object),
    cnms = setNames(object$random_names, rep(object$group_name, length(object$random_names))),
    flist = structure(list(factor(object$levels, levels = object$levels)),
                      names = object$group_name, assign = 1L),
    n_rtrms = length(object$random_names),
    p = length(object$beta),
    q = length(object$levels) * length(unlist(object$random_names)),
    n = nobs(object),
    devcomp = list(dims = c(n = nobs(object), p = length(object$beta),
                            q = length(object$levels) * length(unlist(object$random_names)),
                            REML = as.integer(object$method == "REML"))),
    REML = as.integer(object$method == "REML"),
    X = model.matrix(object),
    y = lmm_response(object),
    hnm_abort(sprintf(paste("getME(, \"%s\") is not available for hnm fits; available: theta,",
                            "lower, beta, fixef, sigma, Lambda, cnms, flist, n_rtrms, p, q, n,",
                            "devcomp, REML, X, y."), name), class = "hnm_error_argument"))
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

#' @rdname hnm_lmm-methods
#' @export
ranef.hnm_fit <- function(object, condVar = TRUE, drop = FALSE, whichel = NULL, ...) {
  check_ranef_arguments(object, drop, whichel, list(...))
  re <- if (object$method == "ANOVA") one_way_modes(object) else
    rust_result(rs_lmm_ranef(lmm_model(object)))
  names <- unlist(object$random_names)
  q <- length(names)
  m <- length(object$levels)
  modes <- matrix(re$modes, m, q, byrow = TRUE, dimnames = list(object$levels, names))
  effects <- as.data.frame(modes, optional = TRUE)
  names(effects) <- names
  if (isTRUE(condVar)) {
    covariances <- array(re$conditional_covariances, c(q, q, m))
    blocks <- block_ranges(object)
    attr(effects, "postVar") <- if (length(blocks) == 1L) covariances else
      setNames(lapply(blocks, function(i) covariances[i, i, , drop = FALSE]),
               vapply(object$random_names, `[`, "", 1L))
  }
  structure(setNames(list(effects), object$group_name), class = "ranef.hnm")
}

#' @rdname hnm_lmm-methods
#' @export
coef.hnm_fit <- function(object, ...) {
  check_no_dots(list(...), sys.call())
  effects <- ranef(object, condVar = FALSE)[[1L]]
  beta <- fixef(object)
  out <- as.data.frame(matrix(beta, nrow(effects), length(beta), byrow = TRUE,
                              dimnames = list(rownames(effects), names(beta))), optional = TRUE)
  for (name in names(effects)) {
    out[[name]] <- (if (name %in% names(beta)) out[[name]] else 0) + effects[[name]]
  }
  structure(setNames(list(out), object$group_name), class = "coef.mer")
}

# The response of the rows used (minus the offset, as the model saw it).
lmm_response <- function(object) {
  rows <- lmm_rows(object, "the response")
  values <- rows$variables[[1L]]
  values[complete_lmm_rows(object, rows)]
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
  if (object$method == "ANOVA") return(one_way_fitted(object, rows$codes[ok], population, modes))
  values <- rust_result(rs_lmm_fitted(lmm_model(object), rows$variables, rows$codes,
                                      !population, modes))
  offset <- rows$offset
  values[ok] + if (is.null(offset)) 0 else offset[ok]
}

#' @rdname hnm_lmm-methods
#' @export
fitted.hnm_fit <- function(object, ...) {
  check_no_dots(list(...), sys.call())
  lmm_fitted(object)
}

#' @rdname hnm_lmm-methods
#' @export
residuals.hnm_fit <- function(object, type = c("response", "pearson"), scaled = FALSE, ...) {
  check_no_dots(list(...), sys.call())
  match.arg(type)
  r <- lmm_response(object) - lmm_fitted(object)
  if (isTRUE(scaled)) r / object$sigma else r
}

#' @rdname hnm_lmm-methods
#' @export
model.matrix.hnm_fit <- function(object, type = c("fixed", "random"), ...) {
  check_no_dots(list(...), sys.call())
  type <- match.arg(type)
  if (type == "random") {
    hnm_abort(paste("hnm never forms the random-effects model matrix Z (N x groups q); use",
                    "ranef() and predict() for what it gives."), class = "hnm_error_argument")
  }
  rows <- lmm_rows(object, "model.matrix()")
  ok <- complete_lmm_rows(object, rows)
  columns <- object$spec$fixed[object$kept]
  flat <- flat_variables(rows$variables)
  x <- vapply(columns, function(j) if (j == 0L) rep(1, sum(ok)) else as.double(flat[[j]][ok]),
              numeric(sum(ok)))
  x <- matrix(x, sum(ok), length(columns), dimnames = list(NULL, object$fixed_names))
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
