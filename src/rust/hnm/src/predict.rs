//! Glue for the variances of conditional predictions (hnm_core's
//! `LinearMixedModel::prediction_variances`), which R's predict() turns into standard errors
//! and confidence and prediction intervals.

use extendr_api::prelude::*;
use hnm_core::Checkpoint;

use crate::model::{model_of_mut, rows, NOT_FITTED};
use crate::{core_error, error_message, RInterrupt};

/// Var(x₀ᵀβ̂ + z₀ᵀb̂_j − x₀ᵀβ − z₀ᵀb_j) at the fit for the rows of `columns_list` (the model's
/// variables) in groups `codes` less `code_offset` (0 a new level), NA where a value or the
/// group is missing.
/// @noRd
#[extendr]
fn rs_lmm_prediction_variances(mut ptr: Robj, columns_list: List, codes: Robj, code_offset: Robj) -> Robj {
    let column_objects: Vec<Robj> = columns_list.values().collect();
    let (columns, group) = match rows(&column_objects, &codes, &code_offset) {
        Ok(rows) => rows,
        Err(e) => return e,
    };
    let model = match model_of_mut(&mut ptr) {
        Ok(m) => m,
        Err(e) => return e,
    };
    let Some(fit) = model.fit.as_ref() else {
        return error_message(NOT_FITTED.into(), "invalid_argument");
    };
    match model.model.prediction_variances(fit, &columns, group, &mut Checkpoint::new(&RInterrupt)) {
        Ok(values) => Doubles::from_values(values.into_iter().map(|v| if v.is_nan() { Rfloat::na() } else { Rfloat::from(v) })).into(),
        Err(error) => core_error(error),
    }
}

extendr_module! {
    mod predict;
    fn rs_lmm_prediction_variances;
}
