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

use super::spec::{GemmShape, Mode, Point, Source, SweepSpec};
use crate::checkpoint::{LoadOptions, open_model};
use crate::exec::{Backend, ExecError, Executor, GemmExecutor, LstmExecutor};
use crate::hardware::{Limits, cpu_model, git_revision, host_name, measure_limits};
use crate::iss::{
    Compacted, DEFAULT_THRESHOLD, DEFAULT_TOLERANCE, IssReport, against_dense, analyze, compact_with, compare_outputs, verify,
};
use crate::kernels::simd::{SimdLevel, cpu_features};
use crate::measure::{Budget, Stats, time_interleaved, time_runs};
use crate::model::synthetic::SynthSpec;
use crate::model::{Inputs, Model, sizes_label};
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
    /// Also time each dense and iss point on ONNX Runtime (rows `ort-dense`, `ort-iss`).
    pub peer: Option<crate::peer::OrtPeer>,
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
    /// The ISS analysis of `full`, made once.
    report: IssReport,
    kept_sizes: Vec<usize>,
    compacted: Option<Compacted>,
    pruned: Option<Model>,
    /// Verification error per (mode, head).
    verified: HashMap<(Mode, bool), f64>,
    /// Prepared executors and their facts; `None` while lent to a [`Prepared`].
    executors: HashMap<(Mode, bool), (Option<LstmExecutor>, Facts)>,
}

/// `max_rel` when `mode`'s outputs are within [`DEFAULT_TOLERANCE`] of
/// dense, else the reason the point fails.
fn within_tolerance(mode: Mode, max_rel: f64) -> Result<f64, String> {
    if max_rel.is_nan() || max_rel > DEFAULT_TOLERANCE {
        return Err(format!(
            "{} not equivalent to dense: max relative error {max_rel:e} (tolerance {DEFAULT_TOLERANCE:e})",
            mode.name()
        ));
    }
    Ok(max_rel)
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
        Source::Gemm(g) => format!("m{}_k{}_s{}", g.m, g.k, g.sparsity),
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
        Source::Gemm(_) => return Err(format!("{name} is a GEMM problem, not an LSTM")),
    };
    let shrink = full.head().is_none();
    let report = analyze(&full, DEFAULT_THRESHOLD);
    let kept_sizes = report.kept_sizes(shrink);
    Ok(Instance {
        name,
        full,
        report,
        kept_sizes,
        compacted: None,
        pruned: None,
        verified: HashMap::new(),
        executors: HashMap::new(),
    })
}

impl Instance {
    /// The ISS compaction of `full` (a last layer without head shrinks too), built on first use.
    fn compacted(&mut self) -> Result<&Compacted, String> {
        if self.compacted.is_none() {
            let shrink = self.full.head().is_none();
            self.compacted = Some(compact_with(&self.full, &self.report, shrink).map_err(|e| e.to_string())?);
        }
        Ok(self.compacted.as_ref().expect("just built"))
    }

    /// The model `mode` runs (full, compacted or pruned), built on first use.
    fn model(&mut self, mode: Mode) -> Result<&Model, String> {
        match mode {
            Mode::Dense => Ok(&self.full),
            Mode::Iss => Ok(&self.compacted()?.model),
            Mode::Csr => {
                if self.pruned.is_none() {
                    self.pruned = Some(match_iss(&self.full, &self.report).map_err(|e| e.to_string())?);
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
        let eq = match mode {
            Mode::Iss => {
                let inputs = Inputs::random(&self.full, 4, 2, 7);
                self.compacted()?;
                let compacted = self.compacted.as_ref().expect("just built");
                verify(&self.full, compacted, &inputs).map_err(|e| e.to_string())?
            }
            _ => {
                let pruned = self.model(Mode::Csr)?;
                let mut exec = LstmExecutor::prepare(pruned, Backend::Csr, !head, "csr");
                let vocab = if head { pruned.embedding().map(|e| e.vocab()) } else { None };
                let inputs = Inputs::random_for(vocab, pruned.input_size(), 4, 2, 7);
                against_dense(pruned, &mut exec, !head, &inputs).map_err(|e| e.to_string())?
            }
        };
        let max_rel = within_tolerance(mode, eq.max_rel)?;
        self.verified.insert((mode, head), max_rel);
        Ok(Some(max_rel))
    }

    /// The prepared executor for `mode` and `head` (taken out of the
    /// cache, or prepared now), and its model's facts.
    fn executor(&mut self, mode: Mode, head: bool, backend: Backend) -> Result<(LstmExecutor, Facts), String> {
        if let Some((slot @ Some(_), facts)) = self.executors.get_mut(&(mode, head)) {
            return Ok((slot.take().expect("matched Some"), *facts));
        }
        let model = self.model(mode)?;
        let facts = Facts {
            nonzero: if mode == Mode::Csr {
                lstm_nonzeros(model)
            } else {
                model.lstm_weights()
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
        self.executors.insert((mode, head), (None, facts));
        Ok((exec, facts))
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

/// The dense point a row's speedup refers to: same machine, shape, batch,
/// seq, threads and head (any kept fraction: dense time does not depend on
/// where the zeros are).
pub fn dense_key(r: &Row) -> String {
    format!(
        "{}|{}|{}|b{}|s{}|t{}|{}",
        r.host, r.input, r.hidden_full, r.batch, r.seq, r.threads, r.head
    )
}

/// A point ready to time: its executor (weights prepared), inputs, thread
/// count, and its row with everything but the timing filled in.
pub struct Prepared {
    /// The prepared executor; time `exec.run(&inputs)`.
    pub exec: PointExecutor,
    /// The point's inputs (`seq` x `batch`).
    pub inputs: Inputs,
    /// The row to complete with [`complete_row`].
    pub row: Row,
    cache_key: (Mode, bool),
}

/// What a point runs: an LSTM, or one sparse GEMM problem.
pub enum PointExecutor {
    /// Every LSTM point (dense, iss, csr).
    Lstm(Box<LstmExecutor>),
    /// A `[[grid]] gemm` point.
    Gemm(Box<GemmExecutor>),
}

impl Executor for PointExecutor {
    fn mode(&self) -> &str {
        match self {
            PointExecutor::Lstm(e) => e.mode(),
            PointExecutor::Gemm(e) => e.mode(),
        }
    }
    fn backend(&self) -> String {
        match self {
            PointExecutor::Lstm(e) => e.backend(),
            PointExecutor::Gemm(e) => e.backend(),
        }
    }
    fn prepare_ns(&self) -> u64 {
        match self {
            PointExecutor::Lstm(e) => e.prepare_ns(),
            PointExecutor::Gemm(e) => e.prepare_ns(),
        }
    }
    fn run(&mut self, inputs: &Inputs) -> Result<&[f32], ExecError> {
        match self {
            PointExecutor::Lstm(e) => e.run(inputs),
            PointExecutor::Gemm(e) => e.run(inputs),
        }
    }
}

/// A sparse GEMM problem's matrix and its prepared executors, built once
/// for all of its points.
struct GemmInstance {
    shape: GemmShape,
    w: Vec<f32>,
    nonzeros: usize,
    /// Max relative error of csr against the dense kernel, once measured.
    verified: Option<f64>,
    /// Prepared executors by mode; absent while lent to a [`Prepared`].
    executors: HashMap<Mode, GemmExecutor>,
}

impl GemmInstance {
    fn build(shape: GemmShape) -> GemmInstance {
        let problem = crate::deepbench::SparseProblem {
            m: shape.m,
            k: shape.k,
            n: 1,
            sparsity: shape.sparsity,
        };
        let w = problem.weights(7);
        let nonzeros = w.iter().filter(|&&v| v != 0.0).count();
        GemmInstance {
            shape,
            w,
            nonzeros,
            verified: None,
            executors: HashMap::new(),
        }
    }

    fn executor(&mut self, mode: Mode, backend: Backend) -> GemmExecutor {
        let (m, k) = (self.shape.m, self.shape.k);
        self.executors.remove(&mode).unwrap_or_else(|| {
            let backend = if mode == Mode::Csr { Backend::Csr } else { backend };
            GemmExecutor::prepare(&self.w, m, k, backend, mode.name())
        })
    }

    /// csr against the dense kernel on the same matrix, once.
    fn verify(&mut self, mode: Mode, backend: Backend) -> Result<Option<f64>, String> {
        if mode == Mode::Dense {
            return Ok(None);
        }
        if self.verified.is_none() {
            let inputs = Inputs::random_for(None, self.shape.k, 1, 3, 7);
            // Both executors go back to the cache for the points that time them.
            let (mut dense, mut csr) = (self.executor(Mode::Dense, backend), self.executor(Mode::Csr, backend));
            let outputs = dense.run(&inputs).map(|want| want.to_vec()).and_then(|want| {
                let got = csr.run(&inputs)?;
                Ok(compare_outputs(&want, got))
            });
            self.executors.insert(Mode::Dense, dense);
            self.executors.insert(Mode::Csr, csr);
            let eq = outputs.map_err(|e| e.to_string())?;
            self.verified = Some(within_tolerance(Mode::Csr, eq.max_rel)?);
        }
        Ok(self.verified)
    }
}

/// Fills the timing columns of `template` from `stats`, and the speedup from
/// the dense median of the same point when known.
pub fn complete_row(template: &Row, stats: &Stats, dense_median_ns: Option<f64>) -> Row {
    let dense = if template.mode == "dense" {
        Some(stats.median_ns)
    } else {
        dense_median_ns
    };
    Row {
        median_ns: stats.median_ns,
        min_ns: stats.min_ns,
        max_ns: stats.max_ns,
        ci_low_ns: stats.ci_low_ns,
        ci_high_ns: stats.ci_high_ns,
        runs: stats.runs,
        gflops: 2.0 * (template.macs_per_step * template.batch * template.seq) as f64 / stats.median_ns,
        speedup_vs_dense: dense.map(|d| d / stats.median_ns),
        timestamp: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        ..template.clone()
    }
}

/// Builds and verifies the models of a sweep's points: one instance (full,
/// compacted, pruned model, executors) at a time, reused by consecutive
/// points. The sweep runner and the criterion bench share it, so both
/// measure exactly the same thing.
pub struct Session {
    machine: Machine,
    preset: String,
    backend: Backend,
    current: Option<((Source, f64), Result<Instance, String>)>,
    gemm: Option<GemmInstance>,
}

impl Session {
    /// A session for `spec` on this machine.
    pub fn new(spec: &SweepSpec) -> Session {
        Session {
            machine: Machine::new(),
            preset: spec.name.clone(),
            backend: Backend::parse(&spec.backend).unwrap_or_default(),
            current: None,
            gemm: None,
        }
    }

    /// Host name recorded in rows.
    pub fn host(&self) -> &str {
        &self.machine.host
    }

    /// Threads a point uses (0 means all logical cores).
    pub fn threads(&self, point: &Point) -> usize {
        self.machine.threads(point.threads)
    }

    /// The rayon pool of `threads` workers (started, and the machine's
    /// limits measured on it, on first use).
    pub fn pool(&mut self, threads: usize) -> Result<&rayon::ThreadPool, SweepError> {
        Ok(self.machine.pool(threads)?.0)
    }

    /// The model name a point's rows carry.
    pub fn model_name(point: &Point) -> String {
        source_name(&point.source, point.kept_fraction)
    }

    /// Builds (or reuses) the point's models, verifies its mode against
    /// dense once, and prepares its executor. A point that cannot run comes
    /// back as its failed row.
    pub fn prepare(&mut self, point: &Point) -> Result<Result<Prepared, Row>, SweepError> {
        let threads = self.threads(point);
        let (_, limits) = self.machine.pool(threads)?;
        let ctx = Context {
            host: self.machine.host.clone(),
            cpu: self.machine.cpu.clone(),
            simd: self.machine.simd.clone(),
            cores: self.machine.cores,
            threads,
            limits,
            preset: self.preset.clone(),
        };
        if let Source::Gemm(shape) = point.source {
            let pool = &self.machine.pools[&threads];
            let backend = self.backend;
            if self.gemm.as_ref().is_none_or(|g| g.shape != shape) {
                // Free the previous matrix (and any LSTM instance) first.
                (self.gemm, self.current) = (None, None);
                self.gemm = Some(GemmInstance::build(shape));
            }
            let inst = self.gemm.as_mut().expect("just set");
            return Ok(pool
                .install(|| prepare_gemm(inst, point, backend, &ctx))
                .map_err(|e| failed_row(&ctx, &Self::model_name(point), point, &e)));
        }
        let id = (point.source.clone(), point.kept_fraction);
        if self.current.as_ref().is_none_or(|(current, _)| *current != id) {
            // Free the previous instance before building the next one.
            drop(self.current.take());
            self.current = Some((id.clone(), build_instance(&point.source, point.kept_fraction)));
        }
        let name = Self::model_name(point);
        let inst = match &mut self.current.as_mut().expect("just set").1 {
            Ok(inst) => inst,
            Err(e) => return Ok(Err(failed_row(&ctx, &name, point, e))),
        };
        let pool = &self.machine.pools[&threads];
        let backend = self.backend;
        Ok(pool
            .install(|| prepare_in(inst, point, backend, &ctx))
            .map_err(|e| failed_row(&ctx, &name, point, &e)))
    }

    /// The ONNX graph of what `point` runs (its mode's model, with or
    /// without head), for the peer.
    pub fn export_onnx(&mut self, point: &Point) -> Result<Vec<u8>, String> {
        match &mut self.current {
            Some((_, Ok(inst))) => {
                let model = inst.model(point.mode)?;
                Ok(crate::onnx::export(model, !point.head))
            }
            _ => Err("no model instance".into()),
        }
    }

    /// Returns a point's executor to the cache for the next point of the same model.
    pub fn give_back(&mut self, prepared: Prepared) {
        match prepared.exec {
            PointExecutor::Lstm(exec) => {
                if let Some((_, Ok(inst))) = &mut self.current
                    && let Some(slot) = inst.executors.get_mut(&prepared.cache_key)
                {
                    slot.0 = Some(*exec);
                }
            }
            PointExecutor::Gemm(exec) => {
                if let Some(inst) = &mut self.gemm {
                    inst.executors.insert(prepared.cache_key.0, *exec);
                }
            }
        }
    }
}

/// Verifies and prepares one point of `inst` (inside its thread pool).
fn prepare_in(inst: &mut Instance, point: &Point, backend: Backend, ctx: &Context) -> Result<Prepared, String> {
    let verify_max_rel = inst.verify(point.mode, point.head)?;
    let full = &inst.full;
    let dense_macs = full.macs_per_step(!point.head);
    let full_weights = full.lstm_weights();
    let hidden_full = sizes_label(&full.hidden_sizes());
    let hidden_kept = sizes_label(&inst.kept_sizes);
    let kept_fraction = inst.kept_sizes.iter().sum::<usize>() as f64 / full.hidden_sizes().iter().sum::<usize>() as f64;
    let (input, layers) = (full.input_size(), full.layers().len());
    let (exec, facts) = inst.executor(point.mode, point.head, backend)?;
    let inputs = Inputs::random_for(facts.vocab, facts.width, point.seq, point.batch, 1);
    let row = Row {
        input,
        layers,
        hidden_full,
        hidden_kept,
        kept_fraction,
        sparsity: 1.0 - facts.nonzero as f64 / full_weights as f64,
        nonzero_weights: facts.nonzero + facts.head_weights,
        macs_per_step: facts.macs,
        ideal_speedup: dense_macs as f64 / facts.macs as f64,
        verify_max_rel,
        ..base_row(ctx, &inst.name, point, exec.backend())
    };
    Ok(Prepared {
        exec: PointExecutor::Lstm(Box::new(exec)),
        inputs,
        row,
        cache_key: (point.mode, point.head),
    })
}

/// Verifies and prepares one sparse GEMM point (inside its thread pool):
/// `n` = the point's batch, at seq 1.
fn prepare_gemm(inst: &mut GemmInstance, point: &Point, backend: Backend, ctx: &Context) -> Result<Prepared, String> {
    let verify_max_rel = inst.verify(point.mode, backend)?;
    let GemmShape { m, k, .. } = inst.shape;
    let exec = inst.executor(point.mode, backend);
    let multiplied = if point.mode == Mode::Csr { inst.nonzeros } else { m * k };
    let row = Row {
        input: k,
        hidden_full: m.to_string(),
        sparsity: 1.0 - multiplied as f64 / (m * k) as f64,
        nonzero_weights: multiplied,
        macs_per_step: multiplied,
        ideal_speedup: (m * k) as f64 / multiplied.max(1) as f64,
        verify_max_rel,
        ..base_row(ctx, &Session::model_name(point), point, exec.backend())
    };
    Ok(Prepared {
        exec: PointExecutor::Gemm(Box::new(exec)),
        inputs: Inputs::random_for(None, k, point.seq, point.batch, 1),
        row,
        cache_key: (point.mode, point.head),
    })
}

/// Runs every point of `spec`, appending rows to `options.csv`.
pub fn run_sweep(spec: &SweepSpec, mut options: SweepOptions) -> Result<SweepSummary, SweepError> {
    let mut session = Session::new(spec);
    let mut done: HashSet<String> = HashSet::new();
    let mut dense_medians: HashMap<String, f64> = HashMap::new();
    // Opening first cuts a partial last line left by an interrupted run.
    let mut csv = CsvAppender::open(&options.csv)?;
    if std::fs::metadata(&options.csv).is_ok_and(|m| m.len() > 0) {
        for r in read_rows(std::slice::from_ref(&options.csv))? {
            if r.mode == "dense" && r.ok() {
                dense_medians.insert(dense_key(&r), r.median_ns);
            }
            if options.resume {
                done.insert(row_resume_key(&r));
            }
        }
    }
    let points = spec.points();
    let total = points.len();
    let mut summary = SweepSummary::default();
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
        let threads = session.threads(point);
        let key = resume_key(
            session.host(),
            &Session::model_name(point),
            point.mode,
            point.batch,
            point.seq,
            threads,
            point.head,
        );
        if done.contains(&key) {
            summary.skipped += 1;
            continue;
        }
        let peer = options
            .peer
            .as_ref()
            .filter(|_| point.mode != Mode::Csr && !matches!(point.source, Source::Gemm(_)));
        let (row, peer_row) = match session.prepare(point)? {
            Err(failed) => (failed, None),
            Ok(mut prepared) => {
                // The peer loads and warms up first, so that its rounds can
                // alternate with ours.
                let mut peer_run = peer.map(|p| start_peer(&mut session, p, point, &prepared.row, &options.csv));
                let pool = session.pool(threads)?;
                let (exec, inputs) = (&mut prepared.exec, &prepared.inputs);
                let ours = || exec.run(inputs).map(|_| ());
                let timed = pool.install(|| match &mut peer_run {
                    Some(Ok(run)) => time_interleaved(budget, ours, |round| run.sample(round)).map(|(s, p)| (s, Some(p))),
                    Some(Err(e)) => time_runs(budget, ours).map(|s| (s, Some(Err(e.clone())))),
                    None => time_runs(budget, ours).map(|s| (s, None)),
                });
                drop(peer_run);
                let dense_median = dense_medians.get(&dense_key(&prepared.row)).copied();
                let rows = match timed {
                    Ok((stats, theirs)) => {
                        let row = complete_row(&prepared.row, &stats, dense_median);
                        // The peer's speedup is against issbench's dense median,
                        // which for a dense point is this very row's.
                        let dense_median = if row.mode == "dense" { Some(row.median_ns) } else { dense_median };
                        let theirs = theirs.map(|t| peer_row(peer.expect("a peer result needs a peer"), &row, t, dense_median));
                        (row, theirs)
                    }
                    Err(e) => (
                        Row {
                            status: format!("failed: {e}"),
                            ..prepared.row.clone()
                        },
                        None,
                    ),
                };
                session.give_back(prepared);
                rows
            }
        };
        if row.ok() {
            summary.measured += 1;
            if row.mode == "dense" {
                dense_medians.insert(dense_key(&row), row.median_ns);
            }
        } else {
            summary.failed += 1;
        }
        csv.append(&row)?;
        done.insert(key);
        (options.on_row)(index + 1, total, &row);
        if let Some(peer_row) = peer_row {
            csv.append(&peer_row)?;
            (options.on_row)(index + 1, total, &peer_row);
        }
    }
    Ok(summary)
}

/// Starts the ONNX Runtime peer on `point`'s model: exports it next to the
/// CSV, starts the peer with the point's batch, seq and threads (it loads
/// the file, which is then removed) and returns it ready to time rounds.
fn start_peer(
    session: &mut Session,
    peer: &crate::peer::OrtPeer,
    point: &Point,
    row: &Row,
    csv: &std::path::Path,
) -> Result<crate::peer::PeerRun, String> {
    let onnx = csv.with_file_name(format!(".peer-{}.onnx", std::process::id()));
    let started = session
        .export_onnx(point)
        .and_then(|bytes| std::fs::write(&onnx, bytes).map_err(|e| format!("{}: {e}", onnx.display())))
        .and_then(|_| {
            let vocab = if point.head { row_vocab(session).unwrap_or(1) } else { 1 };
            let shape = crate::peer::PeerPoint {
                batch: point.batch,
                seq: point.seq,
                threads: row.threads,
                vocab,
            };
            peer.start(&onnx, &shape)
        });
    let _ = std::fs::remove_file(&onnx);
    started
}

/// The peer's row for issbench's `row` (mode `ort-dense` / `ort-iss`,
/// speedup against issbench's dense median).
fn peer_row(peer: &crate::peer::OrtPeer, row: &Row, result: Result<Stats, String>, dense_median: Option<f64>) -> Row {
    let template = Row {
        mode: format!("ort-{}", row.mode),
        backend: peer.backend(),
        ..row.clone()
    };
    match result {
        Ok(stats) => complete_row(&template, &stats, dense_median),
        Err(e) => Row {
            status: format!("failed: onnxruntime: {}", e.replace(['\n', '\r'], " ")),
            ..template
        },
    }
}

/// The embedding size of the point's model, so the peer draws valid tokens.
fn row_vocab(session: &mut Session) -> Option<usize> {
    match &mut session.current {
        Some((_, Ok(inst))) => inst.full.embedding().map(|e| e.vocab()),
        _ => None,
    }
}

/// The row fields that describe the machine and the run.
struct Context {
    host: String,
    cpu: String,
    simd: String,
    cores: usize,
    threads: usize,
    limits: Limits,
    preset: String,
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
