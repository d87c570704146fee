//! `B` packed into column panels ([`PackedMatrix`]), in the layout of the
//! SIMD level detected when it was packed, and slices of a panel.

use super::PANEL;
use super::buffer::AlignedFloats;
use crate::kernels::matrix::MatRef;
use crate::kernels::simd::SimdLevel;

/// A `k x n` matrix packed into column panels of [`PANEL`] columns
/// (the last panel zero-padded), for the kernels of one SIMD level: the
/// level is resolved once, when the matrix is packed, and every product on
/// it runs at that level.
#[derive(Debug, Clone)]
pub struct PackedMatrix {
    pub(super) k: usize,
    pub(super) n: usize,
    pub(super) level: SimdLevel,
    pub(super) layout: PanelLayout,
    pub(super) panels: AlignedFloats,
}

/// How the [`PANEL`] columns of a panel lie in memory: chosen at packing
/// time for the kernels of the detected SIMD level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PanelLayout {
    /// Row by row (`[k][32]`): for kernels that read a whole panel row per
    /// `k` step (AVX-512, portable).
    Rows,
    /// As two 16-column halves, one after the other (`[2][k][16]`): for the
    /// AVX2 kernels, which pass over one half at a time. A half pass then
    /// reads one contiguous stream; over `[k][32]` it would read every other
    /// cache line, which maps to only half of L1's sets, so a 16 KiB half
    /// slice would fill those sets' ways and evict itself.
    Halves,
}

/// Columns of one half of a panel.
pub(super) const HALF: usize = PANEL / 2;

impl PanelLayout {
    /// The layout the kernels at `level` read.
    fn for_level(level: SimdLevel) -> PanelLayout {
        if level == SimdLevel::Avx2Fma {
            PanelLayout::Halves
        } else {
            PanelLayout::Rows
        }
    }
    /// Index of (`row`, column `col`) in a panel of `k` rows.
    fn index(self, k: usize, row: usize, col: usize) -> usize {
        match self {
            PanelLayout::Rows => row * PANEL + col,
            PanelLayout::Halves => (col / HALF) * k * HALF + row * HALF + col % HALF,
        }
    }
}

/// Steps `k0..k0 + kb` of one panel.
#[derive(Clone, Copy)]
pub(super) struct PanelSlice<'a> {
    /// The whole panel.
    pub(super) panel: &'a [f32],
    pub(super) k: usize,
    pub(super) k0: usize,
    pub(super) kb: usize,
    pub(super) layout: PanelLayout,
}

impl<'a> PanelSlice<'a> {
    /// No steps (nothing to prefetch).
    pub(super) const EMPTY: PanelSlice<'static> = PanelSlice {
        panel: &[],
        k: 0,
        k0: 0,
        kb: 0,
        layout: PanelLayout::Rows,
    };
    /// The slice's rows, `[kb][32]` (layout [`PanelLayout::Rows`]).
    pub(super) fn rows(&self) -> &'a [f32] {
        debug_assert_eq!(self.layout, PanelLayout::Rows);
        &self.panel[self.k0 * PANEL..(self.k0 + self.kb) * PANEL]
    }
    /// Half `h` of the slice's rows, `[kb][16]` (layout [`PanelLayout::Halves`]).
    pub(super) fn half(&self, h: usize) -> &'a [f32] {
        debug_assert_eq!(self.layout, PanelLayout::Halves);
        let start = h * self.k * HALF + self.k0 * HALF;
        &self.panel[start..start + self.kb * HALF]
    }
}

impl PackedMatrix {
    /// Packs `b` (any strides) for the detected SIMD level. Costs one pass
    /// over `b`; done once per weight.
    pub fn pack(b: MatRef) -> PackedMatrix {
        PackedMatrix::pack_for(b, SimdLevel::detect())
    }

    /// Packs `b` for the kernels of `level` (which the CPU must have).
    pub fn pack_for(b: MatRef, level: SimdLevel) -> PackedMatrix {
        let (k, n) = (b.rows(), b.cols());
        let count = n.div_ceil(PANEL);
        let layout = PanelLayout::for_level(level);
        let mut panels = AlignedFloats::zeroed(count * k * PANEL);
        if k == 0 {
            return PackedMatrix {
                k,
                n,
                level,
                layout,
                panels,
            };
        }
        for (p, panel) in panels.as_mut_slice().chunks_exact_mut(k * PANEL).enumerate() {
            let j0 = p * PANEL;
            let width = (n - j0).min(PANEL);
            for row in 0..k {
                for l in 0..width {
                    panel[layout.index(k, row, l)] = b.at(row, j0 + l);
                }
            }
        }
        PackedMatrix {
            k,
            n,
            level,
            layout,
            panels,
        }
    }

    /// Packs `wᵀ` for a row-major weight `w` of `n x k` (the canonical
    /// layout of every LSTM and projection weight), so `A · wᵀ` can run.
    pub fn pack_transposed(w: &[f32], n: usize, k: usize) -> PackedMatrix {
        Self::pack(MatRef::row_major(w, n, k).t())
    }

    /// Rows of the packed matrix (the inner dimension of a product).
    pub fn k(&self) -> usize {
        self.k
    }
    /// Columns of the packed matrix (the output width of a product).
    pub fn n(&self) -> usize {
        self.n
    }
    /// The SIMD level this matrix was packed for.
    pub fn level(&self) -> SimdLevel {
        self.level
    }
    /// Bytes the packed panels occupy.
    pub fn bytes(&self) -> usize {
        std::mem::size_of_val(self.panels.as_slice())
    }
    pub(super) fn panel(&self, p: usize) -> &[f32] {
        &self.panels.as_slice()[p * self.k * PANEL..(p + 1) * self.k * PANEL]
    }
}
