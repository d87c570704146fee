//! Slicing a model down to the ISS components it keeps, every direction of
//! every layer on its own, and the consumers' input columns with them.

use super::{IssError, IssReport};
use crate::model::{Embedding, Linear, Model, Recurrent};

/// A compacted model and the units it kept.
#[derive(Debug, Clone)]
pub struct Compacted {
    /// The reduced model: a regular dense model of smaller widths.
    pub model: Model,
    /// For each direction (in [`Model::directions`]' order), the indices of
    /// the full model's units that were kept (sorted); unit `j` of the
    /// reduced direction is unit `kept[i][j]` of the full one.
    pub kept: Vec<Vec<usize>>,
    /// Whether a last layer without consumer was shrunk, in which case the
    /// reduced model outputs the kept units only.
    pub shrink_output: bool,
}

/// `w[rows, cols]` (row-major, `width` columns) restricted to the given
/// rows and columns, in that order.
fn gather(w: &[f32], width: usize, rows: &[usize], cols: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * cols.len());
    for &r in rows {
        let row = &w[r * width..(r + 1) * width];
        out.extend(cols.iter().map(|&c| row[c]));
    }
    out
}

/// Every gate row of the kept units, gate by gate: rows `g·h + k` for the
/// `gates` gates and every kept `k`.
fn gate_rows(kept: &[usize], hidden: usize, gates: usize) -> Vec<usize> {
    (0..gates).flat_map(|g| kept.iter().map(move |&k| g * hidden + k)).collect()
}

/// Compacts `model` to the components `report` marks removable, keeping a
/// last layer that feeds the model output at full width.
pub fn compact(model: &Model, report: &IssReport) -> Result<Compacted, IssError> {
    compact_with(model, report, false)
}

/// Like [`compact`]; with `shrink_output`, a last layer without consumer is
/// shrunk too and the reduced model outputs only its kept units.
///
/// Every removed component's outgoing weights are checked again in `model`
/// itself, so a component with outgoing weight above the report's threshold
/// can never be removed, whatever report is passed.
pub fn compact_with(model: &Model, report: &IssReport, shrink_output: bool) -> Result<Compacted, IssError> {
    report.check_matches(model)?;
    let layers = model.layers();
    let kept: Vec<Vec<usize>> = report.layers().iter().map(|l| l.kept_units(shrink_output)).collect();
    let bidirectional = model.is_bidirectional();
    for (r, units) in report.layers().iter().zip(&kept) {
        if units.is_empty() {
            return Err(IssError::NothingKept {
                layer: r.name(bidirectional),
                hidden: r.hidden,
            });
        }
    }
    // Each layer's kept output columns: its directions' kept units, at
    // their offsets in the layer's output.
    let mut outputs: Vec<Vec<usize>> = Vec::with_capacity(layers.len());
    let mut at = 0;
    for layer in layers {
        let mut cols = Vec::new();
        for (d, _) in layer.directions() {
            cols.extend(kept[at].iter().map(|&k| layer.offset(d) + k));
            at += 1;
        }
        outputs.push(cols);
    }
    check_outgoing_zero(model, report, &kept)?;

    let last = outputs.last().expect("a model has layers");
    let mut reduced = Vec::with_capacity(layers.len());
    let mut at = 0;
    for (l, layer) in layers.iter().enumerate() {
        let all_inputs: Vec<usize>;
        let in_cols: &[usize] = match l {
            0 if model.is_tied() => last,
            0 => {
                all_inputs = (0..layer.input()).collect();
                &all_inputs
            }
            _ => &outputs[l - 1],
        };
        let mut dirs: Vec<Recurrent> = Vec::new();
        for (d, dir) in layer.directions() {
            let units = &kept[at];
            at += 1;
            let (h, cell) = (dir.hidden(), dir.cell());
            let rows_in = gate_rows(units, h, cell.input_gates());
            let rows_rec = gate_rows(units, h, cell.recurrent_gates());
            let name = if layer.is_bidirectional() {
                format!("layer {l} {}", d.name())
            } else {
                format!("layer {l}")
            };
            let bias_hh = if dir.bias_hh().is_empty() {
                Vec::new()
            } else {
                rows_rec.iter().map(|&r| dir.bias_hh()[r]).collect()
            };
            dirs.push(dir.rebuilt(
                &name,
                in_cols.len(),
                units.len(),
                gather(dir.w_ih(), dir.input(), &rows_in, in_cols),
                gather(dir.w_hh(), h, &rows_rec, units),
                rows_rec.iter().map(|&r| dir.bias()[r]).collect(),
                bias_hh,
            )?);
        }
        let mut dirs = dirs.into_iter();
        let fw = dirs.next().expect("a layer has a forward direction");
        reduced.push(layer.with_directions(&format!("layer {l}"), fw, dirs.next())?);
    }
    let head = match model.head() {
        Some(head) => {
            let all_rows: Vec<usize> = (0..head.output()).collect();
            Some(Linear::new(
                "head",
                last.len(),
                head.output(),
                gather(head.weight(), head.input(), &all_rows, last),
                head.bias().to_vec(),
            )?)
        }
        None => None,
    };
    let embedding = match (model.embedding(), model.is_tied()) {
        (Some(e), true) => {
            let all_rows: Vec<usize> = (0..e.vocab()).collect();
            Some(Embedding::new(
                "embedding",
                e.vocab(),
                last.len(),
                gather(e.table(), e.dim(), &all_rows, last),
            )?)
        }
        (e, _) => e.cloned(),
    };
    let reduced = Model::new(model.name(), embedding, reduced, head)?;
    let reduced = if model.is_tied() { reduced.tied()? } else { reduced };
    Ok(Compacted {
        model: reduced,
        kept,
        shrink_output,
    })
}

/// Fails if a unit outside `kept` has an outgoing weight above the
/// report's threshold: its column of `w_hh`, or its column in a consumer
/// (every direction of the next layer, or the head).
fn check_outgoing_zero(model: &Model, report: &IssReport, kept: &[Vec<usize>]) -> Result<(), IssError> {
    let threshold = report.threshold();
    let layers = model.layers();
    let bidirectional = model.is_bidirectional();
    for ((_, d, dir), (r, units)) in model.directions().zip(report.layers().iter().zip(kept)) {
        let l = r.layer;
        let h = dir.hidden();
        let mut is_kept = vec![false; h];
        for &k in units {
            is_kept[k] = true;
        }
        let offset = layers[l].offset(d);
        // (matrix, its width, where this direction's units start in it)
        let mut consumers: Vec<(&[f32], usize, usize)> = vec![(dir.w_hh(), h, 0)];
        if let Some(next) = layers.get(l + 1) {
            consumers.extend(next.directions().map(|(_, n)| (n.w_ih(), n.input(), offset)));
        } else if let Some(head) = model.head() {
            consumers.push((head.weight(), head.input(), offset));
        }
        for (w, width, start) in consumers {
            for row in w.chunks_exact(width) {
                for (unit, &value) in row[start..start + h].iter().enumerate() {
                    if !is_kept[unit] && value.abs() > threshold {
                        return Err(IssError::NotRemovable {
                            layer: r.name(bidirectional),
                            unit,
                            value,
                            threshold,
                        });
                    }
                }
            }
        }
    }
    Ok(())
}
