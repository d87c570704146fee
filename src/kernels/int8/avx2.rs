//! The AVX2 micro-kernels: up to 6 rows by 8 columns of a panel, the
//! weights widened to `s16` (`vpmovsxbw`) and multiplied with `A` as `u16`
//! by `vpmaddwd`, whose sums of two products cannot saturate.
//!
//! `vpmaddubsw` (`u8 x s8`, what ONNX Runtime's AVX2 kernels use) sums two
//! products into a saturating `s16`: `255 · 127 · 2` does not fit, so a
//! result can be wrong unless the weights keep to 7 bits (ONNX Runtime's
//! `reduce_range`, which doubles their quantization error). `vpmaddwd`
//! issues as many multiplies per multiply-add as `vpmaddubsw` followed by
//! the `vpmaddwd` that widens its sums, and gives every kernel family the
//! same exact `i32` sums (docs/tuning.md, "int8 on AVX2 without VNNI").

use super::blocking::{GROUP, GROUP_ROW_BYTES};
use super::micro::{KernelFn, MicroKernels, Tile};

/// The AVX2 kernels.
pub(super) struct Avx2;

/// Columns per call: a quarter of a panel (two vectors of 4 columns by 2
/// partial sums each).
const QUARTER: usize = 8;

impl MicroKernels for Avx2 {
    const MR: usize = 6;
    const NR: usize = QUARTER;
    fn kernel(rows: usize, _prefetch: bool) -> KernelFn {
        match rows {
            1 => avx2::<1> as KernelFn,
            2 => avx2::<2>,
            3 => avx2::<3>,
            4 => avx2::<4>,
            5 => avx2::<5>,
            6 => avx2::<6>,
            _ => unreachable!("row block of {rows}"),
        }
    }
}

/// `MR` rows x 8 columns from `t.col0`. Each group row's 32 bytes of these
/// columns widen to two vectors of 16 `s16` (4 columns x 4 weights); a
/// row's 4 values of `A` (stored as `u16`) are broadcast as one 64-bit
/// lane, so `vpmaddwd` gives each column two partial sums (steps 0-1 and
/// 2-3 of the group) in adjacent lanes, which `vphaddd` adds at the end.
///
/// # Safety
/// AVX2 must be present, `t.rows == MR`, `A` stored as `u16`, and the tile
/// must lie inside `A`, the panel and `C`.
#[target_feature(enable = "avx2")]
unsafe fn avx2<const MR: usize>(t: &Tile) {
    debug_assert_eq!(t.rows, MR);
    // SAFETY: the caller guarantees the CPU features and that the tile
    // lies inside A, the panel and C (see `Job::run_panels`).
    unsafe {
        use std::arch::x86_64::*;
        let mut acc = [[_mm256_setzero_si256(); 2]; MR];
        let mut bp = t.panel.add(t.col0 * GROUP);
        let mut ap = t.a;
        for _ in 0..t.groups {
            let b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(bp.cast()));
            let b1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(bp.add(16).cast()));
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let x = _mm256_set1_epi64x(ap.add(2 * GROUP * r).cast::<i64>().read_unaligned());
                acc_r[0] = _mm256_add_epi32(acc_r[0], _mm256_madd_epi16(x, b0));
                acc_r[1] = _mm256_add_epi32(acc_r[1], _mm256_madd_epi16(x, b1));
            }
            bp = bp.add(GROUP_ROW_BYTES);
            ap = ap.add(2 * GROUP * MR);
        }
        // All sums out of the registers first (see the AVX-512 kernel).
        let mut sums = [[0i32; QUARTER]; MR];
        for (sums_r, acc_r) in sums.iter_mut().zip(acc.iter()) {
            // [c0 c1 c4 c5 | c2 c3 c6 c7], then the 64-bit lanes in order.
            let pairs = _mm256_hadd_epi32(acc_r[0], acc_r[1]);
            let cols = _mm256_permute4x64_epi64::<0b11_01_10_00>(pairs);
            _mm256_storeu_si256(sums_r.as_mut_ptr().cast(), cols);
        }
        t.finish_rows::<QUARTER>(&sums);
    }
}
