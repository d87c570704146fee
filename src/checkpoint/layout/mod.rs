//! Naming conventions: the one place that knows how TensorFlow, PyTorch,
//! Keras and ONNX name and lay out recurrent weights (LSTM, GRU, RHN, one
//! or two directions), and how to turn them into the canonical model (DESIGN.md, "Canonical model"; tools/README-fixtures.md
//! has the exact names each framework writes).
//!
//! | layout | recurrent tensors | stored as | gates |
//! |---|---|---|---|
//! | `tf-basic-lstm` | `.../cell_K/basic_lstm_cell/kernel` (`weights` before TF 1.2), `bias` (`biases`) | kernel `[in+h, 4h]`, rows `[x; h]` | i, j, f, o; forget bias added at run time |
//! | `tf-bidaf` | `SCOPE/{fw,bw}/basic_lstm_cell/weights` (or `kernel`), `biases` (`bias`); `.../ExponentialMovingAverage` shadows when present | as `tf-basic-lstm`, one bidirectional layer per scope | i, j, f, o; forget bias (default 1.0) added at run time |
//! | `rhn` | `PREFIX/RHN{l}/{h,t}_{i}/Linear/Matrix`, `Bias` (micro-layer `i`) | `[in + w, w]` (rows `[x; s]`, `i = 0`), `[w, w]` | separate H and T variables |
//! | `pytorch` | `PREFIXweight_ih_lK`, `weight_hh_lK`, `bias_ih_lK`, `bias_hh_lK` (`_lK_reverse`: backward) | `[G·h, in]`, `[G·h, h]` | LSTM i, f, g, o (biases summed); GRU r, z, n (kept apart) |
//! | `keras` | `LAYER/lstm_cell/kernel`, `recurrent_kernel`, `bias` (`gru_cell`; `LAYER/forward_X/...`, `backward_X/...` in a Bidirectional) | `[in, G·h]`, `[h, G·h]`; GRU bias `[2, 3h]` (reset_after) or `[3h]` | LSTM i, f, c, o; GRU z, r, h |
//! | `onnx` | `layers.K.W`, `layers.K.R`, `layers.K.B` (named by the ONNX reader) | `[dirs, G·h, in]`, `[dirs, G·h, h]`, `[dirs, 2·G·h]` = `[Wb; Rb]` | LSTM i, o, f, c; GRU z, r, h |
//!
//! Heads and embeddings: TF `softmax_w [h, vocab]` / `softmax_b` and
//! `embedding [vocab, emb]`; BiDAF the one biased `.../weights [width, out]`
//! over the last layer (`main/logits1/first`); RHN `embedding`, `softmax_w
//! [w, vocab]` (none: tied to the embedding) and `softmax_b`; PyTorch any `X.weight [out, h]` + `X.bias` and an
//! unbiased `X.weight [vocab, in]`; Keras `dense/kernel [h, out]` + `bias` and
//! `embedding/embeddings`; ONNX `embedding`, `head.kernel [width, out]` or
//! `head.weight [out, width]`, `head.bias`. Everything else (step counters, learning rates,
//! optimizer slots) is ignored and reported as such.

mod bidaf;
mod keras;
mod onnx;
mod rhn;
mod tensors;
mod tf;
mod torch;

use std::collections::HashMap;

use serde::Serialize;

use self::tensors::{Tensors, model_err};
use self::tf::tf_kernel_names;
use self::torch::torch_layer;
use super::{ErrorKind, RawTensor};
use crate::model::{Cell, Embedding, Layer, Linear, Model};

/// A naming scheme and weight layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// TensorFlow `BasicLSTMCell` in a `MultiRNNCell` (the PTB and ISS code).
    TfBasicLstm,
    /// TensorFlow `bidirectional_dynamic_rnn`s of `BasicLSTMCell`s as
    /// BiDAF names them (`main/gK/{fw,bw}/basic_lstm_cell/...`).
    TfBidaf,
    /// Recurrent Highway Networks as wenwei202/iss-rnns `rhn.py` names
    /// them (`model/RHN0/h_0/Linear/Matrix`).
    Rhn,
    /// PyTorch `nn.LSTM` / `nn.GRU` state dict (any module prefix).
    Pytorch,
    /// Keras `LSTM`, `GRU` and `Bidirectional` layers.
    Keras,
    /// ONNX `LSTM` and `GRU` nodes, as the ONNX reader names their inputs.
    Onnx,
}

impl Layout {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Layout::TfBasicLstm => "tf-basic-lstm",
            Layout::TfBidaf => "tf-bidaf",
            Layout::Rhn => "rhn",
            Layout::Pytorch => "pytorch",
            Layout::Keras => "keras",
            Layout::Onnx => "onnx",
        }
    }
    /// Every layout.
    pub const ALL: [Layout; 6] = [
        Layout::TfBasicLstm,
        Layout::TfBidaf,
        Layout::Rhn,
        Layout::Pytorch,
        Layout::Keras,
        Layout::Onnx,
    ];
    /// Parses [`Layout::name`].
    pub fn parse(s: &str) -> Option<Layout> {
        Layout::ALL.into_iter().find(|l| l.name() == s)
    }
    /// Every layout's name, comma-separated (for messages).
    pub fn names() -> String {
        Layout::ALL.map(Layout::name).join(", ")
    }
    /// Tells the layout from the tensor names; exactly one must match.
    pub fn detect(tensors: &[RawTensor]) -> Result<Layout, ErrorKind> {
        let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
        Layout::detect_names(&names)
    }

    /// [`Layout::detect`] from the names alone.
    pub fn detect_names(names: &[&str]) -> Result<Layout, ErrorKind> {
        let has = |f: &dyn Fn(&str) -> bool| names.iter().any(|n| f(n));
        let found: Vec<Layout> = [
            (Layout::TfBasicLstm, !tf_kernel_names(names).is_empty()),
            (Layout::TfBidaf, has(&|n| bidaf::cell(n).is_some())),
            (Layout::Rhn, has(&|n| rhn::rhn_name(n).is_some())),
            (Layout::Pytorch, has(&|n| torch_layer(n).is_some())),
            (Layout::Keras, has(&|n| n.ends_with("recurrent_kernel"))),
        ]
        .into_iter()
        .filter_map(|(l, yes)| yes.then_some(l))
        .collect();
        match found[..] {
            [one] => Ok(one),
            [] => {
                let first: Vec<_> = names.iter().take(6).copied().collect();
                Err(ErrorKind::Layout(format!(
                    "no LSTM weights found under TensorFlow, PyTorch or Keras names (first names: {})",
                    first.join(", ")
                )))
            }
            _ => Err(ErrorKind::Layout(format!(
                "names of several layouts ({}); pass --layout",
                found.iter().map(|l| l.name()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }
}

impl Layout {
    /// Whether this layout's builder may read the tensor called `name`
    /// (readers skip the data of the others: optimizer slots, counters).
    pub fn may_use(self, name: &str) -> bool {
        let ends = |suffixes: &[&str]| suffixes.iter().any(|s| name.ends_with(s));
        match self {
            Layout::TfBasicLstm => ends(&["kernel", "weights", "bias", "biases", "embedding", "softmax_w", "softmax_b"]),
            Layout::TfBidaf => ends(&["kernel", "weights", "bias", "biases", "ExponentialMovingAverage"]),
            Layout::Rhn => {
                rhn::rhn_name(name).is_some()
                    || ends(&[
                        "embedding",
                        "softmax_w",
                        "softmax_b",
                        "embedding.weight",
                        "head.weight",
                        "head.bias",
                    ])
            }
            Layout::Pytorch => {
                ends(&["weight", "bias"])
                    || ["weight_ih_l", "weight_hh_l", "bias_ih_l", "bias_hh_l"]
                        .iter()
                        .any(|p| name.contains(p))
            }
            Layout::Keras => ends(&["kernel", "recurrent_kernel", "bias", "embeddings"]),
            Layout::Onnx => name.starts_with("layers.") || name.starts_with("head.") || name == "embedding",
        }
    }
}

/// One tensor of the file and what it became.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorUse {
    /// The name in the file.
    pub name: String,
    /// The shape in the file.
    pub shape: Vec<usize>,
    /// The element type in the file.
    pub dtype: String,
    /// What it is in the model (`layer 0 kernel`, `head bias`, ... or `ignored`).
    pub role: String,
}

/// A model built from tensors, with how it was built.
pub struct Built {
    pub model: Model,
    pub forget_bias: Option<f32>,
    pub uses: Vec<TensorUse>,
    pub notes: Vec<String>,
}

/// An error and the tensor it concerns.
pub type BuildError = (Option<String>, ErrorKind);

/// What a file's recorded structure says beyond its tensors' names (a
/// Keras config, a SavedModel's variable list, an ONNX graph), keyed by
/// the first component of a layer's tensor names (`lstm_1`, `layers.0`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Structure {
    /// The order of the layers, rather than by sorting their names.
    pub layer_order: Option<Vec<String>>,
    /// The cell of each recurrent layer where the file says: the layout
    /// checks the weights agree, and takes from it what weights cannot
    /// tell (a GRU's `reset_after`).
    pub cells: HashMap<String, Cell>,
}

/// Builds the canonical model named `name` from `tensors` with `layout`.
pub fn build(name: &str, tensors: &[RawTensor], layout: Layout, forget_bias: Option<f32>) -> Result<Built, BuildError> {
    build_ordered(name, tensors, layout, forget_bias, &Structure::default())
}

/// [`build`], with what the file's structure says ([`Structure`]).
pub fn build_ordered(
    name: &str,
    tensors: &[RawTensor],
    layout: Layout,
    forget_bias: Option<f32>,
    structure: &Structure,
) -> Result<Built, BuildError> {
    let mut t = Tensors::new(tensors);
    let (parts, forget_bias) = match layout {
        Layout::TfBasicLstm => {
            let fb = forget_bias.unwrap_or(0.0);
            let parts = tf::build_tf(&mut t, fb)?;
            t.notes.push(format!(
                "forget bias {fb} added to the f gate's bias (TensorFlow adds it at run time and does not store it; the ISS code uses 0.0, TensorFlow's default is 1.0: set it with --forget-bias)"
            ));
            (parts, Some(fb))
        }
        Layout::TfBidaf => {
            let fb = forget_bias.unwrap_or(1.0);
            let parts = bidaf::build_bidaf(&mut t, fb)?;
            t.notes.push(format!(
                "forget bias {fb} added to the f gate's bias (TensorFlow adds it at run time and does not store it; BiDAF's cells use TensorFlow's default 1.0: set it with --forget-bias)"
            ));
            (parts, Some(fb))
        }
        Layout::Rhn => (rhn::build_rhn(&mut t)?, None),
        Layout::Pytorch => (torch::build_torch(&mut t)?, None),
        Layout::Keras => (keras::build_keras(&mut t, structure)?, None),
        Layout::Onnx => (onnx::build_onnx(&mut t, structure)?, None),
    };
    let model = Model::new(name, parts.embedding, parts.layers, parts.head).map_err(model_err)?;
    let model = if parts.tied { model.tied().map_err(model_err)? } else { model };
    Ok(Built {
        model,
        forget_bias,
        uses: t.uses(),
        notes: t.notes,
    })
}

/// What a layout builds: the model's parts, before [`Model::new`] checks
/// that they chain.
#[derive(Default)]
struct Parts {
    embedding: Option<Embedding>,
    layers: Vec<Layer>,
    head: Option<Linear>,
    /// The head's weight is the embedding ([`Model::tied`]).
    tied: bool,
}
