//! Drawing a [`Chart`] with plotters into SVG and PNG: the title and the
//! mesh every kind shares, and the files.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axis::{Axis, Ticked, tick_label};
use super::bars::render_bars;
use super::dots::render_dots;
use super::lines::render_lines;
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

pub(super) fn render<DB: DrawingBackend>(root: &Area<DB>, chart: &Chart) -> Result<(), String> {
    match chart {
        Chart::Lines(c) => render_lines(root, c),
        Chart::Bars(c) => render_bars(root, c),
        Chart::Dots(c) => render_dots(root, c),
    }
}

/// The chart as an SVG document (what the HTML report inlines).
pub(crate) fn svg_text(chart: &Chart) -> Result<String, String> {
    register_font();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, chart.size()).into_drawing_area();
        render(&root, chart)?;
    }
    Ok(svg)
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
    let svg = svg_text(chart).map_err(chart_err(&svg_path))?;
    write_atomically(&svg_path, svg.as_bytes())?;
    // The bitmap backend writes the PNG itself (its encoder picks the format
    // by extension), so the temporary name ends in .png.
    let png_path = out_dir.join(format!("{stem}.png"));
    let tmp = out_dir.join(format!(".{stem}.png.tmp{}.png", std::process::id()));
    let written = (|| {
        {
            let root = BitMapBackend::new(&tmp, chart.size()).into_drawing_area();
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
