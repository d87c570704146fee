//! The CSR kernel against the dense kernel on DeepBench's sparse problems,
//! measured in one process with the two interleaved (best of 6 each), and
//! the CSR time against its ideal: the nonzero count at the dense kernel's
//! GFLOP/s (issue 5's goal at n = 1500 is within 2x of it).
//!
//! `cargo run --release --example csr_vs_dense` (env: `T` threads, default 2;
//! `N` batch, default 1500). Interleaving matters on a shared host, whose
//! speed drifts by tens of percent between separate runs.

use issbench::deepbench::inference_problems;
use issbench::kernels::{CsrMatrix, MatMut, MatRef, PackedMatrix, csr_matmul, packed_gemm};
use issbench::model::synthetic::SplitMix64;
use std::time::Instant;

/// Seconds one call of `f` takes.
fn time(mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

/// The environment variable `name` as a number, or `default`.
fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn main() {
    let (threads, n) = (env_or("T", 2), env_or("N", 1500));
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    for p in inference_problems().into_iter().filter(|p| p.n == n) {
        let w = p.weights(7);
        let start = Instant::now();
        let csr = CsrMatrix::from_dense(&w, p.m, p.k, 0.0).unwrap();
        let conversion = start.elapsed().as_secs_f64();
        let packed = PackedMatrix::pack_transposed(&w, p.m, p.k);
        let mut rng = SplitMix64::new(3);
        let x: Vec<f32> = (0..p.n * p.k).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let (mut y_sparse, mut y_dense) = (vec![0.0f32; p.n * p.m], vec![0.0f32; p.n * p.m]);
        let (mut dense, mut sparse) = (f64::MAX, f64::MAX);
        pool.install(|| {
            for _ in 0..6 {
                let mut y = MatMut::row_major(&mut y_dense, p.n, p.m);
                dense = dense.min(time(|| packed_gemm(MatRef::row_major(&x, p.n, p.k), &packed, &mut y, false)));
                let mut y = MatMut::row_major(&mut y_sparse, p.n, p.m);
                sparse = sparse.min(time(|| csr_matmul(MatRef::row_major(&x, p.n, p.k), &csr, &mut y, false)));
            }
        });
        let dense_gflops = 2.0 * (p.m * p.k * p.n) as f64 / dense / 1e9;
        let ideal = 2.0 * (csr.nnz() * p.n) as f64 / (dense_gflops * 1e9);
        let max_err = y_sparse.iter().zip(&y_dense).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        println!(
            "{} t{threads}: conversion {:.1} ms | dense {:.2} ms ({dense_gflops:.0} GFLOP/s) | csr {:.2} ms \
             ({:.1}x faster) | ideal {:.2} ms | csr/ideal {:.2} | max |diff| {max_err:.1e}",
            p.name(),
            conversion * 1e3,
            dense * 1e3,
            sparse * 1e3,
            dense / sparse,
            ideal * 1e3,
            sparse / ideal,
        );
    }
}
