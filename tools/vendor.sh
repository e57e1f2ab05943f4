#!/usr/bin/env bash
# Vendors every crate in src/rust/Cargo.lock into src/rust/vendor.tar.xz for an offline,
# CRAN-style build (src/Makevars unpacks it and points cargo at it through
# src/rust/vendor-config.toml), and writes inst/AUTHORS from the vendored crates' manifests.
# tools/test.sh runs it before R CMD build when Cargo.lock changed; run it by hand after
# changing Cargo.lock.
#
# To keep the R tarball under CRAN's 5 MB, each crate loses what no build of it reads: its
# top-level tests/, benches/, examples/, docs/, doc/, test_data/, ci/ and .github/ folders
# (unless its own code include!s a file from one of them), the [[test]]/[[bench]]/[[example]]
# targets of its Cargo.toml that pointed there, and Cargo.toml.orig. Sources, build scripts
# and every target-specific dependency stay, so macOS and Windows builds read what they
# always read. Each crate's .cargo-checksum.json is rewritten for the files that remain (the
# package checksum, which Cargo.lock pins, is kept).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$HOME/.cargo/bin"
work=$(mktemp -d "${TMPDIR:-/tmp}/hnm-vendor.XXXXXX")
trap 'rm -rf "$work"' EXIT
unused_dirs=(tests benches examples docs doc test_data ci .github)

echo "vendor.sh: cargo vendor (downloads the crates in Cargo.lock unless cached)"
(cd src/rust && cargo vendor --locked "$work/vendor" >/dev/null)
size_before=$(du -sk "$work/vendor" | cut -f1)

# Drops the [[test]]/[[bench]]/[[example]] tables whose source file (given by `path`, or the
# default <dir>/<name>.rs) no longer exists; every other line is kept as it is.
strip_missing_targets() {
  awk -v crate="$1" '
    function exists(file) { return system("test -e \"" crate "/" file "\"") == 0 }
    function flush() {
      if (kind != "") {
        file = path != "" ? path : default_dir[kind] "/" name ".rs"
        if (exists(file)) printf "%s", table
      }
      kind = ""; table = ""; path = ""; name = ""
    }
    BEGIN { default_dir["test"] = "tests"; default_dir["bench"] = "benches"
            default_dir["example"] = "examples" }
    /^\[/ { flush() }
    /^\[\[(test|bench|example)\]\]$/ { kind = substr($0, 3, length($0) - 4) }
    kind != "" {
      table = table $0 "\n"
      if ($1 == "path") { path = $3; gsub(/"/, "", path) }
      if ($1 == "name") { name = $3; gsub(/"/, "", name) }
      next
    }
    { print }
    END { flush() }' "$1/Cargo.toml"
}

for crate in "$work"/vendor/*/; do
  crate=${crate%/}
  excluded=()
  for dir in "${unused_dirs[@]}"; do excluded+=(--exclude-dir="$dir"); done
  for dir in "${unused_dirs[@]}"; do
    [ -d "$crate/$dir" ] || continue
    # Kept when the crate's code includes a file from it (zerocopy's docs include benches/).
    grep -rqsE "(include(_str|_bytes)?!|#\[path).*[\"/]$dir/" "$crate" "${excluded[@]}" \
      --include='*.rs' && continue
    rm -rf "${crate:?}/$dir"
  done
  rm -f "$crate/Cargo.toml.orig"
  strip_missing_targets "$crate" > "$work/Cargo.toml" && mv "$work/Cargo.toml" "$crate/Cargo.toml"
  package=$(grep -o '"package":[^}]*' "$crate/.cargo-checksum.json")
  (cd "$crate" && find . -type f ! -name .cargo-checksum.json -print0 | LC_ALL=C sort -z |
     xargs -0 sha256sum |
     awk -v package="$package" '
       { file = substr($0, 67); sub(/^\.\//, "", file); gsub(/\\/, "\\\\", file); gsub(/"/, "\\\"", file)
         files = files (NR > 1 ? "," : "") "\"" file "\":\"" $1 "\"" }
       END { printf "{\"files\":{%s},%s}", files, package }' > "$work/checksum.json")
  mv "$work/checksum.json" "$crate/.cargo-checksum.json"
done
size_after=$(du -sk "$work/vendor" | cut -f1)

echo "vendor.sh: compressing (xz -9: under a minute)"
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
echo "vendor.sh: vendored $(ls "$work/vendor" | wc -l) crates ($((size_before / 1024)) MB unpacked," \
  "$((size_after / 1024)) MB after trimming) into src/rust/vendor.tar.xz" \
  "($(du -k src/rust/vendor.tar.xz | cut -f1) kB); wrote inst/AUTHORS"
