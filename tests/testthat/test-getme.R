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
  # Those read from the fit alone need no rows: the row fit's (compared with lme4's below).
  rows_fit <- hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff)
  for (name in c("u", "RX", "Lind", "Tlist", "devcomp", "q_i")) {
    expect_equal(getME(fit, name), getME(rows_fit, name), tolerance = 1e-10, label = name)
  }
  expect_error(getME(fit, "mmList"), class = "hnm_error_no_rows")
  expect_error(getME(fit, "L"), "available: X, Z, Zt", class = "hnm_error_argument")
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

test_that("getME()'s u, RX, A, Ztlist, mmList, templates, sizes and devcomp are lme4's", {
  # lme4's fit at hnm's theta (lmer_twin(), or with the weights lmer_at_theta()), ML and REML:
  # at one theta both evaluate closed forms. lme4's q_i recycles its per-factor l_i over the
  # terms, which pairs them wrongly where a factor's terms are not together; hnm's is each
  # term's columns times its own factor's levels, lme4's where they are.
  weighted <- lme4::sleepstudy
  weighted$w <- rep(1:3, 60)
  twins <- c(lapply(cases, function(case) {
    list(formula = case[[1]], data = case[[2]], weights = NULL)
  }), list(list(formula = Reaction ~ Days + (Days | Subject), data = weighted, weights = "w")))
  for (case in twins) for (reml in c(FALSE, TRUE)) {
    label <- paste(deparse1(case$formula), if (reml) "REML" else "ML", case$weights)
    if (is.null(case$weights)) {
      fit <- hnm_fit(case$formula, case$data, REML = reml)
      twin <- lmer_twin(fit, case$formula, case$data, REML = reml)
    } else {
      fit <- hnm_fit(case$formula, case$data, REML = reml, weights = w)
      call <- bquote(lme4::lmer(.(case$formula), data, REML = .(reml), weights = w))
      twin <- suppressMessages(lmer_at_theta(call, getME(fit, "theta"),
                                             list2env(list(data = case$data))))
    }
    exact <- c("Tp", "Lind", "n_rfacs", "k", "m_i", "m", "p_i", "l_i", "is_REML", "REML")
    if (length(unique(getME(twin, "cnms"))) == length(getME(twin, "cnms"))) exact <- c(exact, "q_i")
    for (name in exact) expect_identical(getME(fit, name), getME(twin, name), label = paste(label, name))
    for (name in c("u", "RX", "Tlist", "ST")) {
      expect_equal(getME(fit, name), getME(twin, name), tolerance = 1e-7, label = paste(label, name))
    }
    # Without the rows' names (hnm's row matrices leave them out, as fitted() does).
    expect_equal(as.matrix(getME(fit, "A")), unname(as.matrix(getME(twin, "A"))), tolerance = 1e-7,
                 ignore_attr = "dimnames", label = paste(label, "A"))
    ours <- getME(fit, "Ztlist")
    theirs <- getME(twin, "Ztlist")
    expect_identical(names(ours), names(theirs), label = label)
    for (t in seq_along(ours)) {
      expect_equal(as.matrix(ours[[t]]), as.matrix(theirs[[t]]), ignore_attr = "dimnames", label = label)
      expect_identical(rownames(ours[[t]]), rownames(theirs[[t]]), label = label)
    }
    expect_equal(getME(fit, "mmList"), getME(twin, "mmList"), label = label)
    ours <- getME(fit, "devcomp")
    theirs <- getME(twin, "devcomp")
    expect_identical(ours$dims, theirs$dims, label = label)
    expect_equal(ours$cmp, theirs$cmp, tolerance = 1e-7, label = label)
    expect_equal(as.numeric(getME(fit, "devfun")(getME(fit, "theta"))),
                 unname(theirs$cmp[if (reml) "REML" else "dev"]), tolerance = 1e-9, label = label)
  }
  all <- getME(hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy), "ALL")
  expect_identical(names(all), setdiff(eval(formals(lme4:::getME.merMod)$name),
                                       c("L", "RZX", "devfun", "glmer.nb.theta")))
})
