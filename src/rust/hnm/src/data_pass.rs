//! Glue for the data pass: reads R's response and group vectors in place (no copy, no
//! model frame) and hands them to hnm-core's one-pass aggregation.
//!
//! ALTREP vectors are expanded first (see [`crate::expanded`]), so reading them as slices
//! allocates nothing. A factor's integer codes index its levels directly. Integer, logical and double groups
//! are hashed by value; character groups by the address of each string, which R's global
//! CHARSXP cache makes unique per (string, encoding), so each string is never read.

use extendr_api::prelude::*;
use extendr_api::AsTypedSlice;
use hnm_core::{
    accumulate, dense_integer_range, double_key, filled, group_codes, integer_key, with_capacity, Checkpoint, DataPass, GroupCodes, GroupStats, HnmError,
    KeyTable, Response, DOUBLE_MISSING, INTEGER_MISSING, NA_CODE,
};

use crate::{core_error, error_message, expanded, RInterrupt};

/// A pass's statistics; for hashed groups the 0-based first row of each group, for
/// directly indexed integers the value of code 0 (group j holds the value offset + j).
struct Output {
    pass: DataPass,
    first_rows: Option<Vec<usize>>,
    offset: Option<f64>,
}

/// One pass over the response `y` (double or integer) and the group `g` (factor, integer,
/// logical, double or character): per-group n, mean about `center`, within-group SS, the
/// number of rows dropped for NA; for a plain integer `g` of small range, `offset`, with
/// group j (1-based, n = 0 when unused) holding the value offset + j; for other non-factor
/// `g` the 1-based first row of each group (in no particular order), from which R recovers
/// the group values. `response` and `group` name `y` and `g` in error messages.
/// @noRd
#[extendr]
fn rs_data_pass(y: Robj, g: Robj, response: &str, group: &str) -> Robj {
    for (x, name) in [(&y, format!("the response `{response}`")), (&g, format!("the grouping variable `{group}`"))] {
        if !expanded(x) {
            return error_message(format!("{name} could not be expanded into memory (see R's message above)."), "too_large");
        }
    }
    let result = match (y.as_real_slice(), y.as_integer_slice()) {
        (Some(values), _) => pass_over(values, &g),
        (None, Some(values)) => pass_over(values, &g),
        _ => Err(HnmError::InvalidArgument { argument: "y", reason: "must be a double or integer vector" }),
    };
    match result {
        Ok(out) => list!(
            center = out.pass.stats.center(),
            n = out.pass.stats.n(),
            mean = out.pass.stats.centered_mean(),
            ss = out.pass.stats.ssw(),
            dropped = out.pass.dropped as f64,
            first_row = out.first_rows.map_or(Robj::from(()), |rows| one_based(&rows)),
            offset = out.offset.map_or(Robj::from(()), Robj::from),
            levels_checked = if g.is_factor() { Robj::from(levels_distinct(&g)) } else { Robj::from(()) }
        )
        .into(),
        Err(error) => data_error(error, &y, response, group),
    }
}

/// A CHARSXP as R's C API takes it.
type Charsxp = *mut std::ffi::c_void;

extern "C" {
    // R's API (Rinternals.h): a CHARSXP's encoding mark (cetype_t), bytes and length, read
    // without extendr's per-call locking.
    fn Rf_getCharCE(x: Charsxp) -> std::os::raw::c_int;
    fn R_CHAR(x: Charsxp) -> *const std::os::raw::c_char;
    fn LENGTH(x: Charsxp) -> std::os::raw::c_int;
}

/// `CE_BYTES` of R's cetype_t.
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

/// A core error of the pass with the core's `y` and `g` replaced by the user's names.
fn data_error(error: HnmError, y: &Robj, response: &str, group: &str) -> Robj {
    let name = |argument: &str| match argument {
        "y" => format!("the response `{response}`"),
        "g" => format!("the grouping variable `{group}`"),
        other => format!("`{other}`"),
    };
    let kind = error.kind();
    match error {
        HnmError::NotFinite { argument: "y", index } => not_finite_response(y, response, index),
        HnmError::InvalidArgument { argument, reason } => error_message(format!("{} {reason}.", name(argument)), kind),
        HnmError::GroupCodeOutOfRange { argument, index, code, n_groups } => {
            error_message(format!("{} has group code {code} at row {}, outside 1..{n_groups}.", name(argument), index + 1), kind)
        }
        error => core_error(error),
    }
}

/// What is done with a group vector once its kind is known: direct 1-based codes (factor
/// codes, or small-range integers with `offset`), or 64-bit keys to hash.
trait GroupVisitor {
    type Output;
    fn coded(self, codes: impl ExactSizeIterator<Item = i32> + Clone, n_levels: usize, offset: Option<f64>) -> Self::Output;
    fn hashed(self, keys: impl ExactSizeIterator<Item = u64> + Clone, missing: u64) -> Self::Output;
}

/// Reads `g` in place as codes or keys and hands them to `visitor`.
fn visit_groups<V: GroupVisitor>(g: &Robj, visitor: V) -> hnm_core::Result<V::Output> {
    if g.is_factor() {
        let codes = g.as_integer_slice().unwrap_or(&[]);
        let n_levels = g.get_attrib(levels_symbol()).map_or(0, |levels| levels.len());
        return Ok(visitor.coded(codes.iter().copied(), n_levels, None));
    }
    if let Some(values) = g.as_integer_slice() {
        let plain = g.get_attrib(class_symbol()).is_none();
        if let Some((low, levels)) = dense_integer_range(values).filter(|_| plain) {
            // Exact: v − low + 1 lies in 1..=levels, and dense_integer_range keeps levels ≤ i32::MAX.
            let code = move |v: i32| if v == NA_CODE { NA_CODE } else { (i64::from(v) - i64::from(low) + 1) as i32 };
            return Ok(visitor.coded(values.iter().map(move |&v| code(v)), levels, Some(f64::from(low) - 1.0)));
        }
        return Ok(visitor.hashed(values.iter().map(|&v| integer_key(v)), INTEGER_MISSING));
    }
    if let Some(values) = g.as_logical_slice() {
        return Ok(visitor.hashed(values.iter().map(|v| integer_key(v.0)), INTEGER_MISSING));
    }
    if let Some(values) = g.as_real_slice() {
        return Ok(visitor.hashed(values.iter().map(|&v| double_key(v, DOUBLE_MISSING)), DOUBLE_MISSING));
    }
    let strings: Option<&[Rstr]> = g.as_typed_slice();
    if let Some(values) = strings {
        // SAFETY: only the CHARSXP addresses are read, while R keeps `g` alive.
        let missing = unsafe { Rstr::na().get() } as u64;
        return Ok(visitor.hashed(values.iter().map(|s| unsafe { s.get() } as u64), missing));
    }
    Err(HnmError::InvalidArgument { argument: "g", reason: "must be a factor or an integer, logical, double or character vector" })
}

/// The one-way model's data pass over `y` by the groups.
struct OneWayPass<'a, Y> {
    y: &'a [Y],
}

impl<Y: Response> GroupVisitor for OneWayPass<'_, Y> {
    type Output = hnm_core::Result<Output>;

    fn coded(self, codes: impl ExactSizeIterator<Item = i32> + Clone, n_levels: usize, offset: Option<f64>) -> Self::Output {
        let pass = GroupStats::from_data(self.y, codes, n_levels, &mut Checkpoint::new(&RInterrupt))?;
        Ok(Output { pass, first_rows: None, offset })
    }

    fn hashed(self, keys: impl ExactSizeIterator<Item = u64> + Clone, missing: u64) -> Self::Output {
        let mut table = KeyTable::new(missing);
        let dropped = accumulate(self.y, keys, &mut table, &mut Checkpoint::new(&RInterrupt))?;
        let groups = table.into_groups()?;
        Ok(Output { pass: DataPass { stats: groups.stats, dropped }, first_rows: Some(groups.first_rows), offset: None })
    }
}

fn pass_over<Y: Response>(y: &[Y], g: &Robj) -> hnm_core::Result<Output> {
    visit_groups(g, OneWayPass { y })?
}

/// Per-row group codes: direct codes as they are, hashed keys numbered in order of first
/// appearance with each group's first row.
struct Coder;

impl GroupVisitor for Coder {
    type Output = hnm_core::Result<(GroupCodes, Option<f64>)>;

    fn coded(self, codes: impl ExactSizeIterator<Item = i32> + Clone, _n_levels: usize, offset: Option<f64>) -> Self::Output {
        let mut all = with_capacity(&[codes.len()], "the group codes")?;
        all.extend(codes);
        Ok((GroupCodes { codes: all, first_rows: Vec::new() }, offset))
    }

    fn hashed(self, keys: impl ExactSizeIterator<Item = u64> + Clone, missing: u64) -> Self::Output {
        Ok((group_codes(keys, missing, &mut Checkpoint::new(&RInterrupt))?, None))
    }
}

/// The group codes of a non-factor `g` (integer, logical, double or character) for the
/// general model, without `factor()`'s conversion of every value to a string: `codes`
/// (1-based, NA for missing) with either `offset` (small-range integers: code j is the value
/// offset + j, possibly unused) or `first_row` (hashed values: code j first appears at that
/// 1-based row). `group` names `g` in error messages.
/// @noRd
#[extendr]
fn rs_group_codes(g: Robj, group: &str) -> Robj {
    if !expanded(&g) {
        return error_message(format!("the grouping variable `{group}` could not be expanded into memory (see R's message above)."), "too_large");
    }
    match visit_groups(&g, Coder).and_then(|result| result) {
        Ok((coded, offset)) => {
            let first_row = if offset.is_some() { Robj::from(()) } else { one_based(&coded.first_rows) };
            list!(codes = coded.codes, first_row = first_row, offset = offset.map_or(Robj::from(()), Robj::from)).into()
        }
        Err(error) => data_error(error, &g, "", group),
    }
}

/// 0-based rows as R's 1-based row numbers, written straight into an R vector.
fn one_based(rows: &[usize]) -> Robj {
    Doubles::from_values(rows.iter().map(|&r| r as f64 + 1.0)).into()
}

/// The error for a NaN (not NA) or infinite response, naming the response and the row.
fn not_finite_response(y: &Robj, response: &str, index: usize) -> Robj {
    let value = y.as_real_slice().and_then(|v| v.get(index)).map_or("NaN".to_string(), |v| format!("{v}"));
    let value = value.replace("inf", "Inf");
    error_message(format!("the response `{response}` must be finite (or NA), but row {} is {value}.", index + 1), "not_finite")
}

extendr_module! {
    mod data_pass;
    fn rs_data_pass;
    fn rs_group_codes;
}
