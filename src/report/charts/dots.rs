//! Dot charts: values over named categories, one mark per series, with
//! whiskers for their intervals and the legend beside the plot.

use plotters::prelude::*;

use super::axis::{Ticked, ticked};
use super::bars::{draw_group_labels, group_labels};
use super::legend::{BESIDE_GAP, Legend, Swatch, draw_marker};
use super::model::*;
use super::render::{Area, Coords, draw_mesh, err, titled};
use super::style::*;

/// Grey of the reference line.
const REFERENCE: RGBColor = RGBColor(90, 90, 90);

pub(super) fn render_dots<DB: DrawingBackend>(root: &Area<DB>, c: &DotChart) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let body = titled(root, &c.title)?;
    let mut entries: Vec<(String, Swatch)> = c
        .series
        .iter()
        .map(|s| (s.name.clone(), Swatch::Series(s.colour, Stroke::None, s.marker)))
        .collect();
    if let Some((_, name)) = &c.reference {
        entries.push((name.clone(), Swatch::Series(REFERENCE, Stroke::Dashed, Marker::None)));
    }
    let legend = Legend::new(root, entries)?;
    let (body_w, _) = body.dim_in_pixel();
    let margin_right = legend.size().0 + 2 * BESIDE_GAP;
    let n = c.categories.len().max(1);
    let plot_w = body_w as i32 - Y_LABEL_AREA as i32 - margin_right;
    let (labels, label_area) = group_labels(root, &c.categories, plot_w / n as i32)?;
    let shown = |v: f64| c.y.valid(v);
    let mut ys: Vec<f64> = c
        .series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .flat_map(|(v, e)| [Some(*v), e.map(|e| e.0), e.map(|e| e.1)])
        .flatten()
        .filter(|v| shown(*v))
        .collect();
    ys.extend(c.reference.as_ref().map(|r| r.0).filter(|v| shown(*v)));
    let (lo, hi) = if ys.is_empty() {
        (1.0, 10.0)
    } else {
        ys.iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)))
    };
    let y = ticked(c.y.range_and_ticks(if c.y.log { lo } else { lo.min(0.0) }, hi));
    let x = Ticked {
        range: -0.5..n as f64 - 0.5,
        ticks: Vec::new(),
    };
    let mut chart: ChartContext<DB, Coords> = ChartBuilder::on(&body)
        .margin_top(8)
        .margin_right(margin_right)
        .x_label_area_size(label_area + AXIS_PX + 16)
        .y_label_area_size(Y_LABEL_AREA)
        .build_cartesian_2d(x, y.clone())
        .map_err(err)?;
    draw_mesh(&mut chart, None, &c.y)?;
    // Light lines between categories.
    for g in 1..n {
        let x = g as f64 - 0.5;
        chart
            .draw_series([PathElement::new(
                vec![(x, y.range.start), (x, y.range.end)],
                RGBColor(238, 238, 238).stroke_width(1),
            )])
            .map_err(err)?;
    }
    if let Some((v, _)) = c.reference.as_ref().filter(|r| shown(r.0)) {
        let at = c.y.plot_at(*v);
        chart
            .draw_series(DashedLineSeries::new(
                vec![(-0.5, at), (n as f64 - 0.5, at)],
                10,
                6,
                REFERENCE.stroke_width(2),
            ))
            .map_err(err)?;
    }
    // Series side by side within a category.
    let m = c.series.len().max(1) as f64;
    let step = (0.7 / m).min(0.18);
    for (k, s) in c.series.iter().enumerate() {
        let offset = (k as f64 - (m - 1.0) / 2.0) * step;
        for (g, value) in s.values.iter().enumerate() {
            let Some((v, interval)) = value.filter(|(v, _)| shown(*v)) else {
                continue;
            };
            let x = g as f64 + offset;
            if let Some((a, b)) = interval.filter(|(a, b)| shown(*a) && shown(*b)) {
                let (a, b) = (c.y.plot_at(a), c.y.plot_at(b));
                chart
                    .draw_series([PathElement::new(vec![(x, a), (x, b)], s.colour.stroke_width(2))])
                    .map_err(err)?;
            }
            let p = chart.backend_coord(&(x, c.y.plot_at(v)));
            draw_marker(root, s.marker, p, s.colour)?;
        }
    }
    draw_group_labels(root, &chart, &labels, y.range.start, label_area, &c.x_label)?;
    let (xr, yr) = chart.plotting_area().get_pixel_range();
    legend.draw(root, (xr.end + BESIDE_GAP, yr.start))?;
    root.present().map_err(err)
}
