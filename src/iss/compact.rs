//! Slicing a model down to the ISS components it keeps.

use super::{IssError, IssReport};
use crate::model::{Linear, LstmLayer, Model};

/// A compacted model and the units it kept.
#[derive(Debug, Clone)]
pub struct Compacted {
    /// The reduced model: a regular dense LSTM of smaller widths.
    pub model: Model,
    /// For each layer, the indices of the full model's units that were kept
    /// (sorted); unit `j` of the reduced layer is unit `kept[l][j]` of the full one.
    pub kept: Vec<Vec<usize>>,
    /// Whether a last layer without consumer was shrunk, in which case the
    /// reduced model outputs the kept units only (`kept.last()`).
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

/// The four gate rows `k, h+k, 2h+k, 3h+k` for every kept `k`, gate by gate.
fn gate_rows(kept: &[usize], hidden: usize) -> Vec<usize> {
    (0..4).flat_map(|g| kept.iter().map(move |&k| g * hidden + k)).collect()
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
    for (l, units) in kept.iter().enumerate() {
        if units.is_empty() {
            return Err(IssError::NothingKept {
                layer: l,
                hidden: layers[l].hidden(),
            });
        }
        check_outgoing_zero(model, l, units, report.threshold())?;
    }

    let mut reduced = Vec::with_capacity(layers.len());
    for (l, layer) in layers.iter().enumerate() {
        let (h, n_in) = (layer.hidden(), layer.input());
        let all_inputs: Vec<usize>;
        let in_cols: &[usize] = if l == 0 {
            all_inputs = (0..n_in).collect();
            &all_inputs
        } else {
            &kept[l - 1]
        };
        let rows = gate_rows(&kept[l], h);
        reduced.push(LstmLayer::new(
            &format!("layer {l}"),
            in_cols.len(),
            kept[l].len(),
            gather(layer.w_ih(), n_in, &rows, in_cols),
            gather(layer.w_hh(), h, &rows, &kept[l]),
            rows.iter().map(|&r| layer.bias()[r]).collect(),
        )?);
    }
    let head = match model.head() {
        Some(head) => {
            let last = kept.last().expect("a model has layers");
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
    let model = Model::new(model.name(), model.embedding().cloned(), reduced, head)?;
    Ok(Compacted {
        model,
        kept,
        shrink_output,
    })
}

/// Fails if a unit of layer `l` outside `kept` has an outgoing weight above `threshold`.
fn check_outgoing_zero(model: &Model, l: usize, kept: &[usize], threshold: f32) -> Result<(), IssError> {
    let layers = model.layers();
    let h = layers[l].hidden();
    let mut is_kept = vec![false; h];
    for &k in kept {
        is_kept[k] = true;
    }
    let mut consumers: Vec<&[f32]> = vec![layers[l].w_hh()];
    if let Some(next) = layers.get(l + 1) {
        consumers.push(next.w_ih());
    } else if let Some(head) = model.head() {
        consumers.push(head.weight());
    }
    for w in consumers {
        for row in w.chunks_exact(h) {
            for (unit, &value) in row.iter().enumerate() {
                if !is_kept[unit] && value.abs() > threshold {
                    return Err(IssError::NotRemovable {
                        layer: l,
                        unit,
                        value,
                        threshold,
                    });
                }
            }
        }
    }
    Ok(())
}
