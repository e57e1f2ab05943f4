//! # hnm-core
//!
//! The one-way random-effects (hierarchical normal) model
//! y_ij = μ + a_j + ε_ij, a_j ~ N(0, τ²), ε_ij ~ N(0, σ²),
//! computed from per-group sufficient statistics (n_j, ȳ_j, SSW_j): the likelihood, its
//! analytic gradient and Hessian, the ANOVA estimator, and ML/REML fits with an exact
//! boundary at τ² = 0; and the linear mixed model with one grouping factor
//! ([`LinearMixedModel`]) from per-group cross-product blocks, of which the one-way model is the
//! case q = 1 without covariates. Pure Rust, no R: the R package's glue crate only converts
//! arguments.
//!
//! The crate is laid out by concern: `data` (the one pass over the rows and the statistics it
//! leaves), `model` (the criteria and the fits), `inference` (profiles, Satterthwaite's
//! derivatives, the bootstrap, the information matrix) and `numerics` (dense algebra, the
//! optimisers, threads, interrupts, fallible allocation); the public API is re-exported here.

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

mod data;
mod error;
mod inference;
mod model;
mod numerics;

pub use data::blocks::{fingerprint, group_column_codes, BlockPass, Column, GroupColumn, GroupKeys};
pub use data::cells::{is_r_na, Cell, Response, NA_CODE, NA_REAL};
pub use data::cross_products::CrossProducts;
pub use data::distinct_rows::{check_distinct_rows, distinct_value, write_rows_of_distinct};
pub use data::groups::{
    cell_labels, code_index, dense_double_range, dense_integer_range, dense_pair_codes, double_key, group_codes, integer_key, map_codes, nested_values,
    GroupCodes, KeyCodes, DOUBLE_MISSING, INTEGER_MISSING, ROWS_PER_CHECK,
};
pub use data::stats::GroupStats;
pub use data::unit::Unit;
pub use error::{HnmError, RangeProblem, Result};
pub use inference::anova::Anova;
pub use inference::bootstrap_lmm::{refit_lmm_replicates, seeded_normals, LmmRefits, Refit, ReplicateGenerator, Simulation};
pub use inference::information::{expected_information, Information};
pub use inference::kenward_roger::KenwardRoger;
pub use inference::lmm_profile::{profile_grids, profile_intervals, LmmParameter, LmmProfile, LmmProfilePoint};
pub use inference::satterthwaite::VarianceDerivatives;
pub use inference::wald::VarianceParameterJacobian;
pub use model::lmm::{FitControl, GroupingFactor, LinearMixedModel, LmmFit, RandomEffects, Structure, Term, Workspace};
pub use model::one_way::fit::{estimates_at_theta, fit, fit_from, optimum, Convergence, Estimates, Fit};
pub use model::one_way::likelihood::{gradient, hessian, neg_log_lik, Params, TAU2_ROUNDING};
pub use model::one_way::profiled_deviance::{Criterion, ProfilePoint, ProfiledDeviance};
pub use numerics::interrupt::{Checkpoint, Interrupt, Never};
pub use numerics::memory::{collected, copied, filled, with_capacity};
pub use numerics::optim::{minimize_bounded, Minimum, Objective};
pub use numerics::quasi_newton::minimize_bounded_quasi_newton;
