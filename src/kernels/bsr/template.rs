//! The block kernel's template, compiled for 512-, 256- and 128-bit vectors
//! (see `layout.rs` for the sub-tiles it reads).

/// Defines `$name::<CP, G, B>(job, x, block_row, pass, b0, sums)`: one pass
/// of one block row (`G` sub-tiles of `lanes / CP` rows) against entries
/// `b0 .. b0 + B` of the inputs `x`, its `B x RP` sums written to `sums`
/// (entry-major).
///
/// Per step of `CP` columns it prefetches the weights
/// [`W_PREFETCH_AHEAD`] floats ahead, loads the step's `G` weight vectors,
/// then for each batch entry one input vector (`$bcast::<CP>`: the entry's
/// `CP` inputs, each repeated across its sub-tile's rows) and does `G`
/// multiply-adds. At the end, `log2(CP)` rounds of `$pairsum` (adjacent
/// lanes of two vectors added, the first vector's sums in the low half)
/// leave each row's sum in one lane, in entry-major row order.
macro_rules! block_kernel {
    ($name:ident, $vec:ty, $lanes:literal, $features:literal, $zero:ident, $load:ident, $fmadd:ident, $store:ident, $bcast:ident, $pairsum:ident) => {
        #[target_feature(enable = $features)]
        pub(super) unsafe fn $name<const CP: usize, const G: usize, const B: usize>(
            job: &Job,
            x: &Inputs,
            block_row: usize,
            pass: usize,
            b0: usize,
            sums: &mut Sums,
        ) {
            const L: usize = $lanes;
            const { assert!(B * G <= MAX_ACCUMULATORS && CP.is_power_of_two() && CP <= L) };
            let mut acc = [[$zero(); G]; B];
            let blocks = job.block_ptr[block_row]..job.block_ptr[block_row + 1];
            // SAFETY: `job` and `x` guarantee (their invariants) that every
            // block of the row has `block_len` values, that a pass's steps
            // lie inside its block, and that the inputs of every step read
            // (`steps` steps of `CP` columns, fewer in the edge block column)
            // lie inside `x` for the entries of a tile inside the batch,
            // which the caller passes.
            unsafe {
                let xb = x.x.as_ptr().wrapping_add(b0 * x.entry);
                for k in blocks {
                    let bc = *job.block_col.get_unchecked(k) as usize;
                    let steps = if bc == x.edge_col { x.edge_steps } else { job.steps };
                    let mut w = job.values.as_ptr().add(k * job.block_len + pass * job.pass_len);
                    let mut xs = xb.add(bc * x.block);
                    for _ in 0..steps {
                        for g in 0..G {
                            prefetch_l1(w.wrapping_add(W_PREFETCH_AHEAD + g * L));
                        }
                        let mut wv = [$zero(); G];
                        for (g, wv) in wv.iter_mut().enumerate() {
                            *wv = $load(w.add(g * L));
                        }
                        for (b, acc) in acc.iter_mut().enumerate() {
                            let xv = $bcast::<CP>(xs.add(b * x.entry));
                            for (a, &wv) in acc.iter_mut().zip(&wv) {
                                *a = $fmadd(wv, xv, *a);
                            }
                        }
                        w = w.add(G * L);
                        xs = xs.add(x.step);
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

/// Defines `$name::<CP, R, V>(job, x, block_row, pass, b0, sums)`: the same
/// contract as `block_kernel!`'s, for packed inputs and blocks whose pass
/// is one sub-tile of `R` rows (`G` = 1), with the roles of rows and batch
/// entries swapped: a vector holds `E' = lanes / CP` consecutive entries'
/// `CP` inputs (one plain load from the packed chunk), and each of the
/// pass's `R` rows broadcasts its `CP` weights (`$bcast::<CP>`). A step
/// loads `V` input vectors and `R` weight broadcasts for `R · V`
/// multiply-adds: where a block is too short for weight vectors to serve
/// many entries (4 x 4, 1 x 4), the broadcasts are of weights, `R` per step,
/// not of inputs, one per entry. The tile is `V · E'` entries.
macro_rules! entry_kernel {
    ($name:ident, $vec:ty, $lanes:literal, $features:literal, $zero:ident, $load:ident, $fmadd:ident, $store:ident, $bcast:ident, $pairsum:ident) => {
        #[target_feature(enable = $features)]
        pub(super) unsafe fn $name<const CP: usize, const R: usize, const V: usize>(
            job: &Job,
            x: &Inputs,
            block_row: usize,
            pass: usize,
            b0: usize,
            sums: &mut Sums,
        ) {
            const L: usize = $lanes;
            const { assert!(R * V <= MAX_ACCUMULATORS && CP.is_power_of_two() && CP <= L) };
            let entries = L / CP;
            let mut acc = [[$zero(); V]; R];
            let blocks = job.block_ptr[block_row]..job.block_ptr[block_row + 1];
            // SAFETY: as in `block_kernel!`: a pass of `R` rows is `steps`
            // steps of `R · CP` values inside its block, and the packed
            // inputs of the tile's `V · E'` entries (padded with zeros past
            // the batch) hold every step read.
            unsafe {
                let xb = x.x.as_ptr().wrapping_add(b0 * x.entry);
                for k in blocks {
                    let bc = *job.block_col.get_unchecked(k) as usize;
                    let mut w = job.values.as_ptr().add(k * job.block_len + pass * job.pass_len);
                    let mut xs = xb.add(bc * x.block);
                    for _ in 0..job.steps {
                        prefetch_l1(w.wrapping_add(W_PREFETCH_AHEAD));
                        let mut xv = [$zero(); V];
                        for (v, xv) in xv.iter_mut().enumerate() {
                            *xv = $load(xs.add(v * L));
                        }
                        for (i, acc) in acc.iter_mut().enumerate() {
                            let wv = $bcast::<CP>(w.add(i * CP));
                            for (a, &xv) in acc.iter_mut().zip(&xv) {
                                *a = $fmadd(wv, xv, *a);
                            }
                        }
                        w = w.add(R * CP);
                        xs = xs.add(x.step);
                    }
                }
                // Vectors in (entry vector, row) order; after the rounds
                // each row's sums for an entry vector are E' lanes.
                let mut t = [$zero(); MAX_ACCUMULATORS];
                for (v, t) in t.chunks_exact_mut(R).take(V).enumerate() {
                    for (i, t) in t.iter_mut().enumerate() {
                        *t = acc[i][v];
                    }
                }
                let (mut n, mut width) = (V * R, CP);
                while width > 1 {
                    let half = n.div_ceil(2);
                    for k in 0..half {
                        let high = if 2 * k + 1 < n { t[2 * k + 1] } else { $zero() };
                        t[k] = $pairsum(t[2 * k], high);
                    }
                    (n, width) = (half, width / 2);
                }
                if R == 1 {
                    for (k, t) in t.iter().enumerate().take(n) {
                        $store(sums.0.as_mut_ptr().add(k * L), *t);
                    }
                } else {
                    // (entry vector, row, entry) to (entry, row).
                    let mut flat = Sums([0.0; MAX_ACCUMULATORS * 16]);
                    for (k, t) in t.iter().enumerate().take(n) {
                        $store(flat.0.as_mut_ptr().add(k * L), *t);
                    }
                    for v in 0..V {
                        for i in 0..R {
                            for e in 0..entries {
                                sums.0[(v * entries + e) * R + i] = flat.0[(v * R + i) * entries + e];
                            }
                        }
                    }
                }
            }
        }
    };
}
