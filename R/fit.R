#' Fit a linear mixed model
#'
#' Fits lme4's linear mixed models, with one grouping factor,
#' \eqn{y_j = X_j\beta + Z_j b_j + \epsilon_j}{y_j = X_j beta + Z_j b_j + e_j},
#' \eqn{b_j \sim N(0, \Sigma)}{b_j ~ N(0, Sigma)}, \eqn{\epsilon_j \sim N(0, \sigma^2 I)}{e_j ~ N(0, sigma^2 I)},
#' by maximum likelihood (the default, as `lme4::lmer(REML = FALSE)`) or REML; the one-way
#' model \eqn{y_{ij} = \mu + a_j + \epsilon_{ij}}, \eqn{a_j \sim N(0, \tau^2)}, is its simplest
#' case (`y ~ 1 | g`), which can also be fitted by the ANOVA method of moments. `hnm_fit()`
#' runs lme4's pipeline: the formula is parsed once, the model's columns are read in place,
#' one pass over the rows in Rust reduces them to per-group statistics, the model built from
#' them is optimised (the profiled criterion over \eqn{\theta} with its analytic gradient; the
#' one-way model's \eqn{\theta} is the root of its profiled score, found to machine precision),
#' the result is checked, and the fit object returned. Every evaluation after the pass costs
#' O(groups), not O(N), and a variance is estimated as exactly 0 when that is the optimum.
#'
#' The ANOVA estimator is \eqn{\hat\mu = \bar y} (the grand mean of all observations),
#' \eqn{\hat\sigma^2 = MSE} and \eqn{\hat\tau^2 = (MSG - MSE)/n_0} with
#' \eqn{n_0 = (N - \sum_j n_j^2/N)/(m - 1)}, which is the common group size \eqn{n} for
#' balanced data. When \eqn{MSG < MSE} the untruncated \eqn{\hat\tau^2} is negative: it is
#' truncated at 0 with a warning of class `hnm_warning`. For an ANOVA fit, `logLik`,
#' `deviance`, `AIC` and `BIC` are the (ML) likelihood evaluated at the moment estimates;
#' `vcov` is the exact sampling variance of \eqn{\bar y},
#' \eqn{(\hat\sigma^2 N + \hat\tau^2\sum_j n_j^2)/N^2}, and `vcov(fit, full = TRUE)` the
#' sampling covariance of \eqn{(\bar y, MSE, (MSG - MSE)/n_0)} under normality, evaluated at
#' the estimates (so `confint` gives Wald intervals from it). The mean squares, \eqn{n_0} and
#' the untruncated \eqn{\hat\tau^2} are kept in `fit$anova`.
#'
#' @param formula lme4's formula: `y ~ x1 + x2 + (1 + x1 | g)`,
#'   `(x1 | g)`, `(0 + x1 | g)`, `(x1 || g)` (uncorrelated), `(1 | g) + (0 + x1 | g)`,
#'   `(1 | a:b)` (the interaction of factors of `a` and `b` as one factor, with the
#'   combinations that occur, as lme4), and several grouping factors, crossed
#'   (`(1 | a) + (x | b)`) or nested (`(1 | a/b)`, lme4's `(1 | b:a) + (1 | a)`; also
#'   `a/b/c`), ordered as lme4 orders them (by decreasing number of levels; see
#'   `R/factors.R` for what is available for them yet); the fixed part has R's formula semantics
#'   (factors with contrasts, interactions, `I()`, `log()`, `poly()`, `offset()`, and `.`
#'   for the columns of `data` other than the response and the grouping variables; lme4's
#'   `.` also takes the grouping variables into the fixed part). The one-way model is
#'   `y ~ 1 | g` or `y ~ 1 + (1 | g)`. A grouping expression that is not a factor
#'   (`(1 | g + h)`) and `.` in a random-effects term are errors. Rows with `NA` or `NaN` in
#'   the grouping variable are dropped; a factor with `NA` as a level (`addNA()`) or a
#'   repeated level is an error.
#' @param data A data frame holding the variables; when missing, they are taken from the
#'   environment of `formula`. Also a table of group statistics or a database table: see
#'   `stats`. With several grouping factors such a table has one row per cell (a combination
#'   of the grouping columns' values, see [hnm_stats()]); the grouping variables of the
#'   formula must then be columns (`a`, `a/b`, `a:b`), not expressions.
#' @param REML Logical: `TRUE` for REML (lme4's shorthand, as `lmer`'s default), `FALSE` (the
#'   default here) for `method`.
#' @param method The estimator: `"ML"` (default), `"REML"` or `"ANOVA"` (method of moments).
#'   `REML = TRUE` is the same as `method = "REML"`; giving both with different meanings is
#'   an error.
#' @param stats `NULL` (the default) when `data` holds rows, an [hnm_stats()] table or a
#'   database table (`dplyr::tbl(con, "name")`, see "Data bigger than memory" below).
#'   To fit from a data frame of group statistics, `TRUE` when its columns are named
#'   `group`, `n`, `mean` and `ss` (the within-group sum of squares), or a named character
#'   vector giving other names, such as `c(group = "school", n = "size", mean = "ybar")`.
#' @param subset,na.action,offset,contrasts As for `lme4::lmer()`, for data frames of rows:
#'   `subset` an expression evaluated in `data` choosing the rows, as `data[subset, ]`: a
#'   logical with one value per row or one for all (an NA is a row with missing values, as in
#'   `lm()`: dropped, kept as NA by `na.exclude`, or an error with `na.fail`), or whole row
#'   numbers, all positive or all negative (rows left out); a row number that is not whole,
#'   0, NA or beyond the rows is an error, where `lm()` would truncate or ignore it or make a
#'   row of NAs;
#'   `na.action` `na.omit` (the default: rows with a missing value are dropped), `na.exclude`
#'   (dropped too, but `fitted()`, `residuals()`, `predict()` and `simulate()` give NA at
#'   those rows, one value per row of `data`, or of `data[subset, ]`) or `na.fail` (a
#'   missing value is an error); `offset` an
#'   expression evaluated in `data`, one value per row, added to the formula's `offset()`
#'   terms (predictions for `newdata` use the formula's terms only, as lme4's); `contrasts` a
#'   list of contrasts for the fixed effects' factors, as `model.matrix()` takes it (kept for
#'   predictions).
#' @param weights As for `lme4::lmer()`: prior weights, an expression evaluated in `data` giving
#'   one number per row, \eqn{\mathrm{Var}(\epsilon_i) = \sigma^2 / w_i}{Var(e_i) = sigma^2 / w_i}.
#'   The model is fitted from the rows scaled by \eqn{\sqrt{w_i}}{sqrt(w_i)} (the weighted
#'   cross-products \eqn{X^\top W X}{X'WX}, \eqn{Z^\top W y}{Z'Wy}, ... in the one pass), so the
#'   estimates, `vcov`, Satterthwaite and Kenward-Roger degrees of freedom and profiles are the
#'   weighted model's; `deviance`, `logLik` and `REMLcrit` include
#'   \eqn{-\sum_i \log w_i}{-sum(log(w_i))} as lme4's. `fitted()` and `predict()` are
#'   \eqn{X\hat\beta + Z\hat b}{X beta + Z b} as without weights; `residuals()` are
#'   \eqn{y - \hat y}{y - fitted} (`type = "response"` or `"working"`) or
#'   \eqn{\sqrt{w_i}(y_i - \hat y_i)}{sqrt(w_i) (y_i - fitted_i)} (`"pearson"`, `"deviance"`, and
#'   the scaled residuals of `summary()`); `weights(fit)` gives the weights of the rows used.
#'   A negative, infinite or `NaN` weight is an error naming its row, as is an `NA` weight in a
#'   row the fit would use. A row of weight 0 is dropped from the fit as a row with a missing
#'   value is (not counted in `nobs()`, not in `fitted()` or `residuals()`, `NA` there with
#'   `na.exclude`), which gives the estimates of `lm()` and of `lmer()` without those rows;
#'   lme4 (1.1-31) keeps them, and its criterion is then infinite at every \eqn{\theta}.
#'   Available with one or several grouping factors; not with the ANOVA estimator, fits from
#'   statistics or database tables, `bootstrap()`, `bootstrap_lrt()` or prediction intervals
#'   (errors of class `hnm_error_unsupported` or `hnm_error_argument`); `simulate()` draws
#'   \eqn{\epsilon_i \sim N(0, \sigma^2 / w_i)}{e_i ~ N(0, sigma^2 / w_i)} (lme4's ignores
#'   the weights). Unlike unweighted fits, the scaled rows are not centred about the
#'   response's mean: centre a response whose mean is more than about \eqn{10^5} times its
#'   spread before fitting (at \eqn{10^6} the search stops short, with a warning).
#' @param start lme4's \eqn{\theta} to start the search from (a vector, or `list(theta = )`),
#'   as `getME(fit, "theta")` gives it; by default a moment estimate (and lme4's start when
#'   the search ends singular).
#' @param control [hnm_control()]'s settings of the search (or an `lme4::lmerControl()` whose
#'   settings mean something here; see there).
#' @param verbose `TRUE` prints a line per iteration of the search: its criterion and
#'   projected gradient.
#' @param ... Not used; an error if given, so misspelt arguments do not pass silently.
#' @section Data bigger than memory:
#' The one-way model needs only each group's size, mean and within-group sum of squares;
#' the general model each group's size, the means of its variables and their within-group
#' co-moments (see [hnm_stats()]). When `data` is a `dbplyr` table of a DBI connection,
#' these are computed inside the database by one `GROUP BY` query (deviations are taken from
#' each group's average before they are multiplied, so a large offset does not cancel), and
#' only one row per group is collected into R. With several grouping factors the query groups
#' by all the grouping columns and collects one row per cell: the innermost groups of a nested
#' model (`(1 | school/class)`: the classes), the observed combinations of levels of crossed
#' ones (`(1 | subject) + (1 | item)`); each factor's levels are read from the cells. Tested
#' on SQLite and PostgreSQL, and on Spark SQL by running the query's rendered text on a local
#' Spark. Fits without rows support every method that needs only the statistics; `fitted()`
#' and `residuals()` raise an error of class `hnm_error_no_rows`.
#' @section Memory of the general model:
#' The general model's statistics take \eqn{8 m (1 + k + k(k + 1)/2)} bytes for \eqn{m}
#' groups (levels of the grouping factor) and \eqn{k} model columns (the response and each
#' distinct column of the fixed and random parts, the intercept excepted; a factor gives one
#' per contrast), so a factor covariate with many levels makes them far larger than the
#' data: `y ~ x + f + (1 | g)` with a 300-level `f` has \eqn{k = 301}, and 3,000 groups take
#' 1.1 GB. Before anything is allocated, `hnm_fit()` stops
#' with an error of class `hnm_error_too_large`, saying how large they would be and why,
#' when they would take more than 1 GiB and more than 10 times the model's columns
#' (\eqn{8 N k} bytes for \eqn{N} rows): such a model is better fitted by `lme4::lmer()`,
#' whose sparse matrices do not grow with \eqn{k^2}. An error rather than a warning, as a fit
#' that allocates them would take the memory of the R session for a model lme4 fits in a
#' fraction of it. Statistics within these bounds, or any other result, that do not fit in
#' the memory available also stop with an `hnm_error_too_large` naming what did not fit and
#' how many bytes it needed, never with an abort of R.
#' @return An object of class `hnm_fit`, with the methods an lme4 user expects:
#'   `print`, `summary`, `logLik`, `AIC`/`BIC`, `nobs`, `ngrps`, `fixef`, `ranef`, `coef`,
#'   `VarCorr`, `sigma`, `deviance`, `vcov`, `confint`, `isSingular`, `formula`, `fitted`,
#'   `residuals`, `predict`, `simulate`, `update`, [refit()], `plot`, `as.function` (the
#'   criterion as a function of \eqn{\theta}: [hnm_devfun()]), and broom's `tidy`, `glance`,
#'   `augment`. Rows with `NA` in the response or the group are dropped (see `nobs`), as
#'   lme4 does. Unlike lme4, which drops `NaN` as missing, a `NaN` or infinite response is
#'   an error naming its row: it usually means a computation upstream went wrong. A fit from
#'   data rows keeps the columns it read (by reference) and, with one grouping factor, its
#'   per-group statistics, from which its model is rebuilt after `readRDS()`; with several
#'   grouping factors, whose per-cell statistics can be as large as the data, the columns
#'   alone: its model is then rebuilt by one pass over them (an error of class
#'   `hnm_error_data_changed` if they were modified in place after the fit).
#' @examples
#' set.seed(1)
#' d <- data.frame(g = rep(letters[1:8], each = 5))
#' d$y <- 10 + rnorm(8)[as.integer(factor(d$g))] + rnorm(40)
#' fit <- hnm_fit(y ~ 1 | g, d)
#' fit
#' summary(fit)
#' confint(fit)
#' hnm_fit(y ~ 1 | g, d, REML = TRUE)
#' hnm_fit(y ~ 1 | g, d, method = "ANOVA")
#' # From group statistics, as a table or computed by a database:
#' hnm_fit(y ~ 1 | g, data = hnm_stats(y ~ 1 | g, d))
#' if (requireNamespace("RSQLite", quietly = TRUE) && requireNamespace("dbplyr", quietly = TRUE)) {
#'   con <- DBI::dbConnect(RSQLite::SQLite(), ":memory:")
#'   DBI::dbWriteTable(con, "d", d)
#'   print(hnm_fit(y ~ 1 | g, data = dplyr::tbl(con, "d")))
#'   DBI::dbDisconnect(con)
#' }
#' @export
hnm_fit <- function(formula, data, REML = FALSE, method = c("ML", "REML", "ANOVA"),
                    stats = NULL, subset, weights, na.action, offset, contrasts = NULL,
                    start = NULL, control = hnm_control(), verbose = FALSE, ...) {
  call <- match.call()
  check_no_dots(match.call(expand.dots = FALSE)$..., call)
  method <- fit_method(REML, method, missing(method), call)
  control <- fit_control(control, call)
  check_flag(verbose, "verbose", call)
  row_arguments <- c("subset", "weights", "na.action", "offset", "contrasts")[
    c(!missing(subset), !missing(weights) && !is.null(substitute(weights)), !missing(na.action),
      !missing(offset), !is.null(contrasts))]
  if (takes_statistics(data, stats)) {
    refuse_row_arguments(row_arguments, call)
    return(statistics_fit(formula, data, stats, method, call, start = start, control = control,
                          verbose = verbose))
  }
  model <- row_model(formula, if (!missing(data)) data, if (!missing(subset)) substitute(subset),
                     if (!missing(offset)) substitute(offset),
                     if (!missing(na.action)) na.action, contrasts, method, control$threads,
                     parent.frame(), call, if (!missing(weights)) substitute(weights))
  fit <- optimise_fit(model$built, model$design, model$parsed, method, call, start, control,
                      verbose)
  fit <- new_hnm_fit(fit, model$built, model$design, model$formula, model$parsed, call, method,
                     control)
  fit$data <- model$rows$data  # by reference (unless subset), for model.frame()
  fit$na_action <- model$rows$na_action
  check_fit(fit, call)
}

# lme4's pipeline up to the model, for data frames of rows (hnm_fit(), hnm_devfun()): the
# formula (`.` expanded) parsed once, the rows chosen (`subset` and `offset` unevaluated
# expressions or NULL, evaluated in `data` and then `env`), and one pass over them building
# the Rust model of their per-group statistics (`weights`: lmer's prior weights, an
# unevaluated expression or NULL, see R/weights.R). Returns the formula, `parsed` (as the build
# completes it), `rows` (fit_rows()'s), and the build's `built` and `design`.
row_model <- function(formula, data, subset, offset, na.action, contrasts, method, threads, env,
                      call, weights = NULL) {
  formula <- expand_dot(formula, data, call)
  parsed <- parse_mixed_formula(formula, call, several = TRUE)
  rows <- fit_rows(data, subset, offset, na.action, env, call, weights)
  # An offset, as one in the formula, or weights: the general path (R/weights.R).
  if (!is.null(rows$offset) || !is.null(rows$weights)) parsed$one_way <- FALSE
  check_weighted_model(rows$weights, parsed, method, call)
  check_estimator(parsed, method, call)
  model <- if (has_several_factors(parsed)) {
    lmm_build_factors(parsed, rows$data, call, rows$offset, contrasts, threads, rows$weights,
                      rows$index)
  } else {
    lmm_build(parsed, rows$data, call, rows$offset, contrasts, threads, rows$weights, rows$index)
  }
  check_na_fail(rows$na_action, model$built$dropped - (model$built$zero_weights %||% 0), call)
  list(formula = formula, parsed = model$parsed %||% parsed, rows = rows, built = model$built,
       design = model$design)
}

# The ANOVA method of moments is an estimator of the one-way model only.
check_estimator <- function(parsed, method, call) {
  if (method == "ANOVA" && !parsed$one_way) {
    hnm_abort(paste("the ANOVA method of moments is for the one-way model `y ~ 1 | g`; use",
                    "method = \"ML\" or \"REML\" for models with covariates or random slopes."),
              call = call, class = "hnm_error_argument")
  }
}

# The estimates: the ML or REML optimum, found by the Rust model, or the ANOVA moments.
optimise_fit <- function(built, design, parsed, method, call, start = NULL, control = NULL,
                         verbose = FALSE) {
  report_dropped_columns(design$fixed_names, built$kept)
  if (method == "ANOVA") {
    if (!is.null(start)) {
      hnm_abort("`start` is for the ML and REML searches; the ANOVA estimator has none.",
                call = call, class = "hnm_error_argument")
    }
    return(anova_estimates(built, call))
  }
  internal_start <- if (!is.null(start)) start_theta(built, start, call)
  estimates <- lmm_search(built$model, method == "REML", internal_start, TRUE, control, verbose,
                          call)
  if (is_one_way(design, offset = TRUE)) check_one_way_range(estimates$theta, call)
  estimates
}

# lmer()'s `start`, theta in lme4's units (a vector, or list(theta = )), as the model's
# internal theta.
start_theta <- function(built, start, call) {
  theta <- if (is.list(start) && identical(names(start), "theta")) start$theta else start
  if (!is.numeric(theta) || is.list(theta) || length(theta) != length(built$lower) || anyNA(theta)) {
    hnm_abort(sprintf(paste("`start` must be lme4's theta: %d numbers (or list(theta = ...)),",
                            "as getME(fit, \"theta\") gives them."), length(built$lower)),
              call = call, class = "hnm_error_argument")
  }
  rust_result(rs_lmm_internal_theta(built$model, as.double(theta)), call = call)
}

# The estimator named by `method`, with lme4's `REML = TRUE` as a shorthand for "REML".
fit_method <- function(REML, method, method_missing, call) {
  if (!is.logical(REML) || length(REML) != 1L || is.na(REML)) {
    hnm_abort("`REML` must be TRUE or FALSE.", call = call)
  }
  choices <- c("ML", "REML", "ANOVA")
  if (!is.character(method) || !(length(method) == 1L || method_missing) ||
      !(method[1L] %in% choices)) {
    hnm_abort(sprintf("`method` must be one of %s.", paste0('"', choices, '"', collapse = ", ")),
              call = call)
  }
  method <- method[1L]
  if (REML && !method_missing && method != "REML") {
    hnm_abort(sprintf("`REML = TRUE` contradicts `method = \"%s\"`; give one of them.", method),
              call = call)
  }
  if (REML) "REML" else method
}

