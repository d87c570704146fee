//! The `issbench` command line: parse, call the library, print.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;

use issbench::checkpoint::{Format as FileFormat, Layout, LoadOptions, load, open_model, save_safetensors};
use issbench::exec::{Backend, Executor, LstmExecutor};
use issbench::inspect::{Inspection, inspect};
use issbench::iss::{DEFAULT_THRESHOLD, DEFAULT_TOLERANCE, IssError, against_dense, analyze, compact_with, verify_within};
use issbench::kernels::simd::{SimdLevel, cpu_features};
use issbench::measure::{Budget, Stats, time_runs};
use issbench::model::synthetic::BUILTIN;
use issbench::model::{Inputs, Model, sizes_label};
use issbench::peer::OrtPeer;
use issbench::prune::{Scope, lstm_nonzeros, magnitude, match_iss};
use issbench::report::{charts, compare, read_rows};
use issbench::sweep::{PRESETS, SweepOptions, SweepSpec, run_sweep};

#[derive(Parser)]
#[command(
    name = "issbench",
    version,
    about = "Benchmark LSTMs pruned with Intrinsic Sparse Structures: dense vs ISS vs sparse, on this machine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Time one configuration of one model.
    Run(RunArgs),
    /// Read a checkpoint and report its tensors and what ISS compaction would keep.
    Inspect(InspectArgs),
    /// Compact a checkpoint, verify it, and write the reduced model as safetensors.
    Compact(CompactArgs),
    /// Measure a grid of points (a preset or a TOML spec) into a CSV, and draw the charts.
    Sweep(SweepArgs),
    /// Redraw every chart from result CSVs alone.
    Report(ReportArgs),
    /// Write a model (full or ISS-compacted) as an ONNX graph of LSTM ops, for ONNX Runtime.
    ExportOnnx(ExportArgs),
    /// Set hardware targets (host / CPU / threads / backend) side by side for the points they share.
    Compare(ReportArgs),
    /// List the built-in models.
    Models,
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    /// The full-width model, zeros included.
    Dense,
    /// The ISS-compacted model: analyzed, compacted, verified, then timed.
    Iss,
    /// Unstructured sparsity on the CSR kernel: the full model magnitude-pruned
    /// to the ISS model's weight count (or to `--sparsity`).
    Csr,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
}

/// How to read a checkpoint (everything is detected by default).
#[derive(Parser)]
struct LoadArgs {
    /// File format: tf-checkpoint, torch-zip, safetensors, npz or npy.
    #[arg(long, value_parser = parse_file_format)]
    file_format: Option<FileFormat>,
    /// Naming scheme: tf-basic-lstm, pytorch or keras.
    #[arg(long, value_parser = parse_layout)]
    layout: Option<Layout>,
    /// TensorFlow BasicLSTMCell forget bias, folded into the f gate (not stored
    /// in TF checkpoints). Default 0.0 as in the ISS code; TensorFlow's default is 1.0.
    #[arg(long)]
    forget_bias: Option<f32>,
}

impl LoadArgs {
    fn options(&self) -> LoadOptions {
        LoadOptions {
            format: self.file_format,
            layout: self.layout,
            forget_bias: self.forget_bias,
        }
    }
}

fn parse_file_format(s: &str) -> Result<FileFormat, String> {
    FileFormat::parse(s).ok_or_else(|| format!("unknown format '{s}' (tf-checkpoint, torch-zip, safetensors, npz, npy)"))
}

fn parse_layout(s: &str) -> Result<Layout, String> {
    Layout::parse(s).ok_or_else(|| format!("unknown layout '{s}' (tf-basic-lstm, pytorch, keras)"))
}

#[derive(Parser)]
struct InspectArgs {
    /// Checkpoint: a file, a TensorFlow checkpoint folder, .index file or prefix.
    path: PathBuf,
    #[command(flatten)]
    load: LoadArgs,
    /// A component is removable when all its outgoing weights are at most this in magnitude.
    #[arg(long, default_value_t = DEFAULT_THRESHOLD)]
    threshold: f32,
    /// Also shrink a last layer that feeds the model output directly (no head).
    #[arg(long)]
    shrink_output: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: InspectFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum InspectFormat {
    Table,
    Json,
}

#[derive(Parser)]
struct CompactArgs {
    /// Checkpoint to compact.
    path: PathBuf,
    /// Where to write the compacted model (safetensors, PyTorch names).
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    load: LoadArgs,
    /// A component is removable when all its outgoing weights are at most this in magnitude.
    #[arg(long, default_value_t = DEFAULT_THRESHOLD)]
    threshold: f32,
    /// Also shrink a last layer that feeds the model output directly (no head).
    #[arg(long)]
    shrink_output: bool,
    /// Largest accepted relative output error of the compacted model.
    #[arg(long, default_value_t = DEFAULT_TOLERANCE)]
    tolerance: f64,
}

#[derive(Parser)]
struct ReportArgs {
    /// Result CSVs (files from several machines may be mixed).
    #[arg(required = true)]
    csv: Vec<PathBuf>,
    /// Folder for the charts (and compare.md).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Parser)]
struct SweepArgs {
    /// Built-in preset: quick, ptb, deepbench, deepbench-sparse or full (see `issbench models`).
    #[arg(long, default_value = "quick", conflicts_with = "config")]
    preset: String,
    /// A TOML sweep spec instead of a preset (see README).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Folder for NAME.csv and the charts.
    #[arg(long, default_value = "results/latest")]
    out: PathBuf,
    /// Skip points already in NAME.csv (same host, model, mode, batch, seq, threads, head).
    #[arg(long)]
    resume: bool,
    /// Override the spec's timed-run budget per point, milliseconds.
    #[arg(long)]
    budget_ms: Option<u64>,
    /// Do not draw charts after the sweep.
    #[arg(long)]
    no_charts: bool,
    /// Also time each dense and iss point on a peer: `ort` (ONNX Runtime
    /// through tools/peer_ort.py and ISSBENCH_PYTHON).
    #[arg(long, value_parser = ["ort"])]
    peer: Option<String>,
}

#[derive(Parser)]
struct ExportArgs {
    /// A built-in model name or a checkpoint path.
    model: String,
    /// Where to write the ONNX model.
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    load: LoadArgs,
    /// Export the ISS-compacted model instead of the full one.
    #[arg(long)]
    compact: bool,
    /// LSTM layers only (features in, hidden states out), no embedding or head.
    #[arg(long)]
    layers_only: bool,
}

#[derive(Parser)]
struct RunArgs {
    /// A built-in model name (see `issbench models`) or a checkpoint path.
    model: String,
    #[command(flatten)]
    load: LoadArgs,
    /// What to run.
    #[arg(long, value_enum, default_value = "dense")]
    mode: Mode,
    /// Sequences per batch.
    #[arg(long, default_value_t = 10)]
    batch: usize,
    /// Time steps per sequence.
    #[arg(long, default_value_t = 30)]
    seq: usize,
    /// Worker threads (rayon pool size); default: all logical cores.
    #[arg(long)]
    threads: Option<usize>,
    /// Time the LSTM stack only, without embedding and output projection.
    #[arg(long)]
    layers_only: bool,
    /// GEMM backend: `packed` (issbench's kernel) or `matrixmultiply`.
    #[arg(long, default_value = "packed", value_parser = parse_backend)]
    backend: Backend,
    /// Seconds of timed runs (after warm-up).
    #[arg(long, default_value_t = 2.0)]
    time: f64,
    /// Fewest timed runs, whatever the time.
    #[arg(long, default_value_t = 5)]
    min_runs: usize,
    /// Most timed runs.
    #[arg(long, default_value_t = 200)]
    max_runs: usize,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// ISS: a component is removable when all its outgoing weights are at
    /// most this in magnitude.
    #[arg(long, default_value_t = DEFAULT_THRESHOLD)]
    threshold: f32,
    /// CSR: prune the LSTM weights to this fraction of zeros (global
    /// magnitude pruning) instead of matching the ISS model's weight count.
    #[arg(long)]
    sparsity: Option<f64>,
    /// ISS: also shrink a last layer that feeds the model output directly
    /// (no head); the outputs are then the kept units only.
    #[arg(long)]
    shrink_output: bool,
}

fn parse_backend(s: &str) -> Result<Backend, String> {
    Backend::parse(s).ok_or_else(|| format!("unknown backend '{s}' (packed or matrixmultiply)"))
}

/// One `run` result, as printed in JSON and CSV.
#[derive(Serialize)]
struct RunReport {
    model: String,
    mode: String,
    backend: String,
    layers_only: bool,
    batch: usize,
    seq: usize,
    threads: usize,
    hidden: String,
    macs_per_step: usize,
    #[serde(flatten)]
    stats: Stats,
    gflops: f64,
    cpu_features: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<IssSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    csr: Option<CsrSummary>,
}

/// What pruning and conversion did, for `--mode csr`.
#[derive(Serialize)]
struct CsrSummary {
    /// Fraction of LSTM weights that are zero.
    sparsity: f64,
    nonzero_weights: usize,
    lstm_weights: usize,
    /// CSR conversion (and head packing) time, apart from run time.
    prepare_ms: f64,
    verify_max_abs: f64,
    verify_max_rel: f64,
}

/// Prunes `full` for the csr mode: to `--sparsity`, or to the weight count
/// of its ISS compaction.
fn prune_model(full: &Model, args: &RunArgs) -> Result<Model> {
    Ok(match args.sparsity {
        Some(s) => magnitude(full, s, Scope::Global)?,
        None => match_iss(full, &analyze(full, args.threshold))?,
    })
}

/// Runs `exec` and the dense packed executor on the same short inputs and
/// fails unless their outputs agree within the tolerance.
fn verify_against_dense(model: &Model, exec: &mut LstmExecutor, layers_only: bool, pool: &rayon::ThreadPool) -> Result<(f64, f64)> {
    let inputs = Inputs::random(model, 4, 2, 7);
    let eq = pool.install(|| against_dense(model, exec, layers_only, &inputs))?;
    // NaN fails too.
    if eq.max_rel.is_nan() || eq.max_rel > DEFAULT_TOLERANCE {
        return Err(IssError::NotEquivalent {
            max_abs: eq.max_abs,
            max_rel: eq.max_rel,
            tolerance: DEFAULT_TOLERANCE,
        }
        .into());
    }
    Ok((eq.max_abs, eq.max_rel))
}

/// What ISS compaction did, for `--mode iss`.
#[derive(Serialize)]
struct IssSummary {
    threshold: f32,
    full_hidden: String,
    kept_hidden: String,
    partly_zero: usize,
    ideal_speedup: f64,
    ideal_speedup_with_head: f64,
    verify_max_abs: f64,
    verify_max_rel: f64,
}

/// Analyzes, compacts and verifies `full` (with its head, whatever
/// `--layers-only` says: the head is what makes the last layer's units
/// removable). Returns the compacted model and the summary.
fn compact_model(full: &Model, args: &RunArgs) -> Result<(Model, IssSummary)> {
    let report = analyze(full, args.threshold);
    let compacted = compact_with(full, &report, args.shrink_output)?;
    let inputs = Inputs::random(full, args.seq.min(8), args.batch.min(4), 7);
    let pool = rayon::ThreadPoolBuilder::new().build().context("starting the thread pool")?;
    let eq = pool.install(|| verify_within(full, &compacted, &inputs, DEFAULT_TOLERANCE))?;
    let summary = IssSummary {
        threshold: args.threshold,
        full_hidden: sizes_label(&report.full_sizes()),
        kept_hidden: sizes_label(&report.kept_sizes(args.shrink_output)),
        partly_zero: report.layers().iter().map(|l| l.partly_zero.len()).sum(),
        ideal_speedup: report.ideal_speedup(args.shrink_output),
        ideal_speedup_with_head: report.ideal_speedup_with_head(args.shrink_output),
        verify_max_abs: eq.max_abs,
        verify_max_rel: eq.max_rel,
    };
    Ok((compacted.model, summary))
}

fn run(args: RunArgs) -> Result<()> {
    if args.batch == 0 || args.seq == 0 {
        bail!("--batch and --seq must be at least 1");
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads == 0 {
        bail!("--threads must be at least 1");
    }
    let full = open_model(&args.model, &args.load.options())?;
    let (model, iss, mode, backend) = match args.mode {
        Mode::Dense => (full, None, "dense", args.backend),
        Mode::Iss => {
            let (compacted, summary) = compact_model(&full, &args)?;
            (compacted, Some(summary), "iss", args.backend)
        }
        Mode::Csr => (prune_model(&full, &args)?, None, "csr", Backend::Csr),
    };
    let model = if args.layers_only { model.layers_only() } else { model };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("starting the thread pool")?;
    let mut exec = LstmExecutor::prepare(&model, backend, args.layers_only, mode);
    let csr = match args.mode {
        Mode::Csr => {
            let (verify_max_abs, verify_max_rel) = verify_against_dense(&model, &mut exec, args.layers_only, &pool)?;
            let nonzero_weights = lstm_nonzeros(&model);
            let lstm_weights = model.lstm_weights();
            Some(CsrSummary {
                sparsity: 1.0 - nonzero_weights as f64 / lstm_weights as f64,
                nonzero_weights,
                lstm_weights,
                prepare_ms: exec.prepare_ns() as f64 / 1e6,
                verify_max_abs,
                verify_max_rel,
            })
        }
        _ => None,
    };
    let inputs = Inputs::random(&model, args.seq, args.batch, 1);
    let budget = Budget {
        time: Duration::from_secs_f64(args.time.max(0.0)),
        min_runs: args.min_runs.max(1),
        max_runs: args.max_runs.max(1),
        ..Budget::default()
    };
    let stats = pool.install(|| time_runs(budget, || exec.run(&inputs).map(|_| ())))?;
    // Multiply-adds actually needed: the CSR mode skips the zeros.
    let macs = match &csr {
        Some(c) => model.macs_per_step(args.layers_only) - model.lstm_macs_per_step() + c.nonzero_weights,
        None => model.macs_per_step(args.layers_only),
    };
    let report = RunReport {
        model: model.name().to_string(),
        mode: exec.mode().to_string(),
        backend: exec.backend(),
        layers_only: args.layers_only,
        batch: args.batch,
        seq: args.seq,
        threads,
        hidden: sizes_label(&model.hidden_sizes()),
        macs_per_step: macs,
        gflops: 2.0 * (macs * args.batch * args.seq) as f64 / stats.median_ns,
        stats,
        cpu_features: cpu_features(),
        iss,
        csr,
    };
    print_report(&report, args.format)
}

fn print_report(r: &RunReport, format: Format) -> Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(r)?),
        Format::Csv => {
            let value = serde_json::to_value(r)?;
            let obj = value.as_object().expect("a struct serialises to an object");
            let cell = |v: &serde_json::Value| match v {
                serde_json::Value::String(s) if s.contains(',') => format!("\"{s}\""),
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            println!("{}", obj.keys().cloned().collect::<Vec<_>>().join(","));
            println!("{}", obj.values().map(cell).collect::<Vec<_>>().join(","));
        }
        Format::Table => {
            let ms = |ns: f64| ns / 1e6;
            println!(
                "model    {} (hidden {}{})",
                r.model,
                r.hidden,
                if r.layers_only {
                    ", LSTM layers only"
                } else {
                    ", with embedding and head"
                }
            );
            println!("mode     {}  backend {}  threads {}", r.mode, r.backend, r.threads);
            println!("shape    batch {}  seq {}  {} mult-adds per step", r.batch, r.seq, r.macs_per_step);
            println!(
                "time     median {:.3} ms  min {:.3} ms  max {:.3} ms  ({} runs)",
                ms(r.stats.median_ns),
                ms(r.stats.min_ns),
                ms(r.stats.max_ns),
                r.stats.runs
            );
            println!("speed    {:.1} GFLOP/s at the median", r.gflops);
            if let Some(iss) = &r.iss {
                println!(
                    "iss      kept {} of {} units (threshold {:e}, {} partly-zero units kept); ideal speedup {:.2}x LSTM layers, {:.2}x with head",
                    iss.kept_hidden, iss.full_hidden, iss.threshold, iss.partly_zero, iss.ideal_speedup, iss.ideal_speedup_with_head
                );
                println!(
                    "verify   compacted vs full outputs: max abs error {:.2e}, max relative error {:.2e}",
                    iss.verify_max_abs, iss.verify_max_rel
                );
            }
            if let Some(csr) = &r.csr {
                println!(
                    "csr      {} of {} LSTM weights nonzero (sparsity {:.4}); CSR conversion {:.1} ms (not timed)",
                    csr.nonzero_weights, csr.lstm_weights, csr.sparsity, csr.prepare_ms
                );
                println!(
                    "verify   CSR vs dense outputs: max abs error {:.2e}, max relative error {:.2e}",
                    csr.verify_max_abs, csr.verify_max_rel
                );
            }
        }
    }
    Ok(())
}

fn inspect_cmd(args: InspectArgs) -> Result<()> {
    let ck = load(&args.path, &args.load.options())?;
    let report = inspect(&ck, args.threshold, args.shrink_output);
    match args.format {
        InspectFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        InspectFormat::Table => print_inspection(&args.path, &report),
    }
    Ok(())
}

fn print_inspection(path: &std::path::Path, r: &Inspection) {
    println!("file     {}", path.display());
    println!("format   {}  layout {}", r.format, r.layout);
    if let Some(fb) = r.forget_bias {
        println!("forget   bias {fb} folded into the f gate");
    }
    println!("\ntensors");
    let width = r.tensors.iter().map(|t| t.name.len()).max().unwrap_or(0);
    for t in &r.tensors {
        println!("  {:width$}  {:>14}  {:4}  {}", t.name, format!("{:?}", t.shape), t.dtype, t.role);
    }
    if let Some([vocab, dim]) = r.embedding {
        println!("\nembedding {vocab} x {dim}");
    }
    println!(
        "\n{:>5} {:>6} {:>6} {:>6} {:>9} {:>10} {:>11}  consumer / removed units (threshold {:e})",
        "layer", "input", "hidden", "kept", "removable", "fully-zero", "partly-zero", r.threshold
    );
    for l in &r.layers {
        println!(
            "{:>5} {:>6} {:>6} {:>6} {:>9} {:>10} {:>11}  {} / {:?}",
            l.layer, l.input, l.hidden, l.kept, l.removable, l.fully_zero, l.partly_zero, l.consumer, l.removed
        );
    }
    if let Some([out, input]) = r.head {
        println!("head     {input} -> {out}");
    }
    println!(
        "\nweights  {} -> {}   mult-adds per step {} -> {}",
        r.params_full, r.params_kept, r.macs_full, r.macs_kept
    );
    println!(
        "ideal    speedup {:.2}x (LSTM layers), {:.2}x with head",
        r.ideal_speedup, r.ideal_speedup_with_head
    );
    for n in &r.notes {
        println!("note     {n}");
    }
}

fn compact_cmd(args: CompactArgs) -> Result<()> {
    let ck = load(&args.path, &args.load.options())?;
    let report = analyze(&ck.model, args.threshold);
    let compacted = compact_with(&ck.model, &report, args.shrink_output)?;
    let inputs = Inputs::random(&ck.model, 8, 4, 7);
    let eq = issbench::iss::verify(&ck.model, &compacted, &inputs)?;
    println!(
        "compacted {}: hidden {} -> {}; weights {} -> {}; ideal speedup {:.2}x",
        args.path.display(),
        sizes_label(&report.full_sizes()),
        sizes_label(&report.kept_sizes(args.shrink_output)),
        report.cost_full().params_with_head,
        report.cost_kept(args.shrink_output).params_with_head,
        report.ideal_speedup(args.shrink_output)
    );
    println!(
        "verify   compacted vs full on random inputs (seq 8, batch 4): max abs error {:.3e}, max relative error {:.3e} (tolerance {:e})",
        eq.max_abs, eq.max_rel, args.tolerance
    );
    if eq.max_rel.is_nan() || eq.max_rel > args.tolerance {
        return Err(IssError::NotEquivalent {
            max_abs: eq.max_abs,
            max_rel: eq.max_rel,
            tolerance: args.tolerance,
        }
        .into());
    }
    let metadata = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("issbench_version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
        ("source".to_string(), args.path.display().to_string()),
        ("full_hidden".to_string(), sizes_label(&report.full_sizes())),
        ("kept_hidden".to_string(), sizes_label(&report.kept_sizes(args.shrink_output))),
        ("threshold".to_string(), args.threshold.to_string()),
        ("kept_units".to_string(), serde_json::to_string(&compacted.kept)?),
    ]);
    save_safetensors(&compacted.model, &args.output, metadata)?;
    println!("wrote    {}", args.output.display());
    Ok(())
}

fn sweep_cmd(args: SweepArgs) -> Result<()> {
    let mut spec = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
            SweepSpec::from_toml(&path.display().to_string(), &text)?
        }
        None => SweepSpec::preset(&args.preset)?,
    };
    if let Some(ms) = args.budget_ms {
        spec.budget_ms = ms;
    }
    let csv = args.out.join(format!("{}.csv", spec.name));
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                eprintln!("\nissbench: interrupted again; exiting now (the CSV holds every finished point)");
                std::process::exit(130);
            }
            eprintln!("\nissbench: stopping after the point in progress (Ctrl-C again to quit now)");
        })
        .context("installing the Ctrl-C handler")?;
    }
    let points = spec.points().len();
    println!(
        "sweep {}: {points} points, {} ms per point, writing {}",
        spec.name,
        spec.budget_ms,
        csv.display()
    );
    let bar = indicatif::ProgressBar::new(points as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} ETA {eta}  {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let progress = bar.clone();
    let peer = match args.peer.as_deref() {
        Some(_) => match OrtPeer::find() {
            Ok(p) => {
                println!("peer: onnxruntime {} (rows ort-dense, ort-iss)", p.version);
                Some(p)
            }
            Err(why) => {
                println!("peer: ONNX Runtime not available, sweeping without it: {why}");
                None
            }
        },
        None => None,
    };
    let options = SweepOptions {
        peer,
        csv: csv.clone(),
        resume: args.resume,
        stop,
        on_row: Box::new(move |i, _, row| {
            progress.set_position(i as u64);
            let speedup = row.speedup_vs_dense.map(|s| format!(", {s:.2}x vs dense")).unwrap_or_default();
            let msg = if row.ok() {
                format!(
                    "{} {} b{} t{}: {:.3} ms{speedup}",
                    row.model,
                    row.mode,
                    row.batch,
                    row.threads,
                    row.median_ms()
                )
            } else {
                format!("{} {} b{}: {}", row.model, row.mode, row.batch, row.status)
            };
            if progress.is_hidden() {
                println!("[{i}/{points}] {msg}");
            }
            progress.set_message(msg);
        }),
    };
    let summary = run_sweep(&spec, options)?;
    bar.finish();
    println!(
        "{} measured, {} failed, {} already in the file{}",
        summary.measured,
        summary.failed,
        summary.skipped,
        if summary.interrupted {
            "; interrupted: run again with --resume to finish"
        } else {
            ""
        }
    );
    if !args.no_charts {
        let rows = read_rows(std::slice::from_ref(&csv))?;
        let files = charts::draw_all(&rows, &args.out)?;
        println!("charts: {} files in {}", files.len(), args.out.display());
    }
    Ok(())
}

fn export_cmd(args: ExportArgs) -> Result<()> {
    let full = open_model(&args.model, &args.load.options())?;
    let model = if args.compact {
        compact_with(&full, &analyze(&full, DEFAULT_THRESHOLD), full.head().is_none())?.model
    } else {
        full
    };
    let bytes = issbench::onnx::export(&model, args.layers_only);
    issbench::checkpoint::write_atomically(&args.output, &bytes).with_context(|| format!("{}: cannot write", args.output.display()))?;
    println!(
        "wrote {} ({} bytes): hidden {}{}",
        args.output.display(),
        bytes.len(),
        sizes_label(&model.hidden_sizes()),
        if args.layers_only { ", LSTM layers only" } else { "" }
    );
    Ok(())
}

fn report_cmd(args: ReportArgs) -> Result<()> {
    let rows = read_rows(&args.csv)?;
    let files = charts::draw_all(&rows, &args.out)?;
    println!("{} rows; {} chart files in {}", rows.len(), files.len(), args.out.display());
    for f in files {
        println!("  {}", f.display());
    }
    Ok(())
}

fn compare_cmd(args: ReportArgs) -> Result<()> {
    let rows = read_rows(&args.csv)?;
    let c = compare::compare(&rows, &args.out)?;
    print!("{}", c.markdown);
    println!(
        "\n{} targets, {} shared points; files in {}",
        c.targets.len(),
        c.shared_points,
        args.out.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    // Usage errors exit 1 like every other user error (clap's own code, 2,
    // means "not equivalent" here); --help and --version exit 0.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Inspect(args) => inspect_cmd(args),
        Command::Compact(args) => compact_cmd(args),
        Command::Sweep(args) => sweep_cmd(args),
        Command::Report(args) => report_cmd(args),
        Command::ExportOnnx(args) => export_cmd(args),
        Command::Compare(args) => compare_cmd(args),
        Command::Models => {
            for (name, about) in BUILTIN {
                println!("{name:12} {about}");
            }
            println!("\nsweep presets (issbench sweep --preset NAME):");
            for (name, about) in PRESETS {
                println!("{name:12} {about}");
            }
            println!(
                "\nkernels run at SIMD level {} on this CPU ({})",
                SimdLevel::detect().name(),
                cpu_features()
            );
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("issbench: {e:#}");
            // 2: the compacted model is not equivalent; 1: any other error.
            let not_equivalent = matches!(e.downcast_ref::<IssError>(), Some(IssError::NotEquivalent { .. }));
            ExitCode::from(if not_equivalent { 2 } else { 1 })
        }
    }
}
