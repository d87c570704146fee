//! An int8 GEMM for fixed weights with dynamic quantization of the
//! activations, as ONNX Runtime's quantized LSTM and `DynamicQuantizeMatMul`
//! run: `B` (the weights) is quantized once, at prepare time, to `s8`
//! with one scale per output column (symmetric, zero point 0); `A` is
//! quantized at every product to `u8` with one scale and zero point for
//! the whole tensor, from its range; the products sum in `i32`, and
//!
//! `C = start + a_scale · scale_j · (Σ_p qa_ip · qb_pj − zero_point · Σ_p qb_pj)`
//!
//! with `start` zero, `C` itself or a bias row ([`Start`], as in the fp32
//! packed family). Laid out like `kernels::packed`:
//!
//! - [`panel`]: `B` quantized and packed into 32-column panels of groups
//!   of 4 steps (one 32-bit lane per column, as `vpdpbusd` reads it), for
//!   the kernels resolved when it is packed ([`Int8Kernel`]);
//! - [`quantize`]: `A`'s range, scale and zero point, and its quantization
//!   into the kernels' layout (row blocks of `[k / 4][rows][4]`);
//! - [`blocking`]: the constants; [`schedule`]: a product's calls;
//! - [`micro`]: the kernel trait, a call's tile and the dequantization;
//!   one file per instruction set: [`avx512`] (AVX-512 VNNI), [`avxvnni`]
//!   (AVX-VNNI), [`avx2`] (`vpmaddwd` on widened values), [`portable`].
//!
//! Every kernel computes the same `i32` sums exactly and dequantizes them
//! with the same `f32` operations, so the results do not depend on the
//! instruction set. Work is split over panels, by rayon ([`int8_gemm`]) or
//! by the caller's workers ([`int8_gemm_claimed`] and the crate's
//! `int8_gemm_claimed_from` / `int8_gemm_claimed_prepacked`).

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod avxvnni;
mod blocking;
mod micro;
mod panel;
mod portable;
mod quantize;
mod schedule;

use rayon::prelude::*;

use super::lowp::{Out, SharedParts, panels_of, run_claims, run_parallel};
use super::matrix::{MatMut, MatRef};
use super::packed::{PANEL, PanelOrder, SharedOutput, Start};
use blocking::{MIN_CLAIMED_PANELS, PARALLEL_MIN_MACS, PARALLEL_QUANTIZE_MIN};
use schedule::{Job, QuantizedA};

pub(crate) use blocking::MAX_K;
pub use micro::Int8Kernel;
pub use panel::Int8PackedMatrix;
pub(crate) use panel::{quantize_weight, weight_scale};
pub(crate) use quantize::quantize_rows;
pub use quantize::{AQuant, SharedRange, a_range, quantize_a};

/// `C = A · B` or `C += A · B` with `B` quantized and packed, `A` quantized
/// on the way. `A` and `C` may have any strides. Panics on shape mismatch.
pub fn int8_gemm(a: MatRef, b: &Int8PackedMatrix, c: &mut MatMut, accumulate: bool) {
    run(a, b, Out::of_mat(c, Start::accumulate(accumulate)));
}

/// `C = bias + A · B`, `bias` (one value per column of `C`) added to every
/// row. Panics on shape mismatch, or when `bias` is not `B`'s width.
pub fn int8_gemm_bias(a: MatRef, b: &Int8PackedMatrix, bias: &[f32], c: &mut MatMut) {
    assert_eq!(bias.len(), b.n, "int8_gemm_bias: {} bias values for {} columns", bias.len(), b.n);
    run(a, b, Out::of_mat(c, Start::bias(bias)));
}

fn run(a: MatRef, b: &Int8PackedMatrix, out: Out) {
    check_shapes(a, b, out.rows, out.cols);
    let (m, k, n) = (a.rows(), a.cols(), b.n);
    if m == 0 || n == 0 {
        return;
    }
    let macs = m * n * k;
    let parallel = macs >= PARALLEL_MIN_MACS && rayon::current_num_threads() > 1;
    with_quantized(a, b, parallel, |qa| {
        let job = Job::new(qa, b, out);
        run_parallel(macs, panels_of(n), PARALLEL_MIN_MACS, MIN_CLAIMED_PANELS, |range| {
            job.run_panels(range, PanelOrder::Ascending)
        });
    });
}

/// `C (+)= A · B` for panels handed out one chunk at a time (the
/// per-worker piece of a product split over a team of workers, as
/// `kernels::packed_gemm_claimed`): `A` is quantized once, on this thread
/// (each worker quantizes all of `A` for itself: fine for a recurrent
/// step's few rows, see [`quantize_a_part`] for a large `A`), then for
/// every range of panels `claim` returns, `C (+)= A · B` over those
/// panels (run in `order`), followed by `done(range)`, until `claim`
/// returns `None`. Every worker computes the same quantization of `A`, so
/// the product is the same however its panels are shared out.
///
/// # Safety
/// While this runs, no other thread may read or write the columns of `c`
/// that belong to the claimed panels.
pub unsafe fn int8_gemm_claimed(
    a: MatRef,
    b: &Int8PackedMatrix,
    c: SharedOutput,
    accumulate: bool,
    order: PanelOrder,
    claim: impl FnMut() -> Option<std::ops::Range<usize>>,
    done: impl FnMut(std::ops::Range<usize>),
) {
    // SAFETY: forwarded from the caller.
    unsafe { claimed_product(a, b, c, Start::accumulate(accumulate), order, claim, done) }
}

/// [`int8_gemm_claimed`] with `C` starting from `start`, panels ascending.
///
/// # Safety
/// As [`int8_gemm_claimed`]; a [`Start::Row`] must point at `c.cols`
/// floats that stay unchanged meanwhile.
pub(crate) unsafe fn int8_gemm_claimed_from(
    a: MatRef,
    b: &Int8PackedMatrix,
    c: SharedOutput,
    start: Start,
    claim: impl FnMut() -> Option<std::ops::Range<usize>>,
    done: impl FnMut(std::ops::Range<usize>),
) {
    // SAFETY: forwarded from the caller.
    unsafe { claimed_product(a, b, c, start, PanelOrder::Ascending, claim, done) }
}

/// # Safety
/// As [`int8_gemm_claimed_from`].
unsafe fn claimed_product(
    a: MatRef,
    b: &Int8PackedMatrix,
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
    with_quantized(a, b, false, |qa| {
        let job = Job::new(qa, b, out);
        run_claims(out.cols, Some(|range| job.run_panels(range, order)), claim, done);
    });
}

/// Bytes of the buffer that [`quantize_a_part`] quantizes an `m`-row `A`
/// into, for products with `b`.
pub fn quantized_a_len(b: &Int8PackedMatrix, m: usize) -> usize {
    quantize::a_len(b.kernel, m, b.k)
}

/// Rows of `A` (of `m`) that part `part` of `parts` covers in
/// [`quantize_a_part`]: whole row blocks of `b`'s kernels, possibly none.
/// Their range ([`a_range`]) is what the part contributes to `A`'s
/// [`SharedRange`].
pub fn a_part_rows(b: &Int8PackedMatrix, m: usize, part: usize, parts: usize) -> std::ops::Range<usize> {
    assert!(part < parts, "part {part} of {parts}");
    quantize::part_rows(b.kernel, m, part, parts)
}

/// Quantizes part `part` of `parts` of `A` ([`a_part_rows`]) with `quant`
/// (the whole `A`'s: [`AQuant::from_range`] of the range the parts folded
/// into a [`SharedRange`]) into `dst`, the buffer (of [`quantized_a_len`]
/// bytes) that the workers of a team share: each quantizes its part, and
/// after a barrier all of them run `int8_gemm_claimed_prepacked` on it.
/// For an input projection over all of a sequence's rows, where quantizing
/// `A` once per worker would repeat a pass over a large `A`.
///
/// # Safety
/// `dst` must be valid for `quantized_a_len(b, a.rows())` bytes that
/// nothing else reads or writes meanwhile but the other parts'
/// quantization, and the parts of one `A` must all use the same `parts`.
pub unsafe fn quantize_a_part(b: &Int8PackedMatrix, a: MatRef, quant: AQuant, dst: SharedParts<u8>, part: usize, parts: usize) {
    assert_eq!(a.cols(), b.k, "quantize_a_part: A has {} columns, B {} rows", a.cols(), b.k);
    let rows = a_part_rows(b, a.rows(), part, parts);
    let row_bytes = quantize::a_len(b.kernel, 1, b.k);
    // SAFETY: the part's row blocks are its own byte range of `dst`
    // (blocks lie one after the other, `row_bytes` per row), inside the buffer.
    let dst = unsafe { std::slice::from_raw_parts_mut(dst.0.add(rows.start * row_bytes), rows.len() * row_bytes) };
    quantize::quantize_blocks(b.kernel, a, quant, rows, dst);
}

/// [`int8_gemm_claimed_from`] with `A` (`m` rows) already quantized into
/// `quantized` by [`quantize_a_part`] (all parts) with `quant`.
///
/// # Safety
/// As [`int8_gemm_claimed_from`].
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn int8_gemm_claimed_prepacked(
    quantized: &[u8],
    m: usize,
    quant: AQuant,
    b: &Int8PackedMatrix,
    c: SharedOutput,
    start: Start,
    claim: impl FnMut() -> Option<std::ops::Range<usize>>,
    done: impl FnMut(std::ops::Range<usize>),
) {
    assert_eq!(quantized.len(), quantized_a_len(b, m), "quantized A of {m} rows");
    let out = Out::of_shared(c, start);
    assert_eq!(out.rows, m, "int8_gemm: C has {} rows, A {m}", out.rows);
    assert_eq!(out.cols, b.n, "int8_gemm: C has {} columns, B {}", out.cols, b.n);
    if m == 0 || out.cols == 0 {
        return run_claims(out.cols, None::<fn(std::ops::Range<usize>)>, claim, done);
    }
    let job = Job::new(QuantizedA { data: quantized, m, quant }, b, out);
    run_claims(out.cols, Some(|range| job.run_panels(range, PanelOrder::Ascending)), claim, done);
}

fn check_shapes(a: MatRef, b: &Int8PackedMatrix, c_rows: usize, c_cols: usize) {
    let (m, k, n) = (a.rows(), a.cols(), b.n);
    assert_eq!(k, b.k, "int8_gemm: A is {m}x{k} but B has {} rows", b.k);
    assert!(c_rows == m && c_cols == n, "int8_gemm: C is {c_rows}x{c_cols}, expected {m}x{n}");
}

thread_local! {
    /// Quantized `A`, reused between calls so steady-state products do not allocate.
    static A_SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Hands `f` `A` quantized for `b`'s kernels, in this thread's scratch
/// (a fresh buffer where a product on this thread already holds it). With
/// `parallel`, a large `A`'s range and quantization run on the rayon pool.
fn with_quantized<R>(a: MatRef, b: &Int8PackedMatrix, parallel: bool, f: impl FnOnce(QuantizedA) -> R) -> R {
    let m = a.rows();
    let len = quantized_a_len(b, m);
    let parallel = parallel && m * a.cols() >= PARALLEL_QUANTIZE_MIN;
    let quantize = |buf: &mut Vec<u8>| {
        if buf.len() < len {
            buf.resize(len, 0);
        }
        let dst = SharedParts::new(&mut buf[..len]);
        if !parallel {
            let quant = AQuant::of(a);
            // SAFETY: one part, all of `buf`'s `len` bytes.
            unsafe { quantize_a_part(b, a, quant, dst, 0, 1) };
            return quant;
        }
        let parts = 4 * rayon::current_num_threads();
        let range = (0..parts)
            .into_par_iter()
            .with_max_len(1)
            .map(|part| a_range(a, a_part_rows(b, m, part, parts)))
            .reduce(|| (f32::INFINITY, f32::NEG_INFINITY), |x, y| (x.0.min(y.0), x.1.max(y.1)));
        let quant = AQuant::from_range(range.0, range.1);
        (0..parts).into_par_iter().with_max_len(1).for_each(|part| {
            // SAFETY: the parts are disjoint ranges of `buf`, which holds
            // `len` bytes and outlives the loop.
            unsafe { quantize_a_part(b, a, quant, dst, part, parts) }
        });
        quant
    };
    A_SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut buf) => {
            let quant = quantize(&mut buf);
            f(QuantizedA {
                data: &buf[..len],
                m,
                quant,
            })
        }
        Err(_) => {
            let mut buf = Vec::new();
            let quant = quantize(&mut buf);
            f(QuantizedA {
                data: &buf[..len],
                m,
                quant,
            })
        }
    })
}

#[cfg(test)]
mod tests;
