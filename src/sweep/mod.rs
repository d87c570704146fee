//! Sweeps: the cross product of models, hidden sizes, kept fractions, modes,
//! batch sizes, sequence lengths and thread counts, measured point by point
//! into one CSV ([`crate::report::Row`]).

mod runner;
mod spec;

pub use runner::{Prepared, RowCallback, Session, SweepError, SweepOptions, SweepSummary, complete_row, dense_key, run_sweep};
pub use spec::{Grid, Mode, PRESETS, Point, Source, SpecError, SweepSpec};
