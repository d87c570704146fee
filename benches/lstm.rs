//! Whole forward passes of the LSTM stack: `lstm/<model>/<mode>/b<batch>`.
//!
//! The issue-2 goal lives here: `lstm/ptb-large/dense/b10` (LSTM layers only,
//! 30 steps, all threads) against ONNX Runtime's CPU LSTM on the same shapes
//! (`tools/ort_lstm_baseline.py`).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use issbench::exec::{Backend, Dense, Executor};
use issbench::model::Inputs;
use issbench::model::synthetic::SynthSpec;
use std::time::Duration;

const SEQ: usize = 30;

fn bench_lstm(c: &mut Criterion) {
    let mut group = c.benchmark_group("lstm");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for name in ["ptb-large", "ptb-medium"] {
        let model = SynthSpec::builtin(name)
            .expect("built-in")
            .build()
            .expect("valid spec")
            .layers_only();
        for batch in [1, 10] {
            for backend in [Backend::Packed, Backend::Matrixmultiply] {
                let mut exec = Dense::prepare(&model, backend, true, "dense");
                let inputs = Inputs::random(&model, SEQ, batch, 1);
                group.throughput(Throughput::Elements((2 * model.lstm_macs_per_step() * batch * SEQ) as u64));
                let suffix = if backend == Backend::Packed { "" } else { "-mm" };
                group.bench_function(format!("{name}/dense{suffix}/b{batch}"), |b| {
                    b.iter(|| exec.run(&inputs).expect("inputs fit").len())
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench_lstm);
criterion_main!(benches);
