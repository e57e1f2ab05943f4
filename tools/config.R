# Writes src/Makevars from src/Makevars.in (rextendr 0.5.0 layout).
# DEBUG=1 gives a fast debug build; NOT_CRAN unset plus src/rust/vendor.tar.xz gives an
# offline build with the vendored crates.
source("tools/msrv.R")

is_debug <- Sys.getenv("DEBUG") != ""
is_not_cran <- Sys.getenv("NOT_CRAN") != "" || is_debug
vendor_exists <- file.exists("src/rust/vendor.tar.xz")
# Offline (CRAN) builds use only the vendored crates, with an empty CARGO_HOME; development
# builds (NOT_CRAN or DEBUG set) use the normal registry cache, so their target directory is
# not rebuilt from a second copy of the sources.
is_offline <- !is_not_cran && vendor_exists
# The development scripts (tools/cache.sh) set HNM_TARGET_DIR to a cargo target directory
# outside the source tree that is kept between builds; otherwise (R CMD check, CRAN) cargo
# builds in src/rust/target, which is removed after a release build.
target_dir <- Sys.getenv("HNM_TARGET_DIR")
keep_target <- nzchar(target_dir)
# With it, HNM_CARGO_HOME may name a CARGO_HOME of vendored crates unpacked once
# (tools/cache.sh), so the crates' sources keep one path and their builds are reused.
vendored_cargo_home <- if (keep_target && is_offline) Sys.getenv("HNM_CARGO_HOME") else ""
if (is_debug) message("Creating DEBUG build.")
if (keep_target) message("Using the cargo target directory ", target_dir, " (kept between builds).")
if (is_offline) message("Building offline from the vendored crates (src/rust/vendor.tar.xz).")

replacements <- c(
  "@CRAN_FLAGS@" = if (is_offline) "-j 2 --offline" else "",
  "@OFFLINE@" = if (is_offline) "1" else "0",
  "@PROFILE@" = if (is_debug) "" else "--release",
  "@TARGET_DIR@" = if (keep_target) target_dir else "./rust/target",
  "@CLEAN_TARGET@" = if (is_debug || keep_target) "" else "$(TARGET_DIR)",
  "@VENDORED_CARGO_HOME@" = vendored_cargo_home,
  "@LIBDIR@" = if (is_debug) "debug" else "release",
  # Hide the static library's symbols, garbage-collect unreferenced code, strip debug
  # information and discard the local symbols (the hidden Rust ones; R CMD check's nm still
  # sees the global and undefined ones it inspects): the installed library shrinks from about
  # 10 MB to 3.5 MB. HNM_SYMBOLS=1 keeps the local symbols, for a profiler (perf).
  "@LINK_FLAGS@" = if (Sys.info()[["sysname"]] == "Linux" && !is_debug) {
    paste("-Wl,--gc-sections -Wl,--exclude-libs,ALL -Wl,--strip-debug",
          if (!nzchar(Sys.getenv("HNM_SYMBOLS"))) "-Wl,--discard-all")
  } else {
    ""
  }
)
txt <- readLines("src/Makevars.in")
for (key in names(replacements)) txt <- gsub(key, replacements[[key]], txt, fixed = TRUE)

out <- "src/Makevars"
if (file.exists(out)) invisible(file.remove(out))
con <- file(out, open = "wb")
writeLines(txt, con, sep = "\n")
close(con)
message("`tools/config.R` has finished.")
