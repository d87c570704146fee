//! The canonical multi-layer LSTM every loader produces and every executor
//! consumes (DESIGN.md, "Canonical model").
//!
//! Per layer: `w_ih` is `[4h, in]`, `w_hh` is `[4h, h]`, `bias` is `[4h]`
//! (input and recurrent biases folded), gate order `i, f, g, o`, f32,
//! row-major. Optional embedding `[vocab, in]` and output projection
//! `[out, h_last]` with bias `[out]`. Every shape is checked on construction,
//! so a `Model` that exists is consistent.

mod plant;
mod reference;
pub mod synthetic;

pub use plant::plant_components;
pub use reference::{Inputs, reference_forward};

use thiserror::Error;

/// What is wrong with a set of tensors that should form a model.
#[derive(Debug, Error, PartialEq)]
pub enum ModelError {
    /// A tensor has the wrong number of elements for the declared shape.
    #[error("{tensor}: expected {expected} values for shape {shape}, got {actual}")]
    Length {
        tensor: String,
        shape: String,
        expected: usize,
        actual: usize,
    },
    /// A dimension is zero or the element count overflows.
    #[error("{tensor}: invalid shape {shape}")]
    Shape { tensor: String, shape: String },
    /// Consecutive parts of the model do not chain.
    #[error("{what}: {producer} produces {produced} values but {consumer} expects {expected}")]
    Chain {
        what: String,
        producer: String,
        produced: usize,
        consumer: String,
        expected: usize,
    },
    /// A weight is NaN or infinite.
    #[error("{tensor}: non-finite value {value} at index {index}")]
    NonFinite { tensor: String, index: usize, value: f32 },
    /// A model without any LSTM layer.
    #[error("a model needs at least one LSTM layer")]
    NoLayers,
    /// A synthetic model spec that cannot be built.
    #[error("model spec: {0}")]
    Spec(String),
    /// Inputs that do not fit the model (wrong width, token out of range).
    #[error("inputs: {0}")]
    Inputs(String),
}

/// Hidden sizes as `1500/1500`, the form results and reports use.
pub fn sizes_label(sizes: &[usize]) -> String {
    sizes.iter().map(|h| h.to_string()).collect::<Vec<_>>().join("/")
}

/// Checks that `values` holds `rows * cols` finite numbers.
fn check_matrix(tensor: &str, values: &[f32], rows: usize, cols: usize) -> Result<(), ModelError> {
    let shape = format!("[{rows}, {cols}]");
    let expected = rows
        .checked_mul(cols)
        .filter(|_| rows > 0 && cols > 0)
        .ok_or_else(|| ModelError::Shape {
            tensor: tensor.to_string(),
            shape: shape.clone(),
        })?;
    if values.len() != expected {
        return Err(ModelError::Length {
            tensor: tensor.to_string(),
            shape,
            expected,
            actual: values.len(),
        });
    }
    if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(ModelError::NonFinite {
            tensor: tensor.to_string(),
            index,
            value,
        });
    }
    Ok(())
}

/// One LSTM layer in the canonical layout.
#[derive(Debug, Clone, PartialEq)]
pub struct LstmLayer {
    input: usize,
    hidden: usize,
    w_ih: Vec<f32>,
    w_hh: Vec<f32>,
    bias: Vec<f32>,
}

impl LstmLayer {
    /// Builds a layer, checking every length and value. `name` prefixes the
    /// tensor names in errors (for example `layer 1`).
    pub fn new(name: &str, input: usize, hidden: usize, w_ih: Vec<f32>, w_hh: Vec<f32>, bias: Vec<f32>) -> Result<Self, ModelError> {
        let gates = hidden.checked_mul(4).ok_or_else(|| ModelError::Shape {
            tensor: format!("{name}.w_hh"),
            shape: format!("[4 x {hidden}, {hidden}]"),
        })?;
        check_matrix(&format!("{name}.w_ih"), &w_ih, gates, input)?;
        check_matrix(&format!("{name}.w_hh"), &w_hh, gates, hidden)?;
        check_matrix(&format!("{name}.bias"), &bias, gates, 1)?;
        Ok(LstmLayer {
            input,
            hidden,
            w_ih,
            w_hh,
            bias,
        })
    }
    /// Width of the layer's input.
    pub fn input(&self) -> usize {
        self.input
    }
    /// Number of hidden units `h`.
    pub fn hidden(&self) -> usize {
        self.hidden
    }
    /// Input weights `[4h, in]`, gates `i, f, g, o`.
    pub fn w_ih(&self) -> &[f32] {
        &self.w_ih
    }
    /// Recurrent weights `[4h, h]`, gates `i, f, g, o`.
    pub fn w_hh(&self) -> &[f32] {
        &self.w_hh
    }
    /// Folded bias `[4h]`.
    pub fn bias(&self) -> &[f32] {
        &self.bias
    }
    /// Weights and biases.
    pub fn params(&self) -> usize {
        self.w_ih.len() + self.w_hh.len() + self.bias.len()
    }
    /// Multiply-adds of one time step for one sequence: `4h · (in + h)`.
    pub fn macs_per_step(&self) -> usize {
        4 * self.hidden * (self.input + self.hidden)
    }
}

/// A fully connected layer `y = W x + b` with `W` of `[out, in]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    input: usize,
    output: usize,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl Linear {
    /// Builds the layer, checking lengths and values.
    pub fn new(name: &str, input: usize, output: usize, weight: Vec<f32>, bias: Vec<f32>) -> Result<Self, ModelError> {
        check_matrix(&format!("{name}.weight"), &weight, output, input)?;
        check_matrix(&format!("{name}.bias"), &bias, output, 1)?;
        Ok(Linear {
            input,
            output,
            weight,
            bias,
        })
    }
    /// Input width.
    pub fn input(&self) -> usize {
        self.input
    }
    /// Output width.
    pub fn output(&self) -> usize {
        self.output
    }
    /// Weight `[out, in]`, row-major.
    pub fn weight(&self) -> &[f32] {
        &self.weight
    }
    /// Bias `[out]`.
    pub fn bias(&self) -> &[f32] {
        &self.bias
    }
}

/// A lookup table of `vocab` rows of `dim` values.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    vocab: usize,
    dim: usize,
    table: Vec<f32>,
}

impl Embedding {
    /// Builds the table, checking its length and values.
    pub fn new(name: &str, vocab: usize, dim: usize, table: Vec<f32>) -> Result<Self, ModelError> {
        check_matrix(name, &table, vocab, dim)?;
        Ok(Embedding { vocab, dim, table })
    }
    /// Number of tokens.
    pub fn vocab(&self) -> usize {
        self.vocab
    }
    /// Width of each row.
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// Row `token` of the table, or `None` when the token is out of range.
    pub fn row(&self, token: usize) -> Option<&[f32]> {
        (token < self.vocab).then(|| &self.table[token * self.dim..(token + 1) * self.dim])
    }
    /// The whole table `[vocab, dim]`.
    pub fn table(&self) -> &[f32] {
        &self.table
    }
}

/// A stacked LSTM with optional embedding and output projection.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    name: String,
    embedding: Option<Embedding>,
    layers: Vec<LstmLayer>,
    head: Option<Linear>,
}

impl Model {
    /// Assembles a model, checking that each part feeds the next.
    pub fn new(
        name: impl Into<String>,
        embedding: Option<Embedding>,
        layers: Vec<LstmLayer>,
        head: Option<Linear>,
    ) -> Result<Self, ModelError> {
        let first = layers.first().ok_or(ModelError::NoLayers)?;
        if let Some(e) = &embedding
            && e.dim != first.input
        {
            return Err(ModelError::Chain {
                what: "embedding -> layer 0".into(),
                producer: "embedding".into(),
                produced: e.dim,
                consumer: "layer 0.w_ih".into(),
                expected: first.input,
            });
        }
        for (k, pair) in layers.windows(2).enumerate() {
            if pair[0].hidden != pair[1].input {
                return Err(ModelError::Chain {
                    what: format!("layer {k} -> layer {}", k + 1),
                    producer: format!("layer {k}"),
                    produced: pair[0].hidden,
                    consumer: format!("layer {}.w_ih", k + 1),
                    expected: pair[1].input,
                });
            }
        }
        let last = layers.last().expect("checked non-empty");
        if let Some(h) = &head
            && h.input != last.hidden
        {
            return Err(ModelError::Chain {
                what: "last layer -> head".into(),
                producer: format!("layer {}", layers.len() - 1),
                produced: last.hidden,
                consumer: "head.weight".into(),
                expected: h.input,
            });
        }
        Ok(Model {
            name: name.into(),
            embedding,
            layers,
            head,
        })
    }

    /// The model's name (built-in spec name or file stem).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The LSTM layers, input side first.
    pub fn layers(&self) -> &[LstmLayer] {
        &self.layers
    }
    /// The embedding, if the model takes token ids.
    pub fn embedding(&self) -> Option<&Embedding> {
        self.embedding.as_ref()
    }
    /// The output projection (softmax weights), if any.
    pub fn head(&self) -> Option<&Linear> {
        self.head.as_ref()
    }
    /// Width of the vectors the first LSTM layer consumes.
    pub fn input_size(&self) -> usize {
        self.layers[0].input
    }
    /// Hidden sizes of the layers, input side first.
    pub fn hidden_sizes(&self) -> Vec<usize> {
        self.layers.iter().map(|l| l.hidden).collect()
    }
    /// Width of one output vector: the head's output, else the last hidden size.
    /// With `layers_only`, always the last hidden size.
    pub fn output_size(&self, layers_only: bool) -> usize {
        match (&self.head, layers_only) {
            (Some(h), false) => h.output,
            _ => self.layers.last().expect("non-empty").hidden,
        }
    }
    /// The same model without embedding and head (what `--layers-only` times).
    pub fn layers_only(&self) -> Model {
        Model {
            name: self.name.clone(),
            embedding: None,
            layers: self.layers.clone(),
            head: None,
        }
    }
    /// Weights of the LSTM layers (`w_ih` and `w_hh`, no biases): what
    /// pruning and ISS compaction count.
    pub fn lstm_weights(&self) -> usize {
        self.layers.iter().map(|l| l.w_ih.len() + l.w_hh.len()).sum()
    }
    /// Weights and biases of the LSTM layers.
    pub fn lstm_params(&self) -> usize {
        self.layers.iter().map(LstmLayer::params).sum()
    }
    /// All weights and biases, embedding and head included.
    pub fn params(&self) -> usize {
        self.lstm_params()
            + self.embedding.as_ref().map_or(0, |e| e.table.len())
            + self.head.as_ref().map_or(0, |h| h.weight.len() + h.bias.len())
    }
    /// Multiply-adds of one time step for one sequence in the LSTM layers.
    pub fn lstm_macs_per_step(&self) -> usize {
        self.layers.iter().map(LstmLayer::macs_per_step).sum()
    }
    /// Multiply-adds of one time step for one sequence, the head included
    /// unless `layers_only` (embedding lookups cost none).
    pub fn macs_per_step(&self, layers_only: bool) -> usize {
        let head = if layers_only {
            0
        } else {
            self.head.as_ref().map_or(0, |h| h.input * h.output)
        };
        self.lstm_macs_per_step() + head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(input: usize, hidden: usize) -> LstmLayer {
        LstmLayer::new(
            "l",
            input,
            hidden,
            vec![0.1; 4 * hidden * input],
            vec![0.2; 4 * hidden * hidden],
            vec![0.0; 4 * hidden],
        )
        .unwrap()
    }

    #[test]
    fn counts_follow_the_shapes() {
        let m = Model::new(
            "t",
            None,
            vec![layer(3, 5), layer(5, 2)],
            Some(Linear::new("head", 2, 7, vec![0.0; 14], vec![0.0; 7]).unwrap()),
        )
        .unwrap();
        assert_eq!(m.lstm_macs_per_step(), 4 * 5 * 8 + 4 * 2 * 7);
        assert_eq!(m.macs_per_step(false), 4 * 5 * 8 + 4 * 2 * 7 + 14);
        assert_eq!(m.lstm_params(), (20 * 3 + 20 * 5 + 20) + (8 * 5 + 8 * 2 + 8));
        assert_eq!(m.output_size(false), 7);
        assert_eq!(m.output_size(true), 2);
    }

    #[test]
    fn wrong_lengths_and_chains_are_named() {
        let err = LstmLayer::new("layer 1", 3, 2, vec![0.0; 23], vec![0.0; 16], vec![0.0; 8]).unwrap_err();
        assert_eq!(err.to_string(), "layer 1.w_ih: expected 24 values for shape [8, 3], got 23");
        let err = Model::new("t", None, vec![layer(3, 5), layer(4, 2)], None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "layer 0 -> layer 1: layer 0 produces 5 values but layer 1.w_ih expects 4"
        );
        let err = Model::new("t", None, vec![], None).unwrap_err();
        assert_eq!(err, ModelError::NoLayers);
        let err = LstmLayer::new("l", 0, 2, vec![], vec![0.0; 16], vec![0.0; 8]).unwrap_err();
        assert!(matches!(err, ModelError::Shape { .. }), "{err}");
        let err = LstmLayer::new("l", usize::MAX / 2, usize::MAX / 2, vec![], vec![], vec![]).unwrap_err();
        assert!(matches!(err, ModelError::Shape { .. }), "{err}");
    }

    #[test]
    fn nan_weights_are_refused() {
        let mut w = vec![0.0; 8 * 2];
        w[5] = f32::NAN;
        let err = LstmLayer::new("layer 0", 3, 2, vec![0.0; 24], w, vec![0.0; 8]).unwrap_err();
        assert_eq!(err.to_string(), "layer 0.w_hh: non-finite value NaN at index 5");
    }
}
