//! The ONNX Runtime peer: `tools/peer_ort.py`, run by a Python that has
//! `onnxruntime` (ISSBENCH_PYTHON, else `python3`), times the models
//! [`crate::onnx::export`] writes with the same batch, sequence length,
//! threads and timing protocol as issbench.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::measure::{Budget, Stats};

/// A usable peer: the interpreter, the script and onnxruntime's version.
#[derive(Debug, Clone)]
pub struct OrtPeer {
    python: PathBuf,
    script: PathBuf,
    /// onnxruntime's version, e.g. `1.32.0`.
    pub version: String,
}

fn output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
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
        let version = output(Command::new(&python).arg(&script).arg("version")).map_err(|e| {
            format!(
                "{} cannot import onnxruntime ({e}); install it with `python3 -m venv ~/.venvs/ort && ~/.venvs/ort/bin/pip install onnxruntime numpy` and set ISSBENCH_PYTHON=~/.venvs/ort/bin/python",
                python.display()
            )
        })?;
        Ok(OrtPeer { python, script, version })
    }

    /// The backend name written in rows.
    pub fn backend(&self) -> String {
        format!("onnxruntime {}", self.version)
    }

    /// Times the ONNX model at `model` for `point` under `budget` (the
    /// warm-up count is the peer's own: one run).
    pub fn time(&self, model: &Path, point: &PeerPoint, budget: &Budget) -> Result<Stats, String> {
        let json = output(
            Command::new(&self.python)
                .arg(&self.script)
                .arg("time")
                .arg(model)
                .args(["--batch", &point.batch.to_string(), "--seq", &point.seq.to_string()])
                .args(["--threads", &point.threads.to_string(), "--vocab", &point.vocab.max(1).to_string()])
                .args(["--budget-ms", &budget.time.as_millis().to_string()])
                .args([
                    "--min-runs",
                    &budget.min_runs.to_string(),
                    "--max-runs",
                    &budget.max_runs.to_string(),
                ]),
        )?;
        let v: serde_json::Value = serde_json::from_str(&json).map_err(|e| format!("peer output {json:?}: {e}"))?;
        let f = |k: &str| v[k].as_f64().ok_or_else(|| format!("peer output lacks {k}: {json}"));
        Ok(Stats {
            median_ns: f("median_ns")?,
            min_ns: f("min_ns")?,
            max_ns: f("max_ns")?,
            mean_ns: f("median_ns")?,
            runs: f("runs")? as usize,
            ci_low_ns: f("ci_low_ns")?,
            ci_high_ns: f("ci_high_ns")?,
        })
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

/// The shape of one peer measurement.
#[derive(Debug, Clone, Copy)]
pub struct PeerPoint {
    pub batch: usize,
    pub seq: usize,
    pub threads: usize,
    /// Token ids are drawn below this (ignored for feature inputs).
    pub vocab: usize,
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
