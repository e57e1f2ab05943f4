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
if (is_debug) message("Creating DEBUG build.")
if (is_offline) message("Building offline from the vendored crates (src/rust/vendor.tar.xz).")

replacements <- c(
  "@CRAN_FLAGS@" = if (is_offline) "-j 2 --offline" else "",
  "@OFFLINE@" = if (is_offline) "1" else "0",
  "@PROFILE@" = if (is_debug) "" else "--release",
  "@CLEAN_TARGET@" = if (is_debug) "" else "$(TARGET_DIR)",
  "@LIBDIR@" = if (is_debug) "debug" else "release",
  # Hide the static library's symbols, garbage-collect unreferenced code and strip debug
  # information: the installed library shrinks from about 10 MB to under 4 MB.
  "@LINK_FLAGS@" = if (Sys.info()[["sysname"]] == "Linux" && !is_debug) {
    "-Wl,--gc-sections -Wl,--exclude-libs,ALL -Wl,--strip-debug"
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
