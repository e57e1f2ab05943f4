//! The variances of conditional predictions: the error of x₀ᵀβ̂ + z₀ᵀb̂_j as a prediction of
//! x₀ᵀβ + z₀ᵀb_j, from the joint conditional covariance of (β̂, b̂ − b) that the blocked
//! factorisation holds.
//!
//! # The mathematics
//! With b_j = Λu_j and u_j ~ N(0, σ²I), the joint precision of (u, β) given y (Henderson's
//! mixed-model equations in lme4's spherical form; Bates et al. 2015, JSS 67(1), section 3) is
//!
//! σ⁻² [[ΛᵀZᵀZΛ + I, ΛᵀZᵀX], [XᵀZΛ, XᵀX]] = σ⁻² L Lᵀ,   L = [[L_Z, 0], [Rᵀ, R_X]],
//!
//! the blocked Cholesky factor of [`crate::model::lmm`]: L_Z = diag(L_j), R stacks the
//! R_j = L_j⁻¹ΛᵀZ_jᵀX_j and R_X R_Xᵀ = XᵀX − Σ_j R_jᵀR_j. Its inverse σ² (L Lᵀ)⁻¹ is the
//! covariance of (û − u, β̂ − β) (Henderson's C⁻¹, the prediction-error covariance; β fixed).
//! For a row (x₀, z₀) of group j, c = (Λᵀz₀ in group j's place, x₀) and
//!
//! Var(x₀ᵀβ̂ + z₀ᵀb̂_j − x₀ᵀβ − z₀ᵀb_j) = σ² cᵀ(L Lᵀ)⁻¹c = σ² (‖w_j‖² + ‖w_β‖²),
//!
//! where L w = c is solved by blocks: w_j = L_j⁻¹Λᵀz₀ (the other groups' blocks are 0) and
//! w_β = R_X⁻¹(x₀ − R_jᵀw_j). A new level, or a group without rows, is a group with no data:
//! L_j = I and R_j = 0, so the variance is x₀ᵀ Var(β̂) x₀ + z₀ᵀΣz₀ with Σ = σ²ΛΛᵀ, the
//! population prediction's plus the new group's effect. Each row costs O(q²p + p²) (R_j is
//! recomputed from the group's blocks), after one factorisation (O(m q²p)).
//!
//! # Units
//! The computation is in the model's internal units: a row's design values map as the
//! columns do, (v − s)/t (their `raw_shift` and `scale`), a reparametrisation in which
//! x₀ᵀβ + z₀ᵀb = t_y (x̃₀ᵀβ̃ + z̃₀ᵀb̃) + const, so the variance is t_y² σ̃² ‖w‖² = σ̂² ‖w‖²
//! with σ̂ the fit's, in the data's units. σ and θ are taken as known (the fit's values).

use super::{LinearMixedModel, LmmFit, Term};
use crate::data::blocks::{Column, GroupColumn};
use crate::error::Result;
use crate::numerics::dense::{dot, lambda_transposed_times, solve_lower};
use crate::numerics::interrupt::Checkpoint;

impl LinearMixedModel {
    /// Var(x₀ᵀβ̂ + z₀ᵀb̂_j − x₀ᵀβ − z₀ᵀb_j) at `fit` for rows given by `columns` (the
    /// variables of the statistics, in order) and the 1-based codes of `group` among the
    /// statistics' groups, in the data's units: σ̂² cᵀ(L Lᵀ)⁻¹c of the module docs, with σ and
    /// θ at the fit's values. Code 0, or a group the model left out, is a new level (the
    /// population prediction's variance plus z₀ᵀΣ̂z₀); a missing code or value gives NaN.
    ///
    /// # Errors
    /// The errors of [`LinearMixedModel::deviance`] at the fit's θ; `TooLarge` when the
    /// workspace or the values do not fit in memory; those of
    /// [`LinearMixedModel::fitted_values`] for the rows.
    ///
    /// # Example
    /// ```
    /// use hnm_core::{Checkpoint, Column, Criterion, CrossProducts, GroupColumn, LinearMixedModel, Never, Structure, Term};
    /// let y = [1.0, 2.5, 2.0, 4.0, 3.5, 6.0, 5.0, 6.5, 8.0];
    /// let g = [1, 1, 1, 2, 2, 2, 3, 3, 3];
    /// let pass = CrossProducts::from_columns(&[Column::Double(&y)], g.into_iter(), 3, &mut Checkpoint::new(&Never)).unwrap();
    /// let structure = Structure { response: 0, fixed: vec![Term::Intercept], random: vec![Term::Intercept], blocks: vec![1] };
    /// let model = LinearMixedModel::new(&pass.stats, structure).unwrap();
    /// let fit = model.fit(Criterion::Reml, None, &mut Checkpoint::new(&Never)).unwrap();
    /// // A row of group 1 and one of a new level (code 0).
    /// let v = model.prediction_variances(&fit, &[Column::Double(&[0.0, 0.0])], GroupColumn::Codes(&[1, 0]),
    ///     &mut Checkpoint::new(&Never)).unwrap();
    /// let tau2 = fit.re_covariance[0];
    /// assert!(v[0] < v[1] && (v[1] - fit.beta_covariance[0] - tau2).abs() < 1e-10 * v[1]);
    /// ```
    pub fn prediction_variances(&self, fit: &LmmFit, columns: &[Column<'_>], group: GroupColumn<'_>, checkpoint: &mut Checkpoint<'_>) -> Result<Vec<f64>> {
        let (q, p, p1) = (self.q, self.p, self.p + 1);
        let mut ws = self.workspace()?;
        self.factorization_at(&fit.internal_theta, &mut ws)?;
        let rx = self.x_factor(&ws);
        let sigma2 = fit.sigma * fit.sigma;
        // Per-row buffers (q and p long), reused across rows.
        let (mut x, mut z, mut w_u, mut r) = (vec![0.0; p], vec![0.0; q], vec![0.0; q], vec![0.0; q * p1]);
        let internal = |value: &dyn Fn(Term) -> Option<f64>, a: &super::structure::Affine| value(a.term).map(|v| (v - a.raw_shift) / a.scale);
        self.row_values(columns, group, "the prediction variances", checkpoint, |value, group| {
            for (xk, a) in x.iter_mut().zip(&self.fixed) {
                *xk = internal(value, a)?;
            }
            for (zk, a) in z.iter_mut().zip(&self.random) {
                *zk = internal(value, a)?;
            }
            // w_u = L_j⁻¹Λᵀz₀ (L_j = I for a new level), then x₀ − R_jᵀw_u.
            lambda_transposed_times(&ws.lambda, &z, q, 1, &mut w_u);
            if let Some(j) = group {
                let l = &ws.l[j * q * q..(j + 1) * q * q];
                solve_lower(l, q, &mut w_u, 1);
                lambda_transposed_times(&ws.lambda, &self.zxy[j * q * p1..(j + 1) * q * p1], q, p1, &mut r);
                solve_lower(l, q, &mut r, p1);
                for (k, xk) in x.iter_mut().enumerate() {
                    *xk -= (0..q).map(|i| r[i * p1 + k] * w_u[i]).sum::<f64>();
                }
            }
            solve_lower(&rx, p, &mut x, 1);
            Some(sigma2 * (dot(&w_u, &w_u) + dot(&x, &x)))
        })
    }
}
