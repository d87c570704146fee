//! Block sparsity against unstructured sparsity and dense, kernel by kernel:
//! the dense packed kernel, the CSR kernel (DeepBench's uniform sparsity)
//! and the BSR kernel for each block shape (the same number of weights,
//! kept in whole blocks by block magnitude pruning of a random matrix), on
//! DeepBench's inference shapes and the PTB model's recurrent weights,
//! interleaved in one process (best of `REPS` each).
//!
//! Per kernel it prints the time, GFLOP/s per stored weight (2 · stored ·
//! batch / time: CSR stores its nonzeros, BSR whole blocks), the speedup
//! over dense, and the time over the ideal (dense time × density; the
//! block-sparsity issue's goals: BSR 16x16 within 1.3x at n = 1500, CSR
//! within 2x), and which BSR kernel ran. The PTB rows are the large model's
//! recurrent step (`W_hh`, 6000 x 1500) and a layer's weights side by side
//! (`4h x (in + h)`, 6000 x 3000).
//!
//! `cargo run --release --example bsr_vs_csr`; env (comma-separated
//! lists): `P` problems (`7680x2560,10752x3584,6000x1500,6000x3000`), `S`
//! sparsities (`0.9,0.95`), `N` batches (`1,4,10,1500`), `T` threads
//! (`1,2`), `B` blocks (`1x4,4x4,8x8,16x16,32x32,16x1,1x16`), `REPS` (5).

use issbench::deepbench::SparseProblem;
use issbench::kernels::{BsrMatrix, CsrMatrix, MatMut, MatRef, PackedMatrix, bsr_matmul, csr_matmul, packed_gemm};
use issbench::model::synthetic::SplitMix64;
use issbench::prune::prune_blocks;
use std::time::Instant;

/// The environment variable `name` as a comma-separated list, or `default`.
fn list<T: std::str::FromStr>(name: &str, default: &str) -> Vec<T> {
    let s = std::env::var(name).unwrap_or_else(|_| default.to_string());
    s.split(',').filter_map(|v| v.trim().parse().ok()).collect()
}

/// `a x b` as a pair.
fn pair(s: &str) -> (usize, usize) {
    let (a, b) = s.split_once('x').expect("shapes are written RxC");
    (a.parse().unwrap(), b.parse().unwrap())
}

/// Seconds one call of `f` takes.
fn time(mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

/// One kernel under test on one problem.
enum Kernel {
    Dense(PackedMatrix),
    Csr(CsrMatrix),
    Bsr(BsrMatrix),
}

impl Kernel {
    fn run(&self, x: MatRef, y: &mut MatMut) {
        match self {
            Kernel::Dense(p) => packed_gemm(x, p, y, false),
            Kernel::Csr(c) => csr_matmul(x, c, y, false),
            Kernel::Bsr(b) => bsr_matmul(x, b, y, false),
        }
    }
    /// Weights the kernel multiplies.
    fn stored(&self, m: usize, k: usize) -> usize {
        match self {
            Kernel::Dense(_) => m * k,
            Kernel::Csr(c) => c.nnz(),
            Kernel::Bsr(b) => b.stored_values(),
        }
    }
}

fn main() {
    let problems: Vec<String> = list("P", "7680x2560,10752x3584,6000x1500,6000x3000");
    let sparsities: Vec<f64> = list("S", "0.9,0.95");
    let batches: Vec<usize> = list("N", "1,4,10,1500");
    let threads: Vec<usize> = list("T", "1,2");
    let blocks: Vec<String> = list("B", "1x4,4x4,8x8,16x16,32x32,16x1,1x16");
    let reps = list::<usize>("REPS", "5").first().copied().unwrap_or(5);
    for problem in &problems {
        let (m, k) = pair(problem);
        let mut rng = SplitMix64::new(11);
        let dense_w: Vec<f32> = (0..m * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let dense = Kernel::Dense(PackedMatrix::pack_transposed(&dense_w, m, k));
        for &sparsity in &sparsities {
            let density = 1.0 - sparsity;
            let keep = (density * (m * k) as f64).round() as usize;
            let csr_w = SparseProblem { m, k, n: 1, sparsity }.weights(7);
            let mut sparse = vec![("csr".to_string(), Kernel::Csr(CsrMatrix::from_dense(&csr_w, m, k, 0.0).unwrap()))];
            for block in &blocks {
                let mut w = dense_w.clone();
                prune_blocks(&mut w, m, k, pair(block), keep).unwrap();
                sparse.push((
                    format!("bsr {block}"),
                    Kernel::Bsr(BsrMatrix::from_dense(&w, m, k, pair(block)).unwrap()),
                ));
            }
            let all: Vec<(&str, &Kernel)> = std::iter::once(("dense", &dense))
                .chain(sparse.iter().map(|(name, kernel)| (name.as_str(), kernel)))
                .collect();
            for &t in &threads {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
                for &n in &batches {
                    let x: Vec<f32> = (0..n * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
                    let mut y = vec![0.0f32; n * m];
                    let mut best = vec![f64::MAX; all.len()];
                    pool.install(|| {
                        for _ in 0..reps {
                            for (i, (_, kernel)) in all.iter().enumerate() {
                                let mut out = MatMut::row_major(&mut y, n, m);
                                best[i] = best[i].min(time(|| kernel.run(MatRef::row_major(&x, n, k), &mut out)));
                            }
                        }
                    });
                    let ideal = best[0] * density;
                    println!(
                        "{m}x{k} s{sparsity} n{n} t{t}: dense {:.3} ms ({:.0} GFLOP/s), ideal {:.3} ms",
                        best[0] * 1e3,
                        2.0 * (m * k * n) as f64 / best[0] / 1e9,
                        ideal * 1e3
                    );
                    for (i, (name, kernel)) in all.iter().enumerate().skip(1) {
                        let kind = match kernel {
                            Kernel::Bsr(b) => b.kernel(),
                            _ => String::new(),
                        };
                        println!(
                            "  {name:<10} {:>9.3} ms {:>6.1} GF/s {:>6.2}x dense {:>5.2} ideal  {kind}",
                            best[i] * 1e3,
                            2.0 * (kernel.stored(m, k) * n) as f64 / best[i] / 1e9,
                            best[0] / best[i],
                            best[i] / ideal,
                        );
                    }
                }
            }
        }
    }
}
