//! Sweeps: the cross product of models, hidden sizes, kept fractions, modes,
//! batch sizes, sequence lengths and thread counts (or of sparse GEMM
//! problems and batch sizes), measured point by point through the
//! [`crate::pipeline`] into one CSV of [`crate::report::Row`]s.

mod runner;
mod shard;
mod spec;

pub use runner::{RepeatSpread, RowCallback, SweepError, SweepOptions, SweepSummary, budget, run_sweep};
pub use shard::{MAX_SHARDS, Shard, balance, case_seconds};
pub use spec::{GemmShape, Grid, IssSettings, Mode, PRESETS, Point, Source, SpecError, SweepSpec};
