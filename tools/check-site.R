# Checks a pkgdown site built by tools/site.sh: Rscript tools/check-site.R SITE_DIR
# - every internal href/src of every HTML file points at a file that exists (and, for
#   "page.html#id", at an element with that id);
# - no example output on a reference page and no vignette output holds an R error;
# - every help page of the package has its reference page, and the plotting pages show
#   their plots (the fit's diagnostic plot, the caterpillar plot of the BLUPs, the profile).
# Stops with the list of problems; prints a one-line summary otherwise.
site <- normalizePath(commandArgs(TRUE)[1], mustWork = TRUE)
pages <- list.files(site, pattern = "\\.html$", recursive = TRUE, full.names = TRUE)
problems <- character()
problem <- function(...) problems <<- c(problems, paste0(...))
parsed <- lapply(setNames(pages, pages), xml2::read_html)

ids <- function(page) {
  if (is.null(parsed[[page]])) return(character())
  xml2::xml_attr(xml2::xml_find_all(parsed[[page]], "//*[@id]"), "id")
}
external <- "^([a-zA-Z][a-zA-Z0-9+.-]*:|//)"  # http:, https:, mailto:, data:, javascript:, //host
links <- 0L
for (page in pages) {
  nodes <- xml2::xml_find_all(parsed[[page]], "//*[@href or @src]")
  targets <- c(xml2::xml_attr(nodes, "href"), xml2::xml_attr(nodes, "src"))
  targets <- targets[!is.na(targets) & nzchar(targets) & !grepl(external, targets)]
  for (target in targets) {
    links <- links + 1L
    pieces <- strsplit(sub("\\?.*$", "", target), "#", fixed = TRUE)[[1L]]
    path <- if (length(pieces) && nzchar(pieces[1L])) {
      file.path(dirname(page), utils::URLdecode(pieces[1L]))
    } else {
      page
    }
    if (dir.exists(path)) path <- file.path(path, "index.html")
    where <- sub(paste0(site, "/"), "", page, fixed = TRUE)
    if (!file.exists(path)) {
      problem(where, ": broken link ", target)
    } else if (length(pieces) == 2L && grepl("\\.html$", path)) {
      path <- normalizePath(path)
      if (is.null(parsed[[path]])) parsed[[path]] <- xml2::read_html(path)
      if (!pieces[2L] %in% ids(path)) problem(where, ": no element with id ", target)
    }
  }
}

# Example output and vignette output: "Error in"/"Error:" at the start of an output line is
# R's own prefix. A block whose code calls try() shows an error on purpose (the lecture
# vignette shows what hnm refuses); those are counted, not failed.
output_pages <- pages[grepl("/(reference|articles)/", pages)]
deliberate <- 0L
for (page in output_pages) {
  text <- xml2::xml_text(xml2::xml_find_all(parsed[[page]], "//pre"))
  errors <- grepl("(^|\n)(#> )?Error( in |:)", text)
  deliberate <- deliberate + sum(errors & grepl("try(", text, fixed = TRUE))
  errors <- errors & !grepl("try(", text, fixed = TRUE)
  if (any(errors)) {
    problem(sub(paste0(site, "/"), "", page, fixed = TRUE), ": R error in the output: ",
            substr(text[errors][1L], 1L, 200L))
  }
}

rd <- list.files("man", pattern = "\\.Rd$")
missing <- setdiff(sub("\\.Rd$", ".html", rd), basename(pages[grepl("/reference/", pages)]))
for (page in missing) problem("reference/", page, ": no page for man/", sub("html$", "Rd", page))
plots <- c("plot.hnm_fit.html" = 2L, "plot.hnm_profile.html" = 1L, "profile.hnm_fit.html" = 1L)
for (name in names(plots)) {
  page <- file.path(site, "reference", name)
  if (!file.exists(page)) next
  images <- xml2::xml_find_all(parsed[[page]], "//img[contains(@src, '.png')]")
  if (length(images) < plots[[name]]) {
    problem("reference/", name, ": ", length(images), " plots, expected ", plots[[name]])
  }
}
vignettes <- sub("\\.Rmd$", ".html", list.files("vignettes", pattern = "\\.Rmd$"))
for (name in setdiff(vignettes, basename(pages[grepl("/articles/", pages)]))) {
  problem("articles/", name, ": vignette not on the site")
}

if (length(problems)) {
  cat(sprintf("check-site: %d problems in the site %s:", length(problems), site), problems,
      sep = "\n", file = stderr())
  quit(status = 1)
}
cat(sprintf(paste("check-site: %d pages, %d internal links, %d reference and %d article pages:",
                  "no broken link, no R error (%d deliberate, under try())\n"),
            length(pages), links, sum(grepl("/reference/", pages)), sum(grepl("/articles/", pages)),
            deliberate))
