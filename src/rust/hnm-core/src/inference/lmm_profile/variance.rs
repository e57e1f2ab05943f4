//! The profiles of the variance parameters: the SDs and correlations of the random effects and σ,
//! all coordinates of one inner problem.
//!
//! With β profiled and σ explicit (k = N for ML, N − p for REML),
//!
//! D(Λ, σ) = log|A(Λ)| [+ log|C(Λ)|] + k log(2πσ²) + r²(Λ)/σ²,
//!
//! is minimised over φ = (SDs, correlation angles, log σ) without the profiled one, through
//! Λ = T S C / σ: S = diag(SD), T the columns' scales and C the Cholesky factor of the
//! correlation matrix of each block, whose row k is the unit vector with hyperspherical
//! angles a ∈ ℝᵏ (entry j < k is (Π_{t<j} sin a_t) cos a_j, the diagonal Π_{t<k} sin a_t).
//! Correlations of ±1 are the smooth points a = 0, π. This needs Λ in the data's units to be
//! triangular, so the profile works on a copy of the model whose random-effects columns are
//! not centred (only scaled) and, for a correlation, have its pair of columns first in their
//! block, where the correlation is cos a of the second row's one angle. The gradient in φ is
//! ∂D/∂Λ (the model's analytic gradient at fixed σ) through the chain rule, plus
//! ∂D/∂log σ = 2k − 2r²/σ² − Σ Λ ∘ ∂D/∂Λ. With several grouping factors Z and Λ are every
//! factor's columns side by side (module docs of [`super`]), and the copy maps each factor's
//! blocks and the blocks that couple the factors.

use std::cell::RefCell;

use super::{one_way, AllColumns, InnerProblem, Kind};
use crate::error::Result;
use crate::model::lmm::structure::{semidefinite_cholesky, theta_layout, Affine};
use crate::model::lmm::{next_revision, LinearMixedModel, LmmFit, Term, Workspace, LOG_2PI};
use crate::model::one_way::profiled_deviance::Criterion;
use crate::numerics::dense::{congruence, multiply};
use crate::numerics::interrupt::Polled;
use crate::numerics::optim::Objective;

/// The coordinates φ of the variance parameters (module docs): one scaled SD per column of
/// Z, then each block's angles row by row, then log σ in internal units.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    q: usize,
    /// For each angle: (row of Z, first column of its block, index within the row).
    pub(super) angles: Vec<(usize, usize, usize)>,
    /// Each column's block (first column, size).
    block_of: Vec<(usize, usize)>,
    /// The sizes of Λ's blocks.
    blocks: Vec<usize>,
    /// θ's positions in Λ.
    positions: Vec<(usize, usize)>,
}

impl Layout {
    pub(super) fn new(blocks: &[usize]) -> Layout {
        let (mut angles, mut block_of) = (Vec::new(), Vec::new());
        let mut offset = 0;
        for &size in blocks {
            for k in 0..size {
                block_of.push((offset, size));
                angles.extend((0..k).map(|t| (offset + k, offset, t)));
            }
            offset += size;
        }
        Layout { q: block_of.len(), angles, block_of, blocks: blocks.to_vec(), positions: theta_layout(blocks).0 }
    }

    fn len(&self) -> usize {
        self.q + self.angles.len() + 1
    }

    pub(super) fn log_sigma(&self) -> usize {
        self.len() - 1
    }

    /// The lower bounds: SDs ≥ 0, angles and log σ free.
    pub(super) fn lower(&self) -> Vec<f64> {
        (0..self.len()).map(|i| if i < self.q { 0.0 } else { f64::NEG_INFINITY }).collect()
    }

    /// Row `r` of its block's correlation factor C (entries at the block's columns) from the
    /// angles φ, and with `derivative = Some(t)` its derivative in the row's angle t.
    fn correlation_row(&self, phi: &[f64], r: usize, derivative: Option<usize>) -> Vec<f64> {
        let (offset, _) = self.block_of[r];
        let k = r - offset;
        let first = self.angles.iter().position(|&(row, _, _)| row == r).unwrap_or(0);
        let angle = |t: usize| phi[self.q + first + t];
        let mut row = vec![0.0; k + 1];
        for (j, entry) in row.iter_mut().enumerate() {
            let mut value = 1.0;
            for t in 0..j.min(k) {
                value *= if derivative == Some(t) { angle(t).cos() } else { angle(t).sin() };
            }
            if j < k {
                value *= if derivative == Some(j) { -angle(j).sin() } else { angle(j).cos() };
            }
            if derivative.is_some_and(|t| t > j) {
                value = 0.0;
            }
            *entry = value;
        }
        row
    }

    /// Λ (q × q) and σ in the copy's internal units at φ: Λ[r][c] = x_r C[r][c] / σ, x the
    /// SDs of the copy's scaled columns (the column scales folded into them).
    pub(super) fn lambda(&self, phi: &[f64]) -> (Vec<f64>, f64) {
        let q = self.q;
        let sigma = phi[self.log_sigma()].exp();
        let mut lambda = vec![0.0; q * q];
        for r in 0..q {
            let (offset, _) = self.block_of[r];
            for (j, c) in self.correlation_row(phi, r, None).into_iter().enumerate() {
                lambda[r * q + offset + j] = phi[r] * c / sigma;
            }
        }
        (lambda, sigma)
    }

    /// φ from the relative covariance of the internal random effects (Σ/σ², q × q) and σ:
    /// SDs √Σ_rr, and the angles of the rows of the Cholesky factor of the correlations
    /// (a_t = atan2(‖c_{t+1..}‖, c_t), so each in [0, π]); a zero SD gives an uncorrelated row.
    fn coordinates(&self, relative: &[f64], sigma: f64) -> Vec<f64> {
        let q = self.q;
        let sd: Vec<f64> = (0..q).map(|r| relative[r * q + r].max(0.0).sqrt()).collect();
        let mut correlation = vec![0.0; q * q];
        for r in 0..q {
            for c in 0..q {
                correlation[r * q + c] = if r == c {
                    1.0
                } else if sd[r] > 0.0 && sd[c] > 0.0 && self.block_of[r].0 == self.block_of[c].0 {
                    (relative[r * q + c] / (sd[r] * sd[c])).clamp(-1.0, 1.0)
                } else {
                    0.0
                };
            }
        }
        let factor = semidefinite_cholesky(&correlation, q, &self.blocks);
        let mut phi: Vec<f64> = sd.iter().map(|s| s * sigma).collect();
        for &(r, offset, t) in &self.angles {
            let row = &factor[r * q + offset..r * q + r + 1];
            let rest = row[t + 1..].iter().map(|v| v * v).sum::<f64>().sqrt();
            phi.push(if rest == 0.0 && row[t] == 0.0 { std::f64::consts::FRAC_PI_2 } else { rest.atan2(row[t]) });
        }
        phi.push(sigma.ln());
        phi
    }

    /// The starts to try again from an inner optimum φ (full, `fixed` the profiled
    /// coordinate) that has a free SD of a correlated block at its bound 0: for each such
    /// block, φ with those SDs at half the block's largest SD (a tenth of σ when all are 0)
    /// and every free angle of the block at 0, then at π (correlations +1 and −1, the fit's
    /// own restarts). At a zero SD x_c the criterion does not depend on the angles that
    /// multiply it, and its slope in x_c is linear in their cosines (the covariances
    /// x_c x_r cos a are the only first-order terms), so a point on the bound with the angles
    /// where that slope is ≥ 0 (a = π/2: the slope is 0, a saddle) is a stationary point the
    /// bounded Newton method stops at, while the mirrored angle would lead into the interior
    /// to a lower minimum (0.035 lower at the upper limit of `.sig03` of issue 25's seed 56,
    /// REML). Empty when no such SD is at 0, so ordinary profiles search no more.
    pub(super) fn singular_starts(&self, phi: &[f64], fixed: usize) -> Vec<Vec<f64>> {
        let mut starts = Vec::new();
        let mut offset = 0;
        for &size in &self.blocks {
            let block = offset..offset + size;
            offset += size;
            let zero: Vec<usize> = block.clone().filter(|&r| r != fixed && phi[r] <= 0.0).collect();
            let free_angles: Vec<usize> = (0..self.angles.len()).filter(|&i| self.angles[i].1 == block.start && self.q + i != fixed).collect();
            if size < 2 || zero.is_empty() || free_angles.is_empty() {
                continue;
            }
            let largest = block.clone().map(|r| phi[r]).fold(0.0, f64::max);
            let sd = if largest > 0.0 { 0.5 * largest } else { 0.1 * phi[self.log_sigma()].exp() };
            for angle in [0.0, std::f64::consts::PI] {
                let mut start = phi.to_vec();
                for &r in &zero {
                    start[r] = sd;
                }
                for &i in &free_angles {
                    start[self.q + i] = angle;
                }
                starts.push(start);
            }
        }
        starts
    }

    /// ∂D/∂φ from ∂D/∂Λ (`g`, q × q) at φ, with `residual` = 2k − 2r²/σ² the explicit σ term.
    pub(super) fn chain_rule(&self, phi: &[f64], g: &[f64], residual: f64) -> Vec<f64> {
        let q = self.q;
        let (lambda, sigma) = self.lambda(phi);
        let mut gradient = vec![0.0; self.len()];
        for r in 0..q {
            let (offset, _) = self.block_of[r];
            let row = self.correlation_row(phi, r, None);
            gradient[r] = row.iter().enumerate().map(|(j, c)| g[r * q + offset + j] * c).sum::<f64>() / sigma;
        }
        for (i, &(r, offset, t)) in self.angles.iter().enumerate() {
            let row = self.correlation_row(phi, r, Some(t));
            gradient[q + i] = phi[r] * row.iter().enumerate().map(|(j, c)| g[r * q + offset + j] * c).sum::<f64>() / sigma;
        }
        gradient[self.log_sigma()] = residual - lambda.iter().zip(g).map(|(l, d)| l * d).sum::<f64>();
        gradient
    }
}

impl LinearMixedModel {
    /// A copy of the model whose random-effects columns (every factor's, [`AllColumns`]) are
    /// the data's, divided by a power of two and not centred, in the order `order` (a
    /// permutation within blocks): Z' = Z̃ K P D with K the map from the data's columns to the
    /// internal ones (Z = Z̃ K), P the permutation and D the scales, so with M = KPD (block
    /// diagonal over the factors) each level's S'_l = M_fᵀ S_l M_f and B'_l = M_fᵀ B_l, and
    /// each block coupling factors f and g, C' = M_fᵀ C M_g. Its Λ is the data's Cholesky
    /// factor up to the column scales, which the profile needs.
    ///
    /// # Errors
    /// `TooLarge` when the copy does not fit in memory.
    pub(super) fn in_data_coordinates(&self, order: &[usize]) -> Result<LinearMixedModel> {
        let all = self.all_columns();
        let (q, p1) = (all.q, self.p + 1);
        let mut map = vec![0.0; q * q];
        let mut offset = 0;
        for &size in &all.blocks {
            let intercept = (offset..offset + size).find(|&i| all.random[i].term == Term::Intercept);
            for (i, &f) in order.iter().enumerate().skip(offset).take(size) {
                // z_f/t_f = z̃_f + (s_f/t_f)·1, z̃ the internal column.
                map[f * q + i] = 1.0;
                if let Some(i0) = intercept.filter(|&i0| i0 != f) {
                    map[i0 * q + i] = all.random[f].raw_shift / all.random[f].scale;
                }
            }
            offset += size;
        }
        // Each factor's block of M, its columns' Affine maps in the new order and its map
        // back to the data's units.
        let parts: Vec<(Vec<f64>, Vec<Affine>, Vec<f64>)> = all
            .factors
            .iter()
            .map(|&(o, size)| {
                let part = (0..size * size).map(|i| map[(o + i / size) * q + o + i % size]).collect();
                let random = order[o..o + size].iter().map(|&f| Affine { shift: 0.0, raw_shift: 0.0, ..all.random[f] }).collect();
                let mut to_user = vec![0.0; size * size];
                for (i, &f) in order[o..o + size].iter().enumerate() {
                    to_user[(f - o) * size + i] = 1.0 / all.random[f].scale;
                }
                (part, random, to_user)
            })
            .collect();
        let mut copy = self.try_clone()?;
        copy.revision = next_revision();
        let (q0, first) = (self.q, &parts[0]);
        map_level_blocks(&mut copy.zz, &mut copy.zxy, &first.0, q0, p1);
        copy.random = first.1.clone();
        copy.structure.random = order[..q0].iter().map(|&f| self.structure.random[f]).collect();
        copy.to_user_random = first.2.clone();
        if let Some(several) = copy.several.as_mut() {
            let crate::model::lmm::factors::Several { others, fronts, pairs, values, nested, .. } = &mut **several;
            for (other, (part, random, to_user)) in others.iter_mut().zip(&parts[1..]) {
                map_level_blocks(&mut other.zz, &mut other.zxy, part, other.q, p1);
                other.random = random.clone();
                other.to_user_random = to_user.clone();
            }
            // A coupling C = Z_rᵀZ_c of factor r's columns (rows of C) with an earlier factor c's
            // becomes M_rᵀ C M_c.
            let map_coupling = |block: &mut [f64], row_factor: usize, column_factor: usize| {
                let (rows, columns) = (&parts[row_factor].0, &parts[column_factor].0);
                let (qr, qc) = (all.factors[row_factor].1, all.factors[column_factor].1);
                let mut c_m = vec![0.0; qr * qc];
                multiply(block, columns, qr, qc, qc, &mut c_m);
                let transposed: Vec<f64> = (0..qr * qr).map(|i| rows[(i % qr) * qr + i / qr]).collect();
                multiply(&transposed, &c_m, qr, qr, qc, block);
            };
            // Fronts couple a later factor (rows) to the first; pairs two later factors.
            let couplings = fronts.iter().map(|c| (c, 0)).chain(pairs.iter().map(|c| (c, c.column.0 + 1)));
            for (coupling, column_factor) in couplings {
                let size = all.factors[coupling.row.0 + 1].1 * all.factors[column_factor].1;
                map_coupling(&mut values[coupling.value..coupling.value + size], coupling.row.0 + 1, column_factor);
            }
            // A nested chain evaluates from its own copy of the couplings, in its levels' order.
            if let Some(chain) = nested.as_mut() {
                chain.map_couplings(|block, row_factor, column_factor| map_coupling(block, row_factor, column_factor));
            }
        }
        Ok(copy)
    }
}

/// S_l ← Mᵀ S_l M and B_l ← Mᵀ B_l for each level's blocks (q × q and q × `p1`) of one factor.
fn map_level_blocks(zz: &mut [f64], zxy: &mut [f64], map: &[f64], q: usize, p1: usize) {
    let transposed: Vec<f64> = (0..q * q).map(|i| map[(i % q) * q + i / q]).collect();
    for (s, b) in zz.chunks_exact_mut(q * q).zip(zxy.chunks_exact_mut(q * p1)) {
        s.copy_from_slice(&congruence(&transposed, s, q));
        let mut mapped = vec![0.0; q * p1];
        multiply(&transposed, b, q, q, p1, &mut mapped);
        b.copy_from_slice(&mapped);
    }
}

/// The inner problem of a variance parameter on the copy of `model` in data coordinates with
/// its random-effects columns in `order`, the coordinate `fixed(layout)` held, and the
/// estimate's free coordinates.
///
/// # Errors
/// `TooLarge` when the copy does not fit in memory.
pub(super) fn variance_kind(model: &LinearMixedModel, fit: &LmmFit, order: Vec<usize>, fixed: impl Fn(&Layout) -> usize) -> Result<(Kind, Vec<f64>)> {
    let AllColumns { q, blocks, random, .. } = model.all_columns();
    let layout = Layout::new(&blocks);
    let covariance = model.all_columns().covariance(fit);
    // Σ/σ² of the copy's effects (b' = D Pᵀ b / t_y) and σ' = σ / t_y.
    let mut relative = vec![0.0; q * q];
    for r in 0..q {
        for c in 0..q {
            let (fr, fc) = (order[r], order[c]);
            relative[r * q + c] = covariance[fr * q + fc] * random[fr].scale * random[fc].scale / (fit.sigma * fit.sigma);
        }
    }
    let estimate = layout.coordinates(&relative, fit.sigma / model.response.scale);
    let fixed = fixed(&layout);
    let origin = estimate.iter().enumerate().filter(|&(i, _)| i != fixed).map(|(_, v)| *v).collect();
    let copy = Box::new(model.in_data_coordinates(&order)?);
    let lower = layout.lower().into_iter().enumerate().filter(|&(i, _)| i != fixed).map(|(_, v)| v).collect();
    Ok((Kind::Variance { copy, layout, fixed, estimate, lower }, origin))
}

/// The inner problem of a variance parameter's profile: φ without coordinate `fixed`, held
/// at `value`, on the model in data coordinates; its evaluations ask `polled`
/// ([`Polled::evaluate`]).
pub(super) struct VarianceProblem<'m, 'c, 'a> {
    model: &'m LinearMixedModel,
    criterion: Criterion,
    layout: &'m Layout,
    fixed: usize,
    value: f64,
    /// The profile's workspace of `model`, shared by its points.
    workspace: &'m RefCell<Workspace>,
    polled: &'m Polled<'c, 'a>,
}

impl<'m, 'c, 'a> VarianceProblem<'m, 'c, 'a> {
    pub(super) fn new(
        model: &'m LinearMixedModel, criterion: Criterion, layout: &'m Layout, fixed: usize, value: f64, workspace: &'m RefCell<Workspace>,
        polled: &'m Polled<'c, 'a>,
    ) -> Self {
        VarianceProblem { model, criterion, layout, fixed, value, workspace, polled }
    }

    /// The full φ from the free coordinates.
    fn full(&self, free: &[f64]) -> Vec<f64> {
        let mut phi = free.to_vec();
        phi.insert(self.fixed, self.value);
        phi
    }

    /// D at φ (internal units), with the factorisation left in `ws`; also r² and σ.
    fn evaluate(&self, phi: &[f64], ws: &mut Workspace) -> Result<(f64, f64, Vec<f64>, f64)> {
        let model = self.model;
        let (lambda, sigma) = self.layout.lambda(phi);
        let q = self.layout.q;
        let theta: Vec<f64> = self.layout.positions.iter().map(|&(r, c)| lambda[r * q + c]).collect();
        let f = self.polled.evaluate(|checkpoint| model.factorize_checked(&theta, ws, checkpoint))?;
        let k = model.divisor(self.criterion);
        let logdet = f.logdet_z + if self.criterion == Criterion::Reml { f.logdet_x } else { 0.0 };
        let value = logdet + k * (LOG_2PI + 2.0 * sigma.ln()) + f.pwrss / (sigma * sigma);
        Ok((value, f.pwrss, lambda, sigma))
    }

    fn gradient(&self, phi: &[f64], pwrss: f64, sigma: f64, ws: &mut Workspace) -> Result<Vec<f64>> {
        let model = self.model;
        let q = self.layout.q;
        let by_theta = self.polled.evaluate(|checkpoint| model.gradient(self.criterion, 2.0 / (sigma * sigma), ws, checkpoint))?;
        let mut g = vec![0.0; q * q];
        for (&(r, c), d) in self.layout.positions.iter().zip(by_theta) {
            g[r * q + c] = d;
        }
        let residual = 2.0 * model.divisor(self.criterion) - 2.0 * pwrss / (sigma * sigma);
        Ok(self.layout.chain_rule(phi, &g, residual))
    }
}

impl VarianceProblem<'_, '_, '_> {
    /// D, ∂D/∂(the free coordinate) and ∂D/∂(the fixed one) when Z has one column,
    /// φ = (SD, log σ): Λ = SD/σ, so ∂D/∂SD = (∂D/∂Λ)/σ and ∂D/∂log σ = 2k − 2r²/σ² − Λ ∂D/∂Λ
    /// (the chain rule of the module docs without its general maps, whose buffers would cost
    /// more than the one-column factorisation itself on a few groups: every profile of a
    /// random-intercept model), and for the one-way model by its scalar evaluations
    /// ([`one_way`]). The same operations as [`VarianceProblem::evaluate`] and
    /// [`VarianceProblem::gradient`], so the same numbers.
    fn one_column(&self, free: f64, ws: &mut Workspace) -> Result<(f64, f64, f64)> {
        let model = self.model;
        let (sd, log_sigma) = if self.fixed == 0 { (self.value, free) } else { (free, self.value) };
        let sigma = log_sigma.exp();
        let lambda = sd / sigma;
        let scale = 2.0 / (sigma * sigma);
        let (f, by_lambda) = if one_way::applies(model) {
            let at = one_way::factorize(model, lambda, ws)?;
            (at.factor, one_way::gradient(model, self.criterion, scale, at.beta, &at, ws))
        } else {
            let f = self.polled.evaluate(|checkpoint| model.factorize_checked(&[lambda], ws, checkpoint))?;
            (f, self.polled.evaluate(|checkpoint| model.gradient(self.criterion, scale, ws, checkpoint))?[0])
        };
        let k = model.divisor(self.criterion);
        let logdet = f.logdet_z + if self.criterion == Criterion::Reml { f.logdet_x } else { 0.0 };
        let value = logdet + k * (LOG_2PI + 2.0 * sigma.ln()) + f.pwrss / (sigma * sigma);
        let (by_sd, by_log_sigma) = (by_lambda / sigma, 2.0 * k - 2.0 * f.pwrss / (sigma * sigma) - lambda * by_lambda);
        Ok(if self.fixed == 0 { (value, by_log_sigma, by_sd) } else { (value, by_sd, by_log_sigma) })
    }
}

impl InnerProblem for VarianceProblem<'_, '_, '_> {
    fn value_and_derivative(&self, free: f64) -> Result<(f64, f64)> {
        if self.layout.q == 1 {
            let (value, derivative, _) = self.one_column(free, &mut self.workspace.borrow_mut())?;
            return Ok((value, derivative));
        }
        let (value, gradient) = self.value_and_gradient(&[free])?;
        Ok((value, gradient[0]))
    }

    /// D, ∂D/∂(the fixed coordinate) and every parameter (in the model's order of the
    /// columns) at the free coordinates.
    fn describe(&self, free: &[f64]) -> Result<(f64, f64, Vec<f64>)> {
        let ws = &mut self.workspace.borrow_mut();
        let phi = self.full(free);
        let (value, pwrss, lambda, sigma) = self.evaluate(&phi, ws)?;
        let slope = self.gradient(&phi, pwrss, sigma, ws)?[self.fixed];
        // The copy's map to the data's units undoes its column order.
        let parameters = self.model.user_parameters(&lambda, sigma, &self.model.internal_beta(ws));
        Ok((value, slope, parameters))
    }

    fn value_and_slope(&self, free: f64) -> Result<Option<(f64, f64)>> {
        if self.layout.q != 1 {
            return Ok(None);
        }
        let (value, _, slope) = self.one_column(free, &mut self.workspace.borrow_mut())?;
        Ok(Some((value, slope)))
    }
}

impl Objective for VarianceProblem<'_, '_, '_> {
    fn value(&self, free: &[f64]) -> Result<f64> {
        Ok(self.evaluate(&self.full(free), &mut self.workspace.borrow_mut())?.0)
    }

    fn value_and_gradient(&self, free: &[f64]) -> Result<(f64, Vec<f64>)> {
        let ws = &mut self.workspace.borrow_mut();
        if self.layout.q == 1 && free.len() == 1 {
            let (value, derivative, _) = self.one_column(free[0], ws)?;
            return Ok((value, vec![derivative]));
        }
        let phi = self.full(free);
        let (value, pwrss, _, sigma) = self.evaluate(&phi, ws)?;
        let mut gradient = self.gradient(&phi, pwrss, sigma, ws)?;
        gradient.remove(self.fixed);
        Ok((value, gradient))
    }
}
