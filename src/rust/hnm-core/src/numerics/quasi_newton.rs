//! A projected quasi-Newton (BFGS) method for bounded smooth problems with many parameters.
//!
//! The projected Newton method of [`crate::minimize_bounded`] takes its Hessian by n forward
//! differences of the gradient at every iteration, so an iteration costs n + 1 evaluations: a
//! fine price for the few θ of most mixed models, but a model with two 8 × 8 blocks (72 θ, the
//! maximal model of a psycholinguistic experiment) pays 73 evaluations of a dense factorisation
//! and its selected inverse per step. Here the Hessian is learnt from the gradients the search
//! computes anyway (one evaluation per iteration when the first step is taken), as in
//! L-BFGS-B (Byrd, Lu, Nocedal and Zhu 1995), but in the simpler active-set form of Bertsekas'
//! projected Newton method (1982; with BFGS, Kim, Sra and Dhillon 2010), since n is at most a
//! few hundred and a dense n × n matrix is cheap beside one evaluation:
//!
//! - B ≈ ∇²f is kept positive definite by Powell's damped BFGS update: with s = x₊ − x,
//!   y = ∇f(x₊) − ∇f(x), r = φ y + (1 − φ) B s where φ = 1 unless sᵀy < ⅕ sᵀBs, in which case
//!   φ = ⅘ sᵀBs / (sᵀBs − sᵀy) (so sᵀr = ⅕ sᵀBs > 0), and B₊ = B − B s sᵀB / sᵀBs + r rᵀ / sᵀr.
//!   Before the first update B is scaled to yᵀy / sᵀy (Nocedal and Wright 2006, eq. 6.20); the
//!   first step, with no curvature known, moves the largest coordinate by [`FIRST_STEP`].
//! - With few coordinates (2 ≤ n ≤ [`SECANTS_MAX`]), B is then replaced by the one that meets the
//!   last n steps' secants, when their directions are independent and it is positive definite
//!   ([`secants_fit`]): BFGS keeps only the last secant, and across it the error of the B it
//!   started from, so that it converged at a linear rate.
//! - The ε-active set A = {i : x_i − l_i ≤ ε, ∂_i f > 0} (ε the smaller of [`ACTIVE_WIDTH`]
//!   and the length of the projected scaled gradient step, so that A is exactly the binding
//!   set near the minimum) is moved by a scaled gradient step d_i = −∂_i f / B_ii, and the free
//!   coordinates F by the quasi-Newton step B_FF d_F = −∇_F f. Along the projected path
//!   x(α) = max(x + α d, l) f decreases for small α (Bertsekas' Proposition 1), and α is found
//!   by backtracking from 1 with a safeguarded quadratic interpolation until Armijo's
//!   condition f(x(α)) ≤ f(x) + 10⁻⁴ ∇f(x)ᵀ(x(α) − x) holds. Coordinates that reach their bound
//!   stop exactly on it, which is how singular fits (a zero on the diagonal of Λ) are reached.
//! - Coordinates of a zero group ([`Objective::zero_groups`]: a column of Λ that is all 0,
//!   on which the deviance depends through l lᵀ only) whose gradient is within the tolerance
//!   are held (direction 0): moving them along B's direction only reaches a non-canonical
//!   point (a column with a 0 diagonal and entries below it), which costs an evaluation and
//!   an update of B to put back; whether they should leave 0 is decided by their curvature,
//!   below. (On the kb07-shaped model, 72 θ, three steps in four went to such points before,
//!   so B learnt little, and refreshing B every n steps by n difference gradients, as this
//!   search once did, cost more than it saved once they were held: 880 -> 665 evaluations.)
//! - Near the minimum the decrease a step promises, ∇fᵀ(x(α) − x) = O(‖∇f‖²/curvature), falls
//!   below f's rounding (1e-17 against f's 1e-12 at the tolerance of the mixed model); a full
//!   step is then judged by the gradient it reaches (kept when the projected gradient shrinks
//!   and f does not rise beyond its rounding), as in the Newton method's line search.
//! - A function even in a group of coordinates (the profiled deviance in a column of Λ) has a
//!   gradient exactly 0 where they are all 0, a minimum or a saddle that a gradient method
//!   cannot tell apart. When the projected gradient meets the tolerance, the Hessian on the
//!   coordinates that are exactly 0 with a vanishing gradient is taken by forward differences
//!   (one gradient per such coordinate, but distinct zero groups shifted together, since f's
//!   cross-derivatives between them vanish; none at an interior minimum). That block is
//!   block-diagonal across the groups, so every group with a negative curvature leaves 0 at
//!   once, along its most negative direction (pointing into the feasible set), and the search
//!   goes on; one group per convergence made the kb07-shaped restart from lme4's start climb
//!   out of 7 saddles, each converged to the tolerance (446 -> 379 evaluations). The check is
//!   also made once per set of such coordinates as soon as the projected gradient is within
//!   [`EARLY_SADDLE`] times the tolerance: converging to a saddle's tolerance cost ~10
//!   iterations each, and the kb07-shaped search from lme4's start passes 3-4 saddles
//!   (252 -> 171 evaluations); a check that finds no negative curvature costs one gradient
//!   per coordinate of the largest group, and the check at convergence is still made.
//! - The line search evaluates f at the canonical form of each trial point
//!   ([`Objective::canonicalize`], the same f), so a step that rotates a column of Λ costs
//!   one evaluation, not two; B is then not updated, as the change in gradient is partly the
//!   change of parametrisation.
//! - B may start from a given matrix ([`Initial`]): the Hessian by differences at the start,
//!   made positive definite (n gradients, for few θ: the first step is then a Newton step and
//!   the secant updates keep the exact curvature, where a Newton method pays n gradients at
//!   every iteration), or the B another search ended with (a restart of the mixed model's
//!   fit, whose curvature's scale per coordinate is the model's more than the point's).
//!
//! - A coordinate that creeps toward its bound (a curved valley whose floor is nearly flat
//!   ends on the bound, where the gradient vanishes: [`super::optim::Creep`]) is tried on the
//!   bound, at the end of the valley ([`Objective::onto_bound`]), and left there when f is no
//!   higher: a jump, so B is not updated.
//!
//! Convergence is a projected gradient (max-norm) at most the tolerance with no negative
//! curvature on the zero coordinates; then a few steps polish x with B (the Newton method's
//! polish, kept only while they shrink the projected gradient) and coordinates within
//! rounding of a bound are moved onto it. Where f stalls above the tolerance instead (20
//! iterations that lower it by less than 1e-11 relative: the profiled deviance near a
//! singular fit has a valley whose curvature spans orders of magnitude, along which BFGS
//! crawls at the pace its B learns), the Newton method of [`crate::minimize_bounded`] takes
//! over from the point reached: its Hessian by differences costs n gradients, once or twice,
//! where BFGS would need hundreds of steps. Where the search started from the Hessian by
//! differences, f's noise measured there limits the line search and ends a search whose
//! decrease is lost in that noise, as in the Newton method (no Newton finish then: it would
//! make no more progress).

use super::dense::{cholesky_in_place, solve_lower, solve_lower_transposed};
use super::interrupt::Checkpoint;
use super::optim::{
    minimize_bounded, norm, polish, positive_definite_hessian, project, projected_norm, projected_search, snap_to_bounds, symmetric_eigen, try_bound, Creep,
    Differences, Minimum, Objective, Point, Shorten, Stall,
};
use crate::error::{HnmError, Result};

/// The max-norm of the first step, before any curvature is known (θ's scale is 1).
const FIRST_STEP: f64 = 0.1;
/// The relative change of the curvature along the first step above which its update
/// extrapolates to the step's end ([`tangent_secant`]).
const TANGENT_CHANGE: f64 = 1e-2;
/// The most coordinates whose B is fitted to the last n secants ([`secants_fit`]; from two).
const SECANTS_MAX: usize = 10;
/// The widest ε of the ε-active set.
const ACTIVE_WIDTH: f64 = 1e-3;
/// The projected gradient, in multiples of the tolerance, below which the zero coordinates
/// are checked for a saddle before convergence (module docs).
const EARLY_SADDLE: f64 = 1e4;

/// Minimises `objective` over {x : x ≥ `lower`} from `start` (projected on the bounds) by the
/// projected quasi-Newton method of the module docs; convergence when the projected gradient's
/// max-norm is at most `tolerance` and the coordinates at 0 with a vanishing gradient show no
/// negative curvature. Iterations are limited by [`Objective::max_iterations`].
///
/// # Errors
/// `ParameterLength` when `start` and `lower` differ in length; the objective's errors at the
/// start; `Interrupted` when `checkpoint` reports a user interrupt. Points where the objective
/// fails during a line search count as too long a step.
///
/// # Example
/// ```
/// use hnm_core::{minimize_bounded_quasi_newton, Checkpoint, Never, Objective, Result};
/// // Σ_i (x_i − c_i)² + (Σ_i x_i)²/2 with x ≥ 0 and c = (1, −2, 3, ...): a quadratic whose
/// // minimum has the coordinates of negative c on the bound 0.
/// struct Quadratic;
/// fn c(i: usize) -> f64 { if i % 2 == 0 { (i + 1) as f64 } else { -((i + 1) as f64) } }
/// impl Objective for Quadratic {
///     fn value(&self, x: &[f64]) -> Result<f64> {
///         let sum: f64 = x.iter().sum();
///         Ok(x.iter().enumerate().map(|(i, v)| (v - c(i)).powi(2)).sum::<f64>() + 0.5 * sum * sum)
///     }
///     fn value_and_gradient(&self, x: &[f64]) -> Result<(f64, Vec<f64>)> {
///         let sum: f64 = x.iter().sum();
///         let g = x.iter().enumerate().map(|(i, v)| 2.0 * (v - c(i)) + sum).collect();
///         Ok((self.value(x)?, g))
///     }
/// }
/// let m = minimize_bounded_quasi_newton(&Quadratic, &[1.0; 6], &[0.0; 6], 1e-10,
///     &mut Checkpoint::new(&Never)).unwrap();
/// // Free coordinates 2 and 4: 2(x_i − c_i) + Σx = 0 with Σx = 8 − Σx, so Σx = 4, x = (1, 3);
/// // the others on the bound, where the gradient 2(0 − c_i) + 4 is positive.
/// assert!(m.converged && [0, 1, 3, 5].iter().all(|&i| m.x[i] == 0.0));
/// assert!((m.x[2] - 1.0).abs() < 1e-9 && (m.x[4] - 3.0).abs() < 1e-9);
/// ```
pub fn minimize_bounded_quasi_newton(
    objective: &impl Objective, start: &[f64], lower: &[f64], tolerance: f64, checkpoint: &mut Checkpoint<'_>,
) -> Result<Minimum> {
    quasi_newton_from(objective, start, lower, tolerance, Initial::Identity, checkpoint).map(|(m, _)| m)
}

/// The curvature B a search starts from.
pub(crate) enum Initial {
    /// The scaled identity of the module docs.
    Identity,
    /// A positive definite B (n × n, row-major): the one another search ended with.
    Given(Vec<f64>),
    /// The Hessian by differences of the gradient at the start, made positive definite.
    Differences,
}

/// [`minimize_bounded_quasi_newton`] from the curvature `initial` (B, n × n row-major,
/// positive definite) when given, in place of the scaled identity of the first step; with the
/// B it ends with (`None` when it learnt none).
///
/// # Errors
/// As [`minimize_bounded_quasi_newton`].
pub(crate) fn quasi_newton_from(
    objective: &impl Objective, start: &[f64], lower: &[f64], tolerance: f64, initial: Initial, checkpoint: &mut Checkpoint<'_>,
) -> Result<(Minimum, Option<Vec<f64>>)> {
    if start.len() != lower.len() {
        return Err(HnmError::ParameterLength { argument: "start", expected: lower.len(), found: start.len() });
    }
    let n = lower.len();
    let mut x = project(start, lower);
    let (mut value, mut gradient) = objective.value_and_gradient(&x)?;
    let (mut evaluations, mut iterations) = (1, 0);
    if objective.abandon(&x, value) {
        // Before the differences' n gradients (the loop's check comes after them); a given B
        // is handed back.
        let given = match initial {
            Initial::Given(b) => Some(b),
            Initial::Identity | Initial::Differences => None,
        };
        return Ok((Minimum::abandoned(x, value, gradient, lower, iterations, evaluations), given));
    }
    let mut converged = false;
    // B, row-major; `None` until the first step has measured a curvature. f's noise where the
    // differences measured it (0, no limit on the line search, otherwise).
    // True while B is the Hessian by differences at x (until the first update).
    let mut exact = matches!(initial, Initial::Differences);
    let (mut hessian, noise): (Option<Vec<f64>>, f64) = match initial {
        Initial::Identity => (None, 0.0),
        Initial::Given(b) => (Some(b).filter(|b| b.len() == n * n), 0.0),
        Initial::Differences => {
            let Differences { hessian, noise } = positive_definite_hessian(objective, &x, value, &gradient, &mut evaluations);
            (Some(hessian), noise)
        }
    };
    let mut stall = Stall::default();
    let mut creep = Creep::new(n);
    let mut lost = false;
    // The sets of zero coordinates checked early (each once).
    let mut checked: Vec<Vec<usize>> = Vec::new();
    // The last n steps' s and y (see `secants_fit`).
    let mut previous: Vec<(Vec<f64>, Vec<f64>)> = Vec::new();
    let max_iterations = objective.max_iterations();
    while iterations < max_iterations {
        let projected = projected_norm(&x, &gradient, lower);
        objective.trace(iterations, value, projected);
        if objective.abandon(&x, value) {
            return Ok((Minimum::abandoned(x, value, gradient, lower, iterations, evaluations), hessian));
        }
        if stall.stalled(value, projected) {
            break;
        }
        if stall.lost_in_noise(noise) {
            // No progress is possible: nor would the Newton method's below make any.
            lost = true;
            break;
        }
        checkpoint.check_timed()?;
        if projected > tolerance && projected <= EARLY_SADDLE * tolerance {
            // Near a stationary point whose zero coordinates have not been checked yet: a
            // saddle there is left now rather than after converging to it (module docs).
            let zero = stationary_zeros(&x, &gradient, tolerance);
            if !zero.is_empty() && !checked.contains(&zero) {
                checked.push(zero);
                if let Some((x_new, v_new, g_new)) = leave_saddle(objective, &x, value, &gradient, lower, tolerance, noise, &mut evaluations) {
                    (x, value, gradient) = (x_new, v_new, g_new);
                    iterations += 1;
                    continue;
                }
            }
        }
        if projected <= tolerance {
            match leave_saddle(objective, &x, value, &gradient, lower, tolerance, noise, &mut evaluations) {
                Some((x_new, v_new, g_new)) => {
                    (x, value, gradient) = (x_new, v_new, g_new);
                    iterations += 1;
                    continue;
                }
                None => {
                    converged = true;
                    break;
                }
            }
        }
        iterations += 1;
        let initial = hessian.is_none();
        let b = hessian.get_or_insert_with(|| scaled_identity(n, gradient.iter().fold(0.0_f64, |m, g| m.max(g.abs())) / FIRST_STEP));
        let direction = search_direction(b, &x, &gradient, lower, &objective.zero_groups(&x), tolerance);
        let Some(step) = projected_search(objective, &x, value, &gradient, &direction, lower, noise, Shorten::Interpolate, &mut evaluations) else {
            // No step along a direction from a learnt B lowers f: start again from steepest
            // descent, whose short steps always can unless x is the minimum to rounding.
            if initial {
                break;
            }
            hessian = None;
            previous.clear();
            continue;
        };
        if step.canonical {
            let s: Vec<f64> = step.x.iter().zip(&x).map(|(a, b)| a - b).collect();
            let y: Vec<f64> = step.gradient.iter().zip(&gradient).map(|(a, b)| a - b).collect();
            let y = if exact { tangent_secant(b, &s, &y).unwrap_or(y) } else { y };
            exact = false;
            damped_bfgs_update(b, &s, &y, initial);
            // One θ: BFGS's B is already the last secant, damped (module docs).
            if (2..=SECANTS_MAX).contains(&n) {
                if previous.len() == n {
                    previous.remove(0);
                }
                previous.push((s, y));
                if let Some(fit) = (previous.len() == n).then(|| secants_fit(&previous)).flatten() {
                    b.copy_from_slice(&fit);
                }
            }
        } else {
            // Another parametrisation of the point the step reached (a column of Λ rotated):
            // its change in gradient is no curvature, so B is kept without an update, and the
            // secants measured in the old parametrisation are not fitted with later ones.
            previous.clear();
        }
        let reached = Point { x: &step.x, value: step.value, projected: projected_norm(&step.x, &step.gradient, lower) };
        let creeping = creep.step(&Point { x: &x, value, projected }, &reached, lower);
        (x, value, gradient) = (step.x, step.value, step.gradient);
        if let Some(on_bound) = try_bound(objective, &x, value, &gradient, lower, &creeping, &mut evaluations) {
            // The end of the valley x crept along: a jump, not a step, so B learns nothing.
            (x, value, gradient) = on_bound;
        }
    }
    if !converged && !lost && iterations < max_iterations {
        // f stalled, or no step lowered it, above the tolerance: a valley whose curvature
        // spans more orders of magnitude than BFGS learns in a few steps (a variance near 0).
        // The Newton method's exact curvature finishes from here in a few iterations.
        let finish = minimize_bounded(objective, &x, lower, tolerance, checkpoint)?;
        return Ok((Minimum { iterations: iterations + finish.iterations, evaluations: evaluations + finish.evaluations, ..finish }, hessian));
    }
    if let (true, Some(b)) = (converged, &mut hessian) {
        let learn = |b: &mut [f64], s: &[f64], y: &[f64]| damped_bfgs_update(b, s, y, false);
        polish(objective, &mut x, &mut value, &mut gradient, lower, b, Some(&learn), &mut evaluations);
    }
    snap_to_bounds(objective, &mut x, &mut value, &mut gradient, lower, &mut evaluations);
    let projected_gradient_norm = projected_norm(&x, &gradient, lower);
    converged = converged || projected_gradient_norm <= 1e3 * tolerance;
    Ok((Minimum { x, value, gradient, iterations, evaluations, projected_gradient_norm, converged }, hessian))
}

fn scaled_identity(n: usize, scale: f64) -> Vec<f64> {
    let scale = if scale.is_finite() && scale > 0.0 { scale } else { 1.0 };
    let mut b = vec![0.0; n * n];
    for i in 0..n {
        b[i * n + i] = scale;
    }
    b
}

/// The direction of the module docs: −∂_i f / B_ii on the ε-active set, 0 on the coordinates
/// of a zero group ([`Objective::zero_groups`]) whose gradient is within the tolerance, and
/// B_FF⁻¹ ∇_F f on the free coordinates (by Cholesky; B_FF is a principal block of a positive
/// definite B).
fn search_direction(b: &[f64], x: &[f64], gradient: &[f64], lower: &[f64], zero_groups: &[Option<usize>], tolerance: f64) -> Vec<f64> {
    let n = x.len();
    let scaled = |i: usize| gradient[i] / b[i * n + i];
    let width = (0..n).map(|i| (x[i] - (x[i] - scaled(i)).max(lower[i])).abs()).fold(0.0_f64, f64::max).min(ACTIVE_WIDTH);
    let active = |i: usize| x[i] - lower[i] <= width && gradient[i] > 0.0;
    let held = |i: usize| zero_groups[i].is_some() && gradient[i].abs() <= tolerance;
    let free: Vec<usize> = (0..n).filter(|&i| !active(i) && !held(i)).collect();
    let mut direction: Vec<f64> = (0..n).map(|i| if active(i) { -scaled(i) } else { 0.0 }).collect();
    let nf = free.len();
    let mut factor: Vec<f64> = free.iter().flat_map(|&r| free.iter().map(move |&c| b[r * n + c])).collect();
    let mut step: Vec<f64> = free.iter().map(|&i| -gradient[i]).collect();
    if cholesky_in_place(&mut factor, nf) {
        solve_lower(&factor, nf, &mut step, 1);
        solve_lower_transposed(&factor, nf, &mut step, 1);
    } else {
        // Only through rounding in B: its diagonal still scales a gradient step.
        for (s, &i) in step.iter_mut().zip(&free) {
            *s /= b[i * n + i];
        }
    }
    for (&i, s) in free.iter().zip(step) {
        direction[i] = s;
    }
    direction
}

/// The change of gradient along the step s that the Hessian at the step's end would give,
/// 2y − H s with y the secant's change and H = `b` the Hessian at its start (by differences):
/// y = ∫₀¹ H(x + t s) s dt = H s + ½ H'[s, s] + O(s³), so 2y − H s = H(x + s) s + O(s³), where
/// y itself holds the mean curvature over the step. The first step from a start below the
/// optimum (the moment start's usual side) undershoots by the curvature's change along it
/// (the profiled deviance's falls like θ^−1.7 on InstEval), and the secant's mean curvature
/// then undershoots again: the next steps shrank the gradient by only ~1/10 each. The
/// extrapolation carries H's own error into the update (2y − (H + E)s = H(x + s)s − Es, where
/// the secant would correct it), so it is made only where the curvature along s changed by
/// more than [`TANGENT_CHANGE`] (sᵀy against sᵀHs), far beyond the differences' error on a
/// smooth f (~1e-6 relative) though not beyond that of a noisy gradient. `None` (the secant
/// kept) then, or when sᵀ(2y − Hs) is not within a factor 2 of sᵀy (B made positive
/// definite, a long step: the extrapolation is not to be trusted).
fn tangent_secant(b: &[f64], s: &[f64], y: &[f64]) -> Option<Vec<f64>> {
    let n = s.len();
    let bs: Vec<f64> = (0..n).map(|r| (0..n).map(|c| b[r * n + c] * s[c]).sum::<f64>()).collect();
    let tangent: Vec<f64> = y.iter().zip(&bs).map(|(yi, bsi)| 2.0 * yi - bsi).collect();
    let along = |v: &[f64]| s.iter().zip(v).map(|(a, c)| a * c).sum::<f64>();
    let (secant, sbs, extrapolated) = (along(y), along(&bs), along(&tangent));
    let changed = (secant - sbs).abs() > TANGENT_CHANGE * sbs;
    (changed && secant > 0.0 && extrapolated >= 0.5 * secant && extrapolated <= 2.0 * secant).then_some(tangent)
}

/// The B that meets the secants of the last n steps (n = dim x), B S = Y with S = (s₁ … s_n)
/// and Y = (y₁ … y_n), made symmetric: with few θ, n steps in independent directions
/// determine the curvature, where BFGS keeps only the last secant and across it the error of
/// the B it started from (the Hessian by differences at the moment start, whose curvature
/// differs from the optimum's by ~5% on InstEval). The search then converges superlinearly
/// where BFGS shrank the gradient by ~1/100 a step (evaluations of InstEval's first model
/// 9 -> 8, its second 12 -> 11, Penicillin 16 -> 12, Pastes 11 -> 9, Chem97 13 -> 12, crossed
/// Zipf 1e6 rows 8 -> 7; the same criterion to 1e-15 relative). With the steps scaled to unit
/// length, B = Ỹ G⁻¹ S̃ᵀ for G = S̃ᵀS̃ = L Lᵀ: `None` (BFGS's B kept) when a step is within
/// |sin| ≤ 0.1 of the span of the earlier ones (a pivot of L at most 0.1: S near singular) or
/// the B is not positive definite.
fn secants_fit(pairs: &[(Vec<f64>, Vec<f64>)]) -> Option<Vec<f64>> {
    let n = pairs.len();
    // Rows k: s_k / |s_k| and y_k / |s_k|.
    let (mut st, mut yt) = (vec![0.0; n * n], vec![0.0; n * n]);
    for (k, (s, y)) in pairs.iter().enumerate() {
        let length = norm(s);
        if !(length > 0.0) {
            return None;
        }
        for i in 0..n {
            (st[k * n + i], yt[k * n + i]) = (s[i] / length, y[i] / length);
        }
    }
    let mut l: Vec<f64> = (0..n * n).map(|e| (0..n).map(|i| st[(e / n) * n + i] * st[(e % n) * n + i]).sum()).collect();
    if !cholesky_in_place(&mut l, n) || (0..n).any(|k| !(l[k * n + k] > 0.1)) {
        return None;
    }
    solve_lower(&l, n, &mut st, n);
    solve_lower(&l, n, &mut yt, n);
    // B = Vᵀ W with V = L⁻¹Ỹᵀ, W = L⁻¹S̃ᵀ, symmetrised.
    let entry = |r: usize, c: usize| (0..n).map(|k| yt[k * n + r] * st[k * n + c]).sum::<f64>();
    let mut b = vec![0.0; n * n];
    for r in 0..n {
        for c in 0..=r {
            let v = 0.5 * (entry(r, c) + entry(c, r));
            (b[r * n + c], b[c * n + r]) = (v, v);
        }
    }
    let mut factor = b.clone();
    (b.iter().all(|v| v.is_finite()) && cholesky_in_place(&mut factor, n)).then_some(b)
}

/// Powell's damped BFGS update of B (module docs) with the step s and the change of gradient
/// y; B is first scaled to yᵀy / sᵀy when it is still the initial guess. Skipped when s is 0 to
/// rounding.
fn damped_bfgs_update(b: &mut [f64], s: &[f64], y: &[f64], initial: bool) {
    let n = s.len();
    let sy: f64 = s.iter().zip(y).map(|(a, c)| a * c).sum();
    if initial && sy > 0.0 {
        let yy: f64 = y.iter().map(|v| v * v).sum();
        b.copy_from_slice(&scaled_identity(n, yy / sy));
    }
    let bs: Vec<f64> = (0..n).map(|r| (0..n).map(|c| b[r * n + c] * s[c]).sum()).collect();
    let sbs: f64 = s.iter().zip(&bs).map(|(a, c)| a * c).sum();
    if !(sbs > 0.0 && sbs.is_finite()) {
        return;
    }
    let phi = if sy >= 0.2 * sbs { 1.0 } else { 0.8 * sbs / (sbs - sy) };
    let r: Vec<f64> = y.iter().zip(&bs).map(|(yi, bsi)| phi * yi + (1.0 - phi) * bsi).collect();
    let sr: f64 = s.iter().zip(&r).map(|(a, c)| a * c).sum();
    if !(sr > 0.0) {
        return;
    }
    for row in 0..n {
        for col in 0..n {
            b[row * n + col] += r[row] * r[col] / sr - bs[row] * bs[col] / sbs;
        }
    }
}

/// The block of H on the coordinates `on` (k × k, row-major) by forward differences of the
/// gradient, symmetrised, as [`super::optim::forward_difference_block`] but with the coordinates of distinct
/// zero groups ([`Objective::zero_groups`]) shifted together: f depends on a zero group l_g
/// only through l_g l_gᵀ, so ∂²f/∂l_g∂l_h = 0 at l_g = l_h = 0 for g ≠ h, and one gradient
/// gives a column of every group's block (as many gradients as the largest group has
/// coordinates in `on`, where one per coordinate would cost k). Coordinates outside a group
/// are shifted alone (their whole column). Steps that fail count as no curvature information.
fn zero_block(objective: &impl Objective, x: &[f64], gradient: &[f64], on: &[usize], groups: &[Option<usize>], evaluations: &mut usize) -> Vec<f64> {
    let k = on.len();
    // The shift of each coordinate: its rank within its group, or a shift of its own.
    let mut shift = vec![0; k];
    let mut shifts = 0;
    for c in 0..k {
        shift[c] = match groups[on[c]] {
            Some(group) => (0..c).filter(|&b| groups[on[b]] == Some(group)).count(),
            None => usize::MAX,
        };
    }
    let grouped = shift.iter().filter(|&&s| s != usize::MAX).map(|&s| s + 1).max().unwrap_or(0);
    for s in shift.iter_mut().filter(|s| **s == usize::MAX) {
        *s = grouped + shifts;
        shifts += 1;
    }
    let (mut h, mut measured) = (vec![0.0; k * k], vec![false; k * k]);
    let mut shifted = x.to_vec();
    let step = |i: usize| 1e-6 * x[i].abs().max(1e-2);
    for round in 0..grouped + shifts {
        let members: Vec<usize> = (0..k).filter(|&c| shift[c] == round).collect();
        for &c in &members {
            shifted[on[c]] = x[on[c]] + step(on[c]);
        }
        *evaluations += 1;
        let result = objective.value_and_gradient(&shifted);
        for &c in &members {
            shifted[on[c]] = x[on[c]];
            let Ok((_, g)) = &result else { continue };
            let group = groups[on[c]];
            for (r, &j) in on.iter().enumerate() {
                if group.is_none() || groups[j] == group {
                    (h[r * k + c], measured[r * k + c]) = ((g[j] - gradient[j]) / step(on[c]), true);
                }
            }
        }
    }
    for r in 0..k {
        for c in 0..r {
            let value = match (measured[r * k + c], measured[c * k + r]) {
                (true, true) => 0.5 * (h[r * k + c] + h[c * k + r]),
                (true, false) => h[r * k + c],
                (false, true) => h[c * k + r],
                (false, false) => 0.0,
            };
            (h[r * k + c], h[c * k + r]) = (value, value);
        }
    }
    h
}

/// The coordinates exactly 0 whose gradient is within `tolerance`: where a saddle of a
/// function even in them hides (module docs).
fn stationary_zeros(x: &[f64], gradient: &[f64], tolerance: f64) -> Vec<usize> {
    (0..x.len()).filter(|&i| x[i] == 0.0 && gradient[i].abs() <= tolerance).collect()
}

/// The check for a saddle where the gradient vanishes by symmetry (module docs): the Hessian
/// block on the coordinates that are exactly 0 with a gradient within the tolerance; along its
/// most negative curvature, if any, a step into the feasible set that lowers f. `None` when
/// there is none (x is a minimum).
#[allow(clippy::too_many_arguments)]
fn leave_saddle(
    objective: &impl Objective, x: &[f64], value: f64, gradient: &[f64], lower: &[f64], tolerance: f64, noise: f64, evaluations: &mut usize,
) -> Option<(Vec<f64>, f64, Vec<f64>)> {
    let zero = stationary_zeros(x, gradient, tolerance);
    if zero.is_empty() {
        return None;
    }
    let k = zero.len();
    let block = zero_block(objective, x, gradient, &zero, &objective.zero_groups(x), evaluations);
    let (values, vectors) = symmetric_eigen(&block, k);
    let largest = values.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    let threshold = -(1e-8 * largest).max(f64::MIN_POSITIVE);
    // The block is block-diagonal across zero groups (their cross-derivatives vanish), so its
    // eigenvectors each lie in one group: every group with a negative curvature leaves 0 at
    // once, along its most negative direction (most negative first, one per disjoint support),
    // rather than one group per convergence.
    let mut order: Vec<usize> = (0..k).filter(|&i| values[i] < threshold).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    if order.is_empty() {
        return None;
    }
    let scale = 0.1 * (1.0 + norm(x));
    let mut direction = vec![0.0; x.len()];
    let mut used = vec![false; k];
    for index in order {
        let v = &vectors[index * k..(index + 1) * k];
        let support: Vec<usize> = (0..k).filter(|&c| v[c].abs() > 1e-12).collect();
        if support.iter().any(|&c| used[c]) {
            continue;
        }
        // Into the feasible set where v moves coordinates at a bound (f is even there, so only
        // that side exists), either way otherwise.
        let inwards: f64 = zero.iter().zip(v).filter(|(&i, _)| x[i] <= lower[i]).map(|(_, vi)| vi).sum();
        let sign = if inwards < 0.0 { -1.0 } else { 1.0 };
        for &c in &support {
            used[c] = true;
            direction[zero[c]] = sign * scale * v[c];
        }
    }
    projected_search(objective, x, value, gradient, &direction, lower, noise, Shorten::Interpolate, evaluations)
        .filter(|found| found.value < value)
        .map(|found| (found.x, found.value, found.gradient))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numerics::interrupt::Never;
    use crate::numerics::optim::tests::NoisyQuadratic;

    /// On a quadratic with Hessian H the secants are y = H s, and two independent steps give
    /// H itself; nearly parallel ones, or an indefinite result, give none.
    #[test]
    fn secants_recover_a_quadratics_hessian() {
        let h = [[4.0, -1.5], [-1.5, 2.0]];
        let apply = |s: [f64; 2]| vec![h[0][0] * s[0] + h[0][1] * s[1], h[1][0] * s[0] + h[1][1] * s[1]];
        let (s0, s1) = ([0.3, 0.1], [-0.02, 0.05]);
        let pair = |s: [f64; 2]| (s.to_vec(), apply(s));
        let b = secants_fit(&[pair(s0), pair(s1)]).unwrap();
        for (found, expected) in b.iter().zip([4.0, -1.5, -1.5, 2.0]) {
            assert!((found - expected).abs() <= 1e-12 * 4.0, "{b:?}");
        }
        assert_eq!(secants_fit(&[pair(s0), pair([0.3, 0.1001])]), None);
        let indefinite = |s: [f64; 2]| (s.to_vec(), vec![s[0], -s[1]]);
        assert_eq!(secants_fit(&[indefinite([1.0, 0.0]), indefinite([0.0, 1.0])]), None);
    }

    /// The Rosenbrock function in n dimensions, Σ 100(x_{i+1} − x_i²)² + (1 − x_i)², with
    /// x_0 ≥ 1.2 (the minimum on the bound: x_0 = 1.2, then x_1 ≈ 1.44 ...) or unbounded (all 1).
    struct Rosenbrock;

    impl Objective for Rosenbrock {
        fn value(&self, x: &[f64]) -> Result<f64> {
            Ok(x.windows(2).map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (1.0 - w[0]).powi(2)).sum())
        }
        fn value_and_gradient(&self, x: &[f64]) -> Result<(f64, Vec<f64>)> {
            let mut g = vec![0.0; x.len()];
            for i in 0..x.len() - 1 {
                let d = x[i + 1] - x[i] * x[i];
                g[i] += -400.0 * x[i] * d - 2.0 * (1.0 - x[i]);
                g[i + 1] += 200.0 * d;
            }
            Ok((self.value(x)?, g))
        }
    }

    #[test]
    fn reaches_the_unconstrained_minimum_of_rosenbrock() {
        let n = 10;
        let m = minimize_bounded_quasi_newton(&Rosenbrock, &vec![-1.0; n], &vec![f64::NEG_INFINITY; n], 1e-10, &mut Checkpoint::new(&Never)).unwrap();
        assert!(m.converged, "{m:?}");
        assert!(m.x.iter().all(|v| (v - 1.0).abs() < 1e-9), "{:?}", m.x);
        // Far fewer evaluations than n + 1 per iteration of a Newton method.
        assert!(m.evaluations < 300, "{}", m.evaluations);
    }

    #[test]
    fn stops_exactly_on_a_binding_bound() {
        let n = 6;
        let mut lower = vec![f64::NEG_INFINITY; n];
        lower[0] = 1.2;
        let m = minimize_bounded_quasi_newton(&Rosenbrock, &vec![2.0; n], &lower, 1e-10, &mut Checkpoint::new(&Never)).unwrap();
        assert!(m.converged, "{m:?}");
        assert_eq!(m.x[0], 1.2);
        assert!(m.gradient[0] > 0.0 && m.gradient[1..].iter().all(|g| g.abs() <= 1e-10), "{:?}", m.gradient);
    }

    /// f(x, y) = (x² + y²)² − x² − y²/2 + y² x² with x ≥ 0: even in (x, y) jointly and in x
    /// alone, so at x = y = 0 (the start) the gradient is 0, a local maximum; the minimum is
    /// x = 1/√2, y = 0 (f = −1/4).
    struct EvenAtZero;

    impl Objective for EvenAtZero {
        fn value(&self, x: &[f64]) -> Result<f64> {
            let r = x[0] * x[0] + x[1] * x[1];
            Ok(r * r - x[0] * x[0] - 0.5 * x[1] * x[1] + x[0] * x[0] * x[1] * x[1])
        }
        fn value_and_gradient(&self, x: &[f64]) -> Result<(f64, Vec<f64>)> {
            let r = x[0] * x[0] + x[1] * x[1];
            let g = vec![4.0 * r * x[0] - 2.0 * x[0] + 2.0 * x[0] * x[1] * x[1], 4.0 * r * x[1] - x[1] + 2.0 * x[0] * x[0] * x[1]];
            Ok((self.value(x)?, g))
        }
    }

    /// f = r₁² − r₁ + r₂² − r₂/2 + r₁r₂/4 with r₁ = a² + b² and r₂ = c² + d²: even in each of
    /// the groups (a, b) and (c, d), as the deviance is in a column of Λ, so the gradient is 0
    /// where a group is 0; x = 0 is a saddle, with a ≥ 0 and c ≥ 0 (diagonals of Λ).
    struct TwoGroups;

    impl TwoGroups {
        fn radii(x: &[f64]) -> (f64, f64) {
            (x[0] * x[0] + x[1] * x[1], x[2] * x[2] + x[3] * x[3])
        }
    }

    impl Objective for TwoGroups {
        fn value(&self, x: &[f64]) -> Result<f64> {
            let (r1, r2) = Self::radii(x);
            Ok(r1 * r1 - r1 + r2 * r2 - 0.5 * r2 + 0.25 * r1 * r2)
        }
        fn value_and_gradient(&self, x: &[f64]) -> Result<(f64, Vec<f64>)> {
            let (r1, r2) = Self::radii(x);
            let (d1, d2) = (2.0 * r1 - 1.0 + 0.25 * r2, 2.0 * r2 - 0.5 + 0.25 * r1);
            Ok((self.value(x)?, vec![2.0 * x[0] * d1, 2.0 * x[1] * d1, 2.0 * x[2] * d2, 2.0 * x[3] * d2]))
        }
        fn zero_groups(&self, x: &[f64]) -> Vec<Option<usize>> {
            let group = |first: usize| (x[first] == 0.0 && x[first + 1] == 0.0).then_some(first);
            vec![group(0), group(0), group(2), group(2)]
        }
    }

    #[test]
    fn the_block_of_zero_groups_takes_one_gradient_per_coordinate_of_the_largest_group() {
        let x = [0.0; 4];
        let mut evaluations = 0;
        let block = zero_block(&TwoGroups, &x, &[0.0; 4], &[0, 1, 2, 3], &TwoGroups.zero_groups(&x), &mut evaluations);
        // The Hessian at 0: 2 ∂f/∂r₁ = −2 on (a, b) and 2 ∂f/∂r₂ = −1 on (c, d), nothing across.
        let exact = [-2.0, 0.0, 0.0, 0.0, 0.0, -2.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, -1.0];
        assert_eq!(evaluations, 2);
        assert!(block.iter().zip(exact).all(|(h, e)| (h - e).abs() < 1e-6), "{block:?}");
    }

    #[test]
    fn zero_groups_leave_their_saddle_for_the_minimum() {
        let lower = [0.0, f64::NEG_INFINITY, 0.0, f64::NEG_INFINITY];
        let m = minimize_bounded_quasi_newton(&TwoGroups, &[0.0; 4], &lower, 1e-12, &mut Checkpoint::new(&Never)).unwrap();
        // ∂f/∂r₁ = ∂f/∂r₂ = 0: r₁ = 0.5 − r₂/8 and r₂ = 0.25 − r₁/8.
        let r1 = (0.5 - 0.25 / 8.0) / (1.0 - 1.0 / 64.0);
        let r2 = 0.25 - r1 / 8.0;
        let (found1, found2) = TwoGroups::radii(&m.x);
        assert!(m.converged && (found1 - r1).abs() < 1e-9 && (found2 - r2).abs() < 1e-9, "{m:?}");
    }

    #[test]
    fn every_zero_group_with_negative_curvature_leaves_at_once() {
        // At 0 both groups have negative curvature (2 ∂f/∂r₁ = −2, 2 ∂f/∂r₂ = −1): one escape
        // moves both off 0, with f lower than f(0) = 0.
        let lower = [0.0, f64::NEG_INFINITY, 0.0, f64::NEG_INFINITY];
        let mut evaluations = 0;
        let (x, value, _) = leave_saddle(&TwoGroups, &[0.0; 4], 0.0, &[0.0; 4], &lower, 1e-12, 0.0, &mut evaluations).unwrap();
        let (r1, r2) = TwoGroups::radii(&x);
        assert!(r1 > 0.0 && r2 > 0.0 && value < 0.0, "{x:?}");
    }

    /// (x − 1)² + 2(y + 1/2)² + x y / 2 + (x − 1)⁴ / 4, minimised at (x, y) = (36, −20)/31 only
    /// without the quartic; with it the minimum solves 2(x − 1) + y/2 + (x − 1)³ = 0 and
    /// 4(y + 1/2) + x/2 = 0.
    struct QuarticValley;

    impl Objective for QuarticValley {
        fn value(&self, x: &[f64]) -> Result<f64> {
            Ok((x[0] - 1.0).powi(2) + 2.0 * (x[1] + 0.5).powi(2) + 0.5 * x[0] * x[1] + 0.25 * (x[0] - 1.0).powi(4))
        }
        fn value_and_gradient(&self, x: &[f64]) -> Result<(f64, Vec<f64>)> {
            let g = vec![2.0 * (x[0] - 1.0) + 0.5 * x[1] + (x[0] - 1.0).powi(3), 4.0 * (x[1] + 0.5) + 0.5 * x[0]];
            Ok((self.value(x)?, g))
        }
    }

    #[test]
    fn a_start_from_the_difference_hessian_converges_in_newton_like_steps() {
        let lower = [f64::NEG_INFINITY; 2];
        let run = |initial| quasi_newton_from(&QuarticValley, &[3.0, 2.0], &lower, 1e-12, initial, &mut Checkpoint::new(&Never)).unwrap().0;
        let (exact, learnt) = (run(Initial::Differences), run(Initial::Identity));
        // The root of the gradient: y = −1/2 − x/8 and 2(x − 1) − 1/4 − x/16 + (x − 1)³ = 0.
        let h = |x: f64| 2.0 * (x - 1.0) - 0.25 - x / 16.0 + (x - 1.0).powi(3);
        let (mut a, mut b) = (0.0, 3.0);
        for _ in 0..200 {
            let mid = 0.5 * (a + b);
            if h(mid) < 0.0 {
                a = mid;
            } else {
                b = mid;
            }
        }
        let root = 0.5 * (a + b);
        for m in [&exact, &learnt] {
            assert!(m.converged && (m.x[0] - root).abs() < 1e-10 && (m.x[1] + 0.5 + root / 8.0).abs() < 1e-10, "{m:?}");
        }
        assert!(exact.iterations < learnt.iterations, "{} vs {}", exact.iterations, learnt.iterations);
    }

    #[test]
    fn a_start_from_differences_measures_the_noise_of_f_and_stops_there() {
        let start = [3.0, -2.0, 4.0];
        let lower = [f64::NEG_INFINITY; 3];
        let (m, _) = quasi_newton_from(&NoisyQuadratic, &start, &lower, 1e-10, Initial::Differences, &mut Checkpoint::new(&Never)).unwrap();
        // The minimum x = 1 to the gradient's noise (1e-8 over a curvature of 2 to 6), f within
        // its noise (1e-3) of 0; the line searches that follow the noise of f beyond that
        // (up to 50 evaluations each) are not made.
        assert!(m.x.iter().all(|v| (v - 1.0).abs() < 1e-7) && m.value.abs() < 1e-3, "{m:?}");
        assert!(m.evaluations <= 30, "{m:?}");
    }

    #[test]
    fn the_tangent_secant_is_the_curvature_at_the_end_of_the_step() {
        // f = x⁴ + x²y + y²: H = [[12x², 2x], [2x, 2]]; from (1, 1) by s = (0.1, −0.05).
        let gradient = |x: f64, y: f64| [4.0 * x.powi(3) + 2.0 * x * y, x * x + 2.0 * y];
        let hessian = |x: f64, y: f64| [12.0 * x * x + 2.0 * y, 2.0 * x, 2.0 * x, 2.0];
        let (x, s) = ([1.0, 1.0], [0.1, -0.05]);
        let (g0, g1) = (gradient(x[0], x[1]), gradient(x[0] + s[0], x[1] + s[1]));
        let y = [g1[0] - g0[0], g1[1] - g0[1]];
        let end = hessian(x[0] + s[0], x[1] + s[1]);
        let exact = [end[0] * s[0] + end[1] * s[1], end[2] * s[0] + end[3] * s[1]];
        let tangent = tangent_secant(&hessian(x[0], x[1]), &s, &y).unwrap();
        // The secant's error is O(s²) (the mean curvature over the step), the tangent's O(s³).
        let error = |v: &[f64]| v.iter().zip(&exact).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(error(&tangent) < 0.05 * error(&y), "{tangent:?} {y:?} against {exact:?}");
    }

    #[test]
    fn negative_curvature_leaves_a_stationary_zero() {
        let m = minimize_bounded_quasi_newton(&EvenAtZero, &[0.0, 0.0], &[0.0, f64::NEG_INFINITY], 1e-12, &mut Checkpoint::new(&Never)).unwrap();
        assert!(m.converged, "{m:?}");
        assert!((m.value + 0.25).abs() < 1e-12 && (m.x[0] - 0.5f64.sqrt()).abs() < 1e-9 && m.x[1].abs() < 1e-9, "{m:?}");
    }
}
