//! The data: the one pass over the rows and the per-group statistics it leaves, which is all
//! the models read of the data.
//!
//! - [`pass`]: the row pass of the one-way model, (y, group) → n_j, ȳ_j, SSW_j;
//! - [`key_table`]: groups found by hashing a key column during that pass;
//! - [`stats`]: the one-way model's per-group statistics ([`crate::GroupStats`]);
//! - [`blocks`]: the row pass of the mixed model over several columns ([`crate::BlockPass`]);
//! - [`cross_products`]: the mixed model's per-group statistics it leaves ([`crate::CrossProducts`]);
//! - [`unit`]: the exact power-of-two rescaling of the data that makes every computation
//!   independent of its units.

pub(crate) mod blocks;
pub(crate) mod cross_products;
pub(crate) mod key_table;
pub(crate) mod pass;
pub(crate) mod stats;
pub(crate) mod unit;
