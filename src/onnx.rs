//! Writing a model as an ONNX graph, so ONNX Runtime (the peer) can run
//! exactly the model issbench times. A small protobuf encoder for the few
//! ONNX messages needed (no Python, no protobuf compiler).
//!
//! Graph (opset 17): token ids `tokens` int64 `[seq, batch]` through
//! `Gather` on the embedding when there is one and the head is included,
//! else features `x` float `[seq, batch, in]`; per layer an `LSTM` op
//! (`W [dirs, 4h, in]`, `R [dirs, 4h, h]`, `B [dirs, 8h]`, gates i, o, f, c;
//! the folded bias in the `W` half of `B`) or a `GRU` op (gates z, r, h;
//! `B` holds `b_ih` then `b_hh`; `linear_before_reset` 1 for the reset
//! after the product, 0 before it); a bidirectional layer is one op with
//! `direction = "bidirectional"` whose `[seq, 2, batch, h]` output is
//! transposed and reshaped to `[seq, batch, 2h]`, or, where the two
//! directions' widths differ, a forward and a `reverse` op concatenated;
//! then `MatMul` + `Add` for the head. Output `y`: `[seq, batch, out]`.
//! RHNs have no ONNX op and are not exported.

use crate::model::{Cell, Direction, Layer, Model, Recurrent};

mod rhn;

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

/// A node attribute's value.
enum Attr<'a> {
    Int(i64),
    Ints(&'a [i64]),
    Str(&'a str),
}

/// `NodeProto` with integer attributes.
fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str], int_attrs: &[(&str, u64)]) -> Vec<u8> {
    let attrs: Vec<(&str, Attr)> = int_attrs.iter().map(|&(a, v)| (a, Attr::Int(v as i64))).collect();
    node_with(op, name, inputs, outputs, &attrs)
}

/// `NodeProto` with attributes of any kind.
fn node_with(op: &str, name: &str, inputs: &[&str], outputs: &[&str], attrs: &[(&str, Attr)]) -> Vec<u8> {
    let mut n = Vec::new();
    for i in inputs {
        bytes_field(&mut n, 1, i.as_bytes());
    }
    for o in outputs {
        bytes_field(&mut n, 2, o.as_bytes());
    }
    bytes_field(&mut n, 3, name.as_bytes());
    bytes_field(&mut n, 4, op.as_bytes());
    for (attr, v) in attrs {
        let mut a = Vec::new();
        bytes_field(&mut a, 1, attr.as_bytes());
        match v {
            Attr::Int(i) => {
                int_field(&mut a, 3, *i as u64);
                int_field(&mut a, 20, 2); // AttributeType INT
            }
            Attr::Ints(list) => {
                for i in *list {
                    int_field(&mut a, 8, *i as u64);
                }
                int_field(&mut a, 20, 7); // AttributeType INTS
            }
            Attr::Str(text) => {
                bytes_field(&mut a, 4, text.as_bytes());
                int_field(&mut a, 20, 3); // AttributeType STRING
            }
        }
        bytes_field(&mut n, 5, &a);
    }
    n
}

/// Canonical LSTM gate blocks (i, f, g, o) in ONNX order (i, o, f, c).
const LSTM_FROM_CANONICAL: [usize; 4] = [0, 3, 1, 2];

/// Canonical GRU gate blocks (r, z, n) in ONNX order (z, r, h).
const GRU_FROM_CANONICAL: [usize; 3] = [1, 0, 2];

/// The gate blocks of `w` (`h` rows of `width` each) in `order`.
fn reorder(w: &[f32], h: usize, width: usize, order: &[usize]) -> Vec<f32> {
    order
        .iter()
        .flat_map(|&b| w[b * h * width..(b + 1) * h * width].iter().copied())
        .collect()
}

/// A direction's `W`, `R` and `B` in the ONNX op's layout.
fn onnx_weights(r: &Recurrent) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (h, input) = (r.hidden(), r.input());
    let order: &[usize] = match r.cell() {
        Cell::Lstm => &LSTM_FROM_CANONICAL,
        _ => &GRU_FROM_CANONICAL,
    };
    let w = reorder(r.w_ih(), h, input, order);
    let rec = reorder(r.w_hh(), h, h, order);
    let mut b = reorder(r.bias(), h, 1, order);
    match r.cell() {
        Cell::Gru { .. } => b.extend(reorder(r.bias_hh(), h, 1, order)),
        _ => b.extend(std::iter::repeat_n(0.0, order.len() * h)),
    }
    (w, rec, b)
}

/// Why a model cannot be written as ONNX.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct OnnxError(pub String);

/// Adds layer `k` (its weights and its op or ops) to `graph`, reading
/// `current` (`[seq, batch, in]`); returns the name of its output
/// (`[seq, batch, out]`).
fn add_layer(graph: &mut Vec<u8>, k: usize, layer: &Layer, current: &str, seq: Option<usize>) -> Result<String, OnnxError> {
    let op = match layer.cell() {
        Cell::Lstm => "LSTM",
        Cell::Gru { .. } => "GRU",
        Cell::Rhn { depth } => {
            let seq = seq.ok_or_else(|| {
                OnnxError("an RHN has no ONNX op: it is written unrolled over a fixed sequence length, so give one".into())
            })?;
            return Ok(rhn::add_unrolled(graph, k, layer, depth, current, seq));
        }
    };
    let mut attrs: Vec<(&str, Attr)> = Vec::new();
    if let Cell::Gru { reset_after } = layer.cell() {
        attrs.push(("linear_before_reset", Attr::Int(i64::from(reset_after))));
    }
    // One op over `dirs` (with `direction`), or one per direction.
    let op_node = |graph: &mut Vec<u8>, tag: &str, dirs: &[&Recurrent], direction: &str| -> String {
        let h = dirs[0].hidden();
        let (mut w, mut r, mut b) = (Vec::new(), Vec::new(), Vec::new());
        for d in dirs {
            let (dw, dr, db) = onnx_weights(d);
            w.extend(dw);
            r.extend(dr);
            b.extend(db);
        }
        let g = dirs[0].cell().input_gates() * h;
        let (wn, rn, bn) = (format!("W{k}{tag}"), format!("R{k}{tag}"), format!("B{k}{tag}"));
        bytes_field(graph, 5, &f32_tensor(&wn, &[dirs.len(), g, dirs[0].input()], &w));
        bytes_field(graph, 5, &f32_tensor(&rn, &[dirs.len(), g, h], &r));
        bytes_field(graph, 5, &f32_tensor(&bn, &[dirs.len(), 2 * g], &b));
        let y = format!("y{k}{tag}");
        let mut all = vec![("hidden_size", Attr::Int(h as i64)), ("direction", Attr::Str(direction))];
        all.extend(attrs.iter().map(|(n, a)| {
            (
                *n,
                match a {
                    Attr::Int(i) => Attr::Int(*i),
                    _ => unreachable!("integer attributes only"),
                },
            )
        }));
        bytes_field(
            graph,
            1,
            &node_with(op, &format!("rnn{k}{tag}"), &[current, &wn, &rn, &bn], &[&y], &all),
        );
        y
    };
    let out = format!("h{k}");
    match layer.bw() {
        None => {
            let y = op_node(graph, "", &[layer.fw()], "forward");
            bytes_field(graph, 1, &node("Squeeze", &format!("squeeze{k}"), &[&y, "axes1"], &[&out], &[]));
        }
        Some(bw) if bw.hidden() == layer.fw().hidden() => {
            let y = op_node(graph, "", &[layer.fw(), bw], "bidirectional");
            // [seq, 2, batch, h] -> [seq, batch, 2, h] -> [seq, batch, 2h]
            let t = format!("t{k}");
            bytes_field(
                graph,
                1,
                &node_with(
                    "Transpose",
                    &format!("transpose{k}"),
                    &[&y],
                    &[&t],
                    &[("perm", Attr::Ints(&[0, 2, 1, 3]))],
                ),
            );
            bytes_field(graph, 1, &node("Reshape", &format!("reshape{k}"), &[&t, "keep2"], &[&out], &[]));
        }
        Some(bw) => {
            let mut parts = Vec::new();
            for (d, dir, direction) in [(Direction::Forward, layer.fw(), "forward"), (Direction::Backward, bw, "reverse")] {
                let tag = format!("_{}", d.name());
                let y = op_node(graph, &tag, &[dir], direction);
                let part = format!("h{k}{tag}");
                bytes_field(
                    graph,
                    1,
                    &node("Squeeze", &format!("squeeze{k}{tag}"), &[&y, "axes1"], &[&part], &[]),
                );
                parts.push(part);
            }
            let inputs: Vec<&str> = parts.iter().map(String::as_str).collect();
            bytes_field(graph, 1, &node("Concat", &format!("concat{k}"), &inputs, &[&out], &[("axis", 2)]));
        }
    }
    Ok(out)
}

/// The ONNX model bytes of `model`; with `layers_only`, no embedding and
/// no head (features in, last hidden states out).
pub fn export(model: &Model, layers_only: bool) -> Result<Vec<u8>, OnnxError> {
    export_for(model, layers_only, None)
}

/// [`export`] for inputs of `seq` steps: the sequence dimension is then
/// fixed, and RHN layers (which no ONNX op computes) are written unrolled
/// over it as MatMul/Add/Split/Tanh/Sigmoid/Sub/Mul nodes.
pub fn export_for(model: &Model, layers_only: bool, steps: Option<usize>) -> Result<Vec<u8>, OnnxError> {
    let mut graph = Vec::new();
    let (seq, batch) = (steps.ok_or("seq"), Err("batch"));
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
    // Reshape's target: keep the first two dimensions, join the rest.
    let keep2: Vec<u8> = [0i64, 0, -1].iter().flat_map(|v| v.to_le_bytes()).collect();
    bytes_field(&mut graph, 5, &tensor("keep2", &[3], INT64, &keep2));
    let has_rhn = model.layers().iter().any(|l| matches!(l.cell(), Cell::Rhn { .. }));
    if let (Some(n), true) = (steps, has_rhn) {
        rhn::add_constants(&mut graph, n);
    }
    for (k, layer) in model.layers().iter().enumerate() {
        current = add_layer(&mut graph, k, layer, &current, steps)?;
    }
    let head = if layers_only { None } else { model.head() };
    let output_width = match head {
        Some(hd) => {
            let (out, input) = (hd.output(), hd.input());
            let wt = crate::model::transpose(hd.weight(), out, input);
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
            model.layers().last().map_or(0, Layer::output)
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
    Ok(m)
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
        assert_eq!(reorder(&[1.0, 2.0, 3.0, 4.0], 1, 1, &LSTM_FROM_CANONICAL), vec![1.0, 4.0, 2.0, 3.0]);
        // GRU: canonical r z n -> onnx z r h.
        assert_eq!(reorder(&[1.0, 2.0, 3.0], 1, 1, &GRU_FROM_CANONICAL), vec![2.0, 1.0, 3.0]);
    }
}
