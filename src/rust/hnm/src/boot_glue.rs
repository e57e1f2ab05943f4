//! Glue for the parametric bootstrap of the general model in statistic space: the replicate
//! generator lives behind an external pointer (built once per bootstrap), and each chunk of
//! R-drawn normals and chi-squares is refitted in Rust on scoped threads.

use extendr_api::prelude::*;
use hnm_core::{collected, refit_lmm_replicates, Refit, ReplicateGenerator, Simulation};

use crate::{core_error, criterion, error_message, respond, RInterrupt};

/// The replicate generator of the model `spec` (response, fixed, random, blocks as in
/// `fit$spec`) at β = `coefficients` (one per fixed column, 0 for a dropped one), Σ =
/// `re_covariance` (q × q) and σ = `sigma`, for the design whose statistics are `fit$stats`:
/// the pointer, the standard normals one replicate takes and the degrees of freedom of its
/// residual chi-square.
/// @noRd
#[extendr]
#[allow(clippy::too_many_arguments)]
fn rs_lmm_boot_generator(
    pilot: &[f64], n: &[f64], means: &[f64], comoments: &[f64], response: i32, fixed: &[i32], random: &[i32], blocks: &[i32], coefficients: &[f64],
    re_covariance: &[f64], sigma: f64,
) -> Robj {
    let simulation = Simulation {
        structure: crate::model::structure(response, fixed, random, blocks),
        coefficients: coefficients.to_vec(),
        re_covariance: re_covariance.to_vec(),
        sigma,
    };
    let result = crate::stats_copy(pilot, n, means, comoments).and_then(|stats| ReplicateGenerator::new(&stats, &simulation));
    respond(result, |generator| {
        let (normals, residual_df) = (generator.normals() as f64, generator.residual_df());
        list!(generator = ExternalPtr::new(generator), normals = normals, residual_df = residual_df).into()
    })
}

/// Refits of the model `spec` (ML, or REML when `reml`; from the internal θ `start`) to the
/// replicates of `generator` given by `seeds` (per replicate the high and low 32 bits of the
/// seed of its normals, whole numbers in [0, 2^32)) and `chi_squares` (one each), on
/// `threads` threads. Per replicate (by rows): the kept β, Σ (q × q), σ and the
/// deviance; NA where a refit failed.
/// @noRd
#[extendr]
#[allow(clippy::too_many_arguments)]
fn rs_lmm_boot_refit(
    generator: Robj, response: i32, fixed: &[i32], random: &[i32], blocks: &[i32], reml: bool, start: &[f64], seeds: &[f64], chi_squares: &[f64], threads: i32,
) -> Robj {
    let Ok(generator) = <&ExternalPtr<ReplicateGenerator>>::try_from(&generator) else {
        return error_message("the bootstrap's generator is no longer in memory; run the bootstrap again.".into(), "invalid_argument");
    };
    let refit = Refit { structure: crate::model::structure(response, fixed, random, blocks), criterion: criterion(reml), start: start.to_vec() };
    let threads = usize::try_from(threads).unwrap_or(1);
    let half = |v: f64| ((0.0..4_294_967_296.0).contains(&v) && v.fract() == 0.0).then_some(v as u64);
    let seed = |pair: &[f64]| Some((half(pair[0])? << 32) | half(*pair.get(1)?)?);
    if !seeds.chunks(2).all(|pair| seed(pair).is_some()) {
        return error_message("the bootstrap's seeds must be pairs of whole numbers from 0 to 2^32 - 1.".into(), "invalid_argument");
    }
    let seeds = match collected(seeds.chunks(2).filter_map(seed), "the bootstrap's seeds") {
        Ok(seeds) => seeds,
        Err(error) => return core_error(error),
    };
    match refit_lmm_replicates(generator.addr(), &[refit], &seeds, chi_squares, threads, &RInterrupt) {
        Ok(refits) => {
            let fits = || refits.iter().map(|r| r.as_ref().map(|fits| &fits[0]));
            let width = |get: fn(&hnm_core::LmmFit) -> usize| fits().flatten().map(get).max().unwrap_or(0);
            let (p, q2) = (width(|f| f.beta.len()), width(|f| f.re_covariance.len()));
            // Written straight into R's vector (one row per replicate): a failed refit, or one
            // whose fit dropped other columns, is a row of NA.
            let rows = |values: fn(&hnm_core::LmmFit) -> &[f64], size: usize| {
                let mut out = Doubles::new_with_na(refits.len() * size);
                for (row, fit) in out.chunks_exact_mut(size.max(1)).zip(fits()) {
                    if let Some(v) = fit.map(values).filter(|v| v.len() == size) {
                        row.iter_mut().zip(v).for_each(|(cell, &value)| *cell = Rfloat::from(value));
                    }
                }
                out
            };
            list!(
                beta = rows(|f| &f.beta, p),
                re_covariance = rows(|f| &f.re_covariance, q2),
                sigma = rows(|f| std::slice::from_ref(&f.sigma), 1),
                deviance = rows(|f| std::slice::from_ref(&f.deviance), 1)
            )
            .into()
        }
        Err(error) => core_error(error),
    }
}

extendr_module! {
    mod boot_glue;
    fn rs_lmm_boot_generator;
    fn rs_lmm_boot_refit;
}
