//! Blocking constants of the int8 products, each with the loop it
//! controls. What each was measured to give: docs/tuning.md.

/// Steps of `k` packed into one 32-bit lane: `vpdpbusd` multiplies four
/// `u8 x s8` pairs and adds them into one `i32`.
pub(super) const GROUP: usize = 4;

/// Bytes of one panel row of groups: 32 columns of [`GROUP`] weights.
pub(super) const GROUP_ROW_BYTES: usize = super::PANEL * GROUP;

/// Largest `k`: `k · 255 · 127 < 2^31`, so no `i32` accumulator can overflow.
pub(crate) const MAX_K: usize = 1 << 16;

/// Multiply-adds below which a product runs on the calling thread.
pub(super) const PARALLEL_MIN_MACS: usize = 1 << 16;

/// Fewest panels per chunk that `int8_gemm`'s rayon workers claim.
pub(super) const MIN_CLAIMED_PANELS: usize = 16;

/// Values of `A` from which `int8_gemm` finds its range and quantizes it
/// on the rayon pool (below, on the calling thread).
pub(super) const PARALLEL_QUANTIZE_MIN: usize = 1 << 16;

/// How far ahead in its panel the AVX-512 VNNI kernel prefetches (bytes:
/// 128 group rows, 16 KiB), where `B` streams from memory.
pub(super) const PREFETCH_AHEAD: usize = 128 * GROUP_ROW_BYTES;

/// Largest `B` (bytes) that stays in the shared L3 between products: a
/// larger one streams from memory, and the kernels prefetch it.
pub(super) const L3_RESIDENT_B_BYTES: usize = 8 << 20;
