//! The profiles of the fixed effects.
//!
//! Given θ, the penalised residual sum of squares with aᵀβ = b (β_k in the data's units is
//! such a combination of the internal β) is minimised at β_b = β̂ + (b − aᵀβ̂) C a / (aᵀC a),
//! C = (XᵀV⁻¹X)⁻¹ (in σ² units), where it is r_b² = r² + (b − aᵀβ̂)²/(aᵀC a). With σ profiled,
//!
//! D(θ; b) = log|A| [+ log|XᵀV⁻¹X|] + k [1 + log(2π r_b²/k)],
//!
//! minimised over θ with the model's gradient at β = β_b (the envelope theorem in β); the
//! slope is d D/db = 2k (b − aᵀβ̂) / (r_b² aᵀCa). For REML this is lme4's REML criterion with β
//! held fixed (Bates et al. 2015, JSS 67(1), eq. 42), as the one-way model's μ profile.

use std::cell::RefCell;

use super::{one_way, InnerProblem};
use crate::error::Result;
use crate::model::lmm::{LinearMixedModel, Workspace, LOG_2PI};
use crate::model::one_way::profiled_deviance::Criterion;
use crate::numerics::dense::{solve_lower, solve_lower_transposed};
use crate::numerics::interrupt::Polled;
use crate::numerics::optim::Objective;

/// The inner problem of a fixed effect's profile: θ (internal) with aᵀβ̃ = `target`; its
/// evaluations ask `polled` ([`Polled::evaluate`]).
pub(super) struct BetaProblem<'m, 'c, 'a> {
    model: &'m LinearMixedModel,
    criterion: Criterion,
    combination: &'m [f64],
    target: f64,
    /// The profile's workspace of `model`, shared by its points.
    workspace: &'m RefCell<Workspace>,
    polled: &'m Polled<'c, 'a>,
}

/// What one evaluation of [`BetaProblem`] gives: D, β_b and r_b², and dD/db.
struct BetaPoint {
    value: f64,
    beta: Vec<f64>,
    pwrss: f64,
    slope: f64,
}

impl<'m, 'c, 'a> BetaProblem<'m, 'c, 'a> {
    pub(super) fn new(
        model: &'m LinearMixedModel, criterion: Criterion, combination: &'m [f64], target: f64, workspace: &'m RefCell<Workspace>, polled: &'m Polled<'c, 'a>,
    ) -> Self {
        BetaProblem { model, criterion, combination, target, workspace, polled }
    }

    fn evaluate(&self, theta: &[f64], ws: &mut Workspace) -> Result<BetaPoint> {
        let model = self.model;
        let p = model.p;
        let f = self.polled.evaluate(|checkpoint| model.factorize_checked(theta, ws, checkpoint))?;
        let beta_hat = model.internal_beta(ws);
        let rx = model.x_factor(ws);
        // v = R_X⁻¹ a, so aᵀCa = ‖v‖² and C a = R_X⁻ᵀ v.
        let mut v = self.combination.to_vec();
        solve_lower(&rx, p, &mut v, 1);
        let curvature: f64 = v.iter().map(|x| x * x).sum();
        let gap = self.target - self.combination.iter().zip(&beta_hat).map(|(a, b)| a * b).sum::<f64>();
        solve_lower_transposed(&rx, p, &mut v, 1);
        let beta: Vec<f64> = beta_hat.iter().zip(&v).map(|(b, c)| b + c * gap / curvature).collect();
        let pwrss = f.pwrss + gap * gap / curvature;
        let k = model.divisor(self.criterion);
        let logdet = f.logdet_z + if self.criterion == Criterion::Reml { f.logdet_x } else { 0.0 };
        let value = logdet + k * (1.0 + LOG_2PI + (pwrss / k).ln());
        Ok(BetaPoint { value, beta, pwrss, slope: 2.0 * k * gap / (pwrss * curvature) })
    }
}

impl BetaProblem<'_, '_, '_> {
    /// For the one-way model, D, dD/d(aᵀβ̃) and dD/dθ at θ = (`theta`) by its scalar evaluations
    /// ([`one_way`]): [`BetaProblem::evaluate`] and the gradient with p = 1 in the same
    /// operations without their vectors (R_X = l_xx, so v = a/l_xx, aᵀCa = v², C a = v/l_xx);
    /// dD/dθ only when `gradient` (NaN otherwise). `None` for other models.
    fn scalar(&self, theta: f64, gradient: bool) -> Result<Option<(f64, f64, f64)>> {
        let model = self.model;
        if !one_way::applies(model) {
            return Ok(None);
        }
        let ws = &mut self.workspace.borrow_mut();
        let at = one_way::factorize(model, theta, ws)?;
        let a = self.combination[0];
        let x_inverse = 1.0 / at.x_pivot;
        let v = a * x_inverse;
        let curvature = v * v;
        let gap = self.target - a * at.beta;
        let beta = at.beta + v * x_inverse * gap / curvature;
        let pwrss = at.factor.pwrss + gap * gap / curvature;
        let k = model.divisor(self.criterion);
        let logdet = at.factor.logdet_z + if self.criterion == Criterion::Reml { at.factor.logdet_x } else { 0.0 };
        let value = logdet + k * (1.0 + LOG_2PI + (pwrss / k).ln());
        let slope = 2.0 * k * gap / (pwrss * curvature);
        let by_theta = if gradient { one_way::gradient(model, self.criterion, 2.0 * k / pwrss, beta, &at, ws) } else { f64::NAN };
        Ok(Some((value, slope, by_theta)))
    }
}

impl InnerProblem for BetaProblem<'_, '_, '_> {
    fn value_and_derivative(&self, theta: f64) -> Result<(f64, f64)> {
        if let Some((value, _, by_theta)) = self.scalar(theta, true)? {
            return Ok((value, by_theta));
        }
        let (value, gradient) = self.value_and_gradient(&[theta])?;
        Ok((value, gradient[0]))
    }

    /// The criterion (internal units), dD/d(aᵀβ̃) and every parameter at θ.
    fn describe(&self, theta: &[f64]) -> Result<(f64, f64, Vec<f64>)> {
        let ws = &mut self.workspace.borrow_mut();
        let point = self.evaluate(theta, ws)?;
        let sigma = (point.pwrss / self.model.divisor(self.criterion)).sqrt();
        Ok((point.value, point.slope, self.model.user_parameters(&self.model.all_columns().lambda(theta), sigma, &point.beta)))
    }

    fn value_and_slope(&self, theta: f64) -> Result<Option<(f64, f64)>> {
        Ok(self.scalar(theta, false)?.map(|(value, slope, _)| (value, slope)))
    }
}

impl Objective for BetaProblem<'_, '_, '_> {
    fn value(&self, theta: &[f64]) -> Result<f64> {
        Ok(self.evaluate(theta, &mut self.workspace.borrow_mut())?.value)
    }

    fn value_and_gradient(&self, theta: &[f64]) -> Result<(f64, Vec<f64>)> {
        let ws = &mut self.workspace.borrow_mut();
        let point = self.evaluate(theta, ws)?;
        let scale = 2.0 * self.model.divisor(self.criterion) / point.pwrss;
        let gradient = self.polled.evaluate(|checkpoint| self.model.gradient_at_beta(self.criterion, scale, &point.beta, ws, checkpoint))?;
        Ok((point.value, gradient))
    }

    fn canonicalize(&self, theta: &mut [f64]) {
        self.model.canonical_theta(theta);
    }
}
