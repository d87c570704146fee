//! Numeric kernels: matrix views, GEMM (general and pre-packed), activations.

pub mod activations;
pub mod gemm;
pub mod matrix;
pub mod packed;
pub mod simd;

pub use gemm::{gemm, gemm_reference};
pub use matrix::{MatMut, MatRef};
pub use packed::{PackedMatrix, packed_gemm};
pub use simd::SimdLevel;
