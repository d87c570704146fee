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
//! Failed rows are skipped; a chart without data is not drawn.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::prelude::*;

use super::{ReportError, Row, write_atomically};

/// Canvas size of every chart, pixels.
pub(crate) const SIZE: (u32, u32) = (1280, 800);

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
        RGBColor(80, 80, 80),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
        RGBColor(0, 0, 128),
        RGBColor(128, 0, 0),
    ];
    C[i % C.len()]
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
    /// Plot range with a margin, and the tick positions (in plot space).
    fn range_and_ticks(&self, lo: f64, hi: f64) -> (std::ops::Range<f64>, Vec<f64>) {
        if self.log {
            let (lo, hi) = (lo.max(1e-12), hi.max(lo.max(1e-12) * 1.0001));
            let (a, b) = (lo.log10() - 0.08, hi.log10() + 0.08);
            let mut ticks = Vec::new();
            let decades = b - a;
            let steps: &[f64] = if decades > 4.0 {
                &[1.0]
            } else if decades > 1.5 {
                &[1.0, 2.0, 5.0]
            } else {
                &[1.0, 1.5, 2.0, 3.0, 5.0, 7.0]
            };
            for e in (a.floor() as i32)..=(b.ceil() as i32) {
                for &m in steps {
                    let t = (m * 10f64.powi(e)).log10();
                    if t >= a && t <= b {
                        ticks.push(t);
                    }
                }
            }
            (a..b, ticks)
        } else {
            let span = (hi - lo).abs().max(1e-9);
            let (a, b) = (lo - 0.04 * span, hi + 0.04 * span);
            let raw = (b - a) / 8.0;
            let mag = 10f64.powf(raw.log10().floor());
            let step = [1.0, 2.0, 5.0, 10.0]
                .iter()
                .map(|m| m * mag)
                .find(|s| (b - a) / s <= 10.0)
                .unwrap_or(10.0 * mag);
            let ticks = ((a / step).ceil() as i64..=(b / step).floor() as i64)
                .map(|k| k as f64 * step)
                .collect();
            (a..b, ticks)
        }
    }
}

/// Formats a tick value compactly (1, 2.5, 0.03, 1500, 1e+06).
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

/// A line series: name, points in data space, dashed or not.
pub(crate) struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
    /// Markers only, no connecting line (a scatter).
    pub scatter: bool,
    /// Colour index (series sharing one are related); `None`: the series' position.
    pub colour: Option<usize>,
    /// A thinner line with square markers, to tell a second mode apart.
    pub thin: bool,
}

/// A chart of lines with a marker at every point.
pub(crate) struct LineChart {
    pub title: String,
    pub x: Axis,
    pub y: Axis,
    pub series: Vec<Series>,
}

/// A linear axis in plot space (log axes plot `log10` values) with the
/// tick positions [`Axis::range_and_ticks`] chose.
#[derive(Clone)]
struct Ticked {
    range: std::ops::Range<f64>,
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
    fn range(&self) -> std::ops::Range<f64> {
        self.range.clone()
    }
}

fn ticked((range, ticks): (std::ops::Range<f64>, Vec<f64>)) -> Ticked {
    Ticked { range, ticks }
}

type Coords = Cartesian2d<Ticked, Ticked>;

fn draw_error(path: &Path) -> impl Fn(String) -> ReportError + '_ {
    move |message| ReportError::Chart {
        path: path.to_path_buf(),
        message,
    }
}

fn render_lines<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, c: &LineChart) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let all: Vec<(f64, f64)> = c.series.iter().flat_map(|s| s.points.iter().copied()).collect();
    let (xlo, xhi) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (ylo, yhi) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let x = ticked(c.x.range_and_ticks(xlo, xhi));
    let y = ticked(c.y.range_and_ticks(if c.y.log { ylo } else { ylo.min(0.0) }, yhi));
    let mut chart: ChartContext<DB, Coords> = ChartBuilder::on(root)
        .caption(&c.title, ("sans-serif", 26))
        .margin(24)
        .x_label_area_size(70)
        .y_label_area_size(100)
        .build_cartesian_2d(x, y)
        .map_err(e)?;
    let (xa, ya) = (c.x.clone(), c.y.clone());
    chart
        .configure_mesh()
        .x_desc(&c.x.label)
        .y_desc(&c.y.label)
        .label_style(("sans-serif", 18))
        .axis_desc_style(("sans-serif", 20))
        .x_label_formatter(&|v| tick_label(xa.value_at(*v)))
        .y_label_formatter(&|v| tick_label(ya.value_at(*v)))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(e)?;
    for (i, s) in c.series.iter().enumerate() {
        let col = colour(s.colour.unwrap_or(i));
        let pts: Vec<(f64, f64)> = s.points.iter().map(|&(x, y)| (c.x.plot_at(x), c.y.plot_at(y))).collect();
        let width = if s.dashed || s.thin { 2 } else { 3 };
        let style = col.stroke_width(width);
        if !s.scatter {
            if s.dashed {
                chart
                    .draw_series(DashedLineSeries::new(pts.clone(), 10, 6, style))
                    .map_err(e)?
                    .label(&s.name)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], col.stroke_width(2)));
            } else {
                chart
                    .draw_series(LineSeries::new(pts.clone(), style))
                    .map_err(e)?
                    .label(&s.name)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], col.stroke_width(width)));
            }
        }
        if s.thin {
            chart
                .draw_series(
                    pts.iter()
                        .map(|&p| EmptyElement::at(p) + Rectangle::new([(-5, -5), (5, 5)], col.filled())),
                )
                .map_err(e)?;
            continue;
        }
        let markers = chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, if s.dashed { 3 } else { 5 }, col.filled())))
            .map_err(e)?;
        if s.scatter {
            markers
                .label(&s.name)
                .legend(move |(x, y)| Circle::new((x + 12, y), 5, col.filled()));
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(160, 160, 160))
        .draw()
        .map_err(e)?;
    root.present().map_err(e)
}

/// A grouped bar chart: one group per label, one bar per name.
pub(crate) struct BarChart {
    pub title: String,
    pub y: Axis,
    pub groups: Vec<String>,
    pub bars: Vec<String>,
    /// `values[group][bar]`.
    pub values: Vec<Vec<Option<f64>>>,
    /// Printed above each bar (e.g. "%.1f").
    pub value_label: fn(f64) -> String,
}

fn render_bars<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, c: &BarChart) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let vals: Vec<f64> = c.values.iter().flatten().flatten().copied().collect();
    let (lo, hi) = vals
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let y = ticked(c.y.range_and_ticks(if c.y.log { lo / 2.0 } else { 0.0 }, hi * if c.y.log { 2.0 } else { 1.1 }));
    let base = y.range.start;
    let n = c.groups.len();
    let xt: Vec<f64> = (0..n).map(|g| g as f64).collect();
    let mut chart: ChartContext<DB, Coords> = ChartBuilder::on(root)
        .caption(&c.title, ("sans-serif", 26))
        .margin(24)
        .x_label_area_size(70)
        .y_label_area_size(100)
        .build_cartesian_2d(
            Ticked {
                range: -0.5..n as f64 - 0.5,
                ticks: xt,
            },
            y,
        )
        .map_err(e)?;
    let groups = c.groups.clone();
    let ya = c.y.clone();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc(&c.y.label)
        .label_style(("sans-serif", if n > 8 { 13 } else { 17 }))
        .axis_desc_style(("sans-serif", 20))
        .x_label_formatter(&|v| groups.get(v.round().max(0.0) as usize).cloned().unwrap_or_default())
        .y_label_formatter(&|v| tick_label(ya.value_at(*v)))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(e)?;
    let width = 0.8 / c.bars.len().max(1) as f64;
    let label_size = if n * c.bars.len() > 24 { 11 } else { 15 };
    for (b, name) in c.bars.iter().enumerate() {
        let col = colour(b);
        let rects: Vec<_> = c
            .values
            .iter()
            .enumerate()
            .filter_map(|(g, row)| row.get(b).copied().flatten().map(|v| (g, v)))
            .map(|(g, v)| {
                let x0 = g as f64 - 0.4 + b as f64 * width;
                Rectangle::new([(x0, base), (x0 + width * 0.92, c.y.plot_at(v))], col.filled())
            })
            .collect();
        chart
            .draw_series(rects)
            .map_err(e)?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 7), (x + 18, y + 7)], col.filled()));
        let texts: Vec<_> = c
            .values
            .iter()
            .enumerate()
            .filter_map(|(g, row)| row.get(b).copied().flatten().map(|v| (g, v)))
            .map(|(g, v)| {
                let x = g as f64 - 0.4 + (b as f64 + 0.46) * width;
                Text::new(
                    (c.value_label)(v),
                    (x, c.y.plot_at(v)),
                    ("sans-serif", label_size).into_font().color(&BLACK).pos(text_anchor_bottom()),
                )
            })
            .collect();
        chart.draw_series(texts).map_err(e)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(160, 160, 160))
        .draw()
        .map_err(e)?;
    root.present().map_err(e)
}

fn text_anchor_bottom() -> plotters::style::text_anchor::Pos {
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    Pos::new(HPos::Center, VPos::Bottom)
}

/// A chart of either kind.
pub(crate) enum Chart {
    Lines(LineChart),
    Bars(BarChart),
}

fn render<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, chart: &Chart) -> Result<(), String> {
    match chart {
        Chart::Lines(c) => render_lines(root, c),
        Chart::Bars(c) => render_bars(root, c),
    }
}

/// Writes `chart` as `out_dir/stem.svg` and `out_dir/stem.png`, each
/// through a temporary file and a rename.
pub(crate) fn save(chart: &Chart, out_dir: &Path, stem: &str) -> Result<Vec<PathBuf>, ReportError> {
    register_font();
    std::fs::create_dir_all(out_dir).map_err(|source| ReportError::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let svg_path = out_dir.join(format!("{stem}.svg"));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        render(&root, chart).map_err(draw_error(&svg_path))?;
    }
    write_atomically(&svg_path, svg.as_bytes())?;
    let png_path = out_dir.join(format!("{stem}.png"));
    let tmp = out_dir.join(format!(".{stem}.tmp{}.png", std::process::id()));
    {
        let root = BitMapBackend::new(&tmp, SIZE).into_drawing_area();
        render(&root, chart).map_err(draw_error(&png_path))?;
    }
    std::fs::rename(&tmp, &png_path).map_err(|source| ReportError::Io {
        path: png_path.clone(),
        source,
    })?;
    Ok(vec![svg_path, png_path])
}

/// "host-a, host-b — 2026-11-29": who measured, and the newest date.
pub(crate) fn provenance(rows: &[&Row]) -> String {
    let hosts: BTreeSet<&str> = rows.iter().map(|r| r.host.as_str()).collect();
    let date = rows.iter().map(|r| r.timestamp.get(..10).unwrap_or("")).max().unwrap_or("");
    format!("{} — {date}", hosts.into_iter().collect::<Vec<_>>().join(", "))
}

/// The first number of a `/`-separated size list.
pub(crate) fn first_size(sizes: &str) -> f64 {
    sizes.split('/').next().and_then(|s| s.parse().ok()).unwrap_or(0.0)
}

/// Rows of one configuration per point: layers only, the most threads, the
/// shortest sequence (what the charts compare across sizes and modes).
fn main_config<'a>(rows: &[&'a Row]) -> Vec<&'a Row> {
    let threads = rows.iter().map(|r| r.threads).max().unwrap_or(0);
    let plain: Vec<&Row> = rows.iter().copied().filter(|r| !r.head && r.threads == threads).collect();
    let seq = plain.iter().map(|r| r.seq).min().unwrap_or(0);
    plain.into_iter().filter(|r| r.seq == seq).collect()
}

fn batches(rows: &[&Row]) -> BTreeSet<usize> {
    rows.iter().map(|r| r.batch).collect()
}

fn speedup_vs_sparsity(rows: &[&Row], batch: usize) -> Option<Chart> {
    let sel: Vec<&Row> = main_config(rows)
        .into_iter()
        .filter(|r| r.batch == batch && (r.mode == "iss" || r.mode == "csr") && r.speedup_vs_dense.is_some())
        .collect();
    if sel.is_empty() {
        return None;
    }
    let mut measured: BTreeMap<(u64, String), Vec<(f64, f64)>> = BTreeMap::new();
    let mut ideal: BTreeMap<u64, Vec<(f64, f64)>> = BTreeMap::new();
    for r in &sel {
        let h = first_size(&r.hidden_full) as u64;
        let x = (1.0 - r.kept_fraction) * 100.0;
        measured
            .entry((h, r.mode.clone()))
            .or_insert_with(|| vec![(0.0, 1.0)])
            .push((x, r.speedup_vs_dense.unwrap_or(1.0)));
        if r.mode == "iss" {
            ideal.entry(h).or_insert_with(|| vec![(0.0, 1.0)]).push((x, r.ideal_speedup));
        }
    }
    let hiddens: Vec<u64> = measured.keys().map(|(h, _)| *h).collect::<BTreeSet<_>>().into_iter().collect();
    let colour_of = |h: u64| hiddens.iter().position(|&x| x == h);
    let mut series = Vec::new();
    for ((h, mode), mut pts) in measured {
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        series.push(Series {
            name: format!("h{h} {mode}"),
            points: pts,
            dashed: false,
            scatter: false,
            colour: colour_of(h),
            thin: mode == "csr",
        });
        if mode == "iss"
            && let Some(mut pts) = ideal.remove(&h)
        {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            series.push(Series {
                name: format!("h{h} ideal"),
                points: pts,
                dashed: true,
                scatter: false,
                colour: colour_of(h),
                thin: false,
            });
        }
    }
    let ys: Vec<f64> = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).collect();
    let spread = ys.iter().copied().fold(0.0, f64::max) / ys.iter().copied().fold(f64::INFINITY, f64::min);
    Some(Chart::Lines(LineChart {
        title: format!("Speedup over dense vs removed units, batch {batch} — {}", provenance(&sel)),
        x: Axis::linear("hidden units removed by ISS (%)"),
        y: if spread > 20.0 {
            Axis::log("speedup over dense (x, log)")
        } else {
            Axis::linear("speedup over dense (x)")
        },
        series,
    }))
}

fn time_vs_hidden(rows: &[&Row], batch: usize) -> Option<Chart> {
    let sel: Vec<&Row> = main_config(rows)
        .into_iter()
        .filter(|r| r.batch == batch && r.preset != "ptb" && r.preset != "full")
        .collect();
    let sizes: BTreeSet<u64> = sel.iter().map(|r| first_size(&r.hidden_full) as u64).collect();
    if sizes.len() < 2 {
        return None;
    }
    let mut by: BTreeMap<(String, u64), Vec<(f64, f64)>> = BTreeMap::new();
    for r in &sel {
        // Dense time does not depend on the kept fraction: one series.
        // Kept fractions to two decimals: 26 of 256 units is the 0.1 series.
        let k = if r.mode == "dense" {
            0
        } else {
            (r.kept_fraction * 100.0).round() as u64
        };
        by.entry((r.mode.clone(), k))
            .or_default()
            .push((first_size(&r.hidden_full), r.median_ms()));
    }
    let series = by
        .into_iter()
        .map(|((mode, k), mut pts)| {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series {
                name: if mode == "dense" {
                    mode
                } else {
                    format!("{mode} kept {}", k as f64 / 100.0)
                },
                points: pts,
                dashed: false,
                scatter: false,
                colour: None,
                thin: false,
            }
        })
        .collect();
    Some(Chart::Lines(LineChart {
        title: format!("Time per forward pass vs hidden size, batch {batch} — {}", provenance(&sel)),
        x: Axis::log("hidden size of the full model (units, log)"),
        y: Axis::log("median time (ms, log)"),
        series,
    }))
}

fn ptb_table(rows: &[&Row]) -> Option<Chart> {
    let ptb: Vec<&Row> = rows.iter().copied().filter(|r| r.model.starts_with("ptb")).collect();
    let seq = ptb.iter().map(|r| r.seq).min()?;
    let sel: Vec<&Row> = ptb.into_iter().filter(|r| r.seq == seq).collect();
    let configs: BTreeSet<(bool, usize, usize)> = sel.iter().map(|r| (r.head, r.batch, r.threads)).collect();
    let modes = ["dense", "iss", "csr"];
    let groups: Vec<String> = configs
        .iter()
        .map(|&(head, b, t)| format!("b{b} t{t}{}", if head { " +head" } else { "" }))
        .collect();
    let values = configs
        .iter()
        .map(|&(head, b, t)| {
            modes
                .iter()
                .map(|m| {
                    sel.iter()
                        .filter(|r| r.head == head && r.batch == b && r.threads == t && r.mode == *m)
                        .max_by(|a, b| a.timestamp.cmp(&b.timestamp))
                        .map(|r| r.median_ms())
                })
                .collect()
        })
        .collect();
    let sizes = sel
        .first()
        .map(|r| format!("{} vs {}", r.hidden_full, r.hidden_kept))
        .unwrap_or_default();
    Some(Chart::Bars(BarChart {
        title: format!("PTB LSTM {sizes}, seq {seq}: dense / ISS / CSR — {}", provenance(&sel)),
        y: Axis::log("median time per forward pass (ms, log)"),
        groups,
        bars: modes.iter().map(|m| m.to_string()).collect(),
        values,
        value_label: |v| tick_label((v * 10.0).round() / 10.0),
    }))
}

fn latency_fine_hidden(rows: &[&Row]) -> Option<Chart> {
    let sel: Vec<&Row> = rows.iter().copied().filter(|r| r.preset == "full").collect();
    if sel.len() < 2 {
        return None;
    }
    let mut by: BTreeMap<(String, usize), Vec<(f64, f64)>> = BTreeMap::new();
    for r in &sel {
        by.entry((r.mode.clone(), r.batch))
            .or_default()
            .push((first_size(&r.hidden_full), r.median_ms()));
    }
    let series = by
        .into_iter()
        .map(|((mode, b), mut pts)| {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series {
                name: format!("{mode} b{b}"),
                points: pts,
                dashed: false,
                scatter: false,
                colour: None,
                thin: false,
            }
        })
        .collect();
    Some(Chart::Lines(LineChart {
        title: format!("Latency on a fine hidden-size grid (steps of 32) — {}", provenance(&sel)),
        x: Axis::linear("hidden size (units)"),
        y: Axis::log("median time (ms, log)"),
        series,
    }))
}

/// FLOPs per byte of weights read per step: dense and iss read 4 bytes per
/// weight, csr 8 (value and column index).
pub(crate) fn intensity(r: &Row) -> f64 {
    let bytes = r.nonzero_weights as f64 * if r.mode == "csr" { 8.0 } else { 4.0 };
    2.0 * r.macs_per_step as f64 * r.batch as f64 / bytes.max(1.0)
}

fn roofline(rows: &[&Row]) -> Option<Chart> {
    let sel: Vec<&Row> = rows.iter().copied().filter(|r| r.gflops > 0.0 && r.nonzero_weights > 0).collect();
    if sel.is_empty() {
        return None;
    }
    let mut by: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for r in &sel {
        by.entry(r.mode.clone()).or_default().push((intensity(r), r.gflops));
    }
    let xs: Vec<f64> = sel.iter().map(|r| intensity(r)).collect();
    let (xlo, xhi) = xs.iter().fold((f64::INFINITY, 0.0f64), |(a, b), &x| (a.min(x), b.max(x)));
    let mut series: Vec<Series> = by
        .into_iter()
        .map(|(mode, points)| Series {
            name: mode,
            points,
            dashed: false,
            scatter: true,
            colour: None,
            thin: false,
        })
        .collect();
    let roofs: BTreeMap<(String, usize), (f64, f64)> = sel
        .iter()
        .filter(|r| r.peak_gflops > 0.0 && r.bandwidth_gbs > 0.0)
        .map(|r| ((r.host.clone(), r.threads), (r.peak_gflops, r.bandwidth_gbs)))
        .collect();
    let (x0, x1) = (xlo / 2.0, (xhi * 2.0).max(xlo * 4.0));
    for ((host, threads), (peak, bw)) in roofs {
        let ridge = peak / bw;
        let mut pts = vec![(x0, (bw * x0).min(peak))];
        if ridge > x0 && ridge < x1 {
            pts.push((ridge, peak));
        }
        pts.push((x1, (bw * x1).min(peak)));
        series.push(Series {
            name: format!("roof {host} {threads}t: {peak:.0} GFLOP/s, {bw:.1} GB/s DRAM (points above it run from cache)"),
            points: pts,
            dashed: true,
            scatter: false,
            colour: None,
            thin: false,
        });
    }
    Some(Chart::Lines(LineChart {
        title: format!(
            "Roofline: each point against the measured peak and bandwidth — {}",
            provenance(&sel)
        ),
        x: Axis::log("arithmetic intensity (FLOP per byte of weights, log)"),
        y: Axis::log("GFLOP/s (log)"),
        series,
    }))
}

/// Draws every chart the rows have data for into `out_dir` (SVG and PNG)
/// and returns the files written; no rows, no files.
pub fn draw_all(rows: &[Row], out_dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let ok: Vec<&Row> = rows.iter().filter(|r| r.ok()).collect();
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
                            mode: mode.into(),
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
        for (mode, ms) in [("dense", 140.0), ("iss", 15.0), ("csr", 95.0)] {
            rows.push(Row {
                model: "ptb-iss".into(),
                preset: "ptb".into(),
                hidden_full: "1500/1500".into(),
                hidden_kept: "373/315".into(),
                mode: mode.into(),
                batch: 10,
                median_ns: ms * 1e6,
                ..row()
            });
        }
        for h in [64usize, 96, 128] {
            rows.push(Row {
                preset: "full".into(),
                hidden_full: format!("{h}/{h}"),
                median_ns: h as f64 * 1e4,
                ..row()
            });
        }
        rows.push(Row {
            status: "failed: broken.safetensors: corrupt".into(),
            model: "broken".into(),
            ..row()
        });
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
        assert!(svg("time_vs_hidden_b1").contains("iss kept 0.25"));
        assert!(svg("ptb_table").contains("373/315"));
        assert!(svg("roofline").contains("roof test-host 2t"));
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
            status: "failed: x".into(),
            ..row()
        }];
        assert!(draw_all(&failed, dir.path()).unwrap().is_empty());
    }

    // SCRATCH-BEGIN (delete)
    pub(crate) fn realistic(host: &str, scale: f64, ts: &str) -> Vec<Row> {
        let mut rows = Vec::new();
        let base = Row {
            host: host.into(),
            timestamp: ts.into(),
            ..row()
        };
        for h in [256usize, 512, 1024] {
            for batch in [1usize, 10] {
                let dense_ms = scale * (h * h) as f64 * batch as f64 / 4e5 * if batch == 10 { 0.3 } else { 1.0 };
                let macs = 8 * h * h * 2;
                rows.push(Row {
                    preset: "quick".into(),
                    model: format!("lstm2x{h}-k1"),
                    hidden_full: format!("{h}/{h}"),
                    hidden_kept: format!("{h}/{h}"),
                    batch,
                    median_ns: dense_ms * 1e6,
                    nonzero_weights: macs,
                    macs_per_step: macs,
                    gflops: 2.0 * macs as f64 * batch as f64 * 30.0 / (dense_ms * 1e6),
                    ..base.clone()
                });
                for k in [0.5, 0.25, 0.1] {
                    let kh = (h as f64 * k) as usize;
                    for (mode, gain) in [("iss", 0.7 / (k * k)), ("csr", 0.4 / k)] {
                        let ms = dense_ms / gain;
                        let nz = 8 * kh * kh * 2;
                        rows.push(Row {
                            preset: "quick".into(),
                            model: format!("lstm2x{h}-k{k}"),
                            hidden_full: format!("{h}/{h}"),
                            hidden_kept: format!("{kh}/{kh}"),
                            kept_fraction: k,
                            mode: mode.into(),
                            batch,
                            median_ns: ms * 1e6,
                            speedup_vs_dense: Some(gain),
                            ideal_speedup: 1.0 / (k * k),
                            nonzero_weights: nz,
                            macs_per_step: nz,
                            gflops: 2.0 * nz as f64 * batch as f64 * 30.0 / (ms * 1e6),
                            ..base.clone()
                        });
                    }
                }
            }
        }
        for head in [false, true] {
            for batch in [1usize, 10, 64] {
                for threads in [1usize, 2] {
                    for (mode, ms) in [("dense", 140.0), ("iss", 15.0), ("csr", 95.0)] {
                        let ms = ms * scale * (batch as f64).sqrt() * if threads == 1 { 1.8 } else { 1.0 } * if head { 1.4 } else { 1.0 };
                        rows.push(Row {
                            model: "ptb-iss".into(),
                            preset: "ptb".into(),
                            hidden_full: "1500/1500".into(),
                            hidden_kept: "373/315".into(),
                            kept_fraction: 0.229,
                            mode: mode.into(),
                            batch,
                            threads,
                            head,
                            median_ns: ms * 1e6,
                            speedup_vs_dense: Some(140.0 / ms),
                            ideal_speedup: 9.0,
                            ..base.clone()
                        });
                    }
                }
            }
        }
        for h in (64..=2048).step_by(32) {
            for batch in [1usize, 10] {
                let ms = scale * (h * h) as f64 / 4e5 * (1.0 + batch as f64 * 0.2) * if h % 256 == 32 { 1.3 } else { 1.0 };
                rows.push(Row {
                    preset: "full".into(),
                    model: format!("lstm2x{h}-k1"),
                    hidden_full: format!("{h}/{h}"),
                    batch,
                    median_ns: ms * 1e6,
                    ..base.clone()
                });
            }
        }
        rows
    }

    #[test]
    #[ignore]
    fn scratch_visual() {
        let dir = std::path::Path::new("/tmp/chart-check");
        let _ = std::fs::remove_dir_all(dir);
        let files = draw_all(&realistic("h2", 1.0, "2026-11-29T07:00:00Z"), dir).unwrap();
        eprintln!("{files:?}");
        let mut both = realistic("h2", 1.0, "2026-11-29T07:00:00Z");
        both.extend(realistic("big-server-01", 0.4, "2026-11-30T07:00:00Z"));
        let c = crate::report::compare::compare(&both, dir).unwrap();
        eprintln!("{:?} {}", c.files, c.shared_points);
    }
    // SCRATCH-END
}
