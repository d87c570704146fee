#!/usr/bin/env python3
"""ONNX Runtime peer for issbench: runs a model that `issbench export-onnx`
wrote, or the user's own ONNX file, on the CPU execution provider.

Install (one line, a virtual environment outside the repository):
    python3 -m venv ~/.venvs/ort && ~/.venvs/ort/bin/pip install onnxruntime numpy

issbench calls it with ISSBENCH_PYTHON pointing at that interpreter:
    peer_ort.py version
        prints the onnxruntime version ("1.32.0").
    peer_ort.py check MODEL.onnx INPUT.npy EXPECTED.npy [TOL]
        runs MODEL on INPUT ([seq, batch] int64 tokens or [seq, batch, in]
        float32 features) and compares with EXPECTED ([seq, batch, out]);
        prints the max abs and relative error; exits 1 above TOL (1e-4).
    peer_ort.py time MODEL.onnx --batch B --seq S --threads T
                     [--budget-ms MS --min-runs N --max-runs N --vocab V]
        times MODEL with intra_op_num_threads = T (inter_op 1), the same
        protocol as issbench (1 warm-up run, then runs until the budget,
        at least min and at most max runs) and prints one JSON object:
        median_ns, min_ns, max_ns, ci_low_ns, ci_high_ns (95% bootstrap of
        the median, 1000 resamples), runs, version.
    peer_ort.py serve MODEL.onnx --batch B --seq S --threads T [--vocab V]
                      [--batch-major] [--check-input X.npy --check-expected Y.npy
                       --check-output NAME]
        what `issbench sweep --peer ort` uses: loads MODEL, runs it once
        (warm-up) and prints {"ready": true}; with --check-input, it first
        runs MODEL on X and adds "check": {"max_abs", "max_rel"} against Y
        (output NAME; or "error" when the shapes differ) to that line, so
        that issbench can confirm a user's file computes what it timed
        itself. --batch-major feeds [batch, seq] inputs (tf2onnx files);
        int32 token inputs are fed as int32. Then for every stdin line
        "time BUDGET_MS MIN_RUNS MAX_RUNS" times one round of runs and
        prints {"samples_ns": [...]}, one JSON object per line, until the
        end of input. issbench alternates these rounds with its own runs,
        so that both sides sample the same phases of a noisy host.
    time and serve take --quantize int8: the model is first quantized with
        onnxruntime.quantization.quantize_dynamic (s8 weights), as users
        deploy int8, and the ready line (or the timing) also carries
        max_abs_err and max_rel_err: the quantized model's largest output
        difference from the fp32 model on the same input.
"""

import argparse
import json
import os
import sys
import time

# numpy's own BLAS threads would otherwise spin beside ONNX Runtime's
# workers after numpy's first call and steal their cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402


def session(path, threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # ONNX Runtime's workers spin within a run (its default, kept) and, by
    # default, go on spinning after it: in a sweep that takes the cores
    # from the issbench runs timed in turn with the peer's (the compacted
    # PTB model at batch 1 on 2 threads went from 0.72 to 1.75 ms). Stop
    # the spinning at the end of each run.
    opts.add_session_config_entry("session.force_spinning_stop", "1")
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def feed(sess, x):
    return {sess.get_inputs()[0].name: x}


def errors(sess, x, want, output=None):
    """The max abs and relative error of MODEL's output (the first, or
    OUTPUT) on x against want, or an "error" when the shapes differ."""
    got = sess.run([output] if output else None, feed(sess, x))[0]
    if got.shape != want.shape:
        return {"error": f"shape {got.shape} != expected {want.shape}"}
    err = float(np.max(np.abs(got.astype(np.float64) - want)))
    return {"max_abs": err, "max_rel": err / max(float(np.max(np.abs(want))), 1e-30)}


def check(args):
    sess = session(args.model, 1)
    result = errors(sess, np.load(args.input), np.load(args.expected))
    if "error" in result:
        print(result["error"])
        return 1
    print(json.dumps(result))
    return 0 if result["max_rel"] <= args.tol else 1


def bootstrap_ci(samples, resamples=1000):
    rng = np.random.default_rng(0xB007)
    s = np.asarray(samples)
    idx = rng.integers(0, len(s), size=(resamples, len(s)))
    medians = np.sort(np.median(s[idx], axis=1))
    return float(medians[round(0.025 * (resamples - 1))]), float(medians[round(0.975 * (resamples - 1))])


def quantized(path):
    """MODEL with dynamic int8 quantization, as users deploy it:
    quantize_dynamic with s8 weights (LSTM becomes DynamicQuantizeLSTM,
    MatMul DynamicQuantizeMatMul), written next to it."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = path + ".int8.onnx"
    quantize_dynamic(path, out, weight_type=QuantType.QInt8)
    return out


def prepared(args):
    """The session for MODEL (quantized with --quantize int8) and its feed:
    the input drawn once, then one warm-up run. Quantized, also the
    largest output difference from the fp32 model on that input."""
    path = args.model
    if args.quantize == "int8":
        path = quantized(args.model)
    sess = session(path, args.threads)
    inp = sess.get_inputs()[0]
    rng = np.random.default_rng(1)
    seq_batch = (args.batch, args.seq) if args.batch_major else (args.seq, args.batch)
    if inp.type in ("tensor(int64)", "tensor(int32)"):
        dtype = np.int64 if inp.type == "tensor(int64)" else np.int32
        x = rng.integers(0, args.vocab, size=seq_batch).astype(dtype)
    else:
        width = inp.shape[2]
        x = rng.uniform(-1, 1, size=(*seq_batch, width)).astype(np.float32)
    f = feed(sess, x)
    got = sess.run(None, f)[0]
    error = None
    if path != args.model:
        want = session(args.model, args.threads).run(None, f)[0].astype(np.float64)
        os.remove(path)
        err = float(np.max(np.abs(got.astype(np.float64) - want)))
        error = {"max_abs_err": err, "max_rel_err": err / max(float(np.max(np.abs(want))), 1e-30)}
    return sess, f, error


def sample(sess, f, budget_ms, min_runs, max_runs):
    """Run times (ns) until the budget, at least min_runs and at most max_runs."""
    samples = []
    start = time.perf_counter()
    while len(samples) < max(max_runs, 1) and (len(samples) < min_runs or time.perf_counter() - start < budget_ms / 1e3):
        t = time.perf_counter_ns()
        sess.run(None, f)
        samples.append(time.perf_counter_ns() - t)
    return samples


def timing(args):
    sess, f, error = prepared(args)
    samples = sample(sess, f, args.budget_ms, args.min_runs, args.max_runs)
    lo, hi = bootstrap_ci(samples)
    print(json.dumps({
        "median_ns": float(np.median(samples)),
        "min_ns": float(min(samples)),
        "max_ns": float(max(samples)),
        "ci_low_ns": lo,
        "ci_high_ns": hi,
        "runs": len(samples),
        "version": ort.__version__,
        **(error or {}),
    }))
    return 0


def serve(args):
    sess, f, error = prepared(args)
    ready = {"ready": True, **(error or {})}
    if args.check_input:
        ready["check"] = errors(sess, np.load(args.check_input), np.load(args.check_expected), args.check_output)
    print(json.dumps(ready), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] != "time" or len(words) != 4:
            print(f"unknown request {line.strip()!r}", file=sys.stderr)
            return 2
        budget_ms, min_runs, max_runs = float(words[1]), int(words[2]), int(words[3])
        samples = sample(sess, f, budget_ms, min_runs, max_runs)
        print(json.dumps({"samples_ns": samples}), flush=True)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("version")
    c = sub.add_parser("check")
    c.add_argument("model")
    c.add_argument("input")
    c.add_argument("expected")
    c.add_argument("tol", nargs="?", type=float, default=1e-4)
    for name in ("time", "serve"):
        t = sub.add_parser(name)
        t.add_argument("model")
        t.add_argument("--batch", type=int, required=True)
        t.add_argument("--seq", type=int, required=True)
        t.add_argument("--threads", type=int, required=True)
        t.add_argument("--vocab", type=int, default=1)
        t.add_argument("--quantize", choices=["int8"], help="time the model quantized with quantize_dynamic (s8 weights)")
        t.add_argument("--batch-major", action="store_true")
        if name == "serve":
            t.add_argument("--check-input")
            t.add_argument("--check-expected")
            t.add_argument("--check-output")
        if name == "time":
            t.add_argument("--budget-ms", type=float, default=500)
            t.add_argument("--min-runs", type=int, default=3)
            t.add_argument("--max-runs", type=int, default=100)
    args = p.parse_args()
    if args.cmd == "version":
        print(ort.__version__)
        return 0
    return {"check": check, "time": timing, "serve": serve}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
