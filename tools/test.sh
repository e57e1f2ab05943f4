#!/usr/bin/env bash
# Runs every test: cargo fmt --check, the cargo tests of the Rust core and cargo clippy -D
# warnings of both crates (offline, from the vendored crates, as R CMD INSTALL builds), then
# R CMD build (with the vendored crates and the built vignettes) and R CMD check --as-cran
# of the tarball, which installs it offline (testthat and the
# vignettes' checks against lme4 run inside the check), then a one-line testthat tally.
# Fails on any test failure, on any R CMD check ERROR or WARNING and on a tarball over 5 MB.
# Works in a temporary directory that is removed at the end (set HNM_CHECK_DIR to keep the
# logs and the check in a directory of your own). The cargo tests reuse a target directory
# under ~/.cache/hnm (tools/cache.sh), so only the first run compiles the crates.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$HOME/.cargo/bin"
source tools/cache.sh
if [ -n "${HNM_CHECK_DIR:-}" ]; then
  work="$HNM_CHECK_DIR"
  mkdir -p "$work"
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/hnm-test.XXXXXX")
  trap 'rm -rf "$work"' EXIT
fi
# R's and the tests' temporary files go there too, so nothing is left behind.
mkdir -p "$work/tmp"
export TMPDIR="$work/tmp"
started=$SECONDS
phase() { echo "== $1 ($(( (SECONDS - started) / 60 )) min elapsed)"; }

phase "vendored crates"
if [ "$(sha256sum src/rust/Cargo.lock | cut -d' ' -f1)" != "$(cat src/rust/vendor.lock.sha256 2>/dev/null)" ]; then
  echo "src/rust/vendor.tar.xz does not match Cargo.lock: re-vendoring (commit the result)."
  bash tools/vendor.sh
fi

phase "cargo fmt --check (both crates, src/rust/rustfmt.toml)"
for tool in fmt clippy; do
  cargo "$tool" --version >/dev/null 2>&1 ||
    { echo "cargo $tool is missing: install it with 'rustup component add ${tool/fmt/rustfmt}'"; exit 1; }
done
cargo fmt --manifest-path src/rust/Cargo.toml --all --check

phase "cargo test (hnm-core), offline from src/rust/vendor.tar.xz: first run about 5 minutes, then seconds"
# The same RUSTFLAGS as src/Makevars, so the shared target directory is not rebuilt. The
# property tests draw the same cases on every machine and run (proptest's seed is random by
# default, so a run could fail where the next passes); PROPTEST_RNG_SEED=<n> explores others.
cargo_home=$(hnm_offline_cargo_home)
rustflags="${RUSTFLAGS:-} --print=native-static-libs"
CARGO_HOME="$cargo_home" RUSTFLAGS="$rustflags" PROPTEST_RNG_SEED="${PROPTEST_RNG_SEED:-20261206}" \
  cargo test --offline --locked --manifest-path src/rust/Cargo.toml -p hnm-core --release \
  --target-dir "$hnm_target_dir" 2>&1 | tee "$work/cargo-test.log"

phase "cargo clippy -D warnings (both crates, every target; first run about 2 minutes)"
# The cargo test's CARGO_HOME, profile and target directory, so a second run checks nothing
# again; its RUSTFLAGS without --print=native-static-libs, with which clippy-driver would run
# plain rustc (no lints, and -D warnings ignored).
CARGO_HOME="$cargo_home" RUSTFLAGS="${RUSTFLAGS:-}" \
  cargo clippy --offline --locked --manifest-path src/rust/Cargo.toml --workspace --all-targets --release \
  --target-dir "$hnm_target_dir" -- -D warnings 2>&1 | tee "$work/cargo-clippy.log"

phase "R CMD build (compiles hnm offline to build both vignettes: about 5 minutes)"
env -u HNM_TARGET_DIR R CMD build --no-resave-data . | tee "$work/build.log"
tarball=$(ls -t hnm_*.tar.gz | head -n 1)
mv "$tarball" "$work/"
tar -tzf "$work/$tarball" > "$work/tarball-files.txt"
grep -q '^hnm/inst/doc/hnm.html$' "$work/tarball-files.txt" || { echo "the tarball lacks the built vignette"; exit 1; }
if grep -q -E '^hnm/src/(rust/)?(target|vendor)/' "$work/tarball-files.txt"; then
  echo "the tarball holds a cargo target or unpacked vendor directory"; exit 1
fi
size=$(stat -c %s "$work/$tarball")
echo "tarball $tarball: $size bytes ($(( size / 1024 )) kB; CRAN's limit is 5 MB)"
[ "$size" -le 5000000 ] || { echo "the tarball is over 5 MB"; exit 1; }

phase "R CMD check --as-cran (compiles the Rust library offline from the tarball and runs every test: about 9 minutes)"
(cd "$work" && env -u NOT_CRAN -u HNM_TARGET_DIR _R_CHECK_FORCE_SUGGESTS_=false \
   _R_CHECK_CRAN_INCOMING_REMOTE_=false _R_CHECK_SYSTEM_CLOCK_=FALSE \
   R CMD check --as-cran --no-manual "$tarball") || {
  cat "$work"/hnm.Rcheck/00check.log; cat "$work"/hnm.Rcheck/tests/testthat.Rout.fail 2>/dev/null || true; exit 1; }
status=$(grep '^Status:' "$work/hnm.Rcheck/00check.log")
echo "R CMD check $status"
grep -q -- '--offline' "$work/hnm.Rcheck/00install.out" || { echo "the tarball was not built offline"; exit 1; }
if echo "$status" | grep -q -E 'ERROR|WARNING'; then
  cat "$work/hnm.Rcheck/00check.log"
  exit 1
fi

phase "testthat tally"
# The check library first on R's path, as inside R CMD check, so child R processes of the
# tests load the hnm just checked (and never an hnm installed elsewhere).
(cd tests && HNM_LIB="$work/hnm.Rcheck" R_LIBS="$work/hnm.Rcheck${R_LIBS:+:$R_LIBS}" Rscript -e '
  library(hnm, lib.loc = Sys.getenv("HNM_LIB"))
  results <- as.data.frame(testthat::test_dir("testthat", package = "hnm", load_package = "installed",
                                              reporter = "silent", stop_on_failure = FALSE))
  failed <- sum(results$failed) + sum(results$error)
  bad <- results[results$failed > 0 | results$error, c("file", "test")]
  if (nrow(bad)) cat(sprintf("failed: %s: %s\n", bad$file, bad$test), sep = "")
  cat(sprintf("testthat: %d passed, %d failed\n", sum(results$passed), failed))
  quit(status = as.integer(failed > 0))' ) 2>&1
phase "done"
