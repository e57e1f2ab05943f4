//! The one pass over the rows that reduces (y, group) to per-group statistics.
//!
//! Each row is read once. For group j, Welford's update is applied to y − p_j, where the
//! pilot p_j is the group's first value: with k rows seen, m ← m + δ/k and
//! SSW ← SSW + δ·(y − p_j − m), δ = y − p_j − m. Σ y² is never formed and y − p_j is exact
//! for nearby values, so data such as 1e12 + 0.1 keep their digits. (δ/k is computed as
//! δ·(1/k), one extra rounding of a small increment.)
//!
//! The running statistics of a group sit together in one [`Accumulator`] (32 bytes), so a
//! row touches one cache line of group state however the rows are ordered. Groups are
//! found either by 1-based codes (an R factor) or by hashing a 64-bit key
//! ([`crate::KeyTable`]: integers, doubles, interned strings).
//!
//! Missing values follow R: a response equal to R's `NA` ([`NA_REAL`] for doubles,
//! [`NA_CODE`] for integers) or a missing group drops the row, and the row is counted.
//! Any other NaN or an infinite response is an error naming the row.

use crate::data::stats::GroupStats;
use crate::error::{HnmError, Result};
use crate::numerics::interrupt::Checkpoint;
use crate::numerics::memory::{filled, with_capacity};

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

/// What one response value means for the pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell {
    /// A finite value.
    Value(f64),
    /// R's `NA`: the row is dropped.
    Missing,
    /// NaN (not `NA`) or ±Inf: the data are invalid.
    NotFinite,
}

/// A response vector element as R stores it: `f64` (NA is [`NA_REAL`]) or `i32` (NA is
/// [`NA_CODE`]). Integers are converted exactly.
pub trait Response: Copy {
    /// Classifies the value.
    fn cell(self) -> Cell;
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
}

/// Running statistics of one group: count, pilot value, mean and SSW of y − pilot.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Accumulator {
    n: f64,
    pilot: f64,
    shifted_mean: f64,
    ssw: f64,
}

impl Accumulator {
    /// Adds one value with the pilot-shifted Welford update (see the module docs): the first
    /// value becomes the pilot p; then with k values and x = y − p, δ = x − m, m ← m + δ/k
    /// and SSW ← SSW + δ·(x − m), so after n values m = x̄ and SSW = Σ (x_i − x̄)², the
    /// within-group sum of squares (unchanged by the shift).
    ///
    /// # Example
    /// ```
    /// use hnm_core::{accumulate, Accumulator, Checkpoint, LevelCodes, Never};
    /// let mut a = Accumulator::default();
    /// for y in [2.0, 4.0, 9.0] {
    ///     a.push(y);
    /// }
    /// // The same values through a pass: mean 5, SSW = 9 + 1 + 16 = 26.
    /// let mut groups = LevelCodes::new(1).unwrap();
    /// accumulate(&[2.0, 4.0, 9.0], [1, 1, 1].into_iter(), &mut groups, &mut Checkpoint::new(&Never)).unwrap();
    /// let stats = groups.into_stats().unwrap();
    /// assert_eq!((stats.means()[0], stats.ssw()[0]), (5.0, 26.0));
    /// ```
    #[inline]
    pub fn push(&mut self, y: f64) {
        if self.n == 0.0 {
            self.pilot = y;
        }
        self.n += 1.0;
        // 1/n depends only on the count, so the division runs ahead of the chain of
        // updates of one group's mean (consecutive rows of sorted data).
        let inverse_n = 1.0 / self.n;
        let shifted = y - self.pilot;
        let delta = shifted - self.shifted_mean;
        self.shifted_mean += delta * inverse_n;
        self.ssw += delta * (shifted - self.shifted_mean);
    }
}

/// Maps a row's group to its accumulator.
pub trait Grouping {
    /// The per-row group value the grouping reads.
    type Key: Copy;

    /// The accumulator of `key`'s group (created on first sight if the grouping does so),
    /// or `None` when the group is missing. `row` (0-based) is for error messages and
    /// first-row bookkeeping.
    ///
    /// # Errors
    /// `GroupCodeOutOfRange` for a code the grouping does not know.
    fn accumulator(&mut self, key: Self::Key, row: usize) -> Result<Option<&mut Accumulator>>;

    /// Asks the CPU to start loading the state of `key`'s group, which a row a little
    /// further on will need (a hint: never an error, whatever the key).
    fn prefetch(&self, _key: Self::Key) {}
}

/// How many rows ahead the pass prefetches group state: enough to cover a memory access
/// when the groups do not fit in cache and the rows visit them in random order.
const PREFETCH_DISTANCE: usize = 48;

/// Starts loading the cache line at `address` (see [`Grouping::prefetch`]).
#[inline]
pub(crate) fn prefetch_address<T>(address: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint that never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// Groups given as 1-based codes `1..=n_groups` (an R factor's integer codes).
#[derive(Debug, Clone)]
pub struct LevelCodes {
    groups: Vec<Accumulator>,
}

impl LevelCodes {
    /// Empty accumulators for `n_groups` levels, addressed by the codes 1..=`n_groups`.
    ///
    /// # Errors
    /// `TooLarge` when they do not fit in memory.
    ///
    /// # Example
    /// ```
    /// use hnm_core::{accumulate, Checkpoint, LevelCodes, Never};
    /// let mut groups = LevelCodes::new(3).unwrap();
    /// accumulate(&[1.0, 2.0], [3, 3].into_iter(), &mut groups, &mut Checkpoint::new(&Never)).unwrap();
    /// assert_eq!(groups.into_stats().unwrap().n(), &[0.0, 0.0, 2.0]);
    /// ```
    pub fn new(n_groups: usize) -> Result<Self> {
        Ok(LevelCodes { groups: filled(&[n_groups], Accumulator::default(), "the groups' running statistics")? })
    }

    /// The statistics of every level in code order (unused levels have n = 0, mean and SSW
    /// 0): n_j, ȳ_j − c and SSW_j = Σ_i (y_ij − ȳ_j)², with the center c the first value of
    /// level 1 (or of the first level with data).
    ///
    /// # Errors
    /// `TooLarge` when they do not fit in memory.
    ///
    /// # Example
    /// ```
    /// use hnm_core::{accumulate, Checkpoint, LevelCodes, Never};
    /// let mut groups = LevelCodes::new(2).unwrap();
    /// accumulate(&[10.0, 1.0, 3.0], [2, 1, 1].into_iter(), &mut groups, &mut Checkpoint::new(&Never)).unwrap();
    /// let stats = groups.into_stats().unwrap();
    /// assert_eq!(stats.center(), 1.0);
    /// assert_eq!((stats.means(), stats.ssw()), (vec![2.0, 10.0], &[2.0, 0.0][..]));
    /// ```
    pub fn into_stats(self) -> Result<GroupStats> {
        GroupStats::from_accumulators(&self.groups, 0)
    }
}

impl Grouping for LevelCodes {
    type Key = i32;

    #[inline]
    fn accumulator(&mut self, code: i32, row: usize) -> Result<Option<&mut Accumulator>> {
        if code == NA_CODE {
            return Ok(None);
        }
        let n_groups = self.groups.len();
        match usize::try_from(code).ok().and_then(|c| c.checked_sub(1)) {
            Some(j) if j < n_groups => Ok(Some(&mut self.groups[j])),
            _ => Err(HnmError::GroupCodeOutOfRange { argument: "g", index: row, code: i64::from(code), n_groups }),
        }
    }

    #[inline]
    fn prefetch(&self, code: i32) {
        prefetch_address(self.groups.as_ptr().wrapping_offset(code as isize - 1));
    }
}

/// For integer group values (R's `NA` ignored) spanning a range small enough to index
/// directly — at most `len/4 + 1024` values, and at most `i32::MAX` so every code fits an
/// `i32` — the smallest value and the range's length. Codes v − low + 1 then address
/// [`LevelCodes`] as a factor's codes do, with no hashing.
///
/// # Example
/// ```
/// use hnm_core::{dense_integer_range, NA_CODE};
/// assert_eq!(dense_integer_range(&[7, -2, NA_CODE, 3]), Some((-2, 10)));
/// assert_eq!(dense_integer_range(&[0, 1_000_000]), None);
/// assert_eq!(dense_integer_range(&[NA_CODE]), None);
/// ```
pub fn dense_integer_range(values: &[i32]) -> Option<(i32, usize)> {
    let (mut low, mut high) = (i32::MAX, i32::MIN);
    for &v in values.iter().filter(|&&v| v != NA_CODE) {
        low = low.min(v);
        high = high.max(v);
    }
    direct_levels(low, high, values.len()).map(|levels| (low, levels))
}

/// The number of levels low..=high when a vector of `len` values may index them directly.
fn direct_levels(low: i32, high: i32, len: usize) -> Option<usize> {
    let levels = usize::try_from(i64::from(high) - i64::from(low) + 1).ok()?;
    let codes_fit = i32::try_from(levels).is_ok();
    (codes_fit && levels <= len / 4 + 1024).then_some(levels)
}

/// Feeds every row to its group's accumulator and returns the number of dropped rows.
///
/// `keys` yields one group value per row. Rows whose response is missing are dropped
/// before their group is looked up, so a group made only of such rows never appears.
/// Every row is a [`Checkpoint::check`], so a user can stop a long pass.
///
/// # Errors
/// `LengthMismatch` when `y` and `keys` differ in length; `NotFinite` (argument `y`) for
/// the first NaN-but-not-NA or infinite response; the errors of [`Grouping::accumulator`];
/// `Interrupted` when `checkpoint` reports a user interrupt.
///
/// # Example
/// ```
/// use hnm_core::{accumulate, Checkpoint, LevelCodes, Never, NA_REAL};
/// let mut groups = LevelCodes::new(2).unwrap();
/// let mut checkpoint = Checkpoint::new(&Never);
/// let dropped = accumulate(&[1.0, 3.0, 10.0, NA_REAL], [1, 1, 2, 2].into_iter(), &mut groups, &mut checkpoint).unwrap();
/// let stats = groups.into_stats().unwrap();
/// assert_eq!((dropped, stats.means()), (1, vec![2.0, 10.0]));
/// assert!(accumulate(&[1.0, f64::NAN], [1, 2].into_iter(), &mut LevelCodes::new(2).unwrap(), &mut checkpoint).is_err());
/// ```
pub fn accumulate<Y: Response, G: Grouping>(
    y: &[Y], keys: impl ExactSizeIterator<Item = G::Key> + Clone, grouping: &mut G, checkpoint: &mut Checkpoint<'_>,
) -> Result<usize> {
    if keys.len() != y.len() {
        return Err(HnmError::LengthMismatch { first: "y", first_len: y.len(), second: "g", second_len: keys.len() });
    }
    let mut ahead = keys.clone().skip(PREFETCH_DISTANCE);
    let mut dropped = 0usize;
    for (row, (&yi, key)) in y.iter().zip(keys).enumerate() {
        checkpoint.check()?;
        if let Some(future) = ahead.next() {
            grouping.prefetch(future);
        }
        let value = match yi.cell() {
            Cell::Value(v) => v,
            Cell::Missing => {
                dropped += 1;
                continue;
            }
            Cell::NotFinite => return Err(HnmError::NotFinite { argument: "y", index: row }),
        };
        match grouping.accumulator(key, row)? {
            Some(group) => group.push(value),
            None => dropped += 1,
        }
    }
    Ok(dropped)
}

impl GroupStats {
    /// Statistics from finished accumulators; the center is the pilot of `groups[first]`
    /// (or of the first non-empty group if that one is empty).
    ///
    /// # Errors
    /// `TooLarge` when they do not fit in memory.
    pub(crate) fn from_accumulators(groups: &[Accumulator], first: usize) -> Result<GroupStats> {
        let center = groups.get(first).filter(|a| a.n > 0.0).or_else(|| groups.iter().find(|a| a.n > 0.0)).map_or(0.0, |a| a.pilot);
        let what = "the group statistics";
        let (mut n, mut centered_mean, mut ssw) =
            (with_capacity(&[groups.len()], what)?, with_capacity(&[groups.len()], what)?, with_capacity(&[groups.len()], what)?);
        for a in groups {
            n.push(a.n);
            // (p − c) + m: exact when the pilot is close to the center.
            centered_mean.push(if a.n > 0.0 { (a.pilot - center) + a.shifted_mean } else { 0.0 });
            ssw.push(a.ssw);
        }
        Ok(GroupStats::from_parts(center, n, centered_mean, ssw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numerics::interrupt::Never;

    #[test]
    fn integer_response_na_is_dropped() {
        let mut groups = LevelCodes::new(2).unwrap();
        let dropped = accumulate(&[1, NA_CODE, 4, 6], [1, 1, 2, NA_CODE].into_iter(), &mut groups, &mut Checkpoint::new(&Never)).unwrap();
        let stats = groups.into_stats().unwrap();
        assert_eq!(dropped, 2);
        assert_eq!(stats.n(), &[1.0, 1.0]);
        assert_eq!(stats.means(), vec![1.0, 4.0]);
    }

    #[test]
    fn infinite_and_nan_responses_name_their_row() {
        for bad in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
            let err = accumulate(&[1.0, 2.0, bad], [1, 1, 1].into_iter(), &mut LevelCodes::new(1).unwrap(), &mut Checkpoint::new(&Never)).unwrap_err();
            assert_eq!(err, HnmError::NotFinite { argument: "y", index: 2 });
        }
    }

    #[test]
    fn direct_codes_always_fit_an_i32() {
        // 2^32 − 1 levels (all of i32) in 2^34 rows passes the density rule, but codes up
        // to 2^32 − 1 would wrap in an i32: such data must be hashed.
        assert_eq!(direct_levels(i32::MIN + 1, i32::MAX, 1 << 34), None);
        assert_eq!(direct_levels(0, i32::MAX - 1, 1 << 34), Some(i32::MAX as usize));
        assert_eq!(direct_levels(-2, 7, 4), Some(10));
    }

    #[test]
    fn codes_out_of_range_are_errors() {
        let err = accumulate(&[1.0, 2.0], [1, 3].into_iter(), &mut LevelCodes::new(2).unwrap(), &mut Checkpoint::new(&Never)).unwrap_err();
        assert_eq!(err, HnmError::GroupCodeOutOfRange { argument: "g", index: 1, code: 3, n_groups: 2 });
        assert_eq!(err.to_string(), "`g` has group code 3 at position 2, outside 1..2.");
        let err = accumulate(&[1.0], [0].into_iter(), &mut LevelCodes::new(2).unwrap(), &mut Checkpoint::new(&Never)).unwrap_err();
        assert_eq!(err, HnmError::GroupCodeOutOfRange { argument: "g", index: 0, code: 0, n_groups: 2 });
    }
}
