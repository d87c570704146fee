//! The packed GEMM on the shapes the PTB LSTM runs, in GFLOP/s and as a share
//! of the FMA peak measured in the same process (and, for the skinny shapes,
//! in GB/s of weights streamed).
//!
//! `cargo run --release --example gemm_shapes` (env: `T` threads, default 2;
//! `R` rounds, default 5; `S=m,k,n` for one shape of your own). Each round times every shape once, and the best
//! round counts, so a drifting shared host hurts every shape alike. The
//! median round is printed beside it: on a noisy host the two differ by
//! up to a third (1 x 373 x 1492 on Zen 4 once: best 34.9 us, median 45.3), and
//! a whole forward pass, timed by its median, is to be compared with the
//! median.

use issbench::hardware::{fma_pass_flops, fma_peak_pass};
use issbench::kernels::{MatMut, MatRef, PackedMatrix, packed_gemm};
use issbench::model::synthetic::SplitMix64;
use std::time::Instant;

/// (M, K, N): batch 1 and 10 recurrent steps, and the input projection of 30
/// steps at batch 10, for the full (1500) and the ISS-compacted (373) layer.
const SHAPES: [(usize, usize, usize); 8] = [
    (1, 1500, 6000),
    (10, 1500, 6000),
    (300, 1500, 6000),
    (1, 373, 1492),
    (10, 373, 1492),
    (30, 1500, 1492),
    (300, 1500, 1492),
    (300, 373, 1260),
];

/// The environment variable `name` as a number, or `default`.
fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..len).map(|_| rng.uniform(-1.0, 1.0)).collect()
}

fn main() {
    let (threads, rounds) = (env_or("T", 2), env_or("R", 5));
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| {
        let iterations = 2_000_000;
        let peak_pass = || {
            let t = Instant::now();
            std::hint::black_box(fma_peak_pass(iterations));
            fma_pass_flops(iterations) * threads as f64 / t.elapsed().as_secs_f64() / 1e9
        };
        let mut peak = (0..3).map(|_| peak_pass()).fold(0.0, f64::max);
        // `S=m,k,n` times that one shape instead.
        let custom: Option<Vec<usize>> = std::env::var("S")
            .ok()
            .map(|s| s.split(',').map(|v| v.trim().parse().expect("S=m,k,n")).collect());
        let shapes: Vec<(usize, usize, usize)> = match custom.as_deref() {
            Some(&[m, k, n]) => vec![(m, k, n)],
            Some(_) => panic!("S=m,k,n takes three numbers"),
            None => SHAPES.to_vec(),
        };
        let cases: Vec<_> = shapes
            .iter()
            .map(|&(m, k, n)| {
                let packed = PackedMatrix::pack_transposed(&random(n * k, 1), n, k);
                (m, k, n, packed, random(m * k, 2), vec![0.0f32; m * n])
            })
            .collect();
        let mut rounds_secs = vec![Vec::with_capacity(rounds); cases.len()];
        for _ in 0..rounds {
            for (case, secs) in cases.iter().zip(rounds_secs.iter_mut()) {
                let (m, k, n, packed, a, _) = case;
                let mut out = case.5.clone();
                let reps = (2e8 / (m * k * n) as f64).ceil() as usize;
                let t = Instant::now();
                for _ in 0..reps {
                    packed_gemm(
                        MatRef::row_major(a, *m, *k),
                        packed,
                        &mut MatMut::row_major(&mut out, *m, *n),
                        false,
                    );
                }
                secs.push(t.elapsed().as_secs_f64() / reps as f64);
            }
            peak = peak.max(peak_pass());
        }
        println!("FMA peak {peak:.0} GFLOP/s on {threads} threads");
        for ((m, k, n, packed, ..), secs) in cases.iter().zip(&mut rounds_secs) {
            secs.sort_by(f64::total_cmp);
            let (best, median) = (secs[0], secs[secs.len() / 2]);
            let gflops = 2.0 * (m * k * n) as f64 / best / 1e9;
            println!(
                "m{m:<4} k{k:<5} n{n:<5} {:>9.1} us (median {:>9.1}) {gflops:>6.1} GFLOP/s {:>5.1}% of peak {:>6.1} GB/s of weights",
                best * 1e6,
                median * 1e6,
                100.0 * gflops / peak,
                packed.bytes() as f64 / best / 1e9
            );
        }
    });
}
