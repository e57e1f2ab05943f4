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

use std::cell::RefCell;

use crate::data::blocks::CrossProducts;
use crate::data::unit::Unit;
use crate::error::{HnmError, Result};
use crate::model::one_way::profiled_deviance::Criterion;
use crate::numerics::dense::{cholesky_in_place, congruence, identity, inverse_from_cholesky, multiply, solve_lower, solve_lower_transposed};
use crate::numerics::interrupt::Checkpoint;
use crate::numerics::memory::{copied, filled, with_capacity};
use crate::numerics::optim::{minimize_bounded, Objective};

mod profile;
mod satterthwaite;
pub use profile::{profile_grids, profile_intervals, LmmParameter, LmmProfile, LmmProfilePoint};
pub use satterthwaite::VarianceDerivatives;

const LOG_2PI: f64 = 1.837_877_066_409_345_5;

/// Squared relative norm below which a fixed-effect column counts as a linear combination of
/// the columns before it (lme4's rank check drops columns whose QR residual norm is below
/// 1e-7 of their norm: 1e-14 on the squared scale, here with room for rounding).
const RANK_TOLERANCE: f64 = 1e-13;

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

/// A design column as the model uses it: ((v − p) − shift)/scale, or 1.
#[derive(Debug, Clone, Copy)]
struct Affine {
    term: Term,
    shift: f64,
    scale: f64,
    /// The shift in the data's units, p + shift (0 when the column is not centred).
    raw_shift: f64,
}

/// An [`Affine`] map hoisted out of a loop over groups: the column's variable (None for the
/// intercept), shift and 1/scale (a power of two, so that the products equal the quotients).
#[derive(Debug, Clone, Copy)]
struct ColumnMap {
    variable: Option<usize>,
    shift: f64,
    inverse_scale: f64,
}

impl From<&Affine> for ColumnMap {
    fn from(a: &Affine) -> Self {
        let variable = match a.term {
            Term::Intercept => None,
            Term::Variable(v) => Some(v),
        };
        ColumnMap { variable, shift: a.shift, inverse_scale: 1.0 / a.scale }
    }
}

fn column_maps<'a>(columns: impl IntoIterator<Item = &'a Affine>) -> Vec<ColumnMap> {
    columns.into_iter().map(ColumnMap::from).collect()
}

/// One group's statistics as the design columns read them.
struct GroupMoments<'a> {
    n: f64,
    means: &'a [f64],
    comoments: &'a [f64],
}

impl<'a> GroupMoments<'a> {
    fn of(stats: &'a CrossProducts, j: usize) -> Self {
        let k = stats.variables();
        let triangle = k * (k + 1) / 2;
        GroupMoments { n: stats.n()[j], means: stats.mean(j), comoments: &stats.comoments()[j * triangle..(j + 1) * triangle] }
    }

    /// The column's group mean m̃ = (v̄ − shift)/scale, or 1.
    fn mean(&self, c: &ColumnMap) -> f64 {
        c.variable.map_or(1.0, |v| (self.means[v] - c.shift) * c.inverse_scale)
    }

    /// Σ_i ũ ṽ = W̃_uv + n m̃_u m̃_v over the group's rows, given the columns' means.
    fn product(&self, u: &ColumnMap, mean_u: f64, v: &ColumnMap, mean_v: f64) -> f64 {
        let within = match (u.variable, v.variable) {
            (Some(a), Some(b)) => {
                let index = if a >= b { crate::data::blocks::packed(a, b) } else { crate::data::blocks::packed(b, a) };
                self.comoments[index] * u.inverse_scale * v.inverse_scale
            }
            _ => 0.0,
        };
        within + self.n * mean_u * mean_v
    }
}

/// The model: the groups' blocks S_j, B_j and F in internal units, and the maps back.
#[derive(Debug, Clone)]
pub struct LinearMixedModel {
    structure: Structure,
    kept: Vec<usize>,
    group_index: Vec<usize>,
    n: Vec<f64>,
    n_obs: f64,
    q: usize,
    p: usize,
    zz: Vec<f64>,
    zxy: Vec<f64>,
    xy: Vec<f64>,
    response: Affine,
    fixed: Vec<Affine>,
    random: Vec<Affine>,
    to_user_fixed: Vec<f64>,
    to_user_random: Vec<f64>,
    theta_positions: Vec<(usize, usize)>,
    lower: Vec<f64>,
    /// Which blocks these are: new for each model built and each change of its blocks, so
    /// that a workspace's factorisation is never taken for another model's.
    revision: u64,
}

/// A revision no model has had (see [`LinearMixedModel::revision`]).
fn next_revision() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Per-evaluation storage: each group's L_j, T_j = S_jΛ and the reciprocals of L_j's diagonal,
/// L_F, and the small buffers one group's computation needs (allocated once, so the loops over
/// groups allocate nothing). R_j = L_j⁻¹ΛᵀB_j is not kept: what the gradient and the modes need
/// of it, R_j w, is L_j⁻¹Λᵀ(B_j w), cheaper to recompute than to read back.
#[derive(Debug, Clone)]
pub struct Workspace {
    l: Vec<f64>,
    r: Vec<f64>,
    ts: Vec<f64>,
    inverse_diagonal: Vec<f64>,
    lf: Vec<f64>,
    lambda: Vec<f64>,
    t: Vec<f64>,
    a_inverse: Vec<f64>,
    gradient: Vec<f64>,
    u: Vec<f64>,
    v: Vec<f64>,
    w: Vec<f64>,
    x_inverse: Vec<f64>,
    k: Vec<f64>,
    h: Vec<f64>,
    hk: Vec<f64>,
    g_hat: Vec<f64>,
    /// The model revision and θ of the factorisation the buffers hold, and what it gave
    /// (None after a failure).
    factored: Option<(u64, Vec<f64>, Factorization)>,
}

/// The sums over the groups of [`LinearMixedModel::moment_sums`].
struct MomentSums {
    explained: f64,
    used: usize,
    second: Vec<f64>,
    sampling: Vec<f64>,
}

/// What one factorisation gives.
#[derive(Debug, Clone, Copy)]
struct Factorization {
    logdet_z: f64,
    logdet_x: f64,
    pwrss: f64,
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
    /// `InvalidArgument` for a structure that does not fit the statistics; `TooFewGroups`
    /// with fewer than 2 groups; `NoReplication` when no group has two rows;
    /// `TooManyRandomEffects` when N ≤ q m (lme4's check); `TooLarge` when the blocks do not fit
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
        let (stats, group_index) = stats.nonempty()?;
        let m = stats.groups();
        if m < 2 {
            return Err(HnmError::TooFewGroups { found: m });
        }
        let n_obs = stats.n_obs();
        if n_obs <= m as f64 {
            return Err(HnmError::NoReplication);
        }
        let q = structure.random.len();
        if n_obs <= (q * m) as f64 {
            return Err(HnmError::TooManyRandomEffects { observations: n_obs, random_effects: (q * m) as f64 });
        }
        let columns = ColumnSummary::of(&stats);
        let fixed_centred = structure.fixed.contains(&Term::Intercept);
        let affine = |term: Term, centred: bool| columns.affine(term, centred);
        let response = affine(Term::Variable(structure.response), fixed_centred);
        let mut all_columns: Vec<Affine> = structure.fixed.iter().map(|&t| affine(t, fixed_centred)).collect();
        all_columns.push(response);
        // [X y]ᵀ[X y] over every column of X, from which the kept columns' F is taken.
        let all_xy = symmetric_cross_products(&stats, &all_columns);
        let (width, all_p) = (all_columns.len(), all_columns.len() - 1);
        let kept = full_rank_columns(&principal_submatrix(&all_xy, width, &(0..all_p).collect::<Vec<_>>()), all_p);
        let fixed: Vec<Affine> = kept.iter().map(|&f| all_columns[f]).collect();
        let mut random = Vec::with_capacity(q);
        let mut start = 0;
        for &size in &structure.blocks {
            let block = &structure.random[start..start + size];
            let centred = block.contains(&Term::Intercept);
            random.extend(block.iter().map(|&t| affine(t, centred)));
            start += size;
        }
        let p = fixed.len();
        let mut fixed_and_response = fixed.clone();
        fixed_and_response.push(response);
        let selected: Vec<usize> = kept.iter().copied().chain(std::iter::once(all_p)).collect();
        let xy = principal_submatrix(&all_xy, width, &selected);
        let (zz, zxy) = group_blocks(&stats, &random, &fixed_and_response)?;
        let (theta_positions, lower) = theta_layout(&structure.blocks);
        Ok(LinearMixedModel {
            to_user_fixed: to_user_map(&fixed, &[fixed.len()]),
            to_user_random: to_user_map(&random, &structure.blocks),
            structure,
            kept,
            group_index,
            n: copied(stats.n(), "the group sizes")?,
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
            revision: self.revision,
        })
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
        self.theta_positions.len()
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
            t: zeros(&[q, q])?,
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
            factored: None,
        })
    }

    /// The profiled deviance d(θ) at the internal θ, in internal units (see the module docs).
    ///
    /// # Errors
    /// `InvalidArgument` when θ has the wrong length or is not finite; `PerfectFit` when the
    /// penalised residual sum of squares vanishes.
    pub fn deviance(&self, criterion: Criterion, theta: &[f64], ws: &mut Workspace) -> Result<f64> {
        let factor = self.factorize(theta, ws)?;
        Ok(self.criterion_value(criterion, &factor))
    }

    /// The criterion (ML deviance or REML criterion) at the internal θ in the data's units,
    /// as lme4 reports them: the REML criterion of an ML fit is lme4's `REMLcrit()`, say.
    ///
    /// # Errors
    /// As [`LinearMixedModel::deviance`].
    pub fn criterion_in_data_units(&self, criterion: Criterion, theta: &[f64]) -> Result<f64> {
        let mut ws = self.workspace()?;
        Ok(self.deviance(criterion, theta, &mut ws)? + self.unit_correction(criterion))
    }

    /// d(θ) and its gradient in the internal θ (see the module docs).
    ///
    /// # Errors
    /// As [`LinearMixedModel::deviance`].
    pub fn deviance_and_gradient(&self, criterion: Criterion, theta: &[f64], ws: &mut Workspace) -> Result<(f64, Vec<f64>)> {
        let factor = self.factorize(theta, ws)?;
        let value = self.criterion_value(criterion, &factor);
        let gradient = self.gradient(criterion, self.profiled_scale(criterion, &factor), ws);
        Ok((value, gradient))
    }

    fn criterion_value(&self, criterion: Criterion, f: &Factorization) -> f64 {
        match criterion {
            Criterion::Ml => f.logdet_z + self.n_obs * (1.0 + LOG_2PI + (f.pwrss / self.n_obs).ln()),
            Criterion::Reml => {
                let k = self.n_obs - self.p as f64;
                f.logdet_z + f.logdet_x + k * (1.0 + LOG_2PI + (f.pwrss / k).ln())
            }
        }
    }

    fn lambda(&self, theta: &[f64]) -> Result<Vec<f64>> {
        let mut lambda = vec![0.0; self.q * self.q];
        self.fill_lambda(theta, &mut lambda)?;
        Ok(lambda)
    }

    /// Λ (q × q, row-major) from θ into `lambda`.
    fn fill_lambda(&self, theta: &[f64], lambda: &mut [f64]) -> Result<()> {
        if theta.len() != self.theta_positions.len() {
            return Err(HnmError::ParameterLength { argument: "theta", expected: self.theta_positions.len(), found: theta.len() });
        }
        if let Some(index) = theta.iter().position(|t| !t.is_finite()) {
            return Err(HnmError::NotFinite { argument: "theta", index });
        }
        lambda.fill(0.0);
        for (&(r, c), &t) in self.theta_positions.iter().zip(theta) {
            lambda[r * self.q + c] = t;
        }
        Ok(())
    }

    /// The blocked Cholesky factorisation at θ (module docs), leaving L_j, T_j and L_F in `ws`.
    fn factorize(&self, theta: &[f64], ws: &mut Workspace) -> Result<Factorization> {
        ws.factored = None;
        self.fill_lambda(theta, &mut ws.lambda)?;
        let half_logdet_z = match self.q {
            // Scalar kernels for the common q = 1, 2, a literal q = 3 (so that the inlined loops
            // over q unroll) and the general code beyond.
            1 => self.diagonal_blocks_one(ws),
            2 => self.diagonal_blocks_two(ws)?,
            3 => self.diagonal_blocks_q(3, ws)?,
            q => self.diagonal_blocks_q(q, ws)?,
        };
        // A literal p + 1 for the common widths, so that the loops over [X y] unroll.
        with_literal!(self.p + 1, p1 in [2, 3, 4, 5, 6, 7, 8] => self.off_diagonal_blocks(p1, ws));
        let factor = self.finish_factorization(half_logdet_z, theta, ws)?;
        ws.factored = Some((self.revision, theta.to_vec(), factor));
        Ok(factor)
    }

    /// The factorisation at θ that `ws` holds when the last one taken in it was of this
    /// model's blocks at θ, as after a search or a gradient evaluation there; else taken anew.
    fn factorization_at(&self, theta: &[f64], ws: &mut Workspace) -> Result<Factorization> {
        match &ws.factored {
            Some((revision, at, factor)) if *revision == self.revision && at == theta => Ok(*factor),
            _ => self.factorize(theta, ws),
        }
    }

    /// L_F's matrix F − Σ_j R_jᵀR_j with the off-diagonal blocks R_j = L_j⁻¹ΛᵀB_j (its lower
    /// triangle, in `ws.lf`), given the L_j. A loop of its own, after the diagonal blocks': the square
    /// roots and divisions of one group's L_j form a chain of latencies that the processor can
    /// overlap across groups only when each group's iteration is short.
    #[inline(always)]
    fn off_diagonal_blocks(&self, p1: usize, ws: &mut Workspace) {
        ws.lf.copy_from_slice(&self.xy);
        let Workspace { l: ls, r, inverse_diagonal, lambda, lf, .. } = ws;
        match self.q {
            1 => {
                let lambda = lambda[0];
                for (b, &inverse) in self.zxy.chunks_exact(p1).zip(inverse_diagonal.iter()) {
                    let scale = lambda * inverse;
                    for (rc, &bc) in r.iter_mut().zip(b) {
                        *rc = scale * bc;
                    }
                    subtract_outer_product(lf, r);
                }
            }
            2 => {
                let (l00, l10, l11) = (lambda[0], lambda[2], lambda[3]);
                for ((b, l), inverse) in self.zxy.chunks_exact(2 * p1).zip(ls.chunks_exact(4)).zip(inverse_diagonal.chunks_exact(2)) {
                    let (c10, i00, i11) = (l[2], inverse[0], inverse[1]);
                    let (b0, b1) = b.split_at(p1);
                    let (r0, r1) = r.split_at_mut(p1);
                    for c in 0..p1 {
                        let z0 = (l00 * b0[c] + l10 * b1[c]) * i00;
                        r0[c] = z0;
                        r1[c] = (l11 * b1[c] - c10 * z0) * i11;
                    }
                    for a in 0..p1 {
                        let (x0, x1) = (r0[a], r1[a]);
                        for ((f, &y0), &y1) in lf[a * p1..a * p1 + a + 1].iter_mut().zip(&r0[..=a]).zip(&r1[..=a]) {
                            *f -= x0 * y0 + x1 * y1;
                        }
                    }
                }
            }
            q => {
                for ((b, l), inverse) in self.zxy.chunks_exact(q * p1).zip(ls.chunks_exact(q * q)).zip(inverse_diagonal.chunks_exact(q)) {
                    lambda_transposed_times(lambda, b, q, p1, r);
                    solve_lower_scaled(l, inverse, q, r, p1);
                    for row in r.chunks_exact(p1) {
                        subtract_outer_product(lf, row);
                    }
                }
            }
        }
    }

    /// The diagonal blocks L_j (the Cholesky factors of A_j = ΛᵀS_jΛ + I), T_j = S_jΛ and the
    /// reciprocals of L_j's diagonal into `ws`, for q = 1 in scalar variables (a random
    /// intercept, or one random slope); Σ_j log|L_j|.
    fn diagonal_blocks_one(&self, ws: &mut Workspace) -> f64 {
        let lambda = ws.lambda[0];
        let (mut logdet_z, mut product) = (0.0, 1.0);
        for ((&s, l), (t, inverse)) in self.zz.iter().zip(ws.l.iter_mut()).zip(ws.ts.iter_mut().zip(ws.inverse_diagonal.iter_mut())) {
            *t = s * lambda;
            *l = (lambda * *t + 1.0).sqrt();
            *inverse = 1.0 / *l;
            product *= *l;
            if product > 1e200 {
                logdet_z += product.ln();
                product = 1.0;
            }
        }
        logdet_z + product.ln()
    }

    /// [`LinearMixedModel::diagonal_blocks_one`] for q = 2.
    ///
    /// # Errors
    /// `Optimizer` when a block is not positive definite (only through rounding: A_j ⪰ I).
    fn diagonal_blocks_two(&self, ws: &mut Workspace) -> Result<f64> {
        let (l00, l10, l11) = (ws.lambda[0], ws.lambda[2], ws.lambda[3]);
        let (mut logdet_z, mut product) = (0.0, 1.0);
        for ((s, l), (t, inverse)) in
            self.zz.chunks_exact(4).zip(ws.l.chunks_exact_mut(4)).zip(ws.ts.chunks_exact_mut(4).zip(ws.inverse_diagonal.chunks_exact_mut(2)))
        {
            let (s00, s01, s11) = (s[0], s[1], s[3]);
            let (t00, t01, t10, t11) = (s00 * l00 + s01 * l10, s01 * l11, s01 * l00 + s11 * l10, s11 * l11);
            let a00 = l00 * t00 + l10 * t10 + 1.0;
            let a01 = l00 * t01 + l10 * t11;
            let a11 = l11 * t11 + 1.0;
            let c00 = a00.sqrt();
            let i00 = 1.0 / c00;
            let c10 = a01 * i00;
            let d = a11 - c10 * c10;
            if !(d > 0.0) {
                return Err(HnmError::Optimizer("a group's block lost positive definiteness".into()));
            }
            let c11 = d.sqrt();
            l.copy_from_slice(&[c00, 0.0, c10, c11]);
            t.copy_from_slice(&[t00, t01, t10, t11]);
            inverse.copy_from_slice(&[i00, 1.0 / c11]);
            product *= c00 * c11;
            if product > 1e200 {
                logdet_z += product.ln();
                product = 1.0;
            }
        }
        Ok(logdet_z + product.ln())
    }

    /// w = (−β, 1) and, for REML, R_X⁻¹ (`ws.x_inverse`): what every group's gradient term
    /// needs; true for REML.
    fn gradient_setup(&self, criterion: Criterion, beta: &[f64], ws: &mut Workspace) -> bool {
        let p = self.p;
        for (w, b) in ws.w.iter_mut().zip(beta) {
            *w = -b;
        }
        ws.w[p] = 1.0;
        let reml = criterion == Criterion::Reml;
        if reml {
            let rx = self.x_factor(ws);
            ws.x_inverse = inverse_lower(&rx, p);
        }
        reml
    }

    /// 2/σ̂² with σ̂² = r²/N (ML) or r²/(N − p) (REML): the scale of the gradient's quadratic
    /// term in the profiled deviance.
    fn profiled_scale(&self, criterion: Criterion, f: &Factorization) -> f64 {
        2.0 * self.divisor(criterion) / f.pwrss
    }

    /// N (ML) or N − p (REML), the divisor of σ̂².
    fn divisor(&self, criterion: Criterion) -> f64 {
        match criterion {
            Criterion::Ml => self.n_obs,
            Criterion::Reml => self.n_obs - self.p as f64,
        }
    }

    /// [`LinearMixedModel::gradient_q`] for q = 1 in scalar variables.
    #[inline(always)]
    fn gradient_one(&self, p1: usize, reml: bool, scale: f64, ws: &mut Workspace) -> Vec<f64> {
        let p = p1 - 1;
        let (lambda, w, x_inverse) = (ws.lambda[0], &ws.w[..p1], &ws.x_inverse);
        let mut gradient = 0.0;
        for (b, (&t, &inverse)) in self.zxy.chunks_exact(p1).zip(ws.ts.iter().zip(&ws.inverse_diagonal)) {
            let e = dot(b, w);
            let u = lambda * e * inverse * inverse;
            let v = e - t * u;
            let a_inverse = inverse * inverse;
            gradient += 2.0 * t * a_inverse - scale * v * u;
            if reml {
                let h: f64 = (0..p).map(|c| dot(&b[..=c], &x_inverse[c * p..c * p + c + 1]).powi(2)).sum();
                let k = lambda * a_inverse;
                gradient -= 2.0 * h * k * (1.0 - t * k);
            }
        }
        vec![gradient]
    }

    /// [`LinearMixedModel::gradient_q`] for q = 2 in scalar variables.
    #[inline(always)]
    fn gradient_two(&self, p1: usize, reml: bool, scale: f64, ws: &mut Workspace) -> Vec<f64> {
        let p = p1 - 1;
        let (l00, l10, l11) = (ws.lambda[0], ws.lambda[2], ws.lambda[3]);
        let Workspace { l: ls, ts, inverse_diagonal, w, x_inverse, g_hat, .. } = ws;
        let (mut g00, mut g10, mut g11) = (0.0, 0.0, 0.0);
        for ((b, l), (t, inverse)) in self.zxy.chunks_exact(2 * p1).zip(ls.chunks_exact(4)).zip(ts.chunks_exact(4).zip(inverse_diagonal.chunks_exact(2))) {
            let (c10, i00, i11) = (l[2], inverse[0], inverse[1]);
            let (t00, t01, t10, t11) = (t[0], t[1], t[2], t[3]);
            let (b0, b1) = b.split_at(p1);
            let (e0, e1) = (dot(b0, &w[..p1]), dot(b1, &w[..p1]));
            // R w = L⁻¹Λᵀ(B w).
            let rho0 = (l00 * e0 + l10 * e1) * i00;
            let rho1 = (l11 * e1 - c10 * rho0) * i11;
            let u1 = rho1 * i11;
            let u0 = (rho0 - c10 * u1) * i00;
            let v0 = e0 - (t00 * u0 + t01 * u1);
            let v1 = e1 - (t10 * u0 + t11 * u1);
            let m10 = -c10 * i00 * i11;
            let (ai00, ai01, ai11) = (i00 * i00 + m10 * m10, m10 * i11, i11 * i11);
            g00 += 2.0 * (t00 * ai00 + t01 * ai01) - scale * v0 * u0;
            g10 += 2.0 * (t10 * ai00 + t11 * ai01) - scale * v1 * u0;
            g11 += 2.0 * (t10 * ai01 + t11 * ai11) - scale * v1 * u1;
            if reml {
                // −2 (I − T Kᵀ) H K as in gradient_q, entry by entry.
                let (gh0, gh1) = g_hat.split_at_mut(p);
                for c in 0..p {
                    let row = &x_inverse[c * p..c * p + c + 1];
                    gh0[c] = dot(&b0[..=c], row);
                    gh1[c] = dot(&b1[..=c], row);
                }
                let (h00, h01, h11) = (dot(gh0, gh0), dot(gh0, gh1), dot(gh1, gh1));
                let (k00, k01) = (l00 * ai00, l00 * ai01);
                let (k10, k11) = (l10 * ai00 + l11 * ai01, l10 * ai01 + l11 * ai11);
                let (hk00, hk01) = (h00 * k00 + h01 * k10, h00 * k01 + h01 * k11);
                let (hk10, hk11) = (h01 * k00 + h11 * k10, h01 * k01 + h11 * k11);
                let (tk00, tk01) = (t00 * k00 + t01 * k01, t00 * k10 + t01 * k11);
                let (tk10, tk11) = (t10 * k00 + t11 * k01, t10 * k10 + t11 * k11);
                g00 -= 2.0 * (hk00 - (tk00 * hk00 + tk01 * hk10));
                g10 -= 2.0 * (hk10 - (tk10 * hk00 + tk11 * hk10));
                g11 -= 2.0 * (hk11 - (tk10 * hk01 + tk11 * hk11));
            }
        }
        let gradient = [g00, 0.0, g10, g11];
        self.theta_positions.iter().map(|&(r, c)| gradient[r * 2 + c]).collect()
    }

    /// [`LinearMixedModel::diagonal_blocks_one`] for any q.
    ///
    /// # Errors
    /// As [`LinearMixedModel::diagonal_blocks_two`].
    #[inline(always)]
    fn diagonal_blocks_q(&self, q: usize, ws: &mut Workspace) -> Result<f64> {
        let lambda = &ws.lambda;
        // log|L_j| from products of the diagonals (each ≥ 1, as A_j ⪰ I), one log per ~2^700.
        let (mut logdet_z, mut product) = (0.0, 1.0);
        for ((s, l), (t, inverse)) in
            self.zz.chunks_exact(q * q).zip(ws.l.chunks_exact_mut(q * q)).zip(ws.ts.chunks_exact_mut(q * q).zip(ws.inverse_diagonal.chunks_exact_mut(q)))
        {
            times_lambda(s, lambda, q, t);
            lambda_transposed_times(lambda, t, q, q, l);
            for i in 0..q {
                l[i * q + i] += 1.0;
            }
            if !cholesky_in_place(l, q) {
                return Err(HnmError::Optimizer("a group's block lost positive definiteness".into()));
            }
            for i in 0..q {
                product *= l[i * q + i];
                inverse[i] = 1.0 / l[i * q + i];
            }
            if product > 1e200 {
                logdet_z += product.ln();
                product = 1.0;
            }
        }
        Ok(logdet_z + product.ln())
    }

    /// The last step of the factorisation: L_F from F − Σ R_jᵀR_j (its lower triangle in
    /// `ws.lf`); `half_logdet_z` is Σ_j log|L_j|.
    fn finish_factorization(&self, half_logdet_z: f64, theta: &[f64], ws: &mut Workspace) -> Result<Factorization> {
        let p1 = self.p + 1;
        for a in 0..p1 {
            for c in a + 1..p1 {
                ws.lf[a * p1 + c] = ws.lf[c * p1 + a];
            }
        }
        let last = (p1 - 1) * p1 + (p1 - 1);
        let pwrss_before = ws.lf[last];
        if !cholesky_in_place(&mut ws.lf, p1) {
            // The X block first: its failure means X is singular given Z, the y pivot a perfect fit.
            return Err(if self.x_block_singular(theta) {
                HnmError::Optimizer("the fixed-effect design is singular given the random effects".into())
            } else {
                HnmError::PerfectFit
            });
        }
        let r = ws.lf[last];
        let pwrss = r * r;
        if !(pwrss > f64::EPSILON * pwrss_before.abs()) {
            return Err(HnmError::PerfectFit);
        }
        let logdet_x = (0..self.p).map(|i| 2.0 * ws.lf[i * p1 + i].ln()).sum();
        Ok(Factorization { logdet_z: 2.0 * half_logdet_z, logdet_x, pwrss })
    }

    /// True when the X block of F − Σ R_jᵀR_j is not positive definite at θ (only called
    /// after a failed factorisation, to say which block failed).
    fn x_block_singular(&self, theta: &[f64]) -> bool {
        let Ok(mut ws) = self.workspace() else { return true };
        let (p, p1, q) = (self.p, self.p + 1, self.q);
        let Ok(lambda) = self.lambda(theta) else { return true };
        let mut x_block = self.x_block_of(&self.xy);
        for (s, b) in self.zz.chunks_exact(q * q).zip(self.zxy.chunks_exact(q * p1)) {
            let (l, r) = (&mut ws.l[..q * q], &mut ws.r[..q * p1]);
            times_lambda(s, &lambda, q, &mut ws.t);
            lambda_transposed_times(&lambda, &ws.t, q, q, l);
            for i in 0..q {
                l[i * q + i] += 1.0;
            }
            if !cholesky_in_place(l, q) {
                return true;
            }
            lambda_transposed_times(&lambda, b, q, p1, r);
            solve_lower(l, q, r, p1);
            for a in 0..p {
                for c in 0..p {
                    x_block[a * p + c] -= (0..q).map(|k| r[k * p1 + a] * r[k * p1 + c]).sum::<f64>();
                }
            }
        }
        !cholesky_in_place(&mut x_block, p)
    }

    /// β̂ in internal units from L_F: R_X⁻ᵀ l_y.
    fn internal_beta(&self, ws: &Workspace) -> Vec<f64> {
        let (p, p1) = (self.p, self.p + 1);
        let rx = self.x_factor(ws);
        let mut beta: Vec<f64> = ws.lf[p * p1..p * p1 + p].to_vec();
        solve_lower_transposed(&rx, p, &mut beta, 1);
        beta
    }

    /// R_X, the leading p × p block of L_F.
    fn x_factor(&self, ws: &Workspace) -> Vec<f64> {
        self.x_block_of(&ws.lf)
    }

    /// The X block (leading p × p) of a (p + 1) × (p + 1) matrix over [X y].
    fn x_block_of(&self, m: &[f64]) -> Vec<f64> {
        principal_submatrix(m, self.p + 1, &(0..self.p).collect::<Vec<_>>())
    }

    /// Per group: the spherical conditional mode u_j = L_j⁻ᵀ R_j w = A_j⁻¹Λᵀ(B_j w) with
    /// w = (−β̂, 1).
    fn spherical_mode(&self, ws: &Workspace, j: usize, w: &[f64]) -> Vec<f64> {
        let (q, p1) = (self.q, self.p + 1);
        let l = &ws.l[j * q * q..(j + 1) * q * q];
        let b = &self.zxy[j * q * p1..(j + 1) * q * p1];
        let e: Vec<f64> = b.chunks_exact(p1).map(|row| dot(row, w)).collect();
        let mut u = vec![0.0; q];
        lambda_transposed_times(&ws.lambda, &e, q, 1, &mut u);
        solve_lower(l, q, &mut u, 1);
        solve_lower_transposed(l, q, &mut u, 1);
        u
    }

    /// The gradient in θ of log|A| + (log|C|, REML) + r²(θ)·scale/2 with β at β̂(θ): at
    /// scale = 2/σ̂² the gradient of the profiled deviance, at 2/σ² that of the deviance with σ
    /// held at σ (the envelope theorem in β and σ: module docs).
    fn gradient(&self, criterion: Criterion, scale: f64, ws: &mut Workspace) -> Vec<f64> {
        let beta = self.internal_beta(ws);
        self.gradient_at_beta(criterion, scale, &beta, ws)
    }

    /// [`LinearMixedModel::gradient`] with β held at `beta` (internal units) instead of β̂(θ):
    /// the envelope theorem then applies to the random effects alone, so this is the gradient
    /// of the criterion at that β (or at a β that minimises it under a constraint on β).
    fn gradient_at_beta(&self, criterion: Criterion, scale: f64, beta: &[f64], ws: &mut Workspace) -> Vec<f64> {
        let reml = self.gradient_setup(criterion, beta, ws);
        match self.q {
            1 => with_literal!(self.p + 1, p1 in [2, 3, 4, 5, 6, 7, 8] => self.gradient_one(p1, reml, scale, ws)),
            2 => with_literal!(self.p + 1, p1 in [2, 3, 4, 5, 6, 7, 8] => self.gradient_two(p1, reml, scale, ws)),
            3 => self.gradient_q(3, reml, scale, ws),
            q => self.gradient_q(q, reml, scale, ws),
        }
    }

    #[inline(always)]
    fn gradient_q(&self, q: usize, reml: bool, two_over_sigma2: f64, ws: &mut Workspace) -> Vec<f64> {
        let (p, p1) = (self.p, self.p + 1);
        let Workspace { l: ls, ts, inverse_diagonal, lambda, a_inverse, gradient, u, v, w, x_inverse, k, h, hk, g_hat, .. } = ws;
        gradient.fill(0.0);
        for (((b, l), t), inverse) in
            self.zxy.chunks_exact(q * p1).zip(ls.chunks_exact(q * q)).zip(ts.chunks_exact(q * q)).zip(inverse_diagonal.chunks_exact(q))
        {
            // A⁻¹ = L⁻ᵀL⁻¹, u = A⁻¹Λᵀ(B w) (the spherical mode) and v = B w − T u.
            inverse_from_factor(l, inverse, q, a_inverse);
            for i in 0..q {
                v[i] = dot(&b[i * p1..(i + 1) * p1], w);
            }
            lambda_transposed_times(lambda, v, q, 1, u);
            solve_lower_scaled(l, inverse, q, u, 1);
            solve_lower_transposed_scaled(l, inverse, q, u, 1);
            for i in 0..q {
                v[i] -= dot(&t[i * q..(i + 1) * q], u);
            }
            // ML: 2 T A⁻¹ − (2/σ̂²) v uᵀ.
            for row in 0..q {
                for col in 0..q {
                    let ta = dot_strided(&t[row * q..(row + 1) * q], a_inverse, col, q);
                    gradient[row * q + col] += 2.0 * ta - two_over_sigma2 * v[row] * u[col];
                }
            }
            if reml {
                // −2 (I − T Kᵀ) H K with K = Λ A⁻¹ and H = Ĝ Ĝᵀ, Ĝ = G R_X⁻ᵀ: the derivative of
                // log|XᵀV⁻¹X| = log|XᵀX − Σ GᵀΛA⁻¹ΛᵀG|.
                for i in 0..q {
                    for c in 0..p {
                        g_hat[i * p + c] = dot(&b[i * p1..i * p1 + c + 1], &x_inverse[c * p..c * p + c + 1]);
                    }
                }
                for i in 0..q {
                    for j in 0..q {
                        h[i * q + j] = dot(&g_hat[i * p..(i + 1) * p], &g_hat[j * p..(j + 1) * p]);
                        k[i * q + j] = dot_strided(&lambda[i * q..(i + 1) * q], a_inverse, j, q);
                    }
                }
                for i in 0..q {
                    for j in 0..q {
                        hk[i * q + j] = dot_strided(&h[i * q..(i + 1) * q], k, j, q);
                    }
                }
                // (I − T Kᵀ) (H K): row i is (HK)_i − Σ_a (T Kᵀ)_{ia} (HK)_a.
                for i in 0..q {
                    for j in 0..q {
                        let mut value = hk[i * q + j];
                        for a in 0..q {
                            let tk = dot(&t[i * q..(i + 1) * q], &k[a * q..(a + 1) * q]);
                            value -= tk * hk[a * q + j];
                        }
                        gradient[i * q + j] -= 2.0 * value;
                    }
                }
            }
        }
        self.theta_positions.iter().map(|&(r, c)| gradient[r * q + c]).collect()
    }

    /// Fits the model by ML or REML: minimises d(θ) over θ with diag(Λ) ≥ 0 by the bounded
    /// Newton method of [`crate::minimize_bounded`]. The profiled deviance can have more than
    /// one local minimum (a singular one beside an interior one, or two singular ones with
    /// opposite correlations), so a search that ends singular is repeated from the starts of
    /// `restarts` and the lowest minimum kept: among them Λ = I in internal units and lme4's
    /// start, Λ = I in the data's units, so that hnm never settles in a worse basin than lme4
    /// started at the same model. The first search starts at a moment estimate (or the
    /// caller's `start`, such as [`LmmFit::internal_theta`] of a related fit). A start where the deviance cannot be evaluated (lme4's start for a covariate far
    /// from 0 can imply variances of 1e18 at its mean) is skipped.
    ///
    /// # Errors
    /// The errors of [`LinearMixedModel::deviance`] when no start can be evaluated, `Optimizer`
    /// when the minimisation fails, `Interrupted` when `checkpoint` reports a user interrupt.
    pub fn fit(&self, criterion: Criterion, start: Option<&[f64]>, checkpoint: &mut Checkpoint<'_>) -> Result<LmmFit> {
        let identity: Vec<f64> = self.theta_positions.iter().map(|&(r, c)| if r == c { 1.0 } else { 0.0 }).collect();
        let first = start.filter(|s| s.len() == identity.len()).map(<[f64]>::to_vec).unwrap_or_else(|| self.moment_start());
        let problem = DevianceProblem { model: self, criterion, workspace: RefCell::new(self.workspace()?) };
        // A gradient of 1e-10 N changes the deviance by far less than its rounding (module docs of
        // crate::numerics::optim); the curvature is O(N), so θ is then exact to about 1e-10.
        let tolerance = 1e-10 * self.n_obs;
        let mut best: Option<crate::numerics::optim::Minimum> = None;
        let mut failure = None;
        let (mut iterations, mut evaluations) = (0, 0);
        let mut starts = vec![first];
        while let Some(start) = starts.pop() {
            match minimize_bounded(&problem, &start, &self.lower, tolerance, checkpoint) {
                Ok(found) => {
                    iterations += found.iterations;
                    evaluations += found.evaluations;
                    if best.is_none() && self.is_singular(&found.x) {
                        starts = self.restarts(&identity);
                    }
                    let better = best.as_ref().is_none_or(|b| (found.converged, -found.value) > (b.converged, -b.value));
                    if better {
                        best = Some(found);
                    }
                }
                Err(HnmError::Interrupted) => return Err(HnmError::Interrupted),
                Err(error) => {
                    if best.is_none() && failure.is_none() {
                        starts = self.restarts(&identity);
                    }
                    failure = Some(error);
                }
            }
        }
        let mut minimum = match (best, failure) {
            (Some(found), _) => found,
            (None, Some(error)) => return Err(error),
            (None, None) => unreachable!("a start was tried"),
        };
        (minimum.iterations, minimum.evaluations) = (iterations, evaluations);
        let mut ws = problem.workspace.into_inner();
        let factor = self.factorization_at(&minimum.x, &mut ws)?;
        let theta = minimum.x.clone();
        Ok(self.assemble(criterion, &theta, &factor, &ws, minimum))
    }

    /// The starts tried after a singular or failed first search: Λ = I, lme4's start, and
    /// for correlated blocks Λ = I with every entry below the diagonal +1 and then −1. A
    /// singular deviance can have one local minimum for each sign of a correlation (rank-one
    /// blocks with a correlation of +1 or −1, say), and a search stays on the side it starts.
    fn restarts(&self, identity: &[f64]) -> Vec<Vec<f64>> {
        let mut starts = vec![identity.to_vec(), self.lme4_start()];
        if self.theta_positions.iter().any(|&(r, c)| r != c) {
            for sign in [1.0, -1.0] {
                starts.push(self.theta_positions.iter().map(|&(r, c)| if r == c { 1.0 } else { sign }).collect());
            }
        }
        starts
    }

    /// True when a diagonal entry of Λ is 0: a singular fit, which may be a local minimum
    /// beside a lower interior one.
    fn is_singular(&self, theta: &[f64]) -> bool {
        theta.iter().zip(&self.lower).any(|(&t, &l)| l == 0.0 && t == 0.0)
    }

    /// A moment estimate of θ to start from (internal units): with OLS residuals e, each group
    /// whose S_j is non-singular gives b̂_j = S_j⁻¹ Z_jᵀe_j; σ̂² is the residual variance left
    /// by them, and Σ̂ = mean(b̂_j b̂_jᵀ − σ̂² S_j⁻¹) (Swamy's estimator), made positive definite
    /// and block diagonal; θ₀ is the Cholesky factor of Σ̂/σ̂². Λ = I when that fails.
    fn moment_start(&self) -> Vec<f64> {
        let identity = || self.theta_positions.iter().map(|&(r, c)| if r == c { 1.0 } else { 0.0 }).collect();
        let (q, p, p1) = (self.q, self.p, self.p + 1);
        let mut fx = self.x_block_of(&self.xy);
        if !cholesky_in_place(&mut fx, p) {
            return identity();
        }
        let mut beta: Vec<f64> = (0..p).map(|a| self.xy[a * p1 + p]).collect();
        solve_lower(&fx, p, &mut beta, 1);
        solve_lower_transposed(&fx, p, &mut beta, 1);
        let mut w: Vec<f64> = beta.iter().map(|b| -b).collect();
        w.push(1.0);
        let rss: f64 = (0..p1).map(|a| (0..p1).map(|c| w[a] * self.xy[a * p1 + c] * w[c]).sum::<f64>()).sum();
        let MomentSums { explained, used, second, sampling } = with_literal!(q, q in [1, 2, 3] => self.moment_sums(q, &w));
        let df = self.n_obs - (p + q * used) as f64;
        let sigma2 = (rss - explained) / df;
        if used <= q || !(df > 0.0 && sigma2 > 0.0) {
            return identity();
        }
        let mut sigma: Vec<f64> = (0..q * q).map(|i| (second[i] - sigma2 * sampling[i]) / (used as f64 * sigma2)).collect();
        let mut offset = 0;
        for &size in &self.structure.blocks {
            for r in 0..q {
                for c in offset..offset + size {
                    if !(offset..offset + size).contains(&r) {
                        sigma[r * q + c] = 0.0;
                        sigma[c * q + r] = 0.0;
                    }
                }
            }
            offset += size;
        }
        // Positive definite: eigenvalues floored at 1% of the largest (and of 1e-4 N⁻¹ overall).
        let (values, vectors) = crate::numerics::optim::symmetric_eigen(&sigma, q);
        let largest = values.iter().fold(0.0_f64, |m, v| m.max(*v));
        let floor = (1e-2 * largest).max(1e-4);
        let mut pd = vec![0.0; q * q];
        for (k, &value) in values.iter().enumerate() {
            let v = &vectors[k * q..(k + 1) * q];
            for i in 0..q * q {
                pd[i] += value.max(floor) * v[i / q] * v[i % q];
            }
        }
        let factor = semidefinite_cholesky(&pd, q, &self.structure.blocks);
        let theta: Vec<f64> = self.theta_positions.iter().map(|&(r, c)| factor[r * q + c]).collect();
        if theta.iter().all(|t| t.is_finite()) {
            theta
        } else {
            identity()
        }
    }

    /// The sums of [`LinearMixedModel::moment_start`] over the groups whose S_j is well
    /// conditioned, with c_j = B_j w the group's OLS residual cross-products: c_jᵀS_j⁻¹c_j, the
    /// b̂_j b̂_jᵀ with b̂_j = S_j⁻¹c_j, and the S_j⁻¹.
    #[inline(always)]
    fn moment_sums(&self, q: usize, w: &[f64]) -> MomentSums {
        let p1 = self.p + 1;
        let mut sums = MomentSums { explained: 0.0, used: 0, second: vec![0.0; q * q], sampling: vec![0.0; q * q] };
        // One set of buffers for all groups: no allocation per group.
        let (mut l, mut inverse, mut c, mut s_inverse) = (vec![0.0; q * q], vec![0.0; q], vec![0.0; q], vec![0.0; q * q]);
        for (s, b) in self.zz.chunks_exact(q * q).zip(self.zxy.chunks_exact(q * p1)) {
            l.copy_from_slice(s);
            let trace: f64 = (0..q).map(|i| s[i * q + i]).sum();
            if !cholesky_in_place(&mut l, q) || (0..q).any(|i| l[i * q + i].powi(2) <= 1e-8 * trace) {
                continue;
            }
            for (i, x) in inverse.iter_mut().enumerate() {
                *x = 1.0 / l[i * q + i];
            }
            inverse_from_factor(&l, &inverse, q, &mut s_inverse);
            for (k, ck) in c.iter_mut().enumerate() {
                *ck = dot(&b[k * p1..(k + 1) * p1], &w[..p1]);
            }
            for i in 0..q {
                let bhat_i = dot(&s_inverse[i * q..(i + 1) * q], &c);
                sums.explained += c[i] * bhat_i;
                for k in 0..q {
                    sums.second[i * q + k] += bhat_i * dot(&s_inverse[k * q..(k + 1) * q], &c);
                }
            }
            for (total, x) in sums.sampling.iter_mut().zip(&s_inverse) {
                *total += x;
            }
            sums.used += 1;
        }
        sums
    }

    /// The fit at the internal θ `internal_theta` without a search (a saved fit rebuilt): the
    /// estimates there, with the projected gradient norm recomputed and no iterations.
    ///
    /// # Errors
    /// The errors of [`LinearMixedModel::deviance_and_gradient`] at that θ.
    pub fn fit_at(&self, criterion: Criterion, internal_theta: &[f64]) -> Result<LmmFit> {
        let mut ws = self.workspace()?;
        let (_, gradient) = self.deviance_and_gradient(criterion, internal_theta, &mut ws)?;
        self.fit_at_gradient(criterion, internal_theta, gradient, &mut ws)
    }

    /// [`LinearMixedModel::fit_at`] given the criterion's gradient at θ (a search that stopped
    /// there has it) and the workspace it was computed in, whose factorisation is reused.
    pub(crate) fn fit_at_gradient(&self, criterion: Criterion, internal_theta: &[f64], gradient: Vec<f64>, ws: &mut Workspace) -> Result<LmmFit> {
        let factor = self.factorization_at(internal_theta, ws)?;
        let projected_gradient_norm =
            internal_theta.iter().zip(&gradient).zip(&self.lower).map(|((&t, &g), &l)| if t <= l { g.min(0.0).abs() } else { g.abs() }).fold(0.0, f64::max);
        let found = crate::numerics::optim::Minimum {
            x: internal_theta.to_vec(),
            value: self.criterion_value(criterion, &factor),
            gradient,
            iterations: 0,
            evaluations: 1,
            projected_gradient_norm,
            converged: true,
        };
        Ok(self.assemble(criterion, internal_theta, &factor, ws, found))
    }

    /// lme4's starting point, Λ = I in the data's units, as an internal θ: the Cholesky factor
    /// of K Kᵀ with K the map from the data's random effects to the internal ones (b̃ = K b,
    /// K[f][f] = t_f and K[i₀][f] = s_f for a column centred at s_f).
    fn lme4_start(&self) -> Vec<f64> {
        let q = self.q;
        let mut k = vec![0.0; q * q];
        let mut offset = 0;
        for &size in &self.structure.blocks {
            let block = offset..offset + size;
            let intercept = block.clone().find(|&i| self.random[i].term == Term::Intercept);
            for f in block {
                k[f * q + f] = self.random[f].scale;
                if let Some(i0) = intercept.filter(|&i0| i0 != f) {
                    k[i0 * q + f] = self.random[f].raw_shift;
                }
            }
            offset += size;
        }
        let kkt = congruence(&k, &identity(q), q);
        let factor = semidefinite_cholesky(&kkt, q, &self.structure.blocks);
        self.theta_positions.iter().map(|&(r, c)| factor[r * q + c]).collect()
    }

    fn assemble(&self, criterion: Criterion, theta: &[f64], f: &Factorization, ws: &Workspace, found: crate::numerics::optim::Minimum) -> LmmFit {
        let (q, p) = (self.q, self.p);
        let divisor = match criterion {
            Criterion::Ml => self.n_obs,
            Criterion::Reml => self.n_obs - p as f64,
        };
        let sigma2 = f.pwrss / divisor;
        let ty = self.response.scale;
        let beta = self.user_beta(&self.internal_beta(ws));
        let rx = self.x_factor(ws);
        let internal_cov: Vec<f64> = inverse_from_cholesky(&rx, p).iter().map(|v| v * sigma2 * ty * ty).collect();
        let beta_covariance = congruence(&self.to_user_fixed, &internal_cov, p);
        let lambda = self.lambda(theta).expect("θ was checked by the factorisation");
        let mut llt = vec![0.0; q * q];
        for r in 0..q {
            for c in 0..q {
                llt[r * q + c] = (0..q).map(|k| lambda[r * q + k] * lambda[c * q + k]).sum();
            }
        }
        let relative = congruence(&self.to_user_random, &llt, q);
        let re_covariance: Vec<f64> = relative.iter().map(|v| v * sigma2 * ty * ty).collect();
        let user_theta = self.user_theta(&lambda, &relative);
        let deviance = self.criterion_value(criterion, f) + self.unit_correction(criterion);
        LmmFit {
            criterion,
            theta: user_theta,
            internal_theta: theta.to_vec(),
            beta,
            beta_covariance,
            sigma: sigma2.sqrt() * ty,
            re_covariance,
            deviance,
            iterations: found.iterations,
            evaluations: found.evaluations,
            projected_gradient_norm: found.projected_gradient_norm,
            converged: found.converged,
        }
    }

    /// β in the data's units from β̃ in internal units: β = M_X (t_y β̃ + s_y e₀), the
    /// response's shift entering through the intercept.
    fn user_beta(&self, internal: &[f64]) -> Vec<f64> {
        let p = self.p;
        let mut beta_full: Vec<f64> = internal.iter().map(|b| self.response.scale * b).collect();
        if let Some(i0) = self.fixed.iter().position(|a| a.term == Term::Intercept) {
            beta_full[i0] += self.response.raw_shift;
        }
        let mut beta = vec![0.0; p];
        multiply(&self.to_user_fixed, &beta_full, p, p, 1, &mut beta);
        beta
    }

    /// The deviance in the data's units minus that in internal units: the density of t·y is
    /// t⁻ᴺ times that of y, and REML's log|XᵀV⁻¹X| gains 2 log t_f for each scaled column of X.
    fn unit_correction(&self, criterion: Criterion) -> f64 {
        let ln_ty = self.response.scale.ln();
        match criterion {
            Criterion::Ml => 2.0 * self.n_obs * ln_ty,
            Criterion::Reml => 2.0 * (self.n_obs - self.p as f64) * ln_ty + self.fixed.iter().map(|a| 2.0 * a.scale.ln()).sum::<f64>(),
        }
    }

    /// lme4's θ: the Cholesky factor of the relative covariance M_Z ΛΛᵀ M_Zᵀ, block by block.
    /// Where M_Z only rescales (no centred column) this is M_Z Λ exactly; otherwise a pivot
    /// that is zero up to rounding (a singular fit stays singular) is set to 0.
    fn user_theta(&self, lambda: &[f64], relative: &[f64]) -> Vec<f64> {
        let q = self.q;
        let diagonal_map = (0..q).all(|r| (0..q).all(|c| r == c || self.to_user_random[r * q + c] == 0.0));
        let factor = if diagonal_map {
            let mut scaled = lambda.to_vec();
            for r in 0..q {
                for c in 0..q {
                    scaled[r * q + c] *= self.to_user_random[r * q + r];
                }
            }
            scaled
        } else {
            semidefinite_cholesky(relative, q, &self.structure.blocks)
        };
        self.theta_positions.iter().map(|&(r, c)| factor[r * q + c]).collect()
    }

    /// Puts θ in the canonical form in which a zero on the diagonal of Λ has zeros below it:
    /// the same ΛΛᵀ (so the same deviance), with the column's entries folded into the
    /// columns after it by a rank-one update of their Cholesky factor. Without this, a zero
    /// diagonal with a non-zero column below is a spurious stationary point: flipping the
    /// sign of that column changes the sign of the gradient of the diagonal entry.
    pub fn canonical_theta(&self, theta: &mut [f64]) {
        let q = self.q;
        let mut lambda = match self.lambda(theta) {
            Ok(l) => l,
            Err(_) => return,
        };
        let mut offset = 0;
        let mut changed = false;
        for &size in &self.structure.blocks {
            for i in offset..offset + size {
                let below = i + 1..offset + size;
                if lambda[i * q + i] != 0.0 || below.clone().all(|r| lambda[r * q + i] == 0.0) {
                    continue;
                }
                let mut v: Vec<f64> = below.clone().map(|r| lambda[r * q + i]).collect();
                for r in below.clone() {
                    lambda[r * q + i] = 0.0;
                }
                rank_one_update(&mut lambda, q, i + 1..offset + size, &mut v);
                changed = true;
            }
            offset += size;
        }
        if changed {
            for (t, &(r, c)) in theta.iter_mut().zip(&self.theta_positions) {
                *t = lambda[r * q + c];
            }
        }
    }

    /// The conditional modes and covariances of the random effects at `fit`, in the data's units.
    ///
    /// # Errors
    /// The errors of [`LinearMixedModel::deviance`] at the fit's θ; `TooLarge` when the
    /// workspace or the effects do not fit in memory.
    pub fn random_effects(&self, fit: &LmmFit) -> Result<RandomEffects> {
        let q = self.q;
        let mut ws = self.workspace()?;
        let factor = self.factorize(&fit.internal_theta, &mut ws)?;
        let divisor = match fit.criterion {
            Criterion::Ml => self.n_obs,
            Criterion::Reml => self.n_obs - self.p as f64,
        };
        let ty = self.response.scale;
        let sigma2 = factor.pwrss / divisor * ty * ty;
        let lambda = self.lambda(&fit.internal_theta)?;
        let map: Vec<f64> = {
            let mut ml = vec![0.0; q * q];
            multiply(&self.to_user_random, &lambda, q, q, q, &mut ml);
            ml
        };
        let mut w: Vec<f64> = self.internal_beta(&ws).iter().map(|b| -b).collect();
        w.push(1.0);
        let m = self.n.len();
        // Filled within their exact capacity: `extend` never reallocates them.
        let mut modes = with_capacity(&[m, q], "the conditional modes")?;
        let mut conditional_covariances = with_capacity(&[m, q, q], "the conditional covariances")?;
        for j in 0..m {
            let u = self.spherical_mode(&ws, j, &w);
            modes.extend((0..q).map(|r| ty * (0..q).map(|k| map[r * q + k] * u[k]).sum::<f64>()));
            let a_inverse = inverse_from_cholesky(&ws.l[j * q * q..(j + 1) * q * q], q);
            conditional_covariances.extend(congruence(&map, &a_inverse, q).iter().map(|v| v * sigma2));
        }
        Ok(RandomEffects { modes, conditional_covariances })
    }
}

impl LinearMixedModel {
    /// Fitted values X_i β̂ + Z_i b̂_j of rows given by `columns` (the variables of the
    /// statistics, in order) and 1-based group `codes` of the statistics' groups: code 0, or a
    /// group the model left out (no rows), gives the population value X_i β̂ (as lme4's
    /// `allow.new.levels`), and so does every row when `random_effects` is `None`; a missing
    /// code or value gives NaN (R's `NA`).
    ///
    /// # Errors
    /// `LengthMismatch` when a column and `codes` differ in length; `InvalidArgument` when the
    /// columns are not the model's variables or `random_effects` belongs to another model;
    /// `TooLarge` when the values do not fit in memory.
    pub fn fitted_values(
        &self, fit: &LmmFit, random_effects: Option<&RandomEffects>, columns: &[crate::data::blocks::Column<'_>], codes: &[i32],
        checkpoint: &mut Checkpoint<'_>,
    ) -> Result<Vec<f64>> {
        let variables = self.structure.fixed.iter().chain(&self.structure.random).filter_map(|t| match t {
            Term::Variable(a) => Some(*a),
            Term::Intercept => None,
        });
        if variables.clone().any(|a| a >= columns.len()) {
            return Err(HnmError::InvalidArgument { argument: "columns", reason: "must hold every variable of the model" });
        }
        if let Some(column) = columns.iter().find(|c| c.len() != codes.len()) {
            return Err(HnmError::LengthMismatch { first: "a model column", first_len: column.len(), second: "the grouping factor", second_len: codes.len() });
        }
        let q = self.q;
        if random_effects.is_some_and(|re| re.modes.len() != self.n.len() * q) {
            return Err(HnmError::InvalidArgument { argument: "random_effects", reason: "must belong to this model" });
        }
        let mut modelled = filled(&[self.group_index.iter().max().map_or(0, |&g| g + 1)], usize::MAX, "the index of the groups")?;
        for (j, &g) in self.group_index.iter().enumerate() {
            modelled[g] = j;
        }
        let fixed: Vec<Term> = self.kept.iter().map(|&f| self.structure.fixed[f]).collect();
        let value = |term: Term, row: usize| match term {
            Term::Intercept => Some(1.0),
            Term::Variable(a) => columns[a].value(row),
        };
        // One value per row, pushed within its exact capacity.
        let mut out = with_capacity(&[codes.len()], "the fitted values")?;
        'rows: for (row, &code) in codes.iter().enumerate() {
            checkpoint.check()?;
            let mut total = 0.0;
            for (term, beta) in fixed.iter().zip(&fit.beta) {
                match value(*term, row) {
                    Some(v) => total += beta * v,
                    None => {
                        out.push(f64::NAN);
                        continue 'rows;
                    }
                }
            }
            if code == crate::data::pass::NA_CODE {
                out.push(f64::NAN);
                continue;
            }
            let group = usize::try_from(code).ok().and_then(|c| c.checked_sub(1)).and_then(|g| modelled.get(g)).copied();
            if let (Some(re), Some(j)) = (random_effects, group.filter(|&j| j != usize::MAX)) {
                for (k, term) in self.structure.random.iter().enumerate() {
                    match value(*term, row) {
                        Some(v) => total += re.modes[j * q + k] * v,
                        None => {
                            out.push(f64::NAN);
                            continue 'rows;
                        }
                    }
                }
            }
            out.push(total);
        }
        Ok(out)
    }
}

impl LinearMixedModel {
    /// The model for another response on the same design, in place: `stats` must be the
    /// statistics the model was built on except for the response's (its pilot, group means
    /// and co-moments), as a parametric bootstrap's replicate is. Only the response's column
    /// of each B_j = Z̃_jᵀ[X̃_j ỹ_j] and of F is recomputed, O(m (q + p)), where
    /// [`LinearMixedModel::new`] builds every block, O(m (q + p)²). The column maps stay the
    /// original's: the response's shift and scale remain an exact reparametrisation (module
    /// docs), so every fit equals that of the model built on `stats` up to rounding.
    ///
    /// # Errors
    /// `InvalidArgument` when `stats` has another number of variables or other sizes of the
    /// modelled groups (the design variables' statistics are not compared).
    pub fn replace_response(&mut self, stats: &CrossProducts) -> Result<()> {
        let same_groups = self.n.iter().zip(&self.group_index).all(|(&n, &j)| stats.n().get(j) == Some(&n));
        if check_structure(&self.structure, stats.variables()).is_err() || !same_groups {
            return Err(HnmError::InvalidArgument { argument: "stats", reason: "must have the design the model was built on" });
        }
        let (q, p, p1) = (self.q, self.p, self.p + 1);
        // The response's map in the data's units, about the new statistics' pilot.
        let response = Affine { shift: self.response.raw_shift - stats.pilot()[self.structure.response], ..self.response };
        // Z's columns, then X's and y's.
        let columns = column_maps(self.random.iter().chain(&self.fixed).chain(std::iter::once(&response)));
        let y = columns[q + p];
        let mut f_column = vec![0.0; p1];
        for (i, &j) in self.group_index.iter().enumerate() {
            let group = GroupMoments::of(stats, j);
            let mean_y = group.mean(&y);
            let product = |column: &ColumnMap| group.product(column, group.mean(column), &y, mean_y);
            for (u, column) in columns[..q].iter().enumerate() {
                self.zxy[(i * q + u) * p1 + p] = product(column);
            }
            for (f, column) in f_column.iter_mut().zip(&columns[q..]) {
                *f += product(column);
            }
        }
        for (a, &v) in f_column.iter().enumerate() {
            self.xy[a * p1 + p] = v;
            self.xy[p * p1 + a] = v;
        }
        self.revision = next_revision();
        Ok(())
    }
}

/// An [`Objective`] over θ: the model's profiled deviance for one criterion.
struct DevianceProblem<'a> {
    model: &'a LinearMixedModel,
    criterion: Criterion,
    workspace: RefCell<Workspace>,
}

impl Objective for DevianceProblem<'_> {
    fn value(&self, x: &[f64]) -> Result<f64> {
        self.model.deviance(self.criterion, x, &mut self.workspace.borrow_mut())
    }

    fn value_and_gradient(&self, x: &[f64]) -> Result<(f64, Vec<f64>)> {
        self.model.deviance_and_gradient(self.criterion, x, &mut self.workspace.borrow_mut())
    }

    fn canonicalize(&self, x: &mut [f64]) {
        self.model.canonical_theta(x);
    }
}

/// L ← L' with L'L'ᵀ = LLᵀ + vvᵀ on the diagonal block `range` of L (q × q, lower), by
/// Givens rotations (no division by a diagonal that may be 0).
fn rank_one_update(l: &mut [f64], q: usize, range: std::ops::Range<usize>, v: &mut [f64]) {
    let end = range.end;
    for (k, col) in range.enumerate() {
        let (a, b) = (l[col * q + col], v[k]);
        let r = a.hypot(b);
        if r == 0.0 {
            continue;
        }
        let (c, s) = (a / r, b / r);
        l[col * q + col] = r;
        for (i, row) in (col + 1..end).enumerate() {
            let (lik, vi) = (l[row * q + col], v[k + 1 + i]);
            l[row * q + col] = c * lik + s * vi;
            v[k + 1 + i] = -s * lik + c * vi;
        }
    }
}

/// T = S Λ for symmetric S and lower-triangular Λ (q × q).
#[inline(always)]
fn times_lambda(s: &[f64], lambda: &[f64], q: usize, t: &mut [f64]) {
    for r in 0..q {
        for c in 0..q {
            let mut sum = 0.0;
            for k in c..q {
                sum += s[r * q + k] * lambda[k * q + c];
            }
            t[r * q + c] = sum;
        }
    }
}

/// The rows and columns `indices` of the square matrix `m` (`width` columns, row-major).
fn principal_submatrix(m: &[f64], width: usize, indices: &[usize]) -> Vec<f64> {
    indices.iter().flat_map(|&a| indices.iter().map(move |&b| m[a * width + b])).collect()
}

/// `lf`'s lower triangle (`row.len()` square, row-major) minus that of row rowᵀ.
#[inline(always)]
fn subtract_outer_product(lf: &mut [f64], row: &[f64]) {
    let n = row.len();
    for a in 0..n {
        let x = row[a];
        for (f, &y) in lf[a * n..a * n + a + 1].iter_mut().zip(&row[..=a]) {
            *f -= x * y;
        }
    }
}

/// (L Lᵀ)⁻¹ into `out` (q × q) from the lower factor L and the reciprocals of its diagonal.
#[inline(always)]
fn inverse_from_factor(l: &[f64], inverse_diagonal: &[f64], q: usize, out: &mut [f64]) {
    out.fill(0.0);
    for i in 0..q {
        out[i * q + i] = 1.0;
    }
    solve_lower_scaled(l, inverse_diagonal, q, out, q);
    solve_lower_transposed_scaled(l, inverse_diagonal, q, out, q);
}

#[inline(always)]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Σ_k a[k] m[k][column] for a row-major m with `stride` columns.
#[inline(always)]
fn dot_strided(a: &[f64], m: &[f64], column: usize, stride: usize) -> f64 {
    a.iter().enumerate().map(|(k, x)| x * m[k * stride + column]).sum()
}

/// Solves L X = B in place (L lower q × q with the reciprocals of its diagonal in `inverse`,
/// B q × m, row-major): no division per element.
#[inline(always)]
fn solve_lower_scaled(l: &[f64], inverse: &[f64], q: usize, b: &mut [f64], m: usize) {
    for i in 0..q {
        for k in 0..i {
            let lik = l[i * q + k];
            for c in 0..m {
                b[i * m + c] -= lik * b[k * m + c];
            }
        }
        for c in 0..m {
            b[i * m + c] *= inverse[i];
        }
    }
}

/// Solves Lᵀ X = B in place, as [`solve_lower_scaled`].
#[inline(always)]
fn solve_lower_transposed_scaled(l: &[f64], inverse: &[f64], q: usize, b: &mut [f64], m: usize) {
    for i in (0..q).rev() {
        for k in i + 1..q {
            let lki = l[k * q + i];
            for c in 0..m {
                b[i * m + c] -= lki * b[k * m + c];
            }
        }
        for c in 0..m {
            b[i * m + c] *= inverse[i];
        }
    }
}

/// L⁻¹ for lower-triangular L (n × n), whose transpose maps a row x to x L⁻ᵀ.
fn inverse_lower(l: &[f64], n: usize) -> Vec<f64> {
    let mut inverse = identity(n);
    solve_lower(l, n, &mut inverse, n);
    inverse
}

/// Λᵀ M for lower-triangular Λ (q × q) and M (q × c).
#[inline(always)]
fn lambda_transposed_times(lambda: &[f64], m: &[f64], q: usize, c: usize, out: &mut [f64]) {
    for r in 0..q {
        for col in 0..c {
            let mut s = 0.0;
            for k in r..q {
                s += lambda[k * q + r] * m[k * c + col];
            }
            out[r * c + col] = s;
        }
    }
}

fn check_structure(s: &Structure, variables: usize) -> Result<()> {
    let bad = |reason| Err(HnmError::InvalidArgument { argument: "structure", reason });
    let valid = |t: &Term| matches!(t, Term::Intercept) || matches!(t, Term::Variable(a) if *a < variables);
    if s.response >= variables {
        return bad("names a response variable the statistics do not hold");
    }
    if !s.fixed.iter().all(valid) || !s.random.iter().all(valid) {
        return bad("names a design column the statistics do not hold");
    }
    if s.random.is_empty() || s.blocks.contains(&0) || s.blocks.iter().sum::<usize>() != s.random.len() {
        return bad("must split the random-effects columns into non-empty blocks");
    }
    Ok(())
}

/// Grand means and spreads of the variables, from which each design column's map is chosen.
struct ColumnSummary<'a> {
    stats: &'a CrossProducts,
    grand_mean: Vec<f64>,
    centred_ss: Vec<f64>,
    n_obs: f64,
}

impl<'a> ColumnSummary<'a> {
    fn of(stats: &'a CrossProducts) -> Self {
        let k = stats.variables();
        let n_obs = stats.n_obs();
        let grand_mean: Vec<f64> = (0..k).map(|a| (0..stats.groups()).map(|j| stats.n()[j] * stats.mean(j)[a]).sum::<f64>() / n_obs).collect();
        let centred_ss =
            (0..k).map(|a| (0..stats.groups()).map(|j| stats.comoment(j, a, a) + stats.n()[j] * (stats.mean(j)[a] - grand_mean[a]).powi(2)).sum()).collect();
        ColumnSummary { stats, grand_mean, centred_ss, n_obs }
    }

    /// The map of `term`: centred at its grand mean when `centred`, scaled by a power of two
    /// near its root mean square (about the grand mean, or about 0 when not centred).
    fn affine(&self, term: Term, centred: bool) -> Affine {
        match term {
            Term::Intercept => Affine { term, shift: 0.0, scale: 1.0, raw_shift: 0.0 },
            Term::Variable(a) => {
                let pilot = self.stats.pilot()[a];
                let variance = self.centred_ss[a] / self.n_obs;
                let (shift, spread) =
                    if centred { (self.grand_mean[a], variance.sqrt()) } else { (-pilot, (variance + (pilot + self.grand_mean[a]).powi(2)).sqrt()) };
                Affine { term, shift, scale: Unit::near(spread).value(), raw_shift: pilot + shift }
            }
        }
    }
}

/// Σ_j (columns)ᵀ(columns) over the groups, row-major.
fn symmetric_cross_products(stats: &CrossProducts, columns: &[Affine]) -> Vec<f64> {
    let c = columns.len();
    let maps = column_maps(columns);
    let mut out = vec![0.0; c * c];
    let mut means = vec![0.0; c];
    for j in 0..stats.groups() {
        let group = GroupMoments::of(stats, j);
        for (m, map) in means.iter_mut().zip(&maps) {
            *m = group.mean(map);
        }
        for u in 0..c {
            for v in 0..=u {
                out[u * c + v] += group.product(&maps[u], means[u], &maps[v], means[v]);
            }
        }
    }
    for u in 0..c {
        for v in 0..u {
            out[v * c + u] = out[u * c + v];
        }
    }
    out
}

/// Each group's S_j = Z̃ᵀZ̃ (q × q) and B_j = Z̃ᵀ[X̃ ỹ] (q × (p + 1)), group-major.
fn group_blocks(stats: &CrossProducts, random: &[Affine], fixed_and_response: &[Affine]) -> Result<(Vec<f64>, Vec<f64>)> {
    let (m, q, p1) = (stats.groups(), random.len(), fixed_and_response.len());
    let mut zz = filled(&[m, q, q], 0.0, "the groups' blocks Z'Z")?;
    let mut zxy = filled(&[m, q, p1], 0.0, "the groups' blocks Z'[X y]")?;
    let (random, others) = (column_maps(random), column_maps(fixed_and_response));
    let (mut mean_z, mut mean_xy) = (vec![0.0; q], vec![0.0; p1]);
    for ((j, s), b) in zz.chunks_exact_mut(q * q).enumerate().zip(zxy.chunks_exact_mut(q * p1)) {
        let group = GroupMoments::of(stats, j);
        for (m, map) in mean_z.iter_mut().zip(&random).chain(mean_xy.iter_mut().zip(&others)) {
            *m = group.mean(map);
        }
        for u in 0..q {
            for v in 0..=u {
                s[u * q + v] = group.product(&random[u], mean_z[u], &random[v], mean_z[v]);
                s[v * q + u] = s[u * q + v];
            }
            for v in 0..p1 {
                b[u * p1 + v] = group.product(&random[u], mean_z[u], &others[v], mean_xy[v]);
            }
        }
    }
    Ok((zz, zxy))
}

/// The columns of X (n × n cross-product `f`) kept in order: a column whose squared residual
/// norm after the kept columns before it is below [`RANK_TOLERANCE`] of its squared norm is
/// dropped, as lme4 drops the columns its pivoted QR places beyond the rank.
fn full_rank_columns(f: &[f64], n: usize) -> Vec<usize> {
    let mut kept: Vec<usize> = Vec::new();
    let mut l: Vec<Vec<f64>> = Vec::new();
    for c in 0..n {
        let norm = f[c * n + c];
        let mut row: Vec<f64> = kept.iter().map(|&k| f[c * n + k]).collect();
        for i in 0..row.len() {
            let s: f64 = (0..i).map(|t| l[i][t] * row[t]).sum();
            row[i] = (row[i] - s) / l[i][i];
        }
        let pivot = norm - row.iter().map(|v| v * v).sum::<f64>();
        if norm > 0.0 && pivot > RANK_TOLERANCE * norm {
            row.push(pivot.sqrt());
            l.push(row);
            kept.push(c);
        }
    }
    kept
}

/// The positions in Λ (row, column) of θ's entries, and lme4's lower bounds.
fn theta_layout(blocks: &[usize]) -> (Vec<(usize, usize)>, Vec<f64>) {
    let mut positions = Vec::new();
    let mut lower = Vec::new();
    let mut offset = 0;
    for &size in blocks {
        for c in 0..size {
            for r in c..size {
                positions.push((offset + r, offset + c));
                lower.push(if r == c { 0.0 } else { f64::NEG_INFINITY });
            }
        }
        offset += size;
    }
    (positions, lower)
}

/// M with user = M · internal for design columns mapped by `columns` (Λ-blocked by `blocks`):
/// M[f][f] = 1/t_f, and for a centred column f, M[i₀][f] = −s_f/t_f where i₀ is the intercept
/// of f's block that it was centred against.
fn to_user_map(columns: &[Affine], blocks: &[usize]) -> Vec<f64> {
    let n = columns.len();
    let mut m = identity(n);
    let mut offset = 0;
    for &size in blocks {
        let block = offset..offset + size;
        let intercept = block.clone().find(|&i| columns[i].term == Term::Intercept);
        for f in block {
            let a = &columns[f];
            m[f * n + f] = 1.0 / a.scale;
            if let (Some(i0), true) = (intercept, a.raw_shift != 0.0) {
                m[i0 * n + f] = -a.raw_shift / a.scale;
            }
        }
        offset += size;
    }
    m
}

/// The lower Cholesky factor of the positive semi-definite `a` (q × q, block diagonal over
/// `blocks`), with pivots that vanish up to rounding set to 0 (and their column below).
fn semidefinite_cholesky(a: &[f64], q: usize, blocks: &[usize]) -> Vec<f64> {
    let mut l = vec![0.0; q * q];
    let mut offset = 0;
    for &size in blocks {
        for j in offset..offset + size {
            let pivot = a[j * q + j] - (offset..j).map(|k| l[j * q + k] * l[j * q + k]).sum::<f64>();
            if pivot <= 64.0 * f64::EPSILON * a[j * q + j] {
                continue;
            }
            let d = pivot.sqrt();
            l[j * q + j] = d;
            for i in j + 1..offset + size {
                let v = a[i * q + j] - (offset..j).map(|k| l[i * q + k] * l[j * q + k]).sum::<f64>();
                l[i * q + j] = v / d;
            }
        }
        offset += size;
    }
    l
}
