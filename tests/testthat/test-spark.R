# Fits whose SQL runs on a real Spark (local mode, pyspark from PyPI: tools/spark.sh install).
# The queries are those hnm sends to a dbplyr table, rendered by dbplyr for Spark SQL (its
# Hive dialect, as sparklyr's tables use) and run as SQL text by a Python process holding one
# Spark session; their rows come back exactly (doubles as hexadecimal). Reference: the fit
# of the same rows in memory (checked against lme4 in test-lmm-lme4.R and
# test-lme4-agreement.R).

# The Python side: a Spark session answering requests (files request-<i>.txt in `work`) until
# told to stop, or until R exits or stays silent for 10 minutes. It makes itself a process
# group leader, so the Spark JVM it starts is in its group, and R can end them all.
spark_server_script <- '
import os, sys, time
work, parent, marker = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    os.setsid()
except OSError:
    pass
def reply(i, kind, text):
    path = os.path.join(work, "%s-%d" % (kind, i))
    with open(path + ".tmp", "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(path + ".tmp", path)
os.environ["PYSPARK_SUBMIT_ARGS"] = "--driver-java-options -Dhnm.marker=%s pyspark-shell" % marker
# Loopback only, and no look-up of the machine\'s host name (Java\'s InetAddress.getLocalHost
# fails where the host name does not resolve, and Spark calls it unless these are set).
os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
os.environ["SPARK_LOCAL_HOSTNAME"] = "localhost"
try:
    from pyspark.sql import SparkSession
    spark = (SparkSession.builder.master("local[1]").appName("hnm-test")
             .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "1")
             .config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
except Exception as e:
    reply(0, "failed", repr(e))
    sys.exit(1)
reply(0, "ready", spark.version)
def field(value):
    if value is None:
        return "NA"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return value.hex()
    if isinstance(value, int):
        return str(value)
    return \'"\' + str(value).replace(\'"\', \'""\') + \'"\'
i, idle = 1, time.time()
while True:
    path = os.path.join(work, "request-%d.txt" % i)
    if not os.path.exists(path):
        try:
            os.kill(parent, 0)
        except OSError:
            break
        if time.time() - idle > 600:
            break
        time.sleep(0.02)
        continue
    with open(path, encoding="utf-8") as f:
        command, _, body = f.read().partition("\\n")
    try:
        if command == "stop":
            break
        if command == "view":
            name, csv, schema = body.rstrip("\\n").split("\\n")
            (spark.read.csv(csv, schema=schema, header=True, nullValue="NA", escape=\'"\', mode="FAILFAST")
             .createOrReplaceTempView(name))
            reply(i, "result", "")
        else:
            frame = spark.sql(body)
            lines = [",".join(frame.columns), ",".join(f.dataType.simpleString() for f in frame.schema.fields)]
            lines += [",".join(field(v) for v in row) for row in frame.collect()]
            reply(i, "result", "\\n".join(lines) + "\\n")
    except Exception as e:
        reply(i, "error", str(e))
    i, idle = i + 1, time.time()
spark.stop()
'

# The Python to run Spark with: HNM_SPARK_PYTHON, or the virtualenv tools/spark.sh makes.
spark_python <- function() {
  python <- Sys.getenv("HNM_SPARK_PYTHON")
  if (nzchar(python)) return(python)
  cache <- Sys.getenv("XDG_CACHE_HOME", file.path(Sys.getenv("HOME"), ".cache"))
  file.path(cache, "hnm", "spark", "venv", "bin", "python")
}

# Where Spark cannot start the test is skipped, saying why, unless HNM_SPARK_REQUIRED is set
# (as .ci/run sets it after installing Spark): then it fails, so a Spark that was installed
# but cannot run never passes as a skip.
spark_cannot_start <- function(why) {
  message <- paste("Spark cannot start:", why)
  if (nzchar(Sys.getenv("HNM_SPARK_REQUIRED"))) stop(message, call. = FALSE) else skip(message)
}

# Starts the Spark session and returns its handle: `request(command, body)` and `stop()`,
# which ends the session and every process of it.
start_spark <- function() {
  python <- spark_python()
  if (!file.exists(python)) {
    spark_cannot_start(sprintf("no Python with pyspark at %s (run tools/spark.sh install)", python))
  }
  if (!nzchar(Sys.which("java")) && !nzchar(Sys.getenv("JAVA_HOME"))) {
    spark_cannot_start("no Java runtime (run tools/spark.sh install)")
  }
  work <- tempfile("hnm-spark-")
  dir.create(work)
  writeLines(spark_server_script, file.path(work, "server.py"))
  marker <- basename(work)
  system2(python, c(file.path(work, "server.py"), work, Sys.getpid(), marker), wait = FALSE,
          stdout = file.path(work, "log.txt"), stderr = file.path(work, "log.txt"))
  spark <- new.env()
  spark$work <- work
  spark$marker <- marker
  spark$next_request <- 1L
  spark$request <- function(command, body = "") {
    i <- spark$next_request
    spark$next_request <- i + 1L
    path <- file.path(work, sprintf("request-%d.txt", i))
    writeLines(c(command, body), paste0(path, ".tmp"), useBytes = TRUE)
    file.rename(paste0(path, ".tmp"), path)
    if (command == "stop") return(invisible())
    answer <- wait_for_file(file.path(work, sprintf(c("result-%d", "error-%d"), i)), 120)
    if (endsWith(answer, sprintf("error-%d", i))) {
      stop(paste(readLines(answer, warn = FALSE), collapse = "\n"))
    }
    answer
  }
  spark$stop <- function() stop_spark(spark)
  status <- wait_for_file(file.path(work, c("ready-0", "failed-0")), 180, spark)
  if (endsWith(status, "failed-0")) {
    message <- c(readLines(status, warn = FALSE),
                 utils::tail(readLines(file.path(work, "log.txt"), warn = FALSE), 20L))
    stop_spark(spark)
    spark_cannot_start(paste(message, collapse = "\n"))
  }
  spark
}

# Waits for the first of `paths` to appear and returns it; an error after `seconds`.
wait_for_file <- function(paths, seconds, spark = NULL) {
  deadline <- Sys.time() + seconds
  while (Sys.time() < deadline) {
    found <- paths[file.exists(paths)]
    if (length(found) > 0L) return(found[1L])
    Sys.sleep(0.02)
  }
  log <- if (!is.null(spark)) readLines(file.path(spark$work, "log.txt"), warn = FALSE)
  if (!is.null(spark)) stop_spark(spark)
  stop(sprintf("Spark did not answer within %d s: %s", seconds, paste(utils::tail(log, 5), collapse = "\n")))
}

# The processes of the session: the Python process group, and any JVM with the marker.
spark_processes <- function(spark) {
  ps <- system2("ps", c("-eo", "pid=,pgid=,args="), stdout = TRUE)
  leader <- if (is.null(spark$leader)) spark_leader(spark) else spark$leader
  fields <- strsplit(trimws(ps), "[[:space:]]+")
  mine <- vapply(fields, function(f) {
    (!is.na(leader) && identical(f[2L], as.character(leader))) ||
      any(grepl(spark$marker, f[-(1:2)], fixed = TRUE))
  }, logical(1))
  ps[mine & !grepl("ps -eo", ps, fixed = TRUE)]
}

# The Python process's id (its process group's): the one whose arguments hold the marker.
spark_leader <- function(spark) {
  ps <- system2("ps", c("-eo", "pid=,args="), stdout = TRUE)
  hit <- ps[grepl(file.path(spark$work, "server.py"), ps, fixed = TRUE)]
  if (length(hit) == 0L) NA_integer_ else as.integer(strsplit(trimws(hit[1L]), " ")[[1L]][1L])
}

stop_spark <- function(spark) {
  spark$leader <- spark_leader(spark)
  if (!is.na(spark$leader)) {
    spark$request("stop")
    deadline <- Sys.time() + 30
    while (length(spark_processes(spark)) > 0L && Sys.time() < deadline) Sys.sleep(0.1)
    # Whatever did not stop in time is ended: the group, then any marked straggler.
    if (length(spark_processes(spark)) > 0L) {
      system2("kill", c("-KILL", paste0("-", spark$leader)), stderr = FALSE)
      Sys.sleep(0.5)
    }
  }
  invisible()
}

# `data` as a temporary view `name` of the session, from a CSV file with 17 significant digits
# (which Spark's parser reads back exactly), and as the dbplyr table whose queries hnm builds.
spark_table <- function(spark, data, name) {
  csv <- file.path(spark$work, paste0(name, ".csv"))
  text <- vapply(data, is.character, logical(1))
  written <- data
  for (column in names(data)[vapply(data, is.double, logical(1))]) {
    written[[column]] <- ifelse(is.na(data[[column]]), NA, sprintf("%.17g", data[[column]]))
  }
  utils::write.table(written, csv, sep = ",", quote = which(text), na = "NA", row.names = FALSE,
                     qmethod = "double")
  types <- vapply(data, function(x) {
    if (is.character(x)) "STRING" else if (is.logical(x)) "BOOLEAN" else if (is.integer(x)) "INT" else "DOUBLE"
  }, "")
  spark$request("view", paste(name, csv, paste(names(data), types, collapse = ", "), sep = "\n"))
  dbplyr::tbl_lazy(data[0, , drop = FALSE], con = dbplyr::simulate_hive(), name = name)
}

# A query runner for hnm: renders the lazy query as Spark SQL, runs that text on Spark and
# reads the rows back (hexadecimal doubles are exact); `log` keeps every SQL text run and the
# number of rows it returned. A text already run is answered from `log` (ML and REML fits
# send the same queries).
spark_runner <- function(spark, log) {
  function(query) {
    sql <- as.character(dbplyr::sql_render(query))
    if (!is.null(log$results[[sql]])) return(log$results[[sql]])
    log$sql <- c(log$sql, sql)
    path <- spark$request("sql", sql)
    lines <- readLines(path, encoding = "UTF-8")
    columns <- strsplit(lines[1L], ",", fixed = TRUE)[[1L]]
    types <- strsplit(lines[2L], ",", fixed = TRUE)[[1L]]
    values <- if (length(lines) > 2L) {
      utils::read.table(text = lines[-(1:2)], sep = ",", quote = "\"", colClasses = "character",
                        na.strings = "NA", comment.char = "", col.names = columns,
                        check.names = FALSE)
    } else {
      as.data.frame(stats::setNames(rep(list(character()), length(columns)), columns),
                    check.names = FALSE)
    }
    for (j in seq_along(columns)) {
      values[[j]] <- switch(sub("\\(.*", "", types[j]),
                            string = values[[j]], boolean = as.logical(values[[j]]),
                            as.numeric(values[[j]]))
    }
    log$rows <- c(log$rows, nrow(values))
    log$results[[sql]] <- values
    values
  }
}

test_that("fits from Spark SQL equal in-memory fits to 1e-10, one row per group collected", {
  skip_if_not_installed("dbplyr")
  spark <- start_spark()
  on.exit(stop_spark(spark), add = TRUE)
  log <- new.env()
  log$results <- list()
  run <- spark_runner(spark, log)
  expect_silent(spark$request("sql", "SELECT 1 AS one"))

  # The one-way model, offset 1e9, with NA in responses and groups.
  large <- simulate_large(1e9, seed = 630, rows = 2e4, groups = 200)
  table <- spark_table(spark, large, "hnm_large")
  for (reml in c(FALSE, TRUE)) {
    method <- if (reml) "REML" else "ML"
    fit <- hnm:::statistics_fit(y ~ 1 | g, table, NULL, method, NULL, run)
    memory <- hnm_fit(y ~ 1 | g, large, REML = reml)
    expect_equal(fit_numbers(fit), fit_numbers(memory), tolerance = 1e-10, info = method)
    expect_equal(confint(fit), confint(memory), tolerance = 1e-10, info = method)
    expect_identical(fit$levels, memory$levels)
    expect_identical(fit$n_dropped, sum(is.na(large$y) | is.na(large$g)))
  }
  one_way_sql <- log$sql[length(log$sql)]
  expect_lte(log$rows[length(log$rows)], length(unique(large$g)))  # the groups and NULL
  expect_match(one_way_sql, "AVG(`hnm_response`) OVER", fixed = TRUE)
  expect_match(one_way_sql, "GROUP BY `hnm_group`", fixed = TRUE)

  # The general model: covariates with offsets of 1e9, a factor and its interaction, log(),
  # random slopes; NA in a covariate, the factor and the group.
  d <- simulate_lmm(631, m = 40, balanced = FALSE)
  d$f <- as.character(d$f)
  d$x <- d$x + 1e9
  d$y <- d$y + 1e9
  d$z <- d$z + 0.5
  d$g <- as.character(d$g)
  d$x[4] <- NA
  d$f[9] <- NA
  d$g[15] <- NA
  table <- spark_table(spark, d, "hnm_lmm")
  for (formula in list(y ~ x + f + x:f + log(z) + (x | g), y ~ w + f + (z || g))) {
    for (reml in c(FALSE, TRUE)) {
      info <- paste(deparse1(formula), if (reml) "REML" else "ML")
      queries <- length(log$sql)
      fit <- hnm:::statistics_fit(formula, table, NULL, if (reml) "REML" else "ML", NULL, run)
      memory <- hnm_fit(formula, d, REML = reml)
      expect_equal(lmm_numbers(fit), lmm_numbers(memory), tolerance = 1e-10, info = info)
      expect_identical(fit$n_dropped, memory$n_dropped, info = info)
      expect_identical(rownames(ranef(fit)$g), rownames(ranef(memory)$g), info = info)
      expect_lte(log$rows[length(log$rows)], length(unique(d$g)))
    }
  }
  general_sql <- log$sql[length(log$sql)]
  expect_match(general_sql, "AVG(`hnm_m1`) OVER", fixed = TRUE)
  expect_match(general_sql, "(PARTITION BY `hnm_group1`)", fixed = TRUE)
  # A factor's indicator is a double (Spark reads the literal 1.0 as a decimal, averaged in 5
  # to 10 digits).
  expect_match(general_sql, "CASE\\s+WHEN \\(`f` = 'b'\\) THEN CAST\\(1 AS DOUBLE\\)")

  # Several grouping factors (issue 23): the GROUP BY runs over the grouping columns, one row
  # per cell; offset 1e9 in the ScotsSec-like response, NA in a covariate and the groupings
  # (lme4's data sets: several_factor_cases()).
  cases <- if (requireNamespace("lme4", quietly = TRUE)) several_factor_cases(1e9)
  for (case in cases) {
    formula <- case$formula
    d <- case$data
    table <- spark_table(spark, d, sprintf("hnm_cells%d", length(log$sql)))
    columns <- hnm:::cell_columns(hnm:::parse_mixed_formula(formula, several = TRUE))
    for (reml in c(FALSE, TRUE)) {
      info <- paste(deparse1(formula), if (reml) "REML" else "ML")
      fit <- hnm:::statistics_fit(formula, table, NULL, if (reml) "REML" else "ML", NULL, run)
      memory <- hnm_fit(formula, d, REML = reml)
      expect_equal(lmm_numbers(fit), lmm_numbers(memory), tolerance = 1e-10, info = info)
      expect_identical(lapply(ranef(fit), rownames), lapply(ranef(memory), rownames), info = info)
      expect_identical(fit$n_dropped, memory$n_dropped, info = info)
      expect_lte(log$rows[length(log$rows)], nrow(unique(d[columns])))
    }
  }
  if (length(cases) > 0L) {
    cells_sql <- log$sql[length(log$sql)]
    expect_match(cells_sql, "GROUP BY `hnm_group1`, `hnm_group2`", fixed = TRUE)
    expect_match(cells_sql, "(PARTITION BY `hnm_group1`, `hnm_group2`)", fixed = TRUE)
  }

  stop_spark(spark)
  expect_identical(spark_processes(spark), character(), info = "Spark processes left running")
})
