"""Which epochs count towards ``tol``'s stop: three rules on the fits that tell them apart.

``ProbeTrainer(tol=)`` ends a fit once ``n_iter_no_change`` epochs since its objective last beat the best by more
than tol have been "settled". The rules compared (``probe.trainer.near_best``):

- ``sklearn``: every epoch not below best − tol counts (scikit-learn's ``SGDClassifier``; the trainer before stop 64);
- ``within_tol``: only epochs within tol of the best count (stop 64's first fix);
- ``product``: epochs at most max(tol, ``RISE_TOLERANCE``·|best|) above the best count (the trainer now), with
  ``--rise`` values to try.

Cases: a synthetic full-batch fit at lr = 1 (the loss leaps up after epoch 1), digits (``bench/digits_images.py``'s
cache) full batch at lr 0.1 and 0.01, and mini-batch fits of 6,000 CIFAR-10 and 8,000 Fashion-MNIST training rows
(batches of 1024, the epochs of ``auto_epochs``) with weight decay 100/n (one of the default L2 grid's) and 0.
Each prints epochs run and test accuracy, ERM (``ce``) and MR² (``mr2``), linear head, one thread.

    python bench/tol_rule.py --digits /work/cache/digits.h5 --cifar /work/cache/cifar10-full.h5 \\
        --fmnist /work/cache/fmnist-full.h5 [--rise 0.02 0.05 0.1]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "probe"))

import probe.trainer as trainer_module  # noqa: E402
from feature_cache import open_cache  # noqa: E402
from probe import ProbeTrainer  # noqa: E402
from probe.config import auto_epochs  # noqa: E402

PRODUCT_RULE = trainer_module.near_best
RULES = {  # which epochs that did not beat the best by more than tol count towards the stop
    "sklearn": lambda loss, best, tol: True,
    "within_tol": lambda loss, best, tol: loss <= best + tol,
}


def subsample(path: str, n: int | None, seed: int = 0):
    """(train features, labels, test features, labels) of a cache, ``n`` training rows drawn (None: all)."""
    data = open_cache(path).training_data()
    (x, y), (xt, yt) = data["train"], data["test"]
    if n is not None and n < len(y):
        keep = np.sort(np.random.default_rng(seed).choice(len(y), n, replace=False))
        x, y = x[keep], y[keep]
    return x.astype(np.float32), y, xt.astype(np.float32), yt


def cases(args) -> list[tuple[str, tuple, dict]]:
    from test_trainer import gaussian_features

    x, y = gaussian_features(n_per=60, d=64, k=10, mean_norm=1.0)
    found = [("synthetic, lr 1", (x, y, x, y), dict(lr=1.0, epochs=300, batch_size=None))]
    if args.digits:
        digits = subsample(args.digits, None)
        found += [(f"digits, lr {lr}", digits, dict(lr=lr, epochs=450, batch_size=None)) for lr in (0.1, 0.01)]
    for name, path, n in (("CIFAR-10", args.cifar, 6000), ("Fashion-MNIST", args.fmnist, 8000)):
        if path:
            data = subsample(path, n)
            found += [(f"{name} {n:,}, wd {wd:.3g}", data, dict(lr=1e-2, weight_decay=wd, batch_size=1024,
                                                                epochs=auto_epochs(n, 1024)))
                      for wd in (100.0 / n, 0.0)]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--digits"), parser.add_argument("--cifar"), parser.add_argument("--fmnist")
    parser.add_argument("--rise", nargs="+", type=float, default=[trainer_module.RISE_TOLERANCE])
    args = parser.parse_args()
    torch.set_num_threads(1)
    rules = [(name, rule) for name, rule in RULES.items()] + [(f"product {rise:g}", rise) for rise in args.rise]
    print("| case | " + " | ".join(f"{name} ({loss})" for name, _ in rules for loss in ("ce", "mr2")) + " |")
    print("|---" * (1 + 2 * len(rules)) + "|")
    for name, (x, y, xt, yt), kw in cases(args):
        cells = []
        for _, rule in rules:
            if isinstance(rule, float):
                trainer_module.RISE_TOLERANCE, trainer_module.near_best = rule, PRODUCT_RULE
            else:
                trainer_module.near_best = rule
            for loss in ("ce", "mr2"):
                fit = ProbeTrainer(head="linear", loss=loss, tol=1e-3, random_state=0, **kw).fit(x, y)
                cells.append(f"{fit.n_epochs_} ep, {100 * float((fit.predict(xt) == yt).mean()):.2f} %")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
