//! One path for every measurement (docs/design.md): a [`Point`] names a
//! model source and how to run it; a [`Session`] builds the source's model
//! instances (full, ISS-compacted, magnitude-pruned), verifies each against
//! dense once, and prepares the point's executor; the modes of a point (a
//! case) are timed together in rounds taken in turn
//! ([`Session::measure_case`]), each into a [`crate::report::Row`] with its
//! paired speedup, its interval and its [`flags`]. `issbench run`, the
//! sweep and the criterion bench all measure through it.

mod case;
pub mod flags;
mod gemm;
pub mod host;
mod instance;
mod machine;
mod peer_file;
mod point;
mod session;

pub use case::CaseOptions;
pub use machine::{Machine, PoolError};
pub use point::{GemmShape, IssSettings, Point, Source};
pub use session::{PointExecutor, Prepared, Session};
