//! The row pass of the linear mixed model: one pass over the rows of several columns that
//! leaves each group's [`crate::CrossProducts`] (see [`crate::data::cross_products`]).
//!
//! One pass over the rows applies the multivariate Welford update to v − p, where the pilot
//! p is the first complete row: with d = v − p − m before the update, m ← m + d/n and
//! W ← W + (n − 1)/n · d dᵀ. Σ v² is never formed, and v − p is exact for values near the
//! pilot, so offsets such as 1e12 + 0.1 keep their digits. A group's running statistics sit
//! together (1 + k + k(k+1)/2 doubles), so a row touches one group's state however the rows
//! are ordered.

use crate::data::cells::{Cell, Response, NA_CODE};
use crate::data::cross_products::{CrossProducts, STATISTICS};
use crate::data::groups::KeyCodes;
use crate::error::{HnmError, Result};
use crate::numerics::interrupt::{Checkpoint, Interrupt};
use crate::numerics::memory::{filled, with_capacity};
use crate::numerics::parallel::split_rows;

/// One numeric column as R stores it, read in place.
#[derive(Debug, Clone, Copy)]
pub enum Column<'a> {
    /// Doubles; R's `NA` is [`crate::NA_REAL`].
    Double(&'a [f64]),
    /// Integers (and logicals); R's `NA` is [`crate::NA_CODE`].
    Integer(&'a [i32]),
    /// Row i is `values[index[i] − 1]` (a model matrix's column held as the column of its
    /// distinct rows and each row's 1-based index into them, [`crate::write_rows_of_distinct`]);
    /// an index outside `values` reads as R's `NA`.
    Indexed { values: &'a [f64], index: &'a [i32] },
}

impl Column<'_> {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Column::Double(v) => v.len(),
            Column::Integer(v) => v.len(),
            Column::Indexed { index, .. } => index.len(),
        }
    }

    /// True when the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows `range` of the column.
    ///
    /// # Panics
    /// When `range` is not within the column's rows.
    pub fn rows(&self, range: std::ops::Range<usize>) -> Self {
        match *self {
            Column::Double(v) => Column::Double(&v[range]),
            Column::Integer(v) => Column::Integer(&v[range]),
            Column::Indexed { values, index } => Column::Indexed { values, index: &index[range] },
        }
    }

    /// The value of `row`, or `None` when it is missing or not finite.
    pub fn value(&self, row: usize) -> Option<f64> {
        match self.cell(row) {
            Cell::Value(v) => Some(v),
            _ => None,
        }
    }

    #[inline(always)]
    fn cell(&self, row: usize) -> Cell {
        self.read(row).1
    }

    /// The bits of `row`'s value (for [`BlockPass::fingerprint`]) and what it means, from one
    /// read.
    #[inline(always)]
    fn read(&self, row: usize) -> (u64, Cell) {
        match self {
            Column::Double(v) => read_value(v[row]),
            Column::Integer(v) => read_value(v[row]),
            Column::Indexed { values, index } => read_indexed(values, index[row]),
        }
    }

    /// Starts loading the cache lines of the rows `rows` (rows past the end are a hint that
    /// is never followed: a prefetch never faults).
    #[inline(always)]
    fn prefetch_rows(&self, rows: std::ops::Range<usize>) {
        fn lines<T>(values: &[T], rows: std::ops::Range<usize>) {
            let per_line = 64 / std::mem::size_of::<T>();
            for row in rows.step_by(per_line) {
                prefetch_address(values.as_ptr().wrapping_add(row));
            }
        }
        match self {
            Column::Double(v) => lines(v, rows),
            Column::Integer(v) => lines(v, rows),
            // The distinct values are few, and stay in cache.
            Column::Indexed { index, .. } => lines(index, rows),
        }
    }
}

/// A value's bits (for [`BlockPass::fingerprint`]) and what it means.
#[inline(always)]
fn read_value<T: Response>(value: T) -> (u64, Cell) {
    (value.bits(), value.cell())
}

/// [`read_value`] of row `code` of `values` ([`Column::Indexed`], [`crate::distinct_value`]).
#[inline(always)]
fn read_indexed(values: &[f64], code: i32) -> (u64, Cell) {
    read_value(crate::distinct_value(values, code))
}

/// The group of each row as R holds it, read in place: 1-based codes (a factor's, or codes
/// made by [`crate::group_codes`]), the values of a small whole-number range less an offset
/// (code = value − offset, [`crate::dense_integer_range`], [`crate::dense_double_range`]), so
/// that an integer or double grouping column needs no pass of its own to be coded, or hashed
/// values coded by their table ([`KeyCodes`]) as they are read, so that no vector of codes
/// is stored. A missing value (R's `NA`, or NaN) is a missing group.
#[derive(Debug, Clone, Copy)]
pub enum GroupColumn<'a> {
    /// 1-based codes; [`NA_CODE`] is a missing group.
    Codes(&'a [i32]),
    /// Integers whose code is the value less `offset`; [`NA_CODE`] is a missing group.
    Integers { values: &'a [i32], offset: i32 },
    /// Whole numbers whose code is the value less `offset`; NaN is a missing group.
    Doubles { values: &'a [f64], offset: i32 },
    /// Values whose code is their key's in `table` (0, an error of the pass, for a key not in
    /// it); the table's missing key is a missing group.
    Keyed { keys: GroupKeys<'a>, table: &'a KeyCodes },
}

/// The values of a hashed grouping variable, read in place, each the key of its group in a
/// [`KeyCodes`] table built from the same kind of keys.
#[derive(Debug, Clone, Copy)]
pub enum GroupKeys<'a> {
    /// Integers (and logicals), keyed by [`crate::integer_key`] ([`crate::INTEGER_MISSING`] the missing key).
    Integers(&'a [i32]),
    /// Doubles, keyed by [`crate::double_key`] with [`crate::DOUBLE_MISSING`] the missing key.
    Doubles(&'a [f64]),
    /// The addresses of interned strings (R's CHARSXPs: one address per string), their own keys.
    Addresses(&'a [usize]),
}

impl GroupKeys<'_> {
    fn len(&self) -> usize {
        match self {
            GroupKeys::Integers(v) => v.len(),
            GroupKeys::Doubles(v) => v.len(),
            GroupKeys::Addresses(v) => v.len(),
        }
    }

    fn rows(&self, range: std::ops::Range<usize>) -> Self {
        match *self {
            GroupKeys::Integers(v) => GroupKeys::Integers(&v[range]),
            GroupKeys::Doubles(v) => GroupKeys::Doubles(&v[range]),
            GroupKeys::Addresses(v) => GroupKeys::Addresses(&v[range]),
        }
    }
}

impl GroupColumn<'_> {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            GroupColumn::Codes(c) => c.len(),
            GroupColumn::Integers { values, .. } => values.len(),
            GroupColumn::Doubles { values, .. } => values.len(),
            GroupColumn::Keyed { keys, .. } => keys.len(),
        }
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows `range` of the column.
    pub(crate) fn rows(&self, range: std::ops::Range<usize>) -> Self {
        match *self {
            GroupColumn::Codes(c) => GroupColumn::Codes(&c[range]),
            GroupColumn::Integers { values, offset } => GroupColumn::Integers { values: &values[range], offset },
            GroupColumn::Doubles { values, offset } => GroupColumn::Doubles { values: &values[range], offset },
            GroupColumn::Keyed { keys, table } => GroupColumn::Keyed { keys: keys.rows(range), table },
        }
    }
}

/// The code of a value `difference` above a range's offset, clamped into i32 short of R's `NA`
/// (i32::MIN): a value beyond the range (changed in place after the range was found) has a
/// code out of range, an error of the pass, never a wrapped code that could be another
/// group's or a missing group's.
#[inline(always)]
pub(crate) fn offset_code(difference: i64) -> i32 {
    difference.clamp(i64::from(i32::MIN) + 1, i64::from(i32::MAX)) as i32
}

/// Every row's 1-based code ([`NA_CODE`] for a missing group, 0 for a value not among the
/// groups): the codes a [`GroupColumn`] stands for, for row-level computations in R.
///
/// # Errors
/// `TooLarge` when the codes do not fit in memory.
///
/// # Example
/// ```
/// use hnm_core::{group_column_codes, GroupColumn, NA_CODE};
/// let values = [7, NA_CODE, 9];
/// assert_eq!(group_column_codes(GroupColumn::Integers { values: &values, offset: 6 }).unwrap(), vec![1, NA_CODE, 3]);
/// ```
pub fn group_column_codes(group: GroupColumn<'_>) -> Result<Vec<i32>> {
    with_codes!(group, codes => crate::numerics::memory::collected(codes, "the group codes"))
}

/// `$body` with `$codes` bound to an iterator over the 1-based codes of the [`GroupColumn`]
/// `$group` (monomorphised for each kind of column, so the row loops read the column directly).
macro_rules! with_codes {
    ($group:expr, $codes:ident => $body:expr) => {
        match $group {
            GroupColumn::Codes(c) => {
                let $codes = c.iter().copied();
                $body
            }
            GroupColumn::Integers { values, offset } => {
                let $codes = values.iter().map(move |&v| {
                    if v == $crate::data::cells::NA_CODE {
                        $crate::data::cells::NA_CODE
                    } else {
                        $crate::data::blocks::offset_code(i64::from(v) - i64::from(offset))
                    }
                });
                $body
            }
            GroupColumn::Doubles { values, offset } => {
                // A value the range check excluded (not whole, or beyond i32) has code 0 or
                // one out of range: an error of the pass, never another group, and a changed
                // fingerprint when the data were changed in place after the fit.
                let $codes = values.iter().map(move |&v| {
                    let whole = v as i64;
                    if v.is_nan() {
                        $crate::data::cells::NA_CODE
                    } else if whole as f64 != v {
                        0
                    } else {
                        $crate::data::blocks::offset_code(whole - i64::from(offset))
                    }
                });
                $body
            }
            GroupColumn::Keyed { keys, table } => match keys {
                $crate::data::blocks::GroupKeys::Integers(values) => {
                    let $codes = $crate::data::groups::KeyedCodes::new(values, $crate::data::groups::integer_key, table);
                    $body
                }
                $crate::data::blocks::GroupKeys::Doubles(values) => {
                    let $codes =
                        $crate::data::groups::KeyedCodes::new(values, |v| $crate::data::groups::double_key(v, $crate::data::groups::DOUBLE_MISSING), table);
                    $body
                }
                $crate::data::blocks::GroupKeys::Addresses(values) => {
                    let $codes = $crate::data::groups::KeyedCodes::new(values, |a: usize| a as u64, table);
                    $body
                }
            },
        }
    };
}
pub(crate) use with_codes;

/// The statistics of a data pass and the number of rows it dropped for a missing value.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockPass {
    /// Statistics of every group code, empty groups included.
    pub stats: CrossProducts,
    /// Rows with `NA` in a variable or the group.
    pub dropped: usize,
    /// A hash of every value read (see [`fingerprint`]): row-level methods recompute it to
    /// tell whether the data were changed in place after the fit.
    pub fingerprint: u64,
}

/// Σ_i w_i · (c_i ⊕ ⊕_a rotl(bits(v_ia), 1 + 13a)) (mod 2⁶⁴) over the rows i, with the group
/// code c_i and odd weights w_i distinct per row: any single changed value changes it (each
/// row's combination is invertible in each of its values, and an odd weight is invertible
/// mod 2⁶⁴), at the cost of one multiply-add per row.
///
/// # Errors
/// `LengthMismatch` when a column and `codes` differ in length; `Interrupted`.
///
/// # Example
/// ```
/// use hnm_core::{fingerprint, Checkpoint, Column, GroupColumn, Never};
/// let y = [1.0, 2.0];
/// let a = fingerprint(&[Column::Double(&y)], GroupColumn::Codes(&[1, 2]), &mut Checkpoint::new(&Never)).unwrap();
/// let b = fingerprint(&[Column::Double(&[1.0, 2.5])], GroupColumn::Codes(&[1, 2]), &mut Checkpoint::new(&Never)).unwrap();
/// assert_ne!(a, b);
/// ```
pub fn fingerprint(columns: &[Column<'_>], group: GroupColumn<'_>, checkpoint: &mut Checkpoint<'_>) -> Result<u64> {
    for column in columns {
        check_length("a model column", column.len(), "the grouping factor", group.len())?;
    }
    let mut hash = Fingerprint::default();
    with_codes!(group, codes => {
        for (row, code) in codes.enumerate() {
            if row % Checkpoint::STRIDE as usize == 0 {
                checkpoint.check_timed()?;
            }
            hash.add_row(columns, row, code);
        }
    });
    Ok(hash.value())
}

/// The running state of [`fingerprint`]: with the weight w_i = STEP · (i + 1) + 1 of row i
/// (odd, as STEP is even), Σ w_i c_i = Σ c_i + STEP · Σ (i + 1) c_i, kept as its two sums so
/// that a row costs one multiply by its index and two adds, with no running weight.
#[derive(Default)]
pub(crate) struct Fingerprint {
    sum: u64,
    weighted: u64,
}

impl Fingerprint {
    const STEP: u64 = 0x9E37_79B9_7F4A_7C15 << 1;

    #[inline(always)]
    fn add_row(&mut self, columns: &[Column<'_>], row: usize, code: i32) {
        let mut combined = Self::code_bits(code);
        for (a, column) in columns.iter().enumerate() {
            combined ^= Self::cell_bits(a, column.read(row).0);
        }
        self.add(row as u64 + 1, combined);
    }

    /// A row's code, the start of its combined bits.
    #[inline(always)]
    fn code_bits(code: i32) -> u64 {
        code as u32 as u64
    }

    /// What column `a`'s value (its bits) adds to its row's combined bits, by exclusive or.
    #[inline(always)]
    fn cell_bits(a: usize, bits: u64) -> u64 {
        bits.rotate_left(1 + 13 * a as u32)
    }

    /// The row numbered `row_number` (1-based, of all the rows), from its combined bits.
    #[inline(always)]
    pub(crate) fn add(&mut self, row_number: u64, combined: u64) {
        self.sum = self.sum.wrapping_add(combined);
        self.weighted = self.weighted.wrapping_add(combined.wrapping_mul(row_number));
    }

    /// Σ w_i c_i over the rows added.
    pub(crate) fn value(&self) -> u64 {
        self.sum.wrapping_add(Self::STEP.wrapping_mul(self.weighted))
    }
}

impl CrossProducts {
    /// One pass over the rows: the statistics of `n_groups` groups given by 1-based `codes`
    /// (an R factor's codes; [`NA_CODE`] is a missing group). A row with `NA` in any column
    /// or a missing group is dropped and counted.
    ///
    /// # Errors
    /// `LengthMismatch` when a column and `codes` differ in length; `ColumnNotFinite` for
    /// a NaN (not `NA`) or infinite value; `GroupCodeOutOfRange` for a code outside
    /// `1..=n_groups`; `StatisticsTooLarge`, before anything is allocated, when the
    /// statistics, 8 m (1 + k + k(k + 1)/2) bytes for m groups and k columns, would take more
    /// than 1 GiB and more than 10 times the columns' 8 N k bytes (N rows): a factor
    /// covariate with many levels, whose every contrast is a column; `TooLarge` when the
    /// groups' state or the statistics do not fit in memory; `Interrupted` when `checkpoint`
    /// reports a user interrupt.
    ///
    /// # Example
    /// ```
    /// use hnm_core::{Checkpoint, Column, CrossProducts, Never, NA_REAL};
    /// let y = [1.0, 3.0, 10.0, NA_REAL, 12.0];
    /// let x = [0, 2, 1, 1, 3];
    /// let pass = CrossProducts::from_columns(&[Column::Double(&y), Column::Integer(&x)],
    ///     [1, 1, 2, 2, 2].into_iter(), 2, &mut Checkpoint::new(&Never)).unwrap();
    /// assert_eq!(pass.dropped, 1);
    /// assert_eq!(pass.stats.n(), &[2.0, 2.0]);
    /// // Group 2 has y = (10, 12), x = (1, 3): W = [[2, 2], [2, 2]].
    /// assert_eq!((pass.stats.comoment(1, 0, 0), pass.stats.comoment(1, 1, 0)), (2.0, 2.0));
    /// assert_eq!(pass.stats.group_means(1), vec![11.0, 2.0]);
    /// ```
    pub fn from_columns(
        columns: &[Column<'_>], codes: impl ExactSizeIterator<Item = i32> + Clone, n_groups: usize, checkpoint: &mut Checkpoint<'_>,
    ) -> Result<BlockPass> {
        check_columns(columns, codes.len(), n_groups)?;
        let pilot = first_complete_row(columns, codes.clone()).unwrap_or_else(|| vec![0.0; columns.len()]);
        let part = accumulate_rows(columns, codes, 0, &pilot, n_groups, checkpoint)?;
        part.finish(columns.len(), n_groups)
    }

    /// [`CrossProducts::from_columns`] with the rows split among up to `threads` threads
    /// (from [`PARALLEL_ROWS`] rows on): each accumulates its rows' group states about the
    /// same pilot (the first complete row), and the states are merged by Chan et al.'s rule
    /// n = n₁ + n₂, m = m₁ + (n₂/n) δ, W = W₁ + W₂ + (n₁n₂/n) δδᵀ with δ = m₂ − m₁. The
    /// statistics equal the one-thread pass's up to rounding, the fingerprint and the
    /// dropped rows exactly, and an error is the one the one-thread pass reports first.
    ///
    /// # Errors
    /// As [`CrossProducts::from_columns`], `Interrupted` when `interrupt` reports a user
    /// interrupt (every thread then stops).
    ///
    /// # Example
    /// ```
    /// use hnm_core::{Column, CrossProducts, GroupColumn, Never};
    /// let y: Vec<f64> = (0..300_000).map(|i| (i % 97) as f64).collect();
    /// let g: Vec<i32> = (0..300_000).map(|i| (i % 10) as i32 + 1).collect();
    /// let two = CrossProducts::from_columns_on_threads(&[Column::Double(&y)], GroupColumn::Codes(&g), 10, 2, &Never).unwrap();
    /// assert_eq!(two.stats.n(), &[30_000.0; 10]);
    /// ```
    pub fn from_columns_on_threads(
        columns: &[Column<'_>], group: GroupColumn<'_>, n_groups: usize, threads: usize, interrupt: &dyn Interrupt,
    ) -> Result<BlockPass> {
        let (rows, k) = (group.len(), columns.len());
        check_columns(columns, rows, n_groups)?;
        let pilot = with_codes!(group, codes => first_complete_row(columns, codes)).unwrap_or_else(|| vec![0.0; k]);
        let accumulate = |range: std::ops::Range<usize>, checkpoint: &mut Checkpoint<'_>| with_codes!(group.rows(range.clone()), codes => accumulate_rows(columns, codes, range.start, &pilot, n_groups, checkpoint));
        split_rows(rows, threads, interrupt, accumulate, |first, second| first.merge(second, k))?.finish(k, n_groups)
    }
}

/// The state of a pass over the rows ([`CrossProducts::from_columns`]'s, and the pooled
/// pass of [`crate::data::pooled`]): the groups' states, the pilot, the rows dropped and the
/// fingerprint.
pub(crate) struct RowPass<'s> {
    state: &'s mut [f64],
    pilot: &'s [f64],
    pub(crate) dropped: usize,
    pub(crate) hash: Fingerprint,
}

impl RowPass<'_> {
    /// Every row into its group's state (n, means, packed co-moments: 1 + k + k(k+1)/2
    /// doubles each, `n_groups` of them in `state`), skipping rows with a missing value or
    /// group.
    ///
    /// The codes are read a chunk of [`Checkpoint::STRIDE`] rows at a time into a buffer, so
    /// that a code computed from a double or through a key table is computed once, the row loop
    /// reads every kind of group column as a slice (the code [`PREFETCH_DISTANCE`] rows ahead
    /// by its index), and the interrupt is asked once per chunk: the loop over a chunk's rows
    /// is the pass's whole cost, a few dozen instructions a row.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn run<C: ChunkCells>(
        &mut self, k: usize, chunk_cells: impl Fn(std::ops::Range<usize>) -> C, mut codes: impl ExactSizeIterator<Item = i32>, first_row: usize,
        n_groups: usize, stride_of: &impl Fn(usize) -> usize, update: &mut impl FnMut(&mut [f64], &mut [f64]), checkpoint: &mut Checkpoint<'_>,
    ) -> Result<()> {
        // From a literal k, a constant: the prefetches and the group's offset then fold.
        let stride = stride_of(k);
        assert_eq!(self.state.len(), n_groups * stride, "a state per group");
        // On the stack for the common widths, so that the row's values stay in registers.
        let (mut stack, mut pilot_stack) = ([0.0; 8], [0.0; 8]);
        let mut heap = if k <= 8 { Vec::new() } else { with_capacity(&[k], STATISTICS)? };
        let mut scratch = BlockScratch::new(if C::BLOCKS { k } else { 0 })?;
        let (shifted, pilot): (&mut [f64], &[f64]) = if k <= 8 {
            pilot_stack[..k].copy_from_slice(self.pilot);
            (&mut stack[..k], &pilot_stack[..k])
        } else {
            // Within its capacity.
            heap.resize(k, 0.0);
            (&mut heap, self.pilot)
        };
        // The loop's state in locals, written back at the end: fields behind `&mut self`
        // would be reloaded and stored every row.
        let (mut dropped, mut hash) = (self.dropped, std::mem::take(&mut self.hash));
        let state = &mut *self.state;
        let state_start = state.as_ptr();
        let rows = codes.len();
        // A chunk's codes, then PREFETCH_DISTANCE slots that the prefetch reads past its end
        // without a test: they hold a previous chunk's codes or 0, whose prefetch is a hint.
        let mut buffer = [0i32; Checkpoint::STRIDE as usize + PREFETCH_DISTANCE];
        let mut start = 0;
        // The 1-based number of the row, of all the rows: its fingerprint weight's index.
        let mut row_number = first_row as u64;
        while start < rows {
            checkpoint.check_timed()?;
            let len = (rows - start).min(Checkpoint::STRIDE as usize);
            for (slot, code) in buffer[..len].iter_mut().zip(&mut codes) {
                *slot = code;
            }
            let cells = chunk_cells(first_row + start..first_row + start + len);
            for i in 0..len {
                let (code, future) = (buffer[i], buffer[i + PREFETCH_DISTANCE]);
                // Every cache line of that group's state; a code out of range prefetches an
                // address outside them, which a prefetch may (it never faults).
                let group_state = state_start.wrapping_add((future as u32).wrapping_sub(1) as usize * stride);
                for line in (0..stride).step_by(8) {
                    prefetch_address(group_state.wrapping_add(line));
                }
                prefetch_address(group_state.wrapping_add(stride - 1));
                row_number += 1;
                let (read, combined) = cells.read(i, code, pilot, shifted, &mut scratch);
                hash.add(row_number, combined);
                let row = || (row_number - 1) as usize;
                match read {
                    RowRead::Kept => {}
                    RowRead::Dropped => {
                        dropped += 1;
                        continue;
                    }
                    RowRead::NotFinite(column) => return Err(HnmError::ColumnNotFinite { column, row: row() }),
                }
                // Code 0 or negative wraps to beyond every group.
                let group = (code as u32).wrapping_sub(1) as usize;
                if group >= n_groups {
                    return Err(HnmError::GroupCodeOutOfRange { argument: "g", index: row(), code: i64::from(code), n_groups });
                }
                // SAFETY: group < n_groups and the state holds n_groups · stride values
                // (asserted above); the slice's own bounds test would cost the loop a tenth.
                update(unsafe { state.get_unchecked_mut(group * stride..(group + 1) * stride) }, shifted);
            }
            start += len;
        }
        (self.dropped, self.hash) = (dropped, hash);
        Ok(())
    }
}

/// A chunk of rows of the model's columns as [`RowPass::run`]'s loop reads them.
trait ChunkCells {
    /// Whether the reads need a [`BlockScratch`] of the columns' blocks.
    const BLOCKS: bool = false;

    /// The chunk's row `i` (its group `code`) as [`read_row`] reads it; the rows in order, the
    /// chunk's reads sharing `scratch`.
    fn read(&self, i: usize, code: i32, pilot: &[f64], values: &mut [f64], scratch: &mut BlockScratch) -> (RowRead, u64);
}

/// Up to 8 columns' rows of a chunk, in locals the row loop does not write: each column's
/// kind and place are then invariants of the loop, not reloaded every row. Only R's own
/// kinds ([`PlainColumn`]), whose two-way test and 16 bytes keep the loop in registers (with
/// [`Column::Indexed`] among the kinds of its columns, a nested 1e6-row build ran 28% more
/// instructions); a chunk with an indexed column is read by [`ColumnBlocks`].
struct ColumnChunk<'a> {
    columns: [PlainColumn<'a>; 8],
    k: usize,
}

/// A [`Column::Double`] or [`Column::Integer`].
#[derive(Clone, Copy)]
enum PlainColumn<'a> {
    Double(&'a [f64]),
    Integer(&'a [i32]),
}

impl<'a> PlainColumn<'a> {
    /// Up to 8 `columns` as such; `None` when there are more or one is not of R's own kinds.
    fn all(columns: &[Column<'a>]) -> Option<[PlainColumn<'a>; 8]> {
        let mut plain = [PlainColumn::Double(&[]); 8];
        if columns.len() > plain.len() {
            return None;
        }
        for (view, column) in plain.iter_mut().zip(columns) {
            *view = match *column {
                Column::Double(v) => PlainColumn::Double(v),
                Column::Integer(v) => PlainColumn::Integer(v),
                Column::Indexed { .. } => return None,
            };
        }
        Some(plain)
    }

    #[inline(always)]
    fn read(&self, row: usize) -> (u64, Cell) {
        match self {
            PlainColumn::Double(v) => read_value(v[row]),
            PlainColumn::Integer(v) => read_value(v[row]),
        }
    }
}

impl<'a> ColumnChunk<'a> {
    /// The rows `rows` of the first `k` of `columns`.
    #[inline(always)]
    fn new(columns: &[PlainColumn<'a>; 8], k: usize, rows: std::ops::Range<usize>) -> Self {
        let mut chunk = ColumnChunk { columns: *columns, k };
        for view in &mut chunk.columns[..k] {
            *view = match *view {
                PlainColumn::Double(v) => PlainColumn::Double(&v[rows.clone()]),
                PlainColumn::Integer(v) => PlainColumn::Integer(&v[rows.clone()]),
            };
        }
        chunk
    }
}

impl ChunkCells for ColumnChunk<'_> {
    #[inline(always)]
    fn read(&self, i: usize, code: i32, pilot: &[f64], values: &mut [f64], _: &mut BlockScratch) -> (RowRead, u64) {
        read_cells(self.columns[..self.k].iter().map(|column| column.read(i)), code, pilot, values)
    }
}

/// A chunk's rows of a single column of one kind (the one-way model's response): the row
/// loop then has no test of the column's kind.
struct SingleColumn<'a, T>(&'a [T]);

impl<T: Response> ChunkCells for SingleColumn<'_, T> {
    #[inline(always)]
    fn read(&self, i: usize, code: i32, pilot: &[f64], values: &mut [f64], _: &mut BlockScratch) -> (RowRead, u64) {
        read_cells(std::iter::once(read_value(self.0[i])), code, pilot, values)
    }
}

/// More than 8 columns, the chunk's rows `rows` read [`BLOCK_ROWS`] at a time column by
/// column into a [`BlockScratch`]: row by row, the reads of a row went to k places of memory
/// a column apart, more streams than the processor prefetches (InstEval's 29 columns: a third
/// of the pass waited on those loads).
struct ColumnBlocks<'a, 'c> {
    columns: &'c [Column<'a>],
    rows: std::ops::Range<usize>,
}

/// Rows of a chunk read together by [`ColumnBlocks`].
const BLOCK_ROWS: usize = 64;

/// A block of rows as [`read_cells`] reads them: the values less the pilot (row-major), and per
/// row the exclusive or of its cells' bits, whether a value is missing and the first column
/// whose value is not finite (`usize::MAX` for none).
pub(crate) struct BlockScratch {
    shifted: Vec<f64>,
    combined: [u64; BLOCK_ROWS],
    missing: [bool; BLOCK_ROWS],
    not_finite: [usize; BLOCK_ROWS],
}

impl BlockScratch {
    /// Room for blocks of `k` columns (none for 0).
    ///
    /// # Errors
    /// `TooLarge` when it does not fit in memory.
    fn new(k: usize) -> Result<Self> {
        Ok(BlockScratch {
            shifted: filled(&[BLOCK_ROWS, k], 0.0, STATISTICS)?,
            combined: [0; BLOCK_ROWS],
            missing: [false; BLOCK_ROWS],
            not_finite: [0; BLOCK_ROWS],
        })
    }
}

impl ColumnBlocks<'_, '_> {
    /// The block of the chunk's rows from `start` into `scratch`, column by column.
    #[inline(always)]
    fn fill(&self, start: usize, pilot: &[f64], scratch: &mut BlockScratch) {
        let (first, len) = (self.rows.start + start, BLOCK_ROWS.min(self.rows.len() - start));
        let k = self.columns.len();
        let BlockScratch { shifted, combined, missing, not_finite } = scratch;
        combined[..len].fill(0);
        missing[..len].fill(false);
        not_finite[..len].fill(usize::MAX);
        for (a, column) in self.columns.iter().enumerate() {
            // The column's next block, which the processor's prefetchers did not fetch in
            // time across 28 columns (InstEval: a quarter of the pass waited on these loads).
            column.prefetch_rows(first + BLOCK_ROWS..(first + 2 * BLOCK_ROWS).min(self.rows.end));
            // The column's kind matched once, not per row (a nested 1e6-row build ran 28% more
            // instructions with the match in the loop, once a third kind was added).
            let block = ColumnBlock { a, k, pilot: pilot[a], combined: &mut combined[..len], shifted, missing, not_finite };
            match *column {
                Column::Double(v) => block.fill(|j| read_value(v[first + j])),
                Column::Integer(v) => block.fill(|j| read_value(v[first + j])),
                Column::Indexed { values, index } => block.fill(|j| read_indexed(values, index[first + j])),
            }
        }
    }
}

/// One column's place in a block of [`BlockScratch`]: its index `a` among the `k` columns,
/// its pilot value, and the block's rows (`combined`'s length) to fill.
struct ColumnBlock<'s> {
    a: usize,
    k: usize,
    pilot: f64,
    combined: &'s mut [u64],
    shifted: &'s mut [f64],
    missing: &'s mut [bool; BLOCK_ROWS],
    not_finite: &'s mut [usize; BLOCK_ROWS],
}

impl ColumnBlock<'_> {
    /// Fills the column's cells of the block from `cell(j)`, its row j's bits and meaning.
    #[inline(always)]
    fn fill(self, cell: impl Fn(usize) -> (u64, Cell)) {
        let ColumnBlock { a, k, pilot, combined, shifted, missing, not_finite } = self;
        for (j, combined) in combined.iter_mut().enumerate() {
            let (bits, cell) = cell(j);
            *combined ^= Fingerprint::cell_bits(a, bits);
            match cell {
                Cell::Value(v) => shifted[j * k + a] = v - pilot,
                Cell::Missing => missing[j] = true,
                Cell::NotFinite => not_finite[j] = not_finite[j].min(a),
            }
        }
    }
}

impl ChunkCells for ColumnBlocks<'_, '_> {
    const BLOCKS: bool = true;

    /// [`read_cells`]'s reading of row `i` from its block (the first row of a block reads it).
    #[inline(always)]
    fn read(&self, i: usize, code: i32, pilot: &[f64], values: &mut [f64], scratch: &mut BlockScratch) -> (RowRead, u64) {
        let j = i % BLOCK_ROWS;
        if j == 0 {
            self.fill(i, pilot, scratch);
        }
        let k = values.len();
        values.copy_from_slice(&scratch.shifted[j * k..(j + 1) * k]);
        let combined = Fingerprint::code_bits(code) ^ scratch.combined[j];
        let read = match (code == NA_CODE || scratch.missing[j], scratch.not_finite[j]) {
            (true, _) => RowRead::Dropped,
            (false, usize::MAX) => RowRead::Kept,
            (false, a) => RowRead::NotFinite(a),
        };
        (read, combined)
    }
}

/// Rows from which [`CrossProducts::from_columns_on_threads`] uses more than one thread.
pub const PARALLEL_ROWS: usize = 200_000;

/// What one pass over some rows accumulates: the groups' states (n, means about the pilot,
/// packed co-moments), the pilot, the rows dropped and the fingerprint's sum.
struct PassPart {
    state: Vec<f64>,
    pilot: Vec<f64>,
    dropped: usize,
    hash: u64,
}

/// The rows `codes` (the first at index `first_row`) into fresh group states, about `pilot`
/// (the first complete row of all the rows; zeros when there is none).
fn accumulate_rows(
    columns: &[Column<'_>], codes: impl ExactSizeIterator<Item = i32>, first_row: usize, pilot: &[f64], n_groups: usize, checkpoint: &mut Checkpoint<'_>,
) -> Result<PassPart> {
    let mut state = filled(&[n_groups, state_stride(columns.len())], 0.0, STATISTICS)?;
    let mut pass = RowPass::new(&mut state, pilot);
    pass.add_rows(columns, codes, first_row, n_groups, state_stride, welford_update, checkpoint)?;
    let RowPass { dropped, hash, .. } = pass;
    Ok(PassPart { state, pilot: pilot.to_vec(), dropped, hash: hash.value() })
}

impl<'s> RowPass<'s> {
    /// A pass into `state` (fresh groups' states), about `pilot`.
    pub(crate) fn new(state: &'s mut [f64], pilot: &'s [f64]) -> Self {
        RowPass { state, pilot, dropped: 0, hash: Fingerprint::default() }
    }

    /// The rows `codes` of `columns` (the first at index `first_row`) into the groups' states
    /// of `stride_of(k)` values each for k columns, each kept row (less the pilot) added to
    /// its group's by `update(state, row)`; rows dropped and refused as [`read_row`] says.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(crate) fn add_rows(
        &mut self, columns: &[Column<'_>], codes: impl ExactSizeIterator<Item = i32>, first_row: usize, n_groups: usize, stride_of: impl Fn(usize) -> usize,
        mut update: impl FnMut(&mut [f64], &mut [f64]), checkpoint: &mut Checkpoint<'_>,
    ) -> Result<()> {
        let k = columns.len();
        let update = &mut update;
        // A literal k for the common widths, so that the inlined loops over the variables unroll.
        if let [Column::Double(column)] = columns {
            self.run(1, |rows| SingleColumn(&column[rows]), codes, first_row, n_groups, &stride_of, update, checkpoint)
        } else if let [Column::Integer(column)] = columns {
            self.run(1, |rows| SingleColumn(&column[rows]), codes, first_row, n_groups, &stride_of, update, checkpoint)
        } else if let Some(plain) = PlainColumn::all(columns) {
            with_literal!(k, k in [2, 3, 4, 5, 6, 7, 8] => self.run(k, |rows| ColumnChunk::new(&plain, k, rows), codes, first_row, n_groups, &stride_of, update, checkpoint))
        } else {
            self.run(k, |rows| ColumnBlocks { columns, rows }, codes, first_row, n_groups, &stride_of, update, checkpoint)
        }
    }
}

impl PassPart {
    /// The states of both parts' rows (Chan et al.'s merge; both about the same pilot).
    fn merge(mut self, other: PassPart, k: usize) -> PassPart {
        let stride = state_stride(k);
        let mut delta = vec![0.0; k];
        for (mine, theirs) in self.state.chunks_exact_mut(stride).zip(other.state.chunks_exact(stride)) {
            let Some(weight) = chan_means(mine, theirs, &mut delta) else { continue };
            let mut index = 1 + k;
            for a in 0..k {
                for b in 0..=a {
                    mine[index] += theirs[index] + weight * delta[a] * delta[b];
                    index += 1;
                }
            }
        }
        self.dropped += other.dropped;
        self.hash = self.hash.wrapping_add(other.hash);
        self
    }

    /// The groups' states as [`CrossProducts`] (counts, means and co-moments apart).
    ///
    /// # Errors
    /// `TooLarge` when they do not fit in memory beside the states.
    fn finish(self, k: usize, n_groups: usize) -> Result<BlockPass> {
        let stride = state_stride(k);
        let mut n = with_capacity(&[n_groups], STATISTICS)?;
        let mut means = with_capacity(&[n_groups, k], STATISTICS)?;
        let mut comoments = with_capacity(&[n_groups, stride - 1 - k], STATISTICS)?;
        for group in self.state.chunks_exact(stride) {
            n.push(group[0]);
            means.extend_from_slice(&group[1..1 + k]);
            comoments.extend_from_slice(&group[1 + k..]);
        }
        Ok(BlockPass {
            stats: CrossProducts { variables: k, pilot: self.pilot, n, means, comoments, pooled: None },
            dropped: self.dropped,
            fingerprint: self.hash,
        })
    }
}

/// Chan et al.'s merge of two states [n, means (k), co-moments] about the same pilot, its
/// count and means: n = n₁ + n₂ and m = m₁ + (n₂/n) δ in `mine`, with δ = m₂ − m₁ in `delta`.
/// Returns the weight n₁n₂/n with which δδᵀ joins the co-moments, or `None` when a state is
/// empty (`mine` then holds the merged state whole).
pub(crate) fn chan_means(mine: &mut [f64], theirs: &[f64], delta: &mut [f64]) -> Option<f64> {
    let (n1, n2) = (mine[0], theirs[0]);
    if n2 == 0.0 {
        return None;
    }
    if n1 == 0.0 {
        mine.copy_from_slice(theirs);
        return None;
    }
    let n = n1 + n2;
    for (a, d) in delta.iter_mut().enumerate() {
        *d = theirs[1 + a] - mine[1 + a];
        mine[1 + a] += *d * (n2 / n);
    }
    mine[0] = n;
    Some(n1 * n2 / n)
}

/// What [`read_row`] makes of a row.
pub(crate) enum RowRead {
    /// Every value finite and the group given.
    Kept,
    /// A missing group or value: the row is dropped.
    Dropped,
    /// A row kept has a NaN or infinite value, first in this column.
    NotFinite(usize),
}

/// Row `row` of `columns` (group `code`) into `values`, each minus `pilot`, and the row's bits
/// for the fingerprint, from one read of each cell. A missing group or value anywhere in the
/// row drops it, as R's `na.omit` would before any value is used. The values are shifted as
/// they are read, in scalars: a vector load of values just stored one by one would stall on
/// store forwarding.
#[inline(always)]
pub(crate) fn read_row(columns: &[Column<'_>], row: usize, code: i32, pilot: &[f64], values: &mut [f64]) -> (RowRead, u64) {
    read_cells(columns.iter().map(|column| column.read(row)), code, pilot, values)
}

/// [`read_row`] of a row's cells, each its value's bits and meaning ([`read_value`]).
#[inline(always)]
fn read_cells(cells: impl Iterator<Item = (u64, Cell)>, code: i32, pilot: &[f64], values: &mut [f64]) -> (RowRead, u64) {
    let mut combined = Fingerprint::code_bits(code);
    let (mut missing, mut not_finite) = (code == NA_CODE, None);
    for (a, (bits, cell)) in cells.enumerate() {
        combined ^= Fingerprint::cell_bits(a, bits);
        match cell {
            Cell::Value(v) => values[a] = v - pilot[a],
            Cell::Missing => missing = true,
            Cell::NotFinite => not_finite = not_finite.or(Some(a)),
        }
    }
    let read = match (missing, not_finite) {
        (true, _) => RowRead::Dropped,
        (false, Some(a)) => RowRead::NotFinite(a),
        (false, None) => RowRead::Kept,
    };
    (read, combined)
}

/// The values of the first row [`read_row`] keeps (`None` when a row with a NaN or infinite
/// value comes first, or no row is kept).
pub(crate) fn first_complete_row(columns: &[Column<'_>], codes: impl Iterator<Item = i32>) -> Option<Vec<f64>> {
    let (origin, mut values) = (vec![0.0; columns.len()], vec![0.0; columns.len()]);
    for (row, code) in codes.enumerate() {
        match read_row(columns, row, code, &origin, &mut values).0 {
            RowRead::Kept => return Some(values),
            RowRead::Dropped => {}
            RowRead::NotFinite(_) => return None,
        }
    }
    None
}

/// How many rows ahead the pass prefetches group state (measured best at 16 of 8–200 for 2–8
/// variables and 1e3–1e5 groups).
const PREFETCH_DISTANCE: usize = 16;

/// Adds the row `x` (already shifted by the pilot; overwritten) to a group's state
/// [n, means (k), packed co-moments]: the multivariate Welford update of the module docs.
#[inline(always)]
fn welford_update(state: &mut [f64], x: &mut [f64]) {
    let (weight, comoment) = welford_means(state, x);
    add_packed_outer(weight, x, comoment);
}

/// The Welford update's count and means: a state [n, means (k), rest] takes the row `x`
/// (shifted by the pilot), which becomes d = x − m (m before the update), n ← n + 1 and
/// m ← m + d/n. Returns the weight (n − 1)/n of d dᵀ in the co-moments, and the state's rest.
#[inline(always)]
pub(crate) fn welford_means<'s>(state: &'s mut [f64], x: &mut [f64]) -> (f64, &'s mut [f64]) {
    let k = x.len();
    let (count, rest) = state.split_first_mut().expect("a group's state holds its count");
    let (mean, rest) = rest.split_at_mut(k);
    *count += 1.0;
    let inverse_n = 1.0 / *count;
    for (d, m) in x.iter_mut().zip(mean.iter_mut()) {
        *d -= *m;
        *m += *d * inverse_n;
    }
    (1.0 - inverse_n, rest)
}

/// `packed` (the lower triangle of a k × k matrix by rows) += `weight` · x xᵀ: each row
/// a slice, so that the loop over it vectorises (each entry's product and sum as before).
#[inline(always)]
pub(crate) fn add_packed_outer(weight: f64, x: &[f64], packed: &mut [f64]) {
    let mut start = 0;
    for (a, &xa) in x.iter().enumerate() {
        let wa = weight * xa;
        for (p, &xb) in packed[start..start + a + 1].iter_mut().zip(&x[..=a]) {
            *p += wa * xb;
        }
        start += a + 1;
    }
}

/// `f()` compiled for AVX2 (without FMA) when `wide` and the processor has it, else as it is.
///
/// The loops that [`add_packed_outer`] and the statistics' sums inline into `f` then
/// vectorise four doubles wide instead of two (the portable baseline is SSE2). Without FMA
/// every product is rounded before its sum, and the vectoriser never reorders a sum, so the
/// results are bit for bit those of the portable code: `wide` = false runs that code (the tests
/// compare both).
#[inline(always)]
pub(crate) fn vectorised<R>(wide: bool, f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if wide && std::arch::is_x86_feature_detected!("avx2") {
        /// `f()` with AVX2 enabled in its inlined body.
        #[target_feature(enable = "avx2")]
        fn run<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // SAFETY: the processor runs AVX2 (detected just above).
        return unsafe { run(f) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = wide;
    f()
}

/// Starts loading the cache line at `address`.
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

/// Doubles in a group's state for k variables: n, k means, k(k + 1)/2 packed co-moments.
fn state_stride(k: usize) -> usize {
    1 + k + k * (k + 1) / 2
}

/// Per-group statistics above this many bytes (1 GiB) are refused when they are also more than
/// [`STATISTICS_RATIO`] times the model's columns (see [`check_columns`]).
pub(crate) const STATISTICS_LIMIT: u128 = 1 << 30;

/// See [`STATISTICS_LIMIT`].
pub(crate) const STATISTICS_RATIO: u128 = 10;

/// Bytes of `rows` rows of `columns` model columns as doubles, 8 rows × columns.
pub(crate) fn column_bytes(rows: usize, columns: usize) -> u128 {
    8 * rows as u128 * columns as u128
}

/// Bytes of the per-group statistics of `stride` doubles in `groups` groups (for k columns
/// in [`CrossProducts::from_columns`]'s layout, stride = 1 + k + k(k + 1)/2).
fn statistics_bytes(groups: usize, stride: usize) -> u128 {
    8 * groups as u128 * stride as u128
}

/// Every model column has as many rows as the grouping factor, and the statistics of the
/// pass are not out of proportion to the columns: they grow as groups × k²/2 for k columns,
/// so a factor covariate with many levels (k large) and many groups makes statistics far
/// larger than the data. Refused, before anything is allocated, when they would take more
/// than [`STATISTICS_LIMIT`] bytes and more than [`STATISTICS_RATIO`] times the columns'
/// 8 · rows · k bytes.
fn check_columns(columns: &[Column<'_>], rows: usize, groups: usize) -> Result<()> {
    check_columns_sized(columns, rows, groups, state_stride(columns.len()))
}

/// [`check_columns`] for statistics of `stride` doubles per group (another layout than
/// [`CrossProducts::from_columns`]'s, [`crate::data::pooled`]).
pub(crate) fn check_columns_sized(columns: &[Column<'_>], rows: usize, groups: usize, stride: usize) -> Result<()> {
    columns.iter().try_for_each(|column| check_length("a model column", column.len(), "the grouping factor", rows))?;
    let bytes = statistics_bytes(groups, stride);
    if bytes > STATISTICS_LIMIT && bytes > STATISTICS_RATIO * column_bytes(rows, columns.len()) {
        return Err(HnmError::StatisticsTooLarge { columns: columns.len(), groups, rows, bytes });
    }
    Ok(())
}

pub(crate) fn check_length(first: &'static str, first_len: usize, second: &'static str, second_len: usize) -> Result<()> {
    if first_len == second_len {
        Ok(())
    } else {
        Err(HnmError::LengthMismatch { first, first_len, second, second_len })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numerics::interrupt::Never;
    use crate::NA_REAL;

    fn pass(columns: &[Column<'_>], codes: &[i32], groups: usize) -> BlockPass {
        CrossProducts::from_columns(columns, codes.iter().copied(), groups, &mut Checkpoint::new(&Never)).unwrap()
    }

    #[test]
    fn comoments_equal_a_two_pass_computation() {
        let x: Vec<f64> = (0..50).map(|i| ((i * 37) % 11) as f64 * 0.7 - 2.0).collect();
        let y: Vec<f64> = (0..50).map(|i| ((i * 13) % 7) as f64 + 0.1 * i as f64).collect();
        let codes: Vec<i32> = (0..50).map(|i| i % 3 + 1).collect();
        let p = pass(&[Column::Double(&x), Column::Double(&y)], &codes, 3);
        for j in 0..3 {
            let rows: Vec<usize> = (0..50).filter(|&i| codes[i] == j as i32 + 1).collect();
            let n = rows.len() as f64;
            let mx = rows.iter().map(|&i| x[i]).sum::<f64>() / n;
            let my = rows.iter().map(|&i| y[i]).sum::<f64>() / n;
            let wxy: f64 = rows.iter().map(|&i| (x[i] - mx) * (y[i] - my)).sum();
            let wyy: f64 = rows.iter().map(|&i| (y[i] - my).powi(2)).sum();
            let means = p.stats.group_means(j);
            assert!((means[0] - mx).abs() < 1e-13 && (means[1] - my).abs() < 1e-13);
            assert!((p.stats.comoment(j, 1, 0) - wxy).abs() < 1e-12 * (1.0 + wxy.abs()));
            assert!((p.stats.comoment(j, 0, 1) - wxy).abs() < 1e-12 * (1.0 + wxy.abs()));
            assert!((p.stats.comoment(j, 1, 1) - wyy).abs() < 1e-12 * wyy);
        }
    }

    #[test]
    fn more_than_eight_columns_read_by_blocks_as_row_by_row() {
        // 11 columns over 1,000 rows (blocks of 64, the last one partial), NA in column 0 and
        // in the codes: per pair the statistics of the pair with column 0 alone (a literal
        // width, read row by row), the fingerprint of read_row's reading row by row, and the
        // first column not finite of a row named, after a missing value in an earlier row.
        let rows: usize = 1000;
        let values: Vec<Vec<f64>> = (0..11usize)
            .map(|c| (0..rows).map(|i| if c == 0 && i % 97 == 3 { NA_REAL } else { (((i * (c + 5)) % 19) as f64 - 9.0) * 0.5 + 100.0 * c as f64 }).collect())
            .collect();
        let codes: Vec<i32> = (0..rows).map(|i| if i % 101 == 7 { NA_CODE } else { (i % 9) as i32 + 1 }).collect();
        let columns: Vec<Column<'_>> = values.iter().map(|v| Column::Double(v)).collect();
        let all = pass(&columns, &codes, 9);
        for a in 1..11 {
            for b in 1..a {
                let pair = pass(&[columns[0], columns[b], columns[a]], &codes, 9);
                assert_eq!(pair.dropped, all.dropped);
                for j in 0..9 {
                    assert_eq!(pair.stats.comoment(j, 2, 1).to_bits(), all.stats.comoment(j, a, b).to_bits());
                    assert_eq!(pair.stats.mean(j)[2].to_bits(), all.stats.mean(j)[a].to_bits());
                }
            }
        }
        let pilot = first_complete_row(&columns, codes.iter().copied()).unwrap();
        let (mut hash, mut row_values) = (Fingerprint::default(), vec![0.0; 11]);
        for (row, &code) in codes.iter().enumerate() {
            hash.add(row as u64 + 1, read_row(&columns, row, code, &pilot, &mut row_values).1);
        }
        assert_eq!(all.fingerprint, hash.value());
        let mut bad = values.clone();
        (bad[2][69], bad[4][69], bad[9][70], bad[10][70]) = (NA_REAL, f64::INFINITY, f64::INFINITY, f64::NAN);
        let columns: Vec<Column<'_>> = bad.iter().map(|v| Column::Double(v)).collect();
        let err = CrossProducts::from_columns(&columns, codes.iter().copied(), 9, &mut Checkpoint::new(&Never)).unwrap_err();
        assert_eq!(err, HnmError::ColumnNotFinite { column: 9, row: 70 });
    }

    #[test]
    fn large_offsets_keep_their_digits() {
        // Deviations 0, 0.25, 0.5 about 1e12 (exact in binary): W = 0.125 exactly.
        let y = [1e12, 1e12 + 0.25, 1e12 + 0.5];
        let p = pass(&[Column::Double(&y)], &[1, 1, 1], 1);
        assert_eq!(p.stats.comoment(0, 0, 0), 0.125);
        assert_eq!(p.stats.group_means(0)[0], 1e12 + 0.25);
    }

    #[test]
    fn bad_values_name_their_column_and_row() {
        let y = [1.0, 2.0, 3.0];
        let x = [1.0, f64::INFINITY, 0.0];
        let err = CrossProducts::from_columns(&[Column::Double(&y), Column::Double(&x)], [1, 1, 1].into_iter(), 1, &mut Checkpoint::new(&Never)).unwrap_err();
        assert_eq!(err, HnmError::ColumnNotFinite { column: 1, row: 1 });
        // A row with a missing value or group is dropped whatever else it holds, before or after.
        let x = [f64::INFINITY, NA_REAL, f64::NAN];
        let z = [NA_REAL, f64::NEG_INFINITY, 2.0];
        let kept =
            CrossProducts::from_columns(&[Column::Double(&x), Column::Double(&z)], [1, 1, NA_CODE].into_iter(), 1, &mut Checkpoint::new(&Never)).unwrap();
        assert_eq!((kept.dropped, kept.stats.n()), (3, &[0.0][..]));
        let err = CrossProducts::from_columns(&[Column::Double(&y)], [1, 3, 1].into_iter(), 2, &mut Checkpoint::new(&Never)).unwrap_err();
        assert_eq!(err, HnmError::GroupCodeOutOfRange { argument: "g", index: 1, code: 3, n_groups: 2 });
        // The same for a response alone (the one-way model).
        let err = CrossProducts::from_columns(&[Column::Double(&[1.0, f64::NAN, 3.0])], [1, 1, 1].into_iter(), 1, &mut Checkpoint::new(&Never)).unwrap_err();
        assert_eq!(err, HnmError::ColumnNotFinite { column: 0, row: 1 });
        let alone = [f64::INFINITY, NA_REAL, f64::NAN, 2.0, 7.0, 4.0];
        let codes = [NA_CODE, 1, NA_CODE, 1, NA_CODE, 1];
        let kept = CrossProducts::from_columns(&[Column::Double(&alone)], codes.into_iter(), 1, &mut Checkpoint::new(&Never)).unwrap();
        assert_eq!((kept.dropped, kept.stats.n(), kept.stats.group_means(0)), (4, &[2.0][..], vec![3.0]));
        // A column shorter than the codes, on either path.
        for threads in [1, 2] {
            let err = CrossProducts::from_columns_on_threads(&[Column::Double(&[])], GroupColumn::Codes(&[1]), 1, threads, &Never).unwrap_err();
            assert!(matches!(err, HnmError::LengthMismatch { .. }), "{err:?}");
        }
    }

    #[test]
    fn the_pass_on_two_threads_equals_the_pass_on_one() {
        // 3e5 rows over 7 groups with NA rows, offsets of 1e9 and a group only in the second half.
        let rows = 300_000;
        let y: Vec<f64> = (0..rows).map(|i| if i % 1001 == 0 { NA_REAL } else { 1e9 + (i % 13) as f64 * 0.5 }).collect();
        let x: Vec<i32> = (0..rows).map(|i| (i % 5) as i32).collect();
        let codes: Vec<i32> = (0..rows)
            .map(|i| {
                if i % 777 == 0 {
                    NA_CODE
                } else if i < rows / 2 {
                    (i % 6) as i32 + 1
                } else {
                    (i % 7) as i32 + 1
                }
            })
            .collect();
        let columns = [Column::Double(&y), Column::Integer(&x)];
        let one = pass(&columns, &codes, 7);
        let two = CrossProducts::from_columns_on_threads(&columns, GroupColumn::Codes(&codes), 7, 2, &Never).unwrap();
        assert_eq!((two.dropped, two.fingerprint), (one.dropped, one.fingerprint));
        assert_eq!(two.stats.n(), one.stats.n());
        for j in 0..7 {
            // Means about the pilot (1e9 + 0): equal to rounding, so the data's digits are kept.
            for (a, b) in two.stats.mean(j).iter().zip(one.stats.mean(j)) {
                assert!((a - b).abs() <= 1e-13 * b.abs().max(1.0), "{j}: {a} {b}");
            }
            for (a, b) in [(0, 0), (1, 0), (1, 1)] {
                let (s, t) = (two.stats.comoment(j, a, b), one.stats.comoment(j, a, b));
                assert!((s - t).abs() <= 1e-10 * t.abs().max(1.0), "{j}: {s} {t}");
            }
        }
        // The first error of the rows, whichever thread meets it.
        let mut bad = y.clone();
        bad[rows - 10] = f64::INFINITY;
        bad[rows / 2 + 5] = f64::NAN;
        let error = CrossProducts::from_columns_on_threads(&[Column::Double(&bad), Column::Integer(&x)], GroupColumn::Codes(&codes), 7, 2, &Never).unwrap_err();
        assert_eq!(error, HnmError::ColumnNotFinite { column: 0, row: rows / 2 + 5 });
    }

    #[test]
    fn values_less_an_offset_are_the_codes_they_stand_for() {
        // Group values 7..=10 (9 unused) as integers and as doubles, read less the offset 6,
        // against the same groups given as codes 1..=4; NA and NaN are missing groups. On two
        // threads (3e5 rows), so every slice of the rows is coded as the whole is.
        let rows = 300_000;
        let codes: Vec<i32> = (0..rows).map(|i| if i % 997 == 0 { NA_CODE } else { [1, 2, 4][i % 3] }).collect();
        let integers: Vec<i32> = codes.iter().map(|&c| if c == NA_CODE { NA_CODE } else { c + 6 }).collect();
        let doubles: Vec<f64> = integers.iter().map(|&v| if v == NA_CODE { f64::NAN } else { f64::from(v) }).collect();
        let y: Vec<f64> = (0..rows).map(|i| (i % 13) as f64 * 0.25).collect();
        let columns = [Column::Double(&y)];
        let by_codes = CrossProducts::from_columns_on_threads(&columns, GroupColumn::Codes(&codes), 4, 2, &Never).unwrap();
        for group in [GroupColumn::Integers { values: &integers, offset: 6 }, GroupColumn::Doubles { values: &doubles, offset: 6 }] {
            let pass = CrossProducts::from_columns_on_threads(&columns, group, 4, 2, &Never).unwrap();
            assert_eq!((pass.dropped, pass.fingerprint, &pass.stats), (by_codes.dropped, by_codes.fingerprint, &by_codes.stats));
            assert_eq!(fingerprint(&columns, group, &mut Checkpoint::new(&Never)).unwrap(), by_codes.fingerprint);
        }
        // A value beyond the range, or not whole, is an error, never another group; changed in
        // place after a fit, it changes the fingerprint.
        for bad in [3e9, 8.5] {
            let mut changed = doubles.clone();
            changed[5] = bad;
            let group = GroupColumn::Doubles { values: &changed, offset: 6 };
            let error = CrossProducts::from_columns_on_threads(&columns, group, 4, 2, &Never).unwrap_err();
            assert!(matches!(error, HnmError::GroupCodeOutOfRange { index: 5, .. }), "{error:?}");
            assert_ne!(fingerprint(&columns, group, &mut Checkpoint::new(&Never)).unwrap(), by_codes.fingerprint);
        }
    }

    #[test]
    fn keyed_values_are_coded_by_their_table_as_given_codes() {
        // 3e5 rows of five far-apart integers (and NA) keyed by their table, renumbered into
        // the values' sorted order, against the same groups given as codes by that order
        // directly; on two threads, so every slice of the rows is coded as the whole is.
        let rows = 300_000;
        let values = [1_000_000_007, -5, 42, 7_000_000, 0];
        let sorted = [-5, 0, 42, 7_000_000, 1_000_000_007];
        let code_of = |v: i32| sorted.iter().position(|&s| s == v).map_or(NA_CODE, |p| p as i32 + 1);
        let keys: Vec<i32> = (0..rows).map(|i| if i % 991 == 0 { NA_CODE } else { values[(i * 7) % 5] }).collect();
        let codes: Vec<i32> = keys.iter().map(|&v| code_of(v)).collect();
        let (mut table, first_rows) = KeyCodes::new(keys.iter().map(|&v| crate::integer_key(v)), crate::INTEGER_MISSING, &mut Checkpoint::new(&Never)).unwrap();
        let rank: Vec<i32> = first_rows.iter().map(|&row| code_of(keys[row])).collect();
        table.reorder(&rank).unwrap();
        let y: Vec<f64> = (0..rows).map(|i| (i % 13) as f64 * 0.25 + if i % 1001 == 0 { NA_REAL } else { 0.0 }).collect();
        let columns = [Column::Double(&y)];
        let by_codes = CrossProducts::from_columns_on_threads(&columns, GroupColumn::Codes(&codes), 5, 2, &Never).unwrap();
        let keyed = GroupColumn::Keyed { keys: GroupKeys::Integers(&keys), table: &table };
        let pass = CrossProducts::from_columns_on_threads(&columns, keyed, 5, 2, &Never).unwrap();
        assert_eq!((pass.dropped, pass.fingerprint, &pass.stats), (by_codes.dropped, by_codes.fingerprint, &by_codes.stats));
        assert_eq!(fingerprint(&columns, keyed, &mut Checkpoint::new(&Never)).unwrap(), by_codes.fingerprint);
        assert_eq!(group_column_codes(keyed).unwrap(), codes);
        // A value not in the table (changed in place after the fit) is an error, never a group.
        let mut changed = keys.clone();
        changed[3] = 43;
        let keyed = GroupColumn::Keyed { keys: GroupKeys::Integers(&changed), table: &table };
        let error = CrossProducts::from_columns_on_threads(&columns, keyed, 5, 2, &Never).unwrap_err();
        assert_eq!(error, HnmError::GroupCodeOutOfRange { argument: "g", index: 3, code: 0, n_groups: 5 });
        assert_ne!(fingerprint(&columns, keyed, &mut Checkpoint::new(&Never)).unwrap(), by_codes.fingerprint);
    }

    #[test]
    fn integers_beyond_the_range_are_out_of_range_never_a_missing_group() {
        // Group values −4..=−1 read less the offset −5 (codes 1..=4). A value changed in place
        // to 2³¹ − 5 lies 2³¹ above the offset: wrapped into an i32 its code would be i32::MIN,
        // R's NA, a missing group whose row is silently dropped. Integers and doubles alike
        // must give a code out of range, an error of the pass.
        let y = [1.0, 2.0, 3.0, 4.0, 5.0];
        let mut integers = [-4, -3, -2, -1, -4];
        integers[2] = i32::MAX - 4;
        let doubles = integers.map(f64::from);
        for group in [GroupColumn::Integers { values: &integers, offset: -5 }, GroupColumn::Doubles { values: &doubles, offset: -5 }] {
            let error = CrossProducts::from_columns_on_threads(&[Column::Double(&y)], group, 4, 1, &Never).unwrap_err();
            assert_eq!(error, HnmError::GroupCodeOutOfRange { argument: "g", index: 2, code: i64::from(i32::MAX), n_groups: 4 }, "{group:?}");
            assert_eq!(group_column_codes(group).unwrap(), vec![1, 2, i32::MAX, 4, 1]);
        }
    }

    #[test]
    fn statistics_out_of_proportion_to_the_data_are_refused_before_allocating() {
        // The issue's abort: 300 variables in 4,000 groups need 4000 (1 + 300 + 300·301/2) · 8 =
        // 1,454,432,000 bytes (the size of the allocation that failed), from 10 rows.
        let zeros = vec![0.0; 44_755];
        let columns = |rows: usize| vec![Column::Double(&zeros[..rows]); 300];
        let error = check_columns(&columns(10), 10, 4000).unwrap_err();
        assert_eq!(error, HnmError::StatisticsTooLarge { columns: 300, groups: 4000, rows: 10, bytes: 1_454_432_000 });
        assert_eq!(error.kind(), "too_large");
        assert!(error.to_string().contains("would take 1454432000 bytes (1.5 GB)"), "{error}");
        // Per group 8 (1 + 300 + 45150) = 363,608 bytes: 2,953 groups stay within 1 GiB
        // (1,073,734,424 bytes), 2,954 do not (1,074,098,032).
        assert!(check_columns(&columns(10), 10, 2953).is_ok());
        assert!(check_columns(&columns(10), 10, 2954).is_err());
        // Nor are statistics at most 10 times the columns' 8 · rows · 300 bytes: 44,755 rows
        // (10 times: 1,074,120,000 bytes) allow 2,954 groups, 44,754 rows do not.
        assert!(check_columns(&columns(44_755), 44_755, 2954).is_ok());
        assert!(check_columns(&columns(44_754), 44_754, 2954).is_err());
        // The passes check before they allocate.
        let error = CrossProducts::from_columns(&columns(10), [1; 10].into_iter(), 4000, &mut Checkpoint::new(&Never)).unwrap_err();
        assert!(matches!(error, HnmError::StatisticsTooLarge { .. }));
        let codes = vec![1; 44_754];
        let error = CrossProducts::from_columns_on_threads(&columns(44_754), GroupColumn::Codes(&codes), 2954, 2, &Never).unwrap_err();
        assert!(matches!(error, HnmError::StatisticsTooLarge { .. }));
    }

    #[test]
    fn nonempty_drops_unused_levels() {
        let y = [1.0, 2.0, 4.0];
        let p = pass(&[Column::Double(&y)], &[3, 3, 1], 3);
        let (kept, index) = p.stats.nonempty().unwrap();
        assert_eq!(index, vec![0, 2]);
        assert_eq!(kept.n(), &[1.0, 2.0]);
        assert_eq!(kept.group_means(1), vec![1.5]);
    }
}
