# lmer()'s prior weights: Var(e_i) = sigma^2 / w_i.
#
# A weighted model is the unweighted model of the rows scaled by sqrt(w_i): y*_i = sqrt(w_i) y_i,
# and each design column x_i (the intercept's 1 included) as sqrt(w_i) x_i, so that
# y* = X* beta + Z* b + e* with e* ~ N(0, sigma^2 I) and the same beta, b, theta and sigma. Its
# cross-products are X'WX, X'Wy, Z'WZ, ... as the weighted likelihood needs them, and the one
# pass computes them from the scaled columns unchanged. The scaled intercept is no longer a
# constant, so the design's intercept (index 0) becomes a variable of its own, "(weights)":
# sqrt(w) in the pass, 1 in the fit's rows, which keep the data's own values (by reference).
# So every method that reads the rows (fitted values, predictions, the model matrix) computes
# X beta + Z b in the data's units with the fit's structure, and every method that reads the
# model's blocks (vcov, Satterthwaite, Kenward-Roger, profiles) sees the weighted model.
# The likelihood of y is that of y* times the Jacobian prod sqrt(w_i): the deviance and the
# REML criterion are the scaled model's minus sum(log(w_i)) over the rows used, as lme4's
# (its lmerResp subtracts ldW = sum(log(weights))). A row of weight 0 is dropped from the fit
# as a row with a missing value is (lme4 1.1-31 keeps it, and its criterion is then infinite
# at every theta, so its search stays at its start); it is NA in the "(weights)" variable.
# What the scaling costs: the core centres y and X's columns about their means when X has the
# constant intercept, which the scaled model does not have, so a response whose mean is more
# than ~1e5 times its spread loses digits in the cross-products (at 1e6 the search stops
# short and hnm_fit() warns); centring the response before fitting avoids it.

# The name of the variable that carries the intercept of a weighted fit.
weights_variable <- "(weights)"

# lmer()'s `weights` checked: numeric, one value per row of `data` (`n`), finite and >= 0; a
# negative, infinite or NaN weight is an error naming its row. NA is checked at the rows the
# fit uses (weighted_design()), as other rows are dropped anyway.
prior_weights <- function(w, n, call) {
  if (!is.numeric(w) || is.object(w) || length(w) != n) {
    hnm_abort(sprintf("`weights` must be numeric with one value per row of `data` (%.0f), not %s.",
                      as.double(n), if (is.numeric(w) && !is.object(w)) {
                        sprintf("%.0f values", as.double(length(w)))
                      } else class(w)[1L]),
              call = call, class = "hnm_error_argument")
  }
  w <- as.double(w)
  # The common case, no NA and no bad weight, by two scans without a vector per row.
  if (!anyNA(w) && (length(w) == 0L || (min(w) >= 0 && max(w) < Inf))) return(w)
  bad <- which((!is.na(w) & w < 0) | is.infinite(w) | is.nan(w))
  if (length(bad) > 0L) {
    hnm_abort(sprintf(paste("`weights` must be finite and >= 0 (prior weights, Var(e_i) =",
                            "sigma^2 / w_i), but row %.0f of `data` is %s."), as.double(bad[1L]),
                      format(w[bad[1L]])), call = call, class = "hnm_error_argument")
  }
  w
}

# Weights are fitted by the general path, by ML or REML.
check_weighted_model <- function(weights, parsed, method, call) {
  if (is.null(weights)) return(invisible())
  if (method == "ANOVA") {
    hnm_abort(paste("the ANOVA method of moments does not take `weights`; use method = \"ML\" or",
                    "\"REML\"."), call = call, class = "hnm_error_unsupported")
  }
}

# The design a weighted model is fitted from (see the top of this file), and what the fit
# keeps: `rows`, the design with the data's own variables plus "(weights)" (1, NA where the
# weight is 0) in place of the intercept, and `pass`, the same with every variable scaled by
# sqrt(w). `index`: the rows of `data` the design's rows are (fit_rows()), to name a row.
weighted_design <- function(design, weights, index, call) {
  if (weights_variable %in% design$names) {
    hnm_abort(sprintf("a model variable is named `%s`, the name hnm gives the weights' column.",
                      weights_variable), call = call, class = "hnm_error_argument")
  }
  # The rows the pass will use, but for their weights (TRUE for all when nothing is NA).
  complete <- TRUE
  if (anyNA(design$codes) || any(vapply(design$variables, anyNA, TRUE))) {
    complete <- !is.na(design$codes)
    for (v in design$variables) {
      complete <- complete & if (is.matrix(v)) stats::complete.cases(v) else !is.na(v)
    }
  }
  missing <- if (anyNA(weights)) which(complete & is.na(weights)) else integer()
  if (length(missing) > 0L) {
    row <- if (is.null(index)) missing[1L] else index[missing[1L]]
    hnm_abort(sprintf("`weights` must not be NA at the rows the fit uses, but row %.0f of `data` is.",
                      as.double(row)), call = call, class = "hnm_error_argument")
  }
  # Rows of weight 0 (FALSE for all when there are none: min() scans without a vector per row).
  zero <- FALSE
  if (isTRUE(suppressWarnings(min(weights, na.rm = TRUE)) == 0)) zero <- !is.na(weights) & weights == 0
  ones <- rep(1, length(weights))
  if (!isFALSE(zero)) ones[zero] <- NA_real_
  intercept <- length(design$names) + 1L
  design$variables <- c(design$variables, list(ones))
  design$names <- c(design$names, weights_variable)
  on_intercept <- function(columns) replace(columns, columns == 0L, intercept)
  design$fixed <- on_intercept(design$fixed)
  design$random <- on_intercept(design$random)
  # With several grouping factors, each factor's columns of Z (R/factors.R).
  if (!is.null(design$factor_spec)) {
    design$factor_spec$random <- lapply(design$factor_spec$random, on_intercept)
  }
  design$weights <- weights
  used <- complete & !zero
  if (!any(used)) {
    hnm_abort("`weights` are 0 at every row the fit would use.", call = call,
              class = "hnm_error_argument")
  }
  design$log_weights <- sum(log(if (isTRUE(used)) weights else weights[used]))
  design$zero_weights <- sum(complete & zero)
  list(rows = design, pass = c(list(variables = pass_variables(design)),
                               design[setdiff(names(design), "variables")]))
}

# The design the fit keeps (`rows`) and the one the pass reads (`pass`): the same without
# weights; with them, the rows scaled by sqrt(w) for the pass (weighted_design()).
pass_design <- function(design, weights, index, call) {
  if (is.null(weights)) return(list(rows = design, pass = design))
  weighted_design(design, weights, index, call)
}

# The variables the pass reads: the rows' own, or for a weighted fit each scaled by sqrt(w)
# (a matrix by rows), "(weights)" becoming sqrt(w).
pass_variables <- function(rows) {
  if (is.null(rows$weights)) return(rows$variables)
  root <- sqrt(rows$weights)
  lapply(rows$variables, function(v) v * root)
}

# The fingerprint of the fit's rows: the pass's, unless it read scaled copies of them.
rows_fingerprint <- function(rows, built) {
  if (is.null(rows$weights)) return(built$fingerprint)
  rust_result(rs_lmm_fingerprint(rows$variables, rows$codes, rows$code_offset))
}

# The fingerprint of a weighted fit's prior weights (NULL without weights), which it keeps by
# reference as its variables and the pass scales its rows by (lmm_rows() checks it).
weights_fingerprint <- function(rows) {
  if (is.null(rows$weights)) return(NULL)
  rust_result(rs_lmm_fingerprint(list(rows$weights), rows$codes, rows$code_offset))
}

# -sum(log(w_i)) over the rows used: the weighted criterion (deviance or REML) is the scaled
# model's plus this (0 without weights).
weights_constant <- function(object) -(object$log_weights %||% 0)

# The fit's prior weights of the rows it uses (1 without weights).
used_weights <- function(object, rows = lmm_rows(object, "the weights")) {
  if (is.null(object$rows$weights)) return(rep(1, object$n_obs))
  rows$weights[complete_lmm_rows(object, rows)]
}

#' @rdname hnm_fit-methods
#' @importFrom stats weights
#' @export
weights.hnm_fit <- function(object, type = c("prior", "working"), ...) {
  check_no_dots(list(...), sys.call())
  type <- match.arg(type)
  if (type == "working") {
    hnm_abort("working weights are those of GLMMs (as lme4's); use type = \"prior\".",
              call = sys.call(), class = "hnm_error_argument")
  }
  used_weights(object)
}

# Methods a weighted fit does not support yet: an error naming them.
refuse_weights <- function(object, what, call) {
  if (!is.null(object$rows$weights)) {
    hnm_abort(sprintf("%s of a fit with `weights` is not supported yet.", what), call = call,
              class = "hnm_error_unsupported")
  }
}
