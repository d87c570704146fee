//! Loaders against checkpoints written by the real frameworks
//! (tests/fixtures, written by tools/make_fixtures.py): canonical weights
//! bit-for-bit, outputs against the framework's own to 1e-5, the planted ISS
//! components found, and the same model in four formats read identically.

use std::path::{Path, PathBuf};

use issbench::checkpoint::{Format, Layout, LoadOptions, RawTensor, load, npz, read_tensors};
use issbench::iss::{DEFAULT_THRESHOLD, analyze};
use issbench::model::{Cell, Inputs, Model, reference_forward};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn sidecar(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixture(&format!("{name}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn tensor<'a>(tensors: &'a [RawTensor], name: &str) -> &'a RawTensor {
    tensors
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("{name} not in file"))
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Loads fixture `name` with the forget bias its sidecar records.
fn load_fixture(name: &str) -> issbench::checkpoint::Checkpoint {
    let side = sidecar(name);
    let options = LoadOptions {
        forget_bias: side["forget_bias"].as_f64().map(|f| f as f32),
        ..LoadOptions::default()
    };
    load(&fixture(name), &options).unwrap_or_else(|e| panic!("{e}"))
}

fn assert_canonical(name: &str, model: &Model) {
    let canonical = npz::read_npz(&fixture(&format!("{name}.canonical.npz"))).unwrap();
    let f32s = |n: &str| tensor(&canonical, n).to_f32().unwrap().0;
    for (k, d, dir) in model.directions() {
        let at = if model.layers()[k].is_bidirectional() {
            format!("layers.{k}.{}", d.name())
        } else {
            format!("layers.{k}")
        };
        let same = |got: &[f32], key: &str| assert_eq!(bits(got), bits(&f32s(&format!("{at}.{key}"))), "{name} {at}.{key}");
        same(dir.w_ih(), "w_ih");
        same(dir.w_hh(), "w_hh");
        match dir.cell() {
            Cell::Gru { .. } => {
                same(dir.bias(), "b_ih");
                same(dir.bias_hh(), "b_hh");
            }
            _ => same(dir.bias(), "bias"),
        }
    }
    let has = |n: &str| canonical.iter().any(|t| t.name == n);
    let directions = canonical.iter().filter(|t| t.name.ends_with(".w_ih")).count();
    assert_eq!(model.directions().count(), directions, "{name} directions");
    assert_eq!(model.embedding().is_some(), has("embedding"), "{name} embedding");
    if let Some(e) = model.embedding() {
        assert_eq!(bits(e.table()), bits(&f32s("embedding")));
    }
    assert_eq!(model.head().is_some(), has("head.weight"), "{name} head");
    if let Some(h) = model.head() {
        assert_eq!(bits(h.weight()), bits(&f32s("head.weight")));
        assert_eq!(bits(h.bias()), bits(&f32s("head.bias")));
    }
    assert_structure(name, model);
}

/// The cell kind, directions and tying the sidecar records (LSTM, one
/// direction and untied where it records none).
fn assert_structure(name: &str, model: &Model) {
    let side = sidecar(name);
    let cell = match side["cell"].as_str().unwrap_or("lstm") {
        "lstm" => Cell::Lstm,
        "gru" => Cell::Gru {
            reset_after: side["reset_after"].as_bool().unwrap(),
        },
        "rhn" => Cell::Rhn {
            depth: side["depth"].as_u64().unwrap() as usize,
        },
        other => panic!("{name}: cell {other}"),
    };
    assert_eq!(model.cell(), Some(cell), "{name} cell");
    let bidirectional = side["directions"].as_u64().unwrap_or(1) == 2;
    assert!(
        model.layers().iter().all(|l| l.is_bidirectional() == bidirectional),
        "{name} directions"
    );
    assert_eq!(model.is_tied(), side["tied"].as_bool().unwrap_or(false), "{name} tied");
}

/// The framework's input and output for the fixture.
fn framework_io(name: &str, model: &Model) -> (Inputs, Vec<f32>) {
    let io = npz::read_npz(&fixture(&format!("{name}.io.npz"))).unwrap();
    let input = tensor(&io, "input");
    let output = tensor(&io, "output").to_f32().unwrap().0;
    let (seq, batch) = (input.shape[0], input.shape[1]);
    let inputs = match model.embedding() {
        Some(_) => Inputs::Tokens {
            seq,
            batch,
            ids: input.to_i64().unwrap().into_iter().map(|t| t as u32).collect(),
        },
        None => Inputs::Features {
            seq,
            batch,
            width: input.shape[2],
            values: input.to_f32().unwrap().0,
        },
    };
    (inputs, output)
}

const ALL: &[(&str, Format, Layout)] = &[
    ("tf_weights_biases", Format::TfCheckpoint, Layout::TfBasicLstm),
    ("tf_kernel_bias", Format::TfCheckpoint, Layout::TfBasicLstm),
    ("torch_lstm.pt", Format::TorchZip, Layout::Pytorch),
    ("torch_lstm.safetensors", Format::Safetensors, Layout::Pytorch),
    ("torch_plain_lstm.pth", Format::TorchZip, Layout::Pytorch),
    ("keras_lstm.npz", Format::Npz, Layout::Keras),
    ("keras_lstm.safetensors", Format::Safetensors, Layout::Keras),
    ("same_tf", Format::TfCheckpoint, Layout::TfBasicLstm),
    ("same_torch.pt", Format::TorchZip, Layout::Pytorch),
    ("same.safetensors", Format::Safetensors, Layout::Pytorch),
    ("same.npz", Format::Npz, Layout::Keras),
    ("same_torch.onnx", Format::Onnx, Layout::Onnx),
    ("same_torch_legacy.onnx", Format::Onnx, Layout::Onnx),
    ("keras_lstm_tf2onnx.onnx", Format::Onnx, Layout::Onnx),
    ("keras_lstm.keras", Format::Keras, Layout::Keras),
    ("keras_lstm.h5", Format::KerasH5, Layout::Keras),
    ("keras_lstm_export", Format::SavedModel, Layout::Keras),
    ("keras_lstm_savedmodel", Format::SavedModel, Layout::Keras),
    ("torch_bilstm.pt", Format::TorchZip, Layout::Pytorch),
    ("torch_bilstm.safetensors", Format::Safetensors, Layout::Pytorch),
    ("torch_gru.pt", Format::TorchZip, Layout::Pytorch),
    ("torch_gru.safetensors", Format::Safetensors, Layout::Pytorch),
    ("keras_bilstm.npz", Format::Npz, Layout::Keras),
    ("keras_bilstm.safetensors", Format::Safetensors, Layout::Keras),
    ("keras_bilstm.keras", Format::Keras, Layout::Keras),
    ("keras_bilstm.h5", Format::KerasH5, Layout::Keras),
    ("keras_gru_reset_after.npz", Format::Npz, Layout::Keras),
    ("keras_gru_reset_after.keras", Format::Keras, Layout::Keras),
    ("keras_gru_reset_after.h5", Format::KerasH5, Layout::Keras),
    ("keras_gru_reset_before.npz", Format::Npz, Layout::Keras),
    ("torch_bilstm_feat.onnx", Format::Onnx, Layout::Onnx),
    ("torch_bilstm_feat_legacy.onnx", Format::Onnx, Layout::Onnx),
    ("torch_gru.onnx", Format::Onnx, Layout::Onnx),
    ("torch_gru_legacy.onnx", Format::Onnx, Layout::Onnx),
    ("tf_bidaf_weights_biases", Format::TfCheckpoint, Layout::TfBidaf),
    ("tf_bidaf_kernel_bias", Format::TfCheckpoint, Layout::TfBidaf),
    ("tf_bidaf_ema", Format::TfCheckpoint, Layout::TfBidaf),
    ("tf_rhn", Format::TfCheckpoint, Layout::Rhn),
];

#[test]
fn every_fixture_loads_to_its_canonical_weights_bit_for_bit() {
    for &(name, format, layout) in ALL {
        let ck = load_fixture(name);
        assert_eq!((ck.format, ck.layout), (format, layout), "{name}");
        assert_canonical(name, &ck.model);
    }
}

#[test]
fn forward_pass_matches_the_framework_output() {
    for &(name, ..) in ALL {
        let ck = load_fixture(name);
        let (inputs, want) = framework_io(name, &ck.model);
        let got = reference_forward(&ck.model, &inputs).unwrap();
        assert_eq!(got.len(), want.len(), "{name}");
        let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(err < 1e-5, "{name}: max abs error {err}");
        // ONNX fixtures also carry ONNX Runtime's output on the file, and
        // the BiDAF ones the last recurrent layer's output.
        let io = npz::read_npz(&fixture(&format!("{name}.io.npz"))).unwrap();
        if let Some(hidden) = io.iter().find(|t| t.name == "hidden") {
            let got = reference_forward(&ck.model.layers_only(), &inputs).unwrap();
            let want = hidden.to_f32().unwrap().0;
            assert_eq!(got.len(), want.len(), "{name} hidden");
            let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(err < 1e-5, "{name}: max abs error {err} in the last layer's output");
        }
        if let Some(ort) = io.iter().find(|t| t.name == "output_ort") {
            let ort = ort.to_f32().unwrap().0;
            let err_ort = got.iter().zip(&ort).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(err_ort < 1e-5, "{name}: max abs error {err_ort} against onnxruntime");
            eprintln!("{name}: max abs error {err:.2e} against the framework, {err_ort:.2e} against onnxruntime");
        } else {
            eprintln!("{name}: max abs error {err:.2e} against the framework");
        }
    }
}

#[test]
fn planted_iss_components_are_found() {
    for &(name, ..) in ALL {
        let ck = load_fixture(name);
        let report = analyze(&ck.model, DEFAULT_THRESHOLD);
        let side = sidecar(name);
        assert_eq!(report.layers().len(), side["iss"].as_array().unwrap().len(), "{name}");
        for (k, layer) in report.layers().iter().enumerate() {
            let entry = &side["iss"][k];
            assert_eq!(layer.layer as u64, entry["layer"].as_u64().unwrap(), "{name} entry {k}");
            let direction = entry["direction"].as_str().unwrap_or("fw");
            assert_eq!(layer.direction.name(), direction, "{name} entry {k}");
            let want: Vec<usize> = side["iss"][k]["removable"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            let fully: Vec<usize> = side["iss"][k]["fully_zero"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            // A last layer without a head is removable only with
            // `shrink_output`; the analysis still lists its zero units.
            assert_eq!(layer.removable, want, "{name} layer {k}");
            assert_eq!(layer.fully_zero, fully, "{name} layer {k}");
            let kept = side["iss"][k]["compact_hidden"].as_u64().unwrap() as usize;
            assert_eq!(layer.kept_units(true).len(), kept, "{name} layer {k}");
        }
    }
}

#[test]
fn inspect_reports_the_sidecars_iss_for_every_direction_of_every_layer() {
    for &(name, ..) in ALL {
        // --shrink-output: the sidecars count a head-less last layer's
        // removable units as removed.
        let path = fixture(name);
        let out = issbench(&["inspect", path.to_str().unwrap(), "--format", "json", "--shrink-output"]);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let (got, want) = (
            report["layers"].as_array().unwrap(),
            sidecar(name)["iss"].as_array().unwrap().clone(),
        );
        assert_eq!(got.len(), want.len(), "{name}");
        for (g, w) in got.iter().zip(&want) {
            let at = format!("{name} layer {} {}", w["layer"], w["direction"]);
            assert_eq!(g["layer"], w["layer"], "{at}");
            assert_eq!(g["direction"], w.get("direction").cloned().unwrap_or_default(), "{at}");
            assert_eq!(g["hidden"], w["hidden"], "{at}");
            assert_eq!(g["removed"], w["removable"], "{at}");
            assert_eq!(g["kept"], w["compact_hidden"], "{at}");
        }
    }
}

#[test]
fn the_same_model_in_four_formats_loads_identically() {
    let models: Vec<Model> = [
        "same_tf",
        "same_torch.pt",
        "same.safetensors",
        "same.npz",
        "same_torch.onnx",
        "same_torch_legacy.onnx",
    ]
    .iter()
    .map(|n| load_fixture(n).model)
    .collect();
    for m in &models[1..] {
        assert_eq!(m.layers(), models[0].layers());
        assert_eq!(m.embedding(), models[0].embedding());
        assert_eq!(m.head(), models[0].head());
    }
}

#[test]
fn the_same_keras_model_in_seven_files_loads_identically() {
    let files = [
        "keras_lstm.npz",
        "keras_lstm.safetensors",
        "keras_lstm.keras",
        "keras_lstm.h5",
        "keras_lstm_export",
        "keras_lstm_savedmodel",
        "keras_lstm_tf2onnx.onnx",
    ];
    let models: Vec<Model> = files.iter().map(|n| load_fixture(n).model).collect();
    for (m, name) in models.iter().zip(files).skip(1) {
        assert_eq!(m.layers(), models[0].layers(), "{name}");
        assert_eq!(m.embedding(), models[0].embedding(), "{name}");
        assert_eq!(m.head(), models[0].head(), "{name}");
    }
}

#[test]
fn ignored_tensors_are_reported_and_tf_scalars_are_read() {
    let ck = load_fixture("tf_weights_biases");
    let ignored: Vec<&str> = ck.tensors.iter().filter(|t| t.role == "ignored").map(|t| t.name.as_str()).collect();
    assert_eq!(ignored, vec!["Model/Variable", "global_step"]);
    let raw = read_tensors(&fixture("tf_weights_biases"), Format::TfCheckpoint).unwrap();
    assert_eq!(tensor(&raw, "global_step").to_i64().unwrap(), vec![2600]);
    assert_eq!(ck.forget_bias, Some(0.0));
}

#[test]
fn bidaf_checkpoints_are_read_as_bidaf_evaluates_them() {
    // Without --forget-bias, BiDAF's cells get TensorFlow's default 1.0.
    let ck = load(&fixture("tf_bidaf_weights_biases"), &LoadOptions::default()).unwrap();
    assert_eq!(ck.forget_bias, Some(1.0));
    assert_canonical("tf_bidaf_weights_biases", &ck.model);
    // A training checkpoint: the EMA shadows are the model; the raw
    // variables (another model), Adam slots and counters are ignored.
    let ck = load_fixture("tf_bidaf_ema");
    let role = |n: &str| ck.tensors.iter().find(|t| t.name == n).unwrap().role.clone();
    assert_eq!(role("main/g0/fw/basic_lstm_cell/weights"), "ignored");
    assert_eq!(role("main/g0/fw/basic_lstm_cell/weights/Adam"), "ignored");
    assert_eq!(role("beta1_power"), "ignored");
    assert!(role("main/g0/fw/basic_lstm_cell/weights/ExponentialMovingAverage").starts_with("layer 0 fw kernel"));
    assert!(role("main/logits1/first/weights/ExponentialMovingAverage").starts_with("head weight"));
    let ignored: Vec<String> = sidecar("tf_bidaf_ema")["ignored_tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let mut unused: Vec<String> = ck.tensors.iter().filter(|t| t.role == "ignored").map(|t| t.name.clone()).collect();
    unused.sort();
    assert_eq!(unused, ignored);
    assert!(
        ck.notes.iter().any(|n| n.contains("ExponentialMovingAverage shadows")),
        "{:?}",
        ck.notes
    );
}

#[test]
fn a_checkpoint_is_found_from_its_folder_index_or_prefix() {
    let dir = fixture("tf_kernel_bias");
    let a = load_fixture("tf_kernel_bias").model;
    let options = LoadOptions {
        forget_bias: Some(1.0),
        ..LoadOptions::default()
    };
    for path in [dir.join("model.ckpt-3900.index"), dir.join("model.ckpt-3900")] {
        let b = load(&path, &options).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(a.layers(), b.model.layers(), "{}", path.display());
    }
}

fn issbench(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_issbench"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn inspect_gives_the_same_report_for_the_same_model_in_four_formats() {
    let reports: Vec<serde_json::Value> = [
        "same_tf",
        "same_torch.pt",
        "same.safetensors",
        "same.npz",
        "same_torch.onnx",
        "same_torch_legacy.onnx",
    ]
    .iter()
    .map(|n| {
        let out = issbench(&["inspect", fixture(n).to_str().unwrap(), "--format", "json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let obj = v.as_object_mut().unwrap();
        for key in ["format", "layout", "tensors", "notes", "forget_bias"] {
            assert!(obj.remove(key).is_some(), "{key} missing from the JSON");
        }
        v
    })
    .collect();
    assert_eq!(reports[0]["layers"][0]["removed"], serde_json::json!([2, 5, 9]));
    assert_eq!(reports[0]["layers"][1]["kept"], 10);
    for r in &reports[1..] {
        assert_eq!(r, &reports[0]);
    }
}

#[test]
fn compact_writes_a_checkpoint_that_loads_back_as_the_compacted_model() {
    let dir = tempfile::tempdir().unwrap();
    // The file, and a tensor name the written file must have: one module
    // for the whole stack when every direction keeps the same width, one
    // per layer and direction otherwise.
    for (name, written) in [
        ("same_torch.pt", "weight_ih_l1"),
        ("torch_lstm.pt", "lstm1.weight_ih_l0"),
        ("torch_bilstm.pt", "lstm1_reverse.weight_ih_l0"),
        ("torch_gru.pt", "weight_ih_l1"),
        ("tf_bidaf_kernel_bias", "lstm1_reverse.weight_ih_l0"),
        ("tf_rhn", "model/RHN0/t_2/Linear/Matrix"),
    ] {
        let out_path = dir.path().join(format!("{name}.safetensors"));
        let (input, output) = (fixture(name), out_path.clone());
        let mut args = vec!["compact", input.to_str().unwrap(), "-o", output.to_str().unwrap()];
        // TensorFlow files: the forget bias their sidecar records.
        let forget_bias = sidecar(name)["forget_bias"].as_f64().map(|f| f.to_string());
        if let Some(fb) = forget_bias.as_deref().filter(|_| name.starts_with("tf_")) {
            args.extend(["--forget-bias", fb]);
        }
        let out = issbench(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(stdout.contains("max abs error 0.000e0"), "{stdout}");
        let full = load_fixture(name).model;
        let back = load(&out_path, &LoadOptions::default()).unwrap();
        assert_compacted(name, &full, &back.model);
        let names: Vec<&str> = back.tensors.iter().map(|t| t.name.as_str()).collect();
        assert!(names.contains(&written), "{name}: {names:?}");
        // A tied head is written once, as the embedding.
        assert_eq!(names.contains(&"head.weight"), !full.is_tied(), "{name}: {names:?}");
    }
}

/// `back` (read from a compacted file) is `full` compacted, with the
/// sidecar's kept sizes, and computes the same outputs.
fn assert_compacted(name: &str, full: &Model, back: &Model) {
    let compacted = issbench::iss::compact(full, &analyze(full, DEFAULT_THRESHOLD)).unwrap().model;
    // (assert! rather than assert_eq!: the models' Debug runs to pages.)
    assert!(back.layers() == compacted.layers(), "{name}: the layers differ");
    assert!(back.head() == compacted.head(), "{name}: the heads differ");
    assert!(back.embedding() == compacted.embedding(), "{name}: the embeddings differ");
    assert_eq!(back.is_tied(), full.is_tied(), "{name}");
    let kept: Vec<usize> = sidecar(name)["iss"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["compact_hidden"].as_u64().unwrap() as usize)
        .collect();
    assert_eq!(back.hidden_sizes(), kept, "{name}");
    let inputs = Inputs::random(full, 6, 2, 7);
    let (a, b) = (reference_forward(full, &inputs).unwrap(), reference_forward(back, &inputs).unwrap());
    let err = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(err < 1e-6, "{name}: compacted output differs by {err}");
}
