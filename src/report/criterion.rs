//! Criterion's results as issbench rows: after `cargo bench --bench lstm`,
//! each benchmark's `new/benchmark.json` (its id) and `new/estimates.json`
//! and `new/sample.json` (its timings) become a [`Row`] of the common
//! schema. Directory names are never parsed (criterion mangles them); the
//! id inside `benchmark.json` is matched instead.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ReportError, Row};
use crate::measure::Stats;
use crate::mode::Mode;

#[derive(Deserialize)]
struct BenchmarkJson {
    full_id: String,
}

#[derive(Deserialize)]
struct Interval {
    lower_bound: f64,
    upper_bound: f64,
}

#[derive(Deserialize)]
struct Estimate {
    point_estimate: f64,
    confidence_interval: Interval,
}

#[derive(Deserialize)]
struct EstimatesJson {
    median: Estimate,
    mean: Estimate,
    std_dev: Estimate,
}

#[derive(Deserialize)]
struct SampleJson {
    iters: Vec<f64>,
    times: Vec<f64>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|error| ReportError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    serde_json::from_str(&text).map_err(|e| ReportError::Chart {
        path: path.to_path_buf(),
        message: format!("not criterion's format: {e}"),
    })
}

/// Every `new/` folder under `criterion_dir` that holds a `benchmark.json`.
fn new_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "new") && path.join("benchmark.json").is_file() {
                out.push(path);
            } else {
                new_dirs(&path, out);
            }
        }
    }
}

/// The timing statistics of every benchmark under `criterion_dir`
/// (normally `target/criterion`), by full id (`lstm/ptb/iss/b10`).
pub fn read_estimates(criterion_dir: &Path) -> Result<HashMap<String, Stats>, ReportError> {
    let mut dirs = Vec::new();
    new_dirs(criterion_dir, &mut dirs);
    let mut out = HashMap::new();
    for dir in dirs {
        let id: BenchmarkJson = read_json(&dir.join("benchmark.json"))?;
        let est: EstimatesJson = read_json(&dir.join("estimates.json"))?;
        let sample: SampleJson = read_json(&dir.join("sample.json"))?;
        let per_iter: Vec<f64> = sample.iters.iter().zip(&sample.times).map(|(i, t)| t / i).collect();
        let (min, max) = per_iter.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        out.insert(
            id.full_id,
            Stats {
                median_ns: est.median.point_estimate,
                min_ns: min,
                max_ns: max,
                mean_ns: est.mean.point_estimate,
                runs: per_iter.len(),
                ci_low_ns: est.median.confidence_interval.lower_bound,
                ci_high_ns: est.median.confidence_interval.upper_bound,
                p90_ns: None,
                p99_ns: None,
                stddev_ns: est.std_dev.point_estimate,
            },
        );
    }
    Ok(out)
}

/// Completes the row templates of benchmarks `(full id, row)` with their
/// criterion estimates; benchmarks criterion did not run (filtered out) are
/// left out. Dense rows give the speedups of the other modes.
pub fn rows_from_criterion(criterion_dir: &Path, templates: &[(String, Row)]) -> Result<Vec<Row>, ReportError> {
    let estimates = read_estimates(criterion_dir)?;
    let mut rows: Vec<Row> = templates
        .iter()
        .filter_map(|(id, t)| estimates.get(id).map(|s| t.completed(s, 0, None)))
        .collect();
    let dense: HashMap<String, f64> = rows
        .iter()
        .filter(|r| r.mode == Mode::Dense)
        .map(|r| (r.dense_key(), r.median_ns))
        .collect();
    for r in &mut rows {
        // Criterion times each benchmark on its own, so the speedup is the
        // ratio of medians, with no interval.
        if r.mode != Mode::Dense {
            r.speedup_vs_dense = dense.get(&r.dense_key()).map(|d| d / r.median_ns);
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, id: &str, median: f64) {
        // A directory name unlike the id, as criterion's mangling makes it.
        let new = dir.join(id.replace('/', "_")).join("new");
        std::fs::create_dir_all(&new).unwrap();
        std::fs::write(new.join("benchmark.json"), format!(r#"{{"group_id":"lstm","function_id":"x","value_str":null,"throughput":null,"full_id":"{id}","directory_name":"mangled","title":"{id}"}}"#)).unwrap();
        let est = |v: f64| {
            format!(
                r#"{{"confidence_interval":{{"confidence_level":0.95,"lower_bound":{},"upper_bound":{}}},"point_estimate":{v},"standard_error":1.0}}"#,
                v - 1.0,
                v + 1.0
            )
        };
        std::fs::write(
            new.join("estimates.json"),
            format!(
                r#"{{"mean":{},"median":{},"median_abs_dev":{},"slope":null,"std_dev":{}}}"#,
                est(median),
                est(median),
                est(1.0),
                est(1.0)
            ),
        )
        .unwrap();
        std::fs::write(
            new.join("sample.json"),
            format!(
                r#"{{"sampling_mode":"Flat","iters":[1.0,2.0],"times":[{},{}]}}"#,
                median - 5.0,
                2.0 * (median + 5.0)
            ),
        )
        .unwrap();
    }

    #[test]
    fn estimates_become_rows_with_speedups() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "lstm/ptb/dense/b10", 1000.0);
        write(dir.path(), "lstm/ptb/iss/b10", 100.0);
        let stats = read_estimates(dir.path()).unwrap();
        let s = stats["lstm/ptb/iss/b10"];
        assert_eq!(
            (s.median_ns, s.min_ns, s.max_ns, s.runs, s.ci_low_ns),
            (100.0, 95.0, 105.0, 2, 99.0)
        );
        let template = |mode: Mode| Row {
            mode,
            macs_per_step: 10,
            batch: 10,
            seq: 30,
            ..crate::report::tests::row()
        };
        let rows = rows_from_criterion(
            dir.path(),
            &[
                ("lstm/ptb/dense/b10".into(), template(Mode::Dense)),
                ("lstm/ptb/iss/b10".into(), template(Mode::Iss)),
                ("lstm/ptb/csr/b10".into(), template(Mode::Csr)),
            ],
        )
        .unwrap();
        assert_eq!(rows.len(), 2, "the csr bench did not run");
        assert_eq!(rows[1].speedup_vs_dense, Some(10.0));
        assert_eq!(rows[1].gflops, 2.0 * 10.0 * 10.0 * 30.0 / 100.0);
    }
}
