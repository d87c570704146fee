//! Hostile input, round two: each way issbench could lose data, crash, hang
//! or mislead, and what it does instead. Numbered as in the issue.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use issbench::checkpoint::save_safetensors;
use issbench::model::synthetic::SynthSpec;
use issbench::model::{Linear, LstmLayer, Model};
use issbench::report::{Row, read_rows};

fn issbench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_issbench")).args(args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A one-line error naming what is wrong, with exit code 1.
fn refused(out: &Output, says: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "exit code for: {err}");
    assert!(err.contains(says), "{says:?} not in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn synthetic(hidden: usize, kept: Option<usize>) -> Model {
    SynthSpec {
        name: format!("h{hidden}"),
        input: 8,
        layers: vec![hidden, hidden],
        vocab: None,
        seed: hidden as u64,
        kept: kept.map(|k| vec![k, k]),
        ..Default::default()
    }
    .build()
    .unwrap()
}

fn save(model: &Model, path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    save_safetensors(model, path, Default::default()).unwrap();
}

fn sweep_toml(dir: &Path, name: &str, grid: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!("name = \"{name}\"\nbudget_ms = 1\nmin_runs = 1\nmax_runs = 1\n[[grid]]\n{grid}\n"),
    )
    .unwrap();
    path
}

// 1. Two checkpoints of the same file name are two points.
#[test]
fn checkpoints_of_one_file_name_in_two_folders_are_both_measured() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("runA/model.safetensors"), dir.path().join("runB/model.safetensors"));
    save(&synthetic(16, None), &a);
    save(&synthetic(24, None), &b);
    let spec = sweep_toml(
        dir.path(),
        "two",
        &format!(
            "models = [{:?}, {:?}]\nmodes = [\"dense\"]\nbatch = [1]\nseq = [2]\nthreads = [1]\nhead = [false]",
            a.display().to_string(),
            b.display().to_string()
        ),
    );
    let out = dir.path().join("out");
    let run = issbench(&[
        "sweep",
        "--config",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--no-charts",
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let rows = read_rows(&[out.join("two.csv")]).unwrap();
    let sizes: Vec<&str> = rows.iter().map(|r| r.hidden_full.as_str()).collect();
    assert_eq!(sizes, ["16/16", "24/24"]);
    assert!(
        rows.iter()
            .all(|r| r.model == "model.safetensors" && r.source.starts_with("file:/"))
    );
    // Resuming finds both, by their paths.
    let again = issbench(&[
        "sweep",
        "--config",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--no-charts",
        "--resume",
    ]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 measured, 0 failed, 2 already in the file"));
}

// 2 and 3. Checks that cannot be switched off, and arguments that cannot panic.
#[test]
fn numeric_options_out_of_range_are_refused() {
    for (args, says) in [
        (
            vec!["compact", "tiny-iss", "-o", "/tmp/never.safetensors", "--tolerance", "nan"],
            "not a finite number",
        ),
        (vec!["inspect", "x.npz", "--threshold", "nan"], "not a finite number"),
        (vec!["inspect", "x.npz", "--threshold=-1"], "negative"),
        (vec!["run", "tiny", "--time", "inf"], "not a finite number"),
        (vec!["run", "tiny", "--time", "1e20"], "0 to 86400 seconds"),
        (vec!["run", "tiny", "--time=-1"], "0 to 86400 seconds"),
        (vec!["run", "tiny", "--time", "nan"], "not a finite number"),
        (vec!["run", "tiny", "--min-runs", "0"], "min_runs 0"),
        (vec!["run", "tiny", "--max-runs", "0"], "max_runs 0"),
        (
            vec!["run", "tiny", "--min-runs", "10", "--max-runs", "5"],
            "min_runs 10 and max_runs 5",
        ),
        (vec!["run", "tiny", "--sparsity", "1.5"], "not in [0, 1]"),
        (vec!["run", "tiny", "--forget-bias", "inf"], "not a finite number"),
    ] {
        refused(&issbench(&args), says);
    }
}

#[test]
fn a_closed_standard_output_ends_the_program_quietly() {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{} models | head -1", env!("CARGO_BIN_EXE_issbench")))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

// 4. Memory bounded by what the model needs.
#[test]
fn npz_members_the_model_does_not_use_are_never_inflated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.npz");
    // A real Keras-named LSTM, plus twelve deflated 256 MiB arrays of zeros
    // under names no layout reads (optimizer slots, say).
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let deflated = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    let npy = |shape: &[usize], data: &[u8]| {
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        let shape = if dims.len() == 1 {
            format!("({},)", dims[0])
        } else {
            format!("({})", dims.join(", "))
        };
        let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        out.extend_from_slice(data);
        out
    };
    let f32s = |n: usize| {
        (0..n)
            .flat_map(|i| (((i % 7) as f32 - 3.0) * 0.1).to_le_bytes())
            .collect::<Vec<u8>>()
    };
    for (name, shape) in [
        ("lstm/lstm_cell/kernel", vec![5usize, 16]),
        ("lstm/lstm_cell/recurrent_kernel", vec![4, 16]),
        ("lstm/lstm_cell/bias", vec![16]),
    ] {
        zip.start_file(format!("{name}.npy"), stored).unwrap();
        zip.write_all(&npy(&shape, &f32s(shape.iter().product()))).unwrap();
    }
    let zeros = vec![0u8; 1 << 20];
    for i in 0..12 {
        zip.start_file(format!("optimizer/slot_{i}.npy"), deflated).unwrap();
        zip.write_all(&npy(&[64 << 20], &[])).unwrap();
        for _ in 0..256 {
            zip.write_all(&zeros).unwrap();
        }
    }
    zip.finish().unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() < 8 << 20);
    // Run under a 1 GiB address-space limit: inflating one member would fail.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v 1048576; exec {} inspect {} --format json",
            env!("CARGO_BIN_EXE_issbench"),
            path.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["layers"][0]["hidden"], 4);
    let ignored = report["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["role"] == "ignored")
        .count();
    assert_eq!(ignored, 12);
}

#[test]
fn devices_behind_checkpoint_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck");
    std::fs::create_dir(&ck).unwrap();
    for e in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tf_kernel_bias")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), ck.join(e.file_name())).unwrap();
    }
    let data = ck.join("model.ckpt-3900.data-00000-of-00001");
    std::fs::remove_file(&data).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &data).unwrap();
    refused(&issbench(&["inspect", ck.to_str().unwrap()]), "not a regular file");
    std::fs::remove_file(ck.join("checkpoint")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", ck.join("checkpoint")).unwrap();
    refused(&issbench(&["inspect", ck.to_str().unwrap()]), "not a regular file");
}

#[test]
fn a_point_larger_than_memory_fails_its_row_and_the_sweep_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let spec = sweep_toml(
        dir.path(),
        "big",
        "hidden = [16384, 16]\nlayers = 16\nmodes = [\"dense\"]\nbatch = [1]\nseq = [2]\nthreads = [1]",
    );
    let out = dir.path().join("out");
    let run = issbench(&[
        "sweep",
        "--config",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--no-charts",
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let rows = read_rows(&[out.join("big.csv")]).unwrap();
    assert!(rows[0].status.to_string().contains("GB is available"), "{}", rows[0].status);
    assert!(rows[1].ok());
}

// 5. The results CSV is never corrupted or erased.
fn tiny_sweep(dir: &Path, name: &str, extra: &str) -> PathBuf {
    sweep_toml(
        dir,
        name,
        &format!("hidden = [8]\nkept = [0.5]\nmodes = [\"dense\", \"iss\"]\nbatch = [1]\nseq = [2]\nthreads = [1]\n{extra}"),
    )
}

fn sweep(spec: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "sweep",
        "--config",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--no-charts",
    ];
    args.extend(extra);
    issbench(&args)
}

#[test]
fn a_file_that_is_not_issbenchs_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let spec = tiny_sweep(dir.path(), "t", "");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let csv = out.join("t.csv");
    std::fs::write(&csv, "my precious notes").unwrap();
    refused(&sweep(&spec, &out, &[]), "not an issbench results file");
    assert_eq!(std::fs::read_to_string(&csv).unwrap(), "my precious notes");
    // One column more than issbench writes: refused too, byte for byte kept.
    let run = sweep(&spec, &dir.path().join("fresh"), &[]);
    assert!(run.status.success());
    let text = std::fs::read_to_string(dir.path().join("fresh/t.csv")).unwrap();
    let edited: String = text.lines().map(|l| format!("{l},x\n")).collect();
    std::fs::write(&csv, &edited).unwrap();
    refused(&sweep(&spec, &out, &["--resume"]), "column 'x' is not issbench's");
    assert_eq!(std::fs::read_to_string(&csv).unwrap(), edited);
}

#[test]
fn a_complete_last_row_without_its_newline_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let spec = tiny_sweep(dir.path(), "t", "");
    let out = dir.path().join("out");
    assert!(sweep(&spec, &out, &[]).status.success());
    let csv = out.join("t.csv");
    let text = std::fs::read_to_string(&csv).unwrap();
    std::fs::write(&csv, text.trim_end_matches('\n')).unwrap();
    let again = sweep(&spec, &out, &["--resume"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 measured, 0 failed, 2 already in the file"));
    assert_eq!(read_rows(&[csv]).unwrap().len(), 2);
}

#[test]
fn a_second_writer_is_refused_while_the_first_holds_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let spec = sweep_toml(
        dir.path(),
        "slow",
        "hidden = [64]\nkept = [0.5]\nmodes = [\"dense\", \"iss\"]\nbatch = [1]\nseq = [2, 3, 4, 5, 6, 7, 8, 9]\nthreads = [1]",
    );
    let spec_text = std::fs::read_to_string(&spec)
        .unwrap()
        .replace("budget_ms = 1\n", "budget_ms = 400\n")
        .replace("max_runs = 1\n", "max_runs = 100000000\n");
    std::fs::write(&spec, spec_text).unwrap();
    let out = dir.path().join("out");
    let mut first = Command::new(env!("CARGO_BIN_EXE_issbench"))
        .args([
            "sweep",
            "--config",
            spec.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--no-charts",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the first to take the file.
    let csv = out.join("slow.csv");
    for _ in 0..400 {
        if std::fs::metadata(&csv).is_ok_and(|m| m.len() > 0) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let second = sweep(&spec, &out, &[]);
    let _ = first.kill();
    let _ = first.wait();
    refused(&second, "another issbench is writing this file");
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().filter(|l| l.starts_with("suite_version")).count(), 1, "one header");
    assert!(read_rows(&[csv]).is_ok(), "the first writer's rows are intact");
}

#[test]
fn spec_names_that_are_not_plain_file_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["../../escape", "/tmp/x/abs", "", ".hidden", "a b"] {
        let spec = dir.path().join("bad.toml");
        std::fs::write(
            &spec,
            format!("name = {name:?}\n[[grid]]\nhidden = [8]\nmodes = [\"dense\"]\nbatch = [1]\nseq = [2]\n"),
        )
        .unwrap();
        refused(&sweep(&spec, &dir.path().join("out"), &[]), "must be a plain file name");
    }
    assert!(!dir.path().join("escape.csv").exists());
}

#[test]
fn a_failed_append_leaves_the_file_at_its_last_complete_row() {
    let dir = tempfile::tempdir().unwrap();
    let spec = sweep_toml(
        dir.path(),
        "full",
        "hidden = [8]\nkept = [0.5]\nmodes = [\"dense\", \"iss\"]\nbatch = [1, 2, 3, 4, 5, 6, 7, 8]\nseq = [2]\nthreads = [1]",
    );
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // A file-size limit (the disk "full" at 4 KiB): writes past it fail
    // with EFBIG, and SIGXFSZ is ignored so that the process sees them.
    let run = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f 4; exec {} sweep --config {} --out {} --no-charts",
            env!("CARGO_BIN_EXE_issbench"),
            spec.display(),
            out.display()
        ))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    assert!(stderr(&run).contains("full.csv"), "{}", stderr(&run));
    let text = std::fs::read_to_string(out.join("full.csv")).unwrap();
    assert!(text.ends_with('\n'), "a partial row was left");
    let rows = read_rows(&[out.join("full.csv")]).unwrap();
    assert!(!rows.is_empty() && rows.len() < 16, "{} rows", rows.len());
}

#[test]
fn resume_measures_again_what_another_backend_measured() {
    let dir = tempfile::tempdir().unwrap();
    let spec = tiny_sweep(dir.path(), "t", "");
    let out = dir.path().join("out");
    assert!(sweep(&spec, &out, &[]).status.success());
    let text = std::fs::read_to_string(&spec)
        .unwrap()
        .replace("[[grid]]", "backend = \"matrixmultiply\"\n[[grid]]");
    std::fs::write(&spec, text).unwrap();
    let again = sweep(&spec, &out, &["--resume"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("2 measured, 0 failed, 0 already in the file"));
    let backends: Vec<String> = read_rows(&[out.join("t.csv")]).unwrap().into_iter().map(|r| r.backend).collect();
    assert!(backends[2..].iter().all(|b| b == "matrixmultiply"), "{backends:?}");
}

// 6. The peer cannot hang the sweep, nor lend its rows issbench's numbers.
fn peer_script(dir: &Path, body: &str) -> PathBuf {
    let script = dir.join("peer.py");
    std::fs::write(
        &script,
        format!("import json, sys, time\nif sys.argv[1] == 'version':\n    print('0.0-fake'); sys.exit(0)\nprint(json.dumps({{'ready': True}}), flush=True)\n{body}\n"),
    )
    .unwrap();
    script
}

#[test]
fn a_peer_that_prints_junk_fails_its_rows_without_numbers() {
    if Command::new("python3").arg("--version").output().is_err() {
        // Straight to the stderr handle: the harness captures eprintln!.
        let _ = writeln!(std::io::stderr(), "SKIPPED: no python3 for the fake peer");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = peer_script(dir.path(), "for line in sys.stdin:\n    print('this is not json', flush=True)");
    let spec = tiny_sweep(dir.path(), "t", "");
    let out = dir.path().join("out");
    let run = Command::new(env!("CARGO_BIN_EXE_issbench"))
        .args([
            "sweep",
            "--config",
            spec.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--no-charts",
            "--peer",
            "ort",
        ])
        .env("ISSBENCH_PYTHON", "python3")
        .env("ISSBENCH_PEER_SCRIPT", &script)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        String::from_utf8_lossy(&run.stdout).contains("2 measured, 2 failed"),
        "{}",
        String::from_utf8_lossy(&run.stdout)
    );
    for r in read_rows(&[out.join("t.csv")]).unwrap().iter().filter(|r| r.mode.is_peer()) {
        assert!(
            !r.ok() && r.median_ns == 0.0 && r.runs == 0 && r.speedup_vs_dense.is_none(),
            "{r:?}"
        );
    }
}

#[test]
fn a_peer_that_never_answers_is_stopped() {
    if Command::new("python3").arg("--version").output().is_err() {
        // Straight to the stderr handle: the harness captures eprintln!.
        let _ = writeln!(std::io::stderr(), "SKIPPED: no python3 for the fake peer");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Answers the start, then sleeps through every round it is asked for.
    let script = peer_script(dir.path(), "for line in sys.stdin:\n    time.sleep(3600)");
    let peer = issbench::peer::OrtPeer::with("python3".into(), script).unwrap();
    let model = dir.path().join("m.onnx");
    std::fs::write(&model, b"").unwrap();
    let point = issbench::peer::PeerPoint {
        batch: 1,
        seq: 1,
        threads: 1,
        vocab: 1,
        int8: false,
        batch_major: false,
    };
    let mut run = peer.start(&model, &point).unwrap();
    let started = std::time::Instant::now();
    let budget = issbench::measure::Budget {
        warmup_runs: 0,
        time: std::time::Duration::ZERO,
        min_runs: 1,
        max_runs: 1,
    };
    let err = run.sample_within(budget, std::time::Duration::from_millis(300)).unwrap_err();
    assert!(err.contains("no answer within"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

// 7. An output never overwrites its input.
#[test]
fn compact_and_export_refuse_to_overwrite_their_input() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.safetensors");
    save(&synthetic(16, Some(8)), &path);
    let before = std::fs::read(&path).unwrap();
    let p = path.to_str().unwrap();
    refused(
        &issbench(&["compact", p, "-o", p, "--shrink-output"]),
        "is (or belongs to) the input checkpoint",
    );
    refused(&issbench(&["export-onnx", p, "-o", p]), "is (or belongs to) the input checkpoint");
    let link = dir.path().join("link.safetensors");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    refused(
        &issbench(&["compact", p, "-o", link.to_str().unwrap(), "--shrink-output"]),
        "input checkpoint",
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

// 8. A head of the wrong shape is an error, and `run` says what it ran.
#[test]
fn a_head_that_does_not_fit_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("head.safetensors");
    let model = synthetic(64, None);
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = issbench::checkpoint::torch_names(&model);
    tensors.push(("decoder.weight".into(), vec![50, 40], vec![0.1; 2000]));
    tensors.push(("decoder.bias".into(), vec![50], vec![0.0; 50]));
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, s, v)| {
            let bytes: &[u8] = unsafe { std::slice::from_raw_parts(v.as_ptr().cast(), v.len() * 4) };
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), bytes).unwrap(),
            )
        })
        .collect();
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
    refused(&issbench(&["inspect", path.to_str().unwrap()]), "looks like the output projection");
}

#[test]
fn run_says_a_model_without_head_ran_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bare.safetensors");
    save(&synthetic(16, None), &path);
    let out = issbench(&["run", path.to_str().unwrap(), "--time", "0", "--min-runs", "1", "--max-runs", "1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("the model has no embedding or head") && !text.contains("with embedding and head"),
        "{text}"
    );
}

// 9. Impossible times are refused.
#[test]
fn report_and_compare_refuse_impossible_times() {
    let dir = tempfile::tempdir().unwrap();
    let spec = tiny_sweep(dir.path(), "t", "");
    let out = dir.path().join("out");
    assert!(sweep(&spec, &out, &[]).status.success());
    let csv = out.join("t.csv");
    let mut rows = read_rows(std::slice::from_ref(&csv)).unwrap();
    for bad in [-1.0, 0.0, f64::NAN] {
        rows[0].median_ns = bad;
        let file = dir.path().join("bad.csv");
        std::fs::write(&file, issbench::report::to_csv(&rows).unwrap()).unwrap();
        for cmd in ["report", "compare"] {
            let out = issbench(&[
                cmd,
                file.to_str().unwrap(),
                csv.to_str().unwrap(),
                "--out",
                dir.path().join("o").to_str().unwrap(),
            ]);
            refused(&out, "is not a time");
        }
    }
}

// 10. Messages that say what is wrong.
#[test]
fn messages_name_the_real_problem() {
    let dir = tempfile::tempdir().unwrap();
    // A GRU's weight_hh beside an LSTM's weight_ih: the disagreement is named.
    let gru = dir.path().join("gru.safetensors");
    let (h, input) = (24usize, 7usize);
    let tensors = [
        ("weight_ih_l0", vec![4 * h, input]),
        ("weight_hh_l0", vec![3 * h, h]),
        ("bias_ih_l0", vec![3 * h]),
        ("bias_hh_l0", vec![3 * h]),
    ];
    let data: Vec<Vec<f32>> = tensors.iter().map(|(_, s)| vec![0.1; s.iter().product()]).collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .zip(&data)
        .map(|((n, s), v)| {
            let bytes: &[u8] = unsafe { std::slice::from_raw_parts(v.as_ptr().cast(), v.len() * 4) };
            (
                n.to_string(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), bytes).unwrap(),
            )
        })
        .collect();
    std::fs::write(&gru, safetensors::serialize(views, None).unwrap()).unwrap();
    refused(&issbench(&["inspect", gru.to_str().unwrap()]), "a GRU of 24 units");
    refused(&issbench(&["inspect", gru.to_str().unwrap()]), "the gate counts disagree");
    // A file that does not exist is not a "missing tensor".
    let out = issbench(&["run", "/no/such/model.pt"]);
    refused(&out, "no such file");
    assert!(!stderr(&out).contains("missing tensor"));
    // An OS error is printed once, and a failed write says write.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch_lstm.safetensors");
    let out = issbench(&["compact", fixture.to_str().unwrap(), "-o", "/proc/version/x.safetensors"]);
    let err = stderr(&out);
    assert!(err.contains("cannot write") && !err.contains("cannot read"), "{err}");
    let first = err.find("(os error").unwrap();
    assert!(!err[first + 1..].contains("(os error"), "the OS error twice: {err}");
    // A folder named like a built-in model is read, and the note says so.
    let tiny = dir.path().join("tiny");
    std::fs::create_dir(&tiny).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_issbench"))
        .args(["run", "tiny"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(stderr(&out).contains("also a built-in model"), "{}", stderr(&out));
    let out = Command::new(env!("CARGO_BIN_EXE_issbench"))
        .args(["run", "builtin:tiny", "--time", "0", "--min-runs", "1", "--max-runs", "1"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn an_interrupted_sweep_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let spec = sweep_toml(
        dir.path(),
        "long",
        "hidden = [64]\nkept = [0.5]\nmodes = [\"dense\", \"iss\"]\nbatch = [1, 2, 3, 4, 5, 6, 7, 8]\nseq = [4]\nthreads = [1]",
    );
    let text = std::fs::read_to_string(&spec)
        .unwrap()
        .replace("budget_ms = 1\n", "budget_ms = 300\n")
        .replace("max_runs = 1\n", "max_runs = 100000000\n");
    std::fs::write(&spec, text).unwrap();
    let out = dir.path().join("out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_issbench"))
        .args([
            "sweep",
            "--config",
            spec.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--no-charts",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let csv = out.join("long.csv");
    for _ in 0..500 {
        if read_rows(std::slice::from_ref(&csv)).is_ok_and(|r: Vec<Row>| !r.is_empty()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
}

#[test]
fn inspect_summarises_removed_units_as_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.safetensors");
    let model = synthetic(256, Some(32));
    // A head, so that the last layer's units are removable too.
    let head = Linear::new("head", 256, 5, vec![0.0; 5 * 256], vec![0.0; 5]).unwrap();
    let layers: Vec<LstmLayer> = model.layers().iter().map(|l| l.fw().clone()).collect();
    save(&Model::new("big", None, layers, Some(head)).unwrap(), &path);
    let out = issbench(&["inspect", path.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    let widest = text.lines().map(str::len).max().unwrap();
    assert!(widest < 200 && text.contains("more ranges; all in --format json"), "{text}");
}

// 11. Denormal weights are zeros below the threshold.
#[test]
fn denormal_components_count_as_zeros_for_csr() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("denormal.safetensors");
    // Planted components whose weights are 1e-39 (denormal), not 0.
    let planted = synthetic(64, Some(16));
    let denormal = |w: &[f32]| w.iter().map(|&v| if v == 0.0 { 1e-39 } else { v }).collect::<Vec<f32>>();
    let layers: Vec<LstmLayer> = planted
        .layers()
        .iter()
        .enumerate()
        .map(|(k, l)| {
            let l = l.fw();
            LstmLayer::new(
                &format!("layer {k}"),
                l.input(),
                l.hidden(),
                denormal(l.w_ih()),
                denormal(l.w_hh()),
                l.bias().to_vec(),
            )
            .unwrap()
        })
        .collect();
    save(&Model::new("d", None, layers, None).unwrap(), &path);
    let run = |mode: &str| -> Row {
        let out = issbench(&[
            "run",
            path.to_str().unwrap(),
            "--mode",
            mode,
            "--shrink-output",
            "--format",
            "json",
            "--time",
            "0",
            "--min-runs",
            "1",
            "--max-runs",
            "1",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let (iss, csr) = (run("iss"), run("csr"));
    assert_eq!(iss.hidden_kept, "16/16");
    // The pruned model keeps the compacted model's weights above the
    // threshold (a few real weights of the compacted model are below it
    // too), never a denormal.
    let (kept, iss_weights) = (csr.nonzero_weights as f64, iss.nonzero_weights as f64);
    assert!(
        kept <= iss_weights && kept > 0.99 * iss_weights,
        "csr {kept} against iss {iss_weights}"
    );
}
