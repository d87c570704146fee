//! The fp32 packed GEMM against the bf16 and int8 products on the shapes
//! the PTB LSTM runs, timed in one process by turns: GFLOP/s (int8: GOP/s,
//! two operations per multiply-add as for the others), speedup over fp32,
//! and the share of each product spent preparing `A` (bf16: rounding it;
//! int8: its range and quantization), timed apart on the same `A`.
//!
//! `cargo run --release --example precision_shapes` (env: `T=1,2` thread
//! counts; `R` rounds, default 7; `S=m,k,n` for one shape of your own;
//! `BF16=` and `INT8=` a kernel by name, e.g. `BF16=avx512 INT8=avx2`, in
//! place of the widest; `ISSBENCH_SIMD` caps all three as usual; `ERR=1`
//! prints each product's error against the f64 product of the f32
//! operands first: activations uniform in (-1, 1), weights in (-0.3, 0.3)).
//! Each round times every shape and precision once, so a drifting shared
//! host hurts them alike; the best round of each counts, and the speedup
//! of the medians is printed beside the speedup of the bests.

use issbench::kernels::bf16::{Bf16Kernel, Bf16PackedMatrix, bf16_gemm, round_a_part, rounded_a_len};
use issbench::kernels::int8::{AQuant, Int8Kernel, Int8PackedMatrix, a_range, int8_gemm, quantize_a_part, quantized_a_len};
use issbench::kernels::{MatMut, MatRef, PackedMatrix, SharedParts, packed_gemm};
use issbench::model::synthetic::SplitMix64;
use std::time::Instant;

/// (M, K, N): the compacted model's recurrent steps at batch 1 and 10 (373
/// and 315 units), its input projections of 30 steps at batch 10, and the
/// full model's recurrent step at batch 10.
const SHAPES: [(usize, usize, usize); 6] = [
    (1, 373, 1492),
    (10, 373, 1492),
    (10, 315, 1260),
    (300, 1500, 1492),
    (300, 373, 1260),
    (10, 1500, 6000),
];

fn random(len: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..len).map(|_| rng.uniform(-scale, scale)).collect()
}

/// One shape's operands in every precision.
struct Case {
    m: usize,
    k: usize,
    n: usize,
    a: Vec<f32>,
    /// The weight, row-major `n x k`.
    w: Vec<f32>,
    fp32: PackedMatrix,
    bf16: Bf16PackedMatrix,
    int8: Int8PackedMatrix,
}

/// Seconds per call of `f`, over enough calls for about 2 · 10^8 multiply-adds.
fn time(macs: usize, mut f: impl FnMut()) -> f64 {
    let reps = (2e8 / macs as f64).ceil() as usize;
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    t.elapsed().as_secs_f64() / reps as f64
}

fn main() {
    let threads: Vec<usize> = std::env::var("T")
        .ok()
        .map(|s| s.split(',').map(|v| v.trim().parse().expect("T=1,2")).collect())
        .unwrap_or_else(|| vec![1, 2]);
    let rounds: usize = std::env::var("R").ok().and_then(|s| s.parse().ok()).unwrap_or(7);
    let custom: Option<Vec<usize>> = std::env::var("S")
        .ok()
        .map(|s| s.split(',').map(|v| v.trim().parse().expect("S=m,k,n")).collect());
    let shapes: Vec<(usize, usize, usize)> = match custom.as_deref() {
        Some(&[m, k, n]) => vec![(m, k, n)],
        Some(_) => panic!("S=m,k,n takes three numbers"),
        None => SHAPES.to_vec(),
    };
    // The kernels asked for by name, else the widest.
    let pick = |var: &str, names: Vec<&'static str>| {
        std::env::var(var).ok().map(|want| {
            names
                .iter()
                .position(|&n| n == want)
                .unwrap_or_else(|| panic!("{var}={want}: this CPU runs {names:?}"))
        })
    };
    let bf16_kernels = Bf16Kernel::available();
    let int8_kernels = Int8Kernel::available();
    let bf16_kernel = bf16_kernels[pick("BF16", bf16_kernels.iter().map(|k| k.name()).collect()).unwrap_or(0)];
    let int8_kernel = int8_kernels[pick("INT8", int8_kernels.iter().map(|k| k.name()).collect()).unwrap_or(0)];
    let cases: Vec<Case> = shapes
        .iter()
        .map(|&(m, k, n)| {
            let w = random(n * k, 1, 0.3);
            // Activations like an LSTM's: in (-1, 1).
            Case {
                m,
                k,
                n,
                a: random(m * k, 2, 1.0),
                fp32: PackedMatrix::pack_transposed(&w, n, k),
                bf16: Bf16PackedMatrix::pack_transposed_for(&w, n, k, bf16_kernel),
                int8: Int8PackedMatrix::pack_transposed_for(&w, n, k, int8_kernel),
                w,
            }
        })
        .collect();
    if let Some(case) = cases.first() {
        println!(
            "kernels: fp32 {}, bf16 {}, int8 {}",
            case.fp32.level().name(),
            case.bf16.kernel().name(),
            case.int8.kernel().name()
        );
    }
    if std::env::var("ERR").is_ok() {
        errors(&cases);
    }
    for &t in &threads {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
        pool.install(|| run(&cases, t, rounds));
    }
}

/// Times every case `rounds` times on the current pool and prints a line each.
fn run(cases: &[Case], threads: usize, rounds: usize) {
    // Per case: per precision, the times of each round; then the preparation times.
    let mut secs = vec![[Vec::new(), Vec::new(), Vec::new()]; cases.len()];
    let mut prep = vec![[Vec::new(), Vec::new()]; cases.len()];
    let mut c = vec![0.0f32; cases.iter().map(|c| c.m * c.n).max().unwrap_or(0)];
    let mut rounded = Vec::new();
    let mut quantized = Vec::new();
    for _ in 0..rounds {
        for (case, (secs, prep)) in cases.iter().zip(secs.iter_mut().zip(prep.iter_mut())) {
            let (m, k, n) = (case.m, case.k, case.n);
            let macs = m * k * n;
            let a = MatRef::row_major(&case.a, m, k);
            let c = &mut c[..m * n];
            secs[0].push(time(macs, || packed_gemm(a, &case.fp32, &mut MatMut::row_major(c, m, n), false)));
            secs[1].push(time(macs, || bf16_gemm(a, &case.bf16, &mut MatMut::row_major(c, m, n), false)));
            secs[2].push(time(macs, || int8_gemm(a, &case.int8, &mut MatMut::row_major(c, m, n), false)));
            // A's preparation alone, on the calling thread (as a product
            // below 2^16 elements of A prepares it).
            rounded.resize(rounded_a_len(&case.bf16, m), 0u16);
            quantized.resize(quantized_a_len(&case.int8, m), 0u8);
            let dst = SharedParts::new(&mut rounded);
            // SAFETY: one part, the whole buffer, sized above.
            prep[0].push(time(macs, || unsafe { round_a_part(&case.bf16, a, dst, 0, 1) }));
            let dst = SharedParts::new(&mut quantized);
            prep[1].push(time(macs, || {
                let (min, max) = a_range(a, 0..m);
                // SAFETY: as above.
                unsafe { quantize_a_part(&case.int8, a, AQuant::from_range(min, max), dst, 0, 1) }
            }));
        }
    }
    println!(
        "\n{threads} thread(s), best of {rounds} rounds (speedup of the bests / of the medians; prep: A's rounding or quantization, % of the product)"
    );
    println!(
        "{:>4} {:>5} {:>5} | {:>9} {:>7} | {:>9} {:>7} {:>11} {:>5} | {:>9} {:>7} {:>11} {:>5}",
        "m", "k", "n", "fp32 us", "GFLOP/s", "bf16 us", "GFLOP/s", "speedup", "prep", "int8 us", "GOP/s", "speedup", "prep"
    );
    for (case, (secs, prep)) in cases.iter().zip(secs.iter_mut().zip(prep.iter_mut())) {
        let ops = 2.0 * (case.m * case.k * case.n) as f64;
        let mut best = [0.0; 3];
        let mut median = [0.0; 3];
        for (i, s) in secs.iter_mut().enumerate() {
            s.sort_by(f64::total_cmp);
            (best[i], median[i]) = (s[0], s[s.len() / 2]);
        }
        let prep: Vec<f64> = prep
            .iter_mut()
            .map(|p| {
                p.sort_by(f64::total_cmp);
                p[0]
            })
            .collect();
        let column = |i: usize| {
            format!(
                "{:>9.1} {:>7.1} {:>5.2}/{:<5.2} {:>4.0}%",
                best[i] * 1e6,
                ops / best[i] / 1e9,
                best[0] / best[i],
                median[0] / median[i],
                100.0 * prep[i - 1] / best[i]
            )
        };
        println!(
            "{:>4} {:>5} {:>5} | {:>9.1} {:>7.1} | {} | {}",
            case.m,
            case.k,
            case.n,
            best[0] * 1e6,
            ops / best[0] / 1e9,
            column(1),
            column(2)
        );
    }
}

/// Each precision's largest and root-mean-square error against the f64
/// product of the f32 operands, and the size of the outputs (RMS).
fn errors(cases: &[Case]) {
    println!("\nerror against the f64 product (max abs / rms; outputs' rms)");
    for case in cases {
        let (m, k, n) = (case.m, case.k, case.n);
        let exact: Vec<f64> = (0..m * n)
            .map(|e| {
                let (i, j) = (e / n, e % n);
                (0..k).map(|p| f64::from(case.a[i * k + p]) * f64::from(case.w[j * k + p])).sum()
            })
            .collect();
        let a = MatRef::row_major(&case.a, m, k);
        let mut line = format!(
            "{m:>4} {k:>5} {n:>5} | rms {:.3e}",
            (exact.iter().map(|v| v * v).sum::<f64>() / exact.len() as f64).sqrt()
        );
        let mut c = vec![0.0f32; m * n];
        for name in ["fp32", "bf16", "int8"] {
            let mut cm = MatMut::row_major(&mut c, m, n);
            match name {
                "fp32" => packed_gemm(a, &case.fp32, &mut cm, false),
                "bf16" => bf16_gemm(a, &case.bf16, &mut cm, false),
                _ => int8_gemm(a, &case.int8, &mut cm, false),
            }
            let err: Vec<f64> = c.iter().zip(&exact).map(|(&g, &e)| (f64::from(g) - e).abs()).collect();
            let max = err.iter().fold(0.0f64, |m, &e| m.max(e));
            let rms = (err.iter().map(|e| e * e).sum::<f64>() / err.len() as f64).sqrt();
            line += &format!(" | {name} {max:.2e} / {rms:.2e}");
        }
        println!("{line}");
    }
}
