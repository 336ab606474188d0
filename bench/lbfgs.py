"""Full-batch L-BFGS against the trainer's joint Adam sweep: is L-BFGS the faster solver on small problems?

Issue 17 asked for L-BFGS (``torch.optim.LBFGS``) to be chosen automatically below a measured size wherever it beats
the trainer at equal accuracy. This bench fits the default ERM sweep of a cache's training split (ProbeConfig's
candidates: L2 strengths α / n at lr 0.01, ``probe.config.L2_STRENGTHS``) two ways, in one process, same threads:

* ours: ``probe.fit_many`` of every candidate in one pass (full batch up to 4,096 rows, ``tol`` and ``auto``
  precision as ``mr2probe train`` runs them);
* L-BFGS: the same objective (mean cross-entropy + wd/2·‖W‖², the bias unpenalised, Adam's L2 convention) for all
  candidates at once: their stacked weights are one parameter, the objective is the sum of the candidates' (the
  problem is separable, so each head's minimiser is its own fit's), strong-Wolfe line search, float32 products
  (its line search compares objective values that bfloat16 products would blur), ``--max-iter`` iterations at
  most, ``tolerance_grad`` ``--tol``.

It prints the seconds, L-BFGS's objective evaluations, and each candidate's test accuracy. Each side is run
``--repeats`` times, interleaved; the best time is kept.

Usage::

    python bench/lbfgs.py --features /work/cache/cifar10-300.h5 --max-iter 100 200 --repeats 3
"""
from __future__ import annotations

import sys

import thread_caps  # bench/, this script's folder; imports nothing numerical

DEFAULT_THREADS = 1

if __name__ == "__main__":  # the thread pools are sized at numpy's and torch's import: before it, and only when run
    thread_caps.cap_environment(thread_caps.threads_from_argv(sys.argv, default=DEFAULT_THREADS))

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from feature_cache.store import open_cache  # noqa: E402
from probe import ProbeConfig, ProbeTrainer, fit_many  # noqa: E402


def ours(config: ProbeConfig, candidates: list[dict], x: np.ndarray, y: np.ndarray, k: int
         ) -> tuple[float, list[ProbeTrainer]]:
    start = time.perf_counter()
    fitted = fit_many([ProbeTrainer(**config.trainer_params(c, seed=0)) for c in candidates], x, y, num_classes=k)
    return time.perf_counter() - start, fitted


def lbfgs(strengths: list[float], x: torch.Tensor, y: torch.Tensor, k: int, max_iter: int, tol: float):
    """All candidates' heads by one L-BFGS run on the sum of their objectives → (seconds, evaluations, W, b)."""
    n, d = x.shape
    heads = len(strengths)
    w = torch.zeros(heads * k, d, requires_grad=True)
    b = torch.zeros(heads * k, requires_grad=True)
    decay = torch.tensor(strengths, dtype=torch.float32).repeat_interleave(k)[:, None]  # wd per row of w
    labels = y.repeat_interleave(heads)  # row i of the (n·H, K) logits is sample i // H, head i % H
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, history_size=10, line_search_fn="strong_wolfe",
                            tolerance_grad=tol, tolerance_change=1e-9)
    evaluations = 0

    def closure():
        nonlocal evaluations
        evaluations += 1
        opt.zero_grad()
        logits = (x @ w.t() + b).reshape(n * heads, k)
        loss = torch.nn.functional.cross_entropy(logits, labels, reduction="sum") / n
        loss = loss + 0.5 * (decay * w.square()).sum()
        loss.backward()
        return loss

    start = time.perf_counter()
    opt.step(closure)
    return time.perf_counter() - start, evaluations, w.detach(), b.detach()


def accuracies(w: torch.Tensor, b: torch.Tensor, x: np.ndarray, y: np.ndarray, heads: int, k: int) -> list[float]:
    predicted = (torch.as_tensor(x) @ w.t() + b).reshape(len(y), heads, k).argmax(-1).numpy()
    return [float((predicted[:, h] == y).mean()) for h in range(heads)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", required=True, help="a feature cache (mr2probe extract)")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help="threads of torch and every BLAS (default 1)")
    parser.add_argument("--max-iter", type=int, nargs="+", default=[100, 200])
    parser.add_argument("--tol", type=float, default=1e-5, help="L-BFGS tolerance_grad (default 1e-5)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    pools = thread_caps.describe_pools(thread_caps.cap_pools(args.threads))
    print(f"threads: torch {torch.get_num_threads()}; {pools}")
    cache = open_cache(args.features)
    x, y = cache.load("train", None)
    x_test, y_test = cache.load("test")
    k = cache.num_classes
    config = ProbeConfig(loss="ce").resolved(len(y))
    candidates = config.candidates()
    strengths = [c["weight_decay"] for c in candidates]
    x32, y32 = torch.as_tensor(x.astype(np.float32)), torch.as_tensor(y)
    results = {"features": args.features, "train": list(x.shape), "machine": thread_caps.machine(),
               "candidates": candidates, "ours": [],
               **{f"lbfgs_{m}": [] for m in args.max_iter}}
    for _ in range(args.repeats):
        seconds, fitted = ours(config, candidates, x, y, k)
        results["ours"].append({"seconds": seconds, "epochs": [t.n_epochs_ for t in fitted],
                                "precision": fitted[0].precision_,
                                "test": [float((t.predict(x_test) == y_test).mean()) for t in fitted]})
        for max_iter in args.max_iter:
            seconds, evaluations, w, b = lbfgs(strengths, x32, y32, k, max_iter, args.tol)
            results[f"lbfgs_{max_iter}"].append({"seconds": seconds, "evaluations": evaluations,
                                                 "test": accuracies(w, b, x_test, y_test, len(strengths), k)})
    for name in ["ours", *(f"lbfgs_{m}" for m in args.max_iter)]:
        runs = results[name]
        extra = (f"epochs {runs[0]['epochs']}, {runs[0]['precision']}" if name == "ours"
                 else f"{runs[0]['evaluations']} evaluations, fp32")
        print(f"{name:>11}: best {min(r['seconds'] for r in runs):.2f} s of {len(runs)} ({extra}); test % "
              + " ".join(f"{100 * a:.2f}" for a in runs[0]["test"]))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
