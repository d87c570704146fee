//! The forward pass for the backends without a team (matrixmultiply and
//! the sparse kernels) and for a GRU that resets before its product: per
//! layer and direction, the input projection as one product, then per step
//! the recurrent products and the cell update, each product split over the
//! rayon pool by the backend. Gate rows in canonical order.

use rayon::prelude::*;

use super::{Buffers, ExecDir, ExecLayer, state_view};
use crate::exec::weight::broadcast_rows;
use crate::kernels::activations::{gru_update, lstm_cell_update, rhn_update, sigmoid_inplace, tanh_inplace};
use crate::kernels::{MatMut, MatRef};
use crate::model::Cell;

/// Batch rows x hidden units below which the LSTM update stays on one thread.
const PARALLEL_UPDATE_MIN: usize = 2048;

pub(super) fn forward(layers: &[ExecLayer], x0: &[f32], b: &mut Buffers, seq: usize, batch: usize) {
    let rows = seq * batch;
    for (li, layer) in layers.iter().enumerate() {
        let (done, rest) = b.ys.split_at_mut(li);
        let y = &mut rest[0][..rows * layer.output];
        let x: &[f32] = if li == 0 {
            &x0[..rows * layer.input]
        } else {
            &done[li - 1][..rows * layer.input]
        };
        for (i, d) in layer.dirs.iter().enumerate() {
            let g_in = d.cell.input_gates() * d.hidden;
            let gates = &mut b.gates[i][..rows * g_in];
            d.w_ih
                .as_ref()
                .expect("layer-by-layer directions have their own w_ih")
                .apply_with_bias(MatRef::row_major(x, rows, layer.input), &d.bias, gates);
            let scratch = &mut b.scratch[i];
            let cell = &mut b.cell[i][..batch * d.hidden];
            cell.fill(0.0);
            for s in 0..seq {
                let p = if d.reverse { seq - 1 - s } else { s };
                let prev = (s > 0).then(|| if d.reverse { p + 1 } else { p - 1 });
                let g = &mut gates[p * batch * g_in..(p + 1) * batch * g_in];
                step(d, g, y, scratch, cell, p, prev, batch, layer.output);
            }
        }
    }
}

/// The state of `batch` rows at position `prev` (zeros before the first
/// step), copied out of the layer output `y` into `out`.
fn copy_state(y: &[f32], prev: Option<usize>, batch: usize, width: usize, offset: usize, h: usize, out: &mut [f32]) {
    for b in 0..batch {
        let dst = &mut out[b * h..(b + 1) * h];
        match prev {
            Some(p) => dst.copy_from_slice(&y[(p * batch + b) * width + offset..][..h]),
            None => dst.fill(0.0),
        }
    }
}

/// One step of direction `d` at position `p` (its last state at `prev`):
/// the recurrent products and the update, its units of `y` written.
#[allow(clippy::too_many_arguments)]
fn step(
    d: &ExecDir,
    g: &mut [f32],
    y: &mut [f32],
    scratch: &mut [f32],
    cell: &mut [f32],
    p: usize,
    prev: Option<usize>,
    batch: usize,
    width: usize,
) {
    let h = d.hidden;
    let out_row = |b: usize| (p * batch + b) * width + d.offset;
    match d.cell {
        Cell::Lstm => {
            if let Some(q) = prev {
                let h_prev = state_view(y, q, batch, width, d.offset, h);
                d.w_hh[0].apply(h_prev, &mut MatMut::row_major(g, batch, 4 * h), true);
            }
            let update = |b: usize, c: &mut [f32], out: &mut [f32]| lstm_cell_update(&g[b * 4 * h..(b + 1) * 4 * h], c, out);
            // The rows of a unidirectional layer's output lie one after the other.
            if batch > 1 && batch * h >= PARALLEL_UPDATE_MIN && width == h {
                y[p * batch * h..(p + 1) * batch * h]
                    .par_chunks_mut(h)
                    .zip(cell.par_chunks_mut(h))
                    .enumerate()
                    .for_each(|(b, (o, c))| update(b, c, o));
            } else {
                for (b, c) in cell.chunks_mut(h).enumerate() {
                    let at = out_row(b);
                    update(b, c, &mut y[at..at + h]);
                }
            }
        }
        Cell::Gru { reset_after } => {
            // Scratch: the recurrent products [batch, 3h], the last state,
            // then (reset before) r ⊙ state and n's products, [batch, h] each.
            let (rec, rest) = scratch.split_at_mut(batch * 3 * h);
            let (state, rest) = rest.split_at_mut(batch * h);
            let (reset, rest) = rest.split_at_mut(batch * h);
            let n = &mut rest[..batch * h];
            copy_state(y, prev, batch, width, d.offset, h, state);
            let b_hh = &d.rec_bias[0];
            if reset_after {
                broadcast_rows(rec, b_hh, batch);
                if prev.is_some() {
                    d.w_hh[0].apply(MatRef::row_major(state, batch, h), &mut MatMut::row_major(rec, batch, 3 * h), true);
                }
                for b in 0..batch {
                    let at = out_row(b);
                    gru_update(&g[b * 3 * h..], &rec[b * 3 * h..], &state[b * h..(b + 1) * h], &mut y[at..at + h]);
                }
            } else {
                // r and z from the state, then n from r ⊙ state.
                let rz = &mut rec[..batch * 2 * h];
                broadcast_rows(rz, &b_hh[..2 * h], batch);
                if prev.is_some() {
                    d.w_hh[0].apply(MatRef::row_major(state, batch, h), &mut MatMut::row_major(rz, batch, 2 * h), true);
                }
                for b in 0..batch {
                    for j in 0..2 * h {
                        rz[b * 2 * h + j] += g[b * 3 * h + j];
                    }
                }
                sigmoid_inplace(rz);
                for i in 0..batch * h {
                    reset[i] = rz[(i / h) * 2 * h + i % h] * state[i];
                }
                broadcast_rows(n, &b_hh[2 * h..], batch);
                d.w_hh[1].apply(MatRef::row_major(reset, batch, h), &mut MatMut::row_major(n, batch, h), true);
                for b in 0..batch {
                    for j in 0..h {
                        n[b * h + j] += g[b * 3 * h + 2 * h + j];
                    }
                }
                tanh_inplace(n);
                for b in 0..batch {
                    let at = out_row(b);
                    for j in 0..h {
                        let z = rz[b * 2 * h + h + j];
                        y[at + j] = (1.0 - z) * n[b * h + j] + z * state[b * h + j];
                    }
                }
            }
        }
        Cell::Rhn { depth } => {
            let (mt, rest) = scratch.split_at_mut(batch * 2 * h);
            let (s_a, s_b) = rest.split_at_mut(batch * h);
            let s_b = &mut s_b[..batch * h];
            copy_state(y, prev, batch, width, d.offset, h, s_a);
            for i in 0..depth {
                let (cur, next) = if i % 2 == 0 {
                    (&mut *s_a, &mut *s_b)
                } else {
                    (&mut *s_b, &mut *s_a)
                };
                if i == 0 {
                    mt.copy_from_slice(&g[..batch * 2 * h]);
                } else {
                    broadcast_rows(mt, &d.rec_bias[i - 1], batch);
                }
                if i > 0 || prev.is_some() {
                    d.w_hh[i].apply(MatRef::row_major(cur, batch, h), &mut MatMut::row_major(mt, batch, 2 * h), true);
                }
                for b in 0..batch {
                    rhn_update(&mt[b * 2 * h..], &cur[b * h..(b + 1) * h], &mut next[b * h..(b + 1) * h]);
                }
            }
            let last = if depth % 2 == 0 { &*s_a } else { &*s_b };
            for b in 0..batch {
                let at = out_row(b);
                y[at..at + h].copy_from_slice(&last[b * h..(b + 1) * h]);
            }
        }
    }
}
