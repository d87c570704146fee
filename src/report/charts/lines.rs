//! Line charts: series of points joined or not, with whiskers where a
//! series has intervals, and the legend where it hides no data (else
//! beside the plot).

use std::ops::Range;

use plotters::coord::ranged1d::Ranged;
use plotters::prelude::*;

use super::axis::{Ticked, ticked};
use super::legend::{BESIDE_GAP, Legend, Swatch, draw_marker, goes_beside, legend_place};
use super::model::*;
use super::render::{Area, Coords, draw_mesh, err, titled};
use super::style::*;

/// Pixels along the series' points and segments: what a legend must not cover.
fn samples(plot: &[Vec<(i32, i32)>], joined: &[bool]) -> Vec<(i32, i32)> {
    let mut out = Vec::new();
    for (px, &joined) in plot.iter().zip(joined) {
        out.extend(px.iter().copied());
        if joined {
            for w in px.windows(2) {
                let (a, b) = (w[0], w[1]);
                let steps = ((b.0 - a.0).abs().max((b.1 - a.1).abs()) / 4).max(1);
                out.extend((1..steps).map(|k| (a.0 + (b.0 - a.0) * k / steps, a.1 + (b.1 - a.1) * k / steps)));
            }
        }
    }
    out
}

pub(super) fn render_lines<DB: DrawingBackend>(root: &Area<DB>, c: &LineChart) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    // Points the axes can show (no zero or negative values on a log axis),
    // with their intervals.
    type Shown = Vec<((f64, f64), Option<(f64, f64)>)>;
    let series: Vec<(&Series, Shown)> = c
        .series
        .iter()
        .map(|s| {
            let pts = s
                .points
                .iter()
                .enumerate()
                .filter(|(_, (x, y))| c.x.valid(*x) && c.y.valid(*y))
                .map(|(i, &p)| {
                    (
                        p,
                        s.errors
                            .get(i)
                            .copied()
                            .flatten()
                            .filter(|(lo, hi)| c.y.valid(*lo) && c.y.valid(*hi)),
                    )
                });
            (s, pts.collect())
        })
        .collect();
    let xs: Vec<f64> = series.iter().flat_map(|(_, p)| p.iter().map(|(p, _)| p.0)).collect();
    let ys: Vec<f64> = series
        .iter()
        .flat_map(|(_, p)| p.iter().flat_map(|((_, y), e)| [Some(*y), e.map(|e| e.0), e.map(|e| e.1)]))
        .flatten()
        .collect();
    let bounds = |v: &[f64]| {
        if v.is_empty() {
            (1.0, 10.0)
        } else {
            v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)))
        }
    };
    let (xlo, xhi) = bounds(&xs);
    let (ylo, yhi) = bounds(&ys);
    let x = ticked(c.x.range_and_ticks(xlo, xhi));
    let y = ticked(c.y.range_and_ticks(if c.y.log { ylo } else { ylo.min(0.0) }, yhi));
    let body = titled(root, &c.title)?;
    let entries = series
        .iter()
        .map(|(s, _)| (s.name.clone(), Swatch::Series(s.colour, s.stroke, s.marker)))
        .collect();
    let legend = Legend::new(root, entries)?;
    // Where the plot would be with the legend inside, and the data there.
    let (margin_top, margin_right, x_area) = (8, 16, 80);
    let (bx, by) = body.get_pixel_range();
    let inside = (
        bx.start + Y_LABEL_AREA as i32..bx.end - margin_right,
        by.start + margin_top..by.end - x_area,
    );
    let to_px = |x_t: &Ticked, y_t: &Ticked, plot: &(Range<i32>, Range<i32>), (px, py): (f64, f64)| {
        (
            x_t.map(&c.x.plot_at(px), (plot.0.start, plot.0.end)),
            y_t.map(&c.y.plot_at(py), (plot.1.end, plot.1.start)),
        )
    };
    let joined: Vec<bool> = series.iter().map(|(s, _)| s.stroke != Stroke::None).collect();
    let predicted: Vec<Vec<(i32, i32)>> = series
        .iter()
        .map(|(_, pts)| pts.iter().map(|(p, _)| to_px(&x, &y, &inside, *p)).collect())
        .collect();
    let beside = goes_beside(&samples(&predicted, &joined), inside, legend.size());
    let margin_right = if beside { legend.size().0 + 2 * BESIDE_GAP } else { margin_right };
    let mut chart: ChartContext<DB, Coords> = ChartBuilder::on(&body)
        .margin_top(margin_top)
        .margin_right(margin_right)
        .x_label_area_size(x_area as u32)
        .y_label_area_size(Y_LABEL_AREA)
        .build_cartesian_2d(x, y)
        .map_err(err)?;
    draw_mesh(&mut chart, Some(&c.x), &c.y)?;
    let mut drawn = Vec::new();
    for (s, pts) in &series {
        let plot: Vec<(f64, f64)> = pts.iter().map(|((x, y), _)| (c.x.plot_at(*x), c.y.plot_at(*y))).collect();
        let col = s.colour;
        for ((x, _), e) in pts {
            if let Some((lo, hi)) = e {
                let (x, lo, hi) = (c.x.plot_at(*x), c.y.plot_at(*lo), c.y.plot_at(*hi));
                chart
                    .draw_series([PathElement::new(vec![(x, lo), (x, hi)], col.stroke_width(2))])
                    .map_err(err)?;
                for end in [lo, hi] {
                    chart
                        .draw_series([EmptyElement::at((x, end)) + PathElement::new(vec![(-5, 0), (5, 0)], col.stroke_width(2))])
                        .map_err(err)?;
                }
            }
        }
        match s.stroke {
            Stroke::Solid | Stroke::Thin => {
                let width = if s.stroke == Stroke::Solid { 3 } else { 2 };
                chart
                    .draw_series(LineSeries::new(plot.clone(), col.stroke_width(width)))
                    .map_err(err)?;
            }
            Stroke::Dashed => {
                chart
                    .draw_series(DashedLineSeries::new(plot.clone(), 10, 6, col.stroke_width(2)))
                    .map_err(err)?;
            }
            Stroke::None => {}
        }
        let px: Vec<(i32, i32)> = plot.iter().map(|p| chart.backend_coord(p)).collect();
        for &p in &px {
            draw_marker(root, s.marker, p, col)?;
        }
        drawn.push(px);
    }
    let (xr, yr) = chart.plotting_area().get_pixel_range();
    let place = if beside {
        (xr.end + BESIDE_GAP, yr.start)
    } else {
        legend_place(&samples(&drawn, &joined), (xr, yr), legend.size())
    };
    legend.draw(root, place)?;
    root.present().map_err(err)
}
