"""How often the report's ECE interval covers the true ECE, by simulation: the product's basic (bias-correcting)
bootstrap interval beside the percentile interval it replaced (stop 53), in the same trials; and how often each
rule calls a head miscalibrated: the calibration test (``calibrated_p`` < 0.05, consistency resampling, stop 54)
beside reading the interval (its lower end above 0), which a statistics review found calls a calibrated head
miscalibrated on a third to a half of small test sets.

Each trial draws n test images of K = 10 classes: a top-1 confidence c ~ Beta(6, 1.5) clipped to [0.15, 0.999],
right with probability c − shift (shift 0: perfectly calibrated), logits whose softmax top-1 is c. The true ECE
is the population's binned ECE (15 bins) from 2,000,000 draws. ``probe.calibration.calibration_summary`` gives the
plug-in ECE, ``ece_debiased`` and ``ece_ci``; the baseline is the 2.5 / 97.5 % percentiles of the same resampled
ECEs (``Bootstrap.bin_sums``, the same seed).

Results go to ``bench/results/ece_calibration.json``; bench/README.md ("ECE calibration") has the table.

Usage::

    python bench/ece_calibration.py              # ~4 min on 2 cores
    python bench/ece_calibration.py --trials 30
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from interval_calibration import finish  # bench/, this script's folder
from probe.calibration import CALIBRATION_BINS, calibration_summary, confidence_bins
from probe.metrics import softmax
from probe.uncertainty import Bootstrap, percentile_interval

RESULTS = Path(__file__).resolve().parent / "results"
K = 10


def draw(rng: np.random.Generator, n: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    c = np.clip(rng.beta(6, 1.5, n), 0.15, 0.999)
    right = rng.random(n) < np.clip(c - shift, 0, 1)
    top = rng.integers(0, K, n)
    labels = np.where(right, top, (top + rng.integers(1, K, n)) % K)
    logits = np.tile(np.log((1 - c) / (K - 1))[:, None], (1, K))
    logits[np.arange(n), top] = np.log(c)
    return logits, labels


def true_ece(rng: np.random.Generator, shift: float, m: int = 2_000_000) -> float:
    c = np.clip(rng.beta(6, 1.5, m), 0.15, 0.999)
    gap = np.bincount(confidence_bins(c), c - np.clip(c - shift, 0, 1), CALIBRATION_BINS)
    return float(np.abs(gap).sum() / m)


def percentile_baseline(logits: np.ndarray, labels: np.ndarray, seed: int) -> tuple[float, float]:
    """The interval before stop 53: percentiles of the resampled plug-in ECEs."""
    confidence = softmax(logits).max(axis=1)
    gaps = confidence - (logits.argmax(axis=1) == labels)
    sums = Bootstrap(labels, K, seed=seed).bin_sums(gaps, confidence_bins(confidence), CALIBRATION_BINS)
    lo, hi = percentile_interval(np.abs(sums).sum(axis=1) / labels.size)
    return float(lo), float(hi)


def run(trials: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    start, rows = time.perf_counter(), []
    for shift in (0.0, 0.03, 0.08):
        truth = true_ece(rng, shift)
        for n in (30, 60, 200, 1000, 5000):
            reps = trials if n < 5000 else max(trials // 3, 1)
            product = before = tested = read = 0
            plug, debiased = [], []
            for r in range(reps):
                logits, labels = draw(rng, n, shift)
                s = calibration_summary([logits], labels, K, seed=r)
                product += s["ece_ci"][0] <= truth <= s["ece_ci"][1]
                lo, hi = percentile_baseline(logits, labels, r)
                before += lo <= truth <= hi
                tested += s["calibrated_p"] < 0.05
                read += s["ece_ci"][0] > 0
                plug.append(s["ece"])
                debiased.append(s["ece_debiased"])
            rows.append({"true_ece": truth, "images": n, "trials": reps, "percentile_coverage": before / reps,
                         "product_coverage": product / reps, "mean_plug_in": float(np.mean(plug)),
                         "mean_debiased": float(np.mean(debiased)), "test_says_miscalibrated": tested / reps,
                         "interval_says_miscalibrated": read / reps})
    return {"rows": rows, "seed": seed, "seconds": time.perf_counter() - start}


def print_result(result: dict) -> None:
    print("coverage of the true ECE by the 95 % interval (nominal 0.95)")
    print("and how often a rule says 'miscalibrated': the test (calibrated_p < 0.05), the interval (lower end > 0)")
    print(f"{'true ECE':>8} {'images':>6} {'percentile':>10} {'product':>8} {'plug-in':>8} {'debiased':>8} "
          f"{'test':>6} {'interval':>8}")
    for r in result["rows"]:
        print(f"{100 * r['true_ece']:>7.2f}% {r['images']:>6} {r['percentile_coverage']:>10.3f} "
              f"{r['product_coverage']:>8.3f} {100 * r['mean_plug_in']:>7.2f}% {100 * r['mean_debiased']:>7.2f}% "
              f"{r['test_says_miscalibrated']:>6.3f} {r['interval_says_miscalibrated']:>8.3f}")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=100, help="simulated test splits per row (a third at 5,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=str(RESULTS / "ece_calibration.json"), help="where to write")
    args = parser.parse_args(argv)
    return finish(run(args.trials, args.seed), "ece_calibration.py", args.trials, 100, args.json, print_result)


if __name__ == "__main__":
    main()
