//! The block kernel's template, compiled for 512-, 256- and 128-bit vectors
//! (see `layout.rs` for the sub-tiles it reads).

/// Defines `$name::<CP, G, B>(job, block_row, pass, b0, sums)`: one pass of
/// one block row (`G` sub-tiles of `lanes / CP` rows) against batch entries
/// `b0 .. b0 + B`, its `B x RP` sums written to `sums` (entry-major).
///
/// Per step of `CP` columns it loads the step's `G` weight vectors, then for
/// each batch entry one input vector (`$bcast::<CP>`: the entry's `CP`
/// inputs, each repeated across its sub-tile's rows) and does `G`
/// multiply-adds. At the end, `log2(CP)` rounds of `$pairsum` (adjacent
/// lanes of two vectors added, the first vector's sums in the low half)
/// leave each row's sum in one lane, in entry-major row order.
macro_rules! block_kernel {
    ($name:ident, $vec:ty, $lanes:literal, $features:literal, $zero:ident, $load:ident, $fmadd:ident, $store:ident, $bcast:ident, $pairsum:ident) => {
        #[target_feature(enable = $features)]
        pub(super) unsafe fn $name<const CP: usize, const G: usize, const B: usize>(
            job: &Job,
            block_row: usize,
            pass: usize,
            b0: usize,
            sums: &mut Sums,
        ) {
            const L: usize = $lanes;
            const { assert!(B * G <= MAX_ACCUMULATORS && CP.is_power_of_two() && CP <= L) };
            let mut acc = [[$zero(); G]; B];
            let blocks = job.block_ptr[block_row]..job.block_ptr[block_row + 1];
            // SAFETY: `job` guarantees (Job's invariants) that every block of
            // the row has `block_len` values, that a pass's steps lie inside
            // its block, and that the inputs of every step read (`groups`
            // steps of `CP` columns, fewer in the edge block column) lie
            // inside rows `b0 .. b0 + B` of `job.x`; the caller passes a
            // tile inside the batch.
            unsafe {
                let xb = job.x.as_ptr().wrapping_add(b0 * job.rsx);
                for k in blocks {
                    let bc = *job.block_col.get_unchecked(k) as usize;
                    let steps = if bc == job.edge_col { job.edge_steps } else { job.steps };
                    let mut w = job.values.as_ptr().add(k * job.block_len + pass * job.pass_len);
                    let mut x = xb.add(bc * job.c);
                    for _ in 0..steps {
                        let mut wv = [$zero(); G];
                        for (g, wv) in wv.iter_mut().enumerate() {
                            *wv = $load(w.add(g * L));
                        }
                        for (b, acc) in acc.iter_mut().enumerate() {
                            let xv = $bcast::<CP>(x.add(b * job.rsx));
                            for (a, &wv) in acc.iter_mut().zip(&wv) {
                                *a = $fmadd(wv, xv, *a);
                            }
                        }
                        w = w.add(G * L);
                        x = x.add(CP);
                    }
                }
                let mut v = [$zero(); MAX_ACCUMULATORS];
                for (b, acc) in acc.iter().enumerate() {
                    v[b * G..(b + 1) * G].copy_from_slice(acc);
                }
                let (mut n, mut width) = (B * G, CP);
                while width > 1 {
                    let half = n.div_ceil(2);
                    for k in 0..half {
                        let high = if 2 * k + 1 < n { v[2 * k + 1] } else { $zero() };
                        v[k] = $pairsum(v[2 * k], high);
                    }
                    (n, width) = (half, width / 2);
                }
                let out = sums.0.as_mut_ptr();
                for (k, v) in v.iter().enumerate().take(n) {
                    $store(out.add(k * L), *v);
                }
            }
        }
    };
}
