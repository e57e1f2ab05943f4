//! Kenward and Roger's (1997, Biometrics 53) adjusted covariance of β̂ and what their
//! denominator degrees of freedom need, as pbkrtest computes them (`vcovAdj`, Halekoh and
//! Højsgaard 2014, JSS 59(9)), from the per-group blocks instead of N × N matrices.
//!
//! pbkrtest writes the marginal covariance linearly in its parameters,
//! V = Σ_r φ_r V_r + σ² I with V_r = Z E_r Zᵀ for each variance and covariance of a block of
//! Λ (E_r the symmetric elementary matrix of the entry, 1 at (a, b) and (b, a)) and V_σ² = I,
//! so that the second derivatives of V vanish. With Φ = (XᵀV⁻¹X)⁻¹ (lme4's `vcov`),
//!
//! P_r = −XᵀV⁻¹V_rV⁻¹X,   Q_rs = XᵀV⁻¹V_rV⁻¹V_sV⁻¹X,
//! I_rs = tr(V⁻¹V_rV⁻¹V_s) − 2 tr(Φ Q_rs) + tr(Φ P_r Φ P_s)   (twice the REML expected
//! information), W = 2 I⁻¹,
//! Φ_A = Φ + 2 Φ [Σ_rs W_rs (Q_rs − P_r Φ P_s)] Φ.
//!
//! V is block diagonal over groups, and with S_j = Z_jᵀZ_j, G_j = Z_jᵀX_j and
//! K_j = Λ(ΛᵀS_jΛ + I)⁻¹Λᵀ, Woodbury gives V_j⁻¹ = c (I − Z_jK_jZ_jᵀ) (c = 1/σ², V in the
//! model's form σ²(I + ZΛΛᵀZᵀ)). With M_j = I − S_jK_j and Y_j = (I − Z_jK_jZ_jᵀ)X_j:
//!
//! Z_jᵀV_j⁻¹X_j = c M_jG_j,   Z_jᵀV_j⁻²X_j = c² M_j²G_j,
//! Z_jᵀV_j⁻¹Z_j = c M_jS_j,   Z_jᵀV_j⁻²Z_j = c² M_jS_jM_jᵀ,
//! Y_jᵀY_j = X_jᵀX_j − 2G_jᵀK_jG_j + G_jᵀK_jS_jK_jG_j,
//! X_jᵀV_j⁻²X_j = c² Y_jᵀY_j,   X_jᵀV_j⁻³X_j = c³ [Y_jᵀY_j − (M_jG_j)ᵀK_j(M_jG_j)],
//! tr(V_j⁻²) = c² (n_j − 2 tr(K_jS_j) + tr(K_jS_jK_jS_j)),
//!
//! so that every P_r, Q_rs and trace is a sum over groups of q × q and q × p products (the
//! X_jᵀX_j enter only through their sum), O(m k² (q²p + qp²)) for k = #θ + 1 parameters.
//!
//! Everything is computed in the model's internal units. Φ_A is equivariant under a change of
//! units of X and y (it maps to the data's units as vcov does) and invariant under a linear
//! reparametrisation of the variance parameters (the internal Z differs from the data's by an
//! invertible map within each block of Λ, which maps the span of the E_r onto itself; W
//! transforms inversely to P and Q), so it equals pbkrtest's in the data's units.
//! Kenward–Roger's denominator df of a contrast need only Φ, the ∂Φ/∂φ_r = Φ P_r Φ and W, whose
//! combinations in `pbkrtest::Lb_ddf` are invariant in the same way.

use crate::error::{HnmError, Result};
use crate::model::lmm::{LinearMixedModel, LmmFit};
use crate::model::one_way::profiled_deviance::Criterion;
use crate::numerics::dense::{cholesky_in_place, congruence, inverse_from_cholesky, inverse_of_factored, multiply};
use crate::numerics::interrupt::Checkpoint;
use crate::numerics::memory::filled;
use crate::numerics::optim::symmetric_eigen;

/// Kenward–Roger's adjusted covariance of β̂ and the pieces of its degrees of freedom.
#[derive(Debug, Clone, PartialEq)]
pub struct KenwardRoger {
    /// Number of variance parameters k (the entries of Λ's blocks that θ parametrises, then σ²).
    pub parameters: usize,
    /// Φ = vcov(β̂), p × p row-major, in the data's units.
    pub covariance: Vec<f64>,
    /// Φ_A, Kenward and Roger's adjusted covariance (pbkrtest's `vcovAdj`), p × p row-major.
    pub adjusted: Vec<f64>,
    /// ∂Φ/∂φ_r = Φ P_r Φ for each parameter: k matrices p × p row-major, data's units of β.
    pub covariance_jacobian: Vec<f64>,
    /// W = 2 I⁻¹, k × k row-major, in the parametrisation of `covariance_jacobian`.
    pub weights: Vec<f64>,
}

/// For symmetric E_ab (a ≥ b) and L (q × p): E_ab L, a q × p matrix whose row a is L's row b
/// and row b is L's row a.
fn elementary_times(a: usize, b: usize, l: &[f64], q: usize, p: usize, out: &mut [f64]) {
    out[..q * p].fill(0.0);
    out[a * p..(a + 1) * p].copy_from_slice(&l[b * p..(b + 1) * p]);
    if a != b {
        out[b * p..(b + 1) * p].copy_from_slice(&l[a * p..(a + 1) * p]);
    }
}

/// out += s · Lᵀ R for q × p matrices L and R.
fn add_crossproduct(out: &mut [f64], l: &[f64], r: &[f64], q: usize, p: usize, s: f64) {
    for i in 0..p {
        for j in 0..p {
            out[i * p + j] += s * (0..q).map(|u| l[u * p + i] * r[u * p + j]).sum::<f64>();
        }
    }
}

/// tr(A B) for n × n matrices.
fn trace_product(a: &[f64], b: &[f64], n: usize) -> f64 {
    (0..n).map(|i| (0..n).map(|t| a[i * n + t] * b[t * n + i]).sum::<f64>()).sum()
}

/// The matrix product as a new vector (r × k times k × c).
fn product(a: &[f64], b: &[f64], r: usize, k: usize, c: usize) -> Vec<f64> {
    let mut out = vec![0.0; r * c];
    multiply(a, b, r, k, c, &mut out);
    out
}

/// The index of (r, s), r ≤ s, among the upper triangle of a k × k matrix by rows.
fn pair(r: usize, s: usize, k: usize) -> usize {
    let (r, s) = if r <= s { (r, s) } else { (s, r) };
    r * k - r * (r + 1) / 2 + s
}

impl LinearMixedModel {
    /// Kenward and Roger's adjusted covariance of β̂ at a REML `fit` and the pieces of their
    /// denominator df (module docs), from the per-group blocks; the factorisation and the pass
    /// over the groups (k² products per group) ask `checkpoint`.
    ///
    /// # Errors
    /// `InvalidArgument` for an ML fit (Kenward and Roger's method is built on REML, and
    /// lmerTest refuses ML fits); the errors of [`LinearMixedModel::lambda`] for the fit's θ;
    /// `Optimizer` when a group's block or XᵀV⁻¹X is not positive definite; `TooLarge` when the
    /// k² matrices of size p × p do not fit in memory; `Interrupted` when `checkpoint` reports a
    /// user interrupt.
    ///
    /// # Example
    /// ```
    /// use hnm_core::{Checkpoint, Column, Criterion, CrossProducts, LinearMixedModel, Never, Structure, Term};
    /// let y = [1.0, 2.5, 2.0, 4.0, 3.5, 6.0, 5.0, 6.5, 8.0, 2.0, 2.5, 5.0];
    /// let x = [0.0, 1.0, 2.0, 0.0, 1.0, 2.0, 0.0, 1.0, 2.0, 0.0, 1.0, 2.0];
    /// let g = [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4];
    /// let pass = CrossProducts::from_columns(&[Column::Double(&y), Column::Double(&x)], g.into_iter(), 4,
    ///     &mut Checkpoint::new(&Never)).unwrap();
    /// let structure = Structure { response: 0, fixed: vec![Term::Intercept, Term::Variable(1)],
    ///     random: vec![Term::Intercept], blocks: vec![1] };
    /// let model = LinearMixedModel::new(&pass.stats, structure).unwrap();
    /// let fit = model.fit(Criterion::Reml, None, &mut Checkpoint::new(&Never)).unwrap();
    /// let kr = model.kenward_roger(&fit, &mut Checkpoint::new(&Never)).unwrap();
    /// // A balanced design: the adjustment leaves vcov(β̂) as it is (pbkrtest's sleepstudy note).
    /// for (a, v) in kr.adjusted.iter().zip(&kr.covariance) {
    ///     assert!((a - v).abs() <= 1e-8 * v.abs().max(1e-3));
    /// }
    /// ```
    pub fn kenward_roger(&self, fit: &LmmFit, checkpoint: &mut Checkpoint<'_>) -> Result<KenwardRoger> {
        self.require_one_factor("Kenward-Roger's method with several grouping factors (yet)")?;
        if fit.criterion != Criterion::Reml {
            return Err(HnmError::InvalidArgument { argument: "fit", reason: "Kenward-Roger's method is only available for REML fits" });
        }
        let (p, p1, q) = (self.p, self.p + 1, self.q);
        let n_theta = self.theta_positions.len();
        let k = n_theta + 1;
        let mut ws = self.workspace()?;
        let factor = self.factorize_checked(&fit.internal_theta, &mut ws, checkpoint)?;
        let sigma2 = factor.pwrss / self.divisor(fit.criterion);
        let c = 1.0 / sigma2;
        let lambda = self.lambda(&fit.internal_theta)?;
        const WHAT: &str = "Kenward-Roger's matrices";
        let mut pm = filled(&[k, p, p], 0.0, WHAT)?;
        let mut qm = filled(&[k * (k + 1) / 2, p, p], 0.0, WHAT)?;
        let mut ktrace = filled(&[k, k], 0.0, WHAT)?;
        // Σ_j Y_jᵀY_j − X_jᵀX_j and Σ_j (M_jG_j)ᵀK_j(M_jG_j), and Σ G_jᵀK_jG_j.
        let (mut yy, mut mkm, mut gkg) = (vec![0.0; p * p], vec![0.0; p * p], vec![0.0; p * p]);
        let mut trace_v2 = 0.0;
        let identity = crate::numerics::dense::identity(q);
        let elementaries: Vec<Vec<f64>> = self
            .theta_positions
            .iter()
            .map(|&(ra, rb)| {
                let mut e = vec![0.0; q * q];
                elementary_times(ra, rb, &identity, q, q, &mut e);
                e
            })
            .collect();
        let (mut a, mut g) = (vec![0.0; q * q], vec![0.0; q * p]);
        let (mut er, mut es) = (vec![0.0; q * p], vec![0.0; q * p]);
        for ((s, b), &n) in self.zz.chunks_exact(q * q).zip(self.zxy.chunks_exact(q * p1)).zip(&self.n) {
            checkpoint.check_work(k * k)?;
            // A = ΛᵀSΛ + I, K = Λ A⁻¹ Λᵀ.
            let t = product(s, &lambda, q, q, q);
            for i in 0..q {
                for j in 0..q {
                    a[i * q + j] = (0..q).map(|u| lambda[u * q + i] * t[u * q + j]).sum::<f64>() + f64::from(u8::from(i == j));
                }
            }
            if !cholesky_in_place(&mut a, q) {
                return Err(HnmError::Optimizer("a group's block lost positive definiteness".into()));
            }
            let a_inverse = inverse_from_cholesky(&a, q);
            let lai = product(&lambda, &a_inverse, q, q, q);
            let kk: Vec<f64> = (0..q * q).map(|e| (0..q).map(|u| lai[(e / q) * q + u] * lambda[(e % q) * q + u]).sum()).collect();
            for i in 0..q {
                g[i * p..(i + 1) * p].copy_from_slice(&b[i * p1..i * p1 + p]);
            }
            let sk = product(s, &kk, q, q, q);
            let m: Vec<f64> = (0..q * q).map(|e| f64::from(u8::from(e / q == e % q)) - sk[e]).collect();
            let mg = product(&m, &g, q, q, p);
            let zvx: Vec<f64> = mg.iter().map(|v| c * v).collect();
            let zv2x: Vec<f64> = product(&m, &mg, q, q, p).iter().map(|v| c * c * v).collect();
            let zvz: Vec<f64> = product(&m, s, q, q, q).iter().map(|v| c * v).collect();
            let ms = product(&m, s, q, q, q);
            let zv2z: Vec<f64> = (0..q * q).map(|e| c * c * (0..q).map(|u| ms[(e / q) * q + u] * m[(e % q) * q + u]).sum::<f64>()).collect();
            let kg = product(&kk, &g, q, q, p);
            let skg = product(s, &kg, q, q, p);
            let kmg = product(&kk, &mg, q, q, p);
            add_crossproduct(&mut gkg, &g, &kg, q, p, 1.0);
            add_crossproduct(&mut yy, &g, &kg, q, p, -2.0);
            add_crossproduct(&mut yy, &kg, &skg, q, p, 1.0);
            add_crossproduct(&mut mkm, &mg, &kmg, q, p, 1.0);
            let ks = product(&kk, s, q, q, q);
            trace_v2 += c * c * (n - 2.0 * (0..q).map(|i| ks[i * q + i]).sum::<f64>() + trace_product(&ks, &ks, q));
            for (r, &(ra, rb)) in self.theta_positions.iter().enumerate() {
                elementary_times(ra, rb, &zvx, q, p, &mut er);
                // P_r −= (Z'V⁻¹X)ᵀ E_r (Z'V⁻¹X); Q_rσ += (E_r Z'V⁻¹X)ᵀ Z'V⁻²X.
                add_crossproduct(&mut pm[r * p * p..(r + 1) * p * p], &zvx, &er, q, p, -1.0);
                let rs = pair(r, n_theta, k);
                add_crossproduct(&mut qm[rs * p * p..(rs + 1) * p * p], &er, &zv2x, q, p, 1.0);
                let h_er = product(&zvz, &elementaries[r], q, q, q);
                ktrace[r * k + n_theta] += trace_product(&elementaries[r], &zv2z, q);
                let her = product(&zvz, &er, q, q, p);
                for (u, &(sa, sb)) in self.theta_positions.iter().enumerate().skip(r) {
                    elementary_times(sa, sb, &zvx, q, p, &mut es);
                    let ru = pair(r, u, k);
                    // Q_ru = (E_r A)ᵀ H (E_u A) with A = Z'V⁻¹X, H = Z'V⁻¹Z.
                    add_crossproduct(&mut qm[ru * p * p..(ru + 1) * p * p], &her, &es, q, p, 1.0);
                    let h_eu = product(&zvz, &elementaries[u], q, q, q);
                    ktrace[r * k + u] += trace_product(&h_er, &h_eu, q);
                }
            }
        }
        // The σ² parameter (V_σ² = I): P = −XᵀV⁻²X, Q = XᵀV⁻³X, tr V⁻².
        let xx = self.x_block_of(&self.xy);
        let y_sum: Vec<f64> = xx.iter().zip(&yy).map(|(x, y)| x + y).collect();
        for (e, v) in pm[n_theta * p * p..].iter_mut().enumerate() {
            *v = -c * c * y_sum[e];
        }
        let ss = pair(n_theta, n_theta, k);
        for (e, v) in qm[ss * p * p..(ss + 1) * p * p].iter_mut().enumerate() {
            *v = c * c * c * (y_sum[e] - mkm[e]);
        }
        ktrace[n_theta * k + n_theta] = trace_v2;
        for r in 0..k {
            for s in 0..r {
                ktrace[r * k + s] = ktrace[s * k + r];
            }
        }
        // Φ = (XᵀV⁻¹X)⁻¹ = σ² (XᵀX − Σ GᵀKG)⁻¹.
        let mut information: Vec<f64> = xx.iter().zip(&gkg).map(|(x, g)| x - g).collect();
        if !cholesky_in_place(&mut information, p) {
            return Err(HnmError::Optimizer("X'V^-1 X is not positive definite".into()));
        }
        let phi: Vec<f64> = inverse_of_factored(&information, p).iter().map(|v| sigma2 * v).collect();
        let q_of = |r: usize, s: usize| -> Vec<f64> {
            let block = &qm[pair(r, s, k) * p * p..(pair(r, s, k) + 1) * p * p];
            if r <= s {
                block.to_vec()
            } else {
                (0..p * p).map(|e| block[(e % p) * p + e / p]).collect()
            }
        };
        let phi_p: Vec<Vec<f64>> = pm.chunks_exact(p * p).map(|pr| product(&phi, pr, p, p, p)).collect();
        let mut ie2 = vec![0.0; k * k];
        for r in 0..k {
            for s in r..k {
                let value = ktrace[r * k + s] - 2.0 * trace_product(&phi, &q_of(r, s), p) + trace_product(&phi_p[r], &phi_p[s], p);
                ie2[r * k + s] = value;
                ie2[s * k + r] = value;
            }
        }
        let weights: Vec<f64> = pseudo_inverse(&ie2, k).iter().map(|v| 2.0 * v).collect();
        // U = Σ_rs W_rs (Q_rs − P_r Φ P_s); Φ_A = Φ + 2 Φ U Φ.
        let mut u = vec![0.0; p * p];
        for r in 0..k {
            for s in 0..k {
                let prphips = product(&pm[r * p * p..(r + 1) * p * p], &phi_p[s], p, p, p);
                for (e, value) in q_of(r, s).iter().zip(&prphips).map(|(qv, pv)| qv - pv).enumerate() {
                    u[e] += weights[r * k + s] * value;
                }
            }
        }
        let phi_u_phi = congruence(&phi, &u, p);
        let adjusted: Vec<f64> = phi.iter().zip(&phi_u_phi).map(|(f, g)| f + 2.0 * g).collect();
        let ty2 = self.response.scale * self.response.scale;
        let to_user = |internal: &[f64]| -> Vec<f64> {
            let scaled: Vec<f64> = internal.iter().map(|v| v * ty2).collect();
            congruence(&self.to_user_fixed, &scaled, p)
        };
        let mut covariance_jacobian = filled(&[k, p, p], 0.0, WHAT)?;
        for (out, pr) in covariance_jacobian.chunks_exact_mut(p * p).zip(&phi_p) {
            out.copy_from_slice(&to_user(&product(pr, &phi, p, p, p)));
        }
        Ok(KenwardRoger { parameters: k, covariance: to_user(&phi), adjusted: to_user(&adjusted), covariance_jacobian, weights })
    }
}

/// The inverse of the symmetric k × k `m` over its eigenvalues: all of them when the smallest
/// in absolute value exceeds 1e-10 of the largest (pbkrtest's `solve`, whose absolute 1e-10
/// threshold is put relative here, as the internal units have their own scale), otherwise
/// those above √ε of the largest (pbkrtest's `MASS::ginv`).
fn pseudo_inverse(m: &[f64], k: usize) -> Vec<f64> {
    let (values, vectors) = symmetric_eigen(m, k);
    let largest = values.iter().fold(0.0_f64, |acc, v| acc.max(v.abs()));
    let smallest = values.iter().fold(f64::INFINITY, |acc, v| acc.min(v.abs()));
    let keep = |v: f64| if smallest > 1e-10 * largest { v != 0.0 } else { v > f64::EPSILON.sqrt() * largest };
    let mut out = vec![0.0; k * k];
    for (i, &value) in values.iter().enumerate() {
        if !keep(value) {
            continue;
        }
        for r in 0..k {
            for c in 0..k {
                out[r * k + c] += vectors[i * k + r] * vectors[i * k + c] / value;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::{Checkpoint, Column, Criterion, CrossProducts, LinearMixedModel, Never, Structure, Term};

    /// The inverse of a small dense matrix by Gauss–Jordan with partial pivoting.
    fn inverse(a: &[f64], n: usize) -> Vec<f64> {
        let mut m = a.to_vec();
        let mut inv = crate::numerics::dense::identity(n);
        for c in 0..n {
            let pivot = (c..n).max_by(|&i, &j| m[i * n + c].abs().total_cmp(&m[j * n + c].abs())).unwrap();
            for k in 0..n {
                m.swap(c * n + k, pivot * n + k);
                inv.swap(c * n + k, pivot * n + k);
            }
            let d = m[c * n + c];
            for k in 0..n {
                m[c * n + k] /= d;
                inv[c * n + k] /= d;
            }
            for r in (0..n).filter(|&r| r != c) {
                let f = m[r * n + c];
                for k in 0..n {
                    m[r * n + k] -= f * m[c * n + k];
                    inv[r * n + k] -= f * inv[c * n + k];
                }
            }
        }
        inv
    }

    fn mul(a: &[f64], b: &[f64], r: usize, k: usize, c: usize) -> Vec<f64> {
        (0..r * c).map(|e| (0..k).map(|t| a[(e / c) * k + t] * b[t * c + e % c]).sum()).collect()
    }

    fn transpose(a: &[f64], r: usize, c: usize) -> Vec<f64> {
        (0..r * c).map(|e| a[(e % r) * c + e / r]).collect()
    }

    fn trace(a: &[f64], n: usize) -> f64 {
        (0..n).map(|i| a[i * n + i]).sum()
    }

    /// An unbalanced random-slope design: pbkrtest's vcovAdj written densely with N × N
    /// matrices (V = Σ φ_r Z E_r Zᵀ + σ² I at the fit's variance components) equals the
    /// per-group computation.
    #[test]
    fn adjusted_covariance_equals_the_dense_computation() {
        let sizes = [2usize, 5, 3, 7, 4, 2, 6];
        let (mut y, mut x, mut g) = (Vec::new(), Vec::new(), Vec::new());
        let mut state = 0.5_f64;
        let mut next = || {
            state = (state * 9301.0 + 49297.0) % 233280.0;
            state / 233280.0 - 0.5
        };
        for (j, &n) in sizes.iter().enumerate() {
            let (b0, b1) = (2.0 * next(), next());
            for _ in 0..n {
                let xi = 3.0 * next() + 1.0;
                x.push(xi);
                y.push(1.0 + 0.5 * xi + b0 + b1 * xi + next());
                g.push(j as i32 + 1);
            }
        }
        let n_obs = y.len();
        let pass =
            CrossProducts::from_columns(&[Column::Double(&y), Column::Double(&x)], g.iter().copied(), sizes.len(), &mut Checkpoint::new(&Never)).unwrap();
        let structure =
            Structure { response: 0, fixed: vec![Term::Intercept, Term::Variable(1)], random: vec![Term::Intercept, Term::Variable(1)], blocks: vec![2] };
        let model = LinearMixedModel::new(&pass.stats, structure).unwrap();
        let fit = model.fit(Criterion::Reml, None, &mut Checkpoint::new(&Never)).unwrap();
        let kr = model.kenward_roger(&fit, &mut Checkpoint::new(&Never)).unwrap();

        // Dense: X = Z = [1 x] (N × 2), parameters D11, D21, D22, σ².
        let xm: Vec<f64> = x.iter().flat_map(|&v| [1.0, v]).collect();
        let d = &fit.re_covariance;
        let same = |a: usize, b: usize| g[a] == g[b];
        let entry = |e: [[f64; 2]; 2], a: usize, b: usize| -> f64 {
            if !same(a, b) {
                return 0.0;
            }
            let (za, zb) = ([1.0, x[a]], [1.0, x[b]]);
            (0..2).map(|i| (0..2).map(|j| za[i] * e[i][j] * zb[j]).sum::<f64>()).sum()
        };
        let elementary = [[[1.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]], [[0.0, 0.0], [0.0, 1.0]]];
        let mut gs: Vec<Vec<f64>> = elementary.iter().map(|&e| (0..n_obs * n_obs).map(|k| entry(e, k / n_obs, k % n_obs)).collect()).collect();
        gs.push(crate::numerics::dense::identity(n_obs));
        let phi_v = [d[0], d[2], d[3], fit.sigma * fit.sigma];
        let v: Vec<f64> = (0..n_obs * n_obs).map(|k| gs.iter().zip(&phi_v).map(|(gm, f)| f * gm[k]).sum()).collect();
        let vi = inverse(&v, n_obs);
        let xt = transpose(&xm, n_obs, 2);
        let xtvi = mul(&xt, &vi, 2, n_obs, n_obs);
        let phi = inverse(&mul(&xtvi, &xm, 2, n_obs, 2), 2);
        let k = gs.len();
        // G_r V⁻¹, so that XᵀV⁻¹ (G_rV⁻¹) X = XᵀV⁻¹G_rV⁻¹X.
        let vig: Vec<Vec<f64>> = gs.iter().map(|gm| mul(gm, &vi, n_obs, n_obs, n_obs)).collect();
        let p: Vec<Vec<f64>> = vig.iter().map(|h| mul(&mul(&xtvi, h, 2, n_obs, n_obs), &xm, 2, n_obs, 2).iter().map(|v| -v).collect()).collect();
        let q = |r: usize, s: usize| mul(&mul(&mul(&xtvi, &vig[r], 2, n_obs, n_obs), &vig[s], 2, n_obs, n_obs), &xm, 2, n_obs, 2);
        let mut info = vec![0.0; k * k];
        for r in 0..k {
            for s in 0..k {
                let pp = mul(&mul(&mul(&phi, &p[r], 2, 2, 2), &phi, 2, 2, 2), &p[s], 2, 2, 2);
                info[r * k + s] = trace(&mul(&vig[r], &vig[s], n_obs, n_obs, n_obs), n_obs) - 2.0 * trace(&mul(&phi, &q(r, s), 2, 2, 2), 2) + trace(&pp, 2);
            }
        }
        let w: Vec<f64> = inverse(&info, k).iter().map(|v| 2.0 * v).collect();
        let mut u = [0.0; 4];
        for r in 0..k {
            for s in 0..k {
                let ppp = mul(&mul(&p[r], &phi, 2, 2, 2), &p[s], 2, 2, 2);
                for (e, (qv, pv)) in q(r, s).iter().zip(&ppp).enumerate() {
                    u[e] += w[r * k + s] * (qv - pv);
                }
            }
        }
        let correction = mul(&mul(&phi, &u, 2, 2, 2), &phi, 2, 2, 2);
        for e in 0..4 {
            let dense = phi[e] + 2.0 * correction[e];
            assert!((kr.adjusted[e] - dense).abs() <= 1e-9 * dense.abs().max(1e-3), "{e}: {} vs {dense}", kr.adjusted[e]);
            assert!((kr.covariance[e] - phi[e]).abs() <= 1e-9 * phi[e].abs().max(1e-3));
        }
        // The adjustment is a real one on this unbalanced design.
        assert!((kr.adjusted[3] / kr.covariance[3] - 1.0).abs() > 1e-4);
    }
}
