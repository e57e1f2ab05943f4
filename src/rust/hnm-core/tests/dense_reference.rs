//! Property tests of the closed-form likelihood against a dense multivariate-normal
//! reference, of the analytic derivatives against finite differences, and of the ML fit
//! against perturbations, on random unbalanced designs.

use faer::linalg::solvers::Solve;

mod common;
use faer::{Mat, Side};
use hnm_core::{fit, gradient, hessian, neg_log_lik, Criterion, GroupStats, Params};
use proptest::prelude::*;

/// A random unbalanced design in the row order R would pass it (groups interleaved).
#[derive(Debug, Clone)]
struct Design {
    y: Vec<f64>,
    codes: Vec<i32>,
    n_groups: usize,
    /// Location and spread of the data, used to place μ near it.
    offset: f64,
    scale: f64,
}

impl Design {
    fn stats(&self) -> GroupStats {
        common::one_way_stats(&self.y, &self.codes, self.n_groups, &mut hnm_core::Checkpoint::new(&hnm_core::Never)).expect("valid design")
    }

    fn groups(&self) -> Vec<Vec<f64>> {
        let mut groups = vec![Vec::new(); self.n_groups];
        for (&y, &code) in self.y.iter().zip(&self.codes) {
            groups[code as usize - 1].push(y);
        }
        groups
    }

    fn n_obs(&self) -> f64 {
        self.y.len() as f64
    }

    fn largest_group(&self) -> f64 {
        self.groups().iter().map(Vec::len).max().unwrap_or(0) as f64
    }
}

fn group_sizes() -> impl Strategy<Value = Vec<usize>> {
    (prop::collection::vec(1usize..=9, 2..=12), any::<prop::sample::Index>()).prop_map(|(mut sizes, pick)| {
        // The model needs replication in at least one group.
        if sizes.iter().all(|&n| n < 2) {
            let j = pick.index(sizes.len());
            sizes[j] = 2;
        }
        sizes
    })
}

/// y = offset + scale · (ratio · a_j + e_ij) with a_j, e_ij uniform on (−3, 3); ratio = 0
/// makes singular ML fits common.
fn design() -> impl Strategy<Value = Design> {
    group_sizes()
        .prop_flat_map(|sizes| {
            let n_obs: usize = sizes.iter().sum();
            let codes: Vec<i32> = sizes.iter().enumerate().flat_map(|(j, &n)| std::iter::repeat_n(j as i32 + 1, n)).collect();
            (
                Just(codes).prop_shuffle(),
                prop::collection::vec(-3.0..3.0f64, n_obs),
                prop::collection::vec(-3.0..3.0f64, sizes.len()),
                prop_oneof![Just(0.0), 0.0..3.0f64],
                prop_oneof![Just(0.0), Just(1e6), Just(-1e6), -1e3..1e3f64],
                -3.0..3.0f64,
            )
        })
        .prop_map(|(codes, noise, effects, ratio, offset, log10_scale)| {
            let scale = 10f64.powf(log10_scale);
            let y = codes.iter().zip(&noise).map(|(&code, &e)| offset + scale * (ratio * effects[code as usize - 1] + e)).collect();
            Design { y, codes, n_groups: effects.len(), offset, scale }
        })
}

/// A design with parameters: μ near the data, σ² in [1e-2, 1e2), τ² in {0} ∪ [1e-4, 1e2].
fn design_and_params() -> impl Strategy<Value = (Design, Params)> {
    (design(), -3.0..3.0f64, -2.0..2.0f64, prop_oneof![Just(0.0), (-4.0..2.0f64).prop_map(|e| 10f64.powf(e))]).prop_map(
        |(design, mu_shift, log10_sigma2, tau2)| {
            let mu = design.offset + design.scale * mu_shift;
            (design, Params { mu, sigma2: 10f64.powf(log10_sigma2), tau2 })
        },
    )
}

/// −log N(y_j; μ1, σ²I + τ²11ᵀ) summed over groups, from a Cholesky factor of each
/// group's covariance, and the sum of the magnitudes of its terms (the scale of its rounding).
fn dense_neg_log_lik(groups: &[Vec<f64>], p: &Params) -> (f64, f64) {
    let log_2pi = (2.0 * std::f64::consts::PI).ln();
    let (mut total, mut magnitude) = (0.0, 0.0);
    for y in groups.iter().filter(|y| !y.is_empty()) {
        let n = y.len();
        let cov = Mat::from_fn(n, n, |i, k| if i == k { p.sigma2 + p.tau2 } else { p.tau2 });
        let chol = cov.llt(Side::Lower).expect("σ²I + τ²11ᵀ is positive definite");
        let log_det: f64 = (0..n).map(|i| 2.0 * chol.L()[(i, i)].ln()).sum();
        let resid = Mat::from_fn(n, 1, |i, _| y[i] - p.mu);
        let solved = chol.solve(&resid);
        let quad: f64 = (0..n).map(|i| resid[(i, 0)] * solved[(i, 0)]).sum();
        let n = n as f64;
        total += 0.5 * (n * log_2pi + log_det + quad);
        magnitude += 0.5 * (n * log_2pi + log_det.abs() + quad);
    }
    (total, magnitude)
}

/// How far μ, σ² and τ² move before −ℓ changes appreciably: finite-difference steps and
/// perturbations are taken relative to these. τ² enters through σ² + n_j τ², so its scale
/// shrinks with the largest group.
fn natural_scales(p: &Params, largest_group: f64) -> [f64; 3] {
    [(p.sigma2 + p.tau2).sqrt(), p.sigma2, p.sigma2 / largest_group + p.tau2]
}

fn shifted(p: &Params, k: usize, delta: f64) -> Params {
    let mut x = [p.mu, p.sigma2, p.tau2];
    x[k] += delta;
    Params { mu: x[0], sigma2: x[1], tau2: x[2] }
}

/// Second-order difference quotient of `f` along parameter k: central, or one-sided
/// (−3f₀ + 4f₁ − f₂)/2h when a central step would leave τ² ≥ 0.
fn difference<const K: usize>(f: impl Fn(&Params) -> [f64; K], p: &Params, k: usize, h: f64) -> [f64; K] {
    let mut out = [0.0; K];
    if shifted(p, k, -h).in_space() {
        let (up, down) = (f(&shifted(p, k, h)), f(&shifted(p, k, -h)));
        for i in 0..K {
            out[i] = (up[i] - down[i]) / (2.0 * h);
        }
    } else {
        let (f0, f1, f2) = (f(p), f(&shifted(p, k, h)), f(&shifted(p, k, 2.0 * h)));
        for i in 0..K {
            out[i] = (-3.0 * f0[i] + 4.0 * f1[i] - f2[i]) / (2.0 * h);
        }
    }
    out
}

const RELATIVE_STEP: f64 = 1e-4;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn closed_form_matches_dense_reference((design, p) in design_and_params()) {
        let closed = neg_log_lik(&design.stats(), &p);
        let (dense, magnitude) = dense_neg_log_lik(&design.groups(), &p);
        prop_assert!(
            (closed - dense).abs() <= 1e-10 * magnitude,
            "closed form {closed} vs dense {dense} (magnitude {magnitude})"
        );
    }

    #[test]
    fn gradient_matches_differences_of_neg_log_lik((design, p) in design_and_params()) {
        let stats = design.stats();
        let g = gradient(&stats, &p);
        // The terms of −ℓ are of size |f| + N; a unit move on a natural scale changes them by that much.
        let magnitude = neg_log_lik(&stats, &p).abs() + design.n_obs();
        let scales = natural_scales(&p, design.largest_group());
        for k in 0..3 {
            let h = RELATIVE_STEP * scales[k];
            let [fd] = difference(|q| [neg_log_lik(&stats, q)], &p, k, h);
            let tol = 1e-5 * g[k].abs() + 1e-7 * magnitude / scales[k];
            prop_assert!((fd - g[k]).abs() <= tol, "∂f/∂θ{k}: difference {fd} vs analytic {}", g[k]);
        }
    }

    #[test]
    fn hessian_matches_differences_of_gradient((design, p) in design_and_params()) {
        let stats = design.stats();
        let h = hessian(&stats, &p);
        let magnitude = neg_log_lik(&stats, &p).abs() + design.n_obs();
        let scales = natural_scales(&p, design.largest_group());
        for k in 0..3 {
            let column = difference(|q| gradient(&stats, q), &p, k, RELATIVE_STEP * scales[k]);
            for l in 0..3 {
                let tol = 1e-5 * h[k][l].abs() + 1e-7 * magnitude / (scales[k] * scales[l]);
                prop_assert!(
                    (column[l] - h[k][l]).abs() <= tol,
                    "H[{k}][{l}]: difference {} vs analytic {}", column[l], h[k][l]
                );
            }
        }
    }

    #[test]
    fn ml_fit_is_a_maximum(design in design()) {
        let stats = design.stats();
        prop_assume!(stats.ssw_total() > 0.0);
        let fitted = fit(&stats, Criterion::Ml).expect("identifiable design");
        let p = fitted.params;
        prop_assert!(p.in_space());
        prop_assert_eq!(fitted.convergence.on_boundary, p.tau2 == 0.0);
        if fitted.convergence.on_boundary {
            prop_assert!(p.tau2 == 0.0 && p.tau2.is_sign_positive());
        }

        let f0 = neg_log_lik(&stats, &p);
        let magnitude = f0.abs() + design.n_obs();
        let scales = natural_scales(&p, design.largest_group());
        for relative in [1e-2, 1e-4] {
            for direction in 1..27 {
                let signs = [direction % 3, direction / 3 % 3, direction / 9].map(|s| s as f64 - 1.0);
                let moved = Params {
                    mu: p.mu + signs[0] * relative * scales[0],
                    sigma2: p.sigma2 + signs[1] * relative * scales[1],
                    tau2: p.tau2 + signs[2] * relative * scales[2],
                };
                if !moved.in_space() {
                    continue;
                }
                let f = neg_log_lik(&stats, &moved);
                prop_assert!(f0 <= f + 1e-13 * magnitude, "−ℓ {f0} at the fit {p:?} exceeds {f} at {moved:?}");
            }
        }

        // Stationarity up to rounding: of the gradient terms (size (|f| + N)/scale), and of the
        // parameters themselves, whose last bits move the gradient by about H·ε·|θ|.
        let h = hessian(&stats, &p);
        let x = [p.mu, p.sigma2, p.tau2];
        let allowed: f64 = (0..3)
            .map(|k| {
                let from_params: f64 = (0..3).map(|l| h[k][l].abs() * x[l].abs()).sum();
                (1e-9 * magnitude / scales[k] + 8.0 * f64::EPSILON * from_params).powi(2)
            })
            .sum::<f64>()
            .sqrt();
        prop_assert!(
            fitted.convergence.gradient_norm <= allowed,
            "gradient norm {} exceeds {allowed} at {p:?}", fitted.convergence.gradient_norm
        );
    }
}
