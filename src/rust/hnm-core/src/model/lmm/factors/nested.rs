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

use super::{coupled_transposed, transposed_times, Several, SeveralWorkspace};
use crate::error::{HnmError, Result};
use crate::model::lmm::{LinearMixedModel, Workspace};
use crate::numerics::dense::{
    cholesky_in_place, inverse_from_factor, lambda_transposed_times, multiply, solve_lower_scaled, solve_lower_transposed_scaled, times_lambda,
};
use crate::numerics::memory::filled;

const MODEL: &str = "the blocks of the nested grouping factors";

/// The structure of a nested chain (module docs): factor 0 is the model's first factor, factor
/// k ≥ 1 is `Several::others[k − 1]`.
#[derive(Debug, Clone)]
pub(crate) struct NestedChain {
    /// `parents[k][l]`: the level of factor k + 1 that holds level l of factor k (k < K − 1).
    parents: Vec<Vec<usize>>,
    /// `couplings[k][l (K − 1 − k) + g − k − 1]`: the offset in `Several::values` of C_{g l}
    /// = Z_gᵀZ_k over level l's rows (q_g × q_k row-major) for each later factor g.
    couplings: Vec<Vec<usize>>,
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

/// The shape of factor k: q_k, m_k, r_k (its ancestors' rows) and Λ_k.
struct Shape<'a> {
    q: usize,
    m: usize,
    r: usize,
    lambda: &'a [f64],
    zz: &'a [f64],
    zxy: &'a [f64],
}

impl NestedChain {
    /// The chain of the first factor's `m0` levels and the later factors `s` (its fronts and
    /// pairs filled), or None when two factors are crossed: some level of one shares rows with
    /// two levels of a later one.
    ///
    /// # Errors
    /// `TooLarge` when its maps do not fit in memory.
    pub(crate) fn of(q0: usize, m0: usize, s: &Several) -> Result<Option<NestedChain>> {
        let k_count = s.others.len() + 1;
        let levels = |k: usize| if k == 0 { m0 } else { s.others[k - 1].levels() };
        let shapes = (0..k_count).map(|k| (if k == 0 { q0 } else { s.others[k - 1].q }, levels(k), s.others[k..].iter().map(|o| o.q).sum())).collect();
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
            let slot = l * (k_count - 1 - k) + g - k - 1;
            if couplings[k][slot] != usize::MAX {
                return Ok(None);
            }
            couplings[k][slot] = value;
            ancestors[k][slot] = a;
        }
        // Every level has rows, so it couples to one level of each later factor; the first
        // later factor's is its parent (the later ones follow by transitivity of nesting).
        let parents = ancestors.into_iter().take(k_count - 1).enumerate().map(|(k, a)| a.into_iter().step_by(k_count - 1 - k).collect()).collect();
        Ok(Some(NestedChain { parents, couplings, shapes }))
    }

    fn factors(&self) -> usize {
        self.couplings.len()
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

    /// Level l of factor k's ancestors: (factor g, its level, the ancestor's first column in
    /// l's front), by increasing g.
    fn ancestors<'a>(&'a self, s: &'a Several, k: usize, l: usize) -> impl Iterator<Item = (usize, usize, usize)> + 'a {
        let (mut level, mut column) = (l, 0);
        (k + 1..self.factors()).map(move |g| {
            level = self.parents[g - 1][level];
            let out = (g, level, column);
            column += s.others[g - 1].q;
            out
        })
    }

    fn coupling(&self, k: usize, l: usize, g: usize) -> usize {
        self.couplings[k][l * (self.factors() - 1 - k) + g - k - 1]
    }
}

impl LinearMixedModel {
    fn shape<'a>(&'a self, s: &'a Several, chain: &NestedChain, lambdas: &'a [Vec<f64>], lambda0: &'a [f64], k: usize) -> Shape<'a> {
        let (q, m, r) = chain.dimensions(k);
        if k == 0 {
            Shape { q, m, r, lambda: lambda0, zz: &self.zz, zxy: &self.zxy }
        } else {
            let o = &s.others[k - 1];
            Shape { q, m, r, lambda: &lambdas[k - 1], zz: &o.zz, zxy: &o.zxy }
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
        let sw = several.as_mut().expect("a workspace of a model with several factors");
        let nw = sw.nested.as_mut().expect("a workspace of a nested chain");
        let k_count = chain.factors();
        let q_max = (0..k_count).map(|k| chain.dimensions(k).0).max().unwrap_or(1);
        let (mut scratch, mut block, mut t) = (vec![0.0; q_max * q_max], vec![0.0; q_max * q_max], vec![0.0; q_max * q_max]);
        let mut b = vec![0.0; q_max * p1];
        for updates in &mut nw.updates {
            updates.fill(0.0);
        }
        nw.root.fill(0.0);
        let mut logdet = 0.0;
        for k in 0..k_count {
            let shape = self.shape(s, chain, &sw.lambdas, lambda0, k);
            let (q, r) = (shape.q, shape.r);
            let w = r + p1;
            let (done, rest) = nw.updates.split_at_mut(k + 1);
            let (own_updates, mut parent_updates) = (&done[k], rest.first_mut());
            for level in 0..shape.m {
                let update = &own_updates[if k == 0 { 0..0 } else { level * (q + w) * (q + w)..(level + 1) * (q + w) * (q + w) }];
                let (l, inverse) = if k == 0 {
                    (&l0[level * q * q..(level + 1) * q * q], &inverse0[level * q..(level + 1) * q])
                } else {
                    // D_l = Λᵀ S Λ + I − U_l[own, own].
                    let (l, inverse) = (&mut nw.l[k][level * q * q..(level + 1) * q * q], &mut nw.inverse_diagonal[k][level * q..(level + 1) * q]);
                    times_lambda(&shape.zz[level * q * q..(level + 1) * q * q], shape.lambda, q, &mut t[..q * q]);
                    lambda_transposed_times(shape.lambda, &t[..q * q], q, q, l);
                    for i in 0..q {
                        for j in 0..=i {
                            l[i * q + j] -= update[i * (q + w) + j];
                        }
                        l[i * q + i] += 1.0;
                    }
                    if !cholesky_in_place(l, q) {
                        return Err(HnmError::Optimizer("a nested factor's block lost positive definiteness".into()));
                    }
                    for i in 0..q {
                        inverse[i] = 1.0 / l[i * q + i];
                        logdet += l[i * q + i].ln();
                    }
                    (&*l, &*inverse)
                };
                // F_l: the ancestors' couplings Λ_kᵀ C_gᵀ Λ_g, then Λ_kᵀ B_l, less U_l[own, rest].
                let front = &mut nw.fronts[k][level * q * w..(level + 1) * q * w];
                for (g, _, column) in chain.ancestors(s, k, level) {
                    let qg = s.others[g - 1].q;
                    let value = chain.coupling(k, level, g);
                    let block = &mut block[..q * qg];
                    coupled_transposed(&s.values[value..value + qg * q], shape.lambda, q, &sw.lambdas[g - 1], qg, &mut scratch, block);
                    for i in 0..q {
                        front[i * w + column..i * w + column + qg].copy_from_slice(&block[i * qg..(i + 1) * qg]);
                    }
                }
                lambda_transposed_times(shape.lambda, &shape.zxy[level * q * p1..(level + 1) * q * p1], q, p1, &mut b[..q * p1]);
                for i in 0..q {
                    front[i * w + r..(i + 1) * w].copy_from_slice(&b[i * p1..(i + 1) * p1]);
                    if k > 0 {
                        // U_l[own, rest] read as U_l[rest, own]: only lower triangles are summed.
                        for (c, x) in front[i * w..(i + 1) * w].iter_mut().enumerate() {
                            *x -= update[(q + c) * (q + w) + i];
                        }
                    }
                }
                solve_lower_scaled(l, inverse, q, front, w);
                // The update matrix U_l[rest, rest] + W_lᵀW_l into the parent's U or [X y]'s: the
                // lower triangle only, as the Cholesky factors and the fronts read it.
                let (target, stride) = match parent_updates.as_deref_mut() {
                    Some(parent) => {
                        let p = chain.parents[k][level];
                        (&mut parent[p * w * w..(p + 1) * w * w], w)
                    }
                    None => (&mut nw.root[..], p1),
                };
                // Row by row of W_l over slices (no index arithmetic in the inner loop): at 1e5
                // levels of the first factor this loop is most of the factorisation's time.
                if k > 0 {
                    for a in 0..w {
                        let from = &update[(q + a) * (q + w) + q..(q + a) * (q + w) + q + a + 1];
                        for (t, u) in target[a * stride..a * stride + a + 1].iter_mut().zip(from) {
                            *t += u;
                        }
                    }
                }
                for row in front.chunks_exact(w) {
                    for (a, &fa) in row.iter().enumerate() {
                        for (t, &fc) in target[a * stride..a * stride + a + 1].iter_mut().zip(&row[..=a]) {
                            *t += fa * fc;
                        }
                    }
                }
            }
        }
        for a in 0..p1 {
            for c in 0..=a {
                lf[a * p1 + c] = self.xy[a * p1 + c] - nw.root[a * p1 + c];
            }
        }
        Ok(logdet)
    }

    /// u = A⁻¹ΛᵀZᵀ(y − Xβ) (column 0) and, with `rhs` = 1 + p, Û (the others) into `solved`
    /// (random effects × `rhs`, row-major, the first factor's levels then the core's order),
    /// given the forward halves in the fronts' [X y] columns: the backward solve through Lᵀ,
    /// the last factor first, each level less its ancestors' solved values.
    pub(crate) fn solve_modes_nested(&self, s: &Several, chain: &NestedChain, rhs: usize, ws: &mut Workspace) {
        let (p, p1) = (self.p, self.p + 1);
        let first_rows = self.n.len() * self.q;
        let Workspace { l: l0, inverse_diagonal: inverse0, w: beta_w, x_inverse, lambda: lambda0, several, .. } = ws;
        let sw = several.as_mut().expect("a workspace of a model with several factors");
        let nw = sw.nested.as_ref().expect("a workspace of a nested chain");
        let row_of = |k: usize, l: usize| if k == 0 { l * self.q } else { first_rows + s.others[k - 1].offset + l * s.others[k - 1].q };
        let solved = &mut sw.solved;
        let mut y = Vec::new();
        for k in (0..chain.factors()).rev() {
            let shape = self.shape(s, chain, &sw.lambdas, lambda0, k);
            let (q, r) = (shape.q, shape.r);
            let w = r + p1;
            for level in 0..shape.m {
                let front = &nw.fronts[k][level * q * w..(level + 1) * q * w];
                y.clear();
                for i in 0..q {
                    for c in 0..rhs {
                        let mut value = LinearMixedModel::combined(&|a| front[i * w + r + a], c, beta_w, x_inverse, p);
                        for (g, a, column) in chain.ancestors(s, k, level) {
                            let at = row_of(g, a);
                            value -= (0..s.others[g - 1].q).map(|t| front[i * w + column + t] * solved[(at + t) * rhs + c]).sum::<f64>();
                        }
                        y.push(value);
                    }
                }
                let (l, inverse) = if k == 0 {
                    (&l0[level * q * q..(level + 1) * q * q], &inverse0[level * q..(level + 1) * q])
                } else {
                    (&nw.l[k][level * q * q..(level + 1) * q * q], &nw.inverse_diagonal[k][level * q..(level + 1) * q])
                };
                solve_lower_transposed_scaled(l, inverse, q, &mut y, rhs);
                let at = row_of(k, level);
                solved[at * rhs..(at + q) * rhs].copy_from_slice(&y);
            }
        }
    }

    /// The selected inverse's blocks of the later factors' levels over themselves and their
    /// ancestors (module docs), top-down, into the nested workspace's `sigma`.
    pub(crate) fn nested_inverse(&self, chain: &NestedChain, ws: &mut Workspace) {
        let p1 = self.p + 1;
        let sw = ws.several.as_mut().expect("a workspace of a model with several factors");
        let nw = sw.nested.as_mut().expect("a workspace of a nested chain");
        let mut vt = Vec::new();
        for k in (1..chain.factors()).rev() {
            let (q, m, r) = chain.dimensions(k);
            let size = (q + r) * (q + r);
            let (own, above) = nw.sigma.split_at_mut(k + 1);
            for level in 0..m {
                let parent = above.first().map_or(&[][..], |sigma| {
                    let p = chain.parents[k][level];
                    &sigma[p * r * r..(p + 1) * r * r]
                });
                let front = &nw.fronts[k][level * q * (r + p1)..(level + 1) * q * (r + p1)];
                let (l, inverse) = (&nw.l[k][level * q * q..(level + 1) * q * q], &nw.inverse_diagonal[k][level * q..(level + 1) * q]);
                level_inverse(l, inverse, q, front, r + p1, r, parent, &mut vt, &mut own[k][level * size..(level + 1) * size]);
            }
        }
    }

    /// Σ over level `level` of factor 0 and its ancestors, (q₀ + r₀)² row-major, into `out`.
    #[allow(clippy::too_many_arguments)]
    fn first_nested_inverse(&self, chain: &NestedChain, ws: &Workspace, sw: &SeveralWorkspace, level: usize, vt: &mut Vec<f64>, out: &mut [f64]) {
        let (q, p1) = (self.q, self.p + 1);
        let nw = sw.nested.as_ref().expect("a workspace of a nested chain");
        let (_, _, r) = chain.dimensions(0);
        let p = chain.parents[0][level];
        let parent = &nw.sigma[1][p * r * r..(p + 1) * r * r];
        let front = &nw.fronts[0][level * q * (r + p1)..(level + 1) * q * (r + p1)];
        level_inverse(&ws.l[level * q * q..(level + 1) * q * q], &ws.inverse_diagonal[level * q..(level + 1) * q], q, front, r + p1, r, parent, vt, out);
    }

    /// Σ_{l l} of level `level` of factor k (q_k × q_k) into `out`, after [`Self::nested_inverse`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn nested_level_inverse(&self, chain: &NestedChain, ws: &Workspace, sw: &SeveralWorkspace, k: usize, level: usize, out: &mut [f64]) {
        let (q, _, r) = chain.dimensions(k);
        let mut full = vec![0.0; (q + r) * (q + r)];
        if k == 0 {
            self.first_nested_inverse(chain, ws, sw, level, &mut Vec::new(), &mut full);
        } else {
            let nw = sw.nested.as_ref().expect("a workspace of a nested chain");
            full.copy_from_slice(&nw.sigma[k][level * (q + r) * (q + r)..(level + 1) * (q + r) * (q + r)]);
        }
        for i in 0..q {
            out[i * q..(i + 1) * q].copy_from_slice(&full[i * (q + r)..i * (q + r) + q]);
        }
    }

    /// log|A|'s part of the gradient, ∂/∂Λ_k per factor into `gradients` (module docs of
    /// [`super`]), from the selected inverse of a nested chain: per level, 2 S_lΛ_k Σ_{l l} and
    /// per ancestor g, with Σ_{g l} its block of Σ_{R l}, 2 C_{g l}ᵀΛ_g Σ_{g l} (to k) and
    /// 2 C_{g l}Λ_k Σ_{g l}ᵀ (to g).
    pub(crate) fn nested_logdet_gradient(&self, s: &Several, chain: &NestedChain, ws: &Workspace, sw: &SeveralWorkspace, gradients: &mut [Vec<f64>]) {
        let nw = sw.nested.as_ref().expect("a workspace of a nested chain");
        let mut vt = Vec::new();
        let mut first = Vec::new();
        for k in 0..chain.factors() {
            let shape = self.shape(s, chain, &sw.lambdas, &ws.lambda, k);
            let (q, r) = (shape.q, shape.r);
            let n = q + r;
            let q_max = (0..chain.factors()).map(|g| chain.dimensions(g).0).max().unwrap_or(q);
            let (mut t, mut c_lambda) = (vec![0.0; q * q], vec![0.0; q_max * q_max]);
            first.resize(n * n, 0.0);
            for level in 0..shape.m {
                let sigma = if k == 0 {
                    self.first_nested_inverse(chain, ws, sw, level, &mut vt, &mut first);
                    &first[..]
                } else {
                    &nw.sigma[k][level * n * n..(level + 1) * n * n]
                };
                times_lambda(&shape.zz[level * q * q..(level + 1) * q * q], shape.lambda, q, &mut t);
                for i in 0..q {
                    for j in 0..q {
                        gradients[k][i * q + j] += 2.0 * (0..q).map(|a| t[i * q + a] * sigma[a * n + j]).sum::<f64>();
                    }
                }
                for (g, _, column) in chain.ancestors(s, k, level) {
                    let qg = s.others[g - 1].q;
                    let value = chain.coupling(k, level, g);
                    let c = &s.values[value..value + qg * q];
                    // Σ_{g l}[a][j] = sigma[(q + column + a) n + j].
                    let sigma_gl = |a: usize, j: usize| sigma[(q + column + a) * n + j];
                    transposed_times(c, qg, q, &sw.lambdas[g - 1], qg, &mut c_lambda[..q * qg]);
                    for i in 0..q {
                        for j in 0..q {
                            gradients[k][i * q + j] += 2.0 * (0..qg).map(|a| c_lambda[i * qg + a] * sigma_gl(a, j)).sum::<f64>();
                        }
                    }
                    multiply(c, shape.lambda, qg, q, q, &mut c_lambda[..qg * q]);
                    for a in 0..qg {
                        for b in 0..qg {
                            gradients[g][a * qg + b] += 2.0 * (0..q).map(|j| c_lambda[a * q + j] * sigma_gl(b, j)).sum::<f64>();
                        }
                    }
                }
            }
        }
    }
}

/// Σ over a level and its ancestors into `out` ((q + r)² row-major) by Takahashi's recurrences
/// (module docs), from its L (with the reciprocals of its diagonal), its front W (q × w, the
/// ancestors' r columns first) and Σ over its ancestors `parent` (r × r); `scratch` holds
/// V and (L Lᵀ)⁻¹.
#[allow(clippy::too_many_arguments)]
fn level_inverse(l: &[f64], inverse: &[f64], q: usize, front: &[f64], w: usize, r: usize, parent: &[f64], scratch: &mut Vec<f64>, out: &mut [f64]) {
    let n = q + r;
    // Vᵀ = L⁻ᵀ W_R (q × r), then room for (L Lᵀ)⁻¹ (q × q).
    scratch.clear();
    for i in 0..q {
        scratch.extend_from_slice(&front[i * w..i * w + r]);
    }
    scratch.resize(q * r + q * q, 0.0);
    let (vt, own) = scratch.split_at_mut(q * r);
    solve_lower_transposed_scaled(l, inverse, q, vt, r);
    // Σ_{R l} = −Σ_RR V (r × q), written as the block below the level's own rows and mirrored.
    for a in 0..r {
        for i in 0..q {
            let value = -(0..r).map(|b| parent[a * r + b] * vt[i * r + b]).sum::<f64>();
            out[(q + a) * n + i] = value;
            out[i * n + q + a] = value;
        }
        out[(q + a) * n + q..(q + a + 1) * n].copy_from_slice(&parent[a * r..(a + 1) * r]);
    }
    // Σ_ll = (L Lᵀ)⁻¹ − Vᵀ Σ_{R l}.
    inverse_from_factor(l, inverse, q, own);
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

    /// Pupils in 18 classes in 6 schools in 2 districts (lme4's order: classes first), a
    /// random slope on x for classes and schools; 160 rows from a fixed pseudo-random stream.
    fn three_levels() -> LinearMixedModel {
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
        let factors = [
            factor((0..18).collect(), 18, vec![I, V(1)], vec![2]),
            factor((0..18).map(|c| c / 3).collect(), 6, vec![I, V(1)], vec![2]),
            factor((0..18).map(|c| c / 9).collect(), 2, vec![I], vec![1]),
        ];
        LinearMixedModel::with_factors(&stats, 0, vec![I, V(1)], &factors).unwrap()
    }

    /// The nested chain's criterion, gradient and conditional covariances equal the dense
    /// core's (the same model with the chain removed) at several θ, and its workspace holds
    /// no dense core.
    #[test]
    fn the_nested_chain_equals_the_dense_core() {
        let nested = three_levels();
        assert!(nested.several.as_ref().unwrap().nested.is_some());
        let mut dense = nested.try_clone().unwrap();
        dense.several.as_mut().unwrap().nested = None;
        let (mut ws_nested, mut ws_dense) = (nested.workspace().unwrap(), dense.workspace().unwrap());
        let sw = ws_nested.several.as_ref().unwrap();
        assert!(sw.core.is_empty() && sw.sigma_cc.is_empty() && sw.inverse_l.is_empty());
        for theta in [vec![0.9, 0.2, 0.4, 1.1, -0.3, 0.5, 0.7], vec![0.3, 0.0, 0.1, 2.0, 0.6, 0.2, 1.4], vec![1.5, -0.5, 0.8, 0.0, 0.0, 0.0, 0.2]] {
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
        let (a, b) = (nested.random_effects_by_factor(&fit).unwrap(), dense.random_effects_by_factor(&fit).unwrap());
        for (x, y) in a.iter().zip(&b) {
            for (u, v) in x.modes.iter().zip(&y.modes).chain(x.conditional_covariances.iter().zip(&y.conditional_covariances)) {
                assert!((u - v).abs() <= 1e-9 * (1.0 + v.abs()), "{u} vs {v}");
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
        let model =
            LinearMixedModel::with_factors(&stats, 0, vec![Term::Intercept], &[factor(vec![0, 1, 2, 0, 1, 2], 3), factor(vec![0, 0, 1, 1, 0, 1], 2)]).unwrap();
        assert!(model.several.as_ref().unwrap().nested.is_none());
    }
}
