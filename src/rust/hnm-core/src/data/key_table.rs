//! Groups found by hashing a 64-bit key: integer or double values, or the addresses of
//! interned strings (R's CHARSXP cache gives equal strings one address).
//!
//! An open-addressing table with linear probing whose slots hold the key, the group's
//! first row and its [`Accumulator`] together, so a row costs one probe into one cache
//! line. One key value is reserved as `missing`: rows with it are dropped, and it marks
//! empty slots. The last group hit is remembered, so rows sorted or clustered by group
//! skip the hash altogether.

use crate::data::pass::{prefetch_address, Accumulator, Grouping};
use crate::data::stats::GroupStats;
use crate::error::{HnmError, Result};
use crate::numerics::interrupt::Checkpoint;
use crate::numerics::memory::{filled, push, with_capacity};

#[derive(Debug, Clone, Copy)]
struct Slot {
    key: u64,
    first_row: usize,
    accumulator: Accumulator,
}

/// Per-group accumulators keyed by a 64-bit value, created as groups are first seen.
#[derive(Debug, Clone)]
pub struct KeyTable {
    slots: Vec<Slot>,
    len: usize,
    missing: u64,
    last: usize,
}

/// The statistics of a keyed pass: groups in an unspecified order, each with the 0-based
/// row where it was first seen (from which the caller recovers the key's value).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyedGroups {
    /// n_j, ȳ_j − c and SSW_j of each group, c the value of the first row used.
    pub stats: GroupStats,
    /// The 0-based row where each group (in the order of `stats`) was first seen.
    pub first_rows: Vec<usize>,
}

const INITIAL_CAPACITY: usize = 1024;

impl KeyTable {
    /// An empty table; rows whose key equals `missing` are missing groups. The value also
    /// marks empty slots, so a real key equal to `missing` cannot be a group: it is treated
    /// as missing (dropped). Choose `missing` outside the keys' range, as [`DOUBLE_MISSING`]
    /// and [`INTEGER_MISSING`] are for [`double_key`] and [`integer_key`].
    ///
    /// # Example
    /// ```
    /// use hnm_core::{accumulate, integer_key, Checkpoint, KeyTable, Never, INTEGER_MISSING, NA_CODE};
    /// let mut table = KeyTable::new(INTEGER_MISSING);
    /// let keys = [4, NA_CODE, 4].map(integer_key);
    /// assert_eq!(accumulate(&[1.0, 2.0, 3.0], keys.into_iter(), &mut table, &mut Checkpoint::new(&Never)).unwrap(), 1);
    /// assert_eq!(table.len(), 1);
    /// ```
    pub fn new(missing: u64) -> Self {
        let slots = vec![Self::empty_slot(missing); INITIAL_CAPACITY];
        KeyTable { slots, len: 0, missing, last: 0 }
    }

    /// Number of groups seen.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no group has been seen.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The groups' statistics and first rows. The center of the means is the value of
    /// the first row used, as for a pass over codes.
    ///
    /// # Errors
    /// `TooLarge` when they do not fit in memory.
    ///
    /// # Example
    /// ```
    /// use hnm_core::{accumulate, Checkpoint, KeyTable, Never};
    /// let mut table = KeyTable::new(u64::MAX);
    /// let keys = [7u64, 3, 7, u64::MAX];
    /// let dropped = accumulate(&[1.0, 5.0, 3.0, 9.0], keys.into_iter(), &mut table, &mut Checkpoint::new(&Never)).unwrap();
    /// let groups = table.into_groups().unwrap();
    /// assert_eq!(dropped, 1);
    /// let seven = groups.first_rows.iter().position(|&r| r == 0).unwrap();
    /// assert_eq!(groups.stats.means()[seven], 2.0);
    /// assert_eq!(groups.stats.ssw()[seven], 2.0);
    /// ```
    pub fn into_groups(self) -> Result<KeyedGroups> {
        // One entry per group, within their exact capacities.
        let used = || self.slots.iter().filter(|s| s.key != self.missing);
        let mut first_rows = with_capacity(&[self.len], "the groups' first rows")?;
        first_rows.extend(used().map(|s| s.first_row));
        let first = (0..first_rows.len()).min_by_key(|&j| first_rows[j]).unwrap_or(0);
        let mut accumulators = with_capacity(&[self.len], "the groups' running statistics")?;
        accumulators.extend(used().map(|s| s.accumulator));
        Ok(KeyedGroups { stats: GroupStats::from_accumulators(&accumulators, first)?, first_rows })
    }

    fn empty_slot(missing: u64) -> Slot {
        Slot { key: missing, first_row: 0, accumulator: Accumulator::default() }
    }

    /// Index of `key`'s slot, or of the empty slot where it belongs.
    #[inline]
    fn probe(&self, key: u64) -> usize {
        let mask = self.slots.len() - 1;
        let mut i = (mix(key) as usize) & mask;
        while self.slots[i].key != key && self.slots[i].key != self.missing {
            i = (i + 1) & mask;
        }
        i
    }

    /// Doubles the capacity, keeping the load factor at most 1/2; an error (not an abort)
    /// when memory runs out, as it can for tens of millions of distinct values.
    fn grow(&mut self) -> Result<()> {
        let bigger = filled(&[2, self.slots.len()], Self::empty_slot(self.missing), "the table of groups")?;
        let old = std::mem::replace(&mut self.slots, bigger);
        for slot in old.into_iter().filter(|s| s.key != self.missing) {
            let i = self.probe(slot.key);
            self.slots[i] = slot;
        }
        Ok(())
    }
}

impl Grouping for KeyTable {
    type Key = u64;

    #[inline]
    fn accumulator(&mut self, key: u64, row: usize) -> Result<Option<&mut Accumulator>> {
        if key == self.missing {
            return Ok(None);
        }
        if self.slots[self.last].key != key {
            let mut i = self.probe(key);
            if self.slots[i].key == self.missing {
                if 2 * (self.len + 1) > self.slots.len() {
                    self.grow()?;
                    i = self.probe(key);
                }
                self.slots[i] = Slot { key, first_row: row, accumulator: Accumulator::default() };
                self.len += 1;
            }
            self.last = i;
        }
        Ok(Some(&mut self.slots[self.last].accumulator))
    }

    #[inline]
    fn prefetch(&self, key: u64) {
        let mask = self.slots.len() - 1;
        prefetch_address(self.slots.as_ptr().wrapping_add((mix(key) as usize) & mask));
    }
}

/// Dense group codes of a keyed vector (see [`group_codes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCodes {
    /// Per row, the 1-based code of its group in order of first appearance; `NA_CODE` for a
    /// missing key.
    pub codes: Vec<i32>,
    /// The 0-based row where each group (code 1, 2, ...) is first seen.
    pub first_rows: Vec<usize>,
}

/// Numbers the distinct keys of `keys` 1, 2, ... in order of first appearance (as R's
/// `match(x, unique(x))`), with `missing` keys coded `NA_CODE`: one pass with an
/// open-addressing table (load at most 1/2, the last group hit remembered for clustered rows).
///
/// # Errors
/// `TooLarge` when the codes or the table cannot be allocated, `InvalidArgument` (naming `g`)
/// past 2^31 − 1 groups, `Interrupted` when `checkpoint` reports a user interrupt.
///
/// # Example
/// ```
/// use hnm_core::{group_codes, integer_key, Checkpoint, Never, INTEGER_MISSING, NA_CODE};
/// let keys = [40, 7, NA_CODE, 40].map(integer_key);
/// let coded = group_codes(keys.into_iter(), INTEGER_MISSING, &mut Checkpoint::new(&Never)).unwrap();
/// assert_eq!(coded.codes, vec![1, 2, NA_CODE, 1]);
/// assert_eq!(coded.first_rows, vec![0, 1]);
/// ```
pub fn group_codes(keys: impl ExactSizeIterator<Item = u64>, missing: u64, checkpoint: &mut Checkpoint<'_>) -> Result<GroupCodes> {
    let mut codes = with_capacity(&[keys.len()], "the group codes")?;
    let mut first_rows = Vec::new();
    let mut table: Vec<(u64, i32)> = vec![(missing, 0); INITIAL_CAPACITY];
    let mut last = (missing, crate::data::pass::NA_CODE);
    for (row, key) in keys.enumerate() {
        checkpoint.check()?;
        if key == missing {
            codes.push(crate::data::pass::NA_CODE);
            continue;
        }
        if key != last.0 {
            let mut i = slot_of(&table, key, missing);
            if table[i].0 == missing {
                if first_rows.len() >= i32::MAX as usize {
                    return Err(HnmError::InvalidArgument { argument: "g", reason: "has more than 2^31 - 1 distinct values" });
                }
                if 2 * (first_rows.len() + 1) > table.len() {
                    table = grown(&table, missing)?;
                    i = slot_of(&table, key, missing);
                }
                push(&mut first_rows, row, "the groups' first rows")?;
                table[i] = (key, first_rows.len() as i32);
            }
            last = table[i];
        }
        codes.push(last.1);
    }
    Ok(GroupCodes { codes, first_rows })
}

/// The slot of `key` in `table`, or the empty slot where it belongs.
fn slot_of(table: &[(u64, i32)], key: u64, missing: u64) -> usize {
    let mask = table.len() - 1;
    let mut i = (mix(key) as usize) & mask;
    while table[i].0 != key && table[i].0 != missing {
        i = (i + 1) & mask;
    }
    i
}

/// `table` rehashed into twice the capacity (fallible: an error, not an abort).
fn grown(table: &[(u64, i32)], missing: u64) -> Result<Vec<(u64, i32)>> {
    let mut bigger = filled(&[2, table.len()], (missing, 0), "the table of groups")?;
    for &(key, code) in table.iter().filter(|(key, _)| *key != missing) {
        let i = slot_of(&bigger, key, missing);
        bigger[i] = (key, code);
    }
    Ok(bigger)
}

/// The 64-bit finaliser of MurmurHash3: every input bit affects every output bit, so
/// aligned addresses and doubles differing only in high bits spread over the table.
#[inline]
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The key of an R double group value: NaN (and R's `NA`) map to `missing`, and −0 to +0,
/// so keys are equal exactly when R's `unique()` treats the values as equal.
///
/// # Example
/// ```
/// use hnm_core::{double_key, NA_REAL};
/// assert_eq!(double_key(-0.0, u64::MAX), double_key(0.0, u64::MAX));
/// assert_eq!(double_key(NA_REAL, u64::MAX), u64::MAX);
/// assert_ne!(double_key(0.1, u64::MAX), double_key(0.2, u64::MAX));
/// ```
#[inline]
pub fn double_key(x: f64, missing: u64) -> u64 {
    if x.is_nan() {
        missing
    } else if x == 0.0 {
        0
    } else {
        x.to_bits()
    }
}

/// The key used for missing double group values: a NaN bit pattern, which
/// [`double_key`] never returns for a number.
///
/// # Example
/// ```
/// use hnm_core::{double_key, DOUBLE_MISSING};
/// assert_eq!(double_key(f64::NAN, DOUBLE_MISSING), DOUBLE_MISSING);
/// assert_ne!(double_key(f64::MAX, DOUBLE_MISSING), DOUBLE_MISSING);
/// ```
pub const DOUBLE_MISSING: u64 = 0x7FF8_0000_0000_0000;

/// The key of an R integer group value: its 32 bits as an unsigned number, so distinct
/// integers have distinct keys; R's `NA` (i32::MIN) maps to [`INTEGER_MISSING`].
///
/// # Example
/// ```
/// use hnm_core::{integer_key, INTEGER_MISSING, NA_CODE};
/// assert_eq!(integer_key(NA_CODE), INTEGER_MISSING);
/// assert_ne!(integer_key(-1), integer_key(1));
/// ```
#[inline]
pub fn integer_key(x: i32) -> u64 {
    u64::from(x as u32)
}

/// The key of R's integer `NA`: 2³¹, the bits of i32::MIN, which no other integer has.
///
/// # Example
/// ```
/// assert_eq!(hnm_core::INTEGER_MISSING, 1 << 31);
/// ```
pub const INTEGER_MISSING: u64 = crate::data::pass::NA_CODE as u32 as u64;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::pass::accumulate;
    use crate::numerics::interrupt::{Checkpoint, Never};

    #[test]
    fn many_groups_survive_growth_and_match_a_direct_count() {
        // 5000 groups (the table grows several times), keys spread over a wide range and
        // visited in an interleaved order; reference: counts and sums by direct indexing.
        let groups = 5000u64;
        let rows: Vec<u64> = (0..20_000u64).map(|i| (i * 7919) % groups).collect();
        let keys: Vec<u64> = rows.iter().map(|&j| j * 1_000_003 + 17).collect();
        let y: Vec<f64> = rows.iter().enumerate().map(|(i, &j)| j as f64 + (i % 3) as f64).collect();
        let mut table = KeyTable::new(u64::MAX);
        assert_eq!(accumulate(&y, keys.iter().copied(), &mut table, &mut Checkpoint::new(&Never)).unwrap(), 0);
        assert_eq!(table.len(), groups as usize);
        let out = table.into_groups().unwrap();
        let mut count = vec![0.0; groups as usize];
        let mut sum = vec![0.0; groups as usize];
        for (&j, &v) in rows.iter().zip(&y) {
            count[j as usize] += 1.0;
            sum[j as usize] += v;
        }
        let means = out.stats.means();
        for (k, &first) in out.first_rows.iter().enumerate() {
            let j = rows[first] as usize;
            assert_eq!(out.stats.n()[k], count[j]);
            assert!((means[k] - sum[j] / count[j]).abs() < 1e-9);
        }
    }

    #[test]
    fn center_is_the_first_row_used() {
        let mut table = KeyTable::new(u64::MAX);
        accumulate(&[f64::from_bits(0x7FF0_0000_0000_07A2), 5.0, 8.0], [1u64, 2, 1].into_iter(), &mut table, &mut Checkpoint::new(&Never)).unwrap();
        assert_eq!(table.into_groups().unwrap().stats.center(), 5.0);
    }
}
