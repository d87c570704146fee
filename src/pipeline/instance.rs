//! One model source's instances: the full model, its ISS compaction and its
//! magnitude-pruned twin, each built on first use and verified once.

use std::collections::HashMap;

use super::point::{IssSettings, Point, Source, WEIGHT_COPIES};
use crate::checkpoint::open_model;
use crate::exec::{Backend, RnnExecutor};
use crate::iss::{
    Compacted, DEFAULT_TOLERANCE, IssReport, against_dense, analyze, compact_with, verification_inputs, verify, within_tolerance,
};
use crate::mode::BlockShape;
use crate::mode::Mode;
use crate::model::synthetic::SynthSpec;
use crate::model::{Inputs, Model};
use crate::precision::Precision;
use crate::prune::{Scope, block_magnitude, lstm_block_weights, lstm_nonzeros, magnitude, match_iss, match_iss_blocks};
use crate::report::Status;

/// What a prepared executor's model multiplies per step, kept so that the
/// model itself need not be kept twice.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Work {
    /// Recurrent weights multiplied (nonzeros for csr).
    pub multiplied: usize,
    /// Head weights multiplied (0 without head).
    pub head_weights: usize,
    /// The head's outputs (0 without head).
    pub head_output: usize,
    /// Multiply-adds per step and sequence.
    pub macs: usize,
    /// Embedding size when the model takes tokens.
    pub vocab: Option<usize>,
    /// Width of the first layer's input.
    pub width: usize,
}

impl Work {
    /// The work of running `point`'s `model`. csr counts the nonzero
    /// recurrent weights; bsr the weights its kept blocks cover (the same
    /// count as csr's and iss's where the model has no zeros of its own; the
    /// kernel also multiplies the blocks' padding, which its time shows).
    pub fn of(model: &Model, point: &Point) -> Work {
        let (mode, head) = (point.mode, point.head);
        let multiplied = match mode {
            Mode::Csr => lstm_nonzeros(model),
            Mode::Bsr => lstm_block_weights(model, point.block.pair()),
            _ => model.lstm_weights(),
        };
        Work {
            multiplied,
            head_weights: if head { model.head().map_or(0, |h| h.weight().len()) } else { 0 },
            head_output: if head { model.head().map_or(0, |h| h.output()) } else { 0 },
            macs: model.macs_per_step(!head) - model.lstm_macs_per_step() + multiplied,
            vocab: if head { model.embedding().map(|e| e.vocab()) } else { None },
            width: model.input_size(),
        }
    }
}

/// Prepared executors by (mode, head, backend, precision): `None` while lent out.
type Executors = HashMap<(Mode, bool, Backend, Precision), (Option<RnnExecutor>, Work)>;

/// Which pruned twin of the full model: the sparse mode, the block shape
/// (bsr) and the sparsity target (`None`: the ISS model's weight count).
type Pruning = (Mode, Option<BlockShape>, Option<u64>);

/// A model source's instances (see the module documentation).
pub(crate) struct Instance {
    /// The full model, with embedding and head when it has them.
    pub full: Model,
    /// The ISS analysis of `full`, made once.
    pub report: IssReport,
    /// Whether compaction shrinks a last layer without head.
    pub shrink_output: bool,
    compacted: Option<Compacted>,
    /// The pruned models (csr, and bsr per block shape).
    pruned: HashMap<Pruning, Model>,
    /// Verification error (max relative) per (pruning or mode, head).
    verified: HashMap<(Pruning, bool), f64>,
    executors: Executors,
}

/// The full model `source` names (not for GEMM problems).
fn build_full(source: &Source) -> Result<Model, Status> {
    match source {
        Source::Named(name, load) => open_model(name, load).map_err(Status::failed_with),
        Source::Synthetic {
            hidden,
            layers,
            kept,
            cell,
            bidirectional,
        } => {
            let keep = ((*hidden as f64 * kept).round() as usize).clamp(1, *hidden);
            let directions = if *bidirectional { 2 } else { 1 };
            SynthSpec {
                name: source.name(),
                input: *hidden,
                layers: vec![*hidden; *layers],
                vocab: None,
                seed: 0x5EE9 ^ (*hidden as u64) << 8 ^ *layers as u64,
                kept: (keep < *hidden).then(|| vec![keep; *layers * directions]),
                cell: *cell,
                bidirectional: *bidirectional,
                ..Default::default()
            }
            .build()
            .map_err(Status::failed_with)
        }
        Source::Gemm(_) => Err(Status::failed(format!(
            "{} is a GEMM problem, not a recurrent model",
            source.name()
        ))),
    }
}

/// Fails a source whose weights, in the copies a point holds, need more
/// memory than the machine has available (a failed row, not an abort).
pub(crate) fn check_memory(source: &Source) -> Result<(), Status> {
    let Some(bytes) = source.weight_bytes() else { return Ok(()) };
    let needed = bytes.saturating_mul(WEIGHT_COPIES);
    let available = crate::hardware::available_memory();
    if needed > available {
        return Err(Status::failed(format!(
            "{}: its weights need about {:.1} GB in the copies a point holds, {:.1} GB is available",
            source.name(),
            needed as f64 / 1e9,
            available as f64 / 1e9
        )));
    }
    Ok(())
}

impl Instance {
    /// Loads or generates `source`'s full model and analyzes it. Synthetic
    /// models always shrink their last layer: it is planted like the others.
    pub fn build(source: &Source, iss: IssSettings) -> Result<Instance, Status> {
        check_memory(source)?;
        let full = build_full(source)?;
        let report = analyze(&full, iss.threshold);
        Ok(Instance {
            full,
            report,
            shrink_output: iss.shrink_output || matches!(source, Source::Synthetic { .. }),
            compacted: None,
            pruned: HashMap::new(),
            verified: HashMap::new(),
            executors: HashMap::new(),
        })
    }

    /// Hidden sizes compaction keeps.
    pub fn kept_sizes(&self) -> Vec<usize> {
        self.report.kept_sizes(self.shrink_output)
    }

    /// The ISS compaction of `full`, built on first use.
    pub fn compacted(&mut self) -> Result<&Compacted, Status> {
        if self.compacted.is_none() {
            let c = compact_with(&self.full, &self.report, self.shrink_output).map_err(Status::failed_with)?;
            self.compacted = Some(c);
        }
        Ok(self.compacted.as_ref().expect("just built"))
    }

    /// The model `point`'s mode runs (full, compacted or pruned), built on
    /// first use. csr and bsr prune to the point's sparsity or, without
    /// one, to the ISS model's weight count; bsr in the point's blocks.
    pub fn model(&mut self, point: &Point) -> Result<&Model, Status> {
        match point.mode.model_mode() {
            Mode::Iss => Ok(&self.compacted()?.model),
            Mode::Csr | Mode::Bsr => {
                let key = pruning(point);
                if !self.pruned.contains_key(&key) {
                    let block = point.block.pair();
                    let pruned = match (point.mode, point.csr_sparsity) {
                        (Mode::Csr, Some(s)) => magnitude(&self.full, s, Scope::Global),
                        (Mode::Csr, None) => match_iss(&self.full, &self.report, self.shrink_output),
                        (_, Some(s)) => block_magnitude(&self.full, block, s),
                        (_, None) => match_iss_blocks(&self.full, &self.report, self.shrink_output, block),
                    }
                    .map_err(Status::failed_with)?;
                    // One sparsity target per mode and block at a time: an
                    // earlier target's model and executors go.
                    let stale: Vec<Pruning> = self.pruned.keys().filter(|k| (k.0, k.1) == (key.0, key.1)).copied().collect();
                    for k in stale {
                        self.pruned.remove(&k);
                        self.verified.retain(|(p, _), _| *p != k);
                    }
                    let backend = point.mode_backend();
                    self.executors.retain(|(m, _, b, _), _| !(*m == point.mode && *b == backend));
                    self.pruned.insert(key, pruned);
                }
                Ok(&self.pruned[&key])
            }
            _ => Ok(&self.full),
        }
    }

    /// Verifies `point`'s mode against dense once (per head setting, and
    /// block shape) and returns the max relative error (`None` for dense):
    /// iss compares the compacted model with the full one, csr and bsr
    /// their sparse kernel with the dense kernel on the pruned weights.
    /// Above the tolerance the point fails.
    pub fn verify(&mut self, point: &Point) -> Result<Option<f64>, Status> {
        let (mode, head) = (point.mode, point.head);
        if mode == Mode::Dense {
            return Ok(None);
        }
        let key = (pruning(point), head);
        if let Some(&e) = self.verified.get(&key) {
            return Ok(Some(e));
        }
        let eq = match mode {
            Mode::Iss => {
                let inputs = verification_inputs(&self.full, true);
                self.compacted()?;
                verify(&self.full, self.compacted.as_ref().expect("just built"), &inputs)
            }
            _ => {
                let backend = point.mode_backend();
                let pruned = self.model(point)?;
                let mut exec = RnnExecutor::prepare(pruned, backend, !head, mode.name());
                against_dense(pruned, &mut exec, !head, &verification_inputs(pruned, head))
            }
        }
        .map_err(Status::failed_with)?;
        let eq = within_tolerance(eq, DEFAULT_TOLERANCE).map_err(|e| Status::not_equivalent(format!("{mode}: {e}")))?;
        self.verified.insert(key, eq.max_rel);
        Ok(Some(eq.max_rel))
    }

    /// The prepared executor of `point` at `precision` (taken out of the
    /// cache, or prepared now), and its model's work.
    pub fn executor(&mut self, point: &Point, precision: Precision) -> Result<(RnnExecutor, Work), Status> {
        let (mode, head, backend) = (point.mode, point.head, point.mode_backend());
        let key = (mode, head, backend, precision);
        if let Some((slot @ Some(_), work)) = self.executors.get_mut(&key) {
            return Ok((slot.take().expect("matched Some"), *work));
        }
        let model = self.model(point)?;
        let work = Work::of(model, point);
        let exec = RnnExecutor::prepare_at(model, backend, precision, !head, mode.name()).map_err(Status::failed_with)?;
        self.executors.insert(key, (None, work));
        Ok((exec, work))
    }

    /// Returns an executor lent by [`Instance::executor`] for `point`.
    pub fn give_back(&mut self, point: &Point, exec: RnnExecutor) {
        let key = (point.mode, point.head, point.mode_backend(), exec.precision());
        if let Some(slot) = self.executors.get_mut(&key) {
            slot.0 = Some(exec);
        }
    }

    /// How far `exec` (bf16 or int8) strays from the fp32 executor of
    /// `point` on `inputs` (the point's own, the whole
    /// sequence): the largest absolute output difference, and that over
    /// the largest fp32 output.
    pub fn precision_error(&mut self, exec: &mut RnnExecutor, point: &Point, inputs: &Inputs) -> Result<(f64, f64), Status> {
        use crate::exec::Executor;
        let mode = point.mode;
        let (mut fp32, _) = self.executor(point, Precision::Fp32)?;
        let want = fp32.run(inputs).map(<[f32]>::to_vec).map_err(Status::failed_with);
        self.give_back(point, fp32);
        let want = want?;
        let got = exec.run(inputs).map_err(Status::failed_with)?;
        let abs = got.iter().zip(&want).map(|(a, b)| (a - b).abs() as f64).fold(0.0, f64::max);
        let scale = want.iter().map(|v| v.abs() as f64).fold(0.0, f64::max);
        let rel = if scale > 0.0 { abs / scale } else { abs };
        if got.iter().any(|v| !v.is_finite()) {
            return Err(Status::not_equivalent(format!("{mode} {}: non-finite outputs", exec.precision())));
        }
        Ok((abs, rel))
    }
}

/// The pruned twin a point runs (its mode alone for iss and dense).
fn pruning(point: &Point) -> Pruning {
    let block = (point.mode == Mode::Bsr).then_some(point.block);
    let target = point.mode.is_sparse().then(|| point.csr_sparsity.map(f64::to_bits)).flatten();
    (point.mode, block, target)
}
