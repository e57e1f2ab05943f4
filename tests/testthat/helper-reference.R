# Independent references used across the tests.

# The lecture's dense mll.oneway, transcribed from lecture-mle-oneway.md (Hoff, STA 610):
# a multivariate normal log-density per group with S = s2 I + t2 11'.
lecture_ldmvnorm <- function(y, theta, Sig) {
  -.5 * (length(y) * log(2 * pi) + log(det(Sig)) + t(y - theta) %*% solve(Sig) %*% (y - theta))
}
lecture_mll_oneway <- function(mus2t2, y, g) {
  mu <- mus2t2[1]; s2 <- mus2t2[2]; t2 <- mus2t2[3]
  ll <- 0
  for (gj in sort(unique(g))) {
    nj <- sum(g == gj)
    S <- diag(s2, nj) + matrix(t2, nj, nj)
    ll <- ll + lecture_ldmvnorm(y[g == gj], mu, S)
  }
  -ll
}

# Simulated unbalanced one-way data (sizes 1..12) with a chosen between/within ratio.
simulate_unbalanced <- function(m, seed, tau = 1.5, sigma = 2, mu = 10) {
  set.seed(seed)
  sizes <- sample(1:12, m, replace = TRUE)
  g <- rep(sprintf("g%02d", seq_len(m)), sizes)
  a <- rnorm(m, 0, tau)
  data.frame(y = mu + rep(a, sizes) + rnorm(sum(sizes), 0, sigma), g = g)
}

# The datasets of the lme4 cross-checks: name, data, response, group.
lme4_cases <- function() {
  cases <- list(
    list(name = "Dyestuff", data = lme4::Dyestuff, y = "Yield", g = "Batch"),
    list(name = "Dyestuff2", data = lme4::Dyestuff2, y = "Yield", g = "Batch"),
    list(name = "Rail", data = as.data.frame(nlme::Rail), y = "travel", g = "Rail"),
    list(name = "simulated, 40 groups", data = simulate_unbalanced(40, 1), y = "y", g = "g"),
    list(name = "simulated, small tau", data = simulate_unbalanced(25, 7, tau = 0.4), y = "y", g = "g")
  )
  if (requireNamespace("mlmRev", quietly = TRUE)) {
    env <- new.env()
    utils::data("Hsb82", package = "mlmRev", envir = env)
    hsb <- env$Hsb82
    cases <- c(cases, list(list(name = "Hsb82", data = hsb, y = "mAch", g = "school")))
  }
  cases
}

one_way_formula <- function(case, lme4_style = FALSE) {
  rhs <- if (lme4_style) sprintf("1 + (1 | %s)", case$g) else sprintf("1 | %s", case$g)
  stats::as.formula(sprintf("%s ~ %s", case$y, rhs))
}

# A fit's one-way estimates (mu, sigma2, tau2) through the public accessors, as lme4's users
# read them (fixef, sigma, VarCorr).
mu_of <- function(fit) unname(fixef(fit)[[1L]])
sigma2_of <- function(fit) sigma(fit)^2
tau2_of <- function(fit) unname(VarCorr(fit)[[1L]][1L, 1L])
one_way_estimates <- function(fit) c(mu = mu_of(fit), sigma2 = sigma2_of(fit), tau2 = tau2_of(fit))
