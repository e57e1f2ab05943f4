# Standard errors, confidence and prediction intervals of predict() (issue 24, item 3).
# References: a dense computation written here from Z, X, G = I (x) Sigma-hat and
# V = Z G Z' + sigma^2 I (Henderson's mixed-model equations, C^-1, and GLS), the one-way
# model's closed form, lme4's estimates for the population intervals, and a coverage
# simulation.

# The dense design of a model with one grouping factor and random-effects columns `zcols`
# (a matrix of the rows' random-effects values): Z (N x m q, group-major) and X.
dense_z <- function(zcols, g) {
  q <- ncol(zcols)
  m <- nlevels(g)
  z <- matrix(0, nrow(zcols), m * q)
  j <- as.integer(g)
  for (k in seq_len(q)) z[cbind(seq_len(nrow(zcols)), (j - 1L) * q + k)] <- zcols[, k]
  z
}

# Henderson's prediction-error covariance sigma^2 C^-1 of (beta-hat - beta, b-hat - b) with
# C = [X'X, X'Z; Z'X, Z'Z + sigma^2 G^-1] (G of full rank here).
henderson_covariance <- function(x, z, sigma2, g_matrix) {
  c_matrix <- rbind(cbind(crossprod(x), crossprod(x, z)),
                    cbind(crossprod(z, x), crossprod(z) + sigma2 * solve(g_matrix)))
  sigma2 * solve(c_matrix)
}

# Rows (x0, z0 placed in group j's columns; none for a new level) for the dense quadratic form.
dense_rows <- function(x0, z0, codes, m) {
  q <- ncol(z0)
  w <- matrix(0, nrow(x0), m * q)
  for (i in seq_len(nrow(x0))) {
    if (!is.na(codes[i])) w[i, (codes[i] - 1L) * q + seq_len(q)] <- z0[i, ]
  }
  cbind(x0, w)
}

test_that("conditional and population intervals equal the dense reference (sleepstudy, 1e-8)", {
  skip_if_not_installed("lme4")
  d <- lme4::sleepstudy
  cases <- list(
    list(formula = Reaction ~ Days + (Days | Subject), z = function(days) cbind(1, days)),
    list(formula = Reaction ~ Days + (Days || Subject), z = function(days) cbind(1, days)),
    list(formula = Reaction ~ Days + (1 | Subject), z = function(days) cbind(days * 0 + 1)))
  new <- data.frame(Days = c(0, 4.5, 12, 2, -1), Subject = c("308", "372", "309", "999", NA))
  for (case in cases) for (reml in c(FALSE, TRUE)) {
    label <- paste(deparse1(case$formula), if (reml) "REML" else "ML")
    fit <- hnm_fit(case$formula, d, REML = reml)
    sigma2 <- fit$sigma^2
    sigma_hat <- fit$re_covariance
    m <- nlevels(d$Subject)
    x <- cbind(1, d$Days)
    z <- dense_z(case$z(d$Days), d$Subject)
    g_matrix <- kronecker(diag(m), sigma_hat)
    cov_joint <- henderson_covariance(x, z, sigma2, g_matrix)
    # GLS pieces for the population intervals, from V itself.
    v <- z %*% g_matrix %*% t(z) + sigma2 * diag(nrow(d))
    vcov_beta <- solve(crossprod(x, solve(v, x)))

    # The fit's own rows: se.fit and both intervals.
    w <- dense_rows(x, case$z(d$Days), as.integer(d$Subject), m)
    var_cond <- rowSums((w %*% cov_joint) * w)
    out <- predict(fit, se.fit = TRUE, interval = "prediction", level = 0.9)
    expect_equal(out$se.fit, sqrt(var_cond), tolerance = 1e-8, label = label)
    expect_equal(out$fit[, "upr"] - out$fit[, "fit"], qnorm(0.95) * sqrt(var_cond + sigma2),
                 tolerance = 1e-8, label = label)
    conf <- predict(fit, interval = "confidence")
    expect_equal(conf[, "fit"] - conf[, "lwr"], qnorm(0.975) * sqrt(var_cond), tolerance = 1e-8,
                 label = label)
    expect_equal(conf[, "fit"], fitted(fit), tolerance = 1e-12, label = label)

    # New rows: existing groups (one extrapolated), a new level and a missing group, both
    # predicted at the population level with the new group's variance z0' Sigma z0 added.
    codes <- match(new$Subject, levels(d$Subject))
    x0 <- cbind(1, new$Days)
    z0 <- case$z(new$Days)
    w0 <- dense_rows(x0, z0, codes, m)
    var_new <- rowSums((w0 %*% cov_joint) * w0) +
      ifelse(is.na(codes), rowSums((z0 %*% sigma_hat) * z0), 0)
    out <- predict(fit, newdata = new, allow.new.levels = TRUE, se.fit = TRUE,
                   interval = "prediction")
    expect_equal(out$se.fit, sqrt(var_new), tolerance = 1e-8, label = label)
    expect_equal(out$fit[, "upr"] - out$fit[, "lwr"], 2 * qnorm(0.975) * sqrt(var_new + sigma2),
                 tolerance = 1e-8, label = label)
    expect_equal(out$fit[, "fit"], predict(fit, newdata = new, allow.new.levels = TRUE),
                 tolerance = 1e-12, label = label)
    expect_identical(out$df, Inf)
    expect_identical(out$residual.scale, fit$sigma)

    # Population: x0' (X'V^-1X)^-1 x0 for the mean; a new observation in a new group adds
    # z0' Sigma z0 + sigma^2.
    var_pop <- rowSums((x0 %*% vcov_beta) * x0)
    pop <- predict(fit, newdata = new, re.form = NA, se.fit = TRUE, interval = "confidence")
    expect_equal(pop$se.fit, sqrt(var_pop), tolerance = 1e-8, label = label)
    expect_equal(pop$fit[, "upr"] - pop$fit[, "fit"], qnorm(0.975) * sqrt(var_pop),
                 tolerance = 1e-8, label = label)
    pop <- predict(fit, newdata = new, re.form = NA, interval = "prediction", level = 0.8)
    var_pop_new <- var_pop + rowSums((z0 %*% sigma_hat) * z0) + sigma2
    expect_equal(pop[, "upr"] - pop[, "fit"], qnorm(0.9) * sqrt(var_pop_new), tolerance = 1e-8,
                 label = label)
    # The population prediction interval of a new group is the conditional one of a new level.
    expect_equal(pop[4, ], predict(fit, newdata = new[4, ], allow.new.levels = TRUE,
                                   interval = "prediction", level = 0.8)[1, ], tolerance = 1e-12,
                 label = label)
    fit_rows <- predict(fit, re.form = NA, se.fit = TRUE)
    expect_equal(fit_rows$se.fit, sqrt(rowSums((x %*% vcov_beta) * x)), tolerance = 1e-8,
                 label = label)
  }
})

test_that("population intervals use lme4's estimates as lme4's own pieces give them", {
  skip_if_not_installed("lme4")
  d <- lme4::sleepstudy
  fit <- hnm_fit(Reaction ~ Days + (Days | Subject), d, REML = TRUE)
  ref <- lmer_twin(fit, Reaction ~ Days + (Days | Subject), d, REML = TRUE)
  new <- data.frame(Days = c(0, 5, 10), Subject = "308")
  x0 <- cbind(1, new$Days)
  var_mean <- rowSums((x0 %*% as.matrix(vcov(ref))) * x0)
  sigma_ref <- VarCorr(ref)$Subject[, ]
  var_new <- var_mean + rowSums((x0 %*% sigma_ref) * x0) + sigma(ref)^2
  out <- predict(fit, newdata = new, re.form = NA, interval = "prediction")
  expect_equal(out[, "fit"], unname(predict(ref, newdata = new, re.form = NA)), tolerance = 1e-8)
  expect_equal(out[, "upr"] - out[, "fit"], qnorm(0.975) * sqrt(var_new), tolerance = 1e-6)
  out <- predict(fit, newdata = new, re.form = NA, interval = "confidence")
  expect_equal(out[, "upr"] - out[, "fit"], qnorm(0.975) * sqrt(var_mean), tolerance = 1e-6)
})

test_that("one-way conditional standard errors follow the closed form", {
  skip_if_not_installed("lme4")
  d <- lme4::Dyestuff
  d <- d[-c(1, 2, 9), ]   # unbalanced
  for (reml in c(FALSE, TRUE)) {
    fit <- hnm_fit(Yield ~ 1 | Batch, d, REML = reml)
    tau2 <- fit$re_covariance[1, 1]
    sigma2 <- fit$sigma^2
    n <- as.vector(table(d$Batch))
    # mu-hat by GLS, a_j-hat = lambda_j (ybar_j - mu-hat): Var(mu-hat + a_j-hat - mu - a_j)
    # = (1 - lambda_j)^2 Var(mu-hat) + (1 - lambda_j) tau^2.
    lambda <- tau2 * n / (sigma2 + n * tau2)
    var_mu <- 1 / sum(n / (sigma2 + n * tau2))
    expected <- (1 - lambda)^2 * var_mu + (1 - lambda) * tau2
    new <- data.frame(Batch = c(levels(d$Batch), "new"))
    out <- predict(fit, newdata = new, allow.new.levels = TRUE, se.fit = TRUE)
    expect_equal(out$se.fit, sqrt(c(expected, var_mu + tau2)), tolerance = 1e-8)
    expect_equal(unname(vcov(fit)[1, 1]), var_mu, tolerance = 1e-8)
  }
})

test_that("na.exclude pads the standard errors and intervals of the fit's rows", {
  skip_if_not_installed("lme4")
  d <- lme4::sleepstudy
  d$Days[c(3, 50)] <- NA
  d$Reaction[7] <- NA
  fit <- hnm_fit(Reaction ~ Days + (Days | Subject), d, na.action = na.exclude)
  complete <- hnm_fit(Reaction ~ Days + (Days | Subject), d[-c(3, 7, 50), ])
  for (re.form in list(NULL, NA)) {
    out <- predict(fit, re.form = re.form, se.fit = TRUE, interval = "prediction")
    ref <- predict(complete, re.form = re.form, se.fit = TRUE, interval = "prediction")
    expect_identical(dim(out$fit), c(nrow(d), 3L))
    expect_true(all(is.na(out$fit[c(3, 7, 50), ])) && all(is.na(out$se.fit[c(3, 7, 50)])))
    expect_equal(out$fit[-c(3, 7, 50), ], ref$fit, tolerance = 1e-10)
    expect_equal(out$se.fit[-c(3, 7, 50)], ref$se.fit, tolerance = 1e-10)
  }
  fit_omit <- hnm_fit(Reaction ~ Days + (Days | Subject), d)
  expect_identical(nrow(predict(fit_omit, interval = "confidence")), nrow(d) - 3L)
  # Missing values in newdata give NA rows.
  new <- data.frame(Days = c(1, NA), Subject = c("308", "308"))
  out <- predict(complete, newdata = new, interval = "confidence", se.fit = TRUE)
  expect_true(all(is.na(out$fit[2, ])) && is.na(out$se.fit[2]) && !anyNA(out$fit[1, ]))
})

test_that("bad interval arguments are classed errors", {
  skip_if_not_installed("lme4")
  d <- lme4::sleepstudy
  fit <- hnm_fit(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), d)
  expect_error(predict(fit, interval = "tolerance"), "`interval` must be one of",
               class = "hnm_error_argument")
  expect_error(predict(fit, interval = c("confidence", "prediction")), "`interval` must be one of",
               class = "hnm_error_argument")
  for (level in list(0, 1, 1.5, NA, "0.9", c(0.9, 0.95))) {
    expect_error(predict(fit, interval = "confidence", level = level),
                 "`level` must be a single number between 0 and 1", class = "hnm_error")
  }
  expect_error(predict(fit, level = 95), "`level` must be a single number between 0 and 1",
               class = "hnm_error")
  expect_error(predict(fit, se.fit = NA), "`se.fit` must be TRUE or FALSE",
               class = "hnm_error_argument")
  expect_error(predict(fit, re.form = ~ (1 | Subject), se.fit = TRUE),
               "not for a `re.form` naming some", class = "hnm_error_argument")
  expect_error(predict(fit, re.form = ~ (1 | Subject), interval = "prediction"),
               "not for a `re.form` naming some", class = "hnm_error_argument")
  # A partial re.form still predicts without uncertainty.
  expect_length(predict(fit, re.form = ~ (1 | Subject)), nrow(d))
  anova_fit <- hnm_fit(Reaction ~ 1 | Subject, d, method = "ANOVA")
  expect_error(predict(anova_fit, se.fit = TRUE), "ML or REML fit",
               class = "hnm_error_argument")
  expect_length(predict(anova_fit, re.form = NA, interval = "prediction")[, "upr"], nrow(d))
  # A fit without rows: conditional uncertainty of its rows needs them; with newdata, not.
  no_rows <- fit
  no_rows$rows <- NULL
  expect_error(predict(no_rows, se.fit = TRUE), "needs the data rows", class = "hnm_error_no_rows")
  expect_error(predict(no_rows, re.form = NA, interval = "confidence"), "needs the data rows",
               class = "hnm_error_no_rows")
  new <- data.frame(Days = 1, Subject = "308")
  expect_equal(predict(no_rows, newdata = new, se.fit = TRUE)$se.fit,
               predict(fit, newdata = new, se.fit = TRUE)$se.fit)
})

test_that("the intervals cover at their level in a simulation (40 groups, 300 replicates)", {
  # y = 1 + 0.5 x + b0_j + b1_j x + e, SD(b0) = 1, SD(b1) = 0.5, sigma = 1, 5 rows per group.
  # Per replicate, one new observation at a new x in a random existing group (the
  # conditional prediction interval), the group's mean there (conditional confidence
  # interval), the population mean (population confidence interval) and a new observation
  # in a new group (population prediction interval). The intervals treat theta and sigma as
  # known: at the true values each covers 0.95 exactly (Henderson); with REML estimates the
  # three whose variance holds sigma^2 or beta-hat's alone are within two binomial standard
  # errors of 0.95, while the interval of the group's mean, whose variance is all shrinkage
  # error, undercovers (0.924 in 1000 replicates of this design, 0.948 at the true theta).
  set.seed(20240524)
  m <- 40L
  n <- 5L
  reps <- 300L
  g <- factor(rep(seq_len(m), each = n))
  covered <- matrix(NA, reps, 4L,
                    dimnames = list(NULL, c("cond_pred", "cond_conf", "pop_conf", "pop_pred")))
  for (r in seq_len(reps)) {
    b <- cbind(rnorm(m), 0.5 * rnorm(m))
    x <- rnorm(m * n)
    d <- data.frame(y = 1 + 0.5 * x + b[g, 1] + b[g, 2] * x + rnorm(m * n), x = x, g = g)
    fit <- hnm_fit(y ~ x + (x | g), d, REML = TRUE)
    j <- sample.int(m, 1L)
    x0 <- rnorm(1L)
    mean_j <- 1 + 0.5 * x0 + b[j, 1] + b[j, 2] * x0
    new <- data.frame(x = x0, g = factor(j, levels = levels(g)))
    inside <- function(interval, value) interval[1, "lwr"] <= value && value <= interval[1, "upr"]
    covered[r, "cond_pred"] <- inside(predict(fit, newdata = new, interval = "prediction"),
                                      mean_j + rnorm(1L))
    covered[r, "cond_conf"] <- inside(predict(fit, newdata = new, interval = "confidence"), mean_j)
    covered[r, "pop_conf"] <- inside(predict(fit, newdata = new, re.form = NA,
                                             interval = "confidence"), 1 + 0.5 * x0)
    covered[r, "pop_pred"] <- inside(predict(fit, newdata = new, re.form = NA,
                                             interval = "prediction"),
                                     1 + 0.5 * x0 + rnorm(1L) + 0.5 * rnorm(1L) * x0 + rnorm(1L))
  }
  coverage <- colMeans(covered)
  se <- sqrt(0.95 * 0.05 / reps)
  for (k in c("cond_pred", "pop_conf", "pop_pred")) {
    expect_lt(abs(coverage[[k]] - 0.95), 2 * se, label = sprintf("%s coverage %.3f", k, coverage[[k]]))
  }
  # The group mean's interval: below nominal by the variance parameters' uncertainty, which it
  # does not propagate, but by less than 0.05.
  expect_gt(coverage[["cond_conf"]], 0.9 - 2 * se)
  expect_lt(coverage[["cond_conf"]], 0.95 + 2 * se)
})

test_that("several grouping factors: conditional standard errors from Henderson's equations", {
  # Reference: lme4's dense Z and relative factor Lambda (lFormula(), with hnm's theta put in
  # by lme4's Lind); C = [L'Z'ZL + I, L'Z'X; X'ZL, X'X] and the error variance
  # sigma^2 w'C^-1 w, w = (L'z, x), written here densely; a level new to a factor adds that
  # factor's z'Sigma z (VarCorr).
  data <- lme4::sleepstudy
  data$grp <- factor(rep(1:4, length.out = nrow(data)))
  formula <- Reaction ~ Days + (Days | Subject) + (1 | grp)
  fit <- hnm_fit(formula, data)
  terms <- lme4::lFormula(formula, data)$reTrms
  lambdat <- terms$Lambdat
  lambdat@x <- unname(getME(fit, "theta"))[terms$Lind]
  lambda <- t(as.matrix(lambdat))
  zl <- t(as.matrix(terms$Zt)) %*% lambda
  x <- cbind(1, data$Days)
  henderson <- rbind(cbind(crossprod(zl) + diag(ncol(zl)), crossprod(zl, x)),
                     cbind(crossprod(x, zl), crossprod(x)))
  error_variance <- function(z, x) {
    w <- rbind(crossprod(lambda, z), t(x))
    fit$sigma^2 * colSums(w * solve(henderson, w))
  }
  predicted <- predict(fit, se.fit = TRUE, interval = "prediction", level = 0.9)
  variance <- error_variance(as.matrix(terms$Zt), x)
  expect_equal(predicted$se.fit^2, variance, tolerance = 1e-10, ignore_attr = TRUE)
  expect_equal(unname(predicted$fit[, "upr"] - predicted$fit[, "fit"]),
               qnorm(0.95) * sqrt(variance + fit$sigma^2), tolerance = 1e-10, ignore_attr = TRUE)
  # New rows: Subject 308 with a new grp level, a new Subject with grp 1, both known.
  new <- data.frame(Days = c(2, 5, 9), Subject = c("308", "999", "350"), grp = c("9", "1", "2"))
  subjects <- levels(data$Subject)
  z <- matrix(0, nrow(terms$Zt), 3)
  for (i in 1:3) {
    s <- match(new$Subject[i], subjects)
    if (!is.na(s)) z[2 * s - 1 + 0:1, i] <- c(1, new$Days[i])
    g <- match(new$grp[i], levels(data$grp))
    if (!is.na(g)) z[2 * length(subjects) + g, i] <- 1
  }
  sigma <- VarCorr(fit)
  unknown <- c(sigma$grp[1, 1], c(1, 5) %*% sigma$Subject %*% c(1, 5), 0)
  new_se <- predict(fit, new, se.fit = TRUE, allow.new.levels = TRUE)$se.fit
  expect_equal(new_se^2, error_variance(z, cbind(1, new$Days)) + unknown, tolerance = 1e-10,
               ignore_attr = TRUE)
  expect_error(predict(fit, re.form = ~ (1 | grp), se.fit = TRUE), class = "hnm_error_argument")
})
