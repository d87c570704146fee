//! The `tf-bidaf` layout: TensorFlow 1 `bidirectional_dynamic_rnn`s of
//! `BasicLSTMCell`s, named as BiDAF (and the ISS code's copy of it) names
//! them: `SCOPE/fw/basic_lstm_cell/weights` and `SCOPE/bw/...` (`kernel`,
//! `bias` from TF 1.2; `biases` before) with kernels `[in + h, 4h]`, rows
//! `[x; h]`, gates i, j, f, o, and the forget bias (BiDAF's: TensorFlow's
//! default 1.0) added at run time. Each scope (`main/g0`, `main/g1`) is a
//! layer, in the order of the number its name ends in; each must have
//! both directions. The head is the one biased `.../weights [width, out]`
//! (`x @ W`) that reads the last layer's output (BiDAF's
//! `main/logits1/first`).
//!
//! A training checkpoint also holds `.../ExponentialMovingAverage`
//! shadows, which are the weights BiDAF evaluates with (`--load_ema`, its
//! default): when the cells have shadows, every weight is read from its
//! shadow and the raw variables are ignored.

use std::collections::BTreeMap;

use super::tensors::{Tensors, model_err, natural_key, transpose};
use super::tf::basic_lstm;
use super::{BuildError, Parts};
use crate::checkpoint::ErrorKind;
use crate::model::{Direction, Layer, Linear};

/// The suffix of an exponential moving average's shadow variable.
const EMA: &str = "/ExponentialMovingAverage";

/// A bidirectional RNN's cell kernel: its scope (the layer), direction and
/// cell scope (`SCOPE/fw/basic_lstm_cell`), and whether it is a shadow.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct BidiCell<'a> {
    pub scope: &'a str,
    pub direction: Direction,
    pub dir: &'a str,
    pub ema: bool,
}

/// The [`BidiCell`] a tensor name is the kernel of, if it is one.
pub(super) fn cell(name: &str) -> Option<BidiCell<'_>> {
    let (base, ema) = match name.strip_suffix(EMA) {
        Some(base) => (base, true),
        None => (name, false),
    };
    let dir = base.strip_suffix("/kernel").or_else(|| base.strip_suffix("/weights"))?;
    let parent = dir.strip_suffix("/basic_lstm_cell").or_else(|| dir.strip_suffix("/lstm_cell"))?;
    let (scope, direction) = match parent.rsplit_once('/') {
        Some((scope, "fw")) => (scope, Direction::Forward),
        Some((scope, "bw")) => (scope, Direction::Backward),
        _ => return None,
    };
    Some(BidiCell {
        scope,
        direction,
        dir,
        ema,
    })
}

pub(super) fn build_bidaf(t: &mut Tensors, forget_bias: f32) -> Result<Parts, BuildError> {
    let cells: Vec<(&str, BidiCell)> = t.all.iter().filter_map(|x| cell(&x.name).map(|c| (x.name.as_str(), c))).collect();
    let ema = cells.iter().any(|(_, c)| c.ema);
    let sfx = if ema { EMA } else { "" };
    if ema {
        t.notes.push(
            "the weights are the .../ExponentialMovingAverage shadows (what BiDAF evaluates with, --load_ema); the raw variables are ignored"
                .into(),
        );
    }
    // Scopes in the order of their numbers, each with its directions.
    type Dirs<'a> = BTreeMap<Direction, (&'a str, &'a str)>;
    let mut scopes: BTreeMap<(String, u64), (&str, Dirs)> = BTreeMap::new();
    for (name, c) in cells.iter().filter(|(_, c)| c.ema == ema) {
        let (_, dirs) = scopes.entry(natural_key(c.scope)).or_insert((c.scope, Dirs::new()));
        if let Some((prev, _)) = dirs.insert(c.direction, (name, c.dir)) {
            return Err((None, ErrorKind::Layout(format!("two kernels for one cell: {prev} and {name}"))));
        }
    }
    let mut layers = Vec::new();
    for (k, (scope, dirs)) in scopes.values().enumerate() {
        let mut read = |d: Direction| -> Result<_, BuildError> {
            let Some(&(kernel, dir)) = dirs.get(&d) else {
                let other = dirs.values().next().expect("a scope has a cell").0;
                return Err((
                    Some(other.to_string()),
                    ErrorKind::Missing(format!(
                        "the bidirectional RNN '{scope}' has no {} cell ({scope}/{}/...)",
                        if d == Direction::Forward { "forward" } else { "backward" },
                        d.name()
                    )),
                ));
            };
            let bias = [format!("{dir}/bias{sfx}"), format!("{dir}/biases{sfx}")]
                .into_iter()
                .find(|n| t.has(n))
                .ok_or_else(|| (Some(format!("{dir}/biases{sfx}")), ErrorKind::Missing("the cell's bias".into())))?;
            basic_lstm(t, kernel, &bias, &format!("layer {k} {}", d.name()), forget_bias)
        };
        let (fw, bw) = (read(Direction::Forward)?, read(Direction::Backward)?);
        layers.push(Layer::bidirectional(&format!("layer {k}"), fw, bw).map_err(model_err)?);
    }
    if layers.is_empty() {
        return Err((
            None,
            ErrorKind::Missing(format!("no .../fw/basic_lstm_cell/kernel (or weights){sfx} tensor")),
        ));
    }
    let width = layers.last().expect("checked non-empty").output();
    let head = head(t, width, sfx)?;
    Ok(Parts {
        embedding: None,
        layers,
        head,
        tied: false,
    })
}

/// The one biased linear layer that reads `width` values, if any
/// (`.../weights{sfx}` or `.../kernel{sfx}` outside the cells, with a
/// `biases` or `bias` beside it); others that look like one are noted.
fn head(t: &mut Tensors, width: usize, sfx: &str) -> Result<Option<Linear>, BuildError> {
    let mut fits = Vec::new();
    let mut others = Vec::new();
    for x in t.all {
        let Some(base) = x.name.strip_suffix(sfx) else { continue };
        if cell(&x.name).is_some() || x.shape.len() != 2 || (sfx.is_empty() && base.ends_with(EMA)) {
            continue;
        }
        let Some(module) = base.strip_suffix("/weights").or_else(|| base.strip_suffix("/kernel")) else {
            continue;
        };
        let Some(bias) = [format!("{module}/biases{sfx}"), format!("{module}/bias{sfx}")]
            .into_iter()
            .find(|b| t.has(b))
        else {
            continue;
        };
        if x.shape[0] == width {
            fits.push((x.name.clone(), bias));
        } else {
            others.push(format!("{} {:?}", x.name, x.shape));
        }
    }
    if !others.is_empty() {
        t.notes.push(format!(
            "not read as the head (they do not read the last layer's {width} outputs): {}",
            others.join(", ")
        ));
    }
    match &fits[..] {
        [] => Ok(None),
        [(w, b)] => {
            let [hin, out] = *t.shape(w)? else { unreachable!("2-D checked") };
            let weight = transpose(&t.values(w, &[hin, out], "head weight (transposed)")?, hin, out);
            let bias = t.values(b, &[out], "head bias")?;
            Ok(Some(Linear::new("head", hin, out, weight, bias).map_err(model_err)?))
        }
        many => {
            let names: Vec<&str> = many.iter().map(|(w, _)| w.as_str()).collect();
            Err((
                None,
                ErrorKind::Layout(format!("several output layer candidates: {}", names.join(", "))),
            ))
        }
    }
}
