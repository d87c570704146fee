//! Executors: prepare a model once, then run forward passes over
//! `[seq, batch]` inputs without allocating inside the timed loop.
//!
//! Every mode (`dense`, `iss`, `csr`) implements [`Executor`], so the
//! measurement code is the same for all of them.

mod gemm;
mod rnn;
mod team_product;
mod weight;

pub use gemm::GemmExecutor;
pub use rnn::RnnExecutor;
pub use team_product::TeamWeight;
pub use weight::{Backend, PreparedWeight, UnsupportedPrecision};

use thiserror::Error;

use crate::model::{Inputs, ModelError};

/// Why an executor could not be prepared or run.
#[derive(Debug, Error)]
pub enum ExecError {
    /// The inputs do not fit the model.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A backend that cannot run on this machine or for this model.
    #[error("backend {0}")]
    Backend(String),
    /// A precision the backend does not run.
    #[error(transparent)]
    Precision(#[from] UnsupportedPrecision),
}

/// A prepared model that runs forward passes.
pub trait Executor {
    /// The mode measured (`dense`, `iss`, `csr`).
    fn mode(&self) -> &str;
    /// Kernel backend, with the SIMD level it runs at (for CSV rows).
    fn backend(&self) -> String;
    /// Nanoseconds spent preparing the weights (packing, CSR conversion):
    /// reported apart from run time, as DeepBench does.
    fn prepare_ns(&self) -> u64;
    /// Runs the model over `inputs` from zero initial state and returns the
    /// outputs `[seq, batch, width]` (logits with a head, else the last
    /// layer's hidden states). Buffers are reused between calls; they grow
    /// only when a call needs more than any call before.
    fn run(&mut self, inputs: &Inputs) -> Result<&[f32], ExecError>;
}
