//! The AVX-512 kernels: batch 1 (gathers, for matrices narrower than the
//! sliced copy's window), batches 4 and 8, and the 16-lane SpMM, written
//! with intrinsics because the compiler's own vectorisation of the generic
//! kernel picks gathers over the nonzeros, several times slower.

use super::{CsrMatrix, SparseOut, store};
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
