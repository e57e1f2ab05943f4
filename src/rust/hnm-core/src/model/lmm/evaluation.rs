//! One evaluation of the profiled deviance: the blocked Cholesky factorisation at θ (module docs
//! of [`crate::model::lmm`]), group by group with scalar kernels for q = 1, 2, and what is read
//! off it (the criteria, β̂, R_X).

use super::{Factorization, LinearMixedModel, Workspace, LOG_2PI};
use crate::error::{HnmError, Result};
use crate::model::one_way::profiled_deviance::Criterion;
use crate::numerics::dense::{
    cholesky_in_place, lambda_transposed_times, principal_submatrix, solve_lower_scaled, solve_lower_transposed, subtract_outer_product, times_lambda,
};
use crate::numerics::interrupt::{Checkpoint, Never};

impl LinearMixedModel {
    /// The profiled deviance d(θ) at the internal θ, in internal units (see the docs of the `lmm` module).
    ///
    /// # Errors
    /// `InvalidArgument` when θ has the wrong length or is not finite; `PerfectFit` when the
    /// penalised residual sum of squares vanishes.
    pub fn deviance(&self, criterion: Criterion, theta: &[f64], ws: &mut Workspace) -> Result<f64> {
        self.deviance_checked(criterion, theta, ws, &mut Checkpoint::new(&Never))
    }

    /// [`LinearMixedModel::deviance`], asking `checkpoint` during the factorisation (a dense
    /// core's, [`LinearMixedModel::factorize_checked`]).
    ///
    /// # Errors
    /// As [`LinearMixedModel::deviance`]; `Interrupted` when `checkpoint` asks to stop.
    pub(crate) fn deviance_checked(&self, criterion: Criterion, theta: &[f64], ws: &mut Workspace, checkpoint: &mut Checkpoint<'_>) -> Result<f64> {
        let factor = self.factorize_checked(theta, ws, checkpoint)?;
        Ok(self.criterion_value(criterion, &factor))
    }

    /// The criterion (ML deviance or REML criterion) at the internal θ in the data's units,
    /// as lme4 reports them: the REML criterion of an ML fit is lme4's `REMLcrit()`, say. The
    /// evaluation asks `checkpoint` (with several factors, per block of the dense core).
    ///
    /// # Errors
    /// As [`LinearMixedModel::deviance`]; `Interrupted` when `checkpoint` asks to stop.
    pub fn criterion_in_data_units(&self, criterion: Criterion, theta: &[f64], checkpoint: &mut Checkpoint<'_>) -> Result<f64> {
        let mut ws = self.workspace()?;
        Ok(self.deviance_checked(criterion, theta, &mut ws, checkpoint)? + self.unit_correction(criterion))
    }

    /// lme4's criterion (ML deviance or REML criterion, in the data's units) at lme4's θ
    /// `theta`, with its gradient in lme4's θ: what `lmer(devFunOnly = TRUE)` returns as a
    /// function, with the derivative. The criterion is d(θ̃) at the internal θ̃ of `theta`
    /// ([`LinearMixedModel::internal_theta_of`]) plus the units' correction, its gradient
    /// the internal one ([`LinearMixedModel::deviance_and_gradient`]) taken through the map
    /// θ ↦ θ̃ factor by factor (`FactorTerms::user_gradient`). The evaluation asks `checkpoint`.
    ///
    /// # Errors
    /// `ParameterLength` or `NotFinite` when `theta` is not a θ of this model; `Unsupported`
    /// for the gradient at a singular correlated term with a centred column (see
    /// `FactorTerms::user_gradient`); the errors of [`LinearMixedModel::deviance`];
    /// `Interrupted` when `checkpoint` asks to stop.
    pub fn criterion_and_gradient_at_theta(&self, criterion: Criterion, theta: &[f64], checkpoint: &mut Checkpoint<'_>) -> Result<(f64, Vec<f64>)> {
        let internal = self.internal_theta_of(theta)?;
        let mut ws = self.workspace()?;
        let (value, internal_gradient) = self.deviance_and_gradient_checked(criterion, &internal, &mut ws, checkpoint)?;
        let mut gradient = Vec::with_capacity(theta.len());
        for (terms, range) in self.factor_terms() {
            gradient.extend(terms.user_gradient(&theta[range.clone()], &internal[range.clone()], &internal_gradient[range])?);
        }
        Ok((value + self.unit_correction(criterion), gradient))
    }

    /// d(θ) and its gradient in the internal θ (see the docs of the `lmm` module).
    ///
    /// # Errors
    /// As [`LinearMixedModel::deviance`].
    pub fn deviance_and_gradient(&self, criterion: Criterion, theta: &[f64], ws: &mut Workspace) -> Result<(f64, Vec<f64>)> {
        self.deviance_and_gradient_checked(criterion, theta, ws, &mut Checkpoint::new(&Never))
    }

    /// [`LinearMixedModel::deviance_and_gradient`], asking `checkpoint` during the
    /// factorisation and the gradient's selected inverse.
    ///
    /// # Errors
    /// As [`LinearMixedModel::deviance`]; `Interrupted` when `checkpoint` asks to stop.
    pub(crate) fn deviance_and_gradient_checked(
        &self, criterion: Criterion, theta: &[f64], ws: &mut Workspace, checkpoint: &mut Checkpoint<'_>,
    ) -> Result<(f64, Vec<f64>)> {
        let factor = self.factorize_checked(theta, ws, checkpoint)?;
        let value = self.criterion_value(criterion, &factor);
        let beta = self.internal_beta(ws);
        let gradient = self.gradient_at_beta(criterion, self.profiled_scale(criterion, &factor), &beta, ws, checkpoint)?;
        Ok((value, gradient))
    }

    pub(crate) fn criterion_value(&self, criterion: Criterion, f: &Factorization) -> f64 {
        match criterion {
            Criterion::Ml => f.logdet_z + self.n_obs * (1.0 + LOG_2PI + (f.pwrss / self.n_obs).ln()),
            Criterion::Reml => {
                let k = self.n_obs - self.p as f64;
                f.logdet_z + f.logdet_x + k * (1.0 + LOG_2PI + (f.pwrss / k).ln())
            }
        }
    }

    /// The blocked Cholesky factorisation at θ (docs of the `lmm` module), leaving L_j, T_j and L_F in `ws`.
    pub(crate) fn factorize(&self, theta: &[f64], ws: &mut Workspace) -> Result<Factorization> {
        self.factorize_checked(theta, ws, &mut Checkpoint::new(&Never))
    }

    /// [`LinearMixedModel::factorize`], asking `checkpoint` in the factorisation of a dense
    /// core (crossed factors: minutes at MovieLens 32M's shape), per level of the first factor
    /// and per block of the dense kernels.
    ///
    /// # Errors
    /// As [`LinearMixedModel::deviance`]; `Interrupted` when `checkpoint` asks to stop (the
    /// workspace then holds no factorisation, and the next one starts afresh).
    pub(crate) fn factorize_checked(&self, theta: &[f64], ws: &mut Workspace, checkpoint: &mut Checkpoint<'_>) -> Result<Factorization> {
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
        let half_logdet_z = match &self.several {
            Some(several) => half_logdet_z + self.factorize_core(several, theta, ws, checkpoint)?,
            None => {
                // A literal p + 1 for the common widths, so that the loops over [X y] unroll.
                with_literal!(self.p + 1, p1 in [2, 3, 4, 5, 6, 7, 8] => self.off_diagonal_blocks(p1, ws));
                half_logdet_z
            }
        };
        let factor = self.finish_factorization(half_logdet_z, ws)?;
        ws.factored = Some((self.revision, theta.to_vec(), factor));
        Ok(factor)
    }

    /// The factorisation at θ that `ws` holds when the last one taken in it was of this
    /// model's blocks at θ, as after a search or a gradient evaluation there; else taken anew.
    pub(crate) fn factorization_at(&self, theta: &[f64], ws: &mut Workspace) -> Result<Factorization> {
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

    /// 2/σ̂² with σ̂² = r²/N (ML) or r²/(N − p) (REML): the scale of the gradient's quadratic
    /// term in the profiled deviance.
    fn profiled_scale(&self, criterion: Criterion, f: &Factorization) -> f64 {
        2.0 * self.divisor(criterion) / f.pwrss
    }

    /// N (ML) or N − p (REML), the divisor of σ̂².
    pub(crate) fn divisor(&self, criterion: Criterion) -> f64 {
        match criterion {
            Criterion::Ml => self.n_obs,
            Criterion::Reml => self.n_obs - self.p as f64,
        }
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
    fn finish_factorization(&self, half_logdet_z: f64, ws: &mut Workspace) -> Result<Factorization> {
        let (p, p1) = (self.p, self.p + 1);
        for a in 0..p1 {
            for c in a + 1..p1 {
                ws.lf[a * p1 + c] = ws.lf[c * p1 + a];
            }
        }
        // The X block, kept (in a buffer the gradient fills later) to tell which block failed.
        for a in 0..p {
            ws.x_inverse[a * p..(a + 1) * p].copy_from_slice(&ws.lf[a * p1..a * p1 + p]);
        }
        let last = (p1 - 1) * p1 + (p1 - 1);
        let pwrss_before = ws.lf[last];
        if !cholesky_in_place(&mut ws.lf, p1) {
            // The X block first: its failure means X is singular given Z, the y pivot a perfect fit.
            return Err(if !cholesky_in_place(&mut ws.x_inverse, p) {
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

    /// β̂ in internal units from L_F: R_X⁻ᵀ l_y.
    pub(crate) fn internal_beta(&self, ws: &Workspace) -> Vec<f64> {
        let (p, p1) = (self.p, self.p + 1);
        let rx = self.x_factor(ws);
        let mut beta: Vec<f64> = ws.lf[p * p1..p * p1 + p].to_vec();
        solve_lower_transposed(&rx, p, &mut beta, 1);
        beta
    }

    /// R_X, the leading p × p block of L_F.
    pub(crate) fn x_factor(&self, ws: &Workspace) -> Vec<f64> {
        self.x_block_of(&ws.lf)
    }

    /// The X block (leading p × p) of a (p + 1) × (p + 1) matrix over [X y].
    pub(crate) fn x_block_of(&self, m: &[f64]) -> Vec<f64> {
        principal_submatrix(m, self.p + 1, &(0..self.p).collect::<Vec<_>>())
    }
}
