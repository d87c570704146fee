//! Model inputs and the reference forward pass.
//!
//! The reference is deliberately plain: loops in the order of the equations,
//! f64 accumulation, libm `exp`/`tanh`. It is slow and obviously right, and
//! every fast executor is tested against it.

// Index loops mirror the equations; iterator chains would hide them.
#![allow(clippy::needless_range_loop)]

use super::{Cell, Direction, Model, ModelError, Recurrent, synthetic::SplitMix64};

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

/// `W[r] · x` in f64 for the row-major `w` of `x.len()` columns.
fn dot(w: &[f32], r: usize, x: &[f64]) -> f64 {
    let row = &w[r * x.len()..(r + 1) * x.len()];
    row.iter().zip(x).map(|(&a, &b)| a as f64 * b).sum()
}

/// One direction over one sequence (`xs[t]` its input at step `t`, in the
/// order the direction reads them), from zero state: its output per step.
fn run_direction(dir: &Recurrent, xs: &[&[f64]]) -> Vec<Vec<f64>> {
    let h = dir.hidden();
    let (w_ih, w_hh, bias, bias_hh) = (dir.w_ih(), dir.w_hh(), dir.bias(), dir.bias_hh());
    let mut state = vec![0.0f64; h];
    let mut cell = vec![0.0f64; h];
    let mut out = Vec::with_capacity(xs.len());
    for x in xs {
        match dir.cell() {
            Cell::Lstm => {
                let g = |r: usize, hs: &[f64]| bias[r] as f64 + dot(w_ih, r, x) + dot(w_hh, r, hs);
                let gates: Vec<f64> = (0..4 * h).map(|r| g(r, &state)).collect();
                for j in 0..h {
                    let (i, f) = (sigmoid(gates[j]), sigmoid(gates[h + j]));
                    let (c, o) = (gates[2 * h + j].tanh(), sigmoid(gates[3 * h + j]));
                    cell[j] = f * cell[j] + i * c;
                    state[j] = o * cell[j].tanh();
                }
            }
            Cell::Gru { reset_after } => {
                let input = |r: usize| bias[r] as f64 + dot(w_ih, r, x);
                let rec = |r: usize, hs: &[f64]| bias_hh[r] as f64 + dot(w_hh, r, hs);
                let r: Vec<f64> = (0..h).map(|j| sigmoid(input(j) + rec(j, &state))).collect();
                let z: Vec<f64> = (0..h).map(|j| sigmoid(input(h + j) + rec(h + j, &state))).collect();
                let n: Vec<f64> = if reset_after {
                    (0..h).map(|j| (input(2 * h + j) + r[j] * rec(2 * h + j, &state)).tanh()).collect()
                } else {
                    let reset: Vec<f64> = (0..h).map(|j| r[j] * state[j]).collect();
                    (0..h).map(|j| (input(2 * h + j) + rec(2 * h + j, &reset)).tanh()).collect()
                };
                for j in 0..h {
                    state[j] = (1.0 - z[j]) * n[j] + z[j] * state[j];
                }
            }
            Cell::Rhn { depth } => {
                for i in 0..depth {
                    let pre = |row: usize| {
                        let mut v = bias[2 * h * i + row] as f64 + dot(w_hh, 2 * h * i + row, &state);
                        if i == 0 {
                            v += dot(w_ih, row, x);
                        }
                        v
                    };
                    let next: Vec<f64> = (0..h)
                        .map(|j| {
                            let (hi, ti) = (pre(j).tanh(), sigmoid(pre(h + j)));
                            (hi - state[j]) * ti + state[j]
                        })
                        .collect();
                    state = next;
                }
            }
        }
        out.push(state.clone());
    }
    out
}

/// Runs `model` over `inputs` from zero initial state and returns the
/// outputs `[seq, batch, model.output_size(false)]`: logits when the model has
/// a head, the last layer's outputs otherwise. Every cell kind and both
/// directions, in f64, straight from the definitions in [`super::cell`]:
/// the reference the executors are checked against.
pub fn reference_forward(model: &Model, inputs: &Inputs) -> Result<Vec<f32>, ModelError> {
    inputs.check(model)?;
    let (seq, batch) = (inputs.seq(), inputs.batch());
    // Layer inputs for all steps, [seq * batch][width], in f64.
    let mut xs: Vec<Vec<f64>> = (0..seq * batch)
        .map(|i| inputs.vector(model, i / batch, i % batch).iter().map(|&v| v as f64).collect())
        .collect();
    for layer in model.layers() {
        let mut ys = vec![Vec::with_capacity(layer.output()); seq * batch];
        for (d, dir) in layer.directions() {
            for b in 0..batch {
                // The backward direction reads the sequence from its end;
                // its output for step t goes to step t.
                let steps: Vec<usize> = match d {
                    Direction::Forward => (0..seq).collect(),
                    Direction::Backward => (0..seq).rev().collect(),
                };
                let seq_in: Vec<&[f64]> = steps.iter().map(|&t| xs[t * batch + b].as_slice()).collect();
                for (&t, y) in steps.iter().zip(run_direction(dir, &seq_in)) {
                    ys[t * batch + b].extend(y);
                }
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
