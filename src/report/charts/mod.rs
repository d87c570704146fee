//! Charts drawn from result rows alone (so `issbench report` can redraw
//! them from CSV): SVG and PNG of each, with an embedded font (DejaVu Sans,
//! licence in assets/fonts) so the PNGs need no system font libraries.
//!
//! | file stem | what it shows |
//! |---|---|
//! | `speedup_vs_sparsity_b{B}` | measured speedup over dense (with its 95% interval) vs share of removed units, per hidden size and mode, with the ideal (multiply-add ratio) dashed |
//! | `time_vs_hidden_b{B}` | median time vs hidden size per mode and kept fraction (log-log), synthetic grids |
//! | `ptb_table`, `bidaf_table`, `rhn_table` | the paper's models (`ptb-*`, `bidaf-*`, `rhn-*`): dense / ISS / CSR median time per model, batch, threads and head setting |
//! | `ptb_vs_ort`, `bidaf_vs_ort`, `rhn_vs_ort` | the same against ONNX Runtime, where peer rows exist |
//! | `block_speedup_b{B}` | speedup over dense by block shape at the ISS model's weight count: csr (1x1), each bsr block, iss (whole units), per model |
//! | `precision_b{B}` | a model measured at several precisions: speedup over dense fp32 of dense and ISS in fp32, bf16 and int8, and of ONNX Runtime's fp32 and int8 rows |
//! | `latency_fine_hidden` | median time vs hidden size on the `full` preset's fine grid (latency hysteresis) |
//! | `gflops_vs_weights` | every point's GFLOP/s against the bytes of weights it reads per step, under the machine's FMA peak and memory caps |
//!
//! Every chart shows one machine ([`Row::machine_key`]): rows from several
//! are drawn into one folder per machine, never merged. Failed rows are
//! skipped, and of rows measuring the same point ([`Row::key`]) only the
//! newest counts; a chart without data is not drawn. The speedup, time and
//! latency charts use one configuration per preset (no head, the most
//! threads, the shortest sequence), named in their titles.

mod axis;
mod bars;
mod dots;
mod figures;
mod legend;
mod lines;
mod model;
mod render;
mod style;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::machines::machines;
use super::{ReportError, Row};
use figures::*;

pub(crate) use axis::{Axis, value_label};
pub(crate) use figures::first_size;
pub(crate) use model::{BarChart, Chart, DotChart, DotSeries, WithInterval, marker};
pub(crate) use render::{save, svg_text};
pub(crate) use style::colour;
pub use style::register_font;

/// The charts one machine's rows have data for, by file stem.
pub(crate) fn charts_for(rows: &[Row]) -> Vec<(String, Chart)> {
    // Newest ok row per point.
    let mut newest: BTreeMap<String, &Row> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.ok()) {
        let key = r.key();
        if newest.get(&key).is_none_or(|old| old.timestamp <= r.timestamp) {
            newest.insert(key, r);
        }
    }
    // Sparse GEMM problems (`layers` 0) are not LSTMs: every chart but the
    // block shapes' is about LSTMs, so they stay in the CSV, that chart
    // and `compare`.
    let all: Vec<&Row> = newest.into_values().collect();
    let ok: Vec<&Row> = all.iter().copied().filter(|r| r.layers > 0).collect();
    let mut charts: Vec<(String, Chart)> = Vec::new();
    for b in batches(&all) {
        if let Some(c) = speedup_vs_sparsity(&ok, b) {
            charts.push((format!("speedup_vs_sparsity_b{b}"), c));
        }
        if let Some(c) = time_vs_hidden(&ok, b) {
            charts.push((format!("time_vs_hidden_b{b}"), c));
        }
        if let Some(c) = precision_compounding(&ok, b) {
            charts.push((format!("precision_b{b}"), c));
        }
        if let Some(c) = block_speedup(&all, b) {
            charts.push((format!("block_speedup_b{b}"), c));
        }
    }
    for family in FAMILIES {
        if let Some(c) = family_table(&ok, family) {
            charts.push((format!("{}_table", family.prefix), c));
        }
        if let Some(c) = family_vs_ort(&ok, family) {
            charts.push((format!("{}_vs_ort", family.prefix), c));
        }
    }
    if let Some(c) = latency_fine_hidden(&ok) {
        charts.push(("latency_fine_hidden".into(), c));
    }
    if let Some(c) = gflops_vs_weights(&ok) {
        charts.push(("gflops_vs_weights".into(), c));
    }
    charts
}

/// The rows of each machine, by machine, in the order machines first appear.
pub(crate) fn by_machine(rows: &[Row]) -> Vec<(super::machines::Machine, Vec<Row>)> {
    machines(rows)
        .into_iter()
        .map(|m| {
            let own = rows.iter().filter(|r| r.machine_key() == m.key).cloned().collect();
            (m, own)
        })
        .collect()
}

/// Draws every chart the rows have data for, each as SVG and PNG, and
/// returns the files written: into `out_dir` when the rows come from one
/// machine, else into one folder per machine (`out_dir/m1-NAME`, ...).
/// Rows without data for any chart give an empty list, not an error.
pub fn draw_all(rows: &[Row], out_dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let groups = by_machine(rows);
    let several = groups.len() > 1;
    let mut files = Vec::new();
    for (i, (machine, own)) in groups.iter().enumerate() {
        let dir = if several {
            out_dir.join(machine.slug(i + 1))
        } else {
            out_dir.to_path_buf()
        };
        for (stem, chart) in charts_for(own) {
            files.extend(save(&chart, &dir, &stem)?);
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::axis::tick_label;
    use super::legend::legend_place;
    use super::*;
    use crate::mode::Mode;
    use crate::report::Status;
    use crate::report::tests::row;

    fn rows() -> Vec<Row> {
        let mut rows = Vec::new();
        for h in [256usize, 512] {
            for batch in [1usize, 10] {
                let dense_ms = h as f64 * batch as f64 / 100.0;
                rows.push(Row {
                    hidden_full: format!("{h}/{h}"),
                    batch,
                    median_ns: dense_ms * 1e6,
                    ..row()
                });
                for k in [0.5, 0.25] {
                    for (mode, gain) in [("iss", 1.0 / (k * k)), ("csr", 1.0 / k)] {
                        rows.push(Row {
                            model: format!("lstm2x{h}-k{k}"),
                            hidden_full: format!("{h}/{h}"),
                            kept_fraction: k,
                            mode: Mode::parse(mode).unwrap(),
                            batch,
                            median_ns: dense_ms * 1e6 / gain,
                            speedup_vs_dense: Some(gain * 0.8),
                            ideal_speedup: gain,
                            nonzero_weights: (1_048_576.0 * k * k) as usize,
                            macs_per_step: (1_048_576.0 * k * k) as usize,
                            ..row()
                        });
                    }
                }
            }
        }
        for (mode, ms) in [
            ("dense", 140.0),
            ("iss", 15.0),
            ("csr", 95.0),
            ("ort-dense", 160.0),
            ("ort-iss", 13.0),
        ] {
            rows.push(Row {
                model: "ptb-iss".into(),
                preset: "ptb".into(),
                hidden_full: "1500/1500".into(),
                hidden_kept: "373/315".into(),
                mode: Mode::parse(mode).unwrap(),
                batch: 10,
                median_ns: ms * 1e6,
                ..row()
            });
        }
        for (model, ms) in [("bidaf-iss", 3.0), ("bidaf-out-iss", 2.0)] {
            for (mode, factor) in [("dense", 1.0), ("iss", 0.5), ("csr", 1.5)] {
                rows.push(Row {
                    model: model.into(),
                    preset: "bidaf".into(),
                    cell: "bilstm".into(),
                    hidden_full: "100+100/100+100".into(),
                    hidden_kept: "84+90/38+46".into(),
                    mode: Mode::parse(mode).unwrap(),
                    batch: 10,
                    median_ns: ms * factor * 1e6,
                    ..row()
                });
            }
        }
        for h in [64usize, 96, 128] {
            rows.push(Row {
                preset: "full".into(),
                model: format!("lstm2x{h}-k1"),
                source: format!("synthetic:lstm2x{h}-k1"),
                hidden_full: format!("{h}/{h}"),
                median_ns: h as f64 * 1e4,
                ..row()
            });
        }
        rows.push(Row {
            status: Status::failed("broken.safetensors: corrupt"),
            model: "broken".into(),
            ..row()
        });
        for r in &mut rows {
            r.source = format!("synthetic:{}@{}", r.model, r.hidden_full);
        }
        rows
    }

    #[test]
    fn every_chart_renders_with_its_series() {
        let dir = tempfile::tempdir().unwrap();
        let files = draw_all(&rows(), dir.path()).unwrap();
        for stem in [
            "speedup_vs_sparsity_b1",
            "speedup_vs_sparsity_b10",
            "time_vs_hidden_b1",
            "time_vs_hidden_b10",
            "ptb_table",
            "ptb_vs_ort",
            "bidaf_table",
            "latency_fine_hidden",
            "gflops_vs_weights",
        ] {
            let png = dir.path().join(format!("{stem}.png"));
            let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{stem}: {e}"));
            assert!(
                bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000,
                "{stem}: {} bytes",
                bytes.len()
            );
            assert!(files.contains(&png));
        }
        let svg = |stem: &str| std::fs::read_to_string(dir.path().join(format!("{stem}.svg"))).unwrap();
        let speedup = svg("speedup_vs_sparsity_b10");
        for name in [
            "h256 iss",
            "h256 csr",
            "h256, h512 ideal",
            "h1500 ideal",
            "Test CPU",
            "batch 10, 2 threads, seq 30",
        ] {
            assert!(speedup.contains(name), "{name}");
        }
        // The synthetic sizes' ideal lines are one line (the PTB and BiDAF
        // models' differ).
        assert_eq!(speedup.matches("ideal").count(), 3);
        assert_eq!(files.len(), 18, "{files:?}");
        // Two models of one family: one group per model and configuration.
        let bidaf = svg("bidaf_table");
        for name in [
            "BiDAF bidirectional LSTMs",
            "bidaf-iss b10 t2",
            "bidaf-out-iss b10 t2",
            "1.00",
            "4.50",
        ] {
            assert!(bidaf.contains(name), "{name}");
        }
        for name in [
            "dense",
            "iss kept 0.25",
            "iss kept 0.5",
            "csr kept 0.25",
            "median time per forward pass (ms, log scale)",
        ] {
            assert!(svg("time_vs_hidden_b1").contains(name), "{name}");
        }
        for name in ["dense", "iss", "csr", "b10 t2", "140", "15.0", "95.0"] {
            assert!(svg("ptb_table").contains(name), "{name}");
        }
        assert!(svg("latency_fine_hidden").contains("dense b1"));
        assert!(svg("ptb_table").contains("373/315"));
        assert!(svg("gflops_vs_weights").contains("FMA peak, 2 threads: 340 GFLOP/s"));
        assert!(svg("gflops_vs_weights").contains("weights from memory, b1: 11 GFLOP/s"));
        assert!(svg("ptb_vs_ort").contains("ort-iss") && !svg("ptb_vs_ort").contains(">csr<"));
        assert!(!svg("ptb_table").contains("ort-dense"));
        assert!(!svg("gflops_vs_weights").contains("broken"), "failed rows are skipped");
        // Ticks of the hidden-size axis at the sizes measured.
        let hidden = svg("time_vs_hidden_b1");
        let tick = |v: &str| hidden.contains(&format!(">\n{v}\n</text>"));
        assert!(tick("256") && tick("512") && !tick("300"), "{hidden}");
        // No leftover temporary files.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    }

    #[test]
    fn no_rows_no_charts() {
        let dir = tempfile::tempdir().unwrap();
        assert!(draw_all(&[], dir.path()).unwrap().is_empty());
        let failed = vec![Row {
            status: Status::failed("x"),
            ..row()
        }];
        assert!(draw_all(&failed, dir.path()).unwrap().is_empty());
    }

    #[test]
    fn several_machines_get_a_folder_each() {
        let dir = tempfile::tempdir().unwrap();
        let mut all = rows();
        // The same machine on another host: merged with the first.
        all.extend(rows().into_iter().map(|r| Row {
            host: "node-2".into(),
            timestamp: "2026-12-01T07:00:00Z".into(),
            ..r
        }));
        all.extend(rows().into_iter().map(|r| Row {
            cpu_model: "Other CPU (family 25 model 17)".into(),
            threads: 8,
            peak_gflops: 900.0,
            timestamp: "2026-12-02T07:00:00Z".into(),
            ..r
        }));
        let files = draw_all(&all, dir.path()).unwrap();
        assert_eq!(files.len(), 36, "{files:?}");
        let first = dir.path().join("m1-test-cpu-2-cores-avx512");
        let second = dir.path().join("m2-other-cpu-family-25-model-17-2-cores-avx512");
        assert!(first.join("ptb_table.png").is_file() && second.join("ptb_table.png").is_file());
        assert!(!dir.path().join("ptb_table.png").exists(), "no chart merges machines");
        let other = std::fs::read_to_string(second.join("gflops_vs_weights.svg")).unwrap();
        assert!(other.contains("FMA peak, 8 threads: 900") && !other.contains("340"), "{other}");
        let speedup = std::fs::read_to_string(first.join("speedup_vs_sparsity_b1.svg")).unwrap();
        assert!(speedup.contains("Test CPU — 2026-12-01") && !speedup.contains("node-2"));
    }

    #[test]
    fn a_cap_takes_the_best_reading_of_its_machine() {
        let dir = tempfile::tempdir().unwrap();
        let mut all = rows();
        // The same machine and threads, re-measured in a slow moment.
        all.extend(rows().into_iter().map(|r| Row {
            batch: r.batch + 1,
            peak_gflops: 100.0,
            bandwidth_gbs: 30.0,
            ..r
        }));
        draw_all(&all, dir.path()).unwrap();
        let chart = std::fs::read_to_string(dir.path().join("gflops_vs_weights.svg")).unwrap();
        assert!(chart.contains("FMA peak, 2 threads: 340 GFLOP/s"), "{chart}");
        assert!(chart.contains("weights from memory, b1: 15 GFLOP/s (30.0 GB/s)"), "{chart}");
        assert_eq!(chart.matches("FMA peak").count(), 1);
    }

    #[test]
    fn newest_row_of_a_point_counts() {
        let dir = tempfile::tempdir().unwrap();
        let mut all = rows();
        let old = Row {
            timestamp: "2020-01-01T00:00:00Z".into(),
            model: "ptb-iss".into(),
            preset: "ptb".into(),
            hidden_full: "1500/1500".into(),
            hidden_kept: "373/315".into(),
            batch: 10,
            median_ns: 777.0e6,
            ..row()
        };
        all.insert(0, old);
        draw_all(&all, dir.path()).unwrap();
        let ptb = std::fs::read_to_string(dir.path().join("ptb_table.svg")).unwrap();
        assert!(ptb.contains("140") && !ptb.contains("777"));
    }

    #[test]
    fn labels_and_legend_place() {
        assert_eq!(
            [2822.4, 85.43, 1.234, 0.01523, 0.0].map(value_label),
            ["2822", "85.4", "1.23", "0.0152", "0"].map(String::from)
        );
        assert_eq!(
            [1.0, 2.5, 0.03, 1500.0, 2e6].map(tick_label),
            ["1", "2.5", "0.03", "1500", "2e6"].map(String::from)
        );
        // Data in the upper left: the legend goes to the upper right.
        let samples: Vec<(i32, i32)> = (0..100).map(|i| (i, i)).collect();
        assert_eq!(legend_place(&samples, (0..1000, 0..600), (200, 100)), (788, 12));
        assert_eq!(legend_place(&[], (0..1000, 0..600), (200, 100)), (12, 12));
    }
}
