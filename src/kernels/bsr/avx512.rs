//! The AVX-512 block kernel: sub-tiles of 16 words in a zmm register (f32
//! weights, or bf16 pairs and int8 quads multiplied by `vdpbf16ps` and
//! `vpdpbusd`). Shapes no 16-lane sub-tile fits (1 x 4, 2 x 2, ...) take
//! the AVX2 file's 256- and 128-bit kernels.

use super::words::Arith;
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

/// `acc` plus the products of the bf16 pairs of `w` and `x`, per lane.
#[inline]
#[target_feature(enable = "avx512f,avx512bf16")]
fn dot_bf16(w: __m512, x: __m512, acc: __m512) -> __m512 {
    // SAFETY: a 512-bit vector of bf16 pairs has the bits of any __m512.
    unsafe {
        _mm512_dpbf16_ps(
            acc,
            std::mem::transmute::<__m512, __m512bh>(x),
            std::mem::transmute::<__m512, __m512bh>(w),
        )
    }
}

/// `acc` plus the products of the u8 quads of `x` and the s8 quads of
/// `w`, per `i32` lane (all three held as f32 bits).
#[inline]
#[target_feature(enable = "avx512f,avx512vnni")]
fn dot_i8(w: __m512, x: __m512, acc: __m512) -> __m512 {
    _mm512_castsi512_ps(_mm512_dpbusd_epi32(
        _mm512_castps_si512(acc),
        _mm512_castps_si512(x),
        _mm512_castps_si512(w),
    ))
}

/// [`pairsum`] of `i32` lanes.
#[inline]
#[target_feature(enable = "avx512f")]
fn pairsum_i32(a: __m512, b: __m512) -> __m512 {
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let (lo, hi) = (_mm512_permutex2var_ps(a, even, b), _mm512_permutex2var_ps(a, odd, b));
    _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(lo), _mm512_castps_si512(hi)))
}

/// Defines the zmm block and entry kernels of one arithmetic: both
/// templates take the same zmm operations.
macro_rules! zmm_kernels {
    ($block:ident, $entries:ident, $features:literal, $dot:ident, $pairsum:ident) => {
        zmm_kernels!(@one block_kernel, $block, $features, $dot, $pairsum);
        zmm_kernels!(@one entry_kernel, $entries, $features, $dot, $pairsum);
    };
    (@one $template:ident, $name:ident, $features:literal, $dot:ident, $pairsum:ident) => {
        $template!(
            $name,
            __m512,
            16,
            $features,
            _mm512_setzero_ps,
            _mm512_loadu_ps,
            $dot,
            _mm512_storeu_ps,
            bcast,
            $pairsum
        );
    };
}

zmm_kernels!(zmm, zmm_entries, "avx512f", _mm512_fmadd_ps, pairsum);
zmm_kernels!(zmm_bf16, zmm_entries_bf16, "avx512f,avx512bf16", dot_bf16, pairsum);
zmm_kernels!(zmm_i8, zmm_entries_i8, "avx512f,avx512vnni", dot_i8, pairsum_i32);

/// The entry-vector kernel (`entry_kernel!`) of `arith` for `CP` columns
/// per step, `rows` rows per pass and a tile of `vectors` input vectors.
pub(super) fn entry_kernel(arith: Arith, cp: usize, rows: usize, vectors: usize) -> Option<KernelFn> {
    macro_rules! tiles {
        ($f:ident, $cp:literal, $r:literal; $($v:literal)*) => {
            match vectors {
                $($v => Some($f::<$cp, $r, $v> as KernelFn),)*
                _ => None,
            }
        };
    }
    macro_rules! shapes {
        ($f:ident) => {
            match (cp, rows) {
                (4, 4) => tiles!($f, 4, 4; 6 4 3 2 1),
                (4, 1) => tiles!($f, 4, 1; 8 6 4 3 2 1),
                (2, 8) => tiles!($f, 2, 8; 3 2 1),
                (1, 4) => tiles!($f, 1, 4; 6 4 3 2 1),
                (2, 4) => tiles!($f, 2, 4; 6 4 3 2 1),
                _ => None,
            }
        };
    }
    match arith {
        Arith::F32 => shapes!(zmm_entries),
        Arith::Bf16 { dot: true } => shapes!(zmm_entries_bf16),
        Arith::Int8 { dot: true } => shapes!(zmm_entries_i8),
        _ => None,
    }
}

/// The zmm kernel of `arith` for `CP` columns per sub-tile, `groups`
/// sub-tiles per pass and a batch tile of `tile` (one of the layout's
/// tile sizes); `None` for the bf16 and int8 arithmetic without their dot
/// products (never chosen at this level).
pub(super) fn kernel(arith: Arith, cp: usize, groups: usize, tile: usize) -> Option<KernelFn> {
    macro_rules! tiles {
        ($f:ident, $cp:literal, $g:literal; $($b:literal)*) => {
            match tile {
                $($b => Some($f::<$cp, $g, $b> as KernelFn),)*
                _ => None,
            }
        };
    }
    macro_rules! shapes {
        ($f:ident) => {
            match (cp, groups) {
                (2, 2) => tiles!($f, 2, 2; 12 8 6 4 3 2 1),
                (2, 1) => tiles!($f, 2, 1; 24 12 8 6 4 3 2 1),
                (4, 1) => tiles!($f, 4, 1; 24 12 8 6 4 3 2 1),
                (16, 1) => tiles!($f, 16, 1; 24 12 8 6 4 3 2 1),
                (1, 1) => tiles!($f, 1, 1; 24 12 8 6 4 3 2 1),
                (8, 1) => tiles!($f, 8, 1; 24 12 8 6 4 3 2 1),
                _ => None,
            }
        };
    }
    match arith {
        Arith::F32 => shapes!(zmm),
        Arith::Bf16 { dot: true } => shapes!(zmm_bf16),
        Arith::Int8 { dot: true } => shapes!(zmm_i8),
        _ => None,
    }
}
