"""What temperature scaling (``ProbeConfig.temperature_scaling``) does to the shipped head's probabilities on real
features, against the same head without it (the named baseline: one run gives both, the report's
``calibration`` with T and ``calibration.temperature_scaling.before`` without).

From a full feature cache: train + val pooled as the training pool, the whole test split as test
(``bench/shots.py``'s ``load_pool`` and nested seeded ``subsample_per_class``). For every n in ``--shots`` and
every subsample seed, ERM (``loss="ce"``, the default sweep, one training seed equal to the subsample seed) is
trained on n images per class with validation carved from them as the product does for any data set
(``val_fraction``), and T fitted on that validation. Kept per run: n, T (applied or not), the validation images,
the test accuracy, ECE (and its interval) and NLL on test with and without T.

Results go to ``bench/results/temperature_<name>.json`` after every run (resumable); the Markdown table is
printed at the end and in bench/README.md ("Temperature scaling").

    python bench/temperature_scaling.py --features /work/cache/cifar10-full.h5 --name cifar10 \\
        --shots 10 50 250 1000 --subsample-seeds 0 1 2 --threads 1
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from disparity import RESULTS_DIR  # bench/, this script's folder
from shots import load_pool, n_key, parse_n, subsample_per_class


def run_one(pool: tuple, test: tuple, class_names: list[str], n: int | None, seed: int) -> dict:
    """One subsample's ERM run with temperature scaling: what the calibration reads with T and without."""
    from probe import ProbeConfig, run_probe

    rows = subsample_per_class(pool[1], n, seed)
    data = {"train": (pool[0][rows], pool[1][rows]), "test": test}
    start = time.perf_counter()
    report = run_probe(data, class_names, ProbeConfig(loss="ce", seeds=[seed], temperature_scaling=True))
    cal = report.calibration
    scaled = cal.temperature_scaling
    before = scaled.before if scaled.before is not None else cal  # not applied: the figures are the unscaled ones
    return {"n": n_key(n), "seed": seed, "seconds": round(time.perf_counter() - start, 1),
            "temperature": scaled.fitted, "applied": scaled.applied, "val_images": scaled.val_images,
            "accuracy": cal.accuracy,
            "ece_before": before.ece, "ece_before_ci": before.ece_ci, "nll_before": before.nll,
            "confidence_before": before.confidence,
            "ece_after": cal.ece, "ece_after_ci": cal.ece_ci, "nll_after": cal.nll, "confidence_after": cal.confidence,
            # with T minus without, and the paired interval (none where T was not applied)
            **{key: getattr(scaled.before, key, None) if scaled.before is not None else None
               for key in ("ece_delta", "ece_delta_ci", "nll_delta", "nll_delta_ci")}}


def markdown_table(runs: list[dict]) -> str:
    """Per n: the runs, T's range, and the mean (min..max) of ECE and NLL without and with T, in points / nats."""
    lines = ["| n / class | runs | T fitted (applied) | accuracy | ECE without T | ECE with T | NLL without T | NLL with T |",
             "|---|---|---|---|---|---|---|---|"]
    for key in dict.fromkeys(r["n"] for r in runs):
        these = [r for r in runs if r["n"] == key]

        def span(name: str, scale: float = 100.0, digits: int = 2) -> str:
            values = np.array([r[name] for r in these]) * scale
            return f"{values.mean():.{digits}f} ({values.min():.{digits}f}..{values.max():.{digits}f})"

        temps = [r["temperature"] for r in these]
        lines.append(f"| {key} | {len(these)} | {min(temps):.2f}..{max(temps):.2f} "
                     f"({sum(r['applied'] for r in these)}/{len(these)}) | {span('accuracy')} | {span('ece_before')} "
                     f"| {span('ece_after')} | {span('nll_before', 1, 3)} | {span('nll_after', 1, 3)} |")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", required=True, help="a full feature cache (train, val, test)")
    parser.add_argument("--name", required=True, help="results go to bench/results/temperature_<name>.json")
    parser.add_argument("--shots", nargs="+", type=parse_n, default=[10, 50, 250, 1000],
                        help="images per class (or 'all')")
    parser.add_argument("--subsample-seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    from feature_cache import open_cache

    torch.set_num_threads(args.threads)
    cache = open_cache(args.features)
    pool, test = load_pool(cache)
    path = RESULTS_DIR / f"temperature_{args.name}.json"
    result = json.loads(path.read_text()) if path.exists() else {
        "features": str(args.features), "command": "python bench/temperature_scaling.py " + " ".join(argv), "runs": []}
    done = {(r["n"], r["seed"]) for r in result["runs"]}
    for n in args.shots:
        for seed in args.subsample_seeds:
            if (n_key(n), seed) in done:
                continue
            result["runs"].append(run_one(pool, test, list(cache.class_names), n, seed))
            print(json.dumps(result["runs"][-1]), flush=True)
            path.write_text(json.dumps(result, indent=1))
    print(markdown_table(result["runs"]))
    print(effect_counts(result["runs"]))
    return 0


def effect_counts(runs: list[dict]) -> str:
    """How many runs' paired intervals put the ECE and NLL change below 0, above 0, or around it."""
    parts = []
    for key in ("ece", "nll"):
        cis = [r[f"{key}_delta_ci"] for r in runs if r.get(f"{key}_delta_ci")]
        down, up = sum(hi < 0 for lo, hi in cis), sum(lo > 0 for lo, hi in cis)
        parts.append(f"{key.upper()}: lower beyond noise in {down}, higher in {up}, within noise in "
                     f"{len(cis) - down - up} of {len(cis)} applied")
    return "; ".join(parts)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
