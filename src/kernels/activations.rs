//! Sigmoid, tanh and the fused LSTM cell update, vectorised and accurate.
//!
//! `exp` is computed as `2^n · P(r)` (Cephes' single-precision polynomial with
//! a two-part `ln 2` range reduction), written over fixed-width lanes so the
//! compiler vectorises it for whatever SIMD level `multiversion!` selects.
//! Measured against f64 over [-30, 30] (see the tests): sigmoid and tanh are
//! within 3e-7 absolute and tanh within 2e-6 relative. The fused cell update
//! uses a rational `tanh` instead (fewer operations and a shorter dependency
//! chain than `exp`; see `cell_step`).

use super::simd::{SimdLevel, madd, multiversion};

/// Lanes processed together; a multiple of every vector width in use.
const LANES: usize = 16;

#[inline(always)]
fn exp_lane<const FUSED: bool>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding and subtracting it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.3);
    // n = round(x / ln 2), both as a float and (from the low mantissa bits
    // of the rounding sum) as an integer: a float-to-int `as` cast would be
    // scalarised for its saturation and NaN rules.
    let rounded = x * LOG2E + ROUND;
    let n = rounded - ROUND;
    let n_int = rounded.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let r = madd::<FUSED>(-n, LN2_LO, madd::<FUSED>(-n, LN2_HI, x));
    let mut p = 1.987_569_1e-4f32;
    p = madd::<FUSED>(p, r, 1.398_199_9e-3);
    p = madd::<FUSED>(p, r, 8.333_452e-3);
    p = madd::<FUSED>(p, r, 4.166_579_6e-2);
    p = madd::<FUSED>(p, r, 1.666_666_5e-1);
    p = madd::<FUSED>(p, r, 0.5);
    let e = madd::<FUSED>(p, r * r, r) + 1.0;
    let scale = f32::from_bits(((n_int + 127) as u32) << 23);
    e * scale
}

#[inline(always)]
fn sigmoid_lane<const FUSED: bool>(x: f32) -> f32 {
    1.0 / (1.0 + exp_lane::<FUSED>(-x))
}

/// `tanh(x)` as a fraction `(numerator, denominator)`, so that callers can
/// merge its division with others.
#[inline(always)]
fn tanh_fraction<const FUSED: bool>(x: f32) -> (f32, f32) {
    let ax = x.abs();
    // Near zero, 1 - e^(-2|x|) cancels: use the odd Taylor series instead
    // (its first omitted term is below 4e-13 at |x| = 0.0625).
    let x2 = x * x;
    let mut s = -17.0f32 / 315.0;
    s = madd::<FUSED>(s, x2, 2.0 / 15.0);
    s = madd::<FUSED>(s, x2, -1.0 / 3.0);
    let small = madd::<FUSED>(s * x2, x, x);
    let t = exp_lane::<FUSED>(-2.0 * ax);
    let near_zero = ax < 0.0625;
    let numerator = if near_zero { small } else { (1.0 - t).copysign(x) };
    let denominator = if near_zero { 1.0 } else { 1.0 + t };
    (numerator, denominator)
}

#[inline(always)]
fn tanh_lane<const FUSED: bool>(x: f32) -> f32 {
    let (numerator, denominator) = tanh_fraction::<FUSED>(x);
    numerator / denominator
}

#[inline(always)]
fn sigmoid_kernel<const FUSED: bool>(v: &mut [f32]) {
    for x in v.iter_mut() {
        *x = sigmoid_lane::<FUSED>(*x);
    }
}

#[inline(always)]
fn tanh_kernel<const FUSED: bool>(v: &mut [f32]) {
    for x in v.iter_mut() {
        *x = tanh_lane::<FUSED>(*x);
    }
}

multiversion! {
    /// `v[i] = 1 / (1 + e^-v[i])` in place.
    pub fn sigmoid_inplace(v: &mut [f32]) => sigmoid_kernel
}

multiversion! {
    /// `v[i] = tanh(v[i])` in place.
    pub fn tanh_inplace(v: &mut [f32]) => tanh_kernel
}

#[inline(always)]
fn gru_update_kernel<const FUSED: bool>(input: &[f32], rec: &[f32], prev: &[f32], out: &mut [f32]) {
    let u = out.len();
    let (ir, iz, inn) = (&input[..u], &input[u..2 * u], &input[2 * u..3 * u]);
    let (rr, rz, rn) = (&rec[..u], &rec[u..2 * u], &rec[2 * u..3 * u]);
    // Fixed groups of lanes, so the loop body vectorises (a loop of
    // variable length over these branches stayed scalar).
    for u0 in (0..u).step_by(LANES) {
        let (a, b, c) = (lanes_of::<LANES>(ir, u0), lanes_of::<LANES>(iz, u0), lanes_of::<LANES>(inn, u0));
        let (d, e, f) = (lanes_of::<LANES>(rr, u0), lanes_of::<LANES>(rz, u0), lanes_of::<LANES>(rn, u0));
        let p = lanes_of::<LANES>(prev, u0);
        let mut o = [0.0f32; LANES];
        for l in 0..LANES {
            let r = sigmoid_lane::<FUSED>(a[l] + d[l]);
            let z = sigmoid_lane::<FUSED>(b[l] + e[l]);
            let n = tanh_lane::<FUSED>(madd::<FUSED>(r, f[l], c[l]));
            o[l] = madd::<FUSED>(z, p[l] - n, n);
        }
        store_lanes(out, u0, &o);
    }
}

multiversion! {
    fn gru_update_at(input: &[f32], rec: &[f32], prev: &[f32], out: &mut [f32]) => gru_update_kernel
}

/// One GRU update (reset after the recurrent product) of `u = out.len()`
/// units: `input` holds the input parts `[r | z | n]` (bias `b_ih` added),
/// `rec` the recurrent parts (bias `b_hh` added), each `u` long; `prev` is
/// the units' last state. `out = (1 − z)·n + z·prev` with
/// `n = tanh(input_n + r·rec_n)`.
pub fn gru_update(input: &[f32], rec: &[f32], prev: &[f32], out: &mut [f32]) {
    let u = out.len();
    assert!(
        input.len() >= 3 * u && rec.len() >= 3 * u && prev.len() == u,
        "gru_update: {u} units"
    );
    gru_update_at(input, rec, prev, out);
}

#[inline(always)]
fn rhn_update_kernel<const FUSED: bool>(gates: &[f32], prev: &[f32], out: &mut [f32]) {
    let u = out.len();
    let (gh, gt) = (&gates[..u], &gates[u..2 * u]);
    // Fixed groups of lanes, as in the GRU update.
    for u0 in (0..u).step_by(LANES) {
        let (h, t, p) = (lanes_of::<LANES>(gh, u0), lanes_of::<LANES>(gt, u0), lanes_of::<LANES>(prev, u0));
        let mut o = [0.0f32; LANES];
        for l in 0..LANES {
            let th = tanh_lane::<FUSED>(h[l]);
            let sg = sigmoid_lane::<FUSED>(t[l]);
            o[l] = madd::<FUSED>(th - p[l], sg, p[l]);
        }
        store_lanes(out, u0, &o);
    }
}

multiversion! {
    fn rhn_update_at(gates: &[f32], prev: &[f32], out: &mut [f32]) => rhn_update_kernel
}

/// One RHN micro-layer update of `u = out.len()` units: `gates` holds the
/// `H` and `T` pre-activations `[H | T]` (biases added), each `u` long;
/// `out = (tanh(H) − prev)·σ(T) + prev`.
pub fn rhn_update(gates: &[f32], prev: &[f32], out: &mut [f32]) {
    let u = out.len();
    assert!(gates.len() >= 2 * u && prev.len() == u, "rhn_update: {u} units");
    rhn_update_at(gates, prev, out);
}

/// One LSTM cell update for one batch row, fused into a single pass.
///
/// `gates` holds the pre-activations `[i | f | g | o]` (each `hidden` long,
/// input and recurrent products and bias already summed); `c` is the cell
/// state, updated in place; `h` receives the new hidden state:
/// `c = σ(f)·c + σ(i)·tanh(g)`, `h = σ(o)·tanh(c)`.
pub fn lstm_cell_update(gates: &[f32], c: &mut [f32], h: &mut [f32]) {
    let hidden = c.len();
    assert_eq!(gates.len(), 4 * hidden, "gates must be 4 x hidden");
    assert_eq!(h.len(), hidden, "h must be hidden long");
    cell_update(gates, c, h);
}

multiversion! {
    fn cell_update(gates: &[f32], c: &mut [f32], h: &mut [f32]) => cell_update_kernel
}

/// Hidden units per gate block in [`lstm_cell_update_blocks`]' layout.
pub const BLOCK_UNITS: usize = 8;

/// The LSTM cell update for gates laid out in blocks, as the packed
/// executor's panels produce them: for each [`BLOCK_UNITS`] units, their
/// `i`, `f`, `g` and `o` pre-activations one after the other (a last,
/// narrower block of `u` units has `u` of each). `c` and `h` hold the units
/// in order.
///
/// It runs in two passes, first `c` of every unit, then `h`: one pass per
/// unit chains five `exp`s and two divisions (`h` needs the new `c`), too
/// long a dependency chain for the out-of-order core to overlap more than a
/// group or two; each pass's chain is about half as long.
pub fn lstm_cell_update_blocks(gates: &[f32], c: &mut [f32], h: &mut [f32]) {
    assert_eq!(gates.len(), 4 * c.len(), "gates must be 4 x units");
    assert_eq!(h.len(), c.len(), "h must be as long as c");
    if SimdLevel::detect() == SimdLevel::Avx512 {
        cell_update_blocks_16(gates, c, h);
    } else {
        cell_update_blocks_8(gates, c, h);
    }
}

#[inline(always)]
fn cell_update_blocks_16_kernel<const FUSED: bool>(gates: &[f32], c: &mut [f32], h: &mut [f32]) {
    cell_update_blocks_kernel::<FUSED, 16>(gates, c, h)
}

#[inline(always)]
fn cell_update_blocks_8_kernel<const FUSED: bool>(gates: &[f32], c: &mut [f32], h: &mut [f32]) {
    cell_update_blocks_kernel::<FUSED, 8>(gates, c, h)
}

multiversion! {
    /// Two 8-unit blocks per group of 16 lanes (one AVX-512 vector).
    fn cell_update_blocks_16(gates: &[f32], c: &mut [f32], h: &mut [f32]) => cell_update_blocks_16_kernel
}

multiversion! {
    /// One 8-unit block per group: 16 lanes on narrower vectors would need
    /// two registers per value and spill.
    fn cell_update_blocks_8(gates: &[f32], c: &mut [f32], h: &mut [f32]) => cell_update_blocks_8_kernel
}

/// Gate `gate`'s pre-activations of units `u0 .. u0 + n` (`n <= L`) as `L`
/// lanes (zeros past `n`), from the blocked layout.
#[inline(always)]
fn gate_lanes<const L: usize>(gates: &[f32], u0: usize, n: usize, gate: usize) -> [f32; L] {
    if n == L {
        // Whole blocks: each gate's lanes are 8-float runs, picked with
        // constant indices in a loop of constant length, which compiles to
        // vector loads. (`std::array::from_fn` with the same indices was
        // left uninlined in the 16-lane AVX-512 copy, a scalar load and a
        // bounds check per lane: the update took 4.3-4.9x as long.)
        let block = &gates[4 * u0..4 * (u0 + L)];
        let mut lanes = [0.0f32; L];
        for l in 0..L {
            lanes[l] = block[(l / BLOCK_UNITS) * 4 * BLOCK_UNITS + gate * BLOCK_UNITS + l % BLOCK_UNITS];
        }
        return lanes;
    }
    let mut lanes = [0.0f32; L];
    for b0 in (0..n).step_by(BLOCK_UNITS) {
        let width = (n - b0).min(BLOCK_UNITS);
        let block = &gates[4 * (u0 + b0)..4 * (u0 + b0 + width)];
        lanes[b0..b0 + width].copy_from_slice(&block[gate * width..(gate + 1) * width]);
    }
    lanes
}

/// `L` lanes of `v[u0..]` (zeros past its end).
#[inline(always)]
fn lanes_of<const L: usize>(v: &[f32], u0: usize) -> [f32; L] {
    let n = (v.len() - u0).min(L);
    if n == L {
        return v[u0..u0 + L].try_into().unwrap();
    }
    let mut lanes = [0.0f32; L];
    lanes[..n].copy_from_slice(&v[u0..u0 + n]);
    lanes
}

/// Writes `lanes` to `v[u0..]`, as many as fit. A whole group is one
/// fixed-size copy, which compiles to vector moves; a copy of a variable
/// length is a call to `memmove`.
#[inline(always)]
fn store_lanes<const L: usize>(v: &mut [f32], u0: usize, lanes: &[f32; L]) {
    let n = (v.len() - u0).min(L);
    if n == L {
        v[u0..u0 + L].copy_from_slice(lanes);
    } else {
        v[u0..u0 + n].copy_from_slice(&lanes[..n]);
    }
}

/// The blocked cell update over groups of `L` lanes (`L` a multiple of
/// [`BLOCK_UNITS`]), in the two passes of [`lstm_cell_update_blocks`].
#[inline(always)]
fn cell_update_blocks_kernel<const FUSED: bool, const L: usize>(gates: &[f32], c: &mut [f32], h: &mut [f32]) {
    const { assert!(L.is_multiple_of(BLOCK_UNITS)) };
    let units = c.len();
    for u0 in (0..units).step_by(L) {
        let n = (units - u0).min(L);
        let (i, f, g) = (
            gate_lanes::<L>(gates, u0, n, 0),
            gate_lanes::<L>(gates, u0, n, 1),
            gate_lanes::<L>(gates, u0, n, 2),
        );
        let mut cs = lanes_of::<L>(c, u0);
        for l in 0..L {
            cs[l] = cell_state::<FUSED>(i[l], f[l], g[l], cs[l]);
        }
        store_lanes(c, u0, &cs);
    }
    for u0 in (0..units).step_by(L) {
        let n = (units - u0).min(L);
        let o = gate_lanes::<L>(gates, u0, n, 3);
        let cs = lanes_of::<L>(c, u0);
        let mut hs = [0.0f32; L];
        for l in 0..L {
            hs[l] = hidden_state::<FUSED>(o[l], cs[l]);
        }
        store_lanes(h, u0, &hs);
    }
}

/// One unit's update: `c = σ(f)·c + σ(i)·tanh(g)`, `h = σ(o)·tanh(c)`.
///
/// Division is the slowest vector operation (one per 16 cycles or so);
/// written directly this takes five. Here every sigmoid and tanh is a
/// fraction of two polynomials ([`tanh_ratio`]), and the fractions of each
/// line are put over one denominator: two divisions per unit, no `exp`.
/// `σ` is accurate to about 2e-7
/// absolute, like MLAS's (ONNX Runtime), not relative near 0; `tanh` to
/// 2.7e-7.
#[inline(always)]
fn cell_step<const FUSED: bool>(gi: f32, gf: f32, gg: f32, go: f32, c: &mut f32, h: &mut f32) {
    *c = cell_state::<FUSED>(gi, gf, gg, *c);
    *h = hidden_state::<FUSED>(go, *c);
}

/// Where [`tanh_ratio`] clamps its argument: `tanh(9) = 1 - 3e-8`, which
/// rounds to 1 in f32.
const TANH_RATIO_CLAMP: f32 = 9.0;
/// [`tanh_ratio`]'s numerator `P` and denominator `Q`, polynomials in `x²`
/// (lowest power first), fitted by `tools/fit_tanh.py`: over the whole
/// line `x·P/Q` evaluated in f32 is within 2.7e-7 of `tanh` (about four
/// ulps near ±1), and exactly `x` near 0 (`P(0) = Q(0) = 1`). `Q` stays in
/// [1, 420].
const TANH_P: [f32; 5] = [1.0, 0.133_810_24, 3.495_585_6e-3, 2.060_903_5e-5, 1.335_458_7e-8];
const TANH_Q: [f32; 5] = [1.0, 0.467_143_4, 2.587_697_3e-2, 3.285_630_7e-4, 7.776_53e-7];

/// `tanh(x)` as a fraction `(x·P(x²), Q(x²))` of two polynomials (a NaN
/// passes through): shallower and cheaper than through `exp`, and the
/// fractions of a cell update combine over one denominator.
#[inline(always)]
fn tanh_ratio<const FUSED: bool>(x: f32) -> (f32, f32) {
    let x = x.clamp(-TANH_RATIO_CLAMP, TANH_RATIO_CLAMP);
    let y = x * x;
    let horner = |c: &[f32; 5]| c[..4].iter().rev().fold(c[4], |acc, &k| madd::<FUSED>(acc, y, k));
    (x * horner(&TANH_P), horner(&TANH_Q))
}

/// The first line of [`cell_step`], the new `c = σ(f)·c + σ(i)·tanh(g)`,
/// with one division: `σ(x) = (1 + tanh(x/2)) / 2` and `tanh` are
/// fractions ([`tanh_ratio`]) put over one denominator.
#[inline(always)]
fn cell_state<const FUSED: bool>(gi: f32, gf: f32, gg: f32, c: f32) -> f32 {
    let (ni, di) = tanh_ratio::<FUSED>(0.5 * gi);
    let (nf, df) = tanh_ratio::<FUSED>(0.5 * gf);
    let (ng, dg) = tanh_ratio::<FUSED>(gg);
    // σ(f) = (df + nf) / 2df and σ(i) = (di + ni) / 2di, so
    // c·σ(f) + σ(i)·ng/dg = (c·(df + nf)·di·dg + (di + ni)·ng·df) / (2·df·di·dg).
    let di_dg = di * dg;
    madd::<FUSED>(c, (df + nf) * di_dg, (di + ni) * ng * df) / (2.0 * df * di_dg)
}

/// The second line of [`cell_step`], `h = σ(o)·tanh(c)`, with one division
/// (as in [`cell_state`]).
#[inline(always)]
fn hidden_state<const FUSED: bool>(go: f32, c: f32) -> f32 {
    let (no, d_o) = tanh_ratio::<FUSED>(0.5 * go);
    let (nc, dc) = tanh_ratio::<FUSED>(c);
    (d_o + no) * nc / (2.0 * d_o * dc)
}

#[inline(always)]
fn cell_update_kernel<const FUSED: bool>(gates: &[f32], c: &mut [f32], h: &mut [f32]) {
    let hidden = c.len();
    let (gi, rest) = gates.split_at(hidden);
    let (gf, rest) = rest.split_at(hidden);
    let (gg, go) = rest.split_at(hidden);
    let full = hidden / LANES * LANES;
    for j0 in (0..full).step_by(LANES) {
        let cs: &mut [f32; LANES] = (&mut c[j0..j0 + LANES]).try_into().unwrap();
        let hs: &mut [f32; LANES] = (&mut h[j0..j0 + LANES]).try_into().unwrap();
        let (i, f): (&[f32; LANES], &[f32; LANES]) = (gi[j0..j0 + LANES].try_into().unwrap(), gf[j0..j0 + LANES].try_into().unwrap());
        let (g, o): (&[f32; LANES], &[f32; LANES]) = (gg[j0..j0 + LANES].try_into().unwrap(), go[j0..j0 + LANES].try_into().unwrap());
        for l in 0..LANES {
            cell_step::<FUSED>(i[l], f[l], g[l], o[l], &mut cs[l], &mut hs[l]);
        }
    }
    // The tail (all of a packed panel's 8 units) runs padded to a full group
    // of lanes, so it is vectorised too.
    let tail = hidden - full;
    if tail > 0 {
        let pad = |src: &[f32]| {
            let mut lanes = [0.0f32; LANES];
            lanes[..tail].copy_from_slice(&src[full..]);
            lanes
        };
        let (i, f, g, o) = (pad(gi), pad(gf), pad(gg), pad(go));
        let (mut cs, mut hs) = (pad(c), [0.0f32; LANES]);
        for l in 0..LANES {
            cell_step::<FUSED>(i[l], f[l], g[l], o[l], &mut cs[l], &mut hs[l]);
        }
        c[full..].copy_from_slice(&cs[..tail]);
        h[full..].copy_from_slice(&hs[..tail]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> Vec<f32> {
        // Dense near zero, where tanh is delicate, and out to saturation.
        let mut v: Vec<f32> = (-300_000..=300_000).map(|i| i as f32 * 1e-4).collect();
        v.extend([0.0, -0.0, 1e-30, -1e-30, 1e-8, 100.0, -100.0, 1e6, -1e6, f32::MAX, f32::MIN]);
        v
    }

    #[test]
    fn sigmoid_is_within_3e7_of_f64() {
        let xs = grid();
        let mut v = xs.clone();
        sigmoid_inplace(&mut v);
        let worst = xs
            .iter()
            .zip(&v)
            .map(|(&x, &y)| ((1.0 / (1.0 + (-(x as f64)).exp())) - y as f64).abs())
            .fold(0.0, f64::max);
        assert!(worst < 3e-7, "max abs error {worst:e}");
    }

    #[test]
    fn tanh_is_within_3e7_abs_and_2e6_rel_of_f64() {
        let xs = grid();
        let mut v = xs.clone();
        tanh_inplace(&mut v);
        let mut worst_abs = 0.0f64;
        let mut worst_rel = 0.0f64;
        for (&x, &y) in xs.iter().zip(&v) {
            let want = (x as f64).tanh();
            let err = (want - y as f64).abs();
            worst_abs = worst_abs.max(err);
            if want != 0.0 {
                worst_rel = worst_rel.max(err / want.abs());
            }
        }
        assert!(worst_abs < 3e-7, "max abs error {worst_abs:e}");
        assert!(worst_rel < 2e-6, "max rel error {worst_rel:e}");
    }

    #[test]
    fn blocked_cell_update_matches_the_plain_one() {
        for units in [0usize, 1, 7, 8, 9, 16, 17, 24, 31, 45] {
            let plain_gates: Vec<f32> = (0..4 * units).map(|i| ((i * 53 % 97) as f32 - 48.0) / 9.0).collect();
            // The same gates in blocks: [i f g o] per block of 8 units.
            let mut blocked = Vec::new();
            for b0 in (0..units).step_by(BLOCK_UNITS) {
                let width = (units - b0).min(BLOCK_UNITS);
                for gate in 0..4 {
                    blocked.extend_from_slice(&plain_gates[gate * units + b0..gate * units + b0 + width]);
                }
            }
            let c0: Vec<f32> = (0..units).map(|j| (j as f32 - 5.0) / 3.0).collect();
            let (mut c_plain, mut h_plain) = (c0.clone(), vec![0.0; units]);
            lstm_cell_update(&plain_gates, &mut c_plain, &mut h_plain);
            let (mut c_blocked, mut h_blocked) = (c0.clone(), vec![f32::NAN; units]);
            lstm_cell_update_blocks(&blocked, &mut c_blocked, &mut h_blocked);
            assert_eq!(c_plain, c_blocked, "c for {units} units");
            assert_eq!(h_plain, h_blocked, "h for {units} units");
        }
    }

    #[test]
    fn cell_update_is_accurate_at_saturation_and_keeps_nan() {
        let extremes = [-100.0f32, -30.0, -20.5, -1.0, 0.0, 1e-3, 0.5, 20.5, 30.0, 100.0];
        let cells = [-1000.0f32, -5.0, 0.0, 0.3, 5.0, 1000.0];
        let sig = |x: f32| 1.0 / (1.0 + (-(x as f64)).exp());
        let mut gates = Vec::new();
        let mut c0 = Vec::new();
        for &i in &extremes {
            for &f in &extremes {
                for &g in &[-100.0f32, -0.01, 0.0, 0.05, 2.0, 100.0] {
                    for &c in &cells {
                        gates.push([i, f, g, extremes[(c0.len() * 7) % extremes.len()]]);
                        c0.push(c);
                    }
                }
            }
        }
        let n = c0.len();
        let mut plain = vec![0.0f32; 4 * n];
        for (u, g) in gates.iter().enumerate() {
            for gate in 0..4 {
                plain[gate * n + u] = g[gate];
            }
        }
        let (mut c, mut h) = (c0.clone(), vec![0.0f32; n]);
        lstm_cell_update(&plain, &mut c, &mut h);
        for u in 0..n {
            let [gi, gf, gg, go] = gates[u];
            let want_c = sig(gf) * c0[u] as f64 + sig(gi) * (gg as f64).tanh();
            let want_h = sig(go) * want_c.tanh();
            // σ is accurate to about 2e-7 absolute (it is (1 + tanh(x/2))/2,
            // like MLAS's), not relative near 0: σ(f)·c0 is as accurate as
            // that times |c0|, as f32 rounding of the product is anyway.
            let scale = want_c.abs().max(c0[u].abs() as f64).max(1.0);
            assert!(
                (c[u] as f64 - want_c).abs() < 1e-6 * scale,
                "c for gates {:?}, c0 {}: {} vs {want_c}",
                gates[u],
                c0[u],
                c[u]
            );
            // h inherits c's error (|tanh'| <= 1).
            assert!(
                (h[u] as f64 - want_h).abs() < 1e-6 * scale,
                "h for gates {:?}, c0 {}: {} vs {want_h}",
                gates[u],
                c0[u],
                h[u]
            );
        }
        for gate in 0..4 {
            let mut g = [0.5f32; 4];
            g[gate] = f32::NAN;
            let (mut c, mut h) = ([0.5f32], [0.0f32]);
            lstm_cell_update(&g, &mut c, &mut h);
            assert!(h[0].is_nan(), "a NaN in gate {gate} must reach h");
        }
    }

    #[test]
    fn cell_update_matches_the_formula() {
        for hidden in [1usize, 7, 16, 17, 33] {
            let gates: Vec<f32> = (0..4 * hidden).map(|i| ((i * 37 % 101) as f32 - 50.0) / 10.0).collect();
            let c0: Vec<f32> = (0..hidden).map(|j| (j as f32 - 3.0) / 4.0).collect();
            let mut c = c0.clone();
            let mut h = vec![0.0; hidden];
            lstm_cell_update(&gates, &mut c, &mut h);
            let sig = |x: f32| 1.0 / (1.0 + (-(x as f64)).exp());
            for j in 0..hidden {
                let want_c = sig(gates[hidden + j]) * c0[j] as f64 + sig(gates[j]) * (gates[2 * hidden + j] as f64).tanh();
                let want_h = sig(gates[3 * hidden + j]) * want_c.tanh();
                assert!((c[j] as f64 - want_c).abs() < 1e-6, "c[{j}] for hidden {hidden}");
                assert!((h[j] as f64 - want_h).abs() < 1e-6, "h[{j}] for hidden {hidden}");
            }
        }
    }
}
