//! bf16 and int8 values in a block-sparse matrix. Each stored 32-bit word
//! holds the weights one `vdpbf16ps` or `vpdpbusd` lane multiplies: two
//! bf16 weights or four s8 weights of consecutive columns of one block
//! row (the first column in the low bits). A block of `r x c` is then a
//! block of `r x ⌈c / 2⌉` or `r x ⌈c / 4⌉` words, and the fp32 layouts,
//! batching and kernel template run on words unchanged: only the
//! multiply-add, the horizontal sums and the final write differ
//! ([`Arith`]). The inputs are rounded (bf16) or quantized (int8, one
//! scale and zero point per product, as the dense int8 kernels and ONNX
//! Runtime do) into the same words, each block column padded to whole
//! words with zeros; int8 weights have one scale per row of `W`, and the
//! `i32` sums are dequantized as the dense int8 kernels do it.

use super::super::bf16::{from_bf16, round_rows, to_bf16};
use super::super::int8::{AQuant, quantize_rows, quantize_weight, weight_scale};
use super::super::matrix::MatRef;
use super::super::simd::{SimdLevel, has_avx512_bf16, has_avx512_vnni};
use crate::precision::Precision;

/// How a product multiplies a matrix's words, resolved when it is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Arith {
    /// One f32 weight per word, fused multiply-adds.
    F32,
    /// Two bf16 weights per word, f32 sums: `vdpbf16ps` with `dot` (AVX-512
    /// BF16 and VL), otherwise widened to f32 (AVX2 fused multiply-adds,
    /// or plain Rust).
    Bf16 { dot: bool },
    /// Four s8 weights per word against u8 inputs, `i32` sums: `vpdpbusd`
    /// with `dot` (AVX-512 VNNI and VL), otherwise widened to i16 and
    /// summed by `vpmaddwd` (AVX2), or plain Rust.
    Int8 { dot: bool },
}

impl Arith {
    /// The arithmetic of `precision`'s products at `level` (already capped
    /// at the CPU's), and the level the layout is chosen for: bf16 and
    /// int8 take the 512-bit layouts only with their dot-product
    /// instructions, and otherwise the AVX2 ones.
    pub(super) fn choose(precision: Precision, level: SimdLevel) -> (Arith, SimdLevel) {
        let avx2 = cfg!(target_arch = "x86_64") && level >= SimdLevel::Avx2Fma;
        let wide = level == SimdLevel::Avx512 && has_avx512_vl();
        let narrowed = if avx2 { SimdLevel::Avx2Fma } else { SimdLevel::Portable };
        match precision {
            Precision::Fp32 => (Arith::F32, level),
            Precision::Bf16 if wide && has_avx512_bf16() => (Arith::Bf16 { dot: true }, SimdLevel::Avx512),
            Precision::Bf16 => (Arith::Bf16 { dot: false }, narrowed),
            Precision::Int8 if wide && has_avx512_vnni() => (Arith::Int8 { dot: true }, SimdLevel::Avx512),
            Precision::Int8 => (Arith::Int8 { dot: false }, narrowed),
        }
    }

    /// The precision of the values.
    pub(super) fn precision(self) -> Precision {
        match self {
            Arith::F32 => Precision::Fp32,
            Arith::Bf16 { .. } => Precision::Bf16,
            Arith::Int8 { .. } => Precision::Int8,
        }
    }

    /// Weights (and inputs) per 32-bit word.
    pub(super) fn per_word(self) -> usize {
        match self {
            Arith::F32 => 1,
            Arith::Bf16 { .. } => 2,
            Arith::Int8 { .. } => 4,
        }
    }

    /// Bits of one value in a word.
    fn bits(self) -> u32 {
        32 / self.per_word() as u32
    }

    /// `v`, the `t`-th value of a word, in its place (int8: quantized at
    /// the row's `scale`).
    pub(super) fn encode(self, v: f32, t: usize, scale: f32) -> u32 {
        let bits = match self {
            Arith::F32 => v.to_bits(),
            Arith::Bf16 { .. } => u32::from(to_bf16(v)),
            Arith::Int8 { .. } => u32::from(quantize_weight(v, scale) as u8),
        };
        bits << (self.bits() * t as u32)
    }

    /// The weight the `t`-th value of `word` stands for (int8: at the
    /// row's `scale`).
    pub(super) fn decode(self, word: u32, t: usize, scale: f32) -> f32 {
        let v = word >> (self.bits() * t as u32);
        match self {
            Arith::F32 => f32::from_bits(v),
            Arith::Bf16 { .. } => from_bf16(v as u16),
            Arith::Int8 { .. } => f32::from(v as u8 as i8) * scale,
        }
    }
}

/// Whether the CPU has AVX-512 VL (the 256- and 128-bit forms of the dot
/// products).
fn has_avx512_vl() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx512vl");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Each row's int8 scale (`w ≈ scale · q`, symmetric, from the row's
/// largest magnitude, as the dense int8 weights) and its sum of quantized
/// weights (for the inputs' zero point).
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct RowScales {
    pub scales: Vec<f32>,
    pub sums: Vec<i32>,
}

impl RowScales {
    /// Row `row`'s scale (1 where the matrix has no int8 scales).
    pub(super) fn scale(&self, row: usize) -> f32 {
        self.scales.get(row).copied().unwrap_or(1.0)
    }

    /// The scales and sums of the row-major `rows x cols` matrix `w`.
    pub(super) fn of(w: &[f32], rows: usize, cols: usize) -> RowScales {
        let (mut scales, mut sums) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
        for row in w.chunks_exact(cols.max(1)).take(rows) {
            let scale = weight_scale(row.iter().fold(0.0f32, |m, &v| m.max(v.abs())));
            scales.push(scale);
            sums.push(row.iter().map(|&v| i32::from(quantize_weight(v, scale))).sum());
        }
        scales.resize(rows, 1.0);
        sums.resize(rows, 0);
        RowScales { scales, sums }
    }
}

/// How one product's `i32` sums become outputs: `(a_scale · scale_r) ·
/// (sum − zero_point · sum_r)` for row `r`, the difference wrapping (it is
/// exact) and converted to f32, as the dense int8 kernels do it (so that
/// both give the same bits on the same pruned weights).
#[derive(Debug, Clone, Copy)]
pub(super) struct RowDequant<'a> {
    pub a_scale: f32,
    pub zero_point: i32,
    pub rows: &'a RowScales,
}

impl RowDequant<'_> {
    /// Rows `r0 ..` of one entry: the `i32` sums held in `sums`' bits
    /// replaced by their outputs.
    #[inline]
    pub(super) fn dequantize(&self, r0: usize, sums: &mut [f32]) {
        let rows = r0..r0 + sums.len();
        for ((s, &scale), &row_sum) in sums.iter_mut().zip(&self.rows.scales[rows.clone()]).zip(&self.rows.sums[rows]) {
            let t = (s.to_bits() as i32).wrapping_sub(self.zero_point.wrapping_mul(row_sum)) as f32;
            *s = (self.a_scale * scale) * t;
        }
    }
}

/// `X` (`batch x cols`) in words for blocks of `c` columns held in
/// `words` words each: row `b` of `out` holds, block column by block
/// column, the column's `c` inputs rounded (bf16) or quantized (int8, at
/// the returned parameters, one scale and zero point for all of `X`) and
/// zeros up to whole words. `out` holds `batch · ⌈cols / c⌉ · words`
/// words (as f32 bits).
pub(super) fn inputs_to_words(arith: Arith, x: MatRef, c: usize, words: usize, out: &mut [f32]) -> Option<AQuant> {
    let (batch, cols) = (x.rows(), x.cols());
    let row_words = cols.div_ceil(c) * words;
    assert!(arith != Arith::F32 && out.len() == batch * row_words);
    let quant = matches!(arith, Arith::Int8 { .. }).then(|| AQuant::of(x));
    let per = arith.per_word();
    if c.is_multiple_of(per) && cfg!(target_endian = "little") {
        // Blocks of whole words: each row is its inputs in order, padded
        // to whole words and then to whole blocks (the vectorised
        // conversions of the dense kernels).
        let packed_words = cols.div_ceil(per);
        if row_words == packed_words {
            convert_rows(quant, x, out);
        } else {
            for (b, row) in out.chunks_exact_mut(row_words).enumerate() {
                let (values, padding) = row.split_at_mut(packed_words);
                let one = MatRef::new(&x.data()[b * x.row_stride()..], 1, cols, x.row_stride(), x.col_stride());
                convert_rows(quant, one, values);
                padding.fill(0.0);
            }
        }
        return quant;
    }
    for (b, row) in out.chunks_exact_mut(row_words.max(1)).take(batch).enumerate() {
        for (bc, block) in row.chunks_exact_mut(words).enumerate() {
            let c0 = bc * c;
            let width = c.min(cols - c0);
            for (jw, word) in block.iter_mut().enumerate() {
                let mut bits = 0u32;
                for t in 0..per.min(width.saturating_sub(jw * per)) {
                    let v = x.at(b, c0 + jw * per + t);
                    let q = match quant {
                        Some(q) => u32::from(q.quantize(v)),
                        None => u32::from(to_bf16(v)),
                    };
                    bits |= q << (arith.bits() * t as u32);
                }
                *word = f32::from_bits(bits);
            }
        }
    }
    quant
}

/// `x` rounded (`quant` none) or quantized into `out`, rows of whole words
/// (a little-endian word holds its values first in the low bits, as
/// [`Arith::encode`] puts them).
fn convert_rows(quant: Option<AQuant>, x: MatRef, out: &mut [f32]) {
    let bytes = std::mem::size_of_val(out);
    // SAFETY: the words' bytes, as bytes or as u16 (f32 is 4-aligned, and
    // every bit pattern is a valid f32, u16 and u8).
    match quant {
        Some(q) => quantize_rows(x, q, unsafe {
            std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u8>(), bytes)
        }),
        None => round_rows(x, unsafe {
            std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u16>(), bytes / 2)
        }),
    }
}
