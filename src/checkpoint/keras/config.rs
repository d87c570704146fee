//! A Keras model config (`config.json` in a `.keras` file, the
//! `model_config` attribute of a legacy `.h5`), read as far as issbench
//! needs: the layers in order, which of them hold weights, and the checks
//! that make it a plain recurrent stack: `[InputLayer] [Embedding]
//! LSTM... [Dense]` (with `Dropout` anywhere, the identity at inference),
//! LSTMs with Keras' default activations and no state carried between
//! batches. Everything else is refused by layer name and class.

use serde_json::Value;

use crate::checkpoint::ErrorKind;

/// What a layer is to issbench.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// No weights: `InputLayer`, `Dropout`.
    Weightless,
    Embedding,
    Lstm {
        use_bias: bool,
    },
    Dense {
        use_bias: bool,
    },
}

/// One layer of the config.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// The layer's name (the first component of its variables' paths).
    pub name: String,
    /// Its class, as written (`LSTM`, `Dense`, ...).
    pub class: String,
    pub kind: Kind,
}

/// The model's layers, and notes on what issbench does differently.
#[derive(Debug)]
pub struct Config {
    pub layers: Vec<Layer>,
    pub notes: Vec<String>,
}

/// Reads and checks a model config.
pub fn parse(text: &str) -> Result<Config, ErrorKind> {
    let root: Value = serde_json::from_str(text).map_err(|e| ErrorKind::Corrupt(format!("model config: {e}")))?;
    let class = root["class_name"].as_str().unwrap_or("");
    if !["Sequential", "Functional", "Model"].contains(&class) {
        return Err(ErrorKind::Unsupported(format!(
            "a Keras model of class '{class}' (issbench reads Sequential and Functional models)"
        )));
    }
    // Keras 3 and 2 put the list under config.layers; Keras 2.2 Sequential made `config` the list.
    let list = root["config"]["layers"]
        .as_array()
        .or_else(|| root["config"].as_array())
        .ok_or_else(|| ErrorKind::Corrupt("model config without a layer list".into()))?;
    let mut layers = Vec::new();
    let mut notes = Vec::new();
    for (k, entry) in list.iter().enumerate() {
        let (layer, note) = layer(entry, k == list.len() - 1)?;
        notes.extend(note);
        if let Some(inputs) = inbound(entry)
            && let Some(prev) = layers.last().map(|l: &Layer| l.name.clone())
            && inputs != [prev.clone()]
        {
            return Err(ErrorKind::Unsupported(format!(
                "layer '{}' reads {inputs:?}, not the layer before it ('{prev}'): not a single chain of layers",
                layer.name
            )));
        }
        layers.push(layer);
    }
    check_order(&layers)?;
    Ok(Config { layers, notes })
}

/// One layer entry, checked, and a note about it.
fn layer(entry: &Value, last: bool) -> Result<(Layer, Option<String>), ErrorKind> {
    let class = entry["class_name"].as_str().unwrap_or("").to_string();
    let config = &entry["config"];
    let name = config["name"]
        .as_str()
        .or_else(|| entry["name"].as_str())
        .ok_or_else(|| ErrorKind::Corrupt(format!("a {class} layer without a name")))?
        .to_string();
    let me = format!("layer '{name}' ({class})");
    let flag = |key: &str| config[key].as_bool().unwrap_or(false);
    let text = |key: &str| config[key].as_str().unwrap_or("").to_string();
    let refuse = |why: &str| ErrorKind::Unsupported(format!("{me}: {why}"));
    let mut note = None;
    let kind = match class.as_str() {
        "InputLayer" | "Dropout" | "SpatialDropout1D" => Kind::Weightless,
        "Embedding" => {
            if flag("mask_zero") {
                return Err(refuse("mask_zero = true (masked time steps are skipped; issbench runs every step)"));
            }
            Kind::Embedding
        }
        "LSTM" => {
            for (key, want) in [("activation", "tanh"), ("recurrent_activation", "sigmoid")] {
                if text(key) != want {
                    return Err(refuse(&format!("{key} '{}' (a plain LSTM uses {want})", text(key))));
                }
            }
            for key in ["stateful", "go_backwards", "time_major"] {
                if flag(key) {
                    return Err(refuse(&format!("{key} = true")));
                }
            }
            if !config["return_sequences"].as_bool().unwrap_or(false) {
                if !last {
                    return Err(refuse("return_sequences = false before another layer"));
                }
                note = Some(format!(
                    "{me} returns its last step only; issbench runs the same steps and outputs every step"
                ));
            }
            Kind::Lstm {
                use_bias: config["use_bias"].as_bool().unwrap_or(true),
            }
        }
        "Dense" => {
            match text("activation").as_str() {
                "" | "linear" => {}
                "softmax" => {
                    note = Some(format!("{me} applies softmax; issbench times the projection without it"));
                }
                other => return Err(refuse(&format!("activation '{other}' (issbench's head is linear)"))),
            }
            Kind::Dense {
                use_bias: config["use_bias"].as_bool().unwrap_or(true),
            }
        }
        "Bidirectional" | "GRU" => {
            return Err(refuse(&format!(
                "{} layers are not supported yet (issbench's model has forward LSTM cells only)",
                if class == "GRU" { "GRU" } else { "bidirectional" }
            )));
        }
        "Sequential" | "Functional" | "Model" => return Err(refuse("a nested model")),
        _ => {
            return Err(refuse(
                "not part of a plain recurrent stack (issbench reads Embedding, LSTM, Dense and Dropout layers)",
            ));
        }
    };
    Ok((Layer { name, class, kind }, note))
}

/// The names of the layers a Functional layer entry reads, if it says.
fn inbound(entry: &Value) -> Option<Vec<String>> {
    let nodes = entry["inbound_nodes"].as_array()?;
    if nodes.is_empty() {
        return None;
    }
    let mut names = Vec::new();
    collect_history(&Value::Array(nodes.clone()), &mut names);
    Some(names)
}

/// Layer names in Keras 3 `keras_history: [name, node, tensor]` entries
/// and Keras 2 `[name, node, tensor, kwargs]` lists.
fn collect_history(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(name) = map.get("keras_history").and_then(|h| h.get(0)).and_then(Value::as_str) {
                out.push(name.to_string());
            } else {
                map.values().for_each(|x| collect_history(x, out));
            }
        }
        Value::Array(items) => match (items.first(), items.get(1)) {
            (Some(Value::String(name)), Some(Value::Number(_))) => out.push(name.clone()),
            _ => items.iter().for_each(|x| collect_history(x, out)),
        },
        _ => {}
    }
}

/// `[InputLayer] [Embedding] LSTM... [Dense]`, Dropouts anywhere.
fn check_order(layers: &[Layer]) -> Result<(), ErrorKind> {
    let mut seen_lstm = false;
    let mut seen_dense = false;
    for (k, l) in layers.iter().enumerate() {
        let misplaced = match l.kind {
            Kind::Weightless => false,
            Kind::Embedding => seen_lstm || layers[..k].iter().any(|p| p.kind == Kind::Embedding),
            Kind::Lstm { .. } => {
                seen_lstm = true;
                seen_dense
            }
            Kind::Dense { .. } => {
                let twice = seen_dense;
                seen_dense = true;
                !seen_lstm || twice
            }
        };
        if misplaced {
            return Err(ErrorKind::Unsupported(format!(
                "layer '{}' ({}) is out of place: issbench reads [Embedding] LSTM... [Dense]",
                l.name, l.class
            )));
        }
    }
    if !seen_lstm {
        return Err(ErrorKind::Unsupported("no LSTM layer in the model".into()));
    }
    Ok(())
}

/// Keras' `to_snake_case` for a class name: `LSTM` -> `lstm`,
/// `InputLayer` -> `input_layer` (the groups of a `.keras` weights file).
pub fn snake_case(class: &str) -> String {
    let chars: Vec<char> = class.chars().filter(|c| c.is_alphanumeric() || *c == '_').collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| chars[j]);
        let next = chars.get(i + 1);
        // "(.)([A-Z][a-z]+)" and then "([a-z])([A-Z])" in Keras' regexes.
        let starts_word = c.is_uppercase() && i > 0 && next.is_some_and(|n| n.is_lowercase());
        let after_lower = c.is_uppercase() && prev.is_some_and(|p| p.is_ascii_lowercase());
        if (starts_word || after_lower) && !out.ends_with('_') {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_become_keras_group_names() {
        for (class, want) in [
            ("LSTM", "lstm"),
            ("InputLayer", "input_layer"),
            ("Dense", "dense"),
            ("Embedding", "embedding"),
            ("SpatialDropout1D", "spatial_dropout1d"),
            ("GRU", "gru"),
            ("Conv1D", "conv1d"),
            ("LSTMCell", "lstm_cell"),
            ("Bidirectional", "bidirectional"),
        ] {
            assert_eq!(snake_case(class), want, "{class}");
        }
    }

    fn model(layers: &str) -> String {
        format!(r#"{{"class_name": "Sequential", "config": {{"layers": [{layers}]}}}}"#)
    }
    const LSTM: &str = r#"{"class_name": "LSTM", "config": {"name": "l", "activation": "tanh", "recurrent_activation": "sigmoid", "return_sequences": true}}"#;

    #[test]
    fn a_plain_stack_is_read_and_the_rest_refused_by_name() {
        let ok = parse(&model(&format!(r#"{{"class_name": "Embedding", "config": {{"name": "e"}}}}, {LSTM}, {{"class_name": "Dense", "config": {{"name": "d", "activation": "softmax"}}}}"#))).unwrap();
        assert_eq!(ok.layers.len(), 3);
        assert!(ok.notes[0].contains("softmax"));
        let relu = LSTM.replace(r#""activation": "tanh""#, r#""activation": "relu""#);
        let e = parse(&model(&relu)).unwrap_err().to_string();
        assert!(e.contains("layer 'l' (LSTM): activation 'relu'"), "{e}");
        let e = parse(&model(r#"{"class_name": "GRU", "config": {"name": "g"}}"#))
            .unwrap_err()
            .to_string();
        assert!(e.contains("GRU layers are not supported yet"), "{e}");
        let e = parse(&model(&format!(r#"{{"class_name": "Dense", "config": {{"name": "d"}}}}, {LSTM}"#)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("out of place"), "{e}");
        let e = parse(&model(r#"{"class_name": "Conv1D", "config": {"name": "c"}}"#))
            .unwrap_err()
            .to_string();
        assert!(e.contains("layer 'c' (Conv1D): not part of a plain recurrent stack"), "{e}");
    }
}
