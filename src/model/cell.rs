//! Recurrent layers in the canonical layout: one cell kind per layer (LSTM,
//! GRU, RHN), one or two directions, each direction its own weights.
//!
//! Every cell kind lays its weights out the same way: `w_ih [G_in·h, in]`
//! and `w_hh [G_rec·h, h]`, row-major, the `h` rows of each gate one after
//! the other, so the rows of unit `k` are those `≡ k (mod h)`:
//!
//! - LSTM: gates `i, f, g, o` (4 and 4); `bias [4h]` (both biases folded).
//! - GRU: gates `r, z, n` (3 and 3); `bias [3h]` is `b_ih`, `bias_hh [3h]`
//!   is `b_hh`, kept apart because `n` adds `b_hn` inside the reset:
//!   with `reset_after` (PyTorch, Keras' default) `n = tanh(W_in x + b_in +
//!   r ⊙ (W_hn h + b_hn))`; without it (Keras `reset_after=False`, TF1
//!   `GRUCell`) `n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn)`; then
//!   `h' = (1 − z) ⊙ n + z ⊙ h`.
//! - RHN of depth `L` (Zilly et al., as wenwei202/iss-rnns `rhn.py` builds
//!   it): `w_ih [2h, in]` is micro-layer 0's input part (its `H` rows, then
//!   its `T` rows), `w_hh [L·2h, h]` every micro-layer's recurrent part
//!   (micro-layer `i`'s `H` then `T` rows), `bias [L·2h]`. Per step the
//!   state `s` starts from the last step's; micro-layer `i` computes
//!   `h_i = tanh(W_H,i s + b_H,i [+ W_H x if i = 0])`, `t_i = σ(...)` and
//!   `s = (h_i − s) ⊙ t_i + s`; the step outputs `s`.

use super::{ModelError, check_matrix};

/// A layer's cell kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Cell {
    Lstm,
    Gru { reset_after: bool },
    Rhn { depth: usize },
}

impl Cell {
    /// Gate rows per unit in `w_ih`.
    pub fn input_gates(self) -> usize {
        match self {
            Cell::Lstm => 4,
            Cell::Gru { .. } => 3,
            Cell::Rhn { .. } => 2,
        }
    }
    /// Gate rows per unit in `w_hh` (and in `bias` for LSTM and RHN, in
    /// `bias` and `bias_hh` for GRU).
    pub fn recurrent_gates(self) -> usize {
        match self {
            Cell::Lstm => 4,
            Cell::Gru { .. } => 3,
            Cell::Rhn { depth } => 2 * depth,
        }
    }
    /// The name in reports: `lstm`, `gru`, `gru (reset before)`, `rhn depth 10`.
    pub fn describe(self) -> String {
        match self {
            Cell::Lstm => "lstm".into(),
            Cell::Gru { reset_after: true } => "gru".into(),
            Cell::Gru { reset_after: false } => "gru (reset before the product)".into(),
            Cell::Rhn { depth } => format!("rhn depth {depth}"),
        }
    }
    /// The short name in result rows: `lstm`, `gru`, `rhn`.
    pub fn name(self) -> &'static str {
        match self {
            Cell::Lstm => "lstm",
            Cell::Gru { .. } => "gru",
            Cell::Rhn { .. } => "rhn",
        }
    }
    /// The name a sweep file and a synthetic model's name use, which
    /// [`Cell::parse`] reads back: `lstm`, `gru`, `gru-rb` (reset before
    /// the product), `rhn10` (depth 10).
    pub fn tag(self) -> String {
        match self {
            Cell::Lstm => "lstm".into(),
            Cell::Gru { reset_after: true } => "gru".into(),
            Cell::Gru { reset_after: false } => "gru-rb".into(),
            Cell::Rhn { depth } => format!("rhn{depth}"),
        }
    }
    /// Reads a [`Cell::tag`]; RHN depths from 1 to 64.
    pub fn parse(tag: &str) -> Result<Cell, String> {
        match tag {
            "lstm" => Ok(Cell::Lstm),
            "gru" => Ok(Cell::Gru { reset_after: true }),
            "gru-rb" => Ok(Cell::Gru { reset_after: false }),
            _ => match tag.strip_prefix("rhn").map(str::parse::<usize>) {
                Some(Ok(depth)) if (1..=64).contains(&depth) => Ok(Cell::Rhn { depth }),
                _ => Err(format!(
                    "no cell '{tag}' (lstm, gru, gru-rb for a GRU resetting before the product, rhnN for an RHN of depth N in 1..=64)"
                )),
            },
        }
    }
}

impl TryFrom<String> for Cell {
    type Error = String;
    fn try_from(tag: String) -> Result<Cell, String> {
        Cell::parse(&tag)
    }
}

impl From<Cell> for String {
    fn from(cell: Cell) -> String {
        cell.tag()
    }
}

/// One direction of one recurrent layer (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct Recurrent {
    cell: Cell,
    input: usize,
    hidden: usize,
    w_ih: Vec<f32>,
    w_hh: Vec<f32>,
    bias: Vec<f32>,
    bias_hh: Vec<f32>,
}

/// The LSTM layers of earlier versions: a [`Recurrent`] of [`Cell::Lstm`].
pub type LstmLayer = Recurrent;

impl Recurrent {
    /// An LSTM direction, checking every length and value. `name` prefixes
    /// the tensor names in errors (for example `layer 1`).
    pub fn new(name: &str, input: usize, hidden: usize, w_ih: Vec<f32>, w_hh: Vec<f32>, bias: Vec<f32>) -> Result<Self, ModelError> {
        Self::with_cell(name, Cell::Lstm, input, hidden, w_ih, w_hh, bias, Vec::new())
    }

    /// A direction of any cell kind; `bias_hh` is the GRU's `b_hh` (empty
    /// for the others).
    #[allow(clippy::too_many_arguments)]
    pub fn with_cell(
        name: &str,
        cell: Cell,
        input: usize,
        hidden: usize,
        w_ih: Vec<f32>,
        w_hh: Vec<f32>,
        bias: Vec<f32>,
        bias_hh: Vec<f32>,
    ) -> Result<Self, ModelError> {
        let rows = |gates: usize| {
            hidden.checked_mul(gates).ok_or_else(|| ModelError::Shape {
                tensor: format!("{name}.w_hh"),
                shape: format!("[{gates} x {hidden}, {hidden}]"),
            })
        };
        if let Cell::Rhn { depth } = cell
            && !(1..=64).contains(&depth)
        {
            return Err(ModelError::Spec(format!("{name}: RHN depth {depth} (1 to 64)")));
        }
        let (g_in, g_rec) = (rows(cell.input_gates())?, rows(cell.recurrent_gates())?);
        check_matrix(&format!("{name}.w_ih"), &w_ih, g_in, input)?;
        check_matrix(&format!("{name}.w_hh"), &w_hh, g_rec, hidden)?;
        check_matrix(&format!("{name}.bias"), &bias, g_rec, 1)?;
        match cell {
            Cell::Gru { .. } => check_matrix(&format!("{name}.bias_hh"), &bias_hh, g_rec, 1)?,
            _ if !bias_hh.is_empty() => {
                return Err(ModelError::Spec(format!("{name}: only a GRU has a separate recurrent bias")));
            }
            _ => {}
        }
        Ok(Recurrent {
            cell,
            input,
            hidden,
            w_ih,
            w_hh,
            bias,
            bias_hh,
        })
    }
    /// The cell kind.
    pub fn cell(&self) -> Cell {
        self.cell
    }
    /// Width of the direction's input.
    pub fn input(&self) -> usize {
        self.input
    }
    /// Number of hidden units `h`.
    pub fn hidden(&self) -> usize {
        self.hidden
    }
    /// Input weights `[G_in·h, in]`.
    pub fn w_ih(&self) -> &[f32] {
        &self.w_ih
    }
    /// Recurrent weights `[G_rec·h, h]`.
    pub fn w_hh(&self) -> &[f32] {
        &self.w_hh
    }
    /// Bias `[G_rec·h]` (LSTM: folded; GRU: `b_ih`; RHN: every micro-layer's).
    pub fn bias(&self) -> &[f32] {
        &self.bias
    }
    /// The GRU's recurrent bias `b_hh [3h]`; empty for the other cells.
    pub fn bias_hh(&self) -> &[f32] {
        &self.bias_hh
    }
    /// Weights and biases.
    pub fn params(&self) -> usize {
        self.w_ih.len() + self.w_hh.len() + self.bias.len() + self.bias_hh.len()
    }
    /// Multiply-adds of one time step for one sequence.
    pub fn macs_per_step(&self) -> usize {
        self.w_ih.len() + self.w_hh.len()
    }
    /// The same direction with other weights of the same cell kind (shapes
    /// checked again).
    #[allow(clippy::too_many_arguments)]
    pub fn rebuilt(
        &self,
        name: &str,
        input: usize,
        hidden: usize,
        w_ih: Vec<f32>,
        w_hh: Vec<f32>,
        bias: Vec<f32>,
        bias_hh: Vec<f32>,
    ) -> Result<Self, ModelError> {
        Self::with_cell(name, self.cell, input, hidden, w_ih, w_hh, bias, bias_hh)
    }
}

/// Which direction of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    Forward,
    Backward,
}

impl Direction {
    /// `fw` or `bw`, as checkpoints and reports name them.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Forward => "fw",
            Direction::Backward => "bw",
        }
    }
}

/// One recurrent layer: a forward direction and, for a bidirectional
/// layer, a backward one that reads the sequence reversed; the layer's
/// output at each step is `[fw; bw]`, forward units first.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    fw: Recurrent,
    bw: Option<Recurrent>,
}

impl From<Recurrent> for Layer {
    fn from(fw: Recurrent) -> Layer {
        Layer { fw, bw: None }
    }
}

impl Layer {
    /// A bidirectional layer: both directions read the same input and have
    /// the same cell kind (their widths may differ, as after compaction).
    pub fn bidirectional(name: &str, fw: Recurrent, bw: Recurrent) -> Result<Layer, ModelError> {
        if fw.input != bw.input || fw.cell != bw.cell {
            return Err(ModelError::Spec(format!(
                "{name}: the directions differ in input ({} and {}) or cell ({} and {})",
                fw.input,
                bw.input,
                fw.cell.describe(),
                bw.cell.describe()
            )));
        }
        Ok(Layer { fw, bw: Some(bw) })
    }
    /// The forward direction (the only one of a unidirectional layer).
    pub fn fw(&self) -> &Recurrent {
        &self.fw
    }
    /// The backward direction, if bidirectional.
    pub fn bw(&self) -> Option<&Recurrent> {
        self.bw.as_ref()
    }
    /// The directions, forward first.
    pub fn directions(&self) -> impl Iterator<Item = (Direction, &Recurrent)> {
        std::iter::once((Direction::Forward, &self.fw)).chain(self.bw.iter().map(|b| (Direction::Backward, b)))
    }
    /// The direction `d`.
    pub fn direction(&self, d: Direction) -> Option<&Recurrent> {
        match d {
            Direction::Forward => Some(&self.fw),
            Direction::Backward => self.bw.as_ref(),
        }
    }
    /// Whether it has a backward direction.
    pub fn is_bidirectional(&self) -> bool {
        self.bw.is_some()
    }
    /// The cell kind.
    pub fn cell(&self) -> Cell {
        self.fw.cell
    }
    /// Width of the layer's input.
    pub fn input(&self) -> usize {
        self.fw.input
    }
    /// Width of the layer's output: the directions' hidden sizes together.
    pub fn output(&self) -> usize {
        self.fw.hidden + self.bw.as_ref().map_or(0, |b| b.hidden)
    }
    /// Where direction `d`'s units start in the layer's output.
    pub fn offset(&self, d: Direction) -> usize {
        match d {
            Direction::Forward => 0,
            Direction::Backward => self.fw.hidden,
        }
    }
    /// The layer with its directions replaced (same count of directions).
    pub fn with_directions(&self, name: &str, fw: Recurrent, bw: Option<Recurrent>) -> Result<Layer, ModelError> {
        match bw {
            Some(bw) => Layer::bidirectional(name, fw, bw),
            None => Ok(Layer::from(fw)),
        }
    }
}
