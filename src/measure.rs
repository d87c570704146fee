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
    /// 90th percentile, where there are [`P90_MIN_RUNS`] runs or more.
    pub p90_ns: Option<f64>,
    /// 99th percentile, where there are [`P99_MIN_RUNS`] runs or more.
    pub p99_ns: Option<f64>,
    /// Standard deviation of the run times.
    pub stddev_ns: f64,
}

/// Fewest runs for a 90th percentile: with ten, it falls between the two
/// slowest runs; with fewer it would be the slowest run itself.
pub const P90_MIN_RUNS: usize = 10;
/// Fewest runs for a 99th percentile (likewise).
pub const P99_MIN_RUNS: usize = 100;

/// The `q` quantile of sorted values, linearly interpolated between the
/// two nearest ranks.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let at = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo as f64)
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
        let mean_ns = sorted.iter().sum::<f64>() / n as f64;
        let variance = sorted.iter().map(|v| (v - mean_ns).powi(2)).sum::<f64>() / (n.max(2) - 1) as f64;
        Stats {
            median_ns: median_of_sorted(&sorted),
            min_ns: sorted[0],
            max_ns: sorted[n - 1],
            mean_ns,
            runs: n,
            ci_low_ns,
            ci_high_ns,
            p90_ns: (n >= P90_MIN_RUNS).then(|| quantile(&sorted, 0.90)),
            p99_ns: (n >= P99_MIN_RUNS).then(|| quantile(&sorted, 0.99)),
            stddev_ns: if n > 1 { variance.sqrt() } else { 0.0 },
        }
    }

    /// Standard deviation over the mean.
    pub fn cv(&self) -> f64 {
        if self.mean_ns > 0.0 { self.stddev_ns / self.mean_ns } else { 0.0 }
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

/// Rounds the timed runs of a point's modes (and its peer) are split into:
/// enough for a bootstrap over rounds to give a speedup's interval.
pub const ROUNDS: usize = 8;

/// One thing timed in rounds: runs a round under the budget it is given
/// and returns its run times in ns (no warm-up: that happens before).
pub type Timed<'a> = Box<dyn FnMut(Budget) -> Result<Vec<f64>, String> + Send + 'a>;

/// The run times of one participant of [`time_rounds`], round by round.
#[derive(Debug, Clone, PartialEq)]
pub struct Rounds(pub Vec<Vec<f64>>);

impl Rounds {
    /// Every run time, in round order.
    pub fn all(&self) -> Vec<f64> {
        self.0.iter().flatten().copied().collect()
    }
    /// Statistics of all runs.
    pub fn stats(&self) -> Stats {
        Stats::from_samples(&self.all())
    }
    /// The median of each round.
    pub fn medians(&self) -> Vec<f64> {
        self.0
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.sort_by(f64::total_cmp);
                median_of_sorted(&r)
            })
            .collect()
    }
}

/// Times `parts` in [`ROUNDS`] rounds taken in turn (fewer when the
/// budget allows fewer runs), the order reversed every other round (A B C,
/// C B A, A B C, ...): on a host whose speed drifts by tens of percent
/// within minutes, parts timed one after the other would compare the
/// host's phases as much as the code; in turns, every part samples the
/// same phases (and the reversal cancels a steady drift). Each round gives
/// each part its share of the budget's time, at least one run. A part that
/// fails stops taking its turns but not the others; its result is the
/// error.
pub fn time_rounds(budget: Budget, parts: &mut [Timed]) -> Vec<Result<Rounds, String>> {
    let rounds = ROUNDS.min(budget.max_runs).max(1);
    let round = Budget {
        warmup_runs: 0,
        time: budget.time / rounds as u32,
        min_runs: budget.min_runs.div_ceil(rounds).max(1),
        max_runs: budget.max_runs.div_ceil(rounds).max(1),
    };
    let mut results: Vec<Result<Rounds, String>> = parts.iter().map(|_| Ok(Rounds(Vec::new()))).collect();
    for r in 0..rounds {
        let order: Vec<usize> = if r % 2 == 0 {
            (0..parts.len()).collect()
        } else {
            (0..parts.len()).rev().collect()
        };
        for i in order {
            if let Ok(rounds) = &mut results[i] {
                match (parts[i])(round) {
                    Ok(samples) if !samples.is_empty() => rounds.0.push(samples),
                    Ok(_) => results[i] = Err("no run times in a round".to_string()),
                    Err(e) => results[i] = Err(e),
                }
            }
        }
    }
    results
}

/// Runs `run` untimed `budget.warmup_runs` times (at least once), then
/// returns a [`Timed`] part that times it.
pub fn timed_part<'a, E: std::fmt::Display>(
    budget: Budget,
    mut run: impl FnMut() -> Result<(), E> + Send + 'a,
) -> Result<Timed<'a>, String> {
    for _ in 0..budget.warmup_runs.max(1) {
        run().map_err(|e| e.to_string())?;
    }
    Ok(Box::new(move |round: Budget| {
        let mut samples = Vec::new();
        sample_runs(round, &mut || run().map_err(|e| e.to_string()), &mut samples)?;
        Ok(samples)
    }))
}

/// A speedup and its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Speedup {
    /// Median of the reference's runs over the median of the other's.
    pub estimate: f64,
    /// 95% interval, from a bootstrap over paired rounds (`None` with
    /// fewer than two rounds).
    pub interval: Option<(f64, f64)>,
}

/// The speedup of `other` over `reference` (timed in the same rounds):
/// the ratio of their medians, and its 95% interval from
/// [`BOOTSTRAP_RESAMPLES`] resamples of the round indices (the same rounds
/// for both, so each resample compares samples from the same phases of
/// the host). Deterministic: the resampling stream has a fixed seed.
pub fn paired_speedup(reference: &Rounds, other: &Rounds) -> Speedup {
    let ratio = |a: &mut Vec<f64>, b: &mut Vec<f64>| {
        a.sort_by(f64::total_cmp);
        b.sort_by(f64::total_cmp);
        median_of_sorted(a) / median_of_sorted(b)
    };
    let estimate = ratio(&mut reference.all(), &mut other.all());
    let n = reference.0.len().min(other.0.len());
    if n < 2 {
        return Speedup { estimate, interval: None };
    }
    let mut rng = crate::model::synthetic::SplitMix64::new(0x5EED);
    let mut ratios: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for _ in 0..n {
                let r = rng.below(n as u64) as usize;
                a.extend_from_slice(&reference.0[r]);
                b.extend_from_slice(&other.0[r]);
            }
            ratio(&mut a, &mut b)
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    let at = |q: f64| ratios[((q * (BOOTSTRAP_RESAMPLES - 1) as f64).round() as usize).min(BOOTSTRAP_RESAMPLES - 1)];
    Speedup {
        estimate,
        interval: Some((at(0.025), at(0.975))),
    }
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
    fn rounds_alternate_their_order_and_survive_a_failing_part() {
        let log = std::sync::Mutex::new(String::new());
        let b = Budget {
            warmup_runs: 2,
            time: Duration::ZERO,
            min_runs: 16,
            max_runs: 100,
        };
        let part = |c: char| -> Timed {
            let log = &log;
            Box::new(move |round: Budget| {
                log.lock().unwrap().push(c);
                Ok(vec![7.0; round.min_runs])
            })
        };
        let warmups = std::sync::atomic::AtomicUsize::new(0);
        let count = || warmups.load(std::sync::atomic::Ordering::Relaxed);
        let ours = timed_part::<String>(b, || {
            warmups.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
        assert_eq!(count(), 2);
        let mut parts = vec![part('A'), part('B'), ours];
        let results = time_rounds(b, &mut parts);
        // A, B, then ours; reversed every other round.
        assert_eq!(*log.lock().unwrap(), "AB".to_string() + &"BAAB".repeat(3) + "BA");
        assert_eq!(count(), 2 + 16, "16 runs in 8 rounds of 2 after the warm-ups");
        for r in &results {
            let rounds = r.as_ref().unwrap();
            assert_eq!((rounds.0.len(), rounds.all().len()), (ROUNDS, 16));
        }

        let calls = std::sync::atomic::AtomicUsize::new(0);
        let failing: Timed = Box::new(|_| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Err("peer died".to_string())
        });
        let mut parts = vec![failing, part('C')];
        let results = time_rounds(b, &mut parts);
        assert_eq!(
            calls.load(std::sync::atomic::Ordering::Relaxed),
            1,
            "a failed part takes no more turns"
        );
        assert_eq!(results[0].as_ref().unwrap_err(), "peer died");
        assert_eq!(results[1].as_ref().unwrap().0.len(), ROUNDS);
    }

    #[test]
    fn percentiles_need_enough_runs_and_cv_is_std_over_mean() {
        let s = Stats::from_samples(&(1..=9).map(f64::from).collect::<Vec<_>>());
        assert_eq!((s.p90_ns, s.p99_ns), (None, None));
        let s = Stats::from_samples(&(1..=100).map(f64::from).collect::<Vec<_>>());
        assert!(
            (s.p90_ns.unwrap() - 90.1).abs() < 1e-9 && (s.p99_ns.unwrap() - 99.01).abs() < 1e-9,
            "{s:?}"
        );
        let s = Stats::from_samples(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert!((s.stddev_ns - 2.138).abs() < 1e-3 && (s.cv() - 2.138 / 5.0).abs() < 1e-3, "{s:?}");
        assert_eq!(Stats::from_samples(&[3.0]).stddev_ns, 0.0);
    }

    /// A paired speedup follows the rounds: a host that slows both sides
    /// in some rounds leaves the ratio and a tight interval, while
    /// unpaired noise widens it.
    #[test]
    fn paired_speedup_and_its_interval() {
        // Dense 10, iss 2, both 3x slower in odd rounds (the host's phases).
        let phase = |r: usize| if r % 2 == 1 { 3.0 } else { 1.0 };
        let dense = Rounds((0..8).map(|r| vec![10.0 * phase(r); 5]).collect());
        let iss = Rounds((0..8).map(|r| vec![2.0 * phase(r); 5]).collect());
        let s = paired_speedup(&dense, &iss);
        assert!((s.estimate - 5.0).abs() < 1e-9, "{s:?}");
        let (lo, hi) = s.interval.unwrap();
        assert!(lo <= 5.0 && hi >= 5.0 && hi - lo < 1.0, "{s:?}");
        // Noise in one side only: the interval widens but holds the estimate.
        let noisy = Rounds((0..8).map(|r| vec![2.0 * (1.0 + 0.2 * (r % 3) as f64); 5]).collect());
        let s = paired_speedup(&dense, &noisy);
        let (lo, hi) = s.interval.unwrap();
        assert!(lo < s.estimate && s.estimate < hi, "{s:?}");
        assert_eq!(paired_speedup(&Rounds(vec![vec![4.0]]), &Rounds(vec![vec![2.0]])).interval, None);
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
