"""Loads issbench's compacted safetensors into PyTorch modules, as the
README says, and compares their output with the full model's PyTorch
output in the fixture's io.npz (compaction is exact, so they agree).

    issbench compact tests/fixtures/torch_gru.pt -o DIR/gru.safetensors
    issbench compact tests/fixtures/torch_bilstm.pt -o DIR/bilstm.safetensors
    python tools/check_compacted_in_torch.py DIR      # needs torch, safetensors

2026-12-06, torch 2.15: GRU (uniform widths, nn.GRU) max abs diff 6e-8;
bidirectional LSTM (widths 6+5/7+6, one nn.LSTM per layer and direction) 0.
"""
import sys, numpy as np, torch
from safetensors.torch import load_file

def check_gru(path, io):
    sd = load_file(path)
    print(sorted(sd))
    emb = sd["embedding.weight"]
    h = sd["weight_hh_l0"].shape[1]
    gru = torch.nn.GRU(emb.shape[1], h, num_layers=2)
    gru.load_state_dict({k: v for k, v in sd.items() if k[0] in "wb" and "_l" in k}, strict=True)
    x = emb[torch.from_numpy(io["input"]).long()]
    y, _ = gru(x)
    return y @ sd["head.weight"].T + sd["head.bias"]

def check_bilstm(path, io):
    sd = load_file(path)
    print(sorted(sd))
    x = sd["embedding.weight"][torch.from_numpy(io["input"]).long()]
    k = 0
    while f"lstm{k}.weight_ih_l0" in sd:
        outs = []
        for tag, rev in (("", False), ("_reverse", True)):
            pre = f"lstm{k}{tag}."
            w = {n[len(pre):]: v for n, v in sd.items() if n.startswith(pre)}
            m = torch.nn.LSTM(w["weight_ih_l0"].shape[1], w["weight_hh_l0"].shape[1])
            m.load_state_dict(w, strict=True)
            inp = torch.flip(x, [0]) if rev else x
            y, _ = m(inp)
            outs.append(torch.flip(y, [0]) if rev else y)
        x = torch.cat(outs, dim=2)
        k += 1
    return x @ sd["head.weight"].T + sd["head.bias"]

for name, fn in (("gru", check_gru), ("bilstm", check_bilstm)):
    io = np.load(f"tests/fixtures/torch_{name}.pt.io.npz")
    with torch.no_grad():
        got = fn(f"{sys.argv[1]}/{name}.safetensors", io).numpy()
    diff = float(np.abs(got - io["output"]).max())
    print(name, got.shape, "max abs diff vs the full model's PyTorch output", diff)
    assert diff < 1e-5, name
