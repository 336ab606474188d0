"""Per-step cost of the trainer's joint full-batch fit against a hand-fused step of the same heads.

The question it answers: how much of a small probe's step (6 jointly fitted linear heads, full batch) is overhead
that a rewrite could remove. The fused step keeps the 6 heads as one stacked weight, computes the bf16 products
as the trainer does (features cast once), writes softmax cross-entropy and its gradient out, and applies one
vectorised AdamW (per-row lr and decay); it trains nothing the product uses. Both run on the same features, 1
thread by default, interleaved, best of ``--repeats``.

    python bench/fused_step.py --features cifar10-300.h5 [--rows 2400] [--repeats 3]
"""
from __future__ import annotations

import argparse
import time

import h5py
import numpy as np
import torch

from probe import ProbeConfig

# The AdamW ERM sweep (ProbeConfig's default until the default optimiser became adam), whose decoupled decay the
# hand-fused step implements: (lr, weight decay) of each candidate
GRID = [(c["lr"], c["weight_decay"]) for c in ProbeConfig(optimizer="adamw").resolved(1).candidates()]


def trainer_step_ms(x: torch.Tensor, y: torch.Tensor, k: int) -> float:
    """Per-step time of fit_many on the default sweep: (fit of 80 epochs − fit of 20) / 60, full batch."""
    from probe.trainer import ProbeTrainer, fit_many

    def fit(epochs: int) -> float:
        trainers = [ProbeTrainer(lr=lr, weight_decay=wd, epochs=epochs, batch_size=None, tol=None,
                                 precision="bf16") for lr, wd in GRID]
        start = time.perf_counter()
        fit_many(trainers, x, y, k)
        return time.perf_counter() - start

    fit(5)
    return 1e3 * (fit(80) - fit(20)) / 60


def fused_gradients(xb: torch.Tensor, xt: torch.Tensor, w: torch.Tensor, b: torch.Tensor, y: torch.Tensor,
                    heads: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of Σ_heads mean_rows cross-entropy(x·w_hᵀ + b_h, y) for stacked weights w (heads·K, d), with the
    products in bf16 (xb: the features in bf16, xt: their transpose, contiguous), written out."""
    n, k = xb.shape[0], w.shape[0] // heads
    z = ((xb @ w.to(torch.bfloat16).t()).float() + b).view(n, heads, k)
    e = (z - z.amax(dim=2, keepdim=True)).exp_()
    p = e.div_(e.sum(dim=2, keepdim=True))
    p[torch.arange(n), :, y] -= 1.0
    g = p.div_(n).view(n, heads * k)
    return (xt @ g.to(torch.bfloat16)).t().float(), g.sum(0)


def adamw_rows(params, grads, state, lr: torch.Tensor, decay: torch.Tensor, t: int,
               betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
    """One AdamW step (t ≥ 1) of stacked heads whose rows have their own lr (heads·K,) and decoupled decay
    factor 1 − lr·wd (heads·K,), applied to the first parameter (the weights) only."""
    beta1, beta2 = betas
    params[0].mul_(decay.unsqueeze(1))
    for param, grad, (m, v) in zip(params, grads, state):
        rate = lr.view(-1, *([1] * (param.ndim - 1)))
        m.lerp_(grad, 1 - beta1)
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (v.sqrt() / (1 - beta2 ** t) ** 0.5).add_(eps)
        param.sub_(m * (rate / (1 - beta1 ** t)) / denom)


def fused_step_ms(x: torch.Tensor, y: torch.Tensor, k: int, steps: int = 60) -> float:
    """Per-step time of the fused step on the default sweep (``GRID``)."""
    xb = x.to(torch.bfloat16)
    xt = xb.t().contiguous()
    w, b = torch.randn(len(GRID) * k, x.shape[1]) * 0.01, torch.zeros(len(GRID) * k)
    lr = torch.tensor([g[0] for g in GRID]).repeat_interleave(k)
    decay = 1 - lr * torch.tensor([g[1] for g in GRID]).repeat_interleave(k)
    state = [(torch.zeros_like(p), torch.zeros_like(p)) for p in (w, b)]

    def step(t: int) -> None:
        adamw_rows((w, b), fused_gradients(xb, xt, w, b, y, len(GRID)), state, lr, decay, t)

    for t in range(1, 6):
        step(t)
    start = time.perf_counter()
    for t in range(6, 6 + steps):
        step(t)
    return 1e3 * (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--features", required=True, help="feature cache (HDF5) with a train split")
    parser.add_argument("--rows", type=int, default=2400,
                        help="training rows, drawn at random (seed 0): 2400 is a 5-fold CV fold of the 2.7k cache")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with h5py.File(args.features, "r") as f:
        labels = np.asarray(f["train/labels"][:], dtype=np.int64)
        rows = np.sort(np.random.default_rng(0).choice(len(labels), min(args.rows, len(labels)), replace=False))
        x = torch.from_numpy(np.asarray(f["train/features"][rows], dtype=np.float32))
    y, k = torch.from_numpy(labels[rows]), int(labels.max()) + 1
    ours, fused = [], []
    for _ in range(args.repeats):
        ours.append(trainer_step_ms(x, y, k))
        fused.append(fused_step_ms(x, y, k))
    print(f"{tuple(x.shape)}, {len(GRID)} heads x {k} classes, {args.threads} thread(s): trainer step "
          f"{min(ours):.2f} ms (runs {', '.join(f'{t:.2f}' for t in ours)}), fused step {min(fused):.2f} ms "
          f"(runs {', '.join(f'{t:.2f}' for t in fused)}): fused/trainer = {min(fused) / min(ours):.2f}")


if __name__ == "__main__":
    main()
