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

use super::matrix::{MatMut, MatRef, SendPtr, split_ranges};
use super::simd::{SimdLevel, madd};

/// Columns per panel: two AVX-512 vectors, four AVX2 vectors.
pub const PANEL: usize = 32;
/// Rows of `B` per cache block (a block of one panel is 32 KiB).
const K_BLOCK: usize = 256;
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
    let (m, k, n) = (a.rows(), a.cols(), b.n);
    assert_eq!(k, b.k, "packed_gemm: A is {m}x{k} but B has {} rows", b.k);
    assert!(
        c.rows() == m && c.cols() == n,
        "packed_gemm: C is {}x{}, expected {m}x{n}",
        c.rows(),
        c.cols()
    );
    assert!(a.col_stride() == 1 || k <= 1, "packed_gemm: A rows must be contiguous");
    if m == 0 || n == 0 {
        return;
    }
    let panels = n.div_ceil(PANEL);
    let workers = if m * n * k < PARALLEL_MIN_MACS {
        1
    } else {
        rayon::current_num_threads()
    };
    let ranges = split_ranges(panels, workers, 1);
    let (c_ptr, rsc, csc) = c.raw();
    let out = PanelOut {
        ptr: SendPtr(c_ptr),
        rsc,
        csc,
        n,
        accumulate,
    };
    let level = SimdLevel::detect();
    let task = |range: &std::ops::Range<usize>| panels_task(a, b, range.clone(), level, out);
    if ranges.len() == 1 {
        task(&ranges[0]);
    } else {
        ranges.par_iter().for_each(task);
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

/// One task: the panels in `range`, all rows of `A`.
fn panels_task(a: MatRef, b: &PackedMatrix, range: std::ops::Range<usize>, level: SimdLevel, out: PanelOut) {
    let (m, k) = (a.rows(), a.cols());
    let blocks: Vec<(std::ops::Range<usize>, MicroKernel)> = split_ranges(m, m.div_ceil(max_rows_per_block(level)), 1)
        .into_iter()
        .map(|r| {
            let kernel = micro_kernel(level, r.len());
            (r, kernel)
        })
        .collect();
    for p in range {
        let panel = b.panel(p);
        let j0 = p * PANEL;
        let width = (out.n - j0).min(PANEL);
        let mut k0 = 0;
        loop {
            let kb = (k - k0).min(K_BLOCK);
            let load_c = out.accumulate || k0 > 0;
            for (rows, kernel) in &blocks {
                let tile = Tile {
                    a,
                    rows: rows.clone(),
                    k0,
                    kb,
                    panel: &panel[k0 * PANEL..(k0 + kb) * PANEL],
                    j0,
                    width,
                    load_c,
                    out,
                };
                // SAFETY: the kernel was chosen for the detected SIMD level
                // and for exactly this many rows; the tile lies inside A, B and C.
                unsafe { kernel(&tile) };
            }
            k0 += kb;
            if k0 >= k {
                break;
            }
        }
    }
}

/// One micro-kernel call: rows `rows` of `A`, `kb` steps of `k` from `k0`,
/// one panel slice, written to columns `j0..j0+width` of `C`.
struct Tile<'a> {
    a: MatRef<'a>,
    rows: std::ops::Range<usize>,
    k0: usize,
    kb: usize,
    panel: &'a [f32],
    j0: usize,
    width: usize,
    load_c: bool,
    out: PanelOut,
}

impl Tile<'_> {
    /// Pointer to `A[rows.start + r, k0]`.
    fn a_row(&self, r: usize) -> *const f32 {
        debug_assert!(self.rows.start + r < self.a.rows());
        // SAFETY: in bounds of A's slice (row exists, k0 + kb <= k).
        unsafe { self.a.data().as_ptr().add((self.rows.start + r) * self.a.row_stride() + self.k0) }
    }
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
        let a: [*const f32; MR] = std::array::from_fn(|r| t.a_row(r));
        let mut bp = t.panel.as_ptr();
        for p in 0..t.kb {
            let b0 = _mm512_loadu_ps(bp);
            let b1 = _mm512_loadu_ps(bp.add(16));
            for r in 0..MR {
                let x = _mm512_set1_ps(*a[r].add(p));
                acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);
            }
            bp = bp.add(PANEL);
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
        let a: [*const f32; MR] = std::array::from_fn(|r| t.a_row(r));
        let mut bp = t.panel.as_ptr();
        for p in 0..t.kb {
            let b = [
                _mm256_loadu_ps(bp),
                _mm256_loadu_ps(bp.add(8)),
                _mm256_loadu_ps(bp.add(16)),
                _mm256_loadu_ps(bp.add(24)),
            ];
            for r in 0..MR {
                let x = _mm256_set1_ps(*a[r].add(p));
                for q in 0..4 {
                    acc[r][q] = _mm256_fmadd_ps(x, b[q], acc[r][q]);
                }
            }
            bp = bp.add(PANEL);
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
    // SAFETY: A's rows hold kb elements from k0 (Tile invariant).
    let a: [&[f32]; MR] = std::array::from_fn(|r| unsafe { std::slice::from_raw_parts(t.a_row(r), t.kb) });
    for (p, brow) in t.panel.chunks_exact(PANEL).enumerate() {
        for r in 0..MR {
            let x = a[r][p];
            for l in 0..PANEL {
                acc[r][l] = madd::<FUSED>(x, brow[l], acc[r][l]);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        t.store_c_row(r, acc_r);
    }
}
