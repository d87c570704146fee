//! Charts drawn from result rows alone (so `issbench report` can redraw
//! them from CSV): SVG and PNG of each, with an embedded font (DejaVu Sans,
//! licence in assets/fonts) so the PNGs need no system font libraries.
//!
//! | file stem | what it shows |
//! |---|---|
//! | `speedup_vs_sparsity_b{B}` | measured speedup over dense vs share of removed units, per hidden size and mode, with the ideal (multiply-add ratio) dashed |
//! | `time_vs_hidden_b{B}` | median time vs hidden size per mode and kept fraction (log-log), synthetic grids |
//! | `ptb_table` | the PTB model: dense / ISS / CSR median time per batch, threads and head setting |
//! | `latency_fine_hidden` | median time vs hidden size on the `full` preset's fine grid (latency hysteresis) |
//! | `roofline` | every point's GFLOP/s against its arithmetic intensity, under the machine's measured roofs |
//!
//! Failed rows are skipped, and of rows measuring the same point on the same
//! target ([`Row::key`]) only the newest counts; a chart without data is not
//! drawn. Rows from several hosts may be mixed: series then carry `@host`.
//! The speedup, time and latency charts use one configuration per host and
//! preset: no head, the most threads, the shortest sequence.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{ReportError, Row, write_atomically};
use crate::mode::Mode;

/// Canvas size of every chart, pixels.
pub(crate) const SIZE: (u32, u32) = (1280, 800);
const FAMILY: &str = "sans-serif";
/// Title font size; shrunk down to [`MIN_PX`] when a title is too wide.
const TITLE_PX: u32 = 28;
const AXIS_PX: u32 = 22;
const TICK_PX: u32 = 18;
const LEGEND_PX: u32 = 18;
/// Bar values and bar group labels.
const LABEL_PX: u32 = 16;
const MIN_PX: u32 = 16;
/// Outer margin of the canvas.
const MARGIN: i32 = 24;
const Y_LABEL_AREA: u32 = 110;

static FONT: Once = Once::new();

/// Makes the embedded font the `sans-serif` family of plotters' bitmap
/// backend. Benches call it before criterion draws its own plots: plotters is
/// built without system fonts, so criterion's plots need it too.
pub fn register_font() {
    FONT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
        // Only fails on a corrupt font, which the tests would show.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, bytes);
    });
}

/// Distinct colours for up to 12 series (then repeated).
pub(crate) fn colour(i: usize) -> RGBColor {
    const C: [RGBColor; 12] = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(255, 127, 14),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(23, 190, 207),
        RGBColor(188, 189, 34),
        RGBColor(80, 80, 80),
        RGBColor(0, 0, 128),
        RGBColor(128, 0, 0),
    ];
    C[i % C.len()]
}

/// `c` moved a share `t` of the way to `to`.
fn mix(c: RGBColor, to: RGBColor, t: f64) -> RGBColor {
    let m = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * t).round() as u8;
    RGBColor(m(c.0, to.0), m(c.1, to.1), m(c.2, to.2))
}

/// The colour of a mode, the same in every chart: dense dark grey, iss
/// blue, csr red, other modes (a peer's) from the rest of the palette.
pub(crate) fn mode_colour(mode: Mode) -> RGBColor {
    match mode {
        Mode::Dense => RGBColor(64, 64, 64),
        Mode::Iss => colour(0),
        Mode::Csr => colour(1),
        // The peer's modes: lighter shades of the mode they mirror.
        Mode::OrtDense => RGBColor(165, 165, 165),
        Mode::OrtIss => RGBColor(140, 190, 225),
    }
}

/// Shade `i` of `n` of a colour family, dark to light.
fn shade(base: RGBColor, i: usize, n: usize) -> RGBColor {
    if n <= 1 {
        return base;
    }
    let t = i as f64 / (n - 1) as f64;
    let (dark, light) = (mix(base, BLACK, 0.45), mix(base, WHITE, 0.45));
    mix(dark, light, t)
}

/// One axis: its label and whether it is logarithmic.
#[derive(Clone)]
pub(crate) struct Axis {
    pub label: String,
    pub log: bool,
}

impl Axis {
    pub(crate) fn linear(label: &str) -> Axis {
        Axis {
            label: label.into(),
            log: false,
        }
    }
    pub(crate) fn log(label: &str) -> Axis {
        Axis {
            label: label.into(),
            log: true,
        }
    }
    fn plot_at(&self, v: f64) -> f64 {
        if self.log { v.max(f64::MIN_POSITIVE).log10() } else { v }
    }
    fn value_at(&self, v: f64) -> f64 {
        if self.log { 10f64.powf(v) } else { v }
    }
    /// Whether `v` can be drawn on this axis.
    fn valid(&self, v: f64) -> bool {
        v.is_finite() && (!self.log || v > 0.0)
    }
    /// Plot range with a margin, and the tick positions (in plot space).
    fn range_and_ticks(&self, lo: f64, hi: f64) -> (Range<f64>, Vec<f64>) {
        if self.log {
            let (lo, hi) = (lo.max(1e-12), hi.max(lo.max(1e-12) * 1.0001));
            let (a, b) = (lo.log10() - 0.08, hi.log10() + 0.08);
            (a..b, log_ticks(a, b))
        } else {
            let span = (hi - lo).abs().max(1e-9);
            let (a, b) = (lo - 0.04 * span, hi + 0.04 * span);
            (a..b, linear_ticks(a, b))
        }
    }
}

/// Ticks at 1, 2, 5 (or finer, or only powers of ten) times powers of ten.
fn log_ticks(a: f64, b: f64) -> Vec<f64> {
    let decades = b - a;
    let steps: &[f64] = if decades > 4.0 {
        &[1.0]
    } else if decades > 1.5 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0, 1.5, 2.0, 3.0, 5.0, 7.0]
    };
    let mut ticks = Vec::new();
    for e in (a.floor() as i32)..=(b.ceil() as i32) {
        for &m in steps {
            let t = (m * 10f64.powi(e)).log10();
            if t >= a && t <= b {
                ticks.push(t);
            }
        }
    }
    ticks
}

/// About 8 round ticks between `a` and `b`.
fn linear_ticks(a: f64, b: f64) -> Vec<f64> {
    let raw = ((b - a) / 8.0).max(1e-12);
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| (b - a) / s <= 10.0)
        .unwrap_or(10.0 * mag);
    ((a / step).ceil() as i64..=(b / step).floor() as i64)
        .map(|k| k as f64 * step)
        .collect()
}

/// Formats a tick value compactly (1, 2.5, 0.03, 1500, 1e6).
pub(crate) fn tick_label(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e6).contains(&a) {
        format!("{v:.0e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A value with three significant digits (2822, 85.4, 1.23, 0.0152).
pub(crate) fn value_label(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 || a == 0.0 || !a.is_finite() {
        format!("{v:.0}")
    } else {
        let decimals = (2 - a.log10().floor() as i32).clamp(0, 12) as usize;
        format!("{v:.decimals$}")
    }
}

/// How a series' points are joined.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Stroke {
    Solid,
    /// A thinner solid line (a second mode of the same colour family).
    Thin,
    /// A reference line.
    Dashed,
    /// Markers only (a scatter).
    None,
}

/// The mark at every point.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Marker {
    Circle,
    Square,
    /// A smaller circle, for reference lines.
    Dot,
    /// No marks (a roof, not data).
    None,
}

/// A line series: name, points in data space, colour and style.
pub(crate) struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub colour: RGBColor,
    pub stroke: Stroke,
    pub marker: Marker,
}

impl Series {
    /// A solid line with circles.
    pub(crate) fn new(name: String, points: Vec<(f64, f64)>, colour: RGBColor) -> Series {
        Series {
            name,
            points,
            colour,
            stroke: Stroke::Solid,
            marker: Marker::Circle,
        }
    }
    pub(crate) fn styled(mut self, stroke: Stroke, marker: Marker) -> Series {
        self.stroke = stroke;
        self.marker = marker;
        self
    }
}

/// A chart of lines with a marker at every point.
pub(crate) struct LineChart {
    pub title: String,
    pub x: Axis,
    pub y: Axis,
    pub series: Vec<Series>,
}

/// A grouped bar chart: one group per label, one bar per name.
pub(crate) struct BarChart {
    pub title: String,
    pub y: Axis,
    pub groups: Vec<String>,
    /// Bar names (the legend), one colour each.
    pub bars: Vec<(String, RGBColor)>,
    /// `values[group][bar]`.
    pub values: Vec<Vec<Option<f64>>>,
    /// Printed above each bar where there is room.
    pub value_label: fn(f64) -> String,
    /// What the groups are (the x axis' description).
    pub x_label: String,
}

/// A chart of either kind.
pub(crate) enum Chart {
    Lines(LineChart),
    Bars(BarChart),
}

/// A linear axis in plot space (log axes plot `log10` values) with the
/// tick positions [`Axis::range_and_ticks`] chose.
#[derive(Clone)]
struct Ticked {
    range: Range<f64>,
    ticks: Vec<f64>,
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;
    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let f = (value - self.range.start) / (self.range.end - self.range.start);
        limit.0 + (f * (limit.1 - limit.0) as f64).round() as i32
    }
    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        self.ticks.clone()
    }
    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

fn ticked((range, ticks): (Range<f64>, Vec<f64>)) -> Ticked {
    Ticked { range, ticks }
}

type Coords = Cartesian2d<Ticked, Ticked>;
type Area<DB> = DrawingArea<DB, Shift>;

fn err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> String {
    e.to_string()
}

fn font(px: u32) -> TextStyle<'static> {
    (FAMILY, px).into_font().color(&BLACK)
}

/// Width and height of `text` in pixels.
fn text_size<DB: DrawingBackend>(area: &Area<DB>, text: &str, px: u32) -> Result<(i32, i32), String> {
    let (w, h) = area.estimate_text_size(text, &font(px)).map_err(err)?;
    Ok((w as i32, h as i32))
}

/// Draws the title centred at the top and returns the area below it. The
/// font shrinks until the title fits the width.
fn titled<DB: DrawingBackend>(root: &Area<DB>, title: &str) -> Result<Area<DB>, String> {
    let inner = root.margin(12, MARGIN, MARGIN, MARGIN);
    let width = inner.dim_in_pixel().0 as i32;
    let mut px = TITLE_PX;
    while px > MIN_PX && text_size(root, title, px)?.0 > width {
        px -= 1;
    }
    inner.titled(title, font(px)).map_err(err)
}

/// The mesh: light grid at the ticks, tick labels in data units.
fn draw_mesh<DB: DrawingBackend>(chart: &mut ChartContext<DB, Coords>, x: Option<&Axis>, y: &Axis) -> Result<(), String> {
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
enum Swatch {
    Series(RGBColor, Stroke, Marker),
    Bar(RGBColor),
}

const LEGEND_PAD: i32 = 10;
const LEGEND_ROW: i32 = 26;
const SWATCH_W: i32 = 44;
const SWATCH_GAP: i32 = 8;
/// Space between entries of a legend laid out in one row.
const ENTRY_GAP: i32 = 22;

/// A legend's entries and layout (one column, or one row).
struct Legend {
    entries: Vec<(String, Swatch)>,
    widths: Vec<i32>,
    in_row: bool,
}

impl Legend {
    fn new<DB: DrawingBackend>(area: &Area<DB>, entries: Vec<(String, Swatch)>) -> Result<Legend, String> {
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
    fn row_if_fits(mut self, width: i32) -> Legend {
        self.in_row = self.size_in_row().0 <= width;
        self
    }
    fn size_in_row(&self) -> (i32, i32) {
        let w: i32 = self.widths.iter().sum::<i32>() + ENTRY_GAP * (self.widths.len() as i32 - 1).max(0);
        (w + 2 * LEGEND_PAD, LEGEND_ROW + 2 * LEGEND_PAD)
    }
    fn size(&self) -> (i32, i32) {
        if self.in_row {
            self.size_in_row()
        } else {
            let w = self.widths.iter().copied().max().unwrap_or(0);
            (w + 2 * LEGEND_PAD, LEGEND_ROW * self.entries.len() as i32 + 2 * LEGEND_PAD)
        }
    }
    /// Draws the legend with its top left corner at `(x, y)` (pixels).
    fn draw<DB: DrawingBackend>(&self, area: &Area<DB>, (x, y): (i32, i32)) -> Result<(), String> {
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

fn draw_swatch<DB: DrawingBackend>(area: &Area<DB>, swatch: Swatch, (x, cy): (i32, i32)) -> Result<(), String> {
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
fn legend_place(samples: &[(i32, i32)], (xr, yr): (Range<i32>, Range<i32>), (w, h): (i32, i32)) -> (i32, i32) {
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

fn render_lines<DB: DrawingBackend>(root: &Area<DB>, c: &LineChart) -> Result<(), String> {
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
fn fit_text<DB: DrawingBackend>(area: &Area<DB>, text: &str, px: u32, width: i32) -> Result<String, String> {
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
enum GroupLabels {
    /// One or two lines each, horizontal.
    Lines(Vec<Vec<String>>),
    /// Rotated to read upwards, ending at the axis.
    Rotated(Vec<String>),
}

fn group_labels<DB: DrawingBackend>(area: &Area<DB>, groups: &[String], group_px: i32) -> Result<(GroupLabels, u32), String> {
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

fn render_bars<DB: DrawingBackend>(root: &Area<DB>, c: &BarChart) -> Result<(), String> {
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

fn render<DB: DrawingBackend>(root: &Area<DB>, chart: &Chart) -> Result<(), String> {
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
        move |source| ReportError::Io { path, source }
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
fn main_config<'a>(rows: &[&'a Row]) -> Vec<&'a Row> {
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
fn host_tag<'a>(rows: &[&Row]) -> impl Fn(&Row) -> String + 'a {
    let several = rows.iter().map(|r| &r.host).collect::<BTreeSet<_>>().len() > 1;
    move |r: &Row| if several { format!(" @{}", r.host) } else { String::new() }
}

/// Series label of each hidden size list: `h1024` by its first size, the
/// whole list where two lists share a first size.
fn hidden_names(rows: &[&Row]) -> BTreeMap<String, String> {
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

fn batches(rows: &[&Row]) -> BTreeSet<usize> {
    rows.iter().map(|r| r.batch).collect()
}

fn sorted(mut pts: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    pts
}

fn speedup_vs_sparsity(rows: &[&Row], batch: usize) -> Option<Chart> {
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

fn time_vs_hidden(rows: &[&Row], batch: usize) -> Option<Chart> {
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

fn ptb_table(rows: &[&Row]) -> Option<Chart> {
    ptb_bars(rows, &[Mode::Dense, Mode::Iss, Mode::Csr], "dense / ISS / CSR")
}

/// issbench against ONNX Runtime on the PTB shapes, when peer rows exist.
fn ptb_vs_ort(rows: &[&Row]) -> Option<Chart> {
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
fn ptb_bars(rows: &[&Row], modes: &[Mode], what: &str) -> Option<Chart> {
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

fn latency_fine_hidden(rows: &[&Row]) -> Option<Chart> {
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

fn roofline(rows: &[&Row]) -> Option<Chart> {
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

/// Draws every chart the rows have data for into `out_dir`, each as SVG and
/// PNG, and returns the files written. Rows without data for any chart
/// (none, or only failed ones) give an empty list, not an error.
pub fn draw_all(rows: &[Row], out_dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    // Newest ok row per point and target.
    let mut newest: BTreeMap<String, &Row> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.ok()) {
        let key = r.key();
        if newest.get(&key).is_none_or(|old| old.timestamp <= r.timestamp) {
            newest.insert(key, r);
        }
    }
    // Sparse GEMM problems (`layers` 0) are not LSTMs: every chart here is
    // about LSTMs, so they stay in the CSV and `compare` only.
    let ok: Vec<&Row> = newest.into_values().filter(|r| r.layers > 0).collect();
    let mut charts: Vec<(String, Chart)> = Vec::new();
    for b in batches(&ok) {
        if let Some(c) = speedup_vs_sparsity(&ok, b) {
            charts.push((format!("speedup_vs_sparsity_b{b}"), c));
        }
        if let Some(c) = time_vs_hidden(&ok, b) {
            charts.push((format!("time_vs_hidden_b{b}"), c));
        }
    }
    if let Some(c) = ptb_table(&ok) {
        charts.push(("ptb_table".into(), c));
    }
    if let Some(c) = ptb_vs_ort(&ok) {
        charts.push(("ptb_vs_ort".into(), c));
    }
    if let Some(c) = latency_fine_hidden(&ok) {
        charts.push(("latency_fine_hidden".into(), c));
    }
    if let Some(c) = roofline(&ok) {
        charts.push(("roofline".into(), c));
    }
    let mut files = Vec::new();
    for (stem, chart) in charts {
        files.extend(save(&chart, out_dir, &stem)?);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
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
            "latency_fine_hidden",
            "roofline",
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
        for name in ["h256 iss", "h256 csr", "h512 ideal", "test-host"] {
            assert!(speedup.contains(name), "{name}");
        }
        assert_eq!(files.len(), 16, "{files:?}");
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
        assert!(svg("roofline").contains("roof test-host 2t"));
        assert!(svg("ptb_vs_ort").contains("ort-iss") && !svg("ptb_vs_ort").contains(">csr<"));
        assert!(!svg("ptb_table").contains("ort-dense"));
        assert!(!svg("roofline").contains("broken"), "failed rows are skipped");
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
    fn several_hosts_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let mut all = rows();
        all.extend(rows().into_iter().map(|r| Row {
            host: "other-host".into(),
            threads: 8,
            peak_gflops: 900.0,
            timestamp: "2026-12-02T07:00:00Z".into(),
            ..r
        }));
        draw_all(&all, dir.path()).unwrap();
        let speedup = std::fs::read_to_string(dir.path().join("speedup_vs_sparsity_b1.svg")).unwrap();
        for name in ["h256 @other-host iss", "h256 @test-host csr", "other-host, test-host — 2026-12-02"] {
            assert!(speedup.contains(name), "{name}");
        }
        let roofline = std::fs::read_to_string(dir.path().join("roofline.svg")).unwrap();
        assert!(roofline.contains("roof other-host 8t: 900 GFLOP/s, 22.0 GB/s") && roofline.contains("roof test-host 2t: 340"));
        let ptb = std::fs::read_to_string(dir.path().join("ptb_table.svg")).unwrap();
        assert!(ptb.contains("b10 t8 @other-host"));
    }

    #[test]
    fn a_roof_takes_the_best_reading_of_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let mut all = rows();
        // The same host and threads, re-measured in a slow moment.
        all.extend(rows().into_iter().map(|r| Row {
            batch: r.batch + 1,
            peak_gflops: 100.0,
            bandwidth_gbs: 30.0,
            ..r
        }));
        draw_all(&all, dir.path()).unwrap();
        let roofline = std::fs::read_to_string(dir.path().join("roofline.svg")).unwrap();
        assert!(roofline.contains("roof test-host 2t: 340 GFLOP/s, 30.0 GB/s"), "{roofline}");
        assert_eq!(roofline.matches("roof test-host 2t").count(), 1);
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
