//! The plain-Rust int8 micro-kernels: up to 2 rows by a whole panel.

use super::PANEL;
use super::blocking::{GROUP, GROUP_ROW_BYTES};
use super::micro::{KernelFn, MicroKernels, Tile};

/// The portable kernels.
pub(super) struct Portable;

impl MicroKernels for Portable {
    const MR: usize = 2;
    const NR: usize = PANEL;
    fn kernel(rows: usize, _prefetch: bool) -> KernelFn {
        match rows {
            1 => portable::<1> as KernelFn,
            2 => portable::<2>,
            _ => unreachable!("row block of {rows}"),
        }
    }
}

/// `MR` rows by one panel, lane by lane (the compiler vectorises the lanes).
///
/// # Safety
/// `t.rows == MR`, `A` stored as `u8`, and the tile must lie inside `A`,
/// the panel and `C`.
unsafe fn portable<const MR: usize>(t: &Tile) {
    debug_assert_eq!(t.rows, MR);
    let mut acc = [[0i32; PANEL]; MR];
    // SAFETY: the block of A is `groups · MR · 4` bytes and the panel
    // `groups` rows of 128 (the caller's contract).
    let (a, panel) = unsafe {
        (
            std::slice::from_raw_parts(t.a, t.groups * MR * GROUP),
            std::slice::from_raw_parts(t.panel, t.groups * GROUP_ROW_BYTES),
        )
    };
    for (a_group, row) in a.chunks_exact(MR * GROUP).zip(panel.chunks_exact(GROUP_ROW_BYTES)) {
        for (acc_r, x) in acc.iter_mut().zip(a_group.chunks_exact(GROUP)) {
            for (sum, w) in acc_r.iter_mut().zip(row.chunks_exact(GROUP)) {
                *sum += (0..GROUP).map(|i| i32::from(x[i]) * i32::from(w[i])).sum::<i32>();
            }
        }
    }
    // SAFETY: the tile lies inside C (the caller's contract).
    unsafe { t.finish_rows::<PANEL>(&acc) };
}
