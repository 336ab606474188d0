"""How often the product's 95 % intervals hold, by simulation, at the sizes users bring.

Two questions, each against a named baseline in the same run:

* **One class's test accuracy** (the report's per-class ``accuracy_ci``): the coverage of the true accuracy p by
  the Wilson score interval (``probe.uncertainty.class_accuracy_interval``, the product's since stop 44,
  continuity-corrected under 30 images since a later round; the plain interval's figures are in bench/README.md)
  and by the stratified bootstrap's percentile interval it replaced (``Bootstrap.class_accuracy`` +
  ``percentile_interval``), for n test images of the class and a true accuracy p. Each trial is one class: n
  Bernoulli(p) outcomes. The bootstrap's trials are the classes of one stratified
  :class:`probe.uncertainty.Bootstrap`, so the R trials of a cell cost one call.
* **A paired difference with no true difference** (the verdicts' and ``mr2probe compare``'s "within noise"):
  how often the paired stratified bootstrap interval (``Bootstrap.paired_delta``, 1,000 resamples; its means over
  classes widened by their small classes' ``small_class_variance``) of the overall and the hard-third difference
  excludes 0 when two runs differ only by chance: each sample is scored
  right/wrong (right with probability 0.7), a fraction q of the samples is discordant (scored the other way
  by the second scoring), and which run gets which scoring is a coin flip per sample (both runs then have the
  same expected accuracy, 0.7 − 0.2·q). A hard-third gain is claimed
  when the interval's lower end is above 0, nominally 2.5 % of such splits (``claims_gain``).
* **One class's paired difference** (``mr2probe compare``'s per-class ``delta_ci``): the coverage of the true
  difference of two runs' accuracies on a class of n images by the product's interval
  (``Bootstrap.paired_intervals``: Newcombe's paired score interval below ``SMALL_CLASS_IMAGES``, since stop 67,
  and below ``FEW_CHANGED_IMAGES`` images the two runs score differently, since a decision round)
  and by the bootstrap's percentile interval it replaced there. Each image is right in both runs, only in the
  first, only in the second, or in neither, with the probabilities of a case (``DIFFERENCE_CASES``).

Results go to ``bench/results/interval_calibration.json``; bench/README.md ("Interval calibration") has the table.

Usage::

    python bench/interval_calibration.py                  # ~5-9 min on 2 cores
    python bench/interval_calibration.py --trials 200     # quicker, noisier
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from probe.uncertainty import Bootstrap, class_accuracy_interval, percentile_interval

RESULTS = Path(__file__).resolve().parent / "results"
CLASS_SIZES = (1, 3, 5, 10, 30, 100, 1000)
ACCURACIES = (0.5, 0.8, 0.95)
# (classes K, images per class n_k, discordant fraction q) of the paired cases
PAIRED_CASES = ((6, 3, 0.2), (6, 5, 0.2), (10, 10, 0.1), (10, 10, 0.2), (10, 30, 0.1), (10, 100, 0.05),
                (100, 5, 0.1), (30, 3, 0.2), (100, 3, 0.2),  # these two: a statistics review (stop 55)
                (120, 1, 0.1))  # classes of one image, resampled together (each was itself in every resample)
DIFFERENCE_SIZES = (2, 3, 5, 10, 30, 100)
# (right in both, only in the first, only in the second): the true difference is the second minus the third
DIFFERENCE_CASES = ((0.75, 0.05, 0.05), (0.6, 0.2, 0.0), (0.65, 0.15, 0.05), (0.8, 0.1, 0.0))


def class_coverage(n: int, p: float, trials: int, rng: np.random.Generator, resamples: int) -> dict:
    """Coverage of p by the Wilson and the bootstrap percentile interval over ``trials`` classes of n images."""
    labels = np.repeat(np.arange(trials), n)
    correct = (rng.random(labels.size) < p).astype(np.float64)
    wilson = class_accuracy_interval(correct, labels, trials)
    boot = percentile_interval(Bootstrap(labels, trials, n_resamples=resamples,
                                         seed=int(rng.integers(1 << 31))).class_accuracy(correct)).T
    out = {"n": n, "p": p, "trials": trials}
    for name, ci in (("wilson", wilson), ("bootstrap", boot)):
        out[f"{name}_coverage"] = float(np.mean((ci[:, 0] <= p) & (p <= ci[:, 1])))
        out[f"{name}_mean_width"] = float(np.mean(ci[:, 1] - ci[:, 0]))
    return out


def null_pair(k: int, n_k: int, q: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, correct of run A, correct of run B) of two runs that differ only by chance (module docstring)."""
    labels = np.repeat(np.arange(k), n_k)
    first = (rng.random(labels.size) < 0.7).astype(np.float64)
    second = np.where(rng.random(labels.size) < q, 1.0 - first, first)
    swap = rng.random(labels.size) < 0.5
    return labels, np.where(swap, second, first), np.where(swap, first, second)


def paired_false_rates(k: int, n_k: int, q: float, trials: int, rng: np.random.Generator, resamples: int) -> dict:
    """How often the paired interval of the overall and the hard-third difference excludes 0 under no difference."""
    thirds = {"easy": list(range(k // 3)), "medium": list(range(k // 3, k - k // 3)),
              "hard": list(range(k - k // 3, k))}
    excludes = {"overall": 0, "hard": 0}
    gains = 0
    for _ in range(trials):
        labels, a, b = null_pair(k, n_k, q, rng)
        delta = Bootstrap(labels, k, n_resamples=resamples,
                          seed=int(rng.integers(1 << 31))).paired_delta(a, b, thirds)
        for key in excludes:
            excludes[key] += delta[key]["lo"] > 0 or delta[key]["hi"] < 0
        gains += delta["hard"]["lo"] > 0
    return {"classes": k, "per_class": n_k, "discordant": q, "trials": trials,
            "excludes_0_overall": excludes["overall"] / trials, "excludes_0_hard": excludes["hard"] / trials,
            "claims_gain": gains / trials}


def difference_coverage(n: int, case: tuple, trials: int, rng: np.random.Generator, resamples: int) -> dict:
    """Coverage of a class's true paired difference by the product's and the percentile interval, over ``trials``
    classes of n images each (one :class:`Bootstrap` of all of them: its strata are the classes)."""
    both, first, second = case
    labels = np.repeat(np.arange(trials), n)
    u = rng.random(labels.size)
    a = (u < both + first).astype(np.float64)
    b = ((u < both) | ((u >= both + first) & (u < both + first + second))).astype(np.float64)
    boot = Bootstrap(labels, trials, n_resamples=resamples, seed=int(rng.integers(1 << 31)))
    _, product = boot.paired_intervals(a, b)
    percentile = percentile_interval(boot.class_accuracy(a) - boot.class_accuracy(b)).T
    truth = first - second
    out = {"n": n, "both": both, "first_only": first, "second_only": second, "trials": trials}
    for name, ci in (("product", product), ("percentile", percentile)):
        out[f"{name}_coverage"] = float(np.mean((ci[:, 0] <= truth + 1e-12) & (truth - 1e-12 <= ci[:, 1])))
        out[f"{name}_mean_width"] = float(np.mean(ci[:, 1] - ci[:, 0]))
    return out


def run(trials: int, paired_trials: int, resamples: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    classes = [class_coverage(n, p, trials, rng, resamples) for n in CLASS_SIZES for p in ACCURACIES]
    paired = [paired_false_rates(k, n_k, q, paired_trials, rng, resamples) for k, n_k, q in PAIRED_CASES]
    differences = [difference_coverage(n, case, trials, rng, resamples) for n in DIFFERENCE_SIZES
                   for case in DIFFERENCE_CASES]
    return {"level": 0.95, "resamples": resamples, "seed": seed, "class_accuracy": classes, "paired_null": paired,
            "class_difference": differences, "seconds": time.perf_counter() - start}


def print_result(result: dict) -> None:
    print("one class's accuracy: coverage of the true p by the 95 % interval (mean width, points)")
    print(f"{'n':>5} {'p':>5} {'Wilson':>16} {'bootstrap':>16}")
    for row in result["class_accuracy"]:
        print(f"{row['n']:>5} {row['p']:>5} {row['wilson_coverage']:>8.3f} ({100 * row['wilson_mean_width']:4.1f})"
              f" {row['bootstrap_coverage']:>8.3f} ({100 * row['bootstrap_mean_width']:4.1f})")
    print("no true difference: how often the paired 95 % interval excludes 0 (nominal 0.05; a claimed hard gain 0.025)")
    print(f"{'K':>4} {'n_k':>4} {'q':>5} {'overall':>8} {'hard':>6} {'gain':>6}")
    for row in result["paired_null"]:
        print(f"{row['classes']:>4} {row['per_class']:>4} {row['discordant']:>5} {row['excludes_0_overall']:>8.3f}"
              f" {row['excludes_0_hard']:>6.3f} {row['claims_gain']:>6.3f}")
    print("one class's paired difference: coverage of the true difference (mean width, points)")
    print(f"{'n':>5} {'both':>5} {'first':>6} {'second':>6} {'product':>16} {'percentile':>16}")
    for row in result.get("class_difference", []):
        print(f"{row['n']:>5} {row['both']:>5} {row['first_only']:>6} {row['second_only']:>6}"
              f" {row['product_coverage']:>8.3f} ({100 * row['product_mean_width']:5.1f})"
              f" {row['percentile_coverage']:>8.3f} ({100 * row['percentile_mean_width']:5.1f})")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=2000, help="classes per (n, p) cell (default 2000)")
    parser.add_argument("--paired-trials", type=int, default=1000, help="splits per paired case (default 1000)")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (the product's 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=str(RESULTS / "interval_calibration.json"), help="where to write")
    args = parser.parse_args(argv)
    result = run(args.trials, args.paired_trials, args.resamples, args.seed)
    return finish(result, "interval_calibration.py", args.trials, 2000, args.json, print_result)


def finish(result: dict, script: str, trials: int, default_trials: int, path: str, show) -> dict:
    """A simulation bench's end (this one's and bench/decision_calibration.py's): the command in ``result``, the
    table (``show(result)``), the JSON file written."""
    result["command"] = f"python bench/{script}" + (f" --trials {trials}" if trials != default_trials else "")
    show(result)
    Path(path).write_text(json.dumps(result, indent=1) + "\n")
    print(f"written to {path} ({result['seconds']:.0f} s)")
    return result


if __name__ == "__main__":
    main()
