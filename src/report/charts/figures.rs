//! Which chart each kind of result gets, from rows alone.

use std::collections::{BTreeMap, BTreeSet};

use plotters::prelude::*;

use super::axis::{Axis, value_label};
use super::model::*;
use super::style::*;
use crate::mode::Mode;
use crate::report::Row;

/// "h2 — 2026-11-29": who measured (at most three hosts named), and the
/// newest date.
pub(crate) fn provenance(rows: &[&Row]) -> String {
    let hosts: Vec<&str> = rows.iter().map(|r| r.host.as_str()).collect::<BTreeSet<_>>().into_iter().collect();
    let date = rows.iter().map(|r| r.timestamp.get(..10).unwrap_or("")).max().unwrap_or("");
    let hosts = if hosts.len() > 3 {
        format!("{} and {} more hosts", hosts[..2].join(", "), hosts.len() - 2)
    } else {
        hosts.join(", ")
    };
    format!("{hosts} — {date}")
}

/// The first number of a `/`-separated size list.
pub(crate) fn first_size(sizes: &str) -> f64 {
    sizes.split('/').next().and_then(|s| s.trim().parse().ok()).unwrap_or(0.0)
}

/// Of each host and preset, the rows of one configuration: no head, the
/// most threads, the shortest sequence (what the charts compare across
/// sizes and modes).
pub(super) fn main_config<'a>(rows: &[&'a Row]) -> Vec<&'a Row> {
    let mut by: BTreeMap<(&str, &str, &str, &str), Vec<&'a Row>> = BTreeMap::new();
    for r in rows {
        by.entry((&r.host, &r.cpu_model, &r.backend, &r.preset)).or_default().push(r);
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

/// `" @host"` when the rows come from more than one host, else nothing:
/// the suffix series names carry.
pub(super) fn host_tag<'a>(rows: &[&Row]) -> impl Fn(&Row) -> String + 'a {
    let several = rows.iter().map(|r| &r.host).collect::<BTreeSet<_>>().len() > 1;
    move |r: &Row| if several { format!(" @{}", r.host) } else { String::new() }
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

pub(super) fn speedup_vs_sparsity(rows: &[&Row], batch: usize) -> Option<Chart> {
    let sel: Vec<&Row> = main_config(rows)
        .into_iter()
        .filter(|r| r.batch == batch && (r.mode == Mode::Iss || r.mode == Mode::Csr) && r.speedup_vs_dense.is_some())
        .collect();
    if sel.is_empty() {
        return None;
    }
    let tag = host_tag(&sel);
    let names = hidden_names(&sel);
    // (first size, hidden list, host tag) -> mode -> points; the ideal from iss rows.
    type Key = (u64, String, String);
    let mut measured: BTreeMap<Key, BTreeMap<Mode, Vec<(f64, f64)>>> = BTreeMap::new();
    let mut ideal: BTreeMap<Key, Vec<(f64, f64)>> = BTreeMap::new();
    for r in &sel {
        let key = (first_size(&r.hidden_full) as u64, r.hidden_full.clone(), tag(r));
        let x = (1.0 - r.kept_fraction) * 100.0;
        let pts = measured
            .entry(key.clone())
            .or_default()
            .entry(r.mode)
            .or_insert_with(|| vec![(0.0, 1.0)]);
        pts.push((x, r.speedup_vs_dense.unwrap_or(1.0)));
        if r.mode == Mode::Iss {
            ideal.entry(key).or_insert_with(|| vec![(0.0, 1.0)]).push((x, r.ideal_speedup));
        }
    }
    let mut series = Vec::new();
    for (i, (key, modes)) in measured.into_iter().enumerate() {
        // One colour family per hidden size: iss the colour, csr darker and
        // thinner with squares, the ideal lighter and dashed.
        let base = colour(i);
        let name = format!("{}{}", names[&key.1], key.2);
        for (mode, pts) in modes {
            let s = Series::new(format!("{name} {mode}"), sorted(pts), base);
            series.push(match mode {
                Mode::Iss => s,
                _ => Series {
                    colour: mix(base, BLACK, 0.45),
                    ..s.styled(Stroke::Thin, Marker::Square)
                },
            });
        }
        if let Some(pts) = ideal.remove(&key) {
            series.push(Series::new(format!("{name} ideal"), sorted(pts), mix(base, WHITE, 0.4)).styled(Stroke::Dashed, Marker::Dot));
        }
    }
    let ys: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|y| *y > 0.0)
        .collect();
    let spread = ys.iter().copied().fold(0.0, f64::max) / ys.iter().copied().fold(f64::INFINITY, f64::min);
    Some(Chart::Lines(LineChart {
        title: format!("Speedup over dense vs removed hidden units, batch {batch} — {}", provenance(&sel)),
        x: Axis::linear("hidden units removed by ISS (%)"),
        y: if spread > 20.0 {
            Axis::log("speedup over dense (×, log scale)")
        } else {
            Axis::linear("speedup over dense (×)")
        },
        series,
    }))
}

pub(super) fn time_vs_hidden(rows: &[&Row], batch: usize) -> Option<Chart> {
    let sel: Vec<&Row> = main_config(rows)
        .into_iter()
        .filter(|r| r.batch == batch && r.preset != "ptb" && r.preset != "full" && !r.model.starts_with("ptb"))
        .collect();
    let sizes: BTreeSet<u64> = sel.iter().map(|r| first_size(&r.hidden_full) as u64).collect();
    if sizes.len() < 2 {
        return None;
    }
    let tag = host_tag(&sel);
    // (mode, kept in hundredths, host) -> points. Dense time does not depend
    // on the kept fraction: one series.
    let mut by: BTreeMap<(Mode, u64, String), Vec<(f64, f64)>> = BTreeMap::new();
    for r in &sel {
        let k = if r.mode == Mode::Dense {
            100
        } else {
            (r.kept_fraction * 100.0).round() as u64
        };
        by.entry((r.mode, k, tag(r)))
            .or_default()
            .push((first_size(&r.hidden_full), r.median_ms()));
    }
    // Colour families per mode, dark (most kept) to light.
    let mut family: BTreeMap<Mode, Vec<u64>> = BTreeMap::new();
    for (mode, k, _) in by.keys() {
        family.entry(*mode).or_default().push(*k);
    }
    let family: BTreeMap<Mode, Vec<u64>> = family
        .into_iter()
        .map(|(m, mut ks)| {
            ks.sort_unstable_by(|a, b| b.cmp(a));
            ks.dedup();
            (m, ks)
        })
        .collect();
    let mut series = Vec::new();
    for ((mode, k, host), pts) in &by {
        let ks = &family[mode];
        let i = ks.iter().position(|x| x == k).unwrap_or(0);
        let col = shade(mode_colour(*mode), i, ks.len());
        let name = if *mode == Mode::Dense {
            format!("dense{host}")
        } else {
            format!("{mode} kept {}{host}", *k as f64 / 100.0)
        };
        let s = Series::new(name, sorted(pts.clone()), col);
        series.push(if *mode == Mode::Csr {
            s.styled(Stroke::Thin, Marker::Square)
        } else {
            s
        });
    }
    // Dense first in the legend.
    series.sort_by_key(|s| !s.name.starts_with("dense"));
    Some(Chart::Lines(LineChart {
        title: format!("Time per forward pass vs hidden size, batch {batch} — {}", provenance(&sel)),
        x: Axis::log("hidden units in the first layer of the full model (log scale)"),
        y: Axis::log("median time per forward pass (ms, log scale)"),
        series,
    }))
}

pub(super) fn ptb_table(rows: &[&Row]) -> Option<Chart> {
    ptb_bars(rows, &[Mode::Dense, Mode::Iss, Mode::Csr], "dense / ISS / CSR")
}

/// issbench against ONNX Runtime on the PTB shapes, when peer rows exist.
pub(super) fn ptb_vs_ort(rows: &[&Row]) -> Option<Chart> {
    let peer: Vec<&Row> = rows.iter().copied().filter(|r| r.mode.is_peer()).collect();
    let configs: BTreeSet<(bool, usize, usize)> = peer.iter().map(|r| (r.head, r.batch, r.threads)).collect();
    let sel: Vec<&Row> = rows
        .iter()
        .copied()
        .filter(|r| configs.contains(&(r.head, r.batch, r.threads)))
        .collect();
    ptb_bars(
        &sel,
        &[Mode::Dense, Mode::OrtDense, Mode::Iss, Mode::OrtIss],
        "issbench vs ONNX Runtime",
    )
}

/// Grouped bars of the PTB rows' median times for `modes`, one group per
/// batch, threads and head setting (and host, when several).
pub(super) fn ptb_bars(rows: &[&Row], modes: &[Mode], what: &str) -> Option<Chart> {
    let ptb: Vec<&Row> = rows
        .iter()
        .copied()
        .filter(|r| r.model.starts_with("ptb") && modes.contains(&r.mode))
        .collect();
    let seq = ptb.iter().map(|r| r.seq).min()?;
    let sel: Vec<&Row> = ptb.into_iter().filter(|r| r.seq == seq).collect();
    let several = sel.iter().map(|r| &r.host).collect::<BTreeSet<_>>().len() > 1;
    let configs: BTreeSet<(bool, usize, usize, &str)> = sel
        .iter()
        .map(|r| (r.head, r.batch, r.threads, if several { r.host.as_str() } else { "" }))
        .collect();
    let modes: Vec<Mode> = modes.iter().copied().filter(|m| sel.iter().any(|r| r.mode == *m)).collect();
    let groups = configs
        .iter()
        .map(|&(head, b, t, host)| {
            let host = if host.is_empty() { String::new() } else { format!(" @{host}") };
            format!("b{b} t{t}{}{host}", if head { " +head" } else { "" })
        })
        .collect();
    let values = configs
        .iter()
        .map(|&(head, b, t, host)| {
            modes
                .iter()
                .map(|m| {
                    sel.iter()
                        .filter(|r| r.head == head && r.batch == b && r.threads == t && r.mode == *m && (host.is_empty() || r.host == host))
                        .max_by(|a, b| a.timestamp.cmp(&b.timestamp))
                        .map(|r| r.median_ms())
                })
                .collect()
        })
        .collect();
    let sizes = sel
        .iter()
        .find(|r| r.mode == Mode::Iss)
        .or(sel.first())
        .map(|r| format!(" {} vs ISS {}", r.hidden_full, r.hidden_kept))
        .unwrap_or_default();
    Some(Chart::Bars(BarChart {
        title: format!("PTB LSTM{sizes}, seq {seq}: {what} — {}", provenance(&sel)),
        y: Axis::log("median time per forward pass (ms, log scale)"),
        groups,
        bars: modes.iter().map(|m| (m.to_string(), mode_colour(*m))).collect(),
        values,
        value_label,
        x_label: "configuration: batch (b), threads (t), +head: with embedding and softmax head".into(),
    }))
}

pub(super) fn latency_fine_hidden(rows: &[&Row]) -> Option<Chart> {
    let full: Vec<&Row> = rows.iter().copied().filter(|r| r.preset == "full").collect();
    let sel = main_config(&full);
    if sel.len() < 2 {
        return None;
    }
    let tag = host_tag(&sel);
    let mut by: BTreeMap<(Mode, usize, String), Vec<(f64, f64)>> = BTreeMap::new();
    for r in &sel {
        let key = (r.mode, r.batch, tag(r));
        by.entry(key).or_default().push((first_size(&r.hidden_full), r.median_ms()));
    }
    let series = by
        .into_iter()
        .enumerate()
        .map(|(i, ((mode, b, host), pts))| Series::new(format!("{mode} b{b}{host}"), sorted(pts), colour(i)))
        .collect();
    Some(Chart::Lines(LineChart {
        title: format!("Latency on the fine hidden-size grid — {}", provenance(&sel)),
        x: Axis::linear("hidden units in the first layer"),
        y: Axis::linear("median time per forward pass (ms)"),
        series,
    }))
}

/// FLOPs per byte of weights read per step: dense and iss read 4 bytes per
/// weight, csr 8 (value and column index).
pub(crate) fn intensity(r: &Row) -> f64 {
    let bytes = r.nonzero_weights as f64 * if r.mode == Mode::Csr { 8.0 } else { 4.0 };
    2.0 * r.macs_per_step as f64 * r.batch as f64 / bytes.max(1.0)
}

pub(super) fn roofline(rows: &[&Row]) -> Option<Chart> {
    let sel: Vec<&Row> = rows.iter().copied().filter(|r| r.gflops > 0.0 && r.nonzero_weights > 0).collect();
    if sel.is_empty() {
        return None;
    }
    let mut by: BTreeMap<Mode, Vec<(f64, f64)>> = BTreeMap::new();
    for r in &sel {
        by.entry(r.mode).or_default().push((intensity(r), r.gflops));
    }
    let (xlo, xhi) = sel
        .iter()
        .map(|r| intensity(r))
        .fold((f64::INFINITY, 0.0f64), |(a, b), x| (a.min(x), b.max(x)));
    // The map's order is the legend's: dense, iss, csr, then the peer's.
    let mut series: Vec<Series> = by
        .into_iter()
        .map(|(mode, points)| {
            let marker = if mode == Mode::Csr { Marker::Square } else { Marker::Circle };
            Series::new(mode.to_string(), points, mode_colour(mode)).styled(Stroke::None, marker)
        })
        .collect();
    // One roof per host and thread count: the highest peak and bandwidth
    // any of its sweeps measured. Other tenants only ever make a reading
    // low (a sweep on a shared host once read 98 GFLOP/s on 2 threads,
    // another 188), and a roof below the points it bounds misleads.
    let mut roofs: BTreeMap<(String, usize), (f64, f64)> = BTreeMap::new();
    for r in sel.iter().filter(|r| r.peak_gflops > 0.0 && r.bandwidth_gbs > 0.0) {
        let roof = roofs.entry((r.host.clone(), r.threads)).or_insert((0.0, 0.0));
        *roof = (roof.0.max(r.peak_gflops), roof.1.max(r.bandwidth_gbs));
    }
    let (x0, x1) = (xlo / 2.0, (xhi * 2.0).max(xlo * 4.0));
    // Roof colours: the palette after the modes' blue and red.
    for (i, ((host, threads), (peak, bw))) in roofs.into_iter().enumerate() {
        let ridge = peak / bw;
        let mut pts = vec![(x0, (bw * x0).min(peak))];
        if ridge > x0 && ridge < x1 {
            pts.push((ridge, peak));
        }
        pts.push((x1, (bw * x1).min(peak)));
        series.push(
            Series::new(
                format!("roof {host} {threads}t: {peak:.0} GFLOP/s, {bw:.1} GB/s"),
                pts,
                colour(2 + i),
            )
            .styled(Stroke::Dashed, Marker::None),
        );
    }
    Some(Chart::Lines(LineChart {
        title: format!("Roofline (points above a roof run from cache) — {}", provenance(&sel)),
        x: Axis::log("arithmetic intensity (FLOP per byte of weights, log scale)"),
        y: Axis::log("GFLOP/s (log scale)"),
        series,
    }))
}
