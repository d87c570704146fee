//! Model inputs and the reference forward pass.
//!
//! The reference is deliberately plain: loops in the order of the equations,
//! f64 accumulation, libm `exp`/`tanh`. It is slow and obviously right, and
//! every fast executor is tested against it.

// Index loops mirror the equations; iterator chains would hide them.
#![allow(clippy::needless_range_loop)]

use super::{Model, ModelError, synthetic::SplitMix64};

/// One batch of sequences, laid out `[seq, batch, ...]` (time-major).
#[derive(Debug, Clone, PartialEq)]
pub enum Inputs {
    /// Token ids, looked up in the model's embedding: `[seq, batch]`.
    Tokens { seq: usize, batch: usize, ids: Vec<u32> },
    /// Feature vectors fed straight to the first LSTM layer: `[seq, batch, width]`.
    Features {
        seq: usize,
        batch: usize,
        width: usize,
        values: Vec<f32>,
    },
}

impl Inputs {
    /// Random inputs that fit `model`: token ids when it has an embedding,
    /// features uniform in [-1, 1] otherwise. Deterministic in `seed`.
    pub fn random(model: &Model, seq: usize, batch: usize, seed: u64) -> Inputs {
        Inputs::random_for(model.embedding().map(|e| e.vocab()), model.input_size(), seq, batch, seed)
    }

    /// Random inputs for a model with an embedding of `vocab` tokens, or
    /// (without) a first layer of `width` inputs; what [`Inputs::random`] draws.
    pub fn random_for(vocab: Option<usize>, width: usize, seq: usize, batch: usize, seed: u64) -> Inputs {
        let mut rng = SplitMix64::new(seed);
        match vocab {
            Some(vocab) => Inputs::Tokens {
                seq,
                batch,
                ids: (0..seq * batch).map(|_| rng.below(vocab as u64) as u32).collect(),
            },
            None => Inputs::Features {
                seq,
                batch,
                width,
                values: (0..seq * batch * width).map(|_| rng.uniform(-1.0, 1.0)).collect(),
            },
        }
    }
    /// Time steps.
    pub fn seq(&self) -> usize {
        match self {
            Inputs::Tokens { seq, .. } | Inputs::Features { seq, .. } => *seq,
        }
    }
    /// Sequences per batch.
    pub fn batch(&self) -> usize {
        match self {
            Inputs::Tokens { batch, .. } | Inputs::Features { batch, .. } => *batch,
        }
    }

    /// Checks that these inputs fit `model`: tokens need an embedding and
    /// must be in range, features need the first layer's width.
    pub fn check(&self, model: &Model) -> Result<(), ModelError> {
        match (self, model.embedding()) {
            (Inputs::Tokens { seq, batch, ids }, Some(e)) => {
                if ids.len() != seq * batch {
                    return Err(ModelError::Inputs(format!("{} token ids for seq {seq} x batch {batch}", ids.len())));
                }
                if let Some(bad) = ids.iter().find(|&&t| t as usize >= e.vocab()) {
                    return Err(ModelError::Inputs(format!(
                        "token {bad} is outside the vocabulary of {}",
                        e.vocab()
                    )));
                }
                Ok(())
            }
            (Inputs::Tokens { .. }, None) => Err(ModelError::Inputs("token ids given but the model has no embedding".into())),
            (Inputs::Features { seq, batch, width, values }, _) => {
                if *width != model.input_size() {
                    return Err(ModelError::Inputs(format!(
                        "features are {width} wide, the first layer takes {}",
                        model.input_size()
                    )));
                }
                if values.len() != seq * batch * width {
                    return Err(ModelError::Inputs(format!(
                        "{} values for seq {seq} x batch {batch} x width {width}",
                        values.len()
                    )));
                }
                Ok(())
            }
        }
    }

    /// The input vector of time step `t`, batch row `b` (inputs checked
    /// against `model` first: panics on a token outside its vocabulary).
    pub fn vector<'a>(&'a self, model: &'a Model, t: usize, b: usize) -> &'a [f32] {
        match self {
            Inputs::Tokens { batch, ids, .. } => model
                .embedding()
                .expect("checked")
                .row(ids[t * batch + b] as usize)
                .expect("checked"),
            Inputs::Features { batch, width, values, .. } => &values[(t * batch + b) * width..(t * batch + b + 1) * width],
        }
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Runs `model` over `inputs` from zero initial state and returns the
/// outputs `[seq, batch, model.output_size(false)]`: logits when the model has
/// a head, the last layer's hidden states otherwise.
pub fn reference_forward(model: &Model, inputs: &Inputs) -> Result<Vec<f32>, ModelError> {
    inputs.check(model)?;
    let (seq, batch) = (inputs.seq(), inputs.batch());
    // Layer inputs for all steps, [seq * batch][width], in f64.
    let mut xs: Vec<Vec<f64>> = (0..seq * batch)
        .map(|i| inputs.vector(model, i / batch, i % batch).iter().map(|&v| v as f64).collect())
        .collect();
    for layer in model.layers() {
        let (n_in, h) = (layer.input(), layer.hidden());
        let mut ys = vec![vec![0.0f64; h]; seq * batch];
        for b in 0..batch {
            let mut hs = vec![0.0f64; h];
            let mut cs = vec![0.0f64; h];
            for t in 0..seq {
                let x = &xs[t * batch + b];
                let mut gates = vec![0.0f64; 4 * h];
                for (r, g) in gates.iter_mut().enumerate() {
                    let mut s = layer.bias()[r] as f64;
                    for c in 0..n_in {
                        s += layer.w_ih()[r * n_in + c] as f64 * x[c];
                    }
                    for c in 0..h {
                        s += layer.w_hh()[r * h + c] as f64 * hs[c];
                    }
                    *g = s;
                }
                for j in 0..h {
                    let i = sigmoid(gates[j]);
                    let f = sigmoid(gates[h + j]);
                    let g = gates[2 * h + j].tanh();
                    let o = sigmoid(gates[3 * h + j]);
                    cs[j] = f * cs[j] + i * g;
                    hs[j] = o * cs[j].tanh();
                }
                ys[t * batch + b].copy_from_slice(&hs);
            }
        }
        xs = ys;
    }
    let out = match model.head() {
        None => xs.into_iter().flatten().map(|v| v as f32).collect(),
        Some(head) => {
            let (n_in, n_out) = (head.input(), head.output());
            let mut out = Vec::with_capacity(seq * batch * n_out);
            for x in &xs {
                for r in 0..n_out {
                    let mut s = head.bias()[r] as f64;
                    for c in 0..n_in {
                        s += head.weight()[r * n_in + c] as f64 * x[c];
                    }
                    out.push(s as f32);
                }
            }
            out
        }
    };
    Ok(out)
}
