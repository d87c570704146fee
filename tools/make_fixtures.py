#!/usr/bin/env python3
"""Write issbench's loader test fixtures with the real frameworks.

Every fixture under tests/fixtures/ is written by the framework whose format it
is (TensorFlow's tf.compat.v1.train.Saver, torch.save, safetensors, numpy), and
its reference output is computed by that framework (TF session.run, the torch
module, the Keras model), from a zero initial state.  See
tools/README-fixtures.md for the list, the tensor names and the conventions.

Canonical meaning (what the Rust loaders convert to), per LSTM layer:
    w_ih [4h, in], w_hh [4h, h], bias [4h] (all biases folded, forget_bias
    included), gate order i, f, g, o;
    optional embedding [vocab, in]; optional head weight [out, h_last] + bias.

For each fixture PATH (a file, or a directory for TF checkpoints):
    PATH.io.npz         input  int64 [seq, batch] token ids (time-major), or
                               float32 [seq, batch, in] for a bare LSTM
                        output float32 [seq, batch, out] (logits, or the last
                               layer's hidden states without a head)
    PATH.json           sidecar: format, naming, layers, ISS plantings, ...
    PATH.canonical.npz  the canonical weights a loader must produce, exactly
                        (bit-for-bit: keys embedding, layers.K.w_ih,
                        layers.K.w_hh, layers.K.bias, head.weight, head.bias)

Deterministic: fixed seeds; re-running rewrites identical bytes.

Install (virtual environment outside the repo):
    python3 -m venv /work/fxvenv && /work/fxvenv/bin/pip install 'tensorflow-cpu==2.21.*' torch safetensors numpy
Run (from the repository root):
    /work/fxvenv/bin/python tools/make_fixtures.py
"""

import json
import os
import platform
import re
import shutil
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # plain Eigen kernels: same numerics on every CPU
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures")
SEQ, BATCH = 5, 3
TOL = 1e-5

import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)

import keras  # noqa: E402
import safetensors  # noqa: E402
import safetensors.numpy  # noqa: E402
import safetensors.torch  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

# The real BasicLSTMCell / MultiRNNCell.  In TF 2.21 (with Keras 3)
# tf.compat.v1.nn.rnn_cell.BasicLSTMCell raises "not available with Keras 3",
# but TF still ships its legacy copy in tensorflow.python.keras.
try:
    from tensorflow.python.keras.layers.legacy_rnn import rnn_cell_impl as _rnn_cell

    BasicLSTMCell, MultiRNNCell = _rnn_cell.BasicLSTMCell, _rnn_cell.MultiRNNCell
    TF_CELL_SOURCE = "tensorflow.python.keras.layers.legacy_rnn.rnn_cell_impl.BasicLSTMCell"
except Exception:  # pragma: no cover - fallback, see tf_forward_manual
    BasicLSTMCell = MultiRNNCell = None
    TF_CELL_SOURCE = "hand-built variables + TF ops (BasicLSTMCell math)"


def versions():
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "torch": torch.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
        "tf_lstm_cell": TF_CELL_SOURCE,
    }


# ----------------------------------------------------------------------------
# Model generation and ISS planting (canonical layout, gate order i, f, g, o)
# ----------------------------------------------------------------------------


def gate_rows(h, k):
    return [k, h + k, 2 * h + k, 3 * h + k]


def nonzero_uniform(rng, shape, lo, hi):
    """float32 uniform in +-[lo, hi] (never near zero)."""
    mag = rng.uniform(lo, hi, size=shape)
    sign = np.where(rng.random(size=shape) < 0.5, -1.0, 1.0)
    return (mag * sign).astype(np.float32)


def make_model(seed, n_in, hiddens, vocab=None, out=None, plant=None):
    """Random canonical model with planted ISS components.

    Returns dict(embedding, layers=[dict(w_ih, w_hh, b1, b2)], head_w, head_b).
    b1 and b2 are two bias vectors (PyTorch's bias_ih / bias_hh); how they
    fold into the canonical bias depends on the format.
    plant: per layer dict(zero=[..], out_only=[..], in_only=[..]).
    """
    rng = np.random.default_rng(seed)
    m = {"embedding": None, "head_w": None, "head_b": None, "layers": []}
    if vocab is not None:
        m["embedding"] = nonzero_uniform(rng, (vocab, n_in), 0.05, 1.0)
    prev = n_in
    for h in hiddens:
        s = 1.2 / np.sqrt(h)
        m["layers"].append(
            {
                "w_ih": nonzero_uniform(rng, (4 * h, prev), 0.01, s),
                "w_hh": nonzero_uniform(rng, (4 * h, h), 0.01, s),
                "b1": nonzero_uniform(rng, (4 * h,), 0.05, 0.5),
                "b2": nonzero_uniform(rng, (4 * h,), 0.05, 0.5),
            }
        )
        prev = h
    if out is not None:
        m["head_w"] = nonzero_uniform(rng, (out, prev), 0.01, 1.0)
        m["head_b"] = nonzero_uniform(rng, (out,), 0.05, 0.5)
    plant = plant or [{} for _ in hiddens]
    m["plant"] = plant
    for li, p in enumerate(plant):
        L = m["layers"][li]
        h = hiddens[li]
        cons = consumer(m, li)
        for k in p.get("zero", []) + p.get("in_only", []):
            L["w_ih"][gate_rows(h, k), :] = 0.0
            L["w_hh"][gate_rows(h, k), :] = 0.0
        for k in p.get("zero", []) + p.get("out_only", []):
            L["w_hh"][:, k] = 0.0
            if cons is not None:
                cons[:, k] = 0.0
    return m


def consumer(m, li):
    """The matrix whose columns read layer li's hidden state (or None)."""
    if li + 1 < len(m["layers"]):
        return m["layers"][li + 1]["w_ih"]
    return m["head_w"]


def classify(canon):
    """ISS classification of every hidden unit, from canonical weights."""
    res = []
    n = len(canon["layers"])
    for li, L in enumerate(canon["layers"]):
        w_ih, w_hh, b = L["w_ih"], L["w_hh"], L["bias"]
        h = w_hh.shape[1]
        cons = canon["layers"][li + 1]["w_ih"] if li + 1 < n else canon["head_w"]
        zero, out_only, in_only = [], [], []
        for k in range(h):
            r = gate_rows(h, k)
            inc = not w_ih[r].any() and not w_hh[r].any()
            rec = not w_hh[:, k].any()
            con = True if cons is None else not cons[:, k].any()
            outz = rec and con
            if inc and outz:
                zero.append(k)
            elif outz:
                out_only.append(k)
            elif inc:
                in_only.append(k)
            if inc or outz:
                assert np.all(b[r] != 0), f"layer {li} unit {k}: planted biases must stay nonzero"
        removable = sorted(zero + out_only)
        res.append(
            {
                "layer": li,
                "hidden": h,
                "consumer": (f"layers.{li + 1}.w_ih" if li + 1 < n else ("head.weight" if cons is not None else None)),
                "fully_zero": zero,
                "outgoing_zero_only": out_only,
                "incoming_zero_only": in_only,
                "removable": removable,
                "compact_hidden": h - len(removable),
            }
        )
    return res


def check_plant(m, canon):
    cls = classify(canon)
    for li, p in enumerate(m["plant"]):
        c = cls[li]
        assert c["fully_zero"] == sorted(p.get("zero", [])), (li, c)
        assert c["outgoing_zero_only"] == sorted(p.get("out_only", [])), (li, c)
        assert c["incoming_zero_only"] == sorted(p.get("in_only", [])), (li, c)
    return cls


# ----------------------------------------------------------------------------
# Canonical <-> format conversions
# ----------------------------------------------------------------------------

F32 = np.float32


def canonical_from_model(m, bias_mode, forget_bias=0.0):
    """Canonical weights a loader must produce for a file written from m.

    bias_mode: 'torch' -> bias = b1 + b2 (float32 add),
               'single' -> bias = b1 (+ forget_bias on the f block, float32).
    """
    c = {"embedding": m["embedding"], "head_w": m["head_w"], "head_b": m["head_b"], "layers": []}
    for L in m["layers"]:
        h = L["w_hh"].shape[1]
        if bias_mode == "torch":
            b = (L["b1"] + L["b2"]).astype(F32)
        else:
            b = L["b1"].copy()
            b[h : 2 * h] = (b[h : 2 * h] + F32(forget_bias)).astype(F32)
        c["layers"].append({"w_ih": L["w_ih"], "w_hh": L["w_hh"], "bias": b})
    return c


def ifgo_to_igfo(a, h, axis=0):
    """Canonical gate blocks (i, f, g, o) -> TF BasicLSTMCell (i, j=g, f, o)."""
    blocks = np.split(a, 4, axis=axis)
    return np.concatenate([blocks[0], blocks[2], blocks[1], blocks[3]], axis=axis)


igfo_to_ifgo = ifgo_to_igfo  # the permutation is its own inverse


def to_tf_arrays(m, prefix="Model/RNN/multi_rnn_cell"):
    """TF BasicLSTMCell arrays: kernel [in+h, 4h] (rows x then h, cols i,j,f,o)."""
    out = []
    for L in m["layers"]:
        h = L["w_hh"].shape[1]
        w = np.concatenate([L["w_ih"], L["w_hh"]], axis=1)  # [4h, in+h]
        kernel = np.ascontiguousarray(ifgo_to_igfo(w, h, axis=0).T)
        bias = ifgo_to_igfo(L["b1"], h)
        out.append((kernel, bias))
    return out


def canonical_from_tf(get, n_layers, naming, forget_bias, has_emb=True, has_head=True):
    """What a loader does with a TF checkpoint (get(name) -> ndarray)."""
    wname, bname = ("weights", "biases") if naming == "weights_biases" else ("kernel", "bias")
    c = {"embedding": get("Model/embedding") if has_emb else None, "layers": []}
    prev = c["embedding"].shape[1] if has_emb else None
    for k in range(n_layers):
        base = f"Model/RNN/multi_rnn_cell/cell_{k}/basic_lstm_cell/"
        kern, bias = get(base + wname), get(base + bname)
        h = kern.shape[1] // 4
        n_in = kern.shape[0] - h
        assert prev is None or prev == n_in
        w = igfo_to_ifgo(kern.T, h, axis=0)
        b = igfo_to_ifgo(bias, h).copy()
        b[h : 2 * h] = (b[h : 2 * h] + F32(forget_bias)).astype(F32)
        c["layers"].append({"w_ih": w[:, :n_in].copy(), "w_hh": w[:, n_in:].copy(), "bias": b})
        prev = h
    c["head_w"] = get("Model/softmax_w").T.copy() if has_head else None
    c["head_b"] = get("Model/softmax_b") if has_head else None
    return c


def canonical_from_torch(sd, prefix, n_layers, emb_key=None, head_key=None):
    c = {"embedding": sd[emb_key + ".weight"] if emb_key else None, "layers": []}
    for k in range(n_layers):
        g = lambda n: sd[f"{prefix}{n}_l{k}"]  # noqa: E731
        c["layers"].append(
            {"w_ih": g("weight_ih"), "w_hh": g("weight_hh"), "bias": (g("bias_ih") + g("bias_hh")).astype(F32)}
        )
    c["head_w"] = sd[head_key + ".weight"] if head_key else None
    c["head_b"] = sd[head_key + ".bias"] if head_key else None
    return c


def canonical_from_keras(d, lstm_names):
    c = {"embedding": d["embedding/embeddings"], "layers": []}
    for n in lstm_names:
        c["layers"].append(
            {
                "w_ih": d[f"{n}/lstm_cell/kernel"].T.copy(),
                "w_hh": d[f"{n}/lstm_cell/recurrent_kernel"].T.copy(),
                "bias": d[f"{n}/lstm_cell/bias"],
            }
        )
    c["head_w"] = d["dense/kernel"].T.copy()
    c["head_b"] = d["dense/bias"]
    return c


def canon_arrays(c):
    d = {}
    if c["embedding"] is not None:
        d["embedding"] = c["embedding"]
    for k, L in enumerate(c["layers"]):
        d[f"layers.{k}.w_ih"] = L["w_ih"]
        d[f"layers.{k}.w_hh"] = L["w_hh"]
        d[f"layers.{k}.bias"] = L["bias"]
    if c["head_w"] is not None:
        d["head.weight"] = c["head_w"]
        d["head.bias"] = c["head_b"]
    return {k: np.ascontiguousarray(v, dtype=F32) for k, v in d.items()}


def assert_canon_equal(a, b, what):
    da, db = canon_arrays(a), canon_arrays(b)
    assert sorted(da) == sorted(db), (what, sorted(da), sorted(db))
    for k in da:
        assert da[k].shape == db[k].shape, (what, k, da[k].shape, db[k].shape)
        assert np.array_equal(da[k].view(np.uint32), db[k].view(np.uint32)), f"{what}: {k} differs"


def np_forward(c, x):
    """float64 reference of the canonical model (for cross-checking only)."""
    if c["embedding"] is not None:
        seq = c["embedding"].astype(np.float64)[x]
    else:
        seq = x.astype(np.float64)
    for L in c["layers"]:
        w_ih, w_hh, b = (L[k].astype(np.float64) for k in ("w_ih", "w_hh", "bias"))
        h_dim = w_hh.shape[1]
        h = np.zeros((seq.shape[1], h_dim))
        cs = np.zeros_like(h)
        outs = []
        sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
        for t in range(seq.shape[0]):
            z = seq[t] @ w_ih.T + h @ w_hh.T + b
            i, f, g, o = np.split(z, 4, axis=1)
            cs = sig(f) * cs + sig(i) * np.tanh(g)
            h = sig(o) * np.tanh(cs)
            outs.append(h)
        seq = np.stack(outs)
    if c["head_w"] is not None:
        seq = seq @ c["head_w"].astype(np.float64).T + c["head_b"].astype(np.float64)
    return seq


def check_close(a, b, what, tol=TOL):
    err = float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
    assert err <= tol, f"{what}: max abs diff {err} > {tol}"
    return err


# ----------------------------------------------------------------------------
# Writers of the sidecars
# ----------------------------------------------------------------------------

REPORT = []


def rel(p):
    return os.path.relpath(p, OUT)


def file_tensors_tf(prefix):
    dtypes = tf.train.load_checkpoint(prefix).get_variable_to_dtype_map()
    return {n: {"shape": list(s), "dtype": dtypes[n].name} for n, s in tf.train.list_variables(prefix)}


def tensors_of(d):
    return {k: {"shape": list(np.asarray(v).shape), "dtype": str(np.asarray(v).dtype)} for k, v in sorted(d.items())}


def write_sidecars(path, meta, canon, x, y, inp_desc, out_desc, computed_by):
    np.savez(path + ".io.npz", input=x, output=y.astype(F32))
    np.savez(path + ".canonical.npz", **canon_arrays(canon))
    meta = dict(meta)
    meta["layers"] = [{"input": L["w_ih"].shape[1], "hidden": L["w_hh"].shape[1]} for L in canon["layers"]]
    meta["vocab"] = None if canon["embedding"] is None else int(canon["embedding"].shape[0])
    meta["embedding_dim"] = None if canon["embedding"] is None else int(canon["embedding"].shape[1])
    meta["output_size"] = int(y.shape[-1])
    meta["iss"] = classify(canon)
    meta["io"] = {
        "file": rel(path) + ".io.npz",
        "input": inp_desc,
        "output": out_desc,
        "computed_by": computed_by,
        "initial_state": "zero (h = c = 0)",
        "seq": SEQ,
        "batch": BATCH,
    }
    meta["canonical"] = {
        "file": rel(path) + ".canonical.npz",
        "meaning": "per layer w_ih [4h,in], w_hh [4h,h], bias [4h] (all biases and forget_bias folded, "
        "float32 adds), gate order i,f,g,o; embedding [vocab,in]; head.weight [out,h_last], head.bias [out]",
    }
    meta["versions"] = versions()
    text = json.dumps(meta, indent=2, sort_keys=False)
    # Keep short lists of numbers (shapes, unit indices) on one line.
    text = re.sub(r"\[\s*(-?[\d.e+-]+(?:,\s*-?[\d.e+-]+)*)\s*\]",
                  lambda mt: "[" + ", ".join(x.strip() for x in mt.group(1).split(",")) + "]", text)
    with open(path + ".json", "w") as f:
        f.write(text + "\n")
    REPORT.append((rel(path), meta))


def token_input(seed, vocab):
    return np.random.default_rng(seed).integers(0, vocab, size=(SEQ, BATCH)).astype(np.int64)


# ----------------------------------------------------------------------------
# 1. TensorFlow V2 checkpoints (tf.compat.v1.train.Saver), PTB / ISS naming
# ----------------------------------------------------------------------------


def tf_build(m, forget_bias, x_batch_major):
    """Build the PTB-style graph.  Returns (graph, logits_tensor, feed, vars)."""
    vocab, emb = m["embedding"].shape
    hiddens = [L["w_hh"].shape[1] for L in m["layers"]]
    g = tf.Graph()
    with g.as_default():
        tf.compat.v1.set_random_seed(0)
        gstep = tf.compat.v1.train.get_or_create_global_step()
        ids = tf.compat.v1.placeholder(tf.int64, [BATCH, SEQ], name="input_ids")
        with tf.compat.v1.variable_scope("Model"):
            embedding = tf.compat.v1.get_variable("embedding", [vocab, emb], dtype=tf.float32)
            inputs = tf.nn.embedding_lookup(embedding, ids)
            if BasicLSTMCell is not None:
                cell = MultiRNNCell(
                    [BasicLSTMCell(h, forget_bias=forget_bias, state_is_tuple=True) for h in hiddens],
                    state_is_tuple=True,
                )
                state = cell.zero_state(BATCH, tf.float32)
                outputs = []
                with tf.compat.v1.variable_scope("RNN"):
                    for t in range(SEQ):
                        if t > 0:
                            tf.compat.v1.get_variable_scope().reuse_variables()
                        out, state = cell(inputs[:, t, :], state)
                        outputs.append(out)
            else:
                outputs = tf_forward_manual(inputs, hiddens, emb, forget_bias)
            softmax_w = tf.compat.v1.get_variable("softmax_w", [hiddens[-1], vocab], dtype=tf.float32)
            softmax_b = tf.compat.v1.get_variable("softmax_b", [vocab], dtype=tf.float32)
            logits = tf.stack([tf.matmul(o, softmax_w) + softmax_b for o in outputs])  # [seq, batch, vocab]
            lr = tf.Variable(0.0, trainable=False)  # the PTB model's learning rate: Model/Variable
        vars_ = {v.op.name: v for v in tf.compat.v1.global_variables()}
    return g, logits, ids, vars_, gstep, lr


def tf_forward_manual(inputs, hiddens, emb, forget_bias):  # pragma: no cover - fallback only
    """BasicLSTMCell math with hand-made variables (same names as the cell)."""
    outputs = [inputs[:, t, :] for t in range(SEQ)]
    prev = emb
    with tf.compat.v1.variable_scope("RNN/multi_rnn_cell"):
        for k, h in enumerate(hiddens):
            with tf.compat.v1.variable_scope(f"cell_{k}/basic_lstm_cell"):
                kern = tf.compat.v1.get_variable("kernel", [prev + h, 4 * h], dtype=tf.float32)
                bias = tf.compat.v1.get_variable("bias", [4 * h], dtype=tf.float32)
            hs = tf.zeros([BATCH, h])
            cs = tf.zeros([BATCH, h])
            new = []
            for xt in outputs:
                z = tf.matmul(tf.concat([xt, hs], 1), kern) + bias
                i, j, f, o = tf.split(z, 4, axis=1)
                cs = cs * tf.sigmoid(f + forget_bias) + tf.sigmoid(i) * tf.tanh(j)
                hs = tf.tanh(cs) * tf.sigmoid(o)
                new.append(hs)
            outputs = new
            prev = h
    return outputs


def tf_session(g):
    cfg = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)
    return tf.compat.v1.Session(graph=g, config=cfg)


def write_tf(name, m, naming, forget_bias, step, lr_value, x, extra_meta=None):
    path = os.path.join(OUT, name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    arrays = to_tf_arrays(m)
    wname, bname = ("weights", "biases") if naming == "weights_biases" else ("kernel", "bias")
    g, logits, ids, vars_, gstep, lr = tf_build(m, forget_bias, x.T)
    with g.as_default():
        values = {"Model/embedding": m["embedding"], "Model/softmax_w": m["head_w"].T.copy(),
                  "Model/softmax_b": m["head_b"]}
        var_list = {"global_step": gstep, "Model/Variable": lr,
                    "Model/embedding": vars_["Model/embedding"],
                    "Model/softmax_w": vars_["Model/softmax_w"], "Model/softmax_b": vars_["Model/softmax_b"]}
        for k, (kern, bias) in enumerate(arrays):
            base = f"Model/RNN/multi_rnn_cell/cell_{k}/basic_lstm_cell/"
            values[base + "kernel"] = kern
            values[base + "bias"] = bias
            # Old (TF < 1.2) checkpoints name the same tensors weights / biases.
            var_list[base + wname] = vars_[base + "kernel"]
            var_list[base + bname] = vars_[base + "bias"]
        assert sorted(vars_) == sorted(list(values) + ["global_step", "Model/Variable"]), sorted(vars_)
        saver = tf.compat.v1.train.Saver(var_list=var_list, save_relative_paths=True)
        with tf_session(g) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            for n, v in values.items():
                vars_[n].load(v, sess)
            gstep.load(step, sess)
            lr.load(lr_value, sess)
            y = sess.run(logits, {ids: x.T})
            # No .meta graph (80 KB of GraphDef the loaders never read).
            saver.save(sess, os.path.join(path, "model.ckpt"), global_step=step, write_meta_graph=False)
    prefix = os.path.join(path, f"model.ckpt-{step}")
    # Restore into a fresh graph and run again (checks the saved names / mapping).
    g2, logits2, ids2, vars2, gstep2, lr2 = tf_build(m, forget_bias, x.T)
    with g2.as_default():
        v2 = {k.replace("/kernel", "/" + wname).replace("/bias", "/" + bname): v for k, v in vars2.items()}
        with tf_session(g2) as sess:
            tf.compat.v1.train.Saver(var_list=v2).restore(sess, prefix)
            y2 = sess.run(logits2, {ids2: x.T})
            assert int(sess.run(gstep2)) == step
    assert np.array_equal(y, y2)
    reader = tf.train.load_checkpoint(prefix)
    canon = canonical_from_tf(reader.get_tensor, len(arrays), naming, forget_bias)
    canon_ref = canonical_from_model(m, "single", forget_bias)
    assert_canon_equal(canon, canon_ref, name)
    check_plant(m, canon)
    err = check_close(y, np_forward(canon, x), name)
    tensors = file_tensors_tf(prefix)
    meta = {
        "fixture": name,
        "files": sorted(os.path.join(name, f) for f in os.listdir(path)),
        "format": "tensorflow_checkpoint_v2 (tf.compat.v1.train.Saver, write_version V2)",
        "checkpoint_prefix": rel(prefix),
        "checkpoint_state_file": os.path.join(name, "checkpoint"),
        "global_step": step,
        "naming": f"tf_ptb_basic_lstm_{naming}",
        "layout": "cell_K kernel [in+h, 4h]: rows = [x; h] (input first, then recurrent), "
        "columns = 4 gate blocks i, j, f, o (j = g); softmax_w [h_last, vocab] (x @ W)",
        "gate_order_in_file": "i,j,f,o",
        "forget_bias": forget_bias,
        "forget_bias_note": "not stored in the checkpoint: BasicLSTMCell adds it to f at run time; "
        "the canonical bias has it folded in (float32 add)",
        "tensors": tensors,
        "model_tensors": sorted(var_list.keys() - {"global_step", "Model/Variable"}),
        "ignored_tensors": ["global_step", "Model/Variable"],
        "ignored_tensors_note": "global_step: int64 scalar; Model/Variable: the PTB model's learning rate",
        "tf_cell": TF_CELL_SOURCE,
        "max_abs_diff_vs_float64_reference": err,
    }
    meta.update(extra_meta or {})
    write_sidecars(path, meta, canon, x, y, "int64 [seq, batch] token ids, time-major",
                   "float32 [seq, batch, vocab] logits", "tensorflow (graph mode, tf.compat.v1.Session.run)")
    return y, canon


# ----------------------------------------------------------------------------
# 2./3. PyTorch (torch.save zip, safetensors)
# ----------------------------------------------------------------------------


class TorchLM(torch.nn.Module):
    def __init__(self, vocab, emb, hidden, num_layers):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, emb)
        self.rnn = torch.nn.LSTM(emb, hidden, num_layers=num_layers)
        self.decoder = torch.nn.Linear(hidden, vocab)

    def forward(self, ids):  # ids [seq, batch]
        out, _ = self.rnn(self.embed(ids))  # zero initial state
        return self.decoder(out)


def torch_load_from_model(mod, m, prefix):
    sd = {}
    if m["embedding"] is not None:
        sd["embed.weight"] = m["embedding"]
    for k, L in enumerate(m["layers"]):
        sd[f"{prefix}weight_ih_l{k}"] = L["w_ih"]
        sd[f"{prefix}weight_hh_l{k}"] = L["w_hh"]
        sd[f"{prefix}bias_ih_l{k}"] = L["b1"]
        sd[f"{prefix}bias_hh_l{k}"] = L["b2"]
    if m["head_w"] is not None:
        sd["decoder.weight"] = m["head_w"]
        sd["decoder.bias"] = m["head_b"]
    own = mod.state_dict()
    assert sorted(own) == sorted(sd), (sorted(own), sorted(sd))
    mod.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()})


def torch_run(mod, x):
    with torch.no_grad():
        out = mod(torch.from_numpy(x))
    if isinstance(out, tuple):
        out = out[0]
    return out.numpy().astype(F32)


def sd_numpy(sd):
    return {k: v.detach().cpu().numpy() for k, v in sd.items()}


def write_torch_lm(name_pt, name_st, m, x, extra_meta=None):
    vocab, emb = m["embedding"].shape
    hidden = m["layers"][0]["w_hh"].shape[1]
    n = len(m["layers"])
    mod = TorchLM(vocab, emb, hidden, n).eval()
    torch_load_from_model(mod, m, "rnn.")
    y = torch_run(mod, x)
    canon_ref = canonical_from_model(m, "torch")
    check_plant(m, canon_ref)
    err = check_close(y, np_forward(canon_ref, x), name_pt)
    outs = {}
    # torch.save (default zip format)
    p = os.path.join(OUT, name_pt)
    torch.save(mod.state_dict(), p)
    sd = torch.load(p, map_location="cpu", weights_only=True)
    mod2 = TorchLM(vocab, emb, hidden, n).eval()
    mod2.load_state_dict(sd)
    y_pt = torch_run(mod2, x)
    assert np.array_equal(y, y_pt)
    canon = canonical_from_torch(sd_numpy(sd), "rnn.", n, "embed", "decoder")
    assert_canon_equal(canon, canon_ref, name_pt)
    common = {
        "naming": "pytorch_nn_lstm (module attributes embed / rnn / decoder)",
        "layout": "rnn.weight_ih_lK [4h, in], rnn.weight_hh_lK [4h, h], rnn.bias_ih_lK + rnn.bias_hh_lK [4h] "
        "(add them), gates i,f,g,o; embed.weight [vocab, emb]; decoder.weight [vocab, h] (x @ W^T), decoder.bias",
        "gate_order_in_file": "i,f,g,o",
        "forget_bias": 0.0,
        "max_abs_diff_vs_float64_reference": err,
    }
    common.update(extra_meta or {})
    meta = {"fixture": name_pt, "files": [name_pt], "format": "pytorch_zip (torch.save of state_dict, default format)",
            "tensors": tensors_of(sd_numpy(sd)), **common}
    write_sidecars(p, meta, canon, x, y_pt, "int64 [seq, batch] token ids, time-major",
                   "float32 [seq, batch, vocab] logits", "torch (nn.Embedding -> nn.LSTM -> nn.Linear)")
    outs["pt"] = y_pt
    if name_st:
        p = os.path.join(OUT, name_st)
        safetensors.torch.save_file(mod.state_dict(), p, metadata={"format": "pt"})
        sd = safetensors.torch.load_file(p)
        mod3 = TorchLM(vocab, emb, hidden, n).eval()
        mod3.load_state_dict(sd)
        y_st = torch_run(mod3, x)
        assert np.array_equal(y, y_st)
        canon = canonical_from_torch(sd_numpy(sd), "rnn.", n, "embed", "decoder")
        assert_canon_equal(canon, canon_ref, name_st)
        meta = {"fixture": name_st, "files": [name_st],
                "format": "safetensors (safetensors.torch.save_file, metadata {\"format\": \"pt\"})",
                "tensors": tensors_of(sd_numpy(sd)), **common}
        write_sidecars(p, meta, canon, x, y_st, "int64 [seq, batch] token ids, time-major",
                       "float32 [seq, batch, vocab] logits",
                       "torch (state dict loaded back with safetensors.torch.load_file)")
        outs["safetensors"] = y_st
    return outs, canon_ref


def write_torch_plain(name, m, x):
    n_in = m["layers"][0]["w_ih"].shape[1]
    hidden = m["layers"][0]["w_hh"].shape[1]
    mod = torch.nn.LSTM(n_in, hidden, num_layers=1).eval()
    torch_load_from_model(mod, m, "")
    y = torch_run(mod, torch.from_numpy(x).numpy())
    p = os.path.join(OUT, name)
    torch.save(mod.state_dict(), p)
    sd = torch.load(p, map_location="cpu", weights_only=True)
    mod2 = torch.nn.LSTM(n_in, hidden, num_layers=1).eval()
    mod2.load_state_dict(sd)
    y2 = torch_run(mod2, x)
    assert np.array_equal(y, y2)
    canon = canonical_from_torch(sd_numpy(sd), "", 1)
    assert_canon_equal(canon, canonical_from_model(m, "torch"), name)
    check_plant(m, canon)
    err = check_close(y2, np_forward(canon, x), name)
    meta = {
        "fixture": name,
        "files": [name],
        "format": "pytorch_zip (torch.save of a bare nn.LSTM state_dict, default format)",
        "naming": "pytorch_nn_lstm (no prefix)",
        "layout": "weight_ih_l0 [4h, in], weight_hh_l0 [4h, h], bias_ih_l0 + bias_hh_l0 [4h], gates i,f,g,o",
        "gate_order_in_file": "i,f,g,o",
        "forget_bias": 0.0,
        "tensors": tensors_of(sd_numpy(sd)),
        "iss_note": "no head: the last layer's consumer is the fixture output itself, so 'fully_zero' here means "
        "zero incoming rows and zero w_hh column; that unit's output is input-independent but still part of "
        "the output; 'removable' there means removable from the recurrence if the caller also drops that output column",
        "max_abs_diff_vs_float64_reference": err,
    }
    write_sidecars(p, meta, canon, x, y2, "float32 [seq, batch, 7] features, time-major",
                   f"float32 [seq, batch, {hidden}] hidden states of the layer", "torch (nn.LSTM)")
    return y2


# ----------------------------------------------------------------------------
# 4. Keras (keras 3 model; weights saved by numpy.savez / safetensors.numpy)
# ----------------------------------------------------------------------------

KERAS_LSTM_NAMES = ["lstm", "lstm_1"]


def keras_build(m):
    vocab, emb = m["embedding"].shape
    hiddens = [L["w_hh"].shape[1] for L in m["layers"]]
    inp = keras.Input(shape=(SEQ,), batch_size=BATCH, dtype="int32")
    z = keras.layers.Embedding(vocab, emb, name="embedding")(inp)
    for h, nm in zip(hiddens, KERAS_LSTM_NAMES):
        z = keras.layers.LSTM(h, return_sequences=True, name=nm)(z)
    z = keras.layers.Dense(m["head_w"].shape[0], name="dense")(z)
    return keras.Model(inp, z)


def keras_run(model, x):
    return np.transpose(np.asarray(model(x.T.astype(np.int32), training=False)), (1, 0, 2)).astype(F32)


def keras_values(m):
    vals = {"embedding/embeddings": m["embedding"]}
    for L, nm in zip(m["layers"], KERAS_LSTM_NAMES):
        vals[f"{nm}/lstm_cell/kernel"] = np.ascontiguousarray(L["w_ih"].T)
        vals[f"{nm}/lstm_cell/recurrent_kernel"] = np.ascontiguousarray(L["w_hh"].T)
        vals[f"{nm}/lstm_cell/bias"] = L["b1"]
    vals["dense/kernel"] = np.ascontiguousarray(m["head_w"].T)
    vals["dense/bias"] = m["head_b"]
    return vals


def write_keras(name_npz, name_st, m, x, extra_meta=None):
    model = keras_build(m)
    paths = [v.path for v in model.weights]
    print(f"  keras variable paths: {paths}")
    vals = keras_values(m)
    assert sorted(paths) == sorted(vals), (paths, sorted(vals))
    for v in model.weights:
        v.assign(vals[v.path])
    y = keras_run(model, x)
    canon_ref = canonical_from_model(m, "single")
    check_plant(m, canon_ref)
    err = check_close(y, np_forward(canon_ref, x), name_npz)
    weights = {v.path: np.asarray(v.numpy(), dtype=F32) for v in model.weights}
    common = {
        "naming": "keras3 variable paths (Variable.path)",
        "keras_variable_paths": paths,
        "layout": "LAYER/lstm_cell/kernel [in, 4h] (x @ W), recurrent_kernel [h, 4h], bias [4h], gates i,f,c,o "
        "(c = g); embedding/embeddings [vocab, emb]; dense/kernel [h, out] (x @ W), dense/bias [out]; "
        "activation tanh, recurrent_activation sigmoid",
        "gate_order_in_file": "i,f,c,o",
        "forget_bias": 0.0,
        "lstm_layer_order": KERAS_LSTM_NAMES,
        "max_abs_diff_vs_float64_reference": err,
    }
    common.update(extra_meta or {})
    outs = {}
    for nm, kind in ((name_npz, "npz"), (name_st, "safetensors")):
        if not nm:
            continue
        p = os.path.join(OUT, nm)
        if kind == "npz":
            np.savez(p, **weights)
            with np.load(p) as f:
                back = {k: f[k] for k in f.files}
            fmt = "npz (numpy.savez, uncompressed; keys = keras variable paths)"
        else:
            safetensors.numpy.save_file(weights, p, metadata={"format": "keras"})
            back = safetensors.numpy.load_file(p)
            fmt = "safetensors (safetensors.numpy.save_file, metadata {\"format\": \"keras\"})"
        model2 = keras_build(m)
        for v in model2.weights:
            v.assign(back[v.path])
        y2 = keras_run(model2, x)
        assert np.array_equal(y, y2), nm
        canon = canonical_from_keras(back, KERAS_LSTM_NAMES)
        assert_canon_equal(canon, canon_ref, nm)
        meta = {"fixture": nm, "files": [nm], "format": fmt, "tensors": tensors_of(back), **common}
        write_sidecars(p, meta, canon, x, y2, "int64 [seq, batch] token ids, time-major",
                       "float32 [seq, batch, vocab] logits",
                       f"keras {keras.__version__} ({keras.config.backend()} backend), weights loaded back from "
                       f"the {kind} file")
        outs[kind] = y2
    return outs, canon_ref


# ----------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------


def main():
    os.makedirs(OUT, exist_ok=True)
    print("versions:", json.dumps(versions()))

    # 1. TF checkpoints, old and new naming.
    print("tf_weights_biases")
    m = make_model(101, 11, [13, 17], vocab=20, out=20,
                   plant=[{"zero": [2, 7], "out_only": [10], "in_only": [4]}, {"zero": [0, 5, 16]}])
    write_tf("tf_weights_biases", m, "weights_biases", 0.0, 2600, 0.25, token_input(201, 20),
             {"note": "TF < 1.2 variable names (weights / biases), forget_bias 0.0 as in the ISS PTB code"})
    print("tf_kernel_bias")
    m = make_model(102, 9, [11, 8], vocab=19, out=19,
                   plant=[{"zero": [3], "in_only": [9]}, {"zero": [1, 6], "out_only": [4]}])
    write_tf("tf_kernel_bias", m, "kernel_bias", 1.0, 3900, 0.5, token_input(202, 19),
             {"note": "TF >= 1.2 variable names (kernel / bias), forget_bias 1.0 (BasicLSTMCell default)"})

    # 2./3. PyTorch LM (.pt + safetensors) and a bare nn.LSTM.
    print("torch_lstm")
    m = make_model(103, 10, [12, 12, 12], vocab=23, out=23,
                   plant=[{"zero": [1, 8], "out_only": [5]}, {"zero": [0], "in_only": [11]},
                          {"zero": [3, 9], "out_only": [7], "in_only": [2]}])
    write_torch_lm("torch_lstm.pt", "torch_lstm.safetensors", m, token_input(203, 23))
    print("torch_plain_lstm")
    m = make_model(104, 7, [9], plant=[{"zero": [4], "in_only": [6]}])
    xf = np.random.default_rng(204).uniform(-1, 1, size=(SEQ, BATCH, 7)).astype(F32)
    write_torch_plain("torch_plain_lstm.pth", m, xf)

    # 4. Keras naming.
    print("keras_lstm")
    m = make_model(105, 8, [16, 11], vocab=21, out=21,
                   plant=[{"zero": [0, 15], "out_only": [6]}, {"zero": [10], "in_only": [3]}])
    write_keras("keras_lstm.npz", "keras_lstm.safetensors", m, token_input(205, 21))

    # 5. One model, four formats.
    print("same model in four formats")
    m = make_model(106, 11, [13, 13], vocab=17, out=17,
                   plant=[{"zero": [2, 9], "out_only": [5], "in_only": [12]},
                          {"zero": [0, 7], "out_only": [11], "in_only": [4]}])
    x = token_input(206, 17)
    canon_torch = canonical_from_model(m, "torch")
    # The single-bias formats store the float32 sum bias_ih + bias_hh.
    m1 = dict(m, layers=[dict(L, b1=B["bias"], b2=None) for L, B in zip(m["layers"], canon_torch["layers"])])
    same_meta = {"same_model": {"note": "same_tf/, same_torch.pt, same.safetensors and same.npz hold identical "
                                "canonical weights (bit-for-bit) and agree in output to 1e-5",
                                "members": ["same_tf", "same_torch.pt", "same.safetensors", "same.npz"]}}
    y_tf, c_tf = write_tf("same_tf", m1, "kernel_bias", 0.0, 1000, 1.0, x, same_meta)
    outs_t, c_t = write_torch_lm("same_torch.pt", None, m, x, same_meta)
    # same.safetensors: the PyTorch state dict.
    vocab, emb = m["embedding"].shape
    mod = TorchLM(vocab, emb, 13, 2).eval()
    torch_load_from_model(mod, m, "rnn.")
    p = os.path.join(OUT, "same.safetensors")
    safetensors.torch.save_file(mod.state_dict(), p, metadata={"format": "pt"})
    sd = safetensors.torch.load_file(p)
    mod.load_state_dict(sd)
    y_st = torch_run(mod, x)
    c_st = canonical_from_torch(sd_numpy(sd), "rnn.", 2, "embed", "decoder")
    meta = {"fixture": "same.safetensors", "files": ["same.safetensors"],
            "format": "safetensors (safetensors.torch.save_file, metadata {\"format\": \"pt\"})",
            "naming": "pytorch_nn_lstm (module attributes embed / rnn / decoder)",
            "layout": "as torch_lstm.pt: rnn.weight_ih_lK [4h, in], rnn.weight_hh_lK [4h, h], "
            "rnn.bias_ih_lK + rnn.bias_hh_lK, gates i,f,g,o; decoder.weight [vocab, h]",
            "gate_order_in_file": "i,f,g,o", "forget_bias": 0.0, "tensors": tensors_of(sd_numpy(sd)),
            "max_abs_diff_vs_float64_reference": check_close(y_st, np_forward(c_st, x), "same.safetensors"),
            **same_meta}
    write_sidecars(p, meta, c_st, x, y_st, "int64 [seq, batch] token ids, time-major",
                   "float32 [seq, batch, vocab] logits", "torch (state dict loaded back with safetensors.torch.load_file)")
    outs_k, c_k = write_keras("same.npz", None, m1, x, same_meta)
    for c, what in ((c_t, "torch"), (c_st, "safetensors"), (c_k, "keras npz")):
        assert_canon_equal(c_tf, c, f"same: tf vs {what}")
    ys = {"tf": y_tf, "torch": outs_t["pt"], "safetensors": y_st, "keras_npz": outs_k["npz"]}
    worst = 0.0
    for a in ys:
        for b in ys:
            worst = max(worst, check_close(ys[a], ys[b], f"same: {a} vs {b}"))
    print(f"  same model: canonical weights bit-identical across 4 formats; outputs agree, max diff {worst:.3g}")

    print("\nfixtures written:")
    for name, meta in REPORT:
        print(f"  {name}: {meta['format']}")
        for t, d in meta["tensors"].items():
            print(f"      {t} {d['shape']} {d['dtype']}")


if __name__ == "__main__":
    main()
