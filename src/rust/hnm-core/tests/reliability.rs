//! Reliability: exact arithmetic on data with large offsets, and property tests that the fit
//! never panics, is equivariant under y ↦ c·y + d at extreme scales, and that the analytic
//! derivatives match finite differences there.

use hnm_core::{fit, gradient, hessian, neg_log_lik, Anova, Criterion, GroupStats, Params};

mod common;
use proptest::prelude::*;

/// NIST StRD SmLs data (9 treatments, first value base + b(t) + 0.2, then base + b(t) + 0.1 and
/// base + b(t) + 0.3 alternating; b(1) = 0.2, b(even) = 0.1, b(odd) = 0.3), parsed from the
/// decimal strings NIST prints (Rust's parser rounds correctly).
fn smls(base: &str, replicates: usize) -> (Vec<f64>, Vec<i32>) {
    let b = |i: usize| {
        if i == 1 {
            2
        } else if i % 2 == 0 {
            1
        } else {
            3
        }
    };
    let (mut y, mut codes) = (Vec::new(), Vec::new());
    for t in 1..=9 {
        for r in 1..=replicates {
            y.push(format!("{base}.{}", b(t) + b(r)).parse::<f64>().unwrap());
            codes.push(t as i32);
        }
    }
    (y, codes)
}

/// The exact within and between sums of squares of the stored doubles, in integer arithmetic:
/// every value is p + k·u with u the spacing of doubles at the data and k a small integer, so
/// SSW = u² Σ_j (n_j Σk² − (Σk)²)/n_j and (balanced groups) SSB = u² Σ_{j<l} (Σ_j k − Σ_l k)²/N,
/// with the numerators exact in i128 and a rounding or two in the final divisions.
fn exact_sums_of_squares(y: &[f64], codes: &[i32], n_groups: usize) -> (f64, f64) {
    let pilot = y[0];
    let spacing = y.iter().map(|v| ulp(*v)).fold(0.0, f64::max);
    let k: Vec<i128> = y
        .iter()
        .map(|&v| {
            let steps = (v - pilot) / spacing; // exact: the difference is a multiple of the spacing
            assert_eq!(steps.fract(), 0.0, "{v} - {pilot} over {spacing}");
            steps as i128
        })
        .collect();
    let (mut n, mut s1, mut s2) = (vec![0i128; n_groups], vec![0i128; n_groups], vec![0i128; n_groups]);
    for (&kj, &code) in k.iter().zip(codes) {
        let j = code as usize - 1;
        n[j] += 1;
        s1[j] += kj;
        s2[j] += kj * kj;
    }
    let u2 = spacing * spacing;
    let ssw: f64 = (0..n_groups).map(|j| (n[j] * s2[j] - s1[j] * s1[j]) as f64 / n[j] as f64).sum::<f64>() * u2;
    // Balanced groups: SSB = (1/N) Σ_{j<l} n² (ȳ_j − ȳ_l)² = u² Σ_{j<l} (Σ_j k − Σ_l k)² / N,
    // whose integer numerator stays below 2^127 for these data.
    assert!(n.iter().all(|&nj| nj == n[0]), "balanced data only");
    let numerator: i128 = (0..n_groups).flat_map(|j| (j + 1..n_groups).map(move |l| (j, l))).map(|(j, l)| (s1[j] - s1[l]) * (s1[j] - s1[l])).sum();
    let ssb = numerator as f64 / n.iter().sum::<i128>() as f64 * u2;
    (ssw, ssb)
}

fn ulp(x: f64) -> f64 {
    let bits = x.abs().to_bits();
    f64::from_bits(bits + 1) - f64::from_bits(bits)
}

fn relative_error(x: f64, exact: f64) -> f64 {
    ((x - exact) / exact).abs()
}

#[test]
fn smls_sums_of_squares_equal_integer_arithmetic_on_the_stored_values() {
    for base in ["1", "1000000", "1000000000000"] {
        for replicates in [21, 201, 2001] {
            let (y, codes) = smls(base, replicates);
            let stats = common::one_way_stats(&y, &codes, 9, &mut hnm_core::Checkpoint::new(&hnm_core::Never)).unwrap();
            let (ssw, ssb) = exact_sums_of_squares(&y, &codes, 9);
            let anova = Anova::new(&stats).unwrap();
            let n_obs = y.len() as f64;
            let label = format!("base {base}, {replicates} replicates");
            assert!(relative_error(anova.mse, ssw / (n_obs - 9.0)) < 1e-14, "{label}: MSE {} vs {}", anova.mse, ssw / (n_obs - 9.0));
            assert!(relative_error(anova.msg, ssb / 8.0) < 1e-14, "{label}: MSG {} vs {}", anova.msg, ssb / 8.0);
            // Balanced ML: σ̂² = MSE and τ̂² = ((1 − 1/m) MSG − MSE)/n.
            let ml = fit(&stats, Criterion::Ml).unwrap();
            let n = replicates as f64;
            let tau2 = ((8.0 / 9.0) * ssb / 8.0 - ssw / (n_obs - 9.0)) / n;
            assert!(relative_error(ml.params.sigma2, ssw / (n_obs - 9.0)) < 1e-13, "{label}: ML σ² {}", ml.params.sigma2);
            assert!(relative_error(ml.params.tau2, tau2) < 1e-12, "{label}: ML τ² {} vs {tau2}", ml.params.tau2);
        }
    }
}

/// Random group sizes (including singletons and one dominant group) and values on a 2⁻⁸ grid,
/// so that adding an offset up to 1e12 is exact.
fn grid_design() -> impl Strategy<Value = (Vec<f64>, Vec<i32>, usize)> {
    (prop::collection::vec(1usize..=8, 2..=15), 0usize..200)
        .prop_flat_map(|(mut sizes, extra)| {
            sizes[0] += extra; // sometimes one group holds most rows
            let n_obs: usize = sizes.iter().sum();
            let codes: Vec<i32> = sizes.iter().enumerate().flat_map(|(j, &n)| std::iter::repeat_n(j as i32 + 1, n)).collect();
            let m = sizes.len();
            (Just(codes), prop::collection::vec(-2000i32..2000, n_obs), prop::collection::vec(-2000i32..2000, m), Just(m))
        })
        .prop_map(|(codes, noise, effects, m)| {
            let y = codes.iter().zip(&noise).map(|(&c, &e)| f64::from(effects[c as usize - 1] + e) / 256.0).collect();
            (y, codes, m)
        })
}

fn stats_of(y: &[f64], codes: &[i32], m: usize) -> GroupStats {
    common::one_way_stats(y, codes, m, &mut hnm_core::Checkpoint::new(&hnm_core::Never)).unwrap()
}

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    a == b || (a - b).abs() <= tolerance * a.abs().max(b.abs())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Any finite statistics give Ok or an HnmError: no panic, and an Ok fit is in the space.
    #[test]
    fn fit_never_panics_on_finite_statistics(
        n in prop::collection::vec(prop_oneof![Just(0.0), Just(1.0), Just(2.0), 1.0..50.0f64], 1..8),
        means in prop::collection::vec(prop_oneof![Just(0.0), -1e300..1e300f64, -1e-300..1e-300f64, -10.0..10.0f64], 8),
        ss in prop::collection::vec(prop_oneof![Just(0.0), 0.0..1e300f64, 0.0..1e-300f64, 0.0..10.0f64], 8),
        reml in any::<bool>(),
    ) {
        let m = n.len();
        let n: Vec<f64> = n.iter().map(|v| v.floor()).collect();
        let ss: Vec<f64> = ss[..m].iter().zip(&n).map(|(&s, &nj)| if nj > 1.0 { s } else { 0.0 }).collect();
        let Ok(stats) = GroupStats::new(n, means[..m].to_vec(), ss) else { return Ok(()) };
        let criterion = if reml { Criterion::Reml } else { Criterion::Ml };
        if let Ok(f) = fit(&stats, criterion) {
            prop_assert!(f.params.sigma2 > 0.0 && f.params.tau2 >= 0.0, "{:?}", f.params);
            prop_assert!(f.params.mu.is_finite() && f.deviance.is_finite() && f.theta.is_finite());
            prop_assert!(f.standard_errors().iter().all(|v| !v.is_nan()));
        }
    }

    /// fit(c·y + d) = (c μ̂ + d, c² σ̂², c² τ̂²) for c from 1e-150 to 1e100 and d up to 1e12.
    #[test]
    fn fit_is_equivariant_at_extreme_scales(
        (y, codes, m) in grid_design(),
        log10_scale in -150.0..100.0f64,
        shift in prop_oneof![Just(0.0), Just(1e12), Just(-1e9), -1e6..1e6f64],
        reml in any::<bool>(),
    ) {
        let criterion = if reml { Criterion::Reml } else { Criterion::Ml };
        let base_stats = stats_of(&y, &codes, m);
        let Ok(base) = fit(&base_stats, criterion) else {
            prop_assert!(base_stats.check_identifiable().is_err());
            return Ok(());
        };
        let shift = (shift * 256.0).round() / 256.0;
        let shifted: Vec<f64> = y.iter().map(|v| v + shift).collect();
        let moved = fit(&stats_of(&shifted, &codes, m), criterion).unwrap();
        prop_assert!((moved.params.mu - shift - base.params.mu).abs() <= 4.0 * ulp(shift.abs().max(base.params.mu.abs())));
        prop_assert!(close(moved.params.sigma2, base.params.sigma2, 1e-9), "shift {shift}: {:?} vs {:?}", moved.params, base.params);
        prop_assert!(close(moved.params.tau2, base.params.tau2, 1e-9) || base.params.tau2 < 1e-9 * base.params.sigma2);

        let c = 10f64.powf(log10_scale);
        let scaled: Vec<f64> = y.iter().map(|v| v * c).collect();
        let big = fit(&stats_of(&scaled, &codes, m), criterion).unwrap();
        prop_assert!(close(big.params.mu / c, base.params.mu, 1e-9) || (big.params.mu / c - base.params.mu).abs() < 1e-9 * base.params.sigma2.sqrt());
        prop_assert!(close(big.params.sigma2 / c / c, base.params.sigma2, 1e-9), "c {c}: {:?} vs {:?}", big.params, base.params);
        prop_assert!(close(big.params.tau2 / c / c, base.params.tau2, 1e-9) || base.params.tau2 < 1e-9 * base.params.sigma2);
        let se = big.standard_errors();
        let se0 = base.standard_errors();
        prop_assert!(close(se[1] / c / c, se0[1], 1e-8), "c {c}: se {se:?} vs {se0:?}");
    }

    /// Analytic gradient and Hessian against central differences of the likelihood and the
    /// gradient, at data and parameter scales from 1e-150 to 1e100.
    #[test]
    fn derivatives_match_differences_at_extreme_scales(
        (y, codes, m) in grid_design(),
        log10_scale in -150.0..100.0f64,
        sigma2 in 0.5..5.0f64,
        tau2 in 0.1..5.0f64,
        mu_shift in -2.0..2.0f64,
    ) {
        let c = 10f64.powf(log10_scale);
        let scaled: Vec<f64> = y.iter().map(|v| v * c).collect();
        let stats = stats_of(&scaled, &codes, m);
        let (units, var_scale) = ([c, c * c, c * c], 30.0); // y/256 has spread ~ 8: σ² ~ 30
        let p = Params { mu: c * (stats_of(&y, &codes, m).centered_grand_mean() + y[0] + mu_shift), sigma2: var_scale * sigma2 * c * c, tau2: var_scale * tau2 * c * c };
        let as_array = |p: &Params| [p.mu, p.sigma2, p.tau2];
        let from = |x: [f64; 3]| Params { mu: x[0], sigma2: x[1], tau2: x[2] };
        let g = gradient(&stats, &p);
        let h = hessian(&stats, &p);
        let f0 = neg_log_lik(&stats, &p);
        prop_assert!(f0.is_finite() && g.iter().all(|v| v.is_finite()));
        for k in 0..3 {
            let step = 1e-5 * as_array(&p)[k].abs().max(units[k]);
            let (mut up, mut down) = (as_array(&p), as_array(&p));
            up[k] += step;
            down[k] -= step;
            // Differences of −ℓ lose digits to its size (N log c): compare in the unit of k.
            let fd = (neg_log_lik(&stats, &from(up)) - neg_log_lik(&stats, &from(down))) / (2.0 * step);
            let magnitude = (f0.abs() + y.len() as f64) / units[k];
            prop_assert!((fd - g[k]).abs() <= 1e-6 * magnitude, "c {c}: ∂{k} {fd} vs {}", g[k]);
            let (gu, gd) = (gradient(&stats, &from(up)), gradient(&stats, &from(down)));
            for l in 0..3 {
                let fd2 = (gu[l] - gd[l]) / (2.0 * step);
                if !h[k][l].is_finite() {
                    continue; // c⁻⁴-sized entries beyond the double range
                }
                let size = y.len() as f64 / (units[k] * units[l]);
                prop_assert!((fd2 - h[k][l]).abs() <= 1e-5 * size.max(h[k][l].abs()), "c {c}: H{k}{l} {fd2} vs {}", h[k][l]);
            }
        }
    }
}

/// Asks to stop at every question: with a checkpoint older than its interval, the first
/// clock reading of a long loop must end it with `Interrupted`.
struct Always;

impl hnm_core::Interrupt for Always {
    fn requested(&self) -> bool {
        true
    }
}

fn stale_checkpoint(interrupt: &dyn hnm_core::Interrupt) -> hnm_core::Checkpoint<'_> {
    let checkpoint = hnm_core::Checkpoint::new(interrupt);
    std::thread::sleep(hnm_core::Checkpoint::INTERVAL);
    checkpoint
}

#[test]
fn data_pass_and_fit_stop_when_interrupted() {
    use hnm_core::{fit_from, HnmError};
    let groups = 5000;
    let codes: Vec<i32> = (0..4 * groups as i32).map(|i| i % groups as i32 + 1).collect();
    let y: Vec<f64> = codes.iter().enumerate().map(|(i, &c)| f64::from(c % 7) + (i % 3) as f64).collect();
    let err = common::one_way_stats(&y, &codes, groups, &mut stale_checkpoint(&Always)).unwrap_err();
    assert_eq!(err, HnmError::Interrupted);
    let s = common::one_way_stats(&y, &codes, groups, &mut hnm_core::Checkpoint::new(&hnm_core::Never)).unwrap();
    for criterion in [Criterion::Ml, Criterion::Reml] {
        assert_eq!(fit_from(&s, criterion, None, &mut stale_checkpoint(&Always)).unwrap_err(), HnmError::Interrupted);
    }
}

#[test]
fn predictions_stop_when_interrupted() {
    // The rows' fitted values (R's fitted(), residuals() and predict(newdata)) poll the
    // checkpoint row by row, as the pass and the fit do: a stale checkpoint that asks to stop
    // ends them with `Interrupted`, one that never asks gives a value for every row.
    use hnm_core::{Checkpoint, Column, CrossProducts, GroupColumn, HnmError, LinearMixedModel, Never, Structure, Term};
    let groups = 500;
    let codes: Vec<i32> = (0..20 * groups as i32).map(|i| i % groups as i32 + 1).collect();
    let x: Vec<f64> = (0..codes.len()).map(|i| (i % 11) as f64).collect();
    let y: Vec<f64> = codes.iter().zip(&x).enumerate().map(|(i, (&c, &x))| f64::from(c % 7) + 0.5 * x + (i % 5) as f64).collect();
    let columns = [Column::Double(&y), Column::Double(&x)];
    let pass = CrossProducts::from_columns(&columns, codes.iter().copied(), groups, &mut Checkpoint::new(&Never)).unwrap();
    let structure = Structure { response: 0, fixed: vec![Term::Intercept, Term::Variable(1)], random: vec![Term::Intercept], blocks: vec![1] };
    let model = LinearMixedModel::new(&pass.stats, structure).unwrap();
    let fit = model.fit(Criterion::Ml, None, &mut Checkpoint::new(&Never)).unwrap();
    let modes = model.random_effects(&fit).unwrap();
    let err = model.fitted_values(&fit, Some(&modes), &columns, GroupColumn::Codes(&codes), &mut stale_checkpoint(&Always)).unwrap_err();
    assert_eq!(err, HnmError::Interrupted);
    let values = model.fitted_values(&fit, Some(&modes), &columns, GroupColumn::Codes(&codes), &mut Checkpoint::new(&Never)).unwrap();
    assert_eq!(values.len(), codes.len());
}
