//! Glue for the Wald intervals of the variance parameters: the Jacobian of lme4's SDs,
//! correlations and σ in the model's internal variance parameters
//! (hnm_core::VarianceParameterJacobian), which R combines with the Hessian of
//! `rs_lmm_variance_derivatives`.

use extendr_api::prelude::*;

use crate::model::{model_of_mut, NOT_FITTED};
use crate::{core_error, error_message};

/// lme4's variance parameters at the fit and their Jacobian in the internal (θ, σ): `parameters`
/// (k), `estimates` (k), `jacobian` (k × k by rows), `boundary` (k: an SD of 0 or a
/// correlation of ±1) and `held` (k: internal coordinates held at the fit's boundary face).
/// @noRd
#[extendr]
fn rs_lmm_wald_jacobian(mut ptr: Robj) -> Robj {
    let model = match model_of_mut(&mut ptr) {
        Ok(m) => m,
        Err(e) => return e,
    };
    let Some(fit) = model.fit.as_ref() else {
        return error_message(NOT_FITTED.into(), "invalid_argument");
    };
    match model.model.variance_parameter_jacobian(fit) {
        Ok(j) => list!(parameters = j.parameters as i32, estimates = j.estimates, jacobian = j.jacobian, boundary = j.boundary, held = j.held).into(),
        Err(error) => core_error(error),
    }
}

extendr_module! {
    mod wald;
    fn rs_lmm_wald_jacobian;
}
