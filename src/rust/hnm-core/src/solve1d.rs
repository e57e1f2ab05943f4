//! Safeguarded Newton iteration for a root of a function of one variable.
//!
//! Given φ with φ(lo) < 0 < φ(hi) and its derivative, each step takes the Newton update when
//! it stays inside the current bracket and bisects otherwise; the bracket shrinks around the
//! sign change every step, so the iteration always converges, and quadratically near a simple
//! root. It is used for the score equation of the fit and for the profile-likelihood limits.

/// The result of [`newton_root`]: the root and how many evaluations it took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Root {
    pub x: f64,
    pub steps: u32,
}

/// A root of `phi` (returning φ(x) and φ'(x)) inside `[lo, hi]`, where φ(lo) < 0 < φ(hi)
/// (or φ(lo) > 0 > φ(hi)), starting from `start`.
pub(crate) fn newton_root(phi: impl Fn(f64) -> (f64, f64), mut lo: f64, mut hi: f64, start: f64) -> Root {
    let increasing = phi(lo).0 < 0.0;
    let mut x = start.clamp(lo.min(hi), lo.max(hi));
    let mut steps = 0;
    while steps < 200 {
        let (value, slope) = phi(x);
        steps += 1;
        if value == 0.0 {
            break;
        }
        if (value < 0.0) == increasing {
            lo = x;
        } else {
            hi = x;
        }
        let newton = x - value / slope;
        let inside = newton.is_finite() && newton > lo.min(hi) && newton < lo.max(hi);
        let next = if inside { newton } else { 0.5 * (lo + hi) };
        let tolerance = 4.0 * f64::EPSILON * x.abs().max(f64::MIN_POSITIVE);
        let done = (next - x).abs() <= tolerance || (hi - lo).abs() <= tolerance;
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
            let root = newton_root(|x| (x * x - a, 2.0 * x), 0.0, a.max(1.0), 0.5);
            assert!((root.x - f64::sqrt(a)).abs() <= 4.0 * f64::EPSILON * f64::sqrt(a), "{a}: {}", root.x);
        }
    }

    #[test]
    fn decreasing_functions_and_bad_slopes_still_converge() {
        // φ(x) = 1 − x³ with a deliberately wrong slope: bisection carries it.
        let root = newton_root(|x| (1.0 - x * x * x, 1.0), 0.0, 5.0, 4.0);
        assert!((root.x - 1.0).abs() < 1e-14);
    }
}
