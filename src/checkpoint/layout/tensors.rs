//! The tensors a layout builds from: lookup by name with shape checks,
//! the role each tensor played, and the conversions every layout shares
//! (transposes, gate reordering).

use std::collections::HashMap;

use super::{BuildError, TensorUse};
use crate::checkpoint::{ErrorKind, RawTensor};

/// Tensors by name, recording which were used and converted.
pub(super) struct Tensors<'a> {
    pub(super) all: &'a [RawTensor],
    by_name: HashMap<&'a str, &'a RawTensor>,
    roles: HashMap<String, String>,
    pub(super) notes: Vec<String>,
}

impl<'a> Tensors<'a> {
    pub(super) fn new(all: &'a [RawTensor]) -> Self {
        Tensors {
            all,
            by_name: all.iter().map(|t| (t.name.as_str(), t)).collect(),
            roles: HashMap::new(),
            notes: Vec::new(),
        }
    }
    pub(super) fn has(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }
    pub(super) fn shape(&self, name: &str) -> Result<&'a [usize], BuildError> {
        self.by_name.get(name).map(|t| t.shape.as_slice()).ok_or_else(|| {
            (
                Some(name.to_string()),
                ErrorKind::Missing("needed by the layout but not in the file".into()),
            )
        })
    }
    /// The values of `name`, which must have shape `want`.
    pub(super) fn values(&mut self, name: &str, want: &[usize], role: &str) -> Result<Vec<f32>, BuildError> {
        let err = |e| (Some(name.to_string()), e);
        let t = *self
            .by_name
            .get(name)
            .ok_or_else(|| err(ErrorKind::Missing("needed by the layout but not in the file".into())))?;
        if t.shape != want {
            return Err(err(ErrorKind::Shape(format!(
                "{role} should be {want:?}, the file has {:?}",
                t.shape
            ))));
        }
        let (values, note) = t.to_f32().map_err(err)?;
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(err(ErrorKind::Corrupt(format!("non-finite value {} at index {i}", values[i]))));
        }
        self.notes.extend(note);
        self.roles.insert(name.to_string(), role.to_string());
        Ok(values)
    }
    pub(super) fn uses(&self) -> Vec<TensorUse> {
        self.all
            .iter()
            .map(|t| TensorUse {
                name: t.name.clone(),
                shape: t.shape.clone(),
                dtype: t.dtype.name().to_string(),
                role: self.roles.get(&t.name).cloned().unwrap_or_else(|| "ignored".into()),
            })
            .collect()
    }
}

pub(super) use crate::model::transpose;

/// Reorders the gate blocks of `[G·h, width]` rows: canonical block `g`
/// (LSTM i, f, g, o; GRU r, z, n) takes the file's block `from[g]`.
pub(super) fn reorder_gates(src: &[f32], h: usize, width: usize, from: &[usize]) -> Vec<f32> {
    let block = h * width;
    from.iter().flat_map(|&b| src[b * block..(b + 1) * block].iter().copied()).collect()
}

pub(super) fn model_err(e: crate::model::ModelError) -> BuildError {
    (None, e.into())
}

/// The one tensor whose name ends with one of `suffixes`, if any.
pub(super) fn find_suffix<'a>(t: &Tensors<'a>, suffixes: &[&str]) -> Result<Option<String>, BuildError> {
    let found: Vec<&str> = t
        .all
        .iter()
        .map(|x| x.name.as_str())
        .filter(|n| suffixes.iter().any(|s| n.ends_with(s)))
        .collect();
    match found[..] {
        [] => Ok(None),
        [one] => Ok(Some(one.to_string())),
        _ => Err((None, ErrorKind::Layout(format!("several candidates: {}", found.join(", "))))),
    }
}

/// Sort key putting `lstm2.` before `lstm10.`: the text, then its number.
pub(super) fn natural_key(s: &str) -> (String, u64) {
    let trimmed = s.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    let digits = trimmed.len() - trimmed.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (text, num) = trimmed.split_at(trimmed.len() - digits);
    (text.to_string(), num.parse().unwrap_or(0))
}
