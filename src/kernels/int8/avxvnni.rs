//! The AVX-VNNI micro-kernels: up to 6 rows by a 16-column half of a
//! panel, `vpdpbusd` on ymm registers (16 of them: a whole panel row of
//! accumulators would fit only 2 rows).

use super::blocking::{GROUP, GROUP_ROW_BYTES};
use super::micro::{KernelFn, MicroKernels, Tile};

/// The AVX-VNNI kernels.
pub(super) struct AvxVnni;

/// Columns per call: half a panel, one cache line of each group row.
const HALF: usize = 16;

impl MicroKernels for AvxVnni {
    const MR: usize = 6;
    const NR: usize = HALF;
    fn kernel(rows: usize, _prefetch: bool) -> KernelFn {
        match rows {
            1 => avx_vnni::<1, 4> as KernelFn,
            2 => avx_vnni::<2, 2>,
            3 => avx_vnni::<3, 1>,
            4 => avx_vnni::<4, 1>,
            5 => avx_vnni::<5, 1>,
            6 => avx_vnni::<6, 1>,
            _ => unreachable!("row block of {rows}"),
        }
    }
}

/// `MR` rows x 16 columns from `t.col0` in `2 · MR` ymm accumulators per
/// chain: each group loads the half's 64 bytes of the panel row and
/// broadcasts `MR` rows' 4 values of `A`, for `2 · MR` `vpdpbusd`.
///
/// # Safety
/// AVX2 and AVX-VNNI must be present, `t.rows == MR`, and the tile must
/// lie inside `A`, the panel and `C`.
#[target_feature(enable = "avx2,avxvnni")]
unsafe fn avx_vnni<const MR: usize, const CHAINS: usize>(t: &Tile) {
    debug_assert_eq!(t.rows, MR);
    // SAFETY: the caller guarantees the CPU features and that the tile
    // lies inside A, the panel and C (see `Job::run_panels`).
    unsafe {
        use std::arch::x86_64::*;
        // One accumulator set per chain, each its own array (an array of
        // chains, indexed by chain, was kept in memory by the compiler and
        // stored at every step); the sets past `CHAINS` go unused.
        let mut acc = [[_mm256_setzero_si256(); 2]; MR];
        let (mut acc1, mut acc2, mut acc3) = (acc, acc, acc);
        let mut bp = t.panel.add(t.col0 * GROUP);
        let mut ap = t.a;
        macro_rules! step {
            ($chain:expr) => {
                let b0 = _mm256_loadu_si256(bp.cast());
                let b1 = _mm256_loadu_si256(bp.add(32).cast());
                for (r, acc_r) in $chain.iter_mut().enumerate() {
                    let x = _mm256_set1_epi32(ap.add(GROUP * r).cast::<i32>().read_unaligned());
                    acc_r[0] = _mm256_dpbusd_avx_epi32(acc_r[0], x, b0);
                    acc_r[1] = _mm256_dpbusd_avx_epi32(acc_r[1], x, b1);
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
                    acc[r][0] = _mm256_add_epi32(acc[r][0], $chain[r][0]);
                    acc[r][1] = _mm256_add_epi32(acc[r][1], $chain[r][1]);
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
        // All sums out of the registers first (see the AVX-512 kernel).
        let mut sums = [[0i32; HALF]; MR];
        for (sums_r, acc_r) in sums.iter_mut().zip(acc.iter()) {
            _mm256_storeu_si256(sums_r.as_mut_ptr().cast(), acc_r[0]);
            _mm256_storeu_si256(sums_r.as_mut_ptr().add(8).cast(), acc_r[1]);
        }
        t.finish_rows::<HALF>(&sums);
    }
}
