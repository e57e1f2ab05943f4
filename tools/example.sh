#!/usr/bin/env bash
# The main job on a fresh machine: install hnm and fit a real dataset (lme4's Dyestuff).
# HNM_LIB, when set, is the R library to install into (default: R's usual library). The
# Rust library is built offline from the vendored crates in a cargo target directory under
# ~/.cache/hnm (tools/cache.sh), so a second run does not compile the crates again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
export PATH="$PATH:$HOME/.cargo/bin"
source tools/cache.sh
if [ -n "${HNM_LIB:-}" ]; then mkdir -p "$HNM_LIB"; export R_LIBS="$HNM_LIB${R_LIBS:+:$R_LIBS}"; fi
echo "example.sh: installing hnm; the first build compiles the Rust library and its ~90 crates" \
  "(about 5 minutes on 2 cores), later builds reuse them from $hnm_target_dir"
started=$SECONDS
HNM_TARGET_DIR="$hnm_target_dir" HNM_CARGO_HOME="$(hnm_offline_cargo_home)" R CMD INSTALL ${HNM_LIB:+-l "$HNM_LIB"} .
echo "example.sh: installed in $((SECONDS - started)) s; fitting Dyestuff"
Rscript -e 'library(hnm); print(summary(hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff)))'
