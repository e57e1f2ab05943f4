//! What the integration tests share: one-way statistics from rows, by the model's one pass,
//! and seeded uniform draws.

use hnm_core::{Checkpoint, Column, Criterion, CrossProducts, GroupStats, LinearMixedModel, Result, Workspace};

/// The one-way statistics (n_j, ȳ_j, SSW_j) of `y` in the groups of 1-based `codes`, from the
/// row pass of the model ([`CrossProducts::from_columns`]).
#[allow(dead_code)] // not every test crate uses every helper
pub fn one_way_stats(y: &[f64], codes: &[i32], groups: usize, checkpoint: &mut Checkpoint<'_>) -> Result<GroupStats> {
    let pass = CrossProducts::from_columns(&[Column::Double(y)], codes.iter().copied(), groups, checkpoint)?;
    let all: Vec<usize> = (0..groups).collect();
    GroupStats::of_variable(&pass.stats, 0, &all)
}

/// Uniform(−1, 1) draws from a seed (xorshift), so shrinking cannot make the data degenerate.
#[allow(dead_code)] // not every test crate uses every helper
pub fn uniforms(seed: u64, count: usize) -> Vec<f64> {
    let mut state = seed | 1;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        })
        .collect()
}

/// Whether the analytic gradient of `model`'s profiled `criterion` at `theta` equals central
/// differences of the criterion (step 1e-5, error O(h²)) to 1e-5 relative; the first
/// coordinate that does not is the error. `ws` is `model`'s workspace (a test may reuse one).
#[allow(dead_code)] // not every test crate uses every helper
pub fn gradient_matches_central_differences(
    model: &LinearMixedModel, criterion: Criterion, theta: &[f64], ws: &mut Workspace,
) -> std::result::Result<(), String> {
    let (_, gradient) = model.deviance_and_gradient(criterion, theta, ws).unwrap();
    for i in 0..theta.len() {
        let h = 1e-5;
        let (mut up, mut down) = (theta.to_vec(), theta.to_vec());
        up[i] += h;
        down[i] -= h;
        let difference = (model.deviance(criterion, &up, ws).unwrap() - model.deviance(criterion, &down, ws).unwrap()) / (2.0 * h);
        if (gradient[i] - difference).abs() > 1e-5 * (1.0 + difference.abs()) {
            return Err(format!("θ{i}: {} vs {difference} at {theta:?}", gradient[i]));
        }
    }
    Ok(())
}
