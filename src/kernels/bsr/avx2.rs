//! The AVX2 block kernels: sub-tiles of 8 words in a ymm register, or of
//! 4 in an xmm register (for shapes no 8-lane sub-tile fits, such as
//! 1 x 4; these run at the AVX-512 level too). bf16 pairs and int8 quads
//! are multiplied by the 256- and 128-bit `vdpbf16ps` and `vpdpbusd`
//! where the CPU has them (AVX-512 VL), and otherwise widened: bf16 to
//! f32 (two fused multiply-adds), int8 to i16 (two `vpmaddwd`).

use super::words::Arith;
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

/// `acc` plus the products of the bf16 pairs of `w` and `x`, per lane.
#[inline]
#[target_feature(enable = "avx2,fma,avx512bf16,avx512vl")]
fn dot_bf16_8(w: __m256, x: __m256, acc: __m256) -> __m256 {
    // SAFETY: a 256-bit vector of bf16 pairs has the bits of any __m256.
    unsafe {
        _mm256_dpbf16_ps(
            acc,
            std::mem::transmute::<__m256, __m256bh>(x),
            std::mem::transmute::<__m256, __m256bh>(w),
        )
    }
}

/// [`dot_bf16_8`] for 128-bit vectors.
#[inline]
#[target_feature(enable = "avx2,fma,avx512bf16,avx512vl")]
fn dot_bf16_4(w: __m128, x: __m128, acc: __m128) -> __m128 {
    // SAFETY: as in `dot_bf16_8`.
    unsafe {
        _mm_dpbf16_ps(
            acc,
            std::mem::transmute::<__m128, __m128bh>(x),
            std::mem::transmute::<__m128, __m128bh>(w),
        )
    }
}

/// [`dot_bf16_8`] without AVX512_BF16: each lane's two bf16 values
/// widened to f32 (the low one shifted up, the high one masked), two
/// fused multiply-adds.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn widened_bf16_8(w: __m256, x: __m256, acc: __m256) -> __m256 {
    let high = _mm256_castsi256_ps(_mm256_set1_epi32(0xffff_0000_u32 as i32));
    let w_low = _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_castps_si256(w)));
    let x_low = _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_castps_si256(x)));
    let acc = _mm256_fmadd_ps(w_low, x_low, acc);
    _mm256_fmadd_ps(_mm256_and_ps(w, high), _mm256_and_ps(x, high), acc)
}

/// [`widened_bf16_8`] for 128-bit vectors.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn widened_bf16_4(w: __m128, x: __m128, acc: __m128) -> __m128 {
    let high = _mm_castsi128_ps(_mm_set1_epi32(0xffff_0000_u32 as i32));
    let w_low = _mm_castsi128_ps(_mm_slli_epi32::<16>(_mm_castps_si128(w)));
    let x_low = _mm_castsi128_ps(_mm_slli_epi32::<16>(_mm_castps_si128(x)));
    let acc = _mm_fmadd_ps(w_low, x_low, acc);
    _mm_fmadd_ps(_mm_and_ps(w, high), _mm_and_ps(x, high), acc)
}

/// `acc` plus the products of the u8 quads of `x` and the s8 quads of
/// `w`, per `i32` lane (all three held as f32 bits).
#[inline]
#[target_feature(enable = "avx2,fma,avx512vnni,avx512vl")]
fn dot_i8_8(w: __m256, x: __m256, acc: __m256) -> __m256 {
    _mm256_castsi256_ps(_mm256_dpbusd_epi32(
        _mm256_castps_si256(acc),
        _mm256_castps_si256(x),
        _mm256_castps_si256(w),
    ))
}

/// [`dot_i8_8`] for 128-bit vectors.
#[inline]
#[target_feature(enable = "avx2,fma,avx512vnni,avx512vl")]
fn dot_i8_4(w: __m128, x: __m128, acc: __m128) -> __m128 {
    _mm_castsi128_ps(_mm_dpbusd_epi32(_mm_castps_si128(acc), _mm_castps_si128(x), _mm_castps_si128(w)))
}

/// [`dot_i8_8`] without VNNI: the even and odd bytes of each lane widened
/// to i16 (inputs zero-extended, weights sign-extended), two `vpmaddwd`.
/// Exact: a product of u8 and s8, and the sum of two, fit i16 and i32.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn widened_i8_8(w: __m256, x: __m256, acc: __m256) -> __m256 {
    let (w, x) = (_mm256_castps_si256(w), _mm256_castps_si256(x));
    let x_even = _mm256_and_si256(x, _mm256_set1_epi32(0x00ff_00ff));
    let x_odd = _mm256_srli_epi16::<8>(x);
    let w_even = _mm256_srai_epi16::<8>(_mm256_slli_epi16::<8>(w));
    let w_odd = _mm256_srai_epi16::<8>(w);
    let dot = _mm256_add_epi32(_mm256_madd_epi16(x_even, w_even), _mm256_madd_epi16(x_odd, w_odd));
    _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(acc), dot))
}

/// [`widened_i8_8`] for 128-bit vectors.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn widened_i8_4(w: __m128, x: __m128, acc: __m128) -> __m128 {
    let (w, x) = (_mm_castps_si128(w), _mm_castps_si128(x));
    let x_even = _mm_and_si128(x, _mm_set1_epi32(0x00ff_00ff));
    let x_odd = _mm_srli_epi16::<8>(x);
    let w_even = _mm_srai_epi16::<8>(_mm_slli_epi16::<8>(w));
    let w_odd = _mm_srai_epi16::<8>(w);
    let dot = _mm_add_epi32(_mm_madd_epi16(x_even, w_even), _mm_madd_epi16(x_odd, w_odd));
    _mm_castsi128_ps(_mm_add_epi32(_mm_castps_si128(acc), dot))
}

/// [`pairsum8`] of `i32` lanes.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn pairsum8_i32(a: __m256, b: __m256) -> __m256 {
    let h = _mm256_hadd_epi32(_mm256_castps_si256(a), _mm256_castps_si256(b));
    _mm256_castsi256_ps(_mm256_permute4x64_epi64::<0b11_01_10_00>(h))
}

/// [`pairsum4`] of `i32` lanes.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn pairsum4_i32(a: __m128, b: __m128) -> __m128 {
    _mm_castsi128_ps(_mm_hadd_epi32(_mm_castps_si128(a), _mm_castps_si128(b)))
}

/// Defines the ymm and xmm block kernels of one arithmetic.
macro_rules! ymm_xmm_kernels {
    ($ymm:ident, $xmm:ident, $features:literal, $dot8:ident, $dot4:ident, $pairsum8:ident, $pairsum4:ident) => {
        block_kernel!(
            $ymm,
            __m256,
            8,
            $features,
            _mm256_setzero_ps,
            _mm256_loadu_ps,
            $dot8,
            _mm256_storeu_ps,
            bcast8,
            $pairsum8
        );
        block_kernel!(
            $xmm,
            __m128,
            4,
            $features,
            _mm_setzero_ps,
            _mm_loadu_ps,
            $dot4,
            _mm_storeu_ps,
            bcast4,
            $pairsum4
        );
    };
}

ymm_xmm_kernels!(
    ymm_bf16,
    xmm_bf16,
    "avx2,fma,avx512bf16,avx512vl",
    dot_bf16_8,
    dot_bf16_4,
    pairsum8,
    pairsum4
);
ymm_xmm_kernels!(ymm_bf16w, xmm_bf16w, "avx2,fma", widened_bf16_8, widened_bf16_4, pairsum8, pairsum4);
ymm_xmm_kernels!(
    ymm_i8,
    xmm_i8,
    "avx2,fma,avx512vnni,avx512vl",
    dot_i8_8,
    dot_i8_4,
    pairsum8_i32,
    pairsum4_i32
);
ymm_xmm_kernels!(ymm_i8w, xmm_i8w, "avx2,fma", widened_i8_8, widened_i8_4, pairsum8_i32, pairsum4_i32);

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

/// The ymm kernel of `arith` for `CP` columns per sub-tile, `groups`
/// sub-tiles per pass and a batch tile of `tile` (one of the layout's
/// tile sizes).
pub(super) fn kernel8(arith: Arith, cp: usize, groups: usize, tile: usize) -> Option<KernelFn> {
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
                (1, 2) => tiles!($f, 1, 2; 6 4 3 2 1),
                (1, 1) => tiles!($f, 1, 1; 12 8 6 4 3 2 1),
                (8, 1) => tiles!($f, 8, 1; 12 8 6 4 3 2 1),
                (2, 1) => tiles!($f, 2, 1; 12 8 6 4 3 2 1),
                (4, 1) => tiles!($f, 4, 1; 12 8 6 4 3 2 1),
                _ => None,
            }
        };
    }
    match arith {
        Arith::F32 => shapes!(ymm),
        Arith::Bf16 { dot: true } => shapes!(ymm_bf16),
        Arith::Bf16 { dot: false } => shapes!(ymm_bf16w),
        Arith::Int8 { dot: true } => shapes!(ymm_i8),
        Arith::Int8 { dot: false } => shapes!(ymm_i8w),
    }
}

/// The xmm kernel, as [`kernel8`].
pub(super) fn kernel4(arith: Arith, cp: usize, groups: usize, tile: usize) -> Option<KernelFn> {
    macro_rules! tiles {
        ($f:ident, $cp:literal; $($b:literal)*) => {
            match tile {
                $($b => Some($f::<$cp, 1, $b> as KernelFn),)*
                _ => None,
            }
        };
    }
    macro_rules! shapes {
        ($f:ident) => {
            match (cp, groups) {
                (4, 1) => tiles!($f, 4; 12 8 6 4 3 2 1),
                (1, 1) => tiles!($f, 1; 12 8 6 4 3 2 1),
                (2, 1) => tiles!($f, 2; 12 8 6 4 3 2 1),
                _ => None,
            }
        };
    }
    match arith {
        Arith::F32 => shapes!(xmm),
        Arith::Bf16 { dot: true } => shapes!(xmm_bf16),
        Arith::Bf16 { dot: false } => shapes!(xmm_bf16w),
        Arith::Int8 { dot: true } => shapes!(xmm_i8),
        Arith::Int8 { dot: false } => shapes!(xmm_i8w),
    }
}
