//! The grouping variable's codes: what `factor()` gives a vector, without converting every
//! value to a string. Integers of a small range index their values directly
//! ([`dense_integer_range`]); other values are numbered by hashing a 64-bit key (integer or
//! double values, or the addresses of interned strings: R's CHARSXP cache gives equal strings
//! one address) in an open-addressing table with linear probing ([`group_codes`]).

use std::sync::atomic::{AtomicBool, Ordering};

use crate::data::cells::NA_CODE;
use crate::error::{HnmError, Result};
use crate::numerics::interrupt::Checkpoint;
use crate::numerics::memory::{filled, push, with_capacity};

const INITIAL_CAPACITY: usize = 1024;

/// The 0-based index of R's 1-based code `code`: `None` for a code below 1 (R's `NA`, whose
/// integer is `i32::MIN`, among them).
///
/// # Example
/// ```
/// use hnm_core::code_index;
/// assert_eq!(code_index(3), Some(2));
/// assert_eq!(code_index(0), None);
/// assert_eq!(code_index(i32::MIN), None);
/// ```
pub fn code_index(code: i32) -> Option<usize> {
    usize::try_from(code).ok()?.checked_sub(1)
}

/// For codes `first` in 1..=`levels` (one per row) and codes `others` of the same rows, each
/// later one's value at every level of `first`, when each is a function of `first` (a nested
/// design: the class determines the school): `values[k][l − 1]` is `others[k]`'s code in the
/// rows of level l, 0 for a level with no rows. The cells of the combined codes are then
/// `first`'s levels with rows, in its order, with no sort and no code per row combined: one
/// pass over the rows instead of a scatter, a gather and a comparison per code. `None` when a
/// level of `first` meets two values of some other code, when a code of `first` is outside
/// 1..=`levels` (R's `NA` among them), or when an other code is below 1 (`NA`): the general
/// combination then applies.
///
/// # Errors
/// `TooLarge` when `others.len() × levels` values do not fit in memory; `Interrupted` when
/// `checkpoint` reports a user interrupt (asked every [`ROWS_PER_CHECK`] rows).
///
/// # Example
/// ```
/// use hnm_core::{nested_values, Checkpoint, Never};
/// let checkpoint = &mut Checkpoint::new(&Never);
/// // Classes 1..4 in schools: class 3 has no rows.
/// assert_eq!(nested_values(&[1, 2, 4, 1], 4, &[&[5, 6, 6, 5]], checkpoint).unwrap(), Some(vec![vec![5, 6, 0, 6]]));
/// assert_eq!(nested_values(&[1, 2, 1], 2, &[&[5, 6, 7]], checkpoint).unwrap(), None);
/// ```
pub fn nested_values(first: &[i32], levels: usize, others: &[&[i32]], checkpoint: &mut Checkpoint<'_>) -> Result<Option<Vec<Vec<i32>>>> {
    if others.is_empty() {
        return Ok(Some(Vec::new()));
    }
    if others.iter().any(|other| other.len() != first.len()) {
        return Ok(None);
    }
    let mut values = Vec::with_capacity(others.len());
    for _ in others {
        values.push(filled(&[levels], 0, "the codes of a nested grouping factor")?);
    }
    // One pass over the rows for all the other codes, so that `first` (at 1e7 rows, 40 MB) is
    // read once, not once per other code; by chunks, each a question to the checkpoint.
    for (chunk, rows) in first.chunks(ROWS_PER_CHECK).enumerate() {
        checkpoint.check_work(rows.len())?;
        let start = chunk * ROWS_PER_CHECK;
        for (row, &level) in (start..).zip(rows) {
            // Codes below 1 (NA) or beyond `levels` leave the general path to handle them.
            let Some(l) = code_index(level).filter(|&l| l < levels) else {
                return Ok(None);
            };
            for (at, other) in values.iter_mut().zip(others) {
                let (slot, code) = (&mut at[l], other[row]);
                if code < 1 || (*slot != 0 && *slot != code) {
                    return Ok(None);
                }
                *slot = code;
            }
        }
    }
    Ok(Some(values))
}

/// Rows (or cells) a pass over codes handles between two questions to its checkpoint
/// ([`Checkpoint::check_work`]): a few µs of work, so that the question costs nothing per row.
pub const ROWS_PER_CHECK: usize = 1 << 12;

/// The distinct pairs of codes (`first[i]`, `second[i]`), `first` in 1..=`levels.0` and
/// `second` in 1..=`levels.1` (or of `first` alone, `second` empty), numbered 1..=n in
/// lexical order: each row's pair's number and n. Two stable counting sorts of the rows, by
/// the second code then by the first, put them in lexical order in O(rows + levels), with no
/// combined key (whose range, the product of the levels, may not fit) and no comparison sort:
/// what R's `order()` and its comparisons of neighbours gave for crossed factors, without a
/// vector per step. `None` when a code lies outside its range (R's `NA` among them) or the
/// lengths differ, which the caller then handles.
///
/// # Errors
/// `TooLarge` when the rows' order and codes do not fit in memory; `Interrupted` when
/// `checkpoint` reports a user interrupt (asked every [`ROWS_PER_CHECK`] rows of each pass).
///
/// # Example
/// ```
/// use hnm_core::{dense_pair_codes, Checkpoint, Never};
/// let checkpoint = &mut Checkpoint::new(&Never);
/// // Pairs (2,1), (1,3), (2,1), (1,1): in lexical order (1,1), (1,3), (2,1).
/// assert_eq!(dense_pair_codes(&[2, 1, 2, 1], &[1, 3, 1, 1], (2, 3), checkpoint).unwrap(), Some((vec![3, 2, 3, 1], 3)));
/// assert_eq!(dense_pair_codes(&[3, 1, 3], &[], (3, 0), checkpoint).unwrap(), Some((vec![2, 1, 2], 2)));
/// assert_eq!(dense_pair_codes(&[1, 0], &[1, 1], (1, 1), checkpoint).unwrap(), None);
/// ```
pub fn dense_pair_codes(first: &[i32], second: &[i32], levels: (usize, usize), checkpoint: &mut Checkpoint<'_>) -> Result<Option<(Vec<i32>, usize)>> {
    const WHAT: &str = "the cells of crossed grouping factors";
    let rows = first.len();
    let paired = !second.is_empty();
    if (paired && second.len() != rows) || rows > i32::MAX as usize {
        return Ok(None);
    }
    // 0-based codes, None outside 1..=levels.
    let index = |code: i32, levels: usize| code_index(code).filter(|&c| c < levels);
    let mut valid = true;
    for_each_checked(first, checkpoint, |&c| valid &= index(c, levels.0).is_some())?;
    if paired {
        for_each_checked(second, checkpoint, |&c| valid &= index(c, levels.1).is_some())?;
    }
    if !valid {
        return Ok(None);
    }
    // A stable counting sort of `order` (rows) by `codes`' values (checked above).
    let mut sort = |order: &[u32], codes: &[i32], levels: usize| -> Result<Vec<u32>> {
        let mut starts = filled(&[levels + 1], 0usize, WHAT)?;
        for_each_checked(codes, checkpoint, |&code| starts[code as usize] += 1)?;
        for l in 1..=levels {
            starts[l] += starts[l - 1];
        }
        let mut sorted = filled(&[order.len()], 0u32, WHAT)?;
        for_each_checked(order, checkpoint, |&row| {
            let at = &mut starts[codes[row as usize] as usize - 1];
            sorted[*at] = row;
            *at += 1;
        })?;
        Ok(sorted)
    };
    let mut order = with_capacity(&[rows], WHAT)?;
    order.extend(0..rows as u32);
    if paired {
        order = sort(&order, second, levels.1)?;
    }
    let order = sort(&order, first, levels.0)?;
    let mut codes = filled(&[rows], 0i32, WHAT)?;
    let (mut n, mut previous) = (0i32, None);
    for_each_checked(&order, checkpoint, |&row| {
        let row = row as usize;
        let pair = (first[row], if paired { second[row] } else { 0 });
        if previous != Some(pair) {
            n += 1;
            previous = Some(pair);
        }
        codes[row] = n;
    })?;
    Ok(Some((codes, n as usize)))
}

/// The labels of an interaction's cells, `paste(labels[[1]][levels[[1]]], ..., sep = sep)` in
/// R's terms: `parts` gives for each part of the interaction its level labels and each cell's
/// 1-based level of it (one per cell, the same number for every part). The labels are written
/// one after another into one string, `ends[c]` the end of cell c's (so that the caller makes
/// each label from a slice, with no string per cell here). `None` when a level lies outside
/// its labels (R's `NA` among them) or the parts have different numbers of cells.
///
/// # Errors
/// `TooLarge` when the labels do not fit in memory; `Interrupted` when `checkpoint` reports a
/// user interrupt (asked every [`ROWS_PER_CHECK`] cells of each of the two passes).
///
/// # Example
/// ```
/// use hnm_core::{cell_labels, Checkpoint, Never};
/// let (schools, classes) = (["a", "b"], ["1", "2", "3"]);
/// let parts: [(&[&str], &[i32]); 2] = [(&schools, &[1, 1, 2]), (&classes, &[1, 3, 2])];
/// let (text, ends) = cell_labels(&parts, ":", &mut Checkpoint::new(&Never)).unwrap().unwrap();
/// assert_eq!((text.as_str(), ends), ("a:1a:3b:2", vec![3, 6, 9]));
/// let outside: [(&[&str], &[i32]); 1] = [(&schools, &[3])];
/// assert_eq!(cell_labels(&outside, ":", &mut Checkpoint::new(&Never)).unwrap(), None);
/// ```
pub fn cell_labels(parts: &[(&[&str], &[i32])], sep: &str, checkpoint: &mut Checkpoint<'_>) -> Result<Option<(String, Vec<usize>)>> {
    const WHAT: &str = "the labels of an interaction's cells";
    let cells = parts.first().map_or(0, |part| part.1.len());
    if parts.iter().any(|part| part.1.len() != cells) {
        return Ok(None);
    }
    /// The label of `cell`'s level of a part (its labels and the cells' 1-based levels).
    fn label<'a>((labels, levels): &(&[&'a str], &[i32]), cell: usize) -> Option<&'a str> {
        code_index(levels[cell]).and_then(|l| labels.get(l).copied())
    }
    // The length of all the labels, with every level checked.
    let mut length = Some(sep.len().saturating_mul(parts.len().saturating_sub(1)).saturating_mul(cells));
    for part in parts {
        for_each_checked(part.1, checkpoint, |&level| {
            let width = code_index(level).and_then(|l| part.0.get(l)).map(|text| text.len());
            length = length.zip(width).and_then(|(total, width)| total.checked_add(width));
        })?;
    }
    let Some(length) = length else {
        return Ok(None);
    };
    let mut text = String::new();
    text.try_reserve_exact(length).map_err(|_| HnmError::TooLarge { what: WHAT, bytes: length as u128 })?;
    let mut ends = with_capacity(&[cells], WHAT)?;
    for start in (0..cells).step_by(ROWS_PER_CHECK) {
        let chunk = start..cells.min(start + ROWS_PER_CHECK);
        checkpoint.check_work(chunk.len())?;
        for cell in chunk {
            for (j, part) in parts.iter().enumerate() {
                if j > 0 {
                    text.push_str(sep);
                }
                // Checked above: every level indexes a label.
                text.push_str(label(part, cell).unwrap_or_default());
            }
            ends.push(text.len());
        }
    }
    Ok(Some((text, ends)))
}

/// `out[i] = map[codes[i] − 1]`, R's `map[codes]` for 1-based `codes` (the rows' codes of an
/// interaction through its cells' order): `NA_CODE` where a code is `NA` or its entry of
/// `map` is. On two threads when `threads` ≥ 2 and there are [`crate::PARALLEL_ROWS`] rows
/// or more, the calling thread taking the first half and alone asking `interrupt` (the
/// other stops at a flag it sets), since the cost is writing a
/// fresh vector (its page faults) and reading `codes`, which two cores share. Returns whether a code lay beyond `map` (`out`
/// or below 1 other than `NA` (`out` is then incomplete: R's `[` applies its own rules).
///
/// # Errors
/// `Interrupted` when `checkpoint` reports a user interrupt; `Optimizer` when the second thread cannot
/// start or panics. `InvalidArgument` when `out` and `codes` differ in length.
///
/// # Example
/// ```
/// use hnm_core::{map_codes, Checkpoint, Never, NA_CODE};
/// let (mut out, checkpoint) = ([0; 4], &mut Checkpoint::new(&Never));
/// assert!(!map_codes(&[3, 1, NA_CODE], &[2, NA_CODE, 1, 3], &mut out, 2, checkpoint).unwrap());
/// assert_eq!(out, [1, NA_CODE, 3, NA_CODE]);
/// assert!(map_codes(&[3], &[2], &mut [0], 1, checkpoint).unwrap());
/// assert!(map_codes(&[3], &[0], &mut [0], 1, checkpoint).unwrap());
/// ```
pub fn map_codes(map: &[i32], codes: &[i32], out: &mut [i32], threads: usize, checkpoint: &mut Checkpoint<'_>) -> Result<bool> {
    if out.len() != codes.len() {
        return Err(HnmError::InvalidArgument { argument: "out", reason: "must have one value per code" });
    }
    let serial = |codes: &[i32], out: &mut [i32], checkpoint: &mut Checkpoint<'_>| -> Result<bool> {
        let mut beyond = false;
        for (codes, out) in codes.chunks(ROWS_PER_CHECK).zip(out.chunks_mut(ROWS_PER_CHECK)) {
            checkpoint.check_work(codes.len())?;
            for (&code, out) in codes.iter().zip(out) {
                *out = match code_index(code).and_then(|c| map.get(c)) {
                    Some(&value) => value,
                    None => {
                        beyond |= code != NA_CODE;
                        NA_CODE
                    }
                };
            }
        }
        Ok(beyond)
    };
    if threads < 2 || codes.len() < crate::data::blocks::PARALLEL_ROWS {
        return serial(codes, out, checkpoint);
    }
    let half = codes.len() / 2;
    let (first_codes, second_codes) = codes.split_at(half);
    let (first_out, second_out) = out.split_at_mut(half);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let (stop, serial) = (&stop, &serial);
        let worker = std::thread::Builder::new()
            .spawn_scoped(scope, move || serial(second_codes, second_out, &mut Checkpoint::new(stop)))
            .map_err(|_| HnmError::Optimizer("could not start a thread".into()))?;
        let first = serial(first_codes, first_out, checkpoint);
        // Waiting for the other half, still asking: a stop is passed on by the flag.
        let mut stopped = first.is_err();
        while !worker.is_finished() {
            if !stopped && checkpoint.check_timed().is_err() {
                stopped = true;
            }
            stop.store(stopped, Ordering::Relaxed);
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        let second = worker.join().unwrap_or_else(|_| Err(HnmError::Optimizer("a worker thread panicked".into())));
        if stopped && first.is_ok() {
            return Err(HnmError::Interrupted);
        }
        Ok(first? | second?)
    })
}

/// `visit` applied to each of `items` in order, asking `checkpoint` every [`ROWS_PER_CHECK`]
/// items.
///
/// # Errors
/// `Interrupted` when `checkpoint` reports a user interrupt (the later items unvisited).
fn for_each_checked<T>(items: &[T], checkpoint: &mut Checkpoint<'_>, mut visit: impl FnMut(&T)) -> Result<()> {
    for chunk in items.chunks(ROWS_PER_CHECK) {
        checkpoint.check_work(chunk.len())?;
        chunk.iter().for_each(&mut visit);
    }
    Ok(())
}

/// For integer group values (R's `NA` ignored) spanning a range small enough to index
/// directly — at most `len/4 + 1024` values, and at most `i32::MAX` so every code fits an
/// `i32` — the smallest value and the range's length. Codes v − low + 1 then index the values
/// as a factor's codes index its levels, with no hashing.
///
/// # Example
/// ```
/// use hnm_core::{dense_integer_range, NA_CODE};
/// assert_eq!(dense_integer_range(&[7, -2, NA_CODE, 3]), Some((-2, 10)));
/// assert_eq!(dense_integer_range(&[0, 1_000_000]), None);
/// assert_eq!(dense_integer_range(&[NA_CODE]), None);
/// ```
pub fn dense_integer_range(values: &[i32]) -> Option<(i32, usize)> {
    // Eight independent lanes of branch-free updates, which the compiler turns into vector
    // compares and selects (a filter on NA would keep the loop scalar): NA (i32::MIN) never
    // raises `high`, and counts as i32::MAX for `low`.
    let (mut lows, mut highs) = ([i32::MAX; 8], [i32::MIN; 8]);
    let chunks = values.chunks_exact(8);
    let rest = chunks.remainder();
    for chunk in chunks {
        for ((low, high), &v) in lows.iter_mut().zip(highs.iter_mut()).zip(chunk) {
            *low = (*low).min(if v == NA_CODE { i32::MAX } else { v });
            *high = (*high).max(v);
        }
    }
    let (mut low, mut high) = (lows.into_iter().min().unwrap_or(i32::MAX), highs.into_iter().max().unwrap_or(i32::MIN));
    for &v in rest.iter().filter(|&&v| v != NA_CODE) {
        low = low.min(v);
        high = high.max(v);
    }
    direct_levels(low, high, values.len()).map(|levels| (low, levels))
}

/// [`dense_integer_range`] for doubles: when every value that is not NaN (R's `NA` and `NaN`,
/// missing groups) is a whole number within i32's range and they span a range small enough
/// to index directly, the smallest value and the range's length (ids stored as doubles).
///
/// # Example
/// ```
/// use hnm_core::{dense_double_range, NA_REAL};
/// assert_eq!(dense_double_range(&[7.0, -2.0, NA_REAL, 3.0]), Some((-2, 10)));
/// assert_eq!(dense_double_range(&[1.0, 2.5]), None);
/// assert_eq!(dense_double_range(&[1.0, 3e9]), None);
/// assert_eq!(dense_double_range(&[1.0, f64::INFINITY]), None);
/// ```
pub fn dense_double_range(values: &[f64]) -> Option<(i32, usize)> {
    // v rounded to a whole number by adding and subtracting 1.5 · 2^52 (exact for |v| < 2^51,
    // beyond which the range check below fails anyway): vector instructions, where f64::trunc
    // is a call into libm on x86-64's baseline instruction set. Four independent lanes of
    // branch-free updates, so that their latencies overlap; NaN (a missing group) compares
    // false, so it changes no bound, and it is not counted as broken.
    const ROUND: f64 = 6_755_399_441_055_744.0;
    let (mut low, mut high, mut broken) = ([f64::INFINITY; 4], [f64::NEG_INFINITY; 4], [false; 4]);
    let mut update = |lane: usize, v: f64| {
        low[lane] = if v < low[lane] { v } else { low[lane] };
        high[lane] = if v > high[lane] { v } else { high[lane] };
        broken[lane] |= (v + ROUND) - ROUND != v && !v.is_nan();
    };
    let chunks = values.chunks_exact(4);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, &v) in chunk.iter().enumerate() {
            update(lane, v);
        }
    }
    for &v in rest {
        update(0, v);
    }
    let (low, high) = (low.iter().copied().fold(f64::INFINITY, f64::min), high.iter().copied().fold(f64::NEG_INFINITY, f64::max));
    let in_i32 = low >= f64::from(i32::MIN + 1) && high <= f64::from(i32::MAX);
    if broken.contains(&true) || !in_i32 {
        return None;
    }
    direct_levels(low as i32, high as i32, values.len()).map(|levels| (low as i32, levels))
}

/// The number of levels low..=high when a vector of `len` values may index them directly.
fn direct_levels(low: i32, high: i32, len: usize) -> Option<usize> {
    let levels = usize::try_from(i64::from(high) - i64::from(low) + 1).ok()?;
    let codes_fit = i32::try_from(levels).is_ok();
    (codes_fit && levels <= len / 4 + 1024).then_some(levels)
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
    // Within its capacity: one code per key.
    let (_, first_rows) = KeyCodes::scan(keys, missing, checkpoint, |code| codes.push(code))?;
    Ok(GroupCodes { codes, first_rows })
}

/// The codes of a hashed grouping variable's keys, without a code per row: the table that
/// maps each distinct key to its group's 1-based code, built by one pass over the keys
/// ([`KeyCodes::new`]) and then renumbered into the order the groups' labels sort in
/// ([`KeyCodes::reorder`]), so that a pass over the rows codes each row as it reads it
/// ([`crate::GroupColumn::Keyed`]) and no vector of N codes is ever stored.
#[derive(Debug, Clone)]
pub struct KeyCodes {
    /// Open addressing with linear probing, `missing` marking a free slot; a power of two
    /// long, at most half full.
    table: Vec<(u64, i32)>,
    missing: u64,
    groups: usize,
}

impl KeyCodes {
    /// The table of the distinct keys of `keys` (`missing`: a missing group), coded 1, 2, ...
    /// in order of first appearance as [`group_codes`] codes them, and the 0-based row where
    /// each is first seen.
    ///
    /// # Errors
    /// As [`group_codes`].
    ///
    /// # Example
    /// ```
    /// use hnm_core::{integer_key, Checkpoint, KeyCodes, Never, INTEGER_MISSING, NA_CODE};
    /// let keys = [40, 7, NA_CODE, 40].map(integer_key);
    /// let (mut table, first_rows) = KeyCodes::new(keys.into_iter(), INTEGER_MISSING, &mut Checkpoint::new(&Never)).unwrap();
    /// assert_eq!(first_rows, vec![0, 1]);
    /// assert_eq!((table.code(integer_key(40)), table.code(integer_key(7))), (1, 2));
    /// // 7 sorts before 40: renumbered by their ranks.
    /// table.reorder(&[2, 1]).unwrap();
    /// assert_eq!((table.code(integer_key(40)), table.code(integer_key(7))), (2, 1));
    /// assert_eq!((table.code(INTEGER_MISSING), table.code(integer_key(3))), (NA_CODE, 0));
    /// ```
    pub fn new(keys: impl Iterator<Item = u64>, missing: u64, checkpoint: &mut Checkpoint<'_>) -> Result<(KeyCodes, Vec<usize>)> {
        Self::scan(keys, missing, checkpoint, |_| {})
    }

    /// The table of `keys` and their groups' first rows, handing each row's code to `code`.
    fn scan(keys: impl Iterator<Item = u64>, missing: u64, checkpoint: &mut Checkpoint<'_>, mut code: impl FnMut(i32)) -> Result<(KeyCodes, Vec<usize>)> {
        let mut first_rows = Vec::new();
        let mut table: Vec<(u64, i32)> = filled(&[INITIAL_CAPACITY], (missing, 0), "the table of groups")?;
        let mut last = (missing, NA_CODE);
        for (row, key) in keys.enumerate() {
            checkpoint.check()?;
            if key == missing {
                code(NA_CODE);
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
            code(last.1);
        }
        let groups = first_rows.len();
        Ok((KeyCodes { table, missing, groups }, first_rows))
    }

    /// Number of distinct keys.
    pub fn groups(&self) -> usize {
        self.groups
    }

    /// The code of `key`: [`NA_CODE`] for the missing key, 0 for a key not in the table (a
    /// value the table was not built from: never another group's code).
    #[inline(always)]
    pub fn code(&self, key: u64) -> i32 {
        if key == self.missing {
            return NA_CODE;
        }
        let slot = self.table[slot_of(&self.table, key, self.missing)];
        if slot.0 == key {
            slot.1
        } else {
            0
        }
    }

    /// Starts loading the slot where `key` is looked up (a hint: nothing is read).
    #[inline(always)]
    pub(crate) fn prefetch(&self, key: u64) {
        let i = (mix(key) as usize) & (self.table.len() - 1);
        crate::data::blocks::prefetch_address(self.table.as_ptr().wrapping_add(i));
    }

    /// Renumbers the groups: the group coded c becomes `rank[c − 1]` (for `factor()`'s order of
    /// the groups' labels, group c's place in it). A rank outside 1..=groups (R's `NA`, a
    /// label not found) makes the group's rows code 0, an error of any pass that reads them.
    ///
    /// # Errors
    /// `InvalidArgument` when `rank` has not one entry per group.
    pub fn reorder(&mut self, rank: &[i32]) -> Result<()> {
        if rank.len() != self.groups {
            return Err(HnmError::InvalidArgument { argument: "rank", reason: "must have one entry per group of the table" });
        }
        let groups = self.groups;
        for slot in self.table.iter_mut().filter(|slot| slot.0 != self.missing) {
            let new = code_index(slot.1).and_then(|c| rank.get(c)).copied().unwrap_or(0);
            slot.1 = if new >= 1 && new as usize <= groups { new } else { 0 };
        }
        Ok(())
    }
}

/// How many rows ahead [`KeyedCodes`] prefetches a row's slot of the key table: far enough
/// for a table beyond the cache (10^5 groups: 4 MB) to arrive before the row is coded.
const KEY_PREFETCH: usize = 32;

/// The codes of `values` through their key table, each row's slot prefetched
/// [`KEY_PREFETCH`] rows ahead: with many groups a lookup misses the cache, and the rows'
/// lookups are independent, so their loads can overlap.
#[derive(Clone)]
pub(crate) struct KeyedCodes<'a, T, F> {
    values: &'a [T],
    key: F,
    table: &'a KeyCodes,
    next: usize,
}

impl<'a, T: Copy, F: Fn(T) -> u64> KeyedCodes<'a, T, F> {
    /// The codes of `values`, keyed by `key`, in `table`.
    pub(crate) fn new(values: &'a [T], key: F, table: &'a KeyCodes) -> Self {
        KeyedCodes { values, key, table, next: 0 }
    }
}

impl<T: Copy, F: Fn(T) -> u64> Iterator for KeyedCodes<'_, T, F> {
    type Item = i32;

    #[inline(always)]
    fn next(&mut self) -> Option<i32> {
        let value = *self.values.get(self.next)?;
        if let Some(&ahead) = self.values.get(self.next + KEY_PREFETCH) {
            self.table.prefetch((self.key)(ahead));
        }
        self.next += 1;
        Some(self.table.code((self.key)(value)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.values.len() - self.next;
        (left, Some(left))
    }
}

impl<T: Copy, F: Fn(T) -> u64> ExactSizeIterator for KeyedCodes<'_, T, F> {}

/// The slot of `key` in `table`, or the empty slot where it belongs.
#[inline(always)]
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
pub const INTEGER_MISSING: u64 = NA_CODE as u32 as u64;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numerics::interrupt::{assert_stops_at, questions, Never};

    /// The passes over codes (rows or cells) ask their checkpoint as they go: stopped at their
    /// first, middle or last question, each returns `Interrupted` having asked exactly that
    /// many times (none runs on to its end), and asked again it gives what an uninterrupted
    /// call gives, which is checked against a direct reference.
    #[test]
    fn the_passes_over_codes_stop_when_asked() {
        // 10 chunks of rows: classes nested in schools, and a crossed second code.
        let rows = 10 * ROWS_PER_CHECK + 17;
        let class: Vec<i32> = (0..rows).map(|i| ((i * 7919) % 1000) as i32 + 1).collect();
        let school: Vec<i32> = class.iter().map(|&c| (c - 1) % 37 + 1).collect();
        let other: Vec<i32> = (0..rows).map(|i| ((i * 31) % 5) as i32 + 1).collect();
        let class_labels: Vec<String> = (1..=1000).map(|c| format!("c{c}")).collect();
        let class_labels: Vec<&str> = class_labels.iter().map(String::as_str).collect();
        let school_labels: Vec<String> = (1..=37).map(|s| format!("s{s}")).collect();
        let school_labels: Vec<&str> = school_labels.iter().map(String::as_str).collect();
        // References: the school of each class, the pairs' lexical numbers, the labels.
        let mut school_of = vec![0; 1000];
        for (&c, &s) in class.iter().zip(&school) {
            school_of[c as usize - 1] = s;
        }
        let mut pairs: Vec<(i32, i32)> = class.iter().copied().zip(other.iter().copied()).collect();
        pairs.sort_unstable();
        pairs.dedup();
        let pair_codes: Vec<i32> = class.iter().zip(&other).map(|(&c, &o)| pairs.binary_search(&(c, o)).unwrap() as i32 + 1).collect();
        let label_rows: Vec<i32> = class.clone();
        let label_schools: Vec<i32> = label_rows.iter().map(|&c| school_of[c as usize - 1]).collect();
        let labels_expected: String = label_rows.iter().zip(&label_schools).map(|(&c, &s)| format!("s{s}:c{c}")).collect();

        // A map of the classes (some NA) for map_codes, over 25 chunks of rows (some NA).
        let map: Vec<i32> = (0..1000).map(|c| if c % 97 == 3 { NA_CODE } else { 1000 - c }).collect();
        // For map_codes past PARALLEL_ROWS rows, so that two threads share them (some codes NA).
        let rows = 60 * ROWS_PER_CHECK + 17;
        let many: Vec<i32> = (0..rows).map(|i| if i % 1013 == 7 { NA_CODE } else { class[i % class.len()] }).collect();
        let mapped: Vec<i32> = many.iter().map(|&c| if c == NA_CODE { NA_CODE } else { map[c as usize - 1] }).collect();
        type Run<'a> = Box<dyn Fn(&mut Checkpoint<'_>) -> Result<String> + 'a>;
        let mut runs: Vec<(&str, Run<'_>, String)> = vec![
            (
                "nested_values",
                Box::new(|checkpoint| Ok(format!("{:?}", nested_values(&class, 1000, &[&school], checkpoint)?))),
                format!("{:?}", Some(vec![school_of.clone()])),
            ),
            (
                "dense_pair_codes",
                Box::new(|checkpoint| Ok(format!("{:?}", dense_pair_codes(&class, &other, (1000, 5), checkpoint)?))),
                format!("{:?}", Some((pair_codes.clone(), pairs.len()))),
            ),
            (
                "cell_labels",
                Box::new(|checkpoint| {
                    let parts: [(&[&str], &[i32]); 2] = [(&school_labels, &label_schools), (&class_labels, &label_rows)];
                    Ok(cell_labels(&parts, ":", checkpoint)?.map(|(text, _)| text).unwrap_or_default())
                }),
                labels_expected,
            ),
        ];
        let (map, many) = (&map, &many);
        let map_run = |threads: usize| -> Run<'_> {
            Box::new(move |checkpoint| {
                let mut out = vec![0; many.len()];
                let beyond = map_codes(map, many, &mut out, threads, checkpoint)?;
                Ok(format!("{beyond} {out:?}"))
            })
        };
        runs.push(("map_codes", map_run(1), format!("false {mapped:?}")));
        for (name, run, expected) in &runs {
            assert_eq!(&run(&mut Checkpoint::new(&Never)).unwrap(), expected, "{name}");
            let total = questions(run);
            assert!(total >= 10, "{name}: {total} questions");
            assert_stops_at(name, [1, total / 2, total], run);
            assert_eq!(&run(&mut Checkpoint::new(&Never)).unwrap(), expected, "{name}, after the stops");
        }
        // On two threads: the same codes, and stopped at one of the calling thread's questions
        // over its half (30 chunks; after them, how many it asks while it waits varies).
        let two = map_run(2);
        assert_eq!(two(&mut Checkpoint::new(&Never)).unwrap(), format!("false {mapped:?}"));
        assert_stops_at("two threads", [1, 15, 30], two);
    }

    #[test]
    fn integer_range_lanes_equal_a_scan_of_the_values() {
        // Every length around the eight lanes, NA anywhere (also the extremes' places);
        // reference: the smallest and largest value not NA, found one by one.
        for len in 0..40usize {
            for na_every in [0usize, 1, 3, 8] {
                let values: Vec<i32> = (0..len).map(|i| if na_every > 0 && i % na_every == 0 { NA_CODE } else { ((i * 37) % 23) as i32 - 11 }).collect();
                let present: Vec<i32> = values.iter().copied().filter(|&v| v != NA_CODE).collect();
                let expected = match (present.iter().min(), present.iter().max()) {
                    (Some(&low), Some(&high)) => Some((low, (high - low + 1) as usize)),
                    _ => None,
                };
                assert_eq!(dense_integer_range(&values), expected, "len {len}, NA every {na_every}");
            }
        }
    }

    #[test]
    fn many_groups_survive_growth_in_order_of_first_appearance() {
        // 5000 groups (the table grows several times), keys spread over a wide range and
        // visited in an interleaved order; reference: each group's first row by direct indexing.
        let groups = 5000u64;
        let rows: Vec<u64> = (0..20_000u64).map(|i| (i * 7919) % groups).collect();
        let keys: Vec<u64> = rows.iter().map(|&j| j * 1_000_003 + 17).collect();
        let coded = group_codes(keys.iter().copied(), u64::MAX, &mut Checkpoint::new(&Never)).unwrap();
        assert_eq!(coded.first_rows.len(), groups as usize);
        let mut first = vec![usize::MAX; groups as usize];
        for (row, &j) in rows.iter().enumerate() {
            first[j as usize] = first[j as usize].min(row);
        }
        for (row, &j) in rows.iter().enumerate() {
            let code = coded.codes[row] as usize;
            assert_eq!(coded.first_rows[code - 1], first[j as usize]);
        }
        assert!(coded.first_rows.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn direct_codes_always_fit_an_i32() {
        // 2^32 − 1 levels (all of i32) in 2^34 rows passes the density rule, but codes up
        // to 2^32 − 1 would wrap in an i32: such data must be hashed.
        assert_eq!(direct_levels(i32::MIN + 1, i32::MAX, 1 << 34), None);
        assert_eq!(direct_levels(0, i32::MAX - 1, 1 << 34), Some(i32::MAX as usize));
        assert_eq!(direct_levels(-2, 7, 4), Some(10));
    }
}
