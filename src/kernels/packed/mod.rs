//! A GEMM for weights that stay fixed: `B` is packed once (at an
//! executor's prepare time) into column panels, so every later product
//! streams it contiguously and never repacks it. The kernel behind the
//! executors' `packed` backend, laid out the way matrixmultiply lays out
//! its own:
//!
//! - [`panel`]: `B` (the weights, `k x n`) as `ceil(n / PANEL)` panels of
//!   `k x PANEL`, in the layout of the SIMD level detected when it is
//!   packed, which it keeps: every product on it runs at that level;
//! - [`buffer`]: the panels' memory, cache-line aligned, on huge pages when large;
//! - [`pack_a`]: `A` (the activations) in row blocks `[k][rows]`, where the
//!   kernels do not read it in place;
//! - [`blocking`]: the blocking constants and the choices they drive;
//! - [`schedule`]: a product's [`schedule::Job`], the orders of its panels,
//!   row blocks and K blocks, and panels handed out by claims;
//! - [`output`]: where results go and what accumulators start from;
//! - [`tile`] and [`micro`]: one micro-kernel call, and the trait each
//!   instruction set implements ([`avx512`], [`avx2`], [`portable`]).
//!
//! Work is split over panels, by rayon ([`packed_gemm`]) or by the
//! caller's own workers ([`packed_gemm_panels`], [`packed_gemm_claimed`]).
//! At batch 1-10 a product streams the weights (memory- or L2-bound); at
//! large batch the micro-kernels (12 x 32 on AVX-512, 6 x 16 half panels on
//! AVX2) run near the FMA peak (`examples/gemm_shapes` measures it). What
//! each tuned constant was measured to give is in docs/tuning.md.

mod avx2;
mod avx512;
mod blocking;
mod buffer;
mod micro;
mod output;
mod pack_a;
mod panel;
mod portable;
mod schedule;
mod tile;

use rayon::prelude::*;

use super::matrix::{MatMut, MatRef, SendPtr};
use blocking::{MIN_CLAIMED_PANELS, PARALLEL_MIN_MACS};
use output::PanelOut;
use pack_a::{A_SCRATCH, pack_a, row_blocks};
use schedule::{Job, JobA, job, run_claims};

pub(crate) use blocking::{claim_granule, reads_a_in_place};
pub use output::SharedOutput;
pub(crate) use output::Start;
pub(crate) use pack_a::{pack_a_part, packed_a_len};
pub use panel::PackedMatrix;
pub use schedule::PanelOrder;

/// Columns per panel: two AVX-512 vectors, four AVX2 vectors (two halves of two).
pub const PANEL: usize = 32;

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
    if reads_a_in_place(b.level, a) {
        return f(&job(JobA::InPlace(a), m, k, b, out));
    }
    A_SCRATCH.with(|scratch| {
        let mut packed_a = scratch.borrow_mut();
        pack_a(a, row_blocks(b.level, m), &mut packed_a, parallel_pack);
        f(&job(JobA::Packed(&packed_a[..m * k]), m, k, b, out));
    });
}

#[cfg(test)]
mod tests {
    use super::buffer::{AlignedFloats, HUGE_PAGE};
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
                    unsafe { pack_a_part(b.level(), a, packed_ptr, w, 3) };
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
