//! Inputs packed for the vector kernels: a chunk of the batch, step by
//! step of `C'` columns, each step's `C'` inputs of every entry together.
//!
//! In place, a kernel step reads `C'` inputs from each of `B` rows of `X`:
//! `B` cache lines for as little as 4 or 16 bytes of each when `C'` is 1 or
//! 4 and blocks are narrow, and the lines of a block's inputs are spread
//! over the batch's rows. Packed, a tile's inputs for a step are `B · C'`
//! consecutive floats and a block's are `c / C'` such runs.

use crate::kernels::matrix::MatRef;

/// Entries `start ..` of `X` (as many as `out` holds rows of `padded`
/// floats) into `out`, laid out `[padded / cp][entries][cp]`: columns past
/// `X`'s, and entries past its rows (a chunk padded to whole tiles), are
/// zero.
pub(super) fn pack(x: MatRef, start: usize, padded: usize, cp: usize, out: &mut [f32]) {
    match cp {
        1 => pack_steps::<1>(x, start, padded, out),
        2 => pack_steps::<2>(x, start, padded, out),
        4 => pack_steps::<4>(x, start, padded, out),
        8 => pack_steps::<8>(x, start, padded, out),
        16 => pack_steps::<16>(x, start, padded, out),
        _ => unreachable!("sub-tiles are 1, 2, 4, 8 or 16 columns wide"),
    }
}

/// [`pack`] for steps of `CP` columns: whole steps of rows with contiguous
/// columns are fixed-size copies.
fn pack_steps<const CP: usize>(x: MatRef, start: usize, padded: usize, out: &mut [f32]) {
    let entries = out.len() / padded.max(1);
    let valid = x.rows().saturating_sub(start).min(entries);
    let cols = x.cols();
    let contiguous = x.col_stride() == 1 || cols <= 1;
    let whole = if contiguous { cols / CP } else { 0 };
    let (data, stride) = (x.data(), x.row_stride());
    for (g, step) in out.chunks_exact_mut(entries * CP).enumerate() {
        let c0 = g * CP;
        let (step, pad) = step.split_at_mut(valid * CP);
        pad.fill(0.0);
        if g < whole {
            for (b, dst) in step.chunks_exact_mut(CP).enumerate() {
                let src: &[f32; CP] = data[(start + b) * stride + c0..][..CP].try_into().expect("CP floats");
                dst.copy_from_slice(src);
            }
        } else {
            let width = CP.min(cols.saturating_sub(c0));
            for (b, dst) in step.chunks_exact_mut(CP).enumerate() {
                for (j, v) in dst.iter_mut().enumerate() {
                    *v = if j < width { x.at(start + b, c0 + j) } else { 0.0 };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_steps_of_every_entry_together() {
        // 3 entries of 6 columns, X column-major; padded to 8, steps of 4.
        let data: Vec<f32> = (0..18).map(|i| i as f32).collect();
        let x = MatRef::new(&data, 3, 6, 1, 3);
        let mut out = vec![-1.0; 2 * 8];
        pack(x, 1, 8, 4, &mut out);
        // Entries 1 and 2: X[b, j] = data[b + 3 j].
        let at = |b: usize, j: usize| if j < 6 { (b + 3 * j) as f32 } else { 0.0 };
        let want: Vec<f32> = (0..2)
            .flat_map(|g| (1..3).flat_map(move |b| (0..4).map(move |j| at(b, g * 4 + j))))
            .collect();
        assert_eq!(out, want);
    }
}
