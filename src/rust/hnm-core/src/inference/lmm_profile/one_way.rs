//! The one-way model's evaluations (one grouping factor, a random intercept, q = 1, and one
//! fixed effect, p = 1) in scalar variables, for the profiles' one-dimensional inner problems.
//!
//! With Λ = λ the factorisation of the model's blocks (module docs of [`crate::model::lmm`]) is
//! in closed form: for group j with S_j = zᵀz and B_j = (zᵀx, zᵀy), A_j = λ²S_j + 1 and
//! L_j = √A_j; F = [XᵀX XᵀY; YᵀX YᵀY] − Σ_j (λ/L_j)² B_jᵀB_j, whose 2 × 2 Cholesky factor
//! (l_xx, l_yx, l_yy) gives log|A| = 2 Σ log L_j, log|C| = 2 log l_xx, r² = l_yy² and
//! β̂ = l_yx/l_xx. The derivative in λ of log|A| [+ log|C|] + (s/2) r²(β) at a given β is
//! Σ_j 2T_j/A_j − s v_j u_j [− 2 h_j k_j (1 − T_j k_j)], with T_j = S_jλ, e_j = B_j·(−β, 1),
//! u_j = λe_j/A_j, v_j = e_j − T_j u_j, h_j = (zᵀx/l_xx)² and k_j = λ/A_j.
//!
//! These are [`LinearMixedModel::factorize`], [`LinearMixedModel::internal_beta`] and
//! [`LinearMixedModel::gradient_at_beta`] for q = p = 1 operation for operation, so they give
//! the same numbers to the last bit; only the general code's Λ and L_F matrices, its
//! bookkeeping of the factorisation (its θ kept in the workspace) and the vectors it returns
//! are left out. Every point of the one-way model's profiles is a one-dimensional search of
//! a few such evaluations on a few groups (Dyestuff: 6), where those allocations cost more
//! than the arithmetic.

use crate::error::{HnmError, Result};
use crate::model::lmm::{Factorization, LinearMixedModel, Workspace};
use crate::model::one_way::profiled_deviance::Criterion;

/// One factorisation at λ: the criterion's parts, β̂ (internal units) and l_xx.
#[derive(Debug, Clone, Copy)]
pub(super) struct Factored {
    pub(super) factor: Factorization,
    pub(super) beta: f64,
    lambda: f64,
    /// l_xx, R_X.
    pub(super) x_pivot: f64,
}

/// True when the model is the one-way model (one factor, q = p = 1), whose evaluations
/// [`factorize`] and [`gradient`] compute.
pub(super) fn applies(model: &LinearMixedModel) -> bool {
    model.q == 1 && model.p == 1 && model.several.is_none()
}

/// [`LinearMixedModel::factorize`] at θ = (`lambda`) for a model that [`applies`], with each
/// group's T_j and 1/L_j left in `ws` for [`gradient`].
///
/// # Errors
/// `NotFinite` for a λ that is not finite; `Optimizer` when X is singular given Z;
/// `PerfectFit` when the penalised residual sum of squares vanishes.
pub(super) fn factorize(model: &LinearMixedModel, lambda: f64, ws: &mut Workspace) -> Result<Factored> {
    // The buffers no longer hold the general code's factorisation of the θ it recorded.
    ws.factored = None;
    if !lambda.is_finite() {
        return Err(HnmError::NotFinite { argument: "theta", index: 0 });
    }
    let (mut half_logdet_z, mut product) = (0.0, 1.0);
    for ((&s, t), inverse) in model.zz.iter().zip(ws.ts.iter_mut()).zip(ws.inverse_diagonal.iter_mut()) {
        *t = s * lambda;
        let l = (lambda * *t + 1.0).sqrt();
        *inverse = 1.0 / l;
        product *= l;
        if product > 1e200 {
            half_logdet_z += product.ln();
            product = 1.0;
        }
    }
    half_logdet_z += product.ln();
    let (mut xx, mut yx, mut yy) = (model.xy[0], model.xy[2], model.xy[3]);
    for (b, &inverse) in model.zxy.chunks_exact(2).zip(ws.inverse_diagonal.iter()) {
        let scale = lambda * inverse;
        let (r0, r1) = (scale * b[0], scale * b[1]);
        xx -= r0 * r0;
        yx -= r1 * r0;
        yy -= r1 * r1;
    }
    // The 2 × 2 Cholesky factor of F, the X pivot first (its failure: X singular given Z).
    if !(xx > 0.0) {
        return Err(HnmError::Optimizer("the fixed-effect design is singular given the random effects".into()));
    }
    let x_pivot = xx.sqrt();
    let l_yx = yx / x_pivot;
    let pivot = yy - l_yx * l_yx;
    if !(pivot > 0.0) {
        return Err(HnmError::PerfectFit);
    }
    let r = pivot.sqrt();
    let pwrss = r * r;
    if !(pwrss > f64::EPSILON * yy.abs()) {
        return Err(HnmError::PerfectFit);
    }
    let factor = Factorization { logdet_z: 2.0 * half_logdet_z, logdet_x: 2.0 * x_pivot.ln(), pwrss };
    Ok(Factored { factor, beta: l_yx * (1.0 / x_pivot), lambda, x_pivot })
}

/// [`LinearMixedModel::gradient_at_beta`]'s one entry at the factorisation `at` (the last one
/// taken in `ws`) with β held at `beta` (internal units): the derivative in λ of
/// log|A| [+ log|C|, REML] + r²(β)·`scale`/2.
pub(super) fn gradient(model: &LinearMixedModel, criterion: Criterion, scale: f64, beta: f64, at: &Factored, ws: &Workspace) -> f64 {
    let reml = criterion == Criterion::Reml;
    let (lambda, x_inverse) = (at.lambda, 1.0 / at.x_pivot);
    let mut gradient = 0.0;
    for (b, (&t, &inverse)) in model.zxy.chunks_exact(2).zip(ws.ts.iter().zip(&ws.inverse_diagonal)) {
        let e = b[0] * -beta + b[1];
        let u = lambda * e * inverse * inverse;
        let v = e - t * u;
        let a_inverse = inverse * inverse;
        gradient += 2.0 * t * a_inverse - scale * v * u;
        if reml {
            let h = (b[0] * x_inverse).powi(2);
            let k = lambda * a_inverse;
            gradient -= 2.0 * h * k * (1.0 - t * k);
        }
    }
    gradient
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Checkpoint, Column, CrossProducts, Never, Structure, Term};

    /// y ~ 1 + (1 | g) on unbalanced groups (sizes 1 to 5), with y far from 0 so that the
    /// model's internal units (a shift and a scale) are exercised; the groups' sizes, means
    /// and within sums of squares for the closed form.
    fn one_way_model() -> (LinearMixedModel, Vec<(f64, f64, f64)>) {
        let sizes = [3, 1, 5, 2, 4, 4, 2];
        let (mut y, mut g) = (Vec::new(), Vec::new());
        let mut state = 7_u64;
        for (j, &n) in sizes.iter().enumerate() {
            let effect = [0.8, -1.1, 0.3, 1.9, -0.4, 0.0, -1.6][j];
            for _ in 0..n {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let noise = (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
                y.push(1000.0 + effect + 2.0 * noise);
                g.push(j as i32 + 1);
            }
        }
        let stats = sizes
            .iter()
            .scan(0, |start, &n| {
                let rows = &y[*start..*start + n];
                *start += n;
                let mean = rows.iter().sum::<f64>() / n as f64;
                Some((n as f64, mean, rows.iter().map(|v| (v - mean).powi(2)).sum::<f64>()))
            })
            .collect();
        let pass = CrossProducts::from_columns(&[Column::Double(&y)], g.into_iter(), sizes.len(), &mut Checkpoint::new(&Never)).unwrap();
        let structure = Structure { response: 0, fixed: vec![Term::Intercept], random: vec![Term::Intercept], blocks: vec![1] };
        (LinearMixedModel::new(&pass.stats, structure).unwrap(), stats)
    }

    /// The one-way model's criterion in the data's units at θ = τ/σ with σ profiled, in closed
    /// form from the groups' (n_j, ȳ_j, SS_j): with w_j = n_j/(1 + n_jθ²) and μ̂ = Σw_jȳ_j/Σw_j,
    /// r² = Σ SS_j + w_j(ȳ_j − μ̂)², and D = Σ log(1 + n_jθ²) [+ log Σw_j, REML] + k(1 + log(2πr²/k)).
    fn closed_form(stats: &[(f64, f64, f64)], theta: f64, criterion: Criterion) -> f64 {
        let weights: Vec<f64> = stats.iter().map(|&(n, _, _)| n / (1.0 + n * theta * theta)).collect();
        let total: f64 = weights.iter().sum();
        let mu = stats.iter().zip(&weights).map(|(&(_, mean, _), w)| w * mean).sum::<f64>() / total;
        let r2: f64 = stats.iter().zip(&weights).map(|(&(_, mean, ss), w)| ss + w * (mean - mu).powi(2)).sum();
        let n_obs: f64 = stats.iter().map(|s| s.0).sum();
        let logdet: f64 = stats.iter().map(|&(n, _, _)| (1.0 + n * theta * theta).ln()).sum();
        let (k, logdet_x) = if criterion == Criterion::Reml { (n_obs - 1.0, total.ln()) } else { (n_obs, 0.0) };
        logdet + logdet_x + k * (1.0 + (2.0 * std::f64::consts::PI * r2 / k).ln())
    }

    #[test]
    fn the_scalar_evaluations_are_the_closed_form_and_the_general_code_bit_for_bit() {
        let (model, stats) = one_way_model();
        assert!(applies(&model));
        let (mut ws, mut general) = (model.workspace().unwrap(), model.workspace().unwrap());
        // lme4's θ to the internal one (a scale of the response's unit).
        let to_internal = model.internal_theta_of(&[1.0]).unwrap()[0];
        for criterion in [Criterion::Ml, Criterion::Reml] {
            for theta in [0.0, 0.05, 0.4, 1.0, 3.0, 40.0] {
                let lambda = theta * to_internal;
                let at = factorize(&model, lambda, &mut ws).unwrap();
                let expected = model.factorize(&[lambda], &mut general).unwrap();
                assert_eq!(at.factor.logdet_z.to_bits(), expected.logdet_z.to_bits());
                assert_eq!(at.factor.logdet_x.to_bits(), expected.logdet_x.to_bits());
                assert_eq!(at.factor.pwrss.to_bits(), expected.pwrss.to_bits());
                assert_eq!(at.beta.to_bits(), model.internal_beta(&general)[0].to_bits());
                for (beta, scale) in [(at.beta, 2.0 * model.divisor(criterion) / at.factor.pwrss), (at.beta + 0.3, 1.7)] {
                    let g = gradient(&model, criterion, scale, beta, &at, &ws);
                    assert_eq!(
                        g.to_bits(),
                        model.gradient_at_beta(criterion, scale, &[beta], &mut general, &mut Checkpoint::new(&Never)).unwrap()[0].to_bits()
                    );
                }
                // The criterion in the data's units is the closed form's, and its derivative
                // in λ at β̂ and σ̂ (the envelope theorem) the closed form's by Richardson's
                // extrapolation of central differences in θ.
                let value = model.criterion_value(criterion, &at.factor) + model.unit_correction(criterion);
                let reference = closed_form(&stats, theta, criterion);
                assert!((value - reference).abs() < 1e-10 * reference.abs(), "{criterion:?} {theta}: {value} {reference}");
                let slope = gradient(&model, criterion, 2.0 * model.divisor(criterion) / at.factor.pwrss, at.beta, &at, &ws);
                let h = 1e-4 * theta.max(0.01);
                let central = |h: f64| (closed_form(&stats, theta + h, criterion) - closed_form(&stats, theta - h, criterion)) / (2.0 * h);
                let numeric = (4.0 * central(h) - central(2.0 * h)) / 3.0 / to_internal;
                assert!((slope - numeric).abs() < 1e-6 * (1.0 + numeric.abs()), "{criterion:?} {theta}: {slope} {numeric}");
            }
        }
    }
}
