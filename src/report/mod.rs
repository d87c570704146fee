//! Results: the one result type ([`Row`], its keys and its completion from
//! timings), CSV files appended and synced row by row, charts drawn from
//! rows alone ([`charts`]), the side-by-side comparison of hardware targets
//! ([`compare`]), criterion's estimates as rows ([`criterion`]) and a row
//! printed for people ([`table`]). Nothing here depends on how rows were
//! measured.
//!
//! The schema is documented column by column in results/README.md.

pub mod charts;
pub mod compare;
pub mod criterion;
mod csv_io;
pub mod doc;
pub mod html;
mod inputs;
pub mod machines;
pub mod merge;
mod row;
pub mod table;

pub use csv_io::{CsvAppender, ReportError, header_line, read_rows, to_csv, write_atomically};
pub use inputs::{Input, check_label, parse_input, read_inputs};
pub use row::{COLUMNS, Row, Status, now_rfc3339};

#[cfg(test)]
pub(crate) mod tests {
    pub(crate) use super::row::tests::row;
}
