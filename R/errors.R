# Conditions raised by hnm: every error has class `hnm_error`, so callers can catch them.

hnm_abort <- function(message, call = NULL, class = character()) {
  stop(structure(
    class = c(class, "hnm_error", "error", "condition"),
    list(message = message, call = call)
  ))
}

# The glue crate returns list(hnm_core_error = message) instead of raising inside Rust.
rust_result <- function(x, call = NULL) {
  if (is.list(x) && identical(names(x), "hnm_core_error")) {
    hnm_abort(x[["hnm_core_error"]], call = call)
  }
  x
}
