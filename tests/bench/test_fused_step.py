"""bench/fused_step.py computes what the trainer computes: its written-out gradients equal autograd's, its
row-wise AdamW equals torch.optim.AdamW per head, and the script runs end to end on a small cache."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fused_step
from feature_cache import write_cache


def _problem(n=64, d=12, heads=3, k=4):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g)
    y = torch.randint(0, k, (n,), generator=g)
    return x, y, torch.randn(heads * k, d, generator=g), torch.randn(heads * k, generator=g), heads, k


@pytest.mark.parametrize("dtype, rtol, atol", [(torch.float32, 1e-5, 1e-6), (torch.bfloat16, 1e-2, 1e-3)])
def test_gradients_equal_autograd_of_the_summed_head_losses(dtype, rtol, atol):
    x, y, w, b, heads, k = _problem()
    xb = x.to(dtype)
    gw, gb = fused_step.fused_gradients(xb, w, b, y, heads)
    wr, br = w.clone().requires_grad_(), b.clone().requires_grad_()
    z = (xb @ wr.to(dtype).t()).float() + br
    sum(F.cross_entropy(part, y) for part in z.split(k, dim=1)).backward()
    assert torch.allclose(gw, wr.grad, rtol=rtol, atol=atol)  # bf16: products in bf16 on both sides, other rounding
    assert torch.allclose(gb, br.grad, atol=1e-6)


def test_autograd_path_switches_the_trainers_closed_form_step_off(monkeypatch):
    """The A/B is real: inside ``autograd_path`` no step is closed-form, outside every step of the sweep is."""
    import probe.trainer as trainer_module
    from probe.trainer import ProbeTrainer, fit_many

    calls = []
    real = trainer_module._closed_form_step
    monkeypatch.setattr(trainer_module, "_closed_form_step", lambda *a: calls.append(1) or real(*a))
    x, y, *_ = _problem()

    def fit():
        fit_many([ProbeTrainer(lr=lr, epochs=2, batch_size=16, tol=None) for lr in (0.01, 0.1)], x, y)

    with fused_step.autograd_path():
        fit()
    assert calls == []
    fit()
    assert len(calls) == 2 * 4


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
    base = [sys.executable, str(script), "--features", str(cache), "--rows", "60", "--repeats", "1"]
    done = subprocess.run(base, capture_output=True, text=True, timeout=300, cwd=script.parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "(60, 8) float32, 6 heads x 3 classes, bf16, batch full" in done.stdout
    assert "trainer / autograd path = " in done.stdout and "fused / trainer = " in done.stdout
    done = subprocess.run(base + ["--batch-size", "16", "--dtype", "float16", "--precision", "fp32", "--heads", "1"],
                          capture_output=True, text=True, timeout=300, cwd=script.parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "(60, 8) float16, 1 heads x 3 classes, fp32, batch 16" in done.stdout
    assert "per epoch (4 steps) against the bare fp32 products" in done.stdout and "bare/fused " in done.stdout
    done = subprocess.run([sys.executable, str(script), "--synthetic", "2", "--rows", "40", "--repeats", "1",
                           "--precision", "fp32"], capture_output=True, text=True, timeout=300, cwd=script.parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "(40, 1280) float32, 6 heads x 2 classes, fp32, batch full" in done.stdout
