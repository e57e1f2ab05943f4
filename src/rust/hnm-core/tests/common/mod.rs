//! What the integration tests share: one-way statistics from rows, by the model's one pass.

use hnm_core::{Checkpoint, Column, CrossProducts, GroupStats, Result};

/// The one-way statistics (n_j, ȳ_j, SSW_j) of `y` in the groups of 1-based `codes`, from the
/// row pass of the model ([`CrossProducts::from_columns`]).
pub fn one_way_stats(y: &[f64], codes: &[i32], groups: usize, checkpoint: &mut Checkpoint<'_>) -> Result<GroupStats> {
    let pass = CrossProducts::from_columns(&[Column::Double(y)], codes.iter().copied(), groups, checkpoint)?;
    let all: Vec<usize> = (0..groups).collect();
    GroupStats::of_variable(&pass.stats, 0, &all)
}
