"""How often the report's intervals of balanced accuracy and of the thirds cover their true value, by simulation:
the product's draws (each class's Jeffreys posterior widened by √((n + 1)/(n − 1)), stop 54) beside the unwidened
Jeffreys draws they replaced, on the same simulated test splits.

Each trial draws n test images per class of K classes whose true accuracies are flat (one value) or spread
(0.98 down to 0.5), each image right with its class's probability; ``probe.uncertainty.group_intervals`` gives the
95 % intervals of balanced accuracy and of each third (the thirds fixed by the true ranking). A statistics review
(stop 54) measured the unwidened draws at 79–92 % with 3 to 10 images per class.

Results go to ``bench/results/group_interval_calibration.json``; bench/README.md ("Group interval calibration")
has the table.

Usage::

    python bench/group_interval_calibration.py              # ~5 min on 2 cores
    python bench/group_interval_calibration.py --trials 50
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from unittest import mock

import numpy as np

from interval_calibration import finish  # bench/, this script's folder
from probe import uncertainty
from probe.groups import assign_groups

RESULTS = Path(__file__).resolve().parent / "results"
# (classes K, test images per class n, true accuracies: one value, or "spread" from 0.98 down to 0.5)
CASES = ((10, 3, 0.7), (10, 3, "spread"), (100, 3, 0.7), (30, 5, 0.9), (30, 5, "spread"), (100, 5, 0.5),
         (300, 10, 0.7), (300, 10, "spread"), (10, 30, "spread"), (10, 100, 0.95), (30, 2, "spread"), (30, 1, 0.7))
KEYS = ("balanced", "easy", "hard")


def coverage(k: int, n: int, accuracy, trials: int, rng: np.random.Generator) -> dict[str, float]:
    """Coverage of each interval of :data:`KEYS` over ``trials`` simulated test splits of one case."""
    truth = np.linspace(0.98, 0.5, k) if accuracy == "spread" else np.full(k, float(accuracy))
    labels = np.repeat(np.arange(k), n)
    groups = assign_groups(truth + np.linspace(0, 1e-9, k))  # the true thirds (a flat case: by class index)
    target = {"balanced": truth.mean(), **{key: truth[groups[key]].mean() for key in ("easy", "hard")}}
    hits = dict.fromkeys(KEYS, 0)
    for _ in range(trials):
        correct = (rng.random(labels.size) < truth[labels]).astype(np.float64)
        got = uncertainty.group_intervals(correct, labels, k, groups, seed=int(rng.integers(1 << 31)))
        for key in KEYS:
            hits[key] += got[key][0] <= target[key] <= got[key][1]
    return {key: hits[key] / trials for key in KEYS}


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=200, help="test splits per case and rule (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=str(RESULTS / "group_interval_calibration.json"), help="where to write")
    args = parser.parse_args()
    started, rows = time.perf_counter(), []
    for k, n, accuracy in CASES:
        row = {"classes": k, "images_per_class": n, "accuracy": accuracy}
        for rule, spread in (("product", uncertainty._SPREAD), ("jeffreys", lambda m: np.ones_like(m))):
            with mock.patch.object(uncertainty, "_SPREAD", spread):  # the same splits for both rules
                row[rule] = coverage(k, n, accuracy, args.trials, np.random.default_rng([args.seed, k, n]))
        rows.append(row)
        print(f"K={k:3d} n={n:3d} {accuracy!s:>6}: " + "  ".join(
            f"{rule} " + " ".join(f"{key} {100 * row[rule][key]:.1f}" for key in KEYS)
            for rule in ("product", "jeffreys")), flush=True)
    result = {"trials": args.trials, "level": 0.95, "rows": rows, "seconds": time.perf_counter() - started}
    return finish(result, "group_interval_calibration.py", args.trials, 200, args.json, lambda r: None)


if __name__ == "__main__":
    main()
