#!/usr/bin/env bash
# Installs what hnm needs on a fresh Debian 12 machine that has Rust: R, the R packages the
# tests and vignette use, and pandoc. Idempotent: installs only what is missing.
set -euo pipefail
packages=(r-base-dev r-cran-lme4 r-cran-nlme r-cran-testthat r-cran-knitr r-cran-rmarkdown
          r-cran-roxygen2 r-cran-numderiv r-cran-mlmrev r-cran-broom pandoc qpdf devscripts
          r-cran-dbi r-cran-rsqlite r-cran-dbplyr r-cran-dplyr r-cran-rpostgresql postgresql
          r-cran-bit64)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || { echo "hnm needs Rust (cargo, rustc): see https://rustup.rs" >&2; exit 1; }
echo "setup: R $(Rscript -e 'cat(format(getRversion()))'), $(cargo --version)"
