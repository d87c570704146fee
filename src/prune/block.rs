//! Block magnitude pruning: the block-sparse counterpart of [`super::magnitude`]
//! (Narang et al., "Block-Sparse Recurrent Neural Networks", 2017).
//!
//! Each LSTM weight matrix (`w_ih [4h, in]` and `w_hh [4h, h]` of every
//! layer, canonical gate-major rows) is tiled from its top left into blocks
//! of `r x c`; a block crossing the last row or column holds only its part
//! inside the matrix. Every block of every matrix competes globally, scored
//! by its weights' L2 norm divided by the square root of their count (the
//! root mean square, so a smaller edge block is not penalised for its size;
//! among whole blocks the order is that of the plain norm). The highest
//! scores are kept (ties in order of appearance: matrix, then block row,
//! then block column); everything else is zeroed. Biases, embedding and head
//! are untouched.
//!
//! **Weight count.** A pruned model's *kept weights* are the weight
//! positions inside the matrices covered by kept blocks (an edge block
//! counts only its positions inside the matrix). Pruning to a target keeps
//! exactly the target: whole blocks in score order while they fit, then,
//! where the next block would overshoot, only that block's largest weights
//! up to the target (at most one block is kept in part). With trained
//! weights (no exact zeros) the kept weights are the model's nonzeros, so
//! [`match_iss_blocks`] has exactly as many nonzero LSTM weights as the ISS
//! model has weights and as [`super::match_iss`]'s CSR twin. The BSR kernel
//! multiplies more than that: whole blocks, including the zero padding of
//! edge blocks and the rest of the partly kept block
//! ([`crate::kernels::BsrMatrix::stored_values`]).

use super::{PruneError, keep_largest, lstm_shapes, lstm_weights, rebuild};
use crate::iss::IssReport;
use crate::model::Model;

/// Zeroes the lowest-scoring `block`s of the LSTM weights so that exactly
/// `sparsity` of the weights (rounded to whole weights) are pruned.
pub fn block_magnitude(model: &Model, block: (usize, usize), sparsity: f64) -> Result<Model, PruneError> {
    if !(0.0..=1.0).contains(&sparsity) {
        return Err(PruneError::Sparsity(sparsity));
    }
    let total = model.lstm_weights();
    prune_model(model, block, total - (sparsity * total as f64).round() as usize)
}

/// The block-sparse counterpart of an ISS model: `model` block-pruned to
/// exactly as many kept LSTM weights as the ISS-compacted model has weights
/// (see the module documentation); `shrink_output` as for the compaction.
pub fn match_iss_blocks(model: &Model, report: &IssReport, shrink_output: bool, block: (usize, usize)) -> Result<Model, PruneError> {
    prune_model(model, block, report.cost_kept(shrink_output).lstm_macs)
}

/// LSTM weight positions covered by `block`s that hold any nonzero: the
/// kept weights of a block-pruned model (see the module documentation)
/// when none of its kept weights is zero.
pub fn lstm_block_weights(model: &Model, block: (usize, usize)) -> usize {
    let (r, c) = block;
    if r == 0 || c == 0 {
        return 0;
    }
    let mut count = 0;
    for (_, _, dir) in model.directions() {
        let h = dir.hidden();
        for (w, rows, cols) in [
            (dir.w_ih(), dir.cell().input_gates() * h, dir.input()),
            (dir.w_hh(), dir.cell().recurrent_gates() * h, h),
        ] {
            for_each_block(rows, cols, block, |rs, cs| {
                if rs
                    .clone()
                    .any(|i| w[i * cols + cs.start..i * cols + cs.end].iter().any(|&v| v != 0.0))
                {
                    count += rs.len() * cs.len();
                }
            });
        }
    }
    count
}

/// Prunes the row-major `rows x cols` matrix `w` in place to exactly `keep`
/// kept weights in `block`s, as [`block_magnitude`] does a model's
/// matrices (for benchmarks of single matrices).
pub fn prune_blocks(w: &mut [f32], rows: usize, cols: usize, block: (usize, usize), keep: usize) -> Result<(), PruneError> {
    assert_eq!(w.len(), rows * cols, "matrix is {} long, not {rows} x {cols}", w.len());
    keep_blocks(&mut [Matrix { w, rows, cols }], block, keep)
}

/// A matrix taking part in the pruning.
struct Matrix<'a> {
    w: &'a mut [f32],
    rows: usize,
    cols: usize,
}

fn prune_model(model: &Model, block: (usize, usize), keep: usize) -> Result<Model, PruneError> {
    let mut mats = lstm_weights(model);
    let shapes = lstm_shapes(model);
    let mut matrices: Vec<Matrix> = mats
        .iter_mut()
        .zip(shapes)
        .map(|(w, (rows, cols))| Matrix { w, rows, cols })
        .collect();
    keep_blocks(&mut matrices, block, keep)?;
    rebuild(model, mats)
}

/// Calls `f(rows, cols)` for each block of a `rows x cols` matrix, row-major
/// block order, with the block's row and column ranges inside the matrix.
fn for_each_block(rows: usize, cols: usize, (r, c): (usize, usize), mut f: impl FnMut(std::ops::Range<usize>, std::ops::Range<usize>)) {
    for i0 in (0..rows).step_by(r) {
        for j0 in (0..cols).step_by(c) {
            f(i0..(i0 + r).min(rows), j0..(j0 + c).min(cols));
        }
    }
}

/// Keeps exactly `keep` weights of `mats` in whole blocks by score (the
/// last block kept in part where it would overshoot), zeroing the rest.
fn keep_blocks(mats: &mut [Matrix], block: (usize, usize), keep: usize) -> Result<(), PruneError> {
    let (r, c) = block;
    if r == 0 || c == 0 {
        return Err(PruneError::Block { r, c });
    }
    // Every block: (score, matrix, first row, first column).
    let mut blocks = Vec::new();
    for (m, mat) in mats.iter().enumerate() {
        for_each_block(mat.rows, mat.cols, block, |rows, cols| {
            let (mut sum, n) = (0.0f64, rows.len() * cols.len());
            for i in rows.clone() {
                for &v in &mat.w[i * mat.cols + cols.start..i * mat.cols + cols.end] {
                    sum += v as f64 * v as f64;
                }
            }
            blocks.push(((sum / n as f64).sqrt(), m, rows.start, cols.start));
        });
    }
    // Highest score first; a stable sort keeps ties in order of appearance.
    blocks.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut kept = 0;
    let mut keep_mask: Vec<Vec<bool>> = mats.iter().map(|m| vec![false; m.w.len()]).collect();
    for &(_, m, i0, j0) in &blocks {
        if kept == keep {
            break;
        }
        let mat = &mut mats[m];
        let (rows, cols) = (i0..(i0 + r).min(mat.rows), j0..(j0 + c).min(mat.cols));
        let size = rows.len() * cols.len();
        let take = size.min(keep - kept);
        if take < size {
            // The block that would overshoot keeps its largest weights.
            let mut values: Vec<f32> = rows
                .clone()
                .flat_map(|i| mat.w[i * mat.cols + cols.start..i * mat.cols + cols.end].iter().copied())
                .collect();
            keep_largest(&mut [values.as_mut_slice()], take);
            let mut kept_values = values.into_iter();
            for i in rows.clone() {
                for j in cols.clone() {
                    mat.w[i * mat.cols + j] = kept_values.next().expect("one value per position");
                }
            }
        }
        for i in rows {
            keep_mask[m][i * mat.cols + cols.start..i * mat.cols + cols.end].fill(true);
        }
        kept += take;
    }
    for (mat, mask) in mats.iter_mut().zip(&keep_mask) {
        mat.w.iter_mut().zip(mask).filter(|(_, k)| !**k).for_each(|(w, _)| *w = 0.0);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iss::{analyze, compact};
    use crate::model::synthetic::SynthSpec;
    use crate::prune::{Scope, lstm_nonzeros, magnitude};

    fn spec(input: usize, layers: &[usize], kept: Option<Vec<usize>>) -> Model {
        SynthSpec {
            name: "t".into(),
            input,
            layers: layers.to_vec(),
            vocab: Some(7),
            seed: 33,
            kept,
            ..Default::default()
        }
        .build()
        .unwrap()
    }

    /// Per matrix of the model (w_ih, w_hh by layer): its rows, columns and weights.
    fn matrices(model: &Model) -> Vec<(usize, usize, Vec<f32>)> {
        model
            .directions()
            .flat_map(|(_, _, l)| {
                [
                    (4 * l.hidden(), l.input(), l.w_ih().to_vec()),
                    (4 * l.hidden(), l.hidden(), l.w_hh().to_vec()),
                ]
            })
            .collect()
    }

    /// Checks the block structure of `pruned` against `model`: every block is
    /// kept whole (weights unchanged) or zeroed, except at most one kept in
    /// part; every whole kept block scores at least as high as every zeroed
    /// one. Returns the kept weights (whole blocks' positions plus the
    /// partial block's nonzeros).
    fn check_blocks(model: &Model, pruned: &Model, block: (usize, usize)) -> usize {
        let (mut kept, mut partial) = (0, 0);
        let (mut kept_min, mut removed_max) = (f64::INFINITY, 0.0f64);
        for ((rows, cols, orig), (_, _, got)) in matrices(model).into_iter().zip(matrices(pruned)) {
            for_each_block(rows, cols, block, |rs, cs| {
                let positions: Vec<usize> = rs.clone().flat_map(|i| cs.clone().map(move |j| i * cols + j)).collect();
                let score = (positions.iter().map(|&p| (orig[p] as f64).powi(2)).sum::<f64>() / positions.len() as f64).sqrt();
                let same = positions.iter().filter(|&&p| got[p] == orig[p]).count();
                let zero = positions.iter().filter(|&&p| got[p] == 0.0).count();
                if same == positions.len() && zero < positions.len() {
                    kept += positions.len();
                    kept_min = kept_min.min(score);
                } else if zero == positions.len() {
                    removed_max = removed_max.max(score);
                } else {
                    // Kept in part: its surviving weights are unchanged.
                    assert!(positions.iter().all(|&p| got[p] == 0.0 || got[p] == orig[p]));
                    partial += 1;
                    kept += positions.len() - zero;
                }
            });
        }
        assert!(partial <= 1, "{block:?}: {partial} blocks kept in part");
        assert!(
            kept_min >= removed_max,
            "{block:?}: a kept block scores {kept_min}, a removed one {removed_max}"
        );
        kept
    }

    #[test]
    fn block_pruning_keeps_exactly_the_target_in_whole_blocks() {
        let model = spec(9, &[11, 6], None);
        let total = model.lstm_weights();
        for block in [(1, 1), (1, 4), (4, 4), (3, 5), (8, 8), (16, 1), (1, 16), (32, 32)] {
            for sparsity in [0.0, 0.3, 0.9, 1.0] {
                let pruned = block_magnitude(&model, block, sparsity).unwrap();
                let target = total - (sparsity * total as f64).round() as usize;
                // The synthetic weights have no zeros: kept weights are nonzeros.
                assert_eq!(lstm_nonzeros(&pruned), target, "{block:?} at {sparsity}");
                assert_eq!(check_blocks(&model, &pruned, block), target, "{block:?} at {sparsity}");
                assert_eq!(pruned.head(), model.head());
                assert_eq!(pruned.embedding(), model.embedding());
                assert_eq!(pruned.layers()[1].fw().bias(), model.layers()[1].fw().bias());
            }
        }
        assert!(block_magnitude(&model, (4, 4), 1.5).is_err());
        assert!(block_magnitude(&model, (0, 4), 0.5).is_err());
    }

    #[test]
    fn one_by_one_blocks_are_global_magnitude_pruning() {
        let model = spec(10, &[12, 8], None);
        for sparsity in [0.25, 0.8] {
            assert_eq!(
                block_magnitude(&model, (1, 1), sparsity).unwrap(),
                magnitude(&model, sparsity, Scope::Global).unwrap()
            );
        }
    }

    #[test]
    fn matched_block_pruning_has_the_iss_weight_count() {
        // The planted model with its zeros made tiny (the analysis at a
        // threshold above them finds the same structure), so that every
        // kept weight is a nonzero.
        let planted = spec(9, &[16, 12], Some(vec![6, 5]));
        let tiny = |w: &[f32]| -> Vec<f32> { w.iter().map(|&v| if v == 0.0 { 1e-7 } else { v }).collect() };
        let layers = planted
            .layers()
            .iter()
            .map(|l| l.fw())
            .map(|l| crate::model::LstmLayer::new("l", l.input(), l.hidden(), tiny(l.w_ih()), tiny(l.w_hh()), l.bias().to_vec()).unwrap())
            .collect();
        let model = Model::new("t", planted.embedding().cloned(), layers, planted.head().cloned()).unwrap();
        let report = analyze(&model, 1e-6);
        assert_eq!(report.kept_sizes(false), vec![6, 5]);
        let weights = compact(&model, &report).unwrap().model.lstm_weights();
        for block in [(4, 4), (16, 16), (1, 4), (16, 1), (5, 3)] {
            let pruned = match_iss_blocks(&model, &report, false, block).unwrap();
            assert_eq!(lstm_nonzeros(&pruned), weights, "{block:?}");
            assert_eq!(check_blocks(&model, &pruned, block), weights, "{block:?}");
            assert!(lstm_block_weights(&pruned, block) >= weights);
        }
    }

    #[test]
    fn matrices_prune_like_models() {
        let (rows, cols) = (13, 10);
        let mut w: Vec<f32> = (0..rows * cols).map(|i| ((i * 37 % 101) as f32 - 50.5) / 7.0).collect();
        prune_blocks(&mut w, rows, cols, (4, 4), 37).unwrap();
        assert_eq!(w.iter().filter(|&&v| v != 0.0).count(), 37);
        // Every block is whole or empty but one (no weight here is zero).
        let mut partial = 0;
        for_each_block(rows, cols, (4, 4), |rs, cs| {
            let kept = rs
                .clone()
                .flat_map(|i| cs.clone().map(move |j| i * cols + j))
                .filter(|&p| w[p] != 0.0)
                .count();
            partial += (kept != 0 && kept != rs.len() * cs.len()) as usize;
        });
        assert!(partial <= 1, "{partial} blocks kept in part");
        let mut dense = vec![1.0f32; 12];
        prune_blocks(&mut dense, 3, 4, (2, 2), 0).unwrap();
        assert!(dense.iter().all(|&v| v == 0.0));
    }
}
