//! The replicates of a parametric bootstrap of the linear mixed model, as statistics.
//!
//! A replicate data set y* = Xβ + Zb* + ε* (b*_j ~ N(0, Σ), ε* ~ N(0, σ²I), at given
//! parameters) keeps every covariate, so only the response's statistics change: its group
//! means and its co-moments with every variable. Write the response of group j as
//! y*_i = α_j + Σ_a γ_ja v_ia + ε*_i over the other variables a (the intercept α_j and the
//! slopes γ_ja collect β and b*_j by the design column they multiply) and d_ia = v_ia − v̄_ja.
//! Then, exactly,
//!
//! ȳ*_j = x̄_jᵀβ + z̄_jᵀb*_j + ε̄*_j,                ε̄*_j ~ N(0, σ²/n_j),
//! c_j = W_j[·, y*] = W_j γ_j + ξ_j,                 ξ_j = Σ_i ε*_i d_i ~ N(0, σ² W_j),
//! W_j[y*, y*] = c_jᵀ W_j⁺ c_j + σ² χ²_{n_j − 1 − r_j},
//!
//! with W_j the co-moments of the other variables (singular when a variable has no variation
//! within the group, such as a group-level covariate, or the variables are collinear there),
//! r_j its rank, and the three parts independent (ε̄* lies along 1, ξ in the span of the d_a,
//! the χ² in what is left of 1⊥). With W_j = L_j L_jᵀ (L_j of full column rank r_j, by pivoted
//! Cholesky) write ξ_j = σ L_j z_j; then c_j = L_j t_j with t_j = L_jᵀγ_j + σ z_j, and
//! c_jᵀ W_j⁺ c_j = |t_j|². So each group's replicate is one Gaussian vector
//! ω_j = (ȳ*_j − x̄_jᵀβ, t_j − L_jᵀβ_w) of dimension 1 + r_j (β_w the fixed slopes),
//!
//! ω_j ~ N(0, Ω_j),   Ω_j = M_j Σ M_jᵀ + σ² diag(1/n_j, I_{r_j}),   M_j = [z̄_jᵀ; L_jᵀ B],
//!
//! where B maps b_j to the slopes of the variables (a random intercept has none); Ω_j is
//! positive definite. A replicate costs 1 + r_j standard normals per group (drawn as
//! ω_j = C_j u_j, C_j C_jᵀ = Ω_j) and O(m k²) work, never O(N).
//!
//! The model's likelihood (ML and REML) reads W_j[y, y] only through Σ_j W_j[y, y] (it enters
//! the pooled cross-product F alone; see [`crate::LinearMixedModel`]), so the residual parts
//! are drawn as one σ² χ²_D with D = Σ_j (n_j − 1 − r_j) and split over the groups in
//! proportion to their degrees of freedom (each group's block stays positive semi-definite):
//! one chi-square per replicate instead of one per group, with the same fit.

use crate::data::cross_products::{packed, CrossProducts};
use crate::error::{HnmError, Result};
use crate::model::lmm::{LinearMixedModel, LmmFit, Structure, Term};
use crate::numerics::dense::cholesky_in_place;
use crate::numerics::memory::{copied, with_capacity};

/// A direction of W_j whose squared residual, relative to the variable's own sum of squares,
/// is below this after the directions before it is taken as no variation (rounding of an
/// exact collinearity, such as indicator columns that sum to one within a group).
const RANK_TOLERANCE: f64 = 1e-12;

/// The model a bootstrap simulates from, at given parameter values: y_j = X_j β + Z_j b_j + ε_j,
/// b_j ~ N(0, Σ), ε_j ~ N(0, σ² I), in the data's units.
#[derive(Debug, Clone, PartialEq)]
pub struct Simulation {
    /// The response and design columns; `random` may be empty (a linear model, Σ empty).
    pub structure: Structure,
    /// β, one value per column of `structure.fixed` (0 for a column the fit dropped).
    pub coefficients: Vec<f64>,
    /// Σ, q × q row-major over the columns of `structure.random`.
    pub re_covariance: Vec<f64>,
    /// σ.
    pub sigma: f64,
}

impl Simulation {
    /// The fitted model `fit` of `model` as a model to simulate from (β of the dropped
    /// fixed-effect columns 0).
    ///
    /// # Example
    /// ```
    /// use hnm_core::{Checkpoint, Column, Criterion, CrossProducts, LinearMixedModel, Never, Simulation, Structure, Term};
    /// let y = [1.0, 2.5, 2.0, 4.0, 3.5, 6.0, 5.0, 6.5, 8.0];
    /// let x = [0.0, 1.0, 2.0, 0.0, 1.0, 2.0, 0.0, 1.0, 2.0];
    /// let pass = CrossProducts::from_columns(&[Column::Double(&y), Column::Double(&x)],
    ///     [1, 1, 1, 2, 2, 2, 3, 3, 3].into_iter(), 3, &mut Checkpoint::new(&Never)).unwrap();
    /// let structure = Structure { response: 0, fixed: vec![Term::Intercept, Term::Variable(1)],
    ///     random: vec![Term::Intercept], blocks: vec![1] };
    /// let model = LinearMixedModel::new(&pass.stats, structure).unwrap();
    /// let fit = model.fit(Criterion::Ml, None, &mut Checkpoint::new(&Never)).unwrap();
    /// let simulation = Simulation::of_fit(&model, &fit);
    /// assert_eq!(simulation.coefficients, fit.beta);
    /// ```
    pub fn of_fit(model: &LinearMixedModel, fit: &LmmFit) -> Simulation {
        let structure = model.structure().clone();
        let mut coefficients = vec![0.0; structure.fixed.len()];
        for (&column, &beta) in model.kept_fixed().iter().zip(&fit.beta) {
            coefficients[column] = beta;
        }
        Simulation { structure, coefficients, re_covariance: fit.re_covariance.clone(), sigma: fit.sigma }
    }

    fn check(&self, variables: usize) -> Result<()> {
        let s = &self.structure;
        let bad = |argument, reason| Err(HnmError::InvalidArgument { argument, reason });
        let design_variable = |t: &Term| match *t {
            Term::Intercept => true,
            Term::Variable(a) => a < variables && a != s.response,
        };
        if s.response >= variables || !s.fixed.iter().chain(&s.random).all(design_variable) {
            return bad("structure", "must name a response and design columns (other variables) the statistics hold");
        }
        let q = s.random.len();
        if self.coefficients.len() != s.fixed.len() || self.re_covariance.len() != q * q {
            return bad("coefficients", "must give one value per fixed-effect column and a q x q covariance");
        }
        if !(self.sigma > 0.0 && self.sigma.is_finite() && self.coefficients.iter().chain(&self.re_covariance).all(|v| v.is_finite())) {
            return bad("coefficients", "must be finite, with sigma > 0");
        }
        Ok(())
    }
}

/// One group's replicate distribution (module docs): ω_j = C_j u_j with 1 + r_j normals u_j.
#[derive(Debug, Clone)]
pub(super) struct GroupDraw {
    pub(super) group: usize,
    pub(super) rank: usize,
    /// x̄_jᵀβ − p_y: the fixed part of the response's mean about its pilot.
    pub(super) fixed_mean: f64,
    /// L_jᵀ β_w: the fixed part of t_j.
    pub(super) fixed_slopes: Vec<f64>,
    /// C_j, (1 + r_j) × (1 + r_j) lower triangular, row-major.
    pub(super) factor: Vec<f64>,
    /// L_j, (k − 1) × r_j row-major over the other variables in their order.
    pub(super) within: Vec<f64>,
    /// (n_j − 1 − r_j)/D: the group's share of the pooled residual sum of squares.
    pub(super) residual_share: f64,
}

/// Replicate statistics of a fixed design: draws the response's statistics of each group
/// from the model of a [`Simulation`] (module docs) given the other variables' statistics.
#[derive(Debug, Clone)]
pub struct ReplicateGenerator {
    pub(super) template: CrossProducts,
    pub(super) response: usize,
    pub(super) others: Vec<usize>,
    pub(super) groups: Vec<GroupDraw>,
    pub(super) normals: usize,
    pub(super) residual_df: f64,
    pub(super) sigma2: f64,
}

impl ReplicateGenerator {
    /// The replicate distribution of `simulation` for the design whose statistics are
    /// `stats` (their response's statistics are not used).
    ///
    /// # Errors
    /// `InvalidArgument` when the simulation does not fit the statistics or its parameters are
    /// not finite, σ ≤ 0, or Σ is not positive semi-definite (a group's Ω_j then fails);
    /// `TooLarge` when the generator's copy of the statistics does not fit in memory.
    ///
    /// # Example
    /// ```
    /// use hnm_core::{CrossProducts, ReplicateGenerator, Simulation, Structure, Term};
    /// // y and x, two groups of 3 rows; x varies within the groups.
    /// let stats = CrossProducts::new(vec![0.0, 0.0], vec![3.0, 3.0], vec![1.0, 1.0, 2.0, 1.0],
    ///     vec![2.0, 1.0, 2.0, 3.0, 1.5, 2.0]).unwrap();
    /// let simulation = Simulation { structure: Structure { response: 0,
    ///     fixed: vec![Term::Intercept, Term::Variable(1)], random: vec![Term::Intercept], blocks: vec![1] },
    ///     coefficients: vec![1.0, 0.5], re_covariance: vec![4.0], sigma: 1.0 };
    /// let generator = ReplicateGenerator::new(&stats, &simulation).unwrap();
    /// // Per group 1 + rank(W_j) = 2 normals; residual df = 2 (3 - 1 - 1) per group.
    /// assert_eq!((generator.normals(), generator.residual_df()), (4, 2.0));
    /// let replicate = generator.generate(&[0.0; 4], 2.0).unwrap();
    /// // With zero normals the response mean is its fixed part: 1 + 0.5 x̄_j.
    /// assert_eq!(replicate.mean(1)[0], 1.5);
    /// ```
    pub fn new(stats: &CrossProducts, simulation: &Simulation) -> Result<Self> {
        let k = stats.variables();
        simulation.check(k)?;
        let structure = &simulation.structure;
        let response = structure.response;
        let others: Vec<usize> = (0..k).filter(|&a| a != response).collect();
        let position = |a: usize| others.iter().position(|&o| o == a).expect("a design variable is not the response");
        // β by variable: the intercept and the fixed slope of each other variable.
        let mut intercept = 0.0;
        let mut slopes = vec![0.0; others.len()];
        for (term, &beta) in structure.fixed.iter().zip(&simulation.coefficients) {
            match *term {
                Term::Intercept => intercept += beta,
                Term::Variable(a) => slopes[position(a)] += beta,
            }
        }
        let pilot = stats.pilot();
        let constant = intercept + others.iter().zip(&slopes).map(|(&a, s)| s * pilot[a]).sum::<f64>() - pilot[response];
        let sigma2 = simulation.sigma * simulation.sigma;
        let random: Vec<Option<usize>> = structure
            .random
            .iter()
            .map(|t| match *t {
                Term::Intercept => None,
                Term::Variable(a) => Some(position(a)),
            })
            .collect();
        let mut groups = with_capacity(&[stats.groups()], "the bootstrap's group distributions")?;
        let (mut normals, mut residual_df) = (0, 0.0);
        for j in (0..stats.groups()).filter(|&j| stats.n()[j] > 0.0) {
            let nj = stats.n()[j];
            let means = stats.mean(j);
            let max_rank = (nj - 1.0).min(others.len() as f64) as usize;
            let (within, rank) =
                pivoted_factor(&others.iter().map(|&a| others.iter().map(|&b| stats.comoment(j, a, b)).collect()).collect::<Vec<Vec<f64>>>(), max_rank);
            let fixed_slopes: Vec<f64> = (0..rank).map(|s| (0..others.len()).map(|i| within[i * rank + s] * slopes[i]).sum()).collect();
            let fixed_mean = constant + others.iter().zip(&slopes).map(|(&a, s)| s * means[a]).sum::<f64>();
            // M_j: row 0 the random columns' group means (data units), rows 1.. L_jᵀ B.
            let dim = 1 + rank;
            let q = random.len();
            let mut m = vec![0.0; dim * q];
            for (d, column) in random.iter().enumerate() {
                match *column {
                    None => m[d] = 1.0,
                    Some(i) => {
                        m[d] = pilot[others[i]] + means[others[i]];
                        for s in 0..rank {
                            m[(1 + s) * q + d] = within[i * rank + s];
                        }
                    }
                }
            }
            let mut factor = vec![0.0; dim * dim];
            for r in 0..dim {
                for c in 0..=r {
                    let mut v: f64 = (0..q).map(|d| (0..q).map(|e| m[r * q + d] * simulation.re_covariance[d * q + e] * m[c * q + e]).sum::<f64>()).sum();
                    if r == c {
                        v += if r == 0 { sigma2 / nj } else { sigma2 };
                    }
                    factor[r * dim + c] = v;
                    factor[c * dim + r] = v;
                }
            }
            if !cholesky_in_place(&mut factor, dim) {
                return Err(HnmError::InvalidArgument { argument: "re_covariance", reason: "must be positive semi-definite" });
            }
            normals += dim;
            residual_df += nj - 1.0 - rank as f64;
            groups.push(GroupDraw { group: j, rank, fixed_mean, fixed_slopes, factor, within, residual_share: nj - 1.0 - rank as f64 });
        }
        for g in &mut groups {
            g.residual_share = if residual_df > 0.0 { g.residual_share / residual_df } else { 0.0 };
        }
        Ok(ReplicateGenerator { template: stats.try_clone()?, response, others, groups, normals, residual_df, sigma2 })
    }

    /// Standard normals one replicate takes: Σ_j (1 + r_j) over the groups with rows.
    pub fn normals(&self) -> usize {
        self.normals
    }

    /// D = Σ_j (n_j − 1 − r_j): the degrees of freedom of the pooled residual chi-square.
    pub fn residual_df(&self) -> f64 {
        self.residual_df
    }

    /// The replicate for standard normals `normals` ([`ReplicateGenerator::normals`] of them,
    /// group by group: u_j then the next group's) and a χ²_D draw `chi_square`.
    ///
    /// # Errors
    /// `LengthMismatch` for the wrong number of normals; `NotFinite` or `InvalidStatistic`
    /// when the draws are not finite or the chi-square is negative; `TooLarge` when the
    /// replicate's statistics do not fit in memory.
    pub fn generate(&self, normals: &[f64], chi_square: f64) -> Result<CrossProducts> {
        if normals.len() != self.normals {
            return Err(HnmError::LengthMismatch { first: "normals", first_len: normals.len(), second: "the replicate's draws", second_len: self.normals });
        }
        if !(chi_square >= 0.0) {
            return Err(HnmError::InvalidStatistic { argument: "chi_squares", index: 0, reason: "a chi-square draw cannot be negative" });
        }
        let s = &self.template;
        let k = s.variables();
        let triangle = k * (k + 1) / 2;
        let (r, others) = (self.response, &self.others);
        const REPLICATE: &str = "a replicate's statistics";
        let mut means = copied(s.means(), REPLICATE)?;
        let mut comoments = copied(s.comoments(), REPLICATE)?;
        let mut omega = vec![0.0; others.len() + 1];
        let mut first = 0;
        for g in &self.groups {
            let dim = 1 + g.rank;
            let u = &normals[first..first + dim];
            first += dim;
            for (row, w) in omega[..dim].iter_mut().enumerate() {
                *w = (0..=row).map(|c| g.factor[row * dim + c] * u[c]).sum();
            }
            means[g.group * k + r] = g.fixed_mean + omega[0];
            // t_j in place of ω_j's slope part (no allocation per group).
            for (w, h) in omega[1..dim].iter_mut().zip(&g.fixed_slopes) {
                *w += h;
            }
            let t = &omega[1..dim];
            let block = &mut comoments[g.group * triangle..(g.group + 1) * triangle];
            for (i, &a) in others.iter().enumerate() {
                block[if a > r { packed(a, r) } else { packed(r, a) }] = (0..g.rank).map(|c| g.within[i * g.rank + c] * t[c]).sum();
            }
            block[packed(r, r)] = t.iter().map(|v| v * v).sum::<f64>() + g.residual_share * self.sigma2 * chi_square;
        }
        CrossProducts::new(s.pilot().to_vec(), copied(s.n(), REPLICATE)?, means, comoments)
    }
}

/// L with W ≈ L Lᵀ (n × r, row-major, rows in W's order) by Cholesky with diagonal pivoting,
/// taking next the variable with the largest residual relative to its own W[a, a] and stopping
/// at `max_rank` or when every relative residual is below [`RANK_TOLERANCE`]; and r.
fn pivoted_factor(w: &[Vec<f64>], max_rank: usize) -> (Vec<f64>, usize) {
    let n = w.len();
    let mut residual: Vec<Vec<f64>> = w.to_vec();
    let mut columns: Vec<Vec<f64>> = Vec::new();
    while columns.len() < max_rank {
        let best = (0..n).filter(|&a| w[a][a] > 0.0).map(|a| (a, residual[a][a] / w[a][a])).fold(None, |best: Option<(usize, f64)>, (a, ratio)| {
            if best.is_none_or(|(_, b)| ratio > b) {
                Some((a, ratio))
            } else {
                best
            }
        });
        let Some((pivot, _)) = best.filter(|&(_, ratio)| ratio > RANK_TOLERANCE) else { break };
        let d = residual[pivot][pivot].sqrt();
        let column: Vec<f64> = (0..n).map(|i| residual[i][pivot] / d).collect();
        for i in 0..n {
            for c in 0..n {
                residual[i][c] -= column[i] * column[c];
            }
        }
        columns.push(column);
    }
    let rank = columns.len();
    let factor = (0..n).flat_map(|i| columns.iter().map(move |c| c[i])).collect::<Vec<f64>>();
    (factor, rank)
}

/// Standard normals into `out`, a function of `seed` alone (so a replicate's draws do not
/// depend on the thread that makes them): xoshiro256++ (Blackman and Vigna 2021) from a state
/// of four SplitMix64 outputs of the seed, uniforms on [−1, 1) of its top 53 bits, and pairs
/// by Marsaglia's polar method: (u, v) uniform in the unit disc (pairs outside, or at 0,
/// rejected) give (u, v) √(−2 log s / s) with s = u² + v², two independent N(0, 1) (no sine
/// or cosine, as the Box–Muller transform needs).
///
/// # Example
/// ```
/// let (mut a, mut b) = (vec![0.0; 5], vec![0.0; 5]);
/// hnm_core::seeded_normals(7, &mut a);
/// hnm_core::seeded_normals(7, &mut b);
/// assert_eq!(a, b);
/// assert!(a.iter().all(|z| z.is_finite()));
/// ```
pub fn seeded_normals(seed: u64, out: &mut [f64]) {
    let mut split = seed;
    let mut splitmix = || {
        split = split.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let z = (split ^ (split >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut s = [splitmix(), splitmix(), splitmix(), splitmix()];
    let mut uniform = || {
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        (result >> 11) as f64 * (2.0 / (1u64 << 53) as f64) - 1.0
    };
    for pair in out.chunks_mut(2) {
        let (u, v, s) = loop {
            let (u, v) = (uniform(), uniform());
            let s = u * u + v * v;
            if s < 1.0 && s > 0.0 {
                break (u, v, s);
            }
        };
        let factor = (-2.0 * s.ln() / s).sqrt();
        pair[0] = u * factor;
        if let Some(second) = pair.get_mut(1) {
            *second = v * factor;
        }
    }
}
