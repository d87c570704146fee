//! Blocking constants of the bf16 products, each with the loop it
//! controls. What each was measured to give: docs/tuning.md.

/// Steps of `k` packed into one 32-bit lane: `vdpbf16ps` multiplies a
/// pair of bf16 values and adds both products into one `f32`.
pub(super) const PAIR: usize = 2;

/// Values (`u16`) of one panel row of pairs: 32 columns of [`PAIR`] weights (128 bytes).
pub(super) const PAIR_ROW: usize = super::PANEL * PAIR;

/// Multiply-adds below which a product runs on the calling thread.
pub(super) const PARALLEL_MIN_MACS: usize = 1 << 16;

/// Fewest panels per chunk that `bf16_gemm`'s rayon workers claim.
pub(super) const MIN_CLAIMED_PANELS: usize = 16;

/// Values of `A` from which `bf16_gemm` rounds it on the rayon pool.
pub(super) const PARALLEL_ROUND_MIN: usize = 1 << 16;

/// How far ahead in its panel the AVX-512 BF16 kernel prefetches (values:
/// 128 pair rows, 16 KiB), where `B` streams from memory.
pub(super) const PREFETCH_AHEAD: usize = 128 * PAIR_ROW;

/// Largest `B` (bytes) that stays in the shared L3 between products: a
/// larger one streams from memory, and the kernel prefetches it.
pub(super) const L3_RESIDENT_B_BYTES: usize = 8 << 20;
