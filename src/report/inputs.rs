//! Result files as `report` and `compare` take them: a path, or
//! `NAME=path` to give the machine that measured the file a name.

use std::path::PathBuf;

use super::{ReportError, Row, read_rows};

/// One results file and the label its rows get (`None`: their own).
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    pub path: PathBuf,
    pub label: Option<String>,
}

/// Checks a machine label: 1 to 64 printable characters without `=`, `/`,
/// `\`, `"` or `,` (labels name folders and CSV cells).
pub fn check_label(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() || s.chars().count() > 64 {
        return Err(format!("label '{s}': give 1 to 64 characters"));
    }
    if let Some(c) = s.chars().find(|c| c.is_control() || matches!(c, '=' | ',' | '/' | '\\' | '"')) {
        return Err(format!("label '{s}': '{}' is not allowed in a label", c.escape_default()));
    }
    Ok(s.to_string())
}

/// Reads a command-line argument: a path that exists is a path (even with
/// an `=` in it); otherwise `NAME=path` labels the file's rows NAME.
pub fn parse_input(arg: &str) -> Result<Input, String> {
    let path = PathBuf::from(arg);
    if path.exists() {
        return Ok(Input { path, label: None });
    }
    match arg.split_once('=') {
        Some((name, file)) if !name.is_empty() && !file.is_empty() => Ok(Input {
            path: PathBuf::from(file),
            label: Some(check_label(name)?),
        }),
        _ => Ok(Input { path, label: None }),
    }
}

/// Every row of every input, in order, each labelled as its input says.
pub fn read_inputs(inputs: &[Input]) -> Result<Vec<Row>, ReportError> {
    let mut rows = Vec::new();
    for input in inputs {
        let mut file_rows = read_rows(std::slice::from_ref(&input.path))?;
        if let Some(label) = &input.label {
            for r in &mut file_rows {
                r.label.clone_from(label);
            }
        }
        rows.extend(file_rows);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_paths() {
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("a=b.csv");
        std::fs::write(&odd, "").unwrap();
        let odd_arg = odd.to_str().unwrap();
        assert_eq!(parse_input(odd_arg).unwrap().label, None, "an existing path is a path");
        let named = parse_input("zen5=results/x.csv").unwrap();
        assert_eq!((named.label.as_deref(), named.path), (Some("zen5"), PathBuf::from("results/x.csv")));
        assert_eq!(parse_input("plain.csv").unwrap().label, None);
        for bad in ["a/b=x.csv", " =x.csv"] {
            assert!(parse_input(bad).is_err(), "{bad}");
        }
        assert!(check_label(&"x".repeat(65)).is_err());
        assert_eq!(check_label(" Xeon 8480 ").unwrap(), "Xeon 8480");
    }
}
