//! Inference from a fit: standard errors, profile-likelihood intervals, degrees of freedom and
//! the parametric bootstrap of the linear mixed model (the one-way model is its q = p = 1 case;
//! its closed-form information and ANOVA estimator are its extras).
//!
//! - [`information`] and [`anova`]: the one-way fit's information matrix and the ANOVA
//!   (moment) estimator with its sampling covariance;
//! - [`lmm_profile`]: the mixed model's profiles (lme4's `profile()`), by parameter kind;
//! - [`satterthwaite`]: what Satterthwaite's degrees of freedom need of a mixed-model fit;
//! - [`kenward_roger`]: Kenward and Roger's adjusted covariance of β̂ and what their degrees
//!   of freedom need;
//! - [`bootstrap_lmm`]: parametric-bootstrap replicates and their refits in sufficient-statistic
//!   space.

pub(crate) mod anova;
pub(crate) mod bootstrap_lmm;
pub(crate) mod information;
pub(crate) mod kenward_roger;
pub(crate) mod lmm_profile;
pub(crate) mod satterthwaite;
pub(crate) mod wald;

/// What the tests of the inference that runs evaluations share: a crossed model whose
/// evaluations ask their checkpoint several times, and a count of the questions.
#[cfg(test)]
pub(crate) mod interrupt_tests {
    use crate::data::blocks::Column;
    use crate::model::lmm::{GroupingFactor, LinearMixedModel, Term};
    use crate::numerics::interrupt::{Checkpoint, Never};
    use crate::CrossProducts;

    /// Levels of the crossed model's second factor: a core of two block columns of the
    /// dense kernels (96 wide), each asking the checkpoint.
    pub(crate) const ITEMS: usize = 150;

    /// `y ~ 1 + x + (1 | user) + (1 | item)`: 300 users who rate 8 items each at hashed
    /// positions, and 4 who rate three items in four (dense fronts), one row per cell, with
    /// user and item effects and noise of a hashed sequence.
    pub(crate) fn crossed() -> LinearMixedModel {
        let hashed = |k: usize| ((k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f64 / (1u64 << 24) as f64;
        let sparse = (0..300 * 8).map(|r| (r / 8, (hashed(r) * ITEMS as f64) as usize));
        let dense = (300..304).flat_map(|u| (0..ITEMS).filter(|i| i % 4 != 1).map(move |i| (u, i)));
        let (users, items): (Vec<usize>, Vec<usize>) = sparse.chain(dense).unzip();
        let x: Vec<f64> = (0..users.len()).map(|r| 2.0 * hashed(r + 1_000_000) - 1.0).collect();
        let effect = |level: usize, offset: usize| hashed(level + offset) - 0.5;
        let y: Vec<f64> =
            (0..users.len()).map(|r| 0.5 * x[r] + effect(users[r], 2_000_000) + 0.6 * effect(items[r], 3_000_000) + hashed(r + 4_000_000)).collect();
        let columns = [Column::Double(&y), Column::Double(&x)];
        let cells = users.len();
        let stats = CrossProducts::from_columns(&columns, (0..cells).map(|c| c as i32 + 1), cells, &mut Checkpoint::new(&Never)).unwrap().stats;
        let factors: Vec<GroupingFactor> = [(users, 304), (items, ITEMS)]
            .into_iter()
            .map(|(level_of_group, levels)| GroupingFactor { level_of_group, levels, random: vec![Term::Intercept], blocks: vec![1] })
            .collect();
        LinearMixedModel::with_factors(&stats, 0, vec![Term::Intercept, Term::Variable(1)], &factors, &mut Checkpoint::new(&Never)).unwrap()
    }
}
