#!/usr/bin/env bash
# The main job on a fresh machine: install hnm and fit a real dataset (lme4's Dyestuff).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
export PATH="$PATH:$HOME/.cargo/bin"
R CMD INSTALL . >/dev/null 2>&1 || R CMD INSTALL .
Rscript -e 'library(hnm); print(summary(hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff)))'
