//! A weight matrix prepared for one kernel backend.

use crate::kernels::{CsrMatrix, MatMut, MatRef, PackedMatrix, SimdLevel, csr_matmul, gemm, packed_gemm, packed_gemm_bias};
use rayon::prelude::*;

/// Which GEMM runs the products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Backend {
    /// Weights packed once into panels; issbench's own micro-kernel
    /// (runtime-selected AVX-512 / AVX2 / NEON / portable).
    #[default]
    Packed,
    /// `kernels::gemm`: rayon over `matrixmultiply::sgemm`, with the skinny
    /// path for 1–4 rows. The portable reference backend.
    Matrixmultiply,
    /// Compressed sparse rows: only the nonzero weights are stored and
    /// multiplied (unstructured sparsity, the `csr` mode).
    Csr,
}

impl Backend {
    /// Name with the SIMD level, as recorded in results.
    pub fn describe(self) -> String {
        match self {
            Backend::Packed => format!("packed-{}", SimdLevel::detect().name()),
            Backend::Matrixmultiply => "matrixmultiply".to_string(),
            Backend::Csr => format!("csr-{}", SimdLevel::detect().name()),
        }
    }
    /// Parses `packed`, `matrixmultiply` (also `mm`) or `csr`.
    pub fn parse(s: &str) -> Option<Backend> {
        match s {
            "packed" => Some(Backend::Packed),
            "matrixmultiply" | "mm" => Some(Backend::Matrixmultiply),
            "csr" => Some(Backend::Csr),
            _ => None,
        }
    }
}

/// A row-major weight `W` of `[n, k]`, prepared so that `C (+)= A · Wᵀ` runs
/// on the chosen backend.
#[derive(Debug, Clone)]
pub enum PreparedWeight {
    /// Packed panels of `Wᵀ`.
    Packed(PackedMatrix),
    /// `W` as it is; `Wᵀ` is a strided view of it.
    Plain { w: Vec<f32>, n: usize, k: usize },
    /// The nonzeros of `W`.
    Sparse(CsrMatrix),
}

impl PreparedWeight {
    /// Prepares `w` (`[n, k]`, row-major) for `backend`.
    pub fn new(backend: Backend, w: &[f32], n: usize, k: usize) -> Self {
        match backend {
            Backend::Packed => PreparedWeight::Packed(PackedMatrix::pack_transposed(w, n, k)),
            Backend::Matrixmultiply => PreparedWeight::Plain { w: w.to_vec(), n, k },
            Backend::Csr => PreparedWeight::Sparse(CsrMatrix::from_dense(w, n, k, 0.0).expect("model widths fit u32")),
        }
    }
    /// The packed panels, when prepared for [`Backend::Packed`].
    pub fn packed(&self) -> Option<&PackedMatrix> {
        match self {
            PreparedWeight::Packed(p) => Some(p),
            _ => None,
        }
    }
    /// `C = A · Wᵀ`, or `C += A · Wᵀ` with `accumulate`.
    pub fn apply(&self, a: MatRef, c: &mut MatMut, accumulate: bool) {
        match self {
            PreparedWeight::Packed(p) => packed_gemm(a, p, c, accumulate),
            PreparedWeight::Plain { w, n, k } => gemm(a, MatRef::row_major(w, *n, *k).t(), c, accumulate),
            PreparedWeight::Sparse(s) => csr_matmul(a, s, c, accumulate),
        }
    }
    /// `C = bias + A · Wᵀ` for a row-major `C` (`out`, `a.rows()` rows of
    /// `n`), `bias` added to every row. The packed kernel starts its
    /// accumulators from the bias; the others get `C` filled with it first.
    pub fn apply_with_bias(&self, a: MatRef, bias: &[f32], out: &mut [f32]) {
        let rows = a.rows();
        match self {
            PreparedWeight::Packed(p) => packed_gemm_bias(a, p, bias, &mut MatMut::row_major(out, rows, bias.len())),
            _ => {
                broadcast_rows(out, bias, rows);
                self.apply(a, &mut MatMut::row_major(out, rows, bias.len()), true);
            }
        }
    }
}

/// Copies `bias` into each of the first `rows` rows of the row-major `out`
/// (on the rayon pool when large).
pub(super) fn broadcast_rows(out: &mut [f32], bias: &[f32], rows: usize) {
    let (out, width) = (&mut out[..rows * bias.len()], bias.len().max(1));
    if out.len() >= PARALLEL_BROADCAST_MIN {
        out.par_chunks_mut(width).for_each(|row| row.copy_from_slice(bias));
    } else {
        for row in out.chunks_exact_mut(width) {
            row.copy_from_slice(bias);
        }
    }
}

/// Below this many floats [`broadcast_rows`] runs on the calling thread.
const PARALLEL_BROADCAST_MIN: usize = 1 << 16;
