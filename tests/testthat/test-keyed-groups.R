# A hashed grouping variable (strings; integers or doubles that are not a small range;
# logicals) is read by the fit's pass in place, coded by a key table: no code per row is
# stored. Row-level methods code the rows then, also after saveRDS()/readRDS(), which keep
# no table, and must still detect a grouping variable changed in place.

keyed_groups <- function(codes) {
  list(character = c("b", "A", "Zeta", "a10", "a9", "alpha")[codes],
       integer = c(-7L, 1000000L, 3L, 0L, 42L, -1L)[codes],
       double = c(2.5, -1e10, 0.1, 7, 1e15, -0.5)[codes])
}

test_that("row-level methods of keyed groups are lme4's, before and after readRDS()", {
  skip_if_not_installed("lme4")
  set.seed(5)
  codes <- sample(rep(1:6, c(4, 7, 3, 6, 5, 5)))
  y <- 10 + rnorm(6, 0, 2)[codes] + rnorm(length(codes))
  y[7] <- NA
  for (type in names(keyed_groups(codes))) {
    d <- data.frame(y = y, g = keyed_groups(codes)[[type]])
    reference <- lme4::lmer(y ~ 1 + (1 | g), d, REML = FALSE)
    fit <- hnm_fit(y ~ 1 | g, d, method = "ML")
    file <- tempfile(fileext = ".rds")
    saveRDS(fit, file)
    restored <- readRDS(file)
    unlink(file)
    for (f in list(fit, restored)) {
      expect_equal(rownames(ranef(f)$g), rownames(lme4::ranef(reference)$g), info = type)
      expect_equal(unname(fitted(f)), unname(fitted(reference)), tolerance = 1e-6, info = type)
      expect_equal(unname(residuals(f)), unname(residuals(reference)), tolerance = 1e-6,
                   info = type)
      expect_equal(unname(predict(f, newdata = d[1:5, ])),
                   unname(predict(reference, newdata = d[1:5, ])), tolerance = 1e-6, info = type)
    }
  }
})

test_that("keyed groups changed in place are detected by row-level methods", {
  skip_if_not_installed("data.table")
  skip_if_not_installed("lme4")
  codes <- rep(1:6, each = 5)
  for (type in names(keyed_groups(codes))) {
    groups <- keyed_groups(codes)[[type]]
    # To another group's value, and to a value the fit never saw.
    for (value in list(groups[6], if (is.character(groups)) "new" else groups[1] + 1)) {
      dt <- data.table::data.table(Yield = lme4::Dyestuff$Yield, g = groups)
      fit <- hnm_fit(Yield ~ 1 | g, dt)
      expect_length(fitted(fit), 30L)
      data.table::set(dt, i = 1L, j = "g", value = value)
      expect_error(fitted(fit), "modified in place", class = "hnm_error_data_changed",
                   info = type)
      expect_error(residuals(fit), "modified in place", class = "hnm_error_data_changed",
                   info = type)
    }
  }
})
