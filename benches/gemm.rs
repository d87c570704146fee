//! GEMM speed on the shapes an LSTM runs, in GFLOP/s, next to what the
//! machine can do: memory read bandwidth and FMA peak.
//!
//! Shapes: M (rows of activations) in {1, 10, 300} = batch 1, batch 10 and
//! the hoisted input projection of 30 steps x batch 10; K x N in
//! {1500 x 6000, 373 x 1492} = the PTB layer 1500 and the ISS-compacted 373.
//! Criterion's "elem/s" figures are FLOP/s (each product counts 2·M·K·N).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use issbench::hardware::{fma_pass_flops, fma_peak_pass, read_pass};
use issbench::kernels::{MatMut, MatRef, PackedMatrix, gemm, packed_gemm};
use issbench::model::synthetic::SplitMix64;
use std::hint::black_box;
use std::time::Duration;

const SHAPES: [(usize, usize); 2] = [(1500, 6000), (373, 1492)];
const ROWS: [usize; 3] = [1, 10, 300];

fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..len).map(|_| rng.uniform(-1.0, 1.0)).collect()
}

fn bench_gemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (k, n) in SHAPES {
        // The weight W is [n, k] row-major, as every LSTM weight is; B = Wᵀ.
        let w = random(n * k, 1);
        let packed = PackedMatrix::pack_transposed(&w, n, k);
        for m in ROWS {
            let a = random(m * k, 2);
            let mut out = vec![0.0f32; m * n];
            group.throughput(Throughput::Elements((2 * m * k * n) as u64));
            let id = format!("m{m}_k{k}_n{n}");
            group.bench_function(BenchmarkId::new("packed", &id), |bench| {
                bench.iter(|| packed_gemm(MatRef::row_major(&a, m, k), &packed, &mut MatMut::row_major(&mut out, m, n), false))
            });
            group.bench_function(BenchmarkId::new("strided", &id), |bench| {
                bench.iter(|| {
                    gemm(
                        MatRef::row_major(&a, m, k),
                        MatRef::row_major(&w, n, k).t(),
                        &mut MatMut::row_major(&mut out, m, n),
                        false,
                    )
                })
            });
            // matrixmultiply alone: one sgemm call on the calling thread (or on
            // its own pool with the `mm-threading` feature).
            let name = if cfg!(feature = "mm-threading") {
                "mm_threaded"
            } else {
                "mm_single_call"
            };
            group.bench_function(BenchmarkId::new(name, &id), |bench| {
                bench.iter(|| unsafe {
                    // SAFETY: all three buffers hold the shapes given.
                    matrixmultiply::sgemm(
                        m,
                        k,
                        n,
                        1.0,
                        a.as_ptr(),
                        k as isize,
                        1,
                        w.as_ptr(),
                        1,
                        k as isize,
                        0.0,
                        out.as_mut_ptr(),
                        n as isize,
                        1,
                    )
                })
            });
        }
    }
    group.finish();
}

fn bench_machine(c: &mut Criterion) {
    let mut group = c.benchmark_group("machine");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    // 1 GiB: far past any last-level cache.
    let big = random(1 << 28, 3);
    group.throughput(Throughput::Bytes((big.len() * 4) as u64));
    group.bench_function("read_bandwidth_1GiB", |b| b.iter(|| black_box(read_pass(&big))));
    // The packed weights of one PTB layer (72 MB) and of the ISS layer (4.5 MB):
    // where the LSTM's weights actually live.
    for (k, n) in SHAPES {
        let w = random(k * n * 2, 4);
        group.throughput(Throughput::Bytes((w.len() * 4) as u64));
        group.bench_function(format!("read_bandwidth_{}KiB", w.len() * 4 / 1024), |b| {
            b.iter(|| black_box(read_pass(&w)))
        });
    }
    let iterations = 1 << 20;
    group.throughput(Throughput::Elements(
        (fma_pass_flops(iterations) * rayon::current_num_threads() as f64) as u64,
    ));
    group.bench_function("fma_peak", |b| b.iter(|| black_box(fma_peak_pass(iterations))));
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
    targets = bench_gemm, bench_machine
}
criterion_main!(benches);
