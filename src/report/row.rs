//! [`Row`]: the one result type. Every command and bench writes it, every
//! report reads it; its columns are documented in results/README.md.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::measure::{Speedup, Stats};
use crate::mode::Mode;
use crate::precision::Precision;

/// Whether a point was measured.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Status {
    /// Measured; the timing columns hold the result.
    #[default]
    Ok,
    /// Not measured, and why (the timing columns are 0).
    Failed(String),
    /// Not measured: the model this mode runs does not compute what the
    /// dense model does (`failed: not equivalent: ...` in CSV files).
    NotEquivalent(String),
}

/// How a [`Status::NotEquivalent`] begins in CSV files, after `failed: `.
const NOT_EQUIVALENT: &str = "not equivalent: ";

impl Status {
    /// A failure, its reason kept on one line.
    pub fn failed(reason: impl AsRef<str>) -> Status {
        Status::Failed(one_line(reason.as_ref()))
    }
    /// A failure for an error's message.
    pub fn failed_with(e: impl std::fmt::Display) -> Status {
        Status::failed(e.to_string())
    }
    /// A failed verification, its reason kept on one line.
    pub fn not_equivalent(reason: impl AsRef<str>) -> Status {
        Status::NotEquivalent(one_line(reason.as_ref()))
    }
}

impl Status {
    /// Why the point failed, as the CSV gives it after `failed: ` (empty for ok).
    pub fn reason(&self) -> String {
        match self {
            Status::Ok => String::new(),
            Status::Failed(why) => why.clone(),
            Status::NotEquivalent(why) => format!("{NOT_EQUIVALENT}{why}"),
        }
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Ok => f.write_str("ok"),
            Status::Failed(why) => write!(f, "failed: {why}"),
            Status::NotEquivalent(why) => write!(f, "failed: {NOT_EQUIVALENT}{why}"),
        }
    }
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Status, D::Error> {
        let text = String::deserialize(d)?;
        match text.as_str() {
            "ok" => Ok(Status::Ok),
            _ => match text.strip_prefix("failed:").map(str::trim_start) {
                Some(why) => Ok(match why.strip_prefix(NOT_EQUIVALENT) {
                    Some(why) => Status::NotEquivalent(why.to_string()),
                    None => Status::Failed(why.to_string()),
                }),
                None => Err(serde::de::Error::custom(format!(
                    "status '{text}' is neither 'ok' nor 'failed: ...'"
                ))),
            },
        }
    }
}

/// The columns of a results file of this version, in order (the fields of
/// [`Row`]; results/README.md documents each).
pub const COLUMNS: &[&str] = &[
    "suite_version",
    "git_rev",
    "timestamp",
    "host",
    "label",
    "cpu_model",
    "simd",
    "logical_cores",
    "memory_gib",
    "threads",
    "backend",
    "preset",
    "model",
    "source",
    "input",
    "layers",
    "cell",
    "hidden_full",
    "hidden_kept",
    "kept_fraction",
    "sparsity",
    "mode",
    "block",
    "precision",
    "batch",
    "seq",
    "head",
    "vocab",
    "head_output",
    "nonzero_weights",
    "macs_per_step",
    "median_ns",
    "min_ns",
    "max_ns",
    "mean_ns",
    "stddev_ns",
    "cv",
    "p90_ns",
    "p99_ns",
    "ci_low_ns",
    "ci_high_ns",
    "runs",
    "rounds",
    "gflops",
    "speedup_vs_dense",
    "speedup_ci_low",
    "speedup_ci_high",
    "ideal_speedup",
    "verify_max_rel",
    "max_abs_err",
    "max_rel_err",
    "peak_gflops",
    "bandwidth_gbs",
    "flags",
    "repeat",
    "shard",
    "status",
];

/// Columns that earlier versions wrote and this one no longer does (files
/// that have them are still issbench's).
pub const OLD_COLUMNS: &[&str] = &[];

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
    /// The machine's name given by the user (`sweep --label`, or
    /// `NAME=file.csv` in `report` and `compare`); empty when none.
    #[serde(default)]
    pub label: String,
    /// CPU model name, with family and model numbers where the OS gives them.
    pub cpu_model: String,
    /// SIMD level the kernels used and the CPU's features.
    pub simd: String,
    /// Logical cores of the machine.
    pub logical_cores: usize,
    /// The machine's memory, GiB to one decimal (0 in files written before
    /// the column existed).
    #[serde(default)]
    pub memory_gib: f64,
    /// Worker threads used (rayon pool size).
    pub threads: usize,
    /// Kernel backend (`packed-avx512`, `matrixmultiply`, `csr-avx2`, `onnxruntime X.Y`).
    pub backend: String,
    /// Sweep preset or config name (`run` for `issbench run`).
    pub preset: String,
    /// Model: built-in or synthetic spec name, or checkpoint file name.
    pub model: String,
    /// Where the model came from, exactly: `file:` and the checkpoint's
    /// canonical path, `builtin:NAME`, `synthetic:NAME` or `gemm:NAME`
    /// (empty in files written before the column existed).
    #[serde(default)]
    pub source: String,
    /// Width of the first layer's input.
    pub input: usize,
    /// Number of recurrent layers.
    pub layers: usize,
    /// The layers' cell (`lstm`, `gru`, `gru-rb`, `rhn10`, `mixed`), with
    /// `bi` before it for bidirectional layers; empty for GEMM problems and
    /// in files written before the column existed.
    #[serde(default)]
    pub cell: String,
    /// Hidden sizes of the full model, `/`-separated, input side first.
    pub hidden_full: String,
    /// Hidden sizes kept by ISS compaction (what the `iss` mode runs).
    pub hidden_kept: String,
    /// Kept fraction of hidden units (1 = no ISS zeros).
    pub kept_fraction: f64,
    /// Fraction of the full model's recurrent weights that are zero in what
    /// this mode runs (0 for dense; the removed share for iss; the pruned share for csr).
    pub sparsity: f64,
    /// What ran.
    pub mode: Mode,
    /// bsr: the block shape (`16x16`); empty for the other modes.
    #[serde(default)]
    pub block: String,
    /// The products' number format (`fp32` in files written before the
    /// column existed).
    #[serde(default = "crate::precision::fp32")]
    pub precision: Precision,
    /// Sequences per batch.
    pub batch: usize,
    /// Time steps per sequence.
    pub seq: usize,
    /// Whether the output projection (head) and embedding were asked for
    /// (run where the model has them: see `vocab` and `head_output`).
    pub head: bool,
    /// Rows of the embedding that ran (0: none, features in).
    #[serde(default)]
    pub vocab: usize,
    /// Outputs of the head that ran (0: none, hidden states out).
    #[serde(default)]
    pub head_output: usize,
    /// Weights the mode multiplies (nonzeros for csr), the head's included when timed.
    pub nonzero_weights: usize,
    /// Multiply-adds per time step and sequence that the mode performs.
    pub macs_per_step: usize,
    /// Median time of one forward pass (batch x seq), ns.
    pub median_ns: f64,
    /// Fastest run, ns.
    pub min_ns: f64,
    /// Slowest run, ns.
    pub max_ns: f64,
    /// Mean run time, ns (0 in files written before the column existed).
    #[serde(default)]
    pub mean_ns: f64,
    /// Standard deviation of the run times, ns.
    #[serde(default)]
    pub stddev_ns: f64,
    /// Coefficient of variation: `stddev_ns / mean_ns`.
    #[serde(default)]
    pub cv: f64,
    /// 90th percentile, ns (empty below 10 runs).
    #[serde(default)]
    pub p90_ns: Option<f64>,
    /// 99th percentile, ns (empty below 100 runs).
    #[serde(default)]
    pub p99_ns: Option<f64>,
    /// 95% bootstrap confidence interval of the median, low end, ns.
    pub ci_low_ns: f64,
    /// The same, high end, ns.
    pub ci_high_ns: f64,
    /// Timed runs.
    pub runs: usize,
    /// Rounds the runs were taken in, in turn with the point's other modes.
    #[serde(default)]
    pub rounds: usize,
    /// `2 * macs_per_step * batch * seq / median`, GFLOP/s.
    pub gflops: f64,
    /// Median of the dense mode in fp32 at the same point over this median
    /// (empty when unknown): bf16 and int8 rows, dense ones included, are
    /// compared with dense fp32.
    pub speedup_vs_dense: Option<f64>,
    /// 95% interval of the speedup: a bootstrap over the rounds the two
    /// modes were timed in (empty when not timed together).
    #[serde(default)]
    pub speedup_ci_low: Option<f64>,
    /// The same, high end.
    #[serde(default)]
    pub speedup_ci_high: Option<f64>,
    /// Multiply-add ratio dense / this mode (the speedup if time followed work).
    pub ideal_speedup: f64,
    /// Largest relative output difference against the dense model (empty for dense).
    pub verify_max_rel: Option<f64>,
    /// bf16 and int8: the largest absolute difference of the outputs
    /// (hidden states, or logits with the head) from the fp32 executor's
    /// on the same model and the point's own inputs, over the whole
    /// sequence (empty for fp32).
    #[serde(default)]
    pub max_abs_err: Option<f64>,
    /// The same over the largest fp32 output magnitude: what `--tolerance`
    /// gates.
    #[serde(default)]
    pub max_rel_err: Option<f64>,
    /// This machine's measured FMA peak at `threads` threads, GFLOP/s.
    pub peak_gflops: f64,
    /// This machine's measured memory read bandwidth at `threads` threads, GB/s.
    pub bandwidth_gbs: f64,
    /// Why the number may not be what it seems, `;`-separated (see
    /// results/README.md): `above-ideal`, `noisy`, `rounds-disagree`,
    /// `busy-host`, `oversubscribed`; empty when none.
    #[serde(default)]
    pub flags: String,
    /// Which of `--repeat N` measurements of the point this is (1 to N).
    #[serde(default = "first_repeat")]
    pub repeat: usize,
    /// `I/N` when a sharded sweep (`sweep --shard I/N`) measured it; empty otherwise.
    #[serde(default)]
    pub shard: String,
    /// `ok`, or `failed: REASON`.
    pub status: Status,
}

fn first_repeat() -> usize {
    1
}

impl Row {
    /// What identifies a measurement: the machine and everything that was
    /// run (model source, mode, backend, batch, seq, threads, head, and
    /// which repeat). Two rows with
    /// the same key measured the same thing: `sweep --resume` skips a point
    /// whose key is in the file, and reports keep the newest row per key.
    pub fn key(&self) -> String {
        format!(
            "{}|{}|{}|{}{}|{}|b{}|s{}|t{}|{}|r{}",
            self.host,
            self.cpu_model,
            if self.source.is_empty() { &self.model } else { &self.source },
            self.mode,
            self.precision_suffix(),
            self.backend,
            self.batch,
            self.seq,
            self.threads,
            self.head,
            self.repeat
        )
    }
    /// The point without the machine, by what it computes (model, sizes,
    /// mode, batch, seq, head): what two machines can share.
    pub fn point_key(&self) -> String {
        format!(
            "{} in{} h{} k{} {}{} b{} s{}{}",
            self.model,
            self.input,
            self.hidden_full,
            self.hidden_kept,
            self.mode,
            self.variant_suffix(),
            self.batch,
            self.seq,
            if self.head { " +head" } else { "" }
        )
    }
    /// The machine that measured the row, as a person would name it: the
    /// label where there is one, else the CPU (with family and model),
    /// cores, SIMD level and memory. Not the host name: the nodes of a
    /// cluster are one machine type, and reference files all say `vm`.
    pub fn machine_key(&self) -> String {
        if !self.label.is_empty() {
            return self.label.clone();
        }
        let memory = if self.memory_gib > 0.0 {
            format!(", {:.0} GiB", self.memory_gib)
        } else {
            String::new()
        };
        format!("{}, {} cores, {}{memory}", self.cpu_model, self.logical_cores, self.simd_level())
    }
    /// The SIMD level the kernels ran at (the `simd` column's first word).
    pub fn simd_level(&self) -> &str {
        self.simd.split_whitespace().next().unwrap_or("")
    }
    /// The kernel family, without its instruction set or version
    /// (`packed`, `matrixmultiply`, `csr`, `onnxruntime`): what a point
    /// keeps across machines whose SIMD levels differ.
    pub fn backend_family(&self) -> &str {
        let b = self.backend.split_whitespace().next().unwrap_or("");
        b.split('-').next().unwrap_or(b)
    }
    /// A point as machines share it: [`Row::point_key`] with the threads
    /// and the kernel family (thread counts and backends are dimensions of
    /// a point, not of a machine).
    pub fn shared_point_key(&self) -> String {
        format!("{} t{} {}", self.point_key(), self.threads, self.backend_family())
    }
    /// The key of the dense measurement this row's speedup refers to: same
    /// machine, input, full sizes, batch, seq, threads and head (any kept
    /// fraction: dense time does not depend on where the zeros are).
    pub fn dense_key(&self) -> String {
        format!(
            "{}|{}|{}|{}|b{}|s{}|t{}|{}",
            self.host, self.cpu_model, self.input, self.hidden_full, self.batch, self.seq, self.threads, self.head
        )
    }
    /// What follows a mode's name to tell its variants apart: the block
    /// shape of bsr, then the precision (` 16x16`, ` int8`; nothing for
    /// fp32 rows of the other modes, whose keys are what they were before
    /// these columns existed).
    pub fn variant_suffix(&self) -> String {
        let block = if self.block.is_empty() {
            String::new()
        } else {
            format!(" {}", self.block)
        };
        format!("{block}{}", self.precision_suffix())
    }
    /// ` int8` or ` bf16` after a mode's name, nothing for fp32 (keys of
    /// fp32 rows are what they were before the column existed).
    pub fn precision_suffix(&self) -> String {
        match self.precision {
            Precision::Fp32 => String::new(),
            p => format!(" {p}"),
        }
    }
    /// Whether the point was measured (not failed).
    pub fn ok(&self) -> bool {
        self.status == Status::Ok
    }
    /// Median in milliseconds.
    pub fn median_ms(&self) -> f64 {
        self.median_ns / 1e6
    }
    /// This row with the timing columns filled from `stats` (taken in
    /// `rounds` rounds) and its speedup over dense (a dense row is its own
    /// reference: 1).
    pub fn completed(&self, stats: &Stats, rounds: usize, speedup: Option<Speedup>) -> Row {
        let speedup = if self.mode == Mode::Dense && self.precision == Precision::Fp32 {
            Some(Speedup {
                estimate: 1.0,
                interval: None,
            })
        } else {
            speedup
        };
        Row {
            median_ns: stats.median_ns,
            min_ns: stats.min_ns,
            max_ns: stats.max_ns,
            mean_ns: stats.mean_ns,
            stddev_ns: stats.stddev_ns,
            cv: stats.cv(),
            p90_ns: stats.p90_ns,
            p99_ns: stats.p99_ns,
            ci_low_ns: stats.ci_low_ns,
            ci_high_ns: stats.ci_high_ns,
            runs: stats.runs,
            rounds,
            gflops: 2.0 * (self.macs_per_step * self.batch * self.seq) as f64 / stats.median_ns,
            speedup_vs_dense: speedup.map(|s| s.estimate),
            speedup_ci_low: speedup.and_then(|s| s.interval).map(|i| i.0),
            speedup_ci_high: speedup.and_then(|s| s.interval).map(|i| i.1),
            timestamp: now_rfc3339(),
            ..self.clone()
        }
    }
    /// This row marked failed for `reason`, with no measurement.
    pub fn failed(&self, reason: impl AsRef<str>) -> Row {
        self.with_status(Status::failed(reason))
    }
    /// This row with `status` and no measurement.
    pub fn with_status(&self, status: Status) -> Row {
        Row {
            status,
            median_ns: 0.0,
            min_ns: 0.0,
            max_ns: 0.0,
            mean_ns: 0.0,
            stddev_ns: 0.0,
            cv: 0.0,
            p90_ns: None,
            p99_ns: None,
            ci_low_ns: 0.0,
            ci_high_ns: 0.0,
            runs: 0,
            rounds: 0,
            gflops: 0.0,
            speedup_vs_dense: None,
            speedup_ci_low: None,
            speedup_ci_high: None,
            timestamp: now_rfc3339(),
            ..self.clone()
        }
    }
}

/// The time now, RFC 3339 UTC to the second.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A complete row with plausible values, for tests to adjust.
    pub(crate) fn row() -> Row {
        Row {
            suite_version: "0.1.0".into(),
            git_rev: "abc".into(),
            timestamp: "2026-11-29T07:00:00Z".into(),
            host: "test-host".into(),
            label: String::new(),
            cpu_model: "Test CPU".into(),
            simd: "avx512".into(),
            logical_cores: 2,
            memory_gib: 16.0,
            threads: 2,
            backend: "packed-avx512".into(),
            preset: "quick".into(),
            model: "lstm2x256-k1".into(),
            source: "synthetic:lstm2x256-k1".into(),
            input: 256,
            layers: 2,
            cell: "lstm".into(),
            hidden_full: "256/256".into(),
            hidden_kept: "256/256".into(),
            kept_fraction: 1.0,
            sparsity: 0.0,
            mode: Mode::Dense,
            block: String::new(),
            precision: Precision::Fp32,
            batch: 1,
            seq: 30,
            head: false,
            vocab: 0,
            head_output: 0,
            nonzero_weights: 1_048_576,
            macs_per_step: 1_048_576,
            median_ns: 1e6,
            min_ns: 0.9e6,
            max_ns: 1.2e6,
            mean_ns: 1.01e6,
            stddev_ns: 0.05e6,
            cv: 0.05,
            p90_ns: Some(1.1e6),
            p99_ns: None,
            ci_low_ns: 0.95e6,
            ci_high_ns: 1.05e6,
            runs: 10,
            rounds: 8,
            gflops: 62.9,
            speedup_vs_dense: Some(1.0),
            speedup_ci_low: None,
            speedup_ci_high: None,
            ideal_speedup: 1.0,
            verify_max_rel: None,
            max_abs_err: None,
            max_rel_err: None,
            peak_gflops: 340.0,
            bandwidth_gbs: 22.0,
            flags: String::new(),
            repeat: 1,
            shard: String::new(),
            status: Status::Ok,
        }
    }

    #[test]
    fn status_round_trips_and_refuses_other_text() {
        for s in [
            Status::Ok,
            Status::failed("broken.npz: corrupt\nsecond line"),
            Status::not_equivalent("max relative error 0.7"),
        ] {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), s);
        }
        assert_eq!(Status::failed("a\nb").to_string(), "failed: a b");
        assert!(serde_json::from_str::<Status>("\"fine\"").is_err());
    }

    #[test]
    fn completion_fills_timing_and_speedup() {
        let stats = Stats::from_samples(&[100.0, 110.0, 90.0]);
        let iss = Row {
            mode: Mode::Iss,
            macs_per_step: 10,
            batch: 2,
            seq: 3,
            ..row()
        };
        let speedup = Speedup {
            estimate: 10.0,
            interval: Some((9.0, 11.0)),
        };
        let done = iss.completed(&stats, 3, Some(speedup));
        assert_eq!(
            (done.median_ns, done.runs, done.rounds, done.speedup_vs_dense),
            (100.0, 3, 3, Some(10.0))
        );
        assert_eq!((done.speedup_ci_low, done.speedup_ci_high), (Some(9.0), Some(11.0)));
        assert_eq!(done.gflops, 2.0 * 60.0 / 100.0);
        let dense = row().completed(&stats, 3, None);
        assert_eq!((dense.speedup_vs_dense, dense.speedup_ci_low), (Some(1.0), None));
        let failed = done.failed("peer died");
        assert!(!failed.ok() && failed.median_ns == 0.0 && failed.speedup_vs_dense.is_none());
    }
}
