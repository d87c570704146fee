//! issbench: how much faster does an LSTM run after Intrinsic Sparse
//! Structures pruning, on this machine?
//!
//! Data flow (docs/design.md): a [`pipeline::Point`] names a model and how
//! to run it; the [`pipeline::Session`] builds the [`model::Model`]s
//! (full, ISS-compacted, pruned), verifies them, prepares an
//! [`exec::Executor`] and times it ([`measure`]) into a [`report::Row`],
//! which the reports read.

pub mod checkpoint;
pub mod deepbench;
pub mod exec;
pub mod fuzz;
pub mod hardware;
pub mod inspect;
pub mod iss;
pub mod kernels;
pub mod measure;
pub mod mode;
pub mod model;
pub mod onnx;
pub mod peer;
pub mod pipeline;
pub mod precision;
pub mod prune;
pub mod report;
pub mod sweep;
