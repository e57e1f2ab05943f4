//! Small dense matrices (row-major slices), by two kinds of code.
//!
//! The per-group blocks of the mixed model, q × q and q × (p + 1) with q and p small (typically
//! ≤ 4), are evaluated once per group in every deviance evaluation, the hot loop: hand-written
//! loops over slices, inlined and unrolled for a literal q, beat a general library there, whose
//! dispatch, views and workspace cost more than the few flops of a 2 × 2 block per call.
//!
//! What is computed once per fit from the p × p factor R_X, vcov(β̂) = σ² (R_X R_Xᵀ)⁻¹ and
//! Satterthwaite's C⁻¹, goes through faer ([`inverse_of_factored`]). The once-per-fit work that
//! steers the search does not: faer's least-squares start and eigendecomposition (the
//! optimiser's, [`crate::numerics::optim::symmetric_eigen`]) equal these to rounding, but a
//! start or a Newton step changed by rounding takes the search another way, and on a flat
//! deviance it stops elsewhere within its tolerance (θ of a q = 3 REML fit moved by 1.3e-8).

use faer::linalg::triangular_inverse::invert_lower_triangular;
use faer::{Mat, MatRef, Par};

/// Cholesky factor in place: the lower triangle of the symmetric positive-definite n × n
/// `a` becomes L with L Lᵀ = a; the strict upper triangle is set to 0. Returns false (and
/// leaves `a` partly overwritten) when a pivot is not positive.
#[inline(always)]
pub(crate) fn cholesky_in_place(a: &mut [f64], n: usize) -> bool {
    for j in 0..n {
        let mut pivot = a[j * n + j];
        for k in 0..j {
            pivot -= a[j * n + k] * a[j * n + k];
        }
        if !(pivot > 0.0) {
            return false;
        }
        let diagonal = pivot.sqrt();
        a[j * n + j] = diagonal;
        for i in j + 1..n {
            let mut v = a[i * n + j];
            for k in 0..j {
                v -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = v / diagonal;
        }
        for k in j + 1..n {
            a[j * n + k] = 0.0;
        }
    }
    true
}

/// Solves L X = B in place (L lower n × n, B n × m, both row-major).
#[inline(always)]
pub(crate) fn solve_lower(l: &[f64], n: usize, b: &mut [f64], m: usize) {
    for i in 0..n {
        for k in 0..i {
            let lik = l[i * n + k];
            if lik != 0.0 {
                for c in 0..m {
                    b[i * m + c] -= lik * b[k * m + c];
                }
            }
        }
        let inverse = 1.0 / l[i * n + i];
        for c in 0..m {
            b[i * m + c] *= inverse;
        }
    }
}

/// Solves Lᵀ X = B in place (L lower n × n, B n × m, both row-major).
#[inline(always)]
pub(crate) fn solve_lower_transposed(l: &[f64], n: usize, b: &mut [f64], m: usize) {
    for i in (0..n).rev() {
        for k in i + 1..n {
            let lki = l[k * n + i];
            if lki != 0.0 {
                for c in 0..m {
                    b[i * m + c] -= lki * b[k * m + c];
                }
            }
        }
        let inverse = 1.0 / l[i * n + i];
        for c in 0..m {
            b[i * m + c] *= inverse;
        }
    }
}

/// C = A B for A (r × k) and B (k × c), row-major.
#[inline(always)]
pub(crate) fn multiply(a: &[f64], b: &[f64], r: usize, k: usize, c: usize, out: &mut [f64]) {
    // By rows of B added into rows of C (the loop over C's row vectorises): each entry the
    // same sum in the same order as its dot product, so the same value to the last bit.
    // (Indexed rather than by chunks, which cannot be empty: a model without fixed effects
    // has products of no columns.)
    for i in 0..r {
        let row = &mut out[i * c..(i + 1) * c];
        row.fill(0.0);
        for t in 0..k {
            add_scaled(row, a[i * k + t], &b[t * c..(t + 1) * c]);
        }
    }
}

/// y += x · v, entry by entry (a loop the compiler vectorises).
#[inline(always)]
pub(crate) fn add_scaled(y: &mut [f64], x: f64, v: &[f64]) {
    for (value, &w) in y.iter_mut().zip(v) {
        *value += x * w;
    }
}

/// The inverse of the symmetric positive-definite matrix with Cholesky factor `l` (n × n).
pub(crate) fn inverse_from_cholesky(l: &[f64], n: usize) -> Vec<f64> {
    let mut inverse = vec![0.0; n * n];
    inverse_from_cholesky_into(l, n, &mut inverse);
    inverse
}

/// [`inverse_from_cholesky`] into `inverse` (n × n), without allocating.
pub(crate) fn inverse_from_cholesky_into(l: &[f64], n: usize, inverse: &mut [f64]) {
    inverse.fill(0.0);
    for i in 0..n {
        inverse[i * n + i] = 1.0;
    }
    solve_lower(l, n, inverse, n);
    solve_lower_transposed(l, n, inverse, n);
}

/// The n × n identity.
pub(crate) fn identity(n: usize) -> Vec<f64> {
    let mut m = vec![0.0; n * n];
    for i in 0..n {
        m[i * n + i] = 1.0;
    }
    m
}

/// M A Mᵀ for square n × n matrices.
pub(crate) fn congruence(m: &[f64], a: &[f64], n: usize) -> Vec<f64> {
    let mut ma = vec![0.0; n * n];
    multiply(m, a, n, n, n, &mut ma);
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            out[i * n + j] = (0..n).map(|t| ma[i * n + t] * m[j * n + t]).sum();
        }
    }
    out
}

/// T = S Λ for symmetric S and lower-triangular Λ (q × q).
#[inline(always)]
pub(crate) fn times_lambda(s: &[f64], lambda: &[f64], q: usize, t: &mut [f64]) {
    // Λ's row k reaches T's columns 0..=k; each entry summed over k ascending, as a dot
    // product would (the same value), the loop over T's row vectorised.
    for r in 0..q {
        let row = &mut t[r * q..(r + 1) * q];
        row.fill(0.0);
        for k in 0..q {
            add_scaled(&mut row[..=k], s[r * q + k], &lambda[k * q..=k * q + k]);
        }
    }
}

/// The rows and columns `indices` of the square matrix `m` (`width` columns, row-major).
pub(crate) fn principal_submatrix(m: &[f64], width: usize, indices: &[usize]) -> Vec<f64> {
    indices.iter().flat_map(|&a| indices.iter().map(move |&b| m[a * width + b])).collect()
}

/// `lf`'s lower triangle (`row.len()` square, row-major) minus that of row rowᵀ.
#[inline(always)]
pub(crate) fn subtract_outer_product(lf: &mut [f64], row: &[f64]) {
    let n = row.len();
    for a in 0..n {
        let x = row[a];
        for (f, &y) in lf[a * n..a * n + a + 1].iter_mut().zip(&row[..=a]) {
            *f -= x * y;
        }
    }
}

/// (L Lᵀ)⁻¹ into `out` (q × q) from the lower factor L and the reciprocals of its diagonal.
#[inline(always)]
pub(crate) fn inverse_from_factor(l: &[f64], inverse_diagonal: &[f64], q: usize, out: &mut [f64]) {
    out.fill(0.0);
    for i in 0..q {
        out[i * q + i] = 1.0;
    }
    solve_lower_scaled(l, inverse_diagonal, q, out, q);
    solve_lower_transposed_scaled(l, inverse_diagonal, q, out, q);
}

#[inline(always)]
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Σ_k a[k] m[k][column] for a row-major m with `stride` columns.
#[inline(always)]
pub(crate) fn dot_strided(a: &[f64], m: &[f64], column: usize, stride: usize) -> f64 {
    a.iter().enumerate().map(|(k, x)| x * m[k * stride + column]).sum()
}

/// Solves L X = B in place (L lower q × q with the reciprocals of its diagonal in `inverse`,
/// B q × m, row-major): no division per element.
#[inline(always)]
pub(crate) fn solve_lower_scaled(l: &[f64], inverse: &[f64], q: usize, b: &mut [f64], m: usize) {
    for i in 0..q {
        for k in 0..i {
            let lik = l[i * q + k];
            for c in 0..m {
                b[i * m + c] -= lik * b[k * m + c];
            }
        }
        for c in 0..m {
            b[i * m + c] *= inverse[i];
        }
    }
}

/// Solves Lᵀ X = B in place, as [`solve_lower_scaled`].
#[inline(always)]
pub(crate) fn solve_lower_transposed_scaled(l: &[f64], inverse: &[f64], q: usize, b: &mut [f64], m: usize) {
    for i in (0..q).rev() {
        for k in i + 1..q {
            let lki = l[k * q + i];
            for c in 0..m {
                b[i * m + c] -= lki * b[k * m + c];
            }
        }
        for c in 0..m {
            b[i * m + c] *= inverse[i];
        }
    }
}

/// L⁻¹ for lower-triangular L (n × n), whose transpose maps a row x to x L⁻ᵀ.
pub(crate) fn inverse_lower(l: &[f64], n: usize) -> Vec<f64> {
    let mut inverse = identity(n);
    solve_lower(l, n, &mut inverse, n);
    inverse
}

/// Λᵀ M for lower-triangular Λ (q × q) and M (q × c).
#[inline(always)]
pub(crate) fn lambda_transposed_times(lambda: &[f64], m: &[f64], q: usize, c: usize, out: &mut [f64]) {
    // Rows of M added into rows of the product, k ascending: the dot products' sums in their
    // order (the same values), the loop over a row vectorised.
    for r in 0..q {
        let row = &mut out[r * c..(r + 1) * c];
        row.fill(0.0);
        for k in r..q {
            add_scaled(row, lambda[k * q + r], &m[k * c..(k + 1) * c]);
        }
    }
}

/// (L Lᵀ)⁻¹ = L⁻ᵀ L⁻¹ from the lower Cholesky factor `l` (n × n, row-major), by faer's
/// triangular inverse; row-major.
pub(crate) fn inverse_of_factored(l: &[f64], n: usize) -> Vec<f64> {
    let mut l_inverse = Mat::<f64>::zeros(n, n);
    invert_lower_triangular(l_inverse.as_mut(), MatRef::from_row_major_slice(l, n, n), Par::Seq);
    let inverse = l_inverse.transpose() * &l_inverse;
    (0..n).flat_map(|r| (0..n).map(move |c| (r, c))).map(|(r, c)| inverse[(r, c)]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The products with Λ equal their definitions written as dot products (Λ lower
    /// triangular, written out with its zeros), to the last bit, and products of no columns
    /// (a model without fixed effects has them) leave empty results or zeros.
    #[test]
    fn products_with_lambda_equal_their_definitions_and_allow_no_columns() {
        let (q, c) = (3, 2);
        let lambda = [1.5, 0.0, 0.0, -0.3, 0.7, 0.0, 0.2, 1e-3, 2.1];
        let s = [4.0, 0.5, -1.0, 0.5, 3.0, 0.25, -1.0, 0.25, 2.0];
        let m = [1.0, -2.0, 0.3, 4.0, -0.7, 0.1];
        let dot = |a: &dyn Fn(usize) -> f64, b: &dyn Fn(usize) -> f64, k: usize| (0..k).fold(0.0, |sum, t| sum + a(t) * b(t));
        let mut t = [0.0; 9];
        times_lambda(&s, &lambda, q, &mut t);
        let mut out = [0.0; 6];
        lambda_transposed_times(&lambda, &m, q, c, &mut out);
        let mut product = [0.0; 6];
        multiply(&s, &m, q, q, c, &mut product);
        for r in 0..q {
            for j in 0..q {
                assert_eq!(t[r * q + j], dot(&|k| s[r * q + k], &|k| lambda[k * q + j], q));
            }
            for j in 0..c {
                assert_eq!(out[r * c + j], dot(&|k| lambda[k * q + r], &|k| m[k * c + j], q));
                assert_eq!(product[r * c + j], dot(&|k| s[r * q + k], &|k| m[k * c + j], q));
            }
        }
        let mut none: [f64; 0] = [];
        lambda_transposed_times(&lambda, &[], q, 0, &mut none);
        multiply(&s, &[], q, q, 0, &mut none);
        let mut zeros = [1.0; 6];
        multiply(&[], &[], q, 0, c, &mut zeros);
        assert_eq!(zeros, [0.0; 6]);
    }

    #[test]
    fn cholesky_and_solves_invert_a_matrix() {
        let a = [4.0, 2.0, 0.4, 2.0, 5.0, 1.0, 0.4, 1.0, 3.0];
        let mut l = a;
        assert!(cholesky_in_place(&mut l, 3));
        let inverse = inverse_from_cholesky(&l, 3);
        let mut product = [0.0; 9];
        multiply(&a, &inverse, 3, 3, 3, &mut product);
        for i in 0..3 {
            for j in 0..3 {
                assert!((product[i * 3 + j] - if i == j { 1.0 } else { 0.0 }).abs() < 1e-14);
            }
        }
        let mut not_pd = [1.0, 2.0, 2.0, 1.0];
        assert!(!cholesky_in_place(&mut not_pd, 2));
    }

    #[test]
    fn the_inverse_by_faer_equals_the_inverse_by_solves_to_rounding() {
        let a = [4.0, 2.0, 0.4, 1e-3, 2.0, 5.0, 1.0, -0.05, 0.4, 1.0, 3.0, 0.02, 1e-3, -0.05, 0.02, 2e-3];
        let mut l = a;
        assert!(cholesky_in_place(&mut l, 4));
        let by_solves = inverse_from_cholesky(&l, 4);
        let by_faer = inverse_of_factored(&l, 4);
        let largest = by_solves.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
        for (x, y) in by_faer.iter().zip(&by_solves) {
            assert!((x - y).abs() <= 1e-13 * largest, "{x} {y}");
        }
    }
}
