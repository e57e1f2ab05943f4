//! Ctrl-C in R for the core's long loops: [`RInterrupt`] asks R whether the user pressed it.
//!
//! `R_CheckUserInterrupt()` jumps (longjmp) to R's top level when an interrupt is pending,
//! which must never cross Rust frames. `R_ToplevelExec()` runs it in a fresh top-level
//! context instead: the jump ends there, R consumes the interrupt, and `R_ToplevelExec`
//! returns FALSE. The glue then returns `HnmError::Interrupted` to R normally, once every
//! Rust frame has been dropped and every thread joined, and the R wrapper raises R's
//! `interrupt` condition (see `rust_result()` in R/errors.R).

use std::os::raw::{c_int, c_void};

use hnm_core::Interrupt;

extern "C" {
    fn R_ToplevelExec(fun: Option<unsafe extern "C" fn(*mut c_void)>, data: *mut c_void) -> c_int;
    fn R_CheckUserInterrupt();
}

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
