//! The model's blocks from the groups' statistics: S_j = Z̃_jᵀZ̃_j, B_j = Z̃_jᵀ[X̃_j ỹ_j] and
//! F = Σ_j [X̃_j ỹ_j]ᵀ[X̃_j ỹ_j] from n_j, the means and the co-moments of the
//! [`crate::CrossProducts`], the rank check that drops X's dependent columns, and the
//! replacement of the response's column alone (a bootstrap replicate).

use super::structure::{check_structure, column_maps, Affine, ColumnMap};
use super::{next_revision, one_way_statistics, LinearMixedModel};
use crate::data::blocks::vectorised;
use crate::data::cross_products::CrossProducts;
use crate::error::{HnmError, Result};
use crate::numerics::blocked::DenseKernels;
use crate::numerics::interrupt::Checkpoint;
use crate::numerics::memory::filled;

/// Squared relative norm below which a fixed-effect column counts as a linear combination of
/// the columns before it (lme4's rank check drops columns whose QR residual norm is below
/// 1e-7 of their norm: 1e-14 on the squared scale, here with room for rounding).
pub(crate) const RANK_TOLERANCE: f64 = 1e-13;

/// One group's statistics as the design columns read them.
pub(crate) struct GroupMoments<'a> {
    stats: &'a CrossProducts,
    n: f64,
    means: &'a [f64],
    comoments: &'a [f64],
}

impl<'a> GroupMoments<'a> {
    #[inline]
    pub(crate) fn of(stats: &'a CrossProducts, j: usize) -> Self {
        let per_group = stats.per_group();
        GroupMoments { stats, n: stats.n()[j], means: stats.mean(j), comoments: &stats.comoments()[j * per_group..(j + 1) * per_group] }
    }

    /// The column's group mean m̃ = (v̄ − shift)/scale, or 1.
    pub(crate) fn mean(&self, c: &ColumnMap) -> f64 {
        c.variable.map_or(1.0, |v| (self.means[v] - c.shift) * c.inverse_scale)
    }

    /// Σ_i ũ ṽ = W̃_uv + n m̃_u m̃_v over the group's rows, given the columns' means; for a pair
    /// the pooled layout keeps only summed, its part kept per group, n m̃_u m̃_v, to which
    /// [`pooled_product`] adds the sum of the W̃_uv.
    pub(crate) fn product(&self, u: &ColumnMap, mean_u: f64, v: &ColumnMap, mean_v: f64) -> f64 {
        self.product_of(WithinPart::of(self.stats, u, v), mean_u, mean_v)
    }

    /// [`GroupMoments::product`] of a pair whose [`WithinPart`] is `within`.
    #[inline]
    pub(crate) fn product_of(&self, within: Option<WithinPart>, mean_u: f64, mean_v: f64) -> f64 {
        within.map_or(0.0, |w| self.within(w)) + self.n * mean_u * mean_v
    }

    /// W̃_uv of the pair whose [`WithinPart`] is `part`.
    #[inline]
    pub(crate) fn within(&self, part: WithinPart) -> f64 {
        self.comoments[part.slot] * part.inverse_scale_u * part.inverse_scale_v
    }
}

/// Where the within-group co-moment W̃_uv of two design columns sits among each group's
/// co-moments, and the columns' inverse scales: the same for every group, so a loop over the
/// groups finds it once (`None` for an intercept or a pair the pooled layout sums).
#[derive(Clone, Copy)]
pub(crate) struct WithinPart {
    slot: usize,
    inverse_scale_u: f64,
    inverse_scale_v: f64,
}

impl WithinPart {
    pub(crate) fn of(stats: &CrossProducts, u: &ColumnMap, v: &ColumnMap) -> Option<Self> {
        let (a, b) = (u.variable?, v.variable?);
        let slot = stats.slot(a, b)?;
        Some(WithinPart { slot, inverse_scale_u: u.inverse_scale, inverse_scale_v: v.inverse_scale })
    }
}

/// What Σ_j of [`GroupMoments::product`] leaves out of Σ_i ũ ṽ over all rows: the pooled
/// Σ_j W̃_uv of a pair the pooled layout does not keep per group, 0 otherwise.
pub(crate) fn pooled_product(stats: &CrossProducts, u: &ColumnMap, v: &ColumnMap) -> f64 {
    match (u.variable, v.variable) {
        (Some(a), Some(b)) => stats.pooled_comoment(a, b) * u.inverse_scale * v.inverse_scale,
        _ => 0.0,
    }
}

impl LinearMixedModel {
    /// The model for another response on the same design, in place: `stats` must be the
    /// statistics the model was built on except for the response's (its pilot, group means
    /// and co-moments), as a parametric bootstrap's replicate is. Only the response's column
    /// of each B_j = Z̃_jᵀ[X̃_j ỹ_j] and of F is recomputed, O(m (q + p)), where
    /// [`LinearMixedModel::new`] builds every block, O(m (q + p)²). The column maps stay the
    /// original's: the response's shift and scale remain an exact reparametrisation (module
    /// docs), so every fit equals that of the model built on `stats` up to rounding.
    ///
    /// # Errors
    /// `InvalidArgument` when `stats` has another number of variables or other sizes of the
    /// modelled groups (the design variables' statistics are not compared); `Unsupported` for a
    /// model with several grouping factors.
    pub fn replace_response(&mut self, stats: &CrossProducts) -> Result<()> {
        self.require_one_factor("a new response with several grouping factors (yet)")?;
        let same_groups = self.n.iter().zip(&self.group_index).all(|(&n, &j)| stats.n().get(j) == Some(&n));
        if check_structure(&self.structure, stats.variables()).is_err() || !same_groups {
            return Err(HnmError::InvalidArgument { argument: "stats", reason: "must have the design the model was built on" });
        }
        let one_way = one_way_statistics(stats, &self.structure, &self.group_index)?;
        let (q, p, p1) = (self.q, self.p, self.p + 1);
        // The response's map in the data's units, about the new statistics' pilot.
        let response = Affine { shift: self.response.raw_shift - stats.pilot()[self.structure.response], ..self.response };
        // Z's columns, then X's and y's.
        let columns = column_maps(self.random.iter().chain(&self.fixed).chain(std::iter::once(&response)));
        let y = columns[q + p];
        let mut f_column = vec![0.0; p1];
        for (i, &j) in self.group_index.iter().enumerate() {
            let group = GroupMoments::of(stats, j);
            let mean_y = group.mean(&y);
            let product = |column: &ColumnMap| group.product(column, group.mean(column), &y, mean_y);
            for (u, column) in columns[..q].iter().enumerate() {
                self.zxy[(i * q + u) * p1 + p] = product(column);
            }
            for (f, column) in f_column.iter_mut().zip(&columns[q..]) {
                *f += product(column);
            }
        }
        for (a, &v) in f_column.iter().enumerate() {
            self.xy[a * p1 + p] = v;
            self.xy[p * p1 + a] = v;
        }
        self.one_way = one_way;
        self.revision = next_revision();
        Ok(())
    }
}

/// Σ_j (columns)ᵀ(columns) over the groups, row-major (with the pooled layout's sums): per
/// group Σ_i ũ ṽ = W̃_uv + n m̃_u m̃_v as [`GroupMoments::product`] forms it, the W̃ of the
/// pairs the groups keep gathered first into a dense scratch (zeros elsewhere), so that the
/// loop over the pairs is one multiply-add each: F over InstEval's 73,421 cells and 29
/// columns is 32 million of them. Without such pairs, [`add_between_products`] forms the sums,
/// or from [`GATHERED_WORK`] multiply-adds and [`GATHERED_COLUMNS`] columns
/// [`gathered_between_products`] (the same products,
/// summed in another order). Compiled for AVX2 where the processor has it ([`vectorised`]:
/// the same sums).
///
/// # Errors
/// `TooLarge` when the blocks of [`gathered_between_products`] do not fit in memory.
pub(crate) fn symmetric_cross_products(stats: &CrossProducts, columns: &[Affine]) -> Result<Vec<f64>> {
    vectorised(
        true,
        #[inline(always)]
        || cross_products_of(stats, columns),
    )
}

/// [`symmetric_cross_products`] as the portable code computes it (the products of
/// [`gathered_between_products`] by the processor's micro-kernel).
#[inline(always)]
fn cross_products_of(stats: &CrossProducts, columns: &[Affine]) -> Result<Vec<f64>> {
    let c = columns.len();
    let maps = column_maps(columns);
    let mut out = vec![0.0; c * c];
    // (u, v) (v ≤ u), its slot among a group's co-moments and the two scales.
    let mut kept = Vec::new();
    for u in 0..c {
        for v in 0..=u {
            if let (Some(a), Some(b)) = (maps[u].variable, maps[v].variable) {
                if let Some(slot) = stats.slot(a, b) {
                    kept.push((u * c + v, slot, maps[u].inverse_scale, maps[v].inverse_scale));
                }
            }
        }
    }
    if kept.is_empty() && c >= GATHERED_COLUMNS && stats.groups().saturating_mul(c * (c + 1) / 2) >= GATHERED_WORK {
        gathered_between_products(stats, &maps, &mut out)?;
    } else if kept.is_empty() {
        add_between_products(stats, &maps, &mut out);
    } else {
        let (mut means, mut within) = (vec![0.0; c], vec![0.0; c * c]);
        for j in 0..stats.groups() {
            let group = GroupMoments::of(stats, j);
            for (m, map) in means.iter_mut().zip(&maps) {
                *m = group.mean(map);
            }
            for &(index, slot, scale_u, scale_v) in &kept {
                within[index] = group.comoments[slot] * scale_u * scale_v;
            }
            for u in 0..c {
                let n_mean = group.n * means[u];
                let row = u * c..u * c + u + 1;
                for ((o, w), m) in out[row.clone()].iter_mut().zip(&within[row]).zip(&means[..=u]) {
                    *o += w + n_mean * m;
                }
            }
        }
    }
    for u in 0..c {
        for v in 0..=u {
            out[u * c + v] += pooled_product(stats, &maps[u], &maps[v]);
        }
        for v in 0..u {
            out[v * c + u] = out[u * c + v];
        }
    }
    Ok(out)
}

/// The multiply-adds of [`add_between_products`]' sums (groups × c(c + 1)/2) from which
/// [`gathered_between_products`] forms them: below, a scalar loop's few milliseconds at most,
/// its sums in the groups' order (and equal bits whatever the processor).
const GATHERED_WORK: usize = 1 << 22;
/// The columns from which [`gathered_between_products`] forms the sums: fewer fill the
/// micro-kernel's tiles (up to 16 × 6) too sparsely to gain.
const GATHERED_COLUMNS: usize = 16;

/// [`add_between_products`]' sums Σ_j (n_j m̃_j)ᵤ m̃_jv (v ≤ u) as packed products
/// ([`DenseKernels::add_gathered_products`]): the groups' rows n_j m̃_j and m̃_j gathered by
/// blocks, their products summed per block by the SIMD micro-kernel of the dense core (for
/// InstEval's 73,421 cells and 29 columns about a fifth of the time of the scalar loop). The
/// sums differ from the scalar loop's only by rounding (a block's sum added at once rather
/// than group by group, products fused into their additions on FMA processors): the same on
/// every run of one machine, not bit for bit across instruction sets.
///
/// # Errors
/// `TooLarge` when the blocks do not fit in memory.
#[inline(always)]
fn gathered_between_products(stats: &CrossProducts, maps: &[ColumnMap], out: &mut [f64]) -> Result<()> {
    let c = maps.len();
    // C's lower triangle, column-major: (u, v) at u + v c.
    let mut lower = filled(&[c, c], 0.0, "the cross-products of the fixed effects")?;
    DenseKernels::add_gathered_products(c, stats.groups(), &mut lower, |first, weighted, means| {
        for (j, (weighted, means)) in (first..).zip(weighted.chunks_exact_mut(c).zip(means.chunks_exact_mut(c))) {
            let group = GroupMoments::of(stats, j);
            for ((w, m), map) in weighted.iter_mut().zip(means.iter_mut()).zip(maps) {
                *m = group.mean(map);
                *w = group.n * *m;
            }
        }
    })?;
    for u in 0..c {
        for v in 0..=u {
            out[u * c + v] += lower[u + v * c];
        }
    }
    Ok(())
}

/// [`symmetric_cross_products`]'s sums Σ_j n_j m̃_ju m̃_jv (v ≤ u, `out` row-major) when no pair
/// keeps a within-group part per group (the pooled layout of a model without random slopes:
/// InstEval's 73,421 cells and 29 columns). The groups go in blocks whose means stay in cache;
/// over a block each sum runs in registers, four columns v at a time, where the general loop
/// reads and writes every sum in memory for every group: the same sums, in the same order.
#[inline(always)]
fn add_between_products(stats: &CrossProducts, maps: &[ColumnMap], out: &mut [f64]) {
    const BLOCK: usize = 256;
    let c = maps.len();
    // The block's m̃_jv and n_j m̃_jv, group-major.
    let (mut means, mut weighted) = (vec![0.0; BLOCK * c], vec![0.0; BLOCK * c]);
    for first in (0..stats.groups()).step_by(BLOCK) {
        let block = first..(first + BLOCK).min(stats.groups());
        let len = block.len();
        for (i, j) in block.enumerate() {
            let group = GroupMoments::of(stats, j);
            for (v, map) in maps.iter().enumerate() {
                means[i * c + v] = group.mean(map);
                weighted[i * c + v] = group.n * means[i * c + v];
            }
        }
        let rows = || weighted.chunks_exact(c).zip(means.chunks_exact(c)).take(len);
        for u in 0..c {
            let sums = &mut out[u * c..u * c + u + 1];
            let mut v = 0;
            while v + 4 <= u + 1 {
                let mut local = [sums[v], sums[v + 1], sums[v + 2], sums[v + 3]];
                for (weighted, means) in rows() {
                    let (weight, means) = (weighted[u], &means[v..v + 4]);
                    for (s, m) in local.iter_mut().zip(means) {
                        *s += weight * m;
                    }
                }
                sums[v..v + 4].copy_from_slice(&local);
                v += 4;
            }
            for v in v..=u {
                let mut local = sums[v];
                for (weighted, means) in rows() {
                    local += weighted[u] * means[v];
                }
                sums[v] = local;
            }
        }
    }
}

/// A grouping factor as [`level_blocks`] reads it: its random-effects columns and, for the
/// levels of a model with several factors, (the level of each group, the number of levels);
/// None when its levels are the groups themselves.
pub(crate) type FactorColumns<'a> = (&'a [Affine], Option<(&'a [usize], usize)>);

/// A factor's blocks S_j and B_j of every level, level-major (from [`level_blocks`]).
pub(crate) type LevelBlocks = (Vec<f64>, Vec<f64>);

/// Each level's S_j = Z̃ᵀZ̃ (q × q) and B_j = Z̃ᵀ[X̃ ỹ] (q × (p + 1)), level-major, of each
/// factor of `factors` ([`FactorColumns`]): the groups' own, or the sums over each level's
/// groups (the cells of a model with several factors). One pass over the groups for all the
/// factors, each group's means of [X y] formed once (for InstEval's two factors and 29
/// columns of [X y], half the means of a pass per factor); each factor's sums are those of a
/// pass of its own. Compiled for AVX2 where the processor has it ([`vectorised`]: the same
/// sums). `checkpoint` is asked as the groups go ([`Checkpoint::check`], one call per group).
///
/// # Errors
/// `TooLarge` when the blocks do not fit in memory; `Interrupted` when `checkpoint` reports a
/// request.
pub(crate) fn level_blocks(
    stats: &CrossProducts, factors: &[FactorColumns<'_>], fixed_and_response: &[Affine], checkpoint: &mut Checkpoint<'_>,
) -> Result<Vec<LevelBlocks>> {
    vectorised(
        true,
        #[inline(always)]
        || level_blocks_of(stats, factors, fixed_and_response, checkpoint),
    )
}

/// One factor's part of [`level_blocks`]: its blocks and what each group's update reads.
struct FactorSums<'a> {
    levels: Option<(&'a [usize], usize)>,
    random: Vec<ColumnMap>,
    zz: Vec<f64>,
    zxy: Vec<f64>,
    /// The within-group parts of S's pairs (v ≤ u), in order.
    s_parts: Vec<Option<WithinPart>>,
    /// Per row u of B_j, the columns v whose W̃_uv the groups keep; the others' stay 0 in its
    /// scratch row (`within_b`), so that the loop over v is one multiply-add each (29 per cell
    /// for InstEval).
    b_kept: Vec<Vec<(usize, WithinPart)>>,
    mean_z: Vec<f64>,
    within_b: Vec<f64>,
}

/// [`level_blocks`] as the portable code computes them.
#[inline(always)]
fn level_blocks_of(
    stats: &CrossProducts, factors: &[FactorColumns<'_>], fixed_and_response: &[Affine], checkpoint: &mut Checkpoint<'_>,
) -> Result<Vec<LevelBlocks>> {
    let p1 = fixed_and_response.len();
    let others = column_maps(fixed_and_response);
    let within = |u: &ColumnMap, v: &ColumnMap| WithinPart::of(stats, u, v);
    let mut sums = Vec::with_capacity(factors.len());
    for &(random, levels) in factors {
        let q = random.len();
        let m = levels.map_or(stats.groups(), |(_, m)| m);
        let random = column_maps(random);
        sums.push(FactorSums {
            levels,
            zz: filled(&[m, q, q], 0.0, "the groups' blocks Z'Z")?,
            zxy: filled(&[m, q, p1], 0.0, "the groups' blocks Z'[X y]")?,
            s_parts: random.iter().enumerate().flat_map(|(u, zu)| random[..=u].iter().map(move |zv| (zu, zv))).map(|(u, v)| within(u, v)).collect(),
            b_kept: random.iter().map(|zu| others.iter().enumerate().filter_map(|(v, xv)| Some((v, within(zu, xv)?))).collect()).collect(),
            mean_z: vec![0.0; q],
            within_b: vec![0.0; q * p1],
            random,
        });
    }
    let mut mean_xy = vec![0.0; p1];
    for g in 0..stats.groups() {
        checkpoint.check()?;
        let group = GroupMoments::of(stats, g);
        for (m, map) in mean_xy.iter_mut().zip(&others) {
            *m = group.mean(map);
        }
        for factor in &mut sums {
            let q = factor.random.len();
            let j = factor.levels.map_or(g, |(of_group, _)| of_group[g]);
            let (s, b) = (&mut factor.zz[j * q * q..(j + 1) * q * q], &mut factor.zxy[j * q * p1..(j + 1) * q * p1]);
            for (m, map) in factor.mean_z.iter_mut().zip(&factor.random) {
                *m = group.mean(map);
            }
            let mean_z = &factor.mean_z;
            let mut s_part = factor.s_parts.iter();
            for u in 0..q {
                for v in 0..=u {
                    s[u * q + v] += group.product_of(*s_part.next().expect("a part per pair"), mean_z[u], mean_z[v]);
                    s[v * q + u] = s[u * q + v];
                }
                let within_row = &mut factor.within_b[u * p1..(u + 1) * p1];
                for &(v, part) in &factor.b_kept[u] {
                    within_row[v] = group.within(part);
                }
                let n_mean = group.n * mean_z[u];
                for ((b, w), m) in b[u * p1..(u + 1) * p1].iter_mut().zip(&*within_row).zip(&mean_xy) {
                    *b += w + n_mean * m;
                }
            }
        }
    }
    Ok(sums.into_iter().map(|f| (f.zz, f.zxy)).collect())
}

/// The columns of X (n × n cross-product `f`) kept in order: a column whose squared residual
/// norm after the kept columns before it is below [`RANK_TOLERANCE`] of its squared norm is
/// dropped, as lme4 drops the columns its pivoted QR places beyond the rank.
pub(crate) fn full_rank_columns(f: &[f64], n: usize) -> Vec<usize> {
    let mut kept: Vec<usize> = Vec::new();
    let mut l: Vec<Vec<f64>> = Vec::new();
    for c in 0..n {
        let norm = f[c * n + c];
        let mut row: Vec<f64> = kept.iter().map(|&k| f[c * n + k]).collect();
        for i in 0..row.len() {
            let s: f64 = (0..i).map(|t| l[i][t] * row[t]).sum();
            row[i] = (row[i] - s) / l[i][i];
        }
        let pivot = norm - row.iter().map(|v| v * v).sum::<f64>();
        if norm > 0.0 && pivot > RANK_TOLERANCE * norm {
            row.push(pivot.sqrt());
            l.push(row);
            kept.push(c);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::blocks::{Column, GroupColumn};
    use crate::model::lmm::structure::ColumnSummary;
    use crate::model::lmm::Term;
    use crate::numerics::interrupt::Never;

    fn bits(values: &[f64]) -> Vec<u64> {
        values.iter().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn the_gathered_cross_products_are_the_rows_sums() {
        // 20 variables in 24,000 cells of 60,000 rows, pooled without per-cell pairs (as
        // InstEval's service * dept): F from the packed products is Σ_i ũ ṽ over the rows,
        // summed here directly, to rounding.
        let (count, cells, k) = (60_000usize, 24_000usize, 20usize);
        let values: Vec<Vec<f64>> = (0..k)
            .map(|c| {
                (0..count).map(|i| (((i * (2 * c + 3) + i / 7) % 23) as f64 - 11.0) * 0.75f64.powi(c as i32 % 4) + if c == 1 { 1e6 } else { 0.0 }).collect()
            })
            .collect();
        let columns: Vec<Column<'_>> = values.iter().map(|v| Column::Double(v)).collect();
        let codes: Vec<i32> = (0..count).map(|i| ((i * 7919) % cells) as i32 + 1).collect();
        let pass = CrossProducts::pooled_from_columns_on_threads(&columns, GroupColumn::Codes(&codes), cells, &[], 1, &Never).unwrap();
        let summary = ColumnSummary::of(&pass.stats);
        let terms: Vec<Term> = std::iter::once(Term::Intercept).chain((1..k).map(Term::Variable)).chain(std::iter::once(Term::Variable(0))).collect();
        let fixed: Vec<Affine> = terms.iter().map(|&t| summary.affine(t, true)).collect();
        let f = symmetric_cross_products(&pass.stats, &fixed).unwrap();
        let w = fixed.len();
        let column = |a: &Affine, i: usize| match a.term {
            Term::Intercept => 1.0,
            // ((v − p) − shift)/scale, v − p exact (the pilot p is one of the values).
            Term::Variable(v) => ((values[v][i] - pass.stats.pilot()[v]) - a.shift) / a.scale,
        };
        for u in 0..w {
            for v in 0..w {
                let direct: f64 = (0..count).map(|i| column(&fixed[u], i) * column(&fixed[v], i)).sum();
                let scale = (f[u * w + u] * f[v * w + v]).sqrt();
                assert!((f[u * w + v] - direct).abs() <= 1e-12 * scale, "({u}, {v}): {} against {direct}", f[u * w + v]);
            }
        }
    }

    #[test]
    fn the_wide_sums_give_the_portable_bits() {
        // 13 variables (one offset by 1e6) in 600 cells of 100 levels, without and with pairs
        // kept per cell: F, the levels' blocks and the summaries bit for bit those of the code
        // compiled for the baseline.
        let count: usize = 20_000;
        let values: Vec<Vec<f64>> = (0..13)
            .map(|c| (0..count).map(|i| (((i * (2 * c + 3)) % 23) as f64 - 11.0) * 0.75f64.powi(c as i32 % 4) + if c == 0 { 1e6 } else { 0.0 }).collect())
            .collect();
        let columns: Vec<Column<'_>> = values.iter().map(|v| Column::Double(v)).collect();
        let codes: Vec<i32> = (0..count).map(|i| ((i * 7919) % 600) as i32 + 1).collect();
        let levels: Vec<usize> = (0..600).map(|c| c / 6).collect();
        for group in [&[][..], &[2, 5][..]] {
            let pass = CrossProducts::pooled_from_columns_on_threads(&columns, GroupColumn::Codes(&codes), 600, group, 1, &Never).unwrap();
            let stats = &pass.stats;
            let summary = ColumnSummary::of(stats);
            let fixed: Vec<Affine> = std::iter::once(Term::Intercept)
                .chain((1..13).map(Term::Variable))
                .chain(std::iter::once(Term::Variable(0)))
                .map(|t| summary.affine(t, true))
                .collect();
            assert_eq!(bits(&symmetric_cross_products(stats, &fixed).unwrap()), bits(&cross_products_of(stats, &fixed).unwrap()));
            let random: Vec<Affine> =
                std::iter::once(Term::Intercept).chain(group.iter().map(|&a| Term::Variable(a))).map(|t| summary.affine(t, false)).collect();
            let factors = [(&random[..], Some((&levels[..], 100)))];
            let (zz, zxy) = level_blocks(stats, &factors, &fixed, &mut Checkpoint::new(&Never)).unwrap().remove(0);
            let (zz_portable, zxy_portable) = level_blocks_of(stats, &factors, &fixed, &mut Checkpoint::new(&Never)).unwrap().remove(0);
            assert_eq!((bits(&zz), bits(&zxy)), (bits(&zz_portable), bits(&zxy_portable)));
            let (n, mean, total) = stats.variable_summaries();
            let (n_portable, mean_portable, total_portable) = stats.portable_summaries_of(&(0..13).collect::<Vec<_>>());
            assert_eq!((n.to_bits(), bits(&mean), bits(&total)), (n_portable.to_bits(), bits(&mean_portable), bits(&total_portable)));
        }
    }
}
