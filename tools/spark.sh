#!/usr/bin/env bash
# Spark in local mode for hnm's Spark test (tests/testthat/test-spark.R): pyspark from PyPI in
# a virtualenv under ${XDG_CACHE_HOME:-~/.cache}/hnm/spark, run by Java 17 from Debian.
#   tools/spark.sh install   installs what is missing (Debian's openjdk-17-jre-headless and
#                            python3-venv, then pyspark into the virtualenv: about 320 MB the
#                            first time) and prints `export HNM_SPARK_PYTHON=...`:
#                            eval "$(bash tools/spark.sh install)"
# Idempotent: once installed it needs no network. Progress goes to stderr, so stdout holds
# only the export line. The test finds the virtualenv there by itself; HNM_SPARK_PYTHON names
# another Python that has pyspark.
set -euo pipefail
pyspark_version=3.5.8
home="${XDG_CACHE_HOME:-$HOME/.cache}/hnm/spark"
python="$home/venv/bin/python"

say() { echo "spark.sh: $*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
has_pyspark() {
  [ -x "$python" ] && "$python" -c "import pyspark, sys; sys.exit(pyspark.__version__ != '$pyspark_version')" 2>/dev/null
}

case "${1:-}" in
  install)
    missing=()
    for p in openjdk-17-jre-headless python3-venv; do installed "$p" || missing+=("$p"); done
    if [ "${#missing[@]}" -gt 0 ]; then
      say "installing from Debian: ${missing[*]}"
      as_root apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    fi
    if ! has_pyspark; then
      say "installing pyspark $pyspark_version from PyPI into $home/venv (about 320 MB, a few minutes)"
      mkdir -p "$home"
      [ -x "$python" ] || /usr/bin/python3 -m venv "$home/venv" >&2
      "$python" -m pip install --quiet --disable-pip-version-check "pyspark==$pyspark_version" >&2
      has_pyspark || { say "pyspark $pyspark_version did not install"; exit 1; }
    fi
    echo "export HNM_SPARK_PYTHON=$python"
    ;;
  *)
    echo "usage: tools/spark.sh install" >&2
    exit 2
    ;;
esac
