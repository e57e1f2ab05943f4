//! The documented range of the model's variables (R's `?hnm-conditions`, "Range of the
//! data"), checked on the statistics before the model is built.
//!
//! The data pass (and a database, or a statistics table) gives per-group co-moments in the
//! data's units; the model then rescales each column by a power of two near its spread,
//! exactly. So the only squares of data-unit numbers are the co-moments and the columns' total
//! sums of squares computed from them; everything after works in internal units and maps back
//! by the exact scale laws (β_a ~ t_y/t_a, their variances and the random-effects covariances
//! ~ (t_y/t_a)(t_y/t_b), σ ~ t_y). Three conditions keep all of these normal doubles:
//! - each variable's total sum of squares about its mean, T_a = Σ_j [W_j,aa + n_j (m_ja − m_a)²],
//!   is finite: √T_a ≤ 1.3e154 (and so is N times the mean square about 0 of a column used
//!   uncentred, without an intercept in its part);
//! - T_a/N is at least the smallest normal double, 2.2e-308, an RMS deviation of 1.5e-154 (or
//!   the variable is constant: no deviations and equal group means; its sum of squares alone
//!   cannot tell, as squares of 1e-200 underflow to 0): then a product of deviations that falls
//!   below the normal range loses at most 2⁻¹⁰⁷⁵, which is 1e-16 of a product at the column's
//!   scale;
//! - the spread of the response over the spread of each column of X and Z lies within
//!   1e-150..1e150, so that its square, the scale of the variances, stays within 1e-300..1e300:
//!   a factor of 1e8 inside double precision for the data's own conditioning.
//!
//! The check reads the statistics (O(groups × variables), never the rows) and covers every way
//! into the model: the rows' pass, a statistics table, a database's statistics.

use super::structure::ColumnSummary;
use super::{Structure, Term};
use crate::error::{HnmError, RangeProblem, Result};

/// Spreads of the response and a model column further apart than this factor (either way)
/// leave double precision in the estimates (which scale with their ratio) or their variances
/// (with its square).
const SCALE_RATIO_LIMIT: f64 = 1e150;

/// Checks that the model's variables lie within double precision's range, from the
/// statistics of the groups with rows. For each variable a, with grand mean v̄_a (about the
/// pilot) and total sum of squares T_a = Σ_j W_j[a, a] + Σ_j n_j (v̄_ja − v̄_a)²:
/// - T_a and N s_a² must be finite, where s_a² = T_a/N, plus (p_a + v̄_a)² for a variable the
///   model does not centre (X's and y's columns when X has no intercept, Z's columns of a
///   block without a random intercept);
/// - a variable that varies must have T_a/N ≥ the smallest normal double;
/// - the response's spread s_y and each model column's s_a must satisfy
///   1e-150 ≤ s_y/s_a ≤ 1e150;
/// - with a random intercept, the response must vary within some group of more than one row.
///
/// # Errors
/// `VariableOutOfRange` naming the first variable that breaks one of the first three rules,
/// `NoWithinGroupVariation` for the last.
pub(crate) fn check_range(columns: &ColumnSummary<'_>, structure: &Structure) -> Result<()> {
    let (stats, n_obs) = (columns.stats, columns.n_obs);
    let k = stats.variables();
    let groups = || (0..stats.groups()).filter(|&j| stats.n()[j] > 0.0);
    let Some(first) = groups().next() else {
        return Ok(()); // no rows: the model's own error
    };
    let variable = |t: &Term| match *t {
        Term::Variable(a) => Some(a),
        Term::Intercept => None,
    };
    let mut uncentred = vec![false; k];
    if !structure.fixed.contains(&Term::Intercept) {
        for a in structure.fixed.iter().filter_map(variable).chain([structure.response]) {
            uncentred[a] = true;
        }
    }
    let mut start = 0;
    for &size in &structure.blocks {
        let block = &structure.random[start..start + size];
        if !block.contains(&Term::Intercept) {
            block.iter().filter_map(variable).for_each(|a| uncentred[a] = true);
        }
        start += size;
    }
    let first = stats.mean(first);
    let mut spread = vec![0.0; k];
    for a in 0..k {
        let (mean, total) = (columns.grand_mean[a], columns.centred_ss[a]);
        let mut square = total / n_obs;
        if uncentred[a] {
            square += (stats.pilot()[a] + mean).powi(2);
        }
        if !total.is_finite() || !(square * n_obs).is_finite() {
            return Err(HnmError::VariableOutOfRange { variable: a, problem: RangeProblem::TooWide });
        }
        let varies = total > 0.0 || groups().any(|j| stats.mean(j)[a] != first[a]);
        if varies && total / n_obs < f64::MIN_POSITIVE {
            return Err(HnmError::VariableOutOfRange { variable: a, problem: RangeProblem::TooNarrow { rms: (total / n_obs).sqrt() } });
        }
        spread[a] = square.sqrt();
    }
    let response = structure.response;
    if spread[response] > 0.0 {
        let mut seen = vec![false; k];
        for a in structure.fixed.iter().chain(&structure.random).filter_map(variable) {
            if std::mem::replace(&mut seen[a], true) || spread[a] == 0.0 {
                continue;
            }
            let ratio = spread[response] / spread[a];
            if !(1.0 / SCALE_RATIO_LIMIT..=SCALE_RATIO_LIMIT).contains(&ratio) {
                return Err(HnmError::VariableOutOfRange { variable: a, problem: RangeProblem::ScaleApart { response, ratio } });
            }
        }
    }
    let replicated = groups().any(|j| stats.n()[j] > 1.0);
    if structure.random.contains(&Term::Intercept)
        && replicated
        && groups().all(|j| stats.comoment(j, response, response) == 0.0)
        && stats.pooled_comoment(response, response) == 0.0
    {
        return Err(HnmError::NoWithinGroupVariation);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::cross_products::CrossProducts;

    fn structure(response: usize, fixed: Vec<Term>, random: Vec<Term>) -> Structure {
        let blocks = vec![random.len()];
        Structure { response, fixed, random, blocks }
    }

    #[test]
    fn each_rule_names_its_variable() {
        let one_way = structure(0, vec![Term::Intercept], vec![Term::Intercept]);
        // Within-group deviations of 1e-160: T/N underflows below the smallest normal double.
        let tiny = CrossProducts::new(vec![0.0], vec![2.0, 2.0], vec![0.0, 0.0], vec![2e-320, 2e-320]).unwrap();
        assert!(matches!(
            check_range(&ColumnSummary::of(&tiny), &one_way),
            Err(HnmError::VariableOutOfRange { variable: 0, problem: RangeProblem::TooNarrow { .. } })
        ));
        // Group means 1e160 apart: their squares overflow.
        let wide = CrossProducts::new(vec![0.0], vec![2.0, 2.0], vec![0.0, 1e160], vec![1.0, 1.0]).unwrap();
        assert_eq!(check_range(&ColumnSummary::of(&wide), &one_way), Err(HnmError::VariableOutOfRange { variable: 0, problem: RangeProblem::TooWide }));
        // No within-group variation under a random intercept.
        let flat = CrossProducts::new(vec![0.0], vec![2.0, 2.0], vec![0.0, 1.0], vec![0.0, 0.0]).unwrap();
        assert_eq!(check_range(&ColumnSummary::of(&flat), &one_way), Err(HnmError::NoWithinGroupVariation));
        // A covariate 1e152 times the response's spread (its squares, 1e304, still finite).
        let slope = structure(0, vec![Term::Intercept, Term::Variable(1)], vec![Term::Intercept]);
        let apart = CrossProducts::new(vec![0.0, 0.0], vec![2.0, 2.0], vec![0.0, 0.0, 1.0, 1e152], vec![1.0, 0.0, 1e304, 1.0, 0.0, 1e304]).unwrap();
        let error = check_range(&ColumnSummary::of(&apart), &slope).unwrap_err();
        assert!(
            matches!(error, HnmError::VariableOutOfRange { variable: 1, problem: RangeProblem::ScaleApart { response: 0, ratio } } if ratio < 1e-150),
            "{error:?}"
        );
        assert_eq!(error.kind(), "out_of_range");
        // Within range.
        let fine = CrossProducts::new(vec![5.0], vec![2.0, 3.0], vec![0.0, 1.0], vec![1.0, 2.0]).unwrap();
        assert_eq!(check_range(&ColumnSummary::of(&fine), &one_way), Ok(()));
    }
}
