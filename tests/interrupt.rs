//! A sweep stopped by a real signal: Ctrl-C (SIGINT) stops after the point
//! in progress, SIGKILL stops anywhere; either way the CSV stays valid and
//! `--resume` completes it with every point exactly once.

#![cfg(unix)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use issbench::report::{Row, read_rows};
use issbench::sweep::SweepSpec;

const SPEC: &str = r#"
name = "sig"
budget_ms = 40
min_runs = 2
max_runs = 50
[[grid]]
hidden = [32, 48, 64]
kept = [1.0, 0.5, 0.25]
modes = ["dense", "iss", "csr"]
batch = [1, 4]
seq = [8]
"#;

fn sweep(dir: &Path, resume: bool) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_issbench"));
    c.args(["sweep", "--config"])
        .arg(dir.join("sig.toml"))
        .arg("--out")
        .arg(dir)
        .arg("--no-charts")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if resume {
        c.arg("--resume");
    }
    c
}

/// Lines in the CSV (header included).
fn lines(csv: &Path) -> usize {
    std::fs::read_to_string(csv).map_or(0, |s| s.lines().count())
}

fn wait_for_rows(child: &mut Child, csv: &Path, rows: usize) {
    let started = Instant::now();
    while lines(csv) < rows + 1 {
        assert!(child.try_wait().unwrap().is_none(), "the sweep ended before it was interrupted");
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

fn assert_complete(csv: &Path) {
    let total = SweepSpec::from_toml("sig.toml", SPEC).unwrap().points().len();
    let rows = read_rows(&[csv.to_path_buf()]).unwrap();
    let mut keys: Vec<String> = rows.iter().map(Row::key).collect();
    keys.sort();
    keys.dedup();
    assert_eq!((rows.len(), keys.len()), (total, total), "every point exactly once");
    assert!(rows.iter().all(Row::ok));
}

#[test]
fn ctrl_c_stops_after_the_point_and_resume_completes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sig.toml"), SPEC).unwrap();
    let csv = dir.path().join("sig.csv");
    let mut child = sweep(dir.path(), false).spawn().unwrap();
    wait_for_rows(&mut child, &csv, 3);
    signal(&child, "-INT");
    let out = child.wait_with_output().unwrap();
    // An incomplete sweep exits 130 and says how to finish it.
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted: run the same command with --resume"));
    let done = read_rows(std::slice::from_ref(&csv)).unwrap().len();
    assert!((3..30).contains(&done), "{done} rows");
    let out = sweep(dir.path(), true).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{done} already in the file")));
    assert_complete(&csv);
}

#[test]
fn sigkill_mid_run_loses_at_most_the_point_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sig.toml"), SPEC).unwrap();
    let csv = dir.path().join("sig.csv");
    let mut child = sweep(dir.path(), false).spawn().unwrap();
    wait_for_rows(&mut child, &csv, 5);
    signal(&child, "-KILL");
    child.wait().unwrap();
    assert!(read_rows(std::slice::from_ref(&csv)).is_ok(), "the CSV is valid after SIGKILL");
    let out = sweep(dir.path(), true).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_complete(&csv);
}
