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

test_that("a profile is lme4's thpr: its splines, lattice plots, logProf and varianceProf are lme4's", {
  skip_if_not_installed("lme4")
  skip_if_not_installed("lattice")
  tight <- lme4::lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12))
  cases <- list(list(diameter ~ 1 + (1 | plate) + (1 | sample), lme4::Penicillin),
                list(Reaction ~ Days + (Days | Subject), lme4::sleepstudy))
  zeta <- seq(-2.5, 2.5, by = 0.5)
  for (case in cases) {
    label <- deparse1(case[[1]])
    ours <- profile(hnm_fit(case[[1]], case[[2]]))
    theirs <- profile(lme4::lmer(case[[1]], case[[2]], REML = FALSE, control = tight))
    expect_s3_class(ours, c("hnm_profile", "thpr", "data.frame"), exact = TRUE)
    expect_identical(names(attr(ours, "forward")), names(attr(theirs, "forward")))
    # Each parameter's value at zeta from the inverse spline: lme4's to its splines' accuracy.
    for (name in names(attr(theirs, "backward"))) {
      expect_equal(predict(attr(ours, "backward")[[name]], zeta)$y,
                   predict(attr(theirs, "backward")[[name]], zeta)$y, tolerance = 1e-3,
                   label = paste(label, name))
    }
    expect_identical(names(as.data.frame(ours)), names(as.data.frame(theirs)))
    expect_equal(as.data.frame(ours)$.focal, mapply(function(row, par) ours[row, par],
                                                     seq_len(nrow(ours)), as.character(ours$.par)))
    for (plot in list(lattice::xyplot, lattice::densityplot, lattice::splom)) {
      drawn <- plot(ours)
      expect_s3_class(drawn, "trellis")
      expect_identical(drawn$condlevels, plot(theirs)$condlevels, label = label)
    }
    # The profile reaches lme4's cut-off, so that the densities cover lme4's range (to 99.9%).
    ours_density <- lattice::densityplot(ours)$panel.args
    theirs_density <- lattice::densityplot(theirs)$panel.args
    for (k in seq_along(theirs_density)) {
      expect_equal(ours_density[[k]]$x, theirs_density[[k]]$x, tolerance = 1e-3, label = label)
      expect_equal(ours_density[[k]]$y, theirs_density[[k]]$y, tolerance = 1e-2, label = label)
    }
  }
  # lme4's transformations of a profile of SDs (Penicillin's; a correlation has no logarithm).
  fit <- hnm_fit(cases[[1]][[1]], cases[[1]][[2]])
  ours <- profile(fit)
  theirs <- profile(lme4::lmer(cases[[1]][[1]], cases[[1]][[2]], REML = FALSE, control = tight))
  for (transform in list(lme4::logProf, lme4::varianceProf)) {
    expect_equal(confint(transform(ours)), confint(transform(theirs)), tolerance = 1e-3)
  }
})

test_that("lme4's logProf and varianceProf of a profile with an SD at 0 give lme4's intervals", {
  skip_if_not_installed("lme4")
  set.seed(1)
  d <- data.frame(g = factor(rep(1:6, each = 5)), x = stats::rnorm(30))
  d$y <- 1 + d$x + stats::rnorm(30)
  tight <- lme4::lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12))
  formula <- y ~ x + (1 | g)
  fit <- hnm_fit(formula, d)
  expect_identical(unname(getME(fit, "theta")), 0)
  ours <- profile(fit)
  # (bobyqa warns of failed trust-region steps at this singular optimum and in its profile.)
  theirs <- suppressWarnings(profile(lme4::lmer(formula, d, REML = FALSE, control = tight)))
  for (transform in list(lme4::logProf, lme4::varianceProf)) {
    expect_equal(suppressWarnings(confint(transform(ours))),
                 suppressWarnings(confint(transform(theirs))), tolerance = 1e-3)
  }
  # Two steps a side: the SD's profile, stopped at 0, has 3 points; lme4's plots still draw it
  # (lme4's logProf() refits its splines from the rows, which needs 4).
  coarse <- profile(fit, steps = 2)
  expect_s3_class(lattice::xyplot(coarse), "trellis")
  expect_identical(names(attr(coarse, "forward")), names(attr(ours, "forward")))
})
