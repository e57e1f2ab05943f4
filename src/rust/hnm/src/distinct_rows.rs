//! A model matrix R holds as its distinct rows and each row's index into them (an ALTREP
//! double matrix, R's "alternative representation" API, R_ext/Altrep.h): for a fixed part of
//! factors with few combinations (see `model_matrix()` in R/design.R), InstEval's 16 MB
//! `service * dept` is 28 rows and 73,421 integers, so that a fit no longer allocates the
//! matrix on R's heap, whose collector that allocation set off at every fit. The pass reads it
//! as it is held ([`indexed_columns`]); R reads it element by element or by regions from the
//! same, and expands it into an ordinary vector on R's heap (kept as the ALTREP's second
//! datum) only when it asks for its data pointer, to read it in place or to serialise it: the
//! class has no serialised state of its own, so a saved fit holds plain doubles. Both parts
//! and the expansion are R objects, which R's collector sees and frees with the matrix.

use std::os::raw::{c_char, c_int, c_void};
use std::sync::OnceLock;

use extendr_api::prelude::*;

use crate::{doubles_read_only, expanded, integers_read_only};

/// A SEXP, passed as the pointer it is.
type Sexp = *mut c_void;

/// R's `R_altrep_class_t` (a struct of one SEXP, passed by value).
#[repr(C)]
#[derive(Clone, Copy)]
struct AltrepClass {
    ptr: Sexp,
}

/// R's REALSXP (Rinternals.h).
const REALSXP: u32 = 14;

// R's API (Rinternals.h, R_ext/Altrep.h, R_ext/Rdynload.h); R_xlen_t is ptrdiff_t.
extern "C" {
    static R_NilValue: Sexp;
    fn R_getDllInfo(name: *const c_char) -> *mut c_void;
    fn R_make_altreal_class(class_name: *const c_char, package_name: *const c_char, dll: *mut c_void) -> AltrepClass;
    fn R_set_altrep_Length_method(class: AltrepClass, method: unsafe extern "C" fn(Sexp) -> isize);
    fn R_set_altvec_Dataptr_method(class: AltrepClass, method: unsafe extern "C" fn(Sexp, c_int) -> *mut c_void);
    fn R_set_altvec_Dataptr_or_null_method(class: AltrepClass, method: unsafe extern "C" fn(Sexp) -> *const c_void);
    fn R_set_altreal_Elt_method(class: AltrepClass, method: unsafe extern "C" fn(Sexp, isize) -> f64);
    fn R_set_altreal_Get_region_method(class: AltrepClass, method: unsafe extern "C" fn(Sexp, isize, isize, *mut f64) -> isize);
    fn R_new_altrep(class: AltrepClass, data1: Sexp, data2: Sexp) -> Sexp;
    fn R_altrep_inherits(x: Sexp, class: AltrepClass) -> c_int;
    fn R_altrep_data1(x: Sexp) -> Sexp;
    fn R_altrep_data2(x: Sexp) -> Sexp;
    fn R_set_altrep_data2(x: Sexp, value: Sexp);
    fn ALTREP(x: Sexp) -> c_int;
    fn VECTOR_ELT(x: Sexp, i: isize) -> Sexp;
    fn REAL(x: Sexp) -> *mut f64;
    fn INTEGER(x: Sexp) -> *mut c_int;
    fn Rf_xlength(x: Sexp) -> isize;
    fn Rf_allocVector(kind: u32, length: isize) -> Sexp;
    fn Rf_protect(x: Sexp) -> Sexp;
    fn Rf_unprotect(count: c_int);
}

/// The class, made once per load of the library (R keeps the class object alive); its
/// pointer as an integer, since a SEXP is not `Sync` (it is only used on R's main thread).
static CLASS: OnceLock<usize> = OnceLock::new();

fn class() -> AltrepClass {
    // SAFETY: on R's main thread, during a .Call (every caller is one).
    let ptr = *CLASS.get_or_init(|| unsafe { make_class() } as usize);
    AltrepClass { ptr: ptr as Sexp }
}

/// Registers the class and its methods with R.
unsafe fn make_class() -> Sexp {
    let class = R_make_altreal_class(c"hnm_distinct_rows".as_ptr(), c"hnm".as_ptr(), R_getDllInfo(c"hnm".as_ptr()));
    R_set_altrep_Length_method(class, length);
    R_set_altvec_Dataptr_method(class, data_pointer);
    R_set_altvec_Dataptr_or_null_method(class, data_pointer_or_null);
    R_set_altreal_Elt_method(class, element);
    R_set_altreal_Get_region_method(class, region);
    class.ptr
}

/// The model matrix whose row i is row `index[i]` (1-based) of the double matrix `distinct`
/// (R's `model.matrix()` of one row per combination of the variables), with `distinct`'s
/// column names and its attributes `assign` and `contrasts` (set here: set in R, on a vector
/// also bound in the caller, they would expand it); an error (R's `hnm_core_error` list) when
/// an index is not one of `distinct`'s rows.
/// @noRd
#[extendr]
fn rs_rows_of_distinct(distinct: Robj, index: Robj) -> Robj {
    let (Some(values), Some(codes)) =
        (expanded(&distinct).then(|| doubles_read_only(&distinct)).flatten(), expanded(&index).then(|| integers_read_only(&index)).flatten())
    else {
        return crate::error_message("the distinct rows must be a double matrix and the index integers.".into(), "invalid_argument");
    };
    let distinct_rows = distinct.dim().map_or(values.len(), |dim| dim.elt(0).0.max(0) as usize);
    if let Err(error) = hnm_core::check_distinct_rows(values, distinct_rows, codes) {
        return crate::core_error(error);
    }
    let (rows, columns) = (codes.len(), values.len() / distinct_rows);
    // The parts as plain vectors (no attributes), which the methods read in place.
    let parts = list!(Doubles::from_values(values.iter().copied()), Integers::from_values(codes.iter().copied()), distinct_rows as i32);
    // SAFETY: on R's main thread during a .Call; `parts` is protected by its Robj while the
    // ALTREP vector is made, which then keeps it as its first datum.
    let mut out = unsafe { Robj::from_sexp(R_new_altrep(class(), parts.get().cast(), R_NilValue).cast()) };
    let column_names: Robj = distinct.dimnames().and_then(|mut names| names.nth(1)).unwrap_or_else(|| ().into());
    // A fresh vector's attributes: setting them cannot fail.
    let _ = out.set_attrib("dim", [rows as i32, columns as i32]);
    let _ = out.set_attrib("dimnames", list!((), column_names));
    for name in ["assign", "contrasts"] {
        if let Some(value) = distinct.get_attrib(name) {
            let _ = out.set_attrib(name, value);
        }
    }
    out
}

/// The columns of `object` as the pass reads them when it is a matrix of this class not yet
/// expanded: per column the distinct rows' values and the rows' indices, read in place;
/// `None` for any other object, and once expanded (R may have written to the expansion,
/// which is then the matrix's value).
pub(crate) fn indexed_columns(object: &Robj) -> Option<Vec<hnm_core::Column<'_>>> {
    // SAFETY: `object` is a live R object during the .Call on R's main thread; an object of
    // this class holds the parts `rs_rows_of_distinct` made (plain vectors), which it keeps
    // alive and unchanged while `object` is borrowed.
    unsafe {
        let x: Sexp = object.get().cast();
        if ALTREP(x) == 0 || R_altrep_inherits(x, class()) == 0 || R_altrep_data2(x) != R_NilValue {
            return None;
        }
        let (values, index, distinct_rows) = parts(x);
        Some(values.chunks_exact(distinct_rows).map(|values| hnm_core::Column::Indexed { values, index }).collect())
    }
}

/// The distinct rows' values (column-major), the rows' indices and the number of distinct
/// rows of the matrix `x` of this class.
unsafe fn parts<'a>(x: Sexp) -> (&'a [f64], &'a [i32], usize) {
    let data = R_altrep_data1(x);
    let (values, index, distinct_rows) = (VECTOR_ELT(data, 0), VECTOR_ELT(data, 1), VECTOR_ELT(data, 2));
    let slice = |v: Sexp, first: *const c_void| match Rf_xlength(v) {
        0 => std::ptr::NonNull::dangling().as_ptr(),
        _ => first,
    };
    (
        std::slice::from_raw_parts(slice(values, REAL(values).cast()).cast(), Rf_xlength(values) as usize),
        std::slice::from_raw_parts(slice(index, INTEGER(index).cast()).cast(), Rf_xlength(index) as usize),
        (*INTEGER(distinct_rows)).max(1) as usize,
    )
}

unsafe extern "C" fn length(x: Sexp) -> isize {
    let (values, index, distinct_rows) = parts(x);
    (index.len() * (values.len() / distinct_rows)) as isize
}

unsafe extern "C" fn element(x: Sexp, i: isize) -> f64 {
    let mut value = 0.0;
    region(x, i, 1, &mut value);
    value
}

/// Values `start..start + count` (column-major) into `buffer`: from the expansion once there
/// is one (which R may have written to through its data pointer), else from the parts.
unsafe extern "C" fn region(x: Sexp, start: isize, count: isize, buffer: *mut f64) -> isize {
    let available = (length(x) - start.max(0)).clamp(0, count.max(0));
    let (first, available_rows) = (start.max(0) as usize, available as usize);
    let expansion = R_altrep_data2(x);
    if expansion != R_NilValue {
        std::ptr::copy_nonoverlapping(REAL(expansion).add(first), buffer, available_rows);
        return available;
    }
    let (values, index, distinct_rows) = parts(x);
    let rows = index.len().max(1);
    for k in 0..available_rows {
        let (row, column) = ((first + k) % rows, (first + k) / rows);
        let column = values.get(column * distinct_rows..(column + 1) * distinct_rows).unwrap_or(&[]);
        *buffer.add(k) = hnm_core::distinct_value(column, index.get(row).copied().unwrap_or(0));
    }
    available
}

unsafe extern "C" fn data_pointer_or_null(x: Sexp) -> *const c_void {
    let expansion = R_altrep_data2(x);
    if expansion == R_NilValue {
        std::ptr::null()
    } else {
        REAL(expansion).cast()
    }
}

/// The expansion (an ordinary double vector on R's heap, made at the first call: its
/// allocation may jump to R's top level, which no Rust frame with a destructor is left for).
unsafe extern "C" fn data_pointer(x: Sexp, _writable: c_int) -> *mut c_void {
    if R_altrep_data2(x) == R_NilValue {
        let (values, index, distinct_rows) = parts(x);
        let expansion = Rf_protect(Rf_allocVector(REALSXP, length(x)));
        if Rf_xlength(expansion) > 0 {
            let out = std::slice::from_raw_parts_mut(REAL(expansion), Rf_xlength(expansion) as usize);
            hnm_core::write_rows_of_distinct(values, distinct_rows, index, out);
        }
        R_set_altrep_data2(x, expansion);
        Rf_unprotect(1);
    }
    REAL(R_altrep_data2(x)).cast()
}

extendr_module! {
    mod distinct_rows;
    fn rs_rows_of_distinct;
}
