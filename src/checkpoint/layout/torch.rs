//! The `pytorch` layout: `nn.LSTM` state dicts (any module prefix):
//! `PREFIXweight_ih_lK [4h, in]`, `weight_hh_lK [4h, h]`, `bias_ih_lK`,
//! `bias_hh_lK` (summed), gates i, f, g, o; the embedding is an unbiased
//! `X.weight [vocab, in]`, the head a biased `X.weight [out, h]`.

use std::collections::BTreeMap;

use super::tensors::{Tensors, model_err, natural_key};
use super::{BuildError, Parts};
use crate::checkpoint::ErrorKind;
use crate::model::{Embedding, Linear, LstmLayer};

/// `(prefix, layer)` of a PyTorch `PREFIXweight_ih_lK` name.
pub(super) fn torch_layer(name: &str) -> Option<(&str, usize)> {
    let at = name.rfind("weight_ih_l")?;
    let k = name[at + "weight_ih_l".len()..].parse().ok()?;
    Some((&name[..at], k))
}

pub(super) fn build_torch(t: &mut Tensors) -> Result<Parts, BuildError> {
    if let Some(x) = t.all.iter().find(|x| x.name.contains("_reverse")) {
        return Err((Some(x.name.clone()), ErrorKind::Unsupported("bidirectional LSTM".into())));
    }
    if let Some(x) = t.all.iter().find(|x| x.name.contains("weight_hr_l")) {
        return Err((
            Some(x.name.clone()),
            ErrorKind::Unsupported("LSTM with projections (proj_size)".into()),
        ));
    }
    // Prefixes (modules) and their layer counts; several modules stack in name order.
    let mut modules: BTreeMap<(String, u64), (String, usize)> = BTreeMap::new();
    for x in t.all {
        if let Some((prefix, k)) = torch_layer(&x.name) {
            let e = modules.entry(natural_key(prefix)).or_insert((prefix.to_string(), 0));
            e.1 = e.1.max(k + 1);
        }
    }
    let mut layers: Vec<LstmLayer> = Vec::new();
    for (prefix, count) in modules.values() {
        for k in 0..*count {
            let n = layers.len();
            let wi = format!("{prefix}weight_ih_l{k}");
            let wh = format!("{prefix}weight_hh_l{k}");
            // The gate count is weight_hh's rows over its columns: 4 for an
            // LSTM, 3 for a GRU (told apart by the shapes, not guessed).
            let h = match t.shape(&wh)? {
                [r, c] if *c > 0 && r % c == 0 && r / c == 3 => {
                    return Err((
                        Some(wh),
                        ErrorKind::Unsupported(format!(
                            "a GRU: weight_hh is [3h, h] = [{r}, {c}] (an LSTM's is [4h, h]); GRUs are not supported yet"
                        )),
                    ));
                }
                [r, c] if *c > 0 && *r == 4 * c => *c,
                s => return Err((Some(wh), ErrorKind::Shape(format!("weight_hh is [4h, h], the file has {s:?}")))),
            };
            let g4 = 4 * h;
            let input = match t.shape(&wi)? {
                [r, c] if *r == g4 => *c,
                s => {
                    return Err((
                        Some(wi),
                        ErrorKind::Shape(format!("weight_ih is [4h, in] = [{g4}, in], the file has {s:?}")),
                    ));
                }
            };
            let w_ih = t.values(&wi, &[g4, input], &format!("layer {n} w_ih"))?;
            let w_hh = t.values(&wh, &[g4, h], &format!("layer {n} w_hh"))?;
            let (bi, bh) = (format!("{prefix}bias_ih_l{k}"), format!("{prefix}bias_hh_l{k}"));
            let mut bias = vec![0.0f32; g4];
            for (name, part) in [(&bi, "bias_ih"), (&bh, "bias_hh")] {
                if t.has(name) {
                    let b = t.values(name, &[g4], &format!("layer {n} {part} (summed into the bias)"))?;
                    bias.iter_mut().zip(b).for_each(|(a, b)| *a += b);
                }
            }
            layers.push(LstmLayer::new(&format!("layer {n}"), input, h, w_ih, w_hh, bias).map_err(model_err)?);
        }
    }
    if layers.is_empty() {
        return Err((None, ErrorKind::Missing("no weight_ih_l0 tensor".into())));
    }
    let (first_in, last_h) = (layers[0].input(), layers.last().unwrap().hidden());
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
    Ok((embedding, layers, head))
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
