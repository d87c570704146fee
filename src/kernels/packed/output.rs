//! Where a product's results go ([`SharedOutput`], [`PanelOut`]) and what
//! its accumulators start from ([`Start`]).

use crate::kernels::matrix::SendPtr;

/// A row-major `C` shared by workers that each compute their own panels
/// (see [`super::packed_gemm_panels`]).
#[derive(Clone, Copy)]
pub struct SharedOutput<'a> {
    pub(super) ptr: SendPtr,
    pub(super) rows: usize,
    pub(super) cols: usize,
    /// Floats from one row's start to the next's (`cols`, or more in a
    /// column window of a wider matrix).
    pub(super) stride: usize,
    pub(super) _borrow: std::marker::PhantomData<&'a mut [f32]>,
}

impl<'a> SharedOutput<'a> {
    /// Shares `c`, a row-major `rows x cols` matrix.
    pub fn new(c: &'a mut [f32], rows: usize, cols: usize) -> SharedOutput<'a> {
        assert!(c.len() >= rows * cols, "SharedOutput: {} values for {rows}x{cols}", c.len());
        SharedOutput {
            ptr: SendPtr(c.as_mut_ptr()),
            rows,
            cols,
            stride: cols,
            _borrow: std::marker::PhantomData,
        }
    }
    /// Shares the row-major `rows x cols` matrix at `ptr`, which the caller
    /// already shares between its workers.
    ///
    /// # Safety
    /// `ptr` must point at `rows * cols` floats that stay valid and that
    /// nothing reads or writes other than through these views while they live.
    pub(crate) unsafe fn from_raw(ptr: SendPtr, rows: usize, cols: usize) -> SharedOutput<'a> {
        SharedOutput {
            ptr,
            rows,
            cols,
            stride: cols,
            _borrow: std::marker::PhantomData,
        }
    }
    /// The matrix's first element, rows, columns and row stride: for the
    /// reduced-precision families (`kernels::int8`, `kernels::bf16`),
    /// which write through the same shared views.
    pub(crate) fn raw_parts(&self) -> (SendPtr, usize, usize, usize) {
        (self.ptr, self.rows, self.cols, self.stride)
    }
    /// The kernels' view of this matrix, starting from `start`.
    pub(super) fn out(&self, start: Start) -> PanelOut {
        PanelOut {
            ptr: self.ptr,
            rsc: self.stride,
            csc: 1,
            n: self.cols,
            start,
        }
    }
    /// Rows `range` of the same matrix.
    pub fn rows(self, range: std::ops::Range<usize>) -> SharedOutput<'a> {
        assert!(
            range.start <= range.end && range.end <= self.rows,
            "rows {range:?} of {}",
            self.rows
        );
        SharedOutput {
            // SAFETY: the offset stays inside the shared matrix (checked above).
            ptr: SendPtr(unsafe { self.ptr.get().add(range.start * self.stride) }),
            rows: range.len(),
            ..self
        }
    }
    /// Columns `range` of the same matrix: a window whose rows keep the
    /// whole matrix's stride (one direction's gates among a layer's).
    pub fn columns(self, range: std::ops::Range<usize>) -> SharedOutput<'a> {
        assert!(
            range.start <= range.end && range.end <= self.cols,
            "columns {range:?} of {}",
            self.cols
        );
        SharedOutput {
            // SAFETY: the offset stays inside the shared matrix (checked above).
            ptr: SendPtr(unsafe { self.ptr.get().add(range.start) }),
            cols: range.len(),
            ..self
        }
    }
}

/// Where a panel's results go.
#[derive(Clone, Copy)]
pub(super) struct PanelOut {
    pub(super) ptr: SendPtr,
    pub(super) rsc: usize,
    pub(super) csc: usize,
    pub(super) n: usize,
    /// What the first K block's accumulators start from.
    pub(super) start: Start,
}

/// What a product's accumulators start from before `A · B` is added.
#[derive(Clone, Copy)]
pub(crate) enum Start {
    /// Zeros: `C = A · B`.
    Zero,
    /// `C`'s own values: `C += A · B`.
    C,
    /// A row of `n` floats (a bias), the same for every row:
    /// `C = bias + A · B`, without writing the bias into `C` first and
    /// reading it back.
    Row(SendPtr),
}

impl Start {
    pub(crate) fn accumulate(accumulate: bool) -> Start {
        if accumulate { Start::C } else { Start::Zero }
    }
    /// Accumulators that start from `bias` (one value per column of `C`),
    /// which must outlive the product. The kernels only read through the
    /// pointer.
    pub(crate) fn bias(bias: &[f32]) -> Start {
        Start::Row(SendPtr(bias.as_ptr().cast_mut()))
    }
    /// Where a row of accumulators from column `j0` starts, read in place
    /// (`None` for zeros): `c`, that row of `C` at `j0`, or column `j0` of
    /// the start row.
    ///
    /// # Safety
    /// `j0` lies inside the start row.
    pub(super) unsafe fn in_place(self, c: *const f32, j0: usize) -> Option<*const f32> {
        match self {
            Start::Zero => None,
            Start::C => Some(c),
            // SAFETY: forwarded from the caller.
            Start::Row(row) => Some(unsafe { row.get().add(j0).cast_const() }),
        }
    }
}
