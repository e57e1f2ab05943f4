//! R calls that may jump (longjmp) to R's top level, run where the jump cannot cross Rust
//! frames: inside `R_ToplevelExec()`, which gives them a top-level context of their own and
//! returns FALSE when they jumped.
//!
//! Ctrl-C: [`RInterrupt`] asks R whether the user pressed it. `R_CheckUserInterrupt()` jumps (longjmp) to R's top level when an interrupt is pending,
//! which must never cross Rust frames. `R_ToplevelExec()` runs it in a fresh top-level
//! context instead: the jump ends there, R consumes the interrupt, and `R_ToplevelExec`
//! returns FALSE. The glue then returns `HnmError::Interrupted` to R normally, once every
//! Rust frame has been dropped and every thread joined, and the R wrapper raises R's
//! `interrupt` condition (see `rust_result()` in R/errors.R).

use std::os::raw::{c_int, c_void};

use extendr_api::prelude::*;
use hnm_core::Interrupt;

extern "C" {
    fn R_ToplevelExec(fun: Option<unsafe extern "C" fn(*mut c_void)>, data: *mut c_void) -> c_int;
    fn R_CheckUserInterrupt();
    // R's API (Rinternals.h); each takes a SEXP, passed as the pointer it is.
    fn ALTREP(x: *mut c_void) -> c_int;
    fn TYPEOF(x: *mut c_void) -> c_int;
    fn REAL_RO(x: *mut c_void) -> *const c_void;
    fn INTEGER_RO(x: *mut c_void) -> *const c_void;
    fn LOGICAL_RO(x: *mut c_void) -> *const c_void;
    fn STRING_PTR_RO(x: *mut c_void) -> *const c_void;
}

/// R's SEXPTYPEs of the vectors the glue reads as slices (Rinternals.h).
const LGLSXP: c_int = 10;
const INTSXP: c_int = 13;
const REALSXP: c_int = 14;
const STRSXP: c_int = 16;

unsafe extern "C" fn check_user_interrupt(_data: *mut c_void) {
    R_CheckUserInterrupt();
}

/// The user's Ctrl-C in R. Only R's main thread may ask it (the thread that runs the
/// `.Call`), as `hnm_core::Checkpoint` guarantees.
pub(crate) struct RInterrupt;

impl Interrupt for RInterrupt {
    fn requested(&self) -> bool {
        // SAFETY: called on R's main thread during a .Call; R_ToplevelExec catches the jump of
        // R_CheckUserInterrupt in its own context, so no Rust frame is skipped.
        unsafe { R_ToplevelExec(Some(check_user_interrupt), std::ptr::null_mut()) == 0 }
    }
}

/// Asks for the read-only data pointer of the vector `data` (a SEXP), which makes R expand
/// an ALTREP vector into memory. The glue reads only these four types as slices (anything
/// else is refused before it is read), so other types need no expansion.
unsafe extern "C" fn expand(data: *mut c_void) {
    match TYPEOF(data) {
        REALSXP => REAL_RO(data),
        INTSXP => INTEGER_RO(data),
        LGLSXP => LOGICAL_RO(data),
        STRSXP => STRING_PTR_RO(data),
        _ => std::ptr::null(),
    };
}

/// True when `x` is in ordinary memory, expanding it first if it is an ALTREP vector (a
/// compact sequence such as `1:n`, a deferred `as.character(1:n)`): R expands one when its
/// data pointer is first asked for, which allocates and so may raise an R error. Here that
/// happens inside `R_ToplevelExec`, before any slice of `x` is taken; false when the
/// expansion failed (R has printed why), so the caller returns an error instead.
pub(crate) fn expanded(x: &Robj) -> bool {
    // SAFETY: `x` is a live R vector during the .Call on R's main thread; the expansion's
    // possible jump ends in R_ToplevelExec's own context.
    let sexp = unsafe { x.get() } as *mut c_void;
    unsafe { ALTREP(sexp) == 0 || R_ToplevelExec(Some(expand), sexp) != 0 }
}
