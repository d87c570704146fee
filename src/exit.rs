//! How the command line fails: its own errors, and the exit code of each.

use anyhow::Result;

use issbench::checkpoint::{overwrites_input, shadows_builtin};
use issbench::iss::IssError;
use issbench::report::Status;

/// A point that failed (exit code 1, or 2 when it was not equivalent).
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.reason())]
pub struct PointFailed(pub Status);

/// A sweep stopped by Ctrl-C before its end (exit code 130).
#[derive(Debug, thiserror::Error)]
#[error("interrupted: run the same command with --resume to finish the sweep")]
pub struct Interrupted;

/// An output that would overwrite the model it is made from.
#[derive(Debug, thiserror::Error)]
#[error("{}: is (or belongs to) the input checkpoint {}; write the output elsewhere", output.display(), input.display())]
struct OverwritesInput {
    input: std::path::PathBuf,
    output: std::path::PathBuf,
}

/// Refuses an output path that is the input checkpoint or one of its files.
pub fn check_output(input: &std::path::Path, output: &std::path::Path) -> Result<()> {
    if overwrites_input(input, output) {
        return Err(OverwritesInput {
            input: input.to_path_buf(),
            output: output.to_path_buf(),
        }
        .into());
    }
    Ok(())
}

/// Says so when a model name is both a file here and a built-in model.
pub fn note_shadowed(name: &str) {
    if shadows_builtin(name) {
        eprintln!(
            "issbench: note: '{name}' is a path here and also a built-in model; reading the path (write builtin:{name} for the built-in)"
        );
    }
}

/// 2 when a compacted (or pruned) model was not equivalent, 130 for an
/// interrupted sweep, else 1.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    let not_equivalent = e.chain().any(|c| {
        matches!(c.downcast_ref::<IssError>(), Some(IssError::NotEquivalent { .. }))
            || matches!(c.downcast_ref::<PointFailed>(), Some(PointFailed(Status::NotEquivalent(_))))
    });
    if not_equivalent {
        2
    } else if e.downcast_ref::<Interrupted>().is_some() {
        130
    } else {
        1
    }
}
