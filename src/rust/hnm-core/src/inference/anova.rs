//! The ANOVA (method-of-moments) estimator of the one-way model.
//!
//! With m non-empty groups and N observations, MSE = Σ SSW_j/(N − m) and
//! MSG = Σ n_j (ȳ_j − ȳ)²/(m − 1); E[MSG] = σ² + n₀τ² with
//! n₀ = (N − Σ n_j²/N)/(m − 1), which is n for balanced data. Hence σ̂² = MSE and
//! τ̂² = (MSG − MSE)/n₀, truncated at 0.
//!
//! Under normality ȳ, MSE and MSG are independent, so the sampling covariance of the
//! estimators is known in closed form (see [`Anova::covariance`]).

use crate::data::stats::GroupStats;
use crate::error::Result;
use crate::model::one_way::likelihood::groups;

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

    /// Sampling covariance of (μ̂ = ȳ, σ̂² = MSE, τ̂² = (MSG − MSE)/n₀), evaluated at the
    /// estimates (σ̂², τ̂² truncated at 0), in the order (μ, σ², τ²) of [`crate::Params`].
    ///
    /// With v_j = τ² + σ²/n_j the variance of ȳ_j, N = Σ n_j and m groups:
    /// Var(ȳ) = Σ n_j² v_j / N²; Var(MSE) = 2σ⁴/(N − m); MSG is the quadratic form
    /// z'Az/(m − 1) in the independent group means z, A = diag(n) − n nᵀ/N, so
    /// Var(MSG) = 2 tr(AVAV)/(m − 1)² with V = diag(v), that is
    /// 2 [Σ n_j² v_j² − 2 Σ n_j³ v_j²/N + (Σ n_j² v_j)²/N²]/(m − 1)², which is
    /// 2(σ² + nτ²)²/(m − 1) for balanced data. ȳ, MSE and MSG are independent, hence
    /// Var(τ̂²) = (Var(MSG) + Var(MSE))/n₀², Cov(σ̂², τ̂²) = −Var(MSE)/n₀, and μ̂ is
    /// uncorrelated with both. The variances are those of the untruncated τ̂².
    ///
    /// `stats` must be the statistics this `Anova` was computed from.
    ///
    /// # Example
    /// ```
    /// use hnm_core::{Anova, GroupStats};
    /// // Balanced, m = 2 groups of n = 2: MSE = 1, MSG = 4, τ̂² = 1.5, v = τ̂² + σ̂²/2 = 2.
    /// let s = GroupStats::new(vec![2.0, 2.0], vec![0.0, 2.0], vec![1.0, 1.0]).unwrap();
    /// let c = Anova::new(&s).unwrap().covariance(&s);
    /// assert_eq!(c[0][0], 4.0 * 2.0 * 2.0 / 16.0); // Σ n² v / N²
    /// assert_eq!(c[1][1], 2.0 / 2.0); // 2σ⁴/(N − m)
    /// assert_eq!(c[2][2], (2.0 * 16.0 / 1.0 + 1.0) / 4.0); // (2(2v)²/(m − 1) + Var(MSE))/n²
    /// assert_eq!(c[1][2], -1.0 / 2.0);
    /// ```
    pub fn covariance(&self, stats: &GroupStats) -> [[f64; 3]; 3] {
        let (sigma2, tau2) = (self.sigma2(), self.tau2());
        let n_obs = stats.n_obs();
        let (mut n2v, mut n2v2, mut n3v2) = (0.0, 0.0, 0.0);
        for (n, _, _) in groups(stats) {
            let v = tau2 + sigma2 / n;
            n2v += n * n * v;
            n2v2 += n * n * v * v;
            n3v2 += n * n * n * v * v;
        }
        let var_mu = n2v / (n_obs * n_obs);
        let var_mse = 2.0 * sigma2 * sigma2 / self.df_within;
        let trace = n2v2 - 2.0 * n3v2 / n_obs + n2v * n2v / (n_obs * n_obs);
        let var_msg = 2.0 * trace / (self.df_between * self.df_between);
        let var_tau2 = (var_msg + var_mse) / (self.n0 * self.n0);
        let cov_s_t = -var_mse / self.n0;
        [[var_mu, 0.0, 0.0], [0.0, var_mse, cov_s_t], [0.0, cov_s_t, var_tau2]]
    }
}
