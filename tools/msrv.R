# Checks that cargo and rustc are on the PATH and that rustc meets the minimum version
# named in DESCRIPTION's SystemRequirements; stops with install instructions otherwise.
desc <- read.dcf("DESCRIPTION")
sysreqs <- desc[, "SystemRequirements"]
if (!grepl("cargo", sysreqs, ignore.case = TRUE) || !grepl("rustc", sysreqs, ignore.case = TRUE)) {
  stop("DESCRIPTION must declare `SystemRequirements: Cargo (Rust's package manager), rustc`.")
}
parts <- strsplit(sysreqs, ", ")[[1]]
rustc_req <- parts[grepl("rustc", parts)]

how_to_install <- c(
  "Install Rust with rustup (https://www.rust-lang.org/tools/install):",
  "  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh",
  "or from your OS package manager:",
  "  Debian/Ubuntu: apt-get install cargo rustc",
  "  Fedora/CentOS: dnf install cargo",
  "  macOS:         brew install rust"
)

# rustup installs into ~/.cargo/bin, which a non-login shell may not have on its PATH.
Sys.setenv(PATH = paste(Sys.getenv("PATH"), file.path(path.expand("~"), ".cargo", "bin"), sep = .Platform$path.sep))

tool_version <- function(tool) {
  out <- tryCatch(suppressWarnings(system2(tool, "--version", stdout = TRUE, stderr = TRUE)),
                  error = function(e) NULL)
  if (is.null(out) || !is.null(attr(out, "status"))) {
    stop(paste(c(sprintf("---------- [%s NOT FOUND] ----------", toupper(tool)),
                 sprintf("hnm is compiled from Rust and needs '%s' on the PATH.", tool),
                 how_to_install), collapse = "\n"), call. = FALSE)
  }
  out[1]
}
rustc_version <- tool_version("rustc")
cargo_version <- tool_version("cargo")

extract_semver <- function(ver) {
  if (grepl("\\d+\\.\\d+(\\.\\d+)?", ver)) sub(".*?(\\d+\\.\\d+(\\.\\d+)?).*", "\\1", ver) else NA
}
msrv <- extract_semver(rustc_req)
current <- extract_semver(rustc_version)
if (!is.na(msrv) && utils::compareVersion(msrv, current) == 1) {
  stop(sprintf("hnm needs rustc >= %s but found %s.\n%s", msrv, current,
               paste(how_to_install, collapse = "\n")), call. = FALSE)
}
message(sprintf("Using %s\nUsing %s", cargo_version, rustc_version))
