//! extendr glue for inference: profile-likelihood intervals and profiles, and the
//! parametric-bootstrap refits. Conversions only; the statistics live in hnm-core.

use extendr_api::prelude::*;
use hnm_core::{with_capacity, Checkpoint, Fit, GroupStats, Profile, ProfileParameter, Unit};

use crate::{criterion, respond, stats_from, RInterrupt};

const PARAMETERS: [ProfileParameter; 3] = [ProfileParameter::Tau, ProfileParameter::Sigma, ProfileParameter::Mu];

/// The statistics in their unit (see `hnm_core::Unit`) and the fit there: profiles are
/// computed on these, so they do not depend on the data's scale or offset.
struct InUnit {
    unit: Unit,
    center: f64,
    stats: GroupStats,
    fit: Fit,
}

impl InUnit {
    fn new(s: &GroupStats, reml: bool, checkpoint: &mut Checkpoint) -> hnm_core::Result<InUnit> {
        let unit = Unit::of_data(s);
        let stats = unit.scale(s)?;
        let fit = hnm_core::fit_from(&stats, criterion(reml), None, checkpoint)?;
        Ok(InUnit { unit, center: s.center(), stats, fit })
    }

    fn profile(&self, parameter: ProfileParameter) -> Profile<'_> {
        Profile::new(&self.stats, &self.fit, parameter)
    }

    /// A location (μ) or scale (τ, σ) value back in the data's units.
    fn location(&self, x: f64) -> f64 {
        self.center + self.unit.from_unit(x, 1)
    }

    fn scale(&self, x: f64) -> f64 {
        self.unit.from_unit(x, 1)
    }
}

/// Profile-likelihood limits (τ, σ, μ; lower then upper) for critical value `z`, of the
/// ML (`reml = FALSE`) or REML criterion.
/// @noRd
#[extendr]
fn rs_profile_ci(center: f64, n: &[f64], mean: &[f64], ss: &[f64], reml: bool, z: f64) -> Robj {
    let result = stats_from(center, n, mean, ss).and_then(|s| {
        let checkpoint = &mut Checkpoint::new(&RInterrupt);
        let in_unit = InUnit::new(&s, reml, checkpoint)?;
        let mut limits = Vec::with_capacity(6);
        for parameter in PARAMETERS {
            let (lower, upper) = in_unit.profile(parameter).interval(z, checkpoint).map_err(|e| e.renamed("z", "level"))?;
            let to_data = |x| if parameter == ProfileParameter::Mu { in_unit.location(x) } else { in_unit.scale(x) };
            limits.extend([to_data(lower), to_data(upper)]);
        }
        Ok(limits)
    });
    respond(result, Robj::from)
}

/// The profiles of the parameters `which` (1 τ, 2 σ, 3 μ) at ζ = −zeta_max..zeta_max in
/// `steps` steps a side: for each point the parameter index, ζ, and τ, σ, μ at the inner optimum.
/// @noRd
#[extendr]
#[allow(clippy::too_many_arguments)]
fn rs_profile(center: f64, n: &[f64], mean: &[f64], ss: &[f64], reml: bool, zeta_max: f64, steps: i32, which: &[i32]) -> Robj {
    let result = stats_from(center, n, mean, ss).and_then(|s| {
        let checkpoint = &mut Checkpoint::new(&RInterrupt);
        let in_unit = InUnit::new(&s, reml, checkpoint)?;
        let steps = usize::try_from(steps).unwrap_or(0);
        let what = "the profile points `steps` asks for";
        let mut rows = with_capacity(&[which.len(), steps.saturating_mul(2).saturating_add(1)], what)?;
        for (index, parameter) in PARAMETERS.into_iter().enumerate().filter(|(i, _)| which.contains(&(*i as i32 + 1))) {
            let grid = in_unit.profile(parameter).zeta_grid(zeta_max, steps, checkpoint).map_err(|e| e.renamed("zeta_max", "alphamax"))?;
            rows.extend(grid.into_iter().map(|point| (index as i32 + 1, point)));
        }
        Ok((in_unit, rows))
    });
    respond(result, |(in_unit, rows)| {
        let column = |get: &dyn Fn(&hnm_core::ProfilePointFull) -> f64| Doubles::from_values(rows.iter().map(|(_, p)| get(p)));
        list!(
            par = Integers::from_values(rows.iter().map(|(index, _)| *index)),
            zeta = column(&|p| p.zeta),
            tau = column(&|p| in_unit.scale(p.params.tau2.max(0.0).sqrt())),
            sigma = column(&|p| in_unit.scale(p.params.sigma2.sqrt())),
            mu = column(&|p| in_unit.location(p.params.mu))
        )
        .into()
    })
}

/// Refits of bootstrap replicates given as a replicates × groups matrix of centered group
/// means and a vector of pooled within-group sums of squares, on `threads` threads; NA where
/// a refit failed.
/// @noRd
#[extendr]
#[allow(clippy::too_many_arguments)]
fn rs_bootstrap(center: f64, n: &[f64], mean: &[f64], ss: &[f64], reml: bool, means: &[f64], ssw_totals: &[f64], threads: i32) -> Robj {
    let threads = usize::try_from(threads).unwrap_or(1);
    let result = stats_from(center, n, mean, ss).and_then(|s| hnm_core::refit_replicates(&s, means, ssw_totals, criterion(reml), threads, &RInterrupt));
    respond(result, |refits| {
        let column = |get: fn(&hnm_core::Params) -> f64| Doubles::from_values(refits.iter().map(|r| r.as_ref().map_or(Rfloat::na(), |p| Rfloat::from(get(p)))));
        list!(mu = column(|p| p.mu), sigma2 = column(|p| p.sigma2), tau2 = column(|p| p.tau2)).into()
    })
}

extendr_module! {
    mod inference;
    fn rs_profile_ci;
    fn rs_profile;
    fn rs_bootstrap;
}
