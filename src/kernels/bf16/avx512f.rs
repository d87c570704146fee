//! The AVX-512F bf16 micro-kernels, for AVX-512 CPUs without `vdpbf16ps`
//! (Skylake-SP, Ice Lake): up to 8 rows by a whole panel, the weights
//! widened as in the AVX2 kernels (a shift and a mask per 32-bit lane),
//! fused multiply-adds of the odd step's product, then the even one's.

use super::PANEL;
use super::blocking::{PAIR, PAIR_ROW};
use super::micro::{KernelFn, MicroKernels, Tile};

/// The AVX-512F kernels.
pub(super) struct Avx512F;

impl MicroKernels for Avx512F {
    const MR: usize = 8;
    const NR: usize = PANEL;
    fn kernel(rows: usize, _prefetch: bool) -> KernelFn {
        match rows {
            1 => avx512f::<1, 4> as KernelFn,
            2 => avx512f::<2, 2>,
            3 => avx512f::<3, 2>,
            4 => avx512f::<4, 1>,
            5 => avx512f::<5, 1>,
            6 => avx512f::<6, 1>,
            7 => avx512f::<7, 1>,
            8 => avx512f::<8, 1>,
            _ => unreachable!("row block of {rows}"),
        }
    }
}

/// `MR` rows x 32 columns in `2 · MR` zmm accumulators per
/// chain; the first chain starts from `C` or the bias. With `CHAINS > 1`
/// (blocks of 1-3 rows, whose few accumulators would wait on the latency
/// of two dependent multiply-adds per pair), consecutive pairs go to
/// independent accumulator sets, added to the first at the end.
///
/// # Safety
/// AVX-512F must be present, `t.rows == MR`, and the tile must lie
/// inside `A`, the panel and `C`.
#[target_feature(enable = "avx512f")]
unsafe fn avx512f<const MR: usize, const CHAINS: usize>(t: &Tile) {
    debug_assert_eq!(t.rows, MR);
    // SAFETY: the caller guarantees the CPU features and that the tile
    // lies inside A, the panel and C (see `Job::run_panels`).
    unsafe {
        use std::arch::x86_64::*;
        // One accumulator set per chain, each its own array (an array of
        // chains, indexed by chain, was kept in memory by the compiler and
        // stored at every step); the sets past `CHAINS` go unused.
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        let (mut acc1, mut acc2, mut acc3) = (acc, acc, acc);
        // Every row's start values first, then into the registers in a
        // loop the compiler unrolls: a row index into `acc` in a longer
        // loop would keep `acc` in memory, and every step would store it.
        let mut rows = [[0.0f32; PANEL]; MR];
        for (r, row) in rows.iter_mut().enumerate() {
            t.start_row::<PANEL>(r, row);
        }
        for (acc_r, row) in acc.iter_mut().zip(&rows) {
            *acc_r = [_mm512_loadu_ps(row.as_ptr()), _mm512_loadu_ps(row.as_ptr().add(16))];
        }
        let high = _mm512_set1_epi32(0xffff_0000u32 as i32);
        let mut bp = t.panel.add(PAIR * t.col0);
        let mut ap = t.a;
        // One pair into accumulator set `$chain` (a macro, not a closure:
        // a closure would not inherit this function's target features).
        macro_rules! step {
            ($chain:expr) => {
                let w = [_mm512_loadu_si512(bp.cast()), _mm512_loadu_si512(bp.add(32).cast())];
                let even = w.map(|v| _mm512_castsi512_ps(_mm512_slli_epi32::<16>(v)));
                let odd = w.map(|v| _mm512_castsi512_ps(_mm512_and_si512(v, high)));
                for (r, acc_r) in $chain.iter_mut().enumerate() {
                    let x = _mm512_set1_epi32(ap.add(PAIR * r).cast::<i32>().read_unaligned());
                    let x0 = _mm512_castsi512_ps(_mm512_slli_epi32::<16>(x));
                    let x1 = _mm512_castsi512_ps(_mm512_and_si512(x, high));
                    for (v, acc_v) in acc_r.iter_mut().enumerate() {
                        *acc_v = _mm512_fmadd_ps(x1, odd[v], *acc_v);
                        *acc_v = _mm512_fmadd_ps(x0, even[v], *acc_v);
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
                    acc[r][0] = _mm512_add_ps(acc[r][0], $chain[r][0]);
                    acc[r][1] = _mm512_add_ps(acc[r][1], $chain[r][1]);
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
            _mm512_storeu_ps(row.as_mut_ptr(), acc_r[0]);
            _mm512_storeu_ps(row.as_mut_ptr().add(16), acc_r[1]);
        }
        for (r, row) in rows.iter().enumerate() {
            t.store_row::<PANEL>(r, row);
        }
    }
}
