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
}

impl Stats {
    /// Statistics of a non-empty list of run times.
    pub fn from_samples(samples: &[f64]) -> Stats {
        assert!(!samples.is_empty(), "no samples");
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Stats {
            median_ns: median,
            min_ns: sorted[0],
            max_ns: sorted[n - 1],
            mean_ns: sorted.iter().sum::<f64>() / n as f64,
            runs: n,
        }
    }
}

/// Times `run` under `budget`. `run` returns an error to abort timing.
pub fn time_runs<E>(budget: Budget, mut run: impl FnMut() -> Result<(), E>) -> Result<Stats, E> {
    for _ in 0..budget.warmup_runs.max(1) {
        run()?;
    }
    let mut samples = Vec::with_capacity(budget.max_runs.min(1 << 16));
    let started = Instant::now();
    while samples.len() < budget.max_runs.max(1) && (samples.len() < budget.min_runs || started.elapsed() < budget.time) {
        let t0 = Instant::now();
        run()?;
        samples.push(t0.elapsed().as_nanos() as f64);
    }
    Ok(Stats::from_samples(&samples))
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
