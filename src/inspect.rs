//! What `issbench inspect` reports about a checkpoint: how it was read, the
//! role of every tensor, and per layer what ISS compaction would keep, with
//! weights and multiply-adds before and after.

use serde::Serialize;

use crate::checkpoint::{Checkpoint, TensorUse};
use crate::iss::{Consumer, analyze};

/// One direction of one recurrent layer: its ISS summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerSummary {
    /// Layer index, input side first.
    pub layer: usize,
    /// `fw` or `bw` for a direction of a bidirectional layer, `null` for a
    /// unidirectional layer.
    pub direction: Option<&'static str>,
    /// The cell kind (`lstm`, `gru`, `rhn depth 10`, ...).
    pub cell: String,
    /// Input width.
    pub input: usize,
    /// Hidden units in the file.
    pub hidden: usize,
    /// Hidden units after compaction.
    pub kept: usize,
    /// Units compaction removes (sorted).
    pub removed: Vec<usize>,
    /// Units whose outgoing weights are all zero (removable).
    pub removable: usize,
    /// Removable units whose incoming weights are zero too (whole ISS components).
    pub fully_zero: usize,
    /// Units kept although one of their weight groups is zero.
    pub partly_zero: usize,
    /// What reads the layer's output: `next layer`, `head` or `output`.
    pub consumer: &'static str,
}

/// The whole report; the JSON form of `issbench inspect`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inspection {
    /// File format that was read.
    pub format: &'static str,
    /// Naming scheme that was applied.
    pub layout: &'static str,
    /// TensorFlow forget bias folded into the f gate, if the layout has one.
    pub forget_bias: Option<f32>,
    /// ISS threshold on |w|.
    pub threshold: f32,
    /// Whether a last layer without a head may shrink.
    pub shrink_output: bool,
    /// Embedding `[vocab, dim]`, if any.
    pub embedding: Option<[usize; 2]>,
    /// Output projection `[out, in]`, if any.
    pub head: Option<[usize; 2]>,
    /// Per-layer summaries.
    pub layers: Vec<LayerSummary>,
    /// Weights and biases of the LSTM layers and head, before compaction.
    pub params_full: usize,
    /// The same after compaction.
    pub params_kept: usize,
    /// Multiply-adds per time step and sequence (LSTM layers and head), before.
    pub macs_full: usize,
    /// The same after compaction.
    pub macs_kept: usize,
    /// Ratio of LSTM-layer multiply-adds, full / kept.
    pub ideal_speedup: f64,
    /// The same with the head included.
    pub ideal_speedup_with_head: f64,
    /// Every tensor in the file and its role.
    pub tensors: Vec<TensorUse>,
    /// Conversions and assumptions made while loading.
    pub notes: Vec<String>,
}

/// Analyzes a loaded checkpoint.
pub fn inspect(ck: &Checkpoint, threshold: f32, shrink_output: bool) -> Inspection {
    let model = &ck.model;
    let report = analyze(model, threshold);
    let layers = report
        .layers()
        .iter()
        .map(|l| {
            let kept = l.kept_units(shrink_output);
            LayerSummary {
                layer: l.layer,
                direction: model.layers()[l.layer].is_bidirectional().then(|| l.direction.name()),
                cell: l.cell.describe(),
                input: l.input,
                hidden: l.hidden,
                kept: kept.len(),
                removed: (0..l.hidden).filter(|u| kept.binary_search(u).is_err()).collect(),
                removable: l.removable.len(),
                fully_zero: l.fully_zero.len(),
                partly_zero: l.partly_zero.len(),
                consumer: match l.consumer {
                    Consumer::NextLayer => "next layer",
                    Consumer::Head => "head",
                    Consumer::Output => "output",
                },
            }
        })
        .collect();
    let (full, kept) = (report.cost_full(), report.cost_kept(shrink_output));
    Inspection {
        format: ck.format.name(),
        layout: ck.layout.name(),
        forget_bias: ck.forget_bias,
        threshold,
        shrink_output,
        embedding: model.embedding().map(|e| [e.vocab(), e.dim()]),
        head: model.head().map(|h| [h.output(), h.input()]),
        layers,
        params_full: full.params_with_head,
        params_kept: kept.params_with_head,
        macs_full: full.macs_with_head,
        macs_kept: kept.macs_with_head,
        ideal_speedup: report.ideal_speedup(shrink_output),
        ideal_speedup_with_head: report.ideal_speedup_with_head(shrink_output),
        tensors: ck.tensors.clone(),
        notes: ck.notes.clone(),
    }
}

impl Inspection {
    /// The report for people, as `issbench inspect` prints it for `path`.
    pub fn text(&self, path: &std::path::Path) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let o = &mut out;
        let _ = writeln!(o, "file     {}", path.display());
        let _ = writeln!(o, "format   {}  layout {}", self.format, self.layout);
        if let Some(fb) = self.forget_bias {
            let _ = writeln!(o, "forget   bias {fb} folded into the f gate");
        }
        let _ = writeln!(o, "\ntensors");
        let width = self.tensors.iter().map(|t| t.name.len()).max().unwrap_or(0);
        for t in &self.tensors {
            let _ = writeln!(
                o,
                "  {:width$}  {:>14}  {:4}  {}",
                t.name,
                format!("{:?}", t.shape),
                t.dtype,
                t.role
            );
        }
        if let Some([vocab, dim]) = self.embedding {
            let _ = writeln!(o, "\nembedding {vocab} x {dim}");
        }
        let mut cells: Vec<&str> = self.layers.iter().map(|l| l.cell.as_str()).collect();
        cells.dedup();
        let _ = writeln!(o, "\ncells    {}", cells.join(", "));
        let _ = writeln!(
            o,
            "{:>5} {:>6} {:>6} {:>6} {:>9} {:>10} {:>11}  consumer / removed units (threshold {:e})",
            "layer", "input", "hidden", "kept", "removable", "fully-zero", "partly-zero", self.threshold
        );
        for l in &self.layers {
            let layer = match l.direction {
                Some(d) => format!("{} {d}", l.layer),
                None => l.layer.to_string(),
            };
            let _ = writeln!(
                o,
                "{:>5} {:>6} {:>6} {:>6} {:>9} {:>10} {:>11}  {} / {}",
                layer,
                l.input,
                l.hidden,
                l.kept,
                l.removable,
                l.fully_zero,
                l.partly_zero,
                l.consumer,
                ranges(&l.removed)
            );
        }
        if let Some([out, input]) = self.head {
            let _ = writeln!(o, "head     {input} -> {out}");
        }
        let _ = writeln!(
            o,
            "\nweights  {} -> {}   multiply-adds per step {} -> {}",
            self.params_full, self.params_kept, self.macs_full, self.macs_kept
        );
        let _ = writeln!(
            o,
            "ideal    speedup {:.2}x (recurrent layers), {:.2}x with head",
            self.ideal_speedup, self.ideal_speedup_with_head
        );
        for n in &self.notes {
            let _ = writeln!(o, "note     {n}");
        }
        out
    }
}

/// Sorted unit indices as ranges, `0-3, 7, 9-20`, cut after about a line
/// (the JSON form lists them all).
fn ranges(units: &[usize]) -> String {
    if units.is_empty() {
        return "none".into();
    }
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < units.len() {
        let mut j = i;
        while j + 1 < units.len() && units[j + 1] == units[j] + 1 {
            j += 1;
        }
        parts.push(if j > i {
            format!("{}-{}", units[i], units[j])
        } else {
            units[i].to_string()
        });
        i = j + 1;
    }
    let mut text = String::new();
    for (n, p) in parts.iter().enumerate() {
        if text.len() + p.len() > 60 {
            text.push_str(&format!(", ... ({} more ranges; all in --format json)", parts.len() - n));
            break;
        }
        if n > 0 {
            text.push_str(", ");
        }
        text.push_str(p);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::ranges;

    #[test]
    fn removed_units_print_as_ranges() {
        assert_eq!(ranges(&[]), "none");
        assert_eq!(ranges(&[0, 1, 2, 3, 7, 9, 10]), "0-3, 7, 9-10");
        let many: Vec<usize> = (0..2000).filter(|u| u % 3 != 0).collect();
        let text = ranges(&many);
        assert!(text.len() < 120 && text.contains("more ranges; all in --format json"), "{text}");
    }
}
