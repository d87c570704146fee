//! A second copy of a CSR matrix laid out for large batches, and its
//! AVX-512 and AVX2 products.
//!
//! With dozens of batch entries every nonzero `W[r, c]` multiplies a row of
//! `Xᵀ` (`Xᵀ[c, ..]`, a group of [`TILE_LANES`] batch entries, or
//! [`TILE_LANES_AVX2`]). The product takes `W` in blocks of [`ROW_BLOCK`]
//! rows, and each row block in blocks of [`COL_BLOCK`] columns, whose `Xᵀ`
//! rows (64 KiB at 64 lanes) the block's rows read from L1 or L2 while the
//! row block's outputs (a 64 KiB tile) wait in L2.
//! Within one such block, every row with entries there (a *segment*) sums
//! its entries' `value · Xᵀ[c, ..]` in registers and adds the sum to its
//! row of the tile once: per entry loads and multiply-adds only, no store.
//! (An earlier column-by-column layout stored to the tile for every entry
//! and was bound by L1 stores.)
//!
//! Within a block the segments are sorted by length: the lengths are random
//! (about 26 at 90% sparsity), and a loop whose trip count changes at random
//! mispredicts its exit every time, while runs of equal lengths predict well.

use crate::kernels::simd::FLOATS_PER_LINE;

/// Rows of `W` per block: their outputs for [`TILE_LANES`] batch entries
/// fill a 64 KiB tile. The more rows a block has, the more entries read each
/// `Xᵀ` line while it is near.
pub(super) const ROW_BLOCK: usize = 256;
/// Columns of `W` per block: their `Xᵀ` rows fill 32 KiB at 32 lanes (an
/// L1 on most x86 cores) and 64 KiB at 64. Column offsets are stored as bytes.
pub(super) const COL_BLOCK: usize = 256;
const _: () = assert!(COL_BLOCK <= 1 << 8, "columns within a block are stored as u8");
const _: () = assert!(ROW_BLOCK <= 1 << 16, "rows within a block are stored as u16");
/// Batch entries per group with AVX-512 (the tile's width): four vectors.
/// Every entry's value and column are read once per group, so wider groups
/// read `W` fewer times (up to where the group's `Xᵀ` leaves L2).
pub(super) const TILE_LANES: usize = 64;
/// Batch entries per group with AVX2: four vectors, in two sets of
/// accumulators, fill 8 of its 16 registers.
pub(super) const TILE_LANES_AVX2: usize = 32;

/// The entries of a CSR matrix in row blocks and column blocks, segment by
/// segment (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct TiledCsr {
    rows: usize,
    cols: usize,
    /// Segments of row block `rb`, column block `cb` are
    /// `block_ptr[rb * col_blocks + cb]..block_ptr[rb * col_blocks + cb + 1]`.
    block_ptr: Vec<usize>,
    /// Each segment's row within its row block (its row of the output
    /// tile, whose width is the pass's).
    seg_row: Vec<u16>,
    /// Entries of segment `s` are `seg_ptr[s]..seg_ptr[s + 1]`.
    seg_ptr: Vec<usize>,
    /// Each entry's column within its column block.
    entry_col: Vec<u8>,
    values: Vec<f32>,
}

// Only the x86-64 products read the tiled copy.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
impl TiledCsr {
    /// Rearranges a CSR matrix (`row_ptr`, `col_idx` sorted within each
    /// row, `values`) of `rows x cols`.
    pub(super) fn new(rows: usize, cols: usize, row_ptr: &[usize], col_idx: &[u32], values: &[f32]) -> TiledCsr {
        let mut tiled = TiledCsr {
            rows,
            cols,
            block_ptr: vec![0],
            seg_row: Vec::new(),
            seg_ptr: vec![0],
            entry_col: Vec::with_capacity(values.len()),
            values: Vec::with_capacity(values.len()),
        };
        // Per row of the current row block: where its entries of the
        // current column block start (they are consecutive, columns sorted).
        let mut cursor = vec![0usize; ROW_BLOCK];
        let mut segments: Vec<(usize, std::ops::Range<usize>)> = Vec::new();
        for r0 in (0..rows).step_by(ROW_BLOCK) {
            let block_rows = r0..(r0 + ROW_BLOCK).min(rows);
            for (i, r) in block_rows.clone().enumerate() {
                cursor[i] = row_ptr[r];
            }
            for c0 in (0..cols).step_by(COL_BLOCK) {
                let c1 = (c0 + COL_BLOCK).min(cols);
                segments.clear();
                for (i, r) in block_rows.clone().enumerate() {
                    let start = cursor[i];
                    let end = start + col_idx[start..row_ptr[r + 1]].partition_point(|&c| (c as usize) < c1);
                    if end > start {
                        segments.push((i, start..end));
                    }
                    cursor[i] = end;
                }
                segments.sort_by_key(|(_, entries)| std::cmp::Reverse(entries.len()));
                for (i, entries) in &segments {
                    tiled.seg_row.push(*i as u16);
                    tiled
                        .entry_col
                        .extend(col_idx[entries.clone()].iter().map(|&c| (c as usize - c0) as u8));
                    tiled.values.extend_from_slice(&values[entries.clone()]);
                    tiled.seg_ptr.push(tiled.values.len());
                }
                tiled.block_ptr.push(tiled.seg_row.len());
            }
        }
        tiled
    }

    /// Column blocks per row block.
    fn col_blocks(&self) -> usize {
        self.cols.div_ceil(COL_BLOCK)
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

/// Runs `f` on this thread's output tile (room for `ROW_BLOCK` rows of
/// `TILE_LANES` floats; a pass of `padded` lanes uses rows of `padded`),
/// starting on a cache-line boundary.
#[cfg(target_arch = "x86_64")]
fn with_tile(f: impl FnOnce(&mut [f32])) {
    TILE.with(|tile| {
        let mut tile = tile.borrow_mut();
        // One spare cache line so the tile can start on a line boundary.
        tile.resize(ROW_BLOCK * TILE_LANES + 16, 0.0);
        let skip = tile.as_ptr().align_offset(64).min(16);
        f(&mut tile[skip..skip + ROW_BLOCK * TILE_LANES])
    })
}

#[cfg(target_arch = "x86_64")]
impl TiledCsr {
    /// Row blocks `blocks` of `Yᵀ = W · Xᵀ` for up to [`TILE_LANES`] batch
    /// entries: `Xᵀ` is `[cols][padded]` (`padded` 16, 32, 48 or 64), and
    /// each finished block goes to `write(rows, tile)`: row
    /// `rows.start + i`'s `padded` outputs start at `tile[i * padded]`.
    ///
    /// # Safety
    /// AVX-512F must be present, `padded` one of those widths, and `xt`
    /// must hold `cols * padded` floats.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn product(
        &self,
        blocks: std::ops::Range<usize>,
        xt: &[f32],
        padded: usize,
        write: impl FnMut(std::ops::Range<usize>, &[f32]),
    ) {
        debug_assert!(matches!(padded, 16 | 32 | 48 | 64));
        debug_assert!(xt.len() >= self.cols * padded);
        with_tile(|tile| {
            // SAFETY (every arm): forwarded from the caller.
            unsafe {
                match padded {
                    64 => self.pass::<4, 2>(blocks, xt, tile, write),
                    48 => self.pass::<3, 2>(blocks, xt, tile, write),
                    32 => self.pass::<2, 4>(blocks, xt, tile, write),
                    _ => self.pass::<1, 4>(blocks, xt, tile, write),
                }
            }
        })
    }

    /// [`Self::product`] for `CH` vectors of 16 batch entries (`padded = 16 · CH`).
    /// A segment's entries go round-robin to `SETS` sets of accumulators
    /// (1, 2 or 4), so that many multiply-add chains per vector overlap
    /// their latency: four for one or two vectors, two for three or four
    /// (their chains are long enough already, and fewer sets to clear and
    /// sum per segment).
    ///
    /// The loop is bound by loads, not multiply-adds: each group of four
    /// entries reads its four column bytes as one `u32` instead of a byte
    /// load each. No software prefetch: none measured paid on every CPU
    /// (docs/tuning.md).
    #[target_feature(enable = "avx512f")]
    unsafe fn pass<const CH: usize, const SETS: usize>(
        &self,
        blocks: std::ops::Range<usize>,
        xt: &[f32],
        tile: &mut [f32],
        mut write: impl FnMut(std::ops::Range<usize>, &[f32]),
    ) {
        use std::arch::x86_64::*;
        const { assert!(SETS == 1 || SETS == 2 || SETS == 4, "entries go to sets four at a time") };
        let padded = CH * 16;
        let (cols, vals) = (self.entry_col.as_slice(), self.values.as_slice());
        let col_blocks = self.col_blocks();
        for rb in blocks {
            let block_rows = rb * ROW_BLOCK..((rb + 1) * ROW_BLOCK).min(self.rows);
            tile[..block_rows.len() * padded].fill(0.0);
            let t = tile.as_mut_ptr();
            for cb in 0..col_blocks {
                let pair = rb * col_blocks + cb;
                let x_block = &xt[cb * COL_BLOCK * padded..];
                let xs = x_block.as_ptr();
                let segments = self.block_ptr[pair]..self.block_ptr[pair + 1];
                for s in segments.clone() {
                    let entries = self.seg_ptr[s]..self.seg_ptr[s + 1];
                    let mut acc = [[_mm512_setzero_ps(); CH]; SETS];
                    // SAFETY: an entry's column lies inside its column block,
                    // whose `padded` floats per column lie inside `xt` (the
                    // caller's guarantee); `j` stays inside the segment.
                    let entry = |acc: &mut [__m512; CH], j: usize| unsafe {
                        let v = _mm512_set1_ps(*vals.get_unchecked(j));
                        let x = xs.add(*cols.get_unchecked(j) as usize * padded);
                        for (ch, a) in acc.iter_mut().enumerate() {
                            *a = _mm512_fmadd_ps(v, _mm512_loadu_ps(x.add(ch * 16)), *a);
                        }
                    };
                    let mut j = entries.start;
                    while j + 4 <= entries.end {
                        // SAFETY: entries j .. j + 4 lie inside the segment
                        // (so inside `cols` and `vals`); their columns as in
                        // `entry`.
                        unsafe {
                            let four_cols = (cols.as_ptr().add(j) as *const u32).read_unaligned().to_le();
                            for k in 0..4 {
                                let a = &mut acc[k % SETS];
                                let v = _mm512_set1_ps(*vals.get_unchecked(j + k));
                                let x = xs.add((four_cols >> (8 * k) & 0xff) as usize * padded);
                                for (ch, a) in a.iter_mut().enumerate() {
                                    *a = _mm512_fmadd_ps(v, _mm512_loadu_ps(x.add(ch * 16)), *a);
                                }
                            }
                        }
                        j += 4;
                    }
                    for j in j..entries.end {
                        entry(&mut acc[0], j);
                    }
                    // SAFETY: the segment's row lies inside the row block, so
                    // its CH vectors lie inside the tile (ROW_BLOCK rows of
                    // `padded` floats).
                    unsafe {
                        let y = t.add(self.seg_row[s] as usize * padded);
                        for ch in 0..CH {
                            let sum = acc[1..].iter().fold(acc[0][ch], |sum, set| _mm512_add_ps(sum, set[ch]));
                            _mm512_storeu_ps(y.add(ch * 16), _mm512_add_ps(sum, _mm512_loadu_ps(y.add(ch * 16))));
                        }
                    }
                }
            }
            write(block_rows, tile);
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl TiledCsr {
    /// [`Self::product`] with AVX2 and FMA.
    ///
    /// # Safety
    /// AVX2 and FMA must be present and `xt` must hold `cols * padded` floats.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn product_avx2(
        &self,
        blocks: std::ops::Range<usize>,
        xt: &[f32],
        padded: usize,
        write: impl FnMut(std::ops::Range<usize>, &[f32]),
    ) {
        debug_assert!(padded == 16 || padded == 32);
        debug_assert!(xt.len() >= self.cols * padded);
        with_tile(|tile| {
            // SAFETY (both arms): forwarded from the caller.
            unsafe {
                if padded == 32 {
                    self.pass_avx2::<4>(blocks, xt, tile, write)
                } else {
                    self.pass_avx2::<2>(blocks, xt, tile, write)
                }
            }
        })
    }

    /// [`Self::pass`] for `CH` vectors of 8 batch entries (`padded = 8 · CH`),
    /// with two sets of accumulators (16 ymm registers hold no more).
    #[target_feature(enable = "avx2,fma")]
    unsafe fn pass_avx2<const CH: usize>(
        &self,
        blocks: std::ops::Range<usize>,
        xt: &[f32],
        tile: &mut [f32],
        mut write: impl FnMut(std::ops::Range<usize>, &[f32]),
    ) {
        use std::arch::x86_64::*;
        let padded = CH * 8;
        let (cols, vals) = (self.entry_col.as_slice(), self.values.as_slice());
        let col_blocks = self.col_blocks();
        for rb in blocks {
            let block_rows = rb * ROW_BLOCK..((rb + 1) * ROW_BLOCK).min(self.rows);
            tile[..block_rows.len() * padded].fill(0.0);
            let t = tile.as_mut_ptr();
            for cb in 0..col_blocks {
                let pair = rb * col_blocks + cb;
                let xs = xt[cb * COL_BLOCK * padded..].as_ptr();
                // The next block's Xᵀ rows (the first column block's after
                // the last), two lines per segment into L2 (all of them when
                // most rows have entries here): with Xᵀ of a few hundred KiB
                // and the matrix streaming through L2, they were probably
                // gone since the last row block read them.
                let next = (cb + 1) % col_blocks;
                let next_xt = &xt[next * COL_BLOCK * padded..];
                let next_floats = next_xt.len().min(COL_BLOCK * padded);
                let first = self.block_ptr[pair];
                for s in first..self.block_ptr[pair + 1] {
                    let entries = self.seg_ptr[s]..self.seg_ptr[s + 1];
                    let ahead = (s - first) * 2 * FLOATS_PER_LINE;
                    if ahead < next_floats {
                        // SAFETY: `ahead` lies inside the next block's
                        // Xᵀ rows (a prefetch reads nothing anyway).
                        unsafe {
                            let line = next_xt.as_ptr().add(ahead);
                            _mm_prefetch::<_MM_HINT_T1>(line as *const i8);
                            _mm_prefetch::<_MM_HINT_T1>(line.wrapping_add(FLOATS_PER_LINE) as *const i8);
                        }
                    }
                    let mut acc = [[_mm256_setzero_ps(); CH]; 2];
                    // SAFETY: as in `pass`.
                    let entry = |acc: &mut [__m256; CH], j: usize| unsafe {
                        let v = _mm256_set1_ps(*vals.get_unchecked(j));
                        let x = xs.add(*cols.get_unchecked(j) as usize * padded);
                        for (ch, a) in acc.iter_mut().enumerate() {
                            *a = _mm256_fmadd_ps(v, _mm256_loadu_ps(x.add(ch * 8)), *a);
                        }
                    };
                    let mut j = entries.start;
                    while j + 2 <= entries.end {
                        let [a0, a1] = &mut acc;
                        entry(a0, j);
                        entry(a1, j + 1);
                        j += 2;
                    }
                    if j < entries.end {
                        entry(&mut acc[0], j);
                    }
                    // SAFETY: as in `pass`.
                    unsafe {
                        let y = t.add(self.seg_row[s] as usize * padded);
                        for (ch, (a0, a1)) in acc[0].into_iter().zip(acc[1]).enumerate() {
                            _mm256_storeu_ps(y.add(ch * 8), _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_loadu_ps(y.add(ch * 8))));
                        }
                    }
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
    fn every_entry_lands_once_in_its_blocks_and_row() {
        // Three row blocks (the last partial) and three column blocks (the
        // last partial); row 129 full, row 5 empty.
        let (rows, cols) = (300, 2 * COL_BLOCK + 37);
        let (row_ptr, col_idx, values) = csr(rows, cols, |r, c| r != 5 && ((r * 7 + c * 13) % 5 == 0 || r == 129));
        let tiled = TiledCsr::new(rows, cols, &row_ptr, &col_idx, &values);
        let (row_blocks, col_blocks) = (rows.div_ceil(ROW_BLOCK), cols.div_ceil(COL_BLOCK));
        assert_eq!(tiled.block_ptr.len(), row_blocks * col_blocks + 1);
        let mut seen = Vec::new();
        for rb in 0..row_blocks {
            for cb in 0..col_blocks {
                let pair = rb * col_blocks + cb;
                let segments = tiled.block_ptr[pair]..tiled.block_ptr[pair + 1];
                let lengths: Vec<usize> = segments.clone().map(|s| tiled.seg_ptr[s + 1] - tiled.seg_ptr[s]).collect();
                assert!(
                    lengths.windows(2).all(|w| w[0] >= w[1]),
                    "block ({rb}, {cb}): segments not sorted by length: {lengths:?}"
                );
                assert!(lengths.iter().all(|&n| n > 0), "block ({rb}, {cb}): empty segment stored");
                let mut rows_here: Vec<u16> = segments.clone().map(|s| tiled.seg_row[s]).collect();
                rows_here.sort_unstable();
                assert!(
                    rows_here.windows(2).all(|w| w[0] < w[1]),
                    "block ({rb}, {cb}): a row has two segments"
                );
                for s in segments {
                    let r = rb * ROW_BLOCK + tiled.seg_row[s] as usize;
                    assert!(r < rows && r != 5);
                    for j in tiled.seg_ptr[s]..tiled.seg_ptr[s + 1] {
                        let c = cb * COL_BLOCK + tiled.entry_col[j] as usize;
                        assert!(c < cols);
                        assert_eq!(tiled.values[j], (r * cols + c) as f32, "entry ({r}, {c}) holds another's value");
                        seen.push((r, c));
                    }
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
