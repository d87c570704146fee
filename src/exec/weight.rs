//! A weight matrix prepared for one kernel backend and precision.

use super::team_product::TeamWeight;
use crate::kernels::bf16::{Bf16PackedMatrix, bf16_gemm, bf16_gemm_bias};
use crate::kernels::int8::{Int8PackedMatrix, int8_gemm, int8_gemm_bias};
use crate::kernels::{
    BsrMatrix, CsrMatrix, MatMut, MatRef, PackedMatrix, SimdLevel, bsr_matmul, csr_matmul, gemm, packed_gemm, packed_gemm_bias,
};
use crate::mode::BlockShape;
use crate::precision::Precision;
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
    /// Block-sparse rows: the blocks of this shape that hold a nonzero are
    /// stored and multiplied whole (block sparsity, the `bsr` mode).
    Bsr(BlockShape),
}

impl Backend {
    /// Name with the SIMD level, as recorded in results.
    pub fn describe(self) -> String {
        match self {
            Backend::Packed => format!("packed-{}", SimdLevel::detect().name()),
            Backend::Matrixmultiply => "matrixmultiply".to_string(),
            Backend::Csr => format!("csr-{}", SimdLevel::detect().name()),
            Backend::Bsr(block) => format!("bsr-{}-{block}", SimdLevel::detect().name()),
        }
    }
    /// Whether the backend runs a sparse kernel (its model is pruned, its
    /// gate rows keep the canonical order).
    pub fn is_sparse(self) -> bool {
        matches!(self, Backend::Csr | Backend::Bsr(_))
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
pub enum PreparedWeight {
    /// Packed panels of `Wᵀ` at a precision (the team forward's products).
    Team(TeamWeight),
    /// `W` as it is; `Wᵀ` is a strided view of it.
    Plain { w: Vec<f32>, n: usize, k: usize },
    /// The nonzeros of `W`.
    Sparse(CsrMatrix),
    /// The blocks of `W` that hold a nonzero.
    Blocks(BsrMatrix),
}

/// A precision the backend does not run, or not for this weight.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UnsupportedPrecision {
    #[error("the {backend} backend runs fp32 only, not {precision} (bf16 and int8 run on the packed and bsr kernels)")]
    Backend { backend: &'static str, precision: Precision },
    /// More inputs than an int8 product's `i32` sums hold exactly.
    #[error("an int8 product sums at most {max} inputs in i32; this weight has {k}")]
    TooWideForInt8 { k: usize, max: usize },
}

impl PreparedWeight {
    /// Prepares `w` (`[n, k]`, row-major) for `backend` in fp32.
    pub fn new(backend: Backend, w: &[f32], n: usize, k: usize) -> Self {
        Self::at(backend, Precision::Fp32, w, n, k).expect("every backend runs fp32")
    }
    /// Prepares `w` (`[n, k]`, row-major) for `backend` at `precision`:
    /// bf16 and int8 run on the packed and bsr backends only.
    pub fn at(backend: Backend, precision: Precision, w: &[f32], n: usize, k: usize) -> Result<Self, UnsupportedPrecision> {
        let max = crate::kernels::int8::MAX_K;
        if precision == Precision::Int8 && k > max {
            return Err(UnsupportedPrecision::TooWideForInt8 { k, max });
        }
        Ok(match (backend, precision) {
            (Backend::Packed, Precision::Fp32) => PreparedWeight::Team(TeamWeight::F32(PackedMatrix::pack_transposed(w, n, k))),
            (Backend::Packed, Precision::Bf16) => PreparedWeight::Team(TeamWeight::Bf16(Bf16PackedMatrix::pack_transposed(w, n, k))),
            (Backend::Packed, Precision::Int8) => PreparedWeight::Team(TeamWeight::Int8(Int8PackedMatrix::pack_transposed(w, n, k))),
            (Backend::Matrixmultiply, Precision::Fp32) => PreparedWeight::Plain { w: w.to_vec(), n, k },
            (Backend::Csr, Precision::Fp32) => PreparedWeight::Sparse(CsrMatrix::from_dense(w, n, k, 0.0).expect("model widths fit u32")),
            (Backend::Matrixmultiply, precision) => {
                return Err(UnsupportedPrecision::Backend {
                    backend: "matrixmultiply",
                    precision,
                });
            }
            (Backend::Bsr(block), precision) => PreparedWeight::Blocks(
                BsrMatrix::from_dense_with(w, n, k, block.pair(), precision, SimdLevel::detect())
                    .expect("blocks of 1 to 64 and model widths fit the index and int8's sums"),
            ),
            (Backend::Csr, precision) => return Err(UnsupportedPrecision::Backend { backend: "csr", precision }),
        })
    }
    /// The packed panels at some precision, when prepared for [`Backend::Packed`].
    pub(super) fn team(&self) -> Option<&TeamWeight> {
        match self {
            PreparedWeight::Team(t) => Some(t),
            _ => None,
        }
    }
    /// `C = A · Wᵀ`, or `C += A · Wᵀ` with `accumulate`.
    pub fn apply(&self, a: MatRef, c: &mut MatMut, accumulate: bool) {
        match self {
            PreparedWeight::Team(TeamWeight::F32(p)) => packed_gemm(a, p, c, accumulate),
            PreparedWeight::Team(TeamWeight::Bf16(p)) => bf16_gemm(a, p, c, accumulate),
            PreparedWeight::Team(TeamWeight::Int8(p)) => int8_gemm(a, p, c, accumulate),
            PreparedWeight::Plain { w, n, k } => gemm(a, MatRef::row_major(w, *n, *k).t(), c, accumulate),
            PreparedWeight::Sparse(s) => csr_matmul(a, s, c, accumulate),
            PreparedWeight::Blocks(b) => bsr_matmul(a, b, c, accumulate),
        }
    }
    /// `C = bias + A · Wᵀ` for a row-major `C` (`out`, `a.rows()` rows of
    /// `n`), `bias` added to every row. The packed kernel starts its
    /// accumulators from the bias; the others get `C` filled with it first.
    pub fn apply_with_bias(&self, a: MatRef, bias: &[f32], out: &mut [f32]) {
        let rows = a.rows();
        let mut c = MatMut::row_major(out, rows, bias.len());
        match self {
            PreparedWeight::Team(TeamWeight::F32(p)) => packed_gemm_bias(a, p, bias, &mut c),
            PreparedWeight::Team(TeamWeight::Bf16(p)) => bf16_gemm_bias(a, p, bias, &mut c),
            PreparedWeight::Team(TeamWeight::Int8(p)) => int8_gemm_bias(a, p, bias, &mut c),
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
