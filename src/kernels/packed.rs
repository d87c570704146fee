//! A GEMM for weights that stay fixed: `B` is packed once (at an executor's
//! prepare time) into column panels, so every later product streams it
//! contiguously and never repacks it.
//!
//! This is the kernel behind the executors' `packed` backend. `B` (the
//! weights, `k x n`) lives as `ceil(n / PANEL)` panels of `k x PANEL`
//! elements, cache-line aligned and on huge pages when large. `A` (the
//! activations, a few to a few hundred rows) is read in place by the AVX2
//! kernel when its rows are contiguous (`reads_a_in_place`); otherwise it
//! is copied per call into a per-thread buffer, in blocks of up to 12 rows
//! laid out `[k][rows]`. Work is split over panels, by rayon
//! ([`packed_gemm`]) or by the caller's own workers
//! ([`packed_gemm_panels`]). On AVX2, with several row blocks, the `k`
//! dimension is blocked so a panel slice stays in L1 while every block of
//! `A` rows passes over it; the AVX-512 kernel takes all of `k` per call
//! (up to 4096 steps). At batch 1–10 a product is a stream over the
//! weights (memory- or L2-bound); at large batch the micro-kernels (12 x 32
//! on AVX-512, 6 x 16 half panels on AVX2) run at 80–92% of the FMA peak
//! (Zen 5 with AVX-512, Zen 3 with AVX2; `examples/gemm_shapes` measures it).

use rayon::prelude::*;

use super::matrix::{MatMut, MatRef, SendPtr};
use super::simd::{FLOATS_PER_LINE, SimdLevel, madd, prefetch_l2};

/// Columns per panel: two AVX-512 vectors, four AVX2 vectors (two halves of two).
pub const PANEL: usize = 32;
/// Rows of `B` per cache block when a panel slice is read by several row
/// blocks (one panel's is 16 KiB: it stays in L1 while they pass over it).
const K_BLOCK: usize = 128;
/// Rows per cache block when many row blocks pass over one 16-column half
/// of the slice at a time (AVX2): a half of 256 rows is 16 KiB. Half the
/// `C` reloads of [`K_BLOCK`]: 2–3% faster at 300 rows (Zen 3), but 20%
/// slower at 10, where the product streams its weights and a longer slice
/// leaves fewer calls to spread the next slice's prefetches over.
const K_BLOCK_HALVES: usize = 256;
/// Row blocks from which half passes use [`K_BLOCK_HALVES`] and the
/// large-`A` order (`Job::a_leaves_l2`).
const LONG_SLICE_MIN_BLOCKS: usize = 16;
/// Most steps of `k` per AVX-512 micro-kernel call ([`avx512_k_block`]):
/// a guard above the largest `k` measured (3584), where a 12-row block of
/// `A` is 192 KiB; a longer `k` is cut into blocks, not measured.
const AVX512_MAX_K_BLOCK: usize = 4096;
/// L1 data cache per core, which a half slice shares with a block of `A`
/// and a `C` tile ([`whole_k_stays_in_l1`]).
const L1_DATA_BYTES: usize = 32 * 1024;
/// How far ahead of the current panel row the AVX-512 kernel prefetches,
/// in floats: 128 rows (16 KiB), so a product that streams its weights from
/// memory keeps enough lines in flight. In-process A/B on Zen 5 (medians)
/// against 16 rows (2 KiB): 10 x 1500 x 6000 (the PTB model's recurrent
/// step at batch 10, 36 MB) 1666 -> 918 us on 1 thread and 912 -> 498 on
/// 2, 4 rows 1164 -> 639, 1 row 1122 -> 701 (51 GB/s), 64 rows 10% faster;
/// 32 and 64 KiB ahead were no better. Where the slice is in L1 or L2 it
/// changes little: 300 x 1500 x 1492 equal, 10 x 373 x 1492 0-2% slower.
/// (Only where `B` streams from memory: see [`Job::prefetch_b`].)
const PREFETCH_AHEAD: usize = 128 * PANEL;
/// The same 16 rows ahead within one 16-column half ([`PanelLayout::Halves`]),
/// where the AVX2 kernel prefetches.
const HALF_PREFETCH_AHEAD: usize = 16 * HALF;

/// Most row blocks for which the AVX2 half passes pace their prefetch of
/// the next slice at one line per step ([`Tile::paced_prefetch`]).
const PACED_PREFETCH_MAX_BLOCKS: usize = 2;
/// Smallest packed `B` whose next slices the AVX2 half passes prefetch
/// paced ([`Tile::paced_prefetch`]): half the L3 or more, which streams
/// from memory at every product, where smaller matrices come from L3.
const STREAMED_B_BYTES: usize = 16 << 20;

/// Largest packed `B` that the whole-`k` half passes read without
/// prefetching the next slice ([`prefetches_next`]), and that the AVX-512
/// calls read without prefetching ahead in their panel
/// ([`Job::prefetch_b`]): a weight matrix this small stays in the shared
/// L3 between products (an LSTM's recurrent weights, read again at every
/// step), where the hardware prefetchers keep up on their own.
const L3_RESIDENT_B_BYTES: usize = 8 << 20;
/// Largest packed `A` that stays in L2 while every panel streams past it.
const A_RESIDENT_BYTES: usize = 512 * 1024;
/// [`A_RESIDENT_BYTES`] for the AVX-512 kernels, whose calls take all of a
/// short `k`: a panel slice at k = 315-373 (40-48 KiB) does not stay in L1
/// beside the row blocks of `A` streaming past it, so an `A` of a few hundred
/// rows runs faster in the block-major order, each row block of `A` in L1
/// while a chunk of panels passes. In-process A/B on Sapphire Rapids
/// (48 KiB L1d, 2 MiB L2; medians, 1 / 2 threads), 256 KiB against 512:
/// 300 x 315 x 10000 (the compacted PTB model's softmax head at batch 10, A
/// of 369 KiB) 17.1 -> 13.3 ms / 9.4 -> 6.9 ms, 300 x 373 x 1260 (its
/// second input projection) 1.89 -> 1.72 / 1.11 -> 0.97 ms; 64 x 1500 x
/// 6000 (375 KiB, the dense recurrent step at batch 64), 100 x 1500 x 1492
/// and 640 x 315 x 10000 level; 128 KiB no better.
const A_RESIDENT_BYTES_AVX512: usize = 256 * 1024;
/// Bytes of `C` one task updates per pass over a K block (a part of L2).
const C_CHUNK_BYTES: usize = 512 * 1024;
/// Fewest panels per chunk that [`packed_gemm`]'s workers claim.
const MIN_CLAIMED_PANELS: usize = 16;
/// Below this many multiply-adds a product runs on the calling thread.
const PARALLEL_MIN_MACS: usize = 1 << 16;

/// A `k x n` matrix packed into column panels of [`PANEL`] columns
/// (the last panel zero-padded).
#[derive(Debug, Clone)]
pub struct PackedMatrix {
    k: usize,
    n: usize,
    layout: PanelLayout,
    panels: AlignedFloats,
}

/// How the [`PANEL`] columns of a panel lie in memory: chosen at packing
/// time for the kernels of the detected SIMD level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PanelLayout {
    /// Row by row (`[k][32]`): for kernels that read a whole panel row per
    /// `k` step (AVX-512, portable).
    Rows,
    /// As two 16-column halves, one after the other (`[2][k][16]`): for the
    /// AVX2 kernels, which pass over one half at a time. A half pass then
    /// reads one contiguous stream; over `[k][32]` it would read every other
    /// cache line, which maps to only half of L1's sets, so a 16 KiB half
    /// slice would fill those sets' ways and evict itself.
    Halves,
}

/// Columns of one half of a panel.
const HALF: usize = PANEL / 2;

impl PanelLayout {
    /// The layout the kernels at `level` read.
    fn for_level(level: SimdLevel) -> PanelLayout {
        if level == SimdLevel::Avx2Fma {
            PanelLayout::Halves
        } else {
            PanelLayout::Rows
        }
    }
    /// Index of (`row`, column `col`) in a panel of `k` rows.
    fn index(self, k: usize, row: usize, col: usize) -> usize {
        match self {
            PanelLayout::Rows => row * PANEL + col,
            PanelLayout::Halves => (col / HALF) * k * HALF + row * HALF + col % HALF,
        }
    }
}

/// Steps `k0..k0 + kb` of one panel.
#[derive(Clone, Copy)]
struct PanelSlice<'a> {
    /// The whole panel.
    panel: &'a [f32],
    k: usize,
    k0: usize,
    kb: usize,
    layout: PanelLayout,
}

impl<'a> PanelSlice<'a> {
    /// No steps (nothing to prefetch).
    const EMPTY: PanelSlice<'static> = PanelSlice {
        panel: &[],
        k: 0,
        k0: 0,
        kb: 0,
        layout: PanelLayout::Rows,
    };
    /// The slice's rows, `[kb][32]` (layout [`PanelLayout::Rows`]).
    fn rows(&self) -> &'a [f32] {
        debug_assert_eq!(self.layout, PanelLayout::Rows);
        &self.panel[self.k0 * PANEL..(self.k0 + self.kb) * PANEL]
    }
    /// Half `h` of the slice's rows, `[kb][16]` (layout [`PanelLayout::Halves`]).
    fn half(&self, h: usize) -> &'a [f32] {
        debug_assert_eq!(self.layout, PanelLayout::Halves);
        let start = h * self.k * HALF + self.k0 * HALF;
        &self.panel[start..start + self.kb * HALF]
    }
}

/// Zero-initialised floats for packed weights, aligned so the kernels'
/// loads never straddle cache lines or pages:
/// - to a cache line: a panel row is 128 bytes, so every 64-byte vector load
///   of a panel reads exactly one line;
/// - from 2 MiB up, to a 2 MiB huge page, and on Linux marked for
///   transparent huge pages before it is first touched: streaming tens of
///   megabytes of weights per time step otherwise walks a 4 KiB page every
///   32 panel rows, and the TLB misses cost 10–20% of a memory-bound step.
struct AlignedFloats {
    ptr: std::ptr::NonNull<f32>,
    len: usize,
    layout: std::alloc::Layout,
}

/// Size (and alignment) of a transparent huge page on x86-64 and aarch64.
const HUGE_PAGE: usize = 2 << 20;

impl AlignedFloats {
    fn zeroed(len: usize) -> AlignedFloats {
        let bytes = (len * std::mem::size_of::<f32>()).next_multiple_of(64);
        let align = if bytes >= HUGE_PAGE { HUGE_PAGE } else { 64 };
        let layout = std::alloc::Layout::from_size_align(bytes, align).expect("packed weights fit the address space");
        if bytes == 0 {
            return AlignedFloats {
                ptr: std::ptr::NonNull::dangling(),
                len,
                layout,
            };
        }
        // SAFETY: the layout has a nonzero size.
        let raw = unsafe { std::alloc::alloc(layout) };
        let Some(ptr) = std::ptr::NonNull::new(raw.cast::<f32>()) else {
            std::alloc::handle_alloc_error(layout)
        };
        #[cfg(target_os = "linux")]
        if align == HUGE_PAGE {
            // A hint only: where THP is off the pages stay small.
            // SAFETY: the range is this allocation, page-aligned.
            unsafe { libc::madvise(raw.cast(), bytes, libc::MADV_HUGEPAGE) };
        }
        // SAFETY: `raw` is valid for `bytes` bytes; zeroing them is the first
        // touch, so the kernel backs them with huge pages where it can.
        unsafe { raw.write_bytes(0, bytes) };
        AlignedFloats { ptr, len, layout }
    }
    fn as_slice(&self) -> &[f32] {
        // SAFETY: `ptr` holds `len` initialised floats (or is dangling with len 0).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
    fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as in `as_slice`, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedFloats {
    fn drop(&mut self) {
        if self.layout.size() > 0 {
            // SAFETY: allocated in `zeroed` with exactly this layout.
            unsafe { std::alloc::dealloc(self.ptr.as_ptr().cast(), self.layout) };
        }
    }
}

impl Clone for AlignedFloats {
    fn clone(&self) -> AlignedFloats {
        let mut copy = AlignedFloats::zeroed(self.len);
        copy.as_mut_slice().copy_from_slice(self.as_slice());
        copy
    }
}

impl std::fmt::Debug for AlignedFloats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedFloats({} floats, align {})", self.len, self.layout.align())
    }
}

// SAFETY: `AlignedFloats` owns its allocation exclusively, like a `Vec<f32>`.
unsafe impl Send for AlignedFloats {}
// SAFETY: shared access only reads.
unsafe impl Sync for AlignedFloats {}

impl PackedMatrix {
    /// Packs `b` (any strides). Costs one pass over `b`; done once per weight.
    pub fn pack(b: MatRef) -> PackedMatrix {
        let (k, n) = (b.rows(), b.cols());
        let count = n.div_ceil(PANEL);
        let layout = PanelLayout::for_level(SimdLevel::detect());
        let mut panels = AlignedFloats::zeroed(count * k * PANEL);
        if k == 0 {
            return PackedMatrix { k, n, layout, panels };
        }
        for (p, panel) in panels.as_mut_slice().chunks_exact_mut(k * PANEL).enumerate() {
            let j0 = p * PANEL;
            let width = (n - j0).min(PANEL);
            for row in 0..k {
                for l in 0..width {
                    panel[layout.index(k, row, l)] = b.at(row, j0 + l);
                }
            }
        }
        PackedMatrix { k, n, layout, panels }
    }

    /// Packs `wᵀ` for a row-major weight `w` of `n x k` (the canonical
    /// layout of every LSTM and projection weight), so `A · wᵀ` can run.
    pub fn pack_transposed(w: &[f32], n: usize, k: usize) -> PackedMatrix {
        Self::pack(MatRef::row_major(w, n, k).t())
    }

    /// Rows of the packed matrix (the inner dimension of a product).
    pub fn k(&self) -> usize {
        self.k
    }
    /// Columns of the packed matrix (the output width of a product).
    pub fn n(&self) -> usize {
        self.n
    }
    /// Bytes the packed panels occupy.
    pub fn bytes(&self) -> usize {
        std::mem::size_of_val(self.panels.as_slice())
    }
    fn panel(&self, p: usize) -> &[f32] {
        &self.panels.as_slice()[p * self.k * PANEL..(p + 1) * self.k * PANEL]
    }
}

/// Largest row block at any SIMD level (see [`max_rows_per_block`]).
const MAX_BLOCK_ROWS: usize = 12;

/// Largest block of `A` rows one micro-kernel call handles on this machine:
/// as many as the vector registers hold accumulators for.
fn max_rows_per_block(level: SimdLevel) -> usize {
    match level {
        SimdLevel::Avx512 => MAX_BLOCK_ROWS,
        SimdLevel::Avx2Fma => 6,
        SimdLevel::Neon => 3,
        SimdLevel::Portable => 2,
    }
}

/// Column passes over each panel slice for a product of `rows` rows: AVX2
/// runs row blocks of 3+ rows over one 16-column half of the panel at a
/// time (the micro-kernel's tile is 6 x 16), so two.
fn passes_per_panel(level: SimdLevel, rows: usize) -> usize {
    if level == SimdLevel::Avx2Fma && rows >= 3 { 2 } else { 1 }
}

/// `C = A · B` or `C += A · B` with `B` packed. `A` must have contiguous rows
/// (`col_stride == 1`); `C` may have any strides. Panics on shape mismatch.
pub fn packed_gemm(a: MatRef, b: &PackedMatrix, c: &mut MatMut, accumulate: bool) {
    run(a, b, c, Start::accumulate(accumulate));
}

/// `C = bias + A · B`, `bias` (one value per column of `C`) added to every
/// row: the accumulators start from the bias, so `C` is written once
/// instead of filled with the bias and then read back. Panics on shape
/// mismatch, or when `bias` is not `B`'s width.
pub fn packed_gemm_bias(a: MatRef, b: &PackedMatrix, bias: &[f32], c: &mut MatMut) {
    assert_eq!(bias.len(), b.n, "packed_gemm_bias: {} bias values for {} columns", bias.len(), b.n);
    run(a, b, c, Start::bias(bias));
}

/// A row-major `C` shared by workers that each compute their own panels
/// (see [`packed_gemm_panels`]).
#[derive(Clone, Copy)]
pub struct SharedOutput<'a> {
    ptr: SendPtr,
    rows: usize,
    cols: usize,
    _borrow: std::marker::PhantomData<&'a mut [f32]>,
}

impl<'a> SharedOutput<'a> {
    /// Shares `c`, a row-major `rows x cols` matrix.
    pub fn new(c: &'a mut [f32], rows: usize, cols: usize) -> SharedOutput<'a> {
        assert!(c.len() >= rows * cols, "SharedOutput: {} values for {rows}x{cols}", c.len());
        SharedOutput {
            ptr: SendPtr(c.as_mut_ptr()),
            rows,
            cols,
            _borrow: std::marker::PhantomData,
        }
    }
    /// Shares the row-major `rows x cols` matrix at `ptr`, which the caller
    /// already shares between its workers.
    ///
    /// # Safety
    /// `ptr` must point at `rows * cols` floats that stay valid and that
    /// nothing reads or writes other than through these views while they live.
    pub(crate) unsafe fn from_raw(ptr: SendPtr, rows: usize, cols: usize) -> SharedOutput<'a> {
        SharedOutput {
            ptr,
            rows,
            cols,
            _borrow: std::marker::PhantomData,
        }
    }
    /// The kernels' view of this matrix, starting from `start`.
    fn out(&self, start: Start) -> PanelOut {
        PanelOut {
            ptr: self.ptr,
            rsc: self.cols,
            csc: 1,
            n: self.cols,
            start,
        }
    }
    /// Rows `range` of the same matrix.
    pub fn rows(self, range: std::ops::Range<usize>) -> SharedOutput<'a> {
        assert!(
            range.start <= range.end && range.end <= self.rows,
            "rows {range:?} of {}",
            self.rows
        );
        SharedOutput {
            // SAFETY: the offset stays inside the shared matrix (checked above).
            ptr: SendPtr(unsafe { self.ptr.get().add(range.start * self.cols) }),
            rows: range.len(),
            ..self
        }
    }
}

/// `C (+)= A · B` for the panels `panels` of `B` only (columns
/// `panels.start * PANEL .. panels.end * PANEL` of `C`), on the calling thread.
///
/// This is the per-worker piece of a product split over a team of workers
/// (`kernels::team`): each worker keeps the same panels, so its share of `B`
/// stays in its core's cache from one call to the next.
///
/// # Safety
/// While this runs, no other thread may read or write the columns of `c`
/// that belong to `panels`.
pub unsafe fn packed_gemm_panels(a: MatRef, b: &PackedMatrix, c: SharedOutput, accumulate: bool, panels: std::ops::Range<usize>) {
    let out = c.out(Start::accumulate(accumulate));
    assert!(panels.end <= c.cols.div_ceil(PANEL), "panels {panels:?} of a {}-column C", c.cols);
    with_job(a, b, c.rows, out, false, |job| job.run_panels(panels, PanelOrder::Ascending));
}

/// [`packed_gemm_panels`] for panels handed out one chunk at a time: `A` is
/// packed once (where it is packed), then for every range of panels `claim`
/// returns, `C (+)= A · B` over those panels (run in `order`), followed by `done(range)`
/// (work on those columns that must follow their product), until `claim`
/// returns `None`.
///
/// Workers that share their claims (each chunk to one of them) split a
/// product however their speeds go that time, instead of waiting at the
/// next barrier for the slowest one's fixed share.
///
/// # Safety
/// While this runs, no other thread may read or write the columns of `c`
/// that belong to the claimed panels.
pub unsafe fn packed_gemm_claimed(
    a: MatRef,
    b: &PackedMatrix,
    c: SharedOutput,
    accumulate: bool,
    order: PanelOrder,
    claim: impl FnMut() -> Option<std::ops::Range<usize>>,
    done: impl FnMut(std::ops::Range<usize>),
) {
    // SAFETY: forwarded from the caller.
    unsafe { claimed_product(a, b, c, Start::accumulate(accumulate), order, claim, done) }
}

/// The order in which a product runs the panels of each range it is given.
///
/// A product repeated on the same `B`, as the recurrent step is, can
/// alternate the two: each call then starts with the panels the last one
/// read most recently, which are still in cache where `B` is a little
/// larger than the cache (a cache that keeps the most recently used lines
/// misses on every line of a repeated front-to-back sweep of such a `B`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanelOrder {
    /// First panel first.
    Ascending,
    /// Last panel first.
    Descending,
}

impl PanelOrder {
    /// `range` cut into consecutive chunks of `chunk` panels (the last one
    /// shorter where it must be), handed out in this order.
    fn chunks(self, range: std::ops::Range<usize>, chunk: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
        let count = range.len().div_ceil(chunk);
        (0..count).map(move |i| {
            let nth = match self {
                PanelOrder::Ascending => i,
                PanelOrder::Descending => count - 1 - i,
            };
            let first = range.start + nth * chunk;
            first..(first + chunk).min(range.end)
        })
    }
}

/// [`packed_gemm_claimed`] with `C` starting from `start`.
///
/// # Safety
/// As [`packed_gemm_claimed`]; a [`Start::Row`] must point at `c.cols`
/// floats that stay unchanged meanwhile.
pub(crate) unsafe fn packed_gemm_claimed_from(
    a: MatRef,
    b: &PackedMatrix,
    c: SharedOutput,
    start: Start,
    claim: impl FnMut() -> Option<std::ops::Range<usize>>,
    done: impl FnMut(std::ops::Range<usize>),
) {
    // SAFETY: forwarded from the caller.
    unsafe { claimed_product(a, b, c, start, PanelOrder::Ascending, claim, done) }
}

/// [`packed_gemm_claimed_from`] with each range's panels run in `order`.
///
/// # Safety
/// As [`packed_gemm_claimed_from`].
unsafe fn claimed_product(
    a: MatRef,
    b: &PackedMatrix,
    c: SharedOutput,
    start: Start,
    order: PanelOrder,
    mut claim: impl FnMut() -> Option<std::ops::Range<usize>>,
    mut done: impl FnMut(std::ops::Range<usize>),
) {
    let out = c.out(start);
    let mut claimed_all = false;
    with_job(a, b, c.rows, out, false, |job| {
        run_claims(Some(job), c.cols, order, &mut claim, &mut done);
        claimed_all = true;
    });
    // An empty product (no rows or columns) still hands out its claims.
    if !claimed_all {
        run_claims(None, c.cols, order, claim, done);
    }
}

/// For every range of panels `claim` returns, `job` over those panels
/// (none for an empty product), then `done(range)`, until `claim` returns
/// `None`.
fn run_claims(
    job: Option<&Job>,
    cols: usize,
    order: PanelOrder,
    mut claim: impl FnMut() -> Option<std::ops::Range<usize>>,
    mut done: impl FnMut(std::ops::Range<usize>),
) {
    let panels = cols.div_ceil(PANEL);
    while let Some(range) = claim() {
        assert!(range.end <= panels, "panels {range:?} of a {cols}-column C");
        if let Some(job) = job {
            job.run_panels(range.clone(), order);
        }
        done(range);
    }
}

/// Floats of the buffer [`pack_a_part`] packs an `m x k` `A` into.
pub(crate) fn packed_a_len(m: usize, k: usize) -> usize {
    m * k
}

/// Packs part `part` of `parts` of `A`'s row blocks into `dst`, the
/// buffer (of [`packed_a_len`] floats) that the workers of a team share:
/// each packs its part, and after a barrier all of them run
/// [`packed_gemm_claimed_prepacked`] on it. (Packed by each worker alone,
/// `A` would be packed once per worker.)
///
/// # Safety
/// `dst` must be valid for `packed_a_len(a.rows(), a.cols())` floats that
/// nothing else reads or writes meanwhile but the other parts' packing, and
/// the parts of one `A` must all use the same `parts`.
pub(crate) unsafe fn pack_a_part(a: MatRef, dst: SendPtr, part: usize, parts: usize) {
    let (m, k) = (a.rows(), a.cols());
    if m == 0 || k == 0 {
        return;
    }
    let blocks = row_blocks(m);
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

/// [`packed_gemm_claimed`] with `A` (`m x k`) already packed into
/// `packed_a` by [`pack_a_part`], all parts, and `C` starting from `start`.
///
/// # Safety
/// As [`packed_gemm_claimed`]; a [`Start::Row`] must point at `c.cols`
/// floats that stay unchanged meanwhile.
pub(crate) unsafe fn packed_gemm_claimed_prepacked(
    packed_a: &[f32],
    m: usize,
    b: &PackedMatrix,
    c: SharedOutput,
    start: Start,
    claim: impl FnMut() -> Option<std::ops::Range<usize>>,
    done: impl FnMut(std::ops::Range<usize>),
) {
    let k = b.k;
    assert_eq!(packed_a.len(), packed_a_len(m, k), "packed A of {m}x{k}");
    assert_eq!(c.rows, m, "packed_gemm: C has {} rows, A {m}", c.rows);
    let out = c.out(start);
    let job = (m > 0 && c.cols > 0).then(|| job(JobA::Packed(packed_a), m, k, b, out));
    run_claims(job.as_ref(), c.cols, PanelOrder::Ascending, claim, done);
}

fn run(a: MatRef, b: &PackedMatrix, c: &mut MatMut, start: Start) {
    let (m, k, n) = (a.rows(), a.cols(), b.n);
    let panels = n.div_ceil(PANEL);
    let workers = if m * n * k < PARALLEL_MIN_MACS {
        1
    } else {
        rayon::current_num_threads().min(panels)
    };
    let (rows, cols) = (c.rows(), c.cols());
    let (c_ptr, rsc, csc) = c.raw();
    let out = PanelOut {
        ptr: SendPtr(c_ptr),
        rsc,
        csc,
        n: cols,
        start,
    };
    with_job(a, b, rows, out, workers > 1, |job| {
        if workers == 1 {
            return job.run_panels(0..panels, PanelOrder::Ascending);
        }
        // Chunks of 16+ panels claimed from one counter, so that a core
        // the host slows hands the rest to the others (no allocation per
        // call); up to 32 panels on 2 workers, simply the two halves.
        // In-process A/B on Zen 3, 2 threads, against fixed halves: the
        // compacted PTB model's softmax head at batch 64 (1920 x 315 x
        // 10000) 2-7% faster in median, 350 x 315 x 10000 and 64 x 1500 x
        // 6000 0-5%, batch 1-10 products unchanged. (Chunks of 2-3 panels
        // were 10-15% slower at 30-300 x 1500 x 1492.)
        let chunks = (panels / MIN_CLAIMED_PANELS).max(workers);
        let chunk = panels.div_ceil(chunks);
        let next = std::sync::atomic::AtomicUsize::new(0);
        (0..workers).into_par_iter().for_each(|_| {
            loop {
                let first = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) * chunk;
                if first >= panels {
                    break;
                }
                job.run_panels(first..(first + chunk).min(panels), PanelOrder::Ascending);
            }
        });
    });
}

fn check_shapes(a: MatRef, b: &PackedMatrix, c_rows: usize, c_cols: usize) {
    let (m, k, n) = (a.rows(), a.cols(), b.n);
    assert_eq!(k, b.k, "packed_gemm: A is {m}x{k} but B has {} rows", b.k);
    assert!(c_rows == m && c_cols == n, "packed_gemm: C is {c_rows}x{c_cols}, expected {m}x{n}");
}

/// Hands `f` the product's [`Job`], with `A` read in place where the
/// kernels can ([`reads_a_in_place`]), else packed into this thread's
/// scratch.
fn with_job(a: MatRef, b: &PackedMatrix, c_rows: usize, out: PanelOut, parallel_pack: bool, f: impl FnOnce(&Job)) {
    check_shapes(a, b, c_rows, out.n);
    let (m, k) = (a.rows(), a.cols());
    if m == 0 || out.n == 0 {
        return;
    }
    if reads_a_in_place(a) {
        return f(&job(JobA::InPlace(a), m, k, b, out));
    }
    A_SCRATCH.with(|scratch| {
        let mut packed_a = scratch.borrow_mut();
        pack_a(a, row_blocks(m), &mut packed_a, parallel_pack);
        f(&job(JobA::Packed(&packed_a[..m * k]), m, k, b, out));
    });
}

/// Whether the kernels read `A` where it is, without packing it first:
/// on AVX2, when its rows are contiguous. The AVX2 kernel broadcasts each
/// row's values from that row, as MLAS's does; packing cost an extra pass
/// over `A` for every product (and in the team forward a barrier after
/// it, and a copy of `H` per worker at every step). In-process A/B on
/// Zen 3: 300 x 1500 x 1492 2% faster and 10 x 373 x 1492 1-3% (1
/// thread), the compacted PTB LSTM at batch 10 2-3% (2 threads). The
/// AVX-512 and portable kernels read packed `A` only (not measured on an
/// AVX-512 machine since).
pub(crate) fn reads_a_in_place(a: MatRef) -> bool {
    SimdLevel::detect() == SimdLevel::Avx2Fma && (a.col_stride() == 1 || a.cols() <= 1)
}

/// `m` rows of `A` in the row blocks the detected level's kernels take.
fn row_blocks(m: usize) -> RowBlocks {
    RowBlocks::new(m, m.div_ceil(max_rows_per_block(SimdLevel::detect())))
}

/// The [`Job`] of a product with `A` (`m x k`) as `a`.
fn job<'a>(a: JobA<'a>, m: usize, k: usize, b: &'a PackedMatrix, out: PanelOut) -> Job<'a> {
    let level = SimdLevel::detect();
    let passes = passes_per_panel(level, m);
    let row_blocks = row_blocks(m);
    let whole_k_halves = whole_k_stays_in_l1(passes, k);
    Job {
        a,
        k,
        row_blocks,
        prefetch_next: prefetches_next(whole_k_halves, b),
        prefetch_b: streams_from_memory(b),
        k_block: if level == SimdLevel::Avx512 {
            avx512_k_block(k)
        } else if whole_k_halves || (row_blocks.count == 1 && passes == 1) {
            k.max(1)
        } else if passes > 1 && row_blocks.count >= LONG_SLICE_MIN_BLOCKS {
            K_BLOCK_HALVES
        } else {
            K_BLOCK
        },
        passes,
        b,
        level,
        out,
    }
}

/// [`Job::a_leaves_l2`] at `level` for `rows x k` of `A` in `blocks` row
/// blocks, with `passes` passes per panel.
fn a_leaves_l2(level: SimdLevel, rows: usize, k: usize, passes: usize, blocks: usize) -> bool {
    let a_bytes = rows * k * std::mem::size_of::<f32>();
    let resident = if level == SimdLevel::Avx512 {
        A_RESIDENT_BYTES_AVX512
    } else {
        A_RESIDENT_BYTES
    };
    a_bytes > resident || (passes > 1 && blocks >= LONG_SLICE_MIN_BLOCKS)
}

/// [`Job::runs_block_major`] at `level` with `passes` passes per panel.
fn runs_block_major(level: SimdLevel, passes: usize) -> bool {
    passes > 1 || level == SimdLevel::Avx512
}

/// Panels per chunk of the block-major order ([`Job::run_block_major`])
/// for `m` rows of `A`: 4 (128 KiB of `B` per K block) up to 512 rows, 8
/// above. Every chunk reads all of `A` once.
fn block_major_chunk(m: usize) -> usize {
    if m > 512 { 8 } else { 4 }
}

/// How many panels of a product with an `m x k` `A` the kernels take
/// together: a chunk of the block-major order where `A` is large enough
/// for it ([`Job::a_leaves_l2`] and [`Job::runs_block_major`]), else 1.
/// Workers that claim the panels of one product in ranges (the team's
/// input projections) claim multiples of it, so that no range ends in a
/// short chunk that reads all of `A` again for a panel or two.
pub(crate) fn claim_granule(m: usize, k: usize) -> usize {
    let level = SimdLevel::detect();
    let passes = passes_per_panel(level, m);
    if a_leaves_l2(level, m, k, passes, row_blocks(m).count) && runs_block_major(level, passes) {
        block_major_chunk(m)
    } else {
        1
    }
}

/// Steps of `k` per AVX-512 micro-kernel call: all of `k` up to
/// [`AVX512_MAX_K_BLOCK`], else nearly equal blocks no longer than that.
/// Each call then loads and stores its `C` tile once; at [`K_BLOCK`] the
/// 12-row kernel spent 18% of its samples outside its multiply-add loop.
/// In-process A/B on Zen 5 (1 thread, medians), all of `k` (with the
/// block-major order for a large `A`, [`Job::runs_block_major`]) against
/// [`K_BLOCK`] in the panel-major order: 300 x 1500 x 1492 (the compacted
/// PTB model's first input projection at batch 10) 154-176 -> 199-214
/// GFLOP/s, 30 x 1500 x 1492 197 -> 219, 1920 x 1500 x 1492 96-125 ->
/// 179-188, 1500 x 3584 x 10752 (DeepBench's dense counterpart at n = 1500)
/// 96 -> 210; 512 or 768 steps per call fell in between, and two blocks of
/// 1792 at k = 3584 were 13% slower than one.
fn avx512_k_block(k: usize) -> usize {
    let k = k.max(1);
    k.div_ceil(k.div_ceil(AVX512_MAX_K_BLOCK))
}

/// Whether AVX2's half passes take all of `k` in one call: a 16-column
/// half of the slice (`64 · k` bytes, k <= 384) fills at most three
/// quarters of L1, so it stays there while every row block passes over it,
/// beside a block of `A`. Each call then loads and stores its `C` tile once
/// instead of once per K block, and there are fewer calls (a third at
/// k = 373 against [`K_BLOCK`]; none ends on a short remainder, such as
/// 59 of 315 after [`K_BLOCK_HALVES`]). In-process A/B on Zen 3, all of
/// `k` against the K blocks: 10 x 373 x 1492 (the compacted PTB model's
/// recurrent step at batch 10) 7% faster on 1 thread; 20-60 rows at
/// k = 315-373 5-11% on 1 thread and 5-14% on 2; 300 x 373 x 1260 (its
/// second input projection at batch 10) 5% and 9%; 1920 x 315 x 10000 (its
/// softmax head at batch 64) 4% and 15%. At k = 1500, where the half
/// leaves L1, a whole-`k` slice was 23% slower at 10 rows.
fn whole_k_stays_in_l1(passes: usize, k: usize) -> bool {
    passes > 1 && k * HALF * std::mem::size_of::<f32>() <= L1_DATA_BYTES * 3 / 4
}

/// Whether a product's calls prefetch the next panel slice while they
/// compute. Not where AVX2's half passes take all of `k` and `B` stays in
/// L3 ([`L3_RESIDENT_B_BYTES`]): the half fills most of L1, so the next
/// slice's lines evict it before the other row blocks or the second pass
/// read it, and the hardware prefetchers bring a slice from L3 in time
/// without help. In-process A/B on Zen 3, without against with: 10 x 373 x
/// 1492 and 10 x 315 x 1260 (the compacted PTB model's recurrent steps at
/// batch 10) 8-10% faster on 1 thread, 4 x 373 x 1492 20%, 6 x 315 x 1260
/// 10-15% on 2 threads; from 10 x 315 x 2500 to 10 x 315 x 6000 (3-8 MB)
/// 5-15% faster; at 10 x 315 x 10000 (12.6 MB, the model's softmax head)
/// 10-20% slower, so large matrices keep the prefetch.
fn prefetches_next(whole_k_halves: bool, b: &PackedMatrix) -> bool {
    !whole_k_halves || streams_from_memory(b)
}

/// Whether `b` is too large to stay in L3 between products
/// ([`L3_RESIDENT_B_BYTES`]), so every product streams it from memory.
fn streams_from_memory(b: &PackedMatrix) -> bool {
    b.bytes() > L3_RESIDENT_B_BYTES
}

/// `rows` rows of `A` cut into `count` nearly equal consecutive blocks, each
/// small enough for one micro-kernel call.
#[derive(Clone, Copy)]
struct RowBlocks {
    rows: usize,
    count: usize,
    /// `rows = base * count + extra`: the first `extra` blocks have a row
    /// more (kept, so that the hot loops divide nothing).
    base: usize,
    extra: usize,
}

impl RowBlocks {
    fn new(rows: usize, count: usize) -> RowBlocks {
        let count = count.max(1);
        RowBlocks {
            rows,
            count,
            base: rows / count,
            extra: rows % count,
        }
    }
    fn start(self, i: usize) -> usize {
        i * self.base + i.min(self.extra)
    }
    fn block(self, i: usize) -> std::ops::Range<usize> {
        self.start(i)..self.start(i + 1)
    }
    fn iter(self) -> impl Iterator<Item = std::ops::Range<usize>> {
        (0..self.count).map(move |i| self.block(i))
    }
}

thread_local! {
    /// Packed copy of `A`, reused between calls so steady-state products do
    /// not allocate.
    static A_SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Copies `A` (any strides) into `out` block by block: the block of rows
/// `r0..r1` starts at `r0 * k` and is laid out `[k][r1 - r0]`, so the
/// micro-kernel broadcasts from one sequential stream. With `parallel`, a
/// large `A` is packed by the rayon pool (it is otherwise a serial step
/// before every parallel product: about 5% of a 300 x 1500 one on 2 cores).
fn pack_a(a: MatRef, blocks: RowBlocks, out: &mut Vec<f32>, parallel: bool) {
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

/// Below this many elements `A` is packed on the calling thread.
const PARALLEL_PACK_MIN_FLOATS: usize = 1 << 15;

/// Packs the row blocks `ids` into `dst`, which starts at the first one's
/// rows; with `parallel`, halves go to `rayon::join` until one block is left.
fn pack_blocks(a: MatRef, blocks: RowBlocks, ids: std::ops::Range<usize>, dst: &mut [f32], parallel: bool) {
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
fn pack_rows<const W: usize>(srcs: &[&[f32]], dst: &mut [f32]) {
    let k = dst.len() / W;
    let srcs: [&[f32]; W] = std::array::from_fn(|r| &srcs[r][..k]);
    for (p, step) in dst.chunks_exact_mut(W).enumerate().take(k) {
        for (d, src) in step.iter_mut().zip(&srcs) {
            *d = src[p];
        }
    }
}

/// Where a panel's results go.
#[derive(Clone, Copy)]
struct PanelOut {
    ptr: SendPtr,
    rsc: usize,
    csc: usize,
    n: usize,
    /// What the first K block's accumulators start from.
    start: Start,
}

/// What a product's accumulators start from before `A · B` is added.
#[derive(Clone, Copy)]
pub(crate) enum Start {
    /// Zeros: `C = A · B`.
    Zero,
    /// `C`'s own values: `C += A · B`.
    C,
    /// A row of `n` floats (a bias), the same for every row:
    /// `C = bias + A · B`, without writing the bias into `C` first and
    /// reading it back.
    Row(SendPtr),
}

impl Start {
    fn accumulate(accumulate: bool) -> Start {
        if accumulate { Start::C } else { Start::Zero }
    }
    /// Accumulators that start from `bias` (one value per column of `C`),
    /// which must outlive the product. The kernels only read through the
    /// pointer.
    pub(crate) fn bias(bias: &[f32]) -> Start {
        Start::Row(SendPtr(bias.as_ptr().cast_mut()))
    }
}

/// A micro-kernel for one [`Tile`], compiled for one SIMD level and row count.
type MicroKernel = unsafe fn(&Tile);

/// The micro-kernel for `rows` rows (1..=[`max_rows_per_block`]) at `level`;
/// on AVX-512, one that prefetches the panel ahead where `prefetch_b`
/// ([`Job::prefetch_b`]).
fn micro_kernel(level: SimdLevel, rows: usize, prefetch_b: bool) -> MicroKernel {
    macro_rules! pick {
        ($f:ident, $($n:literal)*) => {
            match rows { $($n => $f::<$n> as MicroKernel,)* _ => unreachable!("row block of {rows}") }
        };
    }
    #[cfg(target_arch = "x86_64")]
    macro_rules! avx512 {
        ($pf:literal) => {
            match rows {
                // One row has too few accumulators to cover the FMA
                // latency: it runs a second chain over alternate `k` steps.
                // (More rows keep one chain: with two, the compiler kept
                // the accumulators of 2-4 rows on the stack, and 2 x 373 x
                // 1492 took 51 us instead of 27 on Zen 4.)
                1 => micro_avx512::<1, 2, $pf> as MicroKernel,
                2 => micro_avx512::<2, 1, $pf>,
                3 => micro_avx512::<3, 1, $pf>,
                4 => micro_avx512::<4, 1, $pf>,
                5 => micro_avx512::<5, 1, $pf>,
                6 => micro_avx512::<6, 1, $pf>,
                7 => micro_avx512::<7, 1, $pf>,
                8 => micro_avx512::<8, 1, $pf>,
                9 => micro_avx512::<9, 1, $pf>,
                10 => micro_avx512::<10, 1, $pf>,
                11 => micro_avx512::<11, 1, $pf>,
                12 => micro_avx512::<12, 1, $pf>,
                _ => unreachable!("row block of {rows}"),
            }
        };
    }
    match level {
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 if prefetch_b => avx512!(true),
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => avx512!(false),
        // 1–2 rows take the whole panel row per pass, 3–6 rows two halves.
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2Fma => match rows {
            1 => micro_avx2::<1, 4> as MicroKernel,
            2 => micro_avx2::<2, 4>,
            3 => micro_avx2::<3, 2>,
            4 => micro_avx2::<4, 2>,
            5 => micro_avx2::<5, 2>,
            6 => micro_avx2::<6, 2>,
            _ => unreachable!("row block of {rows}"),
        },
        SimdLevel::Neon => pick!(micro_fused, 1 2 3),
        _ => pick!(micro_portable, 1 2),
    }
}

/// A product's `A`, as the kernels read it.
#[derive(Clone, Copy)]
enum JobA<'a> {
    /// Packed by [`pack_a`] (or [`pack_a_part`]): the block of rows `r0..r1`
    /// starts at `r0 * k`, laid out `[k][r1 - r0]`.
    Packed(&'a [f32]),
    /// `A` itself, with contiguous rows ([`reads_a_in_place`]).
    InPlace(MatRef<'a>),
}

/// Everything one product's tasks share.
struct Job<'a> {
    a: JobA<'a>,
    k: usize,
    row_blocks: RowBlocks,
    /// Steps of `k` per micro-kernel call: [`K_BLOCK`] or
    /// [`K_BLOCK_HALVES`], so several row blocks or passes reuse a panel
    /// slice from L1; all of `k` for a single row block in a single pass
    /// (nothing to reuse, and each call reloads and stores its `C` tile),
    /// or where the reused half stays in L1 anyway ([`whole_k_stays_in_l1`]);
    /// on AVX-512 all of `k` up to a bound ([`avx512_k_block`]).
    k_block: usize,
    /// Column passes over each slice ([`passes_per_panel`]).
    passes: usize,
    /// Whether each slice's calls prefetch the next slice ([`prefetches_next`]).
    prefetch_next: bool,
    /// Whether the AVX-512 calls prefetch their panel [`PREFETCH_AHEAD`]
    /// ahead: only where `B` streams from memory (larger than
    /// [`L3_RESIDENT_B_BYTES`]). A smaller `B` comes from L2 or L3, where
    /// the hardware prefetchers keep up and the two prefetches per step
    /// only take load slots (on Zen 4, whose 512-bit loads take both load
    /// pipes). In-process A/B on Zen 4 (medians, 1 thread), without
    /// against with: 1 x 373 x 1492 (the compacted PTB model's recurrent
    /// step at batch 1) 34.6 -> 27.1 us, 1 x 315 x 630 10.8 -> 9.8,
    /// 4 x 373 x 1492 45.0 -> 42.3, 10 x 373 x 1492 and 30 x 1500 x 1492
    /// equal.
    prefetch_b: bool,
    b: &'a PackedMatrix,
    level: SimdLevel,
    out: PanelOut,
}

impl Job<'_> {
    /// The values of `A` a tile of `rows` reads over `kb` steps from `k0`.
    fn tile_a(&self, rows: &std::ops::Range<usize>, k0: usize, kb: usize) -> TileA<'_> {
        match self.a {
            JobA::Packed(packed) => {
                let start = rows.start * self.k + k0 * rows.len();
                TileA::Packed(&packed[start..start + kb * rows.len()])
            }
            JobA::InPlace(a) => TileA::InPlace {
                // Not read when kb = 0 (which k = 0 gives), so wrapping.
                first: a.data().as_ptr().wrapping_add(rows.start * a.row_stride() + k0),
                row_stride: a.row_stride(),
            },
        }
    }

    /// The panel slice of `k_block` steps from `k0` of panel `p`.
    fn slice(&self, p: usize, k0: usize) -> PanelSlice<'_> {
        PanelSlice {
            panel: self.b.panel(p),
            k: self.k,
            k0,
            kb: (self.k - k0).min(self.k_block),
            layout: self.b.layout,
        }
    }

    /// All row blocks of `A` over one panel slice of `k_block` steps from
    /// `k0`, in each column pass (the slice, or the pass's half of it, is
    /// read from L1 again by each block). `next` is the slice that comes
    /// after it: each call prefetches its share, so that slice arrives while
    /// this one computes. On AVX2, with nothing to prefetch, a whole panel
    /// and row blocks of one size, the calls are one ([`HalvesRun`]).
    fn run_slice(&self, p: usize, k0: usize, next: PanelSlice) {
        let out = self.out;
        let j0 = p * PANEL;
        let panel = self.slice(p, k0);
        let kb = panel.kb;
        let width = (out.n - j0).min(PANEL);
        // A panel whose half passes prefetch nothing, over row blocks of one
        // size: its calls in one.
        let blocks = self.row_blocks;
        if self.runs_halves(p + 1) && next.kb == 0 && blocks.extra == 0 {
            let run = self.halves_run(0..blocks.rows, blocks.count, p..p + 1, k0, kb);
            // SAFETY: AVX2 was detected; the run's halves, rows of A and
            // tile of C lie inside B, A and C.
            unsafe { halves_kernel::<false>(blocks.base)(&run) };
            return;
        }
        // The next slice's rows shared out over this slice's calls.
        let shares = RowBlocks::new(next.kb, self.row_blocks.count * self.passes);
        let paced_prefetch = self.paces_prefetch();
        for pass in 0..self.passes {
            let col0 = pass * PANEL / self.passes;
            if col0 >= width {
                break;
            }
            for (i, rows) in self.row_blocks.iter().enumerate() {
                let kernel = micro_kernel(self.level, rows.len(), self.prefetch_b);
                let share = shares.block(pass * self.row_blocks.count + i);
                let tile = Tile {
                    a: self.tile_a(&rows, k0, kb),
                    rows,
                    kb,
                    panel,
                    j0,
                    width,
                    col0,
                    start: if k0 > 0 { Start::C } else { out.start },
                    next,
                    next_rows: share,
                    paced_prefetch,
                    read_ahead: false,
                    out,
                };
                // SAFETY: the kernel was chosen for the detected SIMD level
                // and for exactly this many rows; the tile lies inside A, B and C.
                unsafe { kernel(&tile) };
            }
        }
    }

    /// Whether this product's calls pace their prefetch of the next slice
    /// ([`Tile::paced_prefetch`]).
    fn paces_prefetch(&self) -> bool {
        self.row_blocks.count <= PACED_PREFETCH_MAX_BLOCKS && self.b.bytes() >= STREAMED_B_BYTES
    }

    /// Whether panels up to `panels_end` (exclusive) can run as
    /// [`HalvesRun`]s: AVX2's half passes over whole panels, with `C`'s
    /// rows contiguous.
    fn runs_halves(&self, panels_end: usize) -> bool {
        self.level == SimdLevel::Avx2Fma && self.passes == 2 && self.out.csc == 1 && panels_end * PANEL <= self.out.n
    }

    /// The [`HalvesRun`] of `blocks` row blocks of equal size from the first
    /// of `rows`, over both halves of the slices from `k0` (`kb` steps) of
    /// the panels `panels`, which must be whole, with contiguous rows of `C`.
    fn halves_run(
        &self,
        rows: std::ops::Range<usize>,
        blocks: usize,
        panels: std::ops::Range<usize>,
        k0: usize,
        kb: usize,
    ) -> HalvesRun<'_> {
        let out = self.out;
        let block_rows = rows.len() / blocks;
        let (a_first, a_row_stride, a_step, a_block_floats) = match self.a {
            // Block `rows.start..` starts at `rows.start * k`, `[k][block_rows]`.
            JobA::Packed(packed) => (
                packed[rows.start * self.k + k0 * block_rows..].as_ptr(),
                1,
                block_rows,
                block_rows * self.k,
            ),
            JobA::InPlace(a) => (
                a.data()[rows.start * a.row_stride() + k0..].as_ptr(),
                a.row_stride(),
                1,
                block_rows * a.row_stride(),
            ),
        };
        HalvesRun {
            a_first,
            a_row_stride,
            a_step,
            a_block_floats,
            blocks,
            kb,
            first_half: self.b.panels.as_slice()[panels.start * self.k * PANEL + k0 * HALF..].as_ptr(),
            panel_floats: self.k * PANEL,
            half_floats: self.k * HALF,
            panels: panels.len(),
            c: out.ptr.get().wrapping_add(rows.start * out.rsc + panels.start * PANEL),
            rsc: out.rsc,
            start: if k0 > 0 { Start::C } else { out.start },
            first_col: panels.start * PANEL,
            _a: std::marker::PhantomData,
        }
    }

    /// Every row block over the slices from `k0` of the panels `chunk`, row
    /// block by row block: each block of `A` stays in L1 while it passes
    /// over the chunk's slices, which stay in L2 for the next block. Each
    /// call also prefetches its share of the next row block
    /// ([`Job::prefetch_share`]), and its own half ahead of each step
    /// ([`Tile::read_ahead`]). On AVX2, where the chunk's panels are whole
    /// and `C`'s rows contiguous, a block's calls over the chunk are one
    /// ([`HalvesRun`]).
    fn run_block_major(&self, chunk: std::ops::Range<usize>, k0: usize) {
        let out = self.out;
        let calls_per_block = chunk.len() * self.passes;
        let halves_in_one_call = self.runs_halves(chunk.end);
        for (i, rows) in self.row_blocks.iter().enumerate() {
            let next_rows = if i + 1 < self.row_blocks.count {
                self.row_blocks.block(i + 1)
            } else {
                0..0
            };
            if halves_in_one_call {
                let kb = self.slice(chunk.start, k0).kb;
                for call in 0..calls_per_block {
                    let col = (chunk.start + call / 2) * PANEL + (call % 2) * HALF;
                    self.prefetch_share(&next_rows, col, k0..k0 + kb, call, calls_per_block);
                }
                let run = self.halves_run(rows.clone(), 1, chunk.clone(), k0, kb);
                // SAFETY: AVX2 was detected; the run's halves, rows of A
                // and tile of C lie inside B, A and C.
                unsafe { halves_kernel::<true>(rows.len())(&run) };
                continue;
            }
            let kernel = micro_kernel(self.level, rows.len(), self.prefetch_b);
            for p in chunk.clone() {
                let j0 = p * PANEL;
                let panel = self.slice(p, k0);
                let kb = panel.kb;
                let a = self.tile_a(&rows, k0, kb);
                let width = (out.n - j0).min(PANEL);
                for pass in 0..self.passes {
                    let col0 = pass * PANEL / self.passes;
                    if col0 >= width {
                        break;
                    }
                    let tile = Tile {
                        a,
                        rows: rows.clone(),
                        kb,
                        panel,
                        j0,
                        width,
                        col0,
                        start: if k0 > 0 { Start::C } else { out.start },
                        next: PanelSlice::EMPTY,
                        next_rows: 0..0,
                        paced_prefetch: false,
                        read_ahead: true,
                        out,
                    };
                    let call = (p - chunk.start) * self.passes + pass;
                    self.prefetch_share(&next_rows, j0 + col0, k0..k0 + kb, call, calls_per_block);
                    // SAFETY: as in `run_slice`.
                    unsafe { kernel(&tile) };
                }
            }
        }
    }

    /// Call `call` of a row block's `calls` in the block-major order
    /// prefetches into L2 its share of what the next row block, `rows`,
    /// reads first: `C`'s row segments from column `col` (the tile the
    /// same call of that block loads), and every `calls`-th part of the
    /// lines of `A`'s rows over the steps `steps` when `A` is read in place
    /// (a packed block is contiguous, which the hardware prefetchers
    /// follow). Otherwise the first call over each row block waits for its
    /// `A` (6 rows on 6 pages) and every call for its `C` tile, from L3 or
    /// memory once they outgrow L2. In-process A/B on Zen 3 (1 / 2
    /// threads): 1920 x 1500 x 1492 (the compacted PTB model's first input
    /// projection at batch 64) 16% / 12% faster, 1920 x 315 x 10000 (its
    /// softmax head) 7% / 10%, the whole compacted LSTM 10-15% / 14-16% at
    /// batch 64 and 1-2% at batch 10 (2 threads). `A` is left alone when
    /// its slice stays in L2 (300-row products, batch 10): prefetching it
    /// there was 1-3% slower.
    fn prefetch_share(&self, rows: &std::ops::Range<usize>, col: usize, steps: std::ops::Range<usize>, call: usize, calls: usize) {
        let out = self.out;
        for r in rows.clone() {
            prefetch_l2(out.ptr.get().wrapping_add(r * out.rsc + col * out.csc));
        }
        let slice_bytes = self.row_blocks.rows * steps.len() * std::mem::size_of::<f32>();
        if slice_bytes > A_RESIDENT_BYTES
            && let TileA::InPlace { first, row_stride } = self.tile_a(rows, steps.start, steps.len())
        {
            let lines = steps.len().div_ceil(FLOATS_PER_LINE);
            let share = lines.div_ceil(calls.max(1));
            let mine = (call * share).min(lines)..((call + 1) * share).min(lines);
            for r in 0..rows.len() {
                for line in mine.clone() {
                    prefetch_l2(first.wrapping_add(r * row_stride + line * FLOATS_PER_LINE));
                }
            }
        }
    }

    /// Runs the slices `(panel, k0)` in `order`, each prefetching the next
    /// where the product does ([`Job::prefetch_next`]).
    fn run_in_order(&self, order: impl Iterator<Item = (usize, usize)>) {
        let mut order = order.peekable();
        while let Some((p, k0)) = order.next() {
            let next = match order.peek() {
                Some(&(p, k0)) if self.prefetch_next => self.slice(p, k0),
                _ => PanelSlice::EMPTY,
            };
            self.run_slice(p, k0, next);
        }
    }

    /// Whether the large-`A` orders below apply: `A` is larger than
    /// [`A_RESIDENT_BYTES`] ([`A_RESIDENT_BYTES_AVX512`] with AVX-512) and
    /// would not stay in L2 while the panels stream past it, or AVX2's half passes run over many row blocks
    /// (each pass reads all of `A`'s slice again, and each panel's `C` tile
    /// spans as many rows, each on its own page when `C` is wide). In-process
    /// A/B on Zen 3: 300 x 315 x 10000 (the compacted PTB model's softmax
    /// head at batch 10; A of 369 KiB) 21% faster on 1 thread and 25% on 2
    /// in the large-`A` order, 160 x 373 x 1492 0-7%, 100 x 315 x 10000 2%.
    /// Fewer row blocks, as in 64 x 1500 x 6000 and 30 x 1500 x 1492, stay
    /// with the streaming order, which prefetches `B` from memory: 6% and
    /// 2% faster for them.
    fn a_leaves_l2(&self) -> bool {
        a_leaves_l2(self.level, self.row_blocks.rows, self.k, self.passes, self.row_blocks.count)
    }

    /// Whether a large `A` ([`Job::a_leaves_l2`]) runs in the block-major
    /// order ([`Job::run_block_major`]): AVX2's half passes, and AVX-512,
    /// whose calls take all of `k` ([`avx512_k_block`]), so a row block
    /// of `A` (72 KiB at k = 1500) is read from L2 by every panel of the
    /// chunk instead of streaming all of `A` past each panel from L3. In
    /// process A/B on Zen 5 (1 / 2 threads), against all of `k` in the
    /// panel-major order: 1920 x 1500 x 1492 100 -> 179-188 GFLOP/s on 1
    /// thread (that order also varied 100-200 between runs), 1500 x 2560 x
    /// 7680 106 -> 185-201; 300 x 1500 x 1492 equal.
    fn runs_block_major(&self) -> bool {
        runs_block_major(self.level, self.passes)
    }

    /// One task: the panels in `range`, all rows of `A`, in `order` (in
    /// the large-`A` orders, their chunks in `order`).
    fn run_panels(&self, range: std::ops::Range<usize>, order: PanelOrder) {
        // At least one K block, even for k = 0 (so C is still written).
        let k_starts = (0..self.k.max(1)).step_by(self.k_block);
        if self.a_leaves_l2() {
            // A large A: K blocks outermost, so the slice of A they cover
            // stays in L2 while it sweeps the panels (in the panel-major
            // order below, each panel slice stays in L1 while every row
            // block passes over it). Panels go in
            // chunks whose share of C fits in L2 beside that slice of A, so
            // C is not re-read from memory for every K block.
            if self.runs_block_major() {
                // Chunks of panels that every row block of A passes over,
                // block by block (the order MLAS uses), so a block of A is
                // read from L1 or L2 by the whole chunk. On AVX2 (Zen 3,
                // 512 KiB of L2) the chunk's slices stay in L2; the order
                // below instead keeps a panel slice in L1 and streams the
                // slice of A from L2, but that slice (300 rows: 300 KiB)
                // does not stay there beside C: this order was 3-5% faster
                // at 300 x 1500 x 1492 and 12-16% at 1500 x 2560 x 7680,
                // with 4 panels per chunk (128 KiB) up to 512 rows and 8
                // above. On AVX-512 see [`Job::runs_block_major`].
                for chunk in order.chunks(range, block_major_chunk(self.row_blocks.rows)) {
                    for k0 in k_starts.clone() {
                        self.run_block_major(chunk.clone(), k0);
                    }
                }
                return;
            }
            let chunk = (C_CHUNK_BYTES / (self.row_blocks.rows * PANEL * 4)).max(1);
            let chunks = order.chunks(range, chunk);
            self.run_in_order(chunks.flat_map(|chunk| k_starts.clone().flat_map(move |k0| chunk.clone().map(move |p| (p, k0)))));
        } else {
            // A small A (batch 1–10, or a short sequence): it stays in L2,
            // and each panel streams front to back from memory, the order
            // the prefetchers and the prefetch hints expect.
            let panels = order.chunks(range, 1).map(|panel| panel.start);
            self.run_in_order(panels.flat_map(|p| k_starts.clone().map(move |k0| (p, k0))));
        }
    }
}

/// A tile's values of `A`: its rows over its `kb` steps.
#[derive(Clone, Copy)]
enum TileA<'a> {
    /// Packed, `[kb][rows]`.
    Packed(&'a [f32]),
    /// In place (AVX2 only): row `r`'s `kb` values one after the other
    /// from `first + r * row_stride`.
    InPlace { first: *const f32, row_stride: usize },
}

impl<'a> TileA<'a> {
    /// The packed values, for the kernels that read no other layout.
    fn packed(self) -> &'a [f32] {
        match self {
            TileA::Packed(a) => a,
            TileA::InPlace { .. } => unreachable!("only the AVX2 kernel reads A in place"),
        }
    }
}

/// One micro-kernel call: `kb` steps of `k` for the rows `rows` of `C`,
/// columns `j0 + col0..j0 + width` (or as many of them as the kernel's tile
/// is wide).
struct Tile<'a> {
    /// `A` for these rows and steps.
    a: TileA<'a>,
    rows: std::ops::Range<usize>,
    kb: usize,
    /// The panel's rows for these steps.
    panel: PanelSlice<'a>,
    j0: usize,
    width: usize,
    /// First panel column this call computes: 0, or 16 for the second of
    /// two half passes.
    col0: usize,
    /// What the accumulators start from: C (every K block after the first),
    /// or the product's start.
    start: Start,
    /// The next panel slice, and this call's share of its rows, to
    /// prefetch while it computes.
    next: PanelSlice<'a>,
    next_rows: std::ops::Range<usize>,
    /// Whether the AVX2 kernel prefetches its share of the next slice one
    /// line per step into L2 (the halves' lines by turns), not a line of
    /// each half per step into L1: where a slice has one or two row blocks
    /// ([`PACED_PREFETCH_MAX_BLOCKS`], up to 12 rows), so each call's share
    /// is half a slice or more, and `B` streams from memory
    /// ([`STREAMED_B_BYTES`]). Two lines per step then bunch the requests
    /// into the first half of each call. In-process A/B on Zen 3, medians:
    /// 10 x 1500 x 6000 (the PTB model's recurrent step at batch 10, 36 MB)
    /// 16-23% faster on 1 thread and 17-19% on 2, 4 x 1500 x 6000 28-30%,
    /// 7 and 12 rows 17-22%, 10 x 1024 x 4096 (16 MiB) 2-4% on 2; the whole
    /// 1500/1500 LSTM at batch 10 9-13% on 1 thread and 7-15% on 2. Not
    /// where `B` comes from L3 (10 x 1500 x 1492, 9 MB, and 10 x 512 x
    /// 2048, 4 MB: 5-10% slower paced, with either hint), nor for more row
    /// blocks (20 rows equal, 64 rows 3-5% slower).
    paced_prefetch: bool,
    /// Whether the AVX2 kernel prefetches its own half of the slice 16
    /// rows ahead of each step, one line per step (as MLAS's kernels do):
    /// where that half comes from L2 at every call ([`Job::run_block_major`]),
    /// and `perf annotate` put 28% of the kernel's samples on the
    /// multiply-adds waiting for it. In-process A/B on Zen 3, medians:
    /// 300 x 1500 x 1492 (the compacted PTB model's first input projection
    /// at batch 10) 5% faster on 1 thread and 5-8% on 2, 1920 x 1500 x 1492
    /// 9% on 2, 300 x 315 x 10000 5-8%, 300 x 373 x 1260 1-5%; the whole
    /// compacted LSTM 6% at batch 10 on 1 thread, 4% on 2, 4% at batch 64.
    /// Not for the slices that L1 keeps between calls: 10 x 373 x 1492
    /// (whole-`k` halves) was 6% slower with it.
    read_ahead: bool,
    out: PanelOut,
}

impl Tile<'_> {
    /// Copies C's tile row `r` into `buf` (zeros past `width`).
    fn load_c_row(&self, r: usize, buf: &mut [f32; PANEL]) {
        *buf = [0.0; PANEL];
        let row = self.rows.start + r;
        for (l, v) in buf.iter_mut().enumerate().take(self.width) {
            // SAFETY: (row, j0 + l) is inside C.
            *v = unsafe { *self.out.ptr.get().add(row * self.out.rsc + (self.j0 + l) * self.out.csc) };
        }
    }
    /// Where tile row `r`'s accumulators start from: `PANEL` floats from
    /// column `j0` of C's row or of the start row, read in place when whole
    /// and contiguous, else copied into `buf` (zeros past `width`); `None`
    /// for zeros.
    fn initial_row(&self, r: usize, buf: &mut [f32; PANEL]) -> Option<*const f32> {
        match self.start {
            Start::Zero => None,
            Start::C if self.c_is_contiguous() => Some(self.c_row(r).cast_const()),
            Start::C => {
                self.load_c_row(r, buf);
                Some(buf.as_ptr())
            }
            // SAFETY: the start row holds `out.n` floats and j0 + width <= n.
            Start::Row(row) if self.width == PANEL => Some(unsafe { row.get().add(self.j0).cast_const() }),
            Start::Row(row) => {
                *buf = [0.0; PANEL];
                // SAFETY: as above, for the first `width` floats.
                let src = unsafe { std::slice::from_raw_parts(row.get().add(self.j0), self.width) };
                buf[..self.width].copy_from_slice(src);
                Some(buf.as_ptr())
            }
        }
    }
    /// Writes `buf[..width]` to C's tile row `r`.
    fn store_c_row(&self, r: usize, buf: &[f32; PANEL]) {
        self.store_c_cols(r, buf, 0..self.width);
    }
    /// Writes `buf[cols]` to those columns of C's tile row `r` (`cols` within `..width`).
    fn store_c_cols(&self, r: usize, buf: &[f32; PANEL], cols: std::ops::Range<usize>) {
        assert!(cols.end <= self.width);
        let row = self.rows.start + r;
        for l in cols {
            // SAFETY: (row, j0 + l) is inside C.
            unsafe { *self.out.ptr.get().add(row * self.out.rsc + (self.j0 + l) * self.out.csc) = buf[l] };
        }
    }
    /// Whether C's tile rows are whole contiguous panels (the fast store).
    fn c_is_contiguous(&self) -> bool {
        self.out.csc == 1 && self.width == PANEL
    }
    /// Pointer to C's tile row `r` (valid for `PANEL` elements when contiguous).
    fn c_row(&self, r: usize) -> *mut f32 {
        // SAFETY: (rows.start + r, j0) is inside C.
        unsafe {
            self.out
                .ptr
                .get()
                .add((self.rows.start + r) * self.out.rsc + self.j0 * self.out.csc)
        }
    }
}

/// AVX-512 micro-kernel: `MR` rows x 32 columns in `2 * MR` zmm accumulators
/// per chain; each `k` step loads one panel row (two vectors) and broadcasts
/// `MR` elements of `A`. With `CHAINS > 1`, consecutive `k` steps go to
/// independent accumulator sets (summed at the end), so a single row still
/// keeps both FMA units busy instead of waiting on one dependency chain.
/// With `PREFETCH`, each step prefetches the panel row [`PREFETCH_AHEAD`]
/// ahead ([`Job::prefetch_b`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn micro_avx512<const MR: usize, const CHAINS: usize, const PREFETCH: bool>(t: &Tile) {
    // SAFETY: the caller guarantees the CPU features and that the tile
    // lies inside A, the panel and C (see `Job::run_slice`).
    unsafe {
        use std::arch::x86_64::*;
        // C is loaded first and the steps add onto it in order, so (with
        // one chain, blocks of 2+ rows) a step whose A element is zero, an
        // ISS-removed unit, leaves every sum bit for bit unchanged: the
        // compacted model's outputs equal the full model's exactly
        // (tests/checkpoint.rs checks it). Adding C after the loop instead
        // (tried: 2-4% faster at best) breaks that.
        let mut acc = [[[_mm512_setzero_ps(); 2]; MR]; CHAINS];
        let mut buf = [0.0f32; PANEL];
        for (r, acc_r) in acc[0].iter_mut().enumerate() {
            if let Some(src) = t.initial_row(r, &mut buf) {
                *acc_r = [_mm512_loadu_ps(src), _mm512_loadu_ps(src.add(16))];
            }
        }
        let a = t.a.packed();
        debug_assert_eq!(a.len(), t.kb * MR);
        let mut ap = a.as_ptr();
        let mut bp = t.panel.rows().as_ptr();
        // One `k` step into accumulator set `$chain` (a macro, not a closure:
        // a closure would not inherit this function's target features).
        macro_rules! step {
            ($chain:expr) => {
                // The panel is one contiguous stream: where it comes
                // from memory, fetch its row PREFETCH_AHEAD ahead so the
                // memory-bound small-batch case overlaps loads with FMAs.
                if PREFETCH {
                    _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(PREFETCH_AHEAD) as *const i8);
                    _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(PREFETCH_AHEAD + 16) as *const i8);
                }
                let b0 = _mm512_loadu_ps(bp);
                let b1 = _mm512_loadu_ps(bp.add(16));
                for (r, acc_r) in $chain.iter_mut().enumerate() {
                    let x = _mm512_set1_ps(*ap.add(r));
                    acc_r[0] = _mm512_fmadd_ps(x, b0, acc_r[0]);
                    acc_r[1] = _mm512_fmadd_ps(x, b1, acc_r[1]);
                }
                bp = bp.add(PANEL);
                ap = ap.add(MR);
            };
        }
        for _ in 0..t.kb / CHAINS {
            for chain in acc.iter_mut() {
                step!(chain);
            }
        }
        for _ in 0..t.kb % CHAINS {
            step!(acc[0]);
        }
        let (first, others) = acc.split_at_mut(1);
        for chain in others.iter() {
            for (sum, part) in first[0].iter_mut().flatten().zip(chain.iter().flatten()) {
                *sum = _mm512_add_ps(*sum, *part);
            }
        }
        for (r, acc_r) in first[0].iter().enumerate() {
            if t.c_is_contiguous() {
                let c = t.c_row(r);
                _mm512_storeu_ps(c, acc_r[0]);
                _mm512_storeu_ps(c.add(16), acc_r[1]);
            } else {
                _mm512_storeu_ps(buf.as_mut_ptr(), acc_r[0]);
                _mm512_storeu_ps(buf.as_mut_ptr().add(16), acc_r[1]);
                t.store_c_row(r, &buf);
            }
        }
    }
}

/// AVX2 micro-kernel: `MR` rows x `8 * V` columns from `col0`, in `V * MR`
/// ymm accumulators, over a panel in [`PanelLayout::Halves`].
///
/// AVX2 has 16 ymm registers, so a whole 32-column panel row (4 vectors)
/// fits only 1–2 rows of accumulators (`V = 4`, both halves per step).
/// Blocks of 3–6 rows run one 16-column half of the panel per call
/// (`V = 2`), the classic 6 x 16 AVX2 shape: per `k` step one cache line
/// of the half and `MR` broadcasts feed `2 * MR` FMAs, with up to 12
/// independent accumulators covering the FMA latency.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn micro_avx2<const MR: usize, const V: usize>(t: &Tile) {
    // SAFETY: the caller guarantees the CPU features and that the tile
    // lies inside A, the panel and C (see `Job::run_slice`).
    unsafe {
        use std::arch::x86_64::*;
        let c0 = t.col0;
        let cols = c0..(c0 + 8 * V).min(t.width);
        let contiguous = t.out.csc == 1 && cols.len() == 8 * V;
        let mut buf = [0.0f32; PANEL];
        // As in the AVX-512 kernel, C is loaded first and every step adds
        // onto it in order, so a zero step (an ISS-removed unit) leaves the
        // sums bit for bit unchanged.
        let mut acc = [[_mm256_setzero_ps(); V]; MR];
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let src = match t.start {
                // A whole half of a contiguous row of C is read in place even
                // in a partial panel.
                Start::C if contiguous => Some(t.c_row(r).cast_const()),
                _ => t.initial_row(r, &mut buf),
            };
            if let Some(src) = src {
                for (q, v) in acc_r.iter_mut().enumerate() {
                    *v = _mm256_loadu_ps(src.add(c0 + 8 * q));
                }
            }
        }
        // Row `r`'s value of step `kk / step` is at `rowp[r] + kk`: one
        // offset shared by every row, so that a row's address is a base
        // register plus that offset (and, unrolled, a constant), not the
        // previous row's address plus the stride, which cost an add per row
        // and step. In-process A/B on Zen 3, 1 thread, medians: 10 x 373 x
        // 1492 10% faster, 300 x 1500 x 1492 3-4%, the whole compacted PTB
        // LSTM at batch 10 2-3% (1 and 2 threads). The best runs are equal:
        // fewer instructions per step seem to pay when the host is busy.
        let (ap, row_stride, step) = match t.a {
            TileA::Packed(a) => {
                debug_assert_eq!(a.len(), t.kb * MR);
                (a.as_ptr(), 1, MR)
            }
            TileA::InPlace { first, row_stride } => (first, row_stride, 1),
        };
        let rowp: [*const f32; MR] = std::array::from_fn(|r| ap.wrapping_add(r * row_stride));
        let mut kk = 0usize;
        // The halves' rows this call reads: both (`V = 4`), or the one
        // from `col0` twice (`V = 2`, only the first is used).
        let mut hp = if V == 4 {
            [t.panel.half(0).as_ptr(), t.panel.half(1).as_ptr()]
        } else {
            [t.panel.half(c0 / HALF).as_ptr(); 2]
        };
        // One `k` step (a macro, not a closure: a closure would not inherit
        // this function's target features).
        macro_rules! step_at {
            // The step `off` floats of `A` past `kk` (0 or `step`).
            ($off:expr) => {
                let b: [__m256; V] = std::array::from_fn(|q| _mm256_loadu_ps(hp[q / 2].add(8 * (q % 2))));
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    let x = _mm256_broadcast_ss(&*rowp[r].add(kk + $off));
                    for (v, bq) in acc_r.iter_mut().zip(&b) {
                        *v = _mm256_fmadd_ps(x, *bq, *v);
                    }
                }
                for h in hp.iter_mut().take(V / 2) {
                    *h = h.add(HALF);
                }
            };
        }
        // One step, advancing to the next.
        macro_rules! step {
            () => {
                step_at!(0);
                kk += step;
            };
        }
        if V == 4 {
            // The only pass over the slice (a single block of 1–2 rows, all
            // of `k`): prefetch within both halves' streams, 16 rows ahead.
            for _ in 0..t.kb {
                _mm_prefetch::<_MM_HINT_T0>(hp[0].wrapping_add(HALF_PREFETCH_AHEAD) as *const i8);
                _mm_prefetch::<_MM_HINT_T0>(hp[1].wrapping_add(HALF_PREFETCH_AHEAD) as *const i8);
                step!();
            }
        } else {
            // This call's share of the next slice's rows, a line of each
            // half per step, or paced at one line per step
            // ([`Tile::paced_prefetch`]): the passes over a slice from L1
            // keep the next one's loads in flight, so a product that
            // streams its weights from memory overlaps the two.
            let share = t.next_rows.len().min(t.kb);
            let paced = t.paced_prefetch && 2 * share <= t.kb;
            let prefetched = if paced { 2 * share } else { share };
            if share > 0 {
                let mut np = [0, 1].map(|h| t.next.half(h)[t.next_rows.start * HALF..].as_ptr());
                if paced {
                    for line in 0..prefetched {
                        let n = &mut np[line % 2];
                        _mm_prefetch::<_MM_HINT_T1>(*n as *const i8);
                        *n = n.wrapping_add(HALF);
                        step!();
                    }
                } else {
                    for _ in 0..prefetched {
                        for n in np.iter_mut() {
                            _mm_prefetch::<_MM_HINT_T0>(*n as *const i8);
                            *n = n.wrapping_add(HALF);
                        }
                        step!();
                    }
                }
            }
            // Two steps at a time, the loop written out for each `step`
            // (so that the second step's offset is a constant displacement)
            // and with or without prefetching this call's own half ahead.
            macro_rules! unrolled {
                ($step:expr, $ahead:expr) => {
                    for _ in 0..(t.kb - prefetched) / 2 {
                        if $ahead {
                            _mm_prefetch::<_MM_HINT_T0>(hp[0].wrapping_add(HALF_PREFETCH_AHEAD) as *const i8);
                        }
                        step_at!(0);
                        if $ahead {
                            _mm_prefetch::<_MM_HINT_T0>(hp[0].wrapping_add(HALF_PREFETCH_AHEAD) as *const i8);
                        }
                        step_at!($step);
                        kk += 2 * $step;
                    }
                };
            }
            match (step == 1, t.read_ahead) {
                (true, false) => unrolled!(1, false),
                (true, true) => unrolled!(1, true),
                (false, false) => unrolled!(MR, false),
                (false, true) => unrolled!(MR, true),
            }
            for _ in 0..(t.kb - prefetched) % 2 {
                step!();
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            if contiguous {
                let dst = t.c_row(r).add(c0);
                for (q, v) in acc_r.iter().enumerate() {
                    _mm256_storeu_ps(dst.add(8 * q), *v);
                }
            } else {
                for (q, v) in acc_r.iter().enumerate() {
                    _mm256_storeu_ps(buf.as_mut_ptr().add(c0 + 8 * q), *v);
                }
                t.store_c_cols(r, &buf, cols.clone());
            }
        }
    }
}

/// Row blocks of `A` (of `MR` rows each) over both 16-column halves of a
/// run of whole panels with contiguous rows of `C`: on AVX2, the
/// micro-kernel calls of one row block over a chunk of panels
/// ([`Job::run_block_major`]), or of every row block over one panel
/// ([`Job::run_slice`]), in one call. The setup the calls repeated (a
/// `Tile` per call, the kernel's prologue, the choice of start per row)
/// then happens once per run; in a profile of 300 x 1500 x 1492 it had 11%
/// of the samples, outside the multiply-add loop, and in the compacted PTB
/// model's recurrent steps 12-14% of theirs.
struct HalvesRun<'a> {
    /// Where the first block's first row of `A` starts at the slice's first
    /// step; row `r` of block `b` at `+ b * a_block_floats + r *
    /// a_row_stride`, the steps `a_step` floats apart.
    a_first: *const f32,
    a_row_stride: usize,
    a_step: usize,
    a_block_floats: usize,
    blocks: usize,
    kb: usize,
    /// The slice's rows of the run's first half.
    first_half: *const f32,
    /// Floats from one panel to the next, and from a panel's first half to its second.
    panel_floats: usize,
    half_floats: usize,
    panels: usize,
    /// `C` at the first block's first row and the run's first column.
    c: *mut f32,
    rsc: usize,
    start: Start,
    /// The run's first column (where a bias start row is read).
    first_col: usize,
    _a: std::marker::PhantomData<&'a [f32]>,
}

/// [`micro_avx2_halves`] for blocks of `rows` rows (3–6, the blocks AVX2
/// runs in half passes), reading each half ahead or not ([`Tile::read_ahead`]).
#[cfg(target_arch = "x86_64")]
fn halves_kernel<const READ_AHEAD: bool>(rows: usize) -> unsafe fn(&HalvesRun) {
    match rows {
        3 => micro_avx2_halves::<3, READ_AHEAD>,
        4 => micro_avx2_halves::<4, READ_AHEAD>,
        5 => micro_avx2_halves::<5, READ_AHEAD>,
        6 => micro_avx2_halves::<6, READ_AHEAD>,
        _ => unreachable!("half passes take blocks of 3-6 rows, not {rows}"),
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn halves_kernel<const READ_AHEAD: bool>(_rows: usize) -> unsafe fn(&HalvesRun) {
    unreachable!("only the AVX2 kernels run half passes")
}

/// The AVX2 kernel for a [`HalvesRun`]: half by half, block by block, what
/// [`micro_avx2`]`::<MR, 2>` computes for that block and half (the same
/// steps in the same order from the same start, so the same bits), with
/// the half read ahead 16 rows, one line per step, when `READ_AHEAD`.
/// In-process A/B on Zen 3 against one call per block and half, medians:
/// in the block-major order, 300 x 1500 x 1492 (the compacted PTB model's
/// first input projection at batch 10) 3-6% faster on 1 thread,
/// 300 x 373 x 1260 4%, 300 x 1500 x 6000 2-5%, and the whole compacted
/// LSTM at batch 10 4-5% on 1 and 2 threads; over one panel's row blocks,
/// 10 x 373 x 1492 and 10 x 315 x 1260 (its recurrent steps at batch 10)
/// 3-5%, the whole LSTM 1% more.
///
/// # Safety
/// AVX2 and FMA must be present, and the run must lie inside `A`, the
/// packed panels and `C` (as each block's and half's [`Tile`] would).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn micro_avx2_halves<const MR: usize, const READ_AHEAD: bool>(t: &HalvesRun) {
    // SAFETY: the caller guarantees the CPU features and the bounds.
    unsafe {
        use std::arch::x86_64::*;
        let step = t.a_step;
        for half in 0..2 * t.panels {
            let col = half / 2 * PANEL + half % 2 * HALF;
            let first_half = t.first_half.add(half / 2 * t.panel_floats + half % 2 * t.half_floats);
            for block in 0..t.blocks {
                // As in `micro_avx2`: row `r`'s value of step `kk / step` is at `rowp[r] + kk`.
                let ap = t.a_first.add(block * t.a_block_floats);
                let rowp: [*const f32; MR] = std::array::from_fn(|r| ap.wrapping_add(r * t.a_row_stride));
                let c = t.c.add(block * MR * t.rsc + col);
                let mut hp = first_half;
                let mut acc = [[_mm256_setzero_ps(); 2]; MR];
                match t.start {
                    Start::Zero => {}
                    Start::C => {
                        for (r, acc_r) in acc.iter_mut().enumerate() {
                            let c = c.add(r * t.rsc);
                            *acc_r = [_mm256_loadu_ps(c), _mm256_loadu_ps(c.add(8))];
                        }
                    }
                    Start::Row(row) => {
                        let b = row.get().add(t.first_col + col);
                        acc = [[_mm256_loadu_ps(b), _mm256_loadu_ps(b.add(8))]; MR];
                    }
                }
                let mut kk = 0usize;
                // One `k` step: `off` floats of `A` past `kk`, the half's row
                // `row` past `hp` (a macro: a closure would not inherit the
                // target features).
                macro_rules! step_at {
                    ($off:expr, $row:expr) => {
                        let b = [
                            _mm256_loadu_ps(hp.add($row * HALF)),
                            _mm256_loadu_ps(hp.add($row * HALF + 8)),
                        ];
                        for (r, acc_r) in acc.iter_mut().enumerate() {
                            let x = _mm256_broadcast_ss(&*rowp[r].add(kk + $off));
                            for (v, bq) in acc_r.iter_mut().zip(&b) {
                                *v = _mm256_fmadd_ps(x, *bq, *v);
                            }
                        }
                    };
                }
                // Two steps at a time, written out for each `step` so that
                // the second step's offsets are constant displacements.
                macro_rules! unrolled {
                    ($step:expr) => {
                        for _ in 0..t.kb / 2 {
                            if READ_AHEAD {
                                _mm_prefetch::<_MM_HINT_T0>(hp.wrapping_add(HALF_PREFETCH_AHEAD) as *const i8);
                            }
                            step_at!(0, 0);
                            if READ_AHEAD {
                                _mm_prefetch::<_MM_HINT_T0>(hp.wrapping_add(HALF + HALF_PREFETCH_AHEAD) as *const i8);
                            }
                            step_at!($step, 1);
                            kk += 2 * $step;
                            hp = hp.add(2 * HALF);
                        }
                    };
                }
                if step == 1 {
                    unrolled!(1);
                } else {
                    unrolled!(MR);
                }
                if t.kb % 2 == 1 {
                    step_at!(0, 0);
                }
                for (r, acc_r) in acc.iter().enumerate() {
                    let c = c.add(r * t.rsc);
                    _mm256_storeu_ps(c, acc_r[0]);
                    _mm256_storeu_ps(c.add(8), acc_r[1]);
                }
            }
        }
    }
}

/// Plain-Rust micro-kernel, with fused multiply-add (NEON).
unsafe fn micro_fused<const MR: usize>(t: &Tile) {
    micro_lanes::<MR, true>(t)
}

/// Plain-Rust micro-kernel without FMA (any other CPU).
unsafe fn micro_portable<const MR: usize>(t: &Tile) {
    micro_lanes::<MR, false>(t)
}

#[inline(always)]
fn micro_lanes<const MR: usize, const FUSED: bool>(t: &Tile) {
    let mut acc = [[0.0f32; PANEL]; MR];
    let mut buf = [0.0f32; PANEL];
    for (r, acc_r) in acc.iter_mut().enumerate() {
        if let Some(src) = t.initial_row(r, &mut buf) {
            // SAFETY: `initial_row` points at PANEL readable floats.
            acc_r.copy_from_slice(unsafe { std::slice::from_raw_parts(src, PANEL) });
        }
    }
    for (arow, brow) in t.a.packed().chunks_exact(MR).zip(t.panel.rows().chunks_exact(PANEL)) {
        for r in 0..MR {
            let x = arow[r];
            for l in 0..PANEL {
                acc[r][l] = madd::<FUSED>(x, brow[l], acc[r][l]);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        t.store_c_row(r, acc_r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_by_parts_and_panels_claimed_by_any_worker_give_one_product() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        for (m, k, n) in [(1usize, 5usize, 1usize), (7, 37, 33), (61, 300, 200), (250, 601, 97), (0, 3, 40)] {
            let value = |i: usize| ((i * 7919) % 1013) as f32 / 1013.0 - 0.5;
            let a: Vec<f32> = (0..m * k).map(value).collect();
            let w: Vec<f32> = (0..n * k).map(|i| value(i + 17)).collect();
            let c0: Vec<f32> = (0..m * n).map(|i| value(i + 5)).collect();
            let b = PackedMatrix::pack_transposed(&w, n, k);
            let a = MatRef::row_major(&a, m, k);
            let mut want = c0.clone();
            packed_gemm(a, &b, &mut MatMut::row_major(&mut want, m, n), true);
            let mut got = c0.clone();
            let mut packed = vec![0.0f32; packed_a_len(m, k)];
            let packed_ptr = SendPtr(packed.as_mut_ptr());
            let shared = SharedOutput::new(&mut got, m, n);
            let (next, panels) = (AtomicUsize::new(0), n.div_ceil(PANEL));
            let done = AtomicUsize::new(0);
            pool.install(|| {
                crate::kernels::team::run_team(3, &|w, barrier| {
                    // SAFETY: the parts are disjoint; the barrier orders the
                    // packing before every read, and each claimed panel
                    // goes to one worker.
                    unsafe { pack_a_part(a, packed_ptr, w, 3) };
                    barrier.wait();
                    let packed = unsafe { std::slice::from_raw_parts(packed_ptr.get(), packed_a_len(m, k)) };
                    let claim = || {
                        let p = next.fetch_add(1, Ordering::Relaxed);
                        (p < panels).then(|| p..p + 1)
                    };
                    let count = |r: std::ops::Range<usize>| {
                        done.fetch_add(r.len(), Ordering::Relaxed);
                    };
                    unsafe { packed_gemm_claimed_prepacked(packed, m, &b, shared, Start::C, claim, count) };
                })
            });
            assert_eq!(done.load(Ordering::Relaxed), panels, "{m}x{k}x{n}: every panel done once");
            assert_eq!(got, want, "{m}x{k}x{n}");
        }
    }

    /// Panels run last first, whole ranges or chunks of three, in the
    /// small-`A` order and the large-`A` ones (250 x 601 and 700 x 300 are
    /// larger than `A_RESIDENT_BYTES`), give the ascending product bit for
    /// bit, every panel once.
    #[test]
    fn descending_panels_give_the_ascending_product() {
        for (m, k, n) in [
            (1usize, 5usize, 1usize),
            (3, 373, 1492),
            (250, 601, 97),
            (700, 300, 200),
            (0, 3, 40),
        ] {
            let value = |i: usize| ((i * 7919) % 1013) as f32 / 1013.0 - 0.5;
            let a: Vec<f32> = (0..m * k).map(value).collect();
            let w: Vec<f32> = (0..n * k).map(|i| value(i + 17)).collect();
            let c0: Vec<f32> = (0..m * n).map(|i| value(i + 5)).collect();
            let b = PackedMatrix::pack_transposed(&w, n, k);
            let a = MatRef::row_major(&a, m, k);
            let mut want = c0.clone();
            packed_gemm(a, &b, &mut MatMut::row_major(&mut want, m, n), true);
            let panels = n.div_ceil(PANEL);
            for per_claim in [panels.max(1), 3] {
                let mut got = c0.clone();
                let mut next = panels;
                let claim = || {
                    let start = next.saturating_sub(per_claim);
                    let range = start..next;
                    next = start;
                    (!range.is_empty()).then_some(range)
                };
                let mut seen = vec![0usize; panels];
                let done = |r: std::ops::Range<usize>| r.for_each(|p| seen[p] += 1);
                // SAFETY: one thread runs every claimed panel.
                unsafe {
                    let c = SharedOutput::new(&mut got, m, n);
                    packed_gemm_claimed(a, &b, c, true, PanelOrder::Descending, claim, done);
                }
                assert!(seen.iter().all(|&s| s == 1), "{m}x{k}x{n}: {seen:?}");
                assert_eq!(got, want, "{m}x{k}x{n}, {per_claim} panels per claim");
            }
        }
    }

    #[test]
    fn aligned_floats_are_zeroed_aligned_and_clone_deeply() {
        for len in [0usize, 1, 17, 1000, HUGE_PAGE / 4 + 3] {
            let mut buf = AlignedFloats::zeroed(len);
            assert_eq!(buf.as_slice().len(), len);
            assert!(buf.as_slice().iter().all(|&v| v == 0.0));
            let align = if len * 4 >= HUGE_PAGE { HUGE_PAGE } else { 64 };
            if len > 0 {
                assert_eq!(buf.as_slice().as_ptr() as usize % align, 0, "len {len}");
            }
            buf.as_mut_slice().iter_mut().enumerate().for_each(|(i, v)| *v = i as f32);
            let copy = buf.clone();
            buf.as_mut_slice().iter_mut().for_each(|v| *v = -1.0);
            assert!(copy.as_slice().iter().enumerate().all(|(i, &v)| v == i as f32));
        }
    }
}
