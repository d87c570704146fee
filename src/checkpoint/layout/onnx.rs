//! The `onnx` layout: the tensors the ONNX reader names by their place in
//! the graph (`checkpoint::onnx`): `layers.K.W [dirs, G·h, in]`,
//! `R [dirs, G·h, h]`, `B [dirs, 2·G·h]` = `[Wb; Rb]` per direction
//! (direction 0 forward, 1 backward), `embedding`, `head.kernel` or
//! `head.weight`, `head.bias`. An `LSTM` node (gates i, o, f, c) has its
//! biases summed; a `GRU` node (gates z, r, h) keeps `Wb` and `Rb` apart
//! as `b_ih` and `b_hh`, its `linear_before_reset` being the canonical
//! `reset_after`. The node's cell comes from the file's [`Structure`]
//! (`layers.K`) and is checked against R's gate rows.

use super::tensors::{Tensors, model_err, reorder_gates, transpose};
use super::{BuildError, Parts, Structure};
use crate::checkpoint::ErrorKind;
use crate::model::{Cell, Direction, Embedding, Layer, Linear, Recurrent};

/// ONNX gate blocks i, o, f, c as canonical i, f, g, o.
const ONNX_LSTM_GATES: [usize; 4] = [0, 2, 3, 1];
/// ONNX gate blocks z, r, h as canonical r, z, n.
const ONNX_GRU_GATES: [usize; 3] = [1, 0, 2];

/// The ONNX reader's `layers.K.W` / `R` / `B`, `embedding` and `head.*`
/// (see `checkpoint::onnx`).
pub(super) fn build_onnx(t: &mut Tensors, structure: &Structure) -> Result<Parts, BuildError> {
    let mut layers = Vec::new();
    for n in 0.. {
        let w = format!("layers.{n}.W");
        if !t.has(&w) {
            break;
        }
        layers.push(layer(t, n, structure.cells.get(&format!("layers.{n}")).copied())?);
    }
    if layers.is_empty() {
        return Err((
            None,
            ErrorKind::Missing("no layers.0.W (the ONNX reader names a recurrent node's W so)".into()),
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
    Ok(Parts {
        embedding,
        layers,
        head,
        tied: false,
    })
}

/// Layer `n`: its cell (`hint`, from the graph; else an LSTM or GRU by R's
/// gate rows, a GRU needing the graph's `linear_before_reset`) and each of
/// its directions.
fn layer(t: &mut Tensors, n: usize, hint: Option<Cell>) -> Result<Layer, BuildError> {
    let (w, r, b) = (format!("layers.{n}.W"), format!("layers.{n}.R"), format!("layers.{n}.B"));
    let (dirs, rows, h) = match t.shape(&r)? {
        [d @ (1 | 2), rows, h] if *h > 0 && (*rows == 4 * h || *rows == 3 * h) => (*d, *rows, *h),
        s => {
            return Err((
                Some(r),
                ErrorKind::Shape(format!(
                    "an ONNX LSTM's R is [dirs, 4h, h], a GRU's [dirs, 3h, h] (dirs 1 or 2); the file has {s:?}"
                )),
            ));
        }
    };
    let cell = match (hint, rows / h) {
        (Some(c), g) if c.recurrent_gates() == g => c,
        (None, 4) => Cell::Lstm,
        (Some(c), g) => {
            return Err((
                Some(r),
                ErrorKind::Shape(format!("the graph's node is {}, but R has {g}h gate rows", c.describe())),
            ));
        }
        (None, _) => {
            return Err((
                Some(r),
                ErrorKind::Layout("a GRU whose linear_before_reset is unknown (the ONNX reader takes it from the GRU node)".into()),
            ));
        }
    };
    let input = match t.shape(&w)? {
        [d, r, c] if *d == dirs && *r == rows => *c,
        s => {
            return Err((
                Some(w),
                ErrorKind::Shape(format!("R makes W [{dirs}, {rows}, in]; the file has {s:?}")),
            ));
        }
    };
    let gates: &[usize] = if cell == Cell::Lstm { &ONNX_LSTM_GATES } else { &ONNX_GRU_GATES };
    let order = if cell == Cell::Lstm { "i, o, f, c" } else { "z, r, h" };
    let w_all = t.values(&w, &[dirs, rows, input], &format!("layer {n} w_ih (gates {order})"))?;
    let r_all = t.values(&r, &[dirs, rows, h], &format!("layer {n} w_hh (gates {order})"))?;
    let b_all = if t.has(&b) {
        let role = if cell == Cell::Lstm {
            format!("layer {n} bias [Wb; Rb] (summed)")
        } else {
            format!("layer {n} biases [Wb; Rb] (b_ih, b_hh)")
        };
        t.values(&b, &[dirs, 2 * rows], &role)?
    } else {
        vec![0.0; dirs * 2 * rows]
    };
    let mut directions = Vec::new();
    for d in 0..dirs {
        let label = match dirs {
            1 => format!("layer {n}"),
            _ => format!("layer {n} {}", [Direction::Forward, Direction::Backward][d].name()),
        };
        let slice = |all: &[f32], len: usize| all[d * len..(d + 1) * len].to_vec();
        let w_ih = reorder_gates(&slice(&w_all, rows * input), h, input, gates);
        let w_hh = reorder_gates(&slice(&r_all, rows * h), h, h, gates);
        let both = slice(&b_all, 2 * rows);
        let (wb, rb) = both.split_at(rows);
        let (wb, rb) = (reorder_gates(wb, h, 1, gates), reorder_gates(rb, h, 1, gates));
        let (bias, bias_hh) = if cell == Cell::Lstm {
            (wb.iter().zip(&rb).map(|(a, b)| a + b).collect(), Vec::new())
        } else {
            (wb, rb)
        };
        directions.push(Recurrent::with_cell(&label, cell, input, h, w_ih, w_hh, bias, bias_hh).map_err(model_err)?);
    }
    let mut directions = directions.into_iter();
    let fw = directions.next().expect("one or two directions");
    match directions.next() {
        Some(bw) => Layer::bidirectional(&format!("layer {n}"), fw, bw).map_err(model_err),
        None => Ok(fw.into()),
    }
}
