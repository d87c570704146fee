//! `B` quantized to `s8` per output column and packed into column panels
//! in the layout the `vpdpbusd` kernels read ([`Int8PackedMatrix`]).

use super::PANEL;
use super::blocking::{GROUP, GROUP_ROW_BYTES, MAX_K};
use super::micro::Int8Kernel;
use crate::kernels::lowp::AlignedBuf;

/// A `k x n` matrix (`wᵀ` of a row-major `n x k` weight) quantized
/// symmetrically to `s8`, one scale per column (per output row of `w`),
/// and packed for the int8 kernels of one instruction set, resolved when
/// it is packed.
///
/// Layout: `ceil(n / 32)` panels of `ceil(k / 4)` group rows; a group row
/// holds, for each of the panel's 32 columns, the 4 consecutive weights of
/// one group of `k` (128 bytes: one 32-bit lane per column, as
/// `vpdpbusd` reads them). Padding (past `k`, past `n`) is zero.
#[derive(Debug, Clone)]
pub struct Int8PackedMatrix {
    pub(super) k: usize,
    pub(super) n: usize,
    pub(super) kernel: Int8Kernel,
    pub(super) panels: AlignedBuf<i8>,
    /// Each column's scale (`w ≈ scale · q`), zero past `n` up to whole panels.
    pub(super) scales: Vec<f32>,
    /// Each column's sum of quantized weights (for the zero point of `A`),
    /// zero past `n` up to whole panels.
    pub(super) col_sums: Vec<i32>,
}

/// The symmetric `s8` scale of a row whose largest magnitude is `amax`:
/// `amax / 127`, or 1 for an all-zero row (ONNX Runtime's choice).
pub(crate) fn weight_scale(amax: f32) -> f32 {
    if amax > 0.0 { amax / 127.0 } else { 1.0 }
}

/// `w / scale` rounded half to even, within `[-127, 127]`.
pub(crate) fn quantize_weight(w: f32, scale: f32) -> i8 {
    (w / scale).round_ties_even().clamp(-127.0, 127.0) as i8
}

impl Int8PackedMatrix {
    /// Quantizes and packs `wᵀ` for a row-major weight `w` of `n x k` (the
    /// canonical layout of every LSTM and projection weight), so `A · wᵀ`
    /// can run, for the widest int8 kernels this CPU has
    /// ([`Int8Kernel::detect`]). Done once per weight.
    ///
    /// Panics if `w` is not `n · k` long or `k` exceeds 65536 (where an
    /// `i32` sum of `k` products of `u8 x s8` could overflow).
    pub fn pack_transposed(w: &[f32], n: usize, k: usize) -> Int8PackedMatrix {
        Self::pack_transposed_for(w, n, k, Int8Kernel::detect())
    }

    /// [`Int8PackedMatrix::pack_transposed`] for the kernels of `kernel`
    /// (which the CPU must have: one of [`Int8Kernel::available`]).
    pub fn pack_transposed_for(w: &[f32], n: usize, k: usize, kernel: Int8Kernel) -> Int8PackedMatrix {
        assert_eq!(w.len(), n * k, "Int8PackedMatrix: {} weights for {n}x{k}", w.len());
        assert!(k <= MAX_K, "Int8PackedMatrix: k = {k} exceeds {MAX_K}");
        let panels = n.div_ceil(PANEL);
        let groups = k.div_ceil(GROUP);
        let mut packed = AlignedBuf::<i8>::zeroed(panels * groups * GROUP_ROW_BYTES);
        let mut scales = vec![0.0f32; panels * PANEL];
        let mut col_sums = vec![0i32; panels * PANEL];
        let out = packed.as_mut_slice();
        for j in 0..n {
            let row = &w[j * k..(j + 1) * k];
            let scale = weight_scale(row.iter().fold(0.0f32, |m, &v| m.max(v.abs())));
            scales[j] = scale;
            let (p, l) = (j / PANEL, j % PANEL);
            let panel = &mut out[p * groups * GROUP_ROW_BYTES..(p + 1) * groups * GROUP_ROW_BYTES];
            let mut sum = 0i32;
            for (kk, &v) in row.iter().enumerate() {
                let q = quantize_weight(v, scale);
                sum += i32::from(q);
                panel[(kk / GROUP) * GROUP_ROW_BYTES + l * GROUP + kk % GROUP] = q;
            }
            col_sums[j] = sum;
        }
        Int8PackedMatrix {
            k,
            n,
            kernel,
            panels: packed,
            scales,
            col_sums,
        }
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
    pub fn kernel(&self) -> Int8Kernel {
        self.kernel
    }
    /// Bytes of the packed weights (the scales and column sums aside).
    pub fn bytes(&self) -> usize {
        self.panels.bytes()
    }
    /// The quantized weight of column `j` (output `j`) at step `p` of `k`:
    /// `B[p][j] ≈ scales()[j] · quantized(j, p)`.
    pub fn quantized(&self, j: usize, p: usize) -> i8 {
        assert!(j < self.n && p < self.k, "({j}, {p}) of a {}x{} matrix", self.k, self.n);
        let groups = self.groups();
        self.panels.as_slice()[(j / PANEL) * groups * GROUP_ROW_BYTES + (p / GROUP) * GROUP_ROW_BYTES + (j % PANEL) * GROUP + p % GROUP]
    }
    /// Each column's scale (`n` values).
    pub fn scales(&self) -> &[f32] {
        &self.scales[..self.n]
    }
    /// Each column's sum of quantized weights (`n` values).
    pub fn col_sums(&self) -> &[i32] {
        &self.col_sums[..self.n]
    }
    /// Group rows per panel.
    pub(super) fn groups(&self) -> usize {
        self.k.div_ceil(GROUP)
    }
    /// Panel `p`'s group rows.
    pub(super) fn panel(&self, p: usize) -> &[i8] {
        let len = self.groups() * GROUP_ROW_BYTES;
        &self.panels.as_slice()[p * len..(p + 1) * len]
    }
}
