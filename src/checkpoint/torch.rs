//! `torch.save` archives (PyTorch 1.6 and later): a zip holding
//! `ARCHIVE/data.pkl` (the state dict, pickled) and one member
//! `ARCHIVE/data/KEY` per storage. The pickle is read by the crate's own
//! `pickle` module, which executes nothing.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use zip::ZipArchive;

use super::npz::{member_names, open_zip, read_member};
use super::pickle::{self, TensorRef, Value};
use super::{CheckpointError, DType, ErrorKind, RawTensor};

fn storage_dtype(storage_type: &str) -> DType {
    match storage_type {
        "FloatStorage" => DType::F32,
        "DoubleStorage" => DType::F64,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "IntStorage" => DType::I32,
        "LongStorage" => DType::I64,
        other => DType::Other(other.to_string()),
    }
}

/// Reads every tensor of a `torch.save` state dict, in the dict's order.
/// A checkpoint dict holding the state dict under `state_dict` or `model`
/// is accepted too.
pub fn read(path: &Path) -> Result<Vec<RawTensor>, CheckpointError> {
    read_keeping(path, &|_| true)
}

/// The names in the state dict, in its order (the pickle alone is read).
pub fn entry_names(path: &Path) -> Result<Vec<String>, CheckpointError> {
    let (_, _, entries) = open_state_dict(path)?;
    Ok(entries.into_iter().map(|(name, _)| name).collect())
}

/// An open `torch.save` archive: the zip, its root folder and the state
/// dict's entries.
type StateDict = (ZipArchive<File>, String, Vec<(String, TensorRef)>);

/// The archive, its root folder and the state dict's entries.
fn open_state_dict(path: &Path) -> Result<StateDict, CheckpointError> {
    let err = |e: ErrorKind| CheckpointError::new(path, e);
    let mut zip = open_zip(path)?;
    let pkl_name = member_names(&zip)
        .into_iter()
        .find(|n| n == "data.pkl" || n.ends_with("/data.pkl"))
        .ok_or_else(|| err(ErrorKind::Missing("data.pkl (not a torch.save archive)".into())))?;
    let pkl_index = zip.index_for_name(&pkl_name).expect("listed above");
    let (_, pkl) = read_member(&mut zip, pkl_index).map_err(err)?;
    let root = pkl_name.strip_suffix("data.pkl").unwrap_or_default().to_string();
    if let Some(i) = zip.index_for_name(&format!("{root}byteorder")) {
        let (_, order) = read_member(&mut zip, i).map_err(err)?;
        if order != b"little" {
            return Err(err(ErrorKind::Unsupported(format!(
                "byte order '{}'",
                String::from_utf8_lossy(&order)
            ))));
        }
    }
    let value = pickle::load(&pkl).map_err(err)?;
    let entries = state_dict_entries(value).map_err(err)?;
    Ok((zip, root, entries))
}

/// Reads the tensors of the state dict whose names `keep` accepts; of the
/// others only the name, shape and type (their storages are not inflated).
pub fn read_keeping(path: &Path, keep: &dyn Fn(&str) -> bool) -> Result<Vec<RawTensor>, CheckpointError> {
    let (mut zip, root, entries) = open_state_dict(path)?;
    let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
    let mut tensors = Vec::with_capacity(entries.len());
    for (name, t) in entries {
        if !keep(&name) {
            let dtype = storage_dtype(&t.storage_type);
            let shape = t
                .shape
                .iter()
                .map(|&d| usize::try_from(d).map_err(|_| ErrorKind::Shape(format!("dimension {d} is too large"))))
                .collect::<Result<Vec<_>, _>>()
                .and_then(|shape| RawTensor::unread(name.clone(), shape, dtype));
            let tensor = shape.map_err(|e| CheckpointError::tensor(path, &name, e))?;
            tensors.push(tensor);
            continue;
        }
        if !storages.contains_key(&t.storage_key) {
            let member = format!("{root}data/{}", t.storage_key);
            let index = zip
                .index_for_name(&member)
                .ok_or_else(|| CheckpointError::tensor(path, &name, ErrorKind::Missing(format!("storage member {member}"))))?;
            let (_, bytes) = read_member(&mut zip, index).map_err(|e| CheckpointError::tensor(path, &name, e))?;
            storages.insert(t.storage_key.clone(), bytes);
        }
        let tensor = materialize(&name, &t, &storages[&t.storage_key]).map_err(|e| CheckpointError::tensor(path, &name, e))?;
        tensors.push(tensor);
    }
    Ok(tensors)
}

/// The `(name, tensor)` pairs of the pickled state dict.
fn state_dict_entries(value: Value) -> Result<Vec<(String, TensorRef)>, ErrorKind> {
    let Value::Dict(dict) = value else {
        return Err(ErrorKind::Pickle(
            "the pickle does not hold a dict (a state dict is expected)".into(),
        ));
    };
    let pairs: Vec<_> = dict.items.chunks_exact(2).map(|kv| (kv[0].clone(), kv[1].clone())).collect();
    // A training checkpoint: {'state_dict': {...}, 'epoch': ...}.
    if !pairs.iter().any(|(_, v)| matches!(v, Value::Tensor(_)))
        && let Some((_, inner)) = pairs
            .iter()
            .find(|(k, v)| matches!(k, Value::Str(s) if s == "state_dict" || s == "model") && matches!(v, Value::Dict(_)))
    {
        return state_dict_entries(inner.clone());
    }
    Ok(pairs
        .into_iter()
        .filter_map(|(k, v)| match (k, v) {
            (Value::Str(k), Value::Tensor(t)) => Some((k, t)),
            _ => None,
        })
        .collect())
}

/// Copies a tensor view out of its storage into C order, after checking
/// that the view lies inside the storage.
fn materialize(name: &str, t: &TensorRef, storage: &[u8]) -> Result<RawTensor, ErrorKind> {
    let dtype = storage_dtype(&t.storage_type);
    let Some(item) = dtype.size() else {
        return Err(ErrorKind::DType(format!("storage type {} is not supported", t.storage_type)));
    };
    let stored = (storage.len() / item) as u64;
    if t.storage_numel > stored {
        return Err(ErrorKind::TooLarge {
            what: format!("storage {} ({} elements claimed)", t.storage_key, t.storage_numel),
            claimed: t.storage_numel as u128 * item as u128,
            available: storage.len() as u64,
        });
    }
    let numel = t.shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d));
    // Highest element index the view touches (none when it is empty).
    let last = t
        .shape
        .iter()
        .zip(&t.stride)
        .try_fold(t.offset, |acc, (&d, &s)| acc.checked_add(d.saturating_sub(1).checked_mul(s)?));
    match (numel, last) {
        (Some(n), Some(last)) if n == 0 || (last < stored && n <= stored) => {}
        _ => {
            return Err(ErrorKind::TooLarge {
                what: format!("view shape {:?} stride {:?} offset {}", t.shape, t.stride, t.offset),
                claimed: numel.map_or(u128::MAX, |n| n as u128 * item as u128),
                available: storage.len() as u64,
            });
        }
    }
    let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
    let numel = numel.expect("checked") as usize;
    if numel == 0 {
        return RawTensor::new(name.to_string(), shape, dtype, Vec::new());
    }
    // The usual case: a contiguous row-major view, one copy.
    let mut expected = 1u64;
    let contiguous = t.shape.iter().zip(&t.stride).rev().all(|(&d, &s)| {
        let ok = d <= 1 || s == expected;
        expected = expected.saturating_mul(d);
        ok
    });
    if contiguous {
        let start = t.offset as usize * item;
        return RawTensor::new(name.to_string(), shape, dtype, storage[start..start + numel * item].to_vec());
    }
    let mut data = Vec::with_capacity(numel * item);
    let mut index = vec![0u64; shape.len()];
    for _ in 0..numel {
        let e = t.offset + index.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<u64>();
        let at = e as usize * item;
        data.extend_from_slice(&storage[at..at + item]);
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            if index[axis] < t.shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    RawTensor::new(name.to_string(), shape, dtype, data)
}
