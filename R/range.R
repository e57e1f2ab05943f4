# The range of data the general model is exact in (?hnm-conditions, "Range of the data").
#
# The data pass (and a database, or a statistics table) gives per-group co-moments in the
# data's units; the model then rescales each column by a power of two near its spread, exactly.
# So the only squares of data-unit numbers are the co-moments and the columns' total sums of
# squares the model computes from them; everything after works in internal units and maps
# back by the exact scale laws (beta_a ~ t_y / t_a, their variances and the random-effects
# covariances ~ (t_y / t_a)(t_y / t_b), sigma ~ t_y). Three conditions keep all of these
# normal doubles:
# * each variable's total sum of squares about its mean, T_a = sum_j [W_j,aa + n_j (m_ja -
#   m_a)^2], is finite: sqrt(T_a) <= 1.3e154 (and so is N times the mean square about 0 of
#   a column used uncentred, without an intercept in its part);
# * T_a / N is at least .Machine$double.xmin = 2.2e-308, an RMS deviation of 1.5e-154 (or the
#   variable is constant: no deviations and equal group means; its sum of squares alone cannot
#   tell, as squares of 1e-200 underflow to 0): then a product of deviations that falls below
#   the normal range loses at most 2^-1075, which is 1e-16 of a product at the column's scale;
# * the spread t_y of the response over the spread t_a of each column of X and Z lies within
#   1e-150..1e150, so that (t_y / t_a)^2, the scale of the variances, stays within 1e-300..1e300:
#   a factor of 1e8 inside double precision for the data's own conditioning.
# The check reads the statistics (O(groups x variables), never the rows) and covers every way
# into the model: the rows' pass, a statistics table and a database's statistics.


# `stats`: pilot (k), n (groups), means (group-major, k per group, about the pilot) and
# comoments (group-major, k(k + 1)/2 per group, lower triangles by rows), as rs_lmm_build
# returns them; `names` the k variables; `response`, `fixed`, `random` (1-based indices, 0 the
# intercept) and `blocks` the design.
check_lmm_range <- function(stats, names, response, fixed, random, blocks, call) {
  k <- length(stats$pilot)
  present <- which(stats$n > 0)
  n <- stats$n[present]
  n_obs <- sum(n)
  if (n_obs == 0) return(invisible())  # no rows: refused by the model with its own error
  # Each group's k means, and the diagonal of its packed co-moments (W[a, a] sits at
  # a(a + 1)/2, 1-based): gathered with one index, without copying the whole triangle.
  means <- matrix(stats$means[rep((present - 1L) * k, each = k) + seq_len(k)], ncol = k,
                  byrow = TRUE)
  width <- k * (k + 1) / 2
  diagonal <- seq_len(k) * (seq_len(k) + 1L) / 2L
  within <- matrix(stats$comoments[rep((present - 1L) * width, each = k) + diagonal], ncol = k,
                   byrow = TRUE)
  mean <- colSums(n * means) / n_obs
  total <- colSums(within) + colSums(n * sweep(means, 2L, mean)^2)
  # The model centres X's columns and y when X has an intercept, and Z's columns of a block
  # with a random intercept; the others it scales about 0.
  blocks_of <- rep(seq_along(blocks), blocks)
  uncentred <- c(if (!0L %in% fixed) c(fixed, response),
                 random[!blocks_of %in% blocks_of[random == 0L]])
  uncentred <- unique(uncentred[uncentred > 0L])
  square <- total / n_obs
  square[uncentred] <- square[uncentred] + (stats$pilot[uncentred] + mean[uncentred])^2
  label <- function(a) sprintf("`%s`", names[a])
  wide <- which(!is.finite(total) | !is.finite(square * n_obs))
  if (length(wide) > 0L) {
    hnm_abort(sprintf(paste("the model variable %s spans too wide a range: its sum of squares",
                            "would overflow double precision (its RMS deviation times sqrt(N) must stay",
                            "below 1.3e154); divide it by a power of ten and scale the estimates",
                            "back."), label(wide[1L])),
              call = call, class = "hnm_error_out_of_range")
  }
  # Whether a variable varies is read from values, not from squares (which may underflow to 0
  # for values of 1e-200): a positive sum of squares, or group means (about the pilot) apart.
  varies <- total > 0 | colSums(means != rep(means[1L, ], each = nrow(means))) > 0
  narrow <- which(varies & !(total / n_obs >= .Machine$double.xmin))
  if (length(narrow) > 0L) {
    rms <- sqrt(total[narrow[1L]] / n_obs)
    hnm_abort(sprintf(paste("the model variable %s varies too little: its squared deviations",
                            "(RMS %s) underflow double precision (the RMS deviation must be at",
                            "least 1.5e-154); multiply it by a power of ten and scale the",
                            "estimates back."), label(narrow[1L]),
                      if (rms > 0) sprintf("%.1e", rms) else "below 1e-162"),
              call = call, class = "hnm_error_out_of_range")
  }
  spread <- sqrt(square)
  columns <- setdiff(c(fixed, random), 0L)
  columns <- columns[spread[columns] > 0]
  ratio <- spread[response] / spread[columns]
  apart <- which(ratio < 1e-150 | ratio > 1e150)
  if (spread[response] > 0 && length(apart) > 0L) {
    a <- columns[apart[1L]]
    hnm_abort(sprintf(paste("the response %s and the model column %s differ in scale by a",
                            "factor of %.1e: the estimates scale with that ratio and their variances",
                            "with its square, which would leave double precision; rescale one of",
                            "them by a power of ten so that the ratio of their spreads lies within",
                            "1e-150..1e150."), label(response), label(a), ratio[apart[1L]]),
              call = call, class = "hnm_error_out_of_range")
  }
  check_within_variation(n, within[, response], names[response], random, call)
  invisible()
}

# A response that does not vary within any group, with a random intercept: the group effects
# reproduce it, so sigma^2 -> 0 and the likelihood is unbounded (the one-way model's error).
# (Groups of one row have no within-group variation to show: all of them is no_replication.)
check_within_variation <- function(n, within, name, random, call) {
  if (any(random == 0L) && any(n > 1) && all(within == 0)) {
    hnm_abort(sprintf(paste("the response `%s` does not vary within any group, so the",
                            "within-group variance (sigma^2) would be 0 and the likelihood is",
                            "unbounded."), name),
              call = call, class = "hnm_error_no_within_group_variation")
  }
}
