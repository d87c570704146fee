//! Intrinsic Sparse Structures: find the hidden units ISS training zeroed,
//! remove them, and prove the reduced model computes the same outputs.
//!
//! For a direction of a layer with hidden size `h`, component `k` is every
//! weight that touches hidden unit `k` (docs/design.md, "Models"):
//!
//! - *incoming*: every gate row of unit `k` in `w_ih` and `w_hh` (the rows
//!   `≡ k (mod h)`: 4 per matrix for LSTM, 3 for GRU, 2 and `2·depth` for
//!   an RHN);
//! - *outgoing*: column `k` of `w_hh`, and the unit's column in every
//!   consumer: each direction of the next layer's `w_ih` (at the
//!   direction's offset in the layer's output), or the output projection
//!   after the last layer (with tied weights, also the embedding's column,
//!   which is the first layer's input feature).
//!
//! A component whose outgoing weights are all zero influences nothing
//! downstream, so removing it is exact even though its biases (never grouped
//! by ISS training) are not zero.

mod analyze;
mod compact;
mod verify;

pub use analyze::{Consumer, IssReport, LayerReport, analyze};
pub use compact::{Compacted, compact, compact_with};
pub use verify::{
    Equivalence, VERIFY_BATCH, VERIFY_SEQ, Verified, against_dense, compact_verified, compare_outputs, verification_inputs, verify,
    verify_within, within_tolerance,
};

use thiserror::Error;

use crate::exec::ExecError;
use crate::model::ModelError;

/// Threshold the original ISS code uses to zero weights during training.
pub const DEFAULT_THRESHOLD: f32 = 1e-4;

/// Relative output error under which a compacted model is accepted.
pub const DEFAULT_TOLERANCE: f64 = 1e-4;

/// Why ISS analysis, compaction or verification failed.
#[derive(Debug, Error)]
pub enum IssError {
    /// The report was made for a model of another shape.
    #[error("the ISS report does not match the model: {0}")]
    ReportMismatch(String),
    /// A component the report marks removable still has outgoing weight in
    /// this model (the report came from another model).
    #[error("{layer}, unit {unit}: outgoing weight {value} exceeds the threshold {threshold}; it cannot be removed")]
    NotRemovable {
        layer: String,
        unit: usize,
        value: f32,
        threshold: f32,
    },
    /// Every unit of a layer would be removed.
    #[error("{layer}: all {hidden} units are removable; a layer must keep at least one")]
    NothingKept { layer: String, hidden: usize },
    /// The compacted model's outputs differ from the full model's.
    #[error("compacted model is not equivalent: max abs error {max_abs:e}, max relative error {max_rel:e} (tolerance {tolerance:e})")]
    NotEquivalent { max_abs: f64, max_rel: f64, tolerance: f64 },
    /// Building the reduced model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Running a model for verification failed.
    #[error(transparent)]
    Exec(#[from] ExecError),
}
