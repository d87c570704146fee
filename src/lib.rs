//! issbench: how much faster does an LSTM run after Intrinsic Sparse
//! Structures pruning, on this machine?
//!
//! Data flow (see DESIGN.md): a [`model::Model`] (synthetic or loaded) is
//! prepared by an [`exec::Executor`], timed by [`measure`], and reported.

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
pub mod prune;
pub mod report;
pub mod sweep;
