//! The portable block kernels, for row-major blocks: shapes no vector
//! sub-tile fits, and every shape without AVX2. The fp32 one is compiled
//! per instruction set by `multiversion!`; the bf16 and int8 one decodes
//! each word's values in plain Rust.

use super::words::Arith;
use super::{BlockOut, Inputs, Job};
use crate::kernels::bf16::from_bf16;
use crate::kernels::simd::{madd, multiversion};

multiversion! {
    pub(super) fn block_rows_auto[level](job: &Job, x: &Inputs, block_rows: std::ops::Range<usize>, r: usize, batch: usize, out: BlockOut) => kernel
}

/// Each block row against each batch entry: `r` sums, each block adding
/// its row-major rows' dot products with the entry's inputs.
#[inline(always)]
fn kernel<const FUSED: bool>(job: &Job, inputs: &Inputs, block_rows: std::ops::Range<usize>, r: usize, batch: usize, out: BlockOut) {
    let mut acc = vec![0.0f32; r];
    for br in block_rows {
        let blocks = job.block_ptr[br]..job.block_ptr[br + 1];
        for b in 0..batch {
            acc.fill(0.0);
            let x = &inputs.x[b * inputs.entry..][..job.cols];
            for k in blocks.clone() {
                let c0 = job.block_col[k] as usize * job.c;
                let width = job.c.min(job.cols - c0);
                let xs = &x[c0..c0 + width];
                let block = &job.values[k * job.block_len..][..job.block_len];
                for (a, w) in acc.iter_mut().zip(block.chunks_exact(job.c)) {
                    let mut sum = *a;
                    for (&w, &x) in w.iter().zip(xs) {
                        sum = madd::<FUSED>(w, x, sum);
                    }
                    *a = sum;
                }
            }
            out.write(b, br * r, &acc);
        }
    }
}

/// [`block_rows_auto`] for blocks of bf16 or int8 words: each row's sum in
/// f32 (bf16) or `i32` (int8, its bits handed to `out`, which dequantizes).
pub(super) fn block_rows_words(
    arith: Arith,
    job: &Job,
    inputs: &Inputs,
    block_rows: std::ops::Range<usize>,
    r: usize,
    batch: usize,
    out: BlockOut,
) {
    let int8 = matches!(arith, Arith::Int8 { .. });
    let (mut floats, mut ints) = (vec![0.0f32; r], vec![0i32; r]);
    for br in block_rows {
        let blocks = job.block_ptr[br]..job.block_ptr[br + 1];
        for b in 0..batch {
            floats.fill(0.0);
            ints.fill(0);
            let x = &inputs.x[b * inputs.entry..][..job.cols];
            for k in blocks.clone() {
                let c0 = job.block_col[k] as usize * job.c;
                let xs = &x[c0..c0 + job.c];
                let block = &job.values[k * job.block_len..][..job.block_len];
                for (i, w) in block.chunks_exact(job.c).enumerate() {
                    for (&w, &x) in w.iter().zip(xs) {
                        let (w, x) = (w.to_bits(), x.to_bits());
                        if int8 {
                            let dot: i32 = (0..4)
                                .map(|t| i32::from((w >> (8 * t)) as u8 as i8) * i32::from((x >> (8 * t)) as u8))
                                .sum();
                            ints[i] = ints[i].wrapping_add(dot);
                        } else {
                            floats[i] +=
                                from_bf16(w as u16) * from_bf16(x as u16) + from_bf16((w >> 16) as u16) * from_bf16((x >> 16) as u16);
                        }
                    }
                }
            }
            if int8 {
                floats.iter_mut().zip(&ints).for_each(|(f, &s)| *f = f32::from_bits(s as u32));
            }
            out.write_tile(b, 1, br * r, r, &mut floats);
        }
    }
}
