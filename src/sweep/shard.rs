//! A share of a sweep for one machine of many (`sweep --shard I/N`): the
//! cases split into N shares of about equal estimated time, the same split
//! on every machine, so N jobs of a Slurm array or a GNU parallel line
//! together measure every case exactly once.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::pipeline::{Point, Source};

/// Shard `index` of `count` (0-based, as Slurm numbers array tasks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

/// Most shards a sweep splits into.
pub const MAX_SHARDS: usize = 10_000;

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("shard '{s}': give I/N with 0 <= I < N <= {MAX_SHARDS} (e.g. 0/3, 1/3, 2/3)");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if count == 0 || count > MAX_SHARDS || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// The file name suffix of this shard's CSV: `NAME.shard-I-of-N.csv`.
    pub fn file_name(&self, sweep: &str) -> String {
        format!("{sweep}.shard-{}-of-{}.csv", self.index, self.count)
    }

    /// This shard's cases, in their sweep order.
    pub fn select(&self, cases: Vec<Vec<Point>>, budget: Duration, min_runs: usize) -> Vec<Vec<Point>> {
        let costs: Vec<f64> = cases.iter().map(|c| case_seconds(c, budget, min_runs)).collect();
        let owner = balance(&costs, self.count);
        cases
            .into_iter()
            .zip(owner)
            .filter(|(_, o)| *o == self.index)
            .map(|(c, _)| c)
            .collect()
    }
}

/// Weights assumed for a built-in model, whose size is not known before
/// it is built (the PTB model's 36 M is the largest).
const BUILTIN_WEIGHTS: f64 = 36e6;

/// A rate below any machine's, so long runs are not underestimated.
const ASSUMED_FLOPS: f64 = 20e9;

/// Building, verifying and preparing one weight, seconds (generation,
/// reference forward, compaction, packing and the CSR copies).
const BUILD_SECONDS_PER_WEIGHT: f64 = 30e-9;

/// About how long a case takes: each mode timed for the budget or its
/// fewest runs, whichever is longer, plus building the models.
pub fn case_seconds(case: &[Point], budget: Duration, min_runs: usize) -> f64 {
    let Some(first) = case.first() else { return 0.0 };
    let weights = match &first.source {
        Source::Named(..) if first.source.weight_bytes().is_none() => BUILTIN_WEIGHTS,
        s => s.weight_bytes().unwrap_or(0) as f64 / 4.0,
    };
    let run = 2.0 * weights * (first.batch * first.seq) as f64 / ASSUMED_FLOPS;
    let per_mode = budget.as_secs_f64().max(min_runs.max(1) as f64 * run) + run;
    case.len() as f64 * per_mode + weights * BUILD_SECONDS_PER_WEIGHT
}

/// Which of `count` shards each cost goes to: longest first to the least
/// loaded shard (ties: the earlier case, the lower shard), so the split
/// depends on the costs alone.
pub fn balance(costs: &[f64], count: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..costs.len()).collect();
    order.sort_by(|&a, &b| costs[b].total_cmp(&costs[a]).then(a.cmp(&b)));
    let mut load = vec![0.0f64; count.max(1)];
    let mut owner = vec![0; costs.len()];
    for i in order {
        let least = (0..load.len())
            .min_by(|&a, &b| load[a].total_cmp(&load[b]).then(a.cmp(&b)))
            .unwrap_or(0);
        load[least] += costs[i];
        owner[i] = least;
    }
    owner
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::SweepSpec;

    #[test]
    fn parses_and_refuses() {
        assert_eq!("1/3".parse::<Shard>(), Ok(Shard { index: 1, count: 3 }));
        assert_eq!("0/1".parse::<Shard>().unwrap().to_string(), "0/1");
        for bad in ["3/3", "1/0", "x/2", "1", "-1/2", "0/10001", "1/3/4"] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.contains(bad) && e.contains("0 <= I < N"), "{bad}: {e}");
        }
    }

    #[test]
    fn every_case_in_exactly_one_shard() {
        let spec = SweepSpec::preset("quick").unwrap();
        let all = spec.cases();
        let budget = Duration::from_millis(spec.budget_ms);
        for count in [1, 2, 3, 7, all.len() + 5] {
            let mut seen = Vec::new();
            for index in 0..count {
                let part = Shard { index, count }.select(all.clone(), budget, spec.min_runs);
                // In sweep order within a shard.
                let pos: Vec<usize> = part.iter().map(|c| all.iter().position(|a| a == c).unwrap()).collect();
                assert!(pos.windows(2).all(|w| w[0] < w[1]), "{pos:?}");
                seen.extend(pos);
            }
            seen.sort_unstable();
            assert_eq!(seen, (0..all.len()).collect::<Vec<_>>(), "{count} shards");
        }
    }

    #[test]
    fn shares_are_balanced() {
        // Longest first to the least loaded: 8 | 7 | 6, then 5, 4 and 3 even
        // the shares out at 11 each, 2 and 1 go to the first two.
        let costs = [5.0, 8.0, 1.0, 7.0, 6.0, 4.0, 2.0, 3.0];
        let owner = balance(&costs, 3);
        let mut load = [0.0; 3];
        for (c, o) in costs.iter().zip(&owner) {
            load[*o] += c;
        }
        assert_eq!(load, [13.0, 12.0, 11.0], "{owner:?}");
        assert_eq!(balance(&costs, 3), owner, "deterministic");
        assert!(balance(&[], 4).is_empty());
        // The quick preset's estimated shares differ by at most one case.
        let spec = SweepSpec::preset("quick").unwrap();
        let budget = Duration::from_millis(spec.budget_ms);
        let cases = spec.cases();
        let costs: Vec<f64> = cases.iter().map(|c| case_seconds(c, budget, spec.min_runs)).collect();
        let owner = balance(&costs, 3);
        let mut load = [0.0; 3];
        for (c, o) in costs.iter().zip(&owner) {
            load[*o] += c;
        }
        let largest = costs.iter().copied().fold(0.0, f64::max);
        let (lo, hi) = (
            load.iter().copied().fold(f64::INFINITY, f64::min),
            load.iter().copied().fold(0.0, f64::max),
        );
        assert!(hi - lo <= largest, "{load:?}");
    }

    #[test]
    fn bigger_cases_cost_more() {
        let spec = SweepSpec::preset("ptb").unwrap();
        let cases = spec.cases();
        let budget = Duration::from_millis(100);
        let cost = |b: usize| {
            let c = cases.iter().find(|c| c[0].batch == b).unwrap();
            case_seconds(c, budget, 5)
        };
        assert!(cost(64) > cost(1), "{} vs {}", cost(64), cost(1));
    }
}
