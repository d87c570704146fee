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
    Triangle,
    Diamond,
    /// A ring: a circle not filled.
    Ring,
    /// A smaller circle, for reference lines.
    Dot,
    /// No marks (a roof, not data).
    None,
}

/// Distinct markers for series that colour alone should not tell apart
/// (machines): with [`super::style::colour`], ten series differ in both.
pub(crate) fn marker(i: usize) -> Marker {
    const M: [Marker; 5] = [Marker::Circle, Marker::Square, Marker::Triangle, Marker::Diamond, Marker::Ring];
    M[i % M.len()]
}

/// A line series: name, points in data space, colour and style.
pub(crate) struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub colour: RGBColor,
    pub stroke: Stroke,
    pub marker: Marker,
    /// An interval around each point's y (a confidence interval), drawn as
    /// a whisker; empty, or one per point.
    pub errors: Vec<Option<(f64, f64)>>,
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
            errors: Vec::new(),
        }
    }
    /// The same series with a whisker at each point.
    pub(crate) fn with_errors(mut self, errors: Vec<Option<(f64, f64)>>) -> Series {
        self.errors = errors;
        self
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

/// Points over named categories (a dot plot): each series has at most
/// one value per category, with an optional interval; series are set a
/// little apart within a category so that their marks do not hide each
/// other. For ratios over many points (machines compared).
pub(crate) struct DotChart {
    pub title: String,
    pub y: Axis,
    /// The categories, left to right.
    pub categories: Vec<String>,
    /// What the categories are (the x axis' description).
    pub x_label: String,
    /// Per series: name, colour, marker, and per category the value and
    /// its interval.
    pub series: Vec<DotSeries>,
    /// A horizontal reference line (value and name), such as 1 for "as
    /// fast as the baseline".
    pub reference: Option<(f64, String)>,
}

/// A value's interval, low and high.
pub(crate) type Interval = (f64, f64);

/// A value with its interval, if it has one.
pub(crate) type WithInterval = (f64, Option<Interval>);

/// One series of a [`DotChart`].
pub(crate) struct DotSeries {
    pub name: String,
    pub colour: RGBColor,
    pub marker: Marker,
    /// `values[category]`: the value and its interval.
    pub values: Vec<Option<WithInterval>>,
}

/// A grouped bar chart: one group per label, one bar per name. Bars are
/// drawn from zero on a linear axis (a bar's height on a log axis means
/// nothing).
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

/// A chart of any kind.
pub(crate) enum Chart {
    Lines(LineChart),
    Bars(BarChart),
    Dots(DotChart),
}

impl Chart {
    /// The title (what the HTML report names the chart by).
    pub(crate) fn title(&self) -> &str {
        match self {
            Chart::Lines(c) => &c.title,
            Chart::Bars(c) => &c.title,
            Chart::Dots(c) => &c.title,
        }
    }
    /// Canvas size, pixels: wider for dot charts of many categories.
    pub(crate) fn size(&self) -> (u32, u32) {
        let (w, h) = super::style::SIZE;
        match self {
            Chart::Dots(c) => (w.max(560 + 22 * c.categories.len() as u32).min(4000), h),
            _ => (w, h),
        }
    }
}
