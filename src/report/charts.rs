//! Charts (placeholder being written).
