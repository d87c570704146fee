//! One recurrent ONNX node (`LSTM`, `GRU`) read as a layer: its cell kind,
//! directions, hidden size and the constants holding W, R and B, after
//! refusing everything a plain recurrent layer does not do (peepholes,
//! clipping, other activations, coupled gates, sequence lengths, a
//! nonzero initial state, batch-major layout, reverse direction: a
//! `reverse` node reads the sequence backwards on its own, which the
//! canonical model has only as the backward half of a bidirectional
//! layer).

use super::graph::{Attrs, Graph, describe, is_op};
use super::tensor;
use crate::checkpoint::ErrorKind;

/// The cell of a recurrent node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// ONNX `LSTM`: gates i, o, f, c.
    Lstm,
    /// ONNX `GRU`: gates z, r, h; `linear_before_reset` = 1 is PyTorch's
    /// (and Keras' `reset_after`) form.
    Gru { linear_before_reset: bool },
}

impl Cell {
    /// Gate blocks per direction in W and R.
    pub fn gates(self) -> usize {
        match self {
            Cell::Lstm => 4,
            Cell::Gru { .. } => 3,
        }
    }
    /// The activations ONNX uses when none are given, per direction.
    fn default_activations(self) -> &'static [&'static str] {
        match self {
            Cell::Lstm => &["sigmoid", "tanh", "tanh"],
            Cell::Gru { .. } => &["sigmoid", "tanh"],
        }
    }
    /// The operator name.
    pub fn op(self) -> &'static str {
        match self {
            Cell::Lstm => "LSTM",
            Cell::Gru { .. } => "GRU",
        }
    }
}

/// A recurrent node read as one layer.
#[derive(Debug, Clone)]
pub struct Recurrent<'a> {
    /// The node's index in the graph.
    pub node: usize,
    pub cell: Cell,
    /// 1 (forward) or 2 (bidirectional: direction 0 forward, 1 backward).
    pub directions: usize,
    pub hidden: usize,
    /// Names of the constants W `[dirs, G·h, in]`, R `[dirs, G·h, h]` and
    /// B `[dirs, 2·G·h]` (absent: zero biases).
    pub w: &'a str,
    pub r: &'a str,
    pub b: Option<&'a str>,
}

/// Input positions of the ONNX recurrent operators.
const SEQUENCE_LENS: usize = 4;
const INITIAL_H: usize = 5;
const INITIAL_C: usize = 6;
const PEEPHOLES: usize = 7;

/// Reads node `i` (an `LSTM` or `GRU`) as a layer, or says why it is not a
/// plain one.
pub fn read<'a>(graph: &Graph<'a>, i: usize) -> Result<Recurrent<'a>, ErrorKind> {
    let node = graph.node(i);
    let me = describe(node);
    let refuse = |what: String| ErrorKind::Unsupported(format!("{me}: {what}; issbench reads plain recurrent layers only"));
    let attrs = Attrs(&node.attribute);
    let cell = if is_op(node, "LSTM") {
        Cell::Lstm
    } else if is_op(node, "GRU") {
        Cell::Gru {
            linear_before_reset: attrs.int("linear_before_reset").unwrap_or(0) != 0,
        }
    } else {
        return Err(refuse(format!("{} is not an LSTM or GRU", node.op_type)));
    };
    let directions = match attrs.string("direction").as_deref().unwrap_or("forward") {
        "forward" => 1,
        "bidirectional" => 2,
        "reverse" => return Err(refuse("direction reverse (it reads the sequence backwards)".into())),
        other => return Err(ErrorKind::Corrupt(format!("{me}: direction '{other}'"))),
    };
    if let Some(clip) = attrs.float("clip").or_else(|| attrs.has("clip").then_some(f32::NAN)) {
        return Err(refuse(format!("clip = {clip} (cell clipping)")));
    }
    if attrs.int("input_forget").is_some_and(|v| v != 0) {
        return Err(refuse("input_forget = 1 (coupled input and forget gates)".into()));
    }
    if attrs.int("layout").is_some_and(|v| v != 0) {
        return Err(refuse("layout = 1 (batch-major inputs and outputs)".into()));
    }
    for extra in ["activation_alpha", "activation_beta"] {
        if attrs.has(extra) {
            return Err(refuse(format!("{extra} (parameterised activations)")));
        }
    }
    if let Some(acts) = attrs.strings("activations") {
        let want: Vec<&str> = cell
            .default_activations()
            .iter()
            .copied()
            .cycle()
            .take(cell.default_activations().len() * directions)
            .collect();
        let got: Vec<String> = acts.iter().map(|a| a.to_ascii_lowercase()).collect();
        if got != want {
            return Err(refuse(format!(
                "activations {acts:?} (a plain {} uses {:?})",
                cell.op(),
                cell.default_activations()
            )));
        }
    }
    let input = |k: usize| node.input.get(k).map(String::as_str).filter(|s| !s.is_empty());
    if let Some(lens) = input(SEQUENCE_LENS) {
        return Err(refuse(format!("sequence_lens '{lens}' (sequences of different lengths)")));
    }
    let mut states = vec![("initial_h", INITIAL_H)];
    if cell == Cell::Lstm {
        states.push(("initial_c", INITIAL_C));
        if let Some(p) = input(PEEPHOLES)
            && !graph.constant(p).map(tensor::all_zero).transpose()?.unwrap_or(false)
        {
            return Err(refuse(format!("peepholes P '{p}'")));
        }
    }
    for (what, k) in states {
        if let Some(v) = input(k)
            && !zero(graph, v, 0)?
        {
            return Err(refuse(format!(
                "{what} '{v}' is not zero (issbench starts every sequence from a zero state)"
            )));
        }
    }
    let constant = |k: usize, what: &str| -> Result<&'a str, ErrorKind> {
        let name = input(k).ok_or_else(|| ErrorKind::Corrupt(format!("{me}: no {what} input")))?;
        if graph.constant(name).is_some() {
            Ok(name)
        } else if graph.is_sparse(name) {
            Err(ErrorKind::Unsupported(format!("{me}: {what} '{name}' is a sparse initializer")))
        } else {
            Err(ErrorKind::Unsupported(format!(
                "{me}: {what} '{name}' is computed in the graph, not stored as an initializer"
            )))
        }
    };
    let (w, r) = (constant(1, "W")?, constant(2, "R")?);
    let b = match input(3) {
        Some(_) => Some(constant(3, "B")?),
        None => None,
    };
    let dims = |name: &str| graph.constant(name).map(|t| t.dims.clone()).unwrap_or_default();
    let g = cell.gates() as i64;
    let hidden = match dims(r)[..] {
        [d, rows, h] if d == directions as i64 && h > 0 && rows == g * h => h as usize,
        ref other => {
            return Err(ErrorKind::Shape(format!(
                "{me}: R '{r}' should be [{directions}, {g}·h, h], it is {other:?}"
            )));
        }
    };
    if let Some(h) = attrs.int("hidden_size")
        && h != hidden as i64
    {
        return Err(ErrorKind::Shape(format!(
            "{me}: hidden_size {h}, but R '{r}' is for {hidden} units"
        )));
    }
    match dims(w)[..] {
        [d, rows, _] if d == directions as i64 && rows == g * hidden as i64 => {}
        ref other => {
            return Err(ErrorKind::Shape(format!(
                "{me}: W '{w}' should be [{directions}, {}, in], it is {other:?}",
                g * hidden as i64
            )));
        }
    }
    if let Some(b) = b
        && dims(b)[..] != [directions as i64, 2 * g * hidden as i64]
    {
        return Err(ErrorKind::Shape(format!(
            "{me}: B '{b}' should be [{directions}, {}], it is {:?}",
            2 * g * hidden as i64,
            dims(b)
        )));
    }
    Ok(Recurrent {
        node: i,
        cell,
        directions,
        hidden,
        w,
        r,
        b,
    })
}

/// Whether `value` is provably all zeros: a zero constant, or `Expand`,
/// `ConstantOfShape`, `Identity` or `Cast` of one (how exporters build
/// zero initial states).
fn zero(graph: &Graph, value: &str, depth: usize) -> Result<bool, ErrorKind> {
    if let Some(t) = graph.constant(value) {
        return tensor::all_zero(t);
    }
    let Some(node) = graph.producer(value).map(|i| graph.node(i)) else {
        return Ok(false);
    };
    if depth > 8 {
        return Ok(false);
    }
    if is_op(node, "ConstantOfShape") {
        return match Attrs(&node.attribute).get("value").and_then(|a| a.t.as_ref()) {
            None => Ok(true),
            Some(t) => tensor::all_zero(t),
        };
    }
    if ["Expand", "Identity", "Cast"].iter().any(|op| is_op(node, op)) {
        return match node.input.first() {
            Some(src) => zero(graph, src, depth + 1),
            None => Ok(false),
        };
    }
    Ok(false)
}
