//! The exported ONNX graph computes what issbench computes: checked by
//! ONNX Runtime where a Python with onnxruntime is available
//! (ISSBENCH_PYTHON, else python3); skipped with the reason printed where
//! it is not.

use issbench::exec::{Backend, Executor, RnnExecutor};
use issbench::iss::{DEFAULT_THRESHOLD, analyze, compact};
use issbench::model::Inputs;
use issbench::model::synthetic::SynthSpec;
use issbench::onnx::export;
use issbench::peer::{OrtPeer, write_npy};
use std::io::Write;

#[test]
fn onnx_runtime_agrees_with_issbench_on_the_exported_models() {
    let peer = match OrtPeer::find() {
        Ok(p) => p,
        Err(why) => {
            // Straight to the stderr handle: the harness captures eprintln!.
            let _ = writeln!(std::io::stderr(), "SKIPPED (ONNX Runtime not available): {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let full = SynthSpec::builtin("tiny-iss").unwrap().build().unwrap();
    let compacted = compact(&full, &analyze(&full, DEFAULT_THRESHOLD)).unwrap().model;
    for (name, model) in [("full", &full), ("compacted", &compacted)] {
        for layers_only in [false, true] {
            let onnx = dir.path().join(format!("{name}-{layers_only}.onnx"));
            std::fs::write(&onnx, export(model, layers_only).unwrap()).unwrap();
            let view = if layers_only { model.layers_only() } else { model.clone() };
            let inputs = Inputs::random(&view, 7, 3, 11);
            let input = dir.path().join("input.npy");
            match &inputs {
                Inputs::Tokens { seq, batch, ids } => {
                    let raw: Vec<u8> = ids.iter().flat_map(|&t| (t as i64).to_le_bytes()).collect();
                    write_npy(&input, "<i8", &[*seq, *batch], &raw).unwrap();
                }
                Inputs::Features { seq, batch, width, values } => {
                    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                    write_npy(&input, "<f4", &[*seq, *batch, *width], &raw).unwrap();
                }
            }
            let out = RnnExecutor::prepare(&view, Backend::Packed, layers_only, "dense")
                .run(&inputs)
                .unwrap()
                .to_vec();
            let width = view.output_size(layers_only);
            let expected = dir.path().join("expected.npy");
            let raw: Vec<u8> = out.iter().flat_map(|v| v.to_le_bytes()).collect();
            write_npy(&expected, "<f4", &[7, 3, width], &raw).unwrap();
            let rel = peer
                .check(&onnx, &input, &expected, 1e-4)
                .unwrap_or_else(|e| panic!("{name} layers_only={layers_only}: {e}"));
            println!(
                "{name} layers_only={layers_only}: onnxruntime {} vs issbench max relative error {rel:e}",
                peer.version
            );
        }
    }
}
