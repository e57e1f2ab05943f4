#!/usr/bin/env bash
# Regenerates R/extendr-wrappers.R (from the Rust module metadata, as rextendr::document()
# does) and then NAMESPACE and man/ with roxygen2. Run after changing an #[extendr]
# signature or a roxygen comment. Both cargo calls build offline from the vendored crates
# unpacked once by tools/cache.sh, with the same profile and RUSTFLAGS as src/Makevars and
# the same cargo target directory (outside the source tree, kept between runs), so nothing
# compiles twice. HNM_LIB, when set, is the R library to
# install into (and is put first on R's library path), so parallel work trees do not share an
# installed copy.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$HOME/.cargo/bin"
source tools/cache.sh
echo "document.sh: building the wrapper generator (the first run compiles the crates: several minutes)"
cargo_home=$(hnm_offline_cargo_home)
(cd src/rust && CARGO_HOME="$cargo_home" RUSTFLAGS="${RUSTFLAGS:-} --print=native-static-libs" \
  cargo run --offline --release --bin document --target-dir "$hnm_target_dir")
if [ -n "${HNM_LIB:-}" ]; then mkdir -p "$HNM_LIB"; export R_LIBS="$HNM_LIB${R_LIBS:+:$R_LIBS}"; fi
echo "document.sh: installing hnm"
HNM_TARGET_DIR="$hnm_target_dir" HNM_CARGO_HOME="$cargo_home" R CMD INSTALL ${HNM_LIB:+-l "$HNM_LIB"} --no-test-load .
Rscript -e 'roxygen2::roxygenise(load_code = roxygen2::load_installed)'
