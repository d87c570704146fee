//! An int8 product's [`Job`]: its quantized `A`, its panels, and the
//! order its calls run in.

use super::PANEL;
use super::blocking::{GROUP, L3_RESIDENT_B_BYTES};
use super::micro::{Dequant, Tile};
use super::panel::Int8PackedMatrix;
use super::quantize::AQuant;
use crate::kernels::lowp::{Out, in_order, row_blocks};
use crate::kernels::packed::PanelOrder;

/// A product's `A`, quantized in the layout of `B`'s kernels.
#[derive(Clone, Copy)]
pub(super) struct QuantizedA<'a> {
    pub(super) data: &'a [u8],
    pub(super) m: usize,
    pub(super) quant: AQuant,
}

/// Everything one product's tasks share.
pub(super) struct Job<'a> {
    a: QuantizedA<'a>,
    b: &'a Int8PackedMatrix,
    out: Out,
    /// Whether the kernels prefetch their panel ahead: only where `B`
    /// streams from memory; from L2 or L3 the hardware prefetchers keep up.
    prefetch: bool,
}

impl<'a> Job<'a> {
    pub(super) fn new(a: QuantizedA<'a>, b: &'a Int8PackedMatrix, out: Out) -> Job<'a> {
        debug_assert_eq!(a.data.len(), super::quantize::a_len(b.kernel, a.m, b.k));
        Job {
            a,
            b,
            out,
            prefetch: b.bytes() > L3_RESIDENT_B_BYTES,
        }
    }

    /// The panels in `range`, in `order`: each panel's calls run every row
    /// block over all of `k` (the panel, `k / 4` rows of 128 bytes, stays in
    /// L1 or L2 while the blocks pass over it; `A` is a quarter of its f32
    /// size and stays in L2), in the kernel's column passes.
    pub(super) fn run_panels(&self, range: std::ops::Range<usize>, order: PanelOrder) {
        let (b, out) = (self.b, &self.out);
        let kernel = b.kernel;
        let groups = b.groups();
        let row_bytes = groups * GROUP * kernel.a_value_bytes();
        for p in in_order(range, order) {
            let j0 = p * PANEL;
            let width = (out.cols - j0).min(PANEL);
            let dequant = Dequant {
                a_scale: self.a.quant.scale,
                zero_point: i32::from(self.a.quant.zero_point),
                scales: b.scales[j0..j0 + PANEL].try_into().expect("whole panels of scales"),
                col_sums: b.col_sums[j0..j0 + PANEL].try_into().expect("whole panels of sums"),
            };
            let panel = b.panel(p).as_ptr();
            for rows in row_blocks(self.a.m, kernel.mr()) {
                let call = kernel.micro_kernel(rows.len(), self.prefetch);
                for col0 in (0..width).step_by(kernel.nr()) {
                    let tile = Tile {
                        a: self.a.data[rows.start * row_bytes..rows.end * row_bytes].as_ptr(),
                        rows: rows.len(),
                        groups,
                        panel,
                        col0,
                        dequant,
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
