//! Handing out ranges of a product's panels to the workers of a team: each
//! starts with its own share (the same panels every time, so its share of
//! the weights stays in its core's cache where it fits), then helps with
//! what the others have not started.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::kernels::PanelOrder;

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
pub(super) fn claimer(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::PanelOrder;

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
