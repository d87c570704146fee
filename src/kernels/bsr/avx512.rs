//! The AVX-512 block kernel: sub-tiles of 16 weights in a zmm register.
//! Shapes no 16-lane sub-tile fits (1 x 4, 2 x 2, ...) take the AVX2 file's
//! 256- and 128-bit kernels.

use super::{Inputs, Job, KernelFn, MAX_ACCUMULATORS, Sums, W_PREFETCH_AHEAD};
use crate::kernels::simd::prefetch_l1;
use std::arch::x86_64::*;

/// `CP` consecutive inputs at `p`, each repeated `16 / CP` times (`CP` =
/// 16: the 16 inputs as they are).
///
/// # Safety
/// `p` must point at `CP` readable floats.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn bcast<const CP: usize>(p: *const f32) -> __m512 {
    // SAFETY: the caller's guarantee; unaligned loads throughout.
    unsafe {
        match CP {
            1 => _mm512_set1_ps(*p),
            2 => _mm512_castpd_ps(_mm512_set1_pd(p.cast::<f64>().read_unaligned())),
            4 => _mm512_broadcast_f32x4(_mm_loadu_ps(p)),
            8 => _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_loadu_pd(p.cast()))),
            _ => _mm512_loadu_ps(p),
        }
    }
}

/// Adjacent lanes of `a` added (lanes 0-7), then those of `b` (lanes 8-15).
#[inline]
#[target_feature(enable = "avx512f")]
fn pairsum(a: __m512, b: __m512) -> __m512 {
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    _mm512_add_ps(_mm512_permutex2var_ps(a, even, b), _mm512_permutex2var_ps(a, odd, b))
}

block_kernel!(
    zmm,
    __m512,
    16,
    "avx512f",
    _mm512_setzero_ps,
    _mm512_loadu_ps,
    _mm512_fmadd_ps,
    _mm512_storeu_ps,
    bcast,
    pairsum
);

entry_kernel!(
    zmm_entries,
    __m512,
    16,
    "avx512f",
    _mm512_setzero_ps,
    _mm512_loadu_ps,
    _mm512_fmadd_ps,
    _mm512_storeu_ps,
    bcast,
    pairsum
);

/// The entry-vector kernel (`entry_kernel!`) for `CP` columns per step,
/// `rows` rows per pass and a tile of `vectors` input vectors.
pub(super) fn entry_kernel(cp: usize, rows: usize, vectors: usize) -> Option<KernelFn> {
    macro_rules! tiles {
        ($cp:literal, $r:literal; $($v:literal)*) => {
            match vectors {
                $($v => Some(zmm_entries::<$cp, $r, $v> as KernelFn),)*
                _ => None,
            }
        };
    }
    match (cp, rows) {
        (4, 4) => tiles!(4, 4; 6 4 3 2 1),
        (4, 1) => tiles!(4, 1; 8 6 4 3 2 1),
        (2, 8) => tiles!(2, 8; 3 2 1),
        _ => None,
    }
}

/// The zmm kernel for `CP` columns per sub-tile, `groups` sub-tiles per
/// pass and a batch tile of `tile` (one of the layout's tile sizes).
pub(super) fn kernel(cp: usize, groups: usize, tile: usize) -> Option<KernelFn> {
    macro_rules! tiles {
        ($cp:literal, $g:literal; $($b:literal)*) => {
            match tile {
                $($b => Some(zmm::<$cp, $g, $b> as KernelFn),)*
                _ => None,
            }
        };
    }
    match (cp, groups) {
        (2, 2) => tiles!(2, 2; 12 8 6 4 3 2 1),
        (2, 1) => tiles!(2, 1; 24 12 8 6 4 3 2 1),
        (4, 1) => tiles!(4, 1; 24 12 8 6 4 3 2 1),
        (16, 1) => tiles!(16, 1; 24 12 8 6 4 3 2 1),
        (1, 1) => tiles!(1, 1; 24 12 8 6 4 3 2 1),
        (8, 1) => tiles!(8, 1; 24 12 8 6 4 3 2 1),
        _ => None,
    }
}
