//! The `issbench` command line: parse, call the library, print.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;

use issbench::exec::{Backend, Dense, Executor};
use issbench::kernels::simd::{SimdLevel, cpu_features};
use issbench::measure::{Budget, Stats, time_runs};
use issbench::model::Inputs;
use issbench::model::synthetic::{BUILTIN, SynthSpec};

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
    /// List the built-in models.
    Models,
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    /// The full-width model, zeros included.
    Dense,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
}

#[derive(Parser)]
struct RunArgs {
    /// A built-in model name (see `issbench models`).
    model: String,
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
    let Some(spec) = SynthSpec::builtin(&args.model) else {
        bail!(
            "{}: not a built-in model (run `issbench models`); loading checkpoint files is not supported yet",
            args.model
        );
    };
    let full = spec.build().with_context(|| format!("building {}", args.model))?;
    let model = if args.layers_only { full.layers_only() } else { full };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("starting the thread pool")?;
    let mode = match args.mode {
        Mode::Dense => "dense",
    };
    let mut exec = Dense::prepare(&model, args.backend, args.layers_only, mode);
    let inputs = Inputs::random(&model, args.seq, args.batch, 1);
    let budget = Budget {
        time: Duration::from_secs_f64(args.time.max(0.0)),
        min_runs: args.min_runs.max(1),
        max_runs: args.max_runs.max(1),
        ..Budget::default()
    };
    let stats = pool.install(|| time_runs(budget, || exec.run(&inputs).map(|_| ())))?;
    let macs = model.macs_per_step(args.layers_only);
    let report = RunReport {
        model: model.name().to_string(),
        mode: exec.mode().to_string(),
        backend: exec.backend(),
        layers_only: args.layers_only,
        batch: args.batch,
        seq: args.seq,
        threads,
        hidden: model.hidden_sizes().iter().map(|h| h.to_string()).collect::<Vec<_>>().join("/"),
        macs_per_step: macs,
        gflops: 2.0 * (macs * args.batch * args.seq) as f64 / stats.median_ns,
        stats,
        cpu_features: cpu_features(),
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
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Models => {
            for (name, about) in BUILTIN {
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
            ExitCode::from(1)
        }
    }
}
