//! Glue for the ANOVA (method-of-moments) fit: the moment estimates with the likelihood,
//! its Hessian and the estimators' sampling covariance at those estimates.

use extendr_api::prelude::*;
use hnm_core::{Anova, Params};

use crate::{respond, Estimates};

/// ANOVA (method-of-moments) fit of the one-way model behind `ptr`.
/// @noRd
#[extendr]
fn rs_anova_fit(ptr: Robj) -> Robj {
    let stats = match crate::model::one_way_statistics(&ptr) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let result = Anova::new(&stats).map(|a| (stats, a));
    respond(result, |(s, a)| {
        let params = Params { mu: a.mu, sigma2: a.sigma2(), tau2: a.tau2() };
        let covariance = a.covariance(&s);
        let estimates = Estimates {
            params,
            theta: (params.tau2 / params.sigma2).sqrt(),
            deviance: 2.0 * hnm_core::neg_log_lik(&s, &params),
            se_mu: covariance[0][0].sqrt(),
            hessian: hnm_core::hessian(&s, &params),
            covariance,
        };
        estimates.into_list(vec![
            ("msg", a.msg.into()),
            ("mse", a.mse.into()),
            ("n0", a.n0.into()),
            ("df_between", a.df_between.into()),
            ("df_within", a.df_within.into()),
            ("tau2_untruncated", a.tau2_untruncated.into()),
        ])
    })
}

extendr_module! {
    mod anova_fit;
    fn rs_anova_fit;
}
