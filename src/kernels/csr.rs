//! Compressed sparse row matrices and their product with a small dense batch,
//! for the unstructured-sparsity (`csr`) mode.
//!
//! `Y (+)= X · Wᵀ` with `W` sparse (`rows x cols`, f32 values, u32 column
//! indices) and `X` a batch of `batch` dense rows. `X` is first transposed
//! into `[cols][batch]` (padded to the lane width) so that each nonzero
//! `W[r, c]` is loaded once and multiplies the whole batch column `X[:, c]`
//! in SIMD registers. Rows are split over rayon workers in ranges of equal
//! nonzero count (not equal row count), and batch 1 takes a dot-product path
//! (with AVX-512, on a copy of the matrix in slices of 16 rows whose `x`
//! lookups are register permutes, not gathers: `csr_sliced`).
//! Large batches (AVX-512 or AVX2) go 32 entries at a time through a second copy of
//! the matrix laid out in row and column blocks (`csr_tiled`), so a block's
//! `Xᵀ` rows stay near while its rows pass; with many such groups of 32, each
//! group is one rayon task. Batches of 2–8 load each nonzero's `Xᵀ` row as
//! one 4- or 8-lane vector.

use rayon::prelude::*;
use thiserror::Error;

#[cfg(target_arch = "x86_64")]
use super::csr_sliced::SLICE_ROWS;
use super::csr_sliced::SlicedCsr;
use super::csr_tiled::{TILE_LANES, TILE_LANES_AVX2, TiledCsr};
use super::matrix::{MatMut, MatRef, SendPtr};
#[cfg(target_arch = "x86_64")]
use super::simd::prefetch_l1;
use super::simd::{SimdLevel, madd, multiversion};

/// Why a CSR matrix could not be built.
#[derive(Debug, Error, PartialEq)]
pub enum CsrError {
    /// More columns than a 31-bit index (what SIMD gathers take) can address.
    #[error("{cols} columns exceed the 31-bit column index")]
    TooManyColumns { cols: usize },
}

/// A sparse matrix in compressed sparse row form.
#[derive(Debug, Clone, PartialEq)]
pub struct CsrMatrix {
    rows: usize,
    cols: usize,
    /// `row_ptr[r]..row_ptr[r + 1]` indexes row `r`'s entries.
    row_ptr: Vec<usize>,
    col_idx: Vec<u32>,
    values: Vec<f32>,
    /// The same entries in tiles, for the large-batch x86 products (built
    /// only where that product runs).
    tiled: Option<Box<TiledCsr>>,
    /// The same entries in slices of 16 rows, for the AVX-512 batch-1
    /// product (built only where it runs).
    sliced: Option<Box<SlicedCsr>>,
}

/// Entries ahead (2 KiB of each stream) at which the AVX2 batch-1 kernel
/// and the narrow kernels (batch 2-8) prefetch their column indices and
/// values into L1. With only the hardware prefetchers, two streams of
/// 4-byte loads get far less of the memory's bandwidth:
/// - AVX2 batch 1 (Zen 3, 1 thread, 7680 x 2560 at 95%): 0.54-0.58 ms
///   with, 0.79-0.89 ms without, alternated;
/// - narrow kernels (Zen 5, DeepBench's 10752 x 3584 at 90%, 31 MB, larger
///   than L3; in-process A/B, best of 12-15, the cache flushed between
///   runs): 2.4-2.5 -> 1.5-1.6 ms on 1 thread at batch 2 and 4, 1.17 ->
///   0.73 ms on 2; matrices that fit in L3 unchanged (within 5%); 256
///   entries ahead gained less, 1024 and 2048 as much.
///
/// (The AVX-512 batch-1 kernels do not prefetch: the gather kernel, left
/// for matrices narrower than a slice's window, is bound by its gathers,
/// and the same prefetch gained nothing there on Zen 5 or Zen 4.)
const STREAM_PREFETCH_AHEAD: usize = 512;

/// Below this many multiply-adds a product runs on the calling thread.
const PARALLEL_MIN_MACS: usize = 1 << 15;

impl CsrMatrix {
    /// Keeps the entries of the row-major `rows x cols` matrix `w` whose
    /// magnitude exceeds `threshold` (use 0.0 to keep every nonzero).
    pub fn from_dense(w: &[f32], rows: usize, cols: usize, threshold: f32) -> Result<CsrMatrix, CsrError> {
        if cols > i32::MAX as usize {
            return Err(CsrError::TooManyColumns { cols });
        }
        assert_eq!(w.len(), rows * cols, "dense matrix is {} long, not {rows} x {cols}", w.len());
        let mut row_ptr = Vec::with_capacity(rows + 1);
        let mut col_idx = Vec::new();
        let mut values = Vec::new();
        row_ptr.push(0);
        for row in w.chunks_exact(cols.max(1)).take(rows) {
            for (c, &v) in row.iter().enumerate() {
                if v.abs() > threshold {
                    col_idx.push(c as u32);
                    values.push(v);
                }
            }
            row_ptr.push(values.len());
        }
        row_ptr.resize(rows + 1, values.len());
        let tiled = uses_tiled_product().then(|| Box::new(TiledCsr::new(rows, cols, &row_ptr, &col_idx, &values)));
        let sliced = if SimdLevel::detect() == SimdLevel::Avx512 {
            SlicedCsr::new(rows, cols, &row_ptr, &col_idx, &values).map(Box::new)
        } else {
            None
        };
        Ok(CsrMatrix {
            rows,
            cols,
            row_ptr,
            col_idx,
            values,
            tiled,
            sliced,
        })
    }
    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Stored nonzeros.
    pub fn nnz(&self) -> usize {
        self.values.len()
    }
    /// Bytes of values, indices and row pointers: the CSR arrays only, not
    /// the tiled and sliced copies the x86 products read (each about as
    /// large again where it is built).
    pub fn bytes(&self) -> usize {
        self.values.len() * 4 + self.col_idx.len() * 4 + self.row_ptr.len() * std::mem::size_of::<usize>()
    }
    /// The dense row-major form (for tests and verification).
    pub fn to_dense(&self) -> Vec<f32> {
        let mut w = vec![0.0; self.rows * self.cols];
        for r in 0..self.rows {
            for j in self.row_ptr[r]..self.row_ptr[r + 1] {
                w[r * self.cols + self.col_idx[j] as usize] = self.values[j];
            }
        }
        w
    }
    /// The `part`-th of `parts` row ranges holding about equal nonzeros.
    fn balanced_rows(&self, part: usize, parts: usize) -> std::ops::Range<usize> {
        let nnz = self.nnz();
        let at = |i: usize| {
            if i == parts {
                self.rows
            } else {
                self.row_ptr.partition_point(|&p| p < nnz * i / parts).min(self.rows)
            }
        };
        at(part)..at(part + 1)
    }
}

/// Lanes of the batch processed together; the batch is padded to a multiple.
fn lane_width(batch: usize) -> usize {
    match batch {
        0 | 1 => 1,
        2..=4 => 4,
        5..=8 => 8,
        _ => 16,
    }
}

thread_local! {
    /// `Xᵀ` padded, reused between calls so steady-state products do not allocate.
    static XT_SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `Y = X · Wᵀ` (or `Y += X · Wᵀ` with `accumulate`): `X` is `batch x cols`
/// (any strides), `Y` is `batch x rows` (any strides). Panics on shape mismatch.
pub fn csr_matmul(x: MatRef, w: &CsrMatrix, y: &mut MatMut, accumulate: bool) {
    let batch = x.rows();
    assert_eq!(x.cols(), w.cols, "csr_matmul: X has {} columns, W has {}", x.cols(), w.cols);
    assert!(
        y.rows() == batch && y.cols() == w.rows,
        "csr_matmul: Y is {}x{}, expected {batch}x{}",
        y.rows(),
        y.cols(),
        w.rows
    );
    if batch == 0 || w.rows == 0 {
        return;
    }
    let lanes = lane_width(batch);
    let padded = batch.div_ceil(lanes) * lanes;
    let (y_ptr, rsy, csy) = y.raw();
    let out = SparseOut {
        ptr: SendPtr(y_ptr),
        rsy,
        csy,
        batch,
        accumulate,
    };
    // The batch is processed in groups of at most GROUP entries, each with
    // its own `[cols][group]` copy of Xᵀ: random column accesses then stay
    // inside one block of a few hundred pages (a block spanning the whole
    // batch would miss the TLB on nearly every nonzero).
    let group = padded.min(if runs_tiled(batch) { tiled_lanes() } else { GROUP });
    let groups = padded.div_ceil(group);
    let threads = rayon::current_num_threads();
    // With many tiled groups, each group is one task (its transpose and its
    // whole product on one thread) instead of a fork-join over row blocks:
    // no join per group, and the work splits by whole groups, not by row
    // blocks rounded to block boundaries (Zen 3, 2 threads, batch 1500: 7680
    // x 2560 and 10752 x 3584 at 95% 12-28% faster).
    let task_per_group = runs_tiled(batch) && threads > 1 && groups >= GROUPS_PER_THREAD * threads;
    let run_group = |g: usize| {
        let g0 = g * group;
        let gw = group.min(padded - g0);
        // SAFETY: row g0 is inside Y (g0 < batch since padding < one lane width).
        let shifted = SparseOut {
            ptr: SendPtr(unsafe { out.ptr.get().add(g0 * rsy) }),
            batch: (batch - g0).min(gw),
            ..out
        };
        group_product(x, w, g0, gw, lanes, shifted, !task_per_group);
    };
    for_each_task(groups, task_per_group, run_group);
}

/// Runs `task(i)` for every `i < count`: on the rayon pool when `parallel`
/// and there are several, else in order on this thread, making no rayon
/// call (which [`group_product`] relies on).
fn for_each_task(count: usize, parallel: bool, task: impl Fn(usize) + Send + Sync) {
    if parallel && count > 1 {
        (0..count).into_par_iter().for_each(task);
    } else {
        (0..count).for_each(task);
    }
}

/// Groups per thread from which each tiled group is a task of its own: at
/// 4, the last round leaves a thread idle for at most a quarter of its work.
const GROUPS_PER_THREAD: usize = 4;

/// Batch entries per group of [`csr_matmul`] (a multiple of every lane
/// width); the tiled product takes groups of its own width, [`tiled_lanes`].
const GROUP: usize = 64;

/// The product for batch entries `g0 .. g0 + gw` (`out` already points at
/// row `g0`), on the rayon pool when `parallel`. Without `parallel` it makes
/// no rayon call, so no other task can run on this thread while it holds
/// the thread's `Xᵀ` scratch.
fn group_product(x: MatRef, w: &CsrMatrix, g0: usize, gw: usize, lanes: usize, out: SparseOut, parallel: bool) {
    XT_SCRATCH.with(|scratch| {
        let mut xt = scratch.borrow_mut();
        // One spare cache line, so that Xᵀ can start on a line boundary:
        // with rows of a multiple of 16 floats, every row is then whole cache lines
        // (an unaligned 64-byte load touches two lines and costs two loads).
        if xt.len() < w.cols * gw + 16 {
            xt.resize(w.cols * gw + 16, 0.0);
        }
        let skip = xt.as_ptr().align_offset(64).min(16);
        let xt = &mut xt[skip..skip + w.cols * gw];
        // Xᵀ in chunks of TRANSPOSE_COLUMNS columns, on the pool when large
        // (done serially it is a tenth of a 2-thread product).
        let transpose = |(i, chunk): (usize, &mut [f32])| transpose_columns(x, g0, i * TRANSPOSE_COLUMNS, gw, chunk);
        if parallel && w.cols * gw >= PARALLEL_TRANSPOSE_MIN {
            xt.par_chunks_mut(TRANSPOSE_COLUMNS * gw).enumerate().for_each(transpose);
        } else {
            xt.chunks_mut(TRANSPOSE_COLUMNS * gw).enumerate().for_each(transpose);
        }
        let xt = &*xt;
        #[cfg(target_arch = "x86_64")]
        if runs_tiled(out.batch) {
            return tiled_product(w, xt, gw, out, parallel);
        }
        let parts = if !parallel || w.nnz() * out.batch < PARALLEL_MIN_MACS {
            1
        } else {
            rayon::current_num_threads()
        };
        #[cfg(target_arch = "x86_64")]
        if let (1, Some(sliced)) = (out.batch, &w.sliced) {
            return sliced_product(sliced, w.rows, xt, out, parts);
        }
        let task = |part: usize| spmm_rows(w, w.balanced_rows(part, parts), xt, gw, lanes, out);
        for_each_task(parts, true, task);
    });
}

/// Columns `c0 ..` of batch entries `g0 .. g0 + gw` of `X` into `chunk`
/// (`[columns][gw]`), zero past the end of the batch. Where `X`'s rows are
/// contiguous, whole 8 x 8 blocks go through AVX registers (element by
/// element, this copy took 6% of a 1-thread product at batch 1500).
fn transpose_columns(x: MatRef, g0: usize, c0: usize, gw: usize, chunk: &mut [f32]) {
    let columns = chunk.len() / gw;
    let entries = (x.rows() - g0).min(gw);
    #[allow(unused_mut)]
    let (mut block_entries, mut block_columns) = (0, 0);
    #[cfg(target_arch = "x86_64")]
    if x.col_stride() == 1 && SimdLevel::detect() >= SimdLevel::Avx2Fma {
        (block_entries, block_columns) = (entries / 8 * 8, columns / 8 * 8);
        if block_entries > 0 && block_columns > 0 {
            // SAFETY: AVX2 detected; entries g0 .. g0 + block_entries and
            // columns c0 .. c0 + block_columns lie inside X (contiguous
            // rows), and `chunk` holds `columns` rows of `gw` >= entries.
            unsafe { avx2::transpose_blocks(x, g0, c0, block_entries, block_columns, gw, chunk) };
        }
    }
    for (i, xt_row) in chunk.chunks_exact_mut(gw).enumerate() {
        let skip = if i < block_columns { block_entries } else { 0 };
        for (b, v) in xt_row.iter_mut().enumerate().skip(skip) {
            *v = if b < entries { x.at(g0 + b, c0 + i) } else { 0.0 };
        }
    }
}

/// Columns of `X` per transpose chunk. [`avx2::transpose_blocks`] reads a
/// chunk's columns 8 batch entries (8 rows of `X`) at a time: with chunks
/// of 16 columns, 32 rows were read a few lines each by turns, too many
/// streams for the hardware prefetchers, and the transpose took 46% of a
/// 1-thread product of a 256 x 2560 matrix (5% dense) at batch 1500.
const TRANSPOSE_COLUMNS: usize = 256;

/// Elements of `Xᵀ` from which it is transposed on the rayon pool.
const PARALLEL_TRANSPOSE_MIN: usize = 1 << 15;

/// Above this batch (with AVX-512 or AVX2) the product runs on the tiled copy of
/// the matrix, [`TiledCsr`]: below it the narrow kernels win.
const TILED_MIN_BATCH: usize = 16;

/// Whether a product (or a group of one) of `batch` entries runs on the
/// tiled copy: both the group width and the kernel follow from this.
fn runs_tiled(batch: usize) -> bool {
    batch > TILED_MIN_BATCH && uses_tiled_product()
}

/// Large-batch path: [`TiledCsr::product`] over balanced row blocks (on the
/// pool when `parallel`, else all on this thread), each finished tile
/// written to `Y` by [`write_tile`].
#[cfg(target_arch = "x86_64")]
fn tiled_product(w: &CsrMatrix, xt: &[f32], padded: usize, out: SparseOut, parallel: bool) {
    let tiled = w
        .tiled
        .as_ref()
        .expect("the tiled copy is built wherever AVX-512 or AVX2 is detected");
    let parts = if parallel { rayon::current_num_threads() } else { 1 };
    let task = |part: usize| {
        let write = |rows: std::ops::Range<usize>, tile: &[f32]| write_tile(out, rows, tile, padded);
        let blocks = TiledCsr::blocks_starting_in(w.balanced_rows(part, parts));
        // SAFETY: AVX-512F or AVX2 and FMA detected (uses_tiled_product);
        // xt is `[cols][padded]` with padded = the group width, a multiple
        // of 16 and at most tiled_lanes() (the group width on this path).
        unsafe {
            if SimdLevel::detect() == SimdLevel::Avx512 {
                tiled.product(blocks, xt, padded, write)
            } else {
                tiled.product_avx2(blocks, xt, padded, write)
            }
        };
    };
    for_each_task(parts, true, task);
}

/// Batch-1 path with AVX-512: [`SlicedCsr::product`] over `parts`
/// balanced slice ranges, each slice's sums written to `Y`'s row.
#[cfg(target_arch = "x86_64")]
fn sliced_product(sliced: &SlicedCsr, rows: usize, x: &[f32], out: SparseOut, parts: usize) {
    let task = |part: usize| {
        let write = |r0: usize, sums: &[f32; SLICE_ROWS]| {
            for (r, &sum) in (r0..rows.min(r0 + SLICE_ROWS)).zip(sums) {
                store(out, 0, r, sum);
            }
        };
        // SAFETY: the sliced copy is built only where AVX-512F is detected;
        // x is the matrix's cols floats (Xᵀ of one batch entry).
        unsafe { sliced.product(sliced.balanced_slices(part, parts), x, write) };
    };
    for_each_task(parts, true, task);
}

/// Writes a finished tile of the tiled product to `Y`: row `rows.start + i`
/// of `W` holds its `out.batch` outputs at `tile[i * stride..]`, and
/// they go to column `rows.start + i` of `Y`, a transpose. Where `Y`'s rows
/// are contiguous, whole 8 x 8 blocks are transposed in AVX registers (the
/// element-by-element copy had a tenth of a 1-thread product's samples at
/// batch 1500, the blocks about half that); the edges and other layouts go
/// one element at a time.
#[cfg(target_arch = "x86_64")]
fn write_tile(out: SparseOut, rows: std::ops::Range<usize>, tile: &[f32], stride: usize) {
    let (full_rows, full_batch) = if out.csy == 1 {
        (rows.len() / 8 * 8, out.batch / 8 * 8)
    } else {
        (0, 0)
    };
    if full_rows > 0 && full_batch > 0 {
        // SAFETY: AVX2 is present wherever the tiled product runs
        // (uses_tiled_product); the blocks lie inside the tile (full_rows
        // rows of stride >= batch floats) and inside Y (batch entries
        // and rows within this task's range, columns contiguous).
        unsafe { avx2::write_tile_blocks(out, rows.start, full_rows, full_batch, tile, stride) };
    }
    for b in 0..out.batch {
        let skip = if b < full_batch { full_rows } else { 0 };
        for (i, r) in rows.clone().enumerate().skip(skip) {
            store(out, b, r, tile[i * stride + b]);
        }
    }
}

/// Batch entries per group of the tiled product at the detected SIMD level.
fn tiled_lanes() -> usize {
    if SimdLevel::detect() == SimdLevel::Avx512 {
        TILE_LANES
    } else {
        TILE_LANES_AVX2
    }
}

/// Whether large batches run a tiled product (so `from_dense`
/// builds the tiled form).
fn uses_tiled_product() -> bool {
    cfg!(target_arch = "x86_64") && SimdLevel::detect() >= SimdLevel::Avx2Fma
}

/// Where results go.
#[derive(Clone, Copy)]
struct SparseOut {
    ptr: SendPtr,
    rsy: usize,
    csy: usize,
    batch: usize,
    accumulate: bool,
}

/// One task: rows `rows` of `W` against the whole (transposed, padded) batch.
fn spmm_rows(w: &CsrMatrix, rows: std::ops::Range<usize>, xt: &[f32], padded: usize, lanes: usize, out: SparseOut) {
    #[cfg(target_arch = "x86_64")]
    if SimdLevel::detect() == SimdLevel::Avx512 {
        if lanes == 16 {
            // SAFETY: AVX-512F is present (detected).
            unsafe { avx512::spmm16(w, rows, xt, padded, out) };
            return;
        }
        if lanes == 1 {
            // SAFETY: as above; column indices fit i32 (checked at construction).
            unsafe { avx512::spmv(w, rows, xt, out) };
            return;
        }
        if (lanes == 4 || lanes == 8) && padded == lanes {
            // SAFETY: as above (AVX-512F implies FMA on every CPU that has it,
            // and detect() checked FMA too); xt is [cols][lanes].
            unsafe {
                if lanes == 4 {
                    avx512::spmm4(w, rows, xt, out)
                } else {
                    avx512::spmm8(w, rows, xt, out)
                }
            };
            return;
        }
    }
    #[cfg(target_arch = "x86_64")]
    if SimdLevel::detect() == SimdLevel::Avx2Fma {
        if lanes == 1 {
            // SAFETY: AVX2 and FMA are present (detected); column indices
            // fit i32 (checked at construction).
            unsafe { avx2::spmv(w, rows, xt, out) };
            return;
        }
        if (lanes == 4 || lanes == 8) && padded == lanes {
            // SAFETY: as above; xt is [cols][lanes].
            unsafe {
                if lanes == 4 {
                    avx2::spmm4(w, rows, xt, out)
                } else {
                    avx2::spmm8(w, rows, xt, out)
                }
            };
            return;
        }
    }
    spmm_rows_auto(w, rows, xt, padded, lanes, out)
}

multiversion! {
    fn spmm_rows_auto(w: &CsrMatrix, rows: std::ops::Range<usize>, xt: &[f32], padded: usize, lanes: usize, out: SparseOut) => spmm_kernel
}

/// Batch 2–8 (`Xᵀ` is `[cols][L]`, `L` = 4 or 8): each nonzero is one
/// `L`-lane load of its `Xᵀ` row, a broadcast of its value and one FMA,
/// with four nonzeros in flight in four accumulators. (The generic path
/// does the same arithmetic but spends most of its time on indexing.)
/// Every sixteen nonzeros it prefetches the column and value streams
/// [`STREAM_PREFETCH_AHEAD`] entries ahead. Defined for the AVX-512 and
/// AVX2 modules alike (the same 128- and 256-bit instructions, compiled
/// for each).
#[cfg(target_arch = "x86_64")]
macro_rules! narrow_kernel {
    ($name:ident, $lanes:literal, $vec:ty, $zero:ident, $load:ident, $set1:ident, $fmadd:ident, $add:ident, $store:ident, $features:literal) => {
        #[target_feature(enable = $features)]
        pub(super) unsafe fn $name(w: &CsrMatrix, rows: std::ops::Range<usize>, xt: &[f32], out: SparseOut) {
            const L: usize = $lanes;
            let base = xt.as_ptr();
            for r in rows {
                let span = w.row_ptr[r]..w.row_ptr[r + 1];
                let (cols, vals) = (&w.col_idx[span.clone()], &w.values[span]);
                let mut acc: [$vec; 4] = [$zero(); 4];
                let full = cols.len() / 4 * 4;
                for (i, (c, v)) in cols[..full].chunks_exact(4).zip(vals[..full].chunks_exact(4)).enumerate() {
                    if i % 4 == 0 {
                        prefetch_l1(c.as_ptr().wrapping_add(super::STREAM_PREFETCH_AHEAD));
                        prefetch_l1(v.as_ptr().wrapping_add(super::STREAM_PREFETCH_AHEAD));
                    }
                    for s in 0..4 {
                        // SAFETY: c[s] < cols, so its row of L floats is inside xt.
                        let x = unsafe { $load(base.add(c[s] as usize * L)) };
                        acc[s] = $fmadd($set1(v[s]), x, acc[s]);
                    }
                }
                for (&c, &v) in cols[full..].iter().zip(&vals[full..]) {
                    // SAFETY: as above.
                    let x = unsafe { $load(base.add(c as usize * L)) };
                    acc[0] = $fmadd($set1(v), x, acc[0]);
                }
                let mut sums = [0.0f32; L];
                // SAFETY: `sums` holds L floats.
                unsafe { $store(sums.as_mut_ptr(), $add($add(acc[0], acc[1]), $add(acc[2], acc[3]))) };
                for (b, &value) in sums.iter().enumerate().take(out.batch) {
                    store(out, b, r, value);
                }
            }
        }
    };
}

/// The AVX2 kernels for batches 1–8, and the 8 x 8 transposes into `Xᵀ`
/// and out of the tiled product's tiles (used at the AVX-512 level too).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{CsrMatrix, MatRef, SparseOut, prefetch_l1, store};
    use std::arch::x86_64::*;

    narrow_kernel!(
        spmm4,
        4,
        __m128,
        _mm_setzero_ps,
        _mm_loadu_ps,
        _mm_set1_ps,
        _mm_fmadd_ps,
        _mm_add_ps,
        _mm_storeu_ps,
        "avx2,fma"
    );
    narrow_kernel!(
        spmm8,
        8,
        __m256,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_set1_ps,
        _mm256_fmadd_ps,
        _mm256_add_ps,
        _mm256_storeu_ps,
        "avx2,fma"
    );

    /// Batch 1: sixteen nonzeros per step in two accumulators, `x`
    /// gathered by column index eight at a time; the row's last few
    /// entries one by one. It prefetches its streams
    /// [`super::STREAM_PREFETCH_AHEAD`] entries ahead.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn spmv(w: &CsrMatrix, rows: std::ops::Range<usize>, x: &[f32], out: SparseOut) {
        let (cols, vals, base) = (w.col_idx.as_ptr(), w.values.as_ptr(), x.as_ptr());
        for r in rows {
            let (mut j, end) = (w.row_ptr[r], w.row_ptr[r + 1]);
            let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            // SAFETY (all loads): j..end indexes this row's entries; every
            // column index is < cols = x.len() and fits i32.
            let mut tail = 0.0f32;
            unsafe {
                while j + 16 <= end {
                    prefetch_l1(cols.add(j).wrapping_add(super::STREAM_PREFETCH_AHEAD));
                    prefetch_l1(vals.add(j).wrapping_add(super::STREAM_PREFETCH_AHEAD));
                    let i0 = _mm256_loadu_si256(cols.add(j) as *const __m256i);
                    let i1 = _mm256_loadu_si256(cols.add(j + 8) as *const __m256i);
                    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(vals.add(j)), _mm256_i32gather_ps::<4>(base, i0), acc0);
                    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(vals.add(j + 8)), _mm256_i32gather_ps::<4>(base, i1), acc1);
                    j += 16;
                }
                if j + 8 <= end {
                    let i0 = _mm256_loadu_si256(cols.add(j) as *const __m256i);
                    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(vals.add(j)), _mm256_i32gather_ps::<4>(base, i0), acc0);
                    j += 8;
                }
                while j < end {
                    tail = (*vals.add(j)).mul_add(*base.add(*cols.add(j) as usize), tail);
                    j += 1;
                }
            }
            let sum = _mm256_add_ps(acc0, acc1);
            let mut lanes = [0.0f32; 8];
            // SAFETY: `lanes` holds 8 floats.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
            let total = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
            store(out, 0, r, total + tail);
        }
    }

    /// The 8 x 8 block whose rows are `rows`, as its columns.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn transpose8(rows: [__m256; 8]) -> [__m256; 8] {
        let [r0, r1, r2, r3, r4, r5, r6, r7] = rows;
        let (t0, t1) = (_mm256_unpacklo_ps(r0, r1), _mm256_unpackhi_ps(r0, r1));
        let (t2, t3) = (_mm256_unpacklo_ps(r2, r3), _mm256_unpackhi_ps(r2, r3));
        let (t4, t5) = (_mm256_unpacklo_ps(r4, r5), _mm256_unpackhi_ps(r4, r5));
        let (t6, t7) = (_mm256_unpacklo_ps(r6, r7), _mm256_unpackhi_ps(r6, r7));
        // s_j holds column j (low half) and j + 4 (high half) of rows 0-3 or 4-7.
        let (s0, s4) = (_mm256_shuffle_ps::<0x44>(t0, t2), _mm256_shuffle_ps::<0x44>(t4, t6));
        let (s1, s5) = (_mm256_shuffle_ps::<0xEE>(t0, t2), _mm256_shuffle_ps::<0xEE>(t4, t6));
        let (s2, s6) = (_mm256_shuffle_ps::<0x44>(t1, t3), _mm256_shuffle_ps::<0x44>(t5, t7));
        let (s3, s7) = (_mm256_shuffle_ps::<0xEE>(t1, t3), _mm256_shuffle_ps::<0xEE>(t5, t7));
        [
            _mm256_permute2f128_ps::<0x20>(s0, s4),
            _mm256_permute2f128_ps::<0x20>(s1, s5),
            _mm256_permute2f128_ps::<0x20>(s2, s6),
            _mm256_permute2f128_ps::<0x20>(s3, s7),
            _mm256_permute2f128_ps::<0x31>(s0, s4),
            _mm256_permute2f128_ps::<0x31>(s1, s5),
            _mm256_permute2f128_ps::<0x31>(s2, s6),
            _mm256_permute2f128_ps::<0x31>(s3, s7),
        ]
    }

    /// The whole 8 x 8 blocks of [`super::transpose_columns`]: entries
    /// `g0 .. g0 + entries` of `X`, columns `c0 .. c0 + columns` (both
    /// counts multiples of 8), to rows `0 .. columns` of `chunk`
    /// (`[column][gw]`, entry `b` at lane `b`).
    ///
    /// # Safety
    /// AVX2 must be present, `X`'s columns must be contiguous
    /// (`col_stride` 1), those entries and columns must lie inside `X`, and
    /// `chunk` must hold `columns` rows of `gw >= entries` floats.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn transpose_blocks(x: MatRef, g0: usize, c0: usize, entries: usize, columns: usize, gw: usize, chunk: &mut [f32]) {
        debug_assert!(x.col_stride() == 1 && entries.is_multiple_of(8) && columns.is_multiple_of(8));
        debug_assert!(g0 + entries <= x.rows() && c0 + columns <= x.cols() && chunk.len() >= columns * gw && entries <= gw);
        let (data, stride, xt) = (x.data().as_ptr(), x.row_stride(), chunk.as_mut_ptr());
        for b0 in (0..entries).step_by(8) {
            for i0 in (0..columns).step_by(8) {
                // SAFETY: entries g0 + b0 .. + 8, columns c0 + i0 .. + 8 lie
                // inside X, and chunk rows i0 .. i0 + 8, lanes b0 .. b0 + 8
                // inside `chunk` (the caller's guarantee).
                unsafe {
                    let rows = std::array::from_fn(|k| _mm256_loadu_ps(data.add((g0 + b0 + k) * stride + c0 + i0)));
                    for (j, column) in transpose8(rows).into_iter().enumerate() {
                        _mm256_storeu_ps(xt.add((i0 + j) * gw + b0), column);
                    }
                }
            }
        }
    }

    /// The whole 8 x 8 blocks of [`super::write_tile`]: the first `rows`
    /// rows of the tile (rows `r0 ..` of `W`) for batch entries `0 .. batch`
    /// (both multiples of 8), transposed in registers and stored to `Y`'s
    /// contiguous rows (added to them with `out.accumulate`).
    ///
    /// # Safety
    /// AVX2 must be present, `out.csy` must be 1, the tile must hold `rows`
    /// rows of `stride` floats, and `Y`'s entries `b < batch`, columns
    /// `r0 .. r0 + rows` must belong to the caller.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn write_tile_blocks(out: SparseOut, r0: usize, rows: usize, batch: usize, tile: &[f32], stride: usize) {
        debug_assert!(out.csy == 1 && rows.is_multiple_of(8) && batch.is_multiple_of(8) && batch <= out.batch);
        debug_assert!(tile.len() >= rows.saturating_sub(1) * stride + batch);
        let t = tile.as_ptr();
        // Batch entries outer: 8 rows of Y written along at a time, not all
        // of them by turns (store streams the hardware can follow).
        for b0 in (0..batch).step_by(8) {
            for i0 in (0..rows).step_by(8) {
                // SAFETY: tile rows i0 .. i0 + 8, lanes b0 .. b0 + 8 and Y's
                // entries b0 .. b0 + 8, columns r0 + i0 .. + 8 lie inside
                // them (the caller's guarantee).
                unsafe {
                    let rows = std::array::from_fn(|k| _mm256_loadu_ps(t.add((i0 + k) * stride + b0)));
                    for (j, column) in transpose8(rows).into_iter().enumerate() {
                        let y = out.ptr.get().add((b0 + j) * out.rsy + r0 + i0);
                        let value = if out.accumulate {
                            _mm256_add_ps(_mm256_loadu_ps(y), column)
                        } else {
                            column
                        };
                        _mm256_storeu_ps(y, value);
                    }
                }
            }
        }
    }
}

/// The 16-lane SpMM written with AVX-512 intrinsics: the compiler's own
/// vectorisation of the generic kernel picks gathers over the nonzeros,
/// which is several times slower.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{CsrMatrix, SparseOut, prefetch_l1, store};
    use std::arch::x86_64::*;

    narrow_kernel!(
        spmm4,
        4,
        __m128,
        _mm_setzero_ps,
        _mm_loadu_ps,
        _mm_set1_ps,
        _mm_fmadd_ps,
        _mm_add_ps,
        _mm_storeu_ps,
        "avx512f,fma"
    );
    narrow_kernel!(
        spmm8,
        8,
        __m256,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_set1_ps,
        _mm256_fmadd_ps,
        _mm256_add_ps,
        _mm256_storeu_ps,
        "avx512f,fma"
    );

    /// Batch 1 for matrices narrower than [`crate::kernels::csr_sliced::WINDOW`]
    /// (the others take the sliced copy): sixteen nonzeros per step, `x`
    /// gathered by column index.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn spmv(w: &CsrMatrix, rows: std::ops::Range<usize>, x: &[f32], out: SparseOut) {
        let (cols, vals, base) = (w.col_idx.as_ptr(), w.values.as_ptr(), x.as_ptr());
        for r in rows {
            let (mut j, end) = (w.row_ptr[r], w.row_ptr[r + 1]);
            let (mut acc0, mut acc1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
            // SAFETY (all loads): j..end indexes this row's entries; every
            // column index is < cols = x.len() and fits i32.
            unsafe {
                while j + 32 <= end {
                    let i0 = _mm512_loadu_si512(cols.add(j) as *const _);
                    let i1 = _mm512_loadu_si512(cols.add(j + 16) as *const _);
                    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(vals.add(j)), _mm512_i32gather_ps::<4>(i0, base as *const _), acc0);
                    acc1 = _mm512_fmadd_ps(
                        _mm512_loadu_ps(vals.add(j + 16)),
                        _mm512_i32gather_ps::<4>(i1, base as *const _),
                        acc1,
                    );
                    j += 32;
                }
                while j < end {
                    let mask: __mmask16 = if end - j >= 16 { 0xFFFF } else { (1u16 << (end - j)) - 1 };
                    let idx = _mm512_maskz_loadu_epi32(mask, cols.add(j) as *const _);
                    let v = _mm512_maskz_loadu_ps(mask, vals.add(j));
                    let xs = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, idx, base as *const _);
                    acc0 = _mm512_fmadd_ps(v, xs, acc0);
                    j += 16;
                }
            }
            store(out, 0, r, _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)));
        }
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn spmm16(w: &CsrMatrix, rows: std::ops::Range<usize>, xt: &[f32], padded: usize, out: SparseOut) {
        // SAFETY: forwarded from the caller.
        unsafe { run(w, rows, xt, padded, out) }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn run(w: &CsrMatrix, rows: std::ops::Range<usize>, xt: &[f32], padded: usize, out: SparseOut) {
        let chunks = padded / 16;
        let mut ch0 = 0;
        while ch0 < chunks {
            let left = chunks - ch0;
            // SAFETY (all arms): the caller guarantees AVX-512F; pass reads
            // stay inside xt (chunks ch0.. < padded / 16).
            let width = unsafe {
                match left {
                    8.. => pass::<8, 1>(w, rows.clone(), xt, padded, ch0, out),
                    4..=7 => pass::<4, 1>(w, rows.clone(), xt, padded, ch0, out),
                    2..=3 => pass::<2, 2>(w, rows.clone(), xt, padded, ch0, out),
                    _ => pass::<1, 4>(w, rows.clone(), xt, padded, ch0, out),
                }
            };
            ch0 += width;
        }
    }

    /// Batch chunks `ch0 .. ch0 + CH` (16 entries each); `U` nonzeros in
    /// flight. Returns `CH`.
    #[target_feature(enable = "avx512f")]
    unsafe fn pass<const CH: usize, const U: usize>(
        w: &CsrMatrix,
        rows: std::ops::Range<usize>,
        xt: &[f32],
        padded: usize,
        ch0: usize,
        out: SparseOut,
    ) -> usize {
        let base = xt.as_ptr();
        for r in rows {
            let span = w.row_ptr[r]..w.row_ptr[r + 1];
            let (cols, vals) = (&w.col_idx[span.clone()], &w.values[span]);
            let mut acc = [[_mm512_setzero_ps(); CH]; U];
            let full = cols.len() / U * U;
            let mut j = 0;
            while j < full {
                for (u, acc_u) in acc.iter_mut().enumerate() {
                    let v = _mm512_set1_ps(vals[j + u]);
                    // SAFETY: column < cols, chunk < padded / 16.
                    let x = unsafe { base.add(cols[j + u] as usize * padded + ch0 * 16) };
                    for (ch, a) in acc_u.iter_mut().enumerate() {
                        *a = _mm512_fmadd_ps(v, unsafe { _mm512_loadu_ps(x.add(ch * 16)) }, *a);
                    }
                }
                j += U;
            }
            for j in full..cols.len() {
                let v = _mm512_set1_ps(vals[j]);
                let x = unsafe { base.add(cols[j] as usize * padded + ch0 * 16) };
                for (ch, a) in acc[0].iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(v, unsafe { _mm512_loadu_ps(x.add(ch * 16)) }, *a);
                }
            }
            let mut lanes = [0.0f32; 16];
            for ch in 0..CH {
                let mut sum = acc[0][ch];
                for acc_u in acc.iter().skip(1) {
                    sum = _mm512_add_ps(sum, acc_u[ch]);
                }
                unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), sum) };
                for (l, &value) in lanes.iter().enumerate() {
                    let b = (ch0 + ch) * 16 + l;
                    if b < out.batch {
                        store(out, b, r, value);
                    }
                }
            }
        }
        CH
    }
}

#[inline(always)]
fn spmm_kernel<const FUSED: bool>(w: &CsrMatrix, rows: std::ops::Range<usize>, xt: &[f32], padded: usize, lanes: usize, out: SparseOut) {
    match lanes {
        1 => spmv_lanes::<FUSED>(w, rows, xt, out),
        4 => spmm_lanes::<4, FUSED>(w, rows, xt, padded, out),
        8 => spmm_lanes::<8, FUSED>(w, rows, xt, padded, out),
        _ => spmm_lanes::<16, FUSED>(w, rows, xt, padded, out),
    }
}

/// Writes `value` to `Y[b, r]` (adding to it with `accumulate`).
#[inline(always)]
fn store(out: SparseOut, b: usize, r: usize, value: f32) {
    // SAFETY: b < batch and r < rows: inside Y; each task owns its rows.
    unsafe {
        let p = out.ptr.get().add(b * out.rsy + r * out.csy);
        *p = if out.accumulate { *p + value } else { value };
    }
}

/// Batch 1: a sparse dot product per row, four partial sums for latency.
#[inline(always)]
fn spmv_lanes<const FUSED: bool>(w: &CsrMatrix, rows: std::ops::Range<usize>, x: &[f32], out: SparseOut) {
    for r in rows {
        let span = w.row_ptr[r]..w.row_ptr[r + 1];
        let (cols, vals) = (&w.col_idx[span.clone()], &w.values[span]);
        let mut acc = [0.0f32; 4];
        let mut chunks = cols.chunks_exact(4).zip(vals.chunks_exact(4));
        for (c, v) in &mut chunks {
            for l in 0..4 {
                acc[l] = madd::<FUSED>(v[l], x[c[l] as usize], acc[l]);
            }
        }
        let tail = cols.len() / 4 * 4;
        for j in tail..cols.len() {
            acc[0] = madd::<FUSED>(vals[j], x[cols[j] as usize], acc[0]);
        }
        store(out, 0, r, (acc[0] + acc[1]) + (acc[2] + acc[3]));
    }
}

/// Batch > 1: each row of `W` against the batch in passes of up to
/// `16 · L` batch entries. Within a pass every nonzero `W[r, c]` multiplies
/// the contiguous slice `Xᵀ[c, b0..]` into `CH` vector accumulators; narrow
/// passes keep `U` copies of the accumulators (`U` nonzeros in flight) so the
/// multiply-add latency never serialises a row.
#[inline(always)]
fn spmm_lanes<const L: usize, const FUSED: bool>(w: &CsrMatrix, rows: std::ops::Range<usize>, xt: &[f32], padded: usize, out: SparseOut) {
    let chunks = padded / L;
    let mut b0 = 0;
    while b0 < padded {
        let left = chunks - b0 / L;
        match left {
            16.. => spmm_pass::<L, 16, 1, FUSED>(w, rows.clone(), xt, padded, b0, out),
            8..=15 => spmm_pass::<L, 8, 1, FUSED>(w, rows.clone(), xt, padded, b0, out),
            4..=7 => spmm_pass::<L, 4, 1, FUSED>(w, rows.clone(), xt, padded, b0, out),
            2..=3 => spmm_pass::<L, 2, 2, FUSED>(w, rows.clone(), xt, padded, b0, out),
            _ => spmm_pass::<L, 1, 4, FUSED>(w, rows.clone(), xt, padded, b0, out),
        }
        b0 += L * match left {
            16.. => 16,
            8..=15 => 8,
            4..=7 => 4,
            2..=3 => 2,
            _ => 1,
        };
    }
}

/// One pass of [`spmm_lanes`] over batch entries `b0 .. b0 + CH · L`.
// Lane loops index several arrays in step; iterators would hide that.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn spmm_pass<const L: usize, const CH: usize, const U: usize, const FUSED: bool>(
    w: &CsrMatrix,
    rows: std::ops::Range<usize>,
    xt: &[f32],
    padded: usize,
    b0: usize,
    out: SparseOut,
) {
    for r in rows {
        let span = w.row_ptr[r]..w.row_ptr[r + 1];
        let (cols, vals) = (&w.col_idx[span.clone()], &w.values[span]);
        let mut acc = [[[0.0f32; L]; CH]; U];
        let full = cols.len() / U * U;
        for j in (0..full).step_by(U) {
            for u in 0..U {
                let (c, v) = (cols[j + u] as usize, vals[j + u]);
                let x = &xt[c * padded + b0..c * padded + b0 + CH * L];
                for ch in 0..CH {
                    let xs: &[f32; L] = x[ch * L..(ch + 1) * L].try_into().unwrap();
                    for l in 0..L {
                        acc[u][ch][l] = madd::<FUSED>(v, xs[l], acc[u][ch][l]);
                    }
                }
            }
        }
        for j in full..cols.len() {
            let (c, v) = (cols[j] as usize, vals[j]);
            let x = &xt[c * padded + b0..c * padded + b0 + CH * L];
            for ch in 0..CH {
                let xs: &[f32; L] = x[ch * L..(ch + 1) * L].try_into().unwrap();
                for l in 0..L {
                    acc[0][ch][l] = madd::<FUSED>(v, xs[l], acc[0][ch][l]);
                }
            }
        }
        for ch in 0..CH {
            for l in 0..L {
                let b = b0 + ch * L + l;
                if b < out.batch {
                    let sum = (0..U).map(|u| acc[u][ch][l]).fold(0.0, |s, a| s + a);
                    store(out, b, r, sum);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_counts() {
        let w = vec![0.0, 1.5, 0.0, -2.0, 0.0, 0.0, 0.0, 0.0, 3.0];
        let m = CsrMatrix::from_dense(&w, 3, 3, 0.0).unwrap();
        assert_eq!(
            (m.nnz(), m.row_ptr.clone(), m.col_idx.clone()),
            (3, vec![0, 1, 2, 3], vec![1, 0, 2])
        );
        assert_eq!(m.to_dense(), w);
        let thresholded = CsrMatrix::from_dense(&w, 3, 3, 1.6).unwrap();
        assert_eq!(thresholded.nnz(), 2);
    }

    #[test]
    fn balanced_row_blocks_cover_every_block_once() {
        // All entries in the first and last blocks: the split must still cover the middle.
        let rows = 5 * crate::kernels::csr_tiled::ROW_BLOCK + 3;
        let mut w = vec![0.0; rows * 4];
        for r in (0..10).chain(rows - 2..rows) {
            w[r * 4..(r + 1) * 4].fill(1.0);
        }
        let m = CsrMatrix::from_dense(&w, rows, 4, 0.0).unwrap();
        for parts in 1..5 {
            let ranges: Vec<_> = (0..parts)
                .map(|p| TiledCsr::blocks_starting_in(m.balanced_rows(p, parts)))
                .collect();
            assert_eq!((ranges[0].start, ranges[parts - 1].end), (0, 6), "{parts} parts: {ranges:?}");
            assert!(ranges.windows(2).all(|w| w[0].end == w[1].start), "{parts} parts: {ranges:?}");
        }
        let empty = CsrMatrix::from_dense(&[], 0, 3, 0.0).unwrap();
        assert_eq!(TiledCsr::blocks_starting_in(empty.balanced_rows(0, 2)), 0..0);
    }

    #[test]
    fn balanced_ranges_cover_all_rows() {
        let mut w = vec![0.0; 10 * 4];
        w[0..4].fill(1.0); // one dense row, the rest sparse
        w[39] = 1.0;
        let m = CsrMatrix::from_dense(&w, 10, 4, 0.0).unwrap();
        for parts in 1..5 {
            let ranges: Vec<_> = (0..parts).map(|p| m.balanced_rows(p, parts)).collect();
            assert_eq!(ranges[0].start, 0);
            assert_eq!(ranges[parts - 1].end, 10);
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].end, pair[1].start);
            }
        }
    }
}
