//! f32 to bf16 and back, and `A` rounded into the layout the kernels read.

use super::blocking::PAIR;
use super::micro::Bf16Kernel;
use crate::kernels::lowp::row_blocks;
use crate::kernels::matrix::MatRef;
use crate::kernels::simd::multiversion;

/// `x` rounded to bf16, to nearest with ties to even (the upper 16 bits of
/// an f32); a NaN stays a (quiet) NaN. Subnormals are rounded like any
/// other value, not flushed.
#[inline(always)]
pub fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x0040) as u16;
    }
    ((bits + 0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

/// The f32 a bf16 value stands for (exact).
#[inline(always)]
pub fn from_bf16(v: u16) -> f32 {
    f32::from_bits(u32::from(v) << 16)
}

/// Values (`u16`) of `A` (`m x k`) rounded in the kernels' layout.
pub(super) fn a_len(m: usize, k: usize) -> usize {
    m * k.div_ceil(PAIR) * PAIR
}

/// The rows of part `part` of `parts` of an `m`-row `A`: whole row blocks
/// of `kernel`, so parts are disjoint ranges of the rounded buffer.
pub(super) fn part_rows(kernel: Bf16Kernel, m: usize, part: usize, parts: usize) -> std::ops::Range<usize> {
    let blocks: Vec<_> = row_blocks(m, kernel.mr()).collect();
    let ids = blocks.len() * part / parts..blocks.len() * (part + 1) / parts;
    if ids.is_empty() {
        let at = blocks.get(ids.start).map_or(m, |b| b.start);
        return at..at;
    }
    blocks[ids.start].start..blocks[ids.end - 1].end
}

multiversion!(fn round_row_at[level](a: MatRef, i: usize, from: usize, dst: &mut [u16]) => round_row_kernel);

/// Row `i` of `a` from column `from`, rounded into `dst` (as many values
/// as it holds, at most to the end of the row; zeros past it).
#[inline(always)]
fn round_row_kernel<const FUSED: bool>(a: MatRef, i: usize, from: usize, dst: &mut [u16]) {
    let end = (from + dst.len()).min(a.cols());
    let (values, pad) = dst.split_at_mut(end.max(from) - from);
    pad.fill(0);
    match a.row(i) {
        Some(row) => {
            for (d, &s) in values.iter_mut().zip(&row[from..end]) {
                *d = to_bf16(s);
            }
        }
        None => {
            for (j, d) in values.iter_mut().enumerate() {
                *d = to_bf16(a.at(i, from + j));
            }
        }
    }
}

/// Rounds rows `rows` of `a` (whole row blocks of `kernel`) into `dst`,
/// the values those blocks occupy: the block of rows `r0..r1` is
/// `[k / 2][r1 − r0][2]`, so a kernel reads one row's pair with one 32-bit
/// broadcast, the rows of a block one after the other. Past `k`, zeros.
pub(super) fn round_blocks(kernel: Bf16Kernel, a: MatRef, rows: std::ops::Range<usize>, dst: &mut [u16]) {
    let pairs = a.cols().div_ceil(PAIR);
    let row_len = pairs * PAIR;
    assert_eq!(dst.len(), rows.len() * row_len, "rounded rows {rows:?}");
    for block in row_blocks(a.rows(), kernel.mr()).filter(|b| b.start >= rows.start && b.end <= rows.end) {
        let base = (block.start - rows.start) * row_len;
        let height = block.len();
        for (r, i) in block.clone().enumerate() {
            // 64 values at a time through a buffer on the stack, then
            // scattered by pairs to the row's place in each pair row.
            let mut buf = [0u16; 64];
            for from in (0..row_len).step_by(buf.len()) {
                let count = (row_len - from).min(buf.len());
                round_row_at(kernel.level(), a, i, from, &mut buf[..count]);
                for (gi, pair) in buf[..count].chunks_exact(PAIR).enumerate() {
                    let at = base + ((from / PAIR + gi) * height + r) * PAIR;
                    dst[at..at + PAIR].copy_from_slice(pair);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_to_nearest_even_and_keeps_nan_inf_and_subnormals() {
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1).
        assert_eq!(to_bf16(f32::from_bits(0x3f80_8000)), 0x3f80);
        // 1 + 3 · 2^-8: halfway, ties to even (1 + 2^-6).
        assert_eq!(to_bf16(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert_eq!(to_bf16(f32::from_bits(0x3f80_8001)), 0x3f81);
        assert_eq!(to_bf16(f32::INFINITY), 0x7f80);
        assert_eq!(to_bf16(f32::MAX), 0x7f80, "rounds up to infinity");
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
        assert_eq!(to_bf16(f32::from_bits(0x0000_8000)), 0x0000, "a subnormal tie to even");
        assert_eq!(to_bf16(f32::from_bits(0x0001_8000)), 0x0002);
        for x in [0.0f32, -0.0, 1.0, -2.5, 3.0e-39, 1e38] {
            assert_eq!(to_bf16(x), half::bf16::from_f32(x).to_bits(), "{x}");
        }
    }
}
