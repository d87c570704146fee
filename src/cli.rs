//! The command line's arguments (clap), and how they become library values.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use issbench::checkpoint::{Format as FileFormat, Layout, LoadOptions};
use issbench::exec::Backend;
use issbench::iss::{DEFAULT_THRESHOLD, DEFAULT_TOLERANCE};
use issbench::mode::{BlockShape, Mode};
use issbench::precision::Precision;
use issbench::report::check_label;
use issbench::sweep::{Grid, Shard, SweepSpec};

#[derive(Parser)]
#[command(
    name = "issbench",
    version,
    about = "Benchmark recurrent networks pruned with Intrinsic Sparse Structures: dense vs ISS vs sparse, on this machine"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Time one configuration of one model (a one-point sweep).
    Run(RunArgs),
    /// Read a checkpoint and report its tensors and what ISS compaction would keep.
    Inspect(InspectArgs),
    /// Compact a checkpoint, verify it, and write the reduced model as safetensors.
    Compact(CompactArgs),
    /// Measure a grid of points (a preset or a TOML spec) into a CSV, and draw the charts.
    Sweep(SweepArgs),
    /// Redraw every chart from result CSVs alone.
    Report(ReportArgs),
    /// Write a model (full or ISS-compacted) as an ONNX graph, for ONNX Runtime.
    ExportOnnx(ExportArgs),
    /// Set machines side by side for the points they share: times, ratios
    /// against a baseline, geometric means per mode.
    Compare(CompareArgs),
    /// Merge result CSVs (the shards of a sweep) into one, without duplicates.
    Merge(MergeArgs),
    /// List the built-in models and presets.
    Models,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// How to read a checkpoint (everything is detected by default).
#[derive(Parser)]
pub struct LoadArgs {
    /// File format: tf-checkpoint, torch-zip, safetensors, npz, npy, onnx.
    #[arg(long, value_parser = parse_file_format)]
    file_format: Option<FileFormat>,
    /// Naming scheme: tf-basic-lstm, tf-bidaf, rhn, pytorch, keras, onnx.
    #[arg(long, value_parser = parse_layout)]
    layout: Option<Layout>,
    /// TensorFlow BasicLSTMCell forget bias, folded into the f gate (not stored
    /// in TF checkpoints). Default 0.0 as in the ISS PTB code; 1.0 (TensorFlow's
    /// default, BiDAF's) for the tf-bidaf layout.
    #[arg(long, value_parser = finite::<f32>)]
    forget_bias: Option<f32>,
}

impl LoadArgs {
    pub fn options(&self) -> LoadOptions {
        LoadOptions {
            format: self.file_format,
            layout: self.layout,
            forget_bias: self.forget_bias,
        }
    }
}

fn parse_file_format(s: &str) -> Result<FileFormat, String> {
    FileFormat::parse(s).ok_or_else(|| format!("unknown format '{s}' ({})", FileFormat::names()))
}

fn parse_layout(s: &str) -> Result<Layout, String> {
    Layout::parse(s).ok_or_else(|| format!("unknown layout '{s}' ({})", Layout::names()))
}

fn parse_backend(s: &str) -> Result<Backend, String> {
    match Backend::parse(s) {
        Some(b @ (Backend::Packed | Backend::Matrixmultiply)) => Ok(b),
        _ => Err(format!("unknown backend '{s}' (packed or matrixmultiply)")),
    }
}

/// A finite number.
fn finite<T: std::str::FromStr + Into<f64> + Copy>(s: &str) -> Result<T, String> {
    let v: T = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if v.into().is_finite() {
        Ok(v)
    } else {
        Err(format!("'{s}' is not a finite number"))
    }
}

/// A finite number of at least 0.
fn non_negative<T: std::str::FromStr + Into<f64> + Copy>(s: &str) -> Result<T, String> {
    let v: T = finite(s)?;
    if v.into() >= 0.0 { Ok(v) } else { Err(format!("{s} is negative")) }
}

/// A fraction in [0, 1].
fn fraction(s: &str) -> Result<f64, String> {
    let v: f64 = finite(s)?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{s} is not in [0, 1]"))
    }
}

/// Seconds of timing: from 0 (the fewest runs only) to a day.
fn seconds(s: &str) -> Result<f64, String> {
    let v: f64 = finite(s)?;
    if (0.0..=86_400.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{s} s: give 0 to 86400 seconds"))
    }
}

/// ISS analysis settings shared by the commands that compact.
#[derive(Parser)]
pub struct IssArgs {
    /// A component is removable when all its outgoing weights are at most this in magnitude.
    #[arg(long, default_value_t = DEFAULT_THRESHOLD, value_parser = non_negative::<f32>)]
    pub threshold: f32,
    /// Also shrink a last layer that feeds the model output directly (no
    /// head); the outputs are then the kept units only.
    #[arg(long)]
    pub shrink_output: bool,
}

#[derive(Parser)]
pub struct InspectArgs {
    /// Checkpoint: a file, a TensorFlow checkpoint folder, .index file or prefix.
    pub path: PathBuf,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub iss: IssArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: InspectFormat,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum InspectFormat {
    Table,
    Json,
}

#[derive(Parser)]
pub struct CompactArgs {
    /// Checkpoint to compact.
    pub path: PathBuf,
    /// Where to write the compacted model (safetensors, PyTorch names).
    #[arg(short, long)]
    pub output: PathBuf,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub iss: IssArgs,
    /// Largest accepted relative output error of the compacted model.
    #[arg(long, default_value_t = DEFAULT_TOLERANCE, value_parser = non_negative::<f64>)]
    pub tolerance: f64,
}

#[derive(Parser)]
pub struct ReportArgs {
    /// Result CSVs, each optionally named `NAME=file.csv` to label the
    /// machine that measured it (several machines: one folder of charts each).
    #[arg(required = true)]
    pub csv: Vec<String>,
    /// Folder for the charts (one subfolder per machine when there are
    /// several, and the comparison).
    #[arg(long, required_unless_present = "html")]
    pub out: Option<PathBuf>,
    /// Also write one self-contained `index.html` into this folder: machine
    /// summaries, tables and every chart inline.
    #[arg(long)]
    pub html: Option<PathBuf>,
}

#[derive(Parser)]
pub struct CompareArgs {
    /// Result CSVs, each optionally named `NAME=file.csv` to label the
    /// machine that measured it.
    #[arg(required = true)]
    pub csv: Vec<String>,
    /// Folder for compare.md, compare.csv and the charts.
    #[arg(long)]
    pub out: PathBuf,
    /// The machine the others are divided by: its label, its number (1 is
    /// the first machine listed), or a part of its name; default the first.
    #[arg(long)]
    pub baseline: Option<String>,
}

#[derive(Parser)]
pub struct MergeArgs {
    /// Result CSVs to merge (the shards of one sweep, or any result files).
    #[arg(required = true)]
    pub csv: Vec<PathBuf>,
    /// The merged CSV to write (must not exist).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Fail unless the merged rows measure exactly the points of this CSV
    /// (an unsharded run of the same sweep), each once.
    #[arg(long)]
    pub expect: Option<PathBuf>,
}

#[derive(Parser)]
pub struct SweepArgs {
    /// Built-in preset: quick, ptb, deepbench, deepbench-sparse, full, bidaf or rhn (see `issbench models`).
    #[arg(long, default_value = "quick", conflicts_with = "config")]
    pub preset: String,
    /// A TOML sweep spec instead of a preset (see README).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Folder for NAME.csv and the charts.
    #[arg(long, default_value = "results/latest")]
    pub out: PathBuf,
    /// Skip points already in NAME.csv (same machine, model, mode, backend, batch, seq, threads, head).
    #[arg(long)]
    pub resume: bool,
    /// Override the spec's timed-run budget per point, milliseconds.
    #[arg(long)]
    pub budget_ms: Option<u64>,
    /// Name this machine in every row (what `compare` and `report` call it).
    #[arg(long, value_parser = check_label)]
    pub label: Option<String>,
    /// Measure only share I of N (0-based, cost-balanced, the same split
    /// on every machine) into NAME.shard-I-of-N.csv; merge the shards with
    /// `issbench merge`. For Slurm arrays: `--shard $SLURM_ARRAY_TASK_ID/N`.
    #[arg(long)]
    pub shard: Option<Shard>,
    /// Do not draw charts after the sweep.
    #[arg(long)]
    pub no_charts: bool,
    /// Also time each dense and iss point on a peer: `ort` (ONNX Runtime
    /// through tools/peer_ort.py and ISSBENCH_PYTHON).
    #[arg(long, value_parser = ["ort"])]
    pub peer: Option<String>,
    #[command(flatten)]
    pub stability: StabilityArgs,
}

/// Repeats and oversubscription, for `run` and `sweep`.
#[derive(Parser)]
pub struct StabilityArgs {
    /// Measure everything N times, one pass after the other, and report
    /// how far the passes agree.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub repeat: Option<u64>,
    /// Measure thread counts above the machine's cores (else those points
    /// fail, saying why); their rows are flagged `oversubscribed`.
    #[arg(long)]
    pub oversubscribe: bool,
}

impl StabilityArgs {
    /// Applies the flags to `spec`.
    pub fn apply(&self, spec: &mut SweepSpec) {
        if let Some(n) = self.repeat {
            spec.repeat = n as usize;
        }
        if self.oversubscribe {
            spec.grids.iter_mut().for_each(|g| g.oversubscribe = true);
        }
    }
}

#[derive(Parser)]
pub struct ExportArgs {
    /// A built-in model name or a checkpoint path.
    pub model: String,
    /// Where to write the ONNX model.
    #[arg(short, long)]
    pub output: PathBuf,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Export the ISS-compacted model (verified first) instead of the full one.
    #[arg(long)]
    pub compact: bool,
    #[command(flatten)]
    pub iss: IssArgs,
    /// Recurrent layers only (features in, hidden states out), no embedding or head.
    #[arg(long)]
    pub layers_only: bool,
    /// Fix the sequence length (required for RHN layers, which are
    /// written unrolled over it: no ONNX op computes them).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub seq: Option<u64>,
}

#[derive(Parser)]
pub struct RunArgs {
    /// A built-in model name (see `issbench models`) or a checkpoint path.
    pub model: String,
    #[command(flatten)]
    pub load: LoadArgs,
    /// What to run.
    #[arg(long, value_enum, default_value = "dense")]
    pub mode: Mode,
    /// The products' number format: fp32, bf16 or int8 (dense and iss on
    /// the packed backend); bf16 and int8 rows carry their output error
    /// against fp32.
    #[arg(long, value_enum, default_value = "fp32")]
    pub precision: Precision,
    /// bf16 and int8: the largest output error, relative to the largest
    /// fp32 output, before the point fails as not equivalent (exit code
    /// 2); default 2e-2 for bf16, 5e-2 for int8.
    #[arg(long, value_parser = non_negative::<f64>)]
    pub tolerance: Option<f64>,
    /// Sequences per batch.
    #[arg(long, default_value_t = 10)]
    pub batch: usize,
    /// Time steps per sequence.
    #[arg(long, default_value_t = 30)]
    pub seq: usize,
    /// Worker threads; default: all logical cores.
    #[arg(long, default_value_t = 0, hide_default_value = true)]
    pub threads: usize,
    /// Time the recurrent layers only, without embedding and output projection.
    #[arg(long)]
    pub layers_only: bool,
    /// GEMM backend: `packed` (issbench's kernel) or `matrixmultiply`.
    #[arg(long, default_value = "packed", value_parser = parse_backend)]
    pub backend: Backend,
    /// Seconds of timed runs (after warm-up).
    #[arg(long, default_value_t = 2.0, value_parser = seconds)]
    pub time: f64,
    /// Fewest timed runs, whatever the time.
    #[arg(long, default_value_t = 5)]
    pub min_runs: usize,
    /// Most timed runs.
    #[arg(long, default_value_t = 200)]
    pub max_runs: usize,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    #[command(flatten)]
    pub iss: IssArgs,
    /// CSR and BSR: prune the recurrent weights to this fraction of zeros
    /// (global magnitude pruning, of blocks for bsr) instead of matching the
    /// ISS model's weight count.
    #[arg(long, value_parser = fraction)]
    pub sparsity: Option<f64>,
    /// BSR: the block shape, ROWSxCOLS (1 to 64 each).
    #[arg(long, default_value = "16x16", value_parser = BlockShape::parse)]
    pub block: BlockShape,
    /// Also time the dense model in fp32 in the same rounds, for a speedup
    /// with its interval (at bf16 or int8, also the mode in fp32 and dense
    /// at that precision).
    #[arg(long)]
    pub with_dense: bool,
    #[command(flatten)]
    pub stability: StabilityArgs,
}

impl RunArgs {
    /// The one-point sweep `run` is (two points with `--with-dense`).
    pub fn spec(&self) -> SweepSpec {
        let load = self.load.options();
        let mut modes = vec![self.mode];
        let mut precision = vec![self.precision];
        if self.with_dense {
            if self.mode != Mode::Dense {
                modes.insert(0, Mode::Dense);
            }
            if self.precision != Precision::Fp32 {
                precision.insert(0, Precision::Fp32);
            }
        }
        let mut spec = SweepSpec {
            name: "run".into(),
            budget_ms: (self.time * 1e3).round() as u64,
            min_runs: self.min_runs,
            max_runs: self.max_runs,
            backend: match self.backend {
                Backend::Matrixmultiply => "matrixmultiply",
                _ => "packed",
            }
            .into(),
            grids: vec![Grid {
                models: vec![self.model.clone()],
                modes,
                precision,
                tolerance: self.tolerance,
                batch: vec![self.batch],
                seq: vec![self.seq],
                threads: vec![self.threads],
                head: vec![!self.layers_only],
                threshold: self.iss.threshold,
                shrink_output: self.iss.shrink_output,
                sparsity: self.sparsity,
                block: vec![self.block],
                file_format: load.format.map(|f| f.name().to_string()),
                layout: load.layout.map(|l| l.name().to_string()),
                forget_bias: load.forget_bias,
                ..Grid::default()
            }],
            repeat: 1,
        };
        self.stability.apply(&mut spec);
        spec
    }
}
