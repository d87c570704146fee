//! Proof by execution that a compacted model computes what the full one does.

use serde::Serialize;

use super::{Compacted, IssError, IssReport, analyze, compact_with};
use crate::exec::{Backend, Executor, RnnExecutor};
use crate::model::{Inputs, Model};

/// How far the compacted model's outputs are from the full model's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Equivalence {
    /// Largest absolute difference of any output.
    pub max_abs: f64,
    /// `max_abs` relative to the largest full-model output magnitude.
    pub max_rel: f64,
}

/// Runs both models over `inputs` (with the dense executor) and compares
/// their outputs: logits with a head, else the last layer's hidden states
/// (only the kept units when the compaction shrank the output layer).
pub fn verify(full: &Model, compacted: &Compacted, inputs: &Inputs) -> Result<Equivalence, IssError> {
    let want = RnnExecutor::prepare(full, Backend::Packed, false, "dense").run(inputs)?.to_vec();
    let mut exec = RnnExecutor::prepare(&compacted.model, Backend::Packed, false, "iss");
    let got = exec.run(inputs)?;
    let width_full = full.output_size(false);
    let columns: Vec<usize> = if full.head().is_none() && compacted.shrink_output {
        // The kept units of each direction of the last layer, at that
        // direction's offset in the layer's output.
        let last = full.layers().last().expect("a model has layers");
        let n = last.directions().count();
        let kept = &compacted.kept[compacted.kept.len().saturating_sub(n)..];
        last.directions()
            .zip(kept)
            .flat_map(|((d, _), units)| units.iter().map(move |&u| last.offset(d) + u))
            .collect()
    } else {
        (0..width_full).collect()
    };
    let width_got = columns.len();
    if got.len() * width_full != want.len() * width_got {
        return Err(IssError::ReportMismatch(format!(
            "output widths differ: full {width_full}, compacted {}",
            compacted.model.output_size(false)
        )));
    }
    let (mut max_abs, mut scale) = (0.0f64, 0.0f64);
    for (w_row, g_row) in want.chunks_exact(width_full).zip(got.chunks_exact(width_got)) {
        for (&c, &g) in columns.iter().zip(g_row) {
            let w = w_row[c] as f64;
            scale = scale.max(w.abs());
            max_abs = max_abs.max((w - g as f64).abs());
        }
    }
    Ok(Equivalence {
        max_abs,
        max_rel: if scale > 0.0 { max_abs / scale } else { max_abs },
    })
}

/// [`verify`], failing with [`IssError::NotEquivalent`] above `tolerance`
/// (relative).
pub fn verify_within(full: &Model, compacted: &Compacted, inputs: &Inputs, tolerance: f64) -> Result<Equivalence, IssError> {
    within_tolerance(verify(full, compacted, inputs)?, tolerance)
}

/// Time steps of the inputs every verification runs on.
pub const VERIFY_SEQ: usize = 8;
/// Sequences of the inputs every verification runs on.
pub const VERIFY_BATCH: usize = 4;

/// The inputs every verification of `model` runs on: [`VERIFY_SEQ`] steps
/// of [`VERIFY_BATCH`] random sequences, token ids when the model is run
/// with its embedding, else features (a fixed seed: the same every time).
pub fn verification_inputs(model: &Model, with_embedding: bool) -> Inputs {
    let vocab = model.embedding().filter(|_| with_embedding).map(|e| e.vocab());
    Inputs::random_for(vocab, model.input_size(), VERIFY_SEQ, VERIFY_BATCH, 7)
}

/// The one tolerance rule: `e` if its relative error is at most
/// `tolerance`, else [`IssError::NotEquivalent`] (a NaN error fails too).
pub fn within_tolerance(e: Equivalence, tolerance: f64) -> Result<Equivalence, IssError> {
    if e.max_rel.is_nan() || e.max_rel > tolerance {
        return Err(IssError::NotEquivalent {
            max_abs: e.max_abs,
            max_rel: e.max_rel,
            tolerance,
        });
    }
    Ok(e)
}

/// Largest absolute difference between two output buffers of the same
/// shape, and that difference relative to the largest `|want|`.
pub fn compare_outputs(want: &[f32], got: &[f32]) -> Equivalence {
    let scale = want.iter().fold(0.0f64, |m, &v| m.max(v.abs() as f64));
    let max_abs = if want.len() == got.len() {
        want.iter().zip(got).map(|(&w, &g)| (w as f64 - g as f64).abs()).fold(0.0, f64::max)
    } else {
        f64::INFINITY
    };
    Equivalence {
        max_abs,
        max_rel: if scale > 0.0 { max_abs / scale } else { max_abs },
    }
}

/// Runs `exec` (prepared from `model`, such as a CSR executor) and the dense
/// packed executor of the same `model` over `inputs`, and compares their
/// outputs: proof that a kernel computes what the dense one does.
pub fn against_dense(model: &Model, exec: &mut dyn Executor, layers_only: bool, inputs: &Inputs) -> Result<Equivalence, IssError> {
    let want = RnnExecutor::prepare(model, Backend::Packed, layers_only, "dense")
        .run(inputs)?
        .to_vec();
    let got = exec.run(inputs)?;
    Ok(compare_outputs(&want, got))
}

/// A compaction proved equivalent: the analysis, the reduced model and how
/// close its outputs came.
#[derive(Debug, Clone)]
pub struct Verified {
    pub report: IssReport,
    pub compacted: Compacted,
    pub equivalence: Equivalence,
}

/// Analyzes `full` at `threshold`, compacts it (a last layer without head
/// too when `shrink_output`) and verifies the result on
/// [`verification_inputs`] within `tolerance`: what every command that
/// writes or runs a compacted model does first.
pub fn compact_verified(full: &Model, threshold: f32, shrink_output: bool, tolerance: f64) -> Result<Verified, IssError> {
    let report = analyze(full, threshold);
    let compacted = compact_with(full, &report, shrink_output)?;
    let equivalence = within_tolerance(verify(full, &compacted, &verification_inputs(full, true))?, tolerance)?;
    Ok(Verified {
        report,
        compacted,
        equivalence,
    })
}
