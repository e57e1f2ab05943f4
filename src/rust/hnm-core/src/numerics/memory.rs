//! Fallible allocation of everything whose size the data or a user's argument chooses.
//!
//! Rust aborts the process when an allocation fails (`Vec::with_capacity`, `vec![0.0; n]`,
//! `collect()`), which would take the user's R session with it. Every buffer sized by the
//! data (rows, groups, model columns) or by an argument (profile steps, replicates) is
//! therefore reserved here first, with `try_reserve_exact`, and a failure becomes
//! [`HnmError::TooLarge`] naming the buffer and the bytes it needed.
//!
//! Buffers of a fixed size (a 3 × 3 matrix, the optimiser's state) and those of the model's
//! width alone (k, p or q values, a p × p or q × q matrix, each the size of about two groups'
//! statistics) are allocated as usual: by then the statistics of every group, m times larger,
//! have been allocated here, and [`crate::CrossProducts::from_columns`] refuses statistics
//! out of proportion to the data before allocating them. What R allocates for a result (an R
//! vector written straight from Rust's) fails with R's own error, not an abort.

use crate::error::{HnmError, Result};

/// What a profile's points are called in a `TooLarge` error (one- and general-model profiles).
pub(crate) const POINTS: &str = "the profile points `steps` asks for";

/// Bytes of `elements` values of type `T`, saturating (for messages only).
fn bytes<T>(elements: u128) -> u128 {
    elements.saturating_mul(std::mem::size_of::<T>() as u128)
}

/// The number of elements of a buffer of dimensions `dims` (their product).
///
/// # Errors
/// `TooLarge` naming `what` when the product overflows `usize`.
fn elements<T>(dims: &[usize], what: &'static str) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| HnmError::TooLarge { what, bytes: bytes::<T>(dims.iter().fold(1u128, |acc, &d| acc.saturating_mul(d as u128))) })
}

/// Room for `additional` more values in `v`, reserved fallibly (exactly, when `exact`).
///
/// # Errors
/// `TooLarge` naming `what`, with the bytes of the whole buffer, when the memory cannot be
/// reserved.
fn reserve<T>(v: &mut Vec<T>, additional: usize, exact: bool, what: &'static str) -> Result<()> {
    let reserved = if exact { v.try_reserve_exact(additional) } else { v.try_reserve(additional) };
    reserved.map_err(|_| HnmError::TooLarge { what, bytes: bytes::<T>(v.len() as u128 + additional as u128) })
}

/// An empty vector with room for the product of `dims` elements, reserved fallibly.
///
/// # Errors
/// `TooLarge` naming `what` and the bytes needed when the memory cannot be reserved.
///
/// # Example
/// ```
/// use hnm_core::{with_capacity, HnmError};
/// assert!(with_capacity::<f64>(&[10], "the points").unwrap().capacity() >= 10);
/// assert_eq!(
///     with_capacity::<f64>(&[usize::MAX / 2], "the points"),
///     Err(HnmError::TooLarge { what: "the points", bytes: (usize::MAX / 2) as u128 * 8 })
/// );
/// ```
pub fn with_capacity<T>(dims: &[usize], what: &'static str) -> Result<Vec<T>> {
    reserved(elements::<T>(dims, what)?, what)
}

/// An empty vector with room for `len` elements, reserved fallibly.
fn reserved<T>(len: usize, what: &'static str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    reserve(&mut v, len, true, what)?;
    Ok(v)
}

/// A vector of the product of `dims` copies of `value`, allocated fallibly.
///
/// # Errors
/// As [`with_capacity`].
///
/// # Example
/// ```
/// use hnm_core::filled;
/// assert_eq!(filled(&[2, 3], 0.5, "the blocks").unwrap(), vec![0.5; 6]);
/// ```
pub fn filled<T: Clone>(dims: &[usize], value: T, what: &'static str) -> Result<Vec<T>> {
    let len = elements::<T>(dims, what)?;
    let mut v = reserved(len, what)?;
    v.resize(len, value);
    Ok(v)
}

/// The items of `items` in a vector allocated fallibly: room for the iterator's upper
/// bound (or its lower bound when it has none) at once, then amortised growth.
///
/// # Errors
/// As [`with_capacity`].
///
/// # Example
/// ```
/// use hnm_core::collected;
/// assert_eq!(collected((0..10).filter(|i| i % 3 == 0), "the rows").unwrap(), vec![0, 3, 6, 9]);
/// ```
pub fn collected<T>(items: impl IntoIterator<Item = T>, what: &'static str) -> Result<Vec<T>> {
    let mut items = items.into_iter();
    let (lower, upper) = items.size_hint();
    let mut v = reserved(upper.unwrap_or(lower), what)?;
    // Up to the room reserved, `extend` (a copy, or a loop without a test of the capacity per
    // item, for an iterator of known length): the items pushed one by one cost a copy of 1e4
    // group statistics ten times as much.
    v.extend(items.by_ref().take(v.capacity()));
    for item in items {
        push(&mut v, item, what)?;
    }
    Ok(v)
}

/// A copy of `values` allocated fallibly.
///
/// # Errors
/// As [`with_capacity`].
pub fn copied<T: Clone>(values: &[T], what: &'static str) -> Result<Vec<T>> {
    collected(values.iter().cloned(), what)
}

/// `v` with `item` appended, growing fallibly (amortised doubling) when it is full.
///
/// # Errors
/// As [`with_capacity`].
pub(crate) fn push<T>(v: &mut Vec<T>, item: T, what: &'static str) -> Result<()> {
    if v.len() == v.capacity() {
        reserve(v, 1, false, what)?;
    }
    v.push(item);
    Ok(())
}

/// `result`'s value, `None` for an error of the work itself, and running out of memory kept
/// as the error: for work whose own failures are expected (a bootstrap replicate whose refit
/// fails), where memory that runs out must stop everything rather than fail each piece.
///
/// # Errors
/// `TooLarge` when `result` is that error.
pub(crate) fn unless_out_of_memory<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(error @ (HnmError::TooLarge { .. } | HnmError::StatisticsTooLarge { .. })) => Err(error),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_allocation_is_an_error_naming_the_buffer_and_its_bytes() {
        // 2^47 doubles (1 PiB): more than any machine's memory and a 47-bit address space, so
        // the allocator itself refuses, not Rust's capacity check (isize::MAX bytes).
        let huge = 1usize << 47;
        assert_eq!(filled(&[huge], 0.0f64, "the test's buffer"), Err(HnmError::TooLarge { what: "the test's buffer", bytes: 1 << 50 }));
        assert_eq!(collected((0..huge).map(|i| i as f64), "the rows"), Err(HnmError::TooLarge { what: "the rows", bytes: 1 << 50 }));
        // A product of dimensions that overflows usize: its exact size in the message.
        let e = with_capacity::<f64>(&[1 << 40, 1 << 40], "the blocks").unwrap_err();
        assert_eq!(e, HnmError::TooLarge { what: "the blocks", bytes: 1 << 83 });
        assert_eq!(e.kind(), "too_large");
        assert!(e.to_string().starts_with("the blocks do not fit in memory: they need 9671406556917033397649408 bytes"), "{e}");
    }

    #[test]
    fn growth_past_the_reserved_room_is_fallible_too() {
        let mut v = with_capacity::<u8>(&[1], "bytes").unwrap();
        push(&mut v, 1, "bytes").unwrap();
        push(&mut v, 2, "bytes").unwrap();
        push(&mut v, 3, "bytes").unwrap();
        assert_eq!(v, [1, 2, 3]);
        assert_eq!(copied(&v, "bytes").unwrap(), v);
        assert_eq!(filled(&[0, 5], 1u8, "bytes").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn only_running_out_of_memory_stops_work_that_may_fail() {
        assert_eq!(unless_out_of_memory(Ok(1)), Ok(Some(1)));
        assert_eq!(unless_out_of_memory::<u8>(Err(HnmError::PerfectFit)), Ok(None));
        let too_large = HnmError::TooLarge { what: "x", bytes: 8 };
        assert_eq!(unless_out_of_memory::<u8>(Err(too_large.clone())), Err(too_large));
    }
}
