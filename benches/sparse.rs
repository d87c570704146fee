//! DeepBench's inference sparse GEMM problems: issbench's CSR kernel against
//! the dense kernel of this suite on the same matrix, and against `sprs`'s
//! CSR x dense product (the Rust peer, single-threaded).
//!
//! Names: `sparse/<problem>/{csr,dense,sprs}/t<threads>`. Throughput counts
//! the *useful* flops (2 · nnz · n) for every variant, so "elem/s" compare
//! directly; the dense variant's own rate is that times 1 / density.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use issbench::deepbench::inference_problems;
use issbench::kernels::{CsrMatrix, MatMut, MatRef, PackedMatrix, csr_matmul, packed_gemm};
use issbench::model::synthetic::SplitMix64;
use ndarray::{Array2, ArrayView2};
use std::time::Duration;

fn bench_sparse(c: &mut Criterion) {
    let mut group = c.benchmark_group("sparse");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    let pools: Vec<(usize, rayon::ThreadPool)> = [1, 2]
        .iter()
        .map(|&t| (t, rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap()))
        .collect();
    for p in inference_problems() {
        let w = p.weights(7);
        let csr = CsrMatrix::from_dense(&w, p.m, p.k, 0.0).unwrap();
        let mut rng = SplitMix64::new(3);
        // X as issbench takes it: n rows (batch) of k inputs.
        let x: Vec<f32> = (0..p.n * p.k).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let mut y = vec![0.0f32; p.n * p.m];
        group.throughput(Throughput::Elements((2 * csr.nnz() * p.n) as u64));
        let name = p.name();
        for (threads, pool) in &pools {
            group.bench_function(format!("{name}/csr/t{threads}"), |b| {
                b.iter(|| {
                    pool.install(|| {
                        csr_matmul(
                            MatRef::row_major(&x, p.n, p.k),
                            &csr,
                            &mut MatMut::row_major(&mut y, p.n, p.m),
                            false,
                        )
                    })
                })
            });
        }
        // The dense kernel on the same matrix, zeros included (sparsity-independent:
        // measured once per shape and n).
        if p.sparsity == 0.90 {
            let packed = PackedMatrix::pack_transposed(&w, p.m, p.k);
            for (threads, pool) in &pools {
                group.bench_function(format!("{name}/dense/t{threads}"), |b| {
                    b.iter(|| {
                        pool.install(|| {
                            packed_gemm(
                                MatRef::row_major(&x, p.n, p.k),
                                &packed,
                                &mut MatMut::row_major(&mut y, p.n, p.m),
                                false,
                            )
                        })
                    })
                });
            }
        }
        // sprs: W (CSR) times Xᵀ (k x n, row-major), one thread.
        let (indptr, indices, data) = {
            let mut indptr = vec![0usize];
            let (mut indices, mut data) = (Vec::new(), Vec::new());
            for row in w.chunks_exact(p.k) {
                for (c, &v) in row.iter().enumerate().filter(|(_, v)| **v != 0.0) {
                    indices.push(c);
                    data.push(v);
                }
                indptr.push(indices.len());
            }
            (indptr, indices, data)
        };
        let sp = sprs::CsMat::new((p.m, p.k), indptr, indices, data);
        let xt = ArrayView2::from_shape((p.n, p.k), &x)
            .unwrap()
            .t()
            .as_standard_layout()
            .into_owned();
        let mut out = Array2::<f32>::zeros((p.m, p.n));
        group.bench_function(format!("{name}/sprs/t1"), |b| {
            b.iter(|| {
                out.fill(0.0);
                sprs::prod::csr_mulacc_dense_rowmaj(sp.view(), xt.view(), out.view_mut());
            })
        });
    }
    group.finish();
}

/// Criterion with the font its plots need (plotters has no system fonts here).
fn config() -> Criterion {
    issbench::report::charts::register_font();
    Criterion::default()
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_sparse
}
criterion_main!(benches);
