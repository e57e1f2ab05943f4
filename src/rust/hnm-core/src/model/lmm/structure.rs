//! The model's terms and parameters as the computation holds them: each design column's exact
//! map to internal units ((v − p) − s)/t and back (module docs of [`crate::model::lmm`]), and θ's
//! layout in Λ, with lme4's θ and the canonical form of a singular Λ.

use super::{LinearMixedModel, Structure, Term};
use crate::data::cross_products::CrossProducts;
use crate::data::unit::Unit;
use crate::error::{HnmError, Result};
use crate::model::one_way::profiled_deviance::Criterion;
use crate::numerics::dense::{congruence, identity, inverse_lower, multiply, principal_submatrix};

/// A design column as the model uses it: ((v − p) − shift)/scale, or 1.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Affine {
    pub(crate) term: Term,
    pub(crate) shift: f64,
    pub(crate) scale: f64,
    /// The shift in the data's units, p + shift (0 when the column is not centred).
    pub(crate) raw_shift: f64,
}

/// An [`Affine`] map hoisted out of a loop over groups: the column's variable (None for the
/// intercept), shift and 1/scale (a power of two, so that the products equal the quotients).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ColumnMap {
    pub(crate) variable: Option<usize>,
    pub(crate) shift: f64,
    pub(crate) inverse_scale: f64,
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

pub(crate) fn column_maps<'a>(columns: impl IntoIterator<Item = &'a Affine>) -> Vec<ColumnMap> {
    columns.into_iter().map(ColumnMap::from).collect()
}

/// One grouping factor's random-effects terms as the computation holds them: its q columns
/// of Z (their maps), Λ's blocks over them and θ's places in Λ.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FactorTerms<'a> {
    pub(crate) q: usize,
    pub(crate) blocks: &'a [usize],
    pub(crate) random: &'a [Affine],
    pub(crate) to_user_random: &'a [f64],
    pub(crate) theta_positions: &'a [(usize, usize)],
}

impl FactorTerms<'_> {
    /// Λ (q × q, row-major) from this factor's θ into `lambda`.
    pub(crate) fn fill_lambda(&self, theta: &[f64], lambda: &mut [f64]) {
        lambda.fill(0.0);
        for (&(r, c), &t) in self.theta_positions.iter().zip(theta) {
            lambda[r * self.q + c] = t;
        }
    }

    /// Λ = I as this factor's θ.
    pub(crate) fn identity_theta(&self) -> impl Iterator<Item = f64> + '_ {
        self.theta_positions.iter().map(|&(r, c)| if r == c { 1.0 } else { 0.0 })
    }

    /// M_Z ΛΛᵀ M_Zᵀ, the relative covariance in the data's units, and ΛΛᵀ's factor's θ in
    /// them (lme4's θ: see [`FactorTerms::user_theta`]).
    pub(crate) fn relative_covariance(&self, lambda: &[f64]) -> Vec<f64> {
        let q = self.q;
        let mut llt = vec![0.0; q * q];
        for r in 0..q {
            for c in 0..q {
                llt[r * q + c] = (0..q).map(|k| lambda[r * q + k] * lambda[c * q + k]).sum();
            }
        }
        congruence(self.to_user_random, &llt, q)
    }

    /// lme4's θ: the Cholesky factor of the relative covariance M_Z ΛΛᵀ M_Zᵀ, block by block.
    /// Where M_Z only rescales (no centred column) this is M_Z Λ exactly; otherwise a pivot
    /// that is zero up to rounding (a singular fit stays singular) is set to 0.
    pub(crate) fn user_theta(&self, lambda: &[f64], relative: &[f64]) -> Vec<f64> {
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
            semidefinite_cholesky(relative, q, self.blocks)
        };
        self.theta_positions.iter().map(|&(r, c)| factor[r * q + c]).collect()
    }

    /// K, the map from the data's random effects to the internal ones (b̃ = K b, q × q):
    /// K[f][f] = t_f and K[i₀][f] = s_f for a column centred at s_f against its block's
    /// intercept i₀ (see [`LinearMixedModel::internal_theta_of`]).
    fn internal_map(&self) -> Vec<f64> {
        let q = self.q;
        let mut k = vec![0.0; q * q];
        let mut offset = 0;
        for &size in self.blocks {
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
        k
    }

    /// The internal θ of this factor's lme4 θ (see [`LinearMixedModel::internal_theta_of`]).
    pub(crate) fn internal_theta_of(&self, theta: &[f64]) -> Vec<f64> {
        let q = self.q;
        let mut lambda = vec![0.0; q * q];
        self.fill_lambda(theta, &mut lambda);
        let covariance = congruence(&lambda, &identity(q), q);
        let factor = semidefinite_cholesky(&congruence(&self.internal_map(), &covariance, q), q, self.blocks);
        self.theta_positions.iter().map(|&(r, c)| factor[r * q + c]).collect()
    }

    /// The gradient in this factor's lme4 θ `theta` of a function of θ̃ whose gradient at
    /// θ̃ = `internal` (the internal θ of `theta`) is `internal_gradient`: the chain rule
    /// through θ̃(θ), the Cholesky factor L̃ of S̃ = W Wᵀ with W = K Λ, block by block
    /// ([`FactorTerms::internal_theta_of`]).
    ///
    /// The criterion depends on Λ̃ only through S̃ = Λ̃Λ̃ᵀ, so with G its gradient in S̃
    /// (symmetric), M = ∂/∂Λ̃ = 2 G L̃ and the gradient sought is ∂/∂Λ = Kᵀ 2 G W = Kᵀ M Q, Q
    /// being any matrix with L̃ Q = W. Of M the internal gradient gives the lower triangle;
    /// its strict upper triangle follows from the symmetry of L̃ᵀ M = 2 L̃ᵀ G L̃. With the
    /// block's L̃ = [L_C 0] (its first k columns L_C = [L_CC; L_ZC] with a positive diagonal,
    /// the rest zero, as a singular factor is held), the columns of M beyond k vanish and
    /// those within are M_C = [M_CC; M_ZC] with M_CC = M_lower + U, where, from
    /// Y = L_CCᵀ M_lower + L_ZCᵀ M_ZC, L_CCᵀ U = R with R[i][j] = Y[j][i] − Y[i][j] (i < j)
    /// and U strictly upper; then ∂/∂Λ = Kᵀ M_C Q_C with Q_C = L_CC⁻¹ W[..k]. This holds
    /// inside the parameter space and on its boundary alike. Where K is diagonal (no centred
    /// column) and Λ has no zero on its diagonal above a non-zero entry, L̃ = K Λ and the rule
    /// is simply ∂/∂θ_(r,c) = K[r][r] ∂/∂θ̃_(r,c).
    ///
    /// # Errors
    /// `Unsupported` when a block's L̃ has a zero on its diagonal before a positive one (as
    /// when a centred slope keeps its variance where the intercept's vanishes): the internal
    /// gradient then leaves G's entries between the two undetermined.
    pub(crate) fn user_gradient(&self, theta: &[f64], internal: &[f64], internal_gradient: &[f64]) -> Result<Vec<f64>> {
        let q = self.q;
        let k = self.internal_map();
        let (mut lambda, mut factor, mut m_lower) = (vec![0.0; q * q], vec![0.0; q * q], vec![0.0; q * q]);
        self.fill_lambda(theta, &mut lambda);
        self.fill_lambda(internal, &mut factor);
        self.fill_lambda(internal_gradient, &mut m_lower);
        let mut gradient = vec![0.0; theta.len()];
        let (mut offset, mut first) = (0, 0);
        for &b in self.blocks {
            let block: Vec<usize> = (offset..offset + b).collect();
            let entries = first..first + b * (b + 1) / 2;
            let local = |i: usize| (self.theta_positions[i].0 - offset, self.theta_positions[i].1 - offset);
            let (kb, lambda_b) = (principal_submatrix(&k, q, &block), principal_submatrix(&lambda, q, &block));
            let diagonal_map = (0..b).all(|r| (0..b).all(|c| r == c || kb[r * b + c] == 0.0));
            let canonical = (0..b).all(|c| lambda_b[c * (b + 1)] != 0.0 || (c + 1..b).all(|r| lambda_b[r * b + c] == 0.0));
            if diagonal_map && canonical {
                for i in entries.clone() {
                    gradient[i] = kb[local(i).0 * (b + 1)] * internal_gradient[i];
                }
            } else {
                let per_entry = chain_rule_block(&kb, &lambda_b, &principal_submatrix(&factor, q, &block), &principal_submatrix(&m_lower, q, &block), b)?;
                for i in entries.clone() {
                    let (r, c) = local(i);
                    gradient[i] = per_entry[r * b + c];
                }
            }
            offset += b;
            first = entries.end;
        }
        Ok(gradient)
    }

    /// This factor's θ in canonical form (see [`LinearMixedModel::canonical_theta`]).
    pub(crate) fn canonical_theta(&self, theta: &mut [f64]) {
        let q = self.q;
        let mut lambda = vec![0.0; q * q];
        self.fill_lambda(theta, &mut lambda);
        let mut offset = 0;
        let mut changed = false;
        for &size in self.blocks {
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
            for (t, &(r, c)) in theta.iter_mut().zip(self.theta_positions) {
                *t = lambda[r * q + c];
            }
        }
    }
}

impl LinearMixedModel {
    /// The first grouping factor's terms (the only one's, in a model with one).
    pub(crate) fn first_terms(&self) -> FactorTerms<'_> {
        FactorTerms {
            q: self.q,
            blocks: &self.structure.blocks,
            random: &self.random,
            to_user_random: &self.to_user_random,
            theta_positions: &self.theta_positions,
        }
    }

    /// Every grouping factor's terms with the range of its entries in θ, in θ's order.
    pub(crate) fn factor_terms(&self) -> Vec<(FactorTerms<'_>, std::ops::Range<usize>)> {
        let mut out = vec![(self.first_terms(), 0..self.theta_positions.len())];
        if let Some(several) = &self.several {
            let mut start = self.theta_positions.len();
            for other in &several.others {
                let terms = other.terms();
                out.push((terms, start..start + terms.theta_positions.len()));
                start += terms.theta_positions.len();
            }
        }
        out
    }

    pub(crate) fn lambda(&self, theta: &[f64]) -> Result<Vec<f64>> {
        let mut lambda = vec![0.0; self.q * self.q];
        self.fill_lambda(theta, &mut lambda)?;
        Ok(lambda)
    }

    /// The first factor's Λ (q × q, row-major) from θ into `lambda`, after checking θ (every
    /// factor's entries).
    pub(crate) fn fill_lambda(&self, theta: &[f64], lambda: &mut [f64]) -> Result<()> {
        if theta.len() != self.n_theta() {
            return Err(HnmError::ParameterLength { argument: "theta", expected: self.n_theta(), found: theta.len() });
        }
        if let Some(index) = theta.iter().position(|t| !t.is_finite()) {
            return Err(HnmError::NotFinite { argument: "theta", index });
        }
        self.first_terms().fill_lambda(theta, lambda);
        Ok(())
    }

    /// β in the data's units from β̃ in internal units: β = M_X (t_y β̃ + s_y e₀), the
    /// response's shift entering through the intercept.
    pub(crate) fn user_beta(&self, internal: &[f64]) -> Vec<f64> {
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
    pub(crate) fn unit_correction(&self, criterion: Criterion) -> f64 {
        let ln_ty = self.response.scale.ln();
        match criterion {
            Criterion::Ml => 2.0 * self.n_obs * ln_ty,
            Criterion::Reml => 2.0 * (self.n_obs - self.p as f64) * ln_ty + self.fixed.iter().map(|a| 2.0 * a.scale.ln()).sum::<f64>(),
        }
    }

    /// Puts θ in the canonical form in which a zero on the diagonal of Λ has zeros below it:
    /// the same ΛΛᵀ (so the same deviance), with the column's entries folded into the
    /// columns after it by a rank-one update of their Cholesky factor. Without this, a zero
    /// diagonal with a non-zero column below is a spurious stationary point: flipping the
    /// sign of that column changes the sign of the gradient of the diagonal entry.
    pub fn canonical_theta(&self, theta: &mut [f64]) {
        if theta.len() != self.n_theta() || theta.iter().any(|t| !t.is_finite()) {
            return;
        }
        for (terms, range) in self.factor_terms() {
            terms.canonical_theta(&mut theta[range]);
        }
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

pub(crate) fn check_structure(s: &Structure, variables: usize) -> Result<()> {
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
pub(crate) struct ColumnSummary<'a> {
    pub(crate) stats: &'a CrossProducts,
    pub(crate) grand_mean: Vec<f64>,
    pub(crate) centred_ss: Vec<f64>,
    pub(crate) n_obs: f64,
}

impl<'a> ColumnSummary<'a> {
    pub(crate) fn of(stats: &'a CrossProducts) -> Self {
        let (n_obs, grand_mean, centred_ss) = stats.variable_summaries();
        ColumnSummary { stats, grand_mean, centred_ss, n_obs }
    }

    /// The map of `term`: centred at its grand mean when `centred`, scaled by a power of two
    /// near its root mean square (about the grand mean, or about 0 when not centred).
    pub(crate) fn affine(&self, term: Term, centred: bool) -> Affine {
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

/// The positions in Λ (row, column) of θ's entries, and lme4's lower bounds.
pub(crate) fn theta_layout(blocks: &[usize]) -> (Vec<(usize, usize)>, Vec<f64>) {
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
pub(crate) fn to_user_map(columns: &[Affine], blocks: &[usize]) -> Vec<f64> {
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
pub(crate) fn semidefinite_cholesky(a: &[f64], q: usize, blocks: &[usize]) -> Vec<f64> {
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

/// ∂/∂Λ = Kᵀ M_C Q_C for one block of size b (see [`FactorTerms::user_gradient`]): from K, Λ,
/// the internal factor L̃ and the lower triangle of M = ∂/∂Λ̃, all b × b row-major.
///
/// # Errors
/// `Unsupported` when L̃ has a zero on its diagonal before a positive one.
fn chain_rule_block(k: &[f64], lambda: &[f64], factor: &[f64], m_lower: &[f64], b: usize) -> Result<Vec<f64>> {
    let rank = (0..b).take_while(|&i| factor[i * (b + 1)] > 0.0).count();
    if (rank..b).any(|i| factor[i * (b + 1)] > 0.0) {
        return Err(HnmError::Unsupported(
            "the gradient at a singular covariance of a correlated random-effects term that, in hnm's columns centred at their means, gives a column zero variance and a later one a positive variance (the value is available)",
        ));
    }
    let lcc = principal_submatrix(factor, b, &(0..rank).collect::<Vec<_>>());
    let lcc_inverse = inverse_lower(&lcc, rank);
    // Y = L_CCᵀ M_lower[..k][..k] + L_ZCᵀ M[k..][..k] = L_Cᵀ M_lower[..][..k] (L_C's rows k.. are L_ZC).
    let mut y = vec![0.0; rank * rank];
    for i in 0..rank {
        for j in 0..rank {
            y[i * rank + j] = (j..b).map(|a| factor[a * b + i] * m_lower[a * b + j]).sum();
        }
    }
    // M_C: M_lower's first k columns with the strict upper triangle U = L_CC⁻ᵀ R filled in.
    let mut m_c = vec![0.0; b * rank];
    for a in 0..b {
        for j in 0..rank.min(a + 1) {
            m_c[a * rank + j] = m_lower[a * b + j];
        }
    }
    for i in 0..rank {
        for j in i + 1..rank {
            // U[i][j] = Σ_a (L_CC⁻¹)[a][i] R[a][j], R[a][j] = Y[j][a] − Y[a][j] for a < j.
            m_c[i * rank + j] = (i..j).map(|a| lcc_inverse[a * rank + i] * (y[j * rank + a] - y[a * rank + j])).sum();
        }
    }
    let mut w = vec![0.0; b * b];
    multiply(k, lambda, b, b, b, &mut w);
    let mut q_c = vec![0.0; rank * b];
    multiply(&lcc_inverse, &w[..rank * b], rank, rank, b, &mut q_c);
    let mut mq = vec![0.0; b * b];
    multiply(&m_c, &q_c, b, rank, b, &mut mq);
    // Kᵀ (M_C Q_C).
    Ok((0..b).flat_map(|r| (0..b).map(move |c| (r, c))).map(|(r, c)| (0..b).map(|a| k[a * b + r] * mq[a * b + c]).sum()).collect())
}
