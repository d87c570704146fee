//! Keras model files: a `.keras` file (Keras 3: a zip of `config.json`
//! and `model.weights.h5`) and a legacy `.h5` file (`model.save(...h5)`:
//! the config in the root's `model_config` attribute, the weights under
//! `/model_weights`). The config ([`config`]) says which layers there
//! are, in what order, and whether the model is a plain stack; the HDF5
//! ([`hdf5`], read with `hdf5-reader`) holds the weights. The tensors are
//! named by their Keras variable paths (`lstm/lstm_cell/kernel`,
//! `bidirectional/forward_gru/gru_cell/kernel`, `embedding/embeddings`,
//! `dense/kernel`) for the `keras` layout, like Keras weights saved as
//! `.npz` or safetensors; the config's cells (a GRU's `reset_after`) go
//! to the layout as the file's [`Structure`].
//!
//! Where the weights are:
//! - `.keras`: `layers/<snake_case(class)>[_N]/...` with N counting the
//!   layers of one class in the config's order (not the layer names):
//!   an LSTM's or GRU's `cell/vars/0, 1, 2` (kernel, recurrent kernel,
//!   bias), a Bidirectional's `forward_layer/cell/vars/...` and
//!   `backward_layer/cell/vars/...`, an Embedding's `vars/0`, a Dense's
//!   `vars/0, 1`;
//! - `.h5`: `/model_weights/<layer name>/<weight name>` for each name in
//!   the layer group's `weight_names` attribute.

mod config;
mod hdf5;

use std::collections::HashMap;
use std::path::Path;

use self::config::{Config, Kind, Layer};
use self::hdf5::H5;
use super::{CheckpointError, ErrorKind, Layout, Read, Structure};

/// The largest `config.json` or `model_config` read (Keras writes a few KB
/// per layer).
const CONFIG_MAX: usize = 16 << 20;

/// One group of a layer's weights: where a `.keras` file keeps it (under
/// the layer's group), the variable-path prefix its tensors are named by,
/// and the variable names in Keras' order.
struct Group {
    keras_dir: &'static str,
    path: String,
    vars: Vec<&'static str>,
}

/// A layer's weight groups (none for a weightless layer; a
/// Bidirectional's forward one, then its backward one).
fn groups(layer: &Layer) -> Vec<Group> {
    let name = &layer.name;
    let group = |keras_dir, path: String, vars: &[&'static str]| Group {
        keras_dir,
        path,
        vars: vars.to_vec(),
    };
    match &layer.kind {
        Kind::Weightless => vec![],
        Kind::Embedding => vec![group("vars", format!("{name}/"), &["embeddings"])],
        Kind::Dense { use_bias } => vec![group(
            "vars",
            format!("{name}/"),
            &["kernel", "bias"][..if *use_bias { 2 } else { 1 }],
        )],
        Kind::Recurrent(rnn) => {
            let vars = &["kernel", "recurrent_kernel", "bias"][..if rnn.use_bias { 3 } else { 2 }];
            let cell = rnn.cell_scope();
            match &rnn.inner {
                None => vec![group("cell/vars", format!("{name}/{cell}/"), vars)],
                Some((fw, bw)) => vec![
                    group("forward_layer/cell/vars", format!("{name}/{fw}/{cell}/"), vars),
                    group("backward_layer/cell/vars", format!("{name}/{bw}/{cell}/"), vars),
                ],
            }
        }
    }
}

fn config_text(bytes: Vec<u8>, what: &str) -> Result<String, ErrorKind> {
    if bytes.len() > CONFIG_MAX {
        return Err(ErrorKind::TooLarge {
            what: what.into(),
            claimed: bytes.len() as u128,
            available: CONFIG_MAX as u64,
        });
    }
    String::from_utf8(bytes).map_err(|_| ErrorKind::Corrupt(format!("{what} is not UTF-8")))
}

/// The `Read` of a model: its tensors in layer order, named by their
/// variable paths.
fn finish(config: Config, tensors: Vec<super::RawTensor>, what: &str) -> Read {
    let mut notes = vec![format!(
        "{what}: layers {}",
        config
            .layers
            .iter()
            .map(|l| format!("{} ({})", l.name, l.class))
            .collect::<Vec<_>>()
            .join(", ")
    )];
    notes.extend(config.notes);
    let cells = config
        .layers
        .iter()
        .filter_map(|l| match &l.kind {
            Kind::Recurrent(rnn) => rnn.cell().map(|c| (l.name.clone(), c)),
            _ => None,
        })
        .collect();
    Read {
        tensors,
        layout: Some(Layout::Keras),
        structure: Structure {
            layer_order: Some(config.layers.into_iter().map(|l| l.name).collect()),
            cells,
        },
        notes,
    }
}

/// Reads a Keras 3 `.keras` file.
pub fn read_keras(path: &Path) -> Result<Read, CheckpointError> {
    let fail = |e| CheckpointError::new(path, e);
    let mut zip = super::npz::open_zip(path)?;
    let mut member = |name: &str| -> Result<Vec<u8>, CheckpointError> {
        let index = zip
            .index_for_name(name)
            .ok_or_else(|| fail(ErrorKind::Missing(format!("'{name}' in the .keras archive"))))?;
        super::npz::read_member(&mut zip, index).map(|(_, data)| data).map_err(fail)
    };
    let config = config::parse(&config_text(member("config.json")?, "config.json").map_err(fail)?).map_err(fail)?;
    let h5 = H5::from_bytes(member("model.weights.h5")?).map_err(fail)?;
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut tensors = Vec::new();
    for layer in &config.layers {
        let snake = config::snake_case(&layer.class);
        let n = counts.entry(snake.clone()).and_modify(|n| *n += 1).or_insert(0);
        let group = if *n == 0 {
            format!("layers/{snake}")
        } else {
            format!("layers/{snake}_{n}")
        };
        for g in groups(layer) {
            let dir = format!("{group}/{}", g.keras_dir);
            let mut found = if h5.has_group(&dir) {
                h5.datasets(&dir).map_err(fail)?
            } else {
                Vec::new()
            };
            found.sort_by_key(|d| d.parse::<usize>().unwrap_or(usize::MAX));
            let want: Vec<String> = (0..g.vars.len()).map(|i| i.to_string()).collect();
            if found != want {
                return Err(fail(ErrorKind::Missing(format!(
                    "model.weights.h5: '{dir}' holds {found:?}; layer '{}' ({}) has {} weights there",
                    layer.name,
                    layer.class,
                    g.vars.len()
                ))));
            }
            for (i, var) in g.vars.iter().enumerate() {
                let dataset = format!("{dir}/{i}");
                let name = format!("{}{var}", g.path);
                tensors.push(h5.tensor(&dataset, &name).map_err(|e| CheckpointError::tensor(path, &dataset, e))?);
            }
        }
    }
    Ok(finish(config, tensors, "Keras model (config.json, model.weights.h5)"))
}

/// Reads a legacy Keras `.h5` model file.
pub fn read_h5(path: &Path) -> Result<Read, CheckpointError> {
    let fail = |e| CheckpointError::new(path, e);
    let h5 = H5::from_bytes(super::read_regular(path)?).map_err(fail)?;
    let text = match h5.strings("/", "model_config").map_err(fail)? {
        Some(v) if v.len() == 1 => v.into_iter().next().expect("one"),
        Some(_) => return Err(fail(ErrorKind::Corrupt("model_config is not one string".into()))),
        None if h5.has_group("layers") || h5.strings("/", "layer_names").map_err(fail)?.is_some() => {
            return Err(fail(ErrorKind::Unsupported(
                "a Keras weights-only file (save_weights) without the model's config; save the whole model (model.save('model.keras'))"
                    .into(),
            )));
        }
        None => {
            return Err(fail(ErrorKind::Unsupported(
                "an HDF5 file without a Keras model_config attribute".into(),
            )));
        }
    };
    let config = config::parse(&config_text(text.into_bytes(), "model_config").map_err(fail)?).map_err(fail)?;
    let mut tensors = Vec::new();
    for layer in &config.layers {
        // Each weight's variable path, its last component and, inside a
        // Bidirectional, the direction its path must name.
        let want: Vec<(String, &str, Option<&str>)> = groups(layer)
            .iter()
            .flat_map(|g| {
                let direction = g.keras_dir.split_once("_layer/").map(|(d, _)| d);
                g.vars.iter().map(move |v| (format!("{}{v}", g.path), *v, direction))
            })
            .collect();
        if want.is_empty() {
            continue;
        }
        let group = format!("/model_weights/{}", layer.name);
        let names = h5
            .strings(&group, "weight_names")
            .map_err(fail)?
            .ok_or_else(|| fail(ErrorKind::Missing(format!("'{group}' with a weight_names attribute"))))?;
        // `lstm/lstm_cell/kernel` (Keras 3), `lstm/lstm_cell/kernel:0` (tf.keras);
        // `bidirectional/forward_lstm/lstm_cell/kernel` in a Bidirectional.
        let fits = |stored: &str, var: &str, direction: Option<&str>| {
            let path = stored.split(':').next().unwrap_or("");
            path.rsplit('/').next() == Some(var) && direction.is_none_or(|d| path.split('/').any(|c| c.starts_with(&format!("{d}_"))))
        };
        if names.len() != want.len() || !names.iter().zip(&want).all(|(n, (_, var, d))| fits(n, var, *d)) {
            let expected: Vec<&str> = want.iter().map(|(p, ..)| p.as_str()).collect();
            return Err(fail(ErrorKind::Missing(format!(
                "'{group}' lists weights {names:?}; layer '{}' ({}) has {expected:?}",
                layer.name, layer.class
            ))));
        }
        for (stored, (name, ..)) in names.iter().zip(&want) {
            let dataset = format!("{group}/{stored}");
            tensors.push(h5.tensor(&dataset, name).map_err(|e| CheckpointError::tensor(path, &dataset, e))?);
        }
    }
    Ok(finish(config, tensors, "Keras model (legacy HDF5: model_config, model_weights)"))
}
