//! A comparison's charts: each machine's time ratio to the baseline at
//! every shared point, each machine's speedup over dense, and the
//! geometric means per mode. Machines keep one colour and marker in all.

use super::tables::m;
use super::{Comparison, SharedPoint};
use crate::mode::Mode;
use crate::report::charts::{Axis, BarChart, Chart, DotChart, DotSeries, WithInterval, colour, marker, value_label};

/// Legend name of machine `i`.
fn name(c: &Comparison, i: usize) -> String {
    format!("{}: {}", m(i), c.machines[i].name())
}

fn series(c: &Comparison, i: usize, values: Vec<Option<WithInterval>>) -> DotSeries {
    DotSeries {
        name: name(c, i),
        colour: colour(i),
        marker: marker(i),
        values,
    }
}

/// The charts by file stem.
pub(super) fn charts(c: &Comparison) -> Vec<(&'static str, Chart)> {
    let mut out = vec![("compare_ratio", ratio_chart(c))];
    if let Some(chart) = speedup_chart(c) {
        out.push(("compare_speedup", chart));
    }
    out.push(("compare_geomean", geomean_chart(c)));
    out
}

fn ratio_chart(c: &Comparison) -> Chart {
    let b = c.baseline;
    let points: Vec<&SharedPoint> = c.points.iter().filter(|p| p.rows[b].is_some()).collect();
    let series_list = (0..c.machines.len())
        .filter(|&i| i != b)
        .map(|i| {
            let values = points.iter().map(|p| p.ratio(i, b).map(|r| (r.value, Some(r.interval)))).collect();
            series(c, i, values)
        })
        .collect();
    Chart::Dots(DotChart {
        title: format!("Time on each machine over time on {} at every shared point", m(b)),
        y: Axis::log(&format!("time / time on {} (log scale; below 1: faster)", m(b))),
        categories: points.iter().map(|p| p.label.clone()).collect(),
        x_label: "shared point: hidden units (h), kept fraction (k), mode, batch (b), threads (t)".into(),
        series: series_list,
        reference: Some((1.0, format!("{}: {}", m(b), c.machines[b].name()))),
    })
}

fn speedup_chart(c: &Comparison) -> Option<Chart> {
    let points: Vec<&SharedPoint> = c
        .points
        .iter()
        .filter(|p| p.mode != Mode::Dense && p.rows.iter().flatten().any(|r| r.speedup_vs_dense.is_some()))
        .collect();
    if points.is_empty() {
        return None;
    }
    let series_list = (0..c.machines.len())
        .map(|i| {
            let values = points
                .iter()
                .map(|p| {
                    let r = p.rows[i].as_ref()?;
                    let interval = r.speedup_ci_low.zip(r.speedup_ci_high);
                    r.speedup_vs_dense.map(|s| (s, interval))
                })
                .collect();
            series(c, i, values)
        })
        .collect();
    Some(Chart::Dots(DotChart {
        title: "Speedup over dense on the same machine, with its 95% interval".into(),
        y: Axis::log("speedup over dense (×, log scale)"),
        categories: points.iter().map(|p| p.label.clone()).collect(),
        x_label: "shared point: hidden units (h), kept fraction (k), mode, batch (b), threads (t)".into(),
        series: series_list,
        reference: Some((1.0, "as fast as dense".into())),
    }))
}

fn geomean_chart(c: &Comparison) -> Chart {
    let others: Vec<usize> = (0..c.machines.len()).filter(|&i| i != c.baseline).collect();
    Chart::Bars(BarChart {
        title: format!("Geometric mean of the time ratio to {} per mode (below 1: faster)", m(c.baseline)),
        y: Axis::linear(&format!("time / time on {}", m(c.baseline))),
        groups: c.summaries.iter().map(|s| format!("{} ({} points)", s.mode, s.points)).collect(),
        bars: others.iter().map(|&i| (name(c, i), colour(i))).collect(),
        values: c
            .summaries
            .iter()
            .map(|s| others.iter().map(|&i| s.ratios[i].map(|g| g.ratio)).collect())
            .collect(),
        value_label,
        x_label: "mode".into(),
    })
}
