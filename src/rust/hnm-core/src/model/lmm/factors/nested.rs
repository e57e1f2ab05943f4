//! Nested grouping factors: the factorisation, solves and selected inverse level by level,
//! with no dense core.
//!
//! # When
//! Number the factors k = 0 … K−1 in lme4's order (0 the first, with most levels). The model
//! is a *nested chain* when each level of factor k lies within one level of every later factor
//! (pupils' classes in schools in districts): level l of k then shares rows with exactly one
//! level of each later factor g, its *ancestor* a_g(l), and a_{k+2}(l) is the parent of its
//! parent. Eliminating a level updates only its ancestors' blocks, which already couple to
//! each other, so L has A's block pattern: no fill, and every factor's diagonal part stays
//! block-diagonal, q_k × q_k per level. Otherwise (a pair of crossed factors) the dense core
//! of [`super::evaluation`] is used.
//!
//! # The factorisation (multifrontal, Liu 1992)
//! Level l of factor k has a *frontal* matrix over its own q_k rows, its ancestors'
//! r_k = Σ_{g>k} q_g rows (by increasing g) and [X y]'s p + 1 rows, w_k = r_k + p + 1 after
//! its own:
//!   D_l  = Λ_kᵀS_lΛ_k + I                − U_l[own, own],
//!   F_l  = [Λ_kᵀC_{g l}ᵀΛ_g … | Λ_kᵀB_l] − U_l[own, rest]     (q_k × w_k),
//! with C_{g l} = Z_gᵀZ_k over l's rows (q_g × q_k) and U_l the sum of its children's update
//! matrices (0 for factor 0, whose levels have no children). Then L_l L_lᵀ = D_l,
//! W_l = L_l⁻¹F_l (L's blocks below L_l, transposed) and l's update matrix
//! U_l[rest, rest] + W_lᵀW_l is added into its parent's U (w_k = q_{k+1} + w_{k+1}: the
//! frontal shapes match), or, at the last factor, into [X y]'s: L_F's matrix is
//! [X y]ᵀ[X y] − Σ of those. log|L_Z| = Σ log diag L_l. The cost is O(Σ_k m_k q_k w_k²), the
//! issue's O(Σ_k m_k q_k³) for a fixed depth: a third level costs as much as the second.
//!
//! # The selected inverse (Takahashi's recurrences, top-down)
//! With Σ = A⁻¹ and Σ_{R R} its block over l's ancestors (the parent's own-and-ancestors block,
//! known first), V_lᵀ = L_l⁻ᵀW_{l,R} (the front's random-effects columns):
//!   Σ_{R l} = −Σ_{R R} V_l,  Σ_{l l} = (L_l L_lᵀ)⁻¹ − V_lᵀΣ_{R l}.
//! A level's block over itself and its ancestors, (q_k + r_k)², is kept for the levels of the
//! later factors (their children read it) and formed on the fly for the first factor's. The
//! gradient then is the formula of [`super`] over these blocks: level l's own block and one
//! coupling per ancestor.

mod first;

use super::{Several, SeveralWorkspace};
use crate::error::{HnmError, Result};
use crate::model::lmm::{LinearMixedModel, Workspace};
use crate::numerics::dense::{cholesky_in_place, dot, inverse_from_factor, solve_lower_scaled, solve_lower_transposed_scaled};
use crate::numerics::interrupt::Checkpoint;
use crate::numerics::memory::{filled, with_capacity};

const MODEL: &str = "the blocks of the nested grouping factors";

/// The structure of a nested chain (module docs): factor 0 is the model's first factor, factor
/// k ≥ 1 is `Several::others[k − 1]`.
#[derive(Debug, Clone)]
pub(crate) struct NestedChain {
    /// `ancestors[k][l (K − 1 − k) + g − k − 1]`: the level of factor g > k that holds level l
    /// of factor k (its parent at g = k + 1).
    ancestors: Vec<Vec<usize>>,
    /// `couplings[k][l (K − 1 − k) + g − k − 1]`: the offset in `values[k]` of C_{g l}
    /// = Z_gᵀZ_k over level l's rows (q_g × q_k row-major) for each later factor g.
    couplings: Vec<Vec<usize>>,
    /// Per factor k, the couplings C_{g l} copied from `Several::values` in the order the
    /// levels read them (level by level, g ascending): there they are sorted by g's level
    /// first, so that a pass over k's levels jumped at every level of g (at 1e5 classes in
    /// 1e4 schools in 1e3 districts, a cache miss per school and evaluation).
    values: Vec<Vec<f64>>,
    /// Per factor k, its ancestors' factors g > k as (g, q_g, the first of g's columns in a
    /// front of k), by increasing g.
    lineage: Vec<Vec<(usize, usize, usize)>>,
    /// q_k, m_k and r_k = Σ_{g>k} q_g per factor.
    shapes: Vec<(usize, usize, usize)>,
}

/// Per-evaluation storage of a nested chain: per factor k, its levels' L_l (q_k × q_k) and the
/// reciprocals of their diagonals (factor 0's are the workspace's own), W_l (q_k × w_k), the
/// accumulated updates U_l (w_{k−1} × w_{k−1}) and the selected inverse's blocks
/// ((q_k + r_k)², all row-major).
#[derive(Debug, Clone)]
pub(crate) struct NestedWorkspace {
    l: Vec<Vec<f64>>,
    inverse_diagonal: Vec<Vec<f64>>,
    fronts: Vec<Vec<f64>>,
    updates: Vec<Vec<f64>>,
    sigma: Vec<Vec<f64>>,
    /// [X y]'s accumulated update, p1 × p1.
    root: Vec<f64>,
}

/// What the per-level kernels read of factor k: q_k, m_k, r_k, the front's width
/// w_k = r_k + p + 1, Λ_k and the levels' S_l, B_l; its ancestors (`lineage`, with the later
/// factors' Λ_g in `lambdas[g − 1]`), and per level their levels and couplings' offsets
/// (`ancestors`, `couplings`: `lineage.len()` per level).
struct Factor<'a> {
    q: usize,
    m: usize,
    r: usize,
    w: usize,
    lambda: &'a [f64],
    zz: &'a [f64],
    zxy: &'a [f64],
    lineage: &'a [(usize, usize, usize)],
    lambdas: &'a [Vec<f64>],
    values: &'a [f64],
    ancestors: &'a [usize],
    couplings: &'a [usize],
}

impl Factor<'_> {
    /// Level l's ancestors' levels and their couplings' offsets, in `lineage`'s order.
    #[inline(always)]
    fn of_level(&self, l: usize) -> (&[usize], &[usize]) {
        let a = self.lineage.len();
        (&self.ancestors[l * a..(l + 1) * a], &self.couplings[l * a..(l + 1) * a])
    }
}

impl NestedChain {
    /// The chain of the first factor's `m0` levels and the later factors `s` (its fronts and
    /// pairs filled), which `with_factors` found nested (each level of a factor in one level
    /// of each later one, [`super::crossed`]): the couplings are the distinct pairs of levels
    /// sharing a cell, so that each level has exactly one coupling with each later factor.
    /// `checkpoint` is asked as the couplings go ([`Checkpoint::check`], one call per coupling
    /// and pass).
    ///
    /// # Errors
    /// `TooLarge` when its maps do not fit in memory; `Interrupted` when `checkpoint` reports a
    /// request.
    pub(crate) fn of(q0: usize, m0: usize, s: &Several, checkpoint: &mut Checkpoint<'_>) -> Result<NestedChain> {
        let k_count = s.others.len() + 1;
        let levels = |k: usize| if k == 0 { m0 } else { s.others[k - 1].levels() };
        let q_of = |k: usize| if k == 0 { q0 } else { s.others[k - 1].q };
        let shapes = (0..k_count).map(|k| (q_of(k), levels(k), (k + 1..k_count).map(q_of).sum())).collect();
        let lineage = (0..k_count)
            .map(|k| {
                let mut column = 0;
                (k + 1..k_count)
                    .map(|g| {
                        column += q_of(g);
                        (g, q_of(g), column - q_of(g))
                    })
                    .collect()
            })
            .collect();
        let mut couplings = Vec::with_capacity(k_count);
        let mut ancestors = Vec::with_capacity(k_count);
        for k in 0..k_count {
            couplings.push(filled(&[levels(k), k_count - 1 - k], usize::MAX, MODEL)?);
            ancestors.push(filled(&[levels(k), k_count - 1 - k], usize::MAX, MODEL)?);
        }
        // (factor, level) of the row side, (factor, level) of the column side (the earlier).
        let all = s
            .fronts
            .iter()
            .map(|c| ((c.row.0 + 1, c.row.1), (0, c.column.1), c.value))
            .chain(s.pairs.iter().map(|c| ((c.row.0 + 1, c.row.1), (c.column.0 + 1, c.column.1), c.value)));
        for ((g, a), (k, l), value) in all {
            checkpoint.check()?;
            let slot = l * (k_count - 1 - k) + g - k - 1;
            couplings[k][slot] = value;
            ancestors[k][slot] = a;
        }
        // Every level has rows, so it couples to exactly one level of each later factor.
        let mut values = Vec::with_capacity(k_count);
        for (k, offsets) in couplings.iter_mut().enumerate() {
            let q = q_of(k);
            let width: usize = (k + 1..k_count).map(|g| q_of(g) * q).sum();
            let mut copy = with_capacity(&[levels(k), width], MODEL)?;
            for (slot, offset) in offsets.iter_mut().enumerate() {
                checkpoint.check()?;
                let size = q_of(k + 1 + slot % (k_count - 1 - k)) * q;
                let at = copy.len();
                copy.extend_from_slice(&s.values[*offset..*offset + size]);
                *offset = at;
            }
            values.push(copy);
        }
        Ok(NestedChain { ancestors, couplings, values, lineage, shapes })
    }

    fn factors(&self) -> usize {
        self.couplings.len()
    }

    /// Applies `map(block, g, k)` to every coupling C_{g l} = Z_gᵀZ_k (q_g × q_k row-major) of
    /// factor k's levels l with each later factor g, in place: a copy of the model whose
    /// random-effects columns are mapped maps `Several::values`, and the chain evaluates from its
    /// own copy of them ([`NestedChain::values`]), which must be mapped alike.
    pub(crate) fn map_couplings(&mut self, mut map: impl FnMut(&mut [f64], usize, usize)) {
        let k_count = self.factors();
        for k in 0..k_count {
            let q = self.shapes[k].0;
            for (slot, &offset) in self.couplings[k].iter().enumerate() {
                let g = k + 1 + slot % (k_count - 1 - k);
                let size = self.shapes[g].0 * q;
                map(&mut self.values[k][offset..offset + size], g, k);
            }
        }
    }

    /// The blocks' storage for `p1` columns of [X y].
    ///
    /// # Errors
    /// `TooLarge` when it does not fit in memory.
    pub(crate) fn workspace(&self, p1: usize) -> Result<NestedWorkspace> {
        let mut out = NestedWorkspace {
            l: Vec::new(),
            inverse_diagonal: Vec::new(),
            fronts: Vec::new(),
            updates: Vec::new(),
            sigma: Vec::new(),
            root: filled(&[p1, p1], 0.0, MODEL)?,
        };
        for k in 0..self.factors() {
            let (q, m, r) = self.dimensions(k);
            let (own, w) = if k == 0 { (0, r + p1) } else { (m, r + p1) };
            out.l.push(filled(&[own, q, q], 0.0, MODEL)?);
            out.inverse_diagonal.push(filled(&[own, q], 0.0, MODEL)?);
            out.fronts.push(filled(&[m, q, w], 0.0, MODEL)?);
            out.updates.push(filled(&[own, q + w, q + w], 0.0, MODEL)?);
            out.sigma.push(filled(&[own, q + r, q + r], 0.0, MODEL)?);
        }
        Ok(out)
    }

    /// q_k, m_k and r_k of factor k.
    fn dimensions(&self, k: usize) -> (usize, usize, usize) {
        self.shapes[k]
    }

    /// The level of factor k + 1 that holds level l of factor k.
    fn parent(&self, k: usize, l: usize) -> usize {
        self.ancestors[k][l * (self.factors() - 1 - k)]
    }
}

impl LinearMixedModel {
    /// Factor k of the chain as the per-level kernels read it, with the later factors' Λ
    /// `lambdas` and the first factor's `lambda0`.
    fn chain_factor<'a>(&'a self, s: &'a Several, chain: &'a NestedChain, lambdas: &'a [Vec<f64>], lambda0: &'a [f64], k: usize) -> Factor<'a> {
        let (q, m, r) = chain.dimensions(k);
        let (lambda, zz, zxy) = if k == 0 {
            (lambda0, &self.zz[..], &self.zxy[..])
        } else {
            let o = &s.others[k - 1];
            (&lambdas[k - 1][..], &o.zz[..], &o.zxy[..])
        };
        Factor {
            q,
            m,
            r,
            w: r + self.p + 1,
            lambda,
            zz,
            zxy,
            lineage: &chain.lineage[k],
            lambdas,
            values: &chain.values[k],
            ancestors: &chain.ancestors[k],
            couplings: &chain.couplings[k],
        }
    }

    /// The factorisation beyond the first factor's diagonal blocks (already in `ws`, with the
    /// later factors' Λ in `sw.lambdas`) for a nested chain (module docs), leaving L_F's matrix
    /// in `ws.lf`. Returns log|L| over the later factors' levels.
    ///
    /// # Errors
    /// `Optimizer` when a level's block is not positive definite (only through rounding: A ⪰ I).
    pub(crate) fn factorize_nested(&self, s: &Several, chain: &NestedChain, ws: &mut Workspace) -> Result<f64> {
        let p1 = self.p + 1;
        let Workspace { l: l0, inverse_diagonal: inverse0, lambda: lambda0, lf, several, .. } = ws;
        let SeveralWorkspace { lambdas, nested, .. } = several.as_mut().expect("a workspace of a model with several factors");
        let nw = nested.as_mut().expect("a workspace of a nested chain");
        let NestedWorkspace { l: ls, inverse_diagonal: inverses, fronts, updates, root, .. } = nw;
        for update in updates.iter_mut() {
            update.fill(0.0);
        }
        root.fill(0.0);
        let mut logdet = 0.0;
        for k in 0..chain.factors() {
            let f = self.chain_factor(s, chain, lambdas, lambda0, k);
            let (done, rest) = updates.split_at_mut(k + 1);
            // The update matrices go to the next factor's U blocks, or at the last to [X y]'s.
            let (target, to_root) = match rest.first_mut() {
                Some(parent) => (&mut parent[..], false),
                None => (&mut root[..], true),
            };
            let (own, l, inverse) = if k == 0 { (None, &mut l0[..], &mut inverse0[..]) } else { (Some(&done[k][..]), &mut ls[k][..], &mut inverses[k][..]) };
            // A scalar first factor's many levels by the kernels of its shape.
            if k == 0 && f.q == 1 && first::factor(&f, inverse, &mut fronts[k], target) {
                continue;
            }
            // Literal q and w: the loops over a front's and an update's columns unroll.
            logdet += with_literal!(f.q, q in [1, 2] => with_literal!(f.w, w in [3, 4, 5, 6] => factor_levels(q, w, &f, own, l, inverse, &mut fronts[k], target, to_root)))?;
        }
        for a in 0..p1 {
            for c in 0..=a {
                lf[a * p1 + c] = self.xy[a * p1 + c] - root[a * p1 + c];
            }
        }
        Ok(logdet)
    }

    /// u = A⁻¹ΛᵀZᵀ(y − Xβ) (column 0) and, with `rhs` = 1 + p, Û (the others) into `solved`
    /// (random effects × `rhs`, row-major, the first factor's levels then the core's order),
    /// given the forward halves in the fronts' [X y] columns: the backward solve through Lᵀ,
    /// the last factor first, each level less its ancestors' solved values.
    pub(crate) fn solve_modes_nested(&self, s: &Several, chain: &NestedChain, rhs: usize, ws: &mut Workspace) {
        let p = self.p;
        let Workspace { l: l0, inverse_diagonal: inverse0, w: beta_w, x_inverse, lambda: lambda0, several, .. } = ws;
        let SeveralWorkspace { lambdas, nested, solved, .. } = several.as_mut().expect("a workspace of a model with several factors");
        let nw = nested.as_ref().expect("a workspace of a nested chain");
        let combine = combine_matrix(beta_w, x_inverse, p, rhs);
        let starts = self.chain_starts(s, chain);
        let mut y = vec![0.0; (0..chain.factors()).map(|k| chain.dimensions(k).0).max().unwrap_or(1) * rhs];
        for k in (0..chain.factors()).rev() {
            let f = self.chain_factor(s, chain, lambdas, lambda0, k);
            let (l, inverse) = if k == 0 { (&l0[..], &inverse0[..]) } else { (&nw.l[k][..], &nw.inverse_diagonal[k][..]) };
            if k == 0 && f.q == 1 && first::solve(&f, &nw.fronts[0], inverse, rhs, &combine, &starts, solved) {
                continue;
            }
            let levels = Levels { l, inverse, fronts: &nw.fronts[k] };
            with_literal!(f.q, q in [1, 2] => with_literal!(f.w, w in [3, 4, 5, 6] => solve_levels(q, w, &f, &levels, rhs, &combine, &starts, starts[k], &mut y, solved)));
        }
    }

    /// Each factor's first row in the workspace's `solved` (the first factor's levels, then
    /// the later factors' in the core's order).
    fn chain_starts(&self, s: &Several, chain: &NestedChain) -> Vec<usize> {
        (0..chain.factors()).map(|k| if k == 0 { 0 } else { self.n.len() * self.q + s.others[k - 1].offset }).collect()
    }

    /// The gradient's quadratic terms of a nested chain (those of
    /// `selected_inverse::finish_gradient`, without its buffers e and ZᵀZΛ(u, Û)), added into
    /// `gradients` (∂/∂Λ_k per factor) from `solved` (u and, with `rhs` = 1 + p, Û) as
    /// [`Self::solve_modes_nested`] left it: per level l of factor k, with x_l its rows of
    /// `solved` and e_l = Zᵀ[X y] over its rows times w (and R_X⁻ᵀ),
    ///   v_l = e_l − S_lΛ_k x_l − Σ_{g>k} C_{g l}ᵀΛ_g x_{a_g(l)} − Σ_{descendants d} C_{k d}Λ x_d
    /// and ∂/∂Λ_k −= (2/σ̂²) v_l[·, 0] x_l[·, 0]ᵀ + 2 Σ_{c ≥ 1} v_l[·, c] x_l[·, c]ᵀ. The
    /// descendants' terms are scattered into their ancestors' rows of `sw.product` as each
    /// factor's levels are passed, from the first factor up, so every level's v is complete
    /// when its factor's turn comes; Λ_g x for the later factors' levels is formed first (in
    /// `sw.scaled`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn nested_quadratic_gradient(
        &self, s: &Several, chain: &NestedChain, rhs: usize, two_over_sigma2: f64, ws: &Workspace, sw: &mut SeveralWorkspace, gradients: &mut [Vec<f64>],
    ) {
        let p1 = self.p + 1;
        let combine = combine_matrix(&ws.w, &ws.x_inverse, self.p, rhs);
        let starts = self.chain_starts(s, chain);
        let SeveralWorkspace { lambdas, solved, product, scaled, .. } = sw;
        let first_rows = self.n.len() * self.q;
        let total = first_rows + s.core_random;
        let (solved, product, scaled) = (&solved[..total * rhs], &mut product[..total * rhs], &mut scaled[..total * rhs]);
        product[first_rows * rhs..].fill(0.0);
        for k in 1..chain.factors() {
            let (q, m, _) = chain.dimensions(k);
            let lambda = &lambdas[k - 1];
            let range = starts[k] * rhs..(starts[k] + m * q) * rhs;
            for (x, lx) in solved[range.clone()].chunks_exact(q * rhs).zip(scaled[range].chunks_exact_mut(q * rhs)) {
                for r in 0..q {
                    for c in 0..rhs {
                        lx[r * rhs + c] = (0..=r).map(|t| lambda[r * q + t] * x[t * rhs + c]).sum();
                    }
                }
            }
        }
        let widest = (0..chain.factors()).map(|k| chain.dimensions(k).0).max().unwrap_or(1) * rhs;
        let (mut lx, mut v) = (vec![0.0; widest], vec![0.0; widest]);
        for (k, gradient) in gradients.iter_mut().enumerate().take(chain.factors()) {
            let f = self.chain_factor(s, chain, lambdas, &ws.lambda, k);
            if k == 0 && f.q == 1 && first::quadratic(&f, rhs, &combine, two_over_sigma2, &starts, solved, scaled, product, gradient) {
                continue;
            }
            let (q, start) = (f.q, starts[k]);
            let (lx, v) = (&mut lx[..q * rhs], &mut v[..q * rhs]);
            for level in 0..f.m {
                let at = (start + level * q) * rhs;
                let x = &solved[at..at + q * rhs];
                for r in 0..q {
                    for c in 0..rhs {
                        lx[r * rhs + c] = (0..=r).map(|t| f.lambda[r * q + t] * x[t * rhs + c]).sum();
                    }
                }
                // v = e − (the descendants' terms) − S Λ x − Σ_g Cᵀ Λ_g x_a, then the ancestors'
                // rows given C Λ x.
                let (b, zz) = (&f.zxy[level * q * p1..(level + 1) * q * p1], &f.zz[level * q * q..(level + 1) * q * q]);
                for r in 0..q {
                    for c in 0..rhs {
                        let e: f64 = (0..p1).map(|a| b[r * p1 + a] * combine[a * rhs + c]).sum();
                        let own: f64 = (0..q).map(|t| zz[r * q + t] * lx[t * rhs + c]).sum();
                        // The first factor's levels have no descendants (nor cleared rows).
                        let below = if k == 0 { 0.0 } else { product[at + r * rhs + c] };
                        v[r * rhs + c] = e - below - own;
                    }
                }
                let (ancestors, couplings) = f.of_level(level);
                for ((&(g, qg, _), &ancestor), &value) in f.lineage.iter().zip(ancestors).zip(couplings) {
                    // C_{g l} is q_g × q_k.
                    let (coupling, row) = (&f.values[value..value + qg * q], (starts[g] + ancestor * qg) * rhs);
                    for r in 0..q {
                        for c in 0..rhs {
                            v[r * rhs + c] -= (0..qg).map(|j| coupling[j * q + r] * scaled[row + j * rhs + c]).sum::<f64>();
                        }
                    }
                    for j in 0..qg {
                        for c in 0..rhs {
                            product[row + j * rhs + c] += (0..q).map(|r| coupling[j * q + r] * lx[r * rhs + c]).sum::<f64>();
                        }
                    }
                }
                for r in 0..q {
                    for t in 0..q {
                        let mut value = two_over_sigma2 * v[r * rhs] * x[t * rhs];
                        for c in 1..rhs {
                            value += 2.0 * v[r * rhs + c] * x[t * rhs + c];
                        }
                        gradient[r * q + t] -= value;
                    }
                }
            }
        }
    }

    /// The selected inverse's blocks of the later factors' levels over themselves and their
    /// ancestors (module docs), top-down, into the nested workspace's `sigma`.
    pub(crate) fn nested_inverse(&self, chain: &NestedChain, ws: &mut Workspace) {
        let p1 = self.p + 1;
        let sw = ws.several.as_mut().expect("a workspace of a model with several factors");
        let nw = sw.nested.as_mut().expect("a workspace of a nested chain");
        for k in (1..chain.factors()).rev() {
            let (q, m, r) = chain.dimensions(k);
            let size = (q + r) * (q + r);
            let (own, above) = nw.sigma.split_at_mut(k + 1);
            let levels = Levels { l: &nw.l[k], inverse: &nw.inverse_diagonal[k], fronts: &nw.fronts[k] };
            let mut scratch = vec![0.0; q * r + q * q];
            with_literal!(q, q in [1, 2] => {
                for level in 0..m {
                    let parent = above.first().map_or(&[][..], |sigma| {
                        let p = chain.parent(k, level);
                        &sigma[p * r * r..(p + 1) * r * r]
                    });
                    level_inverse(q, &levels, level, r + p1, r, parent, &mut scratch, &mut own[k][level * size..(level + 1) * size]);
                }
            });
        }
    }

    /// The first factor's levels with their L, the reciprocals of L's diagonal and fronts.
    fn first_levels<'a>(ws: &'a Workspace, nw: &'a NestedWorkspace) -> Levels<'a> {
        Levels { l: &ws.l, inverse: &ws.inverse_diagonal, fronts: &nw.fronts[0] }
    }

    /// Σ_{l l} of level `level` of factor k (q_k × q_k) into `out`, after [`Self::nested_inverse`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn nested_level_inverse(&self, chain: &NestedChain, ws: &Workspace, sw: &SeveralWorkspace, k: usize, level: usize, out: &mut [f64]) {
        let (q, _, r) = chain.dimensions(k);
        let nw = sw.nested.as_ref().expect("a workspace of a nested chain");
        let mut full = vec![0.0; (q + r) * (q + r)];
        if k == 0 {
            let mut scratch = vec![0.0; q * r + q * q];
            let parent = &nw.sigma[1][chain.parent(0, level) * r * r..(chain.parent(0, level) + 1) * r * r];
            level_inverse(q, &Self::first_levels(ws, nw), level, r + self.p + 1, r, parent, &mut scratch, &mut full);
        } else {
            full.copy_from_slice(&nw.sigma[k][level * (q + r) * (q + r)..(level + 1) * (q + r) * (q + r)]);
        }
        for i in 0..q {
            out[i * q..(i + 1) * q].copy_from_slice(&full[i * (q + r)..i * (q + r) + q]);
        }
    }

    /// log|A|'s part of the gradient, ∂/∂Λ_k per factor into `gradients` (module docs of
    /// [`super`]), from the selected inverse of a nested chain: per level, 2 S_lΛ_k Σ_{l l} and
    /// per ancestor g, with Σ_{g l} its block of Σ_{R l}, 2 C_{g l}ᵀΛ_g Σ_{g l} (to k) and
    /// 2 C_{g l}Λ_k Σ_{g l}ᵀ (to g). The first factor's blocks are formed level by level.
    pub(crate) fn nested_logdet_gradient(&self, s: &Several, chain: &NestedChain, ws: &Workspace, sw: &SeveralWorkspace, gradients: &mut [Vec<f64>]) {
        let nw = sw.nested.as_ref().expect("a workspace of a nested chain");
        for k in 0..chain.factors() {
            let f = self.chain_factor(s, chain, &sw.lambdas, &ws.lambda, k);
            let (own, later) = gradients.split_at_mut(k + 1);
            if k == 0 && f.q == 1 && first::gradient(&f, &nw.fronts[0], &ws.inverse_diagonal, &nw.sigma[1], &mut own[0], later) {
                continue;
            }
            let n = f.q + f.r;
            let mut sigma = vec![0.0; n * n];
            let mut scratch = vec![0.0; f.q * f.r + f.q * f.q];
            let first = Self::first_levels(ws, nw);
            // The first factor's Σ over each level and its ancestors from its parent's.
            let first = (k == 0).then(|| (&first, &nw.sigma[1][..], f.w));
            // Literal q and r: at the first factor's many levels the loops over both unroll.
            with_literal!(f.q, q in [1, 2] => with_literal!(f.r, r in [0, 1, 2, 3] => gradient_levels(q, r, &f, first, &nw.sigma[k], &mut sigma, &mut scratch, &mut own[k], later)));
        }
    }
}

/// `combined`'s columns ([`LinearMixedModel::combined`]: w = (−β, 1) for column 0, R_X⁻ᵀ's
/// for the others) as a p + 1 × `rhs` matrix, so that a level's right-hand sides are one small
/// product of its [X y] columns.
fn combine_matrix(w: &[f64], x_inverse: &[f64], p: usize, rhs: usize) -> Vec<f64> {
    let mut combine = vec![0.0; (p + 1) * rhs];
    for a in 0..=p {
        for c in 0..rhs {
            combine[a * rhs + c] = LinearMixedModel::combined(&|b| if a == b { 1.0 } else { 0.0 }, c, w, x_inverse, p);
        }
    }
    combine
}

/// A factor's levels as factored: their L_l, the reciprocals of L_l's diagonal, and their fronts.
struct Levels<'a> {
    l: &'a [f64],
    inverse: &'a [f64],
    fronts: &'a [f64],
}

/// The factorisation of factor `f`'s levels (module docs) for a literal `q` = q_k and front
/// width `w` = w_k: their L_l
/// (from the children's updates `own` into `ls`, `inverse` for k > 0; given for the first
/// factor, `own` None), their fronts into `fronts`, and their update matrices added into
/// `target` (the next factor's U blocks, w_k × w_k each, or with `to_root` [X y]'s). Returns
/// Σ log diag L_l over the levels it factors.
///
/// # Errors
/// `Optimizer` when a level's block is not positive definite (only through rounding: A ⪰ I).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn factor_levels(
    q: usize, w: usize, f: &Factor<'_>, own: Option<&[f64]>, ls: &mut [f64], inverse: &mut [f64], fronts: &mut [f64], target: &mut [f64], to_root: bool,
) -> Result<f64> {
    let r = f.r;
    let p1 = w - r;
    let lambda = &f.lambda[..q * q];
    let mut logdet = 0.0;
    for level in 0..f.m {
        let (l, inverse) = (&mut ls[level * q * q..(level + 1) * q * q], &mut inverse[level * q..(level + 1) * q]);
        let update = own.map(|u| &u[level * (q + w) * (q + w)..(level + 1) * (q + w) * (q + w)]);
        if let Some(update) = update {
            // D_l = Λᵀ S Λ + I − U_l[own, own] (its lower triangle), then L_l.
            let s = &f.zz[level * q * q..(level + 1) * q * q];
            for i in 0..q {
                for j in 0..=i {
                    let mut sum = if i == j { 1.0 } else { 0.0 };
                    for a in i..q {
                        sum += lambda[a * q + i] * (j..q).map(|b| s[a * q + b] * lambda[b * q + j]).sum::<f64>();
                    }
                    l[i * q + j] = sum - update[i * (q + w) + j];
                }
            }
            if !cholesky_in_place(l, q) {
                return Err(HnmError::Optimizer("a nested factor's block lost positive definiteness".into()));
            }
            for i in 0..q {
                inverse[i] = 1.0 / l[i * q + i];
                logdet += l[i * q + i].ln();
            }
        }
        // F_l: the ancestors' couplings Λ_kᵀ C_gᵀ Λ_g, then Λ_kᵀ B_l, less U_l[own, rest].
        let front = &mut fronts[level * q * w..(level + 1) * q * w];
        let (ancestors, couplings) = f.of_level(level);
        for (&(g, qg, column), &value) in f.lineage.iter().zip(couplings) {
            let (c, lambda_g) = (&f.values[value..value + qg * q], &f.lambdas[g - 1][..qg * qg]);
            // Entry (a, b) = Σ_{j ≥ b} Λ_g[j][b] Σ_{i ≥ a} Λ_k[i][a] C[j][i] (C is q_g × q_k).
            for a in 0..q {
                for b in 0..qg {
                    front[a * w + column + b] = (b..qg).map(|j| lambda_g[j * qg + b] * (a..q).map(|i| lambda[i * q + a] * c[j * q + i]).sum::<f64>()).sum();
                }
            }
        }
        let b = &f.zxy[level * q * p1..(level + 1) * q * p1];
        for a in 0..q {
            for x in 0..p1 {
                front[a * w + r + x] = (a..q).map(|i| lambda[i * q + a] * b[i * p1 + x]).sum();
            }
        }
        if let Some(update) = update {
            // U_l[own, rest] read as U_l[rest, own]: only lower triangles are summed.
            for a in 0..q {
                for c in 0..w {
                    front[a * w + c] -= update[(q + c) * (q + w) + a];
                }
            }
        }
        solve_lower_scaled(l, inverse, q, front, w);
        // The update matrix U_l[rest, rest] + W_lᵀW_l into the parent's U or [X y]'s: the
        // lower triangle only, as the Cholesky factors and the fronts read it.
        let parent = if to_root { 0 } else { ancestors[0] };
        let target = &mut target[parent * w * w..(parent + 1) * w * w];
        if let Some(update) = update {
            for a in 0..w {
                let from = &update[(q + a) * (q + w) + q..(q + a) * (q + w) + q + a + 1];
                for (t, u) in target[a * w..a * w + a + 1].iter_mut().zip(from) {
                    *t += u;
                }
            }
        }
        for a in 0..w {
            let row = &mut target[a * w..a * w + a + 1];
            for i in 0..q {
                let (fa, fi) = (front[i * w + a], &front[i * w..i * w + a + 1]);
                for (t, &fc) in row.iter_mut().zip(fi) {
                    *t += fa * fc;
                }
            }
        }
    }
    Ok(logdet)
}

/// The backward solve through factor `f`'s levels (see
/// [`LinearMixedModel::solve_modes_nested`]) for a literal `q` = q_k and `w` = w_k: per level,
/// its fronts'
/// [X y] columns times `combine` (p + 1 × `rhs`) less its ancestors' solved rows (factor g's
/// first row in `solved` is `starts[g]`, k's `start`), through L_lᵀ, into `solved`; `y` holds
/// q × `rhs` values.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn solve_levels(
    q: usize, w: usize, f: &Factor<'_>, levels: &Levels<'_>, rhs: usize, combine: &[f64], starts: &[usize], start: usize, y: &mut [f64], solved: &mut [f64],
) {
    let r = f.r;
    let y = &mut y[..q * rhs];
    for level in 0..f.m {
        let front = &levels.fronts[level * q * w..(level + 1) * q * w];
        let (ancestors, _) = f.of_level(level);
        for i in 0..q {
            let row = &front[i * w..(i + 1) * w];
            let yi = &mut y[i * rhs..(i + 1) * rhs];
            for (c, value) in yi.iter_mut().enumerate() {
                *value = row[r..].iter().enumerate().map(|(a, x)| x * combine[a * rhs + c]).sum();
            }
            for (&(g, qg, column), &ancestor) in f.lineage.iter().zip(ancestors) {
                let at = starts[g] + ancestor * qg;
                for t in 0..qg {
                    let x = row[column + t];
                    for (value, &u) in yi.iter_mut().zip(&solved[(at + t) * rhs..(at + t + 1) * rhs]) {
                        *value -= x * u;
                    }
                }
            }
        }
        solve_lower_transposed_scaled(&levels.l[level * q * q..(level + 1) * q * q], &levels.inverse[level * q..(level + 1) * q], q, y, rhs);
        let at = start + level * q;
        solved[at * rhs..(at + q) * rhs].copy_from_slice(y);
    }
}

/// log|A|'s part of the gradient over factor `f`'s levels (see
/// [`LinearMixedModel::nested_logdet_gradient`]) for a literal `q` = q_k and `r` = r_k, added into
/// `own` (∂/∂Λ_k) and `later` (∂/∂Λ_g at g − k − 1). Each level's Σ over itself and its
/// ancestors is read from `sigmas` or, for the first factor (`first`: its levels, its
/// parents' Σ and its fronts' width), formed into `sigma` by [`level_inverse`] with
/// `scratch`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gradient_levels(
    q: usize, r: usize, f: &Factor<'_>, first: Option<(&Levels<'_>, &[f64], usize)>, sigmas: &[f64], sigma: &mut [f64], scratch: &mut [f64], own: &mut [f64],
    later: &mut [Vec<f64>],
) {
    let n = q + r;
    let lambda = &f.lambda[..q * q];
    let k = f.lineage.first().map_or(0, |&(g, _, _)| g - 1);
    for level in 0..f.m {
        let (ancestors, couplings) = f.of_level(level);
        let sigma: &[f64] = match first {
            Some((levels, parents, w)) => {
                let p = ancestors[0];
                level_inverse(q, levels, level, w, r, &parents[p * r * r..(p + 1) * r * r], scratch, sigma);
                sigma
            }
            None => &sigmas[level * n * n..(level + 1) * n * n],
        };
        // 2 S_l Λ_k Σ_ll, with (S Λ)[i][a] = Σ_{b ≥ a} S[i][b] Λ[b][a].
        let s = &f.zz[level * q * q..(level + 1) * q * q];
        for i in 0..q {
            for a in 0..q {
                let t = 2.0 * (a..q).map(|b| s[i * q + b] * lambda[b * q + a]).sum::<f64>();
                for j in 0..q {
                    own[i * q + j] += t * sigma[a * n + j];
                }
            }
        }
        for (&(g, qg, column), &value) in f.lineage.iter().zip(couplings) {
            let (c, lambda_g) = (&f.values[value..value + qg * q], &f.lambdas[g - 1][..qg * qg]);
            let other = &mut later[g - k - 1];
            // Σ_{g l}[a][j] = sigma[(q + column + a) n + j].
            for a in 0..qg {
                let sigma_a = &sigma[(q + column + a) * n..(q + column + a) * n + q];
                for i in 0..q {
                    // 2 (Cᵀ Λ_g)[i][a] Σ_{g l}[a][·] into row i of ∂/∂Λ_k.
                    let t = 2.0 * (a..qg).map(|x| c[x * q + i] * lambda_g[x * qg + a]).sum::<f64>();
                    for j in 0..q {
                        own[i * q + j] += t * sigma_a[j];
                    }
                }
                for b in 0..qg {
                    // 2 Σ_j (C Λ_k)[a][j] Σ_{g l}[b][j] into (a, b) of ∂/∂Λ_g.
                    let sigma_b = &sigma[(q + column + b) * n..(q + column + b) * n + q];
                    other[a * qg + b] += 2.0 * (0..q).map(|j| (j..q).map(|x| c[a * q + x] * lambda[x * q + j]).sum::<f64>() * sigma_b[j]).sum::<f64>();
                }
            }
        }
    }
}

/// Σ over level `level` of `levels` and its ancestors into `out` ((q + r)² row-major) by
/// Takahashi's recurrences (module docs), for a literal `q`, from its L (with the reciprocals of
/// its diagonal), its front W (q × w, the ancestors' r columns first) and Σ over its ancestors
/// `parent` (r × r); `scratch` (q r + q² values) holds Vᵀ and (L Lᵀ)⁻¹.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn level_inverse(q: usize, levels: &Levels<'_>, level: usize, w: usize, r: usize, parent: &[f64], scratch: &mut [f64], out: &mut [f64]) {
    let n = q + r;
    let (l, inverse, front) =
        (&levels.l[level * q * q..(level + 1) * q * q], &levels.inverse[level * q..(level + 1) * q], &levels.fronts[level * q * w..(level + 1) * q * w]);
    // Vᵀ = L⁻ᵀ W_R (q × r), then (L Lᵀ)⁻¹ (q × q).
    let (vt, own) = scratch[..q * r + q * q].split_at_mut(q * r);
    for i in 0..q {
        vt[i * r..(i + 1) * r].copy_from_slice(&front[i * w..i * w + r]);
    }
    solve_lower_transposed_scaled(l, inverse, q, vt, r);
    // Σ_{R l} = −Σ_RR V (r × q), written as the block below the level's own rows and mirrored.
    for a in 0..r {
        let row = &parent[a * r..(a + 1) * r];
        for i in 0..q {
            let value = -dot(row, &vt[i * r..(i + 1) * r]);
            out[(q + a) * n + i] = value;
            out[i * n + q + a] = value;
        }
        out[(q + a) * n + q..(q + a + 1) * n].copy_from_slice(row);
    }
    // Σ_ll = (L Lᵀ)⁻¹ − Vᵀ Σ_{R l}.
    if q == 1 {
        own[0] = inverse[0] * inverse[0];
    } else {
        inverse_from_factor(l, inverse, q, own);
    }
    for i in 0..q {
        for j in 0..q {
            out[i * n + j] = own[i * q + j] - (0..r).map(|a| vt[i * r + a] * out[(q + a) * n + j]).sum::<f64>();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::data::blocks::Column;
    use crate::model::lmm::{GroupingFactor, LinearMixedModel, Term};
    use crate::model::one_way::profiled_deviance::Criterion;
    use crate::numerics::interrupt::{Checkpoint, Never};
    use crate::CrossProducts;

    /// Pupils in 18 classes in 6 schools (in 2 districts with `districts`), lme4's order
    /// (classes first), a random slope on x for schools and, with `class_slope`, for classes;
    /// 160 rows from a fixed pseudo-random stream.
    fn three_levels(class_slope: bool, districts: bool) -> LinearMixedModel {
        use Term::{Intercept as I, Variable as V};
        let n = 160;
        let mut state = 7u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let class: Vec<usize> = (0..n).map(|_| (next() * 18.0) as usize).collect();
        let x: Vec<f64> = (0..n).map(|_| 3.0 * next() + 5.0).collect();
        let y: Vec<f64> = (0..n).map(|i| 1.0 + 0.4 * x[i] + ((class[i] * 7) % 5) as f64 * 0.3 + (class[i] % 6) as f64 * 0.1 * x[i] + next()).collect();
        let columns = [Column::Double(&y), Column::Double(&x)];
        let codes = class.iter().map(|&c| c as i32 + 1);
        let stats = CrossProducts::from_columns(&columns, codes, 18, &mut Checkpoint::new(&Never)).unwrap().stats;
        let factor = |level_of_group: Vec<usize>, levels, random: Vec<Term>, blocks| GroupingFactor { level_of_group, levels, random, blocks };
        let (class_terms, class_blocks) = if class_slope { (vec![I, V(1)], vec![2]) } else { (vec![I], vec![1]) };
        let mut factors = vec![factor((0..18).collect(), 18, class_terms, class_blocks), factor((0..18).map(|c| c / 3).collect(), 6, vec![I, V(1)], vec![2])];
        if districts {
            factors.push(factor((0..18).map(|c| c / 9).collect(), 2, vec![I], vec![1]));
        }
        LinearMixedModel::with_factors(&stats, 0, vec![I, V(1)], &factors, &mut Checkpoint::new(&Never)).unwrap()
    }

    /// The nested chain's criterion, gradient and conditional covariances equal the dense
    /// core's (the same model with the chain removed) at several θ, and its workspace holds
    /// no dense core: classes with a random slope in schools in districts, and a scalar first
    /// factor (its own kernels, `first`) over schools in districts and over schools alone.
    #[test]
    fn the_nested_chain_equals_the_dense_core() {
        let schools = [[0.2, 0.4, 1.1], [0.0, 0.1, 2.0], [-0.5, 0.8, 0.0]];
        let (classes, districts) = ([[0.9, -0.3, 0.5], [0.3, 0.6, 0.2], [1.5, 0.0, 0.0]], [0.7, 1.4, 0.2]);
        for (class_slope, with_districts) in [(true, true), (false, true), (false, false)] {
            let nested = three_levels(class_slope, with_districts);
            assert!(nested.several.as_ref().unwrap().nested.is_some());
            let mut dense = nested.try_clone().unwrap();
            dense.several.as_mut().unwrap().nested = None;
            let (mut ws_nested, mut ws_dense) = (nested.workspace().unwrap(), dense.workspace().unwrap());
            let sw = ws_nested.several.as_ref().unwrap();
            assert!(sw.core.is_empty() && sw.sigma_cc.is_empty() && sw.inverse_l.is_empty());
            for i in 0..3 {
                let class = if class_slope { &classes[i][..] } else { &classes[i][..1] };
                let theta: Vec<f64> = class.iter().chain(&schools[i]).chain(with_districts.then_some(&districts[i])).copied().collect();
                for criterion in [Criterion::Ml, Criterion::Reml] {
                    let (a, ga) = nested.deviance_and_gradient(criterion, &theta, &mut ws_nested).unwrap();
                    let (b, gb) = dense.deviance_and_gradient(criterion, &theta, &mut ws_dense).unwrap();
                    assert!((a - b).abs() <= 1e-11 * b.abs(), "{a} vs {b}");
                    for (x, y) in ga.iter().zip(&gb) {
                        assert!((x - y).abs() <= 1e-8 * (1.0 + y.abs()), "{ga:?} vs {gb:?}");
                    }
                }
            }
            let fit = nested.fit(Criterion::Reml, None, &mut Checkpoint::new(&Never)).unwrap();
            let checkpoint = &mut Checkpoint::new(&Never);
            let (a, b) = (nested.random_effects_by_factor(&fit, checkpoint).unwrap(), dense.random_effects_by_factor(&fit, checkpoint).unwrap());
            for (x, y) in a.iter().zip(&b) {
                for (u, v) in x.modes.iter().zip(&y.modes).chain(x.conditional_covariances.iter().zip(&y.conditional_covariances)) {
                    assert!((u - v).abs() <= 1e-9 * (1.0 + v.abs()), "{u} vs {v}");
                }
            }
        }
    }

    /// A crossed pair (a level of the first factor in two levels of the second) keeps the
    /// dense core.
    #[test]
    fn a_crossed_pair_is_not_a_chain() {
        let y: Vec<f64> = (0..12).map(|i| (i * i % 7) as f64).collect();
        let stats = CrossProducts::from_columns(&[Column::Double(&y)], (0..12).map(|i| i % 6 + 1), 6, &mut Checkpoint::new(&Never)).unwrap().stats;
        let factor = |level_of_group: Vec<usize>, levels| GroupingFactor { level_of_group, levels, random: vec![Term::Intercept], blocks: vec![1] };
        let model = LinearMixedModel::with_factors(
            &stats,
            0,
            vec![Term::Intercept],
            &[factor(vec![0, 1, 2, 0, 1, 2], 3), factor(vec![0, 0, 1, 1, 0, 1], 2)],
            &mut Checkpoint::new(&Never),
        )
        .unwrap();
        assert!(model.several.as_ref().unwrap().nested.is_none());
    }
}
