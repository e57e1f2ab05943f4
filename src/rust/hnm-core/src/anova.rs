//! The ANOVA (method-of-moments) estimator of the one-way model.
//!
//! With m non-empty groups and N observations, MSE = Σ SSW_j/(N − m) and
//! MSG = Σ n_j (ȳ_j − ȳ)²/(m − 1); E[MSG] = σ² + n₀τ² with
//! n₀ = (N − Σ n_j²/N)/(m − 1), which is n for balanced data. Hence σ̂² = MSE and
//! τ̂² = (MSG − MSE)/n₀, truncated at 0.

use crate::error::Result;
use crate::likelihood::groups;
use crate::stats::GroupStats;

/// Mean squares and moment estimates of the one-way ANOVA.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Anova {
    /// Grand mean ȳ = Σ n_j ȳ_j / N.
    pub mu: f64,
    /// Between-group mean square MSG.
    pub msg: f64,
    /// Within-group mean square MSE.
    pub mse: f64,
    /// Effective group size n₀.
    pub n0: f64,
    /// Degrees of freedom m − 1 of MSG.
    pub df_between: f64,
    /// Degrees of freedom N − m of MSE.
    pub df_within: f64,
    /// (MSG − MSE)/n₀ before truncation; negative when MSG < MSE.
    pub tau2_untruncated: f64,
}

impl Anova {
    /// The one-way ANOVA of `stats`.
    ///
    /// # Errors
    /// The errors of [`GroupStats::check_identifiable`].
    ///
    /// # Example
    /// ```
    /// use hnm_core::{Anova, GroupStats};
    /// // Two groups of two: means 0 and 2, SSW 1 each.
    /// let s = GroupStats::new(vec![2.0, 2.0], vec![0.0, 2.0], vec![1.0, 1.0]).unwrap();
    /// let a = Anova::new(&s).unwrap();
    /// assert_eq!((a.mse, a.msg, a.n0), (1.0, 4.0, 2.0));
    /// assert_eq!(a.tau2(), 1.5);
    /// ```
    pub fn new(stats: &GroupStats) -> Result<Self> {
        stats.check_identifiable()?;
        let n_obs = stats.n_obs();
        let m = stats.n_nonempty_groups() as f64;
        let mu = stats.centered_grand_mean();
        let (mut between, mut sum_n2) = (0.0, 0.0);
        for (n, mean, _) in groups(stats) {
            between += n * (mean - mu) * (mean - mu);
            sum_n2 += n * n;
        }
        let (df_between, df_within) = (m - 1.0, n_obs - m);
        let msg = between / df_between;
        let mse = stats.ssw_total() / df_within;
        let n0 = (n_obs - sum_n2 / n_obs) / df_between;
        Ok(Anova { mu: stats.center() + mu, msg, mse, n0, df_between, df_within, tau2_untruncated: (msg - mse) / n0 })
    }

    /// σ̂² = MSE.
    pub fn sigma2(&self) -> f64 {
        self.mse
    }

    /// τ̂² = max(0, (MSG − MSE)/n₀).
    pub fn tau2(&self) -> f64 {
        self.tau2_untruncated.max(0.0)
    }

    /// The F statistic MSG/MSE of the test of τ² = 0.
    pub fn f_statistic(&self) -> f64 {
        self.msg / self.mse
    }
}
