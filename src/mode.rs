//! What a measurement runs: the one list of modes shared by the command
//! line, sweep specs, result rows and charts. Each mode serialises to the
//! string result CSVs have always used (`dense`, `iss`, `csr`, `bsr`,
//! `ort-dense`, `ort-iss`); [`BlockShape`] is the block of the `bsr` mode.

use serde::{Deserialize, Serialize};

/// A way of running a model, by issbench or by a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum)]
pub enum Mode {
    /// The full-width model, zeros included.
    #[serde(rename = "dense")]
    Dense,
    /// The ISS-compacted model: analyzed, compacted, verified, then timed.
    #[serde(rename = "iss")]
    Iss,
    /// Unstructured sparsity on the CSR kernel: the full model
    /// magnitude-pruned to the ISS model's weight count (or to a sparsity).
    #[serde(rename = "csr")]
    Csr,
    /// Block sparsity on the BSR kernel: the full model block-pruned (by
    /// the blocks' magnitude) to the ISS model's weight count (or to a
    /// sparsity), in blocks of the point's [`BlockShape`].
    #[serde(rename = "bsr")]
    Bsr,
    /// The full model on ONNX Runtime (`--peer ort`).
    #[serde(rename = "ort-dense")]
    #[value(skip)]
    OrtDense,
    /// The compacted model on ONNX Runtime.
    #[serde(rename = "ort-iss")]
    #[value(skip)]
    OrtIss,
}

impl Mode {
    /// Every mode, in the order tables and legends list them.
    pub const ALL: [Mode; 6] = [Mode::Dense, Mode::Iss, Mode::Csr, Mode::Bsr, Mode::OrtDense, Mode::OrtIss];

    /// The name in result rows and specs.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Dense => "dense",
            Mode::Iss => "iss",
            Mode::Csr => "csr",
            Mode::Bsr => "bsr",
            Mode::OrtDense => "ort-dense",
            Mode::OrtIss => "ort-iss",
        }
    }

    /// The mode called `name`, if any.
    pub fn parse(name: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Whether a peer (not issbench) runs it.
    pub fn is_peer(self) -> bool {
        matches!(self, Mode::OrtDense | Mode::OrtIss)
    }

    /// The peer's mode that runs the same model as this one, if the peer
    /// can run it.
    pub fn on_peer(self) -> Option<Mode> {
        match self {
            Mode::Dense => Some(Mode::OrtDense),
            Mode::Iss => Some(Mode::OrtIss),
            _ => None,
        }
    }

    /// Whether the mode runs a pruned twin of the full model on a sparse
    /// kernel (csr, bsr).
    pub fn is_sparse(self) -> bool {
        matches!(self, Mode::Csr | Mode::Bsr)
    }

    /// The issbench mode whose model this one runs (itself for issbench's).
    pub fn model_mode(self) -> Mode {
        match self {
            Mode::OrtDense => Mode::Dense,
            Mode::OrtIss => Mode::Iss,
            m => m,
        }
    }
}

/// The block of block sparsity: `rows x cols` weights kept or pruned
/// together, written `16x16` in specs, rows and charts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockShape {
    pub rows: usize,
    pub cols: usize,
}

/// Largest side of a block (the kernels' passes hold at most 16 rows; wider
/// blocks are cut into passes, and 64 covers the shapes in the literature).
pub const MAX_BLOCK_SIDE: usize = 64;

impl BlockShape {
    /// The 16x16 blocks of the block-sparse RNN paper's headline results.
    pub const DEFAULT: BlockShape = BlockShape { rows: 16, cols: 16 };

    /// Parses `RxC` (1 to [`MAX_BLOCK_SIDE`] each).
    pub fn parse(s: &str) -> Result<BlockShape, String> {
        let bad = || format!("block '{s}': give ROWSxCOLS, each 1 to {MAX_BLOCK_SIDE} (e.g. 16x16, 1x4)");
        let (r, c) = s.trim().split_once(['x', 'X']).ok_or_else(bad)?;
        let (rows, cols): (usize, usize) = (r.parse().map_err(|_| bad())?, c.parse().map_err(|_| bad())?);
        if !(1..=MAX_BLOCK_SIDE).contains(&rows) || !(1..=MAX_BLOCK_SIDE).contains(&cols) {
            return Err(bad());
        }
        Ok(BlockShape { rows, cols })
    }

    /// `(rows, cols)`, as the kernels and pruning take it.
    pub fn pair(self) -> (usize, usize) {
        (self.rows, self.cols)
    }
}

impl std::fmt::Display for BlockShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.rows, self.cols)
    }
}

impl std::str::FromStr for BlockShape {
    type Err = String;
    fn from_str(s: &str) -> Result<BlockShape, String> {
        BlockShape::parse(s)
    }
}

impl Serialize for BlockShape {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BlockShape {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<BlockShape, D::Error> {
        let text = String::deserialize(d)?;
        BlockShape::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::Mode;

    #[test]
    fn names_round_trip_through_serde_and_parse() {
        for m in Mode::ALL {
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(json, format!("\"{}\"", m.name()));
            assert_eq!(serde_json::from_str::<Mode>(&json).unwrap(), m);
            assert_eq!(Mode::parse(m.name()), Some(m));
        }
        assert_eq!(Mode::parse("fast"), None);
        assert_eq!(super::BlockShape::parse("16x1"), Ok(super::BlockShape { rows: 16, cols: 1 }));
        for bad in ["0x4", "4", "65x1", "ax2", "4x4x4"] {
            assert!(super::BlockShape::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Mode::Iss.on_peer().map(Mode::model_mode), Some(Mode::Iss));
    }
}
