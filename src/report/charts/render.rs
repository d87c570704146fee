//! Drawing a [`Chart`] with plotters into SVG and PNG: titles, meshes,
//! legends placed where the data is not, grouped bars.

use std::ops::Range;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axis::{Axis, Ticked, linear_ticks, log_ticks, tick_label, ticked};
use super::model::*;
use super::style::*;
use crate::report::{ReportError, write_atomically};

pub(super) type Coords = Cartesian2d<Ticked, Ticked>;

pub(super) type Area<DB> = DrawingArea<DB, Shift>;

pub(super) fn err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> String {
    e.to_string()
}

/// Draws the title centred at the top and returns the area below it. The
/// font shrinks until the title fits the width.
pub(super) fn titled<DB: DrawingBackend>(root: &Area<DB>, title: &str) -> Result<Area<DB>, String> {
    let inner = root.margin(12, MARGIN, MARGIN, MARGIN);
    let width = inner.dim_in_pixel().0 as i32;
    let mut px = TITLE_PX;
    while px > MIN_PX && text_size(root, title, px)?.0 > width {
        px -= 1;
    }
    inner.titled(title, font(px)).map_err(err)
}

/// The mesh: light grid at the ticks, tick labels in data units.
pub(super) fn draw_mesh<DB: DrawingBackend>(chart: &mut ChartContext<DB, Coords>, x: Option<&Axis>, y: &Axis) -> Result<(), String> {
    let (xa, ya) = (x.cloned(), y.clone());
    let x_fmt = move |v: &f64| xa.as_ref().map(|a| tick_label(a.value_at(*v))).unwrap_or_default();
    let y_fmt = move |v: &f64| tick_label(ya.value_at(*v));
    let mut mesh = chart.configure_mesh();
    mesh.y_desc(&y.label)
        .label_style(font(TICK_PX))
        .axis_desc_style(font(AXIS_PX))
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(225, 225, 225));
    if let Some(x) = x {
        mesh.x_desc(&x.label);
    } else {
        mesh.disable_x_mesh();
    }
    mesh.draw().map_err(err)
}

/// What a legend entry shows beside its name.
#[derive(Clone, Copy)]
pub(super) enum Swatch {
    Series(RGBColor, Stroke, Marker),
    Bar(RGBColor),
}

pub(super) const LEGEND_PAD: i32 = 10;

pub(super) const LEGEND_ROW: i32 = 26;

pub(super) const SWATCH_W: i32 = 44;

pub(super) const SWATCH_GAP: i32 = 8;

/// Space between entries of a legend laid out in one row.
pub(super) const ENTRY_GAP: i32 = 22;

/// A legend's entries and layout (one column, or one row).
pub(super) struct Legend {
    entries: Vec<(String, Swatch)>,
    widths: Vec<i32>,
    in_row: bool,
}

impl Legend {
    pub(super) fn new<DB: DrawingBackend>(area: &Area<DB>, entries: Vec<(String, Swatch)>) -> Result<Legend, String> {
        let widths = entries
            .iter()
            .map(|(name, _)| text_size(area, name, LEGEND_PX).map(|(w, _)| SWATCH_W + SWATCH_GAP + w))
            .collect::<Result<_, _>>()?;
        Ok(Legend {
            entries,
            widths,
            in_row: false,
        })
    }
    /// Lays the entries out in one row when that fits in `width`.
    pub(super) fn row_if_fits(mut self, width: i32) -> Legend {
        self.in_row = self.size_in_row().0 <= width;
        self
    }
    pub(super) fn size_in_row(&self) -> (i32, i32) {
        let w: i32 = self.widths.iter().sum::<i32>() + ENTRY_GAP * (self.widths.len() as i32 - 1).max(0);
        (w + 2 * LEGEND_PAD, LEGEND_ROW + 2 * LEGEND_PAD)
    }
    pub(super) fn size(&self) -> (i32, i32) {
        if self.in_row {
            self.size_in_row()
        } else {
            let w = self.widths.iter().copied().max().unwrap_or(0);
            (w + 2 * LEGEND_PAD, LEGEND_ROW * self.entries.len() as i32 + 2 * LEGEND_PAD)
        }
    }
    /// Draws the legend with its top left corner at `(x, y)` (pixels).
    pub(super) fn draw<DB: DrawingBackend>(&self, area: &Area<DB>, (x, y): (i32, i32)) -> Result<(), String> {
        if self.entries.is_empty() {
            return Ok(());
        }
        let (w, h) = self.size();
        area.draw(&Rectangle::new([(x, y), (x + w, y + h)], WHITE.mix(0.9).filled()))
            .map_err(err)?;
        area.draw(&Rectangle::new([(x, y), (x + w, y + h)], RGBColor(160, 160, 160).stroke_width(1)))
            .map_err(err)?;
        let (mut ex, mut ey) = (x + LEGEND_PAD, y + LEGEND_PAD);
        for ((name, swatch), width) in self.entries.iter().zip(&self.widths) {
            let cy = ey + LEGEND_ROW / 2;
            draw_swatch(area, *swatch, (ex, cy))?;
            let style = font(LEGEND_PX).pos(Pos::new(HPos::Left, VPos::Center));
            area.draw(&Text::new(name.as_str(), (ex + SWATCH_W + SWATCH_GAP, cy), style))
                .map_err(err)?;
            if self.in_row {
                ex += width + ENTRY_GAP;
            } else {
                ey += LEGEND_ROW;
            }
        }
        Ok(())
    }
}

pub(super) fn draw_swatch<DB: DrawingBackend>(area: &Area<DB>, swatch: Swatch, (x, cy): (i32, i32)) -> Result<(), String> {
    match swatch {
        Swatch::Bar(c) => area
            .draw(&Rectangle::new([(x + 8, cy - 9), (x + SWATCH_W - 8, cy + 9)], c.filled()))
            .map_err(err),
        Swatch::Series(c, stroke, marker) => {
            let line = |x0: i32, x1: i32, w: u32| area.draw(&PathElement::new(vec![(x0, cy), (x1, cy)], c.stroke_width(w)));
            match stroke {
                Stroke::Solid => line(x, x + SWATCH_W, 3),
                Stroke::Thin => line(x, x + SWATCH_W, 2),
                Stroke::Dashed => line(x, x + 12, 2)
                    .and_then(|_| line(x + 16, x + 28, 2))
                    .and_then(|_| line(x + 32, x + SWATCH_W, 2)),
                Stroke::None => Ok(()),
            }
            .map_err(err)?;
            let centre = (x + SWATCH_W / 2, cy);
            match marker {
                Marker::Circle => area.draw(&Circle::new(centre, 6, c.filled())),
                Marker::Dot => area.draw(&Circle::new(centre, 4, c.filled())),
                Marker::Square => area.draw(&Rectangle::new([(centre.0 - 5, cy - 5), (centre.0 + 5, cy + 5)], c.filled())),
                Marker::None => Ok(()),
            }
            .map_err(err)
        }
    }
}

/// Of the corners and edge middles of the plotting area, the place for a
/// box of `size` that covers the fewest of `samples` (pixels of the data).
pub(super) fn legend_place(samples: &[(i32, i32)], (xr, yr): (Range<i32>, Range<i32>), (w, h): (i32, i32)) -> (i32, i32) {
    let inset = 12;
    let (left, top) = (xr.start + inset, yr.start + inset);
    let right = (xr.end - inset - w).max(left);
    let bottom = (yr.end - inset - h).max(top);
    let middle = ((xr.start + xr.end - w) / 2).max(left);
    let centre_y = ((yr.start + yr.end - h) / 2).max(top);
    let candidates = [
        (left, top),
        (right, top),
        (right, bottom),
        (left, bottom),
        (middle, top),
        (middle, bottom),
        (right, centre_y),
        (left, centre_y),
    ];
    let covered = |&(x, y): &(i32, i32)| {
        samples
            .iter()
            .filter(|&&(px, py)| px >= x - 10 && px <= x + w + 10 && py >= y - 10 && py <= y + h + 10)
            .count()
    };
    candidates.into_iter().min_by_key(covered).unwrap_or((left, top))
}

pub(super) fn render_lines<DB: DrawingBackend>(root: &Area<DB>, c: &LineChart) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    // Points the axes can show (no zero or negative values on a log axis).
    let series: Vec<(&Series, Vec<(f64, f64)>)> = c
        .series
        .iter()
        .map(|s| {
            let pts = s.points.iter().copied().filter(|&(x, y)| c.x.valid(x) && c.y.valid(y));
            (s, pts.collect())
        })
        .collect();
    let all: Vec<(f64, f64)> = series.iter().flat_map(|(_, p)| p.iter().copied()).collect();
    let bounds = |f: fn(&(f64, f64)) -> f64, default: (f64, f64)| {
        if all.is_empty() {
            return default;
        }
        all.iter()
            .map(f)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)))
    };
    let (xlo, xhi) = bounds(|p| p.0, (1.0, 10.0));
    let (ylo, yhi) = bounds(|p| p.1, (1.0, 10.0));
    let x = ticked(c.x.range_and_ticks(xlo, xhi));
    let y = ticked(c.y.range_and_ticks(if c.y.log { ylo } else { ylo.min(0.0) }, yhi));
    let body = titled(root, &c.title)?;
    let mut chart: ChartContext<DB, Coords> = ChartBuilder::on(&body)
        .margin_top(8)
        .margin_right(16)
        .x_label_area_size(80)
        .y_label_area_size(Y_LABEL_AREA)
        .build_cartesian_2d(x, y)
        .map_err(err)?;
    draw_mesh(&mut chart, Some(&c.x), &c.y)?;
    let mut samples = Vec::new();
    for (s, pts) in &series {
        let plot: Vec<(f64, f64)> = pts.iter().map(|&(x, y)| (c.x.plot_at(x), c.y.plot_at(y))).collect();
        let col = s.colour;
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
        match s.marker {
            Marker::Circle | Marker::Dot => {
                let r = if s.marker == Marker::Circle { 5 } else { 3 };
                chart
                    .draw_series(plot.iter().map(|&p| Circle::new(p, r, col.filled())))
                    .map_err(err)?;
            }
            Marker::Square => {
                chart
                    .draw_series(
                        plot.iter()
                            .map(|&p| EmptyElement::at(p) + Rectangle::new([(-5, -5), (5, 5)], col.filled())),
                    )
                    .map_err(err)?;
            }
            Marker::None => {}
        }
        // Pixels the legend should not cover: the points and, for lines,
        // every few pixels along each segment.
        let px: Vec<(i32, i32)> = plot.iter().map(|p| chart.backend_coord(p)).collect();
        samples.extend(px.iter().copied());
        if s.stroke != Stroke::None {
            for w in px.windows(2) {
                let (a, b) = (w[0], w[1]);
                let steps = ((b.0 - a.0).abs().max((b.1 - a.1).abs()) / 4).max(1);
                samples.extend((1..steps).map(|k| (a.0 + (b.0 - a.0) * k / steps, a.1 + (b.1 - a.1) * k / steps)));
            }
        }
    }
    let entries = series
        .iter()
        .map(|(s, _)| (s.name.clone(), Swatch::Series(s.colour, s.stroke, s.marker)))
        .collect();
    let legend = Legend::new(root, entries)?;
    let place = legend_place(&samples, chart.plotting_area().get_pixel_range(), legend.size());
    legend.draw(root, place)?;
    root.present().map_err(err)
}

/// `text` cut (with an ellipsis) to fit `width` pixels.
pub(super) fn fit_text<DB: DrawingBackend>(area: &Area<DB>, text: &str, px: u32, width: i32) -> Result<String, String> {
    if text_size(area, text, px)?.0 <= width {
        return Ok(text.to_string());
    }
    let mut chars: Vec<char> = text.chars().collect();
    while !chars.is_empty() {
        chars.pop();
        let cut = format!("{}…", chars.iter().collect::<String>());
        if text_size(area, &cut, px)?.0 <= width {
            return Ok(cut);
        }
    }
    Ok(String::new())
}

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
        .map(|row| row.iter().map(|v| v.filter(|v| c.y.valid(*v)).map(c.value_label)).collect())
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
    let vals: Vec<f64> = c.values.iter().flatten().flatten().copied().filter(|v| c.y.valid(*v)).collect();
    let (lo, hi) = vals
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let (lo, hi) = if vals.is_empty() { (1.0, 10.0) } else { (lo, hi) };
    let (start, top_data) = if c.y.log {
        let (range, _) = c.y.range_and_ticks(lo / 1.5, hi);
        (range.start, hi.log10())
    } else {
        (0.0, hi.max(1e-9))
    };
    let band = (legend.size().1 + 16 + value_room) as f64 / plot_h as f64;
    let end = start + (top_data - start) / (1.0 - band.min(0.6));
    let ticks = if c.y.log { log_ticks(start, end) } else { linear_ticks(start, end) };
    let y = Ticked { range: start..end, ticks };
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
    draw_mesh(&mut chart, None, &c.y)?;
    let width = 0.8 / nb as f64;
    for (b, (_, col)) in c.bars.iter().enumerate() {
        let col = *col;
        let bars = c.values.iter().enumerate().filter_map(|(g, row)| {
            let v = row.get(b).copied().flatten().filter(|v| c.y.valid(*v))?;
            let x0 = g as f64 - 0.4 + b as f64 * width;
            Some(Rectangle::new([(x0, start), (x0 + width * 0.92, c.y.plot_at(v))], col.filled()))
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
                let (px, py) = chart.backend_coord(&(x, c.y.plot_at(*v)));
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
    // Group labels under the axis.
    let axis_y = chart.backend_coord(&(0.0, start)).1;
    match &labels {
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
    let (xr, yr) = chart.plotting_area().get_pixel_range();
    let desc = font(AXIS_PX).pos(Pos::new(HPos::Center, VPos::Top));
    let desc_at = ((xr.start + xr.end) / 2, axis_y + label_area as i32 + 4);
    root.draw(&Text::new(c.x_label.as_str(), desc_at, desc)).map_err(err)?;
    let (lw, _) = legend.size();
    legend.draw(root, ((xr.end - 12 - lw).max(xr.start + 12), yr.start + 8))?;
    root.present().map_err(err)
}

pub(super) fn render<DB: DrawingBackend>(root: &Area<DB>, chart: &Chart) -> Result<(), String> {
    match chart {
        Chart::Lines(c) => render_lines(root, c),
        Chart::Bars(c) => render_bars(root, c),
    }
}

/// Writes `chart` as `out_dir/stem.svg` and `out_dir/stem.png`, each
/// through a temporary file in `out_dir` and a rename.
pub(crate) fn save(chart: &Chart, out_dir: &Path, stem: &str) -> Result<Vec<PathBuf>, ReportError> {
    register_font();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| ReportError::Io { path, error }
    };
    let chart_err = |path: &Path| {
        let path = path.to_path_buf();
        move |message| ReportError::Chart { path, message }
    };
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let svg_path = out_dir.join(format!("{stem}.svg"));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        render(&root, chart).map_err(chart_err(&svg_path))?;
    }
    write_atomically(&svg_path, svg.as_bytes())?;
    // The bitmap backend writes the PNG itself (its encoder picks the format
    // by extension), so the temporary name ends in .png.
    let png_path = out_dir.join(format!("{stem}.png"));
    let tmp = out_dir.join(format!(".{stem}.png.tmp{}.png", std::process::id()));
    let written = (|| {
        {
            let root = BitMapBackend::new(&tmp, SIZE).into_drawing_area();
            render(&root, chart).map_err(chart_err(&png_path))?;
        }
        std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &png_path).map_err(io(&png_path))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    Ok(vec![svg_path, png_path])
}
