//! A model matrix held as its distinct rows and each row's index into them: when the fixed
//! part's variables are factors with few combinations (InstEval's `service * dept`: 28 of
//! them over 73,421 rows), R's `model.matrix()` of one row per combination and each row's
//! combination are the whole matrix, which the pass reads as such ([`crate::Column::Indexed`])
//! and R expands only when it reads the matrix itself.

use crate::error::{HnmError, Result};

/// Checks that `distinct` (column-major) has a whole number of columns of `distinct_rows`
/// rows and that every `index` is one of them (1-based), so that the matrix whose row i is
/// row `index[i]` of `distinct` is defined.
///
/// # Errors
/// `GroupCodeOutOfRange` for an index outside 1..=`distinct_rows` (R's `NA` included);
/// `LengthMismatch` when `distinct`'s length is not a multiple of `distinct_rows` (or
/// `distinct_rows` is 0).
///
/// # Example
/// ```
/// use hnm_core::check_distinct_rows;
/// assert!(check_distinct_rows(&[1.0, 2.0, 10.0, 20.0], 2, &[2, 1, 2]).is_ok());
/// assert!(check_distinct_rows(&[1.0, 2.0, 10.0, 20.0], 2, &[3]).is_err());
/// ```
pub fn check_distinct_rows(distinct: &[f64], distinct_rows: usize, index: &[i32]) -> Result<()> {
    if distinct_rows == 0 || distinct.len() % distinct_rows != 0 {
        return Err(HnmError::LengthMismatch { first: "distinct", first_len: distinct.len(), second: "distinct_rows", second_len: distinct_rows });
    }
    match index.iter().position(|&code| !(1..=distinct_rows).contains(&usize::try_from(code).unwrap_or(0))) {
        Some(i) => Err(HnmError::GroupCodeOutOfRange { argument: "index", index: i, code: index[i].into(), n_groups: distinct_rows }),
        None => Ok(()),
    }
}

/// Row `code` (1-based) of `column`, a column of the distinct rows; R's `NA` for a code
/// outside them (which [`check_distinct_rows`] refuses): what the matrix's row of that index
/// holds, as [`write_rows_of_distinct`] writes it and [`crate::Column::Indexed`] reads it.
///
/// # Example
/// ```
/// use hnm_core::{distinct_value, is_r_na};
/// assert_eq!(distinct_value(&[10.0, 20.0], 2), 20.0);
/// assert!(is_r_na(distinct_value(&[10.0, 20.0], 0)));
/// ```
#[inline(always)]
pub fn distinct_value(column: &[f64], code: i32) -> f64 {
    usize::try_from(code).ok().and_then(|i| column.get(i.wrapping_sub(1))).copied().unwrap_or(crate::NA_REAL)
}

/// Writes into `out` (column-major, `index.len()` rows, as many columns as fit in both) the
/// matrix whose row i is row `index[i]` (1-based) of `distinct` (`distinct_rows` rows,
/// column-major), each value as [`distinct_value`] gives it.
///
/// # Example
/// ```
/// use hnm_core::write_rows_of_distinct;
/// // Two distinct rows (1, 10) and (2, 20); rows 2, 1, 2.
/// let mut m = [0.0; 6];
/// write_rows_of_distinct(&[1.0, 2.0, 10.0, 20.0], 2, &[2, 1, 2], &mut m);
/// assert_eq!(m, [2.0, 1.0, 2.0, 20.0, 10.0, 20.0]);
/// ```
pub fn write_rows_of_distinct(distinct: &[f64], distinct_rows: usize, index: &[i32], out: &mut [f64]) {
    if distinct_rows == 0 || index.is_empty() {
        return;
    }
    for (column, out) in distinct.chunks_exact(distinct_rows).zip(out.chunks_exact_mut(index.len())) {
        for (value, &code) in out.iter_mut().zip(index) {
            *value = distinct_value(column, code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{is_r_na, Column};

    #[test]
    fn an_index_outside_the_distinct_rows_is_refused_and_reads_as_na() {
        let distinct = [1.0, 2.0];
        for bad in [0, 3, crate::NA_CODE] {
            let error = check_distinct_rows(&distinct, 2, &[1, bad]).unwrap_err();
            assert!(matches!(error, HnmError::GroupCodeOutOfRange { index: 1, .. }), "{error:?}");
            let mut out = [0.0; 2];
            write_rows_of_distinct(&distinct, 2, &[1, bad], &mut out);
            assert!(out[0] == 1.0 && is_r_na(out[1]));
            let column = Column::Indexed { values: &distinct, index: &[1, bad] };
            assert!(column.value(0) == Some(1.0) && column.value(1).is_none());
        }
        assert!(matches!(check_distinct_rows(&[1.0, 2.0, 3.0], 2, &[1]), Err(HnmError::LengthMismatch { .. })));
    }
}
