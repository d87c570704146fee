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
//! (`i f g o` of units `8p..8p+8`), and the whole forward pass runs on one
//! team of persistent workers (`kernels::team`): no fork-join between
//! phases. Per layer, the workers compute the input projection chunk of
//! panels by chunk (after packing the layer's input together, where the
//! kernels read `A` packed); then, step by step, each computes the
//! recurrent product of a chunk of panels (hidden units) and the cell
//! update of those units while their gates are in its cache. In both, a
//! worker takes the chunks of its own share first (the same ones every
//! time, so its share of the weights stays in its core's cache where it
//! fits), then helps with any the others have not started.
//!
//! Workers wait for work to be done, not for each other: each phase counts
//! the panels finished ([`Progress`]), and the next phase starts when the
//! count is complete, whoever did the work. A worker that has lost its core
//! (a busy host, or more threads than cores) therefore holds nobody up
//! unless it holds unfinished work, and the waiting ones spin briefly, then
//! park, giving the core back.

use rayon::prelude::*;

use super::team_product::{StagedPtrs, StagedX, Staging, TeamWeight};
use super::weight::broadcast_rows;
use super::{Backend, ExecError, Executor, PreparedWeight};
use crate::kernels::activations::{BLOCK_UNITS, lstm_cell_update, lstm_cell_update_blocks};
use crate::kernels::int8::SharedRange;
use crate::kernels::matrix::SendPtr;
use crate::kernels::team::{Team, run_team};
use crate::kernels::{MatMut, MatRef, PANEL, PanelOrder, SharedOutput, Start};
use crate::model::{Inputs, Model, ModelError};
use crate::precision::Precision;
use std::sync::atomic::{AtomicUsize, Ordering};

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
    precision: Precision,
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
    /// The current layer's input, staged for the products (team forward,
    /// where the kernels do not read it in place).
    staged_x: StagedX,
    /// Each layer's input range (int8 team forward).
    ranges: Vec<SharedRange>,
    /// Claimed chunks per (layer, phase, worker share) of the team forward.
    claims: Vec<AtomicUsize>,
    /// Work done per (layer, phase) of the team forward.
    progress: Vec<AtomicUsize>,
    /// Time spent preparing weights (packing, CSR conversion).
    prepare_ns: u64,
}

impl LstmExecutor {
    /// Prepares `model` for `backend` in fp32 (packs weights once). With
    /// `layers_only`, the embedding and head are dropped and the executor
    /// takes feature inputs. `mode` is the name reported in results
    /// (`dense`, or `iss` for a compacted model).
    pub fn prepare(model: &Model, backend: Backend, layers_only: bool, mode: &str) -> LstmExecutor {
        Self::prepare_at(model, backend, Precision::Fp32, layers_only, mode).expect("every backend runs fp32")
    }

    /// [`LstmExecutor::prepare`] at `precision`: the layers' and the
    /// head's products in bf16 or int8 (packed backend only); the cell
    /// state and gate math stay f32.
    pub fn prepare_at(
        model: &Model,
        backend: Backend,
        precision: Precision,
        layers_only: bool,
        mode: &str,
    ) -> Result<LstmExecutor, ExecError> {
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
                Ok(Layer {
                    input: n_in,
                    hidden: h,
                    interleaved,
                    w_ih: PreparedWeight::at(backend, precision, &permute_rows(l.w_ih(), n_in, &order), 4 * h, n_in)?,
                    w_hh: PreparedWeight::at(backend, precision, &permute_rows(l.w_hh(), h, &order), 4 * h, h)?,
                    bias: order.iter().map(|&r| l.bias()[r]).collect(),
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
        Ok(LstmExecutor {
            mode: mode.to_string(),
            backend,
            precision,
            embedding,
            layers,
            head,
            x0: Vec::new(),
            gates: Vec::new(),
            ys: Vec::new(),
            cell: Vec::new(),
            logits: Vec::new(),
            staged_x: StagedX::default(),
            ranges: Vec::new(),
            claims: Vec::new(),
            progress: Vec::new(),
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

/// The forward pass of every layer for the backends without a team
/// (matrixmultiply, CSR): per layer, the input projection as one product,
/// then per step the recurrent product and the cell update, each split
/// over the rayon pool by the backend.
fn layer_by_layer_forward(
    layers: &[Layer],
    x0: &[f32],
    gates: &mut [f32],
    ys: &mut [Vec<f32>],
    cell: &mut [f32],
    seq: usize,
    batch: usize,
) {
    let rows = seq * batch;
    for (li, layer) in layers.iter().enumerate() {
        let (n_in, h) = (layer.input, layer.hidden);
        let (done, rest) = ys.split_at_mut(li);
        let y = &mut rest[0][..rows * h];
        let x: &[f32] = if li == 0 {
            &x0[..rows * n_in]
        } else {
            &done[li - 1][..rows * n_in]
        };
        let gates = &mut gates[..rows * 4 * h];
        broadcast_rows(gates, &layer.bias, rows);
        layer
            .w_ih
            .apply(MatRef::row_major(x, rows, n_in), &mut MatMut::row_major(gates, rows, 4 * h), true);
        let cell = &mut cell[..batch * h];
        cell.fill(0.0);
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
}

/// Chunks each worker's share of a recurrent step is cut into, so the
/// others can take over its second half.
const CHUNKS_PER_SHARE: usize = 2;

/// Multiply-adds below which a chunk of the recurrence is too small to
/// hand out on its own (a claim costs a contended atomic, ~100 ns).
const MIN_CHUNK_MACS: usize = 1 << 18;

/// Chunks each worker's share of an input projection is cut into, for the
/// others to take over (it is long: a slower core, or one the host
/// deschedules for a moment, would otherwise hold everyone at the barrier).
const PROJECTION_CHUNKS_PER_SHARE: usize = 4;

/// Buffers the team forward shares between its workers.
struct Shared<'a> {
    x: &'a [f32],
    /// The layer input, staged for the kernels by the workers together
    /// (one view per layer: each has its own int8 range).
    staged: Vec<StagedPtrs<'a>>,
    gates: SendPtr,
    ys: &'a [SendPtr],
    cell: SendPtr,
    /// Claim counters: per layer, one set for the input projection, then
    /// one per step (a counter per worker's share in each set).
    claims: &'a [AtomicUsize],
    /// Progress counters: per layer, [`Progress`]'s.
    progress: &'a [AtomicUsize],
}

/// The progress counters of one layer of the team forward: the parts of
/// `X` whose range is folded (int8; claimed, then done), the parts of `X`
/// staged (claimed, then done), the projection's panels done, and each
/// step's panels done. Workers wait for work to be done, not for each
/// other: a worker that has lost its core holds nobody up unless it holds
/// unfinished work, and the others take over its share.
struct Progress<'a>(&'a [AtomicUsize]);

impl<'a> Progress<'a> {
    /// Counters per layer.
    fn len(seq: usize) -> usize {
        seq + 5
    }
    fn of(all: &'a [AtomicUsize], layer: usize, seq: usize) -> Progress<'a> {
        Progress(&all[layer * Self::len(seq)..(layer + 1) * Self::len(seq)])
    }
    /// Parts of `X` claimed for their range.
    fn range_claimed(&self) -> &'a AtomicUsize {
        &self.0[0]
    }
    /// Parts of `X` whose range is folded.
    fn ranged(&self) -> &'a AtomicUsize {
        &self.0[1]
    }
    /// Parts of `X` claimed for staging.
    fn stage_claimed(&self) -> &'a AtomicUsize {
        &self.0[2]
    }
    /// Parts of `X` staged.
    fn staged(&self) -> &'a AtomicUsize {
        &self.0[3]
    }
    /// Panels of the input projection done.
    fn projected(&self) -> &'a AtomicUsize {
        &self.0[4]
    }
    /// Panels of step `t` done (product and cell update).
    fn stepped(&self, t: usize) -> &'a AtomicUsize {
        &self.0[5 + t]
    }
}

/// Parts per worker that a layer's input is staged in (claimed, so that
/// the others stage the parts of a worker that has lost its core).
const PACK_PARTS_PER_WORKER: usize = 2;

/// The whole forward pass of packed (gate-interleaved) layers on one team
/// of workers: see the module documentation. `x` is layer 0's input for
/// all `seq * batch` rows; `ys[l]` receives layer `l`'s hidden states.
#[allow(clippy::too_many_arguments)]
fn team_forward(
    layers: &[Layer],
    x: &[f32],
    gates: &mut [f32],
    ys: &mut [Vec<f32>],
    cell: &mut [f32],
    staged_x: &mut StagedX,
    ranges: &mut Vec<SharedRange>,
    claims: &mut Vec<AtomicUsize>,
    progress: &mut Vec<AtomicUsize>,
    seq: usize,
    batch: usize,
) {
    let rows = seq * batch;
    let step_macs = layers.iter().map(|l| batch * l.hidden * 4 * l.hidden).max().unwrap_or(0);
    let workers = if step_macs < PARALLEL_RECURRENCE_MIN_MACS {
        1
    } else {
        rayon::current_num_threads()
    };
    for (l, y) in layers.iter().zip(ys.iter()) {
        assert!(y.len() >= rows * l.hidden && gates.len() >= rows * 4 * l.hidden && cell.len() >= batch * l.hidden);
    }
    claims.resize_with(layers.len() * (seq + 1) * workers, || AtomicUsize::new(0));
    claims.iter_mut().for_each(|c| *c.get_mut() = 0);
    progress.resize_with(layers.len() * Progress::len(seq), || AtomicUsize::new(0));
    progress.iter_mut().for_each(|c| *c.get_mut() = 0);
    ranges.resize_with(layers.len(), SharedRange::new);
    ranges.iter_mut().for_each(SharedRange::reset);
    let y_ptrs: Vec<SendPtr> = ys.iter_mut().map(|y| SendPtr(y.as_mut_ptr())).collect();
    // How each layer's input reaches the kernels (read in place, or
    // staged by the workers together into a buffer grown for the largest).
    let stagings: Vec<Staging> = layers
        .iter()
        .enumerate()
        .map(|(li, l)| {
            let input: &[f32] = if li == 0 { x } else { &ys[li - 1] };
            let w = team_weight(&l.w_ih);
            let staging = w.staging(MatRef::row_major(&input[..rows * l.input], rows, l.input));
            staged_x.grow_for(w, staging, rows);
            staging
        })
        .collect();
    let staged: Vec<StagedPtrs> = ranges.iter().map(|r| staged_x.ptrs(r)).collect();
    let shared = Shared {
        x,
        staged,
        gates: SendPtr(gates.as_mut_ptr()),
        ys: &y_ptrs,
        cell: SendPtr(cell.as_mut_ptr()),
        claims,
        progress,
    };
    run_team(workers, &|w, team| {
        for (li, layer) in layers.iter().enumerate() {
            let input = if li == 0 {
                shared.x
            } else {
                // SAFETY: the previous layer's last step is done (waited
                // for below); nobody writes its outputs any more.
                unsafe { std::slice::from_raw_parts(shared.ys[li - 1].get(), rows * layer.input) }
            };
            let claims = &shared.claims[li * (seq + 1) * workers..(li + 1) * (seq + 1) * workers];
            let (projection_claims, step_claims) = claims.split_at(workers);
            let progress = Progress::of(shared.progress, li, seq);
            let x = MatRef::row_major(&input[..rows * layer.input], rows, layer.input);
            let staged = &shared.staged[li];
            if stagings[li] != Staging::InPlace {
                let parts = PACK_PARTS_PER_WORKER * workers;
                prepare_projection(layer, x, stagings[li], staged, team, &progress, parts);
            }
            input_projection(layer, x, stagings[li], staged, &shared, team, &progress, projection_claims, w);
            let panels = (4 * layer.hidden).div_ceil(PANEL);
            team.wait_done(progress.projected(), panels);
            for t in 0..seq {
                let claims = &step_claims[t * workers..(t + 1) * workers];
                recurrent_step(layer, &shared, team, progress.stepped(t), shared.ys[li], claims, t, batch, w);
                team.wait_done(progress.stepped(t), panels);
            }
        }
    });
}

/// The packed panels of a team layer's weight.
fn team_weight(w: &PreparedWeight) -> &TeamWeight {
    w.team().expect("team layers are packed")
}

/// A worker's part of getting a layer's input projection ready where the
/// kernels do not read `X` in place: for int8, the range of parts of `X`
/// folded into the layer's shared range, then (for every precision) parts
/// of `X` staged into the buffer all workers read; parts are claimed one
/// at a time, and each pass is waited for. (The bias needs no pass of its
/// own: the projection's accumulators start from it.)
fn prepare_projection(layer: &Layer, x: MatRef, staging: Staging, staged: &StagedPtrs, team: &Team, progress: &Progress, parts: usize) {
    debug_assert_eq!(x.cols(), layer.input);
    let w_ih = team_weight(&layer.w_ih);
    if staging == Staging::RangeThenValues {
        loop {
            let part = progress.range_claimed().fetch_add(1, Ordering::Relaxed);
            if part >= parts {
                break;
            }
            w_ih.range_part(x, staged, part, parts);
            team.complete(progress.ranged(), 1);
        }
        team.wait_done(progress.ranged(), parts);
    }
    loop {
        let part = progress.stage_claimed().fetch_add(1, Ordering::Relaxed);
        if part >= parts {
            break;
        }
        // SAFETY: each part is staged once, by the worker that claimed it,
        // into its own range of the shared buffer (grown for every layer
        // by `team_forward`); nobody reads it before all parts are done,
        // and every part's range was folded before (waited for above).
        unsafe { w_ih.stage_part(x, staged, part, parts) };
        team.complete(progress.staged(), 1);
    }
    team.wait_done(progress.staged(), parts);
}

/// Worker `w`'s part of a layer's input projection, `G = bias + X · W_ihᵀ`
/// over all rows: chunks of panels claimed through `claims`, with `X` read
/// as `staging` says (staged by [`prepare_projection`] before). The
/// accumulators start from the bias, which saves a write and a read of `G`.
#[allow(clippy::too_many_arguments)]
fn input_projection(
    layer: &Layer,
    x: MatRef,
    staging: Staging,
    staged: &StagedPtrs,
    shared: &Shared,
    team: &Team,
    progress: &Progress,
    claims: &[AtomicUsize],
    w: usize,
) {
    let rows = x.rows();
    let g4 = 4 * layer.hidden;
    let w_ih = team_weight(&layer.w_ih);
    let panels = g4.div_ceil(PANEL);
    // Ranges of whole chunks of the kernel's order (each reads all of X);
    // one worker takes all the panels at once.
    let granule = w_ih.granule(rows, layer.input);
    let chunk = if claims.len() == 1 {
        panels
    } else {
        (panels / (PROJECTION_CHUNKS_PER_SHARE * claims.len()))
            .max(1)
            .next_multiple_of(granule)
    };
    let claim = claimer(claims, panels, chunk, granule, w, claims.len() > 1, PanelOrder::Ascending);
    let done = |range: std::ops::Range<usize>| team.complete(progress.projected(), range.len());
    // SAFETY: X was staged whole before (waited for) where it is staged;
    // each claimed panel's columns of G belong to the worker that claimed
    // them; the bias row outlives the call and nothing writes it.
    unsafe {
        let g = SharedOutput::from_raw(shared.gates, rows, g4);
        debug_assert_eq!(layer.bias.len(), g4);
        w_ih.project(x, staging, staged, g, Start::bias(&layer.bias), claim, done);
    }
}

/// Hands worker `w` ranges of at most `chunk` panels out of `panels`: those
/// of its own share first (worker `v`'s share is panels `panels * v /
/// workers ..panels * (v + 1) / workers`, whose counter `claims[v]` counts
/// the panels handed out), then what the others have not started, each
/// share's in `order` (from its last panel down, with
/// [`PanelOrder::Descending`]). With `taper`, a range takes at most half of
/// what is left of its share, so a share ends in ranges of 2 and 1 panels
/// and the workers of a long product finish together. Ranges are whole multiples
/// of `granule` panels but at the end of a share.
///
/// The input projections claim multiples of the kernel's block-major
/// chunk, [`claim_granule`], so no range reads `X` again for a short
/// remainder (docs/tuning.md, "Claims").
fn claimer(
    claims: &[AtomicUsize],
    panels: usize,
    chunk: usize,
    granule: usize,
    w: usize,
    taper: bool,
    order: PanelOrder,
) -> impl FnMut() -> Option<std::ops::Range<usize>> {
    let workers = claims.len();
    let mut shares = (0..workers).map(move |i| (w + i) % workers);
    let mut share = shares.next();
    move || {
        while let Some(v) = share {
            let (start, end) = (panels * v / workers, panels * (v + 1) / workers);
            let mut taken = claims[v].load(Ordering::Relaxed);
            while taken < end - start {
                let left = end - start - taken;
                let size = if taper { chunk.min(left.div_ceil(2)) } else { chunk };
                let size = size.next_multiple_of(granule).min(left);
                match claims[v].compare_exchange_weak(taken, taken + size, Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) if order == PanelOrder::Descending => return Some(end - taken - size..end - taken),
                    Ok(_) => return Some(start + taken..start + taken + size),
                    Err(now) => taken = now,
                }
            }
            share = shares.next();
        }
        None
    }
}

/// Worker `w`'s part of step `t` of a layer's recurrence, writing `H_t` to
/// `shared.ys`: chunks of panels claimed through `claims` (one counter per
/// worker's share), each getting `H_{t-1} · W_hhᵀ` added to its gates (from
/// step 1), then the cell update of its units, then counted in `done`.
#[allow(clippy::too_many_arguments)]
fn recurrent_step(
    layer: &Layer,
    shared: &Shared,
    team: &Team,
    done: &AtomicUsize,
    y: SendPtr,
    claims: &[AtomicUsize],
    t: usize,
    batch: usize,
    w: usize,
) {
    let h = layer.hidden;
    let g4 = 4 * h;
    let panels = g4.div_ceil(PANEL);
    let workers = claims.len();
    // Chunks that cut each share evenly (12 + 11 of a 23-panel share, not
    // 11 + 11 + 1).
    let chunk = (panels.div_ceil(CHUNKS_PER_SHARE * workers))
        .max(MIN_CHUNK_MACS.div_ceil(batch * h * PANEL))
        .clamp(1, panels.max(1));
    let order = step_order(t);
    let claim = claimer(claims, panels, chunk, 1, w, false, order);
    let update = |panels: std::ops::Range<usize>| {
        let units = panels.start * UNITS_PER_PANEL..(panels.end * UNITS_PER_PANEL).min(h);
        for b in 0..batch {
            let row = t * batch + b;
            // SAFETY: the gates, cell and hidden values of `units` in this
            // row belong to the worker that claimed their panels, and the
            // offsets lie inside the buffers (asserted in `team_forward`).
            let (g, c, y) = unsafe {
                (
                    std::slice::from_raw_parts(shared.gates.get().add(row * g4 + 4 * units.start), 4 * units.len()),
                    std::slice::from_raw_parts_mut(shared.cell.get().add(b * h + units.start), units.len()),
                    std::slice::from_raw_parts_mut(y.get().add(row * h + units.start), units.len()),
                )
            };
            if t == 0 {
                c.fill(0.0);
            }
            lstm_cell_update_blocks(g, c, y);
        }
        team.complete(done, panels.len());
    };
    if t == 0 {
        // No recurrent product: H_{-1} = 0.
        let (mut claim, update) = (claim, update);
        while let Some(panels) = claim() {
            update(panels);
        }
        return;
    }
    let w_hh = team_weight(&layer.w_hh);
    // SAFETY: rows t-1 of y were done before this step (waited for) and
    // nobody writes them during step t; each claimed panel's columns of
    // G belong to the worker that claimed it.
    unsafe {
        let h_prev = std::slice::from_raw_parts(y.get().add((t - 1) * batch * h), batch * h);
        let g = SharedOutput::from_raw(shared.gates, (t + 1) * batch, g4).rows(t * batch..(t + 1) * batch);
        w_hh.recur(MatRef::row_major(h_prev, batch, h), g, true, order, claim, update);
    }
}

/// The order of step `t`'s panels: forward and backward by turns, so each
/// step starts on the part of `W_hh` the last one read last, the part still
/// in cache when `W_hh` (or a worker's share of it) is a little larger than
/// the cache. The products are the same either way, bit for bit: a panel's
/// sums do not depend on when it runs.
fn step_order(t: usize) -> PanelOrder {
    if t.is_multiple_of(2) {
        PanelOrder::Ascending
    } else {
        PanelOrder::Descending
    }
}

impl Executor for LstmExecutor {
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
        let max_gates = self.layers.iter().map(|l| 4 * l.hidden).max().unwrap_or(0);
        let max_hidden = self.layers.iter().map(|l| l.hidden).max().unwrap_or(0);
        grow(&mut self.gates, rows * max_gates);
        grow(&mut self.cell, batch * max_hidden);
        self.ys.resize_with(self.layers.len(), Vec::new);
        for (y, l) in self.ys.iter_mut().zip(&self.layers) {
            grow(y, rows * l.hidden);
        }

        let n_in = self.layers[0].input;
        let x: &[f32] = match inputs {
            _ if gathered => &self.x0[..rows * n_in],
            Inputs::Features { values, .. } => values,
            Inputs::Tokens { .. } => unreachable!("tokens are always gathered"),
        };
        if self.layers.iter().all(|l| l.interleaved) {
            team_forward(
                &self.layers,
                x,
                &mut self.gates,
                &mut self.ys,
                &mut self.cell,
                &mut self.staged_x,
                &mut self.ranges,
                &mut self.claims,
                &mut self.progress,
                seq,
                batch,
            );
        } else {
            layer_by_layer_forward(&self.layers, x, &mut self.gates, &mut self.ys, &mut self.cell, seq, batch);
        }

        let last = self.layers.last().expect("a model has layers");
        let y = &self.ys[self.layers.len() - 1][..rows * last.hidden];
        match &self.head {
            None => Ok(y),
            Some(head) => {
                grow(&mut self.logits, rows * head.output);
                let logits = &mut self.logits[..rows * head.output];
                head.weight
                    .apply_with_bias(MatRef::row_major(y, rows, head.input), &head.bias, logits);
                Ok(logits)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every panel is handed out exactly once, whoever claims it: workers
    /// claiming in turn (the last one three times as often, so it steals),
    /// each starting with its own share (at its first panel, or its last
    /// in descending order), with and without the taper.
    #[test]
    fn claims_cover_every_panel_once_and_start_with_the_own_share() {
        let cases = [
            (47, 2, 5, 1),
            (47, 2, 12, 1),
            (20, 3, 4, 1),
            (1, 2, 1, 1),
            (7, 3, 1, 1),
            (0, 2, 3, 1),
            (47, 2, 8, 8),
            (47, 2, 8, 4),
            (29, 3, 4, 4),
        ];
        for (panels, workers, chunk, granule) in cases {
            for (taper, order) in [false, true]
                .into_iter()
                .flat_map(|t| [PanelOrder::Ascending, PanelOrder::Descending].map(|o| (t, o)))
            {
                let claims: Vec<AtomicUsize> = (0..workers).map(|_| AtomicUsize::new(0)).collect();
                let mut claimers: Vec<_> = (0..workers)
                    .map(|w| claimer(&claims, panels, chunk, granule, w, taper, order))
                    .collect();
                let mut seen = vec![0usize; panels];
                let mut first = vec![None; workers];
                let mut live = vec![true; workers];
                let mut turn = 0;
                while live.iter().any(|&l| l) {
                    let w = if turn % 4 == 0 { turn / 4 % workers } else { workers - 1 };
                    turn += 1;
                    if !live[w] {
                        continue;
                    }
                    match claimers[w]() {
                        Some(range) => {
                            assert!(!range.is_empty() && range.len() <= chunk, "{range:?} of chunk {chunk}");
                            let v = (0..workers).find(|&v| panels * (v + 1) / workers > range.start).unwrap();
                            let share = panels * v / workers..panels * (v + 1) / workers;
                            let last_of_share = match order {
                                PanelOrder::Ascending => range.end == share.end,
                                PanelOrder::Descending => range.start == share.start,
                            };
                            assert!(
                                range.len().is_multiple_of(granule) || last_of_share,
                                "{range:?}: not whole granules of {granule} before the end of its share {share:?}"
                            );
                            first[w].get_or_insert(match order {
                                PanelOrder::Ascending => range.start,
                                PanelOrder::Descending => range.end,
                            });
                            for p in range {
                                seen[p] += 1;
                            }
                        }
                        None => live[w] = false,
                    }
                }
                let case = format!("{panels} panels, {workers} workers, chunk {chunk}, granule {granule}, taper {taper}, {order:?}");
                assert!(seen.iter().all(|&n| n == 1), "{case}: {seen:?}");
                for (w, first) in first.iter().enumerate() {
                    let own_first = match order {
                        PanelOrder::Ascending => panels * w / workers,
                        PanelOrder::Descending => panels * (w + 1) / workers,
                    };
                    let own_share_empty = panels * w / workers == panels * (w + 1) / workers;
                    if let (Some(first), false) = (first, own_share_empty) {
                        assert_eq!(*first, own_first, "{case}: worker {w} began outside its share");
                    }
                }
            }
        }
    }

    /// With the taper, a share ends in ranges of one panel, and no range
    /// takes more than half of what its share had left.
    #[test]
    fn tapered_claims_shrink_towards_the_end_of_a_share() {
        let claims = [AtomicUsize::new(0)];
        let claim = claimer(&claims, 23, 5, 1, 0, true, PanelOrder::Ascending);
        let sizes: Vec<usize> = std::iter::from_fn(claim).map(|r| r.len()).collect();
        assert_eq!(sizes, [5, 5, 5, 4, 2, 1, 1]);
    }

    /// With a granule, the tapered ranges round up to whole granules, and
    /// only the last range of a share is shorter.
    #[test]
    fn tapered_claims_keep_to_whole_granules() {
        let claims = [AtomicUsize::new(0)];
        let claim = claimer(&claims, 23, 8, 4, 0, true, PanelOrder::Ascending);
        let sizes: Vec<usize> = std::iter::from_fn(claim).map(|r| r.len()).collect();
        assert_eq!(sizes, [8, 8, 4, 3]);
    }

    /// In descending order the ranges run from the share's end down, the
    /// same sizes in the same sequence.
    #[test]
    fn descending_claims_run_from_the_end_of_the_share() {
        let claims = [AtomicUsize::new(0)];
        let claim = claimer(&claims, 23, 5, 1, 0, true, PanelOrder::Descending);
        let ranges: Vec<_> = std::iter::from_fn(claim).collect();
        assert_eq!(ranges, [18..23, 13..18, 8..13, 4..8, 2..4, 1..2, 0..1]);
    }
}
