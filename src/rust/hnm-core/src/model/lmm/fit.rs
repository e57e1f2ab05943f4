//! The fit: the starts (a moment estimate, Λ = I, lme4's), the bounded quasi-Newton searches over θ
//! from them, and the estimates in the data's units assembled at the minimum.

use std::cell::{Cell, RefCell};

use super::structure::{semidefinite_cholesky, Affine, FactorTerms};
use super::{Factorization, LinearMixedModel, LmmFit, Term, Workspace};
use crate::data::stats::GroupStats;
use crate::error::{HnmError, Result};
use crate::model::one_way::fit::{estimates_at_theta, optimum, Estimates};
use crate::model::one_way::likelihood::Params;
use crate::model::one_way::profiled_deviance::Criterion;
use crate::numerics::dense::{cholesky_in_place, congruence, dot, inverse_from_factor, inverse_of_factored, solve_lower, solve_lower_transposed};
use crate::numerics::interrupt::{Checkpoint, Latched};
use crate::numerics::optim::{minimize_bounded, Objective};
use crate::numerics::quasi_newton::{quasi_newton_from, Initial};
use faer::linalg::solvers::Solve;

/// The most θ whose search starts from the Hessian by differences of the gradient (dim θ
/// evaluations at the start; see [`LinearMixedModel::fit`]). Beyond it the first search starts
/// from a scaled identity and learns the curvature from its steps: 72 θ would pay 73
/// evaluations of a dense factorisation and its selected inverse for a Hessian that BFGS
/// learns along the way.
const DIFFERENCES_MAX_THETA: usize = 10;

/// The distance from a minimum, relative to 1 + |θ| in every θ, within which a search for
/// another basin stops ([`Objective::abandon`]) and from which no transfers are searched
/// again (see [`LinearMixedModel::transfers`]).
const BASIN_RADIUS: f64 = 1e-3;

/// The most random effects in all (Σ over the factors of levels × q) of a model whose best
/// minimum is probed with each term dropped ([`LinearMixedModel::dropped_terms`]): one
/// evaluation per term, a few microseconds on such a model, where InstEval's 4,100 effects
/// would pay a tenth of its fit for them.
const PROBED_MAX_EFFECTS: usize = 1000;

/// The share of levels ([`LinearMixedModel::shared_levels`]) from which two factors' effects
/// are nearly aliased, and variance is transferred between them ([`LinearMixedModel::transfers`]).
/// The designs whose transfers found a lower minimum shared 0.50-0.87; a factor nested in
/// another shares (m_g − 1)/(m_f − 1) (Pastes' casks in batches 0.31, nested.R's 0.1), and
/// crossed factors of many rows per cell next to 0 (InstEval's, kb07's, Penicillin's).
const ALIASED: f64 = 0.4;

/// True when the criterion `value` is below a minimum's `criterion` by more than 1e-9 relative:
/// a search converging to the same minimum comes within that (the criterion's error at the
/// tolerance is O(tolerance²)), and there ends below its first convergence by rounding, which
/// would take it for another minimum (a design whose first search took 6 evaluations paid 47
/// for transfers that all converged to it again).
fn lower(value: f64, criterion: f64) -> bool {
    value < criterion - 1e-9 * (1.0 + criterion.abs())
}

/// A block of Λ (one random-effects term): its rows within its factor's q, and its entries,
/// each θ's index among all θ with its (row, column) in the factor's Λ.
type ThetaBlock = (std::ops::Range<usize>, Vec<(usize, (usize, usize))>);

/// True when `x` is within [`BASIN_RADIUS`] of `center` in every θ (relative to 1 + |center|).
fn within_basin(x: &[f64], center: &[f64]) -> bool {
    x.iter().zip(center).all(|(a, b)| (a - b).abs() <= BASIN_RADIUS * (1.0 + b.abs()))
}

/// One factor's moments (see [`LinearMixedModel::moment_start`]): its residual variance σ̂²
/// and degrees of freedom, Σ̂ = mean(b̂_j b̂_jᵀ − σ̂² S_j⁻¹) (q × q, row-major) and the mean
/// of S_j⁻¹'s diagonal over the levels used.
struct FactorMoments {
    sigma2: f64,
    df: f64,
    covariance: Vec<f64>,
    sampling: Vec<f64>,
}

/// The θ (internal units) of a factor's moments: the Cholesky factor of Σ̂/σ̂², block
/// diagonal and made positive definite (eigenvalues floored at 1% of the largest and at
/// 1e-4); `None` when not finite.
fn moment_theta(terms: &FactorTerms<'_>, moments: &FactorMoments) -> Option<Vec<f64>> {
    let q = terms.q;
    let mut sigma: Vec<f64> = moments.covariance.iter().map(|v| v / moments.sigma2).collect();
    let mut offset = 0;
    for &size in terms.blocks {
        for r in 0..q {
            for c in offset..offset + size {
                if !(offset..offset + size).contains(&r) {
                    sigma[r * q + c] = 0.0;
                    sigma[c * q + r] = 0.0;
                }
            }
        }
        offset += size;
    }
    let (values, vectors) = crate::numerics::optim::symmetric_eigen(&sigma, q);
    let largest = values.iter().fold(0.0_f64, |m, v| m.max(*v));
    let floor = (1e-2 * largest).max(1e-4);
    let mut pd = vec![0.0; q * q];
    for (k, &value) in values.iter().enumerate() {
        let v = &vectors[k * q..(k + 1) * q];
        for i in 0..q * q {
            pd[i] += value.max(floor) * v[i / q] * v[i % q];
        }
    }
    let factor = semidefinite_cholesky(&pd, q, terms.blocks);
    let theta: Vec<f64> = terms.theta_positions.iter().map(|&(r, c)| factor[r * q + c]).collect();
    theta.iter().all(|t| t.is_finite()).then_some(theta)
}

/// The sums over the groups of [`LinearMixedModel::moment_sums`].
struct MomentSums {
    explained: f64,
    used: usize,
    second: Vec<f64>,
    sampling: Vec<f64>,
}

impl LinearMixedModel {
    /// Fits the model by ML or REML: minimises d(θ) over θ with diag(Λ) ≥ 0 by the bounded
    /// quasi-Newton method of [`crate::minimize_bounded_quasi_newton`] on the analytic
    /// gradient. Up to [`DIFFERENCES_MAX_THETA`] θ its B starts as the Hessian by differences of the
    /// gradient (made positive definite), so the first step is a Newton step and the secant
    /// updates keep the exact curvature; each later step costs one evaluation where the Newton
    /// method of [`crate::minimize_bounded`] took 1 + dim θ for a new Hessian (nested three
    /// levels, 4 θ: 30 -> 24 evaluations; sleepstudy 15 -> 11). Restarts of few θ (below)
    /// use that Newton method, which follows negative curvature into another basin. The profiled deviance can have more than
    /// one local minimum (a singular one beside an interior one, or two singular ones with
    /// opposite correlations), so a search that ends singular is repeated from the starts of
    /// `restarts` and the lowest minimum kept: among them Λ = I in internal units and lme4's
    /// start, Λ = I in the data's units, so that hnm never settles in a worse basin than lme4
    /// started at the same model. Up to [`DIFFERENCES_MAX_THETA`] θ the best minimum is then
    /// searched from its transfers ([`LinearMixedModel::transfers`]) between nearly aliased
    /// factors (sharing at least [`ALIASED`] of their levels' dimensions,
    /// [`LinearMixedModel::shared_levels`]): from a singular minimum a zero variance raised to
    /// lme4's start and each variance copied or moved into the same term of the other factor,
    /// from an interior one the moves; and from a singular minimum of any factors, all its zero
    /// variances raised to lme4's start at once. On a model of at most [`PROBED_MAX_EFFECTS`]
    /// random effects the best minimum is then probed with each term dropped, and searched from
    /// where that alone is lower ([`LinearMixedModel::dropped_terms`]: a minimum inside beside
    /// a lower one on the boundary). Two such factors have a minimum with the variance in
    /// either (or shared, at a larger total), and which one a search finds depends on its
    /// start: the Newton restarts from lme4's start found the worse one where lme4's bobyqa or
    /// Nelder-Mead found the other (0.39 above on one design, test-lmm-factors.R), and an
    /// interior minimum 0.67 above Nelder-Mead's singular one had it a move away. These
    /// searches are the quasi-Newton method from the last B learnt (no differences), the
    /// starts of the most aliased pairs first, each search within an allowance of half the
    /// evaluations before the transfers ([`Objective::abandon`], asked before each iteration):
    /// a search is abandoned where it comes within [`BASIN_RADIUS`] of a minimum found before,
    /// no lower, or runs past its allowance no lower than the best minimum (one below it goes
    /// on). With one budget shared by all of them the searches before a start could spend it:
    /// of test-lmm-factors.R's nearly aliased designs, seeds 1-1000 and 1-600 with weights (4
    /// models each, ML and REML: 12,800 fits), 3 ended above lme4's best (by 2.3e-4, 5.4e-3
    /// and 0.51), and the order of the starts decided which. A restart from the start of an
    /// earlier restart (Λ = I is lme4's start where the random terms are intercepts) is
    /// skipped: the same search. Beyond
    /// [`DIFFERENCES_MAX_THETA`] θ, where lme4's start is the only restart, the first search
    /// starts there (unless the caller gives a start), so that
    /// one search both fits and keeps that promise: the kb07-shaped model (72 θ) paid 108
    /// evaluations from the moment estimate and 213 more from lme4's start, where the search
    /// from lme4's start alone takes 171 (with the early saddle checks of
    /// [`crate::minimize_bounded_quasi_newton`]). A restart there (after a caller's start)
    /// starts from the B the first search learnt: the curvature's scale in each θ is a
    /// property of the model more than of the point. Otherwise the first search starts at a
    /// moment estimate (or the caller's `start`, such as [`LmmFit::internal_theta`] of a
    /// related fit). A start where the deviance cannot be evaluated (lme4's start for a
    /// covariate far from 0 can imply variances of 1e18 at its mean) is skipped, for the
    /// moment estimate when it was the first.
    ///
    /// # Errors
    /// The errors of [`LinearMixedModel::deviance`] when no start can be evaluated, `Optimizer`
    /// when the minimisation fails, `Interrupted` when `checkpoint` reports a user interrupt.
    ///
    /// The one-way model `y ~ 1 | g` (q = p = 1) is fitted by its scalar kernel instead: θ̂ is
    /// the root of its profiled score ([`crate::optimum`], warm-started at `start`), and μ̂,
    /// σ̂², τ̂², se(μ̂) and the criterion come from the closed forms there. The search's θ is
    /// limited by its gradient's rounding (τ² to 13 digits where the root gives 15, NIST
    /// SmLs03), and the factorisation's residual sum of squares cancels as (τ/σ)², which the
    /// closed forms, built on the within-group sums of squares, do not. Should the root fail
    /// (it cannot on data the model accepts), the search below is the fallback.
    pub fn fit(&self, criterion: Criterion, start: Option<&[f64]>, checkpoint: &mut Checkpoint<'_>) -> Result<LmmFit> {
        self.fit_with(criterion, start, &FitControl::default(), checkpoint)
    }

    /// [`LinearMixedModel::fit`] with the search's tolerance, iteration limit and trace of
    /// `control` (the one-way model's root reports once, with its evaluations).
    ///
    /// # Errors
    /// As [`LinearMixedModel::fit`].
    pub fn fit_with(&self, criterion: Criterion, start: Option<&[f64]>, control: &FitControl<'_>, checkpoint: &mut Checkpoint<'_>) -> Result<LmmFit> {
        if let Some(stats) = &self.one_way {
            match self.one_way_fit(stats, criterion, start, checkpoint) {
                Err(HnmError::Interrupted) => return Err(HnmError::Interrupted),
                Ok(fit) => {
                    if let Some(trace) = control.trace {
                        trace(fit.iterations, fit.deviance, fit.projected_gradient_norm);
                    }
                    return Ok(fit);
                }
                Err(_) => {}
            }
        }
        let identity = self.identity_theta();
        let many = identity.len() > DIFFERENCES_MAX_THETA;
        let first = match start.filter(|s| s.len() == identity.len()) {
            Some(given) => given.to_vec(),
            None if many => self.lme4_start(),
            None => self.moment_start(),
        };
        // Every evaluation asks the interrupt too (one of a large crossed model's takes
        // minutes); latched, since a line search takes an interrupted evaluation for a
        // failed step and goes on.
        let latched = Latched::new(checkpoint.interrupt());
        let (checkpoint, evaluations_checkpoint) = (&mut checkpoint.paced_like(&latched), RefCell::new(checkpoint.paced_like(&latched)));
        let problem = DevianceProblem {
            model: self,
            criterion,
            workspace: RefCell::new(self.workspace()?),
            control,
            interrupt: &latched,
            checkpoint: evaluations_checkpoint,
            minima: RefCell::new(Vec::new()),
            evaluations: Cell::new(0),
            abandon_after: Cell::new(None),
        };
        let tolerance = control.relative_tolerance * self.n_obs;
        let mut best: Option<crate::numerics::optim::Minimum> = None;
        let mut failure = None;
        let (mut iterations, mut evaluations) = (0, 0);
        // Beyond DIFFERENCES_MAX_THETA a restart from the first start would repeat the first
        // search (the same method from the same point); with fewer θ a restart is a Newton
        // search, which may find another basin from the same point (test-degenerate.R's
        // identity start).
        let first_start = first.clone();
        let restarts = |singular: Option<&[f64]>| {
            let mut starts = self.restarts(&identity, singular);
            if many {
                starts.retain(|s| *s != first_start);
            }
            starts
        };
        let mut starts = vec![first];
        // The curvature the last search ended with, which the next starts from (see `fit`).
        let mut curvature = None;
        // The minima whose transfers (see `transfers`) were searched, and the restarts'
        // starts so far.
        let mut transferred: Vec<Vec<f64>> = Vec::new();
        // The evaluations each transfer's search may take (half of those before the first),
        // set when the transfers begin.
        let mut allowance = None;
        let mut restarted_from: Vec<Vec<f64>> = Vec::new();
        // The minima probed with each term dropped.
        let mut probed: Vec<Vec<f64>> = Vec::new();
        let probes = !many && self.random_effects_count() <= PROBED_MAX_EFFECTS;
        loop {
            let Some(start) = starts.pop() else {
                // The restarts are done: from the best minimum of few θ, its transfers (once per
                // minimum, and again from a lower one they find), each within half the
                // evaluations before the first; then, on a small model, each term dropped from
                // it where that alone is lower (see `dropped_terms`), within the same allowance.
                match best.as_ref().filter(|b| !many && !transferred.iter().any(|t| within_basin(&b.x, t))) {
                    Some(b) => {
                        transferred.push(b.x.clone());
                        starts = self.transfers(&b.x);
                        allowance = allowance.or(Some(problem.evaluations.get().div_ceil(2)));
                        continue;
                    }
                    None => match best.as_ref().filter(|b| probes && !probed.iter().any(|p| within_basin(&b.x, p))) {
                        Some(b) => {
                            probed.push(b.x.clone());
                            let before = problem.evaluations.get();
                            starts = self.dropped_terms(&b.x, b.value, &problem)?;
                            evaluations += problem.evaluations.get() - before;
                            continue;
                        }
                        None => break,
                    },
                }
            };
            let transfer = allowance.is_some();
            let few = !many;
            let restart = best.is_some() || failure.is_some();
            // (The transfers begin from the best minimum: `best` is set with `allowance`.)
            if let (Some(allowance), Some(b)) = (allowance, &best) {
                if problem.minima.borrow().iter().any(|(minimum, _)| within_basin(&start, minimum)) {
                    // It would converge to that minimum again.
                    continue;
                }
                // Its own allowance, so that no start's search is cut short by those before it.
                problem.abandon_after.set(Some((problem.evaluations.get() + allowance, b.value)));
            } else if restart {
                if restarted_from.contains(&start) {
                    // The same search from the same start (Λ = I is lme4's start where every
                    // random term is an intercept).
                    continue;
                }
                restarted_from.push(start.clone());
            }
            let searched = if few && restart && !transfer {
                // A restart looks for another basin, which the Newton method's exact curvature
                // finds where secant updates do not: it follows a direction of negative
                // curvature wherever the Hessian has one (the side of a correlation of ±1).
                minimize_bounded(&problem, &start, &self.lower, tolerance, checkpoint)
            } else {
                // A transfer's search starts from the last B learnt (the curvature's scale is
                // the model's more than the point's), where the differences would cost 1 + dim θ
                // evaluations.
                let initial = match curvature.take() {
                    Some(b) if transfer || many => Initial::Given(b),
                    _ if few => Initial::Differences,
                    _ => Initial::Identity,
                };
                quasi_newton_from(&problem, &start, &self.lower, tolerance, initial, checkpoint).map(|(found, b)| {
                    curvature = b;
                    found
                })
            };
            if latched.latched() {
                return Err(HnmError::Interrupted);
            }
            match searched {
                Ok(found) => {
                    iterations += found.iterations;
                    evaluations += found.evaluations;
                    if best.is_none() && self.is_singular(&found.x) {
                        starts = restarts(Some(&found.x));
                    }
                    let better = best.as_ref().is_none_or(|b| (found.converged, -found.value) > (b.converged, -b.value));
                    if found.converged {
                        problem.minima.borrow_mut().push((found.x.clone(), found.value));
                    }
                    if better {
                        best = Some(found);
                    }
                }
                Err(HnmError::Interrupted) => return Err(HnmError::Interrupted),
                Err(error) => {
                    if best.is_none() && failure.is_none() {
                        starts = restarts(None);
                        if starts.is_empty() {
                            // lme4's start, searched first, cannot be evaluated (a covariate
                            // far from 0): the moment estimate instead.
                            starts.push(self.moment_start());
                        }
                    }
                    failure = Some(error);
                }
            }
        }
        let mut minimum = match (best, failure) {
            (Some(found), _) => found,
            (None, Some(error)) => return Err(error),
            (None, None) => unreachable!("a start was tried"),
        };
        (minimum.iterations, minimum.evaluations) = (iterations, evaluations);
        let mut ws = problem.workspace.into_inner();
        let factor = self.factorization_at(&minimum.x, &mut ws)?;
        let theta = minimum.x.clone();
        Ok(self.assemble(criterion, &theta, &factor, &ws, minimum))
    }

    /// The one-way model's fit at the root of its profiled score (see [`LinearMixedModel::fit`]),
    /// with the root finder's iterations and evaluations of the profiled score.
    fn one_way_fit(&self, stats: &GroupStats, criterion: Criterion, start: Option<&[f64]>, checkpoint: &mut Checkpoint<'_>) -> Result<LmmFit> {
        let lambda_start = start.and_then(|s| s.first()).map(|theta| theta * theta);
        let (theta, evaluations, estimates) = optimum(stats, criterion, lambda_start, checkpoint)?;
        let mut fit = self.fit_at_factorization(criterion, &[theta], checkpoint)?;
        with_one_way_estimates(&mut fit, &estimates);
        (fit.iterations, fit.evaluations) = (evaluations, evaluations + fit.evaluations);
        Ok(fit)
    }

    /// The starts tried after a singular or failed first search: Λ = I, lme4's start, and
    /// for correlated blocks Λ = I with every entry below the diagonal +1 and then −1. A
    /// singular deviance can have one local minimum for each sign of a correlation (rank-one
    /// blocks with a correlation of +1 or −1, say), and a search stays on the side it starts.
    /// After a singular first search (its minimum `singular`), each correlated block that it
    /// left all 0 (a term dropped, its correlations undetermined) is also tried of rank one on
    /// its own, with correlations of +1 and −1: a minimum with that block of rank one can lie
    /// where no search from a block of full rank goes (a crossed design with slopes whose
    /// searches from Λ = I ended with the block at 0, 0.45 above the minimum with it of rank
    /// one and a correlation of −1).
    /// Beyond [`DIFFERENCES_MAX_THETA`] only lme4's start is tried: a search there costs hundreds of
    /// evaluations, and the one that matters for "never worse than lme4" is the basin lme4
    /// itself starts in (two large correlated blocks have too many sign patterns for the
    /// all-+1 and all-−1 starts to cover anyway).
    fn restarts(&self, identity: &[f64], singular: Option<&[f64]>) -> Vec<Vec<f64>> {
        if identity.len() > DIFFERENCES_MAX_THETA {
            return vec![self.lme4_start()];
        }
        let mut starts = vec![identity.to_vec(), self.lme4_start()];
        let positions: Vec<(usize, usize)> = self.factor_terms().iter().flat_map(|(terms, _)| terms.theta_positions.iter().copied()).collect();
        if positions.iter().any(|&(r, c)| r != c) {
            for sign in [1.0, -1.0] {
                starts.push(positions.iter().map(|&(r, c)| if r == c { 1.0 } else { sign }).collect());
            }
        }
        // Each correlated block that the first search left at 0, in turn of rank one with
        // correlations of +1 and then −1 (its first column (1, ±1, …), its later columns 0),
        // Λ = I elsewhere. In internal units, as the ±1 starts above: the centred columns'
        // signs, not lme4's (a covariate far from 0 can turn both into one sign in lme4's);
        // and a block of three or more gets two of its sign patterns only.
        let Some(singular) = singular else { return starts };
        for (block, entries) in self.theta_blocks() {
            if block.len() < 2 || entries.iter().any(|&(i, _)| singular[i] != 0.0) {
                continue;
            }
            for sign in [1.0, -1.0] {
                let mut start = identity.to_vec();
                for &(i, (r, c)) in &entries {
                    start[i] = match (c == block.start, r == block.start) {
                        (true, true) => 1.0,
                        (true, false) => sign,
                        (false, _) => 0.0,
                    };
                }
                starts.push(start);
            }
        }
        starts
    }

    /// Every block of Λ (one random-effects term), factor by factor.
    fn theta_blocks(&self) -> Vec<ThetaBlock> {
        let mut blocks = Vec::new();
        for (terms, range) in self.factor_terms() {
            let mut offset = 0;
            for &size in terms.blocks {
                let block = offset..offset + size;
                offset += size;
                let entries = range.clone().zip(terms.theta_positions.iter().copied()).filter(|(_, (r, _))| block.contains(r)).collect();
                blocks.push((block, entries));
            }
        }
        blocks
    }

    /// The starts searched from the best minimum `theta` after the restarts (see
    /// [`LinearMixedModel::fit`]), for the pairs of effects of two factors on the same column of
    /// the data (the intercept, or the same covariate) that share at least [`ALIASED`] of their
    /// levels ([`LinearMixedModel::shared_levels`]): for each effect k of a factor f with
    /// relative variance v = |l_k|² > 0 (l_k its row of Λ_f) and each such partner m of a
    /// factor g, θ with λ_mm² + v as λ_mm² (v in g's units of the column, K's t_g²/t_f²) and
    /// l_k set to 0 (a move) and, when `theta` is singular, l_k kept (a copy); and for each
    /// effect with λ_kk = 0 and a partner, θ with λ_kk at lme4's start (a variance raised).
    /// Two nearly aliased factors (one's levels mostly the other's) fit the same variance
    /// either way, and the profiled deviance has a minimum with it in either factor (or shared,
    /// at a larger total): which one a search finds depends on its start, so the fit searches
    /// from the other corners too: the raised variances first (one start per zero, which
    /// found al_574_b's lower minimum), then the moves, then the copies, each search within its
    /// own allowance of evaluations (see [`LinearMixedModel::fit`]). After all of them, with
    /// any factors (aliased or not), θ with every λ_kk = 0 at lme4's start at once: a crossed
    /// design with a covariate's slope on both factors had its lower minimum (0.37 below) with
    /// both slopes' variances > 0, where raising either alone led back to both at 0.
    fn transfers(&self, theta: &[f64]) -> Vec<Vec<f64>> {
        // Every effect: its factor, index among all factors' effects, column of the data,
        // scale, the θ of its row and diagonal.
        struct Effect {
            factor: usize,
            index: usize,
            term: Term,
            scale: f64,
            row: Vec<usize>,
            diagonal: usize,
        }
        let mut effects = Vec::new();
        for (factor, (terms, range)) in self.factor_terms().iter().enumerate() {
            for k in 0..terms.q {
                let row: Vec<usize> = range.clone().filter(|&i| terms.theta_positions[i - range.start].0 == k).collect();
                let diagonal = row.iter().copied().find(|&i| terms.theta_positions[i - range.start].1 == k);
                if let Some(diagonal) = diagonal {
                    let Affine { term, scale, .. } = terms.random[k];
                    effects.push(Effect { factor, index: effects.len(), term, scale, row, diagonal });
                }
            }
        }
        let shared = self.shared_levels(effects.len());
        let singular = self.is_singular(theta);
        let aliasing = |from: &Effect, to: &Effect| {
            let share = shared[from.index * effects.len() + to.index];
            (from.factor != to.factor && from.term == to.term && share >= ALIASED).then_some(share)
        };
        // The starts of each kind with the share of levels of the pair they come from.
        type Starts = Vec<(f64, Vec<f64>)>;
        let (mut moves, mut copies, mut raised): (Starts, Starts, Starts) = (Vec::new(), Vec::new(), Vec::new());
        for from in &effects {
            let variance: f64 = from.row.iter().map(|&i| theta[i] * theta[i]).sum();
            if variance <= 0.0 {
                continue;
            }
            for (to, share) in effects.iter().filter_map(|to| aliasing(from, to).map(|share| (to, share))) {
                let mut copy = theta.to_vec();
                let moved = variance * (to.scale / from.scale).powi(2);
                copy[to.diagonal] = (theta[to.diagonal] * theta[to.diagonal] + moved).sqrt();
                let mut transfer = copy.clone();
                for &i in &from.row {
                    transfer[i] = 0.0;
                }
                if singular {
                    copies.push((share, copy));
                }
                moves.push((share, transfer));
            }
        }
        let lme4 = self.lme4_start();
        for effect in effects.iter().filter(|e| theta[e.diagonal] == 0.0 && lme4[e.diagonal] > 0.0) {
            if let Some(share) = effects.iter().filter_map(|to| aliasing(effect, to)).reduce(f64::max) {
                let mut start = theta.to_vec();
                start[effect.diagonal] = lme4[effect.diagonal];
                raised.push((share, start));
            }
        }
        // Popped last first: the raised variances (one start per zero), then the moves (the
        // corner with the variance in the other factor, where the other minimum is), then the
        // copies, each kind the most aliased pairs first; last of all every variance at 0
        // raised at once to lme4's start, of any factors: a lower minimum may need several of
        // them at once (a covariate's slope on two crossed factors), where raising one alone
        // leads back. (Searched first, it changed the B the others start from, and one of
        // them was abandoned short of the lower minimum it had found.)
        let mut starts = Vec::with_capacity(moves.len() + copies.len() + raised.len() + 1);
        let zeros: Vec<usize> = effects.iter().map(|e| e.diagonal).filter(|&d| theta[d] == 0.0 && lme4[d] > 0.0).collect();
        if !zeros.is_empty() {
            let mut start = theta.to_vec();
            for d in zeros {
                start[d] = lme4[d];
            }
            starts.push(start);
        }
        for mut kind in [copies, moves, raised] {
            kind.sort_by(|a, b| a.0.total_cmp(&b.0));
            starts.extend(kind.into_iter().map(|(_, start)| start));
        }
        starts
    }

    /// The starts from the minimum `theta` (criterion `value`) with one random-effects term
    /// (a block of Λ) dropped, all its θ set to 0, where the criterion there, with every other θ
    /// as it is, is already [`lower`] than `value`: the lowest last, as `starts` are popped. A
    /// term's variance can have two minima, one inside and one on the boundary, with a barrier
    /// between them, and a search from the moment start finds one: nested classes with a
    /// school's slope beside crossed teachers (weighted, ML) ended at lme4's bobyqa's minimum
    /// with the slope's SD 0.22, where Nelder-Mead's with it 0 was 0.047 lower, and the slope
    /// dropped alone was already 0.021 lower. One evaluation per term with a θ ≠ 0, no gradient.
    ///
    /// # Errors
    /// `Interrupted` when an evaluation was interrupted (one that fails otherwise is no start).
    fn dropped_terms(&self, theta: &[f64], value: f64, problem: &DevianceProblem<'_>) -> Result<Vec<Vec<f64>>> {
        let mut starts: Vec<(f64, Vec<f64>)> = Vec::new();
        for (_, entries) in self.theta_blocks() {
            if entries.iter().all(|&(i, _)| theta[i] == 0.0) {
                continue;
            }
            let mut start = theta.to_vec();
            for &(i, _) in &entries {
                start[i] = 0.0;
            }
            match problem.value(&start) {
                Ok(dropped) if lower(dropped, value) => starts.push((dropped, start)),
                Err(HnmError::Interrupted) => return Err(HnmError::Interrupted),
                _ => {}
            }
        }
        starts.sort_by(|a, b| b.0.total_cmp(&a.0));
        Ok(starts.into_iter().map(|(_, start)| start).collect())
    }

    /// The random effects in all: Σ over the factors of levels × q.
    fn random_effects_count(&self) -> usize {
        let others = self.several.iter().flat_map(|s| &s.others).map(|o| o.n.len() * o.q).sum::<usize>();
        self.n.len() * self.q + others
    }

    /// How much of two effects' levels their Z columns share, for every pair of effects u = (f,
    /// k) and v = (g, m) of different factors (`effects` × `effects`, row-major, in the order of
    /// [`LinearMixedModel::factor_terms`]' factors and their effects): with the cosines of
    /// their columns level by level, C_il = (Z_fiᵀZ_gl)_km / ((S_fi)_kk (S_gl)_mm)^½ (S the
    /// levels' ZᵀZ), the squared canonical correlations of the two column spaces sum to ‖C‖_F²,
    /// one of which is the column of the data itself (Σ_i Z_fi = Σ_l Z_gl for the same
    /// column), so (‖C‖_F² − 1)/(max(m_f, m_g) − 1) over the m levels of each is the share of
    /// the larger factor's dimensions (beyond that column) which the other's span: near 1
    /// where one factor's levels are mostly the other's relabelled, (m_g − 1)/(m_f − 1) for f
    /// nested in g, and (m_f − 1)(m_g − 1)/(N max(m_f, m_g)) or so for independent crossed
    /// factors of N rows. Σ_fZ_fΛ_fΛ_fᵀZ_fᵀ identifies the two variances only through the
    /// dimensions they do not share; the rest of the variance can be put in either, which makes
    /// the minima that [`LinearMixedModel::transfers`] looks for.
    fn shared_levels(&self, effects: usize) -> Vec<f64> {
        let mut shared = vec![0.0; effects * effects];
        let Some(several) = &self.several else {
            return shared;
        };
        // Per factor: its first effect's index, q and its levels' S (q × q each), whose
        // diagonal is read in place (nothing sized by the levels is allocated).
        let mut factors: Vec<(usize, usize, &[f64])> = Vec::with_capacity(1 + several.others.len());
        factors.push((0, self.q, &self.zz));
        for other in &several.others {
            let first = factors.last().map_or(0, |(first, q, _)| first + q);
            factors.push((first, other.q, &other.zz));
        }
        let diagonal = |(_, q, zz): (usize, usize, &[f64]), level: usize, k: usize| zz[level * q * q + k * q + k];
        let mut add = |(f, a): (usize, usize), (g, b): (usize, usize), value: usize| {
            let ((first_f, qf, _), (first_g, qg, _)) = (factors[f], factors[g]);
            for k in 0..qf {
                for m in 0..qg {
                    let scale = diagonal(factors[f], a, k) * diagonal(factors[g], b, m);
                    if scale > 0.0 {
                        let c = several.values[value + k * qg + m];
                        let cosine2 = c * c / scale;
                        shared[(first_f + k) * effects + first_g + m] += cosine2;
                        shared[(first_g + m) * effects + first_f + k] += cosine2;
                    }
                }
            }
        };
        for coupling in &several.fronts {
            add((coupling.row.0 + 1, coupling.row.1), (0, coupling.column.1), coupling.value);
        }
        for coupling in &several.pairs {
            add((coupling.row.0 + 1, coupling.row.1), (coupling.column.0 + 1, coupling.column.1), coupling.value);
        }
        // The levels whose column is not 0, per effect.
        let mut levels = vec![0usize; effects];
        for &(first, q, zz) in &factors {
            for level in 0..zz.len() / (q * q) {
                for k in 0..q {
                    levels[first + k] += usize::from(diagonal((first, q, zz), level, k) > 0.0);
                }
            }
        }
        for u in 0..effects {
            for v in 0..effects {
                let larger = levels[u].max(levels[v]);
                let share = &mut shared[u * effects + v];
                *share = if larger > 1 && *share > 0.0 { (*share - 1.0) / (larger - 1) as f64 } else { 0.0 };
            }
        }
        shared
    }

    /// Λ = I (every factor's) as an internal θ.
    fn identity_theta(&self) -> Vec<f64> {
        self.factor_terms().iter().flat_map(|(terms, _)| terms.identity_theta().collect::<Vec<_>>()).collect()
    }

    /// True when a diagonal entry of Λ is 0: a singular fit, which may be a local minimum
    /// beside a lower interior one.
    fn is_singular(&self, theta: &[f64]) -> bool {
        theta.iter().zip(&self.lower).any(|(&t, &l)| l == 0.0 && t == 0.0)
    }

    /// A moment estimate of θ to start from (internal units): with OLS residuals e, each group
    /// whose S_j is non-singular gives b̂_j = S_j⁻¹ Z_jᵀe_j; σ̂² is the residual variance left
    /// by them, and Σ̂ = mean(b̂_j b̂_jᵀ − σ̂² S_j⁻¹) (Swamy's estimator), made positive definite
    /// and block diagonal; θ₀ is the Cholesky factor of Σ̂/σ̂². With several grouping factors,
    /// each factor's estimate is first taken from its own levels as if it were the only one,
    /// and then corrected for the others ([`LinearMixedModel::joint_moments`]): alone, a factor
    /// nested in another takes the outer one's variance into its own (the nested 1e5-row
    /// model's classes started at θ = 1.11 for 0.49), and one crossed with another counts the
    /// other's variance as residual (Penicillin's plates started at 0.12 for 1.54). Λ = I for
    /// a factor where the estimate fails.
    fn moment_start(&self) -> Vec<f64> {
        let identity = || self.identity_theta();
        let (p, p1) = (self.p, self.p + 1);
        let mut fx = self.x_block_of(&self.xy);
        if !cholesky_in_place(&mut fx, p) {
            return identity();
        }
        let mut beta: Vec<f64> = (0..p).map(|a| self.xy[a * p1 + p]).collect();
        solve_lower(&fx, p, &mut beta, 1);
        solve_lower_transposed(&fx, p, &mut beta, 1);
        let mut w: Vec<f64> = beta.iter().map(|b| -b).collect();
        w.push(1.0);
        let rss: f64 = (0..p1).map(|a| (0..p1).map(|c| w[a] * self.xy[a * p1 + c] * w[c]).sum::<f64>()).sum();
        let blocks = std::iter::once((&self.zz, &self.zxy)).chain(self.several.iter().flat_map(|s| s.others.iter().map(|o| (&o.zz, &o.zxy))));
        let terms = self.factor_terms();
        let mut moments: Vec<Option<FactorMoments>> =
            terms.iter().zip(blocks).map(|((terms, _), (zz, zxy))| self.factor_moments(terms, zz, zxy, &w, rss)).collect();
        self.joint_moments(&terms, &mut moments);
        terms
            .iter()
            .zip(&moments)
            .flat_map(|((terms, _), m)| m.as_ref().and_then(|m| moment_theta(terms, m)).unwrap_or_else(|| terms.identity_theta().collect()))
            .collect()
    }

    /// One factor's moments of [`LinearMixedModel::moment_start`] with level blocks `zz` and
    /// `zxy`, given the OLS w = (−β̂, 1) and residual sum of squares, as if it were the only
    /// factor; `None` when they fail.
    fn factor_moments(&self, terms: &FactorTerms<'_>, zz: &[f64], zxy: &[f64], w: &[f64], rss: f64) -> Option<FactorMoments> {
        let (q, p) = (terms.q, self.p);
        let MomentSums { explained, used, second, sampling } = with_literal!(q, q in [1, 2, 3] => self.moment_sums(q, zz, zxy, w));
        let df = self.n_obs - (p + q * used) as f64;
        let sigma2 = (rss - explained) / df;
        if used <= q || !(df > 0.0 && sigma2 > 0.0) {
            return None;
        }
        let covariance = (0..q * q).map(|i| (second[i] - sigma2 * sampling[i]) / used as f64).collect();
        let sampling = (0..q).map(|i| sampling[i * q + i] / used as f64).collect();
        Some(FactorMoments { sigma2, df, covariance, sampling })
    }

    /// Corrects the one-factor moments of several factors for each other, on their intercepts'
    /// variances τ_f² and a common σ² (an ANOVA-type estimate in the spirit of Henderson's
    /// method 1, from each factor's sums as they are). With n_jk the rows that level j of
    /// factor f shares with level k of g, g's random intercepts add to f's residual variance
    /// within its levels, E σ̂_f² = σ² + Σ_g κ_fg τ_g² with κ_fg = (N − Σ_jk n_jk²/n_j)/df_f
    /// (1 for a factor crossed with f, 0 for one that f is nested in), and to its intercept's
    /// variance, E τ̂_f² = τ_f² + Σ_g A_fg τ_g² with A_fg = mean_j(Σ_k n_jk²/n_j² − 2 Σ_k
    /// n_jk n_k/(n_j N)) + Σ_k n_k²/N² − κ_fg mean_j (S_j⁻¹)_ii (the variance of g's mean over
    /// level j less the grand mean, less g's share of the σ̂_f² S_j⁻¹ subtracted: 1 for a
    /// factor that f is nested in, ~0 for a sparse crossing, −1/6 for Penicillin's plates
    /// crossed with 6 samples). (I + A) τ² = τ̂² gives the τ_f², the mean of σ̂_f² − Σ_g κ_fg
    /// τ_g² weighted by df_f gives σ², and each factor's Σ̂ then has τ_f² (at least 0) as its
    /// intercept's variance and σ² as its residual variance. The moments are left as they are
    /// with one factor, a factor without an intercept or without moments, or a system that
    /// gives no positive σ².
    fn joint_moments(&self, terms: &[(FactorTerms<'_>, std::ops::Range<usize>)], moments: &mut [Option<FactorMoments>]) {
        let Some(several) = &self.several else { return };
        let count = moments.len();
        let intercepts: Option<Vec<usize>> = terms.iter().map(|(t, _)| t.random.iter().position(|a| a.term == super::Term::Intercept)).collect();
        let Some(intercepts) = intercepts else { return };
        let Some(found) = moments.iter().map(Option::as_ref).collect::<Option<Vec<&FactorMoments>>>() else { return };
        let n_total = self.n_obs;
        let counts: Vec<&[f64]> = std::iter::once(self.n.as_slice()).chain(several.others.iter().map(|o| o.n.as_slice())).collect();
        let q: Vec<usize> = terms.iter().map(|(t, _)| t.q).collect();
        // Per ordered pair (f, g): Σ n_jk²/n_j, Σ n_jk²/n_j², Σ n_jk n_k/n_j over f's levels j.
        let mut sums = vec![[0.0_f64; 3]; count * count];
        let fronts = several.fronts.iter().map(|c| ((c.row.0 + 1, c.row.1), (0, c.column.1), c.value));
        let pairs = several.pairs.iter().map(|c| ((c.row.0 + 1, c.row.1), (c.column.0 + 1, c.column.1), c.value));
        for ((g, k), (f, j), value) in fronts.chain(pairs) {
            // The block Z_gᵀZ_f (q_g × q_f): its intercepts' entry counts the shared rows.
            let shared = several.values[value + intercepts[g] * q[f] + intercepts[f]];
            let (nj, nk) = (counts[f][j], counts[g][k]);
            if !(nj > 0.0 && nk > 0.0) {
                continue;
            }
            for (a, b, na, nb) in [(f, g, nj, nk), (g, f, nk, nj)] {
                let s = &mut sums[a * count + b];
                s[0] += shared * shared / na;
                s[1] += shared * shared / (na * na);
                s[2] += shared * nb / na;
            }
        }
        let levels: Vec<f64> = counts.iter().map(|n| n.iter().filter(|&&v| v > 0.0).count() as f64).collect();
        let spread: Vec<f64> = counts.iter().map(|n| n.iter().map(|v| v * v).sum::<f64>() / (n_total * n_total)).collect();
        let mut kappa = vec![0.0; count * count];
        let mut system = crate::numerics::dense::identity(count);
        for f in 0..count {
            for g in (0..count).filter(|&g| g != f) {
                let [squares, relative, products] = sums[f * count + g];
                kappa[f * count + g] = (n_total - squares) / found[f].df;
                system[f * count + g] = (relative - 2.0 * products / n_total) / levels[f] + spread[g] - kappa[f * count + g] * found[f].sampling[intercepts[f]];
            }
        }
        // (I + A) τ² = τ̂² by LU with partial pivoting; a singular system gives non-finite τ²,
        // which leaves the moments as they are (below).
        let estimates = faer::Mat::from_fn(count, 1, |f, _| found[f].covariance[intercepts[f] * q[f] + intercepts[f]]);
        let solved = faer::Mat::from_fn(count, count, |f, g| system[f * count + g]).partial_piv_lu().solve(&estimates);
        let tau2: Vec<f64> = (0..count).map(|f| solved[(f, 0)]).collect();
        let df: f64 = found.iter().map(|m| m.df).sum();
        let residual = |f: usize| found[f].sigma2 - (0..count).map(|g| kappa[f * count + g] * tau2[g].max(0.0)).sum::<f64>();
        let sigma2 = (0..count).map(|f| found[f].df * residual(f)).sum::<f64>() / df;
        if !(sigma2 > 0.0 && sigma2.is_finite() && tau2.iter().all(|t| t.is_finite())) {
            return;
        }
        for (f, m) in moments.iter_mut().enumerate() {
            let m = m.as_mut().expect("every factor has moments");
            m.covariance[intercepts[f] * q[f] + intercepts[f]] = tau2[f].max(0.0);
            m.sigma2 = sigma2;
        }
    }

    /// The sums of [`LinearMixedModel::moment_start`] over the levels (blocks `zz`, `zxy`)
    /// whose S_j is well conditioned, with c_j = B_j w the level's OLS residual
    /// cross-products: c_jᵀS_j⁻¹c_j, the b̂_j b̂_jᵀ with b̂_j = S_j⁻¹c_j, and the S_j⁻¹.
    #[inline(always)]
    fn moment_sums(&self, q: usize, zz: &[f64], zxy: &[f64], w: &[f64]) -> MomentSums {
        let p1 = self.p + 1;
        let mut sums = MomentSums { explained: 0.0, used: 0, second: vec![0.0; q * q], sampling: vec![0.0; q * q] };
        // One set of buffers for all groups: no allocation per group.
        let (mut l, mut inverse, mut c, mut s_inverse) = (vec![0.0; q * q], vec![0.0; q], vec![0.0; q], vec![0.0; q * q]);
        for (s, b) in zz.chunks_exact(q * q).zip(zxy.chunks_exact(q * p1)) {
            l.copy_from_slice(s);
            let trace: f64 = (0..q).map(|i| s[i * q + i]).sum();
            if !cholesky_in_place(&mut l, q) || (0..q).any(|i| l[i * q + i].powi(2) <= 1e-8 * trace) {
                continue;
            }
            for (i, x) in inverse.iter_mut().enumerate() {
                *x = 1.0 / l[i * q + i];
            }
            inverse_from_factor(&l, &inverse, q, &mut s_inverse);
            for (k, ck) in c.iter_mut().enumerate() {
                *ck = dot(&b[k * p1..(k + 1) * p1], &w[..p1]);
            }
            for i in 0..q {
                let bhat_i = dot(&s_inverse[i * q..(i + 1) * q], &c);
                sums.explained += c[i] * bhat_i;
                for k in 0..q {
                    sums.second[i * q + k] += bhat_i * dot(&s_inverse[k * q..(k + 1) * q], &c);
                }
            }
            for (total, x) in sums.sampling.iter_mut().zip(&s_inverse) {
                *total += x;
            }
            sums.used += 1;
        }
        sums
    }

    /// The fit at the internal θ `internal_theta` without a search (a saved fit rebuilt): the
    /// estimates there, with the projected gradient norm recomputed and no iterations. The
    /// evaluation asks `checkpoint` (with several factors, per block of the dense core).
    ///
    /// # Errors
    /// The errors of [`LinearMixedModel::deviance_and_gradient`] at that θ; `Interrupted` when
    /// `checkpoint` reports a user interrupt.
    ///
    /// The one-way model's estimates (μ̂, σ̂, τ̂², se(μ̂)²) and criterion there come from its
    /// closed forms ([`crate::estimates_at_theta`]; see [`LinearMixedModel::fit`]).
    pub fn fit_at(&self, criterion: Criterion, internal_theta: &[f64], checkpoint: &mut Checkpoint<'_>) -> Result<LmmFit> {
        let mut fit = self.fit_at_factorization(criterion, internal_theta, checkpoint)?;
        if let Some(stats) = &self.one_way {
            with_one_way_estimates(&mut fit, &estimates_at_theta(stats, criterion, internal_theta[0])?);
        }
        Ok(fit)
    }

    /// The fit at θ from the factorisation alone (see [`LinearMixedModel::fit_at`]).
    fn fit_at_factorization(&self, criterion: Criterion, internal_theta: &[f64], checkpoint: &mut Checkpoint<'_>) -> Result<LmmFit> {
        let mut ws = self.workspace()?;
        let (_, gradient) = self.deviance_and_gradient_checked(criterion, internal_theta, &mut ws, checkpoint)?;
        self.fit_at_gradient(criterion, internal_theta, gradient, &mut ws)
    }

    /// [`LinearMixedModel::fit_at`] given the criterion's gradient at θ (a search that stopped
    /// there has it) and the workspace it was computed in, whose factorisation is reused.
    pub(crate) fn fit_at_gradient(&self, criterion: Criterion, internal_theta: &[f64], gradient: Vec<f64>, ws: &mut Workspace) -> Result<LmmFit> {
        let factor = self.factorization_at(internal_theta, ws)?;
        let projected_gradient_norm =
            internal_theta.iter().zip(&gradient).zip(&self.lower).map(|((&t, &g), &l)| if t <= l { g.min(0.0).abs() } else { g.abs() }).fold(0.0, f64::max);
        let found = crate::numerics::optim::Minimum {
            x: internal_theta.to_vec(),
            value: self.criterion_value(criterion, &factor),
            gradient,
            iterations: 0,
            evaluations: 1,
            projected_gradient_norm,
            converged: true,
        };
        Ok(self.assemble(criterion, internal_theta, &factor, ws, found))
    }

    /// lme4's starting point, Λ = I in the data's units, as an internal θ.
    fn lme4_start(&self) -> Vec<f64> {
        self.internal_theta_of(&self.identity_theta()).expect("the identity is a θ of this model")
    }

    /// The internal θ of lme4's θ `theta` (Λ in the data's units, as [`LmmFit::theta`]): the
    /// Cholesky factor, block by block, of K Λ Λᵀ Kᵀ, with K the map from the data's random
    /// effects to the internal ones (b̃ = K b, K[f][f] = t_f and K[i₀][f] = s_f for a column
    /// centred at s_f), since the internal Λ̃Λ̃ᵀ = Σ̃/σ̃² = K Σ Kᵀ/σ². A start given in lme4's
    /// units.
    ///
    /// # Errors
    /// `ParameterLength` or `NotFinite` when `theta` is not a θ of this model.
    ///
    /// # Example
    /// ```
    /// use hnm_core::{Checkpoint, Column, Criterion, CrossProducts, LinearMixedModel, Never, Structure, Term};
    /// // A random slope of 0, 3 or 6 by group: a fit away from the boundary, where the map is
    /// // smooth (at a singular Λ the Cholesky factor of a rank-deficient K Λ Λᵀ Kᵀ has
    /// // the square root of its rounding in place of a 0).
    /// let y: Vec<f64> = (0..60)
    ///     .map(|i| ((i * 7) % 11) as f64 + (2 * (i / 10 * 7 % 6)) as f64 + (3 * ((i / 10) % 3)) as f64 * ((i * 5) % 7) as f64)
    ///     .collect();
    /// let x: Vec<f64> = (0..60).map(|i| 1e3 + ((i * 5) % 7) as f64).collect();
    /// let codes: Vec<i32> = (0..60).map(|i| i / 10 + 1).collect();
    /// let pass = CrossProducts::from_columns(&[Column::Double(&y), Column::Double(&x)], codes.into_iter(), 6,
    ///     &mut Checkpoint::new(&Never)).unwrap();
    /// let structure = Structure { response: 0, fixed: vec![Term::Intercept, Term::Variable(1)],
    ///     random: vec![Term::Intercept, Term::Variable(1)], blocks: vec![2] };
    /// let model = LinearMixedModel::new(&pass.stats, structure).unwrap();
    /// let fit = model.fit(Criterion::Ml, None, &mut Checkpoint::new(&Never)).unwrap();
    /// let internal = model.internal_theta_of(&fit.theta).unwrap();
    /// for (a, b) in internal.iter().zip(&fit.internal_theta) {
    ///     assert!((a - b).abs() <= 1e-9 * (1.0 + b.abs()));
    /// }
    /// ```
    pub fn internal_theta_of(&self, theta: &[f64]) -> Result<Vec<f64>> {
        self.fill_lambda(theta, &mut vec![0.0; self.q * self.q])?;
        let mut internal = Vec::with_capacity(theta.len());
        for (terms, range) in self.factor_terms() {
            internal.extend(terms.internal_theta_of(&theta[range]));
        }
        Ok(internal)
    }

    pub(crate) fn assemble(&self, criterion: Criterion, theta: &[f64], f: &Factorization, ws: &Workspace, found: crate::numerics::optim::Minimum) -> LmmFit {
        let p = self.p;
        let divisor = match criterion {
            Criterion::Ml => self.n_obs,
            Criterion::Reml => self.n_obs - p as f64,
        };
        let sigma2 = f.pwrss / divisor;
        let ty = self.response.scale;
        let beta = self.user_beta(&self.internal_beta(ws));
        let rx = self.x_factor(ws);
        let internal_cov: Vec<f64> = inverse_of_factored(&rx, p).iter().map(|v| v * sigma2 * ty * ty).collect();
        let beta_covariance = congruence(&self.to_user_fixed, &internal_cov, p);
        // Each factor's Σ̂ (q_f × q_f, in θ's order of the factors) and lme4's θ.
        let (mut re_covariance, mut user_theta) = (Vec::new(), Vec::with_capacity(theta.len()));
        for (terms, range) in self.factor_terms() {
            let mut lambda = vec![0.0; terms.q * terms.q];
            terms.fill_lambda(&theta[range], &mut lambda);
            let relative = terms.relative_covariance(&lambda);
            re_covariance.extend(relative.iter().map(|v| v * sigma2 * ty * ty));
            user_theta.extend(terms.user_theta(&lambda, &relative));
        }
        let deviance = self.criterion_value(criterion, f) + self.unit_correction(criterion);
        LmmFit {
            criterion,
            theta: user_theta,
            internal_theta: theta.to_vec(),
            beta,
            beta_covariance,
            sigma: sigma2.sqrt() * ty,
            re_covariance,
            deviance,
            iterations: found.iterations,
            evaluations: found.evaluations,
            projected_gradient_norm: found.projected_gradient_norm,
            converged: found.converged,
        }
    }
}

/// An [`Objective`] over θ: the model's profiled deviance for one criterion.
struct DevianceProblem<'a> {
    model: &'a LinearMixedModel,
    criterion: Criterion,
    workspace: RefCell<Workspace>,
    control: &'a FitControl<'a>,
    /// The search's interrupt, and the evaluations' checkpoint over it.
    interrupt: &'a Latched<'a>,
    checkpoint: RefCell<Checkpoint<'a>>,
    /// The converged minima found (θ and criterion), whose neighbourhoods the transfers'
    /// searches do not search again ([`Objective::abandon`]).
    minima: RefCell<Vec<(Vec<f64>, f64)>>,
    /// The evaluations so far, of every search.
    evaluations: Cell<usize>,
    /// While the transfers are searched: the evaluations after which the current search, no
    /// lower than the best minimum, is abandoned, and that minimum's criterion.
    abandon_after: Cell<Option<(usize, f64)>>,
}

impl DevianceProblem<'_> {
    /// True within [`BASIN_RADIUS`] of a converged minimum found before, `value` not
    /// [`lower`] than its criterion.
    fn known_basin(&self, x: &[f64], value: f64) -> bool {
        self.minima.borrow().iter().any(|(minimum, lowest)| !lower(value, *lowest) && within_basin(x, minimum))
    }

    /// `Interrupted` once an evaluation was interrupted (the search may try another).
    fn not_interrupted(&self) -> Result<()> {
        if self.interrupt.latched() {
            return Err(HnmError::Interrupted);
        }
        Ok(())
    }
}

/// How [`LinearMixedModel::fit_with`] searches.
#[derive(Clone, Copy)]
pub struct FitControl<'a> {
    /// Convergence when the criterion's projected gradient (max-norm, in θ's internal units) is
    /// at most this times N. The default 1e-10 changes the criterion by far less than its
    /// rounding (module docs of `numerics::optim`): its curvature is O(N), so θ is then exact
    /// to about 1e-10.
    pub relative_tolerance: f64,
    /// Iterations of one search before it stops, not converged (default 500).
    pub max_iterations: usize,
    /// Called at the start of every iteration with its number, the criterion and the projected
    /// gradient's max-norm (`verbose` in R).
    pub trace: Option<&'a dyn Fn(usize, f64, f64)>,
}

impl Default for FitControl<'_> {
    fn default() -> Self {
        FitControl { relative_tolerance: 1e-10, max_iterations: crate::numerics::optim::MAX_ITERATIONS, trace: None }
    }
}

impl Objective for DevianceProblem<'_> {
    fn value(&self, x: &[f64]) -> Result<f64> {
        self.not_interrupted()?;
        self.evaluations.set(self.evaluations.get() + 1);
        self.model.deviance_checked(self.criterion, x, &mut self.workspace.borrow_mut(), &mut self.checkpoint.borrow_mut())
    }

    fn value_and_gradient(&self, x: &[f64]) -> Result<(f64, Vec<f64>)> {
        self.not_interrupted()?;
        self.evaluations.set(self.evaluations.get() + 1);
        self.model.deviance_and_gradient_checked(self.criterion, x, &mut self.workspace.borrow_mut(), &mut self.checkpoint.borrow_mut())
    }

    fn canonicalize(&self, x: &mut [f64]) {
        self.model.canonical_theta(x);
    }

    /// The θ of every column of a Λ whose entries are all 0, the group named by the column's
    /// first θ.
    fn zero_groups(&self, x: &[f64]) -> Vec<Option<usize>> {
        let mut groups = vec![None; x.len()];
        for (terms, range) in self.model.factor_terms() {
            let (theta, positions) = (&x[range.clone()], terms.theta_positions);
            for (k, &(_, column)) in positions.iter().enumerate() {
                let mut members = positions.iter().zip(theta).enumerate().filter(|(_, (&(_, c), _))| c == column);
                if members.clone().all(|(_, (_, &t))| t == 0.0) {
                    groups[range.start + k] = members.next().map(|(first, _)| range.start + first);
                }
            }
        }
        groups
    }

    /// A diagonal entry λ_kk of Λ to 0 with the rest of its row l_k scaled by
    /// |l_k| / (|l_k|² − λ_kk²)^½, so that the row's norm, the relative variance (ΛΛᵀ)_kk,
    /// is kept and only the correlations change: near a singular fit the variances are what the
    /// criterion fixes, and the valley toward λ_kk = 0 turns the row on that sphere. Without
    /// entries left of λ_kk, λ_kk alone is set to 0.
    fn onto_bound(&self, x: &[f64], i: usize, bound: f64) -> Vec<f64> {
        let mut on = x.to_vec();
        on[i] = bound;
        for (terms, range) in self.model.factor_terms() {
            if !range.contains(&i) {
                continue;
            }
            let row = terms.theta_positions[i - range.start].0;
            let others: Vec<usize> = range.clone().filter(|&j| j != i && terms.theta_positions[j - range.start].0 == row).collect();
            let rest: f64 = others.iter().map(|&j| x[j] * x[j]).sum();
            let scale = ((rest + x[i] * x[i] - bound * bound) / rest).sqrt();
            if rest > 0.0 && scale.is_finite() {
                for j in others {
                    on[j] *= scale;
                }
            }
        }
        on
    }

    fn max_iterations(&self) -> usize {
        self.control.max_iterations
    }

    /// In a search from a transfer (see [`LinearMixedModel::transfers`]): within
    /// [`BASIN_RADIUS`] of a converged minimum found before and no lower than it, where the
    /// search would converge to that minimum again (another minimum so close would need the
    /// criterion's curvature to change sign within 1e-3 of θ); or past its allowance of
    /// evaluations and no lower than the best minimum (a search already below it goes on: it
    /// has found what the transfers look for).
    fn abandon(&self, x: &[f64], value: f64) -> bool {
        let Some((last, best)) = self.abandon_after.get() else {
            return false;
        };
        (self.evaluations.get() >= last && !lower(value, best)) || self.known_basin(x, value)
    }

    fn trace(&self, iteration: usize, value: f64, projected_gradient_norm: f64) {
        if let Some(trace) = self.control.trace {
            trace(iteration, value, projected_gradient_norm);
        }
    }
}

/// The one-way model's closed-form estimates (μ̂, σ̂, τ̂², se(μ̂)²) and criterion in `fit`, in
/// place of the factorisation's (see [`LinearMixedModel::fit`]).
fn with_one_way_estimates(fit: &mut LmmFit, estimates: &Estimates) {
    let Params { mu, sigma2, tau2 } = estimates.params;
    (fit.beta, fit.sigma, fit.re_covariance) = (vec![mu], sigma2.sqrt(), vec![tau2]);
    (fit.deviance, fit.beta_covariance) = (estimates.deviance, vec![estimates.se_mu * estimates.se_mu]);
}

#[cfg(test)]
mod tests {
    use crate::model::lmm::factors::GroupingFactor;
    use crate::model::lmm::{LinearMixedModel, Term};
    use crate::{Checkpoint, Column, CrossProducts, Never};

    /// A pseudo-random normal deviate (Box-Muller of two hashed uniforms): test data with no
    /// dependence on a random-number crate.
    fn normal(i: u64) -> f64 {
        let uniform =
            |k: u64| ((k.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5851_F42D_4C95_7F2D).wrapping_mul(0xD1B5_4A32_D192_ED03) >> 11) as f64 / (1u64 << 53) as f64;
        let (u, v) = (uniform(2 * i).max(1e-300), uniform(2 * i + 1));
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    #[test]
    fn the_start_of_a_balanced_nested_design_is_near_its_anova_estimates() {
        // a schools of b classes of n pupils: y = 1 + s_i + c_ij + e, sd 1, 0.5 and 1.
        let (a, b, n) = (60, 4, 6);
        let rows = a * b * n;
        let class_of = |r: usize| r / n;
        let y: Vec<f64> =
            (0..rows).map(|r| 1.0 + normal((class_of(r) / b) as u64 + 10_000) + 0.5 * normal(class_of(r) as u64 + 20_000) + normal(r as u64)).collect();
        let stats =
            CrossProducts::from_columns(&[Column::Double(&y)], (0..rows).map(|r| class_of(r) as i32 + 1), a * b, &mut Checkpoint::new(&Never)).unwrap().stats;
        let factor = |level_of_group: Vec<usize>, levels| GroupingFactor { level_of_group, levels, random: vec![Term::Intercept], blocks: vec![1] };
        let model = LinearMixedModel::with_factors(
            &stats,
            0,
            vec![Term::Intercept],
            &[factor((0..a * b).collect(), a * b), factor((0..a * b).map(|c| c / b).collect(), a)],
            &mut Checkpoint::new(&Never),
        )
        .unwrap();
        // The ANOVA estimates of the balanced nested design (mean squares of schools, of
        // classes within schools and of pupils within classes).
        let mean = |range: std::ops::Range<usize>| y[range.clone()].iter().sum::<f64>() / range.len() as f64;
        let grand = mean(0..rows);
        let school = |i: usize| mean(i * b * n..(i + 1) * b * n);
        let class = |j: usize| mean(j * n..(j + 1) * n);
        let ms_a = (b * n) as f64 * (0..a).map(|i| (school(i) - grand).powi(2)).sum::<f64>() / (a - 1) as f64;
        let ms_b = n as f64 * (0..a * b).map(|j| (class(j) - school(j / b)).powi(2)).sum::<f64>() / (a * (b - 1)) as f64;
        let ms_e = (0..rows).map(|r| (y[r] - class(class_of(r))).powi(2)).sum::<f64>() / (a * b * (n - 1)) as f64;
        let anova = [((ms_b - ms_e) / n as f64 / ms_e).sqrt(), ((ms_a - ms_b) / (b * n) as f64 / ms_e).sqrt()];
        let start = model.moment_start();
        // Alone, the classes' moments hold the schools' variance too (θ = 1.28 for 0.57 here,
        // the schools' 1.05 for 1.16).
        for (found, expected) in start.iter().zip(anova) {
            assert!((found - expected).abs() <= 0.1 * expected, "{start:?} against {anova:?}");
        }
    }
}
