//! Every executor and backend against the reference forward pass, to 1e-4
//! relative, on 1, 2 and 3 threads, with and without embedding and head;
//! every cell kind (LSTM, GRU with the reset after and before its product,
//! RHN) in one and two directions.

use issbench::exec::{Backend, Executor, RnnExecutor};
use issbench::mode::BlockShape;
use issbench::model::synthetic::SynthSpec;
use issbench::model::{Cell, Inputs, Model, reference_forward};

fn spec(input: usize, layers: &[usize], vocab: Option<usize>, seed: u64) -> Model {
    SynthSpec {
        name: "t".into(),
        input,
        layers: layers.to_vec(),
        vocab,
        seed,
        kept: None,
        ..Default::default()
    }
    .build()
    .unwrap()
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: output length");
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-3);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * scale.max(w.abs()),
            "{what}: output {i} = {g}, reference {w}"
        );
    }
}

fn models() -> Vec<Model> {
    vec![
        spec(1, &[1], None, 1),
        spec(3, &[5], None, 2),
        spec(7, &[13, 2, 29], Some(11), 3),
        spec(17, &[31, 33], Some(5), 4),
        spec(40, &[67, 37], None, 5),
        // Wide enough for the parallel and packed multi-panel paths.
        spec(130, &[97, 160], Some(300), 6),
    ]
}

#[test]
fn dense_matches_reference_forward() {
    for threads in [1, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        for model in models() {
            for (seq, batch) in [(1, 1), (3, 2), (5, 4), (4, 5), (2, 13), (6, 11)] {
                let inputs = Inputs::random(&model, seq, batch, 9);
                let want = reference_forward(&model, &inputs).unwrap();
                for backend in [Backend::Packed, Backend::Matrixmultiply] {
                    let mut exec = RnnExecutor::prepare(&model, backend, false, "dense");
                    let what = format!(
                        "{:?} threads {threads} hidden {:?} seq {seq} batch {batch}",
                        backend,
                        model.hidden_sizes()
                    );
                    // Twice: the second run reuses the buffers of the first.
                    for _ in 0..2 {
                        let got = pool.install(|| exec.run(&inputs).unwrap().to_vec());
                        assert_close(&got, &want, &what);
                    }
                }
            }
        }
    }
}

/// A model of `cell` in one or two directions.
fn cell_spec(cell: Cell, bidirectional: bool, input: usize, layers: &[usize], vocab: Option<usize>, seed: u64) -> Model {
    SynthSpec {
        name: "t".into(),
        input,
        layers: layers.to_vec(),
        vocab,
        seed,
        cell,
        bidirectional,
        ..Default::default()
    }
    .build()
    .unwrap()
}

#[test]
fn every_cell_and_direction_matches_the_reference_on_every_backend() {
    let cells = [
        Cell::Lstm,
        Cell::Gru { reset_after: true },
        Cell::Gru { reset_after: false },
        Cell::Rhn { depth: 1 },
        Cell::Rhn { depth: 3 },
    ];
    for cell in cells {
        for bidirectional in [false, true] {
            let models = [
                cell_spec(cell, bidirectional, 3, &[5], None, 2),
                cell_spec(cell, bidirectional, 7, &[13, 2, 33], Some(11), 3),
                // Wide enough for several blocks and the parallel paths.
                cell_spec(cell, bidirectional, 41, &[97, 40], Some(50), 6),
            ];
            for model in &models {
                for threads in [1, 2, 3] {
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                    for (seq, batch) in [(1, 1), (4, 3), (3, 13)] {
                        let inputs = Inputs::random(model, seq, batch, 9);
                        let want = reference_forward(model, &inputs).unwrap();
                        let backends = [
                            Backend::Packed,
                            Backend::Matrixmultiply,
                            Backend::Csr,
                            Backend::Bsr(BlockShape { rows: 4, cols: 3 }),
                        ];
                        for backend in backends {
                            let mut exec = RnnExecutor::prepare(model, backend, false, "dense");
                            let what = format!(
                                "{} {} {backend:?} threads {threads} hidden {:?} seq {seq} batch {batch}",
                                cell.describe(),
                                if bidirectional { "bidirectional" } else { "" },
                                model.hidden_sizes()
                            );
                            for _ in 0..2 {
                                let got = pool.install(|| exec.run(&inputs).unwrap().to_vec());
                                assert_close(&got, &want, &what);
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn layers_only_runs_the_lstm_stack_on_features() {
    let model = spec(7, &[13, 9], Some(11), 3);
    let stack = model.layers_only();
    let inputs = Inputs::random(&stack, 4, 3, 2);
    assert!(matches!(inputs, Inputs::Features { .. }));
    let want = reference_forward(&stack, &inputs).unwrap();
    let mut exec = RnnExecutor::prepare(&model, Backend::Packed, true, "dense");
    assert_close(exec.run(&inputs).unwrap(), &want, "layers only");
    assert_eq!(want.len(), 4 * 3 * 9);
}

#[test]
fn buffers_adapt_to_a_different_shape() {
    let model = spec(6, &[10, 8], None, 7);
    let mut exec = RnnExecutor::prepare(&model, Backend::Packed, false, "dense");
    for (seq, batch) in [(2, 3), (5, 1), (1, 7), (2, 3)] {
        let inputs = Inputs::random(&model, seq, batch, seq as u64);
        let want = reference_forward(&model, &inputs).unwrap();
        assert_close(exec.run(&inputs).unwrap(), &want, &format!("seq {seq} batch {batch}"));
    }
}

#[test]
fn mismatched_inputs_are_errors_not_panics() {
    let model = spec(6, &[10], Some(4), 7);
    let mut exec = RnnExecutor::prepare(&model, Backend::Packed, false, "dense");
    let bad_token = Inputs::Tokens {
        seq: 1,
        batch: 2,
        ids: vec![0, 4],
    };
    assert_eq!(
        exec.run(&bad_token).unwrap_err().to_string(),
        "inputs: token 4 is outside the vocabulary of 4"
    );
    let short = Inputs::Tokens {
        seq: 2,
        batch: 2,
        ids: vec![0, 1, 2],
    };
    assert!(
        exec.run(&short)
            .unwrap_err()
            .to_string()
            .contains("3 token ids for seq 2 x batch 2")
    );
    let wide = Inputs::Features {
        seq: 1,
        batch: 1,
        width: 5,
        values: vec![0.0; 5],
    };
    assert!(exec.run(&wide).unwrap_err().to_string().contains("the first layer takes width 6"));
    assert!(reference_forward(&model, &bad_token).is_err());
}

/// Long sequences through narrow layers, where the team cuts each input
/// projection into parts of rows (301 rows: parts of whole row blocks and
/// a short last one), give the reference's outputs, and the same bits on
/// 1, 2 and 3 threads: a row's sums do not depend on who computes them.
#[test]
fn projections_cut_by_rows_match_the_reference_and_every_team() {
    for cell in [Cell::Lstm, Cell::Gru { reset_after: true }, Cell::Rhn { depth: 2 }] {
        for bidirectional in [false, true] {
            // Projections above the one-thread bound (4Mi multiply-adds).
            let model = cell_spec(cell, bidirectional, 701, &[12, 14], None, 8);
            let inputs = Inputs::random(&model, 43, 7, 3);
            let want = reference_forward(&model, &inputs).unwrap();
            let mut first: Option<Vec<f32>> = None;
            for threads in [1, 2, 3] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let mut exec = RnnExecutor::prepare(&model, Backend::Packed, false, "dense");
                let got = pool.install(|| exec.run(&inputs).unwrap().to_vec());
                let what = format!("{} bidirectional {bidirectional} threads {threads}", cell.describe());
                assert_close(&got, &want, &what);
                match &first {
                    None => first = Some(got),
                    Some(f) => assert_eq!(&got, f, "{what}: differs from 1 thread"),
                }
            }
        }
    }
}
