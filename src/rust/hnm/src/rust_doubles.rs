//! R double vectors whose values stay in the memory Rust allocated them in (an ALTREP class,
//! R's "alternative representation" API, Rinternals' R_ext/Altrep.h).
//!
//! A model hands R its per-cell statistics, which a fit keeps to rebuild the model after
//! `readRDS()`. With crossed factors nearly every row may be its own cell (InstEval's first
//! model: 73,421 cells of 29 means, 17 MB): copied into an R vector they were a second copy of
//! the data on R's heap every fit, and the garbage collections that allocation set off cost
//! more than the model's whole build (a full collection takes ~0.14 s with lme4 attached).
//! Here R gets the vector Rust computed, moved, not copied. R reads it through its data
//! pointer, which it may also write through as for any vector it owns alone (copying first
//! when the vector is shared); R's default methods read elements and regions through that
//! pointer, and `serialize()` writes the values as an ordinary double vector (the class has
//! no serialised state of its own), so a saved fit reads back, without hnm, as plain doubles.
//! The values are freed with the last vector using them, by a finalizer on the external
//! pointer that owns them.

use std::os::raw::{c_char, c_int, c_void};
use std::sync::OnceLock;

use extendr_api::prelude::*;

/// A SEXP, passed as the pointer it is.
type Sexp = *mut c_void;

/// R's `R_altrep_class_t` (a struct of one SEXP, passed by value).
#[repr(C)]
#[derive(Clone, Copy)]
struct AltrepClass {
    ptr: Sexp,
}

// R's API (Rinternals.h, R_ext/Altrep.h, R_ext/Rdynload.h); R_xlen_t is ptrdiff_t.
extern "C" {
    static R_NilValue: Sexp;
    fn R_getDllInfo(name: *const c_char) -> *mut c_void;
    fn R_make_altreal_class(class_name: *const c_char, package_name: *const c_char, dll: *mut c_void) -> AltrepClass;
    fn R_set_altrep_Length_method(class: AltrepClass, method: unsafe extern "C" fn(Sexp) -> isize);
    fn R_set_altvec_Dataptr_method(class: AltrepClass, method: unsafe extern "C" fn(Sexp, c_int) -> *mut c_void);
    fn R_set_altvec_Dataptr_or_null_method(class: AltrepClass, method: unsafe extern "C" fn(Sexp) -> *const c_void);
    fn R_new_altrep(class: AltrepClass, data1: Sexp, data2: Sexp) -> Sexp;
    fn R_altrep_data1(x: Sexp) -> Sexp;
    fn R_MakeExternalPtr(address: *mut c_void, tag: Sexp, protected: Sexp) -> Sexp;
    fn R_ExternalPtrAddr(pointer: Sexp) -> *mut c_void;
    fn R_ClearExternalPtr(pointer: Sexp);
    fn R_RegisterCFinalizerEx(pointer: Sexp, finalizer: unsafe extern "C" fn(Sexp), on_exit: c_int);
    fn Rf_protect(x: Sexp) -> Sexp;
    fn Rf_unprotect(count: c_int);
}

/// The class, made once per load of the library (R keeps the class object alive); its
/// pointer as an integer, since a SEXP is not `Sync` (it is only used on R's main thread).
static CLASS: OnceLock<usize> = OnceLock::new();

/// An R double vector of `values`, which it owns from now on (no copy).
pub(crate) fn r_doubles(values: Vec<f64>) -> Robj {
    if values.is_empty() {
        // Nothing to share; R's own empty vector.
        return Doubles::new(0).into();
    }
    // SAFETY: on R's main thread during a .Call. The external pointer owns the boxed values
    // from its creation (its finalizer frees them, also should a later allocation jump), and
    // is protected while the ALTREP vector that keeps it as data1 is made.
    unsafe {
        let class = AltrepClass { ptr: *CLASS.get_or_init(|| make_class() as usize) as Sexp };
        let owner = Rf_protect(R_MakeExternalPtr(Box::into_raw(Box::new(values)).cast(), R_NilValue, R_NilValue));
        R_RegisterCFinalizerEx(owner, free_values, 0);
        let vector = R_new_altrep(class, owner, R_NilValue);
        let robj = Robj::from_sexp(vector.cast());
        Rf_unprotect(1);
        robj
    }
}

/// Registers the class and its methods with R.
unsafe fn make_class() -> Sexp {
    let class = R_make_altreal_class(c"hnm_rust_doubles".as_ptr(), c"hnm".as_ptr(), R_getDllInfo(c"hnm".as_ptr()));
    R_set_altrep_Length_method(class, length);
    R_set_altvec_Dataptr_method(class, data_pointer);
    R_set_altvec_Dataptr_or_null_method(class, data_pointer_or_null);
    class.ptr
}

/// The first value's address and the length of the vector `x` of this class (null and 0 once
/// freed, which R cannot reach: the finalizer runs when nothing refers to the vector).
unsafe fn values(x: Sexp) -> (*mut f64, usize) {
    match R_ExternalPtrAddr(R_altrep_data1(x)).cast::<Vec<f64>>().as_mut() {
        Some(values) => (values.as_mut_ptr(), values.len()),
        None => (std::ptr::null_mut(), 0),
    }
}

unsafe extern "C" fn free_values(owner: Sexp) {
    let owned = R_ExternalPtrAddr(owner).cast::<Vec<f64>>();
    if !owned.is_null() {
        R_ClearExternalPtr(owner);
        drop(Box::from_raw(owned));
    }
}

unsafe extern "C" fn length(x: Sexp) -> isize {
    values(x).1 as isize
}

unsafe extern "C" fn data_pointer(x: Sexp, _writable: c_int) -> *mut c_void {
    values(x).0.cast()
}

unsafe extern "C" fn data_pointer_or_null(x: Sexp) -> *const c_void {
    values(x).0.cast()
}
