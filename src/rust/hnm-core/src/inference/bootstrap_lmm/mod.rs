//! Parametric bootstrap of the linear mixed model in sufficient-statistic space.
//!
//! The replicates' statistics are drawn by [`generator`]; this module refits them.
//!
//! # Refits
//! Each replicate is refitted from its statistics, warm-started at a given internal θ (the
//! fit's: the replicates are drawn around it), on scoped threads, which also draw its
//! normals from its own seed ([`seeded_normals`]). The refit takes quasi-Newton
//! steps θ ← θ − H⁻¹∇d(θ) from H₀, the Hessian at the fit computed once (a replicate's Hessian
//! is within O(m^−1/2) of it), with BFGS updates: a step costs one gradient, where a Newton
//! step of [`LinearMixedModel::fit`] takes 1 + dim θ gradients. The minimum is declared
//! by the same test as there (gradient max-norm ≤ 1e-10 N); a replicate whose steps reach a
//! bound (a singular fit), raise the criterion or do not converge in a few steps is refitted
//! by [`LinearMixedModel::fit`] from the start. A single θ (a random intercept, the one-way
//! model) is refitted by the safeguarded Newton–secant search in one variable instead, which
//! reaches a singular replicate's θ = 0 itself.

use std::cell::RefCell;

use crate::data::cross_products::CrossProducts;
use crate::error::{HnmError, Result};
use crate::model::lmm::{LinearMixedModel, LmmFit, Structure, Term, Workspace};
use crate::model::one_way::profiled_deviance::Criterion;
use crate::numerics::dense::{cholesky_in_place, solve_lower, solve_lower_transposed};
use crate::numerics::interrupt::{Checkpoint, Interrupt, Polled};
use crate::numerics::memory::{filled, unless_out_of_memory};
use crate::numerics::parallel::in_parallel;
use crate::numerics::solve1d::minimize_scalar;
pub use generator::{seeded_normals, ReplicateGenerator, Simulation};

mod generator;

/// A model refitted to every replicate: its structure over the replicate's variables, the
/// criterion and the internal θ to start from. A structure without random effects is the
/// linear model, fitted as the mixed model with a random intercept held at θ = 0 (its
/// profiled deviance there is that of least squares).
#[derive(Debug, Clone, PartialEq)]
pub struct Refit {
    /// The model's response and design columns.
    pub structure: Structure,
    /// ML or REML.
    pub criterion: Criterion,
    /// The internal θ to start from ([`LmmFit::internal_theta`] of the fit); ignored for a linear model.
    pub start: Vec<f64>,
}

impl Refit {
    /// The model refitted, on `stats`: the structure's, or for a linear model the random
    /// intercept held at θ = 0.
    fn model(&self, stats: &CrossProducts) -> Result<LinearMixedModel> {
        if self.structure.random.is_empty() {
            return LinearMixedModel::new(stats, Structure { random: vec![Term::Intercept], blocks: vec![1], ..self.structure.clone() });
        }
        LinearMixedModel::new(stats, self.structure.clone())
    }

    /// The refit of `model` ([`Refit::model`] of a replicate's statistics, `ws` its
    /// workspace): by quasi-Newton steps from the Hessian `hessian` (at the start, of the
    /// original data) when given and they converge, else by the full search of
    /// [`LinearMixedModel::fit`] from the start.
    fn fit(&self, model: &LinearMixedModel, hessian: Option<&[f64]>, ws: &mut Workspace, checkpoint: &mut Checkpoint<'_>) -> Result<LmmFit> {
        if self.structure.random.is_empty() {
            return model.fit_at(self.criterion, &[0.0], checkpoint);
        }
        if let Some(hessian) = hessian {
            let refit = if self.start.len() == 1 {
                scalar_fit(model, self.criterion, self.start[0], hessian[0], ws, checkpoint)
            } else {
                quasi_newton_fit(model, self.criterion, &self.start, hessian, ws, checkpoint)
            };
            match refit {
                Ok(Some(fit)) => return Ok(fit),
                Err(HnmError::Interrupted) => return Err(HnmError::Interrupted),
                Ok(None) | Err(_) => {}
            }
        }
        model.fit(self.criterion, Some(&self.start), checkpoint)
    }

    /// The Hessian (n × n, row-major) of the criterion in the internal θ at the start, for
    /// the model on `stats` (the data the replicates are drawn about), by forward differences
    /// of the analytic gradient, each evaluation asking `checkpoint`; `None` for a linear
    /// model, a start on a bound, an evaluation that fails or a Hessian that is not positive
    /// definite.
    ///
    /// # Errors
    /// `Interrupted` when `checkpoint` reports a user interrupt.
    fn start_hessian(&self, model: &LinearMixedModel, checkpoint: &mut Checkpoint<'_>) -> Result<Option<Vec<f64>>> {
        let theta = &self.start;
        let on_bound = theta.len() != model.lower().len() || theta.iter().zip(model.lower()).any(|(t, l)| t <= l);
        if self.structure.random.is_empty() || on_bound {
            return Ok(None);
        }
        let n = theta.len();
        let mut differences = || -> Result<Vec<f64>> {
            let mut ws = model.workspace()?;
            let (_, at_start) = model.deviance_and_gradient_checked(self.criterion, theta, &mut ws, checkpoint)?;
            let mut hessian = vec![0.0; n * n];
            for c in 0..n {
                checkpoint.check_timed()?;
                let mut shifted = theta.clone();
                let step = 1e-6 * theta[c].abs().max(1e-2);
                shifted[c] += step;
                let (_, gradient) = model.deviance_and_gradient_checked(self.criterion, &shifted, &mut ws, checkpoint)?;
                for r in 0..n {
                    hessian[r * n + c] = (gradient[r] - at_start[r]) / step;
                }
            }
            Ok(hessian)
        };
        let mut hessian = match differences() {
            Ok(hessian) => hessian,
            Err(HnmError::Interrupted) => return Err(HnmError::Interrupted),
            Err(_) => return Ok(None),
        };
        for r in 0..n {
            for c in 0..r {
                let mean = 0.5 * (hessian[r * n + c] + hessian[c * n + r]);
                (hessian[r * n + c], hessian[c * n + r]) = (mean, mean);
            }
        }
        Ok(cholesky_in_place(&mut hessian.clone(), n).then_some(hessian))
    }
}

/// Quasi-Newton steps a refit takes before it falls back to the full search.
const QUASI_NEWTON_STEPS: usize = 12;

/// The minimum of `model`'s criterion d by quasi-Newton steps θ ← θ − H⁻¹∇d(θ) from `start`,
/// with H first `hessian` (the original data's Hessian at the fit, within O(m^−1/2) of a
/// replicate's at its minimum) and then BFGS updates (H ← H − H s sᵀH / sᵀH s + y yᵀ / yᵀs
/// for the step s and gradient change y, when yᵀs > 0): one gradient evaluation a step, where
/// a Newton step of [`crate::minimize_bounded`] takes 1 + dim θ. The convergence test is the
/// full search's (max-norm of the gradient ≤ 1e-10 N). `None` (the caller then runs the full
/// search) when a step would reach a bound (a singular replicate), raises the criterion, or
/// the steps run out. Every step and its evaluation ask `checkpoint`.
///
/// # Errors
/// The errors of the evaluations; `Interrupted` when `checkpoint` reports a user interrupt.
fn quasi_newton_fit(
    model: &LinearMixedModel, criterion: Criterion, start: &[f64], hessian: &[f64], ws: &mut Workspace, checkpoint: &mut Checkpoint<'_>,
) -> Result<Option<LmmFit>> {
    let n = start.len();
    let tolerance = 1e-10 * model.n_obs();
    let mut h = hessian.to_vec();
    let mut theta = start.to_vec();
    let (mut value, mut gradient) = model.deviance_and_gradient_checked(criterion, &theta, ws, checkpoint)?;
    for step in 0..=QUASI_NEWTON_STEPS {
        if gradient.iter().all(|g| g.abs() <= tolerance) {
            let mut fit = model.fit_at_gradient(criterion, &theta, gradient, ws)?;
            (fit.iterations, fit.evaluations) = (step, step + 2);
            return Ok(Some(fit));
        }
        let mut factor = h.clone();
        if step == QUASI_NEWTON_STEPS || !cholesky_in_place(&mut factor, n) {
            break;
        }
        checkpoint.check_timed()?;
        let mut direction = gradient.clone();
        solve_lower(&factor, n, &mut direction, 1);
        solve_lower_transposed(&factor, n, &mut direction, 1);
        let trial: Vec<f64> = theta.iter().zip(&direction).map(|(t, d)| t - d).collect();
        if trial.iter().zip(model.lower()).any(|(t, l)| t <= l) {
            return Ok(None);
        }
        let (trial_value, trial_gradient) = model.deviance_and_gradient_checked(criterion, &trial, ws, checkpoint)?;
        if !(trial_value <= value + 1e-12 * value.abs().max(1.0)) {
            return Ok(None);
        }
        let s: Vec<f64> = direction.iter().map(|d| -d).collect();
        let y: Vec<f64> = trial_gradient.iter().zip(&gradient).map(|(a, b)| a - b).collect();
        bfgs_update(&mut h, &s, &y);
        (theta, value, gradient) = (trial, trial_value, trial_gradient);
    }
    Ok(None)
}

/// The minimum of `model`'s criterion d in a single θ (a random intercept) by
/// [`minimize_scalar`] from `start`, its first Newton step with `curvature` (the original
/// data's d'' at the fit) and then secants of d': one evaluation a step, as
/// [`quasi_newton_fit`], with θ's bound handled in the same search (a singular replicate's
/// θ = 0 is reached by a projected step and kept when d'' > 0 there), where the quasi-Newton
/// steps hand such a replicate to the full search. `None` (the caller then runs the full
/// search) when it does not converge. The search and its evaluations ask `checkpoint`
/// ([`Polled`]: the search takes a failed evaluation for too long a step).
///
/// # Errors
/// The error of the evaluation at the start; `Interrupted` when `checkpoint` reports a user
/// interrupt.
fn scalar_fit(
    model: &LinearMixedModel, criterion: Criterion, start: f64, curvature: f64, ws: &mut Workspace, checkpoint: &mut Checkpoint<'_>,
) -> Result<Option<LmmFit>> {
    let tolerance = 1e-10 * model.n_obs();
    let lower = model.lower()[0];
    let cell = RefCell::new(&mut *ws);
    let polled = Polled::new(checkpoint);
    let objective = |theta: f64| {
        let evaluated = polled.evaluate(|checkpoint| model.deviance_and_gradient_checked(criterion, &[theta], &mut cell.borrow_mut(), checkpoint));
        evaluated.map(|(value, gradient)| (value, gradient[0]))
    };
    let found = polled.run(|checkpoint| minimize_scalar(objective, start, lower, tolerance, Some(curvature), checkpoint))?;
    if !found.converged {
        return Ok(None);
    }
    let mut fit = model.fit_at_gradient(criterion, &[found.x], vec![found.derivative], ws)?;
    (fit.iterations, fit.evaluations) = (found.evaluations, found.evaluations + 1);
    Ok(Some(fit))
}

/// H ← H − H s sᵀH / sᵀH s + y yᵀ / yᵀs (n × n row-major), skipped unless both curvatures
/// are positive (the update then keeps H positive definite).
fn bfgs_update(h: &mut [f64], s: &[f64], y: &[f64]) {
    let n = s.len();
    let hs: Vec<f64> = (0..n).map(|r| (0..n).map(|c| h[r * n + c] * s[c]).sum()).collect();
    let (shs, ys) = (s.iter().zip(&hs).map(|(a, b)| a * b).sum::<f64>(), s.iter().zip(y).map(|(a, b)| a * b).sum::<f64>());
    if !(shs > 0.0 && ys > 0.0) {
        return;
    }
    for r in 0..n {
        for c in 0..n {
            h[r * n + c] += y[r] * y[c] / ys - hs[r] * hs[c] / shs;
        }
    }
}

/// The refits of each replicate, one [`LmmFit`] per [`Refit`] in order; `None` where one failed.
pub type LmmRefits = Vec<Option<Vec<LmmFit>>>;

/// Refits `models` to the replicates of `generator` given by `seeds` (one per replicate: its
/// [`ReplicateGenerator::normals`] standard normals are [`seeded_normals`] of it) and
/// `chi_squares` (one χ²_D each), in parallel on `threads` threads (at most the machine's
/// available parallelism and the number of replicates): the calling thread
/// only waits, asking `interrupt` at least every [`Checkpoint::INTERVAL`]; the refit threads
/// see a shared flag and stop before their next replicate or optimiser step.
///
/// # Errors
/// `LengthMismatch` when `seeds` and `chi_squares` differ in length;
/// `TooLarge` when the results, a replicate's statistics or a thread's copies of the models
/// do not fit in memory; `Optimizer` when a thread cannot start or panics; `Interrupted` when
/// `interrupt` asks to stop. A replicate whose statistics or refit fail otherwise gives `None`.
///
/// # Example
/// ```
/// use hnm_core::{refit_lmm_replicates, Criterion, CrossProducts, Never, Refit, ReplicateGenerator, Simulation, Structure, Term};
/// let stats = CrossProducts::new(vec![0.0], vec![4.0; 3], vec![0.0, 1.0, 3.0], vec![3.0, 2.0, 4.0]).unwrap();
/// let structure = Structure { response: 0, fixed: vec![Term::Intercept], random: vec![Term::Intercept], blocks: vec![1] };
/// let simulation = Simulation { structure: structure.clone(), coefficients: vec![1.0], re_covariance: vec![2.0], sigma: 1.0 };
/// let generator = ReplicateGenerator::new(&stats, &simulation).unwrap();
/// let refit = Refit { structure, criterion: Criterion::Reml, start: vec![1.0] };
/// let fits = refit_lmm_replicates(&generator, &[refit], &[1, 2], &[8.0, 10.0], 2, &Never).unwrap();
/// assert!(fits.iter().all(|f| f.as_ref().is_some_and(|f| f[0].converged)));
/// ```
pub fn refit_lmm_replicates(
    generator: &ReplicateGenerator, models: &[Refit], seeds: &[u64], chi_squares: &[f64], threads: usize, interrupt: &dyn Interrupt,
) -> Result<LmmRefits> {
    let replicates = chi_squares.len();
    if seeds.len() != replicates {
        return Err(HnmError::LengthMismatch { first: "seeds", first_len: seeds.len(), second: "chi_squares", second_len: replicates });
    }
    // Each refit's model is built once, on the original data, and each thread's copy is given
    // a replicate's response (the design never changes): a model that cannot be built fails
    // every replicate.
    let built = models.iter().map(|refit| unless_out_of_memory(refit.model(&generator.template))).collect::<Result<Vec<_>>>()?;
    if let Some(Some(model)) = built.iter().find(|m| m.as_ref().is_some_and(|m| m.n_factors() > 1)) {
        model.require_one_factor("the parametric bootstrap with several grouping factors (yet)")?;
    }
    let mut checkpoint = Checkpoint::new(interrupt);
    let hessians = models
        .iter()
        .zip(&built)
        .map(|(refit, model)| model.as_ref().map_or(Ok(None), |model| refit.start_hessian(model, &mut checkpoint)))
        .collect::<Result<Vec<Option<Vec<f64>>>>>()?;
    let per_thread = || {
        let prepared = built
            .iter()
            .map(|model| model.as_ref().map(|model| Ok((model.try_clone()?, model.workspace()?))).transpose())
            .collect::<Result<Vec<Option<(LinearMixedModel, Workspace)>>>>()?;
        Ok((filled(&[generator.normals()], 0.0, "a replicate's normal draws")?, prepared))
    };
    in_parallel(replicates, threads, interrupt, per_thread, |(normals, prepared), r, stop| {
        seeded_normals(seeds[r], normals);
        let Some(stats) = unless_out_of_memory(generator.generate(normals, chi_squares[r]))? else { return Ok(None) };
        let mut checkpoint = Checkpoint::new(stop);
        Ok(models
            .iter()
            .zip(&hessians)
            .zip(prepared.iter_mut())
            .map(|((refit, hessian), prepared)| {
                let (model, ws) = prepared.as_mut()?;
                model.replace_response(&stats).ok()?;
                refit.fit(model, hessian.as_deref(), ws, &mut checkpoint).ok()
            })
            .collect())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::blocks::Column;
    use crate::numerics::interrupt::Never;

    /// Three groups (5, 2 and 6 rows) of y, x (varying within groups), w (constant within
    /// groups) and indicators a, b that sum to one within the third group.
    fn design() -> (Vec<[f64; 5]>, Vec<i32>) {
        let rows = vec![
            [1.0, 0.3, 2.0, 1.0, 0.0],
            [2.0, -1.2, 2.0, 0.0, 1.0],
            [0.5, 0.8, 2.0, 1.0, 1.0],
            [1.5, 2.1, 2.0, 0.0, 0.0],
            [3.0, 0.1, 2.0, 1.0, 0.0],
            [2.0, 1.0, -1.0, 1.0, 0.0],
            [2.5, 3.0, -1.0, 0.0, 0.0],
            [4.0, -0.5, 0.5, 1.0, 0.0],
            [3.5, 0.4, 0.5, 0.0, 1.0],
            [5.0, 1.7, 0.5, 1.0, 0.0],
            [4.5, -2.0, 0.5, 0.0, 1.0],
            [6.0, 0.9, 0.5, 0.0, 1.0],
            [5.5, 1.1, 0.5, 1.0, 0.0],
        ];
        let codes = vec![1, 1, 1, 1, 1, 2, 2, 3, 3, 3, 3, 3, 3];
        (rows, codes)
    }

    fn stats_of(rows: &[[f64; 5]], codes: &[i32]) -> CrossProducts {
        let columns: Vec<Vec<f64>> = (0..5).map(|a| rows.iter().map(|r| r[a]).collect()).collect();
        let columns: Vec<Column<'_>> = columns.iter().map(|c| Column::Double(c)).collect();
        CrossProducts::from_columns(&columns, codes.iter().copied(), 3, &mut Checkpoint::new(&Never)).unwrap().stats
    }

    fn simulation() -> Simulation {
        let structure = Structure {
            response: 0,
            fixed: vec![Term::Intercept, Term::Variable(1), Term::Variable(2), Term::Variable(3)],
            random: vec![Term::Intercept, Term::Variable(1)],
            blocks: vec![2],
        };
        Simulation { structure, coefficients: vec![1.5, -0.7, 0.4, 2.0], re_covariance: vec![2.0, 0.6, 0.6, 0.5], sigma: 0.8 }
    }

    #[test]
    fn a_workspace_is_not_reused_across_responses() {
        // The factorisation a workspace holds at θ belongs to the response it was taken for:
        // after replace_response the fit at θ is that of a model built on the new data.
        let (rows, codes) = design();
        let structure = Structure { response: 0, fixed: vec![Term::Intercept, Term::Variable(1)], random: vec![Term::Intercept], blocks: vec![1] };
        let mut model = LinearMixedModel::new(&stats_of(&rows, &codes), structure.clone()).unwrap();
        let mut ws = model.workspace().unwrap();
        let theta = [0.7];
        let (_, gradient) = model.deviance_and_gradient(Criterion::Ml, &theta, &mut ws).unwrap();
        let other: Vec<[f64; 5]> = rows.iter().map(|r| [2.0 * r[0] + 3.0 * r[1], r[1], r[2], r[3], r[4]]).collect();
        model.replace_response(&stats_of(&other, &codes)).unwrap();
        let reused = model.fit_at_gradient(Criterion::Ml, &theta, gradient, &mut ws).unwrap();
        let fresh = LinearMixedModel::new(&stats_of(&other, &codes), structure).unwrap().fit_at(Criterion::Ml, &theta, &mut Checkpoint::new(&Never)).unwrap();
        assert!((reused.deviance - fresh.deviance).abs() <= 1e-10 * fresh.deviance.abs(), "{} vs {}", reused.deviance, fresh.deviance);
        for (a, b) in reused.beta.iter().zip(&fresh.beta) {
            assert!((a - b).abs() <= 1e-10 * b.abs().max(1.0), "{:?} vs {:?}", reused.beta, fresh.beta);
        }
    }

    #[test]
    fn replicate_moments_equal_those_of_simulated_rows() {
        // The exact mean and covariance of (ȳ_j, D_jᵀy) and E W_j[y, y] for y ~ N(Xβ, ZΣZᵀ + σ²I),
        // from the rows, against the generator's.
        let (rows, codes) = design();
        let stats = stats_of(&rows, &codes);
        let sim = simulation();
        let generator = ReplicateGenerator::new(&stats, &sim).unwrap();
        assert_eq!(generator.groups.iter().map(|g| g.rank).collect::<Vec<_>>(), vec![3, 1, 2]);
        let sigma2 = sim.sigma * sim.sigma;
        for g in &generator.groups {
            let members: Vec<&[f64; 5]> = rows.iter().zip(&codes).filter(|(_, &c)| c as usize == g.group + 1).map(|(r, _)| r).collect();
            let n = members.len();
            let mu: Vec<f64> = members.iter().map(|r| 1.5 - 0.7 * r[1] + 0.4 * r[2] + 2.0 * r[3]).collect();
            let z: Vec<[f64; 2]> = members.iter().map(|r| [1.0, r[1]]).collect();
            let v = |i: usize, l: usize| {
                let s = &sim.re_covariance;
                let zz = z[i][0] * (s[0] * z[l][0] + s[1] * z[l][1]) + z[i][1] * (s[2] * z[l][0] + s[3] * z[l][1]);
                zz + if i == l { sigma2 } else { 0.0 }
            };
            // A = [1ᵀ/n; Dᵀ] over the other variables (x, w, a, b).
            let means: Vec<f64> = (1..5).map(|a| members.iter().map(|r| r[a]).sum::<f64>() / n as f64).collect();
            let a_row = |s: usize, i: usize| if s == 0 { 1.0 / n as f64 } else { members[i][s] - means[s - 1] };
            let expected_mean: Vec<f64> = (0..5).map(|s| (0..n).map(|i| a_row(s, i) * mu[i]).sum()).collect();
            let expected_cov = |s: usize, t: usize| (0..n).map(|i| (0..n).map(|l| a_row(s, i) * v(i, l) * a_row(t, l)).sum::<f64>()).sum::<f64>();
            // The generator's: (ȳ, c) = (p_y + fixed_mean + ω₀, L (h + ω₁..)), ω ~ N(0, C Cᵀ).
            let dim = 1 + g.rank;
            let omega = |r: usize, c: usize| (0..dim).map(|t| g.factor[r * dim + t] * g.factor[c * dim + t]).sum::<f64>();
            let map = |s: usize, r: usize| match (s, r) {
                (0, 0) => 1.0,
                (0, _) | (_, 0) => 0.0,
                (s, r) => g.within[(s - 1) * g.rank + r - 1],
            };
            let mean_of = |s: usize| if s == 0 { stats.pilot()[0] + g.fixed_mean } else { (0..g.rank).map(|r| map(s, r + 1) * g.fixed_slopes[r]).sum() };
            let cov_of = |s: usize, t: usize| (0..dim).map(|r| (0..dim).map(|c| map(s, r) * omega(r, c) * map(t, c)).sum::<f64>()).sum::<f64>();
            for (s, expected) in expected_mean.iter().enumerate() {
                assert!((mean_of(s) - expected).abs() < 1e-12, "group {}, mean {s}", g.group);
                for t in 0..5 {
                    let (ours, exact) = (cov_of(s, t), expected_cov(s, t));
                    assert!((ours - exact).abs() < 1e-12 * (1.0 + exact.abs()), "group {}, cov {s} {t}: {ours} vs {exact}", g.group);
                }
            }
            // E W[y, y] = tr(PV) + μᵀPμ, P the centring; the generator's |h|² + tr Ω₁.. + σ² df_j.
            let centred_mu: Vec<f64> = mu.iter().map(|m| m - mu.iter().sum::<f64>() / n as f64).collect();
            let trace: f64 = (0..n).map(|i| v(i, i)).sum::<f64>() - (0..n).map(|i| (0..n).map(|l| v(i, l)).sum::<f64>()).sum::<f64>() / n as f64;
            let exact = trace + centred_mu.iter().map(|m| m * m).sum::<f64>();
            let ours = g.fixed_slopes.iter().map(|h| h * h).sum::<f64>()
                + (1..dim).map(|r| omega(r, r)).sum::<f64>()
                + g.residual_share * generator.residual_df * sigma2;
            assert!((ours - exact).abs() < 1e-12 * exact, "group {}: E W[y, y] {ours} vs {exact}", g.group);
        }
        // Ranks 3, 1 and 2 (w constant in every group; a + b = 1 in group 3; two rows in group 2).
        assert_eq!(generator.residual_df(), (4.0 - 3.0) + (1.0 - 1.0) + (5.0 - 2.0));
        assert_eq!(generator.normals(), 4 + 2 + 3);
    }

    #[test]
    fn the_split_of_the_pooled_residual_does_not_change_the_fit() {
        let (rows, codes) = design();
        let stats = stats_of(&rows, &codes);
        let sim = simulation();
        let generator = ReplicateGenerator::new(&stats, &sim).unwrap();
        let normals: Vec<f64> = (0..generator.normals()).map(|i| ((i * 7 % 5) as f64 - 2.0) * 0.6).collect();
        let replicate = generator.generate(&normals, 3.0).unwrap();
        // All of the residual in group 1 instead of in proportion to the degrees of freedom.
        let k = 5;
        let triangle = k * (k + 1) / 2;
        let mut moved = replicate.comoments().to_vec();
        let residual = generator.sigma2 * 3.0;
        for g in &generator.groups {
            moved[g.group * triangle] -= g.residual_share * residual;
        }
        moved[0] += residual;
        let other = CrossProducts::new(replicate.pilot().to_vec(), replicate.n().to_vec(), replicate.means().to_vec(), moved).unwrap();
        for criterion in [Criterion::Ml, Criterion::Reml] {
            let fit = |s: &CrossProducts| LinearMixedModel::new(s, sim.structure.clone()).unwrap().fit(criterion, None, &mut Checkpoint::new(&Never)).unwrap();
            let (a, b) = (fit(&replicate), fit(&other));
            assert!((a.deviance - b.deviance).abs() < 1e-9, "{criterion:?}");
            for (x, y) in a.beta.iter().zip(&b.beta).chain(a.theta.iter().zip(&b.theta)) {
                assert!((x - y).abs() < 1e-6 * (1.0 + x.abs()), "{criterion:?}: {x} vs {y}");
            }
        }
    }

    #[test]
    fn refits_do_not_depend_on_the_threads_and_bad_draws_are_refused() {
        let (rows, codes) = design();
        let stats = stats_of(&rows, &codes);
        let sim = Simulation {
            structure: Structure { random: vec![Term::Intercept], blocks: vec![1], ..simulation().structure },
            re_covariance: vec![2.0],
            ..simulation()
        };
        let generator = ReplicateGenerator::new(&stats, &sim).unwrap();
        let seeds = [11, 12, 13, 14];
        let chi = [4.0, 2.5, 6.0, 3.0];
        let refit = Refit { structure: sim.structure.clone(), criterion: Criterion::Ml, start: vec![1.0] };
        let linear = Refit { structure: Structure { random: vec![], blocks: vec![], ..sim.structure.clone() }, ..refit.clone() };
        let one = refit_lmm_replicates(&generator, &[refit.clone(), linear.clone()], &seeds, &chi, 1, &Never).unwrap();
        let two = refit_lmm_replicates(&generator, &[refit.clone(), linear], &seeds, &chi, 2, &Never).unwrap();
        assert_eq!(one, two);
        // The linear model's ML deviance is N(1 + log(2π RSS/N)) and never below the mixed model's.
        assert!(one.iter().flatten().all(|f| f[1].deviance >= f[0].deviance - 1e-9));
        assert!(matches!(refit_lmm_replicates(&generator, &[refit], &seeds[1..], &chi, 1, &Never), Err(HnmError::LengthMismatch { .. })));
        assert!(generator.generate(&vec![0.0; generator.normals()], -1.0).is_err());
        let bad = Simulation { sigma: 0.0, ..sim.clone() };
        assert!(matches!(ReplicateGenerator::new(&stats, &bad), Err(HnmError::InvalidArgument { .. })));
        let response_as_covariate =
            Simulation { structure: Structure { fixed: vec![Term::Variable(0)], ..sim.structure.clone() }, coefficients: vec![1.0], ..sim };
        assert!(ReplicateGenerator::new(&stats, &response_as_covariate).is_err());
    }

    /// 300 groups of 4 to 9 rows, y ~ x + (x | g).
    fn slope_design() -> (CrossProducts, Structure) {
        let groups = 300;
        let (mut rows, mut codes) = (Vec::new(), Vec::new());
        for j in 0..groups {
            let (a, b) = (((j * 37) % 17) as f64 / 8.0 - 1.0, ((j * 11) % 13) as f64 / 12.0 - 0.5);
            for i in 0..4 + j % 6 {
                let x = ((i * 7 + j * 3) % 10) as f64 / 3.0 - 1.5;
                let noise = (((i * 31 + j * 17) % 23) as f64 / 11.0 - 1.0) * 0.9;
                rows.push([1.0 + a + (0.5 + b) * x + noise, x]);
                codes.push(j as i32 + 1);
            }
        }
        let columns: Vec<Vec<f64>> = (0..2).map(|a| rows.iter().map(|r| r[a]).collect()).collect();
        let stats = CrossProducts::from_columns(
            &[Column::Double(&columns[0]), Column::Double(&columns[1])],
            codes.iter().copied(),
            groups,
            &mut Checkpoint::new(&Never),
        )
        .unwrap()
        .stats;
        let structure =
            Structure { response: 0, fixed: vec![Term::Intercept, Term::Variable(1)], random: vec![Term::Intercept, Term::Variable(1)], blocks: vec![2] };
        (stats, structure)
    }

    /// The Hessian at the start asks the checkpoint at each of its differences, and a
    /// replicate's refit at each quasi-Newton step (random slope) or step of the scalar search
    /// (random intercept), besides the checks inside their evaluations (of several factors);
    /// stopped at the first, middle or last question each returns `Interrupted` at once, and
    /// the next call equals an uninterrupted one on a fresh workspace.
    #[test]
    fn the_start_hessian_and_a_refit_stop_when_asked() {
        use crate::numerics::interrupt::{assert_stops, questions};
        let never = &mut Checkpoint::new(&Never);
        let (stats, slope) = slope_design();
        let intercept = Structure { random: vec![Term::Intercept], blocks: vec![1], ..slope.clone() };
        for structure in [slope, intercept] {
            let model = LinearMixedModel::new(&stats, structure.clone()).unwrap();
            let fit = model.fit(Criterion::Reml, None, never).unwrap();
            let refit = Refit { structure, criterion: Criterion::Reml, start: fit.internal_theta.clone() };
            let hessian = refit.start_hessian(&model, never).unwrap().unwrap();
            let total = questions(|c| refit.start_hessian(&model, c));
            assert_stops(total, |c| refit.start_hessian(&model, c));
            assert_eq!(refit.start_hessian(&model, never).unwrap().unwrap(), hessian);
            let generator = ReplicateGenerator::new(&stats, &Simulation::of_fit(&model, &fit)).unwrap();
            let mut normals = vec![0.0; generator.normals()];
            seeded_normals(3, &mut normals);
            let replicate = refit.model(&generator.generate(&normals, generator.residual_df()).unwrap()).unwrap();
            let fresh = refit.fit(&replicate, Some(&hessian), &mut replicate.workspace().unwrap(), never).unwrap();
            let mut ws = replicate.workspace().unwrap();
            let total = questions(|c| refit.fit(&replicate, Some(&hessian), &mut ws, c));
            assert_stops(total, |c| refit.fit(&replicate, Some(&hessian), &mut ws, c));
            assert_eq!(refit.fit(&replicate, Some(&hessian), &mut ws, never).unwrap(), fresh);
        }
    }

    #[test]
    fn quasi_newton_refits_reach_the_full_search_minimum_with_fewer_evaluations() {
        // The replicates of the fit of slope_design().
        let (stats, structure) = slope_design();
        let model = LinearMixedModel::new(&stats, structure.clone()).unwrap();
        for criterion in [Criterion::Ml, Criterion::Reml] {
            let fit = model.fit(criterion, None, &mut Checkpoint::new(&Never)).unwrap();
            let generator = ReplicateGenerator::new(&stats, &Simulation::of_fit(&model, &fit)).unwrap();
            let replicates = 8;
            let seeds: Vec<u64> = (0..replicates as u64).collect();
            let chi: Vec<f64> = (0..replicates).map(|r| generator.residual_df() * (0.97 + 0.01 * r as f64)).collect();
            let refit = Refit { structure: structure.clone(), criterion, start: fit.internal_theta.clone() };
            let quick = refit_lmm_replicates(&generator, std::slice::from_ref(&refit), &seeds, &chi, 1, &Never).unwrap();
            let (mut quick_evaluations, mut full_evaluations) = (0, 0);
            for (r, fits) in quick.iter().enumerate() {
                let ours = &fits.as_ref().unwrap()[0];
                let mut normals = vec![0.0; generator.normals()];
                seeded_normals(seeds[r], &mut normals);
                let stats = generator.generate(&normals, chi[r]).unwrap();
                let model = refit.model(&stats).unwrap();
                let full = refit.fit(&model, None, &mut model.workspace().unwrap(), &mut Checkpoint::new(&Never)).unwrap();
                assert!(ours.converged && (ours.deviance - full.deviance).abs() < 1e-9 * full.deviance.abs(), "{criterion:?} {r}");
                for (a, b) in ours.theta.iter().zip(&full.theta).chain(ours.beta.iter().zip(&full.beta)) {
                    assert!((a - b).abs() < 1e-6 * (1.0 + b.abs()), "{criterion:?} {r}: {a} vs {b}");
                }
                quick_evaluations += ours.evaluations;
                full_evaluations += full.evaluations;
            }
            // A fifth fewer at least (62 against 81 by ML): the full search's polish now stops
            // at 1e-12 relative (numerics/optim.rs), which narrowed the margin of 1/3 to 1/4,
            // and its B fitted to the last secants (numerics/quasi_newton.rs) to 1/5.
            assert!(5 * quick_evaluations < 4 * full_evaluations, "{criterion:?}: {quick_evaluations} vs {full_evaluations}");
        }
    }

    #[test]
    fn seeded_normals_have_the_normal_distribution_and_independent_seeds() {
        // 2e5 draws (20 seeds): moments and tail probabilities of N(0, 1) (Φ(1) and Φ(−1.96)
        // from tables) within about 4 standard errors; no correlation at lag 1 nor between the
        // first draws of consecutive seeds.
        let mut z = vec![0.0; 200_000];
        for (seed, chunk) in z.chunks_mut(10_000).enumerate() {
            seeded_normals(seed as u64, chunk);
        }
        let n = z.len() as f64;
        let moment = |k: i32| z.iter().map(|v| v.powi(k)).sum::<f64>() / n;
        let below = |x: f64| z.iter().filter(|&&v| v <= x).count() as f64 / n;
        assert!(moment(1).abs() < 0.01 && (moment(2) - 1.0).abs() < 0.015 && (moment(4) - 3.0).abs() < 0.1);
        assert!((below(1.0) - 0.841_344_746).abs() < 0.004 && (below(-1.959_964) - 0.025).abs() < 0.0015);
        let correlation = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>() / a.len() as f64;
        assert!(correlation(&z[..z.len() - 1], &z[1..]).abs() < 0.01);
        let first: Vec<f64> = (0..10_000u64)
            .map(|seed| {
                let mut one = [0.0];
                seeded_normals(seed, &mut one);
                one[0]
            })
            .collect();
        assert!(correlation(&first[..9_999], &first[1..]).abs() < 0.04);
    }

    #[test]
    fn the_linear_model_refit_is_least_squares() {
        // y ~ x without random effects, two groups: the refit's deviance is N(1 + log(2π RSS/N)).
        let y = [1.0, 2.0, 2.5, 4.0, 3.0, 5.5, 6.0];
        let x = [0.0, 1.0, 2.0, 3.0, 0.5, 1.5, 2.5];
        let pass =
            CrossProducts::from_columns(&[Column::Double(&y), Column::Double(&x)], [1, 1, 1, 1, 2, 2, 2].into_iter(), 2, &mut Checkpoint::new(&Never)).unwrap();
        let structure = Structure { response: 0, fixed: vec![Term::Intercept, Term::Variable(1)], random: vec![], blocks: vec![] };
        let refit = Refit { structure, criterion: Criterion::Ml, start: vec![] };
        let model = refit.model(&pass.stats).unwrap();
        let fit = refit.fit(&model, None, &mut model.workspace().unwrap(), &mut Checkpoint::new(&Never)).unwrap();
        let n = y.len() as f64;
        let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
        let slope = x.iter().zip(&y).map(|(a, b)| (a - mx) * (b - my)).sum::<f64>() / x.iter().map(|a| (a - mx).powi(2)).sum::<f64>();
        let rss: f64 = x.iter().zip(&y).map(|(a, b)| (b - my - slope * (a - mx)).powi(2)).sum();
        assert!((fit.deviance - n * (1.0 + (2.0 * std::f64::consts::PI * rss / n).ln())).abs() < 1e-10);
        assert!((fit.beta[1] - slope).abs() < 1e-12);
    }
}

#[cfg(test)]
mod interrupt_tests {
    use super::*;
    use std::time::{Duration, Instant};

    use crate::numerics::interrupt::After;

    #[test]
    fn an_interrupt_stops_every_refit_thread() {
        // 2000 groups of 5 rows, random intercept and slope, 2000 replicates: seconds of refits.
        let groups = 2000;
        let n = vec![5.0; groups];
        let means: Vec<f64> = (0..groups).flat_map(|j| [(j % 7) as f64 * 0.3, (j % 3) as f64 * 0.1]).collect();
        let comoments: Vec<f64> = (0..groups).flat_map(|_| [4.0, 1.0, 2.0]).collect();
        let stats = CrossProducts::new(vec![0.0, 0.0], n, means, comoments).unwrap();
        let structure =
            Structure { response: 0, fixed: vec![Term::Intercept, Term::Variable(1)], random: vec![Term::Intercept, Term::Variable(1)], blocks: vec![2] };
        let sim = Simulation { structure: structure.clone(), coefficients: vec![1.0, 0.5], re_covariance: vec![1.0, 0.2, 0.2, 0.5], sigma: 1.0 };
        let generator = ReplicateGenerator::new(&stats, &sim).unwrap();
        let replicates = 2000;
        let seeds: Vec<u64> = (0..replicates as u64).collect();
        let chi = vec![generator.residual_df(); replicates];
        let refit = Refit { structure, criterion: Criterion::Ml, start: vec![1.0, 0.0, 1.0] };
        let interrupt = After { start: Instant::now(), after: Duration::from_millis(50) };
        let result = refit_lmm_replicates(&generator, &[refit], &seeds, &chi, 2, &interrupt);
        let took = interrupt.start.elapsed();
        assert_eq!(result, Err(HnmError::Interrupted));
        assert!(took < Duration::from_millis(50) + 2 * Checkpoint::INTERVAL + Duration::from_millis(100), "{took:?}");
    }
}
