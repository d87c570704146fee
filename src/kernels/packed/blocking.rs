//! Blocking constants, each with the loop it controls, and the choices
//! they drive. What each was measured to give: docs/tuning.md.

use super::PANEL;
use super::pack_a::row_blocks;
use super::panel::{HALF, PackedMatrix};
use crate::kernels::matrix::MatRef;
use crate::kernels::simd::SimdLevel;

/// K block (rows of `B` per micro-kernel call) when several row blocks
/// read one panel slice: 16 KiB, which stays in L1 while they pass over it.
pub(super) const K_BLOCK: usize = 128;

/// K block of AVX2's half passes over many row blocks: a 256-row half is 16 KiB.
pub(super) const K_BLOCK_HALVES: usize = 256;

/// Row blocks from which AVX2's half passes take [`K_BLOCK_HALVES`] and
/// the large-`A` orders.
pub(super) const LONG_SLICE_MIN_BLOCKS: usize = 16;

/// Longest K block of an AVX-512 call ([`avx512_k_block`]): a guard above
/// the largest `k` measured.
pub(super) const AVX512_MAX_K_BLOCK: usize = 4096;

/// L1 data per core, shared by a half slice, a block of `A` and a `C`
/// tile ([`whole_k_stays_in_l1`]).
pub(super) const L1_DATA_BYTES: usize = 32 * 1024;

/// How far ahead in its panel the AVX-512 kernel prefetches (floats: 128
/// rows), where `B` streams from memory.
pub(super) const PREFETCH_AHEAD: usize = 128 * PANEL;

/// How far ahead in its half the AVX2 kernel prefetches (floats: 16 rows).
pub(super) const HALF_PREFETCH_AHEAD: usize = 16 * HALF;

/// Most row blocks over which AVX2's half passes pace their prefetch of
/// the next slice (`Tile::paced_prefetch`).
pub(super) const PACED_PREFETCH_MAX_BLOCKS: usize = 2;

/// Smallest `B` whose next slices AVX2 prefetches paced: half an L3 or
/// more, which streams from memory at every product.
pub(super) const STREAMED_B_BYTES: usize = 16 << 20;

/// Largest `B` that stays in the shared L3 between products (an LSTM's
/// recurrent weights, read at every step): no next-slice prefetch for
/// whole-`k` halves, no in-panel prefetch on AVX-512.
pub(super) const L3_RESIDENT_B_BYTES: usize = 8 << 20;

/// Largest `A` that stays in L2 while every panel streams past it (the
/// streaming order; a larger one takes the large-`A` orders).
pub(super) const A_RESIDENT_BYTES: usize = 512 * 1024;

/// [`A_RESIDENT_BYTES`] with AVX-512, whose whole-`k` slices (40-48 KiB at
/// k = 315-373) leave less room beside `A`.
pub(super) const A_RESIDENT_BYTES_AVX512: usize = 256 * 1024;

/// Bytes of `C` one task updates per pass over a K block in the
/// panel-major large-`A` order (a part of L2).
pub(super) const C_CHUNK_BYTES: usize = 512 * 1024;

/// Fewest panels per chunk that `packed_gemm`'s rayon workers claim.
pub(super) const MIN_CLAIMED_PANELS: usize = 16;

/// Multiply-adds below which a product runs on the calling thread.
pub(super) const PARALLEL_MIN_MACS: usize = 1 << 16;

/// Floats of `A` below which it is packed on the calling thread.
pub(super) const PARALLEL_PACK_MIN_FLOATS: usize = 1 << 15;

/// Column passes over each panel slice: AVX2 runs row blocks of 3+ rows
/// over one 16-column half at a time (its tile is 6 x 16), so two.
pub(super) fn passes_per_panel(level: SimdLevel, rows: usize) -> usize {
    if level == SimdLevel::Avx2Fma && rows >= 3 { 2 } else { 1 }
}

/// Whether the kernels at `level` read `A` where it is, without packing
/// it, when its rows are contiguous (the kernels broadcast from each row,
/// as MLAS's do; packing is an extra pass over `A` per product): AVX2
/// always; AVX-512 for one row block (a recurrent step) or where `A`
/// leaves L2 (an input projection over a long sequence). Between the two,
/// several row blocks of a small `A` stay packed: one stream beside `B`'s
/// (docs/tuning.md, "Bidirectional layers against ONNX Runtime").
pub(crate) fn reads_a_in_place(level: SimdLevel, a: MatRef) -> bool {
    let contiguous = a.col_stride() == 1 || a.cols() <= 1;
    match level {
        SimdLevel::Avx2Fma => contiguous,
        SimdLevel::Avx512 => {
            let large = a.rows() * a.cols() * std::mem::size_of::<f32>() > A_RESIDENT_BYTES_AVX512;
            contiguous && (row_blocks(level, a.rows()).count <= 1 || large)
        }
        _ => false,
    }
}

/// Whether `rows x k` of `A` (in `blocks` row blocks, `passes` passes per
/// panel) takes the large-`A` orders: it does not stay in L2 while the
/// panels stream past, or AVX2's half passes run over many row blocks.
pub(super) fn a_leaves_l2(level: SimdLevel, rows: usize, k: usize, passes: usize, blocks: usize) -> bool {
    let a_bytes = rows * k * std::mem::size_of::<f32>();
    let resident = if level == SimdLevel::Avx512 {
        A_RESIDENT_BYTES_AVX512
    } else {
        A_RESIDENT_BYTES
    };
    a_bytes > resident || (passes > 1 && blocks >= LONG_SLICE_MIN_BLOCKS)
}

/// Whether a large `A` runs in the block-major order (row block by row
/// block over chunks of panels): AVX2's half passes, and AVX-512, whose
/// calls take all of `k`.
pub(super) fn runs_block_major(level: SimdLevel, passes: usize) -> bool {
    passes > 1 || level == SimdLevel::Avx512
}

/// Panels per chunk of the block-major order for `m` rows of `A`: 4 up to
/// 512 rows, 8 above. Every chunk reads all of `A` once.
pub(super) fn block_major_chunk(m: usize) -> usize {
    if m > 512 { 8 } else { 4 }
}

/// How many panels of a product with an `m x k` `A` the kernels at
/// `level` take together: a chunk of the block-major order where `A` takes
/// it, else 1. Workers that claim a product's panels in ranges (the team's
/// input projections) claim multiples of it, so that no range ends in a
/// short chunk that reads all of `A` again for a panel or two.
pub(crate) fn claim_granule(level: SimdLevel, m: usize, k: usize) -> usize {
    let passes = passes_per_panel(level, m);
    if a_leaves_l2(level, m, k, passes, row_blocks(level, m).count) && runs_block_major(level, passes) {
        block_major_chunk(m)
    } else {
        1
    }
}

/// Steps of `k` per AVX-512 call: all of `k` up to [`AVX512_MAX_K_BLOCK`],
/// else nearly equal blocks no longer than that, so each call loads and
/// stores its `C` tile once.
pub(super) fn avx512_k_block(k: usize) -> usize {
    let k = k.max(1);
    k.div_ceil(k.div_ceil(AVX512_MAX_K_BLOCK))
}

/// Whether AVX2's half passes take all of `k` in one call: a 16-column half
/// of the slice (`64 · k` bytes) fills at most three quarters of L1, so it
/// stays there while every row block passes over it.
pub(super) fn whole_k_stays_in_l1(passes: usize, k: usize) -> bool {
    passes > 1 && k * HALF * std::mem::size_of::<f32>() <= L1_DATA_BYTES * 3 / 4
}

/// Whether a product's calls prefetch the next panel slice: not where
/// AVX2's whole-`k` halves fill most of L1 and `B` comes from L3 (the next
/// slice's lines would evict the half before the other row blocks read it).
pub(super) fn prefetches_next(whole_k_halves: bool, b: &PackedMatrix) -> bool {
    !whole_k_halves || streams_from_memory(b)
}

/// Whether `b` is too large to stay in L3 between products, so every
/// product streams it from memory.
pub(super) fn streams_from_memory(b: &PackedMatrix) -> bool {
    b.bytes() > L3_RESIDENT_B_BYTES
}
