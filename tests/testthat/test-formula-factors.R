# Several grouping factors (issue 23): the formula's factors and terms, their levels, lme4's
# order and θ names must be lme4's own (lme4::lFormula()'s reTrms and an unoptimised lmer()'s
# getME(, "theta")); the cells of the rows must be the combinations interaction() finds.

# What lme4 makes of `formula` on `data`: its factors in order with their levels, the terms'
# columns (cnms), each term's factor (flist's "assign") and the names of θ.
lme4_layout <- function(formula, data) {
  re <- lme4::lFormula(formula, data)$reTrms
  fit <- lme4::lmer(formula, data, control = lme4::lmerControl(optimizer = NULL))
  list(levels = lapply(re$flist, levels), cnms = re$cnms, assign = attr(re$flist, "assign"),
       theta = names(lme4::getME(fit, "theta")))
}

# The same from hnm's parse, grouping factors, cells and order.
hnm_layout <- function(formula, data) {
  parsed <- hnm:::parse_mixed_formula(formula, several = TRUE)
  env <- environment(formula)
  factors <- hnm:::grouping_factors(parsed, data, env, NULL)
  cells <- hnm:::cell_codes(factors)
  order <- hnm:::factor_order(parsed, cells$n_levels)
  names <- vapply(parsed$factors, `[[`, "", "name")
  columns <- Map(function(k, j) hnm:::design_part(parsed$factors[[k]]$random[[j]], data, env,
                                                  NULL)$names,
                 order$terms$factor, order$terms$term)
  levels <- lapply(order$factors, function(k) {
    with_rows <- which(tabulate(cells$levels[[k]], factors[[k]]$n_groups) > 0L)
    hnm:::group_labels(factors[[k]], with_rows)
  })
  list(levels = stats::setNames(levels, names[order$factors]),
       cnms = stats::setNames(columns, names[order$terms$factor]),
       assign = match(order$terms$factor, order$factors),
       theta = hnm:::theta_names_terms(unname(columns), names[order$terms$factor]))
}

expect_lme4_layout <- function(formula, data) {
  expect_identical(hnm_layout(formula, data), lme4_layout(formula, data),
                   label = deparse1(formula))
}

test_that("nested, crossed and several-term formulas lay out as lme4's", {
  skip_if_not_installed("lme4")
  expect_lme4_layout(strength ~ 1 + (1 | batch/cask), lme4::Pastes)
  expect_lme4_layout(strength ~ 1 + (1 | batch) + (1 | cask:batch), lme4::Pastes)
  expect_lme4_layout(diameter ~ 1 + (1 | plate) + (1 | sample), lme4::Penicillin)
  expect_lme4_layout(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  expect_lme4_layout(Reaction ~ Days + (Days || Subject), lme4::sleepstudy)
  expect_lme4_layout(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), lme4::sleepstudy)
  instructors <- levels(lme4::InstEval$d)[1:150]
  inst <- lme4::InstEval[lme4::InstEval$d %in% instructors, ]
  expect_lme4_layout(y ~ service + (1 | s) + (1 | d) + (1 | dept), inst)
  expect_lme4_layout(y ~ 1 + service * dept + (1 | s) + (1 | d), inst)
})

test_that("three nested levels, slashes with interactions and columns of every kind", {
  skip_if_not_installed("lme4")
  set.seed(23)
  n <- 400
  d <- data.frame(y = rnorm(n), x = rnorm(n), a = sample(3, n, TRUE),
                  b = sample(c("p", "q", "r", "s"), n, TRUE),
                  c = factor(sample(letters[1:5], n, TRUE), levels = letters[5:1]))
  expect_lme4_layout(y ~ x + (1 | a/b/c), d)
  expect_lme4_layout(y ~ (x || a/b) + (1 | c), d)
  expect_lme4_layout(y ~ (1 | a/(b:c)), d)
  expect_lme4_layout(y ~ (1 | a:b) + (x | c), d)
  expect_lme4_layout(y ~ (x || b) + (1 | c), d)
})

test_that("text labels are ordered as factor() orders them where C.UTF-8 collates by ICU", {
  skip_if_not_installed("lme4")
  # R collates by ICU's root locale in every locale but C and POSIX (where it has ICU, and
  # the environment's LC_COLLATE, which testthat sets to C, is not C either): in C.UTF-8,
  # "_x" 10 9 a b B, not the byte order 10 9 B _x a b.
  old <- Sys.getlocale("LC_COLLATE")
  old_variable <- Sys.getenv("LC_COLLATE", unset = NA)
  Sys.setenv(LC_COLLATE = "C.UTF-8")
  on.exit({
    Sys.setlocale("LC_COLLATE", old)
    if (is.na(old_variable)) Sys.unsetenv("LC_COLLATE") else Sys.setenv(LC_COLLATE = old_variable)
  }, add = TRUE)
  skip_if(!nzchar(suppressWarnings(Sys.setlocale("LC_COLLATE", "C.UTF-8"))), "no C.UTF-8")
  set.seed(31)
  n <- 240
  d <- data.frame(s = sample(c("10", "9", "a", "B", "b", "_x"), n, TRUE),
                  t = sample(c("Z", "y", "_", "x1", "X2"), n, TRUE), x = rnorm(n))
  d$y <- rnorm(6)[factor(d$s)] + rnorm(5)[factor(d$t)] + d$x + rnorm(n)
  expect_lme4_layout(y ~ x + (1 | s) + (1 | t), d)
  expect_lme4_layout(y ~ x + (1 | s:t) + (1 | t), d)
  fit <- hnm_fit(y ~ x + (1 | s) + (1 | t), d)
  ref <- lme4::lmer(y ~ x + (1 | s) + (1 | t), d, REML = FALSE)
  expect_identical(lapply(ranef(fit), rownames), lapply(lme4::ranef(ref), rownames))
  expect_identical(rownames(ranef(fit)$s), levels(factor(d$s)))
  # The one-way model's groups too.
  one <- hnm_fit(y ~ 1 | s, d)
  expect_identical(rownames(ranef(one)$s), levels(factor(d$s)))
})

test_that("terms tied in number of levels are ordered as lme4's sort orders them", {
  skip_if_not_installed("lme4")
  set.seed(5)
  d <- data.frame(y = rnorm(100), x = rnorm(100), g = gl(10, 10), k = gl(10, 1, 100),
                  h = gl(5, 1, 100))
  # Levels never increase: the formula's order, ties included.
  expect_lme4_layout(y ~ (1 | g) + (1 | k) + (1 | h), d)
  # They do: decreasing levels, ties in reverse formula order (rev(order())), which puts a
  # factor's second term before its first and splits g's terms around k's.
  expect_lme4_layout(y ~ (1 | h) + (1 | g) + (0 + x | g), d)
  expect_lme4_layout(y ~ (1 | g) + (1 | h) + (0 + x | g) + (1 | k), d)
  # Levels counted among the rows, unused factor levels left out.
  d$k <- factor(d$k, levels = c(levels(d$k), "unused1", "unused2"))
  expect_lme4_layout(y ~ (1 | h) + (1 | g) + (1 | k), d)
})

test_that("one grouping factor parses as before; several are refused unless asked for", {
  parsed <- hnm:::parse_mixed_formula(y ~ x + (1 | g) + (0 + x | g))
  expect_identical(parsed$group, quote(g))
  expect_identical(parsed$group_name, "g")
  expect_identical(parsed$random, list(1, quote(0 + x)))
  expect_length(parsed$factors, 1L)
  expect_false(parsed$one_way)
  expect_true(hnm:::parse_mixed_formula(y ~ 1 | a:b)$one_way)
  expect_identical(hnm:::parse_mixed_formula(y ~ 1 | a:b)$group, quote(a:b))
  two <- "hnm_error_unsupported_formula"
  expect_error(hnm:::parse_mixed_formula(y ~ (1 | g/h)),
               "more than one grouping factor \\(h:g, g\\)", class = two)
  several <- hnm:::parse_mixed_formula(y ~ 1 | g/h, several = TRUE)
  expect_identical(lapply(several$factors, `[[`, "expr"), list(quote(h:g), quote(g)))
  expect_null(several$group)
  expect_false(several$one_way)
})

test_that("random-effects terms inside parentheses leave the fixed part, as lme4's nobars()", {
  skip_if_not_installed("lme4")
  for (formula in list(y ~ x + ((1 | a) + (1 | b)), y ~ x + ((1 | a) + z) + (1 | b),
                       y ~ ((x | a)) + (1 | b))) {
    expect_identical(hnm:::parse_mixed_formula(formula, several = TRUE)$fixed,
                     lme4::nobars(formula)[[3L]], label = deparse1(formula))
  }
  set.seed(41)
  n <- 200
  d <- data.frame(a = gl(10, 20), b = gl(8, 1, n), x = rnorm(n), z = rnorm(n))
  d$y <- d$x + rnorm(10)[d$a] + rnorm(8)[d$b] + rnorm(n)
  tight <- lme4::lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12))
  fit <- hnm_fit(y ~ x + ((1 | a) + (1 | b)), d)
  ref <- lme4::lmer(y ~ x + ((1 | a) + (1 | b)), d, REML = FALSE, control = tight)
  expect_equal(deviance(fit), deviance(ref), tolerance = 1e-10)
  expect_equal(fixef(fit), lme4::fixef(ref), tolerance = 1e-6)
  expect_identical(names(getME(fit, "theta")), names(lme4::getME(ref, "theta")))
})

test_that("grouping expressions that are not factors are refused, as lme4 cannot use them", {
  skip_if_not_installed("lme4")
  d <- data.frame(y = rnorm(20), g = gl(4, 5), h = gl(5, 1, 20))
  # lme4 evaluates `g + h` as R's `+` on factors: NA with a warning, then an error.
  expect_error(suppressWarnings(lme4::lFormula(y ~ (1 | g + h), d)), "Invalid grouping factor")
  two <- "hnm_error_unsupported_formula"
  for (several in c(FALSE, TRUE)) {
    expect_error(hnm:::parse_mixed_formula(y ~ (1 | g + h), several = several),
                 "`g \\+ h` in .* is not a factor.*`\\(1 \\| g\\) \\+ \\(1 \\| h\\)`", class = two)
    expect_error(hnm:::parse_mixed_formula(y ~ x + (x | g * h), several = several),
                 "`g \\* h`.*`\\(x \\| g\\) \\+ \\(x \\| h\\)`", class = two)
    expect_error(hnm:::parse_mixed_formula(y ~ (1 | a/(b + c)), several = several),
                 "`b \\+ c`", class = two)
    expect_error(hnm:::parse_mixed_formula(y ~ (1 | a:(b/c)), several = several),
                 "`/` may only join factors at the top", class = two)
  }
})

# The reference: interaction() of factor()'s factors (NaN a missing value, as hnm drops it).
reference_interaction <- function(columns) {
  factors <- lapply(columns, function(g) {
    if (is.factor(g)) g else factor(g, exclude = if (is.double(g)) c(NA, NaN) else NA)
  })
  interaction(factors, sep = ":", lex.order = TRUE, drop = TRUE)
}

random_columns <- function(n, sizes) {
  list(character = sample(c(sprintf("s%03d", seq_len(sizes[1L])), NA), n, TRUE),
       integer = sample(c(seq_len(sizes[2L]) * 1000L, NA), n, TRUE),
       small_range = sample(c(seq_len(sizes[3L]), NA), n, TRUE),
       double = sample(c(seq_len(sizes[4L]) / 4, NaN, NA), n, TRUE),
       factor = factor(sample(c(letters[1:5], NA), n, TRUE), levels = letters[6:1]))
}

test_that("cell_codes() gives the combinations interaction() finds, rows with a NA in none", {
  set.seed(7)
  n <- 20000
  # Few levels (the combined key is tabulated) and many (it is radix-sorted).
  for (sizes in list(c(3, 4, 2, 3), c(200, 150, 30, 40))) {
    columns <- random_columns(n, sizes)
    d <- as.data.frame(columns)
    parsed <- hnm:::parse_mixed_formula(
      y ~ (1 | character) + (1 | integer) + (1 | small_range) + (1 | double:factor),
      several = TRUE)
    factors <- hnm:::grouping_factors(parsed, d, globalenv(), NULL)
    keep <- runif(n) > 0.1
    cells <- hnm:::cell_codes(factors, keep)
    reference <- reference_interaction(columns)
    reference[!keep] <- NA
    reference <- droplevels(reference)
    expect_identical(is.na(cells$cell), is.na(reference))
    expect_identical(cells$n_cells, nlevels(reference))
    # One cell for each combination and one combination for each cell.
    pairs <- unique(data.frame(cell = cells$cell, reference = as.integer(reference)))
    expect_false(anyDuplicated(pairs$cell[!is.na(pairs$cell)]) > 0L)
    expect_false(anyDuplicated(pairs$reference[!is.na(pairs$reference)]) > 0L)
    # Each cell's level of each factor is its rows' level.
    observed <- !is.na(cells$cell)
    for (k in seq_along(factors)) {
      labels <- hnm:::group_labels(factors[[k]], cells$levels[[k]][cells$cell[observed]])
      expect_identical(labels, as.character(interaction(
        lapply(columns[if (k < 4L) k else 4:5], as.character), sep = ":"))[observed])
      expect_identical(cells$n_levels[k], length(unique(labels)))
    }
  }
})

test_that("dense_codes() numbers the combinations of one or two keys in lexical order", {
  set.seed(11)
  n <- 30000
  # Few combinations and many (InstEval's students x instructors is 2972 x 1128), integer
  # keys (by Rust's counting sorts) and doubles (by R's table or radix sort).
  for (sizes in list(c(7L, 5L), c(3000L, 1100L))) {
    a <- sample(sizes[1L], n, TRUE)
    b <- sample(sizes[2L], n, TRUE)
    reference <- interaction(factor(a, levels = seq_len(sizes[1L])),
                             factor(b, levels = seq_len(sizes[2L])), drop = TRUE, lex.order = TRUE)
    single <- droplevels(factor(a, levels = seq_len(sizes[1L])))
    for (convert in list(as.integer, as.double)) {
      two <- hnm:::dense_codes(list(convert(a), convert(b)), sizes)
      expect_identical(as.integer(two$codes), as.integer(reference))
      expect_identical(as.integer(two$n), nlevels(reference))
      one <- hnm:::dense_codes(list(convert(a)), sizes[1L])
      expect_identical(as.integer(one$codes), as.integer(single))
      expect_identical(as.integer(one$n), nlevels(single))
    }
  }
  # A key outside its range (or NA) is left to R's code, which keeps it as R's `[` would.
  expect_null(hnm:::rs_dense_codes(list(c(1L, 3L), c(1L, 1L)), c(2L, 1L)))
  expect_null(hnm:::rs_dense_codes(list(c(1L, NA), c(1L, 1L)), c(2L, 1L)))
})

test_that("an interaction's levels are interaction()'s labels, ASCII or not", {
  set.seed(12)
  a <- sample(c("b", "a", "c"), 300, TRUE)
  b <- sample(c("x", "\u00e9t\u00e9", "z"), 300, TRUE)
  # ASCII labels (made by rs_cell_labels()) and UTF-8 ones (left to paste()).
  for (second in list(sub("\u00e9t\u00e9", "y", b), b)) {
    d <- data.frame(a = a, b = second)
    g <- hnm:::group_variable(quote(a:b), d, globalenv(), NULL)
    reference <- interaction(d$a, d$b, sep = ":", drop = TRUE, lex.order = TRUE)
    expect_identical(levels(g), levels(reference))
    expect_identical(as.integer(g), as.integer(reference))
  }
  expect_null(hnm:::rs_cell_labels(list("\u00e9", "x"), list(1L, 1L), ":"))
  expect_null(hnm:::rs_cell_labels(list(c("a", NA), "x"), list(2L, 1L), ":"))
  expect_null(hnm:::rs_cell_labels(list("a", "x"), list(2L, 1L), ":"))
})

test_that("a nested outer factor leaves the cells of its inner factor", {
  set.seed(8)
  class <- sample(300, 5000, TRUE)
  d <- data.frame(class = class, school = (class - 1L) %/% 10L + 1L)
  parsed <- hnm:::parse_mixed_formula(y ~ 1 | school/class, several = TRUE)
  cells <- hnm:::cell_codes(hnm:::grouping_factors(parsed, d, globalenv(), NULL))
  expect_identical(cells$n_cells, length(unique(class)))
  expect_identical(cells$n_levels, c(length(unique(class)), length(unique(d$school))))
  expect_identical(cells$cell, match(class, sort(unique(class))))
})

test_that("nested parts combine by their inner part's levels, unused levels left out", {
  set.seed(10)
  # Classes 51 and 61..70 have no rows; school is a function of class (nested_cells()).
  class <- factor(sample(c(1:50, 52:60), 4000, TRUE), levels = 1:70)
  school <- factor((as.integer(as.character(class)) - 1L) %/% 10L + 1L, levels = 6:1)
  d <- data.frame(y = rnorm(4000), class = class, school = school)
  reference <- droplevels(interaction(d$school, d$class, sep = ":", lex.order = TRUE))
  expect_identical(hnm:::group_variable(quote(school:class), d, globalenv(), NULL), reference)
  parsed <- hnm:::parse_mixed_formula(y ~ (1 | school) + (1 | school:class), several = TRUE)
  cells <- hnm:::cell_codes(hnm:::grouping_factors(parsed, d, globalenv(), NULL))
  expect_identical(cells$n_cells, nlevels(reference))
  expect_identical(cells$cell, as.integer(reference))
  expect_identical(cells$n_levels, c(nlevels(droplevels(school)), nlevels(reference)))
  # The first classes without rows too (a few rows of new data, as predict() codes them).
  few <- d[d$class %in% c(3, 4, 5, 13), ]
  expect_identical(hnm:::group_variable(quote(school:class), few, globalenv(), NULL),
                   droplevels(interaction(few$school, few$class, sep = ":", lex.order = TRUE)))
  # A class in two schools is not nested: the general combination gives interaction()'s cells.
  d$school[1L] <- if (d$school[1L] == "1") "2" else "1"
  reference <- droplevels(interaction(d$school, d$class, sep = ":", lex.order = TRUE))
  expect_identical(hnm:::group_variable(quote(school:class), d, globalenv(), NULL), reference)
})

test_that("an interaction's parts give its cells without a pass, as the pass finds them", {
  set.seed(12)
  # Classes in schools in districts, each factor with levels in an order of its own (school's
  # reversed), some classes without rows; a district is a part of no interaction here.
  class <- factor(sample(c(1:50, 52:60), 4000, TRUE), levels = 1:70)
  school <- factor((as.integer(as.character(class)) - 1L) %/% 10L + 1L, levels = 6:1)
  d <- data.frame(y = rnorm(4000), class = class, school = school,
                  district = factor((as.integer(as.character(school)) - 1L) %/% 2L))
  reference <- droplevels(interaction(d$school, d$class, sep = ":", lex.order = TRUE))
  # Without a pass over the parts where the interaction has the most levels (district, a part
  # of no interaction, from a pass over the interaction's codes and its own); not with class
  # first (70 levels, 11 unused).
  formulas <- list(y ~ (1 | school) + (1 | school:class),
                   y ~ (1 | class) + (1 | school) + (1 | school:class),
                   y ~ (1 | school:class) + (1 | district))
  for (k in seq_along(formulas)) {
    formula <- formulas[[k]]
    parsed <- hnm:::parse_mixed_formula(formula, several = TRUE)
    factors <- hnm:::grouping_factors(parsed, d, globalenv(), NULL)
    cells <- hnm:::cell_codes(factors)
    # The reference: the same cells found by the pass over the rows (no parts known).
    by_pass <- hnm:::cell_codes(lapply(factors, function(f) f[names(f) != "parts"]))
    expect_identical(cells, by_pass)
    # The cells numbered as the interaction's levels when it has the most levels.
    if (k != 2L) expect_identical(cells$cell, as.integer(reference))
    # Each factor's level of each cell is that of the cell's rows.
    for (f in seq_along(factors)) {
      codes <- as.integer(factors[[f]]$codes)
      expect_identical(cells$levels[[f]][cells$cell], codes)
    }
    sizes <- vapply(factors, function(f) as.integer(f$n_groups), 0L)
    first <- order(sizes, decreasing = TRUE)
    shortcut <- hnm:::interaction_cells(factors[first], lapply(factors[first], `[[`, "codes"),
                                        sizes[first])
    expect_identical(is.null(shortcut), k == 2L)
  }
  # A school that is not the interaction's (other codes, the same groups) takes the pass.
  d$school2 <- factor(as.character(d$school))
  parsed <- hnm:::parse_mixed_formula(y ~ (1 | school2) + (1 | school:class), several = TRUE)
  factors <- hnm:::grouping_factors(parsed, d, globalenv(), NULL)
  shortcut <- hnm:::interaction_cells(factors[2:1], lapply(factors[2:1], `[[`, "codes"),
                                      c(59L, 6L))
  expect_identical(shortcut$levels[[2L]], as.integer(d$school2)[match(seq_len(59L),
                                                                      as.integer(reference))])
  cells <- hnm:::cell_codes(factors)
  expect_identical(cells$levels[[1L]][cells$cell], as.integer(d$school2))
})

test_that("codes mapped through the cells' order are R's subsetting, NA kept", {
  set.seed(11)
  map <- sample(c(1:40, NA))
  codes <- sample(c(1:41, NA), 5000, TRUE)
  expect_identical(hnm:::rs_map_codes(map, codes, 2L), map[codes])
  expect_identical(hnm:::rs_map_codes(map, factor(letters[c(2, 1, 3)]), 2L), map[c(2L, 1L, 3L)])
  # On one thread and on two (from 2e5 codes on), each writing half.
  many <- sample(c(1:40, NA), 3e5, TRUE)
  for (threads in 1:2) expect_identical(hnm:::rs_map_codes(map, many, threads), map[many])
  # Codes R's `[` reads by its own rules (0, negative, beyond the map, doubles) are left to it.
  for (other in list(c(1L, 0L), c(-1L, -2L), c(1L, 42L), c(1, 2), c(many, 0L))) {
    expect_null(hnm:::rs_map_codes(map, other, 2L))
    expect_identical(hnm:::map_codes(map, other), map[other])
  }
})

test_that("an interaction grouping variable is interaction()'s factor, for every column type", {
  set.seed(9)
  columns <- random_columns(3000, c(20, 15, 6, 8))
  columns$date <- as.Date("2020-01-01") + sample(c(1:5, NA), 3000, TRUE)
  d <- as.data.frame(columns)
  pairs <- utils::combn(names(columns), 2L, simplify = FALSE)
  for (parts in c(pairs, list(names(columns)))) {
    expr <- str2lang(paste(parts, collapse = ":"))
    expect_identical(hnm:::group_variable(expr, d, globalenv(), NULL),
                     reference_interaction(columns[parts]), label = deparse1(expr))
  }
})

test_that("for new data, each factor's codes index the fit's levels, NA for a new level", {
  fit_data <- data.frame(a = c("x", "y", "z", "y"), b = c(3L, 1L, 2L, 2L))
  new_data <- data.frame(a = c("z", "w", NA, "x"), b = c(2L, 1L, 4L, 3L))
  parsed <- hnm:::parse_mixed_formula(y ~ (1 | a) + (1 | b:a), several = TRUE)
  levels <- lapply(hnm:::grouping_factors(parsed, fit_data, globalenv(), NULL), function(f) {
    hnm:::group_labels(f, seq_len(f$n_groups))
  })
  expect_identical(levels, list(c("x", "y", "z"), c("1:y", "2:y", "2:z", "3:x")))
  codes <- lapply(hnm:::grouping_factors(parsed, new_data, globalenv(), NULL, levels),
                  `[[`, "codes")
  expect_identical(codes, list(match(new_data$a, c("x", "y", "z")),
                               match(paste(new_data$b, new_data$a, sep = ":"), levels[[2L]])))
})

test_that("two different columns of one name are refused, one column shared by X and Z is not", {
  # hnm reads the model's columns by name. A sum-coded `f` in X has columns `f1`, `f2`, the
  # indicators of `(0 + f | b)` in Z too; a factor `g` coded `g2` beside a numeric column g2.
  # Taken for one another they made a different model (REML 84 above lme4's, 1396.04 vs
  # 1262.27 for the second): refused, naming the column.
  set.seed(3)
  n <- 200
  d <- data.frame(a = factor(sample(20, n, TRUE)), b = factor(sample(8, n, TRUE)),
                  f = factor(sample(1:3, n, TRUE)), g = factor(sample(1:2, n, TRUE)),
                  x = rnorm(n), g2 = rnorm(n), f1 = rnorm(n))
  d$y <- rnorm(20)[d$a] + rnorm(8)[d$b] + as.integer(d$f) + d$x + rnorm(n)
  collisions <- list(list(y ~ f + (1 | a) + (0 + f | b), list(f = "contr.sum"), "f1"),
                     list(y ~ f + (0 + f | b), list(f = "contr.sum"), "f1"),
                     list(y ~ f1 + (1 | a) + (0 + f | b), NULL, "f1"),
                     list(y ~ g + g2 + (1 | a) + (1 | b), NULL, "g2"),
                     list(y ~ g2 + g + x + (1 | a), NULL, "g2"))
  for (case in collisions) {
    expect_error(hnm_fit(case[[1]], d, contrasts = case[[2]]),
                 sprintf("two different columns named `%s`", case[[3]]),
                 class = "hnm_error_formula", label = deparse1(case[[1]]))
  }
  # The same column in X and Z (treatment-coded `f`'s `f2`, `f3` are also indicators of
  # `(0 + f | b)`; `x` a slope), read once: lme4's fit.
  tight <- lme4::lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12),
                             calc.derivs = FALSE, check.conv.singular = "ignore")
  for (formula in list(y ~ f + (1 | a) + (0 + f | b), y ~ x + (x | a) + (1 | b))) {
    fit <- hnm_fit(formula, d, REML = TRUE)
    ref <- lme4::lmer(formula, d, REML = TRUE, control = tight)
    expect_lte(REMLcrit(fit), lme4::REMLcrit(ref) + 1e-7)
    expect_equal(REMLcrit(fit), lme4::REMLcrit(ref), tolerance = 1e-8)
    expect_equal(unname(fixef(fit)), unname(lme4::fixef(ref)), tolerance = 1e-5)
  }
})

test_that("model matrices built from their distinct rows are R's model.matrix()", {
  set.seed(3)
  n <- 5000
  d <- data.frame(a = factor(sample(c("p", "q", "r"), n, TRUE)),
                  b = factor(sample(letters[1:6], n, TRUE), levels = c(letters[1:6], "unused")),
                  o = factor(sample(1:4, n, TRUE), ordered = TRUE), x = rnorm(n))
  d$s <- d$a
  contrasts(d$s) <- contr.sum(3)
  d$na <- d$b
  d$na[7] <- NA
  cases <- list(
    list(rhs = ~ a * b, distinct = TRUE), list(rhs = ~ 0 + a:b, distinct = TRUE),
    list(rhs = ~ s + o + a:o, distinct = TRUE),
    list(rhs = ~ a + b, contrasts = list(a = "contr.helmert"), distinct = TRUE),
    # Not from distinct rows: a numeric variable, a missing value, a combination a row.
    list(rhs = ~ a * x, distinct = FALSE), list(rhs = ~ a + na, distinct = FALSE),
    list(rhs = ~ factor(seq_len(n) %% 1000), distinct = FALSE))
  for (case in cases) {
    info <- deparse1(case$rhs)
    t <- terms(case$rhs)
    frame <- model.frame(t, d, na.action = na.pass)
    expected <- model.matrix(t, frame, contrasts.arg = case$contrasts)
    m <- hnm:::model_matrix(t, frame, case$contrasts)
    expect_identical(!is.null(hnm:::few_combinations(t, frame)), case$distinct, info = info)
    if (case$distinct) dimnames(expected) <- list(NULL, colnames(expected))
    # Elements and sums first (read from the distinct rows), then the whole matrix (expanded).
    cells <- cbind(sample(n, 50, TRUE), sample(ncol(expected), 50, TRUE))
    expect_identical(m[cells], unname(expected[cells]), info = info)
    expect_identical(colSums(m), colSums(expected), info = info)
    expect_identical(sum(m), sum(expected), info = info)
    expect_identical(m, expected, info = info)
    expect_identical(m[cells], unname(expected[cells]), info = info)
  }
  # Fewer than 1,024 rows: model.matrix() itself.
  expect_null(hnm:::few_combinations(terms(~ a * b), model.frame(~ a * b, d[1:1000, ])))
})

test_that("a model matrix held as its distinct rows hashes as its values, also once changed", {
  set.seed(5)
  n <- 4096
  d <- data.frame(a = factor(sample(3, n, TRUE)))
  plain <- unname(model.matrix(~ a, d))
  m <- hnm:::rs_rows_of_distinct(plain[match(1:3, d$a), ], as.integer(d$a))
  # The pass's hash of every value read (rs_lmm_fingerprint(), which tells a fit's data
  # changed): the same as of the plain matrix, before and after both are changed (R's
  # assignment makes a plain copy of the held matrix).
  hash <- function(x) hnm:::rs_lmm_fingerprint(list(x), rep(1L, n), 0L)
  expect_identical(hash(m), hash(plain))
  m[2L, 2L] <- 7
  plain[2L, 2L] <- 7
  expect_identical(unname(m[2L, 2L]), 7)
  expect_identical(hash(m), hash(plain))
})
