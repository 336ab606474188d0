"""How often the paired 95 % interval of a difference of thirds (and of balanced accuracy) holds the population
difference, on two real runs' stored test predictions.

The two runs' whole test split is the population: each class's difference of seed-mean accuracy over all of its
test images is the true one, and a third's true difference the mean over its classes (the base run's thirds). Each
trial subsamples the test split without replacement to the given per-class counts (a long-tailed test set, or a
small balanced one) and computes, on those images, the product's interval (``Bootstrap.paired_delta``: the
percentile interval widened by its small or little-changed classes, ``probe.uncertainty.small_class_variance``)
beside the stratified bootstrap's plain percentile interval it replaced (``delta_intervals`` of
``Bootstrap.paired_delta_samples``), on the same resamples. A class whose count is its whole test split adds no
sampling noise: counts well below the split's keep the population meaningful.

Results go to ``bench/results/group_delta_coverage.json``; bench/README.md ("Group difference coverage") has the
table.

Usage::

    python bench/group_delta_coverage.py runs/erm runs/fair --counts 9,53,14,300,194,126,34,6,22,81
    python bench/group_delta_coverage.py runs/erm runs/fair --counts 10 --trials 200   # 10 a class
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from interval_calibration import finish  # bench/, this script's folder
from probe.predictions import load_pair
from probe.report import load_report
from probe.uncertainty import Bootstrap, delta_intervals

RESULTS = Path(__file__).resolve().parent / "results"
KEYS = ("balanced", "easy", "medium", "hard")


def coverage(labels: np.ndarray, base: np.ndarray, other: np.ndarray, groups: dict[str, list[int]],
             counts: list[int], trials: int, seed: int = 0) -> dict:
    """Coverage and mean width of each key's product and percentile interval over ``trials`` subsamples of
    ``counts`` images per class, against the difference on every image (``base``/``other``: per-image scores)."""
    k = len(counts)
    pc = np.array([other[labels == c].mean() - base[labels == c].mean() for c in range(k)])
    truth = {"balanced": float(pc.mean()), **{g: float(pc[groups[g]].mean()) for g in KEYS[1:]}}
    held = {(rule, key): 0 for rule in ("product", "percentile") for key in KEYS}
    width = dict.fromkeys(held, 0.0)
    rng = np.random.default_rng(seed)
    for t in range(trials):
        rows = np.concatenate([rng.choice(np.flatnonzero(labels == c), counts[c], replace=False) for c in range(k)])
        boot = Bootstrap(labels[rows], k, seed=t)
        intervals = {"product": boot.paired_delta(other[rows], base[rows], groups),
                     "percentile": delta_intervals(*boot.paired_delta_samples(other[rows], base[rows], groups))}
        for (rule, key) in held:
            lo, hi = intervals[rule][key]["lo"], intervals[rule][key]["hi"]
            held[rule, key] += lo - 1e-9 <= truth[key] <= hi + 1e-9
            width[rule, key] += hi - lo
    return {"counts": counts, "trials": trials, "truth": truth,
            **{f"{rule}_{key}": {"coverage": held[rule, key] / trials, "mean_width": width[rule, key] / trials}
               for rule, key in held}}


def print_result(result: dict) -> None:
    print(f"{result['base']} vs {result['other']}, test counts {result['counts']}, {result['trials']} subsamples")
    print(f"{'':9s} {'true Δ':>7s} {'product':>16s} {'percentile':>16s}  (coverage, mean width in points)")
    for key in KEYS:
        cells = " ".join(f"{result[f'{rule}_{key}']['coverage']:>8.3f} ({100 * result[f'{rule}_{key}']['mean_width']:5.2f})"
                         for rule in ("product", "percentile"))
        print(f"{key:9s} {100 * result['truth'][key]:+7.2f} {cells}")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="run folder with predictions.npz (its thirds are used)")
    parser.add_argument("other", help="run folder scored on the same test split")
    parser.add_argument("--counts", required=True, help="test images per class, comma-separated, or one for all")
    parser.add_argument("--trials", type=int, default=1000, help="subsamples (default 1000)")
    parser.add_argument("--json", default=str(RESULTS / "group_delta_coverage.json"), help="where to write")
    args = parser.parse_args(argv)
    pair = load_pair(args.base, args.other)
    if pair is None:
        parser.error("both runs need stored predictions (predictions.npz)")
    base, other = pair
    k = int(base.labels.max()) + 1
    counts = [int(c) for c in args.counts.split(",")]
    counts = counts * k if len(counts) == 1 else counts
    if len(counts) != k:
        parser.error(f"--counts needs one count or {k}, got {len(counts)}")
    groups = load_report(args.base).grouping.groups
    start = time.perf_counter()
    result = coverage(base.labels, base.correct, other.correct, groups, counts, args.trials)
    result.update(base=str(args.base), other=str(args.other), seconds=time.perf_counter() - start)
    script = f"group_delta_coverage.py {args.base} {args.other} --counts {args.counts}"
    return finish(result, script, args.trials, 1000, args.json, print_result)


if __name__ == "__main__":
    main()
