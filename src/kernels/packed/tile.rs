//! One micro-kernel call: a [`Tile`] of `C`, the values of `A` and the
//! panel slice it reads, and the prefetches it makes on the way.

use super::PANEL;
use super::output::{PanelOut, Start};
use super::panel::PanelSlice;

/// A tile's values of `A`: its rows over its `kb` steps.
#[derive(Clone, Copy)]
pub(super) enum TileA<'a> {
    /// Packed, `[kb][rows]`.
    Packed(&'a [f32]),
    /// In place: row `r`'s `kb` values one after the other from
    /// `first + r * row_stride`.
    InPlace { first: *const f32, row_stride: usize },
}

impl<'a> TileA<'a> {
    /// The packed values, for the kernels that read no other layout.
    pub(super) fn packed(self) -> &'a [f32] {
        match self {
            TileA::Packed(a) => a,
            TileA::InPlace { .. } => unreachable!("the portable kernel reads A packed"),
        }
    }
}

/// One micro-kernel call: `kb` steps of `k` for the rows `rows` of `C`,
/// columns `j0 + col0..j0 + width` (or as many of them as the kernel's tile
/// is wide).
pub(super) struct Tile<'a> {
    /// `A` for these rows and steps.
    pub(super) a: TileA<'a>,
    pub(super) rows: std::ops::Range<usize>,
    pub(super) kb: usize,
    /// The panel's rows for these steps.
    pub(super) panel: PanelSlice<'a>,
    pub(super) j0: usize,
    pub(super) width: usize,
    /// First panel column this call computes: 0, or 16 for the second of
    /// two half passes.
    pub(super) col0: usize,
    /// What the accumulators start from: C (every K block after the first),
    /// or the product's start.
    pub(super) start: Start,
    /// The next panel slice, and this call's share of its rows, to
    /// prefetch while it computes.
    pub(super) next: PanelSlice<'a>,
    pub(super) next_rows: std::ops::Range<usize>,
    /// Whether the AVX2 kernel prefetches its share of the next slice one
    /// line per step into L2 (the halves' lines by turns), not a line of
    /// each half per step into L1: where a slice has one or two row blocks,
    /// so each call's share is half a slice or more, and `B` streams from
    /// memory; two lines per step would bunch the requests into the first
    /// half of each call.
    pub(super) paced_prefetch: bool,
    /// Whether the AVX2 kernel prefetches its own half of the slice 16
    /// rows ahead of each step, one line per step (as MLAS's kernels do):
    /// where that half comes from L2 at every call (the block-major order),
    /// not where L1 keeps the slice between calls.
    pub(super) read_ahead: bool,
    pub(super) out: PanelOut,
}

impl Tile<'_> {
    /// Copies C's tile row `r` into `buf` (zeros past `width`).
    pub(super) fn load_c_row(&self, r: usize, buf: &mut [f32; PANEL]) {
        *buf = [0.0; PANEL];
        let row = self.rows.start + r;
        for (l, v) in buf.iter_mut().enumerate().take(self.width) {
            // SAFETY: (row, j0 + l) is inside C.
            *v = unsafe { *self.out.ptr.get().add(row * self.out.rsc + (self.j0 + l) * self.out.csc) };
        }
    }
    /// Where tile row `r`'s accumulators start from: `PANEL` floats from
    /// column `j0` of C's row or of the start row, read in place when whole
    /// and contiguous, else copied into `buf` (zeros past `width`); `None`
    /// for zeros.
    pub(super) fn initial_row(&self, r: usize, buf: &mut [f32; PANEL]) -> Option<*const f32> {
        match self.start {
            Start::Zero => None,
            Start::C if self.c_is_contiguous() => Some(self.c_row(r).cast_const()),
            Start::C => {
                self.load_c_row(r, buf);
                Some(buf.as_ptr())
            }
            // SAFETY: the start row holds `out.n` floats and j0 + width <= n.
            Start::Row(row) if self.width == PANEL => Some(unsafe { row.get().add(self.j0).cast_const() }),
            Start::Row(row) => {
                *buf = [0.0; PANEL];
                // SAFETY: as above, for the first `width` floats.
                let src = unsafe { std::slice::from_raw_parts(row.get().add(self.j0), self.width) };
                buf[..self.width].copy_from_slice(src);
                Some(buf.as_ptr())
            }
        }
    }
    /// Where tile row `r`'s accumulators start from, read in place (`None`
    /// for zeros): column `j0` of C's row or of the start row, for a kernel
    /// that masks the columns past `width` itself.
    pub(super) fn start_in_place(&self, r: usize) -> Option<*const f32> {
        // SAFETY: the start row holds `out.n` floats and j0 + width <= n.
        unsafe { self.start.in_place(self.c_row(r).cast_const(), self.j0) }
    }
    /// Writes `buf[..width]` to C's tile row `r`.
    pub(super) fn store_c_row(&self, r: usize, buf: &[f32; PANEL]) {
        self.store_c_cols(r, buf, 0..self.width);
    }
    /// Writes `buf[cols]` to those columns of C's tile row `r` (`cols` within `..width`).
    pub(super) fn store_c_cols(&self, r: usize, buf: &[f32; PANEL], cols: std::ops::Range<usize>) {
        assert!(cols.end <= self.width);
        let row = self.rows.start + r;
        for l in cols {
            // SAFETY: (row, j0 + l) is inside C.
            unsafe { *self.out.ptr.get().add(row * self.out.rsc + (self.j0 + l) * self.out.csc) = buf[l] };
        }
    }
    /// Whether C's tile rows are whole contiguous panels (the fast store).
    pub(super) fn c_is_contiguous(&self) -> bool {
        self.out.csc == 1 && self.width == PANEL
    }
    /// Pointer to C's tile row `r` (valid for `PANEL` elements when contiguous).
    pub(super) fn c_row(&self, r: usize) -> *mut f32 {
        // SAFETY: (rows.start + r, j0) is inside C.
        unsafe {
            self.out
                .ptr
                .get()
                .add((self.rows.start + r) * self.out.rsc + self.j0 * self.out.csc)
        }
    }
}
