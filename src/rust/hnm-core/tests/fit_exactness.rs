//! Deterministic checks of the fits and the ANOVA estimator against closed forms and
//! profiled likelihoods computed independently here from the raw responses, and against
//! published lme4 results.

use hnm_core::{fit, fit_from, Anova, Criterion, Fit, GroupStats};

mod common;

/// Four groups of three with clear group effects: the ML and REML fits are interior.
const BALANCED: [&[f64]; 4] = [&[10.2, 11.9, 9.7], &[14.1, 15.3, 13.2], &[8.4, 9.9, 10.8], &[12.5, 11.1, 13.9]];

/// Unbalanced sizes 2, 5, 3, 7, 4, 1 (one singleton group), interior ML and REML fits.
const UNBALANCED: [&[f64]; 6] =
    [&[4.1, 5.3], &[7.2, 6.8, 8.1, 7.7, 6.4], &[3.0, 4.4, 3.9], &[6.1, 5.2, 7.0, 6.6, 5.8, 6.9, 5.5], &[9.0, 8.2, 8.8, 9.6], &[5.0]];

/// lme4's `Dyestuff`: yield of dyestuff by batch.
const DYESTUFF: [&[f64]; 6] = [
    &[1545.0, 1440.0, 1440.0, 1520.0, 1580.0],
    &[1540.0, 1555.0, 1490.0, 1560.0, 1495.0],
    &[1595.0, 1550.0, 1605.0, 1510.0, 1560.0],
    &[1445.0, 1440.0, 1595.0, 1465.0, 1545.0],
    &[1595.0, 1630.0, 1515.0, 1635.0, 1625.0],
    &[1520.0, 1455.0, 1450.0, 1480.0, 1445.0],
];

/// lme4's `Dyestuff2`: simulated data whose ML (and REML) estimate of τ² is 0.
const DYESTUFF2: [&[f64]; 6] = [
    &[7.298, 3.846, 2.434, 9.566, 7.990],
    &[5.220, 6.556, 0.608, 11.788, -0.892],
    &[0.110, 10.386, 13.434, 5.510, 8.166],
    &[2.212, 4.852, 7.092, 9.288, 4.980],
    &[0.282, 9.014, 4.458, 9.446, 7.198],
    &[1.722, 4.782, 8.106, 0.758, 3.758],
];

/// −2 logLik of the ML fit of `Yield ~ 1 + (1 | Batch)` to Dyestuff, as lme4 reports it.
const DYESTUFF_ML_DEVIANCE: f64 = 327.327059881135;

fn transformed(groups: &[&[f64]], offset: f64, scale: f64) -> Vec<Vec<f64>> {
    groups.iter().map(|g| g.iter().map(|&y| offset + scale * y).collect()).collect()
}

fn owned(groups: &[&[f64]]) -> Vec<Vec<f64>> {
    transformed(groups, 0.0, 1.0)
}

/// The statistics the library computes from the (y, code) columns R would pass, with the
/// groups interleaved rather than sorted.
fn library_stats(groups: &[Vec<f64>]) -> GroupStats {
    let longest = groups.iter().map(Vec::len).max().unwrap_or(0);
    let (mut y, mut codes) = (Vec::new(), Vec::new());
    for i in 0..longest {
        for (j, group) in groups.iter().enumerate() {
            if let Some(&value) = group.get(i) {
                y.push(value);
                codes.push(j as i32 + 1);
            }
        }
    }
    common::one_way_stats(&y, &codes, groups.len(), &mut hnm_core::Checkpoint::new(&hnm_core::Never)).expect("valid data")
}

/// Group summaries by the corrected two-pass algorithm, in deviations from the first
/// response (exact for data near a large offset), independent of the library's one pass.
struct TwoPass {
    origin: f64,
    sizes: Vec<f64>,
    /// Group means minus `origin`.
    means: Vec<f64>,
    ssw: Vec<f64>,
}

impl TwoPass {
    fn new(groups: &[Vec<f64>]) -> Self {
        let origin = groups[0][0];
        let (mut sizes, mut means, mut ssw) = (Vec::new(), Vec::new(), Vec::new());
        for group in groups {
            let n = group.len() as f64;
            let shifted: Vec<f64> = group.iter().map(|&y| y - origin).collect();
            let mean = shifted.iter().sum::<f64>() / n;
            let (sum, sum_sq) = shifted.iter().fold((0.0, 0.0), |(s, q), &z| (s + (z - mean), q + (z - mean).powi(2)));
            sizes.push(n);
            means.push(mean + sum / n);
            ssw.push(sum_sq - sum * sum / n);
        }
        TwoPass { origin, sizes, means, ssw }
    }

    fn n_obs(&self) -> f64 {
        self.sizes.iter().sum()
    }

    fn n_groups(&self) -> f64 {
        self.sizes.len() as f64
    }

    /// Grand mean minus `origin`.
    fn grand_mean(&self) -> f64 {
        self.sizes.iter().zip(&self.means).map(|(n, m)| n * m).sum::<f64>() / self.n_obs()
    }

    fn ss_between(&self) -> f64 {
        let grand = self.grand_mean();
        self.sizes.iter().zip(&self.means).map(|(n, m)| n * (m - grand).powi(2)).sum()
    }

    fn ss_within(&self) -> f64 {
        self.ssw.iter().sum()
    }

    fn msg(&self) -> f64 {
        self.ss_between() / (self.n_groups() - 1.0)
    }

    fn mse(&self) -> f64 {
        self.ss_within() / (self.n_obs() - self.n_groups())
    }
}

/// The profiled deviance in λ = τ²/σ², written out from its definition: with
/// c_j = 1 + n_j λ and w_j = n_j/c_j, μ̂ = Σ w_j ȳ_j / Σ w_j, Q = SSW + Σ w_j (ȳ_j − μ̂)²,
/// σ̂² = Q/k and D = k (1 + log(2π Q/k)) + Σ log c_j + r log Σ w_j,
/// with (k, r) = (N, 0) for ML and (N − 1, 1) for REML.
struct Profile<'a> {
    data: &'a TwoPass,
    k: f64,
    r: f64,
}

struct ProfileAt {
    /// μ̂ minus the data's origin.
    mu: f64,
    sigma2: f64,
    deviance: f64,
    /// dD/dλ: μ̂ minimises Q, so dQ/dλ = Σ (dw_j/dλ) d_j² = −Σ w_j² d_j²; and dW/dλ = −Σ w_j².
    score: f64,
}

impl<'a> Profile<'a> {
    fn new(data: &'a TwoPass, criterion: Criterion) -> Self {
        let (k, r) = match criterion {
            Criterion::Ml => (data.n_obs(), 0.0),
            Criterion::Reml => (data.n_obs() - 1.0, 1.0),
        };
        Profile { data, k, r }
    }

    fn at(&self, lambda: f64) -> ProfileAt {
        let weights: Vec<f64> = self.data.sizes.iter().map(|n| n / (1.0 + n * lambda)).collect();
        let weight_sum: f64 = weights.iter().sum();
        let mu = weights.iter().zip(&self.data.means).map(|(w, m)| w * m).sum::<f64>() / weight_sum;
        let deviations: Vec<f64> = self.data.means.iter().map(|m| m - mu).collect();
        let q = self.data.ss_within() + weights.iter().zip(&deviations).map(|(w, d)| w * d * d).sum::<f64>();
        let dq = -weights.iter().zip(&deviations).map(|(w, d)| (w * d).powi(2)).sum::<f64>();
        let dw = -weights.iter().map(|w| w * w).sum::<f64>();
        let log_c: f64 = self.data.sizes.iter().map(|n| (n * lambda).ln_1p()).sum();
        let log_2pi = (2.0 * std::f64::consts::PI).ln();
        ProfileAt {
            mu,
            sigma2: q / self.k,
            deviance: self.k * (1.0 + log_2pi + (q / self.k).ln()) + log_c + self.r * weight_sum.ln(),
            score: self.k * dq / q + weight_sum + self.r * dw / weight_sum,
        }
    }

    /// The root of the score by bisection down to adjacent floating-point numbers.
    fn root(&self) -> f64 {
        assert!(self.at(0.0).score < 0.0, "the profile must decrease at λ = 0 for an interior optimum");
        let mut hi = 1.0;
        while self.at(hi).score <= 0.0 {
            hi *= 2.0;
        }
        let mut lo = 0.0;
        loop {
            let mid = 0.5 * (lo + hi);
            if mid <= lo || mid >= hi {
                return mid;
            }
            if self.at(mid).score < 0.0 {
                lo = mid;
            } else {
                hi = mid;
            }
        }
    }
}

#[track_caller]
fn assert_close(label: &str, actual: f64, expected: f64, relative: f64) {
    assert!(
        (actual - expected).abs() <= relative * expected.abs(),
        "{label}: {actual} vs expected {expected} (relative error {:e})",
        ((actual - expected) / expected).abs()
    );
}

/// μ̂ compared through its distance from the data's origin, which is the part the data
/// determine; the last term allows for rounding μ̂ itself to the magnitude of the offset.
#[track_caller]
fn assert_mean_close(actual: f64, data: &TwoPass, expected_from_origin: f64) {
    let error = ((actual - data.origin) - expected_from_origin).abs();
    let allowed = 1e-10 * expected_from_origin.abs() + f64::EPSILON * actual.abs();
    assert!(error <= allowed, "mu: {actual} vs expected {} + {expected_from_origin}", data.origin);
}

fn fit_ok(groups: &[Vec<f64>], criterion: Criterion) -> Fit {
    fit(&library_stats(groups), criterion).expect("identifiable data")
}

/// The balanced data sets, also moved to a large offset and shrunk, where rounding bites.
fn balanced_variants() -> Vec<Vec<Vec<f64>>> {
    vec![owned(&BALANCED), transformed(&BALANCED, 1e6, 1.0), transformed(&BALANCED, 1e6, 1e-3), transformed(&BALANCED, 0.0, 1e3), owned(&DYESTUFF)]
}

#[test]
fn balanced_ml_equals_closed_form() {
    for groups in balanced_variants() {
        let data = TwoPass::new(&groups);
        let (m, n) = (data.n_groups(), data.sizes[0]);
        let tau2 = ((1.0 - 1.0 / m) * data.msg() - data.mse()) / n;
        assert!(tau2 > 0.0, "the closed form needs an interior optimum");
        let fitted = fit_ok(&groups, Criterion::Ml);
        assert!(!fitted.convergence.on_boundary);
        assert_close("ML sigma2", fitted.params.sigma2, data.mse(), 1e-10);
        assert_close("ML tau2", fitted.params.tau2, tau2, 1e-10);
        assert_mean_close(fitted.params.mu, &data, data.grand_mean());
    }
}

#[test]
fn balanced_reml_equals_anova_estimates() {
    for groups in balanced_variants() {
        let data = TwoPass::new(&groups);
        let tau2 = (data.msg() - data.mse()) / data.sizes[0];
        assert!(tau2 > 0.0, "REML equals ANOVA only when the ANOVA estimate is positive");
        let fitted = fit_ok(&groups, Criterion::Reml);
        assert!(!fitted.convergence.on_boundary);
        assert_close("REML sigma2", fitted.params.sigma2, data.mse(), 1e-10);
        assert_close("REML tau2", fitted.params.tau2, tau2, 1e-10);
        assert_mean_close(fitted.params.mu, &data, data.grand_mean());
    }
}

#[test]
fn any_warm_start_reaches_the_closed_forms() {
    // Balanced closed forms (σ̂² = MSE; ML τ̂² = ((1 − 1/m) MSG − MSE)/n, REML (MSG − MSE)/n),
    // computed here from the raw responses, reached from starts far on either side of λ̂,
    // at λ = 0, and from no start (ANOVA); Dyestuff2's τ̂² = 0 (lme4) from every start too.
    let starts = [None, Some(0.0), Some(1e-12), Some(0.05), Some(3.0), Some(1e9), Some(f64::NAN), Some(-1.0)];
    for groups in balanced_variants() {
        let data = TwoPass::new(&groups);
        let (m, n) = (data.n_groups(), data.sizes[0]);
        let closed = [(Criterion::Ml, ((1.0 - 1.0 / m) * data.msg() - data.mse()) / n), (Criterion::Reml, (data.msg() - data.mse()) / n)];
        for (criterion, tau2) in closed {
            for start in starts {
                let fitted = fit_from(&library_stats(&groups), criterion, start, &mut hnm_core::Checkpoint::new(&hnm_core::Never)).unwrap();
                assert_close(&format!("{criterion:?} sigma2 from {start:?}"), fitted.params.sigma2, data.mse(), 1e-10);
                assert_close(&format!("{criterion:?} tau2 from {start:?}"), fitted.params.tau2, tau2, 1e-10);
            }
        }
    }
    for criterion in [Criterion::Ml, Criterion::Reml] {
        for start in starts {
            let fitted = fit_from(&library_stats(&owned(&DYESTUFF2)), criterion, start, &mut hnm_core::Checkpoint::new(&hnm_core::Never)).unwrap();
            assert_eq!(fitted.params.tau2, 0.0, "Dyestuff2 {criterion:?} from {start:?}");
        }
    }
}

#[test]
fn profile_score_formula_matches_its_differences() {
    let data = TwoPass::new(&owned(&UNBALANCED));
    for criterion in [Criterion::Ml, Criterion::Reml] {
        let profile = Profile::new(&data, criterion);
        for lambda in [0.05, 0.7, 4.0] {
            let h = 1e-5 * lambda;
            let difference = (profile.at(lambda + h).deviance - profile.at(lambda - h).deviance) / (2.0 * h);
            let score = profile.at(lambda).score;
            assert!((difference - score).abs() <= 1e-7 * (1.0 + score.abs()), "{criterion:?} at λ = {lambda}: difference {difference} vs score {score}");
        }
    }
}

#[test]
fn unbalanced_fit_solves_the_profiled_score() {
    for groups in [owned(&UNBALANCED), transformed(&UNBALANCED, 1e6, 1.0), transformed(&UNBALANCED, -50.0, 1e-2)] {
        let data = TwoPass::new(&groups);
        for criterion in [Criterion::Ml, Criterion::Reml] {
            let profile = Profile::new(&data, criterion);
            let lambda = profile.root();
            let expected = profile.at(lambda);
            let fitted = fit_ok(&groups, criterion);
            assert!(!fitted.convergence.on_boundary, "{criterion:?}");
            assert_close("lambda", fitted.params.tau2 / fitted.params.sigma2, lambda, 1e-10);
            assert_close("sigma2", fitted.params.sigma2, expected.sigma2, 1e-10);
            assert_close("deviance", fitted.deviance, expected.deviance, 1e-10);
            assert_mean_close(fitted.params.mu, &data, expected.mu);
        }
    }
}

#[test]
fn dyestuff_ml_matches_lme4() {
    let fitted = fit_ok(&owned(&DYESTUFF), Criterion::Ml);
    assert_close("deviance", fitted.deviance, DYESTUFF_ML_DEVIANCE, 1e-9);
    assert_close("mu", fitted.params.mu, 1527.5, 1e-12);
}

#[test]
fn dyestuff2_ml_is_singular() {
    let groups = owned(&DYESTUFF2);
    let data = TwoPass::new(&groups);
    let fitted = fit_ok(&groups, Criterion::Ml);
    assert_eq!(fitted.params.tau2, 0.0);
    assert!(fitted.convergence.on_boundary);
    // With τ² = 0 the model is one normal sample of 30.
    let total_ss = data.ss_within() + data.ss_between();
    assert_close("sigma2", fitted.params.sigma2, total_ss / data.n_obs(), 1e-12);
    assert_mean_close(fitted.params.mu, &data, data.grand_mean());

    let anova = Anova::new(&library_stats(&groups)).unwrap();
    assert!(anova.tau2_untruncated < 0.0);
    assert_eq!(anova.tau2(), 0.0);
}

/// A singular fit whose profiled deviance is flat to the last bit just above λ = 0: found by
/// the property tests, where Brent's interior point came out one ulp below D(0).
#[test]
fn singular_fit_is_exactly_on_the_boundary_despite_rounding() {
    let groups = vec![vec![-989.3019661099441, -989.2867049903531], vec![-989.3081789347992]];
    let fitted = fit_ok(&groups, Criterion::Ml);
    assert!(fitted.convergence.profiled_score > 0.0);
    assert_eq!(fitted.params.tau2, 0.0, "tau2 should be exactly 0, got {:e}", fitted.params.tau2);
    assert!(fitted.convergence.on_boundary);
}

#[test]
fn anova_by_hand() {
    // Groups {1, 3}, {2, 4, 6}, {5}: means 2, 4, 5 and grand mean 21/6 = 3.5, so
    // SSB = 2·1.5² + 3·0.5² + 1·1.5² = 7.5 and SSW = 2 + 8 + 0 = 10, N = 6, m = 3;
    // n₀ = (6 − (4 + 9 + 1)/6)/2 = 11/6.
    let groups = vec![vec![1.0, 3.0], vec![2.0, 4.0, 6.0], vec![5.0]];
    let anova = Anova::new(&library_stats(&groups)).unwrap();
    assert_close("mu", anova.mu, 3.5, 1e-15);
    assert_close("MSG", anova.msg, 7.5 / 2.0, 1e-15);
    assert_close("MSE", anova.mse, 10.0 / 3.0, 1e-15);
    assert_close("n0", anova.n0, 11.0 / 6.0, 1e-15);
    assert_eq!((anova.df_between, anova.df_within), (2.0, 3.0));
    assert_close("tau2", anova.tau2(), (7.5 / 2.0 - 10.0 / 3.0) / (11.0 / 6.0), 1e-14);
    assert_eq!(anova.sigma2(), anova.mse);
}

#[test]
fn anova_unbalanced_matches_two_pass() {
    let groups = owned(&UNBALANCED);
    let data = TwoPass::new(&groups);
    let (n_obs, m) = (data.n_obs(), data.n_groups());
    let sum_sq_sizes: f64 = data.sizes.iter().map(|n| n * n).sum();
    let n0 = (n_obs - sum_sq_sizes / n_obs) / (m - 1.0);
    let anova = Anova::new(&library_stats(&groups)).unwrap();
    assert_close("MSG", anova.msg, data.msg(), 1e-12);
    assert_close("MSE", anova.mse, data.mse(), 1e-12);
    assert_close("n0", anova.n0, n0, 1e-14);
    assert_close("tau2", anova.tau2(), (data.msg() - data.mse()) / n0, 1e-12);
    assert_close("F", anova.f_statistic(), data.msg() / data.mse(), 1e-12);
}
