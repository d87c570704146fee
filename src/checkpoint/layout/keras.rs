//! The `keras` layout: Keras variable paths. A cell is `LAYER/CELL/kernel
//! [in, G·h]`, `recurrent_kernel [h, G·h]` and `bias` (`x @ W`:
//! transposed), with `LAYER/forward_X/CELL/...` and `LAYER/backward_X/...`
//! for a `Bidirectional` layer's two directions. The cell is told by
//! `recurrent_kernel`'s columns: `4h` an LSTM (gates i, f, c, o, bias
//! `[4h]`), `3h` a GRU (gates z, r, h, reordered to r, z, n; bias
//! `[2, 3h]` = `[b_ih; b_hh]` with `reset_after`, `[3h]` = `b_ih` without),
//! checked against the cell's scope name (`lstm_cell`, `gru_cell`) and
//! the file's config where there is one. `embedding/embeddings`,
//! `dense/kernel [width, out]` and `dense/bias`.

use super::tensors::{Tensors, find_suffix, model_err, natural_key, reorder_gates, transpose};
use super::torch::looks_like_head;
use super::{BuildError, Parts, Structure};
use crate::checkpoint::ErrorKind;
use crate::model::{Cell, Direction, Embedding, Layer, Linear, Recurrent};

/// Keras GRU gate blocks z, r, h as canonical r, z, n.
const KERAS_GRU_GATES: [usize; 3] = [1, 0, 2];

/// A cell's variable scope (`LAYER[/forward_X|backward_X]/CELL`) and its direction, if in a Bidirectional.
struct CellDir {
    dir: String,
    direction: Option<Direction>,
}

/// Which direction a cell scope is: a path component `forward_*` or
/// `backward_*` (Keras' names for a Bidirectional's layers), else none.
fn direction_of(dir: &str) -> Option<Direction> {
    dir.split('/').skip(1).find_map(|c| {
        if c.starts_with("forward_") {
            Some(Direction::Forward)
        } else if c.starts_with("backward_") {
            Some(Direction::Backward)
        } else {
            None
        }
    })
}

pub(super) fn build_keras(t: &mut Tensors, structure: &Structure) -> Result<Parts, BuildError> {
    // The cells by layer (the first component of their paths), in file order.
    let mut by_layer: Vec<(String, Vec<CellDir>)> = Vec::new();
    for dir in t.all.iter().filter_map(|x| x.name.strip_suffix("/recurrent_kernel")) {
        let layer = dir.split('/').next().unwrap_or(dir).to_string();
        let cell = CellDir {
            dir: dir.to_string(),
            direction: direction_of(dir),
        };
        match by_layer.iter_mut().find(|(l, _)| *l == layer) {
            Some((_, cells)) => cells.push(cell),
            None => by_layer.push((layer, vec![cell])),
        }
    }
    match structure.layer_order.as_deref() {
        Some(order) => {
            let position = |layer: &str| order.iter().position(|l| l == layer);
            if let Some((layer, cells)) = by_layer.iter().find(|(l, _)| position(l).is_none()) {
                return Err((
                    Some(format!("{}/recurrent_kernel", cells[0].dir)),
                    ErrorKind::Layout(format!(
                        "layer '{layer}' of a cell is not in the file's layer order ({})",
                        order.join(", ")
                    )),
                ));
            }
            by_layer.sort_by_key(|(l, _)| position(l));
        }
        None => by_layer.sort_by_key(|(l, _)| natural_key(l)),
    }
    let mut layers = Vec::new();
    for (n, (name, cells)) in by_layer.iter().enumerate() {
        let hint = structure.cells.get(name).copied();
        let find = |d: Option<Direction>| {
            cells
                .iter()
                .filter(|c| c.direction == d)
                .map(|c| c.dir.as_str())
                .collect::<Vec<_>>()
        };
        let (plain, fw, bw) = (find(None), find(Some(Direction::Forward)), find(Some(Direction::Backward)));
        let layer = match (&plain[..], &fw[..], &bw[..]) {
            ([dir], [], []) => direction(t, dir, &format!("layer {n}"), hint)?.into(),
            ([], [f], [b]) => {
                let fw = direction(t, f, &format!("layer {n} fw"), hint)?;
                let bw = direction(t, b, &format!("layer {n} bw"), hint)?;
                Layer::bidirectional(&format!("layer {n}"), fw, bw).map_err(model_err)?
            }
            ([], [f], []) | ([], [], [f]) => {
                let (has, lacks) = if fw.is_empty() {
                    ("backward", "forward")
                } else {
                    ("forward", "backward")
                };
                return Err((
                    Some(format!("{f}/recurrent_kernel")),
                    ErrorKind::Missing(format!("layer '{name}' is a Bidirectional with a {has} cell but no {lacks}_* cell")),
                ));
            }
            _ => {
                let all: Vec<&str> = cells.iter().map(|c| c.dir.as_str()).collect();
                return Err((
                    None,
                    ErrorKind::Layout(format!(
                        "layer '{name}' has cells {all:?}: one cell, or a forward_ and a backward_ one, per layer"
                    )),
                ));
            }
        };
        layers.push(layer);
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
    let cell_kernels: Vec<String> = by_layer
        .iter()
        .flat_map(|(_, cells)| cells.iter().map(|c| format!("{}/kernel", c.dir)))
        .collect();
    let cell_kernels = &cell_kernels;
    let dense_kernels = |fits: bool| {
        t.all
            .iter()
            .filter(move |x| {
                x.name.ends_with("/kernel") && !cell_kernels.contains(&x.name) && x.shape.len() == 2 && (x.shape[0] == last_h) == fits
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

/// One cell (`dir`): an LSTM or a GRU by `recurrent_kernel`'s columns,
/// checked against its scope name and the config's `hint`.
fn direction(t: &mut Tensors, dir: &str, label: &str, hint: Option<Cell>) -> Result<Recurrent, BuildError> {
    let (kernel, recurrent, bias_name) = (format!("{dir}/kernel"), format!("{dir}/recurrent_kernel"), format!("{dir}/bias"));
    let (h, gates) = match t.shape(&recurrent)? {
        [h, c] if *h > 0 && (*c == 4 * h || *c == 3 * h) => (*h, c / h),
        s => {
            return Err((
                Some(recurrent),
                ErrorKind::Shape(format!(
                    "a Keras recurrent_kernel is [h, 4h] (LSTM) or [h, 3h] (GRU), the file has {s:?}"
                )),
            ));
        }
    };
    let kind = if gates == 4 { "an LSTM" } else { "a GRU" };
    let scope = dir.rsplit('/').next().unwrap_or(dir);
    let named = match scope {
        "lstm_cell" => Some(4),
        "gru_cell" => Some(3),
        _ => None,
    };
    let hinted = hint.map(|c| c.recurrent_gates());
    if let Some((what, g)) = [("its scope is", named), ("the file's config says", hinted)]
        .into_iter()
        .find_map(|(what, g)| g.filter(|&g| g != gates).map(|g| (what, g)))
    {
        return Err((
            Some(recurrent),
            ErrorKind::Shape(format!(
                "[{h}, {}] is {kind}'s, but {what} {}",
                gates * h,
                if g == 4 { "an LSTM" } else { "a GRU" }
            )),
        ));
    }
    let rows = gates * h;
    let input = match t.shape(&kernel)? {
        [r, c] if *c == rows => *r,
        s => {
            return Err((
                Some(kernel),
                ErrorKind::Shape(format!(
                    "recurrent_kernel [{h}, {rows}] makes this {kind} of {h} units, whose kernel is [in, {rows}]; the file has {s:?} (the gate counts disagree)"
                )),
            ));
        }
    };
    let w_ih = transpose(
        &t.values(&kernel, &[input, rows], &format!("{label} w_ih (transposed)"))?,
        input,
        rows,
    );
    let w_hh = transpose(&t.values(&recurrent, &[h, rows], &format!("{label} w_hh (transposed)"))?, h, rows);
    let bias_shape = if t.has(&bias_name) {
        Some(t.shape(&bias_name)?.to_vec())
    } else {
        None
    };
    if gates == 4 {
        let bias = match bias_shape {
            Some(_) => t.values(&bias_name, &[rows], &format!("{label} bias"))?,
            None => vec![0.0; rows],
        };
        return Recurrent::with_cell(label, Cell::Lstm, input, h, w_ih, w_hh, bias, Vec::new()).map_err(model_err);
    }
    // A GRU: reset_after from the config, else from the bias' shape.
    let reset_after = match (hint, bias_shape.as_deref()) {
        (Some(Cell::Gru { reset_after }), _) => reset_after,
        (_, Some([2, c])) if *c == rows => true,
        (_, Some([c])) if *c == rows => false,
        (_, None) => {
            return Err((
                Some(recurrent),
                ErrorKind::Layout(
                    "a GRU without a bias: whether it applies the reset after the recurrent product (reset_after) cannot be told from its weights; read the .keras or .h5 model file, whose config says"
                        .into(),
                ),
            ));
        }
        (_, Some(s)) => {
            return Err((
                Some(bias_name),
                ErrorKind::Shape(format!("a GRU's bias is [2, {rows}] (reset_after) or [{rows}], the file has {s:?}")),
            ));
        }
    };
    let (b_ih, b_hh) = match bias_shape {
        None => (vec![0.0; rows], vec![0.0; rows]),
        Some(_) if reset_after => {
            let both = t.values(&bias_name, &[2, rows], &format!("{label} bias [b_ih; b_hh] (gates z, r, h)"))?;
            let (bi, bh) = both.split_at(rows);
            (bi.to_vec(), bh.to_vec())
        }
        Some(_) => (
            t.values(&bias_name, &[rows], &format!("{label} bias b_ih (gates z, r, h; b_hh is zero)"))?,
            vec![0.0; rows],
        ),
    };
    let gru = |v: &[f32], width: usize| reorder_gates(v, h, width, &KERAS_GRU_GATES);
    Recurrent::with_cell(
        label,
        Cell::Gru { reset_after },
        input,
        h,
        gru(&w_ih, input),
        gru(&w_hh, h),
        gru(&b_ih, 1),
        gru(&b_hh, 1),
    )
    .map_err(model_err)
}
