//! Several grouping factors, nested or crossed: the model's blocks beyond the first factor, and
//! the factorisation and gradient that couple them.
//!
//! # The factorisation (Bates et al. 2015, section 3; MixedModels.jl's `updateL!`)
//! The factors are ordered as lme4 orders them (by decreasing number of levels), so the
//! first has the most levels; its blocks stay block-diagonal in L, as with one factor:
//! L_j L_jᵀ = Λ₀ᵀS_jΛ₀ + I per level j. Everything after it, the other factors' levels and
//! [X y], forms a dense *core* K of order n_c = Σ_{f>0} m_f q_f + p + 1, holding
//! Λ_fᵀZ_fᵀZ_gΛ_g (+ I on the diagonal), Λ_fᵀZ_fᵀ[X y] and [X y]ᵀ[X y]. Level j of the first
//! factor couples to the core rows R_j of the levels it shares rows with and to [X y]: its
//! *front* W_j = L_j⁻¹Λ₀ᵀZ_jᵀ[Z_{R_j}Λ, X, y] (q₀ × w_j) is L's block below L_j, transposed,
//! and K − Σ_j W_jᵀW_j is factored densely (faer). Its leading n_c − p − 1 rows are L's
//! random-effects part; its trailing p + 1 rows are those of one factor's L_F, from which the
//! criteria are read as there. Nested factors give fronts with one core row per outer
//! factor; crossed ones fill the core, whose order is that of the later factors' levels.
//!
//! # The gradient
//! The formula of the one-factor model (module docs of [`crate::model::lmm`]) with the
//! per-level A_j⁻¹ replaced by the blocks of A⁻¹ on the pattern of ZᵀZ: with P = ZᵀZ,
//! ∂log|A|/∂Λ_f = 2 Σ_{i ∈ f} Σ_{l ∼ i} P_{il} Λ_l (A⁻¹)_{li}, where l runs over the levels
//! sharing rows with level i. Those blocks come from the selected inverse (Takahashi's
//! recurrences): the core's (A⁻¹)_cc = (L_c L_cᵀ)⁻¹ densely, then per level j of the first
//! factor, with V_j = W_{j,R}ᵀ L_j⁻¹ (W_{j,R} the front's random-effects columns),
//! (A⁻¹)_{R_j j} = −(A⁻¹)_{R_j R_j} V_j and (A⁻¹)_{jj} = A_j⁻¹ − V_jᵀ(A⁻¹)_{R_j j}.
//! The quadratic and REML terms need u = A⁻¹ΛᵀZᵀ(y − Xβ̂) and Û = A⁻¹ΛᵀZᵀX R_X⁻ᵀ, one
//! backward solve each through L (their forward halves are the fronts' and the core's
//! [X y] columns), and the products P Λ u, P Λ Û over the same blocks.

use super::statistics::{level_blocks, GroupMoments};
use super::structure::{check_structure, column_maps, theta_layout, to_user_map, Affine, ColumnMap, ColumnSummary, FactorTerms};
use super::{LinearMixedModel, LmmFit, RandomEffects, Structure, Term, Workspace};
use crate::data::cross_products::CrossProducts;
use crate::error::{HnmError, Result};
use crate::model::one_way::profiled_deviance::Criterion;
use crate::numerics::dense::{
    cholesky_in_place as small_cholesky_in_place, congruence, inverse_from_factor, lambda_transposed_times, solve_lower_scaled, solve_lower_transposed_scaled,
    times_lambda,
};
use crate::numerics::memory::{collected, copied, filled, with_capacity};
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::{cholesky_in_place, cholesky_in_place_scratch};
use faer::linalg::matmul::{matmul, triangular, triangular::BlockStructure};
use faer::linalg::triangular_inverse::invert_lower_triangular;
use faer::linalg::triangular_solve::{solve_lower_triangular_in_place, solve_upper_triangular_in_place};
use faer::{Accum, MatMut, MatRef, Par};

/// A grouping factor of a model with several, as its input: which level each group of the
/// statistics belongs to (the statistics' groups are then the *cells*, the combinations of
/// levels of all factors that occur), and its random-effects terms.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupingFactor {
    /// The 0-based level of each group (cell) of the statistics.
    pub level_of_group: Vec<usize>,
    /// Its number of levels (those without rows are left out of the model).
    pub levels: usize,
    /// Z's columns of this factor.
    pub random: Vec<Term>,
    /// Λ's blocks over them, as [`Structure::blocks`].
    pub blocks: Vec<usize>,
}

/// A factor after the first: its terms and its levels' blocks S_l = Z_lᵀZ_l, B_l = Z_lᵀ[X y].
#[derive(Debug, Clone)]
pub(crate) struct OtherFactor {
    pub(crate) q: usize,
    pub(crate) blocks: Vec<usize>,
    pub(crate) random: Vec<Affine>,
    pub(crate) to_user_random: Vec<f64>,
    pub(crate) theta_positions: Vec<(usize, usize)>,
    /// The modelled levels' indices among the factor's levels.
    pub(crate) level_index: Vec<usize>,
    pub(crate) n: Vec<f64>,
    pub(crate) zz: Vec<f64>,
    pub(crate) zxy: Vec<f64>,
    /// Its first row in the core.
    pub(crate) offset: usize,
}

impl OtherFactor {
    pub(crate) fn terms(&self) -> FactorTerms<'_> {
        FactorTerms { q: self.q, blocks: &self.blocks, random: &self.random, to_user_random: &self.to_user_random, theta_positions: &self.theta_positions }
    }

    fn levels(&self) -> usize {
        self.n.len()
    }
}

/// A block Z_aᵀZ_b between a level of a later factor (`row`: factor index among the others,
/// level) and a level `column` of the first factor (a front) or of an earlier later factor.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Coupling {
    pub(crate) row: (usize, usize),
    pub(crate) column: (usize, usize),
    /// Offset of the q_row × q_column block (row-major) in [`Several::values`].
    pub(crate) value: usize,
}

/// What a model with several grouping factors has beyond the first factor's blocks.
#[derive(Debug, Clone)]
pub(crate) struct Several {
    pub(crate) others: Vec<OtherFactor>,
    /// Σ_{f>0} m_f q_f: the core's random-effects rows.
    pub(crate) core_random: usize,
    /// The fronts' couplings of level j of the first factor: `fronts[front_start[j]..front_start[j + 1]]`,
    /// sorted by core row (`column` is (0, j)).
    pub(crate) front_start: Vec<usize>,
    pub(crate) fronts: Vec<Coupling>,
    /// The couplings between later factors (`row`'s factor after `column`'s).
    pub(crate) pairs: Vec<Coupling>,
    pub(crate) values: Vec<f64>,
    /// The core row of each column of each front (level j's: `front_rows[width_start[j]..width_start[j + 1]]`).
    pub(crate) width_start: Vec<usize>,
    pub(crate) front_rows: Vec<usize>,
    /// True when the core's random-effects part is block-diagonal: one later factor, in which
    /// each level of the first is nested (one coupling per front), so that the Schur updates
    /// never couple two of its levels.
    pub(crate) block_diagonal: bool,
}

/// Per-evaluation storage of a model with several factors.
#[derive(Debug, Clone)]
pub(crate) struct SeveralWorkspace {
    lambdas: Vec<Vec<f64>>,
    /// The core, n_c × n_c column-major (lower triangle), then its factor.
    core: Vec<f64>,
    /// The fronts W_j, q₀ × w_j row-major each, concatenated.
    fronts: Vec<f64>,
    /// The gradient's: u and Û, the right-hand sides e and Ĝ, ZᵀZΛ(u, Û) and Λ(u, Û)
    /// (all random effects × (1 + p)), L_c⁻¹ and (L_c L_cᵀ)⁻¹.
    solved: Vec<f64>,
    right: Vec<f64>,
    product: Vec<f64>,
    scaled: Vec<f64>,
    inverse_l: Vec<f64>,
    sigma_cc: Vec<f64>,
}

const MODEL: &str = "the blocks of the grouping factors";

impl Several {
    fn core_order(&self, p1: usize) -> usize {
        self.core_random + p1
    }

    fn core_row(&self, (factor, level): (usize, usize)) -> usize {
        let other = &self.others[factor];
        other.offset + level * other.q
    }

    pub(crate) fn try_clone(&self) -> Result<Self> {
        let mut others = Vec::with_capacity(self.others.len());
        for o in &self.others {
            others.push(OtherFactor {
                level_index: copied(&o.level_index, MODEL)?,
                n: copied(&o.n, MODEL)?,
                zz: copied(&o.zz, MODEL)?,
                zxy: copied(&o.zxy, MODEL)?,
                ..o.clone_terms()
            });
        }
        Ok(Several {
            others,
            core_random: self.core_random,
            front_start: copied(&self.front_start, MODEL)?,
            fronts: copied(&self.fronts, MODEL)?,
            pairs: copied(&self.pairs, MODEL)?,
            values: copied(&self.values, MODEL)?,
            width_start: copied(&self.width_start, MODEL)?,
            front_rows: copied(&self.front_rows, MODEL)?,
            block_diagonal: self.block_diagonal,
        })
    }

    pub(crate) fn workspace(&self, q0: usize, m0: usize, p1: usize) -> Result<SeveralWorkspace> {
        const WHAT: &str = "the dense block of the crossed grouping factors";
        let (n, nr) = (self.core_order(p1), self.core_random);
        let columns = [m0 * q0 + nr, p1];
        Ok(SeveralWorkspace {
            lambdas: self.others.iter().map(|o| vec![0.0; o.q * o.q]).collect(),
            core: filled(&[n, n], 0.0, WHAT)?,
            fronts: filled(&[q0, *self.width_start.last().unwrap_or(&0)], 0.0, WHAT)?,
            solved: filled(&columns, 0.0, MODEL)?,
            right: filled(&columns, 0.0, MODEL)?,
            product: filled(&columns, 0.0, MODEL)?,
            scaled: filled(&columns, 0.0, MODEL)?,
            inverse_l: filled(&[nr, nr], 0.0, WHAT)?,
            sigma_cc: filled(&[nr, nr], 0.0, WHAT)?,
        })
    }
}

impl OtherFactor {
    /// Its terms without its levels' blocks (filled by the caller).
    fn clone_terms(&self) -> OtherFactor {
        OtherFactor {
            q: self.q,
            blocks: self.blocks.clone(),
            random: self.random.clone(),
            to_user_random: self.to_user_random.clone(),
            theta_positions: self.theta_positions.clone(),
            level_index: Vec::new(),
            n: Vec::new(),
            zz: Vec::new(),
            zxy: Vec::new(),
            offset: self.offset,
        }
    }
}

/// The modelled levels of a factor: the 0-based modelled level of each kept cell, the
/// original index of each modelled level, and their sizes.
struct Levels {
    of_cell: Vec<usize>,
    index: Vec<usize>,
    n: Vec<f64>,
}

fn modelled_levels(factor: &GroupingFactor, kept_cells: &[usize], cell_n: &[f64]) -> Result<Levels> {
    let mut n = filled(&[factor.levels], 0.0, MODEL)?;
    for (&cell, &size) in kept_cells.iter().zip(cell_n) {
        n[factor.level_of_group[cell]] += size;
    }
    let mut renumbered = filled(&[factor.levels], usize::MAX, MODEL)?;
    let index = collected((0..factor.levels).filter(|&l| n[l] > 0.0), MODEL)?;
    for (i, &l) in index.iter().enumerate() {
        renumbered[l] = i;
    }
    let of_cell = collected(kept_cells.iter().map(|&c| renumbered[factor.level_of_group[c]]), MODEL)?;
    let n = collected(index.iter().map(|&l| n[l]), MODEL)?;
    Ok(Levels { of_cell, index, n })
}

/// The random-effects columns' maps of one factor: each block centred at its grand means when
/// it has an intercept (an exact reparametrisation, module docs of [`crate::model::lmm`]).
pub(crate) fn random_columns(columns: &ColumnSummary<'_>, random: &[Term], blocks: &[usize]) -> Vec<Affine> {
    let mut out = Vec::with_capacity(random.len());
    let mut start = 0;
    for &size in blocks {
        let block = &random[start..start + size];
        let centred = block.contains(&Term::Intercept);
        out.extend(block.iter().map(|&t| columns.affine(t, centred)));
        start += size;
    }
    out
}

/// Σ over the cells of the blocks Z_aᵀZ_b between the levels of two factors, one per pair of
/// levels that share a cell: `keys` holds (row level, column level, cell) for every cell,
/// `rows`/`columns` the two factors' column maps. Returns the distinct pairs, sorted, and their
/// blocks (q_a × q_b row-major each) appended to `values`.
fn coupling_blocks(
    stats: &CrossProducts, mut keys: Vec<(usize, usize, usize)>, rows: &[ColumnMap], columns: &[ColumnMap], values: &mut Vec<f64>,
) -> Result<Vec<(usize, usize, usize)>> {
    keys.sort_unstable();
    let (qa, qb) = (rows.len(), columns.len());
    let mut out: Vec<(usize, usize, usize)> = Vec::new();
    let (mut mean_a, mut mean_b) = (vec![0.0; qa], vec![0.0; qb]);
    for &(a, b, cell) in &keys {
        if out.last().is_none_or(|&(la, lb, _)| (la, lb) != (a, b)) {
            crate::numerics::memory::push(&mut out, (a, b, values.len()), MODEL)?;
            values.try_reserve(qa * qb).map_err(|_| HnmError::TooLarge { what: MODEL, bytes: 8 * (values.len() + qa * qb) as u128 })?;
            values.resize(values.len() + qa * qb, 0.0);
        }
        let offset = out.last().expect("pushed above").2;
        let group = GroupMoments::of(stats, cell);
        for (m, map) in mean_a.iter_mut().zip(rows) {
            *m = group.mean(map);
        }
        for (m, map) in mean_b.iter_mut().zip(columns) {
            *m = group.mean(map);
        }
        for u in 0..qa {
            for v in 0..qb {
                values[offset + u * qb + v] += group.product(&rows[u], mean_a[u], &columns[v], mean_b[v]);
            }
        }
    }
    Ok(out)
}

impl LinearMixedModel {
    /// The model with several grouping factors `factors` (at least two, in lme4's order: by
    /// decreasing number of levels) for the statistics `stats` of the cells, the combinations
    /// of their levels that occur (see [`GroupingFactor`]); `response` and `fixed` as in
    /// [`Structure`]. The first factor's blocks are the model's per-level blocks; the others'
    /// form the dense core (module docs of `factors`).
    ///
    /// # Errors
    /// As [`LinearMixedModel::new`], with `TooFewGroups` when a factor has fewer than two
    /// levels with rows and `TooManyRandomEffects` when N ≤ Σ_f m_f q_f; `InvalidArgument` when
    /// a factor's levels do not fit the statistics; `TooLarge` when the blocks or the dense core
    /// do not fit in memory.
    pub fn with_factors(stats: &CrossProducts, response: usize, fixed: Vec<Term>, factors: &[GroupingFactor]) -> Result<Self> {
        let bad = |reason| Err(HnmError::InvalidArgument { argument: "factors", reason });
        if factors.len() < 2 {
            return bad("must hold at least two grouping factors");
        }
        for f in factors {
            if f.level_of_group.len() != stats.groups() || f.level_of_group.iter().any(|&l| l >= f.levels) {
                return bad("must give a level of each group of the statistics");
            }
            check_structure(&Structure { response, fixed: Vec::new(), random: f.random.clone(), blocks: f.blocks.clone() }, stats.variables())?;
        }
        let structure = Structure { response, fixed, random: factors[0].random.clone(), blocks: factors[0].blocks.clone() };
        let (cells, kept_cells) = stats.nonempty()?;
        let levels: Vec<Levels> = factors.iter().map(|f| modelled_levels(f, &kept_cells, cells.n())).collect::<Result<_>>()?;
        let total_random: usize = levels.iter().zip(factors).map(|(l, f)| l.n.len() * f.random.len()).sum();
        if let Some(few) = levels.iter().find(|l| l.n.len() < 2) {
            return Err(HnmError::TooFewGroups { found: few.n.len() });
        }
        if cells.n_obs() <= total_random as f64 {
            return Err(HnmError::TooManyRandomEffects { observations: cells.n_obs(), random_effects: total_random as f64 });
        }
        let mut model = Self::from_levels(&cells, structure, Some((&levels[0].of_cell, levels[0].n.len())))?;
        model.group_index = copied(&levels[0].index, MODEL)?;
        let columns = ColumnSummary::of(&cells);
        let fixed_and_response: Vec<Affine> = model.fixed.iter().copied().chain(std::iter::once(model.response)).collect();
        let mut others = Vec::with_capacity(factors.len() - 1);
        let mut offset = 0;
        for (factor, level) in factors.iter().zip(&levels).skip(1) {
            let random = random_columns(&columns, &factor.random, &factor.blocks);
            let (zz, zxy) = level_blocks(&cells, &random, &fixed_and_response, Some((&level.of_cell, level.n.len())))?;
            let (theta_positions, lower) = theta_layout(&factor.blocks);
            model.lower.extend(lower);
            others.push(OtherFactor {
                q: random.len(),
                blocks: factor.blocks.clone(),
                to_user_random: to_user_map(&random, &factor.blocks),
                random,
                theta_positions,
                level_index: copied(&level.index, MODEL)?,
                n: copied(&level.n, MODEL)?,
                zz,
                zxy,
                offset,
            });
            offset += level.n.len() * factor.random.len();
        }
        let maps: Vec<Vec<ColumnMap>> = std::iter::once(column_maps(&model.random)).chain(others.iter().map(|o| column_maps(&o.random))).collect();
        let mut values = Vec::new();
        // The fronts' blocks Z_fᵀZ₀ by (level of f, level of the first factor), then sorted by
        // the first factor's level and core row.
        let mut fronts = Vec::new();
        for f in 0..others.len() {
            let keys = collected(levels[f + 1].of_cell.iter().zip(&levels[0].of_cell).enumerate().map(|(c, (&a, &b))| (a, b, c)), MODEL)?;
            for (l, j, value) in coupling_blocks(&cells, keys, &maps[f + 1], &maps[0], &mut values)? {
                crate::numerics::memory::push(&mut fronts, Coupling { row: (f, l), column: (0, j), value }, MODEL)?;
            }
        }
        fronts.sort_unstable_by_key(|c| (c.column.1, others[c.row.0].offset + c.row.1 * others[c.row.0].q));
        let mut pairs = Vec::new();
        for g in 1..others.len() {
            for f in 0..g {
                let keys = collected(levels[g + 1].of_cell.iter().zip(&levels[f + 1].of_cell).enumerate().map(|(c, (&a, &b))| (a, b, c)), MODEL)?;
                for (a, b, value) in coupling_blocks(&cells, keys, &maps[g + 1], &maps[f + 1], &mut values)? {
                    pairs.push(Coupling { row: (g, a), column: (f, b), value });
                }
            }
        }
        let m0 = model.n.len();
        let core_random = offset;
        let p1 = model.p + 1;
        let mut front_start = filled(&[m0 + 1], 0, MODEL)?;
        let mut width_start = filled(&[m0 + 1], 0, MODEL)?;
        let mut front_rows = Vec::new();
        for (k, coupling) in fronts.iter().enumerate() {
            front_start[coupling.column.1 + 1] = k + 1;
        }
        for j in 0..m0 {
            front_start[j + 1] = front_start[j + 1].max(front_start[j]);
            for coupling in &fronts[front_start[j]..front_start[j + 1]] {
                let other = &others[coupling.row.0];
                let row = other.offset + coupling.row.1 * other.q;
                front_rows.extend(row..row + other.q);
            }
            front_rows.extend(core_random..core_random + p1);
            width_start[j + 1] = front_rows.len();
        }
        let block_diagonal = others.len() == 1 && front_start.windows(2).all(|w| w[1] - w[0] <= 1);
        model.several = Some(Box::new(Several { others, core_random, front_start, fronts, pairs, values, width_start, front_rows, block_diagonal }));
        Ok(model)
    }

    /// The factorisation's part beyond the first factor's diagonal blocks (already in `ws`):
    /// the fronts, the core and its dense factor, leaving L_F's matrix in `ws.lf` as with one
    /// factor. Returns log|L_c| of the core's random-effects part.
    ///
    /// # Errors
    /// `Optimizer` when the core is not positive definite (only through rounding: A ⪰ I).
    pub(crate) fn factorize_core(&self, s: &Several, theta: &[f64], ws: &mut Workspace) -> Result<f64> {
        let (q0, p1) = (self.q, self.p + 1);
        let n = s.core_order(p1);
        let nr = s.core_random;
        let Workspace { l: ls, inverse_diagonal, lambda: lambda0, lf, several, .. } = ws;
        let sw = several.as_mut().expect("a workspace of a model with several factors");
        let mut start = self.theta_positions.len();
        for (other, lambda) in s.others.iter().zip(sw.lambdas.iter_mut()) {
            other.terms().fill_lambda(&theta[start..], lambda);
            start += other.theta_positions.len();
        }
        let core = &mut sw.core;
        core.fill(0.0);
        // The later factors' diagonal blocks Λᵀ S Λ + I and their [X y] rows Λᵀ B.
        for (other, lambda) in s.others.iter().zip(&sw.lambdas) {
            let q = other.q;
            let (mut t, mut a, mut b) = (vec![0.0; q * q], vec![0.0; q * q], vec![0.0; q * p1]);
            for l in 0..other.levels() {
                let o = other.offset + l * q;
                times_lambda(&other.zz[l * q * q..(l + 1) * q * q], lambda, q, &mut t);
                lambda_transposed_times(lambda, &t, q, q, &mut a);
                lambda_transposed_times(lambda, &other.zxy[l * q * p1..(l + 1) * q * p1], q, p1, &mut b);
                for c in 0..q {
                    for r in c..q {
                        core[(o + c) * n + o + r] = a[r * q + c] + if r == c { 1.0 } else { 0.0 };
                    }
                    for x in 0..p1 {
                        core[(o + c) * n + nr + x] = b[c * p1 + x];
                    }
                }
            }
        }
        // The couplings between later factors, Λ_gᵀ (Z_gᵀZ_f) Λ_f, below the diagonal.
        for pair in &s.pairs {
            let (g, f) = (&s.others[pair.row.0], &s.others[pair.column.0]);
            let block = coupled(&s.values[pair.value..pair.value + g.q * f.q], &sw.lambdas[pair.row.0], g.q, &sw.lambdas[pair.column.0], f.q);
            let (og, of) = (s.core_row(pair.row), s.core_row(pair.column));
            for r in 0..g.q {
                for c in 0..f.q {
                    core[(of + c) * n + og + r] = block[r * f.q + c];
                }
            }
        }
        for a in 0..p1 {
            for c in 0..=a {
                core[(nr + c) * n + nr + a] = self.xy[a * p1 + c];
            }
        }
        // The fronts W_j = L_j⁻¹Λ₀ᵀ[...] and the Schur complement K − Σ_j W_jᵀW_j.
        for j in 0..self.n.len() {
            let (first, last) = (s.width_start[j], s.width_start[j + 1]);
            let w = last - first;
            let rows = &s.front_rows[first..last];
            let front = &mut sw.fronts[q0 * first..q0 * last];
            let mut column = 0;
            for coupling in &s.fronts[s.front_start[j]..s.front_start[j + 1]] {
                let other = &s.others[coupling.row.0];
                // Λ₀ᵀ (Z_fᵀZ_0)ᵀ Λ_f: q₀ × q_f.
                let block = coupled_transposed(&s.values[coupling.value..coupling.value + other.q * q0], lambda0, q0, &sw.lambdas[coupling.row.0], other.q);
                for i in 0..q0 {
                    front[i * w + column..i * w + column + other.q].copy_from_slice(&block[i * other.q..(i + 1) * other.q]);
                }
                column += other.q;
            }
            let mut b = vec![0.0; q0 * p1];
            lambda_transposed_times(lambda0, &self.zxy[j * q0 * p1..(j + 1) * q0 * p1], q0, p1, &mut b);
            for i in 0..q0 {
                front[i * w + column..i * w + w].copy_from_slice(&b[i * p1..(i + 1) * p1]);
            }
            solve_lower_scaled(&ls[j * q0 * q0..(j + 1) * q0 * q0], &inverse_diagonal[j * q0..(j + 1) * q0], q0, front, w);
            for a in 0..w {
                let ra = rows[a];
                for (bcol, &rb) in rows[..=a].iter().enumerate() {
                    let product: f64 = (0..q0).map(|i| front[i * w + a] * front[i * w + bcol]).sum();
                    core[rb * n + ra] -= product;
                }
            }
        }
        if s.block_diagonal {
            Self::factor_diagonal_blocks(s.others[0].q, nr, n, core)?;
        }
        let mut whole = MatMut::from_column_major_slice_mut(core.as_mut_slice(), n, n);
        let (mut random, _, mut below, mut trailing) = whole.as_mut().split_at_mut(nr, nr);
        if !s.block_diagonal {
            let mut scratch = MemBuffer::new(cholesky_in_place_scratch::<f64>(nr, Par::Seq, Default::default()));
            if cholesky_in_place(random.as_mut(), Default::default(), Par::Seq, MemStack::new(&mut scratch), Default::default()).is_err() {
                return Err(HnmError::Optimizer("the crossed random effects' block lost positive definiteness".into()));
            }
            solve_lower_triangular_in_place(random.as_ref(), below.as_mut().transpose_mut(), Par::Seq);
        }
        // L_F's matrix: the trailing block less the [X y] rows' products.
        matmul(trailing.as_mut(), Accum::Add, below.as_ref(), below.as_ref().transpose(), -1.0, Par::Seq);
        for a in 0..p1 {
            for c in 0..=a {
                lf[a * p1 + c] = trailing[(a, c)];
            }
        }
        Ok((0..nr).map(|i| random[(i, i)].ln()).sum())
    }

    /// The core's random-effects part factored block by block when it is block-diagonal (one
    /// later factor, in which the first is nested: no fill between its levels), q × q blocks
    /// of the n × n column-major `core` with its `nr` random-effects rows first, and the [X y]
    /// rows below each block solved against it: O(levels q³) where the dense factorisation
    /// costs nr³/3.
    ///
    /// # Errors
    /// `Optimizer` when a block is not positive definite (only through rounding: A ⪰ I).
    fn factor_diagonal_blocks(q: usize, nr: usize, n: usize, core: &mut [f64]) -> Result<()> {
        let mut block = vec![0.0; q * q];
        for o in (0..nr).step_by(q) {
            for r in 0..q {
                for c in 0..=r {
                    block[r * q + c] = core[(o + c) * n + o + r];
                }
            }
            if !small_cholesky_in_place(&mut block, q) {
                return Err(HnmError::Optimizer("a nested factor's block lost positive definiteness".into()));
            }
            for r in 0..q {
                for c in 0..=r {
                    core[(o + c) * n + o + r] = block[r * q + c];
                }
            }
            // Each [X y] row x of the block's columns becomes x L⁻ᵀ: forward substitution.
            for row in nr..n {
                for c in 0..q {
                    let mut value = core[(o + c) * n + row];
                    for k in 0..c {
                        value -= block[c * q + k] * core[(o + k) * n + row];
                    }
                    core[(o + c) * n + row] = value / block[c * q + c];
                }
            }
        }
        Ok(())
    }

    /// The columns that combine [X y]: w = (−β, 1) for column 0 (u), and the columns of R_X⁻ᵀ
    /// for columns 1..=p (Û, REML), from `w` and `x_inverse` as `gradient_setup` left them.
    fn combined(values: &dyn Fn(usize) -> f64, k: usize, w: &[f64], x_inverse: &[f64], p: usize) -> f64 {
        if k == 0 {
            w.iter().enumerate().map(|(a, w)| values(a) * w).sum()
        } else {
            let c = k - 1;
            (0..=c).map(|a| values(a) * x_inverse[c * p + a]).sum()
        }
    }

    /// A⁻¹ΛᵀZᵀ[X y] times (w | R_X⁻ᵀ) into the workspace's `solved` (random effects × `rhs`,
    /// row-major): u = A⁻¹ΛᵀZᵀ(y − Xβ) in column 0 and, with `rhs` = 1 + p, Û in the others.
    /// The forward halves are the fronts' and the core's [X y] columns of L; then one backward
    /// solve through Lᵀ, the core first.
    fn solve_modes(&self, s: &Several, rhs: usize, ws: &mut Workspace) {
        let (q0, p, p1, m0) = (self.q, self.p, self.p + 1, self.n.len());
        let (nr, n) = (s.core_random, s.core_order(p1));
        let first_rows = m0 * q0;
        let Workspace { l: ls, inverse_diagonal, w, x_inverse, several, .. } = ws;
        let sw = several.as_mut().expect("a workspace of a model with several factors");
        let solved = &mut sw.solved[..(first_rows + nr) * rhs];
        let core = MatRef::from_column_major_slice(sw.core.as_slice(), n, n);
        let (random, _, below, _) = core.split_at(nr, nr);
        let combine = |values: &dyn Fn(usize) -> f64, k: usize| Self::combined(values, k, w, x_inverse, p);
        for j in 0..m0 {
            let (first, last) = (s.width_start[j], s.width_start[j + 1]);
            let wj = last - first;
            let front = &sw.fronts[q0 * first..q0 * last];
            for i in 0..q0 {
                for k in 0..rhs {
                    solved[(j * q0 + i) * rhs + k] = combine(&|a| front[i * wj + wj - p1 + a], k);
                }
            }
        }
        for i in 0..nr {
            for k in 0..rhs {
                solved[(first_rows + i) * rhs + k] = combine(&|a| below[(a, i)], k);
            }
        }
        solve_upper_triangular_in_place(random.transpose(), MatMut::from_row_major_slice_mut(&mut solved[first_rows * rhs..], nr, rhs), Par::Seq);
        let (first_part, core_part) = solved.split_at_mut(first_rows * rhs);
        for j in 0..m0 {
            let (first, last) = (s.width_start[j], s.width_start[j + 1]);
            let wj = last - first;
            let front = &sw.fronts[q0 * first..q0 * last];
            let rows = &s.front_rows[first..last - p1];
            let mine = &mut first_part[j * q0 * rhs..(j + 1) * q0 * rhs];
            for i in 0..q0 {
                for (a, &row) in rows.iter().enumerate() {
                    for k in 0..rhs {
                        mine[i * rhs + k] -= front[i * wj + a] * core_part[row * rhs + k];
                    }
                }
            }
            solve_lower_transposed_scaled(&ls[j * q0 * q0..(j + 1) * q0 * q0], &inverse_diagonal[j * q0..(j + 1) * q0], q0, mine, rhs);
        }
    }

    /// The core's block of the selected inverse, (A⁻¹)_cc = (L_c L_cᵀ)⁻¹, its lower triangle
    /// into the workspace's `sigma_cc` (column-major) as faer's `llt::inverse` forms it: the
    /// triangular inverse, then a triangular product (2n³/3 flops in all).
    fn core_inverse(&self, s: &Several, ws: &mut Workspace) {
        let (nr, n) = (s.core_random, s.core_order(self.p + 1));
        let sw = ws.several.as_mut().expect("a workspace of a model with several factors");
        if s.block_diagonal {
            // Block by block; the entries between blocks stay 0 as allocated.
            let q = s.others[0].q;
            let (mut l, mut inverse) = (vec![0.0; q * q], vec![0.0; q * q]);
            for o in (0..nr).step_by(q) {
                for r in 0..q {
                    for c in 0..q {
                        l[r * q + c] = if c <= r { sw.core[(o + c) * n + o + r] } else { 0.0 };
                    }
                }
                let diagonal: Vec<f64> = (0..q).map(|i| 1.0 / l[i * q + i]).collect();
                inverse_from_factor(&l, &diagonal, q, &mut inverse);
                for r in 0..q {
                    for c in 0..=r {
                        sw.sigma_cc[(o + c) * nr + o + r] = inverse[r * q + c];
                    }
                }
            }
            return;
        }
        let core = MatRef::from_column_major_slice(sw.core.as_slice(), n, n);
        let random = core.submatrix(0, 0, nr, nr);
        let mut inverse_l = MatMut::from_column_major_slice_mut(sw.inverse_l.as_mut_slice(), nr, nr);
        invert_lower_triangular(inverse_l.as_mut(), random, Par::Seq);
        triangular::matmul(
            MatMut::from_column_major_slice_mut(sw.sigma_cc.as_mut_slice(), nr, nr),
            BlockStructure::TriangularLower,
            Accum::Replace,
            inverse_l.as_ref().transpose(),
            BlockStructure::TriangularUpper,
            inverse_l.as_ref(),
            BlockStructure::TriangularLower,
            1.0,
            Par::Seq,
        );
    }

    /// The selected inverse at level j of the first factor (module docs): (A⁻¹)_{R_j j} into
    /// `sigma_rj` (r × q₀) and (A⁻¹)_jj into `a_inverse` (q₀ × q₀), given the core's block
    /// `sigma_cc` (any order of its arguments).
    #[allow(clippy::too_many_arguments)]
    fn first_level_inverse(
        &self, s: &Several, j: usize, ws: &Workspace, fronts: &[f64], sigma_cc: &dyn Fn(usize, usize) -> f64, sigma_rj: &mut Vec<f64>, a_inverse: &mut [f64],
    ) {
        let (q0, p1) = (self.q, self.p + 1);
        let (first, last) = (s.width_start[j], s.width_start[j + 1]);
        let wj = last - first;
        let r = wj - p1;
        let front = &fronts[q0 * first..q0 * last];
        let rows = &s.front_rows[first..last - p1];
        let (l, inverse) = (&ws.l[j * q0 * q0..(j + 1) * q0 * q0], &ws.inverse_diagonal[j * q0..(j + 1) * q0]);
        // Vⱼᵀ = L_j⁻ᵀ W_{j,R} (q₀ × r).
        let mut vt = vec![0.0; q0 * r];
        for i in 0..q0 {
            vt[i * r..(i + 1) * r].copy_from_slice(&front[i * wj..i * wj + r]);
        }
        solve_lower_transposed_scaled(l, inverse, q0, &mut vt, r);
        // (A⁻¹)_{R j} = −Σ_RR V_j (r × q₀) and (A⁻¹)_jj = A_j⁻¹ − V_jᵀ (A⁻¹)_{R j}.
        sigma_rj.clear();
        sigma_rj.resize(r * q0, 0.0);
        for a in 0..r {
            for b in 0..r {
                let x = sigma_cc(rows[a], rows[b]);
                for i in 0..q0 {
                    sigma_rj[a * q0 + i] -= x * vt[i * r + b];
                }
            }
        }
        inverse_from_factor(l, inverse, q0, a_inverse);
        for i in 0..q0 {
            for k in 0..q0 {
                a_inverse[i * q0 + k] -= (0..r).map(|a| vt[i * r + a] * sigma_rj[a * q0 + k]).sum::<f64>();
            }
        }
    }

    /// The gradient of a model with several factors (see [`LinearMixedModel::gradient`]), from
    /// the factorisation in `ws` and w = (−β, 1) (and R_X⁻¹ for REML) set up there.
    pub(crate) fn gradient_several(&self, s: &Several, reml: bool, two_over_sigma2: f64, ws: &mut Workspace) -> Vec<f64> {
        let (q0, p, p1, m0) = (self.q, self.p, self.p + 1, self.n.len());
        let nr = s.core_random;
        let first_rows = m0 * q0;
        let total = first_rows + nr;
        let rhs = if reml { 1 + p } else { 1 };
        self.solve_modes(s, rhs, ws);
        self.core_inverse(s, ws);
        let mut sw = ws.several.take().expect("a workspace of a model with several factors");
        let (w, x_inverse) = (&ws.w, &ws.x_inverse);
        let combine = |values: &dyn Fn(usize) -> f64, k: usize| Self::combined(values, k, w, x_inverse, p);
        let SeveralWorkspace { lambdas: other_lambdas, fronts, solved, right: e, product, scaled, sigma_cc, .. } = &mut sw;
        let (solved, e, product) = (&solved[..total * rhs], &mut e[..total * rhs], &mut product[..total * rhs]);
        // e = Zᵀ(y − Xβ̂) and Ĝ = ZᵀX R_X⁻ᵀ per level: the right-hand sides before ΛᵀL⁻¹.
        for j in 0..m0 {
            for i in 0..q0 {
                let b = &self.zxy[(j * q0 + i) * p1..(j * q0 + i + 1) * p1];
                for k in 0..rhs {
                    e[(j * q0 + i) * rhs + k] = combine(&|a| b[a], k);
                }
            }
        }
        for other in &s.others {
            for l in 0..other.levels() {
                for i in 0..other.q {
                    let b = &other.zxy[(l * other.q + i) * p1..(l * other.q + i + 1) * p1];
                    for k in 0..rhs {
                        e[(first_rows + other.offset + l * other.q + i) * rhs + k] = combine(&|a| b[a], k);
                    }
                }
            }
        }
        // v = e − ZᵀZΛ(solved) for every column.
        let lambdas: Vec<&[f64]> = std::iter::once(&ws.lambda[..]).chain(other_lambdas.iter().map(Vec::as_slice)).collect();
        self.times_zz_lambda(s, &lambdas, solved, rhs, &mut scaled[..total * rhs], product);
        let lower = MatRef::from_column_major_slice(sigma_cc.as_slice(), nr, nr);
        let sigma_cc = |a: usize, b: usize| if a >= b { lower[(a, b)] } else { lower[(b, a)] };
        let mut gradients: Vec<Vec<f64>> = lambdas.iter().enumerate().map(|(f, _)| vec![0.0; self.factor_q(s, f).pow(2)]).collect();
        let mut a_inverse = vec![0.0; q0 * q0];
        let mut sigma_rj = Vec::new();
        for j in 0..m0 {
            self.first_level_inverse(s, j, ws, fronts, &sigma_cc, &mut sigma_rj, &mut a_inverse);
            let t = &ws.ts[j * q0 * q0..(j + 1) * q0 * q0];
            add_product(&mut gradients[0], 2.0, t, &a_inverse, q0, q0, q0);
            let mut column = 0;
            for coupling in &s.fronts[s.front_start[j]..s.front_start[j + 1]] {
                let f = coupling.row.0;
                let qf = s.others[f].q;
                let c = &s.values[coupling.value..coupling.value + qf * q0];
                let zk = &sigma_rj[column * q0..(column + qf) * q0];
                // G₀ += 2 Cᵀ Λ_f Z_k and G_f += 2 C Λ₀ Z_kᵀ, with C = Z_fᵀZ₀ and Z_k = (A⁻¹)_{(f,l) j}.
                let mut c_lambda = vec![0.0; q0 * qf];
                transposed_times(c, qf, q0, lambdas[f + 1], qf, &mut c_lambda);
                add_product(&mut gradients[0], 2.0, &c_lambda, zk, q0, qf, q0);
                let mut c_lambda0 = vec![0.0; qf * q0];
                crate::numerics::dense::multiply(c, lambdas[0], qf, q0, q0, &mut c_lambda0);
                add_product_transposed(&mut gradients[f + 1], 2.0, &c_lambda0, zk, qf, q0, qf);
                column += qf;
            }
        }
        for (f, other) in s.others.iter().enumerate() {
            let q = other.q;
            let mut t = vec![0.0; q * q];
            let mut block = vec![0.0; q * q];
            for l in 0..other.levels() {
                let o = other.offset + l * q;
                times_lambda(&other.zz[l * q * q..(l + 1) * q * q], lambdas[f + 1], q, &mut t);
                for a in 0..q {
                    for b in 0..q {
                        block[a * q + b] = sigma_cc(o + a, o + b);
                    }
                }
                add_product(&mut gradients[f + 1], 2.0, &t, &block, q, q, q);
            }
        }
        for pair in &s.pairs {
            let (g, f) = (pair.row.0, pair.column.0);
            let (qg, qf) = (s.others[g].q, s.others[f].q);
            let (og, of) = (s.core_row(pair.row), s.core_row(pair.column));
            let c = &s.values[pair.value..pair.value + qg * qf];
            // G_g += 2 C Λ_f Σ_{f g} and G_f += 2 Cᵀ Λ_g Σ_{g f}.
            let mut c_lambda = vec![0.0; qg * qf];
            crate::numerics::dense::multiply(c, lambdas[f + 1], qg, qf, qf, &mut c_lambda);
            let sigma_fg: Vec<f64> = (0..qf).flat_map(|a| (0..qg).map(move |b| (a, b))).map(|(a, b)| sigma_cc(of + a, og + b)).collect();
            add_product(&mut gradients[g + 1], 2.0, &c_lambda, &sigma_fg, qg, qf, qg);
            let mut ct_lambda = vec![0.0; qf * qg];
            transposed_times(c, qg, qf, lambdas[g + 1], qg, &mut ct_lambda);
            let sigma_gf: Vec<f64> = (0..qg).flat_map(|a| (0..qf).map(move |b| (a, b))).map(|(a, b)| sigma_cc(og + a, of + b)).collect();
            add_product(&mut gradients[f + 1], 2.0, &ct_lambda, &sigma_gf, qf, qg, qf);
        }
        // The quadratic term −(2/σ̂²) v uᵀ and REML's −2 (Ĝ − ZᵀZΛÛ) Ûᵀ, level by level.
        for (f, gradient) in gradients.iter_mut().enumerate() {
            let q = self.factor_q(s, f);
            let (start, levels) = if f == 0 { (0, m0) } else { (first_rows + s.others[f - 1].offset, s.others[f - 1].levels()) };
            for l in 0..levels {
                let at = |i: usize, k: usize| (start + l * q + i) * rhs + k;
                for r in 0..q {
                    for c in 0..q {
                        let v = e[at(r, 0)] - product[at(r, 0)];
                        let mut value = two_over_sigma2 * v * solved[at(c, 0)];
                        for k in 1..rhs {
                            value += 2.0 * (e[at(r, k)] - product[at(r, k)]) * solved[at(c, k)];
                        }
                        gradient[r * q + c] -= value;
                    }
                }
            }
        }
        ws.several = Some(sw);
        self.factor_terms().iter().zip(&gradients).flat_map(|((terms, _), g)| terms.theta_positions.iter().map(move |&(r, c)| g[r * terms.q + c])).collect()
    }

    /// The conditional modes and covariances of each grouping factor's random effects at
    /// `fit`, in the data's units, in θ's order of the factors (see
    /// [`LinearMixedModel::random_effects`] for one factor): b̂ = t_y M_Z Λ u and
    /// Var(b | y) = σ̂² M_ZΛ (A⁻¹)_ii ΛᵀM_Zᵀ, with (A⁻¹)_ii from the selected inverse.
    ///
    /// # Errors
    /// The errors of [`LinearMixedModel::deviance`] at the fit's θ; `TooLarge` when the
    /// workspace or the effects do not fit in memory.
    pub fn random_effects_by_factor(&self, fit: &LmmFit) -> Result<Vec<RandomEffects>> {
        let Some(s) = &self.several else { return Ok(vec![self.random_effects(fit)?]) };
        let mut ws = self.workspace()?;
        let factor = self.factorize(&fit.internal_theta, &mut ws)?;
        let ty = self.response.scale;
        let sigma2 = factor.pwrss / self.divisor(fit.criterion) * ty * ty;
        let beta = self.internal_beta(&ws);
        self.gradient_setup(Criterion::Ml, &beta, &mut ws);
        self.solve_modes(s, 1, &mut ws);
        self.core_inverse(s, &mut ws);
        let sw = ws.several.take().expect("a workspace of a model with several factors");
        let nr = s.core_random;
        let lower = MatRef::from_column_major_slice(sw.sigma_cc.as_slice(), nr, nr);
        let sigma_cc = |a: usize, b: usize| if a >= b { lower[(a, b)] } else { lower[(b, a)] };
        let first_rows = self.n.len() * self.q;
        let mut out = Vec::with_capacity(s.others.len() + 1);
        for (f, (terms, range)) in self.factor_terms().into_iter().enumerate() {
            let q = terms.q;
            let mut lambda = vec![0.0; q * q];
            terms.fill_lambda(&fit.internal_theta[range], &mut lambda);
            let mut map = vec![0.0; q * q];
            crate::numerics::dense::multiply(terms.to_user_random, &lambda, q, q, q, &mut map);
            let (offset, levels) = if f == 0 { (0, self.n.len()) } else { (first_rows + s.others[f - 1].offset, s.others[f - 1].levels()) };
            let mut modes = with_capacity(&[levels, q], "the conditional modes")?;
            let mut conditional_covariances = with_capacity(&[levels, q, q], "the conditional covariances")?;
            let (mut a_inverse, mut sigma_rj) = (vec![0.0; q * q], Vec::new());
            for l in 0..levels {
                let u = &sw.solved[offset + l * q..offset + (l + 1) * q];
                modes.extend((0..q).map(|r| ty * (0..q).map(|k| map[r * q + k] * u[k]).sum::<f64>()));
                if f == 0 {
                    self.first_level_inverse(s, l, &ws, &sw.fronts, &sigma_cc, &mut sigma_rj, &mut a_inverse);
                } else {
                    let o = s.others[f - 1].offset + l * q;
                    for a in 0..q {
                        for b in 0..q {
                            a_inverse[a * q + b] = sigma_cc(o + a, o + b);
                        }
                    }
                }
                conditional_covariances.extend(congruence(&map, &a_inverse, q).iter().map(|v| v * sigma2));
            }
            out.push(RandomEffects { modes, conditional_covariances });
        }
        Ok(out)
    }

    fn factor_q(&self, s: &Several, f: usize) -> usize {
        if f == 0 {
            self.q
        } else {
            s.others[f - 1].q
        }
    }

    /// ZᵀZ Λ X for X with `rhs` columns over all random effects (row-major, the first
    /// factor's levels then the core's), over the blocks of ZᵀZ: the levels' own, the fronts'
    /// and the pairs'.
    fn times_zz_lambda(&self, s: &Several, lambdas: &[&[f64]], x: &[f64], rhs: usize, lx: &mut [f64], out: &mut [f64]) {
        let (q0, m0) = (self.q, self.n.len());
        let first_rows = m0 * q0;
        // Λ X, block by block.
        let start_of = |f: usize, l: usize| if f == 0 { l * q0 } else { first_rows + s.others[f - 1].offset + l * s.others[f - 1].q };
        let apply_lambda = |lambda: &[f64], q: usize, from: &[f64], to: &mut [f64]| {
            for r in 0..q {
                for k in 0..rhs {
                    to[r * rhs + k] = (0..=r).map(|c| lambda[r * q + c] * from[c * rhs + k]).sum();
                }
            }
        };
        for l in 0..m0 {
            let range = l * q0 * rhs..(l + 1) * q0 * rhs;
            apply_lambda(lambdas[0], q0, &x[range.clone()], &mut lx[range]);
        }
        for (f, other) in s.others.iter().enumerate() {
            for l in 0..other.levels() {
                let start = start_of(f + 1, l) * rhs;
                let range = start..start + other.q * rhs;
                apply_lambda(lambdas[f + 1], other.q, &x[range.clone()], &mut lx[range]);
            }
        }
        let lx = &*lx;
        out.fill(0.0);
        // out[a-block] += C · lx[b-block] for a q_a × q_b block C.
        let add = |out: &mut [f64], c: &[f64], qa: usize, qb: usize, a: usize, b: usize, transposed: bool| {
            for r in 0..qa {
                for k in 0..rhs {
                    let value: f64 = (0..qb).map(|t| if transposed { c[t * qa + r] } else { c[r * qb + t] } * lx[(b + t) * rhs + k]).sum();
                    out[(a + r) * rhs + k] += value;
                }
            }
        };
        for l in 0..m0 {
            add(out, &self.zz[l * q0 * q0..(l + 1) * q0 * q0], q0, q0, l * q0, l * q0, false);
        }
        for (f, other) in s.others.iter().enumerate() {
            let q = other.q;
            for l in 0..other.levels() {
                let at = start_of(f + 1, l);
                add(out, &other.zz[l * q * q..(l + 1) * q * q], q, q, at, at, false);
            }
        }
        for coupling in &s.fronts {
            let (f, l) = coupling.row;
            let qf = s.others[f].q;
            let c = &s.values[coupling.value..coupling.value + qf * q0];
            let (row, column) = (start_of(f + 1, l), start_of(0, coupling.column.1));
            add(out, c, qf, q0, row, column, false);
            add(out, c, q0, qf, column, row, true);
        }
        for pair in &s.pairs {
            let (qg, qf) = (s.others[pair.row.0].q, s.others[pair.column.0].q);
            let c = &s.values[pair.value..pair.value + qg * qf];
            let (row, column) = (start_of(pair.row.0 + 1, pair.row.1), start_of(pair.column.0 + 1, pair.column.1));
            add(out, c, qg, qf, row, column, false);
            add(out, c, qf, qg, column, row, true);
        }
    }
}

/// Λ_aᵀ C Λ_b for C (q_a × q_b).
fn coupled(c: &[f64], lambda_a: &[f64], qa: usize, lambda_b: &[f64], qb: usize) -> Vec<f64> {
    let mut c_lambda = vec![0.0; qa * qb];
    crate::numerics::dense::multiply(c, lambda_b, qa, qb, qb, &mut c_lambda);
    let mut out = vec![0.0; qa * qb];
    lambda_transposed_times(lambda_a, &c_lambda, qa, qb, &mut out);
    out
}

/// Λ_aᵀ Cᵀ Λ_b for C (q_b × q_a).
fn coupled_transposed(c: &[f64], lambda_a: &[f64], qa: usize, lambda_b: &[f64], qb: usize) -> Vec<f64> {
    let mut ct_lambda = vec![0.0; qa * qb];
    transposed_times(c, qb, qa, lambda_b, qb, &mut ct_lambda);
    let mut out = vec![0.0; qa * qb];
    lambda_transposed_times(lambda_a, &ct_lambda, qa, qb, &mut out);
    out
}

/// Cᵀ M into `out` for C (rows × columns) and M (rows × m).
fn transposed_times(c: &[f64], rows: usize, columns: usize, m: &[f64], width: usize, out: &mut [f64]) {
    for a in 0..columns {
        for b in 0..width {
            out[a * width + b] = (0..rows).map(|k| c[k * columns + a] * m[k * width + b]).sum();
        }
    }
}

/// G += scale · A B for A (r × k) and B (k × c).
fn add_product(g: &mut [f64], scale: f64, a: &[f64], b: &[f64], r: usize, k: usize, c: usize) {
    for i in 0..r {
        for j in 0..c {
            g[i * c + j] += scale * (0..k).map(|t| a[i * k + t] * b[t * c + j]).sum::<f64>();
        }
    }
}

/// G += scale · A Bᵀ for A (r × k) and B (c × k).
fn add_product_transposed(g: &mut [f64], scale: f64, a: &[f64], b: &[f64], r: usize, k: usize, c: usize) {
    for i in 0..r {
        for j in 0..c {
            g[i * c + j] += scale * (0..k).map(|t| a[i * k + t] * b[j * k + t]).sum::<f64>();
        }
    }
}
