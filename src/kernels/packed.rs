//! A GEMM for weights that stay fixed: `B` is packed once (at an executor's
//! prepare time) into column panels, so every later product streams it
//! contiguously and never repacks it.
//!
//! This is the kernel behind the executors' `packed` backend. `A` (the
//! activations, a few to a few hundred rows) is read in place; `B` (the
//! weights, `k x n`) lives as `ceil(n / PANEL)` panels of `k x PANEL`
//! elements. Work is split over panels with rayon; inside a panel the `k`
//! dimension is blocked so the panel slice stays in L1 while every block of
//! `A` rows passes over it. At batch 1–10 this is a memory-bound stream over
//! the weights, which is as fast as that product can go; at large batch it is
//! a register-blocked micro-kernel near the FMA units' peak.

use rayon::prelude::*;

use super::matrix::{MatMut, MatRef, SendPtr};
use super::simd::{SimdLevel, madd};

/// Columns per panel: two AVX-512 vectors, four AVX2 vectors.
pub const PANEL: usize = 32;
/// Rows of `B` per cache block (a block of one panel is 32 KiB).
const K_BLOCK: usize = 128;
/// How far ahead of the current panel row the kernels prefetch, in floats.
const PREFETCH_AHEAD: usize = 16 * PANEL;
/// Below this many multiply-adds a product runs on the calling thread.
const PARALLEL_MIN_MACS: usize = 1 << 16;

/// A `k x n` matrix packed into column panels of [`PANEL`] columns
/// (the last panel zero-padded).
#[derive(Debug, Clone)]
pub struct PackedMatrix {
    k: usize,
    n: usize,
    panels: Vec<f32>,
}

impl PackedMatrix {
    /// Packs `b` (any strides). Costs one pass over `b`; done once per weight.
    pub fn pack(b: MatRef) -> PackedMatrix {
        let (k, n) = (b.rows(), b.cols());
        let count = n.div_ceil(PANEL);
        let mut panels = vec![0.0f32; count * k * PANEL];
        if k == 0 {
            return PackedMatrix { k, n, panels };
        }
        for (p, panel) in panels.chunks_exact_mut(k * PANEL).enumerate() {
            let j0 = p * PANEL;
            let width = (n - j0).min(PANEL);
            for (row, dst) in panel.chunks_exact_mut(PANEL).enumerate() {
                for (l, d) in dst.iter_mut().enumerate().take(width) {
                    *d = b.at(row, j0 + l);
                }
            }
        }
        PackedMatrix { k, n, panels }
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
        self.panels.len() * std::mem::size_of::<f32>()
    }
    fn panel(&self, p: usize) -> &[f32] {
        &self.panels[p * self.k * PANEL..(p + 1) * self.k * PANEL]
    }
}

/// Largest block of `A` rows one micro-kernel call handles on this machine:
/// as many as the vector registers hold accumulators for.
fn max_rows_per_block(level: SimdLevel) -> usize {
    match level {
        SimdLevel::Avx512 => 12,
        SimdLevel::Avx2Fma => 3,
        SimdLevel::Neon => 3,
        SimdLevel::Portable => 2,
    }
}

/// `C = A · B` or `C += A · B` with `B` packed. `A` must have contiguous rows
/// (`col_stride == 1`); `C` may have any strides. Panics on shape mismatch.
pub fn packed_gemm(a: MatRef, b: &PackedMatrix, c: &mut MatMut, accumulate: bool) {
    run(a, b, c, accumulate, &|_, _| {});
}

/// The finished columns of one panel of `C`, handed to an epilogue.
pub struct PanelView {
    ptr: SendPtr,
    rsc: usize,
    rows: usize,
    j0: usize,
    width: usize,
}

impl PanelView {
    /// Number of rows of `C`.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// First column of `C` in this panel.
    pub fn first_column(&self) -> usize {
        self.j0
    }
    /// Row `i` of `C` restricted to this panel's columns.
    pub fn row(&self, i: usize) -> &[f32] {
        assert!(i < self.rows, "row {i} of {}", self.rows);
        // SAFETY: the panel's columns of row i are inside C, final, and no
        // other task writes them while the epilogue runs.
        unsafe { std::slice::from_raw_parts(self.ptr.get().add(i * self.rsc + self.j0), self.width) }
    }
}

/// An epilogue: called with the panel index and its finished columns.
pub type Epilogue<'a> = &'a (dyn Fn(usize, &PanelView) + Sync);

/// [`packed_gemm`], then `epilogue(p)` for each panel `p` as soon as columns
/// `p * PANEL ..` of `C` are final, on the thread that computed them.
///
/// This fuses whatever consumes a panel's results (the LSTM cell update)
/// into the same parallel region as the product, while the panel is still
/// in cache: one fork-join per time step instead of two. Each panel's
/// epilogue runs exactly once; different panels may run concurrently.
/// `C` must have contiguous rows (`col_stride == 1`).
pub fn packed_gemm_then(a: MatRef, b: &PackedMatrix, c: &mut MatMut, accumulate: bool, epilogue: Epilogue) {
    assert!(c.col_stride() == 1 || c.cols() <= 1, "packed_gemm_then: C rows must be contiguous");
    run(a, b, c, accumulate, epilogue);
}

fn run(a: MatRef, b: &PackedMatrix, c: &mut MatMut, accumulate: bool, epilogue: Epilogue) {
    let (m, k, n) = (a.rows(), a.cols(), b.n);
    assert_eq!(k, b.k, "packed_gemm: A is {m}x{k} but B has {} rows", b.k);
    assert!(
        c.rows() == m && c.cols() == n,
        "packed_gemm: C is {}x{}, expected {m}x{n}",
        c.rows(),
        c.cols()
    );
    if m == 0 || n == 0 {
        return;
    }
    let level = SimdLevel::detect();
    let row_blocks = RowBlocks {
        rows: m,
        count: m.div_ceil(max_rows_per_block(level)),
    };
    let panels = n.div_ceil(PANEL);
    let workers = if m * n * k < PARALLEL_MIN_MACS {
        1
    } else {
        rayon::current_num_threads().min(panels)
    };
    let (c_ptr, rsc, csc) = c.raw();
    let out = PanelOut {
        ptr: SendPtr(c_ptr),
        rsc,
        csc,
        n,
        accumulate,
    };
    A_SCRATCH.with(|scratch| {
        let mut packed_a = scratch.borrow_mut();
        pack_a(a, row_blocks, &mut packed_a);
        let job = Job {
            packed_a: &packed_a[..m * k],
            k,
            row_blocks,
            b,
            level,
            out,
            epilogue,
        };
        // Task t takes an equal share of the panels (no allocation per call).
        let task = |t: usize| job.run_panels(panels * t / workers..panels * (t + 1) / workers);
        if workers == 1 {
            task(0);
        } else {
            (0..workers).into_par_iter().for_each(task);
        }
    });
}

/// `rows` rows of `A` cut into `count` nearly equal consecutive blocks, each
/// small enough for one micro-kernel call.
#[derive(Clone, Copy)]
struct RowBlocks {
    rows: usize,
    count: usize,
}

impl RowBlocks {
    fn block(self, i: usize) -> std::ops::Range<usize> {
        self.rows * i / self.count..self.rows * (i + 1) / self.count
    }
    fn iter(self) -> impl Iterator<Item = std::ops::Range<usize>> + Clone {
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
/// micro-kernel broadcasts from one sequential stream.
fn pack_a(a: MatRef, blocks: RowBlocks, out: &mut Vec<f32>) {
    let k = a.cols();
    if out.len() < a.rows() * k {
        out.resize(a.rows() * k, 0.0);
    }
    for rows in blocks.iter() {
        let dst = &mut out[rows.start * k..rows.end * k];
        for (r, i) in rows.clone().enumerate() {
            for p in 0..k {
                dst[p * rows.len() + r] = a.at(i, p);
            }
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
    accumulate: bool,
}

/// A micro-kernel for one [`Tile`], compiled for one SIMD level and row count.
type MicroKernel = unsafe fn(&Tile);

/// The micro-kernel for `rows` rows (1..=[`max_rows_per_block`]) at `level`.
fn micro_kernel(level: SimdLevel, rows: usize) -> MicroKernel {
    macro_rules! pick {
        ($f:ident, $($n:literal)*) => {
            match rows { $($n => $f::<$n> as MicroKernel,)* _ => unreachable!("row block of {rows}") }
        };
    }
    match level {
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => pick!(micro_avx512, 1 2 3 4 5 6 7 8 9 10 11 12),
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2Fma => pick!(micro_avx2, 1 2 3),
        SimdLevel::Neon => pick!(micro_fused, 1 2 3),
        _ => pick!(micro_portable, 1 2),
    }
}

/// Everything one product's tasks share.
struct Job<'a> {
    /// `A` packed by [`pack_a`].
    packed_a: &'a [f32],
    k: usize,
    row_blocks: RowBlocks,
    b: &'a PackedMatrix,
    level: SimdLevel,
    out: PanelOut,
    epilogue: Epilogue<'a>,
}

impl Job<'_> {
    /// All row blocks of `A` over one panel slice of `K_BLOCK` steps from `k0`.
    fn run_slice(&self, p: usize, k0: usize) {
        let (k, out) = (self.k, self.out);
        let panel = self.b.panel(p);
        let j0 = p * PANEL;
        let kb = (k - k0).min(K_BLOCK);
        for rows in self.row_blocks.iter() {
            let a_start = rows.start * k + k0 * rows.len();
            let kernel = micro_kernel(self.level, rows.len());
            let tile = Tile {
                a: &self.packed_a[a_start..a_start + kb * rows.len()],
                rows,
                kb,
                panel: &panel[k0 * PANEL..(k0 + kb) * PANEL],
                j0,
                width: (out.n - j0).min(PANEL),
                load_c: out.accumulate || k0 > 0,
                out,
            };
            // SAFETY: the kernel was chosen for the detected SIMD level
            // and for exactly this many rows; the tile lies inside A, B and C.
            unsafe { kernel(&tile) };
        }
    }

    /// Hands panel `p`'s finished columns to the epilogue.
    fn finish(&self, p: usize) {
        let j0 = p * PANEL;
        let view = PanelView {
            ptr: self.out.ptr,
            rsc: self.out.rsc,
            rows: self.row_blocks.rows,
            j0,
            width: (self.out.n - j0).min(PANEL),
        };
        (self.epilogue)(p, &view);
    }

    /// One task: the panels in `range`, all rows of `A`.
    fn run_panels(&self, range: std::ops::Range<usize>) {
        // At least one K block, even for k = 0 (so C is still written).
        let k_starts = (0..self.k.max(1)).step_by(K_BLOCK);
        if self.row_blocks.count > 1 {
            // Many rows: K blocks outermost, so the slice of A they cover
            // stays in L2 while it sweeps every panel (each panel slice stays
            // in L1 while every row block passes over it).
            let last_k0 = (self.k.max(1) - 1) / K_BLOCK * K_BLOCK;
            for k0 in k_starts {
                for p in range.clone() {
                    self.run_slice(p, k0);
                    if k0 == last_k0 {
                        self.finish(p);
                    }
                }
            }
        } else {
            // One row block (small batch): stream each panel front to back,
            // the order the prefetcher and the prefetch hints expect.
            for p in range {
                for k0 in k_starts.clone() {
                    self.run_slice(p, k0);
                }
                self.finish(p);
            }
        }
    }
}

/// One micro-kernel call: `kb` steps of `k` for the rows `rows` of `C`,
/// columns `j0..j0+width`.
struct Tile<'a> {
    /// Packed `A` for these rows and steps: `[kb][rows.len()]`.
    a: &'a [f32],
    rows: std::ops::Range<usize>,
    kb: usize,
    /// The panel rows for these steps: `[kb][PANEL]`.
    panel: &'a [f32],
    j0: usize,
    width: usize,
    load_c: bool,
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
    /// Writes `buf[..width]` to C's tile row `r`.
    fn store_c_row(&self, r: usize, buf: &[f32; PANEL]) {
        let row = self.rows.start + r;
        for (l, &v) in buf.iter().enumerate().take(self.width) {
            // SAFETY: (row, j0 + l) is inside C.
            unsafe { *self.out.ptr.get().add(row * self.out.rsc + (self.j0 + l) * self.out.csc) = v };
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

/// AVX-512 micro-kernel: `MR` rows x 32 columns in `2 * MR` zmm accumulators;
/// each `k` step loads one panel row (two vectors) and broadcasts `MR`
/// elements of `A`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn micro_avx512<const MR: usize>(t: &Tile) {
    // SAFETY: the caller guarantees the CPU features and that the tile
    // lies inside A, the panel and C (see `panels_task`).
    unsafe {
        use std::arch::x86_64::*;
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        let mut buf = [0.0f32; PANEL];
        if t.load_c {
            for (r, acc_r) in acc.iter_mut().enumerate() {
                if t.c_is_contiguous() {
                    let c = t.c_row(r);
                    *acc_r = [_mm512_loadu_ps(c), _mm512_loadu_ps(c.add(16))];
                } else {
                    t.load_c_row(r, &mut buf);
                    *acc_r = [_mm512_loadu_ps(buf.as_ptr()), _mm512_loadu_ps(buf.as_ptr().add(16))];
                }
            }
        }
        debug_assert_eq!(t.a.len(), t.kb * MR);
        let mut ap = t.a.as_ptr();
        let mut bp = t.panel.as_ptr();
        for _ in 0..t.kb {
            // The panel is one contiguous stream: fetch 16 rows (2 KiB) ahead
            // so the memory-bound small-batch case overlaps loads with FMAs.
            _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(PREFETCH_AHEAD) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(PREFETCH_AHEAD + 16) as *const i8);
            let b0 = _mm512_loadu_ps(bp);
            let b1 = _mm512_loadu_ps(bp.add(16));
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_ps(*ap.add(r));
                acc_r[0] = _mm512_fmadd_ps(x, b0, acc_r[0]);
                acc_r[1] = _mm512_fmadd_ps(x, b1, acc_r[1]);
            }
            bp = bp.add(PANEL);
            ap = ap.add(MR);
        }
        for (r, acc_r) in acc.iter().enumerate() {
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

/// AVX2 micro-kernel: `MR` rows x 32 columns in `4 * MR` ymm accumulators.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn micro_avx2<const MR: usize>(t: &Tile) {
    // SAFETY: the caller guarantees the CPU features and that the tile
    // lies inside A, the panel and C (see `panels_task`).
    unsafe {
        use std::arch::x86_64::*;
        let mut acc = [[_mm256_setzero_ps(); 4]; MR];
        let mut buf = [0.0f32; PANEL];
        if t.load_c {
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let src = if t.c_is_contiguous() {
                    t.c_row(r) as *const f32
                } else {
                    t.load_c_row(r, &mut buf);
                    buf.as_ptr()
                };
                for (q, v) in acc_r.iter_mut().enumerate() {
                    *v = _mm256_loadu_ps(src.add(8 * q));
                }
            }
        }
        debug_assert_eq!(t.a.len(), t.kb * MR);
        let mut ap = t.a.as_ptr();
        let mut bp = t.panel.as_ptr();
        for _ in 0..t.kb {
            let b = [
                _mm256_loadu_ps(bp),
                _mm256_loadu_ps(bp.add(8)),
                _mm256_loadu_ps(bp.add(16)),
                _mm256_loadu_ps(bp.add(24)),
            ];
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let x = _mm256_set1_ps(*ap.add(r));
                for (v, bq) in acc_r.iter_mut().zip(&b) {
                    *v = _mm256_fmadd_ps(x, *bq, *v);
                }
            }
            bp = bp.add(PANEL);
            ap = ap.add(MR);
        }
        for (r, acc_r) in acc.iter().enumerate() {
            let contiguous = t.c_is_contiguous();
            let dst = if contiguous { t.c_row(r) } else { buf.as_mut_ptr() };
            for (q, v) in acc_r.iter().enumerate() {
                _mm256_storeu_ps(dst.add(8 * q), *v);
            }
            if !contiguous {
                t.store_c_row(r, &buf);
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
    if t.load_c {
        for (r, acc_r) in acc.iter_mut().enumerate() {
            t.load_c_row(r, acc_r);
        }
    }
    for (arow, brow) in t.a.chunks_exact(MR).zip(t.panel.chunks_exact(PANEL)) {
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
