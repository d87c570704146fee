//! The LSTM cell update on its own (`lstm_cell_update_blocks`, one batch
//! row), in hidden units per second, for the compacted PTB widths (373,
//! 315) and the full one (1500). Each recurrent step runs it once per batch
//! row; at batch 10 it was a twelfth of the compacted model's forward pass
//! before the AVX-512 path stopped copying gate lanes one at a time.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use issbench::kernels::activations::lstm_cell_update_blocks;
use issbench::model::synthetic::SplitMix64;
use std::hint::black_box;
use std::time::Duration;

fn bench_cell(c: &mut Criterion) {
    let mut group = c.benchmark_group("cell_update");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for units in [315, 373, 1500] {
        let mut rng = SplitMix64::new(units as u64);
        let gates: Vec<f32> = (0..4 * units).map(|_| rng.uniform(-4.0, 4.0)).collect();
        let (mut cell, mut hidden) = (vec![0.5f32; units], vec![0.0f32; units]);
        group.throughput(Throughput::Elements(units as u64));
        group.bench_function(BenchmarkId::from_parameter(units), |bench| {
            bench.iter(|| lstm_cell_update_blocks(black_box(&gates), &mut cell, &mut hidden))
        });
    }
    group.finish();
}

/// Criterion with the suite's bundled font registered, for its charts.
fn config() -> Criterion {
    issbench::report::charts::register_font();
    Criterion::default()
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_cell
}
criterion_main!(benches);
