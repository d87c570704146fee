//! One case: the modes of a point (dense, iss, csr, and the peer's)
//! prepared together and timed in rounds taken in turn, so every speedup
//! compares samples from the same phases of the host.

use std::path::PathBuf;

use super::flags::flags;
use super::host::HostSnapshot;
use super::peer_file;
use super::session::{Prepared, Session};
use super::{Point, PoolError};
use crate::measure::{Budget, Rounds, Speedup, Timed, paired_speedup, time_rounds, timed_part};
use crate::mode::Mode;
use crate::peer::{OrtPeer, PeerPoint, PeerRun};
use crate::precision::Precision;
use crate::report::Row;

/// What [`Session::measure_case`] needs besides the points.
pub struct CaseOptions<'a> {
    /// Timing budget of each mode.
    pub budget: Budget,
    /// Time each dense and iss point on this peer too.
    pub peer: Option<&'a OrtPeer>,
    /// Allow more threads than the machine has cores (rows are flagged).
    pub oversubscribe: bool,
    /// The dense median of the same point measured earlier, for a case
    /// without a dense point of its own (a speedup without interval).
    pub earlier_dense: &'a dyn Fn(&Row) -> Option<f64>,
}

/// A prepared point or a peer, and the row its times complete.
enum Part {
    Ours(Prepared),
    Peer(PeerRun, Row),
}

impl Session {
    /// Measures the points of one case (the same source, batch, seq,
    /// threads and head; one point per mode) and returns one row per
    /// point, then the peer's rows. Points that cannot run come back as
    /// failed rows; the others are timed together.
    pub fn measure_case(&mut self, points: &[Point], options: &CaseOptions) -> Result<Vec<Row>, PoolError> {
        let Some(first) = points.first() else { return Ok(Vec::new()) };
        let threads = self.threads(first);
        let oversubscribed = threads > self.machine().cores;
        if oversubscribed && !options.oversubscribe {
            let why = format!(
                "{threads} threads on {} online cores: spare threads only slow every number; pass --oversubscribe (or oversubscribe = true) to measure it anyway",
                self.machine().cores
            );
            return Ok(points.iter().map(|p| self.base_row(p).failed(&why)).collect());
        }
        let mut rows_failed = Vec::new();
        let mut parts = Vec::new();
        for point in points {
            match self.prepare(point)? {
                Ok(prepared) => {
                    // ONNX Runtime runs fp32 and (quantized) int8 LSTMs; no bf16.
                    let peer = options
                        .peer
                        .filter(|_| point.mode.on_peer().is_some() && prepared.row.layers > 0 && point.precision != Precision::Bf16);
                    let peer_part = peer.map(|p| (p, self.start_peer(p, point, &prepared.row)));
                    parts.push(Part::Ours(prepared));
                    match peer_part {
                        Some((p, (Ok((run, agreement)), user_file))) => {
                            let mut row = peer_template(p, parts_row(&parts), user_file, agreement);
                            (row.max_abs_err, row.max_rel_err) = run.error().unzip();
                            parts.push(Part::Peer(run, row))
                        }
                        Some((p, (Err(e), user_file))) => {
                            rows_failed.push(peer_template(p, parts_row(&parts), user_file, None).failed(format!("onnxruntime: {e}")))
                        }
                        None => {}
                    }
                }
                Err(failed) => rows_failed.push(failed),
            }
        }
        let peer_pids: Vec<u32> = parts
            .iter()
            .filter_map(|p| match p {
                Part::Peer(run, _) => Some(run.pid()),
                Part::Ours(_) => None,
            })
            .collect();
        let host = HostSnapshot::take(&peer_pids);
        let results = self.time_parts(&mut parts, threads, options.budget)?;
        let load = host.and_then(|h| h.load_since());

        // The case's dense fp32 rounds: the reference of every speedup.
        let dense = parts.iter().zip(&results).find_map(|(p, r)| match (p, r) {
            (Part::Ours(prepared), Ok(rounds)) if prepared.row.mode == Mode::Dense && prepared.row.precision == Precision::Fp32 => {
                Some(rounds.clone())
            }
            _ => None,
        });
        let mut rows = Vec::new();
        for (part, result) in parts.iter().zip(results) {
            let template = match part {
                Part::Ours(prepared) => &prepared.row,
                Part::Peer(_, row) => row,
            };
            rows.push(match result {
                Ok(rounds) => {
                    let speedup = match &dense {
                        Some(dense) => Some(paired_speedup(dense, &rounds)),
                        None => (options.earlier_dense)(template).map(|d| Speedup {
                            estimate: d / rounds.stats().median_ns,
                            interval: None,
                        }),
                    };
                    let mut row = template.completed(&rounds.stats(), rounds.0.len(), speedup);
                    // The template's own flags (`input-cut`) first.
                    let measured = flags(&row, &rounds, load, oversubscribed);
                    if !measured.is_empty() {
                        row.flags = if row.flags.is_empty() {
                            measured
                        } else {
                            format!("{};{measured}", row.flags)
                        };
                    }
                    row
                }
                Err(e) if matches!(part, Part::Peer(..)) => template.failed(format!("onnxruntime: {e}")),
                Err(e) => template.failed(e),
            });
        }
        for part in parts {
            if let Part::Ours(prepared) = part {
                self.give_back(prepared);
            }
        }
        rows.extend(rows_failed);
        Ok(rows)
    }

    /// Times every part in rounds on the pool of `threads` workers (the
    /// peer's rounds are requests sent from one of its threads).
    fn time_parts(&mut self, parts: &mut [Part], threads: usize, budget: Budget) -> Result<Vec<Result<Rounds, String>>, PoolError> {
        let pool = self.pool(threads)?;
        Ok(pool.install(|| {
            let mut results: Vec<Option<Result<Rounds, String>>> = Vec::new();
            let (mut ready, mut slots) = (Vec::new(), Vec::new());
            for part in parts.iter_mut() {
                let timed = match part {
                    Part::Ours(prepared) => {
                        let (exec, inputs) = (&mut prepared.exec, &prepared.inputs);
                        timed_part(budget, move || exec.run(inputs).map(|_| ()))
                    }
                    Part::Peer(run, _) => Ok(Box::new(|round: Budget| run.sample(round)) as Timed),
                };
                // A part whose warm-up failed takes no turns.
                match timed {
                    Ok(t) => {
                        slots.push(results.len());
                        results.push(None);
                        ready.push(t);
                    }
                    Err(e) => results.push(Some(Err(e))),
                }
            }
            for (slot, result) in slots.into_iter().zip(time_rounds(budget, &mut ready)) {
                results[slot] = Some(result);
            }
            results.into_iter().map(|r| r.expect("every slot filled")).collect()
        }))
    }

    /// Starts the peer on `point`'s model: writes its ONNX graph to a
    /// temporary file, starts the peer with the point's batch, seq and
    /// threads (it loads the file, which is then removed) and returns it
    /// warmed up, ready to time rounds. A dense point whose source is an
    /// ONNX file runs that file instead, checked against issbench's model
    /// first (see `peer_file`): the run, the check's agreement, and
    /// whether the user's file runs.
    fn start_peer(&mut self, peer: &OrtPeer, point: &Point, row: &Row) -> (Result<(PeerRun, Option<f64>), String>, bool) {
        let shape = PeerPoint {
            batch: point.batch,
            seq: point.seq,
            threads: row.threads,
            vocab: 1,
            batch_major: false,
            int8: point.precision == Precision::Int8,
        };
        if let Some(file) = peer_file::user_file(point) {
            let started = file.and_then(|file| {
                let model = self.full_model().ok_or("no model instance")?;
                let vocab = model.embedding().map_or(1, |e| e.vocab());
                let prefix = temporary_onnx();
                let check = peer_file::write_check(model, &file, point, &prefix);
                let shape = PeerPoint {
                    vocab,
                    batch_major: file.io.input.batch_major,
                    ..shape
                };
                let started = check.and_then(|check| {
                    let started = peer.start_checked(&file.path, &shape, Some(&check));
                    let _ = (std::fs::remove_file(&check.input), std::fs::remove_file(&check.expected));
                    started
                });
                let (run, agreement) = started?;
                peer_file::agrees(&file, agreement.unwrap_or(f64::NAN))?;
                Ok((run, agreement))
            });
            return (started, true);
        }
        let (bytes, vocab) = match self.export_onnx(point) {
            Ok(exported) => exported,
            Err(status) => return (Err(status.to_string()), false),
        };
        let onnx = temporary_onnx();
        let started = std::fs::write(&onnx, bytes)
            .map_err(|e| format!("{}: {e}", onnx.display()))
            .and_then(|_| {
                let shape = PeerPoint {
                    vocab: vocab.unwrap_or(1),
                    ..shape
                };
                peer.start(&onnx, &shape)
            });
        let _ = std::fs::remove_file(&onnx);
        (started.map(|run| (run, None)), false)
    }
}

/// A fresh file name for a peer's model in the temporary folder.
fn temporary_onnx() -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!(".issbench-peer-{}-{n}.onnx", std::process::id()))
}

/// The row of the last prepared part.
fn parts_row(parts: &[Part]) -> &Row {
    match parts.last() {
        Some(Part::Ours(prepared)) => &prepared.row,
        _ => unreachable!("a peer follows its point"),
    }
}

/// The peer's row for issbench's `row`: mode `ort-dense` / `ort-iss` at
/// the row's precision, its backend, its own error (set when it starts);
/// on the user's own file, the backend says so and `verify_max_rel` is
/// the file's agreement with issbench's model.
fn peer_template(peer: &OrtPeer, row: &Row, user_file: bool, agreement: Option<f64>) -> Row {
    Row {
        mode: row.mode.on_peer().expect("only modes the peer runs are sent to it"),
        backend: if user_file {
            format!("{} user-file", peer.backend())
        } else {
            peer.backend()
        },
        verify_max_rel: if user_file { agreement } else { row.verify_max_rel },
        max_abs_err: None,
        max_rel_err: None,
        ..row.clone()
    }
}
