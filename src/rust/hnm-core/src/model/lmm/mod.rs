//! The linear mixed model with one grouping factor, from per-group cross-product blocks.
//!
//! For groups j = 1..m, y_j = X_j β + Z_j b_j + ε_j with b_j ~ N(0, σ² Λ Λᵀ) (q × q) and
//! ε_j ~ N(0, σ² I). Λ is lower triangular and block diagonal (one unstructured block per
//! random-effects term), parametrised as lme4 does by θ, the lower triangle of each block by
//! columns; its diagonal is ≥ 0.
//!
//! # The profiled deviance (Bates et al. 2015, JSS 67(1), section 3; MixedModels.jl)
//! With S_j = Z_jᵀZ_j, B_j = Z_jᵀ[X_j y_j] and F = Σ_j [X_j y_j]ᵀ[X_j y_j], each evaluation
//! is a blocked Cholesky factorisation taken group by group:
//!
//! L_j L_jᵀ = Λᵀ S_j Λ + I,   R_j = L_j⁻¹ Λᵀ B_j,   L_F L_Fᵀ = F − Σ_j R_jᵀ R_j,
//!
//! whose last diagonal element is r = √(penalised residual sum of squares) and whose leading
//! p × p block is R_X (so β̂ = R_X⁻ᵀ l_y with l_y the last row of L_F). Then
//!
//! ML:   d(θ) = Σ_j log|L_j|² + N [1 + log(2π r²/N)]
//! REML: d(θ) = Σ_j log|L_j|² + log|R_X|² + (N − p) [1 + log(2π r²/(N − p))]
//!
//! at a cost of O(m (q³ + q²p + qp²) + p³), independent of N.
//!
//! # The gradient
//! By the envelope theorem (β̂ and σ̂² minimise the unprofiled criterion), with
//! A_j = L_j L_jᵀ, T_j = S_j Λ, e_j = Z_jᵀ(y_j − X_j β̂), u_j = A_j⁻¹ Λᵀ e_j (the spherical
//! conditional mode) and σ̂² = r²/N (ML) or r²/(N − p) (REML),
//!
//! ∂d/∂Λ = Σ_j [ 2 T_j A_j⁻¹ − (2/σ̂²) (e_j − T_j u_j) u_jᵀ ]
//!         − (REML only) 2 Σ_j (Ĝ_j − T_j Û_j) Û_jᵀ,
//!
//! where G_j = Z_jᵀX_j, Ĝ_j = G_j R_X⁻¹ and Û_j = A_j⁻¹ Λᵀ Ĝ_j (the derivative of
//! log|XᵀV⁻¹X|); ∂d/∂θ picks the entries of ∂d/∂Λ that θ parametrises.
//!
//! # Exactness and units
//! The model is computed on internal columns ((v − p) − s)/t, where t is a power of two near
//! the column's spread (exact rescaling) and s its grand mean about the pilot p whenever the
//! shift is a reparametrisation of the model: for X and y when X has an intercept, for a
//! column of Z when its Λ block has a random intercept. So covariates with offsets of 1e9 or
//! units of 1e-100 give the same well-conditioned problem; results are mapped back exactly
//! (β = M_X (t_y β̃ + s_y e₀), b = t_y M_Z b̃, Σ = t_y² M_Z Σ̃ M_Zᵀ, with M the inverse of the
//! column maps).
//!
//! # Where it lives
//! The model's types and its construction are here; its computation is split by concern:
//! [`structure`] (the design columns' maps and θ's layout in Λ), [`statistics`] (the blocks
//! S_j, B_j and F from the groups' statistics), [`evaluation`] (the blocked Cholesky
//! factorisation and the criteria), [`gradient`] (the criterion's analytic gradient), [`fit`]
//! (the starts and the search), [`random_effects`] (conditional modes and fitted values) and
//! [`prediction`] (the variances of conditional predictions); several grouping factors,
//! nested and crossed, in [`factors`]. Its profiles and Satterthwaite's derivatives are in [`crate::inference`].

use crate::data::cross_products::CrossProducts;
use crate::data::stats::GroupStats;
use crate::error::{HnmError, Result};
use crate::model::one_way::profiled_deviance::Criterion;
use crate::numerics::dense::principal_submatrix;
use crate::numerics::interrupt::{Checkpoint, Never};
use crate::numerics::memory::{collected, copied, filled};
use statistics::{full_rank_columns, level_blocks, symmetric_cross_products};
use structure::{check_structure, theta_layout, to_user_map, Affine, ColumnSummary};

mod evaluation;
pub(crate) mod factors;
pub use factors::GroupingFactor;
mod fit;
pub use fit::FitControl;
mod gradient;
mod prediction;
mod random_effects;
mod range;
mod statistics;
pub(crate) mod structure;

pub(crate) const LOG_2PI: f64 = 1.837_877_066_409_345_5;

/// A column of a design: the constant 1, or variable `Variable(a)` of the cross-products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Term {
    /// The constant column of ones.
    Intercept,
    /// Variable a (0-based) of the [`CrossProducts`].
    Variable(usize),
}

/// Which variables make the response, X and Z, and how Λ is blocked.
#[derive(Debug, Clone, PartialEq)]
pub struct Structure {
    /// The response's variable.
    pub response: usize,
    /// The columns of X.
    pub fixed: Vec<Term>,
    /// The columns of Z.
    pub random: Vec<Term>,
    /// Sizes of Λ's diagonal blocks over consecutive columns of Z (they sum to `random.len()`);
    /// each block is unstructured (a correlated term such as `(1 + x | g)`), so `(x || g)` is
    /// two blocks of size 1.
    pub blocks: Vec<usize>,
}

/// The model: the groups' blocks S_j, B_j and F in internal units, and the maps back.
#[derive(Debug, Clone)]
pub struct LinearMixedModel {
    pub(crate) structure: Structure,
    pub(crate) kept: Vec<usize>,
    pub(crate) group_index: Vec<usize>,
    pub(crate) n: Vec<f64>,
    pub(crate) n_obs: f64,
    pub(crate) q: usize,
    pub(crate) p: usize,
    pub(crate) zz: Vec<f64>,
    pub(crate) zxy: Vec<f64>,
    pub(crate) xy: Vec<f64>,
    pub(crate) response: Affine,
    pub(crate) fixed: Vec<Affine>,
    pub(crate) random: Vec<Affine>,
    pub(crate) to_user_fixed: Vec<f64>,
    pub(crate) to_user_random: Vec<f64>,
    pub(crate) theta_positions: Vec<(usize, usize)>,
    pub(crate) lower: Vec<f64>,
    /// For the one-way model `y ~ 1 | g` (the intercept the only fixed and the only random
    /// effect), the response's (n_j, ȳ_j, SSW_j) of the modelled groups: its fit takes θ̂ at
    /// the root of the profiled score ([`crate::fit_from`]), exact where the blocked
    /// factorisation's residual sum of squares cancels (see [`LinearMixedModel::fit`]).
    pub(crate) one_way: Option<GroupStats>,
    /// The grouping factors after the first, for a model with several (module docs of
    /// `factors`); `None` with one.
    pub(crate) several: Option<Box<factors::Several>>,
    /// Which blocks these are: new for each model built and each change of its blocks, so
    /// that a workspace's factorisation is never taken for another model's.
    pub(crate) revision: u64,
}

/// The one-way statistics of `stats`' response in the groups `groups` (the modelled ones)
/// when `structure` is `y ~ 1 | g` (see [`LinearMixedModel::one_way_statistics`]), `None`
/// otherwise.
///
/// # Errors
/// `TooLarge` when they do not fit in memory.
pub(crate) fn one_way_statistics(stats: &CrossProducts, structure: &Structure, groups: &[usize]) -> Result<Option<GroupStats>> {
    if structure.fixed != [Term::Intercept] || structure.random != [Term::Intercept] {
        return Ok(None);
    }
    GroupStats::of_variable(stats, structure.response, groups).map(Some)
}

/// A revision no model has had (see [`LinearMixedModel::revision`]).
pub(crate) fn next_revision() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Per-evaluation storage: each group's L_j, T_j = S_jΛ and the reciprocals of L_j's diagonal,
/// L_F, and the small buffers one group's computation needs (allocated once, so the loops over
/// groups allocate nothing). R_j = L_j⁻¹ΛᵀB_j is not kept: what the gradient and the modes need
/// of it, R_j w, is L_j⁻¹Λᵀ(B_j w), cheaper to recompute than to read back.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub(crate) l: Vec<f64>,
    pub(crate) r: Vec<f64>,
    pub(crate) ts: Vec<f64>,
    pub(crate) inverse_diagonal: Vec<f64>,
    pub(crate) lf: Vec<f64>,
    pub(crate) lambda: Vec<f64>,
    pub(crate) a_inverse: Vec<f64>,
    pub(crate) gradient: Vec<f64>,
    pub(crate) u: Vec<f64>,
    pub(crate) v: Vec<f64>,
    pub(crate) w: Vec<f64>,
    pub(crate) x_inverse: Vec<f64>,
    pub(crate) k: Vec<f64>,
    pub(crate) h: Vec<f64>,
    pub(crate) hk: Vec<f64>,
    pub(crate) g_hat: Vec<f64>,
    pub(crate) several: Option<factors::SeveralWorkspace>,
    /// The model revision and θ of the factorisation the buffers hold, and what it gave
    /// (None after a failure).
    pub(crate) factored: Option<(u64, Vec<f64>, Factorization)>,
}

/// What one factorisation gives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Factorization {
    pub(crate) logdet_z: f64,
    pub(crate) logdet_x: f64,
    pub(crate) pwrss: f64,
}

/// A fit of the model, in the data's units.
#[derive(Debug, Clone, PartialEq)]
pub struct LmmFit {
    /// ML or REML.
    pub criterion: Criterion,
    /// lme4's θ (the lower triangle of each block of Λ by columns).
    pub theta: Vec<f64>,
    /// θ in the model's internal units (a warm start for refits).
    pub internal_theta: Vec<f64>,
    /// β̂ of the kept fixed-effect columns.
    pub beta: Vec<f64>,
    /// The covariance of β̂, σ̂² (XᵀV⁻¹X)⁻¹ with V = I + ZΛΛᵀZᵀ, p × p row-major (lme4's vcov).
    pub beta_covariance: Vec<f64>,
    /// σ̂.
    pub sigma: f64,
    /// Σ̂ = σ̂² ΛΛᵀ, q × q row-major.
    pub re_covariance: Vec<f64>,
    /// −2ℓ (ML) or the REML criterion at the estimate.
    pub deviance: f64,
    /// Newton iterations.
    pub iterations: usize,
    /// Evaluations of the deviance (with or without its gradient).
    pub evaluations: usize,
    /// Max-norm of the gradient in the internal θ, projected on the bounds.
    pub projected_gradient_norm: f64,
    /// True when the projected gradient met its tolerance.
    pub converged: bool,
}

/// Conditional modes of the random effects and their conditional covariances, in the data's
/// units, for each modelled group (group-major: q values, and q × q matrices).
#[derive(Debug, Clone, PartialEq)]
pub struct RandomEffects {
    /// b̂_j, m × q.
    pub modes: Vec<f64>,
    /// Var(b_j | y) = σ̂² Λ A_j⁻¹ Λᵀ at the estimates, m × q × q (lme4's `condVar`).
    pub conditional_covariances: Vec<f64>,
}

impl LinearMixedModel {
    /// The model of `structure` for the statistics `stats`; groups without rows are left out
    /// (see [`LinearMixedModel::group_index`]), and fixed-effect columns that are linear
    /// combinations of earlier ones are dropped (see [`LinearMixedModel::kept_fixed`]).
    ///
    /// # Errors
    /// `InvalidArgument` for a structure that does not fit the statistics or statistics in the
    /// pooled layout ([`CrossProducts::pooled`]); `TooFewGroups` with fewer than 2 groups; `NoReplication` when no group has two rows;
    /// `TooManyRandomEffects` when N ≤ b m for a block of b columns (lme4's check, by term);
    /// `TooLarge` when the blocks do not fit
    /// in memory.
    ///
    /// # Example
    /// ```
    /// use hnm_core::{Checkpoint, Column, Criterion, CrossProducts, LinearMixedModel, Never, Structure, Term};
    /// let y = [1.0, 2.5, 2.0, 4.0, 3.5, 6.0, 5.0, 6.5, 8.0];
    /// let x = [0.0, 1.0, 2.0, 0.0, 1.0, 2.0, 0.0, 1.0, 2.0];
    /// let g = [1, 1, 1, 2, 2, 2, 3, 3, 3];
    /// let pass = CrossProducts::from_columns(&[Column::Double(&y), Column::Double(&x)], g.into_iter(), 3,
    ///     &mut Checkpoint::new(&Never)).unwrap();
    /// let structure = Structure { response: 0, fixed: vec![Term::Intercept, Term::Variable(1)],
    ///     random: vec![Term::Intercept], blocks: vec![1] };
    /// let model = LinearMixedModel::new(&pass.stats, structure).unwrap();
    /// let fit = model.fit(Criterion::Ml, None, &mut Checkpoint::new(&Never)).unwrap();
    /// assert!(fit.converged && fit.beta.len() == 2);
    /// ```
    pub fn new(stats: &CrossProducts, structure: Structure) -> Result<Self> {
        check_structure(&structure, stats.variables())?;
        if stats.group_variables().is_some() {
            // The one-way model and the bootstrap read every group's co-moments.
            return Err(HnmError::InvalidArgument { argument: "stats", reason: "must keep every co-moment per group with one grouping factor" });
        }
        let (stats, group_index) = stats.nonempty()?;
        // One factor's blocks are one pass over its groups, no longer than the data pass over
        // the rows before it: `new` takes no checkpoint.
        let never = &mut Checkpoint::new(&Never);
        let blocks = |random: &[Affine], fixed_and_response: &[Affine]| Ok(level_blocks(&stats, &[(random, None)], fixed_and_response, never)?.remove(0));
        let mut model = Self::from_levels(&ColumnSummary::of(&stats), structure, None, blocks)?;
        model.group_index = group_index;
        Ok(model)
    }

    /// The model of the non-empty groups `columns.stats` (with their summaries `columns`, which
    /// a model with several factors reads again), whose levels are the groups themselves or,
    /// with `levels` = (the level of each group, the number of levels), the first factor's
    /// levels of a model with several (the groups then are cells); `group_index` is left empty.
    /// Its blocks S_j, B_j are `blocks(random columns, [X y]'s columns)` ([`level_blocks`]
    /// over the factor, or with the later factors of a model with several in the same pass).
    fn from_levels(
        columns: &ColumnSummary<'_>, structure: Structure, levels: Option<(&[usize], usize)>,
        blocks: impl FnOnce(&[Affine], &[Affine]) -> Result<statistics::LevelBlocks>,
    ) -> Result<Self> {
        let stats = columns.stats;
        let m = levels.map_or(stats.groups(), |(_, m)| m);
        if m < 2 {
            return Err(HnmError::TooFewGroups { found: m });
        }
        let n_obs = stats.n_obs();
        if n_obs <= m as f64 {
            return Err(HnmError::NoReplication);
        }
        // lme4's check, term by term (a block of Λ is one of its terms): `(x || g)` with
        // m < N ≤ 2m is fitted as lme4 fits it.
        let q = structure.random.len();
        let widest_term = structure.blocks.iter().copied().max().unwrap_or(0);
        if n_obs <= (widest_term * m) as f64 {
            return Err(HnmError::TooManyRandomEffects { observations: n_obs, random_effects: (widest_term * m) as f64 });
        }
        range::check_range(columns, &structure)?;
        let fixed_centred = structure.fixed.contains(&Term::Intercept);
        let affine = |term: Term, centred: bool| columns.affine(term, centred);
        let response = affine(Term::Variable(structure.response), fixed_centred);
        let mut all_columns: Vec<Affine> = structure.fixed.iter().map(|&t| affine(t, fixed_centred)).collect();
        all_columns.push(response);
        // [X y]ᵀ[X y] over every column of X, from which the kept columns' F is taken.
        let all_xy = symmetric_cross_products(stats, &all_columns)?;
        let (width, all_p) = (all_columns.len(), all_columns.len() - 1);
        let kept = full_rank_columns(&principal_submatrix(&all_xy, width, &(0..all_p).collect::<Vec<_>>()), all_p);
        let fixed: Vec<Affine> = kept.iter().map(|&f| all_columns[f]).collect();
        let random = factors::random_columns(columns, &structure.random, &structure.blocks);
        let p = fixed.len();
        let mut fixed_and_response = fixed.clone();
        fixed_and_response.push(response);
        let selected: Vec<usize> = kept.iter().copied().chain(std::iter::once(all_p)).collect();
        let xy = principal_submatrix(&all_xy, width, &selected);
        let (zz, zxy) = blocks(&random, &fixed_and_response)?;
        let (theta_positions, lower) = theta_layout(&structure.blocks);
        let one_way = match levels {
            None => one_way_statistics(stats, &structure, &collected(0..m, "the indices of the groups")?)?,
            Some(_) => None,
        };
        let n = match levels {
            None => copied(stats.n(), "the group sizes")?,
            Some((of_group, _)) => {
                let mut n = filled(&[m], 0.0, "the group sizes")?;
                for (&j, &size) in of_group.iter().zip(stats.n()) {
                    n[j] += size;
                }
                n
            }
        };
        Ok(LinearMixedModel {
            to_user_fixed: to_user_map(&fixed, &[fixed.len()]),
            to_user_random: to_user_map(&random, &structure.blocks),
            structure,
            kept,
            group_index: Vec::new(),
            n,
            n_obs,
            q,
            p,
            zz,
            zxy,
            xy,
            response,
            fixed,
            random,
            theta_positions,
            lower,
            one_way,
            several: None,
            revision: next_revision(),
        })
    }

    /// A copy, its per-group blocks allocated fallibly (`clone` aborts when memory runs out).
    ///
    /// # Errors
    /// `TooLarge` when it does not fit in memory.
    pub fn try_clone(&self) -> Result<Self> {
        const BLOCKS: &str = "a copy of the model's blocks";
        Ok(LinearMixedModel {
            structure: self.structure.clone(),
            kept: self.kept.clone(),
            group_index: copied(&self.group_index, BLOCKS)?,
            n: copied(&self.n, BLOCKS)?,
            n_obs: self.n_obs,
            q: self.q,
            p: self.p,
            zz: copied(&self.zz, BLOCKS)?,
            zxy: copied(&self.zxy, BLOCKS)?,
            xy: self.xy.clone(),
            response: self.response,
            fixed: self.fixed.clone(),
            random: self.random.clone(),
            to_user_fixed: self.to_user_fixed.clone(),
            to_user_random: self.to_user_random.clone(),
            theta_positions: self.theta_positions.clone(),
            lower: self.lower.clone(),
            one_way: self.one_way.as_ref().map(GroupStats::try_clone).transpose()?,
            several: self.several.as_ref().map(|s| s.try_clone().map(Box::new)).transpose()?,
            revision: self.revision,
        })
    }

    /// The response's one-way statistics (n_j, ȳ_j, SSW_j) of the modelled groups when the
    /// model is `y ~ 1 | g`, which its closed forms read; `None` for any other model.
    pub fn one_way_statistics(&self) -> Option<&GroupStats> {
        self.one_way.as_ref()
    }

    /// The structure the model was built with.
    pub fn structure(&self) -> &Structure {
        &self.structure
    }

    /// Indices (into `structure.fixed`) of the fixed-effect columns the model keeps.
    pub fn kept_fixed(&self) -> &[usize] {
        &self.kept
    }

    /// For each modelled group, its index among the statistics' groups (empty ones are left out).
    pub fn group_index(&self) -> &[usize] {
        &self.group_index
    }

    /// Number of observations N.
    pub fn n_obs(&self) -> f64 {
        self.n_obs
    }

    /// Number of θ parameters.
    pub fn n_theta(&self) -> usize {
        self.theta_positions.len() + self.several.as_ref().map_or(0, |s| s.others.iter().map(|o| o.theta_positions.len()).sum())
    }

    /// `Unsupported` naming `what` for a model with several grouping factors, which `what`
    /// does not handle yet.
    ///
    /// # Errors
    /// As said.
    pub(crate) fn require_one_factor(&self, what: &'static str) -> Result<()> {
        match self.several {
            None => Ok(()),
            Some(_) => Err(HnmError::Unsupported(what)),
        }
    }

    /// The number of grouping factors.
    pub fn n_factors(&self) -> usize {
        1 + self.several.as_ref().map_or(0, |s| s.others.len())
    }

    /// For each grouping factor after the first, the indices of its modelled levels among
    /// its levels (see [`LinearMixedModel::group_index`] for the first).
    pub fn other_level_index(&self) -> Vec<&[usize]> {
        self.several.as_ref().map_or_else(Vec::new, |s| s.others.iter().map(|o| o.level_index.as_slice()).collect())
    }

    /// lme4's lower bounds of θ: 0 for the diagonal of Λ, −∞ elsewhere.
    pub fn lower(&self) -> &[f64] {
        &self.lower
    }

    /// A workspace for [`LinearMixedModel::deviance`].
    ///
    /// # Errors
    /// `TooLarge` when it does not fit in memory.
    pub fn workspace(&self) -> Result<Workspace> {
        let (m, q, p) = (self.n.len(), self.q, self.p);
        let zeros = |dims: &[usize]| filled(dims, 0.0, "the workspace of the likelihood");
        Ok(Workspace {
            l: zeros(&[m, q, q])?,
            r: zeros(&[q, p + 1])?,
            ts: zeros(&[m, q, q])?,
            inverse_diagonal: zeros(&[m, q])?,
            lf: zeros(&[p + 1, p + 1])?,
            lambda: zeros(&[q, q])?,
            a_inverse: zeros(&[q, q])?,
            gradient: zeros(&[q, q])?,
            u: zeros(&[q])?,
            v: zeros(&[q])?,
            w: zeros(&[p + 1])?,
            x_inverse: zeros(&[p, p])?,
            k: zeros(&[q, q])?,
            h: zeros(&[q, q])?,
            hk: zeros(&[q, q])?,
            g_hat: zeros(&[q, p])?,
            several: self.several.as_ref().map(|s| s.workspace(q, m, p + 1)).transpose()?,
            factored: None,
        })
    }
}
