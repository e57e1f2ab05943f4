# Predictions and simulation for fits with covariates or random slopes, with lme4's arguments.

#' @rdname hnm_lmm-methods
#' @export
predict.hnm_lmm <- function(object, newdata = NULL, re.form = NULL, allow.new.levels = FALSE,
                            type = c("link", "response"), se.fit = FALSE, ...) {
  call <- sys.call()
  check_no_dots(list(...), call)
  match.arg(type)
  population <- is_population_form(re.form, call)
  if (!isFALSE(se.fit) && !(isTRUE(se.fit) && population)) {
    hnm_abort(paste("`se.fit = TRUE` is available for population predictions (`re.form = NA`),",
                    "whose standard errors come from vcov(fit), as lme4's."), call = call,
              class = "hnm_error_argument")
  }
  if (is.null(newdata)) {
    fit <- lmm_fitted(object, population)
    if (isTRUE(se.fit)) return(list(fit = fit, se.fit = prediction_se(model.matrix(object), object)))
    return(fit)
  }
  if (!is.data.frame(newdata)) hnm_abort("`newdata` must be a data frame.", call = call)
  rows <- new_rows(object, newdata, allow.new.levels || population, call)
  fit <- rust_result(rs_lmm_fitted(lmm_model(object), rows$variables, rows$codes, !population,
                                   NULL), call = call)
  if (!is.null(rows$offset)) fit <- fit + rows$offset
  if (isTRUE(se.fit)) return(list(fit = fit, se.fit = prediction_se(rows$x, object)))
  fit
}

# sqrt(diag(X V Xᵀ)) for the rows of X.
prediction_se <- function(x, object) sqrt(rowSums((x %*% vcov(object)) * x))

# The model's variables for the rows of `newdata` (the response a placeholder), group codes
# indexing the fit's levels (0 for a new level, when allowed) and the fixed-effect design.
new_rows <- function(object, newdata, allow_new_levels, call) {
  parsed <- object$parsed
  xlev <- c(object$xlev, list(group = object$levels))
  design <- model_design(parsed, newdata, call, xlev = xlev, new_data = TRUE)
  codes <- design$codes
  unseen <- !is.na(codes) & codes == 0L
  if ((any(unseen) || anyNA(codes)) && !isTRUE(allow_new_levels)) {
    unseen_values <- grouping_factor(parsed, newdata, parsed$env %||% globalenv(), call)$levels
    hnm_abort(sprintf(paste("`newdata` has level(s) of `%s` not in the fit (or NA): %s. Use",
                            "`allow.new.levels = TRUE` to predict them at the population level."),
                      object$group_name,
                      paste(utils::head(setdiff(unseen_values, object$levels), 5L), collapse = ", ")),
              call = call, class = "hnm_new_levels")
  }
  codes[is.na(codes)] <- 0L
  # The fit's levels as the codes of the groups the model was built from (0 stays 0).
  codes <- c(0L, object$group_codes)[codes + 1L]
  variables <- align_variables(object, design, nrow(newdata), call)
  list(variables = variables, codes = as.integer(codes), offset = design$offset,
       x = new_fixed_matrix(object, variables))
}

# The fit's variables, in the fit's order, from the design of new data.
align_variables <- function(object, design, rows, call) {
  flat <- flat_variables(design$variables)
  names(flat) <- design$names
  lapply(object$variable_names %||% object$rows$names, function(name) {
    if (name == object$response_name) return(numeric(rows))
    value <- flat[[name]]
    if (is.null(value)) {
      hnm_abort(sprintf("`newdata` does not give the model column `%s`.", name), call = call)
    }
    as.double(value)
  })
}

# X for new rows (kept columns), from the aligned variables.
new_fixed_matrix <- function(object, variables) {
  columns <- object$spec$fixed[object$kept]
  n <- length(variables[[1L]])
  x <- vapply(columns, function(j) if (j == 0L) rep(1, n) else variables[[j]], numeric(n))
  matrix(x, n, length(columns), dimnames = list(NULL, object$fixed_names))
}

#' @rdname hnm_lmm-methods
#' @export
simulate.hnm_lmm <- function(object, nsim = 1, seed = NULL, use.u = FALSE, re.form = NA,
                             newdata = NULL, ...) {
  call <- sys.call()
  check_no_dots(list(...), call)
  check_count(nsim, "nsim", 1L, call)
  if (!is.null(newdata)) {
    hnm_abort("`newdata` is not supported by simulate() for hnm fits: it simulates the fit's rows.",
              call = call, class = "hnm_error_argument")
  }
  conditional <- isTRUE(use.u) || !is_population_form(re.form, call)
  rng <- use_seed(seed)
  on.exit(rng$restore())
  rows <- lmm_rows(object, "simulate()")
  ok <- complete_lmm_rows(object, rows)
  model <- lmm_model(object)
  offset <- if (is.null(rows$offset)) 0 else rows$offset[ok]
  base <- if (conditional) lmm_fitted(object) else lmm_fitted(object, population = TRUE)
  n <- sum(ok)
  effects <- if (!conditional) simulated_effects(object, nsim)
  sims <- lapply(seq_len(nsim), function(s) {
    if (conditional) return(base)
    values <- rust_result(rs_lmm_fitted(model, rows$variables, rows$codes, TRUE, effects[[s]]))
    values[ok] + offset
  })
  noise <- matrix(stats::rnorm(n * nsim), ncol = nsim)
  out <- as.data.frame(do.call(cbind, sims) + object$sigma * noise)
  names(out) <- paste0("sim_", seq_len(nsim))
  structure(out, seed = rng$state)
}

# New random effects b = σ Λ u for every group, u standard normal drawn in lme4's order (term
# by term, within a term group by group, within a group the term's columns), one set per
# simulation: the same draws as lme4's simulate() for the same seed. Each set is a
# groups × q matrix by rows, in the data's units.
simulated_effects <- function(object, nsim) {
  lambda <- relative_factor(object)
  blocks <- block_ranges(object)
  m <- length(object$levels)
  q <- nrow(lambda)
  u <- matrix(stats::rnorm(m * q * nsim), ncol = nsim)
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
