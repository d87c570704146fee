//! The int8 and bf16 products against naive references of the same
//! arithmetic, at every kernel this CPU runs (within `ISSBENCH_SIMD`):
//!
//! - int8: `A`'s quantization against ONNX Runtime's formula (written out
//!   here again), the weights' against the symmetric per-column formula,
//!   and every output against `start + (a_scale · scale_j) · t_ij` with
//!   `t_ij` the exact integer sum computed here from the same quantized
//!   values, bit for bit in f32 (so the kernels' `i32` sums are exact) and
//!   within f32 rounding of the same formula in f64;
//! - bf16: every output against the same sum of the same rounded values in
//!   f32 in `vdpbf16ps`'s order (bit for bit for the portable kernel, and
//!   for the AVX2 and AVX-512F ones on blocks of 4+ rows; within f32
//!   summation rounding for blocks whose sums are split over several
//!   accumulators, and for `vdpbf16ps` itself), and within bf16 rounding
//!   of the f32 product;
//!
//! on odd shapes (empty, 1, primes), every start (zero, `C`, a bias), and
//! panels claimed in any order by one or several workers.

use issbench::kernels::bf16::{Bf16Kernel, Bf16PackedMatrix, bf16_gemm, bf16_gemm_bias, bf16_gemm_claimed, from_bf16, to_bf16};
use issbench::kernels::int8::{AQuant, Int8Kernel, Int8PackedMatrix, int8_gemm, int8_gemm_bias, int8_gemm_claimed, quantize_a};
use issbench::kernels::team::run_team;
use issbench::kernels::{MatMut, MatRef, PANEL, PanelOrder, SharedOutput};
use issbench::model::synthetic::SplitMix64;
use std::sync::atomic::{AtomicUsize, Ordering};

const MS: [usize; 9] = [0, 1, 2, 3, 5, 7, 13, 31, 300];
const KS: [usize; 6] = [1, 7, 63, 64, 65, 373];
const NS: [usize; 5] = [1, 17, 32, 33, 1492];

fn random(len: usize, rng: &mut SplitMix64, lo: f32, hi: f32) -> Vec<f32> {
    (0..len).map(|_| rng.uniform(lo, hi)).collect()
}

/// What a product's values start from.
#[derive(Clone, Copy, Debug, PartialEq)]
enum StartKind {
    Zero,
    C,
    Bias,
}
const STARTS: [StartKind; 3] = [StartKind::Zero, StartKind::C, StartKind::Bias];

/// The start value of `C[i][j]` for `kind`, from the initial `c0` or `bias`.
fn start_value(kind: StartKind, c0: &[f32], bias: &[f32], n: usize, i: usize, j: usize) -> f32 {
    match kind {
        StartKind::Zero => 0.0,
        StartKind::C => c0[i * n + j],
        StartKind::Bias => bias[j],
    }
}

// ---------------------------------------------------------------- int8 --

/// ONNX Runtime's `GetQuantizationParameter` for `u8`, written out again.
fn ort_quant(values: impl Iterator<Item = f32>) -> (f32, u8) {
    let (mut min, mut max) = (f32::INFINITY, f32::NEG_INFINITY);
    for v in values {
        min = min.min(v);
        max = max.max(v);
    }
    let (min, max) = (min.min(0.0), max.max(0.0));
    let scale = if max == min { 1.0 } else { (max - min) / 255.0 };
    let zp = (0.0f32 - min / scale).clamp(0.0, 255.0);
    (scale, zp.round_ties_even() as u8)
}

/// `MlasQuantizeLinear`: `clamp(x / scale, −zp, 255 − zp)`, rounded half
/// to even, plus the zero point.
fn ort_quantize(x: f32, scale: f32, zp: u8) -> u8 {
    let v = (x / scale).clamp(-f32::from(zp), 255.0 - f32::from(zp));
    (v.round_ties_even() + f32::from(zp)) as u8
}

#[test]
fn int8_activations_quantize_as_onnx_runtime_does() {
    let mut rng = SplitMix64::new(7);
    // (lo, hi) of the values: mixed, positive, negative, tiny, constant zero.
    for (lo, hi) in [(-1.0f32, 1.0f32), (0.25, 3.0), (-7.0, -0.5), (-1e-6, 2e-6), (0.0, 0.0), (-0.3, 5.0)] {
        for (m, k) in [(1usize, 1usize), (3, 17), (13, 373), (300, 65)] {
            let a = random(m * k, &mut rng, lo, hi);
            let (scale, zp) = ort_quant(a.iter().copied());
            let (quant, q) = quantize_a(MatRef::row_major(&a, m, k));
            assert_eq!(quant, AQuant { scale, zero_point: zp }, "{m}x{k} in [{lo}, {hi}]");
            for (i, (&x, &got)) in a.iter().zip(&q).enumerate() {
                assert_eq!(got, ort_quantize(x, scale, zp), "{m}x{k} in [{lo}, {hi}]: element {i} ({x})");
                assert_eq!(got, quant.quantize(x));
            }
        }
    }
    // Known values: [-1, 1] has scale 2/255 (rounded up in f32), so the
    // zero point 1 / scale is 127.49999, 127.
    let q = AQuant::from_range(-1.0, 1.0);
    assert_eq!((q.scale, q.zero_point), (2.0 / 255.0, 127));
    assert_eq!(q.quantize(0.0), 127);
    assert_eq!(q.quantize(-1.0), 0);
    assert_eq!(q.quantize(1.0), 254);
    assert_eq!(q.quantize(0.5 * q.scale), 127, "0.5 rounds to even, 0");
    assert_eq!(q.quantize(1.5 * q.scale), 129);
    assert_eq!(q.quantize(2.5 * q.scale), 129);
    assert_eq!(q.quantize(-300.0 * q.scale), 0);
    assert_eq!(q.quantize(300.0 * q.scale), 255);
    assert_eq!(q.quantize(f32::NAN), 0);
    assert_eq!(AQuant::from_range(2.0, 3.0).zero_point, 0, "the range includes 0");
    assert_eq!(AQuant::from_range(0.0, 0.0).scale, 1.0);
}

#[test]
fn int8_weights_are_symmetric_per_column() {
    let mut rng = SplitMix64::new(11);
    for (n, k) in [(1usize, 1usize), (17, 7), (33, 65), (40, 373)] {
        let mut w = random(n * k, &mut rng, -0.8, 0.8);
        // A zero row and a row with a single large value.
        w[..k].fill(0.0);
        if n > 2 {
            w[2 * k] = 5.0;
        }
        for kernel in Int8Kernel::available() {
            let b = Int8PackedMatrix::pack_transposed_for(&w, n, k, kernel);
            assert_eq!((b.n(), b.k(), b.kernel()), (n, k, kernel));
            for j in 0..n {
                let row = &w[j * k..(j + 1) * k];
                let amax = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                let scale = if amax > 0.0 { amax / 127.0 } else { 1.0 };
                assert_eq!(b.scales()[j], scale, "{n}x{k} column {j}");
                let mut sum = 0;
                for (p, &v) in row.iter().enumerate() {
                    let q = (v / scale).round_ties_even().clamp(-127.0, 127.0) as i8;
                    assert_eq!(b.quantized(j, p), q, "{n}x{k} ({j}, {p}) = {v}");
                    sum += i32::from(q);
                }
                assert_eq!(b.col_sums()[j], sum);
            }
        }
    }
}

/// One int8 case: `A` (`m x k`), the weight `w` (`n x k`), the initial `C`
/// and bias, and the exact integer sums `t` (from the quantization this
/// file computes) of every output.
struct Int8Case {
    m: usize,
    k: usize,
    n: usize,
    a: Vec<f32>,
    w: Vec<f32>,
    c0: Vec<f32>,
    bias: Vec<f32>,
    quant: (f32, u8),
    sums: Vec<i64>,
}

impl Int8Case {
    fn new(m: usize, k: usize, n: usize, seed: u64) -> Int8Case {
        let mut rng = SplitMix64::new(seed);
        // Activations like an LSTM's hidden state and input, not centred on 0.
        let a = random(m * k, &mut rng, -0.6, 1.0);
        let w = random(n * k, &mut rng, -0.3, 0.3);
        let c0 = random(m * n, &mut rng, -1.0, 1.0);
        let bias = random(n, &mut rng, -1.0, 1.0);
        let quant = ort_quant(a.iter().copied());
        let qa: Vec<i64> = a.iter().map(|&x| i64::from(ort_quantize(x, quant.0, quant.1))).collect();
        // The weights' quantization is checked above; any kernel's are the same.
        let b = Int8PackedMatrix::pack_transposed_for(&w, n, k, Int8Kernel::Portable);
        let qw: Vec<i64> = (0..n)
            .flat_map(|j| (0..k).map(move |p| (j, p)))
            .map(|(j, p)| i64::from(b.quantized(j, p)))
            .collect();
        let zp = i64::from(quant.1);
        let mut sums = vec![0i64; m * n];
        for i in 0..m {
            for j in 0..n {
                sums[i * n + j] = (0..k).map(|p| (qa[i * k + p] - zp) * qw[j * k + p]).sum();
            }
        }
        Int8Case {
            m,
            k,
            n,
            a,
            w,
            c0,
            bias,
            quant,
            sums,
        }
    }

    /// Checks `got` (row-major `C` after a product starting from `start`
    /// on `b`): bit for bit against the documented f32 formula on the exact
    /// sums, and within f32 rounding of it in f64.
    fn check(&self, name: &str, b: &Int8PackedMatrix, start: StartKind, got: &[f32]) {
        let (m, n) = (self.m, self.n);
        for i in 0..m {
            for j in 0..n {
                let t = self.sums[i * n + j];
                assert!(t.unsigned_abs() < 1 << 24, "sum {t} is exact in f32");
                let s = start_value(start, &self.c0, &self.bias, n, i, j);
                let scale = self.quant.0 * b.scales()[j];
                let want = s + scale * t as f32;
                let value = got[i * n + j];
                assert_eq!(
                    value.to_bits(),
                    want.to_bits(),
                    "{name} {:?}: {m}x{}x{n} {start:?}: C[{i},{j}] = {value}, want {want} (sum {t})",
                    b.kernel(),
                    self.k
                );
                let exact = f64::from(s) + f64::from(self.quant.0) * f64::from(b.scales()[j]) * t as f64;
                let size = f64::from(s).abs() + (f64::from(scale) * t as f64).abs();
                assert!((f64::from(value) - exact).abs() <= 4.0 * f64::from(f32::EPSILON) * size + 1e-30);
            }
        }
    }

    /// `C` before a product starting from `start`.
    fn initial(&self, start: StartKind) -> Vec<f32> {
        match start {
            StartKind::C => self.c0.clone(),
            _ => vec![f32::NAN; self.m * self.n],
        }
    }

    /// `int8_gemm` (or `int8_gemm_bias`) from `start`.
    fn product(&self, b: &Int8PackedMatrix, start: StartKind) -> Vec<f32> {
        let mut c = self.initial(start);
        let a = MatRef::row_major(&self.a, self.m, self.k);
        let mut cm = MatMut::row_major(&mut c, self.m, self.n);
        match start {
            StartKind::Bias => int8_gemm_bias(a, b, &self.bias, &mut cm),
            _ => int8_gemm(a, b, &mut cm, start == StartKind::C),
        }
        c
    }
}

fn pools() -> Vec<rayon::ThreadPool> {
    [1, 2]
        .iter()
        .map(|&t| rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap())
        .collect()
}

#[test]
fn int8_products_equal_the_integer_reference_at_every_kernel() {
    let kernels = Int8Kernel::available();
    let pools = pools();
    for &m in &MS {
        for &k in &KS {
            for &n in &NS {
                let case = Int8Case::new(m, k, n, (m * 1_000_003 + k * 1009 + n) as u64);
                let mut first: Option<Vec<Vec<f32>>> = None;
                for &kernel in &kernels {
                    let b = Int8PackedMatrix::pack_transposed_for(&case.w, n, k, kernel);
                    // One thread, or two for the larger products.
                    let pool = &pools[usize::from(m * n * k > 1 << 16)];
                    let outputs: Vec<Vec<f32>> = STARTS.iter().map(|&s| pool.install(|| case.product(&b, s))).collect();
                    for (&start, got) in STARTS.iter().zip(&outputs) {
                        case.check("int8_gemm", &b, start, got);
                    }
                    // Every kernel gives the same bits.
                    match &first {
                        None => first = Some(outputs),
                        Some(want) => assert!(
                            want.iter()
                                .flatten()
                                .zip(outputs.iter().flatten())
                                .all(|(x, y)| x.to_bits() == y.to_bits()),
                            "{kernel:?} differs from {:?} at {m}x{k}x{n}",
                            kernels[0]
                        ),
                    }
                }
            }
        }
    }
}

#[test]
fn int8_strided_operands() {
    let (m, k, n) = (13, 65, 47);
    let case = Int8Case::new(m, k, n, 5);
    for kernel in Int8Kernel::available() {
        let b = Int8PackedMatrix::pack_transposed_for(&case.w, n, k, kernel);
        // A column-major (its rows are not contiguous), C column-major.
        let a_cm: Vec<f32> = (0..k)
            .flat_map(|p| (0..m).map(move |i| (i, p)))
            .map(|(i, p)| case.a[i * k + p])
            .collect();
        let mut c_cm: Vec<f32> = (0..n)
            .flat_map(|j| (0..m).map(move |i| (i, j)))
            .map(|(i, j)| case.c0[i * n + j])
            .collect();
        int8_gemm(MatRef::new(&a_cm, m, k, 1, m), &b, &mut MatMut::new(&mut c_cm, m, n, 1, m), true);
        let got: Vec<f32> = (0..m)
            .flat_map(|i| (0..n).map(move |j| (i, j)))
            .map(|(i, j)| c_cm[j * m + i])
            .collect();
        case.check("int8_gemm strided", &b, StartKind::C, &got);
    }
}

/// A claimer handing out `panels` in ranges of 1-3 panels in a shuffled
/// order, from one shared list.
fn shuffled_claims(panels: usize, seed: u64) -> Vec<std::ops::Range<usize>> {
    let mut rng = SplitMix64::new(seed);
    let mut ranges = Vec::new();
    let mut p = 0;
    while p < panels {
        let len = (1 + rng.below(3) as usize).min(panels - p);
        ranges.push(p..p + len);
        p += len;
    }
    for i in (1..ranges.len()).rev() {
        ranges.swap(i, rng.below(i as u64 + 1) as usize);
    }
    ranges
}

type Claim<'a> = dyn FnMut() -> Option<std::ops::Range<usize>> + 'a;
type Done<'a> = dyn FnMut(std::ops::Range<usize>) + 'a;

/// Runs `product(claim, done)` on `workers` workers of a team
/// sharing the ranges of `shuffled_claims`, and checks every panel was
/// done exactly once.
fn claimed_by_team(panels: usize, workers: usize, seed: u64, product: &(dyn Fn(&mut Claim, &mut Done) + Sync)) {
    let ranges = shuffled_claims(panels, seed);
    let next = AtomicUsize::new(0);
    let seen: Vec<AtomicUsize> = (0..panels).map(|_| AtomicUsize::new(0)).collect();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(workers).build().unwrap();
    pool.install(|| {
        run_team(workers, &|_, _| {
            let mut claim = || ranges.get(next.fetch_add(1, Ordering::Relaxed)).cloned();
            let mut done = |r: std::ops::Range<usize>| {
                r.for_each(|p| {
                    seen[p].fetch_add(1, Ordering::Relaxed);
                })
            };
            product(&mut claim, &mut done);
        })
    });
    assert!(seen.iter().all(|s| s.load(Ordering::Relaxed) == 1), "every panel done once");
}

#[test]
fn int8_claimed_panels_in_any_order_give_the_product() {
    for (m, k, n) in [
        (1usize, 5usize, 1usize),
        (7, 37, 33),
        (10, 373, 1492),
        (31, 64, 200),
        (0, 3, 40),
        (3, 0, 40),
    ] {
        let case = Int8Case::new(m, k, n, 99);
        for kernel in [Int8Kernel::detect(), Int8Kernel::Portable] {
            let b = Int8PackedMatrix::pack_transposed_for(&case.w, n, k, kernel);
            let want = case.product(&b, StartKind::C);
            let panels = n.div_ceil(PANEL);
            for (workers, order) in [(1, PanelOrder::Descending), (3, PanelOrder::Ascending), (2, PanelOrder::Descending)] {
                let mut got = case.c0.clone();
                let c = SharedOutput::new(&mut got, m, n);
                let a = MatRef::row_major(&case.a, m, k);
                claimed_by_team(panels, workers, (m + workers) as u64, &|claim, done| {
                    // SAFETY: each claimed panel goes to one worker.
                    unsafe { int8_gemm_claimed(a, &b, c, true, order, claim, done) }
                });
                assert!(
                    got.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits()),
                    "{kernel:?} {m}x{k}x{n} on {workers} workers {order:?}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------- bf16 --

/// One bf16 case: `A`, `w`, the initial `C` and bias, and `A` and `w`
/// rounded to bf16 (as f32).
struct Bf16Case {
    m: usize,
    k: usize,
    n: usize,
    a: Vec<f32>,
    w: Vec<f32>,
    c0: Vec<f32>,
    bias: Vec<f32>,
    a16: Vec<f32>,
    w16: Vec<f32>,
}

impl Bf16Case {
    fn new(m: usize, k: usize, n: usize, seed: u64) -> Bf16Case {
        let mut rng = SplitMix64::new(seed);
        let a = random(m * k, &mut rng, -1.0, 1.0);
        let w = random(n * k, &mut rng, -0.3, 0.3);
        let c0 = random(m * n, &mut rng, -1.0, 1.0);
        let bias = random(n, &mut rng, -1.0, 1.0);
        let round = |v: &[f32]| v.iter().map(|&x| from_bf16(to_bf16(x))).collect::<Vec<f32>>();
        let (a16, w16) = (round(&a), round(&w));
        Bf16Case {
            m,
            k,
            n,
            a,
            w,
            c0,
            bias,
            a16,
            w16,
        }
    }

    /// `C[i][j]` as `vdpbf16ps` defines it: from the start, for each pair
    /// of steps the odd step's exact product, then the even one's, each
    /// added in f32.
    fn sequential(&self, start: StartKind, i: usize, j: usize) -> f32 {
        let k = self.k;
        let mut acc = start_value(start, &self.c0, &self.bias, self.n, i, j);
        for p in (0..k).step_by(2) {
            if p + 1 < k {
                acc += self.a16[i * k + p + 1] * self.w16[j * k + p + 1];
            }
            acc += self.a16[i * k + p] * self.w16[j * k + p];
        }
        acc
    }

    /// Checks `got` after a product from `start` on `kernel`'s weights.
    fn check(&self, name: &str, kernel: Bf16Kernel, start: StartKind, got: &[f32]) {
        let (m, k, n) = (self.m, self.k, self.n);
        for i in 0..m {
            for j in 0..n {
                let value = got[i * n + j];
                let want = self.sequential(start, i, j);
                let s = start_value(start, &self.c0, &self.bias, n, i, j);
                let terms = (0..k).map(|p| self.a16[i * k + p] * self.w16[j * k + p]);
                let size: f64 = f64::from(s.abs()) + terms.clone().map(|t| f64::from(t.abs())).sum::<f64>();
                if kernel != Bf16Kernel::Portable {
                    // The same exact products summed in f32, in the order of
                    // the kernel's accumulator chains (blocks of 1-3 rows
                    // split their sums); `vdpbf16ps` in hardware may also
                    // flush subnormals. Bit for bit where one chain runs:
                    // `bf16_single_chain_kernels_equal_the_portable_one`.
                    let exact = f64::from(s) + terms.map(f64::from).sum::<f64>();
                    let err = (f64::from(value) - exact).abs();
                    assert!(
                        err <= (k + 2) as f64 * f64::from(f32::EPSILON) * size + 1e-30,
                        "{name} {kernel:?}: {m}x{k}x{n} {start:?}: C[{i},{j}] = {value}, exact {exact} (err {err:e})"
                    );
                } else {
                    assert_eq!(value, want, "{name} {kernel:?}: {m}x{k}x{n} {start:?}: C[{i},{j}]");
                }
                // Against the f32 operands: within bf16 rounding of both.
                let full = f64::from(s)
                    + (0..k)
                        .map(|p| f64::from(self.a[i * k + p]) * f64::from(self.w[j * k + p]))
                        .sum::<f64>();
                assert!((f64::from(value) - full).abs() <= 2.0f64.powi(-7) * size + 1e-30);
            }
        }
    }

    fn product(&self, b: &Bf16PackedMatrix, start: StartKind) -> Vec<f32> {
        let mut c = match start {
            StartKind::C => self.c0.clone(),
            _ => vec![f32::NAN; self.m * self.n],
        };
        let a = MatRef::row_major(&self.a, self.m, self.k);
        let mut cm = MatMut::row_major(&mut c, self.m, self.n);
        match start {
            StartKind::Bias => bf16_gemm_bias(a, b, &self.bias, &mut cm),
            _ => bf16_gemm(a, b, &mut cm, start == StartKind::C),
        }
        c
    }
}

#[test]
fn bf16_weights_are_rounded_to_nearest_even() {
    let mut rng = SplitMix64::new(3);
    let (n, k) = (33, 65);
    let w = random(n * k, &mut rng, -2.0, 2.0);
    for kernel in Bf16Kernel::available() {
        let b = Bf16PackedMatrix::pack_transposed_for(&w, n, k, kernel);
        for j in 0..n {
            for p in 0..k {
                assert_eq!(b.value(j, p), half::bf16::from_f32(w[j * k + p]).to_f32(), "{kernel:?} ({j}, {p})");
            }
        }
    }
}

#[test]
fn bf16_products_equal_the_reference_at_every_kernel() {
    let pools = pools();
    for &m in &MS {
        for &k in &KS {
            for &n in &NS {
                let case = Bf16Case::new(m, k, n, (m * 7919 + k * 104_729 + n) as u64);
                for kernel in Bf16Kernel::available() {
                    let b = Bf16PackedMatrix::pack_transposed_for(&case.w, n, k, kernel);
                    let pool = &pools[usize::from(m * n * k > 1 << 16)];
                    for start in STARTS {
                        let got = pool.install(|| case.product(&b, start));
                        case.check("bf16_gemm", kernel, start, &got);
                    }
                }
            }
        }
    }
}

/// Where a kernel runs one accumulator chain (blocks of 4 rows and more),
/// the AVX2 and AVX-512F kernels' fused multiply-adds give the portable
/// kernel's bits (one rounding per exact product, in the same order).
#[test]
fn bf16_single_chain_kernels_equal_the_portable_one() {
    for (m, k, n) in [(4usize, 373usize, 1492usize), (8, 65, 33), (8, 1, 17)] {
        let case = Bf16Case::new(m, k, n, 77);
        for kernel in Bf16Kernel::available() {
            if matches!(kernel, Bf16Kernel::Avx2 | Bf16Kernel::Avx512) {
                let b = Bf16PackedMatrix::pack_transposed_for(&case.w, n, k, kernel);
                for start in STARTS {
                    let got = case.product(&b, start);
                    for i in 0..m {
                        for j in 0..n {
                            assert_eq!(
                                got[i * n + j],
                                case.sequential(start, i, j),
                                "{kernel:?} {m}x{k}x{n} {start:?} C[{i},{j}]"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn bf16_strided_operands() {
    let (m, k, n) = (13, 65, 47);
    let case = Bf16Case::new(m, k, n, 5);
    for kernel in Bf16Kernel::available() {
        let b = Bf16PackedMatrix::pack_transposed_for(&case.w, n, k, kernel);
        let a_cm: Vec<f32> = (0..k)
            .flat_map(|p| (0..m).map(move |i| (i, p)))
            .map(|(i, p)| case.a[i * k + p])
            .collect();
        let mut c_cm: Vec<f32> = (0..n)
            .flat_map(|j| (0..m).map(move |i| (i, j)))
            .map(|(i, j)| case.c0[i * n + j])
            .collect();
        bf16_gemm(MatRef::new(&a_cm, m, k, 1, m), &b, &mut MatMut::new(&mut c_cm, m, n, 1, m), true);
        let got: Vec<f32> = (0..m)
            .flat_map(|i| (0..n).map(move |j| (i, j)))
            .map(|(i, j)| c_cm[j * m + i])
            .collect();
        case.check("bf16_gemm strided", kernel, StartKind::C, &got);
    }
}

#[test]
fn bf16_claimed_panels_in_any_order_give_the_product() {
    for (m, k, n) in [
        (1usize, 5usize, 1usize),
        (7, 37, 33),
        (10, 373, 1492),
        (31, 64, 200),
        (0, 3, 40),
        (3, 0, 40),
    ] {
        let case = Bf16Case::new(m, k, n, 98);
        for kernel in [Bf16Kernel::detect(), Bf16Kernel::Portable] {
            let b = Bf16PackedMatrix::pack_transposed_for(&case.w, n, k, kernel);
            let want = case.product(&b, StartKind::C);
            let panels = n.div_ceil(PANEL);
            for (workers, order) in [(1, PanelOrder::Descending), (3, PanelOrder::Ascending), (2, PanelOrder::Descending)] {
                let mut got = case.c0.clone();
                let c = SharedOutput::new(&mut got, m, n);
                let a = MatRef::row_major(&case.a, m, k);
                claimed_by_team(panels, workers, (m + workers) as u64, &|claim, done| {
                    // SAFETY: each claimed panel goes to one worker.
                    unsafe { bf16_gemm_claimed(a, &b, c, true, order, claim, done) }
                });
                assert!(
                    got.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits()),
                    "{kernel:?} {m}x{k}x{n} on {workers} workers {order:?}"
                );
            }
        }
    }
}
