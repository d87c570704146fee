//! Results: one CSV schema for every command and bench ([`Row`]), appended
//! and flushed row by row; charts drawn from rows alone ([`charts`]); and
//! the side-by-side comparison of hardware targets ([`compare`]).
//!
//! The schema is documented column by column in results/README.md.

pub mod charts;
pub mod compare;
pub mod criterion;
mod csv_io;

pub use csv_io::{CsvAppender, ReportError, read_rows, write_atomically};

use serde::{Deserialize, Serialize};

/// One measured point. Every row stands alone: files from different
/// machines concatenate and compare without editing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// issbench version that measured it.
    pub suite_version: String,
    /// Git revision of the source (`unknown` outside a checkout).
    pub git_rev: String,
    /// When the point finished, RFC 3339 UTC.
    pub timestamp: String,
    /// Host name.
    pub host: String,
    /// CPU model name.
    pub cpu_model: String,
    /// SIMD level the kernels used and the CPU's features.
    pub simd: String,
    /// Logical cores of the machine.
    pub logical_cores: usize,
    /// Worker threads used (rayon pool size).
    pub threads: usize,
    /// Kernel backend (`packed`, `matrixmultiply`, `csr`, `onnxruntime X.Y`).
    pub backend: String,
    /// Sweep preset or config name (the criterion export keeps the preset of
    /// the points it benched).
    pub preset: String,
    /// Model: built-in or synthetic spec name, or checkpoint file name.
    pub model: String,
    /// Width of the first LSTM layer's input.
    pub input: usize,
    /// Number of LSTM layers.
    pub layers: usize,
    /// Hidden sizes of the full model, `/`-separated, input side first.
    pub hidden_full: String,
    /// Hidden sizes kept by ISS compaction (what the `iss` mode runs).
    pub hidden_kept: String,
    /// Kept fraction of hidden units the point was built with (1 = no ISS zeros).
    pub kept_fraction: f64,
    /// Fraction of the full model's LSTM weights that are zero in what this mode runs
    /// (0 for dense; the removed share for iss; the pruned share for csr).
    pub sparsity: f64,
    /// `dense`, `iss`, `csr` (or a peer's mode, such as `ort-dense`).
    pub mode: String,
    /// Sequences per batch.
    pub batch: usize,
    /// Time steps per sequence.
    pub seq: usize,
    /// Whether the output projection (head) and embedding are included.
    pub head: bool,
    /// LSTM weights the mode multiplies (nonzeros for csr).
    pub nonzero_weights: usize,
    /// Multiply-adds per time step and sequence that the mode performs.
    pub macs_per_step: usize,
    /// Median time of one forward pass (batch x seq), ns.
    pub median_ns: f64,
    /// Fastest run, ns.
    pub min_ns: f64,
    /// Slowest run, ns.
    pub max_ns: f64,
    /// 95% bootstrap confidence interval of the median, low end, ns.
    pub ci_low_ns: f64,
    /// The same, high end, ns.
    pub ci_high_ns: f64,
    /// Timed runs.
    pub runs: usize,
    /// `2 * macs_per_step * batch * seq / median`, GFLOP/s.
    pub gflops: f64,
    /// Median of the dense mode at the same point over this median (empty when unknown).
    pub speedup_vs_dense: Option<f64>,
    /// Multiply-add ratio dense / this mode (the speedup if time followed work).
    pub ideal_speedup: f64,
    /// Largest relative output difference against the dense model (empty for dense).
    pub verify_max_rel: Option<f64>,
    /// This machine's measured FMA peak at `threads` threads, GFLOP/s.
    pub peak_gflops: f64,
    /// This machine's measured memory read bandwidth at `threads` threads, GB/s.
    pub bandwidth_gbs: f64,
    /// `ok`, or `failed: REASON` (the timing columns are then 0).
    pub status: String,
}

impl Row {
    /// What identifies a point on one machine: a sweep re-run with
    /// `--resume` skips rows whose key is already in the file.
    pub fn key(&self) -> String {
        format!("{}|{}", self.point_key(), self.target_key())
    }
    /// The point without the target: what two machines can share.
    pub fn point_key(&self) -> String {
        format!(
            "{} in{} h{} k{} {} b{} s{}{}",
            self.model,
            self.input,
            self.hidden_full,
            self.hidden_kept,
            self.mode,
            self.batch,
            self.seq,
            if self.head { " +head" } else { "" }
        )
    }
    /// The hardware target: host, CPU, threads and backend.
    pub fn target_key(&self) -> String {
        format!("{} / {} / {}t / {}", self.host, self.cpu_model, self.threads, self.backend)
    }
    /// Whether the point was measured (not failed).
    pub fn ok(&self) -> bool {
        self.status == "ok"
    }
    /// Median in milliseconds.
    pub fn median_ms(&self) -> f64 {
        self.median_ns / 1e6
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::Row;

    /// A complete row with plausible values, for tests to adjust.
    pub(crate) fn row() -> Row {
        Row {
            suite_version: "0.1.0".into(),
            git_rev: "abc".into(),
            timestamp: "2026-11-29T07:00:00Z".into(),
            host: "test-host".into(),
            cpu_model: "Test CPU".into(),
            simd: "avx512".into(),
            logical_cores: 2,
            threads: 2,
            backend: "packed-avx512".into(),
            preset: "quick".into(),
            model: "lstm2x256-k1".into(),
            input: 256,
            layers: 2,
            hidden_full: "256/256".into(),
            hidden_kept: "256/256".into(),
            kept_fraction: 1.0,
            sparsity: 0.0,
            mode: "dense".into(),
            batch: 1,
            seq: 30,
            head: false,
            nonzero_weights: 1_048_576,
            macs_per_step: 1_048_576,
            median_ns: 1e6,
            min_ns: 0.9e6,
            max_ns: 1.2e6,
            ci_low_ns: 0.95e6,
            ci_high_ns: 1.05e6,
            runs: 10,
            gflops: 62.9,
            speedup_vs_dense: Some(1.0),
            ideal_speedup: 1.0,
            verify_max_rel: None,
            peak_gflops: 340.0,
            bandwidth_gbs: 22.0,
            status: "ok".into(),
        }
    }
}
