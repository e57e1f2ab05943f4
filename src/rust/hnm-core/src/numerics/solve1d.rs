//! Safeguarded Newton iterations in one variable: a root ([`newton_root`]) and a bounded
//! minimum ([`minimize_scalar`]).
//!
//! Given φ with φ(neg) < 0 < φ(pos) and its derivative, each step of [`newton_root`] takes the
//! Newton update when it stays inside the current bracket and bisects otherwise; the bracket
//! shrinks around the sign change every step, so the iteration always converges, and
//! quadratically near a simple root. It is used for the score equation of the fit and for the
//! profile-likelihood limits. [`minimize_scalar`] is the inner problem of a profile whose
//! other parameters reduce to one (every profile of a random-intercept model).

use crate::error::Result;
use crate::numerics::interrupt::Checkpoint;

/// The result of [`newton_root`]: the root, how many evaluations it took, and whether the
/// iteration met its stopping rule (false after [`MAX_STEPS`] evaluations or at a NaN φ).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Root {
    pub x: f64,
    pub steps: u32,
    pub converged: bool,
}

/// The evaluations [`newton_root`] makes at most; bisection of a finite bracket needs about 64.
pub(crate) const MAX_STEPS: u32 = 200;

/// A Newton step this much smaller than x, after one at least 1000 times larger, shows the
/// quadratic regime: the next error is about its square, far below the rounding of x.
const QUADRATIC_STEP: f64 = 1e-9;

/// A root of `phi` (returning φ(x) and φ'(x)) between `neg` and `pos`, where φ(neg) < 0 <
/// φ(pos), starting from `start`; the ends are not evaluated. `pos` may be ±∞ when no point
/// with φ > 0 is known yet: steps towards it that Newton cannot give grow geometrically
/// from `step`. Each step takes the Newton update when it stays inside the bracket and
/// improves |φ| by half, and bisects otherwise. The iteration stops when a step is
/// below 4 ulp of x, the bracket is that narrow, or Newton's steps shrink quadratically
/// below 1e-9 |x| (the update is then taken without a further evaluation). A NaN φ (or a
/// NaN derivative of a step that is taken) stops the iteration unconverged at that x, as does
/// reaching [`MAX_STEPS`]: the caller decides what that means for its problem.
pub(crate) fn newton_root(phi: impl Fn(f64) -> (f64, f64), mut neg: f64, mut pos: f64, start: f64, step: f64) -> Root {
    let direction = if pos > neg { 1.0 } else { -1.0 };
    let origin = neg;
    let mut x = if (start - neg) * direction > 0.0 && (pos - start) * direction > 0.0 { start } else { neg };
    let (mut steps, mut previous_value, mut previous_newton) = (0, f64::INFINITY, f64::INFINITY);
    while steps < MAX_STEPS {
        let (value, slope) = phi(x);
        steps += 1;
        if value.is_nan() {
            return Root { x, steps, converged: false };
        }
        if value == 0.0 {
            return Root { x, steps, converged: true };
        }
        if value < 0.0 {
            neg = x;
        } else {
            pos = x;
        }
        let newton = x - value / slope;
        let inside = newton.is_finite() && (newton - neg) * direction > 0.0 && (pos - newton) * direction > 0.0;
        let progress = value.abs() <= 0.5 * previous_value;
        previous_value = value.abs();
        let next = if inside && (progress || !pos.is_finite()) {
            newton
        } else if pos.is_finite() {
            0.5 * (neg + pos)
        } else {
            neg + direction * step.max(2.0 * (neg - origin).abs())
        };
        let moved = (next - x).abs();
        let tolerance = 4.0 * f64::EPSILON * x.abs().max(f64::MIN_POSITIVE);
        let quadratic = next == newton && moved <= QUADRATIC_STEP * x.abs() && moved <= 1e-3 * previous_newton;
        previous_newton = if next == newton { moved } else { f64::INFINITY };
        let done = moved <= tolerance || (pos - neg).abs() <= tolerance || quadratic;
        x = next;
        if done {
            return Root { x, steps, converged: true };
        }
    }
    Root { x, steps, converged: false }
}

/// The result of [`minimize_scalar`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ScalarMinimum {
    /// The minimiser.
    pub x: f64,
    /// f(x).
    pub value: f64,
    /// f'(x).
    pub derivative: f64,
    /// The last estimate of f'' near x (a secant of f'), a first step's curvature for a
    /// nearby problem; NaN when none was positive.
    pub curvature: f64,
    /// Evaluations of f (each with f').
    pub evaluations: usize,
    /// True when |f'(x)| (0 for f' > 0 at the bound) met the tolerance with positive curvature,
    /// or came within 1e3 times it when the steps fell below rounding.
    pub converged: bool,
}

/// Iterations of [`minimize_scalar`] before it gives up (bisection alone of a bracket of
/// doubles needs fewer).
const SCALAR_ITERATIONS: usize = 200;

/// A minimum of f (`objective` returning f(x) and f'(x)) over x ≥ `lower` (−∞ allowed) from
/// `start`: the one-variable case of [`crate::minimize_bounded`] with one evaluation per
/// iteration instead of two. Each step is the Newton step x − f'/h with h a secant of f'
/// through the last two points (the first step's h is `curvature` when given and positive,
/// a forward difference of f' otherwise), projected on the bound, so a minimum on the bound
/// is reached exactly. A bracket [lo, hi] that holds a minimiser shrinks every step (the
/// best point's f' says on which side it lies, a worse point bounds that side), and a
/// step that leaves it (a curvature that is not positive, a point where f fails) bisects it
/// or, while it is unbounded, doubles. Convergence is the test of [`crate::minimize_bounded`]:
/// the projected |f'| at most `tolerance` at positive curvature; a point within 1e-4 of the
/// bound then moves onto it when f does not rise beyond its rounding (as a singular fit's
/// zero SD: f is even in it and its Newton steps only approach 0).
///
/// # Errors
/// The objective's error at the start; `Interrupted` when `checkpoint` reports a user
/// interrupt. A later point where the objective fails (or is not finite) counts as too long
/// a step.
pub(crate) fn minimize_scalar(
    objective: impl Fn(f64) -> Result<(f64, f64)>, start: f64, lower: f64, tolerance: f64, curvature: Option<f64>, checkpoint: &mut Checkpoint<'_>,
) -> Result<ScalarMinimum> {
    let projected = |x: f64, g: f64| if x <= lower { g.min(0.0).abs() } else { g.abs() };
    let mut x = start.max(lower);
    let (mut value, mut derivative) = objective(x)?;
    let mut evaluations = 1;
    let mut h = curvature.filter(|h| *h > 0.0 && h.is_finite()).unwrap_or_else(|| {
        let step = 1e-6 * x.abs().max(1e-2);
        evaluations += 1;
        objective(x + step).map_or(f64::NAN, |(_, g)| (g - derivative) / step)
    });
    let (mut lo, mut hi) = (lower, f64::INFINITY);
    let (mut converged, mut last_step, mut lower_failed) = (false, 0.0_f64, false);
    // Where the curvature was last measured by a forward difference, and its value.
    let mut measured = if evaluations == 2 { (x, h) } else { (f64::NAN, f64::NAN) };
    for _ in 0..SCALAR_ITERATIONS {
        checkpoint.check_timed()?;
        if derivative > 0.0 {
            hi = hi.min(x);
        } else if derivative < 0.0 {
            lo = lo.max(x);
        }
        let at_bound = x <= lower;
        // At a stationary point on the bound (f even about it, as the criterion in a zero SD)
        // only the curvature there tells a minimum from a maximum: measured by a forward
        // difference, not carried over from elsewhere nor taken from a secant to a far point.
        let stationary_bound = at_bound && derivative <= 0.0 && projected(x, derivative) <= tolerance;
        if stationary_bound && measured.0 != x {
            let step = 1e-6 * x.abs().max(1e-2);
            evaluations += 1;
            measured = (x, objective(x + step).map_or(f64::NAN, |(_, g)| (g - derivative) / step));
            h = measured.1;
        }
        let curvature_here = if stationary_bound { measured.1 } else { h };
        if projected(x, derivative) <= tolerance && (curvature_here > 0.0 || (at_bound && derivative > 0.0)) {
            converged = true;
            break;
        }
        let mut t = if h > 0.0 && derivative != 0.0 {
            x - derivative / h
        } else if derivative != 0.0 {
            x - derivative.signum() * 0.1 * (1.0 + x.abs())
        } else {
            // A stationary point of negative curvature (f even about the bound, say): inwards.
            x + 0.1 * (1.0 + x.abs())
        };
        t = t.max(lower);
        let inside = t.is_finite() && t != x && t < hi && (t > lo || (t == lower && lo == lower && !lower_failed));
        if !inside {
            let expansion = (0.1 * (1.0 + x.abs())).max(2.0 * last_step);
            t = match (derivative < 0.0 || (derivative == 0.0 && at_bound), hi.is_finite(), lo.is_finite()) {
                (true, true, _) => 0.5 * (x + hi),
                (true, false, _) => x + expansion,
                (false, _, true) => 0.5 * (lo + x),
                (false, _, false) => x - expansion,
            };
        }
        let step = (t - x).abs();
        if step <= 4.0 * f64::EPSILON * x.abs().max(f64::MIN_POSITIVE) || hi - lo <= 4.0 * f64::EPSILON * x.abs().max(f64::MIN_POSITIVE) {
            break;
        }
        last_step = step;
        evaluations += 1;
        let Some((vt, gt)) = objective(t).ok().filter(|(v, g)| v.is_finite() && g.is_finite()) else {
            lower_failed = lower_failed || t == lower;
            if t > x {
                hi = t;
            } else {
                lo = t;
            }
            continue;
        };
        let secant = (gt - derivative) / (t - x);
        if secant.is_finite() {
            h = secant;
        }
        let rounding = 1e2 * f64::EPSILON * value.abs().max(1.0);
        if vt < value || (vt <= value + rounding && projected(t, gt) < projected(x, derivative)) {
            (x, value, derivative) = (t, vt, gt);
        } else if t > x {
            hi = hi.min(t);
        } else {
            lo = lo.max(t);
        }
    }
    converged = converged || projected(x, derivative) <= 1e3 * tolerance;
    if lower.is_finite() && x > lower && x - lower <= 1e-4 * (1.0 + x.abs()) {
        evaluations += 1;
        if let Ok((v, g)) = objective(lower) {
            if v <= value + 64.0 * f64::EPSILON * value.abs().max(1.0) {
                (x, value, derivative) = (lower, v, g);
            }
        }
    }
    Ok(ScalarMinimum { x, value, derivative, curvature: if h > 0.0 { h } else { f64::NAN }, evaluations, converged })
}

/// Grows `x` by `factor` from `start` until `is_past(x)` holds (at most 200 times).
pub(crate) fn expand_until(start: f64, factor: f64, is_past: impl Fn(f64) -> bool) -> f64 {
    let mut x = start;
    for _ in 0..200 {
        if is_past(x) {
            break;
        }
        x *= factor;
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numerics::interrupt::Never;

    fn minimum(f: impl Fn(f64) -> (f64, f64), start: f64, lower: f64, curvature: Option<f64>) -> ScalarMinimum {
        minimize_scalar(|x| Ok(f(x)), start, lower, 1e-12, curvature, &mut Checkpoint::new(&Never)).unwrap()
    }

    #[test]
    fn scalar_minima_inside_and_on_the_bound() {
        // f = x − log x, minimum at x = 1 (f'' = 1/x²), from either side and from far off.
        let f = |x: f64| if x > 0.0 { (x - x.ln(), 1.0 - 1.0 / x) } else { (f64::NAN, f64::NAN) };
        for (start, curvature) in [(0.3, None), (4.0, None), (40.0, Some(1.0)), (1e-3, Some(1e6))] {
            let m = minimum(f, start, 0.0, curvature);
            assert!(m.converged && (m.x - 1.0).abs() < 1e-11, "{start}: {m:?}");
            // A secant of f' through the last points: a positive guess, not f''(1) itself.
            assert!(m.curvature > 0.0 && m.curvature < 2.0, "{start}: {m:?}");
        }
        // (x + 1)² with x ≥ 0: the minimum is the bound, reached exactly.
        let m = minimum(|x| ((x + 1.0).powi(2), 2.0 * (x + 1.0)), 5.0, 0.0, None);
        assert!(m.converged && m.x == 0.0, "{m:?}");
        // A free variable (no bound): cosh(x − 3), minimum at 3.
        let m = minimum(|x| ((x - 3.0).cosh(), (x - 3.0).sinh()), -2.0, f64::NEG_INFINITY, None);
        assert!(m.converged && (m.x - 3.0).abs() < 1e-11, "{m:?}");
    }

    #[test]
    fn a_stationary_bound_of_negative_curvature_is_left() {
        // x⁴ − x² with x ≥ 0: f'(0) = 0 at a local maximum; the minimum is 1/√2 (f'' = 4 there).
        let m = minimum(|x| (x.powi(4) - x * x, 4.0 * x.powi(3) - 2.0 * x), 0.0, 0.0, None);
        assert!(m.converged && (m.x - 0.5_f64.sqrt()).abs() < 1e-11, "{m:?}");
        // Started on that bound with a positive curvature carried from elsewhere: measured anew.
        let m = minimum(|x| (x.powi(4) - x * x, 4.0 * x.powi(3) - 2.0 * x), 0.0, 0.0, Some(3.0));
        assert!(m.converged && (m.x - 0.5_f64.sqrt()).abs() < 1e-11, "{m:?}");
        // A shallow dip next to the bound (f = −x²/100 + x⁴, minimum at √(1/200)), started far
        // off: a secant to a far point must not make the bound's maximum look like a minimum.
        let m = minimum(|x| (x.powi(4) - 0.01 * x * x, 4.0 * x.powi(3) - 0.02 * x), 3.0, 0.0, Some(1e3));
        assert!(m.converged && (m.x - 0.005_f64.sqrt()).abs() < 1e-9, "{m:?}");
        // An even function whose minimum is the bound: Newton steps approach 0, which is snapped to.
        let m = minimum(|x| (x * x + x.powi(4), 2.0 * x + 4.0 * x.powi(3)), 0.5, 0.0, None);
        assert!(m.converged && m.x == 0.0, "{m:?}");
    }

    #[test]
    fn failures_past_the_start_count_as_too_long_a_step() {
        // f = (x − 2)² defined only below 2.5, with a curvature guess that overshoots.
        let f = |x: f64| if x < 2.5 { Ok(((x - 2.0).powi(2), 2.0 * (x - 2.0))) } else { Err(crate::error::HnmError::PerfectFit) };
        let m = minimize_scalar(f, 0.0, f64::NEG_INFINITY, 1e-12, Some(0.1), &mut Checkpoint::new(&Never)).unwrap();
        assert!(m.converged && (m.x - 2.0).abs() < 1e-12, "{m:?}");
    }

    #[test]
    fn finds_square_roots_to_machine_precision() {
        for &a in &[2.0_f64, 1e-6, 3e8] {
            let root = newton_root(|x| (x * x - a, 2.0 * x), 0.0, a.max(1.0), 0.5, 1.0);
            assert!((root.x - f64::sqrt(a)).abs() <= 4.0 * f64::EPSILON * f64::sqrt(a), "{a}: {}", root.x);
            // Without a known upper end: the steps towards it grow until they pass the root.
            let root = newton_root(|x| (x * x - a, 2.0 * x), 0.0, f64::INFINITY, 0.0, 1e-3);
            assert!((root.x - f64::sqrt(a)).abs() <= 4.0 * f64::EPSILON * f64::sqrt(a), "{a}: {}", root.x);
        }
    }

    #[test]
    fn decreasing_functions_and_bad_slopes_still_converge() {
        // φ(x) = 1 − x³ with a deliberately wrong slope: bisection carries it.
        let root = newton_root(|x| (1.0 - x * x * x, 1.0), 5.0, 0.0, 4.0, 1.0);
        assert!((root.x - 1.0).abs() < 1e-14 && root.converged);
    }

    #[test]
    fn nan_and_exhausted_iterations_are_not_converged() {
        // A NaN value beyond x = 0.5 is not a positive value: bisecting it as one would
        // "find" a root at 0.5, where φ = −0.5.
        let nan_beyond_half = |x: f64| if x > 0.5 { (f64::NAN, f64::NAN) } else { (x - 1.0, 1.0) };
        let root = newton_root(nan_beyond_half, 0.0, 2.0, 0.25, 1.0);
        assert!(!root.converged, "{root:?}");
        // φ < 0 everywhere with no upper end: the steps grow for ever and never bracket a root.
        let root = newton_root(|_| (-1.0, 0.0), 0.0, f64::INFINITY, 0.0, 1.0);
        assert!(!root.converged && root.steps == MAX_STEPS, "{root:?}");
    }
}
