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

use super::statistics::{level_blocks, FactorColumns, GroupMoments, WithinPart};
use super::structure::{check_structure, column_maps, theta_layout, to_user_map, Affine, ColumnMap, ColumnSummary, FactorTerms};
use super::{LinearMixedModel, Structure, Term};
use crate::data::cross_products::CrossProducts;
use crate::error::{HnmError, Result};
use crate::numerics::blocked::DenseKernels;
use crate::numerics::dense::{add_scaled, lambda_transposed_times};
use crate::numerics::interrupt::Checkpoint;
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

impl Levels {
    /// The level of each cell and their number, as [`level_blocks`] reads them.
    fn grouping(&self) -> Option<(&[usize], usize)> {
        Some((&self.of_cell, self.n.len()))
    }
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
/// cells with two levels of the next. Otherwise each is nested in the next, so in every later
/// one (a level's cells all lie in its parent's, whose cells all lie in one level of the
/// factor after), and [`nested::NestedChain::of`] gives their chain. This is the only test:
/// the couplings that `of` reads are the distinct pairs of levels that share a cell, of every
/// two factors, so that each level meets exactly one level of each later factor there too.
///
/// # Errors
/// `TooLarge` when the maps do not fit in memory.
fn crossed(levels: &[Levels]) -> Result<bool> {
    for pair in levels.windows(2) {
        let (earlier, later) = (&pair[0], &pair[1]);
        let mut parent = filled(&[earlier.n.len()], usize::MAX, MODEL)?;
        for (&a, &b) in earlier.of_cell.iter().zip(&later.of_cell) {
            if parent[a] == usize::MAX {
                parent[a] = b;
            } else if parent[a] != b {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// The kept cells bucketed by a factor's level (dense, < `m`): level j's are
/// `cells[start[j]..start[j + 1]]`, in increasing order (a counting sort, O(cells + m)).
struct ByLevel {
    start: Vec<usize>,
    cells: Vec<usize>,
}

fn cells_by_level(of_cell: &[usize], m: usize) -> Result<ByLevel> {
    let mut start = filled(&[m + 1], 0usize, MODEL)?;
    for &j in of_cell {
        start[j + 1] += 1;
    }
    for j in 0..m {
        start[j + 1] += start[j];
    }
    let mut next = copied(&start[..m], MODEL)?;
    let mut cells = filled(&[of_cell.len()], 0usize, MODEL)?;
    for (cell, &j) in of_cell.iter().enumerate() {
        cells[next[j]] = cell;
        next[j] += 1;
    }
    Ok(ByLevel { start, cells })
}

/// Visits each level j of a factor, in order, with its cells (`by_level`) and the levels of
/// the factors `met` that those cells meet, each once, as (`key(f, l)`, f, l) in the order
/// first met (f indexes `met`): each level of `met` is marked with the level j that met it
/// last, so that one pass over the bucketed cells finds them, with no sort of the cells.
/// `checkpoint` is asked as the levels go, a level's cells counted as its work
/// ([`Checkpoint::check_work`]).
///
/// # Errors
/// `TooLarge` when the marks do not fit in memory; `Interrupted` when `checkpoint` reports a
/// request; `visit`'s errors.
fn for_each_meeting(
    by_level: &ByLevel, met: &[Levels], key: impl Fn(usize, usize) -> usize, checkpoint: &mut Checkpoint<'_>,
    mut visit: impl FnMut(usize, &[usize], &mut [(usize, usize, usize)]) -> Result<()>,
) -> Result<()> {
    let mut last = Vec::with_capacity(met.len());
    for levels in met {
        last.push(filled(&[levels.n.len()], usize::MAX, MODEL)?);
    }
    let mut found = Vec::new();
    for (j, bucket) in by_level.start.windows(2).enumerate() {
        let bucket = &by_level.cells[bucket[0]..bucket[1]];
        checkpoint.check_work(bucket.len())?;
        found.clear();
        for &cell in bucket {
            for (f, (last, levels)) in last.iter_mut().zip(met).enumerate() {
                let l = levels.of_cell[cell];
                if last[l] != j {
                    last[l] = j;
                    crate::numerics::memory::push(&mut found, (key(f, l), f, l), MODEL)?;
                }
            }
        }
        visit(j, bucket, &mut found)?;
    }
    Ok(())
}

/// The place of each level of a later factor (`level`) in the core by the number of the
/// first factor's levels (their cells `by_level`) that couple to it (share a cell with it),
/// the most last (ties in the levels' order), for a dense core of scalar factors. Of a scalar
/// first factor's front norms ‖L_c⁻¹W_{j,R}ᵀ‖² ([`DenseKernels::sparse_product_norms`]), each
/// of W_j's rows r costs nr − r multiply-adds (L_c⁻¹ is lower triangular: its column r has
/// nr − r rows), so that the rows that most fronts hold cost least last: for InstEval's 1,128
/// lecturers, whom its 2,972 students meet up to 92 each (73,421 pairs), 2.25 times fewer
/// (4.3e7 → 1.9e7 per evaluation). The factorisation's work does not change (the core is
/// dense), nor the order of the random effects outside the core.
///
/// # Errors
/// `TooLarge` when the counts do not fit in memory; `Interrupted` when `checkpoint` reports a
/// request.
fn positions_by_fronts(by_level: &ByLevel, level: &Levels, checkpoint: &mut Checkpoint<'_>) -> Result<Vec<usize>> {
    let m = level.n.len();
    let mut met = filled(&[m], 0usize, MODEL)?;
    for_each_meeting(
        by_level,
        std::slice::from_ref(level),
        |_, _| 0,
        checkpoint,
        |_, _, found| {
            found.iter().for_each(|&(_, _, l)| met[l] += 1);
            Ok(())
        },
    )?;
    let mut order = collected(0..m, MODEL)?;
    order.sort_by_key(|&l| met[l]);
    let mut position = met;
    for (place, &l) in order.iter().enumerate() {
        position[l] = place;
    }
    Ok(position)
}

/// The couplings of the levels of one factor (`own`, its cells bucketed by level `by_level`)
/// with the levels of the factors `met` (their levels and column maps) that share cells with
/// them, and their blocks: per
/// level j, the levels its cells meet ([`for_each_meeting`]), ordered by `key`, each given a
/// block at the end of `values` in that order and made a coupling by `coupling(j, f, l,
/// offset)` (f indexing `met`); then each cell's block Σ ũ ṽ ([`GroupMoments::product_of`],
/// the within-cell parts found once per pair of columns) added to its coupling's, the cells in
/// their order. The blocks are Z_ownᵀZ_f (q_own × q_f row-major) with `own_rows`, else
/// Z_fᵀZ_own. Returns where each level's couplings start (level j's are
/// `couplings[start[j]..start[j + 1]]`) and the couplings.
///
/// The first factor's fronts are its couplings with every later factor, by core row: laid out
/// once in the order each evaluation reads them (a cache miss per coupling for InstEval when
/// read through the later factors' order). A later factor's pairs are its couplings with the
/// earlier later factors, by factor and level.
///
/// # Errors
/// `TooLarge` when they do not fit in memory; `Interrupted` when `checkpoint` reports a
/// request ([`for_each_meeting`] asks it).
#[allow(clippy::too_many_arguments)]
fn couplings(
    cells: &CrossProducts, (by_level, own): (&ByLevel, &[ColumnMap]), (met, met_maps): (&[Levels], &[Vec<ColumnMap>]), own_rows: bool,
    key: impl Fn(usize, usize) -> usize, coupling: impl Fn(usize, usize, usize, usize) -> Coupling, values: &mut Vec<f64>, checkpoint: &mut Checkpoint<'_>,
) -> Result<(Vec<usize>, Vec<Coupling>)> {
    let mut start = with_capacity(&[by_level.start.len()], MODEL)?;
    start.push(0);
    let mut out = Vec::new();
    // Per met factor and level: the offset of its block with the current level in `values`.
    let mut block = Vec::with_capacity(met.len());
    for levels in met {
        block.push(filled(&[levels.n.len()], 0usize, MODEL)?);
    }
    let (mut own_means, mut met_means) = (vec![0.0; own.len()], met_maps.iter().map(|maps| vec![0.0; maps.len()]).collect::<Vec<_>>());
    // Per met factor, the within-cell parts of its blocks' entries (u, v), row-major.
    let parts: Vec<Vec<Option<WithinPart>>> = met_maps
        .iter()
        .map(|maps| {
            let (rows, columns) = if own_rows { (own, &maps[..]) } else { (&maps[..], own) };
            rows.iter().flat_map(|row| columns.iter().map(move |column| WithinPart::of(cells, row, column))).collect()
        })
        .collect();
    for_each_meeting(by_level, met, key, checkpoint, |j, bucket, found| {
        found.sort_unstable();
        for &(_, f, l) in &*found {
            let size = own.len() * met_maps[f].len();
            values.try_reserve(size).map_err(|_| HnmError::TooLarge { what: MODEL, bytes: 8 * (values.len() + size) as u128 })?;
            block[f][l] = values.len();
            crate::numerics::memory::push(&mut out, coupling(j, f, l, values.len()), MODEL)?;
            values.resize(values.len() + size, 0.0);
        }
        crate::numerics::memory::push(&mut start, out.len(), MODEL)?;
        for &cell in bucket {
            let group = GroupMoments::of(cells, cell);
            for (m, map) in own_means.iter_mut().zip(own) {
                *m = group.mean(map);
            }
            for (f, ((levels, maps), means)) in met.iter().zip(met_maps).zip(&mut met_means).enumerate() {
                for (m, map) in means.iter_mut().zip(maps) {
                    *m = group.mean(map);
                }
                let (rows, columns) = if own_rows { (&own_means, &*means) } else { (&*means, &own_means) };
                let offset = block[f][levels.of_cell[cell]];
                let products = rows.iter().flat_map(|&mean_u| columns.iter().map(move |&mean_v| (mean_u, mean_v)));
                for ((value, &part), (mean_u, mean_v)) in values[offset..offset + parts[f].len()].iter_mut().zip(&parts[f]).zip(products) {
                    *value += group.product_of(part, mean_u, mean_v);
                }
            }
        }
        Ok(())
    })?;
    Ok((start, out))
}

impl LinearMixedModel {
    /// The model with several grouping factors `factors` (at least two, in lme4's order: by
    /// decreasing number of levels) for the statistics `stats` of the cells, the combinations
    /// of their levels that occur (see [`GroupingFactor`]); `response` and `fixed` as in
    /// [`Structure`]. The first factor's blocks are the model's per-level blocks; the others'
    /// form the dense core (module docs of `factors`). The statistics are those of every pair
    /// of variables per cell (a statistics table's) or in the pooled layout
    /// ([`CrossProducts::pooled_from_columns_on_threads`], module docs): the blocks read per
    /// cell only pairs with a random-effects column, and F the pooled sums. `checkpoint` is
    /// asked as the passes over the cells that form the blocks, the couplings and the nested
    /// chain go (about every [`Checkpoint::STRIDE`] cells' worth of work), so that a build of
    /// millions of cells stops soon after a request.
    ///
    /// # Errors
    /// As [`LinearMixedModel::new`] (but `stats` may be in the pooled layout), with
    /// `TooFewGroups` when a factor has fewer than two levels with rows and
    /// `TooManyRandomEffects` when N ≤ m_f b for a block of b columns of a factor f (lme4's
    /// check, by term); `InvalidArgument` when a factor's levels do
    /// not fit the statistics, or a random-effects column is not a group variable of pooled
    /// statistics; `TooLarge` when the blocks or the dense core
    /// do not fit in memory; `Interrupted` when `checkpoint` reports a request.
    pub fn with_factors(stats: &CrossProducts, response: usize, fixed: Vec<Term>, factors: &[GroupingFactor], checkpoint: &mut Checkpoint<'_>) -> Result<Self> {
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
        if let Some(few) = levels.iter().find(|l| l.n.len() < 2) {
            return Err(HnmError::TooFewGroups { found: few.n.len() });
        }
        // lme4's check, term by term (a block of Λ_f is one of its terms): the terms together
        // may have more random effects than observations (crossed factors with few rows a
        // cell), which lme4 fits; where rank [X Z] = N, σ² may then go to 0.
        let largest_term = levels.iter().zip(factors).map(|(l, f)| l.n.len() * f.blocks.iter().copied().max().unwrap_or(0)).max().unwrap_or(0);
        if cells.n_obs() <= largest_term as f64 {
            return Err(HnmError::TooManyRandomEffects { observations: cells.n_obs(), random_effects: largest_term as f64 });
        }
        let columns = ColumnSummary::of(&cells);
        let randoms: Vec<Vec<Affine>> = factors[1..].iter().map(|f| random_columns(&columns, &f.random, &f.blocks)).collect();
        // Every factor's blocks S_l, B_l in one pass over the cells, the first's the model's.
        let mut blocks = Vec::new();
        let mut model = Self::from_levels(&columns, structure, levels[0].grouping(), |random, fixed_and_response| {
            let factors: Vec<FactorColumns<'_>> = std::iter::once((random, levels[0].grouping()))
                .chain(randoms.iter().zip(&levels[1..]).map(|(random, level)| (&random[..], level.grouping())))
                .collect();
            blocks = level_blocks(&cells, &factors, fixed_and_response, checkpoint)?;
            Ok(blocks.remove(0))
        })?;
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
                other.position = positions_by_fronts(&by_level, &levels[f + 1], checkpoint)?;
            }
        }
        let maps: Vec<Vec<ColumnMap>> = std::iter::once(column_maps(&model.random)).chain(others.iter().map(|o| column_maps(&o.random))).collect();
        let mut values = Vec::new();
        let core_row = |f: usize, l: usize| others[f].core_row(l);
        let front = |j, f, l, value| Coupling { row: (f, l), column: (0, j), value };
        let (front_start, fronts) = couplings(&cells, (&by_level, &maps[0]), (&levels[1..], &maps[1..]), false, core_row, front, &mut values, checkpoint)?;
        let mut pairs = Vec::new();
        for g in 1..others.len() {
            let by_level = cells_by_level(&levels[g + 1].of_cell, others[g].levels())?;
            let pair = |a, f, b, value| Coupling { row: (g, a), column: (f, b), value };
            let (_, found) = couplings(&cells, (&by_level, &maps[g + 1]), (&levels[1..g + 1], &maps[1..g + 1]), true, |_, _| 0, pair, &mut values, checkpoint)?;
            // By earlier factor, then level: the order in which the gradient sums them.
            for f in 0..g {
                for &coupling in found.iter().filter(|c| c.column.0 == f) {
                    crate::numerics::memory::push(&mut pairs, coupling, MODEL)?;
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
            several.nested = Some(nested::NestedChain::of(model.q, m0, &several, checkpoint)?);
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

/// Cᵀ M into `out` for C (rows × columns) and M (rows × `width`), row a of the product at
/// `out[a * ld..]` (`ld` ≥ `width`: a block of a wider matrix).
fn transposed_times(c: &[f64], rows: usize, columns: usize, m: &[f64], width: usize, out: &mut [f64], ld: usize) {
    // Rows of M added into rows of the product, k ascending: each entry the dot product's sum
    // in its order (the same value), the loop over a row vectorised.
    for a in 0..columns {
        let row = &mut out[a * ld..a * ld + width];
        row.fill(0.0);
        for k in 0..rows {
            add_scaled(row, c[k * columns + a], &m[k * width..(k + 1) * width]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{crossed, GroupingFactor, Levels};
    use crate::data::blocks::Column;
    use crate::model::lmm::{LinearMixedModel, Term};
    use crate::numerics::interrupt::{assert_stops_at, questions, Checkpoint, Never};
    use crate::CrossProducts;

    /// A build of several factors asks its checkpoint as its passes go, at least once per
    /// [`Checkpoint::STRIDE`] units of their work (a cell of each pass over the cells: the
    /// blocks, the fronts' order of scalar crossed factors, each factor's couplings; a coupling
    /// of each of a nested chain's two passes), and stopped at its first, middle or last
    /// question it returns `Interrupted` without asking another. Of 40,960 cells: users
    /// crossed with items and days, one row a cell, and classes in schools in districts, two
    /// rows a cell.
    #[test]
    fn a_build_of_many_cells_stops_when_asked() {
        let cells = 10 * Checkpoint::STRIDE as usize;
        let factor = |level_of_group: Vec<usize>, levels| GroupingFactor { level_of_group, levels, random: vec![Term::Intercept], blocks: vec![1] };
        let stats_of = |rows_per_cell: usize| {
            let y: Vec<f64> = (0..cells * rows_per_cell).map(|r| ((r * 7919) % 1009) as f64 / 100.0).collect();
            let codes = (0..cells * rows_per_cell).map(|r| (r / rows_per_cell) as i32 + 1);
            CrossProducts::from_columns(&[Column::Double(&y)], codes, cells, &mut Checkpoint::new(&Never)).unwrap().stats
        };
        // 2048 users of 20 cells each, 300 items, 16 days of 2560 cells (each under a stride):
        // five passes over the cells (the blocks, the two later factors' places, the fronts,
        // the days' couplings with the items).
        let crossed = [
            factor((0..cells).map(|c| c / 20).collect(), cells / 20),
            factor((0..cells).map(|c| (c * 37 + c / 20) % 300).collect(), 300),
            factor((0..cells).map(|c| c % 16).collect(), 16),
        ];
        // 5120 schools of 8 classes, 320 districts of 16 schools: three passes over the cells
        // (the blocks, the fronts, the districts' couplings with the schools), and the chain's
        // couplings (each class's two, each school's one) twice.
        let (schools, districts) = (cells / 8, cells / 128);
        let nested = [
            factor((0..cells).collect(), cells),
            factor((0..cells).map(|c| c / 8).collect(), schools),
            factor((0..cells).map(|c| c / 128).collect(), districts),
        ];
        for (name, stats, factors, work) in
            [("crossed", stats_of(1), &crossed, 5 * cells), ("nested", stats_of(2), &nested, 3 * cells + 2 * (2 * cells + schools))]
        {
            let build = |checkpoint: &mut Checkpoint<'_>| LinearMixedModel::with_factors(&stats, 0, vec![Term::Intercept], factors, checkpoint).map(|_| ());
            let total = questions(build);
            assert!(total >= work / Checkpoint::STRIDE as usize, "{name}: {total} questions for {work} units of work");
            assert_stops_at(name, [1, total / 2, total], build);
        }
    }

    /// [`crossed`], which tests adjacent factors only, against the definition over every two
    /// factors (each level of the earlier meets one level of the later in its cells), in 600
    /// designs of 2 to 5 factors on 60 cells: chains (each level's parent drawn among the next
    /// factor's levels), in half of them one cell moved to another level of one factor.
    #[test]
    fn crossed_is_the_definition_over_every_two_factors() {
        let mut state = 11u64;
        let mut draw = |n: usize| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as usize % n
        };
        let (cells, mut counts) = (60, [0, 0]);
        for _ in 0..600 {
            let mut of_cell: Vec<Vec<usize>> = vec![(0..cells).map(|c| c % 24).collect()];
            let mut m = vec![24];
            for _ in 0..1 + draw(4) {
                let (below, above) = (*m.last().unwrap(), (m.last().unwrap() / 2).max(2));
                let parent: Vec<usize> = (0..below).map(|l| if l < above { l } else { draw(above) }).collect();
                of_cell.push(of_cell.last().unwrap().iter().map(|&l| parent[l]).collect());
                m.push(above);
            }
            if draw(2) == 0 {
                let f = 1 + draw(m.len() - 1);
                of_cell[f][draw(cells)] = draw(m[f]);
            }
            let meets_one = |k: usize, g: usize| {
                let mut parent = vec![None; m[k]];
                of_cell[k].iter().zip(&of_cell[g]).all(|(&a, &b)| *parent[a].get_or_insert(b) == b)
            };
            let nested = (0..m.len()).all(|k| (k + 1..m.len()).all(|g| meets_one(k, g)));
            let levels: Vec<Levels> = of_cell.into_iter().zip(&m).map(|(of_cell, &m)| Levels { of_cell, index: (0..m).collect(), n: vec![1.0; m] }).collect();
            assert_eq!(crossed(&levels).unwrap(), !nested);
            counts[usize::from(nested)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 100), "{counts:?}");
    }
}
