//! Blocked dense Cholesky factorisation, triangular inverse and inverse of a factored matrix
//! (column-major, lower triangles), with all their O(n³) work in one packed matrix product
//! C += α A B whose micro-kernel uses AVX-512 (16 × 6 tiles) or AVX2 and FMA (8 × 6) when the
//! processor has them (detected at run time, so one portable binary serves every x86-64) and
//! portable Rust otherwise. (On the project's 2-core AMD EPYC, AVX-512 factors and inverts
//! InstEval's core of order 1128 in 7.3 and 7.7 ms of CPU where AVX2 takes 11.3 and 11.0.)
//!
//! # Why own kernels rather than faer's
//! faer's products go through the gemm crate, which selects its SIMD kernels at run time only
//! with its `std` feature; that feature adds `sysctl` (for Apple targets) and through it
//! `walkdir`, `winapi-util` and `windows-sys` with its import libraries to Cargo.lock, and
//! `cargo vendor` keeps every target's crates, so the vendored sources (src/rust/vendor.tar.xz)
//! would no longer fit CRAN's 5 MB tarball. Without it faer multiplies with scalar code, and
//! the dense core of crossed factors (order ~1150 for InstEval) dominated each evaluation.
//! Measured again (faer 0.24, order 1128, one thread): faer's Cholesky 28 ms of CPU, this
//! module's 11 ms (AVX2) and 7 ms (AVX-512).
//! Compiling for a newer CPU (`-C target-cpu`) is not an option for portable binaries.
//!
//! # The algorithms (Golub & Van Loan, *Matrix Computations*, 4th ed., sections 1.3, 4.2)
//! - [`DenseKernels::partial_cholesky`]: the left-looking blocked Cholesky factorisation of the
//!   leading `nr` columns of an n × n matrix; per block column J of width `NB`:
//!   A[J:, J] −= L[J:, :J] L[J, :J]ᵀ (the product), then the column-by-column factorisation
//!   of that panel (its diagonal block and, below it, L₂₁ = A₂₁ L₁₁⁻ᵀ); the trailing block
//!   becomes the Schur complement A₂₂ − L₂₁L₂₁ᵀ.
//! - [`DenseKernels::invert_lower`]: X = L⁻¹ by block columns, X[I, J] = −L[I, I]⁻¹ Σ_{J ≤ K < I}
//!   L[I, K] X[K, J] (the sum a product), the diagonal blocks by forward substitution.
//! - [`DenseKernels::inverse_from_inverse_factor`]: (LLᵀ)⁻¹ = XᵀX, its block (I, J), I ≥ J,
//!   Σ_{K ≥ I} X[K, I]ᵀ X[K, J] (X is lower triangular, so the sum starts at I).
//!
//! Each costs n³/6 multiply-adds (for the full order); the products skip the blocks above the
//! diagonal and write only on and below it.
//!
//! # Interrupts
//! At MovieLens 32M's shape (a core of order 16,000) one factorisation takes minutes. Every
//! kernel sized by the order takes a [`Checkpoint`] and asks it (at most every
//! [`Checkpoint::INTERVAL`], a clock reading otherwise) before each block column or block of
//! rows; only the calling thread asks (it created the checkpoint), and on a stop it takes the
//! remaining blocks away from the helper thread, which finishes the block it is on. The kernel
//! then returns [`crate::HnmError::Interrupted`], its output unfinished.
//!
//! # Two threads
//! From order [`PARALLEL_ORDER`] (InstEval's core, ~1150, not Penicillin's, 8) the work is
//! shared with one helper thread, kept with the kernels: the factorisation's large
//! left-looking updates by blocks of rows (the next block column's while this thread factors
//! the current panel), the inverses by block columns (independent of each other), each
//! thread taking the next block when done, so that on a loaded machine the calling thread
//! goes on alone rather than wait for a fixed half. Every entry is summed as on one thread, so the results do not
//! depend on the threads.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::error::Result;
use crate::numerics::interrupt::{Checkpoint, Never};
use crate::numerics::memory::filled;

/// Rows of the micro-kernels' tiles at most ([`MicroKernel::MR`]: 16 for AVX-512, 8 else).
const MR_MAX: usize = 16;
/// Columns of the tiles of the AVX2 and portable micro-kernels (12 accumulators, 2 + 1
/// registers for the operands).
const NR: usize = 6;
/// Columns of the micro-kernels' tiles at most ([`MicroKernel::NR`]: 12 for AVX-512).
const NR_MAX: usize = 12;
/// The depth of one packed pass (the A panel of MR × KC values stays in L1, the packed A
/// block of MC × KC in L2).
const KC: usize = 256;
const MC: usize = 96;
/// Columns of one packed B block (KC × NC values, in L3).
const NC: usize = 1536;
/// Width of the block columns of the factorisations (a multiple of the tiles' 16 rows and 12
/// columns; 96 against 64 made InstEval's Cholesky and L⁻¹ ~10% faster, 144 and 192 no more).
pub(crate) const NB: usize = 96;
/// The order from which the kernels share their work with a second thread: below it the
/// thread's start (tens of microseconds) is not repaid (Penicillin's core has order 7,
/// InstEval's about 1150).
const PARALLEL_ORDER: usize = 256;
/// The multiply-adds of one product of the factorisation from which its rows are shared
/// with the second thread.
const PARALLEL_WORK: usize = 1 << 21;

const WHAT: &str = "the packing buffers of the dense block of the crossed grouping factors";

/// Which micro-kernel runs the products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
    /// AVX-512's products ([`Avx512`]), the rest of the code as with AVX2.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Isa {
    fn detected() -> Isa {
        Isa::available().pop().expect("the portable code")
    }

    /// The instruction sets this processor runs, the fastest last.
    fn available() -> Vec<Isa> {
        #[allow(unused_mut)]
        let mut out = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            out.push(Isa::Avx2Fma);
            if std::arch::is_x86_feature_detected!("avx512f") {
                out.push(Isa::Avx512);
            }
        }
        out
    }
}

/// The micro-kernel: the MR × NR tile (column-major, in the first MR · NR values of `out`)
/// Σ_p a_p b_pᵀ of a packed A panel (k columns of MR values) and a packed B panel (k rows of
/// NR values).
trait MicroKernel {
    /// The tile's rows.
    const MR: usize;
    /// The tile's columns.
    const NR: usize;

    /// # Safety
    /// A's column p (MR values) is read at `a + p · step`: `step` = MR for a packed panel, A's
    /// leading dimension for a column-major A read in place. The MR values at `a + p · step`
    /// for p < k and k · NR values at `b` are readable; on x86-64 the caller has checked the
    /// instruction set of the implementation.
    unsafe fn tile(k: usize, a: *const f64, step: usize, b: *const f64, out: &mut [f64; MR_MAX * NR_MAX]);
}

struct Portable;

/// Two AVX registers of four values.
const MR: usize = 8;

impl MicroKernel for Portable {
    const MR: usize = MR;
    const NR: usize = NR;

    #[inline(always)]
    unsafe fn tile(k: usize, a: *const f64, step: usize, b: *const f64, out: &mut [f64; MR_MAX * NR_MAX]) {
        // SAFETY: the caller's contract on the lengths.
        let b = unsafe { std::slice::from_raw_parts(b, k * NR) };
        let mut c = [0.0; MR * NR];
        for (p, b) in b.chunks_exact(NR).enumerate() {
            // SAFETY: the caller's contract: MR values at a + p · step.
            let a = unsafe { std::slice::from_raw_parts(a.add(p * step), MR) };
            for j in 0..NR {
                for i in 0..MR {
                    c[j * MR + i] += a[i] * b[j];
                }
            }
        }
        out[..MR * NR].copy_from_slice(&c);
    }
}

#[cfg(target_arch = "x86_64")]
struct Avx2Fma;

#[cfg(target_arch = "x86_64")]
impl MicroKernel for Avx2Fma {
    const MR: usize = MR;
    const NR: usize = NR;

    #[inline(always)]
    unsafe fn tile(k: usize, a: *const f64, step: usize, b: *const f64, out: &mut [f64; MR_MAX * NR_MAX]) {
        use std::arch::x86_64::{_mm256_broadcast_sd, _mm256_fmadd_pd, _mm256_loadu_pd, _mm256_setzero_pd, _mm256_storeu_pd};
        // SAFETY: the caller checked AVX2 and FMA and the panels' lengths; every load reads
        // within them (p < k) and every store within `out`.
        unsafe {
            let mut c = [[_mm256_setzero_pd(); 2]; NR];
            for p in 0..k {
                let a0 = _mm256_loadu_pd(a.add(p * step));
                let a1 = _mm256_loadu_pd(a.add(p * step + 4));
                for (j, c) in c.iter_mut().enumerate() {
                    let bj = _mm256_broadcast_sd(&*b.add(p * NR + j));
                    c[0] = _mm256_fmadd_pd(a0, bj, c[0]);
                    c[1] = _mm256_fmadd_pd(a1, bj, c[1]);
                }
            }
            for (j, c) in c.iter().enumerate() {
                _mm256_storeu_pd(out.as_mut_ptr().add(j * MR), c[0]);
                _mm256_storeu_pd(out.as_mut_ptr().add(j * MR + 4), c[1]);
            }
        }
    }
}

/// The AVX-512 micro-kernel: a 16 × 12 tile in 24 registers of eight values (zmm0–zmm23),
/// two more for A's column and six for B's values, each broadcast once for its two
/// multiply-adds: 14 loads for 24 multiply-adds of eight values (the 16 × 6 tile of AVX-512's
/// upper 16 registers took 8 for 12, and read its A panel from L2 twice as often), ~15% more
/// of the processor's peak in the products (a 1157³ product on one core of an Intel Xeon: 58
/// → 67 GFLOP/s). Written in assembly because AVX-512's intrinsics need Rust 1.89 (the
/// package's minimum is 1.84). Every vector register it writes is declared clobbered
/// (`clobber_abi`, as for a call to a C kernel, and xmm6–xmm15, which Windows' convention
/// keeps); the upper halves of zmm0–zmm15 are cleared at the end (`vzeroupper`) so that SSE
/// code that follows pays no transition.
#[cfg(target_arch = "x86_64")]
struct Avx512;

#[cfg(target_arch = "x86_64")]
impl MicroKernel for Avx512 {
    const MR: usize = 16;
    const NR: usize = 12;

    #[inline(always)]
    unsafe fn tile(k: usize, a: *const f64, step: usize, b: *const f64, out: &mut [f64; MR_MAX * NR_MAX]) {
        // SAFETY: the caller checked AVX-512F (with AVX2 and FMA) and the panels' lengths:
        // the loop reads 16 values at a + p · step for p < k and k · 12 values of `b`; the
        // stores write the 192 values of `out`.
        unsafe {
            std::arch::asm!(
                "vpxorq zmm0, zmm0, zmm0",
                "vpxorq zmm1, zmm1, zmm1",
                "vpxorq zmm2, zmm2, zmm2",
                "vpxorq zmm3, zmm3, zmm3",
                "vpxorq zmm4, zmm4, zmm4",
                "vpxorq zmm5, zmm5, zmm5",
                "vpxorq zmm6, zmm6, zmm6",
                "vpxorq zmm7, zmm7, zmm7",
                "vpxorq zmm8, zmm8, zmm8",
                "vpxorq zmm9, zmm9, zmm9",
                "vpxorq zmm10, zmm10, zmm10",
                "vpxorq zmm11, zmm11, zmm11",
                "vpxorq zmm12, zmm12, zmm12",
                "vpxorq zmm13, zmm13, zmm13",
                "vpxorq zmm14, zmm14, zmm14",
                "vpxorq zmm15, zmm15, zmm15",
                "vpxorq zmm16, zmm16, zmm16",
                "vpxorq zmm17, zmm17, zmm17",
                "vpxorq zmm18, zmm18, zmm18",
                "vpxorq zmm19, zmm19, zmm19",
                "vpxorq zmm20, zmm20, zmm20",
                "vpxorq zmm21, zmm21, zmm21",
                "vpxorq zmm22, zmm22, zmm22",
                "vpxorq zmm23, zmm23, zmm23",
                "test rdx, rdx",
                "jz 3f",
                "2:",
                "vmovupd zmm24, zmmword ptr [rsi]",
                "vmovupd zmm25, zmmword ptr [rsi + 64]",
                "vbroadcastsd zmm26, qword ptr [rdi + 0]",
                "vfmadd231pd zmm0, zmm24, zmm26",
                "vfmadd231pd zmm1, zmm25, zmm26",
                "vbroadcastsd zmm27, qword ptr [rdi + 8]",
                "vfmadd231pd zmm2, zmm24, zmm27",
                "vfmadd231pd zmm3, zmm25, zmm27",
                "vbroadcastsd zmm28, qword ptr [rdi + 16]",
                "vfmadd231pd zmm4, zmm24, zmm28",
                "vfmadd231pd zmm5, zmm25, zmm28",
                "vbroadcastsd zmm29, qword ptr [rdi + 24]",
                "vfmadd231pd zmm6, zmm24, zmm29",
                "vfmadd231pd zmm7, zmm25, zmm29",
                "vbroadcastsd zmm30, qword ptr [rdi + 32]",
                "vfmadd231pd zmm8, zmm24, zmm30",
                "vfmadd231pd zmm9, zmm25, zmm30",
                "vbroadcastsd zmm31, qword ptr [rdi + 40]",
                "vfmadd231pd zmm10, zmm24, zmm31",
                "vfmadd231pd zmm11, zmm25, zmm31",
                "vbroadcastsd zmm26, qword ptr [rdi + 48]",
                "vfmadd231pd zmm12, zmm24, zmm26",
                "vfmadd231pd zmm13, zmm25, zmm26",
                "vbroadcastsd zmm27, qword ptr [rdi + 56]",
                "vfmadd231pd zmm14, zmm24, zmm27",
                "vfmadd231pd zmm15, zmm25, zmm27",
                "vbroadcastsd zmm28, qword ptr [rdi + 64]",
                "vfmadd231pd zmm16, zmm24, zmm28",
                "vfmadd231pd zmm17, zmm25, zmm28",
                "vbroadcastsd zmm29, qword ptr [rdi + 72]",
                "vfmadd231pd zmm18, zmm24, zmm29",
                "vfmadd231pd zmm19, zmm25, zmm29",
                "vbroadcastsd zmm30, qword ptr [rdi + 80]",
                "vfmadd231pd zmm20, zmm24, zmm30",
                "vfmadd231pd zmm21, zmm25, zmm30",
                "vbroadcastsd zmm31, qword ptr [rdi + 88]",
                "vfmadd231pd zmm22, zmm24, zmm31",
                "vfmadd231pd zmm23, zmm25, zmm31",
                "add rsi, r9",
                "add rdi, 96",
                "dec rdx",
                "jnz 2b",
                "3:",
                "vmovupd zmmword ptr [r8 + 0], zmm0",
                "vmovupd zmmword ptr [r8 + 64], zmm1",
                "vmovupd zmmword ptr [r8 + 128], zmm2",
                "vmovupd zmmword ptr [r8 + 192], zmm3",
                "vmovupd zmmword ptr [r8 + 256], zmm4",
                "vmovupd zmmword ptr [r8 + 320], zmm5",
                "vmovupd zmmword ptr [r8 + 384], zmm6",
                "vmovupd zmmword ptr [r8 + 448], zmm7",
                "vmovupd zmmword ptr [r8 + 512], zmm8",
                "vmovupd zmmword ptr [r8 + 576], zmm9",
                "vmovupd zmmword ptr [r8 + 640], zmm10",
                "vmovupd zmmword ptr [r8 + 704], zmm11",
                "vmovupd zmmword ptr [r8 + 768], zmm12",
                "vmovupd zmmword ptr [r8 + 832], zmm13",
                "vmovupd zmmword ptr [r8 + 896], zmm14",
                "vmovupd zmmword ptr [r8 + 960], zmm15",
                "vmovupd zmmword ptr [r8 + 1024], zmm16",
                "vmovupd zmmword ptr [r8 + 1088], zmm17",
                "vmovupd zmmword ptr [r8 + 1152], zmm18",
                "vmovupd zmmword ptr [r8 + 1216], zmm19",
                "vmovupd zmmword ptr [r8 + 1280], zmm20",
                "vmovupd zmmword ptr [r8 + 1344], zmm21",
                "vmovupd zmmword ptr [r8 + 1408], zmm22",
                "vmovupd zmmword ptr [r8 + 1472], zmm23",
                "vzeroupper",
                inout("rsi") a => _,
                in("r9") step * std::mem::size_of::<f64>(),
                inout("rdi") b => _,
                inout("rdx") k => _,
                in("r8") out.as_mut_ptr(),
                // Callee-saved in the Windows convention (their low halves), so not in
                // `clobber_abi`'s set there; overwritten by the tile.
                out("xmm6") _,
                out("xmm7") _,
                out("xmm8") _,
                out("xmm9") _,
                out("xmm10") _,
                out("xmm11") _,
                out("xmm12") _,
                out("xmm13") _,
                out("xmm14") _,
                out("xmm15") _,
                clobber_abi("C"),
                options(nostack),
            );
        }
    }
}

/// A matrix operand read in place: element (i, j) at `data[i * rs + j * cs]`; with `lower`
/// its elements above the diagonal (j > i) are zeros, which the product skips where whole
/// tiles' sums would only add them (a triangular operand's products cost half).
#[derive(Clone, Copy)]
struct Operand {
    data: *const f64,
    rs: usize,
    cs: usize,
    lower: bool,
}

impl Operand {
    /// The operand from its row `top` on.
    fn below_row(self, top: usize) -> Operand {
        Operand { data: self.data.wrapping_add(top * self.rs), ..self }
    }

    /// The operand from its element `offset` (in `data`) on.
    fn shifted(self, offset: usize) -> Operand {
        Operand { data: self.data.wrapping_add(offset), ..self }
    }
}

/// The target of a product: element (i, j) at `data[i + j * ld]`; with `lower = Some(d)`
/// only the entries with i + d ≥ j are written (d: the target's first row less its first
/// column in the whole matrix, so that these are the whole matrix's lower triangle).
struct Target {
    data: *mut f64,
    ld: usize,
    lower: Option<usize>,
}

impl Target {
    /// Whether rows `i0..i0 + rows` and columns from `j0` hold nothing to write.
    fn above_diagonal(&self, i0: usize, rows: usize, j0: usize) -> bool {
        self.lower.is_some_and(|d| i0 + rows - 1 + d < j0)
    }
}

/// The packed blocks of a product's operands.
#[derive(Debug, Clone)]
struct Packing {
    a: Vec<f64>,
    b: Vec<f64>,
}

#[cfg(test)]
thread_local! {
    /// Tests: kernels made on this test thread have no helper, so that the questions they
    /// ask their checkpoint (the calling thread's share of the blocks) can be counted.
    pub(crate) static ONE_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[cfg(test)]
thread_local! {
    /// Tests: the helper threads started from this thread (by kernels made or cloned here).
    pub(crate) static HELPERS_STARTED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// What one thread's products use: the packing buffers and an NB × NB block of
/// [`DenseKernels::invert_lower`].
#[derive(Debug, Clone)]
struct Scratch {
    packing: Packing,
    t: Vec<f64>,
}

impl Scratch {
    fn new(n: usize) -> Result<Self> {
        // No larger than the blocks of a matrix of order n (small cores are common).
        let (rows, depth, columns) = (n.min(MC).div_ceil(MR_MAX).max(1) * MR_MAX, n.clamp(1, KC), n.min(NC).div_ceil(NR_MAX).max(1) * NR_MAX);
        let packing = Packing { a: filled(&[rows, depth], 0.0, WHAT)?, b: filled(&[depth, columns], 0.0, WHAT)? };
        Ok(Scratch { packing, t: filled(&[NB.min(n), NB.min(n)], 0.0, WHAT)? })
    }
}

/// The packing buffers and the micro-kernel of the products.
#[derive(Debug)]
pub(crate) struct DenseKernels {
    isa: Isa,
    /// The order the buffers were made for.
    order: usize,
    scratch: Scratch,
    /// A second thread with its own scratch, for matrices of order at least
    /// [`PARALLEL_ORDER`] on a machine with two threads or more: the large products' rows
    /// and the inverses' block columns are then shared between the calling thread and this
    /// one. Each entry is computed as on one thread (the same packed panels, summed in the
    /// same order), so the results do not depend on it.
    helper: Option<Helper>,
}

impl Clone for DenseKernels {
    /// The same kernels with a helper thread of their own (none when it cannot be started
    /// or its scratch does not fit in memory: the copy then works alone).
    fn clone(&self) -> Self {
        let helper = self.helper.as_ref().and_then(|_| Scratch::new(self.order).ok()).and_then(Helper::start);
        DenseKernels { isa: self.isa, order: self.order, scratch: self.scratch.clone(), helper }
    }
}

impl DenseKernels {
    /// Kernels for matrices of order at most `n`, with the instruction set of this processor,
    /// on at most `threads` threads (the user's count, R's `hnm_control(threads = )`): with
    /// one, or on a machine with one, no helper thread is started.
    ///
    /// # Errors
    /// `TooLarge` when the packing buffers (at most ~3 MB) do not fit in memory.
    pub(crate) fn new(n: usize, threads: usize) -> Result<Self> {
        Self::with_isa(n, threads, Isa::detected())
    }

    fn with_isa(n: usize, threads: usize, isa: Isa) -> Result<Self> {
        let threads = threads.min(std::thread::available_parallelism().map_or(1, |t| t.get()));
        #[cfg(test)]
        let threads = if ONE_THREAD.with(std::cell::Cell::get) { 1 } else { threads };
        // A helper that cannot be started leaves every task to the calling thread.
        let helper = if n >= PARALLEL_ORDER && threads >= 2 { Helper::start(Scratch::new(n)?) } else { None };
        Ok(DenseKernels { isa, order: n, scratch: Scratch::new(n)?, helper })
    }

    /// `task(b, chunk)` for every chunk b of `data` (`size` values each, the last fewer), on
    /// this thread and, when these kernels have a helper (order at least [`PARALLEL_ORDER`],
    /// two threads or more), on that one too, each taking the next chunk when done with its
    /// last ([`shared_tasks`]); this thread asks `checkpoint` before each of its chunks.
    ///
    /// # Errors
    /// `Interrupted` when `checkpoint` asks to stop (some chunks then not done).
    ///
    /// # Panics
    /// When `size` is 0.
    pub(crate) fn for_each_chunk(
        &mut self, data: &mut [f64], size: usize, checkpoint: &mut Checkpoint<'_>, task: impl Fn(usize, &mut [f64]) + Sync,
    ) -> Result<()> {
        assert!(size > 0);
        let (len, base) = (data.len(), Shared(data.as_mut_ptr()));
        let DenseKernels { scratch, helper, .. } = self;
        shared_tasks(scratch, helper.as_ref(), len.div_ceil(size), checkpoint, |_, b| {
            let (start, end) = (b * size, (b * size + size).min(len));
            // SAFETY: chunk b lies within `data` (borrowed mutably for the call), and each
            // chunk is handed to one task only.
            task(b, unsafe { std::slice::from_raw_parts_mut(base.get().add(start), end - start) });
        })
    }

    /// `task(scratch, b)` for each block column b (of width NB) of a lower-triangular
    /// computation of order `nr` whose block columns are independent: on this thread, or from
    /// order [`PARALLEL_ORDER`] on this one and the helper thread (see [`shared_tasks`]), the
    /// costliest (the first) first; `checkpoint` asked before each block column.
    ///
    /// # Errors
    /// `Interrupted` when `checkpoint` asks to stop.
    fn over_block_columns(&mut self, nr: usize, checkpoint: &mut Checkpoint<'_>, task: impl Fn(&mut Scratch, usize) + Sync) -> Result<()> {
        let helper = self.helper.as_ref().filter(|_| nr >= PARALLEL_ORDER);
        shared_tasks(&mut self.scratch, helper, nr.div_ceil(NB), checkpoint, task)
    }

    /// Factors the leading `nr` columns of the symmetric n × n matrix `a` (column-major, its
    /// lower triangle read) in place: the lower triangle of its leading nr × nr block becomes
    /// L₁₁ (L₁₁L₁₁ᵀ = A₁₁), the block below it L₂₁ = A₂₁L₁₁⁻ᵀ, and the trailing block's lower
    /// triangle A₂₂ − L₂₁L₂₁ᵀ. Returns false (a is then partly overwritten) when a pivot is
    /// not positive and finite: A₁₁ is not (numerically) positive definite. `checkpoint` is
    /// asked before each block column and each block of rows of its products.
    ///
    /// # Errors
    /// `Interrupted` when `checkpoint` asks to stop (a is then partly overwritten).
    pub(crate) fn partial_cholesky(&mut self, a: &mut [f64], n: usize, nr: usize, checkpoint: &mut Checkpoint<'_>) -> Result<bool> {
        assert!(a.len() >= n * n && nr <= n);
        match self.isa {
            Isa::Portable => partial_cholesky::<Portable>(self, a, n, nr, checkpoint),
            // SAFETY: the instruction set was detected.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => unsafe { partial_cholesky_avx2::<Avx2Fma>(self, a, n, nr, checkpoint) },
            // SAFETY: the instruction set was detected.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { partial_cholesky_avx2::<Avx512>(self, a, n, nr, checkpoint) },
        }
    }

    /// X = L⁻¹ into `x` (nr × nr column-major, lower triangle; its strict upper triangle must
    /// be 0, as it is left) for the lower-triangular L in the leading nr × nr block of the
    /// n × n column-major `l`, whose diagonal is nonzero; `checkpoint` asked before each
    /// block column.
    ///
    /// # Errors
    /// `Interrupted` when `checkpoint` asks to stop (X is then unfinished).
    pub(crate) fn invert_lower(&mut self, x: &mut [f64], l: &[f64], n: usize, nr: usize, checkpoint: &mut Checkpoint<'_>) -> Result<()> {
        assert!(x.len() >= nr * nr && l.len() >= n * n && nr <= n);
        // The diagonal blocks X[J, J] = L[J, J]⁻¹ first (the identity solved), shared by
        // block columns: the block columns below read them all.
        self.for_each_chunk(&mut x[..nr * nr], NB * nr, checkpoint, |b, columns| {
            let j0 = b * NB;
            let w = NB.min(nr - j0);
            for j in 0..w {
                columns[j * nr + j0..j * nr + j0 + w].fill(0.0);
                columns[j * nr + j0 + j] = 1.0;
            }
            solve_lower_block(&l[j0 * n + j0..], n, w, &mut columns[j0..], nr, w);
        })?;
        let (isa, x) = (self.isa, Shared(x.as_mut_ptr()));
        // SAFETY: x holds nr × nr values; each task writes only its own block columns below
        // their diagonal blocks and reads those and the diagonal blocks, written above.
        self.over_block_columns(nr, checkpoint, |scratch, b| unsafe { invert_lower_column_on(isa, scratch, x.get(), l, n, nr, b) })
    }

    /// The lower triangle of (LLᵀ)⁻¹ = XᵀX into `sigma` (nr × nr column-major) from X = L⁻¹
    /// (nr × nr column-major, lower triangular with zeros above, as
    /// [`DenseKernels::invert_lower`] leaves it); `checkpoint` asked before each block column.
    ///
    /// # Errors
    /// `Interrupted` when `checkpoint` asks to stop (Σ is then unfinished).
    pub(crate) fn inverse_from_inverse_factor(&mut self, sigma: &mut [f64], x: &[f64], nr: usize, checkpoint: &mut Checkpoint<'_>) -> Result<()> {
        assert!(sigma.len() >= nr * nr && x.len() >= nr * nr);
        let (isa, sigma) = (self.isa, Shared(sigma.as_mut_ptr()));
        // SAFETY: sigma holds nr × nr values, of which each task writes its own block columns.
        self.over_block_columns(nr, checkpoint, |scratch, b| unsafe { inverse_column_on(isa, scratch, sigma.get(), x, nr, b) })
    }
}

impl DenseKernels {
    /// The dimensions of the scratch `partial` of [`DenseKernels::sparse_product_norms`] for
    /// `m` vectors and order `nr`: a slab's partial sums per vector and per column.
    pub(crate) fn product_norms_scratch(m: usize, nr: usize) -> [usize; 2] {
        [nr.div_ceil(NB), m + nr]
    }

    /// ‖X v_j‖² into `norms[j]` for the lower-triangular nr × nr X (column-major, `x`, zeros
    /// above its diagonal, as [`DenseKernels::invert_lower`] leaves it) and the sparse vectors
    /// v_j, j < m = `norms.len()`: the values `values[starts[j]..starts[j + 1]]` at the
    /// ascending `rows` there, of which those at rows ≥ nr (only at a vector's end) are left
    /// out, and those with `dense[j]` (their norms left 0, for
    /// [`DenseKernels::dense_product_norms`]); and X's columns' ‖X e_c‖² into
    /// `column_norms[c]`, c < nr. Σ_j Σ_{r ∈ v_j} (nr − r) + nr²/2 multiply-adds, by slabs
    /// of NB rows of X (a few hundred kB) read from the cache by every vector in turn rather
    /// than the columns of X from memory by each, and by the columns' sums (which took the
    /// calling thread alone ~0.6 ms of each InstEval evaluation over X from memory); the
    /// slabs shared with the helper thread, their partial sums in `partial`
    /// ([`DenseKernels::product_norms_scratch`]) added in slab order, so that the result does
    /// not depend on which thread summed which. `checkpoint` is asked before each slab.
    ///
    /// # Errors
    /// `Interrupted` when `checkpoint` asks to stop (the norms then unfinished).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn sparse_product_norms(
        &mut self, x: &[f64], nr: usize, starts: &[usize], rows: &[usize], values: &[f64], dense: &[bool], partial: &mut [f64], norms: &mut [f64],
        column_norms: &mut [f64], checkpoint: &mut Checkpoint<'_>,
    ) -> Result<()> {
        let m = norms.len();
        let (slabs, width) = (nr.div_ceil(NB), m + nr);
        assert!(x.len() >= nr * nr && starts.len() > m && dense.len() >= m && partial.len() >= slabs * width && column_norms.len() >= nr);
        let (isa, out) = (self.isa, Shared(partial.as_mut_ptr()));
        // Slabs end at nr, nr − NB, ...: the first (rows 0..nr − (slabs − 1) NB) is the
        // partial one, summed by the loop of [`slab_norms`] without tiles, and the cheapest
        // (only the vectors' first rows reach it; the last slab, every vector's every row,
        // went through that loop when the slabs started at 0, NB, ...: a quarter of
        // InstEval's norms).
        let slab_rows = |b: usize| (nr + b * NB).saturating_sub(slabs * NB)..nr + (b + 1) * NB - slabs * NB;
        self.over_block_columns(nr, checkpoint, |_, task| {
            // The last slab first: slab b's vectors read X's rows up to its end, so the
            // costliest slabs are the last (the helper thread no longer idles while this
            // one finishes the last, costliest slab).
            let b = slabs - 1 - task;
            let slab = slab_rows(b);
            // SAFETY: slab b writes its own m + nr values of `partial`.
            let out = unsafe { std::slice::from_raw_parts_mut(out.get().add(b * width), width) };
            let (out, columns) = out.split_at_mut(m);
            match isa {
                Isa::Portable => {
                    slab_norms::<Portable>(x, nr, slab.clone(), starts, rows, values, dense, out);
                    slab_column_norms(x, nr, slab, columns);
                }
                // SAFETY: the instruction set was detected.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2Fma | Isa::Avx512 => unsafe {
                    slab_norms_avx2(x, nr, slab.clone(), starts, rows, values, dense, out);
                    slab_column_norms_avx2(x, nr, slab, columns);
                },
            }
        })?;
        norms.fill(0.0);
        column_norms[..nr].fill(0.0);
        for slab in partial[..slabs * width].chunks_exact(width) {
            for (norm, part) in norms.iter_mut().chain(column_norms[..nr].iter_mut()).zip(slab) {
                *norm += part;
            }
        }
        Ok(())
    }
}

impl DenseKernels {
    /// C −= PᵀP on and below the diagonal of the n × n column-major C, for the k × n panel P
    /// (row-major: row i at `panel[i * n..(i + 1) * n]`): the Schur update Σ_i p_i p_iᵀ of k
    /// dense rank-one terms as one packed product (a SYRK, k n²/2 multiply-adds), its rows
    /// shared with the helper thread by blocks of MC from [`PARALLEL_WORK`] multiply-adds.
    /// Each block of rows of C reads only P's columns up to its last row (the rest of the
    /// row lies above the diagonal), and each entry is summed as on one thread. `checkpoint`
    /// is asked before each block of rows.
    ///
    /// # Errors
    /// `Interrupted` when `checkpoint` asks to stop (C is then partly updated).
    ///
    /// # Panics
    /// When `c` holds fewer than n² values or `panel` fewer than k n.
    pub(crate) fn subtract_gram(&mut self, c: &mut [f64], n: usize, panel: &[f64], k: usize, checkpoint: &mut Checkpoint<'_>) -> Result<()> {
        assert!(c.len() >= n * n && panel.len() >= k * n);
        if n == 0 || k == 0 {
            return Ok(());
        }
        let base = Shared(c.as_mut_ptr());
        // Pᵀ (element (i, p) = P[p, i]) and P, read in place.
        let (left, right) = (Operand { data: panel.as_ptr(), rs: 1, cs: n, lower: false }, Operand { data: panel.as_ptr(), rs: n, cs: 1, lower: false });
        let isa = self.isa;
        // The packing buffers hold KC products, or n for a matrix of order below KC: P's rows
        // by that many.
        let depth = n.min(KC);
        // Rows top..top + rows of C, columns up to the block's last row.
        let task = |scratch: &mut Scratch, i: usize| {
            let top = i * MC;
            let rows = MC.min(n - top);
            for p0 in (0..k).step_by(depth) {
                let target = Target { data: base.get().wrapping_add(top), ld: n, lower: Some(top) };
                let (left, right) = (left.shifted(p0 * n + top), right.shifted(p0 * n));
                // SAFETY: the target's rows top..top + rows (within C's n × n values) are
                // written by this task only; the operands are another slice, read within k × n.
                unsafe { product_on(isa, &mut scratch.packing, rows, top + rows, depth.min(k - p0), -1.0, left, right, target) };
            }
        };
        let helper = self.helper.as_ref().filter(|_| n * n * k / 2 >= PARALLEL_WORK);
        shared_tasks(&mut self.scratch, helper, n.div_ceil(MC), checkpoint, task)
    }

    /// ‖X p_v‖² into `norms[v]` for the dense vectors p_v, v < k = `norms.len()`, the rows
    /// of the k × nr row-major `panel`, and the lower-triangular nr × nr X (column-major,
    /// zeros above its diagonal, as [`DenseKernels::invert_lower`] leaves it): the dense
    /// counterpart of [`DenseKernels::sparse_product_norms`] for vectors with most of their
    /// rows, as packed products. By slabs of NB rows of X (shared with the helper thread as
    /// there), Y = X[slab, ..end] P[.., ..end]ᵀ (X's columns past the slab's end are 0) by
    /// blocks of NB vectors, whose columns' squared norms are the slab's partial sums
    /// (`partial`, [`DenseKernels::product_norms_scratch`] of k and nr), added in slab
    /// order: nr² k/2 multiply-adds, independent of the threads. `checkpoint` is asked
    /// before each slab.
    ///
    /// # Errors
    /// `Interrupted` when `checkpoint` asks to stop (the norms then unfinished).
    ///
    /// # Panics
    /// When an operand is shorter than its dimensions.
    pub(crate) fn dense_product_norms(
        &mut self, x: &[f64], nr: usize, panel: &[f64], partial: &mut [f64], norms: &mut [f64], checkpoint: &mut Checkpoint<'_>,
    ) -> Result<()> {
        let k = norms.len();
        let slabs = nr.div_ceil(NB);
        assert!(x.len() >= nr * nr && panel.len() >= k * nr && partial.len() >= slabs * k);
        let (isa, out) = (self.isa, Shared(partial.as_mut_ptr()));
        self.over_block_columns(nr, checkpoint, |scratch, b| {
            let (k0, k1) = (b * NB, (b * NB + NB).min(nr));
            let h = k1 - k0;
            // SAFETY: slab b writes its own k values of `partial`.
            let out = unsafe { std::slice::from_raw_parts_mut(out.get().add(b * k), k) };
            // Blocks of NB vectors (fewer for a small core): Y fits the scratch's `t`
            // (NB.min(n) squared, h ≤ NB.min(nr) rows) and the packing's columns.
            let width = NB.min(nr);
            for v0 in (0..k).step_by(width) {
                let count = width.min(k - v0);
                let y = &mut scratch.t[..h * count];
                y.fill(0.0);
                let target = Target { data: y.as_mut_ptr(), ld: h, lower: None };
                // SAFETY: X's rows k0..k1 and columns ..k1, P's rows v0..v0 + count and
                // columns ..k1 lie within their slices; the target is the scratch's own.
                unsafe {
                    let a = Operand { data: x.as_ptr().add(k0), rs: 1, cs: nr, lower: false };
                    let p = Operand { data: panel.as_ptr().add(v0 * nr), rs: 1, cs: nr, lower: false };
                    product_on(isa, &mut scratch.packing, h, count, k1, 1.0, a, p, target);
                }
                for (norm, column) in out[v0..v0 + count].iter_mut().zip(y.chunks_exact(h)) {
                    *norm = column.iter().map(|v| v * v).sum();
                }
            }
        })?;
        norms.fill(0.0);
        for slab in partial[..slabs * k].chunks_exact(k) {
            for (norm, part) in norms.iter_mut().zip(slab) {
                *norm += part;
            }
        }
        Ok(())
    }
}

impl DenseKernels {
    /// C += α A B for A (m × k) and B (k × n) read in place, element (i, j) of A at
    /// `a.0[i * a.1 + j * a.2]` (B likewise), and C (m × n) column-major with leading
    /// dimension `ldc`: the packed product of this module's factorisations, for other dense
    /// products (the selected inverse of several grouping factors). `dimensions` is (m, n, k).
    ///
    /// # Panics
    /// When an operand or the target is shorter than its dimensions, or the packing buffers
    /// (sized by the order given to [`DenseKernels::new`]) cannot hold the blocks of m rows,
    /// k products and n columns (any dimension at most that order fits).
    pub(crate) fn multiply(
        &mut self, dimensions: (usize, usize, usize), alpha: f64, a: (&[f64], usize, usize), b: (&[f64], usize, usize), c: &mut [f64], ldc: usize,
    ) {
        let (m, n, k) = dimensions;
        if m == 0 || n == 0 || k == 0 {
            return;
        }
        let reach = |rows: usize, columns: usize, (data, rs, cs): (&[f64], usize, usize)| data.len() > (rows - 1) * rs + (columns - 1) * cs;
        assert!(reach(m, k, a) && reach(k, n, b) && ldc >= m && c.len() >= (n - 1) * ldc + m);
        let (kc, mc, nc) = (k.min(KC), m.min(MC), n.min(NC));
        assert!(self.scratch.packing.a.len() >= kc * mc.div_ceil(MR_MAX) * MR_MAX && self.scratch.packing.b.len() >= kc * nc.div_ceil(NR_MAX) * NR_MAX);
        let (a, b) = (Operand { data: a.0.as_ptr(), rs: a.1, cs: a.2, lower: false }, Operand { data: b.0.as_ptr(), rs: b.1, cs: b.2, lower: false });
        let (isa, c) = (self.isa, Shared(c.as_mut_ptr()));
        let DenseKernels { scratch, helper, .. } = self;
        let Some(helper) = helper.as_ref().filter(|_| m * n * k >= PARALLEL_WORK) else {
            // SAFETY: the operands and the target were checked to hold their dimensions, `c`
            // (borrowed mutably) overlaps neither, and the instruction set was detected.
            unsafe { product_on(isa, &mut scratch.packing, m, n, k, alpha, a, b, Target { data: c.get(), ld: ldc, lower: None }) };
            return;
        };
        // By blocks of MC rows shared with the helper thread (the selected inverse of the
        // kb07-shaped model: ~30 million multiply-adds an evaluation, on this thread alone
        // 15% of the fit's time there); each block of rows summed as by the whole product.
        // The callers ask their checkpoint between products, so the blocks need none.
        // (Never asks to stop: the result is Ok.)
        let _ = shared_tasks(scratch, Some(helper), m.div_ceil(MC), &mut Checkpoint::new(&Never), |scratch, i| {
            let top = i * MC;
            let target = Target { data: c.get().wrapping_add(top), ld: ldc, lower: None };
            // SAFETY: as above; rows top..top + MC of C are this task's only.
            unsafe { product_on(isa, &mut scratch.packing, MC.min(m - top), n, k, alpha, a.below_row(top), b, target) };
        });
    }
}

/// The part of the rows `slab` (k0..k1, at most NB) of X of each ‖X v_j‖² of
/// [`DenseKernels::sparse_product_norms`] into `out[j]`: each column of X at a row of v_j up
/// to the slab's end, scaled and summed. (Slabs of NB rows, 96 × nr values, beat 32 and 16
/// rows on InstEval: the loop over a vector's rows, repeated for every slab, costs more than
/// the slab's cache misses.) A whole slab goes through `K`'s [`NormTile`] by [`TILE`] rows, a
/// partial one (the first) through the loop below.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn slab_norms<K: NormTile>(x: &[f64], nr: usize, slab: Range<usize>, starts: &[usize], rows: &[usize], values: &[f64], dense: &[bool], out: &mut [f64]) {
    let (k0, k1) = (slab.start, slab.end);
    let mut y = [0.0; NB];
    let y = &mut y[..k1 - k0];
    for (j, out) in out.iter_mut().enumerate() {
        if dense[j] {
            *out = 0.0;
            continue;
        }
        let range = starts[j]..starts[j + 1];
        let (rows, values) = (&rows[range.clone()], &values[range]);
        if k1 - k0 == NB {
            *out = (k0..k1).step_by(TILE).map(|t0| K::tile_norm(x, nr, t0, rows, values)).sum();
            continue;
        }
        y.fill(0.0);
        // X is lower triangular: column r starts at row r.
        for (&row, &v) in rows.iter().zip(values).take_while(|(&row, _)| row < k1) {
            let from = row.max(k0);
            for (y, x) in y[from - k0..].iter_mut().zip(&x[row * nr + from..row * nr + k1]) {
                *y += v * x;
            }
        }
        *out = y.iter().map(|v| v * v).sum();
    }
}

/// Rows of X summed at once by a [`NormTile`]: 8 AVX registers of 4 values.
const TILE: usize = 32;

/// ‖Σ_r v_r X[t0..t0 + TILE, r]‖² over the entries (r, v_r) of a sparse vector with r below
/// the tile's end (`rows` ascending), the TILE sums held in registers and each column's TILE
/// values read whole: X's zeros above its diagonal (as [`DenseKernels::invert_lower`] leaves
/// them) make the columns that start inside the tile add nothing there.
trait NormTile {
    fn tile_norm(x: &[f64], nr: usize, t0: usize, rows: &[usize], values: &[f64]) -> f64;
}

impl NormTile for Portable {
    #[inline(always)]
    fn tile_norm(x: &[f64], nr: usize, t0: usize, rows: &[usize], values: &[f64]) -> f64 {
        let mut tile = [0.0; TILE];
        for (&row, &v) in rows.iter().zip(values).take_while(|(&row, _)| row < t0 + TILE) {
            for (t, x) in tile.iter_mut().zip(&x[row * nr + t0..row * nr + t0 + TILE]) {
                *t += v * x;
            }
        }
        tile.iter().map(|t| t * t).sum()
    }
}

#[cfg(target_arch = "x86_64")]
impl NormTile for Avx2Fma {
    #[inline(always)]
    fn tile_norm(x: &[f64], nr: usize, t0: usize, rows: &[usize], values: &[f64]) -> f64 {
        use std::arch::x86_64::{_mm256_add_pd, _mm256_broadcast_sd, _mm256_fmadd_pd, _mm256_loadu_pd, _mm256_mul_pd, _mm256_setzero_pd, _mm256_storeu_pd};
        const LANES: usize = 4;
        // SAFETY: this instance runs only where AVX2 and FMA were detected (through
        // `slab_norms_avx2`); every load reads the TILE values of a column below nr rows
        // (t0 + TILE ≤ nr: the slab is whole), bounds-checked by the slice.
        unsafe {
            let mut c = [_mm256_setzero_pd(); TILE / LANES];
            for (&row, v) in rows.iter().zip(values).take_while(|(&row, _)| row < t0 + TILE) {
                let column = &x[row * nr + t0..row * nr + t0 + TILE];
                let v = _mm256_broadcast_sd(v);
                for (l, c) in c.iter_mut().enumerate() {
                    *c = _mm256_fmadd_pd(v, _mm256_loadu_pd(column.as_ptr().add(l * LANES)), *c);
                }
            }
            let mut squares = _mm256_mul_pd(c[0], c[0]);
            for c in &c[1..] {
                squares = _mm256_add_pd(squares, _mm256_mul_pd(*c, *c));
            }
            let mut out = [0.0; LANES];
            _mm256_storeu_pd(out.as_mut_ptr(), squares);
            out.iter().sum()
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn slab_norms_avx2(x: &[f64], nr: usize, slab: Range<usize>, starts: &[usize], rows: &[usize], values: &[f64], dense: &[bool], out: &mut [f64]) {
    slab_norms::<Avx2Fma>(x, nr, slab, starts, rows, values, dense, out)
}

/// Σ_{i ∈ slab} X[i, c]² (the rows k0..k1) into `out[c]` for every column c < nr of the
/// lower-triangular X (zeros above its diagonal: columns from the slab's end on get 0), the
/// slab's part of ‖X e_c‖² ([`DenseKernels::sparse_product_norms`]): four sums per column
/// (one vector register), added at the end.
#[inline(always)]
fn slab_column_norms(x: &[f64], nr: usize, slab: Range<usize>, out: &mut [f64]) {
    let (k0, k1) = (slab.start, slab.end);
    for (c, out) in out[..nr].iter_mut().enumerate() {
        if c >= k1 {
            *out = 0.0;
            continue;
        }
        let column = &x[c * nr + k0..c * nr + k1];
        let mut sums = [0.0; 4];
        let mut chunks = column.chunks_exact(4);
        for chunk in &mut chunks {
            for (sum, v) in sums.iter_mut().zip(chunk) {
                *sum += v * v;
            }
        }
        let tail: f64 = chunks.remainder().iter().map(|v| v * v).sum();
        *out = (sums[0] + sums[1]) + (sums[2] + sums[3]) + tail;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn slab_column_norms_avx2(x: &[f64], nr: usize, slab: Range<usize>, out: &mut [f64]) {
    slab_column_norms(x, nr, slab, out)
}

/// A pointer shared by the two threads of a computation whose tasks write disjoint parts of
/// what it points to (read through [`Shared::get`], so that closures capture the whole).
#[derive(Clone, Copy)]
struct Shared(*mut f64);

// SAFETY: the tasks given a `Shared` write disjoint entries (see each use).
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    fn get(self) -> *mut f64 {
        self.0
    }
}

// SAFETY: operands are only read, by tasks whose targets they do not overlap.
unsafe impl Send for Operand {}
unsafe impl Sync for Operand {}

/// `task(scratch, i)` for i in 0..count on this thread and, given one, the helper thread
/// (with its own scratch), each taking the next i when done with its last: on a loaded
/// machine, where the helper may wait long for a processor, this thread goes on with the
/// rest instead of waiting for a fixed half, and without a helper does it all. This thread
/// asks `checkpoint` before each of its tasks; on a stop it moves the next task past the
/// last, so that the helper takes no more (it finishes the one it is on). The kernels'
/// shared loops all run through it ([`DenseKernels::for_each_chunk`] for disjoint chunks of
/// a slice, the others for blocks of their products).
///
/// # Errors
/// `Interrupted` when `checkpoint` asks to stop (some tasks then not done).
fn shared_tasks(
    mine: &mut Scratch, helper: Option<&Helper>, count: usize, checkpoint: &mut Checkpoint<'_>, task: impl Fn(&mut Scratch, usize) + Sync,
) -> Result<()> {
    shared_tasks_after(mine, helper, count, checkpoint, |_| true, task).map(|_| ())
}

/// [`shared_tasks`] with `first(scratch)` on this thread before it takes its first task
/// (the helper starts on the tasks at once): when `first` returns false this thread takes
/// no task, stops the helper's as on an interrupt, and returns false (the tasks then
/// unfinished); true otherwise.
///
/// # Errors
/// `Interrupted` when `checkpoint` asks to stop (some tasks then not done).
fn shared_tasks_after(
    mine: &mut Scratch, helper: Option<&Helper>, count: usize, checkpoint: &mut Checkpoint<'_>, first: impl FnOnce(&mut Scratch) -> bool,
    task: impl Fn(&mut Scratch, usize) + Sync,
) -> Result<bool> {
    let next = AtomicUsize::new(0);
    let run_mine = |scratch: &mut Scratch| -> Result<bool> {
        let finished = (|| {
            checkpoint.check_timed()?;
            if !first(scratch) {
                return Ok(false);
            }
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok(true);
                }
                task(scratch, i);
                checkpoint.check_timed()?;
            }
        })();
        if !matches!(finished, Ok(true)) {
            next.store(count, Ordering::Relaxed);
        }
        finished
    };
    // One task needs no second thread.
    let Some(helper) = helper.filter(|_| count > 1) else { return run_mine(mine) };
    let theirs = |scratch: &mut Scratch| loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= count {
            break;
        }
        task(scratch, i);
    };
    helper.run(&theirs, || run_mine(mine))
}

/// The kernels' second thread, started once with the kernels and kept until they are
/// dropped: each shared loop hands it a task (a closure over the loop's state) and waits
/// for it at the end. Spawning and joining a scoped thread per loop instead took 6.6% of an
/// InstEval evaluation (about twenty loops, tens of microseconds each). Between tasks the
/// thread spins for [`SPIN`] rounds and then parks; the waiting caller likewise.
struct Helper {
    state: std::sync::Arc<HelperState>,
    /// The thread, to wake, and its handle, joined on drop.
    thread: std::thread::Thread,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Helper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Helper").field("thread", &self.thread.id()).finish_non_exhaustive()
    }
}

/// What the caller and the helper thread share.
struct HelperState {
    /// The task of the current loop and the thread to wake when it is done, set by the
    /// caller before `posted`.
    job: std::sync::Mutex<Option<Job>>,
    /// Set by the caller when it has posted a task, cleared by the helper when the task is
    /// done (after which it touches nothing the task borrowed).
    posted: AtomicBool,
    /// Set when the kernels are dropped: the thread ends.
    exit: AtomicBool,
    /// Set when a task panicked on the helper thread (the caller then panics too).
    panicked: AtomicBool,
}

/// A loop's task for the helper thread, its lifetime erased.
struct Job {
    task: *const (dyn Fn(&mut Scratch) + Sync + 'static),
    caller: std::thread::Thread,
}

// SAFETY: the task is `Sync` (called from the helper thread while the caller may call it
// too) and outlives its use: [`Helper::run`] returns (or unwinds) only once the helper
// thread has cleared `posted`, after its last use of the task.
unsafe impl Send for Job {}

/// Rounds of [`std::hint::spin_loop`] before a waiting thread parks: some microseconds,
/// enough for loops that follow each other at once, short enough not to take a loaded
/// machine's processor (which the two threads may share) from others.
const SPIN: usize = 1 << 8;

/// Waits until `done()`: spinning [`SPIN`] rounds, then parked (woken by the other thread's
/// `unpark` after it changed what `done` reads; a spurious wake only checks again).
fn wait_until(done: impl Fn() -> bool) {
    for _ in 0..SPIN {
        if done() {
            return;
        }
        std::hint::spin_loop();
    }
    while !done() {
        std::thread::park();
    }
}

impl Helper {
    /// The thread, with its scratch; `None` when it cannot be started.
    fn start(scratch: Scratch) -> Option<Helper> {
        #[cfg(test)]
        HELPERS_STARTED.with(|started| started.set(started.get() + 1));
        let state = std::sync::Arc::new(HelperState {
            job: std::sync::Mutex::new(None),
            posted: AtomicBool::new(false),
            exit: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
        });
        let shared = std::sync::Arc::clone(&state);
        let handle = std::thread::Builder::new().name("hnm-dense".into()).spawn(move || shared.serve(scratch)).ok()?;
        Some(Helper { state, thread: handle.thread().clone(), handle: Some(handle) })
    }

    /// `task(scratch)` on the helper thread while `mine()` runs on this one; returns `mine`'s
    /// result once both are done (also when `mine` panics: the task may borrow what
    /// unwinding frees).
    ///
    /// # Panics
    /// When the task panicked on the helper thread.
    fn run<R>(&self, task: &(dyn Fn(&mut Scratch) + Sync), mine: impl FnOnce() -> R) -> R {
        // SAFETY (of the erased lifetime): the guard below waits for the helper to be done
        // with the task before this function returns or unwinds.
        let task: *const (dyn Fn(&mut Scratch) + Sync + 'static) = unsafe { std::mem::transmute(task) };
        let state = &*self.state;
        // A panic of an earlier call's task, left when that call's own part panicked first.
        state.panicked.store(false, Ordering::Relaxed);
        *state.job.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Job { task, caller: std::thread::current() });
        state.posted.store(true, Ordering::Release);
        self.thread.unpark();
        struct Wait<'a>(&'a HelperState);
        impl Drop for Wait<'_> {
            fn drop(&mut self) {
                wait_until(|| !self.0.posted.load(Ordering::Acquire));
            }
        }
        let wait = Wait(state);
        let out = mine();
        drop(wait);
        assert!(!state.panicked.swap(false, Ordering::Relaxed), "a task of the dense kernels panicked on their helper thread");
        out
    }
}

impl HelperState {
    /// The helper thread's loop: each posted task run with the thread's `scratch`, until
    /// `exit`.
    fn serve(&self, mut scratch: Scratch) {
        loop {
            wait_until(|| self.posted.load(Ordering::Acquire) || self.exit.load(Ordering::Acquire));
            if self.exit.load(Ordering::Acquire) {
                return;
            }
            let Some(job) = self.job.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() else { continue };
            // SAFETY: `posted` is still set, so the caller keeps the task alive (`Job`).
            let task = unsafe { &*job.task };
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| task(&mut scratch))).is_err() {
                self.panicked.store(true, Ordering::Relaxed);
            }
            self.posted.store(false, Ordering::Release);
            job.caller.unpark();
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.state.exit.store(true, Ordering::Release);
        self.thread.unpark();
        // The thread is between tasks (every `run` waited for its task): it ends at once.
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// [`product`] with the micro-kernel of `isa`, for the helper thread (whose code is not
/// compiled for AVX2 unless called through a function that is) and [`DenseKernels::multiply`].
///
/// # Safety
/// As [`product`]; `isa` was detected.
#[allow(clippy::too_many_arguments)]
unsafe fn product_on(isa: Isa, pack: &mut Packing, m: usize, n: usize, k: usize, alpha: f64, a: Operand, b: Operand, c: Target) {
    match isa {
        // SAFETY: the caller's contract.
        Isa::Portable => unsafe { product::<Portable>(pack, m, n, k, alpha, a, b, c) },
        // SAFETY: the caller's contract and the detected instruction set.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => unsafe { product_avx2::<Avx2Fma>(pack, m, n, k, alpha, a, b, c) },
        // SAFETY: the caller's contract and the detected instruction set.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { product_avx2::<Avx512>(pack, m, n, k, alpha, a, b, c) },
    }
}

/// # Safety
/// As [`invert_lower_column`]; `isa` was detected.
unsafe fn invert_lower_column_on(isa: Isa, scratch: &mut Scratch, x: *mut f64, l: &[f64], n: usize, nr: usize, b: usize) {
    match isa {
        // SAFETY: the caller's contract.
        Isa::Portable => unsafe { invert_lower_column::<Portable>(scratch, x, l, n, nr, b) },
        // SAFETY: the caller's contract and the detected instruction set.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => unsafe { invert_lower_column_avx2::<Avx2Fma>(scratch, x, l, n, nr, b) },
        // SAFETY: the caller's contract and the detected instruction set.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { invert_lower_column_avx2::<Avx512>(scratch, x, l, n, nr, b) },
    }
}

/// # Safety
/// As [`inverse_column`]; `isa` was detected.
unsafe fn inverse_column_on(isa: Isa, scratch: &mut Scratch, sigma: *mut f64, x: &[f64], nr: usize, b: usize) {
    match isa {
        // SAFETY: the caller's contract.
        Isa::Portable => unsafe { inverse_column::<Portable>(scratch, sigma, x, nr, b) },
        // SAFETY: the caller's contract and the detected instruction set.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => unsafe { inverse_column_avx2::<Avx2Fma>(scratch, sigma, x, nr, b) },
        // SAFETY: the caller's contract and the detected instruction set.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { inverse_column_avx2::<Avx512>(scratch, sigma, x, nr, b) },
    }
}

/// [`factor_block_column`] with the micro-kernel (and the vector loops) of `isa`.
///
/// # Safety
/// `isa` was detected.
unsafe fn factor_block_column_on(isa: Isa, scratch: &mut Scratch, panel: &mut [f64], n: usize, j0: usize, end: usize) -> bool {
    match isa {
        Isa::Portable => factor_block_column::<Portable>(scratch, panel, n, j0, end),
        // SAFETY: the detected instruction set.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => unsafe { factor_block_column_avx2::<Avx2Fma>(scratch, panel, n, j0, end) },
        // SAFETY: the detected instruction set.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { factor_block_column_avx2::<Avx512>(scratch, panel, n, j0, end) },
    }
}

// The AVX2 instances: the generic bodies inlined into functions compiled for AVX2 and FMA,
// so that their vector loops use them too (with the AVX2 or the AVX-512 micro-kernel).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn partial_cholesky_avx2<K: MicroKernel>(k: &mut DenseKernels, a: &mut [f64], n: usize, nr: usize, checkpoint: &mut Checkpoint<'_>) -> Result<bool> {
    partial_cholesky::<K>(k, a, n, nr, checkpoint)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn product_avx2<K: MicroKernel>(pack: &mut Packing, m: usize, n: usize, k: usize, alpha: f64, a: Operand, b: Operand, c: Target) {
    // SAFETY: the caller's contract.
    unsafe { product::<K>(pack, m, n, k, alpha, a, b, c) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn factor_block_column_avx2<K: MicroKernel>(scratch: &mut Scratch, panel: &mut [f64], n: usize, j0: usize, end: usize) -> bool {
    factor_block_column::<K>(scratch, panel, n, j0, end)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn invert_lower_column_avx2<K: MicroKernel>(scratch: &mut Scratch, x: *mut f64, l: &[f64], n: usize, nr: usize, b: usize) {
    // SAFETY: the caller's contract.
    unsafe { invert_lower_column::<K>(scratch, x, l, n, nr, b) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn inverse_column_avx2<K: MicroKernel>(scratch: &mut Scratch, sigma: *mut f64, x: &[f64], nr: usize, b: usize) {
    // SAFETY: the caller's contract.
    unsafe { inverse_column::<K>(scratch, sigma, x, nr, b) }
}

#[inline(always)]
fn partial_cholesky<K: MicroKernel>(kernels: &mut DenseKernels, a: &mut [f64], n: usize, nr: usize, checkpoint: &mut Checkpoint<'_>) -> Result<bool> {
    // Block columns J of width NB with one block column of lookahead: J's update by the
    // columns before J − 1 was subtracted while J − 1's panel was factored, so that J is
    // updated here by J − 1's columns only; then this thread factors J's panel while the
    // helper thread updates J + 1 by the columns before J (it idled during the panels,
    // about a tenth of the factorisation), and joins that update when done.
    for j0 in (0..nr).step_by(NB) {
        let end = (j0 + NB).min(nr);
        subtract_earlier_columns::<K>(kernels, a, n, j0.saturating_sub(NB)..j0, j0..end, checkpoint)?;
        if !factor_while_updating_next(kernels, a, n, j0..end, (end + NB).min(nr), checkpoint)? {
            return Ok(false);
        }
    }
    trailing_update::<K>(kernels, a, n, nr);
    Ok(true)
}

/// A[t0.., t0..t1] −= L[t0.., c0..c1] L[t0..t1, c0..c1]ᵀ on and below the diagonal for the
/// target columns t0..t1 and the factored columns c0..c1 (before t0): the left-looking update
/// of a block column; its rows shared with the helper thread, when there is one, from
/// [`PARALLEL_WORK`] multiply-adds; `checkpoint` asked before it (and before each block of
/// rows when shared).
///
/// # Errors
/// `Interrupted` when `checkpoint` asks to stop.
#[inline(always)]
fn subtract_earlier_columns<K: MicroKernel>(
    kernels: &mut DenseKernels, a: &mut [f64], n: usize, columns: Range<usize>, target: Range<usize>, checkpoint: &mut Checkpoint<'_>,
) -> Result<()> {
    if columns.is_empty() {
        return Ok(());
    }
    let base = Shared(a.as_mut_ptr());
    let (c0, t0) = (columns.start, target.start);
    let (m, w, k) = (n - t0, target.len(), columns.len());
    // SAFETY (of the pointers): the operands (columns c0..c1 < t0) and the target (columns
    // t0..t1, rows t0..n) are disjoint parts of `a`, within its n × n values.
    let (left, right) = unsafe {
        (Operand { data: base.get().add(c0 * n + t0), rs: 1, cs: n, lower: false }, Operand { data: base.get().add(c0 * n + t0), rs: n, cs: 1, lower: false })
    };
    let target = |top: usize| Target { data: base.get().wrapping_add(t0 * n + t0 + top), ld: n, lower: Some(top) };
    let DenseKernels { isa, scratch, helper, .. } = kernels;
    match helper {
        Some(helper) if m * w * k >= PARALLEL_WORK => {
            // By blocks of MC rows, shared with the helper thread.
            let isa = *isa;
            shared_tasks(scratch, Some(helper), m.div_ceil(MC), checkpoint, |scratch, i| {
                let top = i * MC;
                let rows = MC.min(m - top);
                let left = left.below_row(top);
                // SAFETY: rows top..top + rows of the product, written by this task only.
                unsafe { product_on(isa, &mut scratch.packing, rows, w, k, -1.0, left, right, target(top)) };
            })
        }
        _ => {
            checkpoint.check_timed()?;
            // SAFETY: as above.
            unsafe { product::<K>(&mut scratch.packing, m, w, k, -1.0, left, right, target(0)) };
            Ok(())
        }
    }
}

/// The panel of block column `panel` (j0..end) of the n × n `a`, already less its products
/// with the columns before it, factored on this thread ([`factor_block_column`]) while the
/// next block column (end..`next_end`, rows end..) is updated by the columns before j0 by
/// blocks of MC rows on the helper thread, which this thread joins when done (shared from
/// [`PARALLEL_WORK`] multiply-adds, on this thread alone below). Returns false at a pivot
/// that is not positive and finite (the update then unfinished). `checkpoint` is asked
/// before the panel and each of this thread's blocks.
///
/// # Errors
/// `Interrupted` when `checkpoint` asks to stop.
fn factor_while_updating_next(
    kernels: &mut DenseKernels, a: &mut [f64], n: usize, panel: Range<usize>, next_end: usize, checkpoint: &mut Checkpoint<'_>,
) -> Result<bool> {
    let (j0, end) = (panel.start, panel.end);
    // The factored columns (read by the update), the panel's (this thread's) and the
    // later ones (the update's target): disjoint.
    let (done, rest) = a.split_at_mut(j0 * n);
    let (panel, later) = rest.split_at_mut((end - j0) * n);
    let (m, w, k) = (n - end, next_end - end, j0);
    let (left, right) = (
        Operand { data: done.as_ptr().wrapping_add(end), rs: 1, cs: n, lower: false },
        Operand { data: done.as_ptr().wrapping_add(end), rs: n, cs: 1, lower: false },
    );
    let target = Shared(later.as_mut_ptr());
    let DenseKernels { isa, scratch, helper, .. } = kernels;
    let isa = *isa;
    let tasks = if m * w * k > 0 { m.div_ceil(MC) } else { 0 };
    let helper = helper.as_ref().filter(|_| m * w * k >= PARALLEL_WORK);
    // SAFETY: the panel is this thread's own slice; `isa` was detected.
    let factor = |scratch: &mut Scratch| unsafe { factor_block_column_on(isa, scratch, panel, n, j0, end) };
    shared_tasks_after(scratch, helper, tasks, checkpoint, factor, |scratch, i| {
        let top = i * MC;
        let rows = MC.min(m - top);
        // Rows end + top.. of the next block column (columns end.., the start of `later`).
        let target = Target { data: target.get().wrapping_add(end + top), ld: n, lower: Some(top) };
        // SAFETY: the operands (columns ..j0, rows end..n) lie in `done`, which nothing
        // writes; rows top..top + rows of the target (within `later`) are this task's only.
        unsafe { product_on(isa, &mut scratch.packing, rows, w, k, -1.0, left.below_row(top), right, target) };
    })
}

/// Block column j0..end of the n × n matrix whose columns from j0 on are `panel` (column c at
/// `panel[(c − j0) n..]`), already less its products with the columns before j0, factored
/// by sub-blocks of NB / 6 = 16 columns (so that only narrow panels are factored column by
/// column: their axpy loops cost ~4 n² multiply-adds in all), each less its products with the
/// sub-blocks before it (at most two columns of tiles, whose A is read in place: [`product`])
/// and then [`factor_panel`]. Returns false at a pivot that is not positive and finite.
#[inline(always)]
fn factor_block_column<K: MicroKernel>(scratch: &mut Scratch, panel: &mut [f64], n: usize, j0: usize, end: usize) -> bool {
    for i0 in (j0..end).step_by(NB / 6) {
        let sub_end = (i0 + NB / 6).min(end);
        if i0 > j0 {
            let base = panel.as_mut_ptr();
            // SAFETY: the operands (columns j0..i0, rows i0..n) and the target (columns
            // i0..sub_end, rows i0..n) are disjoint parts of the panel.
            unsafe {
                let left = Operand { data: base.add(i0), rs: 1, cs: n, lower: false };
                let right = Operand { data: base.add(i0), rs: n, cs: 1, lower: false };
                let target = Target { data: base.add((i0 - j0) * n + i0), ld: n, lower: Some(0) };
                product::<K>(&mut scratch.packing, n - i0, sub_end - i0, i0 - j0, -1.0, left, right, target);
            }
        }
        if !factor_panel(panel, n, j0, i0, sub_end) {
            return false;
        }
    }
    true
}

/// Columns `i0..end` of the n × n matrix whose columns from `first` on are `panel`, already
/// less their products with the columns before i0, factored column by column: column c less
/// its products with the sub-panel's earlier columns, then scaled by its pivot (the diagonal
/// block and L₂₁ at once). Returns false at a pivot that is not positive and finite.
#[inline(always)]
fn factor_panel(panel: &mut [f64], n: usize, first: usize, i0: usize, end: usize) -> bool {
    for c in i0..end {
        let (done, rest) = panel.split_at_mut((c - first) * n);
        let column = &mut rest[c..n];
        for k in i0..c {
            let factor = done[(k - first) * n + c];
            for (x, l) in column.iter_mut().zip(&done[(k - first) * n + c..(k - first) * n + n]) {
                *x -= l * factor;
            }
        }
        let pivot = column[0];
        if !(pivot > 0.0 && pivot.is_finite()) {
            return false;
        }
        let scale = 1.0 / pivot.sqrt();
        for x in column.iter_mut() {
            *x *= scale;
        }
    }
    true
}

#[inline(always)]
fn trailing_update<K: MicroKernel>(kernels: &mut DenseKernels, a: &mut [f64], n: usize, nr: usize) {
    if nr == 0 || nr == n {
        return;
    }
    let base = a.as_mut_ptr();
    // SAFETY: the operands (columns ..nr) and the target (columns nr..) are disjoint.
    unsafe {
        product::<K>(
            &mut kernels.scratch.packing,
            n - nr,
            n - nr,
            nr,
            -1.0,
            Operand { data: base.add(nr), rs: 1, cs: n, lower: false },
            Operand { data: base.add(nr), rs: n, cs: 1, lower: false },
            Target { data: base.add(nr * n + nr), ld: n, lower: Some(0) },
        );
    }
}

/// B ← L⁻¹B for the w × w lower-triangular L (element (i, j) at `l[i + j * ld_l]`) and the
/// w × m column-major B (leading dimension `ld_b`): forward substitution column by column.
#[inline(always)]
fn solve_lower_block(l: &[f64], ld_l: usize, w: usize, b: &mut [f64], ld_b: usize, m: usize) {
    for j in 0..m {
        let column = &mut b[j * ld_b..j * ld_b + w];
        for k in 0..w {
            if column[k] == 0.0 {
                // Nothing to subtract (L is finite): the identity's column j is 0 above row
                // j, which halves the diagonal blocks' inverses.
                continue;
            }
            let x = column[k] / l[k + k * ld_l];
            column[k] = x;
            for (y, l) in column[k + 1..].iter_mut().zip(&l[k + 1 + k * ld_l..w + k * ld_l]) {
                *y -= l * x;
            }
        }
    }
}

/// Block column `b` of X = L⁻¹ below their diagonal blocks (already X[J, J] =
/// L[J, J]⁻¹): X[I, J] = −X[I, I] (L[I, J..I] X[J..I, J]), block row by block row (X[J..I, J]
/// is complete when I's turn comes): two products, whose triangular operands X[J, J] (atop
/// X[J..I, J]) and X[I, I] have their zeros above the diagonal skipped (they would add
/// n² NB / 2 multiply-adds, 17% of InstEval's n³/6).
///
/// # Safety
/// `x` points to nr × nr values (column-major) that hold the diagonal blocks, `l` holds
/// n × n; no other thread writes block column `b` or the diagonal blocks.
#[inline(always)]
unsafe fn invert_lower_column<K: MicroKernel>(scratch: &mut Scratch, x: *mut f64, l: &[f64], n: usize, nr: usize, b: usize) {
    let j0 = b * NB;
    let w = NB.min(nr - j0);
    for i0 in (j0 + w..nr).step_by(NB) {
        let h = NB.min(nr - i0);
        scratch.t[..h * w].fill(0.0);
        // SAFETY: the first product reads L (another slice) and X[j0..i0, J] and writes
        // the scratch's own `t` (h × w); the second reads `t` and X[I, I] (columns i0..)
        // and writes X[I, J] (columns j0..j0 + w < i0), which neither operand touches.
        unsafe {
            let t = scratch.t.as_mut_ptr();
            product::<K>(
                &mut scratch.packing,
                h,
                w,
                i0 - j0,
                1.0,
                Operand { data: l.as_ptr().add(j0 * n + i0), rs: 1, cs: n, lower: false },
                Operand { data: x.add(j0 * nr + j0), rs: 1, cs: nr, lower: true },
                Target { data: t, ld: h, lower: None },
            );
            for j in 0..w {
                std::slice::from_raw_parts_mut(x.add((j0 + j) * nr + i0), h).fill(0.0);
            }
            product::<K>(
                &mut scratch.packing,
                h,
                w,
                h,
                -1.0,
                Operand { data: x.add(i0 * nr + i0), rs: 1, cs: nr, lower: true },
                Operand { data: t, rs: 1, cs: h, lower: false },
                Target { data: x.add(j0 * nr + i0), ld: nr, lower: None },
            );
        }
    }
}

/// Block column `b` of Σ = XᵀX (its lower triangle): Σ[I, J] = Σ_{K ≥ I} X[K, I]ᵀ
/// X[K, J] for I ≥ J.
///
/// # Safety
/// `sigma` points to nr × nr values of which no other thread writes block column `b`; `x`
/// holds nr × nr.
#[inline(always)]
unsafe fn inverse_column<K: MicroKernel>(scratch: &mut Scratch, sigma: *mut f64, x: &[f64], nr: usize, b: usize) {
    let j0 = b * NB;
    let w = NB.min(nr - j0);
    for i0 in (j0..nr).step_by(NB) {
        let h = NB.min(nr - i0);
        // SAFETY: the caller's contract: Σ[I, J] lies in block column J; `x` is another
        // slice.
        unsafe {
            for j in 0..w {
                std::slice::from_raw_parts_mut(sigma.add((j0 + j) * nr + i0), h).fill(0.0);
            }
            product::<K>(
                &mut scratch.packing,
                h,
                w,
                nr - i0,
                1.0,
                Operand { data: x.as_ptr().add(i0 * nr + i0), rs: nr, cs: 1, lower: false },
                Operand { data: x.as_ptr().add(j0 * nr + i0), rs: 1, cs: nr, lower: false },
                Target { data: sigma.add(j0 * nr + i0), ld: nr, lower: Some(i0 - j0) },
            );
        }
    }
}

/// Packs a panel of `W` lanes (A's rows or B's columns) and `depth` products: lane l of
/// product p, at `data[l * lane + p * step]`, into `packed[p * W + l]` for l < `lanes`, zeros
/// for the lanes beyond (an operand's edge). Contiguous lanes (`lane` = 1) are copied product
/// by product (W values at once when the panel is whole), contiguous products (`step` = 1)
/// lane by lane: both read memory in order (the packing took about two fifths of the
/// products' time when every value was read through its two strides).
///
/// # Safety
/// Every `data[l * lane + p * step]` with l < `lanes` and p < `depth` is readable; `packed`
/// holds `depth` · W values.
#[inline(always)]
unsafe fn pack_panel<const W: usize>(packed: &mut [f64], data: *const f64, lane: usize, step: usize, lanes: usize, depth: usize) {
    let packed = &mut packed[..depth * W];
    if lane == 1 && lanes == W {
        for (p, out) in packed.chunks_exact_mut(W).enumerate() {
            // SAFETY: the caller's contract on the W lanes of product p.
            let values: &[f64; W] = unsafe { &*data.add(p * step).cast::<[f64; W]>() };
            out.copy_from_slice(values);
        }
        return;
    }
    if lanes < W {
        packed.fill(0.0);
    }
    if step == 1 {
        for l in 0..lanes {
            // SAFETY: the caller's contract on products ..depth of lane l.
            let values = unsafe { std::slice::from_raw_parts(data.add(l * lane), depth) };
            for (out, &value) in packed.chunks_exact_mut(W).zip(values) {
                out[l] = value;
            }
        }
    } else {
        for (p, out) in packed.chunks_exact_mut(W).enumerate() {
            for (l, value) in out[..lanes].iter_mut().enumerate() {
                // SAFETY: the caller's contract.
                *value = unsafe { *data.add(l * lane + p * step) };
            }
        }
    }
}

/// C += α A B for A (m × k), B (k × n) and the target C (m × n): the operands packed in
/// blocks (KC deep, MC rows of A, NC columns of B) and multiplied tile by tile.
///
/// # Safety
/// Every element of the operands and target within these dimensions is readable (writable for
/// the target), and the target overlaps neither operand.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn product<K: MicroKernel>(pack: &mut Packing, m: usize, n: usize, k: usize, alpha: f64, a: Operand, b: Operand, c: Target) {
    let mut tile = [0.0; MR_MAX * NR_MAX];
    // With at most two columns of tiles every value of A is read at most twice: a
    // column-major A is then read in place (its whole panels), as packing it would cost about
    // as much as the multiply-adds (the narrow products of the factorisation's panels: their
    // Cholesky 25% faster).
    let in_place = a.rs == 1 && n <= 2 * K::NR;
    for jc in (0..n).step_by(NC) {
        let nc = NC.min(n - jc);
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            // B's block in panels of K::NR columns, each kc rows of K::NR values (0 beyond n).
            for (panel, packed) in pack.b.chunks_exact_mut(kc * K::NR).take(nc.div_ceil(K::NR)).enumerate() {
                let j0 = jc + panel * K::NR;
                let (data, lanes) = (b.data.wrapping_add(pc * b.rs + j0 * b.cs), (n - j0).min(K::NR));
                // SAFETY: B's rows pc..pc + kc and columns j0..j0 + lanes lie within it.
                unsafe {
                    if K::NR == NR_MAX {
                        pack_panel::<NR_MAX>(packed, data, b.cs, b.rs, lanes, kc);
                    } else {
                        pack_panel::<NR>(packed, data, b.cs, b.rs, lanes, kc);
                    }
                }
            }
            for ic in (0..m).step_by(MC) {
                let mc = MC.min(m - ic);
                if c.above_diagonal(ic, mc, jc) {
                    continue;
                }
                for (panel, packed) in pack.a.chunks_exact_mut(kc * K::MR).take(mc.div_ceil(K::MR)).enumerate() {
                    let i0 = ic + panel * K::MR;
                    let (data, lanes) = (a.data.wrapping_add(i0 * a.rs + pc * a.cs), (m - i0).min(K::MR));
                    if in_place && lanes == K::MR {
                        continue;
                    }
                    // SAFETY: A's rows i0..i0 + lanes and columns pc..pc + kc lie within it.
                    unsafe {
                        if K::MR == MR_MAX {
                            pack_panel::<MR_MAX>(packed, data, a.rs, a.cs, lanes, kc);
                        } else {
                            pack_panel::<MR>(packed, data, a.rs, a.cs, lanes, kc);
                        }
                    }
                }
                for jr in (0..nc).step_by(K::NR) {
                    let j0 = jc + jr;
                    let nr = K::NR.min(n - j0);
                    for ir in (0..mc).step_by(K::MR) {
                        let i0 = ic + ir;
                        let mr = K::MR.min(m - i0);
                        if c.above_diagonal(i0, mr, j0) {
                            continue;
                        }
                        // The products p of the tile that may be nonzero: a lower-triangular A
                        // has none past its rows' last (p > i), a lower-triangular B none
                        // before its columns' first (p < j).
                        let end = if a.lower { (i0 + K::MR).saturating_sub(pc).min(kc) } else { kc };
                        let start = if b.lower { j0.saturating_sub(pc).min(end) } else { 0 };
                        if start == end {
                            continue;
                        }
                        // SAFETY: the packed panels hold kc · K::MR and kc · K::NR values, of
                        // which the products start..end are read; A's whole panels read in
                        // place hold K::MR rows of its columns pc + start..pc + end.
                        unsafe {
                            let (panel, step) = if in_place && mr == K::MR {
                                (a.data.add(i0 + (pc + start) * a.cs), a.cs)
                            } else {
                                (pack.a.as_ptr().add(ir * kc + start * K::MR), K::MR)
                            };
                            K::tile(end - start, panel, step, pack.b.as_ptr().add(jr * kc + start * K::NR), &mut tile);
                        }
                        for jj in 0..nr {
                            let first = match c.lower {
                                Some(d) => (j0 + jj).saturating_sub(i0 + d).min(mr),
                                None => 0,
                            };
                            // SAFETY: rows i0 + first..i0 + mr of column j0 + jj lie within the
                            // target, which no operand overlaps.
                            let column = unsafe { std::slice::from_raw_parts_mut(c.data.add(i0 + first + (j0 + jj) * c.ld), mr - first) };
                            for (value, t) in column.iter_mut().zip(&tile[jj * K::MR + first..jj * K::MR + mr]) {
                                *value += alpha * t;
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numerics::interrupt::{assert_stops_at, questions, Never, StopAt};

    fn never() -> Checkpoint<'static> {
        Checkpoint::new(&Never)
    }

    /// A symmetric positive definite n × n matrix (column-major, full), from a fixed
    /// pseudo-random B: BBᵀ/n + I.
    fn spd(n: usize) -> Vec<f64> {
        let mut state = 12345u64;
        let mut b = vec![0.0; n * n];
        for v in &mut b {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            *v = (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
        }
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i + j * n] = (0..n).map(|k| b[i + k * n] * b[j + k * n]).sum::<f64>() / n as f64 + if i == j { 1.0 } else { 0.0 };
            }
        }
        a
    }

    fn isas() -> Vec<Isa> {
        Isa::available()
    }

    /// The factor, L₂₁ and the Schur complement reproduce A: L₁₁L₁₁ᵀ = A₁₁, L₂₁L₁₁ᵀ = A₂₁,
    /// S + L₂₁L₂₁ᵀ = A₂₂; then X L = I and Σ A₁₁ = I (closed-form identities).
    #[test]
    fn factor_inverse_and_schur_complement_reproduce_the_matrix() {
        for isa in isas() {
            for &(n, nr) in &[(1, 1), (5, 3), (70, 64), (131, 100), (300, 271), (400, 400)] {
                let a = spd(n);
                let mut f = a.clone();
                let mut kernels = DenseKernels::with_isa(n, usize::MAX, isa).unwrap();
                assert!(kernels.partial_cholesky(&mut f, n, nr, &mut never()).unwrap());
                let l = |i: usize, j: usize| if j <= i && j < nr { f[i + j * n] } else { 0.0 };
                for j in 0..n {
                    for i in j..n {
                        let product: f64 = (0..nr.min(j + 1)).map(|k| l(i, k) * l(j, k)).sum();
                        let rebuilt = if j >= nr { f[i + j * n] + product } else { product };
                        assert!((rebuilt - a[i + j * n]).abs() < 1e-12 * n as f64, "{isa:?} n {n} ({i}, {j}): {rebuilt} vs {}", a[i + j * n]);
                    }
                }
                let mut x = vec![0.0; nr * nr];
                kernels.invert_lower(&mut x, &f, n, nr, &mut never()).unwrap();
                for j in 0..nr {
                    for i in 0..nr {
                        let value: f64 = (0..nr).map(|k| x[i + k * nr] * l(k, j)).sum();
                        assert!((value - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12 * n as f64, "{isa:?} X L at ({i}, {j}): {value}");
                    }
                }
                let mut sigma = vec![f64::NAN; nr * nr];
                kernels.inverse_from_inverse_factor(&mut sigma, &x, nr, &mut never()).unwrap();
                let s = |i: usize, j: usize| if i >= j { sigma[i + j * nr] } else { sigma[j + i * nr] };
                for j in 0..nr {
                    for i in 0..nr {
                        let value: f64 = (0..nr).map(|k| s(i, k) * a[k + j * n]).sum();
                        assert!((value - if i == j { 1.0 } else { 0.0 }).abs() < 1e-11 * n as f64, "{isa:?} Σ A at ({i}, {j}): {value}");
                    }
                }
            }
        }
    }

    /// ‖X v‖² of sparse vectors against the dense product written out, and X's columns' norms
    /// against their sums.
    #[test]
    fn sparse_product_norms_equal_the_dense_products() {
        for isa in isas() {
            for &nr in &[5, 131, 300] {
                let a = spd(nr);
                let mut l = a.clone();
                let mut kernels = DenseKernels::with_isa(nr, usize::MAX, isa).unwrap();
                assert!(kernels.partial_cholesky(&mut l, nr, nr, &mut never()).unwrap());
                let mut x = vec![0.0; nr * nr];
                kernels.invert_lower(&mut x, &l, nr, nr, &mut never()).unwrap();
                // Vector j: rows j, j + 3, 2j + 7, ... below nr, then one row beyond nr (left out).
                let m = 40;
                let (mut starts, mut rows, mut values) = (vec![0], Vec::new(), Vec::new());
                for j in 0..m {
                    let mut r = j % nr;
                    while r < nr {
                        rows.push(r);
                        values.push(1.0 + (r + j) as f64 / 7.0);
                        r += j + 3;
                    }
                    rows.push(nr + 1);
                    values.push(f64::NAN);
                    starts.push(rows.len());
                }
                // Every third vector by the dense products (from its row of the panel), the
                // others by the sparse ones.
                let dense: Vec<bool> = (0..m).map(|j| j % 3 == 1).collect();
                let count = dense.iter().filter(|&&d| d).count();
                let mut panel = vec![0.0; count * nr];
                let mut partial = vec![f64::NAN; DenseKernels::product_norms_scratch(m, nr).iter().product()];
                let (mut norms, mut column_norms) = (vec![f64::NAN; m], vec![f64::NAN; nr]);
                kernels.sparse_product_norms(&x, nr, &starts, &rows, &values, &dense, &mut partial, &mut norms, &mut column_norms, &mut never()).unwrap();
                for (c, &norm) in column_norms.iter().enumerate() {
                    let expected: f64 = (c..nr).map(|i| x[i + c * nr].powi(2)).sum();
                    assert!((norm - expected).abs() <= 1e-12 * expected, "{isa:?} nr {nr} column {c}: {norm} vs {expected}");
                }
                let mut dense_norms = vec![f64::NAN; count];
                for (t, j) in (0..m).filter(|&j| dense[j]).enumerate() {
                    for k in starts[j]..starts[j + 1] - 1 {
                        panel[t * nr + rows[k]] = values[k];
                    }
                }
                kernels.dense_product_norms(&x, nr, &panel, &mut partial, &mut dense_norms, &mut never()).unwrap();
                let mut next_dense = dense_norms.iter();
                for j in 0..m {
                    let mut v = vec![0.0; nr];
                    for k in starts[j]..starts[j + 1] - 1 {
                        v[rows[k]] = values[k];
                    }
                    let expected: f64 = (0..nr).map(|i| (0..=i).map(|c| x[i + c * nr] * v[c]).sum::<f64>().powi(2)).sum();
                    let norm = if dense[j] {
                        assert_eq!(norms[j], 0.0, "a dense vector left out of the sparse products");
                        *next_dense.next().unwrap()
                    } else {
                        norms[j]
                    };
                    assert!((norm - expected).abs() <= 1e-12 * expected.max(1.0), "{isa:?} nr {nr} vector {j} (dense {}): {norm} vs {expected}", dense[j]);
                }
            }
        }
    }

    /// C − PᵀP against the sum written out, on and below the diagonal (above it C is kept),
    /// for orders below and above the packing's depth and the threads' work, and more rows
    /// of P than the packing holds at once.
    #[test]
    fn subtract_gram_subtracts_the_panels_products() {
        for isa in isas() {
            for &(n, k) in &[(1, 3), (7, 20), (131, 5), (300, 300), (600, 70)] {
                let c0 = spd(n);
                let panel: Vec<f64> = (0..k * n).map(|i| ((i * 7919) % 1013) as f64 / 1013.0 - 0.5).collect();
                let mut c = c0.clone();
                DenseKernels::with_isa(n, usize::MAX, isa).unwrap().subtract_gram(&mut c, n, &panel, k, &mut never()).unwrap();
                for j in 0..n {
                    for i in 0..n {
                        let expected = if i >= j { c0[i + j * n] - (0..k).map(|p| panel[p * n + i] * panel[p * n + j]).sum::<f64>() } else { c0[i + j * n] };
                        assert!(
                            (c[i + j * n] - expected).abs() <= 1e-12 * (k as f64).max(1.0),
                            "{isa:?} n {n} k {k} ({i}, {j}): {} vs {expected}",
                            c[i + j * n]
                        );
                    }
                }
            }
        }
    }

    /// C += α A B against the product written out, for strided operands and shapes on both
    /// sides of [`PARALLEL_WORK`] (from it the rows are shared with the helper thread): the
    /// same bits with two threads as with one.
    #[test]
    fn multiply_adds_the_product_written_out() {
        for isa in isas() {
            // A by rows (element (i, p) at a[i k + p]) or by columns (a[i + p m]: one column
            // or two of tiles read its whole panels in place), B by columns (b[p + j k]).
            let cases = [(1, 1, 1, false), (17, 5, 9, false), (97, 7, 300, false), (300, 100, 80, false), (250, 250, 250, false)];
            for &(m, n, k, by_columns) in
                cases.iter().chain(&[(37, 12, 50, true), (53, 5, 300, true), (16, 12, 7, true), (40, 20, 20, true), (33, 30, 9, true)])
            {
                let a: Vec<f64> = (0..m * k).map(|i| ((i * 7919) % 1013) as f64 / 1013.0 - 0.5).collect();
                let b: Vec<f64> = (0..k * n).map(|i| ((i * 104_729) % 997) as f64 / 997.0 - 0.5).collect();
                let c0: Vec<f64> = (0..m * n).map(|i| (i % 11) as f64).collect();
                let (a_rs, a_cs) = if by_columns { (1, m) } else { (k, 1) };
                let mut by_threads = Vec::new();
                for threads in [1, usize::MAX] {
                    let mut c = c0.clone();
                    DenseKernels::with_isa(m.max(n).max(k), threads, isa).unwrap().multiply((m, n, k), -0.5, (&a, a_rs, a_cs), (&b, 1, k), &mut c, m);
                    for j in 0..n {
                        for i in 0..m {
                            let expected = c0[i + j * m] - 0.5 * (0..k).map(|p| a[i * a_rs + p * a_cs] * b[p + j * k]).sum::<f64>();
                            assert!(
                                (c[i + j * m] - expected).abs() <= 1e-12 * k as f64,
                                "{isa:?} {m} x {n} x {k}, {threads} threads ({i}, {j}): {} vs {expected}",
                                c[i + j * m]
                            );
                        }
                    }
                    by_threads.push(c);
                }
                assert_eq!(by_threads[0], by_threads[1], "{isa:?} {m} x {n} x {k}: one thread and two");
            }
        }
    }

    /// `run` asks its checkpoint at least `blocks` times, and stopped at any of its
    /// questions returns `Interrupted` without asking another.
    fn asks_at_least_and_stops(what: &str, blocks: usize, run: &mut dyn FnMut(&mut Checkpoint<'_>) -> Result<()>) {
        let total = questions(&mut *run);
        assert!(total >= blocks, "{what}: {total} questions for {blocks} blocks");
        assert_stops_at(what, 1..=total, run);
    }

    /// Every kernel sized by the order asks its checkpoint at least once per block column
    /// (block of rows, item), on one thread and two, and stops at the question that says so.
    #[test]
    fn the_kernels_ask_per_block_and_stop_when_asked() {
        let (n, nr): (usize, usize) = (400, 380);
        let a = spd(n);
        let blocks = nr.div_ceil(NB);
        ONE_THREAD.with(|one| one.set(true));
        for isa in isas() {
            let mut kernels = DenseKernels::with_isa(n, usize::MAX, isa).unwrap();
            let mut l = a.clone();
            asks_at_least_and_stops("partial_cholesky", blocks, &mut |checkpoint| {
                l.copy_from_slice(&a);
                kernels.partial_cholesky(&mut l, n, nr, checkpoint).map(|positive| assert!(positive))
            });
            let mut x = vec![0.0; nr * nr];
            asks_at_least_and_stops("invert_lower", blocks, &mut |checkpoint| kernels.invert_lower(&mut x, &l, n, nr, checkpoint));
            let mut sigma = vec![0.0; nr * nr];
            asks_at_least_and_stops("inverse_from_inverse_factor", blocks, &mut |checkpoint| {
                kernels.inverse_from_inverse_factor(&mut sigma, &x, nr, checkpoint)
            });
            let panel: Vec<f64> = (0..8 * n).map(|i| (i % 13) as f64 / 13.0).collect();
            let mut c = a.clone();
            asks_at_least_and_stops("subtract_gram", n.div_ceil(MC), &mut |checkpoint| kernels.subtract_gram(&mut c, n, &panel, 8, checkpoint));
            let (mut partial, mut norms, mut column_norms) = (vec![0.0; blocks * (8 + nr)], vec![0.0; 8], vec![0.0; nr]);
            asks_at_least_and_stops("dense_product_norms", blocks, &mut |checkpoint| {
                kernels.dense_product_norms(&x, nr, &panel, &mut partial, &mut norms, checkpoint)
            });
            let (starts, rows): (Vec<usize>, Vec<usize>) = ((0..=8).map(|j| 3 * j).collect(), (0..8).flat_map(|j| [j, 100 + j, 300 + j]).collect());
            let values = vec![1.0; rows.len()];
            asks_at_least_and_stops("sparse_product_norms", blocks, &mut |checkpoint| {
                kernels.sparse_product_norms(&x, nr, &starts, &rows, &values, &[false; 8], &mut partial, &mut norms, &mut column_norms, checkpoint)
            });
            let mut data = [0.0; 30];
            asks_at_least_and_stops("for_each_chunk", 10, &mut |checkpoint| kernels.for_each_chunk(&mut data, 3, checkpoint, |_, _| ()));
        }
        // With the helper thread (which of the two takes a block varies, and on a loaded
        // machine the helper may take them all before the calling thread's second question),
        // the calling thread asks before its first block: a stop there ends both.
        ONE_THREAD.with(|one| one.set(false));
        let mut kernels = DenseKernels::new(n, usize::MAX).unwrap();
        let mut l = a.clone();
        let stop = StopAt::new(1);
        assert_eq!(kernels.partial_cholesky(&mut l, n, nr, &mut Checkpoint::asking_every_time(&stop)), Err(crate::HnmError::Interrupted));
        let mut x = vec![0.0; nr * nr];
        assert!(kernels.partial_cholesky(&mut l, n, nr, &mut never()).unwrap());
        let stop = StopAt::new(1);
        assert_eq!(kernels.invert_lower(&mut x, &l, n, nr, &mut Checkpoint::asking_every_time(&stop)), Err(crate::HnmError::Interrupted));
        for k in [1, 2] {
            // subtract_gram's product (8 rows) is below PARALLEL_WORK: this thread alone.
            let stop = StopAt::new(k);
            let c = &mut a.clone();
            assert_eq!(kernels.subtract_gram(c, n, &l[..8 * n], 8, &mut Checkpoint::asking_every_time(&stop)), Err(crate::HnmError::Interrupted));
        }
    }

    /// A task that panics on the helper thread panics the call (after the helper is done with
    /// it), and the helper serves the next call.
    #[test]
    fn a_task_that_panics_on_the_helper_panics_the_call_and_the_helper_goes_on() {
        ONE_THREAD.with(|one| one.set(false));
        let mut kernels = DenseKernels::new(PARALLEL_ORDER, usize::MAX).unwrap();
        if kernels.helper.is_none() {
            return; // one processor: no helper thread to test
        }
        let on_helper = || std::thread::current().name() == Some("hnm-dense");
        let mut data = vec![0.0; 64];
        // This thread's tasks slow, so that the helper takes some.
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            kernels.for_each_chunk(&mut data, 1, &mut never(), |_, _| {
                assert!(!on_helper(), "a task on the helper");
                std::thread::sleep(std::time::Duration::from_millis(2));
            })
        }));
        assert!(panicked.is_err(), "the helper's panic was lost");
        kernels.for_each_chunk(&mut data, 1, &mut never(), |b, chunk| chunk[0] = b as f64).unwrap();
        assert!(data.iter().enumerate().all(|(b, &v)| v == b as f64));
    }

    #[test]
    fn a_matrix_that_is_not_positive_definite_is_refused() {
        for isa in isas() {
            let n = 80;
            let mut a = spd(n);
            a[70 + 70 * n] = -1.0;
            assert!(!DenseKernels::with_isa(n, usize::MAX, isa).unwrap().partial_cholesky(&mut a, n, n, &mut never()).unwrap());
        }
    }
}

impl DenseKernels {
    /// C += Σ_g a_g b_gᵀ on and below the diagonal of the n × n column-major C, over k pairs
    /// of rows (a_g, b_g) of n values each, which `gather(first, a, b)` writes (rows
    /// first..first + len into the row-major len × n panels `a` and `b`, len at most one
    /// packed block's depth, 256): a weighted Gram matrix (b_g = m_g, a_g = w_g m_g gives Σ_g w_g m_g m_gᵀ)
    /// from rows that exist nowhere as a matrix, formed block by block (so memory stays
    /// O(256 n) whatever k) as packed products AᵀB with this module's
    /// micro-kernel, on the calling thread: about n(n + 1)/2 · k multiply-adds (whole tiles
    /// across the diagonal computed), about a fifth of the
    /// time of a scalar loop kept in registers (InstEval's 73,421 cells and 29 columns). Each
    /// entry is the sum of its blocks' sums in block order, the same on every run.
    ///
    /// # Errors
    /// `TooLarge` when the panels or the packing buffers do not fit in memory.
    ///
    /// # Panics
    /// When `c` holds fewer than n² values.
    // Inlined, with `gather`, into the caller (compiled for AVX2 by the statistics' sums).
    #[inline(always)]
    pub(crate) fn add_gathered_products(n: usize, k: usize, c: &mut [f64], gather: impl FnMut(usize, &mut [f64], &mut [f64])) -> Result<()> {
        gathered_products_on(Isa::detected(), n, k, c, gather)
    }
}

/// [`DenseKernels::add_gathered_products`] with the micro-kernel of `isa` (detected).
#[inline(always)]
fn gathered_products_on(isa: Isa, n: usize, k: usize, c: &mut [f64], mut gather: impl FnMut(usize, &mut [f64], &mut [f64])) -> Result<()> {
    assert!(c.len() >= n * n);
    if n == 0 || k == 0 {
        return Ok(());
    }
    const PANELS: &str = "the blocks of rows of a weighted cross-product";
    let depth = KC.min(k);
    let (mut a, mut b) = (filled(&[depth, n], 0.0, PANELS)?, filled(&[depth, n], 0.0, PANELS)?);
    // Packing for n rows and columns of C (at most MC and NC of them at once) and KC products.
    let mut packing =
        Packing { a: filled(&[n.min(MC).div_ceil(MR_MAX) * MR_MAX, depth], 0.0, WHAT)?, b: filled(&[depth, n.min(NC).div_ceil(NR_MAX) * NR_MAX], 0.0, WHAT)? };
    for first in (0..k).step_by(depth) {
        let len = depth.min(k - first);
        gather(first, &mut a[..len * n], &mut b[..len * n]);
        // Aᵀ (element (i, p) = a[p n + i]) and B, read in place.
        let left = Operand { data: a.as_ptr(), rs: 1, cs: n, lower: false };
        let right = Operand { data: b.as_ptr(), rs: n, cs: 1, lower: false };
        let target = Target { data: c.as_mut_ptr(), ld: n, lower: Some(0) };
        // SAFETY: the panels hold len × n values each, C (borrowed mutably) n × n and overlaps
        // neither; the packing holds blocks of min(n, MC) rows, `depth` products and
        // min(n, NC) columns; `isa` was detected.
        unsafe { product_on(isa, &mut packing, n, n, len, 1.0, left, right, target) };
    }
    Ok(())
}

#[cfg(test)]
mod gathered_tests {
    use super::*;

    #[test]
    fn gathered_products_sum_the_weighted_outer_products() {
        // k = 700 rows (two whole blocks and a part) of n = 37 columns (tiles cut at both
        // edges): C on and below the diagonal is Σ_g w_g m_g m_gᵀ summed directly, above it
        // untouched, for every instruction set.
        let (n, k) = (37, 700);
        let m = |g: usize, i: usize| ((g * 31 + i * 17) % 29) as f64 / 7.0 - 2.0;
        let w = |g: usize| 1.0 + (g % 5) as f64;
        for isa in Isa::available() {
            let mut c = vec![0.5; n * n];
            gathered_products_on(isa, n, k, &mut c, |first, a, b| {
                for (p, (ra, rb)) in a.chunks_exact_mut(n).zip(b.chunks_exact_mut(n)).enumerate() {
                    for i in 0..n {
                        rb[i] = m(first + p, i);
                        ra[i] = w(first + p) * rb[i];
                    }
                }
            })
            .unwrap();
            for j in 0..n {
                for i in 0..n {
                    let expected = 0.5 + if i >= j { (0..k).map(|g| w(g) * m(g, i) * m(g, j)).sum::<f64>() } else { 0.0 };
                    assert!((c[i + j * n] - expected).abs() <= 1e-12 * expected.abs().max(1.0), "{isa:?} ({i}, {j})");
                }
            }
        }
    }
}
