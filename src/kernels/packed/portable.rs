//! The plain-Rust micro-kernels: `MR` rows by a whole panel, with fused
//! multiply-adds on NEON ([`Fused`]) or without ([`Plain`], any other CPU).

use super::PANEL;
use super::micro::{KernelFn, MicroKernels};
use super::tile::Tile;
use crate::kernels::simd::madd;

/// The portable kernels with fused multiply-add (aarch64 NEON).
pub(super) struct Fused;
/// The portable kernels without fused multiply-add.
pub(super) struct Plain;

impl MicroKernels for Fused {
    const MR: usize = 3;
    const NR: usize = PANEL;
    fn kernel(rows: usize, _prefetch_b: bool) -> KernelFn {
        match rows {
            1 => micro_lanes::<1, true>,
            2 => micro_lanes::<2, true>,
            3 => micro_lanes::<3, true>,
            _ => unreachable!("row block of {rows}"),
        }
    }
}

impl MicroKernels for Plain {
    const MR: usize = 2;
    const NR: usize = PANEL;
    fn kernel(rows: usize, _prefetch_b: bool) -> KernelFn {
        match rows {
            1 => micro_lanes::<1, false>,
            2 => micro_lanes::<2, false>,
            _ => unreachable!("row block of {rows}"),
        }
    }
}

/// `MR` rows by one panel, lane by lane (the compiler vectorises the lanes).
///
/// # Safety
/// The tile must lie inside `A`, the panel and `C`.
unsafe fn micro_lanes<const MR: usize, const FUSED: bool>(t: &Tile) {
    let mut acc = [[0.0f32; PANEL]; MR];
    let mut buf = [0.0f32; PANEL];
    for (r, acc_r) in acc.iter_mut().enumerate() {
        if let Some(src) = t.initial_row(r, &mut buf) {
            // SAFETY: `initial_row` points at PANEL readable floats.
            acc_r.copy_from_slice(unsafe { std::slice::from_raw_parts(src, PANEL) });
        }
    }
    for (arow, brow) in t.a.packed().chunks_exact(MR).zip(t.panel.rows().chunks_exact(PANEL)) {
        for r in 0..MR {
            let x = arow[r];
            for l in 0..PANEL {
                acc[r][l] = madd::<FUSED>(x, brow[l], acc[r][l]);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        t.store_c_row(r, acc_r);
    }
}
