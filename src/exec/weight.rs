//! A weight matrix prepared for one kernel backend.

use crate::kernels::{MatMut, MatRef, PackedMatrix, SimdLevel, gemm, packed_gemm};

/// Which GEMM runs the products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// Weights packed once into panels; issbench's own micro-kernel
    /// (runtime-selected AVX-512 / AVX2 / NEON / portable).
    #[default]
    Packed,
    /// `kernels::gemm`: rayon over `matrixmultiply::sgemm`, with the skinny
    /// path for 1–4 rows. The portable reference backend.
    Matrixmultiply,
}

impl Backend {
    /// Name with the SIMD level, as recorded in results.
    pub fn describe(self) -> String {
        match self {
            Backend::Packed => format!("packed-{}", SimdLevel::detect().name()),
            Backend::Matrixmultiply => "matrixmultiply".to_string(),
        }
    }
    /// Parses `packed` or `matrixmultiply` (also `mm`).
    pub fn parse(s: &str) -> Option<Backend> {
        match s {
            "packed" => Some(Backend::Packed),
            "matrixmultiply" | "mm" => Some(Backend::Matrixmultiply),
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
}

impl PreparedWeight {
    /// Prepares `w` (`[n, k]`, row-major) for `backend`.
    pub fn new(backend: Backend, w: &[f32], n: usize, k: usize) -> Self {
        match backend {
            Backend::Packed => PreparedWeight::Packed(PackedMatrix::pack_transposed(w, n, k)),
            Backend::Matrixmultiply => PreparedWeight::Plain { w: w.to_vec(), n, k },
        }
    }
    /// The packed panels, when prepared for [`Backend::Packed`].
    pub fn packed(&self) -> Option<&PackedMatrix> {
        match self {
            PreparedWeight::Packed(p) => Some(p),
            PreparedWeight::Plain { .. } => None,
        }
    }
    /// `C = A · Wᵀ`, or `C += A · Wᵀ` with `accumulate`.
    pub fn apply(&self, a: MatRef, c: &mut MatMut, accumulate: bool) {
        match self {
            PreparedWeight::Packed(p) => packed_gemm(a, p, c, accumulate),
            PreparedWeight::Plain { w, n, k } => gemm(a, MatRef::row_major(w, *n, *k).t(), c, accumulate),
        }
    }
}
