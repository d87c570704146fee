//! The command line end to end: `run` in every mode and format (its CSV is
//! the sweep's, and `report` and `compare` read it), `export-onnx`,
//! `compare`, `models`, and exit code 2 for a compaction that is not
//! equivalent.

use std::path::Path;
use std::process::{Command, Output};

use issbench::checkpoint::save_safetensors;
use issbench::mode::Mode;
use issbench::model::{Linear, LstmLayer, Model};
use issbench::report::{Row, read_rows};

fn issbench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_issbench")).args(args).output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = issbench(args);
    assert!(
        out.status.success(),
        "issbench {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The stderr of a command that must fail.
fn fails(args: &[&str]) -> String {
    let out = issbench(args);
    assert!(!out.status.success(), "issbench {args:?} succeeded");
    String::from_utf8(out.stderr).unwrap()
}

/// A short `run` of the built-in `tiny-iss` model.
fn run_args<'a>(mode: &'a str, format: &'a str, threads: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        "tiny-iss",
        "--mode",
        mode,
        "--format",
        format,
        "--threads",
        threads,
        "--time",
        "0",
        "--min-runs",
        "2",
        "--max-runs",
        "2",
        "--batch",
        "2",
        "--seq",
        "3",
    ]
}

#[test]
fn run_prints_the_sweeps_row_in_every_format_and_mode() {
    let dir = tempfile::tempdir().unwrap();
    // The sweep's header, from a one-point sweep of the same model.
    let spec = dir.path().join("one.toml");
    std::fs::write(
        &spec,
        "name = \"one\"\nbudget_ms = 0\nmin_runs = 1\nmax_runs = 1\n[[grid]]\nmodels = [\"tiny-iss\"]\nmodes = [\"dense\"]\nbatch = [1]\nseq = [2]\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    ok(&[
        "sweep",
        "--config",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--no-charts",
    ]);
    let sweep_csv = std::fs::read_to_string(out.join("one.csv")).unwrap();
    let sweep_header = sweep_csv.lines().next().unwrap();

    for mode in ["dense", "iss", "csr"] {
        let csv = ok(&run_args(mode, "csv", "1"));
        assert_eq!(
            csv.lines().next().unwrap(),
            sweep_header,
            "{mode}: the sweep's header, byte for byte"
        );
        assert_eq!(csv.lines().count(), 2, "{csv}");
        let path = dir.path().join(format!("{mode}.csv"));
        std::fs::write(&path, &csv).unwrap();
        let rows = read_rows(&[path]).unwrap();
        let row = &rows[0];
        assert!(row.ok() && row.median_ns > 0.0 && row.runs == 2, "{row:?}");
        assert_eq!((row.mode, row.batch, row.seq, row.threads), (Mode::parse(mode).unwrap(), 2, 3, 1));
        assert_eq!(row.preset, "run");
        if mode != "dense" {
            assert!(row.verify_max_rel.is_some_and(|e| e <= 1e-4), "{row:?}");
        }
        if mode == "csr" {
            assert!(row.backend.starts_with("csr-") && row.sparsity > 0.5, "{row:?}");
        }

        let json = ok(&run_args(mode, "json", "1"));
        let row: Row = serde_json::from_str(&json).unwrap();
        assert_eq!(row.mode.name(), mode);

        let table = ok(&run_args(mode, "table", "1"));
        assert!(table.contains(&format!("mode     {mode}")), "{table}");
    }
    let iss = ok(&run_args("iss", "table", "1"));
    assert!(iss.contains("kept 9/7 of 24/20 units"), "{iss}");
}

#[test]
fn report_and_compare_read_what_run_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    // Two runs on this machine, told apart by labels.
    for name in ["first", "second"] {
        let path = dir.path().join(format!("{name}.csv"));
        let mut text = String::new();
        for (i, mode) in ["dense", "iss"].into_iter().enumerate() {
            let csv = ok(&run_args(mode, "csv", "1"));
            text.push_str(if i == 0 { &csv } else { csv.split_once('\n').unwrap().1 });
        }
        std::fs::write(&path, text).unwrap();
        files.push(format!("{name}={}", path.display()));
    }
    let out = dir.path().join("cmp");
    let mut args = vec!["compare"];
    args.extend(files.iter().map(String::as_str));
    args.extend(["--out", out.to_str().unwrap(), "--baseline", "second"]);
    let table = ok(&args);
    assert!(table.contains("2 machines, 2 shared points"), "{table}");
    assert!(
        table.contains("| M2 (baseline) | second |") && table.contains("| M1 / M2 |"),
        "{table}"
    );
    for f in ["compare.md", "compare.csv", "compare_ratio.png", "compare_geomean.png"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    // Unlabelled, the two files are one machine: no comparison.
    let plain: Vec<String> = files.iter().map(|f| f.split_once('=').unwrap().1.to_string()).collect();
    let e = fails(&["compare", &plain[0], &plain[1], "--out", out.to_str().unwrap()]);
    assert!(e.contains("at least two machines") && e.contains("NAME=file.csv"), "{e}");
    // report: a folder of charts per machine, the comparison, and the page.
    let charts = dir.path().join("charts");
    let html = dir.path().join("html");
    let mut args = vec!["report"];
    args.extend(files.iter().map(String::as_str));
    args.extend(["--out", charts.to_str().unwrap(), "--html", html.to_str().unwrap()]);
    let report = ok(&args);
    assert!(report.starts_with("4 rows from 2 machine(s)"), "{report}");
    assert!(charts.join("m1-first").is_dir() && charts.join("m2-second").is_dir(), "{report}");
    assert!(charts.join("compare.md").is_file());
    let page = std::fs::read_to_string(html.join("index.html")).unwrap();
    assert!(page.contains("<h2>Machines compared</h2>") && page.contains("M2: second — charts"));
}

#[test]
fn export_onnx_writes_full_and_compacted_graphs() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.onnx");
    let compact = dir.path().join("compact.onnx");
    let text = ok(&["export-onnx", "tiny-iss", "-o", full.to_str().unwrap()]);
    assert!(text.contains("hidden 24/20"), "{text}");
    let text = ok(&[
        "export-onnx",
        "tiny-iss",
        "--compact",
        "--layers-only",
        "-o",
        compact.to_str().unwrap(),
    ]);
    assert!(text.contains("hidden 9/7") && text.contains("recurrent layers only"), "{text}");
    let (full, compact) = (std::fs::read(full).unwrap(), std::fs::read(compact).unwrap());
    // An ONNX ModelProto starts with its ir_version field (1, varint).
    assert_eq!((full[0], compact[0]), (0x08, 0x08));
    assert!(compact.len() * 3 < full.len(), "{} vs {} bytes", compact.len(), full.len());
}

#[test]
fn models_lists_the_built_in_models_and_presets() {
    let text = ok(&["models"]);
    for name in [
        "ptb-large",
        "ptb-iss",
        "tiny-iss",
        "quick",
        "deepbench-sparse",
        "kernels run at SIMD level",
    ] {
        assert!(text.contains(name), "{name}: {text}");
    }
}

/// A one-layer model whose unit 2 is live but has small outgoing weights
/// (0.01): a threshold of 0.05 removes it, and the outputs change.
fn model_with_a_quiet_unit(path: &Path) {
    let (input, hidden, out) = (3, 4, 5);
    let value = |i: usize| ((i * 7919) % 23) as f32 / 23.0 - 0.45;
    let mut w_hh: Vec<f32> = (0..4 * hidden * hidden).map(value).collect();
    for row in w_hh.chunks_exact_mut(hidden) {
        row[2] = 0.01;
    }
    let mut head: Vec<f32> = (0..out * hidden).map(|i| value(i + 3)).collect();
    for row in head.chunks_exact_mut(hidden) {
        row[2] = 0.01;
    }
    let layer = LstmLayer::new(
        "layer 0",
        input,
        hidden,
        (0..4 * hidden * input).map(|i| value(i + 1)).collect(),
        w_hh,
        vec![0.1; 4 * hidden],
    )
    .unwrap();
    let head = Linear::new("head", hidden, out, head, vec![0.0; out]).unwrap();
    let model = Model::new("quiet", None, vec![layer], Some(head)).unwrap();
    save_safetensors(&model, path, Default::default()).unwrap();
}

#[test]
fn a_threshold_that_removes_live_units_fails_verification_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quiet.safetensors");
    model_with_a_quiet_unit(&path);
    let p = path.to_str().unwrap();
    // At the default threshold nothing is removed, and all is well.
    ok(&["run", p, "--mode", "iss", "--time", "0", "--min-runs", "1", "--max-runs", "1"]);
    for args in [
        vec!["run", p, "--mode", "iss", "--threshold", "0.05", "--time", "0", "--min-runs", "1"],
        vec!["compact", p, "--threshold", "0.05", "-o", "/dev/null"],
        vec!["export-onnx", p, "--compact", "--threshold", "0.05", "-o", "/dev/null"],
    ] {
        let out = issbench(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("not equivalent") && err.lines().count() == 1, "{args:?}: {err}");
    }
    let csv = issbench(&["run", p, "--mode", "iss", "--threshold", "0.05", "--format", "csv"]);
    assert_eq!(csv.status.code(), Some(2));
    let text = String::from_utf8(csv.stdout).unwrap();
    assert!(text.contains("failed: not equivalent: iss:"), "the failed row is printed: {text}");
}
