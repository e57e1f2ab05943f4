//! Profile likelihood of the linear mixed model: lme4's `profile()` and
//! `confint(method = "profile")`, with every point an exact inner optimum.
//!
//! The parameters are lme4's: the SDs and correlations of the random effects (`.sig01`, …,
//! in θ's order), σ, and each fixed effect. For x one of them, the profile deviance is
//! dev(x) = min D over the others, D the ML deviance −2ℓ or, for a REML fit, the REML
//! criterion (lme4 refits a REML fit by ML instead); ζ(x) = sign(x − x̂) √(dev(x) − dev(x̂)),
//! and the level-(1 − α) interval is {x : |ζ(x)| ≤ z_{1−α/2}}. By the envelope theorem
//! d dev/dx = ∂D/∂x at the inner optimum, so the limits are found by safeguarded Newton
//! steps on dev(x) − dev(x̂) − z², with no interpolation.
//!
//! With several grouping factors the random-effects columns of all factors are taken side by
//! side, Q = Σ_f q_f of them, as one block-diagonal Λ whose blocks are the factors' blocks in
//! θ's order ([`AllColumns`]): a factor is then a set of blocks of Λ like any other, and every
//! profile is that of one factor, with the model's evaluation of several factors for D and
//! its gradient.
//!
//! The profile's driver is here; the inner problems are in [`variance`] (SDs, correlations and
//! σ, whose coordinates φ make one problem) and [`fixed_effects`] (β).

use std::cell::{Cell, RefCell};

use crate::error::{HnmError, Result};
use crate::model::lmm::structure::{theta_layout, Affine};
use crate::model::lmm::{LinearMixedModel, LmmFit, Term, Workspace};
use crate::numerics::dense::congruence;
use crate::numerics::interrupt::{Checkpoint, Interrupt, Polled};
use crate::numerics::memory::{collected, with_capacity, POINTS};
use crate::numerics::optim::{minimize_bounded, remaining_decrease, Minimum, Objective};
use crate::numerics::parallel::in_parallel;
use crate::numerics::solve1d::{minimize_scalar, newton_root, Root};
use fixed_effects::BetaProblem;
use variance::{variance_kind, Layout, VarianceProblem};

mod fixed_effects;
mod one_way;
mod variance;

/// The inner problem of a profile point: an [`Objective`] in the free coordinates, and what a
/// point of the profile reads off its optimum. A problem in one coordinate is also evaluated
/// without the vectors of [`Objective`] (the one-way model's in scalar variables, [`one_way`]),
/// as every point of a random intercept's profile searches it in a few evaluations.
trait InnerProblem: Objective {
    /// The criterion and its derivative at the one free coordinate `x`.
    fn value_and_derivative(&self, x: f64) -> Result<(f64, f64)>;

    /// The criterion (internal units), its derivative in the profiled coordinate and every
    /// parameter (lme4's order) at the free coordinates.
    fn describe(&self, free: &[f64]) -> Result<(f64, f64, Vec<f64>)>;

    /// [`InnerProblem::describe`]'s criterion and derivative, the same numbers, at the one free
    /// coordinate `x` where the problem has them in scalar variables; `None` otherwise.
    fn value_and_slope(&self, x: f64) -> Result<Option<(f64, f64)>>;

    /// [`InnerProblem::describe`], with no parameters (an empty vector) when `parameters` is
    /// false and [`InnerProblem::value_and_slope`] has the rest: a limit's search needs only
    /// the criterion and its slope.
    fn point(&self, free: &[f64], parameters: bool) -> Result<(f64, f64, Vec<f64>)> {
        if let (false, &[x]) = (parameters, free) {
            if let Some((value, slope)) = self.value_and_slope(x)? {
                return Ok((value, slope, Vec::new()));
            }
        }
        self.describe(free)
    }
}

/// A parameter of the linear mixed model, as lme4's `profile()` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LmmParameter {
    /// Entry i of θ's layout: the SD of a random effect when it is a diagonal entry of Λ, the
    /// correlation of its row's and column's effects otherwise (lme4's `.sig0i`, 0-based).
    Variance(usize),
    /// The residual SD σ (lme4's `.sigma`).
    Sigma,
    /// Fixed effect i among the kept columns of X.
    Beta(usize),
}

/// The profile at one value of the parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct LmmProfilePoint {
    /// The value the parameter is held at.
    pub value: f64,
    /// Minimum of the fit's criterion given the value, in the data's units.
    pub deviance: f64,
    /// d deviance / d value.
    pub slope: f64,
    /// ζ = sign(value − estimate) √(deviance − deviance at the estimate).
    pub zeta: f64,
    /// All parameters at the inner optimum in lme4's order: the SDs and correlations (θ's
    /// layout), σ, then the fixed effects; the profiled one is `value` itself (not recomputed
    /// from the inner optimum, which would round a correlation of 1 to 1 − 1e-16, say). Empty
    /// for the points a limit's search evaluates, which need none.
    pub parameters: Vec<f64>,
}

/// The profile of one parameter of a fit.
#[derive(Debug)]
pub struct LmmProfile<'a> {
    model: &'a LinearMixedModel,
    fit: &'a LmmFit,
    /// The random-effects columns of every factor ([`AllColumns`]).
    columns: AllColumns,
    parameter: LmmParameter,
    kind: Kind,
    /// The criterion at the estimate in internal units.
    minimum: f64,
    /// The last inner optimum (free coordinates), where the next inner search starts.
    warm: RefCell<Vec<f64>>,
    /// The workspace of the inner problems' model (the copy for a variance parameter), which
    /// every point reuses.
    workspace: RefCell<Workspace>,
    /// Where the next one-dimensional inner search starts ([`LmmProfile::scalar_minimum`]).
    scalar: Cell<ScalarWarm>,
    /// Where the inner searches start at a new limit: the estimate's coordinates.
    origin: Vec<f64>,
    /// The curvature near `origin` once a search from there has found it (NaN until then).
    origin_curvature: Cell<f64>,
}

/// The last points of a profile whose inner problem has one coordinate: the start of the next
/// inner search and its first Newton step.
#[derive(Debug, Clone, Copy)]
struct ScalarWarm {
    /// The criterion's curvature in the inner coordinate at the last inner optimum (NaN when
    /// unknown).
    curvature: f64,
    /// The profiled coordinate and the inner optimum of the last point ...
    last: (f64, f64),
    /// ... and of the one before it on the same side of the estimate (NaN when none).
    before: (f64, f64),
}

#[derive(Debug)]
enum Kind {
    /// `lower`: the free coordinates' lower bounds.
    Variance {
        copy: Box<LinearMixedModel>,
        layout: Layout,
        fixed: usize,
        estimate: Vec<f64>,
        lower: Vec<f64>,
    },
    Beta {
        combination: Vec<f64>,
        shift: f64,
    },
}

impl<'a> LmmProfile<'a> {
    /// The profile of `parameter` for `fit` of `model`, under the fit's criterion; the
    /// evaluation of the criterion at the fit asks `checkpoint`.
    ///
    /// # Errors
    /// `InvalidArgument` (argument `parameter`) for a parameter the model does not have; the
    /// errors of [`LinearMixedModel::deviance`] at the fit; `Interrupted` when `checkpoint`
    /// reports a user interrupt.
    ///
    /// # Example
    /// ```
    /// use hnm_core::{Checkpoint, Column, Criterion, CrossProducts, LinearMixedModel, LmmParameter, LmmProfile, Never, Structure, Term};
    /// let y = [1.0, 2.5, 2.0, 4.0, 3.5, 6.0, 5.0, 6.5, 8.0, 2.0, 2.5, 5.0];
    /// let x = [0.0, 1.0, 2.0, 0.0, 1.0, 2.0, 0.0, 1.0, 2.0, 0.0, 1.0, 2.0];
    /// let g = [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4];
    /// let pass = CrossProducts::from_columns(&[Column::Double(&y), Column::Double(&x)], g.into_iter(), 4,
    ///     &mut Checkpoint::new(&Never)).unwrap();
    /// let structure = Structure { response: 0, fixed: vec![Term::Intercept, Term::Variable(1)],
    ///     random: vec![Term::Intercept], blocks: vec![1] };
    /// let model = LinearMixedModel::new(&pass.stats, structure).unwrap();
    /// let fit = model.fit(Criterion::Ml, None, &mut Checkpoint::new(&Never)).unwrap();
    /// let profile = LmmProfile::new(&model, &fit, LmmParameter::Beta(1), &mut Checkpoint::new(&Never)).unwrap();
    /// let (lower, upper) = profile.interval(1.96, &mut Checkpoint::new(&Never)).unwrap();
    /// assert!(lower < fit.beta[1] && fit.beta[1] < upper);
    /// let at = profile.at(upper, &mut Checkpoint::new(&Never)).unwrap();
    /// assert!((at.zeta - 1.96).abs() < 1e-8);
    /// ```
    pub fn new(model: &'a LinearMixedModel, fit: &'a LmmFit, parameter: LmmParameter, checkpoint: &mut Checkpoint<'_>) -> Result<Self> {
        let bad = Err(HnmError::InvalidArgument { argument: "parameter", reason: "is not a parameter of the model" });
        let columns = model.all_columns();
        let q = columns.q;
        let minimum = model.deviance_checked(fit.criterion, &fit.internal_theta, &mut model.workspace()?, checkpoint)?;
        let (kind, origin) = match parameter {
            LmmParameter::Beta(i) if i < model.p => {
                let combination = model.to_user_fixed[i * model.p..(i + 1) * model.p].to_vec();
                let intercept = model.fixed.iter().position(|a| a.term == Term::Intercept);
                let shift = intercept.map_or(0.0, |i0| combination[i0] * model.response.raw_shift);
                (Kind::Beta { combination, shift }, fit.internal_theta.clone())
            }
            LmmParameter::Variance(i) if i < columns.positions.len() => {
                let (r, c) = columns.positions[i];
                if r == c {
                    variance_kind(model, fit, (0..q).collect(), |_| r)?
                } else {
                    // The pair first in its block: c, r, then the others in order; the
                    // correlation is then the first angle of the block's second row.
                    let (offset, size) = columns.block_of(c);
                    let mut order: Vec<usize> = (0..q).collect();
                    let mut block = vec![c, r];
                    block.extend((offset..offset + size).filter(|&f| f != c && f != r));
                    order.splice(offset..offset + size, block);
                    variance_kind(model, fit, order, |layout| q + layout.angles.iter().position(|&(row, _, t)| row == offset + 1 && t == 0).expect("an angle"))?
                }
            }
            LmmParameter::Sigma => variance_kind(model, fit, (0..q).collect(), Layout::log_sigma)?,
            _ => return bad,
        };
        let workspace = RefCell::new(match &kind {
            Kind::Variance { copy, .. } => copy.workspace()?,
            Kind::Beta { .. } => model.workspace()?,
        });
        Ok(LmmProfile {
            model,
            fit,
            columns,
            parameter,
            kind,
            minimum,
            warm: RefCell::new(origin.clone()),
            workspace,
            scalar: Cell::new(ScalarWarm { curvature: f64::NAN, last: (f64::NAN, f64::NAN), before: (f64::NAN, f64::NAN) }),
            origin,
            origin_curvature: Cell::new(f64::NAN),
        })
    }

    /// The next inner search starts from the estimate's coordinates.
    fn restart(&self) {
        *self.warm.borrow_mut() = self.origin.clone();
        let origin = self.origin.first().copied().unwrap_or(f64::NAN);
        let last = (self.estimate_coordinate(), origin);
        self.scalar.set(ScalarWarm { curvature: self.origin_curvature.get(), last, before: (f64::NAN, f64::NAN) });
    }

    /// The estimate of the parameter (an SD, a correlation, σ or β_i, in the data's units).
    pub fn estimate(&self) -> f64 {
        self.user_value(self.estimate_coordinate())
    }

    fn estimate_coordinate(&self) -> f64 {
        match &self.kind {
            Kind::Variance { estimate, fixed, .. } => estimate[*fixed],
            Kind::Beta { .. } => match self.parameter {
                LmmParameter::Beta(i) => self.fit.beta[i],
                _ => unreachable!("a fixed effect"),
            },
        }
    }

    /// The parameter in the data's units from its coordinate (scaled SD, angle, log σ, β).
    fn user_value(&self, coordinate: f64) -> f64 {
        match (&self.kind, self.parameter) {
            (Kind::Beta { .. }, _) | (_, LmmParameter::Beta(_)) => coordinate,
            (Kind::Variance { .. }, LmmParameter::Sigma) => coordinate.exp() * self.model.response.scale,
            (Kind::Variance { .. }, LmmParameter::Variance(i)) => {
                let (r, c) = self.columns.positions[i];
                if r == c {
                    coordinate * self.model.response.scale / self.columns.random[r].scale
                } else {
                    coordinate.cos()
                }
            }
        }
    }

    /// The coordinate of a value in the data's units, and d value / d coordinate.
    fn coordinate_of(&self, value: f64) -> (f64, f64) {
        match self.parameter {
            LmmParameter::Beta(_) => (value, 1.0),
            LmmParameter::Sigma => {
                let ln = (value / self.model.response.scale).ln();
                (ln, value)
            }
            LmmParameter::Variance(i) => {
                let (r, c) = self.columns.positions[i];
                if r == c {
                    let factor = self.model.response.scale / self.columns.random[r].scale;
                    (value / factor, factor)
                } else {
                    let a = value.clamp(-1.0, 1.0).acos();
                    (a, -a.sin())
                }
            }
        }
    }

    /// The profile deviance, its slope and ζ at `value` (an SD ≥ 0, a correlation in [−1, 1],
    /// σ > 0 or any β), with every parameter at the inner optimum.
    ///
    /// # Errors
    /// `InvalidArgument` (argument `value`) for a value outside the parameter's range;
    /// `Optimizer` when the inner minimisation fails; `Interrupted` when `checkpoint` reports
    /// a user interrupt.
    pub fn at(&self, value: f64, checkpoint: &mut Checkpoint<'_>) -> Result<LmmProfilePoint> {
        let polled = Polled::new(checkpoint);
        self.at_polled(value, true, &polled)
    }

    /// [`LmmProfile::at`]; with `parameters` false the point's `parameters` are empty where
    /// the inner problem has one coordinate ([`InnerProblem::point`]).
    fn at_polled(&self, value: f64, parameters: bool, polled: &Polled<'_, '_>) -> Result<LmmProfilePoint> {
        if !self.in_range(value) {
            return Err(HnmError::InvalidArgument { argument: "value", reason: "is outside the parameter's range" });
        }
        let (coordinate, derivative) = self.coordinate_of(value);
        let tolerance = 1e-10 * self.model.n_obs;
        let start = self.warm.borrow().clone();
        let (point, free) = match &self.kind {
            Kind::Beta { combination, shift } => {
                let target = (coordinate - shift) / self.model.response.scale;
                let problem = BetaProblem::new(self.model, self.fit.criterion, combination, target, &self.workspace, polled);
                let found = self.inner_minimum(&problem, coordinate, &start, &self.model.lower, tolerance, polled)?;
                let (deviance, slope, parameters) = problem.point(&found.x, parameters)?;
                (((deviance, slope / self.model.response.scale), parameters), found)
            }
            Kind::Variance { copy, layout, fixed, lower, .. } => {
                let problem = VarianceProblem::new(copy, self.fit.criterion, layout, *fixed, coordinate, &self.workspace, polled);
                let found = self.inner_minimum(&problem, coordinate, &start, lower, tolerance, polled)?;
                let (deviance, slope, parameters) = problem.point(&found.x, parameters)?;
                (((deviance, slope), parameters), found)
            }
        };
        if !free.converged {
            return Err(HnmError::Optimizer(format!(
                "the inner minimisation of the profile did not converge (projected gradient {:e})",
                free.projected_gradient_norm
            )));
        }
        *self.warm.borrow_mut() = free.x;
        let ((deviance, coordinate_slope), mut parameters) = point;
        let n_theta = self.columns.positions.len();
        let index = match self.parameter {
            LmmParameter::Variance(i) => i,
            LmmParameter::Sigma => n_theta,
            LmmParameter::Beta(i) => n_theta + 1 + i,
        };
        if let Some(profiled) = parameters.get_mut(index) {
            *profiled = value;
        }
        let excess = (deviance - self.minimum).max(0.0);
        let zeta = (value - self.estimate()).signum() * excess.sqrt();
        let slope = if derivative == 0.0 { f64::NAN } else { coordinate_slope / derivative };
        let correction = self.model.unit_correction(self.fit.criterion);
        Ok(LmmProfilePoint { value, deviance: deviance + correction, slope, zeta, parameters })
    }

    /// The inner minimum from `start` (the last profile point's optimum) and from the
    /// estimate's coordinates, the lower of the two that converge. Near a singular fit (a
    /// correlation near ±1, an SD near 0) the inner problem can have several local minima, and
    /// a search from the last point can follow a branch that is no longer the lowest, or stop
    /// short of the tolerance in its flat valley; the second start guards against both, and
    /// [`LmmProfile::singular_restarts`] against an optimum with a zero SD. Several minima
    /// need at least two inner coordinates (an SD and a correlation): a one-dimensional inner
    /// problem that converged (a random intercept's θ when σ or β is profiled, the one-way
    /// model's every profile) is not searched again, which halves the cost of its profiles.
    /// Such a problem is first searched by [`LmmProfile::scalar_minimum`], one evaluation a
    /// step, and by the bounded Newton method only where that ends on the bound or fails.
    fn inner_minimum(
        &self, problem: &impl InnerProblem, coordinate: f64, start: &[f64], lower: &[f64], tolerance: f64, polled: &Polled<'_, '_>,
    ) -> Result<Minimum> {
        if start.len() == 1 {
            if let Some(found) = self.scalar_minimum(problem, coordinate, start[0], lower[0], tolerance, polled)? {
                return Ok(found);
            }
        }
        let found = self.inner_search(problem, start, lower, tolerance, polled)?;
        let found = if start == self.origin.as_slice() || (found.converged && start.len() < 2) {
            found
        } else {
            let again = self.inner_search(problem, &self.origin, lower, tolerance, polled)?;
            let better = again.converged && (!found.converged || again.value < found.value);
            if better {
                again
            } else {
                found
            }
        };
        let found = self.singular_restarts(problem, coordinate, found, lower, tolerance, polled)?;
        if start.len() == 1 {
            self.remember(coordinate, found.x[0], f64::NAN);
        }
        Ok(found)
    }

    /// `found` or, when it has a free SD of a correlated block at 0, the lowest converged
    /// search from [`Layout::singular_starts`] if lower: such a point can be a saddle or a
    /// local minimum whose correlations have the wrong sign (the upper limit of `.sig03` of
    /// issue 25's seed 56, REML, was 0.035 above the lowest inner optimum), which neither the
    /// last point's optimum nor the estimate's coordinates leave. The starts are tried only
    /// there, so profiles whose inner optima are interior cost no more.
    fn singular_restarts(
        &self, problem: &impl Objective, coordinate: f64, found: Minimum, lower: &[f64], tolerance: f64, polled: &Polled<'_, '_>,
    ) -> Result<Minimum> {
        let Kind::Variance { layout, fixed, .. } = &self.kind else {
            return Ok(found);
        };
        let mut phi = found.x.clone();
        phi.insert(*fixed, coordinate);
        let mut best = found;
        for mut start in layout.singular_starts(&phi, *fixed) {
            start.remove(*fixed);
            let again = self.inner_search(problem, &start, lower, tolerance, polled)?;
            if again.converged && (!best.converged || again.value < best.value) {
                best = again;
            }
        }
        Ok(best)
    }

    /// [`minimize_bounded`] from `start`, with a search that stopped short of the tolerance
    /// still taken as the optimum when the deviance it can have left is within the profile's
    /// resolution ([`LmmProfile::resolution`]): a limit counts an excess within it as 0, so
    /// such a point moves no limit by more than the limit's own tolerance. Near the point D is
    /// quadratic, so a gradient g leaves D at most ½ gᵀH⁻¹g (about g²/(2·curvature)) above
    /// the minimum ([`remaining_decrease`]). The search stops short where that decrease is
    /// below D's rounding but above the one [`minimize_bounded`] assumes, ε|D|: in internal
    /// units D is a small number left from terms that cancel (k log 2πσ² and r²/σ², r² itself
    /// a difference of cross-products of y), and at issue 25's seed 135 (σ = 1.73) D = 0.79
    /// is computed to 1e-12 while a gradient of 2e-5 on a curvature of 1500 leaves 1.5e-13, so
    /// no step along any direction lowers the computed D.
    fn inner_search(&self, problem: &impl Objective, start: &[f64], lower: &[f64], tolerance: f64, polled: &Polled<'_, '_>) -> Result<Minimum> {
        let mut found = polled.run(|c| minimize_bounded(problem, start, lower, tolerance, c))?;
        if !found.converged {
            found.converged = remaining_decrease(problem, &found.x, found.value, &found.gradient, lower).is_some_and(|d| d <= self.resolution());
        }
        Ok(found)
    }

    /// [`LmmProfile::inner_minimum`] of a problem in one coordinate (a random intercept's θ,
    /// its SD, or log σ) with the profiled coordinate at `coordinate`: [`minimize_scalar`],
    /// one evaluation a step where the bounded Newton method takes two. The inner optimum
    /// x*(c) is smooth in the profiled coordinate c, so the search starts from its secant
    /// through the last two points, x*(c₁) + (c − c₁)(x*(c₁) − x*(c₀))/(c₁ − c₀) (an error of
    /// O(Δc²) where `start`, the last optimum, is O(Δc) away), and its first Newton step
    /// takes the curvature found there. `None` (the bounded Newton method then searches from
    /// `start`, as for more coordinates) when the search did not converge or ended on the
    /// bound: there (a zero SD of a singular fit) the criterion is even in the coordinate,
    /// and a minimum can leave the bound along a direction of negative curvature, which the
    /// bounded Newton method follows (Dyestuff2's β profile).
    fn scalar_minimum(
        &self, problem: &impl InnerProblem, coordinate: f64, start: f64, lower: f64, tolerance: f64, polled: &Polled<'_, '_>,
    ) -> Result<Option<Minimum>> {
        let objective = |x: f64| problem.value_and_derivative(x);
        let warm = self.scalar.get();
        let (c1, x1) = warm.last;
        let (c0, x0) = warm.before;
        let first = c0.is_nan() || x1 != start;
        let known = if first && start == self.origin[0] { self.origin_curvature.get() } else { warm.curvature };
        let predicted = x1 + (coordinate - c1) * (x1 - x0) / (c1 - c0);
        let from = if first || !predicted.is_finite() { start } else { predicted };
        let found = polled.run(|c| minimize_scalar(objective, from, lower, tolerance, Some(known), c))?;
        if !found.converged || found.x <= lower {
            return Ok(None);
        }
        if start == self.origin[0] && self.origin_curvature.get().is_nan() {
            self.origin_curvature.set(found.curvature);
        }
        self.remember(coordinate, found.x, found.curvature);
        Ok(Some(Minimum {
            x: vec![found.x],
            value: found.value,
            gradient: vec![found.derivative],
            iterations: found.evaluations,
            evaluations: found.evaluations,
            projected_gradient_norm: found.derivative.abs(),
            converged: true,
        }))
    }

    /// The one-dimensional inner optimum `x` at the profiled coordinate `coordinate`, and the
    /// curvature there (NaN when unknown), for the next point's start. A point on the other
    /// side of the estimate (the bound probed from the first point) starts a path of its own.
    fn remember(&self, coordinate: f64, x: f64, curvature: f64) {
        let warm = self.scalar.get();
        let estimate = self.estimate_coordinate();
        let same_side = (coordinate - estimate) * (warm.last.0 - estimate) > 0.0;
        let before = if same_side { warm.last } else { (estimate, self.origin[0]) };
        self.scalar.set(ScalarWarm { curvature, last: (coordinate, x), before });
    }

    fn in_range(&self, value: f64) -> bool {
        match self.parameter {
            LmmParameter::Beta(_) => value.is_finite(),
            LmmParameter::Sigma => value > 0.0 && value.is_finite(),
            LmmParameter::Variance(i) => {
                let (r, c) = self.columns.positions[i];
                if r == c {
                    value >= 0.0 && value.is_finite()
                } else {
                    (-1.0..=1.0).contains(&value)
                }
            }
        }
    }

    /// The bound of the parameter on the side of sign(z): 0 for an SD, ±1 for a correlation,
    /// 0 (never reached) for σ, ±∞ for β.
    fn bound(&self, z: f64) -> f64 {
        match self.parameter {
            LmmParameter::Beta(_) => z.signum() * f64::INFINITY,
            LmmParameter::Sigma => {
                if z < 0.0 {
                    0.0
                } else {
                    f64::INFINITY
                }
            }
            LmmParameter::Variance(i) => {
                let (r, c) = self.columns.positions[i];
                match (r == c, z < 0.0) {
                    (true, true) => 0.0,
                    (true, false) => f64::INFINITY,
                    (false, _) => z.signum(),
                }
            }
        }
    }

    /// The limits {x : |ζ(x)| ≤ z}; an SD interval that reaches 0 starts at 0, and a
    /// correlation interval that reaches ±1 ends there.
    ///
    /// # Errors
    /// `InvalidArgument` (argument `z`) when `z` is not a positive finite number; `Optimizer`
    /// when the Newton iterations for a limit or an inner optimum do not converge;
    /// `Interrupted` when `checkpoint` reports a user interrupt.
    pub fn interval(&self, z: f64, checkpoint: &mut Checkpoint<'_>) -> Result<(f64, f64)> {
        if !(z > 0.0 && z.is_finite()) {
            return Err(HnmError::InvalidArgument { argument: "z", reason: "must be a positive finite number" });
        }
        let polled = Polled::new(checkpoint);
        let lower = self.limit(-z, &polled)?;
        let upper = self.limit(z, &polled)?;
        Ok((lower, upper))
    }

    /// Within this of z² a limit's excess counts as 0 (the deviance's rounding is about 1e-15
    /// of it, and ζ changes by less than 1e-11 |D̂|/ζ).
    fn resolution(&self) -> f64 {
        1e-12 * self.fit.deviance.abs().max(1.0)
    }

    /// The value on the side of sign(z) where ζ = z (module docs).
    fn limit(&self, z: f64, polled: &Polled<'_, '_>) -> Result<f64> {
        self.restart();
        let estimate = self.estimate();
        let bound = self.bound(z);
        if estimate == bound {
            return Ok(bound);
        }
        let target = z * z;
        let resolution = self.resolution();
        // dev(x) − dev(x̂) − z² and its slope (NaN where the inner problem failed); the last
        // point is kept, as the first is asked for twice (the check at the bound, then
        // Newton's start).
        let last = Cell::new((f64::NAN, (f64::NAN, f64::NAN)));
        let deviance_excess = |x: f64| {
            if last.get().0 == x {
                return last.get().1;
            }
            let found = match self.at_polled(x, false, polled) {
                Ok(point) => {
                    let e = point.deviance - self.fit.deviance - target;
                    (if e.abs() <= resolution { 0.0 } else { e }, point.slope)
                }
                Err(_) => (f64::NAN, f64::NAN),
            };
            last.set((x, found));
            found
        };
        // With a one-dimensional inner problem (a random intercept) the root is sought as
        // |ζ(x)| − |z|, with slope (d dev/dx)/(2|ζ|): ζ is close to linear in x where the
        // deviance is close to quadratic (exactly so for β with θ fixed), so Newton's steps
        // on it land near the limit where those on dev − z² overshoot. (Profiles with more
        // inner coordinates can level off below z² towards a bound, where Newton's steps on
        // dev − z² are the ones their checks at the bound were tuned for.)
        let on_zeta = self.origin.len() == 1;
        let excess = |x: f64| {
            let (e, slope) = deviance_excess(x);
            if !on_zeta || e == 0.0 || e.is_nan() {
                return (e, slope);
            }
            let root = (e + target).max(0.0).sqrt();
            (root - z.abs(), if root > 0.0 { slope / (2.0 * root) } else { f64::NAN })
        };
        let step = self.initial_step(z);
        let start = if bound.is_finite() { estimate + 0.5 * (bound - estimate).clamp(-step, step) } else { estimate + z.signum() * step };
        if bound.is_finite() && !matches!(self.parameter, LmmParameter::Sigma) {
            // The profile may stay below z² up to the bound (0 or ±1): evaluated there only
            // when a Newton step from the first point would cross it.
            let (at_start, slope) = deviance_excess(start);
            polled.status()?;
            let predicted = start - at_start / slope;
            if at_start < 0.0 && !((predicted - estimate) * (bound - predicted) > 0.0) {
                let near_start = (self.warm.borrow().clone(), self.scalar.get());
                let (at_bound, _) = excess(bound);
                polled.status()?;
                if at_bound <= 0.0 {
                    return Ok(bound);
                }
                *self.warm.borrow_mut() = near_start.0;
                self.scalar.set(near_start.1);
            }
        }
        let root = newton_root(excess, estimate, bound, start, step);
        // Newton takes the bound as a point above z², which the check above assumes only
        // when a step would cross it: a profile that flattens below z² (an SD whose profile
        // levels off towards 0, a correlation's towards ±1) draws the iterates to the bound
        // without ever passing z², where they run out (towards 0) or stop a rounding short
        // of it (towards ±1). The profile then stops at the bound when it is below z² there.
        let at_bound = (root.x - bound).abs() <= 8.0 * f64::EPSILON * bound.abs();
        if (!root.converged || at_bound) && bound.is_finite() && !matches!(self.parameter, LmmParameter::Sigma) {
            let (excess_at_bound, _) = excess(bound);
            polled.status()?;
            if excess_at_bound <= 0.0 {
                return Ok(bound);
            }
        }
        converged(root, "the profile-likelihood limit", polled)
    }

    /// A first step from the estimate: about a standard error for β, a fraction of the
    /// estimate (or of σ/√N) for the variance parameters.
    fn initial_step(&self, z: f64) -> f64 {
        let estimate = self.estimate();
        match self.parameter {
            LmmParameter::Beta(i) => self.fit.beta_covariance[i * self.model.p + i].sqrt(),
            LmmParameter::Sigma => 0.5 * estimate / self.model.n_obs.sqrt(),
            LmmParameter::Variance(i) => {
                let (r, c) = self.columns.positions[i];
                if r == c {
                    0.5 * estimate.max(self.fit.sigma / self.model.n_obs.sqrt())
                } else {
                    0.5 * (z.signum() - estimate).abs()
                }
            }
        }
    }

    /// The profile at 2·`steps` + 1 values ordered by value: the estimate and `steps` values
    /// evenly spaced on each side out to the limits where |ζ| = `zeta_max` (or the bounds 0
    /// and ±1 where the profile stops short of it); a side is empty when the estimate is on
    /// its bound.
    ///
    /// # Errors
    /// `InvalidArgument` for a `zeta_max` that is not a positive finite number or `steps` = 0;
    /// `TooLarge` when the points do not fit in memory; the errors of [`LmmProfile::interval`].
    pub fn zeta_grid(&self, zeta_max: f64, steps: usize, checkpoint: &mut Checkpoint<'_>) -> Result<Vec<LmmProfilePoint>> {
        if steps == 0 {
            return Err(HnmError::InvalidArgument { argument: "steps", reason: "must be at least 1" });
        }
        let (lower, upper) = self.interval(zeta_max, checkpoint)?;
        let mut points = with_capacity(&[steps.saturating_mul(2).saturating_add(1)], POINTS)?;
        let estimate = self.estimate();
        // The k-th of `steps` values towards `limit`; the last is the limit itself, which
        // x̂ + (limit − x̂)·1 can miss by a rounding (a correlation's bound 1 as 1 − 1e-16).
        let toward = |limit: f64, k: usize| if k == steps { limit } else { estimate + (limit - estimate) * (k as f64 / steps as f64) };
        let below = collected((0..steps).filter(|_| lower < estimate).map(|k| toward(lower, steps - k)), POINTS)?;
        let above = collected((1..=steps).filter(|_| upper > estimate).map(|k| toward(upper, k)), POINTS)?;
        // Each side from the estimate outwards, so that every inner search starts close by.
        self.restart();
        // Filled within its exact capacity.
        let mut lower_side = with_capacity(&[below.len()], POINTS)?;
        for &x in below.iter().rev() {
            lower_side.push(self.at(x, checkpoint)?);
        }
        self.restart();
        points.extend(lower_side.into_iter().rev());
        points.push(self.at(estimate, checkpoint)?);
        for &x in &above {
            points.push(self.at(x, checkpoint)?);
        }
        Ok(points)
    }
}

/// The profile-likelihood intervals ([`LmmProfile::interval`]) of `parameters`, the
/// parameters shared among up to `threads` threads.
///
/// # Errors
/// The errors of [`LmmProfile::new`] and [`LmmProfile::interval`] (the first parameter's
/// that failed); `Interrupted` when `interrupt` reports a user interrupt, which every thread
/// then stops for.
pub fn profile_intervals(
    model: &LinearMixedModel, fit: &LmmFit, parameters: &[LmmParameter], z: f64, threads: usize, interrupt: &dyn Interrupt,
) -> Result<Vec<(f64, f64)>> {
    each_profile(model, fit, parameters, threads, interrupt, |profile, checkpoint| profile.interval(z, checkpoint))
}

/// The profiles ([`LmmProfile::zeta_grid`]) of `parameters` on up to `threads` threads.
///
/// # Errors
/// As [`profile_intervals`], with the errors of [`LmmProfile::zeta_grid`].
pub fn profile_grids(
    model: &LinearMixedModel, fit: &LmmFit, parameters: &[LmmParameter], zeta_max: f64, steps: usize, threads: usize, interrupt: &dyn Interrupt,
) -> Result<Vec<Vec<LmmProfilePoint>>> {
    each_profile(model, fit, parameters, threads, interrupt, |profile, checkpoint| profile.zeta_grid(zeta_max, steps, checkpoint))
}

/// Below this many multiplications per evaluation of the criterion (about m (q + p + 1)² for m
/// groups) the profiles are computed one after the other on the calling thread: a whole
/// profile then costs well under a millisecond, less than starting the threads (the
/// one-way model of a few hundred groups).
const PARALLEL_WORK: usize = 20_000;

/// `work` on the profile of each parameter, in parallel when the model is large enough
/// ([`PARALLEL_WORK`]); the results in order.
fn each_profile<T: Send>(
    model: &LinearMixedModel, fit: &LmmFit, parameters: &[LmmParameter], threads: usize, interrupt: &dyn Interrupt,
    work: impl Fn(&LmmProfile<'_>, &mut Checkpoint<'_>) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let width = model.q + model.p + 1;
    if threads <= 1 || parameters.len() <= 1 || model.n.len().saturating_mul(width * width) < PARALLEL_WORK {
        let mut checkpoint = Checkpoint::new(interrupt);
        return parameters
            .iter()
            .map(|&parameter| LmmProfile::new(model, fit, parameter, &mut checkpoint).and_then(|profile| work(&profile, &mut checkpoint)))
            .collect();
    }
    let results = in_parallel(
        parameters.len(),
        threads,
        interrupt,
        || Ok(()),
        |_, i, stop| {
            let mut checkpoint = Checkpoint::new(stop);
            Ok(Some(LmmProfile::new(model, fit, parameters[i], &mut checkpoint).and_then(|profile| work(&profile, &mut checkpoint))))
        },
    )?;
    results.into_iter().map(|r| r.unwrap_or(Err(HnmError::Interrupted))).collect()
}

/// The random-effects columns of every grouping factor side by side, Q = Σ_f q_f of them in
/// θ's order of the factors, with Λ the block-diagonal matrix of the factors' Λ_f: its
/// blocks are the factors' blocks one after another, so θ's entries are at the positions
/// [`theta_layout`] gives for them (with one factor, the model's own columns and layout).
#[derive(Debug, Clone)]
pub(super) struct AllColumns {
    /// Q.
    pub(super) q: usize,
    /// Λ's blocks over the Q columns.
    pub(super) blocks: Vec<usize>,
    /// θ's positions in the Q × Q Λ.
    pub(super) positions: Vec<(usize, usize)>,
    /// Each column's map to internal units.
    pub(super) random: Vec<Affine>,
    /// Each factor's first column and number of columns.
    pub(super) factors: Vec<(usize, usize)>,
    /// The map from the internal random effects to the data's (Q × Q, block diagonal).
    pub(super) to_user_random: Vec<f64>,
}

impl AllColumns {
    /// The first column and the size of the block of Λ that holds column `column`.
    fn block_of(&self, column: usize) -> (usize, usize) {
        let mut offset = 0;
        for &size in &self.blocks {
            if column < offset + size {
                return (offset, size);
            }
            offset += size;
        }
        (offset, 0)
    }

    /// Λ (Q × Q) of θ.
    pub(super) fn lambda(&self, theta: &[f64]) -> Vec<f64> {
        let mut lambda = vec![0.0; self.q * self.q];
        for (&(r, c), &t) in self.positions.iter().zip(theta) {
            lambda[r * self.q + c] = t;
        }
        lambda
    }

    /// The Q × Q block-diagonal covariance of the random effects of a fit of the model, whose
    /// `re_covariance` holds the factors' q_f × q_f blocks one after another.
    pub(super) fn covariance(&self, fit: &LmmFit) -> Vec<f64> {
        let q = self.q;
        let mut out = vec![0.0; q * q];
        let mut at = 0;
        for &(offset, size) in &self.factors {
            for r in 0..size {
                for c in 0..size {
                    out[(offset + r) * q + offset + c] = fit.re_covariance[at + r * size + c];
                }
            }
            at += size * size;
        }
        out
    }
}

impl LinearMixedModel {
    /// Every factor's random-effects columns side by side ([`AllColumns`]).
    pub(super) fn all_columns(&self) -> AllColumns {
        let terms = self.factor_terms();
        let q: usize = terms.iter().map(|(t, _)| t.q).sum();
        let (mut blocks, mut random, mut factors, mut to_user_random) = (Vec::new(), Vec::with_capacity(q), Vec::new(), vec![0.0; q * q]);
        let mut offset = 0;
        for (t, _) in &terms {
            blocks.extend_from_slice(t.blocks);
            random.extend_from_slice(t.random);
            factors.push((offset, t.q));
            for r in 0..t.q {
                for c in 0..t.q {
                    to_user_random[(offset + r) * q + offset + c] = t.to_user_random[r * t.q + c];
                }
            }
            offset += t.q;
        }
        let positions = theta_layout(&blocks).0;
        AllColumns { q, blocks, positions, random, factors, to_user_random }
    }

    /// SDs and correlations (θ's layout), σ and β in the data's units, from internal Λ
    /// (Q × Q, every factor's: [`AllColumns`]), σ and β̃ of this model.
    fn user_parameters(&self, lambda: &[f64], sigma: f64, beta: &[f64]) -> Vec<f64> {
        let columns = self.all_columns();
        let q = columns.q;
        let mut llt = vec![0.0; q * q];
        for r in 0..q {
            for c in 0..q {
                llt[r * q + c] = (0..q).map(|k| lambda[r * q + k] * lambda[c * q + k]).sum();
            }
        }
        let ty = self.response.scale;
        let covariance: Vec<f64> = congruence(&columns.to_user_random, &llt, q).iter().map(|v| v * sigma * sigma * ty * ty).collect();
        let mut parameters: Vec<f64> = columns
            .positions
            .iter()
            .map(|&(r, c)| {
                if r == c {
                    covariance[r * q + r].max(0.0).sqrt()
                } else {
                    (covariance[r * q + c] / (covariance[r * q + r] * covariance[c * q + c]).sqrt()).clamp(-1.0, 1.0)
                }
            })
            .collect();
        parameters.push(sigma * ty);
        parameters.extend(self.user_beta(beta));
        parameters
    }
}

/// The root's x when the Newton iterations converged.
///
/// # Errors
/// `Interrupted` when `polled` reported a user interrupt; `Optimizer` naming `what` was
/// being solved for when the iterations did not converge.
fn converged(root: Root, what: &str, polled: &Polled) -> Result<f64> {
    polled.status()?;
    if root.converged {
        Ok(root.x)
    } else {
        Err(HnmError::Optimizer(format!("Newton's method could not find {what} for the profile (it stopped after {} steps at {:e})", root.steps, root.x)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Column, Criterion, CrossProducts, GroupingFactor, Never, Structure};

    /// 12 groups of 6 rows, y ~ 1 + x + (1 + x | g), from a fixed pseudo-random sequence.
    fn model() -> LinearMixedModel {
        let (mut y, mut x) = (Vec::new(), Vec::new());
        let mut state = 12345_u64;
        let mut uniform = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        for _ in 0..12 {
            let (a, b) = (uniform() * 2.0, uniform());
            for i in 0..6 {
                let xi = i as f64 + 10.0;
                x.push(xi);
                y.push(3.0 + a + (0.5 + b) * xi + uniform());
            }
        }
        slope_model(&x, &y, &[6; 12])
    }

    #[test]
    fn an_interrupt_stops_every_profile_thread() {
        use crate::numerics::interrupt::After;
        use std::time::{Duration, Instant};
        // 10^4 groups and 10^5 points a side for each parameter: many minutes of work.
        let (mut y, mut x) = (Vec::new(), Vec::new());
        for j in 0..10_000 {
            for i in 0..4 {
                x.push(i as f64);
                y.push((j % 7) as f64 * 0.3 + (0.5 + (j % 5) as f64 * 0.1) * i as f64 + ((i * j) % 3) as f64 * 0.2);
            }
        }
        let model = slope_model(&x, &y, &vec![4; 10_000]);
        let fit = model.fit(Criterion::Ml, None, &mut Checkpoint::new(&Never)).unwrap();
        let parameters: Vec<LmmParameter> = (0..3).map(LmmParameter::Variance).chain([LmmParameter::Sigma, LmmParameter::Beta(1)]).collect();
        let interrupt = After { start: Instant::now(), after: Duration::from_millis(50) };
        let result = profile_grids(&model, &fit, &parameters, 2.0, 100_000, 2, &interrupt);
        let took = interrupt.start.elapsed();
        assert_eq!(result.unwrap_err(), HnmError::Interrupted);
        assert!(took < Duration::from_millis(50) + 2 * Checkpoint::INTERVAL + Duration::from_millis(200), "{took:?}");
    }

    /// Every evaluation of a profile's inner problems asks the checkpoint inside (with several
    /// factors: per block of the dense core, as the fit's own evaluations); a limit stopped at
    /// its first, middle or last question returns `Interrupted`, and the profile's next
    /// interval equals a fresh profile's. On one thread, so that the questions can be counted.
    #[test]
    fn a_profile_of_several_factors_stops_inside_its_evaluations() {
        use crate::inference::interrupt_tests::crossed;
        use crate::numerics::blocked::ONE_THREAD;
        use crate::numerics::interrupt::StopAt;
        use crate::numerics::interrupt::{assert_stops, questions};
        ONE_THREAD.with(|one| one.set(true));
        let model = crossed();
        let never = &mut Checkpoint::new(&Never);
        let fit = model.fit(Criterion::Ml, None, never).unwrap();
        let per_factorisation = questions(|c| model.factorize_checked(&fit.internal_theta, &mut model.workspace()?, c));
        assert!(per_factorisation >= 3, "{per_factorisation} questions in a factorisation");
        for parameter in [LmmParameter::Variance(0), LmmParameter::Sigma, LmmParameter::Beta(1)] {
            let expected = LmmProfile::new(&model, &fit, parameter, never).unwrap().interval(1.96, never).unwrap();
            let profile = LmmProfile::new(&model, &fit, parameter, never).unwrap();
            let counter = StopAt::new(usize::MAX);
            let mut asking = Checkpoint::asking_every_time(&counter);
            let polled = Polled::new(&mut asking);
            let coordinate = profile.estimate_coordinate();
            match &profile.kind {
                Kind::Variance { copy, layout, fixed, .. } => {
                    let problem = VarianceProblem::new(copy, fit.criterion, layout, *fixed, coordinate, &profile.workspace, &polled);
                    problem.value_and_gradient(&profile.origin).unwrap();
                }
                Kind::Beta { combination, shift } => {
                    let target = (coordinate - shift) / model.response.scale;
                    let problem = BetaProblem::new(&model, fit.criterion, combination, target, &profile.workspace, &polled);
                    problem.value_and_gradient(&profile.origin).unwrap();
                }
            }
            let in_evaluation = counter.questions.get();
            assert!(in_evaluation > per_factorisation, "{parameter:?}: {in_evaluation} questions in an evaluation");
            let total = questions(|c| profile.interval(1.96, c));
            assert_stops(total, |c| profile.interval(1.96, c));
            assert_eq!(profile.interval(1.96, never).unwrap(), expected, "{parameter:?}");
        }
    }

    #[test]
    fn the_copy_in_data_coordinates_has_the_same_deviance() {
        let model = model();
        for criterion in [Criterion::Ml, Criterion::Reml] {
            let fit = model.fit(criterion, None, &mut Checkpoint::new(&Never)).unwrap();
            for order in [vec![0, 1], vec![1, 0]] {
                let copy = model.in_data_coordinates(&order).unwrap();
                let refit = copy.fit(criterion, None, &mut Checkpoint::new(&Never)).unwrap();
                assert!((refit.deviance - fit.deviance).abs() < 1e-8, "{} {}", refit.deviance, fit.deviance);
                assert!(refit.re_covariance.iter().zip(&fit.re_covariance).all(|(a, b)| (a - b).abs() < 1e-5 * (1.0 + b.abs())));
            }
        }
    }

    #[test]
    fn the_angle_gradient_matches_differences() {
        let layout = Layout::new(&[3]);
        let phi = [0.7, 1.3, 0.4, 0.9, 2.1, 0.3, -0.2];
        let g: Vec<f64> = (0..9).map(|i| if i % 3 <= i / 3 { 0.1 * i as f64 - 0.3 } else { 0.0 }).collect();
        let value = |phi: &[f64]| {
            let (l, s) = layout.lambda(phi);
            l.iter().zip(&g).map(|(a, b)| a * b).sum::<f64>() + 2.0 * s.ln()
        };
        let gradient = layout.chain_rule(&phi, &g, 2.0);
        for i in 0..phi.len() {
            let h = 1e-6;
            let (mut up, mut down) = (phi.to_vec(), phi.to_vec());
            up[i] += h;
            down[i] -= h;
            let numeric = (value(&up) - value(&down)) / (2.0 * h);
            assert!((numeric - gradient[i]).abs() < 1e-7, "{i}: {numeric} {}", gradient[i]);
        }
    }

    /// y ~ x + (1 + x | g) + (1 | h), g (8 levels) crossed with h (4 levels), 3 rows per
    /// cell, x offset from 0 (so that the copy in data coordinates un-centres the slope); when
    /// `nested`, h = g / 2 (g nested in h, 12 rows per cell: a nested chain).
    fn two_factor_model(nested: bool) -> LinearMixedModel {
        let (mut y, mut x, mut cells) = (Vec::new(), Vec::new(), Vec::new());
        let mut state = 2024_u64;
        let mut uniform = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let h_effects: Vec<f64> = (0..4).map(|_| uniform()).collect();
        for g in 0..8 {
            let (a, b) = (uniform() * 2.0, 0.5 * uniform());
            for h in 0..4 {
                let effect = h_effects[if nested { g / 2 } else { h }];
                for _ in 0..3 {
                    let xi = 5.0 + 4.0 * uniform();
                    x.push(xi);
                    y.push(1.0 + a + effect + (0.3 + b) * xi + 0.5 * uniform());
                    cells.push(if nested { g + 1 } else { g * 4 + h + 1 } as i32);
                }
            }
        }
        let groups = if nested { 8 } else { 32 };
        let pass = CrossProducts::from_columns(&[Column::Double(&y), Column::Double(&x)], cells.into_iter(), groups, &mut Checkpoint::new(&Never)).unwrap();
        // The levels of g and h of cell c.
        let levels = |c: usize| if nested { (c, c / 2) } else { (c / 4, c % 4) };
        let factors = [
            GroupingFactor {
                level_of_group: (0..groups).map(|c| levels(c).0).collect(),
                levels: 8,
                random: vec![Term::Intercept, Term::Variable(1)],
                blocks: vec![2],
            },
            GroupingFactor { level_of_group: (0..groups).map(|c| levels(c).1).collect(), levels: 4, random: vec![Term::Intercept], blocks: vec![1] },
        ];
        LinearMixedModel::with_factors(&pass.stats, 0, vec![Term::Intercept, Term::Variable(1)], &factors, &mut Checkpoint::new(&Never)).unwrap()
    }

    #[test]
    fn the_copy_of_several_factors_in_data_coordinates_has_the_same_deviance() {
        for nested in [false, true] {
            let model = two_factor_model(nested);
            // The nested rows make a nested chain, which holds its own copy of the couplings.
            assert_eq!(model.several.as_ref().expect("two factors").nested.is_some(), nested);
            assert_copy_has_the_same_deviance(&model);
        }
    }

    fn assert_copy_has_the_same_deviance(model: &LinearMixedModel) {
        for criterion in [Criterion::Ml, Criterion::Reml] {
            let fit = model.fit(criterion, None, &mut Checkpoint::new(&Never)).unwrap();
            for order in [vec![0, 1, 2], vec![1, 0, 2]] {
                let copy = model.in_data_coordinates(&order).unwrap();
                let refit = copy.fit(criterion, None, &mut Checkpoint::new(&Never)).unwrap();
                assert!((refit.deviance - fit.deviance).abs() < 1e-8, "{} {}", refit.deviance, fit.deviance);
                // The copy's map to the data's units undoes its order of the columns.
                for (a, b) in refit.re_covariance.iter().zip(&fit.re_covariance) {
                    assert!((a - b).abs() < 1e-5 * (1.0 + b.abs()), "{a} {b}");
                }
            }
        }
    }

    /// The profile of every parameter of `model` (`variances` θ's) passes through the estimate
    /// and reaches ±z at its limits (or its bound), ML and REML.
    fn assert_profiles_reach_z(model: &LinearMixedModel, variances: usize) {
        let checkpoint = &mut Checkpoint::new(&Never);
        for criterion in [Criterion::Ml, Criterion::Reml] {
            let fit = model.fit(criterion, None, checkpoint).unwrap();
            let parameters = (0..variances).map(LmmParameter::Variance).chain([LmmParameter::Sigma, LmmParameter::Beta(0), LmmParameter::Beta(1)]);
            for parameter in parameters {
                let profile = LmmProfile::new(model, &fit, parameter, checkpoint).unwrap();
                let at = profile.at(profile.estimate(), checkpoint).unwrap();
                assert!(at.zeta.abs() < 1e-4, "{parameter:?}: {}", at.zeta);
                let (lower, upper) = profile.interval(1.96, checkpoint).unwrap();
                for (limit, z) in [(lower, -1.96), (upper, 1.96)] {
                    let point = profile.at(limit, checkpoint).unwrap();
                    let on_bound = profile.bound(z) == limit;
                    assert!(on_bound || (point.zeta - z).abs() < 1e-6, "{parameter:?} {criterion:?}: {limit} {}", point.zeta);
                }
            }
        }
    }

    #[test]
    fn the_profile_of_several_factors_passes_through_the_estimate_and_reaches_z_at_its_limits() {
        assert_profiles_reach_z(&two_factor_model(false), 4);
    }

    #[test]
    fn the_profile_passes_through_the_estimate_and_reaches_z_at_its_limits() {
        assert_profiles_reach_z(&model(), 3);
    }

    /// Issue 25's seed 135 (R's `spread_design(135)`: 8 groups, x of SD 10): y ~ x + (x | g).
    fn spread_model() -> LinearMixedModel {
        #[rustfmt::skip]
        const X: [f64; 88] = [
            10.077730987799052, 0.5038158742637413, 6.1003293315303155, -10.671946557227638, 3.0162946288748027, -14.654786971007969,
            -3.800574595141221, -2.3219538496514494, -7.244148200186823, 3.649435645002833, 8.632985772925535, -5.540962279743393,
            -20.286791266635195, 5.2300793755303765, -8.144922644710249, 1.6332575625792645, 2.5554967267435846, -0.12084074845625292,
            2.20760801093434, -3.8981211709417267, 11.556055134095068, 7.689806380177407, -9.828633339459266, 5.482797485280012, -10.824771689325294,
            2.386289467814273, 0.14979978311002662, -2.2158197881443202, 6.662396136851038, 10.550696603381951, 8.941642221559407, 12.54965714303033,
            -4.990266952231155, 9.244045461852062, 0.22838196843847525, -11.21685269417199, 5.064666167910174, 4.444239890959882, -1.261604318113222,
            0.36204733886484053, -0.34449888370277926, -4.842525310357847, 12.202161546254429, -4.706200132211989, 9.584912142405074,
            -14.8367263192194, -2.2659757008376245, -10.665648712851354, -7.401916282064043, 1.3990079449380375, 0.6099483972440078,
            11.579246597740676, 6.459981123782983, -4.844975941073734, -20.127172682729608, -5.660976659409184, -0.6849383160575575, 7.29725550788374,
            -2.147242662285287, -4.474670077786839, 1.3550787146327814, 2.1126085561486003, 5.300819410443392, 0.049482767273768546,
            -5.534742839979828, -13.853142752334865, -14.1276356118199, 11.33371252512887, 16.24208153360003, 0.97800218999164, 2.3531434962022617,
            0.6956496004281075, 8.487040906328346, 2.11481531309143, 15.529856609713086, 0.7039204113499862, 2.841912101744017, 4.748532509660671,
            -0.1538254354612117, -5.592396406684922, -2.5844698951001126, 7.253705128821085, -10.16159781165776, 11.77632777256514,
            2.5115743128712364, -0.8320214961019422, 11.8138422894367, -7.33831597006617,
        ];
        #[rustfmt::skip]
        const Y: [f64; 88] = [
            11.309807936227495, -0.18617739899923658, 6.112656913254475, -8.664341602173945, 5.040685182141994, -8.613622685331809,
            -3.9702302084862446, 0.3284882493032292, -2.799607789885181, 2.7244573424674376, 8.523116831085176, -5.773338943366619,
            -17.76090077650985, 8.079363033338872, -8.170534218000258, 0.12430087091648767, 4.544226175869047, 1.2996284269732812, 3.977774077045456,
            -2.1800231481961037, 13.76510339251717, 8.647189028814417, -11.813917043409395, 9.616651879422779, -9.882930170529322, 3.2569351620304063,
            1.3136278120392983, 0.24926866033890427, 8.792555843179198, 8.450415808077913, 9.67895371840939, 14.911882190182975, -5.01837310665749,
            9.383459910368446, 2.104890271432574, -11.920066150068513, 7.296530540437354, 3.6735163861100606, -2.5649262810629185, 2.574931229490937,
            1.12268142816052, -7.344911182263103, 12.305205609786023, 0.0833066764419983, 9.444705100403572, -12.771038848224597, 1.4857910486944002,
            -9.133030754587912, -4.844585544249962, 5.831350630393763, 3.474487172251406, 15.048474083617135, 10.445955757214652, -4.05020756041295,
            -21.333090752913808, 0.7775480124748073, 3.660949236551547, 10.485952617580796, 1.3188848018441648, -5.206393095126948, 2.023460366718818,
            5.603641309992378, 6.885072806363442, 2.4049119000176096, -4.257623912973518, -15.617807261097465, -9.90535568424377, 9.003703147654932,
            15.919377022318056, 2.9052635616107008, 0.8415382044130912, 2.6479186064715696, 9.188559591136432, 1.4968812545648402, 13.180858012129322,
            1.4777051381191941, 5.05664480703504, 7.597486299950341, 4.670683616265741, -1.926207177408653, 2.515400641286493, 11.50318481021534,
            -5.238578053234009, 12.256898845899546, 3.0628410803687682, 2.986898398460765, 15.190053266133283, -5.814991072153301,
        ];
        slope_model(&X, &Y, &[9, 9, 10, 15, 6, 13, 12, 14])
    }

    #[test]
    fn an_inner_optimum_known_to_the_deviance_rounding_is_a_profile_point() {
        let model = spread_model();
        let checkpoint = &mut Checkpoint::new(&Never);
        let fit = model.fit(Criterion::Ml, None, checkpoint).unwrap();
        let profile = LmmProfile::new(&model, &fit, LmmParameter::Sigma, checkpoint).unwrap();
        // The σ where the inner search stops with a gradient of 2e-5, as no step lowers D.
        let sigma = 1.7302779885769248;
        let point = profile.at(sigma, checkpoint).unwrap();
        let Kind::Variance { copy, layout, fixed, .. } = &profile.kind else { unreachable!("σ's profile") };
        let never = &mut Checkpoint::new(&Never);
        let polled = Polled::new(never);
        let problem = VarianceProblem::new(copy, Criterion::Ml, layout, *fixed, profile.coordinate_of(sigma).0, &profile.workspace, &polled);
        let x = profile.warm.borrow().clone();
        let (value, gradient) = problem.value_and_gradient(&x).unwrap();
        // The gradient is D's: Richardson's extrapolation of central differences (error
        // O(h⁴) + D's rounding 1e-12 / h).
        let central = |i: usize, h: f64| {
            let (mut up, mut down) = (x.clone(), x.clone());
            up[i] += h;
            down[i] -= h;
            (problem.value(&up).unwrap() - problem.value(&down).unwrap()) / (2.0 * h)
        };
        for (i, g) in gradient.iter().enumerate() {
            let numeric = (4.0 * central(i, 1e-5) - central(i, 2e-5)) / 3.0;
            assert!((numeric - g).abs() < 1e-6, "{i}: {numeric} {g}");
        }
        // No point of dense grids about it, out to 1e-6 (50 times the Newton step that is
        // left, 2e-8), is lower by more than the resolution 1e-12 |D̂|.
        let resolution = 1e-12 * fit.deviance;
        let mut lowest = f64::INFINITY;
        for spacing in [2e-10, 2e-8, 2e-7] {
            for k in 0..11 * 11 * 11 {
                let steps = [k % 11, k / 11 % 11, k / 121];
                let trial: Vec<f64> = x.iter().zip(steps).map(|(v, s)| v + spacing * (s as f64 - 5.0)).collect();
                lowest = lowest.min(problem.value(&trial).unwrap());
            }
        }
        assert!(lowest > value - resolution, "{lowest} {value}");
        assert!((point.deviance - model.unit_correction(Criterion::Ml) - value).abs() <= resolution);
        // lme4 1.1's profile limits (bobyqa, rhoend = 1e-12), interpolated by splines.
        let (lower, upper) = profile.interval(1.959963984540054, checkpoint).unwrap();
        assert!((lower - 1.5217446696).abs() < 1e-4 && (upper - 2.1151066786).abs() < 1e-4, "{lower} {upper}");
    }

    /// y ~ x + (x | g) with the data's x and y, groups of `sizes` rows.
    fn slope_model(x: &[f64], y: &[f64], sizes: &[usize]) -> LinearMixedModel {
        let g: Vec<i32> = sizes.iter().zip(1..).flat_map(|(&n, j)| std::iter::repeat_n(j, n)).collect();
        let pass = CrossProducts::from_columns(&[Column::Double(y), Column::Double(x)], g.into_iter(), sizes.len(), &mut Checkpoint::new(&Never)).unwrap();
        let structure =
            Structure { response: 0, fixed: vec![Term::Intercept, Term::Variable(1)], random: vec![Term::Intercept, Term::Variable(1)], blocks: vec![2] };
        LinearMixedModel::new(&pass.stats, structure).unwrap()
    }

    #[test]
    fn an_inner_optimum_on_a_zero_sd_is_searched_again_from_both_signs_of_the_correlation() {
        // Issue 25's seed 56 (R's `spread_design(56)`), REML: at the upper limit of the slope's
        // SD (.sig03), the last point's optimum and the estimate's coordinates both lead to
        // .sig01 = 0, 0.035 above the lowest inner optimum (.sig01 0.159, correlation 0.22).
        #[rustfmt::skip]
        const X: [f64; 81] = [
            7.507668307086247, -10.117960908486538, -4.20825541161857, -8.850341694416219, 7.859467054114679, -14.23280226229743,
            -4.433160241619189, 9.982605895475947, -2.9358284759252697, -1.4856361771545168, 14.297310306785633, -10.132133552670835,
            20.356200824098813, -4.348735067722228, 5.06391716246682, 11.329985832601743, 3.7706723796286257, -13.06368878267085,
            -6.379696348260815, 1.9791044524194241, 5.458058358770266, -2.1786477547879284, -13.182561523594128, 10.545923826632965,
            -9.465827071003597, 0.09004847952961473, -5.3273776699219075, -5.018747954294588, -11.890195233197407, 8.405887873590228,
            -4.740426182227167, -1.6490194072965367, 6.019694840661781, -12.493021339796243, 3.440612734299855, 5.325171001488307,
            -11.283580622373906, 1.4527265797668607, -3.587309608651816, 3.7080627149177796, 14.611400105935, 1.1170306932926684,
            10.919740611229237, 23.537195014953216, 21.945769816350982, -1.2080047570758443, -19.336691551958243, -1.149585763127515,
            4.668582801800823, 5.775404647340867, -16.310881860790275, -1.5033988292607319, 5.1539112278747945, 14.773658013532668,
            7.004686385137128, -10.52802164089815, -2.6954528782538594, -18.86204094254554, -6.423916680127513, -2.659829373292457,
            1.9270898734557118, 4.698047920106566, 14.90660050691341, -13.528043540202363, -0.5354229066302402, -11.741946370169305,
            7.394607410006207, -0.48282122745333456, -2.7207855129646132, -8.944544686368582, -15.22462231050186, 0.03524362224431411,
            9.99146304170487, -11.436901418014875, 2.650995536047565, -14.812739283018725, 2.0718284005772842, 9.440211937952535,
            -15.185673916894684, -9.203455068762354, -4.277281323076453,
        ];
        #[rustfmt::skip]
        const Y: [f64; 81] = [
            8.690288562038624, -8.402447525058294, -3.4747898810932103, -5.962782734960033, 7.407276638231254, -10.830237342975686,
            -2.770634744117635, 13.785747760458314, -2.068235783310529, 1.6404653649365057, 19.580333053461644, -3.960025979495102,
            25.049495214628493, -0.9553191519515101, 7.421687483601302, 11.346071696404776, 6.476834708434675, -9.17036043156681,
            -3.7508946017446867, 5.921192266223645, 5.322153455395629, -0.9778778194532716, -13.598143956923378, 14.788551338174688,
            -2.382189605871589, 1.2910856560035786, -3.0885752975869565, -4.475594463918755, -9.672330522196887, 10.695960768241994,
            -4.671425630886459, 0.2974478084964238, 10.348655378135497, -13.234055765425577, 4.466238135177895, 9.063624165617451,
            -9.777978136874047, 2.869315210604985, -3.3500116683262675, 5.976757140929043, 17.059743109420328, 3.2948902937529847,
            13.786773499714936, 26.28961076543704, 22.497121462497905, -0.17147490958690703, -18.697313581761176, -1.1081216584551519,
            5.892527966799454, 8.949427185999628, -13.093825971069057, 2.6870241153167127, 8.106859831327293, 15.966247544825181,
            9.769880095096418, -7.621098436047835, -2.915742332866101, -17.644411523297887, -1.7277987661141414, -1.9270835528974046,
            3.6147294160076395, 6.5361254657938925, 15.752127430251177, -10.182208450251181, 0.13947947528992, -8.190295238154148,
            10.520739358838442, 1.6422165527976573, -2.8311576219522068, -5.2358393966924925, -13.924841386299384, -0.48023166485543567,
            13.158743537621262, -8.737685851355229, 3.020370711889334, -14.677584464141749, 5.423034823076202, 12.87696226915078,
            -11.773374620547887, -5.73309328326445, -2.384072572390225,
        ];
        let model = slope_model(&X, &Y, &[10, 9, 9, 8, 11, 10, 14, 10]);
        let checkpoint = &mut Checkpoint::new(&Never);
        let fit = model.fit(Criterion::Reml, None, checkpoint).unwrap();
        let profile = LmmProfile::new(&model, &fit, LmmParameter::Variance(2), checkpoint).unwrap();
        // The limit before the fix, where the search ended on .sig01 = 0.
        let sd = 0.06524154;
        profile.at(sd, checkpoint).unwrap();
        let Kind::Variance { copy, layout, fixed, .. } = &profile.kind else { unreachable!("an SD's profile") };
        let never = &mut Checkpoint::new(&Never);
        let polled = Polled::new(never);
        let problem = VarianceProblem::new(copy, Criterion::Reml, layout, *fixed, profile.coordinate_of(sd).0, &profile.workspace, &polled);
        let x = profile.warm.borrow().clone();
        let value = problem.value(&x).unwrap();
        // A dense grid over the free coordinates (the intercept's scaled SD from 0 to 3 times
        // the optimum's, the correlation's angle over [0, π], log σ ± 0.1) is nowhere lower.
        let mut lowest = f64::INFINITY;
        for k in 0..41 * 41 * 21 {
            let steps = [(k % 41) as f64, (k / 41 % 41) as f64, (k / 1681) as f64];
            let trial = [3.0 * x[0].max(0.01) * steps[0] / 40.0, std::f64::consts::PI * steps[1] / 40.0, x[2] + 0.01 * (steps[2] - 10.0)];
            lowest = lowest.min(problem.value(&trial).unwrap());
        }
        assert!(lowest > value - 1e-9, "{lowest} {value}");
        // The limit where the dense criterion of tests/testthat/test-lmm-profile.R is z² above
        // its minimum (R's optim from there finds nothing lower).
        let (_, upper) = profile.interval(1.959963984540054, checkpoint).unwrap();
        assert!((upper - 0.06564066).abs() < 1e-7, "{upper}");
    }
}
