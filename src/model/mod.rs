//! The canonical recurrent model every loader produces and every executor
//! consumes (docs/design.md, "Models"): an optional embedding `[vocab, in]`,
//! a stack of recurrent layers (one cell kind per layer, LSTM, GRU or RHN,
//! one or two directions: [`cell`]), and an optional output projection
//! `[out, width_last]` with bias `[out]`. f32, row-major. Every shape is
//! checked on construction, so a `Model` that exists is consistent.

mod cell;
mod plant;
mod reference;
pub mod synthetic;

pub use cell::{Cell, Direction, Layer, LstmLayer, Recurrent};
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
    /// A model without any recurrent layer.
    #[error("a model needs at least one recurrent layer")]
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

/// `[rows, cols]` row-major to `[cols, rows]`.
pub(crate) fn transpose(src: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; src.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = src[r * cols + c];
        }
    }
    out
}

/// Checks that `values` holds `rows * cols` finite numbers.
pub(crate) fn check_matrix(tensor: &str, values: &[f32], rows: usize, cols: usize) -> Result<(), ModelError> {
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

/// A stack of recurrent layers with optional embedding and output projection.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    name: String,
    embedding: Option<Embedding>,
    layers: Vec<Layer>,
    head: Option<Linear>,
    tied: bool,
}

impl Model {
    /// Assembles a model, checking that each part feeds the next.
    pub fn new<L: Into<Layer>>(
        name: impl Into<String>,
        embedding: Option<Embedding>,
        layers: Vec<L>,
        head: Option<Linear>,
    ) -> Result<Self, ModelError> {
        let layers: Vec<Layer> = layers.into_iter().map(Into::into).collect();
        let first = layers.first().ok_or(ModelError::NoLayers)?;
        if let Some(e) = &embedding
            && e.dim != first.input()
        {
            return Err(ModelError::Chain {
                what: "embedding -> layer 0".into(),
                producer: "embedding".into(),
                produced: e.dim,
                consumer: "layer 0.w_ih".into(),
                expected: first.input(),
            });
        }
        for (k, pair) in layers.windows(2).enumerate() {
            if pair[0].output() != pair[1].input() {
                return Err(ModelError::Chain {
                    what: format!("layer {k} -> layer {}", k + 1),
                    producer: format!("layer {k}"),
                    produced: pair[0].output(),
                    consumer: format!("layer {}.w_ih", k + 1),
                    expected: pair[1].input(),
                });
            }
        }
        let last = layers.last().expect("checked non-empty");
        if let Some(h) = &head
            && h.input != last.output()
        {
            return Err(ModelError::Chain {
                what: "last layer -> head".into(),
                producer: format!("layer {}", layers.len() - 1),
                produced: last.output(),
                consumer: "head.weight".into(),
                expected: h.input,
            });
        }
        Ok(Model {
            name: name.into(),
            embedding,
            layers,
            head,
            tied: false,
        })
    }

    /// The same model with its embedding tied to its head: the head's
    /// weight is the embedding table (as the RHN of the ISS paper and many
    /// language models have it). Checked: both present and equal.
    pub fn tied(mut self) -> Result<Self, ModelError> {
        let same = matches!((&self.embedding, &self.head), (Some(e), Some(h)) if e.table == h.weight);
        if !same {
            return Err(ModelError::Spec(format!(
                "{}: tied weights need an embedding equal to the head's weight",
                self.name
            )));
        }
        self.tied = true;
        Ok(self)
    }

    /// Whether the embedding is the head's weight (see [`Model::tied`]).
    pub fn is_tied(&self) -> bool {
        self.tied
    }

    /// The model's name (built-in spec name or file stem).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The recurrent layers, input side first.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }
    /// Every direction of every layer: (layer index, direction, weights).
    pub fn directions(&self) -> impl Iterator<Item = (usize, Direction, &Recurrent)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(k, l)| l.directions().map(move |(d, r)| (k, d, r)))
    }
    /// The cell kind of the layers when they all share one.
    pub fn cell(&self) -> Option<Cell> {
        let first = self.layers[0].cell();
        self.layers.iter().all(|l| l.cell() == first).then_some(first)
    }
    /// The cell as result rows name it: [`Cell::tag`], `bi` before it when
    /// the layers are bidirectional, `mixed` when layers differ.
    pub fn cell_label(&self) -> String {
        let bi = if self.is_bidirectional() { "bi" } else { "" };
        let all_bi = self.layers.iter().all(Layer::is_bidirectional) || !self.is_bidirectional();
        match self.cell() {
            Some(cell) if all_bi => format!("{bi}{}", cell.tag()),
            _ => "mixed".into(),
        }
    }
    /// Whether any layer is bidirectional.
    pub fn is_bidirectional(&self) -> bool {
        self.layers.iter().any(Layer::is_bidirectional)
    }
    /// The embedding, if the model takes token ids.
    pub fn embedding(&self) -> Option<&Embedding> {
        self.embedding.as_ref()
    }
    /// The output projection (softmax weights), if any.
    pub fn head(&self) -> Option<&Linear> {
        self.head.as_ref()
    }
    /// Width of the vectors the first layer consumes.
    pub fn input_size(&self) -> usize {
        self.layers[0].input()
    }
    /// Hidden sizes of every direction, in [`Model::directions`]' order.
    pub fn hidden_sizes(&self) -> Vec<usize> {
        self.directions().map(|(_, _, r)| r.hidden()).collect()
    }
    /// `sizes` (one per direction, in [`Model::directions`]' order) written
    /// as reports do: layers `/`-separated, a bidirectional layer's two
    /// directions `+`-joined (`1500/1500`, `84+90/38+46`).
    pub fn sizes_label(&self, sizes: &[usize]) -> String {
        let mut it = sizes.iter();
        self.layers
            .iter()
            .map(|l| {
                l.directions()
                    .filter_map(|_| it.next().map(usize::to_string))
                    .collect::<Vec<_>>()
                    .join("+")
            })
            .collect::<Vec<_>>()
            .join("/")
    }
    /// Width of one output vector: the head's output, else the last layer's.
    /// With `layers_only`, always the last layer's.
    pub fn output_size(&self, layers_only: bool) -> usize {
        match (&self.head, layers_only) {
            (Some(h), false) => h.output,
            _ => self.layers.last().expect("non-empty").output(),
        }
    }
    /// The same model without embedding and head (what `--layers-only` times).
    pub fn layers_only(&self) -> Model {
        Model {
            name: self.name.clone(),
            embedding: None,
            layers: self.layers.clone(),
            head: None,
            tied: false,
        }
    }
    /// Weights of the recurrent layers (`w_ih` and `w_hh` of every
    /// direction, no biases): what pruning and ISS compaction count.
    pub fn lstm_weights(&self) -> usize {
        self.directions().map(|(_, _, r)| r.w_ih().len() + r.w_hh().len()).sum()
    }
    /// Weights and biases of the recurrent layers.
    pub fn lstm_params(&self) -> usize {
        self.directions().map(|(_, _, r)| r.params()).sum()
    }
    /// All weights and biases, embedding and head included (a tied head's
    /// weight counted once).
    pub fn params(&self) -> usize {
        let head = self
            .head
            .as_ref()
            .map_or(0, |h| if self.tied { 0 } else { h.weight.len() } + h.bias.len());
        self.lstm_params() + self.embedding.as_ref().map_or(0, |e| e.table.len()) + head
    }
    /// Multiply-adds of one time step for one sequence in the recurrent layers.
    pub fn lstm_macs_per_step(&self) -> usize {
        self.directions().map(|(_, _, r)| r.macs_per_step()).sum()
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
        let err = Model::new("t", None, Vec::<Layer>::new(), None).unwrap_err();
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
