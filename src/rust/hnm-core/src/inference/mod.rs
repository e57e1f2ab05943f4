//! Inference from a fit: standard errors, profile-likelihood intervals, degrees of freedom and
//! the parametric bootstrap, for the one-way model and the linear mixed model.
//!
//! - [`information`] and [`anova`]: the one-way fit's information matrix and the ANOVA
//!   (moment) estimator with its sampling covariance;
//! - [`profile_ci`] and [`inner`]: the one-way model's profiles of τ, σ and μ and their
//!   one-dimensional inner problems;
//! - [`bootstrap`] and [`bootstrap_lmm`]: parametric-bootstrap replicates and their refits in
//!   sufficient-statistic space.

pub(crate) mod anova;
pub(crate) mod bootstrap;
pub(crate) mod bootstrap_lmm;
pub(crate) mod information;
pub(crate) mod inner;
pub(crate) mod profile_ci;
