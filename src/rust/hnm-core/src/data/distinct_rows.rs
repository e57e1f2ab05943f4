//! A model matrix from the rows of its distinct ones: when the fixed part's variables are
//! factors with few combinations (InstEval's `service * dept`: 28 of them over 73,421 rows),
//! R's `model.matrix()` of one row per combination and each row's combination give the whole
//! matrix without R computing it row by row, nor allocating it on R's heap, whose collector
//! the 16 MB matrix set off at every fit.

use crate::error::{HnmError, Result};
use crate::numerics::interrupt::Checkpoint;
use crate::numerics::memory::with_capacity;

/// The matrix whose row i is row `index[i]` (1-based) of `distinct` (`distinct_rows` rows,
/// column-major, as R stores a matrix), column-major with `index.len()` rows.
///
/// # Errors
/// `GroupCodeOutOfRange` for an index outside 1..=`distinct_rows` (R's `NA` included);
/// `LengthMismatch` when `distinct`'s length is not a multiple of `distinct_rows`; `TooLarge`
/// when the matrix does not fit in memory; `Interrupted` when the user pressed Ctrl-C.
///
/// # Example
/// ```
/// use hnm_core::{rows_of_distinct, Checkpoint, Never};
/// // Two distinct rows (1, 10) and (2, 20); rows 2, 1, 2.
/// let m = rows_of_distinct(&[1.0, 2.0, 10.0, 20.0], 2, &[2, 1, 2], &mut Checkpoint::new(&Never)).unwrap();
/// assert_eq!(m, vec![2.0, 1.0, 2.0, 20.0, 10.0, 20.0]);
/// ```
pub fn rows_of_distinct(distinct: &[f64], distinct_rows: usize, index: &[i32], checkpoint: &mut Checkpoint<'_>) -> Result<Vec<f64>> {
    if distinct_rows == 0 || distinct.len() % distinct_rows != 0 {
        return Err(HnmError::LengthMismatch { first: "distinct", first_len: distinct.len(), second: "distinct_rows", second_len: distinct_rows });
    }
    let n = index.len();
    let mut rows = with_capacity::<usize>(&[n], "the rows' indices")?;
    for (i, &code) in index.iter().enumerate() {
        match usize::try_from(code) {
            Ok(row) if (1..=distinct_rows).contains(&row) => rows.push(row - 1),
            _ => return Err(HnmError::GroupCodeOutOfRange { argument: "index", index: i, code: code.into(), n_groups: distinct_rows }),
        }
    }
    let columns = distinct.len() / distinct_rows;
    let mut out = with_capacity::<f64>(&[n, columns], "the model matrix")?;
    for column in distinct.chunks_exact(distinct_rows) {
        out.extend(rows.iter().map(|&row| column[row]));
        checkpoint.check_work(n)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numerics::interrupt::Never;

    #[test]
    fn an_index_outside_the_distinct_rows_is_an_error() {
        let distinct = [1.0, 2.0];
        for bad in [0, 3, crate::NA_CODE] {
            let error = rows_of_distinct(&distinct, 2, &[1, bad], &mut Checkpoint::new(&Never)).unwrap_err();
            assert!(matches!(error, HnmError::GroupCodeOutOfRange { index: 1, .. }), "{error:?}");
        }
        assert!(matches!(rows_of_distinct(&[1.0, 2.0, 3.0], 2, &[1], &mut Checkpoint::new(&Never)), Err(HnmError::LengthMismatch { .. })));
    }
}
