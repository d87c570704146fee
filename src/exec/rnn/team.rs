//! The whole forward pass on one team of persistent workers (packed
//! backend, every precision): no fork-join between phases.
//!
//! Per layer, the workers stage the layer's input together where the
//! kernels do not read it in place, then compute the input projection of
//! all its directions at once (a [`JointProjection`]) chunk of panels by
//! chunk; then, step by step, each computes
//! the recurrent product of a chunk of blocks of units (see [`super::layout`])
//! and the update of those units while their gates are in its cache. Both
//! directions of a bidirectional layer run in the same phases (the
//! backward one at the mirrored position), so they share every wait; an
//! RHN runs its micro-layers one phase each.
//!
//! Workers wait for work to be done, not for each other: each phase counts
//! the blocks finished, and the next phase starts when the count is
//! complete, whoever did the work. A worker that has lost its core (a busy
//! host, or more threads than cores) therefore holds nobody up unless it
//! holds unfinished work, and the waiting ones spin briefly, then park.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::claims::claimer;
use super::layout::GateLayout;
use super::{Buffers, ExecDir, ExecLayer, JointProjection, state_view};
use crate::exec::PreparedWeight;
use crate::exec::team_product::{StagedPtrs, Staging, TeamWeight};
use crate::kernels::activations::{gru_update, lstm_cell_update_blocks, rhn_update};
use crate::kernels::int8::SharedRange;
use crate::kernels::matrix::SendPtr;
use crate::kernels::team::{Team, run_team};
use crate::kernels::{MatRef, PANEL, PanelOrder, SharedOutput, Start};
use crate::model::Cell;

/// Multiply-adds per recurrent step of a direction below which one worker
/// does the whole step (splitting it would cost more in waits than it
/// saves); the two directions of a layer then still run side by side.
const PARALLEL_RECURRENCE_MIN_MACS: usize = 1 << 16;

/// Multiply-adds of all input projections below which, when every step is
/// small too, the whole forward runs on one thread.
const PARALLEL_PROJECTION_MIN_MACS: usize = 1 << 22;

/// Multiply-adds per recurrent step of every direction of a layer below
/// which, with one worker per direction, direction i is worker i's alone:
/// its steps then wait for nobody, where splitting each step would cost a
/// wait per step for a product of a few microseconds. (With more workers
/// than directions, larger steps are split, to keep every worker busy.)
const OWNED_DIRECTION_MAX_MACS: usize = 1 << 22;

/// Multiply-adds of one recurrent step of `d`.
fn step_macs(d: &ExecDir, batch: usize) -> usize {
    batch * d.hidden * d.cell.recurrent_gates() * d.hidden
}

/// Whether one worker does each of `d`'s steps (see
/// [`PARALLEL_RECURRENCE_MIN_MACS`]).
fn small_step(d: &ExecDir, batch: usize) -> bool {
    step_macs(d, batch) < PARALLEL_RECURRENCE_MIN_MACS
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

/// Parts per worker that a layer's input is staged in (claimed, so that
/// the others stage the parts of a worker that has lost its core).
const PACK_PARTS_PER_WORKER: usize = 2;

/// The packed panels of a team layer's weight.
fn team_weight(w: &PreparedWeight) -> &TeamWeight {
    w.team().expect("team layers are packed")
}

/// Phases of one step of a direction: an RHN's micro-layers, else one.
fn phases(d: &ExecDir) -> usize {
    match d.cell {
        Cell::Rhn { depth } => depth,
        _ => 1,
    }
}

/// Where each layer's and direction's counters start in the shared
/// claims and progress arrays.
struct Plan {
    workers: usize,
    /// Per layer: its counters' start in `progress` (4 for staging, 1 for
    /// its projection) and its projection's claim set in `claims`.
    layer_progress: Vec<usize>,
    layer_claims: Vec<usize>,
    /// Per layer and direction: its first claim set and its first progress
    /// counter, one of each per step and phase.
    dir_claims: Vec<Vec<usize>>,
    dir_progress: Vec<Vec<usize>>,
    claims: usize,
    progress: usize,
}

impl Plan {
    fn new(layers: &[ExecLayer], seq: usize, workers: usize) -> Plan {
        let (mut claims, mut progress) = (0, 0);
        let (mut layer_progress, mut layer_claims) = (Vec::new(), Vec::new());
        let (mut dir_claims, mut dir_progress) = (Vec::new(), Vec::new());
        for layer in layers {
            layer_progress.push(progress);
            progress += 5;
            layer_claims.push(claims);
            claims += workers;
            let (mut c, mut p) = (Vec::new(), Vec::new());
            for d in &layer.dirs {
                c.push(claims);
                p.push(progress);
                let sets = seq * phases(d);
                claims += sets * workers;
                progress += sets;
            }
            dir_claims.push(c);
            dir_progress.push(p);
        }
        Plan {
            workers,
            layer_progress,
            layer_claims,
            dir_claims,
            dir_progress,
            claims,
            progress,
        }
    }
    /// The claim counters of layer `l`, direction `i`: set
    /// `s·phases + phase` is step `s`'s.
    fn claims<'a>(&self, all: &'a [AtomicUsize], l: usize, i: usize, set: usize) -> &'a [AtomicUsize] {
        let start = self.dir_claims[l][i] + set * self.workers;
        &all[start..start + self.workers]
    }
    fn progress<'a>(&self, all: &'a [AtomicUsize], l: usize, i: usize, set: usize) -> &'a AtomicUsize {
        &all[self.dir_progress[l][i] + set]
    }
    /// Layer `l`'s staging counters: range claimed, ranged, staging
    /// claimed, staged.
    fn staging<'a>(&self, all: &'a [AtomicUsize], l: usize) -> [&'a AtomicUsize; 4] {
        let s = self.layer_progress[l];
        [&all[s], &all[s + 1], &all[s + 2], &all[s + 3]]
    }
    /// Layer `l`'s input projection: its claim counters and its panels done.
    fn projection<'a>(&self, claims: &'a [AtomicUsize], progress: &'a [AtomicUsize], l: usize) -> (&'a [AtomicUsize], &'a AtomicUsize) {
        let start = self.layer_claims[l];
        (&claims[start..start + self.workers], &progress[self.layer_progress[l] + 4])
    }
}

/// What the workers share.
struct Shared<'a> {
    x: &'a [f32],
    staged: Vec<StagedPtrs<'a>>,
    /// The layer's input projection `[rows, joint columns]`.
    gates: SendPtr,
    /// Per direction slot: scratch and LSTM cell state.
    scratch: Vec<SendPtr>,
    cell: Vec<SendPtr>,
    /// Per layer: its output `[rows, output]`, each direction's units in
    /// their columns.
    ys: Vec<SendPtr>,
    claims: &'a [AtomicUsize],
    progress: &'a [AtomicUsize],
}

/// The forward pass of every layer on one team (see the module documentation).
pub(super) fn forward(layers: &[ExecLayer], x: &[f32], b: &mut Buffers, seq: usize, batch: usize) {
    let rows = seq * batch;
    let projection_macs: usize = layers
        .iter()
        .flat_map(|l| l.dirs.iter().map(|d| rows * l.input * d.cell.input_gates() * d.hidden))
        .sum();
    let all_small = layers.iter().flat_map(|l| &l.dirs).all(|d| small_step(d, batch));
    let workers = if all_small && projection_macs < PARALLEL_PROJECTION_MIN_MACS {
        1
    } else {
        rayon::current_num_threads()
    };
    let plan = Plan::new(layers, seq, workers);
    b.claims.resize_with(plan.claims, || AtomicUsize::new(0));
    b.claims.iter_mut().for_each(|c| *c.get_mut() = 0);
    b.progress.resize_with(plan.progress, || AtomicUsize::new(0));
    b.progress.iter_mut().for_each(|c| *c.get_mut() = 0);
    b.ranges.resize_with(layers.len(), SharedRange::new);
    b.ranges.iter_mut().for_each(SharedRange::reset);
    // The zero state a first step reads: the last `batch · h` of each
    // direction's scratch (GRU and RHN).
    for (i, s) in b.scratch.iter_mut().enumerate() {
        if let Some(h) = layers.iter().filter_map(|l| l.dirs.get(i)).map(|d| d.hidden).max() {
            let zeros = batch * h;
            if s.len() >= zeros {
                let n = s.len();
                s[n - zeros..].fill(0.0);
            }
        }
    }
    // How each layer's input reaches the kernels (read in place, or
    // staged by the workers together into a buffer grown for the largest).
    let stagings: Vec<Staging> = layers
        .iter()
        .enumerate()
        .map(|(li, l)| {
            let input: &[f32] = if li == 0 { x } else { &b.ys[li - 1] };
            let w = team_weight(&joint(l).w);
            let staging = w.staging(MatRef::row_major(&input[..rows * l.input], rows, l.input));
            b.staged_x.grow_for(w, staging, rows);
            staging
        })
        .collect();
    let ys: Vec<SendPtr> = b.ys.iter_mut().map(|y| SendPtr(y.as_mut_ptr())).collect();
    let gates = SendPtr(b.gates[0].as_mut_ptr());
    let scratch: Vec<SendPtr> = b.scratch.iter_mut().map(|g| SendPtr(g.as_mut_ptr())).collect();
    let scratch_len: Vec<usize> = b.scratch.iter().map(Vec::len).collect();
    let cell: Vec<SendPtr> = b.cell.iter_mut().map(|g| SendPtr(g.as_mut_ptr())).collect();
    let staged_x = &mut b.staged_x;
    let staged: Vec<StagedPtrs> = b.ranges.iter().map(|r| staged_x.ptrs(r)).collect();
    let shared = Shared {
        x,
        staged,
        gates,
        scratch,
        cell,
        ys,
        claims: &b.claims,
        progress: &b.progress,
    };
    let scratch_len = &scratch_len;
    run_team(workers, &|w, team| {
        for (li, layer) in layers.iter().enumerate() {
            let input = if li == 0 {
                shared.x
            } else {
                // SAFETY: the previous layer's last step is done (waited
                // for below); nobody writes its outputs any more.
                unsafe { std::slice::from_raw_parts(shared.ys[li - 1].get(), rows * layer.input) }
            };
            let x = MatRef::row_major(&input[..rows * layer.input], rows, layer.input);
            let staged = &shared.staged[li];
            if stagings[li] != Staging::InPlace {
                let parts = PACK_PARTS_PER_WORKER * workers;
                let w_ih = team_weight(&joint(layer).w);
                prepare_projection(w_ih, x, stagings[li], staged, team, plan.staging(shared.progress, li), parts);
            }
            let (claims, done) = plan.projection(shared.claims, shared.progress, li);
            input_projection(joint(layer), x, stagings[li], staged, shared.gates, team, done, claims, w);
            team.wait_done(done, projection_work(rows, joint(layer).cols, stagings[li], workers));
            let most = layer.dirs.iter().map(phases).max().unwrap_or(1);
            // Each direction writes its units' columns of the layer's
            // output (two directions write one row at once only mid-way).
            // A direction waits only for its own last phase: the two
            // directions of a layer share no state, so neither holds the
            // other up (where one worker does each, they run side by side).
            let blocks = |d: &ExecDir| d.layout.expect("team directions have a layout").blocks();
            // Where each direction can have a worker of its own and every
            // step is small (or, with a worker per direction, not large:
            // [`OWNED_DIRECTION_MAX_MACS`]), direction i is worker i's
            // alone: claiming the other's steps too would make each worker
            // wait, every step, for the other direction's last one.
            let n = layer.dirs.len();
            let owned = |d: &ExecDir| small_step(d, batch) || (workers == n && step_macs(d, batch) < OWNED_DIRECTION_MAX_MACS);
            let own_directions = n > 1 && workers >= n && layer.dirs.iter().all(owned);
            // One worker runs the directions one after the other, each
            // keeping its recurrent weights in cache for all its steps.
            let passes = if workers == 1 { n } else { 1 };
            for (pass, s) in (0..passes).flat_map(|pass| (0..seq).map(move |s| (pass, s))) {
                for phase in 0..most {
                    // Worker w starts on direction w (mod 2).
                    let order = (0..n).map(|j| (j + w) % n).map(|i| (i, &layer.dirs[i]));
                    let mine =
                        |(i, d): &(usize, &ExecDir)| phase < phases(d) && (!own_directions || *i == w) && (passes == 1 || *i == pass);
                    for (i, d) in order.filter(mine) {
                        let set = s * phases(d) + phase;
                        // The projection, before set 0, was waited for above.
                        if set > 0 {
                            team.wait_done(plan.progress(shared.progress, li, i, set - 1), blocks(d));
                        }
                        let step = Step {
                            d,
                            s,
                            phase,
                            seq,
                            batch,
                            // SAFETY: the direction's units start at its offset in each row.
                            y: SendPtr(unsafe { shared.ys[li].get().add(d.offset) }),
                            y_stride: layer.output,
                            gates: shared.gates,
                            gate_stride: joint(layer).cols,
                            scratch: shared.scratch[i],
                            scratch_len: scratch_len[i],
                            cell: shared.cell[i],
                            alone: own_directions || small_step(d, batch),
                        };
                        step.run(
                            team,
                            plan.progress(shared.progress, li, i, set),
                            plan.claims(shared.claims, li, i, set),
                            w,
                        );
                    }
                }
            }
            // Every direction's last phase, before its outputs are read.
            for (i, d) in layer.dirs.iter().enumerate().filter(|_| seq > 0) {
                team.wait_done(plan.progress(shared.progress, li, i, seq * phases(d) - 1), blocks(d));
            }
        }
    });
}

/// A worker's part of getting a layer's input projection ready where the
/// kernels do not read `X` in place: for int8, the range of parts of `X`
/// folded into the layer's shared range, then (for every precision) parts
/// of `X` staged into the buffer all workers read; parts are claimed one
/// at a time, and each pass is waited for. (The bias needs no pass of its
/// own: the projection's accumulators start from it.)
fn prepare_projection(
    w_ih: &TeamWeight,
    x: MatRef,
    staging: Staging,
    staged: &StagedPtrs,
    team: &Team,
    counters: [&AtomicUsize; 4],
    parts: usize,
) {
    let [range_claimed, ranged, stage_claimed, staged_done] = counters;
    if staging == Staging::RangeThenValues {
        loop {
            let part = range_claimed.fetch_add(1, Ordering::Relaxed);
            if part >= parts {
                break;
            }
            w_ih.range_part(x, staged, part, parts);
            team.complete(ranged, 1);
        }
        team.wait_done(ranged, parts);
    }
    loop {
        let part = stage_claimed.fetch_add(1, Ordering::Relaxed);
        if part >= parts {
            break;
        }
        // SAFETY: each part is staged once, by the worker that claimed it,
        // into its own range of the shared buffer (grown for every layer
        // by `forward`); nobody reads it before all parts are done, and
        // every part's range was folded before (waited for above).
        unsafe { w_ih.stage_part(x, staged, part, parts) };
        team.complete(staged_done, 1);
    }
    team.wait_done(staged_done, parts);
}

/// Layer `l`'s joint input projection.
fn joint(l: &ExecLayer) -> &JointProjection {
    l.joint.as_ref().expect("team layers have a joint projection")
}

/// Parts of its rows a layer's input projection is cut into, each a
/// product of its own over all the panels: where the kernels read `X` in
/// place and `X` is larger than the weight (a bidirectional layer's
/// narrow directions over a long sequence), so that each worker streams
/// the small weight rather than all of `X`, and a few panels do not split
/// unevenly between the workers (7 panels: 4 and 3). Two parts per worker,
/// for the others to take over a slow one's second. Else 1.
fn row_parts(rows: usize, cols: usize, staging: Staging, workers: usize) -> usize {
    let parts = 2 * workers;
    if workers > 1 && staging == Staging::InPlace && rows >= cols && rows >= parts * MIN_PART_ROWS {
        parts
    } else {
        1
    }
}

/// Fewest rows of a part of a projection cut by rows: a few of the
/// kernels' row blocks (12 rows with AVX-512, 6 with AVX2).
const MIN_PART_ROWS: usize = 48;

/// Rows of part `i` of `parts`: whole row blocks but the last part's.
fn part_rows(rows: usize, parts: usize, i: usize) -> std::ops::Range<usize> {
    const ALIGN: usize = 12;
    let at = |i: usize| if i == parts { rows } else { (rows * i / parts) / ALIGN * ALIGN };
    at(i)..at(i + 1)
}

/// What a layer's input projection counts done: panels, in every row part.
fn projection_work(rows: usize, cols: usize, staging: Staging, workers: usize) -> usize {
    row_parts(rows, cols, staging, workers) * cols.div_ceil(PANEL)
}

/// Worker `w`'s part of a layer's input projection, `G = b + X · W_ihᵀ`
/// over all rows and directions: chunks of panels claimed through
/// `claims` (or whole row parts, see [`row_parts`]), with `X` read as
/// `staging` says. The accumulators start from the bias, which saves a
/// write and a read of `G`.
#[allow(clippy::too_many_arguments)]
fn input_projection(
    p: &JointProjection,
    x: MatRef,
    staging: Staging,
    staged: &StagedPtrs,
    gates: SendPtr,
    team: &Team,
    progress: &AtomicUsize,
    claims: &[AtomicUsize],
    w: usize,
) {
    let rows = x.rows();
    let g = p.cols;
    let w_ih = team_weight(&p.w);
    let panels = g.div_ceil(PANEL);
    let parts = row_parts(rows, g, staging, claims.len());
    if parts > 1 {
        // Claimed a whole part at a time: shares of whole parts (`parts`
        // is a multiple of the workers).
        let mut claim = claimer(claims, parts * panels, panels, panels, w, false, PanelOrder::Ascending);
        while let Some(range) = claim() {
            debug_assert_eq!(range.len(), panels);
            let r = part_rows(rows, parts, range.start / panels);
            let k = x.cols();
            debug_assert_eq!(x.row_stride(), k, "X is read in place, row after row");
            let part = MatRef::row_major(&x.data()[r.start * k..r.end * k], r.len(), k);
            let mut whole = Some(0..panels);
            // SAFETY: X is read in place; each part's rows of G belong to
            // the worker that claimed the part; the bias row outlives the
            // call and nothing writes it.
            unsafe {
                let c = SharedOutput::from_raw(gates, rows, g).rows(r);
                let done = |range: std::ops::Range<usize>| team.complete(progress, range.len());
                w_ih.project(part, staging, staged, c, Start::bias(&p.bias), || whole.take(), done);
            }
        }
        return;
    }
    // Ranges of whole chunks of the kernel's order (each reads all of X);
    // one worker takes all the panels at once.
    let granule = w_ih.granule(rows, x.cols());
    let chunk = if claims.len() == 1 {
        panels
    } else {
        (panels / (PROJECTION_CHUNKS_PER_SHARE * claims.len()))
            .max(1)
            .next_multiple_of(granule)
    };
    let claim = claimer(claims, panels, chunk, granule, w, claims.len() > 1, PanelOrder::Ascending);
    let done = |range: std::ops::Range<usize>| team.complete(progress, range.len());
    // SAFETY: X was staged whole before (waited for) where it is staged;
    // each claimed panel's columns of G belong to the worker that claimed
    // them; the bias row outlives the call and nothing writes it.
    unsafe {
        let c = SharedOutput::from_raw(gates, rows, g);
        debug_assert_eq!(p.bias.len(), g);
        w_ih.project(x, staging, staged, c, Start::bias(&p.bias), claim, done);
    }
}

/// The order of step `s`'s panels: forward and backward by turns, so each
/// step starts on the part of `W_hh` the last one read last, the part still
/// in cache when `W_hh` (or a worker's share of it) is a little larger than
/// the cache. The products are the same either way, bit for bit: a panel's
/// sums do not depend on when it runs.
fn step_order(s: usize) -> PanelOrder {
    if s.is_multiple_of(2) {
        PanelOrder::Ascending
    } else {
        PanelOrder::Descending
    }
}

/// One phase of one step of one direction (see [`Step::run`]).
struct Step<'a> {
    d: &'a ExecDir,
    /// The step (0 first) and, for an RHN, the micro-layer.
    s: usize,
    phase: usize,
    seq: usize,
    batch: usize,
    /// The direction's first unit in the layer's output, whose rows are
    /// `y_stride` apart.
    y: SendPtr,
    y_stride: usize,
    /// The layer's input projection, `gate_stride` columns per row (this
    /// direction's from `d.gates_at`).
    gates: SendPtr,
    gate_stride: usize,
    scratch: SendPtr,
    scratch_len: usize,
    cell: SendPtr,
    /// Whether one worker does the whole step.
    alone: bool,
}

impl Step<'_> {
    /// The position step `s` reads and writes, and the one its last state is at.
    fn positions(&self) -> (usize, Option<usize>) {
        let p = if self.d.reverse { self.seq - 1 - self.s } else { self.s };
        let q = (self.s > 0).then(|| if self.d.reverse { p + 1 } else { p - 1 });
        (p, q)
    }

    /// Worker `w`'s part: chunks of blocks claimed through `claims` (one
    /// counter per worker's share), each getting the phase's recurrent
    /// product, then the update of its units, then counted in `done`.
    fn run(&self, team: &Team, done: &AtomicUsize, claims: &[AtomicUsize], w: usize) {
        let d = self.d;
        let layout = d.layout.expect("team directions have a layout");
        let h = d.hidden;
        let (p, q) = self.positions();
        let (batch, rows) = (self.batch, self.seq * self.batch);
        let blocks = layout.blocks();
        let width = self.y_stride;
        // A step one worker does alone is one share, claimed whole by
        // whoever comes first.
        let claims = if self.alone { &claims[..1] } else { claims };
        let workers = claims.len();
        // Chunks that cut each share evenly (12 + 11 of a 23-block share,
        // not 11 + 11 + 1).
        let block_macs = batch * h * layout.units * layout.gates;
        let chunk = blocks
            .div_ceil(CHUNKS_PER_SHARE * workers)
            .max(MIN_CHUNK_MACS.div_ceil(block_macs.max(1)))
            .clamp(1, blocks.max(1));
        let order = step_order(self.s);
        let mut block_claim = claimer(claims, blocks, chunk, 1, w, false, order);
        let claim = || block_claim().map(|b| layout.panels_of(b));
        let update = |panels: std::ops::Range<usize>| {
            let units = layout.units_of(panels.clone());
            // SAFETY: the units' gates, state and outputs in these rows
            // belong to the worker that claimed their blocks; everything
            // read was written before this phase (waited for).
            unsafe { self.update(layout, units) };
            team.complete(done, layout.units_of(panels).len().div_ceil(layout.units));
        };
        let g_cols = d.cell.input_gates() * h;
        // The phase's product: its `A` (the last state) and output.
        let state = |pos: usize| {
            // SAFETY: position `pos` of y was done in an earlier step
            // (waited for) and nobody writes it during this one.
            let y = unsafe { std::slice::from_raw_parts(self.y.get().add(pos * batch * width), (batch - 1) * width + h) };
            state_view(y, 0, batch, width, 0, h)
        };
        let (mut claim, update) = (claim, update);
        match (d.cell, self.phase, q) {
            // The first step of a GRU reads the zero state: no product.
            (Cell::Gru { .. }, _, None) => {
                while let Some(panels) = claim() {
                    update(panels);
                }
            }
            (Cell::Gru { .. }, _, Some(q)) => {
                // Apart from G, from b_hh.
                // SAFETY: each claimed panel's columns of the direction's
                // scratch belong to the worker that claimed them.
                unsafe {
                    let rec = SharedOutput::from_raw(self.scratch, batch, 3 * h);
                    team_weight(&d.w_hh[0]).recur_from(state(q), rec, Start::bias(&d.rec_bias[0]), claim, update);
                }
            }
            (Cell::Rhn { .. }, i, _) if i > 0 => {
                // Micro-layer i > 0 reads the state micro-layer i - 1 left.
                // SAFETY: the state was written by the last phase (waited
                // for); the gates are the direction's scratch.
                unsafe {
                    let s = std::slice::from_raw_parts(self.state_buffer(i - 1), batch * h);
                    let mt = SharedOutput::from_raw(self.scratch, batch, 2 * h);
                    let a = MatRef::row_major(s, batch, h);
                    team_weight(&d.w_hh[i]).recur_from(a, mt, Start::bias(&d.rec_bias[i - 1]), claim, update);
                }
            }
            // The first step of an LSTM (or micro-layer 0 of an RHN's
            // first step) reads the zero state: no product.
            (_, _, None) => {
                while let Some(panels) = claim() {
                    update(panels);
                }
            }
            (_, _, Some(q)) => {
                // Added to the step's input projection.
                // SAFETY: each claimed panel's columns of G belong to the
                // worker that claimed them.
                unsafe {
                    let g = SharedOutput::from_raw(self.gates, rows, self.gate_stride)
                        .columns(d.gates_at..d.gates_at + g_cols)
                        .rows(p * batch..(p + 1) * batch);
                    team_weight(&d.w_hh[0]).recur(state(q), g, true, order, claim, update);
                }
            }
        }
    }

    /// An RHN's state after micro-layer `i` (not the last): one of two
    /// buffers after its gates in the scratch, in turns.
    fn state_buffer(&self, i: usize) -> *mut f32 {
        let (batch, h) = (self.batch, self.d.hidden);
        // SAFETY: the scratch holds [gates 2h | state | state | zeros h] per batch row.
        unsafe { self.scratch.get().add(batch * 2 * h + (i % 2) * batch * h) }
    }

    /// Where row `row` of this direction's gates starts in the layer's `G`.
    fn gate_row(&self, row: usize) -> *const f32 {
        // SAFETY: G holds `rows · gate_stride` values and the direction's
        // gates lie inside each row.
        unsafe { self.gates.get().add(row * self.gate_stride + self.d.gates_at) }
    }

    /// The zero state (the scratch's last `batch · h` values).
    fn zeros(&self) -> *const f32 {
        // SAFETY: the scratch ends in `batch · h` zeros (set by `forward`).
        unsafe { self.scratch.get().add(self.scratch_len - self.batch * self.d.hidden) }
    }

    /// Updates `units` (whole blocks of `layout`) of every batch row.
    ///
    /// # Safety
    /// The units' gates, state and outputs belong to the caller; what it
    /// reads was written before (waited for).
    unsafe fn update(&self, layout: GateLayout, units: std::ops::Range<usize>) {
        let d = self.d;
        let (h, batch, width) = (d.hidden, self.batch, self.y_stride);
        let (p, q) = self.positions();
        let n = units.len();
        let g0 = layout.block_start(units.start);
        // SAFETY (all below): rows and offsets lie inside the buffers the
        // executor sized for this pass; the caller owns these units.
        unsafe {
            let y_at = |pos: usize, b: usize| self.y.get().add((pos * batch + b) * width + units.start);
            let prev_at = |b: usize| -> *const f32 {
                match q {
                    Some(q) => y_at(q, b),
                    None => self.zeros().add(b * h + units.start),
                }
            };
            for b in 0..batch {
                let row = p * batch + b;
                let gates = std::slice::from_raw_parts(self.gate_row(row).add(g0), layout.gates * n);
                match d.cell {
                    Cell::Lstm => {
                        let c = std::slice::from_raw_parts_mut(self.cell.get().add(b * h + units.start), n);
                        if q.is_none() {
                            c.fill(0.0);
                        }
                        let y = std::slice::from_raw_parts_mut(y_at(p, b), n);
                        lstm_cell_update_blocks(gates, c, y);
                    }
                    Cell::Gru { .. } => {
                        // Block by block: each block's gates are [r z n].
                        for u0 in units.clone().step_by(layout.units) {
                            let m = (u0 + layout.units).min(units.end) - u0;
                            let at = layout.block_start(u0);
                            let input = std::slice::from_raw_parts(self.gate_row(row).add(at), 3 * m);
                            let rec: &[f32] = match q {
                                Some(_) => std::slice::from_raw_parts(self.scratch.get().add(b * 3 * h + at), 3 * m),
                                None => &d.rec_bias[0][at..at + 3 * m],
                            };
                            let prev = std::slice::from_raw_parts(prev_at(b).add(u0 - units.start), m);
                            let out = std::slice::from_raw_parts_mut(y_at(p, b).add(u0 - units.start), m);
                            gru_update(input, rec, prev, out);
                        }
                    }
                    Cell::Rhn { depth } => {
                        let i = self.phase;
                        for u0 in units.clone().step_by(layout.units) {
                            let m = (u0 + layout.units).min(units.end) - u0;
                            let at = layout.block_start(u0);
                            let g: &[f32] = if i == 0 {
                                std::slice::from_raw_parts(self.gate_row(row).add(at), 2 * m)
                            } else {
                                std::slice::from_raw_parts(self.scratch.get().add(b * 2 * h + at), 2 * m)
                            };
                            let prev: *const f32 = if i == 0 {
                                prev_at(b).add(u0 - units.start)
                            } else {
                                self.state_buffer(i - 1).add(b * h + u0)
                            };
                            let out: *mut f32 = if i + 1 == depth {
                                y_at(p, b).add(u0 - units.start)
                            } else {
                                self.state_buffer(i).add(b * h + u0)
                            };
                            rhn_update(g, std::slice::from_raw_parts(prev, m), std::slice::from_raw_parts_mut(out, m));
                        }
                    }
                }
            }
        }
    }
}
