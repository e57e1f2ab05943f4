//! The information matrix behind the standard errors of an ML or REML fit.
//!
//! An ML fit uses the observed information, the Hessian H of −ℓ in (μ, σ², τ²). A REML fit
//! uses the restricted likelihood's: μ̂ is the GLS mean with variance 1/S, S = Σ n_j/v_j
//! (v_j = σ² + n_j τ², as lme4's `vcov`), and the variances' observed information is the
//! Schur complement I_vv − I_vμ I_μμ⁻¹ I_μv of half the Hessian of the REML criterion with μ
//! held fixed (see [`crate::Criterion::deviance`]), which is the Hessian of −ℓ_R(σ², τ²) with
//! μ profiled out; the two blocks are uncorrelated.
//!
//! Where the observed information is not positive definite (at or near τ̂² = 0 it can be
//! indefinite, and its inverse would give negative variances), the expected (Fisher)
//! information is used instead, which is positive definite whenever the model is
//! identifiable. With u_j = 1/v_j and e_j = ∂v_j/∂x (1 for σ², n_j for τ²):
//!
//! ML: I_μμ = Σ n_j u_j, I_μσ² = I_μτ² = 0, I_xy = ½ T_xy with
//! T_σ²σ² = Σ [(n_j − 1)/σ⁴ + u_j²], T_σ²τ² = Σ n_j u_j², T_τ²τ² = Σ n_j² u_j²;
//!
//! REML: I_μμ = S and I_xy = ½ tr(P V_x P V_y) with P = V⁻¹ − V⁻¹11ᵀV⁻¹/S, that is
//! ½ [T_xy − (2/S) Σ n_j e_x e_y u_j³ + (1/S²)(Σ n_j e_x u_j²)(Σ n_j e_y u_j²)].

use crate::data::stats::GroupStats;
use crate::model::one_way::fit::invert3;
use crate::model::one_way::likelihood::{groups, Params};
use crate::model::one_way::profiled_deviance::Criterion;

/// Which information matrix the standard errors of a fit come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Information {
    /// The observed information (the criterion's Hessian), positive definite at the estimate.
    Observed,
    /// The expected (Fisher) information, used where the observed one is not positive definite.
    Expected,
}

impl Information {
    /// "observed" or "expected", as the R package reports it.
    pub fn name(self) -> &'static str {
        match self {
            Information::Observed => "observed",
            Information::Expected => "expected",
        }
    }
}

/// The information of (μ, σ², τ²) for `criterion` at `params`, from statistics in the unit of
/// the fit, and which kind it is (see the module docs); `ml_hessian` is H there.
pub(crate) fn information(stats: &GroupStats, criterion: Criterion, params: &Params, ml_hessian: &[[f64; 3]; 3]) -> ([[f64; 3]; 3], Information) {
    let observed = match criterion {
        Criterion::Ml => *ml_hessian,
        Criterion::Reml => reml_observed(stats, params),
    };
    if positive_definite(&observed) {
        (observed, Information::Observed)
    } else {
        (expected(stats, criterion, params), Information::Expected)
    }
}

/// blockdiag(S, Schur complement of the REML criterion's half Hessian).
fn reml_observed(stats: &GroupStats, params: &Params) -> [[f64; 3]; 3] {
    let (_, h) = Criterion::Reml.deviance_derivatives(stats, params);
    let mut out = [[0.0; 3]; 3];
    for a in 1..3 {
        for b in 1..3 {
            out[a][b] = 0.5 * (h[a][b] - h[a][0] * h[0][b] / h[0][0]);
        }
    }
    out[0][0] = mean_precision(stats, params);
    out
}

/// S = Σ n_j/v_j.
fn mean_precision(stats: &GroupStats, p: &Params) -> f64 {
    groups(stats).map(|(n, _, _)| n / (p.sigma2 + n * p.tau2)).sum()
}

/// The expected information of −ℓ (ML) or −ℓ_R (REML) in (μ, σ², τ²).
///
/// # Example
/// ```
/// use hnm_core::{expected_information, Criterion, GroupStats, Params};
/// // Balanced, m = 2 groups of n = 2, σ² = 1, τ² = 0: v = 1, so I_τ²τ² = ½ Σ n² = 4.
/// let s = GroupStats::new(vec![2.0, 2.0], vec![0.0, 1.0], vec![1.0, 1.0]).unwrap();
/// let i = expected_information(&s, Criterion::Ml, &Params { mu: 0.5, sigma2: 1.0, tau2: 0.0 });
/// assert_eq!((i[0][0], i[1][1], i[1][2], i[2][2]), (4.0, 2.0, 2.0, 4.0));
/// ```
pub fn expected_information(stats: &GroupStats, criterion: Criterion, p: &Params) -> [[f64; 3]; 3] {
    expected(stats, criterion, p)
}

fn expected(stats: &GroupStats, criterion: Criterion, p: &Params) -> [[f64; 3]; 3] {
    let s2 = p.sigma2;
    let (mut t, mut cubic, mut square) = ([[0.0; 2]; 2], [[0.0; 2]; 2], [0.0; 2]);
    let mut precision = 0.0;
    for (n, _, _) in groups(stats) {
        let u = 1.0 / (s2 + n * p.tau2);
        let e = [1.0, n];
        precision += n * u;
        for a in 0..2 {
            square[a] += n * e[a] * u * u;
            for b in 0..2 {
                t[a][b] += e[a] * e[b] * u * u;
                cubic[a][b] += n * e[a] * e[b] * u * u * u;
            }
        }
        t[0][0] += (n - 1.0) / (s2 * s2);
    }
    let mut out = [[0.0; 3]; 3];
    out[0][0] = precision;
    for a in 0..2 {
        for b in 0..2 {
            let mut value = t[a][b];
            if criterion == Criterion::Reml {
                value += -2.0 * cubic[a][b] / precision + square[a] * square[b] / (precision * precision);
            }
            out[a + 1][b + 1] = 0.5 * value;
        }
    }
    out
}

/// True when the symmetric matrix `a` is positive definite (its Cholesky factor exists).
fn positive_definite(a: &[[f64; 3]; 3]) -> bool {
    let mut l = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..=i {
            let sum: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            if i == j {
                let d = a[i][i] - sum;
                if !(d > 0.0 && d.is_finite()) {
                    return false;
                }
                l[i][i] = d.sqrt();
            } else {
                l[i][j] = (a[i][j] - sum) / l[j][j];
            }
        }
    }
    invert3(a).iter().flatten().all(|x| x.is_finite())
}
