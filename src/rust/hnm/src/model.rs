//! Glue for the linear mixed model with one grouping factor: the model lives in Rust behind
//! an external pointer (statistics, blocks and fit), so R never re-sends what the core
//! already holds. The plain R fields the pointer is built from (`rs_lmm_build`'s output) let R
//! rebuild it after `readRDS` (`rs_lmm_restore`), where the pointer comes back NULL.

use extendr_api::prelude::*;
use hnm_core::{
    copied, fingerprint, group_column_codes, profile_grids, profile_intervals, with_capacity, Checkpoint, Column, Criterion, CrossProducts, FitControl,
    GroupColumn, GroupStats, GroupingFactor, HnmError, KeyCodes, LinearMixedModel, LmmFit, LmmParameter, RandomEffects, Structure, Term, VarianceDerivatives,
};

use crate::{core_error, criterion, doubles_read_only, error_message, expanded, integers_read_only, RInterrupt};

/// The message of an R call on a model that has no fit yet (cannot happen through hnm_fit).
pub(crate) const NOT_FITTED: &str = "the model has not been fitted.";

/// What R's external pointer owns.
pub struct Model {
    pub(crate) model: LinearMixedModel,
    pub(crate) fit: Option<LmmFit>,
    random_effects: Option<RandomEffects>,
    variance_derivatives: Option<VarianceDerivatives>,
}

impl Model {
    /// `fit` as the model's fit, what was derived from the one before forgotten.
    fn keep(&mut self, fit: LmmFit) {
        self.fit = Some(fit);
        self.random_effects = None;
        self.variance_derivatives = None;
    }
}

/// R's numeric columns (doubles, integers or logicals), read in place; a matrix gives each of
/// its columns.
pub(crate) fn columns(list: &[Robj]) -> std::result::Result<Vec<Column<'_>>, String> {
    let mut out = Vec::new();
    for (i, object) in list.iter().enumerate() {
        if let Some(columns) = crate::indexed_columns(object) {
            out.extend(columns);
            continue;
        }
        if !expanded(object) {
            return Err(format!("model variable {} could not be expanded into memory (see R's message above).", i + 1));
        }
        let rows = match object.dim() {
            Some(dim) if dim.len() == 2 => dim.elt(0).0.max(0) as usize,
            _ => object.len(),
        };
        let all: Column<'_> = if let Some(v) = doubles_read_only(object) {
            Column::Double(v)
        } else if let Some(v) = integers_read_only(object) {
            Column::Integer(v)
        } else if let Some(v) = object.as_logical_slice() {
            // SAFETY: Rbool is a transparent i32 with R's NA as i32::MIN.
            Column::Integer(unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<i32>(), v.len()) })
        } else {
            return Err(format!("model variable {} must be numeric.", i + 1));
        };
        if rows == all.len() {
            out.push(all);
            continue;
        }
        for c in 0..all.len() / rows.max(1) {
            out.push(all.rows(c * rows..(c + 1) * rows));
        }
    }
    Ok(out)
}

/// The grouping column `codes` as the pass reads it, by `code_offset`: a factor's or coded
/// integers (offset 0); integers or whole doubles of a small range whose code is the value
/// less the offset; or, when `code_offset` is a key table of `rs_group_keys`, the hashed
/// values it codes.
pub(crate) fn group_column<'a>(codes: &'a Robj, code_offset: &'a Robj) -> std::result::Result<GroupColumn<'a>, Robj> {
    if !expanded(codes) {
        return Err(error_message("the grouping variable could not be expanded into memory (see R's message above).".into(), "too_large"));
    }
    if let Ok(table) = <&ExternalPtr<KeyCodes>>::try_from(code_offset) {
        let keys = crate::groups::group_keys(codes)
            .ok_or_else(|| error_message("the keyed grouping variable must be an integer, logical, double or character vector.".into(), "invalid_argument"))?;
        return Ok(GroupColumn::Keyed { keys, table });
    }
    let offset = match (code_offset.as_integer(), code_offset.as_real()) {
        (Some(offset), _) => offset,
        (None, Some(offset)) if offset.fract() == 0.0 && offset.abs() < f64::from(i32::MAX) => offset as i32,
        _ => return Err(error_message("the group code offset must be a whole number or a key table.".into(), "invalid_argument")),
    };
    match (integers_read_only(codes), doubles_read_only(codes)) {
        (Some(values), _) if offset == 0 => Ok(GroupColumn::Codes(values)),
        (Some(values), _) => Ok(GroupColumn::Integers { values, offset }),
        (None, Some(values)) => Ok(GroupColumn::Doubles { values, offset }),
        _ => Err(error_message("the group codes must be integer or double.".into(), "invalid_argument")),
    }
}

/// Each row's 1-based group code among the statistics' groups, from the grouping column
/// `codes` read by `code_offset` as `rs_lmm_build` reads it (NA for a missing group, 0 for a
/// value not among the groups): for row-level methods, which alone need a code per row.
/// @noRd
#[extendr]
fn rs_row_codes(codes: Robj, code_offset: Robj) -> Robj {
    let group = match group_column(&codes, &code_offset) {
        Ok(g) => g,
        Err(e) => return e,
    };
    match group_column_codes(group) {
        Ok(codes) => codes.into(),
        Err(error) => core_error(error),
    }
}

/// The model's variables `column_objects` and the grouping column (`codes` by `code_offset`,
/// see `group_column`) of a set of rows, as the core reads them.
pub(crate) fn rows<'a>(column_objects: &'a [Robj], codes: &'a Robj, code_offset: &'a Robj) -> std::result::Result<(Vec<Column<'a>>, GroupColumn<'a>), Robj> {
    let columns = columns(column_objects).map_err(|message| error_message(message, "invalid_argument"))?;
    Ok((columns, group_column(codes, code_offset)?))
}

/// The structure from R's encoding: terms as integers, 0 the intercept and a the 1-based variable.
pub(crate) fn structure(response: i32, fixed: &[i32], random: &[i32], blocks: &[i32]) -> Structure {
    let term = |&t: &i32| if t <= 0 { Term::Intercept } else { Term::Variable(t as usize - 1) };
    Structure {
        response: response.max(1) as usize - 1,
        fixed: fixed.iter().map(term).collect(),
        random: random.iter().map(term).collect(),
        blocks: blocks.iter().map(|&b| b.max(0) as usize).collect(),
    }
}

/// A core error with model column numbers replaced by the user's names (`response` the
/// response's 1-based number).
fn model_error(error: HnmError, names: &[String], response: i32) -> Robj {
    let name = |c: usize| names.get(c).map_or_else(|| format!("column {}", c + 1), |n| format!("`{n}`"));
    let response_name = name(response.max(1) as usize - 1);
    match error {
        HnmError::ColumnNotFinite { column, row } => {
            error_message(format!("{} must be finite (or NA), but row {} is infinite or NaN.", name(column), row + 1), "not_finite")
        }
        HnmError::VariableOutOfRange { variable, problem } => error_message(problem.message(&name(variable), &response_name), "out_of_range"),
        HnmError::NoWithinGroupVariation => error_message(
            format!(
                "the response {response_name} does not vary within any group, so the within-group variance (sigma^2) would be 0 and the \
                 likelihood is unbounded."
            ),
            "no_within_group_variation",
        ),
        error => core_error(error),
    }
}

pub(crate) fn model_of_mut(ptr: &mut Robj) -> std::result::Result<&mut Model, Robj> {
    <&mut ExternalPtr<Model>>::try_from(ptr)
        .map(|p| p.addr_mut())
        .map_err(|_| error_message("the fit's model is no longer in memory; rebuild it with the fit's fields.".into(), "invalid_argument"))
}

/// TRUE when `ptr` holds a model (FALSE after `readRDS`, which restores pointers as NULL).
/// @noRd
#[extendr]
fn rs_lmm_valid(ptr: Robj) -> bool {
    <&ExternalPtr<Model>>::try_from(&ptr).is_ok()
}

/// One pass over `columns` (the model's variables) and 1-based group `codes` less
/// `code_offset` (a factor's codes with offset 0, or integers or whole doubles of a small
/// range), or hashed values coded by their key table (`code_offset` from `rs_group_keys`);
/// `n_groups` levels; on up to `threads` threads, then the model of the given structure.
/// Returns the pointer and the plain fields.
/// @noRd
#[extendr]
#[allow(clippy::too_many_arguments)]
fn rs_lmm_build(
    columns_list: List, codes: Robj, code_offset: Robj, n_groups: i32, response: i32, fixed: &[i32], random: &[i32], blocks: &[i32], names: Vec<String>,
    threads: i32,
) -> Robj {
    let column_objects: Vec<Robj> = columns_list.values().collect();
    let (columns, group) = match rows(&column_objects, &codes, &code_offset) {
        Ok(rows) => rows,
        Err(e) => return e,
    };
    let pass = match CrossProducts::from_columns_on_threads(&columns, group, n_groups.max(0) as usize, threads.max(1) as usize, &RInterrupt) {
        Ok(pass) => pass,
        Err(error) => return model_error(error, &names, response),
    };
    built(&pass, LinearMixedModel::new(&pass.stats, structure(response, fixed, random, blocks)), &names, response, true)
}

/// The model `model` built from `pass`, as R receives it: the pointer and the plain fields,
/// the statistics among them only when `statistics` (`NULL` otherwise).
fn built(pass: &hnm_core::BlockPass, model: hnm_core::Result<LinearMixedModel>, names: &[String], response: i32, statistics: bool) -> Robj {
    let model = match model {
        Ok(m) => m,
        Err(error) => return model_error(error, names, response),
    };
    let fields = if statistics { stats_fields(&pass.stats) } else { Robj::from(()) };
    let summary = response_summary(&pass.stats, response);
    let (kept, groups, lower) = model_fields(&model);
    let ptr = ExternalPtr::new(Model { model, fit: None, random_effects: None, variance_derivatives: None });
    list!(
        model = ptr,
        stats = fields,
        dropped = pass.dropped as f64,
        fingerprint = format!("{:016x}", pass.fingerprint),
        response_summary = summary,
        kept = kept,
        groups = groups,
        lower = lower
    )
    .into()
}

/// The grouping factors of a model with several from R's encoding: per factor the 1-based
/// level of each cell (group of the statistics), its number of levels, and its random terms
/// and blocks as `structure` reads them.
fn grouping_factors(cell_levels: &List, n_levels: &[i32], random: &List, blocks: &List) -> std::result::Result<Vec<GroupingFactor>, Robj> {
    let bad = || error_message("the grouping factors must be given as integer vectors, one per factor.".into(), "invalid_argument");
    let count = n_levels.len();
    if cell_levels.len() != count || random.len() != count || blocks.len() != count {
        return Err(bad());
    }
    let integers = |object: Robj| object.as_integer_slice().map(<[i32]>::to_vec).ok_or_else(bad);
    let mut factors = Vec::with_capacity(count);
    for (((levels, &n), terms), sizes) in cell_levels.values().zip(n_levels).zip(random.values()).zip(blocks.values()) {
        let levels = integers(levels)?;
        let terms = integers(terms)?;
        let sizes = integers(sizes)?;
        let s = structure(1, &[], &terms, &sizes);
        factors.push(GroupingFactor {
            level_of_group: levels.iter().map(|&l| (l.max(1) - 1) as usize).collect(),
            levels: n.max(0) as usize,
            random: s.random,
            blocks: s.blocks,
        });
    }
    Ok(factors)
}

/// One pass over `columns_list` keyed by the rows' 1-based `cell_codes` (the combinations of
/// levels of several grouping factors that occur, `n_cells` of them; NA for a dropped row),
/// then the model with the grouping factors given per cell (see `grouping_factors`), in lme4's
/// order. The statistics are in the pooled layout (`CrossProducts::pooled`), the co-moments of
/// the pairs without a random-effects column summed over the cells, or, when `full` (a
/// statistics table, `hnm_stats()`), with every pair kept per cell. Returns what
/// `rs_lmm_build` returns, `groups` being a list by factor, and, when `statistics`, the
/// statistics with their `pooled` sums and 1-based `group_variables` (`NULL` otherwise: a
/// fit from rows does not keep them, which are per cell as large as its data; its model is
/// rebuilt by the pass, `rs_lmm_fit_at`).
/// @noRd
#[extendr]
#[allow(clippy::too_many_arguments)]
fn rs_lmm_build_factors(
    columns_list: List, cell_codes: Robj, n_cells: i32, response: i32, fixed: &[i32], cell_levels: List, n_levels: &[i32], random: List, blocks: List,
    names: Vec<String>, threads: i32, full: bool, statistics: bool,
) -> Robj {
    let column_objects: Vec<Robj> = columns_list.values().collect();
    let no_offset = Robj::from(0);
    let ((columns, group), factors) = match (rows(&column_objects, &cell_codes, &no_offset), grouping_factors(&cell_levels, n_levels, &random, &blocks)) {
        (Ok(r), Ok(f)) => (r, f),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let group_variables: Vec<usize> = if full {
        (0..columns.len()).collect()
    } else {
        factors.iter().flat_map(|f| &f.random).filter_map(|t| if let Term::Variable(a) = *t { Some(a) } else { None }).collect()
    };
    let pass =
        match CrossProducts::pooled_from_columns_on_threads(&columns, group, n_cells.max(0) as usize, &group_variables, threads.max(1) as usize, &RInterrupt) {
            Ok(pass) => pass,
            Err(error) => return model_error(error, &names, response),
        };
    let fixed = structure(response, fixed, &[], &[]).fixed;
    // The dense kernels of crossed factors on the user's threads too (one: no helper thread).
    let model = LinearMixedModel::with_factors(&pass.stats, response.max(1) as usize - 1, fixed, &factors, &mut Checkpoint::new(&RInterrupt))
        .map(|m| m.with_threads(threads.max(1) as usize));
    built(&pass, model, &names, response, statistics)
}

/// The one-way statistics (n_j, ȳ_j, SSW_j) of the model behind `ptr`, which must be the
/// one-way model `y ~ 1 | g` (the intercept the only fixed and the only random effect): what
/// its closed forms (ANOVA, information, likelihood) read.
pub(crate) fn one_way_statistics(ptr: &Robj) -> std::result::Result<GroupStats, Robj> {
    let model = <&ExternalPtr<Model>>::try_from(ptr).map_err(|_| error_message("`ptr` is not an hnm model.".into(), "invalid_argument"))?;
    let stats = model.model.one_way_statistics();
    let stats = stats.ok_or_else(|| error_message("the closed forms of the one-way model need the model `y ~ 1 | g`.".into(), "invalid_argument"))?;
    stats.try_clone().map_err(core_error)
}

/// The one-way statistics of the model behind `ptr` (`y ~ 1 | g`) for the closed forms R
/// computes: `center`, and per modelled group `n`, `mean` (about the centre) and `ss`.
/// @noRd
#[extendr]
fn rs_one_way_statistics(ptr: Robj) -> Robj {
    match one_way_statistics(&ptr) {
        Ok(s) => list!(center = s.center(), n = s.n(), mean = s.centered_mean(), ss = s.ssw()).into(),
        Err(e) => e,
    }
}

/// N, the mean and the total sum of squares of the response (1-based variable `response`),
/// named as R reads them (the σ → 0 check, ranova()'s model without random effects).
fn response_summary(stats: &CrossProducts, response: i32) -> Robj {
    let a = response.max(1) as usize - 1;
    let (n, mean, sst) = stats.variable_summary(a);
    let mut summary: Robj = vec![n, stats.pilot()[a] + mean, sst].into();
    // Naming three doubles cannot fail.
    let _ = summary.set_names(["n", "mean", "sst"]);
    summary
}

/// The statistics as R vectors, written straight from Rust's (no copy in Rust); in the pooled
/// layout with the `pooled` sums and the 1-based `group_variables`.
fn stats_fields(s: &CrossProducts) -> Robj {
    match (s.pooled_totals(), s.group_variables()) {
        (Some(pooled), Some(variables)) => list!(
            pilot = s.pilot(),
            n = s.n(),
            means = s.means(),
            comoments = s.comoments(),
            pooled = pooled,
            group_variables = Integers::from_values(variables.iter().map(|&a| a as i32 + 1))
        )
        .into(),
        _ => list!(pilot = s.pilot(), n = s.n(), means = s.means(), comoments = s.comoments()).into(),
    }
}

/// The model's kept fixed-effect columns and modelled groups (1-based) and θ's lower bounds,
/// as R vectors.
fn model_fields(model: &LinearMixedModel) -> (Robj, Robj, Robj) {
    let one_based = |indices: &[usize]| -> Robj { Integers::from_values(indices.iter().map(|&i| i as i32 + 1)).into() };
    let groups = if model.n_factors() == 1 {
        one_based(model.group_index())
    } else {
        let levels: Vec<Robj> = std::iter::once(model.group_index()).chain(model.other_level_index()).map(one_based).collect();
        List::from_values(levels).into()
    };
    (one_based(model.kept_fixed()), groups, model.lower().into())
}

/// The model of per-group statistics given in `rs_lmm_build`'s plain fields (a saved fit's,
/// or a statistics table's such as a database computed): the pointer, with the fit at
/// `internal_theta` when that is numeric (a saved fit; no search), unfitted otherwise.
/// @noRd
#[extendr]
#[allow(clippy::too_many_arguments)]
fn rs_lmm_restore(
    pilot: &[f64], n: &[f64], means: &[f64], comoments: &[f64], response: i32, fixed: &[i32], random: &[i32], blocks: &[i32], names: Vec<String>, reml: bool,
    internal_theta: Robj,
) -> Robj {
    restored(crate::stats_copy(pilot, n, means, comoments), response, &names, reml, internal_theta, |stats| {
        LinearMixedModel::new(stats, structure(response, fixed, random, blocks))
    })
}

/// The model `build` makes of the statistics `stats` copied from plain fields, fitted at
/// `internal_theta` when that is numeric (see `rs_lmm_restore`).
fn restored(
    stats: hnm_core::Result<CrossProducts>, response: i32, names: &[String], reml: bool, internal_theta: Robj,
    build: impl FnOnce(&CrossProducts) -> hnm_core::Result<LinearMixedModel>,
) -> Robj {
    let result =
        stats.and_then(|stats| build(&stats).map(|model| (response_summary(&stats, response), model))).and_then(|(summary, model)| {
            match internal_theta.as_real_slice() {
                Some(theta) => model.fit_at(criterion(reml), theta, &mut Checkpoint::new(&RInterrupt)).map(|fit| (summary, model, Some(fit))),
                None => Ok((summary, model, None)),
            }
        });
    match result {
        Ok((summary, model, fit)) => {
            let (kept, groups, lower) = model_fields(&model);
            let ptr = ExternalPtr::new(Model { model, fit, random_effects: None, variance_derivatives: None });
            list!(model = ptr, response_summary = summary, kept = kept, groups = groups, lower = lower).into()
        }
        Err(error) => model_error(error, names, response),
    }
}

/// `rs_lmm_restore` for a model with several grouping factors (see `rs_lmm_build_factors`):
/// the statistics in the pooled layout when `pooled` (the pooled sums) and `group_variables`
/// (1-based) are given, with every pair per cell when both are NULL (a statistics table, or a
/// fit saved before the pooled layout); its dense kernels on at most `threads` threads.
/// @noRd
#[extendr]
#[allow(clippy::too_many_arguments)]
fn rs_lmm_restore_factors(
    pilot: &[f64], n: &[f64], means: &[f64], comoments: &[f64], pooled: Robj, group_variables: Robj, response: i32, fixed: &[i32], cell_levels: List,
    n_levels: &[i32], random: List, blocks: List, names: Vec<String>, reml: bool, internal_theta: Robj, threads: i32,
) -> Robj {
    let factors = match grouping_factors(&cell_levels, n_levels, &random, &blocks) {
        Ok(f) => f,
        Err(e) => return e,
    };
    let layout = match (pooled.as_real_slice(), group_variables.as_integer_slice(), pooled.is_null() && group_variables.is_null()) {
        (Some(totals), Some(variables), _) => Some((totals, variables.iter().map(|&a| a.max(1) as usize - 1).collect::<Vec<usize>>())),
        (_, _, true) => None,
        _ => return error_message("the pooled statistics must be doubles with integer group variables, or both NULL.".into(), "invalid_argument"),
    };
    let stats = crate::pooled_stats_copy(pilot, n, means, comoments, layout.as_ref().map(|(t, v)| (*t, &v[..])));
    let fixed = structure(response, fixed, &[], &[]).fixed;
    restored(stats, response, &names, reml, internal_theta, |stats| {
        LinearMixedModel::with_factors(stats, response.max(1) as usize - 1, fixed, &factors, &mut Checkpoint::new(&RInterrupt))
            .map(|m| m.with_threads(threads.max(1) as usize))
    })
}

/// A copy of the model behind `ptr`, unfitted, behind a pointer of its own: a refit by another
/// criterion (refitML()) that leaves the fit's model as it is. Returns `list(model = ptr)`.
/// @noRd
#[extendr]
fn rs_lmm_copy(ptr: Robj) -> Robj {
    let Ok(model) = <&ExternalPtr<Model>>::try_from(&ptr) else {
        return error_message("`ptr` is not an hnm model.".into(), "invalid_argument");
    };
    match model.model.try_clone() {
        Ok(model) => list!(model = ExternalPtr::new(Model { model, fit: None, random_effects: None, variance_derivatives: None })).into(),
        Err(error) => core_error(error),
    }
}

/// The model behind `ptr` fitted at the internal θ `internal_theta` (REML when `reml`) with
/// no search, as `rs_lmm_restore` fits a saved fit's model: for the model of a saved fit from
/// rows rebuilt by the pass over them. Returns `list(model = ptr)`.
/// @noRd
#[extendr]
fn rs_lmm_fit_at(mut ptr: Robj, reml: bool, internal_theta: &[f64]) -> Robj {
    let model = match model_of_mut(&mut ptr) {
        Ok(m) => m,
        Err(e) => return e,
    };
    match model.model.fit_at(criterion(reml), internal_theta, &mut Checkpoint::new(&RInterrupt)) {
        Ok(fit) => {
            model.keep(fit);
            list!(model = ptr).into()
        }
        Err(error) => core_error(error),
    }
}

/// Fits the model (ML, or REML when `reml`), from the internal θ `start` when given (a numeric
/// vector), with the search's `tolerance` (relative to N), `max_iterations` and, when
/// `verbose`, a line printed per iteration; keeps the fit in the model when `keep` (a refit by
/// the other criterion, for anova(), does not replace the fit the R object describes).
/// @noRd
#[extendr]
fn rs_lmm_fit(mut ptr: Robj, reml: bool, start: Robj, keep: bool, tolerance: f64, max_iterations: i32, verbose: bool) -> Robj {
    let model = match model_of_mut(&mut ptr) {
        Ok(m) => m,
        Err(e) => return e,
    };
    let start = start.as_real_slice();
    let print = |iteration: usize, criterion: f64, gradient: f64| {
        rprintln!("iteration {iteration:>3}: criterion {criterion:.12e}, projected gradient {gradient:.3e}");
    };
    let control = FitControl {
        relative_tolerance: tolerance,
        max_iterations: max_iterations.max(1) as usize,
        trace: verbose.then_some(&print as &dyn Fn(usize, f64, f64)),
    };
    match model.model.fit_with(criterion(reml), start, &control, &mut Checkpoint::new(&RInterrupt)) {
        Ok(fit) => {
            let out = fit_fields(&fit);
            if keep {
                model.keep(fit);
            }
            out
        }
        Err(error) => core_error(error),
    }
}

/// The internal θ of lme4's θ `theta` for the model behind `ptr` (a start given in lme4's
/// units; see `LinearMixedModel::internal_theta_of`).
/// @noRd
#[extendr]
fn rs_lmm_internal_theta(ptr: Robj, theta: &[f64]) -> Robj {
    let Ok(model) = <&ExternalPtr<Model>>::try_from(&ptr) else {
        return error_message("`ptr` is not an hnm model.".into(), "invalid_argument");
    };
    match model.model.internal_theta_of(theta) {
        Ok(internal) => internal.into(),
        Err(error) => core_error(error.renamed("theta", "start")),
    }
}

fn fit_fields(f: &LmmFit) -> Robj {
    list!(
        reml = f.criterion == Criterion::Reml,
        theta = f.theta.clone(),
        internal_theta = f.internal_theta.clone(),
        beta = f.beta.clone(),
        beta_covariance = f.beta_covariance.clone(),
        sigma = f.sigma,
        re_covariance = f.re_covariance.clone(),
        deviance = f.deviance,
        iterations = f.iterations as f64,
        evaluations = f.evaluations as f64,
        projected_gradient_norm = f.projected_gradient_norm,
        converged = f.converged
    )
    .into()
}

/// The fitted model's random effects, computed on first use and kept.
fn random_effects(model: &mut Model) -> std::result::Result<(&LmmFit, &RandomEffects), Robj> {
    let fit = model.fit.as_ref().ok_or_else(|| error_message(NOT_FITTED.into(), "invalid_argument"))?;
    if model.random_effects.is_none() {
        model.random_effects = Some(model.model.random_effects(fit).map_err(core_error)?);
    }
    Ok((fit, model.random_effects.as_ref().expect("computed above")))
}

/// The derivatives Satterthwaite's df need (hnm_core::VarianceDerivatives), computed on first
/// use and kept: `hessian` (k × k by rows) and `covariance_jacobian` (k matrices p × p by rows).
/// @noRd
#[extendr]
fn rs_lmm_variance_derivatives(mut ptr: Robj) -> Robj {
    let model = match model_of_mut(&mut ptr) {
        Ok(m) => m,
        Err(e) => return e,
    };
    let Some(fit) = model.fit.as_ref() else {
        return error_message(NOT_FITTED.into(), "invalid_argument");
    };
    if model.variance_derivatives.is_none() {
        match model.model.variance_derivatives(fit, &mut Checkpoint::new(&RInterrupt)) {
            Ok(d) => model.variance_derivatives = Some(d),
            Err(error) => return core_error(error),
        }
    }
    let d = model.variance_derivatives.as_ref().expect("computed above");
    list!(parameters = d.parameters as i32, hessian = d.hessian.clone(), covariance_jacobian = d.covariance_jacobian.clone()).into()
}

/// lme4's parameter `index` (1-based: the SDs and correlations in θ's order, σ, the fixed effects).
fn lmm_parameter(model: &LinearMixedModel, index: i32) -> std::result::Result<LmmParameter, Robj> {
    let n_theta = model.n_theta() as i32;
    let p = model.kept_fixed().len() as i32;
    match index {
        i if i >= 1 && i <= n_theta => Ok(LmmParameter::Variance(i as usize - 1)),
        i if i == n_theta + 1 => Ok(LmmParameter::Sigma),
        i if i > n_theta + 1 && i <= n_theta + 1 + p => Ok(LmmParameter::Beta((i - n_theta - 2) as usize)),
        _ => Err(error_message(format!("`which` holds {index}, which is not a parameter of the model."), "invalid_argument")),
    }
}

/// The model behind `ptr`, its fit and the parameters `which` (1-based, lme4's order).
fn profile_inputs<'m>(ptr: &'m mut Robj, which: &[i32]) -> std::result::Result<(&'m Model, &'m LmmFit, Vec<LmmParameter>), Robj> {
    let model = &*model_of_mut(ptr)?;
    let fit = model.fit.as_ref().ok_or_else(|| error_message(NOT_FITTED.into(), "invalid_argument"))?;
    let parameters = which.iter().map(|&i| lmm_parameter(&model.model, i)).collect::<std::result::Result<_, _>>()?;
    Ok((model, fit, parameters))
}

/// Profile-likelihood limits where ζ = ∓`z` of the parameters `which` (1-based, lme4's
/// order) on `threads` threads: a matrix with a row per parameter.
/// @noRd
#[extendr]
fn rs_lmm_profile_ci(mut ptr: Robj, which: &[i32], z: f64, threads: i32) -> Robj {
    let (model, fit, parameters) = match profile_inputs(&mut ptr, which) {
        Ok(inputs) => inputs,
        Err(e) => return e,
    };
    match profile_intervals(&model.model, fit, &parameters, z, threads.max(1) as usize, &RInterrupt) {
        Ok(limits) => RMatrix::new_matrix(limits.len(), 2, |r, c| if c == 0 { limits[r].0 } else { limits[r].1 }).into(),
        Err(error) => core_error(error),
    }
}

/// The profiles of the parameters `which` (1-based, lme4's order) out to |ζ| = `zeta_max`,
/// `steps` points a side, on `threads` threads: `par` (the profiled parameter of each point),
/// `zeta`, and `parameters`, a matrix of every parameter at each point (lme4's order).
/// @noRd
#[extendr]
fn rs_lmm_profile(mut ptr: Robj, which: &[i32], zeta_max: f64, steps: i32, threads: i32) -> Robj {
    let (model, fit, parameters) = match profile_inputs(&mut ptr, which) {
        Ok(inputs) => inputs,
        Err(e) => return e,
    };
    let grids = match profile_grids(&model.model, fit, &parameters, zeta_max, steps.max(0) as usize, threads.max(1) as usize, &RInterrupt) {
        Ok(g) => g,
        Err(error) => return core_error(error),
    };
    let flattened = || -> hnm_core::Result<_> {
        // Pushed within their exact capacities.
        let (total, what) = (grids.iter().map(Vec::len).sum::<usize>(), "the profiles' points");
        let (mut par, mut zeta, mut rows) = (with_capacity(&[total], what)?, with_capacity(&[total], what)?, with_capacity(&[total], what)?);
        for (points, &index) in grids.into_iter().zip(which) {
            for point in points {
                par.push(index);
                zeta.push(point.zeta);
                rows.push(point.parameters);
            }
        }
        Ok((par, zeta, rows))
    };
    let (par, zeta, rows): (Vec<i32>, Vec<f64>, Vec<Vec<f64>>) = match flattened() {
        Ok(flat) => flat,
        Err(error) => return core_error(error),
    };
    let columns = rows.first().map_or(0, Vec::len);
    let parameters = RMatrix::new_matrix(rows.len(), columns, |r, c| rows[r][c]);
    list!(par = par, zeta = zeta, parameters = parameters).into()
}

/// The fitted model's random effects: `modes` (groups × q, by rows) and conditional
/// covariances (q × q per group).
/// @noRd
#[extendr]
fn rs_lmm_ranef(mut ptr: Robj) -> Robj {
    let model = match model_of_mut(&mut ptr) {
        Ok(m) => m,
        Err(e) => return e,
    };
    match random_effects(model) {
        Ok((_, re)) => list!(modes = re.modes.as_slice(), conditional_covariances = re.conditional_covariances.as_slice()).into(),
        Err(e) => e,
    }
}

/// The fitted model's random effects by grouping factor (lme4's order): a list of
/// `rs_lmm_ranef`'s fields, one per factor.
/// @noRd
#[extendr]
fn rs_lmm_ranef_factors(mut ptr: Robj) -> Robj {
    let model = match model_of_mut(&mut ptr) {
        Ok(m) => m,
        Err(e) => return e,
    };
    let Some(fit) = model.fit.as_ref() else {
        return error_message(NOT_FITTED.into(), "invalid_argument");
    };
    match model.model.random_effects_by_factor(fit, &mut Checkpoint::new(&RInterrupt)) {
        Ok(by_factor) => List::from_values(
            by_factor.iter().map(|re| -> Robj { list!(modes = re.modes.as_slice(), conditional_covariances = re.conditional_covariances.as_slice()).into() }),
        )
        .into(),
        Err(error) => core_error(error),
    }
}

/// Fitted values of the rows of `columns_list` (the model's variables) with 1-based group
/// `codes` less `code_offset` (0 for a new level; see `rs_lmm_build`): with the random effects when `random`, else the population
/// values; with `modes` (groups × q by rows, in the data's units) instead of the conditional
/// modes when it is numeric (simulated effects). NA where a value or the group is missing.
/// @noRd
#[extendr]
fn rs_lmm_fitted(mut ptr: Robj, columns_list: List, codes: Robj, code_offset: Robj, random: bool, modes: Robj) -> Robj {
    values_at_rows(&mut ptr, &columns_list, &codes, &code_offset, |model, columns, group| {
        let given = modes.as_real_slice().map(|m| copied(m, "the simulated random effects")).transpose().map_err(core_error)?;
        let given = given.map(|modes| RandomEffects { modes, conditional_covariances: Vec::new() });
        if random && given.is_none() {
            random_effects(model)?;
        }
        let fit = model.fit.as_ref().ok_or_else(|| error_message(NOT_FITTED.into(), "invalid_argument"))?;
        let random_effects = match (random, &given) {
            (false, _) => None,
            (true, Some(g)) => Some(g),
            (true, None) => model.random_effects.as_ref(),
        };
        model.model.fitted_values(fit, random_effects, columns, group, &mut Checkpoint::new(&RInterrupt)).map_err(core_error)
    })
}

/// `compute(model, columns, group)`'s value per row for the model behind `ptr` and the rows
/// of `columns_list` (the model's variables) with group `codes` less `code_offset`, as R's
/// doubles with NaN as NA (a row with a missing value or group); or the R error of the
/// columns, the pointer or `compute`.
pub(crate) fn values_at_rows(
    ptr: &mut Robj, columns_list: &List, codes: &Robj, code_offset: &Robj,
    compute: impl FnOnce(&mut Model, &[Column<'_>], GroupColumn<'_>) -> std::result::Result<Vec<f64>, Robj>,
) -> Robj {
    let column_objects: Vec<Robj> = columns_list.values().collect();
    let values = rows(&column_objects, codes, code_offset).and_then(|(columns, group)| compute(model_of_mut(ptr)?, &columns, group));
    match values {
        Ok(values) => Doubles::from_values(values.into_iter().map(|v| if v.is_nan() { Rfloat::na() } else { Rfloat::from(v) })).into(),
        Err(e) => e,
    }
}

/// The ML deviance (`reml = FALSE`) or REML criterion at the fit's θ, in the data's units.
/// @noRd
#[extendr]
fn rs_lmm_criterion(mut ptr: Robj, reml: bool) -> Robj {
    let model = match model_of_mut(&mut ptr) {
        Ok(m) => m,
        Err(e) => return e,
    };
    let Some(fit) = model.fit.as_ref() else {
        return error_message(NOT_FITTED.into(), "invalid_argument");
    };
    match model.model.criterion_in_data_units(criterion(reml), &fit.internal_theta, &mut Checkpoint::new(&RInterrupt)) {
        Ok(value) => Robj::from(value),
        Err(error) => core_error(error),
    }
}

/// lme4's criterion (ML deviance, or REML criterion when `reml`) at lme4's θ `theta`, with
/// its gradient in θ when `gradient` (`LinearMixedModel::criterion_and_gradient_at_theta`):
/// `value` and `gradient` (NULL when not asked for). The model need not have been fitted.
/// @noRd
#[extendr]
fn rs_lmm_devfun(ptr: Robj, reml: bool, theta: &[f64], gradient: bool) -> Robj {
    let Ok(model) = <&ExternalPtr<Model>>::try_from(&ptr) else {
        return error_message("`ptr` is not an hnm model.".into(), "invalid_argument");
    };
    let (model, checkpoint) = (&model.model, &mut Checkpoint::new(&RInterrupt));
    let result = if gradient {
        model.criterion_and_gradient_at_theta(criterion(reml), theta, checkpoint).map(|(value, gradient)| list!(value = value, gradient = gradient))
    } else {
        model
            .internal_theta_of(theta)
            .and_then(|internal| model.criterion_in_data_units(criterion(reml), &internal, checkpoint))
            .map(|value| list!(value = value, gradient = NULL))
    };
    match result {
        Ok(out) => out.into(),
        Err(error) => core_error(error),
    }
}

/// The fingerprint of `columns_list` and `codes` less `code_offset` (as `rs_lmm_build` computed it), to tell
/// whether the data a fit refers to were changed in place.
/// @noRd
#[extendr]
fn rs_lmm_fingerprint(columns_list: List, codes: Robj, code_offset: Robj) -> Robj {
    let column_objects: Vec<Robj> = columns_list.values().collect();
    let (columns, group) = match rows(&column_objects, &codes, &code_offset) {
        Ok(rows) => rows,
        Err(e) => return e,
    };
    match fingerprint(&columns, group, &mut Checkpoint::new(&RInterrupt)) {
        Ok(hash) => Robj::from(format!("{hash:016x}")),
        Err(error) => core_error(error),
    }
}

extendr_module! {
    mod model;
    fn rs_lmm_valid;
    fn rs_one_way_statistics;
    fn rs_lmm_build;
    fn rs_lmm_restore;
    fn rs_lmm_build_factors;
    fn rs_lmm_restore_factors;
    fn rs_lmm_fit_at;
    fn rs_lmm_copy;
    fn rs_lmm_fit;
    fn rs_lmm_internal_theta;
    fn rs_lmm_ranef;
    fn rs_lmm_ranef_factors;
    fn rs_lmm_fitted;
    fn rs_lmm_fingerprint;
    fn rs_row_codes;
    fn rs_lmm_criterion;
    fn rs_lmm_devfun;
    fn rs_lmm_variance_derivatives;
    fn rs_lmm_profile;
    fn rs_lmm_profile_ci;
}
