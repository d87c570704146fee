//! Strided matrix views shared by the kernels.
//!
//! A view is a slice plus a shape and two strides (in elements), so one type
//! covers row-major, column-major (a transpose) and sub-matrices. Strides are
//! checked once, when the view is made; the kernels then trust them.

/// A read-only `rows x cols` matrix: element `(i, j)` is
/// `data[i * row_stride + j * col_stride]`.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

/// A writable `rows x cols` matrix with the same addressing as [`MatRef`].
/// Distinct elements never share memory (checked on construction), which is
/// what lets kernels write disjoint blocks from several threads.
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

/// Largest index a view touches plus one, or `None` on overflow; 0 when empty.
fn extent(rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return Some(0);
    }
    let last_row = (rows - 1).checked_mul(row_stride)?;
    let last_col = (cols - 1).checked_mul(col_stride)?;
    last_row.checked_add(last_col)?.checked_add(1)
}

impl<'a> MatRef<'a> {
    /// A view with explicit strides. Panics if the view reaches past `data`:
    /// that is a bug in the caller, not bad input.
    pub fn new(data: &'a [f32], rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Self {
        let end = extent(rows, cols, row_stride, col_stride).expect("matrix view size overflows usize");
        assert!(
            end <= data.len(),
            "matrix view {rows}x{cols} with strides ({row_stride}, {col_stride}) needs {end} elements, slice has {}",
            data.len()
        );
        MatRef {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// A row-major view: rows are contiguous and `cols` apart.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols, 1)
    }

    /// The transpose, as a view of the same memory (no copy).
    pub fn t(self) -> MatRef<'a> {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Distance in elements between consecutive rows.
    pub fn row_stride(&self) -> usize {
        self.row_stride
    }
    /// Distance in elements between consecutive columns.
    pub fn col_stride(&self) -> usize {
        self.col_stride
    }
    /// The underlying slice (starting at element (0, 0)).
    pub fn data(&self) -> &'a [f32] {
        self.data
    }
    /// Element `(i, j)`.
    pub fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.row_stride + j * self.col_stride]
    }
    /// Row `i` as a contiguous slice, when columns are adjacent in memory.
    pub fn row(&self, i: usize) -> Option<&'a [f32]> {
        if self.cols == 0 {
            return Some(&[]);
        }
        (self.col_stride == 1 || self.cols == 1).then(|| &self.data[i * self.row_stride..i * self.row_stride + self.cols])
    }
}

impl<'a> MatMut<'a> {
    /// A writable view with explicit strides. Panics if the view reaches past
    /// `data` or if two elements would share memory (caller bugs).
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Self {
        let end = extent(rows, cols, row_stride, col_stride).expect("matrix view size overflows usize");
        assert!(
            end <= data.len(),
            "matrix view {rows}x{cols} with strides ({row_stride}, {col_stride}) needs {end} elements, slice has {}",
            data.len()
        );
        let disjoint = rows <= 1 && (cols <= 1 || col_stride > 0)
            || cols <= 1 && row_stride > 0
            || col_stride > 0 && row_stride >= cols * col_stride
            || row_stride > 0 && col_stride >= rows * row_stride;
        assert!(
            disjoint,
            "matrix view {rows}x{cols} with strides ({row_stride}, {col_stride}) aliases itself"
        );
        MatMut {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// A row-major writable view.
    pub fn row_major(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols, 1)
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Distance in elements between consecutive rows.
    pub fn row_stride(&self) -> usize {
        self.row_stride
    }
    /// Distance in elements between consecutive columns.
    pub fn col_stride(&self) -> usize {
        self.col_stride
    }
    /// Element `(i, j)`.
    pub fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.row_stride + j * self.col_stride]
    }
    /// Mutable element `(i, j)`.
    pub fn at_mut(&mut self, i: usize, j: usize) -> &mut f32 {
        &mut self.data[i * self.row_stride + j * self.col_stride]
    }
    /// A read-only view of the same matrix.
    pub fn as_ref(&self) -> MatRef<'_> {
        MatRef {
            data: self.data,
            rows: self.rows,
            cols: self.cols,
            row_stride: self.row_stride,
            col_stride: self.col_stride,
        }
    }
    /// Raw parts for kernels that split the matrix into disjoint blocks.
    pub(crate) fn raw(&mut self) -> (*mut f32, usize, usize) {
        (self.data.as_mut_ptr(), self.row_stride, self.col_stride)
    }
}

/// A raw pointer that may cross into rayon tasks. Kernels use it only to
/// write disjoint blocks of one [`MatMut`], which its constructor guarantees
/// do not alias.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut f32);
// SAFETY: see the type's documentation; every task writes a disjoint block.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer. A method (not the field) so closures capture the whole
    /// `SendPtr`, which is `Send`, rather than the raw pointer inside it.
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

/// Splits `0..len` into at most `parts` contiguous ranges whose sizes are
/// multiples of `align` (except the last), as equal as that allows.
pub(crate) fn split_ranges(len: usize, parts: usize, align: usize) -> Vec<std::ops::Range<usize>> {
    let parts = parts.max(1);
    let align = align.max(1);
    let units = len.div_ceil(align);
    let parts = parts.min(units.max(1));
    let mut out = Vec::with_capacity(parts);
    let mut start = 0;
    for p in 0..parts {
        let end_units = units * (p + 1) / parts;
        let end = (end_units * align).min(len);
        if end > start {
            out.push(start..end);
        }
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_ranges_cover_everything_once() {
        for len in [0usize, 1, 7, 31, 32, 33, 1000] {
            for parts in 1..6 {
                for align in [1usize, 8, 32] {
                    let r = split_ranges(len, parts, align);
                    let total: usize = r.iter().map(|r| r.len()).sum();
                    assert_eq!(total, len);
                    assert!(r.len() <= parts);
                    for w in r.windows(2) {
                        assert_eq!(w[0].end, w[1].start);
                        assert_eq!(w[0].len() % align, 0);
                    }
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "aliases itself")]
    fn aliasing_mut_view_is_refused() {
        let mut d = vec![0.0; 16];
        let _ = MatMut::new(&mut d, 4, 4, 1, 1);
    }

    #[test]
    #[should_panic(expected = "needs 19 elements")]
    fn view_past_the_slice_is_refused() {
        let d = vec![0.0; 16];
        let _ = MatRef::new(&d, 4, 4, 4, 2);
    }
}
