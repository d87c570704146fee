//! The charts' look: canvas and font sizes, the embedded font, colours.

use std::sync::Once;

use plotters::prelude::*;

use super::render::{Area, err};
use crate::mode::Mode;

/// Canvas size of every chart, pixels.
pub(crate) const SIZE: (u32, u32) = (1280, 800);

pub(super) const FAMILY: &str = "sans-serif";

/// Title font size; shrunk down to [`MIN_PX`] when a title is too wide.
pub(super) const TITLE_PX: u32 = 28;

pub(super) const AXIS_PX: u32 = 22;

pub(super) const TICK_PX: u32 = 18;

pub(super) const LEGEND_PX: u32 = 18;

/// Bar values and bar group labels.
pub(super) const LABEL_PX: u32 = 16;

pub(super) const MIN_PX: u32 = 16;

/// Outer margin of the canvas.
pub(super) const MARGIN: i32 = 24;

pub(super) const Y_LABEL_AREA: u32 = 110;

pub(super) static FONT: Once = Once::new();

/// Makes the embedded font the `sans-serif` family of plotters' bitmap
/// backend. Benches call it before criterion draws its own plots: plotters is
/// built without system fonts, so criterion's plots need it too.
pub fn register_font() {
    FONT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");
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
pub(super) fn mix(c: RGBColor, to: RGBColor, t: f64) -> RGBColor {
    let m = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * t).round() as u8;
    RGBColor(m(c.0, to.0), m(c.1, to.1), m(c.2, to.2))
}

/// The colour of a mode, the same in every chart: dense dark grey, iss
/// blue, csr red, bsr purple, the peer's modes lighter shades of theirs.
pub(crate) fn mode_colour(mode: Mode) -> RGBColor {
    match mode {
        Mode::Dense => RGBColor(64, 64, 64),
        Mode::Iss => colour(0),
        Mode::Csr => colour(1),
        Mode::Bsr => colour(4),
        // The peer's modes: lighter shades of the mode they mirror.
        Mode::OrtDense => RGBColor(165, 165, 165),
        Mode::OrtIss => RGBColor(140, 190, 225),
    }
}

/// Shade `i` of `n` of a colour family, dark to light.
pub(super) fn shade(base: RGBColor, i: usize, n: usize) -> RGBColor {
    if n <= 1 {
        return base;
    }
    let t = i as f64 / (n - 1) as f64;
    let (dark, light) = (mix(base, BLACK, 0.45), mix(base, WHITE, 0.45));
    mix(dark, light, t)
}

pub(super) fn font(px: u32) -> TextStyle<'static> {
    (FAMILY, px).into_font().color(&BLACK)
}

/// Width and height of `text` in pixels.
pub(super) fn text_size<DB: DrawingBackend>(area: &Area<DB>, text: &str, px: u32) -> Result<(i32, i32), String> {
    let (w, h) = area.estimate_text_size(text, &font(px)).map_err(err)?;
    Ok((w as i32, h as i32))
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
