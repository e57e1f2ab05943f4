//! The solves through L, the selected inverse of A = ΛᵀZᵀZΛ + I on the pattern of ZᵀZ, and
//! what a model with several grouping factors reads from them: the analytic gradient and the
//! random effects (module docs of [`super`]).

use super::{transposed_times, Several, SeveralWorkspace};
use crate::error::Result;
use crate::model::lmm::{LinearMixedModel, LmmFit, RandomEffects, Workspace};
use crate::model::one_way::profiled_deviance::Criterion;
use crate::numerics::blocked::DenseKernels;
use crate::numerics::dense::{congruence, inverse_from_factor, solve_lower_transposed_scaled, times_lambda};
use crate::numerics::interrupt::Checkpoint;
use crate::numerics::memory::{collected, copied, filled, with_capacity};
use faer::linalg::triangular_solve::solve_upper_triangular_in_place;
use faer::{MatMut, MatRef, Par};

/// The smallest λ_f of every factor at which [`LinearMixedModel::log_det_from_diagonal`]
/// replaces the selected inverse. Its terms 1 − (A⁻¹)_ii carry a relative rounding error of
/// ε/(1 − (A⁻¹)_ii), which grows like 1/λ_f² as λ_f → 0 (and by λ_g²/λ_f² where another
/// factor's level g shares i's rows); from λ_f = 1e-2 that leaves the gradient's absolute
/// error orders of magnitude below the search's tolerance (1e-10 N).
const DIAGONAL_FORM_MIN_LAMBDA: f64 = 1e-2;

impl LinearMixedModel {
    /// The columns that combine [X y]: w = (−β, 1) for column 0 (u), and the columns of R_X⁻ᵀ
    /// for columns 1..=p (Û, REML), from `w` and `x_inverse` as `gradient_setup` left them.
    pub(super) fn combined(values: &dyn Fn(usize) -> f64, k: usize, w: &[f64], x_inverse: &[f64], p: usize) -> f64 {
        if k == 0 {
            w.iter().enumerate().map(|(a, w)| values(a) * w).sum()
        } else {
            let c = k - 1;
            (0..=c).map(|a| values(a) * x_inverse[c * p + a]).sum()
        }
    }

    /// A⁻¹ΛᵀZᵀ[X y] times (w | R_X⁻ᵀ) into the workspace's `solved` (random effects × `rhs`,
    /// row-major): u = A⁻¹ΛᵀZᵀ(y − Xβ) in column 0 and, with `rhs` = 1 + p, Û in the others.
    /// The forward halves are the fronts' and the core's [X y] columns of L; then one backward
    /// solve through Lᵀ, the core first.
    fn solve_modes(&self, s: &Several, rhs: usize, ws: &mut Workspace) {
        if let Some(chain) = &s.nested {
            return self.solve_modes_nested(s, chain, rhs, ws);
        }
        let (q0, p, p1, m0) = (self.q, self.p, self.p + 1, self.n.len());
        let (nr, n) = (s.core_random, s.core_order(p1));
        let first_rows = m0 * q0;
        let Workspace { l: ls, inverse_diagonal, w, x_inverse, several, .. } = ws;
        let sw = several.as_mut().expect("a workspace of a model with several factors");
        let solved = &mut sw.solved[..(first_rows + nr) * rhs];
        let core = MatRef::from_column_major_slice(sw.core.as_slice(), n, n);
        let (random, _, below, _) = core.split_at(nr, nr);
        let combine = |values: &dyn Fn(usize) -> f64, k: usize| Self::combined(values, k, w, x_inverse, p);
        for j in 0..m0 {
            let (first, last) = (s.width_start[j], s.width_start[j + 1]);
            let wj = last - first;
            let front = &sw.fronts[q0 * first..q0 * last];
            for i in 0..q0 {
                for k in 0..rhs {
                    solved[(j * q0 + i) * rhs + k] = combine(&|a| front[i * wj + wj - p1 + a], k);
                }
            }
        }
        for i in 0..nr {
            for k in 0..rhs {
                solved[(first_rows + i) * rhs + k] = combine(&|a| below[(a, i)], k);
            }
        }
        solve_upper_triangular_in_place(random.transpose(), MatMut::from_row_major_slice_mut(&mut solved[first_rows * rhs..], nr, rhs), Par::Seq);
        let (first_part, core_part) = solved.split_at_mut(first_rows * rhs);
        for j in 0..m0 {
            let (first, last) = (s.width_start[j], s.width_start[j + 1]);
            let wj = last - first;
            let front = &sw.fronts[q0 * first..q0 * last];
            let rows = &s.front_rows[first..last - p1];
            let mine = &mut first_part[j * q0 * rhs..(j + 1) * q0 * rhs];
            // Each entry's sum in a local (subtracting term by term chained every step
            // through a store and a load of the same entry).
            for i in 0..q0 {
                let front_row = &front[i * wj..i * wj + rows.len()];
                for k in 0..rhs {
                    let sum: f64 = front_row.iter().zip(rows).map(|(f, &row)| f * core_part[row * rhs + k]).sum();
                    mine[i * rhs + k] -= sum;
                }
            }
            solve_lower_transposed_scaled(&ls[j * q0 * q0..(j + 1) * q0 * q0], &inverse_diagonal[j * q0..(j + 1) * q0], q0, mine, rhs);
        }
    }

    /// The core's block of the selected inverse, (A⁻¹)_cc = (L_c L_cᵀ)⁻¹, into the
    /// workspace's `sigma_cc` (column-major, both triangles): the triangular inverse
    /// X = L_c⁻¹, then XᵀX (2n³/3 flops in all, in [`crate::numerics::blocked`]'s products);
    /// a nested chain's blocks by [`LinearMixedModel::nested_inverse`].
    ///
    /// # Errors
    /// `Interrupted` when `checkpoint` asks to stop.
    fn core_inverse(&self, s: &Several, ws: &mut Workspace, checkpoint: &mut Checkpoint<'_>) -> Result<()> {
        if let Some(chain) = &s.nested {
            self.nested_inverse(chain, ws);
            return Ok(());
        }
        let (nr, n) = (s.core_random, s.core_order(self.p + 1));
        let sw = ws.several.as_mut().expect("a workspace of a model with several factors");
        sw.kernels.invert_lower(&mut sw.inverse_l, &sw.core, n, nr, checkpoint)?;
        sw.kernels.inverse_from_inverse_factor(&mut sw.sigma_cc, &sw.inverse_l, nr, checkpoint)?;
        // The upper triangle mirrored (nr²/2 copies): the selected inverse's products read
        // Σ_RR by whole columns, in place where a front reaches every core row.
        let sigma = &mut sw.sigma_cc[..nr * nr];
        for c in 1..nr {
            let (left, right) = sigma.split_at_mut(c * nr);
            for (r, value) in right[..c].iter_mut().enumerate() {
                *value = left[r * nr + c];
            }
        }
        Ok(())
    }

    /// The selected inverse at every level j of the first factor (module docs), handed to
    /// `visit(j, (A⁻¹)_{R_j j}, (A⁻¹)_jj)` in the order of the levels ((A⁻¹)_{R_j j} r × q₀
    /// and (A⁻¹)_jj q₀ × q₀, row-major), given the core's block `sigma_cc` (nr × nr
    /// column-major, both triangles, as [`LinearMixedModel::core_inverse`] leaves it).
    ///
    /// (A⁻¹)_{R j} = −Σ_RR V_j with V_jᵀ = L_j⁻ᵀ W_{j,R} costs r² q₀ multiply-adds per level,
    /// the gradient's largest part. Consecutive levels with the same rows R (all of them in a
    /// fully crossed design) share Σ_RR, so up to [`LEVELS_PER_PRODUCT`] of them are one
    /// product [V_j …]ᵀ Σ_RR by [`crate::numerics::blocked`]'s packed kernel, Σ_RR gathered
    /// (full) once; a lone level of few rows (fewer than the kernel's tile) keeps the direct
    /// loop over Σ_RR's lower triangle. `checkpoint` is asked per product (by its size,
    /// [`Checkpoint::check_work`]).
    ///
    /// # Errors
    /// `Interrupted` when `checkpoint` asks to stop (the later levels then not visited).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn first_level_inverses(
        &self, s: &Several, ws: &Workspace, fronts: &[f64], sigma_cc: &[f64], buffers: &mut SelectedBuffers, checkpoint: &mut Checkpoint<'_>,
        mut visit: impl FnMut(usize, &[f64], &[f64]),
    ) -> Result<()> {
        let (q0, p1, nr, m0) = (self.q, self.p + 1, s.core_random, self.n.len());
        let rows_of = |j: usize| &s.front_rows[s.width_start[j]..s.width_start[j + 1] - p1];
        let SelectedBuffers { stacked, gathered, selected, sigma_rj, a_inverse, kernels, .. } = buffers;
        let mut j0 = 0;
        while j0 < m0 {
            let rows = rows_of(j0);
            let r = rows.len();
            let j1 = (j0 + 1..m0).take(LEVELS_PER_PRODUCT - 1).find(|&j| rows_of(j) != rows).unwrap_or(m0.min(j0 + LEVELS_PER_PRODUCT));
            let height = (j1 - j0) * q0;
            checkpoint.check_work(height * r)?;
            // [V_j …]ᵀ: each level's Vⱼᵀ = L_j⁻ᵀ W_{j,R} (q₀ × r), stacked (height × r row-major).
            for j in j0..j1 {
                let wj = s.width_start[j + 1] - s.width_start[j];
                let front = &fronts[q0 * s.width_start[j]..q0 * s.width_start[j + 1]];
                let vt = &mut stacked[(j - j0) * q0 * r..(j - j0 + 1) * q0 * r];
                for i in 0..q0 {
                    vt[i * r..(i + 1) * r].copy_from_slice(&front[i * wj..i * wj + r]);
                }
                solve_lower_transposed_scaled(&ws.l[j * q0 * q0..(j + 1) * q0 * q0], &ws.inverse_diagonal[j * q0..(j + 1) * q0], q0, vt, r);
            }
            // −[V_j …]ᵀ Σ_RR into `selected` (height × r, column-major).
            let selected = &mut selected[..height * r];
            selected.fill(0.0);
            if height >= PRODUCT_ROWS {
                // Σ_RR itself when R is every core row (a front of a fully crossed design).
                let sigma_rr: &[f64] = if r == nr {
                    &sigma_cc[..nr * nr]
                } else {
                    let gathered = &mut gathered[..r * r];
                    for (b, &rb) in rows.iter().enumerate() {
                        let column = &sigma_cc[rb * nr..(rb + 1) * nr];
                        for (g, &ra) in gathered[b * r..(b + 1) * r].iter_mut().zip(rows) {
                            *g = column[ra];
                        }
                    }
                    gathered
                };
                kernels.multiply((height, r, r), -1.0, (&stacked[..height * r], r, 1), (sigma_rr, 1, r), selected, height);
            } else {
                // Σ_RR read once per pair from its lower triangle, by columns (the rows ascend).
                for (b, &rb) in rows.iter().enumerate() {
                    let column = &sigma_cc[rb * nr..(rb + 1) * nr];
                    for (a, &ra) in rows.iter().enumerate().skip(b) {
                        let x = column[ra];
                        for i in 0..height {
                            selected[a * height + i] -= x * stacked[i * r + b];
                            if a != b {
                                selected[b * height + i] -= x * stacked[i * r + a];
                            }
                        }
                    }
                }
            }
            for j in j0..j1 {
                // (A⁻¹)_{R j} (r × q₀ row-major) and (A⁻¹)_jj = A_j⁻¹ − V_jᵀ (A⁻¹)_{R j}.
                let offset = (j - j0) * q0;
                let sigma_rj = &mut sigma_rj[..r * q0];
                for (row, column) in sigma_rj.chunks_exact_mut(q0).zip(selected.chunks_exact(height)) {
                    row.copy_from_slice(&column[offset..offset + q0]);
                }
                let vt = &stacked[offset * r..(offset + q0) * r];
                inverse_from_factor(&ws.l[j * q0 * q0..(j + 1) * q0 * q0], &ws.inverse_diagonal[j * q0..(j + 1) * q0], q0, a_inverse);
                // As the packed product of its transpose, (A⁻¹)_jjᵀ −= (A⁻¹)_{R j}ᵀ V_j (the
                // row-major q₀ × q₀ block is its transpose column-major): a loop of axpys over
                // the r rows chained every step through the block in memory took longer.
                kernels.multiply((q0, q0, r), -1.0, (sigma_rj, 1, q0), (vt, 1, r), a_inverse, q0);
                visit(j, sigma_rj, a_inverse);
            }
            j0 = j1;
        }
        Ok(())
    }

    /// The gradient of a model with several factors (see [`LinearMixedModel::gradient`]), from
    /// the factorisation in `ws` and w = (−β, 1) (and R_X⁻¹ for REML) set up there;
    /// `checkpoint` asked by the selected inverse's loops and kernels.
    ///
    /// # Errors
    /// `Interrupted` when `checkpoint` asks to stop (the workspace is left ready for the
    /// next evaluation).
    pub(crate) fn gradient_several(
        &self, s: &Several, reml: bool, two_over_sigma2: f64, ws: &mut Workspace, checkpoint: &mut Checkpoint<'_>,
    ) -> Result<Vec<f64>> {
        let nr = s.core_random;
        let rhs = if reml { 1 + self.p } else { 1 };
        self.solve_modes(s, rhs, ws);
        let diagonal = Self::diagonal_form(s, &ws.lambda, &ws.several.as_ref().expect("a workspace of a model with several factors").lambdas);
        if diagonal {
            // L_c⁻¹ alone: the diagonal of A⁻¹ is read from it without (L_cL_cᵀ)⁻¹.
            let n = s.core_order(self.p + 1);
            let sw = ws.several.as_mut().expect("a workspace of a model with several factors");
            sw.kernels.invert_lower(&mut sw.inverse_l, &sw.core, n, nr, checkpoint)?;
        } else {
            self.core_inverse(s, ws, checkpoint)?;
        }
        let mut sw = ws.several.take().expect("a workspace of a model with several factors");
        let gradient = self.gradient_from_inverse(s, rhs, two_over_sigma2, diagonal, ws, &mut sw, checkpoint);
        ws.several = Some(sw);
        gradient
    }

    /// The rest of [`LinearMixedModel::gradient_several`] once the core's inverse (or X = L_c⁻¹
    /// alone, `diagonal`) is in `sw`, taken out of the workspace `ws` for the time.
    ///
    /// # Errors
    /// `Interrupted` when `checkpoint` asks to stop.
    #[allow(clippy::too_many_arguments)]
    fn gradient_from_inverse(
        &self, s: &Several, rhs: usize, two_over_sigma2: f64, diagonal: bool, ws: &Workspace, sw: &mut SeveralWorkspace, checkpoint: &mut Checkpoint<'_>,
    ) -> Result<Vec<f64>> {
        let q0 = self.q;
        let nr = s.core_random;
        let mut gradients: Vec<Vec<f64>> = (0..=s.others.len()).map(|f| vec![0.0; self.factor_q(s, f).pow(2)]).collect();
        if let Some(chain) = &s.nested {
            self.nested_logdet_gradient(s, chain, ws, sw, &mut gradients);
            self.nested_quadratic_gradient(s, chain, rhs, two_over_sigma2, ws, sw, &mut gradients);
            return Ok(self.theta_gradient(&gradients));
        }
        self.modes_products(s, rhs, ws, sw);
        if diagonal {
            let SeveralWorkspace { lambdas: other_lambdas, fronts, inverse_l, sigma_cc, kernels, norm_parts, norms, column_norms, selected, .. } = &mut *sw;
            let lambdas: Vec<&[f64]> = std::iter::once(&ws.lambda[..]).chain(other_lambdas.iter().map(Vec::as_slice)).collect();
            Self::log_det_from_diagonal(
                s,
                ws,
                kernels,
                &mut selected.dense,
                fronts,
                inverse_l,
                sigma_cc,
                norm_parts,
                (norms, column_norms),
                &lambdas,
                &mut gradients,
                checkpoint,
            )?;
            return Ok(self.finish_gradient(s, rhs, two_over_sigma2, sw, gradients));
        }
        let SeveralWorkspace { lambdas: other_lambdas, fronts, sigma_cc, selected, .. } = &mut *sw;
        let lambdas: Vec<&[f64]> = std::iter::once(&ws.lambda[..]).chain(other_lambdas.iter().map(Vec::as_slice)).collect();
        let sigma_lower: &[f64] = sigma_cc;
        let lower = MatRef::from_column_major_slice(sigma_lower, nr, nr);
        let sigma_cc = |a: usize, b: usize| if a >= b { lower[(a, b)] } else { lower[(b, a)] };
        // The couplings' terms summed level by level into products read after
        // (CouplingProducts), taken out of `selected` for the visits.
        let mut couplings = std::mem::take(&mut selected.couplings);
        let (first_gradient, other_gradients) = gradients.split_at_mut(1);
        let g0 = &mut first_gradient[0];
        let visited = self.first_level_inverses(s, ws, fronts, sigma_lower, selected, checkpoint, |j, sigma_rj, a_inverse| {
            let t = &ws.ts[j * q0 * q0..(j + 1) * q0 * q0];
            add_product(g0, 2.0, t, a_inverse, q0, q0, q0);
            couplings.gather(s, q0, j, sigma_rj);
        });
        if visited.is_ok() {
            couplings.add_gradients(s, q0, &lambdas, g0, other_gradients);
        }
        // Cleared (also after an interrupt) for the next evaluation's sums.
        couplings.clear();
        selected.couplings = couplings;
        visited?;
        for (f, other) in s.others.iter().enumerate() {
            let q = other.q;
            let mut t = vec![0.0; q * q];
            let mut block = vec![0.0; q * q];
            for l in 0..other.levels() {
                let o = other.core_row(l);
                times_lambda(&other.zz[l * q * q..(l + 1) * q * q], lambdas[f + 1], q, &mut t);
                for a in 0..q {
                    for b in 0..q {
                        block[a * q + b] = sigma_cc(o + a, o + b);
                    }
                }
                add_product(&mut gradients[f + 1], 2.0, &t, &block, q, q, q);
            }
        }
        for pair in &s.pairs {
            let (g, f) = (pair.row.0, pair.column.0);
            let (qg, qf) = (s.others[g].q, s.others[f].q);
            let (og, of) = (s.core_row(pair.row), s.core_row(pair.column));
            let c = &s.values[pair.value..pair.value + qg * qf];
            // G_g += 2 C Λ_f Σ_{f g} and G_f += 2 Cᵀ Λ_g Σ_{g f}.
            let mut c_lambda = vec![0.0; qg * qf];
            crate::numerics::dense::multiply(c, lambdas[f + 1], qg, qf, qf, &mut c_lambda);
            let sigma_fg: Vec<f64> = (0..qf).flat_map(|a| (0..qg).map(move |b| (a, b))).map(|(a, b)| sigma_cc(of + a, og + b)).collect();
            add_product(&mut gradients[g + 1], 2.0, &c_lambda, &sigma_fg, qg, qf, qg);
            let mut ct_lambda = vec![0.0; qf * qg];
            transposed_times(c, qg, qf, lambdas[g + 1], qg, &mut ct_lambda, qg);
            let sigma_gf: Vec<f64> = (0..qg).flat_map(|a| (0..qf).map(move |b| (a, b))).map(|(a, b)| sigma_cc(og + a, of + b)).collect();
            add_product(&mut gradients[f + 1], 2.0, &ct_lambda, &sigma_gf, qf, qg, qf);
        }
        Ok(self.finish_gradient(s, rhs, two_over_sigma2, sw, gradients))
    }

    /// The right-hand sides e = Zᵀ(y − Xβ̂) (and Ĝ = ZᵀX R_X⁻ᵀ) per level into `sw.right` and
    /// ZᵀZΛ(u, Û) into `sw.product`, from `sw.solved`: what the quadratic terms need.
    fn modes_products(&self, s: &Several, rhs: usize, ws: &Workspace, sw: &mut SeveralWorkspace) {
        let (q0, p, p1, m0) = (self.q, self.p, self.p + 1, self.n.len());
        let first_rows = m0 * q0;
        let total = first_rows + s.core_random;
        let (w, x_inverse) = (&ws.w, &ws.x_inverse);
        let combine = |values: &dyn Fn(usize) -> f64, k: usize| Self::combined(values, k, w, x_inverse, p);
        let SeveralWorkspace { lambdas: other_lambdas, solved, right: e, product, scaled, .. } = sw;
        let (solved, e, product) = (&solved[..total * rhs], &mut e[..total * rhs], &mut product[..total * rhs]);
        for j in 0..m0 {
            for i in 0..q0 {
                let b = &self.zxy[(j * q0 + i) * p1..(j * q0 + i + 1) * p1];
                for k in 0..rhs {
                    e[(j * q0 + i) * rhs + k] = combine(&|a| b[a], k);
                }
            }
        }
        for other in &s.others {
            for l in 0..other.levels() {
                for i in 0..other.q {
                    let b = &other.zxy[(l * other.q + i) * p1..(l * other.q + i + 1) * p1];
                    for k in 0..rhs {
                        e[(first_rows + other.core_row(l) + i) * rhs + k] = combine(&|a| b[a], k);
                    }
                }
            }
        }
        // v = e − ZᵀZΛ(solved) for every column.
        let lambdas: Vec<&[f64]> = std::iter::once(&ws.lambda[..]).chain(other_lambdas.iter().map(Vec::as_slice)).collect();
        self.times_zz_lambda(s, &lambdas, solved, rhs, &mut scaled[..total * rhs], product);
    }

    /// log|A|'s part of the gradient in `gradients` (∂/∂Λ_f per factor) plus the quadratic
    /// terms from [`Self::modes_products`]; then θ's entries.
    fn finish_gradient(&self, s: &Several, rhs: usize, two_over_sigma2: f64, sw: &SeveralWorkspace, mut gradients: Vec<Vec<f64>>) -> Vec<f64> {
        let (m0, first_rows) = (self.n.len(), self.n.len() * self.q);
        let (e, product, solved) = (&sw.right, &sw.product, &sw.solved);
        // The quadratic term −(2/σ̂²) v uᵀ and REML's −2 (Ĝ − ZᵀZΛÛ) Ûᵀ, level by level.
        for (f, gradient) in gradients.iter_mut().enumerate() {
            let q = self.factor_q(s, f);
            let (start, levels) = if f == 0 { (0, m0) } else { (first_rows + s.others[f - 1].offset, s.others[f - 1].levels()) };
            for l in 0..levels {
                let at = |i: usize, k: usize| (start + l * q + i) * rhs + k;
                for r in 0..q {
                    for c in 0..q {
                        let v = e[at(r, 0)] - product[at(r, 0)];
                        let mut value = two_over_sigma2 * v * solved[at(c, 0)];
                        for k in 1..rhs {
                            value += 2.0 * (e[at(r, k)] - product[at(r, k)]) * solved[at(c, k)];
                        }
                        gradient[r * q + c] -= value;
                    }
                }
            }
        }
        self.theta_gradient(&gradients)
    }

    /// θ's entries of the gradient from ∂/∂Λ_f per factor.
    fn theta_gradient(&self, gradients: &[Vec<f64>]) -> Vec<f64> {
        self.factor_terms().iter().zip(gradients).flat_map(|((terms, _), g)| terms.theta_positions.iter().map(move |&(r, c)| g[r * terms.q + c])).collect()
    }

    /// The conditional modes and covariances of each grouping factor's random effects at
    /// `fit`, in the data's units, in θ's order of the factors (see
    /// [`LinearMixedModel::random_effects`] for one factor): b̂ = t_y M_Z Λ u and
    /// Var(b | y) = σ̂² M_ZΛ (A⁻¹)_ii ΛᵀM_Zᵀ, with (A⁻¹)_ii from the selected inverse.
    ///
    /// # Errors
    /// The errors of [`LinearMixedModel::deviance`] at the fit's θ; `TooLarge` when the
    /// workspace or the effects do not fit in memory; `Interrupted` when `checkpoint` reports
    /// a user interrupt (the dense core's kernels ask it per block).
    pub fn random_effects_by_factor(&self, fit: &LmmFit, checkpoint: &mut Checkpoint<'_>) -> Result<Vec<RandomEffects>> {
        let Some(s) = &self.several else { return Ok(vec![self.random_effects(fit)?]) };
        let mut ws = self.workspace()?;
        let factor = self.factorize_checked(&fit.internal_theta, &mut ws, checkpoint)?;
        let ty = self.response.scale;
        let sigma2 = factor.pwrss / self.divisor(fit.criterion) * ty * ty;
        let beta = self.internal_beta(&ws);
        self.gradient_setup(Criterion::Ml, &beta, &mut ws);
        self.solve_modes(s, 1, &mut ws);
        let nr = s.core_random;
        // Every factor scalar (q = 1) with a dense core: the variances as the gradient's
        // diagonal form reads them ([`LinearMixedModel::log_det_from_diagonal`]), from
        // X = L_c⁻¹ alone: (A⁻¹)_jj = (1 + ‖X W_{j,R}ᵀ‖²)/L_j² for the first factor's levels
        // and ‖X e_i‖² for the core's, sums of squares as (L_cL_cᵀ)⁻¹'s diagonal is, without
        // its other entries (nr³/6 multiply-adds more) nor the selected inverse's r_j² per
        // level read from them (MovieLens 32M's shape: 200,947 users against a core of 16,034).
        let scalar = s.nested.is_none() && self.q == 1 && s.others.iter().all(|o| o.q == 1);
        if scalar {
            let n = s.core_order(self.p + 1);
            let sw = ws.several.as_mut().expect("a workspace of a model with several factors");
            sw.kernels.invert_lower(&mut sw.inverse_l, &sw.core, n, nr, checkpoint)?;
            let SeveralWorkspace { fronts, inverse_l, kernels, norm_parts, norms, column_norms, selected, .. } = sw;
            Self::front_norms(s, kernels, &mut selected.dense, fronts, inverse_l, norm_parts, (norms, column_norms), checkpoint)?;
        } else {
            reserve_core_inverse(ws.several.as_mut().expect("a workspace of a model with several factors"), nr)?;
            self.core_inverse(s, &mut ws, checkpoint)?;
        }
        let mut sw = ws.several.take().expect("a workspace of a model with several factors");
        let first_rows = self.n.len() * self.q;
        let mut out = Vec::with_capacity(s.others.len() + 1);
        for (f, (terms, range)) in self.factor_terms().into_iter().enumerate() {
            let q = terms.q;
            let mut lambda = vec![0.0; q * q];
            terms.fill_lambda(&fit.internal_theta[range], &mut lambda);
            let mut map = vec![0.0; q * q];
            crate::numerics::dense::multiply(terms.to_user_random, &lambda, q, q, q, &mut map);
            let levels = if f == 0 { self.n.len() } else { s.others[f - 1].levels() };
            // Level l's first row in `solved` (the core's in the core's order).
            let row = |l: usize| if f == 0 { l * q } else { first_rows + s.others[f - 1].core_row(l) };
            let mut modes = with_capacity(&[levels, q], "the conditional modes")?;
            let mut conditional_covariances = with_capacity(&[levels, q, q], "the conditional covariances")?;
            for l in 0..levels {
                let u = &sw.solved[row(l)..row(l) + q];
                modes.extend((0..q).map(|r| ty * (0..q).map(|k| map[r * q + k] * u[k]).sum::<f64>()));
            }
            let mut push = |a_inverse: &[f64]| conditional_covariances.extend(congruence(&map, a_inverse, q).iter().map(|v| v * sigma2));
            let mut a_inverse = vec![0.0; q * q];
            if let Some(chain) = &s.nested {
                for l in 0..levels {
                    self.nested_level_inverse(chain, &ws, &sw, f, l, &mut a_inverse);
                    push(&a_inverse);
                }
            } else if scalar && f == 0 {
                for (inverse, norm) in ws.inverse_diagonal.iter().zip(&sw.norms) {
                    push(&[first_inverse_diagonal(*inverse, *norm)]);
                }
            } else if scalar {
                for l in 0..levels {
                    push(&[sw.column_norms[s.others[f - 1].core_row(l)]]);
                }
            } else if f == 0 {
                let SeveralWorkspace { fronts, sigma_cc, selected, .. } = &mut sw;
                self.first_level_inverses(s, &ws, fronts, sigma_cc, selected, checkpoint, |_, _, a_inverse| push(a_inverse))?;
            } else {
                let sigma_cc = |a: usize, b: usize| sw.sigma_cc[a.min(b) * nr + a.max(b)];
                for l in 0..levels {
                    let o = s.others[f - 1].core_row(l);
                    for a in 0..q {
                        for b in 0..q {
                            a_inverse[a * q + b] = sigma_cc(o + a, o + b);
                        }
                    }
                    push(&a_inverse);
                }
            }
            out.push(RandomEffects { modes, conditional_covariances });
        }
        Ok(out)
    }

    /// Whether the gradient's log|A| part can be read from the diagonal of A⁻¹ alone
    /// ([`LinearMixedModel::log_det_from_diagonal`]): every factor scalar (q = 1), its λ_f
    /// at least [`DIAGONAL_FORM_MIN_LAMBDA`], and the core dense (a nested chain has its own
    /// cheap selected inverse).
    pub(super) fn diagonal_form(s: &Several, lambda: &[f64], others: &[Vec<f64>]) -> bool {
        let scalar = |lambda: &[f64]| lambda.len() == 1 && lambda[0] >= DIAGONAL_FORM_MIN_LAMBDA;
        s.nested.is_none() && scalar(lambda) && others.iter().all(|l| scalar(l))
    }

    /// The log|A| part of the gradient of a model whose factors are all scalar, from the
    /// diagonal of A⁻¹: with Λ_f = λ_f I on factor f's levels, ΛZᵀZΛ = A − I gives
    /// Σ_{i ∈ f} (ZᵀZΛA⁻¹)_ii = (1/λ_f) Σ_{i ∈ f} (1 − (A⁻¹)_ii), so that
    /// G_f = 2 Σ_{i ∈ f} (ZᵀZΛA⁻¹)_ii (the selected inverse's sum,
    /// [`LinearMixedModel::gradient_several`] otherwise) needs no entry of A⁻¹ off its diagonal. Of
    /// L = [L₀ 0; Wᵀ L_c] (L₀ the first factor's diagonal, W's rows its fronts), the core's
    /// (A⁻¹)_ii is the squared norm of column i of X = L_c⁻¹ (`inverse_l`, nr × nr
    /// column-major), and the first factor's (A⁻¹)_jj = ‖L⁻¹e_j‖² = (1 + ‖X W_{j,R}ᵀ‖²)/L_j²,
    /// W_{j,R} the random-effects part of front j (already L_j⁻¹Λ₀ᵀ…). That costs nr²/2 plus
    /// Σ_j Σ_{r ∈ R_j} (nr − r) multiply-adds where (L_cL_cᵀ)⁻¹ costs nr³/6 more; the
    /// fronts that reach most of the core ([`dense_norm`], prepared by the factorisation in
    /// [`DenseFronts`]) as packed products X [W_{j,R}ᵀ …] over a dense panel instead. The
    /// difference 1 − (A⁻¹)_ii loses digits as λ_f → 0, hence the floor of
    /// [`LinearMixedModel::diagonal_form`].
    ///
    /// Where that is cheaper ([`product_norms`]: MovieLens' shapes) the first factor's
    /// Σ_j ‖X W_{j,R}ᵀ‖²/L_j² is read instead as ⟨Σ, T⟩, Σ = XᵀX = (A⁻¹)_cc (into `sigma`)
    /// and T = Σ_j W_{j,R}ᵀW_{j,R}/L_j², the fronts' rank-one updates as in the Schur
    /// complement (into `x`'s buffer once Σ is formed), and the later factors' (A⁻¹)_ii from
    /// Σ's diagonal.
    ///
    /// # Errors
    /// `Interrupted` when `checkpoint` asks to stop (the panel of dense fronts left cleared).
    #[allow(clippy::too_many_arguments)]
    fn log_det_from_diagonal(
        s: &Several, ws: &Workspace, kernels: &mut DenseKernels, dense: &mut DenseFronts, fronts: &[f64], x: &mut [f64], sigma: &mut [f64],
        partial: &mut [f64], (norms, column_norms): (&mut [f64], &mut [f64]), lambdas: &[&[f64]], gradients: &mut [Vec<f64>], checkpoint: &mut Checkpoint<'_>,
    ) -> Result<()> {
        if dense.by_products {
            return Self::log_det_from_products(s, ws, kernels, dense, fronts, x, sigma, lambdas, gradients, checkpoint);
        }
        Self::front_norms(s, kernels, dense, fronts, x, partial, (norms, column_norms), checkpoint)?;
        let first: f64 = ws.inverse_diagonal.iter().zip(norms.iter()).map(|(&inverse, &norm)| 1.0 - first_inverse_diagonal(inverse, norm)).sum();
        gradients[0][0] = 2.0 * first / lambdas[0][0];
        for (f, other) in s.others.iter().enumerate() {
            let sum: f64 = column_norms[other.offset..other.offset + other.levels()].iter().map(|norm| 1.0 - norm).sum();
            gradients[f + 1][0] = 2.0 * sum / lambdas[f + 1][0];
        }
        Ok(())
    }

    /// ‖X W_{j,R}ᵀ‖² into `norms[j]` for every level j of a scalar first factor, X = L_c⁻¹ in
    /// `x`: front j is the row fronts[width_start[j]..width_start[j + 1]], its random-effects
    /// columns first, then the [X y] columns at rows ≥ nr (left out). The fronts that reach
    /// most of the core ([`dense_norm`]) by dense products instead: their random-effects
    /// parts scattered into the rows of a panel (nr wide), batch by batch. The core's
    /// (A⁻¹)_ii = ‖X e_i‖² into `column_norms[i]` by the same pass over X.
    ///
    /// # Errors
    /// `Interrupted` when `checkpoint` asks to stop (the panel of dense fronts left cleared).
    #[allow(clippy::too_many_arguments)]
    fn front_norms(
        s: &Several, kernels: &mut DenseKernels, dense: &mut DenseFronts, fronts: &[f64], x: &[f64], partial: &mut [f64],
        (norms, column_norms): (&mut [f64], &mut [f64]), checkpoint: &mut Checkpoint<'_>,
    ) -> Result<()> {
        let nr = s.core_random;
        let DenseFronts { norm_levels: levels, norm_dense: is_dense, panel, norms: batch_norms, .. } = dense;
        kernels.sparse_product_norms(x, nr, &s.width_start, &s.front_rows, fronts, is_dense, partial, norms, column_norms, checkpoint)?;
        // The panel is all zeros between uses (the factorisation's, n wide, relies on it).
        for batch in levels.chunks(DENSE_BATCH) {
            let panel = &mut panel[..batch.len() * nr];
            for (row, &j) in panel.chunks_exact_mut(nr).zip(batch) {
                let range = s.width_start[j]..s.width_start[j + 1];
                for (&r, &v) in s.front_rows[range.clone()].iter().zip(&fronts[range]).take_while(|(&r, _)| r < nr) {
                    row[r] = v;
                }
            }
            let batch_norms = &mut batch_norms[..batch.len()];
            let multiplied = kernels.dense_product_norms(x, nr, panel, partial, batch_norms, checkpoint);
            panel.fill(0.0);
            multiplied?;
            for (&j, &norm) in batch.iter().zip(batch_norms.iter()) {
                norms[j] = norm;
            }
        }
        Ok(())
    }

    /// The product route of [`LinearMixedModel::log_det_from_diagonal`] (its docs), with
    /// X = L_c⁻¹ in `x` (overwritten by −T) and room for Σ in `sigma`.
    ///
    /// # Errors
    /// `Interrupted` when `checkpoint` asks to stop (the panel of dense fronts left cleared).
    #[allow(clippy::too_many_arguments)]
    fn log_det_from_products(
        s: &Several, ws: &Workspace, kernels: &mut DenseKernels, dense: &mut DenseFronts, fronts: &[f64], x: &mut [f64], sigma: &mut [f64], lambdas: &[&[f64]],
        gradients: &mut [Vec<f64>], checkpoint: &mut Checkpoint<'_>,
    ) -> Result<()> {
        let (nr, p1) = (s.core_random, ws.w.len());
        kernels.inverse_from_inverse_factor(sigma, x, nr, checkpoint)?;
        let x = &mut x[..nr * nr];
        x.fill(0.0);
        // −T: the sparse fronts scattered with their weights 1/L_j², the dense ones (each
        // scaled by 1/L_j) as panels of packed products.
        super::evaluation::scatter_fronts(kernels, x, nr, nr, s, fronts, dense, p1, Some(&ws.inverse_diagonal), checkpoint)?;
        for batch in dense.levels.chunks(DENSE_BATCH) {
            let panel = &mut dense.panel[..batch.len() * nr];
            for (row, &j) in panel.chunks_exact_mut(nr).zip(batch) {
                let range = s.width_start[j]..s.width_start[j + 1];
                for (&r, &v) in s.front_rows[range.clone()].iter().zip(&fronts[range]).take_while(|(&r, _)| r < nr) {
                    row[r] = v * ws.inverse_diagonal[j];
                }
            }
            let subtracted = kernels.subtract_gram(x, nr, panel, batch.len(), checkpoint);
            panel.fill(0.0);
            subtracted?;
        }
        // ⟨Σ, T⟩ over both triangles from the lower ones.
        let mut inner = 0.0;
        for (c, (sigma, t)) in sigma[..nr * nr].chunks_exact(nr).zip(x.chunks_exact(nr)).enumerate() {
            let off: f64 = sigma[c + 1..].iter().zip(&t[c + 1..]).map(|(a, b)| a * b).sum();
            inner -= sigma[c] * t[c] + 2.0 * off;
        }
        let first: f64 = ws.inverse_diagonal.iter().map(|inverse| 1.0 - inverse * inverse).sum::<f64>() - inner;
        gradients[0][0] = 2.0 * first / lambdas[0][0];
        for (f, other) in s.others.iter().enumerate() {
            let sum: f64 = (other.offset..other.offset + other.levels()).map(|i| 1.0 - sigma[i * nr + i]).sum();
            gradients[f + 1][0] = 2.0 * sum / lambdas[f + 1][0];
        }
        Ok(())
    }

    fn factor_q(&self, s: &Several, f: usize) -> usize {
        if f == 0 {
            self.q
        } else {
            s.others[f - 1].q
        }
    }

    /// ZᵀZ Λ X for X with `rhs` columns over all random effects (row-major, the first
    /// factor's levels then the core's), over the blocks of ZᵀZ: the levels' own, the fronts'
    /// and the pairs'.
    fn times_zz_lambda(&self, s: &Several, lambdas: &[&[f64]], x: &[f64], rhs: usize, lx: &mut [f64], out: &mut [f64]) {
        let (q0, m0) = (self.q, self.n.len());
        let first_rows = m0 * q0;
        // Λ X, block by block.
        let start_of = |f: usize, l: usize| if f == 0 { l * q0 } else { first_rows + s.others[f - 1].core_row(l) };
        let apply_lambda = |lambda: &[f64], q: usize, from: &[f64], to: &mut [f64]| {
            for r in 0..q {
                for k in 0..rhs {
                    to[r * rhs + k] = (0..=r).map(|c| lambda[r * q + c] * from[c * rhs + k]).sum();
                }
            }
        };
        for l in 0..m0 {
            let range = l * q0 * rhs..(l + 1) * q0 * rhs;
            apply_lambda(lambdas[0], q0, &x[range.clone()], &mut lx[range]);
        }
        for (f, other) in s.others.iter().enumerate() {
            for l in 0..other.levels() {
                let start = start_of(f + 1, l) * rhs;
                let range = start..start + other.q * rhs;
                apply_lambda(lambdas[f + 1], other.q, &x[range.clone()], &mut lx[range]);
            }
        }
        let lx = &*lx;
        out.fill(0.0);
        // out[a-block] += C · lx[b-block] for a q_a × q_b block C.
        let add = |out: &mut [f64], c: &[f64], qa: usize, qb: usize, a: usize, b: usize, transposed: bool| {
            for r in 0..qa {
                for k in 0..rhs {
                    let value: f64 = (0..qb).map(|t| if transposed { c[t * qa + r] } else { c[r * qb + t] } * lx[(b + t) * rhs + k]).sum();
                    out[(a + r) * rhs + k] += value;
                }
            }
        };
        for l in 0..m0 {
            add(out, &self.zz[l * q0 * q0..(l + 1) * q0 * q0], q0, q0, l * q0, l * q0, false);
        }
        for (f, other) in s.others.iter().enumerate() {
            let q = other.q;
            for l in 0..other.levels() {
                let at = start_of(f + 1, l);
                add(out, &other.zz[l * q * q..(l + 1) * q * q], q, q, at, at, false);
            }
        }
        for coupling in &s.fronts {
            let (f, l) = coupling.row;
            let qf = s.others[f].q;
            let c = &s.values[coupling.value..coupling.value + qf * q0];
            let (row, column) = (start_of(f + 1, l), start_of(0, coupling.column.1));
            add(out, c, qf, q0, row, column, false);
            add(out, c, q0, qf, column, row, true);
        }
        for pair in &s.pairs {
            let (qg, qf) = (s.others[pair.row.0].q, s.others[pair.column.0].q);
            let c = &s.values[pair.value..pair.value + qg * qf];
            let (row, column) = (start_of(pair.row.0 + 1, pair.row.1), start_of(pair.column.0 + 1, pair.column.1));
            add(out, c, qg, qf, row, column, false);
            add(out, c, qf, qg, column, row, true);
        }
    }
}

/// Room for (L_c L_cᵀ)⁻¹ (nr × nr) in the workspace `sw`, allocated by the first evaluation
/// that needs it (`sigma_cc`'s docs).
///
/// # Errors
/// `TooLarge` when it does not fit in memory.
pub(super) fn reserve_core_inverse(sw: &mut SeveralWorkspace, nr: usize) -> Result<()> {
    if sw.sigma_cc.len() < nr * nr {
        sw.sigma_cc = filled(&[nr, nr], 0.0, "the inverse of the dense block of the crossed grouping factors")?;
    }
    Ok(())
}

/// Levels of the first factor whose selected inverses share one product (module docs of
/// [`LinearMixedModel::first_level_inverses`]): 32 × q₀ rows of [V_j …]ᵀ, enough to amortise
/// packing Σ_RR once, few enough to keep the buffers small.
pub(super) const LEVELS_PER_PRODUCT: usize = 32;

/// The height of [`crate::numerics::blocked`]'s micro-tile: a product of fewer rows wastes
/// its lanes, so fewer rows keep the direct loop.
const PRODUCT_ROWS: usize = 8;

/// The buffers of the first factor's dense products: for
/// [`LinearMixedModel::first_level_inverses`] the stacked [V_j …]ᵀ, the gathered Σ_RR, the
/// product −[V_j …]ᵀ Σ_RR and one level's (A⁻¹)_{R j} and (A⁻¹)_jj; for the evaluation's
/// Schur complement the Gram matrix of stacked fronts ([`SelectedBuffers::gram`], in the
/// buffer of Σ_RR); the products' kernels.
#[derive(Debug, Clone)]
pub(crate) struct SelectedBuffers {
    stacked: Vec<f64>,
    gathered: Vec<f64>,
    selected: Vec<f64>,
    sigma_rj: Vec<f64>,
    a_inverse: Vec<f64>,
    kernels: DenseKernels,
    /// The scalar first factor's dense fronts, prepared by the first factorisation.
    pub(super) dense: DenseFronts,
    /// The couplings' terms of the gradient ([`CouplingProducts`]).
    couplings: CouplingProducts,
}

impl SelectedBuffers {
    /// Buffers for the model's blocks `s`, a first factor of q₀ columns whose levels reach
    /// at most `r` rows of the core, and fronts of at most `w` columns.
    ///
    /// # Errors
    /// `TooLarge` when they do not fit in memory (two of 32 q₀ × r values, one of q₀ × r,
    /// one of w × w).
    pub(super) fn new(s: &Several, q0: usize, r: usize, w: usize) -> Result<Self> {
        const WHAT: &str = "the selected inverse of the grouping factors";
        let height = LEVELS_PER_PRODUCT * q0;
        Ok(SelectedBuffers {
            stacked: filled(&[height, r], 0.0, WHAT)?,
            gathered: filled(&[w, w], 0.0, WHAT)?,
            selected: filled(&[height, r], 0.0, WHAT)?,
            sigma_rj: filled(&[r, q0], 0.0, WHAT)?,
            a_inverse: filled(&[q0, q0], 0.0, WHAT)?,
            kernels: DenseKernels::new(height.max(w), s.threads)?,
            dense: DenseFronts::default(),
            couplings: CouplingProducts::new(s, q0, r)?,
        })
    }

    /// WᵀW (w × w, column-major, on and below its diagonal: all the Schur update reads) for
    /// the fronts of consecutive levels of the first factor with the same rows, `stacked` =
    /// [W_j …] (`height` × w row-major, at most [`LEVELS_PER_PRODUCT`] levels): their summed
    /// Schur update Σ_j W_jᵀW_j as one symmetric product (a SYRK, half the multiply-adds of
    /// the full product, which took a fifth of each kb07-shaped evaluation), negated after.
    ///
    /// # Errors
    /// `Interrupted` when `checkpoint` asks to stop.
    pub(super) fn gram(&mut self, stacked: &[f64], height: usize, w: usize, checkpoint: &mut Checkpoint<'_>) -> Result<&[f64]> {
        let gram = &mut self.gathered[..w * w];
        gram.fill(0.0);
        self.kernels.subtract_gram(gram, w, stacked, height, checkpoint)?;
        for (c, column) in gram.chunks_exact_mut(w).enumerate() {
            for value in &mut column[c..] {
                *value = -*value;
            }
        }
        Ok(gram)
    }
}

/// Couplings per product of [`CouplingProducts::gather`]: the order its kernels are made for
/// (so that every dimension of a product fits them), below the kernels' second thread.
const COUPLINGS_PER_PRODUCT: usize = 192;

/// The terms of the log|A| gradient from the blocks of ZᵀZ between the first factor and a
/// later factor f (the fronts' couplings b = (level k of f, level j), C_b = Z_kᵀZ_j, q_f × q₀):
/// G₀ += 2 Σ_b C_bᵀ Λ_f Z_b and G_f += 2 Σ_b C_b Λ₀ Z_bᵀ, with Z_b = (A⁻¹)_{k j}. Both are
/// contractions of the one matrix P_f = Σ_b vec(C_b) vec(Z_b)ᵀ (q_f q₀ × q_f q₀, vec by rows):
/// G₀[a][c] += 2 Σ_{y,x} Λ_f[y][x] P_f[(y,a),(x,c)] and G_f[x][y] += 2 Σ_{a,c} Λ₀[a][c]
/// P_f[(x,a),(y,c)]. P_f is summed level by level as the selected inverse visits them, one
/// packed product ([`DenseKernels::multiply`]) over the level's couplings of f (its Z_b are
/// consecutive rows of (A⁻¹)_{R j}); per coupling in scalar code these terms took a fifth of
/// each evaluation of the kb07-shaped model (two 8 × 8 blocks, 1,790 couplings).
#[derive(Debug, Clone, Default)]
pub(crate) struct CouplingProducts {
    /// One level's C_b, gathered in the front's order (q_f × q₀ row-major each).
    blocks: Vec<f64>,
    /// P_f per later factor (column-major).
    products: Vec<Vec<f64>>,
    kernels: Option<DenseKernels>,
}

impl CouplingProducts {
    /// The buffers for the model's blocks `s` whose fronts reach at most `r` rows of the core
    /// (none for a nested chain, whose gradient is [`super::nested`]'s).
    ///
    /// # Errors
    /// `TooLarge` when they do not fit in memory.
    fn new(s: &Several, q0: usize, r: usize) -> Result<Self> {
        const WHAT: &str = "the couplings of the grouping factors' gradient";
        if s.nested.is_some() || s.fronts.is_empty() {
            return Ok(CouplingProducts::default());
        }
        let widest = s.others.iter().map(|o| o.q * q0).max().unwrap_or(0);
        let products = s.others.iter().map(|o| filled(&[o.q * q0, o.q * q0], 0.0, WHAT)).collect::<Result<_>>()?;
        Ok(CouplingProducts { blocks: filled(&[r, q0], 0.0, WHAT)?, products, kernels: Some(DenseKernels::new(COUPLINGS_PER_PRODUCT.max(widest), s.threads)?) })
    }

    /// Adds level j's couplings to the P_f, from its (A⁻¹)_{R j} (`sigma_rj`, r × q₀
    /// row-major, the couplings' rows in the front's order, those of one factor together).
    fn gather(&mut self, s: &Several, q0: usize, j: usize, sigma_rj: &[f64]) {
        let Some(kernels) = &mut self.kernels else { return };
        let couplings = &s.fronts[s.front_start[j]..s.front_start[j + 1]];
        let mut row = 0;
        for run in couplings.chunk_by(|a, b| a.row.0 == b.row.0) {
            let f = run[0].row.0;
            let size = s.others[f].q * q0;
            let blocks = &mut self.blocks[..run.len() * size];
            for (block, coupling) in blocks.chunks_exact_mut(size).zip(run) {
                block.copy_from_slice(&s.values[coupling.value..coupling.value + size]);
            }
            let inverse = &sigma_rj[row..row + run.len() * size];
            for (c, z) in blocks.chunks(COUPLINGS_PER_PRODUCT * size).zip(inverse.chunks(COUPLINGS_PER_PRODUCT * size)) {
                kernels.multiply((size, size, c.len() / size), 1.0, (c, 1, size), (z, size, 1), &mut self.products[f], size);
            }
            row += run.len() * size;
        }
    }

    /// Adds the terms of the type docs to G₀ (`g0`, q₀ × q₀) and each later factor's G_f
    /// (`others[f]`), given every factor's Λ (`lambdas`, the first factor's first).
    fn add_gradients(&mut self, s: &Several, q0: usize, lambdas: &[&[f64]], g0: &mut [f64], others: &mut [Vec<f64>]) {
        for (f, product) in self.products.iter().enumerate() {
            let qf = s.others[f].q;
            let size = qf * q0;
            let p = |row: usize, column: usize| product[row + column * size];
            let (lambda_f, lambda_0) = (lambdas[f + 1], lambdas[0]);
            for a in 0..q0 {
                for c in 0..q0 {
                    let sum: f64 = (0..qf).map(|y| (0..=y).map(|x| lambda_f[y * qf + x] * p(y * q0 + a, x * q0 + c)).sum::<f64>()).sum();
                    g0[a * q0 + c] += 2.0 * sum;
                }
            }
            for x in 0..qf {
                for y in 0..qf {
                    let sum: f64 = (0..q0).map(|a| (0..=a).map(|c| lambda_0[a * q0 + c] * p(x * q0 + a, y * q0 + c)).sum::<f64>()).sum();
                    others[f][x * qf + y] += 2.0 * sum;
                }
            }
        }
    }

    /// The P_f cleared for the next evaluation's sums.
    fn clear(&mut self) {
        for product in &mut self.products {
            product.fill(0.0);
        }
    }
}

/// G += scale · A B for A (r × k) and B (k × c).
fn add_product(g: &mut [f64], scale: f64, a: &[f64], b: &[f64], r: usize, k: usize, c: usize) {
    for i in 0..r {
        for j in 0..c {
            g[i * c + j] += scale * (0..k).map(|t| a[i * k + t] * b[t * c + j]).sum::<f64>();
        }
    }
}

/// The ratio of the speeds of the two ways of applying a front of a scalar first factor's
/// Schur update: the packed product ([`DenseKernels::subtract_gram`]) does a multiply-add
/// this many times faster than the scatter of a front's rank-one update into the core
/// (indirect, one column at a time, from memory when the core is large). Measured on the
/// MovieLens-shaped bench (1e7 ratings, 1e5 users, 5e3 items; one evaluation's value):
/// 11.5 s with the scatter alone, 7.1–9.4 s with ratios 8 to 32 (the core's Cholesky ~4 s of
/// it), within the shared machine's noise of each other.
const DENSE_SPEEDUP: usize = 16;

/// Levels of the first factor whose dense fronts form one panel: 256 rows, the packing's
/// depth, so that the core is read once per 256 rank-one updates (a panel of 256 × n values,
/// 10 MB for a core of order 5000).
pub(super) const DENSE_BATCH: usize = 256;

/// Whether a front of `r` random-effects rows of a core of order `n` takes the dense path in
/// the factorisation: the scatter costs r²/2 multiply-adds, the panel's share of the packed
/// product n²/2 (every row of the core) at [`DENSE_SPEEDUP`] times the speed, so the panel
/// wins when DENSE_SPEEDUP · r² ≥ n² (r ≥ n/4). Zipf-popular users, who rate most items,
/// do; the long tail (and InstEval's students, who meet at most 104 of its 1142 lecturers
/// and departments) keep the scatter.
fn dense_front(r: usize, n: usize) -> bool {
    DENSE_SPEEDUP * r * r >= n * n
}

/// The ratio of the speeds of [`DenseKernels::dense_product_norms`] and
/// [`DenseKernels::sparse_product_norms`] (whose column loops vectorise too, hence smaller
/// than [`DENSE_SPEEDUP`]), as measured on the same bench.
const NORM_SPEEDUP: usize = 4;

/// Whether the norm ‖X W_{j,R}ᵀ‖² of a front with random-effects rows `rows` of the core's
/// nr takes the dense path in the gradient: the sparse product costs Σ_{r ∈ R_j} (nr − r)
/// multiply-adds (X is lower triangular: column r has nr − r rows, so a front reaching the
/// core's first rows costs nearly nr each), the dense one nr²/2 at [`NORM_SPEEDUP`] times
/// the speed.
fn dense_norm(rows: &[usize], nr: usize) -> bool {
    let sparse: usize = rows.iter().take_while(|&&r| r < nr).map(|&r| nr - r).sum();
    2 * NORM_SPEEDUP * sparse >= nr * nr
}

/// The levels of a scalar first factor whose fronts take the dense paths ([`dense_front`] in
/// the factorisation, [`dense_norm`] in the gradient), and the panel they are scattered
/// into: found once per workspace (they depend only on the model's structure) by
/// [`DenseFronts::prepare`].
#[derive(Debug, Clone, Default)]
pub(crate) struct DenseFronts {
    /// The factorisation's dense levels, ascending, and per level whether it is one (empty
    /// before `prepare`).
    pub(super) levels: Vec<usize>,
    pub(super) is_dense: Vec<bool>,
    /// The same for the gradient's norms.
    norm_levels: Vec<usize>,
    norm_dense: Vec<bool>,
    /// [`DENSE_BATCH`] (at most the number of dense levels) rows of the core's order n, all
    /// zeros between uses (each use clears what it wrote).
    pub(super) panel: Vec<f64>,
    /// One batch's norms ([`LinearMixedModel::log_det_from_diagonal`]).
    norms: Vec<f64>,
    /// Whether the gradient reads Σ_j ‖X W_{j,R}ᵀ‖²/L_j² as ⟨XᵀX, T⟩ ([`product_norms`]).
    pub(super) by_products: bool,
    /// The sparse (not dense) fronts by core column, for their scatter
    /// ([`super::evaluation::scatter_fronts`]): column c's entries
    /// `by_column[column_start[c]..column_start[c + 1]]`, each (k, j): front j holds row c at
    /// position k of the fronts' concatenation ([`Several::front_rows`]), j ascending.
    pub(super) column_start: Vec<usize>,
    pub(super) by_column: Vec<(usize, usize)>,
}

impl DenseFronts {
    /// Finds the dense levels of the model's m₀ fronts (a scalar first factor; none
    /// otherwise) for a core of order `n` with `nr` random-effects rows, once.
    ///
    /// # Errors
    /// `TooLarge` when the panel or the fronts' index by column do not fit in memory.
    pub(super) fn prepare(&mut self, s: &Several, scalar: bool, m0: usize, n: usize, p1: usize) -> Result<()> {
        const WHAT: &str = "the dense fronts of the crossed grouping factors";
        if self.is_dense.len() == m0 {
            return Ok(());
        }
        let rows = |j: usize| &s.front_rows[s.width_start[j]..s.width_start[j + 1] - p1];
        let is_dense = collected((0..m0).map(|j| scalar && dense_front(rows(j).len(), n)), WHAT)?;
        let norm_dense = collected((0..m0).map(|j| scalar && dense_norm(rows(j), n - p1)), WHAT)?;
        self.levels = collected((0..m0).filter(|&j| is_dense[j]), WHAT)?;
        self.norm_levels = collected((0..m0).filter(|&j| norm_dense[j]), WHAT)?;
        let batch = DENSE_BATCH.min(self.levels.len().max(self.norm_levels.len()));
        self.panel = filled(&[batch, n], 0.0, WHAT)?;
        self.norms = filled(&[batch], 0.0, WHAT)?;
        self.by_products = scalar && product_norms(s, &norm_dense, m0, n - p1, p1);
        if scalar {
            self.index_by_column(s, &is_dense, n - p1, p1)?;
        }
        self.is_dense = is_dense;
        self.norm_dense = norm_dense;
        Ok(())
    }

    /// [`DenseFronts::by_column`] of the fronts j that are not `dense`: their entries by
    /// core row (below `nr`: the random-effects rows), counted then placed.
    ///
    /// # Errors
    /// `TooLarge` when it does not fit in memory.
    fn index_by_column(&mut self, s: &Several, dense: &[bool], nr: usize, p1: usize) -> Result<()> {
        const WHAT: &str = "the fronts of the crossed grouping factors by column";
        let sparse = || dense.iter().enumerate().filter(|(_, &d)| !d).map(|(j, _)| (j, s.width_start[j]..s.width_start[j + 1] - p1));
        let mut start = filled(&[nr + 1], 0, WHAT)?;
        for (_, range) in sparse() {
            for &row in &s.front_rows[range] {
                start[row + 1] += 1;
            }
        }
        for c in 0..nr {
            start[c + 1] += start[c];
        }
        let mut next = copied(&start[..nr], WHAT)?;
        let mut entries = filled(&[start[nr]], (0, 0), WHAT)?;
        for (j, range) in sparse() {
            for k in range {
                let row = s.front_rows[k];
                entries[next[row]] = (k, j);
                next[row] += 1;
            }
        }
        (self.column_start, self.by_column) = (start, entries);
        Ok(())
    }
}

/// Whether the first factor's part of the diagonal form, Σ_j ‖X W_{j,R}ᵀ‖²/L_j², is cheaper
/// as ⟨XᵀX, T⟩ with T = Σ_j W_{j,R}ᵀW_{j,R}/L_j² (nr × nr) than as the norms of its products
/// with X: XᵀX costs nr³/6 multiply-adds of the packed products ([`NORM_SPEEDUP`] times the
/// speed of a sparse norm's) and T the fronts' Σ_j r_j²/2 of the Schur update (at most its
/// scatter's speed); the norms Σ_j Σ_{r ∈ R_j} (nr − r), or nr²/2 at [`NORM_SPEEDUP`] for a
/// dense one. At MovieLens' shapes the norms took nearly all of an evaluation (ten million
/// ratings of five thousand items: ~2.5e10 multiply-adds against XᵀX's 2.1e10 at several
/// times their speed); InstEval keeps them (4.1e7 against 2.4e8: by cachegrind, 635 M
/// instructions per evaluation by XᵀX against 461 M).
fn product_norms(s: &Several, norm_dense: &[bool], m0: usize, nr: usize, p1: usize) -> bool {
    let (mut norms, mut gram) = (0.0, 0.0);
    for (j, &dense) in norm_dense.iter().enumerate().take(m0) {
        let rows = &s.front_rows[s.width_start[j]..s.width_start[j + 1] - p1];
        let r = rows.len() as f64;
        gram += r * (r + 1.0) / 2.0;
        norms += if dense { (nr * nr) as f64 / (2 * NORM_SPEEDUP) as f64 } else { rows.iter().map(|&row| (nr - row) as f64).sum() };
    }
    let nr = nr as f64;
    nr * nr * nr / (6 * NORM_SPEEDUP) as f64 + gram < norms
}

/// (A⁻¹)_jj of level j of a scalar first factor in the diagonal form, (1 + ‖X W_{j,R}ᵀ‖²)/L_j²,
/// from `inverse` = 1/L_j and `norm` = ‖X W_{j,R}ᵀ‖² (X = L_c⁻¹): the gradient's
/// [`LinearMixedModel::log_det_from_diagonal`] and the conditional variances read the same.
fn first_inverse_diagonal(inverse: f64, norm: f64) -> f64 {
    inverse * inverse * (1.0 + norm)
}
