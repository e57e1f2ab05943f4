#!/usr/bin/env bash
# Regenerates R/extendr-wrappers.R (from the Rust module metadata, as rextendr::document()
# does) and then NAMESPACE and man/ with roxygen2. Run after changing an #[extendr]
# signature or a roxygen comment. Uses the same profile and RUSTFLAGS as src/Makevars so
# nothing compiles twice.
set -euo pipefail
cd "$(dirname "$0")/.."
(cd src/rust && RUSTFLAGS="${RUSTFLAGS:-} --print=native-static-libs" \
  cargo run --quiet --release --bin document --target-dir target)
R CMD INSTALL --no-test-load . >/dev/null
Rscript -e 'roxygen2::roxygenise(load_code = roxygen2::load_installed)'
