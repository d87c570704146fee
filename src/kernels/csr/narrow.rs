//! The narrow kernels' template, compiled for AVX2 and for AVX-512.

/// Batch 2–8 (`Xᵀ` is `[cols][L]`, `L` = 4 or 8): each nonzero is one
/// `L`-lane load of its `Xᵀ` row, a broadcast of its value and one FMA,
/// with four nonzeros in flight in four accumulators. (The generic path
/// does the same arithmetic but spends most of its time on indexing.)
/// Every sixteen nonzeros it prefetches the column and value streams
/// [`STREAM_PREFETCH_AHEAD`] entries ahead. Defined for the AVX-512 and
/// AVX2 modules alike (the same 128- and 256-bit instructions, compiled
/// for each).
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
