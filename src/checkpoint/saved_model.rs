//! TensorFlow SavedModels of Keras models (`model.export(dir)`,
//! `tf.saved_model.save(model, dir)`): the weights are the tensor bundle
//! `variables/variables`, read by [`super::tf`]. Its keys are object paths
//! (`_operations/2/cell/kernel/.ATTRIBUTES/VARIABLE_VALUE`) or bare
//! numbers (`variables/1/...`); the bundle's object graph (the string
//! tensor `_CHECKPOINTABLE_OBJECT_GRAPH`, a `TrackableObjectGraph`) gives
//! each key the variable's Keras path (`lstm/lstm_cell/kernel`), which the
//! `keras` layout reads. `saved_model.pb` (the functions) is not needed.
//!
//! `model.export` lists every variable twice (`variables/N` and
//! `_all_variables/N`): each path is kept once (the copies must be equal).
//! The layers' order is the order of the keys: `variables/N` is
//! `model.variables`' order, `_operations/K` the model's layer order.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use prost::Message;

use super::{CheckpointError, ErrorKind, Layout, Read, tf};

/// The bundle entry holding the object graph.
const OBJECT_GRAPH: &str = "_CHECKPOINTABLE_OBJECT_GRAPH";

/// `tensorflow.TrackableObjectGraph` (trackable_object_graph.proto), only
/// the fields naming variables.
#[derive(Clone, PartialEq, Message)]
pub struct TrackableObjectGraph {
    #[prost(message, repeated, tag = "1")]
    pub nodes: Vec<TrackableObject>,
}

/// `TrackableObjectGraph.TrackableObject`.
#[derive(Clone, PartialEq, Message)]
pub struct TrackableObject {
    #[prost(message, repeated, tag = "2")]
    pub attributes: Vec<SerializedTensor>,
}

/// `TrackableObjectGraph.TrackableObject.SerializedTensor`.
#[derive(Clone, PartialEq, Message)]
pub struct SerializedTensor {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub full_name: String,
    #[prost(string, tag = "3")]
    pub checkpoint_key: String,
}

/// Whether `path` is a SavedModel folder (or its `saved_model.pb`).
pub fn is_saved_model(path: &Path) -> bool {
    folder(path).join("saved_model.pb").is_file()
}

/// The SavedModel folder of `path` (the folder itself, or the folder of its `saved_model.pb`).
fn folder(path: &Path) -> PathBuf {
    if path.file_name().is_some_and(|n| n == "saved_model.pb") {
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    } else {
        path.to_path_buf()
    }
}

/// Sort key of a checkpoint key: its source first (`variables/N` in
/// variable order, `_operations/K` in layer order, tf.keras' `layer-N`
/// paths, anything else last), then its components with numbers compared
/// as numbers.
fn order(a: &str, b: &str) -> Ordering {
    let rank = |k: &str| {
        ["variables/", "_operations/", "layer_with_weights-", "layer-"]
            .iter()
            .position(|p| k.starts_with(p))
            .unwrap_or(4)
    };
    let parts = |k: &str| -> Vec<(String, u64)> {
        k.split('/')
            .map(|c| {
                let digits = c.len() - c.trim_end_matches(|ch: char| ch.is_ascii_digit()).len();
                let (text, num) = c.split_at(c.len() - digits);
                (text.to_string(), num.parse().unwrap_or(0))
            })
            .collect()
    };
    rank(a).cmp(&rank(b)).then_with(|| parts(a).cmp(&parts(b)))
}

/// Reads the variables of the SavedModel at `path`, named by their Keras paths.
pub fn read(path: &Path) -> Result<Read, CheckpointError> {
    let dir = folder(path);
    let prefix = dir.join("variables").join("variables");
    if !tf::index_path(&prefix).is_file() {
        return Err(CheckpointError::new(
            &dir,
            ErrorKind::Missing("variables/variables.index (a SavedModel without variables)".into()),
        ));
    }
    let tensors = tf::read(&prefix)?;
    let graph_bytes = tf::read_strings(&prefix, OBJECT_GRAPH)?;
    let index = tf::index_path(&prefix);
    let [graph_bytes] = &graph_bytes[..] else {
        return Err(CheckpointError::tensor(
            &index,
            OBJECT_GRAPH,
            ErrorKind::Shape(format!("{} strings, not one", graph_bytes.len())),
        ));
    };
    let graph = TrackableObjectGraph::decode(graph_bytes.as_slice())
        .map_err(|e| CheckpointError::tensor(&index, OBJECT_GRAPH, ErrorKind::Corrupt(format!("object graph: {e}"))))?;
    // Checkpoint key -> variable path, for the variables' values.
    let mut keys: Vec<(&str, String)> = graph
        .nodes
        .iter()
        .flat_map(|n| &n.attributes)
        .filter(|a| a.name == "VARIABLE_VALUE" && !a.full_name.is_empty())
        .map(|a| (a.checkpoint_key.as_str(), a.full_name.trim_end_matches(":0").to_string()))
        .collect();
    keys.sort_by(|a, b| order(a.0, b.0));
    let by_key: HashMap<&str, usize> = tensors.iter().enumerate().map(|(i, t)| (t.name.as_str(), i)).collect();
    let mut chosen: HashMap<String, usize> = HashMap::new();
    let mut named = Vec::new();
    let mut duplicates = 0;
    for (key, full) in &keys {
        let Some(&i) = by_key.get(key) else {
            return Err(CheckpointError::tensor(
                &index,
                key,
                ErrorKind::Missing(format!("the object graph names it '{full}', the bundle lacks it")),
            ));
        };
        match chosen.get(full) {
            Some(&first) if tensors[first].data == tensors[i].data && tensors[first].shape == tensors[i].shape => duplicates += 1,
            Some(&first) => {
                return Err(CheckpointError::tensor(
                    &index,
                    key,
                    ErrorKind::Corrupt(format!("holds '{full}' as '{}' does, with other values", tensors[first].name)),
                ));
            }
            None => {
                chosen.insert(full.clone(), i);
                named.push((i, full.clone()));
            }
        }
    }
    let mut out = Vec::with_capacity(tensors.len());
    let mut taken = vec![false; tensors.len()];
    for (i, full) in &named {
        let mut t = tensors[*i].clone();
        t.name = full.clone();
        out.push(t);
        taken[*i] = true;
    }
    // The rest (copies, the object graph, counters) keep their keys, without their bytes.
    for (t, _) in tensors.into_iter().zip(&taken).filter(|(_, taken)| !**taken) {
        out.push(super::RawTensor {
            data: Vec::new(),
            read: false,
            ..t
        });
    }
    let mut layer_order: Vec<String> = Vec::new();
    for (_, full) in &named {
        let layer = full.split('/').next().unwrap_or(full).to_string();
        if !layer_order.contains(&layer) {
            layer_order.push(layer);
        }
    }
    let notes = vec![format!(
        "SavedModel: {} variables from variables/variables, named by its object graph{}; it holds no layer config, so layer kinds and activations are known from the variable names only",
        named.len(),
        if duplicates > 0 {
            format!(" ({duplicates} duplicate keys of the same variables ignored)")
        } else {
            String::new()
        }
    )];
    Ok(Read {
        tensors: out,
        layout: Some(Layout::Keras),
        structure: super::Structure {
            layer_order: Some(layer_order),
            cells: Default::default(),
        },
        notes,
    })
}
