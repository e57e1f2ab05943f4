# Models with several grouping factors for the fits from cell statistics (hnm_stats() tables,
# SQLite, PostgreSQL and Spark tables): lme4's Penicillin (crossed) and Pastes (nested, written
# `batch/cask` and `batch + batch:cask`), and ScotsSec-like data (pupils in primary schools
# partly crossed with secondary schools: a covariate, a factor, their interaction and a random
# slope). The grouping columns are text (as a database returns them) or integers; `offset`
# shifts the response, whose digits the statistics must keep (the covariates' offsets go
# through the same SQL, tested with one factor in test-sql.R; shifting this covariate far from
# 0 would make its random slope's intercept all but unidentified).
several_factor_cases <- function(offset = 0) {
  penicillin <- as.data.frame(lme4::Penicillin)
  penicillin[c("plate", "sample")] <- lapply(penicillin[c("plate", "sample")], as.character)
  pastes <- as.data.frame(lme4::Pastes)[c("strength", "batch", "cask")]
  pastes[c("batch", "cask")] <- lapply(pastes[c("batch", "cask")], as.character)
  list(
    list(formula = diameter ~ 1 + (1 | plate) + (1 | sample), data = penicillin),
    list(formula = strength ~ 1 + (1 | batch/cask), data = pastes),
    list(formula = strength ~ 1 + (1 | batch) + (1 | batch:cask), data = pastes),
    list(formula = attain ~ verbal * sex + (1 | primary) + (verbal | second),
         data = scots_like(offset)))
}

# ScotsSec-like data: most pupils of a primary school go to its usual secondary school, the
# others anywhere; NA in the covariate and in each grouping column. `second` is an integer
# column (its levels ordered as numbers: 2 before 10).
scots_like <- function(offset = 0, seed = 2323) {
  set.seed(seed)
  primaries <- 40
  secondaries <- 12
  n <- 700
  p <- sample(primaries, n, replace = TRUE)
  usual <- sample(secondaries, primaries, replace = TRUE)
  s <- ifelse(stats::runif(n) < 0.7, usual[p], sample(secondaries, n, replace = TRUE))
  verbal <- stats::rnorm(n, 0, 8)
  sex <- sample(c("M", "F"), n, replace = TRUE)
  attain <- 5 + 0.15 * verbal + 0.3 * (sex == "F") + stats::rnorm(primaries, 0, 0.5)[p] +
    stats::rnorm(secondaries, 0, 0.6)[s] + stats::rnorm(secondaries, 0, 0.05)[s] * verbal +
    stats::rnorm(n, 0, 2)
  d <- data.frame(attain = signif(attain + offset, 15), verbal = signif(verbal, 15),
                  sex = sex, primary = sprintf("p%02d", p), second = as.integer(s),
                  stringsAsFactors = FALSE)
  d$verbal[7] <- NA
  d$primary[11] <- NA
  d$second[13] <- NA
  d
}
