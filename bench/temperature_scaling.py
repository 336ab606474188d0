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
import contextlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from disparity import RESULTS_DIR  # bench/, this script's folder
from shots import load_pool, mean_span, n_key, parse_n, subsample_per_class


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """(n,): the fold of each image, each class's images shuffled (seeded) and dealt round the folds in turn from
    where the previous class stopped, so folds differ in size by at most one image and in any class by at most one."""
    rng = np.random.default_rng([seed, 17])
    fold, dealt = np.empty(len(labels), dtype=np.int64), 0
    for k in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == k))
        fold[rows] = (dealt + np.arange(rows.size)) % folds
        dealt += rows.size
    return fold


def heldout_temperature_effect(val_logits: np.ndarray, val_labels: np.ndarray, num_classes: int, *,
                               folds: int = 5, seed: int = 0, level: float = 0.95) -> dict:
    """What temperature scaling does to images it was not fitted on, read on validation alone: the images are dealt
    into ``folds`` stratified folds; each fold's T is fitted on the others as ``probe.calibration.temperature_fit`` fits one (1
    where the fit lies on a bound) and each image's NLL with its fold's T minus without. Returns ``cv_nll_delta``,
    the mean of those differences, and ``cv_nll_delta_ci`` its basic bootstrap interval (stratified resamples of the
    validation images), and ``folds`` (fewer where there are fewer images). Measured as a candidate rule ("apply T
    only where it lowered the held-out NLL"), not shipped: it did not tell the temperatures that hurt on test from
    those that helped (README, "Calibrated probabilities")."""
    from probe.calibration import _basic_interval, fit_temperature, true_class_terms
    from probe.uncertainty import Bootstrap, snap_zero

    logits, labels = np.asarray(val_logits), np.asarray(val_labels, dtype=np.int64)
    folds = max(1, min(folds, len(labels)))
    fold = stratified_folds(labels, folds, seed)
    delta = np.zeros(len(labels))
    for f in range(folds):
        held, rest = fold == f, fold != f
        if not held.any() or not rest.any():
            continue
        fitted, at_bound = fit_temperature(logits[rest], labels[rest])
        if not at_bound:
            z = np.asarray(logits[held], dtype=np.float64)
            delta[held] = true_class_terms(z / fitted, labels[held])[0] - true_class_terms(z, labels[held])[0]
    boot = Bootstrap(labels, num_classes, seed=seed)
    resampled = boot.bin_sums(delta, np.zeros(delta.size, dtype=np.int64), 1)[:, 0] / max(delta.size, 1)
    mean = float(delta.mean()) if delta.size else 0.0
    lo, hi = _basic_interval(mean, resampled, level)
    return {"cv_nll_delta": float(snap_zero(mean)), "cv_nll_delta_ci": [float(lo), float(hi)], "folds": folds}


@contextlib.contextmanager
def heldout_recorded(into: dict):
    """While open, every temperature ``probe.run`` fits also records :func:`heldout_temperature_effect` of the same
    validation logits into ``into`` (run_probe keeps them to itself)."""
    import probe.run as run_module

    fit = run_module.temperature_fit

    def fit_and_check(val_logits: np.ndarray, val_labels: np.ndarray) -> dict:
        into.update(heldout_temperature_effect(val_logits, val_labels, int(np.max(val_labels)) + 1))
        return fit(val_logits, val_labels)

    run_module.temperature_fit = fit_and_check
    try:
        yield into
    finally:
        run_module.temperature_fit = fit


def run_one(pool: tuple, test: tuple, class_names: list[str], n: int | None, seed: int, heldout: bool = False
            ) -> dict:
    """One subsample's ERM run with temperature scaling: what the calibration reads with T and without."""
    from probe import ProbeConfig, run_probe

    rows = subsample_per_class(pool[1], n, seed)
    data = {"train": (pool[0][rows], pool[1][rows]), "test": test}
    start, checked = time.perf_counter(), {}
    with heldout_recorded(checked) if heldout else contextlib.nullcontext():
        report = run_probe(data, class_names, ProbeConfig(loss="ce", seeds=[seed], temperature_scaling=True),
                           tune_allocator=True)
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
               for key in ("ece_delta", "ece_delta_ci", "nll_delta", "nll_delta_ci")},
            # the report's warning that T made the test figures worse beyond noise (probe.calibration.temperature_warning)
            "warned": any(w.startswith("Temperature scaling made") for w in report.warnings), **checked}


def markdown_table(runs: list[dict]) -> str:
    """Per n: the runs, T's range, and the mean (min..max) of ECE and NLL without and with T, in points / nats."""
    lines = ["| n / class | runs | T fitted (applied) | accuracy | ECE without T | ECE with T | NLL without T | NLL with T |",
             "|---|---|---|---|---|---|---|---|"]
    for key in dict.fromkeys(r["n"] for r in runs):
        these = [r for r in runs if r["n"] == key]

        def span(name: str, scale: float = 100.0, digits: int = 2) -> str:
            return mean_span(np.array([r[name] for r in these]) * scale, f".{digits}f")

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
    parser.add_argument("--heldout", action="store_true", help="also record the held-out check of each T on "
                        "folds of its validation images (heldout_temperature_effect), a candidate rule not shipped")
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
            result["runs"].append(run_one(pool, test, list(cache.class_names), n, seed,
                                               args.heldout))
            print(json.dumps(result["runs"][-1]), flush=True)
            path.write_text(json.dumps(result, indent=1))
    print(markdown_table(result["runs"]))
    print(effect_counts(result["runs"]))
    if any("cv_nll_delta" in r for r in result["runs"]):
        print(heldout_counts(result["runs"]))
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


def heldout_counts(runs: list[dict]) -> str:
    """What the rule "apply T only where it lowered the held-out validation NLL" (``--heldout``) would have done to
    the applied runs, against their measured test effect: of those it keeps, how many hurt on test beyond noise
    (ECE or NLL interval above 0); of those it declines, how many helped beyond noise (either below 0)."""
    checked = [r for r in runs if r.get("cv_nll_delta") is not None and r.get("ece_delta_ci")]

    def beyond(r: dict, above: bool) -> bool:
        return any((lo > 0) if above else (hi < 0) for lo, hi in (r["ece_delta_ci"], r["nll_delta_ci"]))

    kept = [r for r in checked if r["cv_nll_delta"] < 0]
    declined = [r for r in checked if r["cv_nll_delta"] >= 0]
    return (f"held-out rule: keeps {len(kept)} of {len(checked)} applied, {sum(beyond(r, True) for r in kept)} of "
            f"them worse on test beyond noise; declines {len(declined)}, {sum(beyond(r, False) for r in declined)} "
            f"of them better on test beyond noise (of {sum(beyond(r, True) for r in checked)} worse and "
            f"{sum(beyond(r, False) for r in checked)} better in all)")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
