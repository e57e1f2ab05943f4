# The linear mixed model (one grouping factor here; several in R/factors.R): hnm_fit()'s path for covariates and random
# slopes, and the fit object its methods read.

# The model's design from the data and the Rust model built from its one pass over the rows.
# With `weights` (prior weights of the rows; `index` the rows of `data` they are, or NULL), the
# pass reads the rows scaled by sqrt(w) (R/weights.R) and the design keeps the data's own.
lmm_build <- function(parsed, data, call, offset = NULL, contrasts = NULL,
                      threads = thread_count(call), weights = NULL, index = NULL) {
  design <- model_design(parsed, data, call, offset = offset, contrasts = contrasts)
  check_lengths(design, call)
  check_distinct_random_columns(design, call)
  designs <- pass_design(design, weights, index, call)
  design <- designs$rows
  pass <- designs$pass
  built <- rs_lmm_build(pass$variables, pass$codes, pass$code_offset, pass$n_groups,
                        pass$response, pass$fixed, pass$random, pass$blocks,
                        pass$names, threads)
  built <- rust_result(explain_build_error(built, pass, call), call = call)
  built$fingerprint <- rows_fingerprint(design, built)
  built$zero_weights <- design$zero_weights
  list(design = design, built = built)
}

# Every variable has one value per row of the grouping factor.
check_lengths <- function(design, call) {
  rows <- length(design$codes)
  sizes <- vapply(design$variables, NROW, numeric(1))
  widths <- vapply(design$variables, NCOL, numeric(1))
  bad <- which(sizes != rows)
  if (length(bad) > 0L) {
    name <- design$names[cumsum(widths)[bad[1L]]]
    hnm_abort(sprintf("`%s` has %d values but the grouping variable `%s` has %d.", name,
                      sizes[bad[1L]], design$group_name, rows), call = call)
  }
}

# A column of Z in two random-effects terms of the one factor makes their variances
# unidentifiable (only their sum is): refused.
check_distinct_random_columns <- function(design, call) {
  names <- unlist(design$random_names)
  repeated <- unique(names[duplicated(design$random)])
  if (length(repeated) > 0L) {
    hnm_abort(sprintf(paste("the random-effects terms of `%s` repeat the column(s) %s; each",
                            "column may appear in one term (their variances are not",
                            "identifiable otherwise)."), design$group_name,
                      paste(repeated, collapse = ", ")), call = call, class = "hnm_error_formula")
  }
}

# lme4's message for a rank-deficient X, naming the columns dropped.
report_dropped_columns <- function(fixed_names, kept) {
  dropped <- fixed_names[-kept]
  if (length(dropped) > 0L) {
    message(sprintf(paste("fixed-effect model matrix is rank deficient so dropping %d column(s) /",
                          "coefficient(s): %s"), length(dropped), paste(dropped, collapse = ", ")))
  }
}

# lme4 warns when its optimiser stops short of convergence, at fit time; so does hnm, with a
# class of its own (?hnm-conditions), and print() and summary() repeat it as a note.
check_fit <- function(fit, call) {
  problem <- convergence_problem(fit)
  if (!is.null(problem)) hnm_warn(problem, call = call, class = "hnm_warning_convergence")
  fit
}

# What keeps a fit from being an optimum, or NULL: the search stopped before its convergence
# test was met (iteration limit, or a line search that could not go on); or sigma -> 0, where
# the random effects reproduce the response and the criterion falls without bound as sigma
# shrinks, so the search stops (converged or not) where the residual sum of squares reaches
# the rounding of the response's sums of squares, which the fit's cross-products subtract
# from each other (the core stops with "fits the response exactly" below 1 ulp of them;
# within 1000 ulps of them the residual variance is rounding, not an estimate).
convergence_problem <- function(fit) {
  response <- fit$response_summary
  residual_df <- response[["n"]] - if (fit$method == "REML") length(fit$beta) else 0
  if (fit$sigma^2 * residual_df <= 1e3 * .Machine$double.eps * response[["sst"]]) {
    return(sprintf(paste("sigma -> 0: the residual SD (%.3g) is at the rounding of the",
                         "response's variation, as the random effects fit the response (almost)",
                         "exactly; the estimates are not an optimum (the model has more random",
                         "effects than these data identify)."), fit$sigma))
  }
  if (isTRUE(fit$convergence$converged)) return(NULL)
  sprintf(paste("the fit did not converge: the optimiser stopped after %d iterations with",
                "the criterion's projected gradient at %.2g; the estimates are where it",
                "stopped."), as.integer(fit$convergence$iterations),
          fit$convergence$projected_gradient_norm)
}

new_hnm_fit <- function(estimates, built, design, formula, parsed, call, method, control = NULL) {
  fixed_names <- design$fixed_names[built$kept]
  several <- !is.null(design$factors)
  levels <- if (!several) {
    # With rows in every level of a factor, its labels themselves (no copy of 1e5 strings).
    every <- is.null(design$level_offset) && length(built$groups) == length(design$levels)
    if (every) design$levels else group_labels(design, built$groups)
  }
  fit <- structure(list(
    call = call,
    formula = formula,
    parsed = parsed,
    method = method,
    response_name = design$response_name,
    group_name = design$group_name,
    lower = built$lower,
    # The search's settings, which refits use again (NULL: the defaults).
    control = control,
    fixed_names = fixed_names,
    fixed_assign = design$fixed_assign[built$kept],
    variable_names = design$names,
    kept = built$kept,
    dropped_fixed = design$fixed_names[-built$kept],
    random_names = design$random_names,
    # Each random-effects column's term (0 for the intercept), for re.form naming terms.
    random_assign = design$random_assign,
    levels = levels,
    group_codes = if (!several) built$groups,
    # With several grouping factors: each factor's name and level labels (lme4's order), and
    # the factor of each random-effects term.
    factors = design$factors,
    term_groups = design$term_groups,
    n_obs = built$response_summary[["n"]],
    response_summary = built$response_summary,
    group_sizes = if (!several) built$stats$n[built$groups],
    n_dropped = built$dropped,
    xlev = design$xlev,
    contrasts = design$contrasts,
    terms = design$terms,
    # The random parts' terms with their predvars, to evaluate new data as the fit's rows.
    random_terms = design$random_terms,
    # The plain fields the Rust model is rebuilt from after readRDS (with several grouping
    # factors only for a fit from statistics: a fit from rows is rebuilt from its rows,
    # restore_factors_model()).
    stats = built$stats,
    spec = list(response = design$response, fixed = design$fixed, random = design$random,
                blocks = design$blocks, factors = design$factor_spec),
    # The rows: columns by reference (or owned when computed), their fingerprint, the offset;
    # NULL for a fit from statistics.
    rows = if (!is.null(design$variables)) list(variables = design$variables,
      codes = design$codes, code_offset = design$code_offset, names = design$names,
      fingerprint = built$fingerprint, weights_fingerprint = weights_fingerprint(design),
      offset = design$offset, weights = design$weights),
    # sum(log(w_i)) over the rows used, NULL without weights (R/weights.R).
    log_weights = design$log_weights,
    # The Rust model, at the estimates: an ANOVA fit's is rebuilt at its theta on first use.
    core = list2env(list(model = if (method != "ANOVA") built$model), parent = emptyenv())
  ), class = "hnm_fit")
  with_estimates(fit, estimates)
}

# The fit with the estimates `estimates` (rs_lmm_fit's, or the ANOVA estimator's) in its
# fields, named by its fixed effects, random effects and grouping factor.
with_estimates <- function(fit, estimates) {
  fixed <- fit$fixed_names
  fit$beta <- setNames(estimates$beta, fixed)
  fit$vcov_beta <- matrix(estimates$beta_covariance, length(fixed), dimnames = list(fixed, fixed))
  fit$sigma <- estimates$sigma
  fit$theta <- setNames(estimates$theta, theta_names_terms(fit$random_names, term_groups(fit)))
  fit$re_covariance <- random_covariance(fit, estimates$re_covariance)
  fit$deviance <- estimates$deviance + weights_constant(fit)
  # An ANOVA fit's mean squares and its estimators' sampling covariance (R/one-way.R).
  fit["anova"] <- list(estimates$anova)
  fit["covariance"] <- list(estimates$covariance)
  fit$convergence <- estimates[c("iterations", "evaluations", "projected_gradient_norm",
                                 "converged", "internal_theta")]
  fit
}

# The fit's Rust model, rebuilt from its plain fields when the pointer did not survive
# saveRDS()/readRDS() (the saved fit is the fit: no search is run again).
lmm_model <- function(object) {
  core <- object$core
  if (is.environment(core) && rs_lmm_valid(core$model)) return(core$model)
  model <- rust_result(restore_model(object, object$method == "REML",
                                     object$convergence$internal_theta))$model
  if (is.environment(core)) assign("model", model, envir = core)
  model
}

# The fit's statistics (its plain fields `stats`): for a fit from rows with several grouping
# factors, which keeps none (lmm_build_factors()), made again by the pass over its rows, for
# `what` (named in the error when they changed in place since the fit).
fit_statistics <- function(object, what) {
  if (!is.null(object$stats)) return(object$stats)
  rows <- lmm_rows(object, what)
  rust_result(build_rows(object, rows, statistics = TRUE))$stats
}

# The Rust model of a fit rebuilt from its statistics, or with several grouping factors from
# its rows (see lmm_model()), fitted by REML when `reml` at the internal theta `theta`.
restore_model <- function(object, reml, theta) {
  if (has_several_factors(object)) return(restore_factors_model(object, reml, theta))
  s <- object$stats
  spec <- object$spec
  rs_lmm_restore(s$pilot, s$n, s$means, s$comoments, spec$response, spec$fixed, spec$random,
                 spec$blocks, object$variable_names, reml, theta)
}

# The general model fitted from per-group statistics of its variables (a statistics table, or
# what a database computed) instead of rows: `statistics` holds `names` (the variables,
# response first), `pilot` (k values subtracted before averaging; 0 is fine), `n`, `means`
# (groups x k, about the pilot), `comoments` (groups x k(k+1)/2 centred co-moments, each
# group's lower triangle by rows: W[1,1], W[2,1], W[2,2], ...), `levels` (group labels), and
# the design by variable names: `fixed` (X's columns, "(Intercept)" for the intercept) and
# `random` (a list of Z's columns per term). With several grouping factors the groups are the
# cells, `cells` (a data frame of the cell columns' values) replaces `levels`, and `random`
# follows the terms of all_random_terms(parsed) (see factors_statistics()). Row-level methods
# then stop with `hnm_error_no_rows`.
lmm_fit_statistics <- function(statistics, parsed, formula, method, call, start = NULL,
                               control = NULL, verbose = FALSE) {
  index <- function(names) {
    i <- match(names, statistics$names)
    i[names == "(Intercept)"] <- 0L
    if (anyNA(i)) {
      hnm_abort(sprintf("the statistics lack the model column(s) %s.",
                        paste(names[is.na(i)], collapse = ", ")), call = call)
    }
    as.integer(i)
  }
  several <- has_several_factors(parsed)
  if (several) {
    prepared <- factors_statistics(statistics, parsed, call)
    statistics <- prepared$statistics
    parsed <- prepared$parsed
  }
  design <- list(response = 1L, fixed = index(statistics$fixed), fixed_names = statistics$fixed,
                 random = index(unlist(statistics$random)), blocks = lengths(statistics$random),
                 random_names = statistics$random, random_assign = statistics$random_assign,
                 random_terms = statistics$random_terms, levels = statistics$levels,
                 response_name = statistics$names[1L], group_name = parsed$group_name,
                 xlev = statistics$xlev, contrasts = statistics$contrasts, terms = statistics$terms,
                 fixed_assign = statistics$fixed_assign, names = statistics$names)
  if (several) {
    design <- factors_design(design, parsed, prepared$grouping, prepared$cell_levels, call)
  }
  stats <- list(pilot = as.double(statistics$pilot), n = as.double(statistics$n),
                means = as.double(t(statistics$means)), comoments = as.double(t(statistics$comoments)))
  reml <- method == "REML"
  spec <- design$factor_spec
  built <- rust_result(if (several) {
    rs_lmm_restore_factors(stats$pilot, stats$n, stats$means, stats$comoments, NULL, NULL,
                           design$response,
                           design$fixed, spec$cell_levels, spec$n_levels, spec$random,
                           spec$blocks, statistics$names, reml, NULL,
                           control$threads %||% thread_count(call))
  } else {
    rs_lmm_restore(stats$pilot, stats$n, stats$means, stats$comoments, design$response,
                   design$fixed, design$random, design$blocks, statistics$names, reml, NULL)
  }, call = call)
  built <- c(built, list(stats = stats, dropped = 0))
  if (several) design$factors <- factor_descriptions(design, prepared$grouping, built)
  estimates <- optimise_fit(built, design, parsed, method, call, start, control, verbose)
  check_fit(new_hnm_fit(estimates, built, design, formula, parsed, call, method, control), call)
}

# The rows of the fit, checked to be those the fit was made from: columns kept by reference
# may have been changed in place since (data.table's `:=` or set()).
lmm_rows <- function(object, what) {
  rows <- object$rows
  if (is.null(rows)) {
    hnm_abort(sprintf(paste("%s needs the data rows, but this fit was made from group",
                            "statistics; refit from the data to get it."), what),
              class = "hnm_error_no_rows")
  }
  rows <- live_key_table(rows, object$core)
  now <- rust_result(rs_lmm_fingerprint(rows$variables, rows$codes, rows$code_offset))
  # The prior weights too are kept by reference, and the pass reads them (pass_variables()):
  # a fit read back rebuilds its model from them (restore_factors_model()). A fit saved
  # before they were fingerprinted has none to compare.
  weights_changed <- !is.null(rows$weights_fingerprint) &&
    !identical(weights_fingerprint(rows), rows$weights_fingerprint)
  if (!identical(now, rows$fingerprint) || weights_changed) {
    hnm_abort(sprintf(paste("%s needs the data the fit was made from, but they have been",
                            "modified in place since (for example by data.table's `:=` or",
                            "set()); refit the model to the current data."), what),
              class = "hnm_error_data_changed")
  }
  rows
}
