//! A bf16 GEMM for fixed weights: `B` (the weights) is rounded to bf16
//! once, at prepare time; `A` is rounded to bf16 at every product; the
//! products of two bf16 values (exact in f32) are summed in f32, starting
//! from `C`, a bias row or zero ([`Start`], as in the fp32 packed family).
//! Laid out like `kernels::packed`:
//!
//! - [`panel`]: `B` rounded and packed into 32-column panels of pairs of
//!   steps (one 32-bit lane per column, as `vdpbf16ps` reads it), for the
//!   kernels resolved when it is packed ([`Bf16Kernel`]);
//! - [`convert`]: f32 to bf16 (to nearest, ties to even), and `A` rounded
//!   into the kernels' layout (row blocks of `[k / 2][rows][2]`);
//! - [`blocking`]: the constants; [`schedule`]: a product's calls;
//! - [`micro`]: the kernel trait and a call's tile; one file per
//!   instruction set: [`avx512`] (`vdpbf16ps`), [`avx512f`] and [`avx2`]
//!   (bf16 widened to f32, fused multiply-adds, where the CPU lacks
//!   AVX512_BF16), [`portable`].
//!
//! Work is split over panels, by rayon ([`bf16_gemm`]) or by the caller's
//! workers ([`bf16_gemm_claimed`] and the crate's `bf16_gemm_claimed_from`
//! / `bf16_gemm_claimed_prepacked`).

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod avx512f;
mod blocking;
mod convert;
mod micro;
mod panel;
mod portable;
mod schedule;

use rayon::prelude::*;

use super::lowp::{Out, SharedParts, panels_of, run_claims, run_parallel};
use super::matrix::{MatMut, MatRef};
use super::packed::{PANEL, PanelOrder, SharedOutput, Start};
use blocking::{MIN_CLAIMED_PANELS, PARALLEL_MIN_MACS, PARALLEL_ROUND_MIN};
use schedule::Job;

pub(crate) use convert::round_rows;
pub use convert::{from_bf16, to_bf16};
pub use micro::Bf16Kernel;
pub use panel::Bf16PackedMatrix;

/// `C = A · B` or `C += A · B` with `B` rounded and packed, `A` rounded on
/// the way. `A` and `C` may have any strides. Panics on shape mismatch.
pub fn bf16_gemm(a: MatRef, b: &Bf16PackedMatrix, c: &mut MatMut, accumulate: bool) {
    run(a, b, Out::of_mat(c, Start::accumulate(accumulate)));
}

/// `C = bias + A · B`, `bias` (one value per column of `C`) added to every
/// row (the sums start from it). Panics on shape mismatch, or when `bias`
/// is not `B`'s width.
pub fn bf16_gemm_bias(a: MatRef, b: &Bf16PackedMatrix, bias: &[f32], c: &mut MatMut) {
    assert_eq!(bias.len(), b.n, "bf16_gemm_bias: {} bias values for {} columns", bias.len(), b.n);
    run(a, b, Out::of_mat(c, Start::bias(bias)));
}

fn run(a: MatRef, b: &Bf16PackedMatrix, out: Out) {
    check_shapes(a, b, out.rows, out.cols);
    let (m, k, n) = (a.rows(), a.cols(), b.n);
    if m == 0 || n == 0 {
        return;
    }
    let macs = m * n * k;
    let parallel = macs >= PARALLEL_MIN_MACS && rayon::current_num_threads() > 1;
    with_rounded(a, b, parallel, |rounded| {
        let job = Job::new(rounded, m, b, out);
        run_parallel(macs, panels_of(n), PARALLEL_MIN_MACS, MIN_CLAIMED_PANELS, |range| {
            job.run_panels(range, PanelOrder::Ascending)
        });
    });
}

/// `C (+)= A · B` for panels handed out one chunk at a time (the
/// per-worker piece of a product split over a team of workers, as
/// `kernels::packed_gemm_claimed`): `A` is rounded once, on this thread
/// (each worker rounds all of `A` for itself: fine for a recurrent step's
/// few rows, see [`round_a_part`] for a large `A`), then for every range of
/// panels `claim` returns, `C (+)= A · B` over those panels (run in
/// `order`), followed by `done(range)`, until `claim` returns `None`.
///
/// # Safety
/// While this runs, no other thread may read or write the columns of `c`
/// that belong to the claimed panels.
pub unsafe fn bf16_gemm_claimed(
    a: MatRef,
    b: &Bf16PackedMatrix,
    c: SharedOutput,
    accumulate: bool,
    order: PanelOrder,
    claim: impl FnMut() -> Option<std::ops::Range<usize>>,
    done: impl FnMut(std::ops::Range<usize>),
) {
    // SAFETY: forwarded from the caller.
    unsafe { claimed_product(a, b, c, Start::accumulate(accumulate), order, claim, done) }
}

/// [`bf16_gemm_claimed`] with `C` starting from `start`, panels ascending.
///
/// # Safety
/// As [`bf16_gemm_claimed`]; a [`Start::Row`] must point at `c.cols`
/// floats that stay unchanged meanwhile.
pub(crate) unsafe fn bf16_gemm_claimed_from(
    a: MatRef,
    b: &Bf16PackedMatrix,
    c: SharedOutput,
    start: Start,
    claim: impl FnMut() -> Option<std::ops::Range<usize>>,
    done: impl FnMut(std::ops::Range<usize>),
) {
    // SAFETY: forwarded from the caller.
    unsafe { claimed_product(a, b, c, start, PanelOrder::Ascending, claim, done) }
}

/// # Safety
/// As [`bf16_gemm_claimed_from`].
unsafe fn claimed_product(
    a: MatRef,
    b: &Bf16PackedMatrix,
    c: SharedOutput,
    start: Start,
    order: PanelOrder,
    claim: impl FnMut() -> Option<std::ops::Range<usize>>,
    done: impl FnMut(std::ops::Range<usize>),
) {
    let out = Out::of_shared(c, start);
    check_shapes(a, b, out.rows, out.cols);
    if a.rows() == 0 || out.cols == 0 {
        return run_claims(out.cols, None::<fn(std::ops::Range<usize>)>, claim, done);
    }
    with_rounded(a, b, false, |rounded| {
        let job = Job::new(rounded, a.rows(), b, out);
        run_claims(out.cols, Some(|range| job.run_panels(range, order)), claim, done);
    });
}

/// Values (`u16`) of the buffer that [`round_a_part`] rounds an `m`-row
/// `A` into, for products with `b`.
pub fn rounded_a_len(b: &Bf16PackedMatrix, m: usize) -> usize {
    convert::a_len(m, b.k)
}

/// Rows of `A` (of `m`) that part `part` of `parts` covers in
/// [`round_a_part`]: whole row blocks of `b`'s kernels, possibly none.
pub fn a_part_rows(b: &Bf16PackedMatrix, m: usize, part: usize, parts: usize) -> std::ops::Range<usize> {
    assert!(part < parts, "part {part} of {parts}");
    convert::part_rows(b.kernel, m, part, parts)
}

/// Rounds part `part` of `parts` of `A` ([`a_part_rows`]) into `dst`, the
/// buffer (of [`rounded_a_len`] values) that the workers of a team share:
/// each rounds its part, and after a barrier all of them run
/// `bf16_gemm_claimed_prepacked` on it (an input projection over all of a
/// sequence's rows, where rounding `A` once per worker would repeat a pass
/// over a large `A`).
///
/// # Safety
/// `dst` must be valid for `rounded_a_len(b, a.rows())` values that
/// nothing else reads or writes meanwhile but the other parts' rounding,
/// and the parts of one `A` must all use the same `parts`.
pub unsafe fn round_a_part(b: &Bf16PackedMatrix, a: MatRef, dst: SharedParts<u16>, part: usize, parts: usize) {
    assert_eq!(a.cols(), b.k, "round_a_part: A has {} columns, B {} rows", a.cols(), b.k);
    let rows = a_part_rows(b, a.rows(), part, parts);
    let row_len = convert::a_len(1, b.k);
    // SAFETY: the part's row blocks are its own range of `dst` (blocks lie
    // one after the other, `row_len` values per row), inside the buffer.
    let dst = unsafe { std::slice::from_raw_parts_mut(dst.0.add(rows.start * row_len), rows.len() * row_len) };
    convert::round_blocks(b.kernel, a, rows, dst);
}

/// [`bf16_gemm_claimed_from`] with `A` (`m` rows) already rounded into
/// `rounded` by [`round_a_part`] (all parts).
///
/// # Safety
/// As [`bf16_gemm_claimed_from`].
pub(crate) unsafe fn bf16_gemm_claimed_prepacked(
    rounded: &[u16],
    m: usize,
    b: &Bf16PackedMatrix,
    c: SharedOutput,
    start: Start,
    claim: impl FnMut() -> Option<std::ops::Range<usize>>,
    done: impl FnMut(std::ops::Range<usize>),
) {
    assert_eq!(rounded.len(), rounded_a_len(b, m), "rounded A of {m} rows");
    let out = Out::of_shared(c, start);
    assert_eq!(out.rows, m, "bf16_gemm: C has {} rows, A {m}", out.rows);
    assert_eq!(out.cols, b.n, "bf16_gemm: C has {} columns, B {}", out.cols, b.n);
    if m == 0 || out.cols == 0 {
        return run_claims(out.cols, None::<fn(std::ops::Range<usize>)>, claim, done);
    }
    let job = Job::new(rounded, m, b, out);
    run_claims(out.cols, Some(|range| job.run_panels(range, PanelOrder::Ascending)), claim, done);
}

fn check_shapes(a: MatRef, b: &Bf16PackedMatrix, c_rows: usize, c_cols: usize) {
    let (m, k, n) = (a.rows(), a.cols(), b.n);
    assert_eq!(k, b.k, "bf16_gemm: A is {m}x{k} but B has {} rows", b.k);
    assert!(c_rows == m && c_cols == n, "bf16_gemm: C is {c_rows}x{c_cols}, expected {m}x{n}");
}

thread_local! {
    /// Rounded `A`, reused between calls so steady-state products do not allocate.
    static A_SCRATCH: std::cell::RefCell<Vec<u16>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Hands `f` `A` rounded for `b`'s kernels, in this thread's scratch (a
/// fresh buffer where a product on this thread already holds it). With
/// `parallel`, a large `A` is rounded on the rayon pool.
fn with_rounded<R>(a: MatRef, b: &Bf16PackedMatrix, parallel: bool, f: impl FnOnce(&[u16]) -> R) -> R {
    let m = a.rows();
    let len = rounded_a_len(b, m);
    let parallel = parallel && m * a.cols() >= PARALLEL_ROUND_MIN;
    let round = |buf: &mut Vec<u16>| {
        if buf.len() < len {
            buf.resize(len, 0);
        }
        let dst = SharedParts::new(&mut buf[..len]);
        let parts = if parallel { 4 * rayon::current_num_threads() } else { 1 };
        let one = |part| {
            // SAFETY: the parts are disjoint ranges of `buf`, which holds
            // `len` values and outlives the loop.
            unsafe { round_a_part(b, a, dst, part, parts) }
        };
        if parallel {
            (0..parts).into_par_iter().with_max_len(1).for_each(one);
        } else {
            one(0);
        }
    };
    A_SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut buf) => {
            round(&mut buf);
            f(&buf[..len])
        }
        Err(_) => {
            let mut buf = Vec::new();
            round(&mut buf);
            f(&buf[..len])
        }
    })
}

#[cfg(test)]
mod tests;
