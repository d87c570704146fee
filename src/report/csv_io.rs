//! Reading and appending result CSVs.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::Row;

/// A result file that cannot be read or written.
#[derive(Debug, Error)]
pub enum ReportError {
    /// Reading or writing failed.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// A row does not fit the schema.
    #[error("{}: {source}", path.display())]
    Csv { path: PathBuf, source: csv::Error },
    /// Drawing a chart failed.
    #[error("{}: {message}", path.display())]
    Chart { path: PathBuf, message: String },
    /// Nothing to report.
    #[error("{0}")]
    Empty(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads every row of every file, in order. Files may come from different
/// machines; each must have the header of this schema.
pub fn read_rows(paths: &[PathBuf]) -> Result<Vec<Row>, ReportError> {
    let mut rows = Vec::new();
    for path in paths {
        let mut reader = csv::Reader::from_path(path).map_err(|source| ReportError::Csv {
            path: path.clone(),
            source,
        })?;
        for row in reader.deserialize() {
            rows.push(row.map_err(|source| ReportError::Csv {
                path: path.clone(),
                source,
            })?);
        }
    }
    Ok(rows)
}

/// Appends rows to a CSV file, writing the header when the file is new and
/// flushing after every row, so an interrupted sweep loses at most the
/// point in progress.
pub struct CsvAppender {
    path: PathBuf,
    writer: csv::Writer<File>,
}

impl CsvAppender {
    /// Opens `path` for appending. A last line cut short by an earlier
    /// interruption is removed first, so the file stays valid CSV.
    pub fn open(path: &Path) -> Result<CsvAppender, ReportError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io_err(path))?;
        let mut existing = Vec::new();
        file.read_to_end(&mut existing).map_err(io_err(path))?;
        let complete = match existing.iter().rposition(|&b| b == b'\n') {
            Some(i) => i + 1,
            None => 0,
        };
        if complete < existing.len() {
            file.set_len(complete as u64).map_err(io_err(path))?;
            file.seek(SeekFrom::End(0)).map_err(io_err(path))?;
        }
        let writer = csv::WriterBuilder::new().has_headers(complete == 0).from_writer(file);
        Ok(CsvAppender {
            path: path.to_path_buf(),
            writer,
        })
    }

    /// Appends one row and flushes it to the file.
    pub fn append(&mut self, row: &Row) -> Result<(), ReportError> {
        self.writer.serialize(row).map_err(|source| ReportError::Csv {
            path: self.path.clone(),
            source,
        })?;
        self.writer.flush().map_err(io_err(&self.path))?;
        self.writer.get_ref().sync_data().map_err(io_err(&self.path))
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `rows` as CSV text with the header: what a sweep's file holds.
pub fn to_csv(rows: &[Row]) -> Result<String, ReportError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for r in rows {
        writer.serialize(r).map_err(|source| ReportError::Csv {
            path: PathBuf::from("<output>"),
            source,
        })?;
    }
    let bytes = writer.into_inner().map_err(|e| ReportError::Io {
        path: PathBuf::from("<output>"),
        source: e.into_error(),
    })?;
    Ok(String::from_utf8(bytes).expect("CSV of UTF-8 fields is UTF-8"))
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    crate::checkpoint::write_atomically(path, bytes).map_err(io_err(path))
}
