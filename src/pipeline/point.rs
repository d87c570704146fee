//! What one measurement is: a model source and how to run it.

use crate::checkpoint::{LoadOptions, is_checkpoint_path};
use crate::exec::Backend;
use crate::iss::DEFAULT_THRESHOLD;
use crate::mode::{BlockShape, Mode};
use crate::model::Cell;
use crate::precision::Precision;

/// One sparse GEMM problem's matrix (its `n` is the point's batch).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GemmShape {
    /// Rows of `W` (outputs).
    pub m: usize,
    /// Columns of `W` (inputs).
    pub k: usize,
    /// Fraction of `W` that is zero, in [0, 1).
    pub sparsity: f64,
}

/// Where a point's model comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A built-in name or a checkpoint path, read with these options.
    Named(String, LoadOptions),
    /// A synthetic stack of `layers` layers of `cell`s of width `hidden`
    /// (per direction), a fraction `kept` of whose units stay (the rest
    /// planted as zeroed ISS components).
    Synthetic {
        hidden: usize,
        layers: usize,
        kept: f64,
        cell: Cell,
        bidirectional: bool,
    },
    /// A sparse GEMM problem (no recurrent model).
    Gemm(GemmShape),
}

impl Source {
    /// The model name rows carry: the checkpoint's file name, the built-in
    /// name, `{cell}{L}x{H}-k{K}` (`lstm2x256-k0.5`, `bigru1x512-k1`,
    /// `rhn10x830-k0.5`) or `m{M}_k{K}_s{S}`.
    pub fn name(&self) -> String {
        match self {
            Source::Named(n, _) => std::path::Path::new(n)
                .file_name()
                .map_or_else(|| n.clone(), |f| f.to_string_lossy().into_owned()),
            Source::Synthetic {
                hidden,
                layers,
                kept,
                cell,
                bidirectional,
            } => format!("{}{}{layers}x{hidden}-k{kept}", if *bidirectional { "bi" } else { "" }, cell.tag()),
            Source::Gemm(g) => format!("m{}_k{}_s{}", g.m, g.k, g.sparsity),
        }
    }
}

impl Source {
    /// Where the model comes from, exactly (the rows' `source` column):
    /// `file:` and the canonical path of a checkpoint, `builtin:NAME`,
    /// `synthetic:NAME` or `gemm:NAME`. Two checkpoints of the same file
    /// name in different folders differ here.
    pub fn id(&self) -> String {
        match self {
            Source::Named(n, _) if is_checkpoint_path(n) => {
                let path = std::path::Path::new(n);
                let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| std::path::absolute(path).unwrap_or(path.into()));
                format!("file:{}", canonical.display())
            }
            Source::Named(n, _) => format!("builtin:{}", n.strip_prefix("builtin:").unwrap_or(n)),
            Source::Synthetic { .. } => format!("synthetic:{}", self.name()),
            Source::Gemm(_) => format!("gemm:{}", self.name()),
        }
    }
}

impl Source {
    /// About how many bytes the model's weights take in f32: from the
    /// shape of a synthetic or GEMM source, from the file size of a
    /// checkpoint (f16 files double), `None` for a built-in name.
    pub fn weight_bytes(&self) -> Option<u64> {
        match self {
            Source::Synthetic {
                hidden,
                layers,
                cell,
                bidirectional,
                ..
            } => {
                let (h, dirs) = (*hidden as u64, if *bidirectional { 2 } else { 1 });
                let (g_in, g_rec) = (cell.input_gates() as u64, cell.recurrent_gates() as u64);
                let biases = if matches!(cell, Cell::Gru { .. }) {
                    2 * g_rec * h
                } else {
                    g_rec * h
                };
                // The first layer reads h features, the others every direction's h.
                let direction = |input: u64| g_in * h * input + g_rec * h * h + biases;
                let layer = |input: u64| dirs * direction(input);
                let later = (*layers as u64).saturating_sub(1);
                Some((layer(h) + later * layer(dirs * h)) * 4)
            }
            Source::Gemm(g) => Some(g.m as u64 * g.k as u64 * 4),
            Source::Named(n, _) if is_checkpoint_path(n) => {
                let path = std::path::Path::new(n);
                let bytes = if path.is_dir() {
                    std::fs::read_dir(path)
                        .map(|entries| entries.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
                        .unwrap_or(0)
                } else {
                    std::fs::metadata(path).map_or(0, |m| m.len())
                };
                Some(2 * bytes)
            }
            Source::Named(..) => None,
        }
    }
}

/// Copies of a model's weights a point may hold at once: the full model
/// and its packed copy, the compacted model and its copy, the pruned model
/// and the CSR arrays with their tiled and sliced copies.
pub const WEIGHT_COPIES: u64 = 7;

/// How ISS analysis and compaction treat a model: one policy for every
/// command.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IssSettings {
    /// A unit is removable when every outgoing weight is at most this in magnitude.
    pub threshold: f32,
    /// Also shrink a last layer that feeds the model output directly (no
    /// head); the compacted model then outputs the kept units only.
    /// Synthetic sources always shrink: their last layer is planted too.
    pub shrink_output: bool,
}

impl Default for IssSettings {
    fn default() -> Self {
        IssSettings {
            threshold: DEFAULT_THRESHOLD,
            shrink_output: false,
        }
    }
}

/// One measurement: a source, a mode at a precision, a shape and a thread count.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub source: Source,
    pub mode: Mode,
    /// The products' number format (bf16 and int8: dense and iss on the
    /// packed backend).
    pub precision: Precision,
    /// bf16 and int8: the largest output error relative to the largest
    /// fp32 output before the point fails (`None`: the precision's default).
    pub tolerance: Option<f64>,
    /// Sequences per batch (a GEMM problem's `n`).
    pub batch: usize,
    /// Time steps per sequence (1 for GEMM problems).
    pub seq: usize,
    /// Worker threads; 0 means all logical cores.
    pub threads: usize,
    /// With the embedding and head (models that have them).
    pub head: bool,
    /// The dense kernel for dense and iss (csr runs the CSR kernel).
    pub backend: Backend,
    pub iss: IssSettings,
    /// For csr and bsr: prune to this fraction of zeros instead of the ISS
    /// model's weight count.
    pub csr_sparsity: Option<f64>,
    /// For bsr: the block shape (ignored by the other modes).
    pub block: BlockShape,
    /// Measure it even when `threads` is above the machine's cores.
    pub oversubscribe: bool,
    /// Which measurement of the point this is, with `--repeat` (from 1).
    pub repeat: usize,
}

impl Point {
    /// Whether `other` is the same case: everything but the mode, the
    /// precision and the block shape equal (the points a case times together).
    pub fn same_case(&self, other: &Point) -> bool {
        Point {
            mode: self.mode,
            precision: self.precision,
            block: self.block,
            ..other.clone()
        } == *self
    }

    /// The largest relative output error a bf16 or int8 point may show
    /// (`None` for fp32).
    pub fn precision_tolerance(&self) -> Option<f64> {
        self.precision.default_tolerance().map(|d| self.tolerance.unwrap_or(d))
    }

    /// The backend this point's mode runs on.
    pub fn mode_backend(&self) -> Backend {
        match self.mode {
            Mode::Csr => Backend::Csr,
            Mode::Bsr => Backend::Bsr(self.block),
            _ => self.backend,
        }
    }
}
