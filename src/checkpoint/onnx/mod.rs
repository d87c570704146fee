//! ONNX models (`torch.onnx.export`, tf2onnx, `issbench export-onnx`):
//! the weights of a plain recurrent stack, found by walking the graph
//! rather than by names (exporters name initializers `val_40` or
//! `onnx::LSTM_223`).
//!
//! The reader decodes the protobuf ([`proto`]), indexes the graph
//! ([`graph`]), reads each recurrent node ([`cell`]) and walks the path
//! from input to output ([`walk`]); then it names the tensors it found by
//! their place in the model, in ONNX's own layout, for
//! [`crate::checkpoint::layout`] (the `onnx` layout) to convert:
//!
//! | name | tensor |
//! |---|---|
//! | `layers.K.W`, `layers.K.R`, `layers.K.B` | inputs 1–3 of the K-th `LSTM` or `GRU`: `[dirs, G·h, in]`, `[dirs, G·h, h]`, `[dirs, 2·G·h]` (LSTM gates i, o, f, c; GRU z, r, h) |
//! | `embedding` | the table of the `Gather` the input goes through |
//! | `head.kernel` or `head.weight` | the head's `[width, out]` (`x @ W`) or `[out, width]` (`Gemm transB=1`, `Transpose`) weight |
//! | `head.bias` | the head's bias (`Add` or `Gemm` C) |
//!
//! Every other initializer is listed, unread, under its own name. Each
//! node's cell (LSTM, or GRU with its `linear_before_reset`) goes to the
//! layout as the file's [`Structure`], keyed `layers.K`.

mod cell;
mod graph;
pub mod proto;
mod tensor;
mod walk;

use std::collections::HashSet;
use std::path::Path;

use prost::Message;
use prost::bytes::Bytes;

use self::cell::Cell;
use self::graph::Graph;
use self::proto::ModelProto;
pub use self::walk::Input;
use super::{CheckpointError, ErrorKind, Layout, Read, Structure};
use crate::model;

/// How a caller feeds an ONNX model and reads its output (what the ONNX
/// Runtime peer needs to run the user's own file).
#[derive(Debug, Clone, PartialEq)]
pub struct Io {
    /// The graph input the path starts from.
    pub input: Input,
    /// Its element type: `int64`, `int32` or `float` (ONNX's names).
    pub input_type: String,
    /// Its dimensions as declared: a size, or `None` for a symbolic one.
    pub input_dims: Vec<Option<usize>>,
    /// The graph output the path ends in.
    pub output: String,
    /// Whether that output is batch-major.
    pub output_batch_major: bool,
    /// Whether the graph has an embedding and a head.
    pub embedding: bool,
    pub head: bool,
}

/// Decodes the model in `path`.
fn decode(path: &Path) -> Result<ModelProto, CheckpointError> {
    let bytes = super::read_regular(path)?;
    ModelProto::decode(Bytes::from(bytes))
        .map_err(|e| CheckpointError::new(path, ErrorKind::Corrupt(format!("not an ONNX model (protobuf: {e})"))))
}

fn graph_of<'a>(path: &Path, model: &'a ModelProto) -> Result<Graph<'a>, CheckpointError> {
    let proto = model
        .graph
        .as_ref()
        .ok_or_else(|| CheckpointError::new(path, ErrorKind::Corrupt("an ONNX model without a graph".into())))?;
    Ok(Graph::new(proto))
}

/// Reads the recurrent stack of the ONNX model at `path` as named tensors
/// (see the module documentation) for the `onnx` layout.
pub fn read(path: &Path) -> Result<Read, CheckpointError> {
    let model = decode(path)?;
    let graph = graph_of(path, &model)?;
    let stack = walk::walk(&graph).map_err(|e| CheckpointError::new(path, e))?;
    let mut tensors = Vec::new();
    let mut used = HashSet::new();
    let mut take = |name: &str, source: &str| -> Result<(), CheckpointError> {
        let t = graph.constant(source).expect("the walk found it");
        tensors.push(tensor::raw(t, name).map_err(|e| CheckpointError::tensor(path, source, e))?);
        used.insert(source.to_string());
        Ok(())
    };
    if let Some(table) = stack.embedding {
        take("embedding", table)?;
    }
    for (k, layer) in stack.layers.iter().enumerate() {
        take(&format!("layers.{k}.W"), layer.w)?;
        take(&format!("layers.{k}.R"), layer.r)?;
        if let Some(b) = layer.b {
            take(&format!("layers.{k}.B"), b)?;
        }
    }
    if let Some(head) = &stack.head {
        take(if head.out_first { "head.weight" } else { "head.kernel" }, head.weight)?;
        if let Some(b) = head.bias {
            take("head.bias", b)?;
        }
    }
    let emitted: HashSet<String> = tensors.iter().map(|t| t.name.clone()).collect();
    for t in graph.proto.initializer.iter().filter(|t| !used.contains(&t.name)) {
        let mut unread = tensor::unread(t);
        if emitted.contains(&unread.name) {
            unread.name.push_str(" (unused)");
        }
        tensors.push(unread);
    }
    Ok(Read {
        tensors,
        layout: Some(Layout::Onnx),
        structure: Structure {
            layer_order: None,
            cells: stack
                .layers
                .iter()
                .enumerate()
                .map(|(k, l)| (format!("layers.{k}"), model_cell(l.cell)))
                .collect(),
        },
        notes: vec![summary(&model, &graph, &stack)],
    })
}

/// How to feed the model at `path` and read its output.
pub fn io(path: &Path) -> Result<Io, CheckpointError> {
    let model = decode(path)?;
    let graph = graph_of(path, &model)?;
    let stack = walk::walk(&graph).map_err(|e| CheckpointError::new(path, e))?;
    let info = graph.proto.input.iter().find(|v| v.name == stack.input.name);
    let tensor_type = info.and_then(|v| v.r#type.as_ref()).and_then(|t| t.tensor_type.as_ref());
    let input_type = match tensor_type.map(|t| t.elem_type) {
        Some(proto::data_type::INT64) => "int64",
        Some(proto::data_type::INT32) => "int32",
        Some(proto::data_type::FLOAT) => "float",
        other => {
            return Err(CheckpointError::new(
                path,
                ErrorKind::Unsupported(format!("input '{}' has element type {other:?}", stack.input.name)),
            ));
        }
    };
    let input_dims = tensor_type
        .and_then(|t| t.shape.as_ref())
        .map(|s| s.dim.iter().map(|d| usize::try_from(d.dim_value).ok().filter(|&v| v > 0)).collect())
        .unwrap_or_default();
    Ok(Io {
        input: stack.input.clone(),
        input_type: input_type.to_string(),
        input_dims,
        output: stack.output.clone(),
        output_batch_major: stack.output_batch_major,
        embedding: stack.embedding.is_some(),
        head: stack.head.is_some(),
    })
}

/// The canonical cell of an ONNX node's cell.
fn model_cell(cell: Cell) -> model::Cell {
    match cell {
        Cell::Lstm => model::Cell::Lstm,
        Cell::Gru { linear_before_reset } => model::Cell::Gru {
            reset_after: linear_before_reset,
        },
    }
}

/// One line on what was read: the writer and the path through the graph.
fn summary(model: &ModelProto, graph: &Graph, stack: &walk::Stack) -> String {
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(0, |o| o.version);
    let mut parts = vec![format!(
        "input '{}' ({}, {})",
        stack.input.name,
        if stack.input.tokens { "token ids" } else { "features" },
        if stack.input.batch_major { "batch-major" } else { "time-major" }
    )];
    if let Some(e) = stack.embedding {
        parts.push(format!("embedding '{e}'"));
    }
    for layer in &stack.layers {
        parts.push(format!(
            "{} (W '{}', R '{}', B '{}')",
            graph.describe(layer.node),
            layer.w,
            layer.r,
            layer.b.unwrap_or("none")
        ));
    }
    if let Some(h) = &stack.head {
        parts.push(format!("head '{}' + bias '{}'", h.weight, h.bias.unwrap_or("none")));
    }
    parts.push(format!("output '{}'", stack.output));
    format!(
        "ONNX model written by {} {} (IR {}, opset {opset}): {}",
        if model.producer_name.is_empty() {
            "an unnamed producer"
        } else {
            &model.producer_name
        },
        model.producer_version,
        model.ir_version,
        parts.join(" -> ")
    )
}

/// Every recurrent layer of the model at `path` as (cell operator,
/// directions, hidden size), from the graph walk alone (no weights read).
pub fn layers(path: &Path) -> Result<Vec<(&'static str, usize, usize)>, CheckpointError> {
    let model = decode(path)?;
    let graph = graph_of(path, &model)?;
    let stack = walk::walk(&graph).map_err(|e| CheckpointError::new(path, e))?;
    Ok(stack.layers.iter().map(|l| (l.cell.op(), l.directions, l.hidden)).collect())
}
