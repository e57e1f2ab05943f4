#!/usr/bin/env bash
# Runs every test: cargo tests of the Rust core, then R CMD build and R CMD check of the
# package (testthat and the vignette's checks against lme4 run inside the check), then a
# one-line testthat tally. Fails on any test failure and on any R CMD check ERROR or WARNING.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$HOME/.cargo/bin"
work="${HNM_CHECK_DIR:-$(mktemp -d)}"

echo "== cargo test (hnm-core)"
cargo test --manifest-path src/rust/Cargo.toml -p hnm-core --release 2>&1 | tee "$work/cargo-test.log"

echo "== R CMD build"
R CMD build --no-resave-data . | tee "$work/build.log"
tarball=$(ls -t hnm_*.tar.gz | head -n 1)
mv "$tarball" "$work/"

echo "== R CMD check"
(cd "$work" && _R_CHECK_FORCE_SUGGESTS_=false R CMD check --no-manual "$tarball") || {
  cat "$work"/hnm.Rcheck/00check.log; cat "$work"/hnm.Rcheck/tests/testthat.Rout.fail 2>/dev/null || true; exit 1; }
status=$(grep '^Status:' "$work/hnm.Rcheck/00check.log")
echo "R CMD check $status"
if echo "$status" | grep -q -E 'ERROR|WARNING'; then
  cat "$work/hnm.Rcheck/00check.log"
  exit 1
fi

echo "== testthat tally"
(cd tests && HNM_LIB="$work/hnm.Rcheck" Rscript -e '
  library(hnm, lib.loc = Sys.getenv("HNM_LIB"))
  results <- as.data.frame(testthat::test_dir("testthat", package = "hnm", load_package = "installed",
                                              reporter = "silent", stop_on_failure = FALSE))
  failed <- sum(results$failed) + sum(results$error)
  cat(sprintf("testthat: %d passed, %d failed\n", sum(results$passed), failed))
  quit(status = as.integer(failed > 0))' ) 2>&1
