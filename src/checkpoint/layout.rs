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

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

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

/// Tensors by name, recording which were used and converted.
struct Tensors<'a> {
    all: &'a [RawTensor],
    by_name: HashMap<&'a str, &'a RawTensor>,
    roles: HashMap<String, String>,
    notes: Vec<String>,
}

impl<'a> Tensors<'a> {
    fn new(all: &'a [RawTensor]) -> Self {
        Tensors {
            all,
            by_name: all.iter().map(|t| (t.name.as_str(), t)).collect(),
            roles: HashMap::new(),
            notes: Vec::new(),
        }
    }
    fn has(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }
    fn shape(&self, name: &str) -> Result<&'a [usize], BuildError> {
        self.by_name.get(name).map(|t| t.shape.as_slice()).ok_or_else(|| {
            (
                Some(name.to_string()),
                ErrorKind::Missing("needed by the layout but not in the file".into()),
            )
        })
    }
    /// The values of `name`, which must have shape `want`.
    fn values(&mut self, name: &str, want: &[usize], role: &str) -> Result<Vec<f32>, BuildError> {
        let err = |e| (Some(name.to_string()), e);
        let t = *self
            .by_name
            .get(name)
            .ok_or_else(|| err(ErrorKind::Missing("needed by the layout but not in the file".into())))?;
        if t.shape != want {
            return Err(err(ErrorKind::Shape(format!(
                "{role} should be {want:?}, the file has {:?}",
                t.shape
            ))));
        }
        let (values, note) = t.to_f32().map_err(err)?;
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(err(ErrorKind::Corrupt(format!("non-finite value {} at index {i}", values[i]))));
        }
        self.notes.extend(note);
        self.roles.insert(name.to_string(), role.to_string());
        Ok(values)
    }
    fn uses(&self) -> Vec<TensorUse> {
        self.all
            .iter()
            .map(|t| TensorUse {
                name: t.name.clone(),
                shape: t.shape.clone(),
                dtype: t.dtype.name().to_string(),
                role: self.roles.get(&t.name).cloned().unwrap_or_else(|| "ignored".into()),
            })
            .collect()
    }
}

/// `[rows, cols]` row-major to `[cols, rows]`.
fn transpose(src: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; src.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = src[r * cols + c];
        }
    }
    out
}

/// Reorders the four gate blocks of `[4h, width]` rows: canonical gate `g`
/// (i, f, g, o) takes the file's block `from[g]`.
fn reorder_gates(src: &[f32], h: usize, width: usize, from: [usize; 4]) -> Vec<f32> {
    let block = h * width;
    from.iter().flat_map(|&b| src[b * block..(b + 1) * block].iter().copied()).collect()
}

fn model_err(e: crate::model::ModelError) -> BuildError {
    (None, e.into())
}

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
            let (e, l, h) = build_tf(&mut t, fb)?;
            t.notes.push(format!(
                "forget bias {fb} added to the f gate's bias (TensorFlow adds it at run time and does not store it; the ISS code uses 0.0, TensorFlow's default is 1.0: set it with --forget-bias)"
            ));
            (e, l, h, Some(fb))
        }
        Layout::Pytorch => {
            let (e, l, h) = build_torch(&mut t)?;
            (e, l, h, None)
        }
        Layout::Keras => {
            let (e, l, h) = build_keras(&mut t, layer_order)?;
            (e, l, h, None)
        }
        Layout::Onnx => {
            let (e, l, h) = build_onnx(&mut t)?;
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

/// The variable scope of a TF cell's kernel (`.../basic_lstm_cell`), if `name` is one.
fn tf_cell_dir(name: &str) -> Option<&str> {
    let dir = name.strip_suffix("/kernel").or_else(|| name.strip_suffix("/weights"))?;
    (dir.ends_with("basic_lstm_cell") || dir.ends_with("lstm_cell")).then_some(dir)
}

/// Names of TF cell kernels: a cell scope's `kernel`/`weights` with no Keras
/// `recurrent_kernel` beside it.
fn tf_kernels(tensors: &[RawTensor]) -> Vec<&str> {
    let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
    tf_kernel_names(&names)
}

/// [`tf_kernels`] from the names alone.
fn tf_kernel_names<'a>(names: &[&'a str]) -> Vec<&'a str> {
    let set: std::collections::HashSet<&str> = names.iter().copied().collect();
    names
        .iter()
        .copied()
        .filter(|n| tf_cell_dir(n).is_some_and(|dir| !set.contains(format!("{dir}/recurrent_kernel").as_str())))
        .collect()
}

/// The layer index of a TF cell scope: `cell_K` in its path, else 0.
fn tf_cell_index(dir: &str) -> usize {
    dir.split('/')
        .filter_map(|s| s.strip_prefix("cell_").and_then(|k| k.parse().ok()))
        .next_back()
        .unwrap_or(0)
}

/// The one tensor whose name ends with one of `suffixes`, if any.
fn find_suffix<'a>(t: &Tensors<'a>, suffixes: &[&str]) -> Result<Option<String>, BuildError> {
    let found: Vec<&str> = t
        .all
        .iter()
        .map(|x| x.name.as_str())
        .filter(|n| suffixes.iter().any(|s| n.ends_with(s)))
        .collect();
    match found[..] {
        [] => Ok(None),
        [one] => Ok(Some(one.to_string())),
        _ => Err((None, ErrorKind::Layout(format!("several candidates: {}", found.join(", "))))),
    }
}

fn build_tf(t: &mut Tensors, forget_bias: f32) -> Result<Parts, BuildError> {
    let mut cells: BTreeMap<usize, String> = BTreeMap::new();
    for name in tf_kernels(t.all) {
        let dir = tf_cell_dir(name).expect("filtered");
        if let Some(prev) = cells.insert(tf_cell_index(dir), name.to_string()) {
            return Err((None, ErrorKind::Layout(format!("two kernels for one cell: {prev} and {name}"))));
        }
    }
    let mut layers = Vec::new();
    for (k, (&index, kernel)) in cells.iter().enumerate() {
        if index != k {
            return Err((
                None,
                ErrorKind::Missing(format!("cell_{k} (cells found: {:?})", cells.keys().collect::<Vec<_>>())),
            ));
        }
        let dir = tf_cell_dir(kernel).expect("matched above");
        let shape = t.shape(kernel)?;
        let (rows, cols) = match shape {
            [r, c] if c % 4 == 0 && *r > c / 4 && *c > 0 => (*r, *c),
            _ => {
                return Err((
                    Some(kernel.clone()),
                    ErrorKind::Shape(format!("a BasicLSTMCell kernel is [in + h, 4h], the file has {shape:?}")),
                ));
            }
        };
        let (h, input) = (cols / 4, rows - cols / 4);
        let bias_name = [format!("{dir}/bias"), format!("{dir}/biases")]
            .into_iter()
            .find(|n| t.has(n))
            .ok_or_else(|| (Some(format!("{dir}/bias")), ErrorKind::Missing("the cell's bias".into())))?;
        let kernel_v = t.values(kernel, &[rows, cols], &format!("layer {k} kernel [x; h] (gates i, j, f, o)"))?;
        let bias_v = t.values(&bias_name, &[cols], &format!("layer {k} bias (gates i, j, f, o)"))?;
        // Canonical i, f, g, o from the file's i, j, f, o.
        let from = [0, 2, 1, 3];
        let kt = transpose(&kernel_v, rows, cols); // [4h, in + h]
        let mut w_ih = Vec::with_capacity(4 * h * input);
        let mut w_hh = Vec::with_capacity(4 * h * h);
        for &b in &from {
            for r in 0..h {
                let row = &kt[(b * h + r) * rows..(b * h + r + 1) * rows];
                w_ih.extend_from_slice(&row[..input]);
                w_hh.extend_from_slice(&row[input..]);
            }
        }
        let mut bias = reorder_gates(&bias_v, h, 1, from);
        for v in &mut bias[h..2 * h] {
            *v += forget_bias;
        }
        layers.push(LstmLayer::new(&format!("layer {k}"), input, h, w_ih, w_hh, bias).map_err(model_err)?);
    }
    if layers.is_empty() {
        return Err((None, ErrorKind::Missing("no .../basic_lstm_cell/kernel (or weights) tensor".into())));
    }
    let embedding = match find_suffix(t, &["embedding"])? {
        Some(name) => {
            let [vocab, dim] = *t.shape(&name)? else {
                return Err((Some(name), ErrorKind::Shape("an embedding is [vocab, dim]".into())));
            };
            Some(Embedding::new("embedding", vocab, dim, t.values(&name, &[vocab, dim], "embedding")?).map_err(model_err)?)
        }
        None => None,
    };
    let head = match find_suffix(t, &["softmax_w"])? {
        Some(w) => {
            let [hin, out] = *t.shape(&w)? else {
                return Err((Some(w), ErrorKind::Shape("softmax_w is [h, vocab]".into())));
            };
            let b = w.replace("softmax_w", "softmax_b");
            let weight = transpose(&t.values(&w, &[hin, out], "head weight (transposed)")?, hin, out);
            let bias = t.values(&b, &[out], "head bias")?;
            Some(Linear::new("head", hin, out, weight, bias).map_err(model_err)?)
        }
        None => None,
    };
    Ok((embedding, layers, head))
}

/// `(prefix, layer)` of a PyTorch `PREFIXweight_ih_lK` name.
fn torch_layer(name: &str) -> Option<(&str, usize)> {
    let at = name.rfind("weight_ih_l")?;
    let k = name[at + "weight_ih_l".len()..].parse().ok()?;
    Some((&name[..at], k))
}

/// Sort key putting `lstm2.` before `lstm10.`: the text, then its number.
fn natural_key(s: &str) -> (String, u64) {
    let trimmed = s.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    let digits = trimmed.len() - trimmed.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (text, num) = trimmed.split_at(trimmed.len() - digits);
    (text.to_string(), num.parse().unwrap_or(0))
}

fn build_torch(t: &mut Tensors) -> Result<Parts, BuildError> {
    if let Some(x) = t.all.iter().find(|x| x.name.contains("_reverse")) {
        return Err((Some(x.name.clone()), ErrorKind::Unsupported("bidirectional LSTM".into())));
    }
    if let Some(x) = t.all.iter().find(|x| x.name.contains("weight_hr_l")) {
        return Err((
            Some(x.name.clone()),
            ErrorKind::Unsupported("LSTM with projections (proj_size)".into()),
        ));
    }
    // Prefixes (modules) and their layer counts; several modules stack in name order.
    let mut modules: BTreeMap<(String, u64), (String, usize)> = BTreeMap::new();
    for x in t.all {
        if let Some((prefix, k)) = torch_layer(&x.name) {
            let e = modules.entry(natural_key(prefix)).or_insert((prefix.to_string(), 0));
            e.1 = e.1.max(k + 1);
        }
    }
    let mut layers: Vec<LstmLayer> = Vec::new();
    for (prefix, count) in modules.values() {
        for k in 0..*count {
            let n = layers.len();
            let wi = format!("{prefix}weight_ih_l{k}");
            let wh = format!("{prefix}weight_hh_l{k}");
            // The gate count is weight_hh's rows over its columns: 4 for an
            // LSTM, 3 for a GRU (told apart by the shapes, not guessed).
            let h = match t.shape(&wh)? {
                [r, c] if *c > 0 && r % c == 0 && r / c == 3 => {
                    return Err((
                        Some(wh),
                        ErrorKind::Unsupported(format!(
                            "a GRU: weight_hh is [3h, h] = [{r}, {c}] (an LSTM's is [4h, h]); GRUs are not supported yet"
                        )),
                    ));
                }
                [r, c] if *c > 0 && *r == 4 * c => *c,
                s => return Err((Some(wh), ErrorKind::Shape(format!("weight_hh is [4h, h], the file has {s:?}")))),
            };
            let g4 = 4 * h;
            let input = match t.shape(&wi)? {
                [r, c] if *r == g4 => *c,
                s => {
                    return Err((
                        Some(wi),
                        ErrorKind::Shape(format!("weight_ih is [4h, in] = [{g4}, in], the file has {s:?}")),
                    ));
                }
            };
            let w_ih = t.values(&wi, &[g4, input], &format!("layer {n} w_ih"))?;
            let w_hh = t.values(&wh, &[g4, h], &format!("layer {n} w_hh"))?;
            let (bi, bh) = (format!("{prefix}bias_ih_l{k}"), format!("{prefix}bias_hh_l{k}"));
            let mut bias = vec![0.0f32; g4];
            for (name, part) in [(&bi, "bias_ih"), (&bh, "bias_hh")] {
                if t.has(name) {
                    let b = t.values(name, &[g4], &format!("layer {n} {part} (summed into the bias)"))?;
                    bias.iter_mut().zip(b).for_each(|(a, b)| *a += b);
                }
            }
            layers.push(LstmLayer::new(&format!("layer {n}"), input, h, w_ih, w_hh, bias).map_err(model_err)?);
        }
    }
    if layers.is_empty() {
        return Err((None, ErrorKind::Missing("no weight_ih_l0 tensor".into())));
    }
    let (first_in, last_h) = (layers[0].input(), layers.last().unwrap().hidden());
    // Other `X.weight` matrices: with a bias and h_last columns, the head;
    // without a bias and `in` columns, the embedding.
    let mut heads = Vec::new();
    let mut embeddings = Vec::new();
    for x in t.all {
        let Some(module) = x.name.strip_suffix("weight") else { continue };
        if torch_layer(&x.name).is_some() || x.name.contains("weight_hh_l") || x.shape.len() != 2 {
            continue;
        }
        let bias = format!("{module}bias");
        if t.has(&bias) && x.shape[1] == last_h {
            heads.push((x.name.clone(), bias));
        } else if !t.has(&bias) && x.shape[1] == first_in {
            embeddings.push(x.name.clone());
        } else if t.has(&bias) && looks_like_head(module) {
            return Err((
                Some(x.name.clone()),
                ErrorKind::Shape(format!(
                    "looks like the output projection, but it is {:?}: a head over the last layer's {last_h} units is [out, {last_h}]",
                    x.shape
                )),
            ));
        }
    }
    if embeddings.len() > 1 {
        embeddings.retain(|n| n.contains("embed") || n.contains("encoder"));
    }
    let embedding = match &embeddings[..] {
        [] => None,
        [name] => {
            let [vocab, dim] = *t.shape(name)? else {
                unreachable!("2-D checked")
            };
            Some(Embedding::new("embedding", vocab, dim, t.values(name, &[vocab, dim], "embedding")?).map_err(model_err)?)
        }
        many => {
            return Err((
                None,
                ErrorKind::Layout(format!("several embedding candidates: {}", many.join(", "))),
            ));
        }
    };
    let head = match &heads[..] {
        [] => None,
        [(w, b)] => {
            let [out, hin] = *t.shape(w)? else { unreachable!("2-D checked") };
            let weight = t.values(w, &[out, hin], "head weight")?;
            let bias = t.values(b, &[out], "head bias")?;
            Some(Linear::new("head", hin, out, weight, bias).map_err(model_err)?)
        }
        many => {
            let names: Vec<_> = many.iter().map(|(w, _)| w.as_str()).collect();
            return Err((
                None,
                ErrorKind::Layout(format!("several output layer candidates: {}", names.join(", "))),
            ));
        }
    };
    Ok((embedding, layers, head))
}

/// Whether a module name is one output projections go by.
fn looks_like_head(module: &str) -> bool {
    let module = module
        .trim_end_matches('.')
        .rsplit('.')
        .next()
        .unwrap_or(module)
        .to_ascii_lowercase();
    [
        "decoder",
        "head",
        "fc",
        "out",
        "output",
        "proj",
        "projection",
        "classifier",
        "linear",
        "softmax",
        "dense",
        "logits",
    ]
    .iter()
    .any(|n| module == *n || module.starts_with(n))
}

fn build_keras(t: &mut Tensors, layer_order: Option<&[String]>) -> Result<Parts, BuildError> {
    if let Some(x) = t.all.iter().find(|x| x.name.contains("gru_cell/")) {
        return Err((
            Some(x.name.clone()),
            ErrorKind::Unsupported("a GRU layer (gru_cell); GRUs are not supported yet".into()),
        ));
    }
    let bidirectional = |n: &str| n.split('/').any(|c| c.starts_with("forward_") || c.starts_with("backward_"));
    if let Some(x) = t
        .all
        .iter()
        .find(|x| x.name.ends_with("/recurrent_kernel") && bidirectional(&x.name))
    {
        return Err((
            Some(x.name.clone()),
            ErrorKind::Unsupported("a Bidirectional layer (forward_/backward_ cells); bidirectional layers are not supported yet".into()),
        ));
    }
    let mut cells: Vec<(String, (String, u64))> = t
        .all
        .iter()
        .filter_map(|x| x.name.strip_suffix("/recurrent_kernel"))
        .map(|dir| (dir.to_string(), natural_key(dir.split('/').next().unwrap_or(dir))))
        .collect();
    match layer_order {
        Some(order) => {
            let position = |dir: &str| order.iter().position(|l| dir.split('/').next() == Some(l.as_str()));
            if let Some((dir, _)) = cells.iter().find(|(dir, _)| position(dir).is_none()) {
                return Err((
                    Some(format!("{dir}/recurrent_kernel")),
                    ErrorKind::Layout(format!("layer of a cell not in the file's layer order ({})", order.join(", "))),
                ));
            }
            cells.sort_by_key(|(dir, _)| position(dir));
        }
        None => cells.sort_by(|a, b| a.1.cmp(&b.1)),
    }
    let mut layers = Vec::new();
    for (n, (dir, _)) in cells.iter().enumerate() {
        let (kernel, recurrent, bias_name) = (format!("{dir}/kernel"), format!("{dir}/recurrent_kernel"), format!("{dir}/bias"));
        let (input, g4) = match t.shape(&kernel)? {
            [r, c] if c % 4 == 0 && *c > 0 => (*r, *c),
            s => {
                return Err((
                    Some(kernel),
                    ErrorKind::Shape(format!("a Keras LSTM kernel is [in, 4h], the file has {s:?}")),
                ));
            }
        };
        let h = g4 / 4;
        let w_ih = transpose(
            &t.values(&kernel, &[input, g4], &format!("layer {n} w_ih (transposed)"))?,
            input,
            g4,
        );
        let w_hh = transpose(&t.values(&recurrent, &[h, g4], &format!("layer {n} w_hh (transposed)"))?, h, g4);
        let bias = if t.has(&bias_name) {
            t.values(&bias_name, &[g4], &format!("layer {n} bias"))?
        } else {
            vec![0.0; g4]
        };
        layers.push(LstmLayer::new(&format!("layer {n}"), input, h, w_ih, w_hh, bias).map_err(model_err)?);
    }
    let embedding = match find_suffix(t, &["/embeddings"])? {
        Some(name) => {
            let [vocab, dim] = *t.shape(&name)? else {
                return Err((Some(name), ErrorKind::Shape("embeddings are [vocab, dim]".into())));
            };
            Some(Embedding::new("embedding", vocab, dim, t.values(&name, &[vocab, dim], "embedding")?).map_err(model_err)?)
        }
        None => None,
    };
    let last_h = layers.last().map_or(0, LstmLayer::hidden);
    let dense_kernels = |fits: bool| {
        t.all
            .iter()
            .filter(move |x| {
                x.name.ends_with("/kernel") && !x.name.contains("lstm_cell") && x.shape.len() == 2 && (x.shape[0] == last_h) == fits
            })
            .map(|x| x.name.clone())
    };
    if let Some(other) = dense_kernels(false).find(|n| looks_like_head(n.split('/').next().unwrap_or(n))) {
        let shape = t.shape(&other)?.to_vec();
        return Err((
            Some(other),
            ErrorKind::Shape(format!(
                "looks like the output projection, but it is {shape:?}: a Dense over the last layer's {last_h} units is [{last_h}, out]"
            )),
        ));
    }
    let denses: Vec<String> = dense_kernels(true).collect();
    let head = match &denses[..] {
        [] => None,
        [k] => {
            let [hin, out] = *t.shape(k)? else { unreachable!("2-D checked") };
            let b = format!("{}/bias", k.strip_suffix("/kernel").expect("filtered"));
            let weight = transpose(&t.values(k, &[hin, out], "head weight (transposed)")?, hin, out);
            let bias = if t.has(&b) {
                t.values(&b, &[out], "head bias")?
            } else {
                vec![0.0; out]
            };
            Some(Linear::new("head", hin, out, weight, bias).map_err(model_err)?)
        }
        many => {
            return Err((
                None,
                ErrorKind::Layout(format!("several output layer candidates: {}", many.join(", "))),
            ));
        }
    };
    Ok((embedding, layers, head))
}

/// ONNX gate blocks i, o, f, c as canonical i, f, g, o.
const ONNX_LSTM_GATES: [usize; 4] = [0, 2, 3, 1];

/// The ONNX reader's `layers.K.W` / `R` / `B`, `embedding` and `head.*`
/// (see `checkpoint::onnx`): one direction per layer for now.
fn build_onnx(t: &mut Tensors) -> Result<Parts, BuildError> {
    let mut layers = Vec::new();
    for n in 0.. {
        let (w, r, b) = (format!("layers.{n}.W"), format!("layers.{n}.R"), format!("layers.{n}.B"));
        if !t.has(&w) {
            break;
        }
        let (g4, input) = match t.shape(&w)? {
            [1, r, c] if r % 4 == 0 && *r > 0 => (*r, *c),
            s => {
                return Err((
                    Some(w),
                    ErrorKind::Shape(format!("an ONNX LSTM's W is [1, 4h, in], the file has {s:?}")),
                ));
            }
        };
        let h = g4 / 4;
        let w_ih = reorder_gates(
            &t.values(&w, &[1, g4, input], &format!("layer {n} w_ih (gates i, o, f, c)"))?,
            h,
            input,
            ONNX_LSTM_GATES,
        );
        let w_hh = reorder_gates(
            &t.values(&r, &[1, g4, h], &format!("layer {n} w_hh (gates i, o, f, c)"))?,
            h,
            h,
            ONNX_LSTM_GATES,
        );
        let bias = if t.has(&b) {
            let both = t.values(&b, &[1, 2 * g4], &format!("layer {n} bias [Wb; Rb] (summed)"))?;
            let (wb, rb) = both.split_at(g4);
            let (wb, rb) = (reorder_gates(wb, h, 1, ONNX_LSTM_GATES), reorder_gates(rb, h, 1, ONNX_LSTM_GATES));
            wb.iter().zip(&rb).map(|(a, b)| a + b).collect()
        } else {
            vec![0.0; g4]
        };
        layers.push(LstmLayer::new(&format!("layer {n}"), input, h, w_ih, w_hh, bias).map_err(model_err)?);
    }
    if layers.is_empty() {
        return Err((
            None,
            ErrorKind::Missing("no layers.0.W (the ONNX reader names an LSTM node's W so)".into()),
        ));
    }
    let embedding = if t.has("embedding") {
        let [vocab, dim] = *t.shape("embedding")? else {
            return Err((Some("embedding".into()), ErrorKind::Shape("an embedding is [vocab, dim]".into())));
        };
        Some(Embedding::new("embedding", vocab, dim, t.values("embedding", &[vocab, dim], "embedding")?).map_err(model_err)?)
    } else {
        None
    };
    let head = match ["head.kernel", "head.weight"].into_iter().find(|n| t.has(n)) {
        None => None,
        Some(name) => {
            let [a, b] = *t.shape(name)? else {
                return Err((Some(name.into()), ErrorKind::Shape("a head weight is 2-D".into())));
            };
            let (hin, out, weight) = if name == "head.kernel" {
                (a, b, transpose(&t.values(name, &[a, b], "head weight (transposed)")?, a, b))
            } else {
                (b, a, t.values(name, &[a, b], "head weight")?)
            };
            // A bias of shape [out], or [1, out] as Gemm and Add allow.
            let bias = match t.shape("head.bias") {
                Ok(shape) if shape.iter().product::<usize>() == out && shape.last() == Some(&out) => {
                    let shape = shape.to_vec();
                    t.values("head.bias", &shape, "head bias")?
                }
                Ok(shape) => {
                    return Err((
                        Some("head.bias".into()),
                        ErrorKind::Shape(format!("the head's bias should be [{out}], the file has {shape:?}")),
                    ));
                }
                Err(_) => vec![0.0; out],
            };
            Some(Linear::new("head", hin, out, weight, bias).map_err(model_err)?)
        }
    };
    Ok((embedding, layers, head))
}
