//! Parametric-bootstrap refits in sufficient-statistic space.
//!
//! Under the model the group means and the within-group sums of squares are independent,
//! ȳ_j ~ N(μ, τ² + σ²/n_j) and Σ_j SSW_j ~ σ² χ²_{N−m}, and the likelihood (ML and REML)
//! depends on the SSW_j only through their sum. A replicate data set is therefore m means
//! and one pooled sum of squares, and refitting it costs O(m) whatever N is. The draws are
//! made by the caller (in R, with R's random-number generator); this module refits them.

use crate::data::stats::GroupStats;
use crate::error::{HnmError, Result};
use crate::model::one_way::fit::{estimate_from, fit};
use crate::model::one_way::likelihood::Params;
use crate::model::one_way::profiled_deviance::Criterion;
use crate::numerics::interrupt::{Checkpoint, Interrupt};
use crate::numerics::memory::{collected, copied, unless_out_of_memory};

/// The refits of a batch of bootstrap replicates; `None` where a refit failed.
pub type Refits = Vec<Option<Params>>;

/// Refits the one-way model to each replicate of `template`'s design (its group sizes and
/// center): replicate r has group means `center + centered_means[r + j·R]` (an R × m matrix
/// in column-major order, as R stores it) and pooled within-group sum of squares
/// `ssw_totals[r]`, which is split over the groups in proportion to n_j − 1 (any split gives
/// the same likelihood). Each refit is [`crate::fit_from`] with `criterion`, warm-started
/// at the template's estimate of λ = τ²/σ² (the replicates are drawn around it; a replicate
/// on the boundary τ̂² = 0 is found exactly all the same), keeping only the estimates; the
/// replicates are split into contiguous blocks refitted in parallel on `threads` threads, at
/// most the machine's available parallelism and the number of replicates. The calling
/// thread only waits for them, asking `interrupt` at least every [`Checkpoint::INTERVAL`]
/// (the refit threads never call it: when it asks to stop they see a shared flag, stop
/// before their next replicate or evaluation, and are joined before this returns).
///
/// # Errors
/// The errors of [`GroupStats::check_identifiable`] for `template`; `InvalidArgument` when
/// `centered_means` does not hold one row per element of `ssw_totals` and one column per group.
/// A replicate whose refit fails (an invalid draw or an optimiser failure) gives `None`;
/// `Optimizer` if the system refuses to start a refit thread or a refit thread panics;
/// `TooLarge` when the results do not fit in memory; `Interrupted` when `interrupt` asks to stop.
///
/// # Example
/// ```
/// use hnm_core::{fit, refit_replicates, Criterion, GroupStats, Never};
/// let s = GroupStats::new(vec![3.0; 4], vec![0.0, 2.0, 1.0, 4.0], vec![2.0, 3.0, 1.0, 2.5]).unwrap();
/// // Two replicates: the data's own statistics, and all means equal (so τ̂² = 0).
/// let means = [0.0, 1.0, 2.0, 1.0, 1.0, 1.0, 4.0, 1.0];
/// let refits = refit_replicates(&s, &means, &[8.5, 8.5], Criterion::Ml, 2, &Never).unwrap();
/// let direct = fit(&s, Criterion::Ml).unwrap().params;
/// assert!((refits[0].unwrap().tau2 - direct.tau2).abs() < 1e-12 * direct.tau2);
/// assert_eq!(refits[1].unwrap().tau2, 0.0);
/// ```
pub fn refit_replicates(
    template: &GroupStats, centered_means: &[f64], ssw_totals: &[f64], criterion: Criterion, threads: usize, interrupt: &dyn Interrupt,
) -> Result<Refits> {
    template.check_identifiable()?;
    let (replicates, groups) = (ssw_totals.len(), template.len());
    if centered_means.len() != replicates * groups {
        return Err(HnmError::InvalidArgument { argument: "means", reason: "must have one row per replicate and one column per group" });
    }
    let n = template.n();
    let df_within: f64 = n.iter().map(|&nj| (nj - 1.0).max(0.0)).sum();
    const REPLICATE: &str = "a replicate's group statistics";
    let share = collected(n.iter().map(|&nj| (nj - 1.0).max(0.0) / df_within), REPLICATE)?;
    let start = fit(template, criterion).ok().map(|f| f.params.tau2 / f.params.sigma2);
    // A replicate's `None` is a refit that failed.
    crate::numerics::parallel::in_parallel(
        replicates,
        threads,
        interrupt,
        || Ok(()),
        |_, r, stop| {
            let means = collected((0..groups).map(|j| centered_means[r + j * replicates]), REPLICATE)?;
            let ssw = collected(share.iter().map(|w| w * ssw_totals[r]), REPLICATE)?;
            unless_out_of_memory(
                GroupStats::centered(template.center(), copied(n, REPLICATE)?, means, ssw)
                    .and_then(|stats| estimate_from(&stats, criterion, start, &mut Checkpoint::new(stop))),
            )
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numerics::interrupt::Never;
    use crate::numerics::parallel::worker_threads;

    #[test]
    fn a_split_of_the_pooled_sum_of_squares_does_not_change_the_fit() {
        // Unbalanced sizes with a singleton group: refit from the pooled SSW equals the fit
        // of the original per-group SSW.
        let n = vec![2.0, 5.0, 1.0, 7.0];
        let ssw = vec![0.4, 3.1, 0.0, 5.2];
        let means = vec![0.3, 1.9, -0.7, 1.1];
        let s = GroupStats::centered(10.0, n, means.clone(), ssw).unwrap();
        for criterion in [Criterion::Ml, Criterion::Reml] {
            let direct = fit(&s, criterion).unwrap().params;
            let refit = refit_replicates(&s, &means, &[s.ssw_total()], criterion, 1, &Never).unwrap()[0].unwrap();
            for (a, b) in [(direct.mu, refit.mu), (direct.sigma2, refit.sigma2), (direct.tau2, refit.tau2)] {
                assert!((a - b).abs() <= 1e-12 * a.abs().max(1.0), "{criterion:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn thread_counts_are_capped_by_the_machine_and_the_replicates() {
        let available = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(worker_threads(usize::MAX, 1_000_000), available);
        assert_eq!(worker_threads(1_000, 3), available.min(3));
        assert_eq!(worker_threads(0, 10), 1);
        assert_eq!(worker_threads(4, 0), 1);
        // A huge request refits as one thread does.
        let s = GroupStats::new(vec![3.0; 2], vec![0.0, 2.0], vec![2.0, 3.0]).unwrap();
        let means = [0.0, 0.5, 2.0, 1.0];
        let many = refit_replicates(&s, &means, &[5.0, 4.0], Criterion::Reml, usize::MAX, &Never).unwrap();
        assert_eq!(many, refit_replicates(&s, &means, &[5.0, 4.0], Criterion::Reml, 1, &Never).unwrap());
    }

    #[test]
    fn failed_refits_are_none_and_bad_shapes_are_errors() {
        let s = GroupStats::new(vec![3.0; 2], vec![0.0, 2.0], vec![2.0, 3.0]).unwrap();
        let refits = refit_replicates(&s, &[0.0, f64::NAN, 1.0, 1.0], &[5.0, 5.0], Criterion::Ml, 3, &Never).unwrap();
        assert!(refits[0].is_some() && refits[1].is_none());
        assert!(matches!(
            refit_replicates(&s, &[0.0, 1.0, 2.0], &[5.0, 5.0], Criterion::Ml, 1, &Never),
            Err(HnmError::InvalidArgument { argument: "means", .. })
        ));
    }
}

#[cfg(test)]
mod interrupt_tests {
    use super::*;
    use std::time::{Duration, Instant};

    use crate::numerics::interrupt::After;

    #[test]
    fn an_interrupt_stops_every_refit_thread() {
        // 4000 groups and 2500 replicates: about a second of refits on two threads.
        let groups = 4000;
        let n = vec![4.0; groups];
        let means: Vec<f64> = (0..groups).map(|j| (j % 7) as f64 * 0.3).collect();
        let s = GroupStats::new(n, means.clone(), vec![3.0; groups]).unwrap();
        let replicates = 2500;
        let draws: Vec<f64> = (0..replicates * groups).map(|k| means[k / replicates] + ((k * 37) % 11) as f64 * 0.01).collect();
        let ssw = vec![6000.0; replicates];
        let interrupt = After { start: Instant::now(), after: Duration::from_millis(50) };
        let result = refit_replicates(&s, &draws, &ssw, Criterion::Ml, 2, &interrupt);
        let took = interrupt.start.elapsed();
        assert_eq!(result, Err(HnmError::Interrupted));
        assert!(took < Duration::from_millis(50) + 2 * Checkpoint::INTERVAL + Duration::from_millis(50), "{took:?}");
    }
}
