//! A scalar first factor of a nested chain (q₀ = 1: a random intercept such as
//! `(1 | school:class)`, the chain's many levels): its factorisation, backward solve and
//! gradient (log|A|'s terms and the quadratic ones) with the fronts' shape known at compile
//! time.
//!
//! # Why
//! With q₀ = 1 a level's front is one row of w = r + p + 1 values: its ancestors' r columns,
//! Λ_blockᵀ(λ₀ c_l) with Λ_block the ancestors' Λ_g down its diagonal and c_l the level's
//! couplings (its Z_gᵀZ₀ stacked, r values), then λ₀ B_l, all scaled by 1 / L_l. The general
//! loops of [`super`] walk the ancestors and their q_g at run time: at 1e5 levels in 1e4
//! parents, range checks, bounds checks and short loops over q_g took most of an evaluation.
//! Here r, w (and the solve's right-hand sides) are constants ([`with_first_shape`]), chosen
//! once per evaluation, and each level is straight-line code.
//!
//! # The gradient's sums
//! With q₀ = 1, σ_l = (A⁻¹)_ll, Σ_Rl = (A⁻¹)_{R l} (r values) and s_l = Z₀ᵀZ₀ over l's rows,
//! log|A|'s terms of [`super`] are 2 λ₀ s_l σ_l (to ∂/∂λ₀), 2 Σ_{a,x} c_l[x] Λ_block[x][a]
//! Σ_Rl[a] (to ∂/∂λ₀) and, per ancestor g, 2 λ₀ c_g[a] Σ_g[b] (to entry (a, b) of ∂/∂Λ_g),
//! with c_g and Σ_g g's rows of c_l and Σ_Rl. Each is linear in the level's s_l σ_l or in
//! P_l = c_l Σ_Rlᵀ (r × r), so the levels' sums Σ_l s_l σ_l and P = Σ_l P_l are taken first
//! and the Λ applied once: per level r² + 1 independent multiply-adds instead of chains
//! through one gradient entry (the same terms, summed in another order).

use super::Factor;

/// `$body` with the constants `$R` = r, `$W` = w = r + p + 1 and `$P1` = p + 1 of a scalar
/// first factor's fronts for the shapes `(r, p1)` monomorphised (r ≤ 3 ancestors' columns,
/// p + 1 ≤ 6 columns of [X y]), else `$otherwise`.
macro_rules! with_first_shape {
    ($shape:expr, |$R:ident, $W:ident, $P1:ident| $body:expr, $otherwise:expr) => {
        with_first_shape!(@arms $shape, $R, $W, $P1, $body, $otherwise;
            (1, 2, 3) (1, 3, 4) (1, 4, 5) (1, 5, 6) (1, 6, 7)
            (2, 2, 4) (2, 3, 5) (2, 4, 6) (2, 5, 7) (2, 6, 8)
            (3, 2, 5) (3, 3, 6) (3, 4, 7) (3, 5, 8) (3, 6, 9))
    };
    (@arms $shape:expr, $R:ident, $W:ident, $P1:ident, $body:expr, $otherwise:expr; $(($r:literal, $p1:literal, $w:literal))*) => {
        match $shape {
            $(($r, $p1) => {
                #[allow(dead_code)]
                const $R: usize = $r;
                #[allow(dead_code)]
                const $W: usize = $w;
                #[allow(dead_code)]
                const $P1: usize = $p1;
                $body
            })*
            _ => $otherwise,
        }
    };
}

/// Where a scalar first factor's front columns come from: per column a < r of its ancestors'
/// part, the ancestor's slot in a level's list of ancestors (`slot`), its q_g (`qg`) and the
/// column's place t < q_g in the ancestor's block (`t`); `lt` = Λ_blockᵀ (r × r, upper
/// triangular, block-diagonal, row-major).
struct Shape<const R: usize> {
    slot: [usize; R],
    qg: [usize; R],
    t: [usize; R],
    lt: [[f64; R]; R],
}

impl<const R: usize> Shape<R> {
    /// The shape of factor `f`'s fronts (`f.r` = R) at the later factors' Λ in `f.lambdas`.
    fn of(f: &Factor<'_>) -> Self {
        let mut shape = Shape { slot: [0; R], qg: [0; R], t: [0; R], lt: [[0.0; R]; R] };
        for (slot, &(g, qg, column)) in f.lineage.iter().enumerate() {
            let lambda_g = &f.lambdas[g - 1];
            for b in 0..qg {
                (shape.slot[column + b], shape.qg[column + b], shape.t[column + b]) = (slot, qg, b);
                for j in b..qg {
                    shape.lt[column + b][column + j] = lambda_g[j * qg + b];
                }
            }
        }
        shape
    }

    /// Λ_blockᵀ (λ₀ c), the front's ancestors' columns before the scaling by 1 / L_l: each
    /// entry the sum over its block's j ≥ b in increasing j, as [`super::factor_levels`]
    /// forms it (the zeros outside the block add nothing).
    #[inline(always)]
    fn couplings(&self, lambda0: f64, c: &[f64]) -> [f64; R] {
        let scaled: [f64; R] = std::array::from_fn(|j| lambda0 * c[j]);
        std::array::from_fn(|a| {
            let mut sum = 0.0;
            for (l, d) in self.lt[a].iter().zip(&scaled) {
                sum += l * d;
            }
            sum
        })
    }
}

/// The factorisation of a scalar first factor's levels ([`super::factor_levels`] with q = 1
/// and no children): each front, Λ_blockᵀ(λ₀ c_l) and λ₀ B_l scaled by 1 / L_l (`inverse`),
/// into `fronts` (w per level) and its outer product's lower triangle added into its parent's
/// update block in `target` (w × w per parent level). Returns false, doing nothing, when the
/// shape (f.r, p + 1) is not one of [`with_first_shape`]'s.
pub(super) fn factor(f: &Factor<'_>, inverse: &[f64], fronts: &mut [f64], target: &mut [f64]) -> bool {
    with_first_shape!(
        (f.r, f.w - f.r),
        |R, W, P1| {
            factor_shaped::<R, W, P1>(f, &Shape::of(f), inverse, fronts, target);
            true
        },
        false
    )
}

#[inline(never)]
fn factor_shaped<const R: usize, const W: usize, const P1: usize>(f: &Factor<'_>, shape: &Shape<R>, inverse: &[f64], fronts: &mut [f64], target: &mut [f64]) {
    let (m, ancestors) = (f.m, f.lineage.len());
    let lambda0 = f.lambda[0];
    let (inverse, fronts, values, zxy) = (&inverse[..m], &mut fronts[..m * W], &f.values[..m * R], &f.zxy[..m * P1]);
    let parents = &f.ancestors[..m * ancestors];
    for (level, ((front, &inverse), (c, b))) in fronts.chunks_exact_mut(W).zip(inverse).zip(values.chunks_exact(R).zip(zxy.chunks_exact(P1))).enumerate() {
        let couplings = shape.couplings(lambda0, c);
        let mut row = [0.0; W];
        row[..R].copy_from_slice(&couplings);
        for (value, &b) in row[R..].iter_mut().zip(b) {
            *value = lambda0 * b;
        }
        for value in &mut row {
            *value *= inverse;
        }
        front.copy_from_slice(&row);
        let parent = parents[level * ancestors];
        let block = &mut target[parent * W * W..(parent + 1) * W * W];
        for (a, block_row) in block.chunks_exact_mut(W).enumerate() {
            let fa = row[a];
            for (t, &fc) in block_row[..=a].iter_mut().zip(&row[..=a]) {
                *t += fa * fc;
            }
        }
    }
}

/// The backward solve through a scalar first factor's levels ([`super::solve_levels`] with
/// q = 1): per level, its front's [X y] columns times `combine` (p + 1 × `rhs`) less its
/// ancestors' rows of `solved` (the later factors', after the first factor's m₀ rows; factor
/// g's first at `starts[g]`), times 1 / L_l, into its row of `solved` (`rhs` values per row).
/// Returns false, doing nothing, when the shape is not one of [`with_first_shape`]'s.
pub(super) fn solve(f: &Factor<'_>, fronts: &[f64], inverse: &[f64], rhs: usize, combine: &[f64], starts: &[usize], solved: &mut [f64]) -> bool {
    let (mine, above) = solved.split_at_mut(f.m * rhs);
    with_first_shape!(
        (f.r, f.w - f.r),
        |R, W, P1| {
            let shape = Shape::<R>::of(f);
            // Each column's first row in `above`: its factor's first plus its place t.
            let base: [usize; R] = std::array::from_fn(|a| starts[f.lineage[shape.slot[a]].0] - f.m + shape.t[a]);
            if rhs == 1 {
                solve_shaped::<R, W, P1, 1>(f, &shape, &base, fronts, inverse, combine, above, mine);
            } else if rhs == P1 {
                solve_shaped::<R, W, P1, P1>(f, &shape, &base, fronts, inverse, combine, above, mine);
            } else {
                return false;
            }
            true
        },
        false
    )
}

#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn solve_shaped<const R: usize, const W: usize, const P1: usize, const RHS: usize>(
    f: &Factor<'_>, shape: &Shape<R>, base: &[usize; R], fronts: &[f64], inverse: &[f64], combine: &[f64], above: &[f64], mine: &mut [f64],
) {
    let (m, ancestors) = (f.m, f.lineage.len());
    let (combine, fronts, inverse, mine) = (&combine[..P1 * RHS], &fronts[..m * W], &inverse[..m], &mut mine[..m * RHS]);
    let parents = &f.ancestors[..m * ancestors];
    for (level, ((front, &inverse), out)) in fronts.chunks_exact(W).zip(inverse).zip(mine.chunks_exact_mut(RHS)).enumerate() {
        let mut y = [0.0; RHS];
        for (c, value) in y.iter_mut().enumerate() {
            let mut sum = 0.0;
            for (a, x) in front[R..].iter().enumerate() {
                sum += x * combine[a * RHS + c];
            }
            *value = sum;
        }
        let levels = &parents[level * ancestors..(level + 1) * ancestors];
        for (a, &x) in front[..R].iter().enumerate() {
            let row = base[a] + levels[shape.slot[a]] * shape.qg[a];
            for (value, &u) in y.iter_mut().zip(&above[row * RHS..(row + 1) * RHS]) {
                *value -= x * u;
            }
        }
        for (out, value) in out.iter_mut().zip(&y) {
            *out = value * inverse;
        }
    }
}

/// log|A|'s part of the gradient over a scalar first factor's levels ([`super::gradient_levels`]
/// with q = 1, by the sums of the module docs): per level, from its front's ancestors' columns
/// (`fronts`), 1 / L_l (`inverse`) and its parent's Σ over the parent and its ancestors
/// (`parents`, r × r per level of factor 1), V = W_R / L_l, Σ_Rl = −Σ_RR V and
/// σ_l = 1 / L_l² − Vᵀ Σ_Rl (Takahashi's recurrences, [`super::level_inverse`]); the sums added
/// into `own` (∂/∂λ₀) and `later` (∂/∂Λ_g at g − 1). Returns false, doing nothing, when the
/// shape is not one of [`with_first_shape`]'s.
pub(super) fn gradient(f: &Factor<'_>, fronts: &[f64], inverse: &[f64], parents: &[f64], own: &mut [f64], later: &mut [Vec<f64>]) -> bool {
    with_first_shape!(
        (f.r, f.w - f.r),
        |R, W, P1| {
            gradient_shaped::<R, W>(f, fronts, inverse, parents, own, later);
            true
        },
        false
    )
}

#[inline(never)]
fn gradient_shaped<const R: usize, const W: usize>(f: &Factor<'_>, fronts: &[f64], inverse: &[f64], parents: &[f64], own: &mut [f64], later: &mut [Vec<f64>]) {
    let (m, ancestors) = (f.m, f.lineage.len());
    let (fronts, inverse, values, zz) = (&fronts[..m * W], &inverse[..m], &f.values[..m * R], &f.zz[..m]);
    let parent_of = &f.ancestors[..m * ancestors];
    // Σ_l s_l σ_l and P = Σ_l c_l Σ_Rlᵀ.
    let (mut s_sigma, mut p) = (0.0, [[0.0; R]; R]);
    for (level, (((front, &inverse), c), &s)) in fronts.chunks_exact(W).zip(inverse).zip(values.chunks_exact(R)).zip(zz).enumerate() {
        let v: [f64; R] = std::array::from_fn(|a| front[a] * inverse);
        let parent = parent_of[level * ancestors];
        let sigma = &parents[parent * R * R..(parent + 1) * R * R];
        let sigma_rl: [f64; R] = std::array::from_fn(|a| {
            let mut sum = 0.0;
            for (x, y) in sigma[a * R..(a + 1) * R].iter().zip(&v) {
                sum += x * y;
            }
            -sum
        });
        let mut product = 0.0;
        for (x, y) in v.iter().zip(&sigma_rl) {
            product += x * y;
        }
        s_sigma += s * (inverse * inverse - product);
        for (row, &cx) in p.iter_mut().zip(c) {
            for (value, &sa) in row.iter_mut().zip(&sigma_rl) {
                *value += cx * sa;
            }
        }
    }
    let lambda0 = f.lambda[0];
    own[0] += 2.0 * lambda0 * s_sigma;
    for &(g, qg, column) in f.lineage {
        let (lambda_g, other) = (&f.lambdas[g - 1], &mut later[g - 1]);
        for a in 0..qg {
            let sum: f64 = (a..qg).map(|x| lambda_g[x * qg + a] * p[column + x][column + a]).sum();
            own[0] += 2.0 * sum;
            for b in 0..qg {
                other[a * qg + b] += 2.0 * lambda0 * p[column + a][column + b];
            }
        }
    }
}

/// The gradient's quadratic terms over a scalar first factor's levels
/// ([`LinearMixedModel::nested_quadratic_gradient`] with q = 1): per level, from x_l its row
/// of `solved`, v_l = e_l − s_l λ₀ x_l − Σ_a c_l[a] (Λ_g x)[a] (its ancestors' rows of
/// `scaled`), −((2/σ̂²) v_l[0] x_l[0] + 2 Σ_{c ≥ 1} v_l[c] x_l[c]) into ∂/∂λ₀ (`gradient`),
/// and c_l[a] λ₀ x_l added into the ancestors' rows of `product`. Returns false, doing nothing,
/// when the shape is not one of [`with_first_shape`]'s.
///
/// [`LinearMixedModel::nested_quadratic_gradient`]: crate::model::lmm::LinearMixedModel::nested_quadratic_gradient
#[allow(clippy::too_many_arguments)]
pub(super) fn quadratic(
    f: &Factor<'_>, rhs: usize, combine: &[f64], two_over_sigma2: f64, starts: &[usize], solved: &[f64], scaled: &[f64], product: &mut [f64],
    gradient: &mut [f64],
) -> bool {
    with_first_shape!(
        (f.r, f.w - f.r),
        |R, W, P1| {
            let shape = Shape::<R>::of(f);
            let base: [usize; R] = std::array::from_fn(|a| starts[f.lineage[shape.slot[a]].0] + shape.t[a]);
            let terms = (combine, two_over_sigma2, solved, scaled);
            if rhs == 1 {
                quadratic_shaped::<R, P1, 1>(f, &shape, &base, terms, product, gradient);
            } else if rhs == P1 {
                quadratic_shaped::<R, P1, P1>(f, &shape, &base, terms, product, gradient);
            } else {
                return false;
            }
            true
        },
        false
    )
}

#[inline(never)]
fn quadratic_shaped<const R: usize, const P1: usize, const RHS: usize>(
    f: &Factor<'_>, shape: &Shape<R>, base: &[usize; R], (combine, two_over_sigma2, solved, scaled): (&[f64], f64, &[f64], &[f64]), product: &mut [f64],
    gradient: &mut [f64],
) {
    let (m, ancestors) = (f.m, f.lineage.len());
    let lambda0 = f.lambda[0];
    let (combine, solved, zxy, zz, values) = (&combine[..P1 * RHS], &solved[..m * RHS], &f.zxy[..m * P1], &f.zz[..m], &f.values[..m * R]);
    let parents = &f.ancestors[..m * ancestors];
    let mut sum = 0.0;
    for (level, (((x, b), &s), c)) in solved.chunks_exact(RHS).zip(zxy.chunks_exact(P1)).zip(zz).zip(values.chunks_exact(R)).enumerate() {
        let lx: [f64; RHS] = std::array::from_fn(|k| lambda0 * x[k]);
        let mut v: [f64; RHS] = std::array::from_fn(|k| {
            let mut e = 0.0;
            for (a, &ba) in b.iter().enumerate() {
                e += ba * combine[a * RHS + k];
            }
            e - s * lx[k]
        });
        let levels = &parents[level * ancestors..(level + 1) * ancestors];
        for (a, &ca) in c.iter().enumerate() {
            let row = (base[a] + levels[shape.slot[a]] * shape.qg[a]) * RHS;
            for (k, value) in v.iter_mut().enumerate() {
                *value -= ca * scaled[row + k];
            }
            for (out, &y) in product[row..row + RHS].iter_mut().zip(&lx) {
                *out += ca * y;
            }
        }
        let mut value = two_over_sigma2 * v[0] * x[0];
        for k in 1..RHS {
            value += 2.0 * v[k] * x[k];
        }
        sum += value;
    }
    gradient[0] -= sum;
}
