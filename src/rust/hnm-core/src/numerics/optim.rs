//! A bounded Newton method for small smooth problems with an analytic gradient.
//!
//! argmin has no solver for bound constraints, and its Newton and trust-region solvers
//! never declare convergence, so the mixed model's θ (diag(Λ) ≥ 0) is minimised here by a
//! projected Newton method (Bertsekas 1982) with three features the profiled deviance needs:
//!
//! - the Hessian is taken by forward differences of the analytic gradient (n gradients per
//!   iteration for n ≤ a few dozen parameters), so steps are Newton steps and converge
//!   quadratically to the exact optimum rather than stopping short;
//! - an indefinite Hessian is made positive definite by the absolute values of its
//!   eigenvalues, and a direction of negative curvature is followed where the gradient
//!   vanishes: the deviance is even in each column of Λ, so at a zero column (a singular
//!   fit) the gradient is exactly 0 and only the curvature tells a minimum from a saddle;
//! - steps are projected on the bounds (a coordinate that would cross its bound stops at it
//!   exactly), which is how singular fits are reached: a zero on the diagonal of Λ, not a
//!   small number.
//!
//! - f's noise is measured with every Hessian (the trapezoid rule's residual along each
//!   difference step, [`Differences`]): a line search does not shorten its step below a
//!   promised decrease within that noise, and a search whose f falls by no more than its noise
//!   over a few iterations while the gradient stays ends, not converged ([`Stall`]): where the
//!   model is degenerate, f is noisy to 1e-2 and the steps only follow its rounding.
//!
//! - a coordinate that creeps toward its bound, along a curved valley that ends on it with a
//!   gradient vanishing there, is tried on the bound ([`Creep`]).
//!
//! Convergence is declared when the max-norm of the projected gradient (a coordinate at its
//! bound with a gradient pointing out of the feasible set counts as 0) is below the
//! tolerance and the Hessian on the free coordinates has no negative curvature. After a full
//! Newton step from a point of positive curvature that kept the same free coordinates, that
//! curvature is taken to hold at the new point (the step is small, the Hessian continuous),
//! which saves the n gradients of a new Hessian at the last iterate.

use crate::error::{HnmError, Result};
use crate::numerics::interrupt::Checkpoint;

/// A smooth function to minimise, with its analytic gradient.
pub trait Objective {
    /// f(x).
    ///
    /// # Errors
    /// Whatever the function reports for an invalid x.
    fn value(&self, x: &[f64]) -> Result<f64>;

    /// f(x) and ∇f(x).
    ///
    /// # Errors
    /// As [`Objective::value`].
    fn value_and_gradient(&self, x: &[f64]) -> Result<(f64, Vec<f64>)>;

    /// Replaces x by an equivalent point (the same f) in a canonical form, where the
    /// parametrisation is redundant; called after every step. The default keeps x.
    fn canonicalize(&self, _x: &mut [f64]) {}

    /// The groups of coordinates that are, at x, exactly 0 and on which f depends only through
    /// the group's product with itself (a column l of Λ: f depends on it through l lᵀ), so
    /// that f's gradient in them vanishes and only its curvature can move them: an id per
    /// coordinate of such a group, `None` for the others. The quasi-Newton search holds them
    /// (while their gradient is within the tolerance) and decides at convergence, by their
    /// curvature, whether to leave; along a learnt direction they would only reach a
    /// non-canonical point, to be re-evaluated. The default: none.
    fn zero_groups(&self, x: &[f64]) -> Vec<Option<usize>> {
        vec![None; x.len()]
    }

    /// A point with coordinate `i` of `x` on its lower bound `bound`, for the search to try
    /// when x_i creeps toward that bound ([`Creep`]): where f's valley runs along a curve to the
    /// bound rather than straight, the point at its end. The default sets x_i = `bound` alone.
    fn onto_bound(&self, x: &[f64], i: usize, bound: f64) -> Vec<f64> {
        let mut on = x.to_vec();
        on[i] = bound;
        on
    }

    /// Iterations before [`minimize_bounded`] gives up (not converged). The default is 500.
    fn max_iterations(&self) -> usize {
        MAX_ITERATIONS
    }

    /// Called at the start of every iteration with its number (from 0), f and the projected
    /// gradient's max-norm there, for a trace of the search. The default does nothing.
    fn trace(&self, _iteration: usize, _value: f64, _projected_gradient_norm: f64) {}

    /// True when the search may stop at x, where f is `value`: a search for another basin
    /// that reached the neighbourhood of a minimum an earlier search found, no lower there,
    /// would only converge to it again, and one past the evaluations its caller grants it is
    /// not worth finishing. Asked at the start of every iteration (and by the quasi-Newton
    /// search at its start, before any differences); the search then ends at x, not
    /// converged. The default: never.
    fn abandon(&self, _x: &[f64], _value: f64) -> bool {
        false
    }
}

/// The point found and the work it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Minimum {
    /// The minimiser.
    pub x: Vec<f64>,
    /// f at the minimiser.
    pub value: f64,
    /// ∇f at the minimiser.
    pub gradient: Vec<f64>,
    /// Newton iterations.
    pub iterations: usize,
    /// Evaluations of f (each with its gradient).
    pub evaluations: usize,
    /// Max-norm of the projected gradient at the minimiser.
    pub projected_gradient_norm: f64,
    /// True when the tolerance was met or f stalled at its minimum (see the module docs); false
    /// when the iterations ran out or no step could lower f while the gradient was still above
    /// the tolerance.
    pub converged: bool,
}

impl Minimum {
    /// The end of a search that [`Objective::abandon`] stopped at x (f = `value`, ∇f =
    /// `gradient`, bounds `lower`) after the work counted: x as it stands, with its projected
    /// gradient's max-norm, not converged.
    pub(crate) fn abandoned(x: Vec<f64>, value: f64, gradient: Vec<f64>, lower: &[f64], iterations: usize, evaluations: usize) -> Self {
        let projected_gradient_norm = projected_norm(&x, &gradient, lower);
        Minimum { x, value, gradient, iterations, evaluations, projected_gradient_norm, converged: false }
    }
}

/// Iterations before giving up, unless the objective says otherwise.
pub(crate) const MAX_ITERATIONS: usize = 500;
/// A run of this many iterations that lowers f by less than [`STALL_DECREASE`] relative ends
/// the search: the minimum lies in a valley so flat (a correlation of a component with
/// almost no variance, say) that f is known to rounding error while x still moves.
const STALL_ITERATIONS: usize = 20;
const STALL_DECREASE: f64 = 1e-11;
/// Relative decrease of f below which a Newton step is lost in f's rounding.
const ROUNDING_DECREASE: f64 = 1e3 * f64::EPSILON;
/// Armijo's constant of sufficient decrease.
const ARMIJO: f64 = 1e-4;
/// Halvings of a step before the line search gives up.
pub(crate) const MAX_HALVINGS: usize = 50;

/// Iterations over which f's decrease is compared with its noise (see [`Stall::lost_in_noise`]).
const NOISE_ITERATIONS: usize = 5;

/// f and the projected gradient's max-norm at the last [`STALL_ITERATIONS`] + 1 iterations,
/// oldest first: the tests that f has stalled at its minimum (see [`STALL_DECREASE`]) or that
/// its decrease is lost in its noise.
#[derive(Default)]
pub(crate) struct Stall {
    history: std::collections::VecDeque<(f64, f64)>,
}

impl Stall {
    /// Records f and the projected gradient's norm of a new iteration; true when f is less than
    /// [`STALL_DECREASE`] (relative) below f [`STALL_ITERATIONS`] iterations ago.
    pub(crate) fn stalled(&mut self, value: f64, projected: f64) -> bool {
        if self.history.len() > STALL_ITERATIONS {
            self.history.pop_front();
        }
        self.history.push_back((value, projected));
        self.history
            .front()
            .filter(|_| self.history.len() > STALL_ITERATIONS)
            .is_some_and(|&(earlier, _)| earlier - value <= STALL_DECREASE * (1.0 + value.abs()))
    }

    /// True when f is noisier than the stall test resolves (`noise`, [`Differences`], above
    /// [`STALL_DECREASE`] relative) and over the last [`NOISE_ITERATIONS`] iterations f fell by
    /// at most 10 times its noise while the projected gradient did not shrink tenfold: the steps
    /// then follow f's rounding, which a line search's best of several noisy values lowers by
    /// about its noise each time, and no progress is possible (test-degenerate.R's collinear
    /// random slopes went on for 140 Newton iterations). Ordinary profiled deviances have noise
    /// near 1e-14 relative, and near their minimum the gradient shrinks fast: never stopped here.
    pub(crate) fn lost_in_noise(&self, noise: f64) -> bool {
        let Some(&(value, projected)) = self.history.back() else { return false };
        let noisy = noise > STALL_DECREASE * (1.0 + value.abs());
        let earlier = self.history.len().checked_sub(NOISE_ITERATIONS + 1).map(|i| self.history[i]);
        noisy && earlier.is_some_and(|(f, g)| f - value <= 10.0 * noise && projected > 0.1 * g)
    }
}

/// Minimises `objective` over {x : x ≥ `lower`} from `start` (projected on the bounds) by
/// the projected Newton method of the module docs; convergence when the projected gradient's
/// max-norm is at most `tolerance`.
///
/// # Errors
/// The objective's errors at the start; `Interrupted` when `checkpoint` reports a user
/// interrupt. Points where the objective fails during a line search count as too long a step.
///
/// # Example
/// ```
/// use hnm_core::{minimize_bounded, Checkpoint, Never, Objective, Result};
/// // (x − 1)² + (y + 2)² + x y / 2 with y ≥ 0: the minimum is on the bound y = 0, at x = 1.
/// struct Quadratic;
/// impl Objective for Quadratic {
///     fn value(&self, x: &[f64]) -> Result<f64> {
///         Ok((x[0] - 1.0).powi(2) + (x[1] + 2.0).powi(2) + 0.5 * x[0] * x[1])
///     }
///     fn value_and_gradient(&self, x: &[f64]) -> Result<(f64, Vec<f64>)> {
///         let g = vec![2.0 * (x[0] - 1.0) + 0.5 * x[1], 2.0 * (x[1] + 2.0) + 0.5 * x[0]];
///         Ok((self.value(x)?, g))
///     }
/// }
/// let m = minimize_bounded(&Quadratic, &[3.0, 3.0], &[f64::NEG_INFINITY, 0.0], 1e-10,
///     &mut Checkpoint::new(&Never)).unwrap();
/// assert!(m.converged && m.x[1] == 0.0 && (m.x[0] - 1.0).abs() < 1e-9);
/// ```
pub fn minimize_bounded(objective: &impl Objective, start: &[f64], lower: &[f64], tolerance: f64, checkpoint: &mut Checkpoint<'_>) -> Result<Minimum> {
    if start.len() != lower.len() {
        return Err(HnmError::ParameterLength { argument: "start", expected: lower.len(), found: start.len() });
    }
    let mut x = project(start, lower);
    let (mut value, mut gradient) = objective.value_and_gradient(&x)?;
    let mut evaluations = 1;
    let mut iterations = 0;
    let mut converged = false;
    // True after a full Newton step from positive curvature with the same free coordinates.
    let mut curvature_holds = false;
    // The Hessian of the last iteration, which the polish reuses.
    let mut hessian = Vec::new();
    let max_iterations = objective.max_iterations();
    let mut stall = Stall::default();
    let mut creep = Creep::new(x.len());
    // f's noise, measured with each Hessian (see [`Differences`]).
    let mut noise = 0.0;
    while iterations < max_iterations {
        objective.trace(iterations, value, projected_norm(&x, &gradient, lower));
        if objective.abandon(&x, value) {
            return Ok(Minimum::abandoned(x, value, gradient, lower, iterations, evaluations));
        }
        if stall.stalled(value, projected_norm(&x, &gradient, lower)) {
            converged = true;
            break;
        }
        if stall.lost_in_noise(noise) {
            break;
        }
        checkpoint.check_timed()?;
        if curvature_holds && projected_norm(&x, &gradient, lower) <= tolerance {
            converged = true;
            break;
        }
        iterations += 1;
        Differences { hessian, noise } = forward_difference_hessian(objective, &x, value, &gradient, &mut evaluations);
        let free = free_coordinates(&x, &gradient, lower);
        let step = newton_direction(&hessian, &gradient, &free, &x, lower);
        if projected_norm(&x, &gradient, lower) <= tolerance && step.positive_curvature {
            converged = true;
            break;
        }
        // A Newton step on positive curvature that promises a decrease below f's rounding
        // (which exceeds ε|f| where f sums terms that cancel) cannot be resolved by a line
        // search: f is at its minimum to rounding.
        let promised = -step.direction.iter().zip(&gradient).map(|(d, g)| d * g).sum::<f64>();
        let at_rounding = step.positive_curvature && promised <= ROUNDING_DECREASE * value.abs().max(1.0);
        // Otherwise a Newton direction along a curvature near 0 (a coordinate at a bound where
        // f is even, a flat valley) can be so long that no halving of it lowers f; the steepest
        // descent then still makes progress, and the next Newton step starts from a better
        // Hessian.
        let searched = projected_search(objective, &x, value, &gradient, &step.direction, lower, noise, Shorten::Halve, &mut evaluations)
            .map(|found| (found, step.positive_curvature))
            .or_else(|| {
                if at_rounding {
                    return None;
                }
                let descent: Vec<f64> = gradient.iter().map(|g| -g).collect();
                projected_search(objective, &x, value, &gradient, &descent, lower, noise, Shorten::Halve, &mut evaluations).map(|found| (found, false))
            });
        match searched {
            Some((found, positive_curvature)) => {
                // f was evaluated at the canonical form of the point reached (same f).
                curvature_holds = positive_curvature && found.full && found.canonical && free_coordinates(&found.x, &found.gradient, lower) == free;
                let from = Point { x: &x, value, projected: projected_norm(&x, &gradient, lower) };
                let creeping =
                    creep.step(&from, &Point { x: &found.x, value: found.value, projected: projected_norm(&found.x, &found.gradient, lower) }, lower);
                (x, value, gradient) = (found.x, found.value, found.gradient);
                if let Some(on_bound) = try_bound(objective, &x, value, &gradient, lower, &creeping, &mut evaluations) {
                    (x, value, gradient) = on_bound;
                    curvature_holds = false;
                }
            }
            None => {
                converged = at_rounding;
                break;
            }
        }
    }
    // Rounding can stop the line search a little above the tolerance: still the optimum. The
    // gradient is exact where f is flat to rounding, so Newton steps judged by it go on.
    converged = converged || projected_norm(&x, &gradient, lower) <= 1e3 * tolerance;
    if converged {
        polish(objective, &mut x, &mut value, &mut gradient, lower, &mut hessian, None, &mut evaluations);
    }
    snap_to_bounds(objective, &mut x, &mut value, &mut gradient, lower, &mut evaluations);
    let projected_gradient_norm = projected_norm(&x, &gradient, lower);
    converged = converged || projected_gradient_norm <= 1e3 * tolerance;
    Ok(Minimum { x, value, gradient, iterations, evaluations, projected_gradient_norm, converged })
}

/// Iterations in a row that each move a coordinate toward its (finite) lower bound before the
/// search tries the point on the bound ([`Creep`]).
const CREEP_ITERATIONS: usize = 6;
/// The least distance a creeping coordinate covers over [`CREEP_ITERATIONS`] iterations,
/// relative to its distance from the bound: one that settles at an interior value moves by
/// its last digits.
const CREEP_PROGRESS: f64 = 1e-3;
/// The factor by which the projected gradient shrinks over [`CREEP_ITERATIONS`] iterations of
/// a search that converges (superlinearly, near its minimum); one whose gradient shrinks less
/// creeps.
const CREEP_SHRINK: f64 = 1e-3;
/// The distance from its bound within which a coordinate is not tried on it: steps projected
/// on the bound and the final [`snap_to_bounds`] reach it there (trials that land a coordinate
/// 1e-6 from its bound only cost the quasi-Newton search's updates: 166 -> 174 evaluations on
/// the kb07-shaped model).
const CREEP_NEAR: f64 = 1e-3;
/// The largest decrease of f, relative to 1 + |f|, over [`CREEP_ITERATIONS`] iterations of a
/// search that creeps: larger decreases are progress (a search still far from its minimum;
/// on the kb07-shaped model, 72 θ, two coordinates whose f fell by 3e-8 and 1e-7 relative
/// over their runs were tried on the bound in vain, 166 -> 168 evaluations).
const CREEP_DECREASE: f64 = 1e-8;

/// Coordinates that creep toward their bound: x_i > l_i + [`CREEP_NEAR`] fell at each of the last
/// [`CREEP_ITERATIONS`] iterations, by [`CREEP_PROGRESS`] of its distance to l_i or more,
/// while the projected gradient shrank by less than [`CREEP_SHRINK`] and f fell by less than
/// [`CREEP_DECREASE`]. Where the minimum lies on the bound at the end of a curved valley whose
/// floor is nearly flat, f's gradient vanishes toward the bound as it does along the valley,
/// and neither the tolerance nor the projection of a step stops a search that follows it: a
/// correlated random slope whose fit is singular in the model's internal units (a Cholesky
/// diagonal of Λ at 0, reached by turning its row on the sphere of its variance; REML, 20 rows,
/// `lmm_dense_reference.rs`) took 500 quasi-Newton iterations (688 evaluations) to end
/// unconverged 8e-4 from the bound and 4e-9 above the minimum, and the Newton method 291
/// iterations (1,292 evaluations). The point on the bound ([`Objective::onto_bound`]) is tried
/// then, and kept when f is no higher there ([`try_bound`]). A search that converges meets
/// none of these conditions for long (its gradient shrinks by orders of magnitude within a few
/// iterations), and pays no evaluation for the check: over 3,000 random models of
/// `lmm_dense_reference.rs` the deviances and evaluations were unchanged but one fit's
/// (2,736 -> 531 evaluations, the same deviance).
pub(crate) struct Creep {
    runs: Vec<Run>,
}

/// A coordinate's run of iterations that lowered it ([`Creep`]): their number, and the
/// coordinate, f and the projected gradient's max-norm before the first.
#[derive(Clone, Copy, Default)]
struct Run {
    length: usize,
    start: f64,
    value: f64,
    projected: f64,
}

/// A point of a search: x, f and the projected gradient's max-norm there.
pub(crate) struct Point<'a> {
    pub(crate) x: &'a [f64],
    pub(crate) value: f64,
    pub(crate) projected: f64,
}

impl Creep {
    pub(crate) fn new(n: usize) -> Self {
        Creep { runs: vec![Run::default(); n] }
    }

    /// Records a step from `from` to `to`; the coordinates that now creep (see [`Creep`]),
    /// whose runs start again.
    pub(crate) fn step(&mut self, from: &Point<'_>, to: &Point<'_>, lower: &[f64]) -> Vec<usize> {
        let mut creeping = Vec::new();
        for (i, run) in self.runs.iter_mut().enumerate() {
            let (before, after) = (from.x[i], to.x[i]);
            if !(lower[i].is_finite() && after < before && after > lower[i]) {
                *run = Run::default();
                continue;
            }
            if run.length == 0 {
                *run = Run { length: 0, start: before, value: from.value, projected: from.projected };
            }
            run.length += 1;
            if run.length == CREEP_ITERATIONS {
                let slow = to.projected > CREEP_SHRINK * run.projected && run.value - to.value <= CREEP_DECREASE * (1.0 + to.value.abs());
                let distance = after - lower[i];
                if slow && distance > CREEP_NEAR && run.start - after >= CREEP_PROGRESS * distance {
                    creeping.push(i);
                }
                *run = Run::default();
            }
        }
        creeping
    }
}

/// The point on the bound of each coordinate of `creeping` ([`Objective::onto_bound`], in
/// canonical form) where f is no higher than `value` (the first such): x, f and ∇f there.
/// Points that f's gradient at x says are uphill are not tried; each tried costs an
/// evaluation. `None` when f is higher at every one.
pub(crate) fn try_bound(
    objective: &impl Objective, x: &[f64], value: f64, gradient: &[f64], lower: &[f64], creeping: &[usize], evaluations: &mut usize,
) -> Option<(Vec<f64>, f64, Vec<f64>)> {
    for &i in creeping {
        let mut trial = objective.onto_bound(x, i, lower[i]);
        let slope: f64 = trial.iter().zip(x).zip(gradient).map(|((t, xi), g)| g * (t - xi)).sum();
        if slope >= 0.0 {
            continue;
        }
        objective.canonicalize(&mut trial);
        *evaluations += 1;
        if let Ok((v, g)) = objective.value_and_gradient(&trial) {
            if v <= value {
                return Some((trial, v, g));
            }
        }
    }
    None
}

/// The decrease of f that a Newton step from `x` still promises, ½ g_Fᵀ H_F⁻¹ g_F on the free
/// coordinates F with H by forward differences of the gradient: how far f can be above its
/// minimum near x, where f is close to quadratic. `None` where H_F has negative curvature
/// (no minimum nearby to measure against).
pub(crate) fn remaining_decrease(objective: &impl Objective, x: &[f64], value: f64, gradient: &[f64], lower: &[f64]) -> Option<f64> {
    let mut evaluations = 0;
    let hessian = forward_difference_hessian(objective, x, value, gradient, &mut evaluations).hessian;
    let step = newton_direction(&hessian, gradient, &free_coordinates(x, gradient, lower), x, lower);
    let promised = -step.direction.iter().zip(gradient).map(|(d, g)| d * g).sum::<f64>();
    step.positive_curvature.then_some(0.5 * promised)
}

/// An update of a curvature B (n × n, row-major) from a step s and its change of gradient y.
pub(crate) type Learn = dyn Fn(&mut [f64], &[f64], &[f64]);

/// Newton steps taken at most after the tolerance is met (see [`polish`]).
const POLISH_STEPS: usize = 3;
/// A polishing step shorter than this in every coordinate, relative to 1 + |x_i|, is not taken
/// (see [`polish`]).
const POLISH_RESOLUTION: f64 = 1e-12;

/// Newton steps from a point that met the tolerance, to the root of the projected gradient.
/// The tolerance bounds the gradient, not the error in x, which is the gradient over the
/// curvature and so large where the curvature is small (θ² = τ²/σ² of 20 leaves θ 1e-8 from
/// the root at the tolerance of [`crate::LinearMixedModel::fit`]). The steps reuse `hessian`,
/// the last iteration's (empty when there was none): a Hessian from a nearby point still
/// shrinks the error by a factor of the relative change in curvature, about the size of the
/// last step, so one or two steps of one evaluation each reach the root to rounding. A step
/// that would move every x_i by less than [`POLISH_RESOLUTION`] (1 + |x_i|) is not taken: x is
/// then that close to the root (the error after a Newton step is about the step itself, the
/// criterion's change its square times the curvature, far below rounding), and the evaluation
/// would be 1 or 2 of the 13 of an InstEval fit or of Penicillin's 20. (At 1e-10, fits of
/// rescaled data differed by 5e-10 relative in Σ̂, test-lmm-range.R's bound being 1e-10.) A
/// step is kept only while it shrinks the projected gradient without raising f beyond its
/// rounding ([`ROUNDING_DECREASE`]; the true change, −½ gᵀH⁻¹g, is far below it), so the point returned
/// is never worse than the one that met the tolerance. `learn`, when given, updates `hessian`
/// with each step kept and its change of gradient (the quasi-Newton search's secant update: its
/// B is not the Hessian at x, and each step shrinks the error only by B's relative error, ~1/15
/// on the nested 1e5-row model, whose polish took 3 steps where 2 now do).
#[allow(clippy::too_many_arguments)]
pub(crate) fn polish(
    objective: &impl Objective, x: &mut Vec<f64>, value: &mut f64, gradient: &mut Vec<f64>, lower: &[f64], hessian: &mut [f64], learn: Option<&Learn>,
    evaluations: &mut usize,
) {
    if hessian.len() != x.len() * x.len() {
        return;
    }
    for _ in 0..POLISH_STEPS {
        let norm = projected_norm(x, gradient, lower);
        let step = newton_direction(hessian, gradient, &free_coordinates(x, gradient, lower), x, lower);
        let resolved = step.direction.iter().zip(x.iter()).all(|(d, xi)| d.abs() <= POLISH_RESOLUTION * (1.0 + xi.abs()));
        if norm == 0.0 || !step.positive_curvature || resolved {
            return;
        }
        let mut trial: Vec<f64> = x.iter().zip(&step.direction).map(|(xi, d)| xi + d).collect();
        trial = project(&trial, lower);
        objective.canonicalize(&mut trial);
        *evaluations += 1;
        let Ok((v, g)) = objective.value_and_gradient(&trial) else { return };
        if !(v <= *value + ROUNDING_DECREASE * value.abs().max(1.0) && projected_norm(&trial, &g, lower) < norm) {
            return;
        }
        if let Some(learn) = learn {
            let s: Vec<f64> = trial.iter().zip(x.iter()).map(|(a, b)| a - b).collect();
            let y: Vec<f64> = g.iter().zip(gradient.iter()).map(|(a, b)| a - b).collect();
            learn(hessian, &s, &y);
        }
        *x = trial;
        *value = v;
        *gradient = g;
    }
}

/// Moves coordinates that ended within rounding of their bound onto it: a Newton step lands
/// on a minimum at the bound only up to rounding (1e-12, say), and an exact boundary (a
/// singular fit) is what the caller needs. A move is kept when f does not rise by more than
/// its rounding error. All such coordinates are moved at once first (one evaluation; the
/// kb07-shaped fit ends with several), then one at a time when that raises f.
pub(crate) fn snap_to_bounds(objective: &impl Objective, x: &mut Vec<f64>, value: &mut f64, gradient: &mut Vec<f64>, lower: &[f64], evaluations: &mut usize) {
    let size = 1.0 + x.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    let near = |x: &[f64], i: usize| lower[i].is_finite() && x[i] > lower[i] && x[i] - lower[i] <= 1e-4 * size;
    let all: Vec<usize> = (0..x.len()).filter(|&i| near(x, i)).collect();
    if all.len() > 1 && snap(objective, x, value, gradient, lower, &all, evaluations) {
        return;
    }
    for i in all {
        if near(x, i) {
            snap(objective, x, value, gradient, lower, &[i], evaluations);
        }
    }
}

/// Moves the coordinates `on` onto their bounds when f does not rise beyond its rounding
/// (see [`snap_to_bounds`]); true when it did.
fn snap(objective: &impl Objective, x: &mut Vec<f64>, value: &mut f64, gradient: &mut Vec<f64>, lower: &[f64], on: &[usize], evaluations: &mut usize) -> bool {
    let mut trial = x.clone();
    for &i in on {
        trial[i] = lower[i];
    }
    objective.canonicalize(&mut trial);
    *evaluations += 1;
    match objective.value_and_gradient(&trial) {
        Ok((v, g)) if v <= *value + 64.0 * f64::EPSILON * value.abs().max(1.0) => {
            (*x, *value, *gradient) = (trial, v, g);
            true
        }
        _ => false,
    }
}

/// The coordinates not held at their bound by a gradient pointing out of the feasible set.
fn free_coordinates(x: &[f64], gradient: &[f64], lower: &[f64]) -> Vec<usize> {
    (0..x.len()).filter(|&i| !(x[i] <= lower[i] && gradient[i] > 0.0)).collect()
}

pub(crate) fn project(x: &[f64], lower: &[f64]) -> Vec<f64> {
    x.iter().zip(lower).map(|(&v, &l)| v.max(l)).collect()
}

/// Max-norm of the gradient with the components that push a bound coordinate outwards set to 0.
pub(crate) fn projected_norm(x: &[f64], gradient: &[f64], lower: &[f64]) -> f64 {
    x.iter().zip(gradient).zip(lower).map(|((&xi, &gi), &li)| if xi <= li { gi.min(0.0).abs() } else { gi.abs() }).fold(0.0, f64::max)
}

/// H by forward differences of the analytic gradient (n gradients), made positive definite by
/// the absolute values of its eigenvalues floored at 1e-10 of the largest (as the Newton
/// direction of [`minimize_bounded`] takes it): a start for a secant search that has the
/// exact curvature from its first step; with f's noise measured along the way.
pub(crate) fn positive_definite_hessian(objective: &impl Objective, x: &[f64], value: f64, gradient: &[f64], evaluations: &mut usize) -> Differences {
    let n = x.len();
    let Differences { hessian, noise } = forward_difference_hessian(objective, x, value, gradient, evaluations);
    let (values, vectors) = symmetric_eigen(&hessian, n);
    let largest = values.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    let floor = (1e-10 * largest).max(f64::MIN_POSITIVE);
    let mut b = vec![0.0; n * n];
    for (k, &lambda) in values.iter().enumerate() {
        let v = &vectors[k * n..(k + 1) * n];
        for r in 0..n {
            for c in 0..n {
                b[r * n + c] += lambda.abs().max(floor) * v[r] * v[c];
            }
        }
    }
    Differences { hessian: b, noise }
}

/// A Hessian by forward differences of the analytic gradient, and the noise in f found on the
/// way: the largest |f(x + h e_i) − f(x) − h (∂_i f(x) + ∂_i f(x + h e_i))/2| over the steps.
/// The trapezoid rule is exact to O(h³ f''') (1e-18 for the steps here), so what is left is
/// f's rounding error, ~1e-13 |f| for the profiled deviance, but 1e-2 or more where the model is
/// degenerate (random slopes collinear to 1e-10): a decrease of f smaller than that cannot be
/// resolved, and a line search that pursues it only follows the rounding.
pub(crate) struct Differences {
    /// H (n × n, row-major), symmetrised.
    pub(crate) hessian: Vec<f64>,
    /// The noise in f, as above (0 when no step could be evaluated).
    pub(crate) noise: f64,
}

/// H by forward differences of the analytic gradient, symmetrised, with f's noise (see
/// [`Differences`]); steps that fail count as no curvature information (a zero column).
fn forward_difference_hessian(objective: &impl Objective, x: &[f64], value: f64, gradient: &[f64], evaluations: &mut usize) -> Differences {
    let all: Vec<usize> = (0..x.len()).collect();
    forward_difference_block(objective, x, value, gradient, &all, evaluations)
}

/// The block of H on the coordinates `on` (k of them: k × k, row-major) by forward differences
/// of the analytic gradient, symmetrised: k gradients; with f's noise measured on the way
/// (see [`Differences`]; f at x is `value`). Steps that fail count as no curvature information
/// (a zero column).
pub(crate) fn forward_difference_block(
    objective: &impl Objective, x: &[f64], value: f64, gradient: &[f64], on: &[usize], evaluations: &mut usize,
) -> Differences {
    let n = on.len();
    let mut h = vec![0.0; n * n];
    let mut noise = 0.0_f64;
    let mut shifted = x.to_vec();
    for (c, &i) in on.iter().enumerate() {
        let step = 1e-6 * x[i].abs().max(1e-2);
        shifted[i] = x[i] + step;
        if let Ok((v, g)) = objective.value_and_gradient(&shifted) {
            for (r, &j) in on.iter().enumerate() {
                h[r * n + c] = (g[j] - gradient[j]) / step;
            }
            let trapezoid = v - value - 0.5 * step * (g[i] + gradient[i]);
            if trapezoid.is_finite() {
                noise = noise.max(trapezoid.abs());
            }
        }
        *evaluations += 1;
        shifted[i] = x[i];
    }
    for r in 0..n {
        for c in 0..r {
            let mean = 0.5 * (h[r * n + c] + h[c * n + r]);
            h[r * n + c] = mean;
            h[c * n + r] = mean;
        }
    }
    Differences { hessian: h, noise }
}

/// A search direction and whether the Hessian on the free coordinates was positive semi-definite.
struct Direction {
    direction: Vec<f64>,
    positive_curvature: bool,
}

/// −|H_F|⁻¹ g_F on the free coordinates F, |H| taking the absolute values of H's eigenvalues
/// (floored at a small fraction of the largest), plus a unit step of the most negative
/// curvature, pointing downhill (or inwards at a bound), when there is one.
fn newton_direction(hessian: &[f64], gradient: &[f64], free: &[usize], x: &[f64], lower: &[f64]) -> Direction {
    let n = gradient.len();
    let nf = free.len();
    let mut direction = vec![0.0; n];
    if nf == 0 {
        return Direction { direction, positive_curvature: true };
    }
    let hf: Vec<f64> = free.iter().flat_map(|&r| free.iter().map(move |&c| hessian[r * n + c])).collect();
    let gf: Vec<f64> = free.iter().map(|&i| gradient[i]).collect();
    let (values, vectors) = symmetric_eigen(&hf, nf);
    let largest = values.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    let floor = (1e-10 * largest).max(f64::MIN_POSITIVE);
    let mut step = vec![0.0; nf];
    for (k, &lambda) in values.iter().enumerate() {
        let v = &vectors[k * nf..(k + 1) * nf];
        let coefficient = v.iter().zip(&gf).map(|(a, b)| a * b).sum::<f64>() / lambda.abs().max(floor);
        for (s, vi) in step.iter_mut().zip(v) {
            *s -= coefficient * vi;
        }
    }
    let (most_negative, k) = values.iter().enumerate().map(|(k, &v)| (v, k)).fold((0.0, 0), |a, b| if b.0 < a.0 { b } else { a });
    let positive_curvature = most_negative >= -floor.max(1e-8 * largest);
    if !positive_curvature {
        let v = &vectors[k * nf..(k + 1) * nf];
        let sign = curvature_sign(v, &gf, free, x, lower);
        let scale = 0.1 * (1.0 + free.iter().map(|&i| x[i].abs()).fold(0.0, f64::max));
        for (s, vi) in step.iter_mut().zip(v) {
            *s += sign * scale * vi;
        }
    }
    for (&i, s) in free.iter().zip(step) {
        direction[i] = s;
    }
    Direction { direction, positive_curvature }
}

/// The sign of a direction of negative curvature v: into the feasible set where v moves
/// coordinates at their bounds (at a zero column of Λ the gradient vanishes by symmetry, and
/// only the side of the bound is feasible), downhill otherwise.
fn curvature_sign(v: &[f64], gradient: &[f64], free: &[usize], x: &[f64], lower: &[f64]) -> f64 {
    let inwards: f64 = free.iter().zip(v).filter(|(&i, _)| x[i] <= lower[i]).map(|(_, vi)| vi).sum();
    if inwards != 0.0 {
        return inwards.signum();
    }
    let slope: f64 = v.iter().zip(gradient).map(|(a, b)| a * b).sum();
    if slope > 0.0 {
        -1.0
    } else {
        1.0
    }
}

/// How [`projected_search`] shortens a step that failed.
#[derive(Clone, Copy)]
pub(crate) enum Shorten {
    /// α/2 (the Newton method's, whose full steps rarely fail but near a bound).
    Halve,
    /// The minimum of the quadratic through f(x), the slope ∇fᵀ(x(α) − x)/α and f(x(α)),
    /// kept within [α/10, α/2] (the quasi-Newton search's, whose B may be far off).
    Interpolate,
}

/// Backtracking along the projected path x(α) = max(x + α d, lower) from α = 1 until Armijo's
/// condition f(x(α)) ≤ f(x) + 10⁻⁴ ∇fᵀ(x(α) − x) holds (or, for a full step whose promised
/// decrease is below f's rounding, the projected gradient shrinks without f rising beyond its
/// rounding: near the minimum a step is judged by the gradient it reaches, so x converges to
/// full precision), α shortened by `shorten`. f is evaluated at the trial's canonical form
/// ([`Objective::canonicalize`], the same f): a step to a non-canonical point would otherwise
/// cost a second evaluation once put back. `None` when no step lowers f, or when a shortened
/// step promises a decrease within f's `noise` ([`Differences`]; [`unresolved`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn projected_search(
    objective: &impl Objective, x: &[f64], value: f64, gradient: &[f64], direction: &[f64], lower: &[f64], noise: f64, shorten: Shorten,
    evaluations: &mut usize,
) -> Option<Step> {
    let rounding = 1e2 * f64::EPSILON * value.abs().max(1.0);
    let before = projected_norm(x, gradient, lower);
    let mut alpha = 1.0;
    for _ in 0..MAX_HALVINGS {
        let trial: Vec<f64> = x.iter().zip(direction).zip(lower).map(|((&xi, &di), &li)| (xi + alpha * di).max(li)).collect();
        let decrease: f64 = trial.iter().zip(x).zip(gradient).map(|((t, xi), gi)| gi * (t - xi)).sum();
        if trial == x || unresolved(alpha, decrease, noise) {
            return None;
        }
        let mut at = trial.clone();
        objective.canonicalize(&mut at);
        *evaluations += 1;
        let mut next = 0.5 * alpha;
        if let Ok((v, g)) = objective.value_and_gradient(&at) {
            let within_rounding = alpha == 1.0 && -decrease <= rounding && v <= value + rounding && projected_norm(&at, &g, lower) < before;
            if v.is_finite() && ((decrease < 0.0 && v <= value + ARMIJO * decrease) || (decrease >= 0.0 && v < value) || within_rounding) {
                let clipped = x.iter().zip(direction).zip(lower).any(|((&xi, &di), &li)| xi + di < li);
                let canonical = at == trial;
                return Some(Step { x: at, value: v, gradient: g, canonical, full: alpha == 1.0 && !clipped });
            }
            let curvature = v - value - decrease;
            if let (Shorten::Interpolate, true) = (shorten, v.is_finite() && decrease < 0.0 && curvature > 0.0) {
                next = (-decrease * alpha / (2.0 * curvature)).clamp(0.1 * alpha, 0.5 * alpha);
            }
        }
        alpha = next;
    }
    None
}

/// A step [`projected_search`] accepted: the point (in canonical form), f and ∇f there, whether
/// the point on the projected path was already canonical (else the step is a change of
/// parametrisation too, whose change in gradient is no curvature), and whether it was the full
/// step (α = 1, no coordinate stopped at its bound).
pub(crate) struct Step {
    pub(crate) x: Vec<f64>,
    pub(crate) value: f64,
    pub(crate) gradient: Vec<f64>,
    pub(crate) canonical: bool,
    pub(crate) full: bool,
}

/// True when a shortened step (α < 1) promises a decrease of f, −∇fᵀ(x(α) − x) = −`decrease`,
/// within f's `noise`: whether f then falls is decided by its rounding, not by the step, and
/// shorter steps promise less. A search that went on would evaluate f up to
/// [`MAX_HALVINGS`] times per iteration for decreases that are rounding (test-degenerate.R's
/// collinear random slopes, f noisy to 1e-2: 2,952 evaluations). The full step is exempt: near
/// the minimum it is judged by the gradient it reaches.
pub(crate) fn unresolved(alpha: f64, decrease: f64, noise: f64) -> bool {
    alpha < 1.0 && decrease < 0.0 && -decrease <= noise
}

pub(crate) fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Eigenvalues and unit eigenvectors (row k of the second result) of the symmetric n × n `a`,
/// by cyclic Jacobi rotations: exact to rounding for the small matrices here.
pub(crate) fn symmetric_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut m = a.to_vec();
    let mut v = crate::numerics::dense::identity(n);
    for _ in 0..100 {
        let off: f64 = (0..n).flat_map(|r| (0..n).filter(move |&c| c != r).map(move |c| (r, c))).map(|(r, c)| m[r * n + c].powi(2)).sum();
        let total: f64 = m.iter().map(|x| x * x).sum();
        if off <= 1e-30 * total || off == 0.0 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (m[q * n + q] - m[p * n + p]) / (2.0 * apq);
                let sign = if theta >= 0.0 { 1.0 } else { -1.0 };
                let t = sign / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (mkp, mkq) = (m[k * n + p], m[k * n + q]);
                    m[k * n + p] = c * mkp - s * mkq;
                    m[k * n + q] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    let (mpk, mqk) = (m[p * n + k], m[q * n + k]);
                    m[p * n + k] = c * mpk - s * mqk;
                    m[q * n + k] = s * mpk + c * mqk;
                }
                for k in 0..n {
                    let (vpk, vqk) = (v[p * n + k], v[q * n + k]);
                    v[p * n + k] = c * vpk - s * vqk;
                    v[q * n + k] = s * vpk + c * vqk;
                }
            }
        }
    }
    ((0..n).map(|i| m[i * n + i]).collect(), v)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn jacobi_diagonalises_a_symmetric_matrix() {
        let a = [2.0, 1.0, 0.5, 1.0, -3.0, 0.2, 0.5, 0.2, 1.0];
        let (values, vectors) = symmetric_eigen(&a, 3);
        for k in 0..3 {
            let v = &vectors[k * 3..k * 3 + 3];
            for r in 0..3 {
                let av: f64 = (0..3).map(|c| a[r * 3 + c] * v[c]).sum();
                assert!((av - values[k] * v[r]).abs() < 1e-12, "eigenpair {k}");
            }
        }
        let trace: f64 = values.iter().sum();
        assert!((trace - 0.0).abs() < 1e-12);
    }

    /// (x − 1)² + 2(y + 1/2)² + x y / 2, minimised at (x, y) = (36, −20)/31.
    struct Quadratic;

    impl Objective for Quadratic {
        fn value(&self, x: &[f64]) -> Result<f64> {
            Ok((x[0] - 1.0).powi(2) + 2.0 * (x[1] + 0.5).powi(2) + 0.5 * x[0] * x[1])
        }
        fn value_and_gradient(&self, x: &[f64]) -> Result<(f64, Vec<f64>)> {
            Ok((self.value(x)?, vec![2.0 * (x[0] - 1.0) + 0.5 * x[1], 4.0 * (x[1] + 0.5) + 0.5 * x[0]]))
        }
    }

    #[test]
    fn a_full_newton_step_to_the_optimum_needs_no_second_hessian() {
        let lower = [f64::NEG_INFINITY; 2];
        let m = minimize_bounded(&Quadratic, &[3.0, 2.0], &lower, 1e-8, &mut Checkpoint::new(&crate::numerics::interrupt::Never)).unwrap();
        assert!(m.converged);
        assert!((m.x[0] - 36.0 / 31.0).abs() < 1e-9 && (m.x[1] + 20.0 / 31.0).abs() < 1e-9, "{:?}", m.x);
        // The start, a Hessian of 2 gradients, the step, then a polishing step with the same
        // Hessian: one iteration, 5 evaluations, and the root to rounding.
        assert_eq!((m.iterations, m.evaluations), (1, 5));
        assert!((m.x[0] - 36.0 / 31.0).abs() < 1e-15 && (m.x[1] + 20.0 / 31.0).abs() < 1e-15, "{:?}", m.x);
    }

    /// f(x) = x⁴ − x² with x ≥ 0: the gradient vanishes at the bound x = 0, a local maximum;
    /// the minimum is x = 1/√2. Started at the bound, only the curvature can find it.
    struct EvenInX;

    impl Objective for EvenInX {
        fn value(&self, x: &[f64]) -> Result<f64> {
            Ok(x[0].powi(4) - x[0].powi(2))
        }
        fn value_and_gradient(&self, x: &[f64]) -> Result<(f64, Vec<f64>)> {
            Ok((self.value(x)?, vec![4.0 * x[0].powi(3) - 2.0 * x[0]]))
        }
    }

    /// A uniform number in [−1, 1) from the bits of x and a seed: rounding noise that, as
    /// rounding does, changes erratically with the last bits of x.
    pub(crate) fn rounding_noise(x: &[f64], seed: u64) -> f64 {
        let bits = x.iter().fold(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), |h, v| (h ^ v.to_bits()).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        ((bits >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }

    /// Σ_i (i + 1)(x_i − 1)² with noise of 1e-3 in f and 1e-2 in each ∂_i f, as the profiled
    /// deviance of random slopes collinear to 1e-10 (test-degenerate.R): the gradient never
    /// meets a tight tolerance, and below ~1e-3 a decrease of f is not resolved.
    pub(crate) struct NoisyQuadratic;

    impl Objective for NoisyQuadratic {
        fn value(&self, x: &[f64]) -> Result<f64> {
            Ok(x.iter().enumerate().map(|(i, v)| (i + 1) as f64 * (v - 1.0).powi(2)).sum::<f64>() + 1e-3 * rounding_noise(x, 0))
        }
        fn value_and_gradient(&self, x: &[f64]) -> Result<(f64, Vec<f64>)> {
            let g = x.iter().enumerate().map(|(i, v)| 2.0 * (i + 1) as f64 * (v - 1.0) + 1e-8 * rounding_noise(x, i as u64 + 1)).collect();
            Ok((self.value(x)?, g))
        }
    }

    #[test]
    fn a_search_stops_where_its_decrease_is_lost_in_the_noise_of_f() {
        let m = minimize_bounded(&NoisyQuadratic, &[3.0, -2.0, 4.0], &[f64::NEG_INFINITY; 3], 1e-10, &mut Checkpoint::new(&crate::numerics::interrupt::Never))
            .unwrap();
        // As close to the minimum (f = 0 at x = 1) as the noise lets a search tell: f within a
        // few units of its noise, and not converged (the gradient's noise exceeds the tolerance).
        assert!(!m.converged && m.value < 1e-2, "{m:?}");
        // Without the limit, every line search near the minimum halves its step up to 50
        // times, twice (Newton and steepest descent), following f's rounding.
        assert!(m.evaluations <= 40, "{m:?}");
    }

    #[test]
    fn a_decrease_within_the_noise_of_f_while_the_gradient_stays_is_no_progress() {
        // f near 222 with noise 1e-2 (test-degenerate.R's collinear slopes): five iterations
        // that lower f by 0.05 in all, within 10 times its noise, with the gradient near 0.1.
        let feed = |values: &[f64], gradients: &[f64]| {
            let mut stall = Stall::default();
            values.iter().zip(gradients).for_each(|(&v, &g)| {
                stall.stalled(v, g);
            });
            stall
        };
        let values = [-222.30, -222.31, -222.32, -222.33, -222.34, -222.35];
        let flat = [0.12, 0.10, 0.15, 0.11, 0.13, 0.10];
        assert!(feed(&values, &flat).lost_in_noise(1e-2));
        // Not after fewer iterations, nor when f falls by more than 10 noises, nor while the
        // gradient shrinks (the end of a search, where f changes by its rounding), nor for a
        // noise within the stall test's resolution (1e-11 relative).
        assert!(!feed(&values[1..], &flat[1..]).lost_in_noise(1e-2));
        assert!(!feed(&values, &flat).lost_in_noise(4e-3));
        assert!(!feed(&values, &[0.12, 0.10, 0.15, 0.11, 0.13, 0.01]).lost_in_noise(1e-2));
        assert!(!feed(&values.map(|v| v * 1e-10), &flat).lost_in_noise(1e-12));
    }

    #[test]
    fn negative_curvature_leaves_a_stationary_bound() {
        let m = minimize_bounded(&EvenInX, &[0.0], &[0.0], 1e-12, &mut Checkpoint::new(&crate::numerics::interrupt::Never)).unwrap();
        assert!(m.converged);
        assert!((m.x[0] - 0.5f64.sqrt()).abs() < 1e-10, "{:?}", m.x);
    }
}
