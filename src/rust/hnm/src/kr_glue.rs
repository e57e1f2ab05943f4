//! Glue for Kenward and Roger's adjusted covariance of β̂ and their degrees of freedom
//! (hnm_core::KenwardRoger), which R combines into pbkrtest's and lmerTest's tables.

use extendr_api::prelude::*;
use hnm_core::Checkpoint;

use crate::model::{model_of_mut, NOT_FITTED};
use crate::{core_error, error_message, RInterrupt};

/// Kenward–Roger's pieces at a REML fit: `parameters` (k), `covariance` and `adjusted`
/// (p × p by rows), `covariance_jacobian` (k matrices p × p by rows) and `weights` (k × k).
/// @noRd
#[extendr]
fn rs_lmm_kenward_roger(mut ptr: Robj) -> Robj {
    let model = match model_of_mut(&mut ptr) {
        Ok(m) => m,
        Err(e) => return e,
    };
    let Some(fit) = model.fit.as_ref() else {
        return error_message(NOT_FITTED.into(), "invalid_argument");
    };
    match model.model.kenward_roger(fit, &mut Checkpoint::new(&RInterrupt)) {
        Ok(kr) => list!(
            parameters = kr.parameters as i32,
            covariance = kr.covariance,
            adjusted = kr.adjusted,
            covariance_jacobian = kr.covariance_jacobian,
            weights = kr.weights
        )
        .into(),
        Err(error) => core_error(error),
    }
}

extendr_module! {
    mod kr_glue;
    fn rs_lmm_kenward_roger;
}
