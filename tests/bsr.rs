//! Block sparsity: the BSR kernel against the naive product and against the
//! CSR kernel on the same matrix, at every SIMD level the CPU has, and
//! block magnitude pruning.

use issbench::kernels::bf16::{Bf16PackedMatrix, bf16_gemm, to_bf16};
use issbench::kernels::int8::{Int8PackedMatrix, int8_gemm};
use issbench::kernels::{BsrMatrix, CsrMatrix, MatMut, MatRef, SimdLevel, bsr_matmul, csr_matmul, gemm_reference};
use issbench::model::synthetic::SplitMix64;
use issbench::precision::Precision;

/// The block shapes the sweeps use, a few no vector sub-tile fits, and
/// 4 x 1 and 4 x 2 (the 128- and 256-bit sub-tiles the entry kernel reads,
/// as int8 and bf16 4 x 4 blocks do in words).
const BLOCKS: [(usize, usize); 13] = [
    (1, 4),
    (4, 4),
    (8, 8),
    (16, 16),
    (32, 32),
    (16, 1),
    (1, 16),
    (3, 5),
    (2, 2),
    (12, 8),
    (2, 16),
    (4, 1),
    (4, 2),
];

/// The levels to test: each one this CPU has (the matrix caps the rest).
fn levels() -> Vec<SimdLevel> {
    let best = SimdLevel::detect();
    [SimdLevel::Portable, SimdLevel::Avx2Fma, SimdLevel::Avx512]
        .into_iter()
        .filter(|&l| l == SimdLevel::Portable || (best != SimdLevel::Neon && l <= best))
        .collect()
}

/// A `rows x cols` matrix whose `r x c` blocks are kept with probability
/// `density`, their weights uniform in [-1, 1) with about one in five zero.
fn block_sparse(rows: usize, cols: usize, block: (usize, usize), density: f32, seed: u64) -> Vec<f32> {
    let (r, c) = block;
    let mut rng = SplitMix64::new(seed);
    let mut w = vec![0.0f32; rows * cols];
    for br in 0..rows.div_ceil(r) {
        for bc in 0..cols.div_ceil(c) {
            if rng.uniform(0.0, 1.0) >= density {
                continue;
            }
            for i in br * r..((br + 1) * r).min(rows) {
                for j in bc * c..((bc + 1) * c).min(cols) {
                    if rng.uniform(0.0, 1.0) < 0.8 {
                        w[i * cols + j] = rng.uniform(-1.0, 1.0);
                    }
                }
            }
        }
    }
    w
}

/// Checks `got` against `want` within a tolerance that grows with the
/// length of the sums.
fn assert_close(got: &[f32], want: &[f32], cols: usize, what: &str) {
    for (i, (g, e)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - e).abs() <= 1e-5 * (1.0 + e.abs()) * (cols.max(1) as f32).sqrt(),
            "{what}: y[{i}] = {g}, want {e}"
        );
    }
}

/// `bsr_matmul` on one matrix and batch against the naive product and CSR.
fn check(level: SimdLevel, block: (usize, usize), batch: usize, rows: usize, cols: usize, density: f32, accumulate: bool) {
    let seed = (batch * 7919 + rows * 31 + cols * 17 + block.0 * 5 + block.1) as u64;
    let w = block_sparse(rows, cols, block, density, seed);
    let bsr = BsrMatrix::from_dense_at(&w, rows, cols, block, level).unwrap();
    assert_eq!(bsr.to_dense(), w, "{block:?} {rows}x{cols}: round trip");
    let mut rng = SplitMix64::new(seed ^ 5);
    let x: Vec<f32> = (0..batch * cols).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let y0: Vec<f32> = (0..batch * rows).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let mut want = y0.clone();
    gemm_reference(
        MatRef::row_major(&x, batch, cols),
        MatRef::row_major(&w, rows, cols).t(),
        &mut MatMut::row_major(&mut want, batch, rows),
        accumulate,
    );
    let mut got = y0.clone();
    bsr_matmul(
        MatRef::row_major(&x, batch, cols),
        &bsr,
        &mut MatMut::row_major(&mut got, batch, rows),
        accumulate,
    );
    let what = format!(
        "{level:?} {block:?} ({}) batch {batch} {rows}x{cols} density {density} accumulate {accumulate}",
        bsr.kernel()
    );
    assert_close(&got, &want, cols, &what);
    let csr = CsrMatrix::from_dense(&w, rows, cols, 0.0).unwrap();
    let mut sparse = y0;
    csr_matmul(
        MatRef::row_major(&x, batch, cols),
        &csr,
        &mut MatMut::row_major(&mut sparse, batch, rows),
        accumulate,
    );
    assert_close(&got, &sparse, cols, &format!("{what}, against csr"));
}

#[test]
fn bsr_matches_the_naive_product_on_odd_shapes() {
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            for level in levels() {
                for block in BLOCKS {
                    for batch in [1, 2, 3, 4, 7, 8, 16, 17, 64] {
                        // Empty, single, prime and block-multiple dimensions.
                        for (rows, cols) in [(0, 5), (5, 0), (1, 1), (1, 37), (37, 1), (13, 61), (64, 64), (131, 97)] {
                            check(level, block, batch, rows, cols, 0.4, batch % 2 == 0);
                        }
                        check(level, block, batch, 67, 83, 1.0, batch % 2 == 1);
                        check(level, block, batch, 67, 83, 0.0, false);
                    }
                }
            }
        });
    }
}

/// A large batch: several chunks of the batch, every tile size.
#[test]
fn bsr_matches_the_naive_product_at_batch_1500() {
    for level in levels() {
        for block in BLOCKS {
            for accumulate in [false, true] {
                check(level, block, 1500, 97, 1031, 0.3, accumulate);
            }
        }
    }
}

/// X and Y as views into wider buffers and as column-major views: X read in
/// place, through the padded copy, and Y written both ways.
#[test]
fn bsr_reads_and_writes_strided_views() {
    let (rows, cols) = (203, 139);
    for level in levels() {
        for block in [(16, 16), (4, 4), (1, 4), (3, 5)] {
            let w = block_sparse(rows, cols, block, 0.3, 11);
            let bsr = BsrMatrix::from_dense_at(&w, rows, cols, block, level).unwrap();
            for batch in [1, 9, 37] {
                let mut rng = SplitMix64::new(batch as u64);
                let x_wide: Vec<f32> = (0..batch * (cols + 5)).map(|_| rng.uniform(-1.0, 1.0)).collect();
                let x_row_padded = MatRef::new(&x_wide, batch, cols, cols + 5, 1);
                let x_col_major = MatRef::new(&x_wide, batch, cols, 1, batch);
                for (name, x) in [("row-padded X", x_row_padded), ("column-major X", x_col_major)] {
                    let mut want = vec![0.5f32; batch * rows];
                    gemm_reference(
                        x,
                        MatRef::row_major(&w, rows, cols).t(),
                        &mut MatMut::row_major(&mut want, batch, rows),
                        true,
                    );
                    let mut y_padded = vec![0.5f32; batch * (rows + 3)];
                    let mut y_col = vec![0.5f32; batch * rows];
                    bsr_matmul(x, &bsr, &mut MatMut::new(&mut y_padded, batch, rows, rows + 3, 1), true);
                    bsr_matmul(x, &bsr, &mut MatMut::new(&mut y_col, batch, rows, 1, batch), true);
                    for b in 0..batch {
                        for r in 0..rows {
                            let e = want[b * rows + r];
                            for (layout, g) in [("row-padded", y_padded[b * (rows + 3) + r]), ("column-major", y_col[r * batch + b])] {
                                assert!(
                                    (g - e).abs() <= 1e-4 * (1.0 + e.abs()),
                                    "{level:?} {block:?} batch {batch}, {name}, {layout} Y: y[{b}, {r}] = {g}, want {e}"
                                );
                            }
                        }
                    }
                    assert!(
                        (0..batch).all(|b| y_padded[b * (rows + 3) + rows..(b + 1) * (rows + 3)].iter().all(|&v| v == 0.5)),
                        "{level:?} {block:?} batch {batch}, {name}: padding between Y's rows written"
                    );
                }
            }
        }
    }
}

#[test]
fn bsr_counts_blocks_values_and_bytes() {
    // 10 x 10 in 4 x 4 blocks: 3 x 3 blocks, the last row and column of 2.
    let mut w = vec![0.0f32; 100];
    w[0] = 1.0; // block (0, 0)
    w[9 * 10 + 9] = 2.0; // block (2, 2): 2 x 2 inside the matrix, stored as 4 x 4
    w[5 * 10 + 1] = 3.0; // block (1, 0)
    let m = BsrMatrix::from_dense(&w, 10, 10, (4, 4)).unwrap();
    assert_eq!((m.rows(), m.cols(), m.block()), (10, 10, (4, 4)));
    assert_eq!((m.nnz_blocks(), m.stored_values(), m.nonzeros()), (3, 48, 3));
    assert_eq!(m.bytes(), 48 * 4 + 3 * 4 + 4 * std::mem::size_of::<usize>());
    assert_eq!(m.to_dense(), w);
    assert!(BsrMatrix::from_dense(&w, 10, 10, (0, 4)).is_err());
}

/// A block-pruned model's matrices in BSR: only the kept blocks are stored
/// (at most one of them kept in part), and the product is the dense one.
#[test]
fn block_pruned_matrices_store_their_kept_blocks() {
    use issbench::model::synthetic::SynthSpec;
    use issbench::prune::{block_magnitude, lstm_block_weights};
    let model = SynthSpec {
        name: "t".into(),
        input: 40,
        layers: vec![37, 24],
        vocab: None,
        seed: 9,
        kept: None,
        ..Default::default()
    }
    .build()
    .unwrap();
    for block in [(4, 4), (16, 16), (1, 16), (16, 1)] {
        let pruned = block_magnitude(&model, block, 0.9).unwrap();
        let mut stored = 0;
        for layer in pruned.layers().iter().map(|l| l.fw()) {
            let rows = 4 * layer.hidden();
            for (w, cols) in [(layer.w_ih(), layer.input()), (layer.w_hh(), layer.hidden())] {
                let bsr = BsrMatrix::from_dense(w, rows, cols, block).unwrap();
                stored += bsr.stored_values();
                let batch = 5;
                let x: Vec<f32> = (0..batch * cols).map(|i| (i % 7) as f32 - 3.0).collect();
                let (mut want, mut got) = (vec![0.0f32; batch * rows], vec![0.0f32; batch * rows]);
                gemm_reference(
                    MatRef::row_major(&x, batch, cols),
                    MatRef::row_major(w, rows, cols).t(),
                    &mut MatMut::row_major(&mut want, batch, rows),
                    false,
                );
                bsr_matmul(
                    MatRef::row_major(&x, batch, cols),
                    &bsr,
                    &mut MatMut::row_major(&mut got, batch, rows),
                    false,
                );
                assert_close(&got, &want, cols, &format!("{block:?} {rows}x{cols}"));
            }
        }
        // Stored: whole blocks, padding included, at least the kept weights.
        let kept = lstm_block_weights(&pruned, block);
        assert!(
            stored >= kept && kept >= model.lstm_weights() / 10,
            "{block:?}: stored {stored}, kept {kept}"
        );
    }
}

/// Block-sparse `w`, inputs and a start for `Y` for one reduced-precision
/// check; the inputs are shifted so the int8 zero point is not 128.
fn lowp_case(block: (usize, usize), batch: usize, rows: usize, cols: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let seed = (batch * 7919 + rows * 31 + cols * 17 + block.0 * 5 + block.1) as u64;
    let w = block_sparse(rows, cols, block, 0.4, seed);
    let mut rng = SplitMix64::new(seed ^ 11);
    let x: Vec<f32> = (0..batch * cols).map(|_| rng.uniform(-0.6, 1.4)).collect();
    let y0: Vec<f32> = (0..batch * rows).map(|_| rng.uniform(-1.0, 1.0)).collect();
    (w, x, y0)
}

/// The shapes of the reduced-precision checks: empty, single, prime and
/// block-multiple dimensions, batches from 1 past the largest tile.
const LOWP_SHAPES: [(usize, usize, usize); 9] = [
    (1, 0, 5),
    (2, 5, 0),
    (1, 1, 1),
    (1, 37, 41),
    (3, 64, 64),
    (13, 5, 7),
    (7, 131, 97),
    (17, 48, 96),
    (30, 33, 100),
];

/// int8 BSR quantizes as the dense int8 kernel (weights per row, inputs
/// per product) and dequantizes its exact `i32` sums the same way: on the
/// same block-pruned weights both give the same values, at every level
/// and block shape (vpdpbusd, the widened AVX2 kernels, plain Rust).
#[test]
fn int8_bsr_matches_the_dense_int8_kernel_exactly() {
    for level in levels() {
        for block in BLOCKS {
            for (batch, rows, cols) in LOWP_SHAPES {
                let (w, x, y0) = lowp_case(block, batch, rows, cols);
                let m = BsrMatrix::from_dense_with(&w, rows, cols, block, Precision::Int8, level).unwrap();
                assert_eq!(m.precision(), Precision::Int8);
                let dense = Int8PackedMatrix::pack_transposed(&w, rows, cols);
                for accumulate in [false, true] {
                    let x = MatRef::row_major(&x, batch, cols);
                    let (mut want, mut got) = (y0.clone(), y0.clone());
                    int8_gemm(x, &dense, &mut MatMut::row_major(&mut want, batch, rows), accumulate);
                    bsr_matmul(x, &m, &mut MatMut::row_major(&mut got, batch, rows), accumulate);
                    let what = format!(
                        "{level:?} {block:?} ({}) batch {batch} {rows}x{cols} accumulate {accumulate}",
                        m.kernel()
                    );
                    assert_eq!(got, want, "{what}");
                    // The same inputs as a column-major view.
                    let cm: Vec<f32> = (0..batch * cols).map(|i| x.at(i % batch, i / batch)).collect();
                    let mut strided = y0.clone();
                    let xt = MatRef::new(&cm, batch, cols, 1, batch.max(1));
                    bsr_matmul(xt, &m, &mut MatMut::row_major(&mut strided, batch, rows), accumulate);
                    assert_eq!(strided, want, "{what}, X column-major");
                }
            }
        }
    }
}

/// bf16 BSR multiplies the bf16-rounded weights and inputs exactly and
/// sums in f32: it matches that product (in f64) within f32 rounding of
/// the sums, and the dense bf16 kernel on the same weights likewise.
#[test]
fn bf16_bsr_matches_the_rounded_product_and_the_dense_bf16_kernel() {
    let round = |v: &[f32]| -> Vec<f32> { v.iter().map(|&v| f32::from_bits(u32::from(to_bf16(v)) << 16)).collect() };
    for level in levels() {
        for block in BLOCKS {
            for (batch, rows, cols) in LOWP_SHAPES {
                let (w, x, y0) = lowp_case(block, batch, rows, cols);
                let m = BsrMatrix::from_dense_with(&w, rows, cols, block, Precision::Bf16, level).unwrap();
                let (wr, xr) = (round(&w), round(&x));
                assert_eq!(m.to_dense(), wr, "{level:?} {block:?}: the stored weights are the rounded ones");
                let dense = Bf16PackedMatrix::pack_transposed(&w, rows, cols);
                for accumulate in [false, true] {
                    let xm = MatRef::row_major(&x, batch, cols);
                    let (mut got, mut other) = (y0.clone(), y0.clone());
                    bsr_matmul(xm, &m, &mut MatMut::row_major(&mut got, batch, rows), accumulate);
                    bf16_gemm(xm, &dense, &mut MatMut::row_major(&mut other, batch, rows), accumulate);
                    let what = format!(
                        "{level:?} {block:?} ({}) batch {batch} {rows}x{cols} accumulate {accumulate}",
                        m.kernel()
                    );
                    for b in 0..batch {
                        for r in 0..rows {
                            let terms = (0..cols).map(|j| f64::from(wr[r * cols + j]) * f64::from(xr[b * cols + j]));
                            let start = if accumulate { f64::from(y0[b * rows + r]) } else { 0.0 };
                            let want = start + terms.clone().sum::<f64>();
                            let bound = 1e-6 * (start.abs() + terms.map(f64::abs).sum::<f64>()) + 1e-30;
                            let (g, o) = (f64::from(got[b * rows + r]), f64::from(other[b * rows + r]));
                            assert!((g - want).abs() <= bound, "{what}: y[{b}, {r}] = {g}, want {want}");
                            assert!((g - o).abs() <= 2.0 * bound, "{what}: y[{b}, {r}] = {g}, dense bf16 {o}");
                        }
                    }
                }
            }
        }
    }
}

/// Reduced-precision values shrink the stored bytes (int8 about a quarter
/// of fp32's values, bf16 half), count the nonzeros that survive rounding,
/// and refuse an int8 width whose i32 sums could overflow.
#[test]
fn reduced_precision_bsr_stores_narrow_values() {
    let (rows, cols, block) = (64, 96, (16, 16));
    let w = block_sparse(rows, cols, block, 0.5, 3);
    let at = |p| BsrMatrix::from_dense_with(&w, rows, cols, block, p, SimdLevel::detect()).unwrap();
    let (f, b, i) = (at(Precision::Fp32), at(Precision::Bf16), at(Precision::Int8));
    assert_eq!((f.nnz_blocks(), f.stored_values()), (b.nnz_blocks(), b.stored_values()));
    assert_eq!((f.nnz_blocks(), f.stored_values()), (i.nnz_blocks(), i.stored_values()));
    let values = f.stored_values();
    assert_eq!(f.bytes() - b.bytes(), values * 2, "bf16 holds 2 bytes a value");
    assert_eq!(
        f.bytes() - (i.bytes() - rows * 8),
        values * 3,
        "int8 holds 1 byte a value, plus a scale and sum per row"
    );
    assert_eq!(b.nonzeros(), f.nonzeros(), "no weight here rounds to zero in bf16");
    assert!(i.nonzeros() <= f.nonzeros() && i.nonzeros() > f.nonzeros() * 9 / 10);
    let wide = vec![0.0f32; 65537];
    let e = BsrMatrix::from_dense_with(&wide, 1, 65537, (1, 4), Precision::Int8, SimdLevel::detect()).unwrap_err();
    assert!(e.to_string().contains("65537 columns exceed"), "{e}");
}
