#!/usr/bin/env bash
# Installs what hnm needs on a fresh Debian 12 machine that has Rust: R, every R package the
# tests, vignettes, examples and the reference site use (DESCRIPTION's Suggests), pandoc,
# PostgreSQL for the database tests, Java and Python's venv for the Spark test (pyspark itself:
# tools/spark.sh) and Chromium for the site check (tools/site.sh).
# Idempotent: installs only what is missing (the first run downloads about 500 MB: several
# minutes).
set -euo pipefail
packages=(r-base-dev r-cran-lme4 r-cran-nlme r-cran-testthat r-cran-knitr r-cran-rmarkdown
          r-cran-roxygen2 r-cran-numderiv r-cran-mlmrev r-cran-broom r-cran-generics
          r-cran-broom.mixed r-cran-lmertest r-cran-pbkrtest r-cran-performance r-cran-insight
          r-cran-parameters
          r-cran-emmeans r-cran-data.table r-cran-bit64 r-cran-pkgdown r-cran-xml2
          pandoc qpdf devscripts xz-utils chromium
          r-cran-dbi r-cran-rsqlite r-cran-dbplyr r-cran-dplyr r-cran-rpostgresql postgresql
          openjdk-17-jre-headless python3-venv)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  echo "setup: installing ${#missing[@]} Debian packages: ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || { echo "hnm needs Rust (cargo, rustc): see https://rustup.rs" >&2; exit 1; }
echo "setup: R $(Rscript -e 'cat(format(getRversion()))'), $(cargo --version)"
