//! ISS analysis and compaction: the compacted model computes what the full
//! model computes, and nothing that matters is ever removed.

use issbench::iss::{Compacted, Consumer, IssError, analyze, compact, compact_with, verify, verify_within};
use issbench::model::synthetic::SynthSpec;
use issbench::model::{Cell, Inputs, Layer, LstmLayer, Model, reference_forward};
use proptest::prelude::*;

fn build(input: usize, layers: &[usize], vocab: Option<usize>, kept: Option<Vec<usize>>, seed: u64) -> Model {
    SynthSpec {
        name: "t".into(),
        input,
        layers: layers.to_vec(),
        vocab,
        seed,
        kept,
        ..Default::default()
    }
    .build()
    .unwrap()
}

/// Largest |a - b| relative to the largest |b|.
fn rel_error(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, &v| m.max(v.abs() as f64)).max(1e-30);
    a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).abs()).fold(0.0, f64::max) / scale
}

/// Rebuilds `model` with `edit(layer index, w_ih, w_hh)` applied to each layer.
fn edit_layers(model: &Model, edit: impl Fn(usize, &mut Vec<f32>, &mut Vec<f32>)) -> Model {
    let layers = model
        .layers()
        .iter()
        .enumerate()
        .map(|(l, layer)| {
            let layer = layer.fw();
            let (mut wi, mut wh) = (layer.w_ih().to_vec(), layer.w_hh().to_vec());
            edit(l, &mut wi, &mut wh);
            LstmLayer::new("l", layer.input(), layer.hidden(), wi, wh, layer.bias().to_vec()).unwrap()
        })
        .collect::<Vec<LstmLayer>>();
    Model::new(model.name(), model.embedding().cloned(), layers, model.head().cloned()).unwrap()
}

fn shape_strategy() -> impl Strategy<Value = (usize, Vec<(usize, usize)>, bool, u64, f32)> {
    (
        1usize..10,
        prop::collection::vec((1usize..12, 0usize..12), 1..=4),
        any::<bool>(),
        any::<u64>(),
        prop::sample::select(vec![0.0f32, 1e-6, 1e-4]),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Random shapes, 1–4 layers, random planted components and thresholds:
    /// the compacted model's outputs equal the full model's within 1e-5.
    #[test]
    fn compaction_is_exact((input, dims, head, seed, threshold) in shape_strategy()) {
        let hidden: Vec<usize> = dims.iter().map(|d| d.0).collect();
        let last = hidden.len() - 1;
        // Keep 1..=h units; the last layer only loses units when it has a consumer.
        let kept: Vec<usize> = dims.iter().enumerate().map(|(l, &(h, r))| if l == last && !head { h } else { 1 + r % h }).collect();
        let model = build(input, &hidden, head.then_some(7), Some(kept.clone()), seed);
        let report = analyze(&model, threshold);
        let compacted = compact(&model, &report).unwrap();
        // Planted units are found (random weights are never all below 1e-4).
        prop_assert_eq!(compacted.model.hidden_sizes(), kept);
        let inputs = Inputs::random(&model, 3, 2, seed ^ 1);
        let want = reference_forward(&model, &inputs).unwrap();
        let got = reference_forward(&compacted.model, &inputs).unwrap();
        let err = rel_error(&got, &want);
        prop_assert!(err <= 1e-5, "relative error {err:e}");
        // The fast path agrees too.
        let e = verify_within(&model, &compacted, &inputs, 1e-4).unwrap();
        prop_assert!(e.max_rel <= 1e-4);
    }

    /// Without planted components nothing is removable and compaction is the identity.
    #[test]
    fn nothing_removable_compacts_to_itself((input, dims, head, seed, threshold) in shape_strategy()) {
        let hidden: Vec<usize> = dims.iter().map(|d| d.0).collect();
        let model = build(input, &hidden, head.then_some(5), None, seed);
        let report = analyze(&model, threshold);
        prop_assert!(report.layers().iter().all(|l| l.removable.is_empty()));
        let compacted = compact(&model, &report).unwrap();
        prop_assert_eq!(compacted.model.layers(), model.layers());
        prop_assert_eq!(compacted.model.head(), model.head());
        prop_assert!((report.ideal_speedup(false) - 1.0).abs() < 1e-12);
    }

    /// A unit whose incoming weights are zero but whose outgoing weights are
    /// not is reported as partly zero and kept.
    #[test]
    fn partly_zero_components_are_never_removed((input, dims, _head, seed, threshold) in shape_strategy()) {
        let hidden: Vec<usize> = dims.iter().map(|d| d.0).collect();
        let model = build(input, &hidden, Some(4), None, seed);
        // One layer gets a unit with zero incoming weights (zeroing one unit
        // per layer could zero a whole consumer column of the layer below).
        let target = seed as usize % hidden.len();
        let victim = (seed >> 8) as usize % hidden[target];
        let model = edit_layers(&model, |l, wi, wh| {
            if l != target {
                return;
            }
            let (h, k) = (hidden[l], victim);
            let n_in = wi.len() / (4 * h);
            for g in 0..4 {
                wi[(g * h + k) * n_in..(g * h + k + 1) * n_in].fill(0.0);
                wh[(g * h + k) * h..(g * h + k + 1) * h].fill(0.0);
            }
        });
        let report = analyze(&model, threshold);
        let layer = &report.layers()[target];
        prop_assert!(layer.partly_zero.contains(&victim), "layer {target}: {:?}", layer.partly_zero);
        prop_assert!(!layer.removable.contains(&victim));
        prop_assert!(layer.incoming_norm[victim] == 0.0);
        prop_assert!(layer.outgoing_norm[victim] > 0.0);
        let compacted = compact(&model, &report).unwrap();
        prop_assert_eq!(compacted.model.hidden_sizes(), hidden);
    }
}

#[test]
fn a_report_from_another_model_cannot_remove_live_units() {
    let planted = build(5, &[8, 6], Some(9), Some(vec![3, 2]), 11);
    let dense = build(5, &[8, 6], Some(9), None, 11);
    let report = analyze(&planted, 0.0);
    match compact(&dense, &report) {
        Err(IssError::NotRemovable { layer, value, .. }) if layer == "layer 0" => assert!(value != 0.0),
        other => panic!("expected NotRemovable, got {other:?}"),
    }
    let other_shape = build(5, &[8, 7], Some(9), None, 11);
    assert!(matches!(compact(&other_shape, &report), Err(IssError::ReportMismatch(_))));
}

#[test]
fn output_layer_is_shrunk_only_on_request() {
    // No head: the last layer's units are the model's output.
    let model = build(4, &[6, 5], None, None, 3);
    let dead = 2;
    let model = edit_layers(&model, |l, wi, wh| {
        if l == 1 {
            let h = 5;
            for row in wh.chunks_exact_mut(h) {
                row[dead] = 0.0;
            }
            for g in 0..4 {
                wi[(g * h + dead) * 6..(g * h + dead + 1) * 6].fill(0.0);
            }
        }
    });
    let report = analyze(&model, 0.0);
    assert_eq!(report.layers()[1].consumer, Consumer::Output);
    assert_eq!(report.layers()[1].removable, vec![dead]);
    assert_eq!(compact(&model, &report).unwrap().model.hidden_sizes(), vec![6, 5]);
    let shrunk = compact_with(&model, &report, true).unwrap();
    assert_eq!(shrunk.model.hidden_sizes(), vec![6, 4]);
    assert_eq!(shrunk.kept[1], vec![0, 1, 3, 4]);
    let inputs = Inputs::random(&model, 4, 3, 5);
    let e = verify(&model, &shrunk, &inputs).unwrap();
    assert!(e.max_rel < 1e-5, "{e:?}");
}

#[test]
fn verification_catches_a_wrong_model() {
    let model = build(5, &[8, 6], Some(9), Some(vec![3, 2]), 4);
    let report = analyze(&model, 0.0);
    let good = compact(&model, &report).unwrap();
    let wrong = Compacted {
        model: build(5, &[3, 2], Some(9), None, 99),
        ..good.clone()
    };
    let inputs = Inputs::random(&model, 3, 2, 1);
    assert!(verify_within(&model, &good, &inputs, 1e-5).is_ok());
    match verify_within(&model, &wrong, &inputs, 1e-5) {
        Err(IssError::NotEquivalent { max_rel, .. }) => assert!(max_rel > 1e-3),
        other => panic!("expected NotEquivalent, got {other:?}"),
    }
}

#[test]
fn report_counts_and_classification() {
    let model = build(3, &[4, 3], Some(6), Some(vec![2, 1]), 8);
    let report = analyze(&model, 0.0);
    let l0 = &report.layers()[0];
    assert_eq!((l0.removable.len(), l0.fully_zero.len(), l0.consumer), (2, 2, Consumer::NextLayer));
    assert_eq!(report.layers()[1].consumer, Consumer::Head);
    for &k in &l0.removable {
        assert_eq!((l0.incoming_norm[k], l0.outgoing_norm[k]), (0.0, 0.0));
    }
    assert_eq!(report.kept_sizes(false), vec![2, 1]);
    let (full, kept) = (report.cost_full(), report.cost_kept(false));
    assert_eq!(full.lstm_macs, 4 * 4 * (3 + 4) + 4 * 3 * (4 + 3));
    assert_eq!(kept.lstm_macs, 4 * 2 * (3 + 2) + 4 * (2 + 1));
    assert_eq!(full.macs_with_head, full.lstm_macs + 6 * 3);
    assert_eq!(kept.macs_with_head, kept.lstm_macs + 6);
    let compacted = compact(&model, &report).unwrap();
    assert_eq!(compacted.model.lstm_macs_per_step(), kept.lstm_macs);
    assert_eq!(compacted.model.lstm_params(), kept.lstm_params);
}

#[test]
fn ptb_iss_has_the_papers_shape_and_ideal_speedup() {
    let model = SynthSpec::builtin("ptb-iss").unwrap().build().unwrap();
    let report = analyze(&model, issbench::iss::DEFAULT_THRESHOLD);
    assert_eq!(report.kept_sizes(false), vec![373, 315]);
    // 4·1500·3000·2 / (4·373·1873 + 4·315·688) = 9.83
    assert!(
        (report.ideal_speedup(false) - 9.832).abs() < 0.001,
        "{}",
        report.ideal_speedup(false)
    );
    // Biases of removed units are left nonzero, as ISS training leaves them.
    let removed = report.layers()[0].removable[0];
    assert!(model.layers()[0].fw().bias()[removed] != 0.0);
}

/// Every cell kind, one or two directions.
fn cell_strategy() -> impl Strategy<Value = (Cell, bool)> {
    let cells = vec![
        Cell::Lstm,
        Cell::Gru { reset_after: true },
        Cell::Gru { reset_after: false },
        Cell::Rhn { depth: 1 },
        Cell::Rhn { depth: 3 },
    ];
    (prop::sample::select(cells), any::<bool>())
}

fn build_cell(
    cell: Cell,
    bidirectional: bool,
    input: usize,
    layers: &[usize],
    vocab: Option<usize>,
    kept: Option<Vec<usize>>,
    seed: u64,
) -> Model {
    SynthSpec {
        name: "t".into(),
        input,
        layers: layers.to_vec(),
        vocab,
        seed,
        kept,
        cell,
        bidirectional,
        tied: false,
        logits: None,
    }
    .build()
    .unwrap()
}

/// `model` with every incoming row of unit `unit` in direction `target`
/// (a flat index over layers and directions) set to zero. Every row block
/// of every cell is `hidden` rows, so unit k owns the rows r with r % h == k.
fn zero_incoming(model: &Model, target: usize, unit: usize) -> Model {
    let mut index = 0;
    let layers: Vec<Layer> = model
        .layers()
        .iter()
        .map(|layer| {
            let mut dirs = layer.directions().map(|(_, d)| {
                let hit = index == target;
                index += 1;
                if !hit {
                    return d.clone();
                }
                let h = d.hidden();
                let (mut wi, mut wh) = (d.w_ih().to_vec(), d.w_hh().to_vec());
                for (w, cols) in [(&mut wi, d.input()), (&mut wh, h)] {
                    for (r, row) in w.chunks_mut(cols).enumerate() {
                        if r % h == unit {
                            row.fill(0.0);
                        }
                    }
                }
                d.rebuilt("d", d.input(), h, wi, wh, d.bias().to_vec(), d.bias_hh().to_vec())
                    .unwrap()
            });
            let fw = dirs.next().unwrap();
            let bw = dirs.next();
            layer.with_directions("l", fw, bw).unwrap()
        })
        .collect();
    Model::new(model.name(), model.embedding().cloned(), layers, model.head().cloned()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// GRU (both resets), RHN and bidirectional stacks: planted units are
    /// found per direction and the compacted model computes the same.
    #[test]
    fn every_cell_compacts_exactly((cell, bi) in cell_strategy(), (input, dims, head, seed, threshold) in shape_strategy()) {
        let hidden: Vec<usize> = dims.iter().map(|d| d.0).collect();
        let last = hidden.len() - 1;
        let dirs = if bi { 2 } else { 1 };
        let kept: Vec<usize> = dims
            .iter()
            .enumerate()
            .flat_map(|(l, &(h, r))| (0..dirs).map(move |d| if l == last && !head { h } else { 1 + (r + d) % h }))
            .collect();
        let model = build_cell(cell, bi, input, &hidden, head.then_some(7), Some(kept.clone()), seed);
        let report = analyze(&model, threshold);
        prop_assert_eq!(report.layers().len(), hidden.len() * dirs);
        let compacted = compact(&model, &report).unwrap();
        prop_assert_eq!(compacted.model.hidden_sizes(), kept);
        prop_assert_eq!(compacted.model.cell(), Some(cell));
        prop_assert_eq!(compacted.model.is_bidirectional(), bi);
        let inputs = Inputs::random(&model, 3, 2, seed ^ 1);
        let want = reference_forward(&model, &inputs).unwrap();
        let got = reference_forward(&compacted.model, &inputs).unwrap();
        let err = rel_error(&got, &want);
        prop_assert!(err <= 1e-5, "{} bi {bi}: relative error {err:e}", cell.describe());
        let e = verify_within(&model, &compacted, &inputs, 1e-4).unwrap();
        prop_assert!(e.max_rel <= 1e-4);
    }

    /// Nothing planted: nothing removable, compaction is the identity.
    #[test]
    fn every_cell_without_components_compacts_to_itself((cell, bi) in cell_strategy(), (input, dims, head, seed, threshold) in shape_strategy()) {
        let hidden: Vec<usize> = dims.iter().map(|d| d.0).collect();
        let model = build_cell(cell, bi, input, &hidden, head.then_some(5), None, seed);
        let report = analyze(&model, threshold);
        prop_assert!(report.layers().iter().all(|l| l.removable.is_empty()));
        let compacted = compact(&model, &report).unwrap();
        prop_assert_eq!(compacted.model.layers(), model.layers());
        prop_assert_eq!(compacted.model.head(), model.head());
    }

    /// A unit of any cell or direction with zero incoming weights but live
    /// outgoing ones is partly zero and kept.
    #[test]
    fn every_cell_keeps_partly_zero_units((cell, bi) in cell_strategy(), (input, dims, _head, seed, threshold) in shape_strategy()) {
        let hidden: Vec<usize> = dims.iter().map(|d| d.0).collect();
        let model = build_cell(cell, bi, input, &hidden, Some(4), None, seed);
        let sizes = model.hidden_sizes();
        let target = seed as usize % sizes.len();
        let victim = (seed >> 8) as usize % sizes[target];
        let model = zero_incoming(&model, target, victim);
        let report = analyze(&model, threshold);
        let layer = &report.layers()[target];
        prop_assert!(layer.partly_zero.contains(&victim), "{} bi {bi} direction {target}: {:?}", cell.describe(), layer.partly_zero);
        prop_assert!(!layer.removable.contains(&victim));
        prop_assert!(layer.incoming_norm[victim] == 0.0);
        let compacted = compact(&model, &report).unwrap();
        prop_assert_eq!(compacted.model.hidden_sizes(), sizes);
    }
}

/// A tied RHN (iss-rnns' PTB model): a removed unit takes its embedding
/// column, the first micro-layer's input column and the softmax column
/// with it, and the compacted model computes the same.
#[test]
fn a_tied_rhn_loses_its_embedding_columns_with_its_units() {
    for (depth, width, kept, seed) in [(1, 5, 3, 1), (3, 12, 7, 2), (10, 9, 1, 3)] {
        let model = SynthSpec {
            name: "rhn".into(),
            input: width,
            layers: vec![width],
            vocab: Some(13),
            seed,
            kept: Some(vec![kept]),
            cell: Cell::Rhn { depth },
            tied: true,
            ..Default::default()
        }
        .build()
        .unwrap();
        assert!(model.is_tied());
        let report = analyze(&model, 0.0);
        assert_eq!(report.layers()[0].removable.len(), width - kept);
        let compacted = compact(&model, &report).unwrap();
        let small = &compacted.model;
        assert!(small.is_tied(), "depth {depth}");
        assert_eq!(small.hidden_sizes(), vec![kept]);
        assert_eq!(small.embedding().unwrap().dim(), kept);
        assert_eq!(small.input_size(), kept);
        assert_eq!(small.embedding().unwrap().table(), small.head().unwrap().weight());
        let inputs = Inputs::random(&model, 4, 3, seed);
        let want = reference_forward(&model, &inputs).unwrap();
        let got = reference_forward(small, &inputs).unwrap();
        assert!(rel_error(&got, &want) <= 1e-5, "depth {depth}: {:e}", rel_error(&got, &want));
    }
}
