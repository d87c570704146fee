//! The `issbench` command line: parse, call the library, print.

mod cli;
mod exit;

use std::cell::RefCell;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use clap::Parser;

use cli::{
    Cli, Command, CompactArgs, CompareArgs, ExportArgs, Format, InspectArgs, InspectFormat, MergeArgs, ReportArgs, RunArgs, SweepArgs,
};
use exit::{Interrupted, PointFailed, check_output, exit_code, note_shadowed};
use issbench::checkpoint::{is_checkpoint_path, load, open_model, save_compacted, write_atomically};
use issbench::inspect::inspect;
use issbench::iss::{DEFAULT_TOLERANCE, compact_verified};
use issbench::kernels::simd::{SimdLevel, cpu_features};
use issbench::model::sizes_label;
use issbench::model::synthetic::BUILTIN;
use issbench::peer::OrtPeer;
use issbench::report::{Input, Status, charts, compare, html, merge, parse_input, read_inputs, read_rows, table, to_csv};
use issbench::sweep::{PRESETS, RepeatSpread, SweepOptions, SweepSpec, budget, run_sweep};

fn run(args: RunArgs) -> Result<()> {
    note_shadowed(&args.model);
    let spec = args.spec();
    spec.validate()?;
    let rows = Rc::new(RefCell::new(Vec::new()));
    let sink = rows.clone();
    let options = SweepOptions {
        csv: None,
        resume: false,
        stop: Arc::new(AtomicBool::new(false)),
        on_row: Box::new(move |_, _, row| sink.borrow_mut().push(row.clone())),
        peer: None,
        label: String::new(),
        shard: None,
    };
    let summary = run_sweep(&spec, options)?;
    let rows = rows.take();
    // The point asked for: the last row of the last pass (dense comes first).
    let row = rows
        .iter()
        .rev()
        .find(|r| r.mode == args.mode && r.precision == args.precision)
        .context("the run measured nothing")?;
    match args.format {
        Format::Table if !row.ok() => {}
        Format::Table => {
            print!("{}", table::row_text(row));
            print_spreads(&summary.spreads);
        }
        Format::Csv => print!("{}", to_csv(&rows)?),
        Format::Json if rows.len() == 1 => println!("{}", serde_json::to_string_pretty(row)?),
        Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
    }
    match &row.status {
        Status::Ok => Ok(()),
        status => Err(PointFailed(status.clone()).into()),
    }
}

fn inspect_cmd(args: InspectArgs) -> Result<()> {
    let ck = load(&args.path, &args.load.options())?;
    let report = inspect(&ck, args.iss.threshold, args.iss.shrink_output);
    match args.format {
        InspectFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        InspectFormat::Table => print!("{}", report.text(&args.path)),
    }
    Ok(())
}

fn compact_cmd(args: CompactArgs) -> Result<()> {
    check_output(&args.path, &args.output)?;
    let ck = load(&args.path, &args.load.options())?;
    let v = compact_verified(&ck.model, args.iss.threshold, args.iss.shrink_output, args.tolerance)?;
    let (full, kept) = (v.report.cost_full(), v.report.cost_kept(args.iss.shrink_output));
    println!(
        "compacted {}: hidden {} -> {}; weights {} -> {}; ideal speedup {:.2}x",
        args.path.display(),
        sizes_label(&v.report.full_sizes()),
        sizes_label(&v.report.kept_sizes(args.iss.shrink_output)),
        full.params_with_head,
        kept.params_with_head,
        v.report.ideal_speedup(args.iss.shrink_output)
    );
    println!(
        "verify   compacted vs full on random inputs: max abs error {:.3e}, max relative error {:.3e} (tolerance {:e})",
        v.equivalence.max_abs, v.equivalence.max_rel, args.tolerance
    );
    save_compacted(&v, &args.path, &args.output)?;
    println!("wrote    {}", args.output.display());
    Ok(())
}

fn sweep_cmd(args: SweepArgs) -> Result<()> {
    let mut spec = match &args.config {
        Some(path) => SweepSpec::from_file(path)?,
        None => SweepSpec::preset(&args.preset)?,
    };
    if let Some(ms) = args.budget_ms {
        spec.budget_ms = ms;
    }
    args.stability.apply(&mut spec);
    spec.validate()?;
    let csv = args.out.join(match args.shard {
        Some(shard) => shard.file_name(&spec.name),
        None => format!("{}.csv", spec.name),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let handler_stop = stop.clone();
    ctrlc::set_handler(move || {
        if handler_stop.swap(true, Ordering::SeqCst) {
            eprintln!("\nissbench: interrupted again; exiting now (the CSV holds every finished point)");
            std::process::exit(130);
        }
        eprintln!("\nissbench: stopping after the point in progress (Ctrl-C again to quit now)");
    })
    .context("installing the Ctrl-C handler")?;
    let points: usize = match args.shard {
        Some(shard) => shard
            .select(spec.cases(), budget(&spec).time, spec.min_runs)
            .iter()
            .map(Vec::len)
            .sum(),
        None => spec.points().len(),
    };
    let share = args.shard.map(|s| format!(" (shard {s})")).unwrap_or_default();
    println!(
        "sweep {}{share}: {points} points, {} ms per point, writing {}",
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
    let peer = args.peer.as_ref().and_then(|_| match OrtPeer::find() {
        Ok(p) => {
            println!("peer: onnxruntime {} (rows ort-dense, ort-iss)", p.version);
            Some(p)
        }
        Err(why) => {
            println!("peer: ONNX Runtime not available, sweeping without it: {why}");
            None
        }
    });
    let options = SweepOptions {
        peer,
        label: args.label.clone().unwrap_or_default(),
        shard: args.shard,
        csv: Some(csv.clone()),
        resume: args.resume,
        stop,
        on_row: Box::new(move |i, _, row| {
            progress.set_position(i as u64);
            let msg = table::progress_line(row);
            if progress.is_hidden() {
                println!("[{i}/{points}] {msg}");
            }
            progress.set_message(msg);
        }),
    };
    let summary = run_sweep(&spec, options)?;
    bar.finish();
    print_spreads(&summary.spreads);
    println!(
        "{} measured, {} failed, {} already in the file",
        summary.measured, summary.failed, summary.skipped
    );
    if args.shard.is_some() {
        println!("charts: not drawn for a shard; merge the shards (issbench merge) and run issbench report");
    } else if !args.no_charts {
        let files = charts::draw_all(&read_rows(std::slice::from_ref(&csv))?, &args.out)?;
        println!("charts: {} files in {}", files.len(), args.out.display());
    }
    if summary.interrupted {
        return Err(Interrupted.into());
    }
    Ok(())
}

/// How far repeated measurements of each point agree (`--repeat`).
fn print_spreads(spreads: &[RepeatSpread]) {
    if spreads.is_empty() {
        return;
    }
    println!("repeats: slowest over fastest median, and the speedups of each repeat");
    for s in spreads {
        let speedups: Vec<String> = s.speedups.iter().map(|v| format!("{v:.2}x")).collect();
        println!("  {:40} {:>6.1}%  {}", s.point, 100.0 * s.spread(), speedups.join(" "));
    }
}

fn export_cmd(args: ExportArgs) -> Result<()> {
    note_shadowed(&args.model);
    if is_checkpoint_path(&args.model) {
        check_output(std::path::Path::new(&args.model), &args.output)?;
    }
    let full = open_model(&args.model, &args.load.options())?;
    let model = if args.compact {
        compact_verified(&full, args.iss.threshold, args.iss.shrink_output, DEFAULT_TOLERANCE)?
            .compacted
            .model
    } else {
        full
    };
    let bytes = issbench::onnx::export_for(&model, args.layers_only, args.seq.map(|n| n as usize))?;
    write_atomically(&args.output, &bytes).with_context(|| format!("{}: cannot write", args.output.display()))?;
    println!(
        "wrote {} ({} bytes): hidden {}{}",
        args.output.display(),
        bytes.len(),
        sizes_label(&model.hidden_sizes()),
        if args.layers_only { ", recurrent layers only" } else { "" }
    );
    Ok(())
}

/// The result files named on the command line (`NAME=file.csv` labels a file's machine).
fn inputs(args: &[String]) -> Result<Vec<Input>> {
    args.iter().map(|a| parse_input(a).map_err(anyhow::Error::msg)).collect()
}

fn report_cmd(args: ReportArgs) -> Result<()> {
    let inputs = inputs(&args.csv)?;
    let rows = read_inputs(&inputs)?;
    let machines = issbench::report::machines::machines(&rows);
    if let Some(out) = &args.out {
        let files = charts::draw_all(&rows, out)?;
        println!(
            "{} rows from {} machine(s); {} chart files in {}",
            rows.len(),
            machines.len(),
            files.len(),
            out.display()
        );
        if machines.len() > 1 {
            for (i, m) in machines.iter().enumerate() {
                println!("  M{}: {} -> {}", i + 1, m.name(), out.join(m.slug(i + 1)).display());
            }
            match compare::compare(&rows, None) {
                Ok(c) => {
                    let written = compare::write(&c, out)?;
                    println!("  comparison: {} files ({} shared points)", written.len(), c.points.len());
                }
                Err(e) => println!("  no comparison: {e}"),
            }
        }
    }
    if let Some(dir) = &args.html {
        let sources: Vec<String> = args.csv.clone();
        let page = html::write_html(&rows, &sources, dir)?;
        println!("report: {}", page.display());
    }
    Ok(())
}

fn compare_cmd(args: CompareArgs) -> Result<()> {
    let rows = read_inputs(&inputs(&args.csv)?)?;
    let c = compare::compare(&rows, args.baseline.as_deref())?;
    let files = compare::write(&c, &args.out)?;
    print!("{}", compare::markdown(&c));
    println!(
        "\n{} machines, {} shared points; {} files in {}",
        c.machines.len(),
        c.points.len(),
        files.len(),
        args.out.display()
    );
    Ok(())
}

fn merge_cmd(args: MergeArgs) -> Result<()> {
    if args.output.exists() {
        anyhow::bail!("{}: already exists; merge writes a new file", args.output.display());
    }
    let merged = merge::merge(&args.csv)?;
    let missing = merged.missing();
    issbench::report::write_atomically(&args.output, to_csv(&merged.rows)?.as_bytes())?;
    println!(
        "{}: {} rows from {} files ({} read, {} older copies dropped)",
        args.output.display(),
        merged.rows.len(),
        args.csv.len(),
        merged.read,
        merged.duplicates
    );
    for ((name, count), present) in &merged.shards {
        println!(
            "  {name}: shards {} of {count}",
            present.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
        );
    }
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!("incomplete: {}", missing.join("; ")));
    }
    if let Some(expected) = &args.expect {
        let differences = merge::differences(&merged.rows, &read_rows(std::slice::from_ref(expected))?);
        if differences.is_empty() {
            println!("  the same {} measurements as {}, each once", merged.rows.len(), expected.display());
        } else {
            let shown: Vec<&str> = differences.iter().take(10).map(String::as_str).collect();
            problems.push(format!(
                "not the points of {} ({} differences): {}",
                expected.display(),
                differences.len(),
                shown.join("; ")
            ));
        }
    }
    if !problems.is_empty() {
        anyhow::bail!("{} (the merged file is written)", problems.join("; "));
    }
    Ok(())
}

fn models_cmd() -> Result<()> {
    for (name, about) in BUILTIN {
        println!("{name:12} {about}");
    }
    println!("\nsweep presets (issbench sweep --preset NAME):");
    for (name, about) in PRESETS {
        println!("{name:12} {about}");
    }
    let (level, features) = (SimdLevel::detect().name(), cpu_features());
    println!("\nkernels run at SIMD level {level} on this CPU ({features})");
    Ok(())
}

fn main() -> ExitCode {
    // A closed standard output (`issbench models | head -1`) ends the
    // program quietly, as it ends other command-line tools, instead of a
    // panic on the failed write.
    #[cfg(target_os = "linux")]
    // SAFETY: restoring the default disposition of SIGPIPE, before any
    // thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
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
        Command::Merge(args) => merge_cmd(args),
        Command::Models => models_cmd(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("issbench: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}
