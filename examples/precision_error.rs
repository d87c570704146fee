//! The output error of bf16 and int8 execution against fp32 on the
//! built-in PTB models (full and ISS-compacted), over whole sequences:
//! `cargo run --release --example precision_error [MODEL]`.

use issbench::checkpoint::open_model;
use issbench::exec::{Backend, Executor, RnnExecutor};
use issbench::iss::{DEFAULT_THRESHOLD, analyze, compact_with};
use issbench::model::Inputs;
use issbench::precision::Precision;

fn main() {
    let name = std::env::args().nth(1).unwrap_or_else(|| "ptb-iss".into());
    let full = open_model(&name, &Default::default()).expect("a model");
    let report = analyze(&full, DEFAULT_THRESHOLD);
    let compacted = compact_with(&full, &report, false).expect("compacts").model;
    for (what, model) in [("full", &full), ("iss", &compacted)] {
        for head in [false, true] {
            for (seq, batch) in [(30, 1), (30, 10)] {
                let layers_only = !head;
                let inputs = if layers_only {
                    Inputs::random_for(None, model.input_size(), seq, batch, 1)
                } else {
                    Inputs::random(model, seq, batch, 1)
                };
                let mut fp32 = RnnExecutor::prepare(model, Backend::Packed, layers_only, "x");
                let want = fp32.run(&inputs).unwrap().to_vec();
                let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
                for p in [Precision::Bf16, Precision::Int8] {
                    let mut e = RnnExecutor::prepare_at(model, Backend::Packed, p, layers_only, "x").unwrap();
                    let got = e.run(&inputs).unwrap();
                    let abs = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                    println!("{what:4} head={head:5} b{batch:<2} s{seq} {p}: max abs {abs:.3e} (outputs up to {scale:.3})");
                }
            }
        }
    }
}
