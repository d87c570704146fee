//! The AVX2 micro-kernels: up to 6 rows by a 16-column half of a panel
//! (1-2 rows by a whole panel), over panels in the halves layout, reading
//! `A` packed or in place; and [`HalvesRun`], one call over a run of whole
//! panels.

use super::PANEL;
use super::blocking::HALF_PREFETCH_AHEAD;
use super::micro::{KernelFn, MicroKernels};
use super::output::Start;
use super::panel::HALF;
use super::tile::{Tile, TileA};

/// The AVX2 + FMA kernels.
#[cfg(target_arch = "x86_64")]
pub(super) struct Avx2;

#[cfg(target_arch = "x86_64")]
impl MicroKernels for Avx2 {
    const MR: usize = 6;
    /// A half panel: blocks of 3-6 rows run the two halves in two calls
    /// (1-2 rows take the whole panel per call).
    const NR: usize = HALF;
    fn kernel(rows: usize, _prefetch_b: bool) -> KernelFn {
        match rows {
            1 => micro_avx2::<1, 4> as KernelFn,
            2 => micro_avx2::<2, 4>,
            3 => micro_avx2::<3, 2>,
            4 => micro_avx2::<4, 2>,
            5 => micro_avx2::<5, 2>,
            6 => micro_avx2::<6, 2>,
            _ => unreachable!("row block of {rows}"),
        }
    }
}

/// `MR` rows x `8 * V` columns from `col0`, in `V * MR` ymm accumulators,
/// over a panel in the halves layout.
///
/// AVX2 has 16 ymm registers, so a whole 32-column panel row (4 vectors)
/// fits only 1-2 rows of accumulators (`V = 4`, both halves per step).
/// Blocks of 3-6 rows run one 16-column half per call (`V = 2`), the
/// classic 6 x 16 shape: per `k` step one cache line of the half and `MR`
/// broadcasts feed `2 * MR` FMAs, with up to 12 independent accumulators.
///
/// # Safety
/// AVX2 and FMA must be present, and the tile must lie inside `A`, the
/// panel and `C`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn micro_avx2<const MR: usize, const V: usize>(t: &Tile) {
    // SAFETY: the caller guarantees the CPU features and that the tile
    // lies inside A, the panel and C (see `Job::run_slice`).
    unsafe {
        use std::arch::x86_64::*;
        let c0 = t.col0;
        let cols = c0..(c0 + 8 * V).min(t.width);
        let contiguous = t.out.csc == 1 && cols.len() == 8 * V;
        let mut buf = [0.0f32; PANEL];
        // As in the AVX-512 kernel, C is loaded first and every step adds
        // onto it in order, so a zero step (an ISS-removed unit) leaves the
        // sums bit for bit unchanged.
        let mut acc = [[_mm256_setzero_ps(); V]; MR];
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let src = match t.start {
                // A whole half of a contiguous row of C is read in place even
                // in a partial panel.
                Start::C if contiguous => Some(t.c_row(r).cast_const()),
                _ => t.initial_row(r, &mut buf),
            };
            if let Some(src) = src {
                for (q, v) in acc_r.iter_mut().enumerate() {
                    *v = _mm256_loadu_ps(src.add(c0 + 8 * q));
                }
            }
        }
        // Row `r`'s value of step `kk / step` is at `rowp[r] + kk`: one
        // offset shared by every row, so that a row's address is a base
        // register plus that offset (and, unrolled, a constant), not the
        // previous row's address plus the stride.
        let (ap, row_stride, step) = match t.a {
            TileA::Packed(a) => {
                debug_assert_eq!(a.len(), t.kb * MR);
                (a.as_ptr(), 1, MR)
            }
            TileA::InPlace { first, row_stride } => (first, row_stride, 1),
        };
        let rowp: [*const f32; MR] = std::array::from_fn(|r| ap.wrapping_add(r * row_stride));
        let mut kk = 0usize;
        // The halves' rows this call reads: both (`V = 4`), or the one
        // from `col0` twice (`V = 2`, only the first is used).
        let mut hp = if V == 4 {
            [t.panel.half(0).as_ptr(), t.panel.half(1).as_ptr()]
        } else {
            [t.panel.half(c0 / HALF).as_ptr(); 2]
        };
        // One `k` step (a macro, not a closure: a closure would not inherit
        // this function's target features).
        macro_rules! step_at {
            // The step `off` floats of `A` past `kk` (0 or `step`).
            ($off:expr) => {
                let b: [__m256; V] = std::array::from_fn(|q| _mm256_loadu_ps(hp[q / 2].add(8 * (q % 2))));
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    let x = _mm256_broadcast_ss(&*rowp[r].add(kk + $off));
                    for (v, bq) in acc_r.iter_mut().zip(&b) {
                        *v = _mm256_fmadd_ps(x, *bq, *v);
                    }
                }
                for h in hp.iter_mut().take(V / 2) {
                    *h = h.add(HALF);
                }
            };
        }
        // One step, advancing to the next.
        macro_rules! step {
            () => {
                step_at!(0);
                kk += step;
            };
        }
        if V == 4 {
            // The only pass over the slice (a single block of 1–2 rows, all
            // of `k`): prefetch within both halves' streams, 16 rows ahead.
            for _ in 0..t.kb {
                _mm_prefetch::<_MM_HINT_T0>(hp[0].wrapping_add(HALF_PREFETCH_AHEAD) as *const i8);
                _mm_prefetch::<_MM_HINT_T0>(hp[1].wrapping_add(HALF_PREFETCH_AHEAD) as *const i8);
                step!();
            }
        } else {
            // This call's share of the next slice's rows, a line of each
            // half per step, or paced at one line per step
            // ([`Tile::paced_prefetch`]): the passes over a slice from L1
            // keep the next one's loads in flight, so a product that
            // streams its weights from memory overlaps the two.
            let share = t.next_rows.len().min(t.kb);
            let paced = t.paced_prefetch && 2 * share <= t.kb;
            let prefetched = if paced { 2 * share } else { share };
            if share > 0 {
                let mut np = [0, 1].map(|h| t.next.half(h)[t.next_rows.start * HALF..].as_ptr());
                if paced {
                    for line in 0..prefetched {
                        let n = &mut np[line % 2];
                        _mm_prefetch::<_MM_HINT_T1>(*n as *const i8);
                        *n = n.wrapping_add(HALF);
                        step!();
                    }
                } else {
                    for _ in 0..prefetched {
                        for n in np.iter_mut() {
                            _mm_prefetch::<_MM_HINT_T0>(*n as *const i8);
                            *n = n.wrapping_add(HALF);
                        }
                        step!();
                    }
                }
            }
            // Two steps at a time, the loop written out for each `step`
            // (so that the second step's offset is a constant displacement)
            // and with or without prefetching this call's own half ahead.
            macro_rules! unrolled {
                ($step:expr, $ahead:expr) => {
                    for _ in 0..(t.kb - prefetched) / 2 {
                        if $ahead {
                            _mm_prefetch::<_MM_HINT_T0>(hp[0].wrapping_add(HALF_PREFETCH_AHEAD) as *const i8);
                        }
                        step_at!(0);
                        if $ahead {
                            _mm_prefetch::<_MM_HINT_T0>(hp[0].wrapping_add(HALF_PREFETCH_AHEAD) as *const i8);
                        }
                        step_at!($step);
                        kk += 2 * $step;
                    }
                };
            }
            match (step == 1, t.read_ahead) {
                (true, false) => unrolled!(1, false),
                (true, true) => unrolled!(1, true),
                (false, false) => unrolled!(MR, false),
                (false, true) => unrolled!(MR, true),
            }
            for _ in 0..(t.kb - prefetched) % 2 {
                step!();
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            if contiguous {
                let dst = t.c_row(r).add(c0);
                for (q, v) in acc_r.iter().enumerate() {
                    _mm256_storeu_ps(dst.add(8 * q), *v);
                }
            } else {
                for (q, v) in acc_r.iter().enumerate() {
                    _mm256_storeu_ps(buf.as_mut_ptr().add(c0 + 8 * q), *v);
                }
                t.store_c_cols(r, &buf, cols.clone());
            }
        }
    }
}

/// Row blocks of `A` (of `MR` rows each) over both 16-column halves of a
/// run of whole panels with contiguous rows of `C`: the calls of one row
/// block over a chunk of panels (the block-major order), or of every row
/// block over one panel, in one call, so the setup the calls repeated (a
/// `Tile` each, the kernel's prologue, the choice of start per row)
/// happens once per run.
pub(super) struct HalvesRun<'a> {
    /// Where the first block's first row of `A` starts at the slice's first
    /// step; row `r` of block `b` at `+ b * a_block_floats + r *
    /// a_row_stride`, the steps `a_step` floats apart.
    pub(super) a_first: *const f32,
    pub(super) a_row_stride: usize,
    pub(super) a_step: usize,
    pub(super) a_block_floats: usize,
    pub(super) blocks: usize,
    pub(super) kb: usize,
    /// The slice's rows of the run's first half.
    pub(super) first_half: *const f32,
    /// Floats from one panel to the next, and from a panel's first half to its second.
    pub(super) panel_floats: usize,
    pub(super) half_floats: usize,
    pub(super) panels: usize,
    /// `C` at the first block's first row and the run's first column.
    pub(super) c: *mut f32,
    pub(super) rsc: usize,
    pub(super) start: Start,
    /// The run's first column (where a bias start row is read).
    pub(super) first_col: usize,
    pub(super) _a: std::marker::PhantomData<&'a [f32]>,
}

/// [`micro_avx2_halves`] for blocks of `rows` rows (3–6, the blocks AVX2
/// runs in half passes), reading each half ahead or not
/// ([`Tile::read_ahead`](super::tile::Tile::read_ahead)).
#[cfg(target_arch = "x86_64")]
pub(super) fn halves_kernel<const READ_AHEAD: bool>(rows: usize) -> unsafe fn(&HalvesRun) {
    match rows {
        3 => micro_avx2_halves::<3, READ_AHEAD>,
        4 => micro_avx2_halves::<4, READ_AHEAD>,
        5 => micro_avx2_halves::<5, READ_AHEAD>,
        6 => micro_avx2_halves::<6, READ_AHEAD>,
        _ => unreachable!("half passes take blocks of 3-6 rows, not {rows}"),
    }
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) fn halves_kernel<const READ_AHEAD: bool>(_rows: usize) -> unsafe fn(&HalvesRun) {
    unreachable!("only the AVX2 kernels run half passes")
}

/// The AVX2 kernel for a [`HalvesRun`]: half by half, block by block, what
/// [`micro_avx2`]`::<MR, 2>` computes for that block and half (the same
/// steps in the same order from the same start, so the same bits), with
/// the half read ahead 16 rows, one line per step, when `READ_AHEAD`.
///
/// # Safety
/// AVX2 and FMA must be present, and the run must lie inside `A`, the
/// packed panels and `C` (as each block's and half's [`Tile`] would).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn micro_avx2_halves<const MR: usize, const READ_AHEAD: bool>(t: &HalvesRun) {
    // SAFETY: the caller guarantees the CPU features and the bounds.
    unsafe {
        use std::arch::x86_64::*;
        let step = t.a_step;
        for half in 0..2 * t.panels {
            let col = half / 2 * PANEL + half % 2 * HALF;
            let first_half = t.first_half.add(half / 2 * t.panel_floats + half % 2 * t.half_floats);
            for block in 0..t.blocks {
                // As in `micro_avx2`: row `r`'s value of step `kk / step` is at `rowp[r] + kk`.
                let ap = t.a_first.add(block * t.a_block_floats);
                let rowp: [*const f32; MR] = std::array::from_fn(|r| ap.wrapping_add(r * t.a_row_stride));
                let c = t.c.add(block * MR * t.rsc + col);
                let mut hp = first_half;
                let mut acc = [[_mm256_setzero_ps(); 2]; MR];
                match t.start {
                    Start::Zero => {}
                    Start::C => {
                        for (r, acc_r) in acc.iter_mut().enumerate() {
                            let c = c.add(r * t.rsc);
                            *acc_r = [_mm256_loadu_ps(c), _mm256_loadu_ps(c.add(8))];
                        }
                    }
                    Start::Row(row) => {
                        let b = row.get().add(t.first_col + col);
                        acc = [[_mm256_loadu_ps(b), _mm256_loadu_ps(b.add(8))]; MR];
                    }
                }
                let mut kk = 0usize;
                // One `k` step: `off` floats of `A` past `kk`, the half's row
                // `row` past `hp` (a macro: a closure would not inherit the
                // target features).
                macro_rules! step_at {
                    ($off:expr, $row:expr) => {
                        let b = [
                            _mm256_loadu_ps(hp.add($row * HALF)),
                            _mm256_loadu_ps(hp.add($row * HALF + 8)),
                        ];
                        for (r, acc_r) in acc.iter_mut().enumerate() {
                            let x = _mm256_broadcast_ss(&*rowp[r].add(kk + $off));
                            for (v, bq) in acc_r.iter_mut().zip(&b) {
                                *v = _mm256_fmadd_ps(x, *bq, *v);
                            }
                        }
                    };
                }
                // Two steps at a time, written out for each `step` so that
                // the second step's offsets are constant displacements.
                macro_rules! unrolled {
                    ($step:expr) => {
                        for _ in 0..t.kb / 2 {
                            if READ_AHEAD {
                                _mm_prefetch::<_MM_HINT_T0>(hp.wrapping_add(HALF_PREFETCH_AHEAD) as *const i8);
                            }
                            step_at!(0, 0);
                            if READ_AHEAD {
                                _mm_prefetch::<_MM_HINT_T0>(hp.wrapping_add(HALF + HALF_PREFETCH_AHEAD) as *const i8);
                            }
                            step_at!($step, 1);
                            kk += 2 * $step;
                            hp = hp.add(2 * HALF);
                        }
                    };
                }
                if step == 1 {
                    unrolled!(1);
                } else {
                    unrolled!(MR);
                }
                if t.kb % 2 == 1 {
                    step_at!(0, 0);
                }
                for (r, acc_r) in acc.iter().enumerate() {
                    let c = c.add(r * t.rsc);
                    _mm256_storeu_ps(c, acc_r[0]);
                    _mm256_storeu_ps(c.add(8), acc_r[1]);
                }
            }
        }
    }
}
