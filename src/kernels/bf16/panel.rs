//! `B` rounded to bf16 and packed into column panels of pairs of steps,
//! the layout `vdpbf16ps` reads ([`Bf16PackedMatrix`]).

use super::PANEL;
use super::blocking::{PAIR, PAIR_ROW};
use super::convert::{from_bf16, to_bf16};
use super::micro::Bf16Kernel;
use crate::kernels::lowp::AlignedBuf;

/// A `k x n` matrix (`wᵀ` of a row-major `n x k` weight) rounded to bf16
/// (to nearest, ties to even) and packed for the bf16 kernels of one
/// instruction set, resolved when it is packed.
///
/// Layout: `ceil(n / 32)` panels of `ceil(k / 2)` pair rows; a pair row
/// holds, for each of the panel's 32 columns, the weights of two
/// consecutive steps (128 bytes: one 32-bit lane per column, as
/// `vdpbf16ps` reads them). Padding (past `k`, past `n`) is zero.
#[derive(Debug, Clone)]
pub struct Bf16PackedMatrix {
    pub(super) k: usize,
    pub(super) n: usize,
    pub(super) kernel: Bf16Kernel,
    pub(super) panels: AlignedBuf<u16>,
}

impl Bf16PackedMatrix {
    /// Rounds and packs `wᵀ` for a row-major weight `w` of `n x k` (the
    /// canonical layout of every LSTM and projection weight), so `A · wᵀ`
    /// can run, for the widest bf16 kernels this CPU has
    /// ([`Bf16Kernel::detect`]). Done once per weight. Panics if `w` is
    /// not `n · k` long.
    pub fn pack_transposed(w: &[f32], n: usize, k: usize) -> Bf16PackedMatrix {
        Self::pack_transposed_for(w, n, k, Bf16Kernel::detect())
    }

    /// [`Bf16PackedMatrix::pack_transposed`] for the kernels of `kernel`
    /// (which the CPU must have: one of [`Bf16Kernel::available`]).
    pub fn pack_transposed_for(w: &[f32], n: usize, k: usize, kernel: Bf16Kernel) -> Bf16PackedMatrix {
        assert_eq!(w.len(), n * k, "Bf16PackedMatrix: {} weights for {n}x{k}", w.len());
        let pairs = k.div_ceil(PAIR);
        let mut panels = AlignedBuf::<u16>::zeroed(n.div_ceil(PANEL) * pairs * PAIR_ROW);
        let out = panels.as_mut_slice();
        for j in 0..n {
            let (p, l) = (j / PANEL, j % PANEL);
            let panel = &mut out[p * pairs * PAIR_ROW..(p + 1) * pairs * PAIR_ROW];
            for (kk, &v) in w[j * k..(j + 1) * k].iter().enumerate() {
                panel[(kk / PAIR) * PAIR_ROW + l * PAIR + kk % PAIR] = to_bf16(v);
            }
        }
        Bf16PackedMatrix { k, n, kernel, panels }
    }

    /// Rows of the packed matrix (the inner dimension of a product).
    pub fn k(&self) -> usize {
        self.k
    }
    /// Columns of the packed matrix (the output width of a product).
    pub fn n(&self) -> usize {
        self.n
    }
    /// The kernels this matrix was packed for.
    pub fn kernel(&self) -> Bf16Kernel {
        self.kernel
    }
    /// Bytes of the packed weights.
    pub fn bytes(&self) -> usize {
        self.panels.bytes()
    }
    /// The rounded weight of column `j` (output `j`) at step `p` of `k`, as f32.
    pub fn value(&self, j: usize, p: usize) -> f32 {
        assert!(j < self.n && p < self.k, "({j}, {p}) of a {}x{} matrix", self.k, self.n);
        let pairs = self.pairs();
        from_bf16(self.panels.as_slice()[(j / PANEL) * pairs * PAIR_ROW + (p / PAIR) * PAIR_ROW + (j % PANEL) * PAIR + p % PAIR])
    }
    /// Pair rows per panel.
    pub(super) fn pairs(&self) -> usize {
        self.k.div_ceil(PAIR)
    }
    /// Panel `p`'s pair rows.
    pub(super) fn panel(&self, p: usize) -> &[u16] {
        let len = self.pairs() * PAIR_ROW;
        &self.panels.as_slice()[p * len..(p + 1) * len]
    }
}
