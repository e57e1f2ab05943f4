//! Exact rescaling by a power of two, so that no computation depends on the data's units.
//!
//! The likelihood involves σ⁶ and SSW/σ⁴, and its Hessian entries scale like c⁻⁴ when y is
//! multiplied by c: at c = 10⁻¹⁵⁰ they overflow, at c = 10¹⁰⁰ they underflow. Every
//! computation is therefore done on data divided by a *unit* c = 2ᵏ close to their spread,
//! where all quantities are O(1), and the results are mapped back: μ = center + c μ̃,
//! σ² = c² σ̃², −ℓ = −ℓ̃ + N log c, ∂/∂μ = c⁻¹ ∂/∂μ̃, ∂/∂σ² = c⁻² ∂/∂σ̃². Multiplying by a power
//! of two is exact unless the result leaves the normal range, so the scaled problem is the
//! same problem, not an approximation of it.

use crate::data::stats::GroupStats;
use crate::error::Result;
use crate::numerics::memory::{collected, copied};

/// A power of two c = 2ᵏ used as the unit of the data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Unit {
    exponent: i32,
}

impl Unit {
    /// The unit 1 (no rescaling).
    pub const ONE: Unit = Unit { exponent: 0 };

    /// The power of two nearest to `spread` (in log scale); 1 if `spread` is 0 or not finite.
    ///
    /// # Example
    /// ```
    /// use hnm_core::Unit;
    /// assert_eq!(Unit::near(1e-150).value(), 2f64.powi(-498));
    /// assert_eq!(Unit::near(0.0).value(), 1.0);
    /// ```
    pub fn near(spread: f64) -> Unit {
        if !(spread.is_finite() && spread > 0.0) {
            return Unit::ONE;
        }
        Unit { exponent: spread.log2().round().clamp(-1022.0, 1023.0) as i32 }
    }

    /// The unit for a data set: near the largest of √SSW_j and |ȳ_j − center| over the
    /// groups, so that every scaled statistic is at most about 1 and none overflows.
    ///
    /// # Example
    /// ```
    /// use hnm_core::{GroupStats, Unit};
    /// let s = GroupStats::new(vec![2.0, 2.0], vec![0.0, 3e-200], vec![4e-400, 1e-400]).unwrap();
    /// assert!((Unit::of_data(&s).value() / 3e-200 - 1.0).abs() < 0.5);
    /// ```
    pub fn of_data(stats: &GroupStats) -> Unit {
        let spread = stats
            .n()
            .iter()
            .zip(stats.centered_mean())
            .zip(stats.ssw())
            .filter(|((&n, _), _)| n > 0.0)
            .map(|((_, &m), &s)| m.abs().max(s.sqrt()))
            .fold(0.0, f64::max);
        Unit::near(spread)
    }

    /// c = 2ᵏ.
    pub fn value(&self) -> f64 {
        pow2(self.exponent)
    }

    /// x / cᵖ, exact unless the result underflows or overflows.
    ///
    /// # Example
    /// ```
    /// use hnm_core::Unit;
    /// let unit = Unit::near(1e100);
    /// let sigma2 = 3e200;
    /// let scaled = unit.to_unit(sigma2, 2); // σ² in units of c²
    /// assert!(scaled > 0.1 && scaled < 10.0);
    /// assert_eq!(unit.from_unit(scaled, 2), sigma2);
    /// assert_eq!(unit.ln(), unit.value().ln());
    /// ```
    pub fn to_unit(&self, x: f64, power: i32) -> f64 {
        times_pow2(x, -power * self.exponent)
    }

    /// x · cᵖ, exact unless the result underflows or overflows: a value of dimension p
    /// (p = 1 for locations and SDs, 2 for variances) back in the data's units.
    ///
    /// # Example
    /// ```
    /// use hnm_core::Unit;
    /// let unit = Unit::near(1e-200);
    /// assert_eq!(unit.from_unit(3.0, 1), 3.0 * unit.value());
    /// assert_eq!(unit.from_unit(1.0, 2), unit.value() * unit.value());
    /// ```
    pub fn from_unit(&self, x: f64, power: i32) -> f64 {
        times_pow2(x, power * self.exponent)
    }

    /// log c = k log 2 for c = 2ᵏ, exact where c itself would under- or overflow a product.
    ///
    /// # Example
    /// ```
    /// use hnm_core::Unit;
    /// let unit = Unit::near(1e-150);
    /// assert!((unit.ln() - unit.value().ln()).abs() < 1e-12);
    /// ```
    pub fn ln(&self) -> f64 {
        f64::from(self.exponent) * std::f64::consts::LN_2
    }

    /// The statistics in this unit, centred at 0: means (ȳ_j − center)/c and SSW_j/c².
    /// The original `center` is not kept: add it back to a location estimate.
    ///
    /// # Errors
    /// `NotFinite` if a scaled statistic overflows (data spanning more than the double range);
    /// `TooLarge` when the scaled statistics do not fit in memory.
    ///
    /// # Example
    /// ```
    /// use hnm_core::{GroupStats, Unit};
    /// let s = GroupStats::centered(1e12, vec![2.0, 2.0], vec![0.0, 2e-100], vec![4e-200, 0.0]).unwrap();
    /// let unit = Unit::of_data(&s);
    /// let scaled = unit.scale(&s).unwrap();
    /// assert_eq!(scaled.center(), 0.0);
    /// assert_eq!(unit.from_unit(scaled.ssw()[0], 2), 4e-200);
    /// ```
    pub fn scale(&self, stats: &GroupStats) -> Result<GroupStats> {
        const SCALED: &str = "the group statistics in the fit's unit";
        GroupStats::centered(
            0.0,
            copied(stats.n(), SCALED)?,
            collected(stats.centered_mean().iter().map(|&m| self.to_unit(m, 1)), SCALED)?,
            collected(stats.ssw().iter().map(|&s| self.to_unit(s, 2)), SCALED)?,
        )
    }
}

/// 2ᵉ for e in the normal exponent range −1022..=1023.
fn pow2(e: i32) -> f64 {
    f64::from_bits(((e.clamp(-1022, 1023) + 1023) as u64) << 52)
}

/// x · 2ᵉ in steps that each stay within the exponent range, so the result is exact
/// whenever it is a normal number (each intermediate lies between x and the result).
fn times_pow2(mut x: f64, mut e: i32) -> f64 {
    while e != 0 {
        let step = e.clamp(-1000, 1000);
        x *= pow2(step);
        e -= step;
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn powers_of_two_round_trip_exactly() {
        for &x in &[1.0, 0.1, 3e-150, 7e100, 1e300, 2.5e-300] {
            for &spread in &[1e-300, 1e-150, 1.0, 1e100, 1e300] {
                let unit = Unit::near(spread);
                let scaled = unit.to_unit(x, 1);
                // Exact whenever the scaled value is a normal number.
                if scaled.is_normal() {
                    assert_eq!(unit.from_unit(scaled, 1), x, "{x} in {spread}");
                    assert_eq!(scaled * unit.value(), x, "{x} in {spread}");
                }
            }
        }
        assert_eq!(times_pow2(1.0, -2000), 0.0);
        assert_eq!(times_pow2(1e-300, 1500), 1e-300 * 2f64.powi(1000) * 2f64.powi(500));
    }
}
