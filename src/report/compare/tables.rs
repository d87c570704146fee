//! A comparison written out: the machine table, the per-mode summary and
//! every shared point, as Markdown tables and as one CSV.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{Comparison, SharedPoint};
use crate::mode::Mode;
use crate::report::ReportError;
use crate::report::charts::first_size;
use crate::report::doc::Table;
use crate::report::machines::Machine;

/// `M2` for machine index 1.
pub(super) fn m(i: usize) -> String {
    format!("M{}", i + 1)
}

/// The machines: what each is, what it measured of its limits, which
/// issbench measured it and when.
pub fn machine_table(machines: &[Machine], baseline: Option<usize>) -> Table {
    let mut t = Table::new([
        "",
        "machine",
        "CPU",
        "cores",
        "ISA",
        "memory",
        "measured FMA peak and read bandwidth",
        "hosts",
        "issbench",
        "measured",
        "rows (ok)",
    ]);
    for (i, mc) in machines.iter().enumerate() {
        let hosts: Vec<&str> = mc.hosts.iter().map(String::as_str).collect();
        let hosts = if hosts.len() > 3 {
            format!("{} and {} more", hosts[..2].join(", "), hosts.len() - 2)
        } else {
            hosts.join(", ")
        };
        t.push([
            if baseline == Some(i) {
                format!("{} (baseline)", m(i))
            } else {
                m(i)
            },
            mc.name(),
            mc.cpu.clone(),
            mc.cores.to_string(),
            mc.isa.clone(),
            if mc.memory_gib > 0.0 {
                format!("{:.0} GiB", mc.memory_gib)
            } else {
                "not recorded".into()
            },
            mc.limits_text(),
            hosts,
            mc.revisions_text(),
            mc.dates_text(),
            format!("{} ({})", mc.rows, mc.ok_rows),
        ]);
    }
    t
}

/// Per mode: each machine's geometric-mean time ratio to the baseline
/// (with how many points were faster, within noise, slower).
pub fn summary_table(c: &Comparison) -> Table {
    let b = m(c.baseline);
    let others: Vec<usize> = (0..c.machines.len()).filter(|&i| i != c.baseline).collect();
    let mut head = vec!["mode".to_string(), "points".to_string()];
    head.extend(others.iter().map(|&i| format!("{} / {b}", m(i))));
    let mut t = Table::new(head).numeric_from(1);
    for s in &c.summaries {
        let mut row = vec![s.mode.to_string(), s.points.to_string()];
        for &i in &others {
            row.push(match s.ratios[i] {
                Some(g) => format!(
                    "{:.2} ({} faster, {} within noise, {} slower)",
                    g.ratio,
                    g.faster,
                    g.points - g.faster - g.slower,
                    g.slower
                ),
                None => String::new(),
            });
        }
        t.push(row);
    }
    t
}

/// Per mode other than dense: each machine's geometric-mean speedup over
/// dense on itself.
pub fn speedup_table(c: &Comparison) -> Option<Table> {
    let rows: Vec<_> = c.summaries.iter().filter(|s| s.mode != Mode::Dense).collect();
    if rows.is_empty() {
        return None;
    }
    let mut head = vec!["mode".to_string()];
    head.extend((0..c.machines.len()).map(m));
    let mut t = Table::new(head).numeric_from(1);
    for s in rows {
        let mut row = vec![s.mode.to_string()];
        row.extend(s.speedups.iter().map(|v| v.map(|v| format!("{v:.2}x")).unwrap_or_default()));
        t.push(row);
    }
    Some(t)
}

/// Every shared point: each machine's median and, for the others, its
/// ratio to the baseline, `≈` where the intervals overlap.
pub fn point_table(c: &Comparison) -> Table {
    let b = m(c.baseline);
    let mut head = vec!["point".to_string()];
    for i in 0..c.machines.len() {
        head.push(format!("{} ms", m(i)));
        if i != c.baseline {
            head.push(format!("{} / {b}", m(i)));
        }
    }
    head.push("fastest".into());
    let mut t = Table::new(head).numeric_from(1);
    for p in &c.points {
        let mut row = vec![p.label.clone()];
        for i in 0..c.machines.len() {
            row.push(p.rows[i].as_ref().map(|r| format!("{:.3}", r.median_ms())).unwrap_or_default());
            if i != c.baseline {
                row.push(
                    p.ratio(i, c.baseline)
                        .map(|r| format!("{}{:.2}", if r.within_noise { "≈ " } else { "" }, r.value))
                        .unwrap_or_default(),
                );
            }
        }
        let fastest = (0..c.machines.len())
            .filter_map(|i| p.rows[i].as_ref().map(|r| (i, r.median_ns)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| m(i))
            .unwrap_or_default();
        row.push(fastest);
        t.push(row);
    }
    t
}

/// The whole comparison as Markdown.
pub fn markdown(c: &Comparison) -> String {
    let b = m(c.baseline);
    let mut md = String::from("# Machines compared\n\n");
    md.push_str(&machine_table(&c.machines, Some(c.baseline)).to_markdown());
    for w in &c.warnings {
        md.push_str(&format!("\n**Warning:** {w}\n"));
    }
    md.push_str(&format!(
        "\n## Geometric mean per mode\n\nTime on each machine over time on {b} (below 1: faster than {b}), over the {} points both measured; a point counts as faster or slower only where the two medians' 95% intervals do not overlap.\n\n",
        c.points.len()
    ));
    md.push_str(&summary_table(c).to_markdown());
    if let Some(t) = speedup_table(c) {
        md.push_str("\nSpeedup over dense on the same machine (geometric mean over the shared points):\n\n");
        md.push_str(&t.to_markdown());
    }
    md.push_str(&format!(
        "\n## Every shared point\n\nMedian time per forward pass (ms); `M / {b}`: time ratio to the baseline, `≈` where the two 95% intervals overlap (within noise). Points: hidden units (h), kept fraction (k), mode, batch (b), threads (t); a kernel other than the mode's usual one is named.\n\n"
    ));
    md.push_str(&point_table(c).to_markdown());
    md
}

/// One line of `compare.csv`: a point on a machine.
#[derive(Serialize)]
struct CsvLine<'a> {
    point: &'a str,
    point_key: &'a str,
    mode: Mode,
    model: &'a str,
    hidden_full: &'a str,
    kept_fraction: f64,
    batch: usize,
    seq: usize,
    threads: usize,
    head: bool,
    backend: &'a str,
    machine: String,
    machine_name: String,
    baseline: bool,
    median_ms: f64,
    ci_low_ms: f64,
    ci_high_ms: f64,
    ratio_to_baseline: Option<f64>,
    ratio_low: Option<f64>,
    ratio_high: Option<f64>,
    within_noise: Option<bool>,
    speedup_vs_dense: Option<f64>,
    flags: &'a str,
    git_rev: &'a str,
}

/// The comparison as CSV: one line per point and machine that measured it.
pub fn to_csv(c: &Comparison) -> Result<String, ReportError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| ReportError::Csv {
        path: "compare.csv".into(),
        error: e,
    };
    for p in &c.points {
        for (i, r) in p.rows.iter().enumerate() {
            let Some(r) = r else { continue };
            let ratio = if i == c.baseline { None } else { p.ratio(i, c.baseline) };
            w.serialize(CsvLine {
                point: &p.label,
                point_key: &p.key,
                mode: p.mode,
                model: &r.model,
                hidden_full: &r.hidden_full,
                kept_fraction: r.kept_fraction,
                batch: r.batch,
                seq: r.seq,
                threads: r.threads,
                head: r.head,
                backend: &r.backend,
                machine: m(i),
                machine_name: c.machines[i].name(),
                baseline: i == c.baseline,
                median_ms: r.median_ms(),
                ci_low_ms: r.ci_low_ns / 1e6,
                ci_high_ms: r.ci_high_ns / 1e6,
                ratio_to_baseline: ratio.map(|x| x.value),
                ratio_low: ratio.map(|x| x.interval.0),
                ratio_high: ratio.map(|x| x.interval.1),
                within_noise: ratio.map(|x| x.within_noise),
                speedup_vs_dense: r.speedup_vs_dense,
                flags: &r.flags,
                git_rev: &r.git_rev,
            })
            .map_err(err)?;
        }
    }
    let bytes = w.into_inner().map_err(|e| ReportError::Empty(e.to_string()))?;
    Ok(String::from_utf8(bytes).expect("csv of UTF-8 text"))
}

/// Short, distinct names of the points: the hidden size (the first where
/// all layers have it) and kept fraction of synthetic models, else the
/// model's name; the mode, batch and threads; the sequence length where
/// points differ in it; `+head`; a kernel other than the mode's usual one.
pub(super) fn point_labels(points: &[SharedPoint]) -> Vec<String> {
    let rows: Vec<&crate::report::Row> = points.iter().map(|p| p.rows.iter().flatten().next().expect("a row")).collect();
    let seqs: BTreeSet<usize> = rows.iter().map(|r| r.seq).collect();
    let labels: Vec<String> = rows
        .iter()
        .map(|r| {
            let sizes: BTreeSet<&str> = r.hidden_full.split('/').collect();
            let what = if r.model.starts_with("lstm") {
                let h = if sizes.len() == 1 {
                    format!("h{}", first_size(&r.hidden_full))
                } else {
                    format!("h{}", r.hidden_full)
                };
                if r.mode == Mode::Dense {
                    h
                } else {
                    format!("{h} k{:.2}", r.kept_fraction)
                }
            } else {
                r.model.clone()
            };
            let usual = matches!(
                (r.mode, r.backend_family()),
                (Mode::Dense | Mode::Iss, "packed") | (Mode::Csr, "csr") | (Mode::OrtDense | Mode::OrtIss, "onnxruntime")
            );
            format!(
                "{what} {} b{} t{}{}{}{}",
                r.mode,
                r.batch,
                r.threads,
                if seqs.len() > 1 { format!(" s{}", r.seq) } else { String::new() },
                if r.head { " +head" } else { "" },
                if usual { String::new() } else { format!(" {}", r.backend_family()) }
            )
        })
        .collect();
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for l in &labels {
        *count.entry(l).or_default() += 1;
    }
    labels
        .iter()
        .zip(points)
        .map(|(l, p)| if count[l.as_str()] > 1 { p.key.clone() } else { l.clone() })
        .collect()
}
