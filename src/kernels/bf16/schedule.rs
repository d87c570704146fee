//! A bf16 product's [`Job`]: its rounded `A`, its panels, and the order
//! its calls run in.

use super::PANEL;
use super::blocking::{L3_RESIDENT_B_BYTES, PAIR};
use super::micro::Tile;
use super::panel::Bf16PackedMatrix;
use crate::kernels::lowp::{Out, in_order, row_blocks};
use crate::kernels::packed::PanelOrder;

/// Everything one product's tasks share.
pub(super) struct Job<'a> {
    /// `A` (`m` rows) rounded in the kernels' layout.
    a: &'a [u16],
    m: usize,
    b: &'a Bf16PackedMatrix,
    out: Out,
    /// Whether the kernel prefetches its panel ahead: only where `B`
    /// streams from memory; from L2 or L3 the hardware prefetchers keep up.
    prefetch: bool,
}

impl<'a> Job<'a> {
    pub(super) fn new(a: &'a [u16], m: usize, b: &'a Bf16PackedMatrix, out: Out) -> Job<'a> {
        debug_assert_eq!(a.len(), super::convert::a_len(m, b.k));
        Job {
            a,
            m,
            b,
            out,
            prefetch: b.bytes() > L3_RESIDENT_B_BYTES,
        }
    }

    /// The panels in `range`, in `order`: each panel's calls run every row
    /// block over all of `k`, in the kernel's column passes.
    pub(super) fn run_panels(&self, range: std::ops::Range<usize>, order: PanelOrder) {
        let (b, out) = (self.b, &self.out);
        let kernel = b.kernel;
        let pairs = b.pairs();
        let row_len = pairs * PAIR;
        for p in in_order(range, order) {
            let j0 = p * PANEL;
            let width = (out.cols - j0).min(PANEL);
            let panel = b.panel(p).as_ptr();
            for rows in row_blocks(self.m, kernel.mr()) {
                let call = kernel.micro_kernel(rows.len(), self.prefetch);
                for col0 in (0..width).step_by(kernel.nr()) {
                    let tile = Tile {
                        a: self.a[rows.start * row_len..rows.end * row_len].as_ptr(),
                        rows: rows.len(),
                        pairs,
                        panel,
                        col0,
                        out,
                        row0: rows.start,
                        j0,
                    };
                    // SAFETY: the kernel was chosen for B's instruction set
                    // (which the CPU has) and for exactly this many rows; the
                    // block of A, the panel and the tile of C lie inside A, B
                    // and C, and the caller owns the panel's columns of C.
                    unsafe { call(&tile) };
                }
            }
        }
    }
}
