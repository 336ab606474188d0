"""bench/fused_step.py computes what the trainer computes: its written-out gradients equal autograd's, its
row-wise AdamW equals torch.optim.AdamW per head, and the script runs end to end on a small cache."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import fused_step
from feature_cache import write_cache


def _problem(n=64, d=12, heads=3, k=4):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g)
    y = torch.randint(0, k, (n,), generator=g)
    return x, y, torch.randn(heads * k, d, generator=g), torch.randn(heads * k, generator=g), heads, k


def test_gradients_equal_autograd_of_the_summed_head_losses():
    x, y, w, b, heads, k = _problem()
    xb = x.to(torch.bfloat16)
    gw, gb = fused_step.fused_gradients(xb, xb.t().contiguous(), w, b, y, heads)
    wr, br = w.clone().requires_grad_(), b.clone().requires_grad_()
    z = (xb @ wr.to(torch.bfloat16).t()).float() + br
    sum(F.cross_entropy(part, y) for part in z.split(k, dim=1)).backward()
    assert torch.allclose(gw, wr.grad, rtol=1e-2, atol=1e-3)  # bf16 products on both sides, other rounding
    assert torch.allclose(gb, br.grad, atol=1e-6)


def test_rowwise_adamw_equals_torch_adamw_per_head():
    x, y, w, b, heads, k = _problem()
    grid = [(0.05, 0.0), (0.01, 2.0), (0.1, 0.5)]
    lr = torch.tensor([g[0] for g in grid]).repeat_interleave(k)
    decay = 1 - lr * torch.tensor([g[1] for g in grid]).repeat_interleave(k)
    ours = (w.clone(), b.clone())
    state = [(torch.zeros_like(p), torch.zeros_like(p)) for p in ours]
    refs = []
    for h, (rate, wd) in enumerate(grid):
        pw = torch.nn.Parameter(w[h * k:(h + 1) * k].clone())
        pb = torch.nn.Parameter(b[h * k:(h + 1) * k].clone())
        refs.append((pw, pb, torch.optim.AdamW([{"params": [pw], "weight_decay": wd},
                                                {"params": [pb], "weight_decay": 0.0}], lr=rate)))
    g = torch.Generator().manual_seed(1)
    for t in range(1, 6):
        gw, gb = torch.randn(w.shape, generator=g), torch.randn(b.shape, generator=g)
        fused_step.adamw_rows(ours, (gw, gb), state, lr, decay, t)
        for h, (pw, pb, opt) in enumerate(refs):
            pw.grad, pb.grad = gw[h * k:(h + 1) * k].clone(), gb[h * k:(h + 1) * k].clone()
            opt.step()
    assert torch.allclose(ours[0], torch.cat([r[0] for r in refs]).detach(), atol=1e-6)
    assert torch.allclose(ours[1], torch.cat([r[1] for r in refs]).detach(), atol=1e-6)


def test_script_end_to_end(tmp_path):
    rng = np.random.default_rng(0)

    def split(m):
        return rng.normal(size=(m, 8)).astype(np.float32), np.arange(m) % 3, [f"{i}.jpg" for i in range(m)]

    cache = tmp_path / "c.h5"
    write_cache(cache, {"train": split(90), "val": split(30), "test": split(30)}, ["a", "b", "c"],
                {"encoder": "synthetic", "default_head": "linear", "normalized": False, "fingerprint": "t"})
    script = Path(fused_step.__file__)
    done = subprocess.run([sys.executable, str(script), "--features", str(cache), "--rows", "60", "--repeats", "1"],
                          capture_output=True, text=True, timeout=300, cwd=script.parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "(60, 8), 6 heads x 3 classes" in done.stdout and "fused/trainer = " in done.stdout
