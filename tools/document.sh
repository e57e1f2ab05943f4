#!/usr/bin/env bash
# Regenerates R/extendr-wrappers.R (from the Rust module metadata, as rextendr::document()
# does) and then NAMESPACE and man/ with roxygen2. Run after changing an #[extendr]
# signature or a roxygen comment. Uses the same profile and RUSTFLAGS as src/Makevars so
# nothing compiles twice. HNM_LIB, when set, is the R library to install into (and is put
# first on R's library path), so parallel work trees do not share an installed copy.
set -euo pipefail
cd "$(dirname "$0")/.."
(cd src/rust && RUSTFLAGS="${RUSTFLAGS:-} --print=native-static-libs" \
  cargo run --quiet --release --bin document --target-dir target)
if [ -n "${HNM_LIB:-}" ]; then mkdir -p "$HNM_LIB"; export R_LIBS="$HNM_LIB${R_LIBS:+:$R_LIBS}"; fi
R CMD INSTALL ${HNM_LIB:+-l "$HNM_LIB"} --no-test-load . >/dev/null
Rscript -e 'roxygen2::roxygenise(load_code = roxygen2::load_installed)'
