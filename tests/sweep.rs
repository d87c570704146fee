//! Sweeps end to end on tiny grids: rows for every point, dense speedups,
//! verification errors, resume without duplicates, failed points recorded,
//! files from two hosts concatenated.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use issbench::mode::Mode;
use issbench::report::{Row, read_rows};
use issbench::sweep::{SweepOptions, SweepSpec, run_sweep};

fn tiny_spec(extra_models: &str) -> SweepSpec {
    SweepSpec::from_toml(
        "tiny.toml",
        &format!(
            r#"
name = "tiny"
budget_ms = 1
min_runs = 2
max_runs = 3
[[grid]]
hidden = [16, 24]
kept = [1.0, 0.5]
modes = ["dense", "iss", "csr"]
batch = [1, 3]
seq = [4]
threads = [1, 2]
{extra_models}
"#
        ),
    )
    .unwrap()
}

fn options(csv: &Path, resume: bool, stop: Arc<AtomicBool>) -> SweepOptions {
    SweepOptions {
        csv: Some(csv.to_path_buf()),
        resume,
        stop,
        on_row: Box::new(|_, _, _| {}),
        peer: None,
        label: String::new(),
        shard: None,
    }
}

#[test]
fn a_sweep_writes_one_verified_row_per_point() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("tiny.csv");
    let spec = tiny_spec("");
    let points = spec.points().len();
    // Per size, batch, threads: dense at kept 1.0, and a case of dense,
    // iss and csr at kept 0.5.
    assert_eq!(points, 2 * 2 * 2 * 4);
    let summary = run_sweep(&spec, options(&csv, false, Arc::new(AtomicBool::new(false)))).unwrap();
    assert_eq!((summary.measured, summary.failed, summary.skipped), (points, 0, 0));
    let rows = read_rows(&[csv]).unwrap();
    assert_eq!(rows.len(), points);
    for r in &rows {
        assert!(r.ok(), "{r:?}");
        assert!(
            r.median_ns > 0.0 && r.ci_low_ns <= r.median_ns && r.median_ns <= r.ci_high_ns,
            "{r:?}"
        );
        assert!(r.min_ns <= r.median_ns && r.median_ns <= r.max_ns);
        match r.mode.name() {
            "dense" => {
                assert_eq!((r.sparsity, r.verify_max_rel), (0.0, None));
                assert_eq!(r.speedup_vs_dense.map(|s| s == 1.0), Some(true));
            }
            "iss" => {
                let h: usize = r.hidden_full.split('/').next().unwrap().parse().unwrap();
                assert_eq!(r.hidden_kept, format!("{}/{}", h / 2, h / 2));
                assert!(r.verify_max_rel.unwrap() <= 1e-4);
                // Timed in rounds with its dense point: a paired interval.
                let (s, lo, hi) = (r.speedup_vs_dense.unwrap(), r.speedup_ci_low.unwrap(), r.speedup_ci_high.unwrap());
                assert!(lo <= s && s <= hi && r.rounds == 3, "{r:?}");
                // Half the units of both layers; the first layer's input stays full:
                // 2 * 4h * 2h / (4(h/2)(h + h/2) + 4(h/2)h) = 3.2.
                assert!((r.ideal_speedup - 3.2).abs() < 1e-9, "{}", r.ideal_speedup);
            }
            "csr" => {
                assert!(r.verify_max_rel.unwrap() <= 1e-4);
                // As many nonzeros as the ISS model keeps: 1 - 1/3.2.
                assert!((r.sparsity - 0.6875).abs() < 1e-3, "{}", r.sparsity);
                assert!(r.backend.starts_with("csr"));
            }
            other => panic!("mode {other}"),
        }
    }
}

#[test]
fn a_sparse_gemm_grid_writes_verified_dense_and_csr_rows() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("g.csv");
    let spec = SweepSpec::from_toml(
        "g.toml",
        "name = \"g\"\nbudget_ms = 1\nmin_runs = 1\nmax_runs = 2\n[[grid]]\ngemm = [{ m = 37, k = 50, sparsity = 0.9 }, { m = 16, k = 7, sparsity = 0.0 }]\nmodes = [\"dense\", \"csr\"]\nbatch = [1, 20]\nseq = [1]\n",
    )
    .unwrap();
    let summary = run_sweep(&spec, options(&csv, false, Arc::new(AtomicBool::new(false)))).unwrap();
    assert_eq!((summary.measured, summary.failed), (8, 0));
    let rows = read_rows(&[csv]).unwrap();
    for r in &rows {
        assert!(r.ok(), "{r:?}");
        assert_eq!((r.layers, r.seq), (0, 1));
        let (m, k): (usize, usize) = if r.model.starts_with("m37") { (37, 50) } else { (16, 7) };
        assert_eq!((r.hidden_full.clone(), r.input), (m.to_string(), k));
        match r.mode.name() {
            "dense" => assert_eq!((r.macs_per_step, r.verify_max_rel), (m * k, None)),
            "csr" => {
                // DeepBench's layout: the same nonzero count in every row.
                let per_row = if m == 37 { 5 } else { 7 };
                assert_eq!(r.macs_per_step, m * per_row, "{r:?}");
                assert!(r.verify_max_rel.unwrap() <= 1e-4);
                assert!(r.speedup_vs_dense.is_some());
                assert!((r.ideal_speedup - (k as f64 / per_row as f64)).abs() < 1e-9);
            }
            other => panic!("mode {other}"),
        }
    }
}

#[test]
fn bsr_points_run_per_block_shape_verified_at_the_iss_weight_count() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("b.csv");
    let spec = SweepSpec::from_toml(
        "b.toml",
        r#"name = "b"
budget_ms = 1
min_runs = 1
max_runs = 2
[[grid]]
hidden = [40]
kept = [0.5]
modes = ["dense", "iss", "csr", "bsr"]
block = ["4x4", "16x1", "3x5"]
batch = [1, 5]
seq = [3]
threads = [1]
[[grid]]
gemm = [{ m = 37, k = 50, sparsity = 0.9 }]
modes = ["dense", "bsr"]
block = ["4x4", "1x16"]
batch = [1, 20]
seq = [1]
threads = [1]
"#,
    )
    .unwrap();
    // Per batch: dense, iss, csr and three blocks; gemm: dense and two blocks.
    assert_eq!(spec.points().len(), 2 * 6 + 2 * 3);
    assert_eq!(spec.cases().len(), 2 + 2, "a point's block shapes are timed together");
    let summary = run_sweep(&spec, options(&csv, false, Arc::new(AtomicBool::new(false)))).unwrap();
    assert_eq!((summary.measured, summary.failed), (18, 0));
    let rows = read_rows(&[csv]).unwrap();
    let iss_macs = rows.iter().find(|r| r.mode == Mode::Iss).unwrap().macs_per_step;
    for r in rows.iter().filter(|r| r.mode == Mode::Bsr) {
        assert!(r.ok() && r.verify_max_rel.unwrap() <= 1e-4, "{r:?}");
        assert!(["4x4", "16x1", "3x5", "1x16"].contains(&r.block.as_str()), "{r:?}");
        assert!(r.backend.starts_with("bsr-") && r.backend.ends_with(&r.block), "{}", r.backend);
        assert!(r.speedup_vs_dense.is_some());
        if r.layers > 0 {
            // The ISS model's weight count, and the rest of the one block
            // kept in part (all of its positions are covered).
            let (br, bc) = r
                .block
                .split_once('x')
                .map(|(a, b)| (a.parse::<usize>().unwrap(), b.parse::<usize>().unwrap()))
                .unwrap();
            assert!((iss_macs..iss_macs + br * bc).contains(&r.macs_per_step), "{r:?}");
        } else {
            assert_eq!(r.macs_per_step, 37 * 5, "the problem's nonzero count");
        }
    }
    let keys: std::collections::BTreeSet<String> = rows.iter().map(Row::key).collect();
    assert_eq!(keys.len(), rows.len(), "block shapes are told apart by the key");
    // A block the kernels cannot hold is refused with the spec's name.
    let e = SweepSpec::from_toml(
        "x.toml",
        "name = \"x\"\n[[grid]]\nhidden = [8]\nmodes = [\"bsr\"]\nblock = [\"0x4\"]\nbatch = [1]\nseq = [1]\n",
    )
    .unwrap_err();
    assert!(e.to_string().contains("0x4"), "{e}");
}

#[test]
fn resume_after_an_interrupted_sweep_completes_it_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("tiny.csv");
    let spec = tiny_spec("");
    let stop = Arc::new(AtomicBool::new(false));
    let mut opts = options(&csv, false, stop.clone());
    let flag = stop.clone();
    opts.on_row = Box::new(move |i, _, _| {
        if i == 5 {
            flag.store(true, Ordering::SeqCst);
        }
    });
    let first = run_sweep(&spec, opts).unwrap();
    assert!(first.interrupted);
    // The case in progress when the flag went up was finished.
    assert!(first.measured >= 5 && first.measured < spec.points().len(), "{first:?}");
    // A point cut short mid-write leaves a partial line; the appender drops it.
    let mut bytes = std::fs::read(&csv).unwrap();
    bytes.extend_from_slice(b"0.1.0,abc,2026");
    std::fs::write(&csv, bytes).unwrap();

    let second = run_sweep(&spec, options(&csv, true, Arc::new(AtomicBool::new(false)))).unwrap();
    assert_eq!(
        (second.skipped, second.measured),
        (first.measured, spec.points().len() - first.measured)
    );
    let rows = read_rows(&[csv]).unwrap();
    assert_eq!(rows.len(), spec.points().len());
    let mut keys: Vec<String> = rows.iter().map(Row::key).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), rows.len(), "duplicated points");
    // The iss rows measured after the resume still found their dense medians.
    assert!(rows.iter().filter(|r| r.mode != Mode::Dense).all(|r| r.speedup_vs_dense.is_some()));
}

#[test]
fn a_bad_checkpoint_fails_its_points_and_the_sweep_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.safetensors");
    std::fs::write(&bad, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}").unwrap();
    let csv = dir.path().join("tiny.csv");
    let spec = SweepSpec::from_toml(
        "t.toml",
        &format!(
            "name = \"t\"\nbudget_ms = 1\nmin_runs = 1\nmax_runs = 2\n[[grid]]\nmodels = [{:?}, \"tiny-iss\"]\nmodes = [\"dense\", \"iss\"]\nbatch = [2]\nseq = [3]\nhead = [false, true]\n",
            bad.display().to_string()
        ),
    )
    .unwrap();
    let summary = run_sweep(&spec, options(&csv, false, Arc::new(AtomicBool::new(false)))).unwrap();
    assert_eq!((summary.failed, summary.measured), (4, 4));
    let rows = read_rows(&[csv]).unwrap();
    let failed: Vec<&Row> = rows.iter().filter(|r| !r.ok()).collect();
    assert!(
        failed
            .iter()
            .all(|r| r.model == "broken.safetensors" && r.status.to_string().contains("broken.safetensors")),
        "{failed:?}"
    );
    let iss_head = rows
        .iter()
        .find(|r| r.model == "tiny-iss" && r.mode == Mode::Iss && r.head)
        .unwrap();
    assert_eq!((iss_head.hidden_full.as_str(), iss_head.hidden_kept.as_str()), ("24/20", "9/7"));
}

#[test]
fn csv_files_from_two_machines_concatenate_and_keep_their_machines() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("a.csv");
    let spec = SweepSpec::from_toml(
        "t.toml",
        "name = \"t\"\nbudget_ms = 1\nmin_runs = 1\nmax_runs = 1\n[[grid]]\nhidden = [8]\nkept = [1.0, 0.5]\nmodes = [\"dense\", \"iss\"]\nbatch = [1]\nseq = [2]\n",
    )
    .unwrap();
    run_sweep(&spec, options(&csv, false, Arc::new(AtomicBool::new(false)))).unwrap();
    let mut rows = read_rows(std::slice::from_ref(&csv)).unwrap();
    // The same file as if measured on another host of another CPU.
    let other = dir.path().join("b.csv");
    let mut w = csv::Writer::from_path(&other).unwrap();
    for r in &mut rows {
        r.host = "other-host".into();
        r.cpu_model = "Other CPU (family 6 model 143)".into();
        (r.median_ns, r.min_ns, r.max_ns) = (2.0 * r.median_ns, 2.0 * r.min_ns, 2.0 * r.max_ns);
        w.serialize(&*r).unwrap();
    }
    w.flush().unwrap();
    let both = read_rows(&[csv, other]).unwrap();
    // Dense at kept 1.0; dense and iss at kept 0.5: three points per host.
    assert_eq!(both.len(), 6);
    let machines: std::collections::BTreeSet<String> = both.iter().map(Row::machine_key).collect();
    assert_eq!(machines.len(), 2);
    // Another host of the same machine type is the same machine.
    let same: std::collections::BTreeSet<String> = both
        .iter()
        .map(|r| {
            Row {
                cpu_model: "x".into(),
                ..r.clone()
            }
            .machine_key()
        })
        .collect();
    assert_eq!(same.len(), 1);
    let points: std::collections::BTreeSet<String> = both.iter().map(Row::point_key).collect();
    assert_eq!(points.len(), 3);
}

#[test]
fn report_redraws_the_sweeps_charts_from_the_csv_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("r.toml"),
        "name = \"r\"\nbudget_ms = 1\nmin_runs = 1\nmax_runs = 2\n[[grid]]\nhidden = [16, 32]\nkept = [1.0, 0.5]\nmodes = [\"dense\", \"iss\", \"csr\"]\nbatch = [2]\nseq = [3]\n",
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_issbench");
    let swept = dir.path().join("swept");
    let out = std::process::Command::new(bin)
        .args(["sweep", "--config"])
        .arg(dir.path().join("r.toml"))
        .arg("--out")
        .arg(&swept)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let redrawn = dir.path().join("redrawn");
    let out = std::process::Command::new(bin)
        .arg("report")
        .arg(swept.join("r.csv"))
        .arg("--out")
        .arg(&redrawn)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for stem in ["speedup_vs_sparsity_b2", "time_vs_hidden_b2", "gflops_vs_weights"] {
        let a = std::fs::read_to_string(swept.join(format!("{stem}.svg"))).unwrap();
        let b = std::fs::read_to_string(redrawn.join(format!("{stem}.svg"))).unwrap();
        assert_eq!(a, b, "{stem}: the redrawn chart differs");
        assert!(a.contains("h16 iss") || stem != "speedup_vs_sparsity_b2");
        assert!(redrawn.join(format!("{stem}.png")).is_file());
    }
}

/// A stand-in for tools/peer_ort.py speaking its `serve` protocol (plain
/// Python, no numpy): every run "takes" 1000 ns; with `die_after`, it exits
/// with an error after that many rounds.
fn fake_peer(dir: &Path, die_after: Option<usize>) -> Option<issbench::peer::OrtPeer> {
    let script = dir.join("fake_peer.py");
    let die = die_after.map_or("None".to_string(), |n| n.to_string());
    std::fs::write(
        &script,
        format!(
            r#"import json, sys
if sys.argv[1] == "version":
    print("0.0-fake")
    sys.exit(0)
assert sys.argv[1] == "serve" and sys.argv[2].endswith(".onnx")
print(json.dumps({{"ready": True}}), flush=True)
rounds = 0
for line in sys.stdin:
    if {die} is not None and rounds == {die}:
        print("fake peer: out of rounds", file=sys.stderr)
        sys.exit(3)
    _, budget_ms, min_runs, max_runs = line.split()
    print(json.dumps({{"samples_ns": [1000.0] * max(int(min_runs), 1)}}), flush=True)
    rounds += 1
"#
        ),
    )
    .unwrap();
    match issbench::peer::OrtPeer::with("python3".into(), script) {
        Ok(peer) => Some(peer),
        Err((python, e)) => {
            // Straight to the stderr handle: the harness captures eprintln!.
            let _ = writeln!(std::io::stderr(), "SKIPPED (no {python} to run the fake peer): {e}");
            None
        }
    }
}

#[test]
fn a_peer_is_timed_beside_each_point_and_a_dying_peer_loses_only_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SweepSpec::from_toml(
        "peer.toml",
        r#"
name = "peer"
budget_ms = 1
min_runs = 8
max_runs = 20
[[grid]]
hidden = [16]
kept = [0.5]
modes = ["dense", "iss", "csr"]
batch = [2]
seq = [3]
threads = [1]
"#,
    )
    .unwrap();
    for (die_after, csv) in [(None, "alive.csv"), (Some(1), "dying.csv")] {
        let Some(peer) = fake_peer(dir.path(), die_after) else {
            return;
        };
        let csv = dir.path().join(csv);
        let mut opts = options(&csv, false, Arc::new(AtomicBool::new(false)));
        opts.peer = Some(peer);
        let summary = run_sweep(&spec, opts).unwrap();
        // A peer that dies fails its rows, and they count as failed.
        assert_eq!((summary.measured, summary.failed), (3, if die_after.is_some() { 2 } else { 0 }));
        let rows = read_rows(&[csv]).unwrap();
        let modes: Vec<&str> = rows.iter().map(|r| r.mode.name()).collect();
        // No peer row for csr: ONNX Runtime has no sparse LSTM.
        assert_eq!(modes, ["dense", "ort-dense", "iss", "ort-iss", "csr"]);
        for r in &rows {
            if !r.mode.is_peer() {
                assert!(r.ok() && r.runs >= 8, "{r:?}");
            } else if die_after.is_none() {
                // 8 runs in 4 rounds of 2, all of the fake's 1000 ns.
                assert!(r.ok(), "{r:?}");
                assert_eq!((r.runs, r.median_ns, r.backend.as_str()), (8, 1000.0, "onnxruntime 0.0-fake"));
            } else {
                assert!(r.status.to_string().starts_with("failed: onnxruntime:"), "{}", r.status);
                assert!(r.status.to_string().contains("out of rounds"), "{}", r.status);
            }
        }
        // The exported model was removed once the peer had loaded it.
        assert!(
            !std::fs::read_dir(dir.path())
                .unwrap()
                .any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".onnx"))
        );
    }
}

#[test]
fn more_threads_than_cores_fail_unless_asked_for_and_are_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let spec = |oversubscribe: bool| {
        SweepSpec::from_toml(
            "o.toml",
            &format!(
                "name = \"o\"\nbudget_ms = 1\nmin_runs = 1\nmax_runs = 2\n[[grid]]\nhidden = [16]\nkept = [0.5]\nmodes = [\"dense\", \"iss\"]\nbatch = [1]\nseq = [2]\nthreads = [{}]\noversubscribe = {oversubscribe}\n",
                cores + 1
            ),
        )
        .unwrap()
    };
    let refused = dir.path().join("refused.csv");
    let summary = run_sweep(&spec(false), options(&refused, false, Arc::new(AtomicBool::new(false)))).unwrap();
    assert_eq!((summary.measured, summary.failed), (0, 2));
    for r in read_rows(&[refused]).unwrap() {
        let status = r.status.to_string();
        assert!(status.contains("online cores") && status.contains("--oversubscribe"), "{status}");
    }
    let allowed = dir.path().join("allowed.csv");
    let summary = run_sweep(&spec(true), options(&allowed, false, Arc::new(AtomicBool::new(false)))).unwrap();
    assert_eq!((summary.measured, summary.failed), (2, 0));
    for r in read_rows(&[allowed]).unwrap() {
        assert!(r.ok() && r.flags.split(';').any(|f| f == "oversubscribed"), "{r:?}");
    }
    // A thread count no machine has is refused with the spec.
    let huge = SweepSpec::from_toml(
        "h.toml",
        "name = \"h\"\n[[grid]]\nhidden = [16]\nmodes = [\"dense\"]\nbatch = [1]\nseq = [2]\nthreads = [18446744073709551615]\n",
    );
    assert!(huge.unwrap_err().to_string().contains("threads above 1024"));
}

#[test]
fn repeats_measure_every_point_again_and_report_their_spread() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("r.csv");
    let spec = SweepSpec::from_toml(
        "r.toml",
        "name = \"r\"\nbudget_ms = 1\nmin_runs = 1\nmax_runs = 2\nrepeat = 3\n[[grid]]\nhidden = [16]\nkept = [0.5]\nmodes = [\"dense\", \"iss\"]\nbatch = [1]\nseq = [2]\nthreads = [1]\n",
    )
    .unwrap();
    let summary = run_sweep(&spec, options(&csv, false, Arc::new(AtomicBool::new(false)))).unwrap();
    assert_eq!(summary.measured, 6);
    let rows = read_rows(&[csv]).unwrap();
    let repeats: Vec<usize> = rows.iter().map(|r| r.repeat).collect();
    assert_eq!(repeats, [1, 1, 2, 2, 3, 3]);
    assert_eq!(summary.spreads.len(), 2, "{:?}", summary.spreads);
    for s in &summary.spreads {
        assert_eq!(s.medians_ms.len(), 3);
        assert!(s.spread() >= 0.0);
        assert_eq!(s.speedups.len(), if s.point.contains(" iss ") { 3 } else { 0 }, "{s:?}");
    }
}

#[test]
fn synthetic_grids_of_every_cell_run_verified() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("cells.csv");
    let spec = SweepSpec::from_toml(
        "cells.toml",
        r#"
name = "cells"
budget_ms = 1
min_runs = 2
max_runs = 3
[[grid]]
hidden = [24]
layers = 2
cell = ["gru", "gru-rb", "rhn3"]
kept = [0.5]
modes = ["dense", "iss", "csr"]
batch = [3]
seq = [4]
threads = [2]
[[grid]]
hidden = [16]
layers = 2
bidirectional = true
kept = [0.5]
modes = ["dense", "iss", "csr"]
batch = [2]
seq = [5]
threads = [1]
"#,
    )
    .unwrap();
    let summary = run_sweep(&spec, options(&csv, false, Arc::new(AtomicBool::new(false)))).unwrap();
    let rows = read_rows(std::slice::from_ref(&csv)).unwrap();
    let failed: Vec<String> = rows
        .iter()
        .filter(|r| !r.ok())
        .map(|r| format!("{} {}: {}", r.model, r.mode, r.status))
        .collect();
    assert_eq!((summary.measured, summary.failed), (4 * 3, 0), "{failed:?}");
    let rows = read_rows(&[csv]).unwrap();
    let cells: Vec<(&str, &str)> = rows.iter().map(|r| (r.model.as_str(), r.cell.as_str())).collect();
    for want in [
        ("gru2x24-k0.5", "gru"),
        ("gru-rb2x24-k0.5", "gru-rb"),
        ("rhn32x24-k0.5", "rhn3"),
        ("bilstm2x16-k0.5", "bilstm"),
    ] {
        assert!(cells.contains(&want), "{want:?} in {cells:?}");
    }
    for r in &rows {
        assert!(r.ok(), "{r:?}");
        if r.mode != Mode::Dense {
            assert!(r.verify_max_rel.unwrap() <= 1e-4, "{r:?}");
        }
        if r.mode == Mode::Iss {
            let kept = if r.cell == "bilstm" { "8+8/8+8" } else { "12/12" };
            assert_eq!(r.hidden_kept, kept, "{r:?}");
        }
    }
}

#[test]
fn a_cell_that_does_not_exist_is_refused_by_name() {
    let e = SweepSpec::from_toml(
        "c.toml",
        "name = \"c\"\n[[grid]]\nhidden = [8]\ncell = [\"rhn0\"]\nmodes = [\"dense\"]\nbatch = [1]\nseq = [1]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("no cell 'rhn0'"), "{e}");
}
