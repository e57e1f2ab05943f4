# Sourced by the development scripts (example.sh, test.sh, document.sh, site.sh in tools/) from
# the root of a checkout: a cargo cache outside the source tree, one per checkout, so a second
# run reuses the compiled crates. R CMD build, check and a CRAN install never read it.
#   hnm_target_dir          the cargo target directory (not exported: give it to R CMD INSTALL
#                           as HNM_TARGET_DIR, which tools/config.R reads, only where wanted)
#   hnm_offline_cargo_home  prints a CARGO_HOME whose only source is the vendored crates,
#                           unpacked once per src/rust/vendor.tar.xz, for cargo itself and for
#                           R CMD INSTALL as HNM_CARGO_HOME (tools/config.R), so every build
#                           of a checkout reads the crates from one path and reuses them
checkout=$(pwd -P)
hnm_cache="${XDG_CACHE_HOME:-$HOME/.cache}/hnm/$(basename "$checkout")-$(printf %s "$checkout" | sha256sum | cut -c1-8)"
hnm_target_dir="$hnm_cache/target"

hnm_offline_cargo_home() {
  local stamp vendor_sum
  vendor_sum=$(sha256sum src/rust/vendor.tar.xz | cut -d' ' -f1)
  stamp="$hnm_cache/vendor.sha256"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$vendor_sum" ]; then
    echo "unpacking the vendored crates into $hnm_cache/vendor" >&2
    rm -rf "$hnm_cache/vendor" "$hnm_cache/cargo-home"
    mkdir -p "$hnm_cache/cargo-home"
    tar -C "$hnm_cache" -xf src/rust/vendor.tar.xz
    sed "s|^directory = .*|directory = \"$hnm_cache/vendor\"|" src/rust/vendor-config.toml \
      > "$hnm_cache/cargo-home/config.toml"
    echo "$vendor_sum" > "$stamp"
  fi
  echo "$hnm_cache/cargo-home"
}
