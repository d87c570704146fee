//! Sweep specifications: what to measure, as a TOML file or a built-in
//! preset. A spec is a list of grids; each grid is the cross product of its
//! models, hidden sizes, kept fractions, modes, batch sizes, sequence
//! lengths, thread counts and head settings.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::checkpoint::{Format, Layout, LoadOptions};
use crate::exec::Backend;
use crate::iss::DEFAULT_THRESHOLD;
use crate::mode::BlockShape;
pub use crate::mode::Mode;
use crate::model::Cell;
pub use crate::pipeline::{GemmShape, IssSettings, Point, Source};
use crate::precision::Precision;

/// A spec that cannot be used.
#[derive(Debug, Error)]
pub enum SpecError {
    /// The TOML does not parse or has unknown keys.
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    /// A value out of range, or an empty grid.
    #[error("sweep spec {name}: {message}")]
    Invalid { name: String, message: String },
    /// No preset of that name.
    #[error("no preset '{0}' (quick, ptb, deepbench, deepbench-sparse, full, bidaf, rhn)")]
    UnknownPreset(String),
}

/// One grid of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    /// Built-in model names or checkpoint paths (each measured as it is).
    #[serde(default)]
    pub models: Vec<String>,
    /// Synthetic models: one per hidden size, `layers` LSTM layers of that
    /// width with input width equal to it.
    #[serde(default)]
    pub hidden: Vec<usize>,
    /// Layers of each synthetic model.
    #[serde(default = "default_layers")]
    pub layers: usize,
    /// Cell kinds of the synthetic models, each a model of its own:
    /// `lstm`, `gru`, `gru-rb` (reset before the product), `rhnN` (an RHN
    /// of depth N).
    #[serde(default = "default_cells")]
    pub cell: Vec<Cell>,
    /// Synthetic models with two directions per layer, each `hidden` wide.
    #[serde(default)]
    pub bidirectional: bool,
    /// Kept fractions of hidden units for synthetic models (zeroed ISS
    /// components planted in the rest); 1.0 means no ISS zeros.
    #[serde(default = "default_kept")]
    pub kept: Vec<f64>,
    /// Modes to run.
    pub modes: Vec<Mode>,
    /// Precisions of dense, iss and bsr (`fp32`, `bf16`, `int8`; the packed
    /// and bsr kernels); csr runs fp32 only. All of a point's are timed
    /// together.
    #[serde(default = "default_precision")]
    pub precision: Vec<Precision>,
    /// bf16 and int8: the largest output error, relative to the largest
    /// fp32 output, before a point fails as not equivalent (default: the
    /// precision's, `Precision::default_tolerance`).
    #[serde(default)]
    pub tolerance: Option<f64>,
    /// Batch sizes.
    pub batch: Vec<usize>,
    /// Sequence lengths.
    pub seq: Vec<usize>,
    /// Thread counts; 0 means all logical cores.
    #[serde(default = "default_threads")]
    pub threads: Vec<usize>,
    /// With (true) or without (false) embedding and head; built-in and
    /// checkpoint models only (synthetic ones have neither).
    #[serde(default = "default_head")]
    pub head: Vec<bool>,
    /// Sparse GEMM problems instead of LSTMs (DeepBench's sparse benchmark):
    /// `W` of `m x k` with `sparsity` of it zero (the same nonzero count in
    /// every row, at random columns), times `batch` columns of input; modes
    /// `dense` (the packed kernel, zeros included) and `csr`; `seq = [1]`.
    #[serde(default)]
    pub gemm: Vec<GemmShape>,
    /// ISS: a unit is removable when every outgoing weight is at most this.
    #[serde(default = "default_threshold")]
    pub threshold: f32,
    /// ISS: also shrink a last layer without head (checkpoints; synthetic
    /// models always do).
    #[serde(default)]
    pub shrink_output: bool,
    /// csr and bsr: prune to this fraction of zeros instead of the ISS weight count.
    #[serde(default)]
    pub sparsity: Option<f64>,
    /// bsr: block shapes (`"16x16"`, `"1x4"`, ...), each a point of its own.
    #[serde(default = "default_blocks")]
    pub block: Vec<BlockShape>,
    /// Checkpoints: read as this format (`tf-checkpoint`, `torch-zip`,
    /// `safetensors`, `npz`, `npy`) instead of detecting it.
    #[serde(default)]
    pub file_format: Option<String>,
    /// Checkpoints: map names with this layout (`tf-basic-lstm`, `tf-bidaf`,
    /// `rhn`, `pytorch`, `keras`, `onnx`).
    #[serde(default)]
    pub layout: Option<String>,
    /// Checkpoints: TensorFlow BasicLSTMCell forget bias folded into the f gate.
    #[serde(default)]
    pub forget_bias: Option<f32>,
    /// Measure thread counts above the machine's cores (else their points
    /// fail with the reason); their rows are flagged `oversubscribed`.
    #[serde(default)]
    pub oversubscribe: bool,
}

fn default_blocks() -> Vec<BlockShape> {
    vec![BlockShape::DEFAULT]
}

fn default_precision() -> Vec<Precision> {
    vec![Precision::Fp32]
}

fn default_threshold() -> f32 {
    DEFAULT_THRESHOLD
}

fn default_layers() -> usize {
    2
}
fn default_cells() -> Vec<Cell> {
    vec![Cell::Lstm]
}
fn default_kept() -> Vec<f64> {
    vec![1.0]
}
fn default_threads() -> Vec<usize> {
    vec![0]
}
fn default_head() -> Vec<bool> {
    vec![false]
}

/// A whole sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// Name written in every row's `preset` column.
    pub name: String,
    /// Timed-run budget per point, milliseconds (after warm-up).
    #[serde(default = "default_budget")]
    pub budget_ms: u64,
    /// Fewest timed runs per point.
    #[serde(default = "default_min_runs")]
    pub min_runs: usize,
    /// Most timed runs per point.
    #[serde(default = "default_max_runs")]
    pub max_runs: usize,
    /// Kernel backend for dense and iss (`packed` or `matrixmultiply`).
    #[serde(default = "default_backend")]
    pub backend: String,
    /// Measure the whole sweep this many times, one after the other
    /// (rows carry `repeat` = 1..N), to see how far repeats agree.
    #[serde(default = "default_repeat")]
    pub repeat: usize,
    /// The grids, measured in order.
    #[serde(rename = "grid")]
    pub grids: Vec<Grid>,
}

fn default_repeat() -> usize {
    1
}

/// Whether `name` can be a file name in the output folder and nowhere else.
fn is_plain_stem(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Most repeats of a sweep, and most threads of a point.
pub const MAX_REPEAT: usize = 100;
/// See [`MAX_REPEAT`].
pub const MAX_THREADS: usize = 1024;

fn default_budget() -> u64 {
    300
}
fn default_min_runs() -> usize {
    3
}
fn default_max_runs() -> usize {
    100
}
fn default_backend() -> String {
    "packed".into()
}

/// Most points one grid may have (a typo in a list should not plan a
/// sweep of years, nor allocate its points).
pub const MAX_POINTS: usize = 100_000;

/// Names of the built-in presets.
pub const PRESETS: &[(&str, &str)] = &[
    (
        "quick",
        "hidden 256/512/1024 (2 LSTM layers), kept 0.5/0.25/0.1, and a 2-layer GRU 512 kept 0.25; dense/iss/csr/bsr timed together, batch 1 and 10, seq 30, all threads (about 20 s on 2 cores)",
    ),
    (
        "ptb",
        "the paper's PTB model, 1500/1500 vs ISS 373/315, with and without the softmax head, batch 1/10/64, seq 30 and 35, 1 and all threads",
    ),
    (
        "deepbench",
        "DeepBench's inference LSTM set (1 layer): hidden 512/1024/2048 at batch 1/2/4 and 25 steps, 1536 at 50 steps, 256 at 150 steps; ISS kept 0.5 and 0.25 with dense and the matching CSR",
    ),
    (
        "deepbench-sparse",
        "DeepBench's inference sparse GEMM problems: 7680x2560 and 10752x3584 at sparsity 0.90 and 0.95, n = 1, 2, 4, 1500; csr against the dense kernel, 1 and all threads",
    ),
    (
        "full",
        "every hidden size from 64 to 2048 in steps of 32, LSTM and GRU, dense, batch 1 and 10, seq 30: latency hysteresis",
    ),
    (
        "bidaf",
        "BiDAF's bidirectional LSTMs (iss-rnns bidaf/): modeling layer g0+g1 and output layer g2 against the README's learned structure, context 400 tokens, batch 1/10/60, 1 and all threads",
    ),
    (
        "rhn",
        "iss-rnns' PTB RHN (depth 10, width 830, tied) against ISS widths 517/415/208, with and without the softmax, seq 35, batch 1 and 20, 1 and all threads",
    ),
];

impl Default for Grid {
    /// An empty grid with every default of a TOML grid.
    fn default() -> Grid {
        Grid {
            models: vec![],
            hidden: vec![],
            layers: default_layers(),
            cell: default_cells(),
            bidirectional: false,
            kept: default_kept(),
            modes: vec![],
            precision: default_precision(),
            tolerance: None,
            batch: vec![],
            seq: vec![],
            threads: default_threads(),
            head: default_head(),
            gemm: vec![],
            threshold: DEFAULT_THRESHOLD,
            shrink_output: false,
            sparsity: None,
            block: default_blocks(),
            file_format: None,
            layout: None,
            forget_bias: None,
            oversubscribe: false,
        }
    }
}

fn grid(hidden: Vec<usize>, layers: usize, kept: Vec<f64>, modes: Vec<Mode>, batch: Vec<usize>, seq: Vec<usize>) -> Grid {
    Grid {
        hidden,
        layers,
        kept,
        modes,
        batch,
        seq,
        ..Grid::default()
    }
}

impl SweepSpec {
    /// The built-in preset called `name`.
    pub fn preset(name: &str) -> Result<SweepSpec, SpecError> {
        use Mode::*;
        let all = vec![Dense, Iss, Csr];
        let with_blocks = vec![Dense, Iss, Csr, Bsr];
        let (grids, budget_ms) = match name {
            "quick" => (
                vec![
                    grid(
                        vec![256, 512, 1024],
                        2,
                        vec![0.5, 0.25, 0.1],
                        with_blocks.clone(),
                        vec![1, 10],
                        vec![30],
                    ),
                    Grid {
                        cell: vec![Cell::Gru { reset_after: true }],
                        ..grid(vec![512], 2, vec![0.25], all.clone(), vec![1, 10], vec![30])
                    },
                ],
                500,
            ),
            "bidaf" => (
                vec![Grid {
                    models: vec!["bidaf-iss".into(), "bidaf-out-iss".into()],
                    threads: vec![1, 0],
                    ..grid(vec![], 1, vec![1.0], all.clone(), vec![1, 10, 60], vec![400])
                }],
                1000,
            ),
            "rhn" => (
                vec![Grid {
                    models: ["rhn-iss-517", "rhn-iss-415", "rhn-iss-208"].map(String::from).to_vec(),
                    threads: vec![1, 0],
                    head: vec![false, true],
                    ..grid(vec![], 1, vec![1.0], all.clone(), vec![1, 20], vec![35])
                }],
                1000,
            ),
            "ptb" => (
                vec![Grid {
                    models: vec!["ptb-iss".into()],
                    precision: Precision::ALL.to_vec(),
                    block: vec![BlockShape { rows: 4, cols: 4 }, BlockShape::DEFAULT],
                    threads: vec![1, 0],
                    head: vec![false, true],
                    ..grid(vec![], 2, vec![1.0], with_blocks.clone(), vec![1, 10, 64], vec![30, 35])
                }],
                1000,
            ),
            "deepbench" => {
                let kept = vec![0.5, 0.25];
                (
                    vec![
                        grid(vec![512, 1024, 2048], 1, kept.clone(), all.clone(), vec![1, 2, 4], vec![25]),
                        grid(vec![1536], 1, kept.clone(), all.clone(), vec![1, 2, 4], vec![50]),
                        grid(vec![256], 1, kept, all, vec![1, 2, 4], vec![150]),
                    ],
                    300,
                )
            }
            "deepbench-sparse" => {
                let gemm = crate::deepbench::inference_problems()
                    .into_iter()
                    .filter(|p| p.n == 1)
                    .map(|p| GemmShape {
                        m: p.m,
                        k: p.k,
                        sparsity: p.sparsity,
                    })
                    .collect();
                (
                    vec![Grid {
                        gemm,
                        threads: vec![1, 0],
                        block: [(1, 4), (4, 4), (8, 8), (16, 16), (32, 32), (16, 1), (1, 16)]
                            .map(|(rows, cols)| BlockShape { rows, cols })
                            .to_vec(),
                        ..grid(vec![], 1, vec![1.0], vec![Dense, Csr, Bsr], vec![1, 2, 4, 1500], vec![1])
                    }],
                    300,
                )
            }
            "full" => (
                vec![Grid {
                    cell: vec![Cell::Lstm, Cell::Gru { reset_after: true }],
                    ..grid((64..=2048).step_by(32).collect(), 2, vec![1.0], vec![Dense], vec![1, 10], vec![30])
                }],
                150,
            ),
            other => return Err(SpecError::UnknownPreset(other.to_string())),
        };
        let spec = SweepSpec {
            name: name.to_string(),
            budget_ms,
            min_runs: default_min_runs(),
            max_runs: default_max_runs(),
            backend: default_backend(),
            repeat: 1,
            grids,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// Reads and validates the TOML spec at `path`.
    pub fn from_file(path: &std::path::Path) -> Result<SweepSpec, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|e| SpecError::Parse {
            file: path.display().to_string(),
            message: e.to_string(),
        })?;
        SweepSpec::from_toml(&path.display().to_string(), &text)
    }

    /// Parses a TOML spec (`file` names it in errors) and validates it.
    pub fn from_toml(file: &str, text: &str) -> Result<SweepSpec, SpecError> {
        let spec: SweepSpec = toml::from_str(text).map_err(|e| SpecError::Parse {
            file: file.to_string(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks ranges: every list non-empty, sizes positive, fractions in (0, 1].
    pub fn validate(&self) -> Result<(), SpecError> {
        let bad = |message: String| SpecError::Invalid {
            name: self.name.clone(),
            message,
        };
        if !is_plain_stem(&self.name) {
            return Err(bad(format!(
                "name {:?}: the CSV is OUT/NAME.csv, so the name must be a plain file name (letters, digits, '.', '_', '-'; not starting with '.'; at most 100)",
                self.name
            )));
        }
        if self.grids.is_empty() {
            return Err(bad("no [[grid]]".into()));
        }
        if self.min_runs == 0 || self.max_runs < self.min_runs {
            return Err(bad(format!("min_runs {} and max_runs {}", self.min_runs, self.max_runs)));
        }
        if self.budget_ms > 86_400_000 {
            return Err(bad(format!("budget_ms {} is more than a day", self.budget_ms)));
        }
        if !(1..=MAX_REPEAT).contains(&self.repeat) {
            return Err(bad(format!("repeat {} (1 to {MAX_REPEAT})", self.repeat)));
        }
        if !matches!(Backend::parse(&self.backend), Some(Backend::Packed | Backend::Matrixmultiply)) {
            return Err(bad(format!("backend '{}' (packed or matrixmultiply)", self.backend)));
        }
        for (i, g) in self.grids.iter().enumerate() {
            let at = |m: &str| bad(format!("grid {}: {m}", i + 1));
            if let Some(m) = g.modes.iter().find(|m| m.is_peer()) {
                return Err(at(&format!("mode {m} is a peer's (use --peer ort)")));
            }
            if !(g.threshold.is_finite() && g.threshold >= 0.0) {
                return Err(at(&format!("threshold {} must be a finite number of at least 0", g.threshold)));
            }
            if g.sparsity.is_some_and(|s| !(0.0..=1.0).contains(&s)) {
                return Err(at("sparsity must be in [0, 1]"));
            }
            if g.forget_bias.is_some_and(|b| !b.is_finite()) {
                return Err(at("forget_bias must be finite"));
            }
            g.load_options().map_err(|e| at(&e))?;
            if g.models.is_empty() && g.hidden.is_empty() && g.gemm.is_empty() {
                return Err(at("needs models, hidden sizes or gemm problems"));
            }
            if !g.gemm.is_empty() {
                if !g.models.is_empty() || !g.hidden.is_empty() {
                    return Err(at("gemm problems go in a grid of their own (no models or hidden sizes)"));
                }
                if g.modes.contains(&Mode::Iss) || g.seq != [1] || g.head != [false] {
                    return Err(at("gemm problems run modes dense, csr and bsr, with seq = [1] and head = [false]"));
                }
                if g.gemm
                    .iter()
                    .any(|s| s.m == 0 || s.k == 0 || s.m > 65536 || s.k > 65536 || !(0.0..1.0).contains(&s.sparsity))
                {
                    return Err(at("gemm problems need 1 <= m, k <= 65536 and sparsity in [0, 1)"));
                }
            }
            for (list, what) in [(&g.batch, "batch"), (&g.seq, "seq")] {
                if list.is_empty() || list.contains(&0) {
                    return Err(at(&format!("{what} must list sizes of at least 1")));
                }
            }
            if g.modes.is_empty() || g.threads.is_empty() || g.head.is_empty() || g.kept.is_empty() || g.precision.is_empty() {
                return Err(at("modes, precision, threads, head and kept must not be empty"));
            }
            let reduced = g.precision.iter().any(|p| *p != Precision::Fp32);
            if reduced && Backend::parse(&self.backend) != Some(Backend::Packed) {
                return Err(at("bf16 and int8 run on the packed backend only"));
            }
            if reduced && !g.gemm.is_empty() {
                return Err(at("gemm problems run fp32 only"));
            }
            if g.block.is_empty() {
                return Err(at("block must list at least one shape (it is used by bsr only)"));
            }
            if g.tolerance.is_some_and(|t| !(t.is_finite() && t >= 0.0)) {
                return Err(at("tolerance must be a finite number of at least 0"));
            }
            if g.threads.iter().any(|&t| t > MAX_THREADS) {
                return Err(at(&format!("threads above {MAX_THREADS}")));
            }
            if g.hidden.contains(&0) || (!g.hidden.is_empty() && g.layers == 0) {
                return Err(at("hidden sizes and layers must be at least 1"));
            }
            if g.hidden.iter().any(|&h| h > 16384)
                || g.layers > 16
                || g.batch.iter().any(|&b| b > 4096)
                || g.seq.iter().any(|&s| s > 100_000)
            {
                return Err(at(
                    "sizes beyond what a sweep point can hold (hidden <= 16384, layers <= 16, batch <= 4096, seq <= 100000)",
                ));
            }
            if g.kept.iter().any(|&k| !(k > 0.0 && k <= 1.0)) {
                return Err(at("kept fractions must be in (0, 1]"));
            }
            let points = [
                g.models.len() + g.hidden.len() * g.kept.len() + g.gemm.len(),
                g.modes.len() * g.precision.len() * g.block.len(),
                g.batch.len(),
                g.seq.len(),
                g.threads.len(),
                g.head.len(),
            ]
            .iter()
            .try_fold(1usize, |n, &k| n.checked_mul(k))
            .filter(|&n| n <= MAX_POINTS);
            if points.is_none() {
                return Err(at(&format!("more than {MAX_POINTS} points; split the sweep")));
            }
            if !g.hidden.is_empty() && g.head.contains(&true) {
                return Err(at("synthetic models have no head: use head = [false]"));
            }
        }
        Ok(())
    }

    /// Every point of the sweep, in measurement order: case by case (the
    /// modes of one source, batch, seq, threads and head, dense first),
    /// the whole sweep `repeat` times.
    pub fn points(&self) -> Vec<Point> {
        let backend = Backend::parse(&self.backend).unwrap_or_default();
        let mut out = Vec::new();
        for repeat in 1..=self.repeat {
            for g in &self.grids {
                let load = g.load_options().unwrap_or_default();
                let mut sources: Vec<Source> = g.models.iter().map(|m| Source::Named(m.clone(), load.clone())).collect();
                sources.extend(g.gemm.iter().map(|&shape| Source::Gemm(shape)));
                let mut kept = g.kept.clone();
                kept.sort_by(|a, b| b.total_cmp(a));
                kept.dedup();
                // Each cell once, in the grid's order (`Cell` has no order to sort by).
                let mut cells: Vec<Cell> = Vec::new();
                for &cell in &g.cell {
                    if !cells.contains(&cell) {
                        cells.push(cell);
                    }
                }
                for &cell in &cells {
                    for &hidden in &g.hidden {
                        sources.extend(kept.iter().map(|&kept| Source::Synthetic {
                            hidden,
                            layers: g.layers,
                            kept,
                            cell,
                            bidirectional: g.bidirectional,
                        }));
                    }
                }
                let iss = IssSettings {
                    threshold: g.threshold,
                    shrink_output: g.shrink_output,
                };
                let mut modes = g.modes.clone();
                modes.sort();
                modes.dedup();
                let mut precisions = g.precision.clone();
                precisions.sort();
                precisions.dedup();
                let mut blocks = g.block.clone();
                blocks.sort();
                blocks.dedup();
                // csr runs fp32 only, bsr once per block shape; a
                // synthetic model without zeros runs dense only.
                let runs = |mode: Mode, unplanted: bool| {
                    let modes_ok = !unplanted || mode == Mode::Dense;
                    let shapes = if mode == Mode::Bsr {
                        blocks.clone()
                    } else {
                        vec![BlockShape::DEFAULT]
                    };
                    precisions
                        .iter()
                        .copied()
                        .filter(move |&p| modes_ok && (mode != Mode::Csr || p == Precision::Fp32))
                        .flat_map(move |p| shapes.clone().into_iter().map(move |b| (p, b)))
                };
                for source in sources {
                    // A synthetic model without zeros has nothing to compact or prune.
                    let unplanted = matches!(source, Source::Synthetic { kept, .. } if kept >= 1.0);
                    for &head in &g.head {
                        for &threads in &g.threads {
                            for &batch in &g.batch {
                                for &seq in &g.seq {
                                    for (mode, (precision, block)) in modes.iter().flat_map(|&m| runs(m, unplanted).map(move |p| (m, p))) {
                                        out.push(Point {
                                            source: source.clone(),
                                            mode,
                                            precision,
                                            block,
                                            tolerance: g.tolerance,
                                            batch,
                                            seq,
                                            threads,
                                            head,
                                            backend,
                                            iss,
                                            csr_sparsity: g.sparsity,
                                            oversubscribe: g.oversubscribe,
                                            repeat,
                                        });
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// The points grouped into cases: consecutive points that differ only
    /// in their mode, timed together.
    pub fn cases(&self) -> Vec<Vec<Point>> {
        let mut cases: Vec<Vec<Point>> = Vec::new();
        for point in self.points() {
            match cases.last_mut() {
                Some(case) if case[0].same_case(&point) => case.push(point),
                _ => cases.push(vec![point]),
            }
        }
        cases
    }
}

impl Grid {
    /// How this grid's checkpoints are read.
    pub fn load_options(&self) -> Result<LoadOptions, String> {
        let format = match &self.file_format {
            Some(f) => Some(Format::parse(f).ok_or_else(|| format!("file_format '{f}' ({})", Format::names()))?),
            None => None,
        };
        let layout = match &self.layout {
            Some(l) => Some(Layout::parse(l).ok_or_else(|| format!("layout '{l}' ({})", Layout::names()))?),
            None => None,
        };
        Ok(LoadOptions {
            format,
            layout,
            forget_bias: self.forget_bias,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_grids_take_only_dense_and_csr_at_seq_1() {
        let spec = |grid: &str| SweepSpec::from_toml("g.toml", &format!("name = \"g\"\n[[grid]]\n{grid}"));
        let ok = "gemm = [{ m = 8, k = 5, sparsity = 0.5 }]\nmodes = [\"dense\", \"csr\"]\nbatch = [1, 3]\nseq = [1]\n";
        assert_eq!(spec(ok).unwrap().points().len(), 4);
        for bad in [
            ok.replace("\"csr\"", "\"iss\""),
            ok.replace("seq = [1]", "seq = [2]"),
            format!("{ok}hidden = [8]\n"),
            ok.replace("0.5", "1.0"),
            ok.replace("m = 8", "m = 0"),
            ok.replace("sparsity = 0.5", "sparsity = 0.5, n = 3"),
        ] {
            assert!(spec(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn presets_parse_and_count() {
        let quick = SweepSpec::preset("quick").unwrap();
        // LSTM: per hidden size, kept fraction and batch, a case of dense,
        // iss, csr and bsr in 16x16 blocks; then the GRU's two cases of
        // dense, iss and csr.
        assert_eq!(quick.points().len(), 3 * 3 * 2 * 4 + 2 * 3);
        assert_eq!(quick.cases().len(), 3 * 3 * 2 + 2);
        let cases = quick.cases();
        let (lstm, gru) = cases.split_at(18);
        assert!(
            lstm.iter()
                .all(|c| c.iter().map(|p| p.mode).collect::<Vec<_>>() == [Mode::Dense, Mode::Iss, Mode::Csr, Mode::Bsr])
        );
        assert!(gru.iter().all(|c| c[0].source.name() == "gru2x512-k0.25" && c.len() == 3));
        let bidaf = SweepSpec::preset("bidaf").unwrap();
        // 2 models x 3 batches x 2 thread counts x (dense, iss, csr).
        assert_eq!(bidaf.points().len(), 2 * 3 * 2 * 3);
        let rhn = SweepSpec::preset("rhn").unwrap();
        // 3 widths x 2 batches x 2 thread counts x 2 head settings x 3 modes.
        assert_eq!(rhn.points().len(), 3 * 2 * 2 * 2 * 3);
        let ptb = SweepSpec::preset("ptb").unwrap();
        // 3 batches x 2 seqs x 2 thread counts x 2 head settings; in each
        // case dense, iss and bsr (4x4 and 16x16) at three precisions, csr
        // at fp32, dense fp32 first.
        assert_eq!(ptb.cases().len(), 3 * 2 * 2 * 2);
        assert_eq!(ptb.points().len(), 3 * 2 * 2 * 2 * 13);
        let first: Vec<(Mode, Precision)> = ptb.cases()[0].iter().map(|p| (p.mode, p.precision)).collect();
        assert_eq!(
            first.len(),
            13,
            "dense and iss x 3 precisions, csr, bsr in 4x4 and 16x16 x 3 precisions"
        );
        assert_eq!(first.iter().filter(|(m, _)| *m == Mode::Bsr).count(), 6);
        assert!(first.contains(&(Mode::Bsr, Precision::Int8)) && first.contains(&(Mode::Bsr, Precision::Bf16)));
        assert_eq!(first[0], (Mode::Dense, Precision::Fp32));
        assert_eq!(first.iter().filter(|(m, _)| *m == Mode::Csr).count(), 1);
        let deep = SweepSpec::preset("deepbench").unwrap();
        // 5 sizes x 3 batches x 2 kept fractions x (dense, iss, csr).
        assert_eq!(deep.points().len(), 5 * 3 * 2 * 3);
        assert_eq!(SweepSpec::preset("full").unwrap().points().len(), 63 * 2 * 2);
        let sparse = SweepSpec::preset("deepbench-sparse").unwrap();
        // 2 shapes x 2 sparsities, n = 1/2/4/1500, 1 and all threads: dense,
        // csr and bsr in 7 block shapes.
        assert_eq!(sparse.points().len(), 4 * 4 * 2 * (2 + 7));
        assert!(sparse.points().iter().all(|p| matches!(p.source, Source::Gemm(_)) && p.seq == 1));
        assert!(matches!(SweepSpec::preset("nope"), Err(SpecError::UnknownPreset(_))));
        for (name, _) in PRESETS {
            SweepSpec::preset(name).unwrap();
        }
    }

    #[test]
    fn toml_specs_parse_with_defaults_and_reject_mistakes() {
        let spec = SweepSpec::from_toml(
            "mine.toml",
            r#"
name = "mine"
budget_ms = 50
[[grid]]
hidden = [64, 96]
kept = [1.0, 0.5]
modes = ["dense", "iss"]
batch = [1]
seq = [5]
"#,
        )
        .unwrap();
        assert_eq!((spec.min_runs, spec.backend.as_str(), spec.grids[0].layers), (3, "packed", 2));
        let points = spec.points();
        // Per size: dense alone at kept 1.0, dense and iss at kept 0.5.
        assert_eq!(points.len(), 2 * 3);
        assert_eq!(points[0].mode, Mode::Dense);
        assert!(matches!(points[1].source, Source::Synthetic { kept: 0.5, .. }));
        assert_eq!(spec.cases().iter().map(Vec::len).collect::<Vec<_>>(), [1, 2, 1, 2]);

        let typo = SweepSpec::from_toml(
            "t.toml",
            "name = \"x\"\n[[grid]]\nhiden = [1]\nmodes=[\"dense\"]\nbatch=[1]\nseq=[1]\n",
        );
        let e = typo.unwrap_err().to_string();
        assert!(e.starts_with("t.toml:") && e.contains("hiden"), "{e}");
        let zero = SweepSpec::from_toml(
            "z.toml",
            "name = \"z\"\n[[grid]]\nhidden = [8]\nmodes=[\"dense\"]\nbatch=[0]\nseq=[1]\n",
        );
        assert!(matches!(zero, Err(SpecError::Invalid { .. })));
        let kept = SweepSpec::from_toml(
            "k.toml",
            "name = \"k\"\n[[grid]]\nhidden = [8]\nkept=[1.5]\nmodes=[\"iss\"]\nbatch=[1]\nseq=[1]\n",
        );
        assert!(matches!(kept, Err(SpecError::Invalid { .. })));
        // A cell listed twice is one model.
        let cells = SweepSpec::from_toml(
            "c.toml",
            "name = \"c\"\n[[grid]]\nhidden = [8]\ncell = [\"gru\", \"lstm\", \"gru\"]\nmodes=[\"dense\"]\nbatch=[1]\nseq=[1]\n",
        )
        .unwrap();
        let names: Vec<String> = cells.points().iter().map(|p| p.source.name()).collect();
        assert_eq!(names, ["gru2x8-k1", "lstm2x8-k1"]);
        // A typo-sized grid of 10^8 points is refused before its points are listed.
        let ten: String = format!("[{}]", (1..=10).map(|i| i.to_string()).collect::<Vec<_>>().join(", "));
        let huge = format!(
            "name = \"h\"\n[[grid]]\nhidden = {ten}\nkept = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]\nmodes=[\"dense\", \"iss\"]\nbatch={ten}\nseq={ten}\nthreads={ten}\n"
        );
        let e = SweepSpec::from_toml("h.toml", &huge).unwrap_err().to_string();
        assert!(e.contains("more than 100000 points"), "{e}");
        let mode = SweepSpec::from_toml(
            "m.toml",
            "name = \"m\"\n[[grid]]\nhidden = [8]\nmodes=[\"fast\"]\nbatch=[1]\nseq=[1]\n",
        );
        assert!(matches!(mode, Err(SpecError::Parse { .. })));
    }
}
