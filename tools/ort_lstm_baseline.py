#!/usr/bin/env python3
"""ONNX Runtime CPU LSTM baseline for issbench.

Purpose
-------
Measures ONNX Runtime's (CPUExecutionProvider) LSTM operator on the PTB
shapes of the ISS paper (Wen et al., "Learning Intrinsic Sparse Structures
within Long Short-Term Memory"), so that issbench's Rust kernels can be
compared with a mainstream peer on the same machine.

The model is built in memory with the `onnx` helper API: a stack of ONNX
`LSTM` ops (one per layer, layout 0, i.e. X is [seq, batch, input]); layer
k's Y output ([seq, 1, batch, hidden]) is fed to layer k+1 through a
Squeeze on axis 1.  Weights are random f32 (numpy, fixed seed, uniform in
+-1/sqrt(h)): W [1, 4h, in], R [1, 4h, h], B [1, 8h].  LSTM layers only:
no embedding, no softmax head.

Models:
  dense : input 1500, layers 1500 / 1500 (the paper's baseline large model)
  iss   : input 1500, layers 373 / 315 (ISS-compacted: layer 1 hidden 373
          with input 1500, layer 2 hidden 315 with input 373)

For every (model, threads, batch, seq) point: session with
intra_op_num_threads = T, inter_op_num_threads = 1, ORT_ENABLE_ALL; 3
warm-up runs, then timed runs until 2 s have elapsed or 50 runs are done,
but at least --min-runs (default 3) so slow points still get a median
(--quick: 1 warm-up, until 0.5 s or 10 runs, min-runs still applies).  Reports median / min / max
in ms, the number of timed runs, and GFLOP/s computed from the median with
    flops = 2 * seq * batch * sum_layers 4h * (in + h).

Install (virtual environment outside the repo):
    python3 -m venv /work/ortvenv && /work/ortvenv/bin/pip install onnxruntime onnx numpy

Usage examples:
    /work/ortvenv/bin/python tools/ort_lstm_baseline.py
    /work/ortvenv/bin/python tools/ort_lstm_baseline.py --model iss --threads 1 --batch 10 --quick
    /work/ortvenv/bin/python tools/ort_lstm_baseline.py --json ort.jsonl
"""

import argparse
import json
import platform
import statistics
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8  # matches opset 17; accepted by every recent onnxruntime

MODELS = {
    # name: (input size, [hidden sizes per layer])
    "dense": (1500, [1500, 1500]),
    "iss": (1500, [373, 315]),
}


def layer_dims(model):
    """List of (input, hidden) per layer."""
    inp, hiddens = MODELS[model]
    dims = []
    for h in hiddens:
        dims.append((inp, h))
        inp = h
    return dims


def flops(model, seq, batch):
    return 2 * seq * batch * sum(4 * h * (i + h) for i, h in layer_dims(model))


def build_model(model, seed=0):
    """Return a serialized ONNX ModelProto (bytes) for the stacked LSTM."""
    rng = np.random.default_rng(seed)
    dims = layer_dims(model)
    nodes, inits = [], []
    inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "sq_axes"))
    x_name = "X"
    for k, (i, h) in enumerate(dims):
        a = 1.0 / np.sqrt(h)
        W = rng.uniform(-a, a, size=(1, 4 * h, i)).astype(np.float32)
        R = rng.uniform(-a, a, size=(1, 4 * h, h)).astype(np.float32)
        B = rng.uniform(-a, a, size=(1, 8 * h)).astype(np.float32)
        for nm, arr in ((f"W{k}", W), (f"R{k}", R), (f"B{k}", B)):
            inits.append(numpy_helper.from_array(arr, nm))
        y4 = f"Y{k}_4d"
        nodes.append(
            helper.make_node(
                "LSTM",
                inputs=[x_name, f"W{k}", f"R{k}", f"B{k}"],
                outputs=[y4],
                name=f"lstm{k}",
                hidden_size=h,
                direction="forward",
                layout=0,
            )
        )
        y3 = "Y" if k == len(dims) - 1 else f"Y{k}"
        nodes.append(helper.make_node("Squeeze", [y4, "sq_axes"], [y3], name=f"squeeze{k}"))
        x_name = y3
    in_dim, last_h = dims[0][0], dims[-1][1]
    graph = helper.make_graph(
        nodes,
        f"lstm_{model}",
        inputs=[helper.make_tensor_value_info("X", TensorProto.FLOAT, ["seq", "batch", in_dim])],
        outputs=[helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["seq", "batch", last_h])],
        initializer=inits,
    )
    m = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="issbench-ort-baseline",
    )
    m.ir_version = IR_VERSION
    onnx.checker.check_model(m)
    return m.SerializeToString()


def make_session(model_bytes, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model_bytes, sess_options=so, providers=["CPUExecutionProvider"])


def time_point(sess, model, seq, batch, quick, min_runs=3, seed=1):
    in_dim = MODELS[model][0]
    x = np.random.default_rng(seed).uniform(-1, 1, size=(seq, batch, in_dim)).astype(np.float32)
    feeds = {"X": x}
    warmup, max_runs, budget = (1, 10, 0.5) if quick else (3, 50, 2.0)
    for _ in range(warmup):
        out = sess.run(["Y"], feeds)[0]
    assert out.shape == (seq, batch, MODELS[model][1][-1]), out.shape
    times = []
    t_start = time.perf_counter()
    while len(times) < min_runs or (len(times) < max_runs and (time.perf_counter() - t_start) < budget):
        t0 = time.perf_counter()
        sess.run(["Y"], feeds)
        times.append((time.perf_counter() - t0) * 1e3)
    med = statistics.median(times)
    return {
        "median_ms": med,
        "min_ms": min(times),
        "max_ms": max(times),
        "runs": len(times),
        "gflops": flops(model, seq, batch) / (med * 1e-3) / 1e9,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", nargs="+", choices=sorted(MODELS), default=["dense", "iss"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--batch", nargs="+", type=int, default=[1, 10, 64])
    ap.add_argument("--seq", nargs="+", type=int, default=[30])
    ap.add_argument("--quick", action="store_true", help="1 warm-up, at most 10 runs / 0.5 s")
    ap.add_argument("--min-runs", type=int, default=3, help="minimum timed runs per point (default 3)")
    ap.add_argument("--json", metavar="FILE", help="append one JSON object per point to FILE")
    ap.add_argument("--seed", type=int, default=0, help="weight seed")
    args = ap.parse_args()

    print(f"# onnxruntime {ort.__version__}, onnx {onnx.__version__}, numpy {np.__version__}, "
          f"python {platform.python_version()}, {platform.machine()}")
    print(f"# providers: CPUExecutionProvider; opset {OPSET}; inter_op=1; ORT_ENABLE_ALL"
          + ("; QUICK" if args.quick else ""))
    hdr = f"{'model':<6} {'thr':>3} {'batch':>5} {'seq':>4} {'median_ms':>10} {'min_ms':>9} {'max_ms':>9} {'runs':>4} {'GFLOP/s':>8}"
    print(hdr)
    print("-" * len(hdr))
    sys.stdout.flush()

    jf = open(args.json, "a") if args.json else None
    for model in args.model:
        mbytes = build_model(model, seed=args.seed)
        for t in args.threads:
            sess = make_session(mbytes, t)
            for b in args.batch:
                for s in args.seq:
                    r = time_point(sess, model, s, b, args.quick, min_runs=args.min_runs)
                    print(f"{model:<6} {t:>3} {b:>5} {s:>4} {r['median_ms']:>10.3f} {r['min_ms']:>9.3f} "
                          f"{r['max_ms']:>9.3f} {r['runs']:>4} {r['gflops']:>8.2f}")
                    sys.stdout.flush()
                    if jf:
                        rec = {"impl": "onnxruntime", "ort_version": ort.__version__, "model": model,
                               "threads": t, "batch": b, "seq": s, "quick": args.quick,
                               "flops": flops(model, s, b), **r}
                        jf.write(json.dumps(rec) + "\n")
                        jf.flush()
            del sess
    if jf:
        jf.close()


if __name__ == "__main__":
    main()
