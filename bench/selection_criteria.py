"""Which selection criterion picks the best L2 strength of the default ERM grid on small data?

The default probe (``ProbeConfig(loss="ce")``, Adam with the L2 grid ``probe.config.L2_STRENGTHS``) selects its
candidate by validation accuracy, or, where validation holds fewer than 50 images in a class, by 5-fold
cross-validated accuracy (``probe.crossval``). On small data that estimate is noisy, and a candidate with a
stronger penalty than it needs can win by a few images (README, "Fashion-MNIST with the adam default"). This
bench measures, on the shots subsamples of ``bench/shots.py`` (n images per class drawn from train + val of a
full cache, the whole test split), what other criteria would have chosen, from the same fits:

* ``accuracy``: the product's criterion, 5-fold CV accuracy (ties: the first candidate);
* ``log-loss``: 5-fold CV held-out cross-entropy of the true class;
* ``smoothed``: CV accuracy averaged with the neighbouring strengths of the ordered grid;
* ``oracle``: the candidate with the best test accuracy (what no criterion can beat).

Every candidate is fitted on its own (``ProbeTrainer``, the sweep's parameters ``ProbeConfig.trainer_params``,
training seed = subsample seed) on each fold's 4/5, then refitted on the training split ``run_probe`` carves from
the subsample (``probe.splits.carve_validation``) and scored on the test split. The table gives each
criterion's test accuracy minus the accuracy criterion's, mean ± std over the subsamples.

    python bench/selection_criteria.py --features /work/cache/fmnist-full.h5 /work/cache/cifar10-full.h5 \\
        synthetic --shots 10 25 50 100 250 --subsample-seeds 0 1 2 3 4 --threads 1

``synthetic`` is ``bench/probe_speed.py``'s Gaussian set (256-d, 10 classes, a common offset; a 20,000-row pool
and 10,000 test rows). Results: ``--out`` (default ``bench/results/selection_criteria.json``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from probe_speed import synthetic
from shots import load_pool, subsample_per_class

RESULTS = Path(__file__).resolve().parent / "results"
CRITERIA = ("log-loss", "smoothed", "oracle")


def load(features: str):
    """(pool, test, number of classes) of a cache path, or of ``synthetic``."""
    if features == "synthetic":
        data, _ = synthetic(20_000, 0, 10_000, 256, 10, 0)
        return data["train"], data["test"], 10
    from feature_cache import open_cache

    cache = open_cache(features)
    pool, test = load_pool(cache)
    return pool, test, cache.num_classes


def smoothed(values: np.ndarray, width: int = 1) -> np.ndarray:
    """Each entry averaged with its ``width`` neighbours on either side (fewer at the ends)."""
    return np.array([values[max(0, i - width):i + width + 1].mean() for i in range(len(values))])


def cross_validate(x: np.ndarray, y: np.ndarray, config, candidates: list[dict], k: int, seed: int,
                   num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(accuracy, mean held-out log-loss) of each candidate over a stratified k-fold of (x, y)."""
    from probe import ProbeTrainer
    from probe.crossval import stratified_folds

    folds = stratified_folds(y, k, seed)
    correct, nll = np.zeros(len(candidates)), np.zeros(len(candidates))
    for fold in range(k):
        train, held = folds != fold, folds == fold
        for i, candidate in enumerate(candidates):
            model = ProbeTrainer(**config.trainer_params(candidate, seed=seed)).fit(x[train], y[train],
                                                                                      num_classes=num_classes)
            proba = model.predict_proba(x[held])
            correct[i] += (proba.argmax(1) == y[held]).sum()
            nll[i] -= np.log(np.clip(proba[np.arange(held.sum()), y[held]], 1e-12, None)).sum()
    return correct / len(y), nll / len(y)


def one_subsample(pool, test, num_classes: int, n: int, seed: int) -> dict:
    """Every criterion's pick and every candidate's CV and test scores for one subsample."""
    from probe import ProbeConfig, ProbeTrainer
    from probe.splits import carve_validation

    rows = subsample_per_class(pool[1], n, seed)
    x, y = pool[0][rows].astype(np.float32), pool[1][rows]
    config = ProbeConfig(loss="ce", seeds=[seed])
    train, _ = carve_validation(x, y, config.val_fraction, seed)  # run_probe's train split of such a data set
    config = config.resolved(len(train[1]))
    candidates = config.candidates()
    accuracy, log_loss = cross_validate(x, y, config, candidates, 5, seed, num_classes)
    test_accuracy = np.array([ProbeTrainer(**config.trainer_params(c, seed=seed))
                              .fit(*train, num_classes=num_classes).score(*test) for c in candidates])
    picks = {"accuracy": int(np.argmax(accuracy)), "log-loss": int(np.argmin(log_loss)),
             "smoothed": int(np.argmax(smoothed(accuracy))), "oracle": int(np.argmax(test_accuracy))}
    return {"n": n, "seed": seed, "candidates": candidates, "cv_accuracy": accuracy.tolist(),
            "cv_log_loss": log_loss.tolist(), "test": test_accuracy.tolist(), "picks": picks}


def summary(rows: list[dict]) -> list[str]:
    """Markdown rows: per n, the accuracy criterion's test % and each other criterion's difference (points)."""
    lines = []
    for n in sorted({r["n"] for r in rows}):
        at_n = [r for r in rows if r["n"] == n]
        base = np.array([100 * r["test"][r["picks"]["accuracy"]] for r in at_n])
        cells = []
        for criterion in CRITERIA:
            delta = np.array([100 * r["test"][r["picks"][criterion]] for r in at_n]) - base
            cells.append(f"{delta.mean():+.2f} ± {delta.std(ddof=1) if len(delta) > 1 else 0.0:.2f}")
        lines.append(f"| {n} | {len(at_n)} | {base.mean():.2f} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--features", nargs="+", default=["synthetic"], help="cache paths, or synthetic")
    parser.add_argument("--shots", type=int, nargs="+", default=[10, 25, 50, 100, 250])
    parser.add_argument("--subsample-seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=RESULTS / "selection_criteria.json")
    args = parser.parse_args(argv)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    results = {"command": "python bench/selection_criteria.py " + " ".join(argv or sys.argv[1:]), "data": {}}
    for features in args.features:
        pool, test, num_classes = load(features)
        rows = []
        for n in args.shots:
            for seed in args.subsample_seeds:
                start = time.perf_counter()
                rows.append(one_subsample(pool, test, num_classes, n, seed))
                print(f"{features} n={n} seed={seed}: {rows[-1]['picks']} ({time.perf_counter() - start:.0f} s)",
                      file=sys.stderr, flush=True)
        results["data"][features] = rows
        print(f"\n{features}\n\n| n / class | subsamples | accuracy pick, test % | "
              + " | ".join(f"{c} − accuracy" for c in CRITERIA) + " |\n|" + " --- |" * (3 + len(CRITERIA)))
        print("\n".join(summary(rows)), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
