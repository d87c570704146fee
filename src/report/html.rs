//! One self-contained HTML page of results: the machines, the paper's PTB
//! table, the comparison with ONNX Runtime, each machine's charts, the
//! machines compared, the verification errors and the rows to distrust.
//! Charts are inline SVG; there is no script and nothing is fetched, so the
//! file reads the same anywhere it is copied.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::charts::{Chart, by_machine, charts_for, svg_text};
use super::compare::{self, Comparison};
use super::doc::{Table, escape};
use super::machines::{Machine, revision_warning};
use super::{ReportError, Row, write_atomically};
use crate::mode::Mode;

/// The speedup the paper reports for ISS on the PTB model on CPU (Wen et
/// al., ICLR 2018: LSTM 1500/1500 reduced to 373/315).
pub const PAPER_PTB_SPEEDUP: f64 = 10.59;

const STYLE: &str = "body{font-family:sans-serif;margin:2em auto;max-width:1400px;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:0.8em 0}th,td{border:1px solid #ccc;padding:0.25em 0.6em;text-align:left}\
th{background:#f3f3f3}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}\
figure{margin:1.2em 0}figure svg{max-width:100%;height:auto;border:1px solid #eee}\
.warn{background:#fff4d6;border-left:4px solid #e0a800;padding:0.5em 1em}nav li{margin:0.15em 0}";

/// Writes `dir/index.html` for `rows` read from `sources`; returns its path.
pub fn write_html(rows: &[Row], sources: &[String], dir: &Path) -> Result<PathBuf, ReportError> {
    let html = page(rows, sources)?;
    std::fs::create_dir_all(dir).map_err(|error| ReportError::Io {
        path: dir.to_path_buf(),
        error,
    })?;
    let path = dir.join("index.html");
    write_atomically(&path, html.as_bytes())?;
    Ok(path)
}

/// A section: its anchor, title and body.
struct Section {
    id: String,
    title: String,
    body: String,
}

fn chart_svg(chart: &Chart) -> Result<String, ReportError> {
    let svg = svg_text(chart).map_err(|message| ReportError::Chart {
        path: PathBuf::from("index.html"),
        message,
    })?;
    Ok(figure(chart.title(), &svg))
}

fn figure(title: &str, svg: &str) -> String {
    // The SVG scales with the page (its viewBox keeps the drawing).
    let svg = svg.trim_start_matches(|c| c != '<');
    let svg = svg.strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>").unwrap_or(svg);
    format!("<figure title=\"{}\">{}</figure>\n", escape(title), svg.trim())
}

/// The whole page as text.
pub fn page(rows: &[Row], sources: &[String]) -> Result<String, ReportError> {
    let groups = by_machine(rows);
    let machines: Vec<Machine> = groups.iter().map(|(m, _)| m.clone()).collect();
    let mut sections = Vec::new();
    let mut body = super::compare::machine_table(&machines, None).to_html();
    if let Some(w) = revision_warning(&machines) {
        body.push_str(&format!("<p class=\"warn\">Warning: {}</p>\n", escape(&w)));
    }
    sections.push(Section {
        id: "machines".into(),
        title: "Machines".into(),
        body,
    });
    sections.push(Section {
        id: "ptb".into(),
        title: "The paper's PTB model".into(),
        body: ptb_section(&groups),
    });
    sections.push(Section {
        id: "onnxruntime".into(),
        title: "issbench against ONNX Runtime".into(),
        body: ort_section(&groups),
    });
    if machines.len() > 1 {
        sections.push(Section {
            id: "compare".into(),
            title: "Machines compared".into(),
            body: compare_section(rows)?,
        });
    }
    for (i, (machine, own)) in groups.iter().enumerate() {
        let mut body = String::new();
        let charts = charts_for(own);
        if charts.is_empty() {
            body.push_str("<p>No chart: no ok row of a recurrent model.</p>\n");
        }
        for (_, chart) in &charts {
            body.push_str(&chart_svg(chart)?);
        }
        sections.push(Section {
            id: format!("m{}", i + 1),
            title: format!("M{}: {} — charts", i + 1, machine.name()),
            body,
        });
    }
    sections.push(Section {
        id: "verification".into(),
        title: "Verification".into(),
        body: verification_section(&groups),
    });
    sections.push(Section {
        id: "suspect".into(),
        title: "Rows to distrust".into(),
        body: suspect_section(&groups),
    });
    let mut html = String::from("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    html.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>issbench report</title>\n");
    html.push_str(&format!("<style>{STYLE}</style>\n</head>\n<body>\n<h1>issbench report</h1>\n"));
    let ok = rows.iter().filter(|r| r.ok()).count();
    html.push_str(&format!(
        "<p>{} rows ({ok} measured) from {} machine{}, read from {}. Written {} by issbench {}.</p>\n",
        rows.len(),
        machines.len(),
        if machines.len() == 1 { "" } else { "s" },
        escape(&sources.join(", ")),
        super::now_rfc3339(),
        env!("CARGO_PKG_VERSION"),
    ));
    html.push_str("<nav><ul>\n");
    for s in &sections {
        html.push_str(&format!("<li><a href=\"#{}\">{}</a></li>\n", s.id, escape(&s.title)));
    }
    html.push_str("</ul></nav>\n");
    for s in sections {
        html.push_str(&format!(
            "<section id=\"{}\">\n<h2>{}</h2>\n{}</section>\n",
            s.id,
            escape(&s.title),
            s.body
        ));
    }
    html.push_str("</body>\n</html>\n");
    Ok(html)
}

/// Newest ok row per measurement.
fn newest(rows: &[Row]) -> Vec<&Row> {
    let mut by: BTreeMap<String, &Row> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.ok()) {
        let key = r.key();
        if by.get(&key).is_none_or(|old| old.timestamp <= r.timestamp) {
            by.insert(key, r);
        }
    }
    by.into_values().collect()
}

/// `1.23x [1.20, 1.26]`, or the estimate alone.
fn speedup_text(r: &Row) -> String {
    match (r.speedup_vs_dense, r.speedup_ci_low, r.speedup_ci_high) {
        (Some(s), Some(lo), Some(hi)) => format!("{s:.2}x [{lo:.2}, {hi:.2}]"),
        (Some(s), ..) => format!("{s:.2}x"),
        _ => String::new(),
    }
}

/// Configurations of a model's rows: (head, batch, threads, seq).
type Config = (bool, usize, usize, usize);

fn config_of(r: &Row) -> Config {
    (r.head, r.batch, r.threads, r.seq)
}

/// Whether two rows ran the same model (older files have no `source`).
fn same_model(a: &Row, b: &Row) -> bool {
    (a.model.as_str(), a.source.as_str(), a.input, a.hidden_full.as_str())
        == (b.model.as_str(), b.source.as_str(), b.input, b.hidden_full.as_str())
}

fn config_cells(c: Config) -> [String; 4] {
    [
        c.1.to_string(),
        c.2.to_string(),
        c.3.to_string(),
        if c.0 { "with".into() } else { "layers only".into() },
    ]
}

fn ptb_section(groups: &[(Machine, Vec<Row>)]) -> String {
    let mut body = format!(
        "<p>The paper (Wen et al., ICLR 2018) reduces the PTB language model's LSTM from 1500/1500 to 373/315 hidden units with ISS and reports a {PAPER_PTB_SPEEDUP}x speedup on CPU. Here: the same shapes on each machine, ISS against the full-width dense model (speedups with their 95% interval, from rounds timed in turn), and CSR at the ISS model's weight count. The ideal is the multiply-add ratio.</p>\n"
    );
    let mut any = false;
    for (i, (machine, rows)) in groups.iter().enumerate() {
        let ptb: Vec<&Row> = newest(rows).into_iter().filter(|r| r.model.starts_with("ptb")).collect();
        // One table per model (a checkpoint may be named ptb-... too).
        let models: BTreeSet<(&str, &str)> = ptb.iter().map(|r| (r.model.as_str(), r.source.as_str())).collect();
        for (model, source) in models {
            let own: Vec<&Row> = ptb.iter().copied().filter(|r| r.model == model && r.source == source).collect();
            any = true;
            let sizes = own
                .iter()
                .find(|r| r.mode == Mode::Iss)
                .map(|r| format!(": {} to {}", r.hidden_full, r.hidden_kept))
                .unwrap_or_default();
            body.push_str(&format!("<h3>M{}: {} — {model}{sizes}</h3>\n", i + 1, escape(&machine.name()),));
            body.push_str(&ptb_table(&own).to_html());
        }
    }
    if !any {
        body.push_str("<p>No PTB rows: run <code>issbench sweep --preset ptb</code>.</p>\n");
    }
    body
}

/// One model's dense, ISS and CSR times per configuration.
fn ptb_table(rows: &[&Row]) -> Table {
    let mut t = Table::new([
        "batch",
        "threads",
        "seq",
        "head",
        "dense ms",
        "ISS ms",
        "ISS speedup",
        "ideal",
        "CSR ms",
        "CSR speedup",
    ])
    .numeric_from(0);
    let configs: BTreeSet<Config> = rows.iter().map(|r| config_of(r)).collect();
    for c in configs {
        let at = |m: Mode| rows.iter().find(|r| config_of(r) == c && r.mode == m);
        let ms = |m: Mode| at(m).map(|r| format!("{:.2}", r.median_ms())).unwrap_or_default();
        let mut row: Vec<String> = config_cells(c).into();
        row.extend([
            ms(Mode::Dense),
            ms(Mode::Iss),
            at(Mode::Iss).map(|r| speedup_text(r)).unwrap_or_default(),
            at(Mode::Iss).map(|r| format!("{:.2}x", r.ideal_speedup)).unwrap_or_default(),
            ms(Mode::Csr),
            at(Mode::Csr).map(|r| speedup_text(r)).unwrap_or_default(),
        ]);
        t.push(row);
    }
    t
}

fn ort_section(groups: &[(Machine, Vec<Row>)]) -> String {
    let mut body = String::from(
        "<p>The same models exported to ONNX and run by ONNX Runtime (<code>--peer ort</code>), timed in rounds in turn with issbench's. Ratio: ONNX Runtime's time over issbench's (above 1: issbench is faster).</p>\n",
    );
    let mut any = false;
    for (i, (machine, rows)) in groups.iter().enumerate() {
        let rows = newest(rows);
        let mut peer: Vec<&&Row> = rows.iter().filter(|r| r.mode.is_peer()).collect();
        peer.sort_by_key(|r| (r.model.clone(), r.mode, r.head, r.batch, r.threads, r.seq));
        if peer.is_empty() {
            continue;
        }
        any = true;
        body.push_str(&format!("<h3>M{}: {}</h3>\n", i + 1, escape(&machine.name())));
        let mut t = Table::new([
            "model",
            "batch",
            "threads",
            "seq",
            "head",
            "mode",
            "issbench ms",
            "ONNX Runtime ms",
            "ratio",
            "peer",
        ])
        .numeric_from(1);
        for p in peer {
            let own_mode = if p.mode == Mode::OrtDense { Mode::Dense } else { Mode::Iss };
            let own = rows
                .iter()
                .find(|r| r.mode == own_mode && same_model(r, p) && config_of(r) == config_of(p));
            let mut row = vec![p.model.clone()];
            row.extend(config_cells(config_of(p)));
            row.extend([
                own_mode.to_string(),
                own.map(|r| format!("{:.2}", r.median_ms())).unwrap_or_default(),
                format!("{:.2}", p.median_ms()),
                own.map(|r| format!("{:.2}", p.median_ns / r.median_ns)).unwrap_or_default(),
                p.backend.clone(),
            ]);
            t.push(row);
        }
        body.push_str(&t.to_html());
    }
    if !any {
        body.push_str("<p>No ONNX Runtime rows: sweep with <code>--peer ort</code>.</p>\n");
    }
    body
}

fn compare_section(rows: &[Row]) -> Result<String, ReportError> {
    let c: Comparison = match compare::compare(rows, None) {
        Ok(c) => c,
        Err(ReportError::Empty(why)) => return Ok(format!("<p>No comparison: {}.</p>\n", escape(&why))),
        Err(e) => return Err(e),
    };
    let mut body = String::new();
    for w in &c.warnings {
        body.push_str(&format!("<p class=\"warn\">Warning: {}</p>\n", escape(w)));
    }
    body.push_str(&format!(
        "<p>Baseline: M{} {}.</p>\n",
        c.baseline + 1,
        escape(&c.machines[c.baseline].name())
    ));
    body.push_str(&format!(
        "<p>Geometric mean of each machine's time over M{}'s per mode, over the points both measured; a point is faster or slower only where the two medians' 95% intervals do not overlap.</p>\n",
        c.baseline + 1
    ));
    body.push_str(&compare::summary_table(&c).to_html());
    if let Some(t) = compare::speedup_table(&c) {
        body.push_str("<p>Speedup over dense on the same machine (geometric mean):</p>\n");
        body.push_str(&t.to_html());
    }
    for (title, svg) in compare::svgs(&c)? {
        body.push_str(&figure(&title, &svg));
    }
    body.push_str(&format!(
        "<details><summary>Every shared point ({})</summary>\n{}</details>\n",
        c.points.len(),
        compare::point_table(&c).to_html()
    ));
    Ok(body)
}

fn verification_section(groups: &[(Machine, Vec<Row>)]) -> String {
    let mut body = String::from(
        "<p>Every mode other than dense is checked against the dense model on the same inputs before it is timed; a point whose outputs differ beyond the tolerance is not timed (it is listed under rows to distrust). Largest relative output difference per machine, model and mode:</p>\n",
    );
    let mut t = Table::new(["machine", "model", "mode", "points", "largest relative error"]).numeric_from(3);
    for (i, (_, rows)) in groups.iter().enumerate() {
        let mut by: BTreeMap<(String, Mode), (usize, f64)> = BTreeMap::new();
        for r in newest(rows) {
            if let Some(e) = r.verify_max_rel {
                let v = by.entry((r.model.clone(), r.mode)).or_insert((0, 0.0));
                *v = (v.0 + 1, v.1.max(e));
            }
        }
        for ((model, mode), (n, worst)) in by {
            t.push([
                format!("M{}", i + 1),
                model,
                mode.to_string(),
                n.to_string(),
                format!("{worst:.2e}"),
            ]);
        }
    }
    if t.rows.is_empty() {
        body.push_str("<p>No verified rows.</p>\n");
    } else {
        body.push_str(&t.to_html());
    }
    body
}

fn suspect_section(groups: &[(Machine, Vec<Row>)]) -> String {
    let mut body = String::from(
        "<p>Rows flagged when measured (<code>above-ideal</code>, <code>noisy</code>, <code>rounds-disagree</code>, <code>busy-host</code>, <code>oversubscribed</code>: see results/README.md) and rows that failed.</p>\n",
    );
    let mut t = Table::new([
        "machine",
        "model",
        "mode",
        "batch",
        "threads",
        "seq",
        "median ms",
        "flags or failure",
    ])
    .numeric_from(3);
    for (i, (_, rows)) in groups.iter().enumerate() {
        for r in rows.iter().filter(|r| !r.flags.is_empty() || !r.ok()) {
            t.push([
                format!("M{}", i + 1),
                r.model.clone(),
                r.mode.to_string(),
                r.batch.to_string(),
                r.threads.to_string(),
                r.seq.to_string(),
                if r.ok() { format!("{:.3}", r.median_ms()) } else { String::new() },
                if r.ok() { r.flags.clone() } else { r.status.to_string() },
            ]);
        }
    }
    if t.rows.is_empty() {
        body.push_str("<p>None.</p>\n");
    } else {
        body.push_str(&t.to_html());
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;
    use crate::report::tests::row;

    #[test]
    fn a_page_with_every_section() {
        let mut rows = Vec::new();
        for (cpu, scale) in [("Fast CPU", 1.0), ("Slow CPU", 2.0)] {
            for (mode, ms) in [("dense", 100.0), ("iss", 10.0), ("csr", 40.0), ("ort-iss", 12.0)] {
                rows.push(Row {
                    cpu_model: cpu.into(),
                    model: "ptb-iss".into(),
                    source: "builtin:ptb-iss".into(),
                    preset: "ptb".into(),
                    hidden_full: "1500/1500".into(),
                    hidden_kept: "373/315".into(),
                    mode: Mode::parse(mode).unwrap(),
                    median_ns: ms * 1e6 * scale,
                    max_ns: ms * 2e6 * scale,
                    speedup_vs_dense: Some(100.0 / ms),
                    speedup_ci_low: Some(100.0 / ms * 0.95),
                    speedup_ci_high: Some(100.0 / ms * 1.05),
                    verify_max_rel: (mode != "dense").then_some(3e-7),
                    ideal_speedup: 9.83,
                    flags: if mode == "csr" { "noisy".into() } else { String::new() },
                    ..row()
                });
            }
        }
        rows.push(Row {
            status: Status::failed("x.npz: <truncated>"),
            ..row()
        });
        let html = page(&rows, &["a.csv".into(), "b<.csv".into()]).unwrap();
        for want in [
            "<h2>Machines</h2>",
            "<h2>The paper&#39;s PTB model</h2>",
            "10.59x speedup on CPU",
            "<td class=\"num\">10.00x [9.50, 10.50]</td>",
            "<h2>issbench against ONNX Runtime</h2>",
            "<h2>Machines compared</h2>",
            "M2: Slow CPU, 2 cores, avx512 — charts",
            "<h2>Verification</h2>",
            "3.00e-7",
            "failed: x.npz: &lt;truncated&gt;",
            "b&lt;.csv",
        ] {
            assert!(html.contains(want), "{want}");
        }
        assert!(html.matches("<svg").count() >= 5, "charts inline");
        assert!(!html.contains("<script") && !html.contains("http://") || html.contains("xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(!html.contains("src=\"http"), "nothing fetched");
    }
}
