//! Writing a model as safetensors with PyTorch names, so that a compacted
//! model can be loaded back by PyTorch (and by issbench).
//!
//! - Every layer the same width: `weight_ih_lK`, `weight_hh_lK`,
//!   `bias_ih_lK` (the folded bias), `bias_hh_lK` (zeros): loads with
//!   `nn.LSTM(input, kept, num_layers).load_state_dict(...)`.
//! - Widths differ: one single-layer `nn.LSTM` per layer, `lstmK.weight_ih_l0`
//!   and so on, loadable into `nn.LSTM(in_K, kept_K)` after stripping `lstmK.`.
//!
//! The embedding is `embedding.weight` and the head `head.weight` /
//! `head.bias` (load the LSTM part with `strict=False`, or filter the keys).

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use super::{CheckpointError, ErrorKind};
use crate::model::Model;

/// `(name, shape, values)` of every tensor of `model` under PyTorch names.
pub fn torch_names(model: &Model) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let uniform = model.layers().windows(2).all(|w| w[0].hidden() == w[1].hidden());
    let mut out = Vec::new();
    if let Some(e) = model.embedding() {
        out.push(("embedding.weight".to_string(), vec![e.vocab(), e.dim()], e.table().to_vec()));
    }
    for (k, l) in model.layers().iter().enumerate() {
        let (prefix, suffix) = if uniform { (String::new(), k) } else { (format!("lstm{k}."), 0) };
        let g4 = 4 * l.hidden();
        out.push((format!("{prefix}weight_ih_l{suffix}"), vec![g4, l.input()], l.w_ih().to_vec()));
        out.push((format!("{prefix}weight_hh_l{suffix}"), vec![g4, l.hidden()], l.w_hh().to_vec()));
        out.push((format!("{prefix}bias_ih_l{suffix}"), vec![g4], l.bias().to_vec()));
        out.push((format!("{prefix}bias_hh_l{suffix}"), vec![g4], vec![0.0; g4]));
    }
    if let Some(h) = model.head() {
        out.push(("head.weight".to_string(), vec![h.output(), h.input()], h.weight().to_vec()));
        out.push(("head.bias".to_string(), vec![h.output()], h.bias().to_vec()));
    }
    out
}

/// Writes `model` to `path` as safetensors ([`torch_names`]), with
/// `metadata` in the header. Written to a temporary file and renamed, so an
/// interrupted write never leaves a partial file under `path`.
pub fn save_safetensors(model: &Model, path: &Path, metadata: HashMap<String, String>) -> Result<(), CheckpointError> {
    let tensors = torch_names(model);
    let views: Vec<(String, ::safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(name, shape, values)| {
            let bytes: &[u8] = bytemuck_f32(values);
            let view = ::safetensors::tensor::TensorView::new(::safetensors::Dtype::F32, shape.clone(), bytes)
                .map_err(|e| CheckpointError::tensor(path, name, ErrorKind::Corrupt(e.to_string())))?;
            Ok((name.clone(), view))
        })
        .collect::<Result<_, CheckpointError>>()?;
    let bytes =
        ::safetensors::serialize(views, Some(metadata)).map_err(|e| CheckpointError::new(path, ErrorKind::Corrupt(e.to_string())))?;
    write_atomically(path, &bytes).map_err(|e| CheckpointError::new(path, ErrorKind::Write(e)))
}

/// Writes a compaction of the model read from `source` to `path`
/// ([`save_safetensors`]); the header records the source, the threshold,
/// the full and kept sizes and the kept unit indices.
pub fn save_compacted(verified: &crate::iss::Verified, source: &Path, path: &Path) -> Result<(), CheckpointError> {
    let (report, compacted) = (&verified.report, &verified.compacted);
    let sizes = |s: Vec<usize>| crate::model::sizes_label(&s);
    let metadata = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("issbench_version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
        ("source".to_string(), source.display().to_string()),
        ("full_hidden".to_string(), sizes(report.full_sizes())),
        ("kept_hidden".to_string(), sizes(report.kept_sizes(compacted.shrink_output))),
        ("threshold".to_string(), report.threshold().to_string()),
        (
            "kept_units".to_string(),
            serde_json::to_string(&compacted.kept).expect("lists of numbers serialise"),
        ),
    ]);
    save_safetensors(&compacted.model, path, metadata)
}

/// The bytes of an f32 slice (little-endian machines only, which is all
/// issbench runs on; checked at compile time).
fn bytemuck_f32(values: &[f32]) -> &[u8] {
    const _: () = assert!(cfg!(target_endian = "little"));
    // SAFETY: f32 has no padding and any byte is a valid u8; the length is exact.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), std::mem::size_of_val(values)) }
}

/// Writes `bytes` to `path` through a temporary file in the same folder,
/// synced and renamed into place.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
