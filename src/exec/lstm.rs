//! The LSTM executor behind every mode: the products run on the backend the
//! executor was prepared for (dense packed panels, matrixmultiply, or CSR for
//! unstructured sparsity); everything else is shared.
//!
//! Per layer, the input projection of all time steps is one large GEMM
//! (`G = X · W_ihᵀ + bias` over `seq · batch` rows); each time step then adds
//! the recurrent product `H_{t-1} · W_hhᵀ` to its slice of `G` and applies
//! the fused gate update. `dense` runs the full model on a dense backend,
//! `iss` the compacted model on the same backend, `csr` the pruned full
//! model on the CSR backend.
//!
//! With the packed backend the gate rows are reordered at prepare time so
//! that each 32-column panel holds the four gates of 8 hidden units
//! (`i f g o` of units `8p..8p+8`). The recurrence runs on a team of
//! persistent workers, each owning the same panels (hidden units) at every
//! step: it computes its panels' recurrent product, then the cell update of
//! its units while their gates are in its cache, then meets the others at a
//! barrier. No fork-join per step, and each worker's share of `W_hh` stays
//! in its own core's cache.

use rayon::prelude::*;

use super::{Backend, ExecError, Executor, PreparedWeight};
use crate::kernels::activations::{BLOCK_UNITS, lstm_cell_update, lstm_cell_update_blocks};
use crate::kernels::matrix::SendPtr;
use crate::kernels::team::run_team;
use crate::kernels::{MatMut, MatRef, PANEL, SharedOutput, packed_gemm_panels};
use crate::model::{Inputs, Model, ModelError};

/// Batch rows x hidden units below which the gate update stays on one thread.
const PARALLEL_UPDATE_MIN: usize = 2048;

/// Multiply-adds per recurrent step below which the recurrence runs on one
/// thread (a barrier per step would cost more than it saves).
const PARALLEL_RECURRENCE_MIN_MACS: usize = 1 << 16;

/// Hidden units whose four gates fill one packed panel.
const UNITS_PER_PANEL: usize = PANEL / 4;
const _: () = assert!(UNITS_PER_PANEL == BLOCK_UNITS, "a panel is one block of the blocked cell update");

struct Layer {
    input: usize,
    hidden: usize,
    /// Gate rows interleaved per panel (packed backend): gate pre-activations
    /// come as blocks `[i f g o]` of [`UNITS_PER_PANEL`] units each.
    interleaved: bool,
    w_ih: PreparedWeight,
    w_hh: PreparedWeight,
    bias: Vec<f32>,
}

struct Head {
    input: usize,
    output: usize,
    weight: PreparedWeight,
    bias: Vec<f32>,
}

/// The LSTM executor (see the module documentation).
pub struct LstmExecutor {
    mode: String,
    backend: Backend,
    embedding: Option<(usize, usize, Vec<f32>)>,
    layers: Vec<Layer>,
    head: Option<Head>,
    /// Layer inputs for all steps when they must be gathered (embedding).
    x0: Vec<f32>,
    /// Gate pre-activations `[seq * batch, 4h]` of the current layer.
    gates: Vec<f32>,
    /// Hidden states `[seq * batch, h]` of each layer.
    ys: Vec<Vec<f32>>,
    /// Cell state `[batch, h]` of the current layer.
    cell: Vec<f32>,
    /// Head outputs `[seq * batch, out]`.
    logits: Vec<f32>,
    /// Time spent preparing weights (packing, CSR conversion).
    prepare_ns: u64,
}

impl LstmExecutor {
    /// Prepares `model` for `backend` (packs weights once). With
    /// `layers_only`, the embedding and head are dropped and the executor
    /// takes feature inputs. `mode` is the name reported in results
    /// (`dense`, or `iss` for a compacted model).
    pub fn prepare(model: &Model, backend: Backend, layers_only: bool, mode: &str) -> LstmExecutor {
        let started = std::time::Instant::now();
        let interleaved = backend == Backend::Packed;
        let layers = model
            .layers()
            .iter()
            .map(|l| {
                let (h, n_in) = (l.hidden(), l.input());
                let order: Vec<usize> = if interleaved {
                    interleaved_gate_rows(h)
                } else {
                    (0..4 * h).collect()
                };
                Layer {
                    input: n_in,
                    hidden: h,
                    interleaved,
                    w_ih: PreparedWeight::new(backend, &permute_rows(l.w_ih(), n_in, &order), 4 * h, n_in),
                    w_hh: PreparedWeight::new(backend, &permute_rows(l.w_hh(), h, &order), 4 * h, h),
                    bias: order.iter().map(|&r| l.bias()[r]).collect(),
                }
            })
            .collect();
        let (embedding, head) = if layers_only {
            (None, None)
        } else {
            (
                model.embedding().map(|e| (e.vocab(), e.dim(), e.table().to_vec())),
                model.head().map(|h| Head {
                    input: h.input(),
                    output: h.output(),
                    // Pruning never touches the head: it stays dense.
                    weight: PreparedWeight::new(
                        if backend == Backend::Csr { Backend::Packed } else { backend },
                        h.weight(),
                        h.output(),
                        h.input(),
                    ),
                    bias: h.bias().to_vec(),
                }),
            )
        };
        LstmExecutor {
            mode: mode.to_string(),
            backend,
            embedding,
            layers,
            head,
            x0: Vec::new(),
            gates: Vec::new(),
            ys: Vec::new(),
            cell: Vec::new(),
            logits: Vec::new(),
            prepare_ns: started.elapsed().as_nanos() as u64,
        }
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
                grow(&mut self.x0, seq * batch * dim);
                for (row, &id) in self.x0.chunks_exact_mut(*dim).zip(ids) {
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
}

/// Gate rows in panel order: for each block of [`UNITS_PER_PANEL`] units,
/// their `i`, `f`, `g` and `o` rows (the last block may be narrower).
fn interleaved_gate_rows(hidden: usize) -> Vec<usize> {
    let mut order = Vec::with_capacity(4 * hidden);
    for u0 in (0..hidden).step_by(UNITS_PER_PANEL) {
        let units = u0..(u0 + UNITS_PER_PANEL).min(hidden);
        for gate in 0..4 {
            order.extend(units.clone().map(|u| gate * hidden + u));
        }
    }
    order
}

/// Rows `order` of the row-major `w` (`cols` wide), in that order.
fn permute_rows(w: &[f32], cols: usize, order: &[usize]) -> Vec<f32> {
    order.iter().flat_map(|&r| &w[r * cols..(r + 1) * cols]).copied().collect()
}

/// Makes `v` at least `len` long (never shrinks, so steady-state calls do not allocate).
fn grow(v: &mut Vec<f32>, len: usize) {
    if v.len() < len {
        v.resize(len, 0.0);
    }
}

/// Fills each of the `rows` rows of `out` (`[rows, bias.len()]`) with `bias`;
/// on the rayon pool when large (megabytes at batch 10 and up, otherwise a
/// serial step before every input projection).
fn broadcast_rows(out: &mut [f32], bias: &[f32], rows: usize) {
    let (out, width) = (&mut out[..rows * bias.len()], bias.len().max(1));
    if out.len() >= PARALLEL_BROADCAST_MIN {
        out.par_chunks_mut(width).for_each(|row| row.copy_from_slice(bias));
    } else {
        for row in out.chunks_exact_mut(width) {
            row.copy_from_slice(bias);
        }
    }
}

/// Below this many floats [`broadcast_rows`] runs on the calling thread.
const PARALLEL_BROADCAST_MIN: usize = 1 << 16;

/// The recurrence of one layer with interleaved gates, on a team of
/// persistent workers (`kernels::team`): worker `w` owns a fixed range of
/// panels, i.e. of hidden units, for every step. Per step it adds
/// `H_{t-1} · W_hhᵀ` to its panels of `G_t`, runs the cell update of its
/// units while those gates are still in its cache, and a barrier then
/// publishes `H_t` to all workers.
///
/// `gates` holds `G` for all `seq * batch` rows (input projection and bias
/// already added); `y` receives `H` for all steps.
fn interleaved_recurrence(layer: &Layer, gates: &mut [f32], y: &mut [f32], cell: &mut [f32], seq: usize, batch: usize) {
    let h = layer.hidden;
    let w_hh = layer.w_hh.packed().expect("interleaved layers are packed");
    let panels = (4 * h).div_ceil(PANEL);
    let workers = if batch * h * 4 * h < PARALLEL_RECURRENCE_MIN_MACS {
        1
    } else {
        rayon::current_num_threads().min(panels)
    };
    assert!(gates.len() >= seq * batch * 4 * h && y.len() >= seq * batch * h && cell.len() >= batch * h);
    let g_all = SharedOutput::new(gates, seq * batch, 4 * h);
    let (g_ptr, cell_ptr, y_ptr) = (g_all.ptr(), SendPtr(cell.as_mut_ptr()), SendPtr(y.as_mut_ptr()));
    run_team(workers, &|w, barrier| {
        let mine = panels * w / workers..panels * (w + 1) / workers;
        let units = mine.start * UNITS_PER_PANEL..(mine.end * UNITS_PER_PANEL).min(h);
        for t in 0..seq {
            if t > 0 {
                // SAFETY: rows t-1 of y were finished before the last barrier
                // and nobody writes them during step t.
                let h_prev = unsafe { std::slice::from_raw_parts(y_ptr.get().add((t - 1) * batch * h), batch * h) };
                // SAFETY: this worker alone touches the columns of its panels.
                unsafe {
                    packed_gemm_panels(
                        MatRef::row_major(h_prev, batch, h),
                        w_hh,
                        g_all.rows(t * batch..(t + 1) * batch),
                        true,
                        mine.clone(),
                    );
                }
            }
            for b in 0..batch {
                let row = t * batch + b;
                // SAFETY: the gates, cell and hidden values of `units` in
                // this row belong to this worker alone (its panels), and the
                // offsets lie inside the buffers (asserted above).
                let (g, c, ho) = unsafe {
                    (
                        std::slice::from_raw_parts(g_ptr.get().add(row * 4 * h + 4 * units.start), 4 * units.len()),
                        std::slice::from_raw_parts_mut(cell_ptr.get().add(b * h + units.start), units.len()),
                        std::slice::from_raw_parts_mut(y_ptr.get().add(row * h + units.start), units.len()),
                    )
                };
                lstm_cell_update_blocks(g, c, ho);
            }
            barrier.wait();
        }
    });
}

impl Executor for LstmExecutor {
    fn mode(&self) -> &str {
        &self.mode
    }

    fn backend(&self) -> String {
        self.backend.describe()
    }

    fn prepare_ns(&self) -> u64 {
        self.prepare_ns
    }

    fn run(&mut self, inputs: &Inputs) -> Result<&[f32], ExecError> {
        let gathered = self.stage_inputs(inputs)?;
        let (seq, batch) = (inputs.seq(), inputs.batch());
        let rows = seq * batch;
        let max_gates = self.layers.iter().map(|l| 4 * l.hidden).max().unwrap_or(0);
        let max_hidden = self.layers.iter().map(|l| l.hidden).max().unwrap_or(0);
        grow(&mut self.gates, rows * max_gates);
        grow(&mut self.cell, batch * max_hidden);
        self.ys.resize_with(self.layers.len(), Vec::new);
        for (y, l) in self.ys.iter_mut().zip(&self.layers) {
            grow(y, rows * l.hidden);
        }

        for (li, layer) in self.layers.iter().enumerate() {
            let (n_in, h) = (layer.input, layer.hidden);
            let (done, rest) = self.ys.split_at_mut(li);
            let y = &mut rest[0][..rows * h];
            let x: &[f32] = match (li, inputs) {
                (0, _) if gathered => &self.x0[..rows * n_in],
                (0, Inputs::Features { values, .. }) => values,
                (0, Inputs::Tokens { .. }) => unreachable!("tokens are always gathered"),
                _ => &done[li - 1][..rows * n_in],
            };
            let gates = &mut self.gates[..rows * 4 * h];
            broadcast_rows(gates, &layer.bias, rows);
            layer
                .w_ih
                .apply(MatRef::row_major(x, rows, n_in), &mut MatMut::row_major(gates, rows, 4 * h), true);

            let cell = &mut self.cell[..batch * h];
            cell.fill(0.0);
            if layer.interleaved {
                interleaved_recurrence(layer, gates, y, cell, seq, batch);
                continue;
            }
            for t in 0..seq {
                let g = &mut gates[t * batch * 4 * h..(t + 1) * batch * 4 * h];
                let (prev, cur) = y.split_at_mut(t * batch * h);
                let h_prev = (t > 0).then(|| MatRef::row_major(&prev[(t - 1) * batch * h..], batch, h));
                let h_out = &mut cur[..batch * h];
                if let Some(h_prev) = h_prev {
                    layer.w_hh.apply(h_prev, &mut MatMut::row_major(g, batch, 4 * h), true);
                }
                if batch > 1 && batch * h >= PARALLEL_UPDATE_MIN {
                    g.par_chunks(4 * h)
                        .zip(cell.par_chunks_mut(h))
                        .zip(h_out.par_chunks_mut(h))
                        .for_each(|((g, c), ho)| lstm_cell_update(g, c, ho));
                } else {
                    for ((g, c), ho) in g.chunks(4 * h).zip(cell.chunks_mut(h)).zip(h_out.chunks_mut(h)) {
                        lstm_cell_update(g, c, ho);
                    }
                }
            }
        }

        let last = self.layers.last().expect("a model has layers");
        let y = &self.ys[self.layers.len() - 1][..rows * last.hidden];
        match &self.head {
            None => Ok(y),
            Some(head) => {
                grow(&mut self.logits, rows * head.output);
                let logits = &mut self.logits[..rows * head.output];
                broadcast_rows(logits, &head.bias, rows);
                head.weight.apply(
                    MatRef::row_major(y, rows, head.input),
                    &mut MatMut::row_major(logits, rows, head.output),
                    true,
                );
                Ok(logits)
            }
        }
    }
}
