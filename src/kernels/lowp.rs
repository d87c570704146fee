//! What the reduced-precision kernel families (`kernels::int8`,
//! `kernels::bf16`) share with each other: aligned weight memory, the view
//! of `C` a product writes (with the [`Start`] its values start from), row
//! blocks, and the two ways a product's panels are shared out (rayon, or
//! claims by the caller's workers).
//!
//! Their panels are [`PANEL`] columns wide, as the fp32 packed family's,
//! so the LSTM executor's gate interleaving (four gates of 8 units per
//! panel) and its claims of panel ranges hold at every precision.

use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::matrix::{MatMut, SendPtr};
use super::packed::{PANEL, PanelOrder, SharedOutput, Start};

/// Element types whose all-zero bit pattern is a valid zero value.
pub(crate) trait Zeroable: Copy + 'static {}
impl Zeroable for u8 {}
impl Zeroable for i8 {}
impl Zeroable for u16 {}

/// Zero-initialised packed weights, aligned to a cache line (a 2 MiB huge
/// page from 2 MiB up, marked for transparent huge pages on Linux), as
/// the fp32 family's panels are: a weight stream never straddles a line,
/// and a large one walks few pages.
pub(crate) struct AlignedBuf<T: Zeroable> {
    ptr: std::ptr::NonNull<T>,
    len: usize,
    layout: std::alloc::Layout,
}

/// Size (and alignment) of a transparent huge page on x86-64 and aarch64.
const HUGE_PAGE: usize = 2 << 20;

impl<T: Zeroable> AlignedBuf<T> {
    pub(crate) fn zeroed(len: usize) -> AlignedBuf<T> {
        let bytes = (len * std::mem::size_of::<T>()).next_multiple_of(64);
        let align = if bytes >= HUGE_PAGE { HUGE_PAGE } else { 64 };
        let layout = std::alloc::Layout::from_size_align(bytes, align).expect("packed weights fit the address space");
        if bytes == 0 {
            return AlignedBuf {
                ptr: std::ptr::NonNull::dangling(),
                len,
                layout,
            };
        }
        // SAFETY: the layout has a nonzero size.
        let raw = unsafe { std::alloc::alloc(layout) };
        let Some(ptr) = std::ptr::NonNull::new(raw.cast::<T>()) else {
            std::alloc::handle_alloc_error(layout)
        };
        #[cfg(target_os = "linux")]
        if align == HUGE_PAGE {
            // A hint only: where THP is off the pages stay small.
            // SAFETY: the range is this allocation, page-aligned.
            unsafe { libc::madvise(raw.cast(), bytes, libc::MADV_HUGEPAGE) };
        }
        // SAFETY: `raw` is valid for `bytes` bytes, and zero bytes are a
        // valid `T` (`Zeroable`); this is the first touch.
        unsafe { raw.write_bytes(0, bytes) };
        AlignedBuf { ptr, len, layout }
    }
    pub(crate) fn as_slice(&self) -> &[T] {
        // SAFETY: `ptr` holds `len` initialised values (or is dangling with len 0).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
    pub(crate) fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as in `as_slice`, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
    /// Bytes the values occupy.
    pub(crate) fn bytes(&self) -> usize {
        std::mem::size_of_val(self.as_slice())
    }
}

impl<T: Zeroable> Drop for AlignedBuf<T> {
    fn drop(&mut self) {
        if self.layout.size() > 0 {
            // SAFETY: allocated in `zeroed` with exactly this layout.
            unsafe { std::alloc::dealloc(self.ptr.as_ptr().cast(), self.layout) };
        }
    }
}

impl<T: Zeroable> Clone for AlignedBuf<T> {
    fn clone(&self) -> AlignedBuf<T> {
        let mut copy = AlignedBuf::zeroed(self.len);
        copy.as_mut_slice().copy_from_slice(self.as_slice());
        copy
    }
}

impl<T: Zeroable> std::fmt::Debug for AlignedBuf<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBuf({} values, align {})", self.len, self.layout.align())
    }
}

// SAFETY: `AlignedBuf` owns its allocation exclusively, like a `Vec<T>` of plain values.
unsafe impl<T: Zeroable> Send for AlignedBuf<T> {}

// SAFETY: shared access only reads.
unsafe impl<T: Zeroable> Sync for AlignedBuf<T> {}

/// A pointer into a buffer that a team's workers fill by disjoint parts
/// (the quantized or rounded `A` of a product they share).
#[derive(Debug, Clone, Copy)]
pub struct SharedParts<T>(pub(crate) *mut T);

// SAFETY: only a pointer; the functions that write through it require
// disjoint parts and order the reads after the writes (their contracts).
unsafe impl<T> Send for SharedParts<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SharedParts<T> {}

impl<T> SharedParts<T> {
    /// Shares `buf` (which must outlive every use of the pointer).
    pub fn new(buf: &mut [T]) -> SharedParts<T> {
        SharedParts(buf.as_mut_ptr())
    }
}

/// Where a product's results go: `C` with any strides, and what its
/// values start from before `A · B` is added.
#[derive(Clone, Copy)]
pub(crate) struct Out {
    pub(crate) ptr: SendPtr,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) rsc: usize,
    pub(crate) csc: usize,
    pub(crate) start: Start,
}

impl Out {
    pub(crate) fn of_mat(c: &mut MatMut, start: Start) -> Out {
        let (rows, cols) = (c.rows(), c.cols());
        let (ptr, rsc, csc) = c.raw();
        Out {
            ptr: SendPtr(ptr),
            rows,
            cols,
            rsc,
            csc,
            start,
        }
    }
    pub(crate) fn of_shared(c: SharedOutput, start: Start) -> Out {
        let (ptr, rows, cols, stride) = c.raw_parts();
        Out {
            ptr,
            rows,
            cols,
            rsc: stride,
            csc: 1,
            start,
        }
    }
    /// The start values of row `row`, columns `col..col + W`, into `buf`:
    /// `C`'s own or the start row's where the columns exist, zeros past
    /// the last column and for [`Start::Zero`].
    ///
    /// # Safety
    /// `row` must be a row of `C`, `col` a column, and `C` (and a start
    /// row) valid for reads.
    #[inline(always)]
    pub(crate) unsafe fn start_values<const W: usize>(&self, row: usize, col: usize, buf: &mut [f32; W]) {
        let valid = (self.cols - col).min(W);
        // Whole segments are read as one value of `W` floats, which the
        // compiler turns into vector loads; a partial one element by
        // element (a copy of variable length would call memcpy, and the
        // compiler merges two copies into one such call).
        // SAFETY: (row, col..col + valid) lies inside C and the start row
        // (the caller's contract).
        unsafe {
            match self.start {
                Start::Zero => *buf = [0.0; W],
                Start::C if self.csc == 1 && valid == W => {
                    *buf = self.ptr.get().add(row * self.rsc + col).cast::<[f32; W]>().read_unaligned()
                }
                Start::C => {
                    *buf = [0.0; W];
                    for (l, v) in buf.iter_mut().enumerate().take(valid) {
                        *v = *self.ptr.get().add(row * self.rsc + (col + l) * self.csc);
                    }
                }
                Start::Row(bias) if valid == W => *buf = bias.get().add(col).cast::<[f32; W]>().read_unaligned(),
                Start::Row(bias) => {
                    *buf = [0.0; W];
                    for (l, v) in buf.iter_mut().enumerate().take(valid) {
                        *v = *bias.get().add(col + l);
                    }
                }
            }
        }
    }
    /// Writes `vals` to row `row`, columns `col..col + W` (those that exist).
    ///
    /// # Safety
    /// As [`Out::start_values`], for writes; no other thread may touch
    /// those values meanwhile.
    #[inline(always)]
    pub(crate) unsafe fn store<const W: usize>(&self, row: usize, col: usize, vals: &[f32; W]) {
        let valid = (self.cols - col).min(W);
        // As in `start_values`: whole segments as one value.
        // SAFETY: (row, col..col + valid) lies inside C (the caller's contract).
        unsafe {
            if self.csc == 1 && valid == W {
                self.ptr.get().add(row * self.rsc + col).cast::<[f32; W]>().write_unaligned(*vals);
            } else {
                for (l, v) in vals.iter().enumerate().take(valid) {
                    *self.ptr.get().add(row * self.rsc + (col + l) * self.csc) = *v;
                }
            }
        }
    }
}

/// `m` rows cut into nearly equal consecutive blocks of at most `mr` rows.
pub(crate) fn row_blocks(m: usize, mr: usize) -> impl Iterator<Item = std::ops::Range<usize>> + Clone {
    let count = m.div_ceil(mr).max(1);
    let (base, extra) = (m / count, m % count);
    let start = move |i: usize| i * base + i.min(extra);
    (0..count).map(move |i| start(i)..start(i + 1)).filter(|r| !r.is_empty())
}

/// The panels of `range` in `order`.
pub(crate) fn in_order(range: std::ops::Range<usize>, order: PanelOrder) -> impl Iterator<Item = usize> {
    let (start, len) = (range.start, range.len());
    (0..len).map(move |i| match order {
        PanelOrder::Ascending => start + i,
        PanelOrder::Descending => start + len - 1 - i,
    })
}

/// Panels of a `cols`-column `C`.
pub(crate) fn panels_of(cols: usize) -> usize {
    cols.div_ceil(PANEL)
}

/// `run` over all `panels`: on the calling thread where the product has
/// fewer than `parallel_min_macs` multiply-adds, else on the rayon pool's
/// threads, each claiming chunks of at least `min_chunk` panels from one
/// counter (so a core the host slows hands the rest to the others).
pub(crate) fn run_parallel(
    macs: usize,
    panels: usize,
    parallel_min_macs: usize,
    min_chunk: usize,
    run: impl Fn(std::ops::Range<usize>) + Sync,
) {
    let workers = if macs < parallel_min_macs {
        1
    } else {
        rayon::current_num_threads().min(panels)
    };
    if workers <= 1 {
        return run(0..panels);
    }
    let chunks = (panels / min_chunk).max(workers);
    let chunk = panels.div_ceil(chunks);
    let next = AtomicUsize::new(0);
    (0..workers).into_par_iter().for_each(|_| {
        loop {
            let first = next.fetch_add(1, Ordering::Relaxed) * chunk;
            if first >= panels {
                break;
            }
            run(first..(first + chunk).min(panels));
        }
    });
}

/// For every range of panels `claim` returns, `run` over it (nothing for
/// an empty product, `run = None`), then `done(range)`, until `claim`
/// returns `None`. Panics on a range past the last of a `cols`-column `C`.
pub(crate) fn run_claims(
    cols: usize,
    mut run: Option<impl FnMut(std::ops::Range<usize>)>,
    mut claim: impl FnMut() -> Option<std::ops::Range<usize>>,
    mut done: impl FnMut(std::ops::Range<usize>),
) {
    let panels = panels_of(cols);
    while let Some(range) = claim() {
        assert!(range.end <= panels, "panels {range:?} of a {cols}-column C");
        if let Some(run) = run.as_mut() {
            run(range.clone());
        }
        done(range);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_blocks_cover_the_rows_in_nearly_equal_blocks() {
        for (m, mr) in [(0usize, 12usize), (1, 12), (12, 12), (13, 12), (25, 12), (300, 12), (7, 2)] {
            let blocks: Vec<_> = row_blocks(m, mr).collect();
            assert_eq!(blocks.iter().map(|b| b.len()).sum::<usize>(), m);
            assert!(blocks.iter().all(|b| b.len() <= mr && !b.is_empty()));
            assert!(blocks.windows(2).all(|w| w[0].end == w[1].start && w[0].len() + 1 >= w[1].len()));
        }
    }

    #[test]
    fn panels_in_order_go_either_way() {
        assert_eq!(in_order(3..6, PanelOrder::Ascending).collect::<Vec<_>>(), [3, 4, 5]);
        assert_eq!(in_order(3..6, PanelOrder::Descending).collect::<Vec<_>>(), [5, 4, 3]);
        assert_eq!(in_order(3..3, PanelOrder::Descending).count(), 0);
    }
}
