# Builds data/wheat.rda and data/nels.rda from the lecture's CSV files in
# ../shared/reference/data (see its README for provenance). Run from the package root:
#   Rscript data-raw/lecture-data.R
source_dir <- file.path("..", "shared", "reference", "data")

wheat <- utils::read.csv(file.path(source_dir, "wheat.csv"))
wheat$g <- as.integer(wheat$g)

nels <- utils::read.csv(file.path(source_dir, "nels.csv"), colClasses = c(school = "character"))
nels$school <- factor(nels$school)
nels$urbanicity <- factor(nels$urbanicity)

stopifnot(nrow(wheat) == 50, nrow(nels) == 12974, nlevels(nels$school) == 684)
save(wheat, file = "data/wheat.rda", compress = "xz")
save(nels, file = "data/nels.rda", compress = "xz")
