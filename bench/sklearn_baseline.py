"""The scikit-learn baseline of ``bench/probe_speed.py``, written as a scikit-learn user would write it.

It imports numpy, h5py, scikit-learn and threadpoolctl only (no torch, no project code), so its process start is
the baseline's own, not ours. It reads the feature cache with h5py (float32), then

* ``sweep``: ``LogisticRegression`` (L-BFGS, multinomial) for every C of the grid on train, the best on val, refit
  at that C on train (``GridSearchCV(refit=True)`` on a predefined split);
* ``cv_sweep`` (``--cv K``): the C of the grid with the best mean accuracy over a stratified K-fold of train + val
  (``LogisticRegressionCV``), refit on train: what ``mr2probe train`` does by default when validation holds
  fewer than 50 images in a class (``probe.crossval``), so the like-for-like baseline of that case;

and prints ``RESULT {json}`` (test accuracy, chosen C, seconds of the fits) and ``POOLS {json}``
(``threadpool_info()``).

Usage (threads capped before numpy is imported, like every side of the benchmark)::

    python bench/sklearn_baseline.py /work/cache/cifar10-300.h5 --threads 1 [--cv 5]
"""
from __future__ import annotations

import sys

import thread_caps  # bench/, this script's folder; imports nothing numerical

DEFAULT_THREADS = 1

if __name__ == "__main__":  # as a program: cap every BLAS / OpenMP pool before numpy is imported
    thread_caps.cap_environment(thread_caps.threads_from_argv(sys.argv, default=DEFAULT_THREADS))

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

SK_C = [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0]
SPLITS = ("train", "val", "test")


def load(path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{split: (features float32, labels int64)} of a feature cache, read with h5py."""
    import h5py

    with h5py.File(path, "r") as h5:
        return {s: (h5[s]["features"][()].astype(np.float32, copy=False), h5[s]["labels"][()].astype(np.int64))
                for s in SPLITS}


def _accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(model.predict(x) == y))


def _refit(data, c: float, max_iter: int, start: float, name: str, fits: int) -> dict:
    from sklearn.linear_model import LogisticRegression

    (xt, yt), (xs, ys) = data["train"], data["test"]
    final = LogisticRegression(C=c, solver="lbfgs", max_iter=max_iter).fit(xt, yt)
    return {"name": name, "seconds": time.perf_counter() - start, "test": _accuracy(final, xs, ys), "fits": fits,
            "chosen": {"C": c}}


def sweep(data, c_grid: list[float], max_iter: int) -> dict:
    """LogisticRegression (L-BFGS) for every C on train, the best on val, refit at that C; test accuracy."""
    from sklearn.linear_model import LogisticRegression

    (xt, yt), (xv, yv) = data["train"], data["val"]
    start = time.perf_counter()
    scores = [_accuracy(LogisticRegression(C=c, solver="lbfgs", max_iter=max_iter).fit(xt, yt), xv, yv)
              for c in c_grid]
    best = c_grid[int(np.argmax(scores))]
    return _refit(data, best, max_iter, start, f"sklearn LogisticRegression (L-BFGS, {len(c_grid)} C + refit)",
                  len(c_grid) + 1)


def cv_sweep(data, c_grid: list[float], max_iter: int, folds: int) -> dict:
    """The C with the best mean accuracy over a stratified ``folds``-fold of train + val, refit on train."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    (xt, yt), (xv, yv) = data["train"], data["val"]
    start = time.perf_counter()
    cv = StratifiedKFold(folds, shuffle=True, random_state=0)
    with warnings.catch_warnings():  # scikit-learn 1.9 notices of its 1.10 attribute changes
        warnings.simplefilter("ignore", FutureWarning)
        search = LogisticRegressionCV(Cs=c_grid, cv=cv, solver="lbfgs", max_iter=max_iter, refit=False,
                                      scoring="accuracy").fit(np.concatenate([xt, xv]), np.concatenate([yt, yv]))
    scores = next(iter(search.scores_.values())).mean(axis=0)  # (folds, Cs) → mean accuracy per C
    return _refit(data, float(search.Cs_[int(np.argmax(scores))]), max_iter, start,
                  f"sklearn LogisticRegressionCV (L-BFGS, {len(c_grid)} C × {folds} folds + refit)",
                  len(c_grid) * folds + 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cache", help="feature cache (HDF5) with train, val and test")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help="BLAS / OpenMP threads (capped before numpy)")
    parser.add_argument("--sk-c", type=float, nargs="+", default=SK_C, help="C grid (default 1e-3 … 1e3)")
    parser.add_argument("--sk-max-iter", type=int, default=1000)
    parser.add_argument("--cv", type=int, default=0, help="folds of a cross-validated C sweep on train + val; "
                        "0: select on val")
    args = parser.parse_args(argv)
    thread_caps.cap_pools(args.threads)  # the pools loaded so far (torch is never imported here)
    data = load(args.cache)
    result = (cv_sweep(data, args.sk_c, args.sk_max_iter, args.cv) if args.cv
              else sweep(data, args.sk_c, args.sk_max_iter))
    print("RESULT " + json.dumps(result))
    from threadpoolctl import threadpool_info

    print("POOLS " + json.dumps({"pools": threadpool_info()}))  # after the fits: every pool they loaded


if __name__ == "__main__":
    main()
