# Data for the scale-out tests (fits from group statistics and from databases).

# 2e5 rows in 2000 unbalanced groups with `offset` added to the response, and NA in some
# responses and some groups. Values are rounded to 15 significant digits: RPostgreSQL sends
# numbers to the server as 15-digit text, so only such values are stored exactly and the
# database holds the very numbers the in-memory fit sees.
simulate_large <- function(offset, seed, rows = 2e5, groups = 2000) {
  set.seed(seed)
  g <- sample(groups, rows, replace = TRUE, prob = stats::runif(groups, 0.2, 1))
  y <- signif(offset + stats::rnorm(groups, 0, 0.7)[g] + stats::rnorm(rows, 0, 1.3), 15)
  label <- sprintf("school%04d", g)
  y[sample(rows, 150)] <- NA
  label[sample(rows, 80)] <- NA
  data.frame(y = y, g = label, stringsAsFactors = FALSE)
}

# The per-group statistics computed by base R, independently of hnm's Rust pass:
# size, mean (base mean(), which refines the sum by a second pass) and the sum of squared
# deviations from that mean; groups sorted as factor() sorts them.
base_r_statistics <- function(y, g) {
  keep <- !is.na(y) & !is.na(g)
  y <- y[keep]; g <- factor(g[keep])
  means <- vapply(split(y, g), mean, numeric(1))
  data.frame(group = levels(g), n = as.vector(table(g)), mean = unname(means),
             ss = unname(vapply(split(y - means[g], g), function(d) sum(d^2), numeric(1))),
             stringsAsFactors = FALSE)
}

# The estimates two fits must share.
fit_numbers <- function(fit) {
  c(mu = mu_of(fit), sigma2 = sigma2_of(fit), tau2 = tau2_of(fit), deviance = fit$deviance,
    se_mu = sqrt(vcov(fit)[1L, 1L]), nobs = nobs(fit), ngrps = unname(ngrps(fit)))
}
