//! What a measurement runs: the one list of modes shared by the command
//! line, sweep specs, result rows and charts. Each mode serialises to the
//! string result CSVs have always used (`dense`, `iss`, `csr`, `ort-dense`,
//! `ort-iss`).

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
    pub const ALL: [Mode; 5] = [Mode::Dense, Mode::Iss, Mode::Csr, Mode::OrtDense, Mode::OrtIss];

    /// The name in result rows and specs.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Dense => "dense",
            Mode::Iss => "iss",
            Mode::Csr => "csr",
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

    /// The issbench mode whose model this one runs (itself for issbench's).
    pub fn model_mode(self) -> Mode {
        match self {
            Mode::OrtDense => Mode::Dense,
            Mode::OrtIss => Mode::Iss,
            m => m,
        }
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
        assert_eq!(Mode::Iss.on_peer().map(Mode::model_mode), Some(Mode::Iss));
    }
}
