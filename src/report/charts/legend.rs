//! Legends: entries with a swatch of their series' look, laid out in a
//! column or a row, placed where the data is not (or beside the plot).

use std::ops::Range;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::model::{Marker, Stroke};
use super::render::{Area, err};
use super::style::*;

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

/// Space between the plot and a legend beside it, pixels.
pub(super) const BESIDE_GAP: i32 = 24;

/// Widest legend name, pixels (longer ones end in an ellipsis).
pub(super) const LEGEND_TEXT_MAX: i32 = 460;

/// A legend's entries and layout (one column, or one row).
pub(super) struct Legend {
    entries: Vec<(String, Swatch)>,
    widths: Vec<i32>,
    in_row: bool,
}

impl Legend {
    /// A legend of `entries`, names cut to [`LEGEND_TEXT_MAX`] pixels.
    pub(super) fn new<DB: DrawingBackend>(area: &Area<DB>, entries: Vec<(String, Swatch)>) -> Result<Legend, String> {
        let entries: Vec<(String, Swatch)> = entries
            .into_iter()
            .map(|(name, swatch)| fit_text(area, &name, LEGEND_PX, LEGEND_TEXT_MAX).map(|n| (n, swatch)))
            .collect::<Result<_, _>>()?;
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
            draw_marker(area, marker, (x + SWATCH_W / 2, cy), c)
        }
    }
}

/// Draws `marker` centred at `(x, y)` (pixels of `area`).
pub(super) fn draw_marker<DB: DrawingBackend>(area: &Area<DB>, marker: Marker, (x, y): (i32, i32), c: RGBColor) -> Result<(), String> {
    match marker {
        Marker::Circle => area.draw(&Circle::new((x, y), 6, c.filled())),
        Marker::Dot => area.draw(&Circle::new((x, y), 4, c.filled())),
        Marker::Ring => area.draw(&Circle::new((x, y), 6, c.stroke_width(3))),
        Marker::Square => area.draw(&Rectangle::new([(x - 5, y - 5), (x + 5, y + 5)], c.filled())),
        Marker::Triangle => area.draw(&Polygon::new(vec![(x, y - 7), (x + 7, y + 5), (x - 7, y + 5)], c.filled())),
        Marker::Diamond => area.draw(&Polygon::new(vec![(x, y - 7), (x + 7, y), (x, y + 7), (x - 7, y)], c.filled())),
        Marker::None => Ok(()),
    }
    .map_err(err)
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
    candidates
        .into_iter()
        .min_by_key(|&place| covered(samples, place, (w, h)))
        .unwrap_or((left, top))
}

/// How many of `samples` a box of `size` at `place` covers (with a margin).
pub(super) fn covered(samples: &[(i32, i32)], (x, y): (i32, i32), (w, h): (i32, i32)) -> usize {
    samples
        .iter()
        .filter(|&&(px, py)| px >= x - 10 && px <= x + w + 10 && py >= y - 10 && py <= y + h + 10)
        .count()
}

/// Whether a legend of `size` goes beside the plot rather than in it: when
/// its best place inside still covers data, or it would fill more than a
/// fifth of the plot.
pub(super) fn goes_beside(samples: &[(i32, i32)], plot: (std::ops::Range<i32>, std::ops::Range<i32>), size: (i32, i32)) -> bool {
    let area = (plot.0.end - plot.0.start).max(1) as f64 * (plot.1.end - plot.1.start).max(1) as f64;
    let place = legend_place(samples, plot, size);
    covered(samples, place, size) > 0 || (size.0 * size.1) as f64 > area / 5.0
}
