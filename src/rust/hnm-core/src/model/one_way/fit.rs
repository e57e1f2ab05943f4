//! Maximum-likelihood and REML fits of the one-way model.
//!
//! μ and σ² are profiled out analytically (see [`crate::model::one_way::profiled_deviance`]), leaving λ = τ²/σ² = θ².
//! The minimum of the profiled deviance D(λ) is found by safeguarded Newton steps on the
//! profiled score D'(λ) = 0 with the analytic D''(λ), from the ANOVA moment estimate
//! λ₀ = max(τ̂²_ANOVA, 0)/σ̂²_ANOVA or a caller's warm start: a bracket where D' changes sign is
//! kept and bisected when Newton leaves it, so the steps converge quadratically near the root
//! and always. When D'(0) ≥ 0 and no interior point is lower, the estimate is exactly λ = 0
//! (τ² = 0); when D'(0) ≥ 0 and D'(λ₀) ≥ 0 too, Brent's method (argmin's `BrentOpt` on
//! θ ∈ [0, θ_max]) searches for a lower interior minimum before the boundary is accepted.
//! The iterations evaluate D' and D'' only (one O(groups) pass without logarithms); D itself is
//! evaluated at the estimate and, when the boundary competes with an interior minimum, at both.

use argmin::core::{CostFunction, Executor};
use argmin::solver::brent::BrentOpt;
use faer::linalg::solvers::DenseSolveCore;
use faer::Mat;

use crate::data::stats::GroupStats;
use crate::data::unit::Unit;
use crate::error::{HnmError, Result};
use crate::inference::anova::Anova;
use crate::inference::information::{information, Information};
use crate::model::one_way::likelihood::{gradient, hessian, scaled_to_original, Params, POWER};
use crate::model::one_way::profiled_deviance::{Criterion, ProfilePoint, ProfiledDeviance};
use crate::numerics::interrupt::{Checkpoint, Never, Polled};
use crate::numerics::solve1d::{expand_until, newton_root, Root};

/// How the optimiser got to the estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Convergence {
    /// Iterations of Brent's method on θ (0 unless the Newton steps from the start could not
    /// settle whether an interior minimum beats the boundary).
    pub brent_iterations: u64,
    /// Evaluations of the profiled score D'(λ) by the Newton iterations (0 on the boundary).
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
    /// The information matrix of the fit's criterion in (μ/c, σ²/c², τ²/c²) that
    /// [`Fit::covariance`] and [`Fit::standard_errors`] invert (see [`Information`]).
    pub unit_information: [[f64; 3]; 3],
    /// Whether `unit_information` is the observed or (where that is not positive
    /// definite) the expected information.
    pub information: Information,
    /// How the estimate was found.
    pub convergence: Convergence,
}

impl Fit {
    /// The log-likelihood (ML) or restricted log-likelihood (REML): −deviance/2.
    pub fn log_lik(&self) -> f64 {
        -0.5 * self.deviance
    }

    /// The asymptotic covariance of (μ̂, σ̂², τ̂²): the inverse of [`Fit::unit_information`]
    /// mapped to the data's units (entries c^(p_a+p_b) times as large), so it is accurate
    /// wherever representable. For an ML fit with a positive definite Hessian it is the
    /// lecture's `solve(fit$hessian)`; for REML the inverse restricted information.
    pub fn covariance(&self) -> [[f64; 3]; 3] {
        let inverse = invert3(&self.unit_information);
        let mut out = [[0.0; 3]; 3];
        for a in 0..3 {
            for b in 0..3 {
                out[a][b] = self.unit.from_unit(inverse[a][b], POWER[a] + POWER[b]);
            }
        }
        out
    }

    /// Standard errors of (μ̂, σ̂², τ̂²): the square roots of the diagonal of [`Fit::covariance`],
    /// taken in the internal unit and then scaled by c, c², c², so they are finite whenever
    /// the estimates are. The information inverted is positive definite, so they are positive.
    ///
    /// # Example
    /// ```
    /// use hnm_core::{fit, Criterion, GroupStats};
    /// let s = GroupStats::new(vec![3.0; 3], vec![0.0, 2e-150, 7e-150], vec![1e-300, 5e-301, 2e-300]).unwrap();
    /// let f = fit(&s, Criterion::Ml).unwrap();
    /// assert!(f.standard_errors().iter().all(|se| se.is_finite() && *se > 0.0));
    /// ```
    pub fn standard_errors(&self) -> [f64; 3] {
        let inverse = invert3(&self.unit_information);
        [0, 1, 2].map(|a| self.unit.from_unit(inverse[a][a].max(0.0).sqrt(), POWER[a]))
    }
}

/// Fits the one-way model to `stats` by ML or REML, starting from the ANOVA estimate:
/// [`fit_from`] without a warm start.
///
/// # Errors
/// The errors of [`GroupStats::check_identifiable`] (on the rescaled statistics), `NotFinite`
/// if the data span more than the double range, and `Optimizer` if Brent's method fails or the
/// Newton iterations stop without solving the score equation D'(λ) = 0.
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
    fit_from(stats, criterion, None, &mut Checkpoint::new(&Never))
}

/// Fits the one-way model to `stats` by ML or REML, starting the Newton iterations at
/// λ = τ²/σ² = `start` when it is a finite number ≥ 0 (a warm start, e.g. the estimate of the
/// data a bootstrap replicate or a profile was drawn from; λ does not depend on the data's
/// units), and at the ANOVA estimate max(τ̂², 0)/σ̂² otherwise. The start changes only the
/// path: the estimate solves D'(λ̂) = 0, or is exactly λ̂ = 0 on the boundary, either way.
/// Every evaluation of the profiled score (one pass over the groups) is a
/// [`Checkpoint::check_work`], so a user can stop a fit of very many groups.
///
/// # Errors
/// As [`fit`]; `Interrupted` when `checkpoint` reports a user interrupt.
///
/// # Example
/// ```
/// use hnm_core::{fit, fit_from, Checkpoint, Criterion, GroupStats, Never};
/// let s = GroupStats::new(vec![3.0, 5.0, 2.0, 7.0], vec![1.0, 2.5, -0.5, 0.4], vec![2.0, 4.5, 0.3, 6.1]).unwrap();
/// let cold = fit(&s, Criterion::Reml).unwrap();
/// let warm = fit_from(&s, Criterion::Reml, Some(cold.theta * cold.theta), &mut Checkpoint::new(&Never)).unwrap();
/// assert!((warm.params.tau2 - cold.params.tau2).abs() < 1e-12 * cold.params.tau2);
/// assert!(warm.convergence.newton_iterations <= cold.convergence.newton_iterations);
/// ```
pub fn fit_from(stats: &GroupStats, criterion: Criterion, start: Option<f64>, checkpoint: &mut Checkpoint<'_>) -> Result<Fit> {
    let (unit, scaled, found) = minimum_in_unit(stats, criterion, start, checkpoint)?;
    Ok(to_original_units(assemble(&scaled, criterion, found), stats, unit))
}

/// The estimates at θ = τ/σ without a search, in the data's units: (μ̂(θ), σ̂²(θ),
/// τ̂² = θ²σ̂²(θ)), the criterion profiled at λ = θ², and se(μ̂(θ)); at [`optimum`]'s θ̂
/// they are [`fit_from`]'s estimates to the bit (one evaluation, without its Hessian).
///
/// # Errors
/// `TooLarge` when the statistics in the data's unit do not fit in memory.
///
/// # Example
/// ```
/// use hnm_core::{estimates_at_theta, fit, Criterion, GroupStats};
/// let s = GroupStats::new(vec![3.0, 5.0, 2.0, 7.0], vec![1.0, 2.5, -0.5, 0.4], vec![2.0, 4.5, 0.3, 6.1]).unwrap();
/// let best = fit(&s, Criterion::Ml).unwrap();
/// let at = estimates_at_theta(&s, Criterion::Ml, best.theta).unwrap();
/// assert_eq!((at.deviance, at.params.mu, at.se_mu), (best.deviance, best.params.mu, best.se_mu));
/// assert!(estimates_at_theta(&s, Criterion::Ml, 2.0 * best.theta).unwrap().deviance > best.deviance);
/// ```
pub fn estimates_at_theta(stats: &GroupStats, criterion: Criterion, theta: f64) -> Result<Estimates> {
    let unit = Unit::of_data(stats);
    let scaled = unit.scale(stats)?;
    let point = ProfiledDeviance::new(&scaled, criterion).at(theta * theta);
    Ok(estimates_of(&point, stats, criterion, unit))
}

/// The estimates at the profile point `point` of `stats` expressed in `unit`, in the data's units.
fn estimates_of(point: &ProfilePoint, stats: &GroupStats, criterion: Criterion, unit: Unit) -> Estimates {
    let (k, _) = criterion.constants(stats.n_obs());
    Estimates {
        params: to_data_units(&unit_params(point), stats, unit),
        deviance: point.deviance + 2.0 * k * unit.ln(),
        se_mu: unit.from_unit((point.sigma2 / point.weight_sum).sqrt(), 1),
    }
}

/// The estimates of [`estimates_at_theta`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimates {
    /// (μ̂, σ̂², τ̂²).
    pub params: Params,
    /// −2ℓ (ML) or the REML criterion.
    pub deviance: f64,
    /// Standard error of μ̂.
    pub se_mu: f64,
}

/// θ̂ = τ̂/σ̂ of [`fit_from`], the evaluations of the profiled score (and Brent's iterations)
/// it took, and the estimates there ([`estimates_at_theta`]'s at θ̂), without the Hessian and
/// information [`fit_from`] assembles.
///
/// # Errors
/// As [`fit_from`].
///
/// # Example
/// ```
/// use hnm_core::{fit, optimum, Checkpoint, Criterion, GroupStats, Never};
/// let s = GroupStats::new(vec![3.0, 5.0, 2.0, 7.0], vec![1.0, 2.5, -0.5, 0.4], vec![2.0, 4.5, 0.3, 6.1]).unwrap();
/// let (theta, _, at) = optimum(&s, Criterion::Reml, None, &mut Checkpoint::new(&Never)).unwrap();
/// let full = fit(&s, Criterion::Reml).unwrap();
/// assert_eq!((theta, at.deviance, at.params.tau2), (full.theta, full.deviance, full.params.tau2));
/// ```
pub fn optimum(stats: &GroupStats, criterion: Criterion, start: Option<f64>, checkpoint: &mut Checkpoint<'_>) -> Result<(f64, usize, Estimates)> {
    let (unit, _, found) = minimum_in_unit(stats, criterion, start, checkpoint)?;
    let evaluations = found.brent_iterations as usize + found.newton_iterations as usize;
    Ok((found.point.lambda.sqrt(), evaluations, estimates_of(&found.point, stats, criterion, unit)))
}

/// The data's unit, the statistics in it and the minimum found there (see [`crate::Unit`]).
fn minimum_in_unit(stats: &GroupStats, criterion: Criterion, start: Option<f64>, checkpoint: &mut Checkpoint<'_>) -> Result<(Unit, GroupStats, Minimum)> {
    let unit = Unit::of_data(stats);
    let scaled = unit.scale(stats)?;
    let polled = Polled::new(checkpoint);
    let found = minimum(&Problem { deviance: ProfiledDeviance::new(&scaled, criterion), polled: &polled }, start);
    polled.status()?;
    Ok((unit, scaled, found?))
}

/// The profiled deviance to minimise, whose every evaluation first asks the checkpoint: once
/// a user interrupt is reported the evaluations are NaN, which stops the root finders and
/// Brent's method, and [`minimum_in_unit`] reports `Interrupted`.
struct Problem<'d, 'c, 'a> {
    deviance: ProfiledDeviance<'d>,
    polled: &'d Polled<'c, 'a>,
}

impl Problem<'_, '_, '_> {
    fn interrupted(&self) -> bool {
        self.polled.stop_after(self.deviance.groups())
    }

    /// (D'(λ), D''(λ)); NaN once interrupted.
    fn score(&self, lambda: f64) -> (f64, f64) {
        if self.interrupted() {
            (f64::NAN, f64::NAN)
        } else {
            self.deviance.score(lambda)
        }
    }

    /// The point at λ (D, its derivatives and the conditional estimates); D is NaN once interrupted.
    fn at(&self, lambda: f64) -> ProfilePoint {
        let point = self.deviance.at(lambda);
        if self.interrupted() {
            ProfilePoint { deviance: f64::NAN, ..point }
        } else {
            point
        }
    }
}

/// (μ, σ², τ²) of statistics centred at 0 and expressed in `unit`, mapped back:
/// μ = center + c μ̃, σ² = c² σ̃², τ² = c² τ̃².
fn to_data_units(p: &Params, stats: &GroupStats, unit: Unit) -> Params {
    Params { mu: stats.center() + unit.from_unit(p.mu, 1), sigma2: unit.from_unit(p.sigma2, 2), tau2: unit.from_unit(p.tau2, 2) }
}

fn unit_params(best: &ProfilePoint) -> Params {
    Params { mu: best.mu, sigma2: best.sigma2, tau2: best.lambda * best.sigma2 }
}

/// A fit of statistics centred at 0 and expressed in their unit, mapped back (see
/// [`to_data_units`]); se(μ̂) = c se(μ̃), and the deviance gains 2k log c, k = N (ML)
/// or N − 1 (REML), the divisor of σ̂² (the density of c·y is c⁻ᵏ times that of y).
fn to_original_units(f: Fit, stats: &GroupStats, unit: Unit) -> Fit {
    let (k, _) = f.criterion.constants(stats.n_obs());
    let params = to_data_units(&f.params, stats, unit);
    let c = f.convergence;
    Fit {
        deviance: f.deviance + 2.0 * k * unit.ln(),
        se_mu: unit.from_unit(f.se_mu, 1),
        hessian: scaled_to_original(&f.unit_hessian, unit),
        unit,
        convergence: Convergence { gradient_norm: gradient_norm(stats, f.criterion, &params, c.profiled_score, c.on_boundary), ..c },
        params,
        ..f
    }
}

/// The minimiser of the profiled deviance and the work it took.
struct Minimum {
    point: ProfilePoint,
    brent_iterations: u64,
    newton_iterations: u32,
}

/// Minimises D(λ) over λ ≥ 0 (see the module docs).
fn minimum(problem: &Problem, start: Option<f64>) -> Result<Minimum> {
    let stats = problem.deviance.stats();
    let lambda_start = match start {
        Some(lambda) if lambda.is_finite() && lambda >= 0.0 => {
            stats.check_identifiable()?;
            lambda
        }
        _ => anova_start(stats)?,
    };
    let deviance = problem;
    let score = |lambda: f64| problem.score(lambda);
    // Steps that Newton cannot give grow from about the start (or 1/n_max, where λ matters).
    let n_max = stats.n().iter().fold(1.0_f64, |m, &n| m.max(n));
    let step = lambda_start.max(1.0 / n_max);
    let interior = |from: f64| solved(deviance, newton_root(score, from, f64::INFINITY, lambda_start.max(from), step));
    // The Newton counts include the evaluations of D'(0) and D'(λ₀) that chose the bracket.
    if score(0.0).0 < 0.0 {
        let (point, steps) = interior(0.0)?;
        return Ok(Minimum { point, brent_iterations: 0, newton_iterations: 1 + steps });
    }
    if lambda_start > 0.0 && score(lambda_start).0 < 0.0 {
        // D'(0) ≥ 0 but D decreases at λ₀: the interior minimum above it competes with λ = 0.
        let (point, steps) = interior(lambda_start)?;
        let best = lower_of_boundary(deviance, point);
        let newton_iterations = if best.lambda == 0.0 { 0 } else { 2 + steps };
        return Ok(Minimum { point: best, brent_iterations: 0, newton_iterations });
    }
    brent_search(deviance, lambda_start)
}

/// The point at a root of the profiled score D'(λ), and the evaluations it took.
///
/// # Errors
/// `Optimizer` when the Newton iterations stopped without solving D'(λ) = 0.
fn solved(deviance: &Problem, root: Root) -> Result<(ProfilePoint, u32)> {
    if !root.converged {
        return Err(HnmError::Optimizer(format!(
            "Newton's method could not solve the score equation for lambda = tau^2/sigma^2 (it stopped \
             after {} steps at lambda = {:e}); check the response for extreme or degenerate values",
            root.steps, root.x
        )));
    }
    Ok((deviance.at(root.x), root.steps))
}

/// λ₀ = max(τ̂², 0)/σ̂² of the ANOVA estimator; 1 when that is not a finite number.
fn anova_start(stats: &GroupStats) -> Result<f64> {
    let anova = Anova::new(stats)?;
    let lambda = anova.tau2() / anova.sigma2();
    Ok(if lambda.is_finite() { lambda } else { 1.0 })
}

/// The boundary point λ = 0 when D'(0) ≥ 0 and D(0) is not above D at `interior`: an
/// interior point whose deviance is below D(0) by rounding only does not count.
fn lower_of_boundary(deviance: &Problem, interior: ProfilePoint) -> ProfilePoint {
    let at_zero = deviance.at(0.0);
    let rounding = 64.0 * f64::EPSILON * (1.0 + at_zero.deviance.abs());
    if at_zero.d1 >= 0.0 && at_zero.deviance <= interior.deviance + rounding {
        at_zero
    } else {
        interior
    }
}

/// The fallback when D'(0) ≥ 0 and D'(λ₀) ≥ 0: Brent's method on θ over [0, θ_max] looks for
/// a lower interior minimum, which Newton steps then polish; λ = 0 otherwise.
fn brent_search(deviance: &Problem, lambda_start: f64) -> Result<Minimum> {
    let theta_max = bracket_upper(deviance, lambda_start);
    let (theta_brent, brent_iterations) = minimise_theta(deviance, theta_max)?;
    let at_zero = deviance.at(0.0);
    let interior = deviance.at(theta_brent * theta_brent);
    let boundary = lower_of_boundary(deviance, interior).lambda == 0.0;
    let polished = if boundary { None } else { polish(deviance, theta_brent, theta_max).transpose()? };
    let (point, newton_iterations) = polished.unwrap_or((at_zero, 0));
    Ok(Minimum { point, brent_iterations, newton_iterations })
}

/// θ_max with D'(θ_max²) > 0, so [0, θ_max] brackets the minimum (D grows like m log λ).
fn bracket_upper(deviance: &Problem, lambda_start: f64) -> f64 {
    let start = (2.0 * lambda_start.sqrt()).max(1.0);
    expand_until(start, 4.0, |theta| deviance.interrupted() || deviance.score(theta * theta).0 > 0.0)
}

/// θ ↦ D(θ²): the one-dimensional problem argmin solves.
struct ThetaProblem<'p, 'd, 'c, 'a> {
    deviance: &'p Problem<'d, 'c, 'a>,
}

impl CostFunction for ThetaProblem<'_, '_, '_, '_> {
    type Param = f64;
    type Output = f64;

    fn cost(&self, theta: &f64) -> std::result::Result<f64, argmin::core::Error> {
        let deviance = self.deviance.at(theta * theta).deviance;
        if deviance.is_nan() {
            return Err(argmin::core::Error::msg("the deviance is NaN"));
        }
        Ok(deviance)
    }
}

fn minimise_theta(deviance: &Problem, theta_max: f64) -> Result<(f64, u64)> {
    let solver = BrentOpt::new(0.0, theta_max).set_tolerance(f64::EPSILON.sqrt(), 1e-12 * theta_max);
    let result =
        Executor::new(ThetaProblem { deviance }, solver).configure(|state| state.max_iters(500)).run().map_err(|e| HnmError::Optimizer(e.to_string()))?;
    let state = result.state();
    let theta = state.best_param.ok_or_else(|| HnmError::Optimizer("Brent's method returned no point".into()))?;
    Ok((theta, state.iter))
}

/// Newton polish of the profiled score D'(λ) = 0 from Brent's point, inside a bracket
/// with D'(lo) < 0 < D'(hi); `None` when no λ below Brent's point has a negative score,
/// so the minimum is the boundary λ = 0; the error of [`solved`] when Newton fails.
fn polish(deviance: &Problem, theta_start: f64, theta_max: f64) -> Option<Result<(ProfilePoint, u32)>> {
    let score = |lambda: f64| deviance.score(lambda);
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
    Some(solved(deviance, newton_root(score, lo, theta_max * theta_max, start, start)))
}

fn assemble(stats: &GroupStats, criterion: Criterion, found: Minimum) -> Fit {
    let best = found.point;
    let params = unit_params(&best);
    let unit_hessian = hessian(stats, &params);
    let (unit_information, information) = information(stats, criterion, &params, &unit_hessian);
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
        unit_information,
        information,
        convergence: Convergence {
            brent_iterations: found.brent_iterations,
            newton_iterations: found.newton_iterations,
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
