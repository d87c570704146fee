//! The number format the products of a measurement run in: `fp32` (the
//! reference), `bf16` (weights and activations rounded to bfloat16, f32
//! sums) or `int8` (weights quantized once to s8 per output, activations
//! quantized per product to u8, i32 sums, as ONNX Runtime's dynamic
//! quantization). Cell state and gate math stay f32 in all of them.

use serde::{Deserialize, Serialize};

/// The precision of a measurement's products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize, clap::ValueEnum)]
pub enum Precision {
    #[default]
    #[serde(rename = "fp32")]
    Fp32,
    #[serde(rename = "bf16")]
    Bf16,
    #[serde(rename = "int8")]
    Int8,
}

impl Precision {
    /// fp32 bytes per weight over this precision's: 1, 2 or 4 (what a
    /// product streaming its weights can gain at most).
    pub fn narrowing(self) -> f64 {
        match self {
            Precision::Fp32 => 1.0,
            Precision::Bf16 => 2.0,
            Precision::Int8 => 4.0,
        }
    }

    /// Every precision, widest first.
    pub const ALL: [Precision; 3] = [Precision::Fp32, Precision::Bf16, Precision::Int8];

    /// The name in rows and specs.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Int8 => "int8",
        }
    }

    /// The precision called `name`.
    pub fn parse(name: &str) -> Option<Precision> {
        Precision::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The largest difference from the fp32 outputs (hidden states, or
    /// logits with the head), relative to the largest fp32 output, that a
    /// point of this precision may show over its whole sequence before it
    /// fails as not equivalent, unless a tolerance is given. fp32 has
    /// none: it is the reference (verified against the full model by the
    /// 1e-4 relative rule). The defaults hold with a margin on the built-in
    /// and synthetic models (tests/precision_executor.rs; the PTB models
    /// read 2.6e-3 in bf16 and 8e-3 in int8).
    pub fn default_tolerance(self) -> Option<f64> {
        match self {
            Precision::Fp32 => None,
            Precision::Bf16 => Some(2e-2),
            Precision::Int8 => Some(5e-2),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Rows written before the column existed are fp32.
pub fn fp32() -> Precision {
    Precision::Fp32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Precision::ALL {
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{p}\""));
            assert_eq!(Precision::parse(p.name()), Some(p));
        }
        assert_eq!(Precision::parse("fp16"), None);
        assert_eq!(Precision::default(), Precision::Fp32);
    }
}
