//! The ONNX Runtime peer: `tools/peer_ort.py`, run by a Python that has
//! `onnxruntime` (ISSBENCH_PYTHON, else `python3`), times the models
//! [`crate::onnx::export`] writes, or the user's own ONNX file (checked
//! against issbench's outputs first, [`OrtPeer::start_checked`]), with the
//! same batch, sequence length, threads and timing protocol as issbench. It stays running with the model
//! loaded ([`PeerRun`]) and times rounds on request, so the sweep can
//! alternate them with its own ([`crate::measure::time_rounds`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use crate::measure::Budget;

/// Longest the peer may take to load a model and warm up before its first
/// answer (a large model with its head loads in seconds).
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// Longest a round may take beyond its own time budget.
const ROUND_SLACK: Duration = Duration::from_secs(120);

/// Longest a one-shot peer command (`version`, `check`) may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// A usable peer: the interpreter, the script and onnxruntime's version.
#[derive(Debug, Clone)]
pub struct OrtPeer {
    python: PathBuf,
    script: PathBuf,
    /// onnxruntime's version, e.g. `1.32.0`.
    pub version: String,
}

/// Runs `cmd` to its end, within [`COMMAND_TIMEOUT`] (a peer that never
/// answers is killed), and returns its output.
fn output(cmd: &mut Command) -> Result<String, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let (done, finished) = channel();
    let (mut stdout, mut stderr) = (child.stdout.take().expect("piped"), child.stderr.take().expect("piped"));
    std::thread::spawn(move || {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let _ = stdout.read_to_end(&mut out);
        let _ = stderr.read_to_end(&mut err);
        let _ = done.send((out, err));
    });
    let (stdout, stderr) = match finished.recv_timeout(COMMAND_TIMEOUT) {
        Ok(outputs) => outputs,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{cmd:?} did not finish within {} s; stopped it", COMMAND_TIMEOUT.as_secs()));
        }
    };
    let status = child.wait().map_err(|e| format!("{cmd:?}: {e}"))?;
    let out = std::process::Output { status, stdout, stderr };
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("").trim().to_string();
        return Err(format!("{}{last}", String::from_utf8_lossy(&out.stdout)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl OrtPeer {
    /// Finds the peer, or says why it is not available.
    pub fn find() -> Result<OrtPeer, String> {
        let python = std::env::var_os("ISSBENCH_PYTHON").map_or_else(|| PathBuf::from("python3"), PathBuf::from);
        let script = std::env::var_os("ISSBENCH_PEER_SCRIPT")
            .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/peer_ort.py"), PathBuf::from);
        if !script.is_file() {
            return Err(format!("{} not found (set ISSBENCH_PEER_SCRIPT)", script.display()));
        }
        OrtPeer::with(python, script).map_err(|(python, e)| {
            format!(
                "{python} cannot import onnxruntime ({e}); install it with `python3 -m venv ~/.venvs/ort && ~/.venvs/ort/bin/pip install onnxruntime numpy` and set ISSBENCH_PYTHON=~/.venvs/ort/bin/python",
            )
        })
    }

    /// The peer `script` run by `python`, if its `version` command answers;
    /// else the interpreter's name and the error.
    pub fn with(python: PathBuf, script: PathBuf) -> Result<OrtPeer, (String, String)> {
        match output(Command::new(&python).arg(&script).arg("version")) {
            Ok(version) => Ok(OrtPeer { python, script, version }),
            Err(e) => Err((python.display().to_string(), e)),
        }
    }

    /// The backend name written in rows.
    pub fn backend(&self) -> String {
        format!("onnxruntime {}", self.version)
    }

    /// Starts the peer on the ONNX model at `model` for `point`: it loads
    /// the model, runs it once (warm-up) and then waits for rounds to time
    /// (see [`PeerRun::sample`]).
    pub fn start(&self, model: &Path, point: &PeerPoint) -> Result<PeerRun, String> {
        self.start_checked(model, point, None).map(|(run, _)| run)
    }

    /// [`OrtPeer::start`], first running the model on `check`'s input and
    /// comparing its output with `check`'s expected one: returns the run
    /// and that comparison's max relative error (`None` without a check).
    pub fn start_checked(&self, model: &Path, point: &PeerPoint, check: Option<&PeerCheck>) -> Result<(PeerRun, Option<f64>), String> {
        let mut cmd = Command::new(&self.python);
        cmd.arg(&self.script)
            .arg("serve")
            .arg(model)
            .args(["--batch", &point.batch.to_string(), "--seq", &point.seq.to_string()])
            .args(["--threads", &point.threads.to_string(), "--vocab", &point.vocab.max(1).to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if point.int8 {
            cmd.args(["--quantize", "int8"]);
        }
        if point.batch_major {
            cmd.arg("--batch-major");
        }
        if let Some(c) = check {
            cmd.arg("--check-input").arg(&c.input).arg("--check-expected").arg(&c.expected);
            cmd.args(["--check-output", &c.output]);
        }
        let mut child = cmd.spawn().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
        // Drained on its own thread, so a chatty peer never blocks on a full pipe.
        let mut stderr = child.stderr.take().expect("piped");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        // Its answers come through a channel, so that waiting for one can
        // time out.
        let stdout = child.stdout.take().expect("piped");
        let (lines_in, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_in.send(line).is_err() {
                    break;
                }
            }
        });
        let mut run = PeerRun {
            stdin: child.stdin.take(),
            lines,
            child,
            stderr: Some(stderr),
            error: None,
        };
        let ready = run.reply(START_TIMEOUT)?;
        if ready["ready"] != serde_json::Value::Bool(true) {
            return Err(format!("peer did not start: {ready}"));
        }
        if point.int8 {
            let error = ready["max_abs_err"].as_f64().zip(ready["max_rel_err"].as_f64());
            run.error = Some(error.ok_or_else(|| format!("the quantized peer did not say its error: {ready}"))?);
        }
        let checked = match check {
            None => None,
            Some(_) => match (ready["check"]["max_rel"].as_f64(), ready["check"]["error"].as_str()) {
                (Some(rel), _) => Some(rel),
                (None, Some(e)) => return Err(format!("its output on the check input: {e}")),
                (None, None) => return Err(format!("peer reply lacks its check: {ready}")),
            },
        };
        Ok((run, checked))
    }

    /// Runs the ONNX model on the `.npy` input and compares with the `.npy`
    /// expected output; returns the max relative error or why it failed.
    pub fn check(&self, model: &Path, input: &Path, expected: &Path, tolerance: f64) -> Result<f64, String> {
        let json = output(
            Command::new(&self.python)
                .arg(&self.script)
                .arg("check")
                .args([model, input, expected])
                .arg(tolerance.to_string()),
        )?;
        let v: serde_json::Value = serde_json::from_str(&json).map_err(|e| format!("peer output {json:?}: {e}"))?;
        v["max_rel"].as_f64().ok_or_else(|| format!("peer output lacks max_rel: {json}"))
    }
}

/// A running peer holding one loaded model; it times a round of runs on
/// request, so that the sweep can alternate its rounds with issbench's own
/// ([`crate::measure::time_rounds`]). Dropping it ends the process.
pub struct PeerRun {
    child: Child,
    stdin: Option<ChildStdin>,
    /// The peer's output, line by line.
    lines: Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
    /// A quantized model's output error against the same model in fp32
    /// (largest absolute, and that over the largest fp32 output), on the
    /// peer's own input.
    error: Option<(f64, f64)>,
}

impl PeerRun {
    /// The quantized model's error against its fp32 original, when quantized.
    pub fn error(&self) -> Option<(f64, f64)> {
        self.error
    }

    /// The peer's process id (its CPU time is the sweep's, not other load).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Times one round under `round` (no warm-up: the peer warmed up when
    /// it started) and returns its run times in ns.
    pub fn sample(&mut self, round: Budget) -> Result<Vec<f64>, String> {
        self.sample_within(round, round.time + ROUND_SLACK)
    }

    /// [`PeerRun::sample`], failing (and stopping the peer) when no answer
    /// comes within `timeout`.
    pub fn sample_within(&mut self, round: Budget, timeout: Duration) -> Result<Vec<f64>, String> {
        let request = format!("time {} {} {}\n", round.time.as_secs_f64() * 1e3, round.min_runs, round.max_runs);
        let sent = self
            .stdin
            .as_mut()
            .map(|stdin| stdin.write_all(request.as_bytes()).and_then(|_| stdin.flush()));
        if !matches!(sent, Some(Ok(()))) {
            return Err(self.died("cannot send it a request"));
        }
        let reply = self.reply(timeout)?;
        let samples = reply["samples_ns"]
            .as_array()
            .and_then(|a| a.iter().map(|v| v.as_f64()).collect::<Option<Vec<f64>>>())
            .ok_or_else(|| format!("peer reply lacks samples_ns: {reply}"))?;
        Ok(samples)
    }

    /// The peer's next line of output, as JSON, within `timeout` (a peer
    /// that does not answer in time is stopped).
    fn reply(&mut self, timeout: Duration) -> Result<serde_json::Value, String> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => serde_json::from_str(&line).map_err(|e| format!("peer output {:?}: {e}", line.trim())),
            Err(RecvTimeoutError::Timeout) => {
                let _ = self.child.kill();
                Err(self.died(&format!("no answer within {} s", timeout.as_secs())))
            }
            Err(RecvTimeoutError::Disconnected) => Err(self.died("no reply")),
        }
    }

    /// Why the peer stopped answering: its exit status and last error line.
    fn died(&mut self, what: &str) -> String {
        drop(self.stdin.take());
        let status = self.child.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
        let err = self.stderr.take().and_then(|t| t.join().ok()).unwrap_or_default();
        let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
        format!("{what}: the peer exited ({status}) {last}")
    }
}

impl Drop for PeerRun {
    fn drop(&mut self) {
        // The end of its input ends the serve loop; a peer that has not
        // exited after a few seconds is stuck, and is killed.
        drop(self.stdin.take());
        for _ in 0..300 {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The shape of one peer measurement.
#[derive(Debug, Clone, Copy)]
pub struct PeerPoint {
    pub batch: usize,
    pub seq: usize,
    pub threads: usize,
    /// Token ids are drawn below this (ignored for feature inputs).
    pub vocab: usize,
    /// Quantize the model to int8 first (`quantize_dynamic`, s8 weights).
    pub int8: bool,
    /// The model takes `[batch, seq]` rather than `[seq, batch]` inputs.
    pub batch_major: bool,
}

/// What the peer checks a model against before timing it: `.npy` files
/// of an input and the output issbench computes for it, and the name of
/// the graph output to compare.
#[derive(Debug, Clone)]
pub struct PeerCheck {
    pub input: PathBuf,
    pub expected: PathBuf,
    pub output: String,
}

/// Writes a C-order little-endian `.npy` array (`descr` `<f4` or `<i8`).
pub fn write_npy(path: &Path, descr: &str, shape: &[usize], data: &[u8]) -> std::io::Result<()> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend_from_slice(data);
    std::fs::write(path, out)
}
