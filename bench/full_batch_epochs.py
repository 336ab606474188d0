"""The automatic epoch count of a full-batch fit (``probe.config.auto_epochs``): 450 epochs (450 optimiser steps,
as the mini-batch fits above ``AUTO_FULL_BATCH_ROWS`` get) against the 100 it gave before (the named baseline, run
as ``epochs=100`` in the same process on the same subsample).

A new-user round on scikit-learn's digits (bench/digits_images.py) found the 100 full-batch steps too few: the
probe ended 4.5 points under the same probe at 1,000 epochs. This measures what 450 does there and on the sets
the defaults were tuned on (CIFAR-10, Fashion-MNIST), at the sizes that train full batch: from each cache, train +
val pooled, n images per class drawn (``bench/shots.py``'s ``subsample_per_class``; ``all``: the whole pool) and
given to ``probe.run_probe`` with its defaults otherwise (validation carved, cross-validation where it is small,
one training seed = the subsample seed); the whole test split scores. Kept per run: test accuracy, balanced
accuracy, the worst class, the epochs and the seconds.

    python bench/full_batch_epochs.py --features /work/cache/cifar10-full.h5 --name cifar10 --shots 10 30 100 300
    python bench/full_batch_epochs.py --features /work/cache/digits.h5 --name digits --shots all
    python bench/full_batch_epochs.py --summary        # the table of every bench/results/full_batch_epochs_*.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from disparity import RESULTS_DIR  # bench/, this script's folder
from shots import load_pool, mean_span, n_key, parse_n, subsample_per_class

BASELINE_EPOCHS = 100  # auto_epochs' count for a full-batch fit before stop 63
LOSSES = ("ce", "mr2")


def run_one(data: dict, class_names: list[str], loss: str, epochs: int | None, seed: int) -> dict:
    """One run's test figures (fractions) and cost."""
    from probe import ProbeConfig, run_probe

    start = time.perf_counter()
    report = run_probe(data, class_names, ProbeConfig(loss=loss, seeds=[seed], epochs=epochs), tune_allocator=True)
    return {"epochs": report.config["epochs"], "batch_size": report.config["batch_size"],
            "seconds": round(time.perf_counter() - start, 2), "overall": report.summary.overall,
            "balanced": report.summary.balanced, "worst": min(row.accuracy for row in report.per_class)}


def summary_table(results: dict[str, dict]) -> str:
    """Per data set, n and loss: mean test accuracy (and worst class) at 100 epochs and at the automatic count,
    the mean difference with its min..max over subsamples, in points, and the mean seconds of each."""
    lines = ["| data, n / class | loss | runs | epochs | accuracy at 100 | at auto | auto − 100 (min..max) | "
             "worst class at 100 → auto | seconds 100 → auto |", "|---|---|---|---|---|---|---|---|---|"]
    for name, result in results.items():
        runs = result["runs"]
        for key in dict.fromkeys((r["n"], r["loss"]) for r in runs):
            these = [r for r in runs if (r["n"], r["loss"]) == key]
            base = np.array([r["baseline"]["overall"] for r in these]) * 100
            auto = np.array([r["auto"]["overall"] for r in these]) * 100
            worst = [np.mean([r[side]["worst"] for r in these]) * 100 for side in ("baseline", "auto")]
            secs = [np.mean([r[side]["seconds"] for r in these]) for side in ("baseline", "auto")]
            lines.append(f"| {name}, {key[0]} | {key[1]} | {len(these)} | {these[0]['auto']['epochs']} | "
                         f"{base.mean():.2f} | {auto.mean():.2f} | {mean_span(auto - base, '+.2f')} | "
                         f"{worst[0]:.1f} → {worst[1]:.1f} | {secs[0]:.1f} → {secs[1]:.1f} |")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", help="a feature cache (train, val, test)")
    parser.add_argument("--name", help="results go to bench/results/full_batch_epochs_<name>.json")
    parser.add_argument("--shots", nargs="+", type=parse_n, default=[10, 30, 100, 300],
                        help="images per class (or 'all'); full batch up to AUTO_FULL_BATCH_ROWS training rows")
    parser.add_argument("--subsample-seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--losses", nargs="+", default=list(LOSSES))
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads")
    parser.add_argument("--summary", action="store_true", help="print the table of every results file and stop")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.summary:
        print(summary_table({p.stem.removeprefix("full_batch_epochs_"): json.loads(p.read_text())
                             for p in sorted(RESULTS_DIR.glob("full_batch_epochs_*.json"))}))
        return 0
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    from feature_cache import open_cache

    torch.set_num_threads(args.threads)
    cache = open_cache(args.features)
    (x, y), test = load_pool(cache)
    path = RESULTS_DIR / f"full_batch_epochs_{args.name}.json"
    result = json.loads(path.read_text()) if path.exists() else {
        "features": str(args.features), "command": "python bench/full_batch_epochs.py " + " ".join(argv), "runs": []}
    done = {(r["n"], r["loss"], r["seed"]) for r in result["runs"]}
    for n in args.shots:
        for seed in args.subsample_seeds:
            rows = subsample_per_class(y, n, seed)
            data = {"train": (x[rows], y[rows]), "test": test}
            for loss in args.losses:
                if (n_key(n), loss, seed) in done:
                    continue
                entry = {"n": n_key(n), "loss": loss, "seed": seed, "train_rows": int(rows.size),
                         **{side: run_one(data, list(cache.class_names), loss, epochs, seed)
                            for side, epochs in (("baseline", BASELINE_EPOCHS), ("auto", None))}}
                result["runs"].append(entry)
                print(json.dumps(entry), flush=True)
                path.write_text(json.dumps(result, indent=1))
    print(summary_table({args.name: result}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
