//! The row pass of a model with several grouping factors: per cell (combination of the
//! factors' levels) n, the means of every variable and the co-moments of the pairs with a
//! *group variable* (a random-effects column), and the other pairs' co-moments pooled over
//! the cells: [`CrossProducts`]'s pooled layout.
//!
//! # Why pooled
//! The model reads the cells only through level and cell blocks of Z (S_fj = Z_fjᵀZ_fj,
//! B_fj = Z_fjᵀ[X y], Z_fᵀZ_g per cell) and F = [X y]ᵀ[X y]. Each is a sum over cells of
//! W_c[u, v] + n_c m_cu m_cv; only F reads a pair (u, v) of [X y] columns, and only its sum
//! over all cells, Σ_c W_c[u, v]. Keeping that block per cell, as the one-factor pass keeps
//! it per group, costs 8 (k(k+1)/2) bytes a cell: InstEval's `service*dept` (k = 29, 73,421
//! cells) took 255 MB, written, merged across threads and copied to R. Pooled it is one k × k
//! accumulator: the cells keep 1 + k + |pairs with a group variable| doubles (1 + k for
//! random intercepts alone), 17 MB there.
//!
//! # The update (Welford about the pilot)
//! With d = v − p − m_c before row v joins cell c, the one-factor pass adds (1 − 1/n_c) d dᵀ
//! to W_c; here it adds the same to the pooled P for every pair, and to the cell's state for
//! the pairs it keeps. Σ_c W_c = Σ_rows (1 − 1/n_c) d dᵀ, so P is exactly the sum of the
//! cells' co-moments, each term centred at its cell's running mean: the pilot shift keeps its
//! digits as in the one-factor pass. Two threads' parts merge by Chan et al.'s rule: per cell
//! as there, and P = P₁ + P₂ + Σ_{c in both} (n₁n₂/n) δ_c δ_cᵀ, the between term of the
//! cells both threads met.
//!
//! The rows go through the one-factor pass's row loop ([`RowPass::add_rows`], with this
//! layout's stride and update), its pilot and its fingerprint, so both passes read, drop,
//! refuse and hash the same rows at the same cost a row.

use crate::data::blocks::{
    add_packed_outer, chan_means, check_columns_sized, first_complete_row, vectorised, welford_means, with_codes, BlockPass, Column, GroupColumn, RowPass,
};
use crate::data::cross_products::{CrossProducts, Pooled, STATISTICS};
use crate::error::Result;
use crate::numerics::interrupt::{Checkpoint, Interrupt};
use crate::numerics::memory::{filled, with_capacity};
use crate::numerics::parallel::split_rows;

/// One part of the rows' pass: the cells' states (n, k means, the kept pairs' co-moments),
/// the pooled co-moments P (packed), the rows dropped and the fingerprint's sum.
struct PooledPart {
    state: Vec<f64>,
    total: Vec<f64>,
    dropped: usize,
    hash: u64,
}

impl CrossProducts {
    /// One pass over the rows of `columns` keyed by the cells `group` (1-based codes of
    /// `n_groups` cells), on up to `threads` threads (from [`PARALLEL_ROWS`](crate::data::blocks::PARALLEL_ROWS) rows on): the
    /// statistics in the pooled layout (module docs) with the group variables
    /// `group_variables` (0-based). Rows are read, dropped and hashed as by
    /// [`CrossProducts::from_columns_on_threads`], about the same pilot (the first complete
    /// row), and with every variable a group variable the statistics are that pass's (up to
    /// rounding), with the pooled sums beside them.
    ///
    /// # Errors
    /// As [`CrossProducts::from_columns_on_threads`], the statistics' size for
    /// `StatisticsTooLarge` being 8 m (1 + k + s) bytes for m cells and s pairs kept per
    /// cell; `InvalidArgument` for a group variable that is not a column.
    ///
    /// # Example
    /// ```
    /// use hnm_core::{Column, CrossProducts, GroupColumn, Never};
    /// // y and x in two cells; no group variable: per cell n and the means, W pooled.
    /// let (y, x) = ([1.0, 3.0, 10.0, 12.0], [0.0, 2.0, 1.0, 5.0]);
    /// let pass = CrossProducts::pooled_from_columns_on_threads(&[Column::Double(&y), Column::Double(&x)],
    ///     GroupColumn::Codes(&[1, 1, 2, 2]), 2, &[], 2, &Never).unwrap();
    /// assert_eq!(pass.stats.per_group(), 0);
    /// // Σ_c W_c[y, x] = (−1)(−1) + 1·1 + (−1)(−2) + 1·2 = 6.
    /// assert_eq!(pass.stats.pooled_comoment(1, 0), 6.0);
    /// ```
    pub fn pooled_from_columns_on_threads(
        columns: &[Column<'_>], group: GroupColumn<'_>, n_groups: usize, group_variables: &[usize], threads: usize, interrupt: &dyn Interrupt,
    ) -> Result<BlockPass> {
        Self::pooled_pass(columns, group, n_groups, group_variables, threads, interrupt, true)
    }

    /// [`CrossProducts::pooled_from_columns_on_threads`], its row loop compiled for AVX2 when
    /// `wide` (the same results: [`vectorised`]).
    fn pooled_pass(
        columns: &[Column<'_>], group: GroupColumn<'_>, n_groups: usize, group_variables: &[usize], threads: usize, interrupt: &dyn Interrupt, wide: bool,
    ) -> Result<BlockPass> {
        let k = columns.len();
        let layout = Pooled::new(k, group_variables, Vec::new())?;
        let stride = 1 + k + layout.pairs.len();
        let rows = group.len();
        check_columns_sized(columns, rows, n_groups, stride)?;
        let pilot = with_codes!(group, codes => first_complete_row(columns, codes)).unwrap_or_else(|| vec![0.0; k]);
        let run = |range: std::ops::Range<usize>, checkpoint: &mut Checkpoint<'_>| with_codes!(group.rows(range.clone()), codes => accumulate(columns, codes, range.start, &pilot, &layout, n_groups, wide, checkpoint));
        let merged = split_rows(rows, threads, interrupt, run, |first, second| first.merge(second, k, &layout))?;
        merged.finish(k, n_groups, pilot, layout)
    }
}

/// The rows `codes` (the first at index `first_row`) into fresh cell states and pooled
/// co-moments, about `pilot`; the row loop for AVX2 when `wide` ([`vectorised`]: InstEval's
/// 29 columns make 435 products a row, a third of the build).
#[allow(clippy::too_many_arguments)]
fn accumulate(
    columns: &[Column<'_>], codes: impl ExactSizeIterator<Item = i32>, first_row: usize, pilot: &[f64], layout: &Pooled, n_groups: usize, wide: bool,
    checkpoint: &mut Checkpoint<'_>,
) -> Result<PooledPart> {
    let k = columns.len();
    let stride = 1 + k + layout.pairs.len();
    let mut state = filled(&[n_groups, stride], 0.0, STATISTICS)?;
    let mut total = filled(&[k * (k + 1) / 2], 0.0, STATISTICS)?;
    let mut pass = RowPass::new(&mut state, pilot);
    // The row update inlined into each of the row loop's literal widths (a closure called
    // there cost a call and the loops of a runtime k: a third of the pass at 1e7 rows).
    vectorised(
        wide,
        #[inline(always)]
        || {
            pass.add_rows(
                columns,
                codes,
                first_row,
                n_groups,
                |_| stride,
                #[inline(always)]
                |cell, x| update(cell, x, &layout.pairs, &mut total),
                checkpoint,
            )
        },
    )?;
    let RowPass { dropped, hash, .. } = pass;
    Ok(PooledPart { state, total, dropped, hash: hash.value() })
}

/// Adds the row `x` (shifted by the pilot; overwritten by d) to a cell's state and to the
/// pooled co-moments `total` (module docs).
///
/// A cell's first row has weight 1 − 1/1 = 0: its products are ±0 (every value is finite),
/// and a sum that starts at +0 never becomes −0, so adding them leaves every sum's bits as
/// they are. They are skipped from 9 columns on: InstEval's 73,421 cells have one row each,
/// whose k(k + 1)/2 products (435 for its 29 columns) were most of the pass; for the literal
/// widths up to 8 the test folds away (at 3 columns, cells of 50 rows, it cost 2% of the
/// pass's instructions and saved nothing).
#[inline(always)]
fn update(state: &mut [f64], x: &mut [f64], pairs: &[(usize, usize)], total: &mut [f64]) {
    let (weight, kept) = welford_means(state, x);
    if x.len() > 8 && weight == 0.0 {
        return;
    }
    add_packed_outer(weight, x, total);
    for (w, &(a, b)) in kept.iter_mut().zip(pairs) {
        *w += weight * x[a] * x[b];
    }
}

impl PooledPart {
    /// Both parts' rows (Chan et al.'s merge, both about the same pilot; module docs).
    fn merge(mut self, other: PooledPart, k: usize, layout: &Pooled) -> PooledPart {
        let stride = 1 + k + layout.pairs.len();
        let mut delta = vec![0.0; k];
        for (mine, theirs) in self.state.chunks_exact_mut(stride).zip(other.state.chunks_exact(stride)) {
            let Some(weight) = chan_means(mine, theirs, &mut delta) else { continue };
            for (s, &(a, b)) in layout.pairs.iter().enumerate() {
                mine[1 + k + s] += theirs[1 + k + s] + weight * delta[a] * delta[b];
            }
            add_packed_outer(weight, &delta, &mut self.total);
        }
        for (t, o) in self.total.iter_mut().zip(&other.total) {
            *t += o;
        }
        self.dropped += other.dropped;
        self.hash = self.hash.wrapping_add(other.hash);
        self
    }

    /// The cells' states as [`CrossProducts`] in the pooled layout.
    ///
    /// # Errors
    /// `TooLarge` when they do not fit in memory beside the states.
    fn finish(self, k: usize, n_groups: usize, pilot: Vec<f64>, mut layout: Pooled) -> Result<BlockPass> {
        let kept = layout.pairs.len();
        let stride = 1 + k + kept;
        let mut n = with_capacity(&[n_groups], STATISTICS)?;
        let mut comoments = with_capacity(&[n_groups, kept], STATISTICS)?;
        // The means are moved down within the states, cell by cell (cell c's to c k, after its
        // count and co-moments are read: it never reaches a later cell's state, which starts at
        // (c + 1) stride ≥ (c + 1) k), where a fresh vector of them was as large as the data
        // for InstEval (a cell a row: 17 MB written to new pages).
        let mut means = self.state;
        for c in 0..n_groups {
            let start = c * stride;
            n.push(means[start]);
            comoments.extend_from_slice(&means[start + 1 + k..start + stride]);
            means.copy_within(start + 1..start + 1 + k, c * k);
        }
        means.truncate(n_groups * k);
        layout.total = self.total;
        let stats = CrossProducts { variables: k, pilot, n, means, comoments, pooled: Some(layout) };
        Ok(BlockPass { stats, dropped: self.dropped, fingerprint: self.hash })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::cells::NA_CODE;
    use crate::data::cross_products::packed;
    use crate::error::HnmError;
    use crate::numerics::interrupt::Never;
    use crate::NA_REAL;

    /// Rows over 3 variables in `cells` cells (some rows NA, an offset of 1e12 on the first).
    fn rows(count: usize, cells: i32) -> (Vec<f64>, Vec<f64>, Vec<i32>, Vec<i32>) {
        let y = (0..count).map(|i| if i % 997 == 5 { NA_REAL } else { 1e12 + ((i * 37) % 11) as f64 * 0.25 }).collect();
        let x = (0..count).map(|i| ((i * 13) % 7) as f64 - 0.5 * (i % 3) as f64).collect();
        let z = (0..count).map(|i| ((i * 7) % 5) as i32).collect();
        let codes = (0..count).map(|i| if i % 1009 == 3 { NA_CODE } else { ((i * 31) % cells as usize) as i32 + 1 }).collect();
        (y, x, z, codes)
    }

    #[test]
    fn pooled_statistics_are_the_full_passes_summed() {
        // Against the one-factor pass over the same rows: the same n, means, kept pairs per
        // cell, and pooled sums equal to Σ_c W_c; on one thread and on two (3e5 rows).
        for count in [5_000, 300_000] {
            let (y, x, z, codes) = rows(count, 40);
            let columns = [Column::Double(&y), Column::Double(&x), Column::Integer(&z)];
            let full = CrossProducts::from_columns_on_threads(&columns, GroupColumn::Codes(&codes), 40, 2, &Never).unwrap();
            for threads in [1, 2] {
                let pooled = CrossProducts::pooled_from_columns_on_threads(&columns, GroupColumn::Codes(&codes), 40, &[2], threads, &Never).unwrap();
                assert_eq!((pooled.dropped, pooled.fingerprint), (full.dropped, full.fingerprint));
                let (s, f) = (&pooled.stats, &full.stats);
                assert_eq!((s.n(), s.pilot(), s.per_group(), s.group_variables()), (f.n(), f.pilot(), 3, Some(&[2][..])));
                let close = |a: f64, b: f64| (a - b).abs() <= 1e-10 * b.abs().max(1.0);
                for j in 0..40 {
                    assert!(s.mean(j).iter().zip(f.mean(j)).all(|(&a, &b)| close(a, b)));
                    for (a, b) in [(2, 0), (2, 1), (2, 2)] {
                        assert!(close(s.comoment(j, a, b), f.comoment(j, a, b)));
                    }
                    assert_eq!((s.comoment(j, 0, 0), s.comoment(j, 1, 0)), (0.0, 0.0));
                }
                for a in 0..3 {
                    for b in 0..=a {
                        let sum: f64 = (0..40).map(|j| f.comoment(j, a, b)).sum();
                        let pooled_part = s.pooled_comoment(a, b) + (0..40).map(|j| s.comoment(j, a, b)).sum::<f64>();
                        assert!(close(pooled_part, sum), "{a} {b}: {pooled_part} {sum}");
                        assert!(close(s.pooled_totals().unwrap()[packed(a, b)], sum));
                    }
                }
                for a in 0..3 {
                    let (one, other) = (s.variable_summary(a), f.variable_summary(a));
                    assert!(one.0 == other.0 && close(one.1, other.1) && close(one.2, other.2));
                }
            }
        }
    }

    #[test]
    fn cells_of_one_row_add_nothing_to_the_pooled_sums_of_many_columns() {
        // 10 columns (the row loop's general width, where a cell's first row skips its
        // products) over 6,000 rows in 5,000 cells, most of one row: the pooled sums are the
        // full pass's co-moments summed over the groups, the means and counts its own.
        let (count, cells) = (6_000, 5_000);
        let (y, x, z, _) = rows(count, 1);
        let codes: Vec<i32> = (0..count).map(|i| (((i * 7919) % cells) + 1) as i32).collect();
        let extra: Vec<Vec<f64>> = (0..7).map(|c| (0..count).map(|i| (((i * (c + 5)) % 13) as f64 - 6.0) * 0.75).collect()).collect();
        let mut columns = vec![Column::Double(&y), Column::Double(&x), Column::Integer(&z)];
        columns.extend(extra.iter().map(|v| Column::Double(v)));
        let full = CrossProducts::from_columns_on_threads(&columns, GroupColumn::Codes(&codes), cells, 1, &Never).unwrap();
        let pooled = CrossProducts::pooled_from_columns_on_threads(&columns, GroupColumn::Codes(&codes), cells, &[], 1, &Never).unwrap();
        let (s, f) = (&pooled.stats, &full.stats);
        assert_eq!((s.n(), s.means(), s.pilot()), (f.n(), f.means(), f.pilot()));
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-10 * b.abs().max(1.0);
        for a in 0..10 {
            for b in 0..=a {
                let sum: f64 = (0..cells).map(|j| f.comoment(j, a, b)).sum();
                assert!(close(s.pooled_totals().unwrap()[packed(a, b)], sum), "{a} {b}");
            }
        }
    }

    #[test]
    fn the_pooled_sums_keep_the_digits_of_an_offset() {
        // Cells (1e12, 1e12 + 0.5) and (1e12 + 0.25, 1e12 + 0.75): W = 0.125 each, exactly.
        let y = [1e12, 1e12 + 0.25, 1e12 + 0.5, 1e12 + 0.75];
        let pass = CrossProducts::pooled_from_columns_on_threads(&[Column::Double(&y)], GroupColumn::Codes(&[1, 2, 1, 2]), 2, &[], 1, &Never).unwrap();
        assert_eq!(pass.stats.pooled_comoment(0, 0), 0.25);
        assert_eq!(pass.stats.variable_summary(0).2, 0.3125);
    }

    #[test]
    fn the_wide_row_loop_gives_the_portable_bits() {
        // 29 columns (InstEval's width, the row loop's general case) and 5 (a literal width),
        // one and two group variables, 3e5 rows on two threads: every statistic bit for bit
        // that of the loop compiled for the baseline.
        let count = 300_000;
        let (y, x, z, codes) = rows(count, 500);
        let extra: Vec<Vec<f64>> = (0..26).map(|c| (0..count).map(|i| (((i * (c + 3)) % 17) as f64 - 8.0) * 0.5f64.powi(c as i32 % 5)).collect()).collect();
        let mut wide_columns = vec![Column::Double(&y), Column::Double(&x), Column::Integer(&z)];
        wide_columns.extend(extra.iter().map(|v| Column::Double(v)));
        for (columns, group) in [(&wide_columns[..], &[2, 7][..]), (&wide_columns[..5], &[1][..])] {
            let pass = |wide| CrossProducts::pooled_pass(columns, GroupColumn::Codes(&codes), 500, group, 2, &Never, wide).unwrap();
            let (one, other) = (pass(true), pass(false));
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let (a, b) = (&one.stats, &other.stats);
            assert_eq!((one.dropped, one.fingerprint), (other.dropped, other.fingerprint));
            assert_eq!(bits(a.n()), bits(b.n()));
            assert_eq!(bits(a.means()), bits(b.means()));
            assert_eq!(bits(a.comoments()), bits(b.comoments()));
            assert_eq!(bits(a.pooled_totals().unwrap()), bits(b.pooled_totals().unwrap()));
        }
    }

    #[test]
    fn errors_are_the_one_factor_passes() {
        let y = [1.0, f64::INFINITY, 3.0];
        let error = CrossProducts::pooled_from_columns_on_threads(&[Column::Double(&y)], GroupColumn::Codes(&[1, 1, 1]), 1, &[], 1, &Never).unwrap_err();
        assert_eq!(error, HnmError::ColumnNotFinite { column: 0, row: 1 });
        let error = CrossProducts::pooled_from_columns_on_threads(&[Column::Double(&[1.0, 2.0])], GroupColumn::Codes(&[1, 3]), 2, &[], 1, &Never).unwrap_err();
        assert_eq!(error, HnmError::GroupCodeOutOfRange { argument: "g", index: 1, code: 3, n_groups: 2 });
        let error = CrossProducts::pooled_from_columns_on_threads(&[Column::Double(&[1.0])], GroupColumn::Codes(&[1]), 1, &[1], 1, &Never).unwrap_err();
        assert!(matches!(error, HnmError::InvalidArgument { .. }));
        // The size check reads the pooled layout: 300 columns, no group variable, 3e6 cells of
        // 10 rows take 8 · 3e6 · 301 bytes (7.2 GB, > 1 GiB and > 10 × the 24,000 bytes of rows).
        let zeros = vec![0.0; 10];
        let columns = vec![Column::Double(&zeros); 300];
        let error = CrossProducts::pooled_from_columns_on_threads(&columns, GroupColumn::Codes(&[1; 10]), 3_000_000, &[], 1, &Never).unwrap_err();
        assert_eq!(error, HnmError::StatisticsTooLarge { columns: 300, groups: 3_000_000, rows: 10, bytes: 8 * 3_000_000 * 301 });
        // and the full layout's 4000 cells that its check refuses pass (4000 · 301 · 8 bytes).
        assert!(check_columns_sized(&columns, 10, 4000, 301).is_ok());
    }
}
