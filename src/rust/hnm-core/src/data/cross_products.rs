//! Per-group cross-product blocks of several columns: the sufficient statistics of the
//! linear mixed model with one grouping factor.
//!
//! For group j and the k numeric variables v_1, …, v_k that the model's design is made of
//! (the response, the covariates of X and Z), the likelihood depends on the rows only
//! through n_j, the column means v̄_j and the centred co-moments
//! W_j[a, b] = Σ_i (v_ia − v̄_ja)(v_ib − v̄_jb): every cross-product the model needs is
//! Σ_i v_ia v_ib = W_j[a, b] + n_j v̄_ja v̄_jb (see [`crate::LinearMixedModel`]).
//! The one-way statistics (n_j, ȳ_j, SSW_j) are the case k = 1.

use std::borrow::Cow;

use crate::data::blocks::check_length;
use crate::error::{HnmError, Result};
use crate::numerics::memory::{collected, copied, with_capacity};

/// Index of W[a, b] (b ≤ a) in a packed lower triangle stored by rows.
#[inline]
pub(crate) fn packed(a: usize, b: usize) -> usize {
    a * (a + 1) / 2 + b
}

/// What the pass's buffers of per-group statistics are called in a `TooLarge` error.
pub(crate) const STATISTICS: &str = "the per-group statistics";

/// Per-group counts, means and centred co-moments of k variables.
///
/// Means are stored relative to the pilot p (one value per variable, from inside the data):
/// v̄_ja = p_a + `mean(j)[a]`. Counts are `f64`, as every formula uses them as real weights and
/// statistics computed elsewhere (a SQL `GROUP BY`) arrive as doubles.
#[derive(Debug, Clone, PartialEq)]
pub struct CrossProducts {
    pub(crate) variables: usize,
    pub(crate) pilot: Vec<f64>,
    pub(crate) n: Vec<f64>,
    pub(crate) means: Vec<f64>,
    pub(crate) comoments: Vec<f64>,
}

impl CrossProducts {
    /// Statistics from their parts: `pilot` (k values), and per group (group-major) `n`, the
    /// k means about the pilot and the k(k+1)/2 co-moments, a packed lower triangle by rows
    /// (W[0,0], W[1,0], W[1,1], W[2,0], …).
    ///
    /// # Errors
    /// `LengthMismatch` when the parts do not describe the same groups and variables;
    /// `NotFinite` for a non-finite value; `InvalidStatistic` for a count that is negative or
    /// not whole, or a negative diagonal co-moment (a sum of squares).
    ///
    /// # Example
    /// ```
    /// use hnm_core::CrossProducts;
    /// // Two variables, one group of 3 rows: means (1, 2) about the pilot (10, 20).
    /// let s = CrossProducts::new(vec![10.0, 20.0], vec![3.0], vec![1.0, 2.0], vec![2.0, 1.0, 4.0]).unwrap();
    /// assert_eq!(s.comoment(0, 1, 0), 1.0);
    /// assert_eq!(s.mean(0), &[1.0, 2.0]);
    /// ```
    pub fn new(pilot: Vec<f64>, n: Vec<f64>, means: Vec<f64>, comoments: Vec<f64>) -> Result<Self> {
        let k = pilot.len();
        let groups = n.len();
        check_length("means", means.len(), "n times the number of variables", groups * k)?;
        check_length("comoments", comoments.len(), "n times the co-moments per group", groups * k * (k + 1) / 2)?;
        if let Some(index) = pilot.iter().position(|v| !v.is_finite()) {
            return Err(HnmError::NotFinite { argument: "pilot", index });
        }
        for (j, &nj) in n.iter().enumerate() {
            if !nj.is_finite() {
                return Err(HnmError::NotFinite { argument: "n", index: j });
            }
            if nj < 0.0 || nj.fract() != 0.0 {
                return Err(HnmError::InvalidStatistic { argument: "n", index: j, reason: "a count must be a whole number >= 0" });
            }
        }
        let stats = CrossProducts { variables: k, pilot, n, means, comoments };
        for j in 0..groups {
            if let Some(a) = stats.mean(j).iter().position(|v| !v.is_finite()) {
                return Err(HnmError::NotFinite { argument: "means", index: j * k + a });
            }
            for a in 0..k {
                for b in 0..=a {
                    let w = stats.comoment(j, a, b);
                    if !w.is_finite() {
                        return Err(HnmError::NotFinite { argument: "comoments", index: j });
                    }
                    if a == b && w < 0.0 {
                        return Err(HnmError::InvalidStatistic { argument: "comoments", index: j, reason: "a sum of squares cannot be negative" });
                    }
                }
            }
        }
        Ok(stats)
    }

    /// A copy, allocated fallibly (`clone` aborts when memory runs out).
    ///
    /// # Errors
    /// `TooLarge` when it does not fit in memory.
    pub fn try_clone(&self) -> Result<Self> {
        Ok(CrossProducts {
            variables: self.variables,
            pilot: self.pilot.clone(),
            n: copied(&self.n, STATISTICS)?,
            means: copied(&self.means, STATISTICS)?,
            comoments: copied(&self.comoments, STATISTICS)?,
        })
    }

    /// Number of variables k.
    pub fn variables(&self) -> usize {
        self.variables
    }

    /// Number of groups, empty ones included.
    pub fn groups(&self) -> usize {
        self.n.len()
    }

    /// The value subtracted from each variable before accumulating (the first complete row).
    pub fn pilot(&self) -> &[f64] {
        &self.pilot
    }

    /// Group sizes n_j.
    pub fn n(&self) -> &[f64] {
        &self.n
    }

    /// Total number of observations N = Σ n_j.
    pub fn n_obs(&self) -> f64 {
        self.n.iter().sum()
    }

    /// Group j's means minus the pilot, v̄_j − p.
    pub fn mean(&self, j: usize) -> &[f64] {
        &self.means[j * self.variables..(j + 1) * self.variables]
    }

    /// Group j's means v̄_j = p + (v̄_j − p), rounded to the precision of the data's magnitude.
    pub fn group_means(&self, j: usize) -> Vec<f64> {
        self.mean(j).iter().zip(&self.pilot).map(|(m, p)| p + m).collect()
    }

    /// W_j[a, b] = Σ_i (v_ia − v̄_ja)(v_ib − v̄_jb), symmetric in a and b.
    pub fn comoment(&self, j: usize, a: usize, b: usize) -> f64 {
        let (a, b) = if b <= a { (a, b) } else { (b, a) };
        let triangle = self.variables * (self.variables + 1) / 2;
        self.comoments[j * triangle + packed(a, b)]
    }

    /// All means, group-major (k per group), about the pilot.
    pub fn means(&self) -> &[f64] {
        &self.means
    }

    /// All co-moments, group-major, each group's packed lower triangle by rows.
    pub fn comoments(&self) -> &[f64] {
        &self.comoments
    }

    /// N, the mean about the pilot v̄_a − p_a and the total sum of squares about the mean,
    /// T_a = Σ_j [W_j[a, a] + n_j (v̄_ja − v̄_a)²], of variable `a` over every group: no sum
    /// of squares of the raw values is formed, so an offset keeps its digits.
    ///
    /// # Example
    /// ```
    /// use hnm_core::CrossProducts;
    /// // Groups (1, 3) and (10, 12) about the pilot 0: mean 6.5, T = 2 + 2 + 2 · 2 · 4.5².
    /// let s = CrossProducts::new(vec![0.0], vec![2.0, 2.0], vec![2.0, 11.0], vec![2.0, 2.0]).unwrap();
    /// assert_eq!(s.variable_summary(0), (4.0, 6.5, 85.0));
    /// ```
    pub fn variable_summary(&self, a: usize) -> (f64, f64, f64) {
        let n_obs = self.n_obs();
        let groups = 0..self.groups();
        let mean = groups.clone().map(|j| self.n[j] * self.mean(j)[a]).sum::<f64>() / n_obs;
        let total = groups.map(|j| self.comoment(j, a, a) + self.n[j] * (self.mean(j)[a] - mean).powi(2)).sum();
        (n_obs, mean, total)
    }

    /// The statistics of the groups with at least one row, in order, and their indices (these
    /// statistics themselves, not a copy, when every group has rows).
    ///
    /// # Errors
    /// `TooLarge` when the copy does not fit in memory.
    pub fn nonempty(&self) -> Result<(Cow<'_, CrossProducts>, Vec<usize>)> {
        let keep = collected((0..self.groups()).filter(|&j| self.n[j] > 0.0), "the indices of the groups")?;
        if keep.len() == self.groups() {
            return Ok((Cow::Borrowed(self), keep));
        }
        let (k, triangle) = (self.variables, self.variables * (self.variables + 1) / 2);
        let mut out = CrossProducts {
            variables: k,
            pilot: self.pilot.clone(),
            n: with_capacity(&[keep.len()], STATISTICS)?,
            means: with_capacity(&[keep.len(), k], STATISTICS)?,
            comoments: with_capacity(&[keep.len(), triangle], STATISTICS)?,
        };
        for &j in &keep {
            out.n.push(self.n[j]);
            out.means.extend_from_slice(self.mean(j));
            out.comoments.extend_from_slice(&self.comoments[j * triangle..(j + 1) * triangle]);
        }
        Ok((Cow::Owned(out), keep))
    }
}
