//! The plain-Rust bf16 micro-kernels: up to 2 rows by a whole panel. A
//! bf16 value widens to f32 exactly (a shift), and a product of two fits
//! an f32 exactly, so a plain multiply and add round once, as the fused
//! multiply-adds of the AVX2 and AVX-512F kernels do: they give the same
//! bits.

use super::PANEL;
use super::blocking::{PAIR, PAIR_ROW};
use super::convert::from_bf16;
use super::micro::{KernelFn, MicroKernels, Tile};

/// The portable kernels (any CPU).
pub(super) struct Plain;

impl MicroKernels for Plain {
    const MR: usize = 2;
    const NR: usize = PANEL;
    fn kernel(rows: usize, _prefetch: bool) -> KernelFn {
        match rows {
            1 => plain::<1> as KernelFn,
            2 => plain::<2>,
            _ => unreachable!("row block of {rows}"),
        }
    }
}

/// `MR` rows by one panel, lane by lane (the compiler vectorises the
/// lanes): each pair of steps widens the panel row's weights to f32 and
/// adds, per row, the odd step's product, then the even one's, onto the
/// accumulators (which start from `C` or the bias).
///
/// # Safety
/// `t.rows == MR`, and the tile must lie inside `A`, the panel and `C`.
unsafe fn plain<const MR: usize>(t: &Tile) {
    debug_assert_eq!(t.rows, MR);
    let mut acc = [[0.0f32; PANEL]; MR];
    for (r, acc_r) in acc.iter_mut().enumerate() {
        // SAFETY: the tile lies inside C (the caller's contract).
        unsafe { t.start_row::<PANEL>(r, acc_r) };
    }
    // SAFETY: the block of A is `pairs · MR · 2` values and the panel
    // `pairs` rows of 64 (the caller's contract).
    let (a, panel) = unsafe {
        (
            std::slice::from_raw_parts(t.a, t.pairs * MR * PAIR),
            std::slice::from_raw_parts(t.panel, t.pairs * PAIR_ROW),
        )
    };
    for (a_pair, row) in a.chunks_exact(MR * PAIR).zip(panel.chunks_exact(PAIR_ROW)) {
        let mut even = [0.0f32; PANEL];
        let mut odd = [0.0f32; PANEL];
        for l in 0..PANEL {
            even[l] = from_bf16(row[PAIR * l]);
            odd[l] = from_bf16(row[PAIR * l + 1]);
        }
        for (acc_r, x) in acc.iter_mut().zip(a_pair.chunks_exact(PAIR)) {
            let (x0, x1) = (from_bf16(x[0]), from_bf16(x[1]));
            for l in 0..PANEL {
                acc_r[l] += x1 * odd[l];
                acc_r[l] += x0 * even[l];
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        // SAFETY: as above.
        unsafe { t.store_row::<PANEL>(r, acc_r) };
    }
}
