//! The numerical machinery the models and the inference share, none of it statistical:
//!
//! - [`blocked`]: blocked dense Cholesky and inverses with SIMD products (the crossed core);
//! - [`dense`]: small dense matrices (row-major slices);
//! - [`optim`]: the bounded Newton method for θ, and the symmetric eigensolver;
//! - [`quasi_newton`]: the bounded quasi-Newton (BFGS) method for many θ;
//! - [`solve1d`]: the safeguarded Newton root finder of one variable;
//! - [`parallel`]: work shared among threads;
//! - [`interrupt`]: cooperative cancellation (Ctrl-C in R);
//! - [`memory`]: fallible allocation of every buffer the data size.

pub(crate) mod blocked;
pub(crate) mod dense;
pub(crate) mod interrupt;
pub(crate) mod memory;
pub(crate) mod optim;
pub(crate) mod parallel;
pub(crate) mod quasi_newton;
pub(crate) mod solve1d;
