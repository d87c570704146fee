//! A third copy of a CSR matrix laid out for batch 1 with AVX-512: rows in
//! slices of 16, one row per SIMD lane, and `x` looked up with register
//! permutes instead of gathers.
//!
//! Batch 1 is a sparse dot product per row, and the CSR kernel's `x[c]`
//! lookups are gathers, which cost about as much per element whether `W`
//! comes from L2 or L3: the lookups, not the memory, bound it. Here each *vector* holds one entry of
//! each of 16 consecutive rows, all inside a window of [`WINDOW`] columns of
//! `x`; the window's 64 floats are four registers, and two `vpermt2ps` and
//! a blend pick each lane's `x[c]`. The window slides with the slice: it
//! starts at the lowest column any of the 16 rows still has to consume
//! (rounded down to a cache line), and every row whose next entry lies
//! inside takes it, the others pad their lane (masked off). At DeepBench's
//! uniform sparsity this fills 67% of the lanes at 95% sparsity and 80% at
//! 90%, so with its byte offsets the copy is no larger than the CSR arrays
//! (about 8 bytes per entry).

use crate::kernels::simd::FLOATS_PER_LINE;

/// Rows per slice: one per lane of a 512-bit vector.
pub(super) const SLICE_ROWS: usize = 16;
/// Columns of `x` one vector's entries may reach: four registers, looked up
/// by a 6-bit offset.
pub(super) const WINDOW: usize = 64;

/// The entries of a CSR matrix in slices of [`SLICE_ROWS`] rows and
/// vectors of one entry per row (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SlicedCsr {
    /// Vectors of slice `s` are `slice_ptr[s]..slice_ptr[s + 1]`.
    slice_ptr: Vec<usize>,
    /// First column of each vector's window (at most `cols - WINDOW`).
    window: Vec<u32>,
    /// Each vector's lanes that hold an entry (bit `l`: row `16 s + l`).
    live: Vec<u16>,
    /// 16 values per vector (0 in dead lanes).
    values: Vec<f32>,
    /// 16 column offsets within the window per vector.
    offsets: Vec<u8>,
}

// Only the x86-64 product reads the sliced copy.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
impl SlicedCsr {
    /// The sliced form of the CSR arrays of a `rows x cols` matrix, or
    /// `None` when the matrix is narrower than one window.
    pub(super) fn new(rows: usize, cols: usize, row_ptr: &[usize], col_idx: &[u32], values: &[f32]) -> Option<SlicedCsr> {
        if cols < WINDOW {
            return None;
        }
        let last_window = cols - WINDOW;
        let mut m = SlicedCsr {
            slice_ptr: vec![0],
            window: Vec::new(),
            live: Vec::new(),
            values: Vec::with_capacity(values.len() * 3 / 2),
            offsets: Vec::with_capacity(values.len() * 3 / 2),
        };
        for r0 in (0..rows).step_by(SLICE_ROWS) {
            let lanes = SLICE_ROWS.min(rows - r0);
            let mut next: [usize; SLICE_ROWS] = std::array::from_fn(|l| if l < lanes { row_ptr[r0 + l] } else { 0 });
            let end: [usize; SLICE_ROWS] = std::array::from_fn(|l| if l < lanes { row_ptr[r0 + l + 1] } else { 0 });
            while let Some(lowest) = (0..SLICE_ROWS)
                .filter(|&l| next[l] < end[l])
                .map(|l| col_idx[next[l]] as usize)
                .min()
            {
                let start = (lowest / FLOATS_PER_LINE * FLOATS_PER_LINE).min(last_window);
                let mut live = 0u16;
                for l in 0..SLICE_ROWS {
                    let inside = next[l] < end[l] && (col_idx[next[l]] as usize) < start + WINDOW;
                    if inside {
                        m.values.push(values[next[l]]);
                        m.offsets.push((col_idx[next[l]] as usize - start) as u8);
                        live |= 1 << l;
                        next[l] += 1;
                    } else {
                        m.values.push(0.0);
                        m.offsets.push(0);
                    }
                }
                m.window.push(start as u32);
                m.live.push(live);
            }
            m.slice_ptr.push(m.window.len());
        }
        Some(m)
    }

    /// Slices.
    pub(super) fn slices(&self) -> usize {
        self.slice_ptr.len() - 1
    }

    /// The `part`-th of `parts` slice ranges holding about equal vectors.
    pub(super) fn balanced_slices(&self, part: usize, parts: usize) -> std::ops::Range<usize> {
        let vectors = self.window.len();
        let at = |i: usize| {
            if i == parts {
                self.slices()
            } else {
                self.slice_ptr.partition_point(|&p| p < vectors * i / parts).min(self.slices())
            }
        };
        at(part)..at(part + 1)
    }

    /// `y[r] = Σ W[r, c] · x[c]` for the rows of `slices`, each slice's 16
    /// sums handed to `write(first_row, sums)` (rows past the matrix's end
    /// hold 0).
    ///
    /// # Safety
    /// AVX-512F must be present, and `x` must hold the matrix's `cols` floats.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn product(&self, slices: std::ops::Range<usize>, x: &[f32], mut write: impl FnMut(usize, &[f32; SLICE_ROWS])) {
        use std::arch::x86_64::*;
        let (xp, values, offsets) = (x.as_ptr(), self.values.as_ptr(), self.offsets.as_ptr());
        // One vector's contribution to `acc`.
        let step = |v: usize, acc: __m512| {
            // SAFETY: v indexes a vector (16 values and offsets); its window
            // starts at most WINDOW before the end of x (construction).
            unsafe {
                let t = xp.add(self.window[v] as usize);
                let offset = _mm512_cvtepu8_epi32(_mm_loadu_si128(offsets.add(v * SLICE_ROWS).cast()));
                let low = _mm512_permutex2var_ps(_mm512_loadu_ps(t), offset, _mm512_loadu_ps(t.add(16)));
                let high = _mm512_permutex2var_ps(_mm512_loadu_ps(t.add(32)), offset, _mm512_loadu_ps(t.add(48)));
                let upper = _mm512_test_epi32_mask(offset, _mm512_set1_epi32(32));
                let xs = _mm512_mask_blend_ps(upper, low, high);
                _mm512_mask3_fmadd_ps(_mm512_loadu_ps(values.add(v * SLICE_ROWS)), xs, acc, self.live[v])
            }
        };
        for s in slices {
            let (mut v, end) = (self.slice_ptr[s], self.slice_ptr[s + 1]);
            let (mut acc0, mut acc1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
            while v + 2 <= end {
                acc0 = step(v, acc0);
                acc1 = step(v + 1, acc1);
                v += 2;
            }
            if v < end {
                acc0 = step(v, acc0);
            }
            let mut sums = [0.0f32; SLICE_ROWS];
            // SAFETY: `sums` holds 16 floats.
            unsafe { _mm512_storeu_ps(sums.as_mut_ptr(), _mm512_add_ps(acc0, acc1)) };
            write(s * SLICE_ROWS, &sums);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every entry lands in exactly one live lane of its row's slice, at
    /// its column, and every window lies inside the matrix.
    #[test]
    fn slices_hold_every_entry_once_inside_the_matrix() {
        let (rows, cols) = (37, 200);
        let mut row_ptr = vec![0];
        let (mut col_idx, mut values) = (Vec::new(), Vec::new());
        for r in 0..rows {
            // Row r: columns r, r + 7, ... (row 5 empty), values r + c.
            for c in (r..cols).step_by(7).filter(|_| r != 5) {
                col_idx.push(c as u32);
                values.push((r * 1000 + c) as f32);
            }
            row_ptr.push(values.len());
        }
        let m = SlicedCsr::new(rows, cols, &row_ptr, &col_idx, &values).unwrap();
        assert_eq!(m.slices(), 3);
        let mut seen = vec![0usize; rows * cols];
        for s in 0..m.slices() {
            for v in m.slice_ptr[s]..m.slice_ptr[s + 1] {
                assert!(m.window[v] as usize + WINDOW <= cols);
                for l in 0..SLICE_ROWS {
                    let value = m.values[v * SLICE_ROWS + l];
                    if m.live[v] & (1 << l) == 0 {
                        assert_eq!(value, 0.0);
                        continue;
                    }
                    let (r, c) = (s * SLICE_ROWS + l, m.window[v] as usize + m.offsets[v * SLICE_ROWS + l] as usize);
                    assert_eq!(value, (r * 1000 + c) as f32, "vector {v} lane {l}");
                    seen[r * cols + c] += 1;
                }
            }
        }
        for r in 0..rows {
            for c in 0..cols {
                let stored = r != 5 && c >= r && (c - r) % 7 == 0;
                assert_eq!(seen[r * cols + c], stored as usize, "W[{r}, {c}]");
            }
        }
        assert!(SlicedCsr::new(3, WINDOW - 1, &[0, 0, 0, 0], &[], &[]).is_none());
    }

    #[test]
    fn balanced_slices_cover_every_slice_once() {
        let rows = 100;
        let row_ptr: Vec<usize> = (0..=rows).map(|r| r * 3).collect();
        let col_idx: Vec<u32> = (0..rows * 3).map(|i| (i % 3 * 40) as u32).collect();
        let m = SlicedCsr::new(rows, 128, &row_ptr, &col_idx, &vec![1.0; rows * 3]).unwrap();
        for parts in [1, 2, 3, 8] {
            let ranges: Vec<_> = (0..parts).map(|p| m.balanced_slices(p, parts)).collect();
            assert_eq!(ranges[0].start, 0);
            assert_eq!(ranges[parts - 1].end, m.slices());
            assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
        }
    }
}
