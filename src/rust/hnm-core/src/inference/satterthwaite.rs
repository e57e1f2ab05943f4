//! What Satterthwaite's degrees of freedom for the fixed effects need (lmerTest's method,
//! Kuznetsova et al. 2017, JSS 82(13)): the Hessian of the deviance in the variance parameters
//! and the derivatives of vcov(β̂) in them.
//!
//! The variance parameters are (θ, σ) in the model's internal units; the deviance with σ held
//! explicit (β profiled out, as lmerTest's `devfun_vp`) is
//!
//! d(θ, σ) = log|A(θ)| + r²(θ)/σ² + N' log(2πσ²)   [+ log|C(θ)| for REML],
//!
//! with A = blockdiag(ΛᵀS_jΛ + I), C = XᵀX − Σ_j G_jᵀ Λ A_j⁻¹ Λᵀ G_j (G_j = Z_jᵀX_j), r² the
//! penalised residual sum of squares at β̂(θ) and N' = N (ML) or N − p (REML). Since
//! vcov(β̂) = σ² C⁻¹, with K_j = Λ A_j⁻¹, T_j = S_j Λ and M_j = I − K_j T_jᵀ,
//!
//! ∂C/∂Λ_rc = −Σ_j (a bᵀ + b aᵀ),  a = G_jᵀ M_j e_r,  b = G_jᵀ K_j e_c,
//! ∂vcov/∂θ_k = −σ² C⁻¹ (∂C/∂θ_k) C⁻¹,   ∂vcov/∂σ = 2σ C⁻¹.
//!
//! Satterthwaite's df, 2 (l V lᵀ)² / (gᵀ 𝒜 g) with g_k = l (∂V/∂φ_k) lᵀ and 𝒜 = 2 H⁻¹, is the
//! same in any smooth parametrisation φ of the variance parameters (g transforms with the
//! inverse Jacobian, 𝒜 with the Jacobian), so internal (θ, σ) give lmerTest's numbers in
//! lme4's θ and σ.

use crate::error::Result;
use crate::model::lmm::{LinearMixedModel, LmmFit, Workspace};
use crate::numerics::dense::{cholesky_in_place, congruence, inverse_from_cholesky, inverse_of_factored};
use crate::numerics::dense::{lambda_transposed_times, times_lambda};
use crate::numerics::interrupt::Checkpoint;

/// The Hessian of the deviance in the variance parameters and the derivatives of vcov(β̂) in
/// them, at a fit (module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct VarianceDerivatives {
    /// Number of variance parameters, k = length(θ) + 1 (σ last).
    pub parameters: usize,
    /// ∂²d/∂φ∂φᵀ at the fit, k × k row-major, φ = (θ, σ) in internal units.
    pub hessian: Vec<f64>,
    /// ∂vcov(β̂)/∂φ_k for each k: k matrices p × p row-major, in the data's units of β.
    pub covariance_jacobian: Vec<f64>,
}

impl LinearMixedModel {
    /// The derivatives Satterthwaite's approximation needs at `fit` (module docs): the
    /// Hessian by Richardson-extrapolated central differences of the analytic gradient in θ
    /// at fixed σ, its σ row in closed form, and the Jacobian of vcov(β̂) analytically (with
    /// several factors by differences too). Every evaluation asks `checkpoint` (with several
    /// factors, per block of the dense core: one takes minutes at MovieLens 32M's shape), and
    /// so does every difference.
    ///
    /// # Errors
    /// The errors of [`LinearMixedModel::deviance`] at the fit's θ or near it; `Interrupted`
    /// when `checkpoint` reports a user interrupt.
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
    /// let d = model.variance_derivatives(&fit, &mut Checkpoint::new(&Never)).unwrap();
    /// assert_eq!(d.parameters, 2);
    /// assert!(d.hessian[3] > 0.0);
    /// ```
    pub fn variance_derivatives(&self, fit: &LmmFit, checkpoint: &mut Checkpoint<'_>) -> Result<VarianceDerivatives> {
        let theta = &fit.internal_theta;
        let (n_theta, k) = (theta.len(), theta.len() + 1);
        let criterion = fit.criterion;
        let mut ws = self.workspace()?;
        let factor = self.factorize_checked(theta, &mut ws, checkpoint)?;
        let divisor = self.divisor(criterion);
        let sigma2 = factor.pwrss / divisor;
        let scale = 2.0 / sigma2;
        let at_sigma = self.gradient(criterion, scale, &mut ws, checkpoint)?;
        let without_residual = self.gradient(criterion, 0.0, &mut ws, checkpoint)?;
        let covariance_jacobian = self.covariance_jacobian(theta, sigma2, &ws, checkpoint)?;

        let mut hessian = vec![0.0; k * k];
        for c in 0..n_theta {
            let column = self.gradient_derivative(criterion, scale, theta, c, checkpoint)?;
            for (r, value) in column.iter().enumerate() {
                hessian[r * k + c] = *value;
            }
        }
        for r in 0..n_theta {
            for c in 0..r {
                let mean = 0.5 * (hessian[r * k + c] + hessian[c * k + r]);
                hessian[r * k + c] = mean;
                hessian[c * k + r] = mean;
            }
            // ∂/∂σ of (1/σ²) ∂r²/∂θ.
            let mixed = -(2.0 / sigma2.sqrt()) * (at_sigma[r] - without_residual[r]);
            hessian[r * k + n_theta] = mixed;
            hessian[n_theta * k + r] = mixed;
        }
        hessian[k * k - 1] = 6.0 * factor.pwrss / (sigma2 * sigma2) - 2.0 * divisor / sigma2;
        Ok(VarianceDerivatives { parameters: k, hessian, covariance_jacobian })
    }

    /// ∂/∂θ_c of the gradient in θ at fixed σ (scale = 2/σ²): central differences at steps h
    /// and h/2 combined by Richardson's rule (error O(h⁴)); the internal units make θ O(1).
    /// Each difference and each of its evaluations asks `checkpoint`.
    fn gradient_derivative(
        &self, criterion: crate::model::one_way::profiled_deviance::Criterion, scale: f64, theta: &[f64], c: usize, checkpoint: &mut Checkpoint<'_>,
    ) -> Result<Vec<f64>> {
        let mut ws = self.workspace()?;
        let mut central = |h: f64| -> Result<Vec<f64>> {
            checkpoint.check_timed()?;
            let mut shifted = theta.to_vec();
            shifted[c] = theta[c] + h;
            self.factorize_checked(&shifted, &mut ws, checkpoint)?;
            let up = self.gradient(criterion, scale, &mut ws, checkpoint)?;
            shifted[c] = theta[c] - h;
            self.factorize_checked(&shifted, &mut ws, checkpoint)?;
            let down = self.gradient(criterion, scale, &mut ws, checkpoint)?;
            Ok(up.iter().zip(&down).map(|(u, d)| (u - d) / (2.0 * h)).collect())
        };
        let h = 1e-3 * theta[c].abs().max(1.0);
        let coarse = central(h)?;
        let fine = central(h / 2.0)?;
        Ok(fine.iter().zip(&coarse).map(|(f, c)| (4.0 * f - c) / 3.0).collect())
    }

    /// ∂vcov(β̂)/∂θ_k for each k and ∂vcov(β̂)/∂σ (module docs), mapped to the data's units of
    /// β; `ws` holds the factorisation at θ. The derivatives of XᵀV⁻¹X ask `checkpoint`.
    fn covariance_jacobian(&self, theta: &[f64], sigma2: f64, ws: &Workspace, checkpoint: &mut Checkpoint<'_>) -> Result<Vec<f64>> {
        let p = self.p;
        if p == 0 {
            // No fixed effects: k matrices of size 0 × 0.
            return Ok(Vec::new());
        }
        let n_theta = theta.len();
        let dc = match self.several {
            Some(_) => self.numerical_x_block_derivatives(theta, checkpoint)?,
            None => self.x_block_derivatives(theta, checkpoint)?,
        };
        let c_inverse = inverse_of_factored(&self.x_factor(ws), p);
        let ty2 = self.response.scale * self.response.scale;
        let to_user = |internal: &[f64]| -> Vec<f64> {
            let scaled: Vec<f64> = internal.iter().map(|v| v * ty2).collect();
            congruence(&self.to_user_fixed, &scaled, p)
        };
        let mut jacobian = Vec::with_capacity((n_theta + 1) * p * p);
        for d in dc.chunks_exact(p * p) {
            // −σ² C⁻¹ dC C⁻¹ = −σ² congruence(C⁻¹, dC) as C⁻¹ is symmetric.
            let internal: Vec<f64> = congruence(&c_inverse, d, p).iter().map(|v| -sigma2 * v).collect();
            jacobian.extend(to_user(&internal));
        }
        let sigma_derivative: Vec<f64> = c_inverse.iter().map(|v| 2.0 * sigma2.sqrt() * v).collect();
        jacobian.extend(to_user(&sigma_derivative));
        Ok(jacobian)
    }

    /// ∂C/∂θ_k for each k (k matrices p × p), C = XᵀV⁻¹X up to σ² (module docs), from the
    /// per-group blocks of a model with one grouping factor, asking `checkpoint` as a pass
    /// over the groups.
    fn x_block_derivatives(&self, theta: &[f64], checkpoint: &mut Checkpoint<'_>) -> Result<Vec<f64>> {
        let (p, p1, q) = (self.p, self.p + 1, self.q);
        let lambda = self.lambda(theta)?;
        let mut dc = vec![0.0; theta.len() * p * p];
        let (mut t, mut a) = (vec![0.0; q * q], vec![0.0; q * q]);
        let (mut gm, mut gk) = (vec![0.0; p * q], vec![0.0; p * q]);
        for (s, b) in self.zz.chunks_exact(q * q).zip(self.zxy.chunks_exact(q * p1)) {
            checkpoint.check()?;
            times_lambda(s, &lambda, q, &mut t);
            lambda_transposed_times(&lambda, &t, q, q, &mut a);
            for i in 0..q {
                a[i * q + i] += 1.0;
            }
            if !cholesky_in_place(&mut a, q) {
                return Err(crate::error::HnmError::Optimizer("a group's block lost positive definiteness".into()));
            }
            let a_inverse = inverse_from_cholesky(&a, q);
            // K = Λ A⁻¹, M = I − K Tᵀ; then GᵀM and GᵀK (p × q).
            let kk: Vec<f64> = (0..q * q).map(|e| (0..q).map(|i| lambda[(e / q) * q + i] * a_inverse[i * q + e % q]).sum()).collect();
            let m: Vec<f64> = (0..q * q)
                .map(|e| {
                    let (r, c) = (e / q, e % q);
                    f64::from(u8::from(r == c)) - (0..q).map(|i| kk[r * q + i] * t[c * q + i]).sum::<f64>()
                })
                .collect();
            for x in 0..p {
                for l in 0..q {
                    gm[x * q + l] = (0..q).map(|i| b[i * p1 + x] * m[i * q + l]).sum();
                    gk[x * q + l] = (0..q).map(|i| b[i * p1 + x] * kk[i * q + l]).sum();
                }
            }
            for (d, &(r, c)) in dc.chunks_exact_mut(p * p).zip(&self.theta_positions) {
                for x in 0..p {
                    for y in 0..p {
                        d[x * p + y] -= gm[x * q + r] * gk[y * q + c] + gk[x * q + c] * gm[y * q + r];
                    }
                }
            }
        }
        Ok(dc)
    }

    /// [`LinearMixedModel::x_block_derivatives`] for a model with several grouping factors, by
    /// central differences of C = R_X R_Xᵀ at steps h and h/2 combined by Richardson's rule
    /// (as the Hessian's columns; lmerTest differentiates vcov numerically too). Each
    /// factorisation asks `checkpoint`, before and inside.
    fn numerical_x_block_derivatives(&self, theta: &[f64], checkpoint: &mut Checkpoint<'_>) -> Result<Vec<f64>> {
        let p = self.p;
        let mut ws = self.workspace()?;
        let mut x_block = |t: &[f64]| -> Result<Vec<f64>> {
            checkpoint.check_timed()?;
            self.factorize_checked(t, &mut ws, checkpoint)?;
            let rx = self.x_factor(&ws);
            Ok((0..p * p).map(|e| (0..p).map(|k| rx[(e / p) * p + k] * rx[(e % p) * p + k]).sum()).collect())
        };
        let mut dc = Vec::with_capacity(theta.len() * p * p);
        for c in 0..theta.len() {
            let mut central = |h: f64| -> Result<Vec<f64>> {
                let mut shifted = theta.to_vec();
                shifted[c] = theta[c] + h;
                let up = x_block(&shifted)?;
                shifted[c] = theta[c] - h;
                let down = x_block(&shifted)?;
                Ok(up.iter().zip(&down).map(|(u, d)| (u - d) / (2.0 * h)).collect())
            };
            // Central also at a bound of 0: the factorisation takes a negative diagonal of Λ.
            let h = 1e-3 * theta[c].abs().max(1.0);
            let coarse = central(h)?;
            let fine = central(h / 2.0)?;
            dc.extend(fine.iter().zip(&coarse).map(|(f, c)| (4.0 * f - c) / 3.0));
        }
        Ok(dc)
    }
}

#[cfg(test)]
mod tests {
    use crate::inference::interrupt_tests::crossed;
    use crate::model::one_way::profiled_deviance::Criterion;
    use crate::numerics::blocked::ONE_THREAD;
    use crate::numerics::interrupt::{assert_stops, questions};
    use crate::numerics::interrupt::{Checkpoint, Never};

    /// Every factorisation of Satterthwaite's derivatives (1 at the fit, 4 per θ for the
    /// Hessian's columns and 4 per θ for vcov's, with several factors) asks the checkpoint
    /// inside, as the fit's own evaluation does; stopped at its first, middle or last question
    /// it returns `Interrupted` at once, and the next call equals a fresh model's. On one
    /// thread, so that the questions can be counted.
    #[test]
    fn the_derivatives_stop_inside_their_evaluations() {
        ONE_THREAD.with(|one| one.set(true));
        let model = crossed();
        let fit = model.fit(Criterion::Reml, None, &mut Checkpoint::new(&Never)).unwrap();
        let expected = crossed().variance_derivatives(&fit, &mut Checkpoint::new(&Never)).unwrap();
        let per_factorisation = questions(|c| model.factorize_checked(&fit.internal_theta, &mut model.workspace()?, c));
        assert!(per_factorisation >= 3, "{per_factorisation} questions in a factorisation");
        let total = questions(|c| model.variance_derivatives(&fit, c));
        let factorisations = 1 + 8 * fit.internal_theta.len();
        assert!(total >= factorisations * per_factorisation, "{total} questions, {per_factorisation} a factorisation");
        assert_stops(total, |c| model.variance_derivatives(&fit, c));
        assert_eq!(model.variance_derivatives(&fit, &mut Checkpoint::new(&Never)).unwrap(), expected);
    }
}
