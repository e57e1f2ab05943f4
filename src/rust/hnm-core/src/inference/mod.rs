//! Inference from a fit: standard errors, profile-likelihood intervals, degrees of freedom and
//! the parametric bootstrap, for the one-way model and the linear mixed model.
//!
//! - [`information`] and [`anova`]: the one-way fit's information matrix and the ANOVA
//!   (moment) estimator with its sampling covariance;
//! - [`profile_ci`] and [`inner`]: the one-way model's profiles of τ, σ and μ and their
//!   one-dimensional inner problems;
//! - [`lmm_profile`]: the mixed model's profiles (lme4's `profile()`), by parameter kind;
//! - [`satterthwaite`]: what Satterthwaite's degrees of freedom need of a mixed-model fit;
//! - [`bootstrap`] and [`bootstrap_lmm`]: parametric-bootstrap replicates and their refits in
//!   sufficient-statistic space.

pub(crate) mod anova;
pub(crate) mod bootstrap;
pub(crate) mod bootstrap_lmm;
pub(crate) mod information;
pub(crate) mod inner;
pub(crate) mod lmm_profile;
pub(crate) mod profile_ci;
pub(crate) mod satterthwaite;
