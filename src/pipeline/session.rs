//! [`Session`]: builds, verifies and prepares points, and times them.

use super::gemm::GemmInstance;
use super::instance::Instance;
use super::machine::{Machine, PoolError};
use super::point::{IssSettings, Point, Source};
use crate::exec::{ExecError, Executor, GemmExecutor, RnnExecutor};
use crate::hardware::{Limits, git_revision};
use crate::mode::Mode;
use crate::model::Inputs;
use crate::report::{Row, Status, now_rfc3339};

/// What a point runs: a recurrent model, or one sparse GEMM problem.
pub enum PointExecutor {
    /// Every recurrent point (dense, iss, csr).
    Lstm(Box<RnnExecutor>),
    /// A sparse GEMM point.
    Gemm(Box<GemmExecutor>),
}

impl PointExecutor {
    /// One forward pass over `inputs`.
    pub fn run(&mut self, inputs: &Inputs) -> Result<&[f32], ExecError> {
        match self {
            PointExecutor::Lstm(e) => e.run(inputs),
            PointExecutor::Gemm(e) => e.run(inputs),
        }
    }
}

/// A point ready to time: its executor (weights prepared), its inputs and
/// its row with everything but the timing filled in.
pub struct Prepared {
    /// The prepared executor; time `exec.run(&inputs)`.
    pub exec: PointExecutor,
    /// The point's inputs (`seq` x `batch`).
    pub inputs: Inputs,
    /// The row to complete with [`Row::completed`].
    pub row: Row,
    point: Point,
}

/// Builds and verifies the models of points and prepares their executors:
/// one model source's instances at a time, reused by consecutive points of
/// that source. `issbench run`, the sweep and the criterion bench all
/// measure through it, so they measure exactly the same thing.
pub struct Session {
    machine: Machine,
    preset: String,
    current: Option<((Source, IssSettings), Result<Instance, Status>)>,
    gemm: Option<GemmInstance>,
}

impl Session {
    /// A session whose rows say `preset` (a preset or config name, or `run`).
    pub fn new(preset: &str) -> Session {
        Session {
            machine: Machine::new(),
            preset: preset.to_string(),
            current: None,
            gemm: None,
        }
    }

    /// The machine measured on.
    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    /// Names the machine in every row from now on (`--label`).
    pub fn set_label(&mut self, label: &str) {
        self.machine.label = label.to_string();
    }

    /// Threads a point uses (0 means all logical cores).
    pub fn threads(&self, point: &Point) -> usize {
        self.machine.threads(point.threads)
    }

    /// The rayon pool of `threads` workers (started, and the machine's
    /// limits measured on it, on first use).
    pub fn pool(&mut self, threads: usize) -> Result<&rayon::ThreadPool, PoolError> {
        Ok(self.machine.pool(threads)?.0)
    }

    /// The row `point` starts from: the machine and the point, nothing
    /// measured or derived from the model yet. Its [`Row::key`] is the
    /// point's key.
    pub fn base_row(&self, point: &Point) -> Row {
        Row {
            suite_version: env!("CARGO_PKG_VERSION").to_string(),
            git_rev: git_revision().to_string(),
            timestamp: now_rfc3339(),
            host: self.machine.host.clone(),
            label: self.machine.label.clone(),
            cpu_model: self.machine.cpu.clone(),
            simd: self.machine.simd.clone(),
            logical_cores: self.machine.cores,
            memory_gib: self.machine.memory_gib,
            threads: self.threads(point),
            backend: point.mode_backend().describe(),
            preset: self.preset.clone(),
            model: point.source.name(),
            source: point.source.id(),
            input: 0,
            layers: 0,
            cell: String::new(),
            hidden_full: String::new(),
            hidden_kept: String::new(),
            kept_fraction: match point.source {
                Source::Synthetic { kept, .. } => kept,
                _ => 1.0,
            },
            sparsity: 0.0,
            mode: point.mode,
            block: if point.mode == Mode::Bsr {
                point.block.to_string()
            } else {
                String::new()
            },
            precision: point.precision,
            batch: point.batch,
            seq: point.seq,
            head: point.head,
            vocab: 0,
            head_output: 0,
            nonzero_weights: 0,
            macs_per_step: 0,
            median_ns: 0.0,
            min_ns: 0.0,
            max_ns: 0.0,
            ci_low_ns: 0.0,
            ci_high_ns: 0.0,
            runs: 0,
            gflops: 0.0,
            speedup_vs_dense: None,
            ideal_speedup: 1.0,
            verify_max_rel: None,
            max_abs_err: None,
            max_rel_err: None,
            peak_gflops: 0.0,
            bandwidth_gbs: 0.0,
            mean_ns: 0.0,
            stddev_ns: 0.0,
            cv: 0.0,
            p90_ns: None,
            p99_ns: None,
            rounds: 0,
            speedup_ci_low: None,
            speedup_ci_high: None,
            flags: String::new(),
            repeat: point.repeat,
            shard: String::new(),
            status: Status::Ok,
        }
    }

    /// The key of `point`'s row ([`Row::key`]), known before anything is built.
    pub fn key(&self, point: &Point) -> String {
        self.base_row(point).key()
    }

    /// Builds (or reuses) the point's models, verifies its mode against
    /// dense once, and prepares its executor. A point that cannot run
    /// comes back as its failed row.
    pub fn prepare(&mut self, point: &Point) -> Result<Result<Prepared, Row>, PoolError> {
        let threads = self.threads(point);
        let (_, limits) = self.machine.pool(threads)?;
        let base = Row {
            peak_gflops: limits.peak_gflops,
            bandwidth_gbs: limits.bandwidth_gbs,
            ..self.base_row(point)
        };
        let prepared = if let Source::Gemm(shape) = point.source {
            if self.gemm.as_ref().is_none_or(|g| g.shape != shape) {
                // Free the previous matrix (and any model instance) first.
                (self.gemm, self.current) = (None, None);
                if let Err(status) = super::instance::check_memory(&point.source) {
                    return Ok(Err(base.with_status(status)));
                }
                self.gemm = Some(GemmInstance::build(shape));
            }
            let inst = self.gemm.as_mut().expect("just set");
            let pool = self.machine.pool(threads)?.0;
            pool.install(|| prepare_gemm(inst, point, base.clone()))
        } else {
            let id = (point.source.clone(), point.iss);
            if self.current.as_ref().is_none_or(|(current, _)| *current != id) {
                // Free the previous instance (and any matrix) before building the next one.
                (self.gemm, self.current) = (None, None);
                self.current = Some((id, Instance::build(&point.source, point.iss)));
            }
            let pool = self.machine.pool(threads)?.0;
            match &mut self.current.as_mut().expect("just set").1 {
                Ok(inst) => pool.install(|| prepare_model(inst, point, base.clone())),
                Err(e) => Err(e.clone()),
            }
        };
        Ok(prepared.map_err(|status| base.with_status(status)))
    }

    /// Returns a point's executor to the cache for the next point of the same model.
    pub fn give_back(&mut self, prepared: Prepared) {
        let Prepared { exec, point, .. } = prepared;
        match exec {
            PointExecutor::Lstm(exec) => {
                if let Some((_, Ok(inst))) = &mut self.current {
                    inst.give_back(&point, *exec);
                }
            }
            PointExecutor::Gemm(exec) => {
                if let Some(inst) = &mut self.gemm {
                    inst.give_back(point.mode_backend(), *exec);
                }
            }
        }
    }

    /// The ONNX graph of what `point` runs (its mode's model, with or
    /// without head), and the embedding size its token inputs are drawn
    /// below, for the peer.
    pub fn export_onnx(&mut self, point: &Point) -> Result<(Vec<u8>, Option<usize>), Status> {
        match &mut self.current {
            Some((_, Ok(inst))) => {
                let model = inst.model(point)?;
                let vocab = if point.head { model.embedding().map(|e| e.vocab()) } else { None };
                let bytes = crate::onnx::export_for(model, !point.head, Some(point.seq)).map_err(Status::failed_with)?;
                Ok((bytes, vocab))
            }
            _ => Err(Status::failed("no model instance")),
        }
    }

    /// The full model of the current source, if one is built.
    pub(super) fn full_model(&self) -> Option<&crate::model::Model> {
        match &self.current {
            Some((_, Ok(inst))) => Some(&inst.full),
            _ => None,
        }
    }

    /// The machine's limits at `threads` threads.
    pub fn limits(&mut self, threads: usize) -> Result<Limits, PoolError> {
        Ok(self.machine.pool(threads)?.1)
    }
}

/// Verifies and prepares one recurrent point (inside its thread pool).
fn prepare_model(inst: &mut Instance, point: &Point, base: Row) -> Result<Prepared, Status> {
    if point.mode.is_peer() {
        return Err(Status::failed(format!("{} is a peer's mode", point.mode)));
    }
    let verify_max_rel = inst.verify(point)?;
    let full = &inst.full;
    let dense_macs = full.macs_per_step(!point.head);
    let full_weights = full.lstm_weights();
    let (input, layers, hidden_full) = (full.input_size(), full.layers().len(), full.hidden_sizes());
    let cell = full.cell_label();
    let kept = inst.kept_sizes();
    let (full_label, kept_label) = (full.sizes_label(&hidden_full), full.sizes_label(&kept));
    let (mut exec, work) = inst.executor(point, point.precision)?;
    let inputs = Inputs::random_for(work.vocab, work.width, point.seq, point.batch, 1);
    let (max_abs_err, max_rel_err) = match point.precision_tolerance() {
        None => (None, None),
        Some(tolerance) => {
            let measured = inst.precision_error(&mut exec, point, &inputs);
            let (abs, rel) = match measured {
                Ok(e) => e,
                Err(status) => {
                    inst.give_back(point, exec);
                    return Err(status);
                }
            };
            // A NaN error fails too.
            if rel.is_nan() || rel > tolerance {
                inst.give_back(point, exec);
                return Err(Status::not_equivalent(format!(
                    "{} {}: outputs differ from fp32 by up to {abs:.3e} ({rel:.3e} of the largest), above the tolerance {tolerance:.1e}",
                    point.mode, point.precision
                )));
            }
            (Some(abs), Some(rel))
        }
    };
    let cut = point.mode.is_sparse() && super::flags::input_cut(inst.model(point)?);
    let row = Row {
        flags: if cut { super::flags::INPUT_CUT.to_string() } else { String::new() },
        input,
        layers,
        cell,
        hidden_full: full_label,
        hidden_kept: kept_label,
        kept_fraction: kept.iter().sum::<usize>() as f64 / hidden_full.iter().sum::<usize>() as f64,
        sparsity: 1.0 - work.multiplied as f64 / full_weights as f64,
        nonzero_weights: work.multiplied + work.head_weights,
        macs_per_step: work.macs,
        ideal_speedup: dense_macs as f64 / work.macs as f64,
        verify_max_rel,
        max_abs_err,
        max_rel_err,
        backend: exec.backend(),
        vocab: work.vocab.unwrap_or(0),
        head_output: work.head_output,
        ..base
    };
    Ok(Prepared {
        exec: PointExecutor::Lstm(Box::new(exec)),
        inputs,
        row,
        point: point.clone(),
    })
}

/// Verifies and prepares one sparse GEMM point (inside its thread pool):
/// `n` = the point's batch, at seq 1.
fn prepare_gemm(inst: &mut GemmInstance, point: &Point, base: Row) -> Result<Prepared, Status> {
    if !matches!(point.mode, Mode::Dense | Mode::Csr | Mode::Bsr) {
        return Err(Status::failed(format!(
            "a GEMM problem runs dense, csr and bsr, not {}",
            point.mode
        )));
    }
    let verify_max_rel = inst.verify(point.mode, point.mode_backend(), point.backend)?;
    let (m, k) = (inst.shape.m, inst.shape.k);
    let exec = inst.executor(point.mode, point.mode_backend())?;
    let multiplied = if point.mode.is_sparse() { inst.nonzeros } else { m * k };
    let row = Row {
        input: k,
        hidden_full: m.to_string(),
        sparsity: 1.0 - multiplied as f64 / (m * k) as f64,
        nonzero_weights: multiplied,
        macs_per_step: multiplied,
        ideal_speedup: (m * k) as f64 / multiplied.max(1) as f64,
        verify_max_rel,
        backend: exec.backend(),
        ..base
    };
    Ok(Prepared {
        exec: PointExecutor::Gemm(Box::new(exec)),
        inputs: Inputs::random_for(None, k, point.seq, point.batch, 1),
        row,
        point: point.clone(),
    })
}
