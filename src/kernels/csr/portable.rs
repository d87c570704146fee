//! The portable kernels (compiled per instruction set by `multiversion!`):
//! batch 1 as a dot product per row, larger batches in passes of vector
//! accumulators over `Xᵀ`.

use super::{CsrMatrix, SparseOut, store};
use crate::kernels::simd::{madd, multiversion};

multiversion! {
    pub(super) fn spmm_rows_auto[level](w: &CsrMatrix, rows: std::ops::Range<usize>, xt: &[f32], padded: usize, lanes: usize, out: SparseOut) => spmm_kernel
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
