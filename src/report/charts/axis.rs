//! Axes: linear or log scales, their ticks and labels.

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};

/// One axis: its label, whether it is logarithmic, and where its ticks go
/// when not at round numbers.
#[derive(Clone)]
pub(crate) struct Axis {
    pub label: String,
    pub log: bool,
    /// Ticks at these values (the sizes measured) instead of round ones.
    pub ticks_at: Vec<f64>,
}

impl Axis {
    pub(crate) fn linear(label: &str) -> Axis {
        Axis {
            label: label.into(),
            log: false,
            ticks_at: Vec::new(),
        }
    }
    pub(crate) fn log(label: &str) -> Axis {
        Axis {
            label: label.into(),
            log: true,
            ticks_at: Vec::new(),
        }
    }
    /// The same axis with ticks at `values` only.
    pub(crate) fn with_ticks_at(mut self, values: Vec<f64>) -> Axis {
        self.ticks_at = values;
        self
    }
    pub(super) fn plot_at(&self, v: f64) -> f64 {
        if self.log { v.max(f64::MIN_POSITIVE).log10() } else { v }
    }
    pub(super) fn value_at(&self, v: f64) -> f64 {
        if self.log { 10f64.powf(v) } else { v }
    }
    /// Whether `v` can be drawn on this axis.
    pub(super) fn valid(&self, v: f64) -> bool {
        v.is_finite() && (!self.log || v > 0.0)
    }
    /// Plot range with a margin, and the tick positions (in plot space).
    pub(super) fn range_and_ticks(&self, lo: f64, hi: f64) -> (Range<f64>, Vec<f64>) {
        let (range, ticks) = self.round_range_and_ticks(lo, hi);
        if self.ticks_at.is_empty() {
            return (range, ticks);
        }
        let at = self
            .ticks_at
            .iter()
            .filter(|v| self.valid(**v))
            .map(|&v| self.plot_at(v))
            .filter(|v| range.contains(v))
            .collect();
        (range, at)
    }
    fn round_range_and_ticks(&self, lo: f64, hi: f64) -> (Range<f64>, Vec<f64>) {
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
pub(super) fn log_ticks(a: f64, b: f64) -> Vec<f64> {
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
pub(super) fn linear_ticks(a: f64, b: f64) -> Vec<f64> {
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

/// A linear axis in plot space (log axes plot `log10` values) with the
/// tick positions [`Axis::range_and_ticks`] chose.
#[derive(Clone)]
pub(super) struct Ticked {
    pub(super) range: Range<f64>,
    pub(super) ticks: Vec<f64>,
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

pub(super) fn ticked((range, ticks): (Range<f64>, Vec<f64>)) -> Ticked {
    Ticked { range, ticks }
}
