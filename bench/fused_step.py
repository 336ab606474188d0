"""Per-step cost of the trainer's joint fit: its closed-form step, its autograd path, and a hand-fused step.

The questions it answers: what the trainer's closed-form step (``probe.trainer._closed_form_step``: linear heads
whose objective is ℓ_γ,ce alone, gradients written out) saves against the autograd path it replaced (the same
trainer with ``_Run.closed_form`` switched off), and how much overhead a further rewrite could remove. The fused
step keeps the heads as one stacked weight, computes their products in the trainer's precision (in bf16 from
features cast once), writes softmax cross-entropy and its gradient out, and applies one vectorised AdamW (per-row
lr and decay) where the trainer makes one optimiser call per head. Full batch by default (the small probes' case);
with ``--batch-size`` all draw shuffled mini-batches from the features as the trainer keeps them (float16 rows
gathered, then widened to float32; in bf16 gathered from a bfloat16 copy), and the bare matrix products of one
full-batch epoch (``bench/probe_speed.py``'s ``bare_epoch_seconds``) give each one's bare / ours per epoch. All
run on the same features, 1 thread by default, interleaved, best of ``--repeats``.

    python bench/fused_step.py --features cifar10-300.h5 [--rows 2400] [--repeats 3]
    python bench/fused_step.py --features cifar10-full.h5 --rows 45000 --batch-size 1024 --dtype float16 \
        --precision fp32 --heads 1
    python bench/fused_step.py --synthetic 50 --rows 20000 --batch-size 1024 --dtype float16 --precision fp32
"""
from __future__ import annotations

import argparse
import contextlib
import math
import time

import h5py
import numpy as np
import torch

from probe import ProbeConfig
from probe.losses import softmax_cross_entropy_grad

# The AdamW ERM sweep (ProbeConfig's default until the default optimiser became adam), whose decoupled decay the
# hand-fused step implements: (lr, weight decay) of each candidate
GRID = [(c["lr"], c["weight_decay"]) for c in ProbeConfig(optimizer="adamw").resolved(1).candidates()]
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@contextlib.contextmanager
def autograd_path():
    """The trainer with its closed-form step switched off (``probe.trainer._Run.closed_form`` False): every head's
    gradients taken by autograd, the path before the closed-form step."""
    from probe.trainer import _Run

    closed_form = _Run.closed_form
    _Run.closed_form = property(lambda run: False)
    try:
        yield
    finally:
        _Run.closed_form = closed_form


def trainer_step_ms(x: torch.Tensor, y: torch.Tensor, k: int, grid: list, batch_size: int | None,
                    precision: str, autograd: bool = False) -> float:
    """Per-step time of fit_many on ``grid`` (``autograd``: on :func:`autograd_path`): the difference of a long and
    a short fit over its extra steps (80 − 20 full-batch epochs, or 4 − 1 epochs of mini-batches)."""
    from probe.trainer import ProbeTrainer, fit_many

    steps = 1 if batch_size is None else math.ceil(len(y) / batch_size)
    long, short = (80, 20) if batch_size is None else (4, 1)

    def fit(epochs: int) -> float:
        trainers = [ProbeTrainer(lr=lr, weight_decay=wd, epochs=epochs, batch_size=batch_size, tol=None,
                                 precision=precision) for lr, wd in grid]
        start = time.perf_counter()
        fit_many(trainers, x, y, k)
        return time.perf_counter() - start

    with autograd_path() if autograd else contextlib.nullcontext():
        fit(1)
        return 1e3 * (fit(long) - fit(short)) / ((long - short) * steps)


def fused_gradients(xb: torch.Tensor, w: torch.Tensor, b: torch.Tensor, y: torch.Tensor,
                    heads: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of Σ_heads mean_rows cross-entropy(x·w_hᵀ + b_h, y) for stacked weights w (heads·K, d), with the
    products in xb's dtype (float32 or bfloat16) and widened to float32, written out. The logits are computed
    transposed, (heads·K, n) = w·xᵀ (the faster form for narrow heads, ``probe.trainer.heads_product``), so the
    softmax reduces along the long axis n (``probe.losses.softmax_cross_entropy_grad``, as the trainer's), and the
    weight gradient is gᵀ·x."""
    n, k = xb.shape[0], w.shape[0] // heads
    zt = (w.to(xb.dtype) @ xb.t()).float().add_(b.unsqueeze(1)).view(heads, k, n)
    gt = softmax_cross_entropy_grad(zt, y)[1].view(heads * k, n)
    return (gt.to(xb.dtype) @ xb).float(), gt.sum(1)


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


def batches(x: torch.Tensor, y: torch.Tensor, batch_size: int | None, precision: str, gen: torch.Generator):
    """Endless (features, labels) batches as the trainer draws them: the full batch in the precision's dtype, or one
    shuffled mini-batch after another (a new permutation per epoch) gathered into reused buffers."""
    dtype = DTYPES[precision]
    if batch_size is None:
        full = x.to(dtype)
        while True:
            yield full, y
    source = x.to(torch.bfloat16) if precision == "bf16" else x  # float16 rows stay float16, widened per batch
    gathered = torch.empty(batch_size, x.shape[1], dtype=source.dtype)
    widened = torch.empty(batch_size, x.shape[1], dtype=dtype)
    while True:
        order = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            xb = torch.index_select(source, 0, idx, out=gathered[:len(idx)])
            yield xb if xb.dtype == dtype else widened[:len(idx)].copy_(xb), torch.index_select(y, 0, idx)


def fused_step_ms(x: torch.Tensor, y: torch.Tensor, k: int, grid: list, batch_size: int | None, precision: str,
                  steps: int = 60) -> float:
    """Per-step time of the fused step on ``grid``, batches drawn as :func:`batches` draws them."""
    w, b = torch.randn(len(grid) * k, x.shape[1]) * 0.01, torch.zeros(len(grid) * k)
    lr = torch.tensor([g[0] for g in grid]).repeat_interleave(k)
    decay = 1 - lr * torch.tensor([g[1] for g in grid]).repeat_interleave(k)
    state = [(torch.zeros_like(p), torch.zeros_like(p)) for p in (w, b)]
    draws = batches(x, y, batch_size, precision, torch.Generator().manual_seed(0))

    def step(t: int) -> None:
        xb, yb = next(draws)
        adamw_rows((w, b), fused_gradients(xb, w, b, yb, len(grid)), state, lr, decay, t)

    for t in range(1, 6):
        step(t)
    start = time.perf_counter()
    for t in range(6, 6 + steps):
        step(t)
    return 1e3 * (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--features", help="feature cache (HDF5) with a train split")
    parser.add_argument("--synthetic", type=int, metavar="K", help="instead of a cache: --rows synthetic rows of "
                        "1280 features in K Gaussian classes (other class counts than CIFAR-10's)")
    parser.add_argument("--rows", type=int, default=2400,
                        help="training rows, drawn at random (seed 0): 2400 is a 5-fold CV fold of the 2.7k cache")
    parser.add_argument("--batch-size", type=int, default=None, help="mini-batches of this many rows (default: "
                        "full batch)")
    parser.add_argument("--precision", choices=sorted(DTYPES), default="bf16")
    parser.add_argument("--dtype", choices=["float32", "float16"], default="float32",
                        help="the features in memory (float16: as mr2probe train keeps a float16 cache)")
    parser.add_argument("--heads", type=int, default=len(GRID), help=f"the first N candidates of the sweep, "
                        f"repeated beyond its {len(GRID)} (default {len(GRID)}; 18: the MR² sweep's width)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.synthetic:  # bench/probe_speed.py's Gaussian classes (seed 0), 1280-d
        from probe_speed import synthetic  # bench/, this script's folder

        splits, _ = synthetic(n_train=args.rows, n_val=0, n_test=0, dim=1280, num_classes=args.synthetic, seed=0)
        x, y = splits["train"]
        x, y, k = torch.from_numpy(x.astype(args.dtype)), torch.from_numpy(y), args.synthetic
    elif args.features:
        with h5py.File(args.features, "r") as f:
            labels = np.asarray(f["train/labels"][:], dtype=np.int64)
            rows = np.sort(np.random.default_rng(0).choice(len(labels), min(args.rows, len(labels)), replace=False))
            x = torch.from_numpy(np.asarray(f["train/features"][rows], dtype=args.dtype))
        y, k = torch.from_numpy(labels[rows]), int(labels.max()) + 1
    else:
        parser.error("give --features or --synthetic")
    grid = (GRID * math.ceil(args.heads / len(GRID)))[:args.heads]  # beyond the sweep: its candidates again
    runs = {"autograd": [], "trainer": [], "fused": []}
    for _ in range(args.repeats):  # interleaved
        runs["autograd"].append(trainer_step_ms(x, y, k, grid, args.batch_size, args.precision, autograd=True))
        runs["trainer"].append(trainer_step_ms(x, y, k, grid, args.batch_size, args.precision))
        runs["fused"].append(fused_step_ms(x, y, k, grid, args.batch_size, args.precision))
    best = {name: min(times) for name, times in runs.items()}
    print(f"{tuple(x.shape)} {args.dtype}, {len(grid)} heads x {k} classes, {args.precision}, batch "
          f"{args.batch_size or 'full'}, {args.threads} thread(s), best of {args.repeats} (runs in brackets):")
    for name, label in [("autograd", "trainer, autograd path"), ("trainer", "trainer (closed-form step)"),
                        ("fused", "hand-fused step")]:
        print(f"  {label}: {best[name]:.2f} ms per step ({', '.join(f'{t:.2f}' for t in runs[name])})")
    print(f"  trainer / autograd path = {best['trainer'] / best['autograd']:.2f}, fused / trainer = "
          f"{best['fused'] / best['trainer']:.2f}")
    if args.batch_size is not None:
        from probe_speed import bare_epoch_seconds  # bench/, this script's folder

        steps = math.ceil(len(y) / args.batch_size)
        bare = 1e3 * bare_epoch_seconds(x.numpy(), len(grid) * k, args.precision, "cpu")
        print(f"  per epoch ({steps} steps) against the bare {args.precision} products of one full-batch epoch "
              f"({bare:.1f} ms): " + ", ".join(f"bare/{name} {bare / (best[name] * steps):.2f}" for name in best))


if __name__ == "__main__":
    main()
