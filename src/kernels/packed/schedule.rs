//! A product's schedule: its [`Job`] (what every task of it shares), the
//! orders in which its panels, row blocks and K blocks run, and panels
//! handed out by claims.

use super::PANEL;
use super::avx2::{HalvesRun, halves_kernel};
use super::blocking::{
    A_RESIDENT_BYTES, C_CHUNK_BYTES, K_BLOCK, K_BLOCK_HALVES, LONG_SLICE_MIN_BLOCKS, PACED_PREFETCH_MAX_BLOCKS, STREAMED_B_BYTES,
    a_leaves_l2, avx512_k_block, block_major_chunk, passes_per_panel, prefetches_next, runs_block_major, streams_from_memory,
    whole_k_stays_in_l1,
};
use super::micro::micro_kernel;
use super::output::{PanelOut, Start};
use super::pack_a::{RowBlocks, row_blocks};
use super::panel::{HALF, PackedMatrix, PanelLayout, PanelSlice};
use super::tile::{Tile, TileA};
use crate::kernels::matrix::MatRef;
use crate::kernels::simd::{FLOATS_PER_LINE, SimdLevel, prefetch_l2};

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
    pub(super) fn chunks(self, range: std::ops::Range<usize>, chunk: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
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

/// For every range of panels `claim` returns, `job` over those panels
/// (none for an empty product), then `done(range)`, until `claim` returns
/// `None`.
pub(super) fn run_claims(
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

/// The [`Job`] of a product with `A` (`m x k`) as `a`, at the SIMD level
/// `b` was packed for.
pub(super) fn job<'a>(a: JobA<'a>, m: usize, k: usize, b: &'a PackedMatrix, out: PanelOut) -> Job<'a> {
    let level = b.level;
    let passes = passes_per_panel(level, m);
    let row_blocks = row_blocks(level, m);
    let whole_k_halves = whole_k_stays_in_l1(passes, k);
    Job {
        a,
        k,
        row_blocks,
        // The AVX-512 kernels prefetch within their own panel only.
        prefetch_next: level != SimdLevel::Avx512 && prefetches_next(whole_k_halves, b),
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

/// A product's `A`, as the kernels read it.
#[derive(Clone, Copy)]
pub(super) enum JobA<'a> {
    /// Packed (`pack_a`, or `pack_a_part` by a team): the block of rows
    /// `r0..r1` starts at `r0 * k`, laid out `[k][r1 - r0]`.
    Packed(&'a [f32]),
    /// `A` itself, with contiguous rows (`reads_a_in_place`).
    InPlace(MatRef<'a>),
}

/// Everything one product's tasks share.
pub(super) struct Job<'a> {
    pub(super) a: JobA<'a>,
    pub(super) k: usize,
    pub(super) row_blocks: RowBlocks,
    /// Steps of `k` per micro-kernel call: [`K_BLOCK`] or
    /// [`K_BLOCK_HALVES`], so several row blocks or passes reuse a panel
    /// slice from L1; all of `k` for a single row block in a single pass
    /// (nothing to reuse, and each call reloads and stores its `C` tile),
    /// or where the reused half stays in L1 anyway ([`whole_k_stays_in_l1`]);
    /// on AVX-512 all of `k` up to a bound ([`avx512_k_block`]).
    pub(super) k_block: usize,
    /// Column passes over each slice ([`passes_per_panel`]).
    pub(super) passes: usize,
    /// Whether each slice's calls prefetch the next slice ([`prefetches_next`]).
    pub(super) prefetch_next: bool,
    /// Whether the AVX-512 calls prefetch their panel ahead: only where `B`
    /// streams from memory; from L2 or L3 the hardware prefetchers keep up
    /// and the prefetches only take load slots.
    pub(super) prefetch_b: bool,
    pub(super) b: &'a PackedMatrix,
    pub(super) level: SimdLevel,
    pub(super) out: PanelOut,
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
            // SAFETY: B was packed for AVX2, which the CPU has; the run's
            // halves, rows of A and tile of C lie inside B, A and C.
            unsafe { halves_kernel::<false>(blocks.base)(&run) };
            return;
        }
        // The next slice's rows shared out over this slice's calls (none
        // where nothing is prefetched, as on AVX-512).
        let shares = (next.kb > 0).then(|| RowBlocks::new(next.kb, self.row_blocks.count * self.passes));
        let paced_prefetch = self.paces_prefetch();
        for pass in 0..self.passes {
            let col0 = pass * PANEL / self.passes;
            if col0 >= width {
                break;
            }
            for (i, rows) in self.row_blocks.iter().enumerate() {
                let kernel = micro_kernel(self.level, rows.len(), self.prefetch_b);
                let share = shares.map_or(0..0, |s| s.block(pass * self.row_blocks.count + i));
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
                // SAFETY: the kernel was chosen for B's SIMD level (which the
                // CPU has) and for exactly this many rows; the tile lies inside A, B and C.
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
                // SAFETY: B was packed for AVX2, which the CPU has; the run's
                // halves, rows of A and tile of C lie inside B, A and C.
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
    /// reads first: `C`'s row segments from column `col`, and (when `A` is
    /// read in place and its slice does not stay in L2) every `calls`-th
    /// part of the lines of `A`'s rows over `steps`. Otherwise the first
    /// call over each row block waits for its `A` and every call for its
    /// `C` tile, from L3 or memory once they outgrow L2.
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

    /// Whether the product is one row of `A` on AVX-512 with contiguous
    /// columns of `C`, which runs as one [`super::avx512::row_product`].
    #[cfg(target_arch = "x86_64")]
    fn is_avx512_row(&self) -> bool {
        self.level == SimdLevel::Avx512 && self.row_blocks.rows == 1 && self.out.csc == 1 && self.b.layout == PanelLayout::Rows
    }

    /// Whether the large-`A` orders below apply ([`a_leaves_l2`]).
    fn large_a(&self) -> bool {
        a_leaves_l2(self.level, self.row_blocks.rows, self.k, self.passes, self.row_blocks.count)
    }

    /// Whether a large `A` runs in the block-major order
    /// ([`Job::run_block_major`], see [`runs_block_major`]).
    fn runs_block_major_order(&self) -> bool {
        runs_block_major(self.level, self.passes)
    }

    /// One task: the panels in `range`, all rows of `A`, in `order` (in
    /// the large-`A` orders, their chunks in `order`).
    pub(super) fn run_panels(&self, range: std::ops::Range<usize>, order: PanelOrder) {
        #[cfg(target_arch = "x86_64")]
        if self.is_avx512_row() {
            // SAFETY: B was packed for AVX-512, which the CPU has; one row
            // of A, whole-row panels and contiguous columns of C (checked).
            unsafe {
                if self.prefetch_b {
                    super::avx512::row_product::<true>(self, range, order)
                } else {
                    super::avx512::row_product::<false>(self, range, order)
                }
            }
            return;
        }
        // At least one K block, even for k = 0 (so C is still written).
        let k_starts = (0..self.k.max(1)).step_by(self.k_block);
        if self.large_a() {
            // A large A: K blocks outermost, so the slice of A they cover
            // stays in L2 while it sweeps the panels (in the panel-major
            // order below, each panel slice stays in L1 while every row
            // block passes over it). Panels go in
            // chunks whose share of C fits in L2 beside that slice of A, so
            // C is not re-read from memory for every K block.
            if self.runs_block_major_order() {
                // Chunks of panels that every row block of A passes over,
                // block by block (the order MLAS uses), so a block of A is
                // read from L1 or L2 by the whole chunk.
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
