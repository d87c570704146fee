//! The crate-side entry points a team forward uses: `A` quantized by
//! parts (its range folded by the workers), claimed products from a bias.

use super::*;
use crate::kernels::team::run_team;
use std::sync::atomic::{AtomicUsize, Ordering};

fn value(i: usize) -> f32 {
    ((i * 7919) % 1013) as f32 / 1013.0 - 0.4
}

#[test]
fn a_quantized_by_parts_and_panels_claimed_by_any_worker_give_one_product() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
    for (m, k, n) in [(1usize, 5usize, 1usize), (7, 37, 33), (61, 300, 200), (300, 65, 97), (0, 3, 40)] {
        let a: Vec<f32> = (0..m * k).map(value).collect();
        let w: Vec<f32> = (0..n * k).map(|i| value(i + 17)).collect();
        let bias: Vec<f32> = (0..n).map(|i| value(i + 5)).collect();
        for kernel in Int8Kernel::available() {
            let b = Int8PackedMatrix::pack_transposed_for(&w, n, k, kernel);
            let a = MatRef::row_major(&a, m, k);
            let mut want = vec![0.0f32; m * n];
            int8_gemm_bias(a, &b, &bias, &mut MatMut::row_major(&mut want, m, n));

            let mut got = vec![f32::NAN; m * n];
            let mut quantized = vec![0u8; quantized_a_len(&b, m)];
            let dst = SharedParts::new(&mut quantized);
            let range = SharedRange::new();
            let shared = SharedOutput::new(&mut got, m, n);
            let (parts, panels) = (5, n.div_ceil(PANEL));
            let (next, done) = (AtomicUsize::new(0), AtomicUsize::new(0));
            pool.install(|| {
                run_team(3, &|w, team| {
                    for part in (w..parts).step_by(3) {
                        range.fold(a_range(a, a_part_rows(&b, m, part, parts)));
                    }
                    team.wait();
                    let (min, max) = range.get();
                    let quant = AQuant::from_range(min, max);
                    for part in (w..parts).step_by(3) {
                        // SAFETY: the parts are disjoint ranges of the buffer,
                        // which outlives the team.
                        unsafe { quantize_a_part(&b, a, quant, dst, part, parts) };
                    }
                    team.wait();
                    // SAFETY: the barrier orders every part's writes before
                    // this read; nobody writes the buffer any more.
                    let quantized = unsafe { std::slice::from_raw_parts(dst.0, quantized_a_len(&b, m)) };
                    let claim = || {
                        let p = next.fetch_add(1, Ordering::Relaxed);
                        (p < panels).then(|| p..p + 1)
                    };
                    let count = |r: std::ops::Range<usize>| {
                        done.fetch_add(r.len(), Ordering::Relaxed);
                    };
                    // SAFETY: each claimed panel goes to one worker; the bias
                    // outlives the call.
                    unsafe { int8_gemm_claimed_prepacked(quantized, m, quant, &b, shared, Start::bias(&bias), claim, count) };
                })
            });
            assert_eq!(done.load(Ordering::Relaxed), panels, "{m}x{k}x{n}: every panel done once");
            assert!(
                got.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{kernel:?} {m}x{k}x{n}"
            );

            // The same from the bias, A quantized by the claiming thread.
            let mut got = vec![f32::NAN; m * n];
            let mut next = 0;
            let claim = || {
                next += 2;
                (next - 2 < panels).then(|| next - 2..next.min(panels))
            };
            // SAFETY: one thread runs every claimed panel.
            unsafe {
                let shared = SharedOutput::new(&mut got, m, n);
                int8_gemm_claimed_from(a, &b, shared, Start::bias(&bias), claim, |_| {});
            }
            assert!(
                got.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{kernel:?} {m}x{k}x{n} from"
            );
        }
    }
}

#[test]
fn parts_cover_the_rows_in_whole_row_blocks() {
    for kernel in Int8Kernel::available() {
        let b = Int8PackedMatrix::pack_transposed_for(&[0.0; 6], 2, 3, kernel);
        for m in [0usize, 1, 5, 13, 300] {
            for parts in [1usize, 2, 3, 8, 40] {
                let rows: Vec<_> = (0..parts).map(|p| a_part_rows(&b, m, p, parts)).collect();
                assert_eq!(rows.iter().map(|r| r.len()).sum::<usize>(), m);
                assert!(rows.windows(2).all(|w| w[0].end == w[1].start));
            }
        }
    }
}
