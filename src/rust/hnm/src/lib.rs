//! extendr glue: converts R arguments to hnm-core calls and results back to R lists.
//!
//! No statistics live here. Core errors are returned as a list `hnm_core_error` (the
//! message) and `kind` (`HnmError::kind`), which the R side re-raises as a condition of
//! class `hnm_error_<kind>` and `hnm_error` (an interrupt as R's `interrupt`): expected
//! failures never unwind through R, and users never see a panic.

use extendr_api::prelude::*;
use hnm_core::{copied, Checkpoint, Criterion, CrossProducts, HnmError, Params};

mod anova_fit;
mod boot_glue;
mod distinct_rows;
mod groups;
mod kr_glue;
mod model;
mod predict;
mod r_toplevel;
mod wald;

pub(crate) use distinct_rows::indexed_columns;
pub(crate) use r_toplevel::{doubles_read_only, expanded, integers_read_only, RInterrupt};

/// A core error as an R object the R wrapper turns into an `hnm_error` condition.
pub(crate) fn core_error(error: HnmError) -> Robj {
    error_message(error.to_string(), error.kind())
}

/// An error message (a sentence) and its kind as an R object the R wrapper turns into a
/// condition of class `hnm_error_<kind>`.
pub(crate) fn error_message(message: String, kind: &str) -> Robj {
    list!(hnm_core_error = message, kind = kind).into()
}

/// Runs a core computation and converts its result or error for R.
pub(crate) fn respond<T>(result: hnm_core::Result<T>, to_r: impl FnOnce(T) -> Robj) -> Robj {
    match result {
        Ok(value) => to_r(value),
        Err(error) => core_error(error),
    }
}

/// The general model's statistics from R's copies of their parts (a saved fit's, a statistics
/// table's or a bootstrap's template), copied fallibly; errors name the fit's fields.
///
/// # Errors
/// `TooLarge` when the copy does not fit in memory; the errors of [`CrossProducts::new`].
pub(crate) fn stats_copy(pilot: &[f64], n: &[f64], means: &[f64], comoments: &[f64]) -> hnm_core::Result<CrossProducts> {
    pooled_stats_copy(pilot, n, means, comoments, None)
}

/// [`stats_copy`], in the pooled layout ([`CrossProducts::pooled`]) when `pooled` gives the
/// pooled sums and the 0-based group variables.
///
/// # Errors
/// As [`stats_copy`], and those of [`CrossProducts::pooled`].
pub(crate) fn pooled_stats_copy(
    pilot: &[f64], n: &[f64], means: &[f64], comoments: &[f64], pooled: Option<(&[f64], &[usize])>,
) -> hnm_core::Result<CrossProducts> {
    let what = "a copy of the per-group statistics";
    let (n, means, comoments) = (copied(n, what)?, copied(means, what)?, copied(comoments, what)?);
    let stats = match pooled {
        None => CrossProducts::new(pilot.to_vec(), n, means, comoments),
        Some((totals, variables)) => CrossProducts::pooled(pilot.to_vec(), n, means, comoments, copied(totals, what)?, variables),
    };
    stats.map_err(|e| {
        [
            ("pilot", "fit$stats$pilot"),
            ("n", "fit$stats$n"),
            ("means", "fit$stats$means"),
            ("comoments", "fit$stats$comoments"),
            ("pooled", "fit$stats$pooled"),
            ("group_variables", "fit$stats$group_variables"),
        ]
        .into_iter()
        .fold(e, |e, (from, to)| e.renamed(from, to))
    })
}

/// REML when `reml` is true, ML otherwise (R's `REML` argument).
pub(crate) fn criterion(reml: bool) -> Criterion {
    if reml {
        Criterion::Reml
    } else {
        Criterion::Ml
    }
}

pub(crate) fn flatten(m: [[f64; 3]; 3]) -> Vec<f64> {
    // Column-major for R's matrix(); the matrices are symmetric, so the order is immaterial.
    (0..3).flat_map(|j| (0..3).map(move |i| m[i][j])).collect()
}

/// Negative log-likelihood, gradient or Hessian (`what` = 0, 1, 2) at `par` of the one-way
/// model behind `ptr`.
/// @noRd
#[extendr]
fn rs_neg_log_lik(ptr: Robj, par: &[f64], what: i32) -> Robj {
    let stats = match model::one_way_statistics(&ptr) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let result = Params::from_slice(par, "mus2t2").map(|p| (stats, p)).and_then(|(s, p)| match what {
        0 => Ok((s, p)),
        _ if p.in_space() => Ok((s, p)),
        _ => Err(HnmError::OutsideParameterSpace { argument: "mus2t2" }),
    });
    respond(result, |(s, p)| match what {
        0 => Robj::from(hnm_core::neg_log_lik(&s, &p)),
        1 => Robj::from(hnm_core::gradient(&s, &p).to_vec()),
        _ => Robj::from(flatten(hnm_core::hessian(&s, &p))),
    })
}

/// The estimates every estimator hands to R's `new_hnm_fit()`, in the data's units.
pub(crate) struct Estimates {
    pub params: Params,
    pub theta: f64,
    pub deviance: f64,
    pub se_mu: f64,
    pub hessian: [[f64; 3]; 3],
    pub covariance: [[f64; 3]; 3],
}

impl Estimates {
    /// A named R list of the estimates followed by the estimator's own fields.
    pub(crate) fn into_list(self, extra: Vec<(&'static str, Robj)>) -> Robj {
        let mut pairs: Vec<(&str, Robj)> = vec![
            ("mu", self.params.mu.into()),
            ("sigma2", self.params.sigma2.into()),
            ("tau2", self.params.tau2.into()),
            ("theta", self.theta.into()),
            ("deviance", self.deviance.into()),
            ("se_mu", self.se_mu.into()),
            ("hessian", flatten(self.hessian).into()),
            ("covariance", flatten(self.covariance).into()),
        ];
        pairs.extend(extra);
        List::from_pairs(pairs).into()
    }
}

/// ML (`reml = FALSE`) or REML fit of the one-way model behind `ptr` by its closed form.
/// @noRd
#[extendr]
fn rs_fit(ptr: Robj, reml: bool) -> Robj {
    let stats = match model::one_way_statistics(&ptr) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let result = hnm_core::fit_from(&stats, criterion(reml), None, &mut Checkpoint::new(&RInterrupt));
    respond(result, |f| {
        let c = f.convergence;
        let estimates = Estimates { params: f.params, theta: f.theta, deviance: f.deviance, se_mu: f.se_mu, hessian: f.hessian, covariance: f.covariance() };
        estimates.into_list(vec![
            ("std_errors", f.standard_errors().to_vec().into()),
            ("information", f.information.name().into()),
            ("unit", f.unit.value().into()),
            ("brent_iterations", (c.brent_iterations as f64).into()),
            ("newton_iterations", (c.newton_iterations as f64).into()),
            ("profiled_score", c.profiled_score.into()),
            ("gradient_norm", c.gradient_norm.into()),
            ("on_boundary", c.on_boundary.into()),
        ])
    })
}

extendr_module! {
    mod hnm;
    use anova_fit;
    use boot_glue;
    use distinct_rows;
    use groups;
    use kr_glue;
    fn rs_neg_log_lik;
    fn rs_fit;
    use model;
    use predict;
    use wald;
}
