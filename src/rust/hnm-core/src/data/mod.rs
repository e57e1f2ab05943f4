//! The data: the one pass over the rows and the per-group statistics it leaves, which is all
//! the models read of the data.
//!
//! - [`cells`]: values as R stores them (its `NA`s) and what a cell means for the pass;
//! - [`groups`]: the grouping variable's codes, as `factor()` would give them;
//! - [`blocks`]: the row pass over the model's columns ([`crate::BlockPass`]);
//! - [`cross_products`]: the per-group statistics it leaves ([`crate::CrossProducts`]);
//! - [`distinct_rows`]: a model matrix held as its distinct rows and each row's index;
//! - [`pooled`]: the pass of a model with several grouping factors, by cell, with the
//!   co-moments of the fixed part pooled over the cells (the pooled layout);
//! - [`stats`]: the one-way model's per-group statistics of its response ([`crate::GroupStats`]);
//! - [`unit`]: the exact power-of-two rescaling of the data that makes every computation
//!   independent of its units.

pub(crate) mod blocks;
pub(crate) mod cells;
pub(crate) mod cross_products;
pub(crate) mod distinct_rows;
pub(crate) mod groups;
pub(crate) mod pooled;
pub(crate) mod stats;
pub(crate) mod unit;
