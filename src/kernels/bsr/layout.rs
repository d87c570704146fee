//! How a block's values are ordered for the kernels: chosen once per block
//! shape and SIMD level, when the matrix is built.
//!
//! A kernel call multiplies a *pass* of a block row (its rows
//! `pass · RP ..`, `RP` = [`Layout::pass_rows`]) by a tile of `B` batch
//! entries. A vector register holds a *sub-tile* of `R' x C'` weights
//! (`R' · C'` = the vector's lanes, row-major inside the register), and the
//! `x` values it multiplies are the `C'` consecutive inputs of those
//! columns, each repeated `R'` times: one broadcast load (`C'` = 1, 2, 4, 8)
//! or a plain load (`C'` = the lanes). Each lane then accumulates one row
//! over the columns congruent to it modulo `C'`; the `C'` lanes of a row are
//! added once at the end of the pass. A pass holds `G` sub-tiles of rows,
//! so `G · B` accumulators: per step of `C'` columns the kernel loads `G`
//! weight vectors and `B` input vectors for `G · B` multiply-adds.
//!
//! In memory each block is its passes in order; a pass is its column steps
//! in order; a step is its `G` sub-tiles, one vector each. A pass therefore
//! reads one contiguous stretch of each block.

use crate::kernels::simd::SimdLevel;

/// Which file's kernels run a matrix's products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    /// 512-bit vectors (`avx512.rs`).
    Zmm,
    /// 256-bit vectors (`avx2.rs`).
    Ymm,
    /// 128-bit vectors (`avx2.rs`).
    Xmm,
    /// Row-major blocks and plain Rust (`portable.rs`).
    Portable,
}

/// The order of a block's values and the kernel shape that reads them (see
/// the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Layout {
    pub family: Family,
    /// Floats per vector (the portable layout: the block's columns).
    pub lanes: usize,
    /// Columns per sub-tile, `C'`.
    pub cp: usize,
    /// Sub-tiles of rows per pass, `G`.
    pub groups: usize,
}

/// Batch tile sizes the kernels are compiled for, largest first: a batch is
/// cut into the largest that fit (and whose accumulators fit the registers).
pub(super) const TILE_SIZES: [usize; 8] = [24, 12, 8, 6, 4, 3, 2, 1];

/// Accumulators (`G · B`) one call may hold in 512-bit registers: 24 of the
/// 32, leaving the `G` weight vectors and an input vector.
pub(super) const ZMM_ACCUMULATORS: usize = 24;
/// The same with 16 registers (AVX2).
pub(super) const YMM_ACCUMULATORS: usize = 12;

impl Layout {
    /// The layout for `r x c` blocks at `level`: the widest vectors whose
    /// sub-tile fits the block, and among them one whose inputs are a
    /// broadcast of one or two floats (a plain load; a 4-float broadcast
    /// also takes a shuffle) with as many rows as fit: 8 x 2 sub-tiles
    /// where they fit, two per pass (16 x 16, 32 x 32), then 4 x 4
    /// (docs/tuning.md, "BSR"). Layouts of one sub-tile per pass (`G` = 1)
    /// share their order with the entry kernel ([`Layout::entry_shape`]).
    pub fn choose(level: SimdLevel, r: usize, c: usize) -> Layout {
        let portable = Layout {
            family: Family::Portable,
            lanes: c,
            cp: c,
            groups: 1,
        };
        if !cfg!(target_arch = "x86_64") || level < SimdLevel::Avx2Fma {
            return portable;
        }
        let fits = |rows: usize, cols: usize| r.is_multiple_of(rows) && c.is_multiple_of(cols);
        let with = |family: Family, lanes: usize, cp: usize, max_groups: usize| {
            let sub_rows = lanes / cp;
            let groups = [4, 2, 1]
                .into_iter()
                .find(|&g| g <= max_groups && (r / sub_rows).is_multiple_of(g))
                .unwrap_or(1);
            Layout { family, lanes, cp, groups }
        };
        if level == SimdLevel::Avx512 {
            let zmm = |cp, max_groups| with(Family::Zmm, 16, cp, max_groups);
            if fits(8, 2) {
                return zmm(2, 2);
            }
            if fits(4, 4) {
                return zmm(4, 1);
            }
            if fits(1, 16) {
                return zmm(16, 1);
            }
            if fits(16, 1) {
                return zmm(1, 1);
            }
            if fits(2, 8) {
                return zmm(8, 1);
            }
        }
        let ymm = |cp, max_groups| with(Family::Ymm, 8, cp, max_groups);
        let xmm = |cp| with(Family::Xmm, 4, cp, 1);
        if fits(8, 1) {
            ymm(1, 2)
        } else if fits(1, 8) {
            ymm(8, 1)
        } else if fits(4, 2) {
            ymm(2, 1)
        } else if fits(2, 4) {
            ymm(4, 1)
        } else if fits(1, 4) {
            xmm(4)
        } else if fits(4, 1) {
            xmm(1)
        } else if fits(2, 2) {
            xmm(2)
        } else {
            portable
        }
    }

    /// Rows per sub-tile, `R'`.
    pub fn sub_rows(&self) -> usize {
        self.lanes / self.cp
    }

    /// Rows per pass, `RP = G · R'` (divides the block's rows).
    pub fn pass_rows(&self) -> usize {
        self.groups * self.sub_rows()
    }

    /// Where weight `(i, j)` of a block with `c` columns lies among the
    /// block's values.
    pub fn offset(&self, c: usize, i: usize, j: usize) -> usize {
        let rp = self.pass_rows();
        let (pass, i) = (i / rp, i % rp);
        let (g, ii) = (i / self.sub_rows(), i % self.sub_rows());
        let (step, jj) = (j / self.cp, j % self.cp);
        pass * rp * c + (step * self.groups + g) * self.lanes + ii * self.cp + jj
    }

    /// The entry kernel's shape for this layout at `level` (`CP`, rows per
    /// pass, most input vectors), where one is compiled: AVX-512 layouts
    /// whose pass is one sub-tile (`G` = 1), so that the two kernels read
    /// the same order of values.
    pub fn entry_shape(&self, level: SimdLevel) -> Option<(usize, usize, usize)> {
        if level != SimdLevel::Avx512 || self.groups != 1 || self.family == Family::Portable {
            return None;
        }
        match (self.cp, self.pass_rows()) {
            (4, 4) => Some((4, 4, 6)),
            (4, 1) => Some((4, 1, 8)),
            (2, 8) => Some((2, 8, 3)),
            // 4-row blocks one or two words wide (int8 and bf16 4 x 4),
            // whose 128- and 256-bit sub-tiles hold 16 multiply-adds.
            (1, 4) => Some((1, 4, 6)),
            (2, 4) => Some((2, 4, 6)),
            _ => None,
        }
    }

    /// Batches from which the entry kernel runs this layout (where it has
    /// one): earlier for 4-row passes of 128- and 256-bit sub-tiles, whose
    /// block kernel does 4 or 8 lanes of work per instruction to the entry
    /// kernel's 16.
    pub fn entry_min_batch(&self) -> usize {
        if self.family != Family::Zmm && self.pass_rows() == 4 {
            super::run::NARROW_ENTRY_MIN_BATCH
        } else {
            super::run::ENTRY_MIN_BATCH
        }
    }

    /// Accumulators one kernel call may hold.
    pub fn accumulators(&self) -> usize {
        match self.family {
            Family::Zmm => ZMM_ACCUMULATORS,
            _ => YMM_ACCUMULATORS,
        }
    }

    /// The batch tile sizes this layout's kernels take, largest first.
    pub fn tile_sizes(&self) -> impl Iterator<Item = usize> + '_ {
        TILE_SIZES.into_iter().filter(|&b| b * self.groups <= self.accumulators())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every weight of a block has its own offset inside the block.
    #[test]
    fn offsets_are_a_permutation_of_the_block() {
        for level in [SimdLevel::Portable, SimdLevel::Avx2Fma, SimdLevel::Avx512] {
            for (r, c) in [
                (1, 1),
                (1, 4),
                (4, 4),
                (8, 8),
                (16, 16),
                (32, 32),
                (16, 1),
                (1, 16),
                (3, 5),
                (2, 6),
                (12, 8),
            ] {
                let layout = Layout::choose(level, r, c);
                assert!(
                    r.is_multiple_of(layout.pass_rows()) && c.is_multiple_of(layout.cp),
                    "{r}x{c}: {layout:?}"
                );
                let mut seen = vec![false; r * c];
                for i in 0..r {
                    for j in 0..c {
                        let o = layout.offset(c, i, j);
                        assert!(!seen[o], "{r}x{c} {layout:?}: ({i}, {j}) shares offset {o}");
                        seen[o] = true;
                    }
                }
            }
        }
    }

    #[test]
    fn shapes_take_the_expected_vectors() {
        if !cfg!(target_arch = "x86_64") {
            return;
        }
        let zmm = |r, c| Layout::choose(SimdLevel::Avx512, r, c);
        assert_eq!((zmm(16, 16).cp, zmm(16, 16).groups), (2, 2));
        assert_eq!((zmm(32, 32).cp, zmm(32, 32).groups, zmm(32, 32).pass_rows()), (2, 2, 16));
        assert_eq!((zmm(8, 8).cp, zmm(8, 8).groups), (2, 1));
        assert_eq!((zmm(4, 4).cp, zmm(4, 4).groups), (4, 1));
        assert_eq!((zmm(1, 16).cp, zmm(16, 1).cp), (16, 1));
        assert_eq!(zmm(1, 4).family, Family::Xmm);
        assert_eq!(zmm(3, 3).family, Family::Portable);
        assert_eq!(Layout::choose(SimdLevel::Avx2Fma, 16, 16).family, Family::Ymm);
        assert_eq!(Layout::choose(SimdLevel::Portable, 16, 16).family, Family::Portable);
    }
}
