//! The one error type of hnm-core.
//!
//! Every message is a sentence a user of the R package can act on, and names the
//! argument at fault. The R side re-raises it as a condition of class `hnm_error`.

use std::fmt;

/// Everything that can go wrong in hnm-core.
#[derive(Debug, Clone, PartialEq)]
pub enum HnmError {
    /// Two arguments that must have the same length do not.
    LengthMismatch {
        first: &'static str,
        first_len: usize,
        second: &'static str,
        second_len: usize,
    },
    /// An argument holds an infinite or NaN value where a finite number is needed.
    NotFinite { argument: &'static str, index: usize },
    /// A group code of `argument` (the grouping variable) is outside `1..=n_groups`.
    GroupCodeOutOfRange { argument: &'static str, index: usize, code: i64, n_groups: usize },
    /// A per-group statistic is impossible (negative count, negative sum of squares, ...).
    InvalidStatistic { argument: &'static str, index: usize, reason: &'static str },
    /// Fewer than two groups with data: τ² cannot be estimated.
    TooFewGroups { found: usize },
    /// Every group holds a single observation: σ² and τ² are not separately identifiable.
    NoReplication,
    /// No variation within any group: σ² would be 0 and the likelihood unbounded.
    NoWithinGroupVariation,
    /// A parameter vector has the wrong length.
    ParameterLength { argument: &'static str, expected: usize, found: usize },
    /// A parameter is NA or NaN.
    ParameterMissing { argument: &'static str, index: usize },
    /// The optimiser failed; the message says how.
    Optimizer(String),
    /// An argument has an invalid value.
    InvalidArgument { argument: &'static str, reason: &'static str },
    /// A computation that is not available (yet) for this kind of fit.
    Unsupported(&'static str),
    /// A model column holds an infinite or NaN value (`column` and `row` are 0-based; the
    /// R glue replaces the column's number by its name).
    ColumnNotFinite { column: usize, row: usize },
    /// Something sized by the data or an argument does not fit in memory.
    TooLarge { what: &'static str },
    /// No more observations than random effects: σ² and Σ cannot be told apart (lme4's check).
    TooManyRandomEffects { observations: f64, random_effects: f64 },
    /// The fixed and random effects reproduce the response exactly: σ² would be 0.
    PerfectFit,
    /// The user asked the computation to stop (Ctrl-C); see [`crate::Checkpoint`].
    Interrupted,
}

impl fmt::Display for HnmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HnmError::LengthMismatch { first, first_len, second, second_len } => write!(
                f,
                "`{first}` has length {first_len} but `{second}` has length {second_len}; they must have the same length."
            ),
            HnmError::NotFinite { argument, index } => write!(
                f,
                "`{argument}` must be finite, but element {} is infinite or NaN.",
                index + 1
            ),
            HnmError::GroupCodeOutOfRange { argument, index, code, n_groups } => write!(
                f,
                "`{argument}` has group code {code} at position {}, outside 1..{n_groups}.",
                index + 1
            ),
            HnmError::InvalidStatistic { argument, index, reason } => write!(
                f,
                "`{argument}` is invalid for group {}: {reason}.",
                index + 1
            ),
            HnmError::TooFewGroups { found } => write!(
                f,
                "the grouping factor has {found} level(s) with data; at least 2 groups are needed to estimate the between-group variance."
            ),
            HnmError::NoReplication => write!(
                f,
                "every group has a single observation, so the within-group variance (sigma^2) and the between-group variance (tau^2) cannot be told apart."
            ),
            HnmError::NoWithinGroupVariation => write!(
                f,
                "the response does not vary within any group, so the within-group variance (sigma^2) would be 0 and the likelihood is unbounded."
            ),
            HnmError::ParameterLength { argument, expected, found } => write!(
                f,
                "`{argument}` must have length {expected}, not {found}."
            ),
            HnmError::ParameterMissing { argument, index } => write!(
                f,
                "`{argument}` must not contain NA or NaN (element {}).",
                index + 1
            ),
            HnmError::Optimizer(message) => write!(f, "the optimiser failed: {message}."),
            HnmError::InvalidArgument { argument, reason } => write!(f, "`{argument}` {reason}."),
            HnmError::Unsupported(what) => write!(f, "not supported: {what}."),
            HnmError::ColumnNotFinite { column, row } => write!(
                f,
                "model column {} must be finite (or NA), but row {} is infinite or NaN.",
                column + 1,
                row + 1
            ),
            HnmError::TooLarge { what } => write!(f, "{what} do not fit in memory."),
            HnmError::TooManyRandomEffects { observations, random_effects } => write!(
                f,
                "the number of observations ({observations}) must exceed the number of random effects ({random_effects}); the random-effects parameters and the residual variance are not identifiable."
            ),
            HnmError::PerfectFit => write!(
                f,
                "the fixed and random effects fit the response exactly, so the residual variance (sigma^2) would be 0."
            ),
            HnmError::Interrupted => write!(f, "interrupted by the user."),
        }
    }
}

impl std::error::Error for HnmError {}

/// Result type of hnm-core.
pub type Result<T> = std::result::Result<T, HnmError>;
