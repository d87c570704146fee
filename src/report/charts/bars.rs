//! Grouped bar charts, and the category labels under them (which dot
//! charts share).

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axis::{Axis, Ticked, linear_ticks};
use super::legend::{Legend, Swatch};
use super::model::*;
use super::render::{Area, Coords, draw_mesh, err, titled};
use super::style::*;

/// How the group labels under a bar chart are written.
pub(super) enum GroupLabels {
    /// One or two lines each, horizontal.
    Lines(Vec<Vec<String>>),
    /// Rotated to read upwards, ending at the axis.
    Rotated(Vec<String>),
}

pub(super) fn group_labels<DB: DrawingBackend>(area: &Area<DB>, groups: &[String], group_px: i32) -> Result<(GroupLabels, u32), String> {
    let fits = |s: &str| text_size(area, s, LABEL_PX).map(|(w, _)| w + 8 <= group_px);
    let mut lines = Vec::new();
    for g in groups {
        if fits(g)? {
            lines.push(vec![g.clone()]);
            continue;
        }
        // Two lines, split at the space nearest the middle.
        let split = g
            .match_indices(' ')
            .map(|(i, _)| i)
            .min_by_key(|&i| (2 * i as i64 - g.len() as i64).abs())
            .map(|i| (g[..i].to_string(), g[i + 1..].to_string()));
        match split {
            Some((a, b)) if fits(&a)? && fits(&b)? => lines.push(vec![a, b]),
            _ => {
                let mut widest = 0;
                let mut cut = Vec::new();
                for g in groups {
                    let s = fit_text(area, g, LABEL_PX, 260)?;
                    widest = widest.max(text_size(area, &s, LABEL_PX)?.0);
                    cut.push(s);
                }
                return Ok((GroupLabels::Rotated(cut), (widest + 24) as u32));
            }
        }
    }
    let two = lines.iter().any(|l| l.len() > 1);
    Ok((GroupLabels::Lines(lines), if two { 64 } else { 44 }))
}

pub(super) fn render_bars<DB: DrawingBackend>(root: &Area<DB>, c: &BarChart) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    // Bars start at zero: always a linear axis.
    let y_axis = Axis { log: false, ..c.y.clone() };
    let body = titled(root, &c.title)?;
    let n = c.groups.len().max(1);
    let nb = c.bars.len().max(1);
    let (body_w, body_h) = body.dim_in_pixel();
    let (margin_top, margin_right) = (8, 16);
    let plot_w = body_w as i32 - Y_LABEL_AREA as i32 - margin_right;
    let group_px = plot_w / n as i32;
    let (labels, label_area) = group_labels(root, &c.groups, group_px)?;
    let x_area = label_area + AXIS_PX + 16;
    let plot_h = (body_h as i32 - margin_top - x_area as i32).max(100);
    // Value labels: horizontal when they fit a bar's slot, rotated when the
    // bar is at least as wide as the text is high, else left out.
    let slot = group_px as f64 * 0.8 / nb as f64;
    let texts: Vec<Vec<Option<String>>> = c
        .values
        .iter()
        .map(|row| row.iter().map(|v| v.filter(|v| y_axis.valid(*v)).map(c.value_label)).collect())
        .collect();
    let mut widest = 0;
    for t in texts.iter().flatten().flatten() {
        widest = widest.max(text_size(root, t, LABEL_PX)?.0);
    }
    let (value_mode, value_room) = if widest as f64 <= slot - 2.0 {
        (Some(false), LABEL_PX as i32 + 8)
    } else if slot >= LABEL_PX as f64 + 2.0 {
        (Some(true), widest + 10)
    } else {
        (None, 0)
    };
    let legend = Legend::new(root, c.bars.iter().map(|(name, col)| (name.clone(), Swatch::Bar(*col))).collect())?.row_if_fits(plot_w - 24);
    // The y range leaves a band at the top for the legend and the labels of
    // the tallest bars.
    let vals: Vec<f64> = c.values.iter().flatten().flatten().copied().filter(|v| y_axis.valid(*v)).collect();
    let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (start, top_data) = (0.0, if vals.is_empty() { 10.0 } else { hi.max(1e-9) });
    let band = (legend.size().1 + 16 + value_room) as f64 / plot_h as f64;
    let end = start + (top_data - start) / (1.0 - band.min(0.6));
    let y = Ticked {
        range: start..end,
        ticks: linear_ticks(start, end),
    };
    let x = Ticked {
        range: -0.5..n as f64 - 0.5,
        ticks: (0..n).map(|g| g as f64).collect(),
    };
    let mut chart: ChartContext<DB, Coords> = ChartBuilder::on(&body)
        .margin_top(margin_top)
        .margin_right(margin_right)
        .x_label_area_size(x_area)
        .y_label_area_size(Y_LABEL_AREA)
        .build_cartesian_2d(x, y)
        .map_err(err)?;
    draw_mesh(&mut chart, None, &y_axis)?;
    let width = 0.8 / nb as f64;
    for (b, (_, col)) in c.bars.iter().enumerate() {
        let col = *col;
        let bars = c.values.iter().enumerate().filter_map(|(g, row)| {
            let v = row.get(b).copied().flatten().filter(|v| y_axis.valid(*v))?;
            let x0 = g as f64 - 0.4 + b as f64 * width;
            Some(Rectangle::new([(x0, start), (x0 + width * 0.92, y_axis.plot_at(v))], col.filled()))
        });
        chart.draw_series(bars).map_err(err)?;
    }
    if let Some(rotated) = value_mode {
        for (g, row) in texts.iter().enumerate() {
            for (b, t) in row.iter().enumerate() {
                let (Some(t), Some(Some(v))) = (t, c.values[g].get(b)) else {
                    continue;
                };
                let x = g as f64 - 0.4 + (b as f64 + 0.46) * width;
                let (px, py) = chart.backend_coord(&(x, y_axis.plot_at(*v)));
                let style = if rotated {
                    font(LABEL_PX)
                        .transform(FontTransform::Rotate270)
                        .pos(Pos::new(HPos::Left, VPos::Center))
                } else {
                    font(LABEL_PX).pos(Pos::new(HPos::Center, VPos::Bottom))
                };
                root.draw(&Text::new(t.as_str(), (px, py - 4), style)).map_err(err)?;
            }
        }
    }
    draw_group_labels(root, &chart, &labels, start, label_area, &c.x_label)?;
    let (xr, yr) = chart.plotting_area().get_pixel_range();
    let (lw, _) = legend.size();
    legend.draw(root, ((xr.end - 12 - lw).max(xr.start + 12), yr.start + 8))?;
    root.present().map_err(err)
}

/// Writes the labels of categories `0..n` under the x axis (at plot `y`
/// value `start`), and the axis' description under them.
pub(super) fn draw_group_labels<DB: DrawingBackend>(
    root: &Area<DB>,
    chart: &ChartContext<DB, Coords>,
    labels: &GroupLabels,
    start: f64,
    label_area: u32,
    x_label: &str,
) -> Result<(), String> {
    let axis_y = chart.backend_coord(&(0.0, start)).1;
    match labels {
        GroupLabels::Lines(lines) => {
            for (g, lines) in lines.iter().enumerate() {
                let px = chart.backend_coord(&(g as f64, start)).0;
                for (i, line) in lines.iter().enumerate() {
                    let style = font(LABEL_PX).pos(Pos::new(HPos::Center, VPos::Top));
                    root.draw(&Text::new(line.as_str(), (px, axis_y + 12 + 22 * i as i32), style))
                        .map_err(err)?;
                }
            }
        }
        GroupLabels::Rotated(labels) => {
            for (g, label) in labels.iter().enumerate() {
                let px = chart.backend_coord(&(g as f64, start)).0;
                let style = font(LABEL_PX)
                    .transform(FontTransform::Rotate270)
                    .pos(Pos::new(HPos::Right, VPos::Center));
                root.draw(&Text::new(label.as_str(), (px, axis_y + 10), style)).map_err(err)?;
            }
        }
    }
    let (xr, _) = chart.plotting_area().get_pixel_range();
    let desc = font(AXIS_PX).pos(Pos::new(HPos::Center, VPos::Top));
    let desc_at = ((xr.start + xr.end) / 2, axis_y + label_area as i32 + 4);
    root.draw(&Text::new(x_label, desc_at, desc)).map_err(err)
}
