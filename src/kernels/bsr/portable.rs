//! The portable block kernel (compiled per instruction set by
//! `multiversion!`), for row-major blocks: shapes no vector sub-tile fits,
//! and every shape without AVX2.

use super::{BlockOut, Inputs, Job};
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
