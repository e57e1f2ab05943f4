//! Safeguarded Newton iteration for a root of a function of one variable.
//!
//! Given φ with φ(neg) < 0 < φ(pos) and its derivative, each step takes the Newton update when
//! it stays inside the current bracket and bisects otherwise; the bracket shrinks around the
//! sign change every step, so the iteration always converges, and quadratically near a simple
//! root. It is used for the score equation of the fit and for the profile-likelihood limits.

/// The result of [`newton_root`]: the root and how many evaluations it took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Root {
    pub x: f64,
    pub steps: u32,
}

/// A Newton step this much smaller than x, after one at least 1000 times larger, shows the
/// quadratic regime: the next error is about its square, far below the rounding of x.
const QUADRATIC_STEP: f64 = 1e-9;

/// A root of `phi` (returning φ(x) and φ'(x)) between `neg` and `pos`, where φ(neg) < 0 <
/// φ(pos), starting from `start`; the ends are not evaluated. `pos` may be ±∞ when no point
/// with φ > 0 is known yet: steps towards it that Newton cannot give grow geometrically
/// from `step`. Each step takes the Newton update when it stays inside the bracket and
/// improves |φ| by half, and bisects otherwise. The iteration stops when a step is
/// below 4 ulp of x, the bracket is that narrow, or Newton's steps shrink quadratically
/// below 1e-9 |x| (the update is then taken without a further evaluation).
pub(crate) fn newton_root(phi: impl Fn(f64) -> (f64, f64), mut neg: f64, mut pos: f64, start: f64, step: f64) -> Root {
    let direction = if pos > neg { 1.0 } else { -1.0 };
    let origin = neg;
    let mut x = if (start - neg) * direction > 0.0 && (pos - start) * direction > 0.0 { start } else { neg };
    let (mut steps, mut previous_value, mut previous_newton) = (0, f64::INFINITY, f64::INFINITY);
    while steps < 200 {
        let (value, slope) = phi(x);
        steps += 1;
        if value == 0.0 {
            break;
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
            break;
        }
    }
    Root { x, steps }
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
        assert!((root.x - 1.0).abs() < 1e-14);
    }
}
