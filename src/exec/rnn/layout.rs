//! Where a direction's gate rows go in the packed weights the team forward
//! multiplies: in blocks of units whose gates sit side by side, so that a
//! worker that computes a block's panels can update those units at once,
//! while their gates are in its cache.
//!
//! | cell | units per block | block | panels per block |
//! |---|---|---|---|
//! | LSTM | 8 | `i f g o`, 8 rows each | 1 |
//! | GRU | 32 | `r z n`, 32 rows each | 3 |
//! | RHN (per micro-layer) | 16 | `H T`, 16 rows each | 1 |
//!
//! The last block of a direction may hold fewer units: its gates are then
//! as many rows each, still side by side.

use crate::kernels::PANEL;
use crate::model::Cell;

/// The block layout of one direction's gate rows (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct GateLayout {
    /// Hidden units.
    pub hidden: usize,
    /// Gates per unit in one product (LSTM 4, GRU 3, RHN 2 per micro-layer).
    pub gates: usize,
    /// Units per block.
    pub units: usize,
}

impl GateLayout {
    /// The layout of `cell`'s products for `hidden` units.
    pub fn of(cell: Cell, hidden: usize) -> GateLayout {
        let (gates, units) = match cell {
            Cell::Lstm => (4, PANEL / 4),
            Cell::Gru { .. } => (3, PANEL),
            Cell::Rhn { .. } => (2, PANEL / 2),
        };
        GateLayout { hidden, gates, units }
    }
    /// Panels a whole block fills.
    pub fn panels_per_block(&self) -> usize {
        self.gates * self.units / PANEL
    }
    /// Blocks of units.
    pub fn blocks(&self) -> usize {
        self.hidden.div_ceil(self.units)
    }
    /// Panels of the product (the last block's may be fewer).
    pub fn panels(&self) -> usize {
        (self.gates * self.hidden).div_ceil(PANEL)
    }
    /// Gate rows of one product in block order: for each block of units,
    /// gate 0's rows, then gate 1's, and so on (canonical row `g·h + u`).
    pub fn rows(&self) -> Vec<usize> {
        let h = self.hidden;
        let mut order = Vec::with_capacity(self.gates * h);
        for u0 in (0..h).step_by(self.units) {
            let units = u0..(u0 + self.units).min(h);
            for g in 0..self.gates {
                order.extend(units.clone().map(|u| g * h + u));
            }
        }
        order
    }
    /// The panels of blocks `blocks`.
    pub fn panels_of(&self, blocks: std::ops::Range<usize>) -> std::ops::Range<usize> {
        let ppb = self.panels_per_block();
        (blocks.start * ppb).min(self.panels())..(blocks.end * ppb).min(self.panels())
    }
    /// The units of the blocks panels `panels` belong to (a range
    /// [`GateLayout::panels_of`] gave).
    pub fn units_of(&self, panels: std::ops::Range<usize>) -> std::ops::Range<usize> {
        let ppb = self.panels_per_block();
        let blocks = panels.start / ppb..panels.end.div_ceil(ppb);
        (blocks.start * self.units).min(self.hidden)..(blocks.end * self.units).min(self.hidden)
    }
    /// Where unit `u0`'s block starts among the gate values of a row.
    pub fn block_start(&self, u0: usize) -> usize {
        debug_assert_eq!(u0 % self.units, 0);
        self.gates * u0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_blocks_and_panels_agree() {
        for cell in [Cell::Lstm, Cell::Gru { reset_after: true }, Cell::Rhn { depth: 3 }] {
            for h in [1, 7, 8, 15, 16, 31, 32, 33, 65, 100] {
                let l = GateLayout::of(cell, h);
                let rows = l.rows();
                let mut sorted = rows.clone();
                sorted.sort_unstable();
                assert_eq!(sorted, (0..l.gates * h).collect::<Vec<_>>(), "{cell:?} {h}");
                assert_eq!(l.panels_of(0..l.blocks()), 0..l.panels());
                // Every block's units map to the block's panels and back.
                for b in 0..l.blocks() {
                    let p = l.panels_of(b..b + 1);
                    assert!(!p.is_empty());
                    let u = l.units_of(p);
                    assert_eq!(u, b * l.units..((b + 1) * l.units).min(h));
                    // The block's gate rows start where the block starts.
                    assert_eq!(rows[l.block_start(u.start)], u.start);
                }
            }
        }
    }
}
