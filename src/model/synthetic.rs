//! Synthetic models from a spec, so benchmarks and sweeps need no files.
//!
//! Weights are uniform in ±1/√h (PyTorch's `nn.LSTM` initialisation) from a
//! SplitMix64 stream, so the same spec and seed give the same model on every
//! machine and every version of issbench.

use super::{Cell, Embedding, Layer, Linear, Model, ModelError, Recurrent, plant_components};

/// SplitMix64: a tiny, fast, well-mixed generator whose output is fixed
/// forever (unlike general-purpose RNG crates, whose streams may change).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * unit
    }
    /// Uniform integer in `[0, n)` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
    /// `len` values uniform in `[-scale, scale)`.
    pub fn fill(&mut self, len: usize, scale: f32) -> Vec<f32> {
        (0..len).map(|_| self.uniform(-scale, scale)).collect()
    }
}

/// The shape of a synthetic model.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthSpec {
    /// Name carried by the model and every result row.
    pub name: String,
    /// Width of the first layer's input (the embedding width when `vocab` is set).
    pub input: usize,
    /// Hidden size of each LSTM layer, input side first.
    pub layers: Vec<usize>,
    /// With a vocabulary: an embedding `[vocab, input]` and a head `[vocab, h_last]`.
    pub vocab: Option<usize>,
    /// Seed of the weight stream.
    pub seed: u64,
    /// Kept hidden sizes per layer (and direction, forward first): the
    /// others are planted as zeroed ISS components at random positions
    /// (biases stay nonzero). `None`: no ISS.
    pub kept: Option<Vec<usize>>,
    /// The cell kind of every layer.
    pub cell: Cell,
    /// Two directions per layer, each `layers[k]` wide.
    pub bidirectional: bool,
    /// The head's weight is the embedding (needs `vocab` and `input` equal
    /// to the last layer's width), as in iss-rnns' RHN.
    pub tied: bool,
    /// Without `vocab`: a linear head of this many outputs on the last
    /// layer (BiDAF's span logits), so its units have a consumer.
    pub logits: Option<usize>,
}

impl Default for SynthSpec {
    /// An LSTM spec with no layer: fill in the sizes.
    fn default() -> SynthSpec {
        SynthSpec {
            name: "synthetic".into(),
            input: 1,
            layers: Vec::new(),
            vocab: None,
            seed: 0,
            kept: None,
            cell: Cell::Lstm,
            bidirectional: false,
            tied: false,
            logits: None,
        }
    }
}

/// Built-in specs: `(name, description)`.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "ptb-large",
        "the ISS paper's PTB language model: embedding 1500, LSTM 1500/1500, vocabulary 10000",
    ),
    (
        "ptb-iss",
        "ptb-large with the ISS paper's structure planted: 1500/1500 of which 373/315 units are nonzero",
    ),
    (
        "ptb-medium",
        "Zaremba et al.'s medium PTB model: embedding 650, LSTM 650/650, vocabulary 10000",
    ),
    ("tiny", "a small model for smoke tests: embedding 16, LSTM 24/20, vocabulary 50"),
    ("tiny-iss", "tiny with ISS structure planted: 24/20 of which 9/7 units are nonzero"),
    (
        "bidaf",
        "BiDAF's modeling layer (iss-rnns bidaf/): bidirectional LSTMs g0 (800 in) and g1, 100 units per direction",
    ),
    (
        "bidaf-iss",
        "bidaf with the structure iss-rnns' README prints planted: g0 84/90, g1 38/46 units kept (fw/bw)",
    ),
    (
        "bidaf-out",
        "BiDAF's output layer g2: a bidirectional LSTM reading 1400 features, 100 units per direction",
    ),
    (
        "bidaf-out-iss",
        "bidaf-out with iss-rnns' learned structure planted: 34/21 units kept (fw/bw)",
    ),
    (
        "rhn",
        "iss-rnns' PTB RHN (ptb_iss_sota shapes): depth 10, width 830, vocabulary 10000, embedding tied to the softmax",
    ),
    (
        "rhn-iss-N",
        "rhn with N of its 830 units kept (N from 1 to 830; the others planted as ISS components, embedding columns included)",
    ),
];

impl SynthSpec {
    /// The built-in spec called `name`, if there is one.
    pub fn builtin(name: &str) -> Option<SynthSpec> {
        if let Some(spec) = Self::builtin_other_cell(name) {
            return Some(spec);
        }
        let (input, layers, vocab, kept) = match name {
            "ptb-large" => (1500, vec![1500, 1500], Some(10_000), None),
            "ptb-iss" => (1500, vec![1500, 1500], Some(10_000), Some(vec![373, 315])),
            "ptb-medium" => (650, vec![650, 650], Some(10_000), None),
            "tiny" => (16, vec![24, 20], Some(50), None),
            "tiny-iss" => (16, vec![24, 20], Some(50), Some(vec![9, 7])),
            _ => return None,
        };
        Some(SynthSpec {
            name: name.to_string(),
            input,
            layers,
            vocab,
            seed: 0x155_BE7C,
            kept,
            ..SynthSpec::default()
        })
    }

    /// The built-ins of BiDAF and the RHN.
    fn builtin_other_cell(name: &str) -> Option<SynthSpec> {
        let bidaf = |input: usize, layers: usize, kept: Option<Vec<usize>>| SynthSpec {
            name: name.to_string(),
            input,
            layers: vec![100; layers],
            seed: 0xB1DAF,
            kept,
            bidirectional: true,
            logits: Some(1),
            ..SynthSpec::default()
        };
        let rhn = |kept: Option<usize>| SynthSpec {
            name: name.to_string(),
            input: 830,
            layers: vec![830],
            vocab: Some(10_000),
            seed: 0x2B7,
            kept: kept.map(|k| vec![k]),
            cell: Cell::Rhn { depth: 10 },
            tied: true,
            ..SynthSpec::default()
        };
        match name {
            "bidaf" => Some(bidaf(800, 2, None)),
            "bidaf-iss" => Some(bidaf(800, 2, Some(vec![84, 90, 38, 46]))),
            "bidaf-out" => Some(bidaf(1400, 1, None)),
            "bidaf-out-iss" => Some(bidaf(1400, 1, Some(vec![34, 21]))),
            "rhn" => Some(rhn(None)),
            _ => match name.strip_prefix("rhn-iss-").map(str::parse::<usize>) {
                Some(Ok(kept)) if (1..=830).contains(&kept) => Some(rhn(Some(kept))),
                _ => None,
            },
        }
    }

    /// Generates the model.
    pub fn build(&self) -> Result<Model, ModelError> {
        let mut rng = SplitMix64::new(self.seed);
        let embedding = match self.vocab {
            Some(v) => Some(Embedding::new("embedding", v, self.input, rng.fill(v * self.input, 1.0))?),
            None => None,
        };
        let mut layers = Vec::with_capacity(self.layers.len());
        let mut input = self.input;
        let cell = self.cell;
        for (k, &h) in self.layers.iter().enumerate() {
            let scale = 1.0 / (h as f32).sqrt();
            let mut direction = |name: String| {
                let (g_in, g_rec) = (cell.input_gates(), cell.recurrent_gates());
                let w_ih = rng.fill(g_in * h * input, scale);
                let w_hh = rng.fill(g_rec * h * h, scale);
                let bias = rng.fill(g_rec * h, scale);
                let bias_hh = if matches!(cell, Cell::Gru { .. }) {
                    rng.fill(g_rec * h, scale)
                } else {
                    Vec::new()
                };
                Recurrent::with_cell(&name, cell, input, h, w_ih, w_hh, bias, bias_hh)
            };
            let layer = if self.bidirectional {
                let fw = direction(format!("layer {k} fw"))?;
                let bw = direction(format!("layer {k} bw"))?;
                Layer::bidirectional(&format!("layer {k}"), fw, bw)?
            } else {
                Layer::from(direction(format!("layer {k}"))?)
            };
            input = layer.output();
            layers.push(layer);
        }
        let scale = 1.0 / (input as f32).sqrt();
        let head = match (self.vocab, &embedding, self.logits) {
            (Some(v), Some(e), _) if self.tied => Some(Linear::new("head", input, v, e.table().to_vec(), rng.fill(v, scale))?),
            (Some(v), _, _) => Some(Linear::new("head", input, v, rng.fill(v * input, scale), rng.fill(v, scale))?),
            (None, _, Some(n)) => Some(Linear::new("logits", input, n, rng.fill(n * input, scale), rng.fill(n, scale))?),
            (None, _, None) => None,
        };
        let model = Model::new(self.name.clone(), embedding, layers, head)?;
        let model = if self.tied { model.tied()? } else { model };
        match &self.kept {
            Some(kept) => plant_components(&model, kept, self.seed ^ 0x1550),
            None => Ok(model),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ptb_large_has_the_papers_shape() {
        let spec = SynthSpec::builtin("ptb-large").unwrap();
        assert_eq!(
            (spec.input, spec.layers.clone(), spec.vocab),
            (1500, vec![1500, 1500], Some(10_000))
        );
    }

    #[test]
    fn same_seed_same_model_and_known_first_values() {
        let a = SynthSpec::builtin("tiny").unwrap().build().unwrap();
        let b = SynthSpec::builtin("tiny").unwrap().build().unwrap();
        assert_eq!(a, b);
        let mut rng = SplitMix64::new(0);
        // Published SplitMix64 test vector for seed 0.
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn every_builtin_builds() {
        for (name, _) in BUILTIN.iter().filter(|(n, _)| n.starts_with("tiny")) {
            let m = SynthSpec::builtin(name).unwrap().build().unwrap();
            assert_eq!(m.name(), *name);
        }
        assert!(SynthSpec::builtin("nope").is_none());
    }

    #[test]
    fn bidaf_and_rhn_have_the_iss_rnns_shapes() {
        let bidaf = SynthSpec::builtin("bidaf-iss").unwrap();
        assert_eq!(
            (bidaf.input, bidaf.layers.clone(), bidaf.bidirectional),
            (800, vec![100, 100], true)
        );
        assert_eq!(bidaf.kept, Some(vec![84, 90, 38, 46]));
        let out = SynthSpec::builtin("bidaf-out-iss").unwrap();
        assert_eq!((out.input, out.kept.clone()), (1400, Some(vec![34, 21])));
        let rhn = SynthSpec::builtin("rhn-iss-415").unwrap();
        assert_eq!(
            (rhn.input, rhn.layers.clone(), rhn.vocab, rhn.tied),
            (830, vec![830], Some(10_000), true)
        );
        assert_eq!((rhn.cell, rhn.kept), (Cell::Rhn { depth: 10 }, Some(vec![415])));
        for bad in ["rhn-iss-0", "rhn-iss-831", "rhn-iss-", "rhn-iss-x"] {
            assert!(SynthSpec::builtin(bad).is_none(), "{bad}");
        }
    }
}
