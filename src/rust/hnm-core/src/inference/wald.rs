//! The Jacobian of lme4's variance parameters in the data's units with respect to the
//! model's internal variance parameters, for Wald intervals of the variance parameters.
//!
//! The Hessian H of the deviance (REML criterion) in φ = (θ̃, σ̃), the internal θ and σ
//! ([`crate::VarianceDerivatives`]), gives the asymptotic covariance 2H⁻¹ of φ̂ (lmerTest's);
//! lme4's parameters ψ = (sd_k, cor_kl, σ) then have covariance J (2H⁻¹) Jᵀ with J = ∂ψ/∂φ
//! (the delta method). With M the map of the random-effect columns to the data's units
//! (`model::lmm`, module docs), t_y the response's unit and s = t_y σ̃ the residual SD,
//!
//! Σ = s² R,   R = L Lᵀ,   L = M Λ(θ̃),
//!
//! so sd_i = s √R_ii, cor_ij = R_ij / √(R_ii R_jj) and σ = s. For θ̃_k the entry (r, c) of Λ,
//! with a = M e_r and b = L e_c, ∂R/∂θ̃_k = a bᵀ + b aᵀ, and
//!
//! ∂sd_i/∂θ̃_k = s ∂R_ii / (2 √R_ii),   ∂sd_i/∂σ̃ = t_y √R_ii,
//! ∂cor_ij/∂θ̃_k = ∂R_ij / √(R_ii R_jj) − (cor_ij / 2) (∂R_ii / R_ii + ∂R_jj / R_jj),
//! ∂cor_ij/∂σ̃ = 0,   ∂σ/∂σ̃ = t_y,   ∂σ/∂θ̃ = 0.
//!
//! (These are ∂sd_i = ∂Σ_ii / (2 sd_i) and ∂cor_ij = ∂Σ_ij / (sd_i sd_j) − (cor_ij / 2)
//! (∂Σ_ii / Σ_ii + ∂Σ_jj / Σ_jj) written with R, which is free of the data's units, so that
//! nothing is formed at the scale of s², which underflows for responses near 1e-154.)
//!
//! At a singular fit the map is not differentiable at the estimate: an SD of 0 (sd = √Σ_ii at
//! Σ_ii = 0) and a correlation of ±1 lie on the boundary of ψ's space, where J's row is not
//! defined (Λ's zero column makes it vanish); those rows are marked and their Jacobian rows
//! are NaN. The internal coordinates of Λ's columns whose diagonal is at its bound 0 are
//! marked too: the fit is a stationary point of the deviance only on the face where they
//! are 0, so the information there is that of the other coordinates.
//!
//! With several grouping factors M, Λ and L are every factor's side by side, block diagonal
//! (the profile's view, [`super::lmm_profile`]), and the formulas are unchanged.

use crate::model::lmm::{LinearMixedModel, LmmFit};

/// How far from ±1 (in 1 − |cor|) a correlation counts as ±1: an exact ±1 of Λ's internal
/// units comes back through the map to the data's units with a few roundings.
const UNIT_CORRELATION_TOLERANCE: f64 = 1e-10;

/// The Jacobian of lme4's variance parameters ψ = (sd and cor in θ's order, σ) in the data's
/// units with respect to the internal φ = (θ̃, σ̃), at a fit (module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct VarianceParameterJacobian {
    /// Number of parameters, k = length(θ) + 1 (σ last), both of ψ and of φ.
    pub parameters: usize,
    /// ψ at the fit: SDs, correlations and σ, in lme4's order (that of θ, then σ).
    pub estimates: Vec<f64>,
    /// ∂ψ_i/∂φ_j, k × k row-major; the rows of `boundary` parameters are NaN.
    pub jacobian: Vec<f64>,
    /// For each ψ_i: true when it is on the boundary of its space (an SD of 0 or a
    /// correlation of ±1), where the delta method is not defined.
    pub boundary: Vec<bool>,
    /// For each φ_j: true when it is held at the boundary face of the fit (an entry of a
    /// column of Λ whose diagonal is 0), so the information is that of the other coordinates.
    pub held: Vec<bool>,
}

impl LinearMixedModel {
    /// J = ∂ψ/∂φ at `fit` (module docs), with the boundary rows and held coordinates marked.
    ///
    /// # Errors
    /// The errors of building Λ from the fit's internal θ (`ParameterLength` when the fit is of
    /// another model, `NotFinite` for a non-finite θ).
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
    /// let j = model.variance_parameter_jacobian(&fit).unwrap();
    /// assert_eq!(j.parameters, 2);
    /// assert!((j.estimates[1] - fit.sigma).abs() < 1e-12 * fit.sigma);
    /// ```
    pub fn variance_parameter_jacobian(&self, fit: &LmmFit) -> crate::error::Result<VarianceParameterJacobian> {
        // Checks that θ is the model's.
        self.lambda(&fit.internal_theta)?;
        let columns = self.all_columns();
        let q = columns.q;
        let n_theta = columns.positions.len();
        let k = n_theta + 1;
        let lambda = columns.lambda(&fit.internal_theta);
        let m = &columns.to_user_random;
        let unit = self.response.scale;
        let s = fit.sigma;
        // L = M Λ, and the size of the terms summed into each entry (for the rounding of R_ii).
        let (mut l, mut l_magnitude) = (vec![0.0; q * q], vec![0.0; q * q]);
        for r in 0..q {
            for c in 0..q {
                l[r * q + c] = (0..q).map(|i| m[r * q + i] * lambda[i * q + c]).sum();
                l_magnitude[r * q + c] = (0..q).map(|i| (m[r * q + i] * lambda[i * q + c]).abs()).sum();
            }
        }
        let relative = |r: usize, c: usize| (0..q).map(|i| l[r * q + i] * l[c * q + i]).sum::<f64>();
        let zero_sd: Vec<bool> =
            (0..q).map(|r| relative(r, r) <= (64.0 * f64::EPSILON).powi(2) * (0..q).map(|c| l_magnitude[r * q + c].powi(2)).sum::<f64>()).collect();
        let root: Vec<f64> = (0..q).map(|r| relative(r, r).sqrt()).collect();
        // ∂R_rc/∂θ̃_j.
        let d_relative = |j: usize, r: usize, c: usize| -> f64 {
            let (tr, tc) = columns.positions[j];
            let a = |i: usize| m[i * q + tr];
            let b = |i: usize| l[i * q + tc];
            a(r) * b(c) + b(r) * a(c)
        };

        let mut estimates = Vec::with_capacity(k);
        let mut jacobian = vec![f64::NAN; k * k];
        let mut boundary = Vec::with_capacity(k);
        for (row, &(r, c)) in columns.positions.iter().enumerate() {
            let derivatives = &mut jacobian[row * k..(row + 1) * k];
            if r == c {
                estimates.push(s * root[r]);
                boundary.push(zero_sd[r]);
                if !zero_sd[r] {
                    for (j, d) in derivatives[..n_theta].iter_mut().enumerate() {
                        *d = s * d_relative(j, r, r) / (2.0 * root[r]);
                    }
                    derivatives[n_theta] = unit * root[r];
                }
                continue;
            }
            let cor = if zero_sd[r] || zero_sd[c] { f64::NAN } else { relative(r, c) / (root[r] * root[c]) };
            let at_boundary = !(1.0 - cor.abs() > UNIT_CORRELATION_TOLERANCE);
            estimates.push(cor);
            boundary.push(at_boundary);
            if !at_boundary {
                let (var_r, var_c) = (root[r] * root[r], root[c] * root[c]);
                for (j, d) in derivatives[..n_theta].iter_mut().enumerate() {
                    *d = d_relative(j, r, c) / (root[r] * root[c]) - 0.5 * cor * (d_relative(j, r, r) / var_r + d_relative(j, c, c) / var_c);
                }
                derivatives[n_theta] = 0.0;
            }
        }
        estimates.push(s);
        boundary.push(false);
        let sigma_row = &mut jacobian[n_theta * k..];
        sigma_row.fill(0.0);
        sigma_row[n_theta] = unit;

        let zero_column: Vec<bool> = (0..q).map(|c| lambda[c * q + c] == 0.0).collect();
        let mut held: Vec<bool> = columns.positions.iter().map(|&(_, c)| zero_column[c]).collect();
        held.push(false);
        Ok(VarianceParameterJacobian { parameters: k, estimates, jacobian, boundary, held })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Checkpoint, Column, Criterion, CrossProducts, Never, Structure, Term};

    /// A model with a correlated random intercept and slope whose x is offset and scaled, so
    /// that M both rescales and centres.
    fn slope_model() -> (LinearMixedModel, LmmFit) {
        let x: Vec<f64> = (0..30).map(|i| 1000.0 + 0.5 * f64::from(i % 5)).collect();
        let g: Vec<i32> = (0..30).map(|i| 1 + i / 5).collect();
        let y: Vec<f64> =
            (0..30).map(|i| 3.0 + 0.7 * (x[i] - 1000.0) + f64::from(g[i]).sin() * (1.0 + 0.3 * (x[i] - 1000.0)) + (7.0 * i as f64).cos()).collect();
        let pass = CrossProducts::from_columns(&[Column::Double(&y), Column::Double(&x)], g.into_iter(), 6, &mut Checkpoint::new(&Never)).unwrap();
        let structure =
            Structure { response: 0, fixed: vec![Term::Intercept, Term::Variable(1)], random: vec![Term::Intercept, Term::Variable(1)], blocks: vec![2] };
        let model = LinearMixedModel::new(&pass.stats, structure).unwrap();
        let fit = model.fit(Criterion::Reml, None, &mut Checkpoint::new(&Never)).unwrap();
        (model, fit)
    }

    /// ψ at internal θ̃ and σ̃, computed from the fit's map as the module docs define it.
    fn psi(model: &LinearMixedModel, theta: &[f64], sigma: f64) -> Vec<f64> {
        let q = model.q;
        let lambda = model.lambda(theta).unwrap();
        let mut llt = vec![0.0; q * q];
        for r in 0..q {
            for c in 0..q {
                llt[r * q + c] = (0..q).map(|i| lambda[r * q + i] * lambda[c * q + i]).sum();
            }
        }
        let s = sigma * model.response.scale;
        let cov: Vec<f64> = crate::numerics::dense::congruence(&model.to_user_random, &llt, q).iter().map(|v| v * s * s).collect();
        let mut out: Vec<f64> = model
            .theta_positions
            .iter()
            .map(|&(r, c)| if r == c { cov[r * q + r].sqrt() } else { cov[r * q + c] / (cov[r * q + r] * cov[c * q + c]).sqrt() })
            .collect();
        out.push(s);
        out
    }

    #[test]
    fn jacobian_matches_central_differences() {
        let (model, fit) = slope_model();
        let j = model.variance_parameter_jacobian(&fit).unwrap();
        assert!(j.boundary.iter().all(|b| !b) && j.held.iter().all(|h| !h));
        let k = j.parameters;
        let sigma = fit.sigma / model.response.scale;
        let mut phi = fit.internal_theta.clone();
        phi.push(sigma);
        for (e, p) in j.estimates.iter().zip(psi(&model, &fit.internal_theta, sigma)) {
            assert!((e - p).abs() <= 1e-12 * p.abs());
        }
        for col in 0..k {
            let h = 1e-5 * phi[col].abs().max(1e-3);
            let at = |shift: f64| {
                let mut x = phi.clone();
                x[col] += shift;
                psi(&model, &x[..k - 1], x[k - 1])
            };
            let (up, down) = (at(h), at(-h));
            for row in 0..k {
                let numeric = (up[row] - down[row]) / (2.0 * h);
                let analytic = j.jacobian[row * k + col];
                assert!((numeric - analytic).abs() <= 1e-6 * (1.0 + analytic.abs()), "row {row} col {col}: {numeric} vs {analytic}");
            }
        }
    }

    #[test]
    fn a_zero_column_of_lambda_marks_its_rows_and_coordinates() {
        let (model, fit) = slope_model();
        // The slope's conditional SD at 0: the correlation is ±1.
        let theta = [fit.internal_theta[0], fit.internal_theta[1], 0.0];
        let singular = model.fit_at(Criterion::Reml, &theta, &mut Checkpoint::new(&Never)).unwrap();
        let j = model.variance_parameter_jacobian(&singular).unwrap();
        assert_eq!(j.boundary, vec![false, true, false, false]);
        assert_eq!(j.held, vec![false, false, true, false]);
        assert!(j.jacobian[4..8].iter().all(|d| d.is_nan()));
        // The internal intercept's column at 0 (canonical form: 0 below the diagonal too): x is
        // centred, so in the data's units the intercept's SD is not 0 but the block has rank 1.
        let theta = [0.0, 0.0, fit.internal_theta[2]];
        let singular = model.fit_at(Criterion::Reml, &theta, &mut Checkpoint::new(&Never)).unwrap();
        let j = model.variance_parameter_jacobian(&singular).unwrap();
        assert_eq!(j.held, vec![true, true, false, false]);
        assert_eq!(j.boundary, vec![false, true, false, false]);
    }
}
