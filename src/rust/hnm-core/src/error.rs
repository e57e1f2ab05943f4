//! The one error type of hnm-core.
//!
//! Every message is a sentence a user of the R package can act on, and names the
//! argument at fault. The R side re-raises it as a condition of class `hnm_error`.

use std::fmt;

/// Everything that can go wrong in hnm-core.
#[derive(Debug, Clone, PartialEq)]
pub enum HnmError {
    /// Two arguments that must have the same length do not.
    LengthMismatch { first: &'static str, first_len: usize, second: &'static str, second_len: usize },
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
    /// Something sized by the data or an argument does not fit in memory: it needed `bytes`
    /// (see [`crate::with_capacity`]).
    TooLarge { what: &'static str, bytes: u128 },
    /// The per-group statistics of `columns` model columns in `groups` groups would take
    /// `bytes`, far more than the `rows` rows of those columns (see
    /// [`crate::CrossProducts::from_columns`]): refused before they are allocated.
    StatisticsTooLarge { columns: usize, groups: usize, rows: usize, bytes: u128 },
    /// A random-effects term with no fewer random effects than observations: σ² and its
    /// covariance cannot be told apart (lme4's check, term by term).
    TooManyRandomEffects { observations: f64, random_effects: f64 },
    /// The fixed and random effects reproduce the response exactly: σ² would be 0.
    PerfectFit,
    /// The user asked the computation to stop (Ctrl-C); see [`crate::Checkpoint`].
    Interrupted,
    /// Parameters outside the space σ² > 0, τ² ≥ 0, where the likelihood is +∞ and its
    /// derivatives are undefined.
    OutsideParameterSpace { argument: &'static str },
    /// Model variable `variable` (0-based; the R glue names it) lies outside the range double
    /// precision can fit the model in (see [`RangeProblem`]).
    VariableOutOfRange { variable: usize, problem: RangeProblem },
}

/// How a model variable leaves the documented range ([`HnmError::VariableOutOfRange`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RangeProblem {
    /// Its sum of squares overflows.
    TooWide,
    /// Its squared deviations underflow; `rms` is its RMS deviation (0 when that underflows too).
    TooNarrow { rms: f64 },
    /// Its spread and the spread of the response (variable `response`) differ by the factor
    /// `ratio` (response over it), beyond 1e-150..1e150.
    ScaleApart { response: usize, ratio: f64 },
}

impl RangeProblem {
    /// The message for the variable named `name` (with the response named `response_name`).
    ///
    /// # Example
    /// ```
    /// use hnm_core::RangeProblem;
    /// let m = RangeProblem::TooNarrow { rms: 0.0 }.message("`x`", "`y`");
    /// assert!(m.starts_with("the model variable `x` varies too little: its squared deviations (RMS below 1e-162)"));
    /// ```
    pub fn message(&self, name: &str, response_name: &str) -> String {
        match *self {
            RangeProblem::TooWide => format!(
                "the model variable {name} spans too wide a range: its sum of squares would overflow double precision (its RMS deviation times \
                 sqrt(N) must stay below 1.3e154); divide it by a power of ten and scale the estimates back."
            ),
            RangeProblem::TooNarrow { rms } => {
                let rms = if rms > 0.0 { c_scientific(rms) } else { "below 1e-162".to_string() };
                format!(
                    "the model variable {name} varies too little: its squared deviations (RMS {rms}) underflow double precision (the RMS deviation \
                     must be at least 1.5e-154); multiply it by a power of ten and scale the estimates back."
                )
            }
            RangeProblem::ScaleApart { ratio, .. } => format!(
                "the response {response_name} and the model column {name} differ in scale by a factor of {}: the estimates scale with that ratio \
                 and their variances with its square, which would leave double precision; rescale one of them by a power of ten so that the \
                 ratio of their spreads lies within 1e-150..1e150.",
                c_scientific(ratio)
            ),
        }
    }
}

/// `x` as C's `%.1e` (and R's `sprintf`) writes it: one decimal, a signed exponent of at least
/// two digits (1.0e-200, 2.5e+05).
fn c_scientific(x: f64) -> String {
    let text = format!("{x:.1e}");
    match text.split_once('e') {
        Some((mantissa, exponent)) => {
            let (sign, digits) = exponent.strip_prefix('-').map_or(("+", exponent), |d| ("-", d));
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => text,
    }
}

impl HnmError {
    /// A short snake_case name of the kind of error, the same for every value of its fields:
    /// the R package raises each kind as a condition of class `hnm_error_<kind>`.
    ///
    /// # Example
    /// ```
    /// use hnm_core::HnmError;
    /// assert_eq!(HnmError::NotFinite { argument: "y", index: 0 }.kind(), "not_finite");
    /// assert_eq!(HnmError::Interrupted.kind(), "interrupted");
    /// ```
    pub fn kind(&self) -> &'static str {
        match self {
            HnmError::LengthMismatch { .. } => "length_mismatch",
            HnmError::NotFinite { .. } => "not_finite",
            HnmError::GroupCodeOutOfRange { .. } => "group_code_out_of_range",
            HnmError::InvalidStatistic { .. } => "invalid_statistic",
            HnmError::TooFewGroups { .. } => "too_few_groups",
            HnmError::NoReplication => "no_replication",
            HnmError::NoWithinGroupVariation => "no_within_group_variation",
            HnmError::ParameterLength { .. } => "parameter_length",
            HnmError::ParameterMissing { .. } => "parameter_missing",
            HnmError::Optimizer(_) => "optimizer",
            HnmError::InvalidArgument { .. } => "invalid_argument",
            HnmError::Unsupported(_) => "unsupported",
            HnmError::Interrupted => "interrupted",
            HnmError::TooLarge { .. } | HnmError::StatisticsTooLarge { .. } => "too_large",
            HnmError::OutsideParameterSpace { .. } => "outside_parameter_space",
            HnmError::ColumnNotFinite { .. } => "not_finite",
            HnmError::TooManyRandomEffects { .. } => "too_many_random_effects",
            HnmError::PerfectFit => "perfect_fit",
            HnmError::VariableOutOfRange { .. } => "out_of_range",
        }
    }

    /// The same error with its argument `from` renamed `to` (the name the user knows it by);
    /// errors about other arguments are returned unchanged.
    ///
    /// # Example
    /// ```
    /// use hnm_core::HnmError;
    /// let e = HnmError::InvalidArgument { argument: "z", reason: "must be a positive finite number" };
    /// assert_eq!(e.renamed("z", "level").to_string(), "`level` must be a positive finite number.");
    /// ```
    pub fn renamed(self, from: &str, to: &'static str) -> HnmError {
        let rename = |argument: &'static str| if argument == from { to } else { argument };
        match self {
            HnmError::LengthMismatch { first, first_len, second, second_len } => {
                HnmError::LengthMismatch { first: rename(first), first_len, second: rename(second), second_len }
            }
            HnmError::NotFinite { argument, index } => HnmError::NotFinite { argument: rename(argument), index },
            HnmError::GroupCodeOutOfRange { argument, index, code, n_groups } => {
                HnmError::GroupCodeOutOfRange { argument: rename(argument), index, code, n_groups }
            }
            HnmError::InvalidStatistic { argument, index, reason } => HnmError::InvalidStatistic { argument: rename(argument), index, reason },
            HnmError::ParameterLength { argument, expected, found } => HnmError::ParameterLength { argument: rename(argument), expected, found },
            HnmError::ParameterMissing { argument, index } => HnmError::ParameterMissing { argument: rename(argument), index },
            HnmError::InvalidArgument { argument, reason } => HnmError::InvalidArgument { argument: rename(argument), reason },
            HnmError::OutsideParameterSpace { argument } => HnmError::OutsideParameterSpace { argument: rename(argument) },
            other => other,
        }
    }
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
            HnmError::TooLarge { what, bytes } => {
                write!(f, "{what} do not fit in memory: they need {bytes} bytes ({}).", readable(*bytes))
            }
            HnmError::StatisticsTooLarge { columns, groups, rows, bytes } => write!(
                f,
                "the per-group statistics of {columns} model columns in {groups} groups would take {bytes} bytes ({}), \
                 m (1 + k + k(k + 1)/2) doubles for k columns and m groups: more than 1 GiB and more than {} times \
                 the model's columns ({rows} rows x {columns} columns, {}). Each contrast of a factor is a column, so \
                 a factor with many levels makes the statistics grow as m k^2/2; fit fewer columns or groups, or use \
                 lme4::lmer(), whose sparse matrices do not grow so.",
                readable(*bytes),
                crate::data::blocks::STATISTICS_RATIO,
                readable(crate::data::blocks::column_bytes(*rows, *columns))
            ),
            HnmError::TooManyRandomEffects { observations, random_effects } => write!(
                f,
                "the number of observations ({observations}) must exceed the number of random effects of each random-effects term ({random_effects} in the largest); its parameters and the residual variance are not identifiable."
            ),
            HnmError::PerfectFit => write!(
                f,
                "the fixed and random effects fit the response exactly, so the residual variance (sigma^2) would be 0."
            ),
            HnmError::Interrupted => write!(f, "interrupted by the user."),
            HnmError::VariableOutOfRange { variable, problem } => {
                let column = |a: usize| format!("model column {}", a + 1);
                let response = match problem {
                    RangeProblem::ScaleApart { response, .. } => column(*response),
                    _ => String::new(),
                };
                write!(f, "{}", problem.message(&column(*variable), &response))
            }
            HnmError::OutsideParameterSpace { argument } => write!(
                f,
                "`{argument}` is outside the parameter space (sigma2 > 0, tau2 >= 0), where the negative log-likelihood is +Inf and its derivatives are undefined."
            ),
        }
    }
}

impl std::error::Error for HnmError {}

/// A size in bytes for a message: "1.5 GB" (decimal units, one decimal).
fn readable(bytes: u128) -> String {
    let units = ["bytes", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

/// Result type of hnm-core.
pub type Result<T> = std::result::Result<T, HnmError>;
