//! The dense executor: every weight as a dense matrix, zeros included.
//!
//! Per layer, the input projection of all time steps is one large GEMM
//! (`G = X · W_ihᵀ + bias` over `seq · batch` rows); each time step then adds
//! the recurrent product `H_{t-1} · W_hhᵀ` to its slice of `G` and applies
//! the fused gate update. The `iss` mode runs this same executor on the
//! compacted model.

use rayon::prelude::*;

use super::{Backend, ExecError, Executor, PreparedWeight};
use crate::kernels::activations::lstm_cell_update;
use crate::kernels::{MatMut, MatRef};
use crate::model::{Inputs, Model, ModelError};

/// Batch rows x hidden units below which the gate update stays on one thread.
const PARALLEL_UPDATE_MIN: usize = 8192;

struct Layer {
    input: usize,
    hidden: usize,
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

/// Dense LSTM executor (see the module documentation).
pub struct Dense {
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
}

impl Dense {
    /// Prepares `model` for `backend` (packs weights once). With
    /// `layers_only`, the embedding and head are dropped and the executor
    /// takes feature inputs. `mode` is the name reported in results
    /// (`dense`, or `iss` for a compacted model).
    pub fn prepare(model: &Model, backend: Backend, layers_only: bool, mode: &str) -> Dense {
        let layers = model
            .layers()
            .iter()
            .map(|l| Layer {
                input: l.input(),
                hidden: l.hidden(),
                w_ih: PreparedWeight::new(backend, l.w_ih(), 4 * l.hidden(), l.input()),
                w_hh: PreparedWeight::new(backend, l.w_hh(), 4 * l.hidden(), l.hidden()),
                bias: l.bias().to_vec(),
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
                    weight: PreparedWeight::new(backend, h.weight(), h.output(), h.input()),
                    bias: h.bias().to_vec(),
                }),
            )
        };
        Dense {
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

/// Makes `v` at least `len` long (never shrinks, so steady-state calls do not allocate).
fn grow(v: &mut Vec<f32>, len: usize) {
    if v.len() < len {
        v.resize(len, 0.0);
    }
}

/// Fills each of the `rows` rows of `out` (`[rows, bias.len()]`) with `bias`.
fn broadcast_rows(out: &mut [f32], bias: &[f32], rows: usize) {
    for row in out[..rows * bias.len()].chunks_exact_mut(bias.len()) {
        row.copy_from_slice(bias);
    }
}

impl Executor for Dense {
    fn mode(&self) -> &str {
        &self.mode
    }

    fn backend(&self) -> String {
        self.backend.describe()
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
            for t in 0..seq {
                let g = &mut gates[t * batch * 4 * h..(t + 1) * batch * 4 * h];
                let (prev, cur) = y.split_at_mut(t * batch * h);
                if t > 0 {
                    let h_prev = &prev[(t - 1) * batch * h..];
                    layer
                        .w_hh
                        .apply(MatRef::row_major(h_prev, batch, h), &mut MatMut::row_major(g, batch, 4 * h), true);
                }
                let h_out = &mut cur[..batch * h];
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
