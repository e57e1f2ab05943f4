# Predictions and simulation for hnm_fit, with lme4's arguments (predict.hnm_fit and
# simulate.hnm_fit are documented with the other methods, ?hnm_fit-methods).

# The random-effects columns `re.form` keeps, as lme4's predict() and simulate() read it:
# NULL every column, NA or ~0 none, a formula of random-effects terms of the model's grouping
# factors (`~ (1 | g)`, `~ (0 + x | g)`, `~ (x || g)`, `~ (1 | a/b)` of b:a and a) the
# columns of the terms it names (its intercept, and the columns coding each of its terms) of
# the factors it names. `layout` is the model's random parts (random_terms_of()), `groups`
# each part's grouping factor. A term or grouping factor that is not the model's is an error,
# as lme4's. Returns a logical vector over the model's random-effects columns.
random_selection <- function(re.form, layout, groups, call) {
  assign <- lapply(layout, `[[`, "assign")
  q <- length(unlist(assign))
  if (is.null(re.form)) return(rep(TRUE, q))
  usage <- paste("`re.form` must be NULL, NA, ~0 or a one-sided formula of the model's",
                 "random-effects terms such as `~ (1 | g)`.")
  if (is.atomic(re.form) && length(re.form) == 1L && is.na(re.form)) return(rep(FALSE, q))
  if (!inherits(re.form, "formula") || length(re.form) != 2L) {
    hnm_abort(usage, call = call, class = "hnm_error_argument")
  }
  rhs <- re.form[[2L]]
  if (identical(rhs, 0) || identical(rhs, 0L)) return(rep(FALSE, q))
  bars <- find_bars(rhs)
  if (length(bars) == 0L || !is.null(drop_bars(rhs))) {
    hnm_abort(usage, call = call, class = "hnm_error_argument")
  }
  # Each column of the model's random part by the term it codes, and its grouping factor.
  column_terms <- unlist(lapply(layout, function(part) {
    c("(Intercept)", part$labels)[part$assign + 1L]
  }))
  column_groups <- rep(groups, vapply(layout, function(part) length(part$assign), 0L))
  factors <- unique(groups)
  selected <- logical(length(column_terms))
  for (bar in bars) {
    named <- unlist(lapply(random_terms(bar), function(lhs) {
      t <- part_terms(lhs, environment(re.form), call)
      c(if (t$intercept) "(Intercept)", t$labels)
    }))
    # `a/b` names the factors b:a and a, as in the model's formula (lme4 expands it alike).
    for (group in vapply(nested_factors(bar[[3L]], bar, re.form, call), deparse1, "")) {
      if (!group %in% factors) {
        hnm_abort(sprintf("`re.form` names the grouping factor `%s`, but the model's %s %s.",
                          group, if (length(factors) == 1L) "is" else "are",
                          paste0("`", factors, "`", collapse = ", ")),
                  call = call, class = "hnm_error_argument")
      }
      own <- column_groups == group
      absent <- setdiff(named, column_terms[own])
      if (length(absent) > 0L) {
        hnm_abort(sprintf(paste("`re.form` names the random-effects term(s) %s of `%s`, which",
                                "the model does not have (its random-effects columns: %s)."),
                          paste0("`", absent, "`", collapse = ", "), group,
                          paste(unlist(lapply(layout[groups == group], `[[`, "names")),
                                collapse = ", ")),
                  call = call, class = "hnm_error_argument")
      }
      selected <- selected | (own & column_terms %in% named)
    }
  }
  selected
}

# lme4's simulate() takes one of `use.u` and `re.form`, which say the same thing.
use_u_and_re_form <- function(call) {
  hnm_abort(paste("give one of `use.u` and `re.form` (`use.u = TRUE` is `re.form = NULL`,",
                  "`use.u = FALSE` is `re.form = NA`), as lme4's simulate()."),
            call = call, class = "hnm_error_argument")
}

# The random-number stream as stats::simulate handles it: `seed = NULL` continues the
# current stream, a number seeds it for this call only. Returns the state to report as
# attr "seed" and a function restoring the caller's stream.
use_seed <- function(seed) {
  if (!exists(".Random.seed", envir = globalenv(), inherits = FALSE)) stats::runif(1)
  saved <- get(".Random.seed", envir = globalenv())
  if (is.null(seed)) return(list(state = saved, restore = function() invisible()))
  set.seed(seed)
  list(state = structure(seed, kind = as.list(RNGkind())),
       restore = function() assign(".Random.seed", saved, envir = globalenv()))
}

#' @rdname hnm_fit-methods
#' @export
predict.hnm_fit <- function(object, newdata = NULL, re.form = NULL, allow.new.levels = FALSE,
                            type = c("link", "response"), se.fit = FALSE,
                            interval = c("none", "confidence", "prediction"), level = 0.95,
                            random.only = FALSE, ...) {
  call <- sys.call()
  check_no_dots(list(...), call)
  match.arg(type)
  interval <- interval_argument(interval, call)
  if (!is.logical(se.fit) || length(se.fit) != 1L || is.na(se.fit)) {
    hnm_abort("`se.fit` must be TRUE or FALSE.", call = call, class = "hnm_error_argument")
  }
  check_flag(random.only, "random.only", call)
  check_probability(level, "level", call)
  uncertainty <- se.fit || interval != "none"
  if (random.only) {
    if (uncertainty) {
      hnm_abort("`random.only = TRUE` gives no standard errors or intervals, as lme4's.",
                call = call, class = "hnm_error_argument")
    }
    # lme4's: the random effects' part alone, Zb of the terms re.form keeps, without the fixed
    # part or the offset: the prediction less the population one.
    newdata <- with_fixed_variables(object, newdata)
    predicted <- function(re_form) {
      predict.hnm_fit(object, newdata, re_form, allow.new.levels)
    }
    return(predicted(re.form) - predicted(NA))
  }
  # A new observation's variance sigma^2 / w needs its weight, which predict() does not take.
  if (interval == "prediction") refuse_weights(object, "`interval = \"prediction\"`", call)
  # A population prediction interval is for a new observation in a new group: it reads z.
  predicted <- (if (has_several_factors(object)) predict_several else predict_one_factor)(
    object, newdata, re.form, allow.new.levels, uncertainty, interval == "prediction", call)
  fit <- predicted$fit
  population <- predicted$population
  rows <- predicted$rows
  pad <- if (is.null(newdata)) function(v) pad_excluded(object, v) else identity
  if (!uncertainty) return(pad(fit))
  variances <- prediction_variances(object, rows, population, interval == "prediction", call)
  se <- sqrt(variances$fit)
  if (interval != "none") {
    half <- stats::qnorm((1 + level) / 2) *
      sqrt(if (interval == "confidence") variances$fit else variances$prediction)
    fit <- cbind(fit = pad(fit), lwr = pad(fit - half), upr = pad(fit + half))
  } else {
    fit <- pad(fit)
  }
  if (!se.fit) return(fit)
  list(fit = fit, se.fit = pad(se), df = Inf, residual.scale = object$sigma)
}

# `newdata` with the variables that only the fixed part reads, where it lacks them, set to one
# of the fit's values each (its first that is not NA): predict(random.only = TRUE) does not
# read them, as lme4's, and they cancel in its difference of two predictions.
with_fixed_variables <- function(object, newdata) {
  if (is.null(newdata) || is.null(object$data)) return(newdata)
  fixed_only <- setdiff(all.vars(formula(object, fixed.only = TRUE)[[3L]]),
                        c(all.vars(formula(object, random.only = TRUE)), names(newdata)))
  for (name in intersect(fixed_only, names(object$data))) {
    values <- object$data[[name]]
    newdata[[name]] <- rep(values[which(!is.na(values))[1L]], nrow(newdata))
  }
  newdata
}

# predict() of a fit with one grouping factor, as predict_several() (R/factors.R) for several:
# the predictions, whether they are population ones, and the rows they were computed from.
predict_one_factor <- function(object, newdata, re_form, allow_new_levels, uncertainty,
                               read_random, call) {
  selected <- random_selection(re_form, random_terms_of(object, call), term_groups(object), call)
  population <- !any(selected)
  if (uncertainty) check_prediction_uncertainty(object, selected, call)
  modes <- selected_modes(object, selected)
  if (is.null(newdata)) {
    fit <- lmm_fitted(object, population, modes)
    rows <- NULL
    if (uncertainty) {
      rows <- lmm_rows(object, "`se.fit` and `interval` of the fit's rows")
      ok <- complete_lmm_rows(object, rows)
      rows <- list(variables = lapply(flat_variables(rows$variables), `[`, ok),
                   codes = rows$codes[ok], code_offset = rows$code_offset)
    }
    return(list(fit = fit, population = population, rows = rows))
  }
  if (!is.data.frame(newdata)) hnm_abort("`newdata` must be a data frame.", call = call)
  rows <- new_rows(object, newdata, allow_new_levels, population, call,
                   read_random || !population)
  fit <- if (is_one_way(object)) one_way_fitted(object, row_codes(rows), population, modes) else
    rust_result(rs_lmm_fitted(lmm_model(object), rows$variables, rows$codes, rows$code_offset,
                              !population, modes), call = call)
  if (!is.null(rows$offset)) fit <- fit + rows$offset
  list(fit = fit, population = population, rows = rows)
}

# `interval` as predict.lm() takes it, with an hnm error naming the choices.
interval_argument <- function(interval, call) {
  choices <- c("none", "confidence", "prediction")
  if (identical(interval, choices)) return("none")
  if (!is.character(interval) || length(interval) != 1L || !(interval %in% choices)) {
    hnm_abort(sprintf("`interval` must be one of %s.", paste0('"', choices, '"', collapse = ", ")),
              call = call, class = "hnm_error_argument")
  }
  interval
}

# The standard errors and intervals of predict() are of population predictions (re.form = NA)
# and of conditional ones on every random effect (re.form = NULL), the latter from the mixed
# model equations of an ML or REML fit.
check_prediction_uncertainty <- function(object, selected, call) {
  if (any(selected) && !all(selected)) {
    hnm_abort(paste("`se.fit` and `interval` are available for `re.form = NULL` (conditional on",
                    "every random effect) and `re.form = NA` (population), not for a `re.form`",
                    "naming some of the random-effects terms."),
              call = call, class = "hnm_error_argument")
  }
  if (all(selected) && identical(object$method, "ANOVA")) {
    hnm_abort(paste("`se.fit` and `interval` of conditional predictions come from the mixed-model",
                    "equations of an ML or REML fit; the ANOVA estimator's mean (the grand mean)",
                    "is not their solution. Use `re.form = NA`, or refit by ML or REML."),
              call = call, class = "hnm_error_argument")
  }
}

# The variances of predictions of `rows` (as new_rows() gives them): `fit`, of the error of
# the prediction as an estimate of its target (x'beta for a population prediction,
# x'beta + z'b_j for a conditional one: from the joint conditional covariance of
# (beta-hat, b-hat - b), LinearMixedModel::prediction_variances), and `prediction`, of the
# error as a prediction of a new observation (adding sigma^2, and for a population prediction
# the new group's z'Sigma z).
prediction_variances <- function(object, rows, population, new_observation, call) {
  sigma2 <- object$sigma^2
  if (population) {
    x <- new_fixed_matrix(object, rows$variables)
    fit <- rowSums((x %*% vcov(object)) * x)
    if (!new_observation) return(list(fit = fit))
    z <- design_columns(object$spec$random, rows$variables, length(fit))
    return(list(fit = fit, prediction = fit + rowSums((z %*% object$re_covariance) * z) + sigma2))
  }
  fit <- if (has_several_factors(object)) several_prediction_variances(object, rows) else
    rust_result(rs_lmm_prediction_variances(lmm_model(object), rows$variables, rows$codes,
                                            rows$code_offset), call = call)
  list(fit = fit, prediction = fit + sigma2)
}

# The model's random parts for random_selection(): each part's term labels, column names and
# the term of each column (`assign`, 0 for the intercept). A fit from statistics that did not
# record `assign` has a column per term, named by its label.
random_terms_of <- function(object, call) {
  assign <- object$random_assign %||% vector("list", length(object$random_names))
  Map(function(rhs, names, assign) {
    labels <- part_terms(rhs, object$parsed$env, call)$labels
    list(labels = labels, names = names,
         assign = assign %||% (match(names, c("(Intercept)", labels)) - 1L))
  }, object$parsed$random, object$random_names, assign)
}

# The conditional modes (groups × q by rows, as rs_lmm_fitted() takes them) of the selected
# random-effects columns, the others 0; NULL when every column is selected (the fit's own
# modes) or none (population values).
selected_modes <- function(object, selected) {
  if (all(selected) || !any(selected)) return(NULL)
  modes <- ranef(object, condVar = FALSE)[[1L]]
  modes <- as.vector(t(as.matrix(modes)))
  modes[!rep(selected, length.out = length(modes))] <- 0
  modes
}

# The model's variables for the rows of `newdata` (the response a placeholder), evaluated with
# the fit's terms (their predvars: poly(), scale(), ns() with the fit's bases), and group codes
# indexing the fit's levels (0 for a new level, when allowed). Population predictions read
# neither the grouping variable (every code is 0) nor, unless `read_random` (the z of a
# population prediction interval's new group), the random part's variables, as lme4's.
new_rows <- function(object, newdata, allow_new_levels, population, call,
                     read_random = !population) {
  parsed <- object$parsed
  xlev <- c(object$xlev, list(group = object$levels))
  terms <- list(fixed = object$terms,
                random = object$random_terms %||% vector("list", length(parsed$random)))
  read <- parsed
  if (!read_random) read$random <- list()
  design <- model_design(read, newdata, call, xlev = xlev, new_data = TRUE, terms = terms,
                         groups = !population, contrasts = object$contrasts)
  used <- c(object$spec$fixed, if (read_random) object$spec$random)
  variables <- align_variables(object, design, newdata, used, call)
  if (population) return(list(variables = variables, codes = integer(nrow(newdata)),
                              code_offset = 0L, offset = design$offset))
  # The fit's levels as the codes of the groups the model was built from; NA for a new level
  # or a missing group, predicted at the population level (code 0) when allowed.
  codes <- as.integer(object$group_codes)[design$codes]
  unseen <- is.na(codes)
  if (any(unseen)) {
    if (!isTRUE(allow_new_levels)) {
      # The labels of the unseen rows, as the data give them (NA for a missing group).
      given <- grouping_factor(parsed, newdata, parsed$env %||% globalenv(), call)
      abort_new_levels(object$group_name, given_labels(given)[unseen], call)
    }
    codes[unseen] <- 0L
  }
  list(variables = variables, codes = codes, code_offset = 0L, offset = design$offset)
}

# Each row's group label as the data give it (grouping_factor() of new data read without the
# fit's levels), NA for a missing group.
given_labels <- function(given) {
  codes <- row_codes(given)
  codes[!is.na(codes) & codes < 1L] <- NA_integer_
  group_labels(given, codes)
}

# The error for rows of new data whose group `name` the fit has no effects for: `values`, their
# labels as the data give them, NA for a missing group (lme4: "NAs are not allowed in
# prediction data for grouping variables unless allow.new.levels is TRUE").
abort_new_levels <- function(name, values, call) {
  values <- unique(values)
  new <- values[!is.na(values)]
  what <- c(if (length(new)) sprintf("level(s) of `%s` not in the fit: %s", name,
                                     paste(utils::head(new, 5L), collapse = ", ")),
            if (anyNA(values)) sprintf("missing values (NA) of `%s`", name))
  hnm_abort(sprintf(paste("`newdata` has %s. Use `allow.new.levels = TRUE` to predict them at the",
                          "population level."), paste(what, collapse = " and ")),
            call = call, class = "hnm_error_new_levels")
}

# The fit's variables, in the fit's order, from the design of new data: those with an index
# in `used`, the others (the response, a random-only variable of a population prediction)
# one shared placeholder that is never read. `newdata` names a column of the wrong type.
align_variables <- function(object, design, newdata, used, call) {
  rows <- nrow(newdata)
  flat <- flat_variables(design$variables)
  names(flat) <- design$names
  placeholder <- numeric(rows)
  names <- object$variable_names %||% object$rows$names
  lapply(seq_along(names), function(a) {
    if (!(a %in% used)) return(placeholder)
    name <- names[a]
    # A weighted fit's intercept (R/weights.R).
    if (!is.null(object$rows$weights) && identical(name, weights_variable)) return(rep(1, rows))
    value <- flat[[name]]
    # A numeric variable given as, say, character is coded as a factor, whose columns have
    # other names.
    if (is.null(value) && name %in% names(newdata)) {
      hnm_abort(sprintf("`newdata`'s column `%s` is of class %s, but the fit's `%s` is numeric.",
                        name, class(newdata[[name]])[[1L]], name),
                call = call, class = "hnm_error_argument")
    }
    if (is.null(value)) {
      hnm_abort(sprintf("`newdata` does not give the model column `%s`.", name), call = call)
    }
    as.double(value)
  })
}

# X for new rows (kept columns), from the aligned variables.
new_fixed_matrix <- function(object, variables) {
  x <- design_columns(object$spec$fixed[object$kept], variables, length(variables[[1L]]))
  dimnames(x) <- list(NULL, object$fixed_names)
  x
}

# The n x length(columns) matrix of design columns (0 the intercept, j variable j).
design_columns <- function(columns, variables, n) {
  x <- vapply(columns, function(j) if (j == 0L) rep(1, n) else as.double(variables[[j]]), numeric(n))
  matrix(x, n, length(columns))
}

#' @rdname hnm_fit-methods
#' @importFrom stats simulate rnorm runif
#' @export
simulate.hnm_fit <- function(object, nsim = 1, seed = NULL, use.u = FALSE, re.form = NA,
                             newdata = NULL, ...) {
  call <- sys.call()
  check_no_dots(list(...), call)
  check_count(nsim, "nsim", 1L, call)
  if (!is.null(newdata)) {
    hnm_abort("`newdata` is not supported by simulate() for hnm fits: it simulates the fit's rows.",
              call = call, class = "hnm_error_argument")
  }
  if (!missing(use.u) && !missing(re.form)) use_u_and_re_form(call)
  selected <- if (isTRUE(use.u)) rep(TRUE, length(unlist(object$random_names))) else
    random_selection(re.form, random_terms_of(object, call), term_groups(object), call)
  if (has_several_factors(object)) {
    if (any(selected) && !all(selected)) {
      hnm_abort(paste("with several grouping factors simulate() takes a `re.form` of every",
                      "random-effects term or none: NA or ~0 (every factor's effects drawn",
                      "anew) or NULL (every factor's at its modes), for now."),
                call = call, class = "hnm_error_unsupported")
    }
    rng <- use_seed(seed)
    on.exit(rng$restore())
    return(simulated_frame(object, simulate_several(object, nsim, all(selected)), rng))
  }
  drawn <- drawn_blocks(object, selected, call)
  rng <- use_seed(seed)
  on.exit(rng$restore())
  rows <- lmm_rows(object, "simulate()")
  ok <- complete_lmm_rows(object, rows)
  n <- sum(ok)
  modes <- selected_modes(object, selected)
  if (length(drawn) == 0L) {
    # Every term conditioned on its modes (use.u = TRUE, re.form = NULL): new errors only.
    base <- lmm_fitted(object)
    sims <- rep(list(base), nsim)
  } else {
    # lme4's order: new effects of the terms re.form leaves out, then the errors.
    model <- lmm_model(object)
    offset <- if (is.null(rows$offset)) 0 else rows$offset[ok]
    effects <- simulated_effects(object, nsim, drawn)
    sims <- lapply(seq_len(nsim), function(s) {
      drawn_modes <- effects[[s]] + if (is.null(modes)) 0 else modes
      if (is_one_way(object)) return(one_way_fitted(object, row_codes(rows)[ok], FALSE, drawn_modes))
      values <- rust_result(rs_lmm_fitted(model, rows$variables, rows$codes, rows$code_offset,
                                          TRUE, drawn_modes))
      values[ok] + offset
    })
  }
  # With prior weights, e_i ~ N(0, sigma^2 / w_i) (lme4 1.1-31 ignores the weights here).
  noise <- matrix(stats::rnorm(n * nsim), ncol = nsim)
  if (!is.null(object$rows$weights)) noise <- noise / sqrt(used_weights(object, rows))
  simulated_frame(object, do.call(cbind, sims) + object$sigma * noise, rng)
}

# simulate()'s data frame of the responses `values` (the rows used by columns), as lme4's: a
# column sim_1, sim_2, ... per simulation, padded with NA at the rows na.exclude left out, and
# the RNG's state as its attribute "seed".
simulated_frame <- function(object, values, rng) {
  out <- as.data.frame(pad_excluded(object, values))
  names(out) <- paste0("sim_", seq_len(ncol(values)))
  structure(out, seed = rng$state)
}

# The random-effects terms (blocks of Λ) simulate() draws anew: those with none of their
# columns selected by re.form, as lme4 draws the terms re.form leaves out. A term with some of
# its columns selected would be both conditioned on and drawn: refused.
drawn_blocks <- function(object, selected, call) {
  blocks <- block_ranges(object)
  partial <- vapply(blocks, function(b) any(selected[b]) && !all(selected[b]), logical(1))
  if (any(partial)) {
    i <- which(partial)[1L]
    hnm_abort(sprintf(paste("`re.form` names some columns of the random-effects term `(%s | %s)`",
                            "but not all (%s): simulate() conditions on whole terms and draws",
                            "the others anew."), deparse1(object$parsed$random[[i]]),
                      object$group_name,
                      paste(unlist(object$random_names)[blocks[[i]][!selected[blocks[[i]]]]],
                            collapse = ", ")),
              call = call, class = "hnm_error_argument")
  }
  blocks[!vapply(blocks, function(b) any(selected[b]), logical(1))]
}

# New random effects b = σ Λ u for every group in the random-effects terms `blocks` (the
# others 0), u standard normal drawn in lme4's order (term by term, within a term group by
# group, within a group the term's columns), one set per simulation: the same draws as
# lme4's simulate() for the same seed. Each set is a groups × q matrix by rows, in the data's
# units.
simulated_effects <- function(object, nsim, blocks) {
  lambda <- relative_factor(object)
  m <- length(object$levels)
  q <- nrow(lambda)
  u <- matrix(stats::rnorm(m * length(unlist(blocks)) * nsim), ncol = nsim)
  lapply(seq_len(nsim), function(s) {
    b <- matrix(0, m, q)
    offset <- 0L
    for (block in blocks) {
      size <- length(block)
      draws <- matrix(u[offset + seq_len(m * size), s], size, m)
      b[, block] <- t(lambda[block, block, drop = FALSE] %*% draws)
      offset <- offset + m * size
    }
    as.vector(t(object$sigma * b))
  })
}
