//! Whole forward passes of the LSTM stack (layers only, 30 steps, all
//! threads): `lstm/<model>/<mode>/b<batch>`.
//!
//! `ptb-iss/dense` is the full 1500/1500 model with its zeros, `ptb-iss/iss`
//! the compacted 373/315 model; their ratio is the measured ISS speedup
//! (ideal 9.83x). `-mm` marks the matrixmultiply backend. The peer is ONNX
//! Runtime's CPU LSTM on the same shapes (`tools/ort_lstm_baseline.py`).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use issbench::exec::{Backend, Executor, LstmExecutor};
use issbench::iss::{DEFAULT_THRESHOLD, analyze, compact};
use issbench::model::synthetic::SynthSpec;
use issbench::model::{Inputs, Model};
use std::time::Duration;

const SEQ: usize = 30;

fn bench_model(c: &mut Criterion, name: &str, mode: &str, model: &Model, backends: &[Backend]) {
    let mut group = c.benchmark_group("lstm");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for batch in [1, 10] {
        for &backend in backends {
            let mut exec = LstmExecutor::prepare(model, backend, true, mode);
            let inputs = Inputs::random(model, SEQ, batch, 1);
            group.throughput(Throughput::Elements((2 * model.lstm_macs_per_step() * batch * SEQ) as u64));
            let suffix = if backend == Backend::Packed { "" } else { "-mm" };
            group.bench_function(format!("{name}/{mode}{suffix}/b{batch}"), |b| {
                b.iter(|| exec.run(&inputs).expect("inputs fit").len())
            });
        }
    }
    group.finish();
}

fn bench_lstm(c: &mut Criterion) {
    let full = SynthSpec::builtin("ptb-iss").expect("built-in").build().expect("valid spec");
    let compacted = compact(&full, &analyze(&full, DEFAULT_THRESHOLD))
        .expect("planted components are removable")
        .model;
    bench_model(
        c,
        "ptb-iss",
        "dense",
        &full.layers_only(),
        &[Backend::Packed, Backend::Matrixmultiply],
    );
    bench_model(
        c,
        "ptb-iss",
        "iss",
        &compacted.layers_only(),
        &[Backend::Packed, Backend::Matrixmultiply],
    );
}

criterion_group!(benches, bench_lstm);
criterion_main!(benches);
