//! Group norms of every ISS component and what can be removed.

use serde::Serialize;

use super::IssError;
use crate::model::Model;

/// What consumes a layer's hidden states besides its own recurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Consumer {
    /// The next LSTM layer's `w_ih`.
    NextLayer,
    /// The output projection.
    Head,
    /// Nothing: the hidden states are the model's output, so every unit is
    /// observed and none is removable unless the caller accepts outputs of
    /// the kept units only.
    Output,
}

/// ISS analysis of one layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerReport {
    /// Input width.
    pub input: usize,
    /// Hidden units.
    pub hidden: usize,
    /// What reads this layer's outputs.
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

impl LayerReport {
    /// Units that stay after compaction (sorted). With
    /// `shrink_output = false`, a layer whose consumer is the model output
    /// keeps every unit.
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
}

/// The ISS analysis of a whole model. Only [`analyze`] makes one, so a
/// report's `removable` sets always come from real weights.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IssReport {
    threshold: f32,
    layers: Vec<LayerReport>,
    has_head: bool,
    head_output: usize,
}

/// Sizes and costs of a model before or after compaction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Cost {
    /// Weights and biases of the LSTM layers.
    pub lstm_params: usize,
    /// Multiply-adds of one step for one sequence in the LSTM layers.
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
    /// Per-layer results, input side first.
    pub fn layers(&self) -> &[LayerReport] {
        &self.layers
    }
    /// Kept hidden sizes per layer.
    pub fn kept_sizes(&self, shrink_output: bool) -> Vec<usize> {
        self.layers.iter().map(|l| l.kept_units(shrink_output).len()).collect()
    }
    /// Full hidden sizes per layer.
    pub fn full_sizes(&self) -> Vec<usize> {
        self.layers.iter().map(|l| l.hidden).collect()
    }

    fn cost(&self, sizes: &[usize]) -> Cost {
        let mut input = self.layers[0].input;
        let (mut params, mut macs) = (0, 0);
        for &h in sizes {
            macs += 4 * h * (input + h);
            params += 4 * h * (input + h) + 4 * h;
            input = h;
        }
        let head_macs = if self.has_head { self.head_output * input } else { 0 };
        let head_params = if self.has_head { self.head_output * (input + 1) } else { 0 };
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
    /// Ideal speedup of the LSTM layers: the ratio of multiply-adds.
    pub fn ideal_speedup(&self, shrink_output: bool) -> f64 {
        self.cost_full().lstm_macs as f64 / self.cost_kept(shrink_output).lstm_macs as f64
    }
    /// Ideal speedup with the output projection included.
    pub fn ideal_speedup_with_head(&self, shrink_output: bool) -> f64 {
        self.cost_full().macs_with_head as f64 / self.cost_kept(shrink_output).macs_with_head as f64
    }
    /// Checks that this report describes a model of `model`'s shape.
    pub(crate) fn check_matches(&self, model: &Model) -> Result<(), IssError> {
        let sizes: Vec<(usize, usize)> = model.layers().iter().map(|l| (l.input(), l.hidden())).collect();
        let mine: Vec<(usize, usize)> = self.layers.iter().map(|l| (l.input, l.hidden)).collect();
        if sizes != mine || self.has_head != model.head().is_some() {
            return Err(IssError::ReportMismatch(format!(
                "report layers (input, hidden) {mine:?}, model {sizes:?}"
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

/// Adds column `k` of every row of a row-major `[rows, cols]` matrix, for all `k`.
fn column_groups(w: &[f32], cols: usize) -> Vec<Group> {
    let mut groups = vec![Group::default(); cols];
    for row in w.chunks_exact(cols) {
        for (g, &v) in groups.iter_mut().zip(row) {
            g.add(v);
        }
    }
    groups
}

/// Adds rows `k, h+k, 2h+k, 3h+k` of a row-major `[4h, cols]` matrix, for all `k`.
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

/// Measures every component of every layer of `model`. A component is
/// removable when all of its outgoing weights satisfy `|w| <= threshold`.
pub fn analyze(model: &Model, threshold: f32) -> IssReport {
    let layers = model.layers();
    let mut reports = Vec::with_capacity(layers.len());
    for (l, layer) in layers.iter().enumerate() {
        let h = layer.hidden();
        let incoming: Vec<Group> = gate_row_groups(layer.w_ih(), h, layer.input())
            .into_iter()
            .zip(gate_row_groups(layer.w_hh(), h, h))
            .map(|(a, b)| a.merge(b))
            .collect();
        let recurrent = column_groups(layer.w_hh(), h);
        let (consumer, consumed) = if let Some(next) = layers.get(l + 1) {
            (Consumer::NextLayer, Some(column_groups(next.w_ih(), h)))
        } else if let Some(head) = model.head() {
            (Consumer::Head, Some(column_groups(head.weight(), h)))
        } else {
            (Consumer::Output, None)
        };
        let within = |g: &Group| g.max_abs <= threshold;
        let mut report = LayerReport {
            input: layer.input(),
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
    IssReport {
        threshold,
        layers: reports,
        has_head: model.head().is_some(),
        head_output: model.head().map_or(0, |h| h.output()),
    }
}
