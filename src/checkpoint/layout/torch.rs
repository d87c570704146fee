//! The `pytorch` layout: `nn.LSTM` and `nn.GRU` state dicts (any module
//! prefix): `PREFIXweight_ih_lK [G·h, in]`, `weight_hh_lK [G·h, h]`,
//! `bias_ih_lK`, `bias_hh_lK`, with `_lK_reverse` for a bidirectional
//! layer's backward direction (issbench's own per-direction modules are
//! `PREFIX_reverse.weight_ih_l0`). The cell is told by the gate rows:
//! `4h` an LSTM (gates i, f, g, o, biases summed), `3h` a GRU (gates
//! r, z, n, biases kept apart, PyTorch's reset-after form); anything else
//! is an error. The embedding is an unbiased `X.weight [vocab, in]`, the
//! head a biased `X.weight [out, width]`.

use std::collections::BTreeMap;

use super::tensors::{Tensors, model_err, natural_key};
use super::{BuildError, Parts};
use crate::checkpoint::ErrorKind;
use crate::model::{Cell, Direction, Embedding, Layer, Linear, Recurrent};

/// Where one direction's tensors are: `{prefix}{what}_{suffix}`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct TorchKey {
    /// The module prefix, `rnn.` (issbench's `lstm0_reverse.` stays whole).
    pub prefix: String,
    /// The module the layer belongs to (`_reverse` taken off).
    pub module: String,
    /// The layer within the module.
    pub layer: usize,
    pub direction: Direction,
    /// `lK` or `lK_reverse`.
    pub suffix: String,
}

impl TorchKey {
    fn name(&self, what: &str) -> String {
        format!("{}{what}_{}", self.prefix, self.suffix)
    }
}

/// The key of a PyTorch `weight_ih` name: `PREFIXweight_ih_lK`,
/// `PREFIXweight_ih_lK_reverse`, or issbench's `MODULE_reverse.weight_ih_l0`.
pub(super) fn torch_layer(name: &str) -> Option<TorchKey> {
    let at = name.rfind("weight_ih_l")?;
    let prefix = &name[..at];
    let tail = &name[at + "weight_ih_l".len()..];
    let (number, reverse) = match tail.strip_suffix("_reverse") {
        Some(n) => (n, true),
        None => (tail, false),
    };
    let layer = number.parse().ok()?;
    let (module, module_reverse) = match prefix.strip_suffix("_reverse.") {
        Some(base) => (format!("{base}."), true),
        None => (prefix.to_string(), false),
    };
    if reverse && module_reverse {
        return None;
    }
    Some(TorchKey {
        prefix: prefix.to_string(),
        module,
        layer,
        direction: if reverse || module_reverse {
            Direction::Backward
        } else {
            Direction::Forward
        },
        suffix: format!("l{number}{}", if reverse { "_reverse" } else { "" }),
    })
}

pub(super) fn build_torch(t: &mut Tensors) -> Result<Parts, BuildError> {
    if let Some(x) = t.all.iter().find(|x| x.name.contains("weight_hr_l")) {
        return Err((
            Some(x.name.clone()),
            ErrorKind::Unsupported("LSTM with projections (proj_size)".into()),
        ));
    }
    // Modules and their layers' directions; several modules stack in name order.
    type Directions = BTreeMap<Direction, TorchKey>;
    let mut modules: BTreeMap<(String, u64), BTreeMap<usize, Directions>> = BTreeMap::new();
    for x in t.all {
        if let Some(key) = torch_layer(&x.name) {
            let module = modules.entry(natural_key(&key.module)).or_default();
            module.entry(key.layer).or_default().insert(key.direction, key);
        }
    }
    let mut layers: Vec<Layer> = Vec::new();
    for module in modules.values() {
        let count = module.keys().next_back().map_or(0, |k| k + 1);
        let bidirectional = module.values().find(|d| d.contains_key(&Direction::Backward));
        for k in 0..count {
            let n = layers.len();
            let dirs = module.get(&k).cloned().unwrap_or_default();
            let any = dirs
                .values()
                .next()
                .or_else(|| module.values().flat_map(|d| d.values()).next())
                .expect("a module has a layer");
            let missing = |d: Direction| {
                let mut key = any.clone();
                key.layer = k;
                key.suffix = format!("l{k}{}", if d == Direction::Backward { "_reverse" } else { "" });
                key.name("weight_ih")
            };
            let Some(fw) = dirs.get(&Direction::Forward) else {
                return Err((
                    Some(missing(Direction::Forward)),
                    ErrorKind::Missing(format!("layer {k} of module '{}' has no forward direction", any.module)),
                ));
            };
            let bw = dirs.get(&Direction::Backward);
            if let (Some(other), None) = (bidirectional, bw) {
                return Err((
                    Some(missing(Direction::Backward)),
                    ErrorKind::Missing(format!(
                        "the module is bidirectional ({} is there) but layer {k} has no backward (_reverse) direction",
                        other[&Direction::Backward].name("weight_ih")
                    )),
                ));
            }
            let label = |d: Direction| {
                if bidirectional.is_some() {
                    format!("layer {n} {}", d.name())
                } else {
                    format!("layer {n}")
                }
            };
            let fw = direction(t, fw, &label(Direction::Forward))?;
            let layer = match bw {
                Some(bw) => {
                    let bw = direction(t, bw, &label(Direction::Backward))?;
                    Layer::bidirectional(&format!("layer {n}"), fw, bw).map_err(model_err)?
                }
                None => fw.into(),
            };
            layers.push(layer);
        }
    }
    if layers.is_empty() {
        return Err((None, ErrorKind::Missing("no weight_ih_l0 tensor".into())));
    }
    for (k, pair) in layers.windows(2).enumerate() {
        if !pair[0].is_bidirectional() && pair[1].input() == 2 * pair[0].output() {
            return Err((
                None,
                ErrorKind::Missing(format!(
                    "layer {} reads {} values, twice layer {k}'s {}: a bidirectional layer {k} whose _reverse weights are missing?",
                    k + 1,
                    pair[1].input(),
                    pair[0].output()
                )),
            ));
        }
    }
    let (first_in, last_h) = (layers[0].input(), layers.last().expect("checked non-empty").output());
    // Other `X.weight` matrices: with a bias and h_last columns, the head;
    // without a bias and `in` columns, the embedding.
    let mut heads = Vec::new();
    let mut embeddings = Vec::new();
    for x in t.all {
        let Some(module) = x.name.strip_suffix("weight") else { continue };
        if torch_layer(&x.name).is_some() || x.name.contains("weight_hh_l") || x.shape.len() != 2 {
            continue;
        }
        let bias = format!("{module}bias");
        if t.has(&bias) && x.shape[1] == last_h {
            heads.push((x.name.clone(), bias));
        } else if !t.has(&bias) && x.shape[1] == first_in {
            embeddings.push(x.name.clone());
        } else if t.has(&bias) && looks_like_head(module) {
            return Err((
                Some(x.name.clone()),
                ErrorKind::Shape(format!(
                    "looks like the output projection, but it is {:?}: a head over the last layer's {last_h} units is [out, {last_h}]",
                    x.shape
                )),
            ));
        }
    }
    if embeddings.len() > 1 {
        embeddings.retain(|n| n.contains("embed") || n.contains("encoder"));
    }
    let embedding = match &embeddings[..] {
        [] => None,
        [name] => {
            let [vocab, dim] = *t.shape(name)? else {
                unreachable!("2-D checked")
            };
            Some(Embedding::new("embedding", vocab, dim, t.values(name, &[vocab, dim], "embedding")?).map_err(model_err)?)
        }
        many => {
            return Err((
                None,
                ErrorKind::Layout(format!("several embedding candidates: {}", many.join(", "))),
            ));
        }
    };
    let head = match &heads[..] {
        [] => None,
        [(w, b)] => {
            let [out, hin] = *t.shape(w)? else { unreachable!("2-D checked") };
            let weight = t.values(w, &[out, hin], "head weight")?;
            let bias = t.values(b, &[out], "head bias")?;
            Some(Linear::new("head", hin, out, weight, bias).map_err(model_err)?)
        }
        many => {
            let names: Vec<_> = many.iter().map(|(w, _)| w.as_str()).collect();
            return Err((
                None,
                ErrorKind::Layout(format!("several output layer candidates: {}", names.join(", "))),
            ));
        }
    };
    Ok(Parts {
        embedding,
        layers,
        head,
        tied: false,
    })
}

/// Whether a module name is one output projections go by.
pub(super) fn looks_like_head(module: &str) -> bool {
    let module = module
        .trim_end_matches('.')
        .rsplit('.')
        .next()
        .unwrap_or(module)
        .to_ascii_lowercase();
    [
        "decoder",
        "head",
        "fc",
        "out",
        "output",
        "proj",
        "projection",
        "classifier",
        "linear",
        "softmax",
        "dense",
        "logits",
    ]
    .iter()
    .any(|n| module == *n || module.starts_with(n))
}

/// One direction: the cell from `weight_hh`'s rows (`4h` LSTM, `3h` GRU),
/// checked against `weight_ih` and the biases.
fn direction(t: &mut Tensors, key: &TorchKey, label: &str) -> Result<Recurrent, BuildError> {
    let (wi, wh) = (key.name("weight_ih"), key.name("weight_hh"));
    let (cell, h) = match t.shape(&wh)? {
        [r, c] if *c > 0 && *r == 4 * c => (Cell::Lstm, *c),
        [r, c] if *c > 0 && *r == 3 * c => (Cell::Gru { reset_after: true }, *c),
        s => {
            return Err((
                Some(wh),
                ErrorKind::Shape(format!("weight_hh is [4h, h] (an LSTM) or [3h, h] (a GRU), the file has {s:?}")),
            ));
        }
    };
    let kind = if cell == Cell::Lstm { "an LSTM" } else { "a GRU" };
    let rows = cell.input_gates() * h;
    let input = match t.shape(&wi)? {
        [r, c] if *r == rows => *c,
        s => {
            return Err((
                Some(wi),
                ErrorKind::Shape(format!(
                    "weight_hh {wh_shape:?} makes this {kind} of {h} units, whose weight_ih is [{rows}, in]; the file has {s:?} (the gate counts disagree)",
                    wh_shape = [cell.recurrent_gates() * h, h]
                )),
            ));
        }
    };
    let w_ih = t.values(&wi, &[rows, input], &format!("{label} w_ih"))?;
    let w_hh = t.values(&wh, &[rows, h], &format!("{label} w_hh"))?;
    let (bi, bh) = (key.name("bias_ih"), key.name("bias_hh"));
    let mut bias = |name: &str, role: &str| -> Result<Vec<f32>, BuildError> {
        if !t.has(name) {
            return Ok(vec![0.0; rows]);
        }
        match t.shape(name)? {
            [r] if *r == rows => t.values(name, &[rows], &format!("{label} {role}")),
            s => Err((
                Some(name.to_string()),
                ErrorKind::Shape(format!("the bias of {kind} of {h} units is [{rows}], the file has {s:?}")),
            )),
        }
    };
    let (b_ih, b_hh) = if cell == Cell::Lstm {
        let b_ih = bias(&bi, "bias_ih (summed into the bias)")?;
        let b_hh = bias(&bh, "bias_hh (summed into the bias)")?;
        (b_ih.iter().zip(&b_hh).map(|(a, b)| a + b).collect(), Vec::new())
    } else {
        (bias(&bi, "b_ih (gates r, z, n)")?, bias(&bh, "b_hh (gates r, z, n)")?)
    };
    Recurrent::with_cell(label, cell, input, h, w_ih, w_hh, b_ih, b_hh).map_err(model_err)
}
