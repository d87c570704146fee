//! A second copy of a CSR matrix laid out for large batches, and its
//! AVX-512 product.
//!
//! With dozens of batch entries every nonzero `W[r, c]` multiplies a long
//! row of `Xᵀ` (`Xᵀ[c, ..]`). The product takes `W` in blocks of
//! [`ROW_BLOCK`] rows and keeps those rows' outputs, a 40 KiB tile for 64
//! batch entries, in L1 while it walks the block's columns: each column's
//! `Xᵀ` row is loaded into registers once, and every entry of the column
//! adds `value · Xᵀ[c, ..]` to its row of the tile (load, multiply-add,
//! store). The matrix is read front to back, `Xᵀ` once per row block.
//!
//! Within a block the entries are stored column by column, and the columns
//! are sorted by how many entries they hold: those counts are random (about
//! 13 at 90% sparsity), and a loop whose trip count changes at random
//! mispredicts its exit every time, while runs of equal counts predict well.

/// Rows of `W` per block: their outputs for 64 batch entries fill a
/// 40 KiB tile, inside L1.
pub(super) const ROW_BLOCK: usize = 128;
const _: () = assert!(ROW_BLOCK * TILE_STRIDE <= 1 << 16, "tile offsets are stored as u16");
/// Floats between rows of the output tile: 64 lanes and one spare cache
/// line, so rows 16 apart do not share a 4 KiB offset (a load that matches
/// an in-flight store's offset waits for it).
pub(super) const TILE_STRIDE: usize = 80;
/// The most batch entries one pass takes (the tile's width).
pub(super) const TILE_LANES: usize = 64;

/// The entries of a CSR matrix in row blocks, column by column (see the
/// module doc).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct TiledCsr {
    rows: usize,
    /// Columns (segments) of row block `rb` are `block_ptr[rb]..block_ptr[rb + 1]`.
    block_ptr: Vec<usize>,
    /// The column of `W` each segment holds.
    seg_col: Vec<u32>,
    /// Entries of segment `s` are `seg_ptr[s]..seg_ptr[s + 1]`.
    seg_ptr: Vec<usize>,
    /// Where each entry's row starts in the output tile, in floats (its row
    /// within the block times [`TILE_STRIDE`]): the product adds it to the
    /// tile's address as is.
    tile_offset: Vec<u16>,
    values: Vec<f32>,
}

// Only the x86-64 AVX-512 product reads the tiled copy.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
impl TiledCsr {
    /// Rearranges a CSR matrix (`row_ptr`, `col_idx`, `values`) of `rows x cols`.
    pub(super) fn new(rows: usize, cols: usize, row_ptr: &[usize], col_idx: &[u32], values: &[f32]) -> TiledCsr {
        let mut tiled = TiledCsr {
            rows,
            block_ptr: vec![0],
            seg_col: Vec::new(),
            seg_ptr: vec![0],
            tile_offset: vec![0; values.len()],
            values: vec![0.0; values.len()],
        };
        // Per column of the current block: entries, then next free position.
        let mut count = vec![0usize; cols];
        let mut next = vec![0usize; cols];
        let mut order: Vec<u32> = Vec::new();
        for r0 in (0..rows).step_by(ROW_BLOCK) {
            let span = row_ptr[r0]..row_ptr[(r0 + ROW_BLOCK).min(rows)];
            for &c in &col_idx[span.clone()] {
                count[c as usize] += 1;
            }
            order.clear();
            order.extend((0..cols as u32).filter(|&c| count[c as usize] > 0));
            order.sort_by_key(|&c| std::cmp::Reverse(count[c as usize]));
            let mut at = span.start;
            for &c in &order {
                next[c as usize] = at;
                at += count[c as usize];
                count[c as usize] = 0;
                tiled.seg_col.push(c);
                tiled.seg_ptr.push(at);
            }
            for r in r0..(r0 + ROW_BLOCK).min(rows) {
                for j in row_ptr[r]..row_ptr[r + 1] {
                    let slot = &mut next[col_idx[j] as usize];
                    tiled.tile_offset[*slot] = ((r - r0) * TILE_STRIDE) as u16;
                    tiled.values[*slot] = values[j];
                    *slot += 1;
                }
            }
            tiled.block_ptr.push(tiled.seg_col.len());
        }
        tiled
    }

    /// The row blocks that start inside `rows` (a range ending at the last
    /// row takes the last block too). Rounding the ends of
    /// `CsrMatrix::balanced_rows`'s ranges this way gives disjoint block
    /// ranges that cover every block and split the entries about equally.
    pub(super) fn blocks_starting_in(rows: std::ops::Range<usize>) -> std::ops::Range<usize> {
        rows.start.div_ceil(ROW_BLOCK)..rows.end.div_ceil(ROW_BLOCK)
    }
}

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// The output tile, reused between calls.
    static TILE: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(target_arch = "x86_64")]
impl TiledCsr {
    /// Row blocks `blocks` of `Yᵀ = W · Xᵀ` for up to [`TILE_LANES`] batch
    /// entries: `Xᵀ` is `[cols][padded]` (`padded` a multiple of 16, at most
    /// `TILE_LANES`), and each finished block goes to `write(rows, tile)`:
    /// row `rows.start + i`'s `padded` outputs start at `tile[i * TILE_STRIDE]`.
    ///
    /// # Safety
    /// AVX-512F must be present and `xt` must hold `cols * padded` floats.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn product(
        &self,
        blocks: std::ops::Range<usize>,
        xt: &[f32],
        padded: usize,
        write: impl FnMut(std::ops::Range<usize>, &[f32]),
    ) {
        debug_assert!(padded.is_multiple_of(16) && padded <= TILE_LANES);
        TILE.with(|tile| {
            let mut tile = tile.borrow_mut();
            // One spare cache line so the tile can start on a line boundary.
            tile.resize(ROW_BLOCK * TILE_STRIDE + 16, 0.0);
            let skip = tile.as_ptr().align_offset(64).min(16);
            let tile = &mut tile[skip..skip + ROW_BLOCK * TILE_STRIDE];
            // SAFETY (all arms): forwarded from the caller.
            unsafe {
                match padded / 16 {
                    4 => self.pass::<4>(blocks, xt, tile, write),
                    3 => self.pass::<3>(blocks, xt, tile, write),
                    2 => self.pass::<2>(blocks, xt, tile, write),
                    _ => self.pass::<1>(blocks, xt, tile, write),
                }
            }
        })
    }

    /// [`Self::product`] for `CH` chunks of 16 batch entries (`padded = 16 · CH`).
    /// Two entries are in flight, and entries of one column never share a
    /// row, so their tile updates are independent.
    #[target_feature(enable = "avx512f")]
    unsafe fn pass<const CH: usize>(
        &self,
        blocks: std::ops::Range<usize>,
        xt: &[f32],
        tile: &mut [f32],
        mut write: impl FnMut(std::ops::Range<usize>, &[f32]),
    ) {
        use std::arch::x86_64::*;
        let padded = CH * 16;
        let (offsets, vals) = (self.tile_offset.as_slice(), self.values.as_slice());
        for rb in blocks {
            let block_rows = rb * ROW_BLOCK..((rb + 1) * ROW_BLOCK).min(self.rows);
            for lanes in tile.chunks_exact_mut(TILE_STRIDE).take(block_rows.len()) {
                lanes[..padded].fill(0.0);
            }
            let t = tile.as_mut_ptr();
            for s in self.block_ptr[rb]..self.block_ptr[rb + 1] {
                let x_row = &xt[self.seg_col[s] as usize * padded..][..padded];
                // SAFETY: x_row holds CH * 16 floats.
                let x: [__m512; CH] = std::array::from_fn(|ch| unsafe { _mm512_loadu_ps(x_row.as_ptr().add(ch * 16)) });
                // SAFETY: the offset is a row of the block (< ROW_BLOCK) times
                // TILE_STRIDE, so the row's CH chunks lie inside the tile.
                let update = |j: usize| unsafe {
                    let (v, y) = (_mm512_set1_ps(vals[j]), t.add(offsets[j] as usize));
                    for (ch, &x) in x.iter().enumerate() {
                        _mm512_storeu_ps(y.add(ch * 16), _mm512_fmadd_ps(v, x, _mm512_loadu_ps(y.add(ch * 16))));
                    }
                };
                let (mut j, end) = (self.seg_ptr[s], self.seg_ptr[s + 1]);
                while j + 1 < end {
                    update(j);
                    update(j + 1);
                    j += 2;
                }
                if j < end {
                    update(j);
                }
            }
            write(block_rows, tile);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CSR matrix of `rows x cols` with entry (r, c) present when `keep(r, c)`.
    fn csr(rows: usize, cols: usize, keep: impl Fn(usize, usize) -> bool) -> (Vec<usize>, Vec<u32>, Vec<f32>) {
        let (mut row_ptr, mut col_idx, mut values) = (vec![0], Vec::new(), Vec::new());
        for r in 0..rows {
            for c in (0..cols).filter(|&c| keep(r, c)) {
                col_idx.push(c as u32);
                values.push((r * cols + c) as f32);
            }
            row_ptr.push(values.len());
        }
        (row_ptr, col_idx, values)
    }

    #[test]
    fn every_entry_lands_once_in_its_block_and_column() {
        let (rows, cols) = (300, 37);
        let (row_ptr, col_idx, values) = csr(rows, cols, |r, c| (r * 7 + c * 13) % 5 == 0 || r == 129);
        let tiled = TiledCsr::new(rows, cols, &row_ptr, &col_idx, &values);
        let blocks = rows.div_ceil(ROW_BLOCK);
        assert_eq!(tiled.block_ptr.len(), blocks + 1);
        let mut seen = Vec::new();
        for rb in 0..blocks {
            let segments = tiled.block_ptr[rb]..tiled.block_ptr[rb + 1];
            let lengths: Vec<usize> = segments.clone().map(|s| tiled.seg_ptr[s + 1] - tiled.seg_ptr[s]).collect();
            assert!(
                lengths.windows(2).all(|w| w[0] >= w[1]),
                "block {rb}: columns not sorted by count: {lengths:?}"
            );
            assert!(lengths.iter().all(|&n| n > 0), "block {rb}: empty column stored");
            for s in segments {
                for j in tiled.seg_ptr[s]..tiled.seg_ptr[s + 1] {
                    let (r, c) = (
                        rb * ROW_BLOCK + tiled.tile_offset[j] as usize / TILE_STRIDE,
                        tiled.seg_col[s] as usize,
                    );
                    assert!(r < rows);
                    assert_eq!(tiled.values[j], (r * cols + c) as f32, "entry ({r}, {c}) holds another's value");
                    seen.push((r, c));
                }
            }
        }
        let mut want: Vec<(usize, usize)> = (0..rows)
            .flat_map(|r| (row_ptr[r]..row_ptr[r + 1]).map(move |j| (r, j)))
            .map(|(r, j)| (r, col_idx[j] as usize))
            .collect();
        seen.sort_unstable();
        want.sort_unstable();
        assert_eq!(seen, want);
    }
}
