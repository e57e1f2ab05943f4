//! Maximum-likelihood and REML fits of the one-way model.
//!
//! μ and σ² are profiled out analytically (see [`crate::profile`]), leaving the relative
//! standard deviation θ = τ/σ ≥ 0. Brent's method (argmin's `BrentOpt`) minimises D(θ²) on
//! a bracket [0, θ_max]; then safeguarded Newton steps on the profiled score D'(λ) = 0,
//! λ = θ², using the analytic D''(λ), take the estimate to machine precision. When
//! D'(0) ≥ 0 and no interior point is lower, the estimate is exactly λ = 0 (τ² = 0).

use argmin::core::{CostFunction, Executor};
use argmin::solver::brent::BrentOpt;
use faer::linalg::solvers::DenseSolveCore;
use faer::Mat;

use crate::anova::Anova;
use crate::error::{HnmError, Result};
use crate::likelihood::{gradient, hessian, scaled_to_original, Params, POWER};
use crate::profile::{Criterion, ProfilePoint, ProfiledDeviance};
use crate::solve1d::{expand_until, newton_root};
use crate::stats::GroupStats;
use crate::unit::Unit;

/// How the optimiser got to the estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Convergence {
    /// Iterations of Brent's method on θ.
    pub brent_iterations: u64,
    /// Newton steps polishing λ (0 on the boundary).
    pub newton_iterations: u32,
    /// The profiled score D'(λ̂); 0 up to rounding in the interior, ≥ 0 on the boundary.
    pub profiled_score: f64,
    /// Euclidean norm of the gradient of −ℓ in (μ, σ², τ²) projected on the parameter space
    /// (a positive τ²-component at τ² = 0 is a KKT multiplier, not a defect).
    /// For REML fits, the profiled score scaled to the τ² axis, |D'(λ̂)|/(2σ̂²).
    pub gradient_norm: f64,
    /// True when τ̂² = 0 exactly (a singular fit).
    pub on_boundary: bool,
}

/// The result of a fit.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    /// ML or REML.
    pub criterion: Criterion,
    /// Estimates (μ̂, σ̂², τ̂²).
    pub params: Params,
    /// θ̂ = τ̂/σ̂, lme4's `getME(fit, "theta")`.
    pub theta: f64,
    /// −2ℓ at the estimate (ML), or the REML criterion (REML).
    pub deviance: f64,
    /// Standard error of μ̂: sqrt(σ̂² / Σ n_j/(1 + n_j λ̂)), as lme4's `vcov`.
    pub se_mu: f64,
    /// Hessian of −ℓ (ML) in (μ, σ², τ²) at the estimate, row-major, in the data's units.
    /// Entries beyond the double range (data scaled by less than about 1e-75 or more than
    /// about 1e75) are ±∞ or 0, as the exact values round.
    pub hessian: [[f64; 3]; 3],
    /// The power of two c the data were divided by internally.
    pub unit: Unit,
    /// Hessian of −ℓ in (μ/c, σ²/c², τ²/c²): H_ab · c^(p_a+p_b) with p = (1, 2, 2).
    pub unit_hessian: [[f64; 3]; 3],
    /// How the estimate was found.
    pub convergence: Convergence,
}

impl Fit {
    /// The log-likelihood (ML) or restricted log-likelihood (REML): −deviance/2.
    pub fn log_lik(&self) -> f64 {
        -0.5 * self.deviance
    }

    /// The inverse of [`Fit::hessian`]: the asymptotic covariance of (μ̂, σ̂², τ̂²), the lecture's
    /// `solve(fit$hessian)`, computed as the inverse of [`Fit::unit_hessian`] mapped to the
    /// data's units (entries c^(p_a+p_b) times as large), so it is accurate wherever representable.
    pub fn covariance(&self) -> [[f64; 3]; 3] {
        let inverse = invert3(&self.unit_hessian);
        let mut out = [[0.0; 3]; 3];
        for a in 0..3 {
            for b in 0..3 {
                out[a][b] = self.unit.from_unit(inverse[a][b], POWER[a] + POWER[b]);
            }
        }
        out
    }

    /// Standard errors of (μ̂, σ̂², τ̂²): the square roots of the diagonal of the inverse
    /// observed information, taken in the internal unit and then scaled by c, c², c², so they
    /// are finite whenever the estimates are. A negative diagonal (an indefinite Hessian) gives 0.
    ///
    /// # Example
    /// ```
    /// use hnm_core::{fit, Criterion, GroupStats};
    /// let s = GroupStats::new(vec![3.0; 3], vec![0.0, 2e-150, 7e-150], vec![1e-300, 5e-301, 2e-300]).unwrap();
    /// let f = fit(&s, Criterion::Ml).unwrap();
    /// assert!(f.standard_errors().iter().all(|se| se.is_finite() && *se > 0.0));
    /// ```
    pub fn standard_errors(&self) -> [f64; 3] {
        let inverse = invert3(&self.unit_hessian);
        [0, 1, 2].map(|a| self.unit.from_unit(inverse[a][a].max(0.0).sqrt(), POWER[a]))
    }
}

/// Fits the one-way model to `stats` by ML or REML.
///
/// # Errors
/// The errors of [`GroupStats::check_identifiable`] (on the rescaled statistics), `NotFinite`
/// if the data span more than the double range, and `Optimizer` if Brent's method fails.
///
/// # Example
/// ```
/// use hnm_core::{fit, Criterion, GroupStats};
/// // Balanced: ML has the closed form σ̂² = MSE, τ̂² = ((1 − 1/m) MSG − MSE)/n.
/// let s = GroupStats::new(vec![2.0; 3], vec![0.0, 2.0, 7.0], vec![1.0, 0.5, 2.0]).unwrap();
/// let f = fit(&s, Criterion::Ml).unwrap();
/// let (mse, msg) = (3.5 / 3.0, 2.0 * (9.0 + 1.0 + 16.0) / 2.0);
/// assert!((f.params.sigma2 - mse).abs() < 1e-12);
/// assert!((f.params.tau2 - ((2.0 / 3.0) * msg - mse) / 2.0).abs() < 1e-12);
/// ```
pub fn fit(stats: &GroupStats, criterion: Criterion) -> Result<Fit> {
    let unit = Unit::of_data(stats);
    let scaled = unit.scale(stats)?;
    let in_unit = fit_in_unit(&scaled, criterion)?;
    Ok(to_original_units(in_unit, stats, unit))
}

/// A fit of statistics centred at 0 and expressed in their unit, mapped back: μ = center + c μ̃,
/// σ² = c² σ̃², τ² = c² τ̃², se(μ̂) = c se(μ̃), and the deviance gains 2k log c, k = N (ML)
/// or N − 1 (REML), the divisor of σ̂² (the density of c·y is c⁻ᵏ times that of y).
fn to_original_units(f: Fit, stats: &GroupStats, unit: Unit) -> Fit {
    let (k, _) = f.criterion.constants(stats.n_obs());
    let params = Params {
        mu: stats.center() + unit.from_unit(f.params.mu, 1),
        sigma2: unit.from_unit(f.params.sigma2, 2),
        tau2: unit.from_unit(f.params.tau2, 2),
    };
    let c = f.convergence;
    Fit {
        deviance: f.deviance + 2.0 * k * unit.ln(),
        se_mu: unit.from_unit(f.se_mu, 1),
        hessian: scaled_to_original(&f.unit_hessian, unit),
        unit,
        convergence: Convergence {
            gradient_norm: gradient_norm(stats, f.criterion, &params, c.profiled_score, c.on_boundary),
            ..c
        },
        params,
        ..f
    }
}

fn fit_in_unit(stats: &GroupStats, criterion: Criterion) -> Result<Fit> {
    let anova = Anova::new(stats)?;
    let deviance = ProfiledDeviance::new(stats, criterion);
    let theta_max = bracket_upper(&deviance, anova.tau2() / anova.sigma2());
    let (theta_brent, brent_iterations) = minimise_theta(deviance, theta_max)?;
    let at_zero = deviance.at(0.0);
    let interior = deviance.at(theta_brent * theta_brent);
    // Brent may stop at a tiny θ whose deviance is below D(0) by rounding only.
    let rounding = 64.0 * f64::EPSILON * (1.0 + at_zero.deviance.abs());
    let boundary = at_zero.d1 >= 0.0 && at_zero.deviance <= interior.deviance + rounding;
    let polished = if boundary { None } else { polish(&deviance, theta_brent, theta_max) };
    let (best, newton_iterations) = polished.unwrap_or((at_zero, 0));
    Ok(assemble(stats, criterion, best, brent_iterations, newton_iterations))
}

/// θ_max with D'(θ_max²) > 0, so [0, θ_max] brackets the minimum (D grows like m log λ).
fn bracket_upper(deviance: &ProfiledDeviance, lambda_start: f64) -> f64 {
    let start = (2.0 * lambda_start.sqrt()).max(1.0);
    expand_until(start, 4.0, |theta| deviance.at(theta * theta).d1 > 0.0)
}

/// θ ↦ D(θ²): the one-dimensional problem argmin solves.
struct ThetaProblem<'a> {
    deviance: ProfiledDeviance<'a>,
}

impl CostFunction for ThetaProblem<'_> {
    type Param = f64;
    type Output = f64;

    fn cost(&self, theta: &f64) -> std::result::Result<f64, argmin::core::Error> {
        Ok(self.deviance.at(theta * theta).deviance)
    }
}

fn minimise_theta(deviance: ProfiledDeviance, theta_max: f64) -> Result<(f64, u64)> {
    let solver = BrentOpt::new(0.0, theta_max).set_tolerance(f64::EPSILON.sqrt(), 1e-12 * theta_max);
    let result = Executor::new(ThetaProblem { deviance }, solver)
        .configure(|state| state.max_iters(500))
        .run()
        .map_err(|e| HnmError::Optimizer(e.to_string()))?;
    let state = result.state();
    let theta = state.best_param.ok_or_else(|| HnmError::Optimizer("Brent's method returned no point".into()))?;
    Ok((theta, state.iter))
}

/// Newton polish of the profiled score D'(λ) = 0 from Brent's point, inside a bracket
/// with D'(lo) < 0 < D'(hi); `None` when no λ below Brent's point has a negative score,
/// so the minimum is the boundary λ = 0.
fn polish(deviance: &ProfiledDeviance, theta_start: f64, theta_max: f64) -> Option<(ProfilePoint, u32)> {
    let score = |lambda: f64| {
        let p = deviance.at(lambda);
        (p.d1, p.d2)
    };
    let start = theta_start * theta_start;
    let lo = if score(0.0).0 < 0.0 {
        0.0
    } else {
        // D'(0) ≥ 0 with a lower interior minimum: step down from Brent's point past the
        // local maximum in between only as far as needed.
        let gap = expand_until(1e-6 * start, 4.0, |gap| gap >= start || score(start - gap).0 < 0.0);
        if gap >= start {
            return None;
        }
        start - gap
    };
    let root = newton_root(score, lo, theta_max * theta_max, start);
    Some((deviance.at(root.x), root.steps))
}

fn assemble(
    stats: &GroupStats,
    criterion: Criterion,
    best: ProfilePoint,
    brent_iterations: u64,
    newton_iterations: u32,
) -> Fit {
    let params = Params { mu: best.mu, sigma2: best.sigma2, tau2: best.lambda * best.sigma2 };
    let unit_hessian = hessian(stats, &params);
    let on_boundary = best.lambda == 0.0;
    let gradient_norm = gradient_norm(stats, criterion, &params, best.d1, on_boundary);
    Fit {
        criterion,
        params,
        theta: best.lambda.sqrt(),
        deviance: best.deviance,
        se_mu: (best.sigma2 / best.weight_sum).sqrt(),
        hessian: unit_hessian,
        unit: Unit::ONE,
        unit_hessian,
        convergence: Convergence {
            brent_iterations,
            newton_iterations,
            profiled_score: best.d1,
            gradient_norm,
            on_boundary,
        },
    }
}

/// The projected gradient norm of ML fits, or |D'(λ̂)|/(2σ̂²) for REML fits.
fn gradient_norm(stats: &GroupStats, criterion: Criterion, params: &Params, d1: f64, on_boundary: bool) -> f64 {
    match criterion {
        Criterion::Ml => projected_norm(gradient(stats, params), on_boundary),
        Criterion::Reml => d1.abs() / (2.0 * params.sigma2),
    }
}

/// Euclidean norm, scaled by the largest entry so that squares of entries near 1e300 do not overflow.
fn projected_norm(mut g: [f64; 3], on_boundary: bool) -> f64 {
    if on_boundary {
        g[2] = g[2].min(0.0);
    }
    let largest = g.iter().fold(0.0_f64, |m, x| m.max(x.abs()));
    if largest == 0.0 || !largest.is_finite() {
        return largest;
    }
    largest * g.iter().map(|x| (x / largest).powi(2)).sum::<f64>().sqrt()
}

/// Inverse of a 3 × 3 matrix by LU with partial pivoting (faer); NaN where singular.
pub(crate) fn invert3(a: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let m = Mat::from_fn(3, 3, |i, j| a[i][j]);
    let inv = m.partial_piv_lu().inverse();
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = inv[(i, j)];
        }
    }
    out
}
