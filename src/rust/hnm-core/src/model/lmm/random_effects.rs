//! The random effects at a fit: their conditional modes (BLUPs) and covariances, and the
//! fitted values of rows.

use super::{LinearMixedModel, LmmFit, RandomEffects, Term, Workspace};
use crate::data::blocks::{with_codes, Column, GroupColumn};
use crate::data::cells::NA_CODE;
use crate::data::groups::code_index;
use crate::error::{HnmError, Result};
use crate::model::one_way::profiled_deviance::Criterion;
use crate::numerics::dense::{congruence, dot, inverse_from_cholesky, lambda_transposed_times, multiply, solve_lower, solve_lower_transposed};
use crate::numerics::interrupt::Checkpoint;
use crate::numerics::memory::{filled, with_capacity};

impl LinearMixedModel {
    /// Per group: the spherical conditional mode u_j = L_j⁻ᵀ R_j w = A_j⁻¹Λᵀ(B_j w) with
    /// w = (−β̂, 1).
    fn spherical_mode(&self, ws: &Workspace, j: usize, w: &[f64]) -> Vec<f64> {
        let (q, p1) = (self.q, self.p + 1);
        let l = &ws.l[j * q * q..(j + 1) * q * q];
        let b = &self.zxy[j * q * p1..(j + 1) * q * p1];
        let e: Vec<f64> = b.chunks_exact(p1).map(|row| dot(row, w)).collect();
        let mut u = vec![0.0; q];
        lambda_transposed_times(&ws.lambda, &e, q, 1, &mut u);
        solve_lower(l, q, &mut u, 1);
        solve_lower_transposed(l, q, &mut u, 1);
        u
    }

    /// The conditional modes and covariances of the random effects at `fit`, in the data's units.
    ///
    /// # Errors
    /// The errors of [`LinearMixedModel::deviance`] at the fit's θ; `TooLarge` when the
    /// workspace or the effects do not fit in memory.
    pub fn random_effects(&self, fit: &LmmFit) -> Result<RandomEffects> {
        self.require_one_factor("conditional modes with several grouping factors (yet)")?;
        let q = self.q;
        let mut ws = self.workspace()?;
        let factor = self.factorize(&fit.internal_theta, &mut ws)?;
        let divisor = match fit.criterion {
            Criterion::Ml => self.n_obs,
            Criterion::Reml => self.n_obs - self.p as f64,
        };
        let ty = self.response.scale;
        let sigma2 = factor.pwrss / divisor * ty * ty;
        let lambda = self.lambda(&fit.internal_theta)?;
        let map: Vec<f64> = {
            let mut ml = vec![0.0; q * q];
            multiply(&self.to_user_random, &lambda, q, q, q, &mut ml);
            ml
        };
        let mut w: Vec<f64> = self.internal_beta(&ws).iter().map(|b| -b).collect();
        w.push(1.0);
        let m = self.n.len();
        // Filled within their exact capacity: `extend` never reallocates them.
        let mut modes = with_capacity(&[m, q], "the conditional modes")?;
        let mut conditional_covariances = with_capacity(&[m, q, q], "the conditional covariances")?;
        for j in 0..m {
            let u = self.spherical_mode(&ws, j, &w);
            modes.extend((0..q).map(|r| ty * (0..q).map(|k| map[r * q + k] * u[k]).sum::<f64>()));
            let a_inverse = inverse_from_cholesky(&ws.l[j * q * q..(j + 1) * q * q], q);
            conditional_covariances.extend(congruence(&map, &a_inverse, q).iter().map(|v| v * sigma2));
        }
        Ok(RandomEffects { modes, conditional_covariances })
    }
}

impl LinearMixedModel {
    /// Fitted values X_i β̂ + Z_i b̂_j of rows given by `columns` (the variables of the
    /// statistics, in order) and the 1-based codes of `group` among the statistics' groups: code 0, or a
    /// group the model left out (no rows), gives the population value X_i β̂ (as lme4's
    /// `allow.new.levels`), and so does every row when `random_effects` is `None`; a missing
    /// code or value gives NaN (R's `NA`).
    ///
    /// # Errors
    /// `LengthMismatch` when a column and `group` differ in length; `InvalidArgument` when the
    /// columns are not the model's variables or `random_effects` belongs to another model;
    /// `TooLarge` when the values do not fit in memory; `Interrupted` when `checkpoint` reports
    /// a user interrupt.
    pub fn fitted_values(
        &self, fit: &LmmFit, random_effects: Option<&RandomEffects>, columns: &[Column<'_>], group: GroupColumn<'_>, checkpoint: &mut Checkpoint<'_>,
    ) -> Result<Vec<f64>> {
        let q = self.q;
        if random_effects.is_some_and(|re| re.modes.len() != self.n.len() * q) {
            return Err(HnmError::InvalidArgument { argument: "random_effects", reason: "must belong to this model" });
        }
        let fixed: Vec<Term> = self.kept.iter().map(|&f| self.structure.fixed[f]).collect();
        self.row_values(columns, group, "the fitted values", checkpoint, |value, group| {
            let mut total = 0.0;
            for (term, beta) in fixed.iter().zip(&fit.beta) {
                total += beta * value(*term)?;
            }
            if let (Some(re), Some(j)) = (random_effects, group) {
                for (k, term) in self.structure.random.iter().enumerate() {
                    total += re.modes[j * q + k] * value(*term)?;
                }
            }
            Some(total)
        })
    }

    /// One value per row of new data given by `columns` (the variables of the statistics, in
    /// order) and the 1-based codes of `group` among the statistics' groups: `row(value,
    /// group)` with `value(term)` the row's value of a design column (None when missing or
    /// not finite) and `group` the row's modelled group, None for code 0 or a group the model
    /// left out (a new level); None from `row`, or a missing code, gives NaN (R's `NA`).
    ///
    /// # Errors
    /// `LengthMismatch` when a column and `group` differ in length; `InvalidArgument` when the
    /// columns are not the model's variables; `TooLarge` when the values (`what`) do not fit in
    /// memory; `Interrupted` when `checkpoint` reports a user interrupt.
    pub(crate) fn row_values(
        &self, columns: &[Column<'_>], group: GroupColumn<'_>, what: &'static str, checkpoint: &mut Checkpoint<'_>,
        mut row_value: impl FnMut(&dyn Fn(Term) -> Option<f64>, Option<usize>) -> Option<f64>,
    ) -> Result<Vec<f64>> {
        self.require_one_factor("fitted values with several grouping factors (yet)")?;
        let variables = self.structure.fixed.iter().chain(&self.structure.random).filter_map(|t| match t {
            Term::Variable(a) => Some(*a),
            Term::Intercept => None,
        });
        if variables.clone().any(|a| a >= columns.len()) {
            return Err(HnmError::InvalidArgument { argument: "columns", reason: "must hold every variable of the model" });
        }
        if let Some(column) = columns.iter().find(|c| c.len() != group.len()) {
            return Err(HnmError::LengthMismatch { first: "a model column", first_len: column.len(), second: "the grouping factor", second_len: group.len() });
        }
        let mut modelled = filled(&[self.group_index.iter().max().map_or(0, |&g| g + 1)], usize::MAX, "the index of the groups")?;
        for (j, &g) in self.group_index.iter().enumerate() {
            modelled[g] = j;
        }
        // One value per row, pushed within its exact capacity.
        let mut out = with_capacity(&[group.len()], what)?;
        with_codes!(group, codes => {
            for (row, code) in codes.enumerate() {
                checkpoint.check()?;
                if code == NA_CODE {
                    out.push(f64::NAN);
                    continue;
                }
                let value = |term: Term| match term {
                    Term::Intercept => Some(1.0),
                    Term::Variable(a) => columns[a].value(row),
                };
                let group = code_index(code).and_then(|g| modelled.get(g)).copied().filter(|&j| j != usize::MAX);
                out.push(row_value(&value, group).unwrap_or(f64::NAN));
            }
        });
        Ok(out)
    }
}
