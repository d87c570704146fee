//! Naming conventions: the one place that knows how TensorFlow, PyTorch and
//! Keras name and lay out LSTM weights, and how to turn them into the
//! canonical model (DESIGN.md, "Canonical model"; tools/README-fixtures.md
//! has the exact names each framework writes).
//!
//! | layout | LSTM tensors | stored as | gates |
//! |---|---|---|---|
//! | `tf-basic-lstm` | `.../cell_K/basic_lstm_cell/kernel` (`weights` before TF 1.2), `bias` (`biases`) | kernel `[in+h, 4h]`, rows `[x; h]` | i, j, f, o; forget bias added at run time |
//! | `pytorch` | `PREFIXweight_ih_lK`, `weight_hh_lK`, `bias_ih_lK`, `bias_hh_lK` | `[4h, in]`, `[4h, h]` | i, f, g, o |
//! | `keras` | `LAYER/lstm_cell/kernel`, `recurrent_kernel`, `bias` | `[in, 4h]`, `[h, 4h]` | i, f, c, o |
//! | `onnx` | `layers.K.W`, `layers.K.R`, `layers.K.B` (named by the ONNX reader) | `[1, 4h, in]`, `[1, 4h, h]`, `[1, 8h]` = `[Wb; Rb]` | i, o, f, c |
//!
//! Heads and embeddings: TF `softmax_w [h, vocab]` / `softmax_b` and
//! `embedding [vocab, emb]`; PyTorch any `X.weight [out, h]` + `X.bias` and an
//! unbiased `X.weight [vocab, in]`; Keras `dense/kernel [h, out]` + `bias` and
//! `embedding/embeddings`; ONNX `embedding`, `head.kernel [width, out]` or
//! `head.weight [out, width]`, `head.bias`. Everything else (step counters, learning rates,
//! optimizer slots) is ignored and reported as such.

mod keras;
mod onnx;
mod tensors;
mod tf;
mod torch;

use serde::Serialize;

use self::tensors::{Tensors, model_err};
use self::tf::tf_kernel_names;
use self::torch::torch_layer;
use super::{ErrorKind, RawTensor};
use crate::model::{Embedding, Linear, LstmLayer, Model};

/// A naming scheme and weight layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// TensorFlow `BasicLSTMCell` in a `MultiRNNCell` (the PTB and ISS code).
    TfBasicLstm,
    /// PyTorch `nn.LSTM` state dict (any module prefix).
    Pytorch,
    /// Keras `LSTM` layers.
    Keras,
    /// ONNX `LSTM` nodes, as the ONNX reader names their inputs.
    Onnx,
}

impl Layout {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Layout::TfBasicLstm => "tf-basic-lstm",
            Layout::Pytorch => "pytorch",
            Layout::Keras => "keras",
            Layout::Onnx => "onnx",
        }
    }
    /// Every layout.
    pub const ALL: [Layout; 4] = [Layout::TfBasicLstm, Layout::Pytorch, Layout::Keras, Layout::Onnx];
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

/// Builds the canonical model named `name` from `tensors` with `layout`.
pub fn build(name: &str, tensors: &[RawTensor], layout: Layout, forget_bias: Option<f32>) -> Result<Built, BuildError> {
    build_ordered(name, tensors, layout, forget_bias, None)
}

/// [`build`], with the order of the layers given by their names
/// (`layer_order`, from a file that records it: a Keras config, a
/// SavedModel's variable list) rather than by sorting the names.
pub fn build_ordered(
    name: &str,
    tensors: &[RawTensor],
    layout: Layout,
    forget_bias: Option<f32>,
    layer_order: Option<&[String]>,
) -> Result<Built, BuildError> {
    let mut t = Tensors::new(tensors);
    let (embedding, layers, head, forget_bias) = match layout {
        Layout::TfBasicLstm => {
            let fb = forget_bias.unwrap_or(0.0);
            let (e, l, h) = tf::build_tf(&mut t, fb)?;
            t.notes.push(format!(
                "forget bias {fb} added to the f gate's bias (TensorFlow adds it at run time and does not store it; the ISS code uses 0.0, TensorFlow's default is 1.0: set it with --forget-bias)"
            ));
            (e, l, h, Some(fb))
        }
        Layout::Pytorch => {
            let (e, l, h) = torch::build_torch(&mut t)?;
            (e, l, h, None)
        }
        Layout::Keras => {
            let (e, l, h) = keras::build_keras(&mut t, layer_order)?;
            (e, l, h, None)
        }
        Layout::Onnx => {
            let (e, l, h) = onnx::build_onnx(&mut t)?;
            (e, l, h, None)
        }
    };
    let model = Model::new(name, embedding, layers, head).map_err(model_err)?;
    Ok(Built {
        model,
        forget_bias,
        uses: t.uses(),
        notes: t.notes,
    })
}

type Parts = (Option<Embedding>, Vec<LstmLayer>, Option<Linear>);
