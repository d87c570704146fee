//! The files users deploy (tests/fixtures, written by
//! tools/make_deployed_fixtures.py): ONNX models the readers must refuse,
//! with a message that names the file and the reason; GRU and
//! bidirectional nodes read through their glue; and issbench's own ONNX
//! export read back.

use std::path::{Path, PathBuf};

use issbench::checkpoint::{ErrorKind, Format, Layout, LoadOptions, load, onnx};
use issbench::model::synthetic::SynthSpec;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn sidecar(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(&format!("{name}.json"))).unwrap()).unwrap()
}

/// The one-line error loading `name` gives, after checking it names the file.
fn refusal(name: &str) -> (String, ErrorKind) {
    let path = fixture(name);
    match load(&path, &LoadOptions::default()) {
        Ok(_) => panic!("{name} loaded"),
        Err(e) => {
            let line = e.to_string();
            assert!(line.starts_with(&path.display().to_string()), "{line}");
            assert!(!line.contains('\n'), "{line}");
            (line, e.kind)
        }
    }
}

#[test]
fn onnx_models_that_are_not_plain_stacks_are_refused_with_the_reason() {
    let cases = [
        ("onnx_refuse_peepholes.onnx", "peepholes P"),
        ("onnx_refuse_clip.onnx", "clip = 0.5"),
        ("onnx_refuse_activations.onnx", "activations [\"Sigmoid\", \"Tanh\", \"Relu\"]"),
        ("onnx_refuse_input_forget.onnx", "input_forget = 1"),
        ("onnx_refuse_sequence_lens.onnx", "sequence_lens"),
        ("onnx_refuse_reverse.onnx", "direction reverse"),
        ("onnx_refuse_initial_h.onnx", "initial_h 'initial_h_nonzero' is not zero"),
    ];
    for (name, reason) in cases {
        assert_eq!(sidecar(name)["expect"], "refuse", "{name}");
        let (line, kind) = refusal(name);
        assert!(matches!(kind, ErrorKind::Unsupported(_)), "{line}");
        assert!(line.contains("LSTM node '/rnn/LSTM'") && line.contains(reason), "{name}: {line}");
    }
    // Every fixture with `expect: refuse` is in the list above.
    let listed: Vec<&str> = cases.iter().map(|c| c.0).collect();
    for entry in std::fs::read_dir(fixture("")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if let Some(model) = name.strip_suffix(".json")
            && sidecar(model)["expect"] == "refuse"
        {
            assert!(listed.contains(&model), "{model} is not checked");
        }
    }
}

#[test]
fn gru_and_bidirectional_onnx_layers_load_as_the_module_that_was_exported() {
    for (name, cell, dirs, hidden) in [
        ("torch_gru.onnx", "GRU", 1, 10),
        ("torch_gru_legacy.onnx", "GRU", 1, 10),
        ("torch_bilstm_feat.onnx", "LSTM", 2, 6),
        ("torch_bilstm_feat_legacy.onnx", "LSTM", 2, 6),
    ] {
        let layers = onnx::layers(&fixture(name)).unwrap();
        assert_eq!(layers, vec![(cell, dirs, hidden); 2], "{name}");
    }
    // The GRU exports hold the state dict's numbers, gates reordered back.
    let torch = load(&fixture("torch_gru.pt"), &LoadOptions::default()).unwrap().model;
    for name in ["torch_gru.onnx", "torch_gru_legacy.onnx"] {
        let m = load(&fixture(name), &LoadOptions::default()).unwrap().model;
        assert_eq!(m.layers(), torch.layers(), "{name}");
        assert_eq!((m.embedding(), m.head()), (torch.embedding(), torch.head()), "{name}");
    }
}

#[test]
fn issbench_reads_back_its_own_onnx_export() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["tiny-iss", "tiny"] {
        let model = SynthSpec::builtin(name).unwrap().build().unwrap();
        for layers_only in [false, true] {
            let path = dir.path().join(format!("{name}-{layers_only}.onnx"));
            std::fs::write(&path, issbench::onnx::export(&model, layers_only).unwrap()).unwrap();
            let ck = load(&path, &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!((ck.format, ck.layout), (Format::Onnx, Layout::Onnx));
            // The export reorders gates and splits the bias into [bias; 0]:
            // reading it back gives the same numbers, bit for bit.
            assert_eq!(ck.model.layers(), model.layers(), "{name} layers_only={layers_only}");
            if layers_only {
                assert!(ck.model.embedding().is_none() && ck.model.head().is_none());
            } else {
                assert_eq!(ck.model.embedding(), model.embedding());
                assert_eq!(ck.model.head(), model.head());
            }
            let io = onnx::io(&path).unwrap();
            assert_eq!(io.input.tokens, !layers_only && model.embedding().is_some());
            assert!(!io.input.batch_major && !io.output_batch_major);
            assert_eq!(io.input_dims[..2], [None, None], "symbolic seq and batch");
        }
    }
}

#[test]
fn the_onnx_input_and_output_layouts_are_found() {
    let io = onnx::io(&fixture("keras_lstm_tf2onnx.onnx")).unwrap();
    assert_eq!(io.input.name, "input");
    assert!(io.input.tokens && io.input.batch_major && io.output_batch_major);
    assert_eq!((io.input_type.as_str(), io.input_dims.clone()), ("int32", vec![Some(3), Some(5)]));
    let io = onnx::io(&fixture("same_torch.onnx")).unwrap();
    assert!(io.input.tokens && !io.input.batch_major && !io.output_batch_major && io.head && io.embedding);
    assert_eq!((io.input_type.as_str(), io.input_dims.clone()), ("int64", vec![Some(5), Some(3)]));
}

#[test]
fn keras_gru_and_bidirectional_models_load_the_same_from_every_file() {
    // A .keras or .h5 file is read by its config; the same weights under
    // Keras names in an .npz or safetensors file, by the names alone.
    for files in [
        &[
            "keras_bilstm.npz",
            "keras_bilstm.safetensors",
            "keras_bilstm.keras",
            "keras_bilstm.h5",
        ][..],
        &[
            "keras_gru_reset_after.npz",
            "keras_gru_reset_after.keras",
            "keras_gru_reset_after.h5",
        ],
    ] {
        let models: Vec<_> = files
            .iter()
            .map(|n| load(&fixture(n), &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}")).model)
            .collect();
        for (m, name) in models.iter().zip(files).skip(1) {
            assert_eq!(m.layers(), models[0].layers(), "{name}");
            assert_eq!((m.embedding(), m.head()), (models[0].embedding(), models[0].head()), "{name}");
        }
    }
}

#[test]
fn a_saved_model_is_found_from_its_folder_or_its_saved_model_pb() {
    let folder = load(&fixture("keras_lstm_savedmodel"), &LoadOptions::default()).unwrap();
    let pb = load(&fixture("keras_lstm_savedmodel/saved_model.pb"), &LoadOptions::default()).unwrap();
    assert_eq!((folder.format, pb.format), (Format::SavedModel, Format::SavedModel));
    assert_eq!(folder.model, pb.model);
    assert_eq!(pb.model.name(), "keras_lstm_savedmodel");
    // model.export writes every variable twice: each is used once, the
    // copies are listed as ignored, and so are the RNG seed states.
    let export = load(&fixture("keras_lstm_export"), &LoadOptions::default()).unwrap();
    let ignored: Vec<&str> = export
        .tensors
        .iter()
        .filter(|t| t.role == "ignored")
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(ignored.len(), 2 + 1 + 9, "{ignored:?}");
    assert!(ignored.iter().filter(|n| n.starts_with("_all_variables/")).count() == 9);
    assert!(ignored.contains(&"seed_generator/seed_generator_state") && ignored.contains(&"_CHECKPOINTABLE_OBJECT_GRAPH"));
}

#[test]
fn hostile_hdf5_structures_are_refused_without_a_hang_or_a_stack_overflow() {
    // Two HDF5 files kept deflated in a zip, each derived from real ones:
    // - deep_datatype.h5 (h5py, libver="latest"): one root attribute of 5000
    //   nested array types (65 KB); hdf5-pure 0.47 parsed them recursively
    //   and overflowed a 2 MB thread stack;
    // - fanout.h5 (keras_lstm.h5 patched): the root's continuation block
    //   holds two continuations to one block, and so on 31 levels deep;
    //   hdf5-pure 0.47 followed all 2^31 paths (no end after minutes).
    let mut zip = zip::ZipArchive::new(std::fs::File::open(fixture("hostile_hdf5.zip")).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, why) in [
        ("deep_datatype.h5", "datatype nesting exceeds 32 levels"),
        ("fanout.h5", "object header continuation cycle"),
    ] {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut zip.by_name(name).unwrap(), &mut bytes).unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let started = std::time::Instant::now();
        let e = load_error(&path);
        assert!(e.contains(why), "{name}: {e}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{name}: {:?}",
            started.elapsed()
        );
    }
}

/// `same_torch_legacy.onnx` decoded, changed by `edit`, and written to `dir`.
fn edited_onnx(dir: &Path, name: &str, edit: impl FnOnce(&mut onnx::proto::GraphProto)) -> PathBuf {
    use prost::Message;
    let bytes = std::fs::read(fixture("same_torch_legacy.onnx")).unwrap();
    let mut model = onnx::proto::ModelProto::decode(bytes.as_slice()).unwrap();
    edit(model.graph.as_mut().unwrap());
    let path = dir.join(name);
    std::fs::write(&path, model.encode_to_vec()).unwrap();
    path
}

fn load_error(path: &Path) -> String {
    let e = load(path, &LoadOptions::default()).unwrap_err().to_string();
    assert!(e.starts_with(&path.display().to_string()), "{e}");
    e
}

#[test]
fn onnx_graphs_that_leave_the_plain_stack_are_refused_by_name() {
    use onnx::proto::{NodeProto, ValueInfoProto};
    let dir = tempfile::tempdir().unwrap();
    // The re-encoded file still loads: the edits below are what is refused.
    let same = edited_onnx(dir.path(), "same.onnx", |_| {});
    assert_eq!(load(&same, &LoadOptions::default()).unwrap().model.layers().len(), 2);

    let softmax = edited_onnx(dir.path(), "softmax.onnx", |g| {
        g.node.push(NodeProto {
            input: vec!["output".into()],
            output: vec!["probs".into()],
            name: "final".into(),
            op_type: "Softmax".into(),
            ..NodeProto::default()
        });
        g.output = vec![ValueInfoProto {
            name: "probs".into(),
            r#type: None,
        }];
    });
    let e = load_error(&softmax);
    assert!(
        e.contains("Softmax node 'final' on the path: not part of a plain recurrent stack"),
        "{e}"
    );

    // A second reader of the first layer's output: not a single chain.
    let branch = edited_onnx(dir.path(), "branch.onnx", |g| {
        g.node.push(NodeProto {
            input: vec!["/rnn/Squeeze_output_0".into()],
            output: vec!["side".into()],
            name: "side".into(),
            op_type: "Relu".into(),
            ..NodeProto::default()
        });
    });
    let e = load_error(&branch);
    assert!(e.contains("feeds several nodes") && e.contains("Relu node 'side'"), "{e}");

    let external = edited_onnx(dir.path(), "external.onnx", |g| {
        let w = g.initializer.iter_mut().find(|t| t.name == "onnx::LSTM_223").unwrap();
        w.data_location = 1;
        w.raw_data = Default::default();
    });
    let e = load_error(&external);
    assert!(e.contains("tensor 'onnx::LSTM_223'") && e.contains("external data"), "{e}");

    // W's dims claim far more than its bytes hold.
    let claims = edited_onnx(dir.path(), "claims.onnx", |g| {
        let w = g.initializer.iter_mut().find(|t| t.name == "onnx::LSTM_223").unwrap();
        w.dims = vec![1, 52, 1 << 40];
    });
    let e = load_error(&claims);
    assert!(e.contains("tensor 'onnx::LSTM_223'") && e.contains("raw_data holds 2288"), "{e}");

    let bytes = std::fs::read(fixture("same_torch_legacy.onnx")).unwrap();
    let cut = dir.path().join("cut.onnx");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert!(load_error(&cut).contains("not an ONNX model (protobuf"));

    // A node that reads and writes the same value: a cycle, not a hang.
    let cycle = edited_onnx(dir.path(), "cycle.onnx", |g| {
        g.node.push(NodeProto {
            input: vec!["output".into()],
            output: vec!["output".into()],
            name: "loop".into(),
            op_type: "Identity".into(),
            ..NodeProto::default()
        });
    });
    assert!(load_error(&cycle).contains("the graph has a cycle through 'output'"));

    let no_lstm = edited_onnx(dir.path(), "nolstm.onnx", |g| g.node.retain(|n| n.op_type != "LSTM"));
    let e = load_error(&no_lstm);
    assert!(e.contains("no LSTM or GRU node in the graph (its operators: "), "{e}");
}

/// The deployed LSTM fixtures and their format names.
const DEPLOYED: &[(&str, &str)] = &[
    ("same_torch.onnx", "onnx"),
    ("same_torch_legacy.onnx", "onnx"),
    ("keras_lstm_tf2onnx.onnx", "onnx"),
    ("keras_lstm.keras", "keras"),
    ("keras_lstm.h5", "keras-h5"),
    ("keras_lstm_export", "saved-model"),
    ("keras_lstm_savedmodel", "saved-model"),
    ("torch_bilstm_feat.onnx", "onnx"),
    ("torch_bilstm_feat_legacy.onnx", "onnx"),
    ("torch_gru.onnx", "onnx"),
    ("torch_gru_legacy.onnx", "onnx"),
    ("keras_bilstm.keras", "keras"),
    ("keras_bilstm.h5", "keras-h5"),
    ("keras_gru_reset_after.keras", "keras"),
    ("keras_gru_reset_after.h5", "keras-h5"),
];

fn issbench(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_issbench"))
        .args(args)
        .output()
        .unwrap()
}

/// The kept size of every direction of every layer, as the sidecar has them.
fn kept_in_sidecar(name: &str) -> Vec<u64> {
    sidecar(name)["iss"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["compact_hidden"].as_u64().unwrap())
        .collect()
}

#[test]
fn inspect_reports_the_format_and_the_planted_kept_sizes() {
    for &(name, format) in DEPLOYED {
        let out = issbench(&["inspect", fixture(name).to_str().unwrap(), "--format", "json"]);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["format"], format, "{name}");
        let kept: Vec<u64> = report["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["kept"].as_u64().unwrap())
            .collect();
        assert_eq!(kept, kept_in_sidecar(name), "{name}");
        assert_eq!(report["layout"], if format == "onnx" { "onnx" } else { "keras" }, "{name}");
    }
}

#[test]
fn run_iss_verifies_and_times_and_compact_writes_the_compacted_model() {
    let dir = tempfile::tempdir().unwrap();
    for &(name, _) in DEPLOYED {
        let path = fixture(name);
        let out = issbench(&[
            "run",
            path.to_str().unwrap(),
            "--mode",
            "iss",
            "--batch",
            "2",
            "--seq",
            "3",
            "--threads",
            "1",
            "--time",
            "0",
            "--format",
            "json",
        ]);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let row: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(row["status"], "ok", "{name}");
        assert!(row["median_ns"].as_f64().unwrap() > 0.0, "{name}");
        assert!(row["verify_max_rel"].as_f64().unwrap() <= 1e-4, "{name}");
        // Rows list every direction's size: layers `/`-separated, the
        // directions of a bidirectional layer `+`-joined.
        let kept: Vec<String> = kept_in_sidecar(name).iter().map(u64::to_string).collect();
        let got = row["hidden_kept"].as_str().unwrap();
        assert_eq!(got.replace('+', "/"), kept.join("/"), "{name}");
        assert_eq!(got.contains('+'), name.contains("bi"), "{name}: {got}");

        let compacted = dir.path().join(format!("{name}.safetensors"));
        let out = issbench(&["compact", path.to_str().unwrap(), "-o", compacted.to_str().unwrap()]);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let back = load(&compacted, &LoadOptions::default()).unwrap();
        let hidden: Vec<u64> = back.model.hidden_sizes().iter().map(|&h| h as u64).collect();
        assert_eq!(hidden, kept_in_sidecar(name), "{name}");
    }
}

#[test]
fn a_sweep_measures_every_deployed_format() {
    use issbench::report::read_rows;
    use issbench::sweep::{SweepOptions, SweepSpec, run_sweep};
    let dir = tempfile::tempdir().unwrap();
    let models: Vec<String> = DEPLOYED
        .iter()
        .map(|(n, _)| format!("{:?}", fixture(n).display().to_string()))
        .collect();
    let spec = SweepSpec::from_toml(
        "d.toml",
        &format!(
            "name = \"d\"\nbudget_ms = 1\nmin_runs = 1\nmax_runs = 2\n[[grid]]\nmodels = [{}]\nmodes = [\"dense\", \"iss\", \"csr\"]\nbatch = [2]\nseq = [3]\nthreads = [1]\nhead = [false, true]\n",
            models.join(", ")
        ),
    )
    .unwrap();
    let csv = dir.path().join("d.csv");
    let options = SweepOptions {
        csv: Some(csv.clone()),
        resume: false,
        stop: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
        on_row: Box::new(|_, _, _| {}),
        peer: None,
        label: String::new(),
        shard: None,
    };
    let summary = run_sweep(&spec, options).unwrap();
    assert_eq!((summary.measured, summary.failed), (DEPLOYED.len() * 3 * 2, 0));
    let rows = read_rows(&[csv]).unwrap();
    assert!(rows.iter().all(|r| r.ok() && r.median_ns > 0.0), "{rows:?}");
}

#[test]
fn compact_refuses_to_write_over_a_saved_models_variables() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("sm");
    std::fs::create_dir_all(copy.join("variables")).unwrap();
    for f in [
        "saved_model.pb",
        "variables/variables.index",
        "variables/variables.data-00000-of-00001",
    ] {
        std::fs::copy(fixture("keras_lstm_savedmodel").join(f), copy.join(f)).unwrap();
    }
    let data = copy.join("variables/variables.data-00000-of-00001");
    for input in [copy.clone(), copy.join("saved_model.pb")] {
        assert!(issbench::checkpoint::overwrites_input(&input, &data), "{}", input.display());
        let out = issbench(&["compact", input.to_str().unwrap(), "-o", data.to_str().unwrap()]);
        assert!(!out.status.success());
    }
    assert!(load(&copy, &LoadOptions::default()).is_ok(), "the SavedModel is intact");
}

#[test]
fn a_layout_other_than_the_one_a_deployed_file_implies_is_refused() {
    let options = LoadOptions {
        layout: Some(Layout::Keras),
        ..LoadOptions::default()
    };
    let e = load(&fixture("same_torch.onnx"), &options).unwrap_err().to_string();
    assert!(
        e.ends_with("naming: the tensors of a onnx file follow the onnx layout, not keras"),
        "{e}"
    );
    let options = LoadOptions {
        layout: Some(Layout::Onnx),
        ..LoadOptions::default()
    };
    let e = load(&fixture("keras_lstm.keras"), &options).unwrap_err().to_string();
    assert!(e.contains("follow the keras layout, not onnx"), "{e}");
}
