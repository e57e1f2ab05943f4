//! Timing harness for one fit from group statistics, the bootstrap refits and the profile
//! intervals, on simulated unbalanced data (τ = 1.5, σ = 4 and a τ = 0 data set).
//!
//!     cargo run --release -p hnm-core --example fit_timing
//!
//! Prints the time per fit and the optimiser's work (Brent iterations, Newton steps) for
//! 1e2..1e6 groups, then 1000 bootstrap refits and the three 95% profile intervals at 1e4 groups.

use std::time::Instant;

use hnm_core::{fit, refit_replicates, Criterion, GroupStats, Profile, ProfileParameter};

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

/// Groups of 2..=20 observations around 10 with group SD `tau` and residual SD 4.
fn simulate(groups: usize, tau: f64, rng: &mut Normals) -> GroupStats {
    let (mut n, mut mean, mut ssw) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..groups {
        let size = 2 + (rng.uniform() * 19.0) as usize;
        let effect = 10.0 + tau * rng.next();
        let y: Vec<f64> = (0..size).map(|_| effect + 4.0 * rng.next()).collect();
        let m = y.iter().sum::<f64>() / size as f64;
        n.push(size as f64);
        mean.push(m);
        ssw.push(y.iter().map(|v| (v - m) * (v - m)).sum());
    }
    GroupStats::new(n, mean, ssw).unwrap()
}

fn seconds_per_call(reps: usize, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..reps {
        f();
    }
    start.elapsed().as_secs_f64() / reps as f64
}

fn main() {
    let mut rng = Normals(20261125);
    println!("groups  tau  criterion  ms/fit   brent  newton  tau2_hat");
    for groups in [100, 1_000, 10_000, 100_000, 1_000_000] {
        for tau in [1.5, 0.0] {
            let stats = simulate(groups, tau, &mut rng);
            for criterion in [Criterion::Ml, Criterion::Reml] {
                let f = fit(&stats, criterion).unwrap();
                let reps = (1_000_000 / groups).clamp(3, 2000);
                let t = seconds_per_call(reps, || {
                    fit(&stats, criterion).unwrap();
                });
                let c = f.convergence;
                println!(
                    "{groups:>7} {tau:>4} {criterion:>9?} {:>8.4} {:>6} {:>7}  {:.6e}",
                    1e3 * t,
                    c.brent_iterations,
                    c.newton_iterations,
                    f.params.tau2
                );
            }
        }
    }
    let groups = 10_000;
    let stats = simulate(groups, 1.5, &mut rng);
    let f = fit(&stats, Criterion::Ml).unwrap();
    let replicates = 1000;
    let (sigma, tau) = (f.params.sigma2.sqrt(), f.params.tau2.sqrt());
    let mut means = vec![0.0; replicates * groups];
    for (j, &n) in stats.n().iter().enumerate() {
        for r in 0..replicates {
            means[r + j * replicates] = f.params.mu - stats.center() + (tau * tau + sigma * sigma / n).sqrt() * rng.next();
        }
    }
    let df = stats.n_obs() - groups as f64;
    let ssw: Vec<f64> = (0..replicates).map(|_| sigma * sigma * (df + (2.0 * df).sqrt() * rng.next())).collect();
    let t = seconds_per_call(1, || {
        refit_replicates(&stats, &means, &ssw, Criterion::Ml, 1, &hnm_core::Never).unwrap();
    });
    println!("bootstrap: {replicates} ML refits at {groups} groups on 1 thread: {t:.3} s");
    for criterion in [Criterion::Ml, Criterion::Reml] {
        let f = fit(&stats, criterion).unwrap();
        let t = seconds_per_call(3, || {
            for parameter in [ProfileParameter::Tau, ProfileParameter::Sigma, ProfileParameter::Mu] {
                Profile::new(&stats, &f, parameter).interval(1.959963984540054, &mut hnm_core::Checkpoint::new(&hnm_core::Never)).unwrap();
            }
        });
        println!("profile intervals (tau, sigma, mu) {criterion:?} at {groups} groups: {:.2} ms", 1e3 * t);
    }
}
