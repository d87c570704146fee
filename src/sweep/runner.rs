//! Runs a sweep: case by case through the [`Session`] (the modes of a point
//! built, verified, prepared and timed together), each row appended to the
//! CSV as soon as its case is measured.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use thiserror::Error;

use super::shard::Shard;
use super::spec::SweepSpec;
use crate::measure::Budget;
use crate::mode::Mode;
use crate::peer::OrtPeer;
use crate::pipeline::{CaseOptions, PoolError, Session};
use crate::precision::Precision;
use crate::report::{CsvAppender, ReportError, Row, read_rows};

/// A sweep that could not run at all (single points fail into their rows).
#[derive(Debug, Error)]
pub enum SweepError {
    /// The results file.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// A thread pool could not start.
    #[error(transparent)]
    Pool(#[from] PoolError),
}

/// Called after each row with the point's index (from 1), the number of
/// points and the row.
pub type RowCallback = Box<dyn FnMut(usize, usize, &Row)>;

/// How to run a sweep.
pub struct SweepOptions {
    /// The CSV to append to (`None`: rows go to `on_row` only).
    pub csv: Option<PathBuf>,
    /// Skip points whose row ([`Row::key`]) is already in the CSV.
    pub resume: bool,
    /// Set to stop after the case in progress (Ctrl-C).
    pub stop: Arc<AtomicBool>,
    /// Called after each row (progress display, `issbench run`'s output).
    pub on_row: RowCallback,
    /// Also time each dense and iss point on ONNX Runtime (rows `ort-dense`, `ort-iss`).
    pub peer: Option<OrtPeer>,
    /// The user's name for this machine, in every row (`--label`).
    pub label: String,
    /// Measure only this share of the cases (`--shard I/N`).
    pub shard: Option<Shard>,
}

/// How far the repeats of one point agree (`--repeat`).
#[derive(Debug, Clone, PartialEq)]
pub struct RepeatSpread {
    /// The point: model, mode, batch, seq, threads, head.
    pub point: String,
    /// The repeats' medians, ms.
    pub medians_ms: Vec<f64>,
    /// The repeats' speedups over dense (empty for dense).
    pub speedups: Vec<f64>,
}

impl RepeatSpread {
    /// Slowest over fastest median, minus one.
    pub fn spread(&self) -> f64 {
        let (lo, hi) = self
            .medians_ms
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), &m| (lo.min(m), hi.max(m)));
        hi / lo - 1.0
    }
}

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SweepSummary {
    /// Points measured and written.
    pub measured: usize,
    /// Rows that failed (written with `status = failed: ...`), the peer's included.
    pub failed: usize,
    /// Points skipped because `--resume` found them in the file.
    pub skipped: usize,
    /// Whether the stop flag ended the sweep early.
    pub interrupted: bool,
    /// With `repeat` > 1: how far the repeats of each point agree.
    pub spreads: Vec<RepeatSpread>,
}

/// The budget every point of `spec` is timed under.
pub fn budget(spec: &SweepSpec) -> Budget {
    Budget {
        warmup_runs: 1,
        time: Duration::from_millis(spec.budget_ms),
        min_runs: spec.min_runs,
        max_runs: spec.max_runs,
    }
}

/// Runs every case of `spec`, appending rows to `options.csv`.
pub fn run_sweep(spec: &SweepSpec, mut options: SweepOptions) -> Result<SweepSummary, SweepError> {
    let mut session = Session::new(&spec.name);
    session.set_label(&options.label);
    let mut done: HashSet<String> = HashSet::new();
    let mut dense_medians: HashMap<String, f64> = HashMap::new();
    let mut csv = match &options.csv {
        Some(path) => {
            // Opening first cuts a partial last line left by an interrupted run.
            let csv = CsvAppender::open(path)?;
            if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
                for r in read_rows(std::slice::from_ref(path))? {
                    if r.mode == Mode::Dense && r.precision == Precision::Fp32 && r.ok() {
                        dense_medians.insert(r.dense_key(), r.median_ns);
                    }
                    if options.resume {
                        done.insert(r.key());
                    }
                }
            }
            Some(csv)
        }
        None => None,
    };
    let budget = budget(spec);
    let cases = match options.shard {
        Some(shard) => shard.select(spec.cases(), budget.time, spec.min_runs),
        None => spec.cases(),
    };
    let shard = options.shard.map(|s| s.to_string()).unwrap_or_default();
    let total: usize = cases.iter().map(Vec::len).sum();
    let mut summary = SweepSummary::default();
    let mut measured_rows = Vec::new();
    let mut index = 0;
    for case in cases {
        if options.stop.load(Ordering::SeqCst) {
            summary.interrupted = true;
            break;
        }
        let keys: Vec<String> = case.iter().map(|p| session.key(p)).collect();
        if keys.iter().all(|k| done.contains(k)) {
            summary.skipped += case.len();
            index += case.len();
            continue;
        }
        let earlier = dense_medians.clone();
        let earlier_dense = move |r: &Row| earlier.get(&r.dense_key()).copied();
        let case_options = CaseOptions {
            budget,
            peer: options.peer.as_ref(),
            oversubscribe: case[0].oversubscribe,
            earlier_dense: &earlier_dense,
        };
        for mut row in session.measure_case(&case, &case_options)? {
            row.shard.clone_from(&shard);
            if !row.mode.is_peer() {
                index += 1;
            }
            // A case cut short by an interruption is measured again whole;
            // its rows already in the file are not written twice.
            if done.contains(&row.key()) {
                summary.skipped += 1;
                continue;
            }
            if row.ok() {
                summary.measured += usize::from(!row.mode.is_peer());
                if row.mode == Mode::Dense && row.precision == Precision::Fp32 {
                    dense_medians.insert(row.dense_key(), row.median_ns);
                }
            } else {
                summary.failed += 1;
            }
            if let Some(csv) = &mut csv {
                csv.append(&row)?;
            }
            (options.on_row)(index, total, &row);
            done.insert(row.key());
            if spec.repeat > 1 {
                measured_rows.push(row);
            }
        }
    }
    summary.spreads = repeat_spreads(&measured_rows);
    Ok(summary)
}

/// How far the repeats of each point measured agree.
fn repeat_spreads(rows: &[Row]) -> Vec<RepeatSpread> {
    let mut by: BTreeMap<String, RepeatSpread> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.ok()) {
        let point = format!(
            "{} {}{} b{} s{} t{}{}",
            r.model,
            r.mode,
            r.variant_suffix(),
            r.batch,
            r.seq,
            r.threads,
            if r.head { " +head" } else { "" }
        );
        let spread = by.entry(point.clone()).or_insert(RepeatSpread {
            point,
            medians_ms: Vec::new(),
            speedups: Vec::new(),
        });
        spread.medians_ms.push(r.median_ms());
        if r.mode != Mode::Dense || r.precision != Precision::Fp32 {
            spread.speedups.extend(r.speedup_vs_dense);
        }
    }
    by.into_values().filter(|s| s.medians_ms.len() > 1).collect()
}
