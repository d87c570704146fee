//! The path through an ONNX graph from its input to an output: an optional
//! embedding `Gather`, the recurrent layers in order, an optional
//! `MatMul`/`Gemm` head and bias `Add`, and between them only the glue
//! exporters write (`Squeeze`, `Transpose`, `Reshape`, `Identity`,
//! `Dropout`, `Cast`). Anything else on the path is refused by name: the
//! walk never guesses what an unknown operator does.
//!
//! The walk tracks the tensor's form so that glue is checked, not just
//! skipped: a recurrent node's `Y` is `[seq, dirs, batch, h]`; one
//! direction becomes `[seq, batch, h]` by `Squeeze(axes=[1])`, any number
//! by `Transpose(perm=[0, 2, 1, 3])` then a 3-D `Reshape` (`[fw; bw]`
//! units); `Transpose(perm=[1, 0, 2])` swaps time- and batch-major.

use super::cell::{self, Recurrent};
use super::graph::{Attrs, Graph, describe, is_op};
use crate::checkpoint::ErrorKind;

/// What the path reads from the graph input.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    /// The graph input's name.
    pub name: String,
    /// Token ids through an embedding (else float features).
    pub tokens: bool,
    /// `[batch, seq]` rather than `[seq, batch]` (tf2onnx from Keras).
    pub batch_major: bool,
}

/// The output projection.
#[derive(Debug, Clone)]
pub struct Head<'a> {
    /// The weight constant.
    pub weight: &'a str,
    /// Whether `weight` is `[out, width]` (`Gemm transB=1`, or the
    /// input of a `Transpose`) rather than `[width, out]` (`x @ W`).
    pub out_first: bool,
    /// The bias constant, if any.
    pub bias: Option<&'a str>,
}

/// The path from input to output.
#[derive(Debug, Clone)]
pub struct Stack<'a> {
    pub input: Input,
    /// The embedding table's constant, if the input is token ids.
    pub embedding: Option<&'a str>,
    pub layers: Vec<Recurrent<'a>>,
    pub head: Option<Head<'a>>,
    /// The graph output the path ends in.
    pub output: String,
    /// Whether that output is batch-major.
    pub output_batch_major: bool,
}

/// The tensor's form at a point of the path.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Form {
    /// `[seq, batch, width]`, or `[batch, seq, width]` when `flipped`.
    Seq { flipped: bool },
    /// A recurrent node's `Y`: `[seq, dirs, batch, h]`.
    Y { dirs: usize },
    /// `Y` after `Transpose(perm=[0, 2, 1, 3])`: `[seq, batch, dirs, h]`.
    YBatchFirst,
    /// `[rows, width]`, flattened from `Seq` (before a `Gemm` or `MatMul`).
    Rows { flipped: bool },
}

/// Operators that only compute token indices (tf2onnx's fix-up of negative
/// ids) between the graph input and the embedding `Gather`.
const INDEX_OPS: [&str; 14] = [
    "Cast",
    "Add",
    "Sub",
    "Mul",
    "Less",
    "Greater",
    "Equal",
    "Not",
    "And",
    "Or",
    "Where",
    "Identity",
    "Unsqueeze",
    "Squeeze",
];

/// Finds the path, or says where the graph leaves a plain recurrent stack.
pub fn walk<'a>(graph: &Graph<'a>) -> Result<Stack<'a>, ErrorKind> {
    let recurrent: Vec<usize> = (0..graph.proto.node.len())
        .filter(|&i| ["LSTM", "GRU", "RNN"].iter().any(|op| is_op(graph.node(i), op)))
        .collect();
    if recurrent.is_empty() {
        return Err(no_recurrent_node(graph));
    }
    let layers = recurrent.iter().map(|&i| cell::read(graph, i)).collect::<Result<Vec<_>, _>>()?;
    let (start, input, embedding) = source(graph, &layers[0])?;
    let mut stack = Stack {
        input,
        embedding,
        layers: Vec::new(),
        head: None,
        output: String::new(),
        output_batch_major: false,
    };
    let mut form = Form::Seq { flipped: false };
    let mut value: &'a str = start;
    let mut head_bias_done = false;
    // Each step moves to another node; more steps than nodes is a cycle.
    for step in 0.. {
        if step > graph.proto.node.len() {
            return Err(ErrorKind::Corrupt(format!("the graph has a cycle through '{value}'")));
        }
        let users: Vec<usize> = graph
            .consumers(value)
            .iter()
            .copied()
            .filter(|&i| !is_op(graph.node(i), "Shape"))
            .collect();
        let &[next] = &users[..] else {
            if users.is_empty() && graph.is_output(value) {
                break;
            }
            return Err(if users.is_empty() {
                ErrorKind::Unsupported(format!("'{value}' on the path from the input is neither read nor a graph output"))
            } else {
                ErrorKind::Unsupported(format!(
                    "'{value}' feeds several nodes ({}); issbench reads a single chain of layers",
                    users.iter().map(|&i| graph.describe(i)).collect::<Vec<_>>().join(", ")
                ))
            });
        };
        let node = graph.node(next);
        let me = describe(node);
        let attrs = Attrs(&node.attribute);
        let refuse = |why: &str| ErrorKind::Unsupported(format!("{me} on the path: {why}"));
        let done_layers = stack.layers.len() == layers.len();
        form = match (node.op_type.as_str(), form) {
            _ if !node.domain.is_empty() && node.domain != "ai.onnx" => {
                return Err(refuse(&format!("operator of domain '{}'", node.domain)));
            }
            ("Transpose", Form::Seq { flipped }) if attrs.ints("perm") == Some(&[1, 0, 2]) => Form::Seq { flipped: !flipped },
            ("Transpose", Form::Y { .. }) if attrs.ints("perm") == Some(&[0, 2, 1, 3]) => Form::YBatchFirst,
            ("Transpose", _) => return Err(refuse(&format!("perm {:?} in form {form:?}", attrs.ints("perm").unwrap_or(&[])))),
            ("Squeeze", Form::Y { dirs: 1 }) if squeeze_axes(graph, node)? == [1] => Form::Seq { flipped: false },
            ("Squeeze", _) => return Err(refuse(&format!("it squeezes axes {:?} of {form:?}", squeeze_axes(graph, node)?))),
            ("Reshape", _) => reshape(graph, node, form, done_layers).map_err(|e| refuse(&e))?,
            ("Identity" | "Dropout", _) if node.input.first().map(String::as_str) == Some(value) => form,
            ("Cast", _) if attrs.int("to") == Some(1) => form,
            ("LSTM" | "GRU" | "RNN", _) => {
                let k = stack.layers.len();
                let Some(layer) = layers.get(k).filter(|l| l.node == next) else {
                    return Err(refuse("a recurrent node out of graph order"));
                };
                if node.input.first().map(String::as_str) != Some(value) {
                    return Err(refuse("the previous layer's output is not its input X"));
                }
                match form {
                    Form::Seq { flipped: false } => {}
                    Form::Seq { flipped: true } if k == 0 => stack.input.batch_major = !stack.input.batch_major,
                    _ => return Err(refuse(&format!("its input X is {form:?}, not [seq, batch, width]"))),
                }
                stack.layers.push(layer.clone());
                Form::Y { dirs: layer.directions }
            }
            ("MatMul", Form::Seq { .. } | Form::Rows { .. }) if done_layers && stack.head.is_none() => {
                stack.head = Some(matmul_head(graph, node, value).map_err(|e| refuse(&e))?);
                form
            }
            ("Gemm", Form::Rows { .. }) if done_layers && stack.head.is_none() => {
                let head = gemm_head(graph, node, value).map_err(|e| refuse(&e))?;
                head_bias_done = head.bias.is_some();
                stack.head = Some(head);
                form
            }
            ("Add", Form::Seq { .. } | Form::Rows { .. }) if stack.head.is_some() && !head_bias_done => {
                let other = node.input.iter().find(|i| i.as_str() != value).map(String::as_str);
                let bias = other
                    .filter(|b| graph.constant(b).is_some())
                    .ok_or_else(|| refuse("the bias is not a constant"))?;
                stack.head.as_mut().expect("checked").bias = Some(bias);
                head_bias_done = true;
                form
            }
            _ => {
                return Err(refuse(&format!(
                    "not part of a plain recurrent stack (issbench reads {}recurrent layers{})",
                    if stack.embedding.is_some() { "an embedding, " } else { "" },
                    if done_layers { " and a linear head" } else { "" }
                )));
            }
        };
        value = node
            .output
            .first()
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| refuse("no output"))?;
    }
    if stack.layers.len() < layers.len() {
        let missing = &layers[stack.layers.len()];
        return Err(ErrorKind::Unsupported(format!(
            "{} is not on the path from the input to the output '{value}'",
            graph.describe(missing.node)
        )));
    }
    if !matches!(form, Form::Seq { .. } | Form::Rows { .. }) {
        return Err(ErrorKind::Unsupported(format!(
            "the output '{value}' is the last layer's raw Y [seq, dirs, batch, h]; issbench reads stacks whose output is [seq, batch, width]"
        )));
    }
    stack.output = value.to_string();
    stack.output_batch_major = matches!(form, Form::Seq { flipped: true } | Form::Rows { flipped: true });
    Ok(stack)
}

/// The error for a graph without recurrent nodes, naming what it has.
fn no_recurrent_node(graph: &Graph) -> ErrorKind {
    let mut ops: Vec<&str> = graph.proto.node.iter().map(|n| n.op_type.as_str()).collect();
    ops.sort_unstable();
    ops.dedup();
    let looped = ops.iter().any(|op| ["Loop", "Scan"].contains(op));
    ErrorKind::Unsupported(format!(
        "no LSTM or GRU node in the graph{} (its operators: {})",
        if looped {
            "; the recurrence is a Loop/Scan, which issbench cannot read as layers"
        } else {
            ""
        },
        ops.join(", ")
    ))
}

/// Where layer 0's input comes from: the value the walk starts at (a
/// graph input, or an embedding `Gather`'s output), what the input is, and
/// the embedding constant.
fn source<'a>(graph: &Graph<'a>, first: &Recurrent<'a>) -> Result<(&'a str, Input, Option<&'a str>), ErrorKind> {
    let me = graph.describe(first.node);
    let mut value: &'a str = graph.node(first.node).input.first().map(String::as_str).unwrap_or("");
    for _ in 0..graph.proto.node.len() + 1 {
        if graph.is_input(value) {
            let input = Input {
                name: value.to_string(),
                tokens: false,
                batch_major: false,
            };
            return Ok((value, input, None));
        }
        let Some(i) = graph.producer(value) else {
            return Err(ErrorKind::Unsupported(format!(
                "{me}: its input '{value}' is neither a graph input nor computed"
            )));
        };
        let node = graph.node(i);
        let glue = ["Transpose", "Identity", "Dropout", "Cast"].iter().any(|op| is_op(node, op));
        if is_op(node, "Gather") {
            let table = node.input.first().map(String::as_str).unwrap_or("");
            let is_table = graph
                .constant(table)
                .is_some_and(|t| t.dims.len() == 2 && matches!(t.data_type, 1 | 10 | 11 | 16));
            if !is_table || Attrs(&node.attribute).int("axis").unwrap_or(0) != 0 {
                return Err(ErrorKind::Unsupported(format!(
                    "{me}: its input comes from {}, which is not an embedding lookup (a Gather on axis 0 of a 2-D float initializer)",
                    describe(node)
                )));
            }
            let ids = node.input.get(1).map(String::as_str).unwrap_or("");
            let input = Input {
                name: token_input(graph, ids)?.to_string(),
                tokens: true,
                batch_major: false,
            };
            return Ok((node.output.first().map(String::as_str).unwrap_or(""), input, Some(table)));
        }
        if !glue {
            return Err(ErrorKind::Unsupported(format!(
                "{me}: its input comes from {}, not from the graph input or an embedding (Gather)",
                describe(node)
            )));
        }
        value = node.input.first().map(String::as_str).unwrap_or("");
    }
    Err(ErrorKind::Corrupt("the graph has a cycle".into()))
}

/// The one graph input the token ids of an embedding come from, through
/// index arithmetic only.
fn token_input<'a>(graph: &Graph<'a>, ids: &'a str) -> Result<&'a str, ErrorKind> {
    let mut found: Vec<&'a str> = Vec::new();
    let mut todo = vec![ids];
    let mut seen = std::collections::HashSet::new();
    while let Some(v) = todo.pop() {
        if !seen.insert(v) || graph.constant(v).is_some() {
            continue;
        }
        if graph.is_input(v) {
            found.push(v);
            continue;
        }
        let Some(node) = graph.producer(v).map(|i| graph.node(i)) else {
            return Err(ErrorKind::Unsupported(format!(
                "the embedding's indices depend on '{v}', which nothing computes"
            )));
        };
        if !INDEX_OPS.iter().any(|op| is_op(node, op)) {
            return Err(ErrorKind::Unsupported(format!(
                "the embedding's indices are computed by {}, not from the graph input by index arithmetic",
                describe(node)
            )));
        }
        todo.extend(node.input.iter().map(String::as_str).filter(|s| !s.is_empty()));
    }
    match found[..] {
        [one] => Ok(one),
        _ => Err(ErrorKind::Unsupported(format!(
            "the embedding's indices come from {} graph inputs ({}), not one",
            found.len(),
            found.join(", ")
        ))),
    }
}

/// The axes a `Squeeze` removes (attribute before opset 13, input since).
fn squeeze_axes(graph: &Graph, node: &super::proto::NodeProto) -> Result<Vec<i64>, ErrorKind> {
    if let Some(axes) = Attrs(&node.attribute).ints("axes") {
        return Ok(axes.to_vec());
    }
    match node.input.get(1).filter(|s| !s.is_empty()) {
        Some(axes) => graph.ints(axes),
        None => Ok(Vec::new()),
    }
}

/// The form after a `Reshape` of `form`, or why it is not glue.
fn reshape(graph: &Graph, node: &super::proto::NodeProto, form: Form, done_layers: bool) -> Result<Form, String> {
    let shape_value = node.input.get(1).map(String::as_str).unwrap_or("");
    let shape = graph.ints(shape_value).map_err(|e| e.to_string())?;
    match (form, shape.len()) {
        // [seq, batch, dirs, h] -> [seq, batch, dirs·h]
        (Form::YBatchFirst, 3) => Ok(Form::Seq { flipped: false }),
        // [seq, batch, width] -> [rows, width] before the head.
        (Form::Seq { flipped }, 2) if done_layers => Ok(Form::Rows { flipped }),
        // Back from rows after the head.
        (Form::Rows { flipped }, 3) => Ok(Form::Seq { flipped }),
        _ => Err(format!("a reshape to {shape:?} of {form:?} is not glue issbench knows")),
    }
}

/// A `MatMul(x, W)` head: W a 2-D constant `[width, out]`, or a
/// `Transpose(perm=[1, 0])` of one `[out, width]`.
fn matmul_head<'a>(graph: &Graph<'a>, node: &'a super::proto::NodeProto, value: &str) -> Result<Head<'a>, String> {
    if node.input.first().map(String::as_str) != Some(value) {
        return Err("the layers' output is not its first operand".into());
    }
    let b = node.input.get(1).map(String::as_str).unwrap_or("");
    if graph.constant(b).is_some_and(|t| t.dims.len() == 2) {
        return Ok(Head {
            weight: b,
            out_first: false,
            bias: None,
        });
    }
    if let Some(t) = graph.producer(b).map(|i| graph.node(i)).filter(|n| is_op(n, "Transpose"))
        && Attrs(&t.attribute).ints("perm").is_none_or(|p| p == [1, 0])
        && let Some(w) = t.input.first().filter(|w| graph.constant(w).is_some_and(|c| c.dims.len() == 2))
    {
        return Ok(Head {
            weight: w,
            out_first: true,
            bias: None,
        });
    }
    Err(format!("its weight '{b}' is not a 2-D initializer"))
}

/// A `Gemm(x, W, C)` head with alpha = beta = 1 and x not transposed.
fn gemm_head<'a>(graph: &Graph<'a>, node: &'a super::proto::NodeProto, value: &str) -> Result<Head<'a>, String> {
    let attrs = Attrs(&node.attribute);
    if node.input.first().map(String::as_str) != Some(value) || attrs.int("transA").unwrap_or(0) != 0 {
        return Err("the layers' output is not its (untransposed) first operand".into());
    }
    for (name, v) in [("alpha", attrs.float("alpha")), ("beta", attrs.float("beta"))] {
        if v.is_some_and(|v| v != 1.0) {
            return Err(format!("{name} = {}", v.unwrap_or(1.0)));
        }
    }
    let w = node.input.get(1).map(String::as_str).unwrap_or("");
    if graph.constant(w).is_none_or(|t| t.dims.len() != 2) {
        return Err(format!("its weight '{w}' is not a 2-D initializer"));
    }
    let bias = match node.input.get(2).map(String::as_str).filter(|s| !s.is_empty()) {
        Some(c) if graph.constant(c).is_some() => Some(c),
        Some(c) => return Err(format!("its bias '{c}' is not an initializer")),
        None => None,
    };
    Ok(Head {
        weight: w,
        out_first: attrs.int("transB").unwrap_or(0) != 0,
        bias,
    })
}
