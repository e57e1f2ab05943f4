# Base-graphics plots: drawn on a null device, returning their argument invisibly.

test_that("plot(fit) and plot(ranef(fit)) draw and return invisibly", {
  fit <- hnm_fit(y ~ 1 | g, wheat)
  grDevices::pdf(NULL)
  on.exit(grDevices::dev.off())
  expect_invisible(out <- plot(fit))
  expect_identical(out, fit)
  re <- ranef(fit)
  expect_invisible(out <- plot(re))
  expect_identical(out, re)
  expect_error(plot(ranef(fit, condVar = FALSE)), "condVar = TRUE", class = "hnm_error")
})

test_that("lattice's dotplot() and qqmath() of ranef() draw lme4's plots, with lme4's values", {
  skip_if_not_installed("lme4")
  skip_if_not_installed("lattice")
  # One factor, a correlated slope, split terms of a factor, and nested factors.
  cases <- list(
    list(Reaction ~ Days + (Days | Subject), lme4::sleepstudy),
    list(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), lme4::sleepstudy),
    list(strength ~ 1 + (1 | batch/cask), lme4::Pastes))
  for (case in cases) {
    fit <- hnm_fit(case[[1]], case[[2]], REML = TRUE)
    twin <- lmer_twin(fit, case[[1]], case[[2]], REML = TRUE)
    plots <- list(dotplot = lattice::dotplot, qqmath = lattice::qqmath)
    # lme4's qqmath() of split terms fails on its own ranef.mer.
    if (length(lme4::ranef(twin)) == 1L && length(fit$random_names) > 1L) plots$qqmath <- NULL
    for (plot in names(plots)) {
      ours <- plots[[plot]](ranef(fit, condVar = TRUE), level = 0.9)
      theirs <- plots[[plot]](lme4::ranef(twin, condVar = TRUE), level = 0.9)
      expect_identical(names(ours), names(theirs))
      for (k in seq_along(theirs)) {
        expect_s3_class(ours[[k]], "trellis")
        # Each panel's points, and the interval widths lme4 passes to the panels.
        expect_equal(lapply(ours[[k]]$panel.args, `[[`, "x"), lapply(theirs[[k]]$panel.args, `[[`, "x"),
                     tolerance = 1e-6, info = paste(plot, deparse1(case[[1]])))
        expect_identical(lapply(ours[[k]]$panel.args, `[[`, "y"), lapply(theirs[[k]]$panel.args, `[[`, "y"))
        expect_equal(ours[[k]]$panel.args.common, theirs[[k]]$panel.args.common, tolerance = 1e-6)
      }
    }
  }
})
