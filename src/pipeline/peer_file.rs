//! The user's own ONNX file as the ONNX Runtime peer's model: when a
//! dense point's source is an `.onnx` file that computes what the point
//! times (with its head; or layers only, for a file with neither
//! embedding nor head), the peer's `ort-dense` row runs that exact file
//! instead of issbench's export. The peer first runs the file on a small
//! input and its output must agree with issbench's dense model's (relative
//! error at most [`DEFAULT_TOLERANCE`]); the row's `verify_max_rel` is
//! that agreement, and its backend says `user-file`.

use std::path::{Path, PathBuf};

use super::{Point, Source};
use crate::checkpoint::{Format, detect_format, is_checkpoint_path, onnx};
use crate::iss::DEFAULT_TOLERANCE;
use crate::mode::Mode;
use crate::model::{Inputs, Model, reference_forward};
use crate::peer::{PeerCheck, write_npy};

/// A user's ONNX file and how to feed it.
pub(super) struct UserFile {
    pub path: PathBuf,
    pub io: onnx::Io,
}

/// The ONNX file `point`'s `ort-dense` row runs, if it is to run one
/// (`None`: issbench's export), or why that file cannot run this point.
pub(super) fn user_file(point: &Point) -> Option<Result<UserFile, String>> {
    let Source::Named(name, load) = &point.source else { return None };
    if point.mode != Mode::Dense || !is_checkpoint_path(name) {
        return None;
    }
    let path = Path::new(name);
    if load.format.map_or_else(|| detect_format(path).ok(), Some) != Some(Format::Onnx) {
        return None;
    }
    let io = match onnx::io(path) {
        Ok(io) => io,
        Err(e) => return Some(Err(e.to_string())),
    };
    // A layers-only point times less than a file with an embedding or head computes.
    if !point.head && (io.embedding || io.head) {
        return None;
    }
    let (seq, batch) = fixed_seq_batch(&io);
    let (want_seq, want_batch) = (seq.unwrap_or(point.seq), batch.unwrap_or(point.batch));
    if (want_seq, want_batch) != (point.seq, point.batch) {
        return Some(Err(format!(
            "{}: its input '{}' has a fixed {} (seq {want_seq}, batch {want_batch}); this point is seq {}, batch {} (export with dynamic axes to time other shapes)",
            path.display(),
            io.input.name,
            if io.input.batch_major { "[batch, seq]" } else { "[seq, batch]" },
            point.seq,
            point.batch
        )));
    }
    Some(Ok(UserFile {
        path: path.to_path_buf(),
        io,
    }))
}

/// The sequence length and batch size the file's input fixes, if it does.
fn fixed_seq_batch(io: &onnx::Io) -> (Option<usize>, Option<usize>) {
    let dim = |k: usize| io.input_dims.get(k).copied().flatten();
    if io.input.batch_major { (dim(1), dim(0)) } else { (dim(0), dim(1)) }
}

/// Writes, as `prefix.input.npy` and `prefix.expected.npy`, a check input
/// for `file` (at its fixed shape, else 4 steps of 2 sequences) and what
/// issbench's `model` computes for it, both in the file's layouts.
pub(super) fn write_check(model: &Model, file: &UserFile, point: &Point, prefix: &Path) -> Result<PeerCheck, String> {
    let (seq, batch) = match fixed_seq_batch(&file.io) {
        (Some(s), Some(b)) => (s, b),
        _ => (point.seq.min(4), point.batch.min(2)),
    };
    let inputs = Inputs::random_for(model.embedding().map(|e| e.vocab()), model.input_size(), seq, batch, 7);
    let expected = reference_forward(model, &inputs).map_err(|e| e.to_string())?;
    let out = expected.len() / (seq * batch);
    let (input_path, expected_path) = (prefix.with_extension("input.npy"), prefix.with_extension("expected.npy"));
    let io = &file.io;
    // Element (t, b) of a [seq, batch, width] array, at its place in the file's layout.
    let reorder = |values: &[u8], width: usize, item: usize, batch_major: bool| -> Vec<u8> {
        if !batch_major {
            return values.to_vec();
        }
        let mut outv = Vec::with_capacity(values.len());
        for b in 0..batch {
            for t in 0..seq {
                let at = (t * batch + b) * width * item;
                outv.extend_from_slice(&values[at..at + width * item]);
            }
        }
        outv
    };
    let shape = |width: Option<usize>, batch_major: bool| -> Vec<usize> {
        let mut s = if batch_major { vec![batch, seq] } else { vec![seq, batch] };
        s.extend(width);
        s
    };
    let written = match &inputs {
        Inputs::Tokens { ids, .. } => {
            let (descr, bytes): (&str, Vec<u8>) = if io.input_type == "int32" {
                ("<i4", ids.iter().flat_map(|&i| (i as i32).to_le_bytes()).collect())
            } else {
                ("<i8", ids.iter().flat_map(|&i| (i as i64).to_le_bytes()).collect())
            };
            let item = if descr == "<i4" { 4 } else { 8 };
            write_npy(
                &input_path,
                descr,
                &shape(None, io.input.batch_major),
                &reorder(&bytes, 1, item, io.input.batch_major),
            )
        }
        Inputs::Features { values, width, .. } => {
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            write_npy(
                &input_path,
                "<f4",
                &shape(Some(*width), io.input.batch_major),
                &reorder(&bytes, *width, 4, io.input.batch_major),
            )
        }
    }
    .and_then(|_| {
        let bytes: Vec<u8> = expected.iter().flat_map(|v| v.to_le_bytes()).collect();
        write_npy(
            &expected_path,
            "<f4",
            &shape(Some(out), io.output_batch_major),
            &reorder(&bytes, out, 4, io.output_batch_major),
        )
    });
    written.map_err(|e| format!("{}: {e}", input_path.display()))?;
    Ok(PeerCheck {
        input: input_path,
        expected: expected_path,
        output: io.output.clone(),
    })
}

/// Whether the peer's output on the user's file agrees with issbench's.
pub(super) fn agrees(file: &UserFile, max_rel: f64) -> Result<(), String> {
    if max_rel <= DEFAULT_TOLERANCE {
        Ok(())
    } else {
        Err(format!(
            "{}: its outputs differ from issbench's on the check input (max relative error {max_rel:.3e} > {DEFAULT_TOLERANCE:e})",
            file.path.display()
        ))
    }
}
