# Conditions raised by hnm: every error has class `hnm_error` and every warning class
# `hnm_warning`, so callers can catch them; and the argument checks shared by the methods.

hnm_abort <- function(message, call = NULL, class = character()) {
  stop(structure(
    class = c(class, "hnm_error", "error", "condition"),
    list(message = message, call = call)
  ))
}

# A warning of class `hnm_warning`, the counterpart of hnm_abort().
hnm_warn <- function(message, call = NULL, class = character()) {
  warning(structure(
    class = c(class, "hnm_warning", "warning", "condition"),
    list(message = message, call = call)
  ))
}

# A whole number of at least `min` (simulations, profile steps).
check_count <- function(x, name, min, call) {
  if (!is.numeric(x) || length(x) != 1L || !isTRUE(x >= min && x == round(x))) {
    hnm_abort(sprintf("`%s` must be a whole number of at least %d.", name, min), call = call)
  }
}

# The glue crate returns list(hnm_core_error = message) instead of raising inside Rust.
rust_result <- function(x, call = NULL) {
  if (is.list(x) && identical(names(x), "hnm_core_error")) {
    hnm_abort(x[["hnm_core_error"]], call = call)
  }
  x
}
