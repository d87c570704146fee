//! The `rhn` layout: Recurrent Highway Networks as wenwei202/iss-rnns
//! `rhn.py` names them (and as issbench writes them back): layer `l`'s
//! micro-layer `i` has `PREFIX/RHN{l}/h_{i}/Linear/Matrix` and `Bias` for
//! its `H` transform and `.../t_{i}/...` for its `T` gate. Micro-layer 0's
//! matrices are `[in + w, w]`, rows `[x; s]`, the others `[w, w]`, used as
//! `x @ Matrix` (so transposed into the canonical rows). Depth is the
//! number of micro-layers, each of which must have all four tensors.
//!
//! The embedding is `PREFIX/embedding` (or `embedding.weight`), the head
//! `PREFIX/softmax_w [w, vocab]` (or `head.weight [vocab, w]`) with
//! `PREFIX/softmax_b` (or `head.bias`). A head bias without a head
//! weight is rhn.py's tied model (`tied`: `softmax_w` is the embedding's
//! transpose, no variable of its own): the model is built tied.

use std::collections::BTreeMap;

use super::tensors::{Tensors, model_err, transpose};
use super::{BuildError, Parts};
use crate::checkpoint::ErrorKind;
use crate::model::{Cell, Embedding, Layer, Linear, Recurrent};

/// One RHN tensor name: `PREFIX/RHN{layer}/{gate}_{micro}/Linear/{what}`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct RhnName<'a> {
    /// Everything before `RHN{layer}`, with its slash (`model/`).
    pub prefix: &'a str,
    pub layer: usize,
    /// `h` (the transform) or `t` (the gate).
    pub gate: char,
    pub micro: usize,
    /// `Matrix` or `Bias`.
    pub what: &'a str,
}

/// The parts of an RHN tensor name, if `name` is one.
pub(super) fn rhn_name(name: &str) -> Option<RhnName<'_>> {
    let rest = name.strip_suffix("/Linear/Matrix").map(|r| (r, "Matrix"));
    let (rest, what) = rest.or_else(|| name.strip_suffix("/Linear/Bias").map(|r| (r, "Bias")))?;
    let (rest, micro) = rest.rsplit_once('/')?;
    let (gate, micro) = micro.split_once('_')?;
    let gate = match gate {
        "h" => 'h',
        "t" => 't',
        _ => return None,
    };
    let (prefix, layer) = match rest.rsplit_once('/') {
        Some((p, l)) => (&name[..p.len() + 1], l),
        None => ("", rest),
    };
    Some(RhnName {
        prefix,
        layer: layer.strip_prefix("RHN")?.parse().ok()?,
        gate,
        micro: micro.parse().ok()?,
        what,
    })
}

pub(super) fn build_rhn(t: &mut Tensors) -> Result<Parts, BuildError> {
    let names: Vec<RhnName> = t.all.iter().filter_map(|x| rhn_name(&x.name)).collect();
    let prefix = names.first().map_or("", |n| n.prefix);
    if let Some(other) = names.iter().find(|n| n.prefix != prefix) {
        return Err((
            None,
            ErrorKind::Layout(format!("RHN layers under two scopes: '{prefix}' and '{}'", other.prefix)),
        ));
    }
    // Per layer, the micro-layers each gate has.
    let mut micro: BTreeMap<usize, BTreeMap<char, Vec<usize>>> = BTreeMap::new();
    for n in names.iter().filter(|n| n.what == "Matrix") {
        micro.entry(n.layer).or_default().entry(n.gate).or_default().push(n.micro);
    }
    let mut layers: Vec<Layer> = Vec::new();
    for (k, (&l, gates)) in micro.iter().enumerate() {
        if l != k {
            return Err((
                Some(format!("{prefix}RHN{k}/h_0/Linear/Matrix")),
                ErrorKind::Missing(format!("RHN layer {k} (layers found: {:?})", micro.keys().collect::<Vec<_>>())),
            ));
        }
        let input = layers.last().map(Layer::output);
        layers.push(layer(t, prefix, l, gates, input)?.into());
    }
    if layers.is_empty() {
        return Err((None, ErrorKind::Missing("no .../RHN0/h_0/Linear/Matrix tensor".into())));
    }
    let width = layers.last().expect("checked non-empty").output();
    let (embedding, head, tied) = embedding_and_head(t, prefix, width)?;
    Ok(Parts {
        embedding,
        layers,
        head,
        tied,
    })
}

/// RHN layer `l` of `PREFIX`: depth from the micro-layers its gates have,
/// every one of which must be there in full.
fn layer(
    t: &mut Tensors,
    prefix: &str,
    l: usize,
    gates: &BTreeMap<char, Vec<usize>>,
    prev: Option<usize>,
) -> Result<Recurrent, BuildError> {
    let depth = gates.values().flatten().max().map_or(0, |m| m + 1);
    let list = |g: char| {
        let mut v = gates.get(&g).cloned().unwrap_or_default();
        v.sort_unstable();
        format!("{g}: {v:?}")
    };
    let name = |g: char, i: usize, what: &str| format!("{prefix}RHN{l}/{g}_{i}/Linear/{what}");
    for i in 0..depth {
        for g in ['h', 't'] {
            for what in ["Matrix", "Bias"] {
                let n = name(g, i, what);
                if !t.has(&n) {
                    return Err((
                        Some(n),
                        ErrorKind::Missing(format!(
                            "micro-layer {i} of RHN{l}, whose deepest micro-layer is {} (matrices found: {}, {})",
                            depth - 1,
                            list('h'),
                            list('t')
                        )),
                    ));
                }
            }
        }
    }
    let first = name('h', 0, "Matrix");
    let (rows, w) = match t.shape(&first)? {
        [r, w] if *w > 0 && r > w => (*r, *w),
        s => {
            return Err((
                Some(first),
                ErrorKind::Shape(format!("micro-layer 0's Matrix is [in + w, w] (rows [x; s]), the file has {s:?}")),
            ));
        }
    };
    let input = rows - w;
    if let Some(p) = prev
        && p != input
    {
        return Err((
            Some(first),
            ErrorKind::Shape(format!("[{rows}, {w}] reads {input} inputs, but the layer before gives {p}")),
        ));
    }
    let label = format!("layer {l}");
    let mut w_ih = Vec::with_capacity(2 * w * input);
    let mut w_hh = Vec::with_capacity(depth * 2 * w * w);
    let mut bias = Vec::with_capacity(depth * 2 * w);
    for i in 0..depth {
        let r = if i == 0 { rows } else { w };
        for g in ['h', 't'] {
            let part = if g == 'h' { "H" } else { "T" };
            let m = t.values(
                &name(g, i, "Matrix"),
                &[r, w],
                &format!("{label} micro-layer {i} {part} (transposed)"),
            )?;
            let mt = transpose(&m, r, w); // [w, r]: row u reads [x; s] (i = 0) or s
            for u in 0..w {
                let row = &mt[u * r..(u + 1) * r];
                if i == 0 {
                    w_ih.extend_from_slice(&row[..input]);
                    w_hh.extend_from_slice(&row[input..]);
                } else {
                    w_hh.extend_from_slice(row);
                }
            }
            bias.extend(t.values(&name(g, i, "Bias"), &[w], &format!("{label} micro-layer {i} {part} bias"))?);
        }
    }
    // w_ih holds micro-layer 0's H rows then its T rows, as canonical.
    Recurrent::with_cell(&label, Cell::Rhn { depth }, input, w, w_ih, w_hh, bias, Vec::new()).map_err(model_err)
}

/// The embedding and the head (tied to the embedding when the file has
/// a head bias but no head weight).
fn embedding_and_head(t: &mut Tensors, prefix: &str, width: usize) -> Result<(Option<Embedding>, Option<Linear>, bool), BuildError> {
    let first = |t: &Tensors, names: [String; 2]| names.into_iter().find(|n| t.has(n));
    let embedding = match first(t, [format!("{prefix}embedding"), "embedding.weight".into()]) {
        Some(name) => {
            let [vocab, dim] = *t.shape(&name)? else {
                return Err((Some(name), ErrorKind::Shape("an embedding is [vocab, dim]".into())));
            };
            let table = t.values(&name, &[vocab, dim], "embedding")?;
            Some((name, Embedding::new("embedding", vocab, dim, table).map_err(model_err)?))
        }
        None => None,
    };
    let weight = first(t, [format!("{prefix}softmax_w"), "head.weight".into()]);
    let bias = first(t, [format!("{prefix}softmax_b"), "head.bias".into()]);
    let bias_of = |t: &mut Tensors, out: usize| match &bias {
        Some(b) => t.values(b, &[out], "head bias"),
        None => Ok(vec![0.0; out]),
    };
    let head = match (weight, &embedding) {
        (Some(w), _) => {
            let [a, b] = *t.shape(&w)? else {
                return Err((Some(w), ErrorKind::Shape("a head weight is 2-D".into())));
            };
            let (hin, out, weight) = if w.ends_with("softmax_w") {
                (a, b, transpose(&t.values(&w, &[a, b], "head weight (transposed)")?, a, b))
            } else {
                (b, a, t.values(&w, &[a, b], "head weight")?)
            };
            Some((Linear::new("head", hin, out, weight, bias_of(t, out)?).map_err(model_err)?, false))
        }
        (None, Some((name, e))) if bias.is_some() => {
            if e.dim() != width {
                return Err((
                    Some(name.clone()),
                    ErrorKind::Shape(format!(
                        "a head bias without a head weight is a head tied to the embedding, which must then be [vocab, {width}]; it is [{}, {}]",
                        e.vocab(),
                        e.dim()
                    )),
                ));
            }
            t.notes.push(format!(
                "no softmax_w: the head's weight is the embedding '{name}' (tied, as rhn.py builds it with tied = True)"
            ));
            let head = Linear::new("head", width, e.vocab(), e.table().to_vec(), bias_of(t, e.vocab())?).map_err(model_err)?;
            Some((head, true))
        }
        (None, None) if bias.is_some() => {
            return Err((
                bias.clone(),
                ErrorKind::Missing("a head bias without a head weight or an embedding to tie it to".into()),
            ));
        }
        (None, _) => None,
    };
    let tied = head.as_ref().is_some_and(|(_, tied)| *tied);
    Ok((embedding.map(|(_, e)| e), head.map(|(h, _)| h), tied))
}
