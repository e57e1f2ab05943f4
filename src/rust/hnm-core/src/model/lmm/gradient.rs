//! The analytic gradient of the profiled deviance in θ (module docs of [`crate::model::lmm`]),
//! from the factorisation an evaluation left in the workspace: per group, with scalar kernels
//! for q = 1, 2.

use super::{LinearMixedModel, Workspace};
use crate::error::Result;
use crate::model::one_way::profiled_deviance::Criterion;
use crate::numerics::dense::{
    dot, dot_strided, inverse_from_factor, inverse_lower, lambda_transposed_times, solve_lower_scaled, solve_lower_transposed_scaled,
};
use crate::numerics::interrupt::Checkpoint;

impl LinearMixedModel {
    /// w = (−β, 1) and, for REML, R_X⁻¹ (`ws.x_inverse`): what every group's gradient term
    /// needs; true for REML.
    pub(crate) fn gradient_setup(&self, criterion: Criterion, beta: &[f64], ws: &mut Workspace) -> bool {
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

    /// The gradient in θ of log|A| + (log|C|, REML) + r²(θ)·scale/2 with β at β̂(θ): at
    /// scale = 2/σ̂² the gradient of the profiled deviance, at 2/σ² that of the deviance with σ
    /// held at σ (the envelope theorem in β and σ: docs of the `lmm` module).
    ///
    /// # Errors
    /// As [`LinearMixedModel::gradient_at_beta`].
    pub(crate) fn gradient(&self, criterion: Criterion, scale: f64, ws: &mut Workspace, checkpoint: &mut Checkpoint<'_>) -> Result<Vec<f64>> {
        let beta = self.internal_beta(ws);
        self.gradient_at_beta(criterion, scale, &beta, ws, checkpoint)
    }

    /// [`LinearMixedModel::gradient`] with β held at `beta` (internal units) instead of β̂(θ):
    /// the envelope theorem then applies to the random effects alone, so this is the gradient
    /// of the criterion at that β (or at a β that minimises it under a constraint on β). With
    /// several factors the selected inverse asks `checkpoint` per block (minutes at MovieLens
    /// 32M's shape); the gradient of one factor is one pass over its levels and asks nothing.
    ///
    /// # Errors
    /// `Interrupted` when `checkpoint` asks to stop.
    pub(crate) fn gradient_at_beta(
        &self, criterion: Criterion, scale: f64, beta: &[f64], ws: &mut Workspace, checkpoint: &mut Checkpoint<'_>,
    ) -> Result<Vec<f64>> {
        let reml = self.gradient_setup(criterion, beta, ws);
        if let Some(several) = &self.several {
            return self.gradient_several(several, reml, scale, ws, checkpoint);
        }
        Ok(match self.q {
            1 => with_literal!(self.p + 1, p1 in [2, 3, 4, 5, 6, 7, 8] => self.gradient_one(p1, reml, scale, ws)),
            2 => with_literal!(self.p + 1, p1 in [2, 3, 4, 5, 6, 7, 8] => self.gradient_two(p1, reml, scale, ws)),
            3 => self.gradient_q(3, reml, scale, ws),
            q => self.gradient_q(q, reml, scale, ws),
        })
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
}
