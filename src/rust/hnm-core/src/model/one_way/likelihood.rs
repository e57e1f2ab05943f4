//! The negative log-likelihood of (μ, σ², τ²) and its analytic derivatives.
//!
//! Group j contributes, with v_j = σ² + n_j τ² and d_j = ȳ_j − μ,
//!
//! f_j = ½ [n_j log 2π + (n_j − 1) log σ² + log v_j + SSW_j/σ² + n_j d_j²/v_j],
//!
//! which is −log N(y_j; μ1, σ²I + τ²11ᵀ) written with the determinant
//! σ^{2(n_j−1)} v_j and the inverse (I − τ²/v_j 11ᵀ)/σ²: no n_j × n_j matrix is formed.

use crate::data::stats::GroupStats;
use crate::data::unit::Unit;
use crate::error::{HnmError, Result};

const LOG_2PI: f64 = 1.837_877_066_409_345_5;

/// The parameters of the one-way model on the variance scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Grand mean μ.
    pub mu: f64,
    /// Within-group (residual) variance σ².
    pub sigma2: f64,
    /// Between-group variance τ².
    pub tau2: f64,
}

impl Params {
    /// Reads `(mu, sigma2, tau2)` from a slice, as R passes them.
    ///
    /// # Errors
    /// `ParameterLength` when `values` does not have 3 elements; `ParameterMissing` when one is NaN.
    ///
    /// # Example
    /// ```
    /// let p = hnm_core::Params::from_slice(&[16.3, 1.787, 0.31], "mus2t2").unwrap();
    /// assert_eq!(p.tau2, 0.31);
    /// ```
    pub fn from_slice(values: &[f64], argument: &'static str) -> Result<Self> {
        if values.len() != 3 {
            return Err(HnmError::ParameterLength { argument, expected: 3, found: values.len() });
        }
        if let Some(index) = values.iter().position(|v| v.is_nan()) {
            return Err(HnmError::ParameterMissing { argument, index });
        }
        Ok(Params { mu: values[0], sigma2: values[1], tau2: values[2] })
    }

    /// True when σ² > 0, τ² ≥ 0 up to rounding, and all three are finite.
    ///
    /// A τ² below 0 by no more than [`TAU2_ROUNDING`]·σ² counts as inside: L-BFGS-B's
    /// projection onto the bound τ² = 0 lands there (the lecture's `optim` run evaluates
    /// τ² = −1.1e-16), and the likelihood is well defined at such points because every
    /// σ² + n_j τ² stays positive.
    pub fn in_space(&self) -> bool {
        self.mu.is_finite() && self.sigma2.is_finite() && self.tau2.is_finite() && self.sigma2 > 0.0 && self.tau2 >= -TAU2_ROUNDING * self.sigma2
    }
}

/// Relative rounding tolerance below τ² = 0 accepted by [`Params::in_space`].
pub const TAU2_ROUNDING: f64 = 1e-10;

/// Negative log-likelihood −ℓ(μ, σ², τ²); `+∞` outside the parameter space.
///
/// Computed in the unit c = 2ᵏ nearest σ (see [`crate::Unit`]) and mapped back with
/// −ℓ = −ℓ̃ + N log c, so it is accurate for data and parameters at any representable scale.
///
/// # Example
/// ```
/// use hnm_core::{GroupStats, Params, neg_log_lik};
/// // One group of two observations with τ² = 0 is two iid N(μ, σ²) draws.
/// let s = GroupStats::new(vec![2.0], vec![0.0], vec![2.0]).unwrap();
/// let f = neg_log_lik(&s, &Params { mu: 0.0, sigma2: 1.0, tau2: 0.0 });
/// assert!((f - (1.837877066409345 + 1.0)).abs() < 1e-14);
/// ```
pub fn neg_log_lik(stats: &GroupStats, p: &Params) -> f64 {
    if !p.in_space() {
        return f64::INFINITY;
    }
    let scaled = InUnit::new(stats, p);
    let log_s2 = scaled.sigma2.ln();
    let total: f64 = scaled
        .groups()
        .map(|(n, d, ssw)| {
            let v = scaled.sigma2 + n * scaled.tau2;
            n * LOG_2PI + (n - 1.0) * log_s2 + v.ln() + ssw / scaled.sigma2 + n * d * d / v
        })
        .sum();
    0.5 * total + stats.n_obs() * scaled.unit.ln()
}

/// Gradient of [`neg_log_lik`] with respect to (μ, σ², τ²); NaN outside the parameter space.
///
/// ∂f/∂μ = −Σ n_j d_j/v_j,
/// ∂f/∂σ² = ½ Σ [(n_j−1)/σ² + 1/v_j − SSW_j/σ⁴ − n_j d_j²/v_j²],
/// ∂f/∂τ² = ½ Σ [n_j/v_j − n_j² d_j²/v_j²],
/// computed in the unit nearest σ and mapped back (∂/∂μ = c⁻¹ ∂/∂μ̃, ∂/∂σ² = c⁻² ∂/∂σ̃²).
pub fn gradient(stats: &GroupStats, p: &Params) -> [f64; 3] {
    if !p.in_space() {
        return [f64::NAN; 3];
    }
    let scaled = InUnit::new(stats, p);
    let s2 = scaled.sigma2;
    let mut g = [0.0; 3];
    for (n, d, ssw) in scaled.groups() {
        let v = s2 + n * scaled.tau2;
        let r = n * d / v; // n_j d_j / v_j
        g[0] -= r;
        g[1] += 0.5 * ((n - 1.0) / s2 + 1.0 / v - ssw / (s2 * s2) - r * d / v);
        g[2] += 0.5 * (n / v - r * r);
    }
    [0, 1, 2].map(|a| scaled.unit.to_unit(g[a], POWER[a]))
}

/// Hessian of [`neg_log_lik`] with respect to (μ, σ², τ²), row-major; NaN outside the space.
///
/// With r_j = n_j d_j / v_j:
/// H_μμ = Σ n_j/v_j, H_μσ² = Σ r_j/v_j, H_μτ² = Σ n_j r_j/v_j,
/// H_σ²σ² = ½ Σ [−(n_j−1)/σ⁴ − 1/v_j² + 2 SSW_j/σ⁶ + 2 n_j d_j²/v_j³],
/// H_σ²τ² = ½ Σ [−n_j/v_j² + 2 n_j r_j d_j/v_j²],
/// H_τ²τ² = ½ Σ [−n_j²/v_j² + 2 n_j² r_j d_j/v_j²],
/// computed in the unit nearest σ and mapped back (H_ab = c^−(p_a+p_b) H̃_ab with p = 1, 2, 2).
/// Entries outside the double range come back as ±∞ or 0, as the exact values would round.
pub fn hessian(stats: &GroupStats, p: &Params) -> [[f64; 3]; 3] {
    if !p.in_space() {
        return [[f64::NAN; 3]; 3];
    }
    let scaled = InUnit::new(stats, p);
    scaled_to_original(&scaled.hessian(), scaled.unit)
}

/// The Hessian H̃ in a unit mapped to original units.
pub(crate) fn scaled_to_original(h: &[[f64; 3]; 3], unit: Unit) -> [[f64; 3]; 3] {
    let mut out = [[0.0; 3]; 3];
    for a in 0..3 {
        for b in 0..3 {
            out[a][b] = unit.to_unit(h[a][b], POWER[a] + POWER[b]);
        }
    }
    out
}

/// The power of the unit in each parameter: μ is in units of c, σ² and τ² in c².
pub(crate) const POWER: [i32; 3] = [1, 2, 2];

/// Statistics and parameters expressed in a unit c: d_j/c, SSW_j/c², σ²/c², τ²/c².
struct InUnit<'a> {
    stats: &'a GroupStats,
    unit: Unit,
    mu: f64,
    sigma2: f64,
    tau2: f64,
}

impl<'a> InUnit<'a> {
    /// The unit nearest σ, where σ̃² ≈ 1.
    fn new(stats: &'a GroupStats, p: &Params) -> Self {
        let unit = Unit::near(p.sigma2.sqrt());
        InUnit { stats, unit, mu: p.mu - stats.center(), sigma2: unit.to_unit(p.sigma2, 2), tau2: unit.to_unit(p.tau2, 2) }
    }

    /// (n_j, d_j/c, SSW_j/c²) over the non-empty groups, d_j = ȳ_j − μ.
    fn groups(&self) -> impl Iterator<Item = (f64, f64, f64)> + '_ {
        groups(self.stats).map(|(n, m, s)| (n, self.unit.to_unit(m - self.mu, 1), self.unit.to_unit(s, 2)))
    }

    fn hessian(&self) -> [[f64; 3]; 3] {
        let s2 = self.sigma2;
        let mut h = [[0.0; 3]; 3];
        for (n, d, ssw) in self.groups() {
            let v = s2 + n * self.tau2;
            let v2 = v * v;
            let r = n * d / v;
            let q = r * d / v2; // n_j d_j² / v_j³
            h[0][0] += n / v;
            h[0][1] += r / v;
            h[0][2] += n * r / v;
            h[1][1] += 0.5 * (-(n - 1.0) / (s2 * s2) - 1.0 / v2 + 2.0 * ssw / (s2 * s2 * s2) + 2.0 * q);
            h[1][2] += 0.5 * (-n / v2 + 2.0 * n * q);
            h[2][2] += 0.5 * (-n * n / v2 + 2.0 * n * n * q);
        }
        h[1][0] = h[0][1];
        h[2][0] = h[0][2];
        h[2][1] = h[1][2];
        h
    }
}

/// Iterates over the non-empty groups as (n_j, ȳ_j − c, SSW_j).
pub(crate) fn groups(stats: &GroupStats) -> impl Iterator<Item = (f64, f64, f64)> + '_ {
    stats.n().iter().zip(stats.centered_mean()).zip(stats.ssw()).filter(|((&n, _), _)| n > 0.0).map(|((&n, &m), &s)| (n, m, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wheat_like() -> GroupStats {
        GroupStats::new(vec![3.0, 5.0, 2.0], vec![1.0, 2.5, -0.5], vec![2.0, 4.5, 0.3]).unwrap()
    }

    #[test]
    fn outside_the_space_is_infinite() {
        let s = wheat_like();
        assert_eq!(neg_log_lik(&s, &Params { mu: 0.0, sigma2: 0.0, tau2: 1.0 }), f64::INFINITY);
        assert_eq!(neg_log_lik(&s, &Params { mu: 0.0, sigma2: 1.0, tau2: -1e-9 }), f64::INFINITY);
        assert!(neg_log_lik(&s, &Params { mu: 0.0, sigma2: 1.0, tau2: -1.1e-16 }).is_finite());
        assert!(gradient(&s, &Params { mu: 0.0, sigma2: -1.0, tau2: 1.0 })[0].is_nan());
    }

    #[test]
    fn derivatives_match_central_differences() {
        let s = wheat_like();
        let p = Params { mu: 1.3, sigma2: 0.9, tau2: 0.7 };
        let as_vec = |p: &Params| [p.mu, p.sigma2, p.tau2];
        let from = |x: [f64; 3]| Params { mu: x[0], sigma2: x[1], tau2: x[2] };
        let g = gradient(&s, &p);
        let h = hessian(&s, &p);
        for k in 0..3 {
            let step = 1e-5;
            let (mut up, mut down) = (as_vec(&p), as_vec(&p));
            up[k] += step;
            down[k] -= step;
            let fd = (neg_log_lik(&s, &from(up)) - neg_log_lik(&s, &from(down))) / (2.0 * step);
            assert!((fd - g[k]).abs() < 1e-8, "gradient {k}: {fd} vs {}", g[k]);
            let (gu, gd) = (gradient(&s, &from(up)), gradient(&s, &from(down)));
            for l in 0..3 {
                let fd2 = (gu[l] - gd[l]) / (2.0 * step);
                assert!((fd2 - h[k][l]).abs() < 1e-7, "hessian {k}{l}: {fd2} vs {}", h[k][l]);
            }
        }
    }
}
