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
/// step prefetches the panel row [`PREFETCH_AHEAD`] ahead.
///
/// # Safety
/// AVX-512F must be present, and the tile must lie inside `A`, the panel and `C`.
#[target_feature(enable = "avx512f")]
unsafe fn micro_avx512<const MR: usize, const CHAINS: usize, const PREFETCH: bool>(t: &Tile) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match t.a {
            TileA::Packed(a) => {
                debug_assert_eq!(a.len(), t.kb * MR);
                steps::<MR, CHAINS, PREFETCH, false>(t, a.as_ptr(), 1)
            }
            TileA::InPlace { first, row_stride } => steps::<MR, CHAINS, PREFETCH, true>(t, first, row_stride),
        }
    }
}

/// The body of [`micro_avx512`] for `A` packed (`[kb][MR]` from `a`) or,
/// with `IN_PLACE`, read in place (row `r`'s steps from `a + r · row_stride`).
///
/// # Safety
/// As [`micro_avx512`].
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn steps<const MR: usize, const CHAINS: usize, const PREFETCH: bool, const IN_PLACE: bool>(
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
        let mut acc = [[[_mm512_setzero_ps(); 2]; MR]; CHAINS];
        let mut buf = [0.0f32; PANEL];
        for (r, acc_r) in acc[0].iter_mut().enumerate() {
            if let Some(src) = t.initial_row(r, &mut buf) {
                *acc_r = [_mm512_loadu_ps(src), _mm512_loadu_ps(src.add(16))];
            }
        }
        let mut ap = a;
        let mut bp = t.panel.rows().as_ptr();
        // One `k` step into accumulator set `$chain` (a macro, not a closure:
        // a closure would not inherit this function's target features).
        macro_rules! step {
            ($chain:expr) => {
                // The panel is one contiguous stream: where it comes
                // from memory, fetch its row PREFETCH_AHEAD ahead so the
                // memory-bound small-batch case overlaps loads with FMAs.
                if PREFETCH {
                    _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(PREFETCH_AHEAD) as *const i8);
                    _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(PREFETCH_AHEAD + 16) as *const i8);
                }
                let b0 = _mm512_loadu_ps(bp);
                let b1 = _mm512_loadu_ps(bp.add(16));
                for (r, acc_r) in $chain.iter_mut().enumerate() {
                    let x = _mm512_set1_ps(if IN_PLACE { *ap.add(r * row_stride) } else { *ap.add(r) });
                    acc_r[0] = _mm512_fmadd_ps(x, b0, acc_r[0]);
                    acc_r[1] = _mm512_fmadd_ps(x, b1, acc_r[1]);
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
            if t.c_is_contiguous() {
                let c = t.c_row(r);
                _mm512_storeu_ps(c, acc_r[0]);
                _mm512_storeu_ps(c.add(16), acc_r[1]);
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
/// in one call (no tile per panel), with `C`'s partial last panel masked
/// rather than copied, and only the first 16 columns of each row read in
/// a panel no wider than that (its zero half never leaves L2).
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
        // Lanes of C in each half of the panel.
        let mask = |half: usize| ((1u32 << width.saturating_sub(half * 16).min(16)) - 1) as __mmask16;
        let masks = [mask(0), mask(1)];
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
                let initial = match if k0 > 0 { Start::C } else { out.start } {
                    Start::Zero => None,
                    Start::C => Some(c.cast_const()),
                    Start::Row(row) => Some(row.get().add(j0).cast_const()),
                };
                let mut acc = [_mm512_setzero_ps(); 2];
                if let Some(src) = initial {
                    acc = [0, 1].map(|h| _mm512_maskz_loadu_ps(masks[h], src.add(16 * h)));
                }
                let sums = if width <= PANEL / 2 {
                    row_steps::<PREFETCH, true>(a, b, kb, acc)
                } else {
                    row_steps::<PREFETCH, false>(a, b, kb, acc)
                };
                for h in 0..2 {
                    _mm512_mask_storeu_ps(c.add(16 * h), masks[h], sums[h]);
                }
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
                    _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(PREFETCH_AHEAD) as *const i8);
                    if !NARROW {
                        _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(PREFETCH_AHEAD + 16) as *const i8);
                    }
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
