//! Timing harness for the general model: the one pass over the rows and the fit, on
//! y = 10 + 2 x1 − x2 + 0.5 w + a_j + b_j x1 + e with (a_j, b_j) correlated (the issue's
//! bench model `y ~ x1 + x2 + w + (x1 | g)`, w constant within groups), rows in random
//! group order.
//!
//!     cargo run --release -p hnm-core --example lmm_timing
//!
//! Prints, for 1e4..1e6 rows per 100-row group, the pass, the model's set-up, one evaluation of
//! the profiled deviance with its gradient and the fit (ML and REML) with the optimiser's work:
//! each the fastest of 5 runs, so that a busy machine disturbs the figures less.

use std::time::{Duration, Instant};

/// The fastest of 5 runs of `f`, and its last result.
fn fastest<T>(mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..5 {
        let start = Instant::now();
        let value = f();
        best = best.min(start.elapsed());
        out = Some(value);
    }
    (best, out.expect("five runs"))
}

use hnm_core::{Checkpoint, Column, Criterion, CrossProducts, LinearMixedModel, Never, Structure, Term};

/// xorshift64* with Box–Muller: reproducible normals without a dependency.
struct Normals(u64);

impl Normals {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn next(&mut self) -> f64 {
        (-2.0 * self.uniform().ln()).sqrt() * (std::f64::consts::TAU * self.uniform()).cos()
    }
}

fn main() {
    let mut rng = Normals(0x9E37_79B9_7F4A_7C15);
    for &(rows, groups) in &[(10_000usize, 100usize), (100_000, 1_000), (1_000_000, 10_000)] {
        let effects: Vec<(f64, f64, f64)> = (0..groups)
            .map(|_| {
                let (u, v) = (rng.next(), rng.next());
                (2.0 * u, 0.5 * (0.3 * u + 0.95 * v), rng.next())
            })
            .collect();
        let codes: Vec<i32> = (0..rows).map(|_| 1 + (rng.uniform() * groups as f64) as i32).collect();
        let (mut y, mut x1, mut x2, mut w) = (vec![0.0; rows], vec![0.0; rows], vec![0.0; rows], vec![0.0; rows]);
        for i in 0..rows {
            let (a, b, wj) = effects[codes[i] as usize - 1];
            x1[i] = rng.next();
            x2[i] = rng.next();
            w[i] = wj;
            y[i] = 10.0 + 2.0 * x1[i] - x2[i] + 0.5 * wj + a + b * x1[i] + 3.0 * rng.next();
        }
        let columns = [Column::Double(&y), Column::Double(&x1), Column::Double(&x2), Column::Double(&w)];
        let (pass_time, pass) = fastest(|| {
            CrossProducts::from_columns(&columns, codes.iter().copied(), groups, &mut Checkpoint::new(&Never)).unwrap()
        });
        let structure = Structure {
            response: 0,
            fixed: vec![Term::Intercept, Term::Variable(1), Term::Variable(2), Term::Variable(3)],
            random: vec![Term::Intercept, Term::Variable(1)],
            blocks: vec![2],
        };
        let (build_time, model) = fastest(|| LinearMixedModel::new(&pass.stats, structure.clone()).unwrap());
        for criterion in [Criterion::Ml, Criterion::Reml] {
            let (fit_time, fit) = fastest(|| model.fit(criterion, None, &mut Checkpoint::new(&Never)).unwrap());
            let mut ws = model.workspace().unwrap();
            let (eval_time, _) = fastest(|| model.deviance_and_gradient(criterion, &fit.internal_theta, &mut ws).unwrap());
            println!(
                "{rows:>8} rows {groups:>6} groups {criterion:?}: pass {pass_time:?} model {build_time:?} \
                 evaluation {eval_time:?} ({:.0} ns/group) fit {fit_time:?} ({} iterations, {} evaluations)",
                eval_time.as_secs_f64() * 1e9 / groups as f64,
                fit.iterations,
                fit.evaluations,
            );
        }
    }
}
