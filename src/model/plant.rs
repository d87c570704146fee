//! Planting ISS components into a model, so synthetic models have the
//! structure ISS training leaves behind, at any shape, without files.

use super::{Embedding, Linear, Model, ModelError, synthetic::SplitMix64};

/// Returns `model` with `hidden - kept[i]` units of each direction `i` (in
/// [`Model::directions`]' order) zeroed as ISS training zeroes them:
/// incoming rows, recurrent column and every consumer's column all exactly
/// 0, biases untouched (nonzero). In a tied model the head's column is
/// also the embedding's, so the unit's embedding column is zero too (as
/// iss-rnns' RHN groups have it). Units are chosen at
/// random positions from `seed`. Without a head the last layer has no
/// consumer column: its planted units are then removable only when the
/// caller accepts outputs of the kept units (`shrink_output`).
pub fn plant_components(model: &Model, kept: &[usize], seed: u64) -> Result<Model, ModelError> {
    let layers = model.layers();
    let dirs: Vec<(usize, crate::model::Direction, &crate::model::Recurrent)> = model.directions().collect();
    if kept.len() != dirs.len() {
        return Err(ModelError::Spec(format!(
            "{} kept sizes for {} layer directions",
            kept.len(),
            dirs.len()
        )));
    }
    let mut rng = SplitMix64::new(seed);
    let mut w_ih: Vec<Vec<f32>> = dirs.iter().map(|(_, _, r)| r.w_ih().to_vec()).collect();
    let mut w_hh: Vec<Vec<f32>> = dirs.iter().map(|(_, _, r)| r.w_hh().to_vec()).collect();
    let mut head_w = model.head().map(|h| h.weight().to_vec());
    // Where each layer's directions start in `dirs`.
    let first_of = |l: usize| dirs.iter().position(|(k, _, _)| *k == l);
    for (i, &(l, d, dir)) in dirs.iter().enumerate() {
        let (h, n_in) = (dir.hidden(), dir.input());
        if kept[i] == 0 || kept[i] > h {
            return Err(ModelError::Spec(format!(
                "layer {l} {}: cannot keep {} of {h} units",
                d.name(),
                kept[i]
            )));
        }
        let offset = layers[l].offset(d);
        for k in choose(h, h - kept[i], &mut rng) {
            for r in (0..dir.cell().input_gates()).map(|g| g * h + k) {
                w_ih[i][r * n_in..(r + 1) * n_in].fill(0.0);
            }
            for r in (0..dir.cell().recurrent_gates()).map(|g| g * h + k) {
                w_hh[i][r * h..(r + 1) * h].fill(0.0);
            }
            for row in w_hh[i].chunks_exact_mut(h) {
                row[k] = 0.0;
            }
            // The unit's column in every consumer: each direction of the
            // next layer, or the head.
            match first_of(l + 1) {
                Some(next) => {
                    for j in next..dirs.len() {
                        if dirs[j].0 != l + 1 {
                            break;
                        }
                        let width = dirs[j].2.input();
                        for row in w_ih[j].chunks_exact_mut(width) {
                            row[offset + k] = 0.0;
                        }
                    }
                }
                None => {
                    if let Some(w) = head_w.as_mut() {
                        let width = layers[l].output();
                        for row in w.chunks_exact_mut(width) {
                            row[offset + k] = 0.0;
                        }
                    }
                }
            }
        }
    }
    let mut new_layers = Vec::with_capacity(layers.len());
    let mut built = dirs.iter().zip(w_ih.into_iter().zip(w_hh)).map(|(&(l, d, dir), (wi, wh))| {
        let name = format!("layer {l} {}", d.name());
        dir.rebuilt(
            &name,
            dir.input(),
            dir.hidden(),
            wi,
            wh,
            dir.bias().to_vec(),
            dir.bias_hh().to_vec(),
        )
    });
    for (l, layer) in layers.iter().enumerate() {
        let fw = built.next().expect("one per direction")?;
        let bw = if layer.is_bidirectional() {
            Some(built.next().expect("one per direction")?)
        } else {
            None
        };
        new_layers.push(layer.with_directions(&format!("layer {l}"), fw, bw)?);
    }
    let embedding = match (model.embedding(), &head_w) {
        (Some(e), Some(w)) if model.is_tied() => Some(Embedding::new("embedding", e.vocab(), e.dim(), w.clone())?),
        (e, _) => e.cloned(),
    };
    let head = match (model.head(), head_w) {
        (Some(h), Some(w)) => Some(Linear::new("head", h.input(), h.output(), w, h.bias().to_vec())?),
        _ => None,
    };
    let planted = Model::new(model.name(), embedding, new_layers, head)?;
    if model.is_tied() { planted.tied() } else { Ok(planted) }
}

/// `count` distinct values of `0..n`, at random (partial Fisher–Yates).
fn choose(n: usize, count: usize, rng: &mut SplitMix64) -> Vec<usize> {
    let mut all: Vec<usize> = (0..n).collect();
    for i in 0..count {
        let j = i + rng.below((n - i) as u64) as usize;
        all.swap(i, j);
    }
    all.truncate(count);
    all
}
