//! The one-way random-effects model y_ij = μ + a_j + ε_ij from (n_j, ȳ_j, SSW_j): the case
//! q = 1 of the mixed model without covariates, whose criterion, derivatives and fits have
//! closed forms per group.
//!
//! - [`likelihood`]: −ℓ(μ, σ², τ²) and its analytic gradient and Hessian;
//! - [`profiled_deviance`]: the deviance with μ and σ² profiled out, a function of λ = τ²/σ²,
//!   and the [`crate::Criterion`] (ML or REML) every fit is made under;
//! - [`fit`]: the ML and REML fits, with the exact boundary at τ² = 0.

pub(crate) mod fit;
pub(crate) mod likelihood;
pub(crate) mod profiled_deviance;
