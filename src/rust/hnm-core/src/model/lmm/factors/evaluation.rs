//! The factorisation of a model with several grouping factors beyond the first factor's
//! diagonal blocks: the fronts, the core's Schur complement and its dense Cholesky factor
//! (module docs of [`super`]); a nested chain's is in [`super::nested`].

use super::selected_inverse::{reserve_core_inverse, DenseFronts, DENSE_BATCH, LEVELS_PER_PRODUCT};
use super::{coupled, transposed_times, Several};
use crate::data::blocks::prefetch_address;
use crate::error::{HnmError, Result};
use crate::model::lmm::{LinearMixedModel, Workspace};
use crate::numerics::blocked::DenseKernels;
use crate::numerics::dense::{lambda_transposed_times, solve_lower_scaled, times_lambda};
use crate::numerics::interrupt::Checkpoint;
use crate::numerics::memory::filled;

impl LinearMixedModel {
    /// The factorisation's part beyond the first factor's diagonal blocks (already in `ws`):
    /// the fronts, the core and its dense factor, leaving L_F's matrix in `ws.lf` as with one
    /// factor, or a nested chain's by [`LinearMixedModel::factorize_nested`]. Returns log|L_c|
    /// of the core's random-effects part. `checkpoint` is asked per level of the first factor
    /// (by its fronts' widths, [`Checkpoint::check_work`]) and by the dense kernels per block.
    ///
    /// # Errors
    /// `Optimizer` when the core is not positive definite (only through rounding: A ⪰ I);
    /// `TooLarge` when (L_c L_cᵀ)⁻¹, which the gradient needs outside the diagonal form of
    /// scalar factors, or a level's front before Λ₀ᵀ (q₀ × its width) does not fit in
    /// memory; `Interrupted` when `checkpoint` asks to stop
    /// (the workspace's core is then unfinished, its panel of dense fronts cleared as after
    /// a factorisation: the next one starts afresh).
    pub(crate) fn factorize_core(&self, s: &Several, theta: &[f64], ws: &mut Workspace, checkpoint: &mut Checkpoint<'_>) -> Result<f64> {
        let (q0, p1) = (self.q, self.p + 1);
        let n = s.core_order(p1);
        let nr = s.core_random;
        let Workspace { l: ls, inverse_diagonal, lambda: lambda0, lf, several, .. } = ws;
        let sw = several.as_mut().expect("a workspace of a model with several factors");
        let mut start = self.theta_positions.len();
        for (other, lambda) in s.others.iter().zip(sw.lambdas.iter_mut()) {
            other.terms().fill_lambda(&theta[start..], lambda);
            start += other.theta_positions.len();
        }
        if let Some(chain) = &s.nested {
            return self.factorize_nested(s, chain, ws);
        }
        // The gradient at this θ needs (L_c L_cᵀ)⁻¹ unless it is in the diagonal form without
        // its product route.
        sw.selected.dense.prepare(s, q0 == 1, self.n.len(), n, p1)?;
        if !Self::diagonal_form(s, lambda0, &sw.lambdas) || sw.selected.dense.by_products {
            reserve_core_inverse(sw, nr)?;
        }
        let core = &mut sw.core;
        // Its lower triangle cleared: all that is written and read (the strict upper
        // triangle keeps the allocation's zeros), half the stores of the whole (n² values,
        // 10.7 MB for InstEval's core, each evaluation).
        for (c, column) in core[..n * n].chunks_exact_mut(n).enumerate() {
            column[c..].fill(0.0);
        }
        // The later factors' diagonal blocks Λᵀ S Λ + I and their [X y] rows Λᵀ B.
        for (other, lambda) in s.others.iter().zip(&sw.lambdas) {
            let q = other.q;
            let (mut t, mut a, mut b) = (vec![0.0; q * q], vec![0.0; q * q], vec![0.0; q * p1]);
            for l in 0..other.levels() {
                let o = other.core_row(l);
                times_lambda(&other.zz[l * q * q..(l + 1) * q * q], lambda, q, &mut t);
                lambda_transposed_times(lambda, &t, q, q, &mut a);
                lambda_transposed_times(lambda, &other.zxy[l * q * p1..(l + 1) * q * p1], q, p1, &mut b);
                for c in 0..q {
                    for r in c..q {
                        core[(o + c) * n + o + r] = a[r * q + c] + if r == c { 1.0 } else { 0.0 };
                    }
                    for x in 0..p1 {
                        core[(o + c) * n + nr + x] = b[c * p1 + x];
                    }
                }
            }
        }
        // Room for one coupling block between later factors and its product with a Λ.
        let width = s.others.iter().map(|o| o.q).max().unwrap_or(0);
        let (mut scratch, mut block) = (vec![0.0; width * width], vec![0.0; width * width]);
        // The couplings between later factors, Λ_gᵀ (Z_gᵀZ_f) Λ_f, below the diagonal.
        for pair in &s.pairs {
            let (g, f) = (&s.others[pair.row.0], &s.others[pair.column.0]);
            let block = &mut block[..g.q * f.q];
            coupled(&s.values[pair.value..pair.value + g.q * f.q], &sw.lambdas[pair.row.0], g.q, &sw.lambdas[pair.column.0], f.q, &mut scratch, block);
            let (og, of) = (s.core_row(pair.row), s.core_row(pair.column));
            for r in 0..g.q {
                for c in 0..f.q {
                    core[(of + c) * n + og + r] = block[r * f.q + c];
                }
            }
        }
        for a in 0..p1 {
            for c in 0..=a {
                core[(nr + c) * n + nr + a] = self.xy[a * p1 + c];
            }
        }
        // The fronts W_j = L_j⁻¹Λ₀ᵀ[...] and the Schur complement K − Σ_j W_jᵀW_j: by columns
        // of K (each front's core rows ascend, so its columns are walked downwards), the
        // [X y] rows of a column contiguous; the [X y]ᵀ[X y] block summed in `xx` first.
        let mut xx = vec![0.0; p1 * p1];
        let scalar = q0 == 1 && s.others.iter().all(|o| o.q == 1);
        let widest = (0..self.n.len()).map(|j| s.width_start[j + 1] - s.width_start[j]).max().unwrap_or(0);
        let mut unscaled = if scalar { Vec::new() } else { filled(&[q0, widest], 0.0, "a front of the first grouping factor")? };
        let mut batch_start = 0;
        // A scalar first factor's fronts that reach most of the core go to a dense panel,
        // applied by packed products (a SYRK) every DENSE_BATCH levels; the others keep the
        // scatter below.
        let mut panel_rows = 0;
        for j in 0..self.n.len() {
            let (first, last) = (s.width_start[j], s.width_start[j + 1]);
            let w = last - first;
            if let Err(error) = checkpoint.check_work(w) {
                sw.selected.dense.panel[..panel_rows * n].fill(0.0);
                return Err(error);
            }
            let r = w - p1;
            let rows = &s.front_rows[first..last];
            let front = &mut sw.fronts[q0 * first..q0 * last];
            let couplings = &s.fronts[s.front_start[j]..s.front_start[j + 1]];
            let zxy = &self.zxy[j * q0 * p1..(j + 1) * q0 * p1];
            if scalar {
                // Scalar factors (InstEval's, one coupling per observed pair of levels): λ₀ c λ_f,
                // as the general case below multiplies them, without its loops.
                for (value, coupling) in front.iter_mut().zip(couplings) {
                    *value = lambda0[0] * (s.values[coupling.value] * sw.lambdas[coupling.row.0][0]);
                }
                lambda_transposed_times(lambda0, zxy, q0, p1, &mut front[r..]);
            } else {
                // Each coupling's (Z_fᵀZ_0)ᵀ Λ_f (q₀ × q_f) and the level's [X y] rows side by
                // side, then Λ₀ᵀ of all of them in one product (the same sums as block by block).
                let unscaled = &mut unscaled[..q0 * w];
                let mut column = 0;
                for coupling in couplings {
                    let (qf, lambda_f) = (s.others[coupling.row.0].q, &sw.lambdas[coupling.row.0]);
                    transposed_times(&s.values[coupling.value..coupling.value + qf * q0], qf, q0, lambda_f, qf, &mut unscaled[column..], w);
                    column += qf;
                }
                for (row, zxy_row) in unscaled.chunks_exact_mut(w).zip(zxy.chunks_exact(p1)) {
                    row[column..].copy_from_slice(zxy_row);
                }
                lambda_transposed_times(lambda0, unscaled, q0, w, front);
            }
            solve_lower_scaled(&ls[j * q0 * q0..(j + 1) * q0 * q0], &inverse_diagonal[j * q0..(j + 1) * q0], q0, front, w);
            let front = &*front;
            if q0 == 1 && sw.selected.dense.is_dense[j] {
                let panel = &mut sw.selected.dense.panel;
                let row = &mut panel[panel_rows * n..(panel_rows + 1) * n];
                for (&ra, &fa) in rows.iter().zip(front) {
                    row[ra] = fa;
                }
                panel_rows += 1;
                if panel_rows == DENSE_BATCH {
                    subtract_panel(&mut sw.kernels, core, n, panel, panel_rows, checkpoint)?;
                    panel_rows = 0;
                }
                continue;
            }
            if q0 == 1 {
                // A scalar first factor (the common case): its rank-one updates scattered
                // after this loop, by blocks of the core's columns; the [X y] block here.
                for a in 0..p1 {
                    let fa = front[r + a];
                    for (value, &fc) in xx[a * p1..=a * p1 + a].iter_mut().zip(&front[r..]) {
                        *value += fa * fc;
                    }
                }
                continue;
            }
            // Levels with the same rows (all of them when the factors are fully crossed) share
            // one product Σ_j W_jᵀW_j of their stacked fronts, applied after the batch's last.
            let rows_of = |j: usize| &s.front_rows[s.width_start[j]..s.width_start[j + 1]];
            if j + 1 < self.n.len() && j + 1 - batch_start < LEVELS_PER_PRODUCT && rows_of(j + 1) == rows {
                continue;
            }
            let stacked = &sw.fronts[q0 * s.width_start[batch_start]..q0 * last];
            let gram = sw.selected.gram(stacked, (j + 1 - batch_start) * q0, w, checkpoint)?;
            batch_start = j + 1;
            // The front's rows consecutive (all of the core's in a fully crossed design): each
            // column's part one slice.
            let consecutive = r == 0 || rows[r - 1] - rows[0] == r - 1;
            for (bcol, &rb) in rows[..r].iter().enumerate() {
                let (target, column) = (&mut core[rb * n..(rb + 1) * n], &gram[bcol * w..(bcol + 1) * w]);
                if consecutive {
                    for (value, &g) in target[rb..rb + r - bcol].iter_mut().zip(&column[bcol..r]) {
                        *value -= g;
                    }
                } else {
                    for (&ra, &g) in rows[bcol..r].iter().zip(&column[bcol..r]) {
                        target[ra] -= g;
                    }
                }
                for (value, &g) in target[nr..].iter_mut().zip(&column[r..]) {
                    *value -= g;
                }
            }
            for a in 0..p1 {
                for c in 0..=a {
                    xx[a * p1 + c] += gram[(r + c) * w + r + a];
                }
            }
        }
        subtract_panel(&mut sw.kernels, core, n, &mut sw.selected.dense.panel, panel_rows, checkpoint)?;
        if q0 == 1 {
            scatter_fronts(&mut sw.kernels, core, n, nr, s, &sw.fronts, &sw.selected.dense, p1, None, checkpoint)?;
        }
        for a in 0..p1 {
            for c in 0..=a {
                core[(nr + c) * n + nr + a] -= xx[a * p1 + c];
            }
        }
        // The random-effects part factored (L_c), the [X y] rows solved against it, and the
        // trailing block less their products: L_F's matrix.
        if !sw.kernels.partial_cholesky(core, n, nr, checkpoint)? {
            return Err(HnmError::Optimizer("the crossed random effects' block lost positive definiteness".into()));
        }
        for a in 0..p1 {
            for c in 0..=a {
                lf[a * p1 + c] = core[(nr + c) * n + nr + a];
            }
        }
        Ok((0..nr).map(|i| core[i * n + i].ln()).sum())
    }
}

/// The core (n × n column-major, lower triangle) less PᵀP for the first `rows` rows of the
/// panel of dense fronts (each scattered over the core's n rows), which are then cleared for
/// the next batch, also when `checkpoint` stops the product.
///
/// # Errors
/// `Interrupted` when `checkpoint` asks to stop.
fn subtract_panel(kernels: &mut DenseKernels, core: &mut [f64], n: usize, panel: &mut [f64], rows: usize, checkpoint: &mut Checkpoint<'_>) -> Result<()> {
    let subtracted = kernels.subtract_gram(core, n, panel, rows, checkpoint);
    panel[..rows * n].fill(0.0);
    subtracted
}

/// Columns of the core per task of [`scatter_fronts`] (shared between the threads, an
/// interrupt asked between them): 36 for InstEval's 1,128 random-effects columns.
const SCATTER_COLUMNS: usize = 32;

/// Entries ahead of [`scatter_fronts`]'s whose fronts are prefetched.
const SCATTER_PREFETCH: usize = 4;

/// The core (n × n column-major, lower triangle, n = `ld`) less Σ_j c_j w_j w_jᵀ for the
/// fronts w_j of a scalar first factor that are not dense (`dense`, applied as panels),
/// c_j = `scales[j]`² (1 without): each front's rank-one update scattered into the core's
/// columns at its rows (random-effects rows, then its p + 1 [X y] values at the core's last
/// rows, left out of a target of order `ld` = nr, as the gradient's T). Column by column,
/// through the fronts that hold each ([`DenseFronts::by_column`]), so that the scattered
/// entries are read from the L1 cache: by blocks of 128 columns, every front in turn
/// (found by bisection), a block (1.2 MB for InstEval) no longer fitted the core's L2 cache
/// and its scattered loads took 7% of a fit's processor time. Each entry is summed in the
/// fronts' order, as one thread would; the columns shared with the kernels' helper thread by
/// [`SCATTER_COLUMNS`], `checkpoint` asked per block.
///
/// # Errors
/// `Interrupted` when `checkpoint` asks to stop (the core then partly updated).
#[allow(clippy::too_many_arguments)]
pub(super) fn scatter_fronts(
    kernels: &mut DenseKernels, core: &mut [f64], n: usize, nr: usize, s: &Several, fronts: &[f64], dense: &DenseFronts, p1: usize, scales: Option<&[f64]>,
    checkpoint: &mut Checkpoint<'_>,
) -> Result<()> {
    let (start, by_column) = (&dense.column_start, &dense.by_column);
    kernels.for_each_chunk(&mut core[..nr * n], SCATTER_COLUMNS * n, checkpoint, |b, block| {
        for (c, target) in (b * SCATTER_COLUMNS..).zip(block.chunks_exact_mut(n)) {
            let entries = &by_column[start[c]..start[c + 1]];
            for (i, &(k, j)) in entries.iter().enumerate() {
                // The fronts' rows and values a few entries ahead: each entry's are in another
                // front (from the L3 cache), and its work (~50 multiply-adds for InstEval)
                // would otherwise wait for them.
                if let Some(&(ahead, level)) = entries.get(i + SCATTER_PREFETCH) {
                    prefetch_address(s.front_rows.as_ptr().wrapping_add(ahead));
                    prefetch_address(fronts.as_ptr().wrapping_add(ahead));
                    prefetch_address(fronts.as_ptr().wrapping_add(s.width_start[level + 1] - p1));
                }
                let (end, scale) = (s.width_start[j + 1], scales.map_or(1.0, |scales| scales[j] * scales[j]));
                let fb = scale * fronts[k];
                for (&ra, &fa) in s.front_rows[k..end - p1].iter().zip(&fronts[k..end - p1]) {
                    target[ra] -= fa * fb;
                }
                for (value, &fa) in target[nr..].iter_mut().zip(&fronts[end - p1..end]) {
                    *value -= fa * fb;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use crate::data::blocks::Column;
    use crate::model::lmm::{GroupingFactor, LinearMixedModel, Term};
    use crate::model::one_way::profiled_deviance::Criterion;
    use crate::numerics::blocked::{NB, ONE_THREAD};
    use crate::numerics::interrupt::{Checkpoint, Never, StopAt};
    use crate::{CrossProducts, HnmError};

    /// Levels of the crossed model's second factor: a core of five block columns of the
    /// dense kernels ([`NB`] = 96 wide).
    const ITEMS: usize = 400;

    /// A crossed model `y ~ 1 + (1 | user) + (1 | item)`: 800 users who rate 8 pseudo-random
    /// items each, and 6 who rate three items in four (their fronts take the dense panels,
    /// which hold values at other places in the factorisation and the gradient), one row per
    /// cell.
    fn crossed() -> LinearMixedModel {
        let mut state = 11u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut pairs = Vec::new();
        for user in 0..800 {
            for _ in 0..8 {
                pairs.push((user, (next() * ITEMS as f64) as usize));
            }
        }
        pairs.extend((800..806).flat_map(|u| (0..ITEMS).filter(|i| i % 4 != 1).map(move |i| (u, i))));
        let y: Vec<f64> = pairs.iter().map(|&(u, i)| ((u * 7) % 11) as f64 * 0.1 + ((i * 5) % 13) as f64 * 0.2 + next()).collect();
        let rows = pairs.len();
        let stats = CrossProducts::from_columns(&[Column::Double(&y)], (0..rows).map(|r| r as i32 + 1), rows, &mut Checkpoint::new(&Never)).unwrap().stats;
        let factor = |level_of_group: Vec<usize>, levels| GroupingFactor { level_of_group, levels, random: vec![Term::Intercept], blocks: vec![1] };
        let factors = [factor(pairs.iter().map(|p| p.0).collect(), 806), factor(pairs.iter().map(|p| p.1).collect(), ITEMS)];
        LinearMixedModel::with_factors(&stats, 0, vec![Term::Intercept], &factors, &mut Checkpoint::new(&Never)).unwrap()
    }

    /// An evaluation asks its checkpoint from inside the factorisation (at least once per
    /// block column of the core's Cholesky factor) and its gradient; stopped at any of those
    /// questions it returns `Interrupted` without asking another, and the same workspace's
    /// next evaluation equals a fresh workspace's (bit for bit: the panel of dense fronts and
    /// the gradient's sums left cleared). At θ in the diagonal form and in the selected
    /// inverse's. On one thread, so that the questions can be counted (the kernels' tests
    /// stop their helper thread).
    #[test]
    fn an_interrupted_evaluation_stops_inside_and_leaves_the_workspace_usable() {
        ONE_THREAD.with(|one| one.set(true));
        let model = crossed();
        let sw = model.workspace().unwrap();
        assert!(sw.several.as_ref().unwrap().selected.dense.is_dense.is_empty(), "prepared by the first factorisation");
        for theta in [[0.8, 0.5], [0.005, 0.5]] {
            let expected = model.deviance_and_gradient(Criterion::Ml, &theta, &mut model.workspace().unwrap()).unwrap();
            let mut ws = model.workspace().unwrap();
            let counter = StopAt::new(usize::MAX);
            model.factorize_checked(&theta, &mut ws, &mut Checkpoint::asking_every_time(&counter)).unwrap();
            let in_factorisation = counter.questions.get();
            assert!(in_factorisation >= ITEMS.div_ceil(NB), "{in_factorisation} questions in the factorisation");
            assert!(ws.several.as_ref().unwrap().selected.dense.levels.len() == 6);
            let counter = StopAt::new(usize::MAX);
            model.deviance_and_gradient_checked(Criterion::Ml, &theta, &mut ws, &mut Checkpoint::asking_every_time(&counter)).unwrap();
            let questions = counter.questions.get();
            assert!(questions > in_factorisation, "the gradient asks too");
            for k in 1..=questions {
                let stop = StopAt::new(k);
                let stopped = model.deviance_and_gradient_checked(Criterion::Ml, &theta, &mut ws, &mut Checkpoint::asking_every_time(&stop));
                assert!(matches!(stopped, Err(HnmError::Interrupted)), "θ {theta:?}, question {k}: {stopped:?}");
                assert_eq!(stop.questions.get(), k);
                let (value, gradient) = model.deviance_and_gradient(Criterion::Ml, &theta, &mut ws).unwrap();
                assert_eq!(value.to_bits(), expected.0.to_bits(), "θ {theta:?}, after a stop at question {k}");
                assert_eq!(gradient.iter().map(|g| g.to_bits()).collect::<Vec<_>>(), expected.1.iter().map(|g| g.to_bits()).collect::<Vec<_>>());
            }
        }
    }

    /// A model given one thread starts no helper thread for its dense kernels (its workspace,
    /// an evaluation, a copy of the workspace, a fit), one given two does on a machine with
    /// two, and both fit the same (the kernels sum every entry as on one thread).
    #[test]
    fn one_thread_starts_no_helper_thread() {
        use crate::numerics::blocked::HELPERS_STARTED;
        ONE_THREAD.with(|one| one.set(false));
        let mut fits = Vec::new();
        for threads in [1, 2] {
            let before = HELPERS_STARTED.with(std::cell::Cell::get);
            let model = crossed().with_threads(threads);
            let mut ws = model.workspace().unwrap();
            model.deviance_and_gradient(Criterion::Ml, &[0.8, 0.5], &mut ws).unwrap();
            drop(ws.clone());
            fits.push(model.fit(Criterion::Ml, None, &mut Checkpoint::new(&Never)).unwrap());
            let started = HELPERS_STARTED.with(std::cell::Cell::get) - before;
            if threads == 1 {
                assert_eq!(started, 0, "helper threads started with one thread");
            } else if std::thread::available_parallelism().map_or(1, |t| t.get()) >= 2 {
                assert!(started > 0, "no helper thread with two");
            }
        }
        assert_eq!(fits[0].deviance.to_bits(), fits[1].deviance.to_bits());
        assert_eq!(fits[0].internal_theta, fits[1].internal_theta);
    }

    /// A fit stopped at its second question (within its first evaluation, whose error the
    /// search returns at once), at its middle one and its last returns `Interrupted` without
    /// asking again (the stop is latched: a line search that took the interrupted evaluation
    /// for a failed step does not go on), and the model's next fit equals a fresh model's.
    #[test]
    fn an_interrupted_fit_returns_interrupted_and_the_next_fit_is_unchanged() {
        ONE_THREAD.with(|one| one.set(true));
        let model = crossed();
        let expected = crossed().fit(Criterion::Reml, None, &mut Checkpoint::new(&Never)).unwrap();
        let counter = StopAt::new(usize::MAX);
        model.fit(Criterion::Reml, None, &mut Checkpoint::asking_every_time(&counter)).unwrap();
        let questions = counter.questions.get();
        for k in [2, questions / 2, questions] {
            let stop = StopAt::new(k);
            let stopped = model.fit(Criterion::Reml, None, &mut Checkpoint::asking_every_time(&stop));
            assert!(matches!(stopped, Err(HnmError::Interrupted)), "question {k} of {questions}: {stopped:?}");
            assert_eq!(stop.questions.get(), k);
        }
        let fit = model.fit(Criterion::Reml, None, &mut Checkpoint::new(&Never)).unwrap();
        assert_eq!(fit.deviance.to_bits(), expected.deviance.to_bits());
        assert_eq!(fit.internal_theta, expected.internal_theta);
    }

    /// The random effects' conditional variances (the dense core's inverse, minutes at
    /// MovieLens' shapes) ask the checkpoint too: stopped at any of their questions they
    /// return `Interrupted`, and asked again they equal an uninterrupted call's.
    #[test]
    fn the_random_effects_stop_when_asked() {
        ONE_THREAD.with(|one| one.set(true));
        let model = crossed();
        let fit = model.fit(Criterion::Ml, None, &mut Checkpoint::new(&Never)).unwrap();
        let counter = StopAt::new(usize::MAX);
        let expected = model.random_effects_by_factor(&fit, &mut Checkpoint::asking_every_time(&counter)).unwrap();
        let questions = counter.questions.get();
        assert!(questions >= 2 * ITEMS.div_ceil(NB), "{questions} questions");
        for k in [1, questions / 2, questions] {
            let stop = StopAt::new(k);
            let stopped = model.random_effects_by_factor(&fit, &mut Checkpoint::asking_every_time(&stop));
            assert!(matches!(stopped, Err(HnmError::Interrupted)), "question {k} of {questions}");
        }
        let again = model.random_effects_by_factor(&fit, &mut Checkpoint::new(&Never)).unwrap();
        for (a, b) in again.iter().zip(&expected) {
            assert_eq!(a.modes, b.modes);
            assert_eq!(a.conditional_covariances, b.conditional_covariances);
        }
    }
}
