//! The exported ONNX graph computes what issbench computes: checked by
//! ONNX Runtime where a Python with onnxruntime is available
//! (ISSBENCH_PYTHON, else python3); skipped with the reason printed where
//! it is not.

use issbench::exec::{Backend, Executor, RnnExecutor};
use issbench::iss::{DEFAULT_THRESHOLD, analyze, compact};
use issbench::model::Cell;
use issbench::model::Inputs;
use issbench::model::synthetic::SynthSpec;
use issbench::onnx::{export, export_for};
use issbench::peer::{OrtPeer, write_npy};
use std::io::Write;

#[test]
fn onnx_runtime_agrees_with_issbench_on_the_exported_models() {
    let peer = match OrtPeer::find() {
        Ok(p) => p,
        Err(why) => {
            // Straight to the stderr handle: the harness captures eprintln!.
            let _ = writeln!(std::io::stderr(), "SKIPPED (ONNX Runtime not available): {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let tiny = SynthSpec::builtin("tiny-iss").unwrap();
    let cells = [
        (Cell::Lstm, false),
        (Cell::Lstm, true),
        (Cell::Gru { reset_after: true }, false),
        (Cell::Gru { reset_after: false }, false),
        (Cell::Gru { reset_after: true }, true),
        (Cell::Rhn { depth: 3 }, false),
        (Cell::Rhn { depth: 2 }, true),
    ];
    for (cell, bidirectional) in cells {
        let dirs = if bidirectional { 2 } else { 1 };
        // Planted so that the directions of a layer compact to different
        // widths (two ops and a Concat in the graph).
        let spec = SynthSpec {
            cell,
            bidirectional,
            kept: Some((0..tiny.layers.len() * dirs).map(|i| 5 + i % 3).collect()),
            ..tiny.clone()
        };
        let full = spec.build().unwrap();
        let compacted = compact(&full, &analyze(&full, DEFAULT_THRESHOLD)).unwrap().model;
        for (name, model) in [("full", &full), ("compacted", &compacted)] {
            let what = format!("{} {name}{}", cell.describe(), if bidirectional { " bidirectional" } else { "" });
            check_export(&peer, dir.path(), &what, model);
        }
    }
    // A tied RHN (iss-rnns' PTB model), compacted.
    let rhn = SynthSpec {
        input: 12,
        layers: vec![12],
        vocab: Some(9),
        cell: Cell::Rhn { depth: 4 },
        tied: true,
        kept: Some(vec![7]),
        ..tiny.clone()
    }
    .build()
    .unwrap();
    let compacted = compact(&rhn, &analyze(&rhn, DEFAULT_THRESHOLD)).unwrap().model;
    check_export(&peer, dir.path(), "tied rhn compacted", &compacted);
}

/// Exports `model` (with and without embedding and head) for 7 steps and
/// has ONNX Runtime run it on the input issbench's executor ran.
fn check_export(peer: &OrtPeer, dir: &std::path::Path, what: &str, model: &issbench::model::Model) {
    let seq = 7;
    for layers_only in [false, true] {
        let onnx = dir.join("model.onnx");
        std::fs::write(&onnx, export_for(model, layers_only, Some(seq)).unwrap()).unwrap();
        let view = if layers_only { model.layers_only() } else { model.clone() };
        let inputs = Inputs::random(&view, seq, 3, 11);
        let input = dir.join("input.npy");
        match &inputs {
            Inputs::Tokens { seq, batch, ids } => {
                let raw: Vec<u8> = ids.iter().flat_map(|&t| (t as i64).to_le_bytes()).collect();
                write_npy(&input, "<i8", &[*seq, *batch], &raw).unwrap();
            }
            Inputs::Features { seq, batch, width, values } => {
                let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                write_npy(&input, "<f4", &[*seq, *batch, *width], &raw).unwrap();
            }
        }
        let out = RnnExecutor::prepare(&view, Backend::Packed, layers_only, "dense")
            .run(&inputs)
            .unwrap()
            .to_vec();
        let width = view.output_size(layers_only);
        let expected = dir.join("expected.npy");
        let raw: Vec<u8> = out.iter().flat_map(|v| v.to_le_bytes()).collect();
        write_npy(&expected, "<f4", &[seq, 3, width], &raw).unwrap();
        let rel = peer
            .check(&onnx, &input, &expected, 1e-4)
            .unwrap_or_else(|e| panic!("{what} layers_only={layers_only}: {e}"));
        println!(
            "{what} layers_only={layers_only}: onnxruntime {} vs issbench max relative error {rel:e}",
            peer.version
        );
    }
}

#[test]
fn an_rhn_is_exported_only_for_a_fixed_sequence() {
    let rhn = SynthSpec {
        input: 4,
        layers: vec![5],
        cell: Cell::Rhn { depth: 2 },
        ..Default::default()
    }
    .build()
    .unwrap();
    let e = export(&rhn, true).unwrap_err().to_string();
    assert!(e.contains("unrolled over a fixed sequence length"), "{e}");
    assert!(export_for(&rhn, true, Some(3)).is_ok());
}

/// Sweeps `models` (dense and iss, with and without head, batch 3, seq 5,
/// one thread) with `peer` and returns the rows.
fn sweep_with_peer(peer: OrtPeer, models: &[String], extra_grid: &str) -> Vec<issbench::report::Row> {
    use issbench::sweep::{SweepOptions, SweepSpec, run_sweep};
    let dir = tempfile::tempdir().unwrap();
    let quoted: Vec<String> = models.iter().map(|m| format!("{m:?}")).collect();
    let spec = SweepSpec::from_toml(
        "p.toml",
        &format!(
            "name = \"p\"\nbudget_ms = 1\nmin_runs = 1\nmax_runs = 2\n[[grid]]\nmodels = [{}]\nmodes = [\"dense\", \"iss\"]\nbatch = [3]\nseq = [5]\nthreads = [1]\nhead = [true, false]\n{extra_grid}",
            quoted.join(", ")
        ),
    )
    .unwrap();
    let csv = dir.path().join("p.csv");
    let options = SweepOptions {
        csv: Some(csv.clone()),
        resume: false,
        stop: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
        on_row: Box::new(|_, _, _| {}),
        peer: Some(peer),
        label: String::new(),
        shard: None,
    };
    run_sweep(&spec, options).unwrap();
    issbench::report::read_rows(&[csv]).unwrap()
}

fn fixture(name: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn the_peer_runs_the_users_own_onnx_file_and_agrees_with_issbench() {
    use issbench::mode::Mode;
    let peer = match OrtPeer::find() {
        Ok(p) => p,
        Err(why) => {
            let _ = writeln!(std::io::stderr(), "SKIPPED (ONNX Runtime not available): {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    // issbench's own export has symbolic seq and batch: it runs at any shape.
    let tiny = dir.path().join("tiny.onnx");
    std::fs::write(
        &tiny,
        export(&SynthSpec::builtin("tiny-iss").unwrap().build().unwrap(), false).unwrap(),
    )
    .unwrap();
    let files = ["same_torch.onnx", "same_torch_legacy.onnx", "keras_lstm_tf2onnx.onnx"];
    let mut models: Vec<String> = files.iter().map(|f| fixture(f)).collect();
    models.push(tiny.display().to_string());
    let other_shape = format!(
        "[[grid]]\nmodels = [{:?}, {:?}]\nmodes = [\"dense\"]\nbatch = [2]\nseq = [7]\nthreads = [1]\nhead = [true]\n",
        tiny.display().to_string(),
        fixture("same_torch.onnx")
    );
    let rows = sweep_with_peer(peer, &models, &other_shape);
    for row in rows.iter().filter(|r| r.mode == Mode::OrtDense) {
        let what = format!("{} head={} b{} s{}", row.model, row.head, row.batch, row.seq);
        if !row.head {
            // Layers only: the file computes more than that; issbench's export runs.
            assert!(!row.backend.contains("user-file") && row.ok(), "{what}: {row:?}");
        } else if row.model == "same_torch.onnx" && row.batch == 2 {
            // The torch exports fix their input at [5, 3].
            assert!(row.backend.ends_with("user-file"), "{what}");
            assert!(
                row.status.to_string().contains("has a fixed [seq, batch] (seq 5, batch 3)"),
                "{what}: {}",
                row.status
            );
        } else {
            assert!(row.ok() && row.backend.ends_with("user-file"), "{what}: {row:?}");
            let rel = row.verify_max_rel.unwrap();
            assert!(rel < 1e-6, "{what}: onnxruntime on the file vs issbench: {rel:e}");
            println!("{what}: onnxruntime on the user's file vs issbench's dense model, max relative error {rel:.2e}");
        }
    }
    assert_eq!(
        rows.iter()
            .filter(|r| r.mode == Mode::OrtDense && r.backend.ends_with("user-file"))
            .count(),
        6
    );
}

#[test]
fn a_users_file_whose_outputs_disagree_fails_its_ort_dense_row() {
    use issbench::mode::Mode;
    if std::process::Command::new("python3").arg("--version").output().is_err() {
        let _ = writeln!(std::io::stderr(), "SKIPPED: no python3 for the fake peer");
        return;
    }
    // A fake peer whose check says the file's outputs are 10% off.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("peer.py");
    std::fs::write(
        &script,
        "import json, sys\nif sys.argv[1] == 'version':\n    print('0.0-fake'); sys.exit(0)\nready = {'ready': True}\nif '--check-input' in sys.argv:\n    ready['check'] = {'max_abs': 0.1, 'max_rel': 0.1}\nprint(json.dumps(ready), flush=True)\nfor line in sys.stdin:\n    print(json.dumps({'samples_ns': [1000.0]}), flush=True)\n",
    )
    .unwrap();
    let peer = OrtPeer::with("python3".into(), script).unwrap();
    let rows = sweep_with_peer(peer, &[fixture("same_torch.onnx")], "");
    let file_row = rows.iter().find(|r| r.mode == Mode::OrtDense && r.head).unwrap();
    assert!(
        file_row
            .status
            .to_string()
            .contains("its outputs differ from issbench's on the check input (max relative error 1.000e-1 > 1e-4)"),
        "{}",
        file_row.status
    );
    // The rows on issbench's own export (no check) are measured as before.
    assert!(rows.iter().filter(|r| r.mode == Mode::OrtIss).all(|r| r.ok()));
}
