#!/usr/bin/env python3
"""Write issbench's fixtures for the formats users deploy: ONNX, Keras 3 `.keras`, legacy Keras `.h5`,
TensorFlow SavedModel.

Companion of tools/make_fixtures.py and tools/make_rnn_fixtures.py (same conventions, same sidecars, same
determinism, same self-checks; it imports their helpers).  Every file is written by the real writer
(`torch.onnx.export` with both exporters, `tf2onnx.convert.from_keras`, Keras 3 `model.save(...keras / .h5)`,
Keras 3 `model.export(dir)`, `tf.saved_model.save`), every reference output is computed by the framework
(torch / Keras) from a zero initial state, and for the ONNX files also by ONNX Runtime (they must agree to
1e-5).  Planted ISS components in every layer and direction; see tools/README-deployed-fixtures.md.

Most models are the SAME weights as existing fixtures (regenerated from the same seeds; the script asserts
bit-identical canonical weights and identical inputs against the committed `*.canonical.npz` / `*.io.npz`):

    same_torch.onnx, same_torch_legacy.onnx             == same_torch.pt (and same_tf/, same.npz, ...)
    torch_gru.onnx, torch_gru_legacy.onnx               == torch_gru.pt
    keras_lstm.keras / .h5 / _export/ / _savedmodel/ / _tf2onnx.onnx == keras_lstm.npz
    keras_bilstm.keras / .h5                            == keras_bilstm.npz
    keras_gru_reset_after.keras / .h5                   == keras_gru_reset_after.npz
    torch_bilstm_feat.onnx, torch_bilstm_feat_legacy.onnx: a new model (float features in, no embedding)

For each fixture PATH (a file, or a directory for a SavedModel):
    PATH.io.npz         input  int64 [seq, batch] token ids (time-major) or float32 [seq, batch, in] features;
                        output float32 [seq, batch, out] (framework); ONNX files also output_ort (ONNX Runtime)
    PATH.json           sidecar: format (onnx | keras | keras-h5 | saved-model), cell, directions, layers, iss,
                        and the structure a reader needs (onnx_graph / hdf5 / zip_entries / saved_model)
    PATH.canonical.npz  the canonical weights a loader must produce, bit-for-bit

Determinism: fixed seeds, one thread, TF_ENABLE_ONEDNN_OPTS=0.  Four writers embed run-dependent bytes, which
the script normalises after writing (and then re-checks that the framework loads the file and gives the same
output): the `.keras` zip (entry timestamp of model.weights.h5, metadata.json date_saved, config.json
shared_object_id = Python id()s), fingerprint.pb of both SavedModels (random uuid), Keras' model.export
(variable order of `_all_variables` comes from a set of ids: patched to a sorted order; seed-generator state:
keras.utils.set_random_seed), and tf2onnx (constant names renumbered).  The dynamo exporter records this
file's absolute path and line numbers in node metadata.  See tools/README-deployed-fixtures.md.

Install (virtual environment outside the repo):
    python3 -m venv /work/fxvenv && /work/fxvenv/bin/pip install 'tensorflow-cpu==2.21.*' torch safetensors \
        numpy onnx onnxruntime tf2onnx onnxscript h5py
Run (from the repository root; ~15 s on 2 cores):
    /work/fxvenv/bin/python tools/make_deployed_fixtures.py            # writes tests/fixtures/
    /work/fxvenv/bin/python tools/make_deployed_fixtures.py --out DIR  # elsewhere (determinism checks)
"""

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import sys
import zipfile

sys.dont_write_bytecode = True  # importing make_fixtures / make_rnn_fixtures must not leave tools/__pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # as make_fixtures.py (it is imported after torch here)
# torch.onnx.export(dynamo=True) imports torch._dynamo -> triton, which loads its own LLVM: importing it AFTER
# TensorFlow aborts the process ("CommandLine Error: Option 'bitcode-mdindex-threshold' registered more than
# once"); before TensorFlow it works.
import torch  # noqa: E402
import torch._dynamo  # noqa: E402,F401

import make_fixtures as mf  # noqa: E402  (sets TF threads / oneDNN off, imports TF, keras, torch)
import make_rnn_fixtures as rf  # noqa: E402

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import numpy_helper  # noqa: E402

tf, keras, torch = mf.tf, mf.keras, mf.torch
import tf2onnx  # noqa: E402

try:
    import onnxscript  # noqa: E402  (needed by torch.onnx.export(dynamo=True))
except ImportError:  # pragma: no cover
    onnxscript = None

from tensorflow.core.protobuf import fingerprint_pb2, trackable_object_graph_pb2  # noqa: E402

SEQ, BATCH, TOL, F32 = mf.SEQ, mf.BATCH, mf.TOL, mf.F32
REPO_FIXTURES = mf.OUT  # the committed fixtures (cross-checks), whatever --out says
OUT = mf.OUT
OPSET_LEGACY = 17  # TorchScript exporter and tf2onnx
OPSET_DYNAMO = 18  # the dynamo exporter's own opset (asking it for 17 makes it down-convert with the onnx C API)
FIXED_DATE_SAVED = "1980-01-01@00:00:00"


def versions():
    v = mf.versions()
    v.update({
        "script": "tools/make_deployed_fixtures.py",
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "onnxscript": getattr(onnxscript, "__version__", None),
        "tf2onnx": tf2onnx.__version__,
        "h5py": h5py.__version__,
        "hdf5": h5py.version.hdf5_version,
    })
    return v


rf.versions = versions  # rf.write_sidecars records versions() of its own module
REPORT = rf.REPORT


def set_out(path):
    global OUT
    OUT = mf.OUT = rf.OUT = os.path.abspath(path)
    os.makedirs(OUT, exist_ok=True)


def ort_session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def check_against_committed(name, canon, x):
    """The model must be the one of the committed fixture `name` (bit-identical canonical weights, same input)."""
    p = os.path.join(REPO_FIXTURES, name)
    if not os.path.exists(p + ".canonical.npz"):
        print(f"  (cross-check skipped: {name}.canonical.npz not found)")
        return None
    with np.load(p + ".canonical.npz") as f:
        ref = {k: f[k] for k in f.files}
    mine = rf.canon_arrays(canon)
    assert sorted(ref) == sorted(mine), (name, sorted(ref), sorted(mine))
    for k in ref:
        assert np.array_equal(ref[k].view(np.uint32), mine[k].view(np.uint32)), f"{name}: {k} differs from committed"
    with np.load(p + ".io.npz") as f:
        assert np.array_equal(f["input"], x), f"{name}: input differs from committed"
        ref_out = f["output"]
    return ref_out


def save_io(path, x, y, extra=None):
    d = {"input": x, "output": y.astype(F32)}
    for k, v in (extra or {}).items():
        d[k] = v.astype(F32)
    np.savez(path + ".io.npz", **d)


# ----------------------------------------------------------------------------
# Canonical conversions shared by the readers below
# ----------------------------------------------------------------------------


def reorder_blocks(a, perm, axis=0):
    b = np.split(a, len(perm), axis=axis)
    return np.ascontiguousarray(np.concatenate([b[p] for p in perm], axis=axis))


ONNX_LSTM_PERM = [0, 2, 3, 1]  # canonical (i, f, g, o) block j = ONNX (i, o, f, c) block PERM[j]
ONNX_GRU_PERM = [1, 0, 2]  # canonical (r, z, n) = ONNX (z, r, h) blocks 1, 0, 2


def keras_cell_to_canon(cell, kernel, rkernel, bias, reset_after):
    """Keras LSTM / GRU cell variables -> canonical direction dict (as rf.canonical_from_keras)."""
    if cell == "lstm":
        return {"w_ih": np.ascontiguousarray(kernel.T), "w_hh": np.ascontiguousarray(rkernel.T), "bias": bias}
    if bias.ndim == 2:
        assert reset_after
        b_ih, b_hh = rf.rzn_swap(bias[0]), rf.rzn_swap(bias[1])
    else:
        assert not reset_after
        b_ih, b_hh = rf.rzn_swap(bias), np.zeros_like(bias)
    return {"w_ih": np.ascontiguousarray(rf.rzn_swap(kernel.T, 0)), "w_hh": np.ascontiguousarray(rf.rzn_swap(rkernel.T, 0)),
            "b_ih": b_ih, "b_hh": b_hh}


def canon_from_keras_layers(entries, cell, reset_after):
    """entries: ordered [("embedding", E) | ("rnn", {dir: (kernel, rkernel, bias)}) | ("dense", K, b)]."""
    c = {"cell": cell, "depth": None, "tied": False, "reset_after": reset_after, "embedding": None,
         "head_w": None, "head_b": None, "layers": []}
    for e in entries:
        if e[0] == "embedding":
            assert not c["layers"] and c["embedding"] is None
            c["embedding"] = e[1]
        elif e[0] == "rnn":
            assert c["head_w"] is None
            c["layers"].append({d: keras_cell_to_canon(cell, *v, reset_after) for d, v in e[1].items()})
        elif e[0] == "dense":
            assert c["head_w"] is None
            c["head_w"], c["head_b"] = np.ascontiguousarray(e[1].T), e[2]
    return c


# ----------------------------------------------------------------------------
# ONNX: a reference reader (what the Rust reader must do) and a graph dump
# ----------------------------------------------------------------------------

SEQ_GLUE = {"Squeeze", "Transpose", "Reshape", "Identity", "Cast", "Unsqueeze", "Flatten"}
DEFAULT_ACT = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"]}


def attr_dict(node):
    out = {}
    for a in node.attribute:
        if a.type == onnx.AttributeProto.TENSOR:
            out[a.name] = numpy_helper.to_array(a.t)
        else:
            v = onnx.helper.get_attribute_value(a)
            if isinstance(v, bytes):
                v = v.decode()
            elif isinstance(v, list):
                v = [x.decode() if isinstance(x, bytes) else x for x in v]
            out[a.name] = v
    return out


class OnnxGraph:
    def __init__(self, model):
        self.g = model.graph
        self.init = {t.name: numpy_helper.to_array(t) for t in self.g.initializer}
        self.const = dict(self.init)
        for n in self.g.node:
            if n.op_type == "Constant":
                a = attr_dict(n)
                if "value" in a:
                    self.const[n.output[0]] = a["value"]
        self.producer = {o: n for n in self.g.node for o in n.output}
        self.consumers = {}
        for n in self.g.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.inputs = [i.name for i in self.g.input if i.name not in self.init]
        self.outputs = [o.name for o in self.g.output]

    def trace_back(self, name, glue):
        """Follow data input 0 backwards through glue ops; returns (source value name, [glue nodes])."""
        path = []
        while name in self.producer and self.producer[name].op_type in glue:
            n = self.producer[name]
            path.append(n)
            name = n.input[0]
        return name, path[::-1]

    def sources(self, name, seen=None):
        """Non-constant sources (graph inputs, or values of non-glue ops) reachable backwards from name."""
        seen = set() if seen is None else seen
        if name in seen or name == "" or name in self.const:
            return set()
        seen.add(name)
        if name in self.inputs:
            return {name}
        n = self.producer[name]
        if n.op_type in ("Constant", "ConstantOfShape", "Shape"):
            return set()
        out = set()
        for i in n.input:
            out |= self.sources(i, seen)
        return out

    def is_zero(self, name):
        """Provably all-zero value: empty input, zero constant/initializer, Expand/Identity of one,
        ConstantOfShape with a zero (or absent) value."""
        if name == "":
            return True
        if name in self.const:
            return not np.any(self.const[name])
        n = self.producer.get(name)
        if n is None:
            return False
        if n.op_type in ("Expand", "Identity", "Reshape", "Unsqueeze", "Squeeze", "Tile"):
            return self.is_zero(n.input[0])
        if n.op_type == "ConstantOfShape":
            v = attr_dict(n).get("value")
            return v is None or not np.any(v)
        return False


def canonical_from_onnx(model):
    """Reference ONNX reader.  Returns (canonical model, info).  Refuses what is not a plain recurrent stack."""
    G = OnnxGraph(model)
    rnns = [n for n in G.g.node if n.op_type in ("LSTM", "GRU", "RNN")]
    assert rnns, "no LSTM / GRU node"
    kinds = {n.op_type for n in rnns}
    assert len(kinds) == 1 and kinds <= {"LSTM", "GRU"}, f"refuse: mixed or unsupported recurrent ops {kinds}"
    op = rnns[0].op_type
    cell = op.lower()
    Gn = 4 if op == "LSTM" else 3
    info = {"roles": {}, "layers": []}
    c = {"cell": cell, "depth": None, "tied": False, "reset_after": None, "embedding": None,
         "head_w": None, "head_b": None, "layers": []}
    prev_y = None
    for k, n in enumerate(rnns):
        a = attr_dict(n)
        direction = a.get("direction", "forward")
        assert direction in ("forward", "bidirectional"), f"refuse: direction {direction}"
        ndir = 2 if direction == "bidirectional" else 1
        assert "clip" not in a, "refuse: clip"
        assert a.get("input_forget", 0) == 0, "refuse: input_forget"
        assert a.get("layout", 0) == 0, "refuse: layout 1 (batch-major LSTM op)"
        assert "activation_alpha" not in a and "activation_beta" not in a, "refuse: activation_alpha/beta"
        acts = a.get("activations")
        assert acts is None or [s.lower() for s in acts] == [s.lower() for s in DEFAULT_ACT[op] * ndir], \
            f"refuse: activations {acts}"
        h = int(a["hidden_size"])
        ins = list(n.input) + [""] * (8 - len(n.input))
        X, W, R, B, seq_lens, init_h = ins[:6]
        assert seq_lens == "", "refuse: sequence_lens"
        assert G.is_zero(init_h), "refuse: nonzero initial_h"
        if op == "LSTM":
            assert G.is_zero(ins[6]), "refuse: nonzero initial_c"
            assert ins[7] == "", "refuse: peepholes P"
        else:
            lbr = int(a.get("linear_before_reset", 0))
            if c["reset_after"] is None:
                c["reset_after"] = bool(lbr)
            assert c["reset_after"] == bool(lbr), "refuse: mixed linear_before_reset"
        assert W in G.init and R in G.init and (B == "" or B in G.init), "refuse: W/R/B not initializers"
        Wa, Ra = G.init[W], G.init[R]
        Ba = G.init[B] if B else np.zeros((ndir, 2 * Gn * h), F32)
        assert Wa.dtype == np.float32 and Wa.shape[:2] == (ndir, Gn * h) and Ra.shape == (ndir, Gn * h, h)
        assert Ba.shape == (ndir, 2 * Gn * h)
        info["roles"][W] = f"layers.{k} W [dirs={ndir}, {Gn}h={Gn * h}, in={Wa.shape[2]}]"
        info["roles"][R] = f"layers.{k} R [dirs={ndir}, {Gn}h={Gn * h}, h={h}]"
        if B:
            info["roles"][B] = f"layers.{k} B [dirs={ndir}, 2*{Gn}h={2 * Gn * h}] = [Wb; Rb]"
        for z in (init_h,) + ((ins[6],) if op == "LSTM" else ()):
            if z in G.init:
                info["roles"][z] = "zero initial state"
        # where does X come from?
        src, glue = G.trace_back(X, SEQ_GLUE)
        layer_info = {"node": n.name, "op": op, "direction": direction, "hidden_size": h,
                      "glue_before": [(g.op_type, attr_dict(g).get("perm")) for g in glue]}
        if k == 0:
            p = G.producer.get(src)
            if p is not None and p.op_type == "Gather" and p.input[0] in G.init:
                E = G.init[p.input[0]]
                assert E.ndim == 2 and E.dtype == np.float32 and attr_dict(p).get("axis", 0) == 0
                c["embedding"] = E
                info["roles"][p.input[0]] = "embedding [vocab, emb] (Gather axis 0)"
                idx_src = G.sources(p.input[1])
                assert idx_src <= set(G.inputs) and len(idx_src) == 1, f"refuse: embedding indices from {idx_src}"
                info["input"] = {"name": next(iter(idx_src)), "kind": "token ids"}
            else:
                assert src in G.inputs, f"refuse: first recurrent layer fed by {src}"
                info["input"] = {"name": src, "kind": "features"}
            perms = [tuple(attr_dict(g)["perm"]) for g in glue if g.op_type == "Transpose"]
            info["input"]["layout"] = "batch-major (Transpose perm [1, 0, 2] before the first layer)" \
                if perms.count((1, 0, 2)) % 2 else "time-major"
        else:
            assert src == prev_y, f"refuse: layer {k} is not fed by layer {k - 1}'s Y ({src})"
            prev_dirs = len(c["layers"][-1])
            if prev_dirs == 2:
                kinds_ = [g.op_type for g in glue]
                assert "Transpose" in kinds_ and "Reshape" in kinds_, "bidirectional Y needs Transpose + Reshape"
                assert any(tuple(attr_dict(g).get("perm", ())) == (0, 2, 1, 3) for g in glue), \
                    "refuse: bidirectional Y must be transposed [0, 2, 1, 3] (-> [seq, batch, dirs, h]) before Reshape"
        L = {}
        for d in range(ndir):
            dn = (None if ndir == 1 else ("fw", "bw")[d])
            w = reorder_blocks(Wa[d], ONNX_LSTM_PERM if op == "LSTM" else ONNX_GRU_PERM)
            r = reorder_blocks(Ra[d], ONNX_LSTM_PERM if op == "LSTM" else ONNX_GRU_PERM)
            wb, rb = Ba[d][:Gn * h], Ba[d][Gn * h:]
            perm = ONNX_LSTM_PERM if op == "LSTM" else ONNX_GRU_PERM
            if op == "LSTM":
                L[dn] = {"w_ih": w, "w_hh": r, "bias": (reorder_blocks(wb, perm) + reorder_blocks(rb, perm)).astype(F32)}
            elif c["reset_after"]:
                L[dn] = {"w_ih": w, "w_hh": r, "b_ih": reorder_blocks(wb, perm), "b_hh": reorder_blocks(rb, perm)}
            else:  # linear_before_reset = 0: Rb of every gate sits outside r: fold it into b_ih
                L[dn] = {"w_ih": w, "w_hh": r, "b_ih": (reorder_blocks(wb, perm) + reorder_blocks(rb, perm)).astype(F32),
                         "b_hh": np.zeros(Gn * h, F32)}
        c["layers"].append(L)
        info["layers"].append(layer_info)
        prev_y = n.output[0]
    # the head: forward from the last Y through glue to MatMul / Gemm (+ Add), then glue to a graph output
    cur, glue_after = prev_y, []
    while True:
        cons = G.consumers.get(cur, [])
        assert len(cons) <= 1, f"refuse: {cur} has several consumers"
        if not cons:
            break
        nx = cons[0]
        if nx.op_type in SEQ_GLUE and nx.input[0] == cur:
            glue_after.append((nx.op_type, attr_dict(nx).get("perm")))
            cur = nx.output[0]
            continue
        if nx.op_type == "MatMul":
            assert nx.input[0] == cur and nx.input[1] in G.init, "refuse: MatMul head without initializer weight"
            Wh = G.init[nx.input[1]]
            assert Wh.ndim == 2, "refuse: MatMul head weight not 2-D"
            c["head_w"] = np.ascontiguousarray(Wh.T)
            info["roles"][nx.input[1]] = "head weight, transposed [width, out] (x @ W)"
            head_op = "MatMul"
        elif nx.op_type == "Gemm":
            ga = attr_dict(nx)
            assert ga.get("alpha", 1.0) == 1.0 and ga.get("beta", 1.0) == 1.0 and not ga.get("transA", 0)
            Wh = G.init[nx.input[1]]
            c["head_w"] = np.ascontiguousarray(Wh if ga.get("transB", 0) else Wh.T)
            info["roles"][nx.input[1]] = "head weight (Gemm B)"
            if len(nx.input) > 2 and nx.input[2]:
                c["head_b"] = G.init[nx.input[2]].reshape(-1)
                info["roles"][nx.input[2]] = "head bias (Gemm C)"
            head_op = "Gemm"
        else:
            raise AssertionError(f"refuse: unexpected {nx.op_type} after the recurrent stack")
        cur, glue_out = nx.output[0], []
        # after the product: glue (Reshape back to [.., out]) and at most one Add of a bias initializer
        while cur not in G.outputs:
            cons = G.consumers.get(cur, [])
            assert len(cons) == 1, f"refuse: {cur} has {len(cons)} consumers"
            nx = cons[0]
            if nx.op_type in SEQ_GLUE and nx.input[0] == cur:
                glue_out.append((nx.op_type, attr_dict(nx).get("perm")))
            elif nx.op_type == "Add" and c["head_b"] is None:
                other = [i for i in nx.input if i != cur]
                assert len(other) == 1 and other[0] in G.init, "refuse: head Add without initializer bias"
                bvec = G.init[other[0]]
                assert bvec.size == c["head_w"].shape[0], "refuse: head bias size"
                c["head_b"] = bvec.reshape(-1)
                info["roles"][other[0]] = "head bias [out]"
                glue_out.append(("Add(bias)", None))
            else:
                raise AssertionError(f"refuse: unexpected {nx.op_type} after the head")
            cur = nx.output[0]
        if c["head_b"] is None:
            c["head_b"] = np.zeros(c["head_w"].shape[0], F32)
        info["head"] = {"glue_before": glue_after, "op": head_op, "after": glue_out}
        break
    info["output"] = cur
    return c, info


def onnx_tensor_str(a, max_values=16):
    s = f"{a.dtype}{list(a.shape)}"
    if a.size and not np.any(a):
        return s + " zeros"
    if a.size <= max_values:
        return s + " " + json.dumps(a.reshape(-1).tolist() if a.ndim else a.item())
    return s


def vi_str(v):
    t = v.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]
    return f"{v.name}: {onnx.TensorProto.DataType.Name(t.elem_type)}{dims}"


def onnx_graph_desc(model, info):
    """The graph as the Rust reader sees it: one line per node, initializers with their roles."""
    g = model.graph
    nodes = []
    for n in g.node:
        attrs = []
        for k, v in attr_dict(n).items():
            attrs.append(f"{k}={onnx_tensor_str(v) if isinstance(v, np.ndarray) else json.dumps(v)}")
        line = f"{n.op_type}({', '.join(i if i else '<empty>' for i in n.input)}) -> {', '.join(n.output)}"
        nodes.append(line + (f"  [{'; '.join(attrs)}]" if attrs else ""))
    inits = []
    for t in g.initializer:
        a = numpy_helper.to_array(t)
        role = info["roles"].get(t.name)
        storage = "raw_data" if t.HasField("raw_data") else "typed field"
        if t.data_location == onnx.TensorProto.EXTERNAL:
            storage = "EXTERNAL"
        inits.append(f"{t.name}: {onnx_tensor_str(a, 4)} ({storage})" + (f" -- {role}" if role else ""))
    node_meta = sorted({p.key for n in g.node for p in n.metadata_props})
    return {
        "ir_version": model.ir_version,
        "opset_import": {o.domain or "ai.onnx": o.version for o in model.opset_import},
        "producer": f"{model.producer_name} {model.producer_version}",
        "graph_name": g.name,
        "inputs": [vi_str(v) for v in g.input if v.name not in {t.name for t in g.initializer}],
        "outputs": [vi_str(v) for v in g.output],
        "node_count": len(g.node),
        "nodes": nodes,
        "initializers": inits,
        "node_metadata_props_keys": node_meta,
        "value_info_count": len(g.value_info),
        "reader_walk": {k: v for k, v in info.items() if k != "roles"},
    }


# ----------------------------------------------------------------------------
# 1. torch.onnx.export (dynamo and TorchScript exporters)
# ----------------------------------------------------------------------------


class TorchRNN(torch.nn.Module):
    """[nn.Embedding ->] nn.LSTM / nn.GRU -> nn.Linear (module attributes embed / rnn / decoder, as
    make_rnn_fixtures.TorchRNNLM).  Defined here because the dynamo exporter records the file and line of
    forward() in every node's metadata_props (pkg.torch.onnx.stack_trace)."""

    def __init__(self, kind, vocab, n_in, hidden, num_layers, bidirectional, out):
        super().__init__()
        if vocab is not None:
            self.embed = torch.nn.Embedding(vocab, n_in)
        rnn = torch.nn.LSTM if kind == "lstm" else torch.nn.GRU
        self.rnn = rnn(n_in, hidden, num_layers=num_layers, bidirectional=bidirectional)
        self.decoder = torch.nn.Linear(hidden * (2 if bidirectional else 1), out)

    def forward(self, x):  # x: int64 [seq, batch] ids, or float32 [seq, batch, in] features
        if hasattr(self, "embed"):
            x = self.embed(x)
        out, _ = self.rnn(x)  # zero initial state
        return self.decoder(out)


def torch_state(m):
    sd = {} if m["embedding"] is None else {"embed.weight": m["embedding"]}
    for k, L in enumerate(m["layers"]):
        for d, P in L.items():
            sfx = "_reverse" if d == "bw" else ""
            for nm, key in (("weight_ih", "w_ih"), ("weight_hh", "w_hh"), ("bias_ih", "b_ih"), ("bias_hh", "b_hh")):
                sd[f"rnn.{nm}_l{k}{sfx}"] = P[key]
    sd["decoder.weight"] = m["head_w"]
    sd["decoder.bias"] = m["head_b"]
    return sd


def torch_module(m):
    cell, bi = m["cell"], len(m["layers"][0]) == 2
    hidden = rf.hidden_of(next(iter(m["layers"][0].values())))
    n_in = next(iter(m["layers"][0].values()))["w_ih"].shape[1]
    vocab = None if m["embedding"] is None else m["embedding"].shape[0]
    mod = TorchRNN(cell, vocab, n_in, hidden, len(m["layers"]), bi, m["head_w"].shape[0])
    sd = torch_state(m)
    assert sorted(mod.state_dict()) == sorted(sd), (sorted(mod.state_dict()), sorted(sd))
    mod.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()})
    return mod.eval()


def torch_export(mod, x, path, dynamo):
    xt = torch.from_numpy(x)
    kw = dict(input_names=["input"], output_names=["output"])
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        if dynamo:
            prog = torch.onnx.export(mod, (xt,), None, dynamo=True, opset_version=OPSET_DYNAMO, optimize=True,
                                     verbose=False, **kw)
            prog.save(path, external_data=False)
        else:
            torch.onnx.export(mod, (xt,), path, dynamo=False, opset_version=OPSET_LEGACY, do_constant_folding=True,
                              **kw)
    assert not [f for f in os.listdir(os.path.dirname(path)) if f.startswith(os.path.basename(path) + ".")
                and not f.endswith((".json", ".npz"))], "external data written"
    return "dynamo" if dynamo else "torchscript"


EXPORTER_DESC = {
    "dynamo": f"torch.onnx.export(module, (x,), dynamo=True, opset_version={OPSET_DYNAMO}, optimize=True, "
    "input_names=['input'], output_names=['output']).save(path, external_data=False) (torch.export-based exporter, "
    "the default since torch 2.9; needs onnxscript)",
    "torchscript": f"torch.onnx.export(module, (x,), path, dynamo=False, opset_version={OPSET_LEGACY}, "
    "do_constant_folding=True, input_names=['input'], output_names=['output']) (legacy TorchScript exporter)",
}

GLUE_NOTES = {
    "dynamo": "each LSTM/GRU Y [seq, dirs, batch, h] goes through Transpose(perm [0, 2, 1, 3]) + Reshape(shape "
    "initializer [seq, batch, dirs*h]) to the next layer / the head (also for one direction); initial_h / initial_c "
    "are one shared zero initializer [dirs, batch, h]; the head is MatMul(x, W^T initializer [width, out]) + "
    "Add(x, bias); embedding: Gather(embed.weight, input, axis=0)",
    "torchscript": "one direction: Y -> Squeeze(axes constant [1]); bidirectional: Y -> Transpose(perm [0, 2, 1, 3]) "
    "-> Reshape(Constant [seq, batch, 2h] or [0, 0, -1]); initial_h / initial_c = Expand(Constant zeros "
    "[dirs, batch, h], Concat([dirs], Unsqueeze(Gather(Shape(X), 1)), [h])): the batch size is read from the input "
    "shape at run time (Shape / Gather / Unsqueeze / Concat / Expand glue per layer, not on the data path); the "
    "head is MatMul(x, W^T initializer [width, out]) + Add(bias, x) (bias FIRST); embedding: "
    "Gather(embed.weight, input); W/R/B initializer names are meaningless (onnx::LSTM_223 ...)",
}


def write_torch_onnx(name, m, x, dynamo, same_as=None, extra_meta=None):
    path = os.path.join(OUT, name)
    mod = torch_module(m)
    y = rf.torch_run(mod, x)
    canon_ref = rf.canonical_from_model(m, "torch")
    rf.check_plant(m, canon_ref)
    err = mf.check_close(y, rf.np_forward(canon_ref, x), name)
    committed_y = check_against_committed(same_as, canon_ref, x) if same_as else None
    if committed_y is not None:
        mf.check_close(y, committed_y, f"{name} vs committed {same_as}")
    which = torch_export(mod, x, path, dynamo)
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    sess = ort_session(path)
    feed_name = sess.get_inputs()[0].name
    y_ort = sess.run(None, {feed_name: x})[0].astype(F32)
    err_ort = mf.check_close(y_ort, y, f"{name}: onnxruntime vs torch")
    canon, info = canonical_from_onnx(model)
    rf.assert_canon_equal(canon, canon_ref, name)
    mf.check_close(y_ort, rf.np_forward(canon, x), name + " ort vs float64")
    cell, bi = m["cell"], len(m["layers"][0]) == 2
    gates = "i,o,f,c" if cell == "lstm" else "z,r,h"
    meta = {
        "fixture": name,
        "files": [name],
        "format": "onnx",
        "writer": EXPORTER_DESC[which],
        "exporter": which,
        "opset": OPSET_DYNAMO if dynamo else OPSET_LEGACY,
        "source_module": type(mod).__name__ + ("(nn.Embedding -> " if m["embedding"] is not None else "(")
        + f"nn.{cell.upper()}(num_layers={len(m['layers'])}, bidirectional={bi}) -> nn.Linear)",
        "naming": "ONNX LSTM/GRU node inputs (initializer names are exporter-generated: find W/R/B by position)",
        "layout": ("LSTM node: W [dirs, 4h, in], R [dirs, 4h, h], B [dirs, 8h] = [Wb (4h); Rb (4h)], gates i,o,f,c; "
                   "canonical w_ih = W[d] blocks (0, 2, 3, 1), w_hh = R[d] likewise, bias = Wb + Rb (float32, same "
                   "reorder); dir 0 = fw, dir 1 = bw (direction 'bidirectional')"
                   if cell == "lstm" else
                   "GRU node (linear_before_reset=1): W [dirs, 3h, in], R [dirs, 3h, h], B [dirs, 6h] = [Wb; Rb], "
                   "gates z,r,h; canonical w_ih = W[d] blocks (1, 0, 2), w_hh = R[d] likewise, b_ih = Wb, b_hh = Rb "
                   "(same reorder); reset_after = linear_before_reset")
        + "; embedding = Gather data initializer [vocab, emb]; head.weight = transpose of the MatMul initializer "
        "[width, out], head.bias = the Add initializer",
        "gate_order_in_file": gates,
        "forget_bias": 0.0 if cell == "lstm" else None,
        "glue": GLUE_NOTES[which],
        "planted": rf.plant_meta(m),
        "max_abs_diff_vs_float64_reference": err,
        "onnxruntime": {"output_key": "output_ort", "max_abs_diff_vs_torch": err_ort,
                        "session": "CPUExecutionProvider, intra_op_num_threads=1"},
        "onnx_graph": onnx_graph_desc(model, info),
    }
    if same_as:
        meta["same_weights_as"] = same_as
    meta.update(extra_meta or {})
    inp = ("int64 [seq, batch] token ids, time-major (the graph input 'input' is the same int64 [5, 3])"
           if m["embedding"] is not None else
           f"float32 [seq, batch, {x.shape[-1]}] features, time-major (the graph input 'input' is the same)")
    rf.write_sidecars(path, meta, canon, x, y, inp, f"float32 [seq, batch, {y.shape[-1]}] logits",
                      f"torch {torch.__version__} (the exported module); output_ort: onnxruntime {ort.__version__} "
                      "running the .onnx file")
    save_io(path, x, y, {"output_ort": y_ort})
    return y, y_ort, canon


# ----------------------------------------------------------------------------
# 2.-4. Keras 3: .keras, legacy .h5, tf2onnx, SavedModel
# ----------------------------------------------------------------------------


def keras_build(m, names):
    """As rf.keras_build, with explicit model / input names (the legacy .h5 config records them)."""
    cell, bi = m["cell"], len(m["layers"][0]) == 2
    vocab, emb = m["embedding"].shape
    inp = keras.Input(shape=(SEQ,), batch_size=BATCH, dtype="int32", name="input_layer")
    z = keras.layers.Embedding(vocab, emb, name="embedding")(inp)
    for li, (L, nm) in enumerate(zip(m["layers"], names)):
        h = rf.hidden_of(next(iter(L.values())))
        if cell == "lstm":
            layer = keras.layers.LSTM(h, return_sequences=True, name=nm)
        else:
            layer = keras.layers.GRU(h, return_sequences=True, reset_after=m["reset_after"], name=nm)
        if bi:
            layer = keras.layers.Bidirectional(layer, merge_mode="concat",
                                               name="bidirectional" + ("" if li == 0 else f"_{li}"))
        z = layer(z)
    z = keras.layers.Dense(m["head_w"].shape[0], name="dense")(z)
    return keras.Model(inp, z, name="model")


def keras_model(m, names):
    # LSTM / GRU layers own a SeedGenerator (dropout RNG state, int64 [2]) drawn from Python's random module when
    # seed=None; model.export saves it (variables/N 'seed_generator/seed_generator_state').  Fix it.
    keras.utils.set_random_seed(1234)
    model = keras_build(m, names)
    vals = rf.keras_values(m, names)
    assert sorted(v.path for v in model.weights) == sorted(vals)
    for v in model.weights:
        v.assign(vals[v.path])
    return model


def to_snake_case(name):
    """keras.src.utils.naming.to_snake_case: LSTM -> lstm, InputLayer -> input_layer, Bidirectional -> bidirectional."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def snake_unique(class_names):
    """Keras 3 saving_lib group names: to_snake_case(class name), then _1, _2 ... in model.layers order."""
    used, out = {}, []
    for cn in class_names:
        s = to_snake_case(cn)
        if s in used:
            used[s] += 1
            s = f"{s}_{used[s]}"
        else:
            used[s] = 0
        out.append(s)
    return out


def keras_layer_entries(config_layers, get):
    """Ordered canonical entries from a Keras 3 model config and get(role path) -> array."""
    entries = []
    for L in config_layers:
        cls, cfg = L["class_name"], L["config"]
        if cls == "InputLayer":
            continue
        if cls == "Embedding":
            entries.append(("embedding", get(L, "embeddings")))
        elif cls in ("LSTM", "GRU"):
            check_rnn_config(cls, cfg)
            assert not cfg.get("go_backwards", False), "refuse: go_backwards outside Bidirectional"
            entries.append(("rnn", {None: tuple(get(L, r) for r in ("kernel", "recurrent_kernel", "bias"))}))
        elif cls == "Bidirectional":
            assert cfg.get("merge_mode", "concat") == "concat", "refuse: Bidirectional merge_mode"
            check_rnn_config(cfg["layer"]["class_name"], cfg["layer"]["config"])
            assert not cfg["layer"]["config"].get("go_backwards", False)
            if "backward_layer" in cfg:  # Keras 3 writes it: the same layer with go_backwards=True
                check_rnn_config(cfg["backward_layer"]["class_name"], cfg["backward_layer"]["config"])
                assert cfg["backward_layer"]["config"].get("go_backwards", False)
            entries.append(("rnn", {d: tuple(get(L, f"{d}/{r}") for r in ("kernel", "recurrent_kernel", "bias"))
                                    for d in ("fw", "bw")}))
        elif cls == "Dense":
            assert cfg.get("activation", "linear") == "linear" and cfg.get("use_bias", True)
            entries.append(("dense", get(L, "kernel"), get(L, "bias")))
        else:
            raise AssertionError(f"refuse: layer {cls}")
    return entries


def check_rnn_config(cls, cfg):
    assert cfg.get("activation", "tanh") == "tanh", "refuse: activation"
    assert cfg.get("recurrent_activation", "sigmoid") == "sigmoid", "refuse: recurrent_activation"
    assert cfg.get("use_bias", True), "refuse: use_bias False"
    assert not cfg.get("stateful", False), "refuse: stateful"


def rnn_cell_name(entries_cfg):
    for L in entries_cfg:
        cls = L["class_name"] if L["class_name"] != "Bidirectional" else L["config"]["layer"]["class_name"]
        if cls in ("LSTM", "GRU"):
            return cls.lower(), L["config"].get("reset_after", L["config"].get("layer", {}).get("config", {})
                                                  .get("reset_after"))
    raise AssertionError("no recurrent layer")


def canonical_from_keras_zip(path):
    """Reference reader of a Keras 3 .keras file: config.json (layer order, classes) + model.weights.h5."""
    with zipfile.ZipFile(path) as zf:
        cfg = json.loads(zf.read("config.json"))
        wbytes = zf.read("model.weights.h5")
    layers = cfg["config"]["layers"]
    groups = dict(zip((L["name"] for L in layers), snake_unique([L["class_name"] for L in layers])))
    with h5py.File(io.BytesIO(wbytes), "r") as f:
        def get(L, role):
            g = "layers/" + groups[L["name"]]
            if L["class_name"] == "Embedding":
                return f[g + "/vars/0"][()]
            if L["class_name"] == "Dense":
                return f[g + "/vars/" + {"kernel": "0", "bias": "1"}[role]][()]
            if L["class_name"] == "Bidirectional":
                d, role = role.split("/")
                g += "/forward_layer" if d == "fw" else "/backward_layer"
            return f[g + "/cell/vars/" + {"kernel": "0", "recurrent_kernel": "1", "bias": "2"}[role]][()]
        entries = keras_layer_entries(layers, get)
    cell, reset_after = rnn_cell_name(layers)
    return canon_from_keras_layers(entries, cell, reset_after)


def canonical_from_keras_h5(path):
    """Reference reader of a legacy Keras .h5 (model.save('x.h5')): root attribute model_config (JSON),
    model_weights/<layer name> with attribute weight_names -> datasets model_weights/<layer>/<weight name>."""
    with h5py.File(path, "r") as f:
        cfg = json.loads(f.attrs["model_config"])
        layers = cfg["config"]["layers"]
        mw = f["model_weights"]
        assert [n.decode() if isinstance(n, bytes) else n for n in mw.attrs["layer_names"]] == [L["name"] for L in layers]

        def get(L, role):
            g = mw[L["name"]]
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in g.attrs["weight_names"]]
            if L["class_name"] == "Bidirectional":
                d, role = role.split("/")
                names = [n for n in names if n.split("/")[1].startswith("forward_" if d == "fw" else "backward_")]
            hits = [n for n in names if n.split("/")[-1] == role]
            assert len(hits) == 1, (L["name"], role, names)
            return g[hits[0]][()]
        entries = keras_layer_entries(layers, get)
    cell, reset_after = rnn_cell_name(layers)
    return canon_from_keras_layers(entries, cell, reset_after)


# --- HDF5 structure description (what a Rust HDF5 reader must support) ---

H5_MSG = {0: "nil", 1: "dataspace", 2: "link_info", 3: "datatype", 4: "fill_value_old", 5: "fill_value", 6: "link",
          7: "external_files", 8: "layout", 10: "group_info", 11: "filter_pipeline", 12: "attribute",
          13: "comment", 14: "mtime_old", 15: "shared_msg_table", 16: "continuation", 17: "symbol_table",
          18: "mtime", 19: "btree_k", 20: "driver_info", 21: "attribute_info", 22: "refcount"}


def h5_type(t):
    c = t.get_class()
    if c == h5py.h5t.STRING:
        s = "string vlen" if t.is_variable_str() else f"string fixed[{t.get_size()}]"
        return s + (" utf8" if t.get_cset() == h5py.h5t.CSET_UTF8 else " ascii")
    name = {h5py.h5t.FLOAT: "float", h5py.h5t.INTEGER: "int"}.get(c, f"class{c}")
    return f"{name}{t.get_size() * 8}{'le' if t.get_order() == h5py.h5t.ORDER_LE else 'be'}"


def h5_header(oid):
    oi = h5py.h5o.get_info(oid)
    msgs = [H5_MSG.get(i, str(i)) for i in range(32) if oi.hdr.mesg.present >> i & 1]
    return {"header_version": oi.hdr.version, "header_chunks": oi.hdr.nchunks, "messages": msgs}


def h5_attrs(obj):
    out = {}
    for n in obj.attrs:
        a = obj.attrs.get_id(n)
        v = obj.attrs[n]
        if isinstance(v, np.ndarray) and v.dtype == object:
            v = [str(s) for s in v]
        elif isinstance(v, np.ndarray):
            v = v.tolist()
        if isinstance(v, str) and len(v) > 80:
            v = f"<{len(v)} characters of JSON>"
        out[n] = {"type": h5_type(a.get_type()), "shape": list(a.get_space().shape), "value": v}
    return out


def h5_describe(src):
    """src: path or bytes.  The HDF5 features the file uses (summary) + one line per object."""
    raw = open(src, "rb").read() if isinstance(src, str) else src
    assert raw[:8] == b"\x89HDF\r\n\x1a\n", "HDF5 signature at offset 0 (no user block)"
    objs, feats = [], {"header_versions": set(), "group_storage": set(), "layouts": set(), "filters": 0,
                       "dtypes": set(), "attribute_types": set(), "messages": set()}
    with h5py.File(io.BytesIO(raw), "r") as f:
        def visit(name, obj):
            hdr = h5_header(obj.id)
            feats["header_versions"].add(hdr["header_version"])
            feats["messages"].update(hdr["messages"])
            attrs = h5_attrs(obj)
            for a in attrs.values():
                feats["attribute_types"].add(f"{a['type']} rank {len(a['shape'])}")
            path = "/" + name
            if isinstance(obj, h5py.Dataset):
                dc = obj.id.get_create_plist()
                layout = {0: "compact", 1: "contiguous", 2: "chunked"}[dc.get_layout()]
                dt = h5_type(obj.id.get_type())
                feats["layouts"].add(layout)
                feats["filters"] += dc.get_nfilters()
                feats["dtypes"].add(dt)
                line = f"D {path} {dt} {list(obj.shape)} {layout} filters={dc.get_nfilters()} @{obj.id.get_offset()}"
            else:
                m = hdr["messages"]
                storage = "symbol_table" if "symbol_table" in m else ("compact_links" if "link" in m else "dense_links")
                feats["group_storage"].add(storage)
                line = f"G {path} ({storage})"
            for k, a in attrs.items():
                line += f" @{k}: {a['type']} {a['shape']} = {json.dumps(a['value'])}"
            objs.append(line)
        visit("", f["/"])
        f.visititems(visit)
    summary = {"superblock_version": raw[8], "file_size": len(raw),
               "object_header_versions": sorted(feats["header_versions"]),
               "group_storage": sorted(feats["group_storage"]), "dataset_layouts": sorted(feats["layouts"]),
               "filters_used": feats["filters"], "dataset_dtypes": sorted(feats["dtypes"]),
               "attribute_types": sorted(feats["attribute_types"]),
               "header_messages_used": sorted(feats["messages"]),
               "variable_length_strings (global heap)": any("vlen" in t for t in feats["attribute_types"]),
               "modification_times": "mtime" in feats["messages"] or "mtime_old" in feats["messages"]}
    return {"summary": summary, "objects": objs}


# --- .keras normalisation ---


def normalize_keras_zip(path):
    """Make a Keras 3 .keras zip deterministic without changing what Keras reads: every entry's timestamp
    -> 1980-01-01 00:00:00 (Keras already writes metadata.json / config.json so; model.weights.h5 gets the
    current time), metadata.json date_saved -> FIXED_DATE_SAVED, config.json shared_object_id (Python id()s of
    shared objects: identity markers only) -> 1, 2, 3 ... in order of first appearance.  Entry order,
    compression (stored) and every other byte of the entries are kept."""
    with zipfile.ZipFile(path) as zin:
        entries = [(i, zin.read(i.filename)) for i in zin.infolist()]
    changes = []
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zout:
        for info, data in entries:
            if info.filename == "metadata.json":
                new = re.sub(rb'"date_saved": "[^"]*"', b'"date_saved": "' + FIXED_DATE_SAVED.encode() + b'"', data)
                if new != data:
                    changes.append("metadata.json date_saved")
                data = new
            if info.filename == "config.json":
                ids = {}
                new = re.sub(rb'"shared_object_id": (\d+)',
                             lambda mt: b'"shared_object_id": ' + str(ids.setdefault(mt.group(1), len(ids) + 1)).encode(),
                             data)
                if ids:
                    changes.append(f"config.json shared_object_id x{len(ids)}")
                data = new
            zi = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = info.compress_type
            zi.external_attr = info.external_attr
            zi.create_system = info.create_system
            if info.date_time != (1980, 1, 1, 0, 0, 0):
                changes.append(f"{info.filename} timestamp")
            zout.writestr(zi, data)
    with open(path, "wb") as f:
        f.write(out.getvalue())
    return changes


def zip_entries(path):
    with zipfile.ZipFile(path) as zf:
        return [{"name": i.filename, "compress_type": {0: "stored", 8: "deflated"}.get(i.compress_type, i.compress_type),
                 "size": i.file_size, "header_offset": i.header_offset} for i in zf.infolist()]


def keras_config_summary(layers):
    keep = ("units", "activation", "recurrent_activation", "use_bias", "return_sequences", "go_backwards",
            "reset_after", "unit_forget_bias", "stateful", "unroll", "dropout", "recurrent_dropout", "input_dim",
            "output_dim", "mask_zero", "merge_mode", "batch_shape", "dtype")
    out = []
    for L in layers:
        cfg = L["config"]
        d = {"class_name": L["class_name"], "name": L["name"], **{k: cfg[k] for k in keep if k in cfg}}
        if isinstance(d.get("dtype"), dict):
            d["dtype"] = d["dtype"].get("config", {}).get("name")
        if "layer" in cfg:
            inner = cfg["layer"]
            d["layer"] = {"class_name": inner["class_name"],
                          **{k: inner["config"][k] for k in keep if k in inner["config"] and k != "dtype"}}
        if "backward_layer" in cfg:
            inner = cfg["backward_layer"]
            d["backward_layer"] = {"class_name": inner["class_name"],
                                   **{k: inner["config"][k] for k in keep if k in inner["config"] and k != "dtype"}}
        out.append(d)
    return out


def keras_common_meta(m, names, paths):
    cell = m["cell"]
    if cell == "lstm":
        gate_order, layout = "i,f,c,o", ("kernel [in, 4h] (x @ W), recurrent_kernel [h, 4h], bias [4h], gates i,f,c,o "
                                         "(c = g): w_ih = kernel^T, w_hh = recurrent_kernel^T, bias as is")
    else:
        gate_order, layout = "z,r,h", ("kernel [in, 3h], recurrent_kernel [h, 3h], gates z,r,h (swap the first two "
                                       "blocks for r,z,n), bias " + ("[2, 3h] = [b_ih; b_hh]" if m["reset_after"]
                                                                     else "[3h] (b_hh = 0)"))
    return {"naming": "keras3", "keras_variable_paths": paths, "layout": layout + "; embeddings [vocab, emb]; dense "
            "kernel [width, out] (x @ W): head.weight = kernel^T, dense bias [out]", "gate_order_in_file": gate_order,
            "forget_bias": 0.0 if cell == "lstm" else None, "rnn_layer_names": names, "planted": rf.plant_meta(m)}


def write_keras_files(stem, m, x, names, same_as):
    """stem.keras and stem.h5 of one Keras model."""
    model = keras_model(m, names)
    paths = [v.path for v in model.weights]
    y = mf.keras_run(model, x)
    canon_ref = rf.canonical_from_model(m, "single", 0.0)
    rf.check_plant(m, canon_ref)
    err = mf.check_close(y, rf.np_forward(canon_ref, x), stem)
    committed_y = check_against_committed(same_as, canon_ref, x)
    if committed_y is not None:
        assert np.array_equal(committed_y, y), f"{stem}: output differs from the committed {same_as}"
    common = keras_common_meta(m, names, paths)
    common.update({"same_weights_as": same_as, "max_abs_diff_vs_float64_reference": err})
    outs = {}
    # --- .keras (Keras 3 native zip) ---
    name = stem + ".keras"
    p = os.path.join(OUT, name)
    model.save(p)
    changes = normalize_keras_zip(p)
    model2 = keras.saving.load_model(p)
    y2 = mf.keras_run(model2, x)
    assert np.array_equal(y, y2), name
    canon = canonical_from_keras_zip(p)
    rf.assert_canon_equal(canon, canon_ref, name)
    with zipfile.ZipFile(p) as zf:
        cfg = json.loads(zf.read("config.json"))
        wbytes = zf.read("model.weights.h5")
        metadata = json.loads(zf.read("metadata.json"))
    layers = cfg["config"]["layers"]
    meta = {"fixture": name, "files": [name], "format": "keras",
            "writer": "keras.Model.save('x.keras') (Keras 3 native format: zip of metadata.json, config.json, "
            "model.weights.h5)", **common,
            "normalised_after_writing": changes,
            "normalisation_note": "entry timestamps -> 1980-01-01, metadata.json date_saved -> "
            f"{FIXED_DATE_SAVED}, config.json shared_object_id -> 1, 2, ... (identity markers); Keras reloads the "
            "normalised file (keras.saving.load_model) and gives the same output bit-for-bit",
            "zip_entries": zip_entries(p), "metadata_json": metadata,
            "weights_h5_layout": {
                "groups": "layers/<snake_case(class name)[_N]>/ in model.layers order (InputLayer included, no "
                "weights); NOT the layer names (those are in the 'name' attribute of each .../vars group and in "
                "config.json)",
                "embedding": "layers/embedding/vars/0 = embeddings [vocab, emb]",
                "lstm_gru": "layers/<lstm|gru>[_N]/cell/vars/0 = kernel, /1 = recurrent_kernel, /2 = bias; "
                "layers/<lstm|gru>[_N]/vars is an empty group (name attribute = layer name)",
                "bidirectional": "layers/bidirectional[_N]/forward_layer/cell/vars/{0,1,2} and "
                "layers/bidirectional[_N]/backward_layer/cell/vars/{0,1,2}",
                "dense": "layers/dense[_N]/vars/0 = kernel [width, out], /1 = bias [out]",
                "vars_group_attribute": "each 'vars' group has attribute name (vlen utf8 string scalar)",
            },
            "keras_config_layers": keras_config_summary(layers),
            "hdf5": h5_describe(wbytes)}
    rf.write_sidecars(p, meta, canon, x, y2, "int64 [seq, batch] token ids, time-major (the Keras model takes "
                      "int32 [batch, seq])", "float32 [seq, batch, vocab] logits",
                      f"keras {keras.__version__} ({keras.config.backend()} backend), model reloaded from the "
                      ".keras file with keras.saving.load_model")
    outs["keras"] = y2
    # --- legacy .h5 ---
    name = stem + ".h5"
    p = os.path.join(OUT, name)
    with contextlib.redirect_stderr(io.StringIO()):
        model.save(p)  # Keras 3 writes the legacy H5 format for a .h5 suffix (with a warning)
    model3 = keras.saving.load_model(p)
    y3 = mf.keras_run(model3, x)
    assert np.array_equal(y, y3), name
    canon = canonical_from_keras_h5(p)
    rf.assert_canon_equal(canon, canon_ref, name)
    with h5py.File(p, "r") as f:
        layers = json.loads(f.attrs["model_config"])["config"]["layers"]
    meta = {"fixture": name, "files": [name], "format": "keras-h5",
            "writer": "keras.Model.save('x.h5') (Keras 3 legacy HDF5 format, keras.src.legacy.saving)", **common,
            "h5_layout": {
                "root_attributes": "backend, keras_version (vlen utf8 strings), model_config (vlen ASCII string: "
                "the model's JSON config, Keras 3 style; layer order = config.layers), no training_config",
                "model_weights": "group /model_weights with attributes layer_names (1-D vlen ASCII strings, the layer "
                "names in order), backend, keras_version",
                "per_layer": "group /model_weights/<layer name> with attribute weight_names: 1-D vlen ASCII strings "
                "= dataset paths relative to that group (e.g. 'lstm/lstm_cell/kernel' -> "
                "/model_weights/lstm/lstm/lstm_cell/kernel); layers without weights (InputLayer) and "
                "/model_weights/top_level_model_weights have weight_names = an EMPTY float64 array [0] (not strings)",
                "weight_order": "weight_names order = the layer's weights order: embeddings; kernel, recurrent_kernel, "
                "bias (per direction: forward_* then backward_*); dense kernel, bias",
            },
            "keras_config_layers": keras_config_summary(layers),
            "hdf5": h5_describe(p)}
    rf.write_sidecars(p, meta, canon, x, y3, "int64 [seq, batch] token ids, time-major (the Keras model takes "
                      "int32 [batch, seq])", "float32 [seq, batch, vocab] logits",
                      f"keras {keras.__version__} ({keras.config.backend()} backend), model reloaded from the .h5 "
                      "file with keras.saving.load_model")
    outs["h5"] = y3
    return model, y, canon_ref, outs


# --- tf2onnx ---


def write_tf2onnx(name, model, m, x, y_keras, canon_ref, same_as):
    p = os.path.join(OUT, name)
    spec = (tf.TensorSpec((BATCH, SEQ), tf.int32, name="input"),)
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        tf2onnx.convert.from_keras(model, input_signature=spec, opset=OPSET_LEGACY, output_path=p)
    feed = {"input": x.T.astype(np.int32)}
    y_before = ort_session(p).run(None, feed)[0]
    renamed = normalize_tf2onnx_names(p)
    onx = onnx.load(p)
    onnx.checker.check_model(onx, full_check=True)
    sess = ort_session(p)
    y_raw = sess.run(None, feed)[0]
    assert np.array_equal(y_raw, y_before), "renaming changed the output"
    y_ort = np.transpose(y_raw, (1, 0, 2)).astype(F32)
    err_ort = mf.check_close(y_ort, y_keras, f"{name}: onnxruntime vs keras")
    canon, info = canonical_from_onnx(onx)
    rf.assert_canon_equal(canon, canon_ref, name)
    err = mf.check_close(y_ort, rf.np_forward(canon, x), name + " ort vs float64")
    meta = {"fixture": name, "files": [name], "format": "onnx",
            "writer": f"tf2onnx.convert.from_keras(model, input_signature=(tf.TensorSpec((3, 5), tf.int32, "
            f"name='input'),), opset={OPSET_LEGACY}) of the Keras 3 model of {same_as}",
            "exporter": "tf2onnx", "opset": OPSET_LEGACY, "same_weights_as": same_as,
            "normalised_after_writing": f"{renamed} tf2onnx-generated constant names renumbered "
            "(const_fold_opt__0.., const_axes__0.., in order of first use) and the initializers listed in that order (tf2onnx "
            "numbers them in an order that changes between runs); onnxruntime output unchanged bit-for-bit",
            "naming": "ONNX LSTM node inputs W0__N / R0__N / B0__N (tf2onnx names); embedding and dense kernel "
            "initializers keep TF names ('<model>_1/embedding_1/GatherV2/ReadVariableOp:0' ...)",
            "layout": "LSTM node: W [1, 4h, in], R [1, 4h, h], B [1, 8h] = [Wb; Rb] (Rb = 0: Keras has one bias), "
            "gates i,o,f,c; explicit activations attribute ['Sigmoid', 'Tanh', 'Tanh'] (the defaults); "
            "canonical bias = Wb + Rb; head.weight = transpose of the MatMul initializer [width, out] (the Keras "
            "dense kernel), head.bias = the Add initializer",
            "gate_order_in_file": "i,o,f,c", "forget_bias": 0.0,
            "glue": "graph input int32 [batch=3, seq=5] (batch-major, as Keras); Keras 3's Embedding index fix-up "
            "for negative ids (Add(ids, vocab) / Cast / Less / Not / Cast / Mul / Cast / Mul / Add: ids < 0 ? ids + "
            "vocab : ids) feeds Gather(embeddings, ids); Transpose(perm [1, 0, 2]) -> LSTM -> Squeeze(axes [1]) -> "
            "LSTM -> Squeeze(axes [1]) -> Transpose(perm [1, 0, 2]) -> Reshape([-1, h]) -> MatMul -> Add -> "
            "Reshape([3, 5, vocab]); initial_h = initial_c = a zero initializer [1, batch, h] shared by both inputs",
            "planted": rf.plant_meta(m), "max_abs_diff_vs_float64_reference": err,
            "onnxruntime": {"output_key": "output_ort", "max_abs_diff_vs_keras": err_ort,
                            "session": "CPUExecutionProvider, intra_op_num_threads=1",
                            "note": "the ONNX graph is batch-major: fed x.T (int32), output transposed back"},
            "onnx_graph": onnx_graph_desc(onx, info)}
    rf.write_sidecars(p, meta, canon, x, y_keras, "int64 [seq, batch] token ids, time-major (the graph input is "
                      "int32 [batch, seq] = input.T)", "float32 [seq, batch, vocab] logits",
                      f"keras {keras.__version__} (the converted model); output_ort: onnxruntime {ort.__version__} "
                      "running the .onnx file (batch-major output transposed to time-major)")
    save_io(p, x, y_keras, {"output_ort": y_ort})


def normalize_tf2onnx_names(path):
    """tf2onnx numbers the constants its optimizers create (const_fold_opt__N, const_axes__N) with a global
    counter, in an order that changes from run to run (node order during folding follows object identity, and
    which duplicates survive varies).  Renumber each prefix 0, 1, ... in order of first use by the node list
    and list the initializers in that order.  Names only: the graph is otherwise unchanged."""
    model = onnx.load(path)
    g = model.graph
    pat = re.compile(r"^(const_[a-z_]+)__(\d+)$")
    first = {}
    for i, n in enumerate(g.node):
        for j, name in enumerate(n.input):
            first.setdefault(name, (i, j))
    inits = list(g.initializer)
    groups = {}
    for t in inits:
        mt = pat.match(t.name)
        if mt:
            groups.setdefault(mt.group(1), []).append(t.name)
    rename = {}
    for prefix, names in groups.items():
        for k, nm in enumerate(sorted(names, key=lambda nm: first.get(nm, (1 << 30, 0)))):
            rename[nm] = f"{prefix}__{k}"
    for n in g.node:
        for j, name in enumerate(n.input):
            if name in rename:
                n.input[j] = rename[name]
    order = sorted(range(len(inits)), key=lambda k: (first.get(inits[k].name, (1 << 30, 0)), k))
    for t in inits:
        t.name = rename.get(t.name, t.name)
    new = [onnx.TensorProto() for _ in inits]
    for dst, k in zip(new, order):
        dst.CopyFrom(inits[k])
    del g.initializer[:]
    g.initializer.extend(new)
    for vi in list(g.value_info) + list(g.input):
        vi.name = rename.get(vi.name, vi.name)
    onnx.save(model, path)
    return sum(1 for a, b in rename.items() if a != b)


# --- SavedModel ---


@contextlib.contextmanager
def deterministic_export_variable_order():
    """Keras 3 model.export lists the variables its endpoints use via ConcreteFunction.variables, whose order
    follows a set of object ids (differs between runs).  Sort it by variable name for reproducible bytes."""
    try:
        from keras.src.export import saved_model_export_archive as sm
        orig = sm._list_variables_used_by_fns
    except (ImportError, AttributeError):  # pragma: no cover
        yield False
        return

    def patched(fns):
        tvs, ntvs = orig(fns)
        return sorted(tvs, key=lambda v: v.name), sorted(ntvs, key=lambda v: v.name)

    sm._list_variables_used_by_fns = patched
    try:
        yield True
    finally:
        sm._list_variables_used_by_fns = orig


def normalize_fingerprint(d):
    p = os.path.join(d, "fingerprint.pb")
    if not os.path.exists(p):
        return None
    fp = fingerprint_pb2.FingerprintDef()
    with open(p, "rb") as f:
        fp.ParseFromString(f.read())
    old = fp.uuid
    fp.ClearField("uuid")
    with open(p, "wb") as f:
        f.write(fp.SerializeToString(deterministic=True))
    return {"cleared_uuid": bool(old), "fingerprint": {k: str(getattr(fp, k)) for k in (
        "saved_model_checksum", "graph_def_program_hash", "signature_def_hash", "saved_object_graph_hash",
        "checkpoint_hash")}}


def object_graph(prefix):
    r = tf.train.load_checkpoint(prefix)
    raw = r.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH")
    g = trackable_object_graph_pb2.TrackableObjectGraph()
    g.ParseFromString(raw)
    return r, g, raw


def object_paths(g):
    """{node id: shortest object path from the root (local names joined by '/')}, breadth first."""
    paths, queue = {0: ""}, [0]
    while queue:
        i = queue.pop(0)
        for ch in g.nodes[i].children:
            if ch.node_id not in paths:
                paths[ch.node_id] = (paths[i] + "/" if paths[i] else "") + ch.local_name
                queue.append(ch.node_id)
    return paths


def saved_model_variables(prefix):
    """Reference SavedModel reader: the object graph in the variables bundle maps each checkpoint key to the
    variable's full_name (= the Keras 3 variable path, e.g. 'lstm/lstm_cell/kernel').
    Returns ({full_name: array}, [rows: checkpoint_key, full_name, object_path, shape, dtype])."""
    r, g, raw = object_graph(prefix)
    paths = object_paths(g)
    dtypes, shapes = r.get_variable_to_dtype_map(), r.get_variable_to_shape_map()
    vals, rows = {}, []
    for i, n in enumerate(g.nodes):
        for a in n.attributes:
            assert a.name == "VARIABLE_VALUE" and a.checkpoint_key.endswith("/.ATTRIBUTES/VARIABLE_VALUE")
            v = r.get_tensor(a.checkpoint_key)
            rows.append({"checkpoint_key": a.checkpoint_key, "full_name": a.full_name, "object_path": paths.get(i),
                         "node_id": i, "shape": list(shapes[a.checkpoint_key]), "dtype": dtypes[a.checkpoint_key].name})
            if a.full_name in vals:  # model.export: the same variable under variables/N and _all_variables/N
                assert np.array_equal(vals[a.full_name], v), a.full_name
            else:
                vals[a.full_name] = v
    rows.sort(key=lambda e: e["checkpoint_key"])
    return vals, rows, raw


def check_string_tensor_encoding(d, raw):
    """The bundle stores the DT_STRING scalar _CHECKPOINTABLE_OBJECT_GRAPH as [varint64 length][4-byte masked
    crc32c of the length bytes][bytes] in variables.data-00000-of-00001 (tensor_bundle.cc WriteStringTensor)."""
    data = open(os.path.join(d, "variables", "variables.data-00000-of-00001"), "rb").read()
    pos = data.find(raw)
    assert pos > 0 and data.count(raw) == 1
    n, ln = len(raw), bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        ln.append(b | (0x80 if n else 0))
        if not n:
            break
    start = pos - 4 - len(ln)
    assert data[start:start + len(ln)] == bytes(ln), "varint length before the object graph"
    return {"offset_in_data_file": start, "varint_length_bytes": len(ln), "crc_bytes": 4, "proto_bytes": len(raw)}


def saved_model_dir_listing(d):
    out = []
    for root, dirs, files in sorted(os.walk(d)):
        dirs.sort()
        for f in sorted(files):
            q = os.path.join(root, f)
            out.append({"path": os.path.relpath(q, OUT), "size": os.path.getsize(q)})
    return out


def write_saved_models(stem, model, m, x, y_keras, canon_ref, names, same_as):
    results = {}
    for kind in ("export", "savedmodel"):
        name = f"{stem}_{kind}"
        d = os.path.join(OUT, name)
        shutil.rmtree(d, ignore_errors=True)
        sink = io.StringIO()
        if kind == "export":
            with deterministic_export_variable_order() as patched, contextlib.redirect_stdout(sink):
                model.export(d)  # Keras 3 ExportArchive, endpoint 'serve'
            writer = ("keras.Model.export(dir) (Keras 3 ExportArchive: SavedModel with endpoint 'serve' and "
                      "signature 'serving_default')")
        else:
            patched = None
            with contextlib.redirect_stdout(sink):
                tf.saved_model.save(model, d)
            writer = "tf.saved_model.save(keras_model, dir) (the Keras 3 model as a TF trackable)"
        fp = normalize_fingerprint(d)
        # the framework reloads it and gives the same output
        loaded = tf.saved_model.load(d)
        fn = loaded.signatures["serving_default"]
        res = fn(tf.constant(x.T.astype(np.int32)))
        assert len(res) == 1
        y2 = np.transpose(np.asarray(next(iter(res.values()))), (1, 0, 2)).astype(F32)
        err_reload = mf.check_close(y2, y_keras, f"{name}: reloaded SavedModel vs keras")
        prefix = os.path.join(d, "variables", "variables")
        vals, rows, raw = saved_model_variables(prefix)
        enc = check_string_tensor_encoding(d, raw)
        model_vals = {k: v for k, v in vals.items() if "seed_generator" not in k}
        ignored = sorted(set(vals) - set(model_vals))
        assert sorted(model_vals) == sorted(v.path for v in model.weights), sorted(model_vals)
        canon = rf.canonical_from_keras(model_vals, m["cell"], names, m["reset_after"])
        rf.assert_canon_equal(canon, canon_ref, name)
        err = mf.check_close(y_keras, rf.np_forward(canon, x), name)
        _, g, _ = object_graph(prefix)
        paths = object_paths(g)
        tree = []
        for i, n in enumerate(g.nodes):
            ch = [c.local_name for c in n.children]
            if ch or n.attributes:
                tree.append({"node": i, "path": paths.get(i), "children": ch[:20] + (["..."] if len(ch) > 20 else []),
                             **({"variable": {"full_name": n.attributes[0].full_name,
                                              "checkpoint_key": n.attributes[0].checkpoint_key}}
                                if n.attributes else {})})
        meta = {"fixture": name, "files": [q["path"] for q in saved_model_dir_listing(d)], "format": "saved-model",
                "writer": writer, "same_weights_as": same_as,
                **keras_common_meta(m, names, [v.path for v in model.weights]),
                "max_abs_diff_vs_float64_reference": err,
                "saved_model": {
                    "directory": saved_model_dir_listing(d),
                    "checkpoint_prefix": os.path.relpath(prefix, OUT),
                    "variables": rows,
                    "model_variables_by_full_name": sorted(model_vals),
                    "ignored_variables": ignored + ["_CHECKPOINTABLE_OBJECT_GRAPH (DT_STRING scalar: the object graph)"],
                    "object_graph_encoding": enc,
                    "object_graph_nodes_with_children_or_variables": tree,
                    "reader_recipe": "read variables/variables.index + .data-00000-of-00001 (TF tensor bundle, as "
                    "the TF checkpoint loaders); read the DT_STRING scalar _CHECKPOINTABLE_OBJECT_GRAPH "
                    "(TrackableObjectGraph proto); for every node attribute with name VARIABLE_VALUE map "
                    "checkpoint_key -> full_name (the Keras variable path); drop full names containing "
                    "'seed_generator' (int64 RNG state of the LSTM/GRU layers, model.export only) and duplicate "
                    "keys of the same full_name (model.export: variables/N and _all_variables/N); then load the "
                    "Keras variable paths exactly as keras_lstm.npz",
                    "fingerprint_normalisation": fp,
                    "export_variable_order_patch": patched,
                    "reload_max_abs_diff_vs_keras": err_reload,
                }}
        rf.write_sidecars(d, meta, canon, x, y_keras, "int64 [seq, batch] token ids, time-major (the signature "
                          "takes int32 [batch, seq])", "float32 [seq, batch, vocab] logits",
                          f"keras {keras.__version__} (the saved model); the SavedModel reloaded with "
                          "tf.saved_model.load and run through signatures['serving_default'] agrees to "
                          f"{err_reload:.3g}")
        results[kind] = y2
    return results


# ----------------------------------------------------------------------------
# 5. ONNX files the reader must refuse (one change each to a torch-exported LSTM)
# ----------------------------------------------------------------------------

REFUSALS = [
    # name, what the reader must refuse, mutation
    ("peepholes", "peepholes P", "LSTM input 7 (P [1, 3h]) = a nonzero initializer"),
    ("clip", "clip", "LSTM attribute clip = 0.5"),
    ("activations", "activations", "LSTM attribute activations = ['Sigmoid', 'Tanh', 'Relu'] (h activation Relu)"),
    ("input_forget", "input_forget", "LSTM attribute input_forget = 1 (coupled input / forget gates)"),
    ("sequence_lens", "sequence_lens", "LSTM input 4 (sequence_lens) = int32 initializer [5, 4, 3]"),
    ("reverse", "direction reverse", "LSTM attribute direction = 'reverse'"),
    ("initial_h", "nonzero initial_h", "LSTM input 5 (initial_h) = a nonzero initializer [1, 3, h]"),
]


def mutate_lstm(model, which, h):
    g = model.graph
    node = next(n for n in g.node if n.op_type == "LSTM")
    rng = np.random.default_rng(len(which))
    ins = list(node.input) + [""] * (8 - len(node.input))

    def add_init(name, arr):
        g.initializer.append(numpy_helper.from_array(arr, name))
        return name

    if which == "peepholes":
        ins[7] = add_init("peepholes_P", nonzero((1, 3 * h), rng))
    elif which == "clip":
        node.attribute.append(onnx.helper.make_attribute("clip", 0.5))
    elif which == "activations":
        node.attribute.append(onnx.helper.make_attribute("activations", ["Sigmoid", "Tanh", "Relu"]))
    elif which == "input_forget":
        node.attribute.append(onnx.helper.make_attribute("input_forget", 1))
    elif which == "sequence_lens":
        ins[4] = add_init("sequence_lens", np.array([5, 4, 3], np.int32))
    elif which == "reverse":
        node.attribute.append(onnx.helper.make_attribute("direction", "reverse"))
    elif which == "initial_h":
        ins[5] = add_init("initial_h_nonzero", nonzero((1, BATCH, h), rng))
    while ins and ins[-1] == "":
        ins.pop()
    del node.input[:]
    node.input.extend(ins)
    return model


def nonzero(shape, rng):
    return mf.nonzero_uniform(rng, shape, 0.05, 0.5)


def write_refusals():
    """Tiny valid ONNX models (onnx.checker passes, onnxruntime runs them) that are not a plain recurrent
    stack: the reader must refuse each with a clear message.  Base: torch.onnx.export (TorchScript exporter,
    opset 17) of nn.LSTM(2, 3) + nn.Linear(3, 2) on float features; the base itself is accepted."""
    import tempfile
    m = rf.make_model(701, "lstm", 2, [3], out=2)
    mod = torch_module(m)
    xf = np.random.default_rng(702).uniform(-1, 1, size=(SEQ, BATCH, 2)).astype(F32)
    with tempfile.TemporaryDirectory() as td:
        tmp = os.path.join(td, "base.onnx")
        torch_export(mod, xf, tmp, dynamo=False)
        base = onnx.load(tmp)
    canon, _ = canonical_from_onnx(base)
    rf.assert_canon_equal(canon, rf.canonical_from_model(m, "torch"), "refusal base")
    base_bytes = base.SerializeToString()
    names = []
    for which, reason, mutation in REFUSALS:
        name = f"onnx_refuse_{which}.onnx"
        mdl = onnx.ModelProto()
        mdl.ParseFromString(base_bytes)
        mutate_lstm(mdl, which, 3)
        onnx.checker.check_model(mdl, full_check=True)
        p = os.path.join(OUT, name)
        onnx.save(mdl, p)
        y = ort_session(p).run(None, {"input": xf})[0]
        assert np.all(np.isfinite(y))
        try:
            canonical_from_onnx(mdl)
        except AssertionError as e:
            assert f"refuse: {reason}" in str(e), (name, str(e))
            msg = str(e)
        else:
            raise AssertionError(f"{name}: the reference reader accepted it")
        meta = {"fixture": name, "files": [name], "format": "onnx", "expect": "refuse",
                "refuse_because": reason, "reference_reader_message": msg, "mutation": mutation,
                "base": "torch.onnx.export(nn.LSTM(2, 3) + nn.Linear(3, 2), dynamo=False, opset_version=17) on "
                "float32 [5, 3, 2] features (accepted by the reference reader; its canonical weights are those of "
                "rf.make_model(701, 'lstm', 2, [3], out=2))",
                "note": "a valid model: onnx.checker.check_model(full_check=True) passes and onnxruntime runs it; "
                "issbench must refuse it with a message naming the unsupported feature, not mis-read it",
                "versions": versions()}
        with open(p + ".json", "w") as f:
            f.write(json.dumps(meta, indent=2) + "\n")
        names.append(name)
    return names


# ----------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=mf.OUT, help="output directory (default tests/fixtures)")
    args = ap.parse_args()
    set_out(args.out)
    assert onnxscript is not None, "pip install onnxscript (torch.onnx.export(dynamo=True) needs it)"
    print("versions:", json.dumps(versions()))
    torch.manual_seed(0)

    # 1. torch.onnx.export, both exporters.
    print("same_torch.onnx / same_torch_legacy.onnx (= same_torch.pt)")
    m = rf.make_model(106, "lstm", 11, [13, 13], vocab=17, out=17,
                      plant=[{"zero": [2, 9], "out_only": [5], "in_only": [12]},
                             {"zero": [0, 7], "out_only": [11], "in_only": [4]}])
    x = mf.token_input(206, 17)
    ys = [write_torch_onnx(nm, m, x, dyn, same_as="same_torch.pt")[0]
          for nm, dyn in (("same_torch.onnx", True), ("same_torch_legacy.onnx", False))]
    assert np.array_equal(ys[0], ys[1])

    print("torch_bilstm_feat.onnx / torch_bilstm_feat_legacy.onnx")
    m = rf.make_model(501, "lstm", 7, [6, 6], bidirectional=True, out=4,
                      plant=[{"fw": {"zero": [1], "out_only": [4], "in_only": [2]}, "bw": {"zero": [0, 5], "out_only": [3]}},
                             {"fw": {"zero": [2], "in_only": [5]}, "bw": {"zero": [4], "out_only": [1], "in_only": [0]}}])
    xf = np.random.default_rng(601).uniform(-1, 1, size=(SEQ, BATCH, 7)).astype(F32)
    for nm, dyn in (("torch_bilstm_feat.onnx", True), ("torch_bilstm_feat_legacy.onnx", False)):
        write_torch_onnx(nm, m, xf, dyn, extra_meta={"note": "float features in (no embedding), nn.LSTM(7, 6, "
                                                     "num_layers=2, bidirectional=True), nn.Linear(12, 4)"})

    print("torch_gru.onnx / torch_gru_legacy.onnx (= torch_gru.pt)")
    m = rf.make_model(306, "gru", 7, [10, 10], vocab=21, out=21, reset_after=True,
                      plant=[{"zero": [2], "out_only": [7], "in_only": [4]}, {"zero": [0, 9], "in_only": [5]}])
    x = mf.token_input(406, 21)
    for nm, dyn in (("torch_gru.onnx", True), ("torch_gru_legacy.onnx", False)):
        write_torch_onnx(nm, m, x, dyn, same_as="torch_gru.pt")

    # 2.-4. Keras 3 models: .keras, .h5 (+ tf2onnx and SavedModels of the LSTM model).
    print("keras_lstm.keras / .h5 / _tf2onnx.onnx / _export / _savedmodel (= keras_lstm.npz)")
    m = rf.make_model(105, "lstm", 8, [16, 11], vocab=21, out=21,
                      plant=[{"zero": [0, 15], "out_only": [6]}, {"zero": [10], "in_only": [3]}])
    for L in m["layers"]:
        for P in L.values():
            P["b_hh"] = None
    x = mf.token_input(205, 21)
    names = ["lstm", "lstm_1"]
    model, y, canon_ref, _ = write_keras_files("keras_lstm", m, x, names, "keras_lstm.npz")
    write_tf2onnx("keras_lstm_tf2onnx.onnx", model, m, x, y, canon_ref, "keras_lstm.npz")
    write_saved_models("keras_lstm", model, m, x, y, canon_ref, names, "keras_lstm.npz")

    print("keras_bilstm.keras / .h5 (= keras_bilstm.npz)")
    m = rf.make_model(302, "lstm", 8, [7, 6], bidirectional=True, vocab=18, out=18,
                      plant=[{"fw": {"zero": [0], "out_only": [4]}, "bw": {"zero": [6], "in_only": [2]}},
                             {"fw": {"zero": [1], "out_only": [5]}, "bw": {"zero": [0], "in_only": [3]}}])
    for L in m["layers"]:
        for P in L.values():
            P["b_hh"] = None
    write_keras_files("keras_bilstm", m, mf.token_input(402, 18), ["lstm", "lstm_1"], "keras_bilstm.npz")

    print("keras_gru_reset_after.keras / .h5 (= keras_gru_reset_after.npz)")
    m = rf.make_model(307, "gru", 6, [9, 7], vocab=20, out=20, reset_after=True,
                      plant=[{"zero": [0, 8], "out_only": [3]}, {"zero": [6], "in_only": [1]}])
    write_keras_files("keras_gru_reset_after", m, mf.token_input(407, 20), ["gru", "gru_1"],
                      "keras_gru_reset_after.npz")

    print("onnx_refuse_*.onnx")
    refusals = write_refusals()

    total = 0
    print("\nfixtures written:")
    for name, meta in REPORT:
        sz = 0
        for f in meta["files"]:
            q = os.path.join(OUT, f)
            sz += os.path.getsize(q)
        for sfx in (".json", ".io.npz", ".canonical.npz"):
            sz += os.path.getsize(os.path.join(OUT, name) + sfx)
        total += sz
        print(f"  {name}: {meta['format']} ({sz} bytes with sidecars)")
    for name in refusals:
        sz = os.path.getsize(os.path.join(OUT, name)) + os.path.getsize(os.path.join(OUT, name) + ".json")
        total += sz
        print(f"  {name}: onnx, must be refused ({sz} bytes with sidecar)")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
