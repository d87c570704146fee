//! Group norms of every ISS component and what can be removed, for every
//! direction of every layer and every cell kind (the rule is the same: the
//! rows of unit `k` are those `≡ k (mod h)`, see [`crate::model::cell`]).

use serde::Serialize;

use super::IssError;
use crate::model::{Cell, Direction, Model};

/// What consumes a direction's hidden states besides its own recurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Consumer {
    /// The next layer's `w_ih`, in every direction it has.
    NextLayer,
    /// The output projection.
    Head,
    /// Nothing: the hidden states are the model's output, so every unit is
    /// observed and none is removable unless the caller accepts outputs of
    /// the kept units only.
    Output,
}

/// ISS analysis of one direction of one layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerReport {
    /// The layer's index, input side first.
    pub layer: usize,
    /// Which direction (`fw` for a unidirectional layer).
    #[serde(serialize_with = "direction_name")]
    pub direction: Direction,
    /// The cell kind.
    #[serde(serialize_with = "cell_name")]
    pub cell: Cell,
    /// Input width.
    pub input: usize,
    /// Hidden units.
    pub hidden: usize,
    /// What reads this direction's outputs.
    pub consumer: Consumer,
    /// L2 norm of each component's incoming weights.
    pub incoming_norm: Vec<f32>,
    /// L2 norm of each component's outgoing weights.
    pub outgoing_norm: Vec<f32>,
    /// Units whose outgoing weights are all within the threshold (sorted).
    pub removable: Vec<usize>,
    /// Removable units whose incoming weights are within the threshold too
    /// (the paper's definition of a removed ISS component).
    pub fully_zero: Vec<usize>,
    /// Units that are not removable although one of their groups (incoming,
    /// recurrent outgoing, consumer outgoing) is entirely within the
    /// threshold. Reported, never removed.
    pub partly_zero: Vec<usize>,
}

fn direction_name<S: serde::Serializer>(d: &Direction, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(d.name())
}

fn cell_name<S: serde::Serializer>(c: &Cell, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&c.describe())
}

impl LayerReport {
    /// Units that stay after compaction (sorted). With
    /// `shrink_output = false`, a direction whose consumer is the model
    /// output keeps every unit.
    pub fn kept_units(&self, shrink_output: bool) -> Vec<usize> {
        if self.consumer == Consumer::Output && !shrink_output {
            return (0..self.hidden).collect();
        }
        let mut removed = self.removable.iter().peekable();
        (0..self.hidden)
            .filter(|k| {
                if removed.peek() == Some(&k) {
                    removed.next();
                    false
                } else {
                    true
                }
            })
            .collect()
    }
    /// `layer 1 bw` (or `layer 1` for a unidirectional layer): how errors
    /// and reports name it.
    pub fn name(&self, bidirectional: bool) -> String {
        if bidirectional {
            format!("layer {} {}", self.layer, self.direction.name())
        } else {
            format!("layer {}", self.layer)
        }
    }
}

/// The ISS analysis of a whole model. Only [`analyze`] makes one, so a
/// report's `removable` sets always come from real weights.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IssReport {
    threshold: f32,
    /// One per direction, in [`Model::directions`]' order.
    layers: Vec<LayerReport>,
    /// Directions per layer.
    shape: Vec<usize>,
    has_head: bool,
    head_output: usize,
    tied: bool,
}

/// Sizes and costs of a model before or after compaction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Cost {
    /// Weights and biases of the recurrent layers.
    pub lstm_params: usize,
    /// Multiply-adds of one step for one sequence in the recurrent layers.
    pub lstm_macs: usize,
    /// The same with the output projection.
    pub macs_with_head: usize,
    /// Weights and biases with the output projection.
    pub params_with_head: usize,
}

impl IssReport {
    /// The threshold the analysis used.
    pub fn threshold(&self) -> f32 {
        self.threshold
    }
    /// Per-direction results, in [`Model::directions`]' order (one per
    /// layer for a unidirectional model).
    pub fn layers(&self) -> &[LayerReport] {
        &self.layers
    }
    /// The reports of layer `l`'s directions.
    pub fn of_layer(&self, l: usize) -> &[LayerReport] {
        let start: usize = self.shape[..l].iter().sum();
        &self.layers[start..start + self.shape[l]]
    }
    /// Kept hidden sizes per direction.
    pub fn kept_sizes(&self, shrink_output: bool) -> Vec<usize> {
        self.layers.iter().map(|l| l.kept_units(shrink_output).len()).collect()
    }
    /// Full hidden sizes per direction.
    pub fn full_sizes(&self) -> Vec<usize> {
        self.layers.iter().map(|l| l.hidden).collect()
    }
    /// Whether the model's embedding is its head's weight: then the first
    /// layer's input features are the last layer's units, removed with them.
    pub fn tied(&self) -> bool {
        self.tied
    }

    /// The costs of a model with these directions at `sizes` (per
    /// direction); with tied weights the first layer's input is the last
    /// layer's width.
    fn cost(&self, sizes: &[usize]) -> Cost {
        let (mut params, mut macs) = (0, 0);
        let mut at = 0;
        let mut widths = Vec::with_capacity(self.shape.len());
        for &n in &self.shape {
            widths.push(sizes[at..at + n].iter().sum::<usize>());
            at += n;
        }
        let last = *widths.last().expect("a model has layers");
        let mut input = if self.tied { last } else { self.layers[0].input };
        for (r, &h) in self.layers.iter().zip(sizes) {
            if r.layer > 0 {
                input = widths[r.layer - 1];
            }
            let (g_in, g_rec) = (r.cell.input_gates(), r.cell.recurrent_gates());
            let biases = if matches!(r.cell, Cell::Gru { .. }) { 2 } else { 1 };
            macs += g_in * h * input + g_rec * h * h;
            params += g_in * h * input + g_rec * h * h + biases * g_rec * h;
        }
        let head_macs = if self.has_head { self.head_output * last } else { 0 };
        let head_params = if self.has_head { self.head_output * (last + 1) } else { 0 };
        Cost {
            lstm_params: params,
            lstm_macs: macs,
            macs_with_head: macs + head_macs,
            params_with_head: params + head_params,
        }
    }
    /// Costs of the full model.
    pub fn cost_full(&self) -> Cost {
        self.cost(&self.full_sizes())
    }
    /// Costs of the compacted model.
    pub fn cost_kept(&self, shrink_output: bool) -> Cost {
        self.cost(&self.kept_sizes(shrink_output))
    }
    /// Ideal speedup of the recurrent layers: the ratio of multiply-adds.
    pub fn ideal_speedup(&self, shrink_output: bool) -> f64 {
        self.cost_full().lstm_macs as f64 / self.cost_kept(shrink_output).lstm_macs as f64
    }
    /// Ideal speedup with the output projection included.
    pub fn ideal_speedup_with_head(&self, shrink_output: bool) -> f64 {
        self.cost_full().macs_with_head as f64 / self.cost_kept(shrink_output).macs_with_head as f64
    }
    /// Checks that this report describes a model of `model`'s shape.
    pub(crate) fn check_matches(&self, model: &Model) -> Result<(), IssError> {
        let sizes: Vec<(usize, usize, Cell)> = model.directions().map(|(_, _, r)| (r.input(), r.hidden(), r.cell())).collect();
        let mine: Vec<(usize, usize, Cell)> = self.layers.iter().map(|l| (l.input, l.hidden, l.cell)).collect();
        if sizes != mine || self.has_head != model.head().is_some() || self.tied != model.is_tied() {
            return Err(IssError::ReportMismatch(format!(
                "report directions (input, hidden, cell) {mine:?}, model {sizes:?}"
            )));
        }
        Ok(())
    }
}

/// Largest |w| and sum of w² over a set of values.
#[derive(Default, Clone, Copy)]
struct Group {
    max_abs: f32,
    sum_sq: f64,
}

impl Group {
    fn add(&mut self, w: f32) {
        self.max_abs = self.max_abs.max(w.abs());
        self.sum_sq += (w as f64) * (w as f64);
    }
    fn merge(self, other: Group) -> Group {
        Group {
            max_abs: self.max_abs.max(other.max_abs),
            sum_sq: self.sum_sq + other.sum_sq,
        }
    }
}

/// Column `offset + k` of every row of a row-major `[rows, cols]` matrix,
/// for `k` in `0..count`.
fn column_groups(w: &[f32], cols: usize, offset: usize, count: usize) -> Vec<Group> {
    let mut groups = vec![Group::default(); count];
    for row in w.chunks_exact(cols) {
        for (g, &v) in groups.iter_mut().zip(&row[offset..offset + count]) {
            g.add(v);
        }
    }
    groups
}

/// The rows `≡ k (mod hidden)` of a row-major `[G·hidden, cols]` matrix,
/// for all `k`: every gate row of unit `k`.
fn gate_row_groups(w: &[f32], hidden: usize, cols: usize) -> Vec<Group> {
    let mut groups = vec![Group::default(); hidden];
    for (r, row) in w.chunks_exact(cols).enumerate() {
        let g = &mut groups[r % hidden];
        for &v in row {
            g.add(v);
        }
    }
    groups
}

/// Measures every component of every direction of every layer of `model`.
/// A component is removable when all of its outgoing weights (its column
/// of `w_hh`, and its column in every consumer: every direction of the
/// next layer, or the head) satisfy `|w| <= threshold`. With tied weights
/// the head's column is also the embedding's, so removing the last layer's
/// unit removes the first layer's input feature with it, exactly.
pub fn analyze(model: &Model, threshold: f32) -> IssReport {
    let layers = model.layers();
    let mut reports = Vec::new();
    for (l, layer) in layers.iter().enumerate() {
        for (d, dir) in layer.directions() {
            let (h, offset) = (dir.hidden(), layer.offset(d));
            let incoming: Vec<Group> = gate_row_groups(dir.w_ih(), h, dir.input())
                .into_iter()
                .zip(gate_row_groups(dir.w_hh(), h, h))
                .map(|(a, b)| a.merge(b))
                .collect();
            let recurrent = column_groups(dir.w_hh(), h, 0, h);
            let (consumer, consumed) = if let Some(next) = layers.get(l + 1) {
                let per_direction = next.directions().map(|(_, n)| column_groups(n.w_ih(), n.input(), offset, h));
                let merged = per_direction.reduce(|a, b| a.into_iter().zip(b).map(|(x, y)| x.merge(y)).collect());
                (Consumer::NextLayer, merged)
            } else if let Some(head) = model.head() {
                (Consumer::Head, Some(column_groups(head.weight(), head.input(), offset, h)))
            } else {
                (Consumer::Output, None)
            };
            let within = |g: &Group| g.max_abs <= threshold;
            let mut report = LayerReport {
                layer: l,
                direction: d,
                cell: dir.cell(),
                input: dir.input(),
                hidden: h,
                consumer,
                incoming_norm: incoming.iter().map(|g| g.sum_sq.sqrt() as f32).collect(),
                outgoing_norm: Vec::with_capacity(h),
                removable: Vec::new(),
                fully_zero: Vec::new(),
                partly_zero: Vec::new(),
            };
            for k in 0..h {
                let outgoing = match &consumed {
                    Some(c) => recurrent[k].merge(c[k]),
                    None => recurrent[k],
                };
                report.outgoing_norm.push(outgoing.sum_sq.sqrt() as f32);
                if within(&outgoing) {
                    report.removable.push(k);
                    if within(&incoming[k]) {
                        report.fully_zero.push(k);
                    }
                } else if within(&incoming[k]) || within(&recurrent[k]) || consumed.as_ref().is_some_and(|c| within(&c[k])) {
                    report.partly_zero.push(k);
                }
            }
            reports.push(report);
        }
    }
    IssReport {
        threshold,
        layers: reports,
        shape: layers.iter().map(|l| l.directions().count()).collect(),
        has_head: model.head().is_some(),
        head_output: model.head().map_or(0, |h| h.output()),
        tied: model.is_tied(),
    }
}
