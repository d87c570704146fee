//! A Keras model config (`config.json` in a `.keras` file, the
//! `model_config` attribute of a legacy `.h5`), read as far as issbench
//! needs: the layers in order, which of them hold weights, and the checks
//! that make it a plain recurrent stack: `[InputLayer] [Embedding]
//! RNN... [Dense]` (with `Dropout` anywhere, the identity at inference),
//! where an RNN is an `LSTM`, a `GRU`, or a `Bidirectional` wrapper of
//! one (merged by concatenation), with Keras' default activations and no
//! state carried between batches. Everything else is refused by layer
//! name and class.

use serde_json::Value;

use crate::checkpoint::ErrorKind;
use crate::model::Cell;

/// What a layer is to issbench.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// No weights: `InputLayer`, `Dropout`.
    Weightless,
    Embedding,
    /// An `LSTM` or `GRU`, or a `Bidirectional` wrapper of one.
    Recurrent(Rnn),
    Dense {
        use_bias: bool,
    },
}

/// A recurrent layer as its config describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rnn {
    /// A GRU (else an LSTM).
    pub gru: bool,
    /// A GRU's `reset_after`, where the config gives it.
    pub reset_after: Option<bool>,
    pub use_bias: bool,
    /// A `Bidirectional` layer's inner layers, forward first: the second
    /// component of their variables' paths (`forward_lstm`, `backward_lstm`).
    pub inner: Option<(String, String)>,
}

impl Rnn {
    /// The cell's variable scope: `lstm_cell` or `gru_cell`.
    pub fn cell_scope(&self) -> &'static str {
        if self.gru { "gru_cell" } else { "lstm_cell" }
    }
    /// The cell, where the config says all of it (a GRU's `reset_after`).
    pub fn cell(&self) -> Option<Cell> {
        match (self.gru, self.reset_after) {
            (false, _) => Some(Cell::Lstm),
            (true, Some(reset_after)) => Some(Cell::Gru { reset_after }),
            (true, None) => None,
        }
    }
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
        "LSTM" | "GRU" => {
            let (rnn, rnn_note) = recurrent(config, class == "GRU", &me, last, false)?;
            note = rnn_note;
            Kind::Recurrent(rnn)
        }
        "Bidirectional" => {
            let (rnn, rnn_note) = bidirectional(config, &me, last)?;
            note = rnn_note;
            Kind::Recurrent(rnn)
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
        "Sequential" | "Functional" | "Model" => return Err(refuse("a nested model")),
        _ => {
            return Err(refuse(
                "not part of a plain recurrent stack (issbench reads Embedding, LSTM, GRU, Bidirectional, Dense and Dropout layers)",
            ));
        }
    };
    Ok((Layer { name, class, kind }, note))
}

/// A `Bidirectional` layer's config, checked: concatenated outputs, an
/// LSTM or GRU forward layer and a backward layer of the same kind that
/// reads the sequence reversed.
fn bidirectional(config: &Value, me: &str, last: bool) -> Result<(Rnn, Option<String>), ErrorKind> {
    let refuse = |why: &str| ErrorKind::Unsupported(format!("{me}: {why}"));
    let merge = config["merge_mode"].as_str().unwrap_or("concat");
    if merge != "concat" {
        return Err(refuse(&format!(
            "merge_mode '{merge}' (issbench's bidirectional layers concatenate [fw; bw])"
        )));
    }
    let (forward, backward) = (&config["layer"], &config["backward_layer"]);
    let inner_class = forward["class_name"].as_str().unwrap_or("");
    if !["LSTM", "GRU"].contains(&inner_class) {
        return Err(refuse(&format!("it wraps a '{inner_class}' layer (issbench reads LSTM and GRU)")));
    }
    let (mut rnn, note) = recurrent(
        &forward["config"],
        inner_class == "GRU",
        &format!("{me}, forward layer"),
        last,
        false,
    )?;
    let base = forward["config"]["name"].as_str().unwrap_or("").to_string();
    let fw = if base.starts_with("forward_") {
        base.clone()
    } else {
        format!("forward_{base}")
    };
    let bw = if backward.is_object() {
        if backward["class_name"].as_str() != Some(inner_class) {
            return Err(refuse(&format!(
                "its backward layer is a '{}', its forward layer a '{inner_class}'",
                backward["class_name"].as_str().unwrap_or("")
            )));
        }
        let (back, _) = recurrent(
            &backward["config"],
            inner_class == "GRU",
            &format!("{me}, backward layer"),
            last,
            true,
        )?;
        if (back.reset_after, back.use_bias) != (rnn.reset_after, rnn.use_bias) {
            return Err(refuse(
                "its backward layer differs from its forward layer in reset_after or use_bias",
            ));
        }
        backward["config"]["name"].as_str().unwrap_or("").to_string()
    } else {
        format!("backward_{}", base.strip_prefix("forward_").unwrap_or(&base))
    };
    if !bw.starts_with("backward_") {
        return Err(refuse(&format!(
            "its backward layer is named '{bw}' (issbench tells the directions by Keras' forward_ / backward_ names)"
        )));
    }
    rnn.inner = Some((fw, bw));
    Ok((rnn, note))
}

/// An `LSTM` or `GRU` (`gru`) layer's config (`config`), checked; `backwards`:
/// whether it should read the sequence reversed (a `Bidirectional`'s
/// backward layer) or not. Returns the layer and a note about it.
fn recurrent(config: &Value, gru: bool, me: &str, last: bool, backwards: bool) -> Result<(Rnn, Option<String>), ErrorKind> {
    let refuse = |why: &str| ErrorKind::Unsupported(format!("{me}: {why}"));
    let flag = |key: &str| config[key].as_bool().unwrap_or(false);
    let text = |key: &str| config[key].as_str().unwrap_or("").to_string();
    for (key, want) in [("activation", "tanh"), ("recurrent_activation", "sigmoid")] {
        if text(key) != want {
            return Err(refuse(&format!("{key} '{}' (a plain cell uses {want})", text(key))));
        }
    }
    for key in ["stateful", "time_major"] {
        if flag(key) {
            return Err(refuse(&format!("{key} = true")));
        }
    }
    if flag("go_backwards") != backwards {
        return Err(refuse(&format!(
            "go_backwards = {} ({})",
            flag("go_backwards"),
            if backwards {
                "a backward layer reads the sequence reversed"
            } else {
                "it reads the sequence reversed; only a Bidirectional's backward layer may"
            }
        )));
    }
    let mut note = None;
    if !config["return_sequences"].as_bool().unwrap_or(false) {
        if !last {
            return Err(refuse("return_sequences = false before another layer"));
        }
        note = Some(format!(
            "{me} returns its last step only; issbench runs the same steps and outputs every step"
        ));
    }
    Ok((
        Rnn {
            gru,
            reset_after: config["reset_after"].as_bool(),
            use_bias: config["use_bias"].as_bool().unwrap_or(true),
            inner: None,
        },
        note,
    ))
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

/// `[InputLayer] [Embedding] RNN... [Dense]`, Dropouts anywhere.
fn check_order(layers: &[Layer]) -> Result<(), ErrorKind> {
    let mut seen_lstm = false;
    let mut seen_dense = false;
    for (k, l) in layers.iter().enumerate() {
        let misplaced = match l.kind {
            Kind::Weightless => false,
            Kind::Embedding => seen_lstm || layers[..k].iter().any(|p| p.kind == Kind::Embedding),
            Kind::Recurrent(_) => {
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
                "layer '{}' ({}) is out of place: issbench reads [Embedding] LSTM/GRU... [Dense]",
                l.name, l.class
            )));
        }
    }
    if !seen_lstm {
        return Err(ErrorKind::Unsupported("no LSTM or GRU layer in the model".into()));
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
        let gru = LSTM
            .replace(r#""LSTM""#, r#""GRU""#)
            .replace(r#""l""#, r#""g", "reset_after": false"#);
        let ok = parse(&model(&gru)).unwrap();
        assert_eq!(
            ok.layers[0].kind,
            Kind::Recurrent(Rnn {
                gru: true,
                reset_after: Some(false),
                use_bias: true,
                inner: None
            })
        );
        let bi = |merge: &str| {
            format!(r#"{{"class_name": "Bidirectional", "config": {{"name": "b", "merge_mode": "{merge}", "layer": {LSTM}}}}}"#)
        };
        let ok = parse(&model(&bi("concat"))).unwrap();
        let Kind::Recurrent(rnn) = &ok.layers[0].kind else { panic!() };
        assert_eq!(rnn.inner, Some(("forward_l".into(), "backward_l".into())));
        let e = parse(&model(&bi("sum"))).unwrap_err().to_string();
        assert!(e.contains("layer 'b' (Bidirectional): merge_mode 'sum'"), "{e}");
        let backwards = LSTM.replace(r#""return_sequences""#, r#""go_backwards": true, "return_sequences""#);
        let e = parse(&model(&backwards)).unwrap_err().to_string();
        assert!(e.contains("layer 'l' (LSTM): go_backwards = true"), "{e}");
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
