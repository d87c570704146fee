//! `issbench report --html` from the reference CSVs in results/, opened in
//! headless Chromium: the page parses and renders, shows the machine
//! table, the PTB and ONNX Runtime tables, the comparison and every chart.
//! Chromium is Debian's `chromium` (.ci/run installs it; set
//! ISSBENCH_CHROMIUM to use another); without it the test says it skipped,
//! unless ISSBENCH_REQUIRE_CHROMIUM=1 (CI) makes that a failure.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

fn chromium() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("ISSBENCH_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

/// Says that the check did not run, where the test output shows it (the
/// harness captures `println!`, not the stderr handle).
fn skipped(why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED html_report: {why}");
}

fn headless(chromium: &Path, args: &[&str], page: &Path) -> std::process::Output {
    let url = format!("file://{}", page.display());
    Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"])
        .args(args)
        .arg(&url)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", chromium.display()))
}

#[test]
fn the_reference_report_renders_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let csv = |p: &str| root.join("results").join(p).to_str().unwrap().to_string();
    let args = [
        "report".to_string(),
        format!("sapphire-rapids={}", csv("sapphire-rapids/ptb.csv")),
        format!("zen4={}", csv("zen4/ptb.csv")),
        format!("zen5={}", csv("ptb.csv")),
        format!("zen5={}", csv("quick.csv")),
        "--html".into(),
        dir.path().to_str().unwrap().into(),
    ];
    let out = Command::new(env!("CARGO_BIN_EXE_issbench")).args(&args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let page = dir.path().join("index.html");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(!html.contains("<script"), "readable without JavaScript");

    let Some(chromium) = chromium() else {
        assert!(
            std::env::var("ISSBENCH_REQUIRE_CHROMIUM").is_err(),
            "ISSBENCH_REQUIRE_CHROMIUM is set and no chromium was found"
        );
        skipped("no chromium (apt-get install chromium, or set ISSBENCH_CHROMIUM)");
        return;
    };
    let dom = headless(&chromium, &["--dump-dom"], &page);
    assert!(dom.status.success(), "{}", String::from_utf8_lossy(&dom.stderr));
    let dom = String::from_utf8_lossy(&dom.stdout);
    for want in [
        "<h2>Machines</h2>",
        "<h2>The paper's PTB model</h2>",
        "<h2>issbench against ONNX Runtime</h2>",
        "<h2>Machines compared</h2>",
        "<h2>Verification</h2>",
        "Baseline: M1 sapphire-rapids",
        "M3: zen5 — charts",
        "Geometric mean",
    ] {
        assert!(dom.contains(want), "{want} not in the rendered page");
    }
    // Machine table, three PTB tables, three ONNX Runtime tables, two
    // summaries and the shared points, verification, and the rows to
    // distrust where a file has flags.
    let tables = dom.matches("<table>").count();
    assert!(tables >= 11, "{tables} tables");
    let charts = dom.matches("<svg").count();
    assert!(charts >= 10, "{charts} charts");

    let shot = dir.path().join("shot.png");
    let shot_arg = format!("--screenshot={}", shot.display());
    let out = headless(&chromium, &[&shot_arg, "--window-size=1400,2400"], &page);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let png = std::fs::read(&shot).unwrap();
    // A blank page compresses to a few kilobytes; tables and charts do not.
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 100_000, "{} bytes", png.len());
}
