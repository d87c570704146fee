//! The AVX-512 micro-kernels (up to 12 rows by a whole 32-column panel),
//! and a product of one row over many panels in one call ([`row_product`]).

use super::PANEL;
use super::blocking::PREFETCH_AHEAD;
use super::micro::{KernelFn, MicroKernels};
use super::output::Start;
use super::panel::PanelLayout;
use super::schedule::{Job, JobA, PanelOrder};
use super::tile::{Tile, TileA};

/// The AVX-512 kernels.
pub(super) struct Avx512;

impl MicroKernels for Avx512 {
    const MR: usize = 12;
    const NR: usize = PANEL;
    fn kernel(rows: usize, prefetch_b: bool) -> KernelFn {
        macro_rules! rows {
            ($pf:literal) => {
                match rows {
                    // One row runs a second accumulator chain over alternate
                    // steps to cover the FMA latency; more rows keep one
                    // (docs/tuning.md, "AVX-512 accumulator chains").
                    1 => micro_avx512::<1, 2, $pf> as KernelFn,
                    2 => micro_avx512::<2, 1, $pf>,
                    3 => micro_avx512::<3, 1, $pf>,
                    4 => micro_avx512::<4, 1, $pf>,
                    5 => micro_avx512::<5, 1, $pf>,
                    6 => micro_avx512::<6, 1, $pf>,
                    7 => micro_avx512::<7, 1, $pf>,
                    8 => micro_avx512::<8, 1, $pf>,
                    9 => micro_avx512::<9, 1, $pf>,
                    10 => micro_avx512::<10, 1, $pf>,
                    11 => micro_avx512::<11, 1, $pf>,
                    12 => micro_avx512::<12, 1, $pf>,
                    _ => unreachable!("row block of {rows}"),
                }
            };
        }
        if prefetch_b { rows!(true) } else { rows!(false) }
    }
}

/// `MR` rows x 32 columns in `2 * MR` zmm accumulators per chain; each `k`
/// step loads one panel row (two vectors) and broadcasts `MR` elements of
/// `A`, packed or read in place. With `CHAINS > 1`, consecutive steps go to
/// independent accumulator sets (summed at the end). With `PREFETCH`, each
/// step prefetches the panel row [`PREFETCH_AHEAD`] ahead. A tile no wider
/// than 16 columns computes (and reads) the first half of the panel only.
///
/// # Safety
/// AVX-512F must be present, and the tile must lie inside `A`, the panel and `C`.
#[target_feature(enable = "avx512f")]
unsafe fn micro_avx512<const MR: usize, const CHAINS: usize, const PREFETCH: bool>(t: &Tile) {
    let narrow = t.width <= PANEL / 2;
    if let TileA::Packed(a) = t.a {
        debug_assert_eq!(a.len(), t.kb * MR);
    }
    // SAFETY: forwarded from the caller.
    unsafe {
        match (t.a, narrow) {
            (TileA::Packed(a), false) => steps::<MR, CHAINS, PREFETCH, false, false>(t, a.as_ptr(), 1),
            (TileA::Packed(a), true) => steps::<MR, CHAINS, PREFETCH, false, true>(t, a.as_ptr(), 1),
            (TileA::InPlace { first, row_stride }, false) => steps::<MR, CHAINS, PREFETCH, true, false>(t, first, row_stride),
            (TileA::InPlace { first, row_stride }, true) => steps::<MR, CHAINS, PREFETCH, true, true>(t, first, row_stride),
        }
    }
}

/// Fetches the panel row [`PREFETCH_AHEAD`] floats past `bp` into L1
/// (`NARROW`: its first half). The panel is one contiguous stream: where
/// it comes from memory, this overlaps the memory-bound small-batch
/// products' loads with their FMAs.
#[inline(always)]
fn prefetch_ahead<const NARROW: bool>(bp: *const f32) {
    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    // SAFETY: a prefetch of any address is harmless.
    unsafe {
        _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(PREFETCH_AHEAD) as *const i8);
        if !NARROW {
            _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(PREFETCH_AHEAD + 16) as *const i8);
        }
    }
}

/// The lanes of `width` columns in each half of a panel.
fn half_masks(width: usize) -> [u16; 2] {
    [0, 1].map(|half| ((1u32 << width.saturating_sub(half * 16).min(16)) - 1) as u16)
}

/// A panel-wide row of `C` (or a start row) from `src`: its first `width`
/// values, zeros past them.
///
/// # Safety
/// AVX-512F; `src` points at `width` readable floats (all 32 for a whole panel).
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn load_row(src: *const f32, width: usize) -> [std::arch::x86_64::__m512; 2] {
    use std::arch::x86_64::*;
    // SAFETY: forwarded from the caller; masked lanes are not read.
    unsafe {
        if width == PANEL {
            return [_mm512_loadu_ps(src), _mm512_loadu_ps(src.add(16))];
        }
        let m = half_masks(width);
        [0, 1].map(|h| _mm512_maskz_loadu_ps(m[h], src.add(16 * h)))
    }
}

/// Writes the first `width` values of a panel-wide row to `dst`: a whole
/// panel by plain moves (a masked store does not forward to the loads of
/// the cell update that reads it next), a partial one through lane masks.
///
/// # Safety
/// AVX-512F; `dst` points at `width` writable floats (all 32 for a whole panel).
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn store_row(dst: *mut f32, width: usize, v: [std::arch::x86_64::__m512; 2]) {
    use std::arch::x86_64::*;
    // SAFETY: forwarded from the caller; masked lanes are not written.
    unsafe {
        if width == PANEL {
            _mm512_storeu_ps(dst, v[0]);
            _mm512_storeu_ps(dst.add(16), v[1]);
        } else {
            let m = half_masks(width);
            _mm512_mask_storeu_ps(dst, m[0], v[0]);
            _mm512_mask_storeu_ps(dst.add(16), m[1], v[1]);
        }
    }
}

/// The body of [`micro_avx512`] for `A` packed (`[kb][MR]` from `a`) or,
/// with `IN_PLACE`, read in place (row `r`'s steps from `a + r · row_stride`);
/// `NARROW`: the first 16 columns only.
///
/// # Safety
/// As [`micro_avx512`].
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn steps<const MR: usize, const CHAINS: usize, const PREFETCH: bool, const IN_PLACE: bool, const NARROW: bool>(
    t: &Tile,
    a: *const f32,
    row_stride: usize,
) {
    // SAFETY: the caller guarantees the CPU features and that the tile
    // lies inside A, the panel and C (see `Job::run_slice`).
    unsafe {
        use std::arch::x86_64::*;
        // C is loaded first and the steps add onto it in order, so (with
        // one chain, blocks of 2+ rows) a step whose A element is zero, an
        // ISS-removed unit, leaves every sum bit for bit unchanged: the
        // compacted model's outputs equal the full model's exactly.
        // Where C's columns are contiguous, its tile (the partial last
        // panel's too) is read and written in place; otherwise copied.
        let in_place = t.out.csc == 1;
        let mut acc = [[[_mm512_setzero_ps(); 2]; MR]; CHAINS];
        let mut buf = [0.0f32; PANEL];
        for (r, acc_r) in acc[0].iter_mut().enumerate() {
            if in_place {
                if let Some(src) = t.start_in_place(r) {
                    *acc_r = load_row(src, t.width);
                }
            } else if let Some(src) = t.initial_row(r, &mut buf) {
                *acc_r = [_mm512_loadu_ps(src), _mm512_loadu_ps(src.add(16))];
            }
        }
        let mut ap = a;
        let mut bp = t.panel.rows().as_ptr();
        // One `k` step into accumulator set `$chain` (a macro, not a closure:
        // a closure would not inherit this function's target features).
        macro_rules! step {
            ($chain:expr) => {
                if PREFETCH {
                    prefetch_ahead::<NARROW>(bp);
                }
                let b0 = _mm512_loadu_ps(bp);
                let b1 = if NARROW { b0 } else { _mm512_loadu_ps(bp.add(16)) };
                for (r, acc_r) in $chain.iter_mut().enumerate() {
                    let x = _mm512_set1_ps(if IN_PLACE { *ap.add(r * row_stride) } else { *ap.add(r) });
                    acc_r[0] = _mm512_fmadd_ps(x, b0, acc_r[0]);
                    if !NARROW {
                        acc_r[1] = _mm512_fmadd_ps(x, b1, acc_r[1]);
                    }
                }
                bp = bp.add(PANEL);
                ap = ap.add(if IN_PLACE { 1 } else { MR });
            };
        }
        for _ in 0..t.kb / CHAINS {
            for chain in acc.iter_mut() {
                step!(chain);
            }
        }
        for _ in 0..t.kb % CHAINS {
            step!(acc[0]);
        }
        let (first, others) = acc.split_first_mut().expect("one chain or more");
        for chain in others.iter() {
            for (sums, parts) in first.iter_mut().zip(chain) {
                for (sum, part) in sums.iter_mut().zip(parts) {
                    *sum = _mm512_add_ps(*sum, *part);
                }
            }
        }
        for (r, acc_r) in first.iter().enumerate() {
            if in_place {
                store_row(t.c_row(r), t.width, *acc_r);
            } else {
                _mm512_storeu_ps(buf.as_mut_ptr(), acc_r[0]);
                _mm512_storeu_ps(buf.as_mut_ptr().add(16), acc_r[1]);
                t.store_c_row(r, &buf);
            }
        }
    }
}

/// A product of one row of `A` (a recurrent step at batch 1) over the
/// panels `range`, run in `order`, K block by K block: the same sums, in
/// the same order, as the 1-row micro-kernel called panel by panel, but
/// in one call (no tile per panel). Like that kernel, it reads `C`'s
/// partial last panel through lane masks, and only the first 16 columns
/// of a panel no wider than that (whose zero half never leaves L2).
///
/// # Safety
/// The CPU has AVX-512F; `job` has one row of `A`, whole-row panels
/// (`PanelLayout::Rows`) and contiguous columns of `C` (`out.csc == 1`);
/// `range` lies inside its panels.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn row_product<const PREFETCH: bool>(job: &Job, range: std::ops::Range<usize>, order: PanelOrder) {
    use std::arch::x86_64::*;
    let out = job.out;
    debug_assert!(job.row_blocks.rows == 1 && out.csc == 1 && job.b.layout == PanelLayout::Rows);
    for p in order.chunks(range, 1).map(|panel| panel.start) {
        let j0 = p * PANEL;
        let width = (out.n - j0).min(PANEL);
        for k0 in (0..job.k.max(1)).step_by(job.k_block) {
            let kb = (job.k - k0).min(job.k_block);
            let a = match job.a {
                JobA::Packed(packed) => packed[k0..].as_ptr(),
                JobA::InPlace(a) => a.data()[k0..].as_ptr(),
            };
            let b = job.b.panel(p)[k0 * PANEL..].as_ptr();
            // SAFETY: C's row 0 holds `n` floats from `ptr`, the start row
            // `n` floats, and the masks keep to `width` of them from j0;
            // the panel holds `k` rows of PANEL floats and A `k` floats.
            unsafe {
                let c = out.ptr.get().add(j0);
                let start = if k0 > 0 { Start::C } else { out.start };
                let initial = start.in_place(c.cast_const(), j0);
                let acc = initial.map_or([_mm512_setzero_ps(); 2], |src| load_row(src, width));
                let sums = if width <= PANEL / 2 {
                    row_steps::<PREFETCH, true>(a, b, kb, acc)
                } else {
                    row_steps::<PREFETCH, false>(a, b, kb, acc)
                };
                store_row(c, width, sums);
            }
        }
    }
}

/// `kb` steps of one row of `A` from `a` over a panel's rows from `b`,
/// added to `acc` (the two halves of the panel) in two chains by turns,
/// which are then summed, as the 1-row micro-kernel does; `NARROW`: the
/// first half only.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn row_steps<const PREFETCH: bool, const NARROW: bool>(
    a: *const f32,
    b: *const f32,
    kb: usize,
    acc: [std::arch::x86_64::__m512; 2],
) -> [std::arch::x86_64::__m512; 2] {
    use std::arch::x86_64::*;
    // SAFETY: the caller guarantees `kb` values of A and `kb` panel rows.
    unsafe {
        let mut chains = [acc, [_mm512_setzero_ps(); 2]];
        let (mut ap, mut bp) = (a, b);
        macro_rules! step {
            ($chain:expr) => {
                if PREFETCH {
                    prefetch_ahead::<NARROW>(bp);
                }
                let x = _mm512_set1_ps(*ap);
                $chain[0] = _mm512_fmadd_ps(x, _mm512_loadu_ps(bp), $chain[0]);
                if !NARROW {
                    $chain[1] = _mm512_fmadd_ps(x, _mm512_loadu_ps(bp.add(16)), $chain[1]);
                }
                bp = bp.add(PANEL);
                ap = ap.add(1);
            };
        }
        for _ in 0..kb / 2 {
            step!(chains[0]);
            step!(chains[1]);
        }
        for _ in 0..kb % 2 {
            step!(chains[0]);
        }
        [0, 1].map(|h| _mm512_add_ps(chains[0][h], chains[1][h]))
    }
}
