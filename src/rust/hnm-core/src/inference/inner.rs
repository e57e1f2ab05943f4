//! The inner problems of the variance profiles: the fit's criterion D (−2ℓ, or the REML
//! criterion with μ held fixed, see [`crate::Criterion::deviance`]) with one variance fixed
//! and μ at its GLS mean, as a function of the other variance.
//!
//! With v_j = σ² + n_j τ², u_j = 1/v_j, d_j = ȳ_j − μ̂, ν = N − m, SSW = Σ SSW_j and
//! e_j = ∂v_j/∂x (1 for x = σ², n_j for x = τ²), the deviance-scale derivatives are
//!
//! D_x = [ν/σ² − SSW/σ⁴] + Σ e_j u_j − Σ e_j n_j d_j² u_j²,
//! D_xx = [−ν/σ⁴ + 2 SSW/σ⁶] − Σ e_j² u_j² + 2 Σ e_j² n_j d_j² u_j³,
//! D_μx = 2 Σ e_j n_j d_j u_j²,  D_μμ = 2 Σ n_j u_j,
//!
//! (the bracketed terms for x = σ² only), plus for REML, with S = Σ n_j u_j,
//! S_x = −Σ e_j n_j u_j² and S_xx = 2 Σ e_j² n_j u_j³, the terms S_x/S and S_xx/S − S_x²/S².
//! The profile over μ has score D_x (D_μ = 0 at the GLS mean) and curvature the Schur
//! complement D_xx − D_μx²/D_μμ. Both come from one pass for μ̂ and one for the sums, with one
//! division per group, in the unit nearest σ (see [`crate::Unit`]) so no power of σ overflows.

use crate::data::stats::GroupStats;
use crate::data::unit::Unit;
use crate::model::one_way::likelihood::groups;
use crate::model::one_way::profiled_deviance::Criterion;

/// The variance that is free in an inner problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FreeVariance {
    Sigma2,
    Tau2,
}

/// (D_x, D_xx − D_μx²/D_μμ) at (σ², τ²) with μ at its GLS mean, x the `free` variance.
pub(crate) fn gls_score(stats: &GroupStats, criterion: Criterion, sigma2: f64, tau2: f64, free: FreeVariance) -> (f64, f64) {
    let unit = Unit::near(sigma2.sqrt());
    let (s2, t2) = (unit.to_unit(sigma2, 2), unit.to_unit(tau2, 2));
    let mu = stats.centered_weighted_mean_by(|n| n / (s2 + n * t2));
    let (mut g, mut h, mut h_mu, mut h_mumu) = (0.0, 0.0, 0.0, 0.0);
    let (mut s, mut s_x, mut s_xx) = (0.0, 0.0, 0.0);
    for (n, m, _) in groups(stats) {
        let u = 1.0 / (s2 + n * t2);
        let d = unit.to_unit(m - mu, 1);
        let e = if free == FreeVariance::Sigma2 { 1.0 } else { n };
        let (eu, ndu) = (e * u, n * d * u);
        g += eu - eu * ndu * d;
        h += eu * eu * (2.0 * ndu * d - 1.0);
        h_mu += eu * ndu;
        h_mumu += n * u;
        s_x -= eu * n * u;
        s_xx += eu * eu * n * u;
        s += n * u;
    }
    let (h_mu, h_mumu, s_xx) = (2.0 * h_mu, 2.0 * h_mumu, 2.0 * s_xx);
    if free == FreeVariance::Sigma2 {
        let nu = stats.n_obs() - stats.n_nonempty_groups() as f64;
        let ssw = unit.to_unit(stats.ssw_total(), 2);
        g += nu / s2 - ssw / (s2 * s2);
        h += -nu / (s2 * s2) + 2.0 * ssw / (s2 * s2 * s2);
    }
    if criterion == Criterion::Reml {
        g += s_x / s;
        h += s_xx / s - (s_x / s) * (s_x / s);
    }
    (unit.to_unit(g, 2), unit.to_unit(h - h_mu * h_mu / h_mumu, 4))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::one_way::likelihood::Params;

    #[test]
    fn equals_the_schur_complement_of_the_criterion_derivatives() {
        // Reference: Criterion::deviance_derivatives, built on the likelihood's analytic
        // gradient and Hessian (checked against a dense faer likelihood in tests/).
        let s = GroupStats::new(vec![3.0, 5.0, 2.0, 7.0, 1.0], vec![1.0, 2.5, -0.5, 0.4, 3.0], vec![2.0, 4.5, 0.3, 6.1, 0.0]).unwrap();
        for criterion in [Criterion::Ml, Criterion::Reml] {
            for (sigma2, tau2) in [(0.7, 0.0), (1.3, 0.4), (2.0, 5.0)] {
                let mu = s.center() + s.centered_weighted_mean_by(|n| n / (sigma2 + n * tau2));
                let (g, h) = criterion.deviance_derivatives(&s, &Params { mu, sigma2, tau2 });
                for (free, k) in [(FreeVariance::Sigma2, 1), (FreeVariance::Tau2, 2)] {
                    let (score, curvature) = gls_score(&s, criterion, sigma2, tau2, free);
                    let schur = h[k][k] - h[0][k] * h[0][k] / h[0][0];
                    assert!((score - g[k]).abs() < 1e-12 * (1.0 + g[k].abs()), "{criterion:?} {free:?}: {score} vs {}", g[k]);
                    assert!((curvature - schur).abs() < 1e-12 * (1.0 + schur.abs()), "{criterion:?} {free:?}: {curvature} vs {schur}");
                }
            }
        }
    }
}
