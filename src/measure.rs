//! Timing: warm-up, then repeated runs until a time budget or run count,
//! summarised by robust statistics.

use std::time::{Duration, Instant};

use serde::Serialize;

/// How long and how often to time one configuration.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Untimed runs before measuring (at least one: first-touch page faults,
    /// cold caches and rayon worker start-up are not what we measure).
    pub warmup_runs: usize,
    /// Stop timing once this much time has been spent in timed runs ...
    pub time: Duration,
    /// ... but only after at least this many runs ...
    pub min_runs: usize,
    /// ... and never after more than this many.
    pub max_runs: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            warmup_runs: 2,
            time: Duration::from_secs(2),
            min_runs: 5,
            max_runs: 200,
        }
    }
}

/// Summary of the timed runs, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stats {
    /// Median run time.
    pub median_ns: f64,
    /// Fastest run.
    pub min_ns: f64,
    /// Slowest run.
    pub max_ns: f64,
    /// Mean run time.
    pub mean_ns: f64,
    /// Number of timed runs.
    pub runs: usize,
    /// 95% bootstrap confidence interval of the median: low end.
    pub ci_low_ns: f64,
    /// The same, high end.
    pub ci_high_ns: f64,
}

fn median_of_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Resamples drawn for the bootstrap interval.
const BOOTSTRAP_RESAMPLES: usize = 1000;

/// The 2.5% and 97.5% quantiles of the medians of `BOOTSTRAP_RESAMPLES`
/// resamples (with replacement) of `sorted`. Deterministic: the resampling
/// stream has a fixed seed, so the same samples give the same interval.
fn bootstrap_median_ci(sorted: &[f64]) -> (f64, f64) {
    let n = sorted.len();
    if n < 2 {
        return (sorted[0], sorted[0]);
    }
    let mut rng = crate::model::synthetic::SplitMix64::new(0xB007);
    let mut resample = vec![0.0; n];
    let mut medians: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| {
            for v in resample.iter_mut() {
                *v = sorted[rng.below(n as u64) as usize];
            }
            resample.sort_by(f64::total_cmp);
            median_of_sorted(&resample)
        })
        .collect();
    medians.sort_by(f64::total_cmp);
    let at = |q: f64| medians[((q * (BOOTSTRAP_RESAMPLES - 1) as f64).round() as usize).min(BOOTSTRAP_RESAMPLES - 1)];
    (at(0.025), at(0.975))
}

impl Stats {
    /// Statistics of a non-empty list of run times.
    pub fn from_samples(samples: &[f64]) -> Stats {
        assert!(!samples.is_empty(), "no samples");
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let (ci_low_ns, ci_high_ns) = bootstrap_median_ci(&sorted);
        Stats {
            median_ns: median_of_sorted(&sorted),
            min_ns: sorted[0],
            max_ns: sorted[n - 1],
            mean_ns: sorted.iter().sum::<f64>() / n as f64,
            runs: n,
            ci_low_ns,
            ci_high_ns,
        }
    }
}

/// Times `run` under `budget`. `run` returns an error to abort timing.
pub fn time_runs<E>(budget: Budget, mut run: impl FnMut() -> Result<(), E>) -> Result<Stats, E> {
    for _ in 0..budget.warmup_runs.max(1) {
        run()?;
    }
    let mut samples = Vec::with_capacity(budget.max_runs.min(1 << 16));
    sample_runs(budget, &mut run, &mut samples)?;
    Ok(Stats::from_samples(&samples))
}

/// Appends the times (ns) of timed runs of `run` to `samples`, without
/// warm-up: until `budget.time` has passed, but at least `min_runs` and at
/// most `max_runs` runs (at least one).
fn sample_runs<E>(budget: Budget, run: &mut impl FnMut() -> Result<(), E>, samples: &mut Vec<f64>) -> Result<(), E> {
    let (started, first) = (Instant::now(), samples.len());
    while samples.len() - first < budget.max_runs.max(1) && (samples.len() - first < budget.min_runs || started.elapsed() < budget.time) {
        let t0 = Instant::now();
        run()?;
        samples.push(t0.elapsed().as_nanos() as f64);
    }
    Ok(())
}

/// Rounds the timed runs are split into when issbench and a peer are
/// measured side by side (see [`time_interleaved`]).
pub const INTERLEAVED_ROUNDS: usize = 4;

/// Times `ours` and a peer alternately: the budget's timed runs are split
/// into [`INTERLEAVED_ROUNDS`] rounds each, in the order ours, peer, peer,
/// ours, ours, peer, ... . On a shared host whose speed drifts by tens of
/// percent within minutes, two measurements taken one after the other
/// compare the host's phases as much as the code; interleaved, both sides
/// sample the same phases (and the ABBA order cancels a steady drift).
///
/// `peer(round_budget)` runs one round (its warm-up is its own, before the
/// first round) and returns its run times in ns. A peer error ends the
/// peer's part but not ours: our statistics always cover the full budget.
/// An error from `ours` aborts.
pub fn time_interleaved<E>(
    budget: Budget,
    mut ours: impl FnMut() -> Result<(), E>,
    mut peer: impl FnMut(Budget) -> Result<Vec<f64>, String>,
) -> Result<(Stats, Result<Stats, String>), E> {
    for _ in 0..budget.warmup_runs.max(1) {
        ours()?;
    }
    let rounds = INTERLEAVED_ROUNDS;
    let round = Budget {
        warmup_runs: 0,
        time: budget.time / rounds as u32,
        min_runs: budget.min_runs.div_ceil(rounds),
        max_runs: budget.max_runs.div_ceil(rounds).max(1),
    };
    let (mut mine, mut theirs) = (Vec::new(), Ok(Vec::new()));
    for r in 0..rounds {
        let peer_first = r % 2 == 1;
        for peer_turn in [peer_first, !peer_first] {
            if !peer_turn {
                sample_runs(round, &mut ours, &mut mine)?;
            } else if let Ok(samples) = &mut theirs {
                match peer(round) {
                    Ok(more) if !more.is_empty() => samples.extend(more),
                    Ok(_) => theirs = Err("the peer returned no run times".to_string()),
                    Err(e) => theirs = Err(e),
                }
            }
        }
    }
    Ok((Stats::from_samples(&mine), theirs.map(|s| Stats::from_samples(&s))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_known_samples() {
        let s = Stats::from_samples(&[5.0, 1.0, 3.0, 100.0]);
        assert_eq!((s.median_ns, s.min_ns, s.max_ns, s.mean_ns, s.runs), (4.0, 1.0, 100.0, 27.25, 4));
        assert_eq!(Stats::from_samples(&[2.0, 9.0, 4.0]).median_ns, 4.0);
    }

    #[test]
    fn bootstrap_interval_brackets_the_median() {
        let samples: Vec<f64> = (0..101).map(|i| 100.0 + (i * 37 % 101) as f64).collect();
        let s = Stats::from_samples(&samples);
        assert_eq!(s.median_ns, 150.0);
        assert!(s.ci_low_ns < 150.0 && s.ci_high_ns > 150.0, "{s:?}");
        // The median of 101 uniform values has a standard error of about 7.
        assert!(s.ci_low_ns > 130.0 && s.ci_high_ns < 170.0, "{s:?}");
        let one = Stats::from_samples(&[5.0]);
        assert_eq!((one.ci_low_ns, one.ci_high_ns), (5.0, 5.0));
        let same = Stats::from_samples(&[3.0; 9]);
        assert_eq!((same.ci_low_ns, same.ci_high_ns), (3.0, 3.0));
    }

    #[test]
    fn interleaved_rounds_alternate_abba_and_survive_a_failing_peer() {
        let log = std::cell::RefCell::new(String::new());
        let b = Budget {
            warmup_runs: 2,
            time: Duration::ZERO,
            min_runs: 8,
            max_runs: 100,
        };
        let (ours, theirs) = time_interleaved::<()>(
            b,
            || {
                log.borrow_mut().push('o');
                Ok(())
            },
            |round| {
                log.borrow_mut().push('P');
                Ok(vec![7.0; round.min_runs])
            },
        )
        .unwrap();
        // Two warm-up runs, then 4 rounds of 2 runs each side, ABBA.
        assert_eq!(*log.borrow(), concat!("oo", "ooP", "Poo", "ooP", "Poo"));
        assert_eq!(ours.runs, 8);
        assert_eq!(theirs.unwrap().runs, 8);

        log.borrow_mut().clear();
        let mut calls = 0;
        let (ours, theirs) = time_interleaved::<()>(
            b,
            || Ok(()),
            |_| {
                calls += 1;
                Err("peer died".to_string())
            },
        )
        .unwrap();
        assert_eq!((ours.runs, calls), (8, 1));
        assert_eq!(theirs.unwrap_err(), "peer died");
        let failing = time_interleaved::<&str>(b, || Err("ours failed"), |_| Ok(vec![1.0]));
        assert_eq!(failing.unwrap_err(), "ours failed");
    }

    #[test]
    fn budget_bounds_the_run_count() {
        let mut calls = 0;
        let b = Budget {
            warmup_runs: 3,
            time: Duration::from_secs(3600),
            min_runs: 1,
            max_runs: 7,
        };
        let s = time_runs::<()>(b, || {
            calls += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!((s.runs, calls), (7, 10));
        let b = Budget {
            warmup_runs: 1,
            time: Duration::ZERO,
            min_runs: 4,
            max_runs: 100,
        };
        assert_eq!(time_runs::<()>(b, || Ok(())).unwrap().runs, 4);
    }
}
