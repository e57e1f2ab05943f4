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

    /// Iterations before [`minimize_bounded`] gives up (not converged). The default is 500.
    fn max_iterations(&self) -> usize {
        MAX_ITERATIONS
    }

    /// Called at the start of every iteration with its number (from 0), f and the projected
    /// gradient's max-norm there, for a trace of the search. The default does nothing.
    fn trace(&self, _iteration: usize, _value: f64, _projected_gradient_norm: f64) {}
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

/// Iterations before giving up, unless the objective says otherwise.
pub(crate) const MAX_ITERATIONS: usize = 500;
/// A run of this many iterations that lowers f by less than [`STALL_DECREASE`] relative ends
/// the search: the minimum lies in a valley so flat (a correlation of a component with
/// almost no variance, say) that f is known to rounding error while x still moves.
const STALL_ITERATIONS: usize = 20;
const STALL_DECREASE: f64 = 1e-11;
/// Relative decrease of f below which a Newton step is lost in f's rounding.
const ROUNDING_DECREASE: f64 = 1e3 * f64::EPSILON;
/// Halvings of a step before the line search gives up.
pub(crate) const MAX_HALVINGS: usize = 50;

/// f at the last [`STALL_ITERATIONS`] + 1 iterations, oldest first: the test that f has
/// stalled at its minimum (see [`STALL_DECREASE`]).
#[derive(Default)]
pub(crate) struct Stall {
    history: std::collections::VecDeque<f64>,
}

impl Stall {
    /// Records f of a new iteration; true when it is less than [`STALL_DECREASE`] (relative)
    /// below f [`STALL_ITERATIONS`] iterations ago.
    pub(crate) fn stalled(&mut self, value: f64) -> bool {
        if self.history.len() > STALL_ITERATIONS {
            self.history.pop_front();
        }
        self.history.push_back(value);
        self.history.front().filter(|_| self.history.len() > STALL_ITERATIONS).is_some_and(|&earlier| earlier - value <= STALL_DECREASE * (1.0 + value.abs()))
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
    while iterations < max_iterations {
        objective.trace(iterations, value, projected_norm(&x, &gradient, lower));
        if stall.stalled(value) {
            converged = true;
            break;
        }
        checkpoint.check_timed()?;
        if curvature_holds && projected_norm(&x, &gradient, lower) <= tolerance {
            converged = true;
            break;
        }
        iterations += 1;
        hessian = forward_difference_hessian(objective, &x, &gradient, &mut evaluations);
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
        let searched = line_search(objective, &x, value, &gradient, &step.direction, lower, &mut evaluations)
            .map(|found| (found, step.positive_curvature))
            .or_else(|| {
                if at_rounding {
                    return None;
                }
                let descent: Vec<f64> = gradient.iter().map(|g| -g).collect();
                line_search(objective, &x, value, &gradient, &descent, lower, &mut evaluations).map(|found| (found, false))
            });
        match searched {
            Some(((mut x_new, v_new, g_new, full_step), positive_curvature)) => {
                let before = x_new.clone();
                objective.canonicalize(&mut x_new);
                let canonical = x_new == before;
                if canonical {
                    value = v_new;
                    gradient = g_new;
                } else {
                    (value, gradient) = objective.value_and_gradient(&x_new)?;
                    evaluations += 1;
                }
                curvature_holds = positive_curvature && full_step && canonical && free_coordinates(&x_new, &gradient, lower) == free;
                x = x_new;
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
        polish(objective, &mut x, &mut value, &mut gradient, lower, &hessian, &mut evaluations);
    }
    snap_to_bounds(objective, &mut x, &mut value, &mut gradient, lower, &mut evaluations);
    let projected_gradient_norm = projected_norm(&x, &gradient, lower);
    converged = converged || projected_gradient_norm <= 1e3 * tolerance;
    Ok(Minimum { x, value, gradient, iterations, evaluations, projected_gradient_norm, converged })
}

/// The decrease of f that a Newton step from `x` still promises, ½ g_Fᵀ H_F⁻¹ g_F on the free
/// coordinates F with H by forward differences of the gradient: how far f can be above its
/// minimum near x, where f is close to quadratic. `None` where H_F has negative curvature
/// (no minimum nearby to measure against).
pub(crate) fn remaining_decrease(objective: &impl Objective, x: &[f64], gradient: &[f64], lower: &[f64]) -> Option<f64> {
    let mut evaluations = 0;
    let hessian = forward_difference_hessian(objective, x, gradient, &mut evaluations);
    let step = newton_direction(&hessian, gradient, &free_coordinates(x, gradient, lower), x, lower);
    let promised = -step.direction.iter().zip(gradient).map(|(d, g)| d * g).sum::<f64>();
    step.positive_curvature.then_some(0.5 * promised)
}

/// Newton steps taken at most after the tolerance is met (see [`polish`]).
const POLISH_STEPS: usize = 3;

/// Newton steps from a point that met the tolerance, to the root of the projected gradient.
/// The tolerance bounds the gradient, not the error in x, which is the gradient over the
/// curvature and so large where the curvature is small (θ² = τ²/σ² of 20 leaves θ 1e-8 from
/// the root at the tolerance of [`crate::LinearMixedModel::fit`]). The steps reuse `hessian`,
/// the last iteration's (empty when there was none): a Hessian from a nearby point still
/// shrinks the error by a factor of the relative change in curvature, about the size of the
/// last step, so one or two steps of one evaluation each reach the root to rounding. A step is
/// kept only while it shrinks the projected gradient without raising f beyond its rounding
/// ([`ROUNDING_DECREASE`]; the true change, −½ gᵀH⁻¹g, is far below it), so the point returned
/// is never worse than the one that met the tolerance.
pub(crate) fn polish(
    objective: &impl Objective, x: &mut Vec<f64>, value: &mut f64, gradient: &mut Vec<f64>, lower: &[f64], hessian: &[f64], evaluations: &mut usize,
) {
    if hessian.len() != x.len() * x.len() {
        return;
    }
    for _ in 0..POLISH_STEPS {
        let norm = projected_norm(x, gradient, lower);
        let step = newton_direction(hessian, gradient, &free_coordinates(x, gradient, lower), x, lower);
        let below_rounding = step.direction.iter().zip(x.iter()).all(|(d, xi)| d.abs() <= 4.0 * f64::EPSILON * xi.abs());
        if norm == 0.0 || !step.positive_curvature || below_rounding {
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
/// exact curvature from its first step.
pub(crate) fn positive_definite_hessian(objective: &impl Objective, x: &[f64], gradient: &[f64], evaluations: &mut usize) -> Vec<f64> {
    let n = x.len();
    let hessian = forward_difference_hessian(objective, x, gradient, evaluations);
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
    b
}

/// H by forward differences of the analytic gradient, symmetrised; steps that fail count as
/// no curvature information (a zero column).
fn forward_difference_hessian(objective: &impl Objective, x: &[f64], gradient: &[f64], evaluations: &mut usize) -> Vec<f64> {
    let all: Vec<usize> = (0..x.len()).collect();
    forward_difference_block(objective, x, gradient, &all, evaluations)
}

/// The block of H on the coordinates `on` (k of them: k × k, row-major) by forward differences
/// of the analytic gradient, symmetrised: k gradients. Steps that fail count as no curvature
/// information (a zero column).
pub(crate) fn forward_difference_block(objective: &impl Objective, x: &[f64], gradient: &[f64], on: &[usize], evaluations: &mut usize) -> Vec<f64> {
    let n = on.len();
    let mut h = vec![0.0; n * n];
    let mut shifted = x.to_vec();
    for (c, &i) in on.iter().enumerate() {
        let step = 1e-6 * x[i].abs().max(1e-2);
        shifted[i] = x[i] + step;
        if let Ok((_, g)) = objective.value_and_gradient(&shifted) {
            for (r, &j) in on.iter().enumerate() {
                h[r * n + c] = (g[j] - gradient[j]) / step;
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
    h
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

/// Backtracking along the projected path x(α) = max(x + α d, lower) until f decreases enough
/// (Armijo, on the projected step): the point, f, ∇f and whether the full step (α = 1, no
/// coordinate stopped at its bound) was taken; `None` when no step lowers f.
fn line_search(
    objective: &impl Objective, x: &[f64], value: f64, gradient: &[f64], direction: &[f64], lower: &[f64], evaluations: &mut usize,
) -> Option<(Vec<f64>, f64, Vec<f64>, bool)> {
    let mut alpha = 1.0;
    for _ in 0..MAX_HALVINGS {
        let trial: Vec<f64> = x.iter().zip(direction).zip(lower).map(|((&xi, &di), &li)| (xi + alpha * di).max(li)).collect();
        if trial == x {
            return None;
        }
        *evaluations += 1;
        if let Ok((v, g)) = objective.value_and_gradient(&trial) {
            let decrease: f64 = trial.iter().zip(x).zip(gradient).map(|((t, xi), gi)| gi * (t - xi)).sum();
            // Near the minimum the decrease a Newton step promises is below f's rounding: the
            // step is then judged by the gradient it reaches, so θ converges to full precision.
            let rounding = 1e2 * f64::EPSILON * value.abs().max(1.0);
            let within_rounding = alpha == 1.0 && -decrease <= rounding && v <= value + rounding;
            let gradient_shrinks = norm(&g) < norm(gradient);
            if v.is_finite() && (v < value + 1e-4 * decrease.min(0.0) || (v < value && decrease >= 0.0) || (within_rounding && gradient_shrinks)) {
                let projected = x.iter().zip(direction).zip(lower).any(|((&xi, &di), &li)| xi + di < li);
                return Some((trial, v, g, alpha == 1.0 && !projected));
            }
        }
        alpha *= 0.5;
    }
    None
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
mod tests {
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

    #[test]
    fn negative_curvature_leaves_a_stationary_bound() {
        let m = minimize_bounded(&EvenInX, &[0.0], &[0.0], 1e-12, &mut Checkpoint::new(&crate::numerics::interrupt::Never)).unwrap();
        assert!(m.converged);
        assert!((m.x[0] - 0.5f64.sqrt()).abs() < 1e-10, "{:?}", m.x);
    }
}
