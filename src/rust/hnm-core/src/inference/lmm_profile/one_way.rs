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
