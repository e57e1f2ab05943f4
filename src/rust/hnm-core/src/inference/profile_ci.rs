//! Profile-likelihood confidence intervals for τ, σ and μ (ML and REML fits).
//!
//! For one parameter x held fixed, the profile deviance is dev(x) = min D over the others,
//! where D is −2ℓ (ML) or the REML criterion with μ held fixed (see [`crate::Criterion::deviance`]);
//! lme4's signed root is ζ(x) = sign(x − x̂) √(dev(x) − dev(x̂)), and the level-(1 − α)
//! interval is {x : |ζ(x)| ≤ z_{1−α/2}}. lme4 profiles a REML fit by silently refitting
//! it by ML; hnm profiles the REML criterion itself, so the intervals surround the REML
//! estimates. Each inner minimisation is one-dimensional: μ has
//! the closed form μ̂ = Σ (n_j/v_j) ȳ_j / Σ n_j/v_j given the variances, and the remaining
//! variance is found by Newton steps on its score with the Schur-complement curvature
//! H_vv − H_μv²/H_μμ (for REML too: μ̂ is the GLS mean there as well, since the REML term
//! log Σ n_j/v_j does not involve μ). By the envelope theorem d dev/dx = ∂D/∂x at the inner optimum,
//! so the limits are found by Newton steps too. Everything costs O(groups) per evaluation.
//! τ and σ are profiled on the SD scale, as lme4 does.

use std::cell::Cell;

use crate::data::stats::GroupStats;
use crate::error::{HnmError, Result};
use crate::inference::inner::{gls_score, FreeVariance};
use crate::model::one_way::fit::Fit;
use crate::model::one_way::likelihood::Params;
use crate::model::one_way::profiled_deviance::ProfiledDeviance;
use crate::numerics::interrupt::{Checkpoint, Polled};
use crate::numerics::memory::{with_capacity, POINTS};
use crate::numerics::solve1d::{newton_root, Root};

/// The parameter whose profile is taken, named as in lme4's `confint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileParameter {
    /// τ, lme4's `.sig01`.
    Tau,
    /// σ, lme4's `.sigma`.
    Sigma,
    /// μ, lme4's `(Intercept)`.
    Mu,
}

/// The profile likelihood (ML) or profile restricted likelihood (REML) of one parameter of
/// a fitted model.
///
/// Each inner minimisation starts where the previous one ended (the `warm` cell, updated
/// through `&self`), which makes the limit searches cheap. The inner optimum does not depend
/// on the start, but its last bits do: evaluating the same value after a different sequence
/// of calls can give results that differ at rounding level (about 1e-15 relative), never more.
/// Use a fresh `Profile` when bit-for-bit reproducible values are needed.
#[derive(Debug, Clone)]
pub struct Profile<'a> {
    stats: &'a GroupStats,
    fit: &'a Fit,
    parameter: ProfileParameter,
    /// The last inner optimum (σ² for τ, τ² for σ, λ for μ): the next inner solve starts
    /// there, as the limit searches move in small steps.
    warm: Cell<Option<f64>>,
}

/// The profile deviance at one value and everything the inner optimisation found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProfilePointFull {
    /// The value the parameter is held at.
    pub value: f64,
    /// Minimum of the fit's criterion D (−2ℓ or the REML criterion) with the parameter held at `value`.
    pub deviance: f64,
    /// d deviance / d value.
    pub slope: f64,
    /// ζ = sign(value − estimate) √(deviance − deviance at the estimate).
    pub zeta: f64,
    /// The parameters at the inner optimum.
    pub params: Params,
}

impl<'a> Profile<'a> {
    /// The profile of `parameter` for a fit of `stats`, under the fit's criterion.
    ///
    /// # Example
    /// ```
    /// use hnm_core::{fit, Checkpoint, Criterion, GroupStats, Never, Profile, ProfileParameter};
    /// let s = GroupStats::new(vec![3.0; 4], vec![0.0, 2.0, 1.0, 4.0], vec![2.0, 3.0, 1.0, 2.5]).unwrap();
    /// let f = fit(&s, Criterion::Ml).unwrap();
    /// let p = Profile::new(&s, &f, ProfileParameter::Sigma);
    /// let mut checkpoint = Checkpoint::new(&Never);
    /// let (lower, upper) = p.interval(1.959963984540054, &mut checkpoint).unwrap();
    /// assert!(lower < f.params.sigma2.sqrt() && f.params.sigma2.sqrt() < upper);
    /// assert!((p.at(upper, &mut checkpoint).unwrap().zeta - 1.959963984540054).abs() < 1e-9);
    /// ```
    pub fn new(stats: &'a GroupStats, fit: &'a Fit, parameter: ProfileParameter) -> Self {
        Profile { stats, fit, parameter, warm: Cell::new(None) }
    }

    /// The estimate of the parameter on its profiling scale (SD for τ and σ).
    pub fn estimate(&self) -> f64 {
        let p = self.fit.params;
        match self.parameter {
            ProfileParameter::Tau => p.tau2.sqrt(),
            ProfileParameter::Sigma => p.sigma2.sqrt(),
            ProfileParameter::Mu => p.mu,
        }
    }

    /// The profile deviance, its slope and ζ at `value` (τ ≥ 0, σ > 0).
    ///
    /// # Errors
    /// `Optimizer` when the inner Newton iterations stop without solving their score equation;
    /// `Interrupted` when `checkpoint` reports a user interrupt.
    pub fn at(&self, value: f64, checkpoint: &mut Checkpoint<'_>) -> Result<ProfilePointFull> {
        let polled = Polled::new(checkpoint);
        let point = self.at_polled(value, &polled);
        polled.status()?;
        point
    }

    /// [`Profile::at`], each evaluation of the inner problem asking `polled` first.
    fn at_polled(&self, value: f64, polled: &Polled) -> Result<ProfilePointFull> {
        let params = match self.parameter {
            ProfileParameter::Tau => self.inner_sigma2(value * value, polled)?,
            ProfileParameter::Sigma => self.inner_tau2(value * value, polled)?,
            ProfileParameter::Mu => self.inner_variances(value, polled)?,
        };
        let criterion = self.fit.criterion;
        let g = criterion.deviance_gradient(self.stats, &params);
        let slope = match self.parameter {
            ProfileParameter::Tau => g[2] * 2.0 * value,
            ProfileParameter::Sigma => g[1] * 2.0 * value,
            ProfileParameter::Mu => g[0],
        };
        let deviance = criterion.deviance(self.stats, &params);
        let excess = (deviance - self.fit.deviance).max(0.0);
        let zeta = (value - self.estimate()).signum() * excess.sqrt();
        Ok(ProfilePointFull { value, deviance, slope, zeta, params })
    }

    /// The limits {x : |ζ(x)| ≤ z} of the interval with critical value `z` = Φ⁻¹(1 − α/2)
    /// (1.959963984540054 for 95%). A τ interval whose lower limit would be below 0 starts
    /// at exactly 0.
    ///
    /// # Errors
    /// `InvalidArgument` (argument `z`) when `z` is not a positive finite number; `Optimizer`
    /// when the Newton iterations for a limit or an inner optimum do not converge;
    /// `Interrupted` when `checkpoint` reports a user interrupt.
    pub fn interval(&self, z: f64, checkpoint: &mut Checkpoint<'_>) -> Result<(f64, f64)> {
        check_positive(z, "z")?;
        let polled = Polled::new(checkpoint);
        let limits = self.limit(-z, &polled).and_then(|lower| Ok((lower, self.limit(z, &polled)?)));
        polled.status()?;
        limits
    }

    /// The profile at 2·`steps` + 1 values ordered by value: the estimate and `steps` values
    /// evenly spaced on each side of it out to the limits where |ζ| = ζ_max, which are found
    /// by Newton steps ([`Profile::interval`]); lme4's `profile()` traces the same curve by
    /// stepping and interpolating. Each point costs one inner optimisation. For τ the
    /// negative side ends at τ = 0 when ζ(0) > −ζ_max, and is empty when τ̂ = 0.
    ///
    /// # Errors
    /// `InvalidArgument` when `zeta_max` is not a positive finite number or `steps` is 0;
    /// `TooLarge` when `steps` points do not fit in memory; the `Optimizer` and `Interrupted`
    /// errors of [`Profile::interval`] and [`Profile::at`].
    ///
    /// # Example
    /// ```
    /// use hnm_core::{fit, Checkpoint, Criterion, GroupStats, Never, Profile, ProfileParameter};
    /// let s = GroupStats::new(vec![3.0; 4], vec![0.0, 2.0, 1.0, 4.0], vec![2.0, 3.0, 1.0, 2.5]).unwrap();
    /// let f = fit(&s, Criterion::Reml).unwrap();
    /// let grid = Profile::new(&s, &f, ProfileParameter::Mu).zeta_grid(2.0, 4, &mut Checkpoint::new(&Never)).unwrap();
    /// assert_eq!(grid.len(), 9);
    /// assert!((grid[0].zeta + 2.0).abs() < 1e-9 && (grid[8].zeta - 2.0).abs() < 1e-9);
    /// assert_eq!(grid[4].value, f.params.mu);
    /// assert!(grid.windows(2).all(|w| w[0].zeta < w[1].zeta));
    /// ```
    pub fn zeta_grid(&self, zeta_max: f64, steps: usize, checkpoint: &mut Checkpoint<'_>) -> Result<Vec<ProfilePointFull>> {
        check_positive(zeta_max, "zeta_max")?;
        if steps == 0 {
            return Err(HnmError::InvalidArgument { argument: "steps", reason: "must be at least 1" });
        }
        let mut points = with_capacity(&[steps.saturating_mul(2).saturating_add(1)], POINTS)?;
        let (lower, upper) = self.interval(zeta_max, checkpoint)?;
        let estimate = self.estimate();
        let fraction = |k: usize| k as f64 / steps as f64;
        let below = (0..steps).filter(|_| lower < estimate).map(|k| estimate - (estimate - lower) * fraction(steps - k));
        let above = (1..=steps).map(|k| estimate + (upper - estimate) * fraction(k));
        for x in below.chain(std::iter::once(estimate)).chain(above) {
            points.push(self.at(x, checkpoint)?);
        }
        Ok(points)
    }

    /// The value on the side of sign(z) where ζ = z: Newton steps on dev(x) − dev(x̂) − z²
    /// from one step beyond the estimate, towards ±∞ or, for τ and σ below the estimate,
    /// towards 0 (where dev → ∞ for σ; τ stops at 0 when ζ(0) > z).
    fn limit(&self, z: f64, polled: &Polled) -> Result<f64> {
        let estimate = self.estimate();
        let target = z * z;
        // An inner failure becomes a NaN excess, which stops the Newton iterations unconverged.
        let excess = |x: f64| match self.at_polled(x, polled) {
            Ok(point) => (point.deviance - self.fit.deviance - target, point.slope),
            Err(_) => (f64::NAN, f64::NAN),
        };
        let step = self.initial_step();
        let towards_zero = z < 0.0 && self.parameter != ProfileParameter::Mu;
        if towards_zero && self.parameter == ProfileParameter::Tau && excess(0.0).0 <= 0.0 {
            return Ok(0.0);
        }
        let far = if towards_zero { 0.0 } else { z.signum() * f64::INFINITY };
        let start = if towards_zero { 0.5 * estimate } else { estimate + z.signum() * step };
        converged(newton_root(excess, estimate, far, start, step), "the profile-likelihood limit", polled)
    }

    /// A first step away from the estimate, about one standard error.
    fn initial_step(&self) -> f64 {
        let p = self.fit.params;
        match self.parameter {
            ProfileParameter::Mu => self.fit.se_mu,
            ProfileParameter::Sigma => 0.5 * p.sigma2.sqrt() / self.stats.n_obs().sqrt(),
            ProfileParameter::Tau => (p.tau2.sqrt()).max(p.sigma2.sqrt() / self.stats.n_obs().sqrt()) * 0.5,
        }
    }

    /// τ² fixed: minimise over σ² (μ in closed form); the score tends to −∞ as σ² → 0.
    fn inner_sigma2(&self, tau2: f64, polled: &Polled) -> Result<Params> {
        let at = |sigma2: f64| self.polled(polled, || gls_score(self.stats, self.fit.criterion, sigma2, tau2, FreeVariance::Sigma2));
        let start = self.warm_start(self.fit.params.sigma2);
        let sigma2 = self.remember(converged(newton_root(at, 0.0, f64::INFINITY, start, start), "sigma^2 given tau", polled)?);
        Ok(with_gls_mean(self.stats, sigma2, tau2))
    }

    /// σ² fixed: minimise over τ² ≥ 0 (μ in closed form).
    fn inner_tau2(&self, sigma2: f64, polled: &Polled) -> Result<Params> {
        let at = |tau2: f64| self.polled(polled, || gls_score(self.stats, self.fit.criterion, sigma2, tau2, FreeVariance::Tau2));
        if at(0.0).0 >= 0.0 {
            return Ok(with_gls_mean(self.stats, sigma2, 0.0));
        }
        polled.status()?;
        let start = self.warm_start(self.fit.params.tau2).max(sigma2 / self.stats.n_obs());
        let tau2 = self.remember(converged(newton_root(at, 0.0, f64::INFINITY, start, start), "tau^2 given sigma", polled)?);
        Ok(with_gls_mean(self.stats, sigma2, tau2))
    }

    /// `evaluate()` (a score and its slope, one pass over the groups) unless `polled` reports
    /// a user interrupt, NaN then: the root finder stops, and the caller reports `Interrupted`.
    fn polled(&self, polled: &Polled, evaluate: impl FnOnce() -> (f64, f64)) -> (f64, f64) {
        if polled.stop_after(self.stats.len()) {
            (f64::NAN, f64::NAN)
        } else {
            evaluate()
        }
    }

    /// Where the next inner solve starts: the last interior inner optimum, else `estimate`.
    fn warm_start(&self, estimate: f64) -> f64 {
        self.warm.get().unwrap_or(estimate)
    }

    /// Keeps an interior inner optimum `x` as the next start, and returns it.
    fn remember(&self, x: f64) -> f64 {
        if x > 0.0 && x.is_finite() {
            self.warm.set(Some(x));
        }
        x
    }

    /// μ fixed: minimise over λ = τ²/σ² ≥ 0 with σ² profiled out.
    fn inner_variances(&self, mu: f64, polled: &Polled) -> Result<Params> {
        let deviance = ProfiledDeviance::new(self.stats, self.fit.criterion);
        let score = |lambda: f64| self.polled(polled, || deviance.score_fixed_mu(lambda, mu));
        let lambda = if score(0.0).0 >= 0.0 {
            0.0
        } else {
            polled.status()?;
            let start = self.warm_start(self.fit.theta * self.fit.theta);
            let root = newton_root(score, 0.0, f64::INFINITY, start, start.max(1e-3));
            self.remember(converged(root, "tau^2/sigma^2 given mu", polled)?)
        };
        let point = deviance.at_fixed_mu(lambda, mu);
        Ok(Params { mu, sigma2: point.sigma2, tau2: lambda * point.sigma2 })
    }
}

/// Ok when `value` is a positive finite number.
///
/// # Errors
/// `InvalidArgument` naming `argument` otherwise.
fn check_positive(value: f64, argument: &'static str) -> Result<()> {
    if value > 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(HnmError::InvalidArgument { argument, reason: "must be a positive finite number" })
    }
}

/// The root's x when the Newton iterations converged.
///
/// # Errors
/// `Interrupted` when `polled` reported a user interrupt; `Optimizer` naming `what` was
/// being solved for when the iterations did not converge.
pub(crate) fn converged(root: Root, what: &str, polled: &Polled) -> Result<f64> {
    polled.status()?;
    if root.converged {
        Ok(root.x)
    } else {
        Err(HnmError::Optimizer(format!("Newton's method could not find {what} for the profile (it stopped after {} steps at {:e})", root.steps, root.x)))
    }
}

/// (μ̂, σ², τ²) with μ̂ the GLS mean Σ (n_j/v_j) ȳ_j / Σ n_j/v_j.
fn with_gls_mean(stats: &GroupStats, sigma2: f64, tau2: f64) -> Params {
    let mu = stats.centered_weighted_mean_by(|n| n / (sigma2 + n * tau2));
    Params { mu: stats.center() + mu, sigma2, tau2 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{fit, Criterion, Never};

    #[test]
    fn bad_critical_values_name_the_argument_at_fault() {
        let s = GroupStats::new(vec![3.0; 4], vec![0.0, 2.0, 1.0, 4.0], vec![2.0, 3.0, 1.0, 2.5]).unwrap();
        let f = fit(&s, Criterion::Ml).unwrap();
        let p = Profile::new(&s, &f, ProfileParameter::Tau);
        let reason = "must be a positive finite number";
        let checkpoint = &mut Checkpoint::new(&Never);
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(p.interval(bad, checkpoint), Err(HnmError::InvalidArgument { argument: "z", reason }));
            assert_eq!(p.zeta_grid(bad, 3, checkpoint).unwrap_err(), HnmError::InvalidArgument { argument: "zeta_max", reason });
        }
        assert!(matches!(p.zeta_grid(2.0, 0, checkpoint), Err(HnmError::InvalidArgument { argument: "steps", .. })));
        assert_eq!(
            p.zeta_grid(2.0, usize::MAX, checkpoint).unwrap_err(),
            HnmError::TooLarge { what: POINTS, bytes: u128::from(u64::MAX) * std::mem::size_of::<ProfilePointFull>() as u128 }
        );
    }

    #[test]
    fn an_interrupt_stops_a_long_profile() {
        use std::time::{Duration, Instant};
        struct After(Instant);
        impl crate::Interrupt for After {
            fn requested(&self) -> bool {
                self.0.elapsed() >= Duration::from_millis(50)
            }
        }
        // 10^4 groups and 10^5 points a side: minutes of work, stopped within the interval.
        let groups = 10_000;
        let means: Vec<f64> = (0..groups).map(|j| (j % 13) as f64 * 0.1).collect();
        let s = GroupStats::new(vec![5.0; groups], means, vec![4.0; groups]).unwrap();
        let f = fit(&s, Criterion::Ml).unwrap();
        let interrupt = After(Instant::now());
        let result = Profile::new(&s, &f, ProfileParameter::Sigma).zeta_grid(2.0, 100_000, &mut Checkpoint::new(&interrupt));
        let took = interrupt.0.elapsed();
        assert_eq!(result.unwrap_err(), HnmError::Interrupted);
        assert!(took < Duration::from_millis(50) + 2 * Checkpoint::INTERVAL + Duration::from_millis(50), "{took:?}");
    }
}
