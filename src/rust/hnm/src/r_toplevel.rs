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

/// The values of an integer (INTSXP) vector `x`, read in place through R's read-only data
/// pointer; None for another type. extendr's `as_integer_slice()` asks for the writable
/// pointer, for which R duplicates the vector that an ALTREP wrapper shares: R strips the
/// attributes of a long vector by such a wrapper (a factor's codes without their class,
/// `plain_integers()` in R/design.R), which the writable pointer then copied (40 MB at 1e7
/// rows). Call after [`expanded`], so that no expansion (an allocation) happens here.
pub(crate) fn integers_read_only(x: &Robj) -> Option<&[i32]> {
    read_only(x, INTSXP)
}

/// [`integers_read_only`] for a double (REALSXP) vector.
pub(crate) fn doubles_read_only(x: &Robj) -> Option<&[f64]> {
    read_only(x, REALSXP)
}

/// The values of `x` when it is of the SEXPTYPE `kind` (INTSXP for `T` = i32, REALSXP for f64),
/// by its read-only data pointer.
fn read_only<T>(x: &Robj, kind: c_int) -> Option<&[T]> {
    // SAFETY: `x` is a live R vector during the .Call on R's main thread; TYPEOF reads its
    // header, and for an INTSXP or REALSXP already in memory (`expanded`) the read-only
    // pointer is its data (a wrapper's is the wrapped vector's), `len()` values of `T`, which
    // R keeps alive and unchanged while `x` is borrowed.
    unsafe {
        let sexp = x.get() as *mut c_void;
        if TYPEOF(sexp) != kind {
            return None;
        }
        let len = x.len();
        if len == 0 {
            return Some(&[]);
        }
        let data = match kind {
            INTSXP => INTEGER_RO(sexp),
            _ => REAL_RO(sexp),
        } as *const T;
        (!data.is_null()).then(|| std::slice::from_raw_parts(data, len))
    }
}
