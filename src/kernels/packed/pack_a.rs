//! `A` in the row blocks the micro-kernels take, packed `[k][rows]` where
//! the kernels do not read it in place.

use super::blocking::PARALLEL_PACK_MIN_FLOATS;
use super::micro::{MAX_BLOCK_ROWS, max_rows_per_block};
use crate::kernels::matrix::{MatRef, SendPtr};
use crate::kernels::simd::SimdLevel;

/// Floats of the buffer [`pack_a_part`] packs an `m x k` `A` into.
pub(crate) fn packed_a_len(m: usize, k: usize) -> usize {
    m * k
}

/// Packs part `part` of `parts` of `A`'s row blocks into `dst`, the
/// buffer (of [`packed_a_len`] floats) that the workers of a team share:
/// each packs its part, and after a barrier all of them run
/// [`super::packed_gemm_claimed_prepacked`] on it (packed by each worker
/// alone, `A` would be packed once per worker), for the kernels of `level`
/// (the level of the `B` it will be multiplied with).
///
/// # Safety
/// `dst` must be valid for `packed_a_len(a.rows(), a.cols())` floats that
/// nothing else reads or writes meanwhile but the other parts' packing, and
/// the parts of one `A` must all use the same `parts`.
pub(crate) unsafe fn pack_a_part(level: SimdLevel, a: MatRef, dst: SendPtr, part: usize, parts: usize) {
    let (m, k) = (a.rows(), a.cols());
    if m == 0 || k == 0 {
        return;
    }
    let blocks = row_blocks(level, m);
    let ids = blocks.count * part / parts..blocks.count * (part + 1) / parts;
    if ids.is_empty() {
        return;
    }
    let rows = blocks.block(ids.start).start..blocks.block(ids.end - 1).end;
    // SAFETY: the part's row blocks are its own range of `dst` (blocks lie
    // one after the other, `k` floats per row), inside the buffer.
    let dst = unsafe { std::slice::from_raw_parts_mut(dst.get().add(rows.start * k), rows.len() * k) };
    pack_blocks(a, blocks, ids, dst, false);
}

/// `m` rows of `A` in the row blocks the kernels of `level` take.
pub(super) fn row_blocks(level: SimdLevel, m: usize) -> RowBlocks {
    RowBlocks::new(m, m.div_ceil(max_rows_per_block(level)))
}

/// `rows` rows of `A` cut into `count` nearly equal consecutive blocks, each
/// small enough for one micro-kernel call.
#[derive(Clone, Copy)]
pub(super) struct RowBlocks {
    pub(super) rows: usize,
    pub(super) count: usize,
    /// `rows = base * count + extra`: the first `extra` blocks have a row
    /// more (kept, so that the hot loops divide nothing).
    pub(super) base: usize,
    pub(super) extra: usize,
}

impl RowBlocks {
    pub(super) fn new(rows: usize, count: usize) -> RowBlocks {
        let count = count.max(1);
        RowBlocks {
            rows,
            count,
            base: rows / count,
            extra: rows % count,
        }
    }
    pub(super) fn start(self, i: usize) -> usize {
        i * self.base + i.min(self.extra)
    }
    pub(super) fn block(self, i: usize) -> std::ops::Range<usize> {
        self.start(i)..self.start(i + 1)
    }
    pub(super) fn iter(self) -> impl Iterator<Item = std::ops::Range<usize>> {
        (0..self.count).map(move |i| self.block(i))
    }
}

thread_local! {
    /// Packed copy of `A`, reused between calls so steady-state products do
    /// not allocate.
    pub(super) static A_SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Copies `A` (any strides) into `out` block by block: the block of rows
/// `r0..r1` starts at `r0 * k` and is laid out `[k][r1 - r0]`, so the
/// micro-kernel broadcasts from one sequential stream. With `parallel`, a
/// large `A` is packed by the rayon pool (else a serial step before every
/// parallel product).
pub(super) fn pack_a(a: MatRef, blocks: RowBlocks, out: &mut Vec<f32>, parallel: bool) {
    let k = a.cols();
    if out.len() < a.rows() * k {
        out.resize(a.rows() * k, 0.0);
    }
    if k == 0 {
        return;
    }
    let parallel = parallel && a.rows() * k >= PARALLEL_PACK_MIN_FLOATS;
    pack_blocks(a, blocks, 0..blocks.count, &mut out[..a.rows() * k], parallel);
}

/// Packs the row blocks `ids` into `dst`, which starts at the first one's
/// rows; with `parallel`, halves go to `rayon::join` until one block is left.
pub(super) fn pack_blocks(a: MatRef, blocks: RowBlocks, ids: std::ops::Range<usize>, dst: &mut [f32], parallel: bool) {
    let k = a.cols();
    let first_row = blocks.block(ids.start).start;
    if parallel && ids.len() > 1 {
        let mid = ids.start + ids.len() / 2;
        let (low, high) = dst.split_at_mut((blocks.block(mid).start - first_row) * k);
        rayon::join(
            || pack_blocks(a, blocks, ids.start..mid, low, true),
            || pack_blocks(a, blocks, mid..ids.end, high, true),
        );
        return;
    }
    for rows in ids.map(|i| blocks.block(i)) {
        let dst = &mut dst[(rows.start - first_row) * k..(rows.end - first_row) * k];
        let width = rows.len();
        let mut srcs: [&[f32]; MAX_BLOCK_ROWS] = [&[]; MAX_BLOCK_ROWS];
        let mut contiguous = true;
        for (src, i) in srcs.iter_mut().zip(rows.clone()) {
            match a.row(i) {
                Some(row) => *src = row,
                None => contiguous = false,
            }
        }
        if contiguous {
            // The common case: one sequential write stream, reading the
            // next element of every row in turn. The usual block heights
            // get a fixed-width copy (unrolled, bounds checks hoisted).
            match width {
                12 => pack_rows::<12>(&srcs, dst),
                11 => pack_rows::<11>(&srcs, dst),
                10 => pack_rows::<10>(&srcs, dst),
                _ => {
                    for (p, step) in dst.chunks_exact_mut(width).enumerate() {
                        for (d, src) in step.iter_mut().zip(&srcs) {
                            *d = src[p];
                        }
                    }
                }
            }
        } else {
            for (r, i) in rows.enumerate() {
                for p in 0..k {
                    dst[p * width + r] = a.at(i, p);
                }
            }
        }
    }
}

/// One block of `W` contiguous rows (`srcs`, each at least `k` long) into
/// `dst` (`k * W` floats) as `[k][W]`.
pub(super) fn pack_rows<const W: usize>(srcs: &[&[f32]], dst: &mut [f32]) {
    let k = dst.len() / W;
    let srcs: [&[f32]; W] = std::array::from_fn(|r| &srcs[r][..k]);
    for (p, step) in dst.chunks_exact_mut(W).enumerate().take(k) {
        for (d, src) in step.iter_mut().zip(&srcs) {
            *d = src[p];
        }
    }
}
