# anova(fit) of one general fit against lmerTest's anova() (types I, II and III, Satterthwaite's
# df) on lme4's fit at hnm's θ (lmertest_twin, helper-lmm.R): the hypotheses and F tests are
# then functions of one point, and any difference is hnm's. Issue 25: the F of a term marginal
# to an interaction tested that term's raw coefficients, so it changed with the contrast coding
# (the growth model's F for time: 15.6 treatment, 94.7 sum), and the DenDF of a one-term model
# were those of the term's coefficients, not of lmerTest's type I rows (24.4 vs 22.45).
#
# Tolerances. At one θ, β, vcov(β), σ and the hypothesis matrices are closed forms in both
# packages, so Sum Sq, Mean Sq and F agree to rounding (1e-12 measured): 1e-8. DenDF carries
# the error of lmerTest's numerical derivatives (numDeriv's Richardson Hessian of lme4's
# deviance and Jacobian of vcov, relative error about 1e-8 on these cases, against hnm's
# analytic ones): 1e-6. The p-value inherits DenDF's error and is compared on the log scale
# (expect_equal's tolerance is absolute below 1e-6): 1e-6.

chicks <- droplevels(subset(as.data.frame(ChickWeight), Diet %in% c("1", "2", "3")))
chicks <- data.frame(weight = chicks$weight, time = chicks$Time, diet = chicks$Diet,
                     subject = factor(as.character(chicks$Chick)))
set.seed(25)
mixed <- data.frame(g = factor(rep(1:12, each = 10)), x = round(rnorm(120), 2),
                    f = factor(sample(c("a", "b", "c"), 120, TRUE)),
                    h = factor(sample(c("u", "v"), 120, TRUE)))
mixed$y <- with(mixed, 1 + x + 0.5 * (f == "b") - 0.7 * x * (f == "c") + 0.3 * x^2 +
                  (h == "v") * (f == "c") + rnorm(12)[g] + 0.5 * rnorm(12)[g] * x + rnorm(120))
mixed$z <- round(rnorm(120), 2)
# An empty cell: f:h's column of it is aliased and dropped (by hnm and lme4 alike).
empty_cell <- subset(mixed, !(f == "c" & h == "v"))
# An empty reference cell: no column is zero, but the cell's is a combination of X's columns
# that is zero on the data, which hnm finds from X'X (to rounding) and lmerTest from the rows.
empty_reference <- subset(mixed, !(f == "a" & h == "u"))

anova_cases <- list(
  list(weight ~ time * diet + (time | subject), chicks),  # the issue's growth model
  list(y ~ f + (f | g), mixed),  # the issue's one-term model; unbalanced, so type I's rows matter
  list(y ~ x * f + (x | g), mixed),  # continuous × factor
  list(y ~ f * h + x + (1 | g), mixed),  # factor × factor, unbalanced
  list(y ~ poly(x, 2) * f + (1 | g), mixed),  # a polynomial term in an interaction
  list(y ~ f * h + (1 | g), empty_cell),  # a rank-deficient design
  list(y ~ f * h + (1 | g), empty_reference),
  # Plain numeric columns only: no model frame, no factor levels, no contrasts for type III.
  list(y ~ x + z + (1 | g), mixed)
)

# The data with every factor covariate (not the grouping factor) coded by `coding`: R's
# default (treatment, which lmerTest's type III uses as it is), a coding named on the factor
# ("contr.sum") or a contrast matrix on it (Helmert's); the last two make lmerTest remake the
# design with treatment contrasts and map its hypotheses back.
recode <- function(data, coding, group) {
  for (v in setdiff(names(data)[vapply(data, is.factor, NA)], group)) {
    if (coding == "contr.sum") stats::contrasts(data[[v]]) <- "contr.sum"
    if (coding == "contr.helmert") {
      stats::contrasts(data[[v]]) <- stats::contr.helmert(nlevels(data[[v]]))
    }
  }
  data
}

# body(formula, data, REML, label) on every case of anova_cases, coding and criterion.
for_each_case <- function(body) {
  for (case in anova_cases) {
    group <- all.vars(lme4::findbars(case[[1]])[[1]][[3]])
    for (coding in c("contr.treatment", "contr.sum", "contr.helmert")) {
      data <- recode(case[[2]], coding, group)
      for (reml in c(FALSE, TRUE)) {
        body(case[[1]], data, reml, sprintf("%s, %s, REML = %s", deparse1(case[[1]]), coding, reml))
      }
    }
  }
}

test_that("anova(fit, type) is lmerTest's for every coding, type, ML and REML", {
  skip_if_not_installed("lmerTest")
  for_each_case(function(formula, data, reml, case_label) {
    fit <- suppressMessages(hnm_fit(formula, data, REML = reml))
    twin <- suppressMessages(lmertest_twin(fit, formula, data, reml))
    for (type in list("III", "II", "I", 3, 2, 1, "3")) {
      label <- sprintf("%s, type %s", case_label, type)
      # (Both say "Missing cells" for type III of the rank-deficient design.)
      table <- suppressMessages(
        if (identical(type, "III")) anova(fit) else anova(fit, type = type))
      reference <- suppressMessages(anova(twin, type = type))
      expect_identical(attr(table, "heading"), attr(reference, "heading"), label = label)
      expect_identical(rownames(table), rownames(reference), label = label)
      expect_identical(colnames(table), colnames(reference), label = label)
      expect_identical(table$NumDF, as.numeric(reference$NumDF), label = label)
      for (column in c("Sum Sq", "Mean Sq", "F value")) {
        expect_equal(table[[column]], reference[[column]], tolerance = 1e-8,
                     label = paste(label, column))
      }
      expect_equal(table$DenDF, reference$DenDF, tolerance = 1e-6,
                   label = paste(label, "DenDF"))
      expect_equal(log(table[["Pr(>F)"]]), log(reference[["Pr(>F)"]]), tolerance = 1e-6,
                   label = paste(label, "Pr(>F)"))
    }
    # ddf = "lme4": lme4's sequential table of the same fit, without df.
    expect_equal(anova(fit, ddf = "lme4"), anova(twin, ddf = "lme4"), tolerance = 1e-8,
                 label = paste(case_label, "ddf = lme4"))
  })
})

test_that("a fit without fixed-effect terms has lmerTest's empty table", {
  skip_if_not_installed("lmerTest")
  d <- lme4::Dyestuff
  reference <- anova(lmerTest::lmer(Yield ~ 1 + (1 | Batch), d), type = 2)
  # The one-way model (anova(fit) alone tests tau^2 = 0; `type` asks for lmerTest's table).
  for (fit in list(hnm_fit(Yield ~ 1 | Batch, d),
                   hnm_fit(Reaction ~ 1 + (Days | Subject), lme4::sleepstudy))) {
    table <- anova(fit, type = 2)
    expect_identical(attr(table, "heading"), attr(reference, "heading"))
    expect_identical(dim(table), dim(reference))
    expect_identical(colnames(table), colnames(reference))
    expect_identical(dim(anova(fit, ddf = "lme4")), c(0L, 4L))
  }
})

test_that("anova()'s type and ddf are checked", {
  fit <- hnm_fit(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  # An ML fit: lmerTest's rule, Kenward-Roger needs REML.
  expect_error(anova(fit, ddf = "Kenward-Roger"), "Kenward-Roger.*only available for REML",
               class = "hnm_error_argument")
  expect_error(anova(fit, type = 4), "`type` must be one of", class = "hnm_error_argument")
  expect_error(anova(fit, type = "III", ddf = "lme4"), "does not apply",
               class = "hnm_error_argument")
  expect_error(anova(fit, ddf = "nonsense"), "`ddf` must be one of", class = "hnm_error")
  expect_error(anova(fit, fit, type = 1), "comparison of fits takes neither",
               class = "hnm_error_argument")
  one_way <- hnm_fit(Yield ~ 1 | Batch, lme4::Dyestuff)
  expect_error(anova(one_way, type = "IV"), "`type` must be one of", class = "hnm_error_argument")
})

# The hypotheses are built from X'X, which the group statistics give exactly, and from the
# coding of the terms (issue 25: anova() of a fit from statistics stopped with
# hnm_error_no_rows, and a fit from rows built n x p matrices). A fit from hnm_stats() of the
# same rows holds the same statistics, so its table is that of the fit from rows (checked
# against lmerTest above) to rounding: 1e-10.
test_that("anova(fit) of a fit from group statistics is that of the fit from rows", {
  for_each_case(function(formula, data, reml, case_label) {
    rows <- suppressMessages(hnm_fit(formula, data, REML = reml))
    statistics <- suppressMessages(hnm_fit(formula, hnm_stats(formula, data), REML = reml))
    for (type in 1:3) {
      expect_equal(suppressMessages(anova(statistics, type = type)),
                   suppressMessages(anova(rows, type = type)), tolerance = 1e-10,
                   label = sprintf("%s, type %s", case_label, type))
    }
  })
})

test_that("a fit from group statistics says which cells are empty, as lmerTest", {
  formula <- y ~ f * h + (1 | g)
  fit <- suppressMessages(hnm_fit(formula, hnm_stats(formula, empty_reference)))
  expect_message(anova(fit), "Missing cells for: fa:hu\\.")
  fit <- suppressMessages(hnm_fit(formula, hnm_stats(formula, empty_cell)))
  expect_message(anova(fit), "Missing cells for: fc:hv\\.")
})

test_that("a fit from group statistics gives lmerTest's and lme4's tables", {
  skip_if_not_installed("lmerTest")
  formula <- Reaction ~ Days + (Days | Subject)
  d <- lme4::sleepstudy
  fit <- hnm_fit(formula, hnm_stats(formula, d))
  twin <- lmertest_twin(fit, formula, d)
  reference <- anova(twin)
  table <- anova(fit)
  for (column in c("Sum Sq", "Mean Sq", "F value")) {
    expect_equal(table[[column]], reference[[column]], tolerance = 1e-8)
  }
  expect_equal(table$DenDF, reference$DenDF, tolerance = 1e-6)
  # lme4's anova() of lme4's fit at hnm's θ (the fixed part needs only beta and vcov).
  expect_equal(anova(fit, ddf = "lme4"), anova(lmer_twin(fit, formula, d)), tolerance = 1e-8)
})

# anova() does not read the rows: columns kept by reference and modified in place after the
# fit (data.table's set()), which row-level methods refuse, leave its table as it was.
test_that("anova(fit) does not read the data rows", {
  skip_if_not_installed("data.table")
  dt <- data.table::as.data.table(recode(mixed, "contr.sum", "g"))
  fit <- hnm_fit(y ~ x * f + (x | g), dt)
  before <- lapply(1:3, function(type) anova(fit, type = type))
  every <- seq_len(nrow(dt))
  data.table::set(dt, i = every, j = "x", value = rev(dt$x))
  data.table::set(dt, i = every, j = "f", value = rev(dt$f))
  expect_error(model.matrix(fit), class = "hnm_error_data_changed")
  for (type in 1:3) expect_identical(anova(fit, type = type), before[[type]])
})

# A fit from a database (R/sql.R) has the statistics and the terms, but no model frame: its
# terms lack dataClasses, so which variables are factors (lmerTest's containment of types II
# and III) comes from their levels. Its tables equal those of the fit from the data frame.
test_that("anova(fit) of a fit from a database is that of the fit from rows", {
  skip_if_not_installed("RSQLite")
  skip_if_not_installed("dbplyr")
  con <- DBI::dbConnect(RSQLite::SQLite(), ":memory:")
  on.exit(DBI::dbDisconnect(con))
  rows <- transform(mixed, g = as.integer(g), f = as.character(f), h = as.character(h))
  DBI::dbWriteTable(con, "mixed", rows)
  for (formula in list(y ~ x * f + (1 | g), y ~ f * h + x + (x | g))) {
    database <- hnm_fit(formula, dplyr::tbl(con, "mixed"))
    memory <- hnm_fit(formula, transform(rows, g = factor(g)))
    for (type in 1:3) {
      expect_equal(anova(database, type = type), anova(memory, type = type), tolerance = 1e-10,
                   label = paste(deparse1(formula), "type", type))
    }
  }
})

# Type III's coding is found on every combination of the factors' levels (anova_grid()): six
# ten-level factors make 1e6 combinations, refused before anything that size is built, while
# types I and II need only X'X.
test_that("type III on too many combinations of factor levels is a classed error", {
  set.seed(7)
  d <- data.frame(g = factor(rep(1:20, each = 20)), y = rnorm(400))
  for (v in c("a", "b", "c", "d", "e", "k")) d[[v]] <- factor(sample(letters[1:10], 400, TRUE))
  fit <- hnm_fit(y ~ a + b + c + d + e + k + (1 | g), d)
  expect_error(anova(fit), "1e\\+06 combinations", class = "hnm_error_too_large")
  expect_identical(nrow(anova(fit, type = 1)), 6L)
  expect_identical(nrow(anova(fit, type = 2)), 6L)
})
