//! Magnitude pruning: the unstructured sparsity ISS is compared against,
//! and its block-sparse form (`block.rs`).
//!
//! Only the LSTM weights (`w_ih`, `w_hh`) are pruned; biases, embedding and
//! head are left alone, as in the paper's comparison.

mod block;

use thiserror::Error;

pub use block::{block_magnitude, lstm_block_weights, match_iss_blocks, prune_blocks};

use crate::iss::IssReport;
use crate::model::{Model, ModelError};

/// Why pruning failed.
#[derive(Debug, Error)]
pub enum PruneError {
    /// Sparsity outside [0, 1].
    #[error("sparsity must be between 0 and 1, got {0}")]
    Sparsity(f64),
    /// A block without rows or columns.
    #[error("a block of {r} x {c} holds no weights")]
    Block { r: usize, c: usize },
    /// Rebuilding the model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Which weights compete for survival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Each matrix keeps its own largest weights (same sparsity everywhere).
    PerMatrix,
    /// All LSTM weights compete together.
    Global,
}

/// Zeroes the smallest-magnitude LSTM weights so that `sparsity` of them
/// (rounded to whole weights) are zero.
pub fn magnitude(model: &Model, sparsity: f64, scope: Scope) -> Result<Model, PruneError> {
    if !(0.0..=1.0).contains(&sparsity) {
        return Err(PruneError::Sparsity(sparsity));
    }
    let keep_of = |n: usize| n - (sparsity * n as f64).round() as usize;
    let mut mats = lstm_weights(model);
    match scope {
        Scope::Global => {
            let total = mats.iter().map(|m| m.len()).sum();
            keep_largest(&mut mats.iter_mut().map(|m| m.as_mut_slice()).collect::<Vec<_>>(), keep_of(total));
        }
        Scope::PerMatrix => {
            for m in &mut mats {
                let keep = keep_of(m.len());
                keep_largest(&mut [m.as_mut_slice()], keep);
            }
        }
    }
    rebuild(model, mats)
}

/// The unstructured counterpart of an ISS model: `model` globally
/// magnitude-pruned to exactly as many nonzero LSTM weights as the
/// ISS-compacted model has weights (so `csr` and `iss` compare at equal
/// weight count); `shrink_output` as for the compaction.
pub fn match_iss(model: &Model, report: &IssReport, shrink_output: bool) -> Result<Model, PruneError> {
    // Weights of a layer of h units with input n are 4h(n + h): its
    // multiply-adds per step.
    let keep = report.cost_kept(shrink_output).lstm_macs;
    let mut mats = lstm_weights(model);
    // Weights within the ISS threshold (denormals, say) are the zeros the
    // analysis took them for: they never count as kept.
    let floor = report.threshold();
    for m in &mut mats {
        m.iter_mut().filter(|w| w.abs() <= floor).for_each(|w| *w = 0.0);
    }
    keep_largest(&mut mats.iter_mut().map(|m| m.as_mut_slice()).collect::<Vec<_>>(), keep);
    rebuild(model, mats)
}

/// Nonzero recurrent weights of `model` (every direction's `w_ih` and `w_hh`).
pub fn lstm_nonzeros(model: &Model) -> usize {
    model
        .directions()
        .map(|(_, _, r)| r.w_ih().iter().chain(r.w_hh()).filter(|&&w| w != 0.0).count())
        .sum()
}

/// Copies of every `w_ih` and `w_hh`, direction by direction.
fn lstm_weights(model: &Model) -> Vec<Vec<f32>> {
    model
        .directions()
        .flat_map(|(_, _, r)| [r.w_ih().to_vec(), r.w_hh().to_vec()])
        .collect()
}

/// The shape `[rows, cols]` of every matrix [`lstm_weights`] copies.
fn lstm_shapes(model: &Model) -> Vec<(usize, usize)> {
    model
        .directions()
        .flat_map(|(_, _, r)| {
            let h = r.hidden();
            [(r.cell().input_gates() * h, r.input()), (r.cell().recurrent_gates() * h, h)]
        })
        .collect()
}

/// `model` with its recurrent matrices replaced by `mats` (in
/// [`lstm_weights`]' order); biases, embedding and head unchanged.
fn rebuild(model: &Model, mats: Vec<Vec<f32>>) -> Result<Model, PruneError> {
    let mut mats = mats.into_iter();
    let mut layers = Vec::with_capacity(model.layers().len());
    for (l, layer) in model.layers().iter().enumerate() {
        let mut dirs = Vec::new();
        for (d, r) in layer.directions() {
            let (w_ih, w_hh) = (mats.next().expect("two per direction"), mats.next().expect("two per direction"));
            let name = format!("layer {l} {}", d.name());
            dirs.push(r.rebuilt(&name, r.input(), r.hidden(), w_ih, w_hh, r.bias().to_vec(), r.bias_hh().to_vec())?);
        }
        let mut dirs = dirs.into_iter();
        let fw = dirs.next().expect("a forward direction");
        layers.push(layer.with_directions(&format!("layer {l}"), fw, dirs.next())?);
    }
    let rebuilt = Model::new(model.name(), model.embedding().cloned(), layers, model.head().cloned())?;
    Ok(if model.is_tied() { rebuilt.tied()? } else { rebuilt })
}

/// Zeroes all but the `keep` largest-magnitude values across `parts`
/// (ties at the cut are kept in order of appearance, so exactly
/// `min(keep, nonzeros)` nonzeros survive).
fn keep_largest(parts: &mut [&mut [f32]], keep: usize) {
    let mut mags: Vec<f32> = parts.iter().flat_map(|p| p.iter().map(|w| w.abs())).collect();
    if keep >= mags.len() {
        return;
    }
    if keep == 0 {
        parts.iter_mut().for_each(|p| p.fill(0.0));
        return;
    }
    // The keep-th largest magnitude is the cut.
    let (_, cut, _) = mags.select_nth_unstable_by(keep - 1, |a, b| b.total_cmp(a));
    let cut = *cut;
    let above = parts.iter().flat_map(|p| p.iter()).filter(|w| w.abs() > cut).count();
    let mut ties_left = keep - above;
    for p in parts.iter_mut() {
        for w in p.iter_mut() {
            let m = w.abs();
            if m < cut || (m == cut && ties_left == 0) {
                *w = 0.0;
            } else if m == cut {
                ties_left -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_largest_keeps_exactly_the_largest() {
        let mut a = vec![0.5, -3.0, 1.0, 1.0, 0.0];
        let mut b = vec![-1.0, 2.0];
        keep_largest(&mut [&mut a, &mut b], 3);
        // -3, 2 and the first of the tied 1.0s survive.
        assert_eq!(a, vec![0.0, -3.0, 1.0, 0.0, 0.0]);
        assert_eq!(b, vec![0.0, 2.0]);
        let mut c = vec![1.0, 2.0];
        keep_largest(&mut [&mut c], 0);
        assert_eq!(c, vec![0.0, 0.0]);
    }
}
