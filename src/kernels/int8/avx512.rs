//! The AVX-512 VNNI micro-kernels: up to 12 rows by a whole 32-column
//! panel, `vpdpbusd` on zmm registers.

use super::PANEL;
use super::blocking::{GROUP, GROUP_ROW_BYTES, PREFETCH_AHEAD};
use super::micro::{KernelFn, MicroKernels, Tile};

/// The AVX-512 VNNI kernels.
pub(super) struct Avx512Vnni;

impl MicroKernels for Avx512Vnni {
    const MR: usize = 12;
    const NR: usize = PANEL;
    fn kernel(rows: usize, prefetch: bool) -> KernelFn {
        macro_rules! rows {
            ($pf:literal) => {
                match rows {
                    // Few rows run more accumulator chains over alternate
                    // groups, to cover the latency of `vpdpbusd`
                    // (docs/tuning.md, "int8 accumulator chains"); integer
                    // sums are exact in any order.
                    1 => vnni::<1, 4, $pf> as KernelFn,
                    2 => vnni::<2, 2, $pf>,
                    3 => vnni::<3, 2, $pf>,
                    4 => vnni::<4, 1, $pf>,
                    5 => vnni::<5, 1, $pf>,
                    6 => vnni::<6, 1, $pf>,
                    7 => vnni::<7, 1, $pf>,
                    8 => vnni::<8, 1, $pf>,
                    9 => vnni::<9, 1, $pf>,
                    10 => vnni::<10, 1, $pf>,
                    11 => vnni::<11, 1, $pf>,
                    12 => vnni::<12, 1, $pf>,
                    _ => unreachable!("row block of {rows}"),
                }
            };
        }
        if prefetch { rows!(true) } else { rows!(false) }
    }
}

/// `MR` rows x 32 columns in `2 · MR` zmm accumulators per chain: each
/// group of 4 steps loads one panel row (two vectors of 16 columns x 4
/// weights) and broadcasts `MR` rows' 4 values of `A`, for `2 · MR`
/// `vpdpbusd`. With `CHAINS > 1`, consecutive groups go to independent
/// accumulator sets, summed at the end. With `PREFETCH`, each group
/// prefetches the panel row [`PREFETCH_AHEAD`] bytes ahead.
///
/// # Safety
/// AVX512F, AVX512BW and AVX512_VNNI must be present, `t.rows == MR`, and
/// the tile must lie inside `A`, the panel and `C`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn vnni<const MR: usize, const CHAINS: usize, const PREFETCH: bool>(t: &Tile) {
    debug_assert_eq!(t.rows, MR);
    // SAFETY: the caller guarantees the CPU features and that the tile
    // lies inside A, the panel and C (see `Job::run_panels`).
    unsafe {
        use std::arch::x86_64::*;
        // One accumulator set per chain, each its own array (an array of
        // chains, indexed by chain, was kept in memory by the compiler and
        // stored at every step); the sets past `CHAINS` go unused.
        let mut acc = [[_mm512_setzero_si512(); 2]; MR];
        let (mut acc1, mut acc2, mut acc3) = (acc, acc, acc);
        let mut bp = t.panel;
        let mut ap = t.a;
        // One group into accumulator set `$chain` (a macro, not a closure:
        // a closure would not inherit this function's target features).
        macro_rules! step {
            ($chain:expr) => {
                if PREFETCH {
                    _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(PREFETCH_AHEAD));
                    _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(PREFETCH_AHEAD + 64));
                }
                let b0 = _mm512_loadu_si512(bp.cast());
                let b1 = _mm512_loadu_si512(bp.add(64).cast());
                for (r, acc_r) in $chain.iter_mut().enumerate() {
                    let x = _mm512_set1_epi32(ap.add(GROUP * r).cast::<i32>().read_unaligned());
                    acc_r[0] = _mm512_dpbusd_epi32(acc_r[0], x, b0);
                    acc_r[1] = _mm512_dpbusd_epi32(acc_r[1], x, b1);
                }
                bp = bp.add(GROUP_ROW_BYTES);
                ap = ap.add(GROUP * MR);
            };
        }
        for _ in 0..t.groups / CHAINS {
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
        for _ in 0..t.groups % CHAINS {
            step!(acc);
        }
        // The other chains added to the first, each by name and row by
        // row (a loop over the chains, or flattened iterators, which the
        // compiler does not unroll, would keep the sets in memory too).
        macro_rules! fold {
            ($chain:expr) => {
                for r in 0..MR {
                    acc[r][0] = _mm512_add_epi32(acc[r][0], $chain[r][0]);
                    acc[r][1] = _mm512_add_epi32(acc[r][1], $chain[r][1]);
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
        // All sums out of the registers first, in a loop the compiler
        // unrolls: a row index into `acc` in the longer loop below would
        // keep `acc` in memory, and every step would store it.
        let mut sums = [[0i32; PANEL]; MR];
        for (sums_r, acc_r) in sums.iter_mut().zip(acc.iter()) {
            _mm512_storeu_si512(sums_r.as_mut_ptr().cast(), acc_r[0]);
            _mm512_storeu_si512(sums_r.as_mut_ptr().add(16).cast(), acc_r[1]);
        }
        t.finish_rows::<PANEL>(&sums);
    }
}
