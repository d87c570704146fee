//! Writing a model as an ONNX graph, so ONNX Runtime (the peer) can run
//! exactly the model issbench times. A small protobuf encoder for the few
//! ONNX messages needed (no Python, no protobuf compiler).
//!
//! Graph (opset 17): token ids `tokens` int64 `[seq, batch]` through
//! `Gather` on the embedding when there is one and the head is included,
//! else features `x` float `[seq, batch, in]`; per layer an `LSTM` op
//! (`W [1, 4h, in]`, `R [1, 4h, h]`, `B [1, 8h]`, gates i, o, f, c; the
//! folded bias in the `W` half of `B`) and a `Squeeze` of its direction
//! axis; then `MatMul` + `Add` for the head. Output `y`: `[seq, batch, out]`.

use crate::model::Model;

const IR_VERSION: u64 = 8;
const OPSET: u64 = 17;
const FLOAT: u64 = 1;
const INT64: u64 = 7;

fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn key(buf: &mut Vec<u8>, field: u64, wire: u64) {
    varint(buf, (field << 3) | wire);
}

fn int_field(buf: &mut Vec<u8>, field: u64, v: u64) {
    key(buf, field, 0);
    varint(buf, v);
}

fn bytes_field(buf: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    key(buf, field, 2);
    varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

/// `TensorProto` with raw little-endian data.
fn tensor(name: &str, dims: &[usize], data_type: u64, raw: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    for &d in dims {
        int_field(&mut t, 1, d as u64);
    }
    int_field(&mut t, 2, data_type);
    bytes_field(&mut t, 8, name.as_bytes());
    bytes_field(&mut t, 9, raw);
    t
}

fn f32_tensor(name: &str, dims: &[usize], values: &[f32]) -> Vec<u8> {
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    tensor(name, dims, FLOAT, &raw)
}

/// `ValueInfoProto` of a tensor; a dimension is a size or a symbolic name.
fn value_info(name: &str, elem_type: u64, dims: &[Result<usize, &str>]) -> Vec<u8> {
    let mut shape = Vec::new();
    for d in dims {
        let mut dim = Vec::new();
        match d {
            Ok(n) => int_field(&mut dim, 1, *n as u64),
            Err(p) => bytes_field(&mut dim, 2, p.as_bytes()),
        }
        bytes_field(&mut shape, 1, &dim);
    }
    let mut tensor_type = Vec::new();
    int_field(&mut tensor_type, 1, elem_type);
    bytes_field(&mut tensor_type, 2, &shape);
    let mut type_proto = Vec::new();
    bytes_field(&mut type_proto, 1, &tensor_type);
    let mut v = Vec::new();
    bytes_field(&mut v, 1, name.as_bytes());
    bytes_field(&mut v, 2, &type_proto);
    v
}

/// `NodeProto` with integer attributes.
fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str], int_attrs: &[(&str, u64)]) -> Vec<u8> {
    let mut n = Vec::new();
    for i in inputs {
        bytes_field(&mut n, 1, i.as_bytes());
    }
    for o in outputs {
        bytes_field(&mut n, 2, o.as_bytes());
    }
    bytes_field(&mut n, 3, name.as_bytes());
    bytes_field(&mut n, 4, op.as_bytes());
    for (attr, v) in int_attrs {
        let mut a = Vec::new();
        bytes_field(&mut a, 1, attr.as_bytes());
        int_field(&mut a, 3, *v);
        int_field(&mut a, 20, 2); // AttributeType INT
        bytes_field(&mut n, 5, &a);
    }
    n
}

/// Canonical gate blocks (i, f, g, o) in ONNX order (i, o, f, c).
const ONNX_FROM_CANONICAL: [usize; 4] = [0, 3, 1, 2];

fn onnx_gates(w: &[f32], h: usize, width: usize) -> Vec<f32> {
    ONNX_FROM_CANONICAL
        .iter()
        .flat_map(|&b| w[b * h * width..(b + 1) * h * width].iter().copied())
        .collect()
}

/// The ONNX model bytes of `model`; with `layers_only`, no embedding and
/// no head (features in, last hidden states out).
pub fn export(model: &Model, layers_only: bool) -> Vec<u8> {
    let mut graph = Vec::new();
    let (seq, batch) = (Err("seq"), Err("batch"));
    let embedding = if layers_only { None } else { model.embedding() };
    let mut current = match embedding {
        Some(e) => {
            bytes_field(&mut graph, 5, &f32_tensor("embedding", &[e.vocab(), e.dim()], e.table()));
            bytes_field(&mut graph, 11, &value_info("tokens", INT64, &[seq, batch]));
            bytes_field(
                &mut graph,
                1,
                &node("Gather", "embed", &["embedding", "tokens"], &["x"], &[("axis", 0)]),
            );
            "x".to_string()
        }
        None => {
            bytes_field(&mut graph, 11, &value_info("x", FLOAT, &[seq, batch, Ok(model.input_size())]));
            "x".to_string()
        }
    };
    bytes_field(&mut graph, 5, &tensor("axes1", &[1], INT64, &1i64.to_le_bytes()));
    for (k, l) in model.layers().iter().enumerate() {
        let (h, input) = (l.hidden(), l.input());
        let (w, r, b) = (format!("W{k}"), format!("R{k}"), format!("B{k}"));
        bytes_field(&mut graph, 5, &f32_tensor(&w, &[1, 4 * h, input], &onnx_gates(l.w_ih(), h, input)));
        bytes_field(&mut graph, 5, &f32_tensor(&r, &[1, 4 * h, h], &onnx_gates(l.w_hh(), h, h)));
        let mut bias = onnx_gates(l.bias(), h, 1);
        bias.extend(std::iter::repeat_n(0.0, 4 * h));
        bytes_field(&mut graph, 5, &f32_tensor(&b, &[1, 8 * h], &bias));
        let (y, out) = (format!("y{k}"), format!("h{k}"));
        bytes_field(
            &mut graph,
            1,
            &node(
                "LSTM",
                &format!("lstm{k}"),
                &[&current, &w, &r, &b],
                &[&y],
                &[("hidden_size", h as u64)],
            ),
        );
        bytes_field(
            &mut graph,
            1,
            &node("Squeeze", &format!("squeeze{k}"), &[&y, "axes1"], &[&out], &[]),
        );
        current = out;
    }
    let head = if layers_only { None } else { model.head() };
    let output_width = match head {
        Some(hd) => {
            let (out, input) = (hd.output(), hd.input());
            let mut wt = vec![0.0f32; out * input];
            for o in 0..out {
                for i in 0..input {
                    wt[i * out + o] = hd.weight()[o * input + i];
                }
            }
            bytes_field(&mut graph, 5, &f32_tensor("head_wt", &[input, out], &wt));
            bytes_field(&mut graph, 5, &f32_tensor("head_b", &[out], hd.bias()));
            bytes_field(
                &mut graph,
                1,
                &node("MatMul", "head_matmul", &[&current, "head_wt"], &["logits_nb"], &[]),
            );
            bytes_field(&mut graph, 1, &node("Add", "head_bias", &["logits_nb", "head_b"], &["y"], &[]));
            out
        }
        None => {
            bytes_field(&mut graph, 1, &node("Identity", "output", &[&current], &["y"], &[]));
            model.layers().last().map_or(0, |l| l.hidden())
        }
    };
    bytes_field(&mut graph, 12, &value_info("y", FLOAT, &[seq, batch, Ok(output_width)]));
    bytes_field(&mut graph, 2, model.name().as_bytes());
    let mut m = Vec::new();
    int_field(&mut m, 1, IR_VERSION);
    bytes_field(&mut m, 2, b"issbench");
    bytes_field(&mut m, 3, env!("CARGO_PKG_VERSION").as_bytes());
    bytes_field(&mut m, 7, &graph);
    let mut opset = Vec::new();
    bytes_field(&mut opset, 1, b"");
    int_field(&mut opset, 2, OPSET);
    bytes_field(&mut m, 8, &opset);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_gate_order() {
        let mut b = Vec::new();
        varint(&mut b, 300);
        assert_eq!(b, vec![0xac, 0x02]);
        // Blocks of h = 1: canonical i f g o -> onnx i o f c.
        assert_eq!(onnx_gates(&[1.0, 2.0, 3.0, 4.0], 1, 1), vec![1.0, 4.0, 2.0, 3.0]);
    }
}
