//! Glue for the grouping variable: reads it in place (no copy, no `factor()`) and gives the
//! codes `factor()` would, and checks a factor's levels.
//!
//! ALTREP vectors are expanded first (see [`crate::expanded`]), so reading them as slices
//! allocates nothing. Integers of a small range index their values directly; other integer,
//! logical and double groups are hashed by value; character groups by the address of each
//! string, which R's global CHARSXP cache makes unique per (string, encoding), so each string
//! is never read.

use extendr_api::prelude::*;
use extendr_api::AsTypedSlice;
use hnm_core::{
    cell_labels, dense_double_range, dense_integer_range, dense_pair_codes, double_key, filled, group_codes, integer_key, map_codes, nested_values,
    with_capacity, Checkpoint, GroupCodes, GroupKeys, HnmError, KeyCodes, DOUBLE_MISSING, INTEGER_MISSING, NA_CODE,
};

use crate::{core_error, error_message, expanded, integers_read_only, RInterrupt};

/// TRUE when the factor `g`'s levels are non-NA strings, none marked "bytes", no two equal
/// (R's `check_levels()` then has nothing to report); FALSE when one of them may fail.
/// @noRd
#[extendr]
fn rs_levels_distinct(g: Robj) -> bool {
    levels_distinct(&g)
}

/// A CHARSXP as R's C API takes it.
type Charsxp = *mut std::ffi::c_void;

extern "C" {
    // R's API (Rinternals.h): a CHARSXP's encoding mark (cetype_t), bytes and length, read
    // without extendr's per-call locking.
    fn Rf_getCharCE(x: Charsxp) -> std::os::raw::c_int;
    fn R_CHAR(x: Charsxp) -> *const std::os::raw::c_char;
    fn LENGTH(x: Charsxp) -> std::os::raw::c_int;
    fn Rf_mkCharLenCE(text: *const std::os::raw::c_char, len: std::os::raw::c_int, encoding: std::os::raw::c_int) -> Charsxp;
    fn SET_STRING_ELT(x: Charsxp, i: isize, value: Charsxp);
}

/// `CE_UTF8` and `CE_BYTES` of R's cetype_t.
const CE_UTF8: std::os::raw::c_int = 1;
const CE_BYTES: std::os::raw::c_int = 3;

/// TRUE when the factor `g`'s levels are non-NA strings, none marked "bytes", no two equal;
/// FALSE when one of them may fail (or the check does not fit in memory), left to R to decide
/// and report. Equality is by address:
/// R's CHARSXP cache holds one copy of each (bytes, encoding mark), and ASCII strings are never
/// marked, so distinct addresses are distinct labels unless two non-ASCII labels carry
/// different marks (the same text in latin1 and UTF-8), where FALSE defers to R.
fn levels_distinct(g: &Robj) -> bool {
    let Some(levels) = g.get_attrib(levels_symbol()) else { return true };
    let Some(labels) = AsTypedSlice::<Rstr>::as_typed_slice(&levels) else { return false };
    // SAFETY: the CHARSXPs are read (address, mark, bytes) while R keeps `g` alive.
    let na = unsafe { Rstr::na().get() };
    let mut mark = None;
    // Pushed within its exact capacity; without the memory, R checks the levels instead.
    let Ok(mut addresses) = with_capacity(&[labels.len()], "the levels' addresses") else { return false };
    for label in labels {
        let sexp = unsafe { label.get() };
        if sexp == na {
            return false;
        }
        let charsxp: Charsxp = sexp.cast();
        let bytes = unsafe { std::slice::from_raw_parts(R_CHAR(charsxp).cast::<u8>(), LENGTH(charsxp).max(0) as usize) };
        if !bytes.is_ascii() {
            let encoding = unsafe { Rf_getCharCE(charsxp) };
            if encoding == CE_BYTES || *mark.get_or_insert(encoding) != encoding {
                return false;
            }
        }
        addresses.push(sexp as usize);
    }
    distinct(&addresses).unwrap_or(false)
}

/// True when no two of the non-zero `addresses` are equal: one insertion each into an
/// open-addressing table of twice their number, sized once (no rehashing), 0 marking a free slot.
///
/// # Errors
/// `TooLarge` when the table does not fit in memory.
fn distinct(addresses: &[usize]) -> hnm_core::Result<bool> {
    if addresses.len() < 2 {
        return Ok(true);
    }
    let bits = (2 * addresses.len()).next_power_of_two().trailing_zeros();
    let mask = (1usize << bits) - 1;
    let mut table = filled(&[mask + 1], 0usize, "the table of the levels")?;
    for &address in addresses {
        // Fibonacci hashing: the high bits of the product mix every bit of the address.
        let mut i = ((address as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize;
        while table[i] != 0 {
            if table[i] == address {
                return Ok(false);
            }
            i = (i + 1) & mask;
        }
        table[i] = address;
    }
    Ok(true)
}

/// Renumbers 1-based `codes` in 1..=`levels` (NA kept) over the codes that occur, in order, and
/// returns those codes: what `factor()` does with a small integer range's values (no level for
/// a value without rows), in one pass over the codes to find them and, when some are unused,
/// one to renumber.
///
/// # Errors
/// `TooLarge` when the table of the range does not fit in memory.
fn compact_codes(codes: &mut [i32], levels: usize) -> hnm_core::Result<Vec<i32>> {
    let mut renumbered = filled(&[levels], 0i32, "the table of the group values")?;
    for &code in codes.iter().filter(|&&c| c != NA_CODE) {
        renumbered[code as usize - 1] = 1;
    }
    let mut present = with_capacity(&[levels], "the group values")?;
    for (value, slot) in renumbered.iter_mut().enumerate() {
        if *slot != 0 {
            present.push(value as i32 + 1);
            *slot = present.len() as i32;
        }
    }
    if present.len() < levels {
        for code in codes.iter_mut().filter(|c| **c != NA_CODE) {
            *code = renumbered[*code as usize - 1];
        }
    }
    Ok(present)
}

/// The codes of hashed keys, numbered in order of first appearance, with each group's first row.
fn hashed(keys: impl ExactSizeIterator<Item = u64>, missing: u64) -> hnm_core::Result<(GroupCodes, Option<f64>, Vec<i32>)> {
    Ok((group_codes(keys, missing, &mut Checkpoint::new(&RInterrupt))?, None, Vec::new()))
}

/// The group codes of a plain vector `g` (integer, logical, double or character), with the
/// offset and the values that occur for a small integer range, none otherwise.
fn codes_of(g: &Robj) -> hnm_core::Result<(GroupCodes, Option<f64>, Vec<i32>)> {
    if let Some(values) = g.as_integer_slice() {
        if let Some((low, levels)) = dense_integer_range(values) {
            // Exact: v − low + 1 lies in 1..=levels, and dense_integer_range keeps levels ≤ i32::MAX.
            let mut codes = with_capacity(&[values.len()], "the group codes")?;
            codes.extend(values.iter().map(|&v| if v == NA_CODE { NA_CODE } else { (i64::from(v) - i64::from(low) + 1) as i32 }));
            let present = compact_codes(&mut codes, levels)?;
            return Ok((GroupCodes { codes, first_rows: Vec::new() }, Some(f64::from(low) - 1.0), present));
        }
        return hashed(values.iter().map(|&v| integer_key(v)), INTEGER_MISSING);
    }
    if let Some(values) = g.as_logical_slice() {
        return hashed(values.iter().map(|v| integer_key(v.0)), INTEGER_MISSING);
    }
    if let Some(values) = g.as_real_slice() {
        return hashed(values.iter().map(|&v| double_key(v, DOUBLE_MISSING)), DOUBLE_MISSING);
    }
    let strings: Option<&[Rstr]> = g.as_typed_slice();
    if let Some(values) = strings {
        // SAFETY: only the CHARSXP addresses are read, while R keeps `g` alive.
        let missing = unsafe { Rstr::na().get() } as u64;
        return hashed(values.iter().map(|s| unsafe { s.get() } as u64), missing);
    }
    Err(HnmError::InvalidArgument { argument: "g", reason: "must be a factor or an integer, logical, double or character vector" })
}

/// The group codes of a non-factor `g` (integer, logical, double or character) for the
/// general model, without `factor()`'s conversion of every value to a string: `codes`
/// (1-based, NA for missing) with either `offset` and `present` (small-range integers: code j
/// is the value offset + present[j], the values without rows left out, as `factor()` does) or
/// `first_row` (hashed values: code j first appears at that 1-based row). `group` names `g` in
/// error messages.
/// @noRd
#[extendr]
fn rs_group_codes(g: Robj, group: &str) -> Robj {
    if !expanded(&g) {
        return error_message(format!("the grouping variable `{group}` could not be expanded into memory (see R's message above)."), "too_large");
    }
    match codes_of(&g) {
        Ok((coded, offset, present)) => {
            let first_row = if offset.is_some() { Robj::from(()) } else { one_based(&coded.first_rows) };
            list!(codes = coded.codes, first_row = first_row, offset = offset.map_or(Robj::from(()), Robj::from), present = present).into()
        }
        Err(HnmError::InvalidArgument { reason, .. }) => error_message(format!("the grouping variable `{group}` {reason}."), "invalid_argument"),
        Err(error) => core_error(error),
    }
}

/// For a plain integer or double vector `g` whose values (but NA) are whole numbers of a
/// range small enough to index directly, `offset` (the value before the smallest, so value
/// v is group v − offset) and `levels` (the range's length); NULL otherwise.
/// @noRd
#[extendr]
fn rs_dense_range(g: Robj) -> Robj {
    if !expanded(&g) {
        return Robj::from(());
    }
    let range = match (g.as_integer_slice(), g.as_real_slice()) {
        (Some(values), _) => dense_integer_range(values),
        (None, Some(values)) => dense_double_range(values),
        _ => None,
    };
    // The offset low − 1 must itself be an integer other than R's NA (i32::MIN).
    match range.filter(|&(low, _)| low > i32::MIN + 1) {
        Some((low, levels)) => list!(offset = low - 1, levels = levels as i32).into(),
        None => Robj::from(()),
    }
}

/// The integer vectors `vectors`, each expanded into memory (see [`expanded`]) and read in
/// place through its read-only pointer; `None` when one could not be expanded or is not a plain
/// integer vector (the caller then leaves the work to R).
fn integer_vectors(vectors: &[Robj]) -> Option<Vec<&[i32]>> {
    if !vectors.iter().all(expanded) {
        return None;
    }
    vectors.iter().map(integers_read_only).collect()
}

/// For integer codes `first` in 1..`levels` and the integer codes `others` (a list) of the same
/// rows, each of `others`' value at every level of `first` (0 for a level with no rows) when
/// each is a function of `first`, a nested design (hnm_core::nested_values); NULL otherwise,
/// or when a code is NA or a vector is not a plain integer vector.
/// @noRd
#[extendr]
fn rs_nested_values(first: Robj, levels: i32, others: List) -> Robj {
    let vectors: Vec<Robj> = std::iter::once(first).chain(others.values()).collect();
    let Some(slices) = integer_vectors(&vectors) else {
        return Robj::from(());
    };
    match nested_values(slices[0], usize::try_from(levels).unwrap_or(0), &slices[1..], &mut Checkpoint::new(&RInterrupt)) {
        Ok(Some(values)) => List::from_values(values.into_iter().map(Robj::from)).into(),
        Ok(None) => Robj::from(()),
        Err(error) => core_error(error),
    }
}

/// R's `dense_codes()` (R/design.R) for one or two integer keys `keys` (a list; key j in
/// 1..`sizes[j]`): the distinct combinations numbered 1..n in lexical order of the keys,
/// `codes` (one per row) and `n`, by hnm_core::dense_pair_codes; NULL when a key is not a plain
/// integer vector, is NA or outside its range, or there are more than two (R's code then
/// applies).
/// @noRd
#[extendr]
fn rs_dense_codes(keys: List, sizes: &[i32]) -> Robj {
    let vectors: Vec<Robj> = keys.values().collect();
    if vectors.is_empty() || vectors.len() > 2 || sizes.len() != vectors.len() {
        return Robj::from(());
    }
    let Some(slices) = integer_vectors(&vectors) else {
        return Robj::from(());
    };
    let level = |j: usize| sizes.get(j).map_or(0, |&s| usize::try_from(s).unwrap_or(0));
    let checkpoint = &mut Checkpoint::new(&RInterrupt);
    match dense_pair_codes(slices[0], slices.get(1).copied().unwrap_or(&[]), (level(0), level(1)), checkpoint) {
        Ok(Some((codes, n))) => list!(codes = codes, n = n as i32).into(),
        Ok(None) => Robj::from(()),
        Err(error) => core_error(error),
    }
}

/// The labels of an interaction's cells, `paste(labels[[1]][levels[[1]]], labels[[2]][levels[[2]]],
/// ..., sep = sep)`: `labels` the parts' level labels (character vectors), `levels` each cell's
/// level of each part (1-based integer vectors of one length). Written by hnm_core::cell_labels
/// into one buffer and each made an R string, where `paste()` took twice as long (1e5 cells of
/// classes in schools: ~40 ms). NULL, for `paste()` to make them, when a label is NA or not
/// ASCII (whose encoding `paste()` handles), a level is outside its labels, or the lengths
/// differ. ASCII labels joined by an ASCII `sep` are ASCII strings, as `paste()` makes them.
/// @noRd
#[extendr]
fn rs_cell_labels(labels: List, levels: List, sep: &str) -> Robj {
    let (labels, levels): (Vec<Robj>, Vec<Robj>) = (labels.values().collect(), levels.values().collect());
    if labels.is_empty() || labels.len() != levels.len() || !sep.is_ascii() || !labels.iter().all(expanded) {
        return Robj::from(());
    }
    let Some(levels) = integer_vectors(&levels) else {
        return Robj::from(());
    };
    let ascii = |label: &&str| !label.is_na() && label.is_ascii();
    let Some(labels) = labels.iter().map(|labels| labels.as_str_vector().filter(|l| l.iter().all(ascii))).collect::<Option<Vec<Vec<&str>>>>() else {
        return Robj::from(());
    };
    let parts: Vec<(&[&str], &[i32])> = labels.iter().map(Vec::as_slice).zip(levels).collect();
    let checkpoint = &mut Checkpoint::new(&RInterrupt);
    let (text, ends) = match cell_labels(&parts, sep, checkpoint) {
        Ok(Some(labelled)) => labelled,
        Ok(None) => return Robj::from(()),
        Err(error) => return core_error(error),
    };
    // R's own calls, one per label (extendr's Rstr and set_elt cost 2.5x as much: a lock and
    // a protection per string).
    let out = Robj::alloc_vector(extendr_api::rtype_to_sxp(Rtype::Strings), ends.len());
    // SAFETY: during the .Call on R's main thread; `out` is protected while it lives, and each
    // new CHARSXP is stored into it at once, before the next allocation. The labels are ASCII
    // (checked above) and R strings have no NUL, so mkCharLenCE cannot fail on them.
    let sexp = unsafe { out.get() };
    let mut start = 0;
    for (cell, &end) in ends.iter().enumerate() {
        if let Err(error) = checkpoint.check() {
            return core_error(error);
        }
        let label = &text.as_bytes()[start..end];
        // A label beyond R's longest string: paste() reports it.
        let Ok(length) = std::os::raw::c_int::try_from(label.len()) else {
            return Robj::from(());
        };
        unsafe {
            let charsxp = Rf_mkCharLenCE(label.as_ptr().cast(), length, CE_UTF8);
            SET_STRING_ELT(sexp.cast(), cell as isize, charsxp);
        }
        start = end;
    }
    out
}

/// `map[codes]` as R's `[` gives it for integer `codes` in 1..length(`map`) or NA (NA there,
/// and where `map` is NA), written straight into an R vector by hnm_core::map_codes on up to
/// `threads` threads: the rows' codes of an interaction through its cells' order, where R's
/// subsetting took 3x as long at 1e7 rows. NULL when a code is beyond that range or `codes`
/// is not an integer vector (R's `[` then applies its own rules).
/// @noRd
#[extendr]
fn rs_map_codes(map: &[i32], codes: Robj, threads: i32) -> Robj {
    let Some(codes) = integer_vectors(std::slice::from_ref(&codes)).and_then(|mut codes| codes.pop()) else {
        return Robj::from(());
    };
    // Allocated unset (extendr's Integers::new would first write zeros) and written once.
    let mut out = Robj::alloc_vector(extendr_api::rtype_to_sxp(Rtype::Integers), codes.len());
    let Some(written) = out.as_integer_slice_mut() else {
        return Robj::from(());
    };
    match map_codes(map, codes, written, usize::try_from(threads).unwrap_or(1), &mut Checkpoint::new(&RInterrupt)) {
        Ok(false) => out,
        Ok(true) => Robj::from(()),
        Err(error) => core_error(error),
    }
}

/// The values of a plain integer, logical, double or character vector `g`, read in place as
/// the keys of its groups; `None` for another type.
pub(crate) fn group_keys(g: &Robj) -> Option<GroupKeys<'_>> {
    if let Some(values) = g.as_integer_slice() {
        return Some(GroupKeys::Integers(values));
    }
    if let Some(values) = g.as_logical_slice() {
        // SAFETY: Rbool is a transparent i32 with R's NA as i32::MIN.
        return Some(GroupKeys::Integers(unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<i32>(), values.len()) }));
    }
    if let Some(values) = g.as_real_slice() {
        return Some(GroupKeys::Doubles(values));
    }
    let strings: Option<&[Rstr]> = g.as_typed_slice();
    // SAFETY: an Rstr is a CHARSXP pointer (the typed slice is R's STRSXP data), so the slice
    // reads as the strings' addresses, which stay put while R keeps `g` alive.
    strings.map(|values| GroupKeys::Addresses(unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<usize>(), values.len()) }))
}

/// The key table of the groups of `keys` (see [`KeyCodes::new`]), with R's missing values as
/// the missing keys.
fn key_table(keys: GroupKeys<'_>) -> hnm_core::Result<(KeyCodes, Vec<usize>)> {
    let checkpoint = &mut Checkpoint::new(&RInterrupt);
    match keys {
        GroupKeys::Integers(values) => KeyCodes::new(values.iter().map(|&v| integer_key(v)), INTEGER_MISSING, checkpoint),
        GroupKeys::Doubles(values) => KeyCodes::new(values.iter().map(|&v| double_key(v, DOUBLE_MISSING)), DOUBLE_MISSING, checkpoint),
        GroupKeys::Addresses(values) => {
            // SAFETY: only the address of R's NA string is read.
            let missing = unsafe { Rstr::na().get() } as u64;
            KeyCodes::new(values.iter().map(|&a| a as u64), missing, checkpoint)
        }
    }
}

/// The groups of a plain integer, logical, double or character vector `g`, hashed in one pass
/// over it without storing a code per row: `table`, the key table (an external pointer; its
/// codes in order of first appearance until `rs_group_keys_order`), and `first_row`, the
/// 1-based row where each group is first seen. `group` names `g` in error messages.
/// @noRd
#[extendr]
fn rs_group_keys(g: Robj, group: &str) -> Robj {
    if !expanded(&g) {
        return error_message(format!("the grouping variable `{group}` could not be expanded into memory (see R's message above)."), "too_large");
    }
    let Some(keys) = group_keys(&g) else {
        return error_message(
            format!("the grouping variable `{group}` must be a factor or an integer, logical, double or character vector."),
            "invalid_argument",
        );
    };
    match key_table(keys) {
        Ok((table, first_rows)) => list!(table = ExternalPtr::new(table), first_row = one_based(&first_rows)).into(),
        Err(HnmError::InvalidArgument { reason, .. }) => error_message(format!("the grouping variable `{group}` {reason}."), "invalid_argument"),
        Err(error) => core_error(error),
    }
}

/// Renumbers the groups of the key table `table`: the group first seen c-th gets code
/// `rank[c]` (see `KeyCodes::reorder` in hnm-core).
/// @noRd
#[extendr]
fn rs_group_keys_order(mut table: Robj, rank: &[i32]) -> Robj {
    let Ok(keys) = <&mut ExternalPtr<KeyCodes>>::try_from(&mut table) else {
        return error_message("`table` is not a key table.".into(), "invalid_argument");
    };
    match keys.reorder(rank) {
        Ok(()) => Robj::from(()),
        Err(error) => core_error(error),
    }
}

/// TRUE when `table` is a live key table (FALSE after `saveRDS()`/`readRDS()`, which keep no
/// pointer).
/// @noRd
#[extendr]
fn rs_group_keys_valid(table: Robj) -> bool {
    <&ExternalPtr<KeyCodes>>::try_from(&table).is_ok()
}

/// 0-based rows as R's 1-based row numbers, written straight into an R vector.
fn one_based(rows: &[usize]) -> Robj {
    Doubles::from_values(rows.iter().map(|&r| r as f64 + 1.0)).into()
}

extendr_module! {
    mod groups;
    fn rs_group_codes;
    fn rs_levels_distinct;
    fn rs_dense_range;
    fn rs_nested_values;
    fn rs_dense_codes;
    fn rs_cell_labels;
    fn rs_map_codes;
    fn rs_group_keys;
    fn rs_group_keys_order;
    fn rs_group_keys_valid;
}
