//! Models with several grouping factors (nested, crossed, partly crossed, with random slopes)
//! against a dense reference written here: the profiled ML and REML deviance from the full
//! N × N covariance V = I + ZΛΛᵀZᵀ (faer), the analytic gradient against central differences,
//! and the fit's optimum: a stationary point of the dense deviance that no perturbation lowers.

use faer::linalg::solvers::Solve;
use faer::{Mat, Side};
mod common;
use common::uniforms;
use hnm_core::{Checkpoint, Column, Criterion, CrossProducts, GroupingFactor, LinearMixedModel, Never, Term};
use std::collections::HashMap;

const LOG_2PI: f64 = 1.837_877_066_409_345_5;

/// A factor of the design: its 0-based level per row, its number of levels, its terms.
struct Factor {
    levels_of_rows: Vec<usize>,
    levels: usize,
    random: Vec<Term>,
    blocks: Vec<usize>,
}

/// Rows: y (variable 0), x (variable 1), w (variable 2); the factors in lme4's order.
struct Design {
    columns: Vec<Vec<f64>>,
    fixed: Vec<Term>,
    factors: Vec<Factor>,
}

fn factor(levels_of_rows: Vec<usize>, levels: usize, random: Vec<Term>, blocks: Vec<usize>) -> Factor {
    Factor { levels_of_rows, levels, random, blocks }
}

/// The designs: crossed, nested, partly crossed with slopes, three factors, a slope on the
/// second, three nested levels with slopes on the inner two.
fn designs(seed: u64) -> Vec<Design> {
    use Term::{Intercept as I, Variable as V};
    let n = 96;
    let u = uniforms(seed, 8 * n);
    let pick = |i: usize, k: usize| (((u[i] + 1.0) / 2.0 * k as f64) as usize).min(k - 1);
    let a: Vec<usize> = (0..n).map(|i| pick(i, 12)).collect();
    let b: Vec<usize> = (0..n).map(|i| pick(n + i, 5)).collect();
    let c: Vec<usize> = (0..n).map(|i| pick(2 * n + i, 4)).collect();
    let nested_outer: Vec<usize> = a.iter().map(|&l| l / 3).collect();
    let nested_top: Vec<usize> = a.iter().map(|&l| l / 6).collect();
    let x: Vec<f64> = (0..n).map(|i| 2.0 * u[3 * n + i] + 10.0).collect();
    let w: Vec<f64> = (0..n).map(|i| u[4 * n + i]).collect();
    let effect = |levels: &[usize], i: usize, sd: f64, salt: usize| sd * u[(5 * n + levels[i] * 7 + salt) % (8 * n)];
    let y: Vec<f64> = (0..n)
        .map(|i| {
            1.0 + 0.5 * x[i] - w[i]
                + effect(&a, i, 1.5, 0)
                + effect(&b, i, 1.0, 1)
                + effect(&c, i, 0.7, 2)
                + (x[i] - 10.0) * effect(&b, i, 0.5, 3)
                + u[6 * n + i]
        })
        .collect();
    let columns = vec![y, x, w];
    let fixed = vec![I, V(1), V(2)];
    // The nested chain's per-level kernels for each literal q and r (q_k and the ancestors'
    // Σ q_g): pupils in classes in schools in districts as the benchmark has them
    // (q = 1, 2, 1, `top` the districts' terms), with a slope on the districts too (r = 4 at
    // the first factor), and q = 3 on the first factor (the general cases).
    let pupils = |top: Vec<Term>, blocks: Vec<usize>| Design {
        columns: columns.clone(),
        fixed: fixed.clone(),
        factors: vec![
            factor(a.clone(), 12, vec![I], vec![1]),
            factor(nested_outer.clone(), 4, vec![I, V(1)], vec![2]),
            factor(nested_top.clone(), 2, top, blocks),
        ],
    };
    vec![
        Design {
            columns: columns.clone(),
            fixed: fixed.clone(),
            factors: vec![factor(a.clone(), 12, vec![I], vec![1]), factor(b.clone(), 5, vec![I], vec![1])],
        },
        Design {
            columns: columns.clone(),
            fixed: fixed.clone(),
            factors: vec![factor(a.clone(), 12, vec![I], vec![1]), factor(nested_outer.clone(), 4, vec![I], vec![1])],
        },
        Design {
            columns: columns.clone(),
            fixed: fixed.clone(),
            factors: vec![factor(a.clone(), 12, vec![I, V(1)], vec![2]), factor(b.clone(), 5, vec![I], vec![1])],
        },
        Design {
            columns: columns.clone(),
            fixed: fixed.clone(),
            factors: vec![factor(a.clone(), 12, vec![I], vec![1]), factor(b.clone(), 5, vec![I, V(1)], vec![1, 1]), factor(c.clone(), 4, vec![I], vec![1])],
        },
        Design {
            columns: columns.clone(),
            fixed: fixed.clone(),
            factors: vec![
                factor(a.clone(), 12, vec![I, V(1)], vec![2]),
                factor(nested_outer.clone(), 4, vec![I, V(1)], vec![2]),
                factor(nested_top.clone(), 2, vec![I], vec![1]),
            ],
        },
        Design {
            columns: columns.clone(),
            fixed: fixed.clone(),
            factors: vec![factor(a.clone(), 12, vec![I], vec![1]), factor(b, 5, vec![I, V(1)], vec![2]), factor(nested_outer.clone(), 4, vec![I], vec![1])],
        },
        pupils(vec![I], vec![1]),
        pupils(vec![I, V(2)], vec![2]),
        Design { columns, fixed, factors: vec![factor(a, 12, vec![I, V(1), V(2)], vec![3]), factor(nested_outer, 4, vec![I], vec![1])] },
    ]
}

impl Design {
    fn rows(&self) -> usize {
        self.columns[0].len()
    }

    fn value(&self, term: Term, row: usize) -> f64 {
        match term {
            Term::Intercept => 1.0,
            Term::Variable(v) => self.columns[v][row],
        }
    }

    /// The model from the cells' statistics.
    fn model(&self) -> LinearMixedModel {
        let mut cells: HashMap<Vec<usize>, usize> = HashMap::new();
        let mut codes = Vec::new();
        let mut cell_levels: Vec<Vec<usize>> = Vec::new();
        for i in 0..self.rows() {
            let key: Vec<usize> = self.factors.iter().map(|f| f.levels_of_rows[i]).collect();
            let next = cells.len();
            let cell = *cells.entry(key.clone()).or_insert_with(|| {
                cell_levels.push(key);
                next
            });
            codes.push(cell as i32 + 1);
        }
        let columns: Vec<Column<'_>> = self.columns.iter().map(|c| Column::Double(c)).collect();
        let stats = CrossProducts::from_columns(&columns, codes.into_iter(), cells.len(), &mut Checkpoint::new(&Never)).unwrap().stats;
        let factors: Vec<GroupingFactor> = self
            .factors
            .iter()
            .enumerate()
            .map(|(f, factor)| GroupingFactor {
                level_of_group: cell_levels.iter().map(|levels| levels[f]).collect(),
                levels: factor.levels,
                random: factor.random.clone(),
                blocks: factor.blocks.clone(),
            })
            .collect();
        LinearMixedModel::with_factors(&stats, 0, self.fixed.clone(), &factors, &mut Checkpoint::new(&Never)).unwrap()
    }

    /// The dense profiled deviance at lme4's θ (the factors' θ in order).
    fn dense_deviance(&self, criterion: Criterion, theta: &[f64]) -> f64 {
        let n = self.rows();
        let p = self.fixed.len();
        let mut v = Mat::<f64>::identity(n, n);
        let mut t = 0;
        for f in &self.factors {
            let q = f.random.len();
            let mut lambda = Mat::<f64>::zeros(q, q);
            let mut offset = 0;
            for &size in &f.blocks {
                for c in 0..size {
                    for r in c..size {
                        lambda[(offset + r, offset + c)] = theta[t];
                        t += 1;
                    }
                }
                offset += size;
            }
            let sigma = &lambda * lambda.transpose();
            for i in 0..n {
                for k in 0..n {
                    if f.levels_of_rows[i] != f.levels_of_rows[k] {
                        continue;
                    }
                    let mut s = 0.0;
                    for a in 0..q {
                        for b in 0..q {
                            s += self.value(f.random[a], i) * sigma[(a, b)] * self.value(f.random[b], k);
                        }
                    }
                    v[(i, k)] += s;
                }
            }
        }
        let llt = v.llt(Side::Lower).unwrap();
        let logdet: f64 = (0..n).map(|i| 2.0 * llt.L()[(i, i)].ln()).sum();
        let x = Mat::<f64>::from_fn(n, p, |i, c| self.value(self.fixed[c], i));
        let y = Mat::<f64>::from_fn(n, 1, |i, _| self.columns[0][i]);
        let vx = llt.solve(&x);
        let vy = llt.solve(&y);
        let xtvx = x.transpose() * &vx;
        let beta = xtvx.llt(Side::Lower).unwrap().solve(x.transpose() * &vy);
        let residual = &y - &x * &beta;
        let r2 = (residual.transpose() * llt.solve(&residual))[(0, 0)];
        let n = n as f64;
        match criterion {
            Criterion::Ml => logdet + n * (1.0 + LOG_2PI + (r2 / n).ln()),
            Criterion::Reml => {
                let k = n - p as f64;
                let xl = xtvx.llt(Side::Lower).unwrap();
                let logdet_x: f64 = (0..p).map(|i| 2.0 * xl.L()[(i, i)].ln()).sum();
                logdet + logdet_x + k * (1.0 + LOG_2PI + (r2 / k).ln())
            }
        }
    }
}

fn thetas(model: &LinearMixedModel, seed: u64) -> Vec<Vec<f64>> {
    let k = model.n_theta();
    let u = uniforms(seed, 3 * k);
    let lower = model.lower().to_vec();
    (0..3).map(|s| (0..k).map(|i| if lower[i] == 0.0 { 0.3 + 1.2 * (u[s * k + i] + 1.0) / 2.0 } else { 0.8 * u[s * k + i] }).collect()).collect()
}

#[test]
fn the_criterion_equals_the_dense_likelihood() {
    for seed in [3, 17, 101] {
        for design in designs(seed) {
            let model = design.model();
            for theta in thetas(&model, seed) {
                for criterion in [Criterion::Ml, Criterion::Reml] {
                    let internal = model.internal_theta_of(&theta).unwrap();
                    let ours = model.criterion_in_data_units(criterion, &internal, &mut Checkpoint::new(&Never)).unwrap();
                    let dense = design.dense_deviance(criterion, &theta);
                    assert!((ours - dense).abs() <= 1e-9 * dense.abs(), "{ours} {dense} {theta:?}");
                }
            }
        }
    }
}

#[test]
fn the_gradient_equals_central_differences() {
    for seed in [5, 23] {
        for design in designs(seed) {
            let model = design.model();
            let mut ws = model.workspace().unwrap();
            for theta in thetas(&model, seed) {
                let internal = model.internal_theta_of(&theta).unwrap();
                for criterion in [Criterion::Ml, Criterion::Reml] {
                    common::gradient_matches_central_differences(&model, criterion, &internal, &mut ws).unwrap();
                }
            }
        }
    }
}

#[test]
fn the_fit_is_a_minimum_of_the_dense_likelihood() {
    for seed in [7, 41] {
        for design in designs(seed) {
            let model = design.model();
            for criterion in [Criterion::Ml, Criterion::Reml] {
                let fit = model.fit(criterion, None, &mut Checkpoint::new(&Never)).unwrap();
                assert!(fit.converged);
                let at_fit = design.dense_deviance(criterion, &fit.theta);
                assert!((fit.deviance - at_fit).abs() <= 1e-9 * at_fit.abs(), "{} {at_fit}", fit.deviance);
                let lower = model.lower();
                for i in 0..fit.theta.len() {
                    for step in [1e-3, -1e-3] {
                        let mut moved = fit.theta.clone();
                        moved[i] += step;
                        if lower[i] == 0.0 && moved[i] < 0.0 {
                            continue;
                        }
                        assert!(design.dense_deviance(criterion, &moved) >= at_fit - 1e-9, "θ{i} {step}");
                    }
                }
            }
        }
    }
}

/// A crossed design whose dense core spans several of the blocked kernels' blocks (140 levels
/// of the second factor: block columns of 64 and sub-blocks of 16, partial last ones), the
/// first factor scalar or with a random slope: criterion and gradient against the dense
/// reference.
#[test]
fn a_core_of_several_blocks_matches_the_dense_likelihood() {
    use Term::{Intercept as I, Variable as V};
    let (a, b, columns) = two_crossed_factors(11, 700, 160, 140);
    // The first factor scalar (the fronts' rank-one path) and with a slope (the general one).
    for (random, blocks) in [(vec![I], vec![1]), (vec![I, V(1)], vec![2])] {
        let design = Design {
            columns: columns.clone(),
            fixed: vec![I, V(1), V(2)],
            factors: vec![factor(a.clone(), 160, random, blocks), factor(b.clone(), 140, vec![I], vec![1])],
        };
        check_against_dense(&design, 13);
    }
}

/// n rows of two crossed factors of `ka` and `kb` levels drawn uniformly, and columns y, x, w
/// (y with both factors' effects).
fn two_crossed_factors(seed: u64, n: usize, ka: usize, kb: usize) -> (Vec<usize>, Vec<usize>, Vec<Vec<f64>>) {
    let u = uniforms(seed, 5 * n);
    let pick = |i: usize, k: usize| (((u[i] + 1.0) / 2.0 * k as f64) as usize).min(k - 1);
    let a: Vec<usize> = (0..n).map(|i| pick(i, ka)).collect();
    let b: Vec<usize> = (0..n).map(|i| pick(n + i, kb)).collect();
    let x: Vec<f64> = (0..n).map(|i| 2.0 * u[2 * n + i] + 10.0).collect();
    let w: Vec<f64> = (0..n).map(|i| u[3 * n + i]).collect();
    let y: Vec<f64> = (0..n).map(|i| 1.0 + 0.5 * x[i] - w[i] + u[(a[i] * 7) % n] + 0.8 * u[(b[i] * 5 + 1) % n] + u[4 * n + i]).collect();
    (a, b, vec![y, x, w])
}

/// The criterion against the dense reference and the gradient against central differences.
fn check_against_dense(design: &Design, seed: u64) {
    let model = design.model();
    check_against_dense_at(design, &model, thetas(&model, seed));
}

/// [`check_against_dense`] at the θ given, in one workspace in turn.
fn check_against_dense_at(design: &Design, model: &LinearMixedModel, thetas: Vec<Vec<f64>>) {
    let mut ws = model.workspace().unwrap();
    for theta in thetas {
        let internal = model.internal_theta_of(&theta).unwrap();
        for criterion in [Criterion::Ml, Criterion::Reml] {
            let ours = model.criterion_in_data_units(criterion, &internal, &mut Checkpoint::new(&Never)).unwrap();
            let dense = design.dense_deviance(criterion, &theta);
            assert!((ours - dense).abs() <= 1e-9 * dense.abs(), "{ours} {dense} {theta:?}");
            common::gradient_matches_central_differences(model, criterion, &internal, &mut ws).unwrap();
        }
    }
}

/// Scalar crossed factors whose workspace first serves θ in the gradient's diagonal form (no
/// (L_c L_cᵀ)⁻¹, which the workspace then does not hold), then a θ with a variance near 0
/// (λ below the form's floor: the selected inverse, its memory taken by that evaluation):
/// both gradients against central differences.
#[test]
fn a_small_variance_after_the_diagonal_form_has_the_selected_inverse() {
    use Term::{Intercept as I, Variable as V};
    let (a, b, columns) = two_crossed_factors(41, 500, 90, 60);
    let design = Design { columns, fixed: vec![I, V(1)], factors: vec![factor(a, 90, vec![I], vec![1]), factor(b, 60, vec![I], vec![1])] };
    check_against_dense_at(&design, &design.model(), vec![vec![0.9, 0.7], vec![0.8, 0.004], vec![0.003, 0.6]]);
}

/// A crossed design of Zipf-like popularity whose first factor (users, scalar) has both kinds
/// of front: 8 heavy users who meet 55 to 90 of the 90 items (front widths above a quarter of the
/// core's order 94, which the evaluation applies as a dense panel by a packed product and
/// the gradient's norms as dense products) and 142 light users who meet 2 to 4 items (the
/// scatter and the sparse norms). Criterion and gradient (in the diagonal form, every λ ≥
/// 0.3) against the dense reference, as in `check_against_dense`.
#[test]
fn heavy_and_light_fronts_match_the_dense_likelihood() {
    // With 442 light users the gradient reads the first factor's part as ⟨XᵀX, T⟩ (the
    // light users' sparse norms would cost more), with 40 as norms (sparse and dense).
    for users in [450, 48] {
        heavy_and_light(users);
    }
}

fn heavy_and_light(users: usize) {
    use Term::{Intercept as I, Variable as V};
    let items = 90;
    let u = uniforms(29, 4 * users * items);
    let mut draw = 0;
    let mut next = || {
        draw += 1;
        (u[draw] + 1.0) / 2.0
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for user in 0..users {
        let wanted = if user < 8 { 55 + (35.0 * next()) as usize } else { 2 + (3.0 * next()) as usize }.min(items);
        let mut seen = vec![false; items];
        let mut count = 0;
        while count < wanted {
            // Items drawn with probabilities falling with their rank, as a popularity.
            let item = ((items as f64) * next().powi(2)) as usize % items;
            if !seen[item] {
                seen[item] = true;
                count += 1;
                a.push(user);
                b.push(item);
            }
        }
    }
    let n = a.len();
    let x: Vec<f64> = (0..n).map(|_| 2.0 * next() + 10.0).collect();
    let w: Vec<f64> = (0..n).map(|_| next()).collect();
    let y: Vec<f64> = (0..n).map(|i| 1.0 + 0.5 * x[i] - w[i] + u[(a[i] * 7) % n] + 0.8 * u[(b[i] * 5 + 1) % n] + 2.0 * next()).collect();
    let design =
        Design { columns: vec![y, x, w], fixed: vec![I, V(1), V(2)], factors: vec![factor(a, users, vec![I], vec![1]), factor(b, items, vec![I], vec![1])] };
    check_against_dense(&design, 31);
}
