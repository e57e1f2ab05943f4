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
//! and K − Σ_j W_jᵀW_j is factored densely ([`crate::numerics::blocked`]). Its leading n_c − p − 1 rows are L's
//! random-effects part; its trailing p + 1 rows are those of one factor's L_F, from which the
//! criteria are read as there. Crossed factors fill the core, whose order is that of the
//! later factors' levels. When each factor is nested in every later one nothing fills: the
//! core is not formed, and [`nested`] factors every factor's levels as the first's, each
//! q_k × q_k with a front over its ancestors (O(Σ_k m_k q_k³), no block sized by levels²).
//!
//! # The gradient
//! The formula of the one-factor model (module docs of [`crate::model::lmm`]) with the
//! per-level A_j⁻¹ replaced by the blocks of A⁻¹ on the pattern of ZᵀZ: with P = ZᵀZ,
//! ∂log|A|/∂Λ_f = 2 Σ_{i ∈ f} Σ_{l ∼ i} P_{il} Λ_l (A⁻¹)_{li}, where l runs over the levels
//! sharing rows with level i. Those blocks come from the selected inverse (Takahashi's
//! recurrences): the core's (A⁻¹)_cc = (L_c L_cᵀ)⁻¹ densely, then per level j of the first
//! factor, with V_j = W_{j,R}ᵀ L_j⁻¹ (W_{j,R} the front's random-effects columns),
//! (A⁻¹)_{R_j j} = −(A⁻¹)_{R_j R_j} V_j and (A⁻¹)_{jj} = A_j⁻¹ − V_jᵀ(A⁻¹)_{R_j j}.
//! When every factor is scalar (q = 1, Λ_f = λ_f I) and the core dense, ΛZᵀZΛ = A − I reduces
//! this to ∂log|A|/∂λ_f = (2/λ_f) Σ_{i ∈ f} (1 − (A⁻¹)_ii): the diagonal of A⁻¹ alone, from
//! L_c⁻¹ without (L_cL_cᵀ)⁻¹ (`log_det_from_diagonal` in [`selected_inverse`]).
//! The quadratic and REML terms need u = A⁻¹ΛᵀZᵀ(y − Xβ̂) and Û = A⁻¹ΛᵀZᵀX R_X⁻ᵀ, one
//! backward solve each through L (their forward halves are the fronts' and the core's
//! [X y] columns), and the products P Λ u, P Λ Û over the same blocks.

//!
//! # The statistics: one pass by cell, the fixed part pooled
//! The blocks are sums over the cells (the observed combinations of levels) of
//! W_c[u, v] + n_c m_cu m_cv; per cell only the pairs with a random-effects column are read,
//! and the pairs of [X y] only summed over all cells (F). The row pass
//! ([`crate::data::pooled`]) therefore keeps per cell n, the means and the co-moments of the
//! pairs with a random-effects column, and one pooled k × k sum for the rest. (The design
//! note's alternative, a table per factor plus random-column tables per cell, needs a state
//! per factor and row and per-factor passes or merges, and would still need the cells' means
//! for the couplings and the nested chain; the pooled pass is one pass, two threads, the same
//! Welford update about the same pilot, and the statistics tables of `hnm_stats()` and SQL,
//! full per cell, are the same layout with every pair kept, so the model reads both through
//! one set of accessors.) For InstEval's `service*dept` (k = 29, 73,421 cells) the cells
//! hold 1 + k doubles, not 1 + k + k(k+1)/2.
//!
//! # Where it lives
//! Here the model's blocks of several factors and their construction; in [`evaluation`] the
//! factorisation of the core; in [`selected_inverse`] the solves, the selected inverse and
//! what is read from them (the gradient, the random effects); in [`nested`] the same for a
//! nested chain, level by level.

use super::statistics::{GroupMoments, WithinPart};
use super::structure::{check_structure, column_maps, theta_layout, to_user_map, Affine, ColumnMap, ColumnSummary, FactorTerms};
use super::{LinearMixedModel, Structure, Term};
use crate::data::cross_products::CrossProducts;
use crate::error::{HnmError, Result};
use crate::numerics::blocked::DenseKernels;
use crate::numerics::dense::lambda_transposed_times;
use crate::numerics::memory::{collected, copied, filled, with_capacity};

mod evaluation;
mod nested;
mod selected_inverse;

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
    /// Each level's place among the factor's blocks in the core: its rows start at
    /// `offset + position[l] · q` ([`OtherFactor::core_row`]). The levels' order but in a
    /// dense core of scalar factors, whose levels met by the most fronts come last
    /// ([`positions_by_fronts`]).
    pub(crate) position: Vec<usize>,
}

impl OtherFactor {
    pub(crate) fn terms(&self) -> FactorTerms<'_> {
        FactorTerms { q: self.q, blocks: &self.blocks, random: &self.random, to_user_random: &self.to_user_random, theta_positions: &self.theta_positions }
    }

    fn levels(&self) -> usize {
        self.n.len()
    }

    /// The core row of level `level`'s first random effect.
    pub(crate) fn core_row(&self, level: usize) -> usize {
        self.offset + self.position[level] * self.q
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
    /// The structure of a nested chain (each factor nested in every later one), factored level
    /// by level with no dense core ([`nested`]); None when two factors are crossed.
    pub(crate) nested: Option<nested::NestedChain>,
    /// The threads the dense kernels may use ([`LinearMixedModel::with_threads`]).
    pub(crate) threads: usize,
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
    /// Empty until an evaluation needs (L_c L_cᵀ)⁻¹ (not in the diagonal form of scalar
    /// factors): of MovieLens' shape its nr² values are gigabytes.
    sigma_cc: Vec<f64>,
    /// ‖L_c⁻¹W_{j,R}ᵀ‖² of the first factor's fronts, the core's (A⁻¹)_ii = ‖L_c⁻¹e_i‖² and
    /// their partial sums ([`DenseKernels::sparse_product_norms`]), for the gradient of
    /// scalar factors.
    norms: Vec<f64>,
    column_norms: Vec<f64>,
    norm_parts: Vec<f64>,
    /// The dense core's factorisation and inverses.
    kernels: DenseKernels,
    /// A nested chain's blocks (the dense core's buffers above are then empty).
    nested: Option<nested::NestedWorkspace>,
    /// The first factor's dense products: its selected inverse and its Schur updates.
    selected: selected_inverse::SelectedBuffers,
}

const MODEL: &str = "the blocks of the grouping factors";

impl Several {
    fn core_order(&self, p1: usize) -> usize {
        self.core_random + p1
    }

    fn core_row(&self, (factor, level): (usize, usize)) -> usize {
        self.others[factor].core_row(level)
    }

    pub(crate) fn try_clone(&self) -> Result<Self> {
        let mut others = Vec::with_capacity(self.others.len());
        for o in &self.others {
            others.push(OtherFactor {
                level_index: copied(&o.level_index, MODEL)?,
                position: copied(&o.position, MODEL)?,
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
            nested: self.nested.clone(),
            threads: self.threads,
        })
    }

    pub(crate) fn workspace(&self, q0: usize, m0: usize, p1: usize) -> Result<SeveralWorkspace> {
        const WHAT: &str = "the dense block of the crossed grouping factors";
        let columns = [m0 * q0 + self.core_random, p1];
        // A nested chain has no dense core (nor the first factor's fronts in it), and so no
        // use for the first factor's dense products: their buffers of no core rows.
        let (n, nr, fronts, widest) = match self.nested {
            Some(_) => (0, 0, 0, p1),
            None => (
                self.core_order(p1),
                self.core_random,
                *self.width_start.last().unwrap_or(&0),
                self.width_start.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(p1),
            ),
        };
        Ok(SeveralWorkspace {
            lambdas: self.others.iter().map(|o| vec![0.0; o.q * o.q]).collect(),
            core: filled(&[n, n], 0.0, WHAT)?,
            fronts: filled(&[q0, fronts], 0.0, WHAT)?,
            solved: filled(&columns, 0.0, MODEL)?,
            right: filled(&columns, 0.0, MODEL)?,
            product: filled(&columns, 0.0, MODEL)?,
            scaled: filled(&columns, 0.0, MODEL)?,
            inverse_l: filled(&[nr, nr], 0.0, WHAT)?,
            sigma_cc: Vec::new(),
            norms: filled(&[m0], 0.0, MODEL)?,
            column_norms: filled(&[nr], 0.0, MODEL)?,
            norm_parts: filled(&DenseKernels::product_norms_scratch(m0, nr), 0.0, MODEL)?,
            kernels: DenseKernels::new(n, self.threads)?,
            nested: self.nested.as_ref().map(|chain| chain.workspace(p1)).transpose()?,
            selected: selected_inverse::SelectedBuffers::new(self, q0, widest - p1, widest)?,
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
            position: Vec::new(),
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

/// Whether two of the factors (their modelled `levels`) are crossed: a level of one shares
/// cells with two levels of a later one. Otherwise each is nested in every later one, and
/// [`nested::NestedChain::of`] gives their chain (it checks the same on the couplings).
///
/// # Errors
/// `TooLarge` when the maps do not fit in memory.
fn crossed(levels: &[Levels]) -> Result<bool> {
    for (k, earlier) in levels.iter().enumerate() {
        for later in &levels[k + 1..] {
            let mut parent = filled(&[earlier.n.len()], usize::MAX, MODEL)?;
            for (&a, &b) in earlier.of_cell.iter().zip(&later.of_cell) {
                if parent[a] == usize::MAX {
                    parent[a] = b;
                } else if parent[a] != b {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

/// The kept cells bucketed by the first factor's level (dense, < `m0`): level j's are
/// `cells[start[j]..start[j + 1]]`, in increasing order (a counting sort, O(cells + m0)).
struct ByLevel {
    start: Vec<usize>,
    cells: Vec<usize>,
}

fn cells_by_level(of_cell: &[usize], m0: usize) -> Result<ByLevel> {
    let mut start = filled(&[m0 + 1], 0usize, MODEL)?;
    for &j in of_cell {
        start[j + 1] += 1;
    }
    for j in 0..m0 {
        start[j + 1] += start[j];
    }
    let mut next = copied(&start[..m0], MODEL)?;
    let mut cells = filled(&[of_cell.len()], 0usize, MODEL)?;
    for (cell, &j) in of_cell.iter().enumerate() {
        cells[next[j]] = cell;
        next[j] += 1;
    }
    Ok(ByLevel { start, cells })
}

/// The place of each level of a later factor (`level`) in the core by the number of the
/// first factor's levels that couple to it (share a cell with it), the most last (ties in
/// the levels' order), for a dense core of scalar factors. Of a scalar first factor's front
/// norms ‖L_c⁻¹W_{j,R}ᵀ‖² ([`DenseKernels::sparse_product_norms`]), each of W_j's rows r
/// costs nr − r multiply-adds (L_c⁻¹ is lower triangular: its column r has nr − r rows), so
/// that the rows that most fronts hold cost least last: for InstEval's 1,128 lecturers,
/// whom its 2,972 students meet up to 92 each (73,421 pairs), 2.25 times fewer
/// (4.3e7 → 1.9e7 per evaluation). The factorisation's work does not change (the core is
/// dense), nor the order of the random effects outside the core.
///
/// # Errors
/// `TooLarge` when the counts do not fit in memory.
fn positions_by_fronts(by_level: &ByLevel, level: &Levels) -> Result<Vec<usize>> {
    let m = level.n.len();
    // Per level, the first factor's level that met it last, and how many met it.
    let (mut last, mut met) = (filled(&[m], usize::MAX, MODEL)?, filled(&[m], 0usize, MODEL)?);
    for (j, bucket) in by_level.start.windows(2).enumerate() {
        for &cell in &by_level.cells[bucket[0]..bucket[1]] {
            let l = level.of_cell[cell];
            if last[l] != j {
                last[l] = j;
                met[l] += 1;
            }
        }
    }
    let mut order = collected(0..m, MODEL)?;
    order.sort_by_key(|&l| met[l]);
    let mut position = last;
    for (place, &l) in order.iter().enumerate() {
        position[l] = place;
    }
    Ok(position)
}

/// The first factor's fronts: level j's couplings `fronts[front_start[j]..front_start[j + 1]]`
/// by core row, and their blocks Z_fᵀZ₀ (q_f × q₀ row-major each) in `values` in the same
/// order.
struct Fronts {
    front_start: Vec<usize>,
    fronts: Vec<Coupling>,
    values: Vec<f64>,
}

/// [`Fronts`] of the kept `cells` bucketed by the first factor's level (`by_level`), the
/// factors' modelled `levels`, the later factors `others` (their core positions set) and the
/// column maps of every factor: per level j, the later factors' levels its cells meet,
/// ordered by core row and given their blocks' place, then each cell's block Σ ũ ṽ
/// ([`GroupMoments::product`]) added to its coupling's, the cells in their order. So the
/// fronts are laid out once, in the order that each evaluation reads them (a cache miss per
/// coupling for InstEval when read through the later factors' order), with no sort of the
/// cells.
///
/// # Errors
/// `TooLarge` when they do not fit in memory.
fn fronts(cells: &CrossProducts, by_level: &ByLevel, levels: &[Levels], others: &[OtherFactor], maps: &[Vec<ColumnMap>]) -> Result<Fronts> {
    let (m0, q0) = (by_level.start.len() - 1, maps[0].len());
    let mut front_start = with_capacity(&[m0 + 1], MODEL)?;
    front_start.push(0);
    let (mut fronts, mut values) = (Vec::new(), Vec::new());
    // Per later factor and level: the first factor's level that met it last and the offset
    // of their block in `values`.
    let mut last = Vec::with_capacity(others.len());
    let mut block = Vec::with_capacity(others.len());
    for other in others {
        last.push(filled(&[other.levels()], usize::MAX, MODEL)?);
        block.push(filled(&[other.levels()], 0usize, MODEL)?);
    }
    let mut means: Vec<Vec<f64>> = maps.iter().map(|m| vec![0.0; m.len()]).collect();
    // Per later factor, the within-cell parts of its blocks' entries (u, v), row-major.
    let parts: Vec<Vec<Option<WithinPart>>> =
        maps[1..].iter().map(|rows| rows.iter().flat_map(|row| maps[0].iter().map(move |column| WithinPart::of(cells, row, column))).collect()).collect();
    // A level's couplings before they are placed: (core row, factor, level).
    let mut found: Vec<(usize, usize, usize)> = Vec::new();
    for (j, bucket) in by_level.start.windows(2).enumerate() {
        let bucket = &by_level.cells[bucket[0]..bucket[1]];
        found.clear();
        for &cell in bucket {
            for (f, last) in last.iter_mut().enumerate() {
                let l = levels[f + 1].of_cell[cell];
                if last[l] != j {
                    last[l] = j;
                    crate::numerics::memory::push(&mut found, (others[f].core_row(l), f, l), MODEL)?;
                }
            }
        }
        found.sort_unstable();
        for &(_, f, l) in &found {
            let size = others[f].q * q0;
            values.try_reserve(size).map_err(|_| HnmError::TooLarge { what: MODEL, bytes: 8 * (values.len() + size) as u128 })?;
            block[f][l] = values.len();
            crate::numerics::memory::push(&mut fronts, Coupling { row: (f, l), column: (0, j), value: values.len() }, MODEL)?;
            values.resize(values.len() + size, 0.0);
        }
        crate::numerics::memory::push(&mut front_start, fronts.len(), MODEL)?;
        for &cell in bucket {
            let group = GroupMoments::of(cells, cell);
            for (m, map) in means.iter_mut().zip(maps) {
                for (m, map) in m.iter_mut().zip(map) {
                    *m = group.mean(map);
                }
            }
            let mean_b = &means[0];
            for (f, (mean_a, parts)) in means[1..].iter().zip(&parts).enumerate() {
                let offset = block[f][levels[f + 1].of_cell[cell]];
                let products = mean_a.iter().flat_map(|&mean_u| mean_b.iter().map(move |&mean_v| (mean_u, mean_v)));
                for ((value, &part), (mean_u, mean_v)) in values[offset..offset + parts.len()].iter_mut().zip(parts).zip(products) {
                    *value += group.product_of(part, mean_u, mean_v);
                }
            }
        }
    }
    Ok(Fronts { front_start, fronts, values })
}

/// Σ over the cells of the blocks Z_aᵀZ_b between the levels of two factors, one per pair of
/// levels that share a cell: `row` and `column` the two factors' modelled levels and column
/// maps. Returns the distinct pairs (row level, column level, offset) sorted, and their blocks
/// (q_a × q_b row-major each) appended to `values` in that order, each block summed over its
/// cells in their order. The cells are bucketed by row level (a counting sort, not a sort of
/// all the cells), each bucket's column levels found by marking and sorted.
///
/// # Errors
/// `TooLarge` when they do not fit in memory.
fn coupling_blocks(
    stats: &CrossProducts, row: (&Levels, &[ColumnMap]), column: (&Levels, &[ColumnMap]), values: &mut Vec<f64>,
) -> Result<Vec<(usize, usize, usize)>> {
    let ((row_levels, rows), (column_levels, columns)) = (row, column);
    let (qa, qb) = (rows.len(), columns.len());
    let by_row = cells_by_level(&row_levels.of_cell, row_levels.n.len())?;
    let mut out: Vec<(usize, usize, usize)> = Vec::new();
    // Per column level: the row level that met it last and the offset of their block.
    let (mut last, mut block) = (filled(&[column_levels.n.len()], usize::MAX, MODEL)?, filled(&[column_levels.n.len()], 0usize, MODEL)?);
    let (mut mean_a, mut mean_b) = (vec![0.0; qa], vec![0.0; qb]);
    for (a, bucket) in by_row.start.windows(2).enumerate() {
        let bucket = &by_row.cells[bucket[0]..bucket[1]];
        let first = out.len();
        for &cell in bucket {
            let b = column_levels.of_cell[cell];
            if last[b] != a {
                last[b] = a;
                crate::numerics::memory::push(&mut out, (a, b, 0), MODEL)?;
            }
        }
        out[first..].sort_unstable();
        for (_, b, offset) in &mut out[first..] {
            values.try_reserve(qa * qb).map_err(|_| HnmError::TooLarge { what: MODEL, bytes: 8 * (values.len() + qa * qb) as u128 })?;
            (*offset, block[*b]) = (values.len(), values.len());
            values.resize(values.len() + qa * qb, 0.0);
        }
        for &cell in bucket {
            let offset = block[column_levels.of_cell[cell]];
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
    }
    Ok(out)
}

impl LinearMixedModel {
    /// The model with several grouping factors `factors` (at least two, in lme4's order: by
    /// decreasing number of levels) for the statistics `stats` of the cells, the combinations
    /// of their levels that occur (see [`GroupingFactor`]); `response` and `fixed` as in
    /// [`Structure`]. The first factor's blocks are the model's per-level blocks; the others'
    /// form the dense core (module docs of `factors`). The statistics are those of every pair
    /// of variables per cell (a statistics table's) or in the pooled layout
    /// ([`CrossProducts::pooled_from_columns_on_threads`], module docs): the blocks read per
    /// cell only pairs with a random-effects column, and F the pooled sums.
    ///
    /// # Errors
    /// As [`LinearMixedModel::new`] (but `stats` may be in the pooled layout), with
    /// `TooFewGroups` when a factor has fewer than two levels with rows and
    /// `TooManyRandomEffects` when N ≤ Σ_f m_f q_f; `InvalidArgument` when a factor's levels do
    /// not fit the statistics, or a random-effects column is not a group variable of pooled
    /// statistics; `TooLarge` when the blocks or the dense core
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
            let kept = |t: &Term| match (t, stats.group_variables()) {
                (Term::Variable(a), Some(group)) => group.contains(a),
                _ => true,
            };
            if !f.random.iter().all(kept) {
                return bad("must keep per cell the co-moments of every random-effects column (the group variables of the statistics)");
            }
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
        let columns = ColumnSummary::of(&cells);
        let randoms: Vec<Vec<Affine>> = factors[1..].iter().map(|f| random_columns(&columns, &f.random, &f.blocks)).collect();
        let later: Vec<_> = randoms.iter().zip(&levels[1..]).map(|(random, level)| (&random[..], Some((&level.of_cell[..], level.n.len())))).collect();
        // The later factors' blocks S_l, B_l in the first factor's pass over the cells.
        let (mut model, blocks) = Self::from_levels(&columns, structure, Some((&levels[0].of_cell, levels[0].n.len())), &later)?;
        model.group_index = copied(&levels[0].index, MODEL)?;
        let mut others = Vec::with_capacity(factors.len() - 1);
        let mut offset = 0;
        for (((factor, level), random), (zz, zxy)) in factors.iter().zip(&levels).skip(1).zip(randoms).zip(blocks) {
            let (theta_positions, lower) = theta_layout(&factor.blocks);
            model.lower.extend(lower);
            others.push(OtherFactor {
                q: random.len(),
                blocks: factor.blocks.clone(),
                to_user_random: to_user_map(&random, &factor.blocks),
                random,
                theta_positions,
                level_index: copied(&level.index, MODEL)?,
                position: collected(0..level.n.len(), MODEL)?,
                n: copied(&level.n, MODEL)?,
                zz,
                zxy,
                offset,
            });
            offset += level.n.len() * factor.random.len();
        }
        let m0 = model.n.len();
        let core_random = offset;
        let p1 = model.p + 1;
        // Whether the factors are crossed (else each is nested in every later one, and
        // `nested` factors them without a core) is known from the cells, before the fronts.
        let crossed = crossed(&levels)?;
        let by_level = cells_by_level(&levels[0].of_cell, m0)?;
        // A dense core of scalar factors (whose gradient reads the fronts' norms) places the
        // levels met by the most fronts last, before the fronts are laid out.
        if crossed && model.q == 1 && others.iter().all(|o| o.q == 1) {
            for (f, other) in others.iter_mut().enumerate() {
                other.position = positions_by_fronts(&by_level, &levels[f + 1])?;
            }
        }
        let maps: Vec<Vec<ColumnMap>> = std::iter::once(column_maps(&model.random)).chain(others.iter().map(|o| column_maps(&o.random))).collect();
        let Fronts { front_start, fronts, mut values } = fronts(&cells, &by_level, &levels, &others, &maps)?;
        let mut pairs = Vec::new();
        for g in 1..others.len() {
            for f in 0..g {
                for (a, b, value) in coupling_blocks(&cells, (&levels[g + 1], &maps[g + 1]), (&levels[f + 1], &maps[f + 1]), &mut values)? {
                    crate::numerics::memory::push(&mut pairs, Coupling { row: (g, a), column: (f, b), value }, MODEL)?;
                }
            }
        }
        let widths: usize = fronts.iter().map(|c| others[c.row.0].q).sum();
        let mut front_rows = with_capacity(&[widths + m0 * p1], MODEL)?;
        let mut width_start = with_capacity(&[m0 + 1], MODEL)?;
        width_start.push(0);
        for j in 0..m0 {
            for coupling in &fronts[front_start[j]..front_start[j + 1]] {
                let other = &others[coupling.row.0];
                let row = other.core_row(coupling.row.1);
                front_rows.extend(row..row + other.q);
            }
            front_rows.extend(core_random..core_random + p1);
            width_start.push(front_rows.len());
        }
        // Every thread of the machine until the caller says otherwise (`with_threads`).
        let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
        let mut several = Several { others, core_random, front_start, fronts, pairs, values, width_start, front_rows, nested: None, threads };
        if !crossed {
            several.nested = nested::NestedChain::of(model.q, m0, &several)?;
        }
        model.several = Some(Box::new(several));
        Ok(model)
    }
}

impl LinearMixedModel {
    /// The model whose dense kernels (the core of crossed grouping factors, module docs) use
    /// at most `threads` threads (at least one): with one, each evaluation runs on the calling
    /// thread alone, with no helper thread started. A model built by
    /// [`LinearMixedModel::with_factors`] uses every thread of the machine (two at most are
    /// used); a model with one grouping factor has no such kernels and is returned unchanged.
    #[must_use]
    pub fn with_threads(mut self, threads: usize) -> Self {
        if let Some(s) = &mut self.several {
            s.threads = threads.max(1);
        }
        self
    }
}

/// Λ_aᵀ C Λ_b into `out` (q_a × q_b) for C (q_a × q_b), `scratch` holding C Λ_b.
fn coupled(c: &[f64], lambda_a: &[f64], qa: usize, lambda_b: &[f64], qb: usize, scratch: &mut [f64], out: &mut [f64]) {
    crate::numerics::dense::multiply(c, lambda_b, qa, qb, qb, scratch);
    lambda_transposed_times(lambda_a, scratch, qa, qb, out);
}

/// Λ_aᵀ Cᵀ Λ_b into `out` (q_a × q_b) for C (q_b × q_a), `scratch` holding Cᵀ Λ_b.
fn coupled_transposed(c: &[f64], lambda_a: &[f64], qa: usize, lambda_b: &[f64], qb: usize, scratch: &mut [f64], out: &mut [f64]) {
    transposed_times(c, qb, qa, lambda_b, qb, scratch);
    lambda_transposed_times(lambda_a, scratch, qa, qb, out);
}

/// Cᵀ M into `out` for C (rows × columns) and M (rows × m).
fn transposed_times(c: &[f64], rows: usize, columns: usize, m: &[f64], width: usize, out: &mut [f64]) {
    for a in 0..columns {
        for b in 0..width {
            out[a * width + b] = (0..rows).map(|k| c[k * columns + a] * m[k * width + b]).sum();
        }
    }
}
