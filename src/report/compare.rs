//! Hardware targets side by side: for the points that two or more targets
//! (host / CPU / threads / backend) share, a Markdown table of times and
//! speedups and two charts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::charts::{Axis, BarChart, Chart, colour, provenance, save, value_label};
use super::{ReportError, Row, write_atomically};
use crate::mode::Mode;

/// Most points drawn in a comparison chart (the table has them all).
const MAX_CHART_POINTS: usize = 24;

/// The result of [`compare`].
#[derive(Debug, Clone)]
pub struct Comparison {
    /// Target keys ([`Row::target_key`]), in the order of the table's
    /// columns: T1, T2, ...
    pub targets: Vec<String>,
    /// Points measured on at least two targets.
    pub shared_points: usize,
    /// The table (also written to `compare.md`).
    pub markdown: String,
    /// Files written: `compare.md`, then the charts' SVG and PNG.
    pub files: Vec<PathBuf>,
}

/// Points by (model, mode, batch, point key), one newest row per target
/// (`None` where the target did not measure it).
type Points<'a> = BTreeMap<(String, Mode, usize, String), Vec<Option<&'a Row>>>;

/// Sets the targets in `rows` side by side for the points they share and
/// writes `compare.md` and the charts `compare_time` and `compare_speedup`
/// (the latter when a shared point is not dense) into `out_dir`. Of several
/// ok rows for one point on one target the newest counts; failed rows are
/// ignored. Fails with [`ReportError::Empty`] when fewer than two targets or
/// no shared point are found.
pub fn compare(rows: &[Row], out_dir: &Path) -> Result<Comparison, ReportError> {
    let mut latest: BTreeMap<(String, String), &Row> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.ok()) {
        let key = (r.point_key(), r.target_key());
        if latest.get(&key).is_none_or(|old| old.timestamp <= r.timestamp) {
            latest.insert(key, r);
        }
    }
    let targets: Vec<String> = latest.keys().map(|(_, t)| t.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let found = || {
        if targets.is_empty() {
            "found none (no ok rows)".to_string()
        } else {
            format!("found {}: {}", targets.len(), targets.join("; "))
        }
    };
    if targets.len() < 2 {
        return Err(ReportError::Empty(format!(
            "compare needs at least two targets (host / CPU / threads / backend); {}",
            found()
        )));
    }
    let mut points: Points = BTreeMap::new();
    for ((point, target), r) in &latest {
        let t = targets.iter().position(|x| x == target).expect("listed");
        let entry = points
            .entry((r.model.clone(), r.mode, r.batch, point.clone()))
            .or_insert_with(|| vec![None; targets.len()]);
        entry[t] = Some(r);
    }
    points.retain(|_, v| v.iter().filter(|r| r.is_some()).count() >= 2);
    if points.is_empty() {
        return Err(ReportError::Empty(format!("the targets share no measured point; {}", found())));
    }
    let markdown = table(&targets, &points);
    std::fs::create_dir_all(out_dir).map_err(|error| ReportError::Io {
        path: out_dir.to_path_buf(),
        error,
    })?;
    let md_path = out_dir.join("compare.md");
    write_atomically(&md_path, markdown.as_bytes())?;
    let mut files = vec![md_path];
    let shared: Vec<&Row> = points.values().flatten().flatten().copied().collect();
    let title = provenance(&shared);
    let labels = group_labels(&points);
    let times: Vec<(String, Vec<Option<f64>>)> = points
        .values()
        .zip(&labels)
        .map(|(rs, label)| (label.clone(), rs.iter().map(|r| r.map(Row::median_ms)).collect()))
        .collect();
    let chart = bars(
        &targets,
        times,
        &format!("Median time per target, {title}"),
        Axis::log("median time per forward pass (ms, log scale)"),
    );
    files.extend(save(&chart, out_dir, "compare_time")?);
    let speedups: Vec<(String, Vec<Option<f64>>)> = points
        .iter()
        .zip(&labels)
        .filter(|(((_, mode, _, _), _), _)| *mode != Mode::Dense)
        .map(|((_, rs), label)| {
            (
                label.clone(),
                rs.iter().map(|r| r.and_then(|r| r.speedup_vs_dense)).collect::<Vec<_>>(),
            )
        })
        .filter(|(_, v)| v.iter().any(Option::is_some))
        .collect();
    if !speedups.is_empty() {
        let chart = bars(
            &targets,
            speedups,
            &format!("Speedup over dense per target, {title}"),
            Axis::linear("speedup over dense on the same target (×)"),
        );
        files.extend(save(&chart, out_dir, "compare_speedup")?);
    }
    Ok(Comparison {
        targets,
        shared_points: points.len(),
        markdown,
        files,
    })
}

/// A grouped bar chart of the first [`MAX_CHART_POINTS`] points, one bar per
/// target that has a value among them (colour and `Tn` fixed per target).
fn bars(targets: &[String], values: Vec<(String, Vec<Option<f64>>)>, title: &str, y: Axis) -> Chart {
    let x_label = "shared point: hidden units (h), kept fraction (k), mode, batch (b)".to_string();
    let total = values.len();
    let values: Vec<_> = values.into_iter().take(MAX_CHART_POINTS).collect();
    let title = if total > MAX_CHART_POINTS {
        format!("{title} (first {MAX_CHART_POINTS} of {total} points)")
    } else {
        title.to_string()
    };
    let present: Vec<usize> = (0..targets.len()).filter(|&t| values.iter().any(|(_, v)| v[t].is_some())).collect();
    Chart::Bars(BarChart {
        title,
        y,
        groups: values.iter().map(|(g, _)| g.clone()).collect(),
        bars: present
            .iter()
            .map(|&t| (format!("T{}: {}", t + 1, targets[t]), colour(t)))
            .collect(),
        values: values.iter().map(|(_, v)| present.iter().map(|&t| v[t]).collect()).collect(),
        value_label,
        x_label,
    })
}

/// Short chart labels of the points (`h1024 k0.25 iss b10`): the hidden
/// sizes (the first where all layers have it), kept fraction, mode, batch,
/// the sequence length where points differ in it, and the model's name for
/// models not named by their sizes or where labels would repeat.
fn group_labels(points: &Points) -> Vec<String> {
    let rows: Vec<&Row> = points
        .values()
        .map(|rs| *rs.iter().flatten().next().expect("shared points have rows"))
        .collect();
    let seqs = rows.iter().map(|r| r.seq).collect::<BTreeSet<_>>();
    let short = |r: &Row| {
        let sizes: BTreeSet<&str> = r.hidden_full.split('/').collect();
        let h = if sizes.len() == 1 {
            sizes.into_iter().next().unwrap_or("")
        } else {
            r.hidden_full.as_str()
        };
        let k = if r.mode == Mode::Dense {
            String::new()
        } else {
            format!(" k{:.2}", r.kept_fraction)
        };
        let seq = if seqs.len() > 1 { format!(" s{}", r.seq) } else { String::new() };
        format!("h{h}{k} {} b{}{seq}{}", r.mode, r.batch, if r.head { " +head" } else { "" })
    };
    let labels: Vec<String> = rows.iter().map(|r| short(r)).collect();
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for l in &labels {
        *count.entry(l).or_default() += 1;
    }
    let labels: Vec<String> = rows
        .iter()
        .zip(&labels)
        .map(|(r, l)| {
            if count[l.as_str()] > 1 || !r.model.starts_with("lstm") {
                format!("{} {l}", r.model)
            } else {
                l.clone()
            }
        })
        .collect();
    // Still the same: the whole point key.
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for l in &labels {
        *count.entry(l).or_default() += 1;
    }
    rows.iter()
        .zip(&labels)
        .map(|(r, l)| if count[l.as_str()] > 1 { r.point_key() } else { l.clone() })
        .collect()
}

/// A Markdown table cell: no pipes or line breaks.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn table(targets: &[String], points: &Points) -> String {
    let mut md = String::from("# Targets compared\n\n");
    for (i, t) in targets.iter().enumerate() {
        md.push_str(&format!("- T{}: {}\n", i + 1, cell(t)));
    }
    // Speedup columns only when a shared point is not dense.
    let speedups = points.keys().any(|(_, mode, _, _)| *mode != Mode::Dense);
    md.push_str(&format!(
        "\n{} shared points. Median time per forward pass (ms){}; `fastest`: the target with the shortest median.\n\n| point |",
        points.len(),
        if speedups {
            " and, for modes other than dense, speedup over dense on the same target"
        } else {
            ""
        }
    ));
    for i in 1..=targets.len() {
        md.push_str(&format!(" T{i} ms |"));
        if speedups {
            md.push_str(&format!(" T{i} speedup |"));
        }
    }
    md.push_str(" fastest |\n|---|");
    md.push_str(&(if speedups { "---:|---:|" } else { "---:|" }).repeat(targets.len()));
    md.push_str("---|\n");
    for ((_, mode, _, point), rows) in points {
        md.push_str(&format!("| {} |", cell(point)));
        for r in rows {
            match r {
                Some(r) => md.push_str(&format!(" {:.3} |", r.median_ms())),
                None => md.push_str(" |"),
            }
            if speedups {
                match r.and_then(|r| r.speedup_vs_dense) {
                    Some(s) if *mode != Mode::Dense => md.push_str(&format!(" {s:.2}x |")),
                    _ => md.push_str(" |"),
                }
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
    use crate::report::Status;
    use crate::report::tests::row;

    fn host_rows(host: &str, scale: f64) -> Vec<Row> {
        let mut rows = Vec::new();
        for (mode, ms, speedup) in [("dense", 10.0, 1.0), ("iss", 2.0, 5.0), ("csr", 6.0, 10.0 / 6.0)] {
            rows.push(Row {
                host: host.into(),
                mode: Mode::parse(mode).unwrap(),
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
        let mut slow = host_rows("slow-box", 3.0);
        // slow-box wins the csr point.
        slow[2].median_ns = 1e6;
        slow[2].timestamp = "2026-12-01T10:00:00Z".into();
        rows.extend(slow);
        // An older duplicate that the newest row replaces.
        rows.push(Row {
            timestamp: "2020-01-01T00:00:00Z".into(),
            median_ns: 1.0,
            ..rows[0].clone()
        });
        // A failed row and a point only one target measured: neither counts.
        rows.push(Row {
            status: Status::failed("out of memory"),
            median_ns: 1.0,
            ..rows[1].clone()
        });
        rows.push(Row {
            batch: 64,
            ..rows[0].clone()
        });
        let c = compare(&rows, dir.path()).unwrap();
        assert_eq!((c.targets.len(), c.shared_points), (2, 3));
        assert!(c.targets[0].starts_with("fast-box / Test CPU / 2t"), "{:?}", c.targets);
        let md = &c.markdown;
        assert!(md.contains("- T1: fast-box") && md.contains("- T2: slow-box"), "{md}");
        assert!(md.contains("| point | T1 ms | T1 speedup | T2 ms | T2 speedup | fastest |"), "{md}");
        let line = |mode: &str| {
            md.lines()
                .find(|l| l.starts_with("| lstm") && l.contains(&format!(" {mode} ")))
                .unwrap()
        };
        assert!(
            line("iss").ends_with(" T1 |") && line("iss").contains("| 5.00x |"),
            "{}",
            line("iss")
        );
        assert!(line("csr").ends_with(" T2 |"), "{}", line("csr"));
        assert!(
            line("dense").contains("| 10.000 | |") && line("dense").contains("| 30.000 | |"),
            "{}",
            line("dense")
        );
        assert!(!md.contains(" b64 "), "{md}");
        assert!(md.starts_with(&std::fs::read_to_string(dir.path().join("compare.md")).unwrap()));
        for f in [
            "compare.md",
            "compare_time.svg",
            "compare_time.png",
            "compare_speedup.svg",
            "compare_speedup.png",
        ] {
            assert!(dir.path().join(f).is_file(), "{f}");
            assert!(c.files.contains(&dir.path().join(f)), "{f}");
        }
        let png = std::fs::read(dir.path().join("compare_time.png")).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);
        let svg = std::fs::read_to_string(dir.path().join("compare_time.svg")).unwrap();
        assert!(svg.contains("T1: fast-box") && svg.contains("T2: slow-box") && svg.contains("h256 k0.25 iss b1"));
        assert!(
            std::fs::read_to_string(dir.path().join("compare_speedup.svg"))
                .unwrap()
                .contains("5.00")
        );
    }

    #[test]
    fn many_points_are_charted_in_part() {
        let dir = tempfile::tempdir().unwrap();
        let mut rows = Vec::new();
        for host in ["a", "b"] {
            for batch in 1..=30 {
                rows.push(Row {
                    host: host.into(),
                    batch,
                    ..row()
                });
            }
        }
        let c = compare(&rows, dir.path()).unwrap();
        assert_eq!(c.shared_points, 30);
        assert_eq!(c.markdown.lines().filter(|l| l.starts_with("| lstm")).count(), 30);
        // Dense only: no speedup columns and no speedup chart.
        assert!(c.markdown.contains("| point | T1 ms | T2 ms | fastest |"), "{}", c.markdown);
        assert!(!dir.path().join("compare_speedup.svg").exists());
        let svg = std::fs::read_to_string(dir.path().join("compare_time.svg")).unwrap();
        assert!(svg.contains("first 24 of 30 points"));
    }

    #[test]
    fn one_target_is_not_a_comparison() {
        let dir = tempfile::tempdir().unwrap();
        let e = compare(&host_rows("only", 1.0), dir.path()).unwrap_err();
        assert!(
            matches!(e, ReportError::Empty(_)) && e.to_string().contains("found 1: only / Test CPU"),
            "{e}"
        );
        let e = compare(&[], dir.path()).unwrap_err();
        assert!(e.to_string().contains("found none"), "{e}");
        // Two targets without a common point.
        let mut rows = host_rows("a", 1.0);
        rows.push(Row {
            host: "b".into(),
            batch: 7,
            ..row()
        });
        let e = compare(&rows, dir.path()).unwrap_err();
        assert!(e.to_string().contains("share no") && e.to_string().contains("found 2"), "{e}");
        assert!(!dir.path().join("compare.md").exists());
    }
}
