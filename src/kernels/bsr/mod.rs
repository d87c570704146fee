//! Block compressed sparse row (BSR) matrices and their product with a dense
//! batch, for block sparsity (the `bsr` mode): between ISS, which removes
//! whole hidden units, and unstructured sparsity (CSR).
//!
//! `Y (+)= X · Wᵀ` with `W` (`rows x cols`) stored as the `r x c` blocks
//! that hold any nonzero (zero-padded where they cross the last row or
//! column), each block's values in the order its kernel reads them
//! ([`layout`]), and `X` a batch of dense rows. A kernel call multiplies a
//! *pass* of a block row (up to 16 of its rows) by a tile of batch entries
//! held in registers (`template.rs`): the block kernel holds sub-tiles of
//! weights, so each weight vector loaded serves the whole tile (up to 24
//! entries) and each input broadcast serves one or two weight vectors; the
//! entry kernel, for blocks of one sub-tile per pass (4 x 4, 8 x 8, 1 x 4)
//! from batch 16 (8 for 4-row passes of narrower sub-tiles, as int8 and
//! bf16 4 x 4 blocks have in words), holds 4 to 16 entries' inputs per
//! vector and broadcasts the weights. bf16 and int8 values run the same
//! layouts and templates on 32-bit words ([`words`]). `X` is read in
//! place, or for narrow blocks and the entry kernel packed a chunk at a
//! time ([`pack`]); a large batch goes in chunks whose inputs stay in L2
//! while every block row of a task passes over them ([`run`]). Block rows
//! are split over rayon workers in ranges of equal block count. Matrices
//! of 1 x c strips keep a CSR copy for batches above
//! [`STRIPS_AS_CSR_ABOVE`].
//!
//! The SIMD level and the layout are resolved once, when the matrix is
//! built, and every product on it runs at that level. Tuning measurements:
//! docs/tuning.md.

#[cfg(target_arch = "x86_64")]
#[macro_use]
mod template;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod layout;
mod pack;
mod portable;
mod run;
mod words;

use thiserror::Error;

use super::csr::{CsrMatrix, csr_matmul};
use super::matrix::{MatMut, MatRef, SendPtr};
use super::simd::SimdLevel;
use crate::precision::Precision;
use layout::{Family, Layout};
use words::{Arith, RowDequant, RowScales};

/// Why a BSR matrix could not be built.
#[derive(Debug, Error, PartialEq)]
pub enum BsrError {
    /// A block needs at least one row and one column.
    #[error("a block of {r} x {c} holds no weights")]
    EmptyBlock { r: usize, c: usize },
    /// More block columns than a 32-bit index addresses.
    #[error("{cols} columns in blocks of {c} exceed the 32-bit block column index")]
    TooManyColumns { cols: usize, c: usize },
    /// More columns than an `i32` sum of int8 products holds.
    #[error("{cols} columns exceed the {max} an int8 product's i32 sums hold")]
    TooWideForInt8 { cols: usize, max: usize },
}

/// A sparse matrix stored as dense `r x c` blocks.
#[derive(Debug, Clone, PartialEq)]
pub struct BsrMatrix {
    rows: usize,
    cols: usize,
    /// Rows and columns of a block.
    block: (usize, usize),
    /// The SIMD level the products run at (detected when built).
    level: SimdLevel,
    /// The order of each block's words, chosen for `level` and the shape
    /// in words.
    layout: Layout,
    /// The values' precision and the instructions that multiply them.
    arith: Arith,
    /// 32-bit words per row of a block (`c`, or `c` over the values a word
    /// holds, rounded up: [`words`]).
    words: usize,
    /// int8: each row's scale and sum of quantized weights (empty otherwise).
    row_scales: RowScales,
    /// Blocks of block row `i` are `block_ptr[i]..block_ptr[i + 1]`.
    block_ptr: Vec<usize>,
    /// Each block's block column (its first column over `c`).
    block_col: Vec<u32>,
    /// `r · words` words per block, in `layout`'s order, from a cache-line
    /// boundary (a 16-word vector of a block never spans two lines).
    values: Lines,
    /// The same weights in CSR form, for large batches of one-row blocks
    /// ([`STRIPS_AS_CSR_ABOVE`]).
    strips: Option<Box<CsrMatrix>>,
}

/// A cache line of floats.
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, PartialEq)]
struct Line([f32; 16]);

/// Floats stored in whole cache lines from a line boundary (a `Vec<f32>`
/// starts wherever the allocator puts it, often 16 bytes past a line, and
/// then every 16-float load of a block spans two lines).
#[derive(Debug, Clone, Default, PartialEq)]
struct Lines {
    lines: Vec<Line>,
    len: usize,
}

impl Lines {
    fn len(&self) -> usize {
        self.len
    }
    /// Grows to `len` floats, the new ones zero.
    fn grow(&mut self, len: usize) {
        debug_assert!(len >= self.len);
        self.lines.resize(len.div_ceil(16), Line([0.0; 16]));
        self.len = len;
    }
    fn as_slice(&self) -> &[f32] {
        // SAFETY: the lines are `16 · lines.len() >= len` contiguous floats.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast(), self.len) }
    }
    fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as in `as_slice`, borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast(), self.len) }
    }
}

/// Batches above which a matrix of one-row blocks (1 x c strips) runs the
/// CSR kernel on the same weights: a strip has no rows to share its inputs
/// across, so every input is loaded once per weight, as in CSR, and only
/// CSR's tiled layout (column blocks whose inputs stay in L1) keeps those
/// loads in L1; the block kernels read them from L2 (docs/tuning.md, "BSR").
pub const STRIPS_AS_CSR_ABOVE: usize = 16;

/// Floats ahead of the weights a kernel step reads at which it prefetches
/// them into L1 (16 KiB, as the dense kernel's `PREFETCH_AHEAD`): without,
/// the weights come from L3 or memory too slowly at small batches.
pub(super) const W_PREFETCH_AHEAD: usize = 4096;

/// Most accumulator vectors of any kernel (the zmm kernels'); the sums
/// buffer holds as many vectors of 16 floats.
pub(super) const MAX_ACCUMULATORS: usize = layout::ZMM_ACCUMULATORS;

/// A pass's sums for a batch tile, entry-major (`B x RP`), with room for
/// every accumulator vector of the widest kernel.
#[repr(C, align(64))]
pub(super) struct Sums(pub(super) [f32; MAX_ACCUMULATORS * 16]);

/// One kernel call: a pass of a block row against a batch tile.
///
/// # Safety
/// The caller must uphold [`Job`]'s and [`Inputs`]' invariants, pass a
/// block row, a pass (`< r / RP`) and a tile `b0 .. b0 + B` inside the
/// inputs' entries, and run it on a CPU with the kernel's features.
pub(super) type KernelFn = unsafe fn(&Job, &Inputs, usize, usize, usize, &mut Sums);

/// The matrix side of every kernel call of one product. Invariants
/// (established by [`product`]): `values` holds `block_len` values per
/// block, in the layout's order; a pass (`pass_len` values) is `steps`
/// steps of the layout's `C'` columns.
pub(super) struct Job<'a> {
    block_ptr: &'a [usize],
    block_col: &'a [u32],
    values: &'a [f32],
    /// Columns of a block.
    c: usize,
    /// Columns of `W` (and of `X`).
    cols: usize,
    block_len: usize,
    pass_len: usize,
    steps: usize,
}

/// Where a kernel call's inputs are: entry `b`'s `C'` inputs of step `s` of
/// block column `bc` start at `x[b · entry + bc · block + s · step]`. In
/// place (`X`'s rows, `entry` their stride, `step` = `C'`, `block` = `c`)
/// or packed ([`pack`]: a chunk of the batch, step by step, `entry` = `C'`).
/// Invariant (established by [`product`]): for the entries of every tile
/// of the batch (or chunk), every step a kernel reads lies inside `x`:
/// `Job::steps` steps from each block column's first, except in block
/// column `edge_col`, which reads `edge_steps`.
#[derive(Clone, Copy)]
pub(super) struct Inputs<'a> {
    x: &'a [f32],
    entry: usize,
    step: usize,
    block: usize,
    edge_col: usize,
    edge_steps: usize,
}

impl BsrMatrix {
    /// The `r x c` blocks (`block = (r, c)`) of the row-major `rows x cols`
    /// matrix `w` that hold any nonzero (NaN included), tiled from the top
    /// left; blocks crossing the last row or column are zero-padded.
    pub fn from_dense(w: &[f32], rows: usize, cols: usize, block: (usize, usize)) -> Result<BsrMatrix, BsrError> {
        Self::from_dense_at(w, rows, cols, block, SimdLevel::detect())
    }

    /// [`Self::from_dense`] with products at `level` (capped at the level
    /// detected, so tests and comparisons can run the narrower kernels).
    pub fn from_dense_at(w: &[f32], rows: usize, cols: usize, block: (usize, usize), level: SimdLevel) -> Result<BsrMatrix, BsrError> {
        Self::from_dense_with(w, rows, cols, block, Precision::Fp32, level)
    }

    /// [`Self::from_dense_at`] with the values stored and multiplied at
    /// `precision`: bf16 (weights and inputs rounded, f32 sums) or int8
    /// (weights quantized per row, inputs per product, `i32` sums), as
    /// the dense kernels of that precision do ([`words`]).
    pub fn from_dense_with(
        w: &[f32],
        rows: usize,
        cols: usize,
        block: (usize, usize),
        precision: Precision,
        level: SimdLevel,
    ) -> Result<BsrMatrix, BsrError> {
        let (r, c) = block;
        if r == 0 || c == 0 {
            return Err(BsrError::EmptyBlock { r, c });
        }
        let block_cols = cols.div_ceil(c);
        if u32::try_from(block_cols).is_err() {
            return Err(BsrError::TooManyColumns { cols, c });
        }
        if precision == Precision::Int8 && cols > super::int8::MAX_K {
            return Err(BsrError::TooWideForInt8 {
                cols,
                max: super::int8::MAX_K,
            });
        }
        assert_eq!(w.len(), rows * cols, "dense matrix is {} long, not {rows} x {cols}", w.len());
        let (arith, level) = Arith::choose(precision, level.capped());
        let per = arith.per_word();
        let words = c.div_ceil(per);
        let layout = Layout::choose(level, r, words);
        let row_scales = match arith {
            Arith::Int8 { .. } => RowScales::of(w, rows, cols),
            _ => RowScales::default(),
        };
        let mut m = BsrMatrix {
            rows,
            cols,
            block,
            level,
            layout,
            arith,
            words,
            row_scales,
            block_ptr: vec![0],
            block_col: Vec::new(),
            values: Lines::default(),
            strips: None,
        };
        if r == 1 && arith == Arith::F32 && cfg!(target_arch = "x86_64") && level >= SimdLevel::Avx2Fma {
            let csr = CsrMatrix::from_dense_at(w, rows, cols, 0.0, level).map_err(|_| BsrError::TooManyColumns { cols, c })?;
            m.strips = Some(Box::new(csr));
        }
        for br in 0..rows.div_ceil(r) {
            let height = r.min(rows - br * r);
            for bc in 0..block_cols {
                let width = c.min(cols - bc * c);
                let at = |i: usize, j: usize| w[(br * r + i) * cols + bc * c + j];
                if !(0..height).any(|i| (0..width).any(|j| at(i, j) != 0.0)) {
                    continue;
                }
                m.block_col.push(bc as u32);
                let start = m.values.len();
                m.values.grow(start + r * words);
                let values = m.values.as_mut_slice();
                for i in 0..height {
                    let scale = m.row_scales.scale(br * r + i);
                    for j in 0..width {
                        let v = &mut values[start + layout.offset(words, i, j / per)];
                        *v = f32::from_bits(v.to_bits() | arith.encode(at(i, j), j % per, scale));
                    }
                }
            }
            m.block_ptr.push(m.block_col.len());
        }
        Ok(m)
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Rows and columns of a block.
    pub fn block(&self) -> (usize, usize) {
        self.block
    }
    /// The SIMD level its products run at (bf16 and int8: AVX-512 only
    /// with the CPU's dot-product instructions, [`words`]).
    pub fn level(&self) -> SimdLevel {
        self.level
    }
    /// The precision its values are stored and multiplied at.
    pub fn precision(&self) -> Precision {
        self.arith.precision()
    }
    /// Stored blocks.
    pub fn nnz_blocks(&self) -> usize {
        self.block_col.len()
    }
    /// Stored values: `r · c` per block, zeros inside kept blocks and the
    /// padding of edge blocks included (what the products multiply).
    pub fn stored_values(&self) -> usize {
        self.nnz_blocks() * self.block.0 * self.block.1
    }
    /// Stored values that are nonzero (at the matrix's precision: a weight
    /// that rounds or quantizes to zero is not counted).
    pub fn nonzeros(&self) -> usize {
        let mut count = 0;
        self.for_each_weight(|_, _, v| count += usize::from(v != 0.0));
        count
    }
    /// Bytes of values, block column indices, block row pointers and int8
    /// row scales (not the CSR copy one-row blocks keep for large batches).
    pub fn bytes(&self) -> usize {
        let scales = self.row_scales.scales.len() * 4 + self.row_scales.sums.len() * 4;
        self.values.len() * 4 + self.block_col.len() * 4 + self.block_ptr.len() * std::mem::size_of::<usize>() + scales
    }
    /// The kernel its products run (vector width, sub-tile and rows per
    /// pass), for benchmark reports.
    pub fn kernel(&self) -> String {
        let l = self.layout;
        let family = match l.family {
            Family::Portable => return "portable".to_string(),
            Family::Zmm => "zmm",
            Family::Ymm => "ymm",
            Family::Xmm => "xmm",
        };
        let mut name = format!("{family} {}x{} x{}", l.sub_rows(), l.cp, l.groups);
        match self.arith {
            Arith::F32 => {}
            Arith::Bf16 { dot } => name += if dot { " bf16 pairs, vdpbf16ps" } else { " bf16 pairs, widened" },
            Arith::Int8 { dot } => name += if dot { " int8 quads, vpdpbusd" } else { " int8 quads, vpmaddwd" },
        }
        if let Some((cp, rows, _)) = l.entry_shape(self.level) {
            name += &format!(", entries {}x{cp} x{rows} from {}", 16 / cp, l.entry_min_batch());
        }
        if self.strips.is_some() {
            name += &format!(", csr above {STRIPS_AS_CSR_ABOVE}");
        }
        name
    }
    /// The dense row-major form of the weights the products multiply
    /// (bf16: rounded; int8: quantized times the row's scale), for tests
    /// and verification.
    pub fn to_dense(&self) -> Vec<f32> {
        let mut w = vec![0.0; self.rows * self.cols];
        self.for_each_weight(|i, j, v| w[i * self.cols + j] = v);
        w
    }
    /// `f(row, column, weight)` for every stored weight inside the matrix.
    fn for_each_weight(&self, mut f: impl FnMut(usize, usize, f32)) {
        let (r, c) = self.block;
        let (per, words) = (self.arith.per_word(), self.words);
        let values = self.values.as_slice();
        for br in 0..self.block_rows() {
            for k in self.block_ptr[br]..self.block_ptr[br + 1] {
                let bc = self.block_col[k] as usize;
                for i in 0..r.min(self.rows - br * r) {
                    let row = br * r + i;
                    let scale = self.row_scales.scale(row);
                    for j in 0..c.min(self.cols - bc * c) {
                        let word = values[k * r * words + self.layout.offset(words, i, j / per)].to_bits();
                        f(row, bc * c + j, self.arith.decode(word, j % per, scale));
                    }
                }
            }
        }
    }
    /// Columns of the matrix of words the kernels multiply: whole blocks
    /// of `words` words (the columns themselves in fp32).
    fn word_cols(&self) -> usize {
        match self.arith {
            Arith::F32 => self.cols,
            _ => self.cols.div_ceil(self.block.1) * self.words,
        }
    }
    /// Block rows.
    fn block_rows(&self) -> usize {
        self.block_ptr.len() - 1
    }
    /// The `part`-th of `parts` block-row ranges holding about equal blocks.
    fn balanced_block_rows(&self, part: usize, parts: usize) -> std::ops::Range<usize> {
        let blocks = self.nnz_blocks();
        let at = |i: usize| {
            if i == parts {
                self.block_rows()
            } else {
                self.block_ptr.partition_point(|&p| p < blocks * i / parts).min(self.block_rows())
            }
        };
        at(part)..at(part + 1)
    }
}

/// Where results go: `Y[b, r]` at `ptr + b · rsy + r · csy`.
#[derive(Clone, Copy)]
pub(super) struct BlockOut<'a> {
    ptr: SendPtr,
    rsy: usize,
    csy: usize,
    /// Rows of `W` (columns of `Y`): sums past them are dropped.
    rows: usize,
    accumulate: bool,
    /// Whole passes of 16 rows go to `Y` with non-temporal stores (see
    /// [`streams_y`]).
    stream: bool,
    /// int8: the sums are `i32` bits, dequantized on the way to `Y`.
    dequant: Option<RowDequant<'a>>,
}

/// Bytes of `Y` from which a product writes it around the caches: a `Y`
/// this large cannot stay in them, and a plain store first reads each
/// line it writes from memory (DeepBench's n = 1500 problems write 46-64
/// MB of `Y`; docs/tuning.md, "BSR: `Y` written around the caches").
const STREAM_Y_BYTES: usize = 32 << 20;

/// Whether a product writes `Y` (at `y`, `rows` rows of `rsy` floats, unit
/// column stride) with non-temporal stores: overwritten, not added to, and
/// large, with every 16-float run of a pass on its own cache line.
fn streams_y(level: SimdLevel, y: *const f32, rsy: usize, rows: usize, accumulate: bool) -> bool {
    cfg!(target_arch = "x86_64")
        && level >= SimdLevel::Avx2Fma
        && !accumulate
        && (y as usize).is_multiple_of(64)
        && rsy.is_multiple_of(16)
        && rows * rsy * std::mem::size_of::<f32>() >= STREAM_Y_BYTES
}

/// Writes 16 floats to the cache line at `dst` around the caches.
///
/// # Safety
/// AVX must be present; `dst` must be 64-byte aligned and valid for 16 floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn stream_line(dst: *mut f32, src: &[f32; 16]) {
    use std::arch::x86_64::*;
    // SAFETY: the caller's guarantee.
    unsafe {
        _mm256_stream_ps(dst, _mm256_loadu_ps(src.as_ptr()));
        _mm256_stream_ps(dst.add(8), _mm256_loadu_ps(src.as_ptr().add(8)));
    }
}

/// Orders this thread's non-temporal stores before whatever it does next
/// (the end of its task, which the caller waits for).
pub(super) fn fence_streamed(out: BlockOut<'_>) {
    #[cfg(target_arch = "x86_64")]
    if out.stream {
        // SAFETY: SSE is part of x86_64.
        unsafe { std::arch::x86_64::_mm_sfence() };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = out;
}

impl BlockOut<'_> {
    /// Writes (or adds) `sums[i]` to `Y[b, r0 + i]` for the rows that exist.
    #[inline]
    fn write(self, b: usize, r0: usize, sums: &[f32]) {
        let n = sums.len().min(self.rows.saturating_sub(r0));
        // SAFETY: b < batch and r0 + n <= rows: inside Y, in rows of W that
        // only this task writes.
        unsafe {
            let base = self.ptr.get().add(b * self.rsy + r0 * self.csy);
            if self.csy == 1 {
                let y = std::slice::from_raw_parts_mut(base, n);
                if self.accumulate {
                    y.iter_mut().zip(sums).for_each(|(y, s)| *y += s);
                } else {
                    y.copy_from_slice(&sums[..n]);
                }
            } else {
                for (i, &s) in sums[..n].iter().enumerate() {
                    let p = base.add(i * self.csy);
                    *p = if self.accumulate { *p + s } else { s };
                }
            }
        }
    }

    /// Writes a pass's sums for entries `b0 .. b0 + count` (`rp` per entry
    /// in `sums`, rows `r0 ..`): whole passes of 4, 8 or 16 contiguous rows
    /// as fixed-size copies (a copy of a variable length is a call).
    /// int8 sums are dequantized in place first.
    #[inline]
    fn write_tile(self, b0: usize, count: usize, r0: usize, rp: usize, sums: &mut [f32]) {
        if let Some(d) = self.dequant {
            let rows = rp.min(self.rows.saturating_sub(r0));
            for entry in sums.chunks_exact_mut(rp).take(count) {
                d.dequantize(r0, &mut entry[..rows]);
            }
            let plain = BlockOut { dequant: None, ..self };
            return plain.write_tile(b0, count, r0, rp, sums);
        }
        if self.csy == 1 && r0 + rp <= self.rows {
            match rp {
                16 => return self.write_fixed::<16>(b0, count, r0, sums),
                8 => return self.write_fixed::<8>(b0, count, r0, sums),
                4 => return self.write_fixed::<4>(b0, count, r0, sums),
                _ => {}
            }
        }
        for i in 0..count {
            self.write(b0 + i, r0, &sums[i * rp..(i + 1) * rp]);
        }
    }

    /// [`Self::write_tile`] for passes of `N` rows inside `Y` (`csy` = 1).
    #[inline]
    fn write_fixed<const N: usize>(self, b0: usize, count: usize, r0: usize, sums: &[f32]) {
        for (i, src) in sums.chunks_exact(N).take(count).enumerate() {
            let src: &[f32; N] = src.try_into().expect("N floats");
            // SAFETY: entry b0 + i < batch and rows r0 .. r0 + N <= rows:
            // inside Y (contiguous columns), in rows only this task writes.
            let dst = unsafe { &mut *self.ptr.get().add((b0 + i) * self.rsy + r0).cast::<[f32; N]>() };
            #[cfg(target_arch = "x86_64")]
            if N == 16 && self.stream {
                // SAFETY: `stream` holds only where the CPU has AVX, `Y`
                // starts on a cache line and its rows are whole lines; r0
                // is a multiple of 16 in passes of 16 rows.
                unsafe { stream_line(dst.as_mut_ptr(), src.first_chunk().expect("16 floats")) };
                continue;
            }
            if self.accumulate {
                dst.iter_mut().zip(src).for_each(|(y, s)| *y += s);
            } else {
                *dst = *src;
            }
        }
    }
}

/// `Y = X · Wᵀ` (or `Y += X · Wᵀ` with `accumulate`): `X` is `batch x cols`
/// (any strides), `Y` is `batch x rows` (any strides). Panics on shape mismatch.
pub fn bsr_matmul(x: MatRef, w: &BsrMatrix, y: &mut MatMut, accumulate: bool) {
    let batch = x.rows();
    assert_eq!(x.cols(), w.cols, "bsr_matmul: X has {} columns, W has {}", x.cols(), w.cols);
    assert!(
        y.rows() == batch && y.cols() == w.rows,
        "bsr_matmul: Y is {}x{}, expected {batch}x{}",
        y.rows(),
        y.cols(),
        w.rows
    );
    if batch == 0 || w.rows == 0 {
        return;
    }
    if w.nnz_blocks() == 0 {
        if !accumulate {
            (0..batch).for_each(|b| (0..w.rows).for_each(|r| *y.at_mut(b, r) = 0.0));
        }
        return;
    }
    if let Some(csr) = w.strips.as_deref().filter(|_| batch > STRIPS_AS_CSR_ABOVE) {
        return csr_matmul(x, csr, y, accumulate);
    }
    let (y_ptr, rsy, csy) = y.raw();
    let out = BlockOut {
        ptr: SendPtr(y_ptr),
        rsy,
        csy,
        rows: w.rows,
        accumulate,
        stream: csy == 1 && streams_y(w.level, y_ptr, rsy, batch, accumulate),
        dequant: None,
    };
    if w.arith == Arith::F32 {
        return run::product(w, x, out);
    }
    let len = batch * w.word_cols();
    run::with_scratch(&run::WORDS_SCRATCH, len, |buf| {
        let quant = words::inputs_to_words(w.arith, x, w.block.1, w.words, buf);
        let out = BlockOut {
            dequant: quant.map(|q| RowDequant {
                a_scale: q.scale,
                zero_point: i32::from(q.zero_point),
                rows: &w.row_scales,
            }),
            ..out
        };
        run::product(w, MatRef::row_major(buf, batch, w.word_cols()), out);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_blocks_with_any_nonzero() {
        // 5 x 7 in 2 x 3 blocks: 3 x 3 blocks, the last row and column partial.
        let mut w = vec![0.0f32; 5 * 7];
        w[0] = 1.0; // block (0, 0)
        w[4 * 7 + 6] = -2.0; // block (2, 2), the corner
        w[2 * 7 + 3] = f32::NAN; // block (1, 1)
        let m = BsrMatrix::from_dense(&w, 5, 7, (2, 3)).unwrap();
        assert_eq!((m.nnz_blocks(), m.stored_values(), m.block_ptr.clone()), (3, 18, vec![0, 1, 2, 3]));
        assert_eq!(m.block_col, vec![0, 1, 2]);
        let back = m.to_dense();
        assert!(back.iter().zip(&w).all(|(a, b)| a == b || (a.is_nan() && b.is_nan())));
        assert_eq!(BsrMatrix::from_dense(&[], 0, 0, (0, 4)), Err(BsrError::EmptyBlock { r: 0, c: 4 }));
    }

    #[test]
    fn balanced_block_rows_cover_every_row_once() {
        let mut w = vec![0.0f32; 64 * 8];
        w[..8 * 8].fill(1.0); // all blocks in the first rows
        let m = BsrMatrix::from_dense(&w, 64, 8, (4, 4)).unwrap();
        for parts in 1..6 {
            let ranges: Vec<_> = (0..parts).map(|p| m.balanced_block_rows(p, parts)).collect();
            assert_eq!((ranges[0].start, ranges[parts - 1].end), (0, 16), "{ranges:?}");
            assert!(ranges.windows(2).all(|w| w[0].end == w[1].start), "{ranges:?}");
        }
    }

    #[test]
    fn every_layout_has_its_tile_kernels() {
        for level in [SimdLevel::Avx2Fma, SimdLevel::Avx512] {
            if level.capped() != level {
                continue;
            }
            for r in 1..=33 {
                for c in [1usize, 2, 3, 4, 5, 6, 8, 12, 16, 24, 32] {
                    for precision in Precision::ALL {
                        let (arith, level) = Arith::choose(precision, level);
                        let layout = Layout::choose(level, r, c.div_ceil(arith.per_word()));
                        if layout.family != Family::Portable {
                            for tile in layout.tile_sizes() {
                                run::kernel_for(&layout, arith, tile);
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod stream_tests {
    use super::*;

    /// A `Y` of 32 MiB on a cache-line boundary is written around the
    /// caches (where the CPU has AVX2) and holds the same bits as the same
    /// product into a `Y` one float off the boundary, written plainly;
    /// added to, or small, it is never streamed.
    #[test]
    fn a_large_y_streamed_holds_the_plainly_written_product() {
        let (rows, cols, batch) = (4096usize, 48usize, 2048usize);
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| {
                if (i / cols / 16 + i % cols / 16) % 3 == 0 {
                    ((i * 7919) % 211) as f32 / 211.0 - 0.5
                } else {
                    0.0
                }
            })
            .collect();
        let x: Vec<f32> = (0..batch * cols).map(|i| ((i * 104_729) % 997) as f32 / 997.0 - 0.5).collect();
        let m = BsrMatrix::from_dense(&w, rows, cols, (16, 16)).unwrap();
        let x = MatRef::row_major(&x, batch, cols);
        let len = batch * rows;
        let mut buf = vec![f32::NAN; len + 32];
        let skip = buf.as_ptr().align_offset(64).min(16);
        let streamed = streams_y(m.level(), buf[skip..].as_ptr(), rows, batch, false);
        assert_eq!(streamed, m.level() >= SimdLevel::Avx2Fma && cfg!(target_arch = "x86_64"));
        assert!(!streams_y(m.level(), buf[skip..].as_ptr(), rows, batch, true), "added to");
        assert!(!streams_y(m.level(), buf[skip + 1..].as_ptr(), rows, batch, false), "off a line");
        assert!(!streams_y(m.level(), buf[skip..].as_ptr(), rows, 16, false), "small");
        bsr_matmul(x, &m, &mut MatMut::row_major(&mut buf[skip..skip + len], batch, rows), false);
        let got = buf[skip..skip + len].to_vec();
        let mut plain = vec![f32::NAN; len + 1];
        bsr_matmul(x, &m, &mut MatMut::row_major(&mut plain[1..], batch, rows), false);
        assert!(got == plain[1..], "streamed and plain products differ");
        // Spot checks against the dense definition.
        for (b, r) in [(0, 0), (batch - 1, rows - 1), (1031, 2063), (7, 17)] {
            let want: f64 = (0..cols).map(|c| f64::from(w[r * cols + c]) * f64::from(x.at(b, c))).sum();
            let g = f64::from(got[b * rows + r]);
            assert!((g - want).abs() <= 1e-4 * want.abs().max(1.0), "Y[{b}, {r}] = {g}, want {want}");
        }
    }
}
