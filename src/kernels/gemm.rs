//! General f32 matrix product `C = A·B` (or `C += A·B`) on strided views,
//! parallelised with rayon.
//!
//! Large products are cut into a grid of output blocks, one per rayon worker,
//! and each block is computed by `matrixmultiply::sgemm`. Products with one to
//! four rows of `A` (batch-1..4 inference: a matrix-vector product in
//! disguise) take a dedicated streaming path, because a general GEMM spends
//! most of its time packing `B` there.

use rayon::prelude::*;

use super::matrix::{MatMut, MatRef, SendPtr, split_ranges};
use super::simd::{madd, multiversion};

/// Below this many multiply-adds a product runs on the calling thread:
/// waking rayon workers costs more than it saves.
const PARALLEL_MIN_MACS: usize = 1 << 16;

/// Largest row count that takes the skinny (matrix-vector) path.
pub const SKINNY_MAX_ROWS: usize = 4;

/// `C = A·B` (`accumulate = false`) or `C += A·B` (`accumulate = true`).
///
/// Any strides are accepted. Panics if the shapes do not chain (`A` is
/// `m x k`, `B` is `k x n`, `C` is `m x n`): that is a caller bug.
pub fn gemm(a: MatRef, b: MatRef, c: &mut MatMut, accumulate: bool) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    assert_eq!(b.rows(), k, "gemm: A is {m}x{k} but B has {} rows", b.rows());
    assert!(
        c.rows() == m && c.cols() == n,
        "gemm: C is {}x{}, expected {m}x{n}",
        c.rows(),
        c.cols()
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    *c.at_mut(i, j) = 0.0;
                }
            }
        }
        return;
    }
    if m <= SKINNY_MAX_ROWS {
        if a.col_stride() == 1 && b.row_stride() == 1 {
            return skinny_dot(a, b, c, accumulate);
        }
        if b.col_stride() == 1 && c.col_stride() == 1 {
            return skinny_axpy(a, b, c, accumulate);
        }
    }
    blocked_sgemm(a, b, c, accumulate);
}

/// How many parallel parts a product of `macs` multiply-adds deserves.
fn parallel_parts(macs: usize) -> usize {
    if macs < PARALLEL_MIN_MACS {
        1
    } else {
        rayon::current_num_threads()
    }
}

/// Picks a `tiles_m x tiles_n` grid with `tiles_m * tiles_n` equal to the
/// worker count (or fewer when the matrix is small), making blocks as square
/// as the factorisation allows so each block packs as little as possible.
fn tile_grid(m: usize, n: usize, workers: usize) -> (usize, usize) {
    let mut best = (1, 1);
    let mut best_score = f64::INFINITY;
    for tm in 1..=workers {
        if !workers.is_multiple_of(tm) {
            continue;
        }
        let tn = workers / tm;
        if tm > m.div_ceil(8).max(1) || tn > n.div_ceil(8).max(1) {
            continue;
        }
        let block_m = m as f64 / tm as f64;
        let block_n = n as f64 / tn as f64;
        let score = (block_m / block_n).ln().abs();
        if score < best_score {
            best_score = score;
            best = (tm, tn);
        }
    }
    best
}

/// The general path: a grid of blocks, each one `matrixmultiply::sgemm` call.
fn blocked_sgemm(a: MatRef, b: MatRef, c: &mut MatMut, accumulate: bool) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    let (tm, tn) = tile_grid(m, n, parallel_parts(m * n * k));
    let rows = split_ranges(m, tm, 8);
    let cols = split_ranges(n, tn, 16);
    let (c_ptr, rsc, csc) = c.raw();
    let c_ptr = SendPtr(c_ptr);
    let beta = if accumulate { 1.0 } else { 0.0 };
    let run_block = |ri: &std::ops::Range<usize>, cj: &std::ops::Range<usize>| {
        // SAFETY: the views were bounds-checked on construction; each block
        // addresses a disjoint part of C (MatMut guarantees no aliasing), and
        // A/B are only read.
        unsafe {
            matrixmultiply::sgemm(
                ri.len(),
                k,
                cj.len(),
                1.0,
                a.data().as_ptr().add(ri.start * a.row_stride()),
                a.row_stride() as isize,
                a.col_stride() as isize,
                b.data().as_ptr().add(cj.start * b.col_stride()),
                b.row_stride() as isize,
                b.col_stride() as isize,
                beta,
                c_ptr.get().add(ri.start * rsc + cj.start * csc),
                rsc as isize,
                csc as isize,
            );
        }
    };
    if rows.len() * cols.len() == 1 {
        run_block(&rows[0], &cols[0]);
    } else {
        let blocks: Vec<_> = rows.iter().flat_map(|r| cols.iter().map(move |c| (r.clone(), c.clone()))).collect();
        blocks.par_iter().for_each(|(r, c)| run_block(r, c));
    }
}

/// Skinny path for `B` whose columns are contiguous (typically `Wᵀ` for a
/// row-major weight `W`): every output is a dot product of an `A` row with a
/// `W` row, and each `W` row is streamed from memory exactly once.
fn skinny_dot(a: MatRef, b: MatRef, c: &mut MatMut, accumulate: bool) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    let a_rows: Vec<&[f32]> = (0..m).map(|i| a.row(i).expect("A rows are contiguous")).collect();
    let (c_ptr, rsc, csc) = c.raw();
    let c_ptr = SendPtr(c_ptr);
    let ldb = b.col_stride();
    let bdata = b.data();
    let ranges = split_ranges(n, parallel_parts(m * n * k), 64);
    ranges.par_iter().for_each(|cols| {
        let out = DotOut {
            ptr: c_ptr,
            rsc,
            csc,
            accumulate,
        };
        dot_task(&a_rows, bdata, ldb, cols.clone(), out);
    });
}

multiversion! {
    /// One task of [`skinny_dot`]: columns `cols` of `C`.
    fn dot_task(a_rows: &[&[f32]], bdata: &[f32], ldb: usize, cols: std::ops::Range<usize>, out: DotOut) => dot_task_kernel
}

#[inline(always)]
fn dot_task_kernel<const FUSED: bool>(a_rows: &[&[f32]], bdata: &[f32], ldb: usize, cols: std::ops::Range<usize>, out: DotOut) {
    match a_rows.len() {
        1 => dot_columns::<1, FUSED>(a_rows, bdata, ldb, cols, out),
        2 => dot_columns::<2, FUSED>(a_rows, bdata, ldb, cols, out),
        3 => dot_columns::<3, FUSED>(a_rows, bdata, ldb, cols, out),
        _ => dot_columns::<4, FUSED>(a_rows, bdata, ldb, cols, out),
    }
}

/// Where [`dot_columns`] writes its results.
#[derive(Clone, Copy)]
struct DotOut {
    ptr: SendPtr,
    rsc: usize,
    csc: usize,
    accumulate: bool,
}

/// All output columns `cols` of a skinny product, [`DOT_COLS`] at a time.
#[inline(always)]
fn dot_columns<const M: usize, const FUSED: bool>(a_rows: &[&[f32]], bdata: &[f32], ldb: usize, cols: std::ops::Range<usize>, out: DotOut) {
    let k = a_rows[0].len();
    let mut j = cols.start;
    while j < cols.end {
        let width = (cols.end - j).min(DOT_COLS);
        let wrows: [&[f32]; DOT_COLS] = std::array::from_fn(|q| {
            let col = j + q.min(width - 1);
            &bdata[col * ldb..col * ldb + k]
        });
        let sums = dot_block::<M, FUSED>(a_rows, &wrows);
        for (i, row) in sums.iter().enumerate() {
            for (q, &s) in row.iter().enumerate().take(width) {
                // SAFETY: (i, j + q) lies inside C, in this task's columns.
                unsafe {
                    let p = out.ptr.get().add(i * out.rsc + (j + q) * out.csc);
                    *p = if out.accumulate { *p + s } else { s };
                }
            }
        }
        j += width;
    }
}

/// Columns of `B` (rows of `W`) processed together by [`dot_block`].
const DOT_COLS: usize = 4;
/// SIMD lanes per partial sum in [`dot_block`].
const LANES: usize = 16;

/// `sums[i][q] = dot(a_rows[i], w_rows[q])` for `M` rows and [`DOT_COLS`]
/// columns at once: each loaded `W` element feeds `M` multiply-adds and each
/// `A` element `DOT_COLS` of them.
#[inline(always)]
fn dot_block<const M: usize, const FUSED: bool>(a_rows: &[&[f32]], w_rows: &[&[f32]; DOT_COLS]) -> [[f32; DOT_COLS]; M] {
    let k = w_rows[0].len();
    let a: [&[f32]; M] = std::array::from_fn(|i| &a_rows[i][..k]);
    let mut acc = [[[0.0f32; LANES]; DOT_COLS]; M];
    let full = k / LANES * LANES;
    let mut p = 0;
    while p < full {
        let w: [&[f32; LANES]; DOT_COLS] = std::array::from_fn(|q| w_rows[q][p..p + LANES].try_into().unwrap());
        for i in 0..M {
            let x: &[f32; LANES] = a[i][p..p + LANES].try_into().unwrap();
            for q in 0..DOT_COLS {
                for l in 0..LANES {
                    acc[i][q][l] = madd::<FUSED>(x[l], w[q][l], acc[i][q][l]);
                }
            }
        }
        p += LANES;
    }
    let mut sums = [[0.0f32; DOT_COLS]; M];
    for i in 0..M {
        for q in 0..DOT_COLS {
            let mut s = horizontal_sum(&acc[i][q]);
            for t in full..k {
                s = madd::<FUSED>(a[i][t], w_rows[q][t], s);
            }
            sums[i][q] = s;
        }
    }
    sums
}

/// Pairwise sum of the lanes (a balanced tree keeps rounding small).
#[inline(always)]
fn horizontal_sum(v: &[f32; LANES]) -> f32 {
    let mut half = *v;
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for l in 0..width {
            half[l] += half[l + width];
        }
    }
    half[0]
}

/// Columns of `C` one task of [`skinny_axpy`] keeps in its accumulator.
const AXPY_COLS: usize = 256;

/// Skinny path for `B` whose rows are contiguous: `C[i, :] += A[i, p] · B[p, :]`
/// over a block of columns held in a local accumulator, so `B` is streamed
/// once, row by row.
fn skinny_axpy(a: MatRef, b: MatRef, c: &mut MatMut, accumulate: bool) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    let (c_ptr, rsc, _) = c.raw();
    let c_ptr = SendPtr(c_ptr);
    let ranges = split_ranges(n, parallel_parts(m * n * k), 64);
    ranges.par_iter().for_each(|cols| {
        axpy_task(a, b, cols.clone(), c_ptr, rsc, accumulate);
    });
}

multiversion! {
    /// One task of [`skinny_axpy`]: columns `cols` of `C`.
    fn axpy_task(a: MatRef, b: MatRef, cols: std::ops::Range<usize>, c_ptr: SendPtr, rsc: usize, accumulate: bool) => axpy_columns
}

/// All output columns `cols` of a skinny product, [`AXPY_COLS`] at a time.
#[inline(always)]
fn axpy_columns<const FUSED: bool>(a: MatRef, b: MatRef, cols: std::ops::Range<usize>, c_ptr: SendPtr, rsc: usize, accumulate: bool) {
    let mut j = cols.start;
    while j < cols.end {
        let width = (cols.end - j).min(AXPY_COLS);
        let mut acc = [[0.0f32; AXPY_COLS]; SKINNY_MAX_ROWS];
        axpy_block::<FUSED>(a, b, j, width, &mut acc);
        for (i, row) in acc.iter().enumerate().take(a.rows()) {
            // SAFETY: row i, columns j..j+width lie in C and in this task's range.
            let out = unsafe { std::slice::from_raw_parts_mut(c_ptr.get().add(i * rsc + j), width) };
            for (o, &s) in out.iter_mut().zip(&row[..width]) {
                *o = if accumulate { *o + s } else { s };
            }
        }
        j += width;
    }
}

/// Accumulates `A · B[:, j..j+width]` into `acc` (rows of `B` contiguous).
#[inline(always)]
fn axpy_block<const FUSED: bool>(a: MatRef, b: MatRef, j: usize, width: usize, acc: &mut [[f32; AXPY_COLS]; SKINNY_MAX_ROWS]) {
    let bdata = b.data();
    for p in 0..a.cols() {
        let brow = &bdata[p * b.row_stride() + j..p * b.row_stride() + j + width];
        for (i, acc_row) in acc.iter_mut().enumerate().take(a.rows()) {
            let x = a.at(i, p);
            for (s, &w) in acc_row[..width].iter_mut().zip(brow) {
                *s = madd::<FUSED>(x, w, *s);
            }
        }
    }
}

/// The plain triple loop with f64 accumulation: the reference every fast
/// path is tested against. Same contract as [`gemm`].
pub fn gemm_reference(a: MatRef, b: MatRef, c: &mut MatMut, accumulate: bool) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    assert_eq!(b.rows(), k);
    assert!(c.rows() == m && c.cols() == n);
    for i in 0..m {
        for j in 0..n {
            let mut s = if accumulate { c.at(i, j) as f64 } else { 0.0 };
            for p in 0..k {
                s += a.at(i, p) as f64 * b.at(p, j) as f64;
            }
            *c.at_mut(i, j) = s as f32;
        }
    }
}
