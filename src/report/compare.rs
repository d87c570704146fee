//! Hardware targets side by side: for the points that two or more targets
//! (host / CPU / threads / backend) share, a Markdown table of times and
//! speedups and two charts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::charts::{Axis, BarChart, Chart, provenance, save, tick_label};
use super::{ReportError, Row, write_atomically};

/// Most points drawn in a comparison chart (the table has them all).
const MAX_CHART_POINTS: usize = 24;

/// The result of [`compare`].
#[derive(Debug, Clone)]
pub struct Comparison {
    /// Target keys, in the order of the table's columns (T1, T2, ...).
    pub targets: Vec<String>,
    /// Points measured on at least two targets.
    pub shared_points: usize,
    /// The table (also written to `compare.md`).
    pub markdown: String,
    /// Files written.
    pub files: Vec<PathBuf>,
}

/// Sets the targets in `rows` side by side for the points they share and
/// writes `compare.md` and the charts `compare_time` and `compare_speedup`
/// into `out_dir`. Fails with [`ReportError::Empty`] when fewer than two
/// targets or no shared point are found.
pub fn compare(rows: &[Row], out_dir: &Path) -> Result<Comparison, ReportError> {
    // Newest ok row per (point, target).
    let mut latest: BTreeMap<(String, String), &Row> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.ok()) {
        let key = (r.point_key(), r.target_key());
        if latest.get(&key).is_none_or(|old| old.timestamp <= r.timestamp) {
            latest.insert(key, r);
        }
    }
    let targets: Vec<String> = latest.keys().map(|(_, t)| t.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    if targets.len() < 2 {
        return Err(ReportError::Empty(format!(
            "compare needs at least two targets (host / CPU / threads / backend); found {}: {}",
            targets.len(),
            targets.join("; ")
        )));
    }
    // point key -> one row per target (None where not measured).
    let mut points: BTreeMap<(String, String, usize, String), Vec<Option<&Row>>> = BTreeMap::new();
    for ((point, target), r) in &latest {
        let t = targets.iter().position(|x| x == target).expect("listed");
        let entry = points
            .entry((r.model.clone(), r.mode.clone(), r.batch, point.clone()))
            .or_insert_with(|| vec![None; targets.len()]);
        entry[t] = Some(r);
    }
    points.retain(|_, v| v.iter().filter(|r| r.is_some()).count() >= 2);
    if points.is_empty() {
        return Err(ReportError::Empty(format!("the {} targets share no point", targets.len())));
    }
    let markdown = table(&targets, &points);
    std::fs::create_dir_all(out_dir).map_err(|source| ReportError::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let md_path = out_dir.join("compare.md");
    write_atomically(&md_path, markdown.as_bytes())?;
    let mut files = vec![md_path];
    let all: Vec<&Row> = latest.values().copied().collect();
    let names: Vec<String> = (1..=targets.len()).map(|i| format!("T{i}")).collect();
    let legend: Vec<String> = names.iter().zip(&targets).map(|(n, t)| format!("{n}: {t}")).collect();
    let shown = |values: Vec<(String, Vec<Option<f64>>)>, what: &str, y: Axis, label: fn(f64) -> String| {
        let total = values.len();
        let values: Vec<_> = values.into_iter().take(MAX_CHART_POINTS).collect();
        let more = if total > MAX_CHART_POINTS {
            format!(" (first {MAX_CHART_POINTS} of {total} points)")
        } else {
            String::new()
        };
        Chart::Bars(BarChart {
            title: format!("{what} per target{more} — {}", provenance(&all)),
            y,
            groups: values.iter().map(|(g, _)| g.clone()).collect(),
            bars: legend.clone(),
            values: values.into_iter().map(|(_, v)| v).collect(),
            value_label: label,
        })
    };
    let times: Vec<(String, Vec<Option<f64>>)> = points
        .iter()
        .map(|((_, mode, b, _), rs)| (short(rs, mode, *b), rs.iter().map(|r| r.map(Row::median_ms)).collect()))
        .collect();
    files.extend(save(
        &shown(times, "Median time", Axis::log("median time (ms, log)"), |v| {
            tick_label((v * 10.0).round() / 10.0)
        }),
        out_dir,
        "compare_time",
    )?);
    let speedups: Vec<(String, Vec<Option<f64>>)> = points
        .iter()
        .filter(|((_, mode, _, _), _)| mode != "dense")
        .map(|((_, mode, b, _), rs)| {
            (
                short(rs, mode, *b),
                rs.iter().map(|r| r.and_then(|r| r.speedup_vs_dense)).collect::<Vec<_>>(),
            )
        })
        .filter(|(_, v)| v.iter().any(Option::is_some))
        .collect();
    if !speedups.is_empty() {
        files.extend(save(
            &shown(speedups, "Speedup over dense", Axis::linear("speedup over dense (x)"), |v| {
                format!("{v:.1}x")
            }),
            out_dir,
            "compare_speedup",
        )?);
    }
    Ok(Comparison {
        targets,
        shared_points: points.len(),
        markdown,
        files,
    })
}

/// A short group label: `h1024 k0.25 iss b10`.
fn short(rows: &[Option<&Row>], mode: &str, batch: usize) -> String {
    let r = rows.iter().flatten().next().expect("shared points have rows");
    let k = if mode == "dense" {
        String::new()
    } else {
        format!(" k{:.2}", r.kept_fraction)
    };
    format!("h{}{k} {mode} b{batch}{}", r.hidden_full, if r.head { "+head" } else { "" })
}

fn table(targets: &[String], points: &BTreeMap<(String, String, usize, String), Vec<Option<&Row>>>) -> String {
    let mut md = String::from("# Targets compared\n\n");
    for (i, t) in targets.iter().enumerate() {
        md.push_str(&format!("- T{}: {t}\n", i + 1));
    }
    md.push_str("\nMedian time per forward pass (ms) and, for iss and csr, speedup over dense on the same target.\n\n| point |");
    for i in 1..=targets.len() {
        md.push_str(&format!(" T{i} ms | T{i} speedup |"));
    }
    md.push_str(" fastest |\n|---|");
    md.push_str(&"---:|---:|".repeat(targets.len()));
    md.push_str("---|\n");
    for ((_, mode, _, point), rows) in points {
        md.push_str(&format!("| {point} |"));
        for r in rows {
            match r {
                Some(r) => {
                    let s = match (mode.as_str(), r.speedup_vs_dense) {
                        ("dense", _) | (_, None) => String::new(),
                        (_, Some(s)) => format!("{s:.2}x"),
                    };
                    md.push_str(&format!(" {:.3} | {s} |", r.median_ms()));
                }
                None => md.push_str(" | |"),
            }
        }
        let fastest = rows
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.map(|r| (i, r.median_ns)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| format!("T{}", i + 1))
            .unwrap_or_default();
        md.push_str(&format!(" {fastest} |\n"));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::row;

    fn host_rows(host: &str, scale: f64) -> Vec<Row> {
        let mut rows = Vec::new();
        for (mode, ms, speedup) in [("dense", 10.0, 1.0), ("iss", 2.0, 5.0), ("csr", 6.0, 10.0 / 6.0)] {
            rows.push(Row {
                host: host.into(),
                mode: mode.into(),
                median_ns: ms * 1e6 * scale,
                speedup_vs_dense: Some(speedup),
                kept_fraction: if mode == "dense" { 1.0 } else { 0.25 },
                hidden_kept: "64/64".into(),
                ..row()
            });
        }
        rows
    }

    #[test]
    fn two_hosts_side_by_side() {
        let dir = tempfile::tempdir().unwrap();
        let mut rows = host_rows("fast-box", 1.0);
        rows.extend(host_rows("slow-box", 3.0));
        // An older duplicate that the newest row replaces.
        rows.push(Row {
            timestamp: "2020-01-01T00:00:00Z".into(),
            median_ns: 1.0,
            ..rows[0].clone()
        });
        let c = compare(&rows, dir.path()).unwrap();
        assert_eq!((c.targets.len(), c.shared_points), (2, 3));
        assert!(c.markdown.contains("fast-box") && c.markdown.contains("slow-box"), "{}", c.markdown);
        let line = c.markdown.lines().find(|l| l.starts_with("| lstm") && l.contains(" iss ")).unwrap();
        assert!(line.ends_with(" T1 |") && line.contains("5.00x"), "{line}");
        assert!(
            c.markdown
                .lines()
                .find(|l| l.starts_with("| lstm") && l.contains(" dense "))
                .unwrap()
                .contains("| 10.000 |")
        );
        for f in [
            "compare.md",
            "compare_time.svg",
            "compare_time.png",
            "compare_speedup.svg",
            "compare_speedup.png",
        ] {
            assert!(dir.path().join(f).is_file(), "{f}");
        }
        let svg = std::fs::read_to_string(dir.path().join("compare_time.svg")).unwrap();
        assert!(svg.contains("T1: fast-box") && svg.contains("T2: slow-box"));
    }

    #[test]
    fn one_target_is_not_a_comparison() {
        let dir = tempfile::tempdir().unwrap();
        let e = compare(&host_rows("only", 1.0), dir.path()).unwrap_err();
        assert!(matches!(e, ReportError::Empty(_)) && e.to_string().contains("found 1"), "{e}");
    }
}
