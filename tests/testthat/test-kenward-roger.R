# Kenward-Roger's adjusted covariance, df and F scaling against a dense computation written
# here from Kenward and Roger (1997) in pbkrtest's parametrisation (Halekoh and Højsgaard 2014:
# V = sum_r phi_r Z E_r Z' + sigma^2 I, each variance and covariance of a random-effects block
# a parameter; W twice the inverse expected REML information), with lme4's model matrices and
# V's blocks inverted as they are. pbkrtest itself is not installed here (and lmerTest's ddf =
# "Kenward-Roger" calls it); when it is, the last test compares with it too. This reference
# was checked against pbkrtest's own vcovAdj, Lb_ddf and .KR_adjust (sourced from its
# repository) to 1e-12 at the same fit.
#
# At hnm's theta (lme4's fit at that theta, lmer_twin) both sides are closed forms: 1e-8. At
# lme4's own optimum, whose theta differs from hnm's by ~1e-5 in flat directions: 1e-4.

# pbkrtest's vcovAdj and the pieces of its df, densely, at an lmer fit with one grouping
# factor: V is block diagonal over its levels, so every product and trace is a sum over the
# groups of the same products of their n_j x n_j blocks (V_j inverted as it is, without the
# Woodbury identity hnm uses).
dense_kr <- function(model) {
  X <- lme4::getME(model, "X")
  Z <- lme4::getME(model, "Z")
  Gp <- lme4::getME(model, "Gp")
  vc <- lme4::VarCorr(model)
  factor <- lme4::getME(model, "flist")[[1L]]
  # The parameters: each term's lower triangle (its E and its columns' offset in Z), then
  # sigma^2.
  parameters <- list()
  phi <- numeric()
  for (t in seq_along(vc)) {
    D <- vc[[t]]
    q <- nrow(D)
    for (j in seq_len(q)) for (i in j:q) {
      E <- matrix(0, q, q)
      E[i, j] <- E[j, i] <- 1
      parameters <- c(parameters, list(list(E = E, offset = Gp[t], q = q)))
      phi <- c(phi, D[i, j])
    }
  }
  sigma2 <- stats::sigma(model)^2
  k <- length(parameters) + 1L
  p <- ncol(X)
  zero <- matrix(0, p, p)
  XVX <- zero
  P <- rep(list(zero), k)
  Q <- rep(list(zero), k * k)
  traces <- matrix(0, k, k)
  for (rows in split(seq_len(nrow(X)), factor)) {
    level <- as.integer(factor[rows[1L]])
    G <- lapply(parameters, function(r) {
      Zj <- as.matrix(Z[rows, r$offset + (level - 1L) * r$q + seq_len(r$q), drop = FALSE])
      Zj %*% r$E %*% t(Zj)
    })
    G <- c(G, list(diag(length(rows))))
    Vi <- solve(Reduce(`+`, Map(`*`, c(phi, sigma2), G)))
    Xj <- X[rows, , drop = FALSE]
    A <- t(Xj) %*% Vi
    XVX <- XVX + A %*% Xj
    H <- lapply(G, function(g) g %*% Vi)
    for (r in seq_len(k)) {
      P[[r]] <- P[[r]] - A %*% H[[r]] %*% Xj
      for (s in seq_len(k)) {
        Q[[(r - 1L) * k + s]] <- Q[[(r - 1L) * k + s]] + A %*% H[[r]] %*% H[[s]] %*% Xj
        traces[r, s] <- traces[r, s] + sum(diag(H[[r]] %*% H[[s]]))
      }
    }
  }
  Phi <- solve(XVX)
  information <- outer(seq_len(k), seq_len(k), Vectorize(function(r, s) {
    traces[r, s] - 2 * sum(diag(Phi %*% Q[[(r - 1L) * k + s]])) +
      sum(diag(Phi %*% P[[r]] %*% Phi %*% P[[s]]))
  }))
  W <- 2 * solve(information)
  U <- zero
  for (r in seq_len(k)) for (s in seq_len(k)) {
    U <- U + W[r, s] * (Q[[(r - 1L) * k + s]] - P[[r]] %*% Phi %*% P[[s]])
  }
  list(Phi = Phi, adjusted = Phi + 2 * Phi %*% U %*% Phi, P = P, W = W,
       beta = lme4::fixef(model), sigma = stats::sigma(model))
}

# Kenward and Roger's df of L beta with q numerator df, and the F scaling (their E and V
# matched to an F(q, m) / lambda: section 4 of the paper, pbkrtest's form).
dense_kr_df <- function(ref, L, q = nrow(L)) {
  theta <- t(L) %*% solve(L %*% ref$Phi %*% t(L)) %*% L
  u <- lapply(ref$P, function(p) theta %*% ref$Phi %*% p %*% ref$Phi)
  k <- length(u)
  a1 <- a2 <- 0
  for (i in seq_len(k)) for (j in seq_len(k)) {
    a1 <- a1 + ref$W[i, j] * sum(diag(u[[i]])) * sum(diag(u[[j]]))
    a2 <- a2 + ref$W[i, j] * sum(diag(u[[i]] %*% u[[j]]))
  }
  b <- (a1 + 6 * a2) / (2 * q)
  g <- ((q + 1) * a1 - (q + 4) * a2) / ((q + 2) * a2)
  c1 <- g / (3 * q + 2 * (1 - g))
  c2 <- (q - g) / (3 * q + 2 * (1 - g))
  c3 <- (q + 2 - g) / (3 * q + 2 * (1 - g))
  e_star <- 1 / (1 - a2 / q)
  v_star <- (2 / q) * (1 + c1 * b) / ((1 - c2 * b)^2 * (1 - c3 * b))
  rho <- v_star / (2 * e_star^2)
  m <- 4 + (q + 2) / (q * rho - 1)
  list(ddf = m, scaling = m / (e_star * (m - 2)))
}

# The KR F test of L beta = 0 (lmerTest's table from pbkrtest's KRmodcomp).
dense_kr_f <- function(ref, L) {
  lb <- L %*% ref$beta
  unscaled <- drop(t(lb) %*% solve(L %*% ref$adjusted %*% t(L), lb)) / nrow(L)
  df <- dense_kr_df(ref, L)
  c(`Mean Sq` = unscaled * ref$sigma^2, NumDF = nrow(L), DenDF = df$ddf,
    `F value` = unscaled * df$scaling)
}

kr_sleep <- lme4::sleepstudy
set.seed(24)
kr_sleep_unbalanced <- lme4::sleepstudy[sort(sample(180, 120)), ]

# Unbalanced designs: group sizes 2 to 12, a covariate, a 3-level factor, random intercepts
# and slopes.
kr_design <- function(seed, m, slope_sd) {
  set.seed(seed)
  n <- sample(2:12, m, replace = TRUE)
  g <- factor(rep(seq_len(m), n))
  x <- rnorm(sum(n), mean = 2)
  a <- factor(sample(c("p", "q", "r"), sum(n), replace = TRUE))
  y <- 1 + 0.5 * x + (a == "q") + rnorm(m)[g] + rnorm(m, sd = slope_sd)[g] * x + rnorm(sum(n))
  data.frame(y, x, a, g)
}

kr_cases <- list(
  list(Reaction ~ Days + (Days | Subject), kr_sleep),
  list(Reaction ~ Days + (Days | Subject), kr_sleep_unbalanced),
  list(Reaction ~ Days + (1 | Subject), kr_sleep_unbalanced),
  list(Reaction ~ Days + (Days || Subject), kr_sleep_unbalanced),
  list(y ~ x * a + (x | g), kr_design(1, 12, 0.7)),
  list(y ~ x + a + (1 | g), kr_design(2, 15, 0)),
  list(y ~ x + (x | g), kr_design(3, 25, 0.5)),
  list(mscore ~ flp + enroll + ses + (ses | school), nels)
)

test_that("vcov_kenward_roger() and summary(ddf = 'Kenward-Roger') are pbkrtest's and lmerTest's", {
  skip_if_not_installed("lme4")
  for (case in kr_cases) {
    label <- paste(deparse1(case[[1]]), nrow(case[[2]]))
    fit <- hnm_fit(case[[1]], case[[2]], REML = TRUE)
    twin <- dense_kr(lmer_twin(fit, case[[1]], case[[2]], REML = TRUE))
    adjusted <- vcov_kenward_roger(fit)
    expect_equal(adjusted, twin$adjusted, tolerance = 1e-8, ignore_attr = TRUE, label = label)
    expect_identical(dimnames(adjusted), dimnames(vcov(fit)))
    # lme4's optimum (polished: lmer's default stops 1e-4 away on design 5); NELS (12974
    # rows) at hnm's theta only, for time.
    if (nrow(case[[2]]) < 1000) {
      lme4_fit <- lmer_exact(case[[1]], case[[2]], REML = TRUE)
      expect_equal(adjusted, dense_kr(lme4_fit)$adjusted, tolerance = 1e-4, ignore_attr = TRUE,
                   label = label)
    }
    # lmerTest's coefficient table: adjusted SEs, Lb_ddf's df, t and p on them.
    table <- coef(summary(fit, ddf = "Kenward-Roger"))
    expect_identical(colnames(table), c("Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"))
    p <- nrow(table)
    df <- vapply(seq_len(p), function(i) dense_kr_df(twin, diag(p)[i, , drop = FALSE])$ddf, 0)
    expect_equal(table[, "Std. Error"], sqrt(diag(twin$adjusted)), tolerance = 1e-8,
                 ignore_attr = TRUE, label = label)
    expect_equal(table[, "df"], df, tolerance = 1e-8, ignore_attr = TRUE, label = label)
    t_value <- twin$beta / sqrt(diag(twin$adjusted))
    expect_equal(table[, "t value"], t_value, tolerance = 1e-8, ignore_attr = TRUE, label = label)
    expect_equal(log(table[, "Pr(>|t|)"]), log(2 * pt(abs(t_value), df, lower.tail = FALSE)),
                 tolerance = 1e-8, ignore_attr = TRUE, label = label)
  }
})

test_that("a balanced design leaves vcov as it is (pbkrtest's note on sleepstudy)", {
  fit <- hnm_fit(Reaction ~ Days + (Days | Subject), kr_sleep, REML = TRUE)
  expect_equal(vcov_kenward_roger(fit), vcov(fit), tolerance = 1e-6)
  # The balanced one-way model: the t test of the mean is the analysis of the m = 6 group
  # means, with their standard error and m - 1 = 5 df exactly (the df also at the singular
  # fit of Dyestuff2, as pbkrtest's there).
  for (data in list(lme4::Dyestuff, lme4::Dyestuff2)) {
    one_way <- hnm_fit(Yield ~ 1 | Batch, data, REML = TRUE)
    table <- coef(summary(one_way, ddf = "Kenward-Roger"))
    expect_identical(rownames(table), "(Intercept)")
    expect_equal(table[, "df"], 5, tolerance = 1e-8)
  }
  d <- lme4::Dyestuff
  expect_equal(coef(summary(hnm_fit(Yield ~ 1 | Batch, d, REML = TRUE), ddf = "Kenward-Roger"))[
    , "Std. Error"], sqrt(var(tapply(d$Yield, d$Batch, mean)) / 6), tolerance = 1e-8)
})

test_that("anova(ddf = 'Kenward-Roger') gives lmerTest's F tests with pbkrtest's scaling", {
  skip_if_not_installed("lmerTest")
  for (case in kr_cases[5:6]) {
    for (type in c("III", "II", "I")) {
      label <- paste(deparse1(case[[1]]), type)
      fit <- hnm_fit(case[[1]], case[[2]], REML = TRUE)
      twin <- lmertest_twin(fit, case[[1]], case[[2]], REML = TRUE)
      ref <- dense_kr(twin)
      hypotheses <- lmerTest::show_tests(anova(twin, type = type))
      table <- anova(fit, type = type, ddf = "Kenward-Roger")
      expect_match(attr(table, "heading"), "Kenward-Roger's method")
      expect_identical(rownames(table), names(hypotheses), label = label)
      expected <- t(vapply(hypotheses, function(L) dense_kr_f(ref, L), numeric(4)))
      expect_equal(as.matrix(table[, colnames(expected)]), expected, tolerance = 1e-7,
                   ignore_attr = TRUE, label = label)
      expect_equal(table[["Sum Sq"]], expected[, "Mean Sq"] * expected[, "NumDF"],
                   tolerance = 1e-7, ignore_attr = TRUE, label = label)
      expect_equal(table[["Pr(>F)"]],
                   pf(expected[, "F value"], expected[, "NumDF"], expected[, "DenDF"],
                      lower.tail = FALSE), tolerance = 1e-7, ignore_attr = TRUE, label = label)
    }
  }
})

test_that("contest(ddf = 'Kenward-Roger') is lmerTest's KR contest", {
  skip_if_not_installed("lme4")
  case <- kr_cases[[5]]
  fit <- hnm_fit(case[[1]], case[[2]], REML = TRUE)
  ref <- dense_kr(lmer_twin(fit, case[[1]], case[[2]], REML = TRUE))
  L <- rbind(c(0, 0, 1, 0, 0, 0), c(0, 0, 0, 1, 0, 0))
  joint <- contest(fit, L, ddf = "Kenward-Roger")
  expect_equal(unlist(joint[c("Mean Sq", "NumDF", "DenDF", "F value")]), dense_kr_f(ref, L),
               tolerance = 1e-7, ignore_attr = TRUE)
  # rhs: the test of L (beta - L^+ r) = 0 (lmerTest's betaH).
  rhs <- c(0.5, 1)
  shifted <- modifyList(ref, list(beta = ref$beta - drop(MASS::ginv(L) %*% rhs)))
  expect_equal(unlist(contest(fit, L, rhs = rhs, ddf = "Kenward-Roger")[c("F value", "DenDF")]),
               dense_kr_f(shifted, L)[c("F value", "DenDF")], tolerance = 1e-7,
               ignore_attr = TRUE)
  rows <- contest(fit, L, joint = FALSE, ddf = "Kenward-Roger", level = 0.9)
  se <- sqrt(diag(L %*% ref$adjusted %*% t(L)))
  df <- c(dense_kr_df(ref, L[1, , drop = FALSE])$ddf, dense_kr_df(ref, L[2, , drop = FALSE])$ddf)
  expect_equal(rows[["Std. Error"]], se, tolerance = 1e-8)
  expect_equal(rows$df, df, tolerance = 1e-8)
  expect_equal(rows$upper, drop(L %*% ref$beta) + qt(0.95, df) * se, tolerance = 1e-8)
})

test_that("emmeans(lmer.df = 'kenward-roger') uses the adjusted covariance and Lb_ddf", {
  skip_if_not_installed("emmeans")
  d <- kr_cases[[6]][[2]]
  fit <- hnm_fit(y ~ x + a + (1 | g), d, REML = TRUE)
  ref <- dense_kr(lmer_twin(fit, y ~ x + a + (1 | g), d, REML = TRUE))
  emm <- emmeans::emmeans(fit, ~ a, lmer.df = "kenward-roger")
  grid <- as.data.frame(summary(emm))
  X <- emm@linfct
  expect_equal(grid$SE, sqrt(diag(X %*% ref$adjusted %*% t(X))), tolerance = 1e-8)
  expect_equal(grid$df, vapply(seq_len(nrow(X)), function(i) {
    dense_kr_df(ref, X[i, , drop = FALSE])$ddf
  }, 0), tolerance = 1e-8)
  ml <- hnm_fit(y ~ x + a + (1 | g), d, REML = FALSE)
  expect_error(emmeans::emmeans(ml, ~ a, lmer.df = "kenward-roger"), "REML",
               class = "hnm_error_argument")
})

test_that("ML fits are refused as lmerTest refuses them", {
  skip_if_not_installed("lmerTest")
  case <- kr_cases[[2]]
  fit <- hnm_fit(case[[1]], case[[2]], REML = FALSE)
  ml <- lmerTest::lmer(case[[1]], case[[2]], REML = FALSE)
  expect_error(summary(ml, ddf = "Kenward-Roger"), "only available for REML")
  expect_error(summary(fit, ddf = "Kenward-Roger"), "only available for REML",
               class = "hnm_error_argument")
  expect_error(anova(fit, ddf = "Kenward-Roger"), "only available for REML",
               class = "hnm_error_argument")
  expect_error(contest(fit, c(0, 1), ddf = "Kenward-Roger"), "only available for REML",
               class = "hnm_error_argument")
  expect_error(vcov_kenward_roger(fit), "only available for REML", class = "hnm_error_argument")
  expect_error(vcov_kenward_roger(lm(Reaction ~ Days, kr_sleep)), "hnm_fit",
               class = "hnm_error_argument")
})

test_that("contest() checks its input where lmerTest does not", {
  skip_if_not_installed("lmerTest")
  fit <- hnm_fit(Reaction ~ Days + (Days | Subject), kr_sleep, REML = TRUE)
  twin <- lmerTest::lmer(Reaction ~ Days + (Days | Subject), kr_sleep, REML = TRUE)
  L <- rbind(c(0, 1), c(0, 2))
  # rhs outside the range of L: lmerTest warns and tests another hypothesis; an error here.
  expect_warning(lmerTest::contest(twin, L, rhs = c(1, 1)), "rank deficient")
  expect_error(contest(fit, L, rhs = c(1, 1)), "not in the range of `L`",
               class = "hnm_error_argument")
  # In the range: the test of the one direction, as lmerTest's (it warns all the same).
  in_range <- contest(fit, L, rhs = c(1, 2))
  expect_equal(in_range, contest(fit, c(0, 1), rhs = 1), tolerance = 1e-10)
  # level outside (0, 1): an error, as lmerTest's (its waldCI's stopifnot).
  expect_error(lmerTest::contest(twin, c(0, 1), joint = FALSE, level = 2), "level < 1")
  for (level in list(0, 1, 1.5, NA_real_, c(0.9, 0.95), "0.9")) {
    expect_error(contest(fit, c(0, 1), joint = FALSE, level = level), "`level`",
                 class = "hnm_error_argument")
  }
  for (confint in list(NA, "yes", c(TRUE, FALSE), 1)) {
    expect_error(contest(fit, c(0, 1), joint = FALSE, confint = confint), "`confint`",
                 class = "hnm_error")
  }
  expect_identical(names(contest(fit, c(0, 1), joint = FALSE, confint = FALSE)),
                   c("Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"))
  # A row of zeros: lmerTest's t test of it has SE 0 and a NaN statistic; an error here.
  expect_true(is.nan(lmerTest::contest(twin, c(0, 0), joint = FALSE)[["t value"]]))
  for (joint in c(TRUE, FALSE)) {
    expect_error(contest(fit, rbind(c(0, 1), c(0, 0)), joint = joint), "row of zeros \\(row 2\\)",
                 class = "hnm_error_argument")
  }
  expect_error(contest(fit, c(0, 1), ddf = "lme4"), "`ddf` must be one of", class = "hnm_error")
})

test_that("emmeans marks non-estimable cells of a rank-deficient design as for lmer", {
  skip_if_not_installed("emmeans")
  skip_if_not_installed("lmerTest")
  set.seed(7)
  d <- expand.grid(a = c("a1", "a2", "a3"), b = c("b1", "b2"), rep = 1:4, g = 1:8)
  d <- d[!(d$a == "a3" & d$b == "b2"), ]
  d$g <- factor(d$g)
  d$y <- rnorm(nrow(d)) + rnorm(8)[d$g] + (d$a == "a2")
  formula <- y ~ a * b + (1 | g)
  expect_message(fit <- hnm_fit(formula, d, REML = TRUE), "rank deficient")
  twin <- suppressMessages(lmertest_twin(fit, formula, d, REML = TRUE))
  expect_length(fit$dropped_fixed, 1L)
  ours <- as.data.frame(summary(emmeans::emmeans(fit, ~ a * b, lmer.df = "satterthwaite")))
  theirs <- as.data.frame(summary(suppressMessages(
    emmeans::emmeans(twin, ~ a * b, lmer.df = "satterthwaite"))))
  expect_identical(is.na(ours$emmean), is.na(theirs$emmean))
  expect_true(any(is.na(ours$emmean)))
  expect_equal(ours[c("emmean", "SE")], theirs[c("emmean", "SE")], tolerance = 1e-8)
  expect_equal(ours$df, theirs$df, tolerance = 1e-4)
  # Marginal means over b: a3's average needs the empty cell, non-estimable in both.
  ours_a <- as.data.frame(summary(suppressMessages(emmeans::emmeans(fit, ~ a,
                                                                    lmer.df = "asymptotic"))))
  theirs_a <- as.data.frame(summary(suppressMessages(emmeans::emmeans(twin, ~ a,
                                                                      lmer.df = "asymptotic"))))
  expect_identical(is.na(ours_a$emmean), is.na(theirs_a$emmean))
  expect_equal(ours_a$emmean, theirs_a$emmean, tolerance = 1e-8)
})

test_that("the dense reference is pbkrtest's where pbkrtest is installed", {
  skip_if_not_installed("pbkrtest")
  case <- kr_cases[[5]]
  model <- suppressMessages(lme4::lmer(case[[1]], case[[2]], REML = TRUE))
  ref <- dense_kr(model)
  expect_equal(as.matrix(pbkrtest::vcovAdj(model)), ref$adjusted, tolerance = 1e-8,
               ignore_attr = TRUE)
  L <- rbind(c(0, 0, 1, 0, 0, 0), c(0, 0, 0, 1, 0, 0))
  expect_equal(pbkrtest::Lb_ddf(L, vcov(model), pbkrtest::vcovAdj(model)),
               dense_kr_df(ref, L)$ddf, tolerance = 1e-8)
})

test_that("several grouping factors: pbkrtest's adjusted covariance and lmerTest's KR tests", {
  skip_if_not_installed("pbkrtest")
  skip_if_not_installed("lmerTest")
  slopes <- lme4::sleepstudy
  slopes$grp <- factor(rep(1:4, length.out = nrow(slopes)))
  set.seed(7)
  slopes <- slopes[-sample(nrow(slopes), 20), ]
  cases <- list(list(diameter ~ 1 + (1 | plate) + (1 | sample), lme4::Penicillin),
                list(strength ~ 1 + (1 | batch/cask), lme4::Pastes),
                list(Reaction ~ Days + (Days | Subject) + (1 | grp), slopes))
  for (case in cases) {
    label <- deparse1(case[[1]])
    fit <- hnm_fit(case[[1]], case[[2]], REML = TRUE)
    twin <- lmertest_twin(fit, case[[1]], case[[2]], REML = TRUE)
    # The fit from the cells' statistics (no rows) has the same estimates to 1e-10, and its
    # Kenward-Roger pieces from the cells' cross-products.
    fits <- list(rows = fit, stats = hnm_fit(case[[1]], hnm_stats(case[[1]], case[[2]]), REML = TRUE))
    for (kind in names(fits)) {
      info <- paste(label, kind)
      expect_equal(vcov_kenward_roger(fits[[kind]]), as.matrix(pbkrtest::vcovAdj(twin)),
                   tolerance = 1e-8, ignore_attr = TRUE, label = info)
      expect_equal(coef(summary(fits[[kind]], ddf = "Kenward-Roger")),
                   coef(summary(twin, ddf = "Kenward-Roger")), tolerance = 1e-7,
                   ignore_attr = TRUE, label = info)
      expect_equal(as.matrix(anova(fits[[kind]], ddf = "Kenward-Roger")),
                   as.matrix(anova(twin, ddf = "Kenward-Roger")), tolerance = 1e-7,
                   ignore_attr = TRUE, label = info)
    }
  }
})
