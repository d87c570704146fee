//! Numeric kernels: matrix views, GEMM (general and pre-packed), activations.

pub mod activations;
pub mod csr;
pub mod gemm;
pub mod matrix;
pub mod packed;
pub mod simd;

pub use csr::{CsrMatrix, csr_matmul};
pub use gemm::{gemm, gemm_reference};
pub use matrix::{MatMut, MatRef};
pub use packed::{Epilogue, PANEL, PackedMatrix, PanelView, packed_gemm, packed_gemm_then};
pub use simd::SimdLevel;
