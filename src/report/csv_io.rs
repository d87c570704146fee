//! Reading result CSVs, and appending to them without ever losing or
//! corrupting a row: one writer at a time (a lock), only files whose header
//! is issbench's are repaired or upgraded, every row is synced as it is
//! written, and a row that cannot be written whole is taken back out.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::row::{COLUMNS, OLD_COLUMNS};
use super::{Row, Status};

/// A result file that cannot be read or written.
#[derive(Debug, Error)]
pub enum ReportError {
    /// Reading or writing failed.
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },
    /// A row does not fit the schema.
    #[error("{}: {error}", path.display())]
    Csv { path: PathBuf, error: csv::Error },
    /// A row whose times cannot be.
    #[error("{}: row {row}: {problem}", path.display())]
    Impossible { path: PathBuf, row: usize, problem: String },
    /// A file that is not issbench's results, which issbench will not touch.
    #[error("{}: {problem}", path.display())]
    Foreign { path: PathBuf, problem: String },
    /// Another issbench is writing the file.
    #[error("{}: another issbench is writing this file (its lock {} is held); wait for it or use another --out", path.display(), lock.display())]
    Locked { path: PathBuf, lock: PathBuf },
    /// Drawing a chart failed.
    #[error("{}: {message}", path.display())]
    Chart { path: PathBuf, message: String },
    /// Nothing to report.
    #[error("{0}")]
    Empty(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |error| ReportError::Io {
        path: path.to_path_buf(),
        error,
    }
}

fn csv_err(path: &Path) -> impl FnOnce(csv::Error) -> ReportError + '_ {
    move |error| ReportError::Csv {
        path: path.to_path_buf(),
        error,
    }
}

/// Why an ok row's times cannot be real, if they cannot.
fn impossible(r: &Row) -> Option<String> {
    if r.status != Status::Ok {
        return None;
    }
    let times = [("median_ns", r.median_ns), ("min_ns", r.min_ns), ("max_ns", r.max_ns)];
    if let Some((name, v)) = times.iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
        return Some(format!("{name} {v} is not a time (an ok row needs finite times above 0)"));
    }
    if !(r.min_ns <= r.median_ns && r.median_ns <= r.max_ns) {
        return Some(format!(
            "min_ns {} <= median_ns {} <= max_ns {} does not hold",
            r.min_ns, r.median_ns, r.max_ns
        ));
    }
    (r.runs == 0).then(|| "an ok row with no runs".to_string())
}

/// Reads every row of every file, in order. Files may come from different
/// machines and issbench versions (older files lack the newer columns);
/// an ok row with impossible times (not finite, not above 0, min above
/// median) is refused with its file and line.
pub fn read_rows(paths: &[PathBuf]) -> Result<Vec<Row>, ReportError> {
    let mut rows = Vec::new();
    for path in paths {
        let file = open_regular(path)?;
        let mut reader = csv::Reader::from_reader(file);
        for (i, row) in reader.deserialize::<Row>().enumerate() {
            let row = row.map_err(csv_err(path))?;
            if let Some(problem) = impossible(&row) {
                return Err(ReportError::Impossible {
                    path: path.clone(),
                    row: i + 1,
                    problem,
                });
            }
            rows.push(row);
        }
    }
    Ok(rows)
}

/// Opens `path` for reading if it is a regular file (not a device or pipe,
/// which could be read forever).
fn open_regular(path: &Path) -> Result<File, ReportError> {
    let meta = std::fs::metadata(path).map_err(io_err(path))?;
    if !meta.is_file() {
        return Err(ReportError::Foreign {
            path: path.to_path_buf(),
            problem: "not a regular file".into(),
        });
    }
    File::open(path).map_err(io_err(path))
}

/// The header line of a results file of this version.
pub fn header_line() -> String {
    COLUMNS.join(",")
}

/// What a results file's existing content is.
enum Existing {
    /// Empty or absent.
    Empty,
    /// This version's header.
    Current,
    /// An older issbench version's header: rows are read and rewritten.
    Older,
}

/// Tells issbench's headers from anything else.
fn classify(path: &Path, header: &str) -> Result<Existing, ReportError> {
    if header == header_line() {
        return Ok(Existing::Current);
    }
    let columns: Vec<&str> = header.split(',').collect();
    let known = |c: &&str| COLUMNS.contains(c) || OLD_COLUMNS.contains(c);
    let core = ["suite_version", "model", "mode", "median_ns", "status"];
    if core.iter().all(|c| columns.contains(c)) {
        if let Some(unknown) = columns.iter().find(|c| !known(c)) {
            return Err(ReportError::Foreign {
                path: path.to_path_buf(),
                problem: format!(
                    "column '{unknown}' is not issbench's: the file was edited or written by something else; it is left as it is (move it away, or use another --out)"
                ),
            });
        }
        return Ok(Existing::Older);
    }
    Err(ReportError::Foreign {
        path: path.to_path_buf(),
        problem: "not an issbench results file (its first line is not issbench's header); it is left as it is (move it away, or use another --out)".into(),
    })
}

/// Appends rows to a results file (see the module documentation). The
/// file is locked (through `NAME.csv.lock` beside it) while the appender
/// lives.
pub struct CsvAppender {
    path: PathBuf,
    file: File,
    _lock: File,
}

impl CsvAppender {
    /// Opens `path` for appending, creating it with the header. An existing
    /// file must be issbench's: a last line cut short by an interruption is
    /// removed (a complete last row that only lacks its newline is kept),
    /// and a file of an older version is rewritten in this version's
    /// columns first. Fails if another process holds the file's lock.
    pub fn open(path: &Path) -> Result<CsvAppender, ReportError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let lock_path = lock_path(path);
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        if lock.try_lock().is_err() {
            return Err(ReportError::Locked {
                path: path.to_path_buf(),
                lock: lock_path,
            });
        }
        if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
            return Err(ReportError::Foreign {
                path: path.to_path_buf(),
                problem: "not a regular file".into(),
            });
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_err(path))?;
        let mut existing = Vec::new();
        file.read_to_end(&mut existing).map_err(io_err(path))?;
        let header = existing.split(|&b| b == b'\n').next().unwrap_or(&[]);
        let kind = if existing.is_empty() {
            Existing::Empty
        } else {
            classify(path, String::from_utf8_lossy(header).trim_end_matches('\r'))?
        };
        let mut appender = CsvAppender {
            path: path.to_path_buf(),
            file,
            _lock: lock,
        };
        match kind {
            Existing::Empty => appender.append_bytes(format!("{}\n", header_line()).as_bytes())?,
            Existing::Current => appender.repair_last_line(&existing)?,
            Existing::Older => {
                appender.repair_last_line(&existing)?;
                appender.upgrade()?;
            }
        }
        Ok(appender)
    }

    /// Ends the file at its last complete row: a last line without its
    /// newline is kept (the newline added) when it is a whole row, else cut.
    fn repair_last_line(&mut self, existing: &[u8]) -> Result<(), ReportError> {
        if existing.ends_with(b"\n") {
            return Ok(());
        }
        let start = existing.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let header_end = existing.iter().position(|&b| b == b'\n').map_or(existing.len(), |i| i + 1);
        let whole_row = start >= header_end && {
            let text = [&existing[..header_end], &existing[start..], b"\n"].concat();
            let mut reader = csv::Reader::from_reader(text.as_slice());
            matches!(reader.deserialize::<Row>().next(), Some(Ok(_)))
        };
        if whole_row {
            self.append_bytes(b"\n")
        } else {
            self.file.set_len(start as u64).map_err(io_err(&self.path))?;
            self.file.sync_data().map_err(io_err(&self.path))
        }
    }

    /// Rewrites an older version's file in this version's columns (to a
    /// temporary file, renamed over it; the lock is held throughout).
    fn upgrade(&mut self) -> Result<(), ReportError> {
        let rows = read_rows(std::slice::from_ref(&self.path))?;
        let text = to_csv(&rows)?;
        let text = if rows.is_empty() { format!("{}\n", header_line()) } else { text };
        write_atomically(&self.path, text.as_bytes())?;
        self.file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(io_err(&self.path))?;
        Ok(())
    }

    /// Writes `bytes` at the end and syncs them; on failure (a full disk,
    /// say) the file is cut back to where it was, so it never holds part
    /// of a row.
    fn append_bytes(&mut self, bytes: &[u8]) -> Result<(), ReportError> {
        let end = self.file.seek(SeekFrom::End(0)).map_err(io_err(&self.path))?;
        let written = self.file.write_all(bytes).and_then(|_| self.file.sync_data());
        if let Err(error) = written {
            let _ = self.file.set_len(end);
            let _ = self.file.sync_data();
            return Err(ReportError::Io {
                path: self.path.clone(),
                error,
            });
        }
        Ok(())
    }

    /// Appends one row and syncs it to the file.
    pub fn append(&mut self, row: &Row) -> Result<(), ReportError> {
        let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
        writer.serialize(row).map_err(csv_err(&self.path))?;
        let bytes = writer.into_inner().map_err(|e| ReportError::Io {
            path: self.path.clone(),
            error: e.into_error(),
        })?;
        self.append_bytes(&bytes)
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The lock file beside a results file.
fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    path.with_file_name(name)
}

/// `rows` as CSV text with the header: what a sweep's file holds.
pub fn to_csv(rows: &[Row]) -> Result<String, ReportError> {
    let out = Path::new("<output>");
    let mut writer = csv::Writer::from_writer(Vec::new());
    for r in rows {
        writer.serialize(r).map_err(csv_err(out))?;
    }
    let bytes = writer.into_inner().map_err(|e| ReportError::Io {
        path: out.to_path_buf(),
        error: e.into_error(),
    })?;
    Ok(String::from_utf8(bytes).expect("CSV of UTF-8 fields is UTF-8"))
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    crate::checkpoint::write_atomically(path, bytes).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::row;

    #[test]
    fn the_header_is_the_rows_columns() {
        let text = to_csv(&[row()]).unwrap();
        assert_eq!(text.lines().next().unwrap(), header_line());
    }

    #[test]
    fn impossible_times_are_named() {
        let mut r = row();
        assert_eq!(impossible(&r), None);
        r.median_ns = f64::NAN;
        assert!(impossible(&r).unwrap().contains("median_ns NaN"));
        r.median_ns = -1.0;
        assert!(impossible(&r).is_some());
        let failed = r.failed("no");
        assert_eq!(impossible(&failed), None, "failed rows carry no times");
    }
}
