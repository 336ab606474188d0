"""The probe's optimiser against scikit-learn at every training-set size: test accuracy of the default selection.

For each training-set size N (rows per class) and each draw seed, N training rows per class and
``--val-per-class`` validation rows per class are drawn (seeded) from a data set's train and val splits; the test
split is used whole. On that data

* ``adam``: ``run_probe`` with ``ProbeConfig(loss="ce", optimizer="adam")`` — the default: Adam with weight decay
  as an L2 penalty, strengths α / n_train (``probe.config.L2_STRENGTHS``), one lr (with ``--head cosine``: lr
  {1e-3, 1e-2} without decay, ``probe.config.SCALE_INVARIANT_GRID``);
* ``adamw``: the same with ``optimizer="adamw"`` — the default before: decoupled decay, lr {1e-3, 1e-2} × wd
  {0, 1, 10};
* ``sklearn``: scikit-learn's ``LogisticRegression`` (L-BFGS) with C swept over 1e-3 … 1e3 on val, refit at the
  chosen C (``bench/sklearn_baseline.sweep``, the baseline of ``bench/probe_speed.py``).

Each run of ours trains one seed (the draw seed). With 50 or more validation rows per class both sides select on
validation (``probe.decision.MIN_VAL_PER_CLASS``). Data sets: the synthetic Gaussian classes of
``bench/probe_speed.py`` (256-d, 10 classes, a common offset; the set on which the AdamW default was found 6–8
points below scikit-learn at 30–60 rows per class) and, with ``--features``, a feature cache. The table gives the
mean test accuracy over draws ± its standard deviation, and the mean paired difference to scikit-learn ± the
standard error of that mean.

    python bench/optimizer_accuracy.py --train-per-class 30 100 500 --draws 5 --threads 2 \\
        --features /work/cache/cifar10-full.h5 /work/cache/fmnist-1000.h5 --json bench/results/optimizer_accuracy.json
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import thread_caps  # noqa: E402  (bench/, this script's folder; imports nothing numerical)

DEFAULT_THREADS = 1

if __name__ == "__main__":  # as a program: every pool capped before numpy or torch is imported
    thread_caps.cap_environment(thread_caps.threads_from_argv(sys.argv, default=DEFAULT_THREADS))

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from probe_speed import check_pools, cut_per_class, load_features, synthetic  # noqa: E402
from sklearn_baseline import SK_C, sweep  # noqa: E402

from probe.registry import HEADS  # noqa: E402  (torch-free)

METHODS = ("adam", "adamw", "sklearn")


def draw(data: dict, train_per_class: int, val_per_class: int, seed: int) -> dict:
    """``data`` with train and val cut to that many random rows per class (all of a smaller class), in their
    original order; test whole."""
    rng = np.random.default_rng(seed)
    return {**data, "train": cut_per_class(*data["train"], train_per_class, rng),
            "val": cut_per_class(*data["val"], val_per_class, rng)}


def run_method(method: str, data: dict, names: list[str], seed: int, head: str = "linear") -> dict:
    """Test accuracy (%) and what the method selected, on one draw (ours with ``head``)."""
    start = time.perf_counter()
    if method == "sklearn":
        result = sweep(data, SK_C, 1000)
        return {"test": 100 * result["test"], "chosen": result["chosen"], "seconds": time.perf_counter() - start}
    from probe import ProbeConfig, run_probe

    config = ProbeConfig(loss="ce", head=head, optimizer=method, seeds=[seed])
    report = run_probe(data, names, config, tune_allocator=True).model_dump(mode="json")
    selected = report["config"]["selected"]
    return {"test": 100 * report["summary"]["overall"], "seconds": time.perf_counter() - start,
            "chosen": {k: selected[k] for k in ("lr", "weight_decay")}, "epochs": report["config"]["epochs"]}


def summarise(runs: list[dict]) -> dict:
    """Mean ± std of each method's test accuracy over the draws, and its mean paired difference to scikit-learn
    ± the standard error of that mean."""
    out = {}
    reference = np.array([r["sklearn"]["test"] for r in runs])
    for method in METHODS:
        acc = np.array([r[method]["test"] for r in runs])
        diff = acc - reference
        sem = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("nan")
        out[method] = {"mean": float(acc.mean()), "std": float(acc.std(ddof=1)) if len(acc) > 1 else float("nan"),
                       "vs_sklearn": float(diff.mean()), "vs_sklearn_sem": sem}
    return out


def markdown(results: list[dict]) -> str:
    lines = ["| data | train per class | draws | adam (default) | adamw (before) | scikit-learn | adam − sklearn "
             "| adamw − sklearn |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        s = r["summary"]
        cells = [f"{s[m]['mean']:.2f} ± {s[m]['std']:.2f}" for m in METHODS]
        diffs = [f"{s[m]['vs_sklearn']:+.2f} ± {s[m]['vs_sklearn_sem']:.2f}" for m in ("adam", "adamw")]
        lines.append(f"| {r['data']} | {r['train_per_class']} | {len(r['runs'])} | " + " | ".join(cells + diffs)
                     + " |")
    return "\n".join(lines)


def data_sets(args) -> list[tuple[str, dict, list[str]]]:
    sets = []
    if not args.no_synthetic:
        pool = max(args.train_per_class) * 2 * args.classes
        data, names = synthetic(pool, 4 * args.val_per_class * args.classes, args.test_rows, args.dim, args.classes,
                                args.seed)
        sets.append((f"synthetic {args.dim}-d", data, names))
    for path in args.features:
        data, names = load_features(path)
        sets.append((Path(path).stem, data, names))
    return sets


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--features", nargs="+", default=[], help="feature caches with train, val and test (besides "
                        "the synthetic set)")
    parser.add_argument("--no-synthetic", action="store_true", help="only the --features caches")
    parser.add_argument("--train-per-class", type=int, nargs="+", default=[30, 100, 500])
    parser.add_argument("--val-per-class", type=int, default=50)
    parser.add_argument("--head", choices=list(HEADS), default="linear", help="our probes' head (each "
                        "optimiser with its default grid for that head); scikit-learn is linear either way")
    parser.add_argument("--draws", type=int, default=5, help="draws (seeds 0 .. draws − 1) per size")
    parser.add_argument("--dim", type=int, default=256, help="synthetic features: dimension")
    parser.add_argument("--classes", type=int, default=10, help="synthetic features: classes")
    parser.add_argument("--test-rows", type=int, default=5000, help="synthetic features: test rows")
    parser.add_argument("--seed", type=int, default=0, help="synthetic features: generator seed")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help="threads of every side (capped before the fits)")
    parser.add_argument("--json", default=None, help="write the runs and the table to this JSON file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    check_pools(thread_caps.cap_pools(args.threads), args.threads, "bench")
    results = []
    for name, data, names in data_sets(args):
        for per_class in args.train_per_class:
            runs = []
            for seed in range(args.draws):
                subset = draw(data, per_class, args.val_per_class, seed)
                runs.append({m: run_method(m, subset, names, seed, args.head) for m in METHODS})
                print(f"{name}, {per_class} per class, draw {seed}: "
                      + ", ".join(f"{m} {r['test']:.2f} % ({r['seconds']:.1f} s)" for m, r in runs[-1].items()),
                      flush=True)
            results.append({"data": name, "head": args.head, "train_per_class": per_class,
                            "val_per_class": args.val_per_class, "runs": runs, "summary": summarise(runs)})
    table = markdown(results)
    print("\n" + table)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results, "table": table}, indent=1))


if __name__ == "__main__":
    main()
