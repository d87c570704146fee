//! Target comparison (placeholder being written).
