//! Per-group sufficient statistics of the one-way model.
//!
//! For group j with observations y_1j, …, y_{n_j j} the likelihood depends on the data
//! only through n_j, the group mean ȳ_j and the within-group sum of squares
//! SSW_j = Σ_i (y_ij − ȳ_j)². They are accumulated in one pass over the rows (see
//! [`crate::accumulate`]: a pilot-shifted Welford update, so Σ y² is never formed).
//!
//! Group means are stored relative to a common `center` c (a value inside the data), so
//! that differences between group means, which the likelihood needs, are not rounded to
//! the precision of a large offset: ȳ_j = c + `centered_mean()[j]`.
//!
//! The statistics are stored as columns (structure of arrays). Fixed-effect covariates
//! would add per-group cross-products X_jᵀX_j, X_jᵀy_j as further columns without
//! changing this layout.

use crate::data::blocks::check_length;
use crate::data::cross_products::CrossProducts;
use crate::error::{HnmError, Result};
use crate::numerics::memory::{collected, copied};

/// Per-group sufficient statistics: counts, means and within-group sums of squares.
///
/// Counts are stored as `f64` because every formula uses them as real weights, and
/// statistics computed elsewhere (a SQL `GROUP BY`) arrive as doubles.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupStats {
    center: f64,
    n: Vec<f64>,
    centered_mean: Vec<f64>,
    ssw: Vec<f64>,
}

impl GroupStats {
    /// The one-way statistics of variable `variable` (0-based) of the model's statistics in the
    /// groups `groups` (indices into `stats`' groups, in the order wanted): n_j, the variable's
    /// group means about its pilot (the centre) and its within-group sums of squares W_j[a, a].
    /// The one-way model `y ~ 1 | g` is the mixed model's q = p = 1 case, and these are its
    /// statistics of the response in the groups it models.
    ///
    /// # Errors
    /// `TooLarge` when the copies do not fit in memory; the errors of [`GroupStats::centered`].
    ///
    /// # Panics
    /// When `variable` is not a variable of `stats` or an index of `groups` not one of its groups.
    ///
    /// # Example
    /// ```
    /// use hnm_core::{CrossProducts, GroupStats};
    /// // Two groups of one variable: n = (2, 3), means 1 and 4 about the pilot 10, W = (0.5, 2).
    /// let stats = CrossProducts::new(vec![10.0], vec![2.0, 3.0], vec![1.0, 4.0], vec![0.5, 2.0]).unwrap();
    /// let s = GroupStats::of_variable(&stats, 0, &[0, 1]).unwrap();
    /// assert_eq!(s.means(), vec![11.0, 14.0]);
    /// assert_eq!(s.ssw_total(), 2.5);
    /// // The second group alone.
    /// assert_eq!(GroupStats::of_variable(&stats, 0, &[1]).unwrap().means(), vec![14.0]);
    /// ```
    pub fn of_variable(stats: &CrossProducts, variable: usize, groups: &[usize]) -> Result<GroupStats> {
        assert!(variable < stats.variables(), "variable {variable} of {} variables", stats.variables());
        const WHAT: &str = "the one-way statistics";
        let n = collected(groups.iter().map(|&j| stats.n()[j]), WHAT)?;
        let means = collected(groups.iter().map(|&j| stats.mean(j)[variable]), WHAT)?;
        let within = stats.comoments_of(variable, variable);
        let ss = collected(groups.iter().map(|&j| within(j)), WHAT)?;
        GroupStats::centered(stats.pilot()[variable], n, means, ss)
    }

    /// Builds statistics from their columns (group sizes, means, within-group sums of
    /// squares), checking that they describe real data.
    ///
    /// Groups with `n = 0` are allowed (an unused factor level) and carry no weight.
    ///
    /// # Errors
    /// As [`GroupStats::centered`]; `TooLarge` when the centred means do not fit in memory.
    ///
    /// # Example
    /// ```
    /// use hnm_core::GroupStats;
    /// let s = GroupStats::new(vec![2.0, 3.0], vec![1.0, 4.0], vec![0.5, 2.0]).unwrap();
    /// assert_eq!(s.n_obs(), 5.0);
    /// assert_eq!(s.means(), vec![1.0, 4.0]);
    /// ```
    pub fn new(n: Vec<f64>, mean: Vec<f64>, ssw: Vec<f64>) -> Result<Self> {
        let center = n.iter().zip(&mean).find(|(&nj, m)| nj > 0.0 && m.is_finite()).map_or(0.0, |(_, &m)| m);
        let centered_mean = collected(mean.iter().map(|&m| m - center), "the group means")?;
        Self::centered(center, n, centered_mean, ssw)
    }

    /// Builds statistics whose means are given relative to `center`: ȳ_j = center + centered_mean_j.
    ///
    /// # Errors
    /// `LengthMismatch` when the columns differ in length; `InvalidStatistic` when a count is
    /// negative or not whole, or a sum of squares is negative; `NotFinite` for non-finite values.
    ///
    /// # Example
    /// ```
    /// use hnm_core::GroupStats;
    /// let s = GroupStats::centered(1e12, vec![2.0, 2.0], vec![0.1, 0.3], vec![0.0, 0.0]).unwrap();
    /// assert_eq!(s.centered_mean()[1] - s.centered_mean()[0], 0.3 - 0.1);
    /// ```
    pub fn centered(center: f64, n: Vec<f64>, centered_mean: Vec<f64>, ssw: Vec<f64>) -> Result<Self> {
        check_length("n", n.len(), "mean", centered_mean.len())?;
        check_length("n", n.len(), "ss", ssw.len())?;
        if !center.is_finite() {
            return Err(HnmError::NotFinite { argument: "center", index: 0 });
        }
        for (j, ((&nj, &mj), &sj)) in n.iter().zip(&centered_mean).zip(&ssw).enumerate() {
            if !nj.is_finite() {
                return Err(HnmError::NotFinite { argument: "n", index: j });
            }
            if nj < 0.0 || nj.fract() != 0.0 {
                return Err(HnmError::InvalidStatistic { argument: "n", index: j, reason: "a count must be a whole number >= 0" });
            }
            if nj > 0.0 && !mj.is_finite() {
                return Err(HnmError::NotFinite { argument: "mean", index: j });
            }
            if !sj.is_finite() {
                return Err(HnmError::NotFinite { argument: "ss", index: j });
            }
            if sj < 0.0 {
                return Err(HnmError::InvalidStatistic { argument: "ss", index: j, reason: "a sum of squares cannot be negative" });
            }
        }
        Ok(GroupStats { center, n, centered_mean, ssw })
    }

    /// Group sizes n_j.
    pub fn n(&self) -> &[f64] {
        &self.n
    }

    /// The common shift c of the stored means.
    pub fn center(&self) -> f64 {
        self.center
    }

    /// Group means minus the center, ȳ_j − c: the form every formula uses.
    pub fn centered_mean(&self) -> &[f64] {
        &self.centered_mean
    }

    /// Group means ȳ_j = c + (ȳ_j − c), rounded to the precision of the data's magnitude.
    pub fn means(&self) -> Vec<f64> {
        self.centered_mean.iter().map(|&m| self.center + m).collect()
    }

    /// Within-group sums of squares SSW_j.
    pub fn ssw(&self) -> &[f64] {
        &self.ssw
    }

    /// A copy, allocated fallibly (`clone` aborts when memory runs out).
    ///
    /// # Errors
    /// `TooLarge` when it does not fit in memory.
    pub fn try_clone(&self) -> Result<Self> {
        const WHAT: &str = "a copy of the one-way statistics";
        Ok(GroupStats { center: self.center, n: copied(&self.n, WHAT)?, centered_mean: copied(&self.centered_mean, WHAT)?, ssw: copied(&self.ssw, WHAT)? })
    }

    /// Number of groups, including empty ones.
    pub fn len(&self) -> usize {
        self.n.len()
    }

    /// True when there are no groups at all.
    pub fn is_empty(&self) -> bool {
        self.n.is_empty()
    }

    /// Number of groups holding at least one observation.
    pub fn n_nonempty_groups(&self) -> usize {
        self.n.iter().filter(|&&nj| nj > 0.0).count()
    }

    /// Total number of observations N = Σ n_j.
    pub fn n_obs(&self) -> f64 {
        self.n.iter().sum()
    }

    /// Pooled within-group sum of squares Σ_j SSW_j.
    pub fn ssw_total(&self) -> f64 {
        self.ssw.iter().sum()
    }

    /// Size-weighted grand mean minus the center, Σ n_j (ȳ_j − c) / N.
    pub fn centered_grand_mean(&self) -> f64 {
        self.centered_weighted_mean_by(|n| n)
    }

    /// Σ w(n_j) (ȳ_j − c) / Σ w(n_j) over the non-empty groups.
    pub(crate) fn centered_weighted_mean_by(&self, weight: impl Fn(f64) -> f64) -> f64 {
        let (mut sum_w, mut sum_wm) = (0.0, 0.0);
        for (&nj, &m) in self.n.iter().zip(&self.centered_mean) {
            if nj > 0.0 {
                let w = weight(nj);
                sum_w += w;
                sum_wm += w * m;
            }
        }
        sum_wm / sum_w
    }

    /// Checks that the statistics can identify the model: at least two groups with data,
    /// some replication within a group, and some within-group variation.
    ///
    /// # Errors
    /// `TooFewGroups`, `NoReplication` or `NoWithinGroupVariation`.
    pub fn check_identifiable(&self) -> Result<()> {
        let groups = self.n_nonempty_groups();
        if groups < 2 {
            return Err(HnmError::TooFewGroups { found: groups });
        }
        if self.n.iter().all(|&nj| nj <= 1.0) {
            return Err(HnmError::NoReplication);
        }
        if self.ssw_total() <= 0.0 {
            return Err(HnmError::NoWithinGroupVariation);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiability_checks() {
        let one = GroupStats::new(vec![3.0], vec![1.0], vec![1.0]).unwrap();
        assert_eq!(one.check_identifiable(), Err(HnmError::TooFewGroups { found: 1 }));
        let singletons = GroupStats::new(vec![1.0, 1.0], vec![1.0, 2.0], vec![0.0, 0.0]).unwrap();
        assert_eq!(singletons.check_identifiable(), Err(HnmError::NoReplication));
        let flat = GroupStats::new(vec![2.0, 2.0], vec![1.0, 2.0], vec![0.0, 0.0]).unwrap();
        assert_eq!(flat.check_identifiable(), Err(HnmError::NoWithinGroupVariation));
    }
}
