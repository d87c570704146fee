//! Which chart each kind of result gets, from one machine's rows alone.

use std::collections::{BTreeMap, BTreeSet};

use plotters::prelude::*;

use super::axis::{Axis, value_label};
use super::model::*;
use super::style::*;
use crate::mode::Mode;
use crate::precision::Precision;
use crate::report::Row;

/// "machine — 2026-11-29": who measured (the machine's name), and the
/// newest date.
pub(crate) fn provenance(rows: &[&Row]) -> String {
    let names: Vec<String> = rows
        .iter()
        .map(|r| if r.label.is_empty() { r.cpu_model.clone() } else { r.label.clone() })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let date = rows.iter().map(|r| r.timestamp.get(..10).unwrap_or("")).max().unwrap_or("");
    let names = if names.len() > 2 {
        format!("{} and {} more machines", names[0], names.len() - 1)
    } else {
        names.join(", ")
    };
    format!("{names} — {date}")
}

/// The first number of a `/`-separated size list.
pub(crate) fn first_size(sizes: &str) -> f64 {
    sizes.split(['/', '+']).next().and_then(|s| s.trim().parse().ok()).unwrap_or(0.0)
}

/// Of each preset and kernel, the rows of one configuration: no head, the
/// most threads, the shortest sequence (what the charts compare across
/// sizes and modes).
pub(super) fn main_config<'a>(rows: &[&'a Row]) -> Vec<&'a Row> {
    let mut by: BTreeMap<(&str, &str), Vec<&'a Row>> = BTreeMap::new();
    for r in rows {
        by.entry((r.backend_family(), &r.preset)).or_default().push(r);
    }
    let mut out = Vec::new();
    for group in by.into_values() {
        let plain: Vec<&Row> = group.into_iter().filter(|r| !r.head).collect();
        let threads = plain.iter().map(|r| r.threads).max().unwrap_or(0);
        let seq = plain.iter().filter(|r| r.threads == threads).map(|r| r.seq).min().unwrap_or(0);
        out.extend(plain.into_iter().filter(|r| r.threads == threads && r.seq == seq));
    }
    out
}

/// The threads and sequence lengths of `rows`, for titles: `2 threads, seq 30`.
pub(super) fn config_text(rows: &[&Row]) -> String {
    let list = |v: BTreeSet<usize>| v.iter().map(usize::to_string).collect::<Vec<_>>().join("/");
    let threads: BTreeSet<usize> = rows.iter().map(|r| r.threads).collect();
    let seqs: BTreeSet<usize> = rows.iter().map(|r| r.seq).collect();
    let t = if threads.len() == 1 && threads.contains(&1) {
        "1 thread".to_string()
    } else {
        format!("{} threads", list(threads))
    };
    format!("{t}, seq {}", list(seqs))
}

/// Series label of each hidden size list: `h1024` by its first size, the
/// whole list where two lists share a first size.
pub(super) fn hidden_names(rows: &[&Row]) -> BTreeMap<String, String> {
    let lists: BTreeSet<&str> = rows.iter().map(|r| r.hidden_full.as_str()).collect();
    let mut firsts: BTreeMap<u64, usize> = BTreeMap::new();
    for l in &lists {
        *firsts.entry(first_size(l) as u64).or_default() += 1;
    }
    lists
        .into_iter()
        .map(|l| {
            let f = first_size(l) as u64;
            let name = if firsts[&f] > 1 { format!("h{l}") } else { format!("h{f}") };
            (l.to_string(), name)
        })
        .collect()
}

pub(super) fn batches(rows: &[&Row]) -> BTreeSet<usize> {
    rows.iter().map(|r| r.batch).collect()
}

pub(super) fn sorted(mut pts: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    pts
}

/// A point and its interval.
type Pt = ((f64, f64), Option<Interval>);

/// Points sorted by x with their intervals kept alongside.
fn sorted_with(mut pts: Vec<Pt>) -> (Vec<(f64, f64)>, Vec<Option<Interval>>) {
    pts.sort_by(|a, b| a.0.0.total_cmp(&b.0.0).then(a.0.1.total_cmp(&b.0.1)));
    pts.into_iter().unzip()
}

pub(super) fn speedup_vs_sparsity(rows: &[&Row], batch: usize) -> Option<Chart> {
    let sel: Vec<&Row> = main_config(rows)
        .into_iter()
        .filter(|r| r.batch == batch && (r.mode == Mode::Iss || r.mode == Mode::Csr) && r.speedup_vs_dense.is_some())
        .collect();
    if sel.is_empty() {
        return None;
    }
    let names = hidden_names(&sel);
    // (first size, hidden list) -> (mode, precision) -> points with their
    // intervals; the ideal (multiply-add ratio) from the fp32 iss rows.
    type Key = (u64, String);
    let mut measured: BTreeMap<Key, BTreeMap<(Mode, Precision), Vec<Pt>>> = BTreeMap::new();
    let mut ideal: BTreeMap<Key, Vec<(f64, f64)>> = BTreeMap::new();
    for r in &sel {
        let key = (first_size(&r.hidden_full) as u64, r.hidden_full.clone());
        let x = (1.0 - r.kept_fraction) * 100.0;
        let pts = measured
            .entry(key.clone())
            .or_default()
            .entry((r.mode, r.precision))
            .or_insert_with(|| vec![((0.0, 1.0), None)]);
        pts.push(((x, r.speedup_vs_dense.unwrap_or(1.0)), r.speedup_ci_low.zip(r.speedup_ci_high)));
        if r.mode == Mode::Iss && r.precision == Precision::Fp32 {
            ideal.entry(key).or_insert_with(|| vec![(0.0, 1.0)]).push((x, r.ideal_speedup));
        }
    }
    let mut series = Vec::new();
    for (i, (key, modes)) in measured.into_iter().enumerate() {
        // One colour family per hidden size: iss the colour, csr darker and
        // thinner with squares.
        let base = colour(i);
        let name = &names[&key.1];
        for ((mode, precision), pts) in modes {
            let (pts, errors) = sorted_with(pts);
            let suffix = if precision == Precision::Fp32 {
                String::new()
            } else {
                format!(" {precision}")
            };
            let s = Series::new(format!("{name} {mode}{suffix}"), pts, base).with_errors(errors);
            series.push(match (mode, precision) {
                (Mode::Iss, Precision::Fp32) => s,
                // Reduced precision: lighter, with triangles (bf16) or diamonds (int8).
                (_, Precision::Bf16) => Series {
                    colour: mix(base, WHITE, 0.25),
                    ..s.styled(Stroke::Thin, Marker::Triangle)
                },
                (_, Precision::Int8) => Series {
                    colour: mix(base, WHITE, 0.45),
                    ..s.styled(Stroke::Thin, Marker::Diamond)
                },
                _ => Series {
                    colour: mix(base, BLACK, 0.45),
                    ..s.styled(Stroke::Thin, Marker::Square)
                },
            });
        }
    }
    // The ideal depends on the shapes only: sizes whose ideal lines are the
    // same share one dashed line and one legend entry.
    // Rounded points -> (sizes, points).
    type Ideal = (Vec<String>, Vec<(f64, f64)>);
    let mut ideals: BTreeMap<Vec<(i64, i64)>, Ideal> = BTreeMap::new();
    for (key, pts) in ideal {
        let pts = sorted(pts);
        let rounded = pts
            .iter()
            .map(|(x, y)| ((x * 100.0).round() as i64, (y * 1000.0).round() as i64))
            .collect();
        let entry = ideals.entry(rounded).or_insert_with(|| (Vec::new(), pts));
        entry.0.push(names[&key.1].clone());
    }
    let one = ideals.len() == 1;
    for (i, (sizes, pts)) in ideals.into_values().enumerate() {
        let name = if one {
            "ideal (multiply-add ratio)".to_string()
        } else {
            format!("{} ideal", sizes.join(", "))
        };
        let col = if one { RGBColor(120, 120, 120) } else { mix(colour(i), WHITE, 0.4) };
        series.push(Series::new(name, pts, col).styled(Stroke::Dashed, Marker::Dot));
    }
    Some(Chart::Lines(LineChart {
        title: format!(
            "Speedup over dense vs removed hidden units, batch {batch}, {} — {}",
            config_text(&sel),
            provenance(&sel)
        ),
        x: Axis::linear("hidden units removed by ISS (%)"),
        y: Axis::log("speedup over dense (×, log scale; whiskers: 95% interval)"),
        series,
    }))
}

pub(super) fn time_vs_hidden(rows: &[&Row], batch: usize) -> Option<Chart> {
    let sel: Vec<&Row> = main_config(rows)
        .into_iter()
        .filter(|r| {
            r.batch == batch && r.preset != "ptb" && r.preset != "full" && r.model.starts_with("lstm") && r.precision == Precision::Fp32
        })
        .collect();
    let sizes: BTreeSet<u64> = sel.iter().map(|r| first_size(&r.hidden_full) as u64).collect();
    if sizes.len() < 2 {
        return None;
    }
    // (mode, kept in hundredths) -> points. Dense time does not depend on
    // the kept fraction: one series.
    let mut by: BTreeMap<(Mode, u64), Vec<(f64, f64)>> = BTreeMap::new();
    for r in &sel {
        let k = if r.mode == Mode::Dense {
            100
        } else {
            (r.kept_fraction * 100.0).round() as u64
        };
        by.entry((r.mode, k)).or_default().push((first_size(&r.hidden_full), r.median_ms()));
    }
    // Colour families per mode, dark (most kept) to light.
    let mut family: BTreeMap<Mode, Vec<u64>> = BTreeMap::new();
    for (mode, k) in by.keys() {
        family.entry(*mode).or_default().push(*k);
    }
    for ks in family.values_mut() {
        ks.sort_unstable_by(|a, b| b.cmp(a));
        ks.dedup();
    }
    let mut series = Vec::new();
    for ((mode, k), pts) in &by {
        let ks = &family[mode];
        let i = ks.iter().position(|x| x == k).unwrap_or(0);
        let col = shade(mode_colour(*mode), i, ks.len());
        let name = if *mode == Mode::Dense {
            "dense".to_string()
        } else {
            format!("{mode} kept {}", *k as f64 / 100.0)
        };
        let s = Series::new(name, sorted(pts.clone()), col);
        series.push(if *mode == Mode::Csr {
            s.styled(Stroke::Thin, Marker::Square)
        } else {
            s
        });
    }
    series.sort_by_key(|s| !s.name.starts_with("dense"));
    Some(Chart::Lines(LineChart {
        title: format!(
            "Time per forward pass vs hidden size, batch {batch}, {} — {}",
            config_text(&sel),
            provenance(&sel)
        ),
        x: Axis::log("hidden units in the first layer of the full model (log scale)")
            .with_ticks_at(sizes.iter().map(|&s| s as f64).collect()),
        y: Axis::log("median time per forward pass (ms, log scale)"),
        series,
    }))
}

/// A family of built-in models with a table chart of its own: the prefix
/// its models' names start with, and what the title calls it.
pub(super) struct Family {
    pub prefix: &'static str,
    pub title: &'static str,
}

/// The families charted as tables: the paper's three experiments.
pub(super) const FAMILIES: &[Family] = &[
    Family {
        prefix: "ptb",
        title: "PTB LSTM",
    },
    Family {
        prefix: "bidaf",
        title: "BiDAF bidirectional LSTMs",
    },
    Family {
        prefix: "rhn",
        title: "PTB RHN (depth 10)",
    },
];

/// Dense / ISS / CSR median times of `family`'s rows.
pub(super) fn family_table(rows: &[&Row], family: &Family) -> Option<Chart> {
    family_bars(rows, family, &[Mode::Dense, Mode::Iss, Mode::Csr], "dense / ISS / CSR")
}

/// issbench against ONNX Runtime on `family`'s models, when peer rows exist.
pub(super) fn family_vs_ort(rows: &[&Row], family: &Family) -> Option<Chart> {
    let peer: Vec<&Row> = rows
        .iter()
        .copied()
        .filter(|r| r.mode.is_peer() && r.precision == Precision::Fp32)
        .collect();
    let configs = configs_of(&peer);
    let sel: Vec<&Row> = rows
        .iter()
        .copied()
        .filter(|r| configs.contains(&(r.model.as_str(), r.head, r.batch, r.threads)))
        .collect();
    family_bars(
        &sel,
        family,
        &[Mode::Dense, Mode::OrtDense, Mode::Iss, Mode::OrtIss],
        "issbench vs ONNX Runtime",
    )
}

/// Most groups a family chart shows: above it, configurations with the
/// head are left out (the layers are what the experiments compare).
const MAX_GROUPS: usize = 16;

/// The (model, head, batch, threads) configurations of `rows`.
fn configs_of<'a>(rows: &[&'a Row]) -> BTreeSet<(&'a str, bool, usize, usize)> {
    rows.iter().map(|r| (r.model.as_str(), r.head, r.batch, r.threads)).collect()
}

/// Grouped bars of `family`'s rows' median times for `modes`, one group
/// per model (when there are several), batch, threads and head setting, on
/// a linear axis with each bar's value printed.
pub(super) fn family_bars(rows: &[&Row], family: &Family, modes: &[Mode], what: &str) -> Option<Chart> {
    let mine: Vec<&Row> = rows
        .iter()
        .copied()
        .filter(|r| r.model.starts_with(family.prefix) && modes.contains(&r.mode) && r.precision == Precision::Fp32)
        .collect();
    let seq = mine.iter().map(|r| r.seq).min()?;
    let mut sel: Vec<&Row> = mine.into_iter().filter(|r| r.seq == seq).collect();
    if configs_of(&sel).len() > MAX_GROUPS && sel.iter().any(|r| !r.head) {
        sel.retain(|r| !r.head);
    }
    let configs = configs_of(&sel);
    let models: BTreeSet<&str> = configs.iter().map(|c| c.0).collect();
    let modes: Vec<Mode> = modes.iter().copied().filter(|m| sel.iter().any(|r| r.mode == *m)).collect();
    let groups = configs
        .iter()
        .map(|&(model, head, b, t)| {
            let name = if models.len() > 1 { format!("{model} ") } else { String::new() };
            format!("{name}b{b} t{t}{}", if head { " +head" } else { "" })
        })
        .collect();
    let values = configs
        .iter()
        .map(|&(model, head, b, t)| {
            modes
                .iter()
                .map(|m| {
                    sel.iter()
                        .filter(|r| r.model == model && r.head == head && r.batch == b && r.threads == t && r.mode == *m)
                        .max_by(|a, b| a.timestamp.cmp(&b.timestamp))
                        .map(|r| r.median_ms())
                })
                .collect()
        })
        .collect();
    let sizes = if models.len() == 1 {
        sel.iter()
            .find(|r| r.mode == Mode::Iss)
            .or(sel.first())
            .map(|r| format!(" {} vs ISS {}", r.hidden_full, r.hidden_kept))
            .unwrap_or_default()
    } else {
        String::new()
    };
    Some(Chart::Bars(BarChart {
        title: format!("{}{sizes}, seq {seq}: {what} — {}", family.title, provenance(&sel)),
        y: Axis::linear("median time per forward pass (ms)"),
        groups,
        bars: modes.iter().map(|m| (m.to_string(), mode_colour(*m))).collect(),
        values,
        value_label,
        x_label: "configuration: batch (b), threads (t), +head: with embedding and softmax head".into(),
    }))
}

pub(super) fn latency_fine_hidden(rows: &[&Row]) -> Option<Chart> {
    let full: Vec<&Row> = rows
        .iter()
        .copied()
        .filter(|r| r.preset == "full" && r.precision == Precision::Fp32)
        .collect();
    let sel = main_config(&full);
    if sel.len() < 2 {
        return None;
    }
    let mut by: BTreeMap<(Mode, usize), Vec<(f64, f64)>> = BTreeMap::new();
    for r in &sel {
        by.entry((r.mode, r.batch))
            .or_default()
            .push((first_size(&r.hidden_full), r.median_ms()));
    }
    let series = by
        .into_iter()
        .enumerate()
        .map(|(i, ((mode, b), pts))| Series::new(format!("{mode} b{b}"), sorted(pts), colour(i)))
        .collect();
    Some(Chart::Lines(LineChart {
        title: format!("Latency on the fine hidden-size grid, {} — {}", config_text(&sel), provenance(&sel)),
        x: Axis::linear("hidden units in the first layer"),
        y: Axis::log("median time per forward pass (ms, log scale)"),
        series,
    }))
}

/// Bytes of weights a mode reads per step: 4 per weight for dense and
/// iss, 8 per nonzero for csr (value and column index).
pub(crate) fn weight_bytes(r: &Row) -> f64 {
    r.nonzero_weights as f64 * if r.mode == Mode::Csr { 8.0 } else { 4.0 }
}

/// GFLOP/s against the bytes of weights each point reads per step, with
/// the machine's FMA peak and, per batch, the rate at which streaming the
/// weights from memory every step would cap a dense model. Points left of
/// the caches' size run above that cap; a roofline (GFLOP/s against FLOP
/// per byte) would stack them in one column per batch, as FLOP per byte
/// of weights is batch/2 for every dense shape.
pub(super) fn gflops_vs_weights(rows: &[&Row]) -> Option<Chart> {
    // fp32 only: a bf16 or int8 "GFLOP/s" is not bounded by the fp32 peak.
    let sel: Vec<&Row> = rows
        .iter()
        .copied()
        .filter(|r| r.gflops > 0.0 && r.nonzero_weights > 0 && r.precision == Precision::Fp32)
        .collect();
    if sel.is_empty() {
        return None;
    }
    let batches: Vec<usize> = batches(&sel).into_iter().collect();
    let mut by: BTreeMap<(Mode, usize), Vec<(f64, f64)>> = BTreeMap::new();
    for r in &sel {
        by.entry((r.mode, r.batch)).or_default().push((weight_bytes(r) / 1e6, r.gflops));
    }
    let mut series: Vec<Series> = by
        .into_iter()
        .map(|((mode, b), pts)| {
            let i = batches.iter().position(|&x| x == b).unwrap_or(0);
            Series::new(format!("{mode} b{b}"), sorted(pts), mode_colour(mode)).styled(Stroke::None, marker(i))
        })
        .collect();
    let (xlo, xhi) = sel
        .iter()
        .map(|r| weight_bytes(r) / 1e6)
        .fold((f64::INFINITY, 0.0f64), |(a, b), x| (a.min(x), b.max(x)));
    let (x0, x1) = (xlo / 1.5, xhi * 1.5);
    // The best reading of the limits per thread count: other tenants only
    // make a reading low, and a cap below the points it bounds misleads.
    let mut limits: BTreeMap<usize, (f64, f64)> = BTreeMap::new();
    for r in sel.iter().filter(|r| r.peak_gflops > 0.0 && r.bandwidth_gbs > 0.0) {
        let l = limits.entry(r.threads).or_insert((0.0, 0.0));
        *l = (l.0.max(r.peak_gflops), l.1.max(r.bandwidth_gbs));
    }
    let grey = RGBColor(110, 110, 110);
    if let Some((&threads, &(peak, bw))) = limits.iter().next_back() {
        series.push(
            Series::new(
                format!("FMA peak, {threads} threads: {peak:.0} GFLOP/s"),
                vec![(x0, peak), (x1, peak)],
                grey,
            )
            .styled(Stroke::Dashed, Marker::None),
        );
        for (i, b) in batches.iter().enumerate() {
            let cap = bw * *b as f64 / 2.0;
            if cap < peak {
                series.push(
                    Series::new(
                        format!("weights from memory, b{b}: {cap:.0} GFLOP/s ({bw:.1} GB/s)"),
                        vec![(x0, cap), (x1, cap)],
                        shade(RGBColor(180, 120, 40), i, batches.len()),
                    )
                    .styled(Stroke::Dashed, Marker::None),
                );
            }
        }
    }
    Some(Chart::Lines(LineChart {
        title: format!("GFLOP/s vs bytes of weights read per step — {}", provenance(&sel)),
        x: Axis::log("weights read per step (MB, log scale; csr: values and indices)"),
        y: Axis::log("GFLOP/s (log scale)"),
        series,
    }))
}

/// How ISS, block sparsity and reduced precision compound on a recurrent
/// model: speedup over dense fp32 of dense, ISS and bsr in the default
/// block at each precision measured, and of ONNX Runtime's rows, one group
/// per threads and head setting, for one batch size; drawn where a model
/// was measured at more than one precision.
pub(super) fn precision_compounding(rows: &[&Row], batch: usize) -> Option<Chart> {
    let default_block = crate::mode::BlockShape::DEFAULT.to_string();
    let sel: Vec<&Row> = rows
        .iter()
        .copied()
        .filter(|r| r.batch == batch && r.layers > 0)
        .filter(|r| matches!(r.mode.model_mode(), Mode::Dense | Mode::Iss) || (r.mode == Mode::Bsr && r.block == default_block))
        .collect();
    let precisions: BTreeSet<Precision> = sel.iter().map(|r| r.precision).collect();
    if precisions.len() < 2 {
        return None;
    }
    // One model (the first by name among those at several precisions), its shortest sequence.
    let model = sel
        .iter()
        .filter(|r| r.precision != Precision::Fp32)
        .map(|r| r.model.as_str())
        .min()?;
    let seq = sel.iter().filter(|r| r.model == model).map(|r| r.seq).min()?;
    let sel: Vec<&Row> = sel.into_iter().filter(|r| r.model == model && r.seq == seq).collect();
    let bars: Vec<(Mode, Precision)> = Mode::ALL
        .iter()
        .flat_map(|&m| Precision::ALL.map(|p| (m, p)))
        .filter(|k| sel.iter().any(|r| (r.mode, r.precision) == *k))
        .collect();
    let configs: BTreeSet<(bool, usize)> = sel.iter().map(|r| (r.head, r.threads)).collect();
    let values = configs
        .iter()
        .map(|&(head, t)| {
            bars.iter()
                .map(|&(m, p)| {
                    sel.iter()
                        .filter(|r| r.head == head && r.threads == t && r.mode == m && r.precision == p)
                        .max_by(|a, b| a.timestamp.cmp(&b.timestamp))
                        .and_then(|r| r.speedup_vs_dense)
                })
                .collect()
        })
        .collect();
    let colour_of = |m: Mode, p: Precision| {
        let base = mode_colour(m);
        match p {
            Precision::Fp32 => base,
            Precision::Bf16 => mix(base, WHITE, 0.35),
            Precision::Int8 => mix(base, BLACK, 0.35),
        }
    };
    let sizes = sel
        .iter()
        .find(|r| r.mode == Mode::Iss)
        .map(|r| format!(" {} vs ISS {}", r.hidden_full, r.hidden_kept))
        .unwrap_or_default();
    Some(Chart::Bars(BarChart {
        title: format!(
            "{model}{sizes}: ISS, blocks and precision compounding, batch {batch}, seq {seq} — {}",
            provenance(&sel)
        ),
        y: Axis::linear("speedup over dense fp32 (×)"),
        groups: configs
            .iter()
            .map(|&(head, t)| format!("t{t}{}", if head { " +head" } else { "" }))
            .collect(),
        bars: bars
            .iter()
            .map(|&(m, p)| {
                let block = if m == Mode::Bsr {
                    format!(" {default_block}")
                } else {
                    String::new()
                };
                (format!("{m}{block} {p}"), colour_of(m, p))
            })
            .collect(),
        values,
        value_label,
        x_label: "configuration: threads (t), +head: with embedding and softmax head".into(),
    }))
}

/// Block sparsity between its two ends, for one batch size: speedup over
/// dense against the block shape at one weight count (CSR, 1x1, at one end;
/// ISS, whole units, at the other), one series per model, with the ideal
/// (the multiply-add ratio) dashed where the models share it.
pub(super) fn block_speedup(rows: &[&Row], batch: usize) -> Option<Chart> {
    let sel: Vec<&Row> = main_config(rows)
        .into_iter()
        .filter(|r| {
            r.batch == batch
                && r.precision == Precision::Fp32
                && matches!(r.mode, Mode::Iss | Mode::Csr | Mode::Bsr)
                && r.speedup_vs_dense.is_some()
        })
        .collect();
    // Models (by name and sizes) that have bsr rows.
    let models: BTreeSet<(String, String, u64)> = sel
        .iter()
        .filter(|r| r.mode == Mode::Bsr)
        .map(|r| (r.model.clone(), r.hidden_full.clone(), (r.kept_fraction * 1e4).round() as u64))
        .collect();
    if models.is_empty() {
        return None;
    }
    // Categories: csr, the block shapes by area (then rows), iss.
    let mut blocks: Vec<(usize, usize)> = sel
        .iter()
        .filter(|r| r.mode == Mode::Bsr)
        .filter_map(|r| r.block.split_once('x').and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?))))
        .collect::<BTreeSet<(usize, usize)>>()
        .into_iter()
        .collect();
    blocks.sort_by_key(|&(r, c)| (r * c, r));
    let mut categories = vec!["csr (1x1)".to_string()];
    categories.extend(blocks.iter().map(|(r, c)| format!("bsr {r}x{c}")));
    categories.push("iss (whole units)".into());
    let of_model = |r: &Row, m: &(String, String, u64)| {
        (r.model.as_str(), r.hidden_full.as_str(), (r.kept_fraction * 1e4).round() as u64) == (m.0.as_str(), m.1.as_str(), m.2)
    };
    let mut ideals = BTreeSet::new();
    let series = models
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let at = |pred: &dyn Fn(&Row) -> bool| -> Option<WithInterval> {
                let r = sel.iter().find(|r| of_model(r, m) && pred(r))?;
                Some((r.speedup_vs_dense?, r.speedup_ci_low.zip(r.speedup_ci_high)))
            };
            let mut values = vec![at(&|r| r.mode == Mode::Csr)];
            values.extend(
                blocks
                    .iter()
                    .map(|(br, bc)| at(&|r| r.mode == Mode::Bsr && r.block == format!("{br}x{bc}"))),
            );
            values.push(at(&|r| r.mode == Mode::Iss));
            let ideal = sel
                .iter()
                .find(|r| of_model(r, m) && r.mode == Mode::Bsr)
                .map_or(1.0, |r| r.ideal_speedup);
            ideals.insert((ideal * 100.0).round() as u64);
            let name = if m.0.starts_with("lstm") {
                format!("h{} kept {:.2}", first_size(&m.1), m.2 as f64 / 1e4)
            } else {
                m.0.clone()
            };
            DotSeries {
                name: format!("{name} (ideal {ideal:.1}x)"),
                colour: colour(i),
                marker: marker(i),
                values,
            }
        })
        .collect();
    let reference = (ideals.len() == 1).then(|| {
        let ideal = *ideals.iter().next().expect("one") as f64 / 100.0;
        (ideal, format!("ideal: {ideal:.1}x (multiply-add ratio)"))
    });
    Some(Chart::Dots(DotChart {
        title: format!(
            "Speedup over dense by block shape at the ISS model's weight count, batch {batch}, {} — {}",
            config_text(&sel),
            provenance(&sel)
        ),
        y: Axis::log("speedup over dense (×, log scale; whiskers: 95% interval)"),
        categories,
        x_label: "what is kept: single weights (csr), blocks of rows x columns (bsr), whole units (iss)".into(),
        series,
        reference,
    }))
}
