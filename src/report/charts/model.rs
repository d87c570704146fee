//! What a chart shows, apart from how it is drawn: series of points, bars
//! in groups, and their styles.

use plotters::prelude::RGBColor;

use super::axis::Axis;

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
