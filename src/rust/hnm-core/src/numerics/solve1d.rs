//! Safeguarded Newton iteration for a root of a function of one variable.
//!
//! Given φ with φ(neg) < 0 < φ(pos) and its derivative, each step takes the Newton update when
//! it stays inside the current bracket and bisects otherwise; the bracket shrinks around the
//! sign change every step, so the iteration always converges, and quadratically near a simple
//! root. It is used for the score equation of the fit and for the profile-likelihood limits.

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
