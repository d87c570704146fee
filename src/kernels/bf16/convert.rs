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

/// Rounds rows `rows` of `a` (whole row blocks of `kernel`) into `dst`,
/// the values those blocks occupy: the block of rows `r0..r1` is
/// `[k / 2][r1 − r0][2]`, so a kernel reads one row's pair with one 32-bit
/// broadcast, the rows of a block one after the other. Past `k`, zeros.
pub(super) fn round_blocks(kernel: Bf16Kernel, a: MatRef, rows: std::ops::Range<usize>, dst: &mut [u16]) {
    assert_eq!(dst.len(), rows.len() * a_len(1, a.cols()), "rounded rows {rows:?}");
    round_blocks_at(kernel.level(), a, rows, kernel.mr(), dst);
}

/// `a` rounded into `dst`, row-major, each row padded with a zero to whole
/// pairs (`m · ⌈k / 2⌉ · 2` values), at the widest level this CPU has: the
/// inputs of a block-sparse bf16 product.
pub(crate) fn round_rows(a: MatRef, dst: &mut [u16]) {
    assert_eq!(dst.len(), a_len(a.rows(), a.cols()), "rounded rows");
    round_blocks_at(crate::kernels::simd::SimdLevel::detect(), a, 0..a.rows(), 1, dst);
}

multiversion!(fn round_blocks_at[level](a: MatRef, rows: std::ops::Range<usize>, mr: usize, dst: &mut [u16]) => round_blocks_kernel);

/// Values rounded per pass: 32 pairs.
const CHUNK: usize = 64;

/// [`round_blocks`], one row at a time: a chunk of 64 values rounded lane
/// by lane (vectorised for the caller's target features), then its 32
/// pairs written to their places, one pair row of the block apart.
#[inline(always)]
fn round_blocks_kernel<const FUSED: bool>(a: MatRef, rows: std::ops::Range<usize>, mr: usize, dst: &mut [u16]) {
    let k = a.cols();
    let pairs = k.div_ceil(PAIR);
    let row_len = pairs * PAIR;
    for block in row_blocks(a.rows(), mr).filter(|b| b.start >= rows.start && b.end <= rows.end) {
        let height = block.len();
        let base = (block.start - rows.start) * row_len;
        assert!(base + height * row_len <= dst.len());
        // Values from one of a row's pairs to its next.
        let step = height * PAIR;
        for (r, i) in block.enumerate() {
            let first = base + r * PAIR;
            let row = a.row(i);
            for g0 in (0..pairs).step_by(CHUNK / PAIR) {
                let from = g0 * PAIR;
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
                let mut values = [0u16; CHUNK];
                for l in 0..CHUNK {
                    values[l] = to_bf16(src[l]);
                }
                let chunk_pairs = (pairs - g0).min(CHUNK / PAIR);
                // SAFETY: pair g of row r of the block is at `first + g ·
                // step`, two values, inside the block (asserted above).
                unsafe {
                    let out = dst.as_mut_ptr().add(first + g0 * step);
                    for g in 0..chunk_pairs {
                        out.add(g * step)
                            .cast::<[u16; PAIR]>()
                            .write_unaligned([values[PAIR * g], values[PAIR * g + 1]]);
                    }
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
