//! The `keras` layout: Keras variable paths, `LAYER/lstm_cell/kernel
//! [in, 4h]`, `recurrent_kernel [h, 4h]`, `bias [4h]` (`x @ W`: transposed),
//! gates i, f, c, o; `embedding/embeddings`, `dense/kernel [h, out]` and
//! `dense/bias`.

use super::tensors::{Tensors, find_suffix, model_err, natural_key, transpose};
use super::torch::looks_like_head;
use super::{BuildError, Parts, Structure};
use crate::checkpoint::ErrorKind;
use crate::model::{Embedding, Layer, Linear, LstmLayer};

pub(super) fn build_keras(t: &mut Tensors, structure: &Structure) -> Result<Parts, BuildError> {
    let layer_order = structure.layer_order.as_deref();
    if let Some(x) = t.all.iter().find(|x| x.name.contains("gru_cell/")) {
        return Err((
            Some(x.name.clone()),
            ErrorKind::Unsupported("a GRU layer (gru_cell); GRUs are not supported yet".into()),
        ));
    }
    let bidirectional = |n: &str| n.split('/').any(|c| c.starts_with("forward_") || c.starts_with("backward_"));
    if let Some(x) = t
        .all
        .iter()
        .find(|x| x.name.ends_with("/recurrent_kernel") && bidirectional(&x.name))
    {
        return Err((
            Some(x.name.clone()),
            ErrorKind::Unsupported("a Bidirectional layer (forward_/backward_ cells); bidirectional layers are not supported yet".into()),
        ));
    }
    let mut cells: Vec<(String, (String, u64))> = t
        .all
        .iter()
        .filter_map(|x| x.name.strip_suffix("/recurrent_kernel"))
        .map(|dir| (dir.to_string(), natural_key(dir.split('/').next().unwrap_or(dir))))
        .collect();
    match layer_order {
        Some(order) => {
            let position = |dir: &str| order.iter().position(|l| dir.split('/').next() == Some(l.as_str()));
            if let Some((dir, _)) = cells.iter().find(|(dir, _)| position(dir).is_none()) {
                return Err((
                    Some(format!("{dir}/recurrent_kernel")),
                    ErrorKind::Layout(format!("layer of a cell not in the file's layer order ({})", order.join(", "))),
                ));
            }
            cells.sort_by_key(|(dir, _)| position(dir));
        }
        None => cells.sort_by(|a, b| a.1.cmp(&b.1)),
    }
    let mut layers = Vec::new();
    for (n, (dir, _)) in cells.iter().enumerate() {
        let (kernel, recurrent, bias_name) = (format!("{dir}/kernel"), format!("{dir}/recurrent_kernel"), format!("{dir}/bias"));
        let (input, g4) = match t.shape(&kernel)? {
            [r, c] if c % 4 == 0 && *c > 0 => (*r, *c),
            s => {
                return Err((
                    Some(kernel),
                    ErrorKind::Shape(format!("a Keras LSTM kernel is [in, 4h], the file has {s:?}")),
                ));
            }
        };
        let h = g4 / 4;
        let w_ih = transpose(
            &t.values(&kernel, &[input, g4], &format!("layer {n} w_ih (transposed)"))?,
            input,
            g4,
        );
        let w_hh = transpose(&t.values(&recurrent, &[h, g4], &format!("layer {n} w_hh (transposed)"))?, h, g4);
        let bias = if t.has(&bias_name) {
            t.values(&bias_name, &[g4], &format!("layer {n} bias"))?
        } else {
            vec![0.0; g4]
        };
        layers.push(
            LstmLayer::new(&format!("layer {n}"), input, h, w_ih, w_hh, bias)
                .map_err(model_err)?
                .into(),
        );
    }
    let embedding = match find_suffix(t, &["/embeddings"])? {
        Some(name) => {
            let [vocab, dim] = *t.shape(&name)? else {
                return Err((Some(name), ErrorKind::Shape("embeddings are [vocab, dim]".into())));
            };
            Some(Embedding::new("embedding", vocab, dim, t.values(&name, &[vocab, dim], "embedding")?).map_err(model_err)?)
        }
        None => None,
    };
    let last_h = layers.last().map_or(0, Layer::output);
    let dense_kernels = |fits: bool| {
        t.all
            .iter()
            .filter(move |x| {
                x.name.ends_with("/kernel") && !x.name.contains("lstm_cell") && x.shape.len() == 2 && (x.shape[0] == last_h) == fits
            })
            .map(|x| x.name.clone())
    };
    if let Some(other) = dense_kernels(false).find(|n| looks_like_head(n.split('/').next().unwrap_or(n))) {
        let shape = t.shape(&other)?.to_vec();
        return Err((
            Some(other),
            ErrorKind::Shape(format!(
                "looks like the output projection, but it is {shape:?}: a Dense over the last layer's {last_h} units is [{last_h}, out]"
            )),
        ));
    }
    let denses: Vec<String> = dense_kernels(true).collect();
    let head = match &denses[..] {
        [] => None,
        [k] => {
            let [hin, out] = *t.shape(k)? else { unreachable!("2-D checked") };
            let b = format!("{}/bias", k.strip_suffix("/kernel").expect("filtered"));
            let weight = transpose(&t.values(k, &[hin, out], "head weight (transposed)")?, hin, out);
            let bias = if t.has(&b) {
                t.values(&b, &[out], "head bias")?
            } else {
                vec![0.0; out]
            };
            Some(Linear::new("head", hin, out, weight, bias).map_err(model_err)?)
        }
        many => {
            return Err((
                None,
                ErrorKind::Layout(format!("several output layer candidates: {}", many.join(", "))),
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
