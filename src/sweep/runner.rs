//! Runs a sweep: builds each model instance once (full, ISS-compacted,
//! magnitude-pruned), verifies the iss and csr models against dense once,
//! times every point with the same code path, and appends one CSV row per
//! point as soon as it is measured.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use thiserror::Error;

use super::spec::{Mode, Point, Source, SweepSpec};
use crate::checkpoint::{LoadOptions, open_model};
use crate::exec::{Backend, Executor, LstmExecutor};
use crate::hardware::{Limits, cpu_model, git_revision, host_name, measure_limits};
use crate::iss::{DEFAULT_THRESHOLD, DEFAULT_TOLERANCE, against_dense, analyze, compact_with, verify};
use crate::kernels::simd::{SimdLevel, cpu_features};
use crate::measure::{Budget, time_runs};
use crate::model::synthetic::SynthSpec;
use crate::model::{Inputs, Model};
use crate::prune::{lstm_nonzeros, match_iss};
use crate::report::{CsvAppender, ReportError, Row, read_rows};

/// A sweep that could not run at all (single points fail into their rows).
#[derive(Debug, Error)]
pub enum SweepError {
    /// The results file.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// A thread pool could not start.
    #[error("thread pool: {0}")]
    Pool(String),
}

/// Called after each point with its index (from 1), the number of points
/// and the row written.
pub type RowCallback = Box<dyn FnMut(usize, usize, &Row)>;

/// How to run a sweep.
pub struct SweepOptions {
    /// The CSV to append to.
    pub csv: PathBuf,
    /// Skip points already in the CSV (same host, model, mode, batch, seq, threads, head).
    pub resume: bool,
    /// Set to stop after the point in progress (Ctrl-C).
    pub stop: Arc<AtomicBool>,
    /// Called after each point with its index, the total and the row (progress display).
    pub on_row: RowCallback,
}

/// What a sweep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SweepSummary {
    /// Points measured and written.
    pub measured: usize,
    /// Points that failed (written with `status = failed: ...`).
    pub failed: usize,
    /// Points skipped because `--resume` found them in the file.
    pub skipped: usize,
    /// Whether the stop flag ended the sweep early.
    pub interrupted: bool,
}

/// Everything about the machine that goes in every row.
struct Machine {
    host: String,
    cpu: String,
    simd: String,
    cores: usize,
    limits: HashMap<usize, Limits>,
    pools: HashMap<usize, rayon::ThreadPool>,
}

impl Machine {
    fn new() -> Machine {
        Machine {
            host: host_name(),
            cpu: cpu_model(),
            simd: format!("{} ({})", SimdLevel::detect().name(), cpu_features()),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            limits: HashMap::new(),
            pools: HashMap::new(),
        }
    }
    fn threads(&self, requested: usize) -> usize {
        if requested == 0 { self.cores } else { requested }
    }
    /// The pool of `threads` workers and the limits measured on it.
    fn pool(&mut self, threads: usize) -> Result<(&rayon::ThreadPool, Limits), SweepError> {
        if !self.pools.contains_key(&threads) {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .map_err(|e| SweepError::Pool(e.to_string()))?;
            let limits = pool.install(measure_limits);
            self.limits.insert(threads, limits);
            self.pools.insert(threads, pool);
        }
        Ok((&self.pools[&threads], self.limits[&threads]))
    }
}

/// One model instance and what each mode runs, built on first use.
struct Instance {
    name: String,
    /// The full model, with embedding and head when it has them.
    full: Model,
    kept_sizes: Vec<usize>,
    compacted: Option<Model>,
    pruned: Option<Model>,
    /// Verification error per (mode, head).
    verified: HashMap<(Mode, bool), f64>,
    executors: HashMap<(Mode, bool), (LstmExecutor, Facts)>,
}

/// What a prepared executor's model does per step, kept so that the model
/// itself need not be kept twice.
#[derive(Clone, Copy)]
struct Facts {
    /// LSTM weights multiplied (nonzeros for csr).
    nonzero: usize,
    /// Head weights multiplied (0 without head).
    head_weights: usize,
    /// Multiply-adds per step and sequence.
    macs: usize,
    /// Embedding size when the model takes tokens.
    vocab: Option<usize>,
    /// Width of the first layer's input.
    width: usize,
}

fn source_name(source: &Source, kept_fraction: f64) -> String {
    match source {
        Source::Named(n) => std::path::Path::new(n)
            .file_name()
            .map_or_else(|| n.clone(), |f| f.to_string_lossy().into_owned()),
        Source::Synthetic { hidden, layers } => format!("lstm{layers}x{hidden}-k{kept_fraction}"),
    }
}

fn build_instance(source: &Source, kept_fraction: f64) -> Result<Instance, String> {
    let name = source_name(source, kept_fraction);
    let full = match source {
        Source::Named(n) => open_model(n, &LoadOptions::default()).map_err(|e| e.to_string())?,
        Source::Synthetic { hidden, layers } => {
            let kept = ((*hidden as f64 * kept_fraction).round() as usize).clamp(1, *hidden);
            SynthSpec {
                name: name.clone(),
                input: *hidden,
                layers: vec![*hidden; *layers],
                vocab: None,
                seed: 0x5EE9 ^ (*hidden as u64) << 8 ^ *layers as u64,
                kept: (kept < *hidden).then(|| vec![kept; *layers]),
            }
            .build()
            .map_err(|e| e.to_string())?
        }
    };
    let shrink = full.head().is_none();
    let kept_sizes = analyze(&full, DEFAULT_THRESHOLD).kept_sizes(shrink);
    Ok(Instance {
        name,
        full,
        kept_sizes,
        compacted: None,
        pruned: None,
        verified: HashMap::new(),
        executors: HashMap::new(),
    })
}

fn sizes(v: &[usize]) -> String {
    v.iter().map(|h| h.to_string()).collect::<Vec<_>>().join("/")
}

fn lstm_weights(m: &Model) -> usize {
    m.layers().iter().map(|l| l.w_ih().len() + l.w_hh().len()).sum()
}

impl Instance {
    /// The model `mode` runs (full, compacted or pruned), built on first use.
    fn model(&mut self, mode: Mode) -> Result<&Model, String> {
        let shrink = self.full.head().is_none();
        match mode {
            Mode::Dense => Ok(&self.full),
            Mode::Iss => {
                if self.compacted.is_none() {
                    let report = analyze(&self.full, DEFAULT_THRESHOLD);
                    self.compacted = Some(compact_with(&self.full, &report, shrink).map_err(|e| e.to_string())?.model);
                }
                Ok(self.compacted.as_ref().expect("just built"))
            }
            Mode::Csr => {
                if self.pruned.is_none() {
                    let report = analyze(&self.full, DEFAULT_THRESHOLD);
                    self.pruned = Some(match_iss(&self.full, &report).map_err(|e| e.to_string())?);
                }
                Ok(self.pruned.as_ref().expect("just built"))
            }
        }
    }

    /// Verifies `mode` against dense once (with or without head): iss
    /// compares the compacted model with the full one, csr the CSR kernel with
    /// the dense kernel on the pruned weights.
    fn verify(&mut self, mode: Mode, head: bool) -> Result<Option<f64>, String> {
        if mode == Mode::Dense {
            return Ok(None);
        }
        if let Some(&e) = self.verified.get(&(mode, head)) {
            return Ok(Some(e));
        }
        let shrink = self.full.head().is_none();
        let eq = match mode {
            Mode::Iss => {
                let report = analyze(&self.full, DEFAULT_THRESHOLD);
                let compacted = compact_with(&self.full, &report, shrink).map_err(|e| e.to_string())?;
                let inputs = Inputs::random(&self.full, 4, 2, 7);
                verify(&self.full, &compacted, &inputs).map_err(|e| e.to_string())?
            }
            _ => {
                let pruned = self.model(Mode::Csr)?.clone();
                let pruned = if head { pruned } else { pruned.layers_only() };
                let mut exec = LstmExecutor::prepare(&pruned, Backend::Csr, !head, "csr");
                let inputs = Inputs::random(&pruned, 4, 2, 7);
                against_dense(&pruned, &mut exec, !head, &inputs).map_err(|e| e.to_string())?
            }
        };
        if eq.max_rel.is_nan() || eq.max_rel > DEFAULT_TOLERANCE {
            return Err(format!(
                "{} not equivalent to dense: max relative error {:e} (tolerance {DEFAULT_TOLERANCE:e})",
                mode.name(),
                eq.max_rel
            ));
        }
        self.verified.insert((mode, head), eq.max_rel);
        Ok(Some(eq.max_rel))
    }

    /// The prepared executor for `mode` and `head`, and its model's facts.
    fn executor(&mut self, mode: Mode, head: bool, backend: Backend) -> Result<(&mut LstmExecutor, Facts), String> {
        if !self.executors.contains_key(&(mode, head)) {
            let model = self.model(mode)?;
            let facts = Facts {
                nonzero: if mode == Mode::Csr {
                    lstm_nonzeros(model)
                } else {
                    lstm_weights(model)
                },
                head_weights: if head { model.head().map_or(0, |h| h.weight().len()) } else { 0 },
                macs: match mode {
                    Mode::Csr => model.macs_per_step(!head) - model.lstm_macs_per_step() + lstm_nonzeros(model),
                    _ => model.macs_per_step(!head),
                },
                vocab: if head { model.embedding().map(|e| e.vocab()) } else { None },
                width: model.input_size(),
            };
            let backend = if mode == Mode::Csr { Backend::Csr } else { backend };
            let exec = LstmExecutor::prepare(model, backend, !head, mode.name());
            self.executors.insert((mode, head), (exec, facts));
        }
        let (exec, facts) = self.executors.get_mut(&(mode, head)).expect("just inserted");
        Ok((exec, *facts))
    }
}

/// The key `--resume` matches on, from a point before it runs.
fn resume_key(host: &str, model: &str, mode: Mode, batch: usize, seq: usize, threads: usize, head: bool) -> String {
    format!("{host}|{model}|{}|b{batch}|s{seq}|t{threads}|{head}", mode.name())
}

fn row_resume_key(r: &Row) -> String {
    format!(
        "{}|{}|{}|b{}|s{}|t{}|{}",
        r.host, r.model, r.mode, r.batch, r.seq, r.threads, r.head
    )
}

/// The dense median a speedup refers to: same machine, model family, shape, batch, seq, threads, head.
fn dense_key(host: &str, hidden_full: &str, input: usize, batch: usize, seq: usize, threads: usize, head: bool) -> String {
    format!("{host}|{input}|{hidden_full}|b{batch}|s{seq}|t{threads}|{head}")
}

/// Runs every point of `spec`, appending rows to `options.csv`.
pub fn run_sweep(spec: &SweepSpec, mut options: SweepOptions) -> Result<SweepSummary, SweepError> {
    let backend = Backend::parse(&spec.backend).unwrap_or_default();
    let mut machine = Machine::new();
    let mut done: HashSet<String> = HashSet::new();
    let mut dense_medians: HashMap<String, f64> = HashMap::new();
    // Opening first cuts a partial last line left by an interrupted run.
    let mut csv = CsvAppender::open(&options.csv)?;
    if std::fs::metadata(&options.csv).is_ok_and(|m| m.len() > 0) {
        for r in read_rows(std::slice::from_ref(&options.csv))? {
            if r.mode == "dense" && r.ok() {
                dense_medians.insert(
                    dense_key(&r.host, &r.hidden_full, r.input, r.batch, r.seq, r.threads, r.head),
                    r.median_ns,
                );
            }
            if options.resume {
                done.insert(row_resume_key(&r));
            }
        }
    }
    let points = spec.points();
    let total = points.len();
    let mut summary = SweepSummary::default();
    let mut current: Option<((Source, f64), Result<Instance, String>)> = None;
    let budget = Budget {
        warmup_runs: 1,
        time: Duration::from_millis(spec.budget_ms),
        min_runs: spec.min_runs,
        max_runs: spec.max_runs,
    };
    for (index, point) in points.iter().enumerate() {
        if options.stop.load(Ordering::SeqCst) {
            summary.interrupted = true;
            break;
        }
        let threads = machine.threads(point.threads);
        let name = source_name(&point.source, point.kept_fraction);
        let key = resume_key(&machine.host, &name, point.mode, point.batch, point.seq, threads, point.head);
        if done.contains(&key) {
            summary.skipped += 1;
            continue;
        }
        let instance_id = (point.source.clone(), point.kept_fraction);
        if current.as_ref().is_none_or(|(id, _)| *id != instance_id) {
            // Free the previous instance before building the next one.
            drop(current.take());
            current = Some((instance_id.clone(), build_instance(&point.source, point.kept_fraction)));
        }
        let instance = &mut current.as_mut().expect("just set").1;
        let (_, limits) = machine.pool(threads)?;
        let ctx = machine_info(&machine, threads, limits, spec);
        let pool = &machine.pools[&threads];
        let row = match instance {
            Ok(inst) => measure_point(inst, point, backend, budget, pool, &mut dense_medians, &ctx),
            Err(e) => failed_row(&ctx, &name, point, e),
        };
        if row.ok() {
            summary.measured += 1;
        } else {
            summary.failed += 1;
        }
        csv.append(&row)?;
        done.insert(key);
        (options.on_row)(index + 1, total, &row);
    }
    Ok(summary)
}

/// The row fields that describe the machine and the run, filled once per point.
struct Context {
    host: String,
    cpu: String,
    simd: String,
    cores: usize,
    threads: usize,
    limits: Limits,
    preset: String,
}

fn machine_info(m: &Machine, threads: usize, limits: Limits, spec: &SweepSpec) -> Context {
    Context {
        host: m.host.clone(),
        cpu: m.cpu.clone(),
        simd: m.simd.clone(),
        cores: m.cores,
        threads,
        limits,
        preset: spec.name.clone(),
    }
}

fn base_row(ctx: &Context, model: &str, point: &Point, backend: String) -> Row {
    Row {
        suite_version: env!("CARGO_PKG_VERSION").to_string(),
        git_rev: git_revision().to_string(),
        timestamp: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        host: ctx.host.clone(),
        cpu_model: ctx.cpu.clone(),
        simd: ctx.simd.clone(),
        logical_cores: ctx.cores,
        threads: ctx.threads,
        backend,
        preset: ctx.preset.clone(),
        model: model.to_string(),
        input: 0,
        layers: 0,
        hidden_full: String::new(),
        hidden_kept: String::new(),
        kept_fraction: point.kept_fraction,
        sparsity: 0.0,
        mode: point.mode.name().to_string(),
        batch: point.batch,
        seq: point.seq,
        head: point.head,
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
        peak_gflops: ctx.limits.peak_gflops,
        bandwidth_gbs: ctx.limits.bandwidth_gbs,
        status: "ok".into(),
    }
}

fn failed_row(ctx: &Context, model: &str, point: &Point, reason: &str) -> Row {
    Row {
        status: format!("failed: {}", reason.replace(['\n', '\r'], " ")),
        ..base_row(ctx, model, point, String::new())
    }
}

/// Verifies (once per instance) and times one point.
fn measure_point(
    inst: &mut Instance,
    point: &Point,
    backend: Backend,
    budget: Budget,
    pool: &rayon::ThreadPool,
    dense_medians: &mut HashMap<String, f64>,
    ctx: &Context,
) -> Row {
    let name = inst.name.clone();
    let fail = |e: String| failed_row(ctx, &name, point, &e);
    let verify_max_rel = match pool.install(|| inst.verify(point.mode, point.head)) {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    let full = &inst.full;
    let dense_macs = full.macs_per_step(!point.head);
    let full_weights = lstm_weights(full);
    let hidden_full = sizes(&full.hidden_sizes());
    let hidden_kept = sizes(&inst.kept_sizes);
    let kept_fraction = inst.kept_sizes.iter().sum::<usize>() as f64 / full.hidden_sizes().iter().sum::<usize>() as f64;
    let (input, layers) = (full.input_size(), full.layers().len());
    let (exec, facts) = match inst.executor(point.mode, point.head, backend) {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    let inputs = Inputs::random_for(facts.vocab, facts.width, point.seq, point.batch, 1);
    let stats = match pool.install(|| time_runs(budget, || exec.run(&inputs).map(|_| ()))) {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    let dkey = dense_key(&ctx.host, &hidden_full, input, point.batch, point.seq, ctx.threads, point.head);
    if point.mode == Mode::Dense {
        dense_medians.insert(dkey.clone(), stats.median_ns);
    }
    let macs = facts.macs;
    Row {
        input,
        layers,
        hidden_full,
        hidden_kept,
        kept_fraction,
        sparsity: 1.0 - facts.nonzero as f64 / full_weights as f64,
        nonzero_weights: facts.nonzero + facts.head_weights,
        macs_per_step: macs,
        median_ns: stats.median_ns,
        min_ns: stats.min_ns,
        max_ns: stats.max_ns,
        ci_low_ns: stats.ci_low_ns,
        ci_high_ns: stats.ci_high_ns,
        runs: stats.runs,
        gflops: 2.0 * (macs * point.batch * point.seq) as f64 / stats.median_ns,
        speedup_vs_dense: dense_medians.get(&dkey).map(|d| d / stats.median_ns),
        ideal_speedup: dense_macs as f64 / macs as f64,
        verify_max_rel,
        ..base_row(ctx, &name, point, exec.backend())
    }
}
