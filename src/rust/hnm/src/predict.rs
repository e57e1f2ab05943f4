//! Glue for the variances of conditional predictions (hnm_core's
//! `LinearMixedModel::prediction_variances`), which R's predict() turns into standard errors
//! and confidence and prediction intervals.

use extendr_api::prelude::*;
use hnm_core::Checkpoint;

use crate::model::{values_at_rows, NOT_FITTED};
use crate::{core_error, error_message, RInterrupt};

/// Var(x₀ᵀβ̂ + z₀ᵀb̂_j − x₀ᵀβ − z₀ᵀb_j) at the fit for the rows of `columns_list` (the model's
/// variables) in groups `codes` less `code_offset` (0 a new level), NA where a value or the
/// group is missing.
/// @noRd
#[extendr]
fn rs_lmm_prediction_variances(mut ptr: Robj, columns_list: List, codes: Robj, code_offset: Robj) -> Robj {
    values_at_rows(&mut ptr, &columns_list, &codes, &code_offset, |model, columns, group| {
        let fit = model.fit.as_ref().ok_or_else(|| error_message(NOT_FITTED.into(), "invalid_argument"))?;
        model.model.prediction_variances(fit, columns, group, &mut Checkpoint::new(&RInterrupt)).map_err(core_error)
    })
}

extendr_module! {
    mod predict;
    fn rs_lmm_prediction_variances;
}
