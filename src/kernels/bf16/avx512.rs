//! The AVX512_BF16 micro-kernels: up to 12 rows by a whole 32-column
//! panel, `vdpbf16ps` on zmm registers.

use super::PANEL;
use super::blocking::{PAIR, PAIR_ROW, PREFETCH_AHEAD};
use super::micro::{KernelFn, MicroKernels, Tile};

/// The AVX512_BF16 kernels.
pub(super) struct Avx512Bf16;

impl MicroKernels for Avx512Bf16 {
    const MR: usize = 12;
    const NR: usize = PANEL;
    fn kernel(rows: usize, prefetch: bool) -> KernelFn {
        macro_rules! rows {
            ($pf:literal) => {
                match rows {
                    // Few rows run more accumulator chains over alternate
                    // pairs, to cover the latency of `vdpbf16ps`
                    // (docs/tuning.md, "bf16 accumulator chains").
                    1 => bf16::<1, 4, $pf> as KernelFn,
                    2 => bf16::<2, 2, $pf>,
                    3 => bf16::<3, 2, $pf>,
                    4 => bf16::<4, 1, $pf>,
                    5 => bf16::<5, 1, $pf>,
                    6 => bf16::<6, 1, $pf>,
                    7 => bf16::<7, 1, $pf>,
                    8 => bf16::<8, 1, $pf>,
                    9 => bf16::<9, 1, $pf>,
                    10 => bf16::<10, 1, $pf>,
                    11 => bf16::<11, 1, $pf>,
                    12 => bf16::<12, 1, $pf>,
                    _ => unreachable!("row block of {rows}"),
                }
            };
        }
        if prefetch { rows!(true) } else { rows!(false) }
    }
}

/// `MR` rows x 32 columns in `2 · MR` zmm accumulators per chain: each
/// pair of steps loads one panel row (two vectors of 16 columns x 2
/// weights) and broadcasts `MR` rows' 2 values of `A`, for `2 · MR`
/// `vdpbf16ps`. The first chain starts from `C` (or the bias), as in the
/// fp32 kernels; with `CHAINS > 1`, consecutive pairs go to independent
/// accumulator sets, added to the first at the end. With `PREFETCH`, each
/// pair prefetches the panel row [`PREFETCH_AHEAD`] values ahead.
///
/// # Safety
/// AVX512F and AVX512_BF16 must be present, `t.rows == MR`, and the tile
/// must lie inside `A`, the panel and `C`.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn bf16<const MR: usize, const CHAINS: usize, const PREFETCH: bool>(t: &Tile) {
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
        let mut bp = t.panel;
        let mut ap = t.a;
        // One pair into accumulator set `$chain` (a macro, not a closure:
        // a closure would not inherit this function's target features).
        macro_rules! step {
            ($chain:expr) => {
                if PREFETCH {
                    _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(PREFETCH_AHEAD).cast());
                    _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(PREFETCH_AHEAD + 32).cast());
                }
                let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp.cast()));
                let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp.add(32).cast()));
                for (r, acc_r) in $chain.iter_mut().enumerate() {
                    let x: __m512bh = std::mem::transmute(_mm512_set1_epi32(ap.add(PAIR * r).cast::<i32>().read_unaligned()));
                    acc_r[0] = _mm512_dpbf16_ps(acc_r[0], x, b0);
                    acc_r[1] = _mm512_dpbf16_ps(acc_r[1], x, b1);
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
        // All sums out of the registers first, in a loop the compiler
        // unrolls: a row index into `acc` in the longer loop below would
        // keep `acc` in memory, and every step would store it.
        for (row, acc_r) in rows.iter_mut().zip(acc.iter()) {
            _mm512_storeu_ps(row.as_mut_ptr(), acc_r[0]);
            _mm512_storeu_ps(row.as_mut_ptr().add(16), acc_r[1]);
        }
        for (r, row) in rows.iter().enumerate() {
            t.store_row::<PANEL>(r, row);
        }
    }
}
