//! Machines side by side: for the points two or more machines measured,
//! each machine's time, its ratio to a baseline machine with whether the
//! two differ beyond noise, and per mode the geometric mean of those
//! ratios and of each machine's speedup over dense. Backends and thread
//! counts are part of a point, not of a machine.

mod figures;
mod tables;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::machines::{Machine, machines, revision_warning};
use super::{ReportError, Row, write_atomically};
use crate::mode::Mode;

pub use tables::{machine_table, markdown, point_table, speedup_table, summary_table, to_csv};

/// The result of [`compare`].
#[derive(Debug, Clone)]
pub struct Comparison {
    /// M1, M2, ... in the order they first appear in the rows.
    pub machines: Vec<Machine>,
    /// Index of the machine the others are divided by.
    pub baseline: usize,
    /// Points measured on at least two machines, by mode then size.
    pub points: Vec<SharedPoint>,
    /// Per mode, the geometric means.
    pub summaries: Vec<ModeSummary>,
    /// What the reader should know first (different revisions).
    pub warnings: Vec<String>,
}

/// One point and each machine's newest ok row of it.
#[derive(Debug, Clone)]
pub struct SharedPoint {
    /// [`Row::shared_point_key`].
    pub key: String,
    /// Short name for tables and charts (`h1024 k0.25 iss b10 t2`).
    pub label: String,
    pub mode: Mode,
    /// Per machine.
    pub rows: Vec<Option<Row>>,
}

/// A machine's time over the baseline's at one point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ratio {
    pub value: f64,
    /// From the two medians' 95% intervals: low over high, high over low.
    pub interval: (f64, f64),
    /// The two medians' intervals overlap: no difference shown.
    pub within_noise: bool,
}

impl SharedPoint {
    /// Machine `m`'s median over the baseline `base`'s, where both measured it.
    pub fn ratio(&self, m: usize, base: usize) -> Option<Ratio> {
        let (a, b) = (self.rows[m].as_ref()?, self.rows[base].as_ref()?);
        let value = a.median_ns / b.median_ns;
        let (a_lo, a_hi) = interval(a);
        let (b_lo, b_hi) = interval(b);
        Some(Ratio {
            value,
            interval: (a_lo / b_hi, a_hi / b_lo),
            within_noise: a_lo <= b_hi && b_lo <= a_hi,
        })
    }
}

/// A row's interval of the median, the median itself where none was recorded.
fn interval(r: &Row) -> (f64, f64) {
    if r.ci_low_ns > 0.0 && r.ci_high_ns >= r.ci_low_ns {
        (r.ci_low_ns.min(r.median_ns), r.ci_high_ns.max(r.median_ns))
    } else {
        (r.median_ns, r.median_ns)
    }
}

/// The geometric mean of a machine's ratios to the baseline in one mode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geomean {
    pub ratio: f64,
    /// Points both measured, and of them: faster and slower beyond noise.
    pub points: usize,
    pub faster: usize,
    pub slower: usize,
}

/// One mode's summary over its shared points.
#[derive(Debug, Clone, PartialEq)]
pub struct ModeSummary {
    pub mode: Mode,
    pub points: usize,
    /// Per machine: its ratios to the baseline (`None` for the baseline
    /// and machines without a point in common with it).
    pub ratios: Vec<Option<Geomean>>,
    /// Per machine: the geometric mean of its speedups over dense.
    pub speedups: Vec<Option<f64>>,
}

fn geomean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v.ln(), n + 1));
    (n > 0).then(|| (sum / n as f64).exp())
}

/// Chooses the baseline: `None` is the first machine; else a label or
/// name equal to `wanted`, `M2` or `2` (numbers from 1), or the one
/// machine whose name contains it.
pub fn pick_baseline(machines: &[Machine], wanted: Option<&str>) -> Result<usize, ReportError> {
    let Some(w) = wanted else { return Ok(0) };
    let listed = || {
        machines
            .iter()
            .enumerate()
            .map(|(i, m)| format!("M{} {}", i + 1, m.name()))
            .collect::<Vec<_>>()
            .join("; ")
    };
    if let Some(i) = machines.iter().position(|m| m.name() == w || m.key == w) {
        return Ok(i);
    }
    let number = w.strip_prefix(['M', 'm']).unwrap_or(w);
    if let Ok(n) = number.parse::<usize>()
        && (1..=machines.len()).contains(&n)
    {
        return Ok(n - 1);
    }
    let matching: Vec<usize> = (0..machines.len()).filter(|&i| machines[i].name().contains(w)).collect();
    match matching.as_slice() {
        [i] => Ok(*i),
        [] => Err(ReportError::Empty(format!(
            "baseline '{w}' names none of the machines: {}",
            listed()
        ))),
        _ => Err(ReportError::Empty(format!("baseline '{w}' names several machines: {}", listed()))),
    }
}

/// Sets the machines in `rows` side by side for the points they share, the
/// baseline chosen as [`pick_baseline`] says. Of several ok rows for one
/// point on one machine the newest counts; failed rows are ignored. Fails
/// with [`ReportError::Empty`] when fewer than two machines or no shared
/// point are found, naming the machines.
pub fn compare(rows: &[Row], baseline: Option<&str>) -> Result<Comparison, ReportError> {
    let ok: Vec<Row> = rows.iter().filter(|r| r.ok()).cloned().collect();
    let machines = machines(&ok);
    let found = || {
        if machines.is_empty() {
            "found none (no ok rows)".to_string()
        } else {
            let names: Vec<String> = machines.iter().map(Machine::name).collect();
            format!("found {}: {}", machines.len(), names.join("; "))
        }
    };
    if machines.len() < 2 {
        return Err(ReportError::Empty(format!(
            "compare needs rows from at least two machines; {}. Files from one kind of machine can be told apart by a label: NAME=file.csv",
            found()
        )));
    }
    let baseline = pick_baseline(&machines, baseline)?;
    let index: BTreeMap<&str, usize> = machines.iter().enumerate().map(|(i, m)| (m.key.as_str(), i)).collect();
    let mut by: BTreeMap<String, Vec<Option<Row>>> = BTreeMap::new();
    for r in &ok {
        let slots = by.entry(r.shared_point_key()).or_insert_with(|| vec![None; machines.len()]);
        let slot = &mut slots[index[r.machine_key().as_str()]];
        if slot.as_ref().is_none_or(|old| old.timestamp <= r.timestamp) {
            *slot = Some(r.clone());
        }
    }
    by.retain(|_, v| v.iter().flatten().count() >= 2);
    if by.is_empty() {
        return Err(ReportError::Empty(format!("the machines share no measured point; {}", found())));
    }
    let mut points: Vec<SharedPoint> = by
        .into_iter()
        .map(|(key, rows)| {
            let first = rows.iter().flatten().next().expect("two rows");
            SharedPoint {
                key,
                label: String::new(),
                mode: first.mode,
                rows,
            }
        })
        .collect();
    points.sort_by(|a, b| {
        order(a)
            .partial_cmp(&order(b))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.key.cmp(&b.key))
    });
    let labels = tables::point_labels(&points);
    for (p, l) in points.iter_mut().zip(labels) {
        p.label = l;
    }
    let summaries = summaries(&points, machines.len(), baseline);
    let warnings = revision_warning(&machines).into_iter().collect();
    Ok(Comparison {
        machines,
        baseline,
        points,
        summaries,
        warnings,
    })
}

/// Sort order of points: mode, model, size, kept fraction (most first),
/// batch, seq, threads, head.
fn order(p: &SharedPoint) -> (Mode, String, f64, f64, usize, usize, usize, bool) {
    let r = p.rows.iter().flatten().next().expect("a row");
    (
        p.mode,
        if r.model.starts_with("lstm") {
            String::new()
        } else {
            r.model.clone()
        },
        super::charts::first_size(&r.hidden_full),
        -r.kept_fraction,
        r.batch,
        r.seq,
        r.threads,
        r.head,
    )
}

fn summaries(points: &[SharedPoint], machines: usize, base: usize) -> Vec<ModeSummary> {
    let mut modes: Vec<Mode> = points.iter().map(|p| p.mode).collect();
    modes.dedup();
    modes
        .into_iter()
        .map(|mode| {
            let of_mode: Vec<&SharedPoint> = points.iter().filter(|p| p.mode == mode).collect();
            let ratios = (0..machines)
                .map(|m| {
                    if m == base {
                        return None;
                    }
                    let rs: Vec<Ratio> = of_mode.iter().filter_map(|p| p.ratio(m, base)).collect();
                    geomean(rs.iter().map(|r| r.value)).map(|ratio| Geomean {
                        ratio,
                        points: rs.len(),
                        faster: rs.iter().filter(|r| !r.within_noise && r.value < 1.0).count(),
                        slower: rs.iter().filter(|r| !r.within_noise && r.value > 1.0).count(),
                    })
                })
                .collect();
            let speedups = (0..machines)
                .map(|m| {
                    let s = of_mode.iter().filter_map(|p| p.rows[m].as_ref()?.speedup_vs_dense);
                    if mode == Mode::Dense { None } else { geomean(s) }
                })
                .collect();
            ModeSummary {
                mode,
                points: of_mode.len(),
                ratios,
                speedups,
            }
        })
        .collect()
}

/// Writes `compare.md`, `compare.csv` and the charts (`compare_ratio`,
/// `compare_geomean`, and `compare_speedup` where a shared point is not
/// dense) into `out_dir`; returns the files written.
pub fn write(c: &Comparison, out_dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    std::fs::create_dir_all(out_dir).map_err(|error| ReportError::Io {
        path: out_dir.to_path_buf(),
        error,
    })?;
    let md = out_dir.join("compare.md");
    write_atomically(&md, markdown(c).as_bytes())?;
    let csv = out_dir.join("compare.csv");
    write_atomically(&csv, to_csv(c)?.as_bytes())?;
    let mut files = vec![md, csv];
    for (stem, chart) in figures::charts(c) {
        files.extend(super::charts::save(&chart, out_dir, stem)?);
    }
    Ok(files)
}

/// The comparison's charts as SVG documents, with their titles (for the
/// HTML report).
pub fn svgs(c: &Comparison) -> Result<Vec<(String, String)>, ReportError> {
    figures::charts(c)
        .into_iter()
        .map(|(stem, chart)| {
            let svg = super::charts::svg_text(&chart).map_err(|message| ReportError::Chart {
                path: PathBuf::from(format!("{stem}.svg")),
                message,
            })?;
            Ok((chart.title().to_string(), svg))
        })
        .collect()
}

#[cfg(test)]
mod tests;
