//! # hnm-core
//!
//! The one-way random-effects (hierarchical normal) model
//! y_ij = μ + a_j + ε_ij, a_j ~ N(0, τ²), ε_ij ~ N(0, σ²),
//! computed from per-group sufficient statistics (n_j, ȳ_j, SSW_j): the likelihood, its
//! analytic gradient and Hessian, the ANOVA estimator, and ML/REML fits with an exact
//! boundary at τ² = 0. Pure Rust, no R: the R package's glue crate only converts arguments.

// `!(x > 0.0)` is true for NaN where `x <= 0.0` is not: the numerical code uses such negated
// comparisons on purpose, so that a NaN fails the test it must pass.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

/// `$body` with `$name` bound to a literal when `$value` is one of the `$literal`s (so that the
/// loops over it in an inlined kernel unroll), else to `$value` itself.
macro_rules! with_literal {
    ($value:expr, $name:ident in [$($literal:literal),+] => $body:expr) => {
        match $value {
            $($literal => {
                let $name = $literal;
                $body
            })+
            $name => $body,
        }
    };
}

mod anova;
mod blocks;
mod bootstrap;
mod bootstrap_lmm;
mod dense;
mod error;
mod fit;
mod information;
mod inner;
mod interrupt;
mod key_table;
mod likelihood;
mod lmm;
mod memory;
mod optim;
mod parallel;
mod pass;
mod profile;
mod profile_ci;
mod solve1d;
mod stats;
mod unit;

pub use anova::Anova;
pub use blocks::{fingerprint, BlockPass, Column, CrossProducts};
pub use bootstrap::{refit_replicates, Refits};
pub use bootstrap_lmm::{refit_lmm_replicates, seeded_normals, LmmRefits, Refit, ReplicateGenerator, Simulation};
pub use error::{HnmError, Result};
pub use fit::{fit, fit_from, Convergence, Fit};
pub use information::{expected_information, Information};
pub use interrupt::{Checkpoint, Interrupt, Never};
pub use key_table::{double_key, group_codes, integer_key, GroupCodes, KeyTable, KeyedGroups, DOUBLE_MISSING, INTEGER_MISSING};
pub use likelihood::{gradient, hessian, neg_log_lik, Params, TAU2_ROUNDING};
pub use lmm::{
    profile_grids, profile_intervals, LinearMixedModel, LmmFit, LmmParameter, LmmProfile, LmmProfilePoint, RandomEffects, Structure, Term, VarianceDerivatives,
    Workspace,
};
pub use memory::{collected, copied, filled, with_capacity};
pub use optim::{minimize_bounded, Minimum, Objective};
pub use pass::{accumulate, dense_integer_range, is_r_na, Accumulator, Cell, Grouping, LevelCodes, Response, NA_CODE, NA_REAL};
pub use profile::{Criterion, ProfilePoint, ProfiledDeviance};
pub use profile_ci::{Profile, ProfileParameter, ProfilePointFull};
pub use stats::{DataPass, GroupStats};
pub use unit::Unit;
