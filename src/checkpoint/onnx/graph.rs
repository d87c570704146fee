//! An index over an ONNX graph: who produces and who reads each value,
//! which values are constants (initializers and `Constant` nodes), and
//! typed access to node attributes. The walk in [`super::walk`] asks
//! these questions; nothing here interprets the model.

use std::collections::{HashMap, HashSet};

use super::proto::{AttributeProto, GraphProto, NodeProto, TensorProto, attribute_type};
use super::tensor;
use crate::checkpoint::ErrorKind;

/// A graph and its producer / consumer / constant tables.
pub struct Graph<'a> {
    pub proto: &'a GraphProto,
    constants: HashMap<&'a str, &'a TensorProto>,
    producer: HashMap<&'a str, usize>,
    consumers: HashMap<&'a str, Vec<usize>>,
    /// Graph inputs that are not initializers (what a caller feeds).
    inputs: HashSet<&'a str>,
    outputs: HashSet<&'a str>,
}

impl<'a> Graph<'a> {
    /// Indexes `proto`.
    pub fn new(proto: &'a GraphProto) -> Graph<'a> {
        let mut constants: HashMap<&str, &TensorProto> = proto.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
        let mut producer = HashMap::new();
        let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, node) in proto.node.iter().enumerate() {
            for out in node.output.iter().filter(|o| !o.is_empty()) {
                producer.insert(out.as_str(), i);
            }
            for input in node.input.iter().filter(|o| !o.is_empty()) {
                let users = consumers.entry(input.as_str()).or_default();
                if users.last() != Some(&i) {
                    users.push(i);
                }
            }
            if is_op(node, "Constant")
                && let (Some(out), Some(value)) = (node.output.first(), Attrs(&node.attribute).get("value").and_then(|a| a.t.as_ref()))
            {
                constants.insert(out.as_str(), value);
            }
        }
        let inputs = proto
            .input
            .iter()
            .map(|v| v.name.as_str())
            .filter(|n| !constants.contains_key(n))
            .collect();
        let outputs = proto.output.iter().map(|v| v.name.as_str()).collect();
        Graph {
            proto,
            constants,
            producer,
            consumers,
            inputs,
            outputs,
        }
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> &'a NodeProto {
        &self.proto.node[i]
    }

    /// The index of the node that produces `value`, if a node does.
    pub fn producer(&self, value: &str) -> Option<usize> {
        self.producer.get(value).copied()
    }

    /// The nodes that read `value`, in graph order.
    pub fn consumers(&self, value: &str) -> &[usize] {
        self.consumers.get(value).map_or(&[], Vec::as_slice)
    }

    /// The constant tensor `value` is (an initializer or a `Constant`'s value).
    pub fn constant(&self, value: &str) -> Option<&'a TensorProto> {
        self.constants.get(value).copied()
    }

    /// Whether `value` is fed by the caller.
    pub fn is_input(&self, value: &str) -> bool {
        self.inputs.contains(value)
    }

    /// Whether `value` is a graph output.
    pub fn is_output(&self, value: &str) -> bool {
        self.outputs.contains(value)
    }

    /// Whether `value` is a sparse initializer (which issbench does not read).
    pub fn is_sparse(&self, value: &str) -> bool {
        self.proto
            .sparse_initializer
            .iter()
            .any(|s| s.values.as_ref().is_some_and(|v| v.name == value))
    }

    /// The integer values of a constant `value` (a shape, axes), or why not.
    pub fn ints(&self, value: &str) -> Result<Vec<i64>, ErrorKind> {
        if let Some(t) = self.constant(value) {
            return tensor::ints(t);
        }
        // `Constant` nodes may carry plain integers instead of a tensor.
        if let Some(node) = self.producer(value).map(|i| self.node(i)).filter(|n| is_op(n, "Constant")) {
            let attrs = Attrs(&node.attribute);
            if let Some(ints) = attrs.ints("value_ints") {
                return Ok(ints.to_vec());
            }
            if let Some(i) = attrs.int("value_int") {
                return Ok(vec![i]);
            }
        }
        Err(ErrorKind::Unsupported(format!(
            "'{value}' is computed in the graph, not a constant"
        )))
    }

    /// A short description of node `i` for messages: `Op 'name'`.
    pub fn describe(&self, i: usize) -> String {
        describe(self.node(i))
    }
}

/// `Op 'name'` (or `Op #outputs` when the node has no name).
pub fn describe(node: &NodeProto) -> String {
    if node.name.is_empty() {
        format!("{} node -> '{}'", node.op_type, node.output.first().map_or("", String::as_str))
    } else {
        format!("{} node '{}'", node.op_type, node.name)
    }
}

/// Whether `node` is the standard-domain operator `op`.
pub fn is_op(node: &NodeProto, op: &str) -> bool {
    node.op_type == op && (node.domain.is_empty() || node.domain == "ai.onnx")
}

/// A node's attributes, read by name and type.
#[derive(Clone, Copy)]
pub struct Attrs<'a>(pub &'a [AttributeProto]);

impl<'a> Attrs<'a> {
    /// The attribute called `name`.
    pub fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.0.iter().find(|a| a.name == name)
    }
    /// Whether the attribute is present.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
    /// An `INT` attribute (type 0: files written before types were recorded).
    pub fn int(&self, name: &str) -> Option<i64> {
        self.get(name).filter(|a| matches!(a.r#type, attribute_type::INT | 0)).map(|a| a.i)
    }
    /// A `FLOAT` attribute.
    pub fn float(&self, name: &str) -> Option<f32> {
        self.get(name)
            .filter(|a| matches!(a.r#type, attribute_type::FLOAT | 0))
            .map(|a| a.f)
    }
    /// An `INTS` attribute.
    pub fn ints(&self, name: &str) -> Option<&'a [i64]> {
        self.get(name)
            .filter(|a| matches!(a.r#type, attribute_type::INTS | 0))
            .map(|a| a.ints.as_slice())
    }
    /// A `STRING` attribute, as text.
    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name)
            .filter(|a| matches!(a.r#type, attribute_type::STRING | 0))
            .map(|a| String::from_utf8_lossy(&a.s).into_owned())
    }
    /// A `STRINGS` attribute, as text.
    pub fn strings(&self, name: &str) -> Option<Vec<String>> {
        self.get(name)
            .filter(|a| matches!(a.r#type, attribute_type::STRINGS | 0))
            .map(|a| a.strings.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect())
    }
}
