//! The micro-kernel interface: each instruction set's kernels behind one
//! small trait, and the choice of kernel for a SIMD level and row block.

use super::PANEL;
use super::tile::Tile;
use crate::kernels::simd::SimdLevel;

/// One micro-kernel call over a [`Tile`].
pub(super) type KernelFn = unsafe fn(&Tile);

/// The micro-kernels of one instruction set.
pub(super) trait MicroKernels {
    /// Most rows of `A` one call takes: as many as the vector registers
    /// hold accumulators for.
    const MR: usize;
    /// Columns of `C` one call computes (a whole panel, or a half).
    const NR: usize;
    /// The kernel for a block of `rows` rows (1..=`MR`); `prefetch_b`:
    /// prefetch the panel ahead, where the family does.
    fn kernel(rows: usize, prefetch_b: bool) -> KernelFn;
}

/// Largest row block of any family (the packing buffers' bound).
pub(super) const MAX_BLOCK_ROWS: usize = 12;

/// Largest block of `A` rows one call takes at `level`.
pub(super) fn max_rows_per_block(level: SimdLevel) -> usize {
    match level {
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => super::avx512::Avx512::MR,
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2Fma => super::avx2::Avx2::MR,
        SimdLevel::Neon => super::portable::Fused::MR,
        _ => super::portable::Plain::MR,
    }
}

/// The micro-kernel for `rows` rows (1..=[`max_rows_per_block`]) at
/// `level`, prefetching the panel ahead where `prefetch_b` and the family
/// does ([`super::schedule::Job::prefetch_b`]).
pub(super) fn micro_kernel(level: SimdLevel, rows: usize, prefetch_b: bool) -> KernelFn {
    match level {
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => super::avx512::Avx512::kernel(rows, prefetch_b),
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2Fma => super::avx2::Avx2::kernel(rows, prefetch_b),
        SimdLevel::Neon => super::portable::Fused::kernel(rows, prefetch_b),
        _ => super::portable::Plain::kernel(rows, prefetch_b),
    }
}

/// Whether a family's row blocks fit the packing buffers and its tiles cut
/// a panel into whole calls.
const fn fits<K: MicroKernels>() -> bool {
    K::MR <= MAX_BLOCK_ROWS && PANEL.is_multiple_of(K::NR)
}
const _: () = assert!(fits::<super::portable::Fused>() && fits::<super::portable::Plain>());
#[cfg(target_arch = "x86_64")]
const _: () = assert!(fits::<super::avx512::Avx512>() && fits::<super::avx2::Avx2>());
