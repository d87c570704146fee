//! Bidirectional, GRU and RHN checkpoints that are wrong in the ways a
//! real file can be (a half missing, gate counts that disagree, a
//! micro-layer missing): each is refused with one line that names the
//! file, the tensor and the problem, never a panic or a guess. The files
//! are the committed fixtures with one thing changed, written as
//! safetensors (the layouts read names, whatever the container).

use std::path::{Path, PathBuf};

use issbench::checkpoint::{Format, LoadOptions, load, read_tensors};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A tensor as `(name, shape, values)`.
type Tensor = (String, Vec<usize>, Vec<f32>);

/// The float tensors of fixture `name` (integers such as step counters left out).
fn tensors_of(name: &str, format: Format) -> Vec<Tensor> {
    read_tensors(&fixture(name), format)
        .unwrap()
        .into_iter()
        .filter_map(|t| t.to_f32().ok().map(|(v, _)| (t.name.clone(), t.shape.clone(), v)))
        .collect()
}

/// Writes `tensors` as safetensors to `dir/name`.
fn write(dir: &Path, name: &str, tensors: &[Tensor]) -> PathBuf {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, v)| (n.clone(), s.clone(), v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
    path
}

/// The one-line error loading `path` gives, checked to name the file.
fn refusal(path: &Path) -> String {
    let e = match load(path, &LoadOptions::default()) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e.to_string(),
    };
    assert!(e.starts_with(&path.display().to_string()), "{e}");
    assert!(!e.contains('\n'), "{e}");
    e
}

fn without(mut tensors: Vec<Tensor>, drop: impl Fn(&str) -> bool) -> Vec<Tensor> {
    tensors.retain(|(n, ..)| !drop(n));
    tensors
}

#[test]
fn a_gru_whose_gate_counts_disagree_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let gru = tensors_of("torch_gru.safetensors", Format::Safetensors);
    // weight_ih with an LSTM's 4h rows beside a GRU's [3h, h] weight_hh.
    let mut wide = gru.clone();
    let w = wide.iter_mut().find(|t| t.0 == "rnn.weight_ih_l1").unwrap();
    *w = (w.0.clone(), vec![40, 10], vec![0.5; 400]);
    let e = refusal(&write(dir.path(), "wide.safetensors", &wide));
    assert!(
        e.contains("tensor 'rnn.weight_ih_l1'") && e.contains("a GRU of 10 units") && e.contains("the gate counts disagree"),
        "{e}"
    );
    // A weight_hh that is neither [4h, h] nor [3h, h].
    let mut odd = gru.clone();
    let w = odd.iter_mut().find(|t| t.0 == "rnn.weight_hh_l0").unwrap();
    *w = (w.0.clone(), vec![20, 10], vec![0.5; 200]);
    let e = refusal(&write(dir.path(), "odd.safetensors", &odd));
    assert!(
        e.contains("tensor 'rnn.weight_hh_l0'") && e.contains("[4h, h] (an LSTM) or [3h, h] (a GRU), the file has [20, 10]"),
        "{e}"
    );
    // A GRU bias of an LSTM's length.
    let mut bias = gru;
    let b = bias.iter_mut().find(|t| t.0 == "rnn.bias_hh_l0").unwrap();
    *b = (b.0.clone(), vec![40], vec![0.5; 40]);
    let e = refusal(&write(dir.path(), "bias.safetensors", &bias));
    assert!(
        e.contains("tensor 'rnn.bias_hh_l0'") && e.contains("is [30], the file has [40]"),
        "{e}"
    );
}

#[test]
fn a_bidirectional_file_missing_its_reverse_half_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bilstm = tensors_of("torch_bilstm.safetensors", Format::Safetensors);
    // Layer 1's backward direction gone, layer 0's still there.
    let one = without(bilstm.clone(), |n| n.ends_with("_l1_reverse"));
    let e = refusal(&write(dir.path(), "one.safetensors", &one));
    assert!(
        e.contains("tensor 'rnn.weight_ih_l1_reverse'")
            && e.contains("the module is bidirectional")
            && e.contains("layer 1 has no backward"),
        "{e}"
    );
    // Every backward direction gone: layer 1 still reads [fw; bw].
    let none = without(bilstm.clone(), |n| n.ends_with("_reverse"));
    let e = refusal(&write(dir.path(), "none.safetensors", &none));
    assert!(
        e.contains("layer 1 reads 16 values, twice layer 0's 8") && e.contains("_reverse weights are missing"),
        "{e}"
    );
    // One tensor of a backward direction gone.
    let part = without(bilstm, |n| n == "rnn.weight_hh_l0_reverse");
    let e = refusal(&write(dir.path(), "part.safetensors", &part));
    assert!(
        e.contains("tensor 'rnn.weight_hh_l0_reverse'") && e.contains("missing tensor"),
        "{e}"
    );
}

#[test]
fn a_keras_gru_without_bias_or_config_is_refused_rather_than_guessed() {
    let dir = tempfile::tempdir().unwrap();
    // Without a bias, nothing in the weights says whether the reset comes
    // after the recurrent product; only a model file's config does.
    let gru = without(tensors_of("keras_gru_reset_after.npz", Format::Npz), |n| {
        n.ends_with("gru_cell/bias")
    });
    let e = refusal(&write(dir.path(), "nobias.safetensors", &gru));
    assert!(
        e.contains("tensor 'gru/gru_cell/recurrent_kernel'") && e.contains("reset_after") && e.contains("cannot be told"),
        "{e}"
    );
    // A GRU's weights under an LSTM's scope name.
    let renamed: Vec<Tensor> = tensors_of("keras_gru_reset_before.npz", Format::Npz)
        .into_iter()
        .map(|(n, s, v)| (n.replace("gru_1/gru_cell", "gru_1/lstm_cell"), s, v))
        .collect();
    let e = refusal(&write(dir.path(), "renamed.safetensors", &renamed));
    assert!(e.contains("[6, 18] is a GRU's, but its scope is an LSTM"), "{e}");
}

#[test]
fn a_keras_bidirectional_layer_missing_a_direction_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bilstm = without(tensors_of("keras_bilstm.npz", Format::Npz), |n| {
        n.starts_with("bidirectional_1/backward_lstm_1/")
    });
    let e = refusal(&write(dir.path(), "half.safetensors", &bilstm));
    assert!(
        e.contains("tensor 'bidirectional_1/forward_lstm_1/lstm_cell/recurrent_kernel'")
            && e.contains("a Bidirectional with a forward cell but no backward_* cell"),
        "{e}"
    );
}

#[test]
fn a_bidaf_layer_missing_a_direction_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bidaf = without(tensors_of("tf_bidaf_kernel_bias", Format::TfCheckpoint), |n| {
        n.starts_with("main/g1/bw/")
    });
    let e = refusal(&write(dir.path(), "half.safetensors", &bidaf));
    assert!(
        e.contains("tensor 'main/g1/fw/basic_lstm_cell/kernel'") && e.contains("the bidirectional RNN 'main/g1' has no backward cell"),
        "{e}"
    );
    // EMA shadows for some weights only: a partial average is not guessed at.
    let partial = without(tensors_of("tf_bidaf_ema", Format::TfCheckpoint), |n| {
        n == "main/g1/bw/basic_lstm_cell/biases/ExponentialMovingAverage"
    });
    let e = refusal(&write(dir.path(), "partial.safetensors", &partial));
    assert!(
        e.contains("tensor 'main/g1/bw/basic_lstm_cell/biases/ExponentialMovingAverage'") && e.contains("the cell's bias"),
        "{e}"
    );
}

#[test]
fn an_rhn_missing_a_micro_layer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let rhn = tensors_of("tf_rhn", Format::TfCheckpoint);
    // A middle micro-layer's T matrix gone.
    let middle = without(rhn.clone(), |n| n == "model/RHN0/t_1/Linear/Matrix");
    let e = refusal(&write(dir.path(), "middle.safetensors", &middle));
    assert!(
        e.contains("tensor 'model/RHN0/t_1/Linear/Matrix'")
            && e.contains("micro-layer 1 of RHN0, whose deepest micro-layer is 2")
            && e.contains("t: [0, 2]"),
        "{e}"
    );
    // The deepest micro-layer's T gate gone entirely: H says depth 3.
    let deepest = without(rhn.clone(), |n| n.starts_with("model/RHN0/t_2/"));
    let e = refusal(&write(dir.path(), "deepest.safetensors", &deepest));
    assert!(
        e.contains("tensor 'model/RHN0/t_2/Linear/Matrix'") && e.contains("micro-layer 2 of RHN0"),
        "{e}"
    );
    // A bias gone.
    let bias = without(rhn.clone(), |n| n == "model/RHN0/h_0/Linear/Bias");
    let e = refusal(&write(dir.path(), "bias.safetensors", &bias));
    assert!(
        e.contains("tensor 'model/RHN0/h_0/Linear/Bias'") && e.contains("micro-layer 0 of RHN0"),
        "{e}"
    );
    // Tied, but without the embedding the head would be tied to.
    let untiable = without(rhn, |n| n == "model/embedding");
    let e = refusal(&write(dir.path(), "untiable.safetensors", &untiable));
    assert!(
        e.contains("tensor 'model/softmax_b'") && e.contains("a head bias without a head weight or an embedding to tie it to"),
        "{e}"
    );
}
