# Statistics tables of the general model (hnm_stats() of formulas with covariates and random
# slopes, and tables computed elsewhere). References: per-group means and co-moments computed
# by base R from model.matrix() (independent of hnm's Rust pass), lme4 at its exact optimum
# (helper-lmm.R), and the fit from the rows, which test-lmm-lme4.R checks against lme4.

# Base R's statistics table of the response `y` and the design columns `x` (a matrix whose
# column names are the variables) by `g`: complete rows only, groups as factor() orders them,
# the co-moments by a two-pass computation.
base_r_lmm_table <- function(y, x, g) {
  v <- cbind(y, x)
  keep <- stats::complete.cases(v) & !is.na(g)
  v <- v[keep, , drop = FALSE]
  g <- factor(g[keep])
  groups <- split(seq_len(nrow(v)), g)
  means <- matrix(vapply(groups, function(i) colMeans(v[i, , drop = FALSE]), numeric(ncol(v))),
                  ncol = ncol(v), byrow = TRUE)
  names <- colnames(v)
  out <- data.frame(group = levels(g), n = as.vector(table(g)), stringsAsFactors = FALSE)
  for (a in seq_along(names)) out[[paste0("mean_", names[a])]] <- unname(means[, a])
  for (a in seq_along(names)) {
    for (b in seq_len(a)) {
      column <- if (a == b) paste0("ss_", names[a]) else paste0("sp_", names[b], "_", names[a])
      out[[column]] <- unname(vapply(groups, function(i) {
        sum((v[i, a] - mean(v[i, a])) * (v[i, b] - mean(v[i, b])))
      }, numeric(1)))
    }
  }
  out
}

# Data for these tests: simulate_lmm() with NA in a covariate, the factor and the group.
lmm_table_data <- function(seed, offset = 0) {
  d <- simulate_lmm(seed, m = 25, balanced = FALSE)
  d$x <- d$x + offset
  d$y <- d$y + offset
  d$x[3] <- NA
  d$f[7] <- NA
  d$g[11] <- NA
  d
}

test_that("hnm_stats() of the general model gives base R's per-group means and co-moments", {
  d <- lmm_table_data(640)
  s <- hnm_stats(y ~ x + f + x:f + log(z) + (x | g), d)
  expect_s3_class(s, c("hnm_stats", "data.frame"))
  x <- stats::model.matrix(~ x + f + x:f + log(z), stats::model.frame(~ x + f + log(z), d,
                                                                         na.action = stats::na.pass))
  reference <- base_r_lmm_table(cbind(y = d$y), x[, -1L], d$g)
  expect_identical(names(s), names(reference))
  expect_identical(s$group, reference$group)
  expect_equal(s$n, reference$n)
  expect_equal(as.data.frame(s)[-(1:2)], reference[-(1:2)], tolerance = 1e-12)
  expect_identical(attr(s, "n_dropped"), 3)
  expect_identical(attr(s, "design")$fixed_assign, attr(x, "assign"))
  # A random slope not among the fixed effects is a variable too (after those of X).
  s2 <- hnm_stats(y ~ x + (z | g), d)
  reference <- base_r_lmm_table(cbind(y = d$y), cbind(x = d$x, z = d$z), d$g)
  expect_identical(names(s2), names(reference))
  expect_equal(as.data.frame(s2)[-1L], reference[-1L], tolerance = 1e-12)
  out <- capture.output(print(s2, n = 2))
  expect_identical(out[1L], sprintf(paste("Group statistics of `y` by `g`: 25 groups, %d",
                                          "observations (2 rows with NA dropped)"), sum(reference$n)))
  expect_identical(out[length(out)], "# ... 23 more groups")
})

test_that("fits from hnm_stats tables equal the fits from the rows to 1e-10", {
  formulas <- list(y ~ x + (x | g), y ~ x + f + x:f + log(z) + (x | g), y ~ w + f + (z || g),
                   y ~ x + offset(z) + (1 | g), y ~ 0 + f + x + (0 + f | g))
  for (offset in c(0, 1e9)) {
    d <- lmm_table_data(641, offset)
    for (formula in formulas) {
      # With offsets of 1e9, x is a combination of f's indicators to lme4's rank tolerance.
      if (offset != 0 && identical(formula, formulas[[5L]])) next
      s <- hnm_stats(formula, d)
      for (reml in c(FALSE, TRUE)) {
        info <- sprintf("%s, offset %g, REML = %s", deparse1(formula), offset, reml)
        memory <- hnm_fit(formula, d, REML = reml)
        fit <- hnm_fit(formula, s, REML = reml)
        expect_s3_class(fit, "hnm_fit")
        expect_equal(lmm_numbers(fit), lmm_numbers(memory), tolerance = 1e-10, info = info)
        expect_identical(names(fixef(fit)), names(fixef(memory)), info = info)
        expect_identical(rownames(ranef(fit)$g), rownames(ranef(memory)$g), info = info)
        expect_identical(c(nobs(fit), fit$n_dropped), c(nobs(memory), memory$n_dropped), info = info)
      }
    }
  }
})

test_that("a table computed elsewhere fits as lme4 fits the rows", {
  skip_if_not_installed("lme4")
  sleep <- lme4::sleepstudy
  table <- base_r_lmm_table(cbind(Reaction = sleep$Reaction), cbind(Days = sleep$Days),
                            sleep$Subject)
  names(table)[1:2] <- c("subject", "days_observed")
  exact <- lmer_exact(Reaction ~ Days + (Days | Subject), sleep, REML = FALSE)
  fit <- hnm_fit(Reaction ~ Days + (Days | Subject), table,
                 stats = c(group = "subject", n = "days_observed"))
  # The optimum is lme4's exact one (the log-likelihood, second order in θ); the estimates are
  # those of lme4's fit at hnm's θ, to rounding (not at lme4's stopping point: helper-lmm.R).
  expect_equal(c(logLik(fit)), c(logLik(exact)), tolerance = 1e-9)
  twin <- lmer_twin(fit, Reaction ~ Days + (Days | Subject), sleep)
  expect_equal(unname(fixef(fit)), unname(lme4::fixef(twin)), tolerance = 1e-8)
  expect_equal(as.data.frame(VarCorr(fit))$sdcor, as.data.frame(lme4::VarCorr(twin))$sdcor,
               tolerance = 1e-8)
  expect_equal(unname(as.matrix(vcov(fit))), unname(as.matrix(vcov(twin))), tolerance = 1e-8)
  expect_equal(unname(as.matrix(ranef(fit)$Subject)), unname(as.matrix(lme4::ranef(twin)$Subject)),
               tolerance = 1e-8)
  # A factor's columns are variables of such a table, named in the formula.
  d <- lmm_table_data(642)
  d$fb <- as.numeric(d$f == "b")
  d$fc <- as.numeric(d$f == "c")
  table <- base_r_lmm_table(cbind(y = d$y), cbind(x = d$x, fb = d$fb, fc = d$fc), d$g)
  memory <- hnm_fit(y ~ x + f + (x | g), d)
  fit <- hnm_fit(y ~ x + fb + fc + (x | g), table, stats = TRUE)
  expect_equal(unname(fixef(fit)), unname(fixef(memory)), tolerance = 1e-10)
  expect_equal(c(logLik(fit)), c(logLik(memory)), tolerance = 1e-10)
  expect_equal(as.data.frame(VarCorr(fit))$vcov, as.data.frame(VarCorr(memory))$vcov, tolerance = 1e-10)
  # sp_<a>_<b> may be named in either order.
  names(table) <- sub("^sp_y_x$", "sp_x_y", names(table))
  expect_equal(fixef(hnm_fit(y ~ x + fb + fc + (x | g), table, stats = TRUE)), fixef(fit),
               tolerance = 1e-12)
})

test_that("smaller models fit from a table of a larger one, equal to their fits from the rows", {
  d <- lmm_table_data(643, offset = 1e9)
  s <- hnm_stats(y ~ x + f + w + z + (x + z | g), d)
  # Parts of the table's formula keep their coding; other parts are made of its variables.
  for (formula in list(y ~ x + (1 | g), y ~ z + w + (z | g), y ~ x + f + w + z + (x || g),
                       y ~ fb + x + (fb | g), y ~ 1 + (1 | g))) {
    # The smaller model's own complete rows are those of the larger model.
    rows <- d[stats::complete.cases(d[c("y", "x", "f", "w", "z", "g")]), ]
    rows$fb <- as.numeric(rows$f == "b")
    memory <- hnm_fit(formula, rows)
    fit <- hnm_fit(formula, s)
    if (!hnm:::is_one_way(memory)) {
      # A singular fit (y ~ fb + x + (fb | g) has a correlation of -1) is exact only to the
      # optimiser's tolerance (a gradient of 1e-10 N: about 1e-10 in θ), which statistics that
      # differ in their last bits can move by that much.
      tolerance <- if (isSingular(memory)) 1e-9 else 1e-10
      expect_equal(lmm_numbers(fit), lmm_numbers(memory), tolerance = tolerance, info = deparse1(formula))
    } else {
      expect_equal(fit_numbers(fit), fit_numbers(memory), tolerance = 1e-9, info = deparse1(formula))
    }
  }
})

test_that("fits from general statistics have the statistics-only methods, and refuse row-level ones", {
  d <- lmm_table_data(644)
  formula <- y ~ x + f + (x | g)
  memory <- hnm_fit(formula, d)
  fit <- hnm_fit(formula, hnm_stats(formula, d))
  same <- function(a, b) expect_equal(a, b, tolerance = 1e-10)
  same(as.data.frame(VarCorr(fit)), as.data.frame(VarCorr(memory)))
  same(coef(fit), coef(memory))
  same(confint(fit, method = "Wald"), confint(memory, method = "Wald"))
  same(c(AIC(fit), BIC(fit), deviance(fit), REMLcrit(fit)),
       c(AIC(memory), BIC(memory), deviance(memory), REMLcrit(memory)))
  m0 <- hnm_fit(y ~ x + f + (1 | g), hnm_stats(formula, d))
  m1 <- fit
  from_stats <- as.data.frame(anova(m0, m1))
  m0 <- hnm_fit(y ~ x + f + (1 | g), d)
  m1 <- memory
  expect_equal(from_stats, as.data.frame(anova(m0, m1)), tolerance = 1e-10, ignore_attr = "heading")
  for (row_level in list(fitted, residuals, simulate, model.frame)) {
    expect_error(row_level(fit), class = "hnm_error_no_rows",
                 regexp = "needs the data rows, but this fit was made from group statistics")
  }
})

test_that("bad general statistics tables are classed errors naming the problem", {
  d <- lmm_table_data(645)
  formula <- y ~ x + f + (x | g)
  s <- hnm_stats(formula, d)
  plain <- as.data.frame(s)
  with_value <- function(column, row, value) {
    plain[[column]][row] <- value
    plain
  }
  e <- function(expr, regexp, class = "hnm_error") expect_error(expr, regexp = regexp, class = class)
  e(hnm_fit(formula, plain, stats = TRUE), "the model term `f` is not a variable of the statistics table")
  e(hnm_fit(y ~ x + fb + (x | g), plain[names(plain) != "sp_y_x"], stats = TRUE), "no column `sp_y_x`")
  e(hnm_fit(y ~ x + z + (x | g), s), "no column `mean_z`")
  e(hnm_fit(y ~ x + fb + (x | g), with_value("n", 2, 2.5), stats = TRUE),
    "column `n` of `data` must hold positive whole numbers; row 2", "hnm_error_invalid_statistics")
  e(hnm_fit(y ~ x + fb + (x | g), with_value("ss_x", 4, -1), stats = TRUE),
    "column `ss_x` of `data` must hold finite numbers >= 0; row 4", "hnm_error_invalid_statistics")
  e(hnm_fit(y ~ x + fb + (x | g), with_value("mean_x", 3, NA), stats = TRUE), "column `mean_x`.*row 3")
  e(hnm_fit(y ~ x + fb + (x | g), with_value("group", 2, plain$group[1]), stats = TRUE),
    "must name each group once", "hnm_error_invalid_statistics")
  # |sp_y_x| beyond sqrt(ss_y ss_x): no data have these co-moments.
  e(hnm_fit(y ~ x + fb + (x | g), with_value("sp_y_x", 5, 2 * sqrt(plain$ss_y[5] * plain$ss_x[5])),
            stats = TRUE),
    sprintf("co-moments of group `%s` \\(row 5\\) .* not positive semi-definite", plain$group[5]),
    "hnm_error_invalid_statistics")
  e(hnm_fit(y ~ x + f + (x | school), s), "holds statistics by `g`, but the formula groups by `school`")
  e(hnm_fit(y ~ x + offset(w) + (x | g), s), "offset terms \\(offset\\(w\\)\\) differ")
  e(hnm_fit(y ~ x + (x | g), hnm_stats(y ~ x + offset(w) + (x | g), d)),
    "offset terms \\(none\\) differ from those the statistics were computed with \\(offset\\(w\\)\\)")
  e(hnm_fit(formula, s, stats = c(mean = "avg")), "`stats` names the `group` and `n` columns")
  e(hnm_fit(formula, s, method = "ANOVA"), "fits the one-way model", "hnm_error_argument")
  e(hnm_fit(formula, stats = TRUE), "`data` is missing")
  e(hnm_fit(formula, as.matrix(plain), stats = TRUE), "must be a data frame of group statistics")
  # A one-way table has no covariates to fit.
  e(hnm_fit(formula, hnm_stats(y ~ 1 | g, d)), paste(
    "`data` holds the statistics of the one-way model `y ~ 1 \\| g`.*cannot fit a model with",
    "covariates"), "hnm_error_unsupported_formula")
})

# Issue 25: subset() of a statistics table (which failed with R's "bad error message") is the
# table of those groups, and a fit of it is lme4's fit of their rows.
test_that("subset() and [ of an hnm_stats table fit the rows of the groups kept", {
  skip_if_not_installed("lme4")
  control <- lme4::lmerControl(optimizer = "bobyqa",
                               optCtrl = list(rhoend = 1e-12, maxfun = 1e5))
  d <- lme4::sleepstudy
  keep <- c("308", "309", "330", "331", "333", "335", "349", "350", "352", "370")
  for (formula in list(Reaction ~ Days + (Days | Subject), Reaction ~ 1 | Subject)) {
    label <- deparse1(formula)
    table <- hnm_stats(formula, d)
    ref <- lme4::lmer(formula, d[d$Subject %in% keep, ], REML = FALSE, control = control)
    for (part in list(subset(table, group %in% keep), table[table$group %in% keep, ])) {
      expect_s3_class(part, "hnm_stats")
      fit <- hnm_fit(formula, part)
      expect_equal(deviance(fit), deviance(ref), tolerance = 1e-10, label = label)
      expect_equal(fixef(fit), lme4::fixef(ref), tolerance = 1e-6, label = label)
      expect_identical(nobs(fit), nobs(ref), label = label)
    }
    expect_s3_class(subset(table, select = c(group, n)), "data.frame", exact = TRUE)
  }
  # A table stripped of what hnm_stats() recorded is read as a plain data frame.
  table <- hnm_stats(Reaction ~ Days + (Days | Subject), d)
  attributes(table) <- attributes(table)[c("names", "row.names", "class")]
  expect_equal(deviance(hnm_fit(Reaction ~ Days + (Days | Subject), table)),
               deviance(hnm_fit(Reaction ~ Days + (Days | Subject), d)), tolerance = 1e-10)
})

# Issue 23: with several grouping factors a table has one row per cell, a combination of the
# grouping columns' values (the innermost groups of a nested model, the observed combinations
# of levels of crossed ones).
test_that("several grouping factors: hnm_stats() gives base R's per-cell statistics, fitted as the rows", {
  skip_if_not_installed("lme4")
  for (offset in c(0, 1e9)) {
    for (case in several_factor_cases(offset)) {
      d <- case$data
      formula <- case$formula
      if (offset != 0 && !("verbal" %in% names(d))) next  # the offset is ScotsSec-like's
      info <- sprintf("%s, offset %g", deparse1(formula), offset)
      parsed <- hnm:::parse_mixed_formula(formula, several = TRUE)
      columns <- hnm:::cell_columns(parsed)
      s <- hnm_stats(formula, d)
      # Base R's table by the key of each row's cell (NA when a grouping column is NA).
      key <- do.call(paste, c(d[columns], sep = "\r"))
      key[!stats::complete.cases(d[columns])] <- NA
      response <- deparse1(formula[[2L]])
      x <- stats::model.matrix(stats::as.formula(call("~", parsed$fixed)),
                               stats::model.frame(stats::as.formula(call("~", parsed$fixed)), d,
                                                  na.action = stats::na.pass))[, -1L, drop = FALSE]
      reference <- base_r_lmm_table(matrix(d[[response]], dimnames = list(NULL, response)), x, key)
      rows <- match(reference$group, do.call(paste, c(lapply(s[columns], as.character), sep = "\r")))
      expect_identical(nrow(s), nrow(reference), info = info)
      expect_identical(names(s), c(columns, names(reference)[-1L]), info = info)
      expect_equal(as.data.frame(s)[rows, -seq_along(columns)], reference[-1L], tolerance = 1e-12,
                   ignore_attr = TRUE, info = info)
      for (reml in c(FALSE, TRUE)) {
        expect_equal(lmm_numbers(hnm_fit(formula, s, REML = reml)),
                     lmm_numbers(hnm_fit(formula, d, REML = reml)), tolerance = 1e-10, info = info)
      }
      if (offset == 0) {
        # The base R table, declared as statistics, fits as lme4 fits the rows.
        plain <- cbind(do.call(rbind.data.frame, c(strsplit(reference$group, "\r"),
                                                   make.row.names = FALSE)), reference[-1L])
        names(plain)[seq_along(columns)] <- columns
        if (is.integer(d$second)) plain$second <- as.integer(plain$second)
        # A factor is written as its indicator columns, which the table names.
        declared <- if ("sex" %in% names(d)) {
          attain ~ verbal + sexM + verbal:sexM + (1 | primary) + (verbal | second)
        } else formula
        fit <- hnm_fit(declared, plain, stats = TRUE)
        expect_equal(deviance(fit), lme4_devfun_at(formula, d, FALSE, fit$theta), tolerance = 1e-8,
                     info = info)
      }
    }
  }
  s <- hnm_stats(diameter ~ 1 + (1 | plate) + (1 | sample), several_factor_cases()[[1L]]$data)
  out <- capture.output(print(s, n = 2))
  expect_identical(out[1L], "Group statistics of `diameter` by `plate, sample`: 144 cells, 144 observations")
  expect_identical(out[length(out)], "# ... 142 more cells")
})

test_that("several grouping factors: statistics fits refuse row-level methods and bad tables", {
  d <- several_factor_cases()[[2L]]$data
  formula <- strength ~ 1 + (1 | batch/cask)
  s <- hnm_stats(formula, d)
  fit <- hnm_fit(formula, s)
  for (row_level in list(fitted, residuals, model.frame)) {
    expect_error(row_level(fit), class = "hnm_error_no_rows")
  }
  e <- function(expr, regexp, class = "hnm_error") expect_error(expr, regexp = regexp, class = class)
  plain <- as.data.frame(s)
  e(hnm_fit(formula, plain[c(1, 1:nrow(plain)), ], stats = TRUE),
    "the same combination twice", "hnm_error_invalid_statistics")
  missing_cell <- plain
  missing_cell$cask[3] <- NA
  e(hnm_fit(formula, missing_cell, stats = TRUE), "a missing value", "hnm_error_invalid_statistics")
  e(hnm_fit(formula, plain[names(plain) != "cask"], stats = TRUE), "no column `cask`")
  e(hnm_fit(formula, hnm_stats(strength ~ 1 + (1 | batch), d)),
    "holds statistics by `batch`, but the formula groups by `cask:batch, batch`")
  e(hnm_fit(formula, plain, stats = c(group = "batch")), "a column per grouping variable")
  e(hnm_stats(strength ~ 1 + (1 | batch) + (1 | toupper(cask)), d),
    "`toupper\\(cask\\)` must be a column", "hnm_error_formula")
})

test_that("a factor's levels are those of the rows used, as lme4's (rows and hnm_stats tables)", {
  skip_if_not_installed("lme4")
  cases <- unused_level_rows(12)
  text <- cases$text
  # A factor: the level "aa" first, on no row, and "zz" on none.
  coded <- cases$rows
  coded$f <- factor(coded$f, levels = c("aa", "lo", "mid", "zz"))
  for (data in list(text, coded)) {
    expect_level_fits(data, class(data$f), function(formula, reml) {
      list(expect_silent(hnm_fit(formula, data, REML = reml)),
           expect_silent(hnm_fit(formula, hnm_stats(formula, data), REML = reml)))
    })
  }
  # New data take the levels of the fit: "aa" is a level it does not have, as in lme4.
  fit <- hnm_fit(y ~ x + f + (1 | a), text)
  expect_error(predict(fit, newdata = data.frame(x = 0, f = "aa", a = "a01")), "aa")
  expect_equal(predict(fit, newdata = text[4:6, ]),
               predict(lme4::lmer(y ~ x + f + (1 | a), text, REML = FALSE), newdata = text[4:6, ]),
               tolerance = 1e-5, ignore_attr = TRUE)
})
