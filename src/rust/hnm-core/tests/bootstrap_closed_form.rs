//! Bootstrap refits of balanced designs against the closed forms of the balanced one-way
//! model, computed here from the replicate's means and pooled sum of squares:
//! REML gives σ̂² = MSE and τ̂² = (MSG − MSE)/n when MSG > MSE (the ANOVA estimates);
//! ML gives σ̂² = MSE and τ̂² = ((1 − 1/m) MSG − MSE)/n when positive, and 0 otherwise.

use hnm_core::{refit_replicates, Criterion, GroupStats};

#[test]
fn balanced_refits_equal_the_closed_forms() {
    let (m, n) = (5usize, 4.0);
    let template = GroupStats::new(vec![n; m], vec![0.0, 1.0, 2.0, 3.0, 4.0], vec![3.0; m]).unwrap();
    // Three replicates (rows) of five group means, column-major; the third has MSG < MSE.
    let replicates: [[f64; 5]; 3] = [[0.3, 2.1, -1.4, 0.9, 3.3], [10.0, 12.5, 9.1, 11.7, 10.4], [0.0, 0.1, -0.1, 0.05, 0.0]];
    let ssw_totals = [42.0, 17.5, 60.0];
    let means: Vec<f64> = (0..m).flat_map(|j| replicates.iter().map(move |r| r[j])).collect();
    let ml = refit_replicates(&template, &means, &ssw_totals, Criterion::Ml, 2, &hnm_core::Never).unwrap();
    let reml = refit_replicates(&template, &means, &ssw_totals, Criterion::Reml, 1, &hnm_core::Never).unwrap();
    for (r, row) in replicates.iter().enumerate() {
        let grand = row.iter().sum::<f64>() / m as f64;
        let msg = n * row.iter().map(|y| (y - grand).powi(2)).sum::<f64>() / (m as f64 - 1.0);
        let mse = ssw_totals[r] / (m as f64 * (n - 1.0));
        let (ml, reml) = (ml[r].unwrap(), reml[r].unwrap());
        assert!((ml.mu - grand).abs() < 1e-12 && (reml.mu - grand).abs() < 1e-12, "replicate {r}");
        let ml_tau2 = (((1.0 - 1.0 / m as f64) * msg - mse) / n).max(0.0);
        if ml_tau2 > 0.0 {
            assert!((ml.sigma2 - mse).abs() < 1e-10 * mse, "replicate {r}: {} vs {mse}", ml.sigma2);
            assert!((ml.tau2 - ml_tau2).abs() < 1e-10 * msg, "replicate {r}: {} vs {ml_tau2}", ml.tau2);
        } else {
            assert_eq!(ml.tau2, 0.0, "replicate {r}");
        }
        if msg > mse {
            assert!((reml.sigma2 - mse).abs() < 1e-10 * mse, "replicate {r}");
            assert!((reml.tau2 - (msg - mse) / n).abs() < 1e-10 * msg, "replicate {r}");
        } else {
            assert_eq!(reml.tau2, 0.0, "replicate {r}");
        }
    }
}
