//! The `tf-basic-lstm` layout: TensorFlow `BasicLSTMCell`s in a
//! `MultiRNNCell` (the PTB and ISS code): `.../cell_K/basic_lstm_cell/kernel`
//! (`weights` before TF 1.2) `[in + h, 4h]` with rows `[x; h]`, gates
//! i, j, f, o, the forget bias added at run time; `embedding`,
//! `softmax_w [h, vocab]`, `softmax_b`.

use std::collections::BTreeMap;

use super::tensors::{Tensors, find_suffix, model_err, reorder_gates, transpose};
use super::{BuildError, Parts};
use crate::checkpoint::{ErrorKind, RawTensor};
use crate::model::{Embedding, Linear, Recurrent};

/// The variable scope of a TF cell's kernel (`.../basic_lstm_cell`), if `name` is one.
fn tf_cell_dir(name: &str) -> Option<&str> {
    let dir = name.strip_suffix("/kernel").or_else(|| name.strip_suffix("/weights"))?;
    (dir.ends_with("basic_lstm_cell") || dir.ends_with("lstm_cell")).then_some(dir)
}

/// Names of TF cell kernels: a cell scope's `kernel`/`weights` with no Keras
/// `recurrent_kernel` beside it, outside a bidirectional RNN's `fw` / `bw`
/// scopes (the `tf-bidaf` layout's).
fn tf_kernels(tensors: &[RawTensor]) -> Vec<&str> {
    let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
    tf_kernel_names(&names)
}

/// [`tf_kernels`] from the names alone.
pub(super) fn tf_kernel_names<'a>(names: &[&'a str]) -> Vec<&'a str> {
    let set: std::collections::HashSet<&str> = names.iter().copied().collect();
    names
        .iter()
        .copied()
        .filter(|n| tf_cell_dir(n).is_some_and(|dir| !set.contains(format!("{dir}/recurrent_kernel").as_str())))
        .filter(|n| super::bidaf::cell(n).is_none())
        .collect()
}

/// The layer index of a TF cell scope: `cell_K` in its path, else 0.
fn tf_cell_index(dir: &str) -> usize {
    dir.split('/')
        .filter_map(|s| s.strip_prefix("cell_").and_then(|k| k.parse().ok()))
        .next_back()
        .unwrap_or(0)
}

pub(super) fn build_tf(t: &mut Tensors, forget_bias: f32) -> Result<Parts, BuildError> {
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
        let bias = [format!("{dir}/bias"), format!("{dir}/biases")]
            .into_iter()
            .find(|n| t.has(n))
            .ok_or_else(|| (Some(format!("{dir}/bias")), ErrorKind::Missing("the cell's bias".into())))?;
        layers.push(basic_lstm(t, kernel, &bias, &format!("layer {k}"), forget_bias)?.into());
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
    Ok(Parts {
        embedding,
        layers,
        head,
        tied: false,
    })
}

/// One `BasicLSTMCell`: `kernel [in + h, 4h]` (rows `[x; h]`, gate
/// columns i, j, f, o) and `bias [4h]`, with `forget_bias` added to the
/// f gate's bias as TensorFlow does at run time.
pub(super) fn basic_lstm(t: &mut Tensors, kernel: &str, bias: &str, label: &str, forget_bias: f32) -> Result<Recurrent, BuildError> {
    let shape = t.shape(kernel)?;
    let (rows, cols) = match shape {
        [r, c] if c % 4 == 0 && *r > c / 4 && *c > 0 => (*r, *c),
        _ => {
            return Err((
                Some(kernel.to_string()),
                ErrorKind::Shape(format!("a BasicLSTMCell kernel is [in + h, 4h], the file has {shape:?}")),
            ));
        }
    };
    let (h, input) = (cols / 4, rows - cols / 4);
    let kernel_v = t.values(kernel, &[rows, cols], &format!("{label} kernel [x; h] (gates i, j, f, o)"))?;
    let bias_v = t.values(bias, &[cols], &format!("{label} bias (gates i, j, f, o)"))?;
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
    let mut bias = reorder_gates(&bias_v, h, 1, &from);
    for v in &mut bias[h..2 * h] {
        *v += forget_bias;
    }
    Recurrent::new(label, input, h, w_ih, w_hh, bias).map_err(model_err)
}
