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
//! lookups are register permutes, not gathers: [`sliced`]).
//! Large batches (AVX-512 or AVX2) go 32 or 64 entries at a time through a
//! second copy of the matrix laid out in row and column blocks ([`tiled`]),
//! so a block's `Xᵀ` rows stay near while its rows pass; with many such
//! groups, each group is one rayon task. Batches of 2–8 load each
//! nonzero's `Xᵀ` row as one 4- or 8-lane vector ([`narrow`], compiled in
//! [`avx2`] and [`avx512`]); other shapes run the [`portable`] kernels.
//!
//! The SIMD level is resolved once, when the matrix is built, and every
//! product on it runs at that level. Tuning measurements: docs/tuning.md.

#[cfg(target_arch = "x86_64")]
#[macro_use]
mod narrow;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod portable;
mod sliced;
mod tiled;

use rayon::prelude::*;
use thiserror::Error;

use super::matrix::{MatMut, MatRef, SendPtr};
use super::simd::SimdLevel;
use portable::spmm_rows_auto;
#[cfg(target_arch = "x86_64")]
use sliced::SLICE_ROWS;
use sliced::SlicedCsr;
use tiled::{TILE_LANES, TILE_LANES_AVX2, TiledCsr};

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
    /// The SIMD level the products run at (detected when built).
    level: SimdLevel,
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
/// values into L1: two streams of 4-byte loads get far less of the
/// memory's bandwidth from the hardware prefetchers alone.
const STREAM_PREFETCH_AHEAD: usize = 512;

/// Below this many multiply-adds a product runs on the calling thread.
const PARALLEL_MIN_MACS: usize = 1 << 15;

impl CsrMatrix {
    /// Keeps the entries of the row-major `rows x cols` matrix `w` whose
    /// magnitude exceeds `threshold` (use 0.0 to keep every nonzero).
    pub fn from_dense(w: &[f32], rows: usize, cols: usize, threshold: f32) -> Result<CsrMatrix, CsrError> {
        Self::from_dense_at(w, rows, cols, threshold, SimdLevel::detect())
    }

    /// [`Self::from_dense`] with products at `level`, capped at the level
    /// detected (as `BsrMatrix::from_dense_at`).
    pub fn from_dense_at(w: &[f32], rows: usize, cols: usize, threshold: f32, level: SimdLevel) -> Result<CsrMatrix, CsrError> {
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
        let level = level.capped();
        let tiled = uses_tiled_product(level).then(|| Box::new(TiledCsr::new(rows, cols, &row_ptr, &col_idx, &values)));
        let sliced = if level == SimdLevel::Avx512 {
            SlicedCsr::new(rows, cols, &row_ptr, &col_idx, &values).map(Box::new)
        } else {
            None
        };
        Ok(CsrMatrix {
            rows,
            cols,
            level,
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
    /// The SIMD level its products run at.
    pub fn level(&self) -> SimdLevel {
        self.level
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
    let group = padded.min(if runs_tiled(w.level, batch) { tiled_lanes(w.level) } else { GROUP });
    let groups = padded.div_ceil(group);
    let threads = rayon::current_num_threads();
    // With many tiled groups, each group is one task (its transpose and its
    // whole product on one thread) instead of a fork-join over row blocks:
    // no join per group, and the work splits by whole groups, not by row
    // blocks rounded to block boundaries.
    let task_per_group = runs_tiled(w.level, batch) && threads > 1 && groups >= GROUPS_PER_THREAD * threads;
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
        let transpose = |(i, chunk): (usize, &mut [f32])| transpose_columns(w.level, x, g0, i * TRANSPOSE_COLUMNS, gw, chunk);
        if parallel && w.cols * gw >= PARALLEL_TRANSPOSE_MIN {
            xt.par_chunks_mut(TRANSPOSE_COLUMNS * gw).enumerate().for_each(transpose);
        } else {
            xt.chunks_mut(TRANSPOSE_COLUMNS * gw).enumerate().for_each(transpose);
        }
        let xt = &*xt;
        #[cfg(target_arch = "x86_64")]
        if runs_tiled(w.level, out.batch) {
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
fn transpose_columns(level: SimdLevel, x: MatRef, g0: usize, c0: usize, gw: usize, chunk: &mut [f32]) {
    let columns = chunk.len() / gw;
    let entries = (x.rows() - g0).min(gw);
    #[allow(unused_mut)]
    let (mut block_entries, mut block_columns) = (0, 0);
    #[cfg(target_arch = "x86_64")]
    if x.col_stride() == 1 && level >= SimdLevel::Avx2Fma {
        (block_entries, block_columns) = (entries / 8 * 8, columns / 8 * 8);
        if block_entries > 0 && block_columns > 0 {
            // SAFETY: the CPU has AVX2 (the matrix's level); entries g0 .. g0 + block_entries and
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

/// Columns of `X` per transpose chunk: the 8 x 8 transposes read a chunk's
/// columns 8 rows of `X` at a time, and short chunks make too many streams
/// for the hardware prefetchers.
const TRANSPOSE_COLUMNS: usize = 256;

/// Elements of `Xᵀ` from which it is transposed on the rayon pool.
const PARALLEL_TRANSPOSE_MIN: usize = 1 << 15;

/// Above this batch (with AVX-512 or AVX2) the product runs on the tiled copy of
/// the matrix, [`TiledCsr`]: below it the narrow kernels win.
const TILED_MIN_BATCH: usize = 16;

/// Whether a product (or a group of one) of `batch` entries runs on the
/// tiled copy: both the group width and the kernel follow from this.
fn runs_tiled(level: SimdLevel, batch: usize) -> bool {
    batch > TILED_MIN_BATCH && uses_tiled_product(level)
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
            if w.level == SimdLevel::Avx512 {
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

/// Batch entries per group of the tiled product at `level`.
fn tiled_lanes(level: SimdLevel) -> usize {
    if level == SimdLevel::Avx512 { TILE_LANES } else { TILE_LANES_AVX2 }
}

/// Whether large batches run a tiled product (so `from_dense`
/// builds the tiled form).
fn uses_tiled_product(level: SimdLevel) -> bool {
    cfg!(target_arch = "x86_64") && level >= SimdLevel::Avx2Fma
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

/// Writes `value` to `Y[b, r]` (adding to it with `accumulate`).
#[inline(always)]
fn store(out: SparseOut, b: usize, r: usize, value: f32) {
    // SAFETY: b < batch and r < rows: inside Y; each task owns its rows.
    unsafe {
        let p = out.ptr.get().add(b * out.rsy + r * out.csy);
        *p = if out.accumulate { *p + value } else { value };
    }
}

/// One task: rows `rows` of `W` against the whole (transposed, padded) batch.
fn spmm_rows(w: &CsrMatrix, rows: std::ops::Range<usize>, xt: &[f32], padded: usize, lanes: usize, out: SparseOut) {
    #[cfg(target_arch = "x86_64")]
    if w.level == SimdLevel::Avx512 {
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
    if w.level == SimdLevel::Avx2Fma {
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
    spmm_rows_auto(w.level, w, rows, xt, padded, lanes, out)
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
        let rows = 5 * tiled::ROW_BLOCK + 3;
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
