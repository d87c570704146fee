//! The AVX2 block kernels: sub-tiles of 8 weights in a ymm register, or of
//! 4 in an xmm register (for shapes no 8-lane sub-tile fits, such as
//! 1 x 4; these run at the AVX-512 level too).

use super::{Inputs, Job, KernelFn, MAX_ACCUMULATORS, Sums, W_PREFETCH_AHEAD};
use crate::kernels::simd::prefetch_l1;
use std::arch::x86_64::*;

/// `CP` consecutive inputs at `p`, each repeated `8 / CP` times.
///
/// # Safety
/// `p` must point at `CP` readable floats.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn bcast8<const CP: usize>(p: *const f32) -> __m256 {
    // SAFETY: the caller's guarantee; unaligned loads throughout.
    unsafe {
        match CP {
            1 => _mm256_set1_ps(*p),
            2 => _mm256_castpd_ps(_mm256_set1_pd(p.cast::<f64>().read_unaligned())),
            4 => {
                let v = _mm_loadu_ps(p);
                _mm256_set_m128(v, v)
            }
            _ => _mm256_loadu_ps(p),
        }
    }
}

/// `CP` consecutive inputs at `p`, each repeated `4 / CP` times.
///
/// # Safety
/// `p` must point at `CP` readable floats.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn bcast4<const CP: usize>(p: *const f32) -> __m128 {
    // SAFETY: the caller's guarantee; unaligned loads throughout.
    unsafe {
        match CP {
            1 => _mm_set1_ps(*p),
            2 => _mm_castpd_ps(_mm_set1_pd(p.cast::<f64>().read_unaligned())),
            _ => _mm_loadu_ps(p),
        }
    }
}

/// Adjacent lanes of `a` added (lanes 0-3), then those of `b` (lanes 4-7).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn pairsum8(a: __m256, b: __m256) -> __m256 {
    // hadd leaves [a01 a23 b01 b23 | a45 a67 b45 b67]; the permute puts the
    // second 64-bit pair of each half in order.
    let h = _mm256_hadd_ps(a, b);
    _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(h)))
}

/// Adjacent lanes of `a` added (lanes 0-1), then those of `b` (lanes 2-3).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn pairsum4(a: __m128, b: __m128) -> __m128 {
    _mm_hadd_ps(a, b)
}

block_kernel!(
    ymm,
    __m256,
    8,
    "avx2,fma",
    _mm256_setzero_ps,
    _mm256_loadu_ps,
    _mm256_fmadd_ps,
    _mm256_storeu_ps,
    bcast8,
    pairsum8
);

block_kernel!(
    xmm,
    __m128,
    4,
    "avx2,fma",
    _mm_setzero_ps,
    _mm_loadu_ps,
    _mm_fmadd_ps,
    _mm_storeu_ps,
    bcast4,
    pairsum4
);

/// The ymm kernel for `CP` columns per sub-tile, `groups` sub-tiles per
/// pass and a batch tile of `tile` (one of the layout's tile sizes).
pub(super) fn kernel8(cp: usize, groups: usize, tile: usize) -> Option<KernelFn> {
    macro_rules! tiles {
        ($cp:literal, $g:literal; $($b:literal)*) => {
            match tile {
                $($b => Some(ymm::<$cp, $g, $b> as KernelFn),)*
                _ => None,
            }
        };
    }
    match (cp, groups) {
        (1, 2) => tiles!(1, 2; 6 4 3 2 1),
        (1, 1) => tiles!(1, 1; 12 8 6 4 3 2 1),
        (8, 1) => tiles!(8, 1; 12 8 6 4 3 2 1),
        (2, 1) => tiles!(2, 1; 12 8 6 4 3 2 1),
        (4, 1) => tiles!(4, 1; 12 8 6 4 3 2 1),
        _ => None,
    }
}

/// The xmm kernel, as [`kernel8`].
pub(super) fn kernel4(cp: usize, groups: usize, tile: usize) -> Option<KernelFn> {
    macro_rules! tiles {
        ($cp:literal; $($b:literal)*) => {
            match tile {
                $($b => Some(xmm::<$cp, 1, $b> as KernelFn),)*
                _ => None,
            }
        };
    }
    match (cp, groups) {
        (4, 1) => tiles!(4; 12 8 6 4 3 2 1),
        (1, 1) => tiles!(1; 12 8 6 4 3 2 1),
        (2, 1) => tiles!(2; 12 8 6 4 3 2 1),
        _ => None,
    }
}
