//! The recurrent executor behind every mode and cell kind: the products run
//! on the backend the executor was prepared for (dense packed panels at a
//! precision, matrixmultiply, or a sparse kernel for a pruned model);
//! everything else is shared.
//!
//! Per layer and direction, the input projection of all time steps is one
//! large GEMM (`G = X · W_ihᵀ + b`, over `seq · batch` rows; on the team,
//! one GEMM for all the layer's directions); each time step
//! then runs the recurrent product on the last state and the cell update:
//!
//! - LSTM: `H_{t-1} · W_hhᵀ` added to the step's `G`, then the fused update;
//! - GRU (reset after the product): `R = H_{t-1} · W_hhᵀ + b_hh` apart from
//!   `G` (its `n` part is scaled by `r` before it is added), then the update;
//! - RHN: per micro-layer `i`, `S · W_hh,iᵀ` plus its bias (micro-layer 0
//!   also `G`), then `s = (tanh(H) − s)·σ(T) + s`, micro-layer after
//!   micro-layer.
//!
//! A bidirectional layer runs both directions over the same input; the
//! backward one reads the steps in reverse, and each writes its units'
//! columns of the layer's output `[fw; bw]`.
//!
//! With the packed backend the whole forward pass runs on one team of
//! persistent workers ([`team`]); the other backends (and a GRU that
//! resets before its product, which needs two dependent products per step)
//! run layer by layer, each product split over the rayon pool ([`plain`]).

mod claims;
mod layout;
mod plain;
mod team;

use super::team_product::StagedX;
use super::{Backend, ExecError, Executor, PreparedWeight};
use crate::kernels::MatRef;
use crate::kernels::int8::SharedRange;
use crate::model::{Cell, Direction, Inputs, Model, ModelError, Recurrent};
use crate::precision::Precision;
use layout::GateLayout;
use std::sync::atomic::AtomicUsize;

/// One direction of one layer, prepared.
struct ExecDir {
    cell: Cell,
    hidden: usize,
    /// Where its units start in the layer's output.
    offset: usize,
    /// Reads the steps from the last (the backward direction).
    reverse: bool,
    /// The gate rows' block layout (team forward), or `None`: canonical order.
    layout: Option<GateLayout>,
    /// `[G_in·h, in]` (layer by layer; on the team the layer's
    /// [`JointProjection`] holds these rows).
    w_ih: Option<PreparedWeight>,
    /// Team forward: the column of the layer's `G` where its gates start.
    gates_at: usize,
    /// LSTM, GRU: one `[G·h, h]`; RHN: one `[2h, h]` per micro-layer.
    w_hh: Vec<PreparedWeight>,
    /// What the input projection starts from (LSTM: the folded bias; GRU:
    /// `b_ih`; RHN: micro-layer 0's bias), in the layout's order.
    bias: Vec<f32>,
    /// What each recurrent product starts from, where it does not add to
    /// `G` (GRU: `b_hh`; RHN: micro-layers 1.. their biases).
    rec_bias: Vec<Vec<f32>>,
}

struct ExecLayer {
    input: usize,
    output: usize,
    dirs: Vec<ExecDir>,
    /// Team forward: the input projection of every direction at once.
    joint: Option<JointProjection>,
}

/// The input projection of all of a layer's directions as one product:
/// their gate rows one after the other (each direction's in its layout's
/// order) and their biases, writing `G [rows, cols]`. One product reads
/// `X` once for both directions of a bidirectional layer and pads their
/// rows to whole panels once (34 + 21 LSTM units fill 7 panels, not 5 + 3).
struct JointProjection {
    w: PreparedWeight,
    bias: Vec<f32>,
    cols: usize,
}

impl JointProjection {
    /// The projection of `dirs` (each direction's model weights and its
    /// prepared form, whose layout and bias it takes).
    fn prepare(dirs: &[(&Recurrent, &ExecDir)], backend: Backend, precision: Precision) -> Result<JointProjection, ExecError> {
        let n_in = dirs.first().map_or(0, |(r, _)| r.input());
        let (mut w, mut bias) = (Vec::new(), Vec::new());
        for (r, d) in dirs {
            let rows = gate_rows(d.layout, d.cell.input_gates(), d.hidden);
            w.extend(permute_rows(r.w_ih(), n_in, &rows));
            bias.extend_from_slice(&d.bias);
        }
        let cols = bias.len();
        Ok(JointProjection {
            w: PreparedWeight::at(backend, precision, &w, cols, n_in)?,
            bias,
            cols,
        })
    }
}

struct Head {
    input: usize,
    output: usize,
    weight: PreparedWeight,
    bias: Vec<f32>,
}

/// Buffers a forward pass uses, grown to the largest call and reused.
#[derive(Default)]
struct Buffers {
    /// Layer inputs for all steps when they must be gathered (embedding).
    x0: Vec<f32>,
    /// Per direction of the current layer: its input projection `[rows, G·h]`
    /// (team forward: the first holds the layer's joint projection).
    gates: Vec<Vec<f32>>,
    /// Per direction: GRU's recurrent products, RHN's micro-layer gates and
    /// state, `[batch, ...]`.
    scratch: Vec<Vec<f32>>,
    /// Per direction: LSTM cell state `[batch, h]`.
    cell: Vec<Vec<f32>>,
    /// Each layer's outputs `[rows, output]`.
    ys: Vec<Vec<f32>>,
    /// Head outputs `[rows, out]`.
    logits: Vec<f32>,
    /// The current layer's input, staged for the products (team forward).
    staged_x: StagedX,
    /// Each layer's input range (int8 team forward).
    ranges: Vec<SharedRange>,
    /// Claimed chunks and work done (team forward).
    claims: Vec<AtomicUsize>,
    progress: Vec<AtomicUsize>,
}

/// The recurrent executor (see the module documentation).
pub struct RnnExecutor {
    mode: String,
    backend: Backend,
    precision: Precision,
    embedding: Option<(usize, usize, Vec<f32>)>,
    layers: Vec<ExecLayer>,
    head: Option<Head>,
    /// Whether the whole pass runs on the team (else layer by layer).
    team: bool,
    buffers: Buffers,
    /// Time spent preparing weights (packing, sparse conversion).
    prepare_ns: u64,
}

/// Rows `order` of the row-major `w` (`cols` wide), in that order.
fn permute_rows(w: &[f32], cols: usize, order: &[usize]) -> Vec<f32> {
    order.iter().flat_map(|&r| &w[r * cols..(r + 1) * cols]).copied().collect()
}

/// The order of a product's `gates · h` gate rows: `layout`'s blocks, or
/// canonical without one.
fn gate_rows(layout: Option<GateLayout>, gates: usize, h: usize) -> Vec<usize> {
    match layout {
        Some(l) => GateLayout { gates, ..l }.rows(),
        None => (0..gates * h).collect(),
    }
}

/// Makes `v` at least `len` long (never shrinks, so steady-state calls do not allocate).
fn grow(v: &mut Vec<f32>, len: usize) {
    if v.len() < len {
        v.resize(len, 0.0);
    }
}

impl ExecDir {
    fn prepare(
        r: &Recurrent,
        offset: usize,
        reverse: bool,
        backend: Backend,
        precision: Precision,
        team: bool,
    ) -> Result<ExecDir, ExecError> {
        let (cell, h, n_in) = (r.cell(), r.hidden(), r.input());
        let layout = team.then(|| GateLayout::of(cell, h));
        let order = |gates: usize| gate_rows(layout, gates, h);
        let prep = |w: &[f32], rows: usize, cols: usize| PreparedWeight::at(backend, precision, w, rows, cols);
        let g_in = cell.input_gates();
        let w_ih = if team {
            None
        } else {
            Some(prep(&permute_rows(r.w_ih(), n_in, &order(g_in)), g_in * h, n_in)?)
        };
        let pick = |v: &[f32], rows: &[usize]| rows.iter().map(|&i| v[i]).collect::<Vec<f32>>();
        let (w_hh, bias, rec_bias) = match cell {
            Cell::Rhn { depth } => {
                let rows = order(2);
                let mut mats = Vec::with_capacity(depth);
                let mut biases = Vec::with_capacity(depth);
                for i in 0..depth {
                    let part = &r.w_hh()[2 * h * i * h..2 * h * (i + 1) * h];
                    mats.push(prep(&permute_rows(part, h, &rows), 2 * h, h)?);
                    biases.push(pick(&r.bias()[2 * h * i..2 * h * (i + 1)], &rows));
                }
                let first = biases.remove(0);
                (mats, first, biases)
            }
            Cell::Gru { reset_after: false } => {
                // Two products per step (layer by layer only): r and z from
                // the state, n from r ⊙ state.
                let w_rz = prep(&r.w_hh()[..2 * h * h], 2 * h, h)?;
                let w_n = prep(&r.w_hh()[2 * h * h..], h, h)?;
                (vec![w_rz, w_n], r.bias().to_vec(), vec![r.bias_hh().to_vec()])
            }
            _ => {
                let rows = order(cell.recurrent_gates());
                let w_hh = prep(&permute_rows(r.w_hh(), h, &rows), rows.len(), h)?;
                let rec_bias = if r.bias_hh().is_empty() {
                    Vec::new()
                } else {
                    vec![pick(r.bias_hh(), &rows)]
                };
                (vec![w_hh], pick(r.bias(), &rows), rec_bias)
            }
        };
        Ok(ExecDir {
            cell,
            hidden: h,
            offset,
            reverse,
            layout,
            w_ih,
            gates_at: 0,
            w_hh,
            bias,
            rec_bias,
        })
    }
}

impl RnnExecutor {
    /// Prepares `model` for `backend` in fp32 (packs weights once). With
    /// `layers_only`, the embedding and head are dropped and the executor
    /// takes feature inputs. `mode` is the name reported in results
    /// (`dense`, or `iss` for a compacted model).
    pub fn prepare(model: &Model, backend: Backend, layers_only: bool, mode: &str) -> RnnExecutor {
        Self::prepare_at(model, backend, Precision::Fp32, layers_only, mode).expect("every backend runs fp32")
    }

    /// [`RnnExecutor::prepare`] at `precision`: the layers' and the head's
    /// products in bf16 or int8 (packed backend only); the cell state and
    /// the gate math stay f32.
    pub fn prepare_at(
        model: &Model,
        backend: Backend,
        precision: Precision,
        layers_only: bool,
        mode: &str,
    ) -> Result<RnnExecutor, ExecError> {
        let started = std::time::Instant::now();
        // A GRU that resets before its product needs two dependent
        // products per step: it runs layer by layer.
        let reset_before = model.layers().iter().any(|l| l.cell() == Cell::Gru { reset_after: false });
        let team = backend == Backend::Packed && !reset_before;
        let layers = model
            .layers()
            .iter()
            .map(|l| {
                let mut dirs = l
                    .directions()
                    .map(|(d, r)| ExecDir::prepare(r, l.offset(d), d == Direction::Backward, backend, precision, team))
                    .collect::<Result<Vec<_>, _>>()?;
                let joint = if team {
                    let mut at = 0;
                    for d in &mut dirs {
                        d.gates_at = at;
                        at += d.cell.input_gates() * d.hidden;
                    }
                    let parts: Vec<_> = l.directions().map(|(_, r)| r).zip(&dirs).collect();
                    Some(JointProjection::prepare(&parts, backend, precision)?)
                } else {
                    None
                };
                Ok(ExecLayer {
                    input: l.input(),
                    output: l.output(),
                    dirs,
                    joint,
                })
            })
            .collect::<Result<Vec<_>, ExecError>>()?;
        let (embedding, head) = if layers_only {
            (None, None)
        } else {
            let head = match model.head() {
                Some(h) => Some(Head {
                    input: h.input(),
                    output: h.output(),
                    // Pruning never touches the head: it stays dense.
                    weight: PreparedWeight::at(
                        if backend.is_sparse() { Backend::Packed } else { backend },
                        precision,
                        h.weight(),
                        h.output(),
                        h.input(),
                    )?,
                    bias: h.bias().to_vec(),
                }),
                None => None,
            };
            (model.embedding().map(|e| (e.vocab(), e.dim(), e.table().to_vec())), head)
        };
        Ok(RnnExecutor {
            mode: mode.to_string(),
            backend,
            precision,
            embedding,
            layers,
            head,
            team,
            buffers: Buffers::default(),
            prepare_ns: started.elapsed().as_nanos() as u64,
        })
    }

    /// The precision the products run in.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Checks `inputs` against the prepared model and gathers embedded
    /// tokens into `x0`. Returns whether layer 0 reads `x0` (else the
    /// feature values directly).
    fn stage_inputs(&mut self, inputs: &Inputs) -> Result<bool, ModelError> {
        let width = self.layers[0].input;
        match (inputs, &self.embedding) {
            (Inputs::Tokens { seq, batch, ids }, Some((vocab, dim, table))) => {
                if ids.len() != seq * batch {
                    return Err(ModelError::Inputs(format!("{} token ids for seq {seq} x batch {batch}", ids.len())));
                }
                grow(&mut self.buffers.x0, seq * batch * dim);
                for (row, &id) in self.buffers.x0.chunks_exact_mut(*dim).zip(ids) {
                    let id = id as usize;
                    if id >= *vocab {
                        return Err(ModelError::Inputs(format!("token {id} is outside the vocabulary of {vocab}")));
                    }
                    row.copy_from_slice(&table[id * dim..(id + 1) * dim]);
                }
                Ok(true)
            }
            (Inputs::Tokens { .. }, None) => Err(ModelError::Inputs(
                "token ids given but this executor has no embedding (layers only?)".into(),
            )),
            (
                Inputs::Features {
                    seq,
                    batch,
                    width: w,
                    values,
                },
                _,
            ) => {
                if *w != width || values.len() != seq * batch * width {
                    return Err(ModelError::Inputs(format!(
                        "features [{seq}, {batch}, {w}] with {} values; the first layer takes width {width}",
                        values.len()
                    )));
                }
                Ok(false)
            }
        }
    }

    /// Grows every buffer a pass over `seq · batch` rows needs.
    fn grow_buffers(&mut self, seq: usize, batch: usize) {
        let rows = seq * batch;
        let b = &mut self.buffers;
        let most_dirs = self.layers.iter().map(|l| l.dirs.len()).max().unwrap_or(1);
        b.gates.resize_with(most_dirs, Vec::new);
        b.scratch.resize_with(most_dirs, Vec::new);
        b.cell.resize_with(most_dirs, Vec::new);
        for layer in &self.layers {
            if let Some(j) = &layer.joint {
                grow(&mut b.gates[0], rows * j.cols);
            }
            for (i, d) in layer.dirs.iter().enumerate() {
                let h = d.hidden;
                if layer.joint.is_none() {
                    grow(&mut b.gates[i], rows * d.cell.input_gates() * h);
                }
                let scratch = match d.cell {
                    Cell::Gru { .. } => batch * 6 * h,
                    // Two gate buffers and two states, for micro-layers in turn.
                    Cell::Rhn { .. } => batch * (2 * 2 * h + 2 * h),
                    Cell::Lstm => 0,
                };
                grow(&mut b.scratch[i], scratch);
                grow(&mut b.cell[i], batch * h);
            }
        }
        b.ys.resize_with(self.layers.len(), Vec::new);
        for (y, l) in b.ys.iter_mut().zip(&self.layers) {
            grow(y, rows * l.output);
        }
    }
}

impl Executor for RnnExecutor {
    fn mode(&self) -> &str {
        &self.mode
    }

    fn backend(&self) -> String {
        match self.precision {
            Precision::Fp32 => self.backend.describe(),
            p => format!("{}-{p}", self.backend.describe()),
        }
    }

    fn prepare_ns(&self) -> u64 {
        self.prepare_ns
    }

    fn run(&mut self, inputs: &Inputs) -> Result<&[f32], ExecError> {
        let gathered = self.stage_inputs(inputs)?;
        let (seq, batch) = (inputs.seq(), inputs.batch());
        let rows = seq * batch;
        self.grow_buffers(seq, batch);
        let n_in = self.layers[0].input;
        // Out of the buffers while the pass reads it.
        let x0 = std::mem::take(&mut self.buffers.x0);
        let x: &[f32] = match inputs {
            _ if gathered => &x0[..rows * n_in],
            Inputs::Features { values, .. } => values,
            Inputs::Tokens { .. } => unreachable!("tokens are always gathered"),
        };
        if self.team {
            team::forward(&self.layers, x, &mut self.buffers, seq, batch);
        } else {
            plain::forward(&self.layers, x, &mut self.buffers, seq, batch);
        }
        self.buffers.x0 = x0;
        let last = self.layers.last().expect("a model has layers");
        let y = &self.buffers.ys[self.layers.len() - 1][..rows * last.output];
        match &self.head {
            None => Ok(y),
            Some(head) => {
                grow(&mut self.buffers.logits, rows * head.output);
                let logits = &mut self.buffers.logits[..rows * head.output];
                head.weight
                    .apply_with_bias(MatRef::row_major(y, rows, head.input), &head.bias, logits);
                Ok(logits)
            }
        }
    }
}

/// `h_prev`'s view for a recurrent product: the `batch` rows of step
/// position `p` in a layer output of `width` columns, this direction's
/// `h` columns from `offset`.
fn state_view(y: &[f32], p: usize, batch: usize, width: usize, offset: usize, h: usize) -> MatRef<'_> {
    let start = p * batch * width + offset;
    let end = start + (batch - 1) * width + h;
    MatRef::new(&y[start..end], batch, h, width, 1)
}
