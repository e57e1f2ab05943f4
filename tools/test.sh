#!/usr/bin/env bash
# Runs every test: cargo tests of the Rust core, then R CMD build (with the vendored crates
# and the built vignettes) and R CMD check --as-cran of the tarball, which installs it
# offline (testthat and the vignettes' checks against lme4 run inside the check), then a
# one-line testthat tally. Fails on any test failure and on any R CMD check ERROR or WARNING.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$HOME/.cargo/bin"
work="${HNM_CHECK_DIR:-$(mktemp -d)}"

echo "== cargo test (hnm-core)"
cargo test --manifest-path src/rust/Cargo.toml -p hnm-core --release 2>&1 | tee "$work/cargo-test.log"

echo "== vendored crates"
if [ "$(sha256sum src/rust/Cargo.lock | cut -d' ' -f1)" != "$(cat src/rust/vendor.lock.sha256 2>/dev/null)" ]; then
  echo "src/rust/vendor.tar.xz does not match Cargo.lock: re-vendoring (commit the result)."
  bash tools/vendor.sh
fi

echo "== R CMD build"
R CMD build --no-resave-data . | tee "$work/build.log"
tarball=$(ls -t hnm_*.tar.gz | head -n 1)
mv "$tarball" "$work/"
tar -tzf "$work/$tarball" > "$work/tarball-files.txt"
grep -q '^hnm/inst/doc/hnm.html$' "$work/tarball-files.txt" || { echo "the tarball lacks the built vignette"; exit 1; }

echo "== R CMD check --as-cran (offline install from the tarball)"
(cd "$work" && env -u NOT_CRAN _R_CHECK_FORCE_SUGGESTS_=false _R_CHECK_CRAN_INCOMING_REMOTE_=false \
   _R_CHECK_SYSTEM_CLOCK_=FALSE \
   R CMD check --as-cran --no-manual "$tarball") || {
  cat "$work"/hnm.Rcheck/00check.log; cat "$work"/hnm.Rcheck/tests/testthat.Rout.fail 2>/dev/null || true; exit 1; }
status=$(grep '^Status:' "$work/hnm.Rcheck/00check.log")
echo "R CMD check $status"
grep -q -- '--offline' "$work/hnm.Rcheck/00install.out" || { echo "the tarball was not built offline"; exit 1; }
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
