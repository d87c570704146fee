//! Writing a model as safetensors under the names its framework loads, so
//! that a compacted model can be loaded back (and by issbench).
//!
//! - LSTM and GRU, PyTorch names. Every layer (and direction) the same
//!   width: `weight_ih_lK`, `weight_hh_lK`, `bias_ih_lK`, `bias_hh_lK`
//!   (`_reverse` for a backward direction): loads with `nn.LSTM` /
//!   `nn.GRU(input, kept, num_layers, bidirectional=...)`. An LSTM's bias
//!   is folded into `bias_ih` (`bias_hh` zeros); a GRU keeps both. Widths
//!   differ: one single-layer module per layer and direction,
//!   `lstmK.weight_ih_l0` or `gruK.weight_ih_l0` (`lstmK_reverse.` for a
//!   backward direction), each loadable after stripping its prefix.
//! - RHN, the names wenwei202/iss-rnns `rhn.py` gives it (no framework
//!   has an RHN module): `model/RHN0/{h,t}_i/Linear/Matrix` (micro-layer
//!   0's `[in + w, w]`, input rows first; the others `[w, w]`) and
//!   `.../Bias`.
//!
//! The embedding is `embedding.weight` and the head `head.weight` /
//! `head.bias` (load the recurrent part with `strict=False`, or filter the
//! keys). A tied RHN's head weight is its embedding and is not written
//! again (rhn.py has no `softmax_w` when tied), so it reads back tied.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use super::{CheckpointError, ErrorKind};
use crate::model::{Cell, Direction, Model, Recurrent};

/// `(name, shape, values)` of every tensor of `model` under its framework's
/// names (see the module documentation).
pub fn torch_names(model: &Model) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let widths: Vec<usize> = model.hidden_sizes();
    let uniform = widths.windows(2).all(|w| w[0] == w[1]);
    let mut out = Vec::new();
    if let Some(e) = model.embedding() {
        out.push(("embedding.weight".to_string(), vec![e.vocab(), e.dim()], e.table().to_vec()));
    }
    for (k, d, r) in model.directions() {
        let h = r.hidden();
        if let Cell::Rhn { depth } = r.cell() {
            out.extend(rhn_names(r, depth));
            continue;
        }
        let reverse = if d == Direction::Backward { "_reverse" } else { "" };
        let (prefix, suffix) = if uniform {
            (String::new(), format!("l{k}{reverse}"))
        } else {
            (format!("{}{k}{reverse}.", r.cell().name()), "l0".to_string())
        };
        let g = r.cell().recurrent_gates() * h;
        let bias_hh = if r.bias_hh().is_empty() {
            vec![0.0; g]
        } else {
            r.bias_hh().to_vec()
        };
        out.push((format!("{prefix}weight_ih_{suffix}"), vec![g, r.input()], r.w_ih().to_vec()));
        out.push((format!("{prefix}weight_hh_{suffix}"), vec![g, h], r.w_hh().to_vec()));
        out.push((format!("{prefix}bias_ih_{suffix}"), vec![g], r.bias().to_vec()));
        out.push((format!("{prefix}bias_hh_{suffix}"), vec![g], bias_hh));
    }
    let tied_rhn = model.is_tied() && matches!(model.cell(), Some(Cell::Rhn { .. }));
    if let Some(h) = model.head() {
        if !tied_rhn {
            out.push(("head.weight".to_string(), vec![h.output(), h.input()], h.weight().to_vec()));
        }
        out.push(("head.bias".to_string(), vec![h.output()], h.bias().to_vec()));
    }
    out
}

/// An RHN direction under `rhn.py`'s names: per micro-layer `i` and gate
/// (`h` for H, `t` for T) a `Matrix` of `[in + w, w]` (micro-layer 0: its
/// input rows, then its state rows) or `[w, w]`, transposed from the
/// canonical rows, and a `Bias` of `[w]`.
fn rhn_names(r: &Recurrent, depth: usize) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let (w, n_in) = (r.hidden(), r.input());
    let mut out = Vec::new();
    for i in 0..depth {
        for (g, gate) in ["h", "t"].into_iter().enumerate() {
            let with_x = i == 0;
            let rows = if with_x { n_in + w } else { w };
            let mut matrix = vec![0.0f32; rows * w];
            for unit in 0..w {
                if with_x {
                    let row = &r.w_ih()[(g * w + unit) * n_in..(g * w + unit + 1) * n_in];
                    for (c, &v) in row.iter().enumerate() {
                        matrix[c * w + unit] = v;
                    }
                }
                let base = if with_x { n_in } else { 0 };
                let rec = 2 * w * i + g * w + unit;
                for (c, &v) in r.w_hh()[rec * w..(rec + 1) * w].iter().enumerate() {
                    matrix[(base + c) * w + unit] = v;
                }
            }
            let bias = r.bias()[2 * w * i + g * w..2 * w * i + (g + 1) * w].to_vec();
            out.push((format!("model/RHN0/{gate}_{i}/Linear/Matrix"), vec![rows, w], matrix));
            out.push((format!("model/RHN0/{gate}_{i}/Linear/Bias"), vec![w], bias));
        }
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
