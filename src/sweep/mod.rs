//! Sweeps: the cross product of models, hidden sizes, kept fractions, modes,
//! batch sizes, sequence lengths and thread counts (or of sparse GEMM
//! problems and batch sizes), measured point by point into one CSV
//! ([`crate::report::Row`]).

mod runner;
mod spec;

pub use runner::{
    PointExecutor, Prepared, RowCallback, Session, SweepError, SweepOptions, SweepSummary, complete_row, dense_key, run_sweep,
};
pub use spec::{GemmShape, Grid, Mode, PRESETS, Point, Source, SpecError, SweepSpec};
