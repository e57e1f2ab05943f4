//! Values as R stores them: its missing values (`NA`) and what a cell of a numeric column
//! means for the pass over the rows (R's `NA` drops the row; another NaN or an infinity is an
//! error naming the row, as it usually means a computation upstream went wrong).

/// The integer R uses for `NA` in an integer vector (and a factor's missing code).
pub const NA_CODE: i32 = i32::MIN;

/// R's `NA_real_`: a NaN whose low 32 bits are 1954 (what R's `R_IsNA` tests).
pub const NA_REAL: f64 = f64::from_bits(0x7FF0_0000_0000_07A2);

/// True when `x` is R's `NA_real_` (payload 1954), as opposed to any other NaN.
///
/// # Example
/// ```
/// use hnm_core::{is_r_na, NA_REAL};
/// assert!(is_r_na(NA_REAL));
/// assert!(is_r_na(NA_REAL + 1.0)); // arithmetic keeps the payload
/// assert!(!is_r_na(f64::NAN));
/// ```
pub fn is_r_na(x: f64) -> bool {
    x.is_nan() && (x.to_bits() & 0xFFFF_FFFF) == 1954
}

/// What one value of a model column means for the pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell {
    /// A finite value.
    Value(f64),
    /// R's `NA`: the row is dropped.
    Missing,
    /// NaN (not `NA`) or ±Inf: the data are invalid.
    NotFinite,
}

/// A numeric column's element as R stores it: `f64` (NA is [`NA_REAL`]) or `i32` (NA is
/// [`NA_CODE`]). Integers are converted exactly.
pub trait Response: Copy {
    /// Classifies the value.
    fn cell(self) -> Cell;

    /// The value's bits, for a fingerprint of the data.
    fn bits(self) -> u64;
}

impl Response for f64 {
    #[inline]
    fn cell(self) -> Cell {
        if self.is_finite() {
            Cell::Value(self)
        } else if is_r_na(self) {
            Cell::Missing
        } else {
            Cell::NotFinite
        }
    }

    #[inline]
    fn bits(self) -> u64 {
        self.to_bits()
    }
}

impl Response for i32 {
    #[inline]
    fn cell(self) -> Cell {
        if self == NA_CODE {
            Cell::Missing
        } else {
            Cell::Value(f64::from(self))
        }
    }

    #[inline]
    fn bits(self) -> u64 {
        self as u32 as u64
    }
}
