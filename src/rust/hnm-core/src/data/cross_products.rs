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

use crate::data::blocks::{check_length, vectorised};
use crate::error::{HnmError, Result};
use crate::numerics::memory::{collected, copied, filled, with_capacity};

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
///
/// The co-moments are kept per group for every pair of variables, or, in the *pooled* layout
/// ([`CrossProducts::pooled`]), per group only for the pairs (a, b) where a or b is one of the
/// *group variables* (a model's random-effects columns), the other pairs' only as their sum
/// over the groups. Either way Σ_j W_j[a, b] = Σ_j [`CrossProducts::comoment`](j, a, b) +
/// [`CrossProducts::pooled_comoment`](a, b): the per-group part is all of W_j[a, b] or 0.
#[derive(Debug, Clone, PartialEq)]
pub struct CrossProducts {
    pub(crate) variables: usize,
    pub(crate) pilot: Vec<f64>,
    pub(crate) n: Vec<f64>,
    pub(crate) means: Vec<f64>,
    pub(crate) comoments: Vec<f64>,
    /// The pooled layout (None: every pair per group).
    pub(crate) pooled: Option<Pooled>,
}

/// Which co-moments the pooled layout keeps per group, and the sum over the groups of all.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pooled {
    /// The group variables, sorted.
    pub(crate) group_variables: Vec<usize>,
    /// The pairs (a ≥ b) kept per group, in packed order: a or b a group variable.
    pub(crate) pairs: Vec<(usize, usize)>,
    /// Per packed pair its index among `pairs`, or [`NOT_KEPT`].
    pub(crate) slot: Vec<u32>,
    /// Σ_j W_j over every pair, packed.
    pub(crate) total: Vec<f64>,
}

/// A pair of [`Pooled::slot`] not kept per group.
pub(crate) const NOT_KEPT: u32 = u32::MAX;

impl Pooled {
    /// The layout of k variables keeping per group the pairs of `group_variables`, with the
    /// sums `total` (k(k+1)/2, packed).
    pub(crate) fn new(k: usize, group_variables: &[usize], total: Vec<f64>) -> Result<Self> {
        let mut variables = copied(group_variables, STATISTICS)?;
        variables.sort_unstable();
        variables.dedup();
        if variables.last().is_some_and(|&a| a >= k) {
            return Err(HnmError::InvalidArgument { argument: "group_variables", reason: "must be variables of the statistics" });
        }
        let mut is_group = vec![false; k];
        variables.iter().for_each(|&a| is_group[a] = true);
        let mut slot = filled(&[k * (k + 1) / 2], NOT_KEPT, STATISTICS)?;
        let mut pairs = Vec::new();
        for a in 0..k {
            for b in 0..=a {
                if is_group[a] || is_group[b] {
                    slot[packed(a, b)] = pairs.len() as u32;
                    crate::numerics::memory::push(&mut pairs, (a, b), STATISTICS)?;
                }
            }
        }
        Ok(Pooled { group_variables: variables, pairs, slot, total })
    }

    pub(crate) fn try_clone(&self) -> Result<Self> {
        Ok(Pooled {
            group_variables: copied(&self.group_variables, STATISTICS)?,
            pairs: copied(&self.pairs, STATISTICS)?,
            slot: copied(&self.slot, STATISTICS)?,
            total: copied(&self.total, STATISTICS)?,
        })
    }
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
        Self::checked(CrossProducts { variables: pilot.len(), pilot, n, means, comoments, pooled: None })
    }

    /// Statistics in the pooled layout (type docs): as [`CrossProducts::new`], but each group's
    /// co-moments only those of the pairs (a ≥ b, packed order) where a or b is among
    /// `group_variables` (0-based), and `pooled` = Σ_j W_j over every pair (k(k+1)/2, packed).
    ///
    /// # Errors
    /// As [`CrossProducts::new`]; `InvalidArgument` for a group variable that is not one of
    /// the k; `TooLarge` when the layout does not fit in memory.
    ///
    /// # Example
    /// ```
    /// use hnm_core::CrossProducts;
    /// // Variables (y, z), z the group variable: per group W[z,y] and W[z,z]; W[y,y] pooled.
    /// let s = CrossProducts::pooled(vec![0.0, 0.0], vec![2.0, 3.0], vec![1.0, 2.0, 3.0, 4.0],
    ///     vec![0.5, 1.0, 0.25, 2.0], vec![7.0, 0.75, 3.0], &[1]).unwrap();
    /// assert_eq!((s.comoment(1, 1, 0), s.comoment(1, 0, 0), s.pooled_comoment(0, 0)), (0.25, 0.0, 7.0));
    /// ```
    pub fn pooled(pilot: Vec<f64>, n: Vec<f64>, means: Vec<f64>, comoments: Vec<f64>, pooled: Vec<f64>, group_variables: &[usize]) -> Result<Self> {
        let k = pilot.len();
        check_length("pooled", pooled.len(), "the co-moments of the variables", k * (k + 1) / 2)?;
        if let Some(index) = pooled.iter().position(|v| !v.is_finite()) {
            return Err(HnmError::NotFinite { argument: "pooled", index });
        }
        if (0..k).any(|a| pooled[packed(a, a)] < 0.0) {
            return Err(HnmError::InvalidStatistic { argument: "pooled", index: 0, reason: "a sum of squares cannot be negative" });
        }
        let layout = Pooled::new(k, group_variables, pooled)?;
        Self::checked(CrossProducts { variables: k, pilot, n, means, comoments, pooled: Some(layout) })
    }

    /// `stats` after checking its parts (see [`CrossProducts::new`]).
    fn checked(stats: CrossProducts) -> Result<Self> {
        let (k, groups) = (stats.variables, stats.n.len());
        let (pilot, n) = (&stats.pilot, &stats.n);
        check_length("means", stats.means.len(), "n times the number of variables", groups * k)?;
        check_length("comoments", stats.comoments.len(), "n times the co-moments per group", groups * stats.per_group())?;
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
        let per_group = stats.per_group();
        for j in 0..groups {
            if let Some(a) = stats.mean(j).iter().position(|v| !v.is_finite()) {
                return Err(HnmError::NotFinite { argument: "means", index: j * k + a });
            }
            if stats.comoments[j * per_group..(j + 1) * per_group].iter().any(|w| !w.is_finite()) {
                return Err(HnmError::NotFinite { argument: "comoments", index: j });
            }
            if (0..k).any(|a| stats.comoment(j, a, a) < 0.0) {
                return Err(HnmError::InvalidStatistic { argument: "comoments", index: j, reason: "a sum of squares cannot be negative" });
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
            pooled: self.pooled.as_ref().map(Pooled::try_clone).transpose()?,
        })
    }

    /// Number of co-moments kept per group: k(k+1)/2, or in the pooled layout those of the
    /// pairs with a group variable.
    pub fn per_group(&self) -> usize {
        self.pooled.as_ref().map_or(self.variables * (self.variables + 1) / 2, |p| p.pairs.len())
    }

    /// The group variables of the pooled layout (None: every pair is kept per group).
    pub fn group_variables(&self) -> Option<&[usize]> {
        self.pooled.as_ref().map(|p| &p.group_variables[..])
    }

    /// Σ_j W_j over every pair of variables, packed, in the pooled layout (None otherwise).
    pub fn pooled_totals(&self) -> Option<&[f64]> {
        self.pooled.as_ref().map(|p| &p.total[..])
    }

    /// The part of Σ_j W_j[a, b] not kept per group: 0 for a pair kept per group (every pair
    /// outside the pooled layout), the whole sum for a pair pooled.
    pub fn pooled_comoment(&self, a: usize, b: usize) -> f64 {
        let index = if b <= a { packed(a, b) } else { packed(b, a) };
        match &self.pooled {
            Some(p) if p.slot[index] == NOT_KEPT => p.total[index],
            _ => 0.0,
        }
    }

    /// Where W_j[a, b] (any j) sits in a group's co-moments, or None for a pair pooled.
    #[inline]
    pub(crate) fn slot(&self, a: usize, b: usize) -> Option<usize> {
        let index = if b <= a { packed(a, b) } else { packed(b, a) };
        match &self.pooled {
            None => Some(index),
            Some(p) => (p.slot[index] != NOT_KEPT).then_some(p.slot[index] as usize),
        }
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

    /// W_j[a, b] = Σ_i (v_ia − v̄_ja)(v_ib − v̄_jb), symmetric in a and b; 0 for a pair the
    /// pooled layout keeps only as a sum ([`CrossProducts::pooled_comoment`]).
    pub fn comoment(&self, j: usize, a: usize, b: usize) -> f64 {
        self.comoments_of(a, b)(j)
    }

    /// [`CrossProducts::comoment`] of the pair (a, b) as a function of the group j, with the
    /// pair's slot looked up once: for the passes over the groups.
    #[inline(always)]
    pub(crate) fn comoments_of(&self, a: usize, b: usize) -> impl Fn(usize) -> f64 + '_ {
        let (slot, per_group, comoments) = (self.slot(a, b), self.per_group(), &self.comoments);
        move |j| slot.map_or(0.0, |s| comoments[j * per_group + s])
    }

    /// All means, group-major (k per group), about the pilot.
    pub fn means(&self) -> &[f64] {
        &self.means
    }

    /// All co-moments, group-major, each group's packed lower triangle by rows (in the pooled
    /// layout the pairs with a group variable, in the same order).
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
        let (n_obs, mean, total) = self.summaries_of(&[a]);
        (n_obs, mean[0], total[0])
    }

    /// [`CrossProducts::variable_summary`] of every variable: N, the means and the totals T_a
    /// (plus the pooled part of Σ_j W_j[a, a]), from two passes over the groups rather than two
    /// per variable (which read all the groups' means 2k times: 2 GB for InstEval's cells).
    pub fn variable_summaries(&self) -> (f64, Vec<f64>, Vec<f64>) {
        self.summaries_of(&(0..self.variables).collect::<Vec<_>>())
    }

    /// N, the means and the totals T_a of the variables `variables`, in their order; the sums
    /// compiled for AVX2 where the processor has it (the same sums: [`vectorised`]).
    fn summaries_of(&self, variables: &[usize]) -> (f64, Vec<f64>, Vec<f64>) {
        vectorised(
            true,
            #[inline(always)]
            || self.portable_summaries_of(variables),
        )
    }

    /// [`CrossProducts::summaries_of`] as the portable code computes them.
    #[inline(always)]
    pub(crate) fn portable_summaries_of(&self, variables: &[usize]) -> (f64, Vec<f64>, Vec<f64>) {
        let (k, n_obs) = (self.variables, self.n_obs());
        let (n, means) = (&self.n, &self.means);
        let rows = || n.iter().zip(means.chunks_exact(k));
        // Group by group (the means are stored so), each variable's sum over the groups in order.
        let mut mean = vec![0.0; variables.len()];
        for (&n, row) in rows() {
            for (m, &a) in mean.iter_mut().zip(variables) {
                *m += n * row[a];
            }
        }
        mean.iter_mut().for_each(|m| *m /= n_obs);
        // Each group's within part where the pair is kept per group (0 where it is not, as
        // the pooled layout's pairs without a group variable), and its between part.
        let (slots, per_group) = (variables.iter().map(|&a| self.slot(a, a)).collect::<Vec<_>>(), self.per_group());
        let mut total = vec![0.0; variables.len()];
        for (j, (&n, row)) in rows().enumerate() {
            for (((t, &a), &m), slot) in total.iter_mut().zip(variables).zip(&mean).zip(&slots) {
                let within = slot.map_or(0.0, |s| self.comoments[j * per_group + s]);
                *t += within + n * (row[a] - m).powi(2);
            }
        }
        for (t, &a) in total.iter_mut().zip(variables) {
            *t += self.pooled_comoment(a, a);
        }
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
        let (k, triangle) = (self.variables, self.per_group());
        let mut out = CrossProducts {
            variables: k,
            pilot: self.pilot.clone(),
            n: with_capacity(&[keep.len()], STATISTICS)?,
            means: with_capacity(&[keep.len(), k], STATISTICS)?,
            comoments: with_capacity(&[keep.len(), triangle], STATISTICS)?,
            pooled: self.pooled.as_ref().map(Pooled::try_clone).transpose()?,
        };
        for &j in &keep {
            out.n.push(self.n[j]);
            out.means.extend_from_slice(self.mean(j));
            out.comoments.extend_from_slice(&self.comoments[j * triangle..(j + 1) * triangle]);
        }
        Ok((Cow::Owned(out), keep))
    }
}
