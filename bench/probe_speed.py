"""Speed and accuracy of the ERM probe against the usual linear-probe baselines, on the same features.

Compared in one run, each with its own hyper-parameter sweep on the validation split (test never used to select):

* ours: ``probe.run_probe`` with ``loss="ce"`` (ERM), one seed, the lr × weight-decay sweep of ``ProbeConfig``;
* scikit-learn ``LogisticRegression`` (L-BFGS, multinomial), C swept on val: the CLIP paper's linear-probe protocol;
* a plain mini-batch PyTorch loop (``DataLoader`` over a ``TensorDataset``, ``nn.Linear``, AdamW), lr swept on val,
  as in common linear-probe tools.

Every method runs once on a tiny set before the timed runs (``warm_up``). Also: the per-epoch cost of our trainer against the bare matrix products of one full-batch epoch on the same shapes
(forward X·Wᵀ and the two backward products), reported as the measured fraction.

Usage::

    python bench/probe_speed.py                       # synthetic 50k×1280, 10 classes (seeded)
    python bench/probe_speed.py --features CACHE.h5   # a real feature cache
    python bench/probe_speed.py --quick               # 5k×256, for a smoke run
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

try:
    import probe  # noqa: F401  (installed with `make install`)
except ModuleNotFoundError:  # run from a checkout without installing: use the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from probe import ProbeConfig, ProbeTrainer, run_probe  # noqa: E402


def synthetic(n_train: int, n_val: int, n_test: int, dim: int, num_classes: int, seed: int):
    """Gaussian classes, ‖μ_i − μ_j‖ ≈ 3√2, per-class noise σ_k from 0.7 to 1.3 (later classes harder), a common
    offset like real pooled features; about 87 % is reachable at 50k×1280."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 1.0, (num_classes, dim)).astype(np.float32) * 3.0 / np.sqrt(dim)
    spread = np.linspace(0.7, 1.3, num_classes).astype(np.float32)
    offset = rng.normal(0.0, 0.5, dim).astype(np.float32)

    def draw(n):
        y = rng.integers(0, num_classes, n)
        x = means[y] + offset + spread[y, None] * rng.normal(0.0, 1.0, (n, dim)).astype(np.float32)
        return x.astype(np.float32), y.astype(np.int64)

    return {"train": draw(n_train), "val": draw(n_val), "test": draw(n_test)}, [f"class{k}" for k in range(num_classes)]


def load_features(path: str):
    from feature_cache import open_cache

    cache = open_cache(path)
    data = {s: cache.load(s) for s in ("train", "val", "test") if s in cache.splits}
    return data, list(cache.class_names)


def accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(pred == y))


def bench_ours(data, names, args) -> dict:
    config = ProbeConfig(loss="ce", head="linear", seeds=[0], epochs=args.epochs, device=args.device,
                         **({"lr_grid": args.lr} if args.lr else {}), **({"wd_grid": args.wd} if args.wd else {}))
    start = time.perf_counter()
    report = run_probe(data, names, config).model_dump(mode="json")
    seconds = time.perf_counter() - start
    config = config.model_copy(update={"epochs": report["config"]["epochs"]})
    return {"name": "ours (run_probe, ERM)", "seconds": seconds, "test": report["summary"]["overall"],
            "fits": len(report["selection"]["candidates"]), "epochs": report["config"]["epochs"],
            "chosen": {k: report["config"]["selected"][k] for k in ("lr", "weight_decay")}, "config": config}


def bench_sklearn(data, args) -> dict:
    from sklearn.linear_model import LogisticRegression

    (xt, yt), (xv, yv), (xs, ys) = data["train"], data["val"], data["test"]
    start = time.perf_counter()
    best = (-1.0, None, None)
    for c in args.sk_c:
        model = LogisticRegression(C=c, solver="lbfgs", max_iter=args.sk_max_iter)
        model.fit(xt, yt)
        score = accuracy(model.predict(xv), yv)
        if score > best[0]:
            best = (score, c, model)
    seconds = time.perf_counter() - start
    return {"name": "sklearn LogisticRegression (L-BFGS, C swept)", "seconds": seconds,
            "test": accuracy(best[2].predict(xs), ys), "fits": len(args.sk_c), "chosen": {"C": best[1]}}


def bench_loop(data, num_classes: int, args) -> dict:
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    (xt, yt), (xv, yv), (xs, ys) = data["train"], data["val"], data["test"]
    dataset = TensorDataset(torch.from_numpy(np.ascontiguousarray(xt, dtype=np.float32)), torch.from_numpy(yt))
    xv_t, xs_t = torch.from_numpy(np.asarray(xv, np.float32)), torch.from_numpy(np.asarray(xs, np.float32))
    start = time.perf_counter()
    best = (-1.0, None, None)
    for lr in args.loop_lr:
        torch.manual_seed(0)
        model = nn.Linear(xt.shape[1], num_classes)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
        loader = DataLoader(dataset, batch_size=args.loop_batch, shuffle=True)
        for _ in range(args.loop_epochs):
            for xb, yb in loader:
                opt.zero_grad()
                nn.functional.cross_entropy(model(xb), yb).backward()
                opt.step()
        with torch.no_grad():
            score = accuracy(model(xv_t).argmax(1).numpy(), yv)
        if score > best[0]:
            best = (score, lr, model)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        test = accuracy(best[2](xs_t).argmax(1).numpy(), ys)
    return {"name": f"plain PyTorch loop (DataLoader, bs {args.loop_batch}, lr swept)", "seconds": seconds,
            "test": test, "fits": len(args.loop_lr), "chosen": {"lr": best[1]}}


def warm_up(args) -> None:
    """Run every method once on a tiny set first, so no timing includes one-time costs of the process (the first
    optimiser step imports ~900 torch modules, about 1.5 s; scikit-learn and the DataLoader have their own)."""
    tiny_args = argparse.Namespace(**{**vars(args), "epochs": 1, "lr": [1e-2], "wd": [0.0], "sk_c": [1.0],
                                      "sk_max_iter": 10, "loop_lr": [1e-2], "loop_epochs": 1})
    tiny, tiny_names = synthetic(200, 50, 50, 16, 3, 0)
    bench_ours(tiny, tiny_names, tiny_args)
    bench_sklearn(tiny, tiny_args)
    bench_loop(tiny, 3, tiny_args)


def epoch_fraction(data, num_classes: int, ours: dict, args) -> tuple[float, float, float, float]:
    """(our seconds per epoch, per-fit setup seconds, bare matmul seconds per epoch, bare / ours).

    Our per-epoch cost is marginal: (fit with E epochs − fit with 1 epoch) / (E − 1), so the once-per-fit setup
    (moving features, class statistics) is reported apart.
    """
    cfg = ours["config"]
    x, y = data["train"]
    chosen = ours["chosen"]

    def fit_seconds(epochs: int) -> float:
        trainer = ProbeTrainer(head="linear", loss="ce", lr=chosen["lr"], weight_decay=chosen["weight_decay"],
                               epochs=epochs, batch_size=cfg.batch_size, device=cfg.device, random_state=0)
        start = time.perf_counter()
        trainer.fit(x, y, num_classes=num_classes)
        return time.perf_counter() - start

    epochs = max(2, cfg.epochs)
    one, full = fit_seconds(1), fit_seconds(epochs)
    per_epoch = max(full - one, 1e-9) / (epochs - 1)
    setup = max(one - per_epoch, 0.0)
    xt = torch.from_numpy(np.asarray(x, np.float32)).to(cfg.device)
    w = torch.randn(num_classes, xt.shape[1], device=cfg.device)
    g = torch.randn(xt.shape[0], num_classes, device=cfg.device)
    reps = 20
    for _ in range(2):
        _ = xt @ w.T
    start = time.perf_counter()
    for _ in range(reps):
        _ = xt @ w.T        # forward logits
        _ = g.T @ xt        # dL/dW (no dL/dX: frozen features need no gradient)
    if cfg.device.startswith("cuda"):
        torch.cuda.synchronize()
    bare = (time.perf_counter() - start) / reps
    return per_epoch, setup, bare, bare / per_epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--features", default=None, help="feature cache (HDF5); default: synthetic features")
    parser.add_argument("--quick", action="store_true", help="small synthetic set (5k×256) for a smoke run")
    parser.add_argument("--n-train", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="threads for torch and BLAS, all methods alike (default 1: stable on a shared machine)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=None, help="our epochs (default: ProbeConfig's)")
    parser.add_argument("--lr", type=float, nargs="+", default=None, help="our lr grid (default: ProbeConfig's)")
    parser.add_argument("--wd", type=float, nargs="+", default=None, help="our wd grid (default: ProbeConfig's)")
    parser.add_argument("--sk-c", type=float, nargs="+", default=[0.001, 0.01, 0.1, 1.0], help="sklearn C grid")
    parser.add_argument("--sk-max-iter", type=int, default=1000)
    parser.add_argument("--loop-lr", type=float, nargs="+", default=[1e-3, 1e-2], help="plain loop lr grid")
    parser.add_argument("--loop-epochs", type=int, default=10)
    parser.add_argument("--loop-batch", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from threadpoolctl import threadpool_limits  # scikit-learn's dependency: same thread budget for its BLAS

    threadpool_limits(args.threads)

    if args.features:
        data, names = load_features(args.features)
        source = args.features
    else:
        n, d = (5_000, 256) if args.quick else (args.n_train, args.dim)
        data, names = synthetic(n, n // 10, n // 5, d, args.classes, args.seed)
        source = f"synthetic {n}×{d}, {args.classes} classes, seed {args.seed}"
    num_classes = len(names)
    shapes = {k: v[0].shape for k, v in data.items()}
    print(f"features: {source}; splits {shapes}; torch threads {args.threads}; device {args.device}")

    warm_up(args)
    ours = bench_ours(data, names, args)
    sk = bench_sklearn(data, args)
    loop = bench_loop(data, num_classes, args)
    per_epoch, setup, bare, fraction = epoch_fraction(data, num_classes, ours, args)

    print()
    print(f"{'method':<52} {'fits':>4} {'time s':>8} {'test %':>7} {'speed-up':>9} {'Δacc pts':>9}  chosen")
    for r in (ours, sk, loop):
        speed = r["seconds"] and sk["seconds"] / r["seconds"]
        print(f"{r['name']:<52} {r['fits']:>4} {r['seconds']:>8.2f} {100 * r['test']:>7.2f} {speed:>8.2f}x "
              f"{100 * (r['test'] - sk['test']):>+9.2f}  {r['chosen']}")
    print()
    print(f"ours vs sklearn: {sk['seconds'] / ours['seconds']:.1f}x faster end to end (sweeps included), "
          f"test accuracy {100 * (ours['test'] - sk['test']):+.2f} points (ratio {ours['test'] / sk['test']:.4f})")
    print(f"ours vs plain loop: {loop['seconds'] / ours['seconds']:.1f}x faster, "
          f"test accuracy {100 * (ours['test'] - loop['test']):+.2f} points")
    print(f"per epoch ({shapes['train']}, batch {ours['config'].batch_size}, {ours['epochs']} epochs per fit): "
          f"ours {1000 * per_epoch:.1f} ms (+ {1000 * setup:.0f} ms setup per fit), bare matrix products "
          f"{1000 * bare:.1f} ms (forward X·Wᵀ + backward Gᵀ·X, full batch) → bare/ours = {fraction:.2f}")


if __name__ == "__main__":
    main()
