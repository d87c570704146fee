//! The LSTM executor at bf16 and int8 against a reference of the same
//! arithmetic (the same quantization of every product, with the fp32
//! cell update), on odd shapes and 1 to 3 threads; its results do not
//! depend on how the workers share the panels; and its error against the
//! fp32 reference forward stays within the precision's default tolerance.

use issbench::exec::{Backend, Executor, RnnExecutor};
use issbench::kernels::activations::lstm_cell_update;
use issbench::kernels::bf16::{Bf16PackedMatrix, bf16_gemm, bf16_gemm_bias};
use issbench::kernels::int8::{Int8PackedMatrix, int8_gemm, int8_gemm_bias};
use issbench::kernels::{MatMut, MatRef};
use issbench::model::synthetic::SynthSpec;
use issbench::model::{Inputs, Model, reference_forward};
use issbench::precision::Precision;

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

fn models() -> Vec<Model> {
    vec![
        spec(1, &[1], None, 1),
        spec(3, &[5], None, 2),
        spec(7, &[13, 2, 29], Some(11), 3),
        spec(40, &[67, 37], None, 5),
        spec(130, &[97, 160], Some(300), 6),
    ]
}

/// `C = bias + A · Wᵀ` (`W` row-major `[n, k]`) at `precision`, by the
/// kernels' plain (rayon) entry points: the whole `A` quantized at once.
/// A row-major weight and its shape `[n, k]`.
type Weight<'a> = (&'a [f32], usize, usize);

fn product(precision: Precision, a: &[f32], rows: usize, (w, n, k): Weight, bias: Option<&[f32]>, out: &mut [f32]) {
    let a = MatRef::row_major(a, rows, k);
    let mut c = MatMut::row_major(out, rows, n);
    match (precision, bias) {
        (Precision::Int8, Some(b)) => int8_gemm_bias(a, &Int8PackedMatrix::pack_transposed(w, n, k), b, &mut c),
        (Precision::Int8, None) => int8_gemm(a, &Int8PackedMatrix::pack_transposed(w, n, k), &mut c, true),
        (Precision::Bf16, Some(b)) => bf16_gemm_bias(a, &Bf16PackedMatrix::pack_transposed(w, n, k), b, &mut c),
        (Precision::Bf16, None) => bf16_gemm(a, &Bf16PackedMatrix::pack_transposed(w, n, k), &mut c, true),
        (Precision::Fp32, _) => unreachable!("the reduced precisions only"),
    }
}

/// The forward pass as the team runs it at `precision`: per layer the
/// input projection over all rows (one quantization of the whole `X`),
/// then per step the recurrent product (one quantization of `H_{t-1}`)
/// added to the step's gates, and the f32 cell update.
fn same_arithmetic(model: &Model, inputs: &Inputs, precision: Precision) -> Vec<f32> {
    let (seq, batch) = (inputs.seq(), inputs.batch());
    let rows = seq * batch;
    let mut x: Vec<f32> = (0..rows)
        .flat_map(|i| inputs.vector(model, i / batch, i % batch))
        .copied()
        .collect();
    for l in model.layers().iter().map(|l| l.fw()) {
        let (k, h) = (l.input(), l.hidden());
        let mut gates = vec![0.0f32; rows * 4 * h];
        product(precision, &x, rows, (l.w_ih(), 4 * h, k), Some(l.bias()), &mut gates);
        let mut y = vec![0.0f32; rows * h];
        let mut cell = vec![0.0f32; batch * h];
        for t in 0..seq {
            let g = &mut gates[t * batch * 4 * h..(t + 1) * batch * 4 * h];
            if t > 0 {
                let prev = y[(t - 1) * batch * h..t * batch * h].to_vec();
                product(precision, &prev, batch, (l.w_hh(), 4 * h, h), None, g);
            }
            for b in 0..batch {
                let out = &mut y[(t * batch + b) * h..(t * batch + b + 1) * h];
                lstm_cell_update(&g[b * 4 * h..(b + 1) * 4 * h], &mut cell[b * h..(b + 1) * h], out);
            }
        }
        x = y;
    }
    match model.head() {
        None => x,
        Some(head) => {
            let mut out = vec![0.0f32; rows * head.output()];
            let weight = (head.weight(), head.output(), head.input());
            product(precision, &x, rows, weight, Some(head.bias()), &mut out);
            out
        }
    }
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn reduced_precision_matches_its_own_arithmetic_on_any_team() {
    for precision in [Precision::Bf16, Precision::Int8] {
        for model in models() {
            for (seq, batch) in [(1, 1), (3, 2), (5, 4), (2, 13), (6, 11)] {
                let inputs = Inputs::random(&model, seq, batch, 9);
                let want = same_arithmetic(&model, &inputs, precision);
                let fp32 = reference_forward(&model, &inputs).unwrap();
                let mut first: Option<Vec<f32>> = None;
                for threads in [1, 2, 3] {
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                    let got = pool.install(|| {
                        let mut exec = RnnExecutor::prepare_at(&model, Backend::Packed, precision, false, "dense").unwrap();
                        exec.run(&inputs).unwrap();
                        exec.run(&inputs).unwrap().to_vec()
                    });
                    let what = format!(
                        "{precision} hidden {:?} seq {seq} batch {batch} threads {threads}",
                        model.hidden_sizes()
                    );
                    // The cell update runs in blocks in the executor, plainly
                    // here: the same f32 math up to its rounding.
                    let e = max_abs(&got, &want);
                    assert!(e <= 2e-5, "{what}: {e} from the same arithmetic");
                    let tolerance = precision.default_tolerance().unwrap() as f32;
                    let scale = fp32.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    let e = max_abs(&got, &fp32) / scale;
                    assert!(e <= tolerance, "{what}: {e} of the largest output from fp32, above {tolerance}");
                    match &first {
                        None => first = Some(got),
                        Some(f) => assert_eq!(&got, f, "{what}: differs from 1 thread"),
                    }
                }
            }
        }
    }
}

/// The block-sparse backend at bf16 and int8 (every product through the
/// BSR kernel, its blocks holding the whole model here) does the same
/// arithmetic: int8 gives the dense int8 kernel's values product by
/// product, bf16 the same rounded products summed in another order.
#[test]
fn block_sparse_reduced_precision_matches_its_own_arithmetic() {
    use issbench::mode::BlockShape;
    for precision in [Precision::Bf16, Precision::Int8] {
        for model in models() {
            for (seq, batch) in [(1, 1), (3, 2), (6, 11)] {
                let inputs = Inputs::random(&model, seq, batch, 9);
                let want = same_arithmetic(&model, &inputs, precision);
                for (rows, cols) in [(4, 4), (16, 16), (1, 4), (3, 5)] {
                    for threads in [1, 2] {
                        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                        let backend = Backend::Bsr(BlockShape { rows, cols });
                        let got = pool.install(|| {
                            let mut exec = RnnExecutor::prepare_at(&model, backend, precision, false, "bsr").unwrap();
                            exec.run(&inputs).unwrap().to_vec()
                        });
                        let what = format!(
                            "{precision} {rows}x{cols} hidden {:?} seq {seq} batch {batch} threads {threads}",
                            model.hidden_sizes()
                        );
                        let e = max_abs(&got, &want);
                        let bound = if precision == Precision::Int8 { 2e-5 } else { 1e-4 };
                        assert!(e <= bound, "{what}: {e} from the same arithmetic");
                    }
                }
            }
        }
    }
}

#[test]
fn reduced_precision_is_refused_off_the_packed_backend() {
    let model = spec(3, &[5], None, 2);
    for backend in [Backend::Matrixmultiply, Backend::Csr] {
        let e = RnnExecutor::prepare_at(&model, backend, Precision::Int8, true, "dense")
            .err()
            .unwrap();
        assert!(e.to_string().contains("runs fp32 only"), "{e}");
    }
    let exec = RnnExecutor::prepare_at(&model, Backend::Packed, Precision::Bf16, true, "dense").unwrap();
    assert!(exec.backend().ends_with("-bf16"), "{}", exec.backend());
}

/// A weight wider than an int8 product's i32 sums hold is refused when
/// prepared, on the packed and block-sparse kernels alike, not a panic.
#[test]
fn int8_weights_wider_than_the_i32_sums_are_refused() {
    use issbench::exec::PreparedWeight;
    use issbench::mode::BlockShape;
    let k = 65537;
    let w = vec![0.5f32; k];
    for backend in [Backend::Packed, Backend::Bsr(BlockShape { rows: 4, cols: 4 })] {
        let e = PreparedWeight::at(backend, Precision::Int8, &w, 1, k).err().unwrap();
        assert!(
            e.to_string().contains("at most 65536 inputs") && e.to_string().contains("65537"),
            "{e}"
        );
        assert!(PreparedWeight::at(backend, Precision::Bf16, &w, 1, k).is_ok());
    }
}

/// Bidirectional layers of every team cell, their directions compacted to
/// unequal widths (so the backward direction's gates start mid-panel in
/// the layer's joint projection), stay within the precision's tolerance
/// of the fp32 reference and do not depend on the team's size.
#[test]
fn bidirectional_layers_at_reduced_precision_match_fp32_on_any_team() {
    use issbench::iss::{analyze, compact};
    use issbench::model::Cell;
    for cell in [Cell::Lstm, Cell::Gru { reset_after: true }, Cell::Rhn { depth: 2 }] {
        let full = SynthSpec {
            name: "bi".into(),
            input: 37,
            layers: vec![41, 19],
            seed: 4,
            kept: Some(vec![34, 21, 7, 12]),
            cell,
            bidirectional: true,
            logits: Some(1),
            ..Default::default()
        }
        .build()
        .unwrap();
        let model = compact(&full, &analyze(&full, 0.0)).unwrap().model;
        assert_eq!(model.hidden_sizes(), vec![34, 21, 7, 12], "{}", cell.describe());
        for precision in [Precision::Bf16, Precision::Int8] {
            for (seq, batch) in [(1, 1), (5, 3), (3, 11)] {
                let inputs = Inputs::random(&model, seq, batch, 9);
                let fp32 = reference_forward(&model, &inputs).unwrap();
                let scale = fp32.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                let tolerance = precision.default_tolerance().unwrap() as f32;
                let mut first: Option<Vec<f32>> = None;
                for threads in [1, 2, 3] {
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                    let got = pool.install(|| {
                        let mut exec = RnnExecutor::prepare_at(&model, Backend::Packed, precision, false, "iss").unwrap();
                        exec.run(&inputs).unwrap().to_vec()
                    });
                    let what = format!("{} {precision} seq {seq} batch {batch} threads {threads}", cell.describe());
                    let e = max_abs(&got, &fp32) / scale;
                    assert!(e <= tolerance, "{what}: {e} of the largest output from fp32, above {tolerance}");
                    match &first {
                        None => first = Some(got),
                        Some(f) => assert_eq!(&got, f, "{what}: differs from 1 thread"),
                    }
                }
            }
        }
    }
}
