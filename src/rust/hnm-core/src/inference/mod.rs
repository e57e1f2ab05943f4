//! Inference from a fit: standard errors, profile-likelihood intervals, degrees of freedom and
//! the parametric bootstrap of the linear mixed model (the one-way model is its q = p = 1 case;
//! its closed-form information and ANOVA estimator are its extras).
//!
//! - [`information`] and [`anova`]: the one-way fit's information matrix and the ANOVA
//!   (moment) estimator with its sampling covariance;
//! - [`lmm_profile`]: the mixed model's profiles (lme4's `profile()`), by parameter kind;
//! - [`satterthwaite`]: what Satterthwaite's degrees of freedom need of a mixed-model fit;
//! - [`kenward_roger`]: Kenward and Roger's adjusted covariance of β̂ and what their degrees
//!   of freedom need;
//! - [`bootstrap_lmm`]: parametric-bootstrap replicates and their refits in sufficient-statistic
//!   space.

pub(crate) mod anova;
pub(crate) mod bootstrap_lmm;
pub(crate) mod information;
pub(crate) mod kenward_roger;
pub(crate) mod lmm_profile;
pub(crate) mod satterthwaite;
pub(crate) mod wald;
