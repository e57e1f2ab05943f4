#!/usr/bin/env bash
# Vendors every crate in src/rust/Cargo.lock into src/rust/vendor.tar.xz for an offline,
# CRAN-style build (src/Makevars unpacks it and points cargo at it through
# src/rust/vendor-config.toml), and writes inst/AUTHORS from the vendored crates' manifests.
# tools/test.sh runs it before R CMD build; run it by hand after changing Cargo.lock.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$HOME/.cargo/bin"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd src/rust && cargo vendor --locked --quiet "$work/vendor" >/dev/null)
# Reproducible archive: fixed order, owner and times, so an unchanged lock gives the same bytes.
tar -C "$work" --sort=name --owner=0 --group=0 --numeric-owner --mtime='2020-01-01' \
  -cf - vendor | xz -9 -T1 > src/rust/vendor.tar.xz
# Records which Cargo.lock the archive matches, so tools/test.sh can tell a stale one.
sha256sum src/rust/Cargo.lock | cut -d' ' -f1 > src/rust/vendor.lock.sha256

# One entry per crate: name, version, licence and authors from its normalised Cargo.toml.
{
  echo "The hnm package compiles the following Rust crates, vendored in src/rust/vendor.tar.xz."
  echo "Their authors and licences, as declared in each crate's Cargo.toml:"
  echo
  for manifest in "$work"/vendor/*/Cargo.toml; do
    awk '
      /^\[/ { in_package = ($0 == "[package]") }
      in_package && /^name = /    { gsub(/"/, "", $3); name = $3 }
      in_package && /^version = / { gsub(/"/, "", $3); version = $3 }
      in_package && /^license = / { sub(/^license = /, ""); gsub(/"/, ""); license = $0 }
      in_package && /^authors = \[/ { collecting = 1; authors = "" }
      collecting {
        line = $0; sub(/^authors = \[/, "", line); gsub(/[]"]/, "", line); gsub(/^ +| +$/, "", line)
        if (line != "") authors = authors (authors == "" ? "" : " ") line
        if ($0 ~ /\]/) collecting = 0
      }
      END {
        sub(/,$/, "", authors)
        printf "%s %s (%s): %s\n", name, version, (license == "" ? "see crate" : license),
               (authors == "" ? "the " name " authors" : authors)
      }' "$manifest"
  done
} > inst/AUTHORS
echo "vendored $(ls "$work/vendor" | wc -l) crates into src/rust/vendor.tar.xz ($(du -h src/rust/vendor.tar.xz | cut -f1)); wrote inst/AUTHORS"
