//! Unstructured sparsity: the CSR kernel against the naive product, the CSR
//! executor against the reference forward pass, and magnitude pruning.

use issbench::exec::{Backend, Executor, RnnExecutor};
use issbench::iss::{analyze, compact};
use issbench::kernels::{CsrMatrix, MatMut, MatRef, csr_matmul, gemm_reference};
use issbench::model::synthetic::{SplitMix64, SynthSpec};
use issbench::model::{Inputs, Model, reference_forward};
use issbench::prune::{Scope, lstm_nonzeros, magnitude, match_iss};

/// A `rows x cols` matrix with about `density` of its entries nonzero, and
/// (when `empty_rows`) every third row empty.
fn sparse(rows: usize, cols: usize, density: f32, empty_rows: bool, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..rows * cols)
        .map(|i| {
            let keep = rng.uniform(0.0, 1.0) < density && !(empty_rows && (i / cols.max(1)).is_multiple_of(3));
            if keep { rng.uniform(-1.0, 1.0) } else { 0.0 }
        })
        .collect()
}

fn check(batch: usize, rows: usize, cols: usize, density: f32, empty_rows: bool, accumulate: bool) {
    let w = sparse(rows, cols, density, empty_rows, (batch * 7919 + rows * 31 + cols) as u64);
    let csr = CsrMatrix::from_dense(&w, rows, cols, 0.0).unwrap();
    assert_eq!(csr.to_dense(), w);
    let mut rng = SplitMix64::new(5);
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
    csr_matmul(
        MatRef::row_major(&x, batch, cols),
        &csr,
        &mut MatMut::row_major(&mut got, batch, rows),
        accumulate,
    );
    for (i, (g, e)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - e).abs() <= 1e-5 * (1.0 + e.abs()) * (cols as f32).sqrt(),
            "batch {batch} {rows}x{cols} density {density}: y[{i}] = {g}, want {e}"
        );
    }
}

#[test]
fn csr_matches_the_naive_product_on_odd_shapes() {
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            for batch in [1, 2, 3, 5, 8, 9, 13, 16, 17, 31, 37, 80, 300] {
                for (rows, cols) in [(1, 1), (1, 7), (7, 1), (13, 17), (64, 37), (257, 129)] {
                    for density in [0.0, 0.05, 0.5, 1.0] {
                        check(batch, rows, cols, density, false, batch % 2 == 0);
                    }
                    check(batch, rows, cols, 0.3, true, batch % 2 == 1);
                }
            }
            // Several row and column blocks of the large-batch path, with
            // rows that skip whole column blocks.
            for density in [0.01, 0.1] {
                check(70, 600, 401, density, true, true);
            }
        });
    }
}

/// X and Y as views into wider buffers (rows further apart than their
/// length) and as column-major views: the transposes into and out of the
/// kernels take their block paths and their element-by-element paths.
#[test]
fn csr_reads_and_writes_strided_views() {
    let (rows, cols) = (203, 139);
    let w = sparse(rows, cols, 0.2, true, 11);
    let csr = CsrMatrix::from_dense(&w, rows, cols, 0.0).unwrap();
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        for batch in [1, 9, 37, 300] {
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
                // Y row-padded (3 spare floats per row), then column-major.
                let mut y_padded = vec![0.5f32; batch * (rows + 3)];
                let mut y_col = vec![0.5f32; batch * rows];
                pool.install(|| {
                    csr_matmul(x, &csr, &mut MatMut::new(&mut y_padded, batch, rows, rows + 3, 1), true);
                    csr_matmul(x, &csr, &mut MatMut::new(&mut y_col, batch, rows, 1, batch), true);
                });
                for b in 0..batch {
                    for r in 0..rows {
                        let e = want[b * rows + r];
                        for (layout, g) in [("row-padded", y_padded[b * (rows + 3) + r]), ("column-major", y_col[r * batch + b])] {
                            assert!(
                                (g - e).abs() <= 1e-4 * (1.0 + e.abs()),
                                "{threads} threads, batch {batch}, {name}, {layout} Y: y[{b}, {r}] = {g}, want {e}"
                            );
                        }
                    }
                }
                // The padding between Y's rows is never written.
                assert!(
                    (0..batch).all(|b| y_padded[b * (rows + 3) + rows..(b + 1) * (rows + 3)].iter().all(|&v| v == 0.5)),
                    "{threads} threads, batch {batch}, {name}: padding between Y's rows written"
                );
            }
        }
    }
}

#[test]
fn csr_handles_empty_dimensions() {
    let csr = CsrMatrix::from_dense(&[], 0, 5, 0.0).unwrap();
    let mut y: Vec<f32> = vec![];
    csr_matmul(
        MatRef::row_major(&[0.0; 10], 2, 5),
        &csr,
        &mut MatMut::row_major(&mut y, 2, 0),
        false,
    );
    let csr = CsrMatrix::from_dense(&[], 3, 0, 0.0).unwrap();
    assert_eq!(csr.nnz(), 0);
    let mut y = vec![9.0; 6];
    csr_matmul(MatRef::row_major(&[], 2, 0), &csr, &mut MatMut::row_major(&mut y, 2, 3), false);
    assert_eq!(y, vec![0.0; 6]);
}

fn spec(input: usize, layers: &[usize], vocab: Option<usize>, kept: Option<Vec<usize>>) -> Model {
    SynthSpec {
        name: "t".into(),
        input,
        layers: layers.to_vec(),
        vocab,
        seed: 21,
        kept,
        ..Default::default()
    }
    .build()
    .unwrap()
}

#[test]
fn csr_executor_matches_reference_forward() {
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        for model in [spec(7, &[13, 29], Some(11), None), spec(40, &[67, 37], None, None)] {
            let pruned = magnitude(&model, 0.8, Scope::PerMatrix).unwrap();
            for (seq, batch) in [(1, 1), (3, 2), (4, 17)] {
                let inputs = Inputs::random(&pruned, seq, batch, 3);
                let want = reference_forward(&pruned, &inputs).unwrap();
                let mut exec = RnnExecutor::prepare(&pruned, Backend::Csr, false, "csr");
                let got = pool.install(|| exec.run(&inputs).unwrap().to_vec());
                let scale = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= 1e-4 * scale,
                        "threads {threads} seq {seq} batch {batch}: {g} vs {w}"
                    );
                }
            }
        }
    }
}

#[test]
fn magnitude_pruning_hits_the_sparsity_and_removes_the_smallest() {
    let model = spec(9, &[11, 6], Some(5), None);
    let total: usize = model.directions().map(|(_, _, l)| l.w_ih().len() + l.w_hh().len()).sum();
    for sparsity in [0.0, 0.3, 0.9, 1.0] {
        let global = magnitude(&model, sparsity, Scope::Global).unwrap();
        assert_eq!(lstm_nonzeros(&global), total - (sparsity * total as f64).round() as usize);
        // Every surviving weight is at least as large as every removed one.
        let (mut kept_min, mut removed_max) = (f32::INFINITY, 0.0f32);
        for (orig, pruned) in model.layers().iter().map(|l| l.fw()).zip(global.layers().iter().map(|l| l.fw())) {
            for (o, p) in orig.w_ih().iter().chain(orig.w_hh()).zip(pruned.w_ih().iter().chain(pruned.w_hh())) {
                if *p == 0.0 {
                    removed_max = removed_max.max(o.abs())
                } else {
                    kept_min = kept_min.min(o.abs())
                }
            }
        }
        assert!(sparsity == 0.0 || sparsity == 1.0 || kept_min >= removed_max);
        // Biases, embedding and head are untouched.
        assert_eq!(global.head(), model.head());
        assert_eq!(global.layers()[0].fw().bias(), model.layers()[0].fw().bias());
    }
    let per = magnitude(&model, 0.5, Scope::PerMatrix).unwrap();
    for l in per.layers().iter().map(|l| l.fw()) {
        for m in [l.w_ih(), l.w_hh()] {
            assert_eq!(
                m.iter().filter(|&&w| w != 0.0).count(),
                m.len() - (0.5 * m.len() as f64).round() as usize
            );
        }
    }
    assert!(magnitude(&model, 1.5, Scope::Global).is_err());
}

#[test]
fn matched_pruning_has_the_iss_weight_count() {
    let model = spec(9, &[16, 12], Some(5), Some(vec![6, 5]));
    let report = analyze(&model, 0.0);
    let compacted = compact(&model, &report).unwrap().model;
    let pruned = match_iss(&model, &report, false).unwrap();
    let compact_weights: usize = compacted.directions().map(|(_, _, l)| l.w_ih().len() + l.w_hh().len()).sum();
    assert_eq!(lstm_nonzeros(&pruned), compact_weights);
    // Here the nonzeros are exactly the ISS structure, so outputs are unchanged.
    let dense = magnitude(&spec(9, &[16, 12], Some(5), None), 0.0, Scope::Global).unwrap();
    let matched_dense = match_iss(&dense, &report, false).unwrap();
    assert_eq!(lstm_nonzeros(&matched_dense), compact_weights);
    let inputs = Inputs::random(&model, 3, 2, 1);
    assert_eq!(
        reference_forward(&pruned, &inputs).unwrap(),
        reference_forward(&model, &inputs).unwrap()
    );
}
