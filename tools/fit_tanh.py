#!/usr/bin/env python3
"""Fits the rational tanh of issbench's LSTM cell update
(src/kernels/activations.rs, TANH_P and TANH_Q):

    tanh(x) ~ x * P(x^2) / Q(x^2),   |x| clamped to X = 9,
    P and Q of degree 4, P(0) = Q(0) = 1 in f32 (so it is exactly x near 0).

Method: linearised least squares in s = x^2 / X^2 (well conditioned) on a
dense grid of [0, X], reweighted by Lawson's rule towards the minimax
relative error; then the coefficients are rounded to f32 and the whole
function is evaluated in f32 (with fused multiply-adds, as the kernels do)
over [-30, 30] against float64 tanh.

Run: python3 tools/fit_tanh.py   (numpy only)
It prints the coefficients and the f32 error (about 2.7e-7 absolute).
"""

import numpy as np

DP, DQ, X = 4, 4, 9.0


def fit(dp, dq, x_max, iters=300):
    x = np.unique(np.concatenate([np.linspace(1e-4, x_max, 20000), np.geomspace(1e-6, 1e-4, 200)]))
    t = np.tanh(x)
    s = (x / x_max) ** 2
    vp = x[:, None] * s[:, None] ** np.arange(dp + 1)
    vq = s[:, None] ** np.arange(1, dq + 1)
    w = np.ones_like(x)
    q_val = np.ones_like(x)
    best = (np.inf, None)
    for _ in range(iters):
        # Relative residual (x P - t Q) / (t Q), linear in the coefficients
        # once Q is taken from the previous iteration.
        a = np.concatenate([vp, -t[:, None] * vq], axis=1) / (t * q_val)[:, None]
        b = 1.0 / q_val
        sw = np.sqrt(w)
        coef, *_ = np.linalg.lstsq(a * sw[:, None], b * sw, rcond=None)
        p = coef[: dp + 1]
        q = np.concatenate([[1.0], coef[dp + 1 :]])
        q_val = np.polyval(q[::-1], s)
        err = (x * np.polyval(p[::-1], s) / q_val - t) / t
        worst = np.abs(err).max()
        if worst < best[0]:
            best = (worst, (p.copy(), q.copy()))
        w = w * (np.abs(err) + 1e-3 * worst)
        w /= w.sum()
    p, q = best[1]
    scale = x_max * x_max
    return p / scale ** np.arange(dp + 1), q / scale ** np.arange(dq + 1)


def horner_f32(coef, y):
    """Horner in f32 with fused multiply-adds (the product and sum in f64,
    rounded once to f32)."""
    acc = np.full_like(y, np.float32(coef[-1]))
    for c in coef[-2::-1]:
        acc = (acc.astype(np.float64) * y.astype(np.float64) + np.float64(c)).astype(np.float32)
    return acc


def tanh_f32(p, q, x):
    xc = np.clip(x.astype(np.float32), -np.float32(X), np.float32(X))
    y = (xc * xc).astype(np.float32)
    return (xc * horner_f32(p, y) / horner_f32(q, y)).astype(np.float32)


def main():
    p, q = fit(DP, DQ, X)
    p32, q32 = p.astype(np.float32), q.astype(np.float32)
    # Q(0) = 1 by construction; the fit finds P(0) = 1 to f32 precision.
    assert p32[0] == 1.0 and q32[0] == 1.0, (p32[0], q32[0])
    xs = np.concatenate([np.arange(-300000, 300001) * 1e-4, [1e-30, 1e-8, 100, -100, 1e6]]).astype(np.float32)
    got = tanh_f32(p32, q32, xs).astype(np.float64)
    want = np.tanh(xs.astype(np.float64))
    rel = np.abs(got - want) / np.maximum(np.abs(want), 1e-30)
    # Shortest decimals that round back to the same f32.
    print("TANH_P =", [np.format_float_positional(v, unique=True) for v in p32])
    print("TANH_Q =", [np.format_float_positional(v, unique=True) for v in q32])
    print(f"f32 over [-30, 30]: max abs error {np.abs(got - want).max():.2e}, max rel error {rel.max():.2e}")
    print(f"Q on [0, X]: {float(horner_f32(q32, np.float32([0.0]))[0]):.1f} .. {float(horner_f32(q32, np.float32([X * X]))[0]):.1f}")


if __name__ == "__main__":
    main()
