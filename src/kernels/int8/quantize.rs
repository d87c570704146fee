//! `A`'s dynamic quantization, as ONNX Runtime's `DynamicQuantizeLinear`
//! (and its quantized LSTM and MatMul) does it at every product: one
//! scale and zero point for the whole tensor from its range, values to
//! `u8` rounded half to even; and the layout the kernels read it in.
//!
//! ONNX Runtime (`GetQuantizationParameter`, `MlasQuantizeLinear`):
//! `min = min(0, min A)`, `max = max(0, max A)`, `scale = (max − min) / 255`
//! (1 when `max = min`), `zero_point = round(clamp(0 − min / scale, 0, 255))`,
//! `q = clamp(round(a / scale) + zero_point, 0, 255)`, in `f32`, every
//! rounding half to even.

use std::sync::atomic::{AtomicU32, Ordering};

use super::blocking::GROUP;
use super::micro::Int8Kernel;
use crate::kernels::lowp::row_blocks;
use crate::kernels::matrix::MatRef;
use crate::kernels::simd::multiversion;

/// The quantization of one product's `A`: `a ≈ scale · (q − zero_point)`
/// with `q` in `u8`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AQuant {
    pub scale: f32,
    pub zero_point: u8,
}

impl AQuant {
    /// The parameters for values within `min..=max` (the range is widened
    /// to include 0, so zero is exact): ONNX's `DynamicQuantizeLinear`.
    pub fn from_range(min: f32, max: f32) -> AQuant {
        let (min, max) = (min.min(0.0), max.max(0.0));
        let scale = if max == min { 1.0 } else { (max - min) / 255.0 };
        let zero_point = (0.0 - min / scale).clamp(0.0, 255.0).round_ties_even() as u8;
        AQuant { scale, zero_point }
    }

    /// The parameters for all of `a`.
    pub fn of(a: MatRef) -> AQuant {
        let (min, max) = a_range(a, 0..a.rows());
        AQuant::from_range(min, max)
    }

    /// One value quantized: `clamp(round(x / scale) + zero_point, 0, 255)`,
    /// rounded half to even (NaN gives 0, as ONNX Runtime's kernels do).
    #[inline(always)]
    pub fn quantize(self, x: f32) -> u8 {
        ((x / self.scale).round_ties_even() + f32::from(self.zero_point)).clamp(0.0, 255.0) as u8
    }
}

/// The smallest and largest value in rows `rows` of `a` (+∞ and −∞ when
/// there is none; NaNs are skipped).
pub fn a_range(a: MatRef, rows: std::ops::Range<usize>) -> (f32, f32) {
    range_at(crate::kernels::simd::SimdLevel::detect(), a, rows)
}

multiversion!(fn range_at[level](a: MatRef, rows: std::ops::Range<usize>) -> (f32, f32) => range_kernel);

/// Lanes of the range and quantization loops.
const LANES: usize = 16;

#[inline(always)]
fn range_kernel<const FUSED: bool>(a: MatRef, rows: std::ops::Range<usize>) -> (f32, f32) {
    let mut lo = [f32::INFINITY; LANES];
    let mut hi = [f32::NEG_INFINITY; LANES];
    let (mut min, mut max) = (f32::INFINITY, f32::NEG_INFINITY);
    for i in rows {
        match a.row(i) {
            Some(row) => {
                let mut chunks = row.chunks_exact(LANES);
                for chunk in &mut chunks {
                    for l in 0..LANES {
                        lo[l] = if chunk[l] < lo[l] { chunk[l] } else { lo[l] };
                        hi[l] = if chunk[l] > hi[l] { chunk[l] } else { hi[l] };
                    }
                }
                for &v in chunks.remainder() {
                    min = min.min(v);
                    max = max.max(v);
                }
            }
            None => {
                for j in 0..a.cols() {
                    min = min.min(a.at(i, j));
                    max = max.max(a.at(i, j));
                }
            }
        }
    }
    (lo.iter().fold(min, |m, &v| m.min(v)), hi.iter().fold(max, |m, &v| m.max(v)))
}

/// A range that several workers fold their parts' ranges into (lock-free),
/// so that each can then take the whole tensor's [`AQuant`].
#[derive(Debug)]
pub struct SharedRange {
    min: AtomicU32,
    max: AtomicU32,
}

impl Default for SharedRange {
    fn default() -> Self {
        SharedRange::new()
    }
}

impl SharedRange {
    /// An empty range.
    pub fn new() -> SharedRange {
        SharedRange {
            min: AtomicU32::new(f32::INFINITY.to_bits()),
            max: AtomicU32::new(f32::NEG_INFINITY.to_bits()),
        }
    }
    /// Empties the range again (before the next product).
    pub fn reset(&mut self) {
        *self.min.get_mut() = f32::INFINITY.to_bits();
        *self.max.get_mut() = f32::NEG_INFINITY.to_bits();
    }
    /// Widens the range to include `min..=max`.
    pub fn fold(&self, (min, max): (f32, f32)) {
        let _ = self.min.fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
            (min < f32::from_bits(now)).then_some(min.to_bits())
        });
        let _ = self.max.fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
            (max > f32::from_bits(now)).then_some(max.to_bits())
        });
    }
    /// The range folded so far.
    pub fn get(&self) -> (f32, f32) {
        (
            f32::from_bits(self.min.load(Ordering::Acquire)),
            f32::from_bits(self.max.load(Ordering::Acquire)),
        )
    }
}

/// `a` quantized with [`AQuant::of`], row-major (`m · k` values): the
/// values every int8 product on `a` multiplies, in the plain layout (the
/// products write them in their kernels' layout).
pub fn quantize_a(a: MatRef) -> (AQuant, Vec<u8>) {
    let q = AQuant::of(a);
    let k = a.cols();
    let mut out = vec![0u8; a.rows() * k];
    for (i, row) in out.chunks_exact_mut(k.max(1)).enumerate().take(a.rows()) {
        quantize_row_at(crate::kernels::simd::SimdLevel::detect(), a, i, 0, q, row);
    }
    (q, out)
}

multiversion!(fn quantize_row_at[level](a: MatRef, i: usize, from: usize, q: AQuant, dst: &mut [u8]) => quantize_row_kernel);

/// Row `i` of `a` from column `from`, quantized into `dst` (as many values
/// as it holds, at most to the end of the row; zeros past it).
#[inline(always)]
fn quantize_row_kernel<const FUSED: bool>(a: MatRef, i: usize, from: usize, q: AQuant, dst: &mut [u8]) {
    let end = (from + dst.len()).min(a.cols());
    let zero_point = f32::from(q.zero_point);
    let (values, pad) = dst.split_at_mut(end.max(from) - from);
    pad.fill(0);
    match a.row(i) {
        Some(row) => {
            let src = &row[from..end];
            let mut chunks = values.chunks_exact_mut(LANES);
            let mut srcs = src.chunks_exact(LANES);
            for (d, s) in (&mut chunks).zip(&mut srcs) {
                for l in 0..LANES {
                    d[l] = ((s[l] / q.scale).round_ties_even() + zero_point).clamp(0.0, 255.0) as u8;
                }
            }
            for (d, &s) in chunks.into_remainder().iter_mut().zip(srcs.remainder()) {
                *d = q.quantize(s);
            }
        }
        None => {
            for (j, d) in values.iter_mut().enumerate() {
                *d = q.quantize(a.at(i, from + j));
            }
        }
    }
}

/// Bytes of `A` (`m x k`) quantized in the layout of `kernel`.
pub(super) fn a_len(kernel: Int8Kernel, m: usize, k: usize) -> usize {
    m * k.div_ceil(GROUP) * GROUP * kernel.a_value_bytes()
}

/// The rows of part `part` of `parts` of an `m`-row `A`: whole row blocks
/// of `kernel`, so parts are disjoint byte ranges of the quantized buffer.
pub(super) fn part_rows(kernel: Int8Kernel, m: usize, part: usize, parts: usize) -> std::ops::Range<usize> {
    let blocks: Vec<_> = row_blocks(m, kernel.mr()).collect();
    let ids = blocks.len() * part / parts..blocks.len() * (part + 1) / parts;
    if ids.is_empty() {
        let at = blocks.get(ids.start).map_or(m, |b| b.start);
        return at..at;
    }
    blocks[ids.start].start..blocks[ids.end - 1].end
}

/// Quantizes rows `rows` of `a` (whole row blocks of `kernel`) into `dst`,
/// the bytes those blocks occupy: the block of rows `r0..r1` is
/// `[groups][r1 − r0][4]` values (`u8`, or `u16` for [`Int8Kernel::Avx2`]),
/// so a kernel reads one row's group with one broadcast, the rows of a
/// block one after the other. Past `k`, zeros (the weights there are zero too).
pub(super) fn quantize_blocks(kernel: Int8Kernel, a: MatRef, q: AQuant, rows: std::ops::Range<usize>, dst: &mut [u8]) {
    let groups = a.cols().div_ceil(GROUP);
    let value_bytes = kernel.a_value_bytes();
    let row_bytes = groups * GROUP * value_bytes;
    assert_eq!(dst.len(), rows.len() * row_bytes, "quantized rows {rows:?}");
    // The buffer's row blocks, those of `rows` among them.
    for block in row_blocks(a.rows(), kernel.mr()).filter(|b| b.start >= rows.start && b.end <= rows.end) {
        let base = (block.start - rows.start) * row_bytes;
        let height = block.len();
        for (r, i) in block.clone().enumerate() {
            // 64 values at a time through a buffer on the stack, then
            // scattered by groups of 4 to the row's place in each group.
            let mut buf = [0u8; 64];
            for from in (0..groups * GROUP).step_by(buf.len()) {
                let count = (groups * GROUP - from).min(buf.len());
                quantize_row_at(kernel.level(), a, i, from, q, &mut buf[..count]);
                for (gi, four) in buf[..count].chunks_exact(GROUP).enumerate() {
                    let g = from / GROUP + gi;
                    let at = base + (g * height + r) * GROUP * value_bytes;
                    if value_bytes == 1 {
                        dst[at..at + GROUP].copy_from_slice(four);
                    } else {
                        for (d, &v) in dst[at..at + 2 * GROUP].chunks_exact_mut(2).zip(four) {
                            d.copy_from_slice(&u16::from(v).to_le_bytes());
                        }
                    }
                }
            }
        }
    }
}
