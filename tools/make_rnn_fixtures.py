#!/usr/bin/env python3
"""Write issbench's loader test fixtures for the bidirectional / GRU / RHN cell kinds.

Companion of tools/make_fixtures.py (same conventions, same determinism, same
self-checks; it imports that script's small helpers).  Every fixture is written
by the framework whose format it is (torch.save, safetensors, numpy.savez of
Keras 3 variables, TensorFlow's tf.compat.v1.train.Saver) and its reference
output is computed by that framework, from a zero initial state.

Canonical meaning (see tools/README-fixtures.md, "Bidirectional, GRU and RHN fixtures"):
    LSTM  w_ih [4h, in], w_hh [4h, h], bias [4h] (all biases folded), gates i, f, g, o
    GRU   w_ih [3h, in], w_hh [3h, h], b_ih [3h], b_hh [3h] (kept apart), gates r, z, n,
          per-layer flag reset_after
    RHN   w_ih [2w, in] (micro-layer 0's H rows then T rows), w_hh [L, 2w, w],
          bias [L, 2w]  (wenwei202/iss-rnns rhns/rhn.py arithmetic)
    bidirectional layer: directions fw, bw; bw reads the sequence reversed, its
          output for time t is placed at t; layer output = [fw; bw].
    canonical.npz keys: layers.K.w_ih ... (one direction) or layers.K.fw.w_ih,
          layers.K.bw.w_ih ... (two), embedding, head.weight, head.bias.

For each fixture PATH (a file, or a directory for TF checkpoints):
    PATH.io.npz         input  int64 [seq, batch] token ids (time-major), or
                               float32 [seq, batch, in] features (TF BiDAF fixtures)
                        output float32 [seq, batch, out] (logits)
                        hidden (TF BiDAF fixtures only) float32 [seq, batch, h_fw+h_bw]:
                               the last recurrent layer's output
    PATH.json           sidecar (cell, directions, reset_after, depth, tied, layers, iss, ...)
    PATH.canonical.npz  the canonical weights a loader must produce, bit-for-bit

Deterministic: fixed seeds, one thread, TF_ENABLE_ONEDNN_OPTS=0.
Run (from the repository root):
    /work/fxvenv/bin/python tools/make_rnn_fixtures.py
"""

import json
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf  # noqa: E402  (sets TF threads / oneDNN off, imports TF, keras, torch)

import numpy as np  # noqa: E402

tf, keras, torch = mf.tf, mf.keras, mf.torch
safetensors = mf.safetensors
import safetensors.numpy  # noqa: E402,F811
import safetensors.torch  # noqa: E402

OUT, SEQ, BATCH, TOL, F32 = mf.OUT, mf.SEQ, mf.BATCH, mf.TOL, mf.F32
nonzero_uniform, token_input, check_close, tensors_of = (mf.nonzero_uniform, mf.token_input, mf.check_close,
                                                         mf.tensors_of)
BasicLSTMCell, TF_CELL_SOURCE = mf.BasicLSTMCell, mf.TF_CELL_SOURCE
GATES = {"lstm": 4, "gru": 3}
DIRS = ("fw", "bw")


def versions():
    v = mf.versions()
    v["script"] = "tools/make_rnn_fixtures.py"
    return v


# ----------------------------------------------------------------------------
# Generic model: layers of one cell kind, one (key None) or two ("fw", "bw")
# directions.  Raw per-direction parameters ("P"):
#   lstm: w_ih [4h,in], w_hh [4h,h], b_ih [4h], b_hh [4h] (b_hh None: single-bias file)
#   gru : w_ih [3h,in], w_hh [3h,h], b_ih [3h], b_hh [3h]
#   rhn : w_ih [2w,in], w_hh [L,2w,w], bias [L,2w]
# ----------------------------------------------------------------------------


def unit_rows(cell, h, k):
    if cell == "rhn":
        return [k, h + k]
    return [g * h + k for g in range(GATES[cell])]


def hidden_of(P):
    return int(P["w_hh"].shape[-1])


def gen_dir(rng, cell, n_in, h, depth=None, t_bias=None):
    s = 1.2 / np.sqrt(h)
    if cell == "rhn":
        bias = nonzero_uniform(rng, (depth, 2 * h), 0.05, 0.5)
        if t_bias is not None:  # rhn.py initialises the T biases to init_bias (-2.0)
            bias[:, h:] = (bias[:, h:] * F32(0.5) + F32(t_bias)).astype(F32)
        return {"w_ih": nonzero_uniform(rng, (2 * h, n_in), 0.01, s),
                "w_hh": nonzero_uniform(rng, (depth, 2 * h, h), 0.01, s), "bias": bias}
    G = GATES[cell]
    return {"w_ih": nonzero_uniform(rng, (G * h, n_in), 0.01, s),
            "w_hh": nonzero_uniform(rng, (G * h, h), 0.01, s),
            "b_ih": nonzero_uniform(rng, (G * h,), 0.05, 0.5),
            "b_hh": nonzero_uniform(rng, (G * h,), 0.05, 0.5)}


def dir_offset(layer, d):
    """Column offset of direction d's units in the layer's output [fw; bw]."""
    return hidden_of(layer["fw"]) if d == "bw" else 0


def consumers(m, li, d):
    """[(canonical name, matrix, column offset)] reading layer li direction d (not the recurrence)."""
    off = dir_offset(m["layers"][li], d)
    if li + 1 < len(m["layers"]):
        return [(tname(li + 1, d2, "w_ih"), P2["w_ih"], off) for d2, P2 in m["layers"][li + 1].items()]
    if m["head_w"] is not None:
        return [("head.weight", m["head_w"], off)]
    return []


def tname(li, d, what):
    return f"layers.{li}.{what}" if d is None else f"layers.{li}.{d}.{what}"


def make_model(seed, cell, n_in, hiddens, bidirectional=False, vocab=None, out=None, plant=None, depth=None,
               tied=False, reset_after=None, t_bias=None, b_hh_zero=False):
    """Random model with planted ISS components.

    hiddens: per layer an int (both directions) or (h_fw, h_bw).
    plant: per layer a dict(zero=, out_only=, in_only=) (one direction) or
           {"fw": dict, "bw": dict}.
    tied (RHN): head weight IS the embedding (same array); n_in must equal the width.
    b_hh_zero (GRU reset_after=False single-bias files): b_hh = 0.
    """
    rng = np.random.default_rng(seed)
    m = {"cell": cell, "depth": depth, "tied": tied, "reset_after": reset_after, "embedding": None,
         "head_w": None, "head_b": None, "layers": []}
    if vocab is not None:
        m["embedding"] = nonzero_uniform(rng, (vocab, n_in), 0.05, 1.0)
    prev = n_in
    for h in hiddens:
        hs = (h, h) if isinstance(h, int) else tuple(h)
        if bidirectional:
            L = {d: gen_dir(rng, cell, prev, hd, depth, t_bias) for d, hd in zip(DIRS, hs)}
            prev = hs[0] + hs[1]
        else:
            L = {None: gen_dir(rng, cell, prev, hs[0], depth, t_bias)}
            prev = hs[0]
        if b_hh_zero:
            for P in L.values():
                P["b_hh"] = np.zeros_like(P["b_hh"])
        m["layers"].append(L)
    if tied:
        assert cell == "rhn" and out is None and m["embedding"].shape[1] == prev
        m["head_w"] = m["embedding"]  # the same array: planting a head column zeroes the embedding column
        m["head_b"] = nonzero_uniform(rng, (vocab,), 0.05, 0.5)
    elif out is not None:
        m["head_w"] = nonzero_uniform(rng, (out, prev), 0.01, 1.0)
        m["head_b"] = nonzero_uniform(rng, (out,), 0.05, 0.5)
    plant = plant or [{} for _ in hiddens]
    m["plant"] = [p if bidirectional else {None: p} for p in plant]
    for li, pl in enumerate(m["plant"]):
        for d, p in pl.items():
            P = m["layers"][li][d]
            h = hidden_of(P)
            for k in p.get("zero", []) + p.get("in_only", []):
                r = unit_rows(cell, h, k)
                P["w_ih"][r, :] = 0.0
                if cell == "rhn":
                    P["w_hh"][:, r, :] = 0.0
                else:
                    P["w_hh"][r, :] = 0.0
            for k in p.get("zero", []) + p.get("out_only", []):
                if cell == "rhn":
                    P["w_hh"][:, :, k] = 0.0
                    if tied:  # groups_hidden830.json: x-part rows k of h_0/t_0 too
                        P["w_ih"][:, k] = 0.0
                else:
                    P["w_hh"][:, k] = 0.0
                for _, cons, off in consumers(m, li, d):
                    cons[:, off + k] = 0.0
    return m


def canonical_from_model(m, bias_mode="torch", forget_bias=0.0):
    """Canonical weights of m.  LSTM bias_mode 'torch': bias = b_ih + b_hh (float32);
    'single': bias = b_ih (+ forget_bias on the f block, float32 add)."""
    c = {k: m[k] for k in ("cell", "depth", "tied", "reset_after", "embedding", "head_w", "head_b")}
    c["layers"] = []
    for L in m["layers"]:
        CL = {}
        for d, P in L.items():
            if m["cell"] == "lstm":
                h = hidden_of(P)
                if bias_mode == "torch":
                    b = (P["b_ih"] + P["b_hh"]).astype(F32)
                else:
                    b = P["b_ih"].copy()
                    b[h:2 * h] = (b[h:2 * h] + F32(forget_bias)).astype(F32)
                CL[d] = {"w_ih": P["w_ih"], "w_hh": P["w_hh"], "bias": b}
            elif m["cell"] == "gru":
                CL[d] = {"w_ih": P["w_ih"], "w_hh": P["w_hh"], "b_ih": P["b_ih"], "b_hh": P["b_hh"]}
            else:
                CL[d] = {"w_ih": P["w_ih"], "w_hh": P["w_hh"], "bias": P["bias"]}
        c["layers"].append(CL)
    return c


def canon_arrays(c):
    d = {}
    if c["embedding"] is not None:
        d["embedding"] = c["embedding"]
    for li, L in enumerate(c["layers"]):
        for dd, P in L.items():
            for k, v in P.items():
                d[tname(li, dd, k)] = v
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


# ----------------------------------------------------------------------------
# float64 reference forward and ISS classification (canonical weights only)
# ----------------------------------------------------------------------------


def _sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def np_direction(c, C, seq, reverse):
    cell = c["cell"]
    C = {k: v.astype(np.float64) for k, v in C.items()}
    T, B = seq.shape[:2]
    h = C["w_hh"].shape[-1]
    out = np.zeros((T, B, h))
    hs = np.zeros((B, h))
    cs = np.zeros((B, h))
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        x = seq[t]
        if cell == "lstm":
            z = x @ C["w_ih"].T + hs @ C["w_hh"].T + C["bias"]
            i, f, g, o = np.split(z, 4, axis=1)
            cs = _sig(f) * cs + _sig(i) * np.tanh(g)
            hs = _sig(o) * np.tanh(cs)
        elif cell == "gru":
            gi = x @ C["w_ih"].T + C["b_ih"]
            W_r, W_z, W_n = np.split(C["w_hh"], 3, axis=0)
            b_r, b_z, b_n = np.split(C["b_hh"], 3)
            i_r, i_z, i_n = np.split(gi, 3, axis=1)
            r = _sig(i_r + hs @ W_r.T + b_r)
            z = _sig(i_z + hs @ W_z.T + b_z)
            if c["reset_after"]:
                n = np.tanh(i_n + r * (hs @ W_n.T + b_n))
            else:
                n = np.tanh(i_n + (r * hs) @ W_n.T + b_n)
            hs = (1.0 - z) * n + z * hs
        else:  # rhn
            for i in range(C["w_hh"].shape[0]):
                pre = hs @ C["w_hh"][i].T + C["bias"][i]
                if i == 0:
                    pre = pre + x @ C["w_ih"].T
                hh, tt = np.tanh(pre[:, :h]), _sig(pre[:, h:])
                hs = (hh - hs) * tt + hs
        out[t] = hs
    return out


def np_forward(c, x, return_hidden=False):
    seq = c["embedding"].astype(np.float64)[x] if c["embedding"] is not None else x.astype(np.float64)
    for L in c["layers"]:
        seq = np.concatenate([np_direction(c, C, seq, d == "bw") for d, C in L.items()], axis=2)
    hidden = seq
    if c["head_w"] is not None:
        seq = seq @ c["head_w"].astype(np.float64).T + c["head_b"].astype(np.float64)
    return (seq, hidden) if return_hidden else seq


def classify(c):
    """ISS classification of every unit of every layer and direction."""
    cell, res = c["cell"], []
    for li, L in enumerate(c["layers"]):
        for d, C in L.items():
            h = hidden_of(C)
            cons = consumers(c, li, d)
            zero, out_only, in_only = [], [], []
            for k in range(h):
                r = unit_rows(cell, h, k)
                w_hh_rows = C["w_hh"][:, r, :] if cell == "rhn" else C["w_hh"][r, :]
                inc = not C["w_ih"][r, :].any() and not w_hh_rows.any()
                rec = not (C["w_hh"][:, :, k] if cell == "rhn" else C["w_hh"][:, k]).any()
                outz = rec and all(not M[:, off + k].any() for _, M, off in cons)
                if inc and outz:
                    zero.append(k)
                elif outz:
                    out_only.append(k)
                elif inc:
                    in_only.append(k)
                if inc or outz:
                    if cell == "lstm":
                        assert np.all(C["bias"][r] != 0), (li, d, k)
                    elif cell == "gru":
                        assert np.all(C["b_ih"][r] != 0), (li, d, k)
                        assert np.all(C["b_hh"][r] != 0) or not C["b_hh"].any(), (li, d, k)
                    else:
                        assert np.all(C["bias"][:, r] != 0), (li, d, k)
                if outz and cell == "rhn" and c["tied"] and li == 0:
                    # groups_hidden830.json also groups the x-part rows k of h_0/t_0 (w_ih column k).
                    assert not C["w_ih"][:, k].any(), (li, k)
            removable = sorted(zero + out_only)
            e = {"layer": li, "direction": d, "hidden": h,
                 "consumers": [{"tensor": n, "columns": [off, off + h]} for n, _, off in cons],
                 "fully_zero": zero, "outgoing_zero_only": out_only, "incoming_zero_only": in_only,
                 "removable": removable, "compact_hidden": h - len(removable)}
            if cell == "rhn" and c["tied"] and li == 0:
                e["consumers"][0]["note"] = "head.weight == embedding (tied)"
                e["tied_input_columns"] = {"tensor": "layers.0.w_ih", "columns": [0, h],
                                           "note": "input dim k is embedding column k (tied); groups_hidden830.json "
                                           "groups these columns with unit k; all zero for the planted "
                                           "fully_zero / outgoing_zero_only units"}
            res.append(e)
    return res


def check_plant(m, canon):
    cls = classify(canon)
    i = 0
    for li, pl in enumerate(m["plant"]):
        for d in m["layers"][li]:
            e = cls[i]
            i += 1
            assert (e["layer"], e["direction"]) == (li, d)
            p = pl.get(d, {})
            assert e["fully_zero"] == sorted(p.get("zero", [])), (li, d, e)
            assert e["outgoing_zero_only"] == sorted(p.get("out_only", [])), (li, d, e)
            assert e["incoming_zero_only"] == sorted(p.get("in_only", [])), (li, d, e)
    return cls


# ----------------------------------------------------------------------------
# Sidecars
# ----------------------------------------------------------------------------

REPORT = []


def rel(p):
    return os.path.relpath(p, OUT)


CANON_MEANING = {
    "lstm": "per layer (and direction) w_ih [4h,in], w_hh [4h,h], bias [4h] (all biases and forget_bias folded, "
    "float32 adds), gate order i,f,g,o",
    "gru": "per layer (and direction) w_ih [3h,in], w_hh [3h,h], b_ih [3h], b_hh [3h] (kept apart), gate order r,z,n; "
    "reset_after true: n = tanh(W_in x + b_in + r*(W_hn h + b_hn)); false: n = tanh(W_in x + b_in + W_hn (r*h) + b_hn); "
    "h' = (1-z)*n + z*h",
    "rhn": "w_ih [2w,in] (micro-layer 0: H rows then T rows, applied to x), w_hh [L,2w,w] (micro-layer i: H rows then "
    "T rows, applied to s), bias [L,2w] (b_H then b_T); per step for i in 0..L: h_i = tanh(W_hh[i][:w] s + bias[i][:w] "
    "(+ W_ih[:w] x if i == 0)), t_i = sigmoid(W_hh[i][w:] s + bias[i][w:] (+ W_ih[w:] x if i == 0)), "
    "s = (h_i - s)*t_i + s; output s",
}


def write_sidecars(path, meta, canon, x, y, inp_desc, out_desc, computed_by, hidden=None):
    io = {"input": x, "output": y.astype(F32)}
    if hidden is not None:
        io["hidden"] = hidden.astype(F32)
    np.savez(path + ".io.npz", **io)
    np.savez(path + ".canonical.npz", **canon_arrays(canon))
    meta = dict(meta)
    L0 = canon["layers"]
    ndir = len(L0[0])
    meta["cell"] = canon["cell"]
    meta["directions"] = ndir
    if canon["cell"] == "gru":
        meta["reset_after"] = bool(canon["reset_after"])
    if canon["cell"] == "rhn":
        meta["depth"] = int(canon["depth"])
    meta["tied"] = bool(canon["tied"])
    layers = []
    for L in L0:
        n_in = int(next(iter(L.values()))["w_ih"].shape[1])
        if ndir == 1:
            h = hidden_of(L[None])
            layers.append({"input": n_in, "hidden": h, "output": h})
        else:
            hd = {d: hidden_of(P) for d, P in L.items()}
            layers.append({"input": n_in, "hidden": hd, "output": sum(hd.values())})
    meta["layers"] = layers
    meta["vocab"] = None if canon["embedding"] is None else int(canon["embedding"].shape[0])
    meta["embedding_dim"] = None if canon["embedding"] is None else int(canon["embedding"].shape[1])
    meta["output_size"] = int(y.shape[-1])
    meta["iss"] = classify(canon)
    meta["io"] = {
        "file": rel(path) + ".io.npz",
        "input": inp_desc,
        "output": out_desc,
        "computed_by": computed_by,
        "initial_state": "zero (all states 0)",
        "seq": SEQ,
        "batch": BATCH,
    }
    if hidden is not None:
        meta["io"]["hidden"] = (f"float32 [seq, batch, {hidden.shape[-1]}] the last recurrent layer's output "
                                "[fw; bw] (computed by the same framework run)")
    keys = sorted(canon_arrays(canon))
    meta["canonical"] = {"file": rel(path) + ".canonical.npz", "keys": keys,
                         "meaning": CANON_MEANING[canon["cell"]] + "; bidirectional layer output = [fw; bw], bw reads "
                         "the sequence reversed and its output for time t is placed at t; embedding [vocab,in]; "
                         "head.weight [out,width_last], head.bias [out]"
                         + ("; tied: head.weight == embedding (both stored)" if canon["tied"] else "")}
    meta["versions"] = versions()
    text = json.dumps(meta, indent=2, sort_keys=False)
    text = re.sub(r"\[\s*(-?[\d.e+-]+(?:,\s*-?[\d.e+-]+)*)\s*\]",
                  lambda mt: "[" + ", ".join(v.strip() for v in mt.group(1).split(",")) + "]", text)
    with open(path + ".json", "w") as f:
        f.write(text + "\n")
    REPORT.append((rel(path), meta))


def plant_meta(m):
    out = []
    for li, pl in enumerate(m["plant"]):
        for d, p in pl.items():
            out.append({"layer": li, "direction": d, **{k: sorted(v) for k, v in p.items()}})
    return out


# ----------------------------------------------------------------------------
# 1./4. PyTorch nn.LSTM(bidirectional) / nn.GRU (torch.save + safetensors)
# ----------------------------------------------------------------------------


class TorchRNNLM(torch.nn.Module):
    def __init__(self, kind, vocab, emb, hidden, num_layers, bidirectional):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, emb)
        rnn = torch.nn.LSTM if kind == "lstm" else torch.nn.GRU
        self.rnn = rnn(emb, hidden, num_layers=num_layers, bidirectional=bidirectional)
        self.decoder = torch.nn.Linear(hidden * (2 if bidirectional else 1), vocab)

    def forward(self, ids):  # ids [seq, batch]
        out, _ = self.rnn(self.embed(ids))  # zero initial state
        return self.decoder(out)


def torch_state_from_model(m):
    sd = {"embed.weight": m["embedding"]}
    for k, L in enumerate(m["layers"]):
        for d, P in L.items():
            sfx = "_reverse" if d == "bw" else ""
            sd[f"rnn.weight_ih_l{k}{sfx}"] = P["w_ih"]
            sd[f"rnn.weight_hh_l{k}{sfx}"] = P["w_hh"]
            sd[f"rnn.bias_ih_l{k}{sfx}"] = P["b_ih"]
            sd[f"rnn.bias_hh_l{k}{sfx}"] = P["b_hh"]
    sd["decoder.weight"] = m["head_w"]
    sd["decoder.bias"] = m["head_b"]
    return sd


def canonical_from_torch(sd, cell, reset_after=None):
    """What a loader does with a PyTorch nn.LSTM / nn.GRU language-model state dict."""
    n = 1 + max(int(re.match(r"rnn\.weight_ih_l(\d+)", k).group(1)) for k in sd if k.startswith("rnn.weight_ih_l"))
    bi = any(k.endswith("_reverse") for k in sd)
    c = {"cell": cell, "depth": None, "tied": False, "reset_after": reset_after, "embedding": sd["embed.weight"],
         "head_w": sd["decoder.weight"], "head_b": sd["decoder.bias"], "layers": []}
    for k in range(n):
        L = {}
        for d in (DIRS if bi else (None,)):
            g = lambda nm: sd[f"rnn.{nm}_l{k}{'_reverse' if d == 'bw' else ''}"]  # noqa: E731
            if cell == "lstm":
                L[d] = {"w_ih": g("weight_ih"), "w_hh": g("weight_hh"),
                        "bias": (g("bias_ih") + g("bias_hh")).astype(F32)}
            else:
                L[d] = {"w_ih": g("weight_ih"), "w_hh": g("weight_hh"), "b_ih": g("bias_ih"), "b_hh": g("bias_hh")}
        c["layers"].append(L)
    return c


def torch_run(mod, x):
    with torch.no_grad():
        return mod(torch.from_numpy(x)).numpy().astype(F32)


def write_torch(name_pt, name_st, m, x, extra_meta=None):
    cell = m["cell"]
    bi = len(m["layers"][0]) == 2
    vocab, emb = m["embedding"].shape
    hidden = hidden_of(next(iter(m["layers"][0].values())))
    n = len(m["layers"])
    new = lambda: TorchRNNLM(cell, vocab, emb, hidden, n, bi).eval()  # noqa: E731
    mod = new()
    sd_np = torch_state_from_model(m)
    assert sorted(mod.state_dict()) == sorted(sd_np), (sorted(mod.state_dict()), sorted(sd_np))
    mod.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd_np.items()})
    y = torch_run(mod, x)
    canon_ref = canonical_from_model(m, "torch")
    check_plant(m, canon_ref)
    err = check_close(y, np_forward(canon_ref, x), name_pt)
    if cell == "lstm":
        layout = ("rnn.weight_ih_lK[_reverse] [4h, in], rnn.weight_hh_lK[_reverse] [4h, h], rnn.bias_ih_lK[_reverse] + "
                  "rnn.bias_hh_lK[_reverse] [4h] (add them), gates i,f,g,o; suffix _reverse = bw direction; layer K>0 "
                  "input = [fw; bw] (2h); embed.weight [vocab, emb]; decoder.weight [vocab, 2h] (x @ W^T), decoder.bias")
        gate_order = "i,f,g,o"
        what = "nn.Embedding -> nn.LSTM(bidirectional=True) -> nn.Linear" if bi else "nn.Embedding -> nn.LSTM -> nn.Linear"
    else:
        layout = ("rnn.weight_ih_lK [3h, in], rnn.weight_hh_lK [3h, h], rnn.bias_ih_lK [3h], rnn.bias_hh_lK [3h] (kept "
                  "apart: b_hn sits inside r*(W_hn h + b_hn)), gates r,z,n; embed.weight [vocab, emb]; decoder.weight "
                  "[vocab, h] (x @ W^T), decoder.bias")
        gate_order = "r,z,n"
        what = "nn.Embedding -> nn.GRU -> nn.Linear"
    common = {"naming": f"pytorch_nn_{cell} (module attributes embed / rnn / decoder)", "layout": layout,
              "gate_order_in_file": gate_order, "forget_bias": 0.0 if cell == "lstm" else None,
              "planted": plant_meta(m), "max_abs_diff_vs_float64_reference": err}
    common.update(extra_meta or {})
    p = os.path.join(OUT, name_pt)
    torch.save(mod.state_dict(), p)
    sd = torch.load(p, map_location="cpu", weights_only=True)
    mod2 = new()
    mod2.load_state_dict(sd)
    y_pt = torch_run(mod2, x)
    assert np.array_equal(y, y_pt)
    canon = canonical_from_torch(mf.sd_numpy(sd), cell, True if cell == "gru" else None)
    assert_canon_equal(canon, canon_ref, name_pt)
    meta = {"fixture": name_pt, "files": [name_pt], "format": "pytorch_zip (torch.save of state_dict, default format)",
            "tensors": tensors_of(mf.sd_numpy(sd)), **common}
    write_sidecars(p, meta, canon, x, y_pt, "int64 [seq, batch] token ids, time-major",
                   "float32 [seq, batch, vocab] logits", f"torch ({what})")
    p = os.path.join(OUT, name_st)
    safetensors.torch.save_file(mod.state_dict(), p, metadata={"format": "pt"})
    sd = safetensors.torch.load_file(p)
    mod3 = new()
    mod3.load_state_dict(sd)
    y_st = torch_run(mod3, x)
    assert np.array_equal(y, y_st)
    canon = canonical_from_torch(mf.sd_numpy(sd), cell, True if cell == "gru" else None)
    assert_canon_equal(canon, canon_ref, name_st)
    meta = {"fixture": name_st, "files": [name_st],
            "format": "safetensors (safetensors.torch.save_file, metadata {\"format\": \"pt\"})",
            "tensors": tensors_of(mf.sd_numpy(sd)), **common}
    write_sidecars(p, meta, canon, x, y_st, "int64 [seq, batch] token ids, time-major",
                   "float32 [seq, batch, vocab] logits", "torch (state dict loaded back with safetensors.torch.load_file)")
    return y_pt


# ----------------------------------------------------------------------------
# 2./5. Keras 3: Bidirectional(LSTM) and GRU (weights via numpy.savez / safetensors)
# ----------------------------------------------------------------------------


def rzn_swap(a, axis=0):
    """Canonical GRU gate blocks (r, z, n) <-> Keras (z, r, h): swap the first two (self-inverse)."""
    b = np.split(a, 3, axis=axis)
    return np.concatenate([b[1], b[0], b[2]], axis=axis)


def keras_rnn_paths(cell, bi, names):
    """[(layer index, direction, variable-path prefix of the cell)]."""
    out = []
    for li, nm in enumerate(names):
        if bi:
            bname = "bidirectional" + ("" if li == 0 else f"_{li}")
            out += [(li, "fw", f"{bname}/forward_{nm}/{cell}_cell/"), (li, "bw", f"{bname}/backward_{nm}/{cell}_cell/")]
        else:
            out.append((li, None, f"{nm}/{cell}_cell/"))
    return out


def keras_build(m, names):
    cell, bi = m["cell"], len(m["layers"][0]) == 2
    vocab, emb = m["embedding"].shape
    inp = keras.Input(shape=(SEQ,), batch_size=BATCH, dtype="int32")
    z = keras.layers.Embedding(vocab, emb, name="embedding")(inp)
    for li, (L, nm) in enumerate(zip(m["layers"], names)):
        h = hidden_of(next(iter(L.values())))
        if cell == "lstm":
            layer = keras.layers.LSTM(h, return_sequences=True, name=nm)
        else:
            layer = keras.layers.GRU(h, return_sequences=True, reset_after=m["reset_after"], name=nm)
        if bi:
            layer = keras.layers.Bidirectional(layer, merge_mode="concat",
                                               name="bidirectional" + ("" if li == 0 else f"_{li}"))
        z = layer(z)
    z = keras.layers.Dense(m["head_w"].shape[0], name="dense")(z)
    return keras.Model(inp, z)


def keras_values(m, names):
    cell, bi = m["cell"], len(m["layers"][0]) == 2
    vals = {"embedding/embeddings": m["embedding"]}
    for li, d, pre in keras_rnn_paths(cell, bi, names):
        P = m["layers"][li][d]
        if cell == "lstm":  # keras i,f,c,o == canonical order; single bias
            vals[pre + "kernel"] = np.ascontiguousarray(P["w_ih"].T)
            vals[pre + "recurrent_kernel"] = np.ascontiguousarray(P["w_hh"].T)
            vals[pre + "bias"] = P["b_ih"]
        else:
            vals[pre + "kernel"] = np.ascontiguousarray(rzn_swap(P["w_ih"]).T)
            vals[pre + "recurrent_kernel"] = np.ascontiguousarray(rzn_swap(P["w_hh"]).T)
            if m["reset_after"]:
                vals[pre + "bias"] = np.stack([rzn_swap(P["b_ih"]), rzn_swap(P["b_hh"])])
            else:
                assert not P["b_hh"].any()
                vals[pre + "bias"] = rzn_swap(P["b_ih"])
    vals["dense/kernel"] = np.ascontiguousarray(m["head_w"].T)
    vals["dense/bias"] = m["head_b"]
    return vals


def canonical_from_keras(d, cell, names, reset_after=None):
    """What a loader does with Keras 3 variable paths (LSTM / GRU, optionally Bidirectional)."""
    bi = any(k.startswith("bidirectional") for k in d)
    c = {"cell": cell, "depth": None, "tied": False, "reset_after": reset_after, "embedding": d["embedding/embeddings"],
         "head_w": d["dense/kernel"].T.copy(), "head_b": d["dense/bias"], "layers": [{} for _ in names]}
    for li, dd, pre in keras_rnn_paths(cell, bi, names):
        k, rk, b = d[pre + "kernel"], d[pre + "recurrent_kernel"], d[pre + "bias"]
        if cell == "lstm":
            c["layers"][li][dd] = {"w_ih": k.T.copy(), "w_hh": rk.T.copy(), "bias": b}
        else:
            if b.ndim == 2:  # reset_after=True: [2, 3h] = [input bias; recurrent bias]
                assert reset_after
                b_ih, b_hh = rzn_swap(b[0]), rzn_swap(b[1])
            else:  # reset_after=False: [3h], applied with the input
                assert not reset_after
                b_ih, b_hh = rzn_swap(b), np.zeros_like(b)
            c["layers"][li][dd] = {"w_ih": rzn_swap(k.T, 0).copy(), "w_hh": rzn_swap(rk.T, 0).copy(),
                                   "b_ih": b_ih, "b_hh": b_hh}
    return c


def write_keras(name_npz, name_st, m, x, names, extra_meta=None):
    cell, bi = m["cell"], len(m["layers"][0]) == 2
    model = keras_build(m, names)
    paths = [v.path for v in model.weights]
    print(f"  keras variable paths: {paths}")
    vals = keras_values(m, names)
    assert sorted(paths) == sorted(vals), (paths, sorted(vals))
    for v in model.weights:
        v.assign(vals[v.path])
    y = mf.keras_run(model, x)
    canon_ref = canonical_from_model(m, "single", 0.0)
    check_plant(m, canon_ref)
    err = check_close(y, np_forward(canon_ref, x), name_npz)
    weights = {v.path: np.asarray(v.numpy(), dtype=F32) for v in model.weights}
    if cell == "lstm":
        layout = ("bidirectional[_K]/forward_NAME/lstm_cell/{kernel [in, 4h] (x @ W), recurrent_kernel [h, 4h], bias [4h]} "
                  "and .../backward_NAME/lstm_cell/... (bw direction: go_backwards, output re-reversed to time order), "
                  "gates i,f,c,o (c = g); merge_mode concat: [fw; bw]; embedding/embeddings [vocab, emb]; "
                  "dense/kernel [2h, out] (x @ W), dense/bias [out]; activation tanh, recurrent_activation sigmoid")
        gate_order = "i,f,c,o"
    else:
        layout = ("NAME/gru_cell/kernel [in, 3h] (x @ W), recurrent_kernel [h, 3h], gates z,r,h (canonical r,z,n: swap the "
                  "first two blocks); bias " + ("[2, 3h]: row 0 input bias (b_ih), row 1 recurrent bias (b_hh)"
                                               if m["reset_after"] else "[3h]: input bias only (b_hh = 0)")
                  + f"; reset_after={m['reset_after']}; embedding/embeddings [vocab, emb]; dense/kernel [h, out], "
                  "dense/bias [out]; activation tanh, recurrent_activation sigmoid")
        gate_order = "z,r,h"
    common = {"naming": "keras3 variable paths (Variable.path)", "keras_variable_paths": paths, "layout": layout,
              "gate_order_in_file": gate_order, "forget_bias": 0.0 if cell == "lstm" else None,
              "rnn_layer_names": names, "planted": plant_meta(m), "max_abs_diff_vs_float64_reference": err}
    common.update(extra_meta or {})
    ys = {}
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
        model2 = keras_build(m, names)
        for v in model2.weights:
            v.assign(back[v.path])
        y2 = mf.keras_run(model2, x)
        assert np.array_equal(y, y2), nm
        canon = canonical_from_keras(back, cell, names, m["reset_after"])
        assert_canon_equal(canon, canon_ref, nm)
        meta = {"fixture": nm, "files": [nm], "format": fmt, "tensors": tensors_of(back), **common}
        write_sidecars(p, meta, canon, x, y2, "int64 [seq, batch] token ids, time-major",
                       "float32 [seq, batch, vocab] logits",
                       f"keras {keras.__version__} ({keras.config.backend()} backend), weights loaded back from the "
                       f"{kind} file")
        ys[kind] = y2
    return ys


# ----------------------------------------------------------------------------
# 3. TF1 BiDAF-style checkpoints: main/gK/{fw,bw}/basic_lstm_cell/..., main/logits1/first/...
# ----------------------------------------------------------------------------


def tf_lstm_manual(inputs, h, n_in, forget_bias, reverse):  # pragma: no cover - fallback only
    """BasicLSTMCell math with hand-made variables named like the cell's."""
    with tf.compat.v1.variable_scope("basic_lstm_cell"):
        kern = tf.compat.v1.get_variable("kernel", [n_in + h, 4 * h], dtype=tf.float32)
        bias = tf.compat.v1.get_variable("bias", [4 * h], dtype=tf.float32)
    hs, cs = tf.zeros([BATCH, h]), tf.zeros([BATCH, h])
    outs = [None] * SEQ
    for t in (range(SEQ - 1, -1, -1) if reverse else range(SEQ)):
        z = tf.matmul(tf.concat([inputs[:, t, :], hs], 1), kern) + bias
        i, j, f, o = tf.split(z, 4, axis=1)
        cs = cs * tf.sigmoid(f + forget_bias) + tf.sigmoid(i) * tf.tanh(j)
        hs = tf.tanh(cs) * tf.sigmoid(o)
        outs[t] = hs
    return tf.stack(outs, axis=1)


def tf_bidaf_build(n_in, hiddens, forget_bias, train_ops=False):
    """BiDAF's modeling layers: main/g0, main/g1 (bidirectional_dynamic_rnn of BasicLSTMCell, forget_bias as
    BiDAF's default 1.0), and a linear_logits head main/logits1/first (x @ W + b, one output)."""
    g = tf.Graph()
    extra = {}
    with g.as_default():
        tf.compat.v1.set_random_seed(0)
        gstep = tf.compat.v1.get_variable("global_step", shape=[], dtype=tf.int32,
                                          initializer=tf.compat.v1.constant_initializer(0), trainable=False)
        x = tf.compat.v1.placeholder(tf.float32, [BATCH, SEQ, n_in], name="x")
        x_len = tf.compat.v1.placeholder(tf.int64, [BATCH], name="x_len")
        with tf.compat.v1.variable_scope("main"):
            cur, width = x, n_in
            for li, (hf, hb) in enumerate(hiddens):
                if BasicLSTMCell is not None:
                    (fw, bw), _ = tf.compat.v1.nn.bidirectional_dynamic_rnn(
                        BasicLSTMCell(hf, forget_bias=forget_bias, state_is_tuple=True),
                        BasicLSTMCell(hb, forget_bias=forget_bias, state_is_tuple=True),
                        cur, sequence_length=x_len, dtype=tf.float32, scope=f"g{li}")
                else:
                    with tf.compat.v1.variable_scope(f"g{li}"):
                        with tf.compat.v1.variable_scope("fw"):
                            fw = tf_lstm_manual(cur, hf, width, forget_bias, False)
                        with tf.compat.v1.variable_scope("bw"):
                            bw = tf_lstm_manual(cur, hb, width, forget_bias, True)
                cur, width = tf.concat([fw, bw], 2), hf + hb
            hidden = cur
            with tf.compat.v1.variable_scope("logits1"), tf.compat.v1.variable_scope("first"):
                W = tf.compat.v1.get_variable("kernel", [width, 1], dtype=tf.float32)
                b = tf.compat.v1.get_variable("bias", [1], dtype=tf.float32)
            logits = tf.reshape(tf.matmul(tf.reshape(cur, [-1, width]), W) + b, [BATCH, SEQ, 1])
        model_vars = {v.op.name: v for v in tf.compat.v1.trainable_variables()}
        if train_ops:
            # As in BiDAF's Model: var_ema = ExponentialMovingAverage(var_decay).apply(trainables); Adam trainer.
            ema = tf.compat.v1.train.ExponentialMovingAverage(0.999)
            ema.apply(list(model_vars.values()))
            tf.compat.v1.train.AdamOptimizer(0.001).minimize(tf.reduce_sum(logits), global_step=None,
                                                             var_list=list(model_vars.values()))
            extra["ema"] = ema
        all_vars = {v.op.name: v for v in tf.compat.v1.global_variables()}
    return g, x, x_len, logits, hidden, gstep, model_vars, all_vars, extra


def bidaf_file_name(n, naming):
    """Graph variable name -> the name in the file (TF >= 1.2 kernel/bias or TF < 1.2 weights/biases)."""
    if naming == "weights_biases":
        n = re.sub(r"/kernel(?=$|/)", "/weights", n)
        n = re.sub(r"/bias(?=$|/)", "/biases", n)
    return n


def bidaf_arrays(m):
    """{graph name: value} for the model's weights (TF BasicLSTMCell layout)."""
    vals = {}
    for li, L in enumerate(m["layers"]):
        for d, P in L.items():
            w = np.concatenate([P["w_ih"], P["w_hh"]], axis=1)
            vals[f"main/g{li}/{d}/basic_lstm_cell/kernel"] = np.ascontiguousarray(mf.ifgo_to_igfo(w, 0, axis=0).T)
            vals[f"main/g{li}/{d}/basic_lstm_cell/bias"] = mf.ifgo_to_igfo(P["b_ih"], 0)
    vals["main/logits1/first/kernel"] = np.ascontiguousarray(m["head_w"].T)
    vals["main/logits1/first/bias"] = m["head_b"]
    return vals


def canonical_from_tf_bidaf(get, names, naming, forget_bias, ema=False):
    """What a loader does with a BiDAF checkpoint (get(name) -> ndarray; names: the checkpoint's variable names)."""
    wname, bname = ("weights", "biases") if naming == "weights_biases" else ("kernel", "bias")
    sfx = "/ExponentialMovingAverage" if ema else ""
    n = 1 + max(int(re.match(r"main/g(\d+)/", k).group(1)) for k in names if re.match(r"main/g\d+/", k))
    c = {"cell": "lstm", "depth": None, "tied": False, "reset_after": None, "embedding": None, "layers": []}
    prev = None
    for li in range(n):
        L = {}
        for d in DIRS:
            base = f"main/g{li}/{d}/basic_lstm_cell/"
            kern, bias = get(base + wname + sfx), get(base + bname + sfx)
            h = kern.shape[1] // 4
            n_in = kern.shape[0] - h
            assert prev is None or prev == n_in
            w = mf.igfo_to_ifgo(kern.T, h, axis=0)
            b = mf.igfo_to_ifgo(bias, h).copy()
            b[h:2 * h] = (b[h:2 * h] + F32(forget_bias)).astype(F32)
            L[d] = {"w_ih": w[:, :n_in].copy(), "w_hh": w[:, n_in:].copy(), "bias": b}
        c["layers"].append(L)
        prev = hidden_of(L["fw"]) + hidden_of(L["bw"])
    c["head_w"] = get(f"main/logits1/first/{wname}{sfx}").T.copy()
    c["head_b"] = get(f"main/logits1/first/{bname}{sfx}")
    return c


def write_tf_bidaf(name, m, naming, forget_bias, step, x, ema=False, extra_meta=None):
    path = os.path.join(OUT, name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    n_in = m["layers"][0]["fw"]["w_ih"].shape[1]
    hiddens = [(hidden_of(L["fw"]), hidden_of(L["bw"])) for L in m["layers"]]
    xb = np.ascontiguousarray(np.transpose(x, (1, 0, 2)))  # BiDAF tensors are batch-major [N, JX, d]
    lens = np.full([BATCH], SEQ, dtype=np.int64)
    vals = bidaf_arrays(m)
    rng = np.random.default_rng(step)
    g, xp, lp, logits, hidden, gstep, mvars, avars, extra = tf_bidaf_build(n_in, hiddens, forget_bias, ema)
    assert sorted(mvars) == sorted(vals), (sorted(mvars), sorted(vals))
    with g.as_default():
        var_list = {bidaf_file_name(n, naming): v for n, v in avars.items()}
        saver = tf.compat.v1.train.Saver(var_list=var_list, save_relative_paths=True)
        with mf.tf_session(g) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            for n, v in vals.items():
                mvars[n].load(v, sess)
            gstep.load(step, sess)
            y, hid = sess.run([logits, hidden], {xp: xb, lp: lens})
            raw = None
            if ema:
                # The EMA shadows hold the planted model (BiDAF tests with --load_ema, the default); the raw
                # variables hold dense "last training step" weights; Adam slots and beta powers are filler.
                em = extra["ema"]
                raw = {}
                for n, v in vals.items():
                    em.average(mvars[n]).load(v, sess)
                    raw[n] = (v + nonzero_uniform(rng, v.shape, 0.01, 0.05)).astype(F32)
                    mvars[n].load(raw[n], sess)
                for n, v in sorted(avars.items()):
                    if n.endswith("/Adam") or n.endswith("/Adam_1"):
                        v.load(nonzero_uniform(rng, v.shape.as_list(), 1e-4, 1e-2), sess)
                avars["beta1_power"].load(F32(0.9) ** step, sess)
                avars["beta2_power"].load(F32(0.999) ** step, sess)
                y_raw = sess.run(logits, {xp: xb, lp: lens})
                assert np.max(np.abs(y_raw - y)) > 1e-3, "raw and EMA outputs must differ"
            saver.save(sess, os.path.join(path, "basic"), global_step=step, write_meta_graph=False)
    prefix = os.path.join(path, f"basic-{step}")
    # Restore into a fresh graph, as BiDAF's GraphHandler._load does (EMA names when --load_ema).
    g2, xp2, lp2, logits2, hidden2, gstep2, mvars2, _, extra2 = tf_bidaf_build(n_in, hiddens, forget_bias, ema)
    with g2.as_default():
        sfx = "/ExponentialMovingAverage" if ema else ""
        rl = {bidaf_file_name(n, naming) + sfx: v for n, v in mvars2.items()}
        rl["global_step"] = gstep2
        with mf.tf_session(g2) as sess:
            tf.compat.v1.train.Saver(var_list=rl).restore(sess, prefix)
            y2, hid2 = sess.run([logits2, hidden2], {xp2: xb, lp2: lens})
            assert int(sess.run(gstep2)) == step
    assert np.array_equal(y, y2) and np.array_equal(hid, hid2)
    reader = tf.train.load_checkpoint(prefix)
    names = [n for n, _ in tf.train.list_variables(prefix)]
    canon = canonical_from_tf_bidaf(reader.get_tensor, names, naming, forget_bias, ema)
    canon_ref = canonical_from_model(m, "single", forget_bias)
    assert_canon_equal(canon, canon_ref, name)
    if ema:  # the raw variables are a different, dense model
        c_raw = canonical_from_tf_bidaf(reader.get_tensor, names, naming, forget_bias, False)
        assert all(e["removable"] == [] and e["incoming_zero_only"] == [] for e in classify(c_raw))
    check_plant(m, canon)
    y_t, hid_t = np.transpose(y, (1, 0, 2)), np.transpose(hid, (1, 0, 2))
    ref, ref_h = np_forward(canon, x, return_hidden=True)
    err = max(check_close(y_t, ref, name), check_close(hid_t, ref_h, name + " hidden"))
    tensors = mf.file_tensors_tf(prefix)
    wname, bname = ("weights", "biases") if naming == "weights_biases" else ("kernel", "bias")
    model_tensors = sorted(bidaf_file_name(n, naming) + ("/ExponentialMovingAverage" if ema else "") for n in vals)
    ignored = sorted(set(tensors) - set(model_tensors))
    meta = {
        "fixture": name,
        "files": sorted(os.path.join(name, f) for f in os.listdir(path)),
        "format": "tensorflow_checkpoint_v2 (tf.compat.v1.train.Saver, write_version V2)",
        "checkpoint_prefix": rel(prefix),
        "checkpoint_state_file": os.path.join(name, "checkpoint"),
        "global_step": step,
        "global_step_dtype": "int32 (BiDAF's Model creates global_step as int32)",
        "naming": f"tf_bidaf_basic_lstm_{naming}",
        "layout": f"main/gK/{{fw,bw}}/basic_lstm_cell/{wname} [in+h, 4h]: rows = [x; h] (input first, then "
        "recurrent), columns = 4 gate blocks i, j, f, o (j = g); " + bname + " [4h]; gK's input is g(K-1)'s "
        "[fw; bw] (g0: the features); head main/logits1/first/" + wname + " [h_fw+h_bw, 1] (x @ W; BiDAF's real "
        "logits1 reads [g1; p0] = 2d+8d rows, here only g1), main/logits1/first/" + bname + " [1]",
        "gate_order_in_file": "i,j,f,o",
        "forget_bias": forget_bias,
        "forget_bias_note": "not stored in the checkpoint: BasicLSTMCell adds it to f at run time (BiDAF builds "
        "BasicLSTMCell(d, state_is_tuple=True): the default 1.0); the canonical bias has it folded in (float32 add)",
        "tensors": tensors,
        "model_tensors": model_tensors,
        "ignored_tensors": ignored,
        "tf_cell": TF_CELL_SOURCE,
        "tf_rnn": "tf.compat.v1.nn.bidirectional_dynamic_rnn(cell_fw, cell_bw, x, sequence_length=x_len (all SEQ), "
        "scope='gK') inside variable_scope('main'), as BiDAF's my.tensorflow.rnn.bidirectional_dynamic_rnn",
        "planted": plant_meta(m),
        "max_abs_diff_vs_float64_reference": err,
    }
    if ema:
        meta["ema"] = {
            "canonical_source": "the .../ExponentialMovingAverage shadow variables (BiDAF tests with --load_ema, "
            "default True: GraphHandler._load restores ema.average_name(var) into var)",
            "raw_variables": "the unsuffixed variables hold a DIFFERENT dense model (planted weights + noise of "
            "magnitude 0.01-0.05, no ISS structure); a loader reading them gets other outputs",
            "ignore": ".../Adam, .../Adam_1 (Adam slots), beta1_power, beta2_power, global_step (int32)",
        }
    meta.update(extra_meta or {})
    write_sidecars(path, meta, canon, x, y_t, f"float32 [seq, batch, {n_in}] features, time-major (fed batch-major "
                   "[batch, seq, in] to the graph, as BiDAF's p0)", "float32 [seq, batch, 1] logits (BiDAF logits1 "
                   "before the softmax over positions)", "tensorflow (graph mode, tf.compat.v1.Session.run)", hid_t)
    return y_t


# ----------------------------------------------------------------------------
# 6. RHN (wenwei202/iss-rnns rhns/rhn.py graph, TF checkpoint as rhn_train.py saves it)
# ----------------------------------------------------------------------------

RHN_INIT_SCALE, RHN_INIT_BIAS = 0.04, -2.0


def tf_rhn_build(vocab, size, depth, tied):
    """The rhn.py graph (num_layers=1, evaluation: all dropout noises = 1), re-implemented with tf.compat.v1:
    variable scope 'model' (rhn_train.py), Model -> 'RHN0' -> per micro-layer 'h_i' / 't_i' -> linear's 'Linear'
    with 'Matrix' [sum(in), out] and 'Bias' [out] (the t biases initialised to init_bias)."""
    in_size = size if (tied or vocab >= size) else vocab
    g = tf.Graph()
    with g.as_default():
        tf.compat.v1.set_random_seed(0)
        init = tf.compat.v1.random_uniform_initializer(-RHN_INIT_SCALE, RHN_INIT_SCALE)
        with tf.compat.v1.variable_scope("model", reuse=None, initializer=init):
            ids = tf.compat.v1.placeholder(tf.int32, [BATCH, SEQ])
            noise_x = tf.compat.v1.placeholder(tf.float32, [BATCH, SEQ, 1])
            noise_i = tf.compat.v1.placeholder(tf.float32, [BATCH, in_size, 1])
            noise_h = tf.compat.v1.placeholder(tf.float32, [BATCH, size, 1])
            noise_o = tf.compat.v1.placeholder(tf.float32, [BATCH, 1, size])
            embedding = tf.compat.v1.get_variable("embedding", [vocab, in_size])
            inputs = tf.nn.embedding_lookup(embedding, ids) * noise_x

            def linear(args, n_out, bias_start=None):
                total = sum(a.get_shape().as_list()[1] for a in args)
                with tf.compat.v1.variable_scope("Linear"):
                    mat = tf.compat.v1.get_variable("Matrix", [total, n_out], dtype=tf.float32)
                    res = tf.matmul(args[0] if len(args) == 1 else tf.concat(args, 1), mat)
                    if bias_start is None:
                        b = tf.compat.v1.get_variable("Bias", [n_out], dtype=tf.float32)
                    else:
                        b = tf.compat.v1.get_variable("Bias", [n_out], dtype=tf.float32,
                                                      initializer=tf.compat.v1.constant_initializer(bias_start))
                return res + b

            outputs = []
            with tf.compat.v1.variable_scope("RHN0"):
                s = tf.zeros([BATCH, size])
                ni, nh = noise_i[:, :, 0], noise_h[:, :, 0]
                for t in range(SEQ):
                    if t > 0:
                        tf.compat.v1.get_variable_scope().reuse_variables()
                    xt = inputs[:, t, :]
                    for i in range(depth):
                        args = [xt * ni, s * nh] if i == 0 else [s * nh]
                        with tf.compat.v1.variable_scope(f"h_{i}"):
                            hh = tf.tanh(linear(args, size))
                        with tf.compat.v1.variable_scope(f"t_{i}"):
                            tt = tf.sigmoid(linear(args, size, RHN_INIT_BIAS))
                        s = (hh - s) * tt + s
                    outputs.append(s)
                out = tf.stack(outputs, axis=1)
            output = tf.reshape(out * noise_o, [-1, size])
            softmax_w = tf.transpose(embedding) if tied else tf.compat.v1.get_variable("softmax_w", [size, vocab])
            softmax_b = tf.compat.v1.get_variable("softmax_b", [vocab])
            logits = tf.reshape(tf.matmul(output, softmax_w) + softmax_b, [-1, 1, vocab])
            lr = tf.Variable(0.0, trainable=False)  # Model._lr of the training model: model/Variable
        feeds = {"ids": ids, "noise_x": noise_x, "noise_i": noise_i, "noise_h": noise_h, "noise_o": noise_o}
        vars_ = {v.op.name: v for v in tf.compat.v1.global_variables()}
    return g, logits, feeds, vars_, lr, in_size


def rhn_arrays(m):
    P = m["layers"][0][None]
    w = hidden_of(P)
    vals = {"model/embedding": m["embedding"], "model/softmax_b": m["head_b"]}
    if not m["tied"]:
        vals["model/softmax_w"] = np.ascontiguousarray(m["head_w"].T)
    for i in range(P["w_hh"].shape[0]):
        for part, rows in (("h", slice(0, w)), ("t", slice(w, 2 * w))):
            mat = P["w_hh"][i][rows]
            if i == 0:
                mat = np.concatenate([P["w_ih"][rows], mat], axis=1)  # Matrix rows [x; s]
            vals[f"model/RHN0/{part}_{i}/Linear/Matrix"] = np.ascontiguousarray(mat.T)
            vals[f"model/RHN0/{part}_{i}/Linear/Bias"] = np.ascontiguousarray(P["bias"][i][rows])
    return vals


def canonical_from_tf_rhn(get, names):
    """What a loader does with an rhn.py checkpoint."""
    depth = 1 + max(int(re.match(r"model/RHN0/h_(\d+)/", n).group(1)) for n in names if n.startswith("model/RHN0/h_"))
    emb = get("model/embedding")
    tied = "model/softmax_w" not in names
    H0 = get("model/RHN0/h_0/Linear/Matrix")
    w = H0.shape[1]
    n_in = H0.shape[0] - w
    w_hh = np.zeros((depth, 2 * w, w), F32)
    bias = np.zeros((depth, 2 * w), F32)
    for i in range(depth):
        Hm, Tm = get(f"model/RHN0/h_{i}/Linear/Matrix"), get(f"model/RHN0/t_{i}/Linear/Matrix")
        if i == 0:
            w_ih = np.concatenate([Hm[:n_in].T, Tm[:n_in].T], axis=0)
            Hm, Tm = Hm[n_in:], Tm[n_in:]
        w_hh[i] = np.concatenate([Hm.T, Tm.T], axis=0)
        bias[i] = np.concatenate([get(f"model/RHN0/h_{i}/Linear/Bias"), get(f"model/RHN0/t_{i}/Linear/Bias")])
    return {"cell": "rhn", "depth": depth, "tied": tied, "reset_after": None, "embedding": emb,
            "head_w": emb if tied else get("model/softmax_w").T.copy(), "head_b": get("model/softmax_b"),
            "layers": [{None: {"w_ih": np.ascontiguousarray(w_ih), "w_hh": w_hh, "bias": bias}}]}


def write_tf_rhn(name, m, x, seed_tag, lr_value, extra_meta=None):
    path = os.path.join(OUT, name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    vocab, _ = m["embedding"].shape
    P = m["layers"][0][None]
    size, depth = hidden_of(P), P["w_hh"].shape[0]
    vals = rhn_arrays(m)
    ckpt = f"ptb_{seed_tag}_best_model.ckpt"  # rhn_train.py: './' + dataset + '_' + str(seed) + '_best_model.ckpt'

    def feed(f, in_size):
        return {f["ids"]: x.T.astype(np.int32), f["noise_x"]: np.ones([BATCH, SEQ, 1], F32),
                f["noise_i"]: np.ones([BATCH, in_size, 1], F32), f["noise_h"]: np.ones([BATCH, size, 1], F32),
                f["noise_o"]: np.ones([BATCH, 1, size], F32)}

    g, logits, feeds, vars_, lr, in_size = tf_rhn_build(vocab, size, depth, m["tied"])
    assert sorted(vars_) == sorted(list(vals) + ["model/Variable"]), sorted(vars_)
    with g.as_default():
        saver = tf.compat.v1.train.Saver(save_relative_paths=True)  # rhn_train.py: tf.train.Saver() (all variables)
        with mf.tf_session(g) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            for n, v in vals.items():
                vars_[n].load(v, sess)
            lr.load(lr_value, sess)
            y = sess.run(logits, feed(feeds, in_size))
            saver.save(sess, os.path.join(path, ckpt), write_meta_graph=False)
    prefix = os.path.join(path, ckpt)
    g2, logits2, feeds2, _, _, _ = tf_rhn_build(vocab, size, depth, m["tied"])
    with g2.as_default():
        with mf.tf_session(g2) as sess:
            tf.compat.v1.train.Saver().restore(sess, prefix)
            y2 = sess.run(logits2, feed(feeds2, in_size))
    assert np.array_equal(y, y2)
    y_t = np.transpose(y.reshape(BATCH, SEQ, vocab), (1, 0, 2))  # logits rows are batch-major (b, t)
    reader = tf.train.load_checkpoint(prefix)
    names = [n for n, _ in tf.train.list_variables(prefix)]
    canon = canonical_from_tf_rhn(reader.get_tensor, names)
    canon_ref = canonical_from_model(m)
    assert_canon_equal(canon, canon_ref, name)
    check_plant(m, canon)
    err = check_close(y_t, np_forward(canon, x), name)
    tensors = mf.file_tensors_tf(prefix)
    meta = {
        "fixture": name,
        "files": sorted(os.path.join(name, f) for f in os.listdir(path)),
        "format": "tensorflow_checkpoint_v2 (tf.compat.v1.train.Saver, write_version V2)",
        "checkpoint_prefix": rel(prefix),
        "checkpoint_state_file": os.path.join(name, "checkpoint"),
        "global_step": None,
        "naming": "tf_iss_rhn (wenwei202/iss-rnns rhns/rhn.py, scope 'model' from rhn_train.py)",
        "layout": "model/RHN0/{h,t}_0/Linear/Matrix [in+w, w]: rows = [x; s] (input first, then state), used as "
        "[x, s] @ Matrix; model/RHN0/{h,t}_i/Linear/Matrix [w, w] for i >= 1 (s @ Matrix); .../Linear/Bias [w]; "
        "so w_ih = [H_0[:in]^T; T_0[:in]^T], w_hh[i] = [H_i[in:]^T; T_i[in:]^T] (H_i^T, T_i^T for i >= 1), "
        "bias[i] = [b_H_i; b_T_i]; model/embedding [vocab, in]; tied: no softmax_w, logits = s @ embedding^T + "
        "model/softmax_b",
        "gate_order_in_file": "separate h_i / t_i variables",
        "forget_bias": None,
        "init_bias": RHN_INIT_BIAS,
        "init_bias_note": "rhn.py passes forget_bias=config.init_bias (-2.0 in ptb_iss_sota) to linear() as the "
        "t_i/Linear/Bias initializer only: it is stored in the checkpoint, nothing is added at run time",
        "tensors": tensors,
        "model_tensors": sorted(vals),
        "ignored_tensors": ["model/Variable"],
        "ignored_tensors_note": "model/Variable: the training model's learning rate (float32 scalar); rhn_train.py "
        "has no global_step; the checkpoint prefix has no step suffix",
        "rhn_config": {"num_layers": 1, "depth": depth, "hidden_size": size, "vocab_size": vocab,
                       "tied": m["tied"], "init_scale": RHN_INIT_SCALE, "init_bias": RHN_INIT_BIAS,
                       "dropout_noise": "all noise placeholders fed with ones (evaluation: drop_* = 0)"},
        "iss_rule": "groups_hidden830.json, unit k: embedding column k; Matrix columns k of every h_i and t_i "
        "(canonical rows k and w+k of w_ih and every w_hh[i]); Matrix rows k (x part) and in+k (s part) of h_0 / t_0 "
        "and rows k of h_i / t_i, i >= 1 (canonical columns k of w_ih and of every w_hh[i]); biases are not grouped. "
        "Planted incoming_zero_only = the column entries only; outgoing_zero_only = the row entries + embedding "
        "column k (= head.weight column k)",
        "planted": plant_meta(m),
        "max_abs_diff_vs_float64_reference": err,
    }
    meta.update(extra_meta or {})
    write_sidecars(path, meta, canon, x, y_t, "int64 [seq, batch] token ids, time-major (fed as int32 [batch, seq])",
                   "float32 [seq, batch, vocab] logits", "tensorflow (graph mode, tf.compat.v1.Session.run)")
    return y_t


# ----------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------


def main():
    os.makedirs(OUT, exist_ok=True)
    print("versions:", json.dumps(versions()))

    print("torch_bilstm")
    m = make_model(301, "lstm", 9, [8, 8], bidirectional=True, vocab=19, out=19,
                   plant=[{"fw": {"zero": [1], "out_only": [5], "in_only": [3]}, "bw": {"zero": [0, 6], "out_only": [2]}},
                          {"fw": {"zero": [4], "in_only": [7]}, "bw": {"zero": [2], "out_only": [6], "in_only": [0]}}])
    write_torch("torch_bilstm.pt", "torch_bilstm.safetensors", m, token_input(401, 19))

    print("keras_bilstm")
    m = make_model(302, "lstm", 8, [7, 6], bidirectional=True, vocab=18, out=18,
                   plant=[{"fw": {"zero": [0], "out_only": [4]}, "bw": {"zero": [6], "in_only": [2]}},
                          {"fw": {"zero": [1], "out_only": [5]}, "bw": {"zero": [0], "in_only": [3]}}])
    for L in m["layers"]:  # single-bias format
        for P in L.values():
            P["b_hh"] = None
    write_keras("keras_bilstm.npz", "keras_bilstm.safetensors", m, token_input(402, 18), ["lstm", "lstm_1"])

    rng_x = np.random.default_rng(403)
    print("tf_bidaf_weights_biases")
    m = make_model(303, "lstm", 10, [8, 6], bidirectional=True, out=1,
                   plant=[{"fw": {"zero": [2], "out_only": [6], "in_only": [0]}, "bw": {"zero": [7], "out_only": [3]}},
                          {"fw": {"zero": [1], "out_only": [4]}, "bw": {"zero": [5], "in_only": [2]}}])
    xf = rng_x.uniform(-1, 1, size=(SEQ, BATCH, 10)).astype(F32)
    write_tf_bidaf("tf_bidaf_weights_biases", m, "weights_biases", 1.0, 10000, xf,
                   extra_meta={"note": "TF < 1.2 names (weights / biases) as BiDAF (TF 1.1) wrote them; "
                               "forget_bias 1.0 (BiDAF's BasicLSTMCell default)"})
    print("tf_bidaf_kernel_bias")
    m = make_model(304, "lstm", 9, [(7, 5), (6, 4)], bidirectional=True, out=1,
                   plant=[{"fw": {"zero": [0], "out_only": [3]}, "bw": {"zero": [4], "in_only": [1]}},
                          {"fw": {"zero": [5], "in_only": [2]}, "bw": {"zero": [0], "out_only": [3]}}])
    xf = rng_x.uniform(-1, 1, size=(SEQ, BATCH, 9)).astype(F32)
    write_tf_bidaf("tf_bidaf_kernel_bias", m, "kernel_bias", 0.0, 2000, xf,
                   extra_meta={"note": "TF >= 1.2 names (kernel / bias); fw and bw of different widths (7/5, 6/4) "
                               "so that the bw column offset h_fw is exercised; forget_bias 0.0"})
    print("tf_bidaf_ema")
    m = make_model(305, "lstm", 11, [6, 6], bidirectional=True, out=1,
                   plant=[{"fw": {"zero": [3], "out_only": [0]}, "bw": {"zero": [1], "in_only": [5]}},
                          {"fw": {"zero": [2], "out_only": [5]}, "bw": {"zero": [4], "out_only": [0]}}])
    xf = rng_x.uniform(-1, 1, size=(SEQ, BATCH, 11)).astype(F32)
    write_tf_bidaf("tf_bidaf_ema", m, "weights_biases", 1.0, 10000, xf, ema=True,
                   extra_meta={"note": "a BiDAF training checkpoint's extra contents: ExponentialMovingAverage "
                               "shadows (the weights BiDAF tests with), Adam slots, beta1_power / beta2_power, "
                               "int32 global_step; weights / biases names, forget_bias 1.0"})

    print("torch_gru")
    m = make_model(306, "gru", 7, [10, 10], vocab=21, out=21, reset_after=True,
                   plant=[{"zero": [2], "out_only": [7], "in_only": [4]}, {"zero": [0, 9], "in_only": [5]}])
    write_torch("torch_gru.pt", "torch_gru.safetensors", m, token_input(406, 21))

    print("keras_gru_reset_after")
    m = make_model(307, "gru", 6, [9, 7], vocab=20, out=20, reset_after=True,
                   plant=[{"zero": [0, 8], "out_only": [3]}, {"zero": [6], "in_only": [1]}])
    write_keras("keras_gru_reset_after.npz", None, m, token_input(407, 20), ["gru", "gru_1"])
    print("keras_gru_reset_before")
    m = make_model(308, "gru", 7, [8, 6], vocab=17, out=17, reset_after=False, b_hh_zero=True,
                   plant=[{"zero": [5], "out_only": [1], "in_only": [7]}, {"zero": [2], "out_only": [0]}])
    write_keras("keras_gru_reset_before.npz", None, m, token_input(408, 17), ["gru", "gru_1"])

    print("tf_rhn")
    m = make_model(309, "rhn", 10, [10], vocab=17, depth=3, tied=True, t_bias=RHN_INIT_BIAS,
                   plant=[{"zero": [2, 7], "out_only": [5], "in_only": [0]}])
    write_tf_rhn("tf_rhn", m, token_input(409, 17), 1234, 0.2,
                 extra_meta={"note": "rhn.py graph, depth 3, width 10, vocab 17, tied embedding "
                             "(softmax_w = transpose(model/embedding)), init_bias -2.0"})

    print("\nfixtures written:")
    for name, meta in REPORT:
        print(f"  {name}: {meta['format']}")
        for t, d in meta["tensors"].items():
            print(f"      {t} {d['shape']} {d['dtype']}")


if __name__ == "__main__":
    main()
