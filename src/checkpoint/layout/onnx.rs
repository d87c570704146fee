//! The `onnx` layout: the tensors the ONNX reader names by their place in
//! the graph (`checkpoint::onnx`): `layers.K.W [1, 4h, in]`, `R [1, 4h, h]`,
//! `B [1, 8h]` = `[Wb; Rb]`, gates i, o, f, c; `embedding`, `head.kernel`
//! or `head.weight`, `head.bias`.

use super::tensors::{Tensors, model_err, reorder_gates, transpose};
use super::{BuildError, Parts, Structure};
use crate::checkpoint::ErrorKind;
use crate::model::{Embedding, Linear, LstmLayer};

/// ONNX gate blocks i, o, f, c as canonical i, f, g, o.
const ONNX_LSTM_GATES: [usize; 4] = [0, 2, 3, 1];

/// The ONNX reader's `layers.K.W` / `R` / `B`, `embedding` and `head.*`
/// (see `checkpoint::onnx`): one direction per layer for now.
pub(super) fn build_onnx(t: &mut Tensors, _structure: &Structure) -> Result<Parts, BuildError> {
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
            &ONNX_LSTM_GATES,
        );
        let w_hh = reorder_gates(
            &t.values(&r, &[1, g4, h], &format!("layer {n} w_hh (gates i, o, f, c)"))?,
            h,
            h,
            &ONNX_LSTM_GATES,
        );
        let bias = if t.has(&b) {
            let both = t.values(&b, &[1, 2 * g4], &format!("layer {n} bias [Wb; Rb] (summed)"))?;
            let (wb, rb) = both.split_at(g4);
            let (wb, rb) = (reorder_gates(wb, h, 1, &ONNX_LSTM_GATES), reorder_gates(rb, h, 1, &ONNX_LSTM_GATES));
            wb.iter().zip(&rb).map(|(a, b)| a + b).collect()
        } else {
            vec![0.0; g4]
        };
        layers.push(
            LstmLayer::new(&format!("layer {n}"), input, h, w_ih, w_hh, bias)
                .map_err(model_err)?
                .into(),
        );
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
    Ok(Parts {
        embedding,
        layers,
        head,
        tied: false,
    })
}
