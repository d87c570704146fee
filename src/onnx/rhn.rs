//! An RHN layer as plain ONNX nodes, unrolled over a fixed sequence: no
//! ONNX op computes a Recurrent Highway Network, so the peer runs the
//! same arithmetic as issbench's executor, step by step and micro-layer
//! by micro-layer, as a graph of MatMul/Add/Split/Tanh/Sigmoid/Sub/Mul.

use super::{Attr, INT64, bytes_field, f32_tensor, node, node_with, tensor};
use crate::model::{Direction, Layer, Recurrent, transpose};

/// The constants the unrolled layers share: each step's index (`stepT`,
/// a scalar for Gather) and `axes0` (for Unsqueeze).
pub(super) fn add_constants(graph: &mut Vec<u8>, seq: usize) {
    for t in 0..seq {
        bytes_field(graph, 5, &tensor(&format!("step{t}"), &[], INT64, &(t as i64).to_le_bytes()));
    }
    bytes_field(graph, 5, &tensor("axes0", &[1], INT64, &0i64.to_le_bytes()));
}

/// Adds layer `k` (an RHN of `depth` micro-layers, one or two directions)
/// reading `current` (`[seq, batch, in]`); returns its output's name
/// (`[seq, batch, out]`, directions concatenated fw first).
pub(super) fn add_unrolled(graph: &mut Vec<u8>, k: usize, layer: &Layer, depth: usize, current: &str, seq: usize) -> String {
    let mut outputs = Vec::new();
    for (d, dir) in layer.directions() {
        let tag = format!("{k}_{}", d.name());
        outputs.push(add_direction(graph, &tag, dir, d, depth, current, seq));
    }
    let out = format!("h{k}");
    let inputs: Vec<&str> = outputs.iter().map(String::as_str).collect();
    bytes_field(graph, 1, &node("Concat", &format!("concat{k}"), &inputs, &[&out], &[("axis", 2)]));
    out
}

/// One direction: its weights, then `seq` steps of `depth` micro-layers.
fn add_direction(graph: &mut Vec<u8>, tag: &str, dir: &Recurrent, d: Direction, depth: usize, x: &str, seq: usize) -> String {
    let (w, input) = (dir.hidden(), dir.input());
    // x @ W_ih^T + b_0 for every step at once: [seq, batch, 2w].
    let (wih, b0, xp) = (format!("rhn_wih{tag}"), format!("rhn_b{tag}_0"), format!("rhn_xp{tag}"));
    bytes_field(graph, 5, &f32_tensor(&wih, &[input, 2 * w], &transpose(dir.w_ih(), 2 * w, input)));
    let bias = dir.bias();
    for i in 0..depth {
        let r = &dir.w_hh()[i * 2 * w * w..(i + 1) * 2 * w * w];
        bytes_field(
            graph,
            5,
            &f32_tensor(&format!("rhn_r{tag}_{i}"), &[w, 2 * w], &transpose(r, 2 * w, w)),
        );
        bytes_field(
            graph,
            5,
            &f32_tensor(&format!("rhn_b{tag}_{i}"), &[2 * w], &bias[i * 2 * w..(i + 1) * 2 * w]),
        );
    }
    let xw = format!("rhn_xw{tag}");
    bytes_field(graph, 1, &node("MatMul", &xw, &[x, &wih], &[&xw], &[]));
    bytes_field(graph, 1, &node("Add", &xp, &[&xw, &b0], &[&xp], &[]));
    let order: Vec<usize> = match d {
        Direction::Forward => (0..seq).collect(),
        Direction::Backward => (0..seq).rev().collect(),
    };
    let mut state: Option<String> = None;
    let mut per_step = vec![String::new(); seq];
    for t in order {
        let xt = format!("rhn_x{tag}_t{t}");
        bytes_field(graph, 1, &node("Gather", &xt, &[&xp, &format!("step{t}")], &[&xt], &[("axis", 0)]));
        for i in 0..depth {
            let n = |what: &str| format!("rhn_{what}{tag}_t{t}_{i}");
            // Pre-activations [batch, 2w]: micro-layer 0 adds x's part
            // (with b_0); the first step's state is zero, so it has no
            // recurrent part there.
            let pre = match (&state, i) {
                (None, _) => xt.clone(),
                (Some(s), 0) => {
                    bytes_field(
                        graph,
                        1,
                        &node("MatMul", &n("rs"), &[s, &format!("rhn_r{tag}_0")], &[&n("rs")], &[]),
                    );
                    bytes_field(graph, 1, &node("Add", &n("pre"), &[&n("rs"), &xt], &[&n("pre")], &[]));
                    n("pre")
                }
                (Some(s), _) => {
                    bytes_field(
                        graph,
                        1,
                        &node("MatMul", &n("rs"), &[s, &format!("rhn_r{tag}_{i}")], &[&n("rs")], &[]),
                    );
                    bytes_field(
                        graph,
                        1,
                        &node("Add", &n("pre"), &[&n("rs"), &format!("rhn_b{tag}_{i}")], &[&n("pre")], &[]),
                    );
                    n("pre")
                }
            };
            bytes_field(
                graph,
                1,
                &node_with("Split", &n("split"), &[&pre], &[&n("hp"), &n("tp")], &[("axis", Attr::Int(1))]),
            );
            bytes_field(graph, 1, &node("Tanh", &n("h"), &[&n("hp")], &[&n("h")], &[]));
            bytes_field(graph, 1, &node("Sigmoid", &n("t"), &[&n("tp")], &[&n("t")], &[]));
            // s = (h - s) * t + s; from a zero state, h * t.
            let next = n("s");
            match &state {
                None => bytes_field(graph, 1, &node("Mul", &next, &[&n("h"), &n("t")], &[&next], &[])),
                Some(s) => {
                    bytes_field(graph, 1, &node("Sub", &n("d"), &[&n("h"), s], &[&n("d")], &[]));
                    bytes_field(graph, 1, &node("Mul", &n("dt"), &[&n("d"), &n("t")], &[&n("dt")], &[]));
                    bytes_field(graph, 1, &node("Add", &next, &[&n("dt"), s], &[&next], &[]));
                }
            }
            state = Some(next);
        }
        let s = state.clone().expect("depth is at least 1");
        let out = format!("rhn_out{tag}_t{t}");
        bytes_field(graph, 1, &node("Unsqueeze", &out, &[&s, "axes0"], &[&out], &[]));
        per_step[t] = out;
    }
    let y = format!("rhn_y{tag}");
    let inputs: Vec<&str> = per_step.iter().map(String::as_str).collect();
    bytes_field(graph, 1, &node("Concat", &y, &inputs, &[&y], &[("axis", 0)]));
    y
}
