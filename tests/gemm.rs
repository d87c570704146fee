//! Every GEMM path against the naive f64 product: odd shapes (1, primes,
//! zero-sized), transposed and padded strides, accumulate or overwrite,
//! on 1 and 2 threads.

use issbench::kernels::gemm::SKINNY_MAX_ROWS;
use issbench::kernels::team::run_team;
use issbench::kernels::{
    MatMut, MatRef, PANEL, PackedMatrix, SharedOutput, gemm, gemm_reference, packed_gemm, packed_gemm_bias, packed_gemm_panels,
};
use issbench::model::synthetic::SplitMix64;

/// How a matrix is laid out in memory.
#[derive(Clone, Copy, Debug)]
enum Layout {
    RowMajor,
    ColMajor,
    /// Row-major with 3 unused elements after each row.
    PaddedRows,
    /// Column-major with every element two apart.
    Strided,
}

const LAYOUTS: [Layout; 4] = [Layout::RowMajor, Layout::ColMajor, Layout::PaddedRows, Layout::Strided];

fn strides(layout: Layout, rows: usize, cols: usize) -> (usize, usize, usize) {
    // (row stride, column stride, elements needed)
    let (rs, cs) = match layout {
        Layout::RowMajor => (cols, 1),
        Layout::ColMajor => (1, rows),
        Layout::PaddedRows => (cols + 3, 1),
        Layout::Strided => (2, 2 * rows),
    };
    let len = if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    };
    (rs.max(1), cs.max(1), len)
}

fn random(len: usize, rng: &mut SplitMix64) -> Vec<f32> {
    (0..len).map(|_| rng.uniform(-1.0, 1.0)).collect()
}

fn pools() -> Vec<rayon::ThreadPool> {
    [1, 2]
        .iter()
        .map(|&n| rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap())
        .collect()
}

/// Checks `C (+)= A·B` against the reference, elementwise, relative to the
/// size of the terms (sum of |a||b|), which is what float rounding scales with.
#[allow(clippy::too_many_arguments)]
fn check(
    name: &str,
    m: usize,
    k: usize,
    n: usize,
    la: Layout,
    lb: Layout,
    lc: Layout,
    accumulate: bool,
    run: &dyn Fn(MatRef, MatRef, &mut MatMut, bool),
) {
    let mut rng = SplitMix64::new((m * 1_000_003 + k * 1009 + n) as u64);
    let (rsa, csa, na) = strides(la, m, k);
    let (rsb, csb, nb) = strides(lb, k, n);
    let (rsc, csc, nc) = strides(lc, m, n);
    let a_data = random(na, &mut rng);
    let b_data = random(nb, &mut rng);
    let c0 = random(nc, &mut rng);
    let a = MatRef::new(&a_data, m, k, rsa, csa);
    let b = MatRef::new(&b_data, k, n, rsb, csb);
    let mut want = c0.clone();
    gemm_reference(a, b, &mut MatMut::new(&mut want, m, n, rsc, csc), accumulate);
    let mut got = c0.clone();
    run(a, b, &mut MatMut::new(&mut got, m, n, rsc, csc), accumulate);
    for i in 0..m {
        for j in 0..n {
            let idx = i * rsc + j * csc;
            let scale: f64 =
                (0..k).map(|p| (a.at(i, p) * b.at(p, j)).abs() as f64).sum::<f64>() + if accumulate { c0[idx].abs() as f64 } else { 0.0 };
            let err = (got[idx] as f64 - want[idx] as f64).abs();
            assert!(
                err <= 1e-5 * scale.max(1.0),
                "{name}: {m}x{k}x{n} A {la:?} B {lb:?} C {lc:?} acc {accumulate}: C[{i},{j}] = {} want {} (err {err:e})",
                got[idx],
                want[idx]
            );
        }
    }
    // Elements between the view's elements (padding) must be untouched.
    let touched: std::collections::HashSet<usize> = (0..m).flat_map(|i| (0..n).map(move |j| i * rsc + j * csc)).collect();
    for (idx, (g, o)) in got.iter().zip(&c0).enumerate() {
        if !touched.contains(&idx) {
            assert_eq!(g, o, "{name}: padding element {idx} of C was written");
        }
    }
}

const SIZES: [usize; 9] = [0, 1, 2, 3, 4, 5, 13, 37, 67];

#[test]
fn gemm_matches_reference_on_odd_shapes_and_strides() {
    for pool in pools() {
        pool.install(|| {
            for &m in &SIZES {
                for &k in &[0usize, 1, 7, 37, 67] {
                    for &n in &[1usize, 3, 31, 67] {
                        for la in LAYOUTS {
                            for lb in LAYOUTS {
                                let lc = if (m + n) % 2 == 0 { Layout::RowMajor } else { Layout::PaddedRows };
                                check("gemm", m, k, n, la, lb, lc, (m + k) % 2 == 0, &|a, b, c, acc| gemm(a, b, c, acc));
                            }
                        }
                    }
                }
            }
        });
    }
}

#[test]
fn gemm_parallel_blocks_on_large_shapes() {
    // Big enough to be split over workers, with ragged edges.
    for pool in pools() {
        pool.install(|| {
            for (m, k, n) in [
                (1, 601, 1499),
                (3, 257, 1031),
                (4, 1009, 97),
                (5, 211, 389),
                (97, 101, 103),
                (300, 64, 258),
            ] {
                for accumulate in [false, true] {
                    check(
                        "gemm",
                        m,
                        k,
                        n,
                        Layout::RowMajor,
                        Layout::ColMajor,
                        Layout::RowMajor,
                        accumulate,
                        &|a, b, c, acc| gemm(a, b, c, acc),
                    );
                    check(
                        "gemm",
                        m,
                        k,
                        n,
                        Layout::PaddedRows,
                        Layout::RowMajor,
                        Layout::ColMajor,
                        accumulate,
                        &|a, b, c, acc| gemm(a, b, c, acc),
                    );
                }
            }
        });
    }
}

#[test]
fn skinny_paths_cover_every_row_count() {
    for pool in pools() {
        pool.install(|| {
            for m in 1..=SKINNY_MAX_ROWS + 1 {
                for (k, n) in [(1, 1), (15, 17), (16, 64), (33, 65), (250, 1500)] {
                    // B column-contiguous (dot path) and row-contiguous (axpy path).
                    check(
                        "skinny dot",
                        m,
                        k,
                        n,
                        Layout::RowMajor,
                        Layout::ColMajor,
                        Layout::RowMajor,
                        true,
                        &|a, b, c, acc| gemm(a, b, c, acc),
                    );
                    check(
                        "skinny axpy",
                        m,
                        k,
                        n,
                        Layout::Strided,
                        Layout::RowMajor,
                        Layout::PaddedRows,
                        false,
                        &|a, b, c, acc| gemm(a, b, c, acc),
                    );
                }
            }
        });
    }
}

#[test]
fn packed_gemm_matches_reference() {
    for pool in pools() {
        pool.install(|| {
            for &m in &[0usize, 1, 2, 3, 4, 5, 6, 7, 9, 11, 12, 13, 25, 61] {
                for &k in &[0usize, 1, 5, 255, 256, 257, 600] {
                    for &n in &[1usize, 31, 32, 33, 97] {
                        for lc in [Layout::RowMajor, Layout::ColMajor, Layout::PaddedRows] {
                            for lb in [Layout::RowMajor, Layout::ColMajor] {
                                // A with contiguous rows (the fast packing) or strided.
                                let la = if (m + k + n) % 3 == 0 {
                                    Layout::ColMajor
                                } else {
                                    Layout::PaddedRows
                                };
                                check("packed", m, k, n, la, lb, lc, (m + n + k) % 2 == 1, &|a, b, c, acc| {
                                    packed_gemm(a, &PackedMatrix::pack(b), c, acc)
                                });
                            }
                        }
                    }
                }
            }
            // An A too large to stay in L2, or (AVX2) of 16+ row blocks: the
            // chunked orders (AVX2: chunks of 4 panels up to 512 rows, 8
            // above), with all of k in one slice (k = 260) or K blocks.
            for (m, k, n) in [(250usize, 601usize, 97usize), (307, 450, 1500), (530, 260, 70), (300, 400, 40)] {
                check(
                    "packed, large A",
                    m,
                    k,
                    n,
                    Layout::RowMajor,
                    Layout::ColMajor,
                    Layout::RowMajor,
                    true,
                    &|a, b, c, acc| packed_gemm(a, &PackedMatrix::pack(b), c, acc),
                );
            }
            // A B of 16 MiB or more, which streams from memory: on AVX2, 1-2
            // row blocks prefetch the next slice paced at one line per step
            // (at 4 rows, the last K block of each panel, 76 steps, is too
            // short for that and bunches).
            for m in [4usize, 10] {
                check(
                    "packed, streamed B",
                    m,
                    1100,
                    3850,
                    Layout::RowMajor,
                    Layout::ColMajor,
                    Layout::RowMajor,
                    m == 10,
                    &|a, b, c, acc| packed_gemm(a, &PackedMatrix::pack(b), c, acc),
                );
            }
        });
    }
}

/// One row of `A` (a recurrent step at batch 1), which AVX-512 runs as one
/// call over all its panels: last panels no wider than half a panel
/// (whose zero half it does not read) and just wider, `A` read in place
/// or packed, several K blocks (k > 4096), a `B` that streams from memory
/// (the prefetching form), and a strided `C` (the micro-kernel's path).
#[test]
fn one_row_products_cover_narrow_panels_k_blocks_and_streamed_b() {
    let packed = |a: MatRef, b: MatRef, c: &mut MatMut, acc: bool| packed_gemm(a, &PackedMatrix::pack(b), c, acc);
    for pool in pools() {
        pool.install(|| {
            for n in [1usize, 15, 16, 17, 31, 47, 48, 49, 64] {
                for k in [0usize, 1, 2, 3, 131] {
                    for lc in [Layout::RowMajor, Layout::PaddedRows, Layout::Strided] {
                        for (la, acc) in [(Layout::RowMajor, true), (Layout::Strided, false)] {
                            check("one row", 1, k, n, la, Layout::ColMajor, lc, acc, &packed);
                        }
                    }
                }
            }
            for (k, n) in [(4097usize, 33usize), (8200, 16), (1100, 3850)] {
                for acc in [true, false] {
                    check(
                        "one row",
                        1,
                        k,
                        n,
                        Layout::RowMajor,
                        Layout::ColMajor,
                        Layout::RowMajor,
                        acc,
                        &packed,
                    );
                }
            }
        });
    }
}

/// Last panels no wider than half a panel (whose zero half the AVX-512
/// kernels neither read nor compute) and just wider, read and written
/// through lane masks, on row blocks of 2 to 13 rows, `A` in place or
/// packed, `C` contiguous, padded or strided (copied, not masked).
#[test]
fn partial_panels_on_every_row_block() {
    let packed = |a: MatRef, b: MatRef, c: &mut MatMut, acc: bool| packed_gemm(a, &PackedMatrix::pack(b), c, acc);
    for m in [2usize, 5, 12, 13] {
        for n in [8usize, 16, 17, 48, 49] {
            for k in [1usize, 131] {
                for lc in [Layout::RowMajor, Layout::PaddedRows, Layout::Strided] {
                    for (la, acc) in [(Layout::RowMajor, true), (Layout::ColMajor, false)] {
                        check("partial panel", m, k, n, la, Layout::ColMajor, lc, acc, &packed);
                    }
                }
            }
        }
    }
}

/// `C = bias + A·B` starting the accumulators from the bias gives exactly
/// the bits of filling `C` with the bias and accumulating (the same sums in
/// the same order), on partial panels, 1 row, k = 0, the large-A orders and
/// strided `C`, and leaves `C`'s padding alone.
#[test]
fn packed_gemm_bias_equals_filling_c_with_the_bias() {
    for pool in pools() {
        pool.install(|| {
            let shapes = [
                (1usize, 7usize, 33usize),
                (1, 4100, 49),
                (7, 19, 16),
                (5, 0, 31),
                (6, 13, 32),
                (13, 37, 97),
                (2, 67, 1),
                (300, 400, 40),
                (530, 260, 70),
            ];
            for (m, k, n) in shapes {
                for lc in [Layout::RowMajor, Layout::ColMajor, Layout::PaddedRows] {
                    let mut rng = SplitMix64::new((m * 31 + k * 7 + n) as u64);
                    let a = random(m * k, &mut rng);
                    let b = PackedMatrix::pack_transposed(&random(n * k, &mut rng), n, k);
                    let bias = random(n, &mut rng);
                    let (rsc, csc, nc) = strides(lc, m, n);
                    let c0 = random(nc, &mut rng);
                    let mut want = c0.clone();
                    for i in 0..m {
                        for j in 0..n {
                            want[i * rsc + j * csc] = bias[j];
                        }
                    }
                    let a = MatRef::row_major(&a, m, k);
                    packed_gemm(a, &b, &mut MatMut::new(&mut want, m, n, rsc, csc), true);
                    let mut got = c0.clone();
                    packed_gemm_bias(a, &b, &bias, &mut MatMut::new(&mut got, m, n, rsc, csc));
                    let differ = got.iter().zip(&want).position(|(g, w)| g.to_bits() != w.to_bits());
                    assert_eq!(differ, None, "{m}x{k}x{n} C {lc:?}: first differing element");
                }
            }
        });
    }
}

#[test]
fn packed_transposed_equals_packing_the_transpose() {
    let mut rng = SplitMix64::new(3);
    let w = random(7 * 5, &mut rng);
    let a = PackedMatrix::pack_transposed(&w, 7, 5);
    let b = PackedMatrix::pack(MatRef::row_major(&w, 7, 5).t());
    assert_eq!((a.k(), a.n()), (5, 7));
    let x = random(2 * 5, &mut rng);
    let (mut ca, mut cb) = (vec![0.0; 14], vec![0.0; 14]);
    packed_gemm(MatRef::row_major(&x, 2, 5), &a, &mut MatMut::row_major(&mut ca, 2, 7), false);
    packed_gemm(MatRef::row_major(&x, 2, 5), &b, &mut MatMut::row_major(&mut cb, 2, 7), false);
    assert_eq!(ca, cb);
    assert!(ca.iter().any(|&v| v != 0.0));
}

#[test]
fn packed_panels_split_over_a_team_equal_one_product() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
    for (m, k, n) in [(1usize, 5usize, 1usize), (3, 37, 33), (13, 300, 200), (250, 601, 97)] {
        let mut rng = SplitMix64::new((m * 31 + k * 7 + n) as u64);
        let (a, w, c0) = (random(m * k, &mut rng), random(n * k, &mut rng), random(m * n, &mut rng));
        let b = PackedMatrix::pack_transposed(&w, n, k);
        let a = MatRef::row_major(&a, m, k);
        let mut want = c0.clone();
        packed_gemm(a, &b, &mut MatMut::row_major(&mut want, m, n), true);
        let mut got = c0.clone();
        let panels = n.div_ceil(PANEL);
        let shared = SharedOutput::new(&mut got, m, n);
        pool.install(|| {
            run_team(3, &|w, barrier| {
                let mine = panels * w / 3..panels * (w + 1) / 3;
                // SAFETY: the workers' panel ranges are disjoint.
                unsafe { packed_gemm_panels(a, &b, shared, true, mine) };
                barrier.wait();
            })
        });
        // Each panel is computed the same way however the panels are shared out.
        assert_eq!(got, want, "{m}x{k}x{n}");
    }
}
