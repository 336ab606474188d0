"""Wrong training labels: `mr2probe label-issues` (out of fold) against the in-sample ranking, on caches with known
flips.

For each noisy cache NAME (``DATA/NAME.h5`` with its flip record ``DATA/NAME.flips.npz``: ``train_flipped`` and
``val_flipped``, one boolean per cache row, as bench/noisy_labels.py writes them) it trains an ERM run
(``mr2probe train --head linear --loss ce``) into ``RUNS/NAME`` unless one is there, then ranks the run's train +
val images three ways, all ranked by the same rule (``probe.label_issue_predictions(...).failures``: lowest
probability of their label first):

- out of fold: ``mr2probe label-issues RUN --json --limit 100000 [--folds K]`` (the images predicted otherwise than
  labelled, ``--method predicted-neq-given``);
- confident learning: the same with ``--method confident-learning`` (cleanlab's prune_by_noise_rate filter on the
  same out-of-fold probabilities: the same folds and fits, so a subset of the first listing);
- in sample (the baseline): ``mr2probe predict RUN --features NAME.h5 --split train|val --probabilities --out CSV``,
  the run's own probe on the images it trained (and selected) on.

and prints precision@k against the flipped rows, k = the number of flips and smaller, with how many images each
lists. Every figure comes from the CLI as a user runs it (subprocesses); nothing is timed for an assertion.

    PYTHONPATH=. .venv/bin/python bench/label_issues.py --data DATA --runs RUNS \\
        --names fm-u10 fm-shirt40 c300-u30 --out bench/results/label_issues.json
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


ROOT = Path(__file__).resolve().parents[1]  # this source tree's app, whatever is installed


def cli(*args: str) -> str:
    """``python -m app ARGS`` of this source tree in this interpreter; its stdout (stderr, the log, dropped unless it
    fails)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "app", "--threads", "1", *args], capture_output=True, text=True,
                          env=env)
    if done.returncode != 0:
        raise SystemExit(f"mr2probe {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def flipped_places(record: Path) -> set[tuple[str, int]]:
    with np.load(record) as flips:
        return {(split, int(row)) for split in ("train", "val") for row in np.flatnonzero(flips[f"{split}_flipped"])}


METHODS = {"out_of_fold": "predicted-neq-given", "confident_learning": "confident-learning"}  # way: --method
WAYS = (*METHODS, "in_sample")


def out_of_fold(run: Path, folds: int, method: str = METHODS["out_of_fold"]) -> list[tuple[str, int, str]]:
    """(split, row, given label) of the images label-issues lists with ``--method method``, in its order."""
    rows = json.loads(cli("label-issues", str(run), "--json", "--limit", "100000", "--folds", str(folds),
                          "--method", method))
    return [(row["split"], row["row"], row["true"]) for row in rows]


def in_sample(run: Path, cache: Path) -> list[tuple[str, int, str]]:
    """The run's probe on its own train and val images, ranked as label-issues ranks (the same function)."""
    from probe import label_issue_predictions
    from probe.numbers import csv_text

    places, probabilities, labels = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for split in ("train", "val"):
            out = Path(tmp) / f"{split}.csv"
            cli("predict", str(run), "--features", str(cache), "--split", split, "--probabilities", "--out", str(out))
            with out.open(newline="", encoding="utf-8") as f:  # UTF-8 whatever the locale, as predict writes it
                reader = csv.reader(f)
                header = next(reader)
                names = [csv_text(column)[2:-1] for column in header[6:]]  # p(<class>)
                for row in reader:
                    given = csv_text(row[2])  # a class name starting like a formula was written with a "'" before it
                    places.append((split, int(row[0]), given))
                    labels.append(names.index(given))
                    probabilities.append([float(v) for v in row[6:]])
    ranked = label_issue_predictions(np.array(probabilities), np.array(labels)).failures(None)
    return [places[i] for i in ranked]


def precision_at(ranked: list[tuple], flips: set, k: int) -> float:
    """Flipped images among the first k listed, over k (a list shorter than k counts the rest as misses)."""
    return sum(place[:2] in flips for place in ranked[:k]) / k


def flipped_into(cache: Path, flips: set) -> str | None:
    """The class most flips are labelled as now, when it holds at least half of them (a systematic flip: the
    listing of that class, label-issues --class, is measured too); None for flips spread over the classes."""
    from feature_cache import open_cache

    c = open_cache(cache)
    labels = {split: c.labels(split) for split in ("train", "val")}
    counts = np.bincount([labels[split][row] for split, row in flips], minlength=c.num_classes)
    return c.class_names[int(counts.argmax())] if counts.max() * 2 >= len(flips) else None


def scores(rankings: dict[str, list], flips: set) -> dict:
    ks = sorted({len(flips), len(flips) // 2, len(flips) // 4, min(50, len(flips))}, reverse=True)
    return {"flips": len(flips), "listed": {way: len(ranked) for way, ranked in rankings.items()},
            "recall_of_list": {way: sum(p[:2] in flips for p in ranked) / len(flips) for way, ranked in rankings.items()},
            "precision_of_list": {way: sum(p[:2] in flips for p in ranked) / max(len(ranked), 1)
                                  for way, ranked in rankings.items()},
            "precision_at": {str(k): {way: precision_at(ranked, flips, k) for way, ranked in rankings.items()}
                             for k in ks if k > 0}}


def measure(name: str, data: Path, runs: Path, folds: int) -> list[dict]:
    cache, run = data / f"{name}.h5", runs / name
    if not (run / "report.json").is_file():
        cli("train", "--features", str(cache), "--head", "linear", "--loss", "ce", "--out", str(run), "--no-progress")
    flips = flipped_places(data / f"{name}.flips.npz")
    rankings, seconds = {}, {}
    for way, method in METHODS.items():
        start = time.perf_counter()
        rankings[way] = out_of_fold(run, folds, method)
        seconds[way] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    rankings["in_sample"] = in_sample(run, cache)
    seconds["in_sample"] = round(time.perf_counter() - start, 1)
    results = [{"name": name, "class": None, "folds": folds, **scores(rankings, flips), "seconds": seconds}]
    into = flipped_into(cache, flips)
    if into is not None:  # the class's own listing (label-issues --class): its order is the whole list's
        of_class = {way: [p for p in ranked if p[2] == into] for way, ranked in rankings.items()}
        results.append({"name": name, "class": into, "folds": folds, **scores(of_class, flips)})
    return results


def table(results: list[dict]) -> str:
    """precision@k of the three ways, one row per cache, listing and k; how many each lists, the share of the
    flips its whole listing holds and the share of its listing that is flips."""
    lines = ["| cache | listing | flips | k | precision@k out of fold | confident learning | in sample | "
             "listed (oof / cl / in) | flips listed (oof / cl / in) | listing's precision (oof / cl / in) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        listing = "every class" if r["class"] is None else f"--class {r['class']}"
        listed = " / ".join(str(r["listed"][way]) for way in WAYS)
        recall = " / ".join(f"{r['recall_of_list'][way]:.0%}" for way in WAYS)
        precision = " / ".join(f"{r['precision_of_list'][way]:.2f}" for way in WAYS)
        for k, p in r["precision_at"].items():
            figures = " | ".join(f"{p[way]:.3f}" for way in WAYS)
            lines.append(f"| {r['name']} | {listing} | {r['flips']} | {k} | {figures} | {listed} | {recall} | "
                         f"{precision} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of NAME.h5 + NAME.flips.npz")
    parser.add_argument("--runs", type=Path, required=True, help="folder of the ERM runs (trained when missing)")
    parser.add_argument("--names", nargs="+", default=["fm-u10", "fm-shirt40", "c300-u30"])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="results as JSON")
    args = parser.parse_args(argv)
    args.runs.mkdir(parents=True, exist_ok=True)
    results = [row for name in args.names for row in measure(name, args.data, args.runs, args.folds)]
    print(table(results))
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
