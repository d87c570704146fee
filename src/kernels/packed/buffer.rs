//! The memory of packed weights: zeroed, cache-line aligned, and on huge
//! pages when large.

/// Zero-initialised floats for packed weights, aligned so the kernels'
/// loads never straddle cache lines or pages:
/// - to a cache line: a panel row is 128 bytes, so every 64-byte vector load
///   of a panel reads exactly one line;
/// - from 2 MiB up, to a 2 MiB huge page, and on Linux marked for
///   transparent huge pages before it is first touched: streaming tens of
///   megabytes of weights per time step otherwise walks a 4 KiB page every
///   32 panel rows, and the TLB misses cost 10–20% of a memory-bound step.
pub(super) struct AlignedFloats {
    pub(super) ptr: std::ptr::NonNull<f32>,
    pub(super) len: usize,
    pub(super) layout: std::alloc::Layout,
}

/// Size (and alignment) of a transparent huge page on x86-64 and aarch64.
pub(super) const HUGE_PAGE: usize = 2 << 20;

impl AlignedFloats {
    pub(super) fn zeroed(len: usize) -> AlignedFloats {
        let bytes = (len * std::mem::size_of::<f32>()).next_multiple_of(64);
        let align = if bytes >= HUGE_PAGE { HUGE_PAGE } else { 64 };
        let layout = std::alloc::Layout::from_size_align(bytes, align).expect("packed weights fit the address space");
        if bytes == 0 {
            return AlignedFloats {
                ptr: std::ptr::NonNull::dangling(),
                len,
                layout,
            };
        }
        // SAFETY: the layout has a nonzero size.
        let raw = unsafe { std::alloc::alloc(layout) };
        let Some(ptr) = std::ptr::NonNull::new(raw.cast::<f32>()) else {
            std::alloc::handle_alloc_error(layout)
        };
        #[cfg(target_os = "linux")]
        if align == HUGE_PAGE {
            // A hint only: where THP is off the pages stay small.
            // SAFETY: the range is this allocation, page-aligned.
            unsafe { libc::madvise(raw.cast(), bytes, libc::MADV_HUGEPAGE) };
        }
        // SAFETY: `raw` is valid for `bytes` bytes; zeroing them is the first
        // touch, so the kernel backs them with huge pages where it can.
        unsafe { raw.write_bytes(0, bytes) };
        AlignedFloats { ptr, len, layout }
    }
    pub(super) fn as_slice(&self) -> &[f32] {
        // SAFETY: `ptr` holds `len` initialised floats (or is dangling with len 0).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
    pub(super) fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as in `as_slice`, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedFloats {
    fn drop(&mut self) {
        if self.layout.size() > 0 {
            // SAFETY: allocated in `zeroed` with exactly this layout.
            unsafe { std::alloc::dealloc(self.ptr.as_ptr().cast(), self.layout) };
        }
    }
}

impl Clone for AlignedFloats {
    fn clone(&self) -> AlignedFloats {
        let mut copy = AlignedFloats::zeroed(self.len);
        copy.as_mut_slice().copy_from_slice(self.as_slice());
        copy
    }
}

impl std::fmt::Debug for AlignedFloats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedFloats({} floats, align {})", self.len, self.layout.align())
    }
}

// SAFETY: `AlignedFloats` owns its allocation exclusively, like a `Vec<f32>`.
unsafe impl Send for AlignedFloats {}

// SAFETY: shared access only reads.
unsafe impl Sync for AlignedFloats {}
