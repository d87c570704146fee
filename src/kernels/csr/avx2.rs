//! The AVX2 kernels for batches 1–8, and the 8 x 8 transposes into `Xᵀ`
//! and out of the tiled product's tiles (used at the AVX-512 level too).

use super::{CsrMatrix, SparseOut, store};
use crate::kernels::matrix::MatRef;
use crate::kernels::simd::prefetch_l1;
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
