# getME()'s sparse matrices and random effects in lme4's layout, against lme4's own: Zt and
# Gp from lFormula() (the design alone), Lambda as lFormula()'s Lambdat with hnm's theta put
# in by lme4's Lind, and b from lme4's fit at hnm's theta (lmer_twin). One loop over one and
# several grouping factors, correlated, uncorrelated and several terms, nested and crossed.

skip_if_not_installed("lme4")
skip_if_not_installed("Matrix")

several_terms <- lme4::sleepstudy
several_terms$grp <- factor(rep(1:4, length.out = nrow(several_terms)))
with_missing <- lme4::sleepstudy
with_missing$Reaction[c(3, 40)] <- NA
cases <- list(
  list(Reaction ~ Days + (Days | Subject), lme4::sleepstudy),
  list(Reaction ~ Days + (Days || Subject), lme4::sleepstudy),
  list(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), lme4::sleepstudy),
  list(Reaction ~ Days + (Days | Subject), with_missing),
  list(Yield ~ 1 + (1 | Batch), lme4::Dyestuff),
  list(diameter ~ 1 + (1 | plate) + (1 | sample), lme4::Penicillin),
  list(strength ~ 1 + (1 | batch/cask), lme4::Pastes),
  list(Reaction ~ Days + (Days | Subject) + (1 | grp), several_terms)
)

test_that("getME()'s Zt, Z, Gp, Lambda, Lambdat and b are lme4's", {
  for (case in cases) {
    formula <- case[[1]]
    data <- case[[2]]
    label <- deparse1(formula)
    fit <- hnm_fit(formula, data)
    terms <- lme4::lFormula(formula, data)$reTrms
    zt <- getME(fit, "Zt")
    expect_s4_class(zt, "dgCMatrix")
    expect_equal(as.matrix(zt), as.matrix(terms$Zt), ignore_attr = TRUE, label = label)
    expect_identical(rownames(zt), rownames(terms$Zt), label = label)
    expect_equal(as.matrix(getME(fit, "Z")), t(as.matrix(terms$Zt)), ignore_attr = TRUE)
    # lme4's model.matrix(type = "random") is its Z.
    expect_identical(model.matrix(fit, type = "random"), getME(fit, "Z"))
    expect_identical(getME(fit, "Gp"), terms$Gp, label = label)
    lambdat <- terms$Lambdat
    lambdat@x <- unname(getME(fit, "theta"))[terms$Lind]
    lambda <- getME(fit, "Lambda")
    expect_s4_class(lambda, "dgCMatrix")
    expect_equal(as.matrix(lambda), t(as.matrix(lambdat)), ignore_attr = TRUE, label = label)
    expect_equal(as.matrix(getME(fit, "Lambdat")), as.matrix(lambdat), ignore_attr = TRUE)
    # The grouping factors at the rows used, with each term's factor as `assign`.
    expect_identical(getME(fit, "flist"), terms$flist, label = label)
    twin <- lmer_twin(fit, formula, data)
    expect_equal(getME(fit, "b"), unname(lme4::getME(twin, "b")[, 1]), tolerance = 1e-8,
                 label = label)
  }
})

test_that("getME()'s row matrices need the rows", {
  stats <- hnm_stats(Yield ~ 1 | Batch, lme4::Dyestuff)
  fit <- hnm_fit(Yield ~ 1 | Batch, stats)
  expect_error(getME(fit, "Zt"), class = "hnm_error_no_rows")
  expect_s4_class(getME(fit, "Lambda"), "dgCMatrix")
  expect_error(getME(fit, "Lind"), "available: theta", class = "hnm_error_argument")
  # A number is no name (switch() would take it as a position), as lme4 refuses it.
  for (name in list(1, NA_character_, character())) {
    expect_error(getME(fit, name), "`name`", class = "hnm_error_argument")
  }
  expect_error(lme4::getME(lme4::lmer(Yield ~ 1 | Batch, lme4::Dyestuff), 1))
})

test_that("getME() of several names and as.data.frame(VarCorr()) in both orders are lme4's", {
  three <- several_terms
  set.seed(7)
  three$x <- stats::rnorm(nrow(three))  # a third column of a correlated term
  offset <- list(Reaction ~ Days + offset(Days / 2) + (Days | Subject), lme4::sleepstudy)
  for (case in c(cases, list(list(Reaction ~ Days + (Days + x | Subject) + (1 | grp), three),
                             offset))) {
    formula <- case[[1]]
    label <- deparse1(formula)
    fit <- hnm_fit(formula, case[[2]])
    twin <- lmer_twin(fit, formula, case[[2]])
    for (order in c("cov.last", "lower.tri")) {
      ours <- as.data.frame(VarCorr(fit), order = order)
      theirs <- as.data.frame(lme4::VarCorr(twin), order = order)
      expect_identical(ours[c("grp", "var1", "var2")], theirs[c("grp", "var1", "var2")], label = label)
      expect_equal(ours[c("vcov", "sdcor")], theirs[c("vcov", "sdcor")], tolerance = 1e-6,
                   label = label)
    }
    names <- c("theta", "beta", "sigma", "n_rtrms", "n", "N", "mu", "offset")
    ours <- getME(fit, names)
    theirs <- lme4::getME(twin, names)
    expect_identical(names(ours), names)
    expect_equal(ours, theirs, tolerance = 1e-8, ignore_attr = TRUE, label = label)
  }
  expect_error(as.data.frame(VarCorr(hnm_fit(Yield ~ 1 + (1 | Batch), lme4::Dyestuff)), order = "upper"),
               "should be one of")
})
