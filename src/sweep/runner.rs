//! Runs a sweep: every point through the [`Session`] (built, verified,
//! prepared, timed), one row appended to the CSV as soon as it is measured.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use thiserror::Error;

use super::spec::SweepSpec;
use crate::measure::{Budget, Stats};
use crate::mode::Mode;
use crate::peer::{OrtPeer, PeerPoint, PeerRun};
use crate::pipeline::{Point, PoolError, Prepared, Session, Source};
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
    /// Set to stop after the point in progress (Ctrl-C).
    pub stop: Arc<AtomicBool>,
    /// Called after each row (progress display, `issbench run`'s output).
    pub on_row: RowCallback,
    /// Also time each dense and iss point on ONNX Runtime (rows `ort-dense`, `ort-iss`).
    pub peer: Option<OrtPeer>,
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

/// The budget every point of `spec` is timed under.
pub fn budget(spec: &SweepSpec) -> Budget {
    Budget {
        warmup_runs: 1,
        time: Duration::from_millis(spec.budget_ms),
        min_runs: spec.min_runs,
        max_runs: spec.max_runs,
    }
}

/// Runs every point of `spec`, appending rows to `options.csv`.
pub fn run_sweep(spec: &SweepSpec, mut options: SweepOptions) -> Result<SweepSummary, SweepError> {
    let mut session = Session::new(&spec.name);
    let mut done: HashSet<String> = HashSet::new();
    let mut dense_medians: HashMap<String, f64> = HashMap::new();
    let mut csv = match &options.csv {
        Some(path) => {
            // Opening first cuts a partial last line left by an interrupted run.
            let csv = CsvAppender::open(path)?;
            if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
                for r in read_rows(std::slice::from_ref(path))? {
                    if r.mode == Mode::Dense && r.ok() {
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
    let points = spec.points();
    let total = points.len();
    let mut summary = SweepSummary::default();
    let budget = budget(spec);
    for (index, point) in points.iter().enumerate() {
        if options.stop.load(Ordering::SeqCst) {
            summary.interrupted = true;
            break;
        }
        let key = session.key(point);
        if done.contains(&key) {
            summary.skipped += 1;
            continue;
        }
        let peer = options
            .peer
            .as_ref()
            .filter(|_| point.mode.on_peer().is_some() && !matches!(point.source, Source::Gemm(_)));
        let rows = match session.prepare(point)? {
            Err(failed) => vec![failed],
            Ok(prepared) => measure(&mut session, prepared, point, budget, peer, &dense_medians, options.csv.as_deref()),
        };
        for row in rows {
            if row.ok() {
                summary.measured += usize::from(!row.mode.is_peer());
                if row.mode == Mode::Dense {
                    dense_medians.insert(row.dense_key(), row.median_ns);
                }
            } else {
                summary.failed += 1;
            }
            if let Some(csv) = &mut csv {
                csv.append(&row)?;
            }
            (options.on_row)(index + 1, total, &row);
        }
        done.insert(key);
    }
    Ok(summary)
}

/// Times one prepared point (interleaved with the peer, when there is one)
/// and returns its row and the peer's.
fn measure(
    session: &mut Session,
    mut prepared: Prepared,
    point: &Point,
    budget: Budget,
    peer: Option<&OrtPeer>,
    dense_medians: &HashMap<String, f64>,
    csv: Option<&Path>,
) -> Vec<Row> {
    // The peer loads and warms up first, so that its rounds can alternate with ours.
    let mut peer_run = peer.map(|p| start_peer(session, p, point, &prepared.row, csv));
    let timed = match &mut peer_run {
        Some(Ok(run)) => session.time(&mut prepared, budget, Some(run)),
        Some(Err(e)) => session.time(&mut prepared, budget, None).map(|(s, _)| (s, Some(Err(e.clone())))),
        None => session.time(&mut prepared, budget, None),
    };
    drop(peer_run);
    let dense_median = dense_medians.get(&prepared.row.dense_key()).copied();
    let rows = match timed {
        Ok((stats, theirs)) => {
            let row = prepared.row.completed(&stats, dense_median);
            // The peer's speedup is against issbench's dense median, which
            // for a dense point is this very row's.
            let dense_median = if row.mode == Mode::Dense {
                Some(row.median_ns)
            } else {
                dense_median
            };
            let mut rows = vec![row];
            if let (Some(peer), Some(theirs)) = (peer, theirs) {
                rows.push(peer_row(peer, &rows[0], theirs, dense_median));
            }
            rows
        }
        Err(e) => vec![prepared.row.failed(e)],
    };
    session.give_back(prepared);
    rows
}

/// Starts the ONNX Runtime peer on `point`'s model: exports it next to the
/// CSV (or in the temporary folder), starts the peer with the point's batch,
/// seq and threads (it loads the file, which is then removed) and returns
/// it ready to time rounds.
fn start_peer(session: &mut Session, peer: &OrtPeer, point: &Point, row: &Row, csv: Option<&Path>) -> Result<PeerRun, String> {
    let name = format!(".peer-{}.onnx", std::process::id());
    let onnx = csv.map_or_else(|| std::env::temp_dir().join(&name), |c| c.with_file_name(&name));
    let started = session
        .export_onnx(point)
        .map_err(|status| status.to_string())
        .and_then(|(bytes, vocab)| {
            std::fs::write(&onnx, bytes).map_err(|e| format!("{}: {e}", onnx.display()))?;
            let shape = PeerPoint {
                batch: point.batch,
                seq: point.seq,
                threads: row.threads,
                vocab: vocab.unwrap_or(1),
            };
            peer.start(&onnx, &shape)
        });
    let _ = std::fs::remove_file(&onnx);
    started
}

/// The peer's row for issbench's `row` (mode `ort-dense` / `ort-iss`,
/// speedup against issbench's dense median).
fn peer_row(peer: &OrtPeer, row: &Row, result: Result<Stats, String>, dense_median: Option<f64>) -> Row {
    let template = Row {
        mode: row.mode.on_peer().expect("only modes the peer runs are sent to it"),
        backend: peer.backend(),
        ..row.clone()
    };
    match result {
        Ok(stats) => template.completed(&stats, dense_median),
        Err(e) => template.failed(format!("onnxruntime: {e}")),
    }
}
