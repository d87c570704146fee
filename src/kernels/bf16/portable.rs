//! The plain-Rust bf16 micro-kernels, compiled three times: as they are
//! ([`Plain`]), for AVX2 + FMA ([`Avx2`]) and for AVX-512F ([`Avx512`]),
//! for CPUs without `vdpbf16ps`. A bf16 value widens to f32 exactly (a
//! shift), and a product of two fits an f32 exactly, so a fused or a plain
//! multiply-add rounds once, the same way: every compilation gives the
//! same bits.

use super::PANEL;
use super::blocking::{PAIR, PAIR_ROW};
use super::convert::from_bf16;
use super::micro::{KernelFn, MicroKernels, Tile};
use crate::kernels::simd::madd;

/// The portable kernels without fused multiply-add (any CPU).
pub(super) struct Plain;
/// The portable kernels compiled for AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
pub(super) struct Avx2;
/// The portable kernels compiled for AVX-512F.
#[cfg(target_arch = "x86_64")]
pub(super) struct Avx512;

/// Columns of an AVX2 call: half a panel (16 ymm registers hold 4 rows
/// of two vectors beside the widened weights).
#[cfg(target_arch = "x86_64")]
const HALF: usize = PANEL / 2;

impl MicroKernels for Plain {
    const MR: usize = 2;
    const NR: usize = PANEL;
    fn kernel(rows: usize, _prefetch: bool) -> KernelFn {
        match rows {
            1 => plain::<1> as KernelFn,
            2 => plain::<2>,
            _ => unreachable!("row block of {rows}"),
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl MicroKernels for Avx2 {
    const MR: usize = 4;
    const NR: usize = HALF;
    fn kernel(rows: usize, _prefetch: bool) -> KernelFn {
        match rows {
            1 => avx2::<1> as KernelFn,
            2 => avx2::<2>,
            3 => avx2::<3>,
            4 => avx2::<4>,
            _ => unreachable!("row block of {rows}"),
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl MicroKernels for Avx512 {
    const MR: usize = 6;
    const NR: usize = PANEL;
    fn kernel(rows: usize, _prefetch: bool) -> KernelFn {
        match rows {
            1 => avx512::<1> as KernelFn,
            2 => avx512::<2>,
            3 => avx512::<3>,
            4 => avx512::<4>,
            5 => avx512::<5>,
            6 => avx512::<6>,
            _ => unreachable!("row block of {rows}"),
        }
    }
}

/// # Safety
/// As [`lanes`].
unsafe fn plain<const MR: usize>(t: &Tile) {
    // SAFETY: forwarded from the caller.
    unsafe { lanes::<MR, PANEL, false>(t) }
}

/// # Safety
/// As [`lanes`], and AVX2 and FMA must be present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2<const MR: usize>(t: &Tile) {
    // SAFETY: forwarded from the caller.
    unsafe { lanes::<MR, HALF, true>(t) }
}

/// # Safety
/// As [`lanes`], and AVX-512F must be present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn avx512<const MR: usize>(t: &Tile) {
    // SAFETY: forwarded from the caller.
    unsafe { lanes::<MR, PANEL, true>(t) }
}

/// `MR` rows by `W` columns from `t.col0`, lane by lane (the compiler
/// vectorises the lanes for the target features of its caller): each pair
/// of steps widens the panel row's weights of these columns to f32 and
/// adds, per row, the odd step's product, then the even one's, onto the
/// accumulators (which start from `C` or the bias).
///
/// # Safety
/// `t.rows == MR`, and the tile must lie inside `A`, the panel and `C`.
#[inline(always)]
unsafe fn lanes<const MR: usize, const W: usize, const FUSED: bool>(t: &Tile) {
    debug_assert_eq!(t.rows, MR);
    let mut acc = [[0.0f32; W]; MR];
    for (r, acc_r) in acc.iter_mut().enumerate() {
        // SAFETY: the tile lies inside C (the caller's contract).
        unsafe { t.start_row::<W>(r, acc_r) };
    }
    // SAFETY: the block of A is `pairs · MR · 2` values and the panel
    // `pairs` rows of 64 (the caller's contract).
    let (a, panel) = unsafe {
        (
            std::slice::from_raw_parts(t.a, t.pairs * MR * PAIR),
            std::slice::from_raw_parts(t.panel, t.pairs * PAIR_ROW),
        )
    };
    for (a_pair, row) in a.chunks_exact(MR * PAIR).zip(panel.chunks_exact(PAIR_ROW)) {
        let row = &row[PAIR * t.col0..PAIR * (t.col0 + W)];
        let mut even = [0.0f32; W];
        let mut odd = [0.0f32; W];
        for l in 0..W {
            even[l] = from_bf16(row[PAIR * l]);
            odd[l] = from_bf16(row[PAIR * l + 1]);
        }
        for (acc_r, x) in acc.iter_mut().zip(a_pair.chunks_exact(PAIR)) {
            let (x0, x1) = (from_bf16(x[0]), from_bf16(x[1]));
            for l in 0..W {
                acc_r[l] = madd::<FUSED>(x1, odd[l], acc_r[l]);
                acc_r[l] = madd::<FUSED>(x0, even[l], acc_r[l]);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        // SAFETY: as above.
        unsafe { t.store_row::<W>(r, acc_r) };
    }
}
