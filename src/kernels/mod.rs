//! Numeric kernels: matrix views, GEMM (general and pre-packed), sparse
//! products (CSR and block-sparse BSR), activations, and the persistent worker team the
//! recurrences run on. Each kernel family has its own folder, laid out the
//! way matrixmultiply lays out its own (blocking, packing, schedule, one
//! file per instruction set).

pub mod activations;
pub mod bf16;
pub mod bsr;
pub mod csr;
pub mod gemm;
pub mod int8;
pub(crate) mod lowp;
pub mod matrix;
pub mod packed;
pub mod simd;
pub mod team;

pub use bsr::{BsrMatrix, bsr_matmul};
pub use csr::{CsrMatrix, csr_matmul};
pub use gemm::{gemm, gemm_reference};
pub use lowp::SharedParts;
pub use matrix::{MatMut, MatRef};
pub use packed::{PANEL, PackedMatrix, PanelOrder, SharedOutput, packed_gemm, packed_gemm_bias, packed_gemm_claimed, packed_gemm_panels};
pub(crate) use packed::{
    Start, claim_granule, pack_a_part, packed_a_len, packed_gemm_claimed_from, packed_gemm_claimed_prepacked, reads_a_in_place,
};
pub use simd::SimdLevel;
