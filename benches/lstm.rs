//! Whole forward passes under criterion, over the same points as
//! `issbench sweep --preset quick` and `--preset ptb` (LSTM layers, seq 30,
//! all threads; the ptb points also with the head):
//! `lstm/ptb/{dense,iss,csr}/b{1,10,64}[/head]` and
//! `lstm/quick/h{H}-k{K}/{mode}/b{B}`.
//!
//! After criterion finishes, the estimates of the benchmarks this run
//! measured (and only those) are exported into issbench's CSV schema with
//! the charts, under `target/criterion-export` (or the folder in
//! `ISSBENCH_EXPORT_DIR`), and printed: the median, as the CSV has it, next
//! to criterion's own report. Models are built, compacted, pruned and
//! verified by the sweep's own [`Session`], so the bench measures exactly
//! what the sweep measures; only the points a filter selects are built.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::Criterion;
use issbench::pipeline::{Point, Session, Source};
use issbench::report::criterion::rows_from_criterion;
use issbench::report::{ReportError, Row, charts, to_csv, write_atomically};
use issbench::sweep::SweepSpec;

/// The bench id of a point: `ptb/iss/b10`, `quick/h1024-k0.25/csr/b1`.
fn bench_id(preset: &str, point: &Point) -> String {
    let mut id = match &point.source {
        Source::Named(..) => format!("{preset}/{}/b{}", point.mode.name(), point.batch),
        Source::Synthetic { hidden, kept, .. } => format!("{preset}/h{hidden}-k{kept}/{}/b{}", point.mode.name(), point.batch),
        Source::Gemm(g) => format!("{preset}/m{}_k{}_s{}/{}/n{}", g.m, g.k, g.sparsity, point.mode.name(), point.batch),
    };
    if point.head {
        id.push_str("/head");
    }
    id
}

/// The points benched: the quick preset, and the ptb preset at seq 30 on all threads.
fn points(preset: &str) -> (SweepSpec, Vec<Point>) {
    let spec = SweepSpec::preset(preset).expect("built-in preset");
    let points = spec.points().into_iter().filter(|p| p.seq == 30 && p.threads == 0).collect();
    (spec, points)
}

/// Criterion's options that take a value (so the value is not the filter).
const VALUE_OPTIONS: &[&str] = &[
    "--save-baseline",
    "-s",
    "--baseline",
    "-b",
    "--baseline-lenient",
    "--load-baseline",
    "--profile-time",
    "--sample-size",
    "--warm-up-time",
    "--measurement-time",
    "--nresamples",
    "--noise-threshold",
    "--confidence-level",
    "--significance-level",
    "--output-format",
    "--color",
    "-c",
    "--plotting-backend",
    "--format",
];

/// Whether criterion will run the benchmark `id` under this command line:
/// its filter is the first argument that is no option nor an option's
/// value (a regular expression, or the exact id with `--exact`).
fn selected(id: &str) -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let exact = args.iter().any(|a| a == "--exact");
    let mut filter = None;
    let mut skip = false;
    for a in &args {
        if std::mem::take(&mut skip) {
            continue;
        }
        if VALUE_OPTIONS.contains(&a.as_str()) {
            skip = true;
        } else if !a.starts_with('-') {
            filter = Some(a.clone());
            break;
        }
    }
    match filter {
        None => true,
        Some(f) if exact => f == id,
        Some(f) => regex::Regex::new(&f).map_or(true, |re| re.is_match(id)),
    }
}

fn main() {
    charts::register_font();
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let mut templates: Vec<(String, Row)> = Vec::new();
    for preset in ["ptb", "quick"] {
        let (spec, points) = points(preset);
        let mut session = Session::new(&spec.name);
        let mut group = criterion.benchmark_group("lstm");
        for point in &points {
            let id = bench_id(preset, point);
            if !selected(&format!("lstm/{id}")) {
                continue;
            }
            let mut prepared = match session.prepare(point).expect("thread pool") {
                Ok(p) => p,
                Err(failed) => {
                    eprintln!("lstm/{id}: {}", failed.status);
                    continue;
                }
            };
            let pool = session.pool(session.threads(point)).expect("thread pool");
            group.bench_function(&id, |b| {
                b.iter_custom(|iters| {
                    pool.install(|| {
                        let t = Instant::now();
                        for _ in 0..iters {
                            prepared.exec.run(&prepared.inputs).expect("inputs fit");
                        }
                        t.elapsed()
                    })
                })
            });
            templates.push((format!("lstm/{id}"), prepared.row.clone()));
            session.give_back(prepared);
        }
        group.finish();
    }
    criterion.final_summary();
    export(&templates);
}

/// Writes criterion's estimates as issbench rows and charts.
fn export(templates: &[(String, Row)]) {
    let criterion_dir = std::env::var_os("CRITERION_HOME").map_or_else(|| PathBuf::from("target/criterion"), PathBuf::from);
    let out = std::env::var_os("ISSBENCH_EXPORT_DIR").map_or_else(|| PathBuf::from("target/criterion-export"), PathBuf::from);
    let rows = match rows_from_criterion(&criterion_dir, templates) {
        Ok(rows) if !rows.is_empty() => rows,
        Ok(_) => return eprintln!("criterion export: no estimates under {}", criterion_dir.display()),
        Err(e) => return eprintln!("criterion export: {e}"),
    };
    for r in &rows {
        let id = templates.iter().find(|(_, t)| t.key() == r.key()).map_or("", |(id, _)| id.as_str());
        eprintln!(
            "exported {id}: median {:.3} ms [{:.3}, {:.3}], {} samples",
            r.median_ms(),
            r.ci_low_ns / 1e6,
            r.ci_high_ns / 1e6,
            r.runs
        );
    }
    // Written whole to a temporary file, then renamed over the last export.
    let csv_path = out.join("criterion.csv");
    let written = std::fs::create_dir_all(&out)
        .map_err(|error| ReportError::Io { path: out.clone(), error })
        .and_then(|_| to_csv(&rows))
        .and_then(|text| write_atomically(&csv_path, text.as_bytes()));
    if let Err(e) = written {
        return eprintln!("criterion export: {e}");
    }
    match charts::draw_all(&rows, &out) {
        Ok(files) => eprintln!(
            "criterion export: {} rows in {}, {} chart files",
            rows.len(),
            csv_path.display(),
            files.len()
        ),
        Err(e) => eprintln!("criterion export: charts: {e}"),
    }
}
