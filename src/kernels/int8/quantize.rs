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
/// products write them in their kernels' layout, by the same code).
pub fn quantize_a(a: MatRef) -> (AQuant, Vec<u8>) {
    let q = AQuant::of(a);
    let (m, k) = (a.rows(), a.cols());
    let padded = k.div_ceil(GROUP) * GROUP;
    // Blocks of one row: row-major, each row padded to whole groups.
    let mut rows = vec![0u8; m * padded];
    quantize_blocks_at(crate::kernels::simd::SimdLevel::detect(), a, q, 0..m, 1, false, &mut rows);
    let out = rows
        .chunks_exact(padded.max(1))
        .take(m)
        .flat_map(|row| &row[..k])
        .copied()
        .collect();
    (q, out)
}

/// `a` quantized at `q` into `dst`, row-major, each row padded with zeros
/// to whole groups of 4 (`m · ⌈k / 4⌉ · 4` bytes), at the widest level
/// this CPU has: the inputs of a block-sparse int8 product.
pub(crate) fn quantize_rows(a: MatRef, q: AQuant, dst: &mut [u8]) {
    assert_eq!(dst.len(), a.rows() * a.cols().div_ceil(GROUP) * GROUP, "quantized rows");
    quantize_blocks_at(crate::kernels::simd::SimdLevel::detect(), a, q, 0..a.rows(), 1, false, dst);
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
    let row_bytes = a.cols().div_ceil(GROUP) * GROUP * kernel.a_value_bytes();
    assert_eq!(dst.len(), rows.len() * row_bytes, "quantized rows {rows:?}");
    let wide = kernel.a_value_bytes() == 2;
    quantize_blocks_at(kernel.level(), a, q, rows, kernel.mr(), wide, dst);
}

multiversion!(fn quantize_blocks_at[level](a: MatRef, q: AQuant, rows: std::ops::Range<usize>, mr: usize, wide: bool, dst: &mut [u8]) => quantize_blocks_kernel);

/// Values quantized per pass: 16 groups.
const CHUNK: usize = 64;

/// [`quantize_blocks`] (`wide`: values as `u16`), one row at a time: a
/// chunk of 64 values quantized lane by lane (vectorised for the caller's
/// target features), then its 16 groups written to their places, one
/// group row of the block apart.
#[inline(always)]
fn quantize_blocks_kernel<const FUSED: bool>(a: MatRef, q: AQuant, rows: std::ops::Range<usize>, mr: usize, wide: bool, dst: &mut [u8]) {
    let k = a.cols();
    let groups = k.div_ceil(GROUP);
    let value_bytes = if wide { 2 } else { 1 };
    let row_bytes = groups * GROUP * value_bytes;
    let zero_point = f32::from(q.zero_point);
    for block in row_blocks(a.rows(), mr).filter(|b| b.start >= rows.start && b.end <= rows.end) {
        let height = block.len();
        let base = (block.start - rows.start) * row_bytes;
        assert!(base + height * row_bytes <= dst.len());
        // Bytes from one of a row's groups to its next.
        let step = height * GROUP * value_bytes;
        for (r, i) in block.enumerate() {
            let first = base + r * GROUP * value_bytes;
            let row = a.row(i);
            for g0 in (0..groups).step_by(CHUNK / GROUP) {
                let from = g0 * GROUP;
                let count = (k - from).min(CHUNK);
                // A whole chunk read in place, else copied (zeros past `k`).
                let mut copy = [0.0f32; CHUNK];
                let src: &[f32; CHUNK] = match row {
                    Some(row) if count == CHUNK => row[from..from + CHUNK].try_into().expect("a whole chunk"),
                    Some(row) => {
                        copy[..count].copy_from_slice(&row[from..from + count]);
                        &copy
                    }
                    None => {
                        for (l, v) in copy.iter_mut().enumerate().take(count) {
                            *v = a.at(i, from + l);
                        }
                        &copy
                    }
                };
                let mut values = [0u8; CHUNK];
                for l in 0..CHUNK {
                    // `max` and `min` turn a NaN into 0 (as `quantize`'s
                    // clamp and cast do), so the value is an integer in
                    // 0..=255 and converts without the checks a saturating
                    // cast would vectorise badly.
                    #[allow(clippy::manual_clamp, reason = "clamp keeps a NaN, max turns it into 0")]
                    let v = ((src[l] / q.scale).round_ties_even() + zero_point).max(0.0).min(255.0);
                    // SAFETY: `v` is finite and within i32 (above).
                    values[l] = unsafe { v.to_int_unchecked::<i32>() } as u8;
                }
                values[count..].fill(0);
                let chunk_groups = (groups - g0).min(CHUNK / GROUP);
                // SAFETY: group g of row r of the block is at `first + g ·
                // step`, `GROUP · value_bytes` bytes, inside the block
                // (asserted above).
                unsafe {
                    let out = dst.as_mut_ptr().add(first + g0 * step);
                    if wide {
                        let mut words = [0u16; CHUNK];
                        for l in 0..CHUNK {
                            words[l] = u16::from(values[l]);
                        }
                        for g in 0..chunk_groups {
                            out.add(g * step)
                                .cast::<[u16; GROUP]>()
                                .write_unaligned(words[g * GROUP..][..GROUP].try_into().expect("a group"));
                        }
                    } else {
                        for g in 0..chunk_groups {
                            out.add(g * step)
                                .cast::<[u8; GROUP]>()
                                .write_unaligned(values[g * GROUP..][..GROUP].try_into().expect("a group"));
                        }
                    }
                }
            }
        }
    }
}
