# Accuracy of the within- and between-group sums of squares against NIST's certified
# one-way ANOVA results and against an exact computation on the stored doubles, and
# invariance of the estimates under shifting and scaling y.

# Log relative error: the number of correct significant digits (NIST's LRE), at most 16.
lre <- function(x, certified) {
  min(16, -log10(abs(x - certified) / abs(certified)))
}

# NIST's SmLs data, built from the decimal strings NIST prints (see nist/certified.csv), so
# that R's reader rounds them exactly as it would round the .dat file.
nist_smls <- function(base, replicates) {
  b <- function(i) ifelse(i == 1, 2, ifelse(i %% 2 == 0, 1, 3))
  grid <- expand.grid(replicate = seq_len(replicates), treatment = 1:9)
  tenths <- b(grid$treatment) + b(grid$replicate)
  data.frame(g = grid$treatment, y = as.numeric(sprintf("%s.%d", base, tenths)))
}

nist_case <- function(row) {
  if (row$dataset == "AtmWtAg") {
    d <- utils::read.csv(test_path("nist", "AtmWtAg.csv"), comment.char = "#")
    return(data.frame(g = d$instrument, y = d$agwt))
  }
  nist_smls(format(row$base, scientific = FALSE), row$replicates)
}

# Sums of squares of the doubles actually stored, computed without the code under test:
# within groups from all pairwise differences of distinct values, SSW_j = sum_{a<b} w_a w_b
# (u_a - u_b)^2 / n_j; between groups from the pairwise mean differences, SSB = sum_{j<l}
# n_j n_l (ybar_j - ybar_l)^2 / N. Differences of values within a factor 2 of each other are
# exact (Sterbenz), and R's sum() accumulates in extended precision, so both are correct to
# a few units in the last place.
stored_anova <- function(y, g) {
  groups <- lapply(split(y, g), function(v) table(v))
  values <- lapply(groups, function(t) as.numeric(names(t)))
  counts <- lapply(groups, function(t) as.numeric(t))
  sizes <- vapply(counts, sum, numeric(1))
  ssw <- sum(mapply(function(u, w) {
    sum((outer(u, u, "-")^2 * outer(w, w))[upper.tri(diag(length(u)))]) / sum(w)
  }, values, counts))
  pairs <- utils::combn(length(values), 2)
  ssb <- sum(apply(pairs, 2, function(jl) {
    j <- jl[1]; l <- jl[2]
    diff <- sum(outer(values[[j]], values[[l]], "-") * outer(counts[[j]], counts[[l]])) /
      (sizes[j] * sizes[l])
    sizes[j] * sizes[l] * diff^2
  })) / sum(sizes)
  m <- length(values)
  list(mse = ssw / (sum(sizes) - m), msg = ssb / (m - 1))
}

hnm_anova <- function(y, g) {
  hnm_fit(y ~ 1 | g, data.frame(y = y, g = factor(g)), method = "ANOVA")$anova
}

certified <- utils::read.csv(test_path("nist", "certified.csv"), comment.char = "#",
                             colClasses = c(base = "character"))

test_that("ANOVA mean squares and the ML fit reach the accuracy the stored data allow (NIST StRD)", {
  for (i in seq_len(nrow(certified))) {
    row <- certified[i, ]
    d <- nist_case(row)
    exact <- stored_anova(d$y, d$g)
    a <- hnm_anova(d$y, d$g)
    fit <- hnm_fit(y ~ 1 | g, d)
    m <- length(unique(d$g)); n <- nrow(d) / m
    # Balanced ML has the closed form sigma2 = MSE, tau2 = ((1 - 1/m) MSG - MSE) / n.
    ml_tau2 <- function(msg, mse) ((1 - 1 / m) * msg - mse) / n
    checks <- list(
      list("ANOVA MSE", a$mse, exact$mse, row$ms_within),
      list("ANOVA MSG", a$msg, exact$msg, row$ms_between),
      list("F", a$msg / a$mse, exact$msg / exact$mse, row$f_statistic),
      list("ML sigma2", sigma2_of(fit), exact$mse, row$ms_within),
      list("ML tau2", tau2_of(fit), ml_tau2(exact$msg, exact$mse), ml_tau2(row$ms_between, row$ms_within))
    )
    for (check in checks) {
      label <- sprintf("%s %s", row$dataset, check[[1]])
      # What double precision allows: the digits of the exactly computed statistic of the
      # stored data (SmLs07-09 lose ~12 digits when 1e12 + 0.x is rounded to a double).
      attainable <- min(15, lre(check[[3]], check[[4]]))
      expect_gte(lre(check[[2]], check[[3]]), 14.5, label = paste(label, "vs stored-data exact"))
      expect_gte(lre(check[[2]], check[[4]]), attainable - 0.5, label = paste(label, "vs certified"))
    }
  }
})

test_that("ANOVA on small decimal data equals exact rational arithmetic", {
  # y = k / 10 with integer k: SSW and SSB are rationals computed here in integers
  # (numerators below 2^53, so exact in double), independently of hnm.
  set.seed(11)
  for (rep in 1:20) {
    sizes <- sample(1:7, sample(2:6, 1), replace = TRUE)
    sizes[1] <- max(sizes[1], 2)
    k <- sample(-999:999, sum(sizes), replace = TRUE)
    g <- rep(seq_along(sizes), sizes)
    sk <- as.numeric(tapply(k, g, sum)); sk2 <- as.numeric(tapply(k^2, g, sum))
    N <- sum(sizes); m <- length(sizes)
    # 100 * SSW = sum_j (n_j sum k^2 - (sum k)^2) / n_j, over the common denominator prod(n_j).
    den <- prod(sizes)
    ssw_num <- sum((sizes * sk2 - sk^2) * (den / sizes))
    skip_if(ssw_num == 0)
    mse <- ssw_num / (den * 100 * (N - m))
    # 100 * SSB = sum_j (sum k)^2 / n_j - (sum k)^2 / N.
    ssb_num <- sum(sk^2 * (den * N / sizes)) - sum(k)^2 * den
    msg <- ssb_num / (den * N * 100 * (m - 1))
    a <- hnm_anova(k / 10, g)
    expect_equal(a$mse, mse, tolerance = 4 * .Machine$double.eps, label = sprintf("MSE, case %d", rep))
    expect_equal(a$msg, msg, tolerance = 4 * .Machine$double.eps * max(1, a$mse / a$msg),
                 label = sprintf("MSG, case %d", rep))
  }
})

# The standard errors of (tau2, sigma2, mu) from the inverse information, read from the
# variance-scale Wald intervals' upper limits (est + z se): the covariance (vcov(full = TRUE))
# itself scales like c^4 and is not representable for every c below.
wald_se <- function(fit) {
  ci <- confint(fit, method = "Wald", scale = "var")
  unname((ci[, 2] - c(tau2_of(fit), sigma2_of(fit), mu_of(fit))) / qnorm(0.975))
}

test_that("estimates are invariant under y -> y + d and equivariant under y -> c y", {
  # Data on a 2^-8 grid, so y + d is exact for |d| <= 1e12 (spacing 2^-13 there) and the
  # shifted problem is the same problem; scaling by c is exact for c = 2^k, and within
  # rounding of y * c otherwise.
  set.seed(3)
  cases <- list(simulate_unbalanced(30, 5), simulate_unbalanced(12, 8, tau = 0.3))
  for (d in cases) {
    d$y <- round(d$y * 256) / 256
    for (reml in c(FALSE, TRUE)) {
      base <- hnm_fit(y ~ 1 | g, d, REML = reml)
      for (shift in c(1e9, -1e9, 1e12, -1e12, 123456.75)) {
        shifted <- hnm_fit(y ~ 1 | g, transform(d, y = y + shift), REML = reml)
        label <- sprintf("shift %g, REML %s", shift, reml)
        # mu itself is only representable to the spacing of doubles near the shift.
        spacing <- 2^(floor(log2(abs(shift))) - 52)
        expect_lte(abs(mu_of(shifted) - (mu_of(base) + shift)), 2 * spacing, label = label)
        expect_equal(sigma2_of(shifted), sigma2_of(base), tolerance = 1e-9, label = label)
        expect_equal(tau2_of(shifted), tau2_of(base), tolerance = 1e-9, label = label)
        expect_equal(shifted$deviance, base$deviance, tolerance = 1e-9, label = label)
      }
      for (scale in c(2^-500, 2^300, 1e-150, 1e-100, 1e100, 3.7e-20)) {
        scaled <- hnm_fit(y ~ 1 | g, transform(d, y = y * scale), REML = reml)
        label <- sprintf("scale %g, REML %s", scale, reml)
        expect_equal(mu_of(scaled) / scale, mu_of(base), tolerance = 1e-9, label = label)
        expect_equal(sigma2_of(scaled) / scale^2, sigma2_of(base), tolerance = 1e-9, label = label)
        expect_equal(tau2_of(scaled) / scale^2, tau2_of(base), tolerance = 1e-9, label = label)
        expect_equal(sqrt(vcov(scaled)[1, 1]) / scale, sqrt(vcov(base)[1, 1]), tolerance = 1e-9, label = label)
        expect_equal(wald_se(scaled) / scale^c(2, 2, 1), wald_se(base), tolerance = 1e-9,
                     label = label)
        # -2 log-likelihood of c y: the density gains the Jacobian c^-k (k = N, or N - 1 for REML).
        k <- nobs(base) - reml
        expect_equal(scaled$deviance, base$deviance + 2 * k * log(scale), tolerance = 1e-9,
                     label = label)
        # Every row of confint (tau, sigma, mu) is in the units of y.
        expect_equal(confint(scaled, method = "Wald") / scale, confint(base, method = "Wald"), tolerance = 1e-9, label = label)
        if (!reml) {
          expect_equal(confint(scaled, method = "profile") / scale,
                       confint(base, method = "profile"), tolerance = 1e-7, label = label)
        }
        expect_true(all(is.finite(confint(scaled, method = "Wald"))), label = label)
      }
    }
  }
})

test_that("mll_oneway and its derivatives are equivariant under scaling", {
  d <- simulate_unbalanced(9, 4)
  p <- c(10, 4, 2)
  f <- mll_oneway(p, d$y, d$g); g <- mll_oneway_grad(p, d$y, d$g); h <- mll_oneway_hess(p, d$y, d$g)
  # -log-likelihood gains N log c; derivatives scale by c^-1 (mu) and c^-2 (variances). The
  # Hessian's entries scale like c^-4, so it is checked where c^4 is representable.
  for (scale in c(1e-150, 2^-400, 1e100, 1e-60, 2^-200, 1e60)) {
    q <- p * scale^c(1, 2, 2)
    label <- sprintf("scale %g", scale)
    expect_equal(mll_oneway(q, d$y * scale, d$g), f + nrow(d) * log(scale), tolerance = 1e-12,
                 label = label)
    expect_equal(mll_oneway_grad(q, d$y * scale, d$g) * scale^c(1, 2, 2), g, tolerance = 1e-10,
                 label = label)
    if (abs(log10(scale)) < 70) {
      power <- outer(c(1, 2, 2), c(1, 2, 2), "+")
      expect_equal(mll_oneway_hess(q, d$y * scale, d$g) * scale^power, h, tolerance = 1e-10,
                   label = label)
    }
  }
})
