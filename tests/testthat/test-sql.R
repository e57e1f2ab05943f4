# Fits of database tables: the group statistics are computed by SQL inside SQLite (in memory)
# and PostgreSQL (the server tools/postgres.sh starts; HNM_PG_* name it). References: the fit
# of the same rows in memory (checked against lme4 in test-lme4-agreement.R), lme4 itself,
# and base R's per-group statistics.

sqlite_connection <- function() {
  skip_if_not_installed("RSQLite")
  DBI::dbConnect(RSQLite::SQLite(), ":memory:")
}

postgres_connection <- function() {
  skip_if_not_installed("RPostgreSQL")
  settings <- Sys.getenv(c("HNM_PG_HOST", "HNM_PG_PORT", "HNM_PG_USER", "HNM_PG_PASSWORD",
                           "HNM_PG_DBNAME"))
  if (any(settings == "")) {
    skip("no PostgreSQL server configured: set HNM_PG_HOST, HNM_PG_PORT, HNM_PG_USER, HNM_PG_PASSWORD, HNM_PG_DBNAME (tools/postgres.sh start prints them)")
  }
  tryCatch(
    DBI::dbConnect(RPostgreSQL::PostgreSQL(), host = settings[["HNM_PG_HOST"]],
                   port = as.integer(settings[["HNM_PG_PORT"]]), user = settings[["HNM_PG_USER"]],
                   password = settings[["HNM_PG_PASSWORD"]], dbname = settings[["HNM_PG_DBNAME"]]),
    error = function(e) skip(paste("PostgreSQL server not reachable:", conditionMessage(e))))
}

database_connections <- list(SQLite = sqlite_connection, PostgreSQL = postgres_connection)

# Evaluates `expr` muffling only dbplyr's notice that RPostgreSQL uses its older backend
# interface (a fact about the installed packages, not about hnm).
without_old_interface_notice <- function(expr) {
  withCallingHandlers(expr, warning = function(w) {
    if (grepl("uses an old dbplyr interface", conditionMessage(w))) invokeRestart("muffleWarning")
  })
}

# `data` written to a new table of `con`, as a dbplyr table; the process id in the name keeps
# concurrent test runs on one server apart.
table_name <- function(name) sprintf("%s_%d", name, Sys.getpid())
database_table <- function(con, data, name) {
  DBI::dbWriteTable(con, name, data, overwrite = TRUE, row.names = FALSE)
  without_old_interface_notice(dplyr::tbl(con, name))
}

# Evaluates `expr` and counts the rows DBI fetches into R meanwhile (dbplyr's collect()
# fetches through DBI::dbFetch).
with_fetched_rows <- function(expr) {
  log <- new.env()
  log$rows <- 0
  suppressMessages(trace(DBI::dbFetch, where = asNamespace("DBI"), print = FALSE,
                         exit = bquote(assign("rows", .(log)$rows + NROW(returnValue()), envir = .(log)))))
  on.exit(suppressMessages(untrace(DBI::dbFetch, where = asNamespace("DBI"))))
  value <- without_old_interface_notice(expr)
  list(value = value, rows = log$rows)
}

test_that("database fits equal in-memory fits to 1e-9, collecting one row per group", {
  skip_if_not_installed("dbplyr")
  for (backend in names(database_connections)) {
    con <- database_connections[[backend]]()
    for (offset in c(0, 1e9)) {
      d <- simulate_large(offset, seed = 620)
      table <- database_table(con, d, table_name("hnm_large"))
      groups <- length(unique(stats::na.omit(d$g)))
      for (reml in c(FALSE, TRUE)) {
        info <- sprintf("%s, offset %g, REML = %s", backend, offset, reml)
        in_memory <- hnm_fit(y ~ 1 | g, d, REML = reml)
        database <- with_fetched_rows(hnm_fit(y ~ 1 | g, table, REML = reml))
        expect_equal(fit_numbers(database$value), fit_numbers(in_memory), tolerance = 1e-9,
                     info = info)
        expect_equal(confint(database$value), confint(in_memory), tolerance = 1e-9, info = info)
        expect_identical(database$value$stats$group, in_memory$stats$group, info = info)
        expect_identical(database$value$stats$n_dropped, sum(is.na(d$y) | is.na(d$g)), info = info)
        # One row per group, plus the NULL group of the rows without a group.
        expect_lte(database$rows, groups + 1)
        expect_null(database$value$y)
      }
      stats <- with_fetched_rows(hnm_stats(y ~ 1 | g, table))
      reference <- base_r_statistics(d$y, d$g)
      expect_equal(as.data.frame(stats$value)[c("group", "n", "mean", "ss")], reference,
                   tolerance = 1e-12, info = backend)
      expect_lte(stats$rows, groups + 1)
      DBI::dbRemoveTable(con, table_name("hnm_large"))
    }
    DBI::dbDisconnect(con)
  }
})

test_that("database fits agree with lme4 and accept expressions of columns", {
  skip_if_not_installed("dbplyr")
  skip_if_not_installed("lme4")
  for (backend in names(database_connections)) {
    con <- database_connections[[backend]]()
    rail <- as.data.frame(nlme::Rail)
    rail$Rail <- as.character(rail$Rail)
    table <- database_table(con, rail, table_name("hnm_rail"))
    reference <- lme4::lmer(travel ~ 1 + (1 | Rail), rail, REML = FALSE)
    fit <- with_fetched_rows(hnm_fit(travel ~ 1 + (1 | Rail), table))$value
    expect_equal(fixef(fit), lme4::fixef(reference), tolerance = 1e-6, info = backend)
    expect_equal(as.data.frame(VarCorr(fit))$vcov, as.data.frame(lme4::VarCorr(reference))$vcov,
                 tolerance = 1e-6, info = backend)
    expect_equal(c(logLik(fit)), c(logLik(reference)), tolerance = 1e-6, info = backend)
    # A transformed response, with a variable of the formula's environment: scaling y by k
    # scales mu by k and the variances by k^2 (lme4's fit above as the reference).
    k <- 0.5
    scaled <- with_fetched_rows(hnm_fit(travel * k - 1 ~ 1 | Rail, table))$value
    expect_equal(unname(fixef(scaled)), unname(lme4::fixef(reference)) * k - 1, tolerance = 1e-6,
                 info = backend)
    expect_equal(sigma(scaled), sigma(reference) * k, tolerance = 1e-6, info = backend)
    expect_error(residuals(fit), class = "hnm_no_rows")
    DBI::dbRemoveTable(con, table_name("hnm_rail"))
    DBI::dbDisconnect(con)
  }
})

test_that("bad database inputs are classed errors", {
  skip_if_not_installed("dbplyr")
  con <- sqlite_connection()
  table <- database_table(con, data.frame(y = c(1, 2, 3, NA), g = c("a", "a", "b", "b"),
                                          label = "x"), table_name("hnm_bad"))
  expect_error(hnm_fit(z ~ 1 | g, table), class = "hnm_error",
               regexp = "the response `z` is not a column of the database table")
  expect_error(hnm_fit(y ~ 1 | school, table), class = "hnm_error",
               regexp = "the grouping variable `school` is not a column")
  expect_error(hnm_fit(label ~ 1 | g, table), class = "hnm_error",
               regexp = "the response `label` must be numeric, not character")
  expect_error(hnm_fit(y ~ 1 | g, table, stats = TRUE), class = "hnm_error",
               regexp = "`stats` is for data frames")
  empty <- dplyr::filter(table, y > 10)
  expect_error(hnm_fit(y ~ 1 | g, empty), class = "hnm_error", regexp = "no complete rows")
  DBI::dbDisconnect(con)
})

test_that("the query's own column names never shadow the user's (issue 15: `hnm_g`)", {
  skip_if_not_installed("dbplyr")
  for (backend in names(database_connections)) {
    con <- database_connections[[backend]]()
    set.seed(15)
    d <- data.frame(y = rnorm(60), g = rep(letters[1:6], each = 10), hnm_g = rnorm(60),
                    hnm_group = rnorm(60), hnm_response = rnorm(60), n = rnorm(60))
    name <- table_name("hnm_shadow")
    table <- database_table(con, d, name)
    for (formula in list((y - hnm_g) ~ 1 | g, (y + hnm_group * hnm_response) ~ 1 | g,
                         (y - n) ~ 1 | g)) {
      sql <- without_old_interface_notice(hnm_fit(formula, table))
      memory <- hnm_fit(formula, d)
      expect_equal(c(sql$mu, sql$sigma2, sql$tau2), c(memory$mu, memory$sigma2, memory$tau2),
                   tolerance = 1e-12, label = paste(backend, deparse1(formula)))
    }
    DBI::dbRemoveTable(con, name)
    DBI::dbDisconnect(con)
  }
})

test_that("SQLite's dynamic typing: text in a numeric column and mixed-type groups are refused", {
  skip_if_not_installed("dbplyr")
  con <- sqlite_connection()
  on.exit(DBI::dbDisconnect(con))
  DBI::dbExecute(con, "CREATE TABLE texty (y REAL, g INTEGER)")
  DBI::dbExecute(con, paste("INSERT INTO texty VALUES (1.0, 1), ('abc', 1), (3.5, 2), (1.5, 2),",
                            "(2.2, 3), (3.1, 3)"))
  table <- dplyr::tbl(con, "texty")
  for (formula in list(y ~ 1 | g, (2 * y) ~ 1 | g)) {
    expect_error(hnm_fit(formula, table), "1 text or blob value", class = "hnm_error")
  }
  DBI::dbExecute(con, "CREATE TABLE mixed (y REAL, g)")
  DBI::dbExecute(con, paste("INSERT INTO mixed VALUES (1.0, 1), (2.0, 1), (3.5, '1'), (1.5, '1'),",
                            "(2.2, 'b'), (3.1, 'b')"))
  expect_error(suppressWarnings(hnm_fit(y ~ 1 | g, dplyr::tbl(con, "mixed"))),
               "values of different types that read alike", class = "hnm_error")
})
