//! The deviance with μ and σ² profiled out, as a function of λ = τ²/σ² = θ².
//!
//! With c_j = 1 + n_j λ and weights w_j = n_j/c_j, W = Σ w_j, the conditional estimates are
//! μ̂(λ) = Σ w_j ȳ_j / W and, with d_j = ȳ_j − μ̂ and Q(λ) = Σ SSW_j + Σ w_j d_j²,
//! σ̂²(λ) = Q/k where k = N (ML) or N − 1 (REML). The profiled deviance is
//!
//! D(λ) = k [1 + log(2π Q/k)] + Σ log c_j + r log W,     r = 0 (ML) or 1 (REML),
//!
//! which is −2ℓ (ML) or lme4's REML criterion. With A = Σ w_j² d_j², B = Σ w_j² d_j,
//! W₂ = Σ w_j², W₃ = Σ w_j³ and C = Σ w_j³ d_j² (so dQ/dλ = −A and dA/dλ = 2B²/W − 2C),
//!
//! D'(λ) = −k A/Q + W − r W₂/W,
//! D''(λ) = −k (A'/Q + A²/Q²) − W₂ + r (2W₃/W − W₂²/W²).

use crate::data::stats::GroupStats;
use crate::model::one_way::likelihood::{gradient, groups, hessian, neg_log_lik, Params};

const LOG_2PI: f64 = 1.837_877_066_409_345_5;

/// Which likelihood is maximised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Criterion {
    /// Maximum likelihood.
    Ml,
    /// Restricted (residual) maximum likelihood.
    Reml,
}

impl Criterion {
    /// The divisor k of σ̂² = Q/k and the weight r of log W (see the module docs).
    pub(crate) fn constants(self, n_obs: f64) -> (f64, f64) {
        match self {
            Criterion::Ml => (n_obs, 0.0),
            Criterion::Reml => (n_obs - 1.0, 1.0),
        }
    }
}

impl Criterion {
    /// The criterion as a function of all three parameters, on the deviance scale:
    /// D(μ, σ², τ²) = −2ℓ for ML, and for REML
    ///
    /// D_R(μ, σ², τ²) = −2ℓ(μ, σ², τ²) + log S − log 2π,   S = Σ n_j/v_j, v_j = σ² + n_j τ²,
    ///
    /// lme4's REML criterion with the fixed effect held at μ (Bates et al. 2015, JSS, eq. 42:
    /// the residual sum of squares gains W(μ − μ̂)²). Minimised over μ (at the GLS mean, as
    /// log S does not involve μ) it is the REML criterion of [`ProfiledDeviance`]; this is the
    /// function whose profiles give REML profile-likelihood intervals, μ's included.
    ///
    /// # Example
    /// ```
    /// use hnm_core::{Criterion, GroupStats, Params, ProfiledDeviance};
    /// let s = GroupStats::new(vec![3.0, 2.0], vec![0.0, 2.0], vec![1.0, 0.5]).unwrap();
    /// // At λ = τ²/σ² = 0.25, with μ and σ² at their REML values, D_R is the profiled criterion.
    /// let point = ProfiledDeviance::new(&s, Criterion::Reml).at(0.25);
    /// let p = Params { mu: point.mu, sigma2: point.sigma2, tau2: 0.25 * point.sigma2 };
    /// assert!((Criterion::Reml.deviance(&s, &p) - point.deviance).abs() < 1e-12);
    /// ```
    pub fn deviance(self, stats: &GroupStats, p: &Params) -> f64 {
        let ml = 2.0 * neg_log_lik(stats, p);
        match self {
            Criterion::Ml => ml,
            Criterion::Reml => ml + mean_precision(stats, p).0.ln() - LOG_2PI,
        }
    }

    /// The gradient of [`Criterion::deviance`] in (μ, σ², τ²): the first part of
    /// [`Criterion::deviance_derivatives`] without the Hessian's pass over the groups.
    ///
    /// # Example
    /// ```
    /// use hnm_core::{Criterion, GroupStats, Params};
    /// let s = GroupStats::new(vec![3.0, 2.0], vec![0.0, 2.0], vec![1.0, 0.5]).unwrap();
    /// let p = Params { mu: 1.0, sigma2: 0.6, tau2: 0.4 };
    /// assert_eq!(Criterion::Reml.deviance_gradient(&s, &p), Criterion::Reml.deviance_derivatives(&s, &p).0);
    /// ```
    pub fn deviance_gradient(self, stats: &GroupStats, p: &Params) -> [f64; 3] {
        let mut g = gradient(stats, p).map(|x| 2.0 * x);
        if self == Criterion::Reml {
            let (s, first, _) = mean_precision(stats, p);
            for a in 0..2 {
                g[a + 1] += first[a] / s;
            }
        }
        g
    }

    /// The gradient and Hessian of [`Criterion::deviance`] in (μ, σ², τ²), row-major.
    /// With S_a = ∂S/∂a: ∂ log S/∂a = S_a/S and ∂² log S/∂a∂b = S_ab/S − S_a S_b/S²,
    /// where S_σ² = −Σ n_j/v_j², S_τ² = −Σ n_j²/v_j², S_σ²σ² = 2Σ n_j/v_j³,
    /// S_σ²τ² = 2Σ n_j²/v_j³ and S_τ²τ² = 2Σ n_j³/v_j³ (log S does not involve μ).
    ///
    /// # Example
    /// ```
    /// use hnm_core::{gradient, Criterion, GroupStats, Params};
    /// let s = GroupStats::new(vec![3.0, 2.0], vec![0.0, 2.0], vec![1.0, 0.5]).unwrap();
    /// let p = Params { mu: 1.0, sigma2: 0.6, tau2: 0.4 };
    /// let (g, _) = Criterion::Ml.deviance_derivatives(&s, &p);
    /// assert_eq!(g[0], 2.0 * gradient(&s, &p)[0]);
    /// ```
    pub fn deviance_derivatives(self, stats: &GroupStats, p: &Params) -> ([f64; 3], [[f64; 3]; 3]) {
        let mut g = gradient(stats, p).map(|x| 2.0 * x);
        let mut h = hessian(stats, p).map(|row| row.map(|x| 2.0 * x));
        if self == Criterion::Reml {
            let (s, first, second) = mean_precision(stats, p);
            for a in 0..2 {
                g[a + 1] += first[a] / s;
                for b in 0..2 {
                    h[a + 1][b + 1] += second[a][b] / s - first[a] * first[b] / (s * s);
                }
            }
        }
        (g, h)
    }
}

/// S = Σ n_j/v_j (μ̂'s precision) and its first and second derivatives in (σ², τ²).
fn mean_precision(stats: &GroupStats, p: &Params) -> (f64, [f64; 2], [[f64; 2]; 2]) {
    let (mut s, mut first, mut second) = (0.0, [0.0; 2], [[0.0; 2]; 2]);
    for (n, _, _) in groups(stats) {
        let v = p.sigma2 + n * p.tau2;
        let dv = [1.0, n]; // ∂v_j/∂σ², ∂v_j/∂τ²
        s += n / v;
        for a in 0..2 {
            first[a] -= n * dv[a] / (v * v);
            for b in 0..2 {
                second[a][b] += 2.0 * n * dv[a] * dv[b] / (v * v * v);
            }
        }
    }
    (s, first, second)
}

/// The profiled deviance and everything derived from it at one value of λ.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProfilePoint {
    /// λ = τ²/σ².
    pub lambda: f64,
    /// μ̂(λ).
    pub mu: f64,
    /// σ̂²(λ) = Q/k.
    pub sigma2: f64,
    /// Σ w_j = μ̂'s precision times σ².
    pub weight_sum: f64,
    /// D(λ).
    pub deviance: f64,
    /// dD/dλ.
    pub d1: f64,
    /// d²D/dλ².
    pub d2: f64,
}

/// The profiled deviance of a data set under a criterion: the problem the fit minimises.
#[derive(Debug, Clone, Copy)]
pub struct ProfiledDeviance<'a> {
    stats: &'a GroupStats,
    criterion: Criterion,
    n_obs: f64,
    ssw_total: f64,
}

impl<'a> ProfiledDeviance<'a> {
    /// The profiled deviance of `stats` under `criterion`.
    ///
    /// # Example
    /// ```
    /// use hnm_core::{Criterion, GroupStats, ProfiledDeviance};
    /// let s = GroupStats::new(vec![2.0, 2.0], vec![0.0, 2.0], vec![1.0, 1.0]).unwrap();
    /// let at0 = ProfiledDeviance::new(&s, Criterion::Ml).at(0.0);
    /// // λ = 0: one normal sample of 4 with mean 1 and Σ(y − ȳ)² = 2 + 4·1.
    /// assert!((at0.sigma2 - 6.0 / 4.0).abs() < 1e-15);
    /// ```
    pub fn new(stats: &'a GroupStats, criterion: Criterion) -> Self {
        ProfiledDeviance { stats, criterion, n_obs: stats.n_obs(), ssw_total: stats.ssw_total() }
    }

    /// The criterion this deviance is for.
    pub fn criterion(&self) -> Criterion {
        self.criterion
    }

    /// The statistics this deviance is of.
    pub(crate) fn stats(&self) -> &'a GroupStats {
        self.stats
    }

    /// The groups one evaluation passes over (the work of a [`crate::Checkpoint::check_work`]).
    pub(crate) fn groups(&self) -> usize {
        self.stats.len()
    }

    /// D(λ) and its first two derivatives, in two passes over the groups.
    pub fn at(&self, lambda: f64) -> ProfilePoint {
        self.evaluate(lambda)
    }

    /// (D'(λ), D''(λ)) alone: the same sums as [`ProfiledDeviance::at`] without the
    /// logarithms of D, which the Newton iterations on the score do not need.
    pub(crate) fn score(&self, lambda: f64) -> (f64, f64) {
        let sums = self.sums(lambda, false);
        self.derivatives(&sums)
    }

    fn evaluate(&self, lambda: f64) -> ProfilePoint {
        let sums = self.sums(lambda, true);
        let (d1, d2) = self.derivatives(&sums);
        let (k, r) = self.criterion.constants(self.n_obs);
        let q = self.ssw_total + sums.between;
        ProfilePoint {
            lambda,
            mu: self.stats.center() + sums.mu,
            sigma2: q / k,
            weight_sum: sums.w1,
            deviance: k * (1.0 + LOG_2PI + (q / k).ln()) + sums.log_c + r * sums.w1.ln(),
            d1,
            d2,
        }
    }

    /// The sums over the groups at λ (Σ log c_j only when `with_log`: it dominates the cost).
    fn sums(&self, lambda: f64, with_log: bool) -> Sums {
        let weight = |n: f64| n / (1.0 + n * lambda);
        let mu = self.stats.centered_weighted_mean_by(weight);
        let mut s = Sums { mu, ..Sums::default() };
        for (n, mean, _) in groups(self.stats) {
            let w = weight(n);
            let d = mean - mu;
            let wd = w * d;
            s.w1 += w;
            s.w2 += w * w;
            s.w3 += w * w * w;
            s.between += wd * d;
            s.a += wd * wd;
            s.b += w * wd;
            s.c += w * wd * wd;
            if with_log {
                s.log_c += (n * lambda).ln_1p();
            }
        }
        s
    }

    fn derivatives(&self, s: &Sums) -> (f64, f64) {
        let q = self.ssw_total + s.between;
        let (k, r) = self.criterion.constants(self.n_obs);
        // 2B²/W, the envelope term, comes from μ̂(λ) moving with λ.
        let a1 = 2.0 * s.b * s.b / s.w1 - 2.0 * s.c;
        let (a, w1, w2) = (s.a, s.w1, s.w2);
        let d1 = -k * a / q + w1 - r * w2 / w1;
        let d2 = -k * (a1 / q + (a / q) * (a / q)) - w2 + r * (2.0 * s.w3 / w1 - (w2 / w1) * (w2 / w1));
        (d1, d2)
    }
}

/// The sums over the groups behind D, D' and D'' (see the module docs), with μ (centred).
#[derive(Default)]
struct Sums {
    mu: f64,
    w1: f64,
    w2: f64,
    w3: f64,
    between: f64,
    a: f64,
    b: f64,
    c: f64,
    log_c: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unbalanced() -> GroupStats {
        GroupStats::new(vec![3.0, 5.0, 2.0, 7.0], vec![1.0, 2.5, -0.5, 0.4], vec![2.0, 4.5, 0.3, 6.1]).unwrap()
    }

    #[test]
    fn criterion_derivatives_match_central_differences() {
        let s = unbalanced();
        let p = [0.8, 1.7, 0.6];
        let at = |x: [f64; 3]| Params { mu: x[0], sigma2: x[1], tau2: x[2] };
        for criterion in [Criterion::Ml, Criterion::Reml] {
            let (g, h) = criterion.deviance_derivatives(&s, &at(p));
            for k in 0..3 {
                let (mut up, mut down) = (p, p);
                up[k] += 1e-6;
                down[k] -= 1e-6;
                let fd = (criterion.deviance(&s, &at(up)) - criterion.deviance(&s, &at(down))) / 2e-6;
                assert!((fd - g[k]).abs() < 1e-6, "{criterion:?} gradient {k}: {fd} vs {}", g[k]);
                let (gu, gd) = (criterion.deviance_derivatives(&s, &at(up)).0, criterion.deviance_derivatives(&s, &at(down)).0);
                for l in 0..3 {
                    let fd2 = (gu[l] - gd[l]) / 2e-6;
                    assert!((fd2 - h[k][l]).abs() < 1e-5, "{criterion:?} hessian {k}{l}: {fd2} vs {}", h[k][l]);
                }
            }
        }
    }

    #[test]
    fn derivatives_match_central_differences() {
        let s = unbalanced();
        for criterion in [Criterion::Ml, Criterion::Reml] {
            let dev = ProfiledDeviance::new(&s, criterion);
            for lambda in [0.05, 0.4, 3.0] {
                let at = |l: f64| dev.at(l);
                let h = 1e-6 * lambda;
                let (up, down, mid) = (at(lambda + h), at(lambda - h), at(lambda));
                let d1 = (up.deviance - down.deviance) / (2.0 * h);
                let d2 = (up.d1 - down.d1) / (2.0 * h);
                assert!((d1 - mid.d1).abs() < 1e-6 * (1.0 + d1.abs()), "{criterion:?} D' {d1} vs {}", mid.d1);
                assert!((d2 - mid.d2).abs() < 1e-5 * (1.0 + d2.abs()), "{criterion:?} D'' {d2} vs {}", mid.d2);
            }
        }
    }
}
