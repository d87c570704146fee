//! The AVX2 + FMA bf16 micro-kernels, for CPUs without `vdpbf16ps`: up to
//! 4 rows by a 16-column half of a panel. Each pair row's 32-bit lanes
//! (the even step's bf16 in the low half, the odd one's in the high half)
//! widen to two f32 vectors by a shift and a mask, and fused multiply-adds
//! add the odd step's product, then the even one's: both exact in f32, so
//! each rounds once, as the portable kernels' additions do.

use super::blocking::{PAIR, PAIR_ROW};
use super::micro::{KernelFn, MicroKernels, Tile};

/// The AVX2 kernels.
pub(super) struct Avx2;

/// Columns per call: half a panel (16 ymm registers hold 4 rows of two
/// accumulators beside the widened weights).
const HALF: usize = 16;

impl MicroKernels for Avx2 {
    const MR: usize = 4;
    const NR: usize = HALF;
    fn kernel(rows: usize, _prefetch: bool) -> KernelFn {
        match rows {
            1 => avx2::<1, 4> as KernelFn,
            2 => avx2::<2, 2>,
            // Two chains of 3 rows (12 accumulators) would not fit the 16
            // registers beside the widened weights.
            3 => avx2::<3, 1>,
            4 => avx2::<4, 1>,
            _ => unreachable!("row block of {rows}"),
        }
    }
}

/// `MR` rows x 16 columns from `t.col0` in `2 · MR` ymm accumulators per
/// chain; the first chain starts from `C` or the bias. With `CHAINS > 1`
/// (blocks of 1-2 rows, whose few accumulators would wait on the latency
/// of two dependent multiply-adds per pair), consecutive pairs go to
/// independent accumulator sets, added to the first at the end.
///
/// # Safety
/// AVX2 and FMA must be present, `t.rows == MR`, and the tile must lie
/// inside `A`, the panel and `C`.
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2<const MR: usize, const CHAINS: usize>(t: &Tile) {
    debug_assert_eq!(t.rows, MR);
    // SAFETY: the caller guarantees the CPU features and that the tile
    // lies inside A, the panel and C (see `Job::run_panels`).
    unsafe {
        use std::arch::x86_64::*;
        // One accumulator set per chain, each its own array (an array of
        // chains, indexed by chain, was kept in memory by the compiler and
        // stored at every step); the sets past `CHAINS` go unused.
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        let (mut acc1, mut acc2, mut acc3) = (acc, acc, acc);
        // Every row's start values first, then into the registers in a
        // loop the compiler unrolls: a row index into `acc` in a longer
        // loop would keep `acc` in memory, and every step would store it.
        let mut rows = [[0.0f32; HALF]; MR];
        for (r, row) in rows.iter_mut().enumerate() {
            t.start_row::<HALF>(r, row);
        }
        for (acc_r, row) in acc.iter_mut().zip(&rows) {
            *acc_r = [_mm256_loadu_ps(row.as_ptr()), _mm256_loadu_ps(row.as_ptr().add(8))];
        }
        let high = _mm256_set1_epi32(0xffff_0000u32 as i32);
        let mut bp = t.panel.add(PAIR * t.col0);
        let mut ap = t.a;
        // One pair into accumulator set `$chain` (a macro, not a closure:
        // a closure would not inherit this function's target features).
        macro_rules! step {
            ($chain:expr) => {
                let w = [_mm256_loadu_si256(bp.cast()), _mm256_loadu_si256(bp.add(16).cast())];
                let even = w.map(|v| _mm256_castsi256_ps(_mm256_slli_epi32::<16>(v)));
                let odd = w.map(|v| _mm256_castsi256_ps(_mm256_and_si256(v, high)));
                for (r, acc_r) in $chain.iter_mut().enumerate() {
                    let x = _mm256_set1_epi32(ap.add(PAIR * r).cast::<i32>().read_unaligned());
                    let x0 = _mm256_castsi256_ps(_mm256_slli_epi32::<16>(x));
                    let x1 = _mm256_castsi256_ps(_mm256_and_si256(x, high));
                    for (v, acc_v) in acc_r.iter_mut().enumerate() {
                        *acc_v = _mm256_fmadd_ps(x1, odd[v], *acc_v);
                        *acc_v = _mm256_fmadd_ps(x0, even[v], *acc_v);
                    }
                }
                bp = bp.add(PAIR_ROW);
                ap = ap.add(PAIR * MR);
            };
        }
        for _ in 0..t.pairs / CHAINS {
            step!(acc);
            if CHAINS > 1 {
                step!(acc1);
            }
            if CHAINS > 2 {
                step!(acc2);
            }
            if CHAINS > 3 {
                step!(acc3);
            }
        }
        for _ in 0..t.pairs % CHAINS {
            step!(acc);
        }
        // The other chains added to the first, each by name and row by
        // row (a loop over the chains, or flattened iterators, which the
        // compiler does not unroll, would keep the sets in memory too).
        macro_rules! fold {
            ($chain:expr) => {
                for r in 0..MR {
                    acc[r][0] = _mm256_add_ps(acc[r][0], $chain[r][0]);
                    acc[r][1] = _mm256_add_ps(acc[r][1], $chain[r][1]);
                }
            };
        }
        if CHAINS > 1 {
            fold!(acc1);
        }
        if CHAINS > 2 {
            fold!(acc2);
        }
        if CHAINS > 3 {
            fold!(acc3);
        }
        // All sums out of the registers first (see the AVX512_BF16 kernel).
        for (row, acc_r) in rows.iter_mut().zip(acc.iter()) {
            _mm256_storeu_ps(row.as_mut_ptr(), acc_r[0]);
            _mm256_storeu_ps(row.as_mut_ptr().add(8), acc_r[1]);
        }
        for (r, row) in rows.iter().enumerate() {
            t.store_row::<HALF>(r, row);
        }
    }
}
