//! One path for every measurement (docs/design.md): a [`Point`] names a
//! model source and how to run it; a [`Session`] builds the source's model
//! instances (full, ISS-compacted, magnitude-pruned), verifies each against
//! dense once, prepares the point's executor, and times it into a
//! [`crate::report::Row`]. `issbench run`, the sweep and the criterion
//! bench all measure through it.

mod gemm;
mod instance;
mod machine;
mod point;
mod session;

pub use machine::{Machine, PoolError};
pub use point::{GemmShape, IssSettings, Point, Source};
pub use session::{PointExecutor, Prepared, Session};
