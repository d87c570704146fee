//! Planting ISS components into a model, so synthetic models have the
//! structure ISS training leaves behind, at any shape, without files.

use super::{Linear, LstmLayer, Model, ModelError, synthetic::SplitMix64};

/// Returns `model` with `hidden - kept[l]` units of each layer `l` zeroed as
/// ISS training zeroes them: incoming rows, recurrent column and consumer
/// column all exactly 0, biases untouched (nonzero). Units are chosen at
/// random positions from `seed`. Without a head the last layer has no
/// consumer column: its planted units are then removable only when the
/// caller accepts outputs of the kept units (`shrink_output`).
pub fn plant_components(model: &Model, kept: &[usize], seed: u64) -> Result<Model, ModelError> {
    let layers = model.layers();
    if kept.len() != layers.len() {
        return Err(ModelError::Spec(format!("{} kept sizes for {} layers", kept.len(), layers.len())));
    }
    let mut rng = SplitMix64::new(seed);
    let mut w_ih: Vec<Vec<f32>> = layers.iter().map(|l| l.w_ih().to_vec()).collect();
    let mut w_hh: Vec<Vec<f32>> = layers.iter().map(|l| l.w_hh().to_vec()).collect();
    let mut head_w = model.head().map(|h| h.weight().to_vec());
    for (l, layer) in layers.iter().enumerate() {
        let (h, n_in) = (layer.hidden(), layer.input());
        if kept[l] == 0 || kept[l] > h {
            return Err(ModelError::Spec(format!("layer {l}: cannot keep {} of {h} units", kept[l])));
        }
        let is_last = l + 1 == layers.len();
        for k in choose(h, h - kept[l], &mut rng) {
            for g in 0..4 {
                w_ih[l][(g * h + k) * n_in..(g * h + k + 1) * n_in].fill(0.0);
                w_hh[l][(g * h + k) * h..(g * h + k + 1) * h].fill(0.0);
            }
            for row in w_hh[l].chunks_exact_mut(h) {
                row[k] = 0.0;
            }
            let consumer = if is_last { head_w.as_mut() } else { Some(&mut w_ih[l + 1]) };
            for row in consumer.into_iter().flat_map(|c| c.chunks_exact_mut(h)) {
                row[k] = 0.0;
            }
        }
    }
    let mut new_layers = Vec::with_capacity(layers.len());
    for (l, ((layer, wi), wh)) in layers.iter().zip(w_ih).zip(w_hh).enumerate() {
        new_layers.push(LstmLayer::new(
            &format!("layer {l}"),
            layer.input(),
            layer.hidden(),
            wi,
            wh,
            layer.bias().to_vec(),
        )?);
    }
    let head = match (model.head(), head_w) {
        (Some(h), Some(w)) => Some(Linear::new("head", h.input(), h.output(), w, h.bias().to_vec())?),
        _ => None,
    };
    Model::new(model.name(), model.embedding().cloned(), new_layers, head)
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
