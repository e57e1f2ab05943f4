//! The models, as functions of the data's statistics: their criteria (ML deviance, REML
//! criterion), its derivatives and the fits that minimise it.
//!
//! - [`lmm`]: the linear mixed model with one grouping factor ([`crate::LinearMixedModel`]);
//! - [`one_way`]: its q = 1 case without covariates, the one-way model, in closed forms.

pub(crate) mod lmm;
pub(crate) mod one_way;
